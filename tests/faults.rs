//! Registry faults a real registry will not produce on demand: paged tag
//! lists, `429` with `Retry-After`, bursts of `5xx`, truncated bodies, slow
//! answers, cross-host redirects and low rate limits. A fault-injecting proxy
//! (tests/support/proxy.rs) stands in front of a real `docker-registry`; the
//! binary under test is the real one.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::proxy::{Action, Proxy, Reply, TlsFront};
use support::{Registry, RegistryOptions, Seed, Seeded, TokenOptions};

const REPOSITORIES: [&str; 4] = ["web", "api", "cut", "slow"];

/// A registry with every repository of `REPOSITORIES`, each with tags 1.0 … 1.6.
fn registry(options: RegistryOptions) -> (Registry, Seeded) {
    let mut seed = Seed::new();
    for name in REPOSITORIES {
        for minor in 0..7 {
            seed = seed.image(
                &format!("acme/{name}"),
                &format!("1.{minor}"),
                &format!("2024-01-0{}T00:00:00Z", minor + 1),
            );
        }
    }
    seed.start(options)
}

/// A tree with one alphabetical policy per repository on `host`.
fn tree(dir: &Path, host: &str, repositories: &[&str], digest: bool) {
    let mut docs = Vec::new();
    for name in repositories {
        docs.push(format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: {name}, namespace: apps}}\nspec: {{image: {host}/acme/{name}, insecure: true}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  imageRepositoryRef: {{name: {name}}}\n  policy: {{alphabetical: {{}}}}\n  digestReflectionPolicy: {}\n",
            if digest { "Always\n  interval: 5m" } else { "Never" }
        ));
    }
    std::fs::write(dir.join("policies.yaml"), docs.join("---\n")).unwrap();
}

fn run(dir: &Path, args: &[&str]) -> (Output, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_image-update"))
        .arg("run")
        .arg(dir)
        .args(["--dry-run", "--output", "json"])
        .args(args)
        .env("HOME", dir)
        // No registry cache: every run starts cold, whatever the user's ~/.cache holds.
        .env("XDG_CACHE_HOME", "/dev/null")
        .env_remove("DOCKER_CONFIG")
        .env_remove("DOCKER_AUTH_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .output()
        .unwrap();
    let report = support::json_report(&out);
    (out, report)
}

/// A docker config.json with `user:s3cr3t` for `host`.
fn docker_config(dir: &Path, host: &str) -> std::path::PathBuf {
    let config = dir.join("config.json");
    let auth = r#"{"auth": "dXNlcjpzM2NyM3Q="}"#;
    std::fs::write(&config, format!(r#"{{"auths": {{"{host}": {auth}}}}}"#)).unwrap();
    config
}

fn outcome<'a>(report: &'a serde_json::Value, policy: &str) -> &'a serde_json::Value {
    report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["policy"] == policy)
        .unwrap_or_else(|| panic!("no policy {policy} in {report}"))
}

fn is_tags(target: &str, name: &str) -> bool {
    target.starts_with(&format!("/v2/acme/{name}/tags/list"))
}

#[test]
fn tag_lists_are_followed_across_pages() {
    let (registry, _) = registry(RegistryOptions::new());
    let proxy = Proxy::start(&registry.base_url(), |seen, _| {
        if seen.target.contains("/tags/list") {
            Action::Page(3)
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web"], false);
    let (out, report) = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(outcome(&report, "apps:web")["tag"], "1.6");
    assert_eq!(
        proxy.count("GET", "/v2/acme/web/tags/list"),
        3,
        "7 tags in pages of 3"
    );
    assert_eq!(proxy.count("GET", "/v2/"), 1 + 3, "one ping");
}

#[test]
fn a_paging_loop_fails_the_repository() {
    let (registry, _) = registry(RegistryOptions::new());
    let proxy = Proxy::start(&registry.base_url(), |seen, _| {
        if seen.target.contains("/tags/list") {
            Action::Respond(
                Reply::json(200, r#"{"tags":["1.0"]}"#)
                    .header("Link", r#"</v2/acme/web/tags/list?last=1.0>; rel="next""#),
            )
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web"], false);
    let (out, report) = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        outcome(&report, "apps:web")["error"]
            .as_str()
            .unwrap()
            .contains("paging loop"),
        "{report}"
    );
}

#[test]
fn retry_after_is_honoured_up_to_the_cap() {
    let (registry, _) = registry(RegistryOptions::new());
    let proxy = Proxy::start(&registry.base_url(), |seen, before| {
        if is_tags(&seen.target, "web") && before == 0 {
            Action::Respond(Reply::json(429, "{}").header("Retry-After", "1"))
        } else if is_tags(&seen.target, "api") {
            Action::Respond(Reply::json(429, "{}").header("Retry-After", "3600"))
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web", "api"], false);
    let started = std::time::Instant::now();
    let (out, report) = run(dir.path(), &["--max-retry-after", "5"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(outcome(&report, "apps:web")["tag"], "1.6", "{report}");
    let error = outcome(&report, "apps:api")["error"].as_str().unwrap();
    assert!(
        error.contains("rate limited") && error.contains("3600s") && error.contains("5s"),
        "{error}"
    );
    assert_eq!(proxy.count("GET", "/v2/acme/web/tags/list"), 2);
    assert_eq!(
        proxy.count("GET", "/v2/acme/api/tags/list"),
        1,
        "a wait over the cap is not attempted"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn server_errors_are_retried_a_bounded_number_of_times() {
    let (registry, _) = registry(RegistryOptions::new());
    let proxy = Proxy::start(&registry.base_url(), |seen, before| {
        if is_tags(&seen.target, "web") && before < 2 {
            Action::Respond(Reply::json(503, "{}"))
        } else if is_tags(&seen.target, "api") {
            Action::Respond(Reply::json(500, "{}"))
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web", "api"], false);
    let (out, report) = run(dir.path(), &["--retries", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(outcome(&report, "apps:web")["tag"], "1.6", "{report}");
    let error = outcome(&report, "apps:api")["error"].as_str().unwrap();
    assert!(
        error.contains("HTTP 500") && error.contains(&proxy.host()),
        "{error}"
    );
    assert_eq!(
        proxy.count("GET", "/v2/acme/api/tags/list"),
        3,
        "one try and two retries"
    );
}

#[test]
fn truncated_and_slow_answers_fail_only_their_repository() {
    let (registry, _) = registry(RegistryOptions::new());
    let proxy = Proxy::start(&registry.base_url(), |seen, _| {
        if is_tags(&seen.target, "cut") {
            Action::Truncate(10)
        } else if is_tags(&seen.target, "slow") {
            Action::Delay(Duration::from_secs(4))
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web", "cut", "slow"], false);
    let (out, report) = run(dir.path(), &["--timeout", "1", "--retries", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(outcome(&report, "apps:web")["tag"], "1.6", "{report}");
    let cut = outcome(&report, "apps:cut")["error"].as_str().unwrap();
    assert!(
        cut.contains(&proxy.host()) && cut.contains("acme/cut"),
        "{cut}"
    );
    let slow = outcome(&report, "apps:slow")["error"].as_str().unwrap();
    assert!(slow.contains("did not answer within 1s"), "{slow}");
}

#[test]
fn a_body_cut_short_once_is_read_again() {
    let (registry, _) = registry(RegistryOptions::new());
    let proxy = Proxy::start(&registry.base_url(), |seen, before| {
        if is_tags(&seen.target, "web") && before == 0 {
            Action::Truncate(5)
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web"], false);
    let (out, report) = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(outcome(&report, "apps:web")["tag"], "1.6");
    assert_eq!(proxy.count("GET", "/v2/acme/web/tags/list"), 2);
}

#[test]
fn credentials_are_not_forwarded_to_another_host_on_redirect() {
    let (registry, seeded) = registry(RegistryOptions::new().htpasswd(&[("user", "s3cr3t")]));
    let digest = seeded.digest("acme/web", "1.6").to_string();
    // Stands for blob storage on another host: answers without asking anyone.
    let storage = Proxy::start("http://127.0.0.1:1", move |_, _| {
        Action::Respond(Reply::json(200, "{}").header("Docker-Content-Digest", &digest))
    });
    let storage_url = storage.base_url();
    let proxy = Proxy::start(&registry.base_url(), move |seen, _| {
        if seen.target.contains("/manifests/") && seen.authorized {
            Action::Redirect(storage_url.clone())
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web"], true);
    let config = docker_config(dir.path(), &proxy.host());
    let (out, report) = run(dir.path(), &["--docker-config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(
        outcome(&report, "apps:web")["digest"],
        seeded.digest("acme/web", "1.6")
    );
    assert!(
        proxy.seen().iter().any(|s| s.authorized),
        "the registry got the credentials"
    );
    assert!(!storage.seen().is_empty(), "the redirect was followed");
    assert!(
        storage.seen().iter().all(|s| !s.authorized),
        "credentials leaked: {:?}",
        storage.seen()
    );
    let printed =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!printed.contains("s3cr3t") && !printed.contains("dXNlcjpzM2NyM3Q="));
}

/// Also issue 18.5: the other host's `401` is named as that host's, not as
/// bad credentials for the registry.
#[test]
fn credentials_are_not_sent_to_a_host_named_by_a_link_header() {
    let (registry, _) = registry(RegistryOptions::new().htpasswd(&[("user", "s3cr3t")]));
    let elsewhere = Proxy::start(&registry.base_url(), |_, _| Action::Forward);
    let next = format!(
        "<{}/v2/acme/web/tags/list?n=1&last=1.0>; rel=\"next\"",
        elsewhere.base_url()
    );
    let proxy = Proxy::start(&registry.base_url(), move |seen, _| {
        if seen.target.contains("/tags/list") && seen.authorized {
            Action::Respond(Reply::json(200, r#"{"tags":["1.0"]}"#).header("Link", &next))
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web"], false);
    let config = docker_config(dir.path(), &proxy.host());
    let (out, report) = run(
        dir.path(),
        &[
            "--docker-config",
            config.to_str().unwrap(),
            "--retries",
            "0",
        ],
    );
    assert!(!elsewhere.seen().is_empty(), "the next page was asked for");
    assert!(
        elsewhere.seen().iter().all(|s| !s.authorized),
        "credentials leaked: {:?}",
        elsewhere.seen()
    );
    assert_eq!(out.status.code(), Some(1), "{report}");
    let error = failure(&report, "apps:web");
    assert!(
        error.contains(&format!(
            "HTTP 401 Unauthorized from {}",
            elsewhere.base_url()
        )),
        "{error}"
    );
    assert!(!error.contains("credentials tried"), "{error}");
}

/// A token-authenticated registry whose token service sits behind a proxy
/// with `rule`, and a proxy in front of the registry that challenges every
/// request without credentials with that token service.
fn behind_a_token_service(
    rule: impl Fn(&support::proxy::Seen, usize) -> Action + Send + Sync + 'static,
) -> (Registry, Proxy, Proxy) {
    let (registry, _) = registry(RegistryOptions::new().token(TokenOptions::new()));
    let issuer = registry.token_issuer().unwrap();
    let tokens = Proxy::start(&format!("http://{}", issuer.host()), rule);
    let challenge = format!(
        "Bearer realm=\"{}/token\",service=\"{}\"",
        tokens.base_url(),
        issuer.service()
    );
    let proxy = Proxy::start(&registry.base_url(), move |seen, _| {
        if seen.authorized {
            Action::Forward
        } else {
            Action::Respond(Reply::json(401, "{}").header("WWW-Authenticate", &challenge))
        }
    });
    (registry, tokens, proxy)
}

#[test]
fn a_token_service_error_is_retried() {
    let (_registry, tokens, proxy) = behind_a_token_service(|_, before| {
        if before == 0 {
            Action::Respond(Reply::json(503, "{}"))
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web"], false);
    let (out, report) = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(outcome(&report, "apps:web")["tag"], "1.6");
    assert_eq!(
        tokens.seen().len(),
        2,
        "one failed token request and one retry: {:?}",
        tokens.seen()
    );
}

#[test]
fn a_low_rate_limit_is_reported_and_head_is_enough() {
    let (registry, seeded) = registry(RegistryOptions::new());
    let proxy = Proxy::start(&registry.base_url(), |seen, _| {
        if seen.target.contains("/manifests/") {
            Action::AddHeader("ratelimit-remaining".into(), "3;w=21600".into())
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web"], true);
    let (out, report) = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(
        outcome(&report, "apps:web")["digest"],
        seeded.digest("acme/web", "1.6")
    );
    let problems = report["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["severity"] == "warning"
            && p["message"].as_str().unwrap().contains("3 pulls remaining")),
        "{report}"
    );
    assert_eq!(proxy.count("HEAD", "/v2/acme/web/manifests/1.6"), 1);
    assert_eq!(
        proxy.count("GET", "/v2/acme/web/manifests/"),
        0,
        "HEAD was enough"
    );
}

#[test]
fn a_digest_the_registry_does_not_name_is_hashed_from_the_manifest() {
    let (registry, seeded) = registry(RegistryOptions::new());
    let proxy = Proxy::start(&registry.base_url(), |seen, _| {
        match (seen.method.as_str(), seen.target.contains("/manifests/")) {
            ("HEAD", true) => Action::Respond(Reply::json(405, "")),
            (_, true) => Action::DropHeader("Docker-Content-Digest".into()),
            _ => Action::Forward,
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web"], true);
    let (out, report) = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(
        outcome(&report, "apps:web")["digest"],
        seeded.digest("acme/web", "1.6")
    );
    assert_eq!(proxy.count("GET", "/v2/acme/web/manifests/1.6"), 1);
}

#[test]
fn requests_to_one_host_stay_within_the_per_host_bound() {
    let (registry, _) = registry(RegistryOptions::new());
    let peak_for = |per_host: &str| {
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (a, p) = (active.clone(), peak.clone());
        let proxy = Proxy::start(&registry.base_url(), move |seen, _| {
            if seen.target.contains("/tags/list") {
                let now = a.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(150));
                a.fetch_sub(1, Ordering::SeqCst);
            }
            Action::Forward
        });
        let dir = tempfile::tempdir().unwrap();
        tree(dir.path(), &proxy.host(), &REPOSITORIES, false);
        let (out, report) = run(dir.path(), &["--per-host", per_host]);
        assert_eq!(out.status.code(), Some(0), "{report}");
        for name in REPOSITORIES {
            assert_eq!(
                proxy.count("GET", &format!("/v2/acme/{name}/tags/list")),
                1,
                "listed once"
            );
        }
        peak.load(Ordering::SeqCst)
    };
    assert!(peak_for("2") <= 2);
    assert!(
        peak_for("4") >= 3,
        "requests to one host should overlap when allowed"
    );
}

/// The `error` of `policy`, which must have failed.
fn failure(report: &serde_json::Value, policy: &str) -> String {
    outcome(report, policy)["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{policy} did not fail: {report}"))
        .to_string()
}

/// Everything the run printed.
fn printed(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

/// A page of `size` made-up tags, numbered from `first`, and a `Link` to the next.
fn endless_page(name: &str, first: usize, size: usize) -> Reply {
    let tags: Vec<String> = (first..first + size).map(|i| format!("t{i}")).collect();
    let body = serde_json::json!({ "name": name, "tags": tags }).to_string();
    Reply::json(200, &body).header(
        "Link",
        &format!(
            "</v2/{name}/tags/list?n={size}&last=t{}>; rel=\"next\"",
            first + size - 1
        ),
    )
}

#[test]
fn a_registry_paging_endlessly_fails_only_its_repository() {
    let (registry, _) = registry(RegistryOptions::new());
    // 20,000 new tags on every page, for ever (no page repeats).
    let proxy = Proxy::start(&registry.base_url(), |seen, _| {
        if is_tags(&seen.target, "api") {
            let first = seen
                .target
                .split("last=t")
                .nth(1)
                .and_then(|n| n.parse::<usize>().ok())
                .map_or(0, |n| n + 1);
            Action::Respond(endless_page("acme/api", first, 20_000))
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web", "api"], false);
    let (out, report) = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(outcome(&report, "apps:web")["tag"], "1.6", "{report}");
    let error = failure(&report, "apps:api");
    assert!(
        error.contains("more than 100000 tags") && error.contains("--max-tags"),
        "{error}"
    );
    assert_eq!(
        proxy.count("GET", "/v2/acme/api/tags/list"),
        6,
        "reading stops at the first page past the limit"
    );
    // The limit is adjustable.
    let (out, report) = run(dir.path(), &["--max-tags", "30000"]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(failure(&report, "apps:api").contains("more than 30000 tags"));
}

#[test]
fn a_huge_body_fails_only_its_repository() {
    let (registry, _) = registry(RegistryOptions::new());
    let huge = format!(r#"{{"tags":["{}"]}}"#, "x".repeat(17 << 20));
    let proxy = Proxy::start(&registry.base_url(), move |seen, _| {
        if is_tags(&seen.target, "api") {
            Action::Respond(Reply::json(200, &huge))
        } else if seen.target.starts_with("/v2/acme/cut/manifests/") {
            match seen.method.as_str() {
                "HEAD" => Action::Respond(Reply::json(405, "")),
                _ => Action::Respond(Reply::json(200, &"x".repeat(5 << 20))),
            }
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web", "api"], false);
    let cut = dir.path().join("cut");
    std::fs::create_dir(&cut).unwrap();
    tree(&cut, &proxy.host(), &["cut"], true);
    let (out, report) = run(dir.path(), &["--retries", "0"]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(outcome(&report, "apps:web")["tag"], "1.6", "{report}");
    let api = failure(&report, "apps:api");
    assert!(
        api.contains("sent a tag list page larger than 16 MiB"),
        "{api}"
    );
    let cut = failure(&report, "apps:cut");
    assert!(cut.contains("sent a manifest larger than 4 MiB"), "{cut}");
}

#[test]
fn a_huge_token_answer_fails_only_its_host() {
    let huge = format!(r#"{{"token":"{}"}}"#, "x".repeat(2 << 20));
    let (_registry, _tokens, proxy) =
        behind_a_token_service(move |_, _| Action::Respond(Reply::json(200, &huge)));
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web"], false);
    let (out, report) = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let error = failure(&report, "apps:web");
    assert!(
        error.contains("sent a token answer larger than 1 MiB"),
        "{error}"
    );
}

#[test]
fn a_token_that_cannot_be_a_header_is_named_not_reported_as_401() {
    let (_registry, _tokens, proxy) =
        behind_a_token_service(|_, _| Action::Respond(Reply::json(200, r#"{"token":"abc\ndef"}"#)));
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web"], false);
    let (out, report) = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let error = failure(&report, "apps:web");
    assert!(
        error.contains("cannot be sent in an HTTP header") && !error.contains("HTTP 401"),
        "{error}"
    );
}

#[test]
fn still_429_after_the_retries_says_so() {
    let (registry, _) = registry(RegistryOptions::new());
    let proxy = Proxy::start(&registry.base_url(), |seen, _| {
        if is_tags(&seen.target, "web") {
            Action::Respond(Reply::json(429, "{}").header("Retry-After", "0"))
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web"], false);
    let (out, report) = run(dir.path(), &["--retries", "2"]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let error = failure(&report, "apps:web");
    assert!(error.contains("still HTTP 429 after 2 retries"), "{error}");
    assert_eq!(proxy.count("GET", "/v2/acme/web/tags/list"), 3);
}

#[test]
fn a_429_wait_does_not_hold_the_hosts_slot() {
    let (registry, _) = registry(RegistryOptions::new());
    let proxy = Proxy::start(&registry.base_url(), |seen, before| {
        if seen.target.contains("/tags/list") && before == 0 {
            Action::Respond(Reply::json(429, "{}").header("Retry-After", "1"))
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &REPOSITORIES, false);
    let (out, report) = run(dir.path(), &["--per-host", "1"]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let lists: Vec<String> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.target.contains("/tags/list"))
        .map(|s| s.target)
        .collect();
    let first_again = lists
        .iter()
        .enumerate()
        .position(|(i, t)| lists[..i].contains(t))
        .unwrap();
    assert_eq!(
        first_again,
        REPOSITORIES.len(),
        "every repository was asked while the first waited: {lists:?}"
    );
}

#[test]
fn the_run_deadline_fails_outstanding_repositories_and_applies_the_rest() {
    let (registry, _) = registry(RegistryOptions::new());
    let proxy = Proxy::start(&registry.base_url(), |seen, _| {
        if is_tags(&seen.target, "slow") {
            Action::Delay(Duration::from_secs(6))
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["web", "slow"], false);
    let started = std::time::Instant::now();
    let (out, report) = run(dir.path(), &["--deadline", "2"]);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(outcome(&report, "apps:web")["tag"], "1.6", "{report}");
    let error = failure(&report, "apps:slow");
    assert!(error.contains("deadline (--deadline 2s) passed"), "{error}");
}

#[test]
fn short_and_stalled_bodies_say_so() {
    let (registry, _) = registry(RegistryOptions::new());
    let proxy = Proxy::start(&registry.base_url(), |seen, _| {
        if is_tags(&seen.target, "cut") {
            Action::Truncate(10)
        } else if is_tags(&seen.target, "slow") {
            Action::Stall(10, Duration::from_secs(5))
        } else {
            Action::Forward
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["cut", "slow"], false);
    let (out, report) = run(dir.path(), &["--timeout", "1", "--retries", "0"]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let cut = failure(&report, "apps:cut");
    assert!(
        cut.contains("closed the connection before the whole tag list page arrived"),
        "{cut}"
    );
    let slow = failure(&report, "apps:slow");
    assert!(
        slow.contains("did not finish sending the tag list page within 1s"),
        "{slow}"
    );
    assert!(!printed(&out).contains("error decoding response body"));
}

#[test]
fn a_presigned_url_never_appears_when_a_redirected_body_fails() {
    let (registry, _) = registry(RegistryOptions::new());
    let storage = Proxy::start(&registry.base_url(), |seen, _| {
        if seen.target.contains("/acme/cut/") {
            Action::Truncate(10)
        } else {
            Action::Stall(10, Duration::from_secs(5))
        }
    });
    let storage_url = storage.base_url();
    let proxy = Proxy::start(&registry.base_url(), move |seen, _| {
        match (seen.method.as_str(), seen.target.contains("/manifests/")) {
            ("HEAD", true) => Action::Respond(Reply::json(405, "")),
            (_, true) => Action::Respond(Reply::json(307, "").header(
                "Location",
                &format!(
                    "{storage_url}{}?X-Amz-Credential=KEYID&X-Amz-Signature=deadbeefsecret",
                    seen.target
                ),
            )),
            _ => Action::Forward,
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &proxy.host(), &["cut", "slow"], true);
    let (out, report) = run(dir.path(), &["--timeout", "1", "--retries", "0"]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        failure(&report, "apps:cut").contains(&storage.base_url()),
        "{report}"
    );
    assert!(
        failure(&report, "apps:slow").contains("did not finish sending"),
        "{report}"
    );
    let printed = printed(&out);
    for secret in ["X-Amz", "deadbeefsecret", "KEYID"] {
        assert!(!printed.contains(secret), "{secret} in {printed}");
    }
}

/// A tree like [`tree`], but with registries reached over HTTPS.
fn secure_tree(dir: &Path, host: &str, name: &str, digest: bool) {
    tree(dir, host, &[name], digest);
    let path = dir.join("policies.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace(", insecure: true", "")).unwrap();
}

/// Tag reads, `Link` pages and manifests (blobs take the same path).
#[test]
fn https_registries_may_not_send_requests_on_to_plain_http() {
    let (registry, seeded) = registry(RegistryOptions::new());
    let elsewhere = Proxy::start(&registry.base_url(), |_, _| Action::Forward);
    let (plain, link) = (elsewhere.base_url(), elsewhere.base_url());
    let proxy = Proxy::start(&registry.base_url(), move |seen, _| {
        if is_tags(&seen.target, "web") || seen.target.starts_with("/v2/acme/cut/manifests/") {
            Action::Redirect(plain.clone())
        } else if is_tags(&seen.target, "api") {
            Action::Respond(Reply::json(200, r#"{"tags":["9.9"]}"#).header(
                "Link",
                &format!("<{link}/v2/acme/api/tags/list?last=9.9>; rel=\"next\""),
            ))
        } else {
            Action::Forward
        }
    });
    let front = TlsFront::start(&proxy.host());
    let dir = tempfile::tempdir().unwrap();
    secure_tree(dir.path(), &front.host(), "web", false);
    for (name, digest) in [("api", false), ("cut", true)] {
        let sub = dir.path().join(name);
        std::fs::create_dir(&sub).unwrap();
        secure_tree(&sub, &front.host(), name, digest);
    }
    let ca = front.ca_file();
    let (out, report) = run(dir.path(), &["--ca-file", ca.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for policy in ["apps:web", "apps:api", "apps:cut"] {
        let error = failure(&report, policy);
        assert!(
            error.contains("refusing an HTTPS to HTTP downgrade")
                && error.contains("--insecure-registry if"),
            "{error}"
        );
    }
    assert!(elsewhere.seen().is_empty(), "{:?}", elsewhere.seen());
    // Named insecure, the plain-HTTP host is followed.
    let (out, report) = run(
        dir.path(),
        &[
            "--ca-file",
            ca.to_str().unwrap(),
            "--insecure-registry",
            &elsewhere.host(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(outcome(&report, "apps:web")["tag"], "1.6", "{report}");
    assert_eq!(
        outcome(&report, "apps:cut")["digest"],
        seeded.digest("acme/cut", "1.6"),
        "{report}"
    );
}

#[test]
fn https_to_a_plain_http_registry_suggests_insecure_registry() {
    let (registry, _) = registry(RegistryOptions::new());
    let dir = tempfile::tempdir().unwrap();
    secure_tree(dir.path(), &registry.host(), "web", false);
    let (out, report) = run(dir.path(), &["--retries", "0"]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let error = failure(&report, "apps:web");
    assert!(
        error.contains(&format!("--insecure-registry {}", registry.host())),
        "{error}"
    );
}

#[test]
fn a_malformed_docker_config_entry_for_another_registry_is_a_warning() {
    let (registry, _) = registry(RegistryOptions::new());
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &registry.host(), &["web"], false);
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"auths": {"unrelated.example": {"auth": "not base64!"}}}"#,
    )
    .unwrap();
    let (out, report) = run(dir.path(), &["--docker-config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(outcome(&report, "apps:web")["tag"], "1.6", "{report}");
    assert!(
        report["problems"].as_array().unwrap().iter().any(|p| {
            p["severity"] == "warning"
                && p["message"]
                    .as_str()
                    .unwrap()
                    .contains("auths[\"unrelated.example\"].auth is not valid base64")
        }),
        "{report}"
    );
}
