//! Selection against the `kind: policy` cases of the Flux conformance table
//! (testdata/conformance/flux-cases.yaml), plus the explanations.

use super::*;
use crate::yaml::{Node, parse};

const CASES: &str = include_str!("../../testdata/conformance/flux-cases.yaml");

fn selector_for(input: &Node) -> Result<Selector, RuleError> {
    let policy = input.get("policy").expect("policy");
    let rule = if let Some(range) = policy.str_at(&["semver", "range"]) {
        Rule::semver(range)?
    } else if let Some(node) = policy.get("alphabetical") {
        Rule::Alphabetical(Order::parse(node.str_at(&["order"]).unwrap_or_default())?)
    } else {
        let node = policy.get("numerical").expect("a rule");
        Rule::Numerical(Order::parse(node.str_at(&["order"]).unwrap_or_default())?)
    };
    let mut selector = Selector::new(rule, Flavor::Flux);
    if let Some(pattern) = input.str_at(&["filterTags", "pattern"]) {
        selector.filter = Some(TagFilter::new(
            pattern,
            input.str_at(&["filterTags", "extract"]).unwrap_or_default(),
        )?);
    }
    Ok(selector)
}

/// Calls `check(name, input, tags, expected)` for every `kind: policy` case;
/// returns how many there were.
fn for_each_policy_case(mut check: impl FnMut(&str, &Node, &[&str], &Node)) -> usize {
    let stream = parse(CASES).unwrap();
    let cases = stream.documents[0].root.get("cases").unwrap().items();
    let mut ran = 0;
    for case in cases
        .iter()
        .filter(|c| c.str_at(&["kind"]) == Some("policy"))
    {
        let input = case.get("input").unwrap();
        let tags: Vec<&str> = input
            .get("tags")
            .unwrap()
            .items()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        check(
            case.str_at(&["name"]).unwrap(),
            input,
            &tags,
            case.get("expected").unwrap(),
        );
        ran += 1;
    }
    ran
}

#[test]
fn flux_policy_conformance_cases() {
    let ran = for_each_policy_case(|name, input, tags, expected| {
        let got = selector_for(input).map_err(|e| match e {
            RuleError::InvalidPolicy(_) => "invalid-policy",
            RuleError::InvalidFilter(_) => "invalid-filter",
        });
        let got = got.and_then(|s| s.select(tags).map_err(|e| e.class()));
        match (expected.str_at(&["latest"]), expected.str_at(&["error"])) {
            (Some(latest), _) => assert_eq!(got, Ok(latest.to_string()), "case {name}"),
            (None, Some(error)) => assert_eq!(got, Err(error), "case {name}"),
            _ => panic!("case {name} expects nothing"),
        }
    });
    assert!(ran >= 20, "only {ran} policy cases ran");
}

fn select(selector: &Selector, tags: &[&str]) -> Result<String, SelectError> {
    selector.select(tags)
}

#[test]
fn default_exclusion_drops_signatures_until_a_list_replaces_it() {
    let s = Selector::new(Rule::Alphabetical(Order::Asc), Flavor::Flux);
    assert_eq!(select(&s, &["a", "sha256-abc.sig"]), Ok("a".into()));
    let s = s.with_exclusions(&["^a$".into()]).unwrap();
    assert_eq!(
        select(&s, &["a", "sha256-abc.sig"]),
        Ok("sha256-abc.sig".into())
    );
    let err = Selector::new(Rule::Alphabetical(Order::Asc), Flavor::Flux)
        .with_exclusions(&["(".into()])
        .unwrap_err();
    assert!(matches!(err, RuleError::InvalidPolicy(_)));
}

#[test]
fn numerical_fails_on_any_unparsable_tag() {
    let s = Selector::new(Rule::Numerical(Order::Asc), Flavor::Flux);
    let err = select(&s, &["1", "2", "latest"]).unwrap_err();
    assert_eq!(err.class(), "unparseable-number");
    assert!(err.to_string().contains("\"latest\""));
}

#[test]
fn semver_without_a_match_is_no_match() {
    let s = Selector::new(Rule::semver(">=2.0.0").unwrap(), Flavor::Flux);
    assert_eq!(
        select(&s, &["1.0.0", "latest"]).unwrap_err().class(),
        "no-match"
    );
    assert_eq!(select(&s, &[] as &[&str]).unwrap_err().class(), "no-tags");
}

#[test]
fn flavours_differ_on_short_tags() {
    let range = Rule::semver(">=1.0.0").unwrap();
    let tags = ["1.2", "1.4", "1.3.5"];
    assert_eq!(
        select(&Selector::new(range.clone(), Flavor::Flux), &tags),
        Ok("1.3.5".into())
    );
    assert_eq!(
        select(&Selector::new(range, Flavor::Argo), &tags),
        Ok("1.4".into())
    );
}

#[test]
fn extract_collisions_map_back_to_the_last_listed_tag() {
    let mut s = Selector::new(Rule::Numerical(Order::Asc), Flavor::Flux);
    s.filter = Some(TagFilter::new("^(?:a|b)-([0-9]+)$", "$1").unwrap());
    let tags = ["a-5", "b-5", "a-3"];
    assert_eq!(s.select(&tags).unwrap(), "b-5");
    assert!(
        s.explain(&tags)[0]
            .reason
            .contains("same value as a later tag")
    );
}

#[test]
fn an_extract_of_one_group_reads_as_the_template_expands() {
    // The shortcut for `$v`-like templates must give what expanding the
    // template gives, also for the templates it leaves to the expansion.
    let pattern = "^(?P<v>[0-9]+)(?:-(?P<suffix>[a-z]+))?(?P<opt_1>x)?$";
    let templates = [
        "$v", "${v}", "$1", "${2}", "$suffix", "$opt_1", "$3", "$9", "$missing", "${v}}", "$v-",
        "$$v", "v$v", "${ v}", "$", "${v", "$0", "",
    ];
    for extract in templates {
        let filter = TagFilter::new(pattern, extract).unwrap();
        for tag in ["12", "12-rc", "12x", "a", "12-rc-x"] {
            let expanded = filter.pattern.captures(tag).map(|c| {
                let mut out = String::new();
                c.expand(extract, &mut out);
                out
            });
            let expected = match extract {
                "" => filter.pattern.is_match(tag).then(|| tag.to_string()),
                _ => expanded,
            };
            assert_eq!(
                filter.apply(tag).map(Cow::into_owned),
                expected,
                "{extract:?} on {tag:?}"
            );
        }
    }
    assert_eq!(TagFilter::new(pattern, "$v").unwrap().group, Some(1));
    assert_eq!(TagFilter::new(pattern, "${suffix}").unwrap().group, Some(2));
    assert_eq!(TagFilter::new(pattern, "$missing").unwrap().group, None);
}

#[test]
fn the_default_exclusion_reads_as_its_regex() {
    let re = Regex::new(DEFAULT_EXCLUSION).unwrap();
    for tag in [
        "sha256-ab.sig",
        ".sig",
        "sig",
        "1.0.sig.",
        "1.0.SIG",
        "a\nb.sig",
        "a.sig\n",
        "é.sig",
        "",
        "x.sigx",
        "x..sig",
    ] {
        assert_eq!(excludes(&re, tag), re.is_match(tag), "{tag:?}");
    }
}

#[test]
fn every_tag_gets_a_verdict() {
    let mut s = Selector::new(Rule::semver("^1.0").unwrap(), Flavor::Flux);
    s.filter = Some(TagFilter::new("^v?[0-9]", "").unwrap());
    let tags = ["1.0.0", "1.2.0", "2.0.0", "1.1", "latest", "x.sig", "1.1.0"];
    assert_eq!(s.select(&tags).unwrap(), "1.2.0");
    let verdicts = s.explain(&tags);
    let reasons: Vec<(&str, bool, &str)> = verdicts
        .iter()
        .map(|v| (v.tag.as_str(), v.chosen, v.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("1.0.0", false, "in range, but older than the chosen tag"),
            ("1.2.0", true, "chosen by semver ^1.0"),
            ("2.0.0", false, "2.0.0 is outside ^1.0"),
            (
                "1.1",
                false,
                "\"1.1\" is not a version (Flux requires MAJOR.MINOR.PATCH)"
            ),
            (
                "latest",
                false,
                "does not match filterTags.pattern /^v?[0-9]/"
            ),
            ("x.sig", false, "excluded by exclusionList /^.*\\.sig$/"),
            ("1.1.0", false, "in range, but older than the chosen tag"),
        ]
    );
    let failed = Selector::new(Rule::semver(">=3").unwrap(), Flavor::Flux);
    assert_eq!(failed.explain(&tags).len(), tags.len());
}

#[test]
fn numerical_ties_go_to_the_last_listed_tag_as_in_flux() {
    let s = Selector::new(Rule::Numerical(Order::Asc), Flavor::Flux);
    assert_eq!(select(&s, &["1", "1.0", "01"]), Ok("01".into()));
    let s = Selector::new(Rule::Numerical(Order::Desc), Flavor::Flux);
    assert_eq!(select(&s, &["2", "1", "1.0"]), Ok("1.0".into()));
}

/// The tag a policy selects never ranks below another tag it admits, so the
/// no-downgrade guard can never refuse what the rule itself chose over the
/// value in the file.
#[test]
fn the_chosen_tag_never_ranks_below_another_listed_tag() {
    let mut checked = 0;
    for_each_policy_case(|name, input, tags, _| {
        let Ok(selector) = selector_for(input) else {
            return;
        };
        let Ok(chosen) = selector.select(tags) else {
            return;
        };
        // Only tags the rule admits compete; a value outside the range may
        // well rank higher, and moving off it is the refused downgrade.
        for tag in tags.iter().filter(|t| selector.select(&[**t]).is_ok()) {
            assert!(
                !selector.ranks_below(&chosen, tag),
                "case {name}: {chosen} ranks below {tag}"
            );
            checked += 1;
        }
    });
    assert!(checked > 50, "only {checked} pairs checked");
}

#[test]
fn ranks_below_follows_each_rule_and_order() {
    let semver = Selector::new(Rule::semver(">=1.0.0").unwrap(), Flavor::Flux);
    assert!(semver.ranks_below("1.2.0", "1.10.0"));
    assert!(!semver.ranks_below("1.10.0", "1.2.0"));
    assert!(!semver.ranks_below("1.2.0", "1.2.0"));
    // A current value that is not a version cannot be downgraded from.
    assert!(!semver.ranks_below("1.2.0", "latest"));
    let alpha_desc = Selector::new(Rule::Alphabetical(Order::Desc), Flavor::Flux);
    assert!(alpha_desc.ranks_below("b", "a"));
    assert!(!alpha_desc.ranks_below("a", "b"));
    let numerical = Selector::new(Rule::Numerical(Order::Asc), Flavor::Flux);
    assert!(numerical.ranks_below("9", "10"));
    assert!(!numerical.ranks_below("10", "9"));
    let mut extract = Selector::new(Rule::Numerical(Order::Asc), Flavor::Flux);
    extract.filter = Some(TagFilter::new(r"^main-(?P<ts>\d+)$", "$ts").unwrap());
    assert!(extract.ranks_below("main-9", "main-10"));
    assert!(!extract.ranks_below("main-9", "feature-10"));
}
