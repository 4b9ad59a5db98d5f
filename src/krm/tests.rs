use super::*;

fn no_live(_: &Settings) -> Result<Box<dyn Registry>, String> {
    Err("no live registry in unit tests".to_string())
}

fn root_of(src: &str) -> Node {
    yaml::parse(src).unwrap().documents.remove(0).root
}

fn info(message: &str) -> FnResult {
    FnResult::general(Severity::Info, message)
}

#[test]
fn config_map_and_own_kind_are_read() {
    let map = root_of(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {registry-snapshot: snap.json, insecure-registries: 'Reg:5000, other'}\n",
    );
    assert_eq!(
        read_config(Some(&map)).unwrap(),
        Settings {
            registry_snapshot: Some("snap.json".into()),
            insecure_registries: vec!["reg:5000".into(), "other".into()],
            ..Settings::default()
        }
    );
    let own = root_of(
        "apiVersion: image-update.dev/v1alpha1\nkind: ImageUpdateConfig\nspec:\n  caFile: ca.pem\n  dockerConfig: d.json\n  insecureRegistries: [a, 'b,c']\n",
    );
    assert_eq!(
        read_config(Some(&own)).unwrap(),
        Settings {
            insecure_registries: vec!["a".into(), "b".into(), "c".into()],
            ca_file: Some("ca.pem".into()),
            docker_config: Some("d.json".into()),
            ..Settings::default()
        }
    );
    assert_eq!(read_config(None).unwrap(), Settings::default());
    let empty = root_of("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
    assert_eq!(read_config(Some(&empty)).unwrap(), Settings::default());
}

#[test]
fn config_refuses_unknown_keys_and_kinds() {
    let typo = root_of("apiVersion: v1\nkind: ConfigMap\ndata:\n  registry-snaphot: s.json\n");
    let e = read_config(Some(&typo)).unwrap_err();
    assert!(e.contains("unknown key \"registry-snaphot\""), "{e}");
    let camel_in_map =
        root_of("apiVersion: v1\nkind: ConfigMap\ndata:\n  registrySnapshot: s.json\n");
    assert!(read_config(Some(&camel_in_map)).is_err());
    let other = root_of("apiVersion: fn.kpt.dev/v1alpha1\nkind: SetNamespace\n");
    let e = read_config(Some(&other)).unwrap_err();
    assert!(e.contains("not supported"), "{e}");
}

#[test]
fn flags_override_the_function_config() {
    let config = Settings {
        registry_snapshot: Some("config.json".into()),
        insecure_registries: vec!["a".into()],
        ca_file: Some("ca.pem".into()),
        docker_config: None,
        policies: vec!["infra".into()],
    };
    let flags = Settings {
        registry_snapshot: Some("flag.json".into()),
        ..Settings::default()
    };
    let merged = flags.over(config.clone());
    assert_eq!(merged.registry_snapshot, Some("flag.json".into()));
    assert_eq!(merged.insecure_registries, vec!["a".to_string()]);
    assert_eq!(merged.ca_file, Some("ca.pem".into()));
    let flags = Settings {
        insecure_registries: vec!["b".into()],
        ..Settings::default()
    };
    assert_eq!(
        flags.over(config).insecure_registries,
        vec!["b".to_string()]
    );
}

#[test]
fn item_files_come_from_annotations() {
    let src = "items:\n- metadata:\n    annotations:\n      config.kubernetes.io/path: './a/b.yaml'\n      config.kubernetes.io/index: '2'\n- metadata:\n    annotations:\n      config.kubernetes.io/path: 'old.yaml'\n      internal.config.kubernetes.io/path: 'new.yaml'\n- kind: X\n";
    let root = root_of(src);
    let items = root.get("items").unwrap().items();
    assert_eq!(item_file(&items[0], 0), "a/b.yaml");
    assert_eq!(annotation(&items[0], &INDEX_ANNOTATIONS), Some("2"));
    assert_eq!(item_file(&items[1], 1), "new.yaml");
    assert_eq!(item_file(&items[2], 2), "item-2");
}

#[test]
fn field_paths_name_keys_and_indexes() {
    let src = "spec:\n  containers:\n  - name: a\n  - name: b\n    image: x:1\nmetadata:\n  annotations:\n    a.b/c: v\n";
    let root = root_of(src);
    let at = |needle: &str| src.find(needle).unwrap();
    assert_eq!(
        field_path(&root, at("x:1")).as_deref(),
        Some("spec.containers[1].image")
    );
    assert_eq!(
        field_path(&root, at("v\n")).as_deref(),
        Some("metadata.annotations[\"a.b/c\"]")
    );
    assert_eq!(field_path(&root, 1), None);
}

#[test]
fn change_messages_show_the_new_tag() {
    let change = |setter, old: &str, new: &str| Change {
        file: "f".into(),
        line: 1,
        policy: crate::policy::PolicyId::new("apps", "web"),
        setter,
        old: old.into(),
        new: new.into(),
        object: Default::default(),
    };
    assert_eq!(
        change_message(&change(
            "image",
            "ghcr.io/acme/web:1.0.0",
            "ghcr.io/acme/web:1.1.0"
        )),
        "ghcr.io/acme/web:1.0.0 -> 1.1.0 (apps:web)"
    );
    assert_eq!(
        change_message(&change(
            "image",
            "ghcr.io/acme/web:1.0.0",
            "ghcr.io/acme/web:1.1.0@sha256:ab"
        )),
        "ghcr.io/acme/web:1.0.0 -> 1.1.0@sha256:ab (apps:web)"
    );
    assert_eq!(
        change_message(&change("image", "old/web:1", "ghcr.io/acme/web:2")),
        "old/web:1 -> ghcr.io/acme/web:2 (apps:web)"
    );
    assert_eq!(
        change_message(&change("tag", "1.0.0", "1.1.0")),
        "1.0.0 -> 1.1.0 (apps:web:tag)"
    );
}

#[test]
fn quoting_escapes_what_readers_could_misread() {
    assert_eq!(double_quoted("a\"b\\c"), r#""a\"b\\c""#);
    assert_eq!(
        double_quoted("x\ny\u{2028}z\u{7}"),
        r#""x\ny\u2028z\u0007""#
    );
    let text = format!("k: {}\n", double_quoted("tab\there \u{85} é"));
    let root = root_of(&text);
    assert_eq!(root.str_at(&["k"]), Some("tab\there \u{85} é"));
}

#[test]
fn results_are_appended_to_a_block_list() {
    let src = "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\n";
    let out = append_results(src, &root_of(src), &[info("one")]).unwrap();
    assert_eq!(
        out,
        format!("{src}results:\n- message: \"one\"\n  severity: info\n")
    );
    // No final line break, CRLF, and a closing `...`.
    let src = "kind: ResourceList\r\nitems: []";
    let out = append_results(src, &root_of(src), &[info("x")]).unwrap();
    assert_eq!(
        out,
        "kind: ResourceList\r\nitems: []\r\nresults:\r\n- message: \"x\"\r\n  severity: info\r\n"
    );
    let src = "kind: ResourceList\nitems: []\n...\n";
    let out = append_results(src, &root_of(src), &[info("x")]).unwrap();
    assert!(out.ends_with("severity: info\n...\n"), "{out}");
    // Nothing to say: nothing changes.
    assert_eq!(append_results(src, &root_of(src), &[]).unwrap(), src);
}

#[test]
fn earlier_results_are_kept() {
    let block = "kind: ResourceList\nresults:\n  - message: earlier\n    severity: warning\n\n  # end\nitems: []\n";
    let out = append_results(block, &root_of(block), &[info("ours")]).unwrap();
    assert_eq!(
        out,
        "kind: ResourceList\nresults:\n  - message: earlier\n    severity: warning\n  - message: \"ours\"\n    severity: info\n\n  # end\nitems: []\n"
    );
    let compact = "kind: ResourceList\nresults:\n- message: earlier\nitems: []\n";
    let out = append_results(compact, &root_of(compact), &[info("ours")]).unwrap();
    assert_eq!(
        out,
        "kind: ResourceList\nresults:\n- message: earlier\n- message: \"ours\"\n  severity: info\nitems: []\n"
    );
    let flow = "kind: ResourceList\nresults: [{message: earlier}] # kept\nitems: []\n";
    let out = append_results(flow, &root_of(flow), &[info("ours")]).unwrap();
    assert_eq!(
        out,
        "kind: ResourceList\nresults: [{message: earlier}, {\"message\": \"ours\", \"severity\": \"info\"}] # kept\nitems: []\n"
    );
    for empty in [
        "results: []\n",
        "results:\n",
        "results: null\n",
        "results: # none\n",
    ] {
        let src = format!("kind: ResourceList\n{empty}items: []\n");
        let out = append_results(&src, &root_of(&src), &[info("ours")]).unwrap();
        let root = root_of(&out);
        let results = root.get("results").unwrap().items();
        assert_eq!(results.len(), 1, "{out}");
        assert_eq!(results[0].str_at(&["message"]), Some("ours"));
        assert_eq!(root.get("items").unwrap().items().len(), 0);
    }
    let scalar = "kind: ResourceList\nresults: oops\n";
    assert!(append_results(scalar, &root_of(scalar), &[info("x")]).is_err());
}

#[test]
fn results_are_added_to_a_json_list() {
    let src = "{\"apiVersion\": \"config.kubernetes.io/v1\", \"kind\": \"ResourceList\", \"items\": [{\"kind\": \"A\"}]}\n";
    let result = FnResult {
        file: Some(FileRef {
            path: "a.yaml".into(),
            index: Some(0),
        }),
        ..info("one")
    };
    let out = append_results(src, &root_of(src), &[result]).unwrap();
    assert_eq!(
        out,
        "{\"apiVersion\": \"config.kubernetes.io/v1\", \"kind\": \"ResourceList\", \"items\": [{\"kind\": \"A\"}], \"results\": [{\"message\": \"one\", \"severity\": \"info\", \"file\": {\"path\": \"a.yaml\", \"index\": 0}}]}\n"
    );
    serde_json::from_str::<serde_json::Value>(&out).expect("still JSON");
}

#[test]
fn the_input_must_be_one_resource_list() {
    let flags = Settings::default();
    for bad in [
        "",
        "kind: ConfigMap\n",
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\n---\nkind: X\n",
        "a: [\n",
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: 3\n",
    ] {
        assert!(process(bad, &flags, &no_live).is_err(), "{bad:?}");
    }
}

#[test]
fn a_bad_function_config_is_an_error_result_and_changes_nothing() {
    let src = "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n- kind: A\n  image: a:1 # {\"$imagepolicy\": \"ns:p\"}\nfunctionConfig:\n  apiVersion: v1\n  kind: ConfigMap\n  data: {snapshot: x}\n";
    let done = process(src, &Settings::default(), &no_live).unwrap();
    assert!(done.failed());
    assert!(done.output.starts_with(src));
    assert!(done.results[0].message.contains("unknown key \"snapshot\""));
    // Without a snapshot the live registry is asked for; it may fail too.
    let src = "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\n";
    let done = process(src, &Settings::default(), &no_live).unwrap();
    assert_eq!(done.results[0].message, "no live registry in unit tests");
}

#[test]
fn problems_map_to_the_item_that_holds_them() {
    let src =
        "kind: ResourceList\nitems:\n- kind: A\n  x: 1\n- kind: B\n  y: 2\nfunctionConfig: {}\n";
    let root = root_of(src);
    let lines = Lines::new(src);
    let items = read_items(src, &lines, &root).unwrap();
    assert_eq!(items.items.len(), 2);
    assert_eq!(items.at(src.find("x: 1").unwrap()), Some(0));
    assert_eq!(items.at(src.find("y: 2").unwrap()), Some(1));
    assert_eq!(items.at(src.find("functionConfig").unwrap()), None);
    assert_eq!(items.at(0), None);
    let p = Problem::at("item-1", 5, None, Severity::Error, "x");
    assert_eq!(items.of_problem(&lines, &p), Some(1));
    let p = Problem::at("item-0", 4, Some(5), Severity::Error, "x");
    assert_eq!(items.of_problem(&lines, &p), Some(0));
}
