//! YAML files as trees of nodes that remember exactly where they came from.
//!
//! Two things need the source positions: finding which scalar a marker comment
//! belongs to, and replacing that scalar's bytes without touching anything else.
//! `granit-parser` reports exact byte spans for scalars and emits comments as
//! events, so this module folds its event stream into a small tree (scalars,
//! sequences, mappings) plus the list of comments, and offers the few typed
//! look-ups the resource readers need. It never re-serialises anything.

use std::ops::Range;

mod block;

use granit_parser::{Event, Parser, ScalarStyle};

/// A whole file: its documents and every comment in it, in source order.
#[derive(Debug, Default, PartialEq)]
pub struct Stream {
    pub documents: Vec<Document>,
    pub comments: Vec<Comment>,
}

#[derive(Debug, PartialEq)]
pub struct Document {
    pub root: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comment {
    /// The text after the `#`.
    pub text: String,
    /// Byte range of the comment, `#` included.
    pub span: Range<usize>,
    pub line: usize,
}

#[derive(Debug, PartialEq)]
pub enum Node {
    Scalar(Scalar),
    Sequence(Vec<Node>, Position),
    Mapping(Vec<(Node, Node)>, Position),
    /// An alias (`*name`); never edited and never followed.
    Alias(Position),
    /// An empty document.
    Empty,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub value: String,
    pub style: ScalarStyle,
    /// Byte range of the scalar as written, quotes included.
    pub span: Range<usize>,
    pub start: Position,
    pub end_line: usize,
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct SyntaxError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Node {
    pub fn position(&self) -> Position {
        match self {
            Node::Scalar(s) => s.start,
            Node::Sequence(_, p) | Node::Mapping(_, p) | Node::Alias(p) => *p,
            Node::Empty => Position::default(),
        }
    }

    /// The value under `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Mapping(entries, _) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Follows a path of mapping keys.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }

    /// The text of a scalar; `None` for collections and for null-like plain scalars.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar(s) if s.style != ScalarStyle::Plain || !is_null(&s.value) => {
                Some(&s.value)
            }
            _ => None,
        }
    }

    pub fn str_at(&self, path: &[&str]) -> Option<&str> {
        self.at(path).and_then(Node::as_str)
    }

    /// A Kubernetes object's `metadata.namespace`, `default` when it is
    /// unset or empty.
    pub fn namespace_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.str_at(&["metadata", "namespace"])
            .filter(|ns| !ns.is_empty())
            .unwrap_or(default)
    }

    /// A Kubernetes object's `metadata.name`, `""` when unset.
    pub fn object_name(&self) -> &str {
        self.str_at(&["metadata", "name"]).unwrap_or_default()
    }

    pub fn entries(&self) -> &[(Node, Node)] {
        match self {
            Node::Mapping(entries, _) => entries,
            _ => &[],
        }
    }

    pub fn items(&self) -> &[Node] {
        match self {
            Node::Sequence(items, _) => items,
            _ => &[],
        }
    }

    pub fn is_null(&self) -> bool {
        match self {
            Node::Empty => true,
            Node::Scalar(s) => s.style == ScalarStyle::Plain && is_null(&s.value),
            _ => false,
        }
    }
}

fn is_null(value: &str) -> bool {
    matches!(value, "" | "~" | "null" | "Null" | "NULL")
}

/// Parses every document of a file. Any syntax error fails the whole file, so
/// that a file we cannot fully understand is never edited.
///
/// Most GitOps manifests use a small part of YAML (block mappings and
/// sequences of one-line scalars); [`block`] reads that part several times
/// faster and declines anything else, which then goes to the full parser.
///
/// A mapping that repeats a key is refused (kubectl, kustomize and Flux
/// refuse such a document, so editing it could only hide the mistake); the
/// check runs on the tree of whichever reader read the file.
pub fn parse(src: &str) -> Result<Stream, SyntaxError> {
    parse_nested(src, 0)
}

/// The most levels of collections a document may nest, in a file or as an
/// item of a KRM `ResourceList` alike (the full parser's stack bound; the
/// block reader has none).
pub const MAX_NESTING: usize = 255;

/// [`parse`] for documents that sit `wrapper` levels deep inside the text
/// (the items of a `ResourceList` are 2 deeper than in a file), so that they
/// may nest as deep as they could in a file of their own.
pub fn parse_nested(src: &str, wrapper: usize) -> Result<Stream, SyntaxError> {
    let stream = match block::parse(src) {
        Some(stream) => stream,
        None => parse_full_within(src, MAX_NESTING + wrapper)?,
    };
    refuse_duplicate_keys(&stream)?;
    Ok(stream)
}

/// The first key a mapping of `stream` repeats, as an error at the repeat.
/// Keys are compared as YAML resolves them: `a`, `'a'` and `"a"` are one key,
/// and so are the plain nulls (`~`, `null`, empty). Collection and alias keys
/// are not compared. Iterative, so nesting depth costs no stack.
fn refuse_duplicate_keys(stream: &Stream) -> Result<(), SyntaxError> {
    let mut pending: Vec<&Node> = stream.documents.iter().map(|d| &d.root).collect();
    let mut seen: std::collections::HashMap<Option<&str>, usize> = Default::default();
    while let Some(node) = pending.pop() {
        match node {
            Node::Mapping(entries, _) => {
                // Most mappings have a few keys: comparing each with the
                // ones before costs less than hashing them.
                let small = entries.len() <= 16;
                seen.clear();
                for (i, (key, value)) in entries.iter().enumerate() {
                    if let Node::Scalar(s) = key {
                        let resolved = resolved_key(key);
                        let first = match small {
                            true => entries[..i].iter().find_map(|(k, _)| match k {
                                Node::Scalar(earlier) if resolved_key(k) == resolved => {
                                    Some(earlier.start.line)
                                }
                                _ => None,
                            }),
                            false => seen.insert(resolved, s.start.line),
                        };
                        if let Some(first) = first {
                            return Err(SyntaxError {
                                line: s.start.line,
                                column: s.start.column,
                                message: format!(
                                    "duplicate key {:?} in a mapping (first at line {first}); kubectl, kustomize and Flux reject such a document",
                                    s.value
                                ),
                            });
                        }
                    }
                    pending.push(key);
                    pending.push(value);
                }
            }
            Node::Sequence(items, _) => pending.extend(items),
            Node::Scalar(_) | Node::Alias(_) | Node::Empty => {}
        }
    }
    Ok(())
}

/// A scalar key as YAML resolves it; `None` for the plain nulls.
fn resolved_key(key: &Node) -> Option<&str> {
    match key {
        Node::Scalar(s) if !key.is_null() => Some(s.value.as_str()),
        _ => None,
    }
}

/// The full YAML 1.2 parser (`granit-parser`), for every input.
pub fn parse_full(src: &str) -> Result<Stream, SyntaxError> {
    parse_full_within(src, MAX_NESTING)
}

fn parse_full_within(src: &str, nesting: usize) -> Result<Stream, SyntaxError> {
    let mut stream = Stream::default();
    let mut stack: Vec<Frame> = Vec::new();
    let options = granit_parser::options! {
        flow_nesting_limit: nesting,
        block_nesting_limit: nesting,
    };
    for event in Parser::new_from_str_with_options(src, options) {
        let (event, span) = event.map_err(|e| SyntaxError {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: match e.kind() {
                granit_parser::ErrorKind::RecursionLimitExceeded => format!(
                    "collections nested more than {MAX_NESTING} levels deep; image-update reads no deeper"
                ),
                _ => e.info().to_string(),
            },
        })?;
        let range = span.start.byte_offset().unwrap_or(0)..span.end.byte_offset().unwrap_or(0);
        let position = Position {
            line: span.start.line(),
            column: span.start.col() + 1,
        };
        let node = match event {
            Event::Comment(text, _) => {
                stream.comments.push(Comment {
                    text: text.into_owned(),
                    span: range,
                    line: span.start.line(),
                });
                continue;
            }
            Event::DocumentStart(..) => {
                stack.push(Frame::Document(None));
                continue;
            }
            Event::SequenceStart(..) => {
                stack.push(Frame::Sequence(Vec::new(), position));
                continue;
            }
            Event::MappingStart(..) => {
                stack.push(Frame::Mapping(Vec::new(), None, position));
                continue;
            }
            Event::DocumentEnd => {
                if let Some(Frame::Document(root)) = stack.pop() {
                    stream.documents.push(Document {
                        root: root.unwrap_or(Node::Empty),
                    });
                }
                continue;
            }
            // A block sequence's start event sits at its first dash or at its
            // first item depending on indentation; the first item's position
            // is what both readers agree on.
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Sequence(items, p)) => {
                    let p = items.first().map_or(p, Node::position);
                    Node::Sequence(items, p)
                }
                _ => continue,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Mapping(entries, _, p)) => Node::Mapping(entries, p),
                _ => continue,
            },
            Event::Scalar(value, style, ..) => Node::Scalar(Scalar {
                value: value.into_owned(),
                style,
                span: range,
                start: position,
                end_line: span.end.line(),
            }),
            Event::Alias(_) | Event::UnresolvedAlias(_) => Node::Alias(position),
            _ => continue,
        };
        match stack.last_mut() {
            Some(Frame::Document(root)) => *root = Some(node),
            Some(Frame::Sequence(items, _)) => items.push(node),
            Some(Frame::Mapping(entries, key, _)) => match key.take() {
                Some(k) => entries.push((k, node)),
                None => *key = Some(node),
            },
            None => {}
        }
    }
    Ok(stream)
}

enum Frame {
    Document(Option<Node>),
    Sequence(Vec<Node>, Position),
    Mapping(Vec<(Node, Node)>, Option<Node>, Position),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_exact_for_every_quoting_style_and_crlf() {
        let src = "\u{feff}a: plain # c\r\nb: \"dq\"\r\nc: 'sq'\r\nd:\r\n- x\r\n";
        let stream = parse(src).unwrap();
        let root = &stream.documents[0].root;
        for (key, raw) in [("a", "plain"), ("b", "\"dq\""), ("c", "'sq'")] {
            let Some(Node::Scalar(s)) = root.get(key) else {
                panic!("{key}")
            };
            assert_eq!(&src[s.span.clone()], raw);
        }
        assert_eq!(root.at(&["d"]).unwrap().items().len(), 1);
        assert_eq!(stream.comments[0].text, " c");
        assert_eq!(&src[stream.comments[0].span.clone()], "# c");
    }

    #[test]
    fn multi_document_streams_keep_every_document() {
        let stream = parse("---\na: 1\n---\nb: 2\n---\n").unwrap();
        assert_eq!(stream.documents.len(), 3);
        assert_eq!(stream.documents[1].root.str_at(&["b"]), Some("2"));
        assert!(stream.documents[2].root.is_null());
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line >= 2, "{err}");
        let err = parse("ok: 1\n---\n  bad: : :\n x\n").unwrap_err();
        assert!(err.line >= 3, "{err}");
    }

    #[test]
    fn null_scalars_are_not_strings() {
        let stream = parse("a: ~\nb: 'null'\nc:\n").unwrap();
        let root = &stream.documents[0].root;
        assert_eq!(root.str_at(&["a"]), None);
        assert_eq!(root.str_at(&["b"]), Some("null"));
        assert!(root.get("c").unwrap().is_null());
    }

    /// Issue 18.3: both readers' trees are refused alike, with the line of
    /// the repeat; different spellings of one key are one key.
    #[test]
    fn duplicate_keys_are_refused_with_their_line() {
        let cases = [
            ("a: 1\nb: 2\na: 3\n", 3, "\"a\"", "first at line 1"),
            (
                "spec:\n  image: x\n  'image': y\n",
                3,
                "\"image\"",
                "first at line 2",
            ),
            ("x:\n- k: 1\n  k: 2\n", 3, "\"k\"", "first at line 2"),
            (
                "---\nok: 1\n---\nm: {a: 1, \"a\": 2}\n",
                4,
                "\"a\"",
                "first at line 4",
            ),
            ("~: 1\nnull: 2\n", 2, "\"null\"", "first at line 1"),
        ];
        for (src, line, key, first) in cases {
            let err = parse(src).expect_err(src);
            assert_eq!(err.line, line, "{src:?}: {err}");
            assert!(
                err.message.contains(key) && err.message.contains(first),
                "{src:?}: {err}"
            );
            let full = refuse_duplicate_keys(&parse_full(src).unwrap()).unwrap_err();
            assert_eq!(full, err, "{src:?}");
            if let Some(fast) = block::parse(src) {
                assert_eq!(refuse_duplicate_keys(&fast).unwrap_err(), err, "{src:?}");
            }
        }
        assert!(
            block::parse(cases[0].0).is_some(),
            "the fast reader reads the first case"
        );
        // The same key in different mappings, or as a value, is no repeat.
        assert!(parse("a: {k: 1}\nb: {k: 1}\nc: a\nl:\n- k: 1\n- k: 2\n").is_ok());
        // Mappings of many keys are checked by hashing, few by comparing:
        // both find the repeat, and a repeat in one mapping is not carried
        // into the next.
        for keys in [3, 16, 17, 40] {
            let many: String = (0..keys).map(|k| format!("k{k}: {k}\n")).collect();
            let nested = format!("a:\n{}b:\n{}", indent(&many), indent(&many));
            assert!(parse(&nested).is_ok(), "{keys} keys");
            let src = format!("{many}'k1': again\n");
            let err = parse(&src).expect_err(&src);
            assert_eq!(err.line, keys + 1, "{keys} keys: {err}");
            assert!(
                err.message.contains("first at line 2"),
                "{keys} keys: {err}"
            );
            let full = refuse_duplicate_keys(&parse_full(&src).unwrap()).unwrap_err();
            assert_eq!(full, err, "{keys} keys");
        }
    }

    fn indent(lines: &str) -> String {
        lines.lines().map(|l| format!("  {l}\n")).collect()
    }

    /// Issue 18.6: the nesting limit is stated, and a document may nest as
    /// deep inside a `ResourceList` as in a file of its own.
    #[test]
    fn the_nesting_limit_is_stated_and_the_same_for_files_and_lists() {
        let flow = |depth: usize| format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        assert!(parse(&flow(MAX_NESTING - 1)).is_ok());
        let err = parse(&flow(MAX_NESTING + 10)).unwrap_err();
        assert!(
            err.message.contains("nested more than 255 levels deep"),
            "{err}"
        );
        // Block sequences, each on its own line under the one before.
        let block = |depth: usize, indent: usize| {
            let mut text = String::new();
            for level in 0..depth {
                text.push_str(&" ".repeat(indent + 2 * level));
                text.push_str("-\n");
            }
            text + &" ".repeat(indent + 2 * depth) + "x\n"
        };
        let deepest = (MAX_NESTING - 5..MAX_NESTING + 5)
            .take_while(|d| parse(&format!("a:\n{}", block(*d, 2))).is_ok())
            .last()
            .unwrap();
        let listed = |depth: usize| {
            format!(
                "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n- a:\n{}",
                block(depth, 4)
            )
        };
        assert!(parse_nested(&listed(deepest), 2).is_ok());
        let err = parse_nested(&listed(deepest + 1), 2).unwrap_err();
        assert!(
            err.message.contains("nested more than 255 levels deep"),
            "{err}"
        );
    }
}
