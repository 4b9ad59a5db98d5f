//! Image references: parsing, the normal form used to compare repositories, and
//! the validity checks applied to everything a registry hands us before it is
//! written into a file.
//!
//! Users spell the same repository many ways (`nginx`, `docker.io/library/nginx`,
//! `index.docker.io/library/nginx`); the registry layer lists each repository
//! once per run, so every spelling must map to one key. The spelling the user
//! wrote is kept separately, because Flux writes it back unchanged.

use std::fmt;

/// The host Docker Hub images live on when a reference names no registry.
pub const DOCKER_HUB: &str = "docker.io";

/// A repository in normal form: registry host and path, no tag or digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    pub registry: String,
    pub path: String,
}

impl Repository {
    /// Normalises a repository name as Docker does: a first component without
    /// `.` or `:` (and not `localhost`) is a Docker Hub path, and single-name
    /// Docker Hub images live under `library/`.
    pub fn parse(name: &str) -> Result<Repository, ImageError> {
        let invalid = |why: &str| ImageError {
            reference: name.to_string(),
            reason: why.to_string(),
        };
        if name.is_empty() {
            return Err(invalid("the image name is empty"));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_ascii_lowercase(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
                DOCKER_HUB.to_string()
            }
            _ => registry,
        };
        let path = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if !path.split('/').all(is_path_component) {
            return Err(invalid(
                "repository path components must be lowercase letters, digits and single separators (. _ __ -)",
            ));
        }
        Ok(Repository { registry, path })
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)
    }
}

/// A full reference as written in a manifest: `name[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference<'a> {
    pub name: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

impl<'a> Reference<'a> {
    /// Splits a reference without validating it; a `:` after the last `/` starts the tag.
    pub fn split(text: &'a str) -> Reference<'a> {
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (text, None),
        };
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
            None => (rest, None),
        };
        Reference { name, tag, digest }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct ImageError {
    pub reference: String,
    pub reason: String,
}

fn is_path_component(c: &str) -> bool {
    // OCI distribution: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `text` with any `user:password@` before the host replaced by `***@`, so an
/// image someone wrote with credentials in it is never printed as written.
pub fn redact_credentials(text: &str) -> std::borrow::Cow<'_, str> {
    let after_scheme = text.find("://").map_or(0, |i| i + 3);
    let host_end = text[after_scheme..]
        .find('/')
        .map_or(text.len(), |i| after_scheme + i);
    match text[after_scheme..host_end].rfind('@') {
        Some(at) => format!("{}***{}", &text[..after_scheme], &text[after_scheme + at..]).into(),
        None => text.into(),
    }
}

/// OCI tag grammar: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// A digest we are willing to write: `algorithm:hex`, with the exact length
/// for the registered algorithms.
pub fn is_valid_digest(digest: &str) -> bool {
    let Some((algorithm, encoded)) = digest.split_once(':') else {
        return false;
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    let length_ok = match algorithm {
        "sha256" => encoded.len() == 64,
        "sha512" => encoded.len() == 128,
        _ => !encoded.is_empty(),
    };
    algorithm_ok
        && length_ok
        && encoded
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_spellings_normalise_to_one_repository() {
        let want = Repository::parse("docker.io/library/nginx").unwrap();
        for name in [
            "nginx",
            "library/nginx",
            "index.docker.io/library/nginx",
            "registry-1.docker.io/library/nginx",
            "index.docker.io/nginx",
        ] {
            assert_eq!(Repository::parse(name).unwrap(), want, "{name}");
        }
        assert_eq!(want.to_string(), "docker.io/library/nginx");
    }

    #[test]
    fn registries_are_recognised_by_dot_colon_or_localhost() {
        let r = Repository::parse("ghcr.io/acme/web").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.path.as_str()),
            ("ghcr.io", "acme/web")
        );
        let r = Repository::parse("localhost:5000/web").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.path.as_str()),
            ("localhost:5000", "web")
        );
        let r = Repository::parse("acme/worker").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.path.as_str()),
            ("docker.io", "acme/worker")
        );
        let r = Repository::parse("GHCR.IO/acme/web").unwrap();
        assert_eq!(r.registry, "ghcr.io");
    }

    #[test]
    fn invalid_repository_paths_are_refused() {
        for bad in [
            "",
            "ghcr.io/Acme/web",
            "web:1.0",
            "ghcr.io/acme//web",
            "a/-b",
        ] {
            assert!(Repository::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn references_split_into_name_tag_and_digest() {
        let r = Reference::split("localhost:5000/web:1.2@sha256:abc");
        assert_eq!(
            (r.name, r.tag, r.digest),
            ("localhost:5000/web", Some("1.2"), Some("sha256:abc"))
        );
        let r = Reference::split("localhost:5000/web");
        assert_eq!(
            (r.name, r.tag, r.digest),
            ("localhost:5000/web", None, None)
        );
        let r = Reference::split("nginx@sha256:abc");
        assert_eq!(
            (r.name, r.tag, r.digest),
            ("nginx", None, Some("sha256:abc"))
        );
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact_credentials("robot:s3cr3t@ghcr.io/acme/web"),
            "***@ghcr.io/acme/web"
        );
        assert_eq!(
            redact_credentials("https://u:p@host/x"),
            "https://***@host/x"
        );
        assert_eq!(
            redact_credentials("ghcr.io/acme/web@sha256:abc"),
            "ghcr.io/acme/web@sha256:abc"
        );
        assert_eq!(redact_credentials("nginx"), "nginx");
    }

    #[test]
    fn tag_grammar() {
        for ok in ["1.0", "_x", "v1.2.3-rc.1_b", &"a".repeat(128)] {
            assert!(is_valid_tag(ok), "{ok}");
        }
        for bad in [
            "",
            ".1",
            "-1",
            "a b",
            "1.0\n",
            "tag:x",
            &"a".repeat(129),
            "ü",
        ] {
            assert!(!is_valid_tag(bad), "{bad:?}");
        }
    }

    #[test]
    fn digest_grammar() {
        let hex = "c102bf265a97eb52c7a58571672b567b76a46b02c4eaca26e9d00620d9fffa75";
        assert!(is_valid_digest(&format!("sha256:{hex}")));
        assert!(!is_valid_digest(&format!("sha256:{}", &hex[1..])));
        assert!(!is_valid_digest(&format!("sha256:{}", hex.to_uppercase())));
        assert!(!is_valid_digest(hex));
        assert!(!is_valid_digest("sha256:"));
        assert!(is_valid_digest("blake3:0a1b"));
        assert!(!is_valid_digest("md5:zz"));
    }
}
