//! Command-line flags, resolved once into plain settings, and the dispatch of
//! each subcommand to the library. Exit status: 0 done, 1 something failed
//! (the rest was still applied), 2 bad usage or configuration.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Parser, Subcommand, ValueEnum};

use crate::commit;
use crate::krm;
use crate::outcome::{Problem, Report, Severity};
use crate::policy::argo::{AllowTags, ArgoRule, Strategy, TagInfo};
use crate::policy::{Flavor, Order, Outcome, Rule, RuleError, Selector, TagFilter};
use crate::registry::TagRef;
use crate::registry::live::{self, Live};
use crate::registry::snapshot::{Recorder, Snapshot};
use crate::registry::{Registry, cache, credentials};
use crate::scan::Filter;
use crate::update::{self, RunOptions};

mod resources;
use resources::{CreateArgs, GetArgs, ListArgs, ServeArgs};

#[derive(Debug, Parser)]
#[command(
    name = "image-update",
    version,
    about = "Keep container image references in a GitOps repository up to date"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Resolve the policies and markers in a tree and rewrite what changed.
    Run(RunArgs),
    /// Record what a run reads from the registries into a snapshot file.
    Snapshot(SnapshotArgs),
    /// Evaluate one selection rule over a list of tags.
    Select(SelectArgs),
    /// Run as a KRM function: a ResourceList on stdin, updated on stdout.
    Fn(FnArgs),
    /// Run as a GitHub Action: inputs from `INPUT_*`, results to the workflow.
    Action,
    /// Write a new resource (validated) into the tree, or print it with --export.
    Create(CreateArgs),
    /// Print one resource of the tree.
    Get(GetArgs),
    /// List the resources of the tree.
    List(ListArgs),
    /// Remove one resource from the tree (only its document's bytes).
    Delete(GetArgs),
    /// Serve a REST API over the tree's ImageUpdater resources.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The working tree (the repository root).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Report what would change; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print a unified diff of what changed (or would change).
    #[arg(long)]
    diff: bool,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
    /// With text output: list under each policy and Argo CD image the tags
    /// it considered and why each was or was not chosen (JSON always has them).
    #[arg(long)]
    explain: bool,
    /// Answer registry questions from this snapshot file instead of the network.
    #[arg(long, value_name = "FILE")]
    registry_snapshot: Option<PathBuf>,
    /// Write a selected tag even when it ranks below the one in the file
    /// (upstream behaviour); by default such a downgrade is reported instead.
    #[arg(long)]
    allow_downgrade: bool,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    registry: RegistryArgs,
    #[command(flatten)]
    git: GitArgs,
}

/// What a run reads (shared by `run` and `snapshot`, so that a snapshot
/// records what the same run needs).
#[derive(Debug, clap::Args)]
struct ReadArgs {
    /// Only edit files matching this glob (relative to DIR; repeatable).
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Never edit files matching this glob (relative to DIR; repeatable).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// This repository's URL, to tell which Argo CD applications it serves
    /// (default: the `origin` remote of DIR).
    #[arg(long, value_name = "URL")]
    repo_url: Option<String>,
    /// The namespace Argo CD runs in; an application elsewhere gets
    /// `.argocd-source-<namespace>_<app>.yaml`.
    #[arg(long, value_name = "NS", default_value = "argocd")]
    argocd_namespace: String,
    /// Also read Flux, Argo CD and unified resources from this directory,
    /// which is never edited (repeatable).
    #[arg(long, value_name = "PATH")]
    policies: Vec<PathBuf>,
    /// Apply tags a person rolled back, as upstream does (no rollback holds).
    #[arg(long)]
    ignore_holds: bool,
    /// Read at most this many commits of history for rollback holds and
    /// promotion gates.
    #[arg(long, value_name = "N", default_value_t = crate::history::DEFAULT_DEPTH)]
    history_depth: usize,
    /// Commits by this author (`Name <email>`, a name or an address) are
    /// automated ones, as the defaults' (repeatable).
    #[arg(long, value_name = "AUTHOR")]
    automation_author: Vec<String>,
}

impl ReadArgs {
    /// The run's options for the tree `dir`.
    fn options(&self, dir: &std::path::Path) -> Result<RunOptions, String> {
        let filter =
            Filter::new(&self.include, &self.exclude).map_err(|e| format!("invalid glob: {e}"))?;
        if let Some(missing) = self.policies.iter().find(|p| !p.is_dir()) {
            return Err(format!("--policies {}: not a directory", missing.display()));
        }
        Ok(RunOptions {
            root: dir.to_path_buf(),
            filter,
            repo_url: self.repo_url.clone().or_else(|| origin_url(dir)),
            argocd_namespace: self.argocd_namespace.clone(),
            policies: self.policies.clone(),
            history: update::HistoryOptions {
                ignore_holds: self.ignore_holds,
                depth: self.history_depth,
                authors: self.automation_author.clone(),
                now: None,
            },
            ..RunOptions::default()
        })
    }
}

/// Committing and pushing what a run changed.
#[derive(Debug, clap::Args)]
struct GitArgs {
    /// Commit exactly the files this run changed (nothing else).
    #[arg(long)]
    commit: bool,
    /// Push the commit (implies --commit).
    #[arg(long)]
    push: bool,
    /// Commit onto this branch (created from HEAD when missing); may be a template.
    #[arg(long, value_name = "NAME")]
    branch: Option<String>,
    /// The remote to push to.
    #[arg(long, value_name = "NAME", default_value = "origin")]
    remote: String,
    /// Author and committer, "Name <email>".
    #[arg(long, value_name = "NAME <EMAIL>")]
    author: Option<String>,
    /// Commit message template (Go text/template), or @FILE to read one.
    #[arg(long, value_name = "TEXT|@FILE")]
    message_template: Option<String>,
    /// Add a Signed-off-by trailer.
    #[arg(long)]
    signoff: bool,
    /// Sign the commit with the user's git signing configuration.
    #[arg(long)]
    sign: bool,
    /// Read a token for HTTPS pushes from this environment variable.
    #[arg(long, value_name = "VAR")]
    git_token_env: Option<String>,
}

impl GitArgs {
    fn settings(&self) -> Result<Option<commit::Settings>, String> {
        if !self.commit && !self.push {
            return Ok(None);
        }
        let message_template = match self.message_template.as_deref() {
            Some(file) if file.starts_with('@') => Some(
                std::fs::read_to_string(&file[1..])
                    .map_err(|e| format!("cannot read {}: {e}", &file[1..]))?,
            ),
            other => other.map(str::to_string),
        };
        let token = match &self.git_token_env {
            Some(var) => Some(
                std::env::var(var)
                    .ok()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| format!("--git-token-env {var}: the variable is not set"))?,
            ),
            None => None,
        };
        Ok(Some(commit::Settings {
            author: self.author.clone(),
            message_template,
            branch: self.branch.clone(),
            push: self.push,
            remote: self.remote.clone(),
            signoff: self.signoff,
            sign: self.sign,
            token,
        }))
    }
}

#[derive(Debug, clap::Args)]
struct SnapshotArgs {
    /// The working tree (the repository root).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Where to write the snapshot.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    #[command(flatten)]
    read: ReadArgs,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Debug, clap::Args)]
struct FnArgs {
    /// Answer registry questions from this snapshot file instead of the network
    /// (overrides the functionConfig's).
    #[arg(long, value_name = "FILE")]
    registry_snapshot: Option<PathBuf>,
    /// Also read Flux resources from this directory, never edited
    /// (repeatable; overrides the functionConfig's `policies`).
    #[arg(long, value_name = "PATH")]
    policies: Vec<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

/// How to reach live registries.
#[derive(Debug, Clone, clap::Args)]
struct RegistryArgs {
    /// Reach this registry over plain HTTP (repeatable).
    #[arg(long, value_name = "HOST[:PORT]")]
    insecure_registry: Vec<String>,
    /// Also trust the PEM certificates in this file (a private CA).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Read registry credentials from this docker config.json first.
    #[arg(long, value_name = "FILE")]
    docker_config: Option<PathBuf>,
    /// Registry requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    concurrency: usize,
    /// Registry requests in flight at once to one host.
    #[arg(long, value_name = "N", default_value_t = 6)]
    per_host: usize,
    /// Seconds one registry request may take.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    timeout: u64,
    /// Retries after a 5xx, a reset, a timeout or a 429.
    #[arg(long, value_name = "N", default_value_t = 3)]
    retries: u32,
    /// The longest Retry-After honoured, in seconds; longer fails the repository.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    max_retry_after: u64,
    /// The most tags read for one repository; a registry listing more fails it.
    #[arg(long, value_name = "N", default_value_t = live::MAX_TAGS)]
    max_tags: usize,
    /// Seconds the run may spend asking registries (0: no limit); repositories
    /// not answered by then fail, the rest is applied.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_DEADLINE)]
    deadline: u64,
    /// Keep what digests say (build date, platforms, index children) here
    /// between runs [default: $XDG_CACHE_HOME/image-update, else ~/.cache/image-update].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Neither read nor write the registry cache.
    #[arg(long)]
    no_cache: bool,
}

/// Ten minutes: far beyond a healthy run, well inside any CI job's limit.
const DEFAULT_DEADLINE: u64 = 600;

impl RegistryArgs {
    /// The live client, configured from flags and the process environment.
    fn live(&self) -> Result<Live, String> {
        let env = credentials::Env {
            docker_config_flag: self.docker_config.clone(),
            vars: std::env::vars().collect(),
        };
        let store = credentials::Store::load(&env).map_err(|e| e.to_string())?;
        let options = live::Options {
            insecure: self
                .insecure_registry
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            ca_file: self.ca_file.clone(),
            concurrency: self.concurrency.max(1),
            per_host: self.per_host.max(1),
            timeout: Duration::from_secs(self.timeout.max(1)),
            retries: self.retries,
            max_retry_after: Duration::from_secs(self.max_retry_after),
            max_tags: self.max_tags.max(1),
            deadline: (self.deadline > 0).then(|| {
                let after = Duration::from_secs(self.deadline);
                live::Deadline {
                    at: std::time::Instant::now() + after,
                    after,
                }
            }),
            ..live::Options::default()
        };
        let cache = match (&self.cache_dir, self.no_cache) {
            (_, true) => None,
            (Some(dir), false) => Some(dir.clone()),
            (None, false) => cache::default_dir(|name| std::env::var(name).ok()),
        };
        Live::new(options, store)
            .map(|live| live.with_cache(cache.as_deref().map(cache::Cache::new)))
            .map_err(|e| e.to_string())
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
    /// As the GitHub Action's step summary (for pull-request bodies).
    Markdown,
}

#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("rule").required(true).args(["semver", "alphabetical", "numerical", "strategy"])))]
struct SelectArgs {
    /// A semver range (Masterminds/semver v3 syntax).
    #[arg(long, value_name = "RANGE")]
    semver: Option<String>,
    /// Byte-wise order; `asc` (default) picks the greatest.
    #[arg(long, num_args = 0..=1, default_missing_value = "asc", value_parser = ["asc", "desc"])]
    alphabetical: Option<String>,
    /// Tags as numbers; `asc` (default) picks the greatest.
    #[arg(long, num_args = 0..=1, default_missing_value = "asc", value_parser = ["asc", "desc"])]
    numerical: Option<String>,
    /// Keep only tags matching this regular expression (unanchored).
    #[arg(long, value_name = "REGEX")]
    filter_pattern: Option<String>,
    /// Compare this template over the pattern's captures (`$1`, `$name`, `${name}`).
    #[arg(long, value_name = "TEMPLATE", requires = "filter_pattern")]
    filter_extract: Option<String>,
    /// Drop tags matching this regular expression (repeatable; default `^.*\.sig$`).
    #[arg(long, value_name = "REGEX")]
    exclude_tag: Vec<String>,
    /// How tags are parsed as versions.
    #[arg(long, value_enum, default_value_t = FlavorArg::Flux)]
    flavor: FlavorArg,
    /// Explain on stderr why each tag was kept or rejected.
    #[arg(long)]
    explain: bool,
    /// An Argo CD Image Updater strategy: semver, newest-build (latest),
    /// alphabetical (name) or digest.
    #[arg(long, value_name = "STRATEGY")]
    strategy: Option<String>,
    /// With --strategy: the constraint of the image reference (a semver range,
    /// or for digest the tag to follow).
    #[arg(long, value_name = "VALUE", requires = "strategy")]
    constraint: Option<String>,
    /// With --strategy: `regexp:<re>` or `any`.
    #[arg(long, value_name = "MATCH", requires = "strategy")]
    allow_tags: Option<String>,
    /// With --strategy: drop tags matching this glob (repeatable).
    #[arg(long, value_name = "GLOB", requires = "strategy")]
    ignore_tags: Vec<String>,
    /// With --strategy: a wanted platform, os/arch[/variant] (repeatable; default linux/amd64).
    #[arg(long, value_name = "PLATFORM", requires = "strategy")]
    platform: Vec<String>,
    /// With --strategy: read the tags (and build dates, platforms, digests) of this repository.
    #[arg(long, value_name = "REPO", requires = "strategy")]
    image: Option<String>,
    /// With --image: answer from this snapshot instead of the registry.
    #[arg(long, value_name = "FILE", requires = "image")]
    registry_snapshot: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The tags; read one per line from standard input when none are given.
    tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FlavorArg {
    Flux,
    Argocd,
}

/// Parses the arguments, runs the command and maps the outcome to an exit code.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(order_values(args)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match cli.command {
        Command::Run(args) => run(args),
        Command::Snapshot(args) => snapshot(args),
        Command::Select(args) => select(args),
        Command::Fn(args) => krm_function(args),
        Command::Action => crate::action::main(run_report),
        Command::Create(args) => resources::create(args),
        Command::Get(args) => resources::get(args),
        Command::List(args) => resources::list(args),
        Command::Delete(args) => resources::delete(args),
        Command::Serve(args) => resources::serve(args),
    }
}

/// `--alphabetical` and `--numerical` take an optional `asc|desc`; a following
/// word that is neither is a tag, so the flag is given its default explicitly
/// (clap alone would reject the tag as an invalid order).
fn order_values(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let mut out = Vec::with_capacity(args.len());
    for (i, arg) in args.iter().enumerate() {
        let is_order_flag = arg == "--alphabetical" || arg == "--numerical";
        let next_is_order = args.get(i + 1).is_some_and(|n| n == "asc" || n == "desc");
        if is_order_flag && !next_is_order {
            let mut with_default = arg.clone();
            with_default.push("=asc");
            out.push(with_default);
        } else {
            out.push(arg.clone());
        }
    }
    out
}

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("image-update: {message}");
    ExitCode::from(2)
}

fn run(args: RunArgs) -> ExitCode {
    let (output, explain) = (args.output, args.explain);
    let report = match execute(args) {
        Ok(report) => report,
        Err(message) => return usage_error(message),
    };
    let text = match output {
        Output::Json => report.to_json(),
        Output::Text => {
            let mut text = match explain {
                true => report.to_text_explained(),
                false => report.to_text(),
            };
            if let Some(diff) = &report.diff {
                text.push_str(diff);
            }
            text
        }
        Output::Markdown => {
            let mut text = report.to_markdown("");
            if let Some(diff) = report.diff.as_deref().filter(|d| !d.is_empty()) {
                let fence = "`".repeat(3.max(longest_backtick_run(diff) + 1));
                text.push_str(&format!("### Diff\n\n{fence}diff\n{diff}{fence}\n"));
            }
            text
        }
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    report.exit_code()
}

/// The longest run of backticks in `text`, so a fence can be longer.
fn longest_backtick_run(text: &str) -> usize {
    text.split(|c| c != '`').map(str::len).max().unwrap_or(0)
}

/// Runs `image-update run` with these arguments (everything after `run`) and
/// returns its report, or the usage error; for modes that wrap `run` (the
/// GitHub Action) and present the report their own way.
pub fn run_report(arguments: &[String]) -> Result<Report, String> {
    let argv = ["image-update".to_string(), "run".to_string()]
        .into_iter()
        .chain(arguments.iter().cloned());
    match Cli::try_parse_from(order_values(argv.map(std::ffi::OsString::from))) {
        Ok(Cli {
            command: Command::Run(args),
        }) => execute(args),
        Ok(_) => unreachable!("the first argument is run"),
        Err(e) => Err(e.to_string()),
    }
}

/// The `origin` remote of the repository holding `dir`, if any.
fn origin_url(dir: &std::path::Path) -> Option<String> {
    crate::git::Repo::open(dir).ok()?.fetch_url("origin")
}

/// A run and, when asked, its commit and push; `Err` is a usage error.
fn execute(args: RunArgs) -> Result<Report, String> {
    if !args.dir.is_dir() {
        return Err(format!("{} is not a directory", args.dir.display()));
    }
    let mut options = RunOptions {
        dry_run: args.dry_run,
        diff: args.diff,
        allow_downgrade: args.allow_downgrade,
        ..args.read.options(&args.dir)?
    };
    // This run's own commits are automated ones too.
    options.history.authors.extend(args.git.author.clone());
    let registry: Box<dyn Registry> = match &args.registry_snapshot {
        Some(path) => Box::new(Snapshot::load(path).map_err(|e| e.to_string())?),
        None => Box::new(args.registry.live()?.for_tree(&args.dir)),
    };
    let git = args.git.settings()?;
    if git.is_some() && args.dry_run {
        return Err("--commit and --push cannot be combined with --dry-run".to_string());
    }
    if let Some(settings) = &git {
        commit::check(settings, &options.root).map_err(|e| e.to_string())?;
    }
    let outcome = update::run(&options, registry.as_ref());
    let mut report = outcome.report;
    if let Some(settings) = &git {
        match commit::commit(
            &options.root,
            &report,
            &outcome.replay,
            outcome.git.as_ref(),
            settings,
        ) {
            Ok(Some(committed)) => report.commit = Some(committed),
            Ok(None) => report.problems.push(Problem::general(
                Severity::Info,
                "nothing changed; no commit",
            )),
            Err(e) => {
                // A commit that was made but not pushed is still reported.
                if let commit::CommitError::NotPushed { committed, .. } = &e {
                    report.commit = Some(committed.clone());
                }
                report
                    .problems
                    .push(Problem::general(Severity::Error, e.to_string()));
            }
        }
    }
    Ok(report)
}

/// Flags set on the command line override the functionConfig's settings;
/// the live client is built here, from the merged settings and the other
/// registry flags, exactly as for `run`.
fn krm_function(args: FnArgs) -> ExitCode {
    let flags = krm::Settings {
        registry_snapshot: args.registry_snapshot.clone(),
        insecure_registries: args.registry.insecure_registry.clone(),
        ca_file: args.registry.ca_file.clone(),
        docker_config: args.registry.docker_config.clone(),
        policies: args.policies.clone(),
    };
    let connect = |settings: &krm::Settings| -> Result<Box<dyn Registry>, String> {
        let registry = RegistryArgs {
            insecure_registry: settings.insecure_registries.clone(),
            ca_file: settings.ca_file.clone(),
            docker_config: settings.docker_config.clone(),
            ..args.registry.clone()
        };
        Ok(Box::new(registry.live()?))
    };
    krm::main(&flags, &connect)
}

fn snapshot(args: SnapshotArgs) -> ExitCode {
    if !args.dir.is_dir() {
        return usage_error(format!("{} is not a directory", args.dir.display()));
    }
    let options = match args.read.options(&args.dir) {
        Ok(options) => RunOptions {
            dry_run: true,
            ..options
        },
        Err(e) => return usage_error(e),
    };
    let recorder = match args.registry.live() {
        Ok(live) => Recorder::new(live),
        Err(e) => return usage_error(e),
    };
    let report = update::run(&options, &recorder).report;
    let mut json =
        serde_json::to_string_pretty(&recorder.into_file()).expect("a snapshot serialises");
    json.push('\n');
    if let Err(e) = std::fs::write(&args.output, json) {
        return usage_error(format!("cannot write {}: {e}", args.output.display()));
    }
    let _ = std::io::stdout()
        .lock()
        .write_all(report.to_text().as_bytes());
    report.exit_code()
}

/// The tags given as arguments, else one per line on standard input; an
/// invalid OCI tag is skipped with a warning, as `run` skips it.
fn listed_tags(args: &SelectArgs) -> Vec<String> {
    let listed = if args.tags.is_empty() {
        std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect()
    } else {
        args.tags.clone()
    };
    let (tags, skipped) = crate::registry::screen_tags(&"select", listed);
    if let Some(note) = skipped {
        eprintln!("image-update: warning: {note}");
    }
    tags
}

/// `select --strategy`: Argo CD Image Updater's rules, over listed tags or a
/// repository's tags with the metadata the strategy needs (what upstream's
/// `test` command does).
fn select_argo(strategy: &str, args: &SelectArgs) -> ExitCode {
    let mut rule = ArgoRule::new(Strategy::parse(strategy));
    rule.constraint = args.constraint.clone().unwrap_or_default();
    rule.ignore = args.ignore_tags.clone();
    rule.platforms = args.platform.clone();
    if let Some(allow) = &args.allow_tags {
        match AllowTags::parse(allow) {
            Ok(allow) => rule.allow = Some(allow),
            Err(e) => return usage_error(format!("--allow-tags {allow:?}: {e}")),
        }
    }
    let tags = match &args.image {
        None => listed_tags(args)
            .iter()
            .map(|t| TagInfo::named(t))
            .collect(),
        Some(image) => match image_tags(image, &rule, args) {
            Ok(tags) => tags,
            Err(e) => {
                eprintln!("image-update: {e}");
                return ExitCode::from(1);
            }
        },
    };
    if args.explain
        && let Ok((_, explained)) = rule.candidates(&tags, None, usize::MAX)
    {
        let mut err = std::io::stderr().lock();
        for c in &explained.shown {
            let mark = if c.outcome == Outcome::Chosen {
                '*'
            } else {
                ' '
            };
            let _ = writeln!(err, "{mark} {:<30} {}", c.tag, c.reason);
        }
    }
    match rule.select(&tags) {
        Ok(Some(tag)) => {
            match (&tag.digest, rule.strategy) {
                (Some(digest), Strategy::Digest) => println!("{}@{digest}", tag.name),
                _ => println!("{}", tag.name),
            }
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("image-update: no tag qualifies");
            ExitCode::from(1)
        }
        Err(e) => usage_error(e),
    }
}

/// A repository's tags with the build dates, platforms and digests `rule` needs.
fn image_tags(image: &str, rule: &ArgoRule, args: &SelectArgs) -> Result<Vec<TagInfo>, String> {
    let repository = crate::image::Repository::parse(image).map_err(|e| e.to_string())?;
    let registry: Box<dyn Registry> = match &args.registry_snapshot {
        Some(path) => Box::new(Snapshot::load(path).map_err(|e| e.to_string())?),
        None => Box::new(args.registry.live()?),
    };
    let listed = registry
        .tags(std::slice::from_ref(&repository))
        .pop()
        .expect("one answer per repository")
        .map_err(|e| e.to_string())?;
    let (names, skipped) = crate::registry::screen_tags(&repository, listed);
    if let Some(note) = skipped {
        eprintln!("image-update: warning: {note}");
    }
    let mut tags: Vec<TagInfo> = names.iter().map(|n| TagInfo::named(n)).collect();
    if !rule.strategy.needs_metadata() {
        return Ok(tags);
    }
    // Digest follows one tag; newest-build compares them all.
    let wanted: Vec<usize> = match rule.strategy {
        Strategy::Digest => tags
            .iter()
            .position(|t| t.name == rule.constraint)
            .into_iter()
            .collect(),
        _ => (0..tags.len()).collect(),
    };
    let refs: Vec<TagRef> = wanted
        .iter()
        .map(|&i| TagRef {
            repository: repository.clone(),
            tag: tags[i].name.clone(),
        })
        .collect();
    let platform = rule
        .platforms
        .first()
        .map_or(crate::policy::argo::DEFAULT_PLATFORM, String::as_str);
    let created = registry.created(&refs, platform);
    let platforms = registry.platforms(&refs);
    let digests = if rule.strategy == Strategy::Digest {
        registry.digests(&refs)
    } else {
        Vec::new()
    };
    for (k, &i) in wanted.iter().enumerate() {
        tags[i].created = created[k].as_ref().ok().cloned();
        tags[i].platforms = platforms[k].clone().unwrap_or_default();
        if let Some(Ok(digest)) = digests.get(k) {
            tags[i].digest = Some(digest.clone());
        }
    }
    Ok(tags)
}

fn selector(args: &SelectArgs) -> Result<Selector, RuleError> {
    let rule = match (&args.semver, &args.alphabetical, &args.numerical) {
        (Some(range), _, _) => Rule::semver(range)?,
        (_, Some(order), _) => Rule::Alphabetical(Order::parse(order)?),
        (_, _, Some(order)) => Rule::Numerical(Order::parse(order)?),
        _ => unreachable!("clap requires one rule"),
    };
    let flavor = match args.flavor {
        FlavorArg::Flux => Flavor::Flux,
        FlavorArg::Argocd => Flavor::Argo,
    };
    let mut selector = Selector::new(rule, flavor).with_exclusions(&args.exclude_tag)?;
    if let Some(pattern) = &args.filter_pattern {
        selector.filter = Some(TagFilter::new(
            pattern,
            args.filter_extract.as_deref().unwrap_or_default(),
        )?);
    }
    Ok(selector)
}

fn select(args: SelectArgs) -> ExitCode {
    if let Some(strategy) = &args.strategy {
        return select_argo(strategy, &args);
    }
    let selector = match selector(&args) {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    let tags = listed_tags(&args);
    let result = selector.select(&tags);
    if args.explain {
        let mut err = std::io::stderr().lock();
        for v in selector.explain(&tags) {
            let mark = if v.chosen { '*' } else { ' ' };
            let _ = writeln!(err, "{mark} {:<30} {}", v.tag, v.reason);
        }
    }
    match result {
        Ok(tag) => {
            println!("{tag}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("image-update: {e}");
            ExitCode::from(1)
        }
    }
}
