//! The surgical edits every writer is made of: replace a scalar's bytes,
//! set a boolean, create or fill a key, append list items and map entries in
//! the surrounding layout, remove an entry; each one checks what it replaces.

use granit_parser::ScalarStyle;

use super::emit::{Layout, New, emit_entries, emit_items, is_empty_new, nest};
use super::locate::{Slot, first_scalar, item_columns, line_start};
use crate::rewrite::{self, Edit};
use crate::yaml::{self, Node, Scalar, Stream};

/// The text being edited, with the line ending new lines get.
pub(super) struct Text {
    pub(super) src: String,
    pub(super) nl: &'static str,
}

impl Text {
    pub(super) fn new(src: &str) -> Text {
        let nl = if src.contains("\r\n") { "\r\n" } else { "\n" };
        Text {
            src: src.to_string(),
            nl,
        }
    }

    pub(super) fn parse(&self) -> Result<Stream, String> {
        yaml::parse(&self.src).map_err(|e| format!("not valid YAML: {e}"))
    }

    /// Plans edits against the current text and applies them; true when
    /// something was applied.
    pub(super) fn step<E: IntoEdits>(
        &mut self,
        mut plan: impl FnMut(&str, &Stream, Layout) -> Result<Option<E>, String>,
    ) -> Result<bool, String> {
        let stream = self.parse()?;
        let layout = Layout::detect(&self.src, &stream);
        let Some(edits) = plan(&self.src, &stream, layout)? else {
            return Ok(false);
        };
        let mut edits = edits.into_edits();
        if edits.is_empty() {
            return Ok(false);
        }
        for edit in &mut edits {
            edit.new = edit.new.replace('\n', self.nl);
        }
        let out = rewrite::apply(&self.src, &edits).map_err(|e| format!("internal error: {e}"))?;
        yaml::parse(&out).map_err(|e| format!("internal error: an edit broke the YAML: {e}"))?;
        self.src = out;
        Ok(true)
    }

    /// Repeats single edits until nothing is left to do.
    pub(super) fn settle(
        &mut self,
        mut plan: impl FnMut(&str, &Stream, Layout) -> Result<Option<Edit>, String>,
    ) -> Result<(), String> {
        for _ in 0..8 {
            if !self.step(&mut plan)? {
                return Ok(());
            }
        }
        Err("internal error: the edits did not settle".into())
    }
}

pub(super) trait IntoEdits {
    fn into_edits(self) -> Vec<Edit>;
}

impl IntoEdits for Edit {
    fn into_edits(self) -> Vec<Edit> {
        vec![self]
    }
}

impl IntoEdits for Vec<Edit> {
    fn into_edits(self) -> Vec<Edit> {
        self
    }
}

pub(super) fn finish(existing: Option<&str>, out: String) -> Result<Option<String>, String> {
    Ok((existing != Some(out.as_str())).then_some(out))
}

pub(super) fn is_blank(s: &str) -> bool {
    s.trim().is_empty()
}

pub(super) fn is_true(node: &Node) -> bool {
    matches!(node, Node::Scalar(s) if s.style == ScalarStyle::Plain && s.value == "true")
}

/// Whether a scalar already reads as the string `value`: same text, and not a
/// plain scalar that YAML would read as another type.
pub(super) fn holds(s: &Scalar, value: &str) -> bool {
    !s.span.is_empty()
        && s.value == value
        && (s.style != ScalarStyle::Plain || rewrite::is_safe_plain(value))
}

/// Replaces a scalar's text, keeping its quoting unless the value needs quotes.
pub(super) fn replace_scalar(src: &str, node: &Node, value: &str) -> Result<Option<Edit>, String> {
    let Node::Scalar(s) = node else {
        return Err(format!(
            "line {}: expected a single value, found a collection",
            node.position().line
        ));
    };
    if holds(s, value) {
        return Ok(None);
    }
    if matches!(s.style, ScalarStyle::Literal | ScalarStyle::Folded) {
        return Err(format!(
            "line {}: a block scalar (| or >) is not edited in place",
            s.start.line
        ));
    }
    if s.span.is_empty() {
        // `key:` with nothing after it: the value goes after the colon.
        let at = colon_after(src, s.span.start, s.start.line)? + 1;
        return Ok(Some(insert(
            at,
            format!(" {}", rewrite::render(value, ScalarStyle::Plain)),
        )));
    }
    Ok(Some(Edit {
        span: s.span.clone(),
        old: src[s.span.clone()].to_string(),
        new: rewrite::render(value, s.style),
    }))
}

pub(super) fn set_bool(src: &str, node: &Node, value: bool) -> Result<Option<Edit>, String> {
    let Node::Scalar(s) = node else {
        return Err(format!(
            "line {}: expected true or false",
            node.position().line
        ));
    };
    let word = if value { "true" } else { "false" };
    if s.style == ScalarStyle::Plain && s.value == word {
        return Ok(None);
    }
    if s.span.is_empty()
        || !matches!(
            s.style,
            ScalarStyle::Plain | ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted
        )
    {
        return Err(format!(
            "line {}: cannot set this flag in place",
            s.start.line
        ));
    }
    Ok(Some(Edit {
        span: s.span.clone(),
        old: src[s.span.clone()].to_string(),
        new: word.to_string(),
    }))
}

pub(super) fn insert(at: usize, new: String) -> Edit {
    Edit {
        span: at..at,
        old: String::new(),
        new,
    }
}

pub(super) fn colon_after(src: &str, from: usize, line: usize) -> Result<usize, String> {
    let rest = &src[from..];
    let skipped = rest.len() - rest.trim_start_matches(' ').len();
    if rest[skipped..].starts_with(':') {
        Ok(from + skipped)
    } else {
        Err(format!("line {line}: expected `:` after the key"))
    }
}

/// Creates what is missing of `keys` (from the slot on) with `leaf` at the end.
pub(super) fn create(
    src: &str,
    slot: Slot,
    keys: &[&str],
    leaf: New,
    layout: Layout,
) -> Result<Option<Edit>, String> {
    let owned: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let edit = match slot {
        Slot::Found(_) => return Ok(None),
        Slot::Missing { parent, depth } => {
            let value = nest(&owned[depth + 1..], leaf);
            append_entries(src, parent, &[(owned[depth].clone(), value)], layout)?
        }
        Slot::Vacant { key, value, depth } => {
            let new = nest(&owned[depth + 1..], leaf);
            if is_empty_new(&new) {
                return Ok(None);
            }
            fill_vacant(src, key, value, &new, layout)?
        }
    };
    Ok(Some(edit))
}

/// Replaces a null, `[]` or `{}` value with a block.
pub(super) fn fill_vacant(
    src: &str,
    key: &Scalar,
    value: &Node,
    new: &New,
    layout: Layout,
) -> Result<Edit, String> {
    let line = key.start.line;
    let col = block_column(src, key)?;
    let colon = colon_after(src, key.span.end, line)?;
    let after = colon + 1;
    let end = match value {
        Node::Scalar(s) if s.span.is_empty() => after,
        Node::Scalar(s) if s.span.start >= after && src[after..s.span.start].trim().is_empty() => {
            s.span.end
        }
        Node::Sequence(..) => closing(src, after, '[', ']', line)?,
        Node::Mapping(..) => closing(src, after, '{', '}', line)?,
        _ => return Err(format!("line {line}: cannot replace this value")),
    };
    let mut lines = Vec::new();
    match new {
        New::Map(entries) => emit_entries(entries, col + layout.indent, layout, &mut lines),
        New::Seq(items) => {
            let dash = layout.dash(col);
            emit_items(items, dash, dash + 2, layout, &mut lines);
        }
        _ => return Err(format!("line {line}: cannot replace this value")),
    }
    Ok(Edit {
        span: colon..end,
        old: src[colon..end].to_string(),
        new: format!(":\n{}", lines.join("\n")),
    })
}

/// The end of an empty flow collection `[ ]` / `{ }` starting after `from`.
pub(super) fn closing(
    src: &str,
    from: usize,
    open: char,
    close: char,
    line: usize,
) -> Result<usize, String> {
    let rest = src[from..].trim_start_matches(' ');
    let start = src.len() - rest.len();
    let inner = rest.strip_prefix(open).map(|r| r.trim_start_matches(' '));
    match inner {
        Some(r) if r.starts_with(close) => Ok(start + (rest.len() - r.len()) + 1),
        _ => Err(format!("line {line}: expected an empty `{open}{close}`")),
    }
}

/// Appends entries to a block mapping (or to an empty document).
pub(super) fn append_entries(
    src: &str,
    parent: &Node,
    entries: &[(String, New)],
    layout: Layout,
) -> Result<Edit, String> {
    let (at, col, lead) = match parent {
        Node::Empty => (src.len(), 0, !src.is_empty() && !src.ends_with('\n')),
        Node::Mapping(e, _) if !e.is_empty() => {
            let Node::Scalar(first) = &e[0].0 else {
                return Err(format!("line {}: unsupported key", e[0].0.position().line));
            };
            let col = block_column(src, first)?;
            let (at, lead) = line_after(src, extent_end(parent)?);
            (at, col, lead)
        }
        other => {
            return Err(format!(
                "line {}: cannot add keys to this mapping",
                other.position().line
            ));
        }
    };
    let mut lines = Vec::new();
    emit_entries(entries, col, layout, &mut lines);
    Ok(insert(at, block_text(&lines, lead)))
}

/// Appends items to a non-empty block sequence, in its own indentation.
pub(super) fn append_items(
    src: &str,
    list: &[Node],
    items: &[New],
    layout: Layout,
) -> Result<Edit, String> {
    let first = list
        .first()
        .ok_or("internal error: appending to an empty list")?;
    let (dash, content) = item_columns(src, first)?;
    let end = list
        .iter()
        .try_fold(0, |m, n| extent_end(n).map(|e| m.max(e)))?;
    let (at, lead) = line_after(src, end);
    let mut lines = Vec::new();
    emit_items(items, dash, content, layout, &mut lines);
    Ok(insert(at, block_text(&lines, lead)))
}

/// Inserts an item before item `k` (and before comment lines right above it).
pub(super) fn insert_item(
    src: &str,
    list: &[Node],
    k: usize,
    item: &New,
    layout: Layout,
) -> Result<Edit, String> {
    let (dash, content) = item_columns(src, &list[k])?;
    let anchor = first_scalar(&list[k]).ok_or("internal error: empty item")?;
    let mut at = line_start(src, anchor.span.start);
    while at > 0 {
        let above = line_start(src, at - 1);
        if !src[above..at].trim_start().starts_with('#') {
            break;
        }
        at = above;
    }
    let mut lines = Vec::new();
    emit_items(
        std::slice::from_ref(item),
        dash,
        content,
        layout,
        &mut lines,
    );
    Ok(insert(at, block_text(&lines, false)))
}

/// Removes one `key: value` line from a block mapping.
pub(super) fn remove_entry(src: &str, map: &Node, key: &str) -> Result<Edit, String> {
    let entries = map.entries();
    let i = entries
        .iter()
        .position(|(k, _)| k.as_str() == Some(key))
        .ok_or("internal error: no such key")?;
    let (Node::Scalar(k), Node::Scalar(v)) = &entries[i] else {
        return Err(format!(
            "line {}: `{key}` is not a single value",
            entries[i].0.position().line
        ));
    };
    if v.end_line != k.start.line {
        return Err(format!(
            "line {}: `{key}` spans several lines",
            k.start.line
        ));
    }
    block_column(src, k)?;
    let start = line_start(src, k.span.start);
    let span = if src[start..k.span.start].trim().is_empty() {
        start..line_after(src, v.span.end.max(k.span.end)).0
    } else {
        // The first key of a list item: the next key moves up behind the dash.
        let next = entries
            .get(i + 1)
            .and_then(|(n, _)| first_scalar(n))
            .ok_or_else(|| {
                format!(
                    "line {}: cannot remove the only field of an item",
                    k.start.line
                )
            })?;
        k.span.start..next.span.start
    };
    Ok(Edit {
        old: src[span.clone()].to_string(),
        span,
        new: String::new(),
    })
}

pub(super) fn block_text(lines: &[String], lead: bool) -> String {
    let lead = if lead { "\n" } else { "" };
    format!("{lead}{}\n", lines.join("\n"))
}

/// The offset after the line holding `end`, and whether a line break must be
/// added first (the file ends without one).
pub(super) fn line_after(src: &str, end: usize) -> (usize, bool) {
    if end > 0 && src.as_bytes()[end - 1] == b'\n' {
        return (end, false);
    }
    match src[end..].find('\n') {
        Some(i) => (end + i + 1, false),
        None => (src.len(), true),
    }
}

/// The column of a key in block style: what precedes it on its line is only
/// indentation and list dashes.
pub(super) fn block_column(src: &str, key: &Scalar) -> Result<usize, String> {
    let prefix = &src[line_start(src, key.span.start)..key.span.start];
    let mut rest = prefix.trim_start_matches(' ');
    while let Some(r) = rest.strip_prefix('-') {
        if !r.starts_with(' ') {
            break;
        }
        rest = r.trim_start_matches(' ');
    }
    if rest.is_empty() {
        Ok(prefix.len())
    } else {
        Err(format!(
            "line {}: `{}` is not in block style; refusing to edit",
            key.start.line, key.value
        ))
    }
}

/// The byte offset where a node's text ends.
pub(super) fn extent_end(node: &Node) -> Result<usize, String> {
    match node {
        Node::Scalar(s) => Ok(s.span.end),
        Node::Mapping(e, _) => e
            .iter()
            .try_fold(0, |m, (k, v)| Ok(m.max(extent_end(k)?).max(extent_end(v)?))),
        Node::Sequence(i, _) => i.iter().try_fold(0, |m, n| extent_end(n).map(|e| m.max(e))),
        Node::Alias(p) => Err(format!("line {}: aliases are not edited around", p.line)),
        Node::Empty => Ok(0),
    }
}
