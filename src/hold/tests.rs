use super::*;

fn commit(sha: &str, time: i64, author: &str) -> Commit {
    Commit {
        sha: sha.repeat(40 / sha.len()),
        time,
        author_name: author.to_string(),
        author_email: format!("{author}@example.com"),
        subject: "change".to_string(),
        trailer: false,
        merged: None,
    }
}

fn change<'a>(c: &'a Commit, before: &str, after: &str) -> ValueChange<'a> {
    let value = |v: &str| (!v.is_empty()).then(|| v.to_string());
    ValueChange {
        commit: c,
        before: value(before),
        after: value(after),
    }
}

/// Plain numbers as versions: `a` ranks below `b`.
fn numeric(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(a), Ok(b)) => a < b,
        _ => false,
    }
}

#[test]
fn automations_are_known_by_author_or_default_subject() {
    let automation = Automation::new(["Bot <bot@acme.io>", "ci-robot"]);
    let by = |name: &str, email: &str, subject: &str| Commit {
        author_name: name.into(),
        author_email: email.into(),
        subject: subject.into(),
        ..commit("a", 0, "x")
    };
    assert!(automation.wrote(&by("fluxcdbot", "x@y", "Update")));
    assert!(automation.wrote(&by("x", "NoReply@ArgoProj.io", "Update")));
    assert!(automation.wrote(&by("Jane", "j@acme.io", "build: automatic update of web")));
    assert!(automation.wrote(&by(
        "Jane",
        "j@acme.io",
        "Update from image update automation"
    )));
    assert!(automation.wrote(&by("someone", "bot@acme.io", "x")));
    assert!(automation.wrote(&by("CI-Robot", "r@acme.io", "x")));
    assert!(!automation.wrote(&by("Jane", "jane@acme.io", "Roll back web to 1.0.0")));
    // This tool's trailer, whoever the author.
    let ci = Commit {
        trailer: true,
        ..by(
            "github-actions[bot]",
            "41898282+github-actions[bot]@users.noreply.github.com",
            "x",
        )
    };
    assert!(automation.wrote(&ci));
    // A merge is the branch it merged.
    let merge = |tip: Commit| Commit {
        merged: Some(Box::new(tip)),
        ..by("Jane", "jane@acme.io", "Merge pull request #1")
    };
    assert!(automation.wrote(&merge(by("fluxcdbot", "x@y", "Update"))));
    assert!(!automation.wrote(&merge(by("Joe", "joe@acme.io", "try 1.1"))));
}

#[test]
fn a_person_setting_back_an_automated_value_is_a_rollback() {
    let automation = Automation::new(["bot"]);
    let (bump, revert) = (commit("b", 100, "bot"), commit("c", 200, "jane"));
    let changes = [
        change(&revert, "1.1.0", "1.0.0"),
        change(&bump, "1.0.0", "1.1.0"),
    ];
    let hold = rollback(&changes, &automation, &numeric).unwrap();
    assert_eq!((hold.tag.as_str(), hold.to.as_str()), ("1.1.0", "1.0.0"));
    assert_eq!(hold.date, "1970-01-01T00:03:20Z");
    assert_eq!(hold.author, "jane");
}

#[test]
fn a_persons_later_edits_below_the_rolled_back_tag_keep_the_hold() {
    let automation = Automation::new(["bot"]);
    let (bump, revert, hotfix) = (
        commit("b", 100, "bot"),
        commit("c", 200, "jane"),
        commit("d", 300, "joe"),
    );
    let hold = |last: ValueChange| {
        let changes = [
            last,
            change(&revert, "1.1", "1.0"),
            change(&bump, "1.0", "1.1"),
        ];
        rollback(&changes, &automation, &numeric)
    };
    // A hotfix pinned after the rollback, still below 1.1: held, and
    // said by the rollback's commit.
    let held = hold(change(&hotfix, "1.0", "1.05")).unwrap();
    assert_eq!((held.tag.as_str(), held.to.as_str()), ("1.1", "1.0"));
    assert_eq!((held.sha, held.author), (revert.sha.clone(), "jane".into()));
    // A person who puts 1.1 back, or moves above it, ends the hold.
    assert_eq!(hold(change(&hotfix, "1.0", "1.1")), None);
    assert_eq!(hold(change(&hotfix, "1.0", "1.2")), None);
    assert_eq!(hold(change(&hotfix, "1.0", "")), None);
}

#[test]
fn what_is_not_a_rollback() {
    let automation = Automation::new(["bot"]);
    let (bump, revert, human) = (
        commit("b", 100, "bot"),
        commit("c", 200, "jane"),
        commit("d", 50, "joe"),
    );
    let none = |changes: &[ValueChange]| rollback(changes, &automation, &numeric);
    // The automation's own change is the last one.
    assert_eq!(none(&[change(&bump, "1.0", "1.1")]), None);
    // A person changed a value a person had written.
    assert_eq!(
        none(&[change(&revert, "1.1", "1.0"), change(&human, "1.0", "1.1")]),
        None
    );
    // A person moved up: a manual bump.
    assert_eq!(
        none(&[change(&revert, "1.1", "1.2"), change(&bump, "1.0", "1.1")]),
        None
    );
    // Only one change is known: the history was cut before the bump.
    assert_eq!(none(&[change(&revert, "1.1", "1.0")]), None);
    // The person's change did not replace what the automation wrote.
    assert_eq!(
        none(&[change(&revert, "1.1", "1.0"), change(&bump, "1.0", "1.2")]),
        None
    );
    // The value was removed.
    assert_eq!(
        none(&[change(&revert, "1.1", ""), change(&bump, "1.0", "1.1")]),
        None
    );
}

#[test]
fn a_hold_refuses_the_rolled_back_tag_and_anything_not_newer() {
    let hold = Rollback {
        tag: "1.1".into(),
        to: "1.0".into(),
        sha: "c".repeat(40),
        date: rfc3339(200),
        author: "jane".into(),
    };
    let constraints = Constraints {
        holds: vec![hold.clone()],
        ..Constraints::default()
    };
    for refused in ["1.1", "1.05", "1.0", "latest"] {
        assert_eq!(
            constraints.check(refused, &numeric),
            Err(Refusal::Held(hold.clone())),
            "{refused}"
        );
    }
    assert_eq!(constraints.check("1.2", &numeric), Ok(()));
    assert_eq!(
        Refusal::Held(hold).to_string(),
        "held: rolled back by ccccccc on 1970-01-01T00:03:20Z (1.1 -> 1.0 by jane); waiting for a tag newer than 1.1"
    );
}

fn set(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[test]
fn presence_is_measured_from_the_commit_that_introduced_a_value() {
    // Newest first: at 300 a.yaml went 1.1 -> 1.2; at 200 b.yaml was
    // added with 1.1; at 100 a.yaml went 1.0 -> 1.1; the first commit
    // (50) added a.yaml with 1.0.
    let now = BTreeMap::from([
        ("a.yaml".to_string(), set(&["1.2"])),
        ("b.yaml".to_string(), set(&["1.1"])),
    ]);
    let commits = [
        PathCommit {
            time: 300,
            before: vec![("a.yaml".into(), Some(set(&["1.1"])))],
        },
        PathCommit {
            time: 200,
            before: vec![("b.yaml".into(), None)],
        },
        PathCommit {
            time: 100,
            before: vec![("a.yaml".into(), Some(set(&["1.0"])))],
        },
        PathCommit {
            time: 50,
            before: vec![("a.yaml".into(), None)],
        },
    ];
    let p = presence(&now, &commits, true);
    // 1.1 was continuously somewhere since 100 (a.yaml, then b.yaml).
    assert_eq!(p.since.get("1.1"), Some(&Since::At(100)));
    assert_eq!(p.since.get("1.2"), Some(&Since::At(300)));
    assert_eq!(p.since.get("1.0"), None);
    // Cut after two commits: 1.1 is known only since 200 or earlier.
    let cut = presence(&now, &commits[..2], false);
    assert_eq!(cut.since.get("1.1"), Some(&Since::AtLeast(200)));
    assert_eq!(cut.since.get("1.2"), Some(&Since::At(300)));
}

#[test]
fn a_gate_admits_a_tag_after_its_soak() {
    let gate = Gate::parse(Some("./clusters/staging/"), Some("24h"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (gate.from.as_str(), gate.soak),
        ("clusters/staging", 86_400)
    );
    let presence = Presence {
        since: BTreeMap::from([
            ("1.1".to_string(), Since::At(0)),
            ("1.2".to_string(), Since::At(50_000)),
            ("sha256:aa".to_string(), Since::At(0)),
            ("1.3".to_string(), Since::AtLeast(40_000)),
        ]),
    };
    let constraints = Constraints {
        gate: Some((gate.clone(), Ok(presence))),
        now: 100_000,
        ..Constraints::default()
    };
    let check = |tag| constraints.check(tag, &numeric);
    assert_eq!(check("1.1"), Ok(()));
    assert_eq!(check("1.9@sha256:aa"), Ok(()));
    let Err(refusal) = check("1.2") else {
        panic!("1.2 soaked only 50000s")
    };
    assert_eq!(
        refusal.to_string(),
        "waiting: 1.2 in clusters/staging since 1970-01-01T13:53:20Z, soak 24h, eligible at 1970-01-02T13:53:20Z"
    );
    assert_eq!(
        Hold::from(&refusal).eligible_at.as_deref(),
        Some("1970-01-02T13:53:20Z")
    );
    let cut = check("1.3").unwrap_err();
    assert!(cut.to_string().contains("or earlier"));
    let hold = Hold::from(&cut);
    assert_eq!(
        (hold.since.as_deref(), hold.since_or_earlier),
        (Some("1970-01-01T11:06:40Z"), true)
    );
    assert_eq!(
        (hold.path.as_deref(), hold.soak.as_deref()),
        (Some("clusters/staging"), Some("24h"))
    );
    assert_eq!(
        check("2.0").unwrap_err().to_string(),
        "waiting: 2.0 is not in clusters/staging (promotion gate, soak 24h)"
    );
    let unknown = Constraints {
        gate: Some((gate, Err("not a git repository".into()))),
        ..Constraints::default()
    };
    assert!(
        unknown
            .check("1.1", &numeric)
            .unwrap_err()
            .to_string()
            .ends_with(": not a git repository")
    );
}

/// The greatest number, as a rule would choose.
fn greatest(tags: &[String]) -> Result<String, String> {
    tags.iter()
        .filter(|t| t.parse::<f64>().is_ok())
        .max_by(|a, b| a.parse::<f64>().unwrap().total_cmp(&b.parse().unwrap()))
        .cloned()
        .ok_or_else(|| "no tag".to_string())
}

#[test]
fn a_choice_says_what_was_held_and_what_waits() {
    let tags: Vec<String> = ["1.0", "1.1", "1.2", "1.3", "1.4"]
        .map(String::from)
        .to_vec();
    let gate = Gate::parse(Some("staging"), Some("1h")).unwrap().unwrap();
    let presence = Presence {
        since: BTreeMap::from([
            ("1.1".to_string(), Since::At(0)),
            ("1.2".to_string(), Since::At(0)),
            ("1.3".to_string(), Since::At(9_000)),
        ]),
    };
    let hold = Rollback {
        tag: "1.1".into(),
        to: "1.0".into(),
        sha: "c".repeat(40),
        date: rfc3339(0),
        author: "jane".into(),
    };
    let constraints = Constraints {
        holds: vec![hold.clone()],
        gate: Some((gate, Ok(presence))),
        now: 10_000,
    };
    let choice = choose(&constraints, &tags, &greatest, &numeric);
    assert_eq!(choice.tag, Ok(Some("1.2".to_string())));
    let said: Vec<String> = choice.refused.iter().map(ToString::to_string).collect();
    // The hold refuses only tags below the chosen one: not said.
    assert_eq!(said.len(), 2, "{said:?}");
    assert_eq!(
        said[0],
        "waiting: 1.4 is not in staging (promotion gate, soak 1h)"
    );
    assert!(said[1].starts_with("waiting: 1.3 in staging since"));
    // Nothing newer than the rolled-back tag: held, not an error.
    let held = Constraints {
        holds: vec![hold],
        ..Constraints::default()
    };
    let short = &tags[..2];
    let choice = choose(&held, short, &greatest, &numeric);
    assert_eq!(choice.tag, Ok(None));
    assert_eq!(choice.refused.len(), 1);
    assert!(matches!(choice.refused[0], Refusal::Held(_)));
    // The rule's own failure stays the rule's.
    let none: Vec<String> = vec!["x".into()];
    assert_eq!(
        choose(&held, &none, &greatest, &numeric).tag,
        Err("no tag".into())
    );
    // Without constraints, the rule alone.
    let free = choose(&Constraints::default(), &tags, &greatest, &numeric);
    assert_eq!((free.tag, free.refused), (Ok(Some("1.4".into())), vec![]));
}

#[test]
fn gate_settings_come_in_pairs_and_are_checked() {
    assert_eq!(Gate::parse(None, None), Ok(None));
    assert!(Gate::parse(Some("clusters/staging"), None).is_err());
    assert!(Gate::parse(None, Some("1h")).is_err());
    for bad in ["/abs", "..", "a/../b", ""] {
        assert!(Gate::parse(Some(bad), Some("1h")).is_err(), "{bad}");
    }
    assert_eq!(parse_duration("1h30m"), Ok(5_400));
    assert_eq!(parse_duration("2d"), Ok(172_800));
    assert_eq!(parse_duration("0s"), Ok(0));
    // The longest soak there is waits, rather than wrapping round.
    let gate = Gate::parse(Some("staging"), Some("9223372036854775807s"))
        .unwrap()
        .unwrap();
    let constraints = Constraints {
        gate: Some((
            gate,
            Ok(Presence {
                since: BTreeMap::from([("1.0".to_string(), Since::At(1_000))]),
            }),
        )),
        now: 2_000,
        ..Constraints::default()
    };
    assert!(matches!(
        constraints.check("1.0", &|_: &str, _: &str| false),
        Err(Refusal::Waiting(_))
    ));
    for bad in ["", "24", "h", "1.5h", "1w", "-1h"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}
