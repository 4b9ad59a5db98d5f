//! Write-back target `kustomization`: the `images` list of a
//! `kustomization.yaml`, with kustomize's matching of entries to overrides,
//! and its reader.

use std::collections::BTreeMap;

use super::KustomizationImage;
use super::edit::{
    Text, append_entries, append_items, create, finish, remove_entry, replace_scalar,
};
use super::emit::{Layout, New};
use super::locate::{Slot, expect_list, single_document, walk};
use crate::rewrite::Edit;
use crate::yaml::{self, Node};

/// One override in kustomize's terms (`name`, `newName`, `newTag`, `digest`).
pub(super) struct KustomizeOverride {
    pub(super) name: String,
    pub(super) new_name: String,
    pub(super) new_tag: String,
    pub(super) digest: String,
}

impl KustomizeOverride {
    /// `orig=new:tag` becomes name/newName/newTag; `name:tag` only sets newTag.
    pub(super) fn parse(text: &str) -> Result<KustomizeOverride, String> {
        let (alias, reference) = match text.split_once('=') {
            Some((alias, rest)) => (Some(alias), rest),
            None => (None, text),
        };
        let (full, tag, digest) = crate::policy::argo::split_reference(reference);
        let (name, new_name) = match alias {
            Some(alias) => (alias.to_string(), full.to_string()),
            None => (full.to_string(), String::new()),
        };
        if name.is_empty() {
            return Err(format!(
                "invalid kustomize image override {text:?}: no image name"
            ));
        }
        Ok(KustomizeOverride {
            name,
            new_name,
            new_tag: tag.unwrap_or_default().to_string(),
            digest: digest.unwrap_or_default().to_string(),
        })
    }

    pub(super) fn entry(&self) -> New {
        let fields = [
            ("name", &self.name),
            ("newName", &self.new_name),
            ("newTag", &self.new_tag),
            ("digest", &self.digest),
        ];
        New::Map(
            fields
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_string(), New::Str(v.to_string())))
                .collect(),
        )
    }
}

/// Edits the `images:` list of a kustomization the way upstream's
/// `kustomization` write-back target does.
///
/// An override updates every entry whose `name` is the override's name (or,
/// for an override without alias and no such entry, an entry that was in the
/// file before this call whose `newName` is the same image); otherwise it is
/// appended. A matched entry gets `newTag` and `digest` exactly as the
/// override has them (a field the override lacks is removed) and `newName`
/// only when it has none. New fields go to the end of the entry.
pub fn kustomization_images(existing: &str, images: &[String]) -> Result<Option<String>, String> {
    let overrides = images
        .iter()
        .map(|i| KustomizeOverride::parse(i))
        .collect::<Result<Vec<_>, _>>()?;
    let mut text = Text::new(existing);
    let stream = text.parse()?;
    single_document(&stream)?;
    if stream.documents.iter().all(|d| d.root.is_null()) {
        return Err("the kustomization is empty".into());
    }
    let original = image_entries(&stream.documents[0].root)?.len();
    for o in &overrides {
        let mut targets = Vec::new();
        text.step(|src, stream, layout| {
            let root = &stream.documents[0].root;
            let list = image_entries(root)?;
            targets = matching_entries(list, o, original);
            if !targets.is_empty() {
                return Ok(None);
            }
            match walk(root, &["images"])? {
                Slot::Found(_) => append_items(src, list, &[o.entry()], layout).map(Some),
                slot => create(src, slot, &["images"], New::Seq(vec![o.entry()]), layout),
            }
        })?;
        for index in targets {
            text.settle(|src, stream, layout| {
                let list = image_entries(&stream.documents[0].root)?;
                entry_edit(src, &list[index], o, layout)
            })?;
        }
    }
    verify_kustomization(&text.src, &overrides)?;
    finish(Some(existing), text.src)
}

/// What the kustomization says about the image `name`.
pub fn kustomization_image(root: &Node, name: &str) -> Option<KustomizationImage> {
    let entry = root
        .get("images")?
        .items()
        .iter()
        .find(|e| e.str_at(&["name"]) == Some(name))?;
    let field = |k: &str| entry.str_at(&[k]).map(str::to_string);
    Some(KustomizationImage {
        new_name: field("newName"),
        new_tag: field("newTag"),
        digest: field("digest"),
    })
}

/// The `images:` entries, which must all be mappings.
pub(super) fn image_entries(root: &Node) -> Result<&[Node], String> {
    if !matches!(root, Node::Mapping(..)) {
        return Err(format!(
            "line {}: the kustomization is not a mapping",
            root.position().line
        ));
    }
    let list = match walk(root, &["images"])? {
        Slot::Found(list) => expect_list(list, "images")?,
        _ => return Ok(&[]),
    };
    for item in list {
        if !matches!(item, Node::Mapping(..)) {
            return Err(format!(
                "line {}: an images entry is not a mapping",
                item.position().line
            ));
        }
    }
    Ok(list)
}

pub(super) fn matching_entries(
    list: &[Node],
    o: &KustomizeOverride,
    original: usize,
) -> Vec<usize> {
    let by_name: Vec<usize> = (0..list.len())
        .filter(|&i| list[i].str_at(&["name"]) == Some(o.name.as_str()))
        .collect();
    if !by_name.is_empty() || !o.new_name.is_empty() {
        return by_name;
    }
    (0..list.len().min(original))
        .filter(|&i| {
            list[i]
                .str_at(&["newName"])
                .is_some_and(|n| same_image_ref(n, &o.name))
        })
        .collect()
}

/// The next edit that makes a matched `images:` entry carry the override.
pub(super) fn entry_edit(
    src: &str,
    entry: &Node,
    o: &KustomizeOverride,
    layout: Layout,
) -> Result<Option<Edit>, String> {
    let add = |key: &str, value: &str| {
        let field = [(key.to_string(), New::Str(value.to_string()))];
        append_entries(src, entry, &field, layout).map(Some)
    };
    if !o.new_name.is_empty()
        && entry.get("newName").is_none()
        && entry.str_at(&["name"]) != Some(o.new_name.as_str())
    {
        return add("newName", &o.new_name);
    }
    for (key, value) in [("newTag", &o.new_tag), ("digest", &o.digest)] {
        let edit = match (entry.get(key), value.is_empty()) {
            (Some(_), true) => remove_entry(src, entry, key).map(Some)?,
            (Some(node), false) => replace_scalar(src, node, value)?,
            (None, false) => add(key, value)?,
            (None, true) => None,
        };
        if edit.is_some() {
            return Ok(edit);
        }
    }
    Ok(None)
}

/// Docker Hub spellings of one image are the same image.
pub(super) fn same_image_ref(a: &str, b: &str) -> bool {
    fn normal(r: &str) -> &str {
        let r = r
            .strip_prefix("docker.io/")
            .or_else(|| r.strip_prefix("index.docker.io/"))
            .unwrap_or(r);
        match r.split_once('/') {
            Some((host, _)) if !host.contains('.') && !host.contains(':') => {
                r.strip_prefix("library/").unwrap_or(r)
            }
            _ => r,
        }
    }
    normal(a) == normal(b)
}

pub(super) fn verify_kustomization(
    src: &str,
    overrides: &[KustomizeOverride],
) -> Result<(), String> {
    let stream = yaml::parse(src).map_err(|e| format!("internal error: {e}"))?;
    let root = &stream.documents[0].root;
    let last: BTreeMap<&str, &KustomizeOverride> =
        overrides.iter().map(|o| (o.name.as_str(), o)).collect();
    for (name, o) in last {
        let Some(got) = kustomization_image(root, name) else {
            continue; // matched through newName
        };
        let want = |v: &str| (!v.is_empty()).then(|| v.to_string());
        if got.new_tag != want(&o.new_tag) || got.digest != want(&o.digest) {
            return Err(format!(
                "internal error: images entry {name} reads back as {got:?}"
            ));
        }
    }
    Ok(())
}
