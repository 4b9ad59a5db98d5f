//! The registry cache against a real registry (Debian's `docker-registry`,
//! behind a counting proxy): a warm cache turns manifest and config `GET`s
//! into one `HEAD` per tag; a corrupt entry, `--no-cache` and runs sharing
//! the directory at once all give the same answers as a cold run. A warm
//! run asks what the tree's last run asked while it reads the tree, and
//! keeps only what the tree then asks the same way.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use image_update::image::Repository;
use image_update::registry::cache::Cache;
use image_update::registry::credentials::{Credential, Env, Secret, Store};
use image_update::registry::live::{Live, Options};
use image_update::registry::{Registry, TagRef};
use support::proxy::{Action, Proxy, Seen};
use support::{RegistryOptions, Seed, reported};

const REPO_URL: &str = "https://git.example.com/org/gitops.git";

struct Fixture {
    registry: support::Registry,
    proxy: Proxy,
    tree: tempfile::TempDir,
    home: tempfile::TempDir,
}

/// Two Argo CD applications whose strategies read build dates and
/// platforms: `newest-build` over plain images, and over an index.
fn fixture() -> Fixture {
    fixture_with(|_, _| Action::Forward)
}

/// [`fixture`] behind a proxy that applies `rule` to each request.
fn fixture_with(rule: impl Fn(&Seen, usize) -> Action + Send + Sync + 'static) -> Fixture {
    let (registry, _) = Seed::new()
        .image("acme/web", "build-1", "2024-01-01T00:00:00Z")
        .image("acme/web", "build-2", "2024-02-01T00:00:00Z")
        .image("acme/web", "build-3", "2024-03-01T00:00:00Z")
        .image("acme/worker", "w-1", "2024-01-15T00:00:00Z")
        .index(
            "acme/worker",
            "w-2",
            &[
                ("linux/amd64", "2024-02-15T00:00:00Z"),
                ("linux/arm64", "2024-02-15T00:00:00Z"),
            ],
        )
        .start(RegistryOptions::new());
    let proxy = Proxy::start(&registry.base_url(), rule);
    let tree = tempfile::tempdir().unwrap();
    let host = proxy.host();
    let mut apps = Vec::new();
    for (name, current) in [("web", "build-1"), ("worker", "w-1")] {
        let path = tree.path().join("apps").join(name);
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("kustomization.yaml"), "resources: []\n").unwrap();
        std::fs::write(
            path.join(format!(".argocd-source-{name}.yaml")),
            format!("kustomize:\n  images:\n  - {host}/acme/{name}:{current}\n"),
        )
        .unwrap();
        apps.push(format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\n  annotations:\n    argocd-image-updater.argoproj.io/image-list: {name}={host}/acme/{name}\n    argocd-image-updater.argoproj.io/{name}.update-strategy: newest-build\n    argocd-image-updater.argoproj.io/write-back-method: git\nspec:\n  source:\n    repoURL: {REPO_URL}\n    path: apps/{name}\n"
        ));
    }
    std::fs::write(tree.path().join("apps.yaml"), apps.join("---\n")).unwrap();
    Fixture {
        registry,
        proxy,
        tree,
        home: tempfile::tempdir().unwrap(),
    }
}

impl Fixture {
    /// `run --dry-run --output json` with `args`.
    fn run(&self, args: &[&str]) -> (Output, serde_json::Value) {
        let out = self
            .command(args)
            .args(["--output", "json"])
            .output()
            .unwrap();
        let report = support::json_report(&out);
        (out, report)
    }

    /// `run --dry-run` with `args`; the default cache lives in a temporary
    /// `$XDG_CACHE_HOME`, never the user's.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_image-update"));
        command
            .arg("run")
            .arg(self.tree.path())
            .args(["--dry-run", "--repo-url", REPO_URL])
            .args(["--insecure-registry", &self.proxy.host()])
            .args(args)
            .env("HOME", self.home.path())
            .env("XDG_CACHE_HOME", self.home.path().join("xdg"))
            .env_remove("DOCKER_CONFIG")
            .env_remove("DOCKER_AUTH_CONFIG")
            .env_remove("REGISTRY_AUTH_FILE");
        command
    }

    /// Requests the registry saw since `mark`, as (manifest HEAD, manifest GET, blob GET).
    fn seen_since(&self, mark: usize) -> (usize, usize, usize) {
        let seen = self.proxy.seen();
        let count = |method: &str, part: &str| {
            seen[mark..]
                .iter()
                .filter(|s| s.method == method && s.target.contains(part))
                .count()
        };
        (
            count("HEAD", "/manifests/"),
            count("GET", "/manifests/"),
            count("GET", "/blobs/"),
        )
    }

    fn mark(&self) -> usize {
        self.proxy.seen().len()
    }

    /// Tag lists the registry was asked for since `mark`.
    fn lists_since(&self, mark: usize) -> usize {
        self.proxy.seen()[mark..]
            .iter()
            .filter(|s| s.target.contains("/tags/list"))
            .count()
    }

    /// The client a run of the tree builds, on `cache`, with no credentials;
    /// the proxy is named insecure, as the runs here name it, when `insecure`.
    fn live(&self, cache: &Path, insecure: bool) -> Live {
        let env = Env {
            docker_config_flag: None,
            vars: Default::default(),
        };
        let options = Options {
            insecure: insecure.then(|| self.proxy.host()).into_iter().collect(),
            ..Options::default()
        };
        Live::new(options, Store::load(&env).unwrap())
            .unwrap()
            .with_cache(Some(Cache::new(cache)))
            .for_tree(self.tree.path())
    }

    fn repository(&self, name: &str) -> Repository {
        Repository::parse(&format!("{}/{name}", self.proxy.host())).unwrap()
    }

    fn tag(&self, name: &str, tag: &str) -> TagRef {
        TagRef {
            repository: self.repository(name),
            tag: tag.to_string(),
        }
    }

    /// Tags an `acme/web` image built at `created` (the same date gives the
    /// same image, so the same digest).
    fn push_web(&self, tag: &str, created: &str) {
        support::push::push_image(
            &self.registry.base_url(),
            "acme/web",
            tag,
            created,
            "linux/amd64",
        );
    }
}

/// What a run decided: each application's selected tag.
fn selected(report: &serde_json::Value) -> Vec<(String, String)> {
    report["applications"]
        .as_array()
        .unwrap_or_else(|| panic!("no applications in {report}"))
        .iter()
        .map(|a| {
            (
                a["application"].as_str().unwrap().to_string(),
                a["images"][0]["selected"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

fn entries(dir: &Path) -> Vec<std::path::PathBuf> {
    match std::fs::read_dir(dir.join("v1/sha256")) {
        Ok(read) => read.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

const EXPECTED: [(&str, &str); 2] = [("argocd/web", "build-3"), ("argocd/worker", "w-2")];

fn expected() -> Vec<(String, String)> {
    EXPECTED
        .iter()
        .map(|(a, t)| (a.to_string(), t.to_string()))
        .collect()
}

#[test]
fn a_warm_cache_leaves_one_head_per_tag_and_no_gets() {
    let f = fixture();
    let (out, cold) = f.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{cold}");
    assert_eq!(selected(&cold), expected());
    let (heads, manifests, blobs) = f.seen_since(0);
    // Five tags: with nothing in the cache, each is read by tag (no HEAD
    // first: its answer names the digest), the index's amd64 child by
    // digest, each image config once.
    assert_eq!((heads, manifests, blobs), (0, 6, 5));
    // The report counts what the registry saw.
    assert_eq!(reported(&cold, "manifest HEAD"), (0, 0));
    assert_eq!(reported(&cold, "manifest GET"), (6, 0));
    assert_eq!(reported(&cold, "blob GET"), (5, 0));
    assert_eq!(reported(&cold, "list"), (2, 0));
    // The default directory is $XDG_CACHE_HOME/image-update.
    let dir = f.home.path().join("xdg/image-update");
    assert_eq!(entries(&dir).len(), 6, "one entry per manifest");

    let mark = f.mark();
    let (out, warm) = f.run(&[]);
    assert_eq!(out.status.code(), Some(0), "{warm}");
    assert_eq!(selected(&warm), expected());
    assert_eq!(f.seen_since(mark), (5, 0, 0));
    assert_eq!(reported(&warm, "manifest HEAD"), (5, 0));
    assert_eq!(reported(&warm, "manifest GET"), (0, 6));
    assert_eq!(reported(&warm, "blob GET"), (0, 5));

    // The text summary says the same in one line.
    let out = f.command(&["--output", "text"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("requests: "))
        .unwrap_or_else(|| panic!("no requests line in {text}"));
    assert_eq!(
        line,
        format!(
            "requests: {}: 1 ping, 2 list, 5 manifest HEAD, 0 manifest GET (+6 from cache), 0 blob GET (+5 from cache)",
            f.proxy.host()
        )
    );
}

#[test]
fn a_cold_run_reads_each_tag_with_one_get_and_each_config_once() {
    let f = fixture();
    // `build-0` names the same image as `build-1` (one digest, two tags).
    f.push_web("build-0", "2024-01-01T00:00:00Z");
    let cache = f.home.path().join("cache");
    let args = ["--cache-dir", cache.to_str().unwrap()];
    let (out, cold) = f.run(&args);
    assert_eq!(out.status.code(), Some(0), "{cold}");
    assert_eq!(selected(&cold), expected());
    // Six tags, each read by tag with no HEAD before (nothing in the cache
    // could answer), plus the index's amd64 child; the shared image's
    // config once: no more requests than a HEAD-first run, one fewer per tag.
    assert_eq!(f.seen_since(0), (0, 7, 5));
    assert_eq!(reported(&cold, "manifest GET"), (7, 0));
    assert_eq!(reported(&cold, "ping"), (1, 0));
    assert_eq!(reported(&cold, "list"), (2, 0));
    assert_eq!(entries(&cache).len(), 6, "one entry per digest");
    // Warm: one HEAD per tag, every digest answered by the cache.
    let mark = f.mark();
    let (_, warm) = f.run(&args);
    assert_eq!(selected(&warm), expected());
    assert_eq!(f.seen_since(mark), (6, 0, 0));
    assert_eq!(reported(&warm, "manifest GET"), (0, 6));
}

#[test]
fn a_warm_run_asks_its_heads_at_once() {
    // Each HEAD takes a while; how many are on the wire at once is recorded.
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (a, p) = (active.clone(), peak.clone());
    let f = fixture_with(move |seen, _| {
        if seen.method == "HEAD" {
            let now = a.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(150));
            a.fetch_sub(1, Ordering::SeqCst);
        }
        Action::Forward
    });
    let cache = f.home.path().join("cache");
    let args = ["--cache-dir", cache.to_str().unwrap()];
    f.run(&args);
    assert_eq!(peak.load(Ordering::SeqCst), 0, "a cold run sends no HEAD");
    let mark = f.mark();
    let (out, warm) = f.run(&args);
    assert_eq!(out.status.code(), Some(0), "{warm}");
    assert_eq!(selected(&warm), expected());
    assert_eq!(f.seen_since(mark), (5, 0, 0));
    // Five HEADs to one host, six allowed at once: not one after another.
    assert!(
        peak.load(Ordering::SeqCst) >= 3,
        "HEADs to one host should overlap; peak {}",
        peak.load(Ordering::SeqCst)
    );
}

#[test]
fn a_moved_tag_is_asked_again_and_old_digests_stay_valid() {
    let f = fixture();
    let cache = f.home.path().join("cache");
    let args = ["--cache-dir", cache.to_str().unwrap()];
    let (_, cold) = f.run(&args);
    assert_eq!(selected(&cold), expected());
    // build-3 now names a newer image: the HEAD sees the new digest, and
    // only that digest costs GETs.
    f.push_web("build-3", "2024-06-01T00:00:00Z");
    let mark = f.mark();
    let (_, moved) = f.run(&args);
    assert_eq!(selected(&moved), expected());
    assert_eq!(f.seen_since(mark), (5, 1, 1));
}

#[test]
fn corrupt_entries_are_ignored_and_replaced() {
    let f = fixture();
    let cache = f.home.path().join("cache");
    let args = ["--cache-dir", cache.to_str().unwrap()];
    f.run(&args);
    let written = entries(&cache);
    assert_eq!(written.len(), 6);
    // Garbage, a truncated entry, and an entry that names another digest.
    let valid = std::fs::read_to_string(&written[1]).unwrap();
    std::fs::write(&written[0], "{not json").unwrap();
    std::fs::write(&written[1], &valid[..valid.len() / 2]).unwrap();
    std::fs::write(&written[2], std::fs::read(&written[3]).unwrap()).unwrap();

    let mark = f.mark();
    let (out, report) = f.run(&args);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(selected(&report), expected());
    let (_, manifests, _) = f.seen_since(mark);
    assert_eq!(manifests, 3, "the three bad entries are read again");

    // ...and replaced: the next run needs no GET at all.
    let mark = f.mark();
    f.run(&args);
    assert_eq!(f.seen_since(mark), (5, 0, 0));
}

#[test]
fn no_cache_reads_and_writes_nothing() {
    let f = fixture();
    let cache = f.home.path().join("xdg/image-update");
    f.run(&[]);
    assert_eq!(entries(&cache).len(), 6);
    for _ in 0..2 {
        let mark = f.mark();
        let (out, report) = f.run(&["--no-cache"]);
        assert_eq!(out.status.code(), Some(0), "{report}");
        assert_eq!(selected(&report), expected());
        assert_eq!(f.seen_since(mark), (0, 6, 5));
        assert_eq!(reported(&report, "manifest GET"), (6, 0));
    }
    // A flag beats the default directory, and nothing else was written.
    let other = f.home.path().join("other");
    f.run(&["--no-cache", "--cache-dir", other.to_str().unwrap()]);
    assert!(!other.exists());
    assert_eq!(entries(&cache).len(), 6);
}

#[test]
fn concurrent_runs_sharing_a_cache_agree_and_leave_it_whole() {
    let f = fixture();
    let cache = f.home.path().join("shared");
    let args = ["--cache-dir", cache.to_str().unwrap()];
    let children: Vec<_> = (0..4)
        .map(|_| {
            f.command(&args)
                .args(["--output", "json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(selected(&report), expected());
    }
    // Every entry is whole, no temporary file is left, and a fifth run is
    // answered from them.
    let written = entries(&cache);
    assert_eq!(written.len(), 6, "{written:?}");
    for entry in &written {
        let text = std::fs::read(entry).unwrap();
        serde_json::from_slice::<serde_json::Value>(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", entry.display()));
    }
    let mark = f.mark();
    f.run(&args);
    assert_eq!(f.seen_since(mark), (5, 0, 0));
}

#[test]
fn snapshot_says_what_the_cache_answered() {
    let f = fixture();
    let cache = f.home.path().join("cache");
    f.run(&["--cache-dir", cache.to_str().unwrap()]);
    // `snapshot` knows the repository by its origin remote.
    support::git(f.tree.path(), &["init", "-q"]);
    support::git(f.tree.path(), &["remote", "add", "origin", REPO_URL]);
    let snapshot = f.home.path().join("snap.json");
    let out = Command::new(env!("CARGO_BIN_EXE_image-update"))
        .arg("snapshot")
        .arg(f.tree.path())
        .args(["-o", snapshot.to_str().unwrap()])
        .args(["--insecure-registry", &f.proxy.host()])
        .args(["--cache-dir", cache.to_str().unwrap()])
        .env("HOME", f.home.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("0 manifest GET (+6 from cache), 0 blob GET (+5 from cache)"),
        "{text}"
    );
    // The snapshot still holds the dates the cache answered.
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&snapshot).unwrap()).unwrap();
    let web = &file["repositories"][format!("{}/acme/web", f.proxy.host())];
    assert_eq!(web["created"]["build-3"], "2024-03-01T00:00:00Z");
}

#[test]
fn a_warm_run_asks_what_the_trees_last_run_asked_before_it_reads_the_tree() {
    let f = fixture();
    let cache = f.home.path().join("cache");
    let (_, cold) = f.run(&["--cache-dir", cache.to_str().unwrap()]);
    assert_eq!(selected(&cold), expected());

    // Before the tree is read: both repositories listed, the five tags'
    // digests asked (a warm cache answers for their manifests).
    let live = f.live(&cache, true);
    let mark = f.mark();
    let lists_when_told = std::cell::Cell::new(None);
    live.ask_ahead(&|| lists_when_told.set(Some(f.lists_since(mark))));
    assert_eq!(lists_when_told.get(), Some(2), "told once both are listed");
    assert_eq!(f.lists_since(mark), 2);
    assert_eq!(f.seen_since(mark), (5, 0, 0));

    // The run's own questions are then answered without a request.
    let mark = f.mark();
    let tags = live.tags(&[f.repository("acme/web"), f.repository("acme/worker")]);
    let mut web = tags[0].clone().unwrap();
    web.sort();
    assert_eq!(web, ["build-1", "build-2", "build-3"]);
    assert_eq!(tags[1].as_ref().unwrap().len(), 2);
    let created = live.created(&[f.tag("acme/web", "build-3")], "linux/amd64");
    assert_eq!(created[0].as_ref().unwrap(), "2024-03-01T00:00:00Z");
    assert_eq!(f.mark(), mark, "{:?}", &f.proxy.seen()[mark..]);
}

#[test]
fn what_failed_ahead_is_asked_again() {
    // Once armed, the first listing of acme/worker and the first HEAD and
    // GET of build-3 fail (404 is not retried); later ones reach the
    // registry.
    let failed = Arc::new(AtomicUsize::new(usize::MAX));
    let seen_failed = failed.clone();
    let f = fixture_with(move |seen, _| {
        let first = |wanted: bool, bit: usize| {
            wanted && seen_failed.fetch_or(bit, Ordering::SeqCst) & bit == 0
        };
        let build_3 = seen.target.contains("/manifests/build-3");
        if first(seen.target.contains("acme/worker/tags/list"), 1)
            || first(build_3 && seen.method == "HEAD", 2)
            || first(build_3 && seen.method == "GET", 4)
        {
            return Action::Respond(support::proxy::Reply {
                status: 404,
                headers: Vec::new(),
                body: Vec::new(),
            });
        }
        Action::Forward
    });
    let cache = f.home.path().join("cache");
    f.run(&["--cache-dir", cache.to_str().unwrap()]);
    failed.store(0, Ordering::SeqCst);

    let live = f.live(&cache, true);
    let mark = f.mark();
    live.ask_ahead(&|| ());
    assert_eq!(failed.load(Ordering::SeqCst), 7, "all three failed ahead");
    let tags = live.tags(&[f.repository("acme/web"), f.repository("acme/worker")]);
    assert_eq!(tags[1].as_ref().unwrap().len(), 2, "{tags:?}");
    let created = live.created(&[f.tag("acme/web", "build-3")], "linux/amd64");
    assert_eq!(created[0].as_ref().unwrap(), "2024-03-01T00:00:00Z");
    // Two listings ahead and worker's again; five HEADs ahead (build-3's
    // then read by tag, which failed too) and build-3's again.
    assert_eq!(f.lists_since(mark), 3);
    assert_eq!(f.seen_since(mark), (6, 1, 0));
}

#[test]
fn what_the_tree_then_says_of_a_host_drops_what_was_asked_ahead_there() {
    let f = fixture();
    let cache = f.home.path().join("cache");
    f.run(&["--cache-dir", cache.to_str().unwrap()]);
    let web = f.repository("acme/web");

    // A pull secret for the host, given once the tree is read: asked again.
    let live = f.live(&cache, true);
    live.ask_ahead(&|| ());
    let credential = Credential {
        secret: Secret::Basic {
            username: "ci".into(),
            password: "pw".into(),
        },
        source: "a pull secret".into(),
    };
    assert!(live.pin_credential(&f.proxy.host(), credential));
    let mark = f.mark();
    assert_eq!(
        live.tags(std::slice::from_ref(&web))[0]
            .as_ref()
            .unwrap()
            .len(),
        3
    );
    live.digests(&[f.tag("acme/web", "build-3")]);
    assert_eq!(f.lists_since(mark), 1);
    assert_eq!(f.seen_since(mark), (1, 0, 0));
    let pings = f.proxy.seen()[mark..]
        .iter()
        .filter(|s| s.target == "/v2/")
        .count();
    assert_eq!(pings, 1, "the host is learned again");
    // The record says so, and the next run waits for the tree again.
    drop(live);
    let record = Cache::new(&cache);
    let tree = f.tree.path().canonicalize().unwrap();
    let listed = record.listed(tree.to_str().unwrap()).unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].pinned && listed[0].insecure, "{listed:?}");
    let live = f.live(&cache, true);
    live.ask_ahead(&|| ());
    assert_eq!(
        live.requests(),
        [],
        "a pinned host waits for its credential"
    );

    // A host only the tree names insecure is not asked before it says so
    // (not over HTTPS first), then asked over plain HTTP.
    let live = f.live(&cache, false);
    let mark = f.mark();
    live.ask_ahead(&|| ());
    assert_eq!(f.mark(), mark, "{:?}", &f.proxy.seen()[mark..]);
    assert_eq!(live.requests(), [], "nothing sent, not even over HTTPS");
    live.mark_insecure(&[f.proxy.host()].into());
    assert_eq!(
        live.tags(std::slice::from_ref(&web))[0]
            .as_ref()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(f.lists_since(mark), 1);
}

#[test]
fn a_repository_the_tree_dropped_is_listed_once_more_then_not_again() {
    let f = fixture();
    let cache = f.home.path().join("cache");
    let args = ["--cache-dir", cache.to_str().unwrap()];
    f.run(&args);
    // The worker application leaves the tree.
    let apps = std::fs::read_to_string(f.tree.path().join("apps.yaml")).unwrap();
    let web_only = apps.split("---\n").next().unwrap().to_string();
    assert!(web_only.contains("name: web") && !web_only.contains("worker"));
    std::fs::write(f.tree.path().join("apps.yaml"), web_only).unwrap();

    // The next run asks what the last one asked, worker included, and
    // says so; its answer is the web application's alone.
    let mark = f.mark();
    let (out, report) = f.run(&args);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(
        selected(&report),
        [("argocd/web".to_string(), "build-3".to_string())]
    );
    assert_eq!(f.lists_since(mark), 2);
    assert_eq!(reported(&report, "list"), (2, 0));
    assert_eq!(reported(&report, "manifest HEAD"), (5, 0));
    // The run after asks only for web.
    let mark = f.mark();
    let (_, report) = f.run(&args);
    assert_eq!(f.lists_since(mark), 1);
    assert_eq!(reported(&report, "manifest HEAD"), (3, 0));
}

#[test]
fn a_corrupt_or_foreign_record_of_the_tree_is_ignored_and_replaced() {
    let f = fixture();
    let cache = f.home.path().join("cache");
    let args = ["--cache-dir", cache.to_str().unwrap()];
    f.run(&args);
    let trees: Vec<_> = std::fs::read_dir(cache.join("v1/trees"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(trees.len(), 1, "one record for the one tree: {trees:?}");
    let record = std::fs::read_to_string(&trees[0]).unwrap();
    let tree = f.tree.path().canonicalize().unwrap();
    let foreign = record.replace(tree.to_str().unwrap(), "/another/tree");
    assert_ne!(foreign, record);
    for bad in ["{not json", &record[..record.len() / 2], &foreign] {
        std::fs::write(&trees[0], bad).unwrap();
        let mark = f.mark();
        f.live(&cache, true).ask_ahead(&|| ());
        assert_eq!(f.mark(), mark, "{bad}");
        // A run writes it anew, and the next one asks ahead again.
        let (_, report) = f.run(&args);
        assert_eq!(selected(&report), expected());
        let mark = f.mark();
        f.live(&cache, true).ask_ahead(&|| ());
        assert_eq!(f.lists_since(mark), 2, "{bad}");
    }
}
