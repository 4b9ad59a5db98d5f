//! What a run cost the registries: requests sent per registry and kind, and
//! those the cache answered instead, so users can see what a run takes out
//! of their rate limits (Docker Hub counts manifest `GET`s).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// The kinds of request the client makes, in the order reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Ping,
    Token,
    List,
    ManifestHead,
    ManifestGet,
    BlobGet,
    Other,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ping => "ping",
            Kind::Token => "token",
            Kind::List => "list",
            Kind::ManifestHead => "manifest HEAD",
            Kind::ManifestGet => "manifest GET",
            Kind::BlobGet => "blob GET",
            Kind::Other => "other",
        }
    }

    /// The kind of a registry API request, from its method and URL path.
    pub fn of(method: &str, path: &str) -> Kind {
        let Some(api) = path.strip_prefix("/v2/") else {
            return Kind::Other;
        };
        match (method, api) {
            (_, "") => Kind::Ping,
            _ if api.ends_with("/tags/list") => Kind::List,
            ("HEAD", _) if api.contains("/manifests/") => Kind::ManifestHead,
            ("GET", _) if api.contains("/manifests/") => Kind::ManifestGet,
            ("GET", _) if api.contains("/blobs/") => Kind::BlobGet,
            _ => Kind::Other,
        }
    }
}

/// One line of the report's `requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestCount {
    /// The registry host (`host[:port]`).
    pub registry: String,
    pub kind: &'static str,
    /// Requests sent, retries included.
    pub sent: usize,
    /// Requests the cache answered instead.
    pub cached: usize,
}

/// Counts shared by every request of a run.
#[derive(Debug, Default)]
pub struct Counter {
    counts: Mutex<BTreeMap<(String, Kind), (usize, usize)>>,
}

impl Counter {
    pub fn sent(&self, registry: &str, kind: Kind) {
        self.add(registry, kind, 1, 0);
    }

    pub fn cached(&self, registry: &str, kind: Kind) {
        self.add(registry, kind, 0, 1);
    }

    fn add(&self, registry: &str, kind: Kind, sent: usize, cached: usize) {
        let mut counts = self.counts.lock().expect("not poisoned");
        let count = counts.entry((registry.to_string(), kind)).or_default();
        count.0 += sent;
        count.1 += cached;
    }

    pub fn counts(&self) -> Vec<RequestCount> {
        self.counts
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|((registry, kind), (sent, cached))| RequestCount {
                registry: registry.clone(),
                kind: kind.name(),
                sent: *sent,
                cached: *cached,
            })
            .collect()
    }
}

/// The one-line summary: `host: 1 ping, 3 list, 0 manifest GET (+4 from cache)`.
pub fn summary(counts: &[RequestCount]) -> String {
    let mut by_registry: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for c in counts {
        let mut text = format!("{} {}", c.sent, c.kind);
        if c.cached > 0 {
            text.push_str(&format!(" (+{} from cache)", c.cached));
        }
        by_registry.entry(&c.registry).or_default().push(text);
    }
    by_registry
        .into_iter()
        .map(|(registry, parts)| format!("{registry}: {}", parts.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_registry_paths() {
        for (method, path, kind) in [
            ("GET", "/v2/", Kind::Ping),
            ("GET", "/v2/a/b/tags/list", Kind::List),
            ("HEAD", "/v2/a/manifests/1.0", Kind::ManifestHead),
            ("GET", "/v2/a/manifests/sha256:00", Kind::ManifestGet),
            ("GET", "/v2/a/blobs/sha256:00", Kind::BlobGet),
            // A repository named like a route is still a manifest request.
            ("GET", "/v2/blobs/manifests/x", Kind::ManifestGet),
            ("GET", "/token", Kind::Other),
            ("PUT", "/v2/a/manifests/x", Kind::Other),
        ] {
            assert_eq!(Kind::of(method, path), kind, "{method} {path}");
        }
    }

    #[test]
    fn counts_sum_per_registry_and_kind_in_report_order() {
        let counter = Counter::default();
        counter.sent("b:5000", Kind::List);
        counter.sent("a", Kind::ManifestGet);
        counter.sent("a", Kind::Ping);
        counter.cached("a", Kind::ManifestGet);
        counter.cached("a", Kind::ManifestGet);
        let counts = counter.counts();
        let rows: Vec<_> = counts
            .iter()
            .map(|c| (c.registry.as_str(), c.kind, c.sent, c.cached))
            .collect();
        assert_eq!(
            rows,
            [
                ("a", "ping", 1, 0),
                ("a", "manifest GET", 1, 2),
                ("b:5000", "list", 1, 0)
            ]
        );
        assert_eq!(
            summary(&counts),
            "a: 1 ping, 1 manifest GET (+2 from cache); b:5000: 1 list"
        );
    }
}
