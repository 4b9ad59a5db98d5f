//! `image-update fn`: the engine as a KRM function (the kpt / kustomize
//! Functions Specification), so that a pipeline which already hands a
//! package to functions as a `ResourceList` can update images without a
//! separate step that walks the tree itself.
//!
//! The ResourceList text is treated like any other file: it is parsed once,
//! the markers under its `items` are resolved by the same engine as `run`
//! (`marker`, `flux`, `update::resolve`, `plan`, `rewrite`), and only the bytes
//! of the marked scalars change. Items are never re-serialised, so their
//! `config.kubernetes.io/*` annotations, comments and quoting reach the
//! orchestrator as they came, and it writes each item back to its own file.
//! The function's findings are appended as a `results` list, the only other
//! change to the text.
//!
//! This file holds the processing of the items and the process (`main`);
//! `config` reads the function's settings, `results` writes the results list.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::flux;
use crate::hold;
use crate::image::Reference;
use crate::marker::{self, Marker};
use crate::outcome::{Change, Problem, Severity};
use crate::plan;
use crate::registry::Registry;
use crate::registry::snapshot::Snapshot;
use crate::rewrite::{self, Edit, double_quoted};
use crate::update;
use crate::yaml::{self, Node, Position};

mod config;
mod results;

pub use config::{CONFIG_API_VERSION, CONFIG_KIND, Settings, read_config};
pub use results::{FileRef, FnResult, ResourceRef, append_results, render_block, render_flow};

/// The `apiVersion`s of a `ResourceList` this function reads.
pub const RESOURCE_LIST_VERSIONS: [&str; 2] =
    ["config.kubernetes.io/v1", "config.kubernetes.io/v1alpha1"];

/// Annotations naming an item's file, most specific first.
const PATH_ANNOTATIONS: [&str; 2] = [
    "internal.config.kubernetes.io/path",
    "config.kubernetes.io/path",
];
/// Annotations naming an item's document index within its file.
const INDEX_ANNOTATIONS: [&str; 2] = [
    "internal.config.kubernetes.io/index",
    "config.kubernetes.io/index",
];

/// Builds a live registry client from the effective settings (the caller
/// owns the other live-registry flags: timeouts, concurrency, ...).
pub type Connect<'a> = &'a dyn Fn(&Settings) -> Result<Box<dyn Registry>, String>;

#[derive(Debug)]
pub struct Processed {
    /// The ResourceList text: the input with the marked scalars updated and
    /// the results appended.
    pub output: String,
    pub results: Vec<FnResult>,
}

impl Processed {
    /// Whether a result is an error: the function then exits 1.
    pub fn failed(&self) -> bool {
        self.results.iter().any(|r| r.severity == Severity::Error)
    }
}

/// One of the list's `items`, with what results say about it.
struct Item<'a> {
    node: &'a Node,
    /// The item's file: its path annotation, else `item-<n>`.
    file: String,
    index: Option<u64>,
    resource: Option<ResourceRef>,
    /// Byte offset and line where the item begins.
    start: usize,
    line: usize,
}

impl Item<'_> {
    fn file_ref(&self) -> FileRef {
        FileRef {
            path: self.file.clone(),
            index: self.index,
        }
    }
}

fn annotation<'a>(item: &'a Node, names: &[&str]) -> Option<&'a str> {
    let annotations = item.at(&["metadata", "annotations"])?;
    names
        .iter()
        .find_map(|name| annotations.str_at(&[name]))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// An item's file as `run` would name it: the path annotation with `/`
/// separators and no leading `./`, else `item-<n>`.
fn item_file(item: &Node, n: usize) -> String {
    match annotation(item, &PATH_ANNOTATIONS) {
        Some(path) => {
            let path = path.replace('\\', "/");
            let mut path = path.as_str();
            while let Some(rest) = path.strip_prefix("./") {
                path = rest;
            }
            path.to_string()
        }
        None => format!("item-{n}"),
    }
}

/// Byte offsets of positions in a text (lines and columns are 1-based,
/// columns count characters).
struct Lines<'a> {
    src: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    fn new(src: &'a str) -> Lines<'a> {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        Lines { src, starts }
    }

    fn offset(&self, line: usize, column: usize) -> usize {
        let Some(&start) = self.starts.get(line.saturating_sub(1)) else {
            return self.src.len();
        };
        self.src[start..]
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(self.src.len(), |(i, _)| start + i)
    }

    fn line_end(&self, line: usize) -> usize {
        self.starts
            .get(line)
            .map_or(self.src.len(), |next| next.saturating_sub(1))
    }
}

/// The items of the list, in order, and the offset where the last one ends.
struct Items<'a> {
    items: Vec<Item<'a>>,
    end: usize,
}

impl Items<'_> {
    /// The item whose text holds `offset`.
    fn at(&self, offset: usize) -> Option<usize> {
        if offset >= self.end {
            return None;
        }
        self.items
            .partition_point(|i| i.start <= offset)
            .checked_sub(1)
    }

    /// The item a problem of `file` at `line` (and maybe `column`) is about.
    fn of_problem(&self, lines: &Lines, p: &Problem) -> Option<usize> {
        let line = p.line?;
        if let Some(column) = p.column {
            return self.at(lines.offset(line, column));
        }
        // Resource problems name the line where the resource begins.
        self.items
            .iter()
            .position(|i| i.line == line && Some(&i.file) == p.file.as_ref())
            .or_else(|| self.at(lines.line_end(line).saturating_sub(1)))
    }
}

fn read_items<'a>(src: &str, lines: &Lines, root: &'a Node) -> Result<Items<'a>, String> {
    let mut end = src.len();
    let mut nodes: &[Node] = &[];
    let entries = root.entries();
    for (i, (key, value)) in entries.iter().enumerate() {
        if key.as_str() != Some("items") {
            continue;
        }
        nodes = match value {
            Node::Sequence(items, _) => items,
            v if v.is_null() => &[],
            _ => return Err("`items` is not a list".to_string()),
        };
        if let Some((next, _)) = entries.get(i + 1) {
            let p = next.position();
            end = lines.offset(p.line, p.column);
        }
    }
    let mut items: Vec<Item> = Vec::with_capacity(nodes.len());
    for (n, node) in nodes.iter().enumerate() {
        let Position { line, column } = node.position();
        let start = if line == 0 {
            items.last().map_or(0, |i| i.start)
        } else {
            lines.offset(line, column)
        };
        items.push(Item {
            node,
            file: item_file(node, n),
            index: annotation(node, &INDEX_ANNOTATIONS).and_then(|i| i.parse().ok()),
            resource: ResourceRef::of(node),
            start,
            line,
        });
    }
    Ok(Items { items, end })
}

/// The path of the scalar that begins at byte `offset` under `node`, as
/// `a.b[0].c`; keys that are not plain words are written `["k.e/y"]`.
pub fn field_path(node: &Node, offset: usize) -> Option<String> {
    fn walk(node: &Node, offset: usize, path: &mut Vec<String>) -> bool {
        match node {
            Node::Scalar(s) => s.span.start == offset,
            Node::Mapping(entries, _) => entries.iter().any(|(key, value)| {
                let name = key.as_str().unwrap_or_default();
                let segment = if !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    name.to_string()
                } else {
                    format!("[{}]", double_quoted(name))
                };
                path.push(segment);
                if walk(value, offset, path) {
                    return true;
                }
                path.pop();
                false
            }),
            Node::Sequence(items, _) => items.iter().enumerate().any(|(i, item)| {
                path.push(format!("[{i}]"));
                if walk(item, offset, path) {
                    return true;
                }
                path.pop();
                false
            }),
            _ => false,
        }
    }
    let mut path = Vec::new();
    if !walk(node, offset, &mut path) || path.is_empty() {
        return None;
    }
    let mut out = String::new();
    for segment in path {
        if !out.is_empty() && !segment.starts_with('[') {
            out.push('.');
        }
        out.push_str(&segment);
    }
    Some(out)
}

/// The start of the last value scalar that ends on `line` before `offset`:
/// the value a line comment at `offset` follows.
fn value_before(node: &Node, line: usize, offset: usize) -> Option<usize> {
    match node {
        Node::Scalar(s) => (s.end_line == line && s.span.end <= offset).then_some(s.span.start),
        Node::Mapping(entries, _) => entries
            .iter()
            .filter_map(|(_, value)| value_before(value, line, offset))
            .max(),
        Node::Sequence(items, _) => items
            .iter()
            .filter_map(|item| value_before(item, line, offset))
            .max(),
        _ => None,
    }
}

/// `old -> new (setter)`; for a whole image whose name did not change, the
/// new value is shown without the name: `ghcr.io/acme/web:1.0.0 -> 1.1.0`.
pub fn change_message(change: &Change) -> String {
    let setter = match change.setter {
        "image" => change.policy.to_string(),
        field => format!("{}:{field}", change.policy),
    };
    let mut new = change.new.as_str();
    if change.setter == "image" {
        let name = Reference::split(&change.old).name;
        if Reference::split(&change.new).name == name
            && let Some(rest) = change.new.strip_prefix(name)
        {
            new = rest.strip_prefix(':').unwrap_or(rest);
        }
    }
    format!("{} -> {new} ({setter})", change.old)
}

/// Runs the function over a ResourceList. `Err` when the input is not a
/// ResourceList this function can answer (the caller exits 2); everything
/// else, configuration errors included, is reported in the results.
pub fn process(input: &str, flags: &Settings, connect: Connect) -> Result<Processed, String> {
    // The items sit two levels deep (`items:` and its sequence); they may
    // nest as deep as in a file of their own.
    let stream =
        yaml::parse_nested(input, 2).map_err(|e| format!("the input is not valid YAML: {e}"))?;
    let root = match stream.documents.as_slice() {
        [document] => &document.root,
        [] => return Err("the input is empty; expected a ResourceList".to_string()),
        _ => {
            return Err(
                "the input holds several YAML documents; expected one ResourceList".to_string(),
            );
        }
    };
    let api_version = root.str_at(&["apiVersion"]).unwrap_or_default();
    let kind = root.str_at(&["kind"]).unwrap_or_default();
    if kind != "ResourceList" || !RESOURCE_LIST_VERSIONS.contains(&api_version) {
        return Err(format!(
            "the input is {api_version:?} {kind:?}; expected a {} ResourceList",
            RESOURCE_LIST_VERSIONS[0]
        ));
    }
    let lines = Lines::new(input);
    let items = read_items(input, &lines, root)?;

    let (output, mut found) = match configure(root, flags, connect) {
        Ok((mut registry, policies)) => {
            update_items(input, &stream, &lines, &items, registry.as_mut(), &policies)
        }
        Err(e) => (
            input.to_string(),
            vec![(None, FnResult::general(Severity::Error, e))],
        ),
    };
    // Errors first (kpt shows only the first few results), then warnings,
    // then changes; within each, the list as a whole first, then by item.
    found.sort_by_key(|(item, r)| (std::cmp::Reverse(r.severity), item.map_or(0, |i| i + 1)));
    let mut results: Vec<FnResult> = found.into_iter().map(|(_, r)| r).collect();
    // The updated items are never lost for want of a place to put results.
    let output = match append_results(&output, root, &results) {
        Ok(with_results) => with_results,
        Err(e) => {
            results.push(FnResult::general(
                Severity::Error,
                format!("the results could not be added to the ResourceList ({e}); its items are updated"),
            ));
            output
        }
    };
    Ok(Processed { output, results })
}

/// The registry the settings (flags over `functionConfig`) name, and the
/// `policies` directories.
fn configure(
    root: &Node,
    flags: &Settings,
    connect: Connect,
) -> Result<(Box<dyn Registry>, Vec<PathBuf>), String> {
    let config = read_config(root.get("functionConfig"))?;
    let settings = flags.over(config);
    if let Some(missing) = settings.policies.iter().find(|p| !p.is_dir()) {
        return Err(format!("policies {}: not a directory", missing.display()));
    }
    let registry = match &settings.registry_snapshot {
        Some(path) => Snapshot::load(path)
            .map(|s| Box::new(s) as Box<dyn Registry>)
            .map_err(|e| e.to_string())?,
        None => connect(&settings)?,
    };
    Ok((registry, settings.policies))
}

/// Resolves the markers of every item and applies the edits to the whole
/// text at once. Each result comes with the item it is about.
fn update_items(
    src: &str,
    stream: &yaml::Stream,
    lines: &Lines,
    items: &Items,
    registry: &mut dyn Registry,
    policies: &[PathBuf],
) -> (String, Vec<(Option<usize>, FnResult)>) {
    let mut results: Vec<(Option<usize>, FnResult)> = Vec::new();
    let about = |item: Option<usize>, severity, message: String| {
        let it = item.map(|i| &items.items[i]);
        (
            item,
            FnResult {
                message,
                severity,
                resource: it.and_then(|i| i.resource.clone()),
                field: None,
                file: it.map(Item::file_ref),
                tags: Vec::new(),
            },
        )
    };
    let problem = |p: Problem| {
        let item = items.of_problem(lines, &p);
        let mut result = about(item, p.severity, p.message);
        if let (Some(i), Some(line), Some(column)) = (item, p.line, p.column) {
            result.1.field = field_path(items.items[i].node, lines.offset(line, column));
        }
        result
    };

    let mut resources = flux::Resources::default();
    for item in &items.items {
        resources.read(&item.file, item.node);
    }
    // Only Flux resources take part here; Argo CD ones are read and unused.
    let mut read_problems = Vec::new();
    update::read_policies(
        None,
        policies,
        &mut resources,
        &mut crate::argocd::config::Declarations::default(),
        crate::argocd::config::DEFAULT_NAMESPACE,
        &mut read_problems,
    );
    results.extend(read_problems.into_iter().map(problem));
    let declared = resources.declare();
    results.extend(resources.problems.drain(..).map(problem));

    let roots: Vec<&Node> = items.items.iter().map(|i| i.node).collect();
    let found = marker::find_in(src, stream, &roots);
    for ignored in &found.ignored {
        let offset = lines.offset(ignored.line, ignored.column);
        // `$imagepolicy` outside the items (functionConfig, earlier results)
        // is not ours to judge.
        let Some(item) = items.at(offset) else {
            continue;
        };
        let text = src[offset..lines.line_end(ignored.line)].trim_end();
        let text: String = text.chars().take(120).collect();
        let mut result = about(
            Some(item),
            Severity::Warning,
            format!("marker `{text}` ignored: {}", ignored.reason),
        );
        result.1.field = value_before(items.items[item].node, ignored.line, offset)
            .and_then(|start| field_path(items.items[item].node, start));
        results.push(result);
    }

    let pinned = update::pinned_by(found.markers.iter());
    // A function gets documents, not a repository: promotion gates cannot
    // be passed and rollbacks cannot be seen.
    let constraints: Vec<hold::Constraints> = declared
        .iter()
        .map(|d| hold::Constraints {
            gate: d
                .gate
                .clone()
                .map(|gate| (gate, Err(NO_HISTORY.to_string()))),
            ..hold::Constraints::default()
        })
        .collect();
    let (outcomes, mut targets, warnings) =
        update::resolve(&declared, &constraints, registry, &pinned);
    update::add_unread(&mut targets, &resources.unread);
    results.extend(
        warnings
            .into_iter()
            .map(|w| (None, FnResult::general(Severity::Warning, w.message))),
    );
    for outcome in outcomes {
        let item = items
            .items
            .iter()
            .position(|i| i.file == outcome.file && i.line == outcome.line);
        for hold in &outcome.holds {
            results.push(about(
                item,
                Severity::Warning,
                format!("ImagePolicy {}: {}", outcome.policy, hold.reason),
            ));
        }
        let Some(error) = outcome.error else {
            continue;
        };
        let subject = if outcome.rule.is_empty() {
            outcome.image
        } else {
            format!("{}, {}", outcome.image, outcome.rule)
        };
        results.push(about(
            item,
            Severity::Error,
            format!("ImagePolicy {} ({subject}): {error}", outcome.policy),
        ));
    }
    results.extend(
        registry
            .notes()
            .into_iter()
            .map(|note| (None, FnResult::general(Severity::Warning, note))),
    );

    let mut by_item: BTreeMap<usize, Vec<Marker>> = BTreeMap::new();
    for m in found.markers {
        by_item.entry(m.root).or_default().push(m);
    }
    let mut edits: Vec<Edit> = Vec::new();
    let mut changes = Vec::new();
    for (&i, markers) in &by_item {
        let item = &items.items[i];
        let plan = plan::plan_file(&item.file, src, markers, &targets);
        results.extend(plan.problems.into_iter().map(problem));
        edits.extend(plan.edits);
        for change in plan.changes {
            let marker = markers.iter().find(|m| {
                m.scalar.start.line == change.line
                    && m.scalar.value == change.old
                    && m.setter.field.as_str() == change.setter
            });
            let mut result = about(Some(i), Severity::Info, change_message(&change));
            result.1.field = marker.and_then(|m| field_path(item.node, m.scalar.span.start));
            result.1.tags = vec![
                ("policy", change.policy.to_string()),
                ("setter", change.setter.to_string()),
                ("old", change.old.clone()),
                ("new", change.new.clone()),
            ];
            changes.push(result);
        }
    }
    let output = match rewrite::apply(src, &edits) {
        Ok(output) => {
            if !changes.is_empty() {
                changes.push((
                    None,
                    FnResult::general(
                        Severity::Info,
                        format!("rollback holds not checked: {NO_HISTORY}"),
                    ),
                ));
            }
            results.extend(changes);
            output
        }
        Err(e) => {
            results.push((
                None,
                FnResult::general(Severity::Error, format!("nothing rewritten: {e}")),
            ));
            src.to_string()
        }
    };
    (output, results)
}

/// Why a KRM function has no history to read.
pub const NO_HISTORY: &str = "a KRM function gets only the ResourceList, not the git history";

/// The function's process: a ResourceList on standard input, the updated
/// list on standard output, errors also on standard error. Exit 0, or 1 when
/// a result is an error, or 2 when the input is not a ResourceList.
pub fn main(flags: &Settings, connect: Connect) -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().lock().read_to_string(&mut input) {
        eprintln!("image-update fn: cannot read standard input: {e}");
        return ExitCode::from(2);
    }
    let processed = match process(&input, flags, connect) {
        Ok(processed) => processed,
        Err(e) => {
            eprintln!("image-update fn: {e}");
            return ExitCode::from(2);
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(processed.output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        eprintln!("image-update fn: cannot write standard output: {e}");
        return ExitCode::from(2);
    }
    if !processed.failed() {
        return ExitCode::SUCCESS;
    }
    let mut stderr = std::io::stderr().lock();
    for r in processed
        .results
        .iter()
        .filter(|r| r.severity == Severity::Error)
    {
        let about = match (&r.file, &r.resource) {
            (Some(file), _) => format!("{}: ", file.path),
            (None, Some(reference)) => format!("{}/{}: ", reference.kind, reference.name),
            _ => String::new(),
        };
        let _ = writeln!(stderr, "image-update fn: error: {about}{}", r.message);
    }
    ExitCode::from(1)
}

#[cfg(test)]
mod tests;
