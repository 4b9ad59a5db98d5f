//! The live registry client: the OCI distribution API over HTTPS (HTTP only
//! for hosts named insecure), behind the batch [`Registry`] interface.
//!
//! It exists to be fast and polite at once. Each host is pinged once and, for
//! bearer registries, asked for one token covering every repository the run
//! needs there; each repository's tags are listed once, pages followed; all
//! repositories are fetched concurrently under a global bound and a per-host
//! bound. With a cache, the repositories a tree's last run listed (and the
//! digests of the tags it asked) are asked again while the tree is read
//! (`ask_ahead`); what the tree then changes for a host drops them. `429`
//! waits for `Retry-After` up to a cap, `5xx`, resets and timeouts are
//! retried with jittered backoff, and a failure fails only the repository
//! it belongs to. Credentials go only to the host they belong to:
//! redirects are followed by hand, and `Authorization` is dropped when one
//! leaves the host (blob storage, CDNs); an HTTPS registry may not send a
//! request on to plain HTTP. Nothing a registry sends is unbounded: bodies
//! (see [`wire`]), tags per repository, pages, and the run's time as a whole
//! (`--deadline`) all have limits, and passing one fails only the repository.
//!
//! One file of over 1,000 lines on purpose: it is one concern, the client's
//! request cycle (`impl Live`: ping, token, list, follow, retry), whose
//! credential, redirect and retry rules must be read together; the wire
//! format, protocol parsing, cache and request counting already live apart.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, LINK, LOCATION, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};
use tokio::sync::{OnceCell, Semaphore};

use super::cache::{Cache, Facts, Listed};
use super::credentials::{Credential, Secret, Store};
use super::protocol::{self, Challenge, MANIFEST_ACCEPT, Manifest, TokenResponse, sha256_digest};
use super::requests::{Counter, Kind, RequestCount};
use super::{Registry, RegistryError, TagRef, wire};
use crate::image::{DOCKER_HUB, Repository};

/// Settings of the client, resolved once by the CLI.
#[derive(Debug, Clone)]
pub struct Options {
    /// Hosts (`host[:port]`) reached over plain HTTP; the client takes them
    /// at construction, and the tree may add more.
    pub insecure: BTreeSet<String>,
    /// Extra PEM certificates to trust (a private CA).
    pub ca_file: Option<PathBuf>,
    /// Requests in flight at once, over all hosts.
    pub concurrency: usize,
    /// Requests in flight at once to one host.
    pub per_host: usize,
    /// How long one request may take.
    pub timeout: Duration,
    /// Retries of a request after a `5xx`, a reset, a timeout or a `429`.
    pub retries: u32,
    /// The longest `Retry-After` honoured; a longer one fails the repository.
    pub max_retry_after: Duration,
    /// The first backoff delay; each retry doubles it.
    pub backoff: Duration,
    /// The most tags read for one repository; a registry listing more fails
    /// that repository.
    pub max_tags: usize,
    /// When the whole run must be done asking; later answers fail their
    /// repository.
    pub deadline: Option<Deadline>,
}

/// The end of the time a run may spend asking registries.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    /// How long the run was given, to say so when it passes.
    pub after: Duration,
}

/// Tags read for one repository unless `--max-tags` says otherwise.
pub const MAX_TAGS: usize = 100_000;

impl Default for Options {
    fn default() -> Options {
        Options {
            insecure: BTreeSet::new(),
            ca_file: None,
            concurrency: 16,
            per_host: 6,
            timeout: Duration::from_secs(30),
            retries: 3,
            max_retry_after: Duration::from_secs(60),
            backoff: Duration::from_millis(250),
            max_tags: MAX_TAGS,
            deadline: None,
        }
    }
}

/// Below this many remaining pulls, Docker Hub's rate limit is reported.
const LOW_RATE_LIMIT: u64 = 10;
const MAX_REDIRECTS: usize = 5;
const MAX_PAGES: usize = 10_000;

pub struct Live {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    credentials: Store,
    options: Options,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    notes: Mutex<Vec<String>>,
    cache: Option<Cache>,
    /// Whether the cache may know a digest: without a cache, or with an
    /// empty one, every digest is a miss, so a tag's facts are read with one
    /// `GET` by tag (its answer names the digest) rather than a `HEAD` for
    /// the digest and a `GET` of it.
    cache_may_answer: bool,
    cache_written: std::sync::atomic::AtomicBool,
    requests: Counter,
    /// What each tag names and each digest says, asked once per run:
    /// concurrent askers share one request.
    tag_digests: Mutex<HashMap<TagRef, Arc<OnceCell<String>>>>,
    facts: Mutex<HashMap<String, Arc<OnceCell<Facts>>>>,
    /// Hosts reached over plain HTTP: [`Options::insecure`], taken from the
    /// options (which keep none), then those the tree declares insecure.
    insecure: Mutex<BTreeSet<String>>,
    /// The tree this client serves (its canonical path), whose listed
    /// repositories the cache keeps for its next run.
    tree: Option<String>,
    /// Tags listed ahead of the question.
    ahead: Mutex<HashMap<Repository, TagsAnswer>>,
    /// Every repository `tags` was asked for (`None` until it is asked),
    /// and every tag whose digest or facts were asked.
    asked: Mutex<Option<BTreeSet<Repository>>>,
    asked_tags: Mutex<BTreeSet<TagRef>>,
}

type TagsAnswer = Result<Vec<String>, RegistryError>;

/// What the client learned about one registry host during the run.
struct Host {
    name: String,
    limit: Semaphore,
    /// The `/v2/` challenge, learned once: `None` before the ping,
    /// `Some(None)` for anonymous registries.
    challenge: tokio::sync::Mutex<Option<Option<Challenge>>>,
    /// Every pull scope the run needs here, so one token covers them all.
    scopes: Mutex<BTreeSet<String>>,
    tokens: tokio::sync::Mutex<Vec<Token>>,
    tokens_fetched: Mutex<usize>,
    lowest_ratelimit: Mutex<Option<u64>>,
}

struct Token {
    scopes: BTreeSet<String>,
    value: String,
    expires: Instant,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read --ca-file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl Live {
    pub fn new(mut options: Options, credentials: Store) -> Result<Live, SetupError> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().cloned());
        if let Some(path) = &options.ca_file {
            use rustls::pki_types::pem::PemObject;
            let shown = path.display().to_string();
            let pem = std::fs::read(path).map_err(|e| SetupError::CaFile {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            let mut added = 0;
            for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| SetupError::CaFile {
                    path: shown.clone(),
                    reason: e.to_string(),
                })?;
                roots.add(cert).map_err(|e| SetupError::CaFile {
                    path: shown.clone(),
                    reason: e.to_string(),
                })?;
                added += 1;
            }
            if added == 0 {
                return Err(SetupError::CaFile {
                    path: shown,
                    reason: "no PEM certificate in it".to_string(),
                });
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Client(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("image-update/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SetupError::Client(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SetupError::Client(e.to_string()))?;
        // Kept apart from the options: the tree adds to it.
        let insecure = Mutex::new(std::mem::take(&mut options.insecure));
        Ok(Live {
            runtime,
            http,
            notes: Mutex::new(credentials.warnings()),
            credentials,
            options,
            hosts: Mutex::new(HashMap::new()),
            cache: None,
            cache_may_answer: false,
            cache_written: std::sync::atomic::AtomicBool::new(false),
            requests: Counter::default(),
            tag_digests: Mutex::new(HashMap::new()),
            facts: Mutex::new(HashMap::new()),
            insecure,
            tree: None,
            ahead: Mutex::new(HashMap::new()),
            asked: Mutex::new(None),
            asked_tags: Mutex::new(BTreeSet::new()),
        })
    }

    /// Keeps in the cache which repositories the runs of `root` list, so
    /// that the next one asks them ahead ([`Registry::ask_ahead`]).
    pub fn for_tree(mut self, root: &std::path::Path) -> Live {
        self.tree = root
            .canonicalize()
            .ok()
            .map(|p| p.to_string_lossy().into_owned());
        self
    }

    /// Answers what digests say from `cache`, and keeps what it learns there.
    pub fn with_cache(mut self, cache: Option<Cache>) -> Live {
        self.cache_may_answer = cache.as_ref().is_some_and(|c| !c.is_empty());
        self.cache = cache;
        self
    }

    /// How many tokens were fetched from each host's token service.
    pub fn tokens_fetched(&self) -> BTreeMap<String, usize> {
        let hosts = self.hosts.lock().expect("not poisoned");
        hosts
            .values()
            .map(|h| {
                (
                    h.name.clone(),
                    *h.tokens_fetched.lock().expect("not poisoned"),
                )
            })
            .collect()
    }

    fn host(&self, repository: &Repository) -> Arc<Host> {
        let name = api_host(repository);
        let mut hosts = self.hosts.lock().expect("not poisoned");
        hosts
            .entry(name.clone())
            .or_insert_with(|| {
                Arc::new(Host {
                    name,
                    limit: Semaphore::new(self.options.per_host.max(1)),
                    challenge: tokio::sync::Mutex::new(None),
                    scopes: Mutex::new(BTreeSet::new()),
                    tokens: tokio::sync::Mutex::new(Vec::new()),
                    tokens_fetched: Mutex::new(0),
                    lowest_ratelimit: Mutex::new(None),
                })
            })
            .clone()
    }

    /// Registers every repository of a batch with its host, so that the
    /// first token asked for covers them all.
    fn announce<'a>(&self, repositories: impl Iterator<Item = &'a Repository>) {
        for r in repositories {
            self.host(r)
                .scopes
                .lock()
                .expect("not poisoned")
                .insert(protocol::pull_scope(&r.path));
        }
    }

    fn is_insecure(&self, repository: &Repository) -> bool {
        self.is_insecure_host(&repository.registry)
    }

    fn is_insecure_host(&self, registry: &str) -> bool {
        self.insecure
            .lock()
            .expect("not poisoned")
            .contains(registry)
    }

    /// Lists each repository's tags, concurrently within the bounds.
    fn list(&self, repositories: &[Repository]) -> Vec<TagsAnswer> {
        if repositories.is_empty() {
            // Nothing to drive: the runtime may be busy with what was
            // asked ahead.
            return Vec::new();
        }
        self.announce(repositories.iter());
        self.runtime.block_on(
            futures_util::stream::iter(
                repositories
                    .iter()
                    .map(|r| self.in_time(r, self.list_tags(r))),
            )
            .buffered(self.options.concurrency.max(1))
            .collect(),
        )
    }

    /// What the tree's last run listed, and the tags whose digests it
    /// asked, to be asked again by this one.
    fn remembered(&self) -> Vec<(Repository, Vec<String>)> {
        let (Some(cache), Some(tree)) = (&self.cache, &self.tree) else {
            return Vec::new();
        };
        cache
            .listed(tree)
            .unwrap_or_default()
            .into_iter()
            // A host the tree itself named insecure, or gave a credential,
            // is asked only once the tree has said so.
            .filter(|l| !l.pinned && l.insecure == self.is_insecure_host(&l.registry))
            .filter_map(|l| {
                let repository = Repository::parse(&format!("{}/{}", l.registry, l.path)).ok()?;
                // Not in normal form: not an entry this client wrote.
                (repository.registry == l.registry && repository.path == l.path)
                    .then_some((repository, l.tags))
            })
            .collect()
    }

    /// What `tags` was asked this run, as the cache keeps it for the tree;
    /// `None` when it was never asked.
    fn record(&self) -> Option<Vec<Listed>> {
        let asked = self.asked.lock().expect("not poisoned");
        let asked_tags = self.asked_tags.lock().expect("not poisoned");
        let mut tags: BTreeMap<&Repository, Vec<String>> = BTreeMap::new();
        for tag in asked_tags.iter() {
            tags.entry(&tag.repository)
                .or_default()
                .push(tag.tag.clone());
        }
        Some(
            asked
                .as_ref()?
                .iter()
                .map(|r| Listed {
                    registry: r.registry.clone(),
                    path: r.path.clone(),
                    insecure: self.is_insecure(r),
                    pinned: self.credentials.is_pinned(&r.registry),
                    tags: tags.remove(r).unwrap_or_default(),
                })
                .collect(),
        )
    }

    /// Forgets what was asked ahead of `registry` and how: its settings
    /// changed after.
    fn forget_ahead(&self, registry: &str) {
        let ours = |r: &Repository| r.registry == registry;
        self.ahead
            .lock()
            .expect("not poisoned")
            .retain(|r, _| !ours(r));
        self.tag_digests
            .lock()
            .expect("not poisoned")
            .retain(|t, _| !ours(&t.repository));
        self.hosts
            .lock()
            .expect("not poisoned")
            .remove(&api_host_of(registry));
    }

    /// [`Live::announce`] for the tags' repositories, and the tags kept for
    /// the tree's next run.
    fn announce_tags(&self, tags: &[TagRef]) {
        self.announce(tags.iter().map(|t| &t.repository));
        self.asked_tags
            .lock()
            .expect("not poisoned")
            .extend(tags.iter().cloned());
    }

    fn base_url(&self, repository: &Repository) -> String {
        let scheme = if self.is_insecure(repository) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{}", api_host(repository))
    }

    async fn list_tags(&self, repository: &Repository) -> Result<Vec<String>, RegistryError> {
        let host = self.host(repository);
        let mut url = format!(
            "{}/v2/{}/tags/list?n=1000",
            self.base_url(repository),
            repository.path
        );
        let mut tags = Vec::new();
        let mut seen_pages = BTreeSet::new();
        for _ in 0..MAX_PAGES {
            let (headers, body) = self
                .fetch(&host, repository, &url, None, wire::TAG_PAGE)
                .await?;
            let next = headers
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(protocol::next_link);
            #[derive(serde::Deserialize)]
            struct TagList {
                tags: Option<Vec<String>>,
            }
            let page: TagList = serde_json::from_slice(&body).map_err(|e| {
                error(
                    repository,
                    format!("{} sent a tag list that is not valid JSON: {e}", host.name),
                )
            })?;
            tags.extend(page.tags.unwrap_or_default());
            if tags.len() > self.options.max_tags {
                return Err(error(
                    repository,
                    format!(
                        "{} lists more than {} tags for {}; refusing to read more (raise --max-tags to allow it)",
                        host.name, self.options.max_tags, repository.path
                    ),
                ));
            }
            let Some(next) = next else {
                return Ok(tags);
            };
            let next = Url::parse(&url)
                .and_then(|base| base.join(&next))
                .map_err(|e| {
                    error(
                        repository,
                        format!("{} sent a bad Link header: {e}", host.name),
                    )
                })?;
            if !seen_pages.insert(next.to_string()) {
                return Err(error(
                    repository,
                    format!("{} sent a paging loop", host.name),
                ));
            }
            url = next.to_string();
        }
        Err(error(
            repository,
            format!("{} sent more than {MAX_PAGES} pages of tags", host.name),
        ))
    }

    /// `work` for `repository`, failed when the run's deadline passes first.
    async fn in_time<T>(
        &self,
        repository: &Repository,
        work: impl Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        let Some(deadline) = self.options.deadline else {
            return work.await;
        };
        tokio::time::timeout_at(tokio::time::Instant::from_std(deadline.at), work)
            .await
            .unwrap_or_else(|_| {
                Err(error(
                    repository,
                    format!(
                        "the run's deadline (--deadline {}s) passed before {} answered; not updated",
                        deadline.after.as_secs(),
                        api_host(repository)
                    ),
                ))
            })
    }

    /// An image config blob, parsed; blobs are often redirected to storage.
    async fn config(
        &self,
        repository: &Repository,
        digest: &str,
    ) -> Result<serde_json::Value, RegistryError> {
        let host = self.host(repository);
        let url = format!(
            "{}/v2/{}/blobs/{digest}",
            self.base_url(repository),
            repository.path
        );
        let (_, body) = self
            .fetch(&host, repository, &url, None, wire::CONFIG)
            .await?;
        serde_json::from_slice(&body).map_err(|e| {
            error(
                repository,
                format!(
                    "{} sent an image config {digest} that is not JSON: {e}",
                    host.name
                ),
            )
        })
    }

    /// The digest `tag` names now, asked once per run (tags move, so never
    /// from the cache).
    async fn tag_digest(&self, tag: &TagRef) -> Result<String, RegistryError> {
        self.tag_cell(tag)
            .get_or_try_init(|| self.manifest_digest(tag))
            .await
            .cloned()
    }

    fn tag_cell(&self, tag: &TagRef) -> Arc<OnceCell<String>> {
        let mut cells = self.tag_digests.lock().expect("not poisoned");
        cells.entry(tag.clone()).or_default().clone()
    }

    fn facts_cell(&self, digest: &str) -> Arc<OnceCell<Facts>> {
        let mut cells = self.facts.lock().expect("not poisoned");
        cells.entry(digest.to_string()).or_default().clone()
    }

    /// What the manifest `tag` names says. When the cache cannot know the
    /// digest, the manifest is read by tag: its answer names the digest, and
    /// a `HEAD` first would only add a request (see [`head_first`]).
    async fn tag_facts(&self, tag: &TagRef) -> Result<Facts, RegistryError> {
        let repository = &tag.repository;
        if !head_first(self.cache_may_answer, &api_host(repository)) {
            let mut read = None;
            let digest = self
                .tag_cell(tag)
                .get_or_try_init(|| async {
                    let (digest, body) = self.manifest_by_tag(tag).await?;
                    read = Some(body);
                    Ok::<_, RegistryError>(digest)
                })
                .await?
                .clone();
            if let Some(body) = read {
                return self
                    .facts_cell(&digest)
                    .get_or_try_init(|| self.facts_of(repository, &digest, body))
                    .await
                    .cloned();
            }
            return self.facts(repository, &digest).await;
        }
        let digest = self.tag_digest(tag).await?;
        self.facts(repository, &digest).await
    }

    /// What the manifest `digest` says: once per run (concurrent askers
    /// share one request), from the cache when it knows the digest.
    async fn facts(&self, repository: &Repository, digest: &str) -> Result<Facts, RegistryError> {
        self.facts_cell(digest)
            .get_or_try_init(|| self.fetch_facts(repository, digest))
            .await
            .cloned()
    }

    async fn fetch_facts(
        &self,
        repository: &Repository,
        digest: &str,
    ) -> Result<Facts, RegistryError> {
        let host = self.host(repository);
        if let Some(facts) = self.cache.as_ref().and_then(|c| c.get(digest)) {
            self.requests.cached(&host.name, Kind::ManifestGet);
            if matches!(facts, Facts::Image { .. }) {
                self.requests.cached(&host.name, Kind::BlobGet);
            }
            return Ok(facts);
        }
        let url = format!(
            "{}/v2/{}/manifests/{digest}",
            self.base_url(repository),
            repository.path
        );
        let (_, body) = self
            .fetch(
                &host,
                repository,
                &url,
                Some(MANIFEST_ACCEPT),
                wire::MANIFEST,
            )
            .await?;
        self.facts_of(repository, digest, body).await
    }

    /// What the manifest `body` (named `digest`) says, its image config read
    /// for an image; kept in the cache when the body matches its digest.
    async fn facts_of(
        &self,
        repository: &Repository,
        digest: &str,
        body: Vec<u8>,
    ) -> Result<Facts, RegistryError> {
        let facts = match protocol::parse_manifest(&body) {
            Some(Manifest::Index(children)) => Facts::Index { children },
            Some(Manifest::Image { config }) => {
                let config = self.config(repository, &config).await?;
                Facts::Image {
                    created: config
                        .get("created")
                        .and_then(|c| c.as_str())
                        .map(str::to_string),
                    platform: protocol::platform_of(&config),
                }
            }
            None => {
                return Err(error(
                    repository,
                    format!(
                        "{} sent a manifest for {digest} that is neither an image nor an index",
                        api_host(repository)
                    ),
                ));
            }
        };
        // Only content that matches its name is kept for later runs.
        if let Some(cache) = &self.cache
            && sha256_digest(&body) == digest
        {
            cache.put(digest, &facts);
            self.cache_written
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(facts)
    }

    /// The image `tag` names, for `platform` when it is an index.
    async fn image_facts(
        &self,
        tag: &TagRef,
        platform: &str,
    ) -> Result<(Option<String>, Option<String>), RegistryError> {
        let repository = &tag.repository;
        let mut facts = self.tag_facts(tag).await?;
        if let Facts::Index { children } = &facts {
            let Some((_, digest)) = children.iter().find(|(p, _)| p == platform) else {
                let published: Vec<&str> = children.iter().map(|(p, _)| p.as_str()).collect();
                return Err(error(
                    repository,
                    format!(
                        "tag {} has no image for {platform} (it has {})",
                        tag.tag,
                        published.join(", ")
                    ),
                ));
            };
            facts = self.facts(repository, digest).await?;
        }
        match facts {
            Facts::Image { created, platform } => Ok((created, platform)),
            Facts::Index { .. } => Err(error(
                repository,
                format!("tag {} nests an index in an index", tag.tag),
            )),
        }
    }

    async fn created_at(&self, tag: &TagRef, platform: &str) -> Result<String, RegistryError> {
        let (created, _) = self.image_facts(tag, platform).await?;
        created.ok_or_else(|| {
            error(
                &tag.repository,
                format!("the image config of tag {} has no created time", tag.tag),
            )
        })
    }

    async fn platforms_of(&self, tag: &TagRef) -> Result<Vec<String>, RegistryError> {
        Ok(match self.tag_facts(tag).await? {
            Facts::Index { children } => children.into_iter().map(|(p, _)| p).collect(),
            Facts::Image { platform, .. } => platform.into_iter().collect(),
        })
    }

    async fn manifest_digest(&self, tag: &TagRef) -> Result<String, RegistryError> {
        let repository = &tag.repository;
        let host = self.host(repository);
        let url = self.manifest_url(tag);
        // HEAD does not count against Docker Hub's pull limit.
        let head = self
            .get(&host, repository, Method::HEAD, &url, Some(MANIFEST_ACCEPT))
            .await;
        if let Ok(response) = &head
            && let Some(digest) = response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
        {
            return Ok(digest.to_string());
        }
        Ok(self.manifest_by_tag(tag).await?.0)
    }

    /// `GET` of the manifest `tag` names: its digest (as the registry names
    /// it, else the hash of the body) and the body.
    async fn manifest_by_tag(&self, tag: &TagRef) -> Result<(String, Vec<u8>), RegistryError> {
        let repository = &tag.repository;
        let host = self.host(repository);
        let (headers, body) = self
            .fetch(
                &host,
                repository,
                &self.manifest_url(tag),
                Some(MANIFEST_ACCEPT),
                wire::MANIFEST,
            )
            .await?;
        let digest = headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| sha256_digest(&body), str::to_string);
        Ok((digest, body))
    }

    fn manifest_url(&self, tag: &TagRef) -> String {
        format!(
            "{}/v2/{}/manifests/{}",
            self.base_url(&tag.repository),
            tag.repository.path,
            tag.tag
        )
    }

    /// A `GET` and its whole body, at most `body.limit` bytes; a body cut
    /// short or stalled is retried like a reset.
    async fn fetch(
        &self,
        host: &Host,
        repository: &Repository,
        url: &str,
        accept: Option<&str>,
        body: wire::Body,
    ) -> Result<(HeaderMap, Vec<u8>), RegistryError> {
        let mut attempt = 0;
        loop {
            let response = self.get(host, repository, Method::GET, url, accept).await?;
            let headers = response.headers().clone();
            let origin = wire::origin(response.url());
            match wire::read(response, body).await {
                Ok(bytes) => return Ok((headers, bytes)),
                Err(e) if e.is_transient() && attempt < self.options.retries => {
                    self.pause(attempt).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(error(
                        repository,
                        e.message(body, &origin, self.options.timeout),
                    ));
                }
            }
        }
    }

    /// One request with everything around it: the host's concurrency bound,
    /// authentication, retries, `Retry-After` and redirects. The host's slot
    /// is held only while a request is on the wire, never while waiting.
    async fn get(
        &self,
        host: &Host,
        repository: &Repository,
        method: Method,
        url: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let scope = protocol::pull_scope(&repository.path);
        let mut reauthenticated = false;
        let mut attempt = 0;
        // Credentials belong to the registry's own origin: not to another host
        // named by a redirect, nor by a `Link` header of a tag-list page.
        let origin = Url::parse(&self.base_url(repository))
            .map_err(|e| error(repository, format!("bad registry URL: {e}")))?;
        let mut target = Url::parse(url)
            .map_err(|e| error(repository, format!("{} named a bad URL: {e}", host.name)))?;
        let mut redirects = 0;
        loop {
            let refused = wire::downgrade(
                &origin,
                &target,
                &self.insecure.lock().expect("not poisoned"),
            );
            if let Some(refused) = refused {
                return Err(error(repository, refused));
            }
            let permit = host
                .limit
                .acquire()
                .await
                .expect("the semaphore is never closed");
            // Credentials belong to the registry's origin, never to a redirect target elsewhere.
            let same_host = target.origin() == origin.origin();
            let authorization = if same_host {
                self.authorization(host, repository, &scope).await?
            } else {
                None
            };
            let mut request = self.http.request(method.clone(), target.clone());
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            if let Some(value) = authorization {
                request = request.header(AUTHORIZATION, value);
            }
            if same_host {
                self.requests
                    .sent(&host.name, Kind::of(method.as_str(), target.path()));
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) => {
                    drop(permit);
                    if attempt < self.options.retries && is_transient(&e) {
                        self.pause(attempt).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(error(
                        repository,
                        transport_message(e, &wire::origin(&target), self.options.timeout),
                    ));
                }
            };
            drop(permit);
            self.note_ratelimit(host, response.headers());
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok());
                let next = location.and_then(|l| target.join(l).ok());
                match next {
                    Some(next) if redirects < MAX_REDIRECTS => {
                        redirects += 1;
                        target = next;
                        continue;
                    }
                    _ => {
                        return Err(error(
                            repository,
                            format!(
                                "{} redirected too often or without a Location",
                                wire::origin(&target)
                            ),
                        ));
                    }
                }
            }
            if status == StatusCode::UNAUTHORIZED && same_host && !reauthenticated {
                reauthenticated = true;
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(protocol::parse_challenge);
                if let Some(challenge) = challenge {
                    let wanted = match &challenge {
                        Challenge::Bearer { scope: Some(s), .. } => s.clone(),
                        _ => scope.clone(),
                    };
                    *host.challenge.lock().await = Some(Some(challenge));
                    host.tokens
                        .lock()
                        .await
                        .retain(|t| !t.scopes.contains(&wanted));
                    host.scopes.lock().expect("not poisoned").insert(wanted);
                    continue;
                }
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| protocol::retry_after(v, unix_now()))
                    .unwrap_or_else(|| {
                        protocol::backoff(
                            attempt,
                            self.options.backoff,
                            self.options.max_retry_after,
                            jitter(),
                        )
                    });
                if wait > self.options.max_retry_after {
                    return Err(error(
                        repository,
                        format!(
                            "rate limited by {} (HTTP 429, asked to wait {}s; the cap is {}s); try again later, or authenticate for a higher limit",
                            wire::origin(&target),
                            wait.as_secs(),
                            self.options.max_retry_after.as_secs()
                        ),
                    ));
                }
                if attempt < self.options.retries {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                    continue;
                }
                return Err(error(
                    repository,
                    format!(
                        "rate limited by {}: still HTTP 429 after {} retries; try again later, raise --retries, or authenticate for a higher limit",
                        wire::origin(&target),
                        self.options.retries
                    ),
                ));
            }
            if status.is_server_error() && attempt < self.options.retries {
                self.pause(attempt).await;
                attempt += 1;
                continue;
            }
            if status.is_success() {
                return Ok(response);
            }
            if !same_host {
                return Err(error(
                    repository,
                    format!(
                        "HTTP {status} from {}, where {} sent the request on; that host refused it (the registry's credentials are never sent there)",
                        wire::origin(&target),
                        host.name
                    ),
                ));
            }
            return Err(error(
                repository,
                self.status_message(status, host, repository),
            ));
        }
    }

    async fn pause(&self, attempt: u32) {
        let cap = self.options.backoff.saturating_mul(16);
        tokio::time::sleep(protocol::backoff(
            attempt,
            self.options.backoff,
            cap,
            jitter(),
        ))
        .await;
    }

    /// The `Authorization` header for a request to `host`, learning the
    /// host's challenge with one `/v2/` ping the first time.
    async fn authorization(
        &self,
        host: &Host,
        repository: &Repository,
        scope: &str,
    ) -> Result<Option<HeaderValue>, RegistryError> {
        let challenge = {
            let mut known = host.challenge.lock().await;
            if known.is_none() {
                *known = Some(self.ping(host, repository).await?);
            }
            known.clone().flatten()
        };
        // Asked only when the host wants credentials: a broken helper must
        // not fail registries that need none.
        let credential = || {
            self.credentials
                .lookup(&repository.registry, &repository.path)
                .map_err(|e| error(repository, e.to_string()))
        };
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => match credential()? {
                Some(Credential {
                    secret: Secret::Basic { username, password },
                    ..
                }) => Ok(Some(basic(&username, &password))),
                Some(Credential {
                    secret: Secret::RegistryToken(token),
                    source,
                }) => bearer(&token).map(Some).ok_or_else(|| {
                    unsendable(repository, &format!("the registry token of {source}"))
                }),
                _ => Ok(None),
            },
            Some(Challenge::Bearer { realm, service, .. }) => {
                let mut tokens = host.tokens.lock().await;
                let now = Instant::now();
                tokens.retain(|t| t.expires > now);
                if let Some(t) = tokens.iter().find(|t| t.scopes.contains(scope)) {
                    return Ok(bearer(&t.value));
                }
                let credential = credential()?;
                if let Some(Credential {
                    secret: Secret::RegistryToken(token),
                    source,
                }) = &credential
                {
                    return bearer(token).map(Some).ok_or_else(|| {
                        unsendable(repository, &format!("the registry token of {source}"))
                    });
                }
                let mut scopes = host.scopes.lock().expect("not poisoned").clone();
                scopes.insert(scope.to_string());
                let token = self
                    .fetch_token(
                        host,
                        repository,
                        &realm,
                        service.as_deref(),
                        &scopes,
                        credential.map(|c| c.secret),
                    )
                    .await?;
                let header = bearer(&token.value);
                tokens.push(token);
                Ok(header)
            }
        }
    }

    /// `GET /v2/`: which authentication the host wants.
    async fn ping(
        &self,
        host: &Host,
        repository: &Repository,
    ) -> Result<Option<Challenge>, RegistryError> {
        let url = format!("{}/v2/", self.base_url(repository));
        let mut attempt = 0;
        loop {
            self.requests.sent(&host.name, Kind::Ping);
            match self.http.get(&url).send().await {
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED => {
                    return Ok(response
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(protocol::parse_challenge));
                }
                Ok(response)
                    if response.status().is_server_error() && attempt < self.options.retries => {}
                Ok(response)
                    if response.status() == StatusCode::TOO_MANY_REQUESTS
                        && attempt < self.options.retries => {}
                Ok(_) => return Ok(None),
                Err(e) if attempt < self.options.retries && is_transient(&e) => {}
                Err(e) => {
                    return Err(error(
                        repository,
                        transport_message(
                            e,
                            &Url::parse(&url).map_or_else(
                                |_| host.name.clone(),
                                |u| u.origin().ascii_serialization(),
                            ),
                            self.options.timeout,
                        ),
                    ));
                }
            }
            self.pause(attempt).await;
            attempt += 1;
        }
    }

    async fn fetch_token(
        &self,
        host: &Host,
        repository: &Repository,
        realm: &str,
        service: Option<&str>,
        scopes: &BTreeSet<String>,
        secret: Option<Secret>,
    ) -> Result<Token, RegistryError> {
        let mut url = Url::parse(realm).map_err(|e| {
            error(
                repository,
                format!("{} named a bad token realm {realm:?}: {e}", host.name),
            )
        })?;
        let realm_host = url.host_str().unwrap_or_default().to_string();
        let url_origin = url.origin().ascii_serialization();
        if secret.is_some() && url.scheme() == "http" && !self.is_insecure(repository) {
            return Err(error(
                repository,
                format!(
                    "{} asks for credentials at a plain-HTTP token realm ({realm_host}); refusing to send them unencrypted (name the registry with --insecure-registry to allow it)",
                    host.name
                ),
            ));
        }
        let request = match &secret {
            Some(Secret::IdentityToken(refresh)) => {
                let mut form: Vec<(&str, &str)> = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh),
                    ("client_id", "image-update"),
                ];
                if let Some(service) = service {
                    form.push(("service", service));
                }
                let joined = scopes
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(" ");
                form.push(("scope", &joined));
                let body = form
                    .iter()
                    .map(|(k, v)| format!("{k}={}", form_encode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                self.http
                    .post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
            }
            _ => {
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    for scope in scopes {
                        query.append_pair("scope", scope);
                    }
                }
                let mut request = self.http.get(url);
                if let Some(Secret::Basic { username, password }) = &secret {
                    request = request.header(AUTHORIZATION, basic(username, password));
                }
                request
            }
        };
        // Token services fail transiently like registries do: 5xx, resets and
        // timeouts are retried with the same bounded backoff.
        let mut attempt = 0;
        let response = loop {
            let this_try = request
                .try_clone()
                .expect("token requests have in-memory bodies");
            self.requests.sent(&host.name, Kind::Token);
            match this_try.send().await {
                Ok(response)
                    if response.status().is_server_error() && attempt < self.options.retries => {}
                Ok(response) => break response,
                Err(e) if attempt < self.options.retries && is_transient(&e) => {}
                Err(e) => {
                    return Err(error(
                        repository,
                        transport_message(e, &url_origin, self.options.timeout),
                    ));
                }
            }
            self.pause(attempt).await;
            attempt += 1;
        };
        let status = response.status();
        if !status.is_success() {
            return Err(error(
                repository,
                format!(
                    "the token service of {} ({realm_host}) answered HTTP {status}; {}",
                    host.name,
                    self.credential_hint(repository)
                ),
            ));
        }
        let body = wire::read(response, wire::TOKEN).await.map_err(|e| {
            error(
                repository,
                e.message(wire::TOKEN, &url_origin, self.options.timeout),
            )
        })?;
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            error(
                repository,
                format!("the token service of {} sent invalid JSON: {e}", host.name),
            )
        })?;
        let (value, lifetime) = parsed.token().ok_or_else(|| {
            error(
                repository,
                format!("the token service of {} sent no token", host.name),
            )
        })?;
        if bearer(value).is_none() {
            return Err(unsendable(
                repository,
                &format!(
                    "the token sent by the token service of {} ({realm_host})",
                    host.name
                ),
            ));
        }
        *host.tokens_fetched.lock().expect("not poisoned") += 1;
        Ok(Token {
            scopes: scopes.clone(),
            value: value.to_string(),
            expires: Instant::now() + lifetime,
        })
    }

    fn note_ratelimit(&self, host: &Host, headers: &HeaderMap) {
        if let Some(remaining) = headers
            .get("ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(protocol::ratelimit_remaining)
        {
            let mut lowest = host.lowest_ratelimit.lock().expect("not poisoned");
            *lowest = Some(lowest.map_or(remaining, |l| l.min(remaining)));
        }
    }

    fn credential_hint(&self, repository: &Repository) -> String {
        let sources = self.credentials.sources_for(&repository.registry);
        if sources.is_empty() {
            format!(
                "no credentials were found for {}: run `docker login {}`, pass --docker-config FILE, or set DOCKER_AUTH_CONFIG",
                repository.registry, repository.registry
            )
        } else {
            format!("credentials tried: {}", sources.join(", "))
        }
    }

    fn status_message(&self, status: StatusCode, host: &Host, repository: &Repository) -> String {
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => format!(
                "HTTP {status} from {}: not allowed to read {}; {}",
                host.name,
                repository.path,
                self.credential_hint(repository)
            ),
            StatusCode::NOT_FOUND => format!(
                "HTTP 404 from {}: repository {} (or the requested tag) not found; check spec.image",
                host.name, repository.path
            ),
            status => format!("HTTP {status} from {} for {}", host.name, repository.path),
        }
    }
}

impl Registry for Live {
    fn tags(&self, repositories: &[Repository]) -> Vec<TagsAnswer> {
        self.asked
            .lock()
            .expect("not poisoned")
            .get_or_insert_default()
            .extend(repositories.iter().cloned());
        // A listing made ahead is kept if it was answered; one that failed
        // is asked again.
        let kept: Vec<Option<TagsAnswer>> = {
            let mut ahead = self.ahead.lock().expect("not poisoned");
            repositories
                .iter()
                .map(|r| ahead.remove(r).filter(Result::is_ok))
                .collect()
        };
        let missing: Vec<Repository> = repositories
            .iter()
            .zip(&kept)
            .filter(|(_, kept)| kept.is_none())
            .map(|(r, _)| r.clone())
            .collect();
        let mut fresh = self.list(&missing).into_iter();
        kept.into_iter()
            .map(|kept| kept.unwrap_or_else(|| fresh.next().expect("one answer per missing")))
            .collect()
    }

    /// One stream, listings first: the run waits for those, and the
    /// `HEAD`s (asked only where a warm cache will answer for the
    /// manifests, as the run would) take the slots the listings leave.
    fn ask_ahead(&self, listed: &dyn Fn()) {
        use futures_util::future::Either;
        let remembered = self.remembered();
        self.announce(remembered.iter().map(|(r, _)| r));
        let digests: Vec<TagRef> = remembered
            .iter()
            .filter(|(r, _)| head_first(self.cache_may_answer, &api_host(r)))
            .flat_map(|(repository, tags)| {
                tags.iter().map(|tag| TagRef {
                    repository: repository.clone(),
                    tag: tag.clone(),
                })
            })
            .collect();
        let left = std::sync::atomic::AtomicUsize::new(remembered.len());
        if remembered.is_empty() {
            listed();
        }
        let lists = remembered.iter().map(|(repository, _)| {
            Either::Left(async {
                let answer = self.in_time(repository, self.list_tags(repository)).await;
                self.ahead
                    .lock()
                    .expect("not poisoned")
                    .insert(repository.clone(), answer);
                if left.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
                    listed();
                }
            })
        });
        let heads = digests.iter().map(|t| {
            Either::Right(async {
                // A failure leaves the digest to be asked again.
                let _ = self.in_time(&t.repository, self.tag_digest(t)).await;
            })
        });
        self.runtime.block_on(
            futures_util::stream::iter(lists.chain(heads))
                .buffer_unordered(self.options.concurrency.max(1))
                .collect::<()>(),
        );
    }

    fn digests(&self, tags: &[TagRef]) -> Vec<Result<String, RegistryError>> {
        self.announce_tags(tags);
        self.runtime.block_on(
            futures_util::stream::iter(
                tags.iter()
                    .map(|t| self.in_time(&t.repository, self.tag_digest(t))),
            )
            .buffered(self.options.concurrency.max(1))
            .collect(),
        )
    }

    fn created(&self, tags: &[TagRef], platform: &str) -> Vec<Result<String, RegistryError>> {
        self.announce_tags(tags);
        self.runtime.block_on(
            futures_util::stream::iter(
                tags.iter()
                    .map(|t| self.in_time(&t.repository, self.created_at(t, platform))),
            )
            .buffered(self.options.concurrency.max(1))
            .collect(),
        )
    }

    fn platforms(&self, tags: &[TagRef]) -> Vec<Result<Vec<String>, RegistryError>> {
        self.announce_tags(tags);
        self.runtime.block_on(
            futures_util::stream::iter(
                tags.iter()
                    .map(|t| self.in_time(&t.repository, self.platforms_of(t))),
            )
            .buffered(self.options.concurrency.max(1))
            .collect(),
        )
    }

    fn mark_insecure(&self, hosts: &BTreeSet<String>) {
        for host in hosts {
            let added = self
                .insecure
                .lock()
                .expect("not poisoned")
                .insert(host.clone());
            if added {
                self.forget_ahead(host);
            }
        }
    }

    fn pin_credential(&self, host: &str, credential: super::credentials::Credential) -> bool {
        let pinned = self.credentials.pin(host, credential);
        if pinned {
            self.forget_ahead(host);
        }
        pinned
    }

    fn requests(&self) -> Vec<RequestCount> {
        self.requests.counts()
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = self.notes.lock().expect("not poisoned").clone();
        let hosts = self.hosts.lock().expect("not poisoned");
        for host in hosts.values() {
            if let Some(remaining) = *host.lowest_ratelimit.lock().expect("not poisoned")
                && remaining < LOW_RATE_LIMIT
            {
                notes.push(format!(
                    "{} rate limit is low: {remaining} pulls remaining; authenticate to raise it",
                    host.name
                ));
            }
        }
        notes
    }
}

impl Drop for Live {
    /// Keeps what the tree's run listed, when it changed, and the cache
    /// within its bound once the run has added to it.
    fn drop(&mut self) {
        let Some(cache) = &self.cache else {
            return;
        };
        let mut written = self
            .cache_written
            .load(std::sync::atomic::Ordering::Relaxed);
        if let (Some(tree), Some(listed)) = (&self.tree, self.record())
            && cache.listed(tree).as_ref() != Some(&listed)
        {
            cache.put_listed(tree, &listed);
            written = true;
        }
        if written {
            cache.prune();
        }
    }
}

const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// The host the API is served from: Docker Hub images live on `docker.io`
/// but are served by `registry-1.docker.io`.
fn api_host(repository: &Repository) -> String {
    api_host_of(&repository.registry)
}

fn api_host_of(registry: &str) -> String {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API.to_string()
    } else {
        registry.to_string()
    }
}

/// Whether a tag whose manifest must be read is first asked for its digest
/// with a `HEAD`: when the cache may know that digest (then no `GET` at
/// all), and always on Docker Hub, whose pull limit counts manifest `GET`s
/// but not `HEAD`s, so that tags naming one image cost one pull, not one
/// each. Elsewhere, with nothing cached, the `GET` by tag alone answers both.
fn head_first(cache_may_answer: bool, api_host: &str) -> bool {
    cache_may_answer || api_host == DOCKER_HUB_API
}

fn error(repository: &Repository, message: String) -> RegistryError {
    RegistryError {
        repository: repository.to_string(),
        message,
    }
}

fn basic(username: &str, password: &str) -> HeaderValue {
    use base64::Engine;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    let mut value =
        HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

/// The `Authorization` value for a token; `None` when the token holds bytes
/// no HTTP header may carry (sending nothing would be answered with a `401`
/// that blames the credentials).
fn bearer(token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

fn unsendable(repository: &Repository, whose: &str) -> RegistryError {
    error(
        repository,
        format!(
            "{whose} cannot be sent in an HTTP header (it holds control characters or non-ASCII bytes)"
        ),
    )
}

/// A failure worth another try: a timeout, a refused or reset connection;
/// never a TLS problem, which trying again does not fix.
fn is_transient(e: &reqwest::Error) -> bool {
    (e.is_timeout() || e.is_connect() || e.is_request()) && !is_tls(e)
}

fn is_tls(e: &reqwest::Error) -> bool {
    ["certificate", "tls", "handshake", "invalidcontenttype"]
        .iter()
        .any(|word| chain_mentions(e, word))
}

/// Whether `e` or any of its sources says `word` (lower case).
fn chain_mentions(e: &reqwest::Error, word: &str) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if s.to_string().to_ascii_lowercase().contains(word) {
            return true;
        }
        source = s.source();
    }
    false
}

/// What went wrong on the wire, with what to do about it.
fn transport_message(e: reqwest::Error, host: &str, timeout: Duration) -> String {
    // The URL may carry a signature (a presigned blob URL after a redirect):
    // the message names the host instead.
    let e = &e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = format!("{detail}: {s}");
        source = s.source();
    }
    let authority = host.rsplit("://").next().unwrap_or(host);
    if chain_mentions(e, "invalidcontenttype") {
        // rustls read something that is not a TLS record: most often an
        // HTTP answer from a registry that does not speak TLS.
        format!(
            "{host} did not answer in TLS (it may be a plain-HTTP registry: name it with --insecure-registry {authority}) ({detail})"
        )
    } else if is_tls(e) {
        format!(
            "TLS with {host} failed ({detail}); for a private CA pass --ca-file FILE, for a plain-HTTP registry --insecure-registry {authority}"
        )
    } else if e.is_timeout() {
        format!("{host} did not answer within {}s", timeout.as_secs())
    } else if e.is_connect() {
        format!("cannot connect to {host} ({detail})")
    } else {
        format!("talking to {host} failed ({detail})")
    }
}

fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A number in [0, 1) that differs between calls and processes, enough to
/// keep many clients from retrying in step.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    let n = RandomState::new().hash_one(Instant::now());
    (n % 10_000) as f64 / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_is_served_from_registry_1() {
        let nginx = Repository::parse("nginx").unwrap();
        assert_eq!(
            (api_host(&nginx).as_str(), nginx.path.as_str()),
            ("registry-1.docker.io", "library/nginx")
        );
        let ghcr = Repository::parse("ghcr.io/acme/web").unwrap();
        assert_eq!(api_host(&ghcr), "ghcr.io");
    }

    #[test]
    fn a_head_comes_first_where_a_cache_may_answer_or_pulls_are_counted() {
        let hub = api_host(&Repository::parse("nginx").unwrap());
        for (cache_may_answer, host, head) in [
            (false, "ghcr.io", false),
            (false, "127.0.0.1:5000", false),
            (true, "ghcr.io", true),
            (false, hub.as_str(), true),
            (true, hub.as_str(), true),
        ] {
            assert_eq!(
                head_first(cache_may_answer, host),
                head,
                "{cache_may_answer} {host}"
            );
        }
    }

    #[test]
    fn form_values_are_encoded() {
        assert_eq!(form_encode("a b/c:d"), "a+b%2Fc%3Ad");
    }
}
