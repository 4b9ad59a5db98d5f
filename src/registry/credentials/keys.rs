//! How registry keys in those files are spelled and matched: a key's host and
//! podman namespace, which spelling of a host wins, and how a key is shown in
//! messages with any user info masked.

use super::{DOCKER_HUB, DOCKER_HUB_SERVER_URL};

/// Sort key among spellings of one host: docker's own key for Docker Hub
/// (the v1 URL), then the bare host, then the rest by text.
pub(super) fn prefer(key: &str, host: &str) -> (u8, String) {
    let rank = if host == DOCKER_HUB && key == DOCKER_HUB_SERVER_URL {
        0
    } else if key == host {
        1
    } else {
        2
    };
    (rank, key.to_string())
}

/// A registry key split into host and podman namespace.
pub(super) struct Key {
    pub(super) host: String,
    pub(super) namespace: Option<String>,
}

/// Normalises a key the way both tools can agree on: scheme and trailing
/// slashes dropped, host lowercased, Docker Hub's aliases folded together.
/// With a scheme the key is a URL and its path is ignored (docker's
/// `https://index.docker.io/v1/`); without one a path is a podman namespace,
/// except the API-version paths `v1` and `v2` that docker-era tools append.
pub(super) fn parse_key(raw: &str) -> Key {
    let raw = raw.trim();
    let scheme = scheme_len(raw);
    let rest = &raw[scheme..];
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.to_ascii_lowercase();
    // The same aliases as `crate::image::Repository::parse`.
    let host = match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        _ => host,
    };
    let path = path.trim_matches('/');
    let namespace = if scheme > 0 || path.is_empty() || path == "v1" || path == "v2" {
        None
    } else {
        Some(path.to_string())
    };
    Key { host, namespace }
}

pub(super) fn scheme_len(key: &str) -> usize {
    ["https://", "http://"]
        .iter()
        .find(|scheme| {
            key.get(..scheme.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
        })
        .map_or(0, |scheme| scheme.len())
}

/// A key as written, with any `user:password@` hidden: nobody should write
/// one, but keys are echoed into messages and must not leak one if they do.
pub(super) fn display_key(raw: &str) -> String {
    let start = scheme_len(raw);
    let end = raw[start..].find('/').map_or(raw.len(), |i| start + i);
    match raw[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &raw[..start], &raw[start + at..]),
        None => raw.to_string(),
    }
}
