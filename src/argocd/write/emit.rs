//! New YAML text for what did not exist yet: nested maps and lists written
//! in the indentation and list style the file already uses.

use granit_parser::ScalarStyle;

use super::locate::{first_scalar, item_columns};
use crate::rewrite::{self};
use crate::yaml::{Node, Stream};

/// A value to write as new YAML lines.
pub(super) enum New {
    Str(String),
    Bool(bool),
    Map(Vec<(String, New)>),
    Seq(Vec<New>),
}

pub(super) fn nest(keys: &[String], leaf: New) -> New {
    keys.iter()
        .rev()
        .fold(leaf, |v, k| New::Map(vec![(k.clone(), v)]))
}

pub(super) fn is_empty_new(v: &New) -> bool {
    matches!(v, New::Seq(s) if s.is_empty()) || matches!(v, New::Map(m) if m.is_empty())
}

/// How a file indents: mapping indent, and whether `- ` sits under its key
/// (`key:\n- a`) or deeper (`key:\n  - a`). New files use upstream's layout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Layout {
    pub(super) indent: usize,
    pub(super) seq_indented: bool,
}

impl Layout {
    pub(super) fn detect(src: &str, stream: &Stream) -> Layout {
        let mut found = (None, None);
        for d in &stream.documents {
            scan_layout(src, &d.root, &mut found);
        }
        Layout {
            indent: found.0.unwrap_or(2),
            seq_indented: found.1.unwrap_or(false),
        }
    }

    pub(super) fn dash(self, key_col: usize) -> usize {
        key_col + if self.seq_indented { self.indent } else { 0 }
    }
}

pub(super) fn scan_layout(src: &str, node: &Node, found: &mut (Option<usize>, Option<bool>)) {
    if found.0.is_some() && found.1.is_some() {
        return;
    }
    match node {
        Node::Mapping(entries, _) => {
            for (k, v) in entries {
                let (Node::Scalar(key), Some(child)) = (k, first_scalar(v)) else {
                    scan_layout(src, v, found);
                    continue;
                };
                let key_col = key.start.column;
                match v {
                    Node::Mapping(..) if found.0.is_none() && child.start.column > key_col => {
                        found.0 = Some(child.start.column - key_col);
                    }
                    Node::Sequence(items, _) if found.1.is_none() => {
                        if let Ok((dash, _)) = item_columns(src, &items[0]) {
                            found.1 = Some(dash + 1 > key_col);
                        }
                    }
                    _ => {}
                }
                scan_layout(src, v, found);
            }
        }
        Node::Sequence(items, _) => items.iter().for_each(|i| scan_layout(src, i, found)),
        _ => {}
    }
}

pub(super) fn inline(v: &New) -> String {
    match v {
        New::Str(s) => rewrite::render(s, ScalarStyle::Plain),
        New::Bool(b) => b.to_string(),
        New::Map(_) => "{}".into(),
        New::Seq(_) => "[]".into(),
    }
}

pub(super) fn emit_entries(
    entries: &[(String, New)],
    col: usize,
    layout: Layout,
    out: &mut Vec<String>,
) {
    for (key, value) in entries {
        let head = format!(
            "{}{}:",
            " ".repeat(col),
            rewrite::render(key, ScalarStyle::Plain)
        );
        match value {
            New::Map(m) if !m.is_empty() => {
                out.push(head);
                emit_entries(m, col + layout.indent, layout, out);
            }
            New::Seq(s) if !s.is_empty() => {
                out.push(head);
                let dash = layout.dash(col);
                emit_items(s, dash, dash + 2, layout, out);
            }
            leaf => out.push(format!("{head} {}", inline(leaf))),
        }
    }
}

pub(super) fn emit_items(
    items: &[New],
    dash: usize,
    content: usize,
    layout: Layout,
    out: &mut Vec<String>,
) {
    for item in items {
        let start = out.len();
        match item {
            New::Map(m) if !m.is_empty() => emit_entries(m, content, layout, out),
            New::Seq(s) if !s.is_empty() => emit_items(s, content, content + 2, layout, out),
            leaf => out.push(format!("{}{}", " ".repeat(content), inline(leaf))),
        }
        out[start].replace_range(dash..dash + 1, "-");
    }
}
