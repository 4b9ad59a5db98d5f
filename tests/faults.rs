//! Registry faults a real registry will not produce on demand: paged tag
//! lists, `429` with `Retry-After`, bursts of `5xx`, truncated bodies, slow
//! answers, cross-host redirects and low rate limits. A small scripted HTTP
//! server on loopback plays the registry; the binary is the real one.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the server saw it (the Authorization header only as present or not).
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    authorized: bool,
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Declare this many more body bytes than are sent, then hang up.
    truncate: usize,
    delay: Duration,
}

impl Reply {
    fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
            truncate: 0,
            delay: Duration::ZERO,
        }
    }

    fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

type Handler = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

/// A scripted HTTP/1.1 server: every connection answers one request and
/// closes. The handler sees the request and how many requests came before it
/// for the same method and target.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    fn start(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (log, handler) = (log.clone(), handler.clone());
                std::thread::spawn(move || serve(stream, &log, handler.as_ref()));
            }
        });
        Server { port, seen }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn count(&self, method: &str, prefix: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.target.starts_with(prefix))
            .count()
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Seen>>, handler: &Handler) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    if let Some(length) = headers
        .get("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
    }
    let seen = Seen {
        method,
        target,
        authorized: headers.contains_key("authorization"),
    };
    let before = {
        let mut log = log.lock().unwrap();
        let before = log
            .iter()
            .filter(|s| s.method == seen.method && s.target == seen.target)
            .count();
        log.push(seen.clone());
        before
    };
    let reply = handler(&seen, before);
    std::thread::sleep(reply.delay);
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len() + reply.truncate
    );
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    if seen.method != "HEAD" {
        let _ = out.write_all(&reply.body);
    }
    let _ = out.flush();
}

const DIGEST: &str = "sha256:c102bf265a97eb52c7a58571672b567b76a46b02c4eaca26e9d00620d9fffa75";

/// A tree with one alphabetical policy per repository on `host`.
fn tree(dir: &Path, host: &str, repositories: &[&str], digest: bool) {
    let mut docs = Vec::new();
    for name in repositories {
        docs.push(format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: {name}, namespace: apps}}\nspec: {{image: {host}/acme/{name}, insecure: true}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  imageRepositoryRef: {{name: {name}}}\n  policy: {{alphabetical: {{}}}}\n  digestReflectionPolicy: {}\n",
            if digest { "Always" } else { "Never" }
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
        .env_remove("DOCKER_CONFIG")
        .env_remove("DOCKER_AUTH_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out, report)
}

fn outcome<'a>(report: &'a serde_json::Value, policy: &str) -> &'a serde_json::Value {
    report["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["policy"] == policy)
        .unwrap_or_else(|| panic!("no policy {policy} in {report}"))
}

#[test]
fn tag_lists_are_followed_across_pages() {
    let server = Server::start(|seen, _| match seen.target.as_str() {
        "/v2/" => Reply::json(200, "{}"),
        "/v2/acme/web/tags/list?n=1000" => {
            Reply::json(200, r#"{"name":"acme/web","tags":["a","b"]}"#)
                .header("Link", r#"</v2/acme/web/tags/list?n=2&last=b>; rel="next""#)
        }
        "/v2/acme/web/tags/list?n=2&last=b" => {
            Reply::json(200, r#"{"name":"acme/web","tags":["c"]}"#)
        }
        _ => Reply::json(404, "{}"),
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &server.host(), &["web"], false);
    let (out, report) = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(outcome(&report, "apps:web")["tag"], "c");
    assert_eq!(server.count("GET", "/v2/acme/web/tags/list"), 2);
    assert_eq!(server.count("GET", "/v2/"), 1 + 2);
}

#[test]
fn a_paging_loop_fails_the_repository() {
    let server = Server::start(|seen, _| match seen.target.as_str() {
        "/v2/" => Reply::json(200, "{}"),
        _ => Reply::json(200, r#"{"tags":["a"]}"#)
            .header("Link", r#"</v2/acme/web/tags/list?last=a>; rel="next""#),
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &server.host(), &["web"], false);
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
    let server = Server::start(|seen, before| match (seen.target.as_str(), before) {
        ("/v2/", _) => Reply::json(200, "{}"),
        ("/v2/acme/web/tags/list?n=1000", 0) => Reply::json(429, "{}").header("Retry-After", "1"),
        ("/v2/acme/web/tags/list?n=1000", _) => Reply::json(200, r#"{"tags":["1.0"]}"#),
        ("/v2/acme/api/tags/list?n=1000", _) => {
            Reply::json(429, "{}").header("Retry-After", "3600")
        }
        _ => Reply::json(404, "{}"),
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &server.host(), &["web", "api"], false);
    let started = std::time::Instant::now();
    let (out, report) = run(dir.path(), &["--max-retry-after", "5"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(outcome(&report, "apps:web")["tag"], "1.0", "{report}");
    let error = outcome(&report, "apps:api")["error"].as_str().unwrap();
    assert!(
        error.contains("rate limited") && error.contains("3600s") && error.contains("5s"),
        "{error}"
    );
    assert_eq!(server.count("GET", "/v2/acme/web/tags/list"), 2);
    assert_eq!(server.count("GET", "/v2/acme/api/tags/list"), 1);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn server_errors_are_retried_a_bounded_number_of_times() {
    let server = Server::start(|seen, before| match (seen.target.as_str(), before) {
        ("/v2/", _) => Reply::json(200, "{}"),
        ("/v2/acme/web/tags/list?n=1000", 0..=1) => Reply::json(503, "{}"),
        ("/v2/acme/web/tags/list?n=1000", _) => Reply::json(200, r#"{"tags":["1.0"]}"#),
        ("/v2/acme/api/tags/list?n=1000", _) => Reply::json(500, "{}"),
        _ => Reply::json(404, "{}"),
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &server.host(), &["web", "api"], false);
    let (out, report) = run(dir.path(), &["--retries", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(outcome(&report, "apps:web")["tag"], "1.0", "{report}");
    let error = outcome(&report, "apps:api")["error"].as_str().unwrap();
    assert!(
        error.contains("HTTP 500") && error.contains(&server.host()),
        "{error}"
    );
    assert_eq!(
        server.count("GET", "/v2/acme/api/tags/list"),
        3,
        "one try and two retries"
    );
}

#[test]
fn truncated_and_slow_answers_fail_only_their_repository() {
    let server = Server::start(|seen, _| match seen.target.as_str() {
        "/v2/" => Reply::json(200, "{}"),
        "/v2/acme/web/tags/list?n=1000" => Reply::json(200, r#"{"tags":["1.0"]}"#),
        "/v2/acme/cut/tags/list?n=1000" => Reply {
            truncate: 50,
            ..Reply::json(200, r#"{"tags":["#)
        },
        "/v2/acme/slow/tags/list?n=1000" => Reply {
            delay: Duration::from_secs(4),
            ..Reply::json(200, r#"{"tags":["1.0"]}"#)
        },
        _ => Reply::json(404, "{}"),
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &server.host(), &["web", "cut", "slow"], false);
    let (out, report) = run(dir.path(), &["--timeout", "1", "--retries", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(outcome(&report, "apps:web")["tag"], "1.0", "{report}");
    assert!(
        outcome(&report, "apps:cut")["error"]
            .as_str()
            .unwrap()
            .contains(&server.host()),
        "{report}"
    );
    let slow = outcome(&report, "apps:slow")["error"].as_str().unwrap();
    assert!(
        slow.contains("did not answer within 1s") || slow.contains("failed"),
        "{slow}"
    );
}

#[test]
fn credentials_are_not_forwarded_to_another_host_on_redirect() {
    let storage =
        Server::start(|_, _| Reply::json(200, "{}").header("Docker-Content-Digest", DIGEST));
    let storage_url = format!("http://{}/blobs/manifest", storage.host());
    let registry = Server::start(move |seen, _| {
        if !seen.authorized {
            return Reply::json(401, "{}").header("WWW-Authenticate", r#"Basic realm="test""#);
        }
        match (seen.method.as_str(), seen.target.as_str()) {
            (_, "/v2/") => Reply::json(200, "{}"),
            (_, "/v2/acme/web/tags/list?n=1000") => Reply::json(200, r#"{"tags":["1.0"]}"#),
            (_, "/v2/acme/web/manifests/1.0") => {
                Reply::json(307, "").header("Location", &storage_url)
            }
            _ => Reply::json(404, "{}"),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &registry.host(), &["web"], true);
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"auths": {{"{}": {{"auth": "dXNlcjpzM2NyM3Q="}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let (out, report) = run(dir.path(), &["--docker-config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(outcome(&report, "apps:web")["digest"], DIGEST);
    assert!(
        registry.seen().iter().any(|s| s.authorized),
        "the registry got the credentials"
    );
    assert!(!storage.seen().is_empty(), "the redirect was followed");
    assert!(
        storage.seen().iter().all(|s| !s.authorized),
        "credentials leaked to {:?}",
        storage.seen()
    );
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("s3cr3t") && !text.contains("dXNlcjpzM2NyM3Q="));
}

#[test]
fn one_bearer_token_serves_every_repository_of_a_host() {
    let tokens = Server::start(|_, _| Reply::json(200, r#"{"token":"t0k3n","expires_in":300}"#));
    let realm = format!("http://{}/token", tokens.host());
    let registry = Server::start(move |seen, _| {
        if !seen.authorized {
            return Reply::json(401, "{}").header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="{realm}",service="test""#),
            );
        }
        match seen.target.as_str() {
            t if t.ends_with("/tags/list?n=1000") => Reply::json(200, r#"{"tags":["1.0"]}"#),
            _ => Reply::json(404, "{}"),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &registry.host(), &["a", "b", "c", "d"], false);
    let (out, report) = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(tokens.seen().len(), 1, "{:?}", tokens.seen());
    let token_request = &tokens.seen()[0].target;
    for repo in ["a", "b", "c", "d"] {
        assert!(
            token_request.contains(&format!("scope=repository%3Aacme%2F{repo}%3Apull")),
            "{token_request}"
        );
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains("t0k3n"));
}

#[test]
fn a_low_docker_hub_style_rate_limit_is_reported() {
    let server = Server::start(|seen, _| match seen.target.as_str() {
        "/v2/" => Reply::json(200, "{}"),
        "/v2/acme/web/tags/list?n=1000" => Reply::json(200, r#"{"tags":["1.0"]}"#),
        _ => Reply::json(200, "{}")
            .header("Docker-Content-Digest", DIGEST)
            .header("ratelimit-remaining", "3;w=21600"),
    });
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &server.host(), &["web"], true);
    let (out, report) = run(dir.path(), &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    let problems = report["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p["severity"] == "warning"
            && p["message"].as_str().unwrap().contains("3 pulls remaining")),
        "{report}"
    );
    assert_eq!(server.count("HEAD", "/v2/acme/web/manifests/1.0"), 1);
    assert_eq!(
        server.count("GET", "/v2/acme/web/manifests/"),
        0,
        "HEAD was enough"
    );
}

#[test]
fn requests_to_one_host_stay_within_the_per_host_bound() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let peak_for = |per_host: &str| {
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (a, p) = (active.clone(), peak.clone());
        let server = Server::start(move |seen, _| {
            if seen.target == "/v2/" {
                return Reply::json(200, "{}");
            }
            let now = a.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(150));
            a.fetch_sub(1, Ordering::SeqCst);
            Reply::json(200, r#"{"tags":["1.0"]}"#)
        });
        let dir = tempfile::tempdir().unwrap();
        let names = ["a", "b", "c", "d", "e", "f"];
        tree(dir.path(), &server.host(), &names, false);
        let (out, report) = run(dir.path(), &["--per-host", per_host]);
        assert_eq!(out.status.code(), Some(0), "{report}");
        assert_eq!(
            server.count("GET", "/v2/acme/"),
            names.len(),
            "each repository listed once"
        );
        peak.load(Ordering::SeqCst)
    };
    assert!(peak_for("2") <= 2);
    assert!(
        peak_for("6") >= 3,
        "requests to one host should overlap when allowed"
    );
}
