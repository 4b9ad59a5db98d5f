//! Property tests: on generated YAML with markers in every position and
//! quoting style, a run changes the marked scalars and not one byte elsewhere,
//! and the result still parses to the same structure.

use std::collections::BTreeMap;

use image_update::flux::{Origin, Scope};
use image_update::marker;
use image_update::plan::{self, Resolved, Target};
use image_update::policy::PolicyId;
use image_update::rewrite;
use image_update::yaml::{self, Node};
use proptest::prelude::*;

const OLD_VALUES: &[&str] = &[
    "1.0",
    "v1.2.3",
    "ghcr.io/a/b:1.0",
    "yes",
    "2024-01-01",
    "x y",
    "ünï",
    "a#b",
    "",
    "12",
];
const NEW_TAGS: &[&str] = &[
    "1.20",
    "yes",
    "2024-06-20",
    "1e3",
    "v2.0.0",
    "build-100",
    "0755",
    "null",
    "True",
    "1_000",
    "_x",
    "1.2.3",
];
const COMMENTS: &[&str] = &[
    "",
    " # note",
    " # {\"$imagepolicy\": \"ns:p\"}",
    " # {\"$imagepolicy\": \"ns:p:tag\"}",
    "\t# {\"$imagepolicy\":\"ns:p:name\"}",
];

#[derive(Debug, Clone)]
enum Value {
    Scalar {
        value: usize,
        style: u8,
        comment: usize,
        above: bool,
    },
    Map(Vec<(String, Value)>),
    Seq(Vec<Value>),
}

fn value() -> impl Strategy<Value = Value> {
    let scalar = (
        0..OLD_VALUES.len(),
        0u8..3,
        0..COMMENTS.len(),
        any::<bool>(),
    )
        .prop_map(|(value, style, comment, above)| Value::Scalar {
            value,
            style,
            comment,
            above,
        });
    scalar.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(("[a-z]{1,6}", inner.clone()), 1..4).prop_map(Value::Map),
            prop::collection::vec(inner, 1..4).prop_map(Value::Seq),
        ]
    })
}

fn scalar_text(value: &str, style: u8) -> String {
    match style {
        0 if !value.is_empty() && rewrite::is_safe_plain(value) && !value.contains('#') => {
            value.to_string()
        }
        1 => format!("'{value}'"),
        _ => format!("\"{value}\""),
    }
}

/// Renders block YAML; `above` puts the comment on its own line above the entry.
fn render(v: &Value, indent: usize, out: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    let entry = |out: &mut Vec<String>, head: String, v: &Value| match v {
        Value::Scalar {
            value,
            style,
            comment,
            above,
        } => {
            let text = scalar_text(OLD_VALUES[*value], *style);
            let comment = COMMENTS[*comment];
            if *above && !comment.is_empty() {
                out.push(format!(
                    "{pad}#{}",
                    comment.trim_start().trim_start_matches('#')
                ));
                out.push(format!("{head} {text}"));
            } else {
                out.push(format!("{head} {text}{comment}"));
            }
        }
        nested => {
            out.push(head);
            render(nested, indent + 2, out);
        }
    };
    match v {
        Value::Map(entries) => {
            let mut seen = std::collections::BTreeSet::new();
            for (k, v) in entries {
                if seen.insert(k.clone()) {
                    entry(out, format!("{pad}{k}:"), v);
                }
            }
        }
        Value::Seq(items) => {
            for item in items {
                entry(out, format!("{pad}-"), item);
            }
        }
        scalar => entry(out, format!("{pad}key:"), scalar),
    }
}

fn scalars<'a>(node: &'a Node, out: &mut Vec<&'a yaml::Scalar>) {
    match node {
        Node::Scalar(s) => out.push(s),
        Node::Mapping(entries, _) => entries.iter().for_each(|(k, v)| {
            scalars(k, out);
            scalars(v, out);
        }),
        Node::Sequence(items, _) => items.iter().for_each(|i| scalars(i, out)),
        _ => {}
    }
}

fn all_scalars(stream: &yaml::Stream) -> Vec<&yaml::Scalar> {
    let mut out = Vec::new();
    stream
        .documents
        .iter()
        .for_each(|d| scalars(&d.root, &mut out));
    out
}

/// `src` with the given byte ranges cut out.
fn without(src: &str, mut spans: Vec<std::ops::Range<usize>>) -> String {
    spans.sort_by_key(|s| s.start);
    let mut out = String::new();
    let mut at = 0;
    for s in spans {
        out.push_str(&src[at..s.start]);
        out.push('\u{0}');
        at = s.end;
    }
    out.push_str(&src[at..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn rewrites_touch_only_marked_scalars(
        docs in prop::collection::vec(value(), 1..3),
        crlf in any::<bool>(),
        bom in any::<bool>(),
        tag in 0..NEW_TAGS.len(),
    ) {
        let mut lines = Vec::new();
        for (i, doc) in docs.iter().enumerate() {
            if i > 0 {
                lines.push("---".to_string());
            }
            render(doc, 0, &mut lines);
        }
        let eol = if crlf { "\r\n" } else { "\n" };
        let src = format!("{}{}{eol}", if bom { "\u{feff}" } else { "" }, lines.join(eol));
        let stream = yaml::parse(&src).map_err(|e| TestCaseError::fail(format!("generated YAML does not parse: {e}\n{src}")))?;
        let found = marker::find(&src, &stream);
        let targets = BTreeMap::from([(
            PolicyId::new("ns", "p"),
            vec![Target { origin: Origin { file: "p.yaml".into(), line: 1 }, scope: Scope::Everywhere, latest: Ok(Resolved::new("ghcr.io/new/img", NEW_TAGS[tag], None).unwrap()), guard: None, unread: false }],
        )]);
        let planned = plan::plan_file("f.yaml", &src, &found.markers, &targets);
        let out = rewrite::apply(&src, &planned.edits).unwrap();

        let reparsed = yaml::parse(&out).map_err(|e| TestCaseError::fail(format!("output does not parse: {e}\n{out}")))?;
        prop_assert_eq!(reparsed.documents.len(), stream.documents.len());
        let texts = |s: &yaml::Stream| s.comments.iter().map(|c| c.text.clone()).collect::<Vec<_>>();
        prop_assert_eq!(texts(&reparsed), texts(&stream));

        let before = all_scalars(&stream);
        let after = all_scalars(&reparsed);
        prop_assert_eq!(before.len(), after.len());
        let refound = marker::find(&out, &reparsed);
        prop_assert_eq!(refound.markers.len(), found.markers.len());
        let mut edited = Vec::new();
        for (old, new) in found.markers.iter().zip(&refound.markers) {
            let want = match old.setter.field {
                marker::Field::Image => format!("ghcr.io/new/img:{}", NEW_TAGS[tag]),
                marker::Field::Tag => NEW_TAGS[tag].to_string(),
                marker::Field::Name => "ghcr.io/new/img".to_string(),
                marker::Field::Digest => old.scalar.value.clone(),
            };
            prop_assert_eq!(&new.scalar.value, &want, "marked scalar at line {}", old.scalar.start.line);
            prop_assert_eq!(new.scalar.style == old.scalar.style || new.scalar.style == granit_parser::ScalarStyle::DoubleQuoted, true);
            edited.push((old.scalar.span.clone(), new.scalar.span.clone()));
        }
        for (b, a) in before.iter().zip(&after) {
            if !edited.iter().any(|(old, _)| *old == b.span) {
                prop_assert_eq!(&b.value, &a.value);
                prop_assert_eq!(&src[b.span.clone()], &out[a.span.clone()]);
            }
        }
        let skeleton_before = without(&src, edited.iter().map(|(o, _)| o.clone()).collect());
        let skeleton_after = without(&out, edited.iter().map(|(_, n)| n.clone()).collect());
        prop_assert_eq!(skeleton_before, skeleton_after);
        if planned.edits.is_empty() {
            prop_assert_eq!(&out, &src);
        }
    }
}
