//! Which Kustomize image override is "the same image" as another, by
//! Argo CD Image Updater's rules.
//!
//! Upstream compares Kustomize image strings (`[name=]image[:tag][@digest]`)
//! in three different ways, and each of our readers and writers must use the
//! one upstream uses at that place, or an update lands in a second entry
//! (a duplicate) or overwrites another alias's entry (data loss):
//!
//! - reading the current value and setting a new one on an Application
//!   (`GetKustomizeImage` / `SetKustomizeImage`): the registry-less image
//!   name must agree and, when the image has a Kustomize name and the entry
//!   has one too, the names must agree;
//! - Argo CD's own `MergeImage`, which `SetKustomizeImage` ends with: the
//!   text before the first `=`, `:` or `@` (whichever the new entry has,
//!   tried in that order);
//! - merging into the override file (`mergeKustomizeOverride`): image name
//!   and registry, `docker.io` and none being the same;
//! - finding the image an application runs (`ContainsImage` over the live
//!   `status.summary.images`, here the references in its manifests): the
//!   same registry and name as the Kustomize name when there is one, else
//!   as the image, as written (`docker.io/x` is not `x`).
//!
//! All of it is pure: strings in, strings out.

use crate::policy::argo::split_reference;

/// An image string split the way upstream's `NewFromIdentifier` splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    /// The Kustomize name before `=`; `""` when there is none.
    pub alias: String,
    /// The registry host; `""` for Docker Hub unless written `docker.io/…`.
    pub registry: String,
    /// The repository path without the registry (`library/` dropped for
    /// Docker Hub unless written).
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl ContainerImage {
    pub fn parse(identifier: &str) -> ContainerImage {
        let (alias, reference) = identifier.split_once('=').unwrap_or(("", identifier));
        let (path, tag, digest) = split_reference(reference);
        let tag = tag.map(str::to_string);
        let digest = digest.map(str::to_string);
        let alias = alias.to_string();
        if !normalizable(path, tag.as_deref()) {
            // Upstream's legacy parser: a registry only with a dot.
            let (registry, name) = match path.split_once('/') {
                Some((host, rest)) if host.contains('.') => (host, rest),
                _ => ("", path),
            };
            return ContainerImage {
                alias,
                registry: registry.to_string(),
                name: name.to_string(),
                tag,
                digest,
            };
        }
        let (domain, mut name) = match path.split_once('/') {
            Some((host, rest))
                if host.contains('.') || host.contains(':') || host == "localhost" =>
            {
                (host.to_string(), rest.to_string())
            }
            _ => ("docker.io".to_string(), path.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            "docker.io".to_string()
        } else {
            domain
        };
        let registry = if domain == "docker.io" && !reference.starts_with("docker.io") {
            String::new()
        } else {
            domain.clone()
        };
        if domain == "docker.io" && !reference.starts_with("library/") {
            name = name.strip_prefix("library/").unwrap_or(&name).to_string();
        }
        ContainerImage {
            alias,
            registry,
            name,
            tag,
            digest,
        }
    }

    fn has_version(&self) -> bool {
        self.tag.is_some() || self.digest.is_some()
    }

    /// Upstream's tag equality: digests decide when either side has one.
    fn same_version(&self, other: &ContainerImage) -> bool {
        if self.digest.is_some() || other.digest.is_some() {
            self.digest == other.digest
        } else {
            self.tag == other.tag
        }
    }

    /// `sameImageNameAndRegistry`: `docker.io` and no registry are the same.
    fn same_name_and_registry(&self, other: &ContainerImage) -> bool {
        let hub = |r: &str| if r.is_empty() { "docker.io" } else { r }.to_string();
        self.name == other.name && hub(&self.registry) == hub(&other.registry)
    }

    /// `DiffersFrom` without the version: another registry or repository.
    pub fn differs_from(&self, other: &ContainerImage) -> bool {
        self.registry != other.registry || self.name != other.name
    }
}

/// Whether `distribution/reference` would parse the reference (else
/// upstream falls back to its legacy parser): lower-case path components
/// and a valid tag.
fn normalizable(path: &str, tag: Option<&str>) -> bool {
    let components_ok = path.split('/').enumerate().all(|(i, c)| {
        !c.is_empty()
            && (i == 0 && (c.contains('.') || c.contains(':'))
                || c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)))
    });
    components_ok && tag.is_none_or(crate::image::is_valid_tag)
}

/// Argo CD's `KustomizeImage.Match`: the text before the delimiter of
/// `new` (`=`, else `:`, else `@`, else `:`) is the same.
fn delimiter_match(existing: &str, new: &str) -> bool {
    let delim = ['=', ':', '@']
        .into_iter()
        .find(|d| new.contains(*d))
        .unwrap_or(':');
    let before = |s: &str| s.split_once(delim).map_or(s, |(b, _)| b).to_string();
    before(existing) == before(new)
}

/// The rule of `GetKustomizeImage` / `SetKustomizeImage`: the same
/// registry-less image name, and the same Kustomize name when both have one.
fn same_entry(entry: &ContainerImage, image_name: &str, kustomize_name: Option<&str>) -> bool {
    entry.name == image_name
        && match kustomize_name {
            Some(k) if !entry.alias.is_empty() => entry.alias == k,
            _ => true,
        }
}

/// The entry of `images` that holds the current value of the image
/// `image` (as configured) written under `kustomize_name`. Upstream looks
/// up the running image by the Kustomize name first (`ContainsImage` with
/// the `KustomizeImage`), then by the image; here the entries stand for the
/// running images, and the second look-up is `GetKustomizeImage`'s rule.
pub fn current<'a>(
    images: &'a [String],
    image: &str,
    kustomize_name: Option<&str>,
) -> Option<&'a String> {
    let parsed: Vec<ContainerImage> = images.iter().map(|e| ContainerImage::parse(e)).collect();
    let by_kustomize_name = kustomize_name.and_then(|k| {
        let k = ContainerImage::parse(k);
        parsed
            .iter()
            .position(|e| e.alias.is_empty() && !e.differs_from(&k))
    });
    let name = ContainerImage::parse(image).name;
    by_kustomize_name
        .or_else(|| {
            parsed
                .iter()
                .position(|e| same_entry(e, &name, kustomize_name))
        })
        .map(|i| &images[i])
}

/// `ContainerImageList.ContainsImage` without the version: the index of
/// the first of `running` (image references as an application runs them)
/// with the registry and name of `kustomize_name` when one matches, else
/// of `image`.
pub fn running(running: &[String], image: &str, kustomize_name: Option<&str>) -> Option<usize> {
    let parsed: Vec<ContainerImage> = running.iter().map(|r| ContainerImage::parse(r)).collect();
    let find = |wanted: &str| {
        let wanted = ContainerImage::parse(wanted);
        parsed.iter().position(|r| !r.differs_from(&wanted))
    };
    kustomize_name.and_then(find).or_else(|| find(image))
}

/// Argo CD's `KustomizeImages.Find`: the first entry that matches `image`
/// by [`delimiter_match`].
pub fn find(images: &[String], image: &str) -> Option<usize> {
    images.iter().position(|e| delimiter_match(e, image))
}

/// Argo CD's `KustomizeImage.Match`, `existing.Match(new)`.
pub fn matches(existing: &str, new: &str) -> bool {
    delimiter_match(existing, new)
}

/// `SetKustomizeImage`: sets `param`, `[kustomize-name=]reference` (the
/// configured image with its new tag), in an Application's
/// `kustomize.images`.
///
/// One difference on purpose: upstream writes the entries it finds in the
/// first step in normal form (`docker.io/library/nginx` becomes
/// `docker.io/nginx`), which `MergeImage` then does not recognise as the
/// same text, and appends a second entry. Here they get `param` as written,
/// so the entry is replaced, never duplicated.
pub fn set(images: &mut Vec<String>, param: &str) {
    let wanted = ContainerImage::parse(param);
    let kustomize_name = Some(wanted.alias.as_str()).filter(|a| !a.is_empty());
    for entry in images.iter_mut() {
        if same_entry(&ContainerImage::parse(entry), &wanted.name, kustomize_name) {
            *entry = param.to_string();
        }
    }
    match find(images, param) {
        Some(i) => images[i] = param.to_string(),
        None => images.push(param.to_string()),
    }
}

/// `mergeKustomizeOverride`: the Application's images merged into those of
/// an existing override file. An image replaces the first entry of the same
/// name and registry unless it has no version or the same one; others are
/// appended. On purpose, an entry under another Kustomize name is not the
/// same entry when one under this name exists (upstream would overwrite the
/// first alias's entry with the second's).
pub fn merge_override(existing: &[String], new: &[String]) -> Vec<String> {
    let mut out = existing.to_vec();
    for n in new {
        let image = ContainerImage::parse(n);
        let candidates: Vec<usize> = (0..out.len())
            .filter(|&i| ContainerImage::parse(&out[i]).same_name_and_registry(&image))
            .collect();
        let found = candidates
            .iter()
            .copied()
            .find(|&i| ContainerImage::parse(&out[i]).alias == image.alias)
            .or_else(|| {
                candidates.iter().copied().find(|&i| {
                    let a = ContainerImage::parse(&out[i]).alias;
                    a.is_empty() || image.alias.is_empty()
                })
            });
        match found {
            Some(i) => {
                let e = ContainerImage::parse(&out[i]);
                if !e.has_version() || (image.has_version() && !e.same_version(&image)) {
                    out[i] = n.clone();
                }
            }
            None => out.push(n.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_normalises_as_upstream() {
        let p = ContainerImage::parse("docker.io/library/nginx:1.0");
        assert_eq!(
            (p.registry.as_str(), p.name.as_str()),
            ("docker.io", "nginx")
        );
        let p = ContainerImage::parse("nginx");
        assert_eq!((p.registry.as_str(), p.name.as_str()), ("", "nginx"));
        let p = ContainerImage::parse("library/nginx");
        assert_eq!(p.name, "library/nginx");
        let p = ContainerImage::parse("foo=gcr.io/a/b:1@sha256:x");
        assert_eq!(p.alias, "foo");
        assert_eq!(
            (
                p.registry.as_str(),
                p.name.as_str(),
                p.tag.as_deref(),
                p.digest.as_deref()
            ),
            ("gcr.io", "a/b", Some("1"), Some("sha256:x"))
        );
        let p = ContainerImage::parse("localhost:5000/a:1");
        assert_eq!(
            (p.registry.as_str(), p.name.as_str()),
            ("localhost:5000", "a")
        );
    }
}
