//! Setter markers: the `# {"$imagepolicy": "<ns>:<policy>[:tag|:name|:digest]"}`
//! comments that say which scalar receives which part of a policy's result.
//!
//! The rules are Flux's (kyaml field metadata): the scalar's own line comment
//! is read first; only when its line has no comment is the comment block just
//! above its entry read. The comment text, with its leading `#`s removed, must
//! be exactly one JSON object. Flux drops everything else silently; we drop it
//! too but say why, because a marker that silently does nothing is the most
//! common support question of the upstream tool.

use std::fmt;

use granit_parser::ScalarStyle;

use crate::policy::PolicyId;
use crate::yaml::{Comment, Node, Scalar, Stream};

/// The byte string every marker contains; files without it are never parsed.
pub const TOKEN: &str = "$imagepolicy";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Setter {
    pub policy: PolicyId,
    pub field: Field,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    /// The whole reference, `name:tag[@digest]`.
    Image,
    Tag,
    Name,
    Digest,
}

impl fmt::Display for Setter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Field::Image => write!(f, "{}", self.policy),
            Field::Tag => write!(f, "{}:tag", self.policy),
            Field::Name => write!(f, "{}:name", self.policy),
            Field::Digest => write!(f, "{}:digest", self.policy),
        }
    }
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Image => "image",
            Field::Tag => "tag",
            Field::Name => "name",
            Field::Digest => "digest",
        }
    }
}

impl Setter {
    /// Reads the `$imagepolicy` value; `Err` says why Flux would not use it.
    pub fn parse(value: &str) -> Result<Setter, String> {
        let parts: Vec<&str> = value.split(':').collect();
        let field = match parts.as_slice() {
            [_, _] => Field::Image,
            [_, _, "tag"] => Field::Tag,
            [_, _, "name"] => Field::Name,
            [_, _, "digest"] => Field::Digest,
            [_, _, other] => {
                return Err(format!(
                    "unknown setter field {other:?}; use :tag, :name or :digest, or none for the whole image"
                ));
            }
            [_] => {
                return Err(format!(
                    "{value:?} names no namespace; write \"<namespace>:{value}\""
                ));
            }
            _ => {
                return Err(format!(
                    "{value:?} is not \"<namespace>:<policy>[:tag|:name|:digest]\""
                ));
            }
        };
        if parts[0].is_empty() || parts[1].is_empty() {
            return Err(format!("{value:?} has an empty namespace or policy name"));
        }
        Ok(Setter {
            policy: PolicyId::new(parts[0], parts[1]),
            field,
        })
    }
}

/// The resource a marker sits in, as Flux reports it in commit templates.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ObjectRef {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    fn of(root: &Node) -> ObjectRef {
        let text = |path: &[&str]| root.str_at(path).unwrap_or_default().to_string();
        ObjectRef {
            api_version: text(&["apiVersion"]),
            kind: text(&["kind"]),
            namespace: text(&["metadata", "namespace"]),
            name: text(&["metadata", "name"]),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Marker {
    pub setter: Setter,
    pub scalar: Scalar,
    pub object: ObjectRef,
    /// Which root the marker is under: the document index for a file, the
    /// item index for a KRM `ResourceList`.
    pub root: usize,
}

/// Something that looks like a marker but is not one, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Found {
    pub markers: Vec<Marker>,
    pub ignored: Vec<Ignored>,
}

/// Finds every marker in a parsed file, in document order.
pub fn find(src: &str, stream: &Stream) -> Found {
    let roots: Vec<&Node> = stream.documents.iter().map(|d| &d.root).collect();
    find_in(src, stream, &roots)
}

/// Finds the markers under each of `roots` (nodes of `stream`), each root
/// standing for one resource: the documents of a file, or the items of a
/// KRM `ResourceList`.
pub fn find_in(src: &str, stream: &Stream, roots: &[&Node]) -> Found {
    let mut finder = Finder {
        src,
        comments: &stream.comments,
        own_line: stream
            .comments
            .iter()
            .map(|c| is_own_line(src, c))
            .collect(),
        explained: vec![None; stream.comments.len()],
        found: Found::default(),
        root: 0,
    };
    for (i, root) in roots.iter().enumerate() {
        finder.root = i;
        let object = ObjectRef::of(root);
        finder.visit(root, &object);
    }
    finder.finish()
}

/// Where the comment above an entry would be, and whether the entry begins
/// its line (a marker above `- key: value` or inside a flow collection is
/// ambiguous, so it is not applied).
#[derive(Clone, Copy)]
struct Above {
    line: usize,
    starts_line: bool,
}

impl Above {
    const NONE: Above = Above {
        line: 0,
        starts_line: false,
    };
}

struct Finder<'a> {
    src: &'a str,
    comments: &'a [Comment],
    own_line: Vec<bool>,
    /// Per comment: `Some(None)` once used as a marker, `Some(Some(why))` once
    /// known to be ignored for a specific reason.
    explained: Vec<Option<Option<String>>>,
    found: Found,
    root: usize,
}

impl Finder<'_> {
    fn visit(&mut self, node: &Node, object: &ObjectRef) {
        match node {
            Node::Mapping(entries, _) => {
                for (key, value) in entries {
                    // A comment above an entry belongs to its key; Flux passes a
                    // key's marker on to a scalar value.
                    let above = match key {
                        Node::Scalar(k) => Above {
                            line: k.start.line,
                            starts_line: self.only_blanks_before(k.span.start, false),
                        },
                        _ => Above::NONE,
                    };
                    self.value(value, above, object);
                }
            }
            Node::Sequence(items, _) => {
                for item in items {
                    let above = match item {
                        Node::Scalar(s) => Above {
                            line: s.start.line,
                            starts_line: self.only_blanks_before(s.span.start, true),
                        },
                        _ => Above::NONE,
                    };
                    self.value(item, above, object);
                }
            }
            _ => {}
        }
    }

    /// A mapping value or sequence item: its own line comment first, then the
    /// comment above its entry.
    fn value(&mut self, node: &Node, above: Above, object: &ObjectRef) {
        let Node::Scalar(scalar) = node else {
            self.visit(node, object);
            return;
        };
        let from_line = self
            .line_comment(scalar)
            .and_then(|c| Some((c, self.marker_value(c)?)));
        let (comment, value) = match from_line {
            Some(found) => found,
            None => {
                let Some(c) = self.comment_above(above.line) else {
                    return;
                };
                let Some(value) = self.marker_value(c) else {
                    return;
                };
                if !above.starts_line {
                    self.explain(
                        c,
                        "a marker above `- key: value` or above a flow collection is ambiguous; put it at the end of the value's line",
                    );
                    return;
                }
                (c, value)
            }
        };
        let setter = match Setter::parse(&value) {
            Ok(setter) => setter,
            Err(why) => return self.explain(comment, &why),
        };
        if matches!(scalar.style, ScalarStyle::Literal | ScalarStyle::Folded) {
            return self.explain(
                comment,
                "markers on block scalars (| or >) are not supported",
            );
        }
        if scalar.span.is_empty() {
            return self.explain(
                comment,
                "the value is empty; write the current value (for example the image in use) for the marker to replace",
            );
        }
        self.explained[comment] = Some(None);
        self.found.markers.push(Marker {
            setter,
            scalar: scalar.clone(),
            object: object.clone(),
            root: self.root,
        });
    }

    /// Whether only blanks (and, for a sequence item, its `-`) precede `offset` on its line.
    fn only_blanks_before(&self, offset: usize, dash: bool) -> bool {
        let before = self.src[line_start(self.src, offset)..offset].trim_start_matches('\u{feff}');
        let before = before.trim_start_matches([' ', '\t']);
        if !dash {
            return before.is_empty();
        }
        before
            .strip_prefix('-')
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b == b' ' || b == b'\t'))
    }

    /// The comment on the line where the scalar ends, with only blanks between.
    fn line_comment(&self, scalar: &Scalar) -> Option<usize> {
        let i = self
            .comments
            .partition_point(|c| c.span.start < scalar.span.end);
        let comment = self.comments.get(i)?;
        let between = &self.src[scalar.span.end..comment.span.start];
        between
            .bytes()
            .all(|b| b == b' ' || b == b'\t')
            .then_some(i)
    }

    /// The comment block directly above `line`, when it is one comment line;
    /// a longer block reaches Flux as one multi-line comment, which is never
    /// a valid marker.
    fn comment_above(&mut self, line: usize) -> Option<usize> {
        let i = self.comments.partition_point(|c| c.line < line);
        let mut block = Vec::new();
        let mut want = line.checked_sub(1)?;
        for j in (0..i).rev() {
            let c = &self.comments[j];
            if c.line != want || !self.own_line[j] {
                break;
            }
            block.push(j);
            want -= 1;
        }
        match block.as_slice() {
            [] => None,
            [only] => Some(*only),
            _ => {
                for &j in &block {
                    self.explain(
                        j,
                        &format!(
                            "part of a {}-line comment block; a marker above a value must be the only comment line there",
                            block.len()
                        ),
                    );
                }
                None
            }
        }
    }

    /// The `$imagepolicy` string of a comment that is exactly a JSON object.
    fn marker_value(&mut self, index: usize) -> Option<String> {
        let text = self.comments[index].text.trim_start_matches('#');
        if !text.contains(TOKEN) {
            return None;
        }
        let value = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(map))
                if map.values().all(serde_json::Value::is_string) =>
            {
                map.get(TOKEN).cloned()
            }
            Ok(serde_json::Value::Object(_)) => {
                self.explain(index, "every member of the marker object must be a string");
                return None;
            }
            _ => {
                self.explain(
                    index,
                    "the comment is not exactly one JSON object (nothing may follow the closing brace)",
                );
                return None;
            }
        };
        match value {
            Some(serde_json::Value::String(s)) => Some(s),
            _ => {
                self.explain(index, "the \"$imagepolicy\" value must be a string");
                None
            }
        }
    }

    fn explain(&mut self, index: usize, why: &str) {
        if self.explained[index].is_none() {
            self.explained[index] = Some(Some(why.to_string()));
        }
    }

    fn finish(mut self) -> Found {
        for (i, comment) in self.comments.iter().enumerate() {
            if !comment.text.contains(TOKEN) {
                continue;
            }
            let reason = match &self.explained[i] {
                Some(None) => continue,
                Some(Some(why)) => why.clone(),
                None => "not attached to a scalar value: put the marker at the end of the value's line, or alone on the line above its key".to_string(),
            };
            self.found.ignored.push(Ignored {
                line: comment.line,
                column: column_of(self.src, comment.span.start),
                reason,
            });
        }
        // The token outside any comment: inside a string or a block scalar.
        let mut from = 0;
        while let Some(at) = self.src[from..].find(TOKEN).map(|i| i + from) {
            from = at + TOKEN.len();
            if !self.comments.iter().any(|c| c.span.contains(&at)) {
                self.found.ignored.push(Ignored {
                    line: self.src[..at].matches('\n').count() + 1,
                    column: column_of(self.src, at),
                    reason: "inside a string or block scalar, not a YAML comment".to_string(),
                });
            }
        }
        self.found.ignored.sort_by_key(|i| (i.line, i.column));
        self.found
    }
}

fn line_start(src: &str, offset: usize) -> usize {
    src[..offset].rfind('\n').map_or(0, |i| i + 1)
}

fn column_of(src: &str, offset: usize) -> usize {
    src[line_start(src, offset)..offset].chars().count() + 1
}

fn is_own_line(src: &str, comment: &Comment) -> bool {
    src[line_start(src, comment.span.start)..comment.span.start]
        .trim_start_matches('\u{feff}')
        .bytes()
        .all(|b| b == b' ' || b == b'\t')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;

    fn markers(src: &str) -> (Vec<(usize, String, String)>, Vec<Ignored>) {
        let stream = parse(src).unwrap();
        let found = find(src, &stream);
        let markers = found
            .markers
            .iter()
            .map(|m| {
                (
                    m.scalar.start.line,
                    m.setter.to_string(),
                    m.scalar.value.clone(),
                )
            })
            .collect();
        (markers, found.ignored)
    }

    #[test]
    fn every_setter_form_is_read() {
        let src = r#"a: x:1 # {"$imagepolicy": "ns:p"}
b: t # {"$imagepolicy": "ns:p:tag"}
c: n #{"$imagepolicy":"ns:p:name"}
d: d ## {"$imagepolicy": "ns:p:digest"}
"#;
        let (found, ignored) = markers(src);
        assert_eq!(
            found,
            vec![
                (1, "ns:p".into(), "x:1".into()),
                (2, "ns:p:tag".into(), "t".into()),
                (3, "ns:p:name".into(), "n".into()),
                (4, "ns:p:digest".into(), "d".into()),
            ]
        );
        assert!(ignored.is_empty(), "{ignored:?}");
    }

    #[test]
    fn comment_above_is_read_when_the_line_has_none() {
        let src = "spec:\n  # {\"$imagepolicy\": \"ns:p:tag\"}\n  tag: 1.0\n  list:\n    # {\"$imagepolicy\": \"ns:q\"}\n    - img:1\n";
        let (found, ignored) = markers(src);
        assert_eq!(
            found,
            vec![
                (3, "ns:p:tag".into(), "1.0".into()),
                (6, "ns:q".into(), "img:1".into())
            ]
        );
        assert!(ignored.is_empty());
    }

    #[test]
    fn a_line_comment_that_is_no_marker_leaves_the_comment_above_in_force() {
        // Flux reads the value's comments, then its key's: a note on the line
        // does not hide the marker above the key.
        let src = "# {\"$imagepolicy\": \"ns:p\"}\na: x # just a note\n";
        let (found, ignored) = markers(src);
        assert_eq!(found, vec![(2, "ns:p".into(), "x".into())]);
        assert!(ignored.is_empty());
        let src = "# {\"$imagepolicy\": \"ns:p\"}\na: x # {\"$imagepolicy\": \"ns:q:tag\"}\n";
        assert_eq!(markers(src).0, vec![(2, "ns:q:tag".into(), "x".into())]);
    }

    #[test]
    fn a_comment_above_applies_only_to_an_entry_that_begins_its_line() {
        for src in [
            "# {\"$imagepolicy\": \"ns:p:tag\"}\nimage: {repository: a, tag: 1.0}\n",
            "containers:\n# {\"$imagepolicy\": \"ns:p\"}\n- {name: web, image: a:1}\n",
            "containers:\n  # {\"$imagepolicy\": \"ns:p:tag\"}\n  - name: web\n    image: a:1\n",
        ] {
            let (found, ignored) = markers(src);
            assert!(found.is_empty(), "{src}: {found:?}");
            assert_eq!(ignored.len(), 1, "{src}: {ignored:?}");
        }
    }

    #[test]
    fn markers_on_empty_values_are_refused() {
        for src in [
            "# {\"$imagepolicy\": \"ns:p:tag\"}\ntag:\n",
            "tag: !!str # {\"$imagepolicy\": \"ns:p:tag\"}\n",
            "tag: &a # {\"$imagepolicy\": \"ns:p:tag\"}\n",
            "list:\n# {\"$imagepolicy\": \"ns:p\"}\n-\n- b\n",
        ] {
            let (found, ignored) = markers(src);
            assert!(found.is_empty(), "{src:?}: {found:?}");
            assert_eq!(ignored.len(), 1, "{src:?}: {ignored:?}");
        }
    }

    #[test]
    fn marker_objects_hold_only_strings() {
        let src = "x: a:1 # {\"$imagepolicy\": \"ns:p\", \"n\": 1}\ny: b:1 # {\"$imagepolicy\": \"ns:p\", \"note\": \"ok\"}\n";
        let (found, ignored) = markers(src);
        assert_eq!(found, vec![(2, "ns:p".into(), "b:1".into())]);
        assert!(ignored[0].reason.contains("must be a string"));
    }

    #[test]
    fn ignored_markers_say_why() {
        let src = r#"a: x # {"$imagepolicy": "ns:p"} pinned
b: x # {"$imagepolicy": "p"}
c: x # {"$imagepolicy": "ns:p:version"}
d: # {"$imagepolicy": "ns:p"}
  e: f
g: |
  h: i # {"$imagepolicy": "ns:p"}
# one
# {"$imagepolicy": "ns:p"}
j: k
l: x # {"$imagepolicy": 3}
"#;
        let (found, ignored) = markers(src);
        assert!(found.is_empty(), "{found:?}");
        let lines: Vec<usize> = ignored.iter().map(|i| i.line).collect();
        assert_eq!(lines, vec![1, 2, 3, 4, 7, 9, 11], "{ignored:#?}");
        assert!(ignored[0].reason.contains("JSON object"));
        assert!(ignored[1].reason.contains("no namespace"));
        assert!(ignored[2].reason.contains("unknown setter field"));
        assert!(ignored[3].reason.contains("not attached"));
        assert!(ignored[4].reason.contains("block scalar"));
        assert!(ignored[5].reason.contains("2-line comment block"));
        assert!(ignored[6].reason.contains("must be a string"));
    }

    #[test]
    fn object_identity_is_taken_per_document() {
        let src = "kind: A\nmetadata: {name: a, namespace: n}\nx: 1 # {\"$imagepolicy\": \"n:p\"}\n---\nkind: B\nx: 2 # {\"$imagepolicy\": \"n:p\"}\n";
        let stream = parse(src).unwrap();
        let found = find(src, &stream);
        assert_eq!(found.markers[0].object.name, "a");
        assert_eq!(found.markers[0].object.namespace, "n");
        assert_eq!(found.markers[1].object.kind, "B");
        assert_eq!(found.markers[1].object.name, "");
    }
}
