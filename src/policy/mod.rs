//! Policies and tag selection: given a rule and the tags a registry listed,
//! which tag is the latest, and why every other tag lost.
//!
//! Selection is a pure function of (rule, filter, exclusions, tags), exactly as
//! in Flux's image-reflector-controller, so it can be tested from tables of the
//! upstream behaviour and run by `image-update select` without a registry.
//! Which dialect a policy came from is forgotten here, except for the semver
//! `Flavor`, because Flux and Argo CD parse tags differently.

pub mod argo;
pub mod semver;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

use crate::image::Repository;
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
}

impl TagFilter {
    pub fn new(pattern: &str, extract: &str) -> Result<TagFilter, RuleError> {
        let pattern = Regex::new(pattern).map_err(|e| {
            RuleError::InvalidFilter(format!("filterTags.pattern {pattern:?}: {e}"))
        })?;
        Ok(TagFilter {
            pattern,
            extract: extract.to_string(),
        })
    }

    /// The value the rule sees for `tag`, or `None` when the pattern does not match.
    fn apply<'t>(&self, tag: &'t str) -> Option<Cow<'t, str>> {
        if self.extract.is_empty() {
            return self.pattern.is_match(tag).then_some(Cow::Borrowed(tag));
        }
        let captures = self.pattern.captures(tag)?;
        let mut out = String::new();
        captures.expand(&self.extract, &mut out);
        Some(Cow::Owned(out))
    }
}

/// Flux's default `exclusionList` when a repository sets none.
pub const DEFAULT_EXCLUSION: &str = r"^.*\.sig$";

static DEFAULT_EXCLUSION_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(DEFAULT_EXCLUSION).expect("the default exclusion is valid"));

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
}

impl SelectError {
    /// A stable name for the failure, as the conformance tables write it.
    pub fn class(&self) -> &'static str {
        match self {
            SelectError::NoTags(_) => "no-tags",
            SelectError::NoMatch(_) => "no-match",
            SelectError::Unparseable { .. } => "unparseable-number",
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

/// What happened to one listed tag; cheap to record for every tag of every
/// policy, described only when someone asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// Index into `Selector::exclusions`.
    Excluded(usize),
    Unmatched,
    /// Another tag listed later extracts the same value.
    Shadowed,
    NotAVersion,
    OutOfRange,
    /// A candidate that lost to the chosen tag.
    Outranked,
    Chosen,
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
                    Regex::new(p).map_err(|e| {
                        RuleError::InvalidPolicy(format!("exclusionList entry {p:?}: {e}"))
                    })
                })
                .collect::<Result<_, _>>()?;
        }
        Ok(self)
    }

    /// The latest tag, exactly as listed.
    pub fn select<S: AsRef<str>>(&self, tags: &[S]) -> Result<String, SelectError> {
        let (_, winner) = self.evaluate(tags);
        Ok(tags[winner?].as_ref().to_string())
    }

    /// Whether `candidate` ranks strictly below `current` under this rule's
    /// own ordering: moving from `current` to `candidate` would be a
    /// downgrade. `false` when either value cannot be ranked (excluded,
    /// filtered out, not a version, not a number): there is no order to
    /// violate then.
    pub fn ranks_below(&self, candidate: &str, current: &str) -> bool {
        let value = |tag: &'_ str| -> Option<String> {
            if self.exclusions.iter().any(|re| re.is_match(tag)) {
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

    /// Why each listed tag was kept or rejected, also when nothing qualifies.
    pub fn explain<S: AsRef<str>>(&self, tags: &[S]) -> Vec<Verdict> {
        let (reasons, _) = self.evaluate(tags);
        tags.iter()
            .zip(reasons)
            .map(|(tag, reason)| Verdict {
                tag: tag.as_ref().to_string(),
                chosen: reason == Reason::Chosen,
                reason: self.describe(tag.as_ref(), reason),
            })
            .collect()
    }

    fn describe(&self, tag: &str, reason: Reason) -> String {
        let value = || match &self.filter {
            Some(filter) => filter.apply(tag).unwrap_or_default(),
            None => Cow::Borrowed(tag),
        };
        match (reason, &self.rule) {
            (Reason::Excluded(i), _) => {
                format!("excluded by exclusionList /{}/", self.exclusions[i])
            }
            (Reason::Unmatched, _) => match &self.filter {
                Some(f) => format!("does not match filterTags.pattern /{}/", f.pattern),
                None => "does not match the filter".to_string(),
            },
            (Reason::Shadowed, _) => "extracts the same value as a later tag".to_string(),
            (Reason::NotAVersion, _) if self.flavor == Flavor::Flux => {
                format!(
                    "{:?} is not a version (Flux requires MAJOR.MINOR.PATCH)",
                    value()
                )
            }
            (Reason::NotAVersion, _) => format!("{:?} is not a version", value()),
            (Reason::OutOfRange, Rule::Semver(c)) => format!("{} is outside {c}", value()),
            (Reason::OutOfRange, _) => "out of range".to_string(),
            (Reason::Outranked, Rule::Semver(_)) => {
                "in range, but older than the chosen tag".to_string()
            }
            (Reason::Outranked, Rule::Alphabetical(o) | Rule::Numerical(o)) => {
                format!("sorts {} the chosen tag", before(*o))
            }
            (Reason::Chosen, rule) => format!("chosen by {rule}"),
        }
    }

    /// One reason per listed tag, and the index of the winner.
    fn evaluate<S: AsRef<str>>(&self, tags: &[S]) -> (Vec<Reason>, Result<usize, SelectError>) {
        let mut reasons = vec![Reason::Outranked; tags.len()];
        // The values the rule compares, each with the listed tag it maps back
        // to. As in Flux, when two tags extract the same value, the one
        // listed last wins the value.
        let mut values: Vec<(Cow<str>, usize)> = Vec::with_capacity(tags.len());
        let mut slots: HashMap<Cow<str>, usize> = HashMap::with_capacity(tags.len());
        for (i, tag) in tags.iter().enumerate() {
            let tag = tag.as_ref();
            if let Some(e) = self.exclusions.iter().position(|re| re.is_match(tag)) {
                reasons[i] = Reason::Excluded(e);
                continue;
            }
            let value = match &self.filter {
                None => Cow::Borrowed(tag),
                Some(filter) => match filter.apply(tag) {
                    Some(v) => v,
                    None => {
                        reasons[i] = Reason::Unmatched;
                        continue;
                    }
                },
            };
            match slots.get(&value) {
                Some(&slot) => {
                    reasons[std::mem::replace(&mut values[slot].1, i)] = Reason::Shadowed
                }
                None => {
                    slots.insert(value.clone(), values.len());
                    values.push((value, i));
                }
            }
        }
        if values.is_empty() {
            let why = if tags.is_empty() {
                String::new()
            } else {
                format!(
                    ": all {} listed tags were excluded or filtered out",
                    tags.len()
                )
            };
            return (reasons, Err(SelectError::NoTags(why)));
        }
        let winner = match self.rank(&values, &mut reasons, tags) {
            Ok(w) => w,
            Err(e) => return (reasons, Err(e)),
        };
        reasons[winner] = Reason::Chosen;
        (reasons, Ok(winner))
    }

    /// The index of the winning listed tag among the filtered values.
    fn rank<S: AsRef<str>>(
        &self,
        values: &[(Cow<str>, usize)],
        reasons: &mut [Reason],
        tags: &[S],
    ) -> Result<usize, SelectError> {
        let winner = match &self.rule {
            Rule::Semver(constraints) => {
                let mut candidates = Vec::new();
                for (value, i) in values {
                    match self.flavor.parse_tag(value) {
                        Err(_) => reasons[*i] = Reason::NotAVersion,
                        Ok(v) if !constraints.matches(&v) => reasons[*i] = Reason::OutOfRange,
                        Ok(v) => candidates.push((v, value.as_ref())),
                    }
                }
                let best = semver::best(candidates, self.flavor)
                    .ok_or_else(|| SelectError::NoMatch(format!("semver range {constraints}")))?;
                values.iter().find(|(v, _)| v == best)
            }
            Rule::Alphabetical(Order::Asc) => values.iter().max_by(|a, b| a.0.cmp(&b.0)),
            Rule::Alphabetical(Order::Desc) => values.iter().min_by(|a, b| a.0.cmp(&b.0)),
            Rule::Numerical(order) => {
                // As in Flux: one value that does not parse fails the policy,
                // and among equal numbers the last listed wins.
                let mut best: Option<(f64, &(Cow<str>, usize))> = None;
                for entry in values {
                    let n: f64 = entry.0.parse().map_err(|_| SelectError::Unparseable {
                        tag: tags[entry.1].as_ref().to_string(),
                        rule: self.rule.to_string(),
                    })?;
                    let better = best.is_none_or(|(b, _)| match order {
                        Order::Asc => n >= b,
                        Order::Desc => n <= b,
                    });
                    if better {
                        best = Some((n, entry));
                    }
                }
                best.map(|(_, entry)| entry)
            }
        };
        Ok(winner.expect("values is not empty").1)
    }
}

fn before(order: Order) -> &'static str {
    match order {
        Order::Asc => "below",
        Order::Desc => "above",
    }
}

#[cfg(test)]
mod tests;
