//! Pushes images and multi-platform indexes through the OCI distribution API,
//! and seeds registries that need authentication or TLS.
//!
//! Tests of tag resolution need registries holding known tags, creation
//! dates, platforms and digests. Images here are tiny but well formed: an
//! image config with `created`/`architecture`/`os`, one gzip'd tar layer whose
//! content is derived from (repo, tag, platform, created) so equal inputs give
//! equal digests, and an OCI (or Docker v2 schema 2) manifest; indexes
//! reference one such manifest per platform. The hand-written client speaks
//! plain HTTP without auth, so [`Seed`] pushes into an anonymous registry on
//! a storage directory, stops it, and starts the configured (auth/TLS)
//! registry on the same directory.

use std::collections::BTreeMap;

use serde_json::json;

use super::http;
use super::registry::{Auth, Registry, RegistryOptions};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// An `Accept` header value covering every manifest type pushed here.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Media types to push with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// OCI image manifest / image index.
    #[default]
    Oci,
    /// Docker image manifest v2 schema 2 / manifest list.
    Docker,
}

impl Format {
    fn manifest(self) -> &'static str {
        match self {
            Format::Oci => OCI_MANIFEST,
            Format::Docker => DOCKER_MANIFEST,
        }
    }
    fn index(self) -> &'static str {
        match self {
            Format::Oci => OCI_INDEX,
            Format::Docker => DOCKER_MANIFEST_LIST,
        }
    }
    fn config(self) -> &'static str {
        match self {
            Format::Oci => OCI_CONFIG,
            Format::Docker => DOCKER_CONFIG,
        }
    }
    fn layer(self) -> &'static str {
        match self {
            Format::Oci => OCI_LAYER,
            Format::Docker => DOCKER_LAYER,
        }
    }
}

/// `os/architecture[/variant]`, e.g. `linux/arm64/v8`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(s: &str) -> Platform {
        let mut parts = s.split('/');
        let (Some(os), Some(architecture)) = (parts.next(), parts.next()) else {
            panic!("platform must be os/arch[/variant], got {s:?}");
        };
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: parts.next().map(str::to_string),
        }
    }

    fn json(&self) -> serde_json::Value {
        let mut v = json!({ "architecture": self.architecture, "os": self.os });
        if let Some(variant) = &self.variant {
            v["variant"] = json!(variant);
        }
        v
    }
}

/// Pushes an OCI image (config, one layer, manifest) and tags it; returns
/// the manifest digest.
pub fn push_image(base_url: &str, repo: &str, tag: &str, created: &str, platform: &str) -> String {
    push_image_as(base_url, repo, Some(tag), created, platform, Format::Oci).0
}

/// Pushes one image per `(platform, created)` and an OCI index over them
/// tagged `tag`; returns the index digest.
pub fn push_index(base_url: &str, repo: &str, tag: &str, images: &[(&str, &str)]) -> String {
    push_index_as(base_url, repo, tag, images, Format::Oci).0
}

/// Like [`push_image`] with a choice of media types; `reference` is a tag,
/// or `None` to push by digest only. Returns the manifest digest and size.
pub fn push_image_as(
    base_url: &str,
    repo: &str,
    reference: Option<&str>,
    created: &str,
    platform: &str,
    format: Format,
) -> (String, usize) {
    let manifest = push_image_blobs(base_url, repo, created, platform, format);
    let digest = super::digest_of(&manifest);
    let reference = reference.unwrap_or(&digest);
    let pushed = put_manifest(base_url, repo, reference, format.manifest(), &manifest);
    (pushed, manifest.len())
}

/// Like [`push_index`] with a choice of media types; returns the index
/// digest and `(platform, manifest digest)` for each image. The platform
/// images are pushed by digest, untagged.
pub fn push_index_as(
    base_url: &str,
    repo: &str,
    tag: &str,
    images: &[(&str, &str)],
    format: Format,
) -> (String, Vec<(String, String)>) {
    let mut entries = Vec::new();
    let mut children = Vec::new();
    for (platform, created) in images {
        let (digest, size) = push_image_as(base_url, repo, None, created, platform, format);
        entries.push(json!({
            "mediaType": format.manifest(),
            "digest": digest,
            "size": size,
            "platform": Platform::parse(platform).json(),
        }));
        children.push((platform.to_string(), digest));
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": format.index(),
        "manifests": entries,
    });
    let index = serde_json::to_vec(&index).expect("serialize index");
    let digest = put_manifest(base_url, repo, tag, format.index(), &index);
    (digest, children)
}

/// Uploads an image's layer and config; returns its manifest bytes. The
/// layer content depends on (repo, platform, created) only, so the same
/// image pushed under two tags has one digest.
fn push_image_blobs(
    base_url: &str,
    repo: &str,
    created: &str,
    platform: &str,
    format: Format,
) -> Vec<u8> {
    let platform_spec = Platform::parse(platform);
    let seed = super::sha256_hex(format!("{repo}\n{platform}\n{created}").as_bytes());
    let tar = tar_one_file(&format!("harness/{}.txt", &seed[..16]), seed.as_bytes());
    let layer = gzip_stored(&tar);
    let layer_digest = push_blob(base_url, repo, &layer);

    let mut config = platform_spec.json();
    config["created"] = json!(created);
    config["config"] = json!({ "Labels": { "org.opencontainers.image.created": created } });
    config["rootfs"] = json!({ "type": "layers", "diff_ids": [super::digest_of(&tar)] });
    config["history"] = json!([{ "created": created, "created_by": "image-update test harness" }]);
    let config = serde_json::to_vec(&config).expect("serialize image config");
    let config_digest = push_blob(base_url, repo, &config);

    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": format.manifest(),
        "config": { "mediaType": format.config(), "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": format.layer(), "digest": layer_digest, "size": layer.len() }],
    });
    serde_json::to_vec(&manifest).expect("serialize manifest")
}

/// Uploads a blob (POST, then monolithic PUT) and returns its digest.
pub fn push_blob(base_url: &str, repo: &str, blob: &[u8]) -> String {
    let digest = super::digest_of(blob);
    let start_url = format!("{base_url}/v2/{repo}/blobs/uploads/");
    let started = http::request("POST", &start_url, &[], b"")
        .unwrap_or_else(|e| panic!("POST {start_url}: {e}"))
        .expect_status(202, "start blob upload");
    let location = started
        .header("Location")
        .expect("blob upload Location header")
        .to_string();
    let location = if location.starts_with('/') {
        format!("{base_url}{location}")
    } else {
        location
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    let put_url = format!("{location}{separator}digest={}", http::url_encode(&digest));
    let put = http::request(
        "PUT",
        &put_url,
        &[("Content-Type", "application/octet-stream")],
        blob,
    )
    .unwrap_or_else(|e| panic!("PUT {put_url}: {e}"))
    .expect_status(201, "finish blob upload");
    if let Some(d) = put.header("Docker-Content-Digest") {
        assert_eq!(d, digest, "registry computed another blob digest");
    }
    digest
}

/// PUTs a manifest under `reference` (tag or digest); returns the digest of
/// the exact bytes sent (checked against `Docker-Content-Digest`).
pub fn put_manifest(
    base_url: &str,
    repo: &str,
    reference: &str,
    media_type: &str,
    body: &[u8],
) -> String {
    let digest = super::digest_of(body);
    let url = format!("{base_url}/v2/{repo}/manifests/{reference}");
    let response = http::request("PUT", &url, &[("Content-Type", media_type)], body)
        .unwrap_or_else(|e| panic!("PUT {url}: {e}"))
        .expect_status(201, "put manifest");
    assert_eq!(
        response.header("Docker-Content-Digest"),
        Some(digest.as_str()),
        "registry computed another manifest digest"
    );
    digest
}

/// A one-file ustar archive.
fn tar_one_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    let mut put =
        |offset: usize, bytes: &[u8]| header[offset..offset + bytes.len()].copy_from_slice(bytes);
    put(0, name.as_bytes());
    put(100, b"0000644\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{:011o}\0", content.len()).as_bytes());
    put(136, b"00000000000\0");
    put(148, b"        ");
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    let checksum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{checksum:06o}\0 ").as_bytes());
    let mut out = header.to_vec();
    out.extend_from_slice(content);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Gzip with stored (uncompressed) deflate blocks: valid, deterministic.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let mut chunks = data.chunks(0xffff).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        let len = chunk.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[derive(Clone, Debug)]
enum SeedItem {
    Image {
        repo: String,
        tag: String,
        created: String,
        platform: String,
        format: Format,
    },
    Index {
        repo: String,
        tag: String,
        images: Vec<(String, String)>,
        format: Format,
    },
}

/// Images and indexes to seed a registry with.
///
/// An image's bytes depend only on (repo, platform, created), so two tags
/// given the same values share one digest (an alias, like `latest`); vary
/// `created` to get distinct images.
///
/// ```ignore
/// let (registry, seeded) = Seed::new()
///     .image("team/app", "1.0.0", "2024-01-01T00:00:00Z")
///     .index("team/multi", "2.0", &[("linux/amd64", "2024-02-01T00:00:00Z"), ("linux/arm64", "2024-02-01T00:00:00Z")])
///     .start(RegistryOptions::new().htpasswd(&[("alice", "secret")]));
/// let digest = seeded.digest("team/app", "1.0.0");
/// ```
#[derive(Clone, Debug, Default)]
pub struct Seed {
    items: Vec<SeedItem>,
    format: Format,
}

/// Digests of what a [`Seed`] pushed.
#[derive(Clone, Debug, Default)]
pub struct Seeded {
    /// `"repo:tag"` → manifest or index digest.
    pub digests: BTreeMap<String, String>,
    /// `"repo:tag@os/arch[/variant]"` → platform manifest digest, for indexes.
    pub platform_digests: BTreeMap<String, String>,
}

impl Seeded {
    /// The digest pushed for `repo:tag`; panics if none.
    pub fn digest(&self, repo: &str, tag: &str) -> &str {
        let key = format!("{repo}:{tag}");
        self.digests
            .get(&key)
            .unwrap_or_else(|| panic!("nothing seeded as {key}; seeded: {:?}", self.digests.keys()))
    }

    /// The platform manifest digest inside the index `repo:tag`.
    pub fn platform_digest(&self, repo: &str, tag: &str, platform: &str) -> &str {
        let key = format!("{repo}:{tag}@{platform}");
        self.platform_digests.get(&key).unwrap_or_else(|| {
            panic!(
                "no platform manifest {key}; seeded: {:?}",
                self.platform_digests.keys()
            )
        })
    }
}

impl Seed {
    pub fn new() -> Seed {
        Seed::default()
    }

    /// Media types for the items added after this call.
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// A `linux/amd64` image tagged `repo:tag`.
    pub fn image(self, repo: &str, tag: &str, created: &str) -> Self {
        self.image_for(repo, tag, created, "linux/amd64")
    }

    /// An image for `platform` (`os/arch[/variant]`) tagged `repo:tag`.
    pub fn image_for(mut self, repo: &str, tag: &str, created: &str, platform: &str) -> Self {
        Platform::parse(platform);
        self.items.push(SeedItem::Image {
            repo: repo.to_string(),
            tag: tag.to_string(),
            created: created.to_string(),
            platform: platform.to_string(),
            format: self.format,
        });
        self
    }

    /// An index tagged `repo:tag` over one image per `(platform, created)`.
    pub fn index(mut self, repo: &str, tag: &str, images: &[(&str, &str)]) -> Self {
        self.items.push(SeedItem::Index {
            repo: repo.to_string(),
            tag: tag.to_string(),
            images: images
                .iter()
                .map(|(p, c)| (p.to_string(), c.to_string()))
                .collect(),
            format: self.format,
        });
        self
    }

    /// Pushes everything to an anonymous plain-HTTP registry at `base_url`.
    pub fn push_to(&self, base_url: &str) -> Seeded {
        let mut seeded = Seeded::default();
        for item in &self.items {
            match item {
                SeedItem::Image {
                    repo,
                    tag,
                    created,
                    platform,
                    format,
                } => {
                    let (digest, _) =
                        push_image_as(base_url, repo, Some(tag), created, platform, *format);
                    seeded.digests.insert(format!("{repo}:{tag}"), digest);
                }
                SeedItem::Index {
                    repo,
                    tag,
                    images,
                    format,
                } => {
                    let images: Vec<(&str, &str)> = images
                        .iter()
                        .map(|(p, c)| (p.as_str(), c.as_str()))
                        .collect();
                    let (digest, children) = push_index_as(base_url, repo, tag, &images, *format);
                    seeded.digests.insert(format!("{repo}:{tag}"), digest);
                    for (platform, child) in children {
                        seeded
                            .platform_digests
                            .insert(format!("{repo}:{tag}@{platform}"), child);
                    }
                }
            }
        }
        seeded
    }

    /// Pushes everything into a fresh storage directory (or
    /// `options.storage`) through an anonymous registry, stops it, and starts
    /// the registry described by `options` on that storage.
    pub fn start(self, options: RegistryOptions) -> (Registry, Seeded) {
        let seeding_options = RegistryOptions {
            storage: options.storage.clone(),
            ..RegistryOptions::new()
        };
        let seeder = Registry::start(seeding_options);
        let seeded = self.push_to(&seeder.base_url());
        if matches!(options.auth, Auth::None) && !options.tls {
            return (seeder, seeded);
        }
        let storage = seeder.storage_dir().to_path_buf();
        let guard = seeder.stop();
        let options = RegistryOptions {
            storage: Some(storage),
            ..options
        };
        (Registry::start_with_guard(options, guard), seeded)
    }
}
