//! A fault-injecting HTTP proxy in front of a real registry.
//!
//! Distribution 2.8 never paginates `tags/list`, never answers `429`, and does
//! not fail on demand; production registries do all of that. The proxy
//! forwards each request to the registry unless a rule says otherwise: answer
//! for it, serve its tag list in pages, cut its body short, delay it, add a
//! header, or redirect it elsewhere. Every connection carries one request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::http;

/// One request as the proxy saw it; Authorization only as present or not.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub authorized: bool,
}

/// An answer the proxy makes up.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What to do with one request.
#[derive(Debug, Clone)]
pub enum Action {
    Forward,
    Respond(Reply),
    /// Forward, then declare the full length but send only this many bytes.
    Truncate(usize),
    /// Forward after waiting.
    Delay(Duration),
    /// Forward, send the head and this many body bytes, then stall (the
    /// connection stays open, silent) for the duration.
    Stall(usize, Duration),
    /// Serve the registry's tag list in pages of this size, with `Link` headers.
    Page(usize),
    /// Forward and add a header to the answer.
    AddHeader(String, String),
    /// Forward and remove a header from the answer.
    DropHeader(String),
    /// Answer `307` to the same path on another base URL.
    Redirect(String),
}

type Rule = dyn Fn(&Seen, usize) -> Action + Send + Sync;

pub struct Proxy {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (a plain-HTTP base URL). The rule sees each
    /// request and how many requests with the same method and target came before.
    pub fn start(
        upstream: &str,
        rule: impl Fn(&Seen, usize) -> Action + Send + Sync + 'static,
    ) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("a local address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rule: Arc<Rule> = Arc::new(rule);
        let (log, upstream) = (seen.clone(), upstream.trim_end_matches('/').to_string());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (log, rule, upstream) = (log.clone(), rule.clone(), upstream.clone());
                std::thread::spawn(move || handle(stream, &upstream, &log, rule.as_ref()));
            }
        });
        Proxy { port, seen }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.host())
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("not poisoned").clone()
    }

    /// Requests with this method whose target starts with `prefix`.
    pub fn count(&self, method: &str, prefix: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.target.starts_with(prefix))
            .count()
    }
}

fn handle(stream: TcpStream, upstream: &str, log: &Mutex<Vec<Seen>>, rule: &Rule) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(length) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body.resize(length, 0);
        let _ = reader.read_exact(&mut body);
    }
    let seen = Seen {
        method: method.clone(),
        target: target.clone(),
        authorized: header("authorization").is_some(),
    };
    let before = {
        let mut log = log.lock().expect("not poisoned");
        let before = log
            .iter()
            .filter(|s| s.method == seen.method && s.target == seen.target)
            .count();
        log.push(seen.clone());
        before
    };
    let forwarded: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| {
            ["authorization", "accept", "content-type"].contains(&k.to_ascii_lowercase().as_str())
        })
        .cloned()
        .collect();
    let forward = |target: &str| {
        let pairs: Vec<(&str, &str)> = forwarded
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        http::request(&method, &format!("{upstream}{target}"), &pairs, &body)
    };
    let mut stall = None;
    let (reply, cut) = match rule(&seen, before) {
        Action::Respond(reply) => (reply, None),
        Action::Redirect(base) => (
            Reply::json(307, "").header(
                "Location",
                &format!("{}{target}", base.trim_end_matches('/')),
            ),
            None,
        ),
        Action::Page(size) => (page(&target, size, &forward), None),
        action => {
            if let Action::Delay(delay) = &action {
                std::thread::sleep(*delay);
            }
            let Ok(response) = forward(&target) else {
                return;
            };
            let mut reply = Reply {
                status: response.status,
                headers: response
                    .headers
                    .iter()
                    .filter(|(k, _)| {
                        !["content-length", "transfer-encoding", "connection"]
                            .contains(&k.to_ascii_lowercase().as_str())
                    })
                    .cloned()
                    .collect(),
                body: response.body,
            };
            let declared = response
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse::<usize>().ok());
            if method == "HEAD" {
                reply
                    .headers
                    .push(("Content-Length".into(), declared.unwrap_or(0).to_string()));
            }
            match action {
                Action::Truncate(keep) => (reply, Some(keep)),
                Action::Stall(keep, wait) => {
                    stall = Some(wait);
                    (reply, Some(keep))
                }
                Action::AddHeader(k, v) => (reply.header(&k, &v), None),
                Action::DropHeader(name) => {
                    reply
                        .headers
                        .retain(|(k, _)| !k.eq_ignore_ascii_case(&name));
                    (reply, None)
                }
                _ => (reply, None),
            }
        }
    };
    let kept = stream.try_clone();
    write_reply(stream, &method, &reply, cut);
    if let (Some(wait), Ok(_open)) = (stall, kept) {
        std::thread::sleep(wait);
    }
}

/// One page of the registry's full tag list, with a `Link` to the next.
fn page(
    target: &str,
    size: usize,
    forward: &dyn Fn(&str) -> std::io::Result<http::Response>,
) -> Reply {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let last = query
        .split('&')
        .find_map(|p| p.strip_prefix("last="))
        .map(http::url_decode);
    let Ok(full) = forward(path) else {
        return Reply::json(502, "{}");
    };
    if full.status != 200 {
        return Reply {
            status: full.status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: full.body,
        };
    }
    let listed: serde_json::Value = serde_json::from_slice(&full.body).unwrap_or_default();
    let tags: Vec<String> = listed["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let start = match &last {
        Some(last) => tags
            .iter()
            .position(|t| t == last)
            .map_or(tags.len(), |i| i + 1),
        None => 0,
    };
    let end = (start + size).min(tags.len());
    let body = serde_json::json!({"name": listed["name"], "tags": tags[start..end]}).to_string();
    let mut reply = Reply::json(200, &body);
    if end < tags.len() {
        let next = format!(
            "<{path}?n={size}&last={}>; rel=\"next\"",
            http::url_encode(&tags[end - 1])
        );
        reply = reply.header("Link", &next);
    }
    reply
}

fn write_reply(mut stream: TcpStream, method: &str, reply: &Reply, cut: Option<usize>) {
    let has_length = reply
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
    if !has_length {
        head.push_str(&format!("Content-Length: {}\r\n", reply.body.len()));
    }
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    if method != "HEAD" {
        let body = match cut {
            Some(keep) => &reply.body[..keep.min(reply.body.len())],
            None => &reply.body[..],
        };
        let _ = stream.write_all(body);
    }
    let _ = stream.flush();
}

/// HTTPS in front of a plain-HTTP server (a [`Proxy`]): a certificate for
/// 127.0.0.1 from its own CA (`ca_file`), each request passed on whole over
/// a new connection and the answer passed back.
pub struct TlsFront {
    port: u16,
    dir: tempfile::TempDir,
}

impl TlsFront {
    pub fn start(upstream_host: &str) -> TlsFront {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let dir = tempfile::tempdir().expect("a temp dir");
        super::registry::write_tls_files(dir.path());
        let certs = CertificateDer::pem_file_iter(dir.path().join("server.pem"))
            .expect("server.pem")
            .collect::<Result<Vec<_>, _>>()
            .expect("a certificate");
        let key = PrivateKeyDer::from_pem_file(dir.path().join("server-key.pem")).expect("a key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("a server config");
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("a local address").port();
        let upstream = upstream_host.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let (config, upstream) = (config.clone(), upstream.clone());
                std::thread::spawn(move || pass_on(stream, config, &upstream));
            }
        });
        TlsFront { port, dir }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The CA to trust (`--ca-file`).
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.dir.path().join("ca.pem")
    }
}

fn pass_on(stream: TcpStream, config: Arc<rustls::ServerConfig>, upstream: &str) {
    let Ok(connection) = rustls::ServerConnection::new(config) else {
        return;
    };
    let mut tls = rustls::StreamOwned::new(connection, stream);
    // One request: the head, then as many body bytes as it declares.
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") {
        match tls.read(&mut byte) {
            Ok(1) => request.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    if tls.read_exact(&mut body).is_err() {
        return;
    }
    request.extend_from_slice(&body);
    let Ok(mut plain) = TcpStream::connect(upstream) else {
        return;
    };
    if plain.write_all(&request).is_err() {
        return;
    }
    let mut answer = [0u8; 16 * 1024];
    while let Ok(n) = plain.read(&mut answer) {
        if n == 0 || tls.write_all(&answer[..n]).is_err() {
            break;
        }
    }
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
}
