//! Finding the node to edit again after each edit (the text is re-parsed
//! between edits): a document, a path of keys, a list, or the vacant place a
//! key would go.

use crate::yaml::{Node, Scalar, Stream};

pub(super) static EMPTY: Node = Node::Empty;

#[derive(Clone, Copy)]
pub(super) enum Base {
    /// The root of the file's only document.
    Root,
    /// An `Application`'s `spec.source` or `spec.sources[i]`.
    Source {
        document: usize,
        source: Option<usize>,
    },
}

pub(super) fn locate(stream: &Stream, base: Base) -> Result<&Node, String> {
    let (document, source) = match base {
        Base::Root => return Ok(stream.documents.first().map_or(&EMPTY, |d| &d.root)),
        Base::Source { document, source } => (document, source),
    };
    let root = &stream
        .documents
        .get(document)
        .ok_or_else(|| format!("the file has no document {document}"))?
        .root;
    if root.str_at(&["kind"]) != Some("Application") {
        return Err(format!(
            "document {document} (line {}) is not an Argo CD Application",
            root.position().line
        ));
    }
    let spec = root.get("spec").filter(|s| matches!(s, Node::Mapping(..)));
    let spec = spec.ok_or_else(|| format!("document {document}: the Application has no spec"))?;
    let (node, what) = match source {
        None => (spec.get("source"), "spec.source".to_string()),
        Some(i) => (
            spec.get("sources").and_then(|s| s.items().get(i)),
            format!("spec.sources[{i}]"),
        ),
    };
    match node {
        Some(n @ Node::Mapping(..)) => Ok(n),
        _ => Err(format!(
            "document {document}: the Application has no {what}"
        )),
    }
}

pub(super) fn single_document(stream: &Stream) -> Result<(), String> {
    if stream.documents.len() > 1 {
        return Err(format!(
            "the file holds {} YAML documents; expected one",
            stream.documents.len()
        ));
    }
    Ok(())
}

pub(super) fn expect_list<'a>(node: &'a Node, what: &str) -> Result<&'a [Node], String> {
    match node {
        Node::Sequence(items, _) => Ok(items),
        _ => Err(format!(
            "line {}: `{what}` is not a list",
            node.position().line
        )),
    }
}

/// Where a path of mapping keys leads.
pub(super) enum Slot<'a> {
    Found(&'a Node),
    /// `keys[depth..]` are missing from the mapping (or empty document) `parent`.
    Missing {
        parent: &'a Node,
        depth: usize,
    },
    /// `keys[depth]` is there but null, `[]` or `{}`.
    Vacant {
        key: &'a Scalar,
        value: &'a Node,
        depth: usize,
    },
}

pub(super) fn walk<'a>(base: &'a Node, keys: &[&str]) -> Result<Slot<'a>, String> {
    let mut node = base;
    for (depth, key) in keys.iter().enumerate() {
        let entries = match node {
            Node::Empty => {
                return Ok(Slot::Missing {
                    parent: node,
                    depth,
                });
            }
            Node::Mapping(entries, _) => entries,
            other => {
                return Err(format!(
                    "line {}: `{}` is not a mapping",
                    other.position().line,
                    keys[..depth].join(".")
                ));
            }
        };
        let Some((k, v)) = entries.iter().find(|(k, _)| k.as_str() == Some(key)) else {
            return Ok(Slot::Missing {
                parent: node,
                depth,
            });
        };
        if is_vacant(v) {
            let Node::Scalar(key) = k else {
                return Err(format!("line {}: unsupported key", k.position().line));
            };
            return Ok(Slot::Vacant {
                key,
                value: v,
                depth,
            });
        }
        node = v;
    }
    Ok(Slot::Found(node))
}

pub(super) fn is_vacant(node: &Node) -> bool {
    match node {
        Node::Sequence(items, _) => items.is_empty(),
        Node::Mapping(entries, _) => entries.is_empty(),
        other => other.is_null(),
    }
}

/// The dash and content columns of a block list item (`  - x` → 2, 4).
pub(super) fn item_columns(src: &str, item: &Node) -> Result<(usize, usize), String> {
    let line = item.position().line;
    let s = first_scalar(item).ok_or_else(|| format!("line {line}: unsupported list item"))?;
    let prefix = &src[line_start(src, s.span.start)..s.span.start];
    let rest = prefix.trim_start_matches(' ');
    let dash = prefix.len() - rest.len();
    match rest.strip_prefix('-') {
        Some(gap) if !gap.is_empty() && gap.trim_start_matches(' ').is_empty() => {
            Ok((dash, prefix.len()))
        }
        _ => Err(format!(
            "line {line}: the list is not a block list of `- item` lines (flow style?); refusing to extend it"
        )),
    }
}

pub(super) fn first_scalar(node: &Node) -> Option<&Scalar> {
    match node {
        Node::Scalar(s) => Some(s),
        Node::Mapping(e, _) => e.first().and_then(|(k, _)| first_scalar(k)),
        Node::Sequence(i, _) => i.first().and_then(first_scalar),
        _ => None,
    }
}

pub(super) fn line_start(src: &str, at: usize) -> usize {
    src[..at].rfind('\n').map_or(0, |i| i + 1)
}
