//! Command-line flags, resolved once into plain settings, and the dispatch of
//! each subcommand to the library. Exit status: 0 done, 1 something failed
//! (the rest was still applied), 2 bad usage or configuration.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand, ValueEnum};

use crate::policy::{Flavor, Order, Rule, RuleError, Selector, TagFilter};
use crate::registry::snapshot::Snapshot;
use crate::registry::{Registry, RegistryError, TagRef};
use crate::scan::Filter;
use crate::update::{self, RunOptions};

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
    /// Evaluate one selection rule over a list of tags.
    Select(SelectArgs),
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
    /// Answer registry questions from this snapshot file instead of the network.
    #[arg(long, value_name = "FILE")]
    registry_snapshot: Option<PathBuf>,
    /// Only edit files matching this glob (relative to DIR; repeatable).
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Never edit files matching this glob (relative to DIR; repeatable).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("rule").required(true).args(["semver", "alphabetical", "numerical"])))]
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
        Command::Select(args) => select(args),
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
    if !args.dir.is_dir() {
        return usage_error(format!("{} is not a directory", args.dir.display()));
    }
    let filter = match Filter::new(&args.include, &args.exclude) {
        Ok(f) => f,
        Err(e) => return usage_error(format!("invalid glob: {e}")),
    };
    let registry: Box<dyn Registry> = match &args.registry_snapshot {
        Some(path) => match Snapshot::load(path) {
            Ok(s) => Box::new(s),
            Err(e) => return usage_error(e),
        },
        None => Box::new(NoRegistry),
    };
    let options = RunOptions {
        root: args.dir,
        dry_run: args.dry_run,
        diff: args.diff,
        filter,
    };
    let report = update::run(&options, registry.as_ref());
    let text = match args.output {
        Output::Json => report.to_json(),
        Output::Text => {
            let mut text = report.to_text();
            if let Some(diff) = &report.diff {
                text.push_str(diff);
            }
            text
        }
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    if report.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Stands in for the registries when no source is configured.
struct NoRegistry;

impl NoRegistry {
    fn error(repository: String) -> RegistryError {
        RegistryError {
            repository,
            message: "no registry source configured: pass --registry-snapshot FILE".to_string(),
        }
    }
}

impl Registry for NoRegistry {
    fn tags(
        &self,
        repositories: &[crate::image::Repository],
    ) -> Vec<Result<Vec<String>, RegistryError>> {
        repositories
            .iter()
            .map(|r| Err(Self::error(r.to_string())))
            .collect()
    }

    fn digests(&self, tags: &[TagRef]) -> Vec<Result<String, RegistryError>> {
        tags.iter()
            .map(|t| Err(Self::error(t.repository.to_string())))
            .collect()
    }
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
    let selector = match selector(&args) {
        Ok(s) => s,
        Err(e) => return usage_error(e),
    };
    let tags: Vec<String> = if args.tags.is_empty() {
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
