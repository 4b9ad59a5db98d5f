//! The orchestrator of `image-update run`: read the tree, declare policies,
//! ask the registry once per repository, select, plan, write, report.
//!
//! Each step is a function of the previous step's values; only this module
//! strings them together with the filesystem and the registry.
//!
//! Over 1,000 lines, knowingly: besides the run it holds the reading of the
//! tree (`read_tree` to `unparsable`) and the registry questions (`list`,
//! `tag_metadata`, `resolve`). The reading is the next seam to cut into a
//! folder; it waits until the concurrent registry-speed and explain work on
//! this file has landed, so that neither has to merge moved code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};

use crate::argocd::{self, plan::Fact, plan::Invalid, plan::Listed, plan::Metadata, plan::Write};
use crate::flux::{self, Declared, GitSettings};
use crate::history::History;
use crate::hold;
use crate::image::Reference;
use crate::image::Repository;
use crate::marker::{self, Field, Marker};
use crate::outcome::{PolicyOutcome, Problem, Report, Severity};
use crate::plan::{self, Resolved, Target, Targets};
use crate::policy::argo::TagInfo;
use crate::policy::candidates::GateFn;
use crate::policy::{Candidates, DigestReflection, PER_OUTCOME, Policy, PolicyId};
use crate::registry::{Registry, TagRef};
use crate::report;
use crate::rewrite;
use crate::scan::{self, Filter};
use crate::tree_write;
use crate::yaml;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub root: PathBuf,
    pub dry_run: bool,
    pub diff: bool,
    pub filter: Filter,
    /// Write a selected value even when it ranks below the value in the
    /// file (upstream behaviour); by default such a downgrade is reported.
    pub allow_downgrade: bool,
    /// This repository's URL, to match Argo CD applications' sources.
    pub repo_url: Option<String>,
    /// The namespace Argo CD runs in; empty = `argocd`.
    pub argocd_namespace: String,
    /// More directories to read resources from (`--policies`); never edited.
    pub policies: Vec<PathBuf>,
    /// Rollback holds and promotion gates.
    pub history: HistoryOptions,
}

/// How the git history is read and used.
#[derive(Debug, Clone)]
pub struct HistoryOptions {
    /// `--ignore-holds`: no rollback holds.
    pub ignore_holds: bool,
    /// `--history-depth`: at most this many commits are read.
    pub depth: usize,
    /// Who else commits automatically (`--automation-author`, `--author`).
    pub authors: Vec<String>,
    /// The clock for soak times, seconds since the Unix epoch; `None`: now.
    pub now: Option<i64>,
}

impl Default for HistoryOptions {
    fn default() -> HistoryOptions {
        HistoryOptions {
            ignore_holds: false,
            depth: crate::history::DEFAULT_DEPTH,
            authors: Vec::new(),
            now: None,
        }
    }
}

impl HistoryOptions {
    pub fn now(&self) -> i64 {
        self.now.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        })
    }
}

/// A file that carries markers.
struct MarkedFile {
    rel: String,
    src: String,
    markers: Vec<Marker>,
}

/// What a run leaves for the steps after it (commit, push).
pub struct Outcome {
    pub report: Report,
    pub replay: Replay,
    /// The settings of the automation that covers the changed files.
    pub git: Option<GitSettings>,
}

/// The resolved policies of a run, able to update any version of a file the
/// same way: a push that lost a race redoes its work on the new tip with it.
pub struct Replay {
    targets: Targets,
    /// Argo CD write-backs, by file.
    argo: BTreeMap<String, Vec<Write>>,
}

impl Replay {
    /// `src` updated by the run's policies; `None` when nothing changes.
    pub fn apply(&self, rel: &str, src: &str) -> Result<Option<String>, String> {
        let stream = yaml::parse(src).map_err(|e| format!("{rel}:{e}"))?;
        let found = marker::find(src, &stream);
        let plan = plan::plan_file(rel, src, &found.markers, &self.targets);
        let marked = if plan.edits.is_empty() {
            None
        } else {
            Some(rewrite::apply(src, &plan.edits).map_err(|e| format!("{rel}: {e}"))?)
        };
        match self.argo.get(rel) {
            Some(writes) => {
                let base = marked.as_deref().unwrap_or(src);
                Ok(apply_writes(writes, Some(base))
                    .map_err(|e| format!("{rel}: {e}"))?
                    .or(marked))
            }
            None => Ok(marked),
        }
    }
}

impl crate::commit::Replay for Replay {
    fn apply(&self, rel: &str, src: &str) -> Result<Option<String>, String> {
        Replay::apply(self, rel, src)
    }
}

/// A file's Argo CD writes in order; `None` when the text does not change.
fn apply_writes(writes: &[Write], existing: Option<&str>) -> Result<Option<String>, String> {
    let mut current: Option<String> = None;
    for write in writes {
        let base = current.as_deref().or(existing);
        if let Some(new) = write.apply(base)? {
            current = Some(new);
        }
    }
    Ok(current.filter(|new| Some(new.as_str()) != existing))
}

pub fn run(options: &RunOptions, registry: &mut dyn Registry) -> Outcome {
    let mut report = Report {
        version: 1,
        dry_run: options.dry_run,
        ..Report::default()
    };
    let controller_ns = match options.argocd_namespace.as_str() {
        "" => argocd::config::DEFAULT_NAMESPACE,
        ns => ns,
    };
    // A dry run leaves even the leftovers of killed runs where they are.
    let leftovers = match options.dry_run {
        true => scan::Leftovers::Skip,
        false => scan::Leftovers::Remove,
    };
    let (marked, mut resources, mut argo) = read_tree(
        &options.root,
        &options.filter,
        leftovers,
        controller_ns,
        &mut report.problems,
    );
    let external = read_policies(
        Some(&options.root),
        &options.policies,
        &mut resources,
        &mut argo,
        controller_ns,
        &mut report.problems,
    );
    let declared = resources.declare();
    report.problems.append(&mut resources.problems);
    let mut configured = argo.configure(options.repo_url.as_deref());
    report.problems.append(&mut argo.problems);
    // An Application in a `--policies` directory is never edited, so the
    // write-back method `argocd` (which edits it) cannot be done.
    configured.retain(|c| {
        let file = &c.app.origin.file;
        let outside = external.iter().any(|(p, _)| file.starts_with(&format!("{p}/")));
        if outside && !c.write_back.is_git() {
            report.problems.push(Problem::at(
                file,
                c.app.origin.line,
                None,
                Severity::Error,
                format!(
                    "Application {}/{}: it is read from --policies, which is never edited, so write-back method argocd cannot apply; use git",
                    c.app.namespace, c.app.name
                ),
            ));
        }
        !outside || c.write_back.is_git()
    });
    // Applications share files (one file of many Applications, say): each
    // is read once. A file named `PATH/<file>` is an Application's own file
    // in a `--policies` directory, read from there.
    let cache = std::cell::RefCell::new(std::collections::HashMap::new());
    let read = |rel: &str| {
        cache
            .borrow_mut()
            .entry(rel.to_string())
            .or_insert_with(|| {
                match external.iter().find_map(|(prefix, dir)| {
                    Some((dir, rel.strip_prefix(prefix)?.strip_prefix('/')?))
                }) {
                    Some((dir, inside)) => read_in_tree(dir, inside),
                    None => read_in_tree(&options.root, rel),
                }
            })
            .clone()
    };
    let prepared = argocd::plan::prepare(configured, &read, controller_ns);

    let pinned = pinned_references(&marked);
    registry.mark_insecure(&insecure_hosts(&declared));
    pin_pull_secrets(&prepared, registry, &mut report.problems);
    // The registries are asked while the git history is read, and Argo CD's
    // build dates, platforms and digests while the Flux policies are
    // selected: work that needs none of the answers overlaps with them.
    let shared: &dyn Registry = registry;
    let mut history_problems = Vec::new();
    let (listed, invalid, skipped, argo_constraints, resolved, metadata) =
        std::thread::scope(|scope| {
            let history = scope.spawn(|| {
                history_constraints(
                    &options.root,
                    &options.history,
                    (&marked, &declared),
                    &prepared,
                    resources.authors(),
                    &mut history_problems,
                )
            });
            let (listed, invalid, skipped) = list(
                shared,
                repositories_of(&declared).chain(prepared.repositories().cloned()),
            );
            let wanted = prepared.metadata_wanted(&listed);
            let metadata = scope.spawn(move || tag_metadata(shared, &wanted));
            let (constraints, argo_constraints) = joined(history);
            let resolved =
                resolve_listed(&declared, &constraints, shared, &pinned, &listed, &invalid);
            (
                listed,
                invalid,
                skipped,
                argo_constraints,
                resolved,
                joined(metadata),
            )
        });
    let (outcomes, mut targets) = resolved;
    report.problems.extend(skipped);
    report.problems.append(&mut history_problems);
    add_unread(&mut targets, &resources.unread);
    let argo = argocd::plan::finish(
        prepared,
        &listed,
        &invalid,
        &metadata,
        options.allow_downgrade,
        &argo_constraints,
    );
    if options.allow_downgrade {
        targets.values_mut().flatten().for_each(|t| t.guard = None);
    }
    report.policies = outcomes;
    report.requests = registry.requests();
    report.problems.extend(
        registry
            .notes()
            .into_iter()
            .map(|note| Problem::general(Severity::Warning, note)),
    );

    let mut diffs = String::new();
    for file in &marked {
        let plan = plan::plan_file(&file.rel, &file.src, &file.markers, &targets);
        report.problems.extend(plan.problems);
        if plan.edits.is_empty() {
            continue;
        }
        let new = match rewrite::apply(&file.src, &plan.edits) {
            Ok(new) => new,
            Err(e) => {
                report.problems.push(Problem::file(
                    &file.rel,
                    Severity::Error,
                    format!("not rewritten: {e}"),
                ));
                continue;
            }
        };
        if !options.dry_run
            && let Err(e) = tree_write::replace_file(
                &options.root,
                &file.rel,
                file.src.as_bytes(),
                new.as_bytes(),
            )
        {
            report.problems.push(Problem::file(
                &file.rel,
                Severity::Error,
                format!("cannot write: {e}"),
            ));
            continue;
        }
        if options.diff {
            diffs.push_str(&report::diff(&file.rel, &file.src, &new));
        }
        report.files.push(file.rel.clone());
        report.changes.extend(plan.changes);
    }
    for (rel, writes) in &argo.writes {
        let existing = read_in_tree(&options.root, rel);
        let problem = |e: String| Problem::file(rel, Severity::Error, e);
        let new = match apply_writes(writes, existing.as_deref()) {
            Ok(Some(new)) => new,
            Ok(None) => continue,
            Err(e) => {
                report.problems.push(problem(format!("not written: {e}")));
                continue;
            }
        };
        if !options.filter.allows(rel) {
            report.problems.push(Problem::file(
                rel,
                Severity::Warning,
                "Argo CD write-back not written: the file is outside --include/--exclude",
            ));
            continue;
        }
        if !options.dry_run {
            let written = match &existing {
                Some(old) => {
                    tree_write::replace_file(&options.root, rel, old.as_bytes(), new.as_bytes())
                }
                None => tree_write::create_file(&options.root, rel, new.as_bytes()),
            };
            if let Err(e) = written {
                report.problems.push(problem(format!("cannot write: {e}")));
                continue;
            }
        }
        if options.diff {
            diffs.push_str(&report::diff(rel, existing.as_deref().unwrap_or(""), &new));
        }
        if !report.files.contains(rel) {
            report.files.push(rel.clone());
        }
    }
    report.problems.extend(argo.problems);
    report.applications = argo.apps;
    if options.diff {
        report.diff = Some(diffs);
    }
    report
        .problems
        .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    let git = resources.git_settings(report.files.iter().map(String::as_str));
    Outcome {
        report,
        replay: Replay {
            targets,
            argo: argo.writes,
        },
        git,
    }
}

/// What a scoped thread returned; its panic, if it panicked.
fn joined<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// `items.map(f)` on every core, results in input order. The calling thread
/// feeds the workers as it produces items (walking the tree, say), and each
/// worker takes the next item when it is free, so expensive items that
/// cluster still spread evenly.
fn parallel_map<T: Send, R: Send>(
    items: impl Iterator<Item = T>,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    if workers == 1 {
        return items.map(f).collect();
    }
    let (send, receive) = mpsc::channel::<(usize, T)>();
    let receive = Mutex::new(receive);
    let (f, receive) = (&f, &receive);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let next = receive
                            .lock()
                            .expect("no worker panics holding the lock")
                            .recv();
                        let Ok((i, item)) = next else {
                            return done;
                        };
                        done.push((i, f(item)));
                    }
                })
            })
            .collect();
        for item in items.enumerate() {
            send.send(item).expect("the workers outlive the sender");
        }
        drop(send);
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a worker thread panicked"))
            .collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// What one file contributes to the run.
#[derive(Default)]
struct Reading {
    problems: Vec<Problem>,
    /// The parsed file, when it may hold Flux resources.
    resources: Option<(String, yaml::Stream)>,
    marked: Option<MarkedFile>,
    /// Set when the file declares Flux resources and cannot be parsed.
    unread: Option<flux::Origin>,
    /// Set when the file declares an Argo CD ImageUpdater and cannot be
    /// parsed.
    unread_updater: Option<String>,
}

/// Reads every file once: Flux resources from any YAML file, markers from the
/// editable ones. Files are screened by a byte search before any parsing, and
/// read and parsed on all cores; the results are merged in walk order.
fn read_tree(
    root: &Path,
    filter: &Filter,
    leftovers: scan::Leftovers,
    controller_ns: &str,
    problems: &mut Vec<Problem>,
) -> (
    Vec<MarkedFile>,
    flux::Resources,
    argocd::config::Declarations,
) {
    let readings = scan::walk_map(root, filter, leftovers, |entry| match entry {
        Ok(entry) => read_file(&entry, entry.editable),
        Err(problem) => Reading {
            problems: vec![problem],
            ..Reading::default()
        },
    });
    let mut resources = flux::Resources::default();
    let mut argo = argocd::config::Declarations::default();
    let mut marked = Vec::new();
    for reading in readings {
        problems.extend(reading.problems);
        if let Some((rel, stream)) = reading.resources {
            declare(&rel, &stream, &mut resources, &mut argo, controller_ns);
        }
        resources.unread.extend(reading.unread);
        argo.unread.extend(reading.unread_updater);
        marked.extend(reading.marked);
    }
    (marked, resources, argo)
}

/// Every resource of one parsed file, to the readers of each dialect.
fn declare(
    rel: &str,
    stream: &yaml::Stream,
    resources: &mut flux::Resources,
    argo: &mut argocd::config::Declarations,
    controller_ns: &str,
) {
    for (i, document) in stream.documents.iter().enumerate() {
        resources.read(rel, &document.root);
        argo.read(rel, i, &document.root, controller_ns);
        if let Some(unified) = crate::kubesphere::feed(resources, rel, &document.root) {
            argo.add_unified(&unified);
        }
    }
}

/// The `--policies` directories: their resources are read as the tree's
/// are, their markers never, and nothing in them is edited. Their files are
/// named `<PATH>/<file>` (PATH as given, `./` before a relative one that
/// has none), which no tree file can be, so an Application read there is
/// never read or written as a tree file. Returns those prefixes, each with
/// its directory.
/// `root` is the tree, when there is one (a PATH inside it is skipped).
pub fn read_policies(
    root: Option<&Path>,
    dirs: &[PathBuf],
    resources: &mut flux::Resources,
    argo: &mut argocd::config::Declarations,
    controller_ns: &str,
    problems: &mut Vec<Problem>,
) -> Vec<(String, PathBuf)> {
    let tree = root.and_then(|r| r.canonicalize().ok());
    let mut prefixes = Vec::new();
    for dir in dirs {
        let mut prefix = dir
            .to_string_lossy()
            .replace('\\', "/")
            .trim_end_matches('/')
            .to_string();
        // `infra` becomes `./infra`: a name no file of the tree can have.
        if dir.is_relative() && !prefix.starts_with("./") && !prefix.starts_with("../") {
            prefix = format!("./{prefix}");
        }
        if let (Some(tree), Ok(d)) = (&tree, dir.canonicalize())
            && d.starts_with(tree)
        {
            problems.push(Problem::general(
                Severity::Warning,
                format!("--policies {prefix} is inside the tree, which is read anyway; ignored"),
            ));
            continue;
        }
        let named = |rel: &str| format!("{prefix}/{rel}");
        let readings =
            scan::walk_map(
                dir,
                &Filter::default(),
                scan::Leftovers::Skip,
                |entry| match entry {
                    // Never edited, but asked for: a file we cannot parse is said.
                    Ok(entry) => read_file(
                        &scan::Entry {
                            editable: false,
                            ..entry
                        },
                        true,
                    ),
                    Err(problem) => Reading {
                        problems: vec![problem],
                        ..Reading::default()
                    },
                },
            );
        for reading in readings {
            problems.extend(reading.problems.into_iter().map(|mut p| {
                p.file = p.file.map(|f| named(&f));
                p
            }));
            if let Some((rel, stream)) = reading.resources {
                declare(&named(&rel), &stream, resources, argo, controller_ns);
            }
            resources
                .unread
                .extend(reading.unread.map(|o| flux::Origin {
                    file: named(&o.file),
                    ..o
                }));
            argo.unread
                .extend(reading.unread_updater.map(|f| named(&f)));
        }
        prefixes.push((prefix, dir.clone()));
    }
    prefixes
}

/// A file of the tree by its relative path, for the Argo CD planner: never
/// outside the tree, never through a symbolic link.
fn read_in_tree(root: &Path, rel: &str) -> Option<String> {
    let path = Path::new(rel);
    if path.is_absolute()
        || path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return None;
    }
    let full = root.join(path);
    let mut dir = root.to_path_buf();
    for component in path.components() {
        dir.push(component);
        if std::fs::symlink_metadata(&dir)
            .ok()?
            .file_type()
            .is_symlink()
        {
            return None;
        }
    }
    std::fs::read_to_string(full).ok()
}

/// A UTF-16 file (by its byte-order mark) that would hold markers or
/// resources if it were read as text: reported, since the byte screen for
/// UTF-8 tokens would pass over it in silence.
fn utf16_with_declarations(rel: &str, bytes: &[u8]) -> Option<Problem> {
    let (order, little) = match bytes {
        [0xFF, 0xFE, ..] => ("FF FE", true),
        [0xFE, 0xFF, ..] => ("FE FF", false),
        _ => return None,
    };
    let units = bytes[2..].chunks_exact(2).map(|p| match little {
        true => u16::from_le_bytes([p[0], p[1]]),
        false => u16::from_be_bytes([p[0], p[1]]),
    });
    let text: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    [
        marker::TOKEN,
        flux::API_GROUP,
        argocd::config::SCREEN,
        crate::kubesphere::API_GROUP,
    ]
    .iter()
    .any(|token| text.contains(token))
    .then(|| {
        Problem::file(
            rel,
            Severity::Error,
            format!(
                "UTF-16 text (byte-order mark {order}) with image-update declarations; only UTF-8 is read: convert it to UTF-8; left untouched"
            ),
        )
    })
}

/// Reads one file; `say_unparsable` is whether a file we need that does
/// not parse is reported (not for a tree file `--exclude`d from editing).
fn read_file(entry: &scan::Entry, say_unparsable: bool) -> Reading {
    let mut reading = Reading::default();
    let rel = entry.rel.as_str();
    let bytes = match std::fs::read(&entry.path) {
        Ok(bytes) => bytes,
        Err(e) => {
            reading.problems.push(Problem::file(
                rel,
                Severity::Error,
                format!("cannot read: {e}"),
            ));
            return reading;
        }
    };
    if let Some(problem) = scan::is_yaml_name(rel)
        .then(|| utf16_with_declarations(rel, &bytes))
        .flatten()
    {
        reading.problems.push(problem);
        return reading;
    }
    // Markers in files we may not edit are not our business: such a file is
    // parsed only when it may hold Flux resources.
    let has_marker =
        entry.editable && memchr::memmem::find(&bytes, marker::TOKEN.as_bytes()).is_some();
    let has_resource = memchr::memmem::find(&bytes, flux::API_GROUP.as_bytes()).is_some()
        || memchr::memmem::find(&bytes, argocd::config::SCREEN.as_bytes()).is_some()
        || memchr::memmem::find(&bytes, crate::kubesphere::API_GROUP.as_bytes()).is_some();
    if !has_marker && !has_resource {
        return reading;
    }
    if !scan::is_yaml_name(rel) {
        if has_marker && !rel.ends_with(".md") {
            reading.problems.push(Problem::file(
                rel,
                Severity::Info,
                "mentions $imagepolicy, but markers are read only in *.yaml, *.yml and Kustomization files",
            ));
        }
        return reading;
    }
    let src = match String::from_utf8(bytes) {
        Ok(src) => src,
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = 1 + memchr::memchr_iter(b'\n', valid).count();
            let column = 1 + valid.len() - memchr::memrchr(b'\n', valid).map_or(0, |i| i + 1);
            reading.problems.push(Problem::at(
                rel,
                line,
                Some(column),
                Severity::Error,
                format!("not UTF-8 text ({}); left untouched", e.utf8_error()),
            ));
            return reading;
        }
    };
    let stream = match yaml::parse(&src) {
        Ok(stream) => stream,
        Err(e) => {
            let problem = unparsable(rel, &src, has_marker, say_unparsable, &e);
            // What it declares is unknown: it may hold a folder's copy.
            if problem
                .as_ref()
                .is_some_and(|p| p.severity == Severity::Error)
            {
                if declares(&src, &[flux::API_GROUP, crate::kubesphere::API_GROUP]) {
                    reading.unread = Some(flux::Origin {
                        file: rel.to_string(),
                        line: e.line,
                    });
                }
                if declares(&src, &[argocd::config::UPDATER_API]) {
                    reading.unread_updater = Some(rel.to_string());
                }
            }
            reading.problems.extend(problem);
            return reading;
        }
    };
    if has_marker {
        let found = marker::find(&src, &stream);
        reading.problems.extend(found.ignored.into_iter().map(|i| {
            Problem::at(
                rel,
                i.line,
                Some(i.column),
                Severity::Warning,
                format!("marker ignored: {}", i.reason),
            )
        }));
        if !found.markers.is_empty() {
            reading.marked = Some(MarkedFile {
                rel: rel.to_string(),
                src,
                markers: found.markers,
            });
        }
    }
    if has_resource {
        reading.resources = Some((rel.to_string(), stream));
    }
    reading
}

/// What to say about a file that is not YAML. Only a file we need is an
/// error: one with markers to update, or one that declares resources of
/// ours (an `apiVersion:` line of their groups). A Helm template that
/// merely mentions a group (an `argocd.argoproj.io/hook` annotation, say)
/// is passed over in silence, as Flux passes over files it cannot parse;
/// one that declares resources gets a note, since templates are not read;
/// a tree file excluded from editing is never reported (`say` false).
fn unparsable(
    rel: &str,
    src: &str,
    has_marker: bool,
    say: bool,
    e: &yaml::SyntaxError,
) -> Option<Problem> {
    if !say {
        return None;
    }
    // A file that is YAML but for a repeated key is no template, whatever
    // its values mention (an automation's `{{range …}}` message template).
    let template = src.contains("{{") && yaml::parse_full(src).is_err();
    let declares = declares(
        src,
        &[
            flux::API_GROUP,
            argocd::config::SCREEN,
            argocd::config::UPDATER_API,
            crate::kubesphere::API_GROUP,
        ],
    );
    let (severity, message) = match (has_marker, declares, template) {
        (true, _, _) | (false, true, false) => (
            Severity::Error,
            format!(
                "malformed YAML: {}; file left untouched{}",
                e.message,
                template_hint(template, rel)
            ),
        ),
        (false, true, true) => (
            Severity::Info,
            format!(
                "a template ({{{{ }}}}), not YAML ({}): the resources it declares are not read; render it to update them",
                e.message
            ),
        ),
        (false, false, _) => return None,
    };
    Some(Problem::at(rel, e.line, Some(e.column), severity, message))
}

/// Whether `src` has an `apiVersion:` line of one of `groups`: it declares
/// resources of that group (a mere mention, in an annotation, does not).
fn declares(src: &str, groups: &[&str]) -> bool {
    src.lines().any(|line| {
        let line = line.trim_start().trim_start_matches("- ");
        line.strip_prefix("apiVersion:").is_some_and(|v| {
            let group = v.trim().trim_matches(['"', '\'']);
            groups.iter().any(|g| group.starts_with(g))
        })
    })
}

/// A reference a full marker already pins: `name:tag@digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub name: String,
    pub tag: String,
    pub digest: String,
}

/// The first reference pinned by each policy's full markers: what Flux's
/// `IfNotPresent` keeps instead of asking the registry again.
fn pinned_references(files: &[MarkedFile]) -> BTreeMap<PolicyId, Pinned> {
    pinned_by(files.iter().flat_map(|f| &f.markers))
}

/// The first reference pinned by each policy's full markers.
pub fn pinned_by<'a>(markers: impl Iterator<Item = &'a Marker>) -> BTreeMap<PolicyId, Pinned> {
    let mut pinned = BTreeMap::new();
    for m in markers {
        if m.setter.field != Field::Image {
            continue;
        }
        let reference = Reference::split(&m.scalar.value);
        if let (Some(tag), Some(digest)) = (reference.tag, reference.digest) {
            pinned
                .entry(m.setter.policy.clone())
                .or_insert_with(|| Pinned {
                    name: reference.name.to_string(),
                    tag: tag.to_string(),
                    digest: digest.to_string(),
                });
        }
    }
    pinned
}

/// The digest `IfNotPresent` may reuse: one pinned for the same image and tag.
pub fn digest_to_reuse(
    reflection: DigestReflection,
    pinned: Option<&Pinned>,
    image: &str,
    tag: &str,
) -> Option<String> {
    match (reflection, pinned) {
        (DigestReflection::IfNotPresent, Some(p))
            if p.name == image && p.tag == tag && !p.digest.is_empty() =>
        {
            Some(p.digest.clone())
        }
        _ => None,
    }
}

/// Gives the registry the credentials Argo CD `pullSecret`s name: `env:`
/// and `ext:` work as upstream; cluster Secrets cannot be read from a
/// repository, so the report says what is used instead.
fn pin_pull_secrets(
    prepared: &argocd::plan::Prepared,
    registry: &mut dyn Registry,
    problems: &mut Vec<Problem>,
) {
    use crate::registry::credentials::{Credential, Secret};
    use argocd::config::{PullSecret, user_password};
    for (repository, value, app) in prepared.pull_secrets() {
        let host = &repository.registry;
        let at = |severity, message: String| {
            Problem::at(
                &app.app.origin.file,
                app.app.origin.line,
                None,
                severity,
                format!(
                    "Application {}/{}: {message}",
                    app.app.namespace, app.app.name
                ),
            )
        };
        let found = match PullSecret::parse(value) {
            Err(e) => Err(e),
            Ok(PullSecret::Cluster(name)) => {
                problems.push(at(
                    Severity::Info,
                    format!(
                        "pull secret {name:?} is a cluster Secret, which a repository cannot hold; credentials for {host} come from the docker config, DOCKER_AUTH_CONFIG or a credential helper instead"
                    ),
                ));
                continue;
            }
            Ok(PullSecret::Env(var)) => std::env::var(&var)
                .ok()
                .and_then(|v| user_password(&v))
                .map(|c| (c, format!("environment variable {var} (pull secret)")))
                .ok_or_else(|| {
                    format!("pull secret {value:?}: {var} is unset or not user:password")
                }),
            Ok(PullSecret::Ext(program)) => std::process::Command::new(&program)
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|out| out.status.success())
                .and_then(|out| user_password(String::from_utf8_lossy(&out.stdout).lines().next()?))
                .map(|c| (c, format!("program {program} (pull secret)")))
                .ok_or_else(|| {
                    format!(
                        "pull secret {value:?}: the program failed or printed no user:password line"
                    )
                }),
        };
        match found {
            Ok(((username, password), source)) => {
                let credential = Credential {
                    secret: Secret::Basic { username, password },
                    source,
                };
                if !registry.pin_credential(host, credential) {
                    problems.push(at(
                        Severity::Warning,
                        format!("pull secret {value:?} not used: {host} already has one from another image"),
                    ));
                }
            }
            Err(e) => problems.push(at(Severity::Error, e)),
        }
    }
}

/// Hosts the declarations allow over plain HTTP.
fn insecure_hosts(declared: &[Declared]) -> BTreeSet<String> {
    declared
        .iter()
        .filter_map(|d| d.policy.as_ref().ok())
        .filter(|p| p.insecure)
        .map(|p| p.repository.registry.clone())
        .collect()
}

fn repositories_of(declared: &[Declared]) -> impl Iterator<Item = Repository> + '_ {
    declared
        .iter()
        .filter_map(|d| d.policy.as_ref().ok().map(|p| p.repository.clone()))
}

/// Lists each repository once, in one batch. A tag that is not a valid OCI
/// tag is dropped here, before any strategy sees it (so none can choose it
/// and fail the policy), counted in a warning per repository, and kept
/// aside for the explanations.
fn list(
    registry: &dyn Registry,
    repositories: impl Iterator<Item = Repository>,
) -> (Listed, Invalid, Vec<Problem>) {
    let repositories: Vec<_> = repositories.collect::<BTreeSet<_>>().into_iter().collect();
    let mut warnings = Vec::new();
    let mut invalid = Invalid::new();
    let listed = repositories
        .iter()
        .cloned()
        .zip(registry.tags(&repositories))
        .map(|(repository, tags)| {
            let tags = tags.map(|tags| {
                let (valid, skipped, note) = crate::registry::partition_tags(&repository, tags);
                warnings.extend(note.map(|note| Problem::general(Severity::Warning, note)));
                if !skipped.is_empty() {
                    invalid.insert(repository.clone(), skipped);
                }
                valid
            });
            (repository, tags)
        })
        .collect();
    (listed, invalid, warnings)
}

/// Build dates, platforms and digests of the tags Argo CD strategies need,
/// asked in one batch per kind of question (and per platform for dates).
fn tag_metadata(registry: &dyn Registry, wanted: &[(TagRef, String, bool)]) -> Metadata {
    let mut found: BTreeMap<TagRef, TagInfo> = BTreeMap::new();
    let mut missing: BTreeMap<(TagRef, Fact), String> = BTreeMap::new();
    if wanted.is_empty() {
        return Metadata::default();
    }
    let refs: Vec<TagRef> = wanted
        .iter()
        .map(|(r, _, _)| r.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut note = |r: &TagRef, fact: Fact, e: crate::registry::RegistryError| {
        missing.insert((r.clone(), fact), e.to_string());
    };
    for (r, platforms) in refs.iter().zip(registry.platforms(&refs)) {
        let platforms = platforms.unwrap_or_else(|e| {
            note(r, Fact::Platforms, e);
            Vec::new()
        });
        found.insert(
            r.clone(),
            TagInfo {
                platforms,
                ..TagInfo::named(&r.tag)
            },
        );
    }
    // Build dates are wanted by `newest-build`, digests by `digest`.
    let by_platform: BTreeMap<&str, Vec<TagRef>> = wanted
        .iter()
        .filter(|(_, _, digest)| !*digest)
        .fold(BTreeMap::new(), |mut map, (r, p, _)| {
            map.entry(p.as_str()).or_default().push(r.clone());
            map
        });
    for (platform, refs) in by_platform {
        for (r, created) in refs.iter().zip(registry.created(&refs, platform)) {
            match (found.get_mut(r), created) {
                (Some(info), Ok(created)) => info.created = Some(created),
                (_, Err(e)) => note(r, Fact::Created, e),
                _ => {}
            }
        }
    }
    let digests: Vec<TagRef> = wanted
        .iter()
        .filter(|(_, _, digest)| *digest)
        .map(|(r, _, _)| r.clone())
        .collect();
    for (r, digest) in digests.iter().zip(registry.digests(&digests)) {
        match (found.get_mut(r), digest) {
            (Some(info), Ok(digest)) => info.digest = Some(digest),
            (_, Err(e)) => note(r, Fact::Digest, e),
            _ => {}
        }
    }
    Metadata {
        tags: found,
        missing,
    }
}

/// Files that declare Flux resources but cannot be read stand beside each
/// policy's declarations: a marker nearer to one of them than to the
/// declaration found is left unchanged (its folder's copy may be there).
pub fn add_unread(targets: &mut Targets, unread: &[flux::Origin]) {
    for copies in targets.values_mut() {
        copies.extend(unread.iter().map(|origin| Target {
            origin: origin.clone(),
            scope: flux::Scope::Everywhere,
            latest: Err(()),
            guard: None,
            unread: true,
        }));
    }
}

/// The rollback holds and promotion gates of each Flux declaration and
/// each Argo CD image, from one read of the history of the files their
/// values are in and of the gates' paths. Where there is no history, a
/// gate cannot be passed (said once) and no hold is found; a history cut
/// short is said when something used it.
fn history_constraints<'a>(
    root: &Path,
    options: &'a HistoryOptions,
    (marked, declared): (&[MarkedFile], &[Declared]),
    prepared: &argocd::plan::Prepared,
    tree_authors: impl Iterator<Item = &'a str>,
    problems: &mut Vec<Problem>,
) -> (Vec<hold::Constraints>, Vec<hold::Constraints>) {
    let holds = !options.ignore_holds;
    let images = prepared.images();
    let mut paths: BTreeSet<String> = declared
        .iter()
        .filter_map(|d| Some(d.gate.as_ref()?.from.clone()))
        .chain(
            images
                .iter()
                .filter_map(|(_, g, _)| Some(g.as_ref()?.from.clone())),
        )
        .collect();
    let gated = !paths.is_empty();
    let held = holds && (!marked.is_empty() || images.iter().any(|(_, _, f)| f.is_some()));
    if holds {
        paths.extend(marked.iter().map(|f| f.rel.clone()));
        paths.extend(
            images
                .iter()
                .filter_map(|(_, _, f)| Some(f.as_ref()?.to_string())),
        );
        paths.extend(
            (0..images.len())
                .flat_map(|j| prepared.written_elsewhere(j))
                .map(str::to_string),
        );
    }
    let history = match gated || held {
        false => Err(String::new()),
        true => crate::history::read(root, &paths, options.depth),
    };
    match &history {
        Err(why) if gated => problems.push(Problem::general(
            Severity::Warning,
            format!("no git history ({why}): promotion gates cannot be passed"),
        )),
        // Not silently: a rolled-back tag would be put back.
        Err(why) if held && crate::history::failed(why) => problems.push(Problem::general(
            Severity::Warning,
            format!("git history cannot be read ({why}): rollback holds are not checked"),
        )),
        Ok(History { cut: Some(cut), commits, .. }) => problems.push(Problem::general(
            Severity::Info,
            format!(
                "git history read back {} commit(s) only: {cut}; older rollbacks and promotions are not seen",
                commits.len()
            ),
        )),
        _ => {}
    }
    let automation = hold::Automation::new(
        options
            .authors
            .iter()
            .map(String::as_str)
            .chain(tree_authors),
    );
    let settings = crate::history::policies::Settings {
        holds,
        automation: &automation,
        now: options.now(),
    };
    let marked: Vec<(&str, &[Marker])> = marked
        .iter()
        .map(|f| (f.rel.as_str(), f.markers.as_slice()))
        .collect();
    let flux = crate::history::policies::flux(&history, &marked, declared, &settings);
    let repository_of = crate::history::policies::flux_repositories(declared);
    let argo = crate::history::policies::argo(&history, prepared, &repository_of, &settings);
    (flux, argo)
}

/// Lists each repository once, selects every policy under its
/// `constraints` (one per declaration), then looks up the digests the
/// chosen tags need, in one batch.
pub fn resolve(
    declared: &[Declared],
    constraints: &[hold::Constraints],
    registry: &mut dyn Registry,
    pinned: &BTreeMap<PolicyId, Pinned>,
) -> (Vec<PolicyOutcome>, Targets, Vec<Problem>) {
    // Hosts the declarations allow over plain HTTP, before any question.
    registry.mark_insecure(&insecure_hosts(declared));
    let (listed, invalid, warnings) = list(registry, repositories_of(declared));
    let (outcomes, targets) =
        resolve_listed(declared, constraints, registry, pinned, &listed, &invalid);
    (outcomes, targets, warnings)
}

/// [`resolve`] over tags already listed.
fn resolve_listed(
    declared: &[Declared],
    constraints: &[hold::Constraints],
    registry: &dyn Registry,
    pinned: &BTreeMap<PolicyId, Pinned>,
    listed: &Listed,
    invalid: &Invalid,
) -> (Vec<PolicyOutcome>, Targets) {
    type Chosen<'a> = (
        Result<Option<(&'a Policy, String)>, String>,
        (Vec<hold::Hold>, Option<Candidates>),
    );
    let chosen: Vec<Chosen> = parallel_map(declared.iter().zip(constraints), |(d, c)| {
        let p = match d.policy.as_ref() {
            Ok(p) => p,
            Err(e) => return (Err(e.clone()), (Vec::new(), None)),
        };
        let tags = match listed[&p.repository].as_ref() {
            Ok(tags) => tags,
            Err(e) => return (Err(e.to_string()), (Vec::new(), None)),
        };
        let below = |a: &str, b: &str| p.selector.ranks_below(a, b);
        // The explanation: the rule over every listed tag, with the tags
        // the constraints refuse marked held or waiting; without
        // constraints it is the selection itself.
        let gate = |tag: &str| c.gate(tag, &below);
        let gate: Option<GateFn> = (!c.is_empty()).then_some(&gate);
        let (tag, candidates) = p.selector.candidates(tags, gate, PER_OUTCOME);
        let skipped = invalid.get(&p.repository).map_or(&[][..], Vec::as_slice);
        let candidates = Some(candidates.with_invalid(skipped));
        if c.is_empty() {
            let tag = tag.map(|tag| Some((p, tag))).map_err(|e| e.to_string());
            return (tag, (Vec::new(), candidates));
        }
        let choice = hold::choose(
            c,
            tags,
            &|tags: &[String]| p.selector.select(tags).map_err(|e| e.to_string()),
            &below,
        );
        let holds = choice.refused.iter().map(hold::Hold::from).collect();
        (
            choice.tag.map(|t| t.map(|tag| (p, tag))),
            (holds, candidates),
        )
    });
    let (chosen, explained): (Vec<_>, Vec<_>) = chosen.into_iter().unzip();

    let mut lookups = Vec::new();
    for (p, tag) in chosen.iter().flatten().flatten() {
        if p.digest != DigestReflection::Never
            && digest_to_reuse(p.digest, pinned.get(&p.id), &p.image, tag).is_none()
        {
            lookups.push(TagRef {
                repository: p.repository.clone(),
                tag: tag.clone(),
            });
        }
    }
    lookups.sort();
    lookups.dedup();
    let digests: BTreeMap<_, _> = lookups
        .iter()
        .cloned()
        .zip(registry.digests(&lookups))
        .collect();

    let mut outcomes = Vec::new();
    let mut targets = Targets::new();
    for ((d, chosen), (holds, candidates)) in declared.iter().zip(chosen).zip(explained) {
        // `Ok(None)`: held or waiting; nothing to apply, and nothing failed.
        let latest: Result<Option<Resolved>, String> = chosen.and_then(|chosen| {
            let Some((p, tag)) = chosen else {
                return Ok(None);
            };
            let digest = match p.digest {
                DigestReflection::Never => None,
                reflection => {
                    match digest_to_reuse(reflection, pinned.get(&p.id), &p.image, &tag) {
                        Some(d) => Some(d),
                        None => {
                            let key = TagRef {
                                repository: p.repository.clone(),
                                tag: tag.clone(),
                            };
                            Some(digests[&key].clone().map_err(|e| e.to_string())?)
                        }
                    }
                }
            };
            Resolved::new(&p.image, &tag, digest).map(Some)
        });
        let resolved = latest.as_ref().ok().and_then(Option::as_ref);
        outcomes.push(PolicyOutcome {
            policy: d.id.clone(),
            image: d.image.clone(),
            rule: d.rule.clone(),
            tag: resolved.map(|r| r.tag.clone()),
            digest: resolved.and_then(|r| r.digest.clone()),
            error: latest.as_ref().err().cloned(),
            file: d.origin.file.clone(),
            line: d.origin.line,
            holds,
            // A choice the policy could not use (its digest unread, say)
            // is no longer the chosen one.
            candidates: match &latest {
                Ok(_) => candidates,
                Err(e) => candidates.map(|c| c.unchosen(e)),
            },
        });
        targets.entry(d.id.clone()).or_default().push(Target {
            origin: d.origin.clone(),
            scope: d.scope.clone(),
            latest: latest.ok().flatten().ok_or(()),
            guard: d.policy.as_ref().ok().map(|p| p.selector.clone()),
            unread: false,
        });
    }
    outcomes.sort_by(|a, b| a.policy.cmp(&b.policy));
    (outcomes, targets)
}

/// For a file that does not parse because it is a template (Helm's
/// `templates/`, or any `{{ }}`), how to stop reading it.
fn template_hint(template: bool, rel: &str) -> String {
    if template {
        let dir = rel.rsplit_once('/').map_or("", |(dir, _)| dir);
        let glob = if dir.is_empty() {
            rel.to_string()
        } else {
            format!("{dir}/**")
        };
        format!(
            " (it looks like a template, e.g. a Helm chart's: leave it out with --exclude '{glob}')"
        )
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a push that lost a race replays on the new tip: the Argo CD
    /// writes of the file, on top of its marker edits, and nothing for a
    /// file the run did not touch.
    #[test]
    fn replay_redoes_argo_cd_writes_after_the_markers() {
        let resolved = Resolved::new("ghcr.io/acme/web", "1.1.0", None).unwrap();
        let replay = Replay {
            targets: BTreeMap::from([(
                PolicyId::new("apps", "web"),
                vec![Target {
                    origin: flux::Origin {
                        file: "p.yaml".into(),
                        line: 1,
                    },
                    scope: flux::Scope::Everywhere,
                    latest: Ok(resolved),
                    guard: None,
                    unread: false,
                }],
            )]),
            argo: BTreeMap::from([(
                "app/.argocd-source-app.yaml".to_string(),
                vec![Write::OverrideKustomize(vec![
                    "ghcr.io/acme/api:2.1.0".into(),
                ])],
            )]),
        };
        let src = "# other edits on the new tip\nimage: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\nkustomize:\n  images:\n  - ghcr.io/acme/api:2.0.0\n";
        assert_eq!(
            replay
                .apply("app/.argocd-source-app.yaml", src)
                .unwrap()
                .unwrap(),
            "# other edits on the new tip\nimage: ghcr.io/acme/web:1.1.0 # {\"$imagepolicy\": \"apps:web\"}\nkustomize:\n  images:\n  - ghcr.io/acme/api:2.1.0\n"
        );
        let marked_only = replay.apply("other.yaml", src).unwrap().unwrap();
        assert!(marked_only.contains("web:1.1.0") && marked_only.contains("api:2.0.0"));
        assert_eq!(replay.apply("other.yaml", "a: 1\n").unwrap(), None);
    }

    #[test]
    fn if_not_present_reuses_only_a_digest_pinned_for_the_same_image_and_tag() {
        let pinned = Pinned {
            name: "ghcr.io/acme/web".into(),
            tag: "1.2.3".into(),
            digest: "sha256:aa".into(),
        };
        let reuse = |reflection, image: &str, tag: &str| {
            digest_to_reuse(reflection, Some(&pinned), image, tag)
        };
        assert_eq!(
            reuse(DigestReflection::IfNotPresent, "ghcr.io/acme/web", "1.2.3"),
            Some("sha256:aa".into())
        );
        assert_eq!(
            reuse(DigestReflection::IfNotPresent, "ghcr.io/acme/web", "1.2.4"),
            None
        );
        assert_eq!(
            reuse(
                DigestReflection::IfNotPresent,
                "docker.io/evil/web",
                "1.2.3"
            ),
            None
        );
        assert_eq!(
            reuse(DigestReflection::Always, "ghcr.io/acme/web", "1.2.3"),
            None
        );
        let empty = Pinned {
            digest: String::new(),
            ..pinned.clone()
        };
        assert_eq!(
            digest_to_reuse(
                DigestReflection::IfNotPresent,
                Some(&empty),
                "ghcr.io/acme/web",
                "1.2.3"
            ),
            None
        );
    }
}
