//! Managing resources as files in a working tree: finding the
//! `ImageUpdater`, `ImageRepository` and `ImagePolicy` resources wherever
//! they are, writing new ones, and replacing or deleting existing ones.
//!
//! The `create`/`get`/`list`/`delete` commands and the REST API (`serve`)
//! both act on a GitOps repository, whose files people also edit by hand.
//! So a change touches only the bytes of the one document it concerns: a
//! resource in a multi-document file is replaced or removed without
//! reformatting its neighbours, every write is atomic and checks that the
//! file still holds what was read, and a resource's version is a hash of its
//! document's bytes, so any edit (ours, a person's, a `git pull`) changes it.

use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::flux;
use crate::kubesphere::{self, FieldError};
use crate::outcome::Problem;
use crate::rewrite;
use crate::scan::{self, Filter, Leftovers};
use crate::tree_write;
use crate::yaml;

/// The kinds of resource that can be managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    ImageUpdater,
    ImageRepository,
    ImagePolicy,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::ImageUpdater => "ImageUpdater",
            Kind::ImageRepository => "ImageRepository",
            Kind::ImagePolicy => "ImagePolicy",
        }
    }

    fn group(self) -> &'static str {
        match self {
            Kind::ImageUpdater => kubesphere::API_GROUP,
            _ => flux::API_GROUP,
        }
    }

    /// The `apiVersion` new resources are written with.
    pub fn api_version(self) -> String {
        match self {
            Kind::ImageUpdater => kubesphere::API_VERSION.to_string(),
            _ => format!("{}/v1", flux::API_GROUP),
        }
    }

    fn of(root: &yaml::Node) -> Option<Kind> {
        let api = root.str_at(&["apiVersion"])?;
        let kind = root.str_at(&["kind"])?;
        [Kind::ImageUpdater, Kind::ImageRepository, Kind::ImagePolicy]
            .into_iter()
            .find(|k| k.name() == kind && api.starts_with(&format!("{}/", k.group())))
    }
}

/// One resource found in the tree.
#[derive(Debug, Clone)]
pub struct Found {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// The file, relative to the tree root.
    pub rel: String,
    pub path: PathBuf,
    /// The document's bytes in the file (separator line excluded).
    pub span: Range<usize>,
    /// The document's first line in the file (1-based).
    pub line: usize,
    pub text: String,
    /// A hash of the document's bytes.
    pub version: String,
}

impl Found {
    /// The resource as JSON, with `metadata.resourceVersion` and the file it
    /// lives in (annotation `gitops.kubesphere.io/file`).
    pub fn to_json(&self) -> Value {
        let mut value = document_json(&self.text).unwrap_or(Value::Null);
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), self.namespace.clone().into());
            meta.insert("resourceVersion".into(), self.version.clone().into());
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(FILE_ANNOTATION.into(), self.rel.clone().into());
            }
        }
        value
    }
}

/// The first YAML document of `src` as JSON, the way
/// [`kubesphere::to_json`] reads a node (plain `true`/`false` are booleans,
/// plain null-like scalars null, everything else a string), with aliases
/// (`*name`) resolved to the node they name, as kubectl shows them. (The
/// file reader keeps aliases as they are, since it never edits around them.)
fn document_json(src: &str) -> Option<Value> {
    use granit_parser::{Event, Parser, ScalarStyle};
    enum Frame {
        Sequence(Vec<Value>, usize),
        Mapping(serde_json::Map<String, Value>, Option<String>, usize),
    }
    let mut anchors: std::collections::HashMap<usize, Value> = Default::default();
    let mut stack: Vec<Frame> = Vec::new();
    for event in Parser::new_from_str(src) {
        let (event, _) = event.ok()?;
        let (value, anchor) = match event {
            Event::SequenceStart(_, anchor, _) => {
                stack.push(Frame::Sequence(Vec::new(), anchor));
                continue;
            }
            Event::MappingStart(_, anchor, _) => {
                stack.push(Frame::Mapping(Default::default(), None, anchor));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop()? {
                Frame::Sequence(items, anchor) => (Value::Array(items), anchor),
                Frame::Mapping(entries, _, anchor) => (Value::Object(entries), anchor),
            },
            Event::Scalar(text, style, anchor, _) => {
                let plain = style == ScalarStyle::Plain;
                let value = match text.as_ref() {
                    "" | "~" | "null" | "Null" | "NULL" if plain => Value::Null,
                    "true" | "false" if plain => Value::Bool(text == "true"),
                    _ => Value::String(text.into_owned()),
                };
                (value, anchor)
            }
            Event::Alias(id) => (anchors.get(&id).cloned().unwrap_or(Value::Null), 0),
            Event::DocumentEnd if stack.is_empty() => return None,
            _ => continue,
        };
        if anchor != 0 {
            anchors.insert(anchor, value.clone());
        }
        match stack.last_mut() {
            None => return Some(value),
            Some(Frame::Sequence(items, _)) => items.push(value),
            Some(Frame::Mapping(entries, key, _)) => match key.take() {
                Some(k) => {
                    entries.insert(k, value);
                }
                None => {
                    *key = Some(match value {
                        Value::String(k) => k,
                        Value::Null => String::new(),
                        other => other.to_string(),
                    })
                }
            },
        }
    }
    None
}

/// Where a resource's file is, as reported by `get` and the REST API; never
/// written to files.
pub const FILE_ANNOTATION: &str = "gitops.kubesphere.io/file";

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("{kind} {namespace}/{name} already exists in {rel}")]
    Exists {
        kind: &'static str,
        namespace: String,
        name: String,
        rel: String,
    },
    #[error("{0} already exists and is not ours to overwrite")]
    FileExists(String),
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
    #[error("{0}")]
    Outside(String),
}

/// A working tree and where new resources go.
#[derive(Debug, Clone)]
pub struct Tree {
    pub root: PathBuf,
    /// Relative to `root`: the directory new resources are written under.
    pub dir: PathBuf,
}

/// The content hash a resource version is made of.
pub fn version_of(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The text of `found`'s file, when its document still reads as it did.
fn unchanged(found: &Found) -> std::io::Result<String> {
    let old = fs::read_to_string(&found.path)?;
    if old.get(found.span.clone()) != Some(found.text.as_str()) {
        return Err(std::io::Error::other(
            "the file changed while it was being edited",
        ));
    }
    Ok(old)
}

/// The byte ranges of a file's documents, between `---` lines.
pub fn documents(src: &str) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in src.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        let separator =
            bare.starts_with("---") && bare[3..].chars().next().is_none_or(char::is_whitespace);
        if separator {
            ranges.push(start..offset);
            start = offset + line.len();
        }
        offset += line.len();
    }
    ranges.push(start..src.len());
    ranges
}

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset].bytes().filter(|b| *b == b'\n').count() + 1
}

/// The resources of one file.
fn read_resources(rel: &str, path: &Path, src: &str, problems: &mut Vec<Problem>) -> Vec<Found> {
    let mut found = Vec::new();
    for span in documents(src) {
        let text = &src[span.clone()];
        if text.trim().is_empty() {
            continue;
        }
        let stream = match yaml::parse(text) {
            Ok(s) => s,
            Err(e) => {
                problems.push(Problem::at(
                    rel,
                    line_of(src, span.start) + e.line - 1,
                    Some(e.column),
                    crate::outcome::Severity::Warning,
                    format!("malformed YAML: {}", e.message),
                ));
                continue;
            }
        };
        let Some(root) = stream.documents.first().map(|d| &d.root) else {
            continue;
        };
        let Some(kind) = Kind::of(root) else {
            continue;
        };
        found.push(Found {
            kind,
            namespace: root.namespace_or("default").to_string(),
            name: root.object_name().to_string(),
            rel: rel.to_string(),
            path: path.to_path_buf(),
            line: line_of(src, span.start) + root.position().line.max(1) - 1,
            version: version_of(text),
            text: text.to_string(),
            span,
        });
    }
    found
}

impl Tree {
    /// Every managed resource in the tree (of `kind`, when given), in the
    /// order of a sorted walk; problems are files that could not be read.
    pub fn list(&self, kind: Option<Kind>) -> (Vec<Found>, Vec<Problem>) {
        let readings = scan::walk_map(&self.root, &Filter::default(), Leftovers::Skip, |entry| {
            let mut problems = Vec::new();
            let entry = match entry {
                Ok(e) => e,
                Err(p) => return (Vec::new(), vec![p]),
            };
            if !scan::is_yaml_name(&entry.rel) {
                return (Vec::new(), problems);
            }
            let Ok(bytes) = fs::read(&entry.path) else {
                return (Vec::new(), problems);
            };
            let screen = |needle: &str| memchr::memmem::find(&bytes, needle.as_bytes()).is_some();
            if !screen(kubesphere::API_GROUP) && !screen(flux::API_GROUP) {
                return (Vec::new(), problems);
            }
            let Ok(src) = String::from_utf8(bytes) else {
                return (Vec::new(), problems);
            };
            let found = read_resources(&entry.rel, &entry.path, &src, &mut problems);
            (found, problems)
        });
        let mut all = Vec::new();
        let mut problems = Vec::new();
        for (found, p) in readings {
            all.extend(
                found
                    .into_iter()
                    .filter(|f| kind.is_none_or(|k| f.kind == k)),
            );
            problems.extend(p);
        }
        (all, problems)
    }

    /// The first resource of this kind, namespace and name.
    pub fn find(&self, kind: Kind, namespace: &str, name: &str) -> Option<Found> {
        self.list(Some(kind))
            .0
            .into_iter()
            .find(|f| f.namespace == namespace && f.name == name)
    }

    /// Where a new resource is written: `<dir>/<namespace>/<kind>-<name>.yaml`.
    pub fn new_path(&self, kind: Kind, namespace: &str, name: &str) -> (String, PathBuf) {
        let rel = self
            .dir
            .join(namespace)
            .join(format!("{}-{name}.yaml", kind.name().to_ascii_lowercase()));
        let rel = rel
            .to_string_lossy()
            .replace('\\', "/")
            .trim_start_matches("./")
            .to_string();
        (rel.clone(), self.root.join(rel))
    }

    /// Writes a new resource to its own new file; refuses a name that exists
    /// anywhere in the tree and a file that exists.
    pub fn create(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        text: &str,
    ) -> Result<PathBuf, ManageError> {
        if let Some(f) = self.find(kind, namespace, name) {
            return Err(ManageError::Exists {
                kind: kind.name(),
                namespace: namespace.to_string(),
                name: name.to_string(),
                rel: f.rel,
            });
        }
        let (rel, path) = self.new_path(kind, namespace, name);
        if rel.split('/').any(|p| p == "..") {
            return Err(ManageError::Outside(format!(
                "{rel} is outside the working tree"
            )));
        }
        tree_write::create_file(&self.root, &rel, text.as_bytes()).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => ManageError::FileExists(rel.clone()),
            _ if tree_write::refusal(&e).is_some() => ManageError::Outside(e.to_string()),
            _ => ManageError::Write {
                path: rel.clone(),
                reason: e.to_string(),
            },
        })?;
        Ok(path)
    }

    /// Replaces a resource's document with `text`; the rest of its file keeps
    /// every byte. Fails, writing nothing, when the file changed since `found`
    /// was read.
    pub fn replace(&self, found: &Found, text: &str) -> Result<(), ManageError> {
        let write_error = |e: std::io::Error| ManageError::Write {
            path: found.rel.clone(),
            reason: e.to_string(),
        };
        let old = unchanged(found).map_err(write_error)?;
        let mut document = text.to_string();
        if found.span.end < old.len() && !text.ends_with('\n') {
            document.push('\n');
        }
        let new = splice(&old, found.span.clone(), document);
        tree_write::replace_file(&self.root, &found.rel, old.as_bytes(), new.as_bytes())
            .map_err(write_error)
    }

    /// Removes a resource: only its document (and one `---` line) from a file
    /// that holds others, else the file.
    pub fn delete(&self, found: &Found) -> Result<(), ManageError> {
        let write_error = |e: std::io::Error| ManageError::Write {
            path: found.rel.clone(),
            reason: e.to_string(),
        };
        let old = unchanged(found).map_err(write_error)?;
        let new = without_document(&old, found.span.clone());
        let others = documents(&new)
            .into_iter()
            .any(|r| !is_blank_document(&new[r]));
        if others {
            tree_write::replace_file(&self.root, &found.rel, old.as_bytes(), new.as_bytes())
                .map_err(write_error)
        } else {
            fs::remove_file(&found.path).map_err(write_error)
        }
    }
}

/// Whether a document holds nothing but blank lines and comments.
fn is_blank_document(text: &str) -> bool {
    text.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "..."
    })
}

/// `src` without the document at `span` and the separator line before it
/// (or, for the first document, after it).
fn without_document(src: &str, span: Range<usize>) -> String {
    let before = &src[..span.start];
    // The separator line that opens this document, if any.
    let opener = before[..before.len().saturating_sub(1)]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let (cut_start, cut_end) = if span.start > 0 && src[opener..span.start].starts_with("---") {
        (opener, span.end)
    } else {
        // The first document: take the separator line after it instead.
        let end = src[span.end..]
            .find('\n')
            .map_or(src.len(), |i| span.end + i + 1);
        (span.start, end.min(src.len()))
    };
    splice(src, cut_start..cut_end, String::new())
}

/// `src` with `span` replaced by `new`, by the engine every edit goes through.
fn splice(src: &str, span: Range<usize>, new: String) -> String {
    let edit = rewrite::Edit {
        old: src[span.clone()].to_string(),
        span,
        new,
    };
    rewrite::apply(src, &[edit])
        .expect("one edit of the text's own bytes neither overlaps nor is stale")
}

/// A JSON value as block YAML, keys in the value's order; strings that YAML
/// would read as something else are double-quoted.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    emit(value, 0, &mut out);
    out
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) if rewrite::is_safe_plain(s) => s.clone(),
        Value::String(s) => rewrite::render(s, granit_parser::ScalarStyle::DoubleQuoted),
        Value::Array(a) if a.is_empty() => "[]".to_string(),
        Value::Object(o) if o.is_empty() => "{}".to_string(),
        other => other.to_string(),
    }
}

fn is_collection(value: &Value) -> bool {
    match value {
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => false,
    }
}

fn emit(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            // Kubernetes' usual order first, then the rest by name.
            const FIRST: [&str; 7] = [
                "apiVersion",
                "kind",
                "metadata",
                "spec",
                "name",
                "namespace",
                "images",
            ];
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by_key(|(k, _)| FIRST.iter().position(|f| f == k).unwrap_or(FIRST.len()));
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 || !out.ends_with("- ") {
                    out.push_str(&pad);
                }
                out.push_str(&scalar(&Value::String(k.clone())));
                out.push(':');
                if is_collection(v) {
                    out.push('\n');
                    emit(v, indent + 2, out);
                } else {
                    out.push(' ');
                    out.push_str(&scalar(v));
                    out.push('\n');
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                out.push_str(&pad);
                out.push_str("- ");
                if is_collection(item) {
                    match item {
                        Value::Object(_) => emit(item, indent + 2, out),
                        _ => {
                            out.push('\n');
                            emit(item, indent + 2, out);
                        }
                    }
                } else {
                    out.push_str(&scalar(item));
                    out.push('\n');
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

/// A request body (or flags) made into an `ImageUpdater`'s YAML text, after
/// validation. `namespace` and `name` come from the URL when given there and
/// must agree with the body's.
pub fn updater_from_json(
    body: &Value,
    namespace: &str,
    name: Option<&str>,
) -> Result<(String, kubesphere::Unified), Vec<FieldError>> {
    let mut errors = Vec::new();
    let err = |f: &str, m: String| FieldError {
        field: f.to_string(),
        message: m,
    };
    let Some(object) = body.as_object() else {
        return Err(vec![err("", "the body must be a JSON object".into())]);
    };
    match object.get("apiVersion") {
        None => {}
        Some(Value::String(v)) if v == kubesphere::API_VERSION => {}
        Some(other) => errors.push(err(
            "apiVersion",
            format!(
                "{other} is not allowed; allowed: {}",
                kubesphere::API_VERSION
            ),
        )),
    }
    match object.get("kind") {
        None => {}
        Some(Value::String(v)) if v == kubesphere::KIND => {}
        Some(other) => errors.push(err(
            "kind",
            format!("{other} is not allowed; allowed: {}", kubesphere::KIND),
        )),
    }
    let empty = serde_json::Map::new();
    let meta = match object.get("metadata") {
        None => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => {
            errors.push(err("metadata", "must be an object".into()));
            &empty
        }
    };
    let body_name = meta.get("name");
    let name = match (body_name, name) {
        (Some(Value::String(b)), Some(url)) if b != url => {
            errors.push(err(
                "metadata.name",
                format!("{b:?} does not match the name in the URL ({url:?})"),
            ));
            url.to_string()
        }
        (Some(Value::String(b)), _) => b.clone(),
        (Some(_), _) => {
            errors.push(err("metadata.name", "must be a string".into()));
            String::new()
        }
        (None, Some(url)) => url.to_string(),
        (None, None) => String::new(),
    };
    match meta.get("namespace") {
        None => {}
        Some(Value::String(ns)) if ns == namespace => {}
        Some(other) => errors.push(err(
            "metadata.namespace",
            format!("{other} does not match the namespace in the URL ({namespace:?})"),
        )),
    }
    let mut metadata = serde_json::Map::new();
    metadata.insert("name".into(), name.into());
    metadata.insert("namespace".into(), namespace.into());
    for key in ["labels", "annotations"] {
        match meta.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                let mut kept = map.clone();
                kept.remove(FILE_ANNOTATION);
                if kept.values().any(|v| !v.is_string()) {
                    errors.push(err(
                        &format!("metadata.{key}"),
                        "values must be strings".into(),
                    ));
                }
                if !kept.is_empty() {
                    metadata.insert(key.into(), Value::Object(kept));
                }
            }
            Some(_) => errors.push(err(
                &format!("metadata.{key}"),
                "must be an object of strings".into(),
            )),
        }
    }
    let spec = object.get("spec").cloned().unwrap_or(Value::Null);
    if !spec.is_object() {
        errors.push(err("spec", "required: an object".into()));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut resource = serde_json::Map::new();
    resource.insert("apiVersion".into(), kubesphere::API_VERSION.into());
    resource.insert("kind".into(), kubesphere::KIND.into());
    resource.insert("metadata".into(), Value::Object(metadata));
    resource.insert("spec".into(), spec);
    let text = to_yaml(&Value::Object(resource));
    let stream = yaml::parse(&text)
        .map_err(|e| vec![err("", format!("the body cannot be written as YAML: {e}"))])?;
    let root = &stream.documents[0].root;
    match kubesphere::read_unified("", root) {
        Ok(Some(u)) => Ok((text, u)),
        Ok(None) => Err(vec![err("kind", "not an ImageUpdater".into())]),
        Err(errors) => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Hardening 15.10: `get -o json` and `serve` showed aliases as null.
    #[test]
    fn aliases_are_resolved_in_json() {
        let text = "metadata: {name: a}\nspec:\n  images: &imgs [nginx, 'redis']\n  copy: *imgs\n  kind: &k argocd\n  again: *k\n  n: ~\n  t: true\n  q: 'true'\n";
        assert_eq!(
            document_json(text).unwrap(),
            json!({"metadata": {"name": "a"}, "spec": {
                "images": ["nginx", "redis"], "copy": ["nginx", "redis"],
                "kind": "argocd", "again": "argocd", "n": null, "t": true, "q": "true"}})
        );
        // Without aliases, exactly what the file reader's conversion gives.
        let plain = "a: 1\nb: [x, {c: ~}]\nd: 'yes'\n";
        assert_eq!(
            document_json(plain).unwrap(),
            kubesphere::to_json(&yaml::parse(plain).unwrap().documents[0].root)
        );
    }

    #[test]
    fn yaml_round_trips_through_our_reader() {
        let value = json!({
            "apiVersion": "gitops.kubesphere.io/v1alpha1",
            "metadata": {"name": "demo", "labels": {}},
            "spec": {"images": ["nginx:^0.1", "yes", "1.20"], "x": [{"a": "b", "c": ["d"]}, ["e"]],
                     "t": "{{range .Updated.Images}}{{println .}}{{end}}", "n": null, "b": true}
        });
        let text = to_yaml(&value);
        let back = kubesphere::to_json(&yaml::parse(&text).unwrap().documents[0].root);
        assert_eq!(back, value, "{text}");
    }

    #[test]
    fn deleting_a_document_keeps_the_others_bytes() {
        let src = "# head\na: 1\n---\nb: 2 # keep\n---\nc: 3\n";
        let docs = documents(src);
        assert_eq!(docs.len(), 3);
        assert_eq!(
            without_document(src, docs[1].clone()),
            "# head\na: 1\n---\nc: 3\n"
        );
        assert_eq!(
            without_document(src, docs[0].clone()),
            "b: 2 # keep\n---\nc: 3\n"
        );
        assert_eq!(
            without_document(src, docs[2].clone()),
            "# head\na: 1\n---\nb: 2 # keep\n"
        );
        let lead = "---\na: 1\n---\nb: 2\n";
        let docs = documents(lead);
        assert_eq!(without_document(lead, docs[1].clone()), "---\nb: 2\n");
    }

    #[test]
    fn bodies_are_validated_and_checked_against_the_url() {
        let body = json!({"metadata": {"name": "other"}, "spec": {"kind": "argocd", "images": ["nginx"], "argocd": {"app": {"name": "a"}}}});
        let errors = updater_from_json(&body, "demo", Some("demo")).unwrap_err();
        assert_eq!(errors[0].field, "metadata.name");
        let (text, u) = updater_from_json(&body, "demo", None).unwrap();
        assert_eq!(u.name, "other");
        assert!(
            text.starts_with("apiVersion: gitops.kubesphere.io/v1alpha1\nkind: ImageUpdater\n"),
            "{text}"
        );
        let errors =
            updater_from_json(&json!({"spec": {"kind": "x"}}), "demo", Some("a")).unwrap_err();
        assert!(errors.iter().any(|e| e.field == "spec.kind"), "{errors:?}");
    }
}
