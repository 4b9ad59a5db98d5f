//! What the registries say exists: the seam between "which tags and digests
//! exist" and "what to do with them".
//!
//! The engine asks in batches (every repository it needs, then every digest it
//! needs) so that a source can answer each repository once per run and fetch
//! concurrently behind this interface, while everything above it stays
//! synchronous and pure. A [`snapshot::Snapshot`] answers from a file.

pub mod cache;
pub mod credentials;
pub mod live;
pub mod protocol;
pub mod requests;
pub mod snapshot;
pub mod wire;

use std::collections::BTreeSet;

use crate::image::{Repository, is_valid_tag};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{repository}: {message}")]
pub struct RegistryError {
    /// The repository in normal form; never carries credentials.
    pub repository: String,
    pub message: String,
}

/// A tag whose manifest digest a rule needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagRef {
    pub repository: Repository,
    pub tag: String,
}

/// `Sync`, so that the engine can ask two batches at once (Argo CD's tag
/// metadata while Flux policies resolve).
pub trait Registry: Sync {
    /// The tags of each repository, in the order the registry listed them;
    /// one answer per requested repository, in request order.
    fn tags(&self, repositories: &[Repository]) -> Vec<Result<Vec<String>, RegistryError>>;

    /// The manifest digest of each tag; one answer per request, in order.
    fn digests(&self, tags: &[TagRef]) -> Vec<Result<String, RegistryError>>;

    /// When each tag's image was built (its config's `created`, RFC 3339);
    /// for a multi-platform index, the image for `platform` (`os/arch[/variant]`).
    fn created(&self, tags: &[TagRef], platform: &str) -> Vec<Result<String, RegistryError>>;

    /// The platforms each tag is published for (`os/arch[/variant]`).
    fn platforms(&self, tags: &[TagRef]) -> Vec<Result<Vec<String>, RegistryError>>;

    /// Asks, before the tree is read, what this source expects to be
    /// asked: the repositories the last run of the tree listed, and the
    /// digests of the tags it asked where that is what the run would send.
    /// Calls `listed` once every listing is answered (the digests may still
    /// be in flight) and returns once all are. A later [`Registry::tags`]
    /// takes these listings, and a later question for a digest takes (or
    /// waits for) this answer, unless something told since
    /// ([`Registry::mark_insecure`], [`Registry::pin_credential`]) changes
    /// how the host is asked. Sources that cannot guess only call `listed`.
    fn ask_ahead(&self, listed: &dyn Fn()) {
        listed();
    }

    /// Hosts the declarations allow to be reached over plain HTTP (Flux
    /// `ImageRepository.spec.insecure`), told before any question but
    /// those of [`Registry::ask_ahead`].
    fn mark_insecure(&self, _hosts: &BTreeSet<String>) {}

    /// Uses `credential` for `host` before anything the config files say
    /// (told as [`Registry::mark_insecure`] is); `false` when the host
    /// already has one pinned, which then stays. Sources without credentials
    /// ignore it.
    fn pin_credential(&self, _host: &str, _credential: credentials::Credential) -> bool {
        true
    }

    /// The requests sent so far, per registry and kind, and those the cache
    /// answered instead; empty for sources that send none.
    fn requests(&self) -> Vec<requests::RequestCount> {
        Vec::new()
    }

    /// Things worth reporting that are nobody's error (a low rate limit).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The tags of `repository` (or another source, such as the command line)
/// that are valid OCI tags, in order, and a note counting the others. An
/// invalid tag is dropped before any strategy sees it, so none can choose
/// it (and then refuse to write it) while another would have skipped it.
pub fn screen_tags(
    repository: &dyn std::fmt::Display,
    tags: Vec<String>,
) -> (Vec<String>, Option<String>) {
    let (valid, _, note) = partition_tags(repository, tags);
    (valid, note)
}

/// [`screen_tags`], keeping the invalid tags too, as listed (the report
/// shows some of them).
pub fn partition_tags(
    repository: &dyn std::fmt::Display,
    tags: Vec<String>,
) -> (Vec<String>, Vec<String>, Option<String>) {
    let (valid, invalid): (Vec<String>, Vec<String>) =
        tags.into_iter().partition(|t| is_valid_tag(t));
    if invalid.is_empty() {
        return (valid, invalid, None);
    }
    let examples: Vec<String> = invalid
        .iter()
        .take(3)
        .map(|t| format!("{:?}", t.chars().take(64).collect::<String>()))
        .collect();
    let n = invalid.len();
    let what = if n == 1 {
        "tag that is not a valid OCI tag"
    } else {
        "tags that are not valid OCI tags"
    };
    let more = if n > 3 { ", ..." } else { "" };
    let note = format!(
        "{repository}: skipped {n} listed {what} ({}{more})",
        examples.join(", ")
    );
    (valid, invalid, Some(note))
}
