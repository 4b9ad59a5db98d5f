//! The GitHub Action mode (`image-update action`): the action's inputs arrive
//! as `INPUT_<NAME>` environment variables, become the arguments of an
//! ordinary `run`, and the finished report goes back to the workflow as step
//! outputs (`$GITHUB_OUTPUT`), a Markdown step summary
//! (`$GITHUB_STEP_SUMMARY`), annotations (workflow commands on stdout) and a
//! JSON report file.
//!
//! Everything is decided by pure functions over an environment map ([`plan`],
//! [`outputs`], [`annotations`]; the step summary is the report's Markdown,
//! `Report::to_markdown`); only [`main`] reads the process environment and
//! touches files, so the mapping is tested without a runner.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use crate::outcome::{Report, Severity};

/// The variable the `token` input is handed to `run` in (`--git-token-env`).
pub const TOKEN_ENV: &str = "IMAGE_UPDATE_GIT_TOKEN";

/// Environment variables by name.
pub type Env = BTreeMap<String, String>;

/// Everything the action does, decided from the environment before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The arguments of `run` (everything after `run`).
    pub args: Vec<String>,
    /// Variables to set for the run and the git processes it starts.
    pub env: Vec<(String, String)>,
    /// Values the log must never show (`::add-mask::`).
    pub secrets: Vec<String>,
    /// The tree's path relative to the workspace, `/`-separated and ending in
    /// `/` (empty for the workspace itself): report paths are relative to the
    /// tree, annotations want them relative to the repository.
    pub prefix: String,
    pub output_file: Option<PathBuf>,
    pub summary_file: Option<PathBuf>,
    /// Where the JSON report is written.
    pub report_file: PathBuf,
    /// The `report` output: the same file, relative to the workspace when it
    /// is inside it (later steps, in containers or not, run there).
    pub report_output: String,
}

/// An input as the runner passes it: `INPUT_` and the name upper-cased,
/// hyphens kept; an empty (or blank) value is "not set".
pub fn input<'a>(env: &'a Env, name: &str) -> Option<&'a str> {
    let key = format!("INPUT_{}", name.replace(' ', "_").to_uppercase());
    env.get(&key)
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty())
}

fn trimmed<'a>(env: &'a Env, name: &str) -> Option<&'a str> {
    input(env, name).map(str::trim)
}

/// A boolean input, read as the YAML 1.2 core schema (and `@actions/core`) do.
fn flag(env: &Env, name: &str) -> Result<bool, String> {
    match trimmed(env, name) {
        None | Some("false" | "False" | "FALSE") => Ok(false),
        Some("true" | "True" | "TRUE") => Ok(true),
        Some(other) => Err(format!(
            "input {name}: {other:?} is not a boolean; write true or false"
        )),
    }
}

/// A whole-number input, or nothing when it is unset.
fn number(env: &Env, name: &str) -> Result<Option<u64>, String> {
    trimmed(env, name)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| format!("input {name}: {v:?} is not a whole number of 0 or more"))
        })
        .transpose()
}

/// A list input: items separated by commas or newlines, blank ones left
/// out.
fn list<'a>(env: &'a Env, name: &str) -> impl Iterator<Item = &'a str> {
    trimmed(env, name)
        .unwrap_or_default()
        .split([',', '\n', '\r'])
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// Decides the run's arguments, its environment and where results go.
/// `is_dir` answers whether a directory exists (the report's location
/// depends on it); nothing else looks outside `env`.
pub fn plan(env: &Env, is_dir: &dyn Fn(&Path) -> bool) -> Result<Plan, String> {
    let workspace = env
        .get("GITHUB_WORKSPACE")
        .filter(|w| !w.is_empty())
        .map(PathBuf::from);
    let base = workspace.clone().unwrap_or_else(|| PathBuf::from("."));
    let resolve = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            normalize(p)
        } else {
            normalize(&base.join(p))
        }
    };

    let path = trimmed(env, "path").unwrap_or(".");
    let dir = resolve(path);
    let prefix = relative_inside(&dir, &base)
        .filter(|rel| !rel.is_empty())
        .map(|rel| format!("{rel}/"))
        .unwrap_or_default();

    let mut args = Vec::new();
    // A relative tree that looks like a flag must not be read as one.
    let dir_arg = dir.to_string_lossy().into_owned();
    args.push(if dir_arg.starts_with('-') {
        format!("./{dir_arg}")
    } else {
        dir_arg
    });
    if flag(env, "dry-run")? {
        args.push("--dry-run".to_string());
    }
    if flag(env, "commit")? {
        args.push("--commit".to_string());
    }
    if flag(env, "push")? {
        args.push("--push".to_string());
    }
    // `--flag=value`, so that a value beginning with `-` stays a value.
    for (name, flag) in [("branch", "--branch"), ("author", "--author")] {
        if let Some(value) = trimmed(env, name) {
            args.push(format!("{flag}={value}"));
        }
    }
    if let Some(template) = input(env, "message-template") {
        let template = match template.trim().strip_prefix('@') {
            Some(file) => format!("@{}", resolve(file).display()),
            None => template.to_string(),
        };
        args.push(format!("--message-template={template}"));
    }
    if let Some(file) = trimmed(env, "registry-snapshot") {
        args.push(format!("--registry-snapshot={}", resolve(file).display()));
    }
    for host in list(env, "insecure-registries") {
        args.push(format!("--insecure-registry={host}"));
    }
    if let Some(file) = trimmed(env, "docker-config") {
        args.push(format!("--docker-config={}", resolve(file).display()));
    }
    for dir in list(env, "policies") {
        args.push(format!("--policies={}", resolve(dir).display()));
    }
    for (name, flag) in [
        ("deadline", "--deadline"),
        ("max-tags", "--max-tags"),
        ("history-depth", "--history-depth"),
    ] {
        if let Some(n) = number(env, name)? {
            args.push(format!("{flag}={n}"));
        }
    }
    if flag(env, "ignore-holds")? {
        args.push("--ignore-holds".to_string());
    }
    for author in list(env, "automation-authors") {
        args.push(format!("--automation-author={author}"));
    }
    // Registry facts are cached for as long as the runner keeps its temporary
    // directory (the job; longer on a self-hosted runner).
    if let Some(temp) = env
        .get("RUNNER_TEMP")
        .filter(|t| !t.is_empty() && Path::new(t).is_absolute())
    {
        args.push(format!(
            "--cache-dir={}",
            Path::new(temp).join("image-update-cache").display()
        ));
    }

    let mut run_env = Vec::new();
    let mut secrets = Vec::new();
    if let Some(token) = trimmed(env, "token") {
        run_env.push((TOKEN_ENV.to_string(), token.to_string()));
        args.push(format!("--git-token-env={TOKEN_ENV}"));
        secrets.push(token.to_string());
    }
    if let Some(extra) = input(env, "extra-args") {
        args.extend(split_words(extra).map_err(|e| format!("input extra-args: {e}"))?);
    }

    // In a container the workspace belongs to the runner's user, not to the
    // container's, and git refuses it ("dubious ownership"). Trust the
    // workspace and the tree (with the directories between them, where a
    // nested checkout may have its top) for the git processes of this run
    // only, through command-line-scope configuration in the environment;
    // entries the environment already holds are kept.
    if let Some(workspace) = workspace.as_deref().filter(|w| w.is_absolute()) {
        let workspace = normalize(workspace);
        let mut trusted = vec![workspace.clone()];
        if dir.starts_with(&workspace) {
            trusted.extend(
                dir.ancestors()
                    .take_while(|a| *a != workspace && a.starts_with(&workspace))
                    .map(Path::to_path_buf),
            );
        } else {
            trusted.push(dir.clone());
        }
        let first: usize = env
            .get("GIT_CONFIG_COUNT")
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        for (i, path) in trusted.iter().enumerate() {
            let n = first + i;
            run_env.push((format!("GIT_CONFIG_KEY_{n}"), "safe.directory".to_string()));
            run_env.push((
                format!("GIT_CONFIG_VALUE_{n}"),
                path.to_string_lossy().into_owned(),
            ));
        }
        run_env.push((
            "GIT_CONFIG_COUNT".to_string(),
            (first + trusted.len()).to_string(),
        ));
    }

    let file_var = |name: &str| env.get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let (report_file, report_output) = report_location(env, &base, is_dir);
    Ok(Plan {
        args,
        env: run_env,
        secrets,
        prefix,
        output_file: file_var("GITHUB_OUTPUT"),
        summary_file: file_var("GITHUB_STEP_SUMMARY"),
        report_file,
        report_output,
    })
}

/// Where the JSON report goes, and how the `report` output names it.
///
/// `$RUNNER_TEMP` when this process sees the runner's own directory (the
/// binary run directly on the runner). A container action sees either no
/// such directory or the runner's mapping of it under `/github/`, a path the
/// steps after it cannot open; there the report goes into the workspace's
/// `.git` directory, which every later step reaches by the same relative path
/// and which no commit picks up. Without `.git`, the workspace itself.
fn report_location(
    env: &Env,
    workspace: &Path,
    is_dir: &dyn Fn(&Path) -> bool,
) -> (PathBuf, String) {
    let step: String = env
        .get("GITHUB_ACTION")
        .map(|s| {
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect()
        })
        .unwrap_or_default();
    let step = step.trim_matches(['_', '.']);
    let name = if step.is_empty() {
        "image-update-report.json".to_string()
    } else {
        format!("image-update-report-{step}.json")
    };
    let temp = env
        .get("RUNNER_TEMP")
        .filter(|t| !t.is_empty())
        .map(PathBuf::from)
        .filter(|t| t.is_absolute() && is_dir(t));
    if let Some(temp) = temp.as_ref().filter(|t| !t.starts_with("/github")) {
        let file = temp.join(&name);
        let shown = file.to_string_lossy().into_owned();
        return (file, shown);
    }
    let git = workspace.join(".git");
    if is_dir(&git) {
        return (git.join(&name), format!(".git/{name}"));
    }
    if let Some(temp) = temp {
        let file = temp.join(&name);
        let shown = file.to_string_lossy().into_owned();
        return (file, shown);
    }
    (workspace.join(&name), name)
}

/// Removes `.` and resolves `..` without looking at the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let last = out.components().next_back();
                match last {
                    Some(Component::Normal(_)) => {
                        out.pop();
                    }
                    Some(Component::RootDir) => {}
                    _ => out.push(".."),
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// `path` relative to `base` with `/` separators, when it lies inside it.
fn relative_inside(path: &Path, base: &Path) -> Option<String> {
    let (path, base) = (normalize(path), normalize(base));
    let rel = if base == Path::new(".") && path.is_relative() {
        path.as_path()
    } else {
        path.strip_prefix(&base).ok()?
    };
    let parts: Vec<String> = rel
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect::<Option<_>>()?;
    Some(parts.join("/"))
}

/// Splits `extra-args` into words as a POSIX shell would, without expanding
/// anything: blanks separate words, `'…'` is literal, `"…"` keeps `\"`, `\\`,
/// `\$` and `` \` `` escapes, a backslash outside quotes escapes the next
/// character, a backslash-newline joins lines, and `#` at the start of a word
/// comments out the rest of its line.
pub fn split_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '#' if !in_word => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("a single quote is not closed".to_string()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("a double quote is not closed".to_string()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("a double quote is not closed".to_string()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
                None => return Err("a backslash ends the text".to_string()),
            },
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// The step outputs, in order: `changed`, `changes`, `commit-sha`, `report`.
pub fn outputs(report: &Report, report_output: &str) -> Vec<(&'static str, String)> {
    vec![
        ("changed", (report.change_count() > 0).to_string()),
        (
            "changes",
            serde_json::to_string(&report.changes).expect("changes serialise"),
        ),
        (
            "commit-sha",
            report
                .commit
                .as_ref()
                .map(|c| c.sha.clone())
                .unwrap_or_default(),
        ),
        ("report", report_output.to_string()),
    ]
}

/// The text appended to `$GITHUB_OUTPUT`. `changes`, and any value on more
/// than one line, use the delimiter form (`name<<D`, the value, `D`) with a
/// fresh delimiter that occurs nowhere in the value; the rest `name=value`.
pub fn output_text(outputs: &[(&str, String)], delimiter: &mut dyn FnMut() -> String) -> String {
    let mut text = String::new();
    for (name, value) in outputs {
        if *name == "changes" || value.contains(['\n', '\r']) {
            let mut d = delimiter();
            while d.is_empty() || value.contains(&d) {
                d = delimiter();
            }
            let _ = write!(text, "{name}<<{d}\n{value}\n{d}\n");
        } else {
            let _ = writeln!(text, "{name}={value}");
        }
    }
    text
}

/// Escapes the message of a workflow command, as the runner unescapes it.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value of a workflow command (`file=…`, `line=…`).
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

fn command(name: &str, properties: &[(&str, String)], message: &str) -> String {
    let properties: Vec<String> = properties
        .iter()
        .map(|(k, v)| format!("{k}={}", escape_property(v)))
        .collect();
    let space = if properties.is_empty() { "" } else { " " };
    format!(
        "::{name}{space}{}::{}\n",
        properties.join(","),
        escape_data(message)
    )
}

/// One annotation per problem and per failed policy (`::error`, `::warning`,
/// `::notice`), files given relative to the repository (`prefix` + the
/// report's path).
pub fn annotations(report: &Report, prefix: &str) -> String {
    let mut out = String::new();
    for p in &report.policies {
        if let Some(error) = &p.error {
            let properties = [
                ("file", format!("{prefix}{}", p.file)),
                ("line", p.line.to_string()),
            ];
            out.push_str(&command(
                "error",
                &properties,
                &format!("policy {}: {error}", p.policy),
            ));
        }
    }
    for p in &report.problems {
        let name = match p.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut properties = Vec::new();
        if let Some(file) = &p.file {
            properties.push(("file", format!("{prefix}{file}")));
            if let Some(line) = p.line {
                properties.push(("line", line.to_string()));
                if let Some(column) = p.column {
                    properties.push(("col", column.to_string()));
                }
            }
        }
        out.push_str(&command(name, &properties, &p.message));
    }
    out
}

/// A value nobody can guess or have written in advance (delimiters, the
/// `stop-commands` token); not for cryptography.
fn random_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut token = String::from("image-update-");
    for round in 0..2u8 {
        // Each `RandomState` is keyed from the operating system's randomness.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(nanos);
        hasher.write_u32(std::process::id());
        hasher.write_u8(round);
        let _ = write!(token, "{:016x}", hasher.finish());
    }
    token
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(text.as_bytes())
}

/// `image-update action`: runs as the action's entry point. `run` is the
/// front-end's `run` command (its arguments after `run`, to a report or a
/// usage error), passed in so this front-end does not import another.
pub fn main(run: impl FnOnce(&[String]) -> Result<Report, String>) -> ExitCode {
    let env: Env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let mut stdout = std::io::stdout().lock();
    let plan = match plan(&env, &|p: &Path| p.is_dir()) {
        Ok(plan) => plan,
        Err(message) => {
            let _ = stdout.write_all(command("error", &[], &message).as_bytes());
            return ExitCode::from(2);
        }
    };
    for secret in &plan.secrets {
        let _ = writeln!(stdout, "::add-mask::{}", escape_data(secret));
    }
    let _ = stdout.flush();
    for (name, value) in &plan.env {
        // SAFETY: nothing else runs yet: the run, its runtime threads and its
        // git processes all start after this loop, in this thread.
        unsafe { std::env::set_var(name, value) };
    }

    let report = match run(&plan.args) {
        Ok(report) => report,
        Err(message) => {
            let _ = stdout.write_all(command("error", &[], message.trim_end()).as_bytes());
            return ExitCode::from(2);
        }
    };
    let mut code = report.exit_code();

    let _ = stdout.write_all(annotations(&report, &plan.prefix).as_bytes());
    // The report quotes file contents and names; none of it may be taken
    // for a workflow command.
    let stop = random_token();
    // `extra-args: --explain` lists the candidates in the log, as for `run`.
    let mut log = match plan.args.iter().any(|a| a == "--explain") {
        true => report.to_text_explained(),
        false => report.to_text(),
    };
    if let Some(diff) = &report.diff {
        log.push_str(diff);
    }
    let _ = write!(stdout, "::stop-commands::{stop}\n{log}::{stop}::\n");
    let _ = stdout.flush();

    let mut failures = Vec::new();
    if let Err(e) = std::fs::write(&plan.report_file, report.to_json()) {
        failures.push(format!("cannot write {}: {e}", plan.report_file.display()));
    }
    if let Some(file) = &plan.output_file {
        let text = output_text(&outputs(&report, &plan.report_output), &mut random_token);
        if let Err(e) = append(file, &text) {
            failures.push(format!(
                "cannot write the outputs to {}: {e}",
                file.display()
            ));
        }
    }
    if let Some(file) = &plan.summary_file
        // The step summary: the Markdown report, with paths as the
        // repository names them.
        && let Err(e) = append(file, &report.to_markdown(&plan.prefix))
    {
        failures.push(format!(
            "cannot write the step summary to {}: {e}",
            file.display()
        ));
    }
    for failure in failures {
        let _ = stdout.write_all(command("error", &[], &failure).as_bytes());
        code = ExitCode::from(1);
    }
    code
}

#[cfg(test)]
mod tests;
