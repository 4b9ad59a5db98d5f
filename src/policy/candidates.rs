//! Why each listed tag was, or was not, chosen: the explanation `run
//! --explain`, the JSON report and the Markdown summary show per policy and
//! per Argo CD image.
//!
//! The selections (`Selector` for Flux, `ArgoRule` for Argo CD) already give
//! every listed tag a verdict ([`Mark`]) in their one pass over the tags, at
//! the stage where the upstream tool drops it; this module names those
//! verdicts ([`Outcome`]) and bounds what is kept for repositories with
//! thousands of tags: the chosen tag, the best [`PER_OUTCOME`] tags of every
//! other outcome, and a count of the rest. Bounding is one pass with a
//! fixed-size buffer per outcome, so explaining costs next to nothing beside
//! selecting.
//!
//! Holds (a human rolled a tag back in git) and promotion waits (a tag has
//! not yet run long enough elsewhere) come from the repository's history,
//! not from the registry. They enter a selection as a [`Gate`] predicate
//! over the candidates that pass every rule: a gated tag is not chosen, the
//! best ungated one is, and the gated ones are shown as `held` or `waiting`
//! with the gate's reason.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;

use super::semver::Version;

/// How many tags of each outcome but `chosen` an explanation keeps; the
/// rest are counted in [`Candidates::omitted`].
pub const PER_OUTCOME: usize = 5;

/// What happened to one listed tag. The order is the order of
/// [`Candidates::shown`]: the chosen tag, the candidates that lost to it,
/// then the rejected tags in the order the selection drops them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Chosen,
    /// A candidate the rule would rank, kept back by a human rollback.
    Held,
    /// A candidate the rule would rank, waiting for a promotion soak.
    Waiting,
    /// A candidate that ranks below the chosen tag.
    Older,
    /// An Argo CD `newest-build` candidate without a build date, which
    /// orders as 1970-01-01 and so lost.
    NoBuildDate,
    /// Flux `filterTags.extract`: a later tag extracts the same value.
    SameValue,
    /// A candidate never ranked, because the selection failed.
    Unranked,
    /// Not a valid OCI tag: skipped as the registry listed it.
    Invalid,
    /// Flux `exclusionList` of the `ImageRepository`.
    Excluded,
    /// Flux `filterTags.pattern`.
    Filtered,
    /// Argo CD `allow-tags`.
    NotAllowed,
    /// Argo CD `ignore-tags`.
    Ignored,
    /// Argo CD `digest`: not the tag it follows.
    NotFollowed,
    /// Argo CD: not built for a wanted platform.
    PlatformMissing,
    NotAVersion,
    /// Flux `numerical`: one such tag fails the policy.
    NotANumber,
    /// Outside the semver constraint.
    OutOfRange,
    /// A pre-release the semver constraint does not admit.
    PreRelease,
}

impl Outcome {
    /// Every outcome, in display order.
    pub const ALL: [Outcome; 18] = [
        Outcome::Chosen,
        Outcome::Held,
        Outcome::Waiting,
        Outcome::Older,
        Outcome::NoBuildDate,
        Outcome::SameValue,
        Outcome::Unranked,
        Outcome::Invalid,
        Outcome::Excluded,
        Outcome::Filtered,
        Outcome::NotAllowed,
        Outcome::Ignored,
        Outcome::NotFollowed,
        Outcome::PlatformMissing,
        Outcome::NotAVersion,
        Outcome::NotANumber,
        Outcome::OutOfRange,
        Outcome::PreRelease,
    ];

    /// The outcome as JSON names it.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Chosen => "chosen",
            Outcome::Held => "held",
            Outcome::Waiting => "waiting",
            Outcome::Older => "older",
            Outcome::NoBuildDate => "no-build-date",
            Outcome::SameValue => "same-value",
            Outcome::Unranked => "unranked",
            Outcome::Invalid => "invalid",
            Outcome::Excluded => "excluded",
            Outcome::Filtered => "filtered",
            Outcome::NotAllowed => "not-allowed",
            Outcome::Ignored => "ignored",
            Outcome::NotFollowed => "not-followed",
            Outcome::PlatformMissing => "platform-missing",
            Outcome::NotAVersion => "not-a-version",
            Outcome::NotANumber => "not-a-number",
            Outcome::OutOfRange => "out-of-range",
            Outcome::PreRelease => "pre-release",
        }
    }

    /// A few words for a count of tags with this outcome ("12 older").
    fn counted(self) -> &'static str {
        match self {
            Outcome::Chosen => "chosen",
            Outcome::Held => "held",
            Outcome::Waiting => "waiting",
            Outcome::Older => "older",
            Outcome::NoBuildDate => "without a build date",
            Outcome::SameValue => "extracting a value another tag has",
            Outcome::Unranked => "not ranked",
            Outcome::Invalid => "not valid OCI tags",
            Outcome::Excluded => "excluded by exclusionList",
            Outcome::Filtered => "not matching filterTags",
            Outcome::NotAllowed => "not allowed by allow-tags",
            Outcome::Ignored => "ignored by ignore-tags",
            Outcome::NotFollowed => "not the followed tag",
            Outcome::PlatformMissing => "missing the platform",
            Outcome::NotAVersion => "not versions",
            Outcome::NotANumber => "not numbers",
            Outcome::OutOfRange => "outside the range",
            Outcome::PreRelease => "pre-releases not admitted",
        }
    }
}

/// What the repository's history says about a candidate tag. Given to a
/// selection as a predicate (`Fn(&str) -> Option<Gate>`), it keeps the tag
/// from being chosen; the reason is shown as the candidate's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// A human rolled this tag (or a newer one) back: e.g. `held: rolled
    /// back by <commit> on <date>`.
    Held { reason: String },
    /// The tag has not run long enough where the policy's promotion source
    /// is: e.g. `waiting: in clusters/staging since <date>, until <date>`.
    Waiting { reason: String },
}

/// A gate predicate, as selections take it.
pub type GateFn<'a> = &'a dyn Fn(&str) -> Option<Gate>;

/// One tag and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub tag: String,
    pub outcome: Outcome,
    pub reason: String,
}

/// The explanation of one selection, bounded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Candidates {
    /// How many tags the registry listed, invalid ones included.
    pub listed: usize,
    /// The chosen tag, then up to [`PER_OUTCOME`] tags of each other
    /// outcome, best first (the newest, or as listed where the rule gives
    /// rejected tags no order).
    pub shown: Vec<Candidate>,
    /// Tags not shown, counted by outcome.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub omitted: BTreeMap<Outcome, usize>,
}

impl Candidates {
    pub fn chosen(&self) -> Option<&Candidate> {
        self.shown.iter().find(|c| c.outcome == Outcome::Chosen)
    }

    /// How many listed tags had `outcome`, shown or not.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.shown.iter().filter(|c| c.outcome == outcome).count()
            + self.omitted.get(&outcome).copied().unwrap_or(0)
    }

    /// One line: the chosen tag's reason, else why none was chosen
    /// ("40 listed tags, none qualifies: 38 outside the range, 2 not versions").
    pub fn summary(&self) -> String {
        if let Some(chosen) = self.chosen() {
            return chosen.reason.clone();
        }
        if self.listed == 0 {
            return "the registry lists no tags".to_string();
        }
        let counts: Vec<String> = Outcome::ALL
            .iter()
            .filter_map(|&o| match self.count(o) {
                0 => None,
                n => Some(format!("{n} {}", o.counted())),
            })
            .collect();
        let tags = if self.listed == 1 { "tag" } else { "tags" };
        let qualifies = if self.listed == 1 {
            "it does not qualify"
        } else {
            "none qualifies"
        };
        format!(
            "{} listed {tags}, {qualifies}: {}",
            self.listed,
            counts.join(", ")
        )
    }

    /// Adds the tags the registry listed that are not valid OCI tags, which
    /// no rule saw: as listed, up to [`PER_OUTCOME`] of them, each cut to
    /// the longest valid tag (128 characters), since a registry may list
    /// anything.
    pub fn with_invalid(mut self, invalid: &[String]) -> Candidates {
        if invalid.is_empty() {
            return self;
        }
        self.listed += invalid.len();
        let shown = invalid.len().min(PER_OUTCOME);
        self.shown
            .extend(invalid[..shown].iter().map(|tag| Candidate {
                tag: match tag.char_indices().nth(128) {
                    Some((cut, _)) => format!("{}…", &tag[..cut]),
                    None => tag.clone(),
                },
                outcome: Outcome::Invalid,
                reason: "not a valid OCI tag; skipped as listed".to_string(),
            }));
        if invalid.len() > shown {
            self.omitted.insert(Outcome::Invalid, invalid.len() - shown);
        }
        // Stable: each outcome keeps its own order.
        self.shown.sort_by_key(|c| c.outcome);
        self
    }

    /// Turns the chosen tag into an unranked one: the selection's result
    /// was not used (the rule failed after choosing).
    pub fn unchosen(mut self, why: &str) -> Candidates {
        for c in &mut self.shown {
            if c.outcome == Outcome::Chosen {
                c.outcome = Outcome::Unranked;
                c.reason = format!("would be chosen, but {why}");
            }
        }
        self.shown.sort_by_key(|c| c.outcome);
        self
    }
}

/// The verdict a selection gives one listed tag, cheap to record for every
/// tag; indices point into the rule's own lists (exclusions, ignore globs,
/// the gates it was told of).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    Chosen,
    Held(usize),
    Waiting(usize),
    Older,
    NoBuildDate,
    SameValue,
    Unranked,
    Excluded(usize),
    Filtered,
    NotAllowed,
    Ignored(usize),
    NotFollowed,
    PlatformMissing,
    NotAVersion,
    NotANumber,
    OutOfRange,
    PreRelease,
}

impl Mark {
    pub(crate) fn outcome(self) -> Outcome {
        match self {
            Mark::Chosen => Outcome::Chosen,
            Mark::Held(_) => Outcome::Held,
            Mark::Waiting(_) => Outcome::Waiting,
            Mark::Older => Outcome::Older,
            Mark::NoBuildDate => Outcome::NoBuildDate,
            Mark::SameValue => Outcome::SameValue,
            Mark::Unranked => Outcome::Unranked,
            Mark::Excluded(_) => Outcome::Excluded,
            Mark::Filtered => Outcome::Filtered,
            Mark::NotAllowed => Outcome::NotAllowed,
            Mark::Ignored(_) => Outcome::Ignored,
            Mark::NotFollowed => Outcome::NotFollowed,
            Mark::PlatformMissing => Outcome::PlatformMissing,
            Mark::NotAVersion => Outcome::NotAVersion,
            Mark::NotANumber => Outcome::NotANumber,
            Mark::OutOfRange => Outcome::OutOfRange,
            Mark::PreRelease => Outcome::PreRelease,
        }
    }

    /// Whether the tag competed: it passed every rule and was ranked
    /// against the others (or held back from them by a gate).
    pub(crate) fn competed(self) -> bool {
        matches!(
            self,
            Mark::Chosen | Mark::Older | Mark::Held(_) | Mark::Waiting(_) | Mark::NoBuildDate
        )
    }

    /// Whether the tags of this mark are shown best first by the rule's
    /// order (else as listed): those that competed, and under a version
    /// order (`by_version`) those outside the range too.
    pub(crate) fn ranked(self, by_version: bool) -> bool {
        match self {
            Mark::Older | Mark::Held(_) | Mark::Waiting(_) | Mark::NoBuildDate => true,
            Mark::OutOfRange | Mark::PreRelease => by_version,
            _ => false,
        }
    }

    /// Asks `gate` about an admitted candidate; a gated one is recorded in
    /// `gates` and marked, an ungated one stays a candidate (`Older` until
    /// one is chosen).
    pub(crate) fn gated(gate: Option<GateFn>, tag: &str, gates: &mut Vec<Gate>) -> Mark {
        match gate.and_then(|g| g(tag)) {
            None => Mark::Older,
            Some(g) => Mark::of_gate(g, gates),
        }
    }

    /// The mark of a tag `gate` refused; the gate is kept in `gates`.
    pub(crate) fn of_gate(gate: Gate, gates: &mut Vec<Gate>) -> Mark {
        let mark = match gate {
            Gate::Held { .. } => Mark::Held(gates.len()),
            Gate::Waiting { .. } => Mark::Waiting(gates.len()),
        };
        gates.push(gate);
        mark
    }
}

/// The reason a gate gave.
pub(crate) fn gate_reason(gate: &Gate) -> &str {
    match gate {
        Gate::Held { reason } | Gate::Waiting { reason } => reason,
    }
}

/// How a rule orders the tags of one outcome, greatest (best) first.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rank<'a> {
    Version(&'a Version),
    /// Byte order, greatest first (`alphabetical asc`).
    Text(&'a str),
    /// Byte order, least first (`alphabetical desc`).
    TextDesc(&'a str),
    Number(f64),
    /// A build date (seconds, nanoseconds), then the name.
    Date((i64, u32), &'a str),
}

impl Rank<'_> {
    fn cmp(&self, other: &Rank) -> Ordering {
        match (self, other) {
            (Rank::Version(a), Rank::Version(b)) => a.cmp(b),
            (Rank::Text(a), Rank::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Rank::TextDesc(a), Rank::TextDesc(b)) => b.as_bytes().cmp(a.as_bytes()),
            (Rank::Number(a), Rank::Number(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (Rank::Date(a, x), Rank::Date(b, y)) => {
                a.cmp(b).then_with(|| x.as_bytes().cmp(y.as_bytes()))
            }
            _ => Ordering::Equal,
        }
    }
}

/// The tags of one outcome: how many, and the best kept (listed index,
/// rank), best first.
type Bucket<'a> = (usize, Vec<(usize, Option<Rank<'a>>)>);

/// Collects the marks of a selection, keeping for each outcome only the
/// best `per` tags (by rank, then the first listed) and counting the rest.
/// The kept tags do not depend on the order tags are added in; adding the
/// best first (registries mostly list oldest first, so callers add ranked
/// tags last listed first) makes most tags cost one comparison.
pub(crate) struct Tally<'a> {
    per: usize,
    buckets: [Bucket<'a>; Outcome::ALL.len()],
}

impl<'a> Tally<'a> {
    pub(crate) fn new(per: usize) -> Tally<'a> {
        Tally {
            per,
            buckets: std::array::from_fn(|_| (0, Vec::new())),
        }
    }

    /// Records listed tag `index` with `mark`, ranked by `rank` among the
    /// tags of its outcome.
    #[inline]
    pub(crate) fn add(&mut self, index: usize, mark: Mark, rank: Option<Rank<'a>>) {
        let outcome = mark.outcome();
        let per = match outcome {
            Outcome::Chosen => usize::MAX,
            _ => self.per,
        };
        let (count, kept) = &mut self.buckets[outcome as usize];
        *count += 1;
        // Whether this tag goes before a kept one: a higher rank, or an
        // equal one (or none) listed earlier.
        let beats = |(j, b): &(usize, Option<Rank>)| match (&rank, b) {
            (Some(a), Some(b)) => a.cmp(b).then(j.cmp(&index)) == Ordering::Greater,
            _ => index < *j,
        };
        if kept.len() >= per && !kept.last().is_some_and(beats) {
            return;
        }
        let at = kept.iter().position(beats).unwrap_or(kept.len());
        kept.insert(at, (index, rank));
        kept.truncate(per);
    }

    /// The explanation: `describe(index, mark)` says why each kept tag got
    /// its mark. `marks` are the selection's, by listed tag.
    pub(crate) fn finish(
        self,
        tags: &[&str],
        marks: &[Mark],
        describe: impl Fn(usize, Mark) -> String,
    ) -> Candidates {
        let mut candidates = Candidates {
            listed: tags.len(),
            ..Candidates::default()
        };
        for (outcome, (count, kept)) in Outcome::ALL.iter().zip(self.buckets) {
            if count > kept.len() {
                candidates.omitted.insert(*outcome, count - kept.len());
            }
            candidates
                .shown
                .extend(kept.into_iter().map(|(index, _)| Candidate {
                    tag: tags[index].to_string(),
                    outcome: *outcome,
                    reason: describe(index, marks[index]),
                }));
        }
        candidates
    }
}

/// `n tag(s)`.
pub(crate) fn tags(n: usize) -> String {
    format!("{n} {}", if n == 1 { "tag" } else { "tags" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_keeps_the_best_of_each_outcome_and_counts_the_rest() {
        let names: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        let tags: Vec<&str> = names.iter().map(String::as_str).collect();
        let numbers: Vec<f64> = (0..20).map(f64::from).collect();
        let mut marks = vec![Mark::Older; 20];
        marks[7] = Mark::Chosen;
        marks[10..].fill(Mark::Filtered);
        let mut tally = Tally::new(3);
        for (i, mark) in marks.iter().enumerate() {
            let rank = (*mark == Mark::Older).then_some(Rank::Number(numbers[i]));
            tally.add(i, *mark, rank);
        }
        let c = tally.finish(&tags, &marks, |i, m| format!("{i} {m:?}"));
        let shown: Vec<(&str, Outcome)> = c
            .shown
            .iter()
            .map(|c| (c.tag.as_str(), c.outcome))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("t7", Outcome::Chosen),
                // The best older ones: highest number first.
                ("t9", Outcome::Older),
                ("t8", Outcome::Older),
                ("t6", Outcome::Older),
                // Without a rank: the first listed.
                ("t10", Outcome::Filtered),
                ("t11", Outcome::Filtered),
                ("t12", Outcome::Filtered),
            ]
        );
        assert_eq!(
            c.omitted,
            BTreeMap::from([(Outcome::Older, 6), (Outcome::Filtered, 7)])
        );
        assert_eq!(c.count(Outcome::Older), 9);
        assert_eq!(c.listed, 20);
        assert_eq!(c.summary(), "7 Chosen");
        assert_eq!(
            serde_json::to_value(&c).unwrap()["omitted"],
            serde_json::json!({"older": 6, "filtered": 7})
        );
    }

    #[test]
    fn invalid_tags_take_their_place_and_a_failed_choice_says_why_none() {
        let c = Candidates {
            listed: 2,
            shown: vec![Candidate {
                tag: "2.0.0".into(),
                outcome: Outcome::OutOfRange,
                reason: "outside the range ^1".into(),
            }],
            omitted: BTreeMap::from([(Outcome::OutOfRange, 1)]),
        }
        .with_invalid(&["-x".to_string()]);
        let long = Candidates::default().with_invalid(&["é".repeat(300)]);
        assert_eq!(long.shown[0].tag, format!("{}…", "é".repeat(128)));
        assert_eq!(
            c.shown.iter().map(|c| c.outcome).collect::<Vec<_>>(),
            vec![Outcome::Invalid, Outcome::OutOfRange]
        );
        assert_eq!(
            c.summary(),
            "3 listed tags, none qualifies: 1 not valid OCI tags, 2 outside the range"
        );
        assert_eq!(
            Candidates::default().summary(),
            "the registry lists no tags"
        );
    }

    use crate::policy::argo::{AllowTags, ArgoRule, Strategy, TagInfo, TagSortMode};
    use crate::policy::{Flavor, Order, Rule, Selector, TagFilter};

    /// `(tag, outcome, reason)` of every shown candidate.
    fn shown(c: &Candidates) -> Vec<(&str, Outcome, &str)> {
        c.shown
            .iter()
            .map(|c| (c.tag.as_str(), c.outcome, c.reason.as_str()))
            .collect()
    }

    fn flux(rule: Rule) -> Selector {
        Selector::new(rule, Flavor::Flux)
    }

    #[test]
    fn flux_semver_names_every_reason_in_the_order_the_selection_drops_tags() {
        let mut s = flux(Rule::semver("^1.2").unwrap())
            .with_exclusions(&["^dev-".to_string()])
            .unwrap();
        s.filter = Some(TagFilter::new("^v?[0-9]|^dev-", "").unwrap());
        let tags = [
            "1.2.0",
            "latest",
            "dev-1.9.0",
            "2.0.0",
            "1.3.0-rc.1",
            "1.2",
            "1.4.1",
            "1.3.0",
        ];
        let (chosen, c) = s.candidates(&tags, None, PER_OUTCOME);
        assert_eq!(chosen.unwrap(), "1.4.1");
        assert_eq!(
            shown(&c),
            vec![
                ("1.4.1", Outcome::Chosen, "newest of 3 tags in range ^1.2"),
                ("1.3.0", Outcome::Older, "older than 1.4.1"),
                ("1.2.0", Outcome::Older, "older than 1.4.1"),
                (
                    "dev-1.9.0",
                    Outcome::Excluded,
                    "excluded by the exclusionList /^dev-/"
                ),
                (
                    "latest",
                    Outcome::Filtered,
                    "does not match filterTags.pattern /^v?[0-9]|^dev-/"
                ),
                (
                    "1.2",
                    Outcome::NotAVersion,
                    "not a version: Flux requires MAJOR.MINOR.PATCH"
                ),
                ("2.0.0", Outcome::OutOfRange, "outside the range ^1.2"),
                (
                    "1.3.0-rc.1",
                    Outcome::PreRelease,
                    "a pre-release, which ^1.2 does not admit"
                ),
            ]
        );
        assert_eq!(c.listed, tags.len());
        assert!(c.omitted.is_empty());
        // A range that names a pre-release admits it: no pre-release reason.
        let s = flux(Rule::semver(">=1.3.0-0").unwrap());
        let (chosen, c) = s.candidates(&["1.3.0-rc.1", "1.2.0"], None, PER_OUTCOME);
        assert_eq!(chosen.unwrap(), "1.3.0-rc.1");
        assert_eq!(c.count(Outcome::OutOfRange), 1);
        assert_eq!(c.count(Outcome::PreRelease), 0);
    }

    #[test]
    fn flux_extract_values_shadowing_and_orders() {
        let mut s = flux(Rule::Numerical(Order::Asc));
        s.filter = Some(TagFilter::new("^(?:a|b)-([0-9]+)$", "$1").unwrap());
        let (chosen, c) = s.candidates(&["a-5", "b-5", "a-3"], None, PER_OUTCOME);
        assert_eq!(chosen.unwrap(), "b-5");
        assert_eq!(
            shown(&c),
            vec![
                ("b-5", Outcome::Chosen, "highest of 2 tags (value 5)"),
                ("a-3", Outcome::Older, "lower than b-5 (value 3)"),
                (
                    "a-5",
                    Outcome::SameValue,
                    "a later tag extracts the same value (value 5)"
                ),
            ]
        );
        let (_, c) = flux(Rule::Alphabetical(Order::Desc)).candidates(&["b", "a", "c"], None, 5);
        assert_eq!(
            shown(&c),
            vec![
                (
                    "a",
                    Outcome::Chosen,
                    "first of 3 tags in alphabetical order"
                ),
                ("b", Outcome::Older, "sorts after a"),
                ("c", Outcome::Older, "sorts after a"),
            ]
        );
    }

    #[test]
    fn a_failed_numerical_policy_names_the_culprit_and_ranks_nothing() {
        let (chosen, c) =
            flux(Rule::Numerical(Order::Asc)).candidates(&["1", "x", "2"], None, PER_OUTCOME);
        assert!(chosen.is_err());
        assert_eq!(c.chosen(), None);
        assert_eq!(
            c.shown.iter().map(|c| c.outcome).collect::<Vec<_>>(),
            vec![Outcome::Unranked, Outcome::Unranked, Outcome::NotANumber]
        );
        assert!(
            c.shown[0]
                .reason
                .starts_with("not ranked: tag \"x\" is not a number")
        );
        assert_eq!(
            c.summary(),
            "3 listed tags, none qualifies: 2 not ranked, 1 not numbers"
        );
    }

    #[test]
    fn gates_hold_back_candidates_and_the_best_ungated_one_is_chosen() {
        let gate = |tag: &str| match tag {
            "1.4.0" => Some(Gate::Held {
                reason: "held: rolled back by 1a2b3c4 on 2026-12-01".into(),
            }),
            "1.3.0" => Some(Gate::Waiting {
                reason: "waiting: in clusters/staging until 2026-12-05".into(),
            }),
            _ => None,
        };
        let s = flux(Rule::semver("^1").unwrap());
        let tags = ["1.2.0", "1.3.0", "1.4.0"];
        let (chosen, c) = s.candidates(&tags, Some(&gate), PER_OUTCOME);
        assert_eq!(chosen.unwrap(), "1.2.0");
        assert_eq!(
            shown(&c),
            vec![
                ("1.2.0", Outcome::Chosen, "newest of 3 tags in range ^1"),
                (
                    "1.4.0",
                    Outcome::Held,
                    "held: rolled back by 1a2b3c4 on 2026-12-01"
                ),
                (
                    "1.3.0",
                    Outcome::Waiting,
                    "waiting: in clusters/staging until 2026-12-05"
                ),
            ]
        );
        // Without a gate the selection is the plain one.
        assert_eq!(s.candidates(&tags, None, 5).0.unwrap(), "1.4.0");
        assert_eq!(s.select(&tags).unwrap(), "1.4.0");
        // Everything gated: nothing chosen, and the error says why.
        let all = |_: &str| {
            Some(Gate::Held {
                reason: "held: rolled back".into(),
            })
        };
        let (chosen, c) = s.candidates(&tags, Some(&all), PER_OUTCOME);
        assert_eq!(chosen.unwrap_err().class(), "gated");
        assert_eq!(c.count(Outcome::Held), 3);
        // The same predicate drives the Argo CD rule.
        let rule = ArgoRule::new(Strategy::Alphabetical);
        let infos: Vec<TagInfo> = tags.iter().map(|t| TagInfo::named(t)).collect();
        let (chosen, c) = rule.candidates(&infos, Some(&gate), PER_OUTCOME).unwrap();
        assert_eq!(chosen.unwrap().name, "1.2.0");
        assert_eq!(c.count(Outcome::Held) + c.count(Outcome::Waiting), 2);
    }

    /// A refused tag does not take an extracted value from an admitted tag
    /// that shares it: the selection removes refused tags before the rule.
    #[test]
    fn a_refused_tag_leaves_its_extracted_value_to_an_admitted_one() {
        let mut s = flux(Rule::Alphabetical(Order::Asc));
        s.filter = Some(TagFilter::new("^(?:build-)?(?P<v>[0-9.]+)", "$v").unwrap());
        let gate = |tag: &str| {
            (tag == "build-0.1.0").then(|| Gate::Held {
                reason: "held: rolled back".into(),
            })
        };
        let (chosen, c) = s.candidates(&["0.1.0", "build-0.1.0"], Some(&gate), PER_OUTCOME);
        assert_eq!(chosen.unwrap(), "0.1.0");
        assert_eq!(
            shown(&c),
            vec![
                (
                    "0.1.0",
                    Outcome::Chosen,
                    "last of 2 tags in alphabetical order"
                ),
                ("build-0.1.0", Outcome::Held, "held: rolled back"),
            ]
        );
    }

    #[test]
    fn argo_names_every_reason_in_upstreams_order() {
        let mut rule = ArgoRule::new(Strategy::Semver);
        rule.constraint = "1.x".into();
        rule.allow = Some(AllowTags::parse("regexp:^v?[0-9]").unwrap());
        rule.ignore = vec!["*-debug".into()];
        let names = [
            "1.0.0",
            "main",
            "1.1.0-debug",
            "1.2.0-rc.1",
            "2.0.0",
            "1.1",
            "x1",
        ];
        let tags: Vec<TagInfo> = names.iter().map(|n| TagInfo::named(n)).collect();
        let (chosen, c) = rule.candidates(&tags, None, PER_OUTCOME).unwrap();
        assert_eq!(chosen.unwrap().name, "1.1");
        assert_eq!(
            shown(&c),
            vec![
                ("1.1", Outcome::Chosen, "newest of 2 tags in range 1.x"),
                ("1.0.0", Outcome::Older, "older than 1.1"),
                (
                    "main",
                    Outcome::NotAllowed,
                    "not allowed by allow-tags regexp:^v?[0-9]"
                ),
                (
                    "x1",
                    Outcome::NotAllowed,
                    "not allowed by allow-tags regexp:^v?[0-9]"
                ),
                (
                    "1.1.0-debug",
                    Outcome::Ignored,
                    "ignored by ignore-tags *-debug"
                ),
                ("2.0.0", Outcome::OutOfRange, "outside the range 1.x"),
                (
                    "1.2.0-rc.1",
                    Outcome::PreRelease,
                    "a pre-release, which 1.x does not admit"
                ),
            ]
        );
    }

    #[test]
    fn argo_newest_build_platforms_dates_and_digest() {
        let dated = |name: &str, created: Option<&str>, platforms: &[&str]| TagInfo {
            created: created.map(str::to_string),
            platforms: platforms.iter().map(|p| p.to_string()).collect(),
            ..TagInfo::named(name)
        };
        let rule = ArgoRule::new(Strategy::NewestBuild);
        let tags = vec![
            dated("old", Some("2024-01-01T00:00:00Z"), &[]),
            dated("arm", Some("2024-06-01T00:00:00Z"), &["linux/arm64"]),
            dated("undated", None, &[]),
            dated("new", Some("2024-05-01T00:00:00Z"), &["linux/amd64"]),
        ];
        let (chosen, c) = rule.candidates(&tags, None, PER_OUTCOME).unwrap();
        assert_eq!(chosen.unwrap().name, "new");
        assert_eq!(
            shown(&c),
            vec![
                (
                    "new",
                    Outcome::Chosen,
                    "newest build of 3 tags (built 2024-05-01T00:00:00Z)"
                ),
                (
                    "old",
                    Outcome::Older,
                    "built before new (built 2024-01-01T00:00:00Z)"
                ),
                (
                    "undated",
                    Outcome::NoBuildDate,
                    "no build date, which orders as 1970-01-01 (as upstream), before new"
                ),
                (
                    "arm",
                    Outcome::PlatformMissing,
                    "built for linux/arm64, not linux/amd64"
                ),
            ]
        );
        let mut rule = ArgoRule::new(Strategy::Digest);
        rule.constraint = "stable".into();
        let tags = vec![
            TagInfo::named("latest"),
            TagInfo {
                digest: Some("sha256:aa".into()),
                ..TagInfo::named("stable")
            },
        ];
        let (_, c) = rule.candidates(&tags, None, PER_OUTCOME).unwrap();
        assert_eq!(
            shown(&c),
            vec![
                ("stable", Outcome::Chosen, "the followed tag, at sha256:aa"),
                (
                    "latest",
                    Outcome::NotFollowed,
                    "not the followed tag stable"
                ),
            ]
        );
        // A tag sort mode stands in for build dates.
        let mut rule = ArgoRule::new(Strategy::NewestBuild);
        rule.tag_sort = TagSortMode::LatestFirst;
        let (chosen, _) = rule
            .candidates(&[TagInfo::named("b"), TagInfo::named("a")], None, 5)
            .unwrap();
        assert_eq!(chosen.unwrap().name, "b");
    }

    #[test]
    fn outcome_names_are_the_json_names() {
        for outcome in Outcome::ALL {
            assert_eq!(
                serde_json::to_value(outcome).unwrap(),
                serde_json::json!(outcome.name())
            );
        }
        assert!(Outcome::ALL.windows(2).all(|w| w[0] < w[1]));
        assert!(
            Outcome::ALL
                .iter()
                .enumerate()
                .all(|(i, o)| *o as usize == i)
        );
    }
}
