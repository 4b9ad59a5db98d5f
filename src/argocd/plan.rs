//! From configured applications and what the registries listed to the file
//! writes Argo CD would make, without touching the filesystem or a registry.
//!
//! Planning runs in two steps around the registry: [`prepare`] reads each
//! image's current value and rule and says which tag metadata (build dates,
//! platforms, digests) the strategies need; [`finish`] selects, applies the
//! update decision and the no-downgrade rule, and groups the writes by file.
//! Files are read through a closure, so the decisions can be tested with
//! strings.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::image::Repository;
use crate::outcome::{AppOutcome, ImageOutcome, Problem, Severity};
use crate::policy::argo::{self, AllowTags, ArgoRule, Strategy, TagInfo};
use crate::policy::candidates::GateFn;
use crate::policy::{Candidates, Flavor, PER_OUTCOME, semver};
use crate::registry::{RegistryError, TagRef};
use crate::yaml;

use super::config::{Configured, ImageSpec};
use super::kustomize;
use super::write::{self, HelmParam};

mod current;
mod target;

use current::{Current, Files, current_tag, current_value, kustomize_images_of, running};
pub use target::target_path;
use target::{Kind, app_kind, target_of};

/// The tag lists of a run, one answer per repository.
pub type Listed = BTreeMap<Repository, Result<Vec<String>, RegistryError>>;

/// The listed tags that are not valid OCI tags, which no rule sees, by
/// repository (only repositories that have some).
pub type Invalid = BTreeMap<Repository, Vec<String>>;

/// What the registry said about the tags [`Prepared::metadata_wanted`]
/// named: their facts, and for each fact that could not be had, why.
#[derive(Debug, Default)]
pub struct Metadata {
    pub tags: BTreeMap<TagRef, TagInfo>,
    pub missing: BTreeMap<(TagRef, Fact), String>,
}

/// A fact about a tag that a strategy decides by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fact {
    /// The build date (`newest-build`).
    Created,
    /// The platforms it is built for (`newest-build`, `digest`).
    Platforms,
    /// The manifest digest (`digest`).
    Digest,
}

impl Fact {
    /// The facts `strategy` decides by.
    fn of(strategy: Strategy) -> &'static [Fact] {
        match strategy {
            Strategy::NewestBuild => &[Fact::Created, Fact::Platforms],
            Strategy::Digest => &[Fact::Digest, Fact::Platforms],
            Strategy::Semver | Strategy::Alphabetical => &[],
        }
    }
}

/// Where an application's results go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `.argocd-source-<app>.yaml` under the app's path.
    Override(String),
    /// `kustomization[:dir]`: the kustomization file in that directory.
    Kustomization(String),
    /// `helmvalues[:file]`.
    HelmValues(String),
    /// Write-back `argocd`: the Application resource itself.
    Application { file: String, document: usize },
}

impl Target {
    pub fn file(&self) -> &str {
        match self {
            Target::Override(f)
            | Target::Kustomization(f)
            | Target::HelmValues(f)
            | Target::Application { file: f, .. } => f,
        }
    }
}

/// One edit of one file; a file's edits apply in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    OverrideHelm(Vec<HelmParam>),
    OverrideKustomize(Vec<String>),
    Kustomization(Vec<String>),
    HelmValues(Vec<(String, String)>),
    ApplicationHelm {
        document: usize,
        source: Option<usize>,
        params: Vec<HelmParam>,
    },
    ApplicationKustomize {
        document: usize,
        source: Option<usize>,
        images: Vec<String>,
    },
}

impl Write {
    /// The file's new text (`existing` = `None` when it does not exist yet);
    /// `None` when nothing changes.
    pub fn apply(&self, existing: Option<&str>) -> Result<Option<String>, String> {
        let need = || existing.ok_or("the file does not exist");
        match self {
            Write::OverrideHelm(params) => write::override_helm(existing, params),
            Write::OverrideKustomize(images) => write::override_kustomize(existing, images),
            Write::Kustomization(images) => write::kustomization_images(need()?, images),
            Write::HelmValues(writes) => write::helm_values(existing, writes),
            Write::ApplicationHelm {
                document,
                source,
                params,
            } => write::application_helm(need()?, *document, *source, params),
            Write::ApplicationKustomize {
                document,
                source,
                images,
            } => write::application_kustomize(need()?, *document, *source, images),
        }
    }
}

/// An image ready for the registry's answers.
#[derive(Debug)]
pub struct Job {
    app: usize,
    spec: ImageSpec,
    repository: Result<Repository, String>,
    rule: Result<ArgoRule, String>,
    current: Option<Current>,
}

/// One application ready for planning.
#[derive(Debug)]
struct App {
    configured: Configured,
    target: Result<Target, String>,
    kind: Kind,
    /// Where its override file is (whether it exists or not).
    override_file: String,
    /// The `kustomize.images` of its source, as the Application holds them.
    kustomize_images: Vec<String>,
}

/// The applications, their jobs, and where each writes.
#[derive(Debug)]
pub struct Prepared {
    apps: Vec<App>,
    jobs: Vec<Job>,
    pub problems: Vec<Problem>,
}

impl Prepared {
    /// The `pullSecret` of each image that has one: repository, value, and
    /// the application it belongs to.
    pub fn pull_secrets(&self) -> Vec<(&Repository, &str, &Configured)> {
        self.jobs
            .iter()
            .filter_map(|j| {
                Some((
                    j.repository.as_ref().ok()?,
                    j.spec.settings.pull_secret.as_deref()?,
                    &self.apps[j.app].configured,
                ))
            })
            .collect()
    }

    /// Per image, in the order [`finish`] takes constraints: its
    /// repository, its promotion gate, and the file its current value was
    /// read from.
    pub fn images(
        &self,
    ) -> Vec<(
        Option<&Repository>,
        Option<&crate::hold::Gate>,
        Option<&str>,
    )> {
        self.jobs
            .iter()
            .map(|j| {
                (
                    j.repository.as_ref().ok(),
                    j.spec.gate.as_ref().ok().and_then(Option::as_ref),
                    j.current.as_ref().map(|c| c.from.as_str()),
                )
            })
            .collect()
    }

    /// The files image `job`'s value is written to (the override file, the
    /// write-back target) other than the one its current value was read
    /// from. Where one of them no longer holds the image, the value in
    /// effect comes from below it (the Application, the values file, the
    /// manifests): a person who took the automation's value out of it
    /// (`git revert` of the commit that created the override file deletes
    /// it) set the image back to that value.
    pub fn written_elsewhere(&self, job: usize) -> Vec<&str> {
        let job = &self.jobs[job];
        let app = &self.apps[job.app];
        let from = job.current.as_ref().map(|c| c.from.as_str());
        let target = match &app.target {
            Ok(Target::Application { .. }) | Err(_) => None,
            Ok(t) => Some(t.file()),
        };
        let mut files: Vec<&str> = [Some(app.override_file.as_str()), target]
            .into_iter()
            .flatten()
            .filter(|f| !f.is_empty() && Some(*f) != from)
            .collect();
        files.dedup();
        files
    }

    /// The tag image `job`'s current value holds.
    pub fn current_tag(&self, job: usize) -> Option<&str> {
        current_tag(self.jobs[job].current.as_ref()?)
    }

    /// The tag image `job` has in `text`, a version of `from` (the file its
    /// current value was read from, or one of [`Self::written_elsewhere`]),
    /// read as the current value is; `None` where it has none.
    pub fn tag_in(&self, job: usize, from: &str, text: &str) -> Option<String> {
        let job = &self.jobs[job];
        let app = &self.apps[job.app];
        let read = |file: &str| (file == from).then(|| text.to_string());
        let parsed = |file: &str| {
            (file == from)
                .then(|| yaml::parse(text).ok().map(Arc::new))
                .flatten()
        };
        let files = Files::read(
            &app.configured,
            app.kind,
            app.override_file.clone(),
            app.target.as_ref().ok(),
            &read,
            &parsed,
        );
        let current = current_value(&app.configured, &job.spec, app.kind, &files)?;
        current_tag(&current).map(str::to_string)
    }

    /// Whether tag `a` ranks below tag `b` by image `job`'s rule, by name
    /// (semver, alphabetical; build dates are not known here).
    pub fn ranks_below(&self, job: usize, a: &str, b: &str) -> bool {
        match &self.jobs[job].rule {
            Ok(rule) => ranks_below(rule, &TagInfo::named(a), &TagInfo::named(b)),
            Err(_) => false,
        }
    }

    /// Every repository an image reads.
    pub fn repositories(&self) -> impl Iterator<Item = &Repository> {
        self.jobs.iter().filter_map(|j| j.repository.as_ref().ok())
    }

    /// The tags whose metadata the strategies need, with the platform to read
    /// build dates for and whether a digest is needed: every candidate of a
    /// `newest-build` image (and its current tag, for the downgrade check),
    /// the followed tag of a `digest` image.
    pub fn metadata_wanted(&self, listed: &Listed) -> Vec<(TagRef, String, bool)> {
        let mut wanted = Vec::new();
        for job in &self.jobs {
            let (Ok(repository), Ok(rule)) = (&job.repository, &job.rule) else {
                continue;
            };
            let Some(Ok(tags)) = listed.get(repository) else {
                continue;
            };
            let platform = rule
                .platforms
                .first()
                .cloned()
                .unwrap_or_else(|| argo::DEFAULT_PLATFORM.to_string());
            let tag_ref = |tag: &str| TagRef {
                repository: repository.clone(),
                tag: tag.to_string(),
            };
            let digest = rule.strategy == Strategy::Digest;
            let mut names = needed_facts(rule, tags);
            if rule.strategy == Strategy::NewestBuild
                && let Some(current) = job.current.as_ref().and_then(|c| current_tag(c))
                && tags.iter().any(|t| t == current)
            {
                names.push(current);
            }
            for name in names {
                wanted.push((tag_ref(name), platform.clone(), digest));
            }
        }
        wanted.sort();
        wanted.dedup();
        wanted
    }
}

/// Reads rules, current values and targets. `read` returns a file of the
/// tree by its relative path.
pub fn prepare(
    configured: Vec<Configured>,
    read: &(dyn Fn(&str) -> Option<String> + Sync),
    controller_ns: &str,
) -> Prepared {
    // A file of many Applications is parsed once for all of them.
    let streams = crate::parallel::Memo::default();
    let parsed = |file: &str| -> Option<Arc<yaml::Stream>> {
        streams.get(file, || {
            read(file).and_then(|src| yaml::parse(&src).ok().map(Arc::new))
        })
    };
    // Each application reads its own files (most of the time here is the
    // system's), so they are read on every core.
    let apps = crate::parallel::map(configured.into_iter(), |c| {
        let target = target_of(&c, controller_ns, read);
        let kind = app_kind(&c, read);
        let override_file =
            target_path(None, &c.base, &c.app.name, &c.app.namespace, controller_ns)
                .ok()
                .map(|t| t.file().to_string())
                .unwrap_or_default();
        let files = kind.as_ref().ok().map(|k| {
            Files::read(
                &c,
                *k,
                override_file.clone(),
                target.as_ref().ok(),
                read,
                &parsed,
            )
        });
        let jobs: Vec<_> = c
            .images
            .iter()
            .map(|spec| {
                let current = match (&kind, &files) {
                    (Ok(kind), Some(files)) => current_value(&c, spec, *kind, files)
                        .or_else(|| running(&c, spec, *kind, target.as_ref().ok(), read)),
                    _ => None,
                };
                let rule = kind
                    .clone()
                    .and_then(|_| rule_of(spec))
                    .map_err(|e| e.to_string());
                (spec.clone(), rule, current)
            })
            .collect();
        let spec_images = files
            .as_ref()
            .and_then(|f| f.source(&c))
            .map(kustomize_images_of)
            .unwrap_or_default();
        let app = App {
            configured: c,
            target,
            override_file,
            kind: kind.unwrap_or(Kind::Kustomize),
            kustomize_images: spec_images,
        };
        (app, jobs)
    });
    let mut prepared = Prepared {
        apps: Vec::new(),
        jobs: Vec::new(),
        problems: Vec::new(),
    };
    for (app, jobs) in apps {
        for (spec, rule, current) in jobs {
            prepared.jobs.push(Job {
                app: prepared.apps.len(),
                repository: Repository::parse(&spec.name).map_err(|e| e.to_string()),
                spec,
                rule,
                current,
            });
        }
        prepared.apps.push(app);
    }
    prepared
}

fn rule_of(spec: &ImageSpec) -> Result<ArgoRule, String> {
    let gate = spec.gate.clone()?;
    let strategy = spec.settings.strategy.as_deref().unwrap_or("semver");
    let mut rule = ArgoRule::new(Strategy::parse(strategy));
    if gate.is_some() && rule.strategy == Strategy::Digest {
        return Err(format!(
            "{}promote-from: the digest strategy follows one tag and has no candidates to gate",
            crate::hold::PREFIX
        ));
    }
    rule.constraint = spec.constraint.clone();
    if let Some(allow) = &spec.settings.allow_tags {
        rule.allow = Some(AllowTags::parse(allow)?);
    }
    rule.ignore = spec.settings.ignore_tags.clone().unwrap_or_default();
    rule.platforms = spec.settings.platforms.clone().unwrap_or_default();
    Ok(rule)
}

/// The tags whose facts (build date, platforms, digest) the strategy decides
/// by: every tag that passes the other filters for `newest-build`, the
/// followed tag for `digest`, none otherwise.
fn needed_facts<'a>(rule: &ArgoRule, tags: &'a [String]) -> Vec<&'a str> {
    let names = tags.iter().map(String::as_str);
    match rule.strategy {
        Strategy::Digest => names.filter(|t| *t == rule.constraint).take(1).collect(),
        Strategy::NewestBuild => {
            // The filters that need no metadata: fetching facts only for the
            // tags that pass them asks no more than upstream does.
            let passes = rule.tag_filter();
            names.filter(|t| passes(t)).collect()
        }
        Strategy::Semver | Strategy::Alphabetical => Vec::new(),
    }
}

/// The Helm parameter names an image is written to: the full spec, or name
/// and tag (`image.name` / `image.tag` by default).
fn helm_names(spec: &ImageSpec) -> (Option<&str>, &str, &str) {
    let t = &spec.targets;
    (
        t.helm_spec.as_deref(),
        t.helm_name.as_deref().unwrap_or("image.name"),
        t.helm_tag.as_deref().unwrap_or("image.tag"),
    )
}

/// The Kustomize image name an image is written under.
fn kustomize_name(spec: &ImageSpec) -> &str {
    spec.targets.kustomize_name.as_deref().unwrap_or(&spec.name)
}

/// What [`finish`] leaves: the writes of each file in order, and the
/// outcome of every application.
#[derive(Debug, Default)]
pub struct Finished {
    pub writes: BTreeMap<String, Vec<Write>>,
    pub apps: Vec<AppOutcome>,
    pub problems: Vec<Problem>,
}

/// Selects each image's tag, decides, and groups the writes by file.
/// `constraints`: the rollback holds and promotion gate of each image, in
/// the order of [`Prepared::images`] (none where the slice is shorter).
pub fn finish(
    prepared: Prepared,
    listed: &Listed,
    invalid: &Invalid,
    metadata: &Metadata,
    allow_downgrade: bool,
    constraints: &[crate::hold::Constraints],
) -> Finished {
    let mut finished = Finished {
        problems: prepared.problems,
        ..Finished::default()
    };
    let mut outcomes: Vec<AppOutcome> = prepared
        .apps
        .iter()
        .map(
            |App {
                 configured: c,
                 target,
                 ..
             }| AppOutcome {
                application: format!("{}/{}", c.app.namespace, c.app.name),
                file: c.app.origin.file.clone(),
                line: c.app.origin.line,
                configured_by: c.by.clone(),
                target: target
                    .as_ref()
                    .map(|t| t.file().to_string())
                    .unwrap_or_default(),
                branch: c.write_back.branch.clone(),
                images: Vec::new(),
            },
        )
        .collect();
    // Per application: the images to write, `(spec, reference, tag)`, and
    // whether any of them changes. Upstream sets the up-to-date images too
    // (at their current version; `update.go`, "explicitly set the up-to-date
    // images"), so they are in what it writes whenever something changes.
    let mut updates: Vec<Vec<(ImageSpec, String, String)>> = vec![Vec::new(); prepared.apps.len()];
    let mut changed = vec![false; prepared.apps.len()];
    let free = crate::hold::Constraints::default();
    // The decisions are the costly part (every listed tag through the
    // rule), and independent of one another.
    let decided = crate::parallel::map(prepared.jobs.iter().enumerate(), |(j, job)| {
        let app = &prepared.apps[job.app];
        let (mut holds, mut candidates) = (Vec::new(), None);
        let decision = decide_image(
            job,
            &app.target,
            app.kind,
            (listed, metadata, invalid),
            allow_downgrade,
            constraints.get(j).unwrap_or(&free),
            (&mut holds, &mut candidates),
        );
        (decision, holds, candidates)
    });
    for (job, (decision, holds, candidates)) in prepared.jobs.into_iter().zip(decided) {
        let c = &prepared.apps[job.app].configured;
        let keep_current = |updates: &mut Vec<Vec<_>>| {
            if let Some(current) = &job.current {
                let reference = at_version(&job.spec.name, &current.reference);
                let tag = version_of(&reference);
                updates[job.app].push((job.spec.clone(), reference, tag));
            }
        };
        let problem = |severity, message: &str| {
            let alias = display_alias(&job.spec);
            c.app
                .problem(severity, format!(" image {alias}: {message}"))
        };
        let mut outcome = ImageOutcome {
            alias: job.spec.alias.clone(),
            image: job.spec.name.clone(),
            strategy: job.rule.as_ref().map_or("", |r| strategy_name(r.strategy)),
            current: job.current.as_ref().map(|c| c.reference.clone()),
            current_from: job.current.as_ref().map(|c| c.from.clone()),
            selected: None,
            new: None,
            error: None,
            note: None,
            holds,
            candidates,
        };
        // A choice the image could not use (no digest, say) is no longer
        // the chosen one.
        if let Err(e) = &decision {
            outcome.candidates = outcome.candidates.take().map(|c| c.unchosen(e));
        }
        match decision {
            Ok(Decision::Write { selected, new }) => {
                outcome.selected = Some(selected);
                outcome.new = Some(new.clone());
                let tag = version_of(&new);
                updates[job.app].push((job.spec.clone(), new, tag));
                changed[job.app] = true;
            }
            Ok(Decision::UpToDate { selected }) => {
                keep_current(&mut updates);
                outcome.selected = Some(selected);
                outcome.note = Some("up to date".to_string());
            }
            Ok(Decision::Keep { selected, note }) => {
                outcome.selected = selected;
                outcome.note = Some(note);
            }
            Ok(Decision::Refused { selected, note }) => {
                keep_current(&mut updates);
                finished.problems.push(problem(Severity::Warning, &note));
                outcome.selected = Some(selected);
                outcome.note = Some(note);
            }
            Err(e) => {
                finished.problems.push(problem(Severity::Error, &e));
                outcome.error = Some(e);
            }
        }
        outcomes[job.app].images.push(outcome);
    }
    // Copies of one Application (one per cluster directory) write their
    // own files; two that write the same file compete for it, and when
    // they disagree neither is written.
    let mut owned: Vec<(String, (&str, &str), &Configured, Write)> = Vec::new();
    for ((app, images), changed) in prepared.apps.iter().zip(updates).zip(changed) {
        if !changed {
            continue;
        }
        let Ok(target) = &app.target else { continue };
        let c = &app.configured;
        let write = write_for(c, target, app.kind, &app.kustomize_images, &images);
        let id = (c.app.namespace.as_str(), c.app.name.as_str());
        let file = target.file().to_string();
        if owned
            .iter()
            .any(|(f, i, _, w)| (f, *i, w) == (&file, id, &write))
        {
            continue;
        }
        owned.push((file, id, c, write));
    }
    let mut conflicted = std::collections::BTreeSet::new();
    for (i, (file, id, c, _)) in owned.iter().enumerate() {
        if let Some((_, _, other, _)) = owned[..i]
            .iter()
            .find(|(f, o, _, _)| (f, *o) == (file, *id))
        {
            finished.problems.push(Problem::at(
                &c.app.origin.file,
                c.app.origin.line,
                None,
                Severity::Error,
                format!(
                    "Application {}/{} is declared at {}:{} and at {}:{}, both write {file} and they disagree; {file} is left unchanged",
                    id.0, id.1, other.app.origin.file, other.app.origin.line, c.app.origin.file, c.app.origin.line
                ),
            ));
            conflicted.insert((file.clone(), *id));
        }
    }
    for (file, id, _, write) in owned {
        if !conflicted.contains(&(file.clone(), id)) {
            finished.writes.entry(file).or_default().push(write);
        }
    }
    finished.apps = outcomes;
    finished
}

enum Decision {
    Write {
        selected: String,
        new: String,
    },
    /// The file already holds what the rule selects.
    UpToDate {
        selected: String,
    },
    Keep {
        selected: Option<String>,
        note: String,
    },
    /// Not written (a downgrade, an image the application does not run):
    /// also a warning.
    Refused {
        selected: String,
        note: String,
    },
}

/// `explained` receives why each listed tag was or was not chosen, once
/// the rule has been applied.
fn decide_image(
    job: &Job,
    target: &Result<Target, String>,
    kind: Kind,
    (listed, metadata, invalid): (&Listed, &Metadata, &Invalid),
    allow_downgrade: bool,
    constraints: &crate::hold::Constraints,
    (holds, explained): (&mut Vec<crate::hold::Hold>, &mut Option<Candidates>),
) -> Result<Decision, String> {
    target.as_ref().map_err(Clone::clone)?;
    let rule = job.rule.as_ref().map_err(Clone::clone)?;
    let repository = job.repository.as_ref().map_err(Clone::clone)?;
    let names = listed
        .get(repository)
        .ok_or("the repository was not listed")?
        .as_ref()
        .map_err(ToString::to_string)?;
    let tag_ref = |name: &str| TagRef {
        repository: repository.clone(),
        tag: name.to_string(),
    };
    // A fact the rule decides by and the registry (or snapshot) could not
    // give fails the image: never a pick made without it.
    if let Some(why) = needed_facts(rule, names).into_iter().find_map(|name| {
        Fact::of(rule.strategy)
            .iter()
            .find_map(|fact| metadata.missing.get(&(tag_ref(name), *fact)))
    }) {
        return Err(format!("{why}; nothing written"));
    }
    // Only these strategies read build dates, platforms or digests; what is
    // known of this repository's tags is gathered once, not looked up per tag.
    let known: HashMap<&str, &TagInfo> = if rule.strategy.needs_metadata() {
        let first = TagRef {
            repository: repository.clone(),
            tag: String::new(),
        };
        metadata
            .tags
            .range(first..)
            .take_while(|(r, _)| &r.repository == repository)
            .map(|(r, info)| (r.tag.as_str(), info))
            .collect()
    } else {
        HashMap::new()
    };
    let info = |name: &str| {
        known
            .get(name)
            .map_or_else(|| TagInfo::named(name), |i| (*i).clone())
    };
    let tags: Vec<TagInfo> = names.iter().map(|n| info(n)).collect();
    let below = |a: &str, b: &str| ranks_below(rule, &info(a), &info(b));
    let gated = !constraints.is_empty() && rule.strategy != Strategy::Digest;
    // The explanation: the rule over every listed tag, with the tags the
    // constraints refuse marked held or waiting; without constraints it is
    // the selection itself.
    let gate = |name: &str| constraints.gate(name, &below);
    let gate: Option<GateFn> = gated.then_some(&gate);
    let (selected, candidates) = rule.candidates(&tags, gate, PER_OUTCOME)?;
    let skipped = invalid.get(repository).map_or(&[][..], Vec::as_slice);
    *explained = Some(candidates.with_invalid(skipped));
    let selected = if !gated {
        selected
    } else {
        // Held and waiting tags are out; the rule picks among the rest.
        // `Err(None)`: the rule picks nothing.
        let select = |names: &[String]| -> Result<String, Option<String>> {
            let infos: Vec<TagInfo> = names.iter().map(|n| info(n)).collect();
            match rule.select(&infos) {
                Ok(Some(t)) => Ok(t.name),
                Ok(None) => Err(None),
                Err(e) => Err(Some(e)),
            }
        };
        let choice = crate::hold::choose(constraints, names, &select, &below);
        holds.extend(choice.refused.iter().map(crate::hold::Hold::from));
        match choice.tag {
            Ok(Some(name)) => tags.iter().find(|t| t.name == name).cloned(),
            Ok(None) => {
                return Ok(Decision::Keep {
                    selected: None,
                    note: "held or waiting (see holds); nothing written".to_string(),
                });
            }
            Err(Some(e)) => return Err(e),
            Err(None) => None,
        }
    };
    let Some(selected) = selected else {
        return Ok(Decision::Keep {
            selected: None,
            note: "no tag qualifies; nothing written".to_string(),
        });
    };
    if rule.strategy == Strategy::Digest && selected.digest.is_none() {
        return Err(format!(
            "no digest for tag {:?}; nothing written",
            selected.name
        ));
    }
    crate::plan::Resolved::new(
        &job.spec.name,
        &selected.name,
        selected
            .digest
            .clone()
            .filter(|_| rule.strategy == Strategy::Digest),
    )?;
    let force = job.spec.settings.force_update == Some(true);
    let current = match (&job.current, force) {
        (Some(c), _) => c.reference.clone(),
        (None, true) => String::new(),
        (None, false) => {
            return Ok(Decision::Refused {
                selected: selected.name,
                note: "not written: no current value found (override file, Application parameters, values file, kustomization, or the manifests it reaches), so the application does not seem to run this image; upstream updates only images an application runs; set force-update to write it anyway".to_string(),
            });
        }
    };
    let (mut update, mut new) = argo::decide(rule.strategy, &current, &selected, &job.spec.name);
    if !update && kind == Kind::Kustomize && job.spec.targets.kustomize_name.is_some() {
        // Upstream: "image registry changed". The same tag of another
        // registry or repository under this Kustomize name is an update.
        let written = current.split_once('=').map_or(current.as_str(), |(_, r)| r);
        if kustomize::ContainerImage::parse(&job.spec.name)
            .differs_from(&kustomize::ContainerImage::parse(written))
        {
            update = true;
            new = at_version(&job.spec.name, written);
        }
    }
    if !update {
        return Ok(Decision::UpToDate {
            selected: selected.name,
        });
    }
    if !allow_downgrade
        && let Some(current_tag) = job.current.as_ref().and_then(current_tag)
        && ranks_below(rule, &selected, &info(current_tag))
    {
        return Ok(Decision::Refused {
            selected: selected.name.clone(),
            note: format!(
                "not downgraded from {current_tag} to {} ({} ranks it lower); pass --allow-downgrade to write it",
                selected.name,
                strategy_name(rule.strategy)
            ),
        });
    }
    Ok(Decision::Write {
        selected: selected.name,
        new,
    })
}

/// `image` at the tag and digest of the reference `written`.
fn at_version(image: &str, written: &str) -> String {
    let (_, tag, digest) = argo::split_reference(written);
    let mut reference = image.to_string();
    if let Some(tag) = tag {
        reference = format!("{reference}:{tag}");
    }
    if let Some(digest) = digest {
        reference = format!("{reference}@{digest}");
    }
    reference
}

/// `tag[@digest]` of a reference.
fn version_of(reference: &str) -> String {
    match argo::split_reference(reference) {
        (_, tag, Some(digest)) => format!("{}@{digest}", tag.unwrap_or_default()),
        (_, tag, None) => tag.unwrap_or_default().to_string(),
    }
}

/// Whether `selected` ranks below `current` under the strategy's ordering.
/// The digest strategy follows one tag and has no order.
fn ranks_below(rule: &ArgoRule, selected: &TagInfo, current: &TagInfo) -> bool {
    match rule.strategy {
        Strategy::Semver => match (
            Flavor::Argo.parse_tag(&selected.name),
            Flavor::Argo.parse_tag(&current.name),
        ) {
            (Ok(a), Ok(b)) => semver::Version::cmp(&a, &b).is_lt(),
            _ => false,
        },
        Strategy::Alphabetical => selected.name.as_bytes() < current.name.as_bytes(),
        Strategy::NewestBuild => match (&selected.created, &current.created) {
            (Some(a), Some(b)) => {
                let mut only = ArgoRule::new(Strategy::NewestBuild);
                only.platforms = vec!["*/*".to_string()];
                let newer = only
                    .select(&[
                        TagInfo {
                            platforms: Vec::new(),
                            created: Some(a.clone()),
                            ..TagInfo::named("a")
                        },
                        TagInfo {
                            platforms: Vec::new(),
                            created: Some(b.clone()),
                            ..TagInfo::named("b")
                        },
                    ])
                    .ok()
                    .flatten();
                a != b && newer.is_some_and(|t| t.name == "b")
            }
            _ => false,
        },
        Strategy::Digest => false,
    }
}

fn strategy_name(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Semver => "semver",
        Strategy::NewestBuild => "newest-build",
        Strategy::Alphabetical => "alphabetical",
        Strategy::Digest => "digest",
    }
}

fn display_alias(spec: &ImageSpec) -> String {
    if spec.alias.is_empty() {
        spec.name.clone()
    } else {
        format!("{} ({})", spec.alias, spec.name)
    }
}

/// The write of one application: its updated images, `(spec, new
/// reference, tag[@digest])`.
fn write_for(
    c: &Configured,
    target: &Target,
    kind: Kind,
    spec_images: &[String],
    images: &[(ImageSpec, String, String)],
) -> Write {
    let params = || -> Vec<HelmParam> {
        let mut params = Vec::new();
        for (spec, new, tag) in images {
            let (spec_param, name_param, tag_param) = helm_names(spec);
            match spec_param {
                Some(p) => params.push(HelmParam {
                    name: p.to_string(),
                    value: new.clone(),
                    force_string: true,
                }),
                None => {
                    params.push(HelmParam {
                        name: name_param.to_string(),
                        value: spec.name.clone(),
                        force_string: true,
                    });
                    params.push(HelmParam {
                        name: tag_param.to_string(),
                        value: tag.clone(),
                        force_string: true,
                    });
                }
            }
        }
        params
    };
    // `[kustomize-name=]reference`, as upstream's `SetKustomizeImage`.
    let kustomize_params = || -> Vec<String> {
        images
            .iter()
            .map(|(spec, new, _)| match &spec.targets.kustomize_name {
                Some(kname) => format!("{kname}={new}"),
                None => new.clone(),
            })
            .collect()
    };
    // The Application's images once each is set: what upstream writes to
    // the override file or the kustomization.
    let kustomize_images = || -> Vec<String> {
        let mut list = spec_images.to_vec();
        for param in kustomize_params() {
            kustomize::set(&mut list, &param);
        }
        list
    };
    let is_helm = kind == Kind::Helm;
    match target {
        Target::Override(_) if is_helm => Write::OverrideHelm(params()),
        Target::Override(_) => Write::OverrideKustomize(kustomize_images()),
        Target::Kustomization(_) => Write::Kustomization(kustomize_images()),
        Target::HelmValues(_) => {
            Write::HelmValues(params().into_iter().map(|p| (p.name, p.value)).collect())
        }
        Target::Application { document, .. } if is_helm => Write::ApplicationHelm {
            document: *document,
            source: c.source.index,
            params: params(),
        },
        Target::Application { document, .. } => Write::ApplicationKustomize {
            document: *document,
            source: c.source.index,
            images: kustomize_params(),
        },
    }
}

#[cfg(test)]
mod tests;
