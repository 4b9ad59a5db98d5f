//! Write-back target `helmvalues`: values set at parameter paths
//! (`image.tag`, `a.b[1].image`) in a Helm values file, creating only what is
//! missing, and its reader.

use std::collections::BTreeMap;

use super::VALUES_HEADER;
use super::edit::{Text, append_entries, finish, is_blank, replace_scalar};
use super::emit::{New, nest};
use super::locate::{EMPTY, single_document};
use super::merge::is_registry_host;
use crate::yaml::Node;

/// Sets values in a Helm values file at parameter paths (`image.tag`,
/// `a.b[1].image`); `existing` is `None` (or blank) when the file is absent,
/// and a new file starts with upstream's generated-file comment.
///
/// A path is looked up nested first, then as a literal dotted key at the top;
/// when neither exists the missing keys are created. An index into something
/// that is not a list, an index out of range, or a list reached without an
/// index is an error. When the file holds a value without a registry host and
/// the new value has one, the host is dropped (upstream keeps short names).
pub fn helm_values(
    existing: Option<&str>,
    writes: &[(String, String)],
) -> Result<Option<String>, String> {
    let fresh = existing.is_none_or(is_blank);
    let mut text = Text::new(if fresh { "" } else { existing.unwrap_or("") });
    single_document(&text.parse()?)?;
    let mut written = BTreeMap::new();
    for (path, value) in writes {
        text.step(|src, stream, layout| {
            let root = stream.documents.first().map_or(&EMPTY, |d| &d.root);
            match resolve_value(root, path)? {
                Target::Scalar(node) => {
                    let value = if fresh {
                        value.clone()
                    } else {
                        keep_short_form(node, value)
                    };
                    written.insert(path.as_str(), value.clone());
                    replace_scalar(src, node, &value)
                }
                Target::Create { parent, keys } => {
                    written.insert(path.as_str(), value.clone());
                    let leaf = nest(&keys[1..], New::Str(value.clone()));
                    append_entries(src, parent, &[(keys[0].clone(), leaf)], layout).map(Some)
                }
            }
        })?;
    }
    let stream = text.parse()?;
    let root = stream.documents.first().map_or(&EMPTY, |d| &d.root);
    for (path, value) in &written {
        if values_at(root, path).as_ref() != Some(value) {
            return Err(format!(
                "internal error: {path} does not read back as {value:?}"
            ));
        }
    }
    if fresh {
        let body = if text.src.is_empty() {
            "{}\n"
        } else {
            &text.src
        };
        return Ok(Some(format!("{VALUES_HEADER}{body}")));
    }
    finish(existing, text.src)
}

/// The string at a Helm parameter path in a values file, resolved like
/// [`helm_values`] does (nested path first, then a literal dotted key).
pub fn values_at(root: &Node, path: &str) -> Option<String> {
    match resolve_value(root, path) {
        Ok(Target::Scalar(node)) => node.as_str().map(str::to_string),
        _ => None,
    }
}

pub(super) enum Target<'a> {
    Scalar(&'a Node),
    /// `keys` are missing under the mapping `parent`.
    Create {
        parent: &'a Node,
        keys: Vec<String>,
    },
}

pub(super) fn resolve_value<'a>(root: &'a Node, path: &str) -> Result<Target<'a>, String> {
    let segments: Vec<&str> = path.split('.').collect();
    let mut node = root;
    for (i, segment) in segments.iter().enumerate() {
        let (key, index) = split_index(segment)?;
        let Some(mut value) = node.get(key) else {
            return literal_or_create(root, path, node, &segments[i..]);
        };
        if let Node::Alias(p) = value {
            return Err(format!(
                "line {}: `{key}` is an alias; not followed",
                p.line
            ));
        }
        let line = value.position().line;
        match (value, index) {
            (Node::Sequence(items, _), Some(n)) => {
                value = items.get(n).ok_or_else(|| {
                    format!(
                        "line {line}: index {n} is out of range for `{key}` ({} items)",
                        items.len()
                    )
                })?;
            }
            (_, Some(n)) => {
                return Err(format!(
                    "line {line}: index {n} given but `{key}` is not a list"
                ));
            }
            (Node::Sequence(..), None) => {
                return Err(format!(
                    "line {line}: `{key}` is a list; the path needs an index"
                ));
            }
            _ => {}
        }
        let last = i + 1 == segments.len();
        match value {
            Node::Scalar(_) if last => return Ok(Target::Scalar(value)),
            Node::Mapping(..) if !last => node = value,
            _ => {
                let what = if last { "a value" } else { "a mapping" };
                return Err(format!(
                    "line {}: `{}` is not {what}",
                    value.position().line,
                    segments[..=i].join(".")
                ));
            }
        }
    }
    Err(format!("empty parameter path {path:?}"))
}

pub(super) fn literal_or_create<'a>(
    root: &'a Node,
    path: &str,
    parent: &'a Node,
    missing: &[&str],
) -> Result<Target<'a>, String> {
    if let Some(value) = root.get(path) {
        return match value {
            Node::Scalar(_) => Ok(Target::Scalar(value)),
            _ => Err(format!(
                "line {}: literal key `{path}` is not a value",
                value.position().line
            )),
        };
    }
    if !matches!(parent, Node::Mapping(..) | Node::Empty) {
        return Err(format!(
            "line {}: the values file is not a mapping",
            parent.position().line
        ));
    }
    if let Some(indexed) = missing.iter().find(|s| s.ends_with(']')) {
        return Err(format!(
            "`{indexed}` in {path:?}: there is no list to index"
        ));
    }
    Ok(Target::Create {
        parent,
        keys: missing.iter().map(|s| s.to_string()).collect(),
    })
}

/// `key[3]` → (`key`, Some(3)); other segments have no index.
pub(super) fn split_index(segment: &str) -> Result<(&str, Option<usize>), String> {
    let Some(inner) = segment.strip_suffix(']') else {
        return Ok((segment, None));
    };
    let Some((key, index)) = inner.rsplit_once('[') else {
        return Ok((segment, None));
    };
    let index = index
        .parse()
        .map_err(|_| format!("index {index:?} in {segment:?} is not a list index"))?;
    Ok((key, Some(index)))
}

/// Upstream keeps a registry-less name registry-less.
pub(super) fn keep_short_form(current: &Node, value: &str) -> String {
    let has_host = |v: &str| v.split_once('/').is_some_and(|(h, _)| is_registry_host(h));
    match current.as_str() {
        Some(old) if has_host(value) && !has_host(old) => value
            .split_once('/')
            .map_or(value, |(_, rest)| rest)
            .to_string(),
        _ => value.to_string(),
    }
}
