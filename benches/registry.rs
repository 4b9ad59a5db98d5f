//! Benchmark against a real registry (not a timed test): starts Debian's
//! `docker-registry` with its access log on, fills it with the repositories
//! and tags of the mixed GitOps tree `scripts/bench-tree.py` generates (Flux
//! policies and markers, Argo CD applications of every strategy, ImageUpdater
//! resources), and runs `image-update run --dry-run` on it under
//! `/usr/bin/time -v` twice with one cache directory: a first run (cold
//! cache) and a second (warm). For each it prints wall time, peak memory and
//! the requests per kind the registry saw; then the time of the same
//! requests replayed alone at the same per-host concurrency, the floor on
//! loopback.
//!
//!   cargo bench --bench registry [-- UNITS REPOSITORIES TAGS]   (default 1000 100 300)
//!
//! Then `RUNS` (default 15) cold runs (each with an empty cache) and as many
//! warm runs, each followed by the replay of its requests, for medians of
//! interleaved runs and their ratio, with each run's CPU time (the tool's,
//! the registry's, the replaying client's) and the least time the tool and
//! the registry sharing the machine's cores allow. `HOLD=1` keeps the registry up after
//! the two measured runs, until stdin closes, and prints the command line
//! to profile by hand.
//!
//! `BASELINE=path/to/image-update` measures another build the same way,
//! alternating with this one, for a before/after comparison (a build from
//! before the cache gets no cache flags).
//!
//! Targets on a 2-core machine: under 50 MB; the second run 0 manifest and
//! blob `GET`s, one ping, one listing per repository, one `HEAD` per tag a
//! rule needs; the first run no more requests than before the cache.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Registry, RegistryOptions};

const REPO_URL: &str = "https://git.example.com/org/gitops.git";

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let units = args.first().copied().unwrap_or(1000);
    let repositories = args.get(1).copied().unwrap_or(100);
    let tags = args.get(2).copied().unwrap_or(300);
    let registry = Registry::start(RegistryOptions::new().access_log(true));
    let host = registry.host();
    let work = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench-tree.py"))
        .arg(work.path())
        .args(["--units", &units.to_string()])
        .args(["--repositories", &repositories.to_string()])
        .args(["--tags", &tags.to_string()])
        .args(["--host", &host])
        .status()
        .expect("python3 runs");
    assert!(status.success(), "scripts/bench-tree.py failed");
    let listed: BTreeMap<String, Vec<String>> =
        serde_json::from_slice(&std::fs::read(work.path().join("tags.json")).unwrap()).unwrap();
    fill(&registry, &listed);

    let tree = work.path().join("tree");
    println!(
        "registry: {repositories} repositories x {tags} tags; tree: {units} units ({})",
        tree.display()
    );
    let mut builds = vec![Build {
        label: "this build",
        bin: env!("CARGO_BIN_EXE_image-update").to_string(),
        cache: true,
    }];
    if let Ok(bin) = std::env::var("BASELINE") {
        // A build from before the cache has no --cache-dir; one after it
        // gets its own directory, never the user's.
        let help = Command::new(&bin).args(["run", "--help"]).output().unwrap();
        let cache = String::from_utf8_lossy(&help.stdout).contains("--cache-dir");
        builds.push(Build {
            label: "baseline",
            bin,
            cache,
        });
    }
    let mut seen = Vec::new();
    for (i, build) in builds.iter().enumerate() {
        let dir = work.path().join(format!("cache-{i}"));
        let args = build.cache_args(&dir);
        let label = build.label;
        let first = measure(
            &registry,
            &format!("{label}: first run (cold cache)"),
            &build.bin,
            &tree,
            &args,
        );
        let second = measure(
            &registry,
            &format!("{label}: second run (warm cache)"),
            &build.bin,
            &tree,
            &args,
        );
        seen.push((first, second));
    }
    if std::env::var_os("HOLD").is_some() {
        // For profiling by hand: the registry stays up until stdin closes.
        println!(
            "holding: {} run {} --dry-run --output json --repo-url {REPO_URL} --insecure-registry {host} --cache-dir {}",
            builds[0].bin,
            tree.display(),
            work.path().join("cache-0").display()
        );
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new());
    }
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15)
        .max(1);
    for (name, warm) in [("first", false), ("second", true)] {
        // Live runs and replays alternate (and builds, with a baseline), so
        // that the machine's load falls on all alike; medians are compared.
        let mut times = vec![(Vec::new(), Vec::new()); builds.len()];
        let mut cpu = vec![Cpu::default(); builds.len()];
        for run in 0..runs {
            for (i, build) in builds.iter().enumerate() {
                let dir = match warm {
                    true => work.path().join(format!("cache-{i}")),
                    false => work.path().join(format!("cold-{i}-{run}")),
                };
                let requests = if warm { &seen[i].1 } else { &seen[i].0 };
                let (tool, served) = (children_cpu(), registry.cpu_time());
                let start = Instant::now();
                let out = Command::new(&build.bin)
                    .arg("run")
                    .arg(&tree)
                    .args(["--dry-run", "--output", "json", "--repo-url", REPO_URL])
                    .args(["--insecure-registry", &host])
                    .args(build.cache_args(&dir))
                    .output()
                    .unwrap();
                times[i].0.push(start.elapsed().as_secs_f64());
                cpu[i].tool.push(ms(children_cpu() - tool));
                cpu[i].registry.extend(since(&registry, served));
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let (client, served) = (thread_cpu(), registry.cpu_time());
                times[i].1.push(replay(&host, requests).as_secs_f64());
                cpu[i].client.push(ms(thread_cpu() - client));
                cpu[i].replayed.extend(since(&registry, served));
            }
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        for (((build, (live, alone)), (first, second)), cpu) in
            builds.iter().zip(&mut times).zip(&seen).zip(&mut cpu)
        {
            let requests = if warm { second } else { first };
            // Each run beside the replay right after it, so that a change in
            // the machine's load between runs cancels out.
            let mut paired: Vec<f64> = live.iter().zip(&*alone).map(|(l, a)| l / a).collect();
            let (live, alone, paired) = (median(live), median(alone), median(&mut paired));
            println!(
                "{}: {name} run, median of {runs}: live {live:.3} s; its {} requests replayed alone (6 at once, the per-host bound) {alone:.3} s; ratio of the medians {:.2}x, median of the paired ratios {paired:.2}x",
                build.label,
                requests.len(),
                live / alone
            );
            cpu.print(build.label, name, cores, alone);
        }
    }
    println!(
        "targets: under 50 MB; second run 0 manifest GET and 0 blob GET; live within 1.5x of the replay"
    );
}

/// CPU time per run, in milliseconds: the tool's and the registry's during
/// live runs, the registry's and the replaying client's during replays.
/// With the registry on the same cores as the tool, the live run cannot take
/// less than both processes' CPU time shared out over the cores, while the
/// replay leaves them to the registry: that bound, not the tool's waiting,
/// is what a ratio near it measures.
#[derive(Clone, Default)]
struct Cpu {
    tool: Vec<f64>,
    registry: Vec<f64>,
    client: Vec<f64>,
    replayed: Vec<f64>,
}

impl Cpu {
    fn print(&mut self, label: &str, name: &str, cores: usize, alone: f64) {
        if self.registry.is_empty() || self.replayed.is_empty() {
            println!("{label}: {name} run: the registry's CPU time cannot be read (no /proc)");
            return;
        }
        let tool = median(&mut self.tool);
        let registry = median(&mut self.registry);
        let floor = (tool + registry) / 1000.0 / cores as f64;
        println!(
            "{label}: {name} run, CPU per run (medians): tool {tool:.0} ms, registry {registry:.0} ms; replay: registry {:.0} ms, client {:.0} ms; both live processes on {cores} cores take at least {floor:.3} s, {:.2}x the replay",
            median(&mut self.replayed),
            median(&mut self.client),
            floor / alone
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The registry's CPU time since `before`, in milliseconds.
fn since(registry: &Registry, before: Option<Duration>) -> Option<f64> {
    Some(ms(registry.cpu_time()?.checked_sub(before?)?))
}

/// CPU time (user + system) of the children waited for so far.
fn children_cpu() -> Duration {
    rusage(libc::RUSAGE_CHILDREN)
}

/// CPU time (user + system) of this thread, which drives the replay.
fn thread_cpu() -> Duration {
    rusage(libc::RUSAGE_THREAD)
}

fn rusage(who: libc::c_int) -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole rusage into the buffer it is given.
    let usage = unsafe {
        assert_eq!(libc::getrusage(who, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// A build of image-update to measure.
struct Build {
    label: &'static str,
    bin: String,
    /// Whether it takes `--cache-dir`.
    cache: bool,
}

impl Build {
    fn cache_args(&self, dir: &Path) -> Vec<String> {
        match self.cache {
            true => vec!["--cache-dir".to_string(), dir.display().to_string()],
            false => Vec::new(),
        }
    }
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Tags every repository as listed by writing distribution's tag links to
/// one pushed image (pushing 30,000 manifests would dwarf the benchmark);
/// the tags a `newest-build` rule ranks (`build-1*`) get images of their own,
/// with distinct build dates, as real builds have.
fn fill(registry: &Registry, listed: &BTreeMap<String, Vec<String>>) {
    for (repo, tags) in listed {
        let digest = registry.push_image(repo, "base", "2024-01-01T00:00:00Z", "linux/amd64");
        let hex = digest.trim_start_matches("sha256:");
        for tag in tags {
            let base = registry.storage_dir().join(format!(
                "docker/registry/v2/repositories/{repo}/_manifests/tags/{tag}"
            ));
            for dir in [
                base.join("current"),
                base.join(format!("index/sha256/{hex}")),
            ] {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("link"), &digest).unwrap();
            }
        }
        for (day, tag) in tags.iter().filter(|t| t.starts_with("build-1")).enumerate() {
            registry.push_image(
                repo,
                tag,
                &format!("2024-02-{:02}T00:00:00Z", 1 + day % 28),
                "linux/amd64",
            );
        }
    }
}

/// One run under `/usr/bin/time -v`: prints its cost, returns the requests
/// the registry saw (method, path).
fn measure(
    registry: &Registry,
    name: &str,
    bin: &str,
    tree: &Path,
    extra: &[String],
) -> Vec<(String, String)> {
    let before = registry.log().lines().count();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(bin)
        .arg("run")
        .arg(tree)
        .args(["--dry-run", "--output", "json", "--repo-url", REPO_URL])
        .args(["--insecure-registry", &registry.host()])
        .args(extra)
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
    let requests: Vec<(String, String)> = log.lines().skip(before).filter_map(request_of).collect();
    let apps = report["applications"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let images = apps
        .iter()
        .flat_map(|a| a["images"].as_array().unwrap().iter());
    let (changed, failed) = images.fold((0, 0), |(c, f), i| {
        (
            c + usize::from(!i["new"].is_null()),
            f + usize::from(!i["error"].is_null()),
        )
    });
    println!("== {name}");
    println!(
        "wall time {}, peak memory {} kB",
        field("Elapsed (wall clock) time (h:mm:ss or m:ss):"),
        field("Maximum resident set size (kbytes):")
    );
    println!(
        "policies: {} ({} failed), marker changes: {}, applications: {} ({changed} images changed, {failed} failed)",
        report["policies"].as_array().map_or(0, Vec::len),
        report["policies"]
            .as_array()
            .map_or(0, |p| p.iter().filter(|p| !p["error"].is_null()).count()),
        report["changes"].as_array().map_or(0, Vec::len),
        apps.len(),
    );
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (method, path) in &requests {
        *counts.entry(kind(method, path)).or_default() += 1;
    }
    let seen: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "registry saw: {} requests: {}",
        requests.len(),
        seen.join(", ")
    );
    if let Some(reported) = report["requests"].as_array() {
        let cached: Vec<String> = reported
            .iter()
            .filter(|r| r["cached"].as_u64() > Some(0))
            .map(|r| format!("{} {}", r["cached"], r["kind"].as_str().unwrap_or("?")))
            .collect();
        if !cached.is_empty() {
            println!("answered from the cache: {}", cached.join(", "));
        }
    }
    requests
}

/// The same requests, without the tool: plain HTTP at the tool's default
/// per-host concurrency (all go to one host), for the floor the registry sets.
fn replay(host: &str, requests: &[(String, String)]) -> Duration {
    use futures_util::StreamExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Plain HTTP on loopback; the TLS set-up is only there for the builder.
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .unwrap();
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
    let start = Instant::now();
    runtime.block_on(
        futures_util::stream::iter(requests.iter().map(|(method, path)| {
            let request = client
                .request(method.parse().unwrap(), format!("http://{host}{path}"))
                .header("accept", accept);
            async move {
                if let Ok(response) = request.send().await {
                    let _ = response.bytes().await;
                }
            }
        }))
        .buffer_unordered(6)
        .collect::<Vec<()>>(),
    );
    start.elapsed()
}

/// Method and path of an access log line
/// (`127.0.0.1 - - [date] "GET /v2/... HTTP/1.1" 200 …`).
fn request_of(line: &str) -> Option<(String, String)> {
    let request = line.split('"').nth(1)?;
    let mut parts = request.split_whitespace();
    Some((parts.next()?.to_string(), parts.next()?.to_string()))
}

fn kind(method: &str, path: &str) -> &'static str {
    match (method, path) {
        (_, "/v2/") => "ping",
        (_, p) if p.contains("/tags/list") => "list",
        ("HEAD", p) if p.contains("/manifests/") => "manifest HEAD",
        ("GET", p) if p.contains("/manifests/") => "manifest GET",
        (_, p) if p.contains("/blobs/") => "blob GET",
        _ => "other",
    }
}
