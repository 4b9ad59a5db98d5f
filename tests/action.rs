//! The GitHub Action end to end, driven the way a runner drives it:
//! `action.yml` is read with the crate's own YAML reader; the inputs a
//! workflow step gives, and the defaults `action.yml` declares for the rest,
//! become `INPUT_<NAME>` variables named exactly as the runner names them
//! (upper-cased, hyphens kept); the binary runs with the action's `args` in
//! the workspace; and `$GITHUB_OUTPUT`, the step summary and the workflow
//! commands on stdout are read back the way the runner reads them. The
//! workspaces are the bundled `examples/flux` tree with its registry
//! snapshot, in temporary directories and repositories (a bare repository
//! stands in for the remote). The Kubernetes manifests in `deploy/` are
//! checked here too, with kubectl's client-side dry run.
//!
//! `IMAGE_UPDATE_BIN=/path/to/image-update` runs the suite against another
//! build of the binary (the static one the Dockerfile builds, say).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::git;

use image_update::yaml::{self, Node};

const STEP_ID: &str = "update";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> PathBuf {
    std::env::var_os("IMAGE_UPDATE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_image-update")))
}

/// What the runner needs from `action.yml`.
struct ActionYml {
    /// Input names and their defaults, as declared.
    inputs: Vec<(String, Option<String>)>,
    outputs: Vec<String>,
    using: String,
    image: String,
    args: Vec<String>,
}

fn scalar(node: &Node) -> String {
    node.as_str()
        .unwrap_or_else(|| panic!("not a string: {node:?}"))
        .to_string()
}

fn action_yml() -> ActionYml {
    let text =
        fs::read_to_string(root().join("action.yml")).expect("action.yml at the repository root");
    let stream = yaml::parse(&text).expect("action.yml is YAML");
    assert_eq!(stream.documents.len(), 1);
    let doc = &stream.documents[0].root;
    let inputs = doc
        .get("inputs")
        .expect("inputs")
        .entries()
        .iter()
        .map(|(name, spec)| (scalar(name), spec.get("default").map(scalar)))
        .collect();
    let outputs = doc
        .get("outputs")
        .expect("outputs")
        .entries()
        .iter()
        .map(|(name, _)| scalar(name))
        .collect();
    let runs = doc.get("runs").expect("runs");
    ActionYml {
        inputs,
        outputs,
        using: runs.str_at(&["using"]).unwrap_or_default().to_string(),
        image: runs.str_at(&["image"]).unwrap_or_default().to_string(),
        args: runs
            .get("args")
            .map(|a| a.items().iter().map(scalar).collect())
            .unwrap_or_default(),
    }
}

/// The `INPUT_*` variables of a step with these `with:` values: every
/// declared input that the step gives or that has a default.
fn input_env(action: &ActionYml, with: &[(&str, &str)]) -> Vec<(String, String)> {
    for (name, _) in with {
        assert!(
            action.inputs.iter().any(|(n, _)| n == name),
            "the step gives input {name:?}, which action.yml does not declare"
        );
    }
    action
        .inputs
        .iter()
        .filter_map(|(name, default)| {
            let value = with
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_string())
                .or_else(|| default.clone())?;
            Some((
                format!("INPUT_{}", name.replace(' ', "_").to_uppercase()),
                value,
            ))
        })
        .collect()
}

/// A workflow command as the runner reads it from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WorkflowCommand {
    name: String,
    properties: BTreeMap<String, String>,
    message: String,
}

fn unescape_data(text: &str) -> String {
    text.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%25", "%")
}

fn unescape_property(text: &str) -> String {
    text.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
}

/// The commands in a step's stdout, and the lines shown while commands were
/// stopped (`::stop-commands::TOKEN` … `::TOKEN::`).
fn workflow_commands(stdout: &str) -> (Vec<WorkflowCommand>, Vec<String>) {
    let (mut commands, mut fenced) = (Vec::new(), Vec::new());
    let mut stopped: Option<String> = None;
    for line in stdout.lines() {
        if let Some(token) = &stopped {
            if line == format!("::{token}::") {
                stopped = None;
            } else {
                fenced.push(line.to_string());
            }
            continue;
        }
        let Some((head, data)) = line
            .strip_prefix("::")
            .and_then(|rest| rest.split_once("::"))
        else {
            continue;
        };
        let (name, properties) = head.split_once(' ').unwrap_or((head, ""));
        if name == "stop-commands" {
            stopped = Some(data.to_string());
            continue;
        }
        let properties = properties
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p
                    .split_once('=')
                    .unwrap_or_else(|| panic!("property without '=': {line}"));
                (k.to_string(), unescape_property(v))
            })
            .collect();
        commands.push(WorkflowCommand {
            name: name.to_string(),
            properties,
            message: unescape_data(data),
        });
    }
    assert!(
        stopped.is_none(),
        "commands were stopped and never resumed:\n{stdout}"
    );
    (commands, fenced)
}

/// Reads `$GITHUB_OUTPUT` as the runner does: `name=value` lines and
/// `name<<DELIMITER` … `DELIMITER` blocks.
fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut outputs = BTreeMap::new();
    let mut lines = text.split('\n');
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let equals = line.find('=');
        let heredoc = line.find("<<");
        match (equals, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                outputs.insert(line[..e].to_string(), line[e + 1..].to_string());
            }
            (_, Some(h)) => {
                let delimiter = &line[h + 2..];
                assert!(!delimiter.is_empty(), "empty delimiter: {line}");
                let mut value = Vec::new();
                loop {
                    let next = lines
                        .next()
                        .unwrap_or_else(|| panic!("delimiter {delimiter} never closed:\n{text}"));
                    if next == delimiter {
                        break;
                    }
                    value.push(next);
                }
                outputs.insert(line[..h].to_string(), value.join("\n"));
            }
            _ => panic!("invalid output line {line:?}"),
        }
    }
    outputs
}

/// A finished step.
struct Step {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    output_text: String,
    outputs: BTreeMap<String, String>,
    summary: String,
    commands: Vec<WorkflowCommand>,
    /// The log lines printed while workflow commands were stopped.
    fenced: Vec<String>,
}

impl Step {
    fn commands(&self, name: &str) -> Vec<&WorkflowCommand> {
        self.commands.iter().filter(|c| c.name == name).collect()
    }

    fn context(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}--- outputs\n{}",
            self.code, self.stdout, self.stderr, self.output_text
        )
    }
}

/// Runs the action in `workspace` as a container action step would: the
/// runner's variables, the inputs, the action's `args`, the workspace as the
/// working directory. `runner_temp` is the directory `$RUNNER_TEMP` names.
fn run_step(workspace: &Path, with: &[(&str, &str)], runner_temp: Option<&Path>) -> Step {
    let action = action_yml();
    let files = tempfile::tempdir().unwrap();
    let output_file = files.path().join("set_output");
    let summary_file = files.path().join("step_summary");
    fs::write(&output_file, "").unwrap();
    fs::write(&summary_file, "").unwrap();
    fs::create_dir(files.path().join("home")).unwrap();
    let mut command = Command::new(bin());
    command
        .args(&action.args)
        .current_dir(workspace)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", files.path().join("home"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("CI", "true")
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_ACTION", STEP_ID)
        .env("GITHUB_WORKSPACE", workspace)
        .env("GITHUB_OUTPUT", &output_file)
        .env("GITHUB_STEP_SUMMARY", &summary_file)
        .envs(input_env(&action, with));
    if let Some(temp) = runner_temp {
        command.env("RUNNER_TEMP", temp);
    }
    let out = command.output().expect("the binary runs");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let output_text = fs::read_to_string(&output_file).unwrap();
    let (commands, fenced) = workflow_commands(&stdout);
    Step {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        outputs: parse_outputs(&output_text),
        output_text,
        summary: fs::read_to_string(&summary_file).unwrap(),
        commands,
        fenced,
        stdout,
    }
}

/// Every file under `dir`, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git")
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, fs::read(e.path()).unwrap())
        })
        .collect()
}

fn copy_example(to: &Path) {
    for (rel, bytes) in tree(&root().join("examples/flux")) {
        let path = to.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
}

fn example_snapshot() -> PathBuf {
    root().join("examples/flux.snapshot.json")
}

/// A bare remote holding the example tree on `main`, and a clone of it (the
/// checked-out workspace).
struct ExampleRepo {
    _dirs: tempfile::TempDir,
    remote: PathBuf,
    work: PathBuf,
}

fn example_repo() -> ExampleRepo {
    let dirs = tempfile::tempdir().unwrap();
    let remote = dirs.path().join("remote.git");
    let work = dirs.path().join("workspace");
    git(
        dirs.path(),
        &[
            "init",
            "--quiet",
            "--bare",
            "-b",
            "main",
            remote.to_str().unwrap(),
        ],
    );
    git(
        dirs.path(),
        &[
            "clone",
            "--quiet",
            remote.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    );
    copy_example(&work);
    git(&work, &["add", "."]);
    git(&work, &["commit", "--quiet", "-m", "initial"]);
    git(&work, &["push", "--quiet", "origin", "main"]);
    ExampleRepo {
        _dirs: dirs,
        remote,
        work,
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn action_yml_declares_the_documented_interface() {
    let action = action_yml();
    assert_eq!(action.using, "docker");
    assert_eq!(action.image, "Dockerfile");
    assert_eq!(action.args, ["action"]);
    assert!(
        root().join(&action.image).is_file(),
        "runs.image names a file that does not exist"
    );
    let names: Vec<&str> = action.inputs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "path",
            "dry-run",
            "commit",
            "push",
            "branch",
            "message-template",
            "author",
            "token",
            "registry-snapshot",
            "insecure-registries",
            "docker-config",
            "policies",
            "deadline",
            "max-tags",
            "ignore-holds",
            "history-depth",
            "automation-authors",
            "extra-args"
        ]
    );
    let default = |name: &str| {
        action
            .inputs
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, d)| d.as_deref())
    };
    assert_eq!(default("path"), Some("."));
    for flag in ["dry-run", "commit", "push", "ignore-holds"] {
        assert_eq!(default(flag), Some("false"), "{flag}");
    }
    assert_eq!(
        default("token"),
        None,
        "a token must never be sent unless asked for"
    );
    assert_eq!(
        action.outputs,
        ["changed", "changes", "commit-sha", "report"]
    );
    // The runner names hyphenated inputs with the hyphen.
    let env = input_env(&action, &[("dry-run", "true")]);
    assert!(
        env.contains(&("INPUT_DRY-RUN".to_string(), "true".to_string())),
        "{env:?}"
    );
    assert!(
        env.contains(&("INPUT_PATH".to_string(), ".".to_string())),
        "{env:?}"
    );
    assert!(!env.iter().any(|(k, _)| k == "INPUT_BRANCH"), "{env:?}");
}

#[test]
fn dry_run_sets_outputs_summary_and_annotations_and_writes_nothing() {
    let workspace = tempfile::tempdir().unwrap();
    let runner_temp = tempfile::tempdir().unwrap();
    copy_example(&workspace.path().join("clusters"));
    fs::copy(
        example_snapshot(),
        workspace.path().join("flux.snapshot.json"),
    )
    .unwrap();
    let before = tree(workspace.path());

    let step = run_step(
        workspace.path(),
        &[
            ("path", "clusters"),
            ("dry-run", "true"),
            ("registry-snapshot", "flux.snapshot.json"),
        ],
        Some(runner_temp.path()),
    );
    assert_eq!(step.code, Some(0), "{}", step.context());
    assert_eq!(tree(workspace.path()), before, "a dry run wrote something");

    // Outputs: exactly those action.yml declares.
    let declared: BTreeSet<String> = action_yml().outputs.into_iter().collect();
    assert_eq!(
        step.outputs.keys().cloned().collect::<BTreeSet<_>>(),
        declared,
        "{}",
        step.context()
    );
    assert_eq!(step.outputs["changed"], "true");
    assert_eq!(step.outputs["commit-sha"], "");
    assert!(
        step.output_text.contains("changes<<"),
        "changes must use the delimiter form:\n{}",
        step.output_text
    );
    let changes = json(&step.outputs["changes"]);
    let changes = changes.as_array().unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["file"], "apps/podinfo/deployment.yaml");
    assert_eq!(changes[0]["line"], 18);
    assert_eq!(changes[0]["old"], "ghcr.io/stefanprodan/podinfo:6.5.0");
    assert_eq!(changes[0]["new"], "ghcr.io/stefanprodan/podinfo:6.6.0");
    assert_eq!(changes[1]["setter"], "tag");
    assert_eq!(changes[1]["new"], "7.2.5-alpine");

    // The report file is in $RUNNER_TEMP and agrees with the outputs.
    let report_path = PathBuf::from(&step.outputs["report"]);
    assert_eq!(
        report_path,
        runner_temp
            .path()
            .join(format!("image-update-report-{STEP_ID}.json"))
    );
    let report = json(&fs::read_to_string(&report_path).unwrap());
    assert_eq!(report["dry_run"], true);
    assert_eq!(&report["changes"], &json(&step.outputs["changes"]));

    // The summary: changes table with repository paths, policies, problems.
    let s = &step.summary;
    assert!(
        s.contains("2 references would change in 2 files. Dry run: nothing was written."),
        "{s}"
    );
    assert!(s.contains("| File | Line | Change | Policy |"), "{s}");
    assert!(
        s.contains("| `clusters/apps/podinfo/deployment.yaml` | 18 | `ghcr.io/stefanprodan/podinfo:6.5.0` → `ghcr.io/stefanprodan/podinfo:6.6.0` | `flux-system:podinfo` |"),
        "{s}"
    );
    assert!(s.contains("| `clusters/apps/redis/release.yaml` | 17 | `7.2.3-alpine` → `7.2.5-alpine` | `flux-system:redis:tag` |"), "{s}");
    assert!(
        s.contains(
            "| `flux-system:podinfo` | `ghcr.io/stefanprodan/podinfo` | semver 6.x | `6.6.0` |"
        ),
        "{s}"
    );
    assert!(s.contains("| warning | `clusters/infrastructure/ingress.yaml:12:18` | marker flux-system:podinfo not applied"), "{s}");

    // One annotation, on the file as the repository names it.
    assert_eq!(step.commands.len(), 1, "{}", step.context());
    let warning = &step.commands("warning")[0];
    assert_eq!(
        warning.properties["file"],
        "clusters/infrastructure/ingress.yaml"
    );
    assert_eq!(warning.properties["line"], "12");
    assert_eq!(warning.properties["col"], "18");
    assert!(
        warning.message.starts_with(
            "marker flux-system:podinfo not applied: the file is outside the update.path"
        ),
        "{warning:?}"
    );
    // The human-readable report is in the log, where it cannot act as a command.
    assert!(
        step.fenced
            .iter()
            .any(|l| l.starts_with("2 policies, 2 changes in 2 files")),
        "{}",
        step.context()
    );
}

/// The step summary says why: each change with the one-line reason of its
/// choice, and, once everything is up to date, why nothing moved.
#[test]
fn the_step_summary_says_why_each_reference_moved_or_not() {
    let workspace = tempfile::tempdir().unwrap();
    copy_example(workspace.path());
    fs::copy(example_snapshot(), workspace.path().join("snap.json")).unwrap();
    let with = [("registry-snapshot", "snap.json")];

    let step = run_step(workspace.path(), &with, None);
    assert_eq!(step.code, Some(0), "{}", step.context());
    let s = &step.summary;
    assert!(s.contains("| File | Line | Change | Policy | Why |"), "{s}");
    assert!(
        s.contains("| `apps/podinfo/deployment.yaml` | 18 | `ghcr.io/stefanprodan/podinfo:6.5.0` → `ghcr.io/stefanprodan/podinfo:6.6.0` | `flux-system:podinfo` | newest of 3 tags in range 6.x |"),
        "{s}"
    );
    assert!(
        s.contains("| `7.2.3-alpine` → `7.2.5-alpine` | `flux-system:redis:tag` | newest of 2 tags in range ~7.2 (value 7.2.5) |"),
        "{s}"
    );

    // Everything written: a second run moves nothing and says why; with
    // --explain the log lists the candidates.
    let step = run_step(
        workspace.path(),
        &[
            ("registry-snapshot", "snap.json"),
            ("extra-args", "--explain"),
        ],
        None,
    );
    assert!(
        step.fenced
            .iter()
            .any(|l| l.starts_with("  * 6.6.0") && l.contains("newest of 3 tags in range 6.x")),
        "{}",
        step.context()
    );
    assert_eq!(step.code, Some(0), "{}", step.context());
    let s = &step.summary;
    assert!(s.contains("No image reference needs a change."), "{s}");
    assert!(
        s.contains("| `flux-system:podinfo` | `ghcr.io/stefanprodan/podinfo` | semver 6.x | `6.6.0` | newest of 3 tags in range 6.x; marker flux-system:podinfo not applied: the file is outside the update.path"),
        "{s}"
    );
    assert!(
        s.contains("| `flux-system:redis` | `redis` | semver ~7.2 | `7.2.5-alpine` | up to date: newest of 2 tags in range ~7.2 (value 7.2.5) |"),
        "{s}"
    );
}

/// A tree with only Argo CD applications: the override file it writes is
/// a change, so `changed` is `true` and the summary counts and lists it.
#[test]
fn argo_cd_writes_count_as_changes_for_the_outputs_and_summary() {
    let workspace = tempfile::tempdir().unwrap();
    let put = |rel: &str, text: &str| {
        let path = workspace.path().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    };
    put(
        "app.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n  namespace: argocd\n  annotations:\n    argocd-image-updater.argoproj.io/image-list: ghcr.io/acme/web:1.x\n    argocd-image-updater.argoproj.io/write-back-method: git\nspec:\n  source:\n    repoURL: https://git.example.com/org/gitops\n    path: apps/web\n",
    );
    put(
        "apps/web/kustomization.yaml",
        "images:\n- name: ghcr.io/acme/web\n  newTag: 1.0.0\n",
    );
    put(
        "snapshot.json",
        r#"{"version": 1, "repositories": {"ghcr.io/acme/web": {"tags": ["1.0.0", "1.1.0"]}}}"#,
    );
    let step = run_step(
        workspace.path(),
        &[
            ("registry-snapshot", "snapshot.json"),
            (
                "extra-args",
                "--repo-url https://git.example.com/org/gitops",
            ),
        ],
        None,
    );
    assert_eq!(step.code, Some(0), "{}", step.context());
    assert_eq!(step.outputs["changed"], "true", "{}", step.context());
    assert!(
        step.summary.contains("1 reference changed in 1 file."),
        "{}",
        step.summary
    );
    assert!(
        step.summary.contains(
            "| `apps/web/.argocd-source-web.yaml` |  | `ghcr.io/acme/web:1.0.0` → `ghcr.io/acme/web:1.1.0` | `argocd/web ghcr.io/acme/web` |"
        ),
        "{}",
        step.summary
    );
    assert!(
        workspace
            .path()
            .join("apps/web/.argocd-source-web.yaml")
            .is_file()
    );
}

#[test]
fn commit_and_push_with_a_token_into_a_bare_remote() {
    let repo = example_repo();
    let snapshot = tempfile::tempdir().unwrap();
    let snapshot_file = snapshot.path().join("snapshot.json");
    fs::copy(example_snapshot(), &snapshot_file).unwrap();
    let token = "ghs_fakeT0ken%2C,x";

    let step = run_step(
        &repo.work,
        &[
            ("commit", "true"),
            ("push", "true"),
            ("token", token),
            ("author", "CI Bot <ci@example.com>"),
            ("registry-snapshot", snapshot_file.to_str().unwrap()),
        ],
        None,
    );
    assert_eq!(step.code, Some(0), "{}", step.context());

    let sha = &step.outputs["commit-sha"];
    assert_eq!(sha.len(), 40, "{}", step.context());
    assert_eq!(
        git(&repo.remote, &["rev-parse", "refs/heads/main"]).trim(),
        sha
    );
    assert_eq!(git(&repo.work, &["rev-parse", "HEAD"]).trim(), sha);
    assert_eq!(
        git(
            &repo.remote,
            &["diff-tree", "--no-commit-id", "--name-only", "-r", sha]
        ),
        "apps/podinfo/deployment.yaml\napps/redis/release.yaml\n"
    );
    assert_eq!(
        git(&repo.remote, &["log", "-1", "--format=%an <%ae>", sha]).trim(),
        "CI Bot <ci@example.com>"
    );
    // The automation's message template.
    let message = git(&repo.remote, &["log", "-1", "--format=%B", sha]);
    assert!(
        message
            .contains("ghcr.io/stefanprodan/podinfo:6.5.0 -> ghcr.io/stefanprodan/podinfo:6.6.0"),
        "{message}"
    );
    assert_eq!(step.outputs["changed"], "true");
    // The working tree is clean: the report is not in it.
    assert_eq!(
        git(
            &repo.work,
            &["status", "--porcelain", "--untracked-files=all"]
        ),
        ""
    );
    assert_eq!(
        step.outputs["report"],
        format!(".git/image-update-report-{STEP_ID}.json")
    );
    let report = json(&fs::read_to_string(repo.work.join(&step.outputs["report"])).unwrap());
    assert_eq!(report["commit"]["sha"], sha.as_str());
    assert_eq!(report["commit"]["pushed"], true);
    assert!(
        step.summary
            .contains(&format!("Committed `{sha}` on `main` and pushed.")),
        "{}",
        step.summary
    );

    // The token is masked before anything else and shown nowhere.
    let first = &step.commands[0];
    assert_eq!(
        (first.name.as_str(), first.message.as_str()),
        ("add-mask", token)
    );
    let shown = [
        step.stdout
            .replacen(&format!("::add-mask::{}", token.replace('%', "%25")), "", 1),
        step.stderr.clone(),
        step.output_text.clone(),
        step.summary.clone(),
        fs::read_to_string(repo.work.join(&step.outputs["report"])).unwrap(),
    ];
    for text in shown {
        assert!(
            !text.contains(token) && !text.contains("fakeT0ken"),
            "the token leaked:\n{text}"
        );
    }
}

#[test]
fn a_workspace_owned_by_another_user_is_trusted_for_the_run_only() {
    // A container action runs as root on a workspace that belongs to the
    // runner's user; git calls that "dubious ownership".
    if !is_root() {
        eprintln!("SKIPPED: needs root, to give the workspace to another user as a runner does");
        return;
    }
    let repo = example_repo();
    chown_tree(&repo.work, 65534, 65534);
    let plain = Command::new("git")
        .arg("-C")
        .arg(&repo.work)
        .args(["status", "--porcelain"])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("dubious ownership"),
        "the set-up must reproduce the runner's situation"
    );
    let snapshot = example_snapshot();
    // With a token, the run adds its own git configuration to the action's.
    let step = run_step(
        &repo.work,
        &[
            ("push", "true"),
            ("token", "t0ken"),
            ("registry-snapshot", snapshot.to_str().unwrap()),
        ],
        None,
    );
    assert_eq!(step.code, Some(0), "{}", step.context());
    assert_eq!(
        git(&repo.remote, &["rev-parse", "refs/heads/main"]).trim(),
        step.outputs["commit-sha"]
    );
    // Nothing was written to any git configuration file.
    assert!(
        !fs::read_to_string(repo.work.join(".git/config"))
            .unwrap()
            .contains("safe")
    );
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output();
    out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn chown_tree(dir: &Path, uid: u32, gid: u32) {
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.unwrap();
        std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid)).unwrap();
    }
}

#[test]
fn bad_inputs_fail_the_step_with_an_error_annotation() {
    let workspace = tempfile::tempdir().unwrap();
    copy_example(workspace.path());
    let snapshot = example_snapshot();
    let snapshot = snapshot.to_str().unwrap();

    let step = run_step(
        workspace.path(),
        &[("dry-run", "yes"), ("registry-snapshot", snapshot)],
        None,
    );
    assert_eq!(step.code, Some(2), "{}", step.context());
    let errors = step.commands("error");
    assert_eq!(errors.len(), 1, "{}", step.context());
    assert!(
        errors[0]
            .message
            .contains("input dry-run: \"yes\" is not a boolean"),
        "{errors:?}"
    );
    assert!(step.outputs.is_empty());

    let step = run_step(
        workspace.path(),
        &[
            ("dry-run", "true"),
            ("commit", "true"),
            ("registry-snapshot", snapshot),
        ],
        None,
    );
    assert_eq!(step.code, Some(2), "{}", step.context());
    assert!(
        step.commands("error")[0].message.contains("--dry-run"),
        "{}",
        step.context()
    );

    let step = run_step(
        workspace.path(),
        &[
            ("extra-args", "--include 'apps/**"),
            ("registry-snapshot", snapshot),
        ],
        None,
    );
    assert_eq!(step.code, Some(2), "{}", step.context());
    assert!(
        step.commands("error")[0].message.contains("extra-args"),
        "{}",
        step.context()
    );
}

#[test]
fn annotations_escape_names_and_the_log_cannot_issue_commands() {
    let workspace = tempfile::tempdir().unwrap();
    copy_example(workspace.path());
    // A broken file whose name needs escaping in a property.
    fs::write(
        workspace.path().join("apps/odd,name%.yaml"),
        "a: [1\n  image: x # {\"$imagepolicy\": \"flux-system:podinfo\"}\n",
    )
    .unwrap();
    // A file whose report line would read as a workflow command.
    fs::write(
        workspace.path().join("::notice::injected.yaml"),
        "image: ghcr.io/stefanprodan/podinfo:6.5.0 # {\"$imagepolicy\": \"flux-system:podinfo\"}\n",
    )
    .unwrap();
    let snapshot = example_snapshot();
    let step = run_step(
        workspace.path(),
        &[
            ("dry-run", "true"),
            ("registry-snapshot", snapshot.to_str().unwrap()),
            ("extra-args", "--diff # and a comment"),
        ],
        None,
    );
    assert_eq!(step.code, Some(1), "{}", step.context());

    assert!(
        step.stdout
            .contains("::error file=apps/odd%2Cname%25.yaml,line=2,col=8::malformed YAML"),
        "{}",
        step.context()
    );
    let error = &step.commands("error")[0];
    assert_eq!(error.properties["file"], "apps/odd,name%.yaml");

    let warnings = step.commands("warning");
    let injected = warnings
        .iter()
        .find(|w| w.properties["file"] == "::notice::injected.yaml")
        .unwrap_or_else(|| panic!("{}", step.context()));
    assert!(
        step.stdout
            .contains("file=%3A%3Anotice%3A%3Ainjected.yaml,line=1"),
        "{}",
        step.context()
    );
    assert!(injected.message.contains("not applied"));
    // The log line that starts with `::notice::` was printed with commands
    // stopped: the runner shows it and does not act on it.
    assert!(
        step.commands("notice").is_empty(),
        "{:?}",
        step.commands("notice")
    );
    assert!(
        step.fenced
            .iter()
            .any(|l| l.starts_with("::notice::injected.yaml:1:")),
        "{}",
        step.context()
    );
    // --diff from extra-args reached the run.
    assert!(
        step.fenced
            .iter()
            .any(|l| l == "+++ b/apps/podinfo/deployment.yaml"),
        "{}",
        step.context()
    );
    // Problems in the summary stay inside their table cells.
    assert!(
        step.summary
            .contains("| error | `apps/odd,name%.yaml:2:8` | malformed YAML"),
        "{}",
        step.summary
    );
}

/// The workflows in README.md that use the action give only inputs that
/// action.yml declares, and read only outputs it declares.
#[test]
fn readme_workflows_use_declared_inputs_and_outputs() {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    let action = action_yml();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    let mut checked = 0;
    for block in blocks
        .iter()
        .filter(|b| b.contains("on:") && b.contains("jobs:"))
    {
        let stream = yaml::parse(block)
            .unwrap_or_else(|e| panic!("README workflow is not YAML ({e}):\n{block}"));
        let workflow = &stream.documents[0].root;
        for (_, job) in workflow.get("jobs").expect("jobs").entries() {
            let mut ids = BTreeSet::new();
            for step in job.get("steps").expect("steps").items() {
                if step
                    .str_at(&["uses"])
                    .is_some_and(|u| u.contains("image-update"))
                {
                    for (name, _) in step.get("with").map(Node::entries).unwrap_or_default() {
                        let name = scalar(name);
                        assert!(
                            action.inputs.iter().any(|(n, _)| *n == name),
                            "README gives undeclared input {name}"
                        );
                    }
                    ids.extend(step.str_at(&["id"]).map(str::to_string));
                    checked += 1;
                }
            }
            for id in ids {
                let prefix = format!("steps.{id}.outputs.");
                for (i, _) in block.match_indices(&prefix) {
                    let name: String = block[i + prefix.len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .collect();
                    assert!(
                        action.outputs.contains(&name),
                        "README reads undeclared output {name}"
                    );
                }
            }
        }
    }
    if checked == 0 {
        eprintln!("SKIPPED: README.md has no workflow using the action yet");
    }
}

// --- Kubernetes manifests ---------------------------------------------------

fn find_kubectl() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
}

/// Answers kubectl's API discovery for the kinds in `deploy/`, so that its
/// client-side dry run works without a cluster (nothing else is served).
fn discovery_stub() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
                    break;
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let path = path.split('?').next().unwrap_or(path);
            let body = match path {
                "/api" => {
                    r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}"#
                }
                "/apis" => {
                    r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[{"name":"batch","versions":[{"groupVersion":"batch/v1","version":"v1"}],"preferredVersion":{"groupVersion":"batch/v1","version":"v1"}}]}"#
                }
                "/api/v1" => {
                    r#"{"kind":"APIResourceList","groupVersion":"v1","resources":[
                    {"name":"namespaces","singularName":"namespace","namespaced":false,"kind":"Namespace","verbs":["create","get"]},
                    {"name":"serviceaccounts","singularName":"serviceaccount","namespaced":true,"kind":"ServiceAccount","verbs":["create","get"]},
                    {"name":"configmaps","singularName":"configmap","namespaced":true,"kind":"ConfigMap","verbs":["create","get"]},
                    {"name":"secrets","singularName":"secret","namespaced":true,"kind":"Secret","verbs":["create","get"]}]}"#
                }
                "/apis/batch/v1" => {
                    r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"batch/v1","resources":[
                    {"name":"jobs","singularName":"job","namespaced":true,"kind":"Job","verbs":["create","get"]},
                    {"name":"cronjobs","singularName":"cronjob","namespaced":true,"kind":"CronJob","verbs":["create","get"]}]}"#
                }
                _ => "",
            };
            let status = if body.is_empty() {
                "404 Not Found"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{address}")
}

fn text_at<'a>(node: &'a Node, path: &[&str]) -> &'a str {
    node.str_at(path)
        .unwrap_or_else(|| panic!("no {} in {node:?}", path.join(".")))
}

/// The restricted Pod Security profile, limits, and the run itself.
fn check_pod(what: &str, pod: &Node, config_keys: &BTreeSet<String>, image_update: &Path) {
    assert_eq!(text_at(pod, &["restartPolicy"]), "Never", "{what}");
    assert_eq!(
        text_at(pod, &["automountServiceAccountToken"]),
        "false",
        "{what}"
    );
    assert_eq!(
        text_at(pod, &["securityContext", "runAsNonRoot"]),
        "true",
        "{what}"
    );
    assert_eq!(
        text_at(pod, &["securityContext", "runAsUser"]),
        "65532",
        "{what}"
    );
    assert_eq!(
        text_at(pod, &["securityContext", "seccompProfile", "type"]),
        "RuntimeDefault",
        "{what}"
    );
    let init = pod
        .get("initContainers")
        .expect("an init container checks out the repository")
        .items();
    let main = pod.get("containers").expect("containers").items();
    assert_eq!((init.len(), main.len()), (1, 1), "{what}");
    let images: BTreeSet<&str> = init
        .iter()
        .chain(main)
        .map(|c| text_at(c, &["image"]))
        .collect();
    assert_eq!(images.len(), 1, "{what}: one image for both containers");
    for container in init.iter().chain(main) {
        let name = text_at(container, &["name"]);
        assert_eq!(
            text_at(container, &["securityContext", "allowPrivilegeEscalation"]),
            "false",
            "{what}/{name}"
        );
        assert_eq!(
            text_at(container, &["securityContext", "readOnlyRootFilesystem"]),
            "true",
            "{what}/{name}"
        );
        let drop: Vec<&str> = container
            .at(&["securityContext", "capabilities", "drop"])
            .unwrap()
            .items()
            .iter()
            .filter_map(Node::as_str)
            .collect();
        assert_eq!(drop, ["ALL"], "{what}/{name}");
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                text_at(container, &["resources", kind, resource]);
            }
        }
        // Every $(VAR) in the arguments is defined for the container.
        let mut defined: BTreeSet<String> = container
            .get("env")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .map(|e| text_at(e, &["name"]).to_string())
            .collect();
        if container.get("envFrom").is_some() {
            defined.extend(config_keys.iter().cloned());
        }
        for arg in container
            .get("args")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .filter_map(Node::as_str)
        {
            for (i, _) in arg.match_indices("$(") {
                let var = &arg[i + 2..i + arg[i..].find(')').unwrap()];
                assert!(
                    defined.contains(var),
                    "{what}/{name}: $({var}) is not defined"
                );
            }
        }
    }
    let checkout = &init[0];
    let clone: Vec<&str> = checkout
        .get("args")
        .unwrap()
        .items()
        .iter()
        .filter_map(Node::as_str)
        .collect();
    let command: Vec<&str> = checkout
        .get("command")
        .unwrap()
        .items()
        .iter()
        .filter_map(Node::as_str)
        .collect();
    assert_eq!(command, ["git"], "{what}");
    assert_eq!(clone[0], "clone", "{what}");

    let run = &main[0];
    let args: Vec<&str> = run
        .get("args")
        .unwrap()
        .items()
        .iter()
        .filter_map(Node::as_str)
        .collect();
    assert_eq!(args[0], "run", "{what}");
    for flag in ["--commit", "--push", "--git-token-env=GIT_TOKEN"] {
        assert!(args.contains(&flag), "{what}: {flag} missing from {args:?}");
    }
    let env = run.get("env").unwrap().items();
    let var = |name: &str| {
        env.iter()
            .find(|e| e.str_at(&["name"]) == Some(name))
            .unwrap_or_else(|| panic!("{what}: no {name}"))
    };
    assert_eq!(
        text_at(var("GIT_TOKEN"), &["valueFrom", "secretKeyRef", "name"]),
        "image-update-git"
    );
    let docker_config = text_at(var("DOCKER_CONFIG"), &["value"]);
    let mount = run
        .get("volumeMounts")
        .unwrap()
        .items()
        .iter()
        .find(|m| m.str_at(&["mountPath"]) == Some(docker_config))
        .expect("DOCKER_CONFIG is a mounted directory");
    let volume_name = text_at(mount, &["name"]);
    let volume = pod
        .get("volumes")
        .unwrap()
        .items()
        .iter()
        .find(|v| v.str_at(&["name"]) == Some(volume_name))
        .unwrap();
    assert_eq!(
        text_at(volume, &["secret", "secretName"]),
        "image-update-registry"
    );
    let item = &volume.at(&["secret", "items"]).unwrap().items()[0];
    assert_eq!(
        (text_at(item, &["key"]), text_at(item, &["path"])),
        (".dockerconfigjson", "config.json")
    );

    // The binary accepts the arguments as written (on an empty tree, which
    // needs neither a registry nor a remote).
    let tree = tempfile::tempdir().unwrap();
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace("$(TREE)", ".")
                .replace("/workspace/repo", tree.path().to_str().unwrap())
        })
        .collect();
    let out = Command::new(image_update)
        .args(&args)
        .env("GIT_TOKEN", "t")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kubernetes_manifests_pass_kubectl_client_side_dry_run() {
    let Some(kubectl) = find_kubectl() else {
        eprintln!(
            "SKIPPED: kubectl is not on PATH; install it to check deploy/ (kubectl create --dry-run=client)"
        );
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let server = discovery_stub();
    // No cluster: the stub answers discovery; --validate=false because
    // schema validation needs the cluster's OpenAPI document.
    let out = Command::new(&kubectl)
        .args([
            "--server",
            &server,
            "create",
            "--dry-run=client",
            "--validate=false",
            "-o",
            "yaml",
            "-f",
        ])
        .arg(root().join("deploy"))
        .env("HOME", home.path())
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "kubectl failed:\n{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stream = yaml::parse(&stdout).unwrap();
    let docs: Vec<&Node> = stream.documents.iter().map(|d| &d.root).collect();
    let kinds: Vec<&str> = docs.iter().map(|d| text_at(d, &["kind"])).collect();
    assert_eq!(
        kinds,
        ["Namespace", "ServiceAccount", "ConfigMap", "Job", "CronJob"]
    );
    for doc in &docs[1..] {
        assert_eq!(text_at(doc, &["metadata", "namespace"]), "image-update");
    }
    assert_eq!(text_at(docs[0], &["metadata", "name"]), "image-update");
    assert_eq!(
        text_at(
            docs[0],
            &["metadata", "labels", "pod-security.kubernetes.io/enforce"]
        ),
        "restricted"
    );
    let config_keys: BTreeSet<String> = docs[2]
        .get("data")
        .unwrap()
        .entries()
        .iter()
        .map(|(k, _)| scalar(k))
        .collect();
    let binary = bin();
    check_pod(
        "Job",
        docs[3].at(&["spec", "template", "spec"]).unwrap(),
        &config_keys,
        &binary,
    );
    assert_eq!(text_at(docs[4], &["spec", "concurrencyPolicy"]), "Forbid");
    check_pod(
        "CronJob",
        docs[4]
            .at(&["spec", "jobTemplate", "spec", "template", "spec"])
            .unwrap(),
        &config_keys,
        &binary,
    );
    assert!(root().join("deploy/README.md").is_file());
}

// --- The image ---------------------------------------------------------------

/// What can be checked of the Dockerfile without a Docker engine: the stages
/// and their users, the entry point, and that everything the build stage
/// copies exists and is not excluded by `.dockerignore`.
#[test]
fn dockerfile_stages_users_and_build_context() {
    let dockerfile = fs::read_to_string(root().join("Dockerfile")).unwrap();
    let ignored: Vec<String> = fs::read_to_string(root().join(".dockerignore"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_end_matches('/').to_string())
        .collect();
    assert!(
        ignored.iter().any(|p| p == "target"),
        ".dockerignore must exclude target/"
    );

    // Instructions, with continuation lines joined.
    let mut instructions: Vec<String> = Vec::new();
    let mut pending = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && pending.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                instructions.push(std::mem::take(&mut pending));
            }
        }
    }
    // Stage name → its USER (the last one) and ENTRYPOINT.
    let mut stages: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    for instruction in &instructions {
        let (keyword, rest) = instruction.split_once(' ').unwrap_or((instruction, ""));
        match keyword.to_ascii_uppercase().as_str() {
            "FROM" => {
                let name = rest
                    .split_whitespace()
                    .skip_while(|w| !w.eq_ignore_ascii_case("as"))
                    .nth(1);
                stages.push((name.unwrap_or_default().to_string(), None, None));
            }
            "USER" => stages.last_mut().unwrap().1 = Some(rest.trim().to_string()),
            "ENTRYPOINT" => stages.last_mut().unwrap().2 = Some(rest.trim().to_string()),
            "COPY" if !rest.contains("--from") => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                for source in &words[..words.len() - 1] {
                    assert!(root().join(source).exists(), "COPY {source}: no such file");
                    assert!(
                        !ignored.iter().any(|p| source.trim_end_matches('/') == p
                            || source.starts_with(&format!("{p}/"))),
                        "COPY {source}: excluded by .dockerignore"
                    );
                }
            }
            _ => {}
        }
    }
    let names: Vec<&str> = stages.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["build", "runtime", "krm", "action"]);
    let (_, runtime_user, entrypoint) = &stages[1];
    let uid = runtime_user
        .as_deref()
        .expect("runtime sets a user")
        .split(':')
        .next()
        .unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "runtime runs as a numeric non-root user, not {uid}"
    );
    assert_eq!(entrypoint.as_deref(), Some(r#"["image-update"]"#));
    // kpt starts a function image without arguments.
    assert_eq!(stages[2].2.as_deref(), Some(r#"["image-update", "fn"]"#));
    // The last stage, which GitHub builds for the action, runs as root.
    assert_eq!(stages[3].1.as_deref(), Some("0:0"));
    // Cargo reads the manifest only when the bench it declares is there.
    assert!(dockerfile.contains("COPY benches ./benches"));
}

/// The action and `image-update run` leave the same bytes in every file of
/// the same tree (the KRM mode is compared with `run` in tests/krm.rs; the
/// Job runs `run` itself).
#[test]
fn the_action_writes_exactly_what_run_writes() {
    let by_run = tempfile::tempdir().unwrap();
    let by_action = tempfile::tempdir().unwrap();
    copy_example(by_run.path());
    copy_example(by_action.path());
    let out = Command::new(bin())
        .arg("run")
        .arg(by_run.path())
        .arg("--registry-snapshot")
        .arg(example_snapshot())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let snapshot = example_snapshot();
    let step = run_step(
        by_action.path(),
        &[("registry-snapshot", snapshot.to_str().unwrap())],
        None,
    );
    assert_eq!(step.code, Some(0), "{}", step.context());
    assert_eq!(
        step.outputs.get("changed").map(String::as_str),
        Some("true")
    );
    let as_text = |files: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, String> {
        files
            .into_iter()
            // The action's own JSON report lands in a workspace that is no repository.
            .filter(|(path, _)| !path.starts_with("image-update-report-"))
            .map(|(path, bytes)| (path, String::from_utf8(bytes).unwrap()))
            .collect()
    };
    let by_run = as_text(tree(by_run.path()));
    assert_ne!(
        by_run,
        as_text(tree(&root().join("examples/flux"))),
        "run changed nothing"
    );
    assert_eq!(by_run, as_text(tree(by_action.path())));
}

/// A person's revert of an automation's bump holds the policy in the
/// Action too: nothing changes, and the step summary says why.
/// A repository whose `web.yaml` went 1.0.0 -> 1.1.0 in a commit by
/// `author` (`Name <email>`), which a person then reverted, with a
/// snapshot listing both tags at `.git/snapshot.json`; the revert's short
/// id.
fn rolled_back_repo(dir: &Path, author: &str) -> String {
    let policy = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: web, namespace: apps}\nspec: {image: ghcr.io/acme/web}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: web, namespace: apps}\nspec: {imageRepositoryRef: {name: web}, policy: {semver: {range: 1.x}}}\n";
    git(dir, &["init", "--quiet", "-b", "main"]);
    fs::write(dir.join("policy.yaml"), policy).unwrap();
    fs::write(dir.join("web.yaml"), web_at("1.0.0")).unwrap();
    git(dir, &["add", "."]);
    git(dir, &["commit", "--quiet", "-m", "initial"]);
    fs::write(dir.join("web.yaml"), web_at("1.1.0")).unwrap();
    git(
        dir,
        &["commit", "--quiet", "-am", "web 1.1.0", "--author", author],
    );
    git(dir, &["revert", "--no-edit", "HEAD"]);
    fs::write(
        dir.join(".git/snapshot.json"),
        r#"{"version": 1, "repositories": {"ghcr.io/acme/web": {"tags": ["1.0.0", "1.1.0"]}}}"#,
    )
    .unwrap();
    git(dir, &["rev-parse", "--short=7", "HEAD"])
        .trim()
        .to_string()
}

/// `web.yaml` of [`rolled_back_repo`] at `tag`.
fn web_at(tag: &str) -> String {
    format!("image: ghcr.io/acme/web:{tag} # {{\"$imagepolicy\": \"apps:web\"}}\n")
}

#[test]
fn the_step_summary_says_a_rollback_holds_a_policy() {
    let workspace = tempfile::tempdir().unwrap();
    let dir = workspace.path();
    let revert = rolled_back_repo(dir, "fluxcdbot <fluxcdbot@users.noreply.github.com>");

    let step = run_step(dir, &[("registry-snapshot", ".git/snapshot.json")], None);
    assert_eq!(step.code, Some(0), "{}", step.context());
    assert_eq!(step.outputs["changed"], "false", "{}", step.context());
    assert_eq!(
        fs::read_to_string(dir.join("web.yaml")).unwrap(),
        web_at("1.0.0")
    );
    assert!(
        step.summary
            .contains(&format!("held: rolled back by {revert} on ")),
        "{}",
        step.summary
    );
    assert!(
        step.summary
            .contains("No image reference changed; 1 held by a rollback."),
        "{}",
        step.summary
    );
}

/// The history inputs reach `run`: `automation-authors` makes a CI bot's
/// bump an automation's (its revert holds), `history-depth` bounds the
/// commits read (the bump beyond it: no hold, and the cut is said),
/// `ignore-holds` turns holds off.
#[test]
fn the_history_inputs_name_automations_bound_the_depth_and_turn_holds_off() {
    let workspace = tempfile::tempdir().unwrap();
    let dir = workspace.path();
    let revert = rolled_back_repo(dir, "CI Bot <ci@acme.io>");
    let snapshot = ("registry-snapshot", ".git/snapshot.json");
    let dry = ("dry-run", "true");
    let changed = |with: &[(&str, &str)]| {
        let step = run_step(dir, with, None);
        assert_eq!(step.code, Some(0), "{}", step.context());
        step
    };
    // CI Bot is nobody the tool knows: its bump reverted is no rollback.
    let step = changed(&[snapshot, dry]);
    assert_eq!(step.outputs["changed"], "true", "{}", step.context());
    // Named as an automation (among others), the revert holds.
    let authors = (
        "automation-authors",
        "someone-else, CI Bot <ci@acme.io>\nother@acme.io",
    );
    let step = changed(&[snapshot, dry, authors]);
    assert_eq!(step.outputs["changed"], "false", "{}", step.context());
    assert!(
        step.summary
            .contains(&format!("held: rolled back by {revert} on ")),
        "{}",
        step.summary
    );
    // One commit read: the bump is not seen.
    let step = changed(&[snapshot, dry, authors, ("history-depth", "1")]);
    assert_eq!(step.outputs["changed"], "true", "{}", step.context());
    let report = json(&fs::read_to_string(dir.join(&step.outputs["report"])).unwrap());
    assert!(
        report["problems"]
            .to_string()
            .contains("git history read back 1 commit(s) only: --history-depth 1 reached"),
        "{report}"
    );
    let step = changed(&[snapshot, dry, authors, ("ignore-holds", "true")]);
    assert_eq!(step.outputs["changed"], "true", "{}", step.context());
    // Nothing was written by the dry runs; a bad depth fails the step.
    assert_eq!(
        fs::read_to_string(dir.join("web.yaml")).unwrap(),
        web_at("1.0.0")
    );
    let step = run_step(dir, &[snapshot, ("history-depth", "many")], None);
    assert_eq!(step.code, Some(2), "{}", step.context());
    assert!(
        step.commands("error")[0]
            .message
            .contains("input history-depth"),
        "{}",
        step.context()
    );
}
