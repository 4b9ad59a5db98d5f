//! Argo CD Image Updater settings resolved against a real registry (Debian's
//! `docker-registry`, behind a counting proxy): one application per update
//! strategy, `newest-build` and `digest` on multi-platform images, written
//! to `.argocd-source-<app>.yaml` files, in a tree that also holds Flux
//! markers for one of the same repositories.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::proxy::{Action, Proxy};
use support::{RegistryOptions, Seed};

const REPO_URL: &str = "https://git.example.com/org/gitops.git";

fn seed() -> Seed {
    Seed::new()
        .image("acme/web", "1.0.0", "2024-01-01T00:00:00Z")
        .image("acme/web", "1.1.0", "2024-02-01T00:00:00Z")
        .image("acme/web", "1.2.0", "2024-03-01T00:00:00Z")
        .image("acme/web", "2.0.0", "2024-04-01T00:00:00Z")
        .image("acme/worker", "build-a", "2024-01-01T00:00:00Z")
        .index(
            "acme/worker",
            "build-c",
            &[
                ("linux/amd64", "2024-03-01T00:00:00Z"),
                ("linux/arm64", "2024-03-01T00:00:00Z"),
            ],
        )
        // The newest build exists for arm64 only.
        .image_for(
            "acme/worker",
            "build-d",
            "2024-04-01T00:00:00Z",
            "linux/arm64",
        )
        .index(
            "acme/edge",
            "stable",
            &[
                ("linux/amd64", "2024-05-01T00:00:00Z"),
                ("linux/arm64", "2024-05-01T00:00:00Z"),
            ],
        )
        .image("acme/edge", "canary", "2024-05-02T00:00:00Z")
        .image("acme/tools", "a-9", "2024-01-01T00:00:00Z")
        .image("acme/tools", "c-1", "2024-01-01T00:00:00Z")
        .image("acme/tools", "b-5", "2024-01-01T00:00:00Z")
}

/// One Kustomize application: `apps/<name>` with a kustomization and an
/// override file pinning `image` at `current`.
fn app(dir: &Path, name: &str, image: &str, current: &str, annotations: &[(&str, &str)]) -> String {
    let path = dir.join("apps").join(name);
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("kustomization.yaml"), "resources: []\n").unwrap();
    std::fs::write(
        path.join(format!(".argocd-source-{name}.yaml")),
        format!("kustomize:\n  images:\n  - {image}:{current}\n"),
    )
    .unwrap();
    let mut lines = format!(
        "    argocd-image-updater.argoproj.io/write-back-method: git\n    argocd-image-updater.argoproj.io/image-list: {name}={image}{}\n",
        annotations
            .iter()
            .find(|(k, _)| *k == "constraint")
            .map(|(_, v)| format!(":{v}"))
            .unwrap_or_default()
    );
    for (key, value) in annotations.iter().filter(|(k, _)| *k != "constraint") {
        lines.push_str(&format!(
            "    argocd-image-updater.argoproj.io/{name}.{key}: \"{value}\"\n"
        ));
    }
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\n  annotations:\n{lines}spec:\n  source:\n    repoURL: {REPO_URL}\n    path: apps/{name}\n"
    )
}

fn run(dir: &Path, args: &[&str]) -> (Output, serde_json::Value) {
    run_with(dir, args, &[])
}

/// `image-update SUBCOMMAND DIR` for this repository, with no credentials
/// but those `env` gives.
fn command(subcommand: &str, dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_image-update"));
    command
        .arg(subcommand)
        .arg(dir)
        .args(["--repo-url", REPO_URL])
        .env("HOME", dir)
        // No registry cache: every run starts cold, whatever the user's ~/.cache holds.
        .env("XDG_CACHE_HOME", "/dev/null")
        .env_remove("DOCKER_CONFIG")
        .env_remove("DOCKER_AUTH_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .envs(env.iter().copied());
    command
}

fn run_with(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, serde_json::Value) {
    let out = command("run", dir, env)
        .args(["--output", "json"])
        .args(args)
        .output()
        .unwrap();
    let report = support::json_report(&out);
    (out, report)
}

fn outcome<'a>(report: &'a serde_json::Value, app: &str) -> &'a serde_json::Value {
    report["applications"]
        .as_array()
        .unwrap_or_else(|| panic!("no applications in {report}"))
        .iter()
        .find(|a| a["application"] == format!("argocd/{app}"))
        .map(|a| &a["images"][0])
        .unwrap_or_else(|| panic!("no application {app} in {report}"))
}

fn override_file(dir: &Path, app: &str) -> String {
    std::fs::read_to_string(dir.join(format!("apps/{app}/.argocd-source-{app}.yaml"))).unwrap()
}

#[test]
fn every_strategy_against_a_real_registry_with_flux_markers_in_the_same_tree() {
    let (registry, seeded) = seed().start(RegistryOptions::new());
    let proxy = Proxy::start(&registry.base_url(), |_, _| Action::Forward);
    let host = proxy.host();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let image = |repo: &str| format!("{host}/acme/{repo}");
    every_strategy_applications(d, &host);
    // Flux reads the same web repository.
    std::fs::write(
        d.join("flux.yaml"),
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: web, namespace: apps}}\nspec: {{image: {}}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: web, namespace: apps}}\nspec:\n  imageRepositoryRef: {{name: web}}\n  policy: {{semver: {{range: '>=1.0.0'}}}}\n",
            image("web")
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("deploy.yaml"),
        format!(
            "image: {}:1.0.0 # {{\"$imagepolicy\": \"apps:web\"}}\n",
            image("web")
        ),
    )
    .unwrap();

    let (out, report) = run(d, &["--insecure-registry", &host]);
    assert_eq!(out.status.code(), Some(0), "{report}");

    // semver: ~1 stays below 2.0.0.
    assert_eq!(
        outcome(&report, "web")["new"],
        format!("{}:1.2.0", image("web"))
    );
    assert!(override_file(d, "web").contains(&format!("- {}:1.2.0\n", image("web"))));
    // newest-build: build-d is newer but not built for linux/amd64.
    assert_eq!(outcome(&report, "worker")["selected"], "build-c");
    assert!(override_file(d, "worker").contains(":build-c\n"));
    // ...and is the pick when arm64 is asked for.
    assert_eq!(outcome(&report, "worker-arm")["selected"], "build-d");
    // digest: follows `stable` to the digest of its index.
    let digest = seeded.digest("acme/edge", "stable");
    assert_eq!(
        outcome(&report, "edge")["new"],
        format!("{}:stable@{digest}", image("edge"))
    );
    assert!(override_file(d, "edge").contains(&format!(":stable@{digest}\n")));
    // alphabetical: byte order of the names.
    assert_eq!(outcome(&report, "tools")["selected"], "c-1");
    // The Flux marker moved with the same tag list.
    assert_eq!(
        std::fs::read_to_string(d.join("deploy.yaml")).unwrap(),
        format!(
            "image: {}:2.0.0 # {{\"$imagepolicy\": \"apps:web\"}}\n",
            image("web")
        )
    );
    // Each repository was listed once, though Flux and two applications
    // read acme/web and two applications read acme/worker.
    for repo in ["web", "worker", "edge", "tools"] {
        assert_eq!(
            proxy.count("GET", &format!("/v2/acme/{repo}/tags/list")),
            1,
            "{repo}"
        );
    }

    // Manifests are read only where a strategy needs them: none for semver
    // and alphabetical (and the Flux policy reflects no digest), and for
    // `digest` only the tag it follows.
    let manifests = |repo: &str| {
        let prefix = format!("/v2/acme/{repo}/manifests/");
        proxy.count("GET", &prefix) + proxy.count("HEAD", &prefix)
    };
    assert_eq!((manifests("web"), manifests("tools")), (0, 0));
    assert!(manifests("edge") > 0);
    assert_eq!(
        proxy.count("GET", "/v2/acme/edge/manifests/canary")
            + proxy.count("HEAD", "/v2/acme/edge/manifests/canary"),
        0
    );
    assert!(manifests("worker") > 0);

    // A second run finds everything up to date and writes nothing.
    let (out, again) = run(d, &["--insecure-registry", &host]);
    assert_eq!(out.status.code(), Some(0), "{again}");
    assert_eq!(again["files"], serde_json::json!([]), "{again}");
}

#[test]
fn digest_without_a_tag_to_follow_is_an_error_that_writes_nothing() {
    let (registry, _) = seed().start(RegistryOptions::new());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let image = format!("{}/acme/edge", registry.host());
    std::fs::write(
        d.join("applications.yaml"),
        app(
            d,
            "edge",
            &image,
            "stable",
            &[("update-strategy", "digest")],
        ),
    )
    .unwrap();
    let before = override_file(d, "edge");
    let (out, report) = run(d, &["--insecure-registry", &registry.host()]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        image_error(&report).contains("needs a tag to follow"),
        "{report}"
    );
    assert_eq!(override_file(d, "edge"), before);
}

fn image_error(report: &serde_json::Value) -> String {
    report["applications"][0]["images"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn pull_secrets_from_the_environment_and_a_program_cluster_secrets_reported() {
    let (registry, _) = seed().start(RegistryOptions::new().htpasswd(&[("robot", "s3cr3t:pw")]));
    let host = registry.host();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let web = format!("{host}/acme/web");
    let script = d.join("login.sh");
    std::fs::write(&script, "#!/bin/sh\necho 'robot:s3cr3t:pw'\n").unwrap();
    std::process::Command::new("chmod")
        .args(["+x", script.to_str().unwrap()])
        .status()
        .unwrap();
    let run_app = |pull_secret: &str, env: &[(&str, &str)]| {
        std::fs::write(
            d.join("applications.yaml"),
            app(
                d,
                "web",
                &web,
                "1.0.0",
                &[("constraint", "~1"), ("pull-secret", pull_secret)],
            ),
        )
        .unwrap();
        run_with(d, &["--insecure-registry", &host, "--dry-run"], env)
    };

    let (out, report) = run_app(
        "env:REGISTRY_SECRET",
        &[("REGISTRY_SECRET", "robot:s3cr3t:pw")],
    );
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(outcome(&report, "web")["selected"], "1.2.0");
    // `snapshot` asks as `run` does, with the pull secret.
    let out_dir = tempfile::tempdir().unwrap();
    let snapshot = out_dir.path().join("snapshot.json");
    let out = command("snapshot", d, &[("REGISTRY_SECRET", "robot:s3cr3t:pw")])
        .args([
            "-o",
            snapshot.to_str().unwrap(),
            "--insecure-registry",
            &host,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&snapshot).unwrap()).unwrap();
    let tags = file["repositories"][&web]["tags"].to_string();
    assert!(tags.contains("\"1.2.0\""), "{file}");

    let ext = format!("ext:{}", script.display());
    let (out, report) = run_app(&ext, &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(outcome(&report, "web")["selected"], "1.2.0");

    let (out, report) = run_app("env:REGISTRY_SECRET", &[("REGISTRY_SECRET", "robot:wrong")]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let text = report.to_string();
    assert!(
        !text.contains("s3cr3t") && !text.contains("wrong"),
        "{text}"
    );

    // A cluster Secret cannot be read: said so, and the docker config is
    // used instead (here there is none, so the registry refuses).
    let (out, report) = run_app("secret:argocd/registry#creds", &[]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let problems = report["problems"].to_string();
    assert!(
        problems.contains("cluster Secret") && problems.contains("docker config"),
        "{problems}"
    );
    assert!(image_error(&report).contains("401"), "{report}");
}

/// One application per strategy (two for newest-build, one of them for
/// arm64) on the seeded repositories of `host`, in `applications.yaml`.
fn every_strategy_applications(d: &Path, host: &str) {
    let image = |repo: &str| format!("{host}/acme/{repo}");
    let apps = [
        app(d, "web", &image("web"), "1.0.0", &[("constraint", "~1")]),
        app(
            d,
            "worker",
            &image("worker"),
            "build-a",
            &[("update-strategy", "newest-build")],
        ),
        app(
            d,
            "worker-arm",
            &image("worker"),
            "build-a",
            &[("update-strategy", "latest"), ("platforms", "linux/arm64")],
        ),
        app(
            d,
            "edge",
            &image("edge"),
            "stable",
            &[("constraint", "stable"), ("update-strategy", "digest")],
        ),
        app(
            d,
            "tools",
            &image("tools"),
            "a-9",
            &[("update-strategy", "alphabetical")],
        ),
    ];
    std::fs::write(d.join("applications.yaml"), apps.join("---\n")).unwrap();
}

/// Every strategy, Flux markers beside (one reflecting digests), in `dir`.
fn every_strategy_tree(d: &Path, host: &str) {
    let image = |repo: &str| format!("{host}/acme/{repo}");
    every_strategy_applications(d, host);
    std::fs::write(
        d.join("flux.yaml"),
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: web, namespace: apps}}\nspec: {{image: {}}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: web, namespace: apps}}\nspec:\n  imageRepositoryRef: {{name: web}}\n  policy: {{semver: {{range: '>=1.0.0'}}}}\n  digestReflectionPolicy: Always\n  interval: 5m\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: tools, namespace: apps}}\nspec: {{image: {}}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: tools, namespace: apps}}\nspec:\n  imageRepositoryRef: {{name: tools}}\n  policy: {{alphabetical: {{order: desc}}}}\n",
            image("web"),
            image("tools"),
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("deploy.yaml"),
        format!(
            "web: {}:1.0.0 # {{\"$imagepolicy\": \"apps:web\"}}\ntools: {}:c-1 # {{\"$imagepolicy\": \"apps:tools\"}}\n",
            image("web"),
            image("tools")
        ),
    )
    .unwrap();
}

fn files_of(dir: &Path) -> std::collections::BTreeMap<String, String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(dir).unwrap().display().to_string(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Issue 11: `snapshot` with the run's flags records every fact the rules
/// use, and a replay of it gives the same report and the same files as the
/// live run; a fact the snapshot lacks fails the image by name.
#[test]
fn a_replay_of_a_snapshot_equals_the_live_run() {
    let (registry, _) = seed().start(RegistryOptions::new());
    let host = registry.host();
    let (live_dir, replay_dir, files) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    every_strategy_tree(live_dir.path(), &host);
    every_strategy_tree(replay_dir.path(), &host);
    let snap = files.path().join("snapshot.json");
    let recorded = command("snapshot", live_dir.path(), &[])
        .args(["--insecure-registry", &host, "-o"])
        .arg(&snap)
        .output()
        .unwrap();
    assert_eq!(
        recorded.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&recorded.stdout)
    );

    let (out, mut live) = run(live_dir.path(), &["--insecure-registry", &host]);
    assert_eq!(out.status.code(), Some(0), "{live}");
    // What the run cost the registries is the one thing a replay, which
    // sends no request, does not repeat.
    assert!(
        live["requests"].as_array().is_some_and(|r| !r.is_empty()),
        "{live}"
    );
    live.as_object_mut().unwrap().remove("requests");
    let (out, replay) = run(
        replay_dir.path(),
        &["--registry-snapshot", snap.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{replay}");
    assert_eq!(replay, live);
    assert_eq!(files_of(replay_dir.path()), files_of(live_dir.path()));
    assert_eq!(live["files"].as_array().unwrap().len(), 6, "{live}");
    // The arm64 build date of an index is its own fact.
    let text = std::fs::read_to_string(&snap).unwrap();
    assert!(text.contains("\"created_for\""), "{text}");

    // A snapshot that lacks a fact (here: the build dates of acme/worker,
    // as one recorded for Flux only would) fails the images that need it,
    // naming repository, tag and fact, instead of choosing without it.
    let mut lacking: serde_json::Value = serde_json::from_str(&text).unwrap();
    let worker_repo = format!("{host}/acme/worker");
    let entry = lacking["repositories"][&worker_repo]
        .as_object_mut()
        .unwrap();
    assert!(entry.remove("created").is_some(), "{text}");
    let bare = files.path().join("bare.json");
    std::fs::write(&bare, lacking.to_string()).unwrap();
    let (out, replay) = run(
        replay_dir.path(),
        &["--registry-snapshot", bare.to_str().unwrap(), "--dry-run"],
    );
    assert_eq!(out.status.code(), Some(1), "{replay}");
    let worker = outcome(&replay, "worker");
    assert!(worker["new"].is_null(), "{replay}");
    let error = worker["error"].as_str().unwrap();
    assert!(
        error.contains(&worker_repo)
            && error.contains("build date (created) for linux/amd64")
            && error.contains("tag \"build-a\""),
        "{error}"
    );
}
