//! The orchestrator of `image-update run`: read the tree (while the registry
//! asks what the tree's last run asked, if it remembers), declare policies,
//! ask the registry once per repository, select, plan, write, report.
//!
//! Each step is a function of the previous step's values; only this module
//! strings them together with the filesystem and the registry.
//!
//! Reading the tree is in `tree`; the registry questions (`list`,
//! `tag_metadata`, `resolve`) and the history's constraints stay here, beside
//! the run that asks them side by side.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::argocd::{self, plan::Fact, plan::Invalid, plan::Listed, plan::Metadata, plan::Write};
use crate::flux::{self, Declared, GitSettings};
use crate::history::History;
use crate::hold;
use crate::image::Reference;
use crate::image::Repository;
use crate::marker::{self, Field, Marker};
use crate::outcome::{Change, PolicyOutcome, Problem, Report, Severity};
use crate::plan::{self, Resolved, Target, Targets};
use crate::policy::argo::TagInfo;
use crate::policy::candidates::GateFn;
use crate::policy::{Candidates, DigestReflection, PER_OUTCOME, Policy, PolicyId};
use crate::registry::{Registry, TagRef};
use crate::rewrite;
use crate::scan::{self, Filter};
use crate::tree_write;
use crate::yaml;

mod tree;

pub use tree::read_policies;
use tree::{MarkedFile, read_in_tree, read_tree};

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

pub fn run(options: &RunOptions, registry: &dyn Registry) -> Outcome {
    let mut report = Report {
        version: 1,
        dry_run: options.dry_run,
        ..Report::default()
    };
    let controller_ns = match options.argocd_namespace.as_str() {
        "" => argocd::config::DEFAULT_NAMESPACE,
        ns => ns,
    };
    // The repositories and tags the tree's last run asked about are asked
    // while this one reads the tree, the git history is read while the
    // registries are asked, and Argo CD's build dates, platforms and
    // digests while the Flux policies are selected: work that needs none of
    // the answers overlaps with them.
    let mut history_problems = Vec::new();
    let mut no_holds = None;
    let (read, (listed, invalid, skipped, argo_constraints, resolved, metadata)) =
        std::thread::scope(|outer| {
            let (tell_listed, listed_ahead) = std::sync::mpsc::channel();
            outer.spawn(move || registry.ask_ahead(&|| _ = tell_listed.send(())));
            let read = read(options, controller_ns, &mut report.problems);
            let Read {
                marked,
                resources,
                declared,
                prepared,
            } = &read;
            let asked = std::thread::scope(|scope| {
                let history = scope.spawn(|| {
                    history_constraints(
                        &options.root,
                        &options.history,
                        (marked, declared),
                        prepared,
                        resources.authors(),
                        &mut history_problems,
                        &mut no_holds,
                    )
                });
                // What the tree says of a host changes how it is asked: told
                // once the listings asked ahead are answered (a digest still
                // in flight is then dropped where its host changes). A
                // closed channel is an ask that panicked, which the scope
                // then reports.
                let _ = listed_ahead.recv();
                registry.mark_insecure(&insecure_hosts(declared));
                pin_pull_secrets(prepared, registry, &mut report.problems);
                let (listed, invalid, skipped) = list(
                    registry,
                    repositories_of(declared).chain(prepared.repositories().cloned()),
                );
                let wanted = prepared.metadata_wanted(&listed);
                let metadata = scope.spawn(move || tag_metadata(registry, &wanted));
                let (constraints, argo_constraints) = joined(history);
                let pinned = pinned_references(marked);
                let (outcomes, mut targets) =
                    resolve_listed(declared, &constraints, registry, &pinned, &listed, &invalid);
                add_unread(&mut targets, &resources.unread);
                if options.allow_downgrade {
                    targets.values_mut().flatten().for_each(|t| t.guard = None);
                }
                // The markers need no build date: their files are rewritten
                // while Argo CD's are still being asked.
                let rewritten = rewrite_marked(options, marked, &targets);
                (
                    listed,
                    invalid,
                    skipped,
                    argo_constraints,
                    (outcomes, targets, rewritten),
                    joined(metadata),
                )
            });
            (read, asked)
        });
    let Read {
        resources,
        prepared,
        ..
    } = read;
    let (outcomes, targets, rewritten) = resolved;
    report.problems.extend(skipped);
    report.problems.append(&mut history_problems);
    report.holds_not_checked = no_holds;
    let argo = argocd::plan::finish(
        prepared,
        &listed,
        &invalid,
        &metadata,
        options.allow_downgrade,
        &argo_constraints,
    );
    report.policies = outcomes;
    report.requests = registry.requests();
    report.problems.extend(
        registry
            .notes()
            .into_iter()
            .map(|note| Problem::general(Severity::Warning, note)),
    );

    let Rewritten {
        problems,
        files,
        changes,
        mut diffs,
    } = rewritten;
    report.problems.extend(problems);
    report.files = files;
    report.changes = changes;
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
            diffs.push_str(&crate::diff::unified(
                rel,
                existing.as_deref().unwrap_or(""),
                &new,
            ));
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

/// The tree, and what is decided from it alone, before any registry answer.
struct Read {
    marked: Vec<MarkedFile>,
    resources: flux::Resources,
    declared: Vec<Declared>,
    prepared: argocd::plan::Prepared,
}

/// Reads the tree and the `--policies` directories, and prepares the Argo
/// CD applications they configure.
fn read(options: &RunOptions, controller_ns: &str, problems: &mut Vec<Problem>) -> Read {
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
        problems,
    );
    let external = read_policies(
        Some(&options.root),
        &options.policies,
        &mut resources,
        &mut argo,
        controller_ns,
        problems,
    );
    let declared = resources.declare();
    problems.append(&mut resources.problems);
    let mut configured = argo.configure(options.repo_url.as_deref());
    problems.append(&mut argo.problems);
    // An Application in a `--policies` directory is never edited, so the
    // write-back method `argocd` (which edits it) cannot be done.
    configured.retain(|c| {
        let file = &c.app.origin.file;
        let outside = external.iter().any(|(p, _)| file.starts_with(&format!("{p}/")));
        if outside && !c.write_back.is_git() {
            problems.push(c.app.problem(
                Severity::Error,
                ": it is read from --policies, which is never edited, so write-back method argocd cannot apply; use git",
            ));
        }
        !outside || c.write_back.is_git()
    });
    // Applications share files (one file of many Applications, say): each
    // is read once. A file named `PATH/<file>` is an Application's own file
    // in a `--policies` directory, read from there.
    let cache = crate::parallel::Memo::default();
    let read = |rel: &str| {
        cache.get(rel, || {
            match external
                .iter()
                .find_map(|(prefix, dir)| Some((dir, rel.strip_prefix(prefix)?.strip_prefix('/')?)))
            {
                Some((dir, inside)) => read_in_tree(dir, inside),
                None => read_in_tree(&options.root, rel),
            }
        })
    };
    let prepared = argocd::plan::prepare(configured, &read, controller_ns);
    Read {
        marked,
        resources,
        declared,
        prepared,
    }
}

/// What rewriting the marked files did.
#[derive(Default)]
struct Rewritten {
    problems: Vec<Problem>,
    files: Vec<String>,
    changes: Vec<Change>,
    diffs: String,
}

/// Rewrites (or, in a dry run, plans) every marked file to its targets.
fn rewrite_marked(options: &RunOptions, marked: &[MarkedFile], targets: &Targets) -> Rewritten {
    let mut out = Rewritten::default();
    for file in marked {
        let plan = plan::plan_file(&file.rel, &file.src, &file.markers, targets);
        out.problems.extend(plan.problems);
        if plan.edits.is_empty() {
            continue;
        }
        let new = match rewrite::apply(&file.src, &plan.edits) {
            Ok(new) => new,
            Err(e) => {
                out.problems.push(Problem::file(
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
            out.problems.push(Problem::file(
                &file.rel,
                Severity::Error,
                format!("cannot write: {e}"),
            ));
            continue;
        }
        if options.diff {
            out.diffs
                .push_str(&crate::diff::unified(&file.rel, &file.src, &new));
        }
        out.files.push(file.rel.clone());
        out.changes.extend(plan.changes);
    }
    out
}

/// What a scoped thread returned; its panic, if it panicked.
fn joined<T>(thread: std::thread::ScopedJoinHandle<'_, T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
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
    registry: &dyn Registry,
    problems: &mut Vec<Problem>,
) {
    use crate::registry::credentials::{Credential, Secret};
    use argocd::config::{PullSecret, user_password};
    for (repository, value, app) in prepared.pull_secrets() {
        let host = &repository.registry;
        let at = |severity, message: String| app.app.problem(severity, format!(": {message}"));
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
    no_holds: &mut Option<String>,
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
    // No history at all: said once, as a fact of the run rather than a
    // problem of the tree.
    if let (Err(why), true) = (&history, held) {
        *no_holds = crate::history::absent(why).map(str::to_string);
    }
    match &history {
        Err(why) if gated => problems.push(Problem::general(
            Severity::Warning,
            format!("no git history ({why}): promotion gates cannot be passed"),
        )),
        // Not silently: a rolled-back tag would be put back.
        // Not silently: a rolled-back tag would be put back.
        Err(why) if held && crate::history::absent(why).is_none() => problems.push(Problem::general(
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
    let chosen: Vec<Chosen> = crate::parallel::map(declared.iter().zip(constraints), |(d, c)| {
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

#[cfg(test)]
mod tests;
