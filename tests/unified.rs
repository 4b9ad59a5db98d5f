//! The unified `ImageUpdater` through the real binary: `run` treats a
//! `kind: fluxcd` resource exactly as the Flux resources it stands for, and
//! `create` / `get` / `list` / `delete` manage resources as files without
//! touching other bytes.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_image-update"));
    // No registry cache: every run starts cold, whatever the user's ~/.cache holds.
    command.env("XDG_CACHE_HOME", "/dev/null");
    command
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

const SNAPSHOT: &str = r#"{"version": 1, "repositories": {
  "docker.io/library/nginx": {"tags": ["0.1.0", "0.1.5", "0.2.0", "1.0.0"]},
  "ghcr.io/stefanprodan/podinfo": {"tags": ["5.0.0", "5.0.3", "5.1.0", "6.0.0"]}
}}"#;

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  template:
    spec:
      containers:
        - name: nginx
          image: nginx:0.1.0 # {\"$imagepolicy\": \"demo:demo-nginx\"}
        - name: podinfo
          # {\"$imagepolicy\": \"demo:demo-podinfo\"}
          image: 'ghcr.io/stefanprodan/podinfo:5.0.0'
";

const UNIFIED: &str = "apiVersion: gitops.kubesphere.io/v1alpha1
kind: ImageUpdater
metadata: {name: demo, namespace: demo}
spec:
  images: [\"nginx:^0.1\", \"podinfo=ghcr.io/stefanprodan/podinfo\"]
  kind: fluxcd
  fluxcd:
    interval: 1m
    policy: {semver: {range: 5.0.x}}
    sourceRef: {kind: GitRepository, name: podinfo}
    git:
      checkout: {ref: {branch: main}}
      commit:
        author: {email: bot@example.com, name: bot}
        messageTemplate: '{{range .Updated.Images}}{{println .}}{{end}}'
      push: {branch: main}
    update: {path: ./clusters/my-cluster, strategy: Setters}
";

const FLUX: &str = "apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: demo-nginx, namespace: demo}
spec: {image: nginx, interval: 1m}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: demo-nginx, namespace: demo}
spec: {imageRepositoryRef: {name: demo-nginx}, policy: {semver: {range: ^0.1}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: demo-podinfo, namespace: demo}
spec: {image: ghcr.io/stefanprodan/podinfo, interval: 1m}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: demo-podinfo, namespace: demo}
spec: {imageRepositoryRef: {name: demo-podinfo}, policy: {semver: {range: 5.0.x}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: demo, namespace: demo}
spec:
  interval: 1m
  sourceRef: {kind: GitRepository, name: podinfo}
  git:
    checkout: {ref: {branch: main}}
    commit:
      author: {email: bot@example.com, name: bot}
      messageTemplate: '{{range .Updated.Images}}{{println .}}{{end}}'
    push: {branch: main}
  update: {path: ./clusters/my-cluster, strategy: Setters}
";

fn run_tree(resources: &str) -> (String, serde_json::Value) {
    let (text, report, code) = run_tree_status(resources);
    assert_eq!(code, Some(0), "{report}");
    (text, report)
}

fn run_tree_status(resources: &str) -> (String, serde_json::Value, Option<i32>) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "image-updaters.yaml", resources);
    write(dir.path(), "clusters/my-cluster/web.yaml", DEPLOYMENT);
    write(dir.path(), "clusters/other/web.yaml", DEPLOYMENT);
    write(dir.path(), "snapshot.json", SNAPSHOT);
    let out = bin()
        .arg("run")
        .arg(dir.path())
        .args(["--output", "json", "--registry-snapshot"])
        .arg(dir.path().join("snapshot.json"))
        .output()
        .unwrap();
    let code = out.status.code();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join("clusters/other/web.yaml")).unwrap(),
        DEPLOYMENT,
        "outside update.path"
    );
    (
        fs::read_to_string(dir.path().join("clusters/my-cluster/web.yaml")).unwrap(),
        report,
        code,
    )
}

#[test]
fn run_updates_a_unified_fluxcd_tree_like_the_equivalent_flux_tree() {
    let (unified, unified_report) = run_tree(UNIFIED);
    let (flux, flux_report) = run_tree(FLUX);
    assert_eq!(unified, flux);
    assert_eq!(
        unified,
        DEPLOYMENT
            .replace("nginx:0.1.0", "nginx:0.1.5")
            .replace("podinfo:5.0.0", "podinfo:5.0.3")
    );
    assert_eq!(unified_report["changes"], flux_report["changes"]);
    // Origins point at the unified resource: its images line, for both images.
    let policies = unified_report["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 2);
    for p in policies {
        assert_eq!(p["file"], "image-updaters.yaml");
        assert_eq!(p["line"], 5);
    }
}

#[test]
fn run_reports_an_invalid_unified_resource_with_its_field() {
    let (_, report, code) =
        run_tree_status(&UNIFIED.replace("    policy: {semver: {range: 5.0.x}}\n", ""));
    assert_eq!(code, Some(1));
    let problems = report["problems"].to_string();
    assert!(
        problems.contains(
            "ImageUpdater: spec.images[1]: image \\\"ghcr.io/stefanprodan/podinfo\\\" has no rule"
        ),
        "{problems}"
    );
}

#[test]
fn create_get_list_delete_keep_other_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path();
    let neighbours = "# hand-written, keep me\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\napiVersion: gitops.kubesphere.io/v1alpha1\nkind: ImageUpdater\nmetadata: {name: old, namespace: demo}\nspec: {kind: argocd, images: [nginx], argocd: {app: {name: web}}}\n---\n# tail comment\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}   # odd   spacing\n";
    write(tree, "apps/mixed.yaml", neighbours);
    let create = |args: &[&str]| {
        bin()
            .args(["create"])
            .args(args)
            .arg("--tree")
            .arg(tree)
            .args(["--dir", "managed"])
            .output()
            .unwrap()
    };
    ok(create(&[
        "imageupdater",
        "web",
        "-n",
        "demo",
        "--kind",
        "fluxcd",
        "--image",
        "nginx:^1.0",
        "--update-path",
        "./apps",
    ]));
    assert!(tree.join("managed/demo/imageupdater-web.yaml").is_file());
    ok(create(&[
        "imagerepository",
        "podinfo",
        "--image",
        "ghcr.io/stefanprodan/podinfo",
    ]));
    ok(create(&[
        "imagepolicy",
        "podinfo",
        "--image-ref",
        "podinfo",
        "--select-semver",
        "5.0.x",
    ]));

    // Invalid: the message names the field and the rule; nothing is written.
    let bad = create(&[
        "imageupdater",
        "bad",
        "--kind",
        "argocd",
        "--image",
        "nginx",
        "--app",
        "web",
        "--update-strategy",
        "nginx=newest",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("spec.argocd.update-strategy.nginx: unknown strategy \"newest\"; allowed: semver, newest-build"),
        "{stderr}"
    );
    // A name that exists anywhere in the tree.
    let dup = create(&[
        "imageupdater",
        "old",
        "-n",
        "demo",
        "--kind",
        "argocd",
        "--image",
        "nginx",
        "--app",
        "web",
    ]);
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists in apps/mixed.yaml"));

    let list = ok(bin().arg("list").arg("--tree").arg(tree).output().unwrap());
    for want in [
        "ImageUpdater     demo             old",
        "ImageUpdater     demo             web",
        "ImageRepository  flux-system      podinfo",
        "ImagePolicy      flux-system      podinfo",
    ] {
        assert!(list.contains(want), "{list}");
    }
    let got = ok(bin()
        .args(["get", "imageupdater", "old", "--tree"])
        .arg(tree)
        .output()
        .unwrap());
    assert!(got.starts_with(
        "apiVersion: gitops.kubesphere.io/v1alpha1\nkind: ImageUpdater\nmetadata: {name: old"
    ));

    ok(bin()
        .args(["delete", "imageupdater", "old", "--tree"])
        .arg(tree)
        .output()
        .unwrap());
    assert_eq!(
        fs::read_to_string(tree.join("apps/mixed.yaml")).unwrap(),
        "# hand-written, keep me\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n# tail comment\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: y}   # odd   spacing\n"
    );
    ok(bin()
        .args(["delete", "imageupdater", "web", "--tree"])
        .arg(tree)
        .output()
        .unwrap());
    assert!(!tree.join("managed/demo/imageupdater-web.yaml").exists());
    let missing = bin()
        .args(["get", "imageupdater", "web", "--tree"])
        .arg(tree)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}

const APPLICATION: &str = "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: demo, namespace: demo}
spec:
  source:
    repoURL: https://git.example.com/org/gitops
    path: apps/demo
";

const UNIFIED_ARGO: &str = "apiVersion: gitops.kubesphere.io/v1alpha1
kind: ImageUpdater
metadata: {name: demo, namespace: demo}
spec:
  images: [\"nginx:^0.1\", \"podinfo=ghcr.io/stefanprodan/podinfo\"]
  kind: argocd
  argocd:
    app: {name: demo, namespace: demo}
    write: git
    update-strategy: {podinfo: alphabetical}
    ignore-tags: {podinfo: \"6.*\"}
";

/// The same settings as Argo CD Image Updater annotations.
const ANNOTATED: &str = "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: demo
  namespace: demo
  annotations:
    argocd-image-updater.argoproj.io/image-list: nginx=nginx:^0.1, podinfo=ghcr.io/stefanprodan/podinfo
    argocd-image-updater.argoproj.io/podinfo.update-strategy: alphabetical
    argocd-image-updater.argoproj.io/podinfo.ignore-tags: 6.*
    argocd-image-updater.argoproj.io/write-back-method: git
spec:
  source:
    repoURL: https://git.example.com/org/gitops
    path: apps/demo
";

/// Runs over an Argo CD tree (a Kustomize app pinning both images in its
/// override file); the override file afterwards, and the report.
fn run_argo_tree(resources: &str) -> (String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "argocd.yaml", resources);
    write(
        dir.path(),
        "apps/demo/kustomization.yaml",
        "resources: []\n",
    );
    let override_file = "apps/demo/.argocd-source-demo_demo.yaml";
    write(
        dir.path(),
        override_file,
        "kustomize:\n  images:\n  - nginx:0.1.0\n  - ghcr.io/stefanprodan/podinfo:5.0.0\n",
    );
    write(dir.path(), "snapshot.json", SNAPSHOT);
    let out = bin()
        .arg("run")
        .arg(dir.path())
        .args([
            "--output",
            "json",
            "--repo-url",
            "https://git.example.com/org/gitops",
        ])
        .arg("--registry-snapshot")
        .arg(dir.path().join("snapshot.json"))
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report}");
    (
        fs::read_to_string(dir.path().join(override_file)).unwrap(),
        report,
    )
}

#[test]
fn run_updates_a_unified_argocd_tree_like_the_equivalent_annotations() {
    let (unified, unified_report) = run_argo_tree(&format!("{APPLICATION}---\n{UNIFIED_ARGO}"));
    let (annotated, annotated_report) = run_argo_tree(ANNOTATED);
    assert_eq!(unified, annotated);
    assert_eq!(
        unified,
        "kustomize:\n  images:\n  - nginx:0.1.5\n  - ghcr.io/stefanprodan/podinfo:5.1.0\n"
    );
    let images = |r: &serde_json::Value| r["applications"][0]["images"].clone();
    assert_eq!(images(&unified_report), images(&annotated_report));
    assert_eq!(
        unified_report["applications"][0]["configured_by"],
        "ImageUpdater demo/demo (gitops.kubesphere.io)"
    );
}
