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

use std::collections::BTreeMap;
use std::fmt::Write as _;
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
use crate::rewrite::{self, Edit};
use crate::update;
use crate::yaml::{self, Node, Position};

/// The `apiVersion`s of a `ResourceList` this function reads.
pub const RESOURCE_LIST_VERSIONS: [&str; 2] =
    ["config.kubernetes.io/v1", "config.kubernetes.io/v1alpha1"];
/// The function's own configuration kind.
/// Why a KRM function has no history to read.
pub const NO_HISTORY: &str = "a KRM function gets only the ResourceList, not the git history";

pub const CONFIG_API_VERSION: &str = "image-update.dev/v1alpha1";
pub const CONFIG_KIND: &str = "ImageUpdateConfig";

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

/// Where tags come from and how live registries are reached. Used both for
/// the command-line flags and for what `functionConfig` says; a flag that is
/// set overrides the `functionConfig` value ([`Settings::over`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub registry_snapshot: Option<PathBuf>,
    pub insecure_registries: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub docker_config: Option<PathBuf>,
    /// Directories Flux resources are also read from (never edited).
    pub policies: Vec<PathBuf>,
}

impl Settings {
    /// `self` (flags) where set, else `config`.
    pub fn over(&self, config: Settings) -> Settings {
        Settings {
            registry_snapshot: self.registry_snapshot.clone().or(config.registry_snapshot),
            insecure_registries: if self.insecure_registries.is_empty() {
                config.insecure_registries
            } else {
                self.insecure_registries.clone()
            },
            ca_file: self.ca_file.clone().or(config.ca_file),
            docker_config: self.docker_config.clone().or(config.docker_config),
            policies: if self.policies.is_empty() {
                config.policies
            } else {
                self.policies.clone()
            },
        }
    }
}

/// Builds a live registry client from the effective settings (the caller
/// owns the other live-registry flags: timeouts, concurrency, ...).
pub type Connect<'a> = &'a dyn Fn(&Settings) -> Result<Box<dyn Registry>, String>;

/// `functionConfig` keys: `ConfigMap` `data` key, `ImageUpdateConfig` `spec` key.
const KEYS: [(&str, &str); 5] = [
    ("registry-snapshot", "registrySnapshot"),
    ("insecure-registries", "insecureRegistries"),
    ("ca-file", "caFile"),
    ("docker-config", "dockerConfig"),
    ("policies", "policies"),
];

/// Reads the function's settings from a `functionConfig`: a `ConfigMap`
/// (what `kpt fn eval ... -- key=value` builds) whose `data` holds the
/// kebab-case keys, or an `image-update.dev/v1alpha1` `ImageUpdateConfig`
/// whose `spec` holds the camel-case ones. A missing or empty config is the
/// default. Unknown keys are refused: a misspelt `registry-snapshot` would
/// otherwise silently send the run to the live registries.
pub fn read_config(config: Option<&Node>) -> Result<Settings, String> {
    let Some(config) = config.filter(|c| !c.is_null()) else {
        return Ok(Settings::default());
    };
    let api_version = config.str_at(&["apiVersion"]).unwrap_or_default();
    let kind = config.str_at(&["kind"]).unwrap_or_default();
    let (values, camel) = match (api_version, kind) {
        ("v1", "ConfigMap") => (config.get("data"), false),
        (CONFIG_API_VERSION, CONFIG_KIND) => (config.get("spec"), true),
        _ => {
            return Err(format!(
                "functionConfig {api_version:?} {kind:?} is not supported; use a v1 ConfigMap (data: registry-snapshot, insecure-registries, ca-file, docker-config, policies) or an {CONFIG_API_VERSION} {CONFIG_KIND} (spec: registrySnapshot, insecureRegistries, caFile, dockerConfig, policies)"
            ));
        }
    };
    let where_ = if camel { "spec" } else { "data" };
    let mut settings = Settings::default();
    let Some(values) = values.filter(|v| !v.is_null()) else {
        return Ok(settings);
    };
    if !matches!(values, Node::Mapping(..)) {
        return Err(format!("functionConfig {where_} must be a mapping"));
    }
    let mut errors = Vec::new();
    for (key, value) in values.entries() {
        let key = key.as_str().unwrap_or_default();
        let Some(field) = KEYS
            .iter()
            .position(|(kebab, camel_key)| key == if camel { *camel_key } else { *kebab })
        else {
            let known: Vec<&str> = KEYS
                .iter()
                .map(|(kebab, camel_key)| if camel { *camel_key } else { *kebab })
                .collect();
            errors.push(format!(
                "functionConfig {where_}: unknown key {key:?} (known: {})",
                known.join(", ")
            ));
            continue;
        };
        if field == 4 {
            match string_list(value, false) {
                Some(list) => settings.policies = list.into_iter().map(PathBuf::from).collect(),
                None => errors.push(format!(
                    "functionConfig {where_}.{key}: write directories separated by commas{}",
                    if camel { ", or a list of strings" } else { "" }
                )),
            }
            continue;
        }
        if field == 1 {
            match string_list(value, true) {
                Some(list) => settings.insecure_registries = list,
                None => errors.push(format!(
                    "functionConfig {where_}.{key}: write host names separated by commas{}",
                    if camel { ", or a list of strings" } else { "" }
                )),
            }
            continue;
        }
        let text = match value {
            v if v.is_null() => None,
            Node::Scalar(s) => Some(s.value.trim().to_string()).filter(|s| !s.is_empty()),
            _ => {
                errors.push(format!(
                    "functionConfig {where_}.{key} must be a string (a path)"
                ));
                continue;
            }
        };
        let path = text.map(PathBuf::from);
        match field {
            0 => settings.registry_snapshot = path,
            2 => settings.ca_file = path,
            _ => settings.docker_config = path,
        }
    }
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(errors.join("; "))
    }
}

/// A comma-separated string or a sequence of strings, as a list (of host
/// names, lower-cased, when `hosts`).
fn string_list(node: &Node, hosts: bool) -> Option<Vec<String>> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .map(|h| {
                if hosts {
                    h.to_ascii_lowercase()
                } else {
                    h.to_string()
                }
            })
            .filter(|h| !h.is_empty())
            .collect()
    };
    match node {
        n if n.is_null() => Some(Vec::new()),
        Node::Scalar(s) => Some(split(&s.value)),
        Node::Sequence(items, _) => items
            .iter()
            .map(|i| i.as_str().map(split))
            .collect::<Option<Vec<_>>>()
            .map(|lists| lists.concat()),
        _ => None,
    }
}

/// The resource a result is about (`results[].resourceRef`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

impl ResourceRef {
    fn of(item: &Node) -> Option<ResourceRef> {
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
    fn general(severity: Severity, message: impl Into<String>) -> FnResult {
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
                    format!("[{}]", quote(name))
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

/// A double-quoted YAML (and JSON) string: `"`, `\` and every character a
/// YAML or JSON reader could take for a line break or control are escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

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
                entries.push((key, quote(value)));
            }
        }
        fields.push(("resourceRef", entries));
    }
    if let Some(path) = &r.field {
        fields.push(("field", vec![("path", quote(path))]));
    }
    if let Some(file) = &r.file {
        let mut entries = vec![("path", quote(&file.path))];
        if let Some(index) = file.index {
            entries.push(("index", index.to_string()));
        }
        fields.push(("file", entries));
    }
    if !r.tags.is_empty() {
        fields.push(("tags", r.tags.iter().map(|(k, v)| (*k, quote(v))).collect()));
    }
    fields
}

/// The results as block sequence items at `indent`, each line ended by `nl`.
pub fn render_block(results: &[FnResult], indent: &str, nl: &str) -> String {
    let mut out = String::new();
    for r in results {
        let _ = write!(out, "{indent}- message: {}{nl}", quote(&r.message));
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
                format!("\"message\": {}", quote(&r.message)),
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

    let mut out = String::with_capacity(src.len() + results.len() * 256);
    match existing {
        None if flow_root => {
            let end =
                flow_end(src, root_start).ok_or("the ResourceList mapping is not closed")? - 1;
            let last = src[..end].trim_end().len();
            let comma = if root.entries().is_empty() { "" } else { ", " };
            out.push_str(&src[..last]);
            let _ = write!(out, "{comma}\"results\": [{}]", render_flow(results));
            out.push_str(&src[last..]);
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
            out.push_str(&src[..at]);
            if !out.is_empty() && !out.ends_with('\n') {
                out.push_str(nl);
            }
            let _ = write!(out, "{indent}results:{nl}");
            out.push_str(&render_block(results, &indent, nl));
            out.push_str(&src[at..]);
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
                out.push_str(&src[..from]);
                let space = if from == colon + 1 { " " } else { "" };
                let _ = write!(out, "{space}[{}]", render_flow(results));
                out.push_str(&src[to..]);
            } else if matches!(value, Node::Sequence(..)) && rest.starts_with('[') {
                let end = flow_end(src, start).ok_or("the `results` list is not closed")? - 1;
                let last = src[..end].trim_end().len();
                let comma = if value.items().is_empty() { "" } else { ", " };
                out.push_str(&src[..last]);
                let _ = write!(out, "{comma}{}", render_flow(results));
                out.push_str(&src[last..]);
            } else if matches!(value, Node::Sequence(..)) && rest.starts_with('-') {
                let at = block_end(src, &lines, key.start.line, key.start.column - 1);
                let dash_line_start = src[..start].rfind('\n').map_or(0, |i| i + 1);
                let indent = &src[dash_line_start..start];
                let mut text = src[..at].to_string();
                if !text.ends_with('\n') {
                    text.push_str(nl);
                }
                out.push_str(&text);
                out.push_str(&render_block(results, indent, nl));
                out.push_str(&src[at..]);
            } else {
                return Err("the input's `results` is not a list; cannot add to it".to_string());
            }
        }
    }
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
mod tests {
    use super::*;

    fn no_live(_: &Settings) -> Result<Box<dyn Registry>, String> {
        Err("no live registry in unit tests".to_string())
    }

    fn root_of(src: &str) -> Node {
        yaml::parse(src).unwrap().documents.remove(0).root
    }

    fn info(message: &str) -> FnResult {
        FnResult::general(Severity::Info, message)
    }

    #[test]
    fn config_map_and_own_kind_are_read() {
        let map = root_of(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {registry-snapshot: snap.json, insecure-registries: 'Reg:5000, other'}\n",
        );
        assert_eq!(
            read_config(Some(&map)).unwrap(),
            Settings {
                registry_snapshot: Some("snap.json".into()),
                insecure_registries: vec!["reg:5000".into(), "other".into()],
                ..Settings::default()
            }
        );
        let own = root_of(
            "apiVersion: image-update.dev/v1alpha1\nkind: ImageUpdateConfig\nspec:\n  caFile: ca.pem\n  dockerConfig: d.json\n  insecureRegistries: [a, 'b,c']\n",
        );
        assert_eq!(
            read_config(Some(&own)).unwrap(),
            Settings {
                insecure_registries: vec!["a".into(), "b".into(), "c".into()],
                ca_file: Some("ca.pem".into()),
                docker_config: Some("d.json".into()),
                ..Settings::default()
            }
        );
        assert_eq!(read_config(None).unwrap(), Settings::default());
        let empty = root_of("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
        assert_eq!(read_config(Some(&empty)).unwrap(), Settings::default());
    }

    #[test]
    fn config_refuses_unknown_keys_and_kinds() {
        let typo = root_of("apiVersion: v1\nkind: ConfigMap\ndata:\n  registry-snaphot: s.json\n");
        let e = read_config(Some(&typo)).unwrap_err();
        assert!(e.contains("unknown key \"registry-snaphot\""), "{e}");
        let camel_in_map =
            root_of("apiVersion: v1\nkind: ConfigMap\ndata:\n  registrySnapshot: s.json\n");
        assert!(read_config(Some(&camel_in_map)).is_err());
        let other = root_of("apiVersion: fn.kpt.dev/v1alpha1\nkind: SetNamespace\n");
        let e = read_config(Some(&other)).unwrap_err();
        assert!(e.contains("not supported"), "{e}");
    }

    #[test]
    fn flags_override_the_function_config() {
        let config = Settings {
            registry_snapshot: Some("config.json".into()),
            insecure_registries: vec!["a".into()],
            ca_file: Some("ca.pem".into()),
            docker_config: None,
            policies: vec!["infra".into()],
        };
        let flags = Settings {
            registry_snapshot: Some("flag.json".into()),
            ..Settings::default()
        };
        let merged = flags.over(config.clone());
        assert_eq!(merged.registry_snapshot, Some("flag.json".into()));
        assert_eq!(merged.insecure_registries, vec!["a".to_string()]);
        assert_eq!(merged.ca_file, Some("ca.pem".into()));
        let flags = Settings {
            insecure_registries: vec!["b".into()],
            ..Settings::default()
        };
        assert_eq!(
            flags.over(config).insecure_registries,
            vec!["b".to_string()]
        );
    }

    #[test]
    fn item_files_come_from_annotations() {
        let src = "items:\n- metadata:\n    annotations:\n      config.kubernetes.io/path: './a/b.yaml'\n      config.kubernetes.io/index: '2'\n- metadata:\n    annotations:\n      config.kubernetes.io/path: 'old.yaml'\n      internal.config.kubernetes.io/path: 'new.yaml'\n- kind: X\n";
        let root = root_of(src);
        let items = root.get("items").unwrap().items();
        assert_eq!(item_file(&items[0], 0), "a/b.yaml");
        assert_eq!(annotation(&items[0], &INDEX_ANNOTATIONS), Some("2"));
        assert_eq!(item_file(&items[1], 1), "new.yaml");
        assert_eq!(item_file(&items[2], 2), "item-2");
    }

    #[test]
    fn field_paths_name_keys_and_indexes() {
        let src = "spec:\n  containers:\n  - name: a\n  - name: b\n    image: x:1\nmetadata:\n  annotations:\n    a.b/c: v\n";
        let root = root_of(src);
        let at = |needle: &str| src.find(needle).unwrap();
        assert_eq!(
            field_path(&root, at("x:1")).as_deref(),
            Some("spec.containers[1].image")
        );
        assert_eq!(
            field_path(&root, at("v\n")).as_deref(),
            Some("metadata.annotations[\"a.b/c\"]")
        );
        assert_eq!(field_path(&root, 1), None);
    }

    #[test]
    fn change_messages_show_the_new_tag() {
        let change = |setter, old: &str, new: &str| Change {
            file: "f".into(),
            line: 1,
            policy: crate::policy::PolicyId::new("apps", "web"),
            setter,
            old: old.into(),
            new: new.into(),
            object: Default::default(),
        };
        assert_eq!(
            change_message(&change(
                "image",
                "ghcr.io/acme/web:1.0.0",
                "ghcr.io/acme/web:1.1.0"
            )),
            "ghcr.io/acme/web:1.0.0 -> 1.1.0 (apps:web)"
        );
        assert_eq!(
            change_message(&change(
                "image",
                "ghcr.io/acme/web:1.0.0",
                "ghcr.io/acme/web:1.1.0@sha256:ab"
            )),
            "ghcr.io/acme/web:1.0.0 -> 1.1.0@sha256:ab (apps:web)"
        );
        assert_eq!(
            change_message(&change("image", "old/web:1", "ghcr.io/acme/web:2")),
            "old/web:1 -> ghcr.io/acme/web:2 (apps:web)"
        );
        assert_eq!(
            change_message(&change("tag", "1.0.0", "1.1.0")),
            "1.0.0 -> 1.1.0 (apps:web:tag)"
        );
    }

    #[test]
    fn quoting_escapes_what_readers_could_misread() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("x\ny\u{2028}z\u{7}"), r#""x\ny\u2028z\u0007""#);
        let text = format!("k: {}\n", quote("tab\there \u{85} é"));
        let root = root_of(&text);
        assert_eq!(root.str_at(&["k"]), Some("tab\there \u{85} é"));
    }

    #[test]
    fn results_are_appended_to_a_block_list() {
        let src = "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\n";
        let out = append_results(src, &root_of(src), &[info("one")]).unwrap();
        assert_eq!(
            out,
            format!("{src}results:\n- message: \"one\"\n  severity: info\n")
        );
        // No final line break, CRLF, and a closing `...`.
        let src = "kind: ResourceList\r\nitems: []";
        let out = append_results(src, &root_of(src), &[info("x")]).unwrap();
        assert_eq!(
            out,
            "kind: ResourceList\r\nitems: []\r\nresults:\r\n- message: \"x\"\r\n  severity: info\r\n"
        );
        let src = "kind: ResourceList\nitems: []\n...\n";
        let out = append_results(src, &root_of(src), &[info("x")]).unwrap();
        assert!(out.ends_with("severity: info\n...\n"), "{out}");
        // Nothing to say: nothing changes.
        assert_eq!(append_results(src, &root_of(src), &[]).unwrap(), src);
    }

    #[test]
    fn earlier_results_are_kept() {
        let block = "kind: ResourceList\nresults:\n  - message: earlier\n    severity: warning\n\n  # end\nitems: []\n";
        let out = append_results(block, &root_of(block), &[info("ours")]).unwrap();
        assert_eq!(
            out,
            "kind: ResourceList\nresults:\n  - message: earlier\n    severity: warning\n  - message: \"ours\"\n    severity: info\n\n  # end\nitems: []\n"
        );
        let compact = "kind: ResourceList\nresults:\n- message: earlier\nitems: []\n";
        let out = append_results(compact, &root_of(compact), &[info("ours")]).unwrap();
        assert_eq!(
            out,
            "kind: ResourceList\nresults:\n- message: earlier\n- message: \"ours\"\n  severity: info\nitems: []\n"
        );
        let flow = "kind: ResourceList\nresults: [{message: earlier}] # kept\nitems: []\n";
        let out = append_results(flow, &root_of(flow), &[info("ours")]).unwrap();
        assert_eq!(
            out,
            "kind: ResourceList\nresults: [{message: earlier}, {\"message\": \"ours\", \"severity\": \"info\"}] # kept\nitems: []\n"
        );
        for empty in [
            "results: []\n",
            "results:\n",
            "results: null\n",
            "results: # none\n",
        ] {
            let src = format!("kind: ResourceList\n{empty}items: []\n");
            let out = append_results(&src, &root_of(&src), &[info("ours")]).unwrap();
            let root = root_of(&out);
            let results = root.get("results").unwrap().items();
            assert_eq!(results.len(), 1, "{out}");
            assert_eq!(results[0].str_at(&["message"]), Some("ours"));
            assert_eq!(root.get("items").unwrap().items().len(), 0);
        }
        let scalar = "kind: ResourceList\nresults: oops\n";
        assert!(append_results(scalar, &root_of(scalar), &[info("x")]).is_err());
    }

    #[test]
    fn results_are_added_to_a_json_list() {
        let src = "{\"apiVersion\": \"config.kubernetes.io/v1\", \"kind\": \"ResourceList\", \"items\": [{\"kind\": \"A\"}]}\n";
        let result = FnResult {
            file: Some(FileRef {
                path: "a.yaml".into(),
                index: Some(0),
            }),
            ..info("one")
        };
        let out = append_results(src, &root_of(src), &[result]).unwrap();
        assert_eq!(
            out,
            "{\"apiVersion\": \"config.kubernetes.io/v1\", \"kind\": \"ResourceList\", \"items\": [{\"kind\": \"A\"}], \"results\": [{\"message\": \"one\", \"severity\": \"info\", \"file\": {\"path\": \"a.yaml\", \"index\": 0}}]}\n"
        );
        serde_json::from_str::<serde_json::Value>(&out).expect("still JSON");
    }

    #[test]
    fn the_input_must_be_one_resource_list() {
        let flags = Settings::default();
        for bad in [
            "",
            "kind: ConfigMap\n",
            "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\n---\nkind: X\n",
            "a: [\n",
            "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: 3\n",
        ] {
            assert!(process(bad, &flags, &no_live).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_bad_function_config_is_an_error_result_and_changes_nothing() {
        let src = "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n- kind: A\n  image: a:1 # {\"$imagepolicy\": \"ns:p\"}\nfunctionConfig:\n  apiVersion: v1\n  kind: ConfigMap\n  data: {snapshot: x}\n";
        let done = process(src, &Settings::default(), &no_live).unwrap();
        assert!(done.failed());
        assert!(done.output.starts_with(src));
        assert!(done.results[0].message.contains("unknown key \"snapshot\""));
        // Without a snapshot the live registry is asked for; it may fail too.
        let src = "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\n";
        let done = process(src, &Settings::default(), &no_live).unwrap();
        assert_eq!(done.results[0].message, "no live registry in unit tests");
    }

    #[test]
    fn problems_map_to_the_item_that_holds_them() {
        let src = "kind: ResourceList\nitems:\n- kind: A\n  x: 1\n- kind: B\n  y: 2\nfunctionConfig: {}\n";
        let root = root_of(src);
        let lines = Lines::new(src);
        let items = read_items(src, &lines, &root).unwrap();
        assert_eq!(items.items.len(), 2);
        assert_eq!(items.at(src.find("x: 1").unwrap()), Some(0));
        assert_eq!(items.at(src.find("y: 2").unwrap()), Some(1));
        assert_eq!(items.at(src.find("functionConfig").unwrap()), None);
        assert_eq!(items.at(0), None);
        let p = Problem::at("item-1", 5, None, Severity::Error, "x");
        assert_eq!(items.of_problem(&lines, &p), Some(1));
        let p = Problem::at("item-0", 4, Some(5), Severity::Error, "x");
        assert_eq!(items.of_problem(&lines, &p), Some(0));
    }
}
