//! The attacks and faults of the hardening issues (15, 18) on the file
//! system, through the real binary: hostile trees whose symbolic links try to
//! lead writes out of the tree, the temporary files an interrupted run
//! leaves behind, the modes of new files, and the messages about files that
//! cannot be read or written as they are.
#![cfg(unix)]

mod support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_image-update"))
}

const REPO_URL: &str = "https://git.example.com/org/gitops.git";

fn snapshot(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("snapshot.json");
    fs::write(
        &path,
        r#"{"version": 1, "repositories": {"nginx": {"tags": ["1.0.0", "1.2.0"]}}}"#,
    )
    .unwrap();
    path
}

fn run(tree: &Path, snapshot: &Path) -> (Output, serde_json::Value) {
    let out = bin()
        .arg("run")
        .arg(tree)
        .args(["--output", "json", "--repo-url", REPO_URL])
        .arg("--registry-snapshot")
        .arg(snapshot)
        .output()
        .unwrap();
    let report = support::json_report(&out);
    (out, report)
}

fn application(annotations: &str, path: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n  namespace: argocd\n  annotations:\n    argocd-image-updater.argoproj.io/image-list: web=nginx:1.x\n    argocd-image-updater.argoproj.io/write-back-method: git\n    argocd-image-updater.argoproj.io/web.force-update: \"true\"\n{annotations}spec:\n  source:\n    repoURL: {REPO_URL}\n    path: {path}\n"
    )
}

fn problems(report: &serde_json::Value) -> String {
    report["problems"].to_string()
}

/// The run failed, saying which link it would not write through.
fn assert_refused(out: &Output, report: &serde_json::Value, link: &str) {
    let problems = problems(report);
    assert!(
        problems.contains(&format!("{link} is a symbolic link")),
        "{problems}"
    );
    assert!(!out.status.success());
}

/// Every file below `dir`, links not followed.
fn listing(dir: &Path) -> Vec<String> {
    let mut all: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    all.sort();
    all
}

#[test]
fn an_argo_override_file_is_not_written_through_a_linked_app_directory() {
    let work = tempfile::tempdir().unwrap();
    let (tree, elsewhere) = (work.path().join("tree"), work.path().join("elsewhere"));
    fs::create_dir_all(elsewhere.join("web")).unwrap();
    fs::write(elsewhere.join("web/kustomization.yaml"), "resources: []\n").unwrap();
    fs::create_dir_all(&tree).unwrap();
    symlink("../elsewhere", tree.join("apps")).unwrap();
    let kustomize = "    argocd-image-updater.argoproj.io/web.kustomize.image-name: nginx\n";
    let app =
        application(kustomize, "apps/web").replace("    path:", "    kustomize: {}\n    path:");
    fs::write(tree.join("app.yaml"), app).unwrap();
    let (out, report) = run(&tree, &snapshot(work.path()));
    assert_eq!(
        listing(&elsewhere),
        ["", "web", "web/kustomization.yaml"],
        "a file was written outside the tree"
    );
    assert_refused(&out, &report, "apps");
}

#[test]
fn a_helm_values_target_through_a_linked_directory_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let (tree, x) = (work.path().join("tree"), work.path().join("x"));
    fs::create_dir_all(&x).unwrap();
    fs::create_dir_all(tree.join("chart")).unwrap();
    fs::write(tree.join("chart/Chart.yaml"), "name: web\n").unwrap();
    symlink("../x", tree.join("escape")).unwrap();
    let annotations = "    argocd-image-updater.argoproj.io/web.helm.image-name: image.repository\n    argocd-image-updater.argoproj.io/web.helm.image-tag: image.tag\n    argocd-image-updater.argoproj.io/write-back-target: helmvalues:/escape/.bashrc\n";
    fs::write(tree.join("app.yaml"), application(annotations, "chart")).unwrap();
    let (out, report) = run(&tree, &snapshot(work.path()));
    assert_eq!(listing(&x), [""], "a file was written outside the tree");
    assert_refused(&out, &report, "escape");
}

#[test]
fn create_refuses_a_namespace_directory_that_is_a_link() {
    let work = tempfile::tempdir().unwrap();
    let (tree, x) = (work.path().join("tree"), work.path().join("x"));
    fs::create_dir_all(&x).unwrap();
    fs::create_dir_all(&tree).unwrap();
    symlink("../x", tree.join("escape")).unwrap();
    let out = bin()
        .args([
            "create",
            "imagerepository",
            "web",
            "--image",
            "nginx",
            "-n",
            "escape",
            "--tree",
        ])
        .arg(&tree)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("escape is a symbolic link"), "{stderr}");
    assert_eq!(listing(&x), [""], "a file was written outside the tree");
}

#[test]
fn a_new_override_file_gets_touch_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    fs::create_dir_all(tree.join("apps/web")).unwrap();
    fs::write(tree.join("apps/web/kustomization.yaml"), "resources: []\n").unwrap();
    fs::write(tree.join("app.yaml"), application("", "apps/web")).unwrap();
    let (out, report) = run(&tree, &snapshot(work.path()));
    assert!(out.status.success(), "{report}");
    let created = tree.join("apps/web/.argocd-source-web.yaml");
    let mode = fs::metadata(&created).unwrap().permissions().mode() & 0o777;
    let umask = {
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
        u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
    };
    assert_eq!(mode, 0o666 & !umask, "{mode:o}");
}

#[test]
fn stale_temporary_files_are_removed_and_fresh_ones_left_alone() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    let marked = "image: nginx:1.0.0 # {\"$imagepolicy\": \"flux-system:web\"}\n";
    let stale = tree.join(".a.yaml.image-update-4242-0.tmp");
    let fresh = tree.join(".a.yaml.image-update-4242-1.tmp");
    for t in [&stale, &fresh] {
        fs::write(t, marked).unwrap();
    }
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    // A dry run writes nothing, and removes nothing either.
    let out = bin()
        .arg("run")
        .arg(&tree)
        .arg("--dry-run")
        .arg("--registry-snapshot")
        .arg(snapshot(work.path()))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(stale.exists(), "a dry run removed a file");
    let (_, report) = run(&tree, &snapshot(work.path()));
    assert!(!stale.exists(), "the stale temporary file is still there");
    assert!(fresh.exists(), "a young temporary file may be in use");
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]["message"]
            .as_str()
            .unwrap()
            .contains("removed a stale temporary file"),
        "{problems:?}"
    );
}

fn text_run(tree: &Path, snapshot: &Path, extra: &[&str]) -> (Output, String) {
    let out = bin()
        .arg("run")
        .arg(tree)
        .arg("--registry-snapshot")
        .arg(snapshot)
        .args(extra)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, text)
}

const FLUX: &str = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: web, namespace: flux-system}\nspec: {image: nginx}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: web, namespace: flux-system}\nspec: {imageRepositoryRef: {name: web}, policy: {semver: {range: 1.x}}}\n";
const MARKED: &str = "image: nginx:1.0.0 # {\"$imagepolicy\": \"flux-system:web\"}\n";

#[test]
fn a_file_that_is_not_utf8_is_reported_with_its_line() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("policy.yaml"), FLUX).unwrap();
    let mut bytes = b"a: 1\nb: ab\xff\n".to_vec();
    bytes.extend_from_slice(MARKED.as_bytes());
    fs::write(tree.join("a.yaml"), &bytes).unwrap();
    let (_, text) = text_run(&tree, &snapshot(work.path()), &[]);
    assert!(text.contains("a.yaml:2:6: error: not UTF-8 text"), "{text}");
}

#[test]
fn a_utf16_file_with_markers_is_reported_not_skipped() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("policy.yaml"), FLUX).unwrap();
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(MARKED.encode_utf16().flat_map(u16::to_le_bytes));
    fs::write(tree.join("a.yaml"), &bytes).unwrap();
    let (out, text) = text_run(&tree, &snapshot(work.path()), &[]);
    assert!(
        text.contains("a.yaml: error: UTF-16 text (byte-order mark FF FE)"),
        "{text}"
    );
    assert!(!out.status.success());
    assert_eq!(fs::read(tree.join("a.yaml")).unwrap(), bytes);
}

#[test]
fn a_read_only_file_is_reported_not_rewritten() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("policy.yaml"), FLUX).unwrap();
    let file = tree.join("a.yaml");
    fs::write(&file, MARKED).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o444)).unwrap();
    let (out, text) = text_run(&tree, &snapshot(work.path()), &[]);
    assert!(
        text.contains(
            "a.yaml: error: cannot write: refusing to write a.yaml: the file is read-only"
        ),
        "{text}"
    );
    assert!(!out.status.success());
    assert_eq!(fs::read_to_string(&file).unwrap(), MARKED);
}

#[test]
fn file_names_with_line_breaks_and_escapes_are_escaped_in_text_and_diff() {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("policy.yaml"), FLUX).unwrap();
    let name = "x\nerror: forged\u{1b}[31m.yaml";
    fs::write(tree.join(name), MARKED).unwrap();
    let (out, text) = text_run(&tree, &snapshot(work.path()), &["--dry-run", "--diff"]);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("error: forged")),
        "{text}"
    );
    assert!(
        text.contains("x\\nerror: forged\\u{1b}[31m.yaml:1: would change"),
        "{text}"
    );
    assert!(
        text.contains("--- \"a/x\\nerror: forged\\033[31m.yaml\""),
        "{text}"
    );
}

/// Hardening 15.10: `get -o json` showed YAML aliases as `null`.
#[test]
fn get_as_json_resolves_yaml_aliases() {
    let work = tempfile::tempdir().unwrap();
    fs::write(
        work.path().join("updater.yaml"),
        "apiVersion: gitops.kubesphere.io/v1alpha1\nkind: ImageUpdater\nmetadata: {name: web, namespace: demo}\nspec:\n  kind: argocd\n  images: &images [nginx]\n  argocd:\n    app: {name: &app web}\n    note: *app\n  copy: *images\n",
    )
    .unwrap();
    let out = bin()
        .args([
            "get",
            "imageupdater",
            "web",
            "-n",
            "demo",
            "-o",
            "json",
            "--tree",
        ])
        .arg(work.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let object: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(object["spec"]["copy"], serde_json::json!(["nginx"]));
    assert_eq!(object["spec"]["argocd"]["note"], "web");
}
