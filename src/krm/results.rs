//! The function's `results`: what a result says ([`FnResult`]), and how the
//! list is written into the ResourceList text, in block or flow style,
//! appended without re-serialising what came before it. Apart from the item
//! processing because it only writes text; it decides nothing.

use std::fmt::Write as _;

use crate::outcome::Severity;
use crate::rewrite::{self, Edit, double_quoted};
use crate::yaml::{self, Node};

use super::Lines;

/// The resource a result is about (`results[].resourceRef`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

impl ResourceRef {
    pub(super) fn of(item: &Node) -> Option<ResourceRef> {
        let text = |path: &[&str]| item.str_at(path).unwrap_or_default().to_string();
        let reference = ResourceRef {
            api_version: text(&["apiVersion"]),
            kind: text(&["kind"]),
            name: text(&["metadata", "name"]),
            namespace: text(&["metadata", "namespace"]),
        };
        (!reference.kind.is_empty() || !reference.name.is_empty()).then_some(reference)
    }
}

/// The file a result is about (`results[].file`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileRef {
    pub path: String,
    /// The document index within the file, when the orchestrator said.
    pub index: Option<u64>,
}

/// One entry of the `results` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FnResult {
    pub message: String,
    pub severity: Severity,
    pub resource: Option<ResourceRef>,
    /// `results[].field.path`: where in the resource, e.g.
    /// `spec.template.spec.containers[0].image`.
    pub field: Option<String>,
    pub file: Option<FileRef>,
    /// `results[].tags`, for machines: policy, setter, old and new value.
    pub tags: Vec<(&'static str, String)>,
}

impl FnResult {
    pub(super) fn general(severity: Severity, message: impl Into<String>) -> FnResult {
        FnResult {
            message: message.into(),
            severity,
            resource: None,
            field: None,
            file: None,
            tags: Vec::new(),
        }
    }
}

/// What a function call produced.
fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}

/// The entries of one result, in the order they are written.
fn result_fields(r: &FnResult) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let mut fields = Vec::new();
    if let Some(reference) = &r.resource {
        let mut entries = Vec::new();
        for (key, value) in [
            ("apiVersion", &reference.api_version),
            ("kind", &reference.kind),
            ("name", &reference.name),
            ("namespace", &reference.namespace),
        ] {
            if !value.is_empty() {
                entries.push((key, double_quoted(value)));
            }
        }
        fields.push(("resourceRef", entries));
    }
    if let Some(path) = &r.field {
        fields.push(("field", vec![("path", double_quoted(path))]));
    }
    if let Some(file) = &r.file {
        let mut entries = vec![("path", double_quoted(&file.path))];
        if let Some(index) = file.index {
            entries.push(("index", index.to_string()));
        }
        fields.push(("file", entries));
    }
    if !r.tags.is_empty() {
        fields.push((
            "tags",
            r.tags.iter().map(|(k, v)| (*k, double_quoted(v))).collect(),
        ));
    }
    fields
}

/// The results as block sequence items at `indent`, each line ended by `nl`.
pub fn render_block(results: &[FnResult], indent: &str, nl: &str) -> String {
    let mut out = String::new();
    for r in results {
        let _ = write!(out, "{indent}- message: {}{nl}", double_quoted(&r.message));
        let _ = write!(out, "{indent}  severity: {}{nl}", severity_word(r.severity));
        for (key, entries) in result_fields(r) {
            let _ = write!(out, "{indent}  {key}:{nl}");
            for (k, v) in entries {
                let _ = write!(out, "{indent}    {k}: {v}{nl}");
            }
        }
    }
    out
}

/// The results as JSON objects on one line, separated by `, `.
pub fn render_flow(results: &[FnResult]) -> String {
    let objects: Vec<String> = results
        .iter()
        .map(|r| {
            let mut parts = vec![
                format!("\"message\": {}", double_quoted(&r.message)),
                format!("\"severity\": \"{}\"", severity_word(r.severity)),
            ];
            for (key, entries) in result_fields(r) {
                let inner: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("\"{k}\": {v}"))
                    .collect();
                parts.push(format!("\"{key}\": {{{}}}", inner.join(", ")));
            }
            format!("{{{}}}", parts.join(", "))
        })
        .collect();
    objects.join(", ")
}

/// The offset just past the flow collection opening at `open` (`[` or `{`),
/// skipping quoted strings and comments; `None` when it is not closed.
fn flow_end(src: &str, open: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'\'' {
                        if bytes.get(i + 1) == Some(&b'\'') {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    i += 1;
                }
            }
            b'#' if i == 0 || bytes[i - 1].is_ascii_whitespace() => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The first offset at or after `from` that is not a blank, a line break or
/// part of a comment.
fn skip_blanks_and_comments(src: &str, mut from: usize) -> usize {
    let bytes = src.as_bytes();
    while from < bytes.len() {
        match bytes[from] {
            b' ' | b'\t' | b'\r' | b'\n' => from += 1,
            b'#' => {
                while from < bytes.len() && bytes[from] != b'\n' {
                    from += 1;
                }
            }
            _ => break,
        }
    }
    from
}

/// Adds `results` to the root mapping of the ResourceList text, changing
/// nothing else: a new `results:` block at the end of a block mapping (or a
/// `"results": [...]` member of a flow one). When the input already has
/// results (an earlier function's, in a shell pipe), they are kept and ours
/// follow them. The text is parsed again to make sure it still reads as the
/// same list plus our results.
pub fn append_results(src: &str, root: &Node, results: &[FnResult]) -> Result<String, String> {
    if results.is_empty() {
        return Ok(src.to_string());
    }
    let nl = if src.contains("\r\n") { "\r\n" } else { "\n" };
    let lines = Lines::new(src);
    let root_start = {
        let p = root.position();
        lines.offset(p.line, p.column)
    };
    let flow_root = src[root_start..].starts_with('{');
    let existing = root
        .entries()
        .iter()
        .find(|(k, _)| k.as_str() == Some("results"));
    let before = existing.map_or(0, |(_, v)| v.items().len());

    // One insertion (or, for a null `results`, one replacement), spliced by
    // the same engine as every other edit.
    let insert = |at: usize, new: String| Edit {
        span: at..at,
        old: String::new(),
        new,
    };
    let edit = match existing {
        None if flow_root => {
            let end =
                flow_end(src, root_start).ok_or("the ResourceList mapping is not closed")? - 1;
            let last = src[..end].trim_end().len();
            let comma = if root.entries().is_empty() { "" } else { ", " };
            insert(
                last,
                format!("{comma}\"results\": [{}]", render_flow(results)),
            )
        }
        None => {
            let indent = " ".repeat(root.position().column.saturating_sub(1));
            // Before a closing `...` line, if any.
            let body = src.trim_end();
            let at = match body.rfind('\n') {
                Some(i) if body[i + 1..].trim() == "..." => i + 1,
                None if body.trim() == "..." => 0,
                _ => src.len(),
            };
            let mut text = String::new();
            if at > 0 && !src[..at].ends_with('\n') {
                text.push_str(nl);
            }
            let _ = write!(text, "{indent}results:{nl}");
            text.push_str(&render_block(results, &indent, nl));
            insert(at, text)
        }
        Some((key, value)) => {
            let Node::Scalar(key) = key else {
                return Err("the `results` key is not a plain key".to_string());
            };
            let colon = key.span.end
                + src[key.span.end..]
                    .find(':')
                    .ok_or("no `:` after the `results` key")?;
            let start = skip_blanks_and_comments(src, colon + 1);
            let rest = &src[start..];
            if value.is_null() {
                // `results:`, `results: null`, `results: ~`: a flow list
                // replaces the null.
                let (from, to) = match value {
                    Node::Scalar(s) if !s.span.is_empty() => (s.span.start, s.span.end),
                    _ => (colon + 1, colon + 1),
                };
                let space = if from == colon + 1 { " " } else { "" };
                Edit {
                    span: from..to,
                    old: src[from..to].to_string(),
                    new: format!("{space}[{}]", render_flow(results)),
                }
            } else if matches!(value, Node::Sequence(..)) && rest.starts_with('[') {
                let end = flow_end(src, start).ok_or("the `results` list is not closed")? - 1;
                let last = src[..end].trim_end().len();
                let comma = if value.items().is_empty() { "" } else { ", " };
                insert(last, format!("{comma}{}", render_flow(results)))
            } else if matches!(value, Node::Sequence(..)) && rest.starts_with('-') {
                let at = block_end(src, &lines, key.start.line, key.start.column - 1);
                let dash_line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
                let indent = &src[dash_line_start..start];
                let mut text = String::new();
                if !src[..at].ends_with('\n') {
                    text.push_str(nl);
                }
                text.push_str(&render_block(results, indent, nl));
                insert(at, text)
            } else {
                return Err("the input's `results` is not a list; cannot add to it".to_string());
            }
        }
    };
    let out = rewrite::apply(src, &[edit]).map_err(|e| format!("internal error: {e}"))?;
    check_appended(&out, before + results.len())?;
    Ok(out)
}

/// The offset just past the last line of the block value of the key on
/// `line` at `indent` columns: lines indented deeper, and `- ` items at the
/// key's own indentation, belong to it.
fn block_end(src: &str, lines: &Lines, line: usize, indent: usize) -> usize {
    let mut end = lines.line_end(line);
    for l in line + 1..=lines.starts.len() {
        let (from, to) = (lines.starts[l - 1], lines.line_end(l));
        let text = src[from..to].trim_end_matches('\r');
        let content = text.trim_start_matches(' ');
        // Blank and comment lines extend the value only when more of it follows.
        if content.trim().is_empty() || content.starts_with('#') {
            continue;
        }
        let depth = text.len() - content.len();
        let item = depth == indent && (content == "-" || content.starts_with("- "));
        if depth <= indent && !item {
            break;
        }
        end = to;
    }
    (end + 1).min(src.len())
}

fn check_appended(out: &str, expected: usize) -> Result<(), String> {
    let stream =
        yaml::parse(out).map_err(|e| format!("adding the results broke the YAML ({e})"))?;
    let count = stream
        .documents
        .first()
        .and_then(|d| d.root.get("results"))
        .map_or(0, |r| r.items().len());
    if count != expected {
        return Err(format!(
            "adding the results left {count} entries instead of {expected}"
        ));
    }
    Ok(())
}
