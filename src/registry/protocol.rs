//! The pure parts of the OCI distribution protocol: reading challenges,
//! paging links, `Retry-After`, rate-limit headers and token responses, and
//! deciding how long to wait before a retry. No I/O here, so every rule is
//! tested from header strings.

use std::time::Duration;

/// The media types a manifest request accepts: OCI index and manifest, Docker
/// manifest list and v2 manifest.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// What a registry asked for in `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header (RFC 7235 auth-params; quoted values
/// may contain commas, as scopes do: `repository:a/b:pull,push`).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => {
            let params = auth_params(rest);
            let get = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            Some(Challenge::Bearer {
                realm: get("realm")?,
                service: get("service"),
                scope: get("scope"),
            })
        }
        _ => None,
    }
}

fn auth_params(text: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let name = rest[..eq].trim().trim_start_matches(',').trim().to_string();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            out.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => out.push(c),
                }
            }
            value = out;
            rest = &quoted[end.min(quoted.len())..];
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        params.push((name, value));
    }
    params
}

/// The `rel="next"` target of a `Link` header, if any.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
        });
        is_next.then(|| target.to_string())
    })
}

/// `Retry-After` as a delay: delta-seconds, or an HTTP date relative to `now`
/// (seconds since the Unix epoch).
pub fn retry_after(header: &str, now: u64) -> Option<Duration> {
    let header = header.trim();
    if let Ok(seconds) = header.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(header)?;
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as seconds since the epoch.
fn parse_http_date(text: &str) -> Option<u64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let (day, year): (u64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    // A header is untrusted input: out-of-range fields are no date at all.
    if !(1..=31).contains(&day) || !(1..=9999).contains(&year) || *h > 23 || *m > 59 || *s > 60 {
        return None;
    }
    let days = crate::civil::days_from_civil(year, month as i64, day as i64);
    u64::try_from(days)
        .ok()
        .map(|d| d * 86_400 + h * 3_600 + m * 60 + s)
}

/// Docker Hub's `ratelimit-remaining: 76;w=21600` as the count.
pub fn ratelimit_remaining(header: &str) -> Option<u64> {
    header.split(';').next()?.trim().parse().ok()
}

/// A token endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    /// The bearer token and how long it may be reused. Docker's spec says
    /// 60 s when unstated; a margin keeps us from using one at its last second.
    pub fn token(&self) -> Option<(&str, Duration)> {
        let token = self
            .token
            .as_deref()
            .or(self.access_token.as_deref())
            .filter(|t| !t.is_empty())?;
        // At least the spec's 60 s; at most a day, whatever a server claims.
        let lifetime = self.expires_in.unwrap_or(60).clamp(60, 86_400);
        Some((token, Duration::from_secs(lifetime.saturating_sub(10))))
    }
}

/// Jittered exponential backoff: attempt 0 waits about `base`, each next one
/// twice as long, never more than `cap`; `jitter` in [0, 1) spreads clients.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exponential = base.saturating_mul(1u32 << attempt.min(16));
    exponential
        .min(cap)
        .mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

/// What a manifest says, as far as rules need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Manifest {
    /// An OCI index or Docker manifest list: `(platform, digest)` per entry.
    Index(Vec<(String, String)>),
    /// One image: the digest of its config blob.
    Image { config: String },
}

/// Reads an OCI or Docker manifest or index; `None` for anything else.
pub fn parse_manifest(body: &[u8]) -> Option<Manifest> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if let Some(entries) = value.get("manifests").and_then(|m| m.as_array()) {
        return Some(Manifest::Index(
            entries
                .iter()
                .filter_map(|e| {
                    let digest = e.get("digest")?.as_str()?.to_string();
                    Some((platform_of(e.get("platform")?)?, digest))
                })
                .collect(),
        ));
    }
    let config = value.get("config")?.get("digest")?.as_str()?.to_string();
    Some(Manifest::Image { config })
}

/// `os/architecture[/variant]` from an index entry's `platform` or an image config.
pub fn platform_of(value: &serde_json::Value) -> Option<String> {
    let os = value.get("os")?.as_str()?;
    let architecture = value.get("architecture")?.as_str()?;
    Some(match value.get("variant").and_then(|v| v.as_str()) {
        Some(variant) if !variant.is_empty() => format!("{os}/{architecture}/{variant}"),
        _ => format!("{os}/{architecture}"),
    })
}

/// `sha256:<hex>` of `bytes`: the digest of content a registry did not name.
pub fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let hex: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// The token scope for pulling a repository.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_hashed_as_sha256() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn challenges_of_real_registries() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("basic"), Some(Challenge::Basic));
        assert_eq!(
            parse_challenge("Bearer realm=https://x/token, service=x"),
            Some(Challenge::Bearer {
                realm: "https://x/token".into(),
                service: Some("x".into()),
                scope: None,
            })
        );
        assert_eq!(parse_challenge("Bearer service=\"x\""), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }

    #[test]
    fn next_links() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#),
            Some("/v2/a/tags/list?last=b&n=2".into())
        );
        assert_eq!(
            next_link(r#"<https://x/v2/a/tags/list?n=2&last=b>; rel=next, </other>; rel="prev""#),
            Some("https://x/v2/a/tags/list?n=2&last=b".into())
        );
        assert_eq!(next_link(r#"</other>; rel="prev""#), None);
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(retry_after("7", 0), Some(Duration::from_secs(7)));
        let now = 784_111_777; // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:30 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("Sun, 00 Mar 2024 00:00:00 GMT", now), None);
        assert_eq!(
            retry_after("Sun, 01 Mar 99999999999 99999:00:00 GMT", now),
            None
        );
    }

    #[test]
    fn ratelimit_headers() {
        assert_eq!(ratelimit_remaining("76;w=21600"), Some(76));
        assert_eq!(ratelimit_remaining("0"), Some(0));
        assert_eq!(ratelimit_remaining("x"), None);
    }

    #[test]
    fn token_responses() {
        let r: TokenResponse = serde_json::from_str(r#"{"token":"t","expires_in":300}"#).unwrap();
        assert_eq!(r.token(), Some(("t", Duration::from_secs(290))));
        let r: TokenResponse = serde_json::from_str(r#"{"access_token":"a"}"#).unwrap();
        assert_eq!(r.token(), Some(("a", Duration::from_secs(50))));
        let r: TokenResponse =
            serde_json::from_str(r#"{"token":"t","expires_in":18446744073709551615}"#).unwrap();
        assert_eq!(r.token(), Some(("t", Duration::from_secs(86_390))));
        let r: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert_eq!(r.token(), None);
    }

    #[test]
    fn manifests_and_indexes() {
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {"digest":"sha256:a","platform":{"os":"linux","architecture":"amd64"}},
            {"digest":"sha256:b","platform":{"os":"linux","architecture":"arm","variant":"v7"}},
            {"digest":"sha256:c"}]}"#;
        assert_eq!(
            parse_manifest(index),
            Some(Manifest::Index(vec![
                ("linux/amd64".into(), "sha256:a".into()),
                ("linux/arm/v7".into(), "sha256:b".into()),
            ]))
        );
        let image = br#"{"schemaVersion":2,"config":{"digest":"sha256:cfg","size":1},"layers":[]}"#;
        assert_eq!(
            parse_manifest(image),
            Some(Manifest::Image {
                config: "sha256:cfg".into()
            })
        );
        assert_eq!(parse_manifest(b"{}"), None);
        assert_eq!(parse_manifest(b"not json"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        assert_eq!(backoff(0, base, cap, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(2, base, cap, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(10, base, cap, 1.0), cap);
        assert_eq!(backoff(1, base, cap, 0.0), Duration::from_millis(100));
    }
}
