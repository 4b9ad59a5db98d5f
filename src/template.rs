//! Renders commit messages and branch names from the Go `text/template`
//! templates users already have: Flux `ImageUpdateAutomation`
//! `spec.git.commit.messageTemplate`, Argo CD Image Updater's commit message
//! and write-branch templates, or a template given on our command line. The
//! output must be byte for byte what Go would print, so that switching to this
//! tool changes nothing in a repository's history. Parsing (lexing, whitespace
//! trimming, comments) is gotmpl's; evaluation is done here, because gotmpl's
//! data model only knows string-keyed maps, while the Flux data has structs,
//! `Stringer`s (`{{.AutomationObject}}` prints `namespace/name`) and maps keyed
//! by structs (`range $resource, $changes := .Changed.Objects` then
//! `$resource.Kind`).
//!
//! Semantics follow Go's `text/template` (missing map keys print
//! `<no value>`, missing struct fields are errors, maps range in Go's sorted
//! key order, `{{template "x"}}` runs with nil data, ...) and the Sprig
//! functions Flux documents (a hermetic subset, see [`render_message`]).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

use gotmpl::parse::{BranchNode, CommandNode, Expr, ListNode, Node, Number, Parser, PipeNode, Pos};
use sha2::{Digest, Sha256};

/// Name Flux gives the commit message template (shown in errors).
const MESSAGE_TEMPLATE_NAME: &str = "commit message";
/// Name Argo CD Image Updater gives the branch template (shown in errors).
const BRANCH_TEMPLATE_NAME: &str = "branchName";
/// Argo CD Image Updater cuts rendered branch names to 255 bytes.
const MAX_BRANCH_LEN: usize = 255;
/// Nesting limit for `{{template}}` calls (Go allows 100000; our stack does not).
const MAX_TEMPLATE_DEPTH: usize = 100;
/// The most bytes a template may print, and the longest string any function
/// may return (Go has no limit; a repository's template must not be able to
/// exhaust memory).
pub const MAX_OUTPUT: usize = 1 << 20;
/// The most steps (actions, text pieces, range iterations) an execution may
/// take (Go has no limit; a repository's template must not run for ever).
pub const MAX_STEPS: usize = 1_000_000;

/// One value change made by a run (dialect-neutral).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Path relative to the repository root, `/`-separated.
    pub file: String,
    /// Flux setter text, e.g. `flux-system:podinfo` or `flux-system:podinfo:tag`.
    pub setter: String,
    /// Old value as it was in the file.
    pub old: String,
    /// New value.
    pub new: String,
    /// Image name of the policy, as written (e.g. `ghcr.io/stefanprodan/podinfo`).
    pub image: String,
    /// Tag before (best effort; may be "").
    pub old_tag: String,
    /// Tag after.
    pub new_tag: String,
    /// Resource the change is in (fields empty when the file is not a k8s resource).
    pub object: Object,
}

/// The Kubernetes resource a change was made in.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Object {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// Everything a template can see.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// (namespace, name) of the ImageUpdateAutomation, if any.
    pub automation: Option<(String, String)>,
    /// The automation is `image.toolkit.fluxcd.io/v1`: its templates no
    /// longer see `.Updated` and `.Changed.ImageResult`, and using them is
    /// Flux's `RemovedTemplateField` error.
    pub flux_v1: bool,
    /// Flux `spec.git.commit.messageTemplateValues`.
    pub values: BTreeMap<String, String>,
    /// Argo CD application name ("" when none).
    pub app_name: String,
    /// The changes, in the order the run made them.
    pub changes: Vec<Change>,
}

/// A template that does not parse or fails while executing, with Go's
/// message format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `v1` automation's template uses a field Flux removed (reason
    /// `RemovedTemplateField`, with Flux's advice).
    #[error("RemovedTemplateField: {}", removed_field_advice(.0))]
    RemovedField(&'static str),
    /// `template: NAME:LINE: MESSAGE`, as Go's parser reports.
    #[error("template: {name}:{line}: {message}")]
    Parse {
        name: String,
        line: usize,
        message: String,
    },
    /// `template: NAME:LINE:COL: executing "TEMPLATE" at <CONTEXT>: MESSAGE`,
    /// as Go's executor reports (COL is Go's 0-based byte column, CONTEXT the
    /// failing node; past 20 bytes, its first 20 characters and `...`).
    #[error(
        "template: {name}:{line}:{column}: executing {} at <{context}>: {message}",
        go_quote(.template)
    )]
    Exec {
        name: String,
        line: usize,
        column: usize,
        template: String,
        context: String,
        message: String,
    },
}

/// Flux's advice for a removed template field.
fn removed_field_advice(field: &str) -> String {
    let instead = match field {
        ".Updated" => " Please use '.Changed' instead.",
        ".Changed.ImageResult" => {
            " Please use '.Changed.FileChanges' or '.Changed.Objects' instead."
        }
        _ => "",
    };
    format!(
        "template uses removed '{field}' field.{instead} See: https://fluxcd.io/flux/components/image/imageupdateautomations/#message-template"
    )
}

/// Renders a commit message template. Named `commit message`, as in Flux.
///
/// The template sees the data of every dialect at once:
///
/// * Flux v1 (`source.TemplateData`): `.AutomationObject` (`.Namespace`,
///   `.Name`; prints `namespace/name`, `/` without an automation),
///   `.Changed.FileChanges` (file → object → changes), `.Changed.Objects`,
///   `.Changed.Changes` (changes have `.OldValue`, `.NewValue`, `.Setter`;
///   objects `.APIVersion`, `.Kind`, `.Namespace`, `.Name`), `.Values`.
///   As in current Flux, `.Changed.Changes` is de-duplicated and sorted by
///   setter, old value, new value; `.Changed.Objects` gathers an object's
///   changes from every file, sorted the same way; the lists inside
///   `.Changed.FileChanges` keep the run's order. Maps range in Go's order:
///   files by path, objects by apiVersion, kind, name, namespace (Go compares
///   struct keys field by field, and kyaml declares `Name` before `Namespace`).
/// * Flux v1beta1 (`.Updated`, also `.Changed.ImageResult`): `.Updated.Files`,
///   `.Updated.Objects`, `.Updated.Images`. An image ref prints as the new
///   reference (`new` for a full-image setter, else `image:new_tag`) and has
///   `.Identifier`, `.Repository`, `.Registry`, `.Name`, `.Policy`.
///   `.Updated.Images` is de-duplicated and sorted by its text.
/// * Argo CD Image Updater: `.AppName` and `.AppChanges` (`.Image`, `.OldTag`,
///   `.NewTag`, `.Labels` (always empty)), one entry per distinct
///   (image, old tag, new tag), in run order. `.Image` is Argo's `ImageName`:
///   the image without its registry host when its first path component
///   contains a `.` (`ghcr.io/a/b` → `a/b`).
///
/// Functions: Go's builtins and the hermetic Sprig functions `upper lower
/// title trim trimAll trimPrefix trimSuffix replace contains hasPrefix
/// hasSuffix quote squote default empty coalesce join splitList list first
/// last uniq sortAlpha indent nindent repeat substr trunc abbrev toJson
/// toString cat nospace ternary`, with Sprig's argument orders.
pub fn render_message(template: &str, context: &Context) -> Result<String, TemplateError> {
    render(MESSAGE_TEMPLATE_NAME, template, &message_data(context)).map_err(|e| {
        let text = e.to_string();
        // Flux's own test for a removed field is this text of Go's error.
        let removed = [
            (
                ".Updated",
                "can't evaluate field Updated in type source.TemplateData",
            ),
            (
                ".Changed.ImageResult",
                "can't evaluate field ImageResult in type update.Result",
            ),
        ];
        match removed.iter().find(|(_, pattern)| text.contains(pattern)) {
            Some((field, _)) if context.flux_v1 => TemplateError::RemovedField(field),
            _ => e,
        }
    })
}

/// Renders a branch name template (Argo CD `git.branch` after `:`). Named
/// `branchName`, as in Argo CD Image Updater.
///
/// Data (`argocd.branchNameTemplate`): `.AppName`, `.Images` (`.Name`,
/// `.Alias` (always ""), `.OldTag`, `.NewTag`; one entry per distinct
/// (image, old tag, new tag) as for `.AppChanges`) and `.SHA256`: the
/// lowercase hex SHA-256 of `NAME-OLDTAG-NEWTAG,` concatenated over `.Images`,
/// exactly what Argo hashes. As in Argo, a result longer than 255 bytes is
/// cut to 255 (backing off to a UTF-8 boundary). The functions are those of
/// [`render_message`] (Argo itself offers only Go's builtins here).
pub fn render_branch(template: &str, context: &Context) -> Result<String, TemplateError> {
    let mut name = render(BRANCH_TEMPLATE_NAME, template, &branch_data(context))?;
    if name.len() > MAX_BRANCH_LEN {
        let mut cut = MAX_BRANCH_LEN;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    Ok(name)
}

/// The message used when no template is configured.
///
/// First line: `Update image IMAGE to TAG` when every change sets the same
/// image to the same tag (a single change, or one image in several files),
/// else `Update images`. Then, when there are changes, an empty line and one
/// line per change, in run order: `- FILE: OLD -> NEW`. Every line ends with
/// `\n`. Example:
///
/// ```text
/// Update image ghcr.io/stefanprodan/podinfo to 6.5.0
///
/// - apps/podinfo.yaml: ghcr.io/stefanprodan/podinfo:6.4.0 -> ghcr.io/stefanprodan/podinfo:6.5.0
/// ```
pub fn default_message(context: &Context) -> String {
    let mut targets: Vec<(&str, &str)> = Vec::new();
    for c in &context.changes {
        let target = (c.image.as_str(), c.new_tag.as_str());
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    let mut out = match targets.as_slice() {
        [(image, tag)] if !image.is_empty() && !tag.is_empty() => {
            format!("Update image {image} to {tag}\n")
        }
        _ => "Update images\n".to_string(),
    };
    if !context.changes.is_empty() {
        out.push('\n');
        for c in &context.changes {
            let _ = writeln!(out, "- {}: {} -> {}", c.file, c.old, c.new);
        }
    }
    out
}

fn render(name: &str, src: &str, data: &Val) -> Result<String, TemplateError> {
    let parsed = parse_template(name, src)?;
    let mut exec = Exec {
        name,
        src,
        defines: &parsed.defines,
        vars: vec![("$".to_string(), data.clone())],
        out: String::new(),
        depth: 0,
        steps: 0,
        current: name.to_string(),
    };
    exec.walk(data, &parsed.root)?;
    Ok(exec.out)
}

// ---------------------------------------------------------------------------
// Values: a small model of the Go values templates see.
// ---------------------------------------------------------------------------

/// A Go value. `Nil` stands for both the invalid `reflect.Value` (a missing
/// map key, printed `<no value>` by an action) and a nil interface.
#[derive(Debug, Clone)]
enum Val {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    List(Rc<List>),
    Map(Rc<Map>),
    Struct(Rc<Struct>),
}

/// A slice. `nil` marks a nil slice (JSON `null`); `string` is the result of
/// its `String()` method, when its Go type has one.
#[derive(Debug)]
struct List {
    ty: &'static str,
    items: Vec<Val>,
    nil: bool,
    string: Option<String>,
}

/// A map; `entries` are in Go's sorted key order. `zero` is the zero value of
/// the element type (what `index` returns for a missing key).
#[derive(Debug)]
struct Map {
    ty: &'static str,
    key_ty: &'static str,
    entries: Vec<(Val, Val)>,
    zero: Val,
    nil: bool,
    string: Option<String>,
}

#[derive(Debug)]
struct Struct {
    ty: &'static str,
    fields: Vec<Field>,
    string: Option<String>,
    /// JSON encoding when the Go type marshals itself.
    json: Option<String>,
}

#[derive(Debug)]
struct Field {
    name: &'static str,
    val: Val,
    kind: FieldKind,
}

#[derive(Debug, Clone, Copy)]
enum FieldKind {
    /// An exported field, with its JSON name and `omitempty`.
    Plain { json: &'static str, omitempty: bool },
    /// An embedded struct: its fields are promoted (and flattened in JSON).
    Embedded,
    /// A method without arguments, evaluated in advance.
    Method,
}

impl Val {
    fn str(s: &str) -> Val {
        Val::Str(Rc::from(s))
    }

    /// The result of the value's `String()` method, if its type has one.
    fn stringer(&self) -> Option<&str> {
        match self {
            Val::List(l) => l.string.as_deref(),
            Val::Map(m) => m.string.as_deref(),
            Val::Struct(s) => s.string.as_deref(),
            _ => None,
        }
    }

    /// Go's `reflect.Type.String()` of the value.
    fn type_name(&self) -> &'static str {
        match self {
            Val::Nil => "<nil>",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Float(_) => "float64",
            Val::Str(_) => "string",
            Val::List(l) => l.ty,
            Val::Map(m) => m.ty,
            Val::Struct(s) => s.ty,
        }
    }

    /// Go's `reflect.Kind` name, as Sprig prints it in its errors.
    fn kind_name(&self) -> &'static str {
        match self {
            Val::Nil => "invalid",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Float(_) => "float64",
            Val::Str(_) => "string",
            Val::List(_) => "slice",
            Val::Map(_) => "map",
            Val::Struct(_) => "struct",
        }
    }
}

fn plain(name: &'static str, val: Val) -> Field {
    Field {
        name,
        val,
        kind: FieldKind::Plain {
            json: name,
            omitempty: false,
        },
    }
}

fn tagged(name: &'static str, json: &'static str, val: Val) -> Field {
    Field {
        name,
        val,
        kind: FieldKind::Plain {
            json,
            omitempty: true,
        },
    }
}

fn embedded(name: &'static str, val: Val) -> Field {
    Field {
        name,
        val,
        kind: FieldKind::Embedded,
    }
}

fn method(name: &'static str, val: Val) -> Field {
    Field {
        name,
        val,
        kind: FieldKind::Method,
    }
}

fn struct_val(ty: &'static str, fields: Vec<Field>, string: Option<String>) -> Val {
    Val::Struct(Rc::new(Struct {
        ty,
        fields,
        string,
        json: None,
    }))
}

fn list_val(ty: &'static str, items: Vec<Val>, nil: bool, string: Option<String>) -> Val {
    Val::List(Rc::new(List {
        ty,
        items,
        nil,
        string,
    }))
}

/// Builds a map, sorting the entries in Go's key order.
fn map_val(
    ty: &'static str,
    key_ty: &'static str,
    mut entries: Vec<(Val, Val)>,
    zero: Val,
    string: Option<String>,
) -> Val {
    entries.sort_by(|a, b| go_cmp(&a.0, &b.0));
    let nil = entries.is_empty();
    Val::Map(Rc::new(Map {
        ty,
        key_ty,
        entries,
        zero,
        nil,
        string,
    }))
}

fn data_fields(s: &Struct) -> impl Iterator<Item = &Field> {
    s.fields
        .iter()
        .filter(|f| !matches!(f.kind, FieldKind::Method))
}

/// Go's `FieldByName`: direct fields and methods first, then the fields
/// promoted from embedded structs, breadth first.
fn find_field<'s>(s: &'s Struct, name: &str) -> Option<&'s Field> {
    let mut level: Vec<&Struct> = vec![s];
    while !level.is_empty() {
        let mut next = Vec::new();
        for st in &level {
            for f in &st.fields {
                if f.name == name {
                    return Some(f);
                }
                if let (FieldKind::Embedded, Val::Struct(inner)) = (f.kind, &f.val) {
                    next.push(&**inner);
                }
            }
        }
        level = next;
    }
    None
}

/// Go's `internal/fmtsort` order, for the key types we build.
fn go_cmp(a: &Val, b: &Val) -> Ordering {
    match (a, b) {
        (Val::Str(x), Val::Str(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Val::Int(x), Val::Int(y)) => x.cmp(y),
        (Val::Struct(x), Val::Struct(y)) => {
            for (f, g) in data_fields(x).zip(data_fields(y)) {
                let o = go_cmp(&f.val, &g.val);
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        }
        _ => Ordering::Equal,
    }
}

/// `reflect.DeepEqual` for our values.
fn deep_eq(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Nil, Val::Nil) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Float(x), Val::Float(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::List(x), Val::List(y)) => {
            x.ty == y.ty
                && x.items.len() == y.items.len()
                && x.items.iter().zip(&y.items).all(|(p, q)| deep_eq(p, q))
        }
        (Val::Map(x), Val::Map(y)) => {
            x.ty == y.ty
                && x.entries.len() == y.entries.len()
                && x.entries
                    .iter()
                    .zip(&y.entries)
                    .all(|(p, q)| deep_eq(&p.0, &q.0) && deep_eq(&p.1, &q.1))
        }
        (Val::Struct(x), Val::Struct(y)) => {
            x.ty == y.ty
                && data_fields(x)
                    .zip(data_fields(y))
                    .all(|(p, q)| deep_eq(&p.val, &q.val))
        }
        _ => false,
    }
}

/// Go's truth (`if`, `with`, `and`, `or`, `not`).
fn truth(v: &Val) -> bool {
    match v {
        Val::Nil => false,
        Val::Bool(b) => *b,
        Val::Int(i) => *i != 0,
        Val::Float(f) => *f != 0.0,
        Val::Str(s) => !s.is_empty(),
        Val::List(l) => !l.items.is_empty(),
        Val::Map(m) => !m.entries.is_empty(),
        Val::Struct(_) => true,
    }
}

// ---------------------------------------------------------------------------
// Go formatting: %v, fmt.Sprint, strconv.Quote, encoding/json.
// ---------------------------------------------------------------------------

/// Appends `v` formatted with Go's `%v`.
fn write_v(out: &mut String, v: &Val) {
    if let Some(s) = v.stringer() {
        out.push_str(s);
        return;
    }
    match v {
        Val::Nil => out.push_str("<nil>"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Val::Float(f) => out.push_str(&go_float(*f)),
        Val::Str(s) => out.push_str(s),
        Val::List(l) => {
            out.push('[');
            for (i, item) in l.items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_v(out, item);
            }
            out.push(']');
        }
        Val::Map(m) => {
            out.push_str("map[");
            for (i, (k, val)) in m.entries.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_v(out, k);
                out.push(':');
                write_v(out, val);
            }
            out.push(']');
        }
        Val::Struct(s) => {
            out.push('{');
            for (i, f) in data_fields(s).enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_v(out, &f.val);
            }
            out.push('}');
        }
    }
}

fn sprint_v(v: &Val) -> String {
    let mut out = String::new();
    write_v(&mut out, v);
    out
}

/// `fmt.Sprint`: a space between two operands when neither is a string.
fn sprint(args: &[Val]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Val::Str(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        write_v(&mut out, a);
        prev_string = is_string;
    }
    out
}

/// Sprig's `strval`: strings as they are, `Stringer`s through `String()`,
/// everything else with `%v`.
fn strval(v: &Val) -> String {
    match v {
        Val::Str(s) => s.to_string(),
        other => sprint_v(other),
    }
}

/// `strconv.FormatFloat(f, 'g', -1, 64)`, which is what `%v` prints.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // Rust's `{:e}` gives the shortest digits that round-trip, as Go does.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if f < 0.0 {
        out.push('-');
    }
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let point = exp as usize + 1;
        if digits.len() <= point {
            out.push_str(&digits);
            for _ in digits.len()..point {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
    out
}

/// `strconv.IsPrint`, closely enough: ASCII graphic and space, and the
/// non-ASCII characters that are not spaces, controls, format characters,
/// private use or non-characters.
fn go_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(u, 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x180e)
        || matches!(u, 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x206f)
        || matches!(u, 0xfeff | 0xfff9..=0xfffb | 0xfffe | 0xffff)
        || matches!(u, 0xe000..=0xf8ff | 0xe0001 | 0xe0020..=0xe007f)
        || u >= 0xf0000)
}

/// `strconv.Quote` (what `%q` prints for a string).
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// A JSON string as Go's `encoding/json` writes it (HTML-safe).
fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `json.Marshal`; `Err` where Go fails (a map with struct keys).
fn to_json(v: &Val, out: &mut String) -> Result<(), ()> {
    match v {
        Val::Nil => out.push_str("null"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Val::Float(f) => {
            if !f.is_finite() {
                return Err(());
            }
            let abs = f.abs();
            if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
                let s = format!("{f:e}");
                let (m, e) = s.split_once('e').unwrap_or((s.as_str(), "0"));
                let e: i32 = e.parse().unwrap_or(0);
                let _ = write!(out, "{m}e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
            } else {
                let _ = write!(out, "{f}");
            }
        }
        Val::Str(s) => json_string(s, out),
        Val::List(l) => {
            if l.nil {
                out.push_str("null");
            } else {
                out.push('[');
                for (i, item) in l.items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    to_json(item, out)?;
                }
                out.push(']');
            }
        }
        Val::Map(m) => {
            if m.key_ty != "string" {
                return Err(());
            }
            if m.nil {
                out.push_str("null");
            } else {
                out.push('{');
                for (i, (k, val)) in m.entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json_string(&strval(k), out);
                    out.push(':');
                    to_json(val, out)?;
                }
                out.push('}');
            }
        }
        Val::Struct(s) => {
            if let Some(json) = &s.json {
                out.push_str(json);
            } else {
                out.push('{');
                let mut first = true;
                json_fields(s, out, &mut first)?;
                out.push('}');
            }
        }
    }
    Ok(())
}

fn json_fields(s: &Struct, out: &mut String, first: &mut bool) -> Result<(), ()> {
    for f in &s.fields {
        match (f.kind, &f.val) {
            (FieldKind::Method, _) => {}
            (FieldKind::Embedded, Val::Struct(inner)) => json_fields(inner, out, first)?,
            (FieldKind::Embedded, _) => {}
            (FieldKind::Plain { json, omitempty }, val) => {
                if omitempty && !truth(val) && !matches!(val, Val::Struct(_)) {
                    continue;
                }
                if !*first {
                    out.push(',');
                }
                *first = false;
                json_string(json, out);
                out.push(':');
                to_json(val, out)?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The data of each dialect.
// ---------------------------------------------------------------------------

fn namespaced_name(namespace: &str, name: &str) -> Val {
    struct_val(
        "types.NamespacedName",
        vec![
            plain("Namespace", Val::str(namespace)),
            plain("Name", Val::str(name)),
        ],
        Some(format!("{namespace}/{name}")),
    )
}

/// Flux's `update.ObjectIdentifier`, which embeds kyaml's
/// `ResourceIdentifier{TypeMeta{APIVersion, Kind}, NameMeta{Name, Namespace}}`.
fn object_identifier(o: &Object) -> Val {
    let type_meta = struct_val(
        "yaml.TypeMeta",
        vec![
            tagged("APIVersion", "apiVersion", Val::str(&o.api_version)),
            tagged("Kind", "kind", Val::str(&o.kind)),
        ],
        None,
    );
    let name_meta = struct_val(
        "yaml.NameMeta",
        vec![
            tagged("Name", "name", Val::str(&o.name)),
            tagged("Namespace", "namespace", Val::str(&o.namespace)),
        ],
        None,
    );
    let resource = struct_val(
        "yaml.ResourceIdentifier",
        vec![
            embedded("TypeMeta", type_meta),
            embedded("NameMeta", name_meta),
        ],
        None,
    );
    struct_val(
        "update.ObjectIdentifier",
        vec![embedded("ResourceIdentifier", resource)],
        None,
    )
}

/// Go's map order for object keys: apiVersion, kind, name, namespace.
fn object_go_order(o: &Object) -> ObjectKey<'_> {
    (&o.api_version, &o.kind, &o.name, &o.namespace)
}

/// Flux's `lessObjectIdentifier` (used by `ObjectChanges.String()`).
fn object_flux_order(o: &Object) -> ObjectKey<'_> {
    (&o.api_version, &o.kind, &o.namespace, &o.name)
}

fn change_order(a: &Change, b: &Change) -> Ordering {
    (&a.setter, &a.old, &a.new).cmp(&(&b.setter, &b.old, &b.new))
}

/// Flux's `update.Changes`; `String()` prints the changes sorted.
fn flux_changes(changes: &[&Change]) -> Val {
    let mut sorted = changes.to_vec();
    sorted.sort_by(|a, b| change_order(a, b));
    let mut string = String::from("[");
    for (i, c) in sorted.iter().enumerate() {
        if i > 0 {
            string.push(' ');
        }
        let _ = write!(
            string,
            "{{OldValue:{} NewValue:{} Setter:{}}}",
            go_quote(&c.old),
            go_quote(&c.new),
            go_quote(&c.setter)
        );
    }
    string.push(']');
    let items = changes
        .iter()
        .map(|c| {
            struct_val(
                "update.Change",
                vec![
                    plain("OldValue", Val::str(&c.old)),
                    plain("NewValue", Val::str(&c.new)),
                    plain("Setter", Val::str(&c.setter)),
                ],
                None,
            )
        })
        .collect();
    list_val("update.Changes", items, changes.is_empty(), Some(string))
}

/// Flux's `update.ObjectChanges` (map ObjectIdentifier → Changes).
fn flux_object_changes(groups: &[(&Object, Vec<&Change>)]) -> Val {
    let mut by_flux = groups.to_vec();
    by_flux.sort_by(|a, b| object_flux_order(a.0).cmp(&object_flux_order(b.0)));
    let mut string = String::from("{");
    for (i, (o, changes)) in by_flux.iter().enumerate() {
        if i > 0 {
            string.push(' ');
        }
        write_v(&mut string, &object_identifier(o));
        string.push(':');
        write_v(&mut string, &flux_changes(changes));
    }
    string.push('}');
    let entries = groups
        .iter()
        .map(|(o, changes)| (object_identifier(o), flux_changes(changes)))
        .collect();
    map_val(
        "update.ObjectChanges",
        "update.ObjectIdentifier",
        entries,
        flux_changes(&[]),
        Some(string),
    )
}

/// Groups changes by object, objects in Go's map order, changes in run order.
/// An object's fields in some sort order.
type ObjectKey<'a> = (&'a str, &'a str, &'a str, &'a str);

fn group_by_object<'c>(changes: &[&'c Change]) -> Vec<(&'c Object, Vec<&'c Change>)> {
    let mut groups: BTreeMap<ObjectKey, (&Object, Vec<&Change>)> = BTreeMap::new();
    for c in changes {
        groups
            .entry(object_go_order(&c.object))
            .or_insert_with(|| (&c.object, Vec::new()))
            .1
            .push(c);
    }
    groups.into_values().collect()
}

fn group_by_file(changes: &[Change]) -> BTreeMap<&str, Vec<&Change>> {
    let mut files: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
    for c in changes {
        files.entry(c.file.as_str()).or_default().push(c);
    }
    files
}

/// Flux v1 `.Changed` (`update.Result`).
fn changed_data(ctx: &Context, image_result: Val) -> Val {
    let files = group_by_file(&ctx.changes);
    let mut string = String::from("{");
    let mut entries = Vec::new();
    for (i, (file, changes)) in files.iter().enumerate() {
        let objects = flux_object_changes(&group_by_object(changes));
        if i > 0 {
            string.push(' ');
        }
        string.push_str(&go_quote(file));
        string.push(':');
        write_v(&mut string, &objects);
        entries.push((Val::str(file), objects));
    }
    string.push('}');
    let file_changes = map_val(
        "update.FileChanges",
        "string",
        entries,
        flux_object_changes(&[]),
        Some(string),
    );

    let mut unique: Vec<&Change> = Vec::new();
    for c in &ctx.changes {
        if !unique
            .iter()
            .any(|u| u.old == c.old && u.new == c.new && u.setter == c.setter)
        {
            unique.push(c);
        }
    }
    unique.sort_by(|a, b| change_order(a, b));

    let all: Vec<&Change> = files.values().flatten().copied().collect();
    let mut objects = group_by_object(&all);
    for (_, changes) in &mut objects {
        changes.sort_by(|a, b| change_order(a, b));
    }

    struct_val(
        "update.Result",
        vec![
            plain("FileChanges", file_changes),
            plain("ImageResult", image_result),
            method("Changes", flux_changes(&unique)),
            method("Objects", flux_object_changes(&objects)),
        ]
        .into_iter()
        .filter(|f| !(ctx.flux_v1 && f.name == "ImageResult"))
        .collect(),
        None,
    )
}

/// The parts of an image reference, as go-containerregistry splits it.
struct RefParts {
    registry: String,
    repository: String,
    identifier: String,
    name: String,
}

fn parse_image_ref(reference: &str) -> RefParts {
    let (base, digest) = match reference.split_once('@') {
        Some((b, d)) => (b, Some(d)),
        None => (reference, None),
    };
    let (repo, tag) = match base.rfind(':') {
        Some(i) if !base[i..].contains('/') => (&base[..i], Some(&base[i + 1..])),
        _ => (base, None),
    };
    let (registry, repository) = match repo.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest.to_string())
        }
        _ => ("index.docker.io", repo.to_string()),
    };
    let registry = if registry == "docker.io" {
        "index.docker.io"
    } else {
        registry
    };
    let repository = if registry == "index.docker.io" && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    let (identifier, name) = match digest {
        Some(d) => (d.to_string(), format!("{registry}/{repository}@{d}")),
        None => {
            let tag = tag.unwrap_or("latest");
            (tag.to_string(), format!("{registry}/{repository}:{tag}"))
        }
    };
    RefParts {
        registry: registry.to_string(),
        repository,
        identifier,
        name,
    }
}

/// The v1beta1 image ref a change records: its text and its policy.
fn image_ref_text(c: &Change) -> (String, String, String) {
    let mut parts = c.setter.splitn(3, ':');
    let namespace = parts.next().unwrap_or_default().to_string();
    let policy = parts.next().unwrap_or_default().to_string();
    let full_setter = parts.next().is_none();
    let text = if full_setter || c.image.is_empty() || c.new_tag.is_empty() {
        c.new.clone()
    } else {
        format!("{}:{}", c.image, c.new_tag)
    };
    (text, namespace, policy)
}

fn image_ref(text: &str, namespace: &str, policy: &str) -> Val {
    let parts = parse_image_ref(text);
    let mut json = String::from("{\"Reference\":");
    json_string(text, &mut json);
    json.push('}');
    Val::Struct(Rc::new(Struct {
        ty: "update.ImageRef",
        fields: vec![
            method("Identifier", Val::str(&parts.identifier)),
            method("Repository", Val::str(&parts.repository)),
            method("Registry", Val::str(&parts.registry)),
            method("Name", Val::str(&parts.name)),
            method("Policy", namespaced_name(namespace, policy)),
        ],
        string: Some(text.to_string()),
        json: Some(json),
    }))
}

fn image_refs_by_object(changes: &[&Change]) -> Val {
    let entries = group_by_object(changes)
        .into_iter()
        .map(|(o, cs)| {
            let refs = cs
                .iter()
                .map(|c| {
                    let (text, ns, policy) = image_ref_text(c);
                    image_ref(&text, &ns, &policy)
                })
                .collect();
            (
                object_identifier(o),
                list_val("[]update.ImageRef", refs, false, None),
            )
        })
        .collect();
    map_val(
        "map[update.ObjectIdentifier][]update.ImageRef",
        "update.ObjectIdentifier",
        entries,
        list_val("[]update.ImageRef", Vec::new(), true, None),
        None,
    )
}

/// Flux v1beta1 `.Updated` (the old `update.Result`).
fn updated_data(ctx: &Context) -> Val {
    let files = group_by_file(&ctx.changes);
    let file_entries = files
        .iter()
        .map(|(file, changes)| {
            let result = struct_val(
                "update.FileResult",
                vec![plain("Objects", image_refs_by_object(changes))],
                None,
            );
            (Val::str(file), result)
        })
        .collect();
    let zero_file = struct_val(
        "update.FileResult",
        vec![plain("Objects", image_refs_by_object(&[]))],
        None,
    );
    let mut images: Vec<(String, String, String)> = Vec::new();
    for c in &ctx.changes {
        let r = image_ref_text(c);
        if !images.contains(&r) {
            images.push(r);
        }
    }
    images.sort();
    let image_vals = images
        .iter()
        .map(|(text, ns, policy)| image_ref(text, ns, policy))
        .collect();
    let all: Vec<&Change> = files.values().flatten().copied().collect();
    struct_val(
        "update.Result",
        vec![
            plain(
                "Files",
                map_val(
                    "map[string]update.FileResult",
                    "string",
                    file_entries,
                    zero_file,
                    None,
                ),
            ),
            method(
                "Images",
                list_val("[]update.ImageRef", image_vals, images.is_empty(), None),
            ),
            method("Objects", image_refs_by_object(&all)),
        ],
        None,
    )
}

/// Argo's `ImageName`: the image without a registry host (a first path
/// component containing a `.`).
fn argo_image_name(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, rest)) if first.contains('.') => rest,
        _ => image,
    }
}

/// Argo's change list: one entry per distinct (image, old tag, new tag).
fn argo_changes(ctx: &Context) -> Vec<(&str, &str, &str)> {
    let mut out: Vec<(&str, &str, &str)> = Vec::new();
    for c in &ctx.changes {
        let entry = (
            argo_image_name(&c.image),
            c.old_tag.as_str(),
            c.new_tag.as_str(),
        );
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

fn string_map(ty: &'static str, values: &BTreeMap<String, String>) -> Val {
    let entries = values
        .iter()
        .map(|(k, v)| (Val::str(k), Val::str(v)))
        .collect();
    map_val(ty, "string", entries, Val::str(""), None)
}

fn message_data(ctx: &Context) -> Val {
    let (namespace, name) = ctx
        .automation
        .as_ref()
        .map_or(("", ""), |(ns, n)| (ns.as_str(), n.as_str()));
    let updated = updated_data(ctx);
    let app_changes = argo_changes(ctx)
        .into_iter()
        .map(|(image, old, new)| {
            struct_val(
                "argocd.commitMessageChange",
                vec![
                    plain("Image", Val::str(image)),
                    plain("OldTag", Val::str(old)),
                    plain("NewTag", Val::str(new)),
                    plain("Labels", string_map("map[string]string", &BTreeMap::new())),
                ],
                None,
            )
        })
        .collect();
    struct_val(
        "source.TemplateData",
        vec![
            plain("AutomationObject", namespaced_name(namespace, name)),
            plain("Updated", updated.clone()),
            plain("Changed", changed_data(ctx, updated)),
            plain("Values", string_map("map[string]string", &ctx.values)),
            plain("AppName", Val::str(&ctx.app_name)),
            plain(
                "AppChanges",
                list_val("[]argocd.commitMessageChange", app_changes, false, None),
            ),
        ]
        .into_iter()
        .filter(|f| !(ctx.flux_v1 && f.name == "Updated"))
        .collect(),
        None,
    )
}

fn branch_data(ctx: &Context) -> Val {
    let mut hasher = Sha256::new();
    let mut images = Vec::new();
    for (image, old, new) in argo_changes(ctx) {
        hasher.update(format!("{image}-{old}-{new},").as_bytes());
        images.push(struct_val(
            "argocd.imageChange",
            vec![
                plain("Name", Val::str(image)),
                plain("Alias", Val::str("")),
                plain("OldTag", Val::str(old)),
                plain("NewTag", Val::str(new)),
            ],
            None,
        ));
    }
    let mut sha = String::with_capacity(64);
    for byte in hasher.finalize().iter() {
        let _ = write!(sha, "{byte:02x}");
    }
    struct_val(
        "argocd.branchNameTemplate",
        vec![
            plain(
                "Images",
                list_val("[]argocd.imageChange", images, false, None),
            ),
            plain("SHA256", Val::str(&sha)),
            plain("AppName", Val::str(&ctx.app_name)),
        ],
        None,
    )
}

// ---------------------------------------------------------------------------
// Parsing, and the checks Go's parser makes that gotmpl's does not.
// ---------------------------------------------------------------------------

struct Parsed {
    root: ListNode,
    defines: BTreeMap<String, ListNode>,
}

fn parse_error(name: &str, line: usize, message: impl Into<String>) -> TemplateError {
    TemplateError::Parse {
        name: name.to_string(),
        line,
        message: message.into(),
    }
}

fn parse_template(name: &str, src: &str) -> Result<Parsed, TemplateError> {
    let from_gotmpl = |e: gotmpl::TemplateError| match e {
        gotmpl::TemplateError::Parse { line, message, .. }
        | gotmpl::TemplateError::Lex { line, message, .. } => parse_error(name, line, message),
        other => parse_error(name, 1, other.to_string()),
    };
    // Lex first (so the structure scan sees well-formed actions), then
    // check the block structure, then parse.
    let parser = Parser::with_name(Some(name), src, "{{", "}}").map_err(from_gotmpl)?;
    check_structure(name, src)?;
    let (mut root, defs) = parser.parse().map_err(from_gotmpl)?;
    let mut defines: BTreeMap<String, ListNode> = BTreeMap::new();
    for def in defs {
        let key = def.name.to_string();
        if let Some(previous) = defines.get(&key) {
            if def.body.is_empty_tree() {
                continue;
            }
            if !previous.is_empty_tree() {
                return Err(parse_error(
                    name,
                    def.pos.line,
                    format!(
                        "template: multiple definition of template {}",
                        go_quote(&key)
                    ),
                ));
            }
        }
        defines.insert(key, def.body);
    }
    // As in Go, the template is also defined under its own name; a
    // `{{define}}` of that name replaces an empty body.
    match defines.get(name) {
        Some(body) if root.is_empty_tree() => root = body.clone(),
        Some(body) if !body.is_empty_tree() => {
            return Err(parse_error(
                name,
                1,
                format!(
                    "template: multiple definition of template {}",
                    go_quote(name)
                ),
            ));
        }
        _ => {
            defines.insert(name.to_string(), root.clone());
        }
    }
    let checker = Checker { name };
    checker.list(&root, &mut vec!["$".to_string()])?;
    for body in defines.values() {
        checker.list(body, &mut vec!["$".to_string()])?;
    }
    Ok(Parsed { root, defines })
}

/// The block structure Go's parser enforces (gotmpl accepts a missing
/// `{{end}}`, and stops silently at a stray one): scans the actions'
/// leading keywords.
fn check_structure(name: &str, src: &str) -> Result<(), TemplateError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Open {
        If,
        Range,
        With,
        Define,
        Block,
    }
    let bytes = src.as_bytes();
    let is_space = |b: Option<&u8>| matches!(b, Some(b' ' | b'\t' | b'\r' | b'\n'));
    let word_at = |p: usize| {
        let len = bytes[p.min(bytes.len())..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        (&src[p..p + len], p + len)
    };
    let mut stack: Vec<(Open, bool)> = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while let Some(offset) = src[i..].find("{{") {
        let start = i + offset;
        line += src[i..start].matches('\n').count();
        let mut p = start + 2;
        if bytes.get(p) == Some(&b'-') && is_space(bytes.get(p + 1)) {
            p += 1;
        }
        while is_space(bytes.get(p)) {
            p += 1;
        }
        let (word, after) = word_at(p);
        let mut k = if src[p..].starts_with("/*") {
            match src[p + 2..].find("*/") {
                Some(e) => p + 2 + e + 2,
                None => return Ok(()),
            }
        } else {
            after
        };
        // Find the closing delimiter, skipping quoted text.
        loop {
            match bytes.get(k) {
                None => return Ok(()),
                Some(&q @ (b'"' | b'\'')) => {
                    k += 1;
                    while let Some(&c) = bytes.get(k) {
                        k += if c == b'\\' { 2 } else { 1 };
                        if c == q {
                            break;
                        }
                    }
                }
                Some(b'`') => {
                    k += 1;
                    while let Some(&c) = bytes.get(k) {
                        k += 1;
                        if c == b'`' {
                            break;
                        }
                    }
                }
                Some(b'}') if bytes.get(k + 1) == Some(&b'}') => {
                    k += 2;
                    break;
                }
                Some(_) => k += 1,
            }
        }
        let k = k.min(src.len());
        let keyword_line = line;
        line += src[start..k].matches('\n').count();
        i = k;
        if src[p..].starts_with("/*") {
            continue;
        }
        let fail = |message: &str| Err(parse_error(name, keyword_line, message));
        match word {
            "if" => stack.push((Open::If, false)),
            "range" => stack.push((Open::Range, false)),
            "with" => stack.push((Open::With, false)),
            "block" => stack.push((Open::Block, false)),
            "define" => {
                if !stack.is_empty() {
                    return fail("unexpected <define> in command");
                }
                stack.push((Open::Define, false));
            }
            "end" => match stack.pop() {
                Some(_) => {}
                None => return fail("unexpected {{end}}"),
            },
            "else" => {
                let mut q = after;
                while is_space(bytes.get(q)) {
                    q += 1;
                }
                let chained = word_at(q).0;
                match stack.last_mut() {
                    None => return fail("unexpected {{else}}"),
                    Some((Open::Define, _)) => return fail("unexpected {{else}} in define clause"),
                    Some((Open::Block, _)) => return fail("unexpected {{else}} in block clause"),
                    Some((_, true)) => return fail("expected end; found {{else}}"),
                    Some((kind, else_seen)) => {
                        let chain = (*kind == Open::If && chained == "if")
                            || (*kind == Open::With && chained == "with");
                        if !chain {
                            if chained == "if" || chained == "with" {
                                return fail(&format!("unexpected <{chained}> in input"));
                            }
                            *else_seen = true;
                        }
                    }
                }
            }
            "break" | "continue"
                if !stack
                    .iter()
                    .any(|&(b, else_seen)| b == Open::Range && !else_seen) =>
            {
                return fail(&format!("{{{{{word}}}}} outside {{{{range}}}}"));
            }
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(parse_error(
            name,
            1 + src.matches('\n').count(),
            "unexpected EOF",
        ));
    }
    Ok(())
}

/// Go's parse-time checks on the tree: functions exist, variables are
/// declared, later pipeline stages are executable.
struct Checker<'a> {
    name: &'a str,
}

impl Checker<'_> {
    fn list(&self, list: &ListNode, vars: &mut Vec<String>) -> Result<(), TemplateError> {
        for node in &list.nodes {
            match node {
                Node::Action(a) => self.pipe(&a.pipe, vars)?,
                Node::If(b) | Node::Range(b) | Node::With(b) => {
                    let mark = vars.len();
                    self.pipe(&b.pipe, vars)?;
                    self.list(&b.body, vars)?;
                    if let Some(e) = &b.else_body {
                        self.list(e, vars)?;
                    }
                    vars.truncate(mark);
                }
                Node::Template(t) => {
                    if let Some(p) = &t.pipe {
                        self.pipe(p, vars)?;
                    }
                }
                Node::List(l) => self.list(l, vars)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn pipe(&self, pipe: &PipeNode, vars: &mut Vec<String>) -> Result<(), TemplateError> {
        vars.extend(pipe.decl.iter().map(|d| d.to_string()));
        for (i, cmd) in pipe.commands.iter().enumerate() {
            if i > 0
                && matches!(
                    cmd.args.first(),
                    Some(
                        Expr::Bool(..)
                            | Expr::Dot(_)
                            | Expr::Nil(_)
                            | Expr::Number(..)
                            | Expr::String(..)
                    )
                )
            {
                return Err(parse_error(
                    self.name,
                    cmd.pos.line,
                    format!("non executable command in pipeline stage {}", i + 1),
                ));
            }
            for arg in &cmd.args {
                self.expr(arg, vars)?;
            }
        }
        Ok(())
    }

    fn expr(&self, expr: &Expr, vars: &mut Vec<String>) -> Result<(), TemplateError> {
        match expr {
            Expr::Identifier(pos, name) if func_sig(name).is_none() => Err(parse_error(
                self.name,
                pos.line,
                format!("function {} not defined", go_quote(name)),
            )),
            Expr::Variable(pos, name, _) if !vars.iter().any(|v| v == name.as_str()) => {
                Err(parse_error(
                    self.name,
                    pos.line,
                    format!("undefined variable {}", go_quote(name)),
                ))
            }
            Expr::Pipe(_, p) => self.pipe(p, vars),
            Expr::Chain(_, inner, _) => self.expr(inner, vars),
            _ => Ok(()),
        }
    }
}

// Node texts for error contexts, as Go's `Node.String()` writes them.

fn node_pos(node: &Node) -> Pos {
    match node {
        Node::List(l) => l.pos,
        Node::Text(t) => t.pos,
        Node::Action(a) => a.pos,
        Node::If(b) | Node::Range(b) | Node::With(b) => b.pos,
        Node::Template(t) => t.pos,
        Node::Define(d) => d.pos,
        Node::Break(p) | Node::Continue(p) => *p,
    }
}

fn number_text(n: &Number) -> String {
    match n {
        Number::Int(i) => i.to_string(),
        Number::Uint(u) => u.to_string(),
        Number::Float(f) => go_float(*f),
    }
}

fn fields_text(fields: &[gotmpl::parse::SmolStr]) -> String {
    fields.iter().map(|f| format!(".{f}")).collect()
}

fn expr_text(e: &Expr) -> String {
    match e {
        Expr::Dot(_) => ".".to_string(),
        Expr::Field(_, f) => fields_text(f),
        Expr::Variable(_, name, f) => format!("{name}{}", fields_text(f)),
        Expr::Identifier(_, name) => name.to_string(),
        Expr::String(_, s) => go_quote(s),
        Expr::Number(_, n) => number_text(n),
        Expr::Bool(_, b) => b.to_string(),
        Expr::Nil(_) => "nil".to_string(),
        Expr::Pipe(_, p) => format!("({})", pipe_text(p)),
        Expr::Chain(_, inner, f) => format!("{}{}", expr_text(inner), fields_text(f)),
    }
}

fn command_text(c: &CommandNode) -> String {
    c.args.iter().map(expr_text).collect::<Vec<_>>().join(" ")
}

fn pipe_text(p: &PipeNode) -> String {
    let mut out = String::new();
    if !p.decl.is_empty() {
        out.push_str(&p.decl.join(", "));
        out.push_str(if p.is_assign { " = " } else { " := " });
    }
    out.push_str(
        &p.commands
            .iter()
            .map(command_text)
            .collect::<Vec<_>>()
            .join(" | "),
    );
    out
}

fn list_text(l: &ListNode) -> String {
    let mut out = String::new();
    for node in &l.nodes {
        match node {
            Node::Text(t) => out.push_str(&t.text),
            Node::Action(a) => {
                let _ = write!(out, "{{{{{}}}}}", pipe_text(&a.pipe));
            }
            Node::If(b) => out.push_str(&branch_text("if", b)),
            Node::Range(b) => out.push_str(&branch_text("range", b)),
            Node::With(b) => out.push_str(&branch_text("with", b)),
            Node::Template(t) => {
                let _ = write!(out, "{{{{template {}", go_quote(&t.name));
                if let Some(p) = &t.pipe {
                    let _ = write!(out, " {}", pipe_text(p));
                }
                out.push_str("}}");
            }
            Node::Break(_) => out.push_str("{{break}}"),
            Node::Continue(_) => out.push_str("{{continue}}"),
            Node::List(l) => out.push_str(&list_text(l)),
            Node::Define(_) => {}
        }
    }
    out
}

fn branch_text(keyword: &str, b: &BranchNode) -> String {
    let mut out = format!(
        "{{{{{keyword} {}}}}}{}",
        pipe_text(&b.pipe),
        list_text(&b.body)
    );
    if let Some(e) = &b.else_body {
        let _ = write!(out, "{{{{else}}}}{}", list_text(e));
    }
    out.push_str("{{end}}");
    out
}

// ---------------------------------------------------------------------------
// Execution, after Go's text/template/exec.go.
// ---------------------------------------------------------------------------

enum Flow {
    Normal,
    Break,
    Continue,
}

type Res<T> = Result<T, TemplateError>;

struct Exec<'a> {
    /// The parse name (Go's `ParseName`), used in locations.
    name: &'a str,
    src: &'a str,
    defines: &'a BTreeMap<String, ListNode>,
    vars: Vec<(String, Val)>,
    out: String,
    depth: usize,
    /// Steps taken so far, bounded by [`MAX_STEPS`].
    steps: usize,
    /// The template being executed (differs inside `{{template}}`).
    current: String,
}

impl Exec<'_> {
    fn error(&self, pos: Pos, context: String, message: String) -> TemplateError {
        let offset = pos.offset.min(self.src.len());
        let before = self.src.get(..offset).unwrap_or(self.src);
        let line = 1 + before.matches('\n').count();
        let column = match before.rfind('\n') {
            Some(i) => offset - (i + 1),
            None => offset,
        };
        let context = if context.len() > 20 {
            let cut: String = context.chars().take(20).collect();
            format!("{cut}...")
        } else {
            context
        };
        TemplateError::Exec {
            name: self.name.to_string(),
            line,
            column,
            template: self.current.clone(),
            context,
            message,
        }
    }

    fn expr_error(&self, e: &Expr, message: String) -> TemplateError {
        self.error(e.pos(), expr_text(e), message)
    }

    fn walk(&mut self, dot: &Val, list: &ListNode) -> Res<Flow> {
        for node in &list.nodes {
            match self.walk_node(dot, node)? {
                Flow::Normal => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Normal)
    }

    /// Counts one step of work; past [`MAX_STEPS`], or once the output is
    /// past [`MAX_OUTPUT`], the execution stops with an error at `pos`.
    fn step(&mut self, pos: Pos, context: impl FnOnce() -> String) -> Res<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(self.error(
                pos,
                context(),
                format!("the template takes more than {MAX_STEPS} steps; refusing to go on"),
            ));
        }
        if self.out.len() > MAX_OUTPUT {
            return Err(self.error(pos, context(), too_large("the output")));
        }
        Ok(())
    }

    fn walk_node(&mut self, dot: &Val, node: &Node) -> Res<Flow> {
        let flow = self.walk_node_unbounded(dot, node)?;
        self.step(node_pos(node), || {
            list_text(&ListNode {
                pos: node_pos(node),
                nodes: vec![node.clone()],
            })
        })?;
        Ok(flow)
    }

    fn walk_node_unbounded(&mut self, dot: &Val, node: &Node) -> Res<Flow> {
        match node {
            Node::Text(t) => self.out.push_str(&t.text),
            Node::Action(a) => {
                let v = self.eval_pipeline(dot, &a.pipe)?;
                if a.pipe.decl.is_empty() {
                    match v {
                        Val::Nil => self.out.push_str("<no value>"),
                        v => write_v(&mut self.out, &v),
                    }
                }
            }
            Node::If(b) => return self.walk_if_with(dot, b, false),
            Node::With(b) => return self.walk_if_with(dot, b, true),
            Node::Range(b) => return self.walk_range(dot, b),
            Node::Template(t) => {
                let defines = self.defines;
                // Go places a template node at its name.
                let name_at = self
                    .src
                    .get(t.pos.offset..)
                    .and_then(|s| s.find(['"', '`']));
                let pos = Pos::new(t.pos.offset + name_at.unwrap_or(0), t.pos.line);
                let context = || {
                    list_text(&ListNode {
                        pos: t.pos,
                        nodes: vec![node.clone()],
                    })
                };
                let Some(body) = defines.get(t.name.as_str()) else {
                    return Err(self.error(
                        pos,
                        context(),
                        format!("template {} not defined", go_quote(&t.name)),
                    ));
                };
                if self.depth >= MAX_TEMPLATE_DEPTH {
                    return Err(self.error(
                        pos,
                        context(),
                        format!("exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})"),
                    ));
                }
                let new_dot = match &t.pipe {
                    Some(p) => self.eval_pipeline(dot, p)?,
                    None => Val::Nil,
                };
                let vars =
                    std::mem::replace(&mut self.vars, vec![("$".to_string(), new_dot.clone())]);
                let current = std::mem::replace(&mut self.current, t.name.to_string());
                self.depth += 1;
                let result = self.walk(&new_dot, body);
                self.depth -= 1;
                self.vars = vars;
                self.current = current;
                result?;
            }
            Node::List(l) => return self.walk(dot, l),
            Node::Define(_) => {}
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_if_with(&mut self, dot: &Val, b: &BranchNode, with: bool) -> Res<Flow> {
        let mark = self.vars.len();
        let v = self.eval_pipeline(dot, &b.pipe)?;
        let flow = if truth(&v) {
            self.walk(if with { &v } else { dot }, &b.body)?
        } else if let Some(e) = &b.else_body {
            self.walk(dot, e)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn walk_range(&mut self, dot: &Val, b: &BranchNode) -> Res<Flow> {
        let mark = self.vars.len();
        let v = self.eval_pipeline(dot, &b.pipe)?;
        let inner = self.vars.len();
        let context = || branch_text("range", b);
        // Lazily: `range 9223372036854775807` must not allocate its items.
        let items: Box<dyn Iterator<Item = (Val, Val)>> = match &v {
            Val::List(l) => Box::new(
                l.items
                    .clone()
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| (Val::Int(i as i64), item)),
            ),
            Val::Map(m) => Box::new(m.entries.clone().into_iter()),
            Val::Int(n) => {
                if b.pipe.decl.len() > 1 {
                    return Err(self.error(
                        b.pipe.pos,
                        context(),
                        format!("can't use {n} to iterate over more than one variable"),
                    ));
                }
                Box::new((0..*n).map(|i| (Val::Int(i), Val::Int(i))))
            }
            Val::Nil => Box::new(std::iter::empty()),
            other => {
                return Err(self.error(
                    b.pipe.pos,
                    context(),
                    format!("range can't iterate over {}", sprint_v(other)),
                ));
            }
        };
        let mut items = items.peekable();
        if items.peek().is_none() {
            let flow = match &b.else_body {
                Some(e) => self.walk(dot, e)?,
                None => Flow::Normal,
            };
            self.vars.truncate(mark);
            return Ok(flow);
        }
        let decl = &b.pipe.decl;
        for (index, elem) in items {
            if b.pipe.is_assign {
                if decl.len() > 1 {
                    self.set_var(&decl[0], index, b.pipe.pos)?;
                    self.set_var(&decl[1], elem.clone(), b.pipe.pos)?;
                } else if let Some(d) = decl.first() {
                    self.set_var(d, elem.clone(), b.pipe.pos)?;
                }
            } else {
                if !decl.is_empty() {
                    self.vars[inner - 1].1 = elem.clone();
                }
                if decl.len() > 1 {
                    self.vars[inner - 2].1 = index;
                }
            }
            self.step(b.pipe.pos, context)?;
            let flow = self.walk(&elem, &b.body)?;
            self.vars.truncate(inner);
            if let Flow::Break = flow {
                break;
            }
        }
        self.vars.truncate(mark);
        Ok(Flow::Normal)
    }

    fn set_var(&mut self, name: &str, value: Val, pos: Pos) -> Res<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            Some(slot) => {
                slot.1 = value;
                Ok(())
            }
            None => Err(self.error(pos, name.to_string(), format!("undefined variable: {name}"))),
        }
    }

    fn var_value(&self, name: &str, e: &Expr) -> Res<Val> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.clone()),
            None => Err(self.expr_error(e, format!("undefined variable: {name}"))),
        }
    }

    fn eval_pipeline(&mut self, dot: &Val, pipe: &PipeNode) -> Res<Val> {
        let mut value: Option<Val> = None;
        for cmd in &pipe.commands {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Val::Nil);
        for d in &pipe.decl {
            if pipe.is_assign {
                self.set_var(d, value.clone(), pipe.pos)?;
            } else {
                self.vars.push((d.to_string(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, cmd: &CommandNode, fin: &Option<Val>) -> Res<()> {
        if cmd.args.len() > 1 || fin.is_some() {
            let first = &cmd.args[0];
            return Err(self.expr_error(
                first,
                format!("can't give argument to non-function {}", expr_text(first)),
            ));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Val, cmd: &CommandNode, fin: Option<Val>) -> Res<Val> {
        let Some(first) = cmd.args.first() else {
            return Err(self.error(cmd.pos, String::new(), "empty command".to_string()));
        };
        let extra = cmd.args.len() - 1 + usize::from(fin.is_some());
        match first {
            Expr::Field(_, fields) => self.eval_field_chain(first, dot.clone(), fields, extra),
            Expr::Chain(_, inner, fields) => {
                let receiver = self.eval_chain_receiver(dot, inner)?;
                self.eval_field_chain(first, receiver, fields, extra)
            }
            Expr::Identifier(pos, name) => {
                self.eval_function(dot, *pos, name, Some(cmd), &cmd.args[1..], fin)
            }
            Expr::Pipe(_, pipe) => {
                self.not_a_function(cmd, &fin)?;
                self.eval_pipeline(dot, pipe)
            }
            Expr::Variable(_, name, fields) => {
                let value = self.var_value(name, first)?;
                if fields.is_empty() {
                    self.not_a_function(cmd, &fin)?;
                    Ok(value)
                } else {
                    self.eval_field_chain(first, value, fields, extra)
                }
            }
            Expr::Bool(_, b) => {
                self.not_a_function(cmd, &fin)?;
                Ok(Val::Bool(*b))
            }
            Expr::Dot(_) => {
                self.not_a_function(cmd, &fin)?;
                Ok(dot.clone())
            }
            Expr::Nil(_) => {
                self.not_a_function(cmd, &fin)?;
                Err(self.expr_error(first, "nil is not a command".to_string()))
            }
            Expr::Number(_, n) => {
                self.not_a_function(cmd, &fin)?;
                self.ideal_constant(first, n)
            }
            Expr::String(_, s) => {
                self.not_a_function(cmd, &fin)?;
                Ok(Val::str(s))
            }
        }
    }

    fn eval_chain_receiver(&mut self, dot: &Val, inner: &Expr) -> Res<Val> {
        match inner {
            Expr::Pipe(_, p) => self.eval_pipeline(dot, p),
            Expr::Identifier(pos, name) => self.eval_function(dot, *pos, name, None, &[], None),
            other => self.eval_arg(dot, Param::Any, other),
        }
    }

    fn ideal_constant(&self, e: &Expr, n: &Number) -> Res<Val> {
        match n {
            Number::Int(i) => Ok(Val::Int(*i)),
            Number::Float(f) => Ok(Val::Float(*f)),
            Number::Uint(u) => Err(self.expr_error(e, format!("{u} overflows int"))),
        }
    }

    /// `.A.B.C` on `receiver`; `extra` counts the arguments given to the
    /// last element (which only methods may take).
    fn eval_field_chain(
        &self,
        node: &Expr,
        receiver: Val,
        fields: &[gotmpl::parse::SmolStr],
        extra: usize,
    ) -> Res<Val> {
        let mut value = receiver;
        for (i, field) in fields.iter().enumerate() {
            let args = if i + 1 == fields.len() { extra } else { 0 };
            value = self.eval_field(node, field, value, args)?;
        }
        Ok(value)
    }

    fn eval_field(&self, node: &Expr, name: &str, receiver: Val, extra: usize) -> Res<Val> {
        let fail = |message: String| Err(self.expr_error(node, message));
        if let Val::Nil = receiver {
            return Ok(Val::Nil);
        }
        let own_field = match &receiver {
            Val::Struct(s) => find_field(s, name).is_some(),
            _ => false,
        };
        if name == "String"
            && !own_field
            && let Some(s) = receiver.stringer()
        {
            if extra > 0 {
                return fail(format!(
                    "wrong number of args for String: want 0 got {extra}"
                ));
            }
            return Ok(Val::str(s));
        }
        match &receiver {
            Val::Struct(s) => match find_field(s, name) {
                Some(f) => match f.kind {
                    FieldKind::Method if extra > 0 => fail(format!(
                        "wrong number of args for {name}: want 0 got {extra}"
                    )),
                    FieldKind::Method => Ok(f.val.clone()),
                    _ if extra > 0 => fail(format!(
                        "{name} has arguments but cannot be invoked as function"
                    )),
                    _ => Ok(f.val.clone()),
                },
                None => fail(format!("can't evaluate field {name} in type {}", s.ty)),
            },
            Val::Map(m) if m.key_ty == "string" => {
                if extra > 0 {
                    return fail(format!("{name} is not a method but has arguments"));
                }
                Ok(m.entries
                    .iter()
                    .find(|(k, _)| matches!(k, Val::Str(k) if &**k == name))
                    .map_or(Val::Nil, |(_, v)| v.clone()))
            }
            other => fail(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            )),
        }
    }

    fn eval_function(
        &mut self,
        dot: &Val,
        pos: Pos,
        name: &str,
        cmd: Option<&CommandNode>,
        args: &[Expr],
        fin: Option<Val>,
    ) -> Res<Val> {
        let context = || cmd.map_or_else(|| name.to_string(), command_text);
        let Some(sig) = func_sig(name) else {
            return Err(self.error(
                pos,
                name.to_string(),
                format!("{} is not a defined function", go_quote(name)),
            ));
        };
        let given = args.len() + usize::from(fin.is_some());
        if sig.variadic.is_some() {
            if given < sig.fixed.len() {
                return Err(self.error(
                    pos,
                    name.to_string(),
                    format!(
                        "wrong number of args for {name}: want at least {} got {}",
                        sig.fixed.len(),
                        args.len()
                    ),
                ));
            }
        } else if given != sig.fixed.len() {
            return Err(self.error(
                pos,
                name.to_string(),
                format!(
                    "wrong number of args for {name}: want {} got {given}",
                    sig.fixed.len()
                ),
            ));
        }
        if name == "and" || name == "or" {
            let stop_on = name == "or";
            let mut value = Val::Nil;
            for arg in args {
                value = self.eval_arg(dot, Param::Any, arg)?;
                if truth(&value) == stop_on {
                    return Ok(value);
                }
            }
            if let Some(f) = fin {
                value = f;
            }
            return Ok(value);
        }
        let mut argv = Vec::with_capacity(given);
        for (i, arg) in args.iter().enumerate() {
            argv.push(self.eval_arg(dot, sig.param(i), arg)?);
        }
        if let Some(f) = fin {
            let param = sig.param(given - 1);
            let f = self
                .check_type(f, param)
                .map_err(|m| self.error(pos, context(), m))?;
            argv.push(f);
        }
        let result = (sig.imp)(&argv).and_then(|v| match &v {
            Val::Str(s) if s.len() > MAX_OUTPUT => Err(too_large("the result")),
            _ => Ok(v),
        });
        result.map_err(|m| {
            self.error(
                cmd.map_or(pos, |c| c.pos),
                context(),
                format!("error calling {name}: {m}"),
            )
        })
    }

    /// Go's `validateType`.
    fn check_type(&self, v: Val, param: Param) -> Result<Val, String> {
        match (param, &v) {
            (Param::Any, _) => Ok(v),
            (_, Val::Nil) => Err(format!("invalid value; expected {}", param.name())),
            (Param::Str, Val::Str(_)) | (Param::Int, Val::Int(_)) | (Param::Bool, Val::Bool(_)) => {
                Ok(v)
            }
            _ => Err(format!(
                "wrong type for value; expected {}; got {}",
                param.name(),
                v.type_name()
            )),
        }
    }

    /// Go's `evalArg`: an argument evaluated for a parameter type.
    fn eval_arg(&mut self, dot: &Val, param: Param, e: &Expr) -> Res<Val> {
        let value = match e {
            Expr::Dot(_) => dot.clone(),
            Expr::Nil(_) => {
                return match param {
                    Param::Any => Ok(Val::Nil),
                    _ => Err(self.expr_error(e, format!("cannot assign nil to {}", param.name()))),
                };
            }
            Expr::Field(_, fields) => self.eval_field_chain(e, dot.clone(), fields, 0)?,
            Expr::Variable(_, name, fields) => {
                let v = self.var_value(name, e)?;
                self.eval_field_chain(e, v, fields, 0)?
            }
            Expr::Pipe(_, p) => self.eval_pipeline(dot, p)?,
            Expr::Identifier(pos, name) => self.eval_function(dot, *pos, name, None, &[], None)?,
            Expr::Chain(_, inner, fields) => {
                let receiver = self.eval_chain_receiver(dot, inner)?;
                self.eval_field_chain(e, receiver, fields, 0)?
            }
            Expr::Bool(_, b) => {
                return match param {
                    Param::Any | Param::Bool => Ok(Val::Bool(*b)),
                    _ => Err(self.literal_mismatch(e, param)),
                };
            }
            Expr::String(_, s) => {
                return match param {
                    Param::Any | Param::Str => Ok(Val::str(s)),
                    _ => Err(self.literal_mismatch(e, param)),
                };
            }
            Expr::Number(_, n) => {
                return match (param, n) {
                    (Param::Any, n) => self.ideal_constant(e, n),
                    (Param::Int, Number::Int(i)) => Ok(Val::Int(*i)),
                    (Param::Int, Number::Float(f)) if f.fract() == 0.0 && f.abs() < 9.2e18 => {
                        Ok(Val::Int(*f as i64))
                    }
                    _ => Err(self.literal_mismatch(e, param)),
                };
            }
        };
        self.check_type(value, param)
            .map_err(|m| self.expr_error(e, m))
    }

    fn literal_mismatch(&self, e: &Expr, param: Param) -> TemplateError {
        let wanted = match param {
            Param::Int => "integer",
            other => other.name(),
        };
        self.expr_error(e, format!("expected {wanted}; found {}", expr_text(e)))
    }
}

// ---------------------------------------------------------------------------
// Functions: Go's builtins and the Sprig subset.
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Param {
    Any,
    Str,
    Int,
    Bool,
}

impl Param {
    fn name(self) -> &'static str {
        match self {
            Param::Any => "interface {}",
            Param::Str => "string",
            Param::Int => "int",
            Param::Bool => "bool",
        }
    }
}

type Imp = fn(&[Val]) -> Result<Val, String>;

struct Sig {
    fixed: &'static [Param],
    variadic: Option<Param>,
    imp: Imp,
}

impl Sig {
    fn param(&self, i: usize) -> Param {
        self.fixed
            .get(i)
            .copied()
            .or(self.variadic)
            .unwrap_or(Param::Any)
    }
}

fn func_sig(name: &str) -> Option<Sig> {
    use Param::{Any, Bool, Int, Str};
    let (fixed, variadic, imp): (&'static [Param], Option<Param>, Imp) = match name {
        // Go's builtins. `and`/`or` are evaluated lazily by the executor.
        "and" | "or" => (&[Any], Some(Any), |_| Ok(Val::Nil)),
        "not" => (&[Any], None, |a| Ok(Val::Bool(!truth(&a[0])))),
        "len" => (&[Any], None, f_len),
        "index" => (&[Any], Some(Any), f_index),
        "slice" => (&[Any], Some(Any), f_slice),
        "call" => (&[Any], Some(Any), f_call),
        "print" => (&[], Some(Any), |a| Ok(Val::str(&sprint(a)))),
        "println" => (&[], Some(Any), f_println),
        "printf" => (&[Str], Some(Any), f_printf),
        "html" => (&[], Some(Any), |a| {
            Ok(Val::str(&gotmpl::html_escape(&eval_args(a))))
        }),
        "js" => (&[], Some(Any), |a| {
            Ok(Val::str(&gotmpl::js_escape(&eval_args(a))))
        }),
        "urlquery" => (&[], Some(Any), |a| {
            Ok(Val::str(&gotmpl::url_encode(&eval_args(a))))
        }),
        "eq" => (&[Any], Some(Any), f_eq),
        "ne" => (&[Any, Any], None, |a| {
            f_eq(a).map(|v| Val::Bool(!truth(&v)))
        }),
        "lt" => (&[Any, Any], None, |a| less(&a[0], &a[1]).map(Val::Bool)),
        "le" => (&[Any, Any], None, |a| f_le(a).map(Val::Bool)),
        "gt" => (&[Any, Any], None, |a| f_le(a).map(|b| Val::Bool(!b))),
        "ge" => (&[Any, Any], None, |a| {
            less(&a[0], &a[1]).map(|b| Val::Bool(!b))
        }),
        // Sprig.
        "upper" => (&[Str], None, |a| {
            Ok(Val::str(&map_chars(&strval(&a[0]), true)))
        }),
        "lower" => (&[Str], None, |a| {
            Ok(Val::str(&map_chars(&strval(&a[0]), false)))
        }),
        "title" => (&[Str], None, |a| Ok(Val::str(&title(&strval(&a[0]))))),
        "trim" => (&[Str], None, |a| {
            Ok(Val::str(strval(&a[0]).trim_matches(go_space)))
        }),
        "nospace" => (&[Str], None, |a| {
            Ok(Val::str(&strval(&a[0]).replace(go_space, "")))
        }),
        "trimAll" => (&[Str, Str], None, |a| {
            let cutset = strval(&a[0]);
            Ok(Val::str(strval(&a[1]).trim_matches(|c| cutset.contains(c))))
        }),
        "trimPrefix" => (&[Str, Str], None, |a| {
            let (prefix, s) = (strval(&a[0]), strval(&a[1]));
            Ok(Val::str(s.strip_prefix(prefix.as_str()).unwrap_or(&s)))
        }),
        "trimSuffix" => (&[Str, Str], None, |a| {
            let (suffix, s) = (strval(&a[0]), strval(&a[1]));
            Ok(Val::str(s.strip_suffix(suffix.as_str()).unwrap_or(&s)))
        }),
        "replace" => (&[Str, Str, Str], None, |a| {
            let (old, new, s) = (strval(&a[0]), strval(&a[1]), strval(&a[2]));
            let matches = if old.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(old.as_str()).count()
            };
            bounded(matches.checked_mul(new.len()), s.len(), "the result")?;
            Ok(Val::str(&s.replace(&old, &new)))
        }),
        "contains" => (&[Str, Str], None, |a| {
            Ok(Val::Bool(strval(&a[1]).contains(&strval(&a[0]))))
        }),
        "hasPrefix" => (&[Str, Str], None, |a| {
            Ok(Val::Bool(strval(&a[1]).starts_with(&strval(&a[0]))))
        }),
        "hasSuffix" => (&[Str, Str], None, |a| {
            Ok(Val::Bool(strval(&a[1]).ends_with(&strval(&a[0]))))
        }),
        "quote" => (&[], Some(Any), |a| {
            let quoted: Vec<String> = a
                .iter()
                .filter(|v| !matches!(v, Val::Nil))
                .map(|v| go_quote(&strval(v)))
                .collect();
            Ok(Val::str(&quoted.join(" ")))
        }),
        "squote" => (&[], Some(Any), |a| {
            let quoted: Vec<String> = a
                .iter()
                .filter(|v| !matches!(v, Val::Nil))
                .map(|v| format!("'{}'", sprint_v(v)))
                .collect();
            Ok(Val::str(&quoted.join(" ")))
        }),
        "cat" => (&[], Some(Any), |a| {
            let parts: Vec<String> = a
                .iter()
                .filter(|v| !matches!(v, Val::Nil))
                .map(sprint_v)
                .collect();
            Ok(Val::str(&parts.join(" ")))
        }),
        "toString" => (&[Any], None, |a| Ok(Val::str(&strval(&a[0])))),
        "default" => (&[Any], Some(Any), |a| match a.get(1) {
            Some(given) if !empty(given) => Ok(given.clone()),
            _ => Ok(a[0].clone()),
        }),
        "empty" => (&[Any], None, |a| Ok(Val::Bool(empty(&a[0])))),
        "coalesce" => (&[], Some(Any), |a| {
            Ok(a.iter().find(|v| !empty(v)).cloned().unwrap_or(Val::Nil))
        }),
        "ternary" => (&[Any, Any, Bool], None, |a| {
            Ok(if truth(&a[2]) {
                a[0].clone()
            } else {
                a[1].clone()
            })
        }),
        "join" => (&[Str, Any], None, |a| {
            let (sep, items) = (strval(&a[0]), strslice(&a[1]));
            let total = items.iter().map(String::len).sum::<usize>();
            bounded(items.len().checked_mul(sep.len()), total, "the result")?;
            Ok(Val::str(&items.join(&sep)))
        }),
        "splitList" => (&[Str, Str], None, |a| {
            let parts = go_split(&strval(&a[1]), &strval(&a[0]));
            Ok(list_val(
                "[]string",
                parts.iter().map(|p| Val::str(p)).collect(),
                false,
                None,
            ))
        }),
        "list" => (&[], Some(Any), |a| {
            Ok(list_val("[]interface {}", a.to_vec(), a.is_empty(), None))
        }),
        "first" => (&[Any], None, |a| f_first_last(&a[0], true)),
        "last" => (&[Any], None, |a| f_first_last(&a[0], false)),
        "uniq" => (&[Any], None, f_uniq),
        "sortAlpha" => (&[Any], None, |a| {
            let mut items = match &a[0] {
                Val::List(_) => strslice(&a[0]),
                other => vec![strval(other)],
            };
            items.sort();
            Ok(list_val(
                "[]string",
                items.iter().map(|s| Val::str(s)).collect(),
                false,
                None,
            ))
        }),
        "indent" => (&[Int, Str], None, |a| Ok(Val::str(&indent(&a[0], &a[1])?))),
        "nindent" => (&[Int, Str], None, |a| {
            Ok(Val::str(&format!("\n{}", indent(&a[0], &a[1])?)))
        }),
        "repeat" => (&[Int, Str], None, |a| {
            let count = usize::try_from(int(&a[0]))
                .map_err(|_| "strings: negative Repeat count".to_string())?;
            let s = strval(&a[1]);
            bounded(count.checked_mul(s.len()), 0, "the result")?;
            Ok(Val::str(&s.repeat(count)))
        }),
        "substr" => (&[Int, Int, Str], None, f_substr),
        "trunc" => (&[Int, Str], None, f_trunc),
        "abbrev" => (&[Int, Str], None, f_abbrev),
        "toJson" => (&[Any], None, |a| {
            let mut out = String::new();
            if to_json(&a[0], &mut out).is_err() {
                out.clear();
            }
            Ok(Val::str(&out))
        }),
        _ => return None,
    };
    Some(Sig {
        fixed,
        variadic,
        imp,
    })
}

/// `Err` unless `extra` (`None`: it overflowed) plus `base` bytes fit in
/// [`MAX_OUTPUT`]; checked before a string is built, never after.
fn bounded(extra: Option<usize>, base: usize, what: &str) -> Result<(), String> {
    match extra.and_then(|e| e.checked_add(base)) {
        Some(size) if size <= MAX_OUTPUT => Ok(()),
        _ => Err(too_large(what)),
    }
}

fn too_large(what: &str) -> String {
    format!("{what} would be larger than {MAX_OUTPUT} bytes, the limit of a template's output")
}

fn int(v: &Val) -> i64 {
    match v {
        Val::Int(i) => *i,
        _ => 0,
    }
}

fn f_len(a: &[Val]) -> Result<Val, String> {
    match &a[0] {
        Val::Str(s) => Ok(Val::Int(s.len() as i64)),
        Val::List(l) => Ok(Val::Int(l.items.len() as i64)),
        Val::Map(m) => Ok(Val::Int(m.entries.len() as i64)),
        Val::Nil => Err("reflect: call of reflect.Value.Type on zero Value".to_string()),
        other => Err(format!("len of type {}", other.type_name())),
    }
}

/// An index for `index`/`slice`, checked against `cap`.
fn index_arg(index: &Val, cap: usize) -> Result<usize, String> {
    match index {
        Val::Int(x) if *x < 0 || *x as u64 > cap as u64 => Err(format!("index out of range: {x}")),
        Val::Int(x) => Ok(*x as usize),
        Val::Nil => Err("cannot index slice/array with nil".to_string()),
        other => Err(format!(
            "cannot index slice/array with type {}",
            other.type_name()
        )),
    }
}

fn f_index(a: &[Val]) -> Result<Val, String> {
    let mut item = a[0].clone();
    if let Val::Nil = item {
        return Err("index of untyped nil".to_string());
    }
    for index in &a[1..] {
        item = match &item {
            Val::List(l) => {
                let i = index_arg(index, l.items.len())?;
                l.items
                    .get(i)
                    .cloned()
                    .ok_or_else(|| "reflect: slice index out of range".to_string())?
            }
            Val::Str(s) => {
                let i = index_arg(index, s.len())?;
                let byte = s
                    .as_bytes()
                    .get(i)
                    .ok_or_else(|| "reflect: string index out of range".to_string())?;
                Val::Int(i64::from(*byte))
            }
            Val::Map(m) => {
                let key_ok = match index {
                    Val::Str(_) => m.key_ty == "string",
                    Val::Struct(s) => s.ty == m.key_ty,
                    _ => false,
                };
                if let Val::Nil = index {
                    return Err(format!("value is nil; should be of type {}", m.key_ty));
                }
                if !key_ok {
                    return Err(format!(
                        "value has type {}; should be {}",
                        index.type_name(),
                        m.key_ty
                    ));
                }
                m.entries
                    .iter()
                    .find(|(k, _)| deep_eq(k, index))
                    .map_or_else(|| m.zero.clone(), |(_, v)| v.clone())
            }
            Val::Nil => return Err("index of nil pointer".to_string()),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn f_slice(a: &[Val]) -> Result<Val, String> {
    let item = &a[0];
    let indexes = &a[1..];
    if let Val::Nil = item {
        return Err("slice of untyped nil".to_string());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match item {
        Val::Str(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".to_string());
            }
            s.len()
        }
        Val::List(l) => l.items.len(),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut idx = [0, len, len];
    for (i, index) in indexes.iter().enumerate() {
        idx[i] = index_arg(index, len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match item {
        Val::Str(s) => Val::str(&String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]])),
        Val::List(l) => list_val(l.ty, l.items[idx[0]..idx[1]].to_vec(), false, None),
        _ => Val::Nil,
    })
}

fn f_call(a: &[Val]) -> Result<Val, String> {
    match &a[0] {
        Val::Nil => Err("call of nil".to_string()),
        other => Err(format!("non-function of type {}", other.type_name())),
    }
}

fn f_println(a: &[Val]) -> Result<Val, String> {
    let mut out = String::new();
    for (i, v) in a.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_v(&mut out, v);
    }
    out.push('\n');
    Ok(Val::str(&out))
}

/// The text `html`, `js` and `urlquery` escape: a lone string as is, else
/// `fmt.Sprint` of the arguments, a missing value printing `<no value>`.
fn eval_args(a: &[Val]) -> String {
    if let [Val::Str(s)] = a {
        return s.to_string();
    }
    let shown: Vec<Val> = a
        .iter()
        .map(|v| match v {
            Val::Nil => Val::str("<no value>"),
            v => v.clone(),
        })
        .collect();
    sprint(&shown)
}

#[derive(PartialEq)]
enum BasicKind {
    Bool,
    Int,
    Float,
    Str,
}

fn basic_kind(v: &Val) -> Option<BasicKind> {
    match v {
        Val::Bool(_) => Some(BasicKind::Bool),
        Val::Int(_) => Some(BasicKind::Int),
        Val::Float(_) => Some(BasicKind::Float),
        Val::Str(_) => Some(BasicKind::Str),
        _ => None,
    }
}

const BAD_COMPARISON: &str = "incompatible types for comparison";
const BAD_COMPARISON_TYPE: &str = "invalid type for comparison";

fn f_eq(a: &[Val]) -> Result<Val, String> {
    let first = &a[0];
    if a.len() < 2 {
        return Err("missing argument for comparison".to_string());
    }
    for other in &a[1..] {
        let equal = match (basic_kind(first), basic_kind(other)) {
            (Some(k1), Some(k2)) if k1 != k2 => return Err(BAD_COMPARISON.to_string()),
            (Some(_), Some(_)) => deep_eq(first, other),
            (Some(_), None) | (None, Some(_)) => {
                if matches!(first, Val::Nil) || matches!(other, Val::Nil) {
                    false
                } else {
                    return Err(BAD_COMPARISON.to_string());
                }
            }
            (None, None) => match (first, other) {
                (Val::Nil, _) | (_, Val::Nil) => {
                    matches!(first, Val::Nil) && matches!(other, Val::Nil)
                }
                (Val::Struct(x), Val::Struct(y)) if x.ty == y.ty => deep_eq(first, other),
                _ if first.type_name() != other.type_name() => {
                    return Err(format!(
                        "non-comparable types {}: {}, {}: {}",
                        sprint_v(first),
                        first.type_name(),
                        other.type_name(),
                        sprint_v(other)
                    ));
                }
                _ => {
                    return Err(format!(
                        "non-comparable type {}: {}",
                        sprint_v(other),
                        other.type_name()
                    ));
                }
            },
        };
        if equal {
            return Ok(Val::Bool(true));
        }
    }
    Ok(Val::Bool(false))
}

fn less(a: &Val, b: &Val) -> Result<bool, String> {
    let (Some(k1), Some(k2)) = (basic_kind(a), basic_kind(b)) else {
        return Err(BAD_COMPARISON_TYPE.to_string());
    };
    if k1 != k2 {
        return Err(BAD_COMPARISON.to_string());
    }
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => Ok(x < y),
        (Val::Float(x), Val::Float(y)) => Ok(x < y),
        (Val::Str(x), Val::Str(y)) => Ok(x.as_bytes() < y.as_bytes()),
        _ => Err(BAD_COMPARISON_TYPE.to_string()),
    }
}

fn f_le(a: &[Val]) -> Result<bool, String> {
    Ok(less(&a[0], &a[1])? || truth(&f_eq(a)?))
}

/// Sprig's `empty`.
fn empty(v: &Val) -> bool {
    match v {
        Val::Struct(_) => false,
        other => !truth(other),
    }
}

/// Sprig's `strslice`: the items of a list as strings (nils dropped).
fn strslice(v: &Val) -> Vec<String> {
    match v {
        Val::List(l) => l
            .items
            .iter()
            .filter(|i| !matches!(i, Val::Nil))
            .map(strval)
            .collect(),
        Val::Nil => Vec::new(),
        other => vec![strval(other)],
    }
}

/// `unicode.IsSpace`.
fn go_space(c: char) -> bool {
    c.is_whitespace()
}

/// `strings.ToUpper`/`ToLower`: Go maps rune by rune, so a character whose
/// full case mapping has several characters (`ß`) stays as it is.
fn map_chars(s: &str, upper: bool) -> String {
    s.chars()
        .map(|c| {
            let mut mapped: Vec<char> = if upper {
                c.to_uppercase().collect()
            } else {
                c.to_lowercase().collect()
            };
            if mapped.len() == 1 {
                mapped.remove(0)
            } else {
                c
            }
        })
        .collect()
}

/// `strings.Title`: upper-cases letters that follow a separator.
fn title(s: &str) -> String {
    let separator = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else if c.is_alphanumeric() {
            false
        } else {
            c.is_whitespace()
        }
    };
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if separator(prev) {
                map_chars(&c.to_string(), true).chars().next().unwrap_or(c)
            } else {
                c
            };
            prev = c;
            out
        })
        .collect()
}

/// `strings.Split`.
fn go_split(s: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        s.chars().map(String::from).collect()
    } else {
        s.split(sep).map(String::from).collect()
    }
}

fn f_first_last(v: &Val, first: bool) -> Result<Val, String> {
    match v {
        Val::List(l) => Ok(if first {
            l.items.first().cloned().unwrap_or(Val::Nil)
        } else {
            l.items.last().cloned().unwrap_or(Val::Nil)
        }),
        Val::Nil => {
            Err("runtime error: invalid memory address or nil pointer dereference".to_string())
        }
        other => Err(format!(
            "Cannot find {} on type {}",
            if first { "first" } else { "last" },
            other.kind_name()
        )),
    }
}

fn f_uniq(a: &[Val]) -> Result<Val, String> {
    match &a[0] {
        Val::List(l) => {
            let mut out: Vec<Val> = Vec::new();
            for item in &l.items {
                if !out.iter().any(|o| deep_eq(o, item)) {
                    out.push(item.clone());
                }
            }
            Ok(list_val("[]interface {}", out, false, None))
        }
        Val::Nil => {
            Err("runtime error: invalid memory address or nil pointer dereference".to_string())
        }
        other => Err(format!("Cannot find uniq on type {}", other.kind_name())),
    }
}

fn indent(spaces: &Val, s: &Val) -> Result<String, String> {
    let n =
        usize::try_from(int(spaces)).map_err(|_| "strings: negative Repeat count".to_string())?;
    let s = strval(s);
    let lines = s.matches('\n').count() + 1;
    bounded(n.checked_mul(lines), s.len(), "the result")?;
    let pad = " ".repeat(n);
    Ok(format!("{pad}{}", s.replace('\n', &format!("\n{pad}"))))
}

/// Go's `s[i:j]` on bytes, with Go's panic messages.
fn byte_slice(s: &str, start: Option<i64>, end: Option<i64>) -> Result<String, String> {
    let len = s.len() as i64;
    let (i, j) = (start.unwrap_or(0), end.unwrap_or(len));
    if j < 0 {
        return Err(format!("runtime error: slice bounds out of range [:{j}]"));
    }
    if j > len {
        return Err(format!(
            "runtime error: slice bounds out of range [:{j}] with length {len}"
        ));
    }
    if i < 0 || i > j {
        return Err(format!(
            "runtime error: slice bounds out of range [{i}:{j}]"
        ));
    }
    Ok(String::from_utf8_lossy(&s.as_bytes()[i as usize..j as usize]).into_owned())
}

fn f_substr(a: &[Val]) -> Result<Val, String> {
    let (start, end, s) = (int(&a[0]), int(&a[1]), strval(&a[2]));
    let len = s.len() as i64;
    let out = if start < 0 {
        byte_slice(&s, None, Some(end))?
    } else if end < 0 || end > len {
        byte_slice(&s, Some(start), None)?
    } else {
        byte_slice(&s, Some(start), Some(end))?
    };
    Ok(Val::str(&out))
}

fn f_trunc(a: &[Val]) -> Result<Val, String> {
    let (c, s) = (int(&a[0]), strval(&a[1]));
    let len = s.len() as i64;
    let out = if c < 0 && len + c > 0 {
        byte_slice(&s, Some(len + c), None)?
    } else if c >= 0 && len > c {
        byte_slice(&s, None, Some(c))?
    } else {
        s
    };
    Ok(Val::str(&out))
}

fn f_abbrev(a: &[Val]) -> Result<Val, String> {
    let (width, s) = (int(&a[0]), strval(&a[1]));
    if width < 4 || s.len() as i64 <= width {
        return Ok(Val::str(&s));
    }
    Ok(Val::str(&format!(
        "{}...",
        byte_slice(&s, None, Some(width - 3))?
    )))
}

// ---------------------------------------------------------------------------
// printf: Go's fmt.Sprintf. The format string, argument indexes, `*` and the
// MISSING/EXTRA/BADINDEX markers are handled here; a scalar is formatted by
// gotmpl's printf (one directive at a time); lists, maps, structs and
// Stringers are taken apart here, as Go's fmt does.
// ---------------------------------------------------------------------------

#[derive(Default, Clone)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<i64>,
    precision: Option<i64>,
}

fn f_printf(a: &[Val]) -> Result<Val, String> {
    let format = strval(&a[0]);
    Ok(Val::str(&go_sprintf(&format, &a[1..])?))
}

/// Parses a decimal number at `i` (Go's `parsenum`).
fn parse_num(f: &[u8], mut i: usize) -> (Option<i64>, usize) {
    let start = i;
    let mut n: i64 = 0;
    while i < f.len() && f[i].is_ascii_digit() {
        if n > 1_000_000 {
            return (None, i);
        }
        n = n * 10 + i64::from(f[i] - b'0');
        i += 1;
    }
    (if i > start { Some(n) } else { None }, i)
}

/// Go's `argNumber`: an explicit `[n]` index at `i`.
fn arg_number(
    f: &[u8],
    i: usize,
    arg_num: usize,
    n_args: usize,
    state: &mut (bool, bool),
) -> (usize, usize, bool) {
    // state: (reordered, good_arg_num)
    if i >= f.len() || f[i] != b'[' {
        return (arg_num, i, false);
    }
    state.0 = true;
    let Some(close) = f[i..].iter().position(|&b| b == b']') else {
        state.1 = false;
        return (arg_num, i + 1, false);
    };
    let (n, end) = parse_num(f, i + 1);
    match n {
        Some(n) if end == i + close && n >= 1 && (n as usize) <= n_args => {
            (n as usize - 1, i + close + 1, true)
        }
        Some(_) if end == i + close => {
            state.1 = false;
            (arg_num, i + close + 1, true)
        }
        _ => {
            state.1 = false;
            (arg_num, i + close + 1, false)
        }
    }
}

/// Go's `fmt.Sprintf`; `Err` once the result passes [`MAX_OUTPUT`].
fn go_sprintf(format: &str, args: &[Val]) -> Result<String, String> {
    let f = format.as_bytes();
    let mut out = String::new();
    let mut arg_num = 0;
    let mut state = (false, true);
    let mut i = 0;
    while i < f.len() {
        state.1 = true;
        let last = i;
        while i < f.len() && f[i] != b'%' {
            i += 1;
        }
        out.push_str(&format[last..i]);
        if i >= f.len() {
            break;
        }
        i += 1;
        let mut spec = Spec::default();
        while i < f.len() {
            match f[i] {
                b'#' => spec.sharp = true,
                b'0' => spec.zero = true,
                b'+' => spec.plus = true,
                b'-' => spec.minus = true,
                b' ' => spec.space = true,
                _ => break,
            }
            i += 1;
        }
        let mut after_index;
        (arg_num, i, after_index) = arg_number(f, i, arg_num, args.len(), &mut state);
        if i < f.len() && f[i] == b'*' {
            i += 1;
            match args.get(arg_num) {
                // Go's `tooLarge`: a width past a million is no width.
                Some(Val::Int(w)) if w.unsigned_abs() <= 1_000_000 => {
                    spec.width = Some(w.abs());
                    if *w < 0 {
                        spec.minus = true;
                        spec.zero = false;
                    }
                    arg_num += 1;
                }
                Some(_) => {
                    arg_num += 1;
                    out.push_str("%!(BADWIDTH)");
                }
                None => out.push_str("%!(BADWIDTH)"),
            }
            after_index = false;
        } else {
            let (w, next) = parse_num(f, i);
            spec.width = w;
            i = next;
            if after_index && w.is_some() {
                state.1 = false;
            }
        }
        if i + 1 < f.len() && f[i] == b'.' {
            i += 1;
            if after_index {
                state.1 = false;
            }
            (arg_num, i, after_index) = arg_number(f, i, arg_num, args.len(), &mut state);
            if i < f.len() && f[i] == b'*' {
                i += 1;
                match args.get(arg_num) {
                    Some(Val::Int(p)) if p.unsigned_abs() <= 1_000_000 => {
                        spec.precision = (*p >= 0).then_some(*p);
                        arg_num += 1;
                        if *p < 0 {
                            out.push_str("%!(BADPREC)");
                        }
                    }
                    Some(_) => {
                        arg_num += 1;
                        out.push_str("%!(BADPREC)");
                    }
                    None => out.push_str("%!(BADPREC)"),
                }
                after_index = false;
            } else {
                let (p, next) = parse_num(f, i);
                spec.precision = Some(p.unwrap_or(0));
                i = next;
            }
        }
        if !after_index {
            (arg_num, i, _) = arg_number(f, i, arg_num, args.len(), &mut state);
        }
        if i >= f.len() {
            out.push_str("%!(NOVERB)");
            break;
        }
        let verb = format[i..].chars().next().unwrap_or('%');
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
        } else if !state.1 {
            let _ = write!(out, "%!{verb}(BADINDEX)");
        } else if let Some(arg) = args.get(arg_num) {
            format_arg(&mut out, arg, verb, &spec);
            arg_num += 1;
            bounded(Some(out.len()), 0, "the result")?;
        } else {
            let _ = write!(out, "%!{verb}(MISSING)");
        }
    }
    if !state.0 && arg_num < args.len() {
        out.push_str("%!(EXTRA ");
        for (k, arg) in args[arg_num..].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            if let Val::Nil = arg {
                out.push_str("<nil>");
            } else {
                out.push_str(arg.type_name());
                out.push('=');
                write_v(&mut out, arg);
            }
        }
        out.push(')');
    }
    Ok(out)
}

fn directive(spec: &Spec, verb: char) -> String {
    let mut d = String::from("%");
    for (on, c) in [
        (spec.sharp, '#'),
        (spec.zero, '0'),
        (spec.plus, '+'),
        (spec.minus, '-'),
        (spec.space, ' '),
    ] {
        if on {
            d.push(c);
        }
    }
    if let Some(w) = spec.width {
        let _ = write!(d, "{w}");
    }
    if let Some(p) = spec.precision {
        let _ = write!(d, ".{p}");
    }
    d.push(verb);
    d
}

/// Formats one scalar with gotmpl's printf (Go's fmt for scalars).
fn gotmpl_format(spec: &Spec, verb: char, value: gotmpl::Value) -> String {
    let data = gotmpl::Value::from(BTreeMap::from([
        ("f".to_string(), gotmpl::Value::from(directive(spec, verb))),
        ("a".to_string(), value),
    ]));
    gotmpl::Template::new("printf")
        .parse("{{printf .f .a}}")
        .and_then(|t| t.execute_to_string(&data))
        .unwrap_or_else(|e| format!("%!{verb}(ERROR {e})"))
}

fn pad(out: &mut String, s: &str, spec: &Spec) {
    let width = spec.width.unwrap_or(0).max(0) as usize;
    let n = s.chars().count();
    if n >= width {
        out.push_str(s);
    } else if spec.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', width - n));
    } else {
        out.extend(std::iter::repeat_n(' ', width - n));
        out.push_str(s);
    }
}

/// Go's `printArg`/`printValue` for one argument.
fn format_arg(out: &mut String, arg: &Val, verb: char, spec: &Spec) {
    // `#` with %v asks for Go syntax, which only strings honour here.
    let plain_spec;
    let spec = if verb == 'v' && spec.sharp && !matches!(arg, Val::Str(_)) {
        plain_spec = Spec {
            sharp: false,
            ..spec.clone()
        };
        &plain_spec
    } else {
        spec
    };
    if verb == 'T' {
        pad(out, arg.type_name(), spec);
        return;
    }
    if let Some(s) = arg.stringer()
        && matches!(verb, 'v' | 's' | 'q' | 'x' | 'X')
    {
        format_arg(out, &Val::str(s), verb, spec);
        return;
    }
    match arg {
        Val::Nil => {
            if verb == 'v' {
                pad(out, "<nil>", spec);
            } else {
                let _ = write!(out, "%!{verb}(<nil>)");
            }
        }
        // Go's %v is %t, %d, %g and %s for these (%#v quotes a string);
        // gotmpl's own %v ignores the precision and prints floats as Rust does.
        Val::Bool(b) => {
            let verb = if verb == 'v' { 't' } else { verb };
            out.push_str(&gotmpl_format(spec, verb, gotmpl::Value::Bool(*b)));
        }
        Val::Int(i) => {
            let verb = if verb == 'v' { 'd' } else { verb };
            out.push_str(&gotmpl_format(spec, verb, gotmpl::Value::Int(*i)));
        }
        Val::Float(x) => {
            let verb = if verb == 'v' { 'g' } else { verb };
            out.push_str(&gotmpl_format(spec, verb, gotmpl::Value::Float(*x)));
        }
        Val::Str(s) if verb == 'q' && !spec.plus && !spec.sharp && spec.precision.is_none() => {
            pad(out, &go_quote(s), spec);
        }
        Val::Str(s) => {
            let verb = match verb {
                'v' if spec.sharp => 'q',
                'v' => 's',
                other => other,
            };
            out.push_str(&gotmpl_format(spec, verb, gotmpl::Value::from(&**s)));
        }
        Val::List(l) => {
            out.push('[');
            for (k, item) in l.items.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                format_arg(out, item, verb, spec);
            }
            out.push(']');
        }
        Val::Map(m) => {
            out.push_str("map[");
            for (k, (key, value)) in m.entries.iter().enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                format_arg(out, key, verb, spec);
                out.push(':');
                format_arg(out, value, verb, spec);
            }
            out.push(']');
        }
        Val::Struct(s) => {
            out.push('{');
            for (k, field) in data_fields(s).enumerate() {
                if k > 0 {
                    out.push(' ');
                }
                if spec.plus {
                    out.push_str(field.name);
                    out.push(':');
                }
                format_arg(out, &field.val, verb, spec);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    /// The run every file case renders. Its changes cover a full-image setter,
    /// a tag setter in a file that is not a Kubernetes resource, a second
    /// change in the same object, and the same image set in another file.
    fn context() -> Context {
        let podinfo = Object {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: "apps".into(),
            name: "podinfo".into(),
        };
        let backup = Object {
            api_version: "batch/v1".into(),
            kind: "CronJob".into(),
            namespace: "apps".into(),
            name: "podinfo-backup".into(),
        };
        let change = |file: &str,
                      setter: &str,
                      old: &str,
                      new: &str,
                      image: &str,
                      tags: (&str, &str),
                      object: &Object| Change {
            file: file.into(),
            setter: setter.into(),
            old: old.into(),
            new: new.into(),
            image: image.into(),
            old_tag: tags.0.into(),
            new_tag: tags.1.into(),
            object: object.clone(),
        };
        Context {
            automation: Some(("flux-system".into(), "apps".into())),
            flux_v1: false,
            values: BTreeMap::from([
                ("env".to_string(), "production".to_string()),
                ("team".to_string(), "platform".to_string()),
            ]),
            app_name: "podinfo".into(),
            changes: vec![
                change(
                    "apps/podinfo/deployment.yaml",
                    "flux-system:podinfo",
                    "ghcr.io/stefanprodan/podinfo:6.4.0",
                    "ghcr.io/stefanprodan/podinfo:6.5.0",
                    "ghcr.io/stefanprodan/podinfo",
                    ("6.4.0", "6.5.0"),
                    &podinfo,
                ),
                change(
                    "apps/redis/values.yaml",
                    "flux-system:redis:tag",
                    "7.2.3",
                    "7.2.4",
                    "redis",
                    ("7.2.3", "7.2.4"),
                    &Object::default(),
                ),
                change(
                    "apps/podinfo/deployment.yaml",
                    "flux-system:sidecar:tag",
                    "1.0.0",
                    "1.1.0",
                    "ghcr.io/acme/sidecar",
                    ("1.0.0", "1.1.0"),
                    &podinfo,
                ),
                change(
                    "apps/podinfo/cronjob.yaml",
                    "flux-system:podinfo",
                    "ghcr.io/stefanprodan/podinfo:6.4.0",
                    "ghcr.io/stefanprodan/podinfo:6.5.0",
                    "ghcr.io/stefanprodan/podinfo",
                    ("6.4.0", "6.5.0"),
                    &backup,
                ),
            ],
        }
    }

    #[derive(Clone, Copy, Debug)]
    enum Kind {
        /// `render_message` must print `.expected`.
        Message,
        /// `render_branch` must print `.expected`.
        Branch,
        /// `render_message` must fail; `.expected` holds the error and a newline.
        MessageError,
    }

    /// Every case of `testdata/templates/`: `NAME.tmpl` rendered against
    /// [`context`] must give `NAME.expected`, which is what Go's text/template
    /// (with Sprig) prints, worked out by hand from Go's documented behaviour;
    /// the less obvious ones are explained here.
    const CASES: &[(&str, Kind)] = &[
        // The example of the Flux docs. `{{ end -}}` also eats the blank line
        // before "Objects:", and each change line is followed by an empty line
        // (the inner range's body starts with the "\n" after its `}}` and ends
        // with the "\n" before `{{ end -}}`). Objects range in Go's key order
        // (apiVersion, kind, name, namespace), so the values file that is not
        // a resource (empty identifier) comes first and prints "-  ".
        ("flux-docs", Kind::Message),
        // One image per line; the podinfo ref set in two files is listed once.
        ("flux-updated-images", Kind::Message),
        // The v1beta1 example of the Flux 0.7.0 changelog, same trimming.
        ("flux-v1beta1-changelog", Kind::Message),
        // `.Changed.Changes` drops the cronjob change (same setter, old and new
        // value as the deployment's) and sorts by setter; printed whole it goes
        // through Flux's `Changes.String()` (`{OldValue:%q ...}`).
        ("flux-changed-methods", Kind::Message),
        // go-containerregistry's defaults: `redis` is
        // `index.docker.io/library/redis`.
        ("flux-image-ref", Kind::Message),
        // Argo's `.Image` is its ImageName (registry host dropped); podinfo,
        // updated in two files, is one change.
        ("argo-default", Kind::Message),
        // Argo's own test template; `index` of the empty `.Labels` is "".
        ("argo-labels", Kind::Message),
        // SHA-256 of "stefanprodan/podinfo-6.4.0-6.5.0,redis-7.2.3-7.2.4,acme/sidecar-1.0.0-1.1.0,".
        ("branch-sha256", Kind::Branch),
        ("branch-images", Kind::Branch),
        // 40 × "podinfo-" is 320 bytes, cut to 255 as Argo does.
        ("branch-truncated", Kind::Branch),
        // `index` of a missing key is the element's zero value ("") where the
        // field syntax gives `<no value>`, and `print` shows it as `<nil>`. An
        // ObjectIdentifier prints as its nested structs
        // `{{{apiVersion kind} {name namespace}}}`; `.Changed.Objects` and
        // `.Changed.FileChanges` print through Flux's `String()` methods
        // (objects by apiVersion, kind, namespace, name; files quoted).
        ("print-values", Kind::Message),
        // `{{-3}}` is the number -3, not a trim marker (that needs a space).
        ("trim", Kind::Message),
        // `range` over an int (Go 1.22), `break`/`continue` (Go 1.18), and
        // `and`/`or` returning the deciding operand.
        ("control", Kind::Message),
        // `=` assigns the variable of the enclosing scope; `:=` in `with`
        // shadows until `{{end}}`.
        ("variables", Kind::Message),
        // `{{template "nil"}}` runs with nil data: `{{.}}` is `<no value>`.
        ("define", Kind::Message),
        // `print` puts a space only between two non-strings; float constants
        // print as `%v` does (1e+06, 3); 'a' is 97; a string indexes to a byte.
        ("builtins-print", Kind::Message),
        // fmt's MISSING/EXTRA/NOVERB/BADINDEX markers; a verb applies to each
        // element of a slice (width included); a Stringer formats its String().
        ("builtins-printf", Kind::Message),
        ("builtins-compare", Kind::Message),
        // `index` of a missing key gives the zero value: a nil ObjectChanges,
        // whose `String()` is "{}". Struct keys index with a key from `range`.
        ("builtins-index", Kind::Message),
        // `html` of a missing value escapes "<no value>".
        ("builtins-escape", Kind::Message),
        ("sprig-upper", Kind::Message),
        ("sprig-lower", Kind::Message),
        // strings.Title: `-` separates words, `_` and digits do not.
        ("sprig-title", Kind::Message),
        ("sprig-trim", Kind::Message),
        ("sprig-trimAll", Kind::Message),
        ("sprig-trimPrefix", Kind::Message),
        // TrimSuffix removes one occurrence.
        ("sprig-trimSuffix", Kind::Message),
        // Replacing "" inserts around every character.
        ("sprig-replace", Kind::Message),
        ("sprig-contains", Kind::Message),
        ("sprig-hasPrefix", Kind::Message),
        ("sprig-hasSuffix", Kind::Message),
        // A nil argument is skipped; 3 becomes "3".
        ("sprig-quote", Kind::Message),
        ("sprig-squote", Kind::Message),
        ("sprig-default", Kind::Message),
        // A struct is never empty.
        ("sprig-empty", Kind::Message),
        // No non-empty argument: coalesce returns nil, printed `<no value>`.
        ("sprig-coalesce", Kind::Message),
        // Image refs join through their String().
        ("sprig-join", Kind::Message),
        // strings.Split("", ",") is [""].
        ("sprig-splitList", Kind::Message),
        ("sprig-list", Kind::Message),
        // `first` of an empty list is nil: `<no value>`.
        ("sprig-first", Kind::Message),
        ("sprig-last", Kind::Message),
        ("sprig-uniq", Kind::Message),
        // Byte order: "10" < "9" < "C" < "a".
        ("sprig-sortAlpha", Kind::Message),
        ("sprig-indent", Kind::Message),
        ("sprig-nindent", Kind::Message),
        ("sprig-repeat", Kind::Message),
        // A negative start means from 0, an end past the string means to its end.
        ("sprig-substr", Kind::Message),
        ("sprig-trunc", Kind::Message),
        // Width under 4 leaves the string alone.
        ("sprig-abbrev", Kind::Message),
        // encoding/json: `<` escaped, struct fields by their json tags
        // (omitempty), and a map keyed by structs cannot be marshalled, so
        // toJson gives "".
        ("sprig-toJson", Kind::Message),
        ("sprig-toString", Kind::Message),
        // Nil arguments are dropped.
        ("sprig-cat", Kind::Message),
        ("sprig-nospace", Kind::Message),
        ("sprig-ternary", Kind::Message),
        // Parse errors: `template: NAME:LINE: MESSAGE`.
        ("error-unknown-function", Kind::MessageError),
        ("error-unclosed-action", Kind::MessageError),
        // Reported on the line of the end of input.
        ("error-missing-end", Kind::MessageError),
        ("error-stray-end", Kind::MessageError),
        ("error-undefined-variable", Kind::MessageError),
        // Execution errors: `template: NAME:LINE:COL: executing "NAME" at
        // <NODE>: MESSAGE`, COL counting bytes from 0.
        ("error-missing-field", Kind::MessageError),
        ("error-field-of-string", Kind::MessageError),
        // A piped value of the wrong type is reported at the function name.
        ("error-wrong-type", Kind::MessageError),
        ("error-calling", Kind::MessageError),
        ("error-index-range", Kind::MessageError),
        // Go places a template node at its name (column 12) and cuts the
        // context after 20 bytes.
        ("error-template-not-defined", Kind::MessageError),
        ("error-break-outside-range", Kind::MessageError),
        ("error-non-executable", Kind::MessageError),
    ];

    fn dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/templates")
    }

    fn read(name: &str, ext: &str) -> String {
        let path = dir().join(format!("{name}.{ext}"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn file_cases() {
        let ctx = context();
        let mut failures = Vec::new();
        for &(name, kind) in CASES {
            let template = read(name, "tmpl");
            let expected = read(name, "expected");
            let got = match kind {
                Kind::Message => render_message(&template, &ctx).map_err(|e| e.to_string()),
                Kind::Branch => render_branch(&template, &ctx).map_err(|e| e.to_string()),
                Kind::MessageError => match render_message(&template, &ctx) {
                    Ok(out) => Err(format!("rendered {out:?}")),
                    Err(e) => Ok(format!("{e}\n")),
                },
            };
            match got {
                Ok(got) if got == expected => {}
                Ok(got) => failures.push(format!("{name}: got\n{got}\n--- expected\n{expected}")),
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n=====\n"));
    }

    #[test]
    fn every_file_is_a_case() {
        let mut names: Vec<String> = std::fs::read_dir(dir())
            .expect("testdata/templates")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for file in names {
            let (stem, ext) = file.rsplit_once('.').expect("extension");
            assert!(matches!(ext, "tmpl" | "expected"), "{file}");
            assert!(
                CASES.iter().any(|(n, _)| *n == stem),
                "{file} is not in CASES"
            );
        }
    }

    fn one_change(image: &str, old: &str, new: &str) -> Context {
        Context {
            changes: vec![Change {
                file: "kustomization.yaml".into(),
                setter: "argocd:app:tag".into(),
                old: old.into(),
                new: new.into(),
                image: image.into(),
                old_tag: old.into(),
                new_tag: new.into(),
                object: Object::default(),
            }],
            ..Context::default()
        }
    }

    #[test]
    fn branch_sha256_matches_argo() {
        // The vector of Argo CD Image Updater's Test_TemplateBranchName.
        let ctx = one_change("foo/bar", "1.0", "1.1");
        assert_eq!(
            render_branch("image-updater-{{.SHA256}}", &ctx).unwrap(),
            "image-updater-0fcc2782543e4bb067c174c21bf44eb947f3e55c0d62c403e359c1c209cbd041"
        );
        // Argo strips a registry host from the name it hashes and shows.
        let ctx = one_change("ghcr.io/foo/bar", "1.0", "1.1");
        assert_eq!(
            render_branch(
                "image-updater-{{.SHA256}}{{range .Images}}-{{.Name}}{{end}}",
                &ctx
            )
            .unwrap(),
            "image-updater-0fcc2782543e4bb067c174c21bf44eb947f3e55c0d62c403e359c1c209cbd041-foo/bar"
        );
        // A host without a dot is not a registry to Argo.
        assert_eq!(argo_image_name("localhost:5000/foo"), "localhost:5000/foo");
    }

    #[test]
    fn branch_truncation_keeps_utf8() {
        let long = format!("{}é", "a".repeat(254));
        assert_eq!(
            render_branch(&long, &Context::default()).unwrap(),
            "a".repeat(254)
        );
    }

    #[test]
    fn default_message_shapes() {
        let ctx = context();
        assert_eq!(
            default_message(&ctx),
            "Update images\n\n\
             - apps/podinfo/deployment.yaml: ghcr.io/stefanprodan/podinfo:6.4.0 -> ghcr.io/stefanprodan/podinfo:6.5.0\n\
             - apps/redis/values.yaml: 7.2.3 -> 7.2.4\n\
             - apps/podinfo/deployment.yaml: 1.0.0 -> 1.1.0\n\
             - apps/podinfo/cronjob.yaml: ghcr.io/stefanprodan/podinfo:6.4.0 -> ghcr.io/stefanprodan/podinfo:6.5.0\n"
        );
        let one = one_change("ghcr.io/foo/bar", "1.0", "1.1");
        assert_eq!(
            default_message(&one),
            "Update image ghcr.io/foo/bar to 1.1\n\n- kustomization.yaml: 1.0 -> 1.1\n"
        );
        assert_eq!(default_message(&Context::default()), "Update images\n");
    }

    #[test]
    fn go_number_and_quote_formats() {
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(0.0001), "0.0001");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(-2.0), "-2");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(
            go_quote("a\"b\\\n\u{a0}\u{7f}é"),
            "\"a\\\"b\\\\\\n\\u00a0\\x7fé\""
        );
    }

    #[test]
    fn image_ref_parts() {
        let p = parse_image_ref("helloworld:v1.0.1");
        assert_eq!(
            (
                p.registry.as_str(),
                p.repository.as_str(),
                p.identifier.as_str(),
                p.name.as_str()
            ),
            (
                "index.docker.io",
                "library/helloworld",
                "v1.0.1",
                "index.docker.io/library/helloworld:v1.0.1"
            )
        );
        let image = "localhost:5000/org/helloworld@sha256:6745aaad46d795c9836632e1fb62f24b7e7f4c843144da8e47a5465c411a14be";
        let p = parse_image_ref(image);
        assert_eq!(p.registry, "localhost:5000");
        assert_eq!(p.repository, "org/helloworld");
        assert_eq!(p.name, image);
    }

    #[test]
    fn missing_key_on_map_versus_struct() {
        let ctx = context();
        assert_eq!(
            render_message("{{.Values.nope}}", &ctx).unwrap(),
            "<no value>"
        );
        let err = render_message("{{.Nope}}", &ctx).unwrap_err();
        assert_eq!(
            err.to_string(),
            "template: commit message:1:2: executing \"commit message\" at <.Nope>: can't evaluate field Nope in type source.TemplateData"
        );
    }

    /// Templates a repository could hold to exhaust memory or time: each
    /// fails with a message, none aborts (issues 15.7, 18.4).
    #[test]
    fn output_and_work_are_bounded() {
        let ctx = context();
        let cases = [
            (
                r#"{{ repeat 9223372036854775807 "ab" }}"#,
                "limit of a template's output",
            ),
            (
                r#"{{ repeat 600000 "ab" }}"#,
                "limit of a template's output",
            ),
            (
                r#"{{ indent 9223372036854775807 "a" }}"#,
                "limit of a template's output",
            ),
            (
                r#"{{ nindent 2000000 "a" }}"#,
                "limit of a template's output",
            ),
            (
                r#"{{ indent 1000 (repeat 2000 "\n") }}"#,
                "limit of a template's output",
            ),
            (
                r#"{{ replace "" (repeat 2000 "y") (repeat 2000 "x") }}"#,
                "limit of a template's output",
            ),
            (
                r#"{{ join (repeat 1000 "y") (splitList "" (repeat 100000 "x")) }}"#,
                "limit of a template's output",
            ),
            (
                r#"{{ printf "%s%s" (repeat 600000 "a") (repeat 600000 "b") }}"#,
                "limit of a template's output",
            ),
            (
                r#"{{ range 100 }}{{ repeat 100000 "x" }}{{ end }}"#,
                "limit of a template's output",
            ),
            (
                "{{ range 9223372036854775807 }}{{ end }}",
                "more than 1000000 steps",
            ),
            (
                "{{ range 9223372036854775807 }}x{{ end }}",
                "more than 1000000 steps",
            ),
            (
                "{{ range $i := 1000 }}{{ range 1000 }}{{ range 1000 }}{{ end }}{{ end }}{{ end }}",
                "more than 1000000 steps",
            ),
        ];
        for (template, expected) in cases {
            let err = render_message(template, &ctx).expect_err(template);
            assert!(err.to_string().contains(expected), "{template}: {err}");
            let err = render_branch(template, &ctx).expect_err(template);
            assert!(err.to_string().contains(expected), "{template}: {err}");
        }
        // Within the bounds, and Go's own bound on printf widths.
        assert_eq!(
            render_message(r#"{{ repeat 3 "ab" }}"#, &ctx).unwrap(),
            "ababab"
        );
        assert_eq!(
            render_message(r#"{{ printf "%*d" 9223372036854775807 1 }}"#, &ctx).unwrap(),
            "%!(BADWIDTH)1"
        );
        assert_eq!(
            render_message("{{ range 3 }}{{ . }}{{ end }}", &ctx).unwrap(),
            "012"
        );
    }
}
