//! Shared test support for talking to a real OCI registry.
//!
//! `image-update` resolves tags against OCI registries over HTTP, so its
//! integration tests need a registry that behaves like production ones: the
//! CNCF distribution server (`docker-registry`, Debian package
//! `docker-registry`) started per test on a free loopback port, optionally
//! behind htpasswd (Basic) or token (Bearer) authentication and TLS, and seeded
//! with images and multi-platform indexes whose digests the tests know. This
//! module is compiled into every test binary that says `mod support;`; each
//! binary uses only part of it, hence the module-wide `allow(dead_code)`.
//!
//! * [`registry`]: start/stop `docker-registry serve` ([`Registry`], [`RegistryOptions`], [`Auth`]).
//! * [`token`]: a small token issuer (the `realm` of Bearer auth) ([`TokenIssuer`], [`TokenOptions`]).
//! * [`push`]: push images and indexes through the distribution API, and [`Seed`] to
//!   seed an authenticated or TLS registry (push anonymously, restart configured).
//! * [`http`]: a minimal blocking HTTP/1.1 client (plain HTTP only).
//! * [`tls`]: a TLS 1.2 handshake probe and X.509 helpers to check the TLS setup
//!   without a TLS client crate.
#![allow(dead_code, unused_imports)]

pub mod http;
pub mod proxy;
pub mod push;
pub mod registry;
pub mod tls;
pub mod token;

pub use push::{Seed, Seeded};
pub use registry::{Auth, Registry, RegistryOptions};
pub use token::{TokenIssuer, TokenOptions, TokenRequest};

use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The OCI digest (`sha256:<hex>`) of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock before 1970")
        .as_secs()
}

/// A YAML file of this repository (a path from its root), parsed.
pub fn load_yaml(path: &str) -> image_update::yaml::Stream {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let src = std::fs::read_to_string(&path).unwrap();
    image_update::yaml::parse(&src).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `cases` of a table of cases (upstream's ported tests, the
/// conformance tables), in order.
pub fn cases(table: &image_update::yaml::Stream) -> &[image_update::yaml::Node] {
    table.documents[0].root.get("cases").unwrap().items()
}

/// The cases of `kind` in a table of cases.
pub fn of_kind<'a>(
    table: &'a image_update::yaml::Stream,
    kind: &'a str,
) -> impl Iterator<Item = &'a image_update::yaml::Node> {
    cases(table)
        .iter()
        .filter(move |c| c.str_at(&["kind"]) == Some(kind))
}

/// The strings of a YAML sequence (none where there is no node).
pub fn strings(node: Option<&image_update::yaml::Node>) -> Vec<String> {
    node.map(image_update::yaml::Node::items)
        .unwrap_or_default()
        .iter()
        .map(|n| n.as_str().unwrap_or_default().to_string())
        .collect()
}

/// `secs` since the epoch as RFC 3339 UTC (`2024-05-01T12:00:00Z`), as
/// GNU `date` writes it: an oracle apart from the tool's own calendar.
pub fn rfc3339(secs: u64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date runs");
    assert!(out.status.success(), "date -d @{secs} failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

/// `n` bytes from the system CSPRNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut out = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("system random");
    out
}

/// A random lower-case hex string of `n` bytes of entropy.
pub fn random_hex(n: usize) -> String {
    hex(&random_bytes(n))
}

/// Runs `command` with `input` on its standard input; what it printed.
pub fn output_with_stdin(command: &mut std::process::Command, input: &str) -> std::process::Output {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(input.as_bytes())
        .expect("the command reads its input");
    drop(stdin);
    child.wait_with_output().expect("the command ends")
}

/// The JSON report a run printed, or a panic showing what it printed
/// instead.
pub fn json_report(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The report's count of `kind` requests: (sent, answered from the cache).
pub fn reported(report: &serde_json::Value, kind: &str) -> (u64, u64) {
    report["requests"]
        .as_array()
        .unwrap_or_else(|| panic!("no requests in {report}"))
        .iter()
        .filter(|r| r["kind"] == kind)
        .fold((0, 0), |(s, c), r| {
            (
                s + r["sent"].as_u64().unwrap(),
                c + r["cached"].as_u64().unwrap(),
            )
        })
}

/// Runs `git -C dir args…` as a fixed test identity, outside any global or
/// system configuration; its stdout, or a panic with its stderr.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}
