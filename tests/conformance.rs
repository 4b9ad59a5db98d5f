//! The `kind: setters` and digest cases of testdata/conformance/flux-cases.yaml,
//! run through the whole engine: each resolved policy of a case becomes an
//! ImageRepository + ImagePolicy in the tree and a one-tag repository in the
//! registry, so marker finding, scoping, planning and rewriting are all real.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use image_update::image::Repository;
use image_update::registry::snapshot::Snapshot;
use image_update::registry::{Registry, RegistryError, TagRef};
use image_update::scan::Filter;
use image_update::update::{self, RunOptions};
use image_update::yaml::{Node, parse};

const CASES: &str = include_str!("../testdata/conformance/flux-cases.yaml");

/// Counts the digest look-ups a run makes.
struct Counting {
    inner: Snapshot,
    digest_lookups: AtomicUsize,
}

impl Registry for Counting {
    fn tags(&self, repositories: &[Repository]) -> Vec<Result<Vec<String>, RegistryError>> {
        self.inner.tags(repositories)
    }
    fn digests(&self, tags: &[TagRef]) -> Vec<Result<String, RegistryError>> {
        self.digest_lookups.fetch_add(tags.len(), Ordering::Relaxed);
        self.inner.digests(tags)
    }
    fn created(&self, tags: &[TagRef], platform: &str) -> Vec<Result<String, RegistryError>> {
        self.inner.created(tags, platform)
    }
    fn platforms(&self, tags: &[TagRef]) -> Vec<Result<Vec<String>, RegistryError>> {
        self.inner.platforms(tags)
    }
}

fn text(node: &Node, path: &[&str]) -> String {
    node.str_at(path).unwrap_or_default().to_string()
}

fn run(dir: &Path, registry: &mut dyn Registry) -> image_update::outcome::Report {
    let options = RunOptions {
        root: dir.to_path_buf(),
        dry_run: false,
        diff: false,
        filter: Filter::default(),
        // The tables record upstream behaviour, downgrades included.
        allow_downgrade: true,
        ..RunOptions::default()
    };
    update::run(&options, registry).report
}

#[test]
fn flux_setter_conformance_cases() {
    let stream = parse(CASES).unwrap();
    let cases = stream.documents[0].root.get("cases").unwrap().items();
    let mut ran = 0;
    for case in cases
        .iter()
        .filter(|c| c.str_at(&["kind"]) == Some("setters"))
    {
        let name = text(case, &["name"]);
        let input = case.get("input").unwrap();
        let expected = case.get("expected").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut resources = String::new();
        let mut snapshot = serde_json::Map::new();
        for p in input.get("policies").unwrap().items() {
            let (ns, policy) = (text(p, &["namespace"]), text(p, &["name"]));
            let latest = p.get("latestRef").unwrap();
            let image = if latest.is_null() {
                format!("example.com/{policy}-pending")
            } else {
                text(latest, &["name"])
            };
            let digest = latest.str_at(&["digest"]);
            resources.push_str(&format!(
                "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: {policy}, namespace: {ns}}}\nspec: {{image: {image}}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: {policy}, namespace: {ns}}}\nspec:\n  imageRepositoryRef: {{name: {policy}}}\n  policy: {{alphabetical: {{}}}}\n  digestReflectionPolicy: {}\n",
                // The API server wants an interval with Always.
                if digest.is_some() { "Always\n  interval: 5m" } else { "Never" }
            ));
            let tags: Vec<String> = latest
                .str_at(&["tag"])
                .into_iter()
                .map(String::from)
                .collect();
            let digests: BTreeMap<String, String> = match (tags.first(), digest) {
                (Some(t), Some(d)) => BTreeMap::from([(t.clone(), d.to_string())]),
                _ => BTreeMap::new(),
            };
            snapshot.insert(image, serde_json::json!({"tags": tags, "digests": digests}));
        }
        fs::create_dir_all(dir.path().join("flux-system")).unwrap();
        fs::write(dir.path().join("flux-system/policies.yaml"), resources).unwrap();
        let files = input.get("files").unwrap();
        for (file, content) in files.entries() {
            let path = dir.path().join(file.as_str().unwrap());
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, content.as_str().unwrap()).unwrap();
        }
        let mut registry = Snapshot::parse(
            &serde_json::json!({"version": 1, "repositories": snapshot}).to_string(),
        )
        .unwrap();
        let report = run(dir.path(), &mut registry);

        for (file, content) in files.entries() {
            let file = file.as_str().unwrap();
            let want = expected
                .get("files")
                .and_then(|f| f.get(file))
                .and_then(Node::as_str)
                .unwrap_or(content.as_str().unwrap());
            let got = fs::read_to_string(dir.path().join(file)).unwrap();
            assert_eq!(got, want, "case {name}: {file}");
        }
        let changes: Vec<(String, String, String, String, String, String)> = report
            .changes
            .iter()
            .map(|c| {
                let setter = if c.setter == "image" {
                    c.policy.to_string()
                } else {
                    format!("{}:{}", c.policy, c.setter)
                };
                (
                    c.file.clone(),
                    c.object.kind.clone(),
                    c.object.name.clone(),
                    setter,
                    c.old.clone(),
                    c.new.clone(),
                )
            })
            .collect();
        let want: Vec<_> = expected
            .get("changes")
            .unwrap()
            .items()
            .iter()
            .map(|c| {
                (
                    text(c, &["file"]),
                    text(c, &["object", "kind"]),
                    text(c, &["object", "name"]),
                    text(c, &["setter"]),
                    text(c, &["old"]),
                    text(c, &["new"]),
                )
            })
            .collect();
        assert_eq!(changes, want, "case {name}: changes");
        ran += 1;
    }
    assert!(ran >= 15, "only {ran} setter cases ran");
}

#[test]
fn flux_digest_reflection_cases() {
    let stream = parse(CASES).unwrap();
    let cases = stream.documents[0].root.get("cases").unwrap().items();
    let mut ran = 0;
    for case in cases.iter().filter(|c| {
        c.get("input")
            .and_then(|i| i.get("digestReflectionPolicy"))
            .is_some()
    }) {
        let name = text(case, &["name"]);
        let input = case.get("input").unwrap();
        let expected = case.get("expected").unwrap();
        let image = text(input, &["image"]);
        let range = text(input, &["policy", "semver", "range"]);
        let previous = input.get("previousLatestRef").unwrap();
        let current = match previous.str_at(&["digest"]) {
            Some(d) if !d.is_empty() => format!("{image}:{}@{d}", text(previous, &["tag"])),
            _ => format!("{image}:{}", text(previous, &["tag"])),
        };
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("policy.yaml"),
            format!(
                "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: web, namespace: apps}}\nspec: {{image: {image}}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: web, namespace: apps}}\nspec:\n  imageRepositoryRef: {{name: web}}\n  policy: {{semver: {{range: '{range}'}}}}\n  digestReflectionPolicy: {}\n",
                text(input, &["digestReflectionPolicy"])
            ),
        )
        .unwrap();
        fs::write(
            dir.path().join("deploy.yaml"),
            format!("image: {current} # {{\"$imagepolicy\": \"apps:web\"}}\n"),
        )
        .unwrap();
        let tags: Vec<&str> = input
            .get("tags")
            .unwrap()
            .items()
            .iter()
            .filter_map(Node::as_str)
            .collect();
        let digests: BTreeMap<&str, &str> = input
            .get("registryDigests")
            .unwrap()
            .entries()
            .iter()
            .map(|(k, v)| (k.as_str().unwrap(), v.as_str().unwrap()))
            .collect();
        let snapshot = serde_json::json!({"version": 1, "repositories": {image.clone(): {"tags": tags, "digests": digests}}});
        let mut registry = Counting {
            inner: Snapshot::parse(&snapshot.to_string()).unwrap(),
            digest_lookups: AtomicUsize::new(0),
        };
        let report = run(dir.path(), &mut registry);
        let outcome = &report.policies[0];
        assert_eq!(
            outcome.tag.as_deref(),
            expected.str_at(&["latest"]),
            "case {name}"
        );
        assert_eq!(
            outcome.digest.as_deref(),
            expected.str_at(&["latestRef", "digest"]),
            "case {name}"
        );
        let lookups: usize = text(expected, &["registryDigestLookups"]).parse().unwrap();
        assert_eq!(
            registry.digest_lookups.load(Ordering::Relaxed),
            lookups,
            "case {name}: digest look-ups"
        );
        ran += 1;
    }
    assert!(ran >= 2, "only {ran} digest cases ran");
}

#[test]
fn if_not_present_keeps_the_pinned_digest_without_asking() {
    let dir = tempfile::tempdir().unwrap();
    let pinned = format!("sha256:{}", "1".repeat(64));
    fs::write(
        dir.path().join("policy.yaml"),
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: web, namespace: apps}\nspec: {image: ghcr.io/acme/web}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: web, namespace: apps}\nspec:\n  imageRepositoryRef: {name: web}\n  policy: {semver: {range: '1.x'}}\n  digestReflectionPolicy: IfNotPresent\n",
    )
    .unwrap();
    let deploy =
        format!("image: ghcr.io/acme/web:1.2.4@{pinned} # {{\"$imagepolicy\": \"apps:web\"}}\n");
    fs::write(dir.path().join("deploy.yaml"), &deploy).unwrap();
    let snapshot = serde_json::json!({"version": 1, "repositories": {"ghcr.io/acme/web": {"tags": ["1.2.4"], "digests": {"1.2.4": format!("sha256:{}", "2".repeat(64))}}}});
    let mut registry = Counting {
        inner: Snapshot::parse(&snapshot.to_string()).unwrap(),
        digest_lookups: AtomicUsize::new(0),
    };
    let report = run(dir.path(), &mut registry);
    assert_eq!(registry.digest_lookups.load(Ordering::Relaxed), 0);
    assert_eq!(report.policies[0].digest.as_deref(), Some(pinned.as_str()));
    assert_eq!(
        fs::read_to_string(dir.path().join("deploy.yaml")).unwrap(),
        deploy
    );
}
