//! `image-update fn`, the KRM function mode, tested through the real binary:
//! first fed ResourceLists directly (what any orchestrator sends), then run
//! by the real orchestrators, `kpt` and `kubectl kustomize`, whose own
//! behaviour (reformatting, `--allow-exec`, `.krmignore`, what kustomize
//! cannot do) decides what users can rely on. Those tests need the tools
//! installed, and say loudly, naming what to install, when they are missing.
//!
//! Fixtures are in `testdata/krm/` (see its README). `UPDATE_FIXTURES=1`
//! rewrites `resourcelist.expected.yaml` from the current behaviour.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image_update::yaml::{self, Node};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_image-update"))
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/krm")
}

fn snapshot() -> PathBuf {
    testdata().join("snapshot.json")
}

/// Runs `image-update fn ARGS` in `dir` with `input` on standard input.
fn run_fn(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut command = Command::new(bin());
    command
        .arg("fn")
        .args(args)
        // No registry cache: every run starts cold, whatever the user's ~/.cache holds.
        .env("XDG_CACHE_HOME", "/dev/null")
        .current_dir(dir);
    support::output_with_stdin(&mut command, input)
}

/// What a function that changed something says about rollback holds: it
/// has no history to find them in.
const NO_HOLDS: &str =
    "rollback holds not checked: a KRM function gets only the ResourceList, not the git history";

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn root(src: &str) -> Node {
    yaml::parse(src)
        .unwrap_or_else(|e| panic!("not YAML ({e}):\n{src}"))
        .documents
        .remove(0)
        .root
}

/// A result entry as plain strings: `message`, `severity`, `resourceRef.kind`,
/// `file.path`, `field.path`, `tags.new`, ...
fn results(list: &Node) -> Vec<BTreeMap<String, String>> {
    list.get("results")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let mut flat = BTreeMap::new();
            for (key, value) in r.entries() {
                let key = key.as_str().unwrap_or_default();
                match value {
                    Node::Mapping(..) => {
                        for (k, v) in value.entries() {
                            flat.insert(
                                format!("{key}.{}", k.as_str().unwrap_or_default()),
                                v.as_str().unwrap_or_default().to_string(),
                            );
                        }
                    }
                    v => {
                        flat.insert(key.to_string(), v.as_str().unwrap_or_default().to_string());
                    }
                }
            }
            flat
        })
        .collect()
}

/// A minimal ResourceList around `items` (block YAML, already indented as
/// sequence items) and an optional `functionConfig` block.
fn resource_list(items: &str, function_config: &str) -> String {
    format!(
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n{items}{function_config}"
    )
}

const WEB_POLICY: &str = "- apiVersion: image.toolkit.fluxcd.io/v1
  kind: ImageRepository
  metadata: {name: web, namespace: flux-system}
  spec: {image: ghcr.io/acme/web}
- apiVersion: image.toolkit.fluxcd.io/v1
  kind: ImagePolicy
  metadata:
    name: web
    namespace: flux-system
    annotations:
      config.kubernetes.io/path: 'policies.yaml'
      config.kubernetes.io/index: '1'
  spec:
    imageRepositoryRef: {name: web}
    policy: {semver: {range: ^1.0}}
";

const WEB_DEPLOYMENT: &str = "- apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: web
    namespace: apps
    annotations:
      config.kubernetes.io/path: 'apps/web.yaml'
      config.kubernetes.io/index: '0'
  spec:
    template:
      spec:
        containers:
        - name: web
          image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"flux-system:web\"}
";

/// The annotations of every item, in order.
fn annotations(list: &Node) -> Vec<Vec<(String, String)>> {
    list.get("items")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .map(|item| {
            item.at(&["metadata", "annotations"])
                .map(Node::entries)
                .unwrap_or_default()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap_or_default().to_string(),
                        v.as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .collect()
}

#[test]
fn only_the_marked_scalars_change_and_results_are_appended() {
    let input = fs::read_to_string(testdata().join("resourcelist.yaml")).unwrap();
    // The functionConfig names `snapshot.json`, relative to the working directory.
    let out = run_fn(&testdata(), &[], &input);
    let output = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let expected_path = testdata().join("resourcelist.expected.yaml");
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        fs::write(&expected_path, &output).unwrap();
    }
    assert_eq!(output, fs::read_to_string(&expected_path).unwrap());

    // Line by line: the input's lines come first, and a line differs only
    // where a marker is, by the value the results say changed.
    let list = root(&output);
    let found = results(&list);
    let swaps: Vec<(String, String)> = found
        .iter()
        .filter(|r| r["severity"] == "info" && r.contains_key("tags.old"))
        .map(|r| (r["tags.old"].clone(), r["tags.new"].clone()))
        .collect();
    assert_eq!(swaps.len(), 6, "{found:#?}");
    let (inputs, outputs): (Vec<&str>, Vec<&str>) =
        (input.lines().collect(), output.lines().collect());
    let mut changed = 0;
    for (i, (before, after)) in inputs.iter().zip(&outputs).enumerate() {
        if before == after {
            continue;
        }
        changed += 1;
        let marked = before.contains("$imagepolicy")
            || inputs[i - 1]
                .trim_start()
                .starts_with("# {\"$imagepolicy\"");
        assert!(marked, "line {} changed without a marker: {before}", i + 1);
        assert!(
            swaps
                .iter()
                .any(|(old, new)| before.replacen(old.as_str(), new, 1) == *after),
            "line {} is not a marker's old value replaced by its new one:\n{before}\n{after}",
            i + 1
        );
    }
    assert_eq!(changed, 6);
    assert_eq!(outputs[inputs.len()], "results:");

    // The orchestrator's annotations are all still there, unchanged.
    assert_eq!(annotations(&list), annotations(&root(&input)));
    let web = found
        .iter()
        .find(|r| r["message"] == "ghcr.io/acme/web:1.0.0 -> 1.1.0 (flux-system:web)")
        .expect("the web change is reported");
    assert_eq!(web["resourceRef.kind"], "Deployment");
    assert_eq!(web["resourceRef.name"], "web");
    assert_eq!(web["resourceRef.namespace"], "apps");
    assert_eq!(web["file.path"], "apps/web.yaml");
    assert_eq!(web["file.index"], "0");
    assert_eq!(web["field.path"], "spec.template.spec.containers[0].image");
    let tag = found
        .iter()
        .find(|r| r.get("field.path").is_some_and(|p| p == "data.web-tag"))
        .unwrap();
    assert_eq!(tag["file.index"], "1", "second document of apps/web.yaml");

    // A second pass over the output has nothing more to change.
    let again = run_fn(&testdata(), &[], &output);
    let again_results = results(&root(&text(&again.stdout)));
    assert_eq!(
        again_results.len(),
        found.len() + 2,
        "only the two warnings are new"
    );
}

#[test]
fn a_malformed_marker_is_reported_in_the_results() {
    let items = format!(
        "{WEB_POLICY}{}",
        WEB_DEPLOYMENT.replace("\"flux-system:web\"}", "\"web\"}")
    );
    let input = resource_list(&items, "");
    assert!(input.contains("{\"$imagepolicy\": \"web\"}"), "{input}");
    let snapshot = snapshot();
    let out = run_fn(
        &testdata(),
        &["--registry-snapshot", snapshot.to_str().unwrap()],
        &input,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let output = text(&out.stdout);
    assert!(output.starts_with(&input), "nothing changed in the items");
    let found = results(&root(&output));
    assert_eq!(found.len(), 1, "{found:#?}");
    let r = &found[0];
    assert_eq!(r["severity"], "warning");
    assert!(
        r["message"].contains("names no namespace"),
        "{}",
        r["message"]
    );
    assert!(
        r["message"].contains("{\"$imagepolicy\": \"web\"}"),
        "{}",
        r["message"]
    );
    assert_eq!(r["resourceRef.kind"], "Deployment");
    assert_eq!(r["file.path"], "apps/web.yaml");
    assert_eq!(r["field.path"], "spec.template.spec.containers[0].image");
}

#[test]
fn a_failed_policy_is_an_error_and_exits_1() {
    // Another policy still works: its change is made, and reported after
    // the error (kpt shows only the first results, and writes nothing back
    // when the function fails).
    let redis = "- apiVersion: image.toolkit.fluxcd.io/v1
  kind: ImageRepository
  metadata: {name: redis, namespace: flux-system}
  spec: {image: redis}
- apiVersion: image.toolkit.fluxcd.io/v1
  kind: ImagePolicy
  metadata: {name: redis, namespace: flux-system}
  spec: {imageRepositoryRef: {name: redis}, policy: {alphabetical: {}}}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: redis}
  data:
    tag: 7.2.3-alpine # {\"$imagepolicy\": \"flux-system:redis:tag\"}
";
    let items = format!(
        "{redis}{}{WEB_DEPLOYMENT}",
        WEB_POLICY.replace("ghcr.io/acme/web}", "ghcr.io/acme/missing}")
    );
    let input = resource_list(&items, "");
    let snapshot = snapshot();
    let out = run_fn(
        &testdata(),
        &["--registry-snapshot", snapshot.to_str().unwrap()],
        &input,
    );
    assert_eq!(out.status.code(), Some(1));
    let output = text(&out.stdout);
    let updated = input.replace("tag: 7.2.3-alpine #", "tag: 7.4.0-alpine #");
    assert!(
        output.starts_with(&updated),
        "the web marker is left as it was"
    );
    let found = results(&root(&output));
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_eq!(found[0]["severity"], "error");
    assert_eq!(found[1]["message"], NO_HOLDS);
    assert_eq!(
        found[2]["message"],
        "7.2.3-alpine -> 7.4.0-alpine (flux-system:redis:tag)"
    );
    let errors: Vec<_> = found.iter().filter(|r| r["severity"] == "error").collect();
    assert_eq!(errors.len(), 1, "{found:#?}");
    assert!(errors[0]["message"].starts_with("ImagePolicy flux-system:web (ghcr.io/acme/missing"));
    assert_eq!(errors[0]["resourceRef.kind"], "ImagePolicy");
    assert_eq!(errors[0]["resourceRef.namespace"], "flux-system");
    assert_eq!(errors[0]["file.path"], "policies.yaml");
    assert_eq!(errors[0]["file.index"], "1");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("error: policies.yaml: ImagePolicy flux-system:web"),
        "{stderr}"
    );
}

#[test]
fn flags_override_the_function_config() {
    let config = "functionConfig:
  apiVersion: image-update.dev/v1alpha1
  kind: ImageUpdateConfig
  metadata: {name: image-update}
  spec:
    registrySnapshot: no-such-snapshot.json
";
    let input = resource_list(&format!("{WEB_POLICY}{WEB_DEPLOYMENT}"), config);
    let out = run_fn(&testdata(), &[], &input);
    assert_eq!(out.status.code(), Some(1));
    let found = results(&root(&text(&out.stdout)));
    assert!(
        found[0]["message"].contains("cannot read registry snapshot no-such-snapshot.json"),
        "{found:#?}"
    );
    let snapshot = snapshot();
    let out = run_fn(
        &testdata(),
        &["--registry-snapshot", snapshot.to_str().unwrap()],
        &input,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("image: ghcr.io/acme/web:1.1.0 # {"));

    // A misspelt key is an error, not a silent trip to the live registries.
    let typo = "functionConfig:\n  apiVersion: v1\n  kind: ConfigMap\n  data: {registry-snaphot: snapshot.json}\n";
    let input = resource_list(WEB_DEPLOYMENT, typo);
    let out = run_fn(&testdata(), &[], &input);
    assert_eq!(out.status.code(), Some(1));
    let found = results(&root(&text(&out.stdout)));
    assert!(
        found[0]["message"].contains("unknown key \"registry-snaphot\""),
        "{found:#?}"
    );
}

#[test]
fn without_a_snapshot_the_live_registries_are_asked() {
    // A port nothing listens on: the attempt fails at once, and its message
    // shows which scheme the live client used.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let items = WEB_POLICY.replace("ghcr.io/acme/web}", &format!("{host}/acme/web}}"));
    let config = format!(
        "functionConfig:\n  apiVersion: v1\n  kind: ConfigMap\n  data: {{insecure-registries: '{host}'}}\n"
    );
    let input = resource_list(&items, &config);
    let failure = |args: &[&str]| {
        let out = run_fn(&testdata(), args, &input);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let found = results(&root(&text(&out.stdout)));
        found[0]["message"].clone()
    };
    let plain = failure(&["--retries", "0"]);
    assert!(plain.contains(&format!("http://{host}")), "{plain}");
    // The flag replaces the functionConfig's list.
    let tls = failure(&["--retries", "0", "--insecure-registry", "elsewhere:5000"]);
    assert!(tls.contains(&format!("https://{host}")), "{tls}");
}

#[test]
fn nothing_to_do_leaves_the_list_byte_identical() {
    let deployment = WEB_DEPLOYMENT.replace("1.0.0", "1.1.0");
    let input = resource_list(&format!("{WEB_POLICY}{deployment}"), "");
    let snapshot = snapshot();
    let out = run_fn(
        &testdata(),
        &["--registry-snapshot", snapshot.to_str().unwrap()],
        &input,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), input);
}

#[test]
fn earlier_results_are_kept_and_ours_follow() {
    let earlier = "results:\n- message: from an earlier function\n  severity: warning\n";
    let input = format!(
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\n{earlier}items:\n{WEB_POLICY}{WEB_DEPLOYMENT}"
    );
    let snapshot = snapshot();
    let out = run_fn(
        &testdata(),
        &["--registry-snapshot", snapshot.to_str().unwrap()],
        &input,
    );
    // An earlier function's error is not ours: only our results decide the exit.
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let output = text(&out.stdout);
    let found = results(&root(&output));
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_eq!(found[0]["message"], "from an earlier function");
    assert_eq!(found[1]["message"], NO_HOLDS);
    assert_eq!(found[2]["severity"], "info");
    assert!(output.starts_with(&format!(
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\n{earlier}- message: \"{NO_HOLDS}\"\n  severity: info\n- message: \"ghcr.io/acme/web:1.0.0 -> 1.1.0"
    )));
}

#[test]
fn a_json_resource_list_gets_json_results() {
    let input = r#"{"apiVersion": "config.kubernetes.io/v1", "kind": "ResourceList", "items": [
  {"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImageRepository", "metadata": {"name": "web", "namespace": "flux-system"}, "spec": {"image": "ghcr.io/acme/web"}},
  {"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImagePolicy", "metadata": {"name": "web", "namespace": "flux-system"}, "spec": {"imageRepositoryRef": {"name": "web"}, "policy": {"semver": {"range": "^1.0"}}}},
  {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
   "data": {"tag": "1.0.0", "image": "ghcr.io/acme/web:1.0.0"}}
]}
"#;
    // JSON has no comments, hence no markers: the policies are read, and a
    // policy that fails is still reported in JSON.
    let snapshot = snapshot();
    let out = run_fn(
        &testdata(),
        &["--registry-snapshot", snapshot.to_str().unwrap()],
        input,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), input, "nothing to say, nothing added");
    let failing = input.replace("^1.0", "^9.0");
    let out = run_fn(
        &testdata(),
        &["--registry-snapshot", snapshot.to_str().unwrap()],
        &failing,
    );
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("still JSON");
    assert_eq!(json["results"][0]["severity"], "error");
    assert_eq!(json["results"][0]["resourceRef"]["kind"], "ImagePolicy");
    assert_eq!(json["items"].as_array().unwrap().len(), 3);
}

#[test]
fn input_that_is_no_resource_list_exits_2() {
    for input in ["apiVersion: v1\nkind: ConfigMap\n", "items: [\n", ""] {
        let out = run_fn(&testdata(), &[], input);
        assert_eq!(out.status.code(), Some(2), "{input:?}");
        assert!(out.stdout.is_empty());
        assert!(text(&out.stderr).starts_with("image-update fn: "));
    }
}

/// Issue 18.6: `fn` refused documents nested deeper than about 128 levels
/// that `run` reads from a file. A document `run` accepts is accepted as an
/// item too, and one nested deeper is refused with the limit named.
#[test]
fn fn_reads_documents_as_deep_as_the_file_reader() {
    // Block sequences under `data.x`, one per line (the full parser's path).
    let nested = |depth: usize, indent: usize| {
        let mut text = format!(
            "{0}apiVersion: v1\n{0}kind: ConfigMap\n{0}metadata: {{name: deep}}\n{0}data:\n{0}  x:\n",
            " ".repeat(indent)
        );
        for level in 0..depth {
            text.push_str(&" ".repeat(indent + 4 + 2 * level));
            text.push_str("-\n");
        }
        text + &" ".repeat(indent + 4 + 2 * depth) + "leaf\n"
    };
    let deepest = (1..400)
        .take_while(|d| image_update::yaml::parse(&nested(*d, 0)).is_ok())
        .last()
        .unwrap();
    assert!(deepest > 200, "{deepest}");
    let item = |depth: usize| {
        let text = nested(depth, 2);
        format!("- {}", &text[2..])
    };
    let out = run_fn(&testdata(), &[], &resource_list(&item(deepest), ""));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run_fn(&testdata(), &[], &resource_list(&item(deepest + 1), ""));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!(
            "nested more than {} levels deep",
            image_update::yaml::MAX_NESTING
        )),
        "{}",
        text(&out.stderr)
    );
}

// ---- real orchestrators -------------------------------------------------

/// The path of a tool the test drives (overridable with the environment
/// variable `var`). When it is not on the machine the test cannot run: it says
/// so loudly, naming what to install, and is skipped. kpt and kubectl come from
/// no package registry this project's machines can reach, so a missing one
/// must not turn the whole suite red; a broken one still fails the test.
fn require(name: &str, var: &str, probe: &[&str], install: &str) -> Option<PathBuf> {
    let program = std::env::var_os(var).map_or_else(|| PathBuf::from(name), PathBuf::from);
    match Command::new(&program).args(probe).output() {
        Ok(out) if out.status.success() => Some(program),
        Ok(out) => panic!(
            "`{} {}` failed ({}): {}\nThis test needs a working {name}: {install} (or set {var}=/path/to/{name}).",
            program.display(),
            probe.join(" "),
            out.status,
            text(&out.stderr)
        ),
        Err(e) => {
            eprintln!(
                "SKIPPED: {name} is not on this machine ({e}); install it to run this test: {install} (or set {var}=/path/to/{name})."
            );
            None
        }
    }
}

fn kpt() -> Option<PathBuf> {
    require(
        "kpt",
        "KPT",
        &["version"],
        "kpt v1 from https://kpt.dev/installation/kpt-cli (a single static binary)",
    )
}

fn kubectl() -> Option<PathBuf> {
    require(
        "kubectl",
        "KUBECTL",
        &["version", "--client"],
        "kubectl from https://kubernetes.io/docs/tasks/tools/ (it bundles kustomize)",
    )
}

/// Copies the fixture package into a fresh directory.
fn package() -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("package");
    let from = testdata().join("package");
    for entry in walkdir::WalkDir::new(&from) {
        let entry = entry.unwrap();
        let to = dir.join(entry.path().strip_prefix(&from).unwrap());
        if entry.file_type().is_dir() {
            fs::create_dir_all(&to).unwrap();
        } else {
            fs::copy(entry.path(), &to).unwrap();
        }
    }
    (work, dir)
}

/// `s` single-quoted for a POSIX shell (and for kpt's `--exec` splitting).
fn sh_quote(s: impl AsRef<std::ffi::OsStr>) -> String {
    let s = s.as_ref().to_string_lossy();
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// An executable script `path` that runs `image-update fn ARGS "$@"`.
fn wrapper(path: &Path, args: &[&str]) {
    let mut script = format!("#!/bin/sh\nexec {} fn", sh_quote(bin()));
    for arg in args {
        script.push(' ');
        script.push_str(&sh_quote(arg));
    }
    script.push_str(" \"$@\"\n");
    fs::write(path, script).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Every marked value of the YAML files under `dir`: file → [(line's setter, value)].
fn marked_values(dir: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    let mut values = BTreeMap::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry
            .path()
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if !entry.file_type().is_file() || !rel.ends_with(".yaml") {
            continue;
        }
        let src = fs::read_to_string(entry.path()).unwrap();
        let stream = yaml::parse(&src).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let found = image_update::marker::find(&src, &stream);
        let markers: Vec<(String, String)> = found
            .markers
            .iter()
            .map(|m| (m.setter.to_string(), m.scalar.value.clone()))
            .collect();
        if !markers.is_empty() {
            values.insert(rel, markers);
        }
    }
    values
}

fn value<'a>(
    values: &'a BTreeMap<String, Vec<(String, String)>>,
    file: &str,
    setter: &str,
) -> Vec<&'a str> {
    values[file]
        .iter()
        .filter(|(s, _)| s == setter)
        .map(|(_, v)| v.as_str())
        .collect()
}

const WORKER_NEW: &str = "ghcr.io/acme/worker:2024.06.20@sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// The values the fixture package must hold after an update.
fn assert_updated(dir: &Path) {
    let values = marked_values(dir);
    assert_eq!(
        value(&values, "apps/web.yaml", "flux-system:web"),
        ["ghcr.io/acme/web:1.1.0"]
    );
    assert_eq!(
        value(&values, "apps/web.yaml", "flux-system:web:tag"),
        ["1.1.0"]
    );
    assert_eq!(
        value(&values, "apps/web.yaml", "flux-system:worker"),
        [WORKER_NEW]
    );
    assert_eq!(
        value(&values, "apps/web.yaml", "flux-system:worker:tag"),
        ["2024.06.20"]
    );
    assert_eq!(
        value(&values, "apps/web.yaml", "flux-system:worker:digest"),
        ["sha256:2222222222222222222222222222222222222222222222222222222222222222"]
    );
    assert_eq!(
        value(&values, "apps/redis.yaml", "flux-system:redis:tag"),
        ["7.2.5-alpine"]
    );
    assert_eq!(
        value(&values, "apps/redis.yaml", "flux-system:redis:name"),
        ["redis"]
    );
    // Outside the automation's update.path: untouched.
    assert_eq!(
        value(&values, "infrastructure/edge.yaml", "flux-system:web"),
        ["ghcr.io/acme/web:1.0.0"]
    );
}

fn run_tool(command: &mut Command) -> Output {
    let out = command.output().unwrap();
    eprintln!(
        "{command:?}: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

#[test]
fn kpt_fn_eval_updates_the_package_in_place() {
    let Some(kpt) = kpt() else { return };
    let (work, dir) = package();
    // The wrapper lives outside the package: kpt reads every *.yaml in it.
    let fn_sh = work.path().join("image-update-fn.sh");
    wrapper(&fn_sh, &[]);
    let results_dir = work.path().join("results");
    // `-- key=value` becomes a ConfigMap functionConfig.
    let out = run_tool(
        Command::new(&kpt)
            .args(["fn", "eval"])
            .arg(&dir)
            .arg("--exec")
            .arg(&fn_sh)
            .arg("--results-dir")
            .arg(&results_dir)
            .arg("--")
            .arg(format!("registry-snapshot={}", snapshot().display())),
    );
    assert!(out.status.success());
    assert_updated(&dir);
    // The file kpt wrote back still has its comments and both documents.
    let web = fs::read_to_string(dir.join("apps/web.yaml")).unwrap();
    assert!(web.starts_with("# The web application"), "{web}");
    assert!(web.contains("\n---\n"));
    assert!(
        !web.contains("config.kubernetes.io"),
        "kpt strips its annotations: {web}"
    );
    // kpt keeps the function's results.
    let report = fs::read_to_string(results_dir.join("results.yaml")).unwrap();
    assert!(
        report.contains("ghcr.io/acme/web:1.0.0 -> 1.1.0 (flux-system:web)"),
        "{report}"
    );
    assert!(report.contains("path: apps/web.yaml"), "{report}");
    assert!(report.contains("severity: warning"), "{report}");
}

#[test]
fn kpt_fn_render_runs_an_exec_mutator_from_the_kptfile() {
    let Some(kpt) = kpt() else { return };
    let (_work, dir) = package();
    wrapper(&dir.join("image-update-fn.sh"), &[]);
    fs::write(
        dir.join("Kptfile"),
        format!(
            "apiVersion: kpt.dev/v1
kind: Kptfile
metadata:
  name: package
pipeline:
  mutators:
    - exec: ./image-update-fn.sh
      configMap:
        registry-snapshot: {}
",
            snapshot().display()
        ),
    )
    .unwrap();
    // Argo CD's parameter overrides are YAML, but not KRM resources.
    fs::write(
        dir.join(".argocd-source-web.yaml"),
        "helm:\n  parameters:\n  - name: image.tag\n    value: 1.0.0\n",
    )
    .unwrap();
    let render = |allow_exec: bool| {
        let mut command = Command::new(&kpt);
        // kpt resolves a relative `exec:` against its working directory,
        // not the package: run it from the package.
        command.args(["fn", "render", "."]).current_dir(&dir);
        if allow_exec {
            command.arg("--allow-exec");
        }
        run_tool(&mut command)
    };

    let out = render(false);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--allow-exec"),
        "kpt refuses exec without the flag"
    );

    let out = render(true);
    assert!(
        !out.status.success(),
        "a non-KRM YAML file in the package stops kpt"
    );
    assert!(text(&out.stderr).contains(".argocd-source-web.yaml"));
    assert_eq!(
        value(&marked_values(&dir), "apps/web.yaml", "flux-system:web"),
        ["ghcr.io/acme/web:1.0.0"]
    );

    fs::write(dir.join(".krmignore"), ".argocd-source-*.yaml\n").unwrap();
    let out = render(true);
    assert!(out.status.success());
    assert_updated(&dir);
    let argo = fs::read_to_string(dir.join(".argocd-source-web.yaml")).unwrap();
    assert!(
        argo.contains("value: 1.0.0"),
        "ignored files are left alone"
    );
}

#[test]
fn run_and_the_krm_function_make_the_same_changes() {
    let Some(kpt) = kpt() else { return };
    let (_a, by_run) = package();
    let (work, by_fn) = package();
    let snapshot = snapshot();

    let out = run_tool(
        Command::new(bin())
            .arg("run")
            .arg(&by_run)
            .arg("--registry-snapshot")
            .arg(&snapshot)
            .args(["--output", "json"]),
    );
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    // The flag form: kpt splits the command line as a shell would.
    let exec = format!(
        "{} fn --registry-snapshot {}",
        sh_quote(bin()),
        sh_quote(&snapshot)
    );
    let results_dir = work.path().join("results");
    let out = run_tool(
        Command::new(&kpt)
            .args(["fn", "eval"])
            .arg(&by_fn)
            .args(["--exec", &exec])
            .arg("--results-dir")
            .arg(&results_dir),
    );
    assert!(out.status.success());

    // The same values in every file...
    assert_eq!(marked_values(&by_run), marked_values(&by_fn));
    assert_updated(&by_fn);

    // ... and the same changes and problems reported.
    let run_changes: BTreeSet<(String, String, String, String)> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let setter = c["setter"].as_str().unwrap();
            let policy = c["policy"].as_str().unwrap();
            (
                c["file"].as_str().unwrap().to_string(),
                if setter == "image" {
                    policy.to_string()
                } else {
                    format!("{policy}:{setter}")
                },
                c["old"].as_str().unwrap().to_string(),
                c["new"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let run_problems: BTreeSet<String> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["message"].as_str().unwrap().to_string())
        .collect();
    let kpt_results = root(&fs::read_to_string(results_dir.join("results.yaml")).unwrap());
    let items = kpt_results.get("items").unwrap().items();
    assert_eq!(items.len(), 1);
    let found = results(&items[0]);
    let fn_changes: BTreeSet<(String, String, String, String)> = found
        .iter()
        .filter(|r| r["severity"] == "info" && r.contains_key("tags.old"))
        .map(|r| {
            let setter = &r["tags.setter"];
            let policy = &r["tags.policy"];
            (
                r["file.path"].clone(),
                if setter == "image" {
                    policy.clone()
                } else {
                    format!("{policy}:{setter}")
                },
                r["tags.old"].clone(),
                r["tags.new"].clone(),
            )
        })
        .collect();
    let fn_problems: BTreeSet<String> = found
        .iter()
        .filter(|r| r["severity"] != "info")
        .map(|r| r["message"].clone())
        .collect();
    assert_eq!(run_changes.len(), 6);
    assert_eq!(run_changes, fn_changes);
    assert_eq!(run_problems, fn_problems);
}

/// kustomize runs KRM functions (`transformers:` with a
/// `config.kubernetes.io/function` annotation), but `kubectl kustomize` has
/// no `--enable-exec` and silently skips `exec:` functions, and kustomize
/// drops every comment (so every marker) before a transformer sees the
/// resources. This test pins that down with the installed kubectl, so the
/// README's warning stays true; should kubectl ever accept `--enable-exec`,
/// it requires the function to work through it, or fails saying why.
#[test]
fn kubectl_kustomize_and_exec_functions() {
    let Some(kubectl) = kubectl() else { return };
    let (work, dir) = package();
    let ran = work.path().join("function-ran");
    let seen = work.path().join("function-input.yaml");
    fs::write(
        dir.join("image-update-fn.sh"),
        format!(
            "#!/bin/sh\ntouch {}\ntee {} | {} fn --registry-snapshot {}\n",
            sh_quote(&ran),
            sh_quote(&seen),
            sh_quote(bin()),
            sh_quote(snapshot())
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(
            dir.join("image-update-fn.sh"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    fs::write(
        dir.join("image-update.yaml"),
        "apiVersion: image-update.dev/v1alpha1
kind: ImageUpdateConfig
metadata:
  name: image-update
  annotations:
    config.kubernetes.io/function: |
      exec:
        path: ./image-update-fn.sh
spec: {}
",
    )
    .unwrap();
    fs::write(
        dir.join("kustomization.yaml"),
        "resources:
- flux-system/image-automation.yaml
- flux-system/image-policies.yaml
- apps/web.yaml
transformers:
- image-update.yaml
",
    )
    .unwrap();

    let build = |flags: &[&str]| {
        run_tool(
            Command::new(&kubectl)
                .arg("kustomize")
                .args(flags)
                .arg(&dir),
        )
    };
    let out = build(&["--enable-alpha-plugins", "--enable-exec"]);
    if out.status.success() {
        // A kubectl that runs exec functions: the function must do its job.
        assert!(
            ran.exists(),
            "kubectl accepted --enable-exec but never ran the function"
        );
        let built = text(&out.stdout);
        let input = fs::read_to_string(&seen).unwrap_or_default();
        assert!(
            built.contains("image: ghcr.io/acme/web:1.1.0"),
            "kubectl kustomize ran the function, but the image was not updated; \
             markers reached it: {} (kustomize drops comments before transformers)\n{built}",
            input.contains("$imagepolicy")
        );
        return;
    }
    // Today's kubectl: no --enable-exec ...
    assert!(
        text(&out.stderr).contains("unknown flag: --enable-exec"),
        "kubectl kustomize failed for another reason"
    );
    // ... and without it the exec function is skipped without a word.
    let out = build(&["--enable-alpha-plugins"]);
    assert!(out.status.success());
    assert!(
        !ran.exists(),
        "kubectl kustomize now runs exec functions: revisit this test and the README"
    );
    let built = text(&out.stdout);
    assert!(built.contains("image: ghcr.io/acme/web:1.0.0"), "{built}");
    assert!(
        !built.contains("$imagepolicy"),
        "kustomize drops the marker comments: {built}"
    );
}

#[test]
fn items_are_updated_even_when_results_cannot_be_appended() {
    // After `...` and a trailing comment there is no place for a `results`
    // key; the updated items must still come out.
    let input = "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n- apiVersion: image.toolkit.fluxcd.io/v1\n  kind: ImageRepository\n  metadata: {name: web, namespace: apps}\n  spec: {image: ghcr.io/acme/web}\n- apiVersion: image.toolkit.fluxcd.io/v1\n  kind: ImagePolicy\n  metadata: {name: web, namespace: apps}\n  spec: {imageRepositoryRef: {name: web}, policy: {semver: {range: 1.x}}}\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: web, namespace: apps}\n  spec:\n    image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\n...\n# trailing\n";
    let out = run_fn(
        &testdata(),
        &["--registry-snapshot", snapshot().to_str().unwrap()],
        input,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("ghcr.io/acme/web:1.0.0"), "{stdout}");
    assert!(stdout.contains("ghcr.io/acme/web:1."), "{stdout}");
    assert!(
        text(&out.stderr).contains("results could not be added"),
        "{}",
        text(&out.stderr)
    );
}

/// Issue 11.6 in `fn`: a marker whose policy is not among the items is a
/// warning (exit 0); `policies` (flag or functionConfig) reads the Flux
/// resources of a directory, which is never edited.
#[test]
fn policies_kept_elsewhere_are_read_from_a_directory() {
    let input = resource_list(WEB_DEPLOYMENT, "");
    let snapshot = snapshot();
    let snap = snapshot.to_str().unwrap();
    let out = run_fn(&testdata(), &["--registry-snapshot", snap], &input);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let found = results(&root(&text(&out.stdout)));
    assert_eq!(found[0]["severity"], "warning", "{found:#?}");
    assert!(text(&out.stdout).contains("image: ghcr.io/acme/web:1.0.0 # {"));

    let dir = tempfile::tempdir().unwrap();
    let policies: String = WEB_POLICY
        .split("- apiVersion")
        .filter(|d| !d.is_empty())
        .map(|d| {
            let doc: Vec<String> = format!("apiVersion{d}")
                .lines()
                .map(|l| l.strip_prefix("  ").unwrap_or(l).to_string())
                .collect();
            format!("---\n{}\n", doc.join("\n"))
        })
        .collect();
    std::fs::write(dir.path().join("policies.yaml"), &policies).unwrap();
    let infra = dir.path().to_str().unwrap();
    let out = run_fn(
        &testdata(),
        &["--registry-snapshot", snap, "--policies", infra],
        &input,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("image: ghcr.io/acme/web:1.1.0 # {"));
    let config = format!(
        "functionConfig:\n  apiVersion: v1\n  kind: ConfigMap\n  data: {{registry-snapshot: {snap}, policies: {infra}}}\n"
    );
    let out = run_fn(&testdata(), &[], &resource_list(WEB_DEPLOYMENT, &config));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("image: ghcr.io/acme/web:1.1.0 # {"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("policies.yaml")).unwrap(),
        policies
    );
}
