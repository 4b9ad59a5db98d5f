//! Upstream's merge rules for the two lists Argo CD Image Updater writes, in
//! the override file and in an `Application` alike: Helm `parameters` (which
//! entry a parameter lands in, the `forceString` flag) and Kustomize `images`
//! (replace every entry of the image, then merge by name), and reading a Helm
//! parameter back.

use std::collections::BTreeMap;

use super::edit::{
    Text, append_entries, append_items, create, insert_item, is_true, replace_scalar, set_bool,
};
use super::emit::{Layout, New};
use super::locate::{Base, Slot, expect_list, locate, walk};
use super::{HELM_PARAMETERS, HelmParam, KUSTOMIZE_IMAGES};
use crate::rewrite::Edit;
use crate::yaml::Node;

/// How the `forceString` flag of a Helm parameter is written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Flag {
    /// The override file: `forcestring`, always written on new entries.
    Override,
    /// The Application CRD: `forceString`, written only when true.
    Crd,
}

impl Flag {
    pub(super) fn key(self) -> &'static str {
        match self {
            Flag::Override => "forcestring",
            Flag::Crd => "forceString",
        }
    }

    pub(super) fn entry(self, p: &HelmParam) -> New {
        let mut fields = vec![
            ("name".to_string(), New::Str(p.name.clone())),
            ("value".to_string(), New::Str(p.value.clone())),
        ];
        if p.force_string || self == Flag::Override {
            fields.push((self.key().to_string(), New::Bool(p.force_string)));
        }
        New::Map(fields)
    }
}

pub(super) fn merge_helm(
    text: &mut Text,
    base: Base,
    set: &[HelmParam],
    flag: Flag,
    create_empty: bool,
) -> Result<(), String> {
    // Later entries for the same name win; new entries are created in name order.
    let params: BTreeMap<&str, &HelmParam> = set.iter().map(|p| (p.name.as_str(), p)).collect();
    let created =
        text.step(
            |src, stream, layout| match walk(locate(stream, base)?, &HELM_PARAMETERS)? {
                Slot::Found(list) => expect_list(list, "helm.parameters").map(|_| None),
                _ if params.is_empty() && !create_empty => Ok(None),
                slot => {
                    let items = params.values().map(|p| flag.entry(p)).collect();
                    create(src, slot, &HELM_PARAMETERS, New::Seq(items), layout)
                }
            },
        )?;
    if !created {
        for p in params.values() {
            text.settle(|src, stream, layout| {
                let list = match walk(locate(stream, base)?, &HELM_PARAMETERS)? {
                    Slot::Found(list) => expect_list(list, "helm.parameters")?,
                    _ => return Err("helm.parameters vanished while editing".into()),
                };
                helm_param_edit(src, list, p, flag, layout)
            })?;
        }
    }
    let stream = text.parse()?;
    let node = locate(&stream, base)?;
    for p in params.values() {
        if helm_param(node, &p.name).as_deref() != Some(p.value.as_str()) {
            return Err(format!(
                "internal error: parameter {} does not read back as {:?}",
                p.name, p.value
            ));
        }
    }
    Ok(())
}

/// The next edit that brings the parameter list closer to holding `p`.
pub(super) fn helm_param_edit(
    src: &str,
    list: &[Node],
    p: &HelmParam,
    flag: Flag,
    layout: Layout,
) -> Result<Option<Edit>, String> {
    for item in list {
        if !matches!(item, Node::Mapping(..)) {
            return Err(format!(
                "line {}: a helm parameter is not a mapping",
                item.position().line
            ));
        }
    }
    let Some(item) = list.iter().find(|i| i.str_at(&["name"]) == Some(&p.name)) else {
        let names: Vec<Option<&str>> = list.iter().map(|i| i.str_at(&["name"])).collect();
        let sorted = names.iter().all(Option::is_some) && names.windows(2).all(|w| w[0] <= w[1]);
        let before = names
            .iter()
            .position(|n| n.is_some_and(|n| n > p.name.as_str()));
        return match before {
            Some(k) if sorted => insert_item(src, list, k, &flag.entry(p), layout).map(Some),
            _ => append_items(src, list, &[flag.entry(p)], layout).map(Some),
        };
    };
    match item.get("value") {
        Some(v) => {
            if let Some(edit) = replace_scalar(src, v, &p.value)? {
                return Ok(Some(edit));
            }
        }
        None => {
            let value = [("value".to_string(), New::Str(p.value.clone()))];
            return append_entries(src, item, &value, layout).map(Some);
        }
    }
    match item.get(flag.key()) {
        Some(f) if p.force_string || is_true(f) => set_bool(src, f, p.force_string),
        None if p.force_string => {
            let entry = [(flag.key().to_string(), New::Bool(true))];
            append_entries(src, item, &entry, layout).map(Some)
        }
        _ => Ok(None),
    }
}

/// Makes `kustomize.images` under `base` what `merge` makes of it; the
/// result keeps every existing entry in its place (replaced or not) and
/// may add entries at the end.
pub(super) fn merge_kustomize(
    text: &mut Text,
    base: Base,
    merge: &dyn Fn(&[String]) -> Vec<String>,
    create_empty: bool,
) -> Result<(), String> {
    let mut merged = Vec::new();
    text.step(|src, stream, layout| {
        let slot = walk(locate(stream, base)?, &KUSTOMIZE_IMAGES)?;
        let list = match &slot {
            Slot::Found(list) => expect_list(list, "kustomize.images")?,
            _ => &[],
        };
        let existing = list
            .iter()
            .map(|n| match n {
                Node::Scalar(s) if n.as_str().is_some() => Ok(s.value.clone()),
                _ => Err(format!(
                    "line {}: a kustomize image override is not a string",
                    n.position().line
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        merged = merge(&existing);
        if !matches!(slot, Slot::Found(_)) {
            if merged.is_empty() && !create_empty {
                return Ok(None);
            }
            let items = merged.iter().cloned().map(New::Str).collect();
            let edit = create(src, slot, &KUSTOMIZE_IMAGES, New::Seq(items), layout)?;
            return Ok(edit.map(|e| vec![e]));
        }
        let mut edits = Vec::new();
        for (node, value) in list.iter().zip(&merged) {
            edits.extend(replace_scalar(src, node, value)?);
        }
        let added: Vec<New> = merged[list.len()..].iter().cloned().map(New::Str).collect();
        if !added.is_empty() {
            edits.push(append_items(src, list, &added, layout)?);
        }
        Ok(Some(edits))
    })?;
    let stream = text.parse()?;
    let now: Vec<&str> = locate(&stream, base)?
        .at(&KUSTOMIZE_IMAGES)
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(Node::as_str)
        .collect();
    if now != merged {
        return Err(format!(
            "internal error: kustomize.images reads back as {now:?}, not {merged:?}"
        ));
    }
    Ok(())
}

/// Docker's rule: a first path component with `.` or `:`, or `localhost`.
pub(super) fn is_registry_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

/// The `value` of the Helm parameter `name` under `root.helm.parameters`
/// (`root` is an override file's root or an `Application` source).
pub fn helm_param(root: &Node, name: &str) -> Option<String> {
    root.at(&HELM_PARAMETERS)?
        .items()
        .iter()
        .find(|p| p.str_at(&["name"]) == Some(name))?
        .str_at(&["value"])
        .map(str::to_string)
}
