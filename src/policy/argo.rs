//! Argo CD Image Updater's tag selection and update decision, as pure
//! functions. Given the settings of one image (update strategy, the tag part
//! of its reference as a constraint, `allowTags`, `ignoreTags`, platforms) and
//! the tags a registry listed (with the creation dates, digests and platforms
//! the updater would have read from their manifests), [`ArgoRule::select`]
//! picks the tag the updater would pick, and [`decide`] says whether the
//! reference currently written must be replaced and by what. The rules,
//! quirks included, are those recorded in
//! `testdata/conformance/argocd-cases.yaml`: semver uses Masterminds' lenient
//! parsing with ties going to the byte-wise greatest tag text, alphabetical
//! order is byte order, newest-build orders by build date then name, a
//! malformed `allowTags` selects nothing, and ignore globs follow Go's
//! `filepath.Match`.

use regex::Regex;

use super::candidates::{self, Candidates, Gate, GateFn, Mark, Rank, Tally};
use super::semver::{self, Constraints, Flavor, Version};

/// Platform assumed when an image names none (the updater's own platform,
/// which is `linux/amd64` in its published images).
pub const DEFAULT_PLATFORM: &str = "linux/amd64";

/// How the newest tag is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Semver,
    NewestBuild,
    Alphabetical,
    Digest,
}

impl Strategy {
    /// Reads an `update-strategy` value, case-insensitively. The legacy names
    /// `latest` and `name` stand for `newest-build` and `alphabetical`; any
    /// other unknown value falls back to semver, as upstream does (with only
    /// a warning in its log).
    pub fn parse(s: &str) -> Strategy {
        match s.to_ascii_lowercase().as_str() {
            "newest-build" | "latest" => Strategy::NewestBuild,
            "alphabetical" | "name" => Strategy::Alphabetical,
            "digest" => Strategy::Digest,
            _ => Strategy::Semver,
        }
    }

    /// Whether upstream reads each tag's manifest for this strategy, which is
    /// when dates, digests and platforms are known and platforms filter tags.
    pub fn needs_metadata(self) -> bool {
        matches!(self, Strategy::NewestBuild | Strategy::Digest)
    }
}

/// Which tags `allowTags` lets through.
#[derive(Debug, Clone)]
pub enum AllowTags {
    /// `any` (any case): every tag.
    Any,
    /// `regexp:<re>`: tags in which `re` finds a match anywhere (unanchored).
    Regexp(Regex),
}

impl AllowTags {
    /// Parses an `allowTags` value. Upstream accepts `any` and
    /// `regexp:<expression>` (the prefix in any case); for anything else (a
    /// bare regular expression, an unknown `func:` prefix, an expression that
    /// does not compile) it logs a warning and then matches no tag at all. We
    /// return the error so it can be reported; a caller that follows upstream
    /// then selects nothing for that image.
    pub fn parse(s: &str) -> Result<AllowTags, String> {
        if s.eq_ignore_ascii_case("any") {
            return Ok(AllowTags::Any);
        }
        let Some((func, arg)) = s.split_once(':') else {
            return Err(format!(
                "invalid allowTags {s:?}: expected \"any\" or \"regexp:<expression>\""
            ));
        };
        if !func.eq_ignore_ascii_case("regexp") {
            return Err(format!(
                "invalid allowTags {s:?}: unknown match function {func:?}"
            ));
        }
        super::compiled::regex(arg)
            .map(AllowTags::Regexp)
            .map_err(|e| format!("invalid allowTags {s:?}: {e}"))
    }

    pub fn matches(&self, tag: &str) -> bool {
        match self {
            AllowTags::Any => true,
            AllowTags::Regexp(re) => re.is_match(tag),
        }
    }
}

/// A registry's `tagsortmode` (registries.conf): when the tag list is known
/// to be ordered by time, no manifests are read and list position stands in
/// for the build date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagSortMode {
    #[default]
    None,
    LatestFirst,
    LatestLast,
}

impl TagSortMode {
    /// `none` (or empty), `latest-first`, `latest-last`; anything else is an
    /// error, as upstream rejects such a registries.conf.
    pub fn parse(s: &str) -> Result<TagSortMode, String> {
        match s {
            "" | "none" => Ok(TagSortMode::None),
            "latest-first" => Ok(TagSortMode::LatestFirst),
            "latest-last" => Ok(TagSortMode::LatestLast),
            _ => Err(format!("unknown tagsortmode {s:?}")),
        }
    }
}

/// One listed tag, with what its manifest said when it was read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TagInfo {
    pub name: String,
    /// Build date (RFC 3339); `None` when unknown, which orders as the Unix
    /// epoch, the date upstream gives tags it has no metadata for.
    pub created: Option<String>,
    pub digest: Option<String>,
    /// `os/arch[/variant]` of the image or of each image of its index; empty
    /// when unknown, and then no platform filter applies.
    pub platforms: Vec<String>,
}

impl TagInfo {
    /// A tag known by name only.
    pub fn named(name: &str) -> TagInfo {
        TagInfo {
            name: name.to_string(),
            ..TagInfo::default()
        }
    }
}

/// One image's update settings.
#[derive(Debug, Clone)]
pub struct ArgoRule {
    pub strategy: Strategy,
    /// The tag part of the configured image reference; `""` = none. A semver
    /// range for `semver`, the tag to follow for `digest`, ignored otherwise.
    pub constraint: String,
    /// `None` = not configured, which lets every tag through.
    pub allow: Option<AllowTags>,
    /// Go `filepath.Match` globs; a tag matching any of them is dropped.
    /// Malformed globs match nothing.
    pub ignore: Vec<String>,
    /// Wanted platforms; empty = [`DEFAULT_PLATFORM`].
    pub platforms: Vec<String>,
    /// The registry's `tagsortmode`.
    pub tag_sort: TagSortMode,
}

impl ArgoRule {
    pub fn new(strategy: Strategy) -> ArgoRule {
        ArgoRule {
            strategy,
            constraint: String::new(),
            allow: None,
            ignore: Vec::new(),
            platforms: Vec::new(),
            tag_sort: TagSortMode::None,
        }
    }

    /// Whether `allowTags` and `ignoreTags` let a tag through: the filters
    /// applied before any manifest is read. The globs are compiled once.
    pub fn tag_filter(&self) -> impl Fn(&str) -> bool + '_ {
        let ignore: Vec<Regex> = self.ignore.iter().filter_map(|g| go_glob(g)).collect();
        move |tag| {
            self.allow.as_ref().is_none_or(|a| a.matches(tag))
                && !ignore.iter().any(|re| re.is_match(tag))
        }
    }

    /// The tag the updater would move to, `None` when no tag qualifies.
    /// Errors are configuration errors: `digest` without a tag to follow, an
    /// invalid semver constraint, a build date that is not RFC 3339.
    pub fn select(&self, tags: &[TagInfo]) -> Result<Option<TagInfo>, String> {
        let e = self.evaluate(tags, None)?;
        Ok(e.winner.map(|w| tags[w].clone()))
    }

    /// [`ArgoRule::select`] under `gate` (holds and promotion waits: gated
    /// candidates are not chosen), with why every listed tag was or was not
    /// chosen, at most `per` of each outcome but the chosen one.
    pub fn candidates(
        &self,
        tags: &[TagInfo],
        gate: Option<GateFn>,
        per: usize,
    ) -> Result<(Option<TagInfo>, Candidates), String> {
        let e = self.evaluate(tags, gate)?;
        let names: Vec<&str> = tags.iter().map(|t| t.name.as_str()).collect();
        let ranked = |m: Mark| m.ranked(self.strategy == Strategy::Semver);
        let mut tally = Tally::new(per);
        let mut compared = 0;
        for (i, &mark) in e.marks.iter().enumerate() {
            compared += usize::from(mark.competed());
            if self.strategy != Strategy::Alphabetical && !ranked(mark) {
                tally.add(i, mark, None);
            }
        }
        // Alphabetical ranks every tag by its name; last listed first (see
        // `Tally`).
        if self.strategy == Strategy::Alphabetical {
            for (i, name) in names.iter().enumerate().rev() {
                tally.add(i, e.marks[i], Some(Rank::Text(name)));
            }
        }
        // Last listed first: see `Tally`.
        for (version, i) in e.versions.iter().rev() {
            if ranked(e.marks[*i]) {
                tally.add(*i, e.marks[*i], Some(Rank::Version(version)));
            }
        }
        for (when, i) in e.dates.iter().rev() {
            if ranked(e.marks[*i]) {
                tally.add(*i, e.marks[*i], Some(Rank::Date(*when, names[*i])));
            }
        }
        let chosen = e.winner.map(|w| &tags[w]);
        let explained = tally.finish(&names, &e.marks, |i, mark| {
            self.reason(&tags[i], mark, chosen, compared, &e.gates)
        });
        Ok((chosen.cloned(), explained))
    }

    /// Why `tag` got `mark`, for the report.
    fn reason(
        &self,
        tag: &TagInfo,
        mark: Mark,
        chosen: Option<&TagInfo>,
        compared: usize,
        gates: &[Gate],
    ) -> String {
        let of = || candidates::tags(compared);
        let range = match self.constraint.as_str() {
            "" => "*",
            c => c,
        };
        let chosen_name = chosen.map_or("", |c| c.name.as_str());
        let built = |t: &TagInfo| match (&t.created, self.tag_sort) {
            (_, TagSortMode::LatestFirst | TagSortMode::LatestLast) => String::new(),
            (Some(date), TagSortMode::None) => format!(" (built {date})"),
            (None, TagSortMode::None) => " (no build date)".to_string(),
        };
        match (mark, self.strategy) {
            (Mark::Chosen, Strategy::Semver) => format!("newest of {} in range {range}", of()),
            (Mark::Chosen, Strategy::Alphabetical) => format!("last of {} in byte order", of()),
            (Mark::Chosen, Strategy::NewestBuild) => match self.tag_sort {
                TagSortMode::None => format!("newest build of {}{}", of(), built(tag)),
                _ => format!("listed as the latest of {} (tag sort mode)", of()),
            },
            (Mark::Chosen, Strategy::Digest) => match &tag.digest {
                Some(digest) => format!("the followed tag, at {digest}"),
                None => "the followed tag".to_string(),
            },
            (Mark::Older, Strategy::Semver) => format!("older than {chosen_name}"),
            (Mark::Older, Strategy::Alphabetical) => format!("sorts before {chosen_name}"),
            (Mark::Older, _) => format!("built before {chosen_name}{}", built(tag)),
            (Mark::NoBuildDate, _) => format!(
                "no build date, which orders as 1970-01-01 (as upstream), before {chosen_name}"
            ),
            (Mark::Held(g) | Mark::Waiting(g), _) => candidates::gate_reason(&gates[g]).to_string(),
            (Mark::NotAllowed, _) => match &self.allow {
                Some(AllowTags::Regexp(re)) => format!("not allowed by allow-tags regexp:{re}"),
                _ => "not allowed by allow-tags".to_string(),
            },
            (Mark::Ignored(g), _) => format!("ignored by ignore-tags {}", self.ignore[g]),
            (Mark::NotFollowed, _) => format!("not the followed tag {}", self.constraint),
            (Mark::PlatformMissing, _) => format!(
                "built for {}, not {}",
                tag.platforms.join(", "),
                self.wanted_platforms().join(", ")
            ),
            (Mark::NotAVersion, _) => "not a version".to_string(),
            (Mark::OutOfRange, _) => format!("outside the range {range}"),
            (Mark::PreRelease, _) => format!("a pre-release, which {range} does not admit"),
            _ => "not ranked: the selection failed".to_string(),
        }
    }

    fn wanted_platforms(&self) -> Vec<&str> {
        if self.platforms.is_empty() {
            vec![DEFAULT_PLATFORM]
        } else {
            self.platforms.iter().map(String::as_str).collect()
        }
    }

    /// One mark per listed tag and the winner, in upstream's order: tags
    /// `allowTags` does not match, `ignoreTags` ignores or `digest` does not
    /// follow are dropped first (registry-scanner/pkg/registry/registry.go:84-90
    /// at de2cfec), then those without a wanted platform (their manifests
    /// are read next), then the strategy's own test (the semver constraint,
    /// registry-scanner/pkg/image/version.go:143).
    fn evaluate(&self, tags: &[TagInfo], gate: Option<GateFn>) -> Result<ArgoEvaluation, String> {
        if self.strategy == Strategy::Digest && self.constraint.is_empty() {
            return Err("the digest strategy needs a tag to follow in the image reference".into());
        }
        // Without a constraint upstream checks `*`, which, like every range
        // without a pre-release of its own, lets no pre-release through.
        let constraints = match self.strategy {
            Strategy::Semver => {
                let constraint = match self.constraint.as_str() {
                    "" => "*",
                    _ => self.constraint.as_str(),
                };
                Some(
                    Constraints::parse(constraint)
                        .map_err(|e| format!("invalid semver constraint: {e}"))?,
                )
            }
            _ => None,
        };
        let ignore: Vec<(usize, Regex)> = self
            .ignore
            .iter()
            .enumerate()
            .filter_map(|(k, g)| Some((k, go_glob(g)?)))
            .collect();
        // Only with manifests read (and not replaced by a tag sort mode) are
        // platforms known and checked.
        let check_platforms = self.strategy.needs_metadata() && self.tag_sort == TagSortMode::None;
        let wanted = self.wanted_platforms();
        let mut e = ArgoEvaluation {
            marks: Vec::with_capacity(tags.len()),
            winner: None,
            versions: Vec::with_capacity(match self.strategy {
                Strategy::Semver => tags.len(),
                _ => 0,
            }),
            dates: Vec::new(),
            gates: Vec::new(),
        };
        // Candidates: the listed tags that pass the filters, by index.
        let mut candidates: Vec<usize> = Vec::with_capacity(tags.len());
        for (i, t) in tags.iter().enumerate() {
            let mark = if !self.allow.as_ref().is_none_or(|a| a.matches(&t.name)) {
                Mark::NotAllowed
            } else if let Some((k, _)) = ignore.iter().find(|(_, re)| re.is_match(&t.name)) {
                Mark::Ignored(*k)
            } else if self.strategy == Strategy::Digest && t.name != self.constraint {
                Mark::NotFollowed
            } else if check_platforms
                && !t.platforms.is_empty()
                && !t.platforms.iter().any(|p| platform_matches(&wanted, p))
            {
                Mark::PlatformMissing
            } else {
                candidates.push(i);
                Mark::Older
            };
            e.marks.push(mark);
        }
        let listed = tags.len();
        let gated = |i: usize, marks: &mut Vec<Mark>, gates: &mut Vec<Gate>| {
            marks[i] = Mark::gated(gate, &tags[i].name, gates);
            marks[i] == Mark::Older
        };
        e.winner = match self.strategy {
            Strategy::Semver => {
                for &i in &candidates {
                    let Ok(version) = Flavor::Argo.parse_tag(&tags[i].name) else {
                        e.marks[i] = Mark::NotAVersion;
                        continue;
                    };
                    let c = constraints.as_ref().expect("semver has constraints");
                    if c.matches(&version) {
                        gated(i, &mut e.marks, &mut e.gates);
                    } else if c.refuses_only_as_prerelease(&version) {
                        e.marks[i] = Mark::PreRelease;
                    } else {
                        e.marks[i] = Mark::OutOfRange;
                    }
                    e.versions.push((version, i));
                }
                let admitted = e
                    .versions
                    .iter()
                    .filter(|(_, i)| e.marks[*i] == Mark::Older)
                    .map(|(v, i)| (v, (tags[*i].name.as_str(), *i)));
                // Ties go to the byte-wise greatest text; the first listed
                // of equal names.
                semver::best(admitted, Flavor::Argo).map(|(name, _)| {
                    *candidates
                        .iter()
                        .find(|&&i| tags[i].name == name)
                        .expect("the winner is a candidate")
                })
            }
            Strategy::Alphabetical => candidates
                .iter()
                .copied()
                .filter(|&i| gated(i, &mut e.marks, &mut e.gates))
                .max_by(|&a, &b| tags[a].name.as_bytes().cmp(tags[b].name.as_bytes())),
            Strategy::Digest => candidates
                .iter()
                .copied()
                .find(|&i| gated(i, &mut e.marks, &mut e.gates)),
            Strategy::NewestBuild => {
                for &i in &candidates {
                    let t = &tags[i];
                    let when = match self.tag_sort {
                        TagSortMode::LatestFirst => ((listed - i) as i64, 0),
                        TagSortMode::LatestLast => (i as i64, 0),
                        TagSortMode::None => match &t.created {
                            Some(text) => parse_rfc3339(text)
                                .ok_or_else(|| format!("tag {:?}: bad date {text:?}", t.name))?,
                            None => (0, 0),
                        },
                    };
                    if gated(i, &mut e.marks, &mut e.gates) {
                        e.dates.push((when, i));
                    }
                }
                let winner = e
                    .dates
                    .iter()
                    .max_by(|(wa, a), (wb, b)| {
                        wa.cmp(wb)
                            .then_with(|| tags[*a].name.as_bytes().cmp(tags[*b].name.as_bytes()))
                    })
                    .map(|(_, i)| *i);
                if self.tag_sort == TagSortMode::None {
                    for &(_, i) in &e.dates {
                        if tags[i].created.is_none() && Some(i) != winner {
                            e.marks[i] = Mark::NoBuildDate;
                        }
                    }
                }
                winner
            }
        };
        if let Some(w) = e.winner {
            e.marks[w] = Mark::Chosen;
        }
        Ok(e)
    }
}

/// What [`ArgoRule::evaluate`] made of the listed tags.
struct ArgoEvaluation {
    marks: Vec<Mark>,
    winner: Option<usize>,
    /// `semver`: each candidate that parsed, with its listed index.
    versions: Vec<(Version, usize)>,
    /// `newest-build`: each ungated candidate's date, with its listed index.
    dates: Vec<((i64, u32), usize)>,
    gates: Vec<Gate>,
}

/// The update decision: given what is currently written (`current`, an image
/// reference such as `org/app:1.0@sha256:…`) and what was selected, whether
/// to write and what reference (`image` followed by the new tag, and by the
/// digest for the digest strategy). Without an update the reference is
/// `current` unchanged.
///
/// As upstream's tag equality: when either side carries a digest, the
/// digests alone decide; otherwise the tag names do. The selected tag's
/// digest takes part only under the digest strategy, the one that writes it.
pub fn decide(
    strategy: Strategy,
    current: &str,
    selected: &TagInfo,
    image: &str,
) -> (bool, String) {
    let (_, current_tag, current_digest) = split_reference(current);
    let selected_digest = match strategy {
        Strategy::Digest => selected.digest.as_deref(),
        _ => None,
    };
    let same = match (current_tag, current_digest, selected_digest) {
        (_, Some(_), _) | (_, _, Some(_)) => current_digest == selected_digest,
        (Some(tag), None, None) => tag == selected.name,
        (None, None, None) => false,
    };
    if same {
        return (false, current.to_string());
    }
    let mut reference = format!("{image}:{}", selected.name);
    if let Some(digest) = selected_digest {
        reference.push('@');
        reference.push_str(digest);
    }
    (true, reference)
}

/// Splits `name[:tag][@digest]`; a `:` before the last `/` belongs to a
/// registry host's port, not to a tag.
pub fn split_reference(reference: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    let name_start = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[name_start..].rfind(':') {
        Some(i) => (
            &rest[..name_start + i],
            Some(&rest[name_start + i + 1..]),
            digest,
        ),
        None => (rest, None, digest),
    }
}

/// Whether a manifest's platform `candidate` (`os/arch[/variant]`) is one of
/// `wanted`. A wanted platform without a variant accepts every variant; a
/// wanted platform that is not `os/arch[/variant]` accepts nothing.
pub fn platform_matches(wanted: &[&str], candidate: &str) -> bool {
    let Some((os, arch, variant)) = split_platform(candidate) else {
        return false;
    };
    wanted.iter().any(|w| match split_platform(w) {
        Some((wo, wa, None)) => wo == os && wa == arch,
        Some((wo, wa, Some(wv))) => wo == os && wa == arch && variant == Some(wv),
        None => false,
    })
}

fn split_platform(p: &str) -> Option<(&str, &str, Option<&str>)> {
    let parts: Vec<&str> = p.split('/').collect();
    if parts.iter().any(|s| s.is_empty()) {
        return None;
    }
    match parts[..] {
        [os, arch] => Some((os, arch, None)),
        [os, arch, variant] => Some((os, arch, Some(variant))),
        _ => None,
    }
}

/// Translates a Go `filepath.Match` pattern into an anchored regex: `*` is
/// any run of characters other than `/`, `?` one such character, `[…]` a
/// class (`^` negates, `lo-hi` ranges, `\` escapes) and `\c` the character
/// `c`. `{`, `}` and `**` have no special meaning, unlike most glob crates.
/// `None` for a pattern Go rejects as malformed (upstream then ignores
/// nothing for it).
pub(crate) fn go_glob(pattern: &str) -> Option<Regex> {
    let mut out = String::from("^(?s:");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            '\\' => out.push_str(&regex::escape(&chars.next()?.to_string())),
            '[' => {
                let negated = chars.next_if_eq(&'^').is_some();
                let mut ranges = Vec::new();
                loop {
                    match chars.peek() {
                        None => return None,
                        Some(']') if !ranges.is_empty() => {
                            chars.next();
                            break;
                        }
                        _ => {}
                    }
                    let lo = class_char(&mut chars)?;
                    let hi = if chars.next_if_eq(&'-').is_some() {
                        class_char(&mut chars)?
                    } else {
                        lo
                    };
                    ranges.push((lo, hi));
                }
                // Go accepts a reversed range and it matches nothing.
                let items: String = ranges
                    .iter()
                    .filter(|(lo, hi)| lo <= hi)
                    .map(|(lo, hi)| format!("\\x{{{:x}}}-\\x{{{:x}}}", *lo as u32, *hi as u32))
                    .collect();
                match (negated, items.is_empty()) {
                    (false, true) => out.push_str("[^\\x00-\\x{10FFFF}]"),
                    (true, true) => out.push('.'),
                    (false, false) => out.push_str(&format!("[{items}]")),
                    (true, false) => out.push_str(&format!("[^{items}]")),
                }
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push_str(")$");
    super::compiled::regex(&out).ok()
}

/// One character of a class range: `\c` is `c`; an unescaped `-` or `]` is
/// malformed here.
fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    match chars.next()? {
        '\\' => chars.next(),
        '-' | ']' => None,
        c => Some(c),
    }
}

/// An RFC 3339 date-time as (seconds since the Unix epoch, nanoseconds).
fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0u32;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, d) in frac[..digits].bytes().enumerate().take(9) {
            nanos += u32::from(d - b'0') * 10u32.pow(8 - i as u32);
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let h: i64 = rest[1..3].parse().ok()?;
            let m: i64 = rest[4..6].parse().ok()?;
            sign * (h * 3600 + m * 60)
        }
    };
    let days = crate::civil::days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some((secs, nanos))
}

#[cfg(test)]
mod tests {
    //! The `tag_selection` and `update_decision` cases of the Argo CD
    //! conformance table, plus focused checks of `allowTags` and ignore globs.
    //!
    //! Cases whose expectation may surprise (all are upstream behaviour):
    //! - `semver-prerelease-identifiers-compare-per-spec-alnum`: `rc9` beats
    //!   `rc10`, because alphanumeric prerelease identifiers compare as text.
    //! - `semver-numeric-calver-parsed-as-major`: `20240101` is major version
    //!   20240101 under lenient parsing, so it beats `1.5.0`.
    //! - `allow-bare-regex-without-prefix-matches-nothing`: `^v1` lacks the
    //!   `regexp:` prefix; upstream warns and then lets no tag through, so the
    //!   expectation is "no tag", not an error. [`AllowTags::parse`] returns
    //!   the error, and the runner maps it to "nothing selected".
    //! - `alphabetical-is-bytewise-not-numeric`: `v1.9` > `v1.10`.
    //! - `strategy-unknown-falls-back-to-semver`: `bogus` means semver, which
    //!   also skips the unparseable `b`.
    //! - `newest-build-uses-build-date-not-push-order`: the build date wins
    //!   even when it moves the image "backwards" in numbering.
    //! - `non-semver-current-tag-still-updates`: a current tag that is not a
    //!   version (`latest`) does not stop a semver update.
    //! - `same-digest-different-tag-name-is-equal`: with digests on either
    //!   side only digests are compared, so a different tag name with the same
    //!   digest is no update.

    use super::*;
    use crate::yaml::Node;

    fn strings(node: Option<&Node>) -> Vec<String> {
        node.map(Node::items)
            .unwrap_or_default()
            .iter()
            .map(|n| n.as_str().expect("a string").to_string())
            .collect()
    }

    fn tag_info(node: &Node) -> TagInfo {
        if let Some(name) = node.as_str() {
            return TagInfo::named(name);
        }
        TagInfo {
            name: node.str_at(&["name"]).expect("tag name").to_string(),
            created: node.str_at(&["created"]).map(str::to_string),
            digest: node.str_at(&["digest"]).map(str::to_string),
            platforms: strings(node.get("platforms")),
        }
    }

    use crate::argocd::cases::for_each as for_each_case;

    /// Runs one `tag_selection` input: `Ok(None)` when nothing is selected.
    fn run_selection(input: &Node) -> Result<Option<String>, String> {
        let mut rule = ArgoRule::new(Strategy::parse(input.str_at(&["strategy"]).unwrap()));
        rule.constraint = input.str_at(&["constraint"]).unwrap_or_default().into();
        if let Some(allow) = input.str_at(&["allow_tags"]) {
            match AllowTags::parse(allow) {
                Ok(allow) => rule.allow = Some(allow),
                // Upstream's outcome for a malformed allowTags: no tag.
                Err(_) => return Ok(None),
            }
        }
        rule.ignore = strings(input.get("ignore_tags"));
        rule.platforms = strings(input.get("platforms"));
        rule.tag_sort =
            TagSortMode::parse(input.str_at(&["registry_tagsortmode"]).unwrap_or_default())?;
        let tags: Vec<TagInfo> = input
            .get("tags")
            .unwrap()
            .items()
            .iter()
            .map(tag_info)
            .collect();
        Ok(rule.select(&tags)?.map(|t| t.name))
    }

    #[test]
    fn argocd_tag_selection_conformance_cases() {
        let ran = for_each_case("tag_selection", |name, input, expected| {
            let got = run_selection(input);
            if expected.str_at(&["error"]) == Some("true") {
                assert!(got.is_err(), "case {name}: expected an error, got {got:?}");
            } else {
                let want = expected.str_at(&["selected"]).map(str::to_string);
                assert_eq!(got, Ok(want), "case {name}");
            }
        });
        assert_eq!(ran, 26, "tag_selection cases");
    }

    #[test]
    fn argocd_update_decision_conformance_cases() {
        let ran = for_each_case("update_decision", |name, input, expected| {
            let strategy = Strategy::parse(input.str_at(&["strategy"]).unwrap());
            let current = input.str_at(&["current"]).unwrap();
            let selected = TagInfo {
                digest: input.str_at(&["selected_digest"]).map(str::to_string),
                ..TagInfo::named(input.str_at(&["selected"]).unwrap())
            };
            let (image, _, _) = split_reference(current);
            let (update, reference) = decide(strategy, current, &selected, image);
            let want_update = expected.str_at(&["update"]) == Some("true");
            assert_eq!(update, want_update, "case {name}");
            match expected.str_at(&["new_ref"]) {
                Some(want) => assert_eq!(reference, want, "case {name}"),
                None if !update => assert_eq!(reference, current, "case {name}"),
                None => {}
            }
        });
        assert_eq!(ran, 4, "update_decision cases");
    }

    fn names(list: &[&str]) -> Vec<TagInfo> {
        list.iter().map(|n| TagInfo::named(n)).collect()
    }

    fn pick(rule: &ArgoRule, list: &[&str]) -> Option<String> {
        rule.select(&names(list)).unwrap().map(|t| t.name)
    }

    #[test]
    fn allow_tags_forms() {
        assert!(matches!(AllowTags::parse("any"), Ok(AllowTags::Any)));
        assert!(matches!(AllowTags::parse("Any"), Ok(AllowTags::Any)));
        let re = AllowTags::parse("regexp:^v[0-9]+$").unwrap();
        assert!(re.matches("v12") && !re.matches("v12-rc") && !re.matches("x"));
        // The prefix is case-insensitive and only the first ':' splits.
        let re = AllowTags::parse("RegExp:a:b").unwrap();
        assert!(re.matches("xa:by") && !re.matches("ab"));
        // Unanchored: a match anywhere in the tag counts.
        assert!(AllowTags::parse("regexp:rc").unwrap().matches("1.0-rc1"));
        // An empty expression matches every tag.
        assert!(AllowTags::parse("regexp:").unwrap().matches("anything"));
        for bad in ["^v1", "glob:v*", "regexp:(", "", "all"] {
            assert!(AllowTags::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(
            AllowTags::parse("regexp:(")
                .unwrap_err()
                .contains("regexp:(")
        );

        let mut rule = ArgoRule::new(Strategy::Semver);
        rule.allow = Some(AllowTags::parse("regexp:^1\\.").unwrap());
        assert_eq!(
            pick(&rule, &["1.2.0", "2.0.0", "1.9.1"]),
            Some("1.9.1".into())
        );
    }

    #[test]
    fn ignore_globs_follow_go_filepath_match() {
        let ignored = |glob: &str, tag: &str| go_glob(glob).is_some_and(|re| re.is_match(tag));
        assert!(ignored("*", "anything"));
        assert!(ignored("v1.*", "v1.2.3"));
        assert!(!ignored("v1.*", "v10"));
        assert!(ignored("tag?", "tag1"));
        assert!(!ignored("tag?", "tag10"));
        assert!(ignored("[a-c]x", "bx"));
        assert!(!ignored("[^a-c]x", "bx"));
        assert!(ignored("[^a-c]x", "dx"));
        assert!(ignored("\\*", "*"));
        assert!(!ignored("\\*", "a"));
        // Braces and `**` are not special in Go.
        assert!(ignored("{a,b}", "{a,b}"));
        assert!(!ignored("{a,b}", "a"));
        assert!(ignored("**", "abc"));
        // Whole-tag match, not substring.
        assert!(!ignored("rc", "1.0-rc"));
        // A reversed range is accepted and matches nothing.
        assert!(go_glob("[z-a]").is_some() && !ignored("[z-a]", "m"));
        // Malformed patterns ignore nothing.
        for bad in ["[", "[]", "[a-]", "ab\\", "[-a]"] {
            assert!(go_glob(bad).is_none(), "{bad:?} should be malformed");
        }

        let mut rule = ArgoRule::new(Strategy::Alphabetical);
        rule.ignore = vec!["latest".into(), "*-rc*".into(), "[".into()];
        assert_eq!(
            pick(&rule, &["latest", "v2-rc1", "v1", "v0"]),
            Some("v1".into())
        );
        rule.ignore.push("v?".into());
        assert_eq!(pick(&rule, &["latest", "v2-rc1", "v1", "v0"]), None);
    }

    #[test]
    fn strategy_names() {
        assert_eq!(Strategy::parse("latest"), Strategy::NewestBuild);
        assert_eq!(Strategy::parse("Newest-Build"), Strategy::NewestBuild);
        assert_eq!(Strategy::parse("name"), Strategy::Alphabetical);
        assert_eq!(Strategy::parse("digest"), Strategy::Digest);
        assert_eq!(Strategy::parse(""), Strategy::Semver);
    }

    #[test]
    fn platform_and_dates() {
        assert!(platform_matches(&["linux/arm64"], "linux/arm64/v8"));
        assert!(!platform_matches(&["linux/arm64/v8"], "linux/arm64"));
        assert!(!platform_matches(&["invalid"], "linux/amd64"));
        assert!(platform_matches(&[DEFAULT_PLATFORM], "linux/amd64"));

        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            parse_rfc3339("2024-05-01T12:00:00.5+02:00"),
            parse_rfc3339("2024-05-01T10:00:00.5Z")
        );
        assert_eq!(parse_rfc3339("2024-05-01"), None);

        // Default platform: an arm64-only image is dropped for newest-build,
        // and a time zone offset is honoured.
        let rule = ArgoRule::new(Strategy::NewestBuild);
        let tags = vec![
            TagInfo {
                name: "arm".into(),
                created: Some("2024-06-01T00:00:00Z".into()),
                platforms: vec!["linux/arm64".into()],
                ..TagInfo::default()
            },
            TagInfo {
                name: "a".into(),
                created: Some("2024-05-01T01:00:00+02:00".into()),
                ..TagInfo::default()
            },
            TagInfo {
                name: "b".into(),
                created: Some("2024-04-30T23:30:00Z".into()),
                ..TagInfo::default()
            },
        ];
        assert_eq!(rule.select(&tags).unwrap().unwrap().name, "b");
    }

    #[test]
    fn digest_strategy_writes_the_digest() {
        let mut rule = ArgoRule::new(Strategy::Digest);
        rule.constraint = "stable".into();
        let tags = vec![TagInfo {
            digest: Some("sha256:new".into()),
            ..TagInfo::named("stable")
        }];
        let selected = rule.select(&tags).unwrap().unwrap();
        assert_eq!(
            decide(
                Strategy::Digest,
                "reg:5000/app:stable@sha256:old",
                &selected,
                "reg:5000/app"
            ),
            (true, "reg:5000/app:stable@sha256:new".into())
        );
        assert_eq!(
            split_reference("reg:5000/app"),
            ("reg:5000/app", None, None)
        );
    }

    #[test]
    fn platform_match_cases() {
        let ran = for_each_case("platform_match", |name, input, expected| {
            let requested: Vec<&str> = input
                .get("requested")
                .unwrap()
                .items()
                .iter()
                .map(|n| n.as_str().unwrap())
                .collect();
            let candidate = input.str_at(&["candidate"]).unwrap();
            let want = expected.str_at(&["match"]) == Some("true");
            assert_eq!(platform_matches(&requested, candidate), want, "case {name}");
        });
        assert!(ran >= 2, "only {ran} platform_match cases");
    }
}
