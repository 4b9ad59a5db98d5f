//! End-to-end tests through the real binary.
//!
//! Fixtures are `testdata/fixtures/<name>/{original,expected}/` directory pairs
//! with a `snapshot.json` and the expected JSON report (`report.json`). Set
//! `UPDATE_FIXTURES=1` to rewrite `expected/` and `report.json` from the
//! current behaviour, then review the diff before committing it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_image-update"))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/fixtures")
}

/// Every file under `dir`, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let rel = entry
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            files.insert(rel, fs::read(entry.path()).unwrap());
        }
    }
    files
}

fn copy_tree(from: &Path, to: &Path) {
    for (rel, bytes) in tree(from) {
        let path = to.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
}

fn write_tree(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    let _ = fs::remove_dir_all(dir);
    for (rel, bytes) in files {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
}

fn run_in(dir: &Path, snapshot: &Path, extra: &[&str]) -> Output {
    bin()
        .arg("run")
        .arg(dir)
        .arg("--registry-snapshot")
        .arg(snapshot)
        .args(extra)
        .output()
        .unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Runs a fixture, compares the tree and the report, then checks that a second
/// run changes nothing and rewrites no file.
fn fixture(name: &str, exit: i32) {
    let base = fixtures().join(name);
    let work = tempfile::tempdir().unwrap();
    copy_tree(&base.join("original"), work.path());
    let snapshot = base.join("snapshot.json");
    // Extra flags, one per line.
    let extra = fs::read_to_string(base.join("args")).unwrap_or_default();
    let mut args: Vec<&str> = extra.lines().collect();
    args.extend(["--output", "json"]);
    let output = run_in(work.path(), &snapshot, &args);
    assert_eq!(
        output.status.code(),
        Some(exit),
        "{name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = json(&output);
    let got = tree(work.path());
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        write_tree(&base.join("expected"), &got);
        fs::write(
            base.join("report.json"),
            serde_json::to_string_pretty(&report).unwrap() + "\n",
        )
        .unwrap();
    }
    let want = tree(&base.join("expected"));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{name}: file list"
    );
    for (rel, bytes) in &want {
        assert!(
            got[rel] == *bytes,
            "{name}: {rel} differs:\n{}",
            String::from_utf8_lossy(&got[rel])
        );
    }
    let want_report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(base.join("report.json")).unwrap()).unwrap();
    assert_eq!(report, want_report, "{name}: report");

    let before: BTreeMap<String, std::time::SystemTime> = got
        .keys()
        .map(|rel| {
            (
                rel.clone(),
                fs::metadata(work.path().join(rel))
                    .unwrap()
                    .modified()
                    .unwrap(),
            )
        })
        .collect();
    let again = json(&run_in(work.path(), &snapshot, &args));
    assert_eq!(
        (&again["changes"], &again["files"]),
        (&serde_json::json!([]), &serde_json::json!([])),
        "{name}: second run changed something"
    );
    for (rel, modified) in before {
        assert_eq!(
            fs::metadata(work.path().join(&rel))
                .unwrap()
                .modified()
                .unwrap(),
            modified,
            "{name}: {rel} rewritten"
        );
    }
}

#[test]
fn fixture_formatting_hazards_survive_byte_for_byte() {
    fixture("formatting", 0);
}

#[test]
fn fixture_automation_paths_namespaces_and_selectors() {
    fixture("automation", 0);
}

/// Argo CD applications configured by annotations and by an ImageUpdater:
/// a new Helm override file, a kustomization target in a sibling directory,
/// an existing override file in another namespace's name, write-back
/// `argocd` into the Application itself, a refused downgrade (Argo CD and
/// Flux), and an application of another repository.
#[test]
fn fixture_argocd_write_backs() {
    fixture("argocd", 0);
}

#[test]
fn fixture_errors_are_reported_and_the_rest_is_applied() {
    fixture("errors", 1);
}

#[test]
fn dry_run_writes_nothing_and_diff_shows_the_change() {
    let base = fixtures().join("formatting");
    let work = tempfile::tempdir().unwrap();
    copy_tree(&base.join("original"), work.path());
    let before = tree(work.path());
    let output = run_in(
        work.path(),
        &base.join("snapshot.json"),
        &["--dry-run", "--diff"],
    );
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(tree(work.path()), before);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        stdout.contains("--- a/charts/api/Kustomization\n+++ b/charts/api/Kustomization\n"),
        "{stdout}"
    );
    assert!(stdout.contains("-  newTag: v2.6.1 # {\"$imagepolicy\": \"apps:api:tag\"}\n+  newTag: v2.7.0 # {\"$imagepolicy\": \"apps:api:tag\"}\n"), "{stdout}");
    assert!(stdout.contains("would change"), "{stdout}");
    assert!(stdout.contains("(dry run: nothing written)"), "{stdout}");
}

fn small_tree(dir: &Path) -> PathBuf {
    fs::write(
        dir.join("policy.yaml"),
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: web, namespace: apps}\nspec: {image: ghcr.io/acme/web}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: web, namespace: apps}\nspec: {imageRepositoryRef: {name: web}, policy: {semver: {range: 1.x}}}\n",
    )
    .unwrap();
    let snapshot = dir.join("snapshot.json");
    fs::write(
        &snapshot,
        r#"{"version": 1, "repositories": {"ghcr.io/acme/web": {"tags": ["1.0.0", "1.1.0"]}}}"#,
    )
    .unwrap();
    snapshot
}

#[cfg(unix)]
#[test]
fn file_mode_is_kept_and_links_out_of_the_tree_are_not_followed() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("outside.yaml");
    let marked = "image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\n";
    fs::write(&target, marked).unwrap();
    let work = tempfile::tempdir().unwrap();
    let snapshot = small_tree(work.path());
    symlink(&target, work.path().join("link.yaml")).unwrap();
    let script = work.path().join("deploy.yaml");
    fs::write(&script, marked).unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o750)).unwrap();
    let output = run_in(work.path(), &snapshot, &["--output", "json"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(fs::read_to_string(&target).unwrap(), marked);
    assert_eq!(
        fs::read_to_string(&script).unwrap(),
        marked.replace("1.0.0", "1.1.0")
    );
    assert_eq!(
        fs::metadata(&script).unwrap().permissions().mode() & 0o777,
        0o750
    );
    let report = json(&output);
    assert!(report["problems"].as_array().unwrap().iter().any(
        |p| p["file"] == "link.yaml" && p["message"].as_str().unwrap().contains("not followed")
    ));
    let leftovers: Vec<_> = fs::read_dir(work.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn include_and_exclude_limit_the_files_edited_but_not_the_policies_read() {
    let work = tempfile::tempdir().unwrap();
    let snapshot = small_tree(work.path());
    let marked = "image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\n";
    for dir in ["apps", "apps/skip", "infra"] {
        fs::create_dir_all(work.path().join(dir)).unwrap();
        fs::write(work.path().join(dir).join("d.yaml"), marked).unwrap();
    }
    let output = run_in(
        work.path(),
        &snapshot,
        &[
            "--include",
            "apps/**",
            "--exclude",
            "apps/skip/*",
            "--output",
            "json",
        ],
    );
    assert_eq!(output.status.code(), Some(0));
    let files: Vec<String> = json(&output)["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert_eq!(files, ["apps/d.yaml"]);
    assert_eq!(
        fs::read_to_string(work.path().join("infra/d.yaml")).unwrap(),
        marked
    );
}

#[test]
fn unreadable_configuration_is_a_usage_error() {
    let work = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["run"])
        .arg(work.path())
        .args(["--registry-snapshot", "/nonexistent.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.json"));
    let out = bin().args(["run", "/nonexistent-dir"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin()
        .args(["run"])
        .arg(work.path())
        .args(["--include", "a/[b"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bin().args(["run", "--output", "xml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_unreachable_registry_fails_only_its_policies() {
    let work = tempfile::tempdir().unwrap();
    small_tree(work.path());
    // Port 1 on loopback: nothing listens, so the connection is refused at once.
    let policy = fs::read_to_string(work.path().join("policy.yaml")).unwrap();
    fs::write(
        work.path().join("policy.yaml"),
        policy.replace("ghcr.io/acme/web", "127.0.0.1:1/acme/web"),
    )
    .unwrap();
    let out = bin()
        .arg("run")
        .arg(work.path())
        .args([
            "--insecure-registry",
            "127.0.0.1:1",
            "--retries",
            "0",
            "--output",
            "json",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    let error = report["policies"][0]["error"].as_str().unwrap();
    assert!(
        error.contains("127.0.0.1:1") && error.contains("cannot connect"),
        "{error}"
    );
}

fn select(args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = bin()
        .arg("select")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn select_prints_the_chosen_tag_as_listed() {
    assert_eq!(
        select(&["--semver", "^1.0", "1.0.0", "v1.2.0", "2.0.0"], "").1,
        "v1.2.0\n"
    );
    assert_eq!(
        select(&["--semver", ">=1.0.0"], "1.2\n1.4\n1.3.5\n").1,
        "1.3.5\n"
    );
    assert_eq!(
        select(
            &["--semver", ">=1.0.0", "--flavor", "argocd"],
            "1.2\n1.4\n1.3.5\n"
        )
        .1,
        "1.4\n"
    );
    assert_eq!(
        select(&["--alphabetical", "desc", "b", "a", "c"], "").1,
        "a\n"
    );
    assert_eq!(select(&["--alphabetical", "b", "a", "c"], "").1, "c\n");
    assert_eq!(
        select(&["--numerical", "--", "-3", "2.5", "2.25"], "").1,
        "2.5\n"
    );
    let (code, out, _) = select(
        &[
            "--numerical",
            "--filter-pattern",
            "^build-(?P<n>[0-9]+)$",
            "--filter-extract",
            "$n",
        ],
        "build-9\nbuild-100\nlatest\n",
    );
    assert_eq!((code, out.as_str()), (Some(0), "build-100\n"));
    assert_eq!(select(&["--alphabetical", "x.sig", "a"], "").1, "a\n");
    assert_eq!(
        select(
            &["--alphabetical", "--exclude-tag", "^a$", "x.sig", "a"],
            ""
        )
        .1,
        "x.sig\n"
    );
}

#[test]
fn select_exit_codes_say_no_match_or_bad_rule() {
    let (code, out, err) = select(&["--semver", ">=3", "1.0.0"], "");
    assert_eq!((code, out.as_str()), (Some(1), ""));
    assert!(err.contains("no tag satisfies semver range >=3"), "{err}");
    let (code, _, err) = select(&["--semver", "1.0.0p", "1.0.0"], "");
    assert_eq!(code, Some(2));
    assert!(err.contains("1.0.0p"), "{err}");
    let (code, _, err) = select(&["--alphabetical", "--filter-pattern", "[=", "a"], "");
    assert_eq!(code, Some(2));
    assert!(err.contains("filterTags.pattern"), "{err}");
    assert_eq!(select(&["1.0.0"], "").0, Some(2));
    assert_eq!(select(&["--numerical", "1", "x"], "").0, Some(1));
}

#[test]
fn select_explain_gives_every_tag_a_reason() {
    let (code, out, err) = select(
        &[
            "--semver",
            "1.x",
            "--explain",
            "1.0.0",
            "1.1.0",
            "2.0.0",
            "latest",
        ],
        "",
    );
    assert_eq!((code, out.as_str()), (Some(0), "1.1.0\n"));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert!(
        lines[1].starts_with("* 1.1.0") && lines[1].contains("chosen by semver 1.x"),
        "{err}"
    );
    assert!(lines[2].contains("2.0.0 is outside 1.x"), "{err}");
    assert!(lines[3].contains("not a version"), "{err}");
    let (code, _, err) = select(&["--semver", ">=5", "--explain", "1.0.0"], "");
    assert_eq!(code, Some(1));
    assert!(err.contains("1.0.0 is outside >=5"), "{err}");
}

#[test]
fn readme_example_command_works_offline() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let command = "cargo run -q -- run examples/flux --registry-snapshot examples/flux.snapshot.json --dry-run --diff";
    assert!(
        readme.contains(command),
        "README no longer shows the example command"
    );
    assert!(
        readme.contains("\nscripts/test.sh\n"),
        "README no longer shows the test command"
    );
    let before = tree(&root.join("examples"));
    let out = bin()
        .current_dir(root)
        .args([
            "run",
            "examples/flux",
            "--registry-snapshot",
            "examples/flux.snapshot.json",
            "--dry-run",
            "--diff",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("+          image: ghcr.io/stefanprodan/podinfo:6.6.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n"), "{stdout}");
    assert!(
        stdout.contains(
            "+      tag: \"7.2.5-alpine\" # {\"$imagepolicy\": \"flux-system:redis:tag\"}\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "infrastructure/ingress.yaml:12:18: warning: marker flux-system:podinfo not applied"
        ),
        "{stdout}"
    );
    assert_eq!(
        tree(&root.join("examples")),
        before,
        "the dry run wrote files"
    );
}

#[test]
fn excluded_files_are_not_parsed_for_markers() {
    let work = tempfile::tempdir().unwrap();
    let snapshot = small_tree(work.path());
    fs::create_dir_all(work.path().join("charts/x/templates")).unwrap();
    let template = "image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\n{{- if .Values.x }}\nx: [\n{{- end }}\n";
    fs::write(work.path().join("charts/x/templates/dep.yaml"), template).unwrap();
    let out = run_in(work.path(), &snapshot, &["--exclude", "charts/**"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run_in(work.path(), &snapshot, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("charts/x/templates/dep.yaml:"));
}

#[test]
fn select_with_an_argo_strategy_is_upstreams_test_command() {
    assert_eq!(
        select(&["--strategy", "semver", "1.2", "1.4", "1.3.5"], "").1,
        "1.4\n"
    );
    assert_eq!(
        select(
            &[
                "--strategy",
                "semver",
                "--constraint",
                "~1.3",
                "1.2",
                "1.4",
                "1.3.5"
            ],
            ""
        )
        .1,
        "1.3.5\n"
    );
    assert_eq!(select(&["--strategy", "name", "b", "a", "c"], "").1, "c\n");
    assert_eq!(
        select(
            &[
                "--strategy",
                "semver",
                "--allow-tags",
                "regexp:^v",
                "--ignore-tags",
                "*-rc*",
                "v1.0",
                "v1.1-rc1",
                "2.0"
            ],
            ""
        )
        .1,
        "v1.0\n"
    );
    let (code, _, err) = select(&["--strategy", "semver", "--allow-tags", "^v", "v1.0"], "");
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = select(&["--strategy", "digest", "latest"], "");
    assert_eq!(code, Some(2), "{err}");

    let work = tempfile::tempdir().unwrap();
    let snapshot = work.path().join("snapshot.json");
    let digest = format!("sha256:{}", "d".repeat(64));
    fs::write(
        &snapshot,
        serde_json::json!({"version": 1, "repositories": {"ghcr.io/acme/web": {
            "tags": ["main-1", "main-2", "main-3", "stable"],
            "created": {"main-1": "2024-03-01T00:00:00Z", "main-2": "2024-05-01T00:00:00Z", "main-3": "2024-04-01T00:00:00Z", "stable": "2024-01-01T00:00:00Z"},
            "platforms": {"main-1": ["linux/amd64", "linux/arm64"], "main-2": ["linux/amd64"], "main-3": ["linux/amd64", "linux/arm64"], "stable": ["linux/amd64"]},
            "digests": {"stable": digest}
        }}})
        .to_string(),
    )
    .unwrap();
    let from = |extra: &[&str]| {
        let mut args = vec![
            "--image",
            "ghcr.io/acme/web",
            "--registry-snapshot",
            snapshot.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        select(&args, "")
    };
    assert_eq!(from(&["--strategy", "newest-build"]).1, "main-2\n");
    assert_eq!(
        from(&["--strategy", "latest", "--platform", "linux/arm64"]).1,
        "main-3\n"
    );
    assert_eq!(
        from(&["--strategy", "digest", "--constraint", "stable"]).1,
        format!("stable@{digest}\n")
    );
}

/// `--allow-downgrade` writes what the rules select, as upstream does: the
/// Flux marker pinned above the policy's choice and the Argo CD application
/// pinned above its range both move down.
#[test]
fn allow_downgrade_restores_upstream_behaviour() {
    let base = fixtures().join("argocd");
    let work = tempfile::tempdir().unwrap();
    copy_tree(&base.join("original"), work.path());
    let snapshot = base.join("snapshot.json");
    let args = [
        "--repo-url",
        "https://git.example.com/org/gitops",
        "--output",
        "json",
    ];
    let guarded = json(&run_in(
        work.path(),
        &snapshot,
        &[&args[..], &["--dry-run"]].concat(),
    ));
    let problems = guarded["problems"].to_string();
    assert_eq!(problems.matches("not downgraded").count(), 2, "{problems}");

    let output = run_in(
        work.path(),
        &snapshot,
        &[&args[..], &["--allow-downgrade"]].concat(),
    );
    assert_eq!(output.status.code(), Some(0));
    let read = |rel: &str| fs::read_to_string(work.path().join(rel)).unwrap();
    assert!(read("clusters/prod/web.yaml").contains("image: ghcr.io/org/web:2.0.0 # {\"$imagepolicy\": \"flux-system:web\"}\n      - name: canary\n        image: ghcr.io/org/web:2.0.0"));
    assert!(
        read("apps/pinned/kustomization.yaml").contains("newTag: 2.1.0"),
        "{}",
        read("apps/pinned/kustomization.yaml")
    );
}

/// `--include` / `--exclude` limit Argo CD write-backs as they limit markers.
#[test]
fn excluded_files_get_no_argo_cd_write_back() {
    let base = fixtures().join("argocd");
    let work = tempfile::tempdir().unwrap();
    copy_tree(&base.join("original"), work.path());
    let output = run_in(
        work.path(),
        &base.join("snapshot.json"),
        &[
            "--repo-url",
            "https://git.example.com/org/gitops",
            "--exclude",
            "apps/**",
            "--output",
            "json",
        ],
    );
    let report = json(&output);
    assert!(
        !work
            .path()
            .join("apps/web/.argocd-source-web.yaml")
            .exists()
    );
    assert_eq!(
        fs::read(work.path().join("apps/api/base/kustomization.yaml")).unwrap(),
        fs::read(base.join("original/apps/api/base/kustomization.yaml")).unwrap()
    );
    let files = report["files"].to_string();
    assert!(!files.contains("apps/"), "{files}");
    assert!(files.contains("argocd/applications.yaml"), "{files}");
    let problems = report["problems"].to_string();
    assert!(
        problems.contains("outside --include/--exclude"),
        "{problems}"
    );
}

/// Issue 11.6: a marker whose ImagePolicy is kept elsewhere is a warning
/// (Flux skips it); `--policies PATH` reads that directory's resources and
/// never edits it, not even a marker there.
#[test]
fn policies_from_another_directory_are_read_but_never_edited() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    let infra = work.path().join("infra");
    fs::create_dir_all(&tree).unwrap();
    fs::create_dir_all(&infra).unwrap();
    let deploy = "image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\n";
    fs::write(tree.join("deploy.yaml"), deploy).unwrap();
    let policies = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: web, namespace: apps}\nspec: {image: ghcr.io/acme/web}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: web, namespace: apps}\nspec:\n  imageRepositoryRef: {name: web}\n  policy: {semver: {range: 1.x}}\n# {\"$imagepolicy\": \"apps:web\"}\nexample: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\n";
    fs::write(infra.join("policies.yaml"), policies).unwrap();
    let snapshot = work.path().join("snapshot.json");
    fs::write(
        &snapshot,
        r#"{"version": 1, "repositories": {"ghcr.io/acme/web": {"tags": ["1.0.0", "1.1.0"]}}}"#,
    )
    .unwrap();

    let alone = run_in(&tree, &snapshot, &["--output", "json"]);
    assert_eq!(alone.status.code(), Some(0));
    let report = json(&alone);
    assert_eq!(report["problems"][0]["severity"], "warning", "{report}");
    assert!(
        report["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no ImagePolicy apps:web in the tree"),
        "{report}"
    );
    assert_eq!(
        fs::read_to_string(tree.join("deploy.yaml")).unwrap(),
        deploy
    );

    let infra_arg = infra.to_str().unwrap();
    let with = run_in(
        &tree,
        &snapshot,
        &["--output", "json", "--policies", infra_arg],
    );
    let report = json(&with);
    assert_eq!(with.status.code(), Some(0), "{report}");
    assert_eq!(
        fs::read_to_string(tree.join("deploy.yaml")).unwrap(),
        deploy.replace("1.0.0", "1.1.0")
    );
    assert_eq!(
        fs::read_to_string(infra.join("policies.yaml")).unwrap(),
        policies
    );
    assert_eq!(
        report["policies"][0]["file"],
        format!("{infra_arg}/policies.yaml")
    );
    assert_eq!(report["files"], serde_json::json!(["deploy.yaml"]));

    // A relative PATH is named `./PATH/...`, which no tree file can be.
    fs::write(tree.join("deploy.yaml"), deploy).unwrap();
    let relative = bin()
        .current_dir(work.path())
        .args(["run", "tree", "--output", "json", "--policies", "infra"])
        .arg("--registry-snapshot")
        .arg(&snapshot)
        .output()
        .unwrap();
    let report = json(&relative);
    assert_eq!(relative.status.code(), Some(0), "{report}");
    assert_eq!(report["policies"][0]["file"], "./infra/policies.yaml");

    let missing = run_in(&tree, &snapshot, &["--policies", "/nonexistent/dir"]);
    assert_eq!(missing.status.code(), Some(2));
}
