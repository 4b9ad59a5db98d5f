//! Rollback holds and promotion gates on real repositories built here, with
//! commit dates set through `GIT_AUTHOR_DATE` / `GIT_COMMITTER_DATE` and
//! authors through `GIT_AUTHOR_NAME` / `GIT_AUTHOR_EMAIL`: a bump by the
//! tool itself (`run --commit`) or by Flux's `fluxcdbot`, a person's
//! revert, then a newer tag; a staging folder that got a tag N hours ago.
//! Through `run` and `fn` (which has no history and says so).

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use support::rfc3339;

const POLICY: &str = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: web, namespace: apps}\nspec: {image: ghcr.io/acme/web}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: web, namespace: apps}\nspec: {imageRepositoryRef: {name: web}, policy: {semver: {range: 1.x}}}\n";

fn deploy(tag: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: apps}}\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: ghcr.io/acme/web:{tag} # {{\"$imagepolicy\": \"apps:web\"}}\n"
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `git -C dir args…` as `author` (`Name <email>`) at `time`, away from
/// the user's configuration.
fn git_as(dir: &Path, author: &str, time: u64, args: &[&str]) -> String {
    let (name, email) = author.trim_end_matches('>').split_once(" <").unwrap();
    let date = format!("@{time} +0000");
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", name)
        .env("GIT_AUTHOR_EMAIL", email)
        .env("GIT_COMMITTER_NAME", name)
        .env("GIT_COMMITTER_EMAIL", email)
        .env("GIT_AUTHOR_DATE", &date)
        .env("GIT_COMMITTER_DATE", &date)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Writes `files` and commits them all as `author` at `time`.
fn commit(dir: &Path, author: &str, time: u64, message: &str, files: &[(&str, &str)]) -> String {
    for (rel, content) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    git_as(dir, author, time, &["add", "-A"]);
    git_as(dir, author, time, &["commit", "--quiet", "-m", message]);
    git_as(dir, author, time, &["rev-parse", "HEAD"])
        .trim()
        .to_string()
}

fn snapshot(dir: &Path, tags: &[&str]) -> std::path::PathBuf {
    let path = dir.join(format!("snapshot-{}.json", tags.len()));
    let json =
        serde_json::json!({"version": 1, "repositories": {"ghcr.io/acme/web": {"tags": tags}}});
    std::fs::write(&path, json.to_string()).unwrap();
    path
}

fn run(dir: &Path, snapshot: &Path, args: &[&str]) -> (Output, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_image-update"))
        .arg("run")
        .arg(dir)
        .arg("--registry-snapshot")
        .arg(snapshot)
        .args(["--output", "json"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    let report = support::json_report(&out);
    (out, report)
}

fn text_run(dir: &Path, snapshot: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_image-update"))
        .arg("run")
        .arg(dir)
        .arg("--registry-snapshot")
        .arg(snapshot)
        .arg("--dry-run")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// A folder for the repository and one for the snapshots beside it.
fn scratch() -> (tempfile::TempDir, tempfile::TempDir) {
    (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap())
}

/// The run changed the web image to `tag`, first of its changes.
fn assert_web_becomes(report: &serde_json::Value, tag: &str) {
    let image = format!("ghcr.io/acme/web:{tag}");
    assert_eq!(report["changes"][0]["new"], image, "{report}");
}

/// The run changed nothing.
fn assert_changes_nothing(report: &serde_json::Value) {
    assert_eq!(report["changes"], serde_json::json!([]), "{report}");
}

fn image_in(dir: &Path, rel: &str) -> String {
    let text = std::fs::read_to_string(dir.join(rel)).unwrap();
    let at = text.find("ghcr.io/acme/web:").unwrap() + "ghcr.io/acme/web:".len();
    text[at..].split_whitespace().next().unwrap().to_string()
}

const DEV: &str = "Jane Dev <jane@example.com>";

/// A new repository whose first commit, a person's at `t`, holds the
/// policy and the Deployment at 1.0.0.
fn flux_repo(dir: &Path, t: u64) {
    git_as(dir, DEV, t, &["init", "--quiet", "-b", "main"]);
    commit(
        dir,
        DEV,
        t,
        "initial",
        &[("policy.yaml", POLICY), ("apps/web.yaml", &deploy("1.0.0"))],
    );
}

#[test]
fn a_revert_of_the_tools_own_bump_holds_until_a_newer_tag() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now() - 10 * 3600;
    flux_repo(dir, t);
    // The tool bumps and commits as its default author (the repository
    // has no user.name).
    let two = snapshot(files.path(), &["1.0.0", "1.0.1", "1.1.0"]);
    let (out, report) = run(dir, &two, &["--commit"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(image_in(dir, "apps/web.yaml"), "1.1.0");
    // A person reverts it.
    let revert_time = now() - 3600;
    git_as(dir, DEV, revert_time, &["revert", "--no-edit", "HEAD"]);
    let revert = git_as(dir, DEV, revert_time, &["rev-parse", "HEAD"]);
    assert_eq!(image_in(dir, "apps/web.yaml"), "1.0.0");

    // Held: neither 1.1.0 nor 1.0.1 (not newer than 1.1.0) is applied.
    let (out, report) = run(dir, &two, &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_changes_nothing(&report);
    assert_eq!(image_in(dir, "apps/web.yaml"), "1.0.0");
    let policy = &report["policies"][0];
    assert_eq!(policy["tag"], serde_json::Value::Null, "{report}");
    assert_eq!(policy["error"], serde_json::Value::Null, "{report}");
    let hold = &policy["holds"][0];
    assert_eq!(hold["outcome"], "held");
    assert_eq!(hold["tag"], "1.1.0");
    let said = format!(
        "held: rolled back by {} on {} (1.1.0 -> 1.0.0 by Jane Dev); waiting for a tag newer than 1.1.0",
        &revert[..7],
        rfc3339(revert_time)
    );
    assert_eq!(hold["reason"], said.as_str());
    assert!(
        text_run(dir, &two).contains(&format!("policy apps:web: {said}")),
        "the text report says the hold"
    );

    // --ignore-holds does what upstream does.
    let (_, report) = run(dir, &two, &["--ignore-holds", "--dry-run"]);
    assert_web_becomes(&report, "1.1.0");

    // A newer tag than the rolled-back one is applied.
    let three = snapshot(files.path(), &["1.0.0", "1.0.1", "1.1.0", "1.2.0"]);
    let (out, report) = run(dir, &three, &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["policies"][0]["tag"], "1.2.0");
    assert_eq!(report["policies"][0].get("holds"), None, "{report}");
    assert_eq!(image_in(dir, "apps/web.yaml"), "1.2.0");
}

/// The candidates agree with the holds: after a person's revert every tag
/// not newer than the rolled-back one is listed as held and none is chosen;
/// once a newer tag exists it is the chosen candidate and the tag applied.
#[test]
fn held_candidates_are_listed_and_the_chosen_one_is_the_tag_applied() {
    let (repo, files) = scratch();
    let dir = repo.path();
    flux_repo(dir, now() - 10 * 3600);
    let two = snapshot(files.path(), &["1.0.0", "1.0.1", "1.1.0"]);
    let (out, report) = run(dir, &two, &["--commit"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    git_as(dir, DEV, now() - 3600, &["revert", "--no-edit", "HEAD"]);

    let outcomes = |report: &serde_json::Value| -> Vec<(String, String)> {
        report["policies"][0]["candidates"]["shown"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let field = |k: &str| c[k].as_str().unwrap().to_string();
                (field("tag"), field("outcome"))
            })
            .collect()
    };
    let (_, report) = run(dir, &two, &["--dry-run"]);
    let held: Vec<(String, String)> = ["1.1.0", "1.0.1", "1.0.0"]
        .iter()
        .map(|t| (t.to_string(), "held".to_string()))
        .collect();
    assert_eq!(outcomes(&report), held, "{report}");
    let reason = report["policies"][0]["candidates"]["shown"][0]["reason"]
        .as_str()
        .unwrap();
    assert!(reason.starts_with("held: rolled back by "), "{report}");

    let three = snapshot(files.path(), &["1.0.0", "1.0.1", "1.1.0", "1.2.0"]);
    let (_, report) = run(dir, &three, &["--dry-run"]);
    assert_eq!(report["policies"][0]["tag"], "1.2.0", "{report}");
    let mut want = vec![("1.2.0".to_string(), "chosen".to_string())];
    want.extend(held);
    assert_eq!(outcomes(&report), want, "{report}");
}

#[test]
fn only_a_person_undoing_an_automations_value_is_a_rollback() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now() - 10 * 3600;
    flux_repo(dir, t);
    // A person bumps, a person reverts: no automation wrote 1.1.0.
    commit(
        dir,
        DEV,
        t + 60,
        "bump",
        &[("apps/web.yaml", &deploy("1.1.0"))],
    );
    commit(
        dir,
        DEV,
        t + 120,
        "back",
        &[("apps/web.yaml", &deploy("1.0.0"))],
    );
    let tags = snapshot(files.path(), &["1.0.0", "1.1.0"]);
    let (_, report) = run(dir, &tags, &["--dry-run"]);
    assert_web_becomes(&report, "1.1.0");

    // Flux's bot bumps (its documented author), a person reverts: held.
    commit(
        dir,
        "fluxcdbot <fluxcdbot@users.noreply.github.com>",
        t + 180,
        "Update from image update automation",
        &[("apps/web.yaml", &deploy("1.1.0"))],
    );
    commit(
        dir,
        DEV,
        t + 240,
        "1.1.0 is broken",
        &[("apps/web.yaml", &deploy("1.0.0"))],
    );
    let (_, report) = run(dir, &tags, &["--dry-run"]);
    assert_changes_nothing(&report);
    assert_eq!(report["policies"][0]["holds"][0]["outcome"], "held");

    // An author named with --automation-author counts as an automation.
    commit(
        dir,
        "Release Robot <robot@acme.io>",
        t + 300,
        "bump",
        &[("apps/web.yaml", &deploy("1.1.0"))],
    );
    commit(
        dir,
        DEV,
        t + 360,
        "again",
        &[("apps/web.yaml", &deploy("1.0.0"))],
    );
    let (_, report) = run(dir, &tags, &["--dry-run"]);
    assert_web_becomes(&report, "1.1.0");
    let (_, report) = run(
        dir,
        &tags,
        &["--dry-run", "--automation-author", "robot@acme.io"],
    );
    assert_changes_nothing(&report);

    // A history cut before the bump cannot show a rollback: applied, and
    // the report says how far it read.
    let (_, report) = run(
        dir,
        &tags,
        &[
            "--dry-run",
            "--automation-author",
            "robot@acme.io",
            "--history-depth",
            "1",
        ],
    );
    assert_web_becomes(&report, "1.1.0");
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["message"]
                .as_str()
                .unwrap()
                .starts_with("git history read back 1 commit(s) only: --history-depth 1 reached")),
        "{report}"
    );
}

const GATED: &str = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: web, namespace: apps}\nspec: {image: ghcr.io/acme/web}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata:\n  name: web\n  namespace: apps\n  annotations:\n    image-update.dev/promote-from: clusters/staging\n    image-update.dev/soak: 24h\nspec: {imageRepositoryRef: {name: web}, policy: {semver: {range: 1.x}}}\n";

fn staging(tag: &str) -> String {
    // Staging runs the image without a marker: a plain reference counts.
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: ghcr.io/acme/web:{tag}\n"
    )
}

/// A new repository whose first commit, a person's at `t`, holds the
/// production policy `policy` (gated), production's Deployment at 1.0.0
/// and `more` files.
fn gated_repo(dir: &Path, t: u64, policy: &str, more: &[(&str, &str)]) {
    git_as(dir, DEV, t, &["init", "--quiet", "-b", "main"]);
    let web = deploy("1.0.0");
    let mut files = vec![
        ("clusters/production/policy.yaml", policy),
        ("clusters/production/web.yaml", web.as_str()),
    ];
    files.extend_from_slice(more);
    commit(dir, DEV, t, "initial", &files);
}

#[test]
fn production_takes_a_tag_only_after_it_soaked_in_staging() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now();
    let hours = |h: u64| t - h * 3600;
    let staged = staging("1.0.0");
    gated_repo(
        dir,
        hours(48),
        GATED,
        &[("clusters/staging/web.yaml", &staged)],
    );
    commit(
        dir,
        DEV,
        hours(30),
        "staging: 1.1.0",
        &[("clusters/staging/web.yaml", &staging("1.1.0"))],
    );
    let tags = snapshot(files.path(), &["1.0.0", "1.1.0", "1.2.0", "1.3.0"]);
    // 1.1.0 ran in staging for 30 hours: qualifies; 1.3.0 (the rule's
    // winner) never ran there.
    let (out, report) = run(dir, &tags, &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["policies"][0]["tag"], "1.1.0", "{report}");
    assert_eq!(
        report["policies"][0]["holds"][0]["reason"],
        "waiting: 1.3.0 is not in clusters/staging (promotion gate, soak 24h)"
    );
    assert_eq!(image_in(dir, "clusters/production/web.yaml"), "1.1.0");
    commit(
        dir,
        "image-update <image-update@users.noreply.github.com>",
        hours(29),
        "production: 1.1.0",
        &[],
    );

    // Staging moved to 1.2.0 two hours ago: 1.1.0 is no longer there, and
    // 1.2.0 waits until 22 hours from now.
    commit(
        dir,
        DEV,
        hours(2),
        "staging: 1.2.0",
        &[("clusters/staging/web.yaml", &staging("1.2.0"))],
    );
    let (out, report) = run(dir, &tags, &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_changes_nothing(&report);
    let holds = &report["policies"][0]["holds"];
    assert_eq!(holds[0]["outcome"], "waiting", "{report}");
    assert_eq!(
        holds[0]["reason"],
        "waiting: 1.3.0 is not in clusters/staging (promotion gate, soak 24h)"
    );
    assert_eq!(
        holds[1]["reason"].as_str().unwrap(),
        format!(
            "waiting: 1.2.0 in clusters/staging since {}, soak 24h, eligible at {}",
            rfc3339(hours(2)),
            rfc3339(hours(2) + 24 * 3600)
        )
    );
    assert_eq!(
        holds[1]["eligible_at"].as_str().unwrap(),
        rfc3339(hours(2) + 24 * 3600)
    );

    // Read back only one commit, which did not touch staging, 1.2.0 is
    // known to be there since that commit or earlier: still waiting, and
    // said so.
    commit(dir, DEV, hours(1), "docs", &[("README.md", "hello\n")]);
    let (_, report) = run(dir, &tags, &["--dry-run", "--history-depth", "1"]);
    assert_eq!(
        report["policies"][0]["holds"][1]["reason"]
            .as_str()
            .unwrap(),
        format!(
            "waiting: 1.2.0 in clusters/staging since {} or earlier (history read back to there), soak 24h, eligible at {} at the latest",
            rfc3339(hours(1)),
            rfc3339(hours(1) + 24 * 3600)
        ),
        "{report}"
    );
}

#[test]
fn a_gate_without_history_holds_the_policy_and_says_why() {
    let tree = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let dir = tree.path();
    for (rel, content) in [
        ("clusters/production/policy.yaml", GATED.to_string()),
        ("clusters/production/web.yaml", deploy("1.0.0")),
        ("clusters/staging/web.yaml", staging("1.1.0")),
    ] {
        std::fs::create_dir_all(dir.join(rel).parent().unwrap()).unwrap();
        std::fs::write(dir.join(rel), content).unwrap();
    }
    let tags = snapshot(files.path(), &["1.0.0", "1.1.0"]);
    let (out, report) = run(dir, &tags, &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_changes_nothing(&report);
    let not_git = format!("{} is not in a git repository", dir.display());
    assert_eq!(
        report["policies"][0]["holds"][0]["reason"]
            .as_str()
            .unwrap(),
        format!("waiting: 1.1.0 cannot be checked against clusters/staging: {not_git}")
    );
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["message"]
                == format!("no git history ({not_git}): promotion gates cannot be passed")
                    .as_str()),
        "{report}"
    );
    // A gate with only one of its annotations is a mistake, said.
    std::fs::write(
        dir.join("clusters/production/policy.yaml"),
        GATED.replace("    image-update.dev/soak: 24h\n", ""),
    )
    .unwrap();
    let (out, report) = run(dir, &tags, &[]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(
        report["policies"][0]["error"],
        "image-update.dev/promote-from needs image-update.dev/soak too"
    );
}

/// `fn` over a ResourceList: no history, said in the results.
fn run_fn(snapshot: &Path, input: &str) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_image-update"));
    command.args(["fn", "--registry-snapshot"]).arg(snapshot);
    String::from_utf8(support::output_with_stdin(&mut command, input).stdout).unwrap()
}

fn resource_list(policy: &str) -> String {
    let mut out = String::from("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n");
    for doc in policy
        .split("---\n")
        .map(str::to_string)
        .chain([deploy("1.0.0")])
    {
        let mut lines = doc.lines();
        out.push_str(&format!("- {}\n", lines.next().unwrap()));
        for line in lines {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

#[test]
fn fn_has_no_history_and_says_so() {
    let files = tempfile::tempdir().unwrap();
    let tags = snapshot(files.path(), &["1.0.0", "1.1.0"]);
    let output = run_fn(&tags, &resource_list(POLICY));
    assert!(output.contains("ghcr.io/acme/web:1.1.0"), "{output}");
    assert!(
        output.contains(
            "rollback holds not checked: a KRM function gets only the ResourceList, not the git history"
        ),
        "{output}"
    );
    let output = run_fn(&tags, &resource_list(GATED));
    assert!(!output.contains("ghcr.io/acme/web:1.1.0"), "{output}");
    assert!(
        output.contains("ImagePolicy apps:web: waiting: 1.1.0 cannot be checked against clusters/staging: a KRM function gets only the ResourceList, not the git history"),
        "{output}"
    );
}

const APP: &str = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n  namespace: argocd\n  annotations:\n    argocd-image-updater.argoproj.io/image-list: web=ghcr.io/acme/web:1.x\n    argocd-image-updater.argoproj.io/web.helm.image-name: image.repository\n    argocd-image-updater.argoproj.io/web.helm.image-tag: image.tag\n    argocd-image-updater.argoproj.io/write-back-method: git\nspec:\n  project: default\n  source:\n    repoURL: https://github.com/example/gitops.git\n    path: apps/web\n    targetRevision: main\n  destination: {server: https://kubernetes.default.svc, namespace: web}\n";

/// The override file Argo CD Image Updater writes for the `web` chart.
fn overrides(tag: &str) -> String {
    format!(
        "helm:\n  parameters:\n  - name: image.repository\n    value: ghcr.io/acme/web\n    forcestring: true\n  - name: image.tag\n    value: {tag}\n    forcestring: true\n"
    )
}

const OVERRIDE: &str = "apps/web/.argocd-source-web.yaml";
const ARGO_BOT: &str = "argocd-image-updater <noreply@argoproj.io>";
/// The repository the Argo CD applications name as their source.
const REPO_URL: [&str; 2] = ["--repo-url", "https://github.com/example/gitops"];

/// Argo CD Image Updater's commit of `tag` to the override file `path`.
fn image_updater_writes(dir: &Path, time: u64, path: &str, tag: &str) {
    commit(
        dir,
        ARGO_BOT,
        time,
        "build: automatic update of web",
        &[(path, &overrides(tag))],
    );
}

fn argo_repo(dir: &Path, app: &str, t: u64) {
    git_as(dir, DEV, t, &["init", "--quiet", "-b", "main"]);
    commit(
        dir,
        DEV,
        t,
        "initial",
        &[
            ("argocd/web.yaml", app),
            (
                "apps/web/Chart.yaml",
                "apiVersion: v2\nname: web\nversion: 0.1.0\n",
            ),
            (
                "apps/web/values.yaml",
                "image:\n  repository: ghcr.io/acme/web\n  tag: 1.0.0\n",
            ),
        ],
    );
}

#[test]
fn an_argo_cd_image_rolled_back_after_the_image_updater_wrote_it_is_held() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now() - 3600;
    argo_repo(dir, APP, t);
    image_updater_writes(dir, t + 60, OVERRIDE, "1.1.0");
    commit(
        dir,
        DEV,
        t + 120,
        "web 1.1.0 crashes",
        &[(OVERRIDE, &overrides("1.0.0"))],
    );
    argo_held_until_newer(dir, files.path(), &|| {
        assert_eq!(
            std::fs::read_to_string(dir.join(OVERRIDE)).unwrap(),
            overrides("1.0.0")
        )
    });
}

#[test]
fn an_argo_cd_image_waits_for_its_soak_in_staging() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now();
    let gated = APP.replace(
        "  annotations:\n",
        "  annotations:\n    image-update.dev/web.promote-from: clusters/staging\n    image-update.dev/web.soak: 24h\n",
    );
    argo_repo(dir, &gated, t - 72 * 3600);
    // Staging's own override file (Helm parameters) got 1.1.0 30 hours
    // ago and 1.2.0 five hours ago.
    let staging = "clusters/staging/.argocd-source-web.yaml";
    image_updater_writes(dir, t - 30 * 3600, staging, "1.1.0");
    let tags = snapshot(files.path(), &["1.0.0", "1.1.0", "1.2.0"]);
    let (_, report) = run(dir, &tags, &["--dry-run", REPO_URL[0], REPO_URL[1]]);
    let image = &report["applications"][0]["images"][0];
    assert_eq!(image["new"], "ghcr.io/acme/web:1.1.0", "{report}");
    image_updater_writes(dir, t - 5 * 3600, staging, "1.2.0");
    let (_, report) = run(dir, &tags, &["--dry-run", REPO_URL[0], REPO_URL[1]]);
    let image = &report["applications"][0]["images"][0];
    assert_eq!(image["new"], serde_json::Value::Null, "{report}");
    assert_eq!(
        image["holds"][0]["reason"].as_str().unwrap(),
        format!(
            "waiting: 1.2.0 in clusters/staging since {}, soak 24h, eligible at {}",
            rfc3339(t - 5 * 3600),
            rfc3339(t + 19 * 3600)
        ),
        "{report}"
    );
    let hold = &image["holds"][0];
    assert_eq!(
        (
            &hold["path"],
            &hold["soak"],
            &hold["since"],
            &hold["eligible_at"]
        ),
        (
            &"clusters/staging".into(),
            &"24h".into(),
            &rfc3339(t - 5 * 3600).into(),
            &rfc3339(t + 19 * 3600).into()
        ),
        "{report}"
    );
    assert_eq!(hold.get("since_or_earlier"), None, "{report}");
    assert_eq!(hold.get("commit"), None, "{report}");
}

/// A unified `ImageUpdater` of `kind: fluxcd`, gated per image by its own
/// annotations; its automation's commit author is an automation's.
const UNIFIED: &str = "apiVersion: gitops.kubesphere.io/v1alpha1\nkind: ImageUpdater\nmetadata:\n  name: front\n  namespace: apps\n  annotations:\n    image-update.dev/web.promote-from: clusters/staging\n    image-update.dev/web.soak: 24h\nspec:\n  images: [\"web=ghcr.io/acme/web:1.x\", \"api=ghcr.io/acme/api:1.x\"]\n  kind: fluxcd\n  fluxcd:\n    interval: 5m\n    git:\n      commit:\n        author: {email: bot@acme.io, name: bot}\n    update: {path: ./clusters/production, strategy: Setters}\n";

#[test]
fn a_unified_image_updater_gates_per_image_and_knows_its_automations_author() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now();
    let production = |web: &str, api: &str| {
        format!(
            "web: ghcr.io/acme/web:{web} # {{\"$imagepolicy\": \"apps:front-web\"}}\napi: ghcr.io/acme/api:{api} # {{\"$imagepolicy\": \"apps:front-api\"}}\n"
        )
    };
    git_as(dir, DEV, t - 48 * 3600, &["init", "--quiet", "-b", "main"]);
    commit(
        dir,
        DEV,
        t - 48 * 3600,
        "initial",
        &[
            ("updater.yaml", UNIFIED),
            (
                "clusters/production/values.yaml",
                &production("1.0.0", "1.0.0"),
            ),
            ("clusters/staging/web.yaml", &staging("1.1.0")),
        ],
    );
    // The automation's author moved api to 1.1.0; a person took it back.
    commit(
        dir,
        "bot <bot@acme.io>",
        t - 2 * 3600,
        "automated",
        &[(
            "clusters/production/values.yaml",
            &production("1.0.0", "1.1.0"),
        )],
    );
    commit(
        dir,
        DEV,
        t - 3600,
        "api 1.1.0 is broken",
        &[(
            "clusters/production/values.yaml",
            &production("1.0.0", "1.0.0"),
        )],
    );
    let snapshot = files.path().join("unified.json");
    std::fs::write(
        &snapshot,
        r#"{"version": 1, "repositories": {"ghcr.io/acme/web": {"tags": ["1.0.0", "1.1.0", "1.2.0"]}, "ghcr.io/acme/api": {"tags": ["1.0.0", "1.1.0"]}}}"#,
    )
    .unwrap();
    let (out, report) = run(dir, &snapshot, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    // web: 1.1.0 soaked 48 hours in staging; 1.2.0 never ran there.
    let changes = report["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{report}");
    assert_eq!(changes[0]["new"], "ghcr.io/acme/web:1.1.0");
    let policies = report["policies"].as_array().unwrap();
    let api = policies
        .iter()
        .find(|p| p["policy"] == "apps:front-api")
        .unwrap();
    assert_eq!(api["holds"][0]["outcome"], "held", "{report}");
    let web = policies
        .iter()
        .find(|p| p["policy"] == "apps:front-web")
        .unwrap();
    assert_eq!(
        web["holds"][0]["reason"],
        "waiting: 1.2.0 is not in clusters/staging (promotion gate, soak 24h)"
    );
}

#[test]
fn a_rollback_holds_only_its_own_cluster_folders_policy() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now() - 3600;
    git_as(dir, DEV, t, &["init", "--quiet", "-b", "main"]);
    let both = |a: &str, b: &str| -> Vec<(String, String)> {
        vec![
            ("clusters/a/policy.yaml".into(), POLICY.into()),
            ("clusters/a/web.yaml".into(), deploy(a)),
            ("clusters/b/policy.yaml".into(), POLICY.into()),
            ("clusters/b/web.yaml".into(), deploy(b)),
        ]
    };
    let commit_all = |author: &str, time: u64, message: &str, files: Vec<(String, String)>| {
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_str()))
            .collect();
        commit(dir, author, time, message, &files);
    };
    commit_all(DEV, t, "initial", both("1.0.0", "1.0.0"));
    commit_all(
        "fluxcdbot <fluxcdbot@users.noreply.github.com>",
        t + 60,
        "Update from image update automation",
        both("1.1.0", "1.1.0"),
    );
    // Only cluster b goes back.
    commit_all(DEV, t + 120, "b: back to 1.0.0", both("1.1.0", "1.0.0"));
    let tags = snapshot(files.path(), &["1.0.0", "1.1.0"]);
    let (_, report) = run(dir, &tags, &["--dry-run"]);
    assert_changes_nothing(&report);
    let policies = report["policies"].as_array().unwrap();
    let of = |file: &str| policies.iter().find(|p| p["file"] == file).unwrap();
    assert_eq!(of("clusters/a/policy.yaml")["tag"], "1.1.0", "{report}");
    assert_eq!(of("clusters/a/policy.yaml").get("holds"), None, "{report}");
    assert_eq!(
        of("clusters/b/policy.yaml")["holds"][0]["outcome"],
        "held",
        "{report}"
    );
}

#[test]
fn a_shallow_clone_says_its_history_stops_early() {
    let origin = tempfile::tempdir().unwrap();
    let clone = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let t = now() - 3600;
    flux_repo(origin.path(), t);
    commit(origin.path(), DEV, t + 60, "more", &[("README.md", "x\n")]);
    let url = format!("file://{}", origin.path().display());
    let work = clone.path().join("work");
    git_as(
        clone.path(),
        DEV,
        t,
        &[
            "clone",
            "--quiet",
            "--depth",
            "1",
            &url,
            work.to_str().unwrap(),
        ],
    );
    let tags = snapshot(files.path(), &["1.0.0", "1.1.0"]);
    let (_, report) = run(&work, &tags, &["--dry-run"]);
    assert_web_becomes(&report, "1.1.0");
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["message"].as_str().unwrap().starts_with(
                "git history read back 1 commit(s) only: the repository is a shallow clone"
            )),
        "{report}"
    );
}

#[test]
fn a_gate_argo_cd_cannot_apply_is_an_error_on_the_image() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let tags = snapshot(files.path(), &["1.0.0", "1.1.0"]);
    for (annotations, error) in [
        (
            "    image-update.dev/web.promote-from: clusters/staging\n    image-update.dev/web.soak: 1 day\n",
            "image-update.dev/soak: \"1 day\" is not a duration: whole numbers with d, h, m or s, e.g. 24h or 1h30m",
        ),
        (
            "    image-update.dev/promote-from: clusters/staging\n    image-update.dev/soak: 1h\n    argocd-image-updater.argoproj.io/web.update-strategy: digest\n",
            "image-update.dev/promote-from: the digest strategy follows one tag and has no candidates to gate",
        ),
    ] {
        std::fs::create_dir_all(dir.join("argocd")).unwrap();
        std::fs::create_dir_all(dir.join("apps/web")).unwrap();
        std::fs::write(
            dir.join("argocd/web.yaml"),
            APP.replace(
                "  annotations:\n",
                &format!("  annotations:\n{annotations}"),
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("apps/web/Chart.yaml"),
            "apiVersion: v2\nname: web\nversion: 0.1.0\n",
        )
        .unwrap();
        std::fs::write(dir.join(OVERRIDE), overrides("1.0.0")).unwrap();
        let (out, report) = run(dir, &tags, &["--dry-run", REPO_URL[0], REPO_URL[1]]);
        assert_eq!(out.status.code(), Some(1), "{report}");
        assert_eq!(
            report["applications"][0]["images"][0]["error"], error,
            "{report}"
        );
    }
}

/// On top of [`flux_repo`]: Flux's bot bumps to 1.1.0 at `t + 60`, a
/// person sets 1.0.0 back at `t + 120` (the commit returned).
fn bumped_and_rolled_back(dir: &Path, t: u64) -> String {
    commit(
        dir,
        "fluxcdbot <fluxcdbot@users.noreply.github.com>",
        t + 60,
        "Update from image update automation",
        &[("apps/web.yaml", &deploy("1.1.0"))],
    );
    commit(
        dir,
        DEV,
        t + 120,
        "1.1.0 is broken",
        &[("apps/web.yaml", &deploy("1.0.0"))],
    )
}

#[test]
fn a_hotfix_pinned_after_a_rollback_keeps_the_hold() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now() - 10 * 3600;
    flux_repo(dir, t);
    let revert = bumped_and_rolled_back(dir, t);
    // Another person pins a hotfix, still below the rolled-back tag: the
    // last change is no longer the rollback itself, and 1.1.0 must still
    // not come back.
    commit(
        dir,
        "Joe Ops <joe@example.com>",
        t + 180,
        "hotfix 1.0.1",
        &[("apps/web.yaml", &deploy("1.0.1"))],
    );
    let tags = snapshot(files.path(), &["1.0.0", "1.0.1", "1.1.0"]);
    let (out, report) = run(dir, &tags, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_changes_nothing(&report);
    let reason = report["policies"][0]["holds"][0]["reason"]
        .as_str()
        .unwrap();
    assert!(
        reason.starts_with(&format!("held: rolled back by {} on", &revert[..7])),
        "{reason}"
    );
    // A person who moves above the rolled-back tag takes over: no hold.
    commit(
        dir,
        DEV,
        t + 240,
        "1.2.0 fixes it",
        &[("apps/web.yaml", &deploy("1.2.0"))],
    );
    let tags = snapshot(files.path(), &["1.0.0", "1.0.1", "1.1.0", "1.2.0", "1.3.0"]);
    let (_, report) = run(dir, &tags, &["--dry-run"]);
    assert_web_becomes(&report, "1.3.0");
}

#[test]
fn a_gate_path_that_is_not_in_the_repository_says_so() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now() - 48 * 3600;
    let misspelt = GATED.replace("clusters/staging", "clusters/stagng");
    let staged = staging("1.1.0");
    gated_repo(dir, t, &misspelt, &[("clusters/staging/web.yaml", &staged)]);
    let tags = snapshot(files.path(), &["1.0.0", "1.1.0"]);
    // A misspelt path: not "1.1.0 is not in clusters/stagng" for ever.
    let (out, report) = run(dir, &tags, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_changes_nothing(&report);
    assert_eq!(
        report["policies"][0]["holds"][0]["reason"],
        "waiting: 1.1.0 cannot be checked against clusters/stagng: no such directory in the repository at HEAD (committed files only)"
    );
    // A file is not a directory.
    commit(
        dir,
        DEV,
        t + 60,
        "gate on a file",
        &[(
            "clusters/production/policy.yaml",
            &GATED.replace("clusters/staging", "clusters/staging/web.yaml"),
        )],
    );
    let (_, report) = run(dir, &tags, &["--dry-run"]);
    assert_eq!(
        report["policies"][0]["holds"][0]["reason"],
        "waiting: 1.1.0 cannot be checked against clusters/staging/web.yaml: a file, not a directory"
    );
}

#[test]
fn a_merged_branch_of_the_automation_counts_as_the_automations_change() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now() - 10 * 3600;
    flux_repo(dir, t);
    // Flux pushes to its own branch (`push.branch`); a person merges the
    // pull request with a merge commit, after another change on main.
    git_as(dir, DEV, t, &["checkout", "--quiet", "-b", "flux-updates"]);
    commit(
        dir,
        "fluxcdbot <fluxcdbot@users.noreply.github.com>",
        t + 60,
        "Update from image update automation",
        &[("apps/web.yaml", &deploy("1.1.0"))],
    );
    git_as(dir, DEV, t, &["checkout", "--quiet", "main"]);
    commit(dir, DEV, t + 90, "docs", &[("README.md", "hello\n")]);
    let merge_args = [
        "merge",
        "--quiet",
        "--no-ff",
        "-m",
        "Merge pull request #1",
        "flux-updates",
    ];
    git_as(dir, DEV, t + 120, &merge_args);
    // The person reverts the merge.
    git_as(
        dir,
        DEV,
        t + 180,
        &["revert", "--no-edit", "-m", "1", "HEAD"],
    );
    assert_eq!(image_in(dir, "apps/web.yaml"), "1.0.0");
    let tags = snapshot(files.path(), &["1.0.0", "1.1.0"]);
    let (out, report) = run(dir, &tags, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_changes_nothing(&report);
    assert_eq!(
        report["policies"][0]["holds"][0]["outcome"], "held",
        "{report}"
    );

    // A person's branch merged the same way is a person's change: a
    // person undoing it is no rollback.
    git_as(dir, DEV, t, &["checkout", "--quiet", "-b", "manual"]);
    commit(
        dir,
        DEV,
        t + 240,
        "try 1.1.0",
        &[("apps/web.yaml", &deploy("1.1.0"))],
    );
    git_as(dir, DEV, t, &["checkout", "--quiet", "main"]);
    commit(dir, DEV, t + 250, "docs", &[("README.md", "hello again\n")]);
    let merge_args = [
        "merge",
        "--quiet",
        "--no-ff",
        "-m",
        "Merge pull request #2",
        "manual",
    ];
    git_as(dir, DEV, t + 260, &merge_args);
    commit(
        dir,
        DEV,
        t + 300,
        "back",
        &[("apps/web.yaml", &deploy("1.0.0"))],
    );
    let (_, report) = run(dir, &tags, &["--dry-run"]);
    assert_web_becomes(&report, "1.1.0");
}

#[test]
fn a_gate_reads_helm_release_values_kustomize_images_and_plain_references() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now();
    let hours = |h: u64| t - h * 3600;
    gated_repo(dir, hours(48), GATED, &[]);
    // A chart that splits the registry off (Bitnami's style), 30 hours ago.
    let helm = "apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata: {name: web}\nspec:\n  values:\n    image:\n      registry: ghcr.io\n      repository: acme/web\n      tag: 1.1.0\n";
    let path = "clusters/staging/web/release.yaml";
    commit(dir, DEV, hours(30), "staging: helm", &[(path, helm)]);
    let tags = snapshot(files.path(), &["1.0.0", "1.1.0", "1.2.0", "1.3.0"]);
    let (_, report) = run(dir, &tags, &["--dry-run"]);
    assert_eq!(report["policies"][0]["tag"], "1.1.0", "{report}");
    // A Kustomize image override, 25 hours ago; a plain reference, 2.
    let kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n  - name: ghcr.io/acme/web\n    newTag: \"1.2.0\"\n";
    let path = "clusters/staging/api/kustomization.yaml";
    commit(
        dir,
        DEV,
        hours(25),
        "staging: kustomize",
        &[(path, kustomization)],
    );
    let path = "clusters/staging/jobs/job.yaml";
    commit(
        dir,
        DEV,
        hours(2),
        "staging: job",
        &[(path, &staging("1.3.0"))],
    );
    let (_, report) = run(dir, &tags, &["--dry-run"]);
    assert_eq!(report["policies"][0]["tag"], "1.2.0", "{report}");
    let waiting = report["policies"][0]["holds"][0]["reason"]
        .as_str()
        .unwrap();
    assert!(
        waiting.starts_with("waiting: 1.3.0 in clusters/staging since"),
        "{waiting}"
    );
}

#[test]
fn a_rollback_in_a_file_whose_name_is_not_utf8_holds() {
    use std::os::unix::ffi::OsStrExt;
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now() - 10 * 3600;
    git_as(dir, DEV, t, &["init", "--quiet", "-b", "main"]);
    // Latin-1 "café.yaml", and a name with a newline in it.
    let latin1 = dir.join(std::ffi::OsStr::from_bytes(b"caf\xe9.yaml"));
    let newline = dir.join("web\nprod.yaml");
    let write = |tag: &str| {
        std::fs::write(&latin1, deploy(tag)).unwrap();
        std::fs::write(&newline, deploy("1.0.0")).unwrap();
    };
    write("1.0.0");
    commit(dir, DEV, t, "initial", &[("policy.yaml", POLICY)]);
    write("1.1.0");
    commit(
        dir,
        "fluxcdbot <fluxcdbot@users.noreply.github.com>",
        t + 60,
        "Update from image update automation",
        &[],
    );
    write("1.0.0");
    commit(dir, DEV, t + 120, "back", &[]);
    let tags = snapshot(files.path(), &["1.0.0", "1.1.0"]);
    let (out, report) = run(dir, &tags, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_changes_nothing(&report);
    assert_eq!(
        report["policies"][0]["holds"][0]["outcome"], "held",
        "{report}"
    );
}

#[test]
fn a_history_git_cannot_read_is_a_warning_not_a_silent_reapply() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now() - 3600;
    flux_repo(dir, t);
    let head = bumped_and_rolled_back(dir, t);
    // Damage the repository: HEAD's commit object is gone (as a git that
    // refuses another owner's repository, or no git at all, also fails).
    let object = dir.join(".git/objects").join(&head[..2]).join(&head[2..]);
    std::fs::remove_file(object).unwrap();
    let tags = snapshot(files.path(), &["1.0.0", "1.1.0"]);
    let (out, report) = run(dir, &tags, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let warned = report["problems"].as_array().unwrap().iter().any(|p| {
        p["severity"] == "warning"
            && p["message"]
                .as_str()
                .unwrap()
                .ends_with("rollback holds are not checked")
    });
    assert!(warned, "{report}");
}

#[test]
fn a_digest_rolled_back_beside_its_tag_does_not_hold_for_ever() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now() - 3600;
    let digest = |c: &str| format!("sha256:{}", c.repeat(64));
    let values = |tag: &str, d: &str| {
        format!(
            "image:\n  tag: \"{tag}\" # {{\"$imagepolicy\": \"apps:web:tag\"}}\n  digest: {} # {{\"$imagepolicy\": \"apps:web:digest\"}}\n",
            digest(d)
        )
    };
    let policy = POLICY.replace(
        "policy: {semver",
        "digestReflectionPolicy: IfNotPresent, policy: {semver",
    );
    git_as(dir, DEV, t, &["init", "--quiet", "-b", "main"]);
    let initial = [
        ("policy.yaml", policy.as_str()),
        ("values.yaml", &values("1.0.0", "a")),
    ];
    commit(dir, DEV, t, "initial", &initial);
    commit(
        dir,
        "fluxcdbot <fluxcdbot@users.noreply.github.com>",
        t + 60,
        "Update from image update automation",
        &[("values.yaml", &values("1.1.0", "b"))],
    );
    commit(
        dir,
        DEV,
        t + 120,
        "back",
        &[("values.yaml", &values("1.0.0", "a"))],
    );
    let snapshot = |tags: &[&str]| {
        let path = files.path().join(format!("digests-{}.json", tags.len()));
        let digests: serde_json::Map<String, serde_json::Value> = tags
            .iter()
            .zip(["a", "b", "c"])
            .map(|(tag, d)| (tag.to_string(), digest(d).into()))
            .collect();
        let json = serde_json::json!({"version": 1, "repositories": {
            "ghcr.io/acme/web": {"tags": tags, "digests": digests}}});
        std::fs::write(&path, json.to_string()).unwrap();
        path
    };
    // Held by the tag (a digest has no order: it does not hold by itself).
    let (_, report) = run(dir, &snapshot(&["1.0.0", "1.1.0"]), &["--dry-run"]);
    assert_changes_nothing(&report);
    let holds = report["policies"][0]["holds"].as_array().unwrap();
    assert_eq!(holds.len(), 1, "{report}");
    assert_eq!(holds[0]["tag"], "1.1.0");
    // A newer tag ends the hold, digest and all.
    let (_, report) = run(dir, &snapshot(&["1.0.0", "1.1.0", "1.2.0"]), &["--dry-run"]);
    assert_eq!(report["policies"][0]["tag"], "1.2.0", "{report}");
    assert_eq!(report["changes"].as_array().unwrap().len(), 2, "{report}");
}

/// Runs the Argo CD repository in `dir`, whose one image a person rolled
/// back from 1.1.0 to 1.0.0: with tags 1.0.0 and 1.1.0 it is held and
/// nothing is written (`unchanged` checks the files); with 1.2.0 listed
/// too, 1.2.0 is written. The hold of the first run.
fn argo_held_until_newer(dir: &Path, files: &Path, unchanged: &dyn Fn()) -> serde_json::Value {
    let (out, report) = run(dir, &snapshot(files, &["1.0.0", "1.1.0"]), &REPO_URL);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let image = &report["applications"][0]["images"][0];
    assert_eq!(image["new"], serde_json::Value::Null, "{report}");
    let hold = &image["holds"][0];
    assert_eq!(hold["outcome"], "held", "{report}");
    assert!(
        hold["reason"]
            .as_str()
            .unwrap()
            .contains("(1.1.0 -> 1.0.0 by Jane Dev)"),
        "{report}"
    );
    unchanged();
    let newer = snapshot(files, &["1.0.0", "1.1.0", "1.2.0"]);
    let (_, report) = run(dir, &newer, &REPO_URL);
    assert_eq!(
        report["applications"][0]["images"][0]["new"], "ghcr.io/acme/web:1.2.0",
        "{report}"
    );
    hold.clone()
}

/// Argo CD Image Updater's first write creates the override file; a
/// person's `git revert` of it deletes the file, and the value in effect
/// comes again from values.yaml, which never changed. That is a rollback
/// of the override file's value: held, not written again.
#[test]
fn reverting_the_image_updaters_first_write_deletes_the_override_file_and_holds() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now() - 3600;
    argo_repo(dir, APP, t);
    image_updater_writes(dir, t + 60, OVERRIDE, "1.1.0");
    git_as(dir, DEV, t + 120, &["revert", "--no-edit", "HEAD"]);
    let revert = git_as(dir, DEV, t + 120, &["rev-parse", "HEAD"]);
    assert!(!dir.join(OVERRIDE).exists());
    let hold = argo_held_until_newer(dir, files.path(), &|| {
        assert!(!dir.join(OVERRIDE).exists(), "nothing written")
    });
    assert_eq!(
        hold["reason"],
        format!(
            "held: rolled back by {} on {} (1.1.0 -> 1.0.0 by Jane Dev); waiting for a tag newer than 1.1.0",
            &revert[..7],
            rfc3339(t + 120)
        ),
    );
    // The same facts as fields.
    assert_eq!(hold["tag"], "1.1.0", "{hold}");
    assert_eq!(hold["commit"], revert.trim(), "{hold}");
    assert_eq!(hold["date"], rfc3339(t + 120), "{hold}");
    assert_eq!(hold["author"], "Jane Dev", "{hold}");
    assert_eq!(hold["rolled_back_to"], "1.0.0", "{hold}");
    assert_eq!(hold.get("path"), None, "{hold}");
    // The newer tag went into a new override file.
    assert_eq!(
        std::fs::read_to_string(dir.join(OVERRIDE)).unwrap(),
        overrides("1.2.0")
    );
}

/// The same with `write-back-target: kustomization`: the first write adds
/// an `images` entry to the kustomization, the revert takes it out, and
/// the image runs what the Deployment names again.
#[test]
fn reverting_the_first_write_to_a_kustomization_target_holds() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now() - 3600;
    let app = APP
        .replace(
            "    argocd-image-updater.argoproj.io/web.helm.image-name: image.repository\n    argocd-image-updater.argoproj.io/web.helm.image-tag: image.tag\n",
            "",
        )
        .replace(
            "write-back-method: git\n",
            "write-back-method: git\n    argocd-image-updater.argoproj.io/write-back-target: kustomization\n",
        );
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: ghcr.io/acme/web:1.0.0\n";
    let kustomization = "resources:\n- deployment.yaml\n";
    git_as(dir, DEV, t, &["init", "--quiet", "-b", "main"]);
    commit(
        dir,
        DEV,
        t,
        "initial",
        &[
            ("argocd/web.yaml", &app),
            ("apps/web/kustomization.yaml", kustomization),
            ("apps/web/deployment.yaml", deployment),
        ],
    );
    // The tool's own first write, committed as its default author.
    let two = snapshot(files.path(), &["1.0.0", "1.1.0"]);
    let (out, report) = run(dir, &two, &["--commit", REPO_URL[0], REPO_URL[1]]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let file = dir.join("apps/web/kustomization.yaml");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("newTag: 1.1.0"), "{written}");
    git_as(dir, DEV, t + 120, &["revert", "--no-edit", "HEAD"]);
    argo_held_until_newer(dir, files.path(), &|| {
        assert_eq!(std::fs::read_to_string(&file).unwrap(), kustomization)
    });
}

/// The same with `write-back-target: helmvalues:<file>` naming a values
/// file that does not exist yet: the first write creates it, the revert
/// deletes it, and values.yaml is in effect again.
#[test]
fn reverting_the_first_write_to_a_new_helm_values_target_holds() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now() - 3600;
    let app = APP.replace(
        "write-back-method: git\n",
        "write-back-method: git\n    argocd-image-updater.argoproj.io/write-back-target: helmvalues:image-values.yaml\n",
    );
    argo_repo(dir, &app, t);
    let two = snapshot(files.path(), &["1.0.0", "1.1.0"]);
    let (out, report) = run(dir, &two, &["--commit", REPO_URL[0], REPO_URL[1]]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let target = dir.join("apps/web/image-values.yaml");
    let written = std::fs::read_to_string(&target).unwrap();
    assert!(written.contains("1.1.0"), "{written}");
    git_as(dir, DEV, t + 120, &["revert", "--no-edit", "HEAD"]);
    argo_held_until_newer(dir, files.path(), &|| assert!(!target.exists()));
}

/// In CI the repository's own `user.name` is often a bot's
/// (`github-actions[bot]`), which is no automation author: the tool's
/// commits are known by their `Image-Update-Automation` trailer, so a
/// person's revert still holds.
#[test]
fn the_tools_commits_under_the_repositorys_own_user_name_are_known_by_their_trailer() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now() - 10 * 3600;
    flux_repo(dir, t);
    let bot = "github-actions[bot]";
    git_as(dir, DEV, t, &["config", "user.name", bot]);
    git_as(
        dir,
        DEV,
        t,
        &[
            "config",
            "user.email",
            "41898282+github-actions[bot]@users.noreply.github.com",
        ],
    );
    let two = snapshot(files.path(), &["1.0.0", "1.1.0"]);
    let (out, report) = run(dir, &two, &["--commit"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(
        git_as(dir, DEV, t, &["log", "-1", "--format=%an"]).trim(),
        bot
    );
    assert_eq!(
        git_as(
            dir,
            DEV,
            t,
            &[
                "log",
                "-1",
                "--format=%(trailers:key=Image-Update-Automation)"
            ]
        )
        .trim(),
        "Image-Update-Automation: image-update"
    );
    git_as(dir, DEV, now() - 3600, &["revert", "--no-edit", "HEAD"]);
    let (out, report) = run(dir, &two, &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_changes_nothing(&report);
    assert_eq!(
        report["policies"][0]["holds"][0]["outcome"], "held",
        "{report}"
    );
    assert_eq!(image_in(dir, "apps/web.yaml"), "1.0.0");
    // A person's own commit under that name, without the trailer, is a
    // person's: their bump reverted by another person is no rollback.
    commit(
        dir,
        "github-actions[bot] <ci@example.com>",
        now() - 1800,
        "try 1.1.0",
        &[("apps/web.yaml", &deploy("1.1.0"))],
    );
    git_as(dir, DEV, now() - 900, &["revert", "--no-edit", "HEAD"]);
    let (_, report) = run(dir, &two, &["--dry-run"]);
    assert_web_becomes(&report, "1.1.0");
}

/// When nothing changes because of holds, the summaries say so rather
/// than "nothing needs a change": one policy held by a rollback, one
/// waiting at its promotion gate.
#[test]
fn the_summaries_say_what_was_held_and_what_waits_when_nothing_changed() {
    let (repo, files) = scratch();
    let dir = repo.path();
    let t = now() - 10 * 3600;
    flux_repo(dir, t);
    commit(
        dir,
        "fluxcdbot <fluxcdbot@users.noreply.github.com>",
        t + 60,
        "Update from image update automation",
        &[("apps/web.yaml", &deploy("1.1.0"))],
    );
    git_as(dir, DEV, t + 120, &["revert", "--no-edit", "HEAD"]);
    // api is gated: 1.1.0 reached staging an hour ago, soak 24h.
    let api = GATED.replace("web", "api");
    commit(
        dir,
        DEV,
        t + 180,
        "api",
        &[
            ("apps/api-policy.yaml", &api),
            ("apps/api.yaml", &deploy("1.0.0").replace("web", "api")),
            (
                "clusters/staging/api.yaml",
                &staging("1.0.0").replace("web", "api"),
            ),
        ],
    );
    commit(
        dir,
        DEV,
        now() - 3600,
        "staging: api 1.1.0",
        &[(
            "clusters/staging/api.yaml",
            &staging("1.1.0").replace("web", "api"),
        )],
    );
    let snapshot = files.path().join("snapshot.json");
    let tags = serde_json::json!(["1.0.0", "1.1.0"]);
    let json = serde_json::json!({"version": 1, "repositories": {
        "ghcr.io/acme/web": {"tags": tags}, "ghcr.io/acme/api": {"tags": tags}}});
    std::fs::write(&snapshot, json.to_string()).unwrap();

    let text = text_run(dir, &snapshot);
    assert!(
        text.lines().any(|l| l
            == "2 policies, 0 changes in 0 files, 1 held by a rollback, 1 waiting for promotion (dry run: nothing written)"),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_image-update"))
        .arg("run")
        .arg(dir)
        .arg("--registry-snapshot")
        .arg(&snapshot)
        .args(["--output", "markdown"])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    let markdown = String::from_utf8(out.stdout).unwrap();
    assert!(
        markdown
            .contains("No image reference changed; 1 held by a rollback, 1 waiting for promotion."),
        "{markdown}"
    );
    assert!(!markdown.contains("needs a change"), "{markdown}");
}

/// Outside git there is no history: the run says once that rollback holds
/// were not checked (a fact of the run, not a problem of the tree), and
/// updates as before; in a repository, or with --ignore-holds, nothing is
/// said.
#[test]
fn a_tree_outside_git_says_once_that_holds_are_not_checked() {
    let plain = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let dir = plain.path();
    std::fs::write(dir.join("policy.yaml"), POLICY).unwrap();
    std::fs::write(dir.join("web.yaml"), deploy("1.0.0")).unwrap();
    let tags = snapshot(files.path(), &["1.0.0", "1.1.0"]);
    let (out, report) = run(dir, &tags, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["holds_not_checked"], "not in a git repository");
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    assert_web_becomes(&report, "1.1.0");
    let text = text_run(dir, &tags);
    let note = "note: no git history (not in a git repository): rollback holds are not checked";
    assert_eq!(text.matches(note).count(), 1, "{text}");
    let (_, report) = run(dir, &tags, &["--dry-run", "--ignore-holds"]);
    assert_eq!(report.get("holds_not_checked"), None, "{report}");

    let repo = tempfile::tempdir().unwrap();
    flux_repo(repo.path(), now() - 3600);
    let (_, report) = run(repo.path(), &tags, &["--dry-run"]);
    assert_eq!(report.get("holds_not_checked"), None, "{report}");
    assert!(!text_run(repo.path(), &tags).contains("rollback holds"));
}
