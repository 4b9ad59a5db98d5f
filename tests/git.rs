//! `run --commit` and `--push` on real repositories in temporary directories:
//! a bare repository as the remote over `file://`, a second clone that pushes
//! first, dirty working trees and pre-staged files that must stay as they
//! were, detached HEAD, and a tree that is a subdirectory of the repository.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::git;

const POLICY: &str = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: web, namespace: apps}\nspec: {image: ghcr.io/acme/web}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: web, namespace: apps}\nspec: {imageRepositoryRef: {name: web}, policy: {semver: {range: 1.x}}}\n";
const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: apps}\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\n        - name: side\n          image: busybox:1.36\n";

struct Fixture {
    _dirs: Vec<tempfile::TempDir>,
    remote: PathBuf,
    work: PathBuf,
    snapshot: PathBuf,
}

/// A bare remote with one commit (policy + deployment under `sub`), and a clone of it.
fn fixture(sub: &str) -> Fixture {
    let (remote_dir, work_dir, files) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let remote = remote_dir.path().join("remote.git");
    git(
        remote_dir.path(),
        &[
            "init",
            "--quiet",
            "--bare",
            "-b",
            "main",
            remote.to_str().unwrap(),
        ],
    );
    let work = work_dir.path().join("work");
    git(
        work_dir.path(),
        &[
            "clone",
            "--quiet",
            remote.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    );
    let tree = work.join(sub);
    std::fs::create_dir_all(tree.join("apps")).unwrap();
    std::fs::write(tree.join("policy.yaml"), POLICY).unwrap();
    std::fs::write(tree.join("apps/deploy.yaml"), DEPLOY).unwrap();
    std::fs::write(tree.join("apps/other.yaml"), "a: 1\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "initial"]);
    git(&work, &["push", "--quiet", "origin", "main"]);
    let snapshot = files.path().join("snapshot.json");
    std::fs::write(
        &snapshot,
        r#"{"version": 1, "repositories": {"ghcr.io/acme/web": {"tags": ["1.0.0", "1.1.0"]}}}"#,
    )
    .unwrap();
    Fixture {
        _dirs: vec![remote_dir, work_dir, files],
        remote,
        work,
        snapshot,
    }
}

/// `image-update run DIR` on the fixture's snapshot, away from the user's
/// git configuration.
fn command(f: &Fixture, dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_image-update"));
    command
        .arg("run")
        .arg(dir)
        .arg("--registry-snapshot")
        .arg(&f.snapshot)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    command
}

fn run(f: &Fixture, dir: &Path, args: &[&str]) -> (Output, serde_json::Value) {
    let out = command(f, dir)
        .args(["--output", "json"])
        .args(args)
        .output()
        .unwrap();
    let report = support::json_report(&out);
    (out, report)
}

#[test]
fn commit_takes_exactly_the_written_files_and_leaves_everything_else() {
    let f = fixture("");
    std::fs::write(f.work.join("apps/other.yaml"), "a: 2 # unstaged edit\n").unwrap();
    std::fs::write(f.work.join("staged.txt"), "staged\n").unwrap();
    git(&f.work, &["add", "staged.txt"]);
    let before = git(&f.work, &["rev-parse", "HEAD"]);

    let (out, report) = run(
        &f,
        &f.work,
        &["--commit", "--author", "Bot <bot@example.com>"],
    );
    assert_eq!(out.status.code(), Some(0), "{report}");
    let sha = report["commit"]["sha"].as_str().unwrap();
    assert_eq!(git(&f.work, &["rev-parse", "HEAD"]).trim(), sha);
    assert_eq!(git(&f.work, &["rev-parse", "HEAD^"]), before);
    assert_eq!(report["commit"]["branch"], "main");
    assert_eq!(report["commit"]["pushed"], false);
    assert_eq!(
        git(
            &f.work,
            &["diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD"]
        ),
        "apps/deploy.yaml\n"
    );
    assert_eq!(
        git(&f.work, &["log", "-1", "--format=%an <%ae>|%cn <%ce>"]).trim(),
        "Bot <bot@example.com>|Bot <bot@example.com>"
    );
    // The staged file is still staged and uncommitted; the unstaged edit is untouched.
    assert_eq!(
        git(&f.work, &["diff", "--cached", "--name-only"]),
        "staged.txt\n"
    );
    assert_eq!(git(&f.work, &["diff", "--name-only"]), "apps/other.yaml\n");
    assert_eq!(
        std::fs::read_to_string(f.work.join("apps/other.yaml")).unwrap(),
        "a: 2 # unstaged edit\n"
    );
    let message = git(&f.work, &["log", "-1", "--format=%B"]);
    assert!(
        message.contains("ghcr.io/acme/web:1.0.0 -> ghcr.io/acme/web:1.1.0"),
        "{message}"
    );
}

#[test]
fn nothing_changed_means_no_commit() {
    let f = fixture("");
    run(&f, &f.work, &["--commit"]);
    let head = git(&f.work, &["rev-parse", "HEAD"]);
    let (out, report) = run(&f, &f.work, &["--commit"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(report.get("commit").is_none());
    assert_eq!(git(&f.work, &["rev-parse", "HEAD"]), head);
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["message"] == "nothing changed; no commit")
    );
}

#[test]
fn the_automation_supplies_author_message_and_push_branch() {
    let f = fixture("");
    std::fs::write(
        f.work.join("automation.yaml"),
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata: {name: auto, namespace: apps}\nspec:\n  git:\n    commit:\n      author: {name: fluxbot, email: flux@example.com}\n      messageTemplate: |\n        Automation: {{ .AutomationObject }}\n        {{ range .Changed.Changes }}{{ .OldValue }} -> {{ .NewValue }}\n        {{ end }}\n    push: {branch: image-updates, refspec: 'refs/heads/image-updates:refs/heads/mirror'}\n  update: {path: ./, strategy: Setters}\n",
    )
    .unwrap();
    git(&f.work, &["add", "automation.yaml"]);
    git(&f.work, &["commit", "--quiet", "-m", "automation"]);
    let main = git(&f.work, &["rev-parse", "main"]);
    let (out, report) = run(&f, &f.work, &["--push", "--signoff"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["commit"]["branch"], "image-updates");
    assert_eq!(report["commit"]["pushed"], true);
    let message = git(&f.remote, &["log", "-1", "--format=%B", "image-updates"]);
    assert_eq!(
        message,
        "Automation: apps/auto\nghcr.io/acme/web:1.0.0 -> ghcr.io/acme/web:1.1.0\n\nImage-Update-Automation: image-update\nSigned-off-by: fluxbot <flux@example.com>\n\n"
    );
    assert_eq!(
        git(&f.remote, &["log", "-1", "--format=%an", "image-updates"]).trim(),
        "fluxbot"
    );
    assert_eq!(
        git(&f.remote, &["rev-parse", "mirror"]),
        git(&f.remote, &["rev-parse", "image-updates"]),
        "the refspec was pushed too"
    );
    // The checked-out branch itself is untouched.
    assert_eq!(git(&f.work, &["rev-parse", "main"]), main);
    assert_eq!(
        git(&f.work, &["symbolic-ref", "--short", "HEAD"]).trim(),
        "main"
    );
}

#[test]
fn a_push_that_lost_the_race_is_rebuilt_on_the_new_tip() {
    let f = fixture("");
    // Someone else pushes first: a change to the same file, other lines.
    let other = tempfile::tempdir().unwrap();
    let clone = other.path().join("clone");
    git(
        other.path(),
        &[
            "clone",
            "--quiet",
            f.remote.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let theirs = std::fs::read_to_string(clone.join("apps/deploy.yaml"))
        .unwrap()
        .replace("busybox:1.36", "busybox:1.37");
    std::fs::write(clone.join("apps/deploy.yaml"), theirs).unwrap();
    git(&clone, &["commit", "--quiet", "-am", "their change"]);
    git(&clone, &["push", "--quiet", "origin", "main"]);

    let (out, report) = run(&f, &f.work, &["--push"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["commit"]["pushed"], true);
    assert_eq!(report["commit"]["attempts"], 2);
    let sha = report["commit"]["sha"].as_str().unwrap();
    assert_eq!(git(&f.remote, &["rev-parse", "main"]).trim(), sha);
    let content = git(&f.remote, &["show", "main:apps/deploy.yaml"]);
    assert!(
        content.contains("busybox:1.37") && content.contains("ghcr.io/acme/web:1.1.0"),
        "{content}"
    );
    assert_eq!(
        git(&f.remote, &["log", "-1", "--format=%s", "main^"]).trim(),
        "their change"
    );
}

#[test]
fn a_detached_head_takes_the_commit_but_a_push_needs_a_branch() {
    let f = fixture("");
    let head = git(&f.work, &["rev-parse", "HEAD"]);
    git(&f.work, &["checkout", "--quiet", "--detach", head.trim()]);
    let (out, report) = run(&f, &f.work, &["--push"]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["message"].as_str().unwrap().contains("detached")),
        "{report}"
    );
    assert_eq!(
        git(&f.work, &["rev-parse", "HEAD"]),
        head,
        "nothing was committed"
    );
    git(&f.work, &["checkout", "--quiet", "--", "."]);
    let (out, report) = run(&f, &f.work, &["--push", "--branch", "auto/{{ .SHA256 }}"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let branch = report["commit"]["branch"].as_str().unwrap().to_string();
    assert!(branch.starts_with("auto/") && branch.len() > 20, "{branch}");
    assert_eq!(
        git(&f.remote, &["rev-parse", &branch]).trim(),
        report["commit"]["sha"].as_str().unwrap()
    );
}

#[test]
fn a_tree_in_a_subdirectory_commits_repository_paths() {
    let f = fixture("clusters/prod");
    let (out, report) = run(&f, &f.work.join("clusters/prod"), &["--commit"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(
        git(
            &f.work,
            &["diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD"]
        ),
        "clusters/prod/apps/deploy.yaml\n"
    );
    assert_eq!(git(&f.work, &["status", "--porcelain"]), "");
}

#[test]
fn a_message_template_can_come_from_a_file() {
    let f = fixture("");
    let template = f.snapshot.with_file_name("message.tmpl");
    std::fs::write(
        &template,
        "chore: bump{{ range .Updated.Images }} {{ . }}{{ end }}\n",
    )
    .unwrap();
    let (out, report) = run(
        &f,
        &f.work,
        &[
            "--commit",
            "--message-template",
            &format!("@{}", template.display()),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(
        git(&f.work, &["log", "-1", "--format=%B"]),
        "chore: bump ghcr.io/acme/web:1.1.0\n\nImage-Update-Automation: image-update\n\n"
    );
}

#[test]
fn a_template_error_commits_nothing() {
    let f = fixture("");
    let head = git(&f.work, &["rev-parse", "HEAD"]);
    let (out, report) = run(
        &f,
        &f.work,
        &[
            "--commit",
            "--message-template",
            "{{ .Nope | nosuchfunction }}",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.get("commit").is_none());
    assert_eq!(git(&f.work, &["rev-parse", "HEAD"]), head);
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["message"].as_str().unwrap().contains("message template"))
    );
}

/// Issues 15.7 and 18.4: a template asking for more output than memory
/// holds panicked (exit 101) or aborted (134) with no report.
#[test]
fn a_template_asking_for_unbounded_output_commits_nothing() {
    for template in [
        r#"{{ repeat 9223372036854775807 "ab" }}"#,
        r#"{{ indent 9223372036854775807 "a" }}"#,
    ] {
        let f = fixture("");
        let head = git(&f.work, &["rev-parse", "HEAD"]);
        let (out, report) = run(&f, &f.work, &["--commit", "--message-template", template]);
        assert_eq!(out.status.code(), Some(1), "{template}: {report}");
        assert!(report.get("commit").is_none());
        assert_eq!(git(&f.work, &["rev-parse", "HEAD"]), head);
        assert!(
            report["problems"].as_array().unwrap().iter().any(|p| {
                p["message"]
                    .as_str()
                    .unwrap()
                    .contains("limit of a template's output")
            }),
            "{report}"
        );
    }
}

#[test]
fn a_push_token_comes_from_the_environment_and_is_never_shown() {
    let f = fixture("");
    let unset = Command::new(env!("CARGO_BIN_EXE_image-update"))
        .arg("run")
        .arg(&f.work)
        .args(["--push", "--git-token-env", "IMAGE_UPDATE_TEST_UNSET_TOKEN"])
        .output()
        .unwrap();
    assert_eq!(unset.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unset.stderr).contains("IMAGE_UPDATE_TEST_UNSET_TOKEN"));
    let out = Command::new(env!("CARGO_BIN_EXE_image-update"))
        .arg("run")
        .arg(&f.work)
        .args([
            "--registry-snapshot",
            f.snapshot.to_str().unwrap(),
            "--output",
            "json",
            "--push",
            "--git-token-env",
            "TEST_TOKEN",
        ])
        .env("TEST_TOKEN", "t0k3n-value")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let printed =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!printed.contains("t0k3n-value"));
    assert!(
        !std::fs::read_to_string(f.work.join(".git/config"))
            .unwrap()
            .contains("t0k3n")
    );
}

#[test]
fn uncommitted_edits_inside_a_changed_file_stay_uncommitted() {
    let f = fixture("");
    let deploy = f.work.join("apps/deploy.yaml");
    let wip = std::fs::read_to_string(&deploy)
        .unwrap()
        .replace("name: side", "name: side-wip");
    std::fs::write(&deploy, wip).unwrap();
    let (out, report) = run(&f, &f.work, &["--commit"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let committed = git(&f.work, &["show", "HEAD:apps/deploy.yaml"]);
    assert!(
        committed.contains("ghcr.io/acme/web:1.1.0") && committed.contains("name: side\n"),
        "{committed}"
    );
    let left = git(&f.work, &["diff"]);
    assert!(
        left.contains("-        - name: side\n+        - name: side-wip\n"),
        "{left}"
    );
    let changed_lines = left
        .lines()
        .filter(|l| l.starts_with(['+', '-']) && !l.starts_with("+++") && !l.starts_with("---"));
    assert_eq!(
        changed_lines.count(),
        2,
        "only the WIP line differs from HEAD: {left}"
    );
}

#[test]
fn line_end_conversion_is_respected() {
    let f = fixture("");
    std::fs::write(f.work.join(".gitattributes"), "*.yaml text eol=crlf\n").unwrap();
    git(&f.work, &["add", ".gitattributes"]);
    git(&f.work, &["commit", "--quiet", "-m", "crlf"]);
    std::fs::remove_file(f.work.join("apps/deploy.yaml")).unwrap();
    git(&f.work, &["checkout", "--", "apps/deploy.yaml"]);
    assert!(
        std::fs::read_to_string(f.work.join("apps/deploy.yaml"))
            .unwrap()
            .contains("\r\n")
    );
    let (out, report) = run(&f, &f.work, &["--commit"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(
        git(
            &f.work,
            &["diff-tree", "--no-commit-id", "--numstat", "-r", "HEAD"]
        ),
        "1\t1\tapps/deploy.yaml\n"
    );
    assert_eq!(git(&f.work, &["status", "--porcelain"]), "");
}

#[test]
fn an_untracked_file_the_run_edited_is_committed() {
    let f = fixture("");
    std::fs::write(
        f.work.join("apps/new.yaml"),
        "image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\n",
    )
    .unwrap();
    let (out, report) = run(&f, &f.work, &["--commit"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(
        git(
            &f.work,
            &["diff-tree", "--no-commit-id", "--name-only", "-r", "HEAD"]
        ),
        "apps/deploy.yaml\napps/new.yaml\n"
    );
}

#[test]
fn a_branch_that_already_has_the_update_gets_no_empty_commit() {
    let f = fixture("");
    let (out, report) = run(&f, &f.work, &["--push", "--branch", "image-updates"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let tip = git(&f.remote, &["rev-parse", "image-updates"]);
    // The next scheduled run: main is still unmerged, so its files change again.
    git(&f.work, &["checkout", "--quiet", "--", "."]);
    let (out, report) = run(&f, &f.work, &["--push", "--branch", "image-updates"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.get("commit").is_none(), "{report}");
    assert_eq!(git(&f.remote, &["rev-parse", "image-updates"]), tip);
}

#[test]
fn after_a_rebuilt_push_a_branch_not_checked_out_follows_the_remote() {
    let f = fixture("");
    run(&f, &f.work, &["--push", "--branch", "image-updates"]);
    // Someone else moves image-updates on the remote.
    let other = tempfile::tempdir().unwrap();
    let clone = other.path().join("clone");
    git(
        other.path(),
        &[
            "clone",
            "--quiet",
            "-b",
            "image-updates",
            f.remote.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    std::fs::write(clone.join("apps/other.yaml"), "a: 3\n").unwrap();
    git(&clone, &["commit", "--quiet", "-am", "their change"]);
    git(&clone, &["push", "--quiet", "origin", "image-updates"]);
    // A newer tag appears; our next run races with them.
    std::fs::write(&f.snapshot, r#"{"version": 1, "repositories": {"ghcr.io/acme/web": {"tags": ["1.0.0", "1.1.0", "1.2.0"]}}}"#).unwrap();
    git(&f.work, &["checkout", "--quiet", "--", "."]);
    let (out, report) = run(&f, &f.work, &["--push", "--branch", "image-updates"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["commit"]["attempts"], 2, "{report}");
    let pushed = report["commit"]["sha"].as_str().unwrap();
    assert_eq!(
        git(&f.remote, &["rev-parse", "image-updates"]).trim(),
        pushed
    );
    assert_eq!(
        git(&f.work, &["rev-parse", "image-updates"]).trim(),
        pushed,
        "the local branch follows"
    );
    let content = git(&f.remote, &["show", "image-updates:apps/deploy.yaml"]);
    assert!(content.contains("ghcr.io/acme/web:1.2.0"), "{content}");
    assert_eq!(
        git(&f.remote, &["show", "image-updates:apps/other.yaml"]),
        "a: 3\n"
    );
}

/// An Argo CD application of this repository (found through the `origin`
/// remote): its new override file is committed and pushed, with the change
/// in the default message, beside the Flux marker's change.
#[test]
fn argo_cd_write_backs_are_committed_with_the_markers() {
    let f = fixture("");
    let app = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n  namespace: argocd\n  annotations:\n    argocd-image-updater.argoproj.io/image-list: ghcr.io/acme/web:1.x\n    argocd-image-updater.argoproj.io/write-back-method: git\n    argocd-image-updater.argoproj.io/force-update: \"true\"\nspec:\n  source:\n    repoURL: file://{}\n    path: apps\n",
        f.remote.display()
    );
    std::fs::write(f.work.join("app.yaml"), app).unwrap();
    std::fs::write(
        f.work.join("apps/kustomization.yaml"),
        "resources: [deploy.yaml]\n",
    )
    .unwrap();
    git(&f.work, &["add", "."]);
    git(&f.work, &["commit", "--quiet", "-m", "the app"]);

    let (out, report) = run(&f, &f.work, &["--push"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["commit"]["pushed"], true, "{report}");
    let remote = |args: &[&str]| git(&f.remote, args);
    assert_eq!(
        remote(&["diff-tree", "--no-commit-id", "--name-only", "-r", "main"]),
        "apps/.argocd-source-web.yaml\napps/deploy.yaml\n"
    );
    assert_eq!(
        remote(&["show", "main:apps/.argocd-source-web.yaml"]),
        "kustomize:\n  images:\n  - ghcr.io/acme/web:1.1.0\n"
    );
    // The current value is the one the kustomization's Deployment runs
    // (issue 17: read where upstream reads the live image).
    let message = remote(&["log", "-1", "--format=%B", "main"]);
    assert!(
        message.contains(
            "- apps/.argocd-source-web.yaml: ghcr.io/acme/web:1.0.0 -> ghcr.io/acme/web:1.1.0"
        ),
        "{message}"
    );
}

/// Hardening 15.3: a `kill -9` at the moment the branch moves must never
/// leave the index holding the old blobs under the new commit (the next
/// ordinary commit would revert the update). Git's `reference-transaction`
/// hook kills the tool just before the ref update is applied (and aborts
/// it) or just after it was applied.
#[cfg(target_os = "linux")]
#[test]
fn a_kill_while_the_branch_moves_never_stages_a_revert() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;
    for moment in ["committed", "prepared"] {
        let f = fixture("");
        let before = git(&f.work, &["rev-parse", "HEAD"]);
        let hook = f.work.join(".git/hooks/reference-transaction");
        std::fs::write(
            &hook,
            "#!/bin/sh\n[ \"$1\" = \"$KILL_AT\" ] || exit 0\nread -r _ _ _ tool _ < /proc/$PPID/stat\nkill -9 \"$tool\"\n[ \"$1\" = prepared ] && exit 1\nexit 0\n",
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = command(&f, &f.work)
            .arg("--commit")
            .env("KILL_AT", moment)
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(9), "{moment}: not killed");
        std::fs::remove_file(&hook).unwrap();
        // The index holds what the working tree holds: nothing to revert.
        assert_eq!(git(&f.work, &["diff", "--name-only"]), "", "{moment}");
        assert!(git(&f.work, &["show", ":apps/deploy.yaml"]).contains("web:1.1.0"));
        let head = git(&f.work, &["rev-parse", "HEAD"]);
        if moment == "prepared" {
            assert_eq!(
                head, before,
                "the branch moved although the update was aborted"
            );
        } else {
            assert_ne!(head, before);
            assert_eq!(
                git(&f.work, &["diff", "--cached", "--name-only"]),
                "",
                "the index differs from the new commit"
            );
        }
    }
}

/// Hardening 15.4: a push the remote refuses leaves a local commit that the
/// report names, and the next `--push` delivers it although nothing changed.
#[test]
fn a_failed_push_is_reported_with_its_commit_and_delivered_by_the_next_push() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture("");
    let gate = f.remote.join("closed");
    std::fs::write(&gate, "").unwrap();
    let hook = f.remote.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\n[ -e '{}' ] && {{ echo closed for maintenance >&2; exit 1; }}\nexit 0\n",
            gate.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

    let (out, report) = run(&f, &f.work, &["--commit", "--push"]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let sha = report["commit"]["sha"]
        .as_str()
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(report["commit"]["pushed"], false);
    assert_eq!(git(&f.work, &["rev-parse", "HEAD"]).trim(), sha);
    assert!(
        report["problems"].to_string().contains("not pushed"),
        "{report}"
    );

    std::fs::remove_file(&gate).unwrap();
    let (out, report) = run(&f, &f.work, &["--commit", "--push"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["commit"]["sha"], sha);
    assert_eq!(report["commit"]["pushed"], true);
    assert_eq!(git(&f.remote, &["rev-parse", "main"]).trim(), sha);

    // And once delivered, nothing more is pushed.
    let (out, report) = run(&f, &f.work, &["--commit", "--push"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.get("commit").is_none(), "{report}");
}

/// Hardening 15.4: a bad `--author` or `--branch` is a usage error before
/// any file is rewritten.
#[test]
fn a_bad_author_or_branch_is_refused_before_any_file_is_written() {
    let f = fixture("");
    for bad in [
        ["--author", "no email here"],
        ["--branch", "bad..name"],
        ["--branch", "image-update/{{ .Broken"],
    ] {
        let out = command(&f, &f.work)
            .arg("--commit")
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(bad[1]), "{bad:?}: {stderr}");
        assert_eq!(
            std::fs::read_to_string(f.work.join("apps/deploy.yaml")).unwrap(),
            DEPLOY,
            "{bad:?}: a file was rewritten"
        );
    }
}

/// image-automation-controller internal/source/source_test.go:554: a v1
/// automation whose template uses `.Updated` fails with Flux's reason and
/// commits nothing; the same template on a v1beta2 automation still works.
#[test]
fn a_v1_automation_using_removed_template_fields_commits_nothing() {
    for (version, committed) in [("v1", false), ("v1beta2", true)] {
        let f = fixture("");
        std::fs::write(
            f.work.join("automation.yaml"),
            format!("apiVersion: image.toolkit.fluxcd.io/{version}\nkind: ImageUpdateAutomation\nmetadata: {{name: auto, namespace: apps}}\nspec:\n  git:\n    commit:\n      messageTemplate: '{{{{ range .Updated.Images }}}}{{{{ . }}}}{{{{ end }}}}'\n  update: {{path: ./, strategy: Setters}}\n"),
        )
        .unwrap();
        git(&f.work, &["add", "automation.yaml"]);
        git(&f.work, &["commit", "--quiet", "-m", "automation"]);
        let head = git(&f.work, &["rev-parse", "HEAD"]);
        let (out, report) = run(&f, &f.work, &["--commit"]);
        if committed {
            assert_eq!(out.status.code(), Some(0), "{report}");
            assert_eq!(
                git(&f.work, &["log", "-1", "--format=%B"]).trim(),
                "ghcr.io/acme/web:1.1.0\n\nImage-Update-Automation: image-update"
            );
            continue;
        }
        assert_eq!(out.status.code(), Some(1), "{report}");
        assert!(report.get("commit").is_none(), "{report}");
        assert_eq!(git(&f.work, &["rev-parse", "HEAD"]), head);
        let messages: Vec<&str> = report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["message"].as_str())
            .collect();
        assert!(
            messages.iter().any(|m| m.contains(
                "RemovedTemplateField: template uses removed '.Updated' field. Please use '.Changed' instead."
            )),
            "{messages:?}"
        );
    }
}
