//! The explanations agree with the selections that really happen: over the
//! upstream projects' ported cases (testdata/upstream/, and the conformance
//! tables' selection cases) and over generated tag lists, the candidate an
//! explanation calls `chosen` is the tag the selection returns, every listed
//! tag is accounted for exactly once (shown or counted), and at most the
//! bound of each other outcome is shown. Then the explanations end to end:
//! `run --explain`, `--output json`, `--output markdown`, and a repository
//! of 10,000 tags.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use image_update::policy::argo::{AllowTags, ArgoRule, Strategy as ArgoStrategy, TagInfo};
use image_update::policy::candidates::Gate;
use image_update::policy::{
    Candidates, Flavor, Order, Outcome, PER_OUTCOME, Rule, Selector, TagFilter,
};
use image_update::yaml::Node;
use proptest::prelude::*;
use serde_json::Value;
use support::{load_yaml, of_kind, strings};

/// Every listed tag once; at most `per` shown of each outcome but the
/// chosen one; the chosen one is `selected`.
fn accounts_for(c: &Candidates, listed: usize, per: usize, selected: Option<&str>, case: &str) {
    let total: usize = Outcome::ALL.iter().map(|o| c.count(*o)).sum();
    assert_eq!(total, listed, "{case}: {c:#?}");
    assert_eq!(c.listed, listed, "{case}");
    for outcome in Outcome::ALL {
        let shown = c.shown.iter().filter(|s| s.outcome == outcome).count();
        let limit = if outcome == Outcome::Chosen { 1 } else { per };
        assert!(shown <= limit, "{case}: {shown} {outcome:?} shown");
        assert!(
            c.omitted
                .get(&outcome)
                .is_none_or(|n| shown == per && *n > 0),
            "{case}: omitted {outcome:?} while fewer than {per} are shown"
        );
    }
    // Shown in outcome order.
    assert!(
        c.shown.windows(2).all(|w| w[0].outcome <= w[1].outcome),
        "{case}"
    );
    assert_eq!(c.chosen().map(|c| c.tag.as_str()), selected, "{case}");
}

fn flux_check(selector: &Selector, tags: &[String], case: &str) {
    let selected = selector.select(tags).ok();
    for per in [PER_OUTCOME, 1] {
        let (chosen, c) = selector.candidates(tags, None, per);
        assert_eq!(chosen.ok(), selected, "{case}");
        accounts_for(&c, tags.len(), per, selected.as_deref(), case);
    }
}

fn argo_check(rule: &ArgoRule, tags: &[TagInfo], case: &str) {
    let Ok(selected) = rule.select(tags) else {
        assert!(rule.candidates(tags, None, PER_OUTCOME).is_err(), "{case}");
        return;
    };
    let selected = selected.map(|t| t.name);
    for per in [PER_OUTCOME, 1] {
        let (chosen, c) = rule.candidates(tags, None, per).unwrap();
        assert_eq!(chosen.map(|t| t.name), selected, "{case}");
        accounts_for(&c, tags.len(), per, selected.as_deref(), case);
    }
}

fn tag_info(node: &Node) -> TagInfo {
    if let Some(name) = node.as_str() {
        return TagInfo::named(name);
    }
    TagInfo {
        name: node.str_at(&["name"]).unwrap().to_string(),
        created: node.str_at(&["created"]).map(str::to_string),
        digest: node.str_at(&["digest"]).map(str::to_string),
        platforms: strings(node.get("platforms")),
    }
}

/// A case's `tags`, names or `{name, created, digest, platforms}`.
fn tag_infos(case: &Node) -> Vec<TagInfo> {
    case.get("tags")
        .unwrap()
        .items()
        .iter()
        .map(tag_info)
        .collect()
}

/// An Argo CD rule from a case's `strategy`, `constraint`, `allow_tags`,
/// `ignore_tags` and `platforms`; `None` for a malformed `allowTags`
/// (upstream then selects nothing, which nothing can explain).
fn argo_rule(case: &Node) -> Option<ArgoRule> {
    let mut rule = ArgoRule::new(ArgoStrategy::parse(case.str_at(&["strategy"]).unwrap()));
    rule.constraint = case.str_at(&["constraint"]).unwrap_or_default().into();
    if let Some(allow) = case.str_at(&["allow_tags"]) {
        rule.allow = Some(AllowTags::parse(allow).ok()?);
    }
    rule.ignore = strings(case.get("ignore_tags"));
    rule.platforms = strings(case.get("platforms"));
    Some(rule)
}

/// image-reflector-controller's `latest` cases
/// (testdata/upstream/image-reflector-controller.yaml, each citing
/// internal/policy/*_test.go) and argocd-image-updater's `tag_selection`
/// cases (testdata/upstream/argocd-image-updater.yaml, citing
/// registry-scanner/pkg/image/version_test.go).
#[test]
fn the_chosen_candidate_is_the_selected_tag_in_every_ported_upstream_case() {
    let mut checked = 0;
    for case in of_kind(
        &load_yaml("testdata/upstream/image-reflector-controller.yaml"),
        "latest",
    ) {
        let at = case.str_at(&["upstream"]).unwrap();
        let rule = if let Some(range) = case.str_at(&["semver"]) {
            Rule::semver(range).unwrap()
        } else if let Some(order) = case.str_at(&["alphabetical"]) {
            Rule::Alphabetical(Order::parse(order).unwrap())
        } else {
            Rule::Numerical(Order::parse(case.str_at(&["numerical"]).unwrap()).unwrap())
        };
        flux_check(
            &Selector::new(rule, Flavor::Flux),
            &strings(case.get("versions")),
            at,
        );
        checked += 1;
    }
    for case in of_kind(
        &load_yaml("testdata/upstream/argocd-image-updater.yaml"),
        "tag_selection",
    ) {
        let tags = tag_infos(case);
        argo_check(
            &argo_rule(case).unwrap(),
            &tags,
            case.str_at(&["upstream"]).unwrap(),
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} upstream cases");
}

/// The conformance tables' selection cases: Flux `policy`
/// (testdata/conformance/flux-cases.yaml, filterTags included) and Argo CD
/// `tag_selection` (testdata/conformance/argocd-cases.yaml: allow and
/// ignore tags, platforms, build dates).
#[test]
fn the_chosen_candidate_is_the_selected_tag_in_every_conformance_case() {
    let mut checked = 0;
    for case in of_kind(&load_yaml("testdata/conformance/flux-cases.yaml"), "policy") {
        let input = case.get("input").unwrap();
        let policy = input.get("policy").unwrap();
        let rule = if let Some(range) = policy.str_at(&["semver", "range"]) {
            Rule::semver(range)
        } else if let Some(node) = policy.get("alphabetical") {
            Order::parse(node.str_at(&["order"]).unwrap_or_default()).map(Rule::Alphabetical)
        } else {
            let node = policy.get("numerical").unwrap();
            Order::parse(node.str_at(&["order"]).unwrap_or_default()).map(Rule::Numerical)
        };
        let Ok(rule) = rule else { continue };
        let mut selector = Selector::new(rule, Flavor::Flux);
        if let Some(pattern) = input.str_at(&["filterTags", "pattern"]) {
            let extract = input.str_at(&["filterTags", "extract"]).unwrap_or_default();
            let Ok(filter) = TagFilter::new(pattern, extract) else {
                continue;
            };
            selector.filter = Some(filter);
        }
        let name = case.str_at(&["name"]).unwrap();
        flux_check(&selector, &strings(input.get("tags")), name);
        checked += 1;
    }
    for case in of_kind(
        &load_yaml("testdata/conformance/argocd-cases.yaml"),
        "tag_selection",
    ) {
        let input = case.get("input").unwrap();
        let Some(rule) = argo_rule(input) else {
            continue;
        };
        let tags = tag_infos(input);
        argo_check(&rule, &tags, case.str_at(&["name"]).unwrap());
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} conformance cases");
}

/// `tags` built on the days of January 2024 `days` gives.
fn dated(tags: &[String], days: &[u8]) -> Vec<TagInfo> {
    tags.iter()
        .zip(days)
        .map(|(t, d)| TagInfo {
            created: Some(format!("2024-01-{d:02}T00:00:00Z")),
            ..TagInfo::named(t)
        })
        .collect()
}

/// Tags of every kind the rules treat differently: versions, partial and
/// prefixed versions, pre-releases, numbers, words, signatures.
fn tag() -> impl proptest::strategy::Strategy<Value = String> {
    prop_oneof![
        (0u8..4, 0u8..4, 0u8..4).prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        (0u8..4, 0u8..4).prop_map(|(a, b)| format!("v{a}.{b}")),
        (0u8..3, 0u8..3, 0u8..3).prop_map(|(a, b, c)| format!("{a}.{b}.{c}-rc.{c}")),
        (0u16..500).prop_map(|n| n.to_string()),
        "[a-z]{1,4}",
        (0u8..3).prop_map(|n| format!("{n}.0.0.sig")),
        (0u8..3, 0u8..9).prop_map(|(a, n)| format!("build-{a}.{n}.0")),
    ]
}

fn flux_rule() -> impl proptest::strategy::Strategy<Value = Rule> {
    prop_oneof![
        prop::sample::select(vec![
            "*",
            "^1",
            "~1.1",
            ">=1.0.0-0",
            "1.x || 3.x",
            "<2, >0.1"
        ])
        .prop_map(|r| Rule::semver(r).unwrap()),
        prop::sample::select(vec![Order::Asc, Order::Desc]).prop_map(Rule::Alphabetical),
        prop::sample::select(vec![Order::Asc, Order::Desc]).prop_map(Rule::Numerical),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Flux rules, with and without a filter that extracts.
    #[test]
    fn flux_explanations_agree_with_the_selection(
        tags in prop::collection::vec(tag(), 0..40),
        rule in flux_rule(),
        filter in 0u8..3,
    ) {
        let mut selector = Selector::new(rule, Flavor::Flux);
        selector.filter = match filter {
            0 => None,
            1 => Some(TagFilter::new("^build-(?P<v>.*)$", "$v").unwrap()),
            _ => Some(TagFilter::new("^[0-9]", "").unwrap()),
        };
        flux_check(&selector, &tags, &format!("{tags:?}"));
    }

    /// Under a gate, the chosen candidate is what the rule selects from the
    /// tags the gate lets through, as the history's holds select
    /// (`hold::choose`): refused tags removed first, once the rule has
    /// not failed over them all.
    #[test]
    fn a_gated_explanation_chooses_what_the_rule_chooses_among_the_tags_let_through(
        tags in prop::collection::vec(tag(), 0..30),
        rule in flux_rule(),
        extract in any::<bool>(),
        refused in prop::collection::vec(any::<bool>(), 30),
    ) {
        let mut selector = Selector::new(rule, Flavor::Flux);
        if extract {
            // Many tags extract the same value.
            selector.filter = Some(TagFilter::new("^(?:build-)?(?P<v>[0-9.]+)", "$v").unwrap());
        }
        let is_refused = |tag: &str| tags.iter().position(|t| t == tag).is_some_and(|i| refused[i]);
        let gate = |tag: &str| {
            is_refused(tag).then(|| Gate::Held { reason: format!("held: {tag}") })
        };
        let allowed: Vec<String> = tags.iter().filter(|t| !is_refused(t)).cloned().collect();
        // As `hold::choose`: a rule that fails over every tag (a tag that is
        // not a number) fails, refusals or not.
        let want = match selector.select(&tags) {
            Ok(_) => selector.select(&allowed).ok(),
            Err(_) => None,
        };
        let (chosen, c) = selector.candidates(&tags, Some(&gate), PER_OUTCOME);
        prop_assert_eq!(chosen.ok(), want.clone(), "{:?}", c);
        prop_assert_eq!(c.chosen().map(|c| c.tag.clone()), want);
        let total: usize = Outcome::ALL.iter().map(|o| c.count(*o)).sum();
        prop_assert_eq!(total, tags.len());
    }

    /// The same for Argo CD strategies.
    #[test]
    fn a_gated_argo_explanation_chooses_what_the_rule_chooses_among_the_tags_let_through(
        tags in prop::collection::vec(tag(), 0..30),
        strategy in prop::sample::select(vec!["semver", "alphabetical", "newest-build"]),
        refused in prop::collection::vec(any::<bool>(), 30),
        days in prop::collection::vec(1u8..28, 30),
    ) {
        let rule = ArgoRule::new(ArgoStrategy::parse(strategy));
        let infos = dated(&tags, &days);
        let is_refused = |tag: &str| tags.iter().position(|t| t == tag).is_some_and(|i| refused[i]);
        let gate = |tag: &str| {
            is_refused(tag).then(|| Gate::Waiting { reason: format!("waiting: {tag}") })
        };
        let allowed: Vec<TagInfo> = infos.iter().filter(|t| !is_refused(&t.name)).cloned().collect();
        let want = rule.select(&allowed).unwrap().map(|t| t.name);
        let (chosen, c) = rule.candidates(&infos, Some(&gate), PER_OUTCOME).unwrap();
        prop_assert_eq!(chosen.map(|t| t.name), want.clone());
        prop_assert_eq!(c.chosen().map(|c| c.tag.clone()), want);
    }

    /// Argo CD strategies with allow and ignore tags.
    #[test]
    fn argo_explanations_agree_with_the_selection(
        tags in prop::collection::vec(tag(), 0..40),
        strategy in prop::sample::select(vec!["semver", "alphabetical", "newest-build"]),
        constraint in prop::sample::select(vec!["", "^1", "~1.1", ">=1.0.0-0"]),
        allow in prop::sample::select(vec!["", "regexp:^[0-9]", "regexp:rc"]),
        days in prop::collection::vec(1u8..28, 40),
    ) {
        let mut rule = ArgoRule::new(ArgoStrategy::parse(strategy));
        rule.constraint = constraint.to_string();
        if !allow.is_empty() {
            rule.allow = Some(AllowTags::parse(allow).unwrap());
        }
        rule.ignore = vec!["*.sig".to_string()];
        let infos = dated(&tags, &days);
        argo_check(&rule, &infos, &format!("{strategy} {constraint} {tags:?}"));
    }
}

// ---- end to end -------------------------------------------------------

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_image-update"))
}

fn put(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

const REPO_URL: &str = "https://git.example.com/org/gitops";

/// A tree with a Flux policy (exclusionList, filterTags, semver) that moves,
/// one already at its newest tag, one with nothing in range, one whose
/// filter matches nothing, and an Argo CD application with allow and
/// ignore tags.
fn tree(root: &Path) {
    put(
        root,
        "flux/web.yaml",
        r#"apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: web, namespace: apps}
spec:
  image: ghcr.io/acme/web
  exclusionList: ['^dev-']
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: web, namespace: apps}
spec:
  imageRepositoryRef: {name: web}
  filterTags: {pattern: '^v?[0-9]|^dev-'}
  policy: {semver: {range: ^1.2}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: api, namespace: apps}
spec: {image: ghcr.io/acme/api}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: api, namespace: apps}
spec:
  imageRepositoryRef: {name: api}
  policy: {semver: {range: 2.x}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: api-next, namespace: apps}
spec:
  imageRepositoryRef: {name: api}
  policy: {semver: {range: '>=9'}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: api-nightly, namespace: apps}
spec:
  imageRepositoryRef: {name: api}
  filterTags: {pattern: '^nightly-'}
  policy: {alphabetical: {}}
"#,
    );
    put(
        root,
        "apps/deploy.yaml",
        "web: ghcr.io/acme/web:1.2.0 # {\"$imagepolicy\": \"apps:web\"}\napi: ghcr.io/acme/api:2.1.0 # {\"$imagepolicy\": \"apps:api\"}\n",
    );
    put(
        root,
        "argo/app.yaml",
        &format!(
            r#"apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: shop
  namespace: argocd
  annotations:
    argocd-image-updater.argoproj.io/image-list: shop=ghcr.io/acme/shop:1.x
    argocd-image-updater.argoproj.io/shop.allow-tags: regexp:^[0-9]
    argocd-image-updater.argoproj.io/shop.ignore-tags: "*-debug"
    argocd-image-updater.argoproj.io/write-back-method: git
spec:
  source:
    repoURL: {REPO_URL}
    path: shop
"#
        ),
    );
    put(
        root,
        "shop/kustomization.yaml",
        "images:\n- name: ghcr.io/acme/shop\n  newTag: 1.0.0\n",
    );
    put(
        root,
        "snapshot.json",
        r#"{"version": 1, "repositories": {
  "ghcr.io/acme/web": {"tags": ["1.2.0", "latest", "dev-1.9.0", "2.0.0", "1.3.0-rc.1", "1.4.1", "-bad", "1.3.0"]},
  "ghcr.io/acme/api": {"tags": ["2.0.0", "2.1.0", "3.0.0"]},
  "ghcr.io/acme/shop": {"tags": ["1.0.0", "main", "1.1.0-debug", "1.1.0", "2.0.0"]}
}}"#,
    );
}

fn run(root: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = bin()
        .arg("run")
        .arg(root)
        .args(["--dry-run", "--registry-snapshot"])
        .arg(root.join("snapshot.json"))
        .args(["--repo-url", REPO_URL])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn run_explain_lists_the_candidates_of_each_policy_and_image() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let (code, out) = run(dir.path(), &["--explain"]);
    assert_eq!(code, Some(1), "{out}");
    let web = out
        .split("policy apps:web: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{out}"));
    let lines: Vec<Vec<&str>> = web
        .lines()
        .skip(1)
        .take(8)
        .map(|l| l.split_whitespace().collect())
        .collect();
    // `*` marks the chosen tag; then tag, outcome, reason.
    assert_eq!(lines[0][..4], ["*", "1.4.1", "chosen", "newest"], "{out}");
    let outcomes: Vec<(&str, &str)> = lines[1..].iter().map(|l| (l[0], l[1])).collect();
    assert_eq!(
        outcomes,
        vec![
            ("1.3.0", "older"),
            ("1.2.0", "older"),
            ("-bad", "invalid"),
            ("dev-1.9.0", "excluded"),
            ("latest", "filtered"),
            ("2.0.0", "out-of-range"),
            ("1.3.0-rc.1", "pre-release"),
        ],
        "{out}"
    );
    assert!(
        out.contains("a pre-release, which ^1.2 does not admit"),
        "{out}"
    );
    assert!(
        out.contains("excluded by the exclusionList /^dev-/"),
        "{out}"
    );
    // The Argo CD image, with upstream's filters.
    let shop = out
        .split("application argocd/shop image shop: 1.1.0 (semver)\n")
        .nth(1);
    let shop = shop.unwrap_or_else(|| panic!("{out}"));
    assert!(shop.starts_with("  * 1.1.0"), "{out}");
    assert!(
        shop.contains("not-allowed      not allowed by allow-tags regexp:^[0-9]"),
        "{out}"
    );
    assert!(
        shop.contains("ignored          ignored by ignore-tags *-debug"),
        "{out}"
    );
    // Without --explain the text report has no candidates.
    let (_, plain) = run(dir.path(), &[]);
    assert!(!plain.contains("newest of"), "{plain}");
}

#[test]
fn the_json_report_always_has_the_candidates() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let (_, out) = run(dir.path(), &["--output", "json"]);
    let report: Value = serde_json::from_str(&out).unwrap();
    let policy = |name: &str| {
        report["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["policy"] == name)
            .unwrap_or_else(|| panic!("{name}: {report:#}"))
            .clone()
    };
    let web = policy("apps:web");
    assert_eq!(web["candidates"]["listed"], 8);
    assert_eq!(
        web["candidates"]["shown"][0],
        serde_json::json!({"tag": "1.4.1", "outcome": "chosen", "reason": "newest of 3 tags in range ^1.2"})
    );
    assert!(web["candidates"].get("omitted").is_none(), "{web:#}");
    let next = policy("apps:api-next");
    assert_eq!(next["tag"], Value::Null);
    let outcomes: Vec<&str> = next["candidates"]["shown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["out-of-range"; 3]);
    let image = &report["applications"][0]["images"][0];
    assert_eq!(image["candidates"]["shown"][0]["tag"], "1.1.0");
    assert_eq!(image["candidates"]["shown"][0]["outcome"], "chosen");
}

#[test]
fn markdown_gives_each_change_its_reason_and_each_unchanged_policy_why() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let (code, md) = run(dir.path(), &["--output", "markdown"]);
    assert_eq!(code, Some(1), "{md}");
    assert!(md.starts_with("## image-update\n\n"), "{md}");
    // A change: old → new and the one-line reason.
    assert!(
        md.contains("| `apps/deploy.yaml` | 1 | `ghcr.io/acme/web:1.2.0` → `ghcr.io/acme/web:1.4.1` | `apps:web` | newest of 3 tags in range ^1.2 |"),
        "{md}"
    );
    assert!(
        md.contains("| `shop/.argocd-source-shop.yaml` |  | `ghcr.io/acme/shop:1.0.0` → `ghcr.io/acme/shop:1.1.0` | `argocd/shop ghcr.io/acme/shop` | newest of 2 tags in range 1.x |"),
        "{md}"
    );
    // Unchanged policies: already newest, nothing in range, all filtered.
    assert!(
        md.contains("| `apps:api` | `ghcr.io/acme/api` | semver 2.x | `2.1.0` | up to date: newest of 2 tags in range 2.x |"),
        "{md}"
    );
    assert!(
        md.contains("| 3 listed tags, none qualifies: 3 outside the range |"),
        "{md}"
    );
    assert!(
        md.contains("| 3 listed tags, none qualifies: 3 not matching filterTags |"),
        "{md}"
    );
    assert!(md.contains("### Argo CD images"), "{md}");
}

/// A repository of 10,000 tags: the chosen one, at most PER_OUTCOME of
/// each other outcome, and counts for the rest, in JSON and text.
#[test]
fn ten_thousand_tags_are_explained_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut tags: Vec<String> = Vec::new();
    for i in 0..9_000 {
        tags.push(format!("1.{}.{}", i / 100, i % 100));
    }
    for i in 0..500 {
        tags.push(format!("2.0.{i}"));
        // Within 1.x if pre-releases were admitted (1.0.0-rc.1 would not
        // be: it precedes 1.0.0).
        tags.push(format!("1.1.{i}-rc.1"));
    }
    let snapshot =
        serde_json::json!({"version": 1, "repositories": {"ghcr.io/acme/big": {"tags": tags}}});
    put(root, "snapshot.json", &snapshot.to_string());
    put(
        root,
        "flux.yaml",
        "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: big, namespace: apps}\nspec: {image: ghcr.io/acme/big}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: big, namespace: apps}\nspec:\n  imageRepositoryRef: {name: big}\n  policy: {semver: {range: 1.x}}\n",
    );
    let (code, out) = run(root, &["--output", "json"]);
    assert_eq!(code, Some(0), "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let c = &report["policies"][0]["candidates"];
    assert_eq!(c["listed"], 10_000);
    let shown: Vec<(&str, &str)> = c["shown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["tag"].as_str().unwrap(), s["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(shown.len(), 1 + 3 * PER_OUTCOME, "{shown:?}");
    // The best of each: the newest older ones, the newest out of range.
    assert_eq!(
        &shown[..3],
        [
            ("1.89.99", "chosen"),
            ("1.89.98", "older"),
            ("1.89.97", "older")
        ]
    );
    assert_eq!(shown[1 + PER_OUTCOME], ("2.0.499", "out-of-range"));
    assert_eq!(shown[1 + 2 * PER_OUTCOME], ("1.1.499-rc.1", "pre-release"));
    assert_eq!(
        c["omitted"],
        serde_json::json!({"older": 8_999 - PER_OUTCOME, "out-of-range": 500 - PER_OUTCOME, "pre-release": 500 - PER_OUTCOME})
    );
    let (_, text) = run(root, &["--explain"]);
    assert!(
        text.contains(&format!(
            "... not shown: {} older, {} out-of-range, {} pre-release (at most {PER_OUTCOME} of each outcome are)",
            8_999 - PER_OUTCOME,
            500 - PER_OUTCOME,
            500 - PER_OUTCOME
        )),
        "{text}"
    );
}

/// README's worked example of `--explain` is what `run` prints.
#[test]
fn the_readme_explain_example_is_what_run_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    let command = "$ image-update run examples/flux --registry-snapshot examples/flux.snapshot.json --dry-run --explain\n";
    let shown = readme
        .split(command)
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("README shows the --explain example");
    let out = bin()
        .current_dir(root)
        .args(command[2..].split_whitespace().skip(1))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), shown);
}

/// `select --strategy … --explain`: Argo CD's reasons, among them a tag
/// without a build date, which upstream orders as 1970-01-01.
#[test]
fn select_explains_argo_cd_strategies_too() {
    let dir = tempfile::tempdir().unwrap();
    put(
        dir.path(),
        "snap.json",
        r#"{"version": 1, "repositories": {"ghcr.io/acme/app": {
            "tags": ["a", "b", "c", "arm"],
            "created": {"a": "2024-01-01T00:00:00Z", "c": "2024-02-01T00:00:00Z", "arm": "2024-03-01T00:00:00Z"},
            "platforms": {"arm": ["linux/arm64"]}}}}"#,
    );
    let out = bin()
        .args(["select", "--strategy", "newest-build", "--explain"])
        .args(["--image", "ghcr.io/acme/app", "--registry-snapshot"])
        .arg(dir.path().join("snap.json"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "c\n");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert!(
        lines[0].starts_with("* c ") && lines[0].contains("newest build of 3 tags"),
        "{err}"
    );
    assert!(
        lines[1].contains("built before c (built 2024-01-01T00:00:00Z)"),
        "{err}"
    );
    assert!(
        lines[2].starts_with("  b ") && lines[2].contains("no build date"),
        "{err}"
    );
    assert!(
        lines[3].contains("built for linux/arm64, not linux/amd64"),
        "{err}"
    );
}
