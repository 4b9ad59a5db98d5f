//! Surgical edits: replace the bytes of one scalar and nothing else.
//!
//! A new value keeps the quoting style of the old one. A plain scalar that YAML
//! would read as something other than a string (`1.20`, `2024-06-20`, `yes`,
//! `1e3`, `~`) is written double-quoted instead, under both YAML 1.1 (what
//! go-yaml v2, Helm and PyYAML resolve) and YAML 1.2 rules. Before splicing,
//! each edit checks that the bytes it replaces are still the ones it was
//! planned against, so a stale or overlapping edit fails instead of corrupting
//! the file.

use std::ops::Range;
use std::sync::LazyLock;

use granit_parser::ScalarStyle;
use regex::Regex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub span: Range<usize>,
    /// The bytes expected at `span`.
    pub old: String,
    pub new: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error("the text at bytes {start}..{end} is no longer {expected:?}")]
    Stale {
        start: usize,
        end: usize,
        expected: String,
    },
    #[error("two edits overlap at byte {at}")]
    Overlap { at: usize },
}

/// The source text for `value` in place of a scalar written in `style`.
pub fn render(value: &str, style: ScalarStyle) -> String {
    match style {
        ScalarStyle::SingleQuoted => format!("'{}'", value.replace('\'', "''")),
        ScalarStyle::Plain if is_safe_plain(value) => value.to_string(),
        _ => double_quoted(value),
    }
}

/// A double-quoted YAML (and JSON) string: `"`, `\` and every character a
/// YAML or JSON reader could take for a line break or control are escaped.
pub fn double_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `value` can be written as a plain scalar and read back as the same string.
pub fn is_safe_plain(value: &str) -> bool {
    let Some(first) = value.chars().next() else {
        return false;
    };
    let indicator = "-?:,[]{}#&*!|>'\"%@`".contains(first)
        && !(matches!(first, '-' | '?' | ':')
            && value[1..].starts_with(|c: char| !c.is_whitespace()));
    !indicator
        && !value.starts_with(char::is_whitespace)
        && !value.ends_with(char::is_whitespace)
        && !value.contains(": ")
        && !value.contains(" #")
        && !value.ends_with(':')
        && !value
            .chars()
            .any(|c| c.is_control() || matches!(c, ',' | '[' | ']' | '{' | '}'))
        && !resolves_to_non_string(value)
}

/// YAML 1.1 and 1.2 implicit types (null, bool, int, float, timestamp, merge, value).
fn resolves_to_non_string(value: &str) -> bool {
    static TYPED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            "^(?:",
            // null
            "~|null|Null|NULL",
            // bool, 1.1 and 1.2
            "|y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF",
            // int, 1.1
            "|[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+",
            "|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+",
            // int, 1.2 core
            "|[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+",
            // float, 1.1
            "|[-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+][0-9]+)?|\\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?",
            "|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*",
            // float, 1.2 core
            "|[-+]?(?:\\.[0-9]+|[0-9]+(?:\\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?",
            "|[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN)",
            // timestamp
            "|[0-9]{4}-[0-9]{2}-[0-9]{2}",
            "|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt]|[ \\t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]*)?",
            "(?:[ \\t]*(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?))?",
            // merge and value keys
            "|<<|=",
            ")$"
        ))
        .expect("the YAML type pattern is valid")
    });
    TYPED.is_match(value) || go_yaml_number(value)
}

/// go-yaml (behind Flux, Helm and sigs.k8s.io/yaml) reads a plain scalar that
/// starts like a number as one when, with `_` removed, Go's `strconv` parses
/// it in any base (`0X1F`, `0B1`, `0o1_7`) or it has the shape of a float
/// (`1_0e3`).
fn go_yaml_number(value: &str) -> bool {
    static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            "^[-+]?(?:0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO]?[0-7]+|[0-9]+|(?:\\.[0-9]+|[0-9]+(?:\\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?)$",
        )
        .expect("the number pattern is valid")
    });
    value.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.'))
        && NUMBER.is_match(&value.replace('_', ""))
}

/// Applies edits to `src`, checking each one's old text; `src` is unchanged on error.
pub fn apply(src: &str, edits: &[Edit]) -> Result<String, RewriteError> {
    let mut sorted: Vec<&Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| e.span.start);
    let mut out = String::with_capacity(src.len() + 64);
    let mut at = 0;
    for edit in sorted {
        if edit.span.start < at {
            return Err(RewriteError::Overlap {
                at: edit.span.start,
            });
        }
        if src.get(edit.span.clone()) != Some(edit.old.as_str()) {
            return Err(RewriteError::Stale {
                start: edit.span.start,
                end: edit.span.end,
                expected: edit.old.clone(),
            });
        }
        out.push_str(&src[at..edit.span.start]);
        out.push_str(&edit.new);
        at = edit.span.end;
    }
    out.push_str(&src[at..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_yaml_reads_as_other_types_are_quoted() {
        for typed in [
            "1.20",
            "2024.10",
            "2024-06-20",
            "2024-06-20T10:00:00Z",
            "yes",
            "No",
            "on",
            "OFF",
            "y",
            "1e3",
            "1E+3",
            "~",
            "null",
            "12",
            "0755",
            "0x1F",
            "0o17",
            "1_000",
            "190:20:30",
            ".5",
            "-1",
            "+1.5",
            ".inf",
            ".NaN",
            "<<",
            "=",
            "true",
            "0X1F",
            "0B1",
            "0O17",
            "0o1_7",
            "1_0e3",
            "1__0",
        ] {
            assert_eq!(
                render(typed, ScalarStyle::Plain),
                format!("\"{typed}\""),
                "{typed}"
            );
        }
    }

    #[test]
    fn ordinary_tags_and_images_stay_plain() {
        for plain in [
            "1.2.3",
            "v2.7.0",
            "1.25-alpine",
            "latest",
            "ghcr.io/acme/web:1.2.4",
            "sha-abc1234",
            "localhost:5000/web:1.0",
            "web@sha256:0123",
            "2024-06-20-1",
            "1.2.3-rc.1",
            "e1",
            "_x",
            "20240101",
        ] {
            let want = if plain == "20240101" {
                "\"20240101\""
            } else {
                plain
            };
            assert_eq!(render(plain, ScalarStyle::Plain), want, "{plain}");
        }
    }

    #[test]
    fn quoting_style_is_kept() {
        assert_eq!(render("1.2.4", ScalarStyle::DoubleQuoted), "\"1.2.4\"");
        assert_eq!(render("1.2.4", ScalarStyle::SingleQuoted), "'1.2.4'");
        assert_eq!(render("42", ScalarStyle::SingleQuoted), "'42'");
    }

    #[test]
    fn edits_replace_only_their_spans() {
        let src = "a: 1.0 # x\nb: \"2.0\"\n";
        let edits = [
            Edit {
                span: 14..19,
                old: "\"2.0\"".into(),
                new: "\"2.1\"".into(),
            },
            Edit {
                span: 3..6,
                old: "1.0".into(),
                new: "1.1".into(),
            },
        ];
        assert_eq!(apply(src, &edits).unwrap(), "a: 1.1 # x\nb: \"2.1\"\n");
    }

    #[test]
    fn stale_and_overlapping_edits_fail() {
        let src = "a: 1.0\n";
        let stale = [Edit {
            span: 3..6,
            old: "1.1".into(),
            new: "2".into(),
        }];
        assert!(matches!(
            apply(src, &stale),
            Err(RewriteError::Stale { .. })
        ));
        let overlap = [
            Edit {
                span: 3..6,
                old: "1.0".into(),
                new: "2".into(),
            },
            Edit {
                span: 4..6,
                old: ".0".into(),
                new: "2".into(),
            },
        ];
        assert!(matches!(
            apply(src, &overlap),
            Err(RewriteError::Overlap { .. })
        ));
    }
}
