//! What one version of a file holds, for the history's decisions: the value
//! of each marker (rollback holds compare them commit by commit), and every
//! image reference it pins (promotion gates look for a tag in a path).
//! Pure: text in, values out; a version that does not parse holds nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::image::{Reference, Repository};
use crate::marker::{self, Field, Setter};
use crate::policy::PolicyId;
use crate::yaml::{self, Node};

/// The tag (or digest, for `:digest` markers) each marker of a file sets,
/// keyed by its setter and its place among the setter's markers in the
/// file. `:name` markers set no tag.
pub fn marker_tags(src: &str) -> BTreeMap<(Setter, usize), String> {
    let mut tags = BTreeMap::new();
    if !src.contains(marker::TOKEN) {
        return tags;
    }
    let Ok(stream) = yaml::parse(src) else {
        return tags;
    };
    let mut seen: BTreeMap<Setter, usize> = BTreeMap::new();
    for m in marker::find(src, &stream).markers {
        let n = seen.entry(m.setter.clone()).or_default();
        let key = (m.setter.clone(), *n);
        *n += 1;
        let value = &m.scalar.value;
        let tag = match m.setter.field {
            Field::Image => Reference::split(value).tag.map(str::to_string),
            Field::Tag | Field::Digest => Some(value.clone()),
            Field::Name => None,
        };
        if let Some(tag) = tag.filter(|t| !t.is_empty()) {
            tags.insert(key, tag);
        }
    }
    tags
}

/// Every image a file pins, as `registry/path:tag` and
/// `registry/path@digest` (normal form, so spellings of one repository
/// agree): scalars that are references with a tag or digest, Kustomize
/// `images` entries (`name`/`newName` with `newTag`/`digest`), Helm
/// `repository` + `tag` pairs, and `:tag` / `:digest` markers, whose
/// image is their policy's (`repository_of`).
pub fn pinned(
    src: &str,
    repository_of: &dyn Fn(&PolicyId) -> Option<Repository>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(stream) = yaml::parse(src) else {
        return out;
    };
    let mut add = |name: &str, tag: Option<&str>, digest: Option<&str>| {
        if let Ok(repository) = Repository::parse(name) {
            if let Some(tag) = tag.filter(|t| !t.is_empty()) {
                out.insert(format!("{repository}:{tag}"));
            }
            if let Some(digest) = digest.filter(|d| !d.is_empty()) {
                out.insert(format!("{repository}@{digest}"));
            }
        }
    };
    for document in &stream.documents {
        walk(&document.root, &mut add);
    }
    if src.contains(marker::TOKEN) {
        for m in marker::find(src, &stream).markers {
            let Some(repository) = repository_of(&m.setter.policy) else {
                continue;
            };
            let value = m.scalar.value.as_str();
            match m.setter.field {
                Field::Tag => add(&repository.to_string(), Some(value), None),
                Field::Digest => add(&repository.to_string(), None, Some(value)),
                Field::Image | Field::Name => {}
            }
        }
    }
    out
}

/// Takes an image name with its tag and digest, when it has them.
type Add<'a> = dyn FnMut(&str, Option<&str>, Option<&str>) + 'a;

fn walk(node: &Node, add: &mut Add) {
    match node {
        Node::Scalar(_) => {
            if let Some(value) = node.as_str()
                && !value.contains(char::is_whitespace)
            {
                let r = Reference::split(value);
                if r.tag.is_some() || r.digest.is_some() {
                    add(r.name, r.tag, r.digest);
                }
            }
        }
        Node::Mapping(entries, _) => {
            let name = node.str_at(&["newName"]).or(node.str_at(&["name"]));
            if let Some(name) = name
                && (node.get("newTag").is_some() || node.get("digest").is_some())
            {
                add(name, node.str_at(&["newTag"]), node.str_at(&["digest"]));
            }
            if let (Some(repository), Some(tag)) =
                (node.str_at(&["repository"]), node.str_at(&["tag"]))
            {
                // Charts that split the host off (`registry: ghcr.io`,
                // `repository: acme/web`, as Bitnami's do).
                match node.str_at(&["registry"]).filter(|r| !r.is_empty()) {
                    Some(registry) => add(&format!("{registry}/{repository}"), Some(tag), None),
                    None => add(repository, Some(tag), None),
                }
            }
            for (_, v) in entries {
                walk(v, add);
            }
        }
        Node::Sequence(items, _) => {
            helm_parameters(items, add);
            items.iter().for_each(|i| walk(i, add));
        }
        Node::Alias(_) | Node::Empty => {}
    }
}

/// Argo CD Helm parameters (`- {name: image.tag, value: 1.2.0}`): a
/// `<prefix>tag` with a `<prefix>repository` or `<prefix>name` beside it.
fn helm_parameters(items: &[Node], add: &mut Add) {
    let parameters: BTreeMap<&str, &str> = items
        .iter()
        .filter_map(|i| Some((i.str_at(&["name"])?, i.str_at(&["value"])?)))
        .collect();
    for (name, tag) in &parameters {
        let Some(prefix) = name.strip_suffix("tag") else {
            continue;
        };
        let image = ["repository", "name"]
            .iter()
            .find_map(|n| parameters.get(format!("{prefix}{n}").as_str()));
        if let Some(image) = image {
            add(image, Some(tag), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_tags_follow_each_setter() {
        let src = "image: ghcr.io/acme/web:1.1.0 # {\"$imagepolicy\": \"apps:web\"}\n\
                   tag: \"1.2\" # {\"$imagepolicy\": \"apps:api:tag\"}\n\
                   name: ghcr.io/acme/api # {\"$imagepolicy\": \"apps:api:name\"}\n\
                   other: ghcr.io/acme/web:0.9.0 # {\"$imagepolicy\": \"apps:web\"}\n";
        let tags = marker_tags(src);
        let web = Setter::parse("apps:web").unwrap();
        let api = Setter::parse("apps:api:tag").unwrap();
        assert_eq!(
            tags.get(&(web.clone(), 0)).map(String::as_str),
            Some("1.1.0")
        );
        assert_eq!(tags.get(&(web, 1)).map(String::as_str), Some("0.9.0"));
        assert_eq!(tags.get(&(api, 0)).map(String::as_str), Some("1.2"));
        assert_eq!(tags.len(), 3);
        assert!(marker_tags("a: [unclosed # $imagepolicy\n").is_empty());
    }

    #[test]
    fn pinned_images_in_every_spelling() {
        let src = "spec:\n  containers:\n  - image: nginx:1.25\n  - image: ghcr.io/acme/web@sha256:aa\n\
                   images:\n- name: ghcr.io/acme/api\n  newTag: 2.0.0\n\
                   image:\n  repository: docker.io/library/redis\n  tag: \"7.2\"\n\
                   sidecar:\n  registry: quay.io\n  repository: acme/proxy\n  tag: 0.4.0\n\
                   tag: 3.1.0 # {\"$imagepolicy\": \"apps:db:tag\"}\n\
                   note: see ghcr.io/acme/x:1 for details\n\
                   helm:\n  parameters:\n  - {name: image.name, value: ghcr.io/acme/chart}\n  - {name: image.tag, value: 4.0.1}\n";
        let db = PolicyId::new("apps", "db");
        let repository_of =
            |id: &PolicyId| (id == &db).then(|| Repository::parse("ghcr.io/acme/db").unwrap());
        let got = pinned(src, &repository_of);
        let want: BTreeSet<String> = [
            "docker.io/library/nginx:1.25",
            "ghcr.io/acme/web@sha256:aa",
            "ghcr.io/acme/api:2.0.0",
            "docker.io/library/redis:7.2",
            "quay.io/acme/proxy:0.4.0",
            "ghcr.io/acme/db:3.1.0",
            "ghcr.io/acme/chart:4.0.1",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(got, want);
    }
}
