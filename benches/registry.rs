//! Benchmark against a real registry (not a timed test): starts Debian's
//! `docker-registry` with its access log on, fills it with N repositories of
//! M tags, generates a tree of K manifests whose markers point at them, and
//! runs `image-update run --dry-run` under `/usr/bin/time -v`. Prints wall
//! time, peak memory and the requests per kind the registry saw.
//!
//!   cargo bench --bench registry [-- IMAGES TAGS MANIFESTS]   (default 100 300 1000)
//!
//! Targets for 100 × 300 × 1000 on loopback on a 2-core machine: under 1 s,
//! under 50 MB, and no more than one `/v2/` ping per registry, one tag listing
//! per repository, and one manifest request per digest a rule needs.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use support::{Registry, RegistryOptions};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let images = args.first().copied().unwrap_or(100);
    let tags = args.get(1).copied().unwrap_or(300);
    let manifests = args.get(2).copied().unwrap_or(1000);
    let registry = Registry::start(RegistryOptions::new().access_log(true));
    let host = registry.host();
    let digests: Vec<String> = (0..images)
        .map(|i| {
            registry.push_image(
                &format!("bench/svc-{i}"),
                "1.0.0",
                "2024-01-01T00:00:00Z",
                "linux/amd64",
            )
        })
        .collect();
    // Tag the image M times by writing distribution's tag links directly:
    // pushing 30,000 manifests through the API would dwarf the benchmark.
    for (i, digest) in digests.iter().enumerate() {
        let hex = digest.trim_start_matches("sha256:");
        for t in 0..tags {
            let tag = format!("{}.{}.{}", 1 + t / 100, (t / 10) % 10, t % 10);
            let base = registry.storage_dir().join(format!(
                "docker/registry/v2/repositories/bench/svc-{i}/_manifests/tags/{tag}"
            ));
            for dir in [
                base.join("current"),
                base.join(format!("index/sha256/{hex}")),
            ] {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("link"), digest).unwrap();
            }
        }
    }
    let work = tempfile::tempdir().unwrap();
    let reflected = generate_tree(work.path(), &host, images, manifests);

    let before = registry.log().lines().count();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_image-update"))
        .args([
            "run",
            work.path().to_str().unwrap(),
            "--dry-run",
            "--output",
            "json",
            "--insecure-registry",
            &host,
        ])
        .output()
        .expect("/usr/bin/time runs (Debian package `time`)");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let stats = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| {
        stats
            .lines()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| "?".to_string())
    };
    let log = registry.log();
    let requests = count_requests(log.lines().skip(before));

    println!(
        "registry: {images} repositories x {tags} tags; tree: {manifests} manifests; {reflected} policies reflect digests"
    );
    println!(
        "wall time: {}",
        field("Elapsed (wall clock) time (h:mm:ss or m:ss):")
    );
    println!(
        "peak memory: {} kB",
        field("Maximum resident set size (kbytes):")
    );
    println!(
        "policies: {}, changes: {}, errors: {}",
        report["policies"].as_array().map_or(0, Vec::len),
        report["changes"].as_array().map_or(0, Vec::len),
        report["policies"]
            .as_array()
            .map_or(0, |p| p.iter().filter(|p| !p["error"].is_null()).count()),
    );
    println!("requests by kind:");
    for (kind, count) in &requests {
        println!("  {kind:<24} {count}");
    }
    println!(
        "expected at most: ping 1, tags/list {images}, manifest HEAD {reflected}; targets: under 1 s and 50 MB"
    );
}

/// Policies for every repository (every tenth reflects digests) and K
/// manifests with three markers each. Returns how many policies reflect digests.
fn generate_tree(dir: &Path, host: &str, images: usize, manifests: usize) -> usize {
    let mut docs = Vec::new();
    for i in 0..images {
        docs.push(format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: svc-{i}, namespace: flux-system}}\nspec: {{image: {host}/bench/svc-{i}, insecure: true}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: svc-{i}, namespace: flux-system}}\nspec:\n  imageRepositoryRef: {{name: svc-{i}}}\n  policy: {{semver: {{range: '>=1.0.0 <3.0.0'}}}}\n  digestReflectionPolicy: {}\n",
            if i % 10 == 0 { "Always\n  interval: 5m" } else { "Never" }
        ));
    }
    std::fs::write(dir.join("policies.yaml"), docs.join("---\n")).unwrap();
    for m in 0..manifests {
        let (p, q) = (m % images, (m * 7 + 3) % images);
        let app = dir.join(format!("apps/app-{m}"));
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(
            app.join("deployment.yaml"),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{m}\nspec:\n  template:\n    spec:\n      containers:\n        - name: main\n          image: {host}/bench/svc-{p}:1.0.0 # {{\"$imagepolicy\": \"flux-system:svc-{p}\"}}\n        - name: sidecar\n          image: {host}/bench/svc-{q} # {{\"$imagepolicy\": \"flux-system:svc-{q}:name\"}}\n          env:\n            - name: TAG\n              value: \"1.0.0\" # {{\"$imagepolicy\": \"flux-system:svc-{q}:tag\"}}\n"
            ),
        )
        .unwrap();
    }
    images.div_ceil(10)
}

/// Requests per kind from distribution's access log lines
/// (`127.0.0.1 - - [date] "GET /v2/... HTTP/1.1" 200 …`).
fn count_requests<'a>(lines: impl Iterator<Item = &'a str>) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        let Some(request) = line.split('"').nth(1) else {
            continue;
        };
        let mut parts = request.split_whitespace();
        let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
            continue;
        };
        let kind = match (method, path) {
            (_, "/v2/") => "ping /v2/",
            (_, p) if p.contains("/tags/list") => "tags/list",
            ("HEAD", p) if p.contains("/manifests/") => "manifest HEAD",
            ("GET", p) if p.contains("/manifests/") => "manifest GET",
            (_, p) if p.contains("/blobs/") => "blob",
            _ => "other",
        };
        *counts.entry(kind).or_insert(0) += 1;
    }
    counts
}
