use super::*;

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn no_dirs(_: &Path) -> bool {
    false
}

#[test]
fn inputs_keep_hyphens_and_empty_means_unset() {
    let e = env(&[
        ("INPUT_DRY-RUN", "true"),
        ("INPUT_BRANCH", "  "),
        ("INPUT_PATH", ""),
    ]);
    assert_eq!(input(&e, "dry-run"), Some("true"));
    assert_eq!(input(&e, "branch"), None);
    assert_eq!(input(&e, "path"), None);
    assert_eq!(input(&e, "DRY_RUN"), None);
}

#[test]
fn inputs_become_run_arguments() {
    let e = env(&[
        ("GITHUB_WORKSPACE", "/github/workspace"),
        ("INPUT_PATH", "clusters/prod"),
        ("INPUT_DRY-RUN", "false"),
        ("INPUT_COMMIT", "True"),
        ("INPUT_PUSH", "TRUE"),
        ("INPUT_BRANCH", "-odd"),
        ("INPUT_AUTHOR", "Bot <bot@example.com>"),
        ("INPUT_MESSAGE-TEMPLATE", "@.github/message.tmpl"),
        ("INPUT_REGISTRY-SNAPSHOT", "snap.json"),
        ("INPUT_INSECURE-REGISTRIES", "a:5000, b\nc:1\n\n"),
        ("INPUT_DOCKER-CONFIG", "/etc/docker/config.json"),
        ("INPUT_POLICIES", "infra/policies, /abs/flux\n"),
        ("INPUT_DEADLINE", " 120 "),
        ("INPUT_MAX-TAGS", "500"),
        ("INPUT_EXTRA-ARGS", "--include 'apps/**' --diff"),
    ]);
    let plan = plan(&e, &no_dirs).unwrap();
    assert_eq!(
        plan.args,
        [
            "/github/workspace/clusters/prod",
            "--commit",
            "--push",
            "--branch=-odd",
            "--author=Bot <bot@example.com>",
            "--message-template=@/github/workspace/.github/message.tmpl",
            "--registry-snapshot=/github/workspace/snap.json",
            "--insecure-registry=a:5000",
            "--insecure-registry=b",
            "--insecure-registry=c:1",
            "--docker-config=/etc/docker/config.json",
            "--policies=/github/workspace/infra/policies",
            "--policies=/abs/flux",
            "--deadline=120",
            "--max-tags=500",
            "--include",
            "apps/**",
            "--diff",
        ]
    );
    assert_eq!(plan.prefix, "clusters/prod/");
    assert!(plan.secrets.is_empty());
}

#[test]
fn the_registry_cache_lives_in_the_runners_temp_and_extra_args_can_turn_it_off() {
    let e = env(&[
        ("GITHUB_WORKSPACE", "/github/workspace"),
        ("RUNNER_TEMP", "/home/runner/work/_temp"),
        ("INPUT_EXTRA-ARGS", "--no-cache"),
    ]);
    let args = plan(&e, &no_dirs).unwrap().args;
    assert_eq!(
        args[1..],
        [
            "--cache-dir=/home/runner/work/_temp/image-update-cache",
            "--no-cache"
        ]
    );
    // The two may be given together (and then `--no-cache` wins).
    use clap::Parser as _;
    let cli = crate::cli::Cli::try_parse_from(
        ["image-update", "run"]
            .into_iter()
            .chain(args.iter().map(String::as_str)),
    );
    assert!(cli.is_ok(), "{:?}", cli.err());
    // Without a runner directory, the default applies.
    let e = env(&[("GITHUB_WORKSPACE", "/w"), ("RUNNER_TEMP", "relative")]);
    assert!(
        !plan(&e, &no_dirs)
            .unwrap()
            .args
            .iter()
            .any(|a| a.starts_with("--cache-dir"))
    );
}

#[test]
fn a_bad_boolean_is_refused() {
    let e = env(&[("INPUT_DRY-RUN", "yes")]);
    assert!(plan(&e, &no_dirs).unwrap_err().contains("dry-run"));
}

#[test]
fn a_limit_that_is_not_a_whole_number_is_refused() {
    for (name, value) in [("INPUT_DEADLINE", "10m"), ("INPUT_MAX-TAGS", "-1")] {
        let error = plan(&env(&[(name, value)]), &no_dirs).unwrap_err();
        assert!(error.contains(&name[6..].to_ascii_lowercase()), "{error}");
        assert!(error.contains("not a whole number"), "{error}");
    }
}

#[test]
fn the_token_goes_through_the_environment_and_is_masked() {
    let e = env(&[("INPUT_TOKEN", "s3cret"), ("INPUT_PUSH", "true")]);
    let plan = plan(&e, &no_dirs).unwrap();
    assert!(plan.args.contains(&format!("--git-token-env={TOKEN_ENV}")));
    assert!(!plan.args.iter().any(|a| a.contains("s3cret")));
    assert_eq!(plan.env, [(TOKEN_ENV.to_string(), "s3cret".to_string())]);
    assert_eq!(plan.secrets, ["s3cret"]);
}

#[test]
fn the_workspace_and_the_tree_are_safe_directories_after_inherited_entries() {
    let e = env(&[
        ("GITHUB_WORKSPACE", "/github/workspace"),
        ("INPUT_PATH", "./sub/tree/"),
        ("GIT_CONFIG_COUNT", "1"),
    ]);
    let plan = plan(&e, &no_dirs).unwrap();
    let get = |k: &str| {
        plan.env
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("GIT_CONFIG_COUNT"), Some("4"));
    assert_eq!(get("GIT_CONFIG_KEY_0"), None);
    assert_eq!(get("GIT_CONFIG_KEY_1"), Some("safe.directory"));
    assert_eq!(get("GIT_CONFIG_VALUE_1"), Some("/github/workspace"));
    assert_eq!(
        get("GIT_CONFIG_VALUE_2"),
        Some("/github/workspace/sub/tree")
    );
    assert_eq!(get("GIT_CONFIG_VALUE_3"), Some("/github/workspace/sub"));
    assert_eq!(plan.prefix, "sub/tree/");
}

#[test]
fn the_report_goes_to_the_runners_temp_else_into_dot_git() {
    let e = env(&[
        ("GITHUB_WORKSPACE", "/w"),
        ("RUNNER_TEMP", "/home/runner/work/_temp"),
        ("GITHUB_ACTION", "__acme_image-update"),
    ]);
    let all = |_: &Path| true;
    let p = plan(&e, &all).unwrap();
    assert_eq!(
        p.report_output,
        "/home/runner/work/_temp/image-update-report-acme_image-update.json"
    );
    let no_temp = |p: &Path| p == Path::new("/w/.git");
    let p = plan(&e, &no_temp).unwrap();
    assert_eq!(
        p.report_file,
        Path::new("/w/.git/image-update-report-acme_image-update.json")
    );
    assert_eq!(
        p.report_output,
        ".git/image-update-report-acme_image-update.json"
    );
    let mapped = env(&[
        ("GITHUB_WORKSPACE", "/github/workspace"),
        ("RUNNER_TEMP", "/github/runner_temp"),
    ]);
    let p = plan(&mapped, &|p: &Path| p.starts_with("/github/runner_temp")).unwrap();
    assert_eq!(
        p.report_output,
        "/github/runner_temp/image-update-report.json"
    );
    let p = plan(&mapped, &no_dirs).unwrap();
    assert_eq!(
        p.report_file,
        Path::new("/github/workspace/image-update-report.json")
    );
    assert_eq!(p.report_output, "image-update-report.json");
}

#[test]
fn words_split_like_a_shell() {
    let split = |s: &str| split_words(s).unwrap();
    assert_eq!(split(""), Vec::<String>::new());
    assert_eq!(split("  a  b\n c\t"), ["a", "b", "c"]);
    assert_eq!(
        split(r#"--x 'a b' "c \"d\" \$e \n" f\ g"#),
        ["--x", "a b", r#"c "d" $e \n"#, "f g"]
    );
    assert_eq!(split("''"), [""]);
    assert_eq!(split("a\\\nb # comment 'x\nc#d"), ["ab", "c#d"]);
    assert_eq!(split("pre'fix'\"ed\""), ["prefixed"]);
    assert!(split_words("'open").is_err());
    assert!(split_words("\"open").is_err());
    assert!(split_words("end\\").is_err());
}

#[test]
fn escapes_are_the_runners() {
    assert_eq!(escape_data("100% a\r\nb: c, d"), "100%25 a%0D%0Ab: c, d");
    assert_eq!(escape_property("a,b:c%\n"), "a%2Cb%3Ac%25%0A");
}

#[test]
fn delimiters_never_occur_in_the_value() {
    let outputs = vec![
        ("changes", "[\"D1\"]".to_string()),
        ("report", "r".to_string()),
        ("x", "a\nb".to_string()),
    ];
    let mut n = 0;
    let mut next = || {
        n += 1;
        format!("D{n}")
    };
    assert_eq!(
        output_text(&outputs, &mut next),
        "changes<<D2\n[\"D1\"]\nD2\nreport=r\nx<<D3\na\nb\nD3\n"
    );
}

#[test]
fn code_spans_survive_backticks_and_pipes() {
    assert_eq!(code("a|b"), "`a\\|b`");
    assert_eq!(code("a`b"), "``a`b``");
    assert_eq!(code("`x"), "`` `x ``");
    assert_eq!(cell("<a> & *b*\nc"), "&lt;a&gt; &amp; \\*b\\*<br>c");
}

#[test]
fn normalizing_is_lexical() {
    assert_eq!(normalize(Path::new("/a/./b/../c/")), Path::new("/a/c"));
    assert_eq!(normalize(Path::new("./")), Path::new("."));
    assert_eq!(normalize(Path::new("../x")), Path::new("../x"));
    assert_eq!(
        relative_inside(Path::new("/w/a/b"), Path::new("/w")).as_deref(),
        Some("a/b")
    );
    assert_eq!(
        relative_inside(Path::new("/w"), Path::new("/w/")).as_deref(),
        Some("")
    );
    assert_eq!(relative_inside(Path::new("/x"), Path::new("/w")), None);
    assert_eq!(
        relative_inside(Path::new("a/../b"), Path::new(".")).as_deref(),
        Some("b")
    );
    assert_eq!(relative_inside(Path::new("../b"), Path::new(".")), None);
}
