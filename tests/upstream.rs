//! The upstream projects' own test cases, ported as data into
//! `testdata/upstream/` (one file per suite, each case citing the upstream
//! file and line it comes from), run here: the pure matching rules through
//! the library, tag selection and whole runs through the binary.
//!
//! A case agrees when we produce what upstream's test expects. A case with
//! `differs` is a difference on purpose (README, "Differences from upstream,
//! on purpose"): its `expected` is what we do and must hold, and it must
//! really differ from `upstream_result`. Each suite prints its tally, so the
//! numbers in the README and the closing notes can be checked.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use image_update::argocd::kustomize;
use image_update::yaml::{self, Node};
use serde_json::{Value, json};
use support::strings;

const REPO_URL: &str = "https://git.example.com/org/gitops.git";
const ANNOTATION: &str = "argocd-image-updater.argoproj.io/";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_image-update"))
}

/// What one suite's run came to.
#[derive(Default)]
struct Tally {
    ported: usize,
    agree: usize,
    on_purpose: usize,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, case: &Node, outcome: Result<(), String>) {
        self.ported += 1;
        let at = case.str_at(&["upstream"]).unwrap_or("?");
        let kind = case.str_at(&["kind"]).unwrap_or("?");
        match (outcome, case.get("differs").is_some()) {
            (Ok(()), false) => self.agree += 1,
            (Ok(()), true) => self.on_purpose += 1,
            (Err(e), _) => self.failures.push(format!("{at} ({kind}): {e}")),
        }
    }

    fn finish(self, suite: &str) {
        eprintln!(
            "upstream suite {suite}: {} cases ported, {} agree, {} differ on purpose, {} fail",
            self.ported,
            self.agree,
            self.on_purpose,
            self.failures.len()
        );
        assert!(self.ported > 0, "{suite}: no cases");
        assert!(
            self.failures.is_empty(),
            "{suite}: {} of {} cases fail:\n{}",
            self.failures.len(),
            self.ported,
            self.failures.join("\n")
        );
    }
}

/// Runs every case of `file` through `check(kind, case)` and asserts the
/// tally.
fn suite(file: &str, name: &str, check: impl Fn(&str, &Node) -> Result<(), String>) {
    let mut tally = Tally::default();
    let table = support::load_yaml(&format!("testdata/upstream/{file}"));
    for case in support::cases(&table) {
        let outcome = check(case.str_at(&["kind"]).unwrap(), case);
        tally.record(case, outcome);
    }
    tally.finish(name);
}

/// `image-update run DIR --output json --registry-snapshot SNAP ARGS`.
fn run_json(
    dir: &Path,
    snap: &Path,
    args: &[&str],
) -> Result<(std::process::Output, Value), String> {
    let out = bin()
        .arg("run")
        .arg(dir)
        .args(["--output", "json", "--registry-snapshot"])
        .arg(snap)
        .args(args)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("report: {e}: {}", String::from_utf8_lossy(&out.stderr)))?;
    Ok((out, report))
}

fn same<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, expected {want:?}"))
    }
}

/// For a difference on purpose: our result must differ from upstream's.
fn really_differs(case: &Node, ours: &[String]) -> Result<(), String> {
    match case.get("upstream_result") {
        Some(theirs) if strings(Some(theirs)) == ours => Err(format!(
            "marked as a difference on purpose, but upstream's result is ours: {ours:?}"
        )),
        _ => Ok(()),
    }
}

#[test]
fn argocd_image_updater_cases() {
    suite(
        "argocd-image-updater.yaml",
        "argoproj-labs/argocd-image-updater",
        |kind, case| match kind {
            "kustomize_match" => same(
                "match",
                kustomize::matches(
                    case.str_at(&["existing"]).unwrap(),
                    case.str_at(&["new"]).unwrap(),
                ),
                case.str_at(&["match"]) == Some("true"),
            ),
            "kustomize_find" => {
                let images = strings(case.get("images"));
                let found: Vec<String> = strings(case.get("found"))
                    .into_iter()
                    .filter(|i| kustomize::find(&images, i).is_none())
                    .collect();
                let not_found: Vec<String> = strings(case.get("not_found"))
                    .into_iter()
                    .filter(|i| kustomize::find(&images, i).is_some())
                    .collect();
                same(
                    "not found / wrongly found",
                    (found, not_found),
                    (vec![], vec![]),
                )
            }
            "kustomize_set" => {
                let mut images = strings(case.get("images"));
                for param in strings(case.get("sets")) {
                    kustomize::set(&mut images, &param);
                }
                same("images", images, strings(case.get("expected")))
            }
            "kustomize_get" => {
                let images = strings(case.get("images"));
                same(
                    "entry",
                    kustomize::current(
                        &images,
                        case.str_at(&["image"]).unwrap(),
                        case.str_at(&["kustomize_name"]),
                    )
                    .map(String::as_str),
                    case.str_at(&["expected"]),
                )
            }
            "contains_image" => {
                let running = strings(case.get("running"));
                same(
                    "running image",
                    kustomize::running(
                        &running,
                        case.str_at(&["image"]).unwrap(),
                        case.str_at(&["kustomize_name"]),
                    )
                    .map(|i| running[i].as_str()),
                    case.str_at(&["expected"]),
                )
            }
            "merge_override" => {
                let mut got = kustomize::merge_override(
                    &strings(case.get("existing")),
                    &strings(case.get("new")),
                );
                let mut want = strings(case.get("expected"));
                if case.str_at(&["unordered"]) == Some("true") {
                    got.sort();
                    want.sort();
                }
                really_differs(case, &got).and_then(|()| same("images", got, want))
            }
            "tag_selection" => argo_select(case),
            "app" => argo_app(case),
            other => Err(format!("unknown kind {other}")),
        },
    );
}

/// A registry snapshot of tag lists, `name` or `{name, created, digest,
/// platforms}` each.
fn snapshot<'a>(repos: impl IntoIterator<Item = (&'a str, &'a Node)>) -> Value {
    let mut repositories = serde_json::Map::new();
    for (repo, list) in repos {
        let (mut names, mut digests, mut created, mut platforms) = (
            Vec::new(),
            serde_json::Map::new(),
            serde_json::Map::new(),
            serde_json::Map::new(),
        );
        for tag in list.items() {
            let name = tag.as_str().or(tag.str_at(&["name"])).unwrap().to_string();
            if let Some(d) = tag.str_at(&["digest"]) {
                digests.insert(name.clone(), json!(d));
            }
            if let Some(c) = tag.str_at(&["created"]) {
                created.insert(name.clone(), json!(c));
            }
            if let Some(p) = tag.get("platforms") {
                platforms.insert(name.clone(), json!(strings(Some(p))));
            }
            names.push(name);
        }
        repositories.insert(
            repo.to_string(),
            json!({"tags": names, "digests": digests, "created": created, "platforms": platforms}),
        );
    }
    json!({"version": 1, "repositories": repositories})
}

/// `select --strategy`, over the listed names, or over a snapshot when the
/// tags carry build dates or digests.
fn argo_select(case: &Node) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.args(["select", "--strategy", case.str_at(&["strategy"]).unwrap()]);
    if let Some(c) = case.str_at(&["constraint"]).filter(|c| !c.is_empty()) {
        cmd.args(["--constraint", c]);
    }
    let tags = case.get("tags").unwrap();
    if tags.items().iter().any(|t| t.as_str().is_none()) {
        let snap = dir.path().join("snapshot.json");
        fs::write(&snap, snapshot([("acme/test", tags)]).to_string()).unwrap();
        cmd.args(["--image", "acme/test", "--registry-snapshot"])
            .arg(&snap);
    } else {
        cmd.args(strings(Some(tags)));
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let code = out.status.code();
    match case.get("expected") {
        Some(e) if e.is_null() => same("exit status (no tag)", code, Some(1)),
        Some(e) if e.as_str() == Some("error") => same("exit status (error)", code, Some(2)),
        Some(e) => same(
            "selected",
            (code, stdout.as_str()),
            (Some(0), e.as_str().unwrap()),
        ),
        None => Err("no expectation".into()),
    }
}

fn yaml_list(items: &[String], indent: &str) -> String {
    if items.is_empty() {
        return " []\n".to_string();
    }
    let mut out = "\n".to_string();
    for i in items {
        out.push_str(&format!("{indent}- {}\n", json!(i)));
    }
    out
}

/// `run` on a tree holding one Kustomize Application (`argocd/guestbook`)
/// with the case's annotations, `kustomize.images` and override file.
fn argo_app(case: &Node) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let app_dir = root.join("apps/guestbook");
    fs::create_dir_all(&app_dir).unwrap();
    fs::write(app_dir.join("kustomization.yaml"), "resources: []\n").unwrap();
    let mut annotations = String::new();
    for (k, v) in case.get("annotations").unwrap().entries() {
        annotations.push_str(&format!(
            "    {ANNOTATION}{}: {}\n",
            k.as_str().unwrap(),
            json!(v.as_str().unwrap_or_default())
        ));
    }
    if case.str_at(&["write_back"]) == Some("git") {
        annotations.push_str(&format!("    {ANNOTATION}write-back-method: git\n"));
    }
    // A Helm application when the case gives `helm_parameters`
    // (`[name, value]` each), else a Kustomize one.
    let source = match case.get("helm_parameters") {
        Some(params) => {
            let mut text = String::from("    helm:\n      parameters:");
            if params.items().is_empty() {
                text.push_str(" []");
            }
            for p in params.items() {
                let p = strings(Some(p));
                text.push_str(&format!(
                    "\n      - {{name: {}, value: {}, forceString: true}}",
                    json!(p[0]),
                    json!(p[1])
                ));
            }
            text + "\n"
        }
        None => format!(
            "    kustomize:\n      images:{}",
            yaml_list(&strings(case.get("kustomize_images")), "      ")
        ),
    };
    let app = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: guestbook\n  namespace: argocd\n  annotations:\n{annotations}spec:\n  source:\n    repoURL: {REPO_URL}\n    path: apps/guestbook\n{source}"
    );
    fs::write(root.join("app.yaml"), &app).unwrap();
    let override_path = app_dir.join(".argocd-source-guestbook.yaml");
    let override_before = case
        .get("override")
        .map(|o| {
            format!(
                "kustomize:\n  images:{}",
                yaml_list(&strings(Some(o)), "  ")
            )
        })
        .or_else(|| {
            let params = case.get("override_helm")?.items().iter().map(|p| {
                let p = strings(Some(p));
                format!(
                    "  - name: {}\n    value: {}\n    forcestring: {}\n",
                    p[0], p[1], p[2]
                )
            });
            Some(format!(
                "helm:\n  parameters:\n{}",
                params.collect::<String>()
            ))
        })
        .inspect(|text| fs::write(&override_path, text).unwrap());
    let snap = dir.path().join("snapshot.json");
    let tags = case.get("tags").unwrap().entries();
    let repos = tags.iter().map(|(k, v)| (k.as_str().unwrap(), v));
    fs::write(&snap, snapshot(repos).to_string()).unwrap();

    let (out, report) = run_json(root, &snap, &["--repo-url", REPO_URL])?;
    let expected = case.get("expected").unwrap();
    let updated = report["applications"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["images"].as_array().cloned().unwrap_or_default())
        .filter(|i| !i["new"].is_null())
        .count();
    if let Some(n) = expected.str_at(&["updated"]) {
        same("images updated", updated.to_string().as_str(), n)?;
    }
    let read_list = |path: &Path, at: &[&str]| -> Vec<String> {
        let src = fs::read_to_string(path).unwrap_or_default();
        let stream = yaml::parse(&src).unwrap();
        strings(stream.documents[0].root.at(at))
    };
    if let Some(want) = expected.get("kustomize_images") {
        let got = read_list(
            &root.join("app.yaml"),
            &["spec", "source", "kustomize", "images"],
        );
        really_differs(case, &got)?;
        same("Application kustomize.images", got, strings(Some(want)))?;
    }
    if let Some(want) = expected.get("override_params") {
        let src = fs::read_to_string(&override_path).unwrap_or_default();
        let stream = yaml::parse(&src).unwrap();
        let got: Vec<Vec<String>> = stream.documents[0]
            .root
            .at(&["helm", "parameters"])
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .map(|p| {
                ["name", "value", "forcestring"]
                    .iter()
                    .map(|k| p.str_at(&[k]).unwrap_or_default().to_string())
                    .collect()
            })
            .collect();
        let want: Vec<Vec<String>> = want.items().iter().map(|p| strings(Some(p))).collect();
        same("override file parameters", got, want)?;
    }
    if let Some(want) = expected.get("override") {
        same(
            "override file images",
            read_list(&override_path, &["kustomize", "images"]),
            strings(Some(want)),
        )?;
    }
    if let Some(needle) = expected.str_at(&["image_error"]) {
        let errors: Vec<&str> = report["applications"][0]["images"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["error"].as_str())
            .collect();
        if !errors.iter().any(|m| m.contains(needle)) {
            return Err(format!("no image error naming {needle:?}: {errors:?}"));
        }
        same("exit status", out.status.code(), Some(1))?;
    }
    if let Some(needle) = expected.str_at(&["app_error"]) {
        let errors: Vec<&str> = report["problems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["severity"] == "error")
            .filter_map(|p| p["message"].as_str())
            .collect();
        if !errors.iter().any(|m| m.contains(needle)) {
            return Err(format!("no error naming {needle:?}: {errors:?}"));
        }
        same("exit status", out.status.code(), Some(1))?;
        same(
            "Application file",
            fs::read_to_string(root.join("app.yaml")).unwrap(),
            app,
        )?;
        same(
            "override file",
            fs::read_to_string(&override_path).ok(),
            override_before,
        )?;
    }
    Ok(())
}

/// `select` with the rule of a Flux case (`semver`, `alphabetical` or
/// `numerical`, the order empty for the default).
fn flux_select(case: &Node) -> Command {
    let mut cmd = bin();
    cmd.args(["select", "--flavor", "flux"]);
    if let Some(range) = case.get("semver") {
        cmd.args(["--semver", range.as_str().unwrap_or_default()]);
    }
    for rule in ["alphabetical", "numerical"] {
        match case.get(rule).map(|o| o.as_str().unwrap_or_default()) {
            Some("") => {
                cmd.arg(format!("--{rule}"));
            }
            Some(order) => {
                cmd.arg(format!("--{rule}={order}"));
            }
            None => {}
        }
    }
    cmd
}

#[test]
fn image_reflector_controller_cases() {
    suite(
        "image-reflector-controller.yaml",
        "fluxcd/image-reflector-controller",
        |kind, case| match kind {
            "policy_new" => {
                let out = flux_select(case).arg("1.0.0").output().unwrap();
                let valid = case.str_at(&["valid"]) == Some("true");
                same("rule accepted", out.status.code() != Some(2), valid)
            }
            "latest" => {
                let out = flux_select(case)
                    .arg("--")
                    .args(strings(case.get("versions")))
                    .output()
                    .unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
                match case.str_at(&["expected"]).unwrap() {
                    "error" => same("exit status (no tag)", out.status.code(), Some(1)),
                    tag => same(
                        "selected",
                        (out.status.code(), stdout.as_str()),
                        (Some(0), tag),
                    )
                    .and_then(|()| really_differs(case, std::slice::from_ref(&stdout))),
                }
            }
            "filter" => {
                let mut cmd = bin();
                cmd.args(["select", "--alphabetical", "--explain"]);
                if let Some(p) = case.str_at(&["pattern"]).filter(|p| !p.is_empty()) {
                    cmd.args(["--filter-pattern", p]);
                }
                if let Some(e) = case.str_at(&["extract"]) {
                    cmd.args(["--filter-extract", e]);
                }
                let out = cmd.args(strings(case.get("tags"))).output().unwrap();
                let explained = String::from_utf8_lossy(&out.stderr).to_string();
                let passes: Vec<String> = explained
                    .lines()
                    .filter(|l| l.starts_with("  ") || l.starts_with("* "))
                    .filter(|l| !l.contains("does not match"))
                    .filter_map(|l| l[2..].split_whitespace().next().map(str::to_string))
                    .collect();
                same("tags that pass", passes, strings(case.get("passes")))
            }
            "crd_rule" => crd_rule(case),
            other => Err(format!("unknown kind {other}")),
        },
    );
}

/// An `image.toolkit.fluxcd.io/v1` ImagePolicy with the case's `interval`
/// and `digestReflectionPolicy`, through `run` and `create imagepolicy`.
fn crd_rule(case: &Node) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let interval = case.str_at(&["interval"]);
    let reflect = case.str_at(&["reflect"]);
    let mut spec =
        String::from("  imageRepositoryRef: {name: web}\n  policy: {semver: {range: 1.x}}\n");
    if let Some(i) = interval {
        spec.push_str(&format!("  interval: {i}\n"));
    }
    if let Some(r) = reflect {
        spec.push_str(&format!("  digestReflectionPolicy: {r}\n"));
    }
    fs::write(
        root.join("flux.yaml"),
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: web, namespace: apps}}\nspec: {{image: ghcr.io/acme/web}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: web, namespace: apps}}\nspec:\n{spec}"
        ),
    )
    .unwrap();
    fs::write(
        root.join("app.yaml"),
        "image: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\n",
    )
    .unwrap();
    let list = yaml::parse("- {name: 1.0.0, digest: 'sha256:1111111111111111111111111111111111111111111111111111111111111111'}\n- {name: 1.1.0, digest: 'sha256:2222222222222222222222222222222222222222222222222222222222222222'}\n").unwrap();
    let snap = root.join("snapshot.json");
    fs::write(
        &snap,
        snapshot([("ghcr.io/acme/web", &list.documents[0].root)]).to_string(),
    )
    .unwrap();
    let (out, report) = run_json(root, &snap, &[])?;
    let policy = &report["policies"][0];
    let mut create = bin();
    create.args([
        "create",
        "imagepolicy",
        "web",
        "--image-ref",
        "web",
        "--select-semver",
        "1.x",
        "--export",
    ]);
    if let Some(i) = interval {
        create.args(["--interval", i]);
    }
    if let Some(r) = reflect {
        create.args(["--reflect-digest", r]);
    }
    let created = create.output().unwrap().status.code();
    match case.str_at(&["error"]) {
        Some(message) => {
            let error = policy["error"].as_str().unwrap_or_default();
            if !error.contains(message) {
                return Err(format!("policy error {error:?} does not say {message:?}"));
            }
            same(
                "policy file and line",
                (&policy["file"], &policy["line"]),
                (&json!("flux.yaml"), &json!(6)),
            )?;
            same(
                "app.yaml untouched",
                report["files"].as_array().map(Vec::len),
                Some(0),
            )?;
            same("exit status", out.status.code(), Some(1))?;
            same("create refuses", created, Some(2))
        }
        None => {
            same("policy error", &policy["error"], &Value::Null)?;
            same("exit status", out.status.code(), Some(0))?;
            same("create accepts", created, Some(0))
        }
    }
}

#[test]
fn image_automation_controller_cases() {
    suite(
        "image-automation-controller.yaml",
        "fluxcd/image-automation-controller",
        |kind, case| match kind {
            "setters" => setters(case),
            "template" => template(case),
            other => Err(format!("unknown kind {other}")),
        },
    );
}

/// `run` over the case's files with its policies resolved from a snapshot.
fn setters(case: &Node) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut resources = String::new();
    let mut repos = String::new();
    // One repository entry per image (a mapping may not repeat a key): the
    // last policy naming an image gives its tag and digest.
    let mut images = std::collections::BTreeMap::new();
    for p in case.get("policies").unwrap().items() {
        let field = |k: &str| p.str_at(&[k]).unwrap();
        let (ns, name, image, tag) = (
            field("namespace"),
            field("name"),
            field("image"),
            field("tag"),
        );
        let digest = p.str_at(&["digest"]);
        let reflect = if digest.is_some() {
            "\n  digestReflectionPolicy: Always\n  interval: 5m"
        } else {
            ""
        };
        resources.push_str(&format!(
            "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{image: {image}}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  imageRepositoryRef: {{name: {name}}}\n  policy: {{semver: {{range: '>=0.0.0'}}}}{reflect}\n"
        ));
        images.insert(image, (tag, digest));
    }
    for (image, (tag, digest)) in images {
        repos.push_str(&format!("{image}: [{{name: {tag}"));
        if let Some(d) = digest {
            repos.push_str(&format!(", digest: '{d}'"));
        }
        repos.push_str("}]\n");
    }
    // `automation`: absent = none in the tree; null = one without spec.update.
    if let Some(update) = case.get("automation") {
        resources.push_str(
            "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata: {name: auto, namespace: test-ns}\nspec:\n  sourceRef: {kind: GitRepository, name: repo}\n",
        );
        if !update.is_null() {
            resources.push_str("  update:\n");
            for (k, v) in update.entries() {
                resources.push_str(&format!(
                    "    {}: {}\n",
                    k.as_str().unwrap(),
                    v.as_str().unwrap()
                ));
            }
        }
    }
    let repos = yaml::parse(&repos).unwrap();
    let list: Vec<(&str, &Node)> = repos.documents[0]
        .root
        .entries()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap(), v))
        .collect();
    let snap = root.join("snapshot.json");
    fs::write(&snap, snapshot(list).to_string()).unwrap();
    let tree = root.join("tree");
    fs::create_dir_all(tree.join("flux")).unwrap();
    fs::write(tree.join("flux/policies.yaml"), resources).unwrap();
    for (file, text) in case.get("files").unwrap().entries() {
        let path = tree.join(file.as_str().unwrap());
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text.as_str().unwrap()).unwrap();
    }
    let (out, report) = run_json(&tree, &snap, &[])?;
    let exit = case.str_at(&["exit"]).map_or(0, |e| e.parse().unwrap());
    same("exit status", out.status.code(), Some(exit))?;
    let expected = case.get("expected").unwrap();
    for (file, text) in case.get("files").unwrap().entries() {
        let file = file.as_str().unwrap();
        let want = expected.str_at(&[file]).or(text.as_str()).unwrap();
        same(
            file,
            fs::read_to_string(tree.join(file)).unwrap().as_str(),
            want,
        )?;
    }
    if let Some(want) = case.get("changes") {
        let mut want: Vec<Vec<String>> = want.items().iter().map(|c| strings(Some(c))).collect();
        let mut got: Vec<Vec<String>> = report["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let marker = match c["setter"].as_str().unwrap() {
                    "image" => c["policy"].as_str().unwrap().to_string(),
                    setter => format!("{}:{setter}", c["policy"].as_str().unwrap()),
                };
                let o = &c["object"];
                [
                    &c["file"],
                    &o["apiVersion"],
                    &o["kind"],
                    &o["namespace"],
                    &o["name"],
                    &c["old"],
                    &c["new"],
                ]
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .chain([marker])
                .collect()
            })
            .collect();
        want.sort();
        got.sort();
        same("changes", got, want)?;
    }
    let warnings: Vec<&str> = report["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["severity"] == "warning")
        .filter_map(|p| p["message"].as_str())
        .collect();
    for want in strings(case.get("warnings")) {
        if !warnings.iter().any(|w| w.contains(&want)) {
            return Err(format!("no warning {want:?} in {warnings:?}"));
        }
    }
    Ok(())
}

/// A message template for an automation of the case's `api_version`.
fn template(case: &Node) -> Result<(), String> {
    use image_update::template::{Change, Context, Object, render_message};
    let context = Context {
        automation: Some(("default".into(), "auto".into())),
        flux_v1: case.str_at(&["api_version"]) == Some("image.toolkit.fluxcd.io/v1"),
        changes: vec![Change {
            file: "deploy.yaml".into(),
            setter: "default:policy".into(),
            old: "helloworld:1.0.0".into(),
            new: "helloworld:1.0.1".into(),
            image: "helloworld".into(),
            old_tag: "1.0.0".into(),
            new_tag: "1.0.1".into(),
            object: Object {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                namespace: "default".into(),
                name: "test".into(),
            },
        }],
        ..Context::default()
    };
    let got = render_message(case.str_at(&["template"]).unwrap(), &context);
    match (case.str_at(&["error"]), got) {
        (Some(want), Err(e)) if e.to_string().contains(want) => Ok(()),
        (Some(want), got) => Err(format!("expected an error {want:?}, got {got:?}")),
        (None, got) => same(
            "message",
            got.map_err(|e| e.to_string()),
            Ok(case.str_at(&["expected"]).unwrap().to_string()),
        ),
    }
}
