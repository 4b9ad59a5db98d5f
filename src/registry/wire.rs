//! How answers are read off the wire, and how the places they come from are
//! named.
//!
//! A registry is not trusted to be small, fast or honest. Every body is read
//! up to a bound chosen for what it is (a tag page, a token, a manifest, an
//! image config), so a hostile or broken registry costs one repository, never
//! the process's memory; a failure while reading says what happened (too big,
//! cut short, too slow) instead of "error decoding response body". Places are
//! named by their origin only: a presigned storage URL carries its signature
//! in the query, and a query is never shown.

use std::time::Duration;

use reqwest::Url;

/// A kind of answer and the most bytes read of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Body {
    pub what: &'static str,
    pub limit: usize,
}

const MIB: usize = 1 << 20;

/// One page of `tags/list`; 16 MiB holds about 150,000 typical tags.
pub const TAG_PAGE: Body = Body {
    what: "tag list page",
    limit: 16 * MIB,
};
/// A token service's answer: a few kilobytes in practice.
pub const TOKEN: Body = Body {
    what: "token answer",
    limit: MIB,
};
/// A manifest or index; registries themselves refuse pushes above 4 MiB.
pub const MANIFEST: Body = Body {
    what: "manifest",
    limit: 4 * MIB,
};
/// An image config blob.
pub const CONFIG: Body = Body {
    what: "image config",
    limit: 8 * MIB,
};

/// Why a body could not be read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    TooLarge { limit: usize },
    CutShort { got: usize, declared: Option<u64> },
    TimedOut { got: usize },
}

impl ReadError {
    /// Worth asking again: a connection that broke or stalled may not again.
    pub fn is_transient(&self) -> bool {
        !matches!(self, ReadError::TooLarge { .. })
    }

    /// What happened, naming the origin the body came from.
    pub fn message(&self, body: Body, origin: &str, timeout: Duration) -> String {
        match self {
            ReadError::TooLarge { limit } => format!(
                "{origin} sent a {} larger than {}; refusing to read it",
                body.what,
                size(*limit)
            ),
            ReadError::CutShort { got, declared } => {
                let of = declared.map_or(String::new(), |d| format!(" of {d}"));
                format!(
                    "{origin} closed the connection before the whole {} arrived ({got}{of} bytes read)",
                    body.what
                )
            }
            ReadError::TimedOut { got } => format!(
                "{origin} did not finish sending the {} within {}s ({got} bytes read)",
                body.what,
                timeout.as_secs()
            ),
        }
    }
}

/// The body of `response`, at most `body.limit` bytes of it.
pub async fn read(mut response: reqwest::Response, body: Body) -> Result<Vec<u8>, ReadError> {
    let declared = response.content_length();
    if declared.is_some_and(|d| d > body.limit as u64) {
        return Err(ReadError::TooLarge { limit: body.limit });
    }
    let mut out = Vec::with_capacity(declared.map_or(0, |d| d as usize));
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > body.limit {
                    return Err(ReadError::TooLarge { limit: body.limit });
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) if e.is_timeout() => return Err(ReadError::TimedOut { got: out.len() }),
            Err(_) => {
                return Err(ReadError::CutShort {
                    got: out.len(),
                    declared,
                });
            }
        }
    }
}

/// `scheme://host[:port]` of a URL: never its path's secrets or its query.
pub fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// `host[:port]` as users name it in `--insecure-registry`.
pub fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// Why a request from an HTTPS registry may not go to `next`: a plain-HTTP
/// target that was not named insecure (an attacker on the path, or a
/// misconfigured redirect, would otherwise choose the tags we use).
pub fn downgrade(
    registry: &Url,
    next: &Url,
    insecure: &std::collections::BTreeSet<String>,
) -> Option<String> {
    if registry.scheme() != "https" || next.scheme() != "http" {
        return None;
    }
    let authority = authority(next);
    if insecure.contains(&authority) {
        return None;
    }
    Some(format!(
        "{} sent the request on to plain HTTP at {}; refusing an HTTPS to HTTP downgrade (name {authority} with --insecure-registry if it is meant to be reached over HTTP)",
        origin(registry),
        origin(next)
    ))
}

fn size(bytes: usize) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn origins_never_show_a_query() {
        let signed =
            url("https://storage.example:8443/blob?X-Amz-Signature=abc&X-Amz-Credential=k");
        assert_eq!(origin(&signed), "https://storage.example:8443");
        assert_eq!(authority(&signed), "storage.example:8443");
        assert_eq!(authority(&url("http://Cdn.Example/x")), "cdn.example");
    }

    #[test]
    fn https_to_http_is_refused_unless_the_target_is_insecure() {
        let registry = url("https://reg.example");
        let plain = url("http://cdn.example:8080/v2/x/tags/list?last=a");
        let named = ["cdn.example:8080".to_string()].into_iter().collect();
        let message = downgrade(&registry, &plain, &Default::default()).unwrap();
        assert!(message.contains("http://cdn.example:8080"), "{message}");
        assert!(message.contains("--insecure-registry"), "{message}");
        assert!(!message.contains("last=a"), "{message}");
        assert_eq!(downgrade(&registry, &plain, &named), None);
        assert_eq!(
            downgrade(
                &registry,
                &url("https://cdn.example/x"),
                &Default::default()
            ),
            None
        );
        assert_eq!(
            downgrade(&url("http://reg.example"), &plain, &Default::default()),
            None,
            "an insecure registry has nothing to downgrade"
        );
    }

    #[test]
    fn read_errors_say_what_happened() {
        let timeout = Duration::from_secs(30);
        let too_large = ReadError::TooLarge { limit: 16 * MIB };
        assert_eq!(
            too_large.message(TAG_PAGE, "https://r", timeout),
            "https://r sent a tag list page larger than 16 MiB; refusing to read it"
        );
        assert!(!too_large.is_transient());
        let cut = ReadError::CutShort {
            got: 10,
            declared: Some(99),
        };
        assert!(cut.message(CONFIG, "https://s", timeout).contains(
            "closed the connection before the whole image config arrived (10 of 99 bytes read)"
        ));
        assert!(cut.is_transient());
        assert!(
            ReadError::TimedOut { got: 3 }
                .message(MANIFEST, "https://s", timeout)
                .contains("did not finish sending the manifest within 30s")
        );
    }
}
