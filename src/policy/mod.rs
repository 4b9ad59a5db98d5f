//! Policies and tag selection: given a rule and the tags a registry listed,
//! which tag is the latest, and why every other tag lost.
//!
//! Selection is a pure function of (rule, filter, exclusions, tags), exactly as
//! in Flux's image-reflector-controller, so it can be tested from tables of the
//! upstream behaviour and run by `image-update select` without a registry.
//! Which dialect a policy came from is forgotten here, except for the semver
//! `Flavor`, because Flux and Argo CD parse tags differently.

pub mod semver;

use std::fmt;

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
    fn apply(&self, tag: &str) -> Option<String> {
        let captures = self.pattern.captures(tag)?;
        if self.extract.is_empty() {
            return Some(tag.to_string());
        }
        let mut out = String::new();
        captures.expand(&self.extract, &mut out);
        Some(out)
    }
}

/// Flux's default `exclusionList` when a repository sets none.
pub const DEFAULT_EXCLUSION: &str = r"^.*\.sig$";

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

/// What happened to one listed tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub tag: String,
    pub chosen: bool,
    /// Why the tag was rejected, or for a candidate that lost, why it lost.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub tag: String,
    /// One entry per listed tag, in listing order.
    pub verdicts: Vec<Verdict>,
}

impl Selector {
    pub fn new(rule: Rule, flavor: Flavor) -> Selector {
        Selector {
            rule,
            filter: None,
            exclusions: vec![
                Regex::new(DEFAULT_EXCLUSION).expect("the default exclusion is valid"),
            ],
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

    /// The latest tag, with a verdict for every listed tag.
    pub fn select<S: AsRef<str>>(&self, tags: &[S]) -> Result<Choice, SelectError> {
        let (verdicts, winner) = self.evaluate(tags);
        let winner = winner?;
        Ok(Choice {
            tag: verdicts[winner].tag.clone(),
            verdicts,
        })
    }

    /// Why each listed tag was kept or rejected, also when nothing qualifies.
    pub fn explain<S: AsRef<str>>(&self, tags: &[S]) -> Vec<Verdict> {
        self.evaluate(tags).0
    }

    fn evaluate<S: AsRef<str>>(&self, tags: &[S]) -> (Vec<Verdict>, Result<usize, SelectError>) {
        let mut verdicts: Vec<Verdict> = tags
            .iter()
            .map(|t| Verdict {
                tag: t.as_ref().to_string(),
                chosen: false,
                reason: String::new(),
            })
            .collect();
        // Extracted value -> index of the listed tag it came from. As in Flux,
        // when two tags extract the same value, the one listed last maps back.
        let mut values: Vec<(String, usize)> = Vec::new();
        for (i, verdict) in verdicts.iter_mut().enumerate() {
            let tag = verdict.tag.as_str();
            if let Some(re) = self.exclusions.iter().find(|re| re.is_match(tag)) {
                verdict.reason = format!("excluded by exclusionList /{re}/");
                continue;
            }
            let value = match &self.filter {
                None => tag.to_string(),
                Some(filter) => match filter.apply(tag) {
                    Some(v) => v,
                    None => {
                        verdict.reason =
                            format!("does not match filterTags.pattern /{}/", filter.pattern);
                        continue;
                    }
                },
            };
            match values.iter_mut().find(|(v, _)| *v == value) {
                Some(slot) => slot.1 = i,
                None => values.push((value, i)),
            }
        }
        for (i, verdict) in verdicts.iter_mut().enumerate() {
            if verdict.reason.is_empty() && !values.iter().any(|(_, j)| *j == i) {
                verdict.reason = "extracts the same value as a later tag".to_string();
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
            return (verdicts, Err(SelectError::NoTags(why)));
        }
        let winner = match self.rank(&values, &mut verdicts) {
            Ok(w) => w,
            Err(e) => return (verdicts, Err(e)),
        };
        verdicts[winner].chosen = true;
        verdicts[winner].reason = format!("chosen by {}", self.rule);
        (verdicts, Ok(winner))
    }

    /// The index of the winning listed tag among the filtered values.
    fn rank(
        &self,
        values: &[(String, usize)],
        verdicts: &mut [Verdict],
    ) -> Result<usize, SelectError> {
        Ok(match &self.rule {
            Rule::Semver(c) => self.semver(c, values, verdicts)?,
            Rule::Alphabetical(order) => {
                let best = if *order == Order::Asc {
                    values.iter().max_by(|a, b| a.0.cmp(&b.0))
                } else {
                    values.iter().min_by(|a, b| a.0.cmp(&b.0))
                };
                let best = best.expect("values is not empty").1;
                for (_, i) in values {
                    verdicts[*i].reason = format!("sorts {} the chosen tag", before(*order));
                }
                best
            }
            Rule::Numerical(order) => {
                let mut best: Option<(f64, usize)> = None;
                for (value, i) in values {
                    let n: f64 = value.parse().map_err(|_| SelectError::Unparseable {
                        tag: verdicts[*i].tag.clone(),
                        rule: self.rule.to_string(),
                    })?;
                    let better = match best {
                        None => true,
                        Some((b, _)) => {
                            (*order == Order::Asc && n > b) || (*order == Order::Desc && n < b)
                        }
                    };
                    if better {
                        best = Some((n, *i));
                    }
                    verdicts[*i].reason = format!("sorts {} the chosen tag", before(*order));
                }
                best.expect("values is not empty").1
            }
        })
    }

    fn semver(
        &self,
        constraints: &Constraints,
        values: &[(String, usize)],
        verdicts: &mut [Verdict],
    ) -> Result<usize, SelectError> {
        let mut candidates: Vec<&str> = Vec::new();
        for (value, i) in values {
            let parsed = self.flavor.parse_tag(value);
            verdicts[*i].reason = match parsed {
                Err(_) if self.flavor == Flavor::Flux => {
                    format!("{value:?} is not a version (Flux requires MAJOR.MINOR.PATCH)")
                }
                Err(_) => format!("{value:?} is not a version"),
                Ok(v) if !constraints.matches(&v) => format!("{v} is outside {constraints}"),
                Ok(_) => {
                    candidates.push(value);
                    "in range, but older than the chosen tag".to_string()
                }
            };
        }
        let best = semver::latest(constraints, &candidates, self.flavor)
            .ok_or_else(|| SelectError::NoMatch(format!("semver range {constraints}")))?;
        Ok(values
            .iter()
            .find(|(v, _)| v == best)
            .expect("the winner is one of the values")
            .1)
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
