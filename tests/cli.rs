//! End-to-end tests through the real binary.
//!
//! Fixtures are `testdata/fixtures/<name>/{original,expected}/` directory pairs
//! with a `snapshot.json` and the expected JSON report (`report.json`). Set
//! `UPDATE_FIXTURES=1` to rewrite `expected/` and `report.json` from the
//! current behaviour, then review the diff before committing it.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_image-update"));
    // No registry cache: every run starts cold, whatever the user's ~/.cache holds.
    command.env("XDG_CACHE_HOME", "/dev/null");
    command
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

/// Issue 17: the `clusters/production` + `clusters/staging` layout. Each
/// cluster declares the same automation, repository and policy names; each
/// cluster's automation updates its own files with its own policy (staging
/// takes prereleases, production does not), byte-identical copies work, and
/// a marker outside every `update.path` is named with both automations. The
/// same for Argo CD: an Application and an ImageUpdater per cluster, each
/// copy updating its own path with its own cluster's constraint, and
/// byte-identical Application copies writing one override file once.
#[test]
fn fixture_clusters_declare_the_same_names_per_cluster() {
    fixture("clusters", 0);
}

/// Issue 17: Helm chart templates that mention `argocd.argoproj.io/hook` or
/// `image.toolkit.fluxcd.io` are not YAML and hold nothing to read: no
/// error, and the run succeeds. A template declaring Argo CD Applications
/// gets a note.
#[test]
fn fixture_helm_templates_in_the_tree_are_not_errors() {
    fixture("templates", 0);
}

/// Issue 17: `--exclude` silences every file it excludes, even `'**'`, and
/// an unparsable file that declares a Flux resource is still an error when
/// it is not excluded.
#[test]
fn exclude_silences_unparsable_files() {
    let work = tempfile::tempdir().unwrap();
    let base = fixtures().join("templates");
    copy_tree(&base.join("original"), work.path());
    let broken = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: x\n";
    fs::write(work.path().join("clusters/prod/broken.yaml"), broken).unwrap();
    let snapshot = base.join("snapshot.json");
    let output = run_in(work.path(), &snapshot, &["--dry-run", "--output", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let problems = json(&output)["problems"].clone();
    let errors: Vec<&str> = problems
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["severity"] == "error")
        .map(|p| p["file"].as_str().unwrap())
        .collect();
    assert_eq!(errors, ["clusters/prod/broken.yaml"], "{problems}");
    for exclude in ["**", "clusters/prod/broken.yaml"] {
        let output = run_in(
            work.path(),
            &snapshot,
            &[
                "--dry-run",
                "--output",
                "json",
                "--exclude",
                exclude,
                "--exclude",
                "charts/**",
            ],
        );
        assert_eq!(output.status.code(), Some(0), "--exclude {exclude}");
        assert_eq!(
            json(&output)["problems"],
            serde_json::json!([]),
            "--exclude {exclude}"
        );
    }
}

/// Issue 17: two clusters whose automations both reach the whole tree
/// (`update.path: ./`) and declare the same policy name with different
/// ranges really compete for a marker outside both: an error, nothing
/// written; a policy both declare alike is applied.
#[test]
fn two_declarations_reaching_the_same_file_and_disagreeing_are_a_conflict() {
    let work = tempfile::tempdir().unwrap();
    let snapshot = small_tree(work.path());
    fs::remove_file(work.path().join("policy.yaml")).unwrap();
    let declarations = |range: &str| {
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata: {{name: auto, namespace: apps}}\nspec: {{update: {{path: ./}}}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: web, namespace: apps}}\nspec: {{image: ghcr.io/acme/web}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: web, namespace: apps}}\nspec: {{imageRepositoryRef: {{name: web}}, policy: {{semver: {{range: '{range}'}}}}}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: same, namespace: apps}}\nspec: {{imageRepositoryRef: {{name: web}}, policy: {{semver: {{range: 1.x}}}}}}\n"
        )
    };
    for (cluster, range) in [("a", "1.0.x"), ("b", "1.x")] {
        put(
            work.path(),
            &format!("clusters/{cluster}/flux.yaml"),
            &declarations(range),
        );
    }
    let app = "a: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\nb: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:same\"}\n";
    put(work.path(), "apps/d.yaml", app);
    let output = run_in(work.path(), &snapshot, &["--output", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let report = json(&output);
    assert_eq!(
        report["problems"][0]["message"],
        "marker apps:web: policy apps:web is declared at clusters/a/flux.yaml:11 and at clusters/b/flux.yaml:11, both reach this file and they disagree (ghcr.io/acme/web:1.0.0 against ghcr.io/acme/web:1.1.0); left unchanged",
        "{report}"
    );
    assert_eq!(report["problems"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(
        fs::read_to_string(work.path().join("apps/d.yaml")).unwrap(),
        app.replace(
            "1.0.0 # {\"$imagepolicy\": \"apps:same",
            "1.1.0 # {\"$imagepolicy\": \"apps:same"
        )
    ); // The text report says which declaration each result is.
    let text = run_in(work.path(), &snapshot, &["--dry-run"]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains(
            "policy apps:web: ghcr.io/acme/web:1.0.0 (semver 1.0.x, clusters/a/flux.yaml:11)\n"
        ) && text.contains(
            "policy apps:web: ghcr.io/acme/web:1.1.0 (semver 1.x, clusters/b/flux.yaml:11)\n"
        ),
        "{text}"
    );
}

/// Issue 17, Argo CD shapes of real repositories: a chart from a Helm
/// repository with a `ref: values` source and a `helmvalues:` target
/// (annotations), a single chart source with `gitConfig.repository`
/// naming this repository (ImageUpdater, upstream's documented set-up), a
/// Kustomize source listed before the Helm source with a values target
/// (upstream's test 1-003), a bare `.yaml` target, and a Kustomize app whose
/// image is only in the manifests its kustomization reaches (the override
/// file is created); an image found nowhere is a warning, not a silent skip.
#[test]
fn fixture_argocd_sources_of_real_repositories() {
    fixture("argocd-sources", 0);
}

/// Issue 17.4 with issue 16.2's rule: the image an application runs is
/// found in its manifests as upstream's `ContainsImage` finds it in the
/// live image list (registry-scanner/pkg/image/image.go:169): a reference
/// of the Kustomize name first, wherever it is, then of the image, with
/// the registry as written (`docker.io/library/nginx` is not `nginx`, so
/// that image is not found and not written).
#[test]
fn the_running_image_is_found_by_upstreams_rule() {
    let work = tempfile::tempdir().unwrap();
    let snapshot = work.path().join("snapshot.json");
    fs::write(
        &snapshot,
        r#"{"version": 1, "repositories": {"ghcr.io/acme/web": {"tags": ["1.0.0", "1.1.0"]}, "docker.io/library/nginx": {"tags": ["1.0.0", "1.1.0"]}}}"#,
    )
    .unwrap();
    put(
        work.path(),
        "app.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n  namespace: argocd\n  annotations:\n    argocd-image-updater.argoproj.io/image-list: web=ghcr.io/acme/web:1.x, proxy=nginx:1.x\n    argocd-image-updater.argoproj.io/web.kustomize.image-name: web\n    argocd-image-updater.argoproj.io/write-back-method: git\nspec:\n  source:\n    repoURL: https://git.example.com/org/gitops\n    path: apps/web\n",
    );
    put(
        work.path(),
        "apps/web/kustomization.yaml",
        "resources:\n- sidecar.yaml\n- deployment.yaml\n",
    );
    put(
        work.path(),
        "apps/web/sidecar.yaml",
        "kind: Pod\nspec:\n  containers:\n  - image: ghcr.io/acme/web:0.9.0\n  - image: docker.io/library/nginx:1.0.0\n",
    );
    put(
        work.path(),
        "apps/web/deployment.yaml",
        "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - image: web:1.0.0\n",
    );
    let output = run_in(
        work.path(),
        &snapshot,
        &[
            "--repo-url",
            "https://git.example.com/org/gitops",
            "--output",
            "json",
        ],
    );
    let report = json(&output);
    assert_eq!(output.status.code(), Some(0), "{report}");
    let images = &report["applications"][0]["images"];
    assert_eq!(images[0]["current"], "web:1.0.0", "{report}");
    assert_eq!(
        images[0]["current_from"], "apps/web/deployment.yaml",
        "{report}"
    );
    assert_eq!(images[0]["new"], "ghcr.io/acme/web:1.1.0", "{report}");
    assert_eq!(images[1]["current"], serde_json::Value::Null, "{report}");
    assert_eq!(images[1]["new"], serde_json::Value::Null, "{report}");
    assert!(
        images[1]["note"]
            .as_str()
            .unwrap()
            .starts_with("not written: no current value found"),
        "{report}"
    );
    assert_eq!(
        fs::read_to_string(work.path().join("apps/web/.argocd-source-web.yaml")).unwrap(),
        "kustomize:\n  images:\n  - web=ghcr.io/acme/web:1.1.0\n"
    );
}

/// A source path with neither a chart nor a kustomization is named, with
/// what to check.
#[test]
fn a_missing_application_path_is_named_with_what_to_do() {
    let work = tempfile::tempdir().unwrap();
    let snapshot = small_tree(work.path());
    fs::write(
        work.path().join("app.yaml"),
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n  namespace: argocd\n  annotations:\n    argocd-image-updater.argoproj.io/image-list: ghcr.io/acme/web\nspec:\n  source:\n    repoURL: https://git.example.com/org/gitops\n    path: apps/webb\n",
    )
    .unwrap();
    let output = run_in(
        work.path(),
        &snapshot,
        &[
            "--repo-url",
            "https://git.example.com/org/gitops",
            "--output",
            "json",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let report = json(&output);
    let message = report["problems"][0]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "spec.source.path \"apps/webb\": no Chart.yaml and no kustomization file there"
        ) && message.contains("check that spec.source.path names a directory of this repository"),
        "{report}"
    );
}

/// Issue 17: two copies of one Argo CD Application that update the same
/// path and disagree compete for its override file: an error, nothing
/// written.
#[test]
fn two_application_copies_writing_one_file_and_disagreeing_are_a_conflict() {
    let work = tempfile::tempdir().unwrap();
    let snapshot = small_tree(work.path());
    fs::remove_file(work.path().join("policy.yaml")).unwrap();
    let app = |constraint: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n  namespace: argocd\n  annotations:\n    argocd-image-updater.argoproj.io/image-list: ghcr.io/acme/web:{constraint}\n    argocd-image-updater.argoproj.io/write-back-method: git\nspec:\n  source:\n    repoURL: https://git.example.com/org/gitops\n    path: apps/web\n"
        )
    };
    for (cluster, constraint) in [("a", "1.0.x"), ("b", "1.x")] {
        put(
            work.path(),
            &format!("{cluster}/app.yaml"),
            &app(constraint),
        );
    }
    put(
        work.path(),
        "apps/web/kustomization.yaml",
        "images:\n- name: ghcr.io/acme/web\n  newTag: 0.9.0\n",
    );
    let output = run_in(
        work.path(),
        &snapshot,
        &[
            "--repo-url",
            "https://git.example.com/org/gitops",
            "--output",
            "json",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let report = json(&output);
    assert_eq!(
        report["problems"][0]["message"],
        "Application argocd/web is declared at a/app.yaml:1 and at b/app.yaml:1, both write apps/web/.argocd-source-web.yaml and they disagree; apps/web/.argocd-source-web.yaml is left unchanged",
        "{report}"
    );
    assert_eq!(report["files"], serde_json::json!([]));
    assert!(
        !work
            .path()
            .join("apps/web/.argocd-source-web.yaml")
            .exists()
    );
}

/// Identical copies of one Argo CD Application (one per cluster folder)
/// write its override file once; the text report says and counts that one
/// change, not one per copy.
#[test]
fn identical_application_copies_are_one_change_in_the_text_report() {
    let work = tempfile::tempdir().unwrap();
    let snapshot = small_tree(work.path());
    fs::remove_file(work.path().join("policy.yaml")).unwrap();
    let app = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n  namespace: argocd\n  annotations:\n    argocd-image-updater.argoproj.io/image-list: ghcr.io/acme/web:1.x\n    argocd-image-updater.argoproj.io/write-back-method: git\nspec:\n  source:\n    repoURL: https://git.example.com/org/gitops\n    path: apps/web\n";
    for cluster in ["a", "b"] {
        put(work.path(), &format!("clusters/{cluster}/app.yaml"), app);
    }
    put(
        work.path(),
        "apps/web/kustomization.yaml",
        "images:\n- name: ghcr.io/acme/web\n  newTag: 0.9.0\n",
    );
    let output = run_in(
        work.path(),
        &snapshot,
        &["--repo-url", "https://git.example.com/org/gitops"],
    );
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(0), "{text}");
    let line = "apps/web/.argocd-source-web.yaml: application argocd/web image ghcr.io/acme/web: changed ghcr.io/acme/web:0.9.0 -> ghcr.io/acme/web:1.1.0\n";
    assert_eq!(text.matches(line).count(), 1, "{text}");
    assert!(
        text.ends_with("0 policies, 2 applications, 1 change in 1 file\n"),
        "{text}"
    );
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

/// Writes `text` at `rel` under `dir`, creating its directories.
fn put(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
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
    let out = support::output_with_stdin(bin().arg("select").args(args), stdin);
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

/// One bundled example: its directory under `examples/`, the extra flags its
/// README command takes, and every change a real run makes to it.
struct Example {
    dir: &'static str,
    flags: &'static [&'static str],
    /// (file, old line, new line); `old` is `None` for a file the run creates,
    /// and `new` is then its whole content.
    changes: &'static [(&'static str, Option<&'static str>, &'static str)],
}

const EXAMPLES: [Example; 3] = [
    Example {
        dir: "flux",
        flags: &[],
        changes: &[
            (
                "apps/podinfo/deployment.yaml",
                Some(
                    "image: ghcr.io/stefanprodan/podinfo:6.5.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}",
                ),
                "image: ghcr.io/stefanprodan/podinfo:6.6.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}",
            ),
            (
                "apps/redis/release.yaml",
                Some("tag: \"7.2.3-alpine\" # {\"$imagepolicy\": \"flux-system:redis:tag\"}"),
                "tag: \"7.2.5-alpine\" # {\"$imagepolicy\": \"flux-system:redis:tag\"}",
            ),
        ],
    },
    Example {
        dir: "argocd",
        flags: &["--repo-url", "https://github.com/example/gitops"],
        changes: &[
            (
                "apps/api/kustomization.yaml",
                Some("newTag: 1.4.0   # set by the image updater"),
                "newTag: 1.5.2   # set by the image updater",
            ),
            (
                "apps/web/.argocd-source-web.yaml",
                None,
                "helm:\n  parameters:\n  - name: image.repository\n    value: ghcr.io/stefanprodan/podinfo\n    forcestring: true\n  - name: image.tag\n    value: 6.6.0\n    forcestring: true\n",
            ),
        ],
    },
    Example {
        dir: "unified",
        flags: &["--repo-url", "https://github.com/example/gitops"],
        changes: &[
            (
                "apps/api/.argocd-source-api.yaml",
                None,
                "kustomize:\n  images:\n  - ghcr.io/example/api:1.5.2\n",
            ),
            (
                "apps/frontend/deployment.yaml",
                Some(
                    "image: ghcr.io/stefanprodan/podinfo:6.5.0 # {\"$imagepolicy\": \"apps:frontend-podinfo\"}",
                ),
                "image: ghcr.io/stefanprodan/podinfo:6.6.0 # {\"$imagepolicy\": \"apps:frontend-podinfo\"}",
            ),
        ],
    },
];

/// README's "Try it" shows one command per dialect; run each for real (in a
/// temporary copy, without `--dry-run --diff`) and check that exactly the
/// promised files change, exactly as promised.
#[test]
fn readme_examples_of_every_dialect_change_exactly_what_they_show() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    for example in &EXAMPLES {
        let dir = example.dir;
        let snapshot = format!("{dir}.snapshot.json");
        let mut args = vec![
            "run".to_string(),
            dir.to_string(),
            "--registry-snapshot".into(),
            snapshot.clone(),
        ];
        args.extend(example.flags.iter().map(|f| f.to_string()));
        let flags: String = example.flags.iter().map(|f| format!(" {f}")).collect();
        let command = format!(
            "cargo run -q -- run examples/{dir} --registry-snapshot examples/{snapshot}{flags} --dry-run --diff"
        );
        assert!(
            readme.contains(&command),
            "README does not show `{command}`"
        );

        let work = tempfile::tempdir().unwrap();
        copy_tree(&root.join("examples").join(dir), &work.path().join(dir));
        fs::copy(
            root.join("examples").join(&snapshot),
            work.path().join(&snapshot),
        )
        .unwrap();
        let before = tree(&work.path().join(dir));
        let out = bin().current_dir(work.path()).args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{dir}: {}",
            String::from_utf8_lossy(&out.stdout)
        );

        let mut expected = before.clone();
        for (file, old, new) in example.changes {
            let text = match old {
                Some(old) => {
                    let text = String::from_utf8(before[*file].clone()).unwrap();
                    assert_eq!(text.matches(old).count(), 1, "{dir}/{file}");
                    text.replace(old, new)
                }
                None => {
                    assert!(!before.contains_key(*file), "{dir}/{file}");
                    new.to_string()
                }
            };
            expected.insert(file.to_string(), text.into_bytes());
        }
        let after = tree(&work.path().join(dir));
        assert_eq!(as_text(&after), as_text(&expected), "{dir}");
    }
}

fn as_text(files: &BTreeMap<String, Vec<u8>>) -> BTreeMap<&str, String> {
    files
        .iter()
        .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v).into_owned()))
        .collect()
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

/// Issue 18.3: kubectl, kustomize and Flux refuse a mapping that repeats a
/// key; such a file is reported with its line and left alone.
#[test]
fn a_file_with_a_duplicate_key_is_reported_and_left_alone() {
    let work = tempfile::tempdir().unwrap();
    let snapshot = small_tree(work.path());
    let text = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\n  replicas: 1\n  image: other:1\n";
    fs::write(work.path().join("deploy.yaml"), text).unwrap();
    let good = "image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\n";
    fs::write(work.path().join("good.yaml"), good).unwrap();
    let out = run_in(work.path(), &snapshot, &["--output", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let problem = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["file"] == "deploy.yaml")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(problem["line"], 6, "{report}");
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("duplicate key \"image\""),
        "{report}"
    );
    assert_eq!(
        fs::read_to_string(work.path().join("deploy.yaml")).unwrap(),
        text
    );
    assert_eq!(
        fs::read_to_string(work.path().join("good.yaml")).unwrap(),
        good.replace("1.0.0", "1.1.0")
    );
}

/// A file whose only fault is a repeated key is YAML, not a template,
/// even when a value mentions `{{` (an automation's message template): it
/// is an error, not a note, or the automation would be dropped and every
/// policy would apply everywhere with exit 0.
#[test]
fn a_repeated_key_in_a_file_with_a_message_template_is_an_error() {
    let work = tempfile::tempdir().unwrap();
    let snapshot = small_tree(work.path());
    put(
        work.path(),
        "automation.yaml",
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata: {name: apps, namespace: apps}\nspec:\n  interval: 5m\n  interval: 10m\n  git:\n    commit:\n      messageTemplate: '{{range .Changed.Changes}}{{.NewValue}} {{end}}'\n  update: {path: ./deploy, strategy: Setters}\n",
    );
    let marked = "image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\n";
    put(work.path(), "elsewhere/deploy.yaml", marked);
    let output = run_in(work.path(), &snapshot, &["--output", "json"]);
    let report = json(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let problem = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["file"] == "automation.yaml")
        .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(
        (&problem["severity"], &problem["line"]),
        (&serde_json::json!("error"), &serde_json::json!(6)),
        "{report}"
    );
    assert!(
        problem["message"]
            .as_str()
            .unwrap()
            .contains("duplicate key \"interval\""),
        "{report}"
    );
    assert!(
        !problem["message"].as_str().unwrap().contains("--exclude"),
        "{report}"
    );
}

/// A cluster folder whose policy file cannot be read (a repeated key) is
/// not updated with another folder's copy of the policy: its own copy may
/// be in that file. Production stays as it is; staging is updated.
#[test]
fn an_unreadable_cluster_copy_is_not_replaced_by_another_clusters() {
    let work = tempfile::tempdir().unwrap();
    let policy = |range: &str, extra: &str| {
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: web, namespace: apps}}\nspec: {{image: ghcr.io/acme/web}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: web, namespace: apps}}\nspec:\n  imageRepositoryRef: {{name: web}}\n  policy: {{semver: {{range: {range}}}}}\n{extra}"
        )
    };
    put(
        work.path(),
        "clusters/production/policy.yaml",
        &policy("1.0.x", "  policy: {semver: {range: 1.0.x}}\n"),
    );
    put(
        work.path(),
        "clusters/staging/policy.yaml",
        &policy("1.x", ""),
    );
    let deploy = "image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\n";
    for cluster in ["production", "staging"] {
        put(
            work.path(),
            &format!("clusters/{cluster}/deploy.yaml"),
            deploy,
        );
    }
    let snapshot = work.path().join("snapshot.json");
    fs::write(
        &snapshot,
        r#"{"version": 1, "repositories": {"ghcr.io/acme/web": {"tags": ["1.0.0", "1.0.1", "1.1.0"]}}}"#,
    )
    .unwrap();
    let output = run_in(work.path(), &snapshot, &["--output", "json"]);
    let report = json(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let read = |c: &str| {
        fs::read_to_string(work.path().join(format!("clusters/{c}/deploy.yaml"))).unwrap()
    };
    assert_eq!(read("production"), deploy, "{report}");
    assert_eq!(
        read("staging"),
        deploy.replace("1.0.0", "1.1.0"),
        "{report}"
    );
    let problems = report["problems"].to_string();
    assert!(
        problems.contains("clusters/production/policy.yaml cannot be read and is nearer to this file than the declaration of policy apps:web at clusters/staging/policy.yaml:6"),
        "{report}"
    );

    // The policy is read but its folder's ImageRepository file is not: the
    // policy fails rather than use staging's repository.
    put(
        work.path(),
        "clusters/production/policy.yaml",
        policy("1.0.x", "").split_once("---\n").unwrap().1,
    );
    put(
        work.path(),
        "clusters/production/repository.yaml",
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: web, namespace: apps}\nspec: {image: ghcr.io/acme/web}\nspec: {image: ghcr.io/acme/web}\n",
    );
    let output = run_in(work.path(), &snapshot, &["--output", "json"]);
    let report = json(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert_eq!(read("production"), deploy, "{report}");
    assert!(
        report["policies"].to_string().contains("clusters/production/repository.yaml cannot be read and is nearer to this policy than the declaration at clusters/staging/policy.yaml:1"),
        "{report}"
    );
    fs::remove_file(work.path().join("clusters/production/repository.yaml")).unwrap();
    put(
        work.path(),
        "clusters/production/policy.yaml",
        &policy("1.0.x", "  policy: {semver: {range: 1.0.x}}\n"),
    );

    // With an automation per cluster, production's uses no other copy.
    for cluster in ["production", "staging"] {
        put(
            work.path(),
            &format!("clusters/{cluster}/deploy.yaml"),
            deploy,
        );
        put(
            work.path(),
            &format!("clusters/{cluster}/automation.yaml"),
            &format!(
                "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata: {{name: auto, namespace: apps}}\nspec:\n  update: {{path: ./clusters/{cluster}, strategy: Setters}}\n"
            ),
        );
    }
    let output = run_in(work.path(), &snapshot, &["--output", "json"]);
    let report = json(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert_eq!(read("production"), deploy, "{report}");
    assert_eq!(
        read("staging"),
        deploy.replace("1.0.0", "1.1.0"),
        "{report}"
    );
}

/// The Argo CD side: a cluster folder whose ImageUpdater file cannot be
/// read gets an error for its application, not the other folder's copy.
#[test]
fn an_unreadable_image_updater_copy_leaves_its_folders_application_alone() {
    let work = tempfile::tempdir().unwrap();
    let snapshot = small_tree(work.path());
    fs::remove_file(work.path().join("policy.yaml")).unwrap();
    let updater = "apiVersion: argocd-image-updater.argoproj.io/v1alpha1\nkind: ImageUpdater\nmetadata: {name: updater, namespace: argocd}\nspec:\n  writeBackConfig: {method: git}\n  applicationRefs:\n  - namePattern: web\n    images:\n    - alias: web\n      imageName: ghcr.io/acme/web:1.x\n";
    put(work.path(), "clusters/b/updater.yaml", updater);
    put(
        work.path(),
        "clusters/a/updater.yaml",
        &format!("{updater}  writeBackConfig: {{method: git}}\n"),
    );
    for c in ["a", "b"] {
        put(
            work.path(),
            &format!("clusters/{c}/app.yaml"),
            &format!(
                "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: web, namespace: argocd}}\nspec:\n  source: {{repoURL: \"https://git.example.com/org/gitops\", path: apps/{c}}}\n"
            ),
        );
        put(
            work.path(),
            &format!("apps/{c}/kustomization.yaml"),
            "images:\n- name: ghcr.io/acme/web\n  newTag: 1.0.0\n",
        );
    }
    let output = run_in(
        work.path(),
        &snapshot,
        &[
            "--repo-url",
            "https://git.example.com/org/gitops",
            "--output",
            "json",
        ],
    );
    let report = json(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert_eq!(
        report["files"],
        serde_json::json!(["apps/b/.argocd-source-web.yaml"]),
        "{report}"
    );
    assert!(
        report["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["file"] == "clusters/a/app.yaml"
                && p["severity"] == "error"
                && p["message"]
                    .as_str()
                    .unwrap()
                    .contains("clusters/a/updater.yaml cannot be read")),
        "{report}"
    );
}

#[test]
fn a_helm_template_that_does_not_parse_suggests_exclude() {
    let work = tempfile::tempdir().unwrap();
    let snapshot = small_tree(work.path());
    fs::create_dir_all(work.path().join("charts/x/templates")).unwrap();
    let template = "image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\n{{- if .Values.x }}\nx: [\n{{- end }}\n";
    fs::write(work.path().join("charts/x/templates/dep.yaml"), template).unwrap();
    let out = run_in(work.path(), &snapshot, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--exclude 'charts/x/templates/**'"), "{text}");
}

/// Issue 15: a tag that is not a valid OCI tag was chosen by some strategies
/// (then refused, failing the policy) and skipped by others. It is skipped
/// by every one, before selection, and counted in a warning.
#[test]
fn an_invalid_tag_is_skipped_under_every_strategy() {
    let work = tempfile::tempdir().unwrap();
    let mut docs = String::new();
    let mut values = String::new();
    for (name, policy) in [
        ("alpha", "{alphabetical: {}}"),
        ("num", "{numerical: {order: asc}}"),
        ("ver", "{semver: {range: '>=1'}}"),
    ] {
        docs.push_str(&format!("apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: {name}, namespace: apps}}\nspec: {{image: ghcr.io/acme/{name}}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: {name}, namespace: apps}}\nspec: {{imageRepositoryRef: {{name: {name}}}, policy: {policy}}}\n---\n"));
        values.push_str(&format!(
            "{name}: ghcr.io/acme/{name}:1 # {{\"$imagepolicy\": \"apps:{name}\"}}\n"
        ));
    }
    fs::write(work.path().join("policies.yaml"), docs).unwrap();
    fs::write(work.path().join("values.yaml"), values).unwrap();
    let snapshot = work.path().join("snapshot.json");
    fs::write(
        &snapshot,
        r#"{"version": 1, "repositories": {
            "ghcr.io/acme/alpha": {"tags": ["1", "2", "zz top"]},
            "ghcr.io/acme/num": {"tags": ["1", "2", "3\n"]},
            "ghcr.io/acme/ver": {"tags": ["1.0.0", "2.0.0", "3.0.0+a/b", "-4.0.0"]}}}"#,
    )
    .unwrap();
    let out = run_in(work.path(), &snapshot, &["--output", "json"]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let tag = |policy: &str| {
        report["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["policy"] == policy)
            .map(|p| p["tag"].clone())
    };
    assert_eq!(tag("apps:alpha"), Some("2".into()), "{report}");
    assert_eq!(tag("apps:num"), Some("2".into()), "{report}");
    assert_eq!(tag("apps:ver"), Some("2.0.0".into()), "{report}");
    let warnings: Vec<&str> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["message"].as_str())
        .filter(|m| m.contains("valid OCI tag"))
        .collect();
    assert_eq!(warnings.len(), 3, "{report}");
    assert!(
        warnings.contains(
            &"ghcr.io/acme/ver: skipped 2 listed tags that are not valid OCI tags (\"3.0.0+a/b\", \"-4.0.0\")"
        ),
        "{warnings:?}"
    );
}

#[test]
fn select_with_an_image_skips_an_invalid_listed_tag() {
    let work = tempfile::tempdir().unwrap();
    let snapshot = work.path().join("snapshot.json");
    fs::write(
        &snapshot,
        r#"{"version": 1, "repositories": {"ghcr.io/acme/web": {"tags": ["1", "2", "zz top"]}}}"#,
    )
    .unwrap();
    let (code, stdout, stderr) = select(
        &[
            "--strategy",
            "alphabetical",
            "--image",
            "ghcr.io/acme/web",
            "--registry-snapshot",
            snapshot.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!((code, stdout.as_str()), (Some(0), "2\n"), "{stderr}");
    assert!(
        stderr.contains("skipped 1 listed tag that is not a valid OCI tag (\"zz top\")"),
        "{stderr}"
    );
}

/// Tags given on the command line or standard input are screened as
/// `run` and `select --image` screen a registry's: an invalid OCI tag is
/// skipped and counted in a warning, under Flux's rules and Argo CD's.
#[test]
fn select_skips_an_invalid_tag_given_as_an_argument_or_on_stdin() {
    let skipped = "skipped 1 listed tag that is not a valid OCI tag (\"zz top\")";
    let (code, out, err) = select(&["--alphabetical", "asc", "1", "2", "zz top"], "");
    assert_eq!((code, out.as_str()), (Some(0), "2\n"), "{err}");
    assert!(err.contains(skipped), "{err}");
    let (code, out, err) = select(&["--strategy", "alphabetical"], "1\n2\nzz top\n");
    assert_eq!((code, out.as_str()), (Some(0), "2\n"), "{err}");
    assert!(err.contains(skipped), "{err}");
    let (code, out, err) = select(&["--semver", "*"], "1.0.0\n2.0.0+a/b\n");
    assert_eq!((code, out.as_str()), (Some(0), "1.0.0\n"), "{err}");
    assert!(
        err.contains("skipped 1 listed tag that is not a valid OCI tag (\"2.0.0+a/b\")"),
        "{err}"
    );
}

/// Cluster copies kept in a `--policies` directory with the tree's layout
/// (`clusters/a`, `clusters/b`): each cluster's markers use the copy of
/// their own cluster, the path inside the directory being compared with
/// the tree's, as if the directory were the tree.
#[test]
fn cluster_copies_in_a_policies_directory_are_matched_by_their_path_inside_it() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    let infra = work.path().join("infra");
    let policy = |range: &str| {
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: web, namespace: apps}}\nspec: {{image: ghcr.io/acme/web}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: web, namespace: apps}}\nspec: {{imageRepositoryRef: {{name: web}}, policy: {{semver: {{range: {range}}}}}}}\n"
        )
    };
    let deploy = "image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\n";
    for (cluster, range) in [("a", "1.0.x"), ("b", "1.x")] {
        put(
            &infra,
            &format!("clusters/{cluster}/policy.yaml"),
            &policy(range),
        );
        put(&tree, &format!("clusters/{cluster}/deploy.yaml"), deploy);
    }
    let snapshot = work.path().join("snapshot.json");
    fs::write(
        &snapshot,
        r#"{"version": 1, "repositories": {"ghcr.io/acme/web": {"tags": ["1.0.0", "1.0.1", "1.1.0"]}}}"#,
    )
    .unwrap();
    for infra_arg in [infra.to_str().unwrap(), "../infra"] {
        for cluster in ["a", "b"] {
            put(&tree, &format!("clusters/{cluster}/deploy.yaml"), deploy);
        }
        let output = bin()
            .current_dir(&tree)
            .args(["run", ".", "--output", "json", "--policies", infra_arg])
            .arg("--registry-snapshot")
            .arg(&snapshot)
            .output()
            .unwrap();
        let report = json(&output);
        assert_eq!(output.status.code(), Some(0), "{report}");
        let read =
            |c: &str| fs::read_to_string(tree.join(format!("clusters/{c}/deploy.yaml"))).unwrap();
        assert_eq!(read("a"), deploy.replace("1.0.0", "1.0.1"), "{report}");
        assert_eq!(read("b"), deploy.replace("1.0.0", "1.1.0"), "{report}");
    }
}

/// An Application kept in a `--policies` directory (write-back `git`) is
/// read from there for its own `kustomize.images`: the current value, and
/// the images the override file carries, as for one in the tree.
#[test]
fn an_application_in_a_policies_directory_gives_its_own_kustomize_images() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    let infra = work.path().join("infra");
    put(
        &infra,
        "app.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n  namespace: argocd\n  annotations:\n    argocd-image-updater.argoproj.io/image-list: ghcr.io/acme/web:1.x\n    argocd-image-updater.argoproj.io/write-back-method: git\nspec:\n  source:\n    repoURL: https://git.example.com/org/gitops\n    path: apps/web\n    kustomize:\n      images:\n      - ghcr.io/acme/web:1.0.0\n      - ghcr.io/acme/side:2.0.0\n",
    );
    put(&tree, "apps/web/kustomization.yaml", "resources: []\n");
    let snapshot = small_tree(work.path());
    let output = run_in(
        &tree,
        &snapshot,
        &[
            "--repo-url",
            "https://git.example.com/org/gitops",
            "--output",
            "json",
            "--policies",
            infra.to_str().unwrap(),
        ],
    );
    let report = json(&output);
    assert_eq!(output.status.code(), Some(0), "{report}");
    let image = &report["applications"][0]["images"][0];
    assert_eq!(image["current"], "ghcr.io/acme/web:1.0.0", "{report}");
    assert_eq!(
        fs::read_to_string(tree.join("apps/web/.argocd-source-web.yaml")).unwrap(),
        "kustomize:\n  images:\n  - ghcr.io/acme/web:1.1.0\n  - ghcr.io/acme/side:2.0.0\n"
    );
}

/// `--policies` files are read as the tree's are, unparsable ones too: a
/// file there that declares our resources but is not YAML (a repeated key)
/// is an error naming it, not passed over in silence as an `--exclude`d
/// tree file is (the run would otherwise only warn that the policy is not
/// found, and exit 0).
#[test]
fn an_unparsable_policies_file_is_an_error() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    let infra = work.path().join("infra");
    let deploy = "image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\n";
    put(&tree, "deploy.yaml", deploy);
    put(
        &infra,
        "policies.yaml",
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: web, namespace: apps}\nspec:\n  imageRepositoryRef: {name: web}\n  policy: {semver: {range: 1.x}}\n  policy: {semver: {range: 2.x}}\n",
    );
    put(
        &infra,
        "chart/templates/hook.yaml",
        "metadata:\n  annotations:\n    argocd.argoproj.io/hook: {{ .Values.hook }}\n",
    );
    let snapshot = small_tree(work.path());
    let infra_arg = infra.to_str().unwrap();
    let output = run_in(
        &tree,
        &snapshot,
        &["--output", "json", "--policies", infra_arg],
    );
    let report = json(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let problems = report["problems"].as_array().unwrap();
    let file = format!("{infra_arg}/policies.yaml");
    assert!(
        problems.iter().any(|p| p["file"] == file.as_str()
            && p["severity"] == "error"
            && p["line"] == 7
            && p["message"].as_str().unwrap().contains("malformed YAML")),
        "{report}"
    );
    assert!(
        !problems
            .iter()
            .any(|p| p["file"].as_str().unwrap_or_default().contains("hook.yaml")),
        "{report}"
    );
    assert_eq!(
        fs::read_to_string(tree.join("deploy.yaml")).unwrap(),
        deploy
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
