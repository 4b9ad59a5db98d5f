//! Policies and tag selection: given a rule and the tags a registry listed,
//! which tag is the latest, and why every other tag lost.
//!
//! Selection is a pure function of (rule, filter, exclusions, tags), exactly as
//! in Flux's image-reflector-controller, so it can be tested from tables of the
//! upstream behaviour and run by `image-update select` without a registry.
//! Which dialect a policy came from is forgotten here, except for the semver
//! `Flavor`, because Flux and Argo CD parse tags differently.

pub mod argo;
pub mod candidates;
mod compiled;
pub mod semver;

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

// Tags come from registries: a hasher seeded per process, as std's is, but
// several times cheaper on short keys.
use foldhash::HashMap;
use foldhash::HashMapExt;
use regex::Regex;

use crate::image::Repository;
pub use candidates::{Candidate, Candidates, Outcome, PER_OUTCOME};
use candidates::{Gate, GateFn, Mark, Rank, Tally};
pub use semver::{Constraints, Flavor, Version};

/// A policy's name as markers refer to it: `<namespace>:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId {
    pub namespace: String,
    pub name: String,
}

impl PolicyId {
    pub fn new(namespace: &str, name: &str) -> PolicyId {
        PolicyId {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.namespace, self.name)
    }
}

impl serde::Serialize for PolicyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One image to keep up to date: where its tags come from and how to choose.
#[derive(Debug, Clone)]
pub struct Policy {
    pub id: PolicyId,
    /// The image exactly as the user wrote it; Flux writes this back unchanged.
    pub image: String,
    pub repository: Repository,
    pub selector: Selector,
    pub digest: DigestReflection,
    /// The registry may be reached over plain HTTP.
    pub insecure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DigestReflection {
    #[default]
    Never,
    IfNotPresent,
    Always,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

impl Order {
    /// Flux's `order` field: empty means `asc`.
    pub fn parse(text: &str) -> Result<Order, RuleError> {
        match text {
            "" | "asc" => Ok(Order::Asc),
            "desc" => Ok(Order::Desc),
            other => Err(RuleError::InvalidPolicy(format!(
                "order {other:?} is neither \"asc\" nor \"desc\""
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Rule {
    Semver(Constraints),
    Alphabetical(Order),
    Numerical(Order),
}

impl Rule {
    pub fn semver(range: &str) -> Result<Rule, RuleError> {
        Constraints::parse(range)
            .map(Rule::Semver)
            .map_err(|e| RuleError::InvalidPolicy(e.to_string()))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let order = |o: &Order| if *o == Order::Asc { "asc" } else { "desc" };
        match self {
            Rule::Semver(c) => write!(f, "semver {c}"),
            Rule::Alphabetical(o) => write!(f, "alphabetical {}", order(o)),
            Rule::Numerical(o) => write!(f, "numerical {}", order(o)),
        }
    }
}

/// `filterTags`: an unanchored pattern and a template over its captures.
#[derive(Debug, Clone)]
pub struct TagFilter {
    pub pattern: Regex,
    pub extract: String,
    /// The capture group `extract` is, when it is one reference and nothing
    /// else (`$v`, `${v}`, `$1`, as filters mostly are): then the value is
    /// a slice of the tag, with no template to expand.
    group: Option<usize>,
}

impl TagFilter {
    pub fn new(pattern: &str, extract: &str) -> Result<TagFilter, RuleError> {
        let pattern = compiled::regex(pattern).map_err(|e| {
            RuleError::InvalidFilter(format!("filterTags.pattern {pattern:?}: {e}"))
        })?;
        let group = lone_group(&pattern, extract);
        Ok(TagFilter {
            pattern,
            extract: extract.to_string(),
            group,
        })
    }

    /// The value the rule sees for `tag`, or `None` when the pattern does not match.
    fn apply<'t>(&self, tag: &'t str) -> Option<Cow<'t, str>> {
        if self.extract.is_empty() {
            return self.pattern.is_match(tag).then_some(Cow::Borrowed(tag));
        }
        let captures = self.pattern.captures(tag)?;
        if let Some(group) = self.group {
            // As expanding the template: a group that took no part is empty.
            return Some(Cow::Borrowed(
                captures.get(group).map_or("", |m| m.as_str()),
            ));
        }
        let mut out = String::new();
        captures.expand(&self.extract, &mut out);
        Some(Cow::Owned(out))
    }
}

/// The group `extract` names when it is a single reference to a group of
/// `pattern` (`$name`, `${name}`, `$N`, `${N}`), read as the regex crate's
/// template expansion reads it: the longest run of `[0-9A-Za-z_]` after a
/// bare `$`, a number if it parses as one, else a name.
fn lone_group(pattern: &Regex, extract: &str) -> Option<usize> {
    let inner = extract.strip_prefix('$')?;
    let name = match inner.strip_prefix('{') {
        Some(braced) => braced.strip_suffix('}')?,
        None => inner,
    };
    let plain = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !plain {
        return None;
    }
    match name.parse::<usize>() {
        Ok(i) => (i < pattern.captures_len()).then_some(i),
        Err(_) => pattern.capture_names().position(|n| n == Some(name)),
    }
}

/// Flux's default `exclusionList` when a repository sets none.
pub const DEFAULT_EXCLUSION: &str = r"^.*\.sig$";

static DEFAULT_EXCLUSION_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(DEFAULT_EXCLUSION).expect("the default exclusion is valid"));

/// Whether the exclusion `re` matches `tag`. The default, `^.*\.sig$`,
/// which nearly every repository keeps, is read without the regex engine:
/// it matches a tag ending in `.sig` with no line break before (`.` stops
/// at one), and it is asked of every listed tag of every policy.
fn excludes(re: &Regex, tag: &str) -> bool {
    match re.as_str() == DEFAULT_EXCLUSION {
        true => tag
            .strip_suffix(".sig")
            .is_some_and(|rest| !rest.contains('\n')),
        false => re.is_match(tag),
    }
}

/// Everything that decides which tag wins.
#[derive(Debug, Clone)]
pub struct Selector {
    pub rule: Rule,
    pub filter: Option<TagFilter>,
    pub exclusions: Vec<Regex>,
    pub flavor: Flavor,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
    #[error("invalid tag filter: {0}")]
    InvalidFilter(String),
}

/// Why a policy chose nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    #[error("no tags to choose from{0}")]
    NoTags(String),
    #[error("no tag satisfies {0}")]
    NoMatch(String),
    #[error("tag {tag:?} is not a number ({rule} fails on any tag that does not parse)")]
    Unparseable { tag: String, rule: String },
    /// Every candidate is held back by the repository's history.
    #[error("no tag to move to: {0}")]
    Gated(String),
}

impl SelectError {
    /// A stable name for the failure, as the conformance tables write it.
    pub fn class(&self) -> &'static str {
        match self {
            SelectError::NoTags(_) => "no-tags",
            SelectError::NoMatch(_) => "no-match",
            SelectError::Unparseable { .. } => "unparseable-number",
            SelectError::Gated(_) => "gated",
        }
    }
}

/// What happened to one listed tag, described for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub tag: String,
    pub chosen: bool,
    /// Why the tag was rejected, or for a candidate that lost, why it lost.
    pub reason: String,
}

impl Selector {
    pub fn new(rule: Rule, flavor: Flavor) -> Selector {
        Selector {
            rule,
            filter: None,
            exclusions: vec![DEFAULT_EXCLUSION_RE.clone()],
            flavor,
        }
    }

    /// Flux's `exclusionList`: an empty list means the default.
    pub fn with_exclusions(mut self, patterns: &[String]) -> Result<Selector, RuleError> {
        if !patterns.is_empty() {
            self.exclusions = patterns
                .iter()
                .map(|p| {
                    compiled::regex(p).map_err(|e| {
                        RuleError::InvalidPolicy(format!("exclusionList entry {p:?}: {e}"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(self)
    }

    /// The latest tag, exactly as listed.
    pub fn select<S: AsRef<str>>(&self, tags: &[S]) -> Result<String, SelectError> {
        let winner = self.evaluate(tags, None).winner?;
        Ok(tags[winner].as_ref().to_string())
    }

    /// Whether `candidate` ranks strictly below `current` under this rule's
    /// own ordering: moving from `current` to `candidate` would be a
    /// downgrade. `false` when either value cannot be ranked (excluded,
    /// filtered out, not a version, not a number): there is no order to
    /// violate then.
    pub fn ranks_below(&self, candidate: &str, current: &str) -> bool {
        let value = |tag: &'_ str| -> Option<String> {
            if self.exclusions.iter().any(|re| excludes(re, tag)) {
                return None;
            }
            match &self.filter {
                None => Some(tag.to_string()),
                Some(filter) => filter.apply(tag).map(Cow::into_owned),
            }
        };
        let (Some(candidate), Some(current)) = (value(candidate), value(current)) else {
            return false;
        };
        match &self.rule {
            Rule::Semver(_) => {
                match (
                    self.flavor.parse_tag(&candidate),
                    self.flavor.parse_tag(&current),
                ) {
                    (Ok(a), Ok(b)) => a < b,
                    _ => false,
                }
            }
            Rule::Alphabetical(Order::Asc) => candidate < current,
            Rule::Alphabetical(Order::Desc) => candidate > current,
            Rule::Numerical(order) => match (candidate.parse::<f64>(), current.parse::<f64>()) {
                (Ok(a), Ok(b)) if *order == Order::Asc => a < b,
                (Ok(a), Ok(b)) => a > b,
                _ => false,
            },
        }
    }

    /// Why each listed tag was kept or rejected, also when nothing qualifies,
    /// as `select --explain` prints it.
    pub fn explain<S: AsRef<str>>(&self, tags: &[S]) -> Vec<Verdict> {
        let e = self.evaluate(tags, None);
        tags.iter()
            .zip(e.marks)
            .map(|(tag, mark)| Verdict {
                tag: tag.as_ref().to_string(),
                chosen: mark == Mark::Chosen,
                reason: self.describe(tag.as_ref(), mark),
            })
            .collect()
    }

    fn describe(&self, tag: &str, mark: Mark) -> String {
        let value = || self.value_of(tag);
        match (mark, &self.rule) {
            (Mark::Excluded(i), _) => {
                format!("excluded by exclusionList /{}/", self.exclusions[i])
            }
            (Mark::Filtered, _) => match &self.filter {
                Some(f) => format!("does not match filterTags.pattern /{}/", f.pattern),
                None => "does not match the filter".to_string(),
            },
            (Mark::SameValue, _) => "extracts the same value as a later tag".to_string(),
            (Mark::NotAVersion, _) if self.flavor == Flavor::Flux => {
                format!(
                    "{:?} is not a version (Flux requires MAJOR.MINOR.PATCH)",
                    value()
                )
            }
            (Mark::NotAVersion, _) => format!("{:?} is not a version", value()),
            (Mark::OutOfRange, Rule::Semver(c)) => format!("{} is outside {c}", value()),
            (Mark::PreRelease, Rule::Semver(c)) => format!(
                "{} is outside {c}: a pre-release, which no comparator of its group admits",
                value()
            ),
            (Mark::Older, Rule::Semver(_)) => "in range, but older than the chosen tag".to_string(),
            (Mark::Older, Rule::Alphabetical(o) | Rule::Numerical(o)) => {
                format!("sorts {} the chosen tag", before(*o))
            }
            (Mark::Chosen, rule) => format!("chosen by {rule}"),
            (Mark::NotANumber, rule) => format!("not a number, which fails {rule}"),
            _ => "not ranked: the selection failed".to_string(),
        }
    }

    /// The value the rule compares for `tag` (its extract, with a filter).
    fn value_of<'t>(&self, tag: &'t str) -> Cow<'t, str> {
        match &self.filter {
            Some(filter) => filter.apply(tag).unwrap_or_default(),
            None => Cow::Borrowed(tag),
        }
    }

    /// The latest tag under `gate` (holds and promotion waits: gated
    /// candidates are not chosen), with why every listed tag was or was not
    /// chosen, at most `per` of each outcome but the chosen one (see
    /// [`candidates`]).
    pub fn candidates<S: AsRef<str>>(
        &self,
        tags: &[S],
        gate: Option<GateFn>,
        per: usize,
    ) -> (Result<String, SelectError>, Candidates) {
        let e = self.evaluate(tags, gate);
        let names: Vec<&str> = tags.iter().map(AsRef::as_ref).collect();
        let ranked = |m: Mark| m.ranked(matches!(self.rule, Rule::Semver(_)));
        let mut tally = Tally::new(per);
        let mut compared = 0;
        for (i, &mark) in e.marks.iter().enumerate() {
            compared += usize::from(mark.competed());
            if !ranked(mark) {
                tally.add(i, mark, None);
            }
        }
        for &i in &e.set_aside {
            tally.add(i, e.marks[i], None);
        }
        match &self.rule {
            Rule::Semver(_) => {
                for (version, pos) in e.versions.iter().rev() {
                    let i = e.values[*pos].1;
                    if ranked(e.marks[i]) {
                        tally.add(i, e.marks[i], Some(Rank::Version(version)));
                    }
                }
            }
            Rule::Alphabetical(order) | Rule::Numerical(order) => {
                for (value, i) in e.values.iter().rev() {
                    let rank = match (&self.rule, order) {
                        (Rule::Alphabetical(_), Order::Asc) => Some(Rank::Text(value)),
                        (Rule::Alphabetical(_), Order::Desc) => Some(Rank::TextDesc(value)),
                        (_, Order::Asc) => value.parse().ok().map(Rank::Number),
                        (_, Order::Desc) => value.parse::<f64>().ok().map(|n| Rank::Number(-n)),
                    };
                    if ranked(e.marks[*i]) {
                        tally.add(*i, e.marks[*i], rank);
                    }
                }
            }
        }
        let chosen = e.winner.as_ref().ok().map(|&w| names[w]);
        let failure = e.winner.as_ref().err().map(ToString::to_string);
        let explained = tally.finish(&names, &e.marks, |i, mark| match (mark, &failure) {
            (Mark::Unranked, Some(failure)) => format!("not ranked: {failure}"),
            _ => self.reason(names[i], mark, chosen, compared, &e.gates),
        });
        (e.winner.map(|w| names[w].to_string()), explained)
    }

    /// Why `tag` got `mark`, for the report: `chosen` is the winner, and
    /// `compared` how many candidates the rule ranked.
    fn reason(
        &self,
        tag: &str,
        mark: Mark,
        chosen: Option<&str>,
        compared: usize,
        gates: &[Gate],
    ) -> String {
        // Only an extract makes the compared value differ from the tag.
        let extracts = self.filter.as_ref().is_some_and(|f| !f.extract.is_empty());
        let value = match extracts {
            true => self.value_of(tag),
            false => Cow::Borrowed(tag),
        };
        let shown = if value != tag {
            format!(" (value {value})")
        } else {
            String::new()
        };
        let chosen = chosen.unwrap_or_default();
        let of = || candidates::tags(compared);
        match (mark, &self.rule) {
            (Mark::Chosen, Rule::Semver(c)) => format!("newest of {} in range {c}{shown}", of()),
            (Mark::Chosen, Rule::Alphabetical(Order::Asc)) => {
                format!("last of {} in alphabetical order{shown}", of())
            }
            (Mark::Chosen, Rule::Alphabetical(Order::Desc)) => {
                format!("first of {} in alphabetical order{shown}", of())
            }
            (Mark::Chosen, Rule::Numerical(Order::Asc)) => format!("highest of {}{shown}", of()),
            (Mark::Chosen, Rule::Numerical(Order::Desc)) => format!("lowest of {}{shown}", of()),
            (Mark::Older, Rule::Semver(_)) => format!("older than {chosen}{shown}"),
            (Mark::Older, Rule::Alphabetical(Order::Asc)) => {
                format!("sorts before {chosen}{shown}")
            }
            (Mark::Older, Rule::Alphabetical(Order::Desc)) => {
                format!("sorts after {chosen}{shown}")
            }
            (Mark::Older, Rule::Numerical(Order::Asc)) => format!("lower than {chosen}{shown}"),
            (Mark::Older, Rule::Numerical(Order::Desc)) => {
                format!("higher than {chosen}{shown}")
            }
            (Mark::Held(g) | Mark::Waiting(g), _) => candidates::gate_reason(&gates[g]).to_string(),
            (Mark::SameValue, _) => format!("a later tag extracts the same value{shown}"),
            (Mark::Unranked, _) => "not ranked: the selection failed".to_string(),
            (Mark::Excluded(i), _) => {
                format!("excluded by the exclusionList /{}/", self.exclusions[i])
            }
            (Mark::Filtered, _) => match &self.filter {
                Some(f) => format!("does not match filterTags.pattern /{}/", f.pattern),
                None => "does not match the filter".to_string(),
            },
            (Mark::NotAVersion, _) if self.flavor == Flavor::Flux => {
                format!("not a version{shown}: Flux requires MAJOR.MINOR.PATCH")
            }
            (Mark::NotAVersion, _) => format!("not a version{shown}"),
            (Mark::NotANumber, _) => {
                format!("not a number{shown}, which fails {}", self.rule)
            }
            (Mark::OutOfRange, Rule::Semver(c)) => format!("outside the range {c}{shown}"),
            (Mark::PreRelease, Rule::Semver(c)) => {
                format!("a pre-release{shown}, which {c} does not admit")
            }
            _ => String::new(),
        }
    }

    /// One mark per listed tag, and the winner.
    fn evaluate<'t, S: AsRef<str>>(&self, tags: &'t [S], gate: Option<GateFn>) -> Evaluation<'t> {
        let mut e = Evaluation {
            marks: vec![Mark::Older; tags.len()],
            winner: Ok(0),
            values: Vec::with_capacity(tags.len()),
            versions: Vec::new(),
            gates: Vec::new(),
            set_aside: Vec::new(),
        };
        // The values the rule compares, each with the listed tag it maps
        // back to. As in Flux, when two tags extract the same value, the
        // one listed last wins the value. Tags the gate refuses are set
        // aside (`deferred`): they take a value only when no other tag has
        // it, as if removed before the rule, as the history's holds select.
        let mut slots: HashMap<Cow<str>, usize> = HashMap::with_capacity(tags.len());
        let mut deferred: Vec<(usize, Cow<str>, Gate)> = Vec::new();
        for (i, tag) in tags.iter().enumerate() {
            let tag = tag.as_ref();
            if let Some(x) = self.exclusions.iter().position(|re| excludes(re, tag)) {
                e.marks[i] = Mark::Excluded(x);
                continue;
            }
            let value = match &self.filter {
                None => Cow::Borrowed(tag),
                Some(filter) => match filter.apply(tag) {
                    Some(v) => v,
                    None => {
                        e.marks[i] = Mark::Filtered;
                        continue;
                    }
                },
            };
            if let Some(refusal) = gate.and_then(|g| g(tag)) {
                deferred.push((i, value, refusal));
                continue;
            }
            match slots.get(&value) {
                Some(&slot) => {
                    e.marks[std::mem::replace(&mut e.values[slot].1, i)] = Mark::SameValue
                }
                None => {
                    slots.insert(value.clone(), e.values.len());
                    e.values.push((value, i));
                }
            }
        }
        // Refused tags: a value no admitted tag has goes to the last of
        // them (the rule then finds it gated); the others are gated here.
        let unrefused = e.values.len();
        // The refusal of each refused tag holding a value, by its slot.
        let mut holding: HashMap<usize, Gate> = HashMap::new();
        for (i, value, refusal) in deferred {
            match slots.get(&value) {
                Some(&slot) if slot < unrefused => {
                    e.marks[i] = Mark::of_gate(refusal, &mut e.gates);
                    e.set_aside.push(i);
                }
                Some(&slot) => {
                    let earlier = std::mem::replace(&mut e.values[slot].1, i);
                    if let Some(theirs) = holding.insert(slot, refusal) {
                        e.marks[earlier] = Mark::of_gate(theirs, &mut e.gates);
                    }
                    e.set_aside.push(earlier);
                }
                None => {
                    slots.insert(value.clone(), e.values.len());
                    holding.insert(e.values.len(), refusal);
                    e.values.push((value, i));
                }
            }
        }
        e.winner = if e.values.is_empty() {
            let why = if tags.is_empty() {
                String::new()
            } else {
                format!(
                    ": all {} listed tags were excluded or filtered out",
                    tags.len()
                )
            };
            Err(SelectError::NoTags(why))
        } else {
            self.rank(&mut e, tags, gate)
        };
        if let Ok(winner) = e.winner {
            e.marks[winner] = Mark::Chosen;
        }
        e
    }

    /// The index of the winning listed tag among the compared values; marks
    /// the values the rule refuses, and the candidates `gate` holds back.
    fn rank<S: AsRef<str>>(
        &self,
        e: &mut Evaluation,
        tags: &[S],
        gate: Option<GateFn>,
    ) -> Result<usize, SelectError> {
        let Evaluation {
            marks,
            values,
            versions,
            gates,
            ..
        } = e;
        let winner = match &self.rule {
            Rule::Semver(constraints) => {
                for (pos, (value, i)) in values.iter().enumerate() {
                    match self.flavor.parse_tag(value) {
                        Err(_) => marks[*i] = Mark::NotAVersion,
                        Ok(v) => {
                            marks[*i] = if constraints.matches(&v) {
                                Mark::gated(gate, tags[*i].as_ref(), gates)
                            } else if constraints.refuses_only_as_prerelease(&v) {
                                Mark::PreRelease
                            } else {
                                Mark::OutOfRange
                            };
                            versions.push((v, pos));
                        }
                    }
                }
                let admitted = versions
                    .iter()
                    .filter(|(_, pos)| marks[values[*pos].1] == Mark::Older)
                    .map(|(v, pos)| (v, (values[*pos].0.as_ref(), *pos)));
                semver::best(admitted, self.flavor).map(|(_, pos)| values[pos].1)
            }
            Rule::Alphabetical(order) => {
                for (_, i) in values.iter() {
                    marks[*i] = Mark::gated(gate, tags[*i].as_ref(), gates);
                }
                let admitted = values.iter().filter(|(_, i)| marks[*i] == Mark::Older);
                match order {
                    Order::Asc => admitted.max_by(|a, b| a.0.cmp(&b.0)),
                    Order::Desc => admitted.min_by(|a, b| a.0.cmp(&b.0)),
                }
                .map(|(_, i)| *i)
            }
            Rule::Numerical(order) => {
                // As in Flux: one value that does not parse fails the policy,
                // and among equal numbers the last listed wins.
                let mut failed = None;
                let mut best: Option<(f64, usize)> = None;
                for (value, i) in values.iter() {
                    let Ok(n) = value.parse::<f64>() else {
                        marks[*i] = Mark::NotANumber;
                        failed.get_or_insert(*i);
                        continue;
                    };
                    marks[*i] = Mark::gated(gate, tags[*i].as_ref(), gates);
                    let better = marks[*i] == Mark::Older
                        && best.is_none_or(|(b, _)| match order {
                            Order::Asc => n >= b,
                            Order::Desc => n <= b,
                        });
                    if better {
                        best = Some((n, *i));
                    }
                }
                if let Some(i) = failed {
                    for mark in marks.iter_mut().filter(|m| **m == Mark::Older) {
                        *mark = Mark::Unranked;
                    }
                    return Err(SelectError::Unparseable {
                        tag: tags[i].as_ref().to_string(),
                        rule: self.rule.to_string(),
                    });
                }
                best.map(|(_, i)| i)
            }
        };
        winner.ok_or_else(|| match (&self.rule, gates.first()) {
            (_, Some(first)) => SelectError::Gated(format!(
                "{} held or waiting, e.g. {}",
                candidates::tags(gates.len()),
                candidates::gate_reason(first)
            )),
            (Rule::Semver(c), None) => SelectError::NoMatch(format!("semver range {c}")),
            (_, None) => unreachable!("an alphabetical or numerical rule ranks every value"),
        })
    }
}

/// What a selection made of the listed tags.
struct Evaluation<'t> {
    marks: Vec<Mark>,
    winner: Result<usize, SelectError>,
    /// The values the rule compares, each with the listed tag it maps to.
    values: Vec<(Cow<'t, str>, usize)>,
    /// Semver: each compared value that parsed, by its place in `values`.
    versions: Vec<(Version, usize)>,
    /// What the gate said of the candidates it holds back.
    gates: Vec<Gate>,
    /// Refused tags that compare no value: another tag has theirs.
    set_aside: Vec<usize>,
}

fn before(order: Order) -> &'static str {
    match order {
        Order::Asc => "below",
        Order::Desc => "above",
    }
}

#[cfg(test)]
mod tests;
