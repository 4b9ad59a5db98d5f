//! A fast reader for the plain block subset of YAML that almost every
//! Kubernetes manifest is written in: block mappings and sequences (including
//! sequences not indented under their key), one-line plain, single- and
//! double-quoted scalars, flow collections of such scalars on one line,
//! literal and folded block scalars (`|`, `|-`, `>`, `>-`) as mapping values,
//! comments, and `---` between documents.
//!
//! It exists for speed alone: the full parser costs most of a run's time on a
//! large tree. It must produce exactly the tree the full parser produces, so it
//! declines (returns `None`) at the first thing outside the subset or anything
//! it is unsure of — nested flow collections, other block scalar headers,
//! more-indented folded lines, anchors, aliases, tags,
//! escapes, multi-line scalars, empty values, tabs in indentation, directives —
//! and the caller falls back to the full parser. A differential test holds the
//! two to the same answers.

use granit_parser::ScalarStyle;

use super::{Comment, Document, Node, Position, Scalar, Stream};

pub(super) fn parse(src: &str) -> Option<Stream> {
    let mut reader = Reader::default();
    let bom = if src.starts_with('\u{feff}') { 3 } else { 0 };
    let mut start = bom;
    let mut number = 0;
    while start < src.len() {
        number += 1;
        let end = src[start..].find('\n').map_or(src.len(), |i| start + i);
        let mut line_end = end;
        if src[start..end].ends_with('\r') {
            line_end -= 1;
        }
        let line = &src[start..line_end];
        if line.contains('\r') {
            return None;
        }
        if !reader.block_line(start, line, number)? {
            reader.line(src, start, line, number)?;
        }
        start = end + 1;
    }
    let eof_line = if src.ends_with('\n') {
        number + 1
    } else {
        number
    };
    reader.end_block(src.len(), eof_line)?;
    reader.finish()
}

#[derive(Default)]
struct Reader {
    stream: Stream,
    stack: Vec<Frame>,
    /// Whether a document is open (started by `---` or by content).
    open: bool,
    root: Option<Node>,
    /// The indent of the collection that owns the last one-line value; a
    /// deeper line after it would continue that scalar over several lines.
    last_value_owner: Option<usize>,
    /// A block scalar (`|`, `|-`, `>`, `>-`) whose lines are being read.
    block: Option<Block>,
}

/// A literal or folded block scalar under way: the value of `key` in the
/// mapping at `owner`, with clip or strip chomping.
struct Block {
    key: Node,
    owner: usize,
    literal: bool,
    strip: bool,
    /// The indent of its first line, once seen.
    indent: Option<usize>,
    /// Its lines without their indent, each with the count of empty lines before it.
    lines: Vec<(usize, String)>,
    /// Empty lines since the last content line.
    blanks: usize,
    start: Option<(usize, Position)>,
}

enum Frame {
    Map {
        indent: usize,
        entries: Vec<(Node, Node)>,
        position: Position,
        /// A key whose value is on the following lines.
        pending: Option<Node>,
    },
    Seq {
        indent: usize,
        items: Vec<Node>,
        position: Position,
    },
}

impl Frame {
    fn indent(&self) -> usize {
        match self {
            Frame::Map { indent, .. } | Frame::Seq { indent, .. } => *indent,
        }
    }
}

/// Where a piece of a line is: its byte offset in the file, its line and column.
#[derive(Clone, Copy)]
struct At<'a> {
    text: &'a str,
    offset: usize,
    line: usize,
    column: usize,
}

impl<'a> At<'a> {
    fn skip(self, bytes: usize) -> At<'a> {
        let skipped = &self.text[..bytes];
        let columns = if skipped.is_ascii() {
            bytes
        } else {
            skipped.chars().count()
        };
        At {
            text: &self.text[bytes..],
            offset: self.offset + bytes,
            line: self.line,
            column: self.column + columns,
        }
    }

    /// Skips spaces and tabs, and says whether there were any.
    fn skip_blanks(self) -> (At<'a>, bool) {
        let blanks = self
            .text
            .bytes()
            .take_while(|&b| b == b' ' || b == b'\t')
            .count();
        (self.skip(blanks), blanks > 0)
    }

    /// The plain key of `length` bytes at the start of this text.
    fn key(&self, length: usize) -> Scalar {
        Scalar {
            value: self.text[..length].to_string(),
            style: ScalarStyle::Plain,
            span: self.offset..self.offset + length,
            start: self.position(),
            end_line: self.line,
        }
    }

    fn position(&self) -> Position {
        Position {
            line: self.line,
            column: self.column + 1,
        }
    }
}

impl Reader {
    fn line(&mut self, src: &str, start: usize, line: &str, number: usize) -> Option<()> {
        let indent = line.bytes().take_while(|&b| b == b' ').count();
        let at = At {
            text: line,
            offset: start,
            line: number,
            column: 0,
        }
        .skip(indent);
        let content = at.text;
        if content.is_empty() {
            return Some(());
        }
        if content.starts_with('#') {
            self.comment(at);
            return Some(());
        }
        if indent == 0 && (content == "---") {
            self.close_document()?;
            self.open = true;
            return Some(());
        }
        if content.starts_with('\t')
            || (indent == 0
                && (content.starts_with("---")
                    || content.starts_with("...")
                    || content.starts_with('%')))
        {
            return None;
        }
        let _ = src;
        self.content(indent, at)
    }

    /// Feeds a line to the block scalar under way: `Some(true)` when the line
    /// belongs to it, `Some(false)` when the scalar ended before this line.
    fn block_line(&mut self, start: usize, line: &str, number: usize) -> Option<bool> {
        let Some(block) = &mut self.block else {
            return Some(false);
        };
        if line.is_empty() {
            // Empty lines before the first one would decide its indent.
            block.indent?;
            block.blanks += 1;
            return Some(true);
        }
        let indent = line.bytes().take_while(|&b| b == b' ').count();
        if indent == line.len() || line[indent..].starts_with('\t') {
            return None;
        }
        let content = *block.indent.get_or_insert(indent);
        if indent <= block.owner {
            // The full parser ends the scalar after the next line's indent.
            self.end_block(start + indent, number)?;
            return Some(false);
        }
        if indent < content {
            return None;
        }
        if indent > content && !block.literal {
            return None;
        }
        if block.start.is_none() {
            let position = Position {
                line: number,
                column: content + 1,
            };
            block.start = Some((start + content, position));
        }
        block
            .lines
            .push((block.blanks, line[content..].to_string()));
        block.blanks = 0;
        Some(true)
    }

    /// Ends the block scalar under way, if any, at `offset` on `line`.
    fn end_block(&mut self, offset: usize, line: usize) -> Option<()> {
        let Some(block) = self.block.take() else {
            return Some(());
        };
        let (begin, start) = block.start?;
        let mut value = String::new();
        for (i, (blanks, text)) in block.lines.iter().enumerate() {
            if i > 0 {
                if block.literal {
                    value.push('\n');
                } else if *blanks == 0 {
                    value.push(' ');
                }
                value.extend(std::iter::repeat_n('\n', *blanks));
            }
            value.push_str(text);
        }
        if !block.strip {
            value.push('\n');
        }
        let style = if block.literal {
            ScalarStyle::Literal
        } else {
            ScalarStyle::Folded
        };
        let scalar = Scalar {
            value,
            style,
            span: begin..offset,
            start,
            end_line: line,
        };
        match self.stack.last_mut() {
            Some(Frame::Map { entries, .. }) => entries.push((block.key, Node::Scalar(scalar))),
            _ => return None,
        }
        self.last_value_owner = Some(block.owner);
        Some(())
    }

    fn comment(&mut self, at: At) {
        self.stream.comments.push(Comment {
            text: at.text[1..].to_string(),
            span: at.offset..at.offset + at.text.len(),
            line: at.line,
        });
    }

    fn content(&mut self, indent: usize, at: At) -> Option<()> {
        let dash = at.text == "-" || at.text.starts_with("- ");
        if let Some(owner) = self.last_value_owner.take()
            && indent > owner
        {
            return None;
        }
        if let Some(Frame::Map {
            indent: map,
            pending: Some(_),
            ..
        }) = self.stack.last()
            && !(indent > *map || (dash && indent == *map))
        {
            // The pending key has an empty value.
            return None;
        }
        while let Some(top) = self.stack.last() {
            let indentless_seq_ends =
                matches!(top, Frame::Seq { .. }) && top.indent() == indent && !dash;
            if top.indent() > indent || indentless_seq_ends {
                self.close_frame()?;
            } else {
                break;
            }
        }
        self.open = true;
        if dash {
            self.item(indent, at)
        } else {
            self.entry(indent, at)
        }
    }

    /// `- …` at `indent`.
    fn item(&mut self, indent: usize, at: At) -> Option<()> {
        let first = at.skip(1);
        let spaces = first.text.bytes().take_while(|&b| b == b' ').count();
        let rest = first.skip(spaces);
        if rest.text.is_empty() || rest.text.starts_with('#') || rest.text.starts_with('-') {
            return None;
        }
        match self.stack.last_mut() {
            Some(Frame::Seq { indent: seq, .. }) if *seq == indent => {}
            Some(Frame::Map {
                indent: map,
                pending: Some(_),
                ..
            }) if indent >= *map => self.stack.push(Frame::Seq {
                indent,
                items: Vec::new(),
                position: rest.position(),
            }),
            None if self.root.is_none() => self.stack.push(Frame::Seq {
                indent,
                items: Vec::new(),
                position: rest.position(),
            }),
            _ => return None,
        }
        if key_length(rest.text).is_some() {
            let column = indent + 1 + spaces;
            self.stack.push(Frame::Map {
                indent: column,
                entries: Vec::new(),
                position: rest.position(),
                pending: None,
            });
            return self.key_value(column, rest);
        }
        let value = self.scalar(rest)?;
        match self.stack.last_mut() {
            Some(Frame::Seq { items, .. }) => items.push(value),
            _ => return None,
        }
        self.last_value_owner = Some(indent);
        Some(())
    }

    /// `key: …` at `indent`.
    fn entry(&mut self, indent: usize, at: At) -> Option<()> {
        key_length(at.text)?;
        match self.stack.last_mut() {
            Some(Frame::Map {
                indent: map,
                pending: None,
                ..
            }) if *map == indent => {}
            Some(Frame::Map {
                indent: map,
                pending: Some(_),
                ..
            }) if indent > *map => self.stack.push(Frame::Map {
                indent,
                entries: Vec::new(),
                position: at.position(),
                pending: None,
            }),
            None if self.root.is_none() => self.stack.push(Frame::Map {
                indent,
                entries: Vec::new(),
                position: at.position(),
                pending: None,
            }),
            _ => return None,
        }
        self.key_value(indent, at)
    }

    /// The key and, when on the same line, the value of a mapping entry.
    fn key_value(&mut self, indent: usize, at: At) -> Option<()> {
        let length = key_length(at.text)?;
        let key = Node::Scalar(at.key(length));
        let after = at.skip(length + 1);
        let (rest, blanks) = after.skip_blanks();
        if rest.text.is_empty() || rest.text.starts_with('#') {
            if rest.text.starts_with('#') {
                if !blanks {
                    return None;
                }
                self.comment(rest);
            }
            match self.stack.last_mut() {
                Some(Frame::Map { pending, .. }) => *pending = Some(key),
                _ => return None,
            }
            return Some(());
        }
        if !after.text.starts_with(' ') {
            return None;
        }
        if let Some((literal, strip)) = block_header(rest.text) {
            self.block = Some(Block {
                key,
                owner: indent,
                literal,
                strip,
                indent: None,
                lines: Vec::new(),
                blanks: 0,
                start: None,
            });
            return Some(());
        }
        let value = self.scalar(rest)?;
        match self.stack.last_mut() {
            Some(Frame::Map { entries, .. }) => entries.push((key, value)),
            _ => return None,
        }
        self.last_value_owner = Some(indent);
        Some(())
    }

    /// A one-line value (scalar or flow collection) and the comment after it.
    fn scalar(&mut self, at: At) -> Option<Node> {
        let (node, length) = match at.text.as_bytes()[0] {
            b'[' | b'{' => flow(at)?,
            _ => {
                let (scalar, length) = one_line_scalar(at, false)?;
                (Node::Scalar(scalar), length)
            }
        };
        let after = at.skip(length);
        let (rest, blanks) = after.skip_blanks();
        if rest.text.starts_with('#') && blanks {
            self.comment(rest);
        } else if !rest.text.is_empty() {
            return None;
        }
        Some(node)
    }

    /// Closes the innermost collection and hands it to its parent.
    fn close_frame(&mut self) -> Option<()> {
        let node = match self.stack.pop()? {
            Frame::Map {
                entries,
                position,
                pending: None,
                ..
            } => Node::Mapping(entries, position),
            Frame::Map { .. } => return None,
            Frame::Seq {
                items, position, ..
            } => {
                let position = items.first().map_or(position, Node::position);
                Node::Sequence(items, position)
            }
        };
        match self.stack.last_mut() {
            Some(Frame::Map {
                entries, pending, ..
            }) => entries.push((pending.take()?, node)),
            Some(Frame::Seq { items, .. }) => items.push(node),
            None => self.root = Some(node),
        }
        Some(())
    }

    fn close_document(&mut self) -> Option<()> {
        while !self.stack.is_empty() {
            self.close_frame()?;
        }
        self.last_value_owner = None;
        if self.open {
            let root = self.root.take()?;
            self.stream.documents.push(Document { root });
        }
        self.open = false;
        Some(())
    }

    fn finish(mut self) -> Option<Stream> {
        self.close_document()?;
        (!self.stream.documents.is_empty()).then_some(self.stream)
    }
}

/// Whether a block scalar header is literal and strips its final line break;
/// only the four headers without indentation indicator, keep chomping or comment.
fn block_header(text: &str) -> Option<(bool, bool)> {
    match text {
        "|" => Some((true, false)),
        "|-" => Some((true, true)),
        ">" => Some((false, false)),
        ">-" => Some((false, true)),
        _ => None,
    }
}

/// A quoted or plain scalar on one line, and its length in bytes. In a flow
/// collection a plain scalar also ends at `,`, `]` or `}`.
fn one_line_scalar(at: At, flow: bool) -> Option<(Scalar, usize)> {
    let text = at.text;
    let (value, style, length) = match *text.as_bytes().first()? {
        b'"' => {
            let close = text[1..].find('"')? + 1;
            let inner = &text[1..close];
            if inner.contains('\\') {
                return None;
            }
            (inner.to_string(), ScalarStyle::DoubleQuoted, close + 1)
        }
        b'\'' => {
            let mut i = 1;
            loop {
                let quote = text[i..].find('\'')? + i;
                if text[quote + 1..].starts_with('\'') {
                    i = quote + 2;
                } else {
                    break (
                        text[1..quote].replace("''", "'"),
                        ScalarStyle::SingleQuoted,
                        quote + 1,
                    );
                }
            }
        }
        first => {
            if b"[]{}|>&*!%@`,?:#".contains(&first)
                || (first == b'-' && text[1..].starts_with([' ', '\t']))
            {
                return None;
            }
            let mut end = [" #", "\t#"]
                .iter()
                .filter_map(|p| text.find(p))
                .min()
                .unwrap_or(text.len());
            if flow {
                end = end.min(text.find([',', ']', '}']).unwrap_or(text.len()));
            }
            let plain = text[..end].trim_end_matches([' ', '\t']);
            if plain.is_empty()
                || plain.contains(": ")
                || plain.ends_with(':')
                || plain.contains('\t')
                || (flow && plain.contains(['[', '{', ':', '#']))
            {
                return None;
            }
            (plain.to_string(), ScalarStyle::Plain, plain.len())
        }
    };
    let scalar = Scalar {
        value,
        style,
        span: at.offset..at.offset + length,
        start: at.position(),
        end_line: at.line,
    };
    Some((scalar, length))
}

/// A flow collection of scalars on one line (`[a, "b"]`, `{k: v}`, `{}`),
/// and its length in bytes. Nested collections and trailing commas decline.
fn flow(at: At) -> Option<(Node, usize)> {
    let mapping = at.text.starts_with('{');
    let close = if mapping { '}' } else { ']' };
    let mut cursor = at.skip(1);
    let mut entries = Vec::new();
    let mut items = Vec::new();
    loop {
        cursor = cursor.skip(cursor.text.bytes().take_while(|&b| b == b' ').count());
        if cursor.text.starts_with(close) && entries.is_empty() && items.is_empty() {
            break;
        }
        if mapping {
            let length = key_length(cursor.text)?;
            let key = cursor.key(length);
            cursor = cursor.skip(length + 1);
            cursor = cursor.skip(cursor.text.bytes().take_while(|&b| b == b' ').count());
            let (value, length) = one_line_scalar(cursor, true)?;
            entries.push((Node::Scalar(key), Node::Scalar(value)));
            cursor = cursor.skip(length);
        } else {
            let (item, length) = one_line_scalar(cursor, true)?;
            items.push(Node::Scalar(item));
            cursor = cursor.skip(length);
        }
        cursor = cursor.skip(cursor.text.bytes().take_while(|&b| b == b' ').count());
        match cursor.text.chars().next()? {
            ',' => cursor = cursor.skip(1),
            c if c == close => break,
            _ => return None,
        }
    }
    let length = cursor.offset + 1 - at.offset;
    let node = if mapping {
        Node::Mapping(entries, at.position())
    } else {
        let position = items.first().map_or(at.position(), Node::position);
        Node::Sequence(items, position)
    };
    Some((node, length))
}

/// The length of a simple plain key at the start of `text` when it is
/// followed by `:` and a blank or the end of the line.
fn key_length(text: &str) -> Option<usize> {
    let length = text
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-'))
        .count();
    let after = &text[length..];
    (length > 0
        && !text.starts_with('-')
        && after.starts_with(':')
        && (after.len() == 1 || after[1..].starts_with([' ', '\t'])))
    .then_some(length)
}

#[cfg(test)]
mod tests {
    use super::super::parse_full;
    use super::*;

    /// Inputs the fast reader must read exactly as the full parser does.
    const READ: &[&str] = &[
        "a: 1\n",
        "\u{feff}---\r\n# c\r\napiVersion: v1\r\nkind: X # k\r\nmetadata:\r\n  name: n\r\n",
        "a:\n- x\n- 'y'\n- \"z\" # c\nb:\n  - name: x\n    v: 1\n  -   z\nc: d\n",
        "spec:\n  template:\n    spec:\n      containers:\n        - name: web\n          image: ghcr.io/a:1 # {\"$imagepolicy\": \"a:b\"}\n          # above\n          args: 'it''s'\n",
        "a: 1\n---\nb: 2\n",
        "- a\n- b: c\n  d: e\n- f\n",
        "note: größe ✓ # ü\nk: ünï\n",
        "a: x#y\nb: 'a # b'\nc: \"# d\"\n",
        "a: 1\n\n\n# trailing\n",
        "a:\n  b: 1   \n  c: 2\t# tab\n",
        "a: [1, 2]\n",
        "a: {b: c}\n",
        "r: {}\nl: [] # empty\ns:\n- [x]\n- {a: \"b\", c: d}\n",
        "a: |\n  x\n\n  y\n\nb: 1\n",
        "a: >-\n  x\n  y\n# c\nb: 1\n",
        "a: |\n  x",
        "a:\n  b: >\n    one\n    two\n\n    three\n  c: |-\n    # not a comment\n      deeper\n    last\n# after\n",
        "- m: |\n    x\n  n: 1\n",
    ];

    /// Inputs the fast reader must decline (the full parser may accept or reject them).
    const DECLINED: &[&str] = &[
        "a: |\n",
        "a: |\nb: 1\n",
        "a: |\n\n  text\n",
        "a: | # c\n  text\n",
        "a: |2\n  text\n",
        "a: |+\n  text\n",
        "a: >\n  x\n    y\n",
        "a:\n  b: |\n   x\n  y\n",
        "a: |\n  x\n  \n",
        "- |\n  x\n",
        "a: &x 1\nb: *x\n",
        "a: !!str 1\n",
        "a: \"x\\ty\"\n",
        "a: b\n  c\n",
        "a:\nb: 1\n",
        "a:\n",
        "---\n",
        "a: 1\n---\n",
        "# only a comment\n",
        "",
        "%YAML 1.2\n---\na: 1\n",
        "? a\n: b\n",
        "a: 'b\n  c'\n",
        "\"a\": 1\n",
        "a:\n\tb: 1\n",
        "- - a\n",
        "-\n  a: 1\n",
        "a: b: c\n",
        "a:\n  - x\n b: 1\n",
        "just text\n",
        "a: 1\n...\n",
        "a: 1\r\rb: 2\n",
    ];

    #[test]
    fn reads_the_subset_exactly_as_the_full_parser() {
        for src in READ {
            let fast = parse(src).unwrap_or_else(|| panic!("declined {src:?}"));
            assert_eq!(Ok(fast), parse_full(src), "{src:?}");
        }
    }

    const INDENTS: &[&str] = &["", "  ", "    ", " ", "      ", "\t"];
    const SHAPES: &[&str] = &[
        "K: V", "K:", "- V", "- K: V", "-", "- K:", "#C", "", "---", "V", "K: V #C", "- V #C",
        "K:   #C", "...", "K: V\t#C",
    ];
    const KEYS: &[&str] = &[
        "a",
        "image",
        "app.kubernetes.io/name",
        "x-y_z",
        "-a",
        "\"q\"",
        "a b",
        "k:",
    ];
    const VALUES: &[&str] = &[
        "1.0",
        "ghcr.io/a/b:1.0",
        "x#y",
        "'s''q'",
        "\"d\"",
        "[x]",
        "{a: b}",
        "|",
        ">-",
        "|-",
        ">",
        "&a x",
        "*a",
        "!t x",
        "a: b",
        "~",
        "\"un",
        "'un",
        "ü ✓",
        "-1",
        "- x",
        "?",
        ":x",
        "x:",
        "a,b",
        "%x",
        "@x",
        "`x",
        "\"a\\nb\"",
        "''",
        "\"\"",
        "x  ",
        "2024-01-01",
        "x\ty",
        "'a # b'",
        "[a, 'b', \"c\"]",
        "{a: 1, b: 'x'}",
        "{}",
        "[]",
        "[a,b]",
        "{a: [b]}",
        "[a, ]",
        "{a:b}",
        "[a b]",
        "{a: b c}",
        "[ a , b ]",
        "{a: b}#c",
        "[a]]",
        "{a: \"b\" }",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// On random line soup, whenever the fast reader answers, the full
        /// parser gives the same tree; whenever the full parser fails, the
        /// fast reader declines.
        #[test]
        fn never_disagrees_with_the_full_parser(
            lines in proptest::collection::vec((0..INDENTS.len(), 0..SHAPES.len(), 0..KEYS.len(), 0..VALUES.len()), 1..14),
            crlf in proptest::bool::ANY,
            bom in proptest::bool::ANY,
            final_newline in proptest::bool::ANY,
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut src = String::from(if bom { "\u{feff}" } else { "" });
            for (i, (indent, shape, key, value)) in lines.iter().enumerate() {
                if i > 0 {
                    src.push_str(eol);
                }
                src.push_str(INDENTS[*indent]);
                src.push_str(&SHAPES[*shape].replace('K', KEYS[*key]).replace('V', VALUES[*value]).replace('C', " note"));
            }
            if final_newline {
                src.push_str(eol);
            }
            let full = parse_full(&src);
            if let Some(fast) = parse(&src) {
                proptest::prop_assert_eq!(Ok(fast), full, "{:?}", src);
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Tree {
        Leaf(usize, usize),
        Map(Vec<(usize, Tree)>),
        Seq(Vec<Tree>),
    }

    fn tree() -> impl proptest::strategy::Strategy<Value = Tree> {
        use proptest::prelude::*;
        // Mostly values inside the subset, sometimes anything.
        let simple =
            proptest::sample::select(vec![0usize, 1, 2, 3, 4, 13, 16, 17, 22, 27, 28, 29, 30, 32]);
        let value = prop_oneof![6 => simple, 1 => 0..VALUES.len()];
        let leaf = (value, 0..4usize).prop_map(|(v, c)| Tree::Leaf(v, c));
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec((0..4usize, inner.clone()), 1..4).prop_map(Tree::Map),
                proptest::collection::vec(inner, 1..4).prop_map(Tree::Seq),
            ]
        })
    }

    /// Renders a tree as block YAML with a choice of indentation step and of
    /// sequences indented under their key or not.
    fn render(t: &Tree, indent: usize, step: usize, indentless: bool, out: &mut Vec<String>) {
        let pad = " ".repeat(indent);
        let tail = |v: usize, c: usize| {
            let comment = [" ", " # c", "\t# {\"$imagepolicy\": \"a:b\"}", "   #x"][c];
            format!("{}{}", VALUES[v], comment.trim_end())
        };
        match t {
            Tree::Leaf(v, c) => out.push(format!("{pad}{}", tail(*v, *c))),
            Tree::Map(entries) => {
                for (i, (k, v)) in entries.iter().enumerate() {
                    let key = format!("{}{i}", ["a", "image", "x.y/z", "k-k"][*k]);
                    match v {
                        Tree::Leaf(v, c) => out.push(format!("{pad}{key}: {}", tail(*v, *c))),
                        Tree::Seq(_) if indentless => {
                            out.push(format!("{pad}{key}:"));
                            render(v, indent, step, indentless, out);
                        }
                        nested => {
                            out.push(format!("{pad}{key}:"));
                            render(nested, indent + step, step, indentless, out);
                        }
                    }
                }
            }
            Tree::Seq(items) => {
                for item in items {
                    let mut nested = Vec::new();
                    render(item, indent + 2, step, indentless, &mut nested);
                    let first = nested.remove(0);
                    out.push(format!("{pad}- {}", &first[indent + 2..]));
                    out.extend(nested);
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

        /// On generated manifests, mostly inside the subset, with one line
        /// sometimes replaced, the two readers never disagree.
        #[test]
        fn never_disagrees_on_manifests(
            docs in proptest::collection::vec(tree(), 1..3),
            step in 1usize..5,
            indentless in proptest::bool::ANY,
            crlf in proptest::bool::ANY,
            mutation in proptest::option::of((0usize..64, 0..SHAPES.len(), 0..VALUES.len())),
        ) {
            let mut lines = Vec::new();
            for (i, doc) in docs.iter().enumerate() {
                if i > 0 {
                    lines.push("---".to_string());
                }
                render(doc, 0, step, indentless, &mut lines);
            }
            if let Some((at, shape, value)) = mutation {
                let at = at % lines.len();
                lines[at] = SHAPES[shape].replace('K', "m").replace('V', VALUES[value]).replace('C', " n");
            }
            let src = lines.join(if crlf { "\r\n" } else { "\n" }) + "\n";
            let full = parse_full(&src);
            if let Some(fast) = parse(&src) {
                proptest::prop_assert_eq!(Ok(fast), full, "{:?}", src);
            }
        }
    }

    #[test]
    fn agrees_on_every_yaml_file_of_the_project() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut read = 0;
        for dir in ["testdata", "examples"] {
            for entry in walkdir::WalkDir::new(root.join(dir)) {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy();
                if !(name.ends_with(".yaml") || name.ends_with(".yml") || name == "Kustomization") {
                    continue;
                }
                let src = std::fs::read_to_string(entry.path()).unwrap();
                if let Some(fast) = parse(&src) {
                    assert_eq!(Ok(fast), parse_full(&src), "{}", entry.path().display());
                    read += 1;
                }
            }
        }
        assert!(read >= 20, "the fast reader read only {read} project files");
    }

    #[test]
    fn declines_everything_else() {
        for src in DECLINED {
            assert!(parse(src).is_none(), "accepted {src:?}");
        }
    }
}
