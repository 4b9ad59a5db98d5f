//! Semantic versions and version constraints with the rules of the Go library
//! Masterminds/semver v3 (3.4/3.5), which Flux's image-reflector-controller
//! and Argo CD Image Updater use to pick the newest image tag. To choose the
//! same tag as those controllers we must reproduce their rules, quirks
//! included, and neither Cargo's `semver` crate nor npm's `node-semver`
//! does: Masterminds accepts `v1`, `1.2` and `1.02.3` as versions, reads a
//! bare `1.2` in a constraint as `1.2.x` and `>1.1` as `>=1.2.0`, separates
//! comparators by commas or spaces, and lets one prerelease comparator admit
//! prereleases of *any* version in range to its whole AND group, where npm
//! only admits prereleases of the same `major.minor.patch`. The conformance tables in
//! `testdata/conformance/` hold the Go library's own answers and are the
//! reference for this module.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;

/// Masterminds 3.5 refuses longer versions and constraints and more
/// alternatives; the limits also bound the work a hostile tag list or policy
/// can cause.
const MAX_VERSION_LEN: usize = 256;
const MAX_CONSTRAINT_LEN: usize = 512;
const MAX_CONSTRAINT_GROUPS: usize = 32;

/// Why a version or constraint was rejected; the message names the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemverError {
    message: String,
}

impl SemverError {
    fn version(input: &str, reason: impl fmt::Display) -> Self {
        SemverError {
            message: format!("{input:?} is not a semantic version: {reason}"),
        }
    }

    fn constraint(input: &str, reason: impl fmt::Display) -> Self {
        SemverError {
            message: format!("invalid semver constraint {input:?}: {reason}"),
        }
    }
}

impl fmt::Display for SemverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SemverError {}

/// One dot-separated prerelease identifier.
///
/// The variant order gives semver 2.0 precedence through the derived `Ord`:
/// numeric identifiers sort before alphanumeric ones, numbers by value, text
/// byte-wise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Identifier {
    Numeric(u64),
    /// Anything that is not a plain number, including all-digit identifiers
    /// too large for `u64`, which Masterminds also compares as text.
    AlphaNumeric(String),
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identifier::Numeric(n) => write!(f, "{n}"),
            Identifier::AlphaNumeric(s) => f.write_str(s),
        }
    }
}

/// A version as Masterminds' lenient `NewVersion` reads it.
///
/// Equality and ordering look only at major, minor, patch and prerelease:
/// `v1.2.3`, `1.2.3` and `1.2.3+build.7` are all equal.
#[derive(Debug, Clone)]
pub struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<Identifier>,
    build: Vec<String>,
    original: String,
}

impl Version {
    /// Masterminds `NewVersion`: an optional `v`, one to three numeric parts
    /// (missing ones are zero, leading zeros allowed), then an optional
    /// `-prerelease` and `+build` of non-empty `[0-9A-Za-z-]` identifiers.
    /// Numeric prerelease identifiers with leading zeros are rejected, as are
    /// numbers that do not fit in `u64`.
    pub fn parse(s: &str) -> Result<Version, SemverError> {
        if s.len() > MAX_VERSION_LEN {
            return Err(SemverError::version(
                s,
                format_args!("longer than {MAX_VERSION_LEN} bytes"),
            ));
        }
        let body = s.strip_prefix('v').unwrap_or(s);
        // The numeric core holds neither '-' nor '+', and the prerelease
        // holds no '+', so the first of each marks where the next part starts.
        let (rest, build) = cut(body, b'+');
        let (core, pre) = cut(rest, b'-');

        // Checked before any part is read, as the error for too many parts
        // wins over one for a part that is not a number.
        if core.bytes().filter(|&b| b == b'.').count() > 2 {
            return Err(SemverError::version(s, "more than three numeric parts"));
        }
        let mut numbers = [0u64; 3];
        for (slot, part) in numbers.iter_mut().zip(pieces(core, b'.')) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SemverError::version(
                    s,
                    format_args!("{part:?} is not a number"),
                ));
            }
            *slot = part
                .bytes()
                .try_fold(0u64, |n, d| {
                    n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
                })
                .ok_or_else(|| {
                    SemverError::version(s, format_args!("{part} does not fit in 64 bits"))
                })?;
        }

        let pre = match pre {
            Some(text) => {
                parse_prerelease(text).map_err(|reason| SemverError::version(s, reason))?
            }
            None => Vec::new(),
        };
        let build = match build {
            Some(text) => {
                check_identifiers(text, "build metadata")
                    .map_err(|reason| SemverError::version(s, reason))?;
                pieces(text, b'.').map(str::to_owned).collect()
            }
            None => Vec::new(),
        };

        Ok(Version {
            major: numbers[0],
            minor: numbers[1],
            patch: numbers[2],
            pre,
            build,
            original: s.to_owned(),
        })
    }

    /// Flux's tag parsing (`fluxcd/pkg/version.ParseVersion`): the tag must
    /// split into at least three `.`-separated pieces before `parse` sees it,
    /// so `1.2` and `v1` are refused while `v1.2-beta.5` is accepted.
    pub fn parse_flux(s: &str) -> Result<Version, SemverError> {
        if s.bytes().filter(|&b| b == b'.').count() < 2 {
            return Err(SemverError::version(
                s,
                "Flux requires at least three dot-separated parts",
            ));
        }
        Version::parse(s)
    }

    /// The text this version was parsed from.
    pub fn original(&self) -> &str {
        &self.original
    }

    fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }
}

fn parse_prerelease(text: &str) -> Result<Vec<Identifier>, String> {
    // Every identifier's characters are checked before any leading zero.
    check_identifiers(text, "prerelease")?;
    pieces(text, b'.')
        .map(|id| {
            if !id.bytes().all(|b| b.is_ascii_digit()) {
                return Ok(Identifier::AlphaNumeric(id.to_owned()));
            }
            if id.len() > 1 && id.starts_with('0') {
                return Err(format!(
                    "numeric prerelease identifier {id:?} has a leading zero"
                ));
            }
            Ok(id.parse().map_or_else(
                |_| Identifier::AlphaNumeric(id.to_owned()),
                Identifier::Numeric,
            ))
        })
        .collect()
}

/// `text` split at the first `at`, which is left out. Tags are short and a
/// registry lists thousands of them for each rule, so bytes are scanned
/// by hand rather than with `str`'s searchers, which are made for long text.
fn cut(text: &str, at: u8) -> (&str, Option<&str>) {
    match text.bytes().position(|b| b == at) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    }
}

/// `text.split(at)` for an ASCII `at`, scanned as [`cut`] does.
fn pieces(text: &str, at: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let (piece, after) = cut(rest?, at);
        rest = after;
        Some(piece)
    })
}

/// Whether every `.`-separated identifier of `text` is non-empty
/// `[0-9A-Za-z-]`; the first that is not is named.
fn check_identifiers(text: &str, what: &str) -> Result<(), String> {
    for id in pieces(text, b'.') {
        if id.is_empty() {
            return Err(format!("empty {what} identifier"));
        }
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(format!(
                "{what} identifier {id:?} has characters outside [0-9A-Za-z-]"
            ));
        }
    }
    Ok(())
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                // A release outranks every prerelease of the same numbers.
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                // Vec ordering makes a shorter list of equal leading
                // identifiers the smaller one, as semver 2.0 requires.
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl Hash for Version {
    // Must agree with `Eq`, so build metadata and the original text stay out.
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.major, self.minor, self.patch, &self.pre).hash(state);
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        for (i, id) in self.pre.iter().enumerate() {
            f.write_str(if i == 0 { "-" } else { "." })?;
            write!(f, "{id}")?;
        }
        for (i, id) in self.build.iter().enumerate() {
            f.write_str(if i == 0 { "+" } else { "." })?;
            f.write_str(id)?;
        }
        Ok(())
    }
}

impl FromStr for Version {
    type Err = SemverError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

// Constraint grammar. Masterminds parses constraints with regular
// expressions whose quirks decide which inputs are accepted and how they
// split, so the patterns below keep their structure and alternation order.
// The `regex` crate, like Go's RE2, picks the leftmost-first match, so
// alternatives resolve the same way.

/// Go's `\s`: ASCII space, tab, newline, form feed and carriage return only.
const WS: &str = r"[\t\n\f\r ]";
/// Operators in Masterminds' order. The empty alternative stands for a bare
/// version; two-character operators win only when the one-character prefix
/// cannot be followed by a version.
const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";
/// A numeric part of a constraint version. Masterminds' character class also
/// admits `|`; such parts are later rejected unless a wildcard higher up
/// causes them to be ignored, and keeping `|` here keeps that behaviour.
const PART: &str = r"[0-9xX*|]";
const IDENTS: &str = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*";

fn version_pattern() -> String {
    format!(r"v?{PART}+(?:\.{PART}+)?(?:\.{PART}+)?(?:-{IDENTS})?(?:\+{IDENTS})?")
}

fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("constraint grammar is a valid regular expression")
}

/// `A - B` with whitespace on both sides of the dash; without it `1.1-3`
/// stays a version with prerelease `3`.
static HYPHEN_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    let v = version_pattern();
    compile(&format!(r"{WS}*(?P<lo>{v}){WS}+-{WS}+(?P<hi>{v}){WS}*"))
});

/// A whole AND group: comparators separated by whitespace or one comma.
static VALID_GROUP: LazyLock<Regex> = LazyLock::new(|| {
    let v = version_pattern();
    compile(&format!(
        r"^{WS}*(?:{OPS}){WS}*{v}{WS}*(?:(?:{WS}+|,{WS}*)(?:{OPS}){WS}*{v}{WS}*)*$"
    ))
});

/// One comparator inside a group that `VALID_GROUP` accepted.
static FIND_COMPARATOR: LazyLock<Regex> =
    LazyLock::new(|| compile(&format!(r"(?:{OPS}){WS}*{}", version_pattern())));

/// One comparator, taken apart.
static COMPARATOR: LazyLock<Regex> = LazyLock::new(|| {
    compile(&format!(
        r"^{WS}*(?P<op>{OPS}){WS}*(?P<ver>v?(?P<major>{PART}+)(?P<minor>\.{PART}+)?(?P<patch>\.{PART}+)?(?P<pre>-{IDENTS})?(?:\+{IDENTS})?){WS}*$"
    ))
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// `=` or no operator.
    Equal,
    NotEqual,
    Greater,
    Less,
    GreaterEq,
    LessEq,
    /// `~` or `~>`.
    Tilde,
    Caret,
}

impl Op {
    fn from_text(op: &str) -> Option<Op> {
        Some(match op {
            "" | "=" => Op::Equal,
            "!=" => Op::NotEqual,
            ">" => Op::Greater,
            "<" => Op::Less,
            ">=" | "=>" => Op::GreaterEq,
            "<=" | "=<" => Op::LessEq,
            "~" | "~>" => Op::Tilde,
            "^" => Op::Caret,
            _ => return None,
        })
    }
}

/// Which trailing parts of a comparator's version were left open, by an
/// `x`/`X`/`*` or by being omitted. Masterminds tracks this separately from
/// the bound (whose open parts read as 0) and many operators consult it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    /// `1.2.3`
    Nothing,
    /// `1.2`, `1.2.x`
    Patch,
    /// `1`, `1.x`, `1.x.x`
    MinorAndPatch,
    /// `*`, `x.2.3`. Masterminds marks only the whole version as open here,
    /// not minor and patch, which is why `^*` and `<=*` behave as they do.
    Major,
}

#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    bound: Version,
    open: Open,
}

impl Comparator {
    fn parse(text: &str) -> Result<Comparator, String> {
        let caps = COMPARATOR
            .captures(text)
            .ok_or_else(|| format!("improper comparator {text:?}"))?;
        let op =
            Op::from_text(&caps["op"]).ok_or_else(|| format!("unknown operator in {text:?}"))?;
        let major = &caps["major"];
        let minor = caps.name("minor").map_or("", |m| m.as_str());
        let patch = caps.name("patch").map_or("", |m| m.as_str());
        let pre = caps.name("pre").map_or("", |m| m.as_str());
        let is_open =
            |part: &str| matches!(part.strip_prefix('.').unwrap_or(part), "x" | "X" | "*");

        // Open parts become zeros and build metadata is dropped, while the
        // prerelease is kept: `1.2.x-0` is bounded by `1.2.0-0`.
        let (version_text, open) = if is_open(major) {
            (format!("0.0.0{pre}"), Open::Major)
        } else if minor.is_empty() || is_open(minor) {
            (format!("{major}.0.0{pre}"), Open::MinorAndPatch)
        } else if patch.is_empty() || is_open(patch) {
            (format!("{major}{minor}.0{pre}"), Open::Patch)
        } else {
            (caps["ver"].to_owned(), Open::Nothing)
        };
        let bound = Version::parse(&version_text)
            .map_err(|e| format!("in comparator {:?}: {e}", text.trim()))?;
        Ok(Comparator { op, bound, open })
    }

    /// Whether `v` satisfies this comparator. `prereleases` says whether the
    /// comparator's AND group admits prerelease versions at all.
    fn admits(&self, v: &Version, prereleases: bool) -> bool {
        if v.is_prerelease() && !prereleases {
            return false;
        }
        let b = &self.bound;
        match self.op {
            Op::Equal if self.open == Open::Nothing => v == b,
            // A wildcard equality is a tilde range: `1.2` = `~1.2`.
            Op::Equal | Op::Tilde => self.tilde(v),
            Op::NotEqual => self.not_equal(v),
            Op::Greater => match self.open {
                Open::Nothing | Open::Major => v > b,
                _ if v.major != b.major => v.major > b.major,
                // `>1` needs 2.0.0 or later, `>1.1` needs 1.2.0 or later.
                Open::MinorAndPatch => false,
                Open::Patch => v.minor > b.minor,
            },
            // Open parts are zeros, so `<1.1` is `<1.1.0` and `<1.x` is `<1.0.0`.
            Op::Less => v < b,
            Op::GreaterEq => v >= b,
            Op::LessEq => match self.open {
                Open::Nothing => v <= b,
                // `<=1` takes all of 1.x and `<=1.1` all of 1.1.x. `<=*`
                // leaves minor closed and so only takes 0.0.x.
                _ if v.major != b.major => v.major < b.major,
                Open::MinorAndPatch => true,
                _ => v.minor <= b.minor,
            },
            Op::Caret => self.caret(v),
        }
    }

    /// `~1.2.3` = `>=1.2.3 <1.3.0`, `~1` = `>=1.0.0 <2.0.0`, `~*` and
    /// `~0.0.0` = anything from 0.0.0 on.
    fn tilde(&self, v: &Version) -> bool {
        let b = &self.bound;
        if v < b {
            return false;
        }
        if (b.major, b.minor, b.patch) == (0, 0, 0)
            && matches!(self.open, Open::Nothing | Open::Major)
        {
            return true;
        }
        v.major == b.major && (self.open == Open::MinorAndPatch || v.minor == b.minor)
    }

    /// `^1.2.3` = `>=1.2.3 <2.0.0`, `^0.2.3` = `>=0.2.3 <0.3.0`,
    /// `^0.0.3` = `>=0.0.3 <0.0.4`, `^0.0` = `<0.1.0`, `^0` = `<1.0.0`.
    /// `^*` has a bound of 0.0.0 with minor and patch closed, so it falls
    /// through to the 0.0.z rule and only matches 0.0.0.
    fn caret(&self, v: &Version) -> bool {
        let b = &self.bound;
        if v < b {
            return false;
        }
        if b.major > 0 || self.open == Open::MinorAndPatch {
            return v.major == b.major;
        }
        if v.major > 0 {
            return false;
        }
        if b.minor > 0 || self.open == Open::Patch {
            return v.minor == b.minor;
        }
        v.minor == 0 && v.patch == b.patch
    }

    /// `!=1.2.3` excludes one version, `!=1.2` all of 1.2.x, `!=1` all of
    /// 1.x. `!=*` excludes 0.0.0 only, since only major is open.
    fn not_equal(&self, v: &Version) -> bool {
        let b = &self.bound;
        match self.open {
            Open::Nothing => v != b,
            _ if v.major != b.major => true,
            Open::MinorAndPatch => false,
            _ if v.minor != b.minor => true,
            // Masterminds compares only the prereleases here: with
            // `!=1.2-beta`, 1.2.7-beta is excluded but 1.2.7-rc is not.
            Open::Patch => v.pre != b.pre,
            Open::Major => v != b,
        }
    }
}

#[derive(Debug, Clone)]
struct Group {
    comparators: Vec<Comparator>,
    /// Set when any comparator's version has a prerelease; only then may a
    /// prerelease version satisfy the group.
    prereleases: bool,
}

/// A parsed Masterminds constraint such as `>=1.2, <2 || ^3.0.0-0`.
#[derive(Debug, Clone)]
pub struct Constraints {
    groups: Vec<Group>,
    original: String,
}

impl Constraints {
    /// Masterminds `NewConstraint`: `||` separates alternatives, commas or
    /// whitespace separate the comparators each alternative requires.
    /// Operators are `=` `!=` `>` `<` `>=` `=>` `<=` `=<` `~` `~>` `^` or
    /// none; versions may be partial, carry a `v` prefix or use `x`/`X`/`*`
    /// wildcards; `A - B` (spaces required) means `>= A, <= B`.
    pub fn parse(s: &str) -> Result<Constraints, SemverError> {
        if s.len() > MAX_CONSTRAINT_LEN {
            return Err(SemverError::constraint(
                s,
                format_args!("longer than {MAX_CONSTRAINT_LEN} bytes"),
            ));
        }
        let rewritten = rewrite_hyphen_ranges(s);
        let alternatives: Vec<&str> = rewritten.split("||").collect();
        if alternatives.len() > MAX_CONSTRAINT_GROUPS {
            return Err(SemverError::constraint(
                s,
                format_args!("more than {MAX_CONSTRAINT_GROUPS} alternatives"),
            ));
        }

        let mut groups = Vec::with_capacity(alternatives.len());
        for alternative in alternatives {
            if !VALID_GROUP.is_match(alternative) {
                let reason = if alternative.trim().is_empty() {
                    "empty alternative".to_owned()
                } else {
                    format!("improper constraint {:?}", alternative.trim())
                };
                return Err(SemverError::constraint(s, reason));
            }
            let comparators = FIND_COMPARATOR
                .find_iter(alternative)
                .map(|m| Comparator::parse(m.as_str()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|reason| SemverError::constraint(s, reason))?;
            let prereleases = comparators.iter().any(|c| c.bound.is_prerelease());
            groups.push(Group {
                comparators,
                prereleases,
            });
        }
        Ok(Constraints {
            groups,
            original: s.to_owned(),
        })
    }

    /// Whether `v`, which these constraints refuse, is refused only for
    /// being a pre-release: some alternative would take it if it admitted
    /// pre-releases.
    pub fn refuses_only_as_prerelease(&self, v: &Version) -> bool {
        v.is_prerelease()
            && self
                .groups
                .iter()
                .any(|group| group.comparators.iter().all(|c| c.admits(v, true)))
    }

    /// Masterminds `Check`: some alternative has every comparator satisfied.
    /// A prerelease version can only satisfy an alternative in which some
    /// comparator names a prerelease.
    pub fn matches(&self, v: &Version) -> bool {
        self.groups.iter().any(|group| {
            group
                .comparators
                .iter()
                .all(|c| c.admits(v, group.prereleases))
        })
    }
}

/// Turns each `A - B` into `>= A, <= B `. Like Masterminds, every match
/// replaces the first occurrence of its text in the string built so far.
fn rewrite_hyphen_ranges(s: &str) -> String {
    let mut out = s.to_owned();
    for caps in HYPHEN_RANGE.captures_iter(s) {
        let replacement = format!(">= {}, <= {} ", &caps["lo"], &caps["hi"]);
        out = out.replacen(&caps[0], &replacement, 1);
    }
    out
}

impl fmt::Display for Constraints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl FromStr for Constraints {
    type Err = SemverError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Constraints::parse(s)
    }
}

/// Two constraints are equal when written identically.
impl PartialEq for Constraints {
    fn eq(&self, other: &Self) -> bool {
        self.original == other.original
    }
}

impl Eq for Constraints {}

/// Whose tag-selection rules `latest` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Flux image-reflector-controller's semver policy.
    Flux,
    /// Argo CD Image Updater's semver update strategy.
    Argo,
}

impl Flavor {
    /// Reads a tag the way that controller does: Flux insists on three
    /// dot-separated parts, Argo takes anything Masterminds accepts.
    pub fn parse_tag(self, tag: &str) -> Result<Version, SemverError> {
        match self {
            Flavor::Flux => Version::parse_flux(tag),
            Flavor::Argo => Version::parse(tag),
        }
    }
}

/// The latest tag satisfying `constraints`, returned exactly as listed.
///
/// Tags that do not parse are skipped. Among tags with equal versions (they
/// can differ in a `v` prefix or build metadata) Flux keeps the first one
/// listed, because it only replaces its pick with a strictly greater
/// version, while Argo ends up with the byte-wise greatest tag text.
pub fn latest<'a>(constraints: &Constraints, tags: &[&'a str], flavor: Flavor) -> Option<&'a str> {
    best(
        tags.iter().filter_map(|&tag| {
            let version = flavor.parse_tag(tag).ok()?;
            constraints.matches(&version).then_some((version, tag))
        }),
        flavor,
    )
}

/// The winner among already parsed and matched candidates, in listing order,
/// by the flavour's rule for equal versions (see [`latest`]).
/// A candidate is `(version, label)`: the label is the tag text (compared
/// for Argo's ties), possibly with more after it.
pub fn best<V: std::borrow::Borrow<Version>, T: PartialOrd>(
    candidates: impl IntoIterator<Item = (V, T)>,
    flavor: Flavor,
) -> Option<T> {
    let mut best: Option<(V, T)> = None;
    for (version, tag) in candidates {
        let better = match &best {
            None => true,
            Some((best_version, best_tag)) => match version.borrow().cmp(best_version.borrow()) {
                Ordering::Greater => true,
                Ordering::Equal => flavor == Flavor::Argo && tag > *best_tag,
                Ordering::Less => false,
            },
        };
        if better {
            best = Some((version, tag));
        }
    }
    best.map(|(_, tag)| tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CASES: &str = include_str!("../../testdata/conformance/semver-cases.tsv");
    const PARSE: &str = include_str!("../../testdata/conformance/semver-parse.tsv");
    const SORT: &str = include_str!("../../testdata/conformance/semver-sort.tsv");

    /// Data rows as (line number, cells). Cells are not trimmed: whitespace
    /// inside a constraint is part of the case.
    fn rows(table: &str, columns: usize) -> Vec<(usize, Vec<&str>)> {
        table
            .lines()
            .enumerate()
            .skip(1)
            .filter(|(_, line)| !line.is_empty())
            .map(|(i, line)| {
                let cells: Vec<&str> = line.split('\t').collect();
                assert_eq!(
                    cells.len(),
                    columns,
                    "line {}: {line:?} has {} cells",
                    i + 1,
                    cells.len()
                );
                (i + 1, cells)
            })
            .collect()
    }

    fn report(table: &str, total: usize, failures: &[String]) {
        assert!(total > 0, "{table} has no rows");
        assert!(
            failures.is_empty(),
            "{} of {total} rows of {table} failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    fn c(s: &str) -> Constraints {
        Constraints::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn constraint_table() {
        let rows = rows(CASES, 3);
        let mut failures = Vec::new();
        for (line, cells) in &rows {
            let (constraint, version, expected) = (cells[0], cells[1], cells[2]);
            let got = match Constraints::parse(constraint) {
                Err(_) => "parse-error".to_owned(),
                Ok(constraints) => match Version::parse(version) {
                    Ok(version) => constraints.matches(&version).to_string(),
                    Err(e) => format!("unparsable version ({e})"),
                },
            };
            if got != expected {
                failures.push(format!(
                    "line {line}: {constraint:?} with {version:?}: expected {expected}, got {got}"
                ));
            }
        }
        report("semver-cases.tsv", rows.len(), &failures);
    }

    #[test]
    fn parse_table() {
        let rows = rows(PARSE, 4);
        let mut failures = Vec::new();
        for (line, cells) in &rows {
            let (input, parses, normalized, flux_tag) = (cells[0], cells[1], cells[2], cells[3]);
            let (got_parses, got_normalized) = match Version::parse(input) {
                Ok(version) => ("yes", version.to_string()),
                Err(_) => ("no", "-".to_owned()),
            };
            let got_flux = if Version::parse_flux(input).is_ok() {
                "yes"
            } else {
                "no"
            };
            if (got_parses, got_normalized.as_str(), got_flux) != (parses, normalized, flux_tag) {
                failures.push(format!(
                    "line {line}: {input:?}: expected parses={parses} normalized={normalized} flux_tag={flux_tag}, \
                     got parses={got_parses} normalized={got_normalized} flux_tag={got_flux}"
                ));
            }
        }
        report("semver-parse.tsv", rows.len(), &failures);
    }

    #[test]
    fn sort_table() {
        let rows = rows(SORT, 4);
        let mut failures = Vec::new();
        for (line, cells) in &rows {
            let tags: Vec<&str> = cells[0].split(',').collect();
            let constraints = match Constraints::parse(cells[1]) {
                Ok(constraints) => constraints,
                Err(e) => {
                    failures.push(format!("line {line}: {e}"));
                    continue;
                }
            };
            for (flavor, expected) in [(Flavor::Flux, cells[2]), (Flavor::Argo, cells[3])] {
                let got = latest(&constraints, &tags, flavor).unwrap_or("-");
                if got != expected {
                    failures.push(format!(
                        "line {line}: {:?} over {:?} for {flavor:?}: expected {expected}, got {got}",
                        cells[1], cells[0]
                    ));
                }
            }
        }
        report("semver-sort.tsv", rows.len(), &failures);
    }

    #[test]
    fn prerelease_precedence_follows_semver() {
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1-0",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        // Numeric identifiers sort before alphanumeric ones, even "-1".
        assert!(v("1.0.0-999") < v("1.0.0-a"));
        assert!(v("1.0.0-beta.99") < v("1.0.0-beta.-1"));
        // Too large for u64, so compared as text, after every number.
        assert!(v("1.0.0-18446744073709551615") < v("1.0.0-18446744073709551616"));
        assert!(v("1.0.0-2") < v("1.0.0-10"));
    }

    #[test]
    fn build_metadata_and_prefix_do_not_affect_equality() {
        assert_eq!(v("v1.2.3+build.1"), v("1.2.3+build.2"));
        assert_eq!(v("1.2.3+b").cmp(&v("v1.2.3")), Ordering::Equal);
        assert_eq!(v("v1.2.3+b").original(), "v1.2.3+b");
        assert_eq!(v("v1.2-rc.1+b.01").to_string(), "1.2.0-rc.1+b.01");
    }

    #[test]
    fn tilde_and_caret_differ_on_zero_major() {
        let tilde = c("~0.2.3");
        let caret = c("^0.2.3");
        for (version, expected) in [("0.2.9", true), ("0.3.0", false), ("0.2.2", false)] {
            assert_eq!(tilde.matches(&v(version)), expected, "~0.2.3 {version}");
            assert_eq!(caret.matches(&v(version)), expected, "^0.2.3 {version}");
        }
        // `^0.0.3` pins the patch while `~0.0.3` lets it move.
        assert!(!c("^0.0.3").matches(&v("0.0.4")));
        assert!(!c("^0.0.3").matches(&v("0.1.3")));
        assert!(c("~0.0.3").matches(&v("0.0.4")));
        // `~0` keeps major 0 and `^0` does too; `^1` allows minors, `~1.2` does not.
        assert!(c("~0").matches(&v("0.9.0")));
        assert!(c("^0").matches(&v("0.9.0")));
        assert!(c("^1.2").matches(&v("1.9.0")));
        assert!(!c("~1.2").matches(&v("1.9.0")));
    }

    #[test]
    fn star_operators_follow_masterminds_not_their_comments() {
        // Only the major part is marked open in `*`, so these reduce to
        // checks against 0.0.0.
        assert!(c("^*").matches(&v("0.0.0")));
        assert!(!c("^*").matches(&v("1.0.0")));
        assert!(!c("^*").matches(&v("0.1.0")));
        assert!(c("~*").matches(&v("7.0.0")));
        assert!(!c("!=*").matches(&v("0.0.0")));
        assert!(c("!=*").matches(&v("0.0.1")));
        assert!(c("<=*").matches(&v("0.0.9")));
        assert!(!c("<=*").matches(&v("0.1.0")));
    }

    #[test]
    fn hyphen_range_with_partial_upper_bound() {
        let minor = c("1.2 - 2.3");
        assert!(minor.matches(&v("1.2.0")));
        assert!(minor.matches(&v("2.3.9")));
        assert!(!minor.matches(&v("2.4.0")));
        assert!(!minor.matches(&v("1.1.9")));
        let major = c("1.2.3 - 2");
        assert!(major.matches(&v("2.99.0")));
        assert!(!major.matches(&v("3.0.0")));
        // Without spaces around the dash it is a prerelease, not a range.
        assert!(c("1.2-3").matches(&v("1.2.5")));
        assert!(!c("1.2-3").matches(&v("2.0.0")));
    }

    #[test]
    fn not_equal_with_wildcards() {
        let patch = c("!=1.2.x");
        assert!(!patch.matches(&v("1.2.7")));
        assert!(patch.matches(&v("1.3.0")));
        assert!(patch.matches(&v("2.2.0")));
        let minor = c("!=1.x");
        assert!(!minor.matches(&v("1.9.9")));
        assert!(minor.matches(&v("2.0.0")));
        assert!(minor.matches(&v("0.9.0")));
        // With a prerelease on the wildcard only the prerelease is compared.
        let pre = c("!=1.2-beta");
        assert!(!pre.matches(&v("1.2.7-beta")));
        assert!(pre.matches(&v("1.2.7-rc")));
        assert!(pre.matches(&v("1.2.7")));
    }

    #[test]
    fn prerelease_admission_is_per_group() {
        let both = c(">=1.0.0-0 <2.0.0");
        assert!(both.matches(&v("1.5.0-rc.1")));
        // Any prerelease within range passes, not only those of 1.0.0.
        assert!(c(">=1.0.0-alpha <1.3.0").matches(&v("1.2.0-alpha")));
        let split = c(">=1.0.0-0 || <2.0.0");
        assert!(split.matches(&v("1.5.0-rc.1")));
        assert!(!c("<2.0.0 || >=3.0.0-0").matches(&v("1.5.0-rc.1")));
    }

    #[test]
    fn display_round_trips() {
        let probes = ["0.9.0", "1.1.0", "1.2.5", "2.0.0", "3.1.0-rc.1", "3.1.0"].map(v);
        for text in [">= 1.1, <2 || ^3.0.0-0", "  ~1.2  ", "1.0.0 - 2.0.0", "*"] {
            let parsed = c(text);
            assert_eq!(parsed.to_string(), text);
            let reparsed = c(&parsed.to_string());
            for probe in &probes {
                assert_eq!(
                    reparsed.matches(probe),
                    parsed.matches(probe),
                    "{text:?} on {probe}"
                );
            }
        }
        for text in [
            "1.2.3",
            "1.2.3-beta.5+build.7",
            "0.0.0-20230101120000-abcdef123456",
        ] {
            assert_eq!(v(text).to_string(), text);
        }
    }

    #[test]
    fn errors_name_the_input() {
        let e = Constraints::parse("1.0.0p").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid semver constraint \"1.0.0p\": "),
            "{e}"
        );
        let e = Constraints::parse("1.2.3-01").unwrap_err();
        assert!(e.to_string().contains("leading zero"), "{e}");
        let e = Version::parse("1.2.beta").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("\"1.2.beta\" is not a semantic version"),
            "{e}"
        );
        let e = Version::parse_flux("1.2").unwrap_err();
        assert!(e.to_string().contains("\"1.2\""), "{e}");
        assert!(Version::parse("18446744073709551616.0.0").is_err());
    }

    #[test]
    fn latest_with_nothing_matching() {
        assert_eq!(latest(&c("^9"), &["1.0.0", "latest"], Flavor::Flux), None);
        assert_eq!(latest(&c("*"), &[], Flavor::Argo), None);
    }

    #[test]
    fn oversized_inputs_are_refused() {
        let long_version = format!("1.0.0-{}", "a".repeat(MAX_VERSION_LEN));
        assert!(Version::parse(&long_version).is_err());
        let many_groups = vec!["1.0.0"; MAX_CONSTRAINT_GROUPS + 1].join("||");
        assert!(Constraints::parse(&many_groups).is_err());
        assert!(Constraints::parse(&vec!["1.0.0"; MAX_CONSTRAINT_GROUPS].join("||")).is_ok());
        assert!(Constraints::parse(&" ".repeat(MAX_CONSTRAINT_LEN + 1)).is_err());
    }
}
