//! Which rollback holds and promotion gates stand before each Flux policy
//! and Argo CD image, from the history already read: pure. A marker's
//! history holds the declarations that reach its file (by scope, then
//! nearness, as planning picks them), so a rollback in one cluster folder
//! holds that folder's copy of a policy only; an Argo CD image's, the
//! image whose current value is read from that file.

use std::collections::BTreeMap;

use super::History;
use super::values;
use crate::argocd::plan::Prepared;
use crate::flux::{self, Declared};
use crate::hold::{self, Automation, Constraints, Presence, ValueChange};
use crate::image::Repository;
use crate::marker::{Field, Marker, Setter};
use crate::policy::PolicyId;

/// What the decisions need besides the history.
pub struct Settings<'a> {
    /// Rollback holds are looked for (not `--ignore-holds`).
    pub holds: bool,
    pub automation: &'a Automation,
    /// The clock, seconds since the Unix epoch.
    pub now: i64,
}

/// The constraints of each declaration (same order as `declared`), from
/// `history` (or why there is none) and the markers of each file.
pub fn flux(
    history: &Result<History, String>,
    marked: &[(&str, &[Marker])],
    declared: &[Declared],
    settings: &Settings,
) -> Vec<Constraints> {
    let mut constraints: Vec<Constraints> = declared
        .iter()
        .map(|_| Constraints {
            now: settings.now,
            ..Constraints::default()
        })
        .collect();
    let repository_of = flux_repositories(declared);
    if let (Ok(history), true) = (history, settings.holds) {
        for (file, markers) in marked {
            for (i, rollback) in file_rollbacks(history, file, markers, declared, settings) {
                if !constraints[i].holds.contains(&rollback) {
                    constraints[i].holds.push(rollback);
                }
            }
        }
    }
    let mut gates = Gates::new(history, &repository_of);
    for (d, c) in declared.iter().zip(&mut constraints) {
        let (Some(gate), Ok(policy)) = (&d.gate, &d.policy) else {
            continue;
        };
        c.gate = Some((gate.clone(), gates.presence(&gate.from, &policy.repository)));
    }
    constraints
}

/// The constraints of each Argo CD image, in the order of
/// [`Prepared::images`]: a rollback of the value in the file its current
/// value is read from, and its promotion gate. `repository_of` names the
/// images of Flux policies, for `:tag` markers in a gate's path.
pub fn argo(
    history: &Result<History, String>,
    prepared: &Prepared,
    repository_of: &dyn Fn(&PolicyId) -> Option<Repository>,
    settings: &Settings,
) -> Vec<Constraints> {
    let mut gates = Gates::new(history, repository_of);
    let mut all = Vec::new();
    for (j, (repository, gate, from)) in prepared.images().into_iter().enumerate() {
        let mut c = Constraints {
            now: settings.now,
            ..Constraints::default()
        };
        if let (Ok(history), Some(from), true) = (history, from, settings.holds) {
            let below = |a: &str, b: &str| prepared.ranks_below(j, a, b);
            let current = prepared.current_tag(j);
            let files = std::iter::once((from, None)).chain(
                prepared
                    .written_elsewhere(j)
                    .into_iter()
                    .map(|file| (file, current)),
            );
            for (file, absent) in files {
                let changes =
                    value_changes(history, file, absent, &|f, t| prepared.tag_in(j, f, t));
                if let Some(rollback) = hold::rollback(&changes, settings.automation, &below)
                    && !c.holds.contains(&rollback)
                {
                    c.holds.push(rollback);
                }
            }
        }
        if let (Some(gate), Some(repository)) = (gate, repository) {
            c.gate = Some((gate.clone(), gates.presence(&gate.from, repository)));
        }
        all.push(c);
    }
    all
}

/// The changes of one image's value in `file`, newest first, read by
/// `tag_in`. With `absent`, a file that holds the image no more (deleted,
/// or its entry taken out) is a layer above the value in effect: where it
/// does not hold the image, the image runs `absent`, the tag in effect now
/// (a revert of the automation's first write, which created the override
/// file, sets the image back to the value below). Only when it holds the
/// image no more at HEAD: a layer that still holds it is not the one in
/// effect, and its changes roll nothing back.
fn value_changes<'h>(
    history: &'h History,
    file: &str,
    absent: Option<&str>,
    tag_in: &dyn Fn(&str, &str) -> Option<String>,
) -> Vec<ValueChange<'h>> {
    let tag = |text: Option<&str>| text.and_then(|t| tag_in(file, t));
    let fallback = match absent {
        None => None,
        Some(absent) => {
            let head = history.head.get(file).and_then(|b| history.blobs.get(b));
            if tag(head.map(String::as_str)).is_some() {
                return Vec::new();
            }
            Some(absent.to_string())
        }
    };
    history
        .versions_of(file)
        .into_iter()
        .map(|(commit, before, after)| ValueChange {
            commit,
            before: tag(before).or_else(|| fallback.clone()),
            after: tag(after).or_else(|| fallback.clone()),
        })
        .filter(|c| c.before != c.after)
        .collect()
}

/// Which tags are in each gate's path, read once per path.
struct Gates<'a> {
    history: &'a Result<History, String>,
    repository_of: &'a dyn Fn(&PolicyId) -> Option<Repository>,
    read: BTreeMap<String, Result<Presence, String>>,
}

impl<'a> Gates<'a> {
    fn new(
        history: &'a Result<History, String>,
        repository_of: &'a dyn Fn(&PolicyId) -> Option<Repository>,
    ) -> Gates<'a> {
        Gates {
            history,
            repository_of,
            read: BTreeMap::new(),
        }
    }

    /// `repository`'s tags in `path`, each since when.
    fn presence(&mut self, path: &str, repository: &Repository) -> Result<Presence, String> {
        let (history, repository_of) = (self.history, self.repository_of);
        let all = self.read.entry(path.to_string()).or_insert_with(|| {
            let history = history.as_ref().map_err(Clone::clone)?;
            if history.commits.is_empty() {
                return Err(history.cut.clone().unwrap_or_default());
            }
            // A misspelt path would make every candidate wait for ever,
            // quietly: say that nothing is there.
            let inside = |f: &String| f.strip_prefix(path).is_some_and(|r| r.starts_with('/'));
            if !history.head.keys().any(inside) {
                return Err(match history.head.contains_key(path) {
                    true => "a file, not a directory".to_string(),
                    false => "no such directory in the repository at HEAD (committed files only)"
                        .to_string(),
                });
            }
            let (now, commits) = history.under(path, &|text| values::pinned(text, repository_of));
            Ok(hold::presence(&now, &commits, history.cut.is_none()))
        });
        all.as_ref()
            .map(|p| p.of(&repository.to_string()))
            .map_err(Clone::clone)
    }
}

/// The image of each Flux policy, by id: `:tag` markers name no image.
pub fn flux_repositories(declared: &[Declared]) -> impl Fn(&PolicyId) -> Option<Repository> + '_ {
    move |id: &PolicyId| {
        declared
            .iter()
            .filter(|d| &d.id == id)
            .find_map(|d| Some(d.policy.as_ref().ok()?.repository.clone()))
    }
}

/// The rollbacks of one file's markers, each with the declaration it
/// holds (an index into `declared`).
fn file_rollbacks(
    history: &History,
    file: &str,
    markers: &[Marker],
    declared: &[Declared],
    settings: &Settings,
) -> Vec<(usize, hold::Rollback)> {
    let versions = history.versions_of(file);
    if versions.len() < 2 {
        return Vec::new();
    }
    let mut parsed: BTreeMap<*const str, BTreeMap<(Setter, usize), String>> = BTreeMap::new();
    let mut tags_of = |text: Option<&str>| -> BTreeMap<(Setter, usize), String> {
        match text {
            Some(text) => parsed
                .entry(text as *const str)
                .or_insert_with(|| values::marker_tags(text))
                .clone(),
            None => BTreeMap::new(),
        }
    };
    let states: Vec<_> = versions
        .iter()
        .map(|(commit, before, after)| (*commit, tags_of(*before), tags_of(*after)))
        .collect();
    let mut count: BTreeMap<&Setter, usize> = BTreeMap::new();
    let mut found = Vec::new();
    // A digest has no order to hold by: the tag beside it (`:tag`, or the
    // whole reference) holds the policy; `:name` sets no tag.
    for m in markers
        .iter()
        .filter(|m| matches!(m.setter.field, Field::Image | Field::Tag))
    {
        let n = count.entry(&m.setter).or_default();
        let key = (m.setter.clone(), *n);
        *n += 1;
        let changes: Vec<ValueChange> = states
            .iter()
            .filter(|(_, before, after)| before.get(&key) != after.get(&key))
            .map(|(commit, before, after)| ValueChange {
                commit,
                before: before.get(&key).cloned(),
                after: after.get(&key).cloned(),
            })
            .collect();
        for i in reaching(file, &m.setter.policy, declared) {
            let Ok(policy) = &declared[i].policy else {
                continue;
            };
            let ranks_below = |a: &str, b: &str| policy.selector.ranks_below(a, b);
            if let Some(rollback) = hold::rollback(&changes, settings.automation, &ranks_below) {
                found.push((i, rollback));
            }
        }
    }
    found
}

/// The declarations of `id` a marker in `file` uses, as planning picks
/// them: those whose automations' scope admits the file; with no
/// automation, the nearest.
fn reaching(file: &str, id: &PolicyId, declared: &[Declared]) -> Vec<usize> {
    let copies: Vec<(usize, &Declared)> = declared
        .iter()
        .enumerate()
        .filter(|(_, d)| &d.id == id)
        .collect();
    let everywhere = copies
        .iter()
        .all(|(_, d)| d.scope == flux::Scope::Everywhere);
    let admitted: Vec<&(usize, &Declared)> = copies
        .iter()
        .filter(|(_, d)| d.scope.admits(file, id).is_ok())
        .collect();
    let chosen = match everywhere {
        true => flux::nearest(file, admitted.into_iter(), |(_, d)| d.origin.file.as_str()),
        false => admitted,
    };
    chosen.into_iter().map(|(i, _)| *i).collect()
}
