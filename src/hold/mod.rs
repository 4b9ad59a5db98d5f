//! Whether a candidate tag may be applied, decided from the repository's own
//! history: a **rollback hold** (a person set a value back from one an
//! automation wrote, so that tag and anything not newer stays out) and a
//! **promotion gate** (a tag qualifies only after it ran in another part of
//! the tree for a soak time).
//!
//! Everything here is plain data in, plain data out: the commits and the
//! values they changed are read by `history` (the git edge), the clock is
//! passed in, and the tag ordering is the policy's own (a closure). The
//! outcome of each refused candidate is a [`Refusal`], which the report shows
//! as one line (`held: rolled back by 1a2b3c4 on …`, `waiting: 1.2.0 in
//! clusters/staging since …`), and which a candidate list can carry as it is:
//! [`Constraints::check`] is the predicate a selection consults per tag ("is
//! this candidate allowed, and if not why"), [`choose`] the selection under
//! it that the engine uses, [`Hold`] the refusal as the report's data.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::civil::rfc3339;

/// The annotation naming the path a tag must first run in.
pub const PROMOTE_FROM: &str = "image-update.dev/promote-from";
/// The annotation giving how long it must have run there (`24h`, `90m`).
pub const SOAK: &str = "image-update.dev/soak";
/// The prefix of both, for per-alias forms (`image-update.dev/<alias>.soak`).
pub const PREFIX: &str = "image-update.dev/";

/// One commit, as much of it as the decisions need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub sha: String,
    /// Committer date, seconds since the Unix epoch.
    pub time: i64,
    pub author_name: String,
    pub author_email: String,
    pub subject: String,
    /// The message carries the [`TRAILER_KEY`] trailer.
    pub trailer: bool,
    /// For a merge on the first-parent line, the tip of the branch it
    /// merged (its second parent): what a merge brings in is that branch's
    /// change, so its author tells who wrote it (Flux pushing to a branch
    /// that a person merges, `git pull` merging the automation's commit).
    pub merged: Option<Box<Commit>>,
}

impl Commit {
    pub fn short(&self) -> &str {
        &self.sha[..self.sha.len().min(7)]
    }
}

/// Who commits automatically: a commit by one of them wrote an automated
/// value; any other commit is a person's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Automation {
    /// Names and e-mail addresses, compared without regard to case.
    authors: BTreeSet<String>,
    /// Subject prefixes of the tools' default commit messages.
    subjects: Vec<String>,
}

/// The authors the tools commit as by default: this tool's fallback
/// author, Flux's documented `fluxcdbot` (docs/spec/v1/imageupdateautomations.md
/// in fluxcd/image-automation-controller, which requires an author and
/// whose examples all use it), and Argo CD Image Updater's
/// `--git-commit-user` / `--git-commit-email` defaults (cmd/run.go:325-326
/// in argoproj-labs/argocd-image-updater).
pub const DEFAULT_AUTHORS: &[&str] = &[
    "image-update@users.noreply.github.com",
    "fluxcdbot",
    "fluxcdbot@users.noreply.github.com",
    "argocd-image-updater",
    "noreply@argoproj.io",
];

/// The git trailer every commit of this tool carries, so that its own
/// commits are known whoever the author is (in CI often the repository's
/// `user.name`, e.g. `github-actions[bot]`). Neither Flux nor Argo CD
/// Image Updater defines a trailer of its own (Argo adds only
/// `Signed-off-by`).
pub const TRAILER_KEY: &str = "Image-Update-Automation";
/// [`TRAILER_KEY`] with this tool's value.
pub const TRAILER: &str = "Image-Update-Automation: image-update";

/// The tools' default commit subjects: Flux's `defaultMessageTemplate`
/// (internal/source/source.go:77) and Argo CD Image Updater's
/// `DefaultGitCommitMessage` (pkg/common/constants.go:30).
pub const DEFAULT_SUBJECTS: &[&str] = &[
    "Update from image update automation",
    "build: automatic update of ",
];

impl Default for Automation {
    fn default() -> Automation {
        Automation::new(std::iter::empty::<String>())
    }
}

impl Automation {
    /// The defaults plus `authors`: `Name <email>`, a name, or an address.
    pub fn new<S: AsRef<str>>(authors: impl IntoIterator<Item = S>) -> Automation {
        let mut set: BTreeSet<String> = DEFAULT_AUTHORS.iter().map(|a| a.to_string()).collect();
        for author in authors {
            let author = author.as_ref().trim();
            // `Name <email>` counts by either.
            let (name, email) = match author.split_once('<') {
                Some((name, email)) => (name.trim(), email.trim_end_matches('>').trim()),
                None => (author, ""),
            };
            set.extend(
                [name, email]
                    .into_iter()
                    .filter(|a| !a.is_empty())
                    .map(str::to_lowercase),
            );
        }
        Automation {
            authors: set,
            subjects: DEFAULT_SUBJECTS.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Whether an automation made `commit` (for a merge: the branch it
    /// merged).
    pub fn wrote(&self, commit: &Commit) -> bool {
        match &commit.merged {
            Some(tip) => self.wrote(tip),
            None => {
                commit.trailer
                    || self.authors.contains(&commit.author_name.to_lowercase())
                    || self.authors.contains(&commit.author_email.to_lowercase())
                    || self.subjects.iter().any(|s| commit.subject.starts_with(s))
            }
        }
    }
}

/// A commit that changed one managed value: the tag before and after
/// (`None` where the value was absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueChange<'a> {
    pub commit: &'a Commit,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// A person's rollback of an automated value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rollback {
    /// The tag the automation had written and the person took out.
    pub tag: String,
    /// The tag the person set.
    pub to: String,
    pub sha: String,
    /// Committer date of the rollback, RFC 3339.
    pub date: String,
    pub author: String,
}

/// The rollback hold of one value, from its changes newest first: since
/// the last change an automation made (it wrote tag `X`), only people
/// changed the value; the first of them replaced `X`, and none set it to
/// `X` again or moved above it (`ranks_below(a, b)`: `a` ranks below `b`
/// under the policy's ordering). A person's change to a newer tag is a
/// manual bump, not a rollback; a person's later edits that stay below `X`
/// (a hotfix pinned after the rollback) keep the hold, reported by the
/// commit that rolled back.
pub fn rollback(
    changes: &[ValueChange],
    automation: &Automation,
    ranks_below: &dyn Fn(&str, &str) -> bool,
) -> Option<Rollback> {
    let people = changes
        .iter()
        .take_while(|c| !automation.wrote(c.commit))
        .count();
    let (first, automated) = (changes[..people].last()?, changes.get(people)?);
    let from = automated.after.as_ref()?;
    if first.before.as_ref() != Some(from) {
        return None;
    }
    let not_back = |c: &ValueChange| {
        c.after
            .as_ref()
            .is_none_or(|to| to == from || ranks_below(from, to))
    };
    if changes[..people].iter().any(not_back) {
        return None;
    }
    Some(Rollback {
        tag: from.clone(),
        to: first.after.clone()?,
        sha: first.commit.sha.clone(),
        date: rfc3339(first.commit.time),
        author: first.commit.author_name.clone(),
    })
}

/// A promotion gate: the path a tag must be present in, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gate {
    /// Relative to the tree, `/`-separated, no leading `./` or trailing `/`.
    pub from: String,
    pub soak: i64,
    /// The soak as written, for messages.
    pub soak_text: String,
}

impl Gate {
    /// A gate from its two settings: both or neither. `promote-from` is a
    /// path inside the tree; `soak` a duration (`24h`, `1h30m`, `45m`,
    /// `2d`, `0s`).
    pub fn parse(from: Option<&str>, soak: Option<&str>) -> Result<Option<Gate>, String> {
        let (from, soak) = match (from.map(str::trim), soak.map(str::trim)) {
            (None, None) => return Ok(None),
            (Some(from), Some(soak)) => (from, soak),
            (Some(_), None) => return Err(format!("{PROMOTE_FROM} needs {SOAK} too")),
            (None, Some(_)) => return Err(format!("{SOAK} needs {PROMOTE_FROM} too")),
        };
        let path = from.trim_start_matches("./").trim_end_matches('/');
        if path.is_empty()
            || path.starts_with('/')
            || path
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(format!(
                "{PROMOTE_FROM}: {from:?} is not a path inside the tree (e.g. clusters/staging)"
            ));
        }
        Ok(Some(Gate {
            from: path.to_string(),
            soak: parse_duration(soak).map_err(|e| format!("{SOAK}: {e}"))?,
            soak_text: soak.to_string(),
        }))
    }
}

/// A gate setting (`promote-from`, `soak`) from annotations, the first
/// found: in each map in turn, the per-image form
/// (`image-update.dev/<alias>.soak`, when `alias` is not empty) before the
/// general one.
pub fn annotated(maps: &[&BTreeMap<String, String>], alias: &str, setting: &str) -> Option<String> {
    maps.iter().find_map(|m| {
        let per_image = (!alias.is_empty()).then(|| format!("{PREFIX}{alias}.{setting}"));
        per_image
            .into_iter()
            .chain([format!("{PREFIX}{setting}")])
            .find_map(|key| m.get(&key).cloned())
    })
}

impl Gate {
    /// The gate of image `alias` (`""`: the only one) from annotations,
    /// the first maps first.
    pub fn annotated(
        maps: &[&BTreeMap<String, String>],
        alias: &str,
    ) -> Result<Option<Gate>, String> {
        Gate::parse(
            annotated(maps, alias, "promote-from").as_deref(),
            annotated(maps, alias, "soak").as_deref(),
        )
    }
}

/// `24h`, `1h30m`, `90m`, `45s`, `2d` (days, as a convenience Go lacks) as
/// seconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || {
        format!("{text:?} is not a duration: whole numbers with d, h, m or s, e.g. 24h or 1h30m")
    };
    if text.is_empty() {
        return Err(bad());
    }
    let mut rest = text;
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = match rest[digits..].chars().next() {
            Some('d') => 86_400,
            Some('h') => 3_600,
            Some('m') => 60,
            Some('s') => 1,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
        rest = &rest[digits + 1..];
    }
    Ok(total)
}

/// Since when a tag has been present in a path, continuously up to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Introduced by the commit of this date.
    At(i64),
    /// Present in the oldest commit read: the history stops there (depth
    /// limit or shallow clone), so it may have been there longer.
    AtLeast(i64),
}

impl Since {
    fn time(self) -> i64 {
        match self {
            Since::At(t) | Since::AtLeast(t) => t,
        }
    }
}

/// The tags (and digests) present in a path now, each with since when.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Presence {
    pub since: BTreeMap<String, Since>,
}

impl Presence {
    /// One repository's tags and digests, from a presence keyed by
    /// `repository:tag` and `repository@digest`.
    pub fn of(&self, repository: &str) -> Presence {
        let since = self
            .since
            .iter()
            .filter_map(|(key, since)| {
                let rest = key.strip_prefix(repository)?;
                let value = rest.strip_prefix(':').or_else(|| rest.strip_prefix('@'))?;
                Some((value.to_string(), *since))
            })
            .collect();
        Presence { since }
    }
}

/// One commit of a path's history, newest first: its date and the files
/// it changed, each with what the file held before it (`None`: the file
/// did not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathCommit<T> {
    pub time: i64,
    pub before: Vec<(String, Option<T>)>,
}

/// Since when each value present now (`now`, per file) has been present
/// somewhere in the path, walking `commits` newest first. `complete` says
/// the oldest commit is the repository's first: what it introduced was
/// introduced then; otherwise it is only known to be there at least since.
pub fn presence(
    now: &BTreeMap<String, BTreeSet<String>>,
    commits: &[PathCommit<BTreeSet<String>>],
    complete: bool,
) -> Presence {
    let union = |files: &BTreeMap<String, BTreeSet<String>>| -> BTreeSet<String> {
        files.values().flatten().cloned().collect()
    };
    let mut files = now.clone();
    let mut open: BTreeSet<String> = union(&files);
    let mut since = BTreeMap::new();
    for commit in commits {
        for (path, before) in &commit.before {
            match before {
                Some(values) => files.insert(path.clone(), values.clone()),
                None => files.remove(path),
            };
        }
        let present = union(&files);
        open.retain(|value| {
            let kept = present.contains(value);
            if !kept {
                since.insert(value.clone(), Since::At(commit.time));
            }
            kept
        });
    }
    let oldest = commits.last().map(|c| c.time);
    for value in open {
        // Present before the oldest commit read: in the repository's first
        // commit that is impossible (it had no files), so only a cut
        // history leaves values open; with no commit at all, nothing is known.
        if let Some(t) = oldest.filter(|_| !complete) {
            since.insert(value, Since::AtLeast(t));
        }
    }
    Presence { since }
}

/// Why a candidate tag is not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Held(Rollback),
    Waiting(Wait),
}

/// A candidate waiting at a promotion gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    pub tag: String,
    pub from: String,
    pub soak_text: String,
    pub why: Waiting,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// Present, not for long enough yet.
    Soaking { since: Since, eligible: i64 },
    /// Not present in the path now.
    Absent,
    /// The path's history cannot be read; nothing qualifies.
    NoHistory(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Held(r) => write!(
                f,
                "held: rolled back by {} on {} ({} -> {} by {}); waiting for a tag newer than {}",
                &r.sha[..r.sha.len().min(7)],
                r.date,
                r.tag,
                r.to,
                r.author,
                r.tag
            ),
            Refusal::Waiting(w) => match &w.why {
                Waiting::Soaking {
                    since: Since::At(t),
                    eligible,
                } => write!(
                    f,
                    "waiting: {} in {} since {}, soak {}, eligible at {}",
                    w.tag,
                    w.from,
                    rfc3339(*t),
                    w.soak_text,
                    rfc3339(*eligible)
                ),
                Waiting::Soaking {
                    since: Since::AtLeast(t),
                    eligible,
                } => write!(
                    f,
                    "waiting: {} in {} since {} or earlier (history read back to there), soak {}, eligible at {} at the latest",
                    w.tag,
                    w.from,
                    rfc3339(*t),
                    w.soak_text,
                    rfc3339(*eligible)
                ),
                Waiting::Absent => write!(
                    f,
                    "waiting: {} is not in {} (promotion gate, soak {})",
                    w.tag, w.from, w.soak_text
                ),
                Waiting::NoHistory(why) => write!(
                    f,
                    "waiting: {} cannot be checked against {}: {why}",
                    w.tag, w.from
                ),
            },
        }
    }
}

/// A refused candidate as the report shows it: the one-line `reason`, and
/// the same facts as fields (those of its kind only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub tag: String,
    /// `held` or `waiting`.
    pub outcome: &'static str,
    pub reason: String,
    /// When a waiting tag qualifies (RFC 3339), when that is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eligible_at: Option<String>,
    /// Held: the rollback's commit (full id), its committer date (RFC
    /// 3339), its author's name, and the tag it set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<String>,
    /// Waiting: the gate's path and soak (as written), and since when the
    /// tag is in the path (RFC 3339), when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soak: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// `since` is where the history read stops: the tag may have been
    /// there longer.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub since_or_earlier: bool,
}

impl From<&Refusal> for Hold {
    fn from(refusal: &Refusal) -> Hold {
        let hold = Hold {
            tag: String::new(),
            outcome: "held",
            reason: refusal.to_string(),
            eligible_at: None,
            commit: None,
            date: None,
            author: None,
            rolled_back_to: None,
            path: None,
            soak: None,
            since: None,
            since_or_earlier: false,
        };
        match refusal {
            Refusal::Held(r) => Hold {
                tag: r.tag.clone(),
                commit: Some(r.sha.clone()),
                date: Some(r.date.clone()),
                author: Some(r.author.clone()),
                rolled_back_to: Some(r.to.clone()),
                ..hold
            },
            Refusal::Waiting(w) => {
                let (since, eligible_at) = match w.why {
                    Waiting::Soaking { since, eligible } => (Some(since), Some(rfc3339(eligible))),
                    _ => (None, None),
                };
                Hold {
                    tag: w.tag.clone(),
                    outcome: "waiting",
                    eligible_at,
                    path: Some(w.from.clone()),
                    soak: Some(w.soak_text.clone()),
                    since: since.map(|s| rfc3339(s.time())),
                    since_or_earlier: matches!(since, Some(Since::AtLeast(_))),
                    ..hold
                }
            }
        }
    }
}

/// What stands between one policy (or Argo CD image) and its candidates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Constraints {
    pub holds: Vec<Rollback>,
    /// The gate, with the presence of tags in its path or why it is unknown.
    pub gate: Option<(Gate, Result<Presence, String>)>,
    /// The clock, seconds since the Unix epoch.
    pub now: i64,
}

impl Constraints {
    pub fn is_empty(&self) -> bool {
        self.holds.is_empty() && self.gate.is_none()
    }

    /// Whether `tag` may be applied; `ranks_below(a, b)`: `a` ranks below
    /// `b` under the policy's ordering. A held tag must be strictly newer
    /// than every rolled-back one (a tag that cannot be ranked against it is
    /// not newer). A gated tag (or `tag@digest`: either part counts) must
    /// have been in the gate's path for the soak time.
    pub fn check(
        &self,
        tag: &str,
        ranks_below: &dyn Fn(&str, &str) -> bool,
    ) -> Result<(), Refusal> {
        let bare = tag.split_once('@').map_or(tag, |(t, _)| t);
        if let Some(hold) = self.holds.iter().find(|h| !ranks_below(&h.tag, bare)) {
            return Err(Refusal::Held(hold.clone()));
        }
        let Some((gate, presence)) = &self.gate else {
            return Ok(());
        };
        let wait = |why| {
            Err(Refusal::Waiting(Wait {
                tag: tag.to_string(),
                from: gate.from.clone(),
                soak_text: gate.soak_text.clone(),
                why,
            }))
        };
        let presence = match presence {
            Ok(p) => p,
            Err(why) => return wait(Waiting::NoHistory(why.clone())),
        };
        let digest = tag.split_once('@').map(|(_, d)| d);
        let since = [Some(bare), digest]
            .into_iter()
            .flatten()
            .filter_map(|key| presence.since.get(key))
            .min_by_key(|s| s.time());
        // Saturating: an absurdly long soak must never wrap round into
        // the past (and admit the tag).
        match since.map(|s| (s, s.time().saturating_add(gate.soak))) {
            None => wait(Waiting::Absent),
            Some((_, eligible)) if eligible <= self.now => Ok(()),
            Some((since, eligible)) => wait(Waiting::Soaking {
                since: *since,
                eligible,
            }),
        }
    }
}

/// A selection under constraints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice<E> {
    /// `Ok(None)`: the rule has a winner, but every tag it could take is
    /// held or waiting; `Err`: the rule itself chose nothing.
    pub tag: Result<Option<String>, E>,
    /// Why the rule's own winner was not taken, every hold once, and the
    /// tags above the chosen one that wait out their soak, in listing
    /// order (at most [`MAX_REFUSALS`]).
    pub refused: Vec<Refusal>,
}

/// How many refused candidates a choice says.
pub const MAX_REFUSALS: usize = 10;

/// Selects among the tags `constraints` let through; `select` is the
/// policy's rule over a list of tags, `ranks_below` its ordering.
pub fn choose<E>(
    constraints: &Constraints,
    tags: &[String],
    select: &dyn Fn(&[String]) -> Result<String, E>,
    ranks_below: &dyn Fn(&str, &str) -> bool,
) -> Choice<E> {
    let winner = match select(tags) {
        Ok(winner) if !constraints.is_empty() => winner,
        result => {
            return Choice {
                tag: result.map(Some),
                refused: Vec::new(),
            };
        }
    };
    let mut refusals = Vec::new();
    let allowed: Vec<String> = tags
        .iter()
        .filter(|tag| match constraints.check(tag, ranks_below) {
            Ok(()) => true,
            Err(refusal) => {
                refusals.push((tag.as_str(), refusal));
                false
            }
        })
        .cloned()
        .collect();
    let chosen = select(&allowed).ok();
    // The rule's own winner first: why it was not taken.
    refusals.sort_by_key(|(tag, _)| *tag != winner);
    let mut refused: Vec<Refusal> = Vec::new();
    for (tag, refusal) in refusals {
        // What ranks below the chosen tag changed nothing; of the rest,
        // holds are said, and tags that are in the gate's path.
        let above = chosen.as_deref().is_none_or(|c| ranks_below(c, tag));
        let said = tag == winner
            || above
                && match &refusal {
                    Refusal::Held(_) => true,
                    Refusal::Waiting(w) => {
                        matches!(w.why, Waiting::Soaking { .. })
                            && select(&[tag.to_string()]).is_ok()
                    }
                };
        if said && !refused.contains(&refusal) && refused.len() < MAX_REFUSALS {
            refused.push(refusal);
        }
    }
    Choice {
        tag: Ok(chosen),
        refused,
    }
}

impl Constraints {
    /// [`Constraints::check`] as the gate a selection's explanation takes
    /// (`policy::candidates`): a refused tag is listed as held or waiting,
    /// with the refusal as its reason.
    pub fn gate(
        &self,
        tag: &str,
        ranks_below: &dyn Fn(&str, &str) -> bool,
    ) -> Option<crate::policy::candidates::Gate> {
        use crate::policy::candidates::Gate;
        let refusal = self.check(tag, ranks_below).err()?;
        let reason = refusal.to_string();
        Some(match refusal {
            Refusal::Held(_) => Gate::Held { reason },
            Refusal::Waiting(_) => Gate::Waiting { reason },
        })
    }
}

#[cfg(test)]
mod tests;
