//! Flags of `create`, `get`, `list`, `delete` and `serve`, resolved into the
//! calls of [`crate::manage`] and [`crate::serve`]. The `create` flags are
//! those of `flux create image repository|policy` where the resource is the
//! same, so users can keep their habits; the resource is validated before
//! anything is written.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use super::usage_error;
use crate::git::{self, Repo, Signature};
use crate::kubesphere;
use crate::manage::{self, Kind, Tree};
use crate::policy::{Order, Rule};
use crate::serve;

/// Where the tree is, where new files go, and whether to commit.
#[derive(Debug, Clone, clap::Args)]
pub struct TreeArgs {
    /// The working tree searched for existing resources.
    #[arg(long, value_name = "DIR", default_value = ".")]
    tree: PathBuf,
    /// Where new resources are written, relative to --tree (as `<dir>/<namespace>/<kind>-<name>.yaml`).
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Commit the file change (only that file).
    #[arg(long)]
    commit: bool,
    /// Author and committer of --commit, "Name <email>".
    #[arg(long, value_name = "NAME <EMAIL>")]
    author: Option<String>,
}

impl TreeArgs {
    fn tree(&self) -> Result<Tree, String> {
        if !self.tree.is_dir() {
            return Err(format!("{} is not a directory", self.tree.display()));
        }
        if self.dir.is_absolute() || self.dir.components().any(|c| c.as_os_str() == "..") {
            return Err(format!(
                "--dir {} must be a relative path inside --tree",
                self.dir.display()
            ));
        }
        Ok(Tree {
            root: self.tree.clone(),
            dir: self.dir.clone(),
        })
    }

    fn commit(&self, path: &std::path::Path, message: &str) -> Result<Option<String>, String> {
        if !self.commit {
            return Ok(None);
        }
        let repo = Repo::open(&self.tree).map_err(|e| e.to_string())?;
        let author = match &self.author {
            Some(a) => Signature::parse(a)
                .ok_or_else(|| format!("invalid --author {a:?}: write \"Name <email>\""))?,
            None => repo
                .configured_signature()
                .unwrap_or_else(git::default_signature),
        };
        let path = std::path::absolute(path).map_err(|e| e.to_string())?;
        repo.commit_paths(&[path], message, &author)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(subcommand)]
    what: CreateWhat,
}

// Parsed once per process: the size of the variants does not matter, and
// their names are the resource kinds.
#[allow(clippy::large_enum_variant, clippy::enum_variant_names)]
#[derive(Debug, Subcommand)]
enum CreateWhat {
    /// A Flux ImageRepository.
    #[command(name = "imagerepository", visible_alias = "image-repository")]
    ImageRepository(RepositoryArgs),
    /// A Flux ImagePolicy.
    #[command(name = "imagepolicy", visible_alias = "image-policy")]
    ImagePolicy(PolicyArgs),
    /// A unified ImageUpdater (gitops.kubesphere.io/v1alpha1).
    #[command(name = "imageupdater", visible_alias = "image-updater")]
    ImageUpdater(UpdaterArgs),
}

/// What every `create` takes.
#[derive(Debug, clap::Args)]
struct Common {
    /// The resource's name.
    name: String,
    /// The namespace (default: flux-system for Flux kinds, default for ImageUpdater).
    #[arg(short, long)]
    namespace: Option<String>,
    /// Print the resource instead of writing it.
    #[arg(long)]
    export: bool,
    #[command(flatten)]
    tree: TreeArgs,
}

#[derive(Debug, clap::Args)]
struct RepositoryArgs {
    #[command(flatten)]
    common: Common,
    /// The image repository, without tag (e.g. ghcr.io/acme/web).
    #[arg(long, required = true)]
    image: String,
    #[arg(long, default_value = "1m")]
    interval: String,
    /// The Secret with registry credentials (noted only: see the README).
    #[arg(long, value_name = "NAME")]
    secret_ref: Option<String>,
    /// Reach the registry over plain HTTP.
    #[arg(long)]
    insecure: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(ArgGroup::new("select").required(true).args(["select_semver", "select_alpha", "select_numeric"])))]
struct PolicyArgs {
    #[command(flatten)]
    common: Common,
    /// The ImageRepository this policy uses (NAME or NAMESPACE/NAME).
    #[arg(long, required = true, value_name = "NAME")]
    image_ref: String,
    /// A semver range.
    #[arg(long, value_name = "RANGE")]
    select_semver: Option<String>,
    /// Alphabetical order: asc or desc.
    #[arg(long, value_name = "ORDER")]
    select_alpha: Option<String>,
    /// Numerical order: asc or desc.
    #[arg(long, value_name = "ORDER")]
    select_numeric: Option<String>,
    /// Keep only tags matching this regular expression.
    #[arg(long, value_name = "REGEX")]
    filter_regex: Option<String>,
    /// Compare this template over the regex's captures ($1, $name).
    #[arg(long, value_name = "TEMPLATE", requires = "filter_regex")]
    filter_extract: Option<String>,
    /// digestReflectionPolicy: Always, IfNotPresent or Never.
    #[arg(long, value_name = "POLICY", value_parser = ["Always", "IfNotPresent", "Never"])]
    reflect_digest: Option<String>,
    /// How often to reflect the digest (with --reflect-digest Always).
    #[arg(long)]
    interval: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Engine {
    Argocd,
    Fluxcd,
}

#[derive(Debug, clap::Args)]
struct UpdaterArgs {
    #[command(flatten)]
    common: Common,
    /// An image, `[alias=]image[:constraint]` (repeatable).
    #[arg(long, required = true, value_name = "IMAGE")]
    image: Vec<String>,
    /// The engine whose rules apply.
    #[arg(long, value_enum)]
    kind: Engine,
    /// argocd: the Application's name.
    #[arg(long, value_name = "NAME")]
    app: Option<String>,
    /// argocd: the Application's namespace.
    #[arg(long, value_name = "NAMESPACE")]
    app_namespace: Option<String>,
    /// argocd: `built-in` (write-back argocd) or `git`.
    #[arg(long, value_parser = ["built-in", "git"])]
    write: Option<String>,
    /// argocd: ALIAS=STRATEGY (repeatable).
    #[arg(long, value_name = "ALIAS=STRATEGY")]
    update_strategy: Vec<String>,
    /// argocd: ALIAS=any|regexp:RE (repeatable).
    #[arg(long, value_name = "ALIAS=MATCH")]
    allow_tags: Vec<String>,
    /// argocd: ALIAS=GLOB[,GLOB] (repeatable).
    #[arg(long, value_name = "ALIAS=GLOBS")]
    ignore_tags: Vec<String>,
    /// argocd: ALIAS=OS/ARCH[,OS/ARCH] (repeatable).
    #[arg(long, value_name = "ALIAS=PLATFORMS")]
    platforms: Vec<String>,
    /// argocd: ALIAS=SECRET (repeatable); fluxcd: SECRET.
    #[arg(long, value_name = "SECRET")]
    secret: Vec<String>,
    /// fluxcd: how often to scan.
    #[arg(long)]
    interval: Option<String>,
    /// fluxcd: a semver range for images without a constraint.
    #[arg(long, value_name = "RANGE")]
    select_semver: Option<String>,
    /// fluxcd: alphabetical order (asc or desc) for images without a constraint.
    #[arg(long, value_name = "ORDER")]
    select_alpha: Option<String>,
    /// fluxcd: numerical order (asc or desc) for images without a constraint.
    #[arg(long, value_name = "ORDER")]
    select_numeric: Option<String>,
    /// fluxcd: the GitRepository, NAME or GitRepository/NAME.
    #[arg(long, value_name = "NAME")]
    source_ref: Option<String>,
    /// fluxcd: git.checkout.ref.branch.
    #[arg(long, value_name = "BRANCH")]
    checkout_branch: Option<String>,
    /// fluxcd: git.push.branch.
    #[arg(long, value_name = "BRANCH")]
    push_branch: Option<String>,
    /// fluxcd: git.commit.author.name.
    #[arg(long, value_name = "NAME")]
    author_name: Option<String>,
    /// fluxcd: git.commit.author.email.
    #[arg(long, value_name = "EMAIL")]
    author_email: Option<String>,
    /// fluxcd: git.commit.messageTemplate.
    #[arg(long, value_name = "TEMPLATE")]
    commit_template: Option<String>,
    /// fluxcd: update.path.
    #[arg(long, value_name = "PATH")]
    update_path: Option<String>,
}

/// `ALIAS=VALUE` flags as a map.
fn alias_values(flag: &str, values: &[String]) -> Result<Option<Value>, String> {
    if values.is_empty() {
        return Ok(None);
    }
    let mut map = Map::new();
    for v in values {
        let (alias, value) = v
            .split_once('=')
            .ok_or_else(|| format!("--{flag} {v:?}: write ALIAS=VALUE"))?;
        map.insert(alias.to_string(), value.into());
    }
    Ok(Some(Value::Object(map)))
}

fn rule_json(
    semver: &Option<String>,
    alpha: &Option<String>,
    numeric: &Option<String>,
) -> Result<Option<Value>, String> {
    let check_order = |o: &str| Order::parse(o).map_err(|e| e.to_string());
    Ok(match (semver, alpha, numeric) {
        (Some(range), None, None) => {
            Rule::semver(range).map_err(|e| format!("--select-semver: {e}"))?;
            Some(json!({"semver": {"range": range}}))
        }
        (None, Some(order), None) => {
            check_order(order).map_err(|e| format!("--select-alpha: {e}"))?;
            Some(json!({"alphabetical": {"order": order}}))
        }
        (None, None, Some(order)) => {
            check_order(order).map_err(|e| format!("--select-numeric: {e}"))?;
            Some(json!({"numerical": {"order": order}}))
        }
        (None, None, None) => None,
        _ => {
            return Err(
                "give only one of --select-semver, --select-alpha, --select-numeric".into(),
            );
        }
    })
}

fn insert(map: &mut Map<String, Value>, path: &[&str], value: Option<Value>) {
    let Some(value) = value else { return };
    let (last, parents) = path.split_last().expect("a path");
    let mut at = map;
    for p in parents {
        at = at
            .entry(p.to_string())
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("objects all the way");
    }
    at.insert(last.to_string(), value);
}

/// The resource text, its kind, namespace and name.
/// A Flux resource's YAML, with its kind, namespace and name.
fn flux_resource(
    kind: Kind,
    name: &str,
    ns: String,
    spec: Map<String, Value>,
) -> (String, Kind, String, String) {
    let value = json!({
        "apiVersion": kind.api_version(),
        "kind": kind.name(),
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    });
    (manage::to_yaml(&value), kind, ns, name.to_string())
}

fn build(what: &CreateWhat) -> Result<(String, Kind, String, String), String> {
    let flux_ns = |c: &Common| c.namespace.clone().unwrap_or_else(|| "flux-system".into());
    let check = |c: &Common, ns: &str| -> Result<(), String> {
        kubesphere::check_name(&c.name).map_err(|e| format!("NAME: {e}"))?;
        kubesphere::check_label(ns).map_err(|e| format!("--namespace: {e}"))
    };
    let s = |v: &Option<String>| v.clone().map(Value::String);
    match what {
        CreateWhat::ImageRepository(a) => {
            let ns = flux_ns(&a.common);
            check(&a.common, &ns)?;
            let (name, tag) = (
                crate::image::Reference::split(&a.image).name,
                crate::image::Reference::split(&a.image).tag,
            );
            if tag.is_some() || a.image.contains('@') {
                return Err(format!(
                    "--image {:?}: give the repository without tag or digest",
                    a.image
                ));
            }
            crate::image::Repository::parse(name).map_err(|e| format!("--image: {e}"))?;
            kubesphere::check_duration(&a.interval).map_err(|e| format!("--interval: {e}"))?;
            let mut spec = Map::new();
            insert(&mut spec, &["image"], Some(a.image.clone().into()));
            insert(&mut spec, &["interval"], Some(a.interval.clone().into()));
            insert(&mut spec, &["secretRef", "name"], s(&a.secret_ref));
            if a.insecure {
                insert(&mut spec, &["insecure"], Some(Value::Bool(true)));
            }
            Ok(flux_resource(
                Kind::ImageRepository,
                &a.common.name,
                ns,
                spec,
            ))
        }
        CreateWhat::ImagePolicy(a) => {
            let ns = flux_ns(&a.common);
            check(&a.common, &ns)?;
            let mut spec = Map::new();
            match a.image_ref.split_once('/') {
                Some((rns, rname)) => {
                    insert(
                        &mut spec,
                        &["imageRepositoryRef", "name"],
                        Some(rname.into()),
                    );
                    insert(
                        &mut spec,
                        &["imageRepositoryRef", "namespace"],
                        Some(rns.into()),
                    );
                }
                None => insert(
                    &mut spec,
                    &["imageRepositoryRef", "name"],
                    Some(a.image_ref.clone().into()),
                ),
            }
            insert(
                &mut spec,
                &["policy"],
                rule_json(&a.select_semver, &a.select_alpha, &a.select_numeric)?,
            );
            if let Some(pattern) = &a.filter_regex {
                let extract = a.filter_extract.clone().unwrap_or_default();
                kubesphere::check_filter(pattern, &extract)
                    .map_err(|e| format!("--filter-regex: {e}"))?;
                insert(
                    &mut spec,
                    &["filterTags", "pattern"],
                    Some(pattern.clone().into()),
                );
                if !extract.is_empty() {
                    insert(&mut spec, &["filterTags", "extract"], Some(extract.into()));
                }
            }
            // The v1 CRD's rules: the API server refuses either alone.
            match (a.reflect_digest.as_deref() == Some("Always"), &a.interval) {
                (true, None) => {
                    return Err("--reflect-digest Always needs --interval (spec.interval must be set when spec.digestReflectionPolicy is set to 'Always')".into());
                }
                (false, Some(_)) => {
                    return Err("--interval needs --reflect-digest Always (spec.interval is only accepted when spec.digestReflectionPolicy is set to 'Always')".into());
                }
                _ => {}
            }
            insert(&mut spec, &["digestReflectionPolicy"], s(&a.reflect_digest));
            if let Some(i) = &a.interval {
                kubesphere::check_duration(i).map_err(|e| format!("--interval: {e}"))?;
            }
            insert(&mut spec, &["interval"], s(&a.interval));
            Ok(flux_resource(Kind::ImagePolicy, &a.common.name, ns, spec))
        }
        CreateWhat::ImageUpdater(a) => {
            let ns = a
                .common
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into());
            check(&a.common, &ns)?;
            let mut spec = Map::new();
            spec.insert("images".into(), json!(a.image));
            let argo_flags = a.app.is_some()
                || a.app_namespace.is_some()
                || a.write.is_some()
                || !a.update_strategy.is_empty()
                || !a.allow_tags.is_empty()
                || !a.ignore_tags.is_empty()
                || !a.platforms.is_empty();
            let flux_flags = a.interval.is_some()
                || a.select_semver.is_some()
                || a.select_alpha.is_some()
                || a.select_numeric.is_some()
                || a.source_ref.is_some()
                || a.checkout_branch.is_some()
                || a.push_branch.is_some()
                || a.author_name.is_some()
                || a.author_email.is_some()
                || a.commit_template.is_some()
                || a.update_path.is_some();
            match a.kind {
                Engine::Argocd => {
                    if flux_flags {
                        return Err("fluxcd flags (--interval, --select-*, --source-ref, --checkout-branch, --push-branch, --author-*, --commit-template, --update-path) do not apply to --kind argocd".into());
                    }
                    spec.insert("kind".into(), "argocd".into());
                    let mut argo = Map::new();
                    insert(&mut argo, &["app", "name"], s(&a.app));
                    insert(&mut argo, &["app", "namespace"], s(&a.app_namespace));
                    insert(&mut argo, &["write"], s(&a.write));
                    insert(
                        &mut argo,
                        &["update-strategy"],
                        alias_values("update-strategy", &a.update_strategy)?,
                    );
                    insert(
                        &mut argo,
                        &["allow-tags"],
                        alias_values("allow-tags", &a.allow_tags)?,
                    );
                    insert(
                        &mut argo,
                        &["ignore-tags"],
                        alias_values("ignore-tags", &a.ignore_tags)?,
                    );
                    insert(
                        &mut argo,
                        &["platforms"],
                        alias_values("platforms", &a.platforms)?,
                    );
                    insert(&mut argo, &["secret"], alias_values("secret", &a.secret)?);
                    spec.insert("argocd".into(), Value::Object(argo));
                }
                Engine::Fluxcd => {
                    if argo_flags {
                        return Err("argocd flags (--app, --app-namespace, --write, --update-strategy, --allow-tags, --ignore-tags, --platforms) do not apply to --kind fluxcd".into());
                    }
                    if a.secret.len() > 1 {
                        return Err("--kind fluxcd takes one --secret".into());
                    }
                    spec.insert("kind".into(), "fluxcd".into());
                    let mut flux = Map::new();
                    insert(&mut flux, &["interval"], s(&a.interval));
                    insert(
                        &mut flux,
                        &["secret"],
                        a.secret.first().cloned().map(Value::String),
                    );
                    insert(
                        &mut flux,
                        &["policy"],
                        rule_json(&a.select_semver, &a.select_alpha, &a.select_numeric)?,
                    );
                    if let Some(source) = &a.source_ref {
                        let (kind, name) =
                            source.split_once('/').unwrap_or(("GitRepository", source));
                        insert(
                            &mut flux,
                            &["sourceRef"],
                            Some(json!({"kind": kind, "name": name})),
                        );
                    }
                    insert(
                        &mut flux,
                        &["git", "checkout", "ref", "branch"],
                        s(&a.checkout_branch),
                    );
                    insert(
                        &mut flux,
                        &["git", "commit", "author", "email"],
                        s(&a.author_email),
                    );
                    insert(
                        &mut flux,
                        &["git", "commit", "author", "name"],
                        s(&a.author_name),
                    );
                    insert(
                        &mut flux,
                        &["git", "commit", "messageTemplate"],
                        s(&a.commit_template),
                    );
                    insert(&mut flux, &["git", "push", "branch"], s(&a.push_branch));
                    if let Some(path) = &a.update_path {
                        insert(
                            &mut flux,
                            &["update"],
                            Some(json!({"path": path, "strategy": "Setters"})),
                        );
                    }
                    spec.insert("fluxcd".into(), Value::Object(flux));
                }
            }
            let body = json!({"metadata": {"name": a.common.name}, "spec": spec});
            let (text, _) = manage::updater_from_json(&body, &ns, None).map_err(|errors| {
                let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
                format!("invalid ImageUpdater:\n{}", lines.join("\n"))
            })?;
            Ok((text, Kind::ImageUpdater, ns, a.common.name.clone()))
        }
    }
}

pub fn create(args: CreateArgs) -> ExitCode {
    let common = match &args.what {
        CreateWhat::ImageRepository(a) => &a.common,
        CreateWhat::ImagePolicy(a) => &a.common,
        CreateWhat::ImageUpdater(a) => &a.common,
    };
    let (text, kind, ns, name) = match build(&args.what) {
        Ok(built) => built,
        Err(e) => return usage_error(e),
    };
    if common.export {
        print!("---\n{text}");
        return ExitCode::SUCCESS;
    }
    let tree = match common.tree.tree() {
        Ok(t) => t,
        Err(e) => return usage_error(e),
    };
    let path = match tree.create(kind, &ns, &name, &text) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("image-update: {e}");
            return ExitCode::from(1);
        }
    };
    let (rel, _) = tree.new_path(kind, &ns, &name);
    println!("{} {ns}/{name} created in {rel}", kind.name());
    finish(
        &common.tree,
        &path,
        &format!("Create {} {ns}/{name}", kind.name()),
    )
}

fn finish(tree: &TreeArgs, path: &std::path::Path, message: &str) -> ExitCode {
    match tree.commit(path, message) {
        Ok(Some(sha)) => {
            println!("committed {sha}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("image-update: the file was written but not committed: {e}");
            ExitCode::from(1)
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    #[value(alias = "imageupdaters", alias = "image-updater")]
    Imageupdater,
    #[value(alias = "imagerepositories", alias = "image-repository")]
    Imagerepository,
    #[value(alias = "imagepolicies", alias = "image-policy")]
    Imagepolicy,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Kind {
        match k {
            KindArg::Imageupdater => Kind::ImageUpdater,
            KindArg::Imagerepository => Kind::ImageRepository,
            KindArg::Imagepolicy => Kind::ImagePolicy,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    #[arg(value_enum)]
    kind: KindArg,
    name: String,
    /// The namespace; without it, the name must be unique in the tree.
    #[arg(short, long)]
    namespace: Option<String>,
    /// `get`: yaml prints the document as it is in its file.
    #[arg(short, long, value_enum, default_value_t = Format::Yaml)]
    output: Format,
    #[command(flatten)]
    tree: TreeArgs,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only this kind.
    #[arg(value_enum)]
    kind: Option<KindArg>,
    /// Only this namespace.
    #[arg(short, long)]
    namespace: Option<String>,
    #[arg(short, long, value_enum)]
    output: Option<Format>,
    #[command(flatten)]
    tree: TreeArgs,
}

fn find_one(args: &GetArgs) -> Result<manage::Found, ExitCode> {
    let tree = args.tree.tree().map_err(usage_error)?;
    let kind = Kind::from(args.kind);
    let (all, _) = tree.list(Some(kind));
    let matching: Vec<_> = all
        .into_iter()
        .filter(|f| {
            f.name == args.name && args.namespace.as_ref().is_none_or(|n| &f.namespace == n)
        })
        .collect();
    match matching.as_slice() {
        [] => {
            eprintln!(
                "image-update: {} {}{} not found in {}",
                kind.name(),
                args.namespace
                    .as_ref()
                    .map(|n| format!("{n}/"))
                    .unwrap_or_default(),
                args.name,
                args.tree.tree.display()
            );
            Err(ExitCode::from(1))
        }
        [one] => Ok(one.clone()),
        several => {
            let places: Vec<String> = several
                .iter()
                .map(|f| format!("{} ({}:{})", f.namespace, f.rel, f.line))
                .collect();
            Err(usage_error(format!(
                "{} {} exists in several namespaces: {}; choose one with --namespace",
                kind.name(),
                args.name,
                places.join(", ")
            )))
        }
    }
}

pub fn get(args: GetArgs) -> ExitCode {
    let found = match find_one(&args) {
        Ok(f) => f,
        Err(code) => return code,
    };
    match args.output {
        Format::Yaml => print!("{}", found.text),
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&found.to_json()).expect("JSON")
        ),
    }
    ExitCode::SUCCESS
}

pub fn list(args: ListArgs) -> ExitCode {
    let tree = match args.tree.tree() {
        Ok(t) => t,
        Err(e) => return usage_error(e),
    };
    let (all, problems) = tree.list(args.kind.map(Kind::from));
    let all: Vec<_> = all
        .into_iter()
        .filter(|f| args.namespace.as_ref().is_none_or(|n| &f.namespace == n))
        .collect();
    if let Some(Format::Json) = args.output {
        let items: Vec<Value> = all.iter().map(manage::Found::to_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"kind": "List", "items": items})).expect("JSON")
        );
    } else {
        println!(
            "{:<16} {:<16} {:<24} {:<16} FILE",
            "KIND", "NAMESPACE", "NAME", "VERSION"
        );
        for f in &all {
            println!(
                "{:<16} {:<16} {:<24} {:<16} {}:{}",
                f.kind.name(),
                f.namespace,
                f.name,
                f.version,
                f.rel,
                f.line
            );
        }
    }
    for p in problems {
        eprintln!(
            "image-update: {}: {}",
            p.file.unwrap_or_default(),
            p.message
        );
    }
    ExitCode::SUCCESS
}

pub fn delete(args: GetArgs) -> ExitCode {
    let found = match find_one(&args) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let tree = match args.tree.tree() {
        Ok(t) => t,
        Err(e) => return usage_error(e),
    };
    if let Err(e) = tree.delete(&found) {
        eprintln!("image-update: {e}");
        return ExitCode::from(1);
    }
    println!(
        "{} {}/{} deleted from {}",
        found.kind.name(),
        found.namespace,
        found.name,
        found.rel
    );
    finish(
        &args.tree,
        &found.path,
        &format!(
            "Delete {} {}/{}",
            found.kind.name(),
            found.namespace,
            found.name
        ),
    )
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The working tree.
    #[arg(default_value = ".")]
    tree: PathBuf,
    /// Where new resources are written, relative to the tree.
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// The address to listen on (port 0: any free port; the address is printed on stderr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Require `Authorization: Bearer <token>`, the first line of this file.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Commit every change.
    #[arg(long)]
    commit: bool,
    /// Author and committer of --commit, "Name <email>".
    #[arg(long, value_name = "NAME <EMAIL>")]
    author: Option<String>,
    /// The largest request body accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_body: usize,
    /// Seconds a client may take to send a request's headers, and its body.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    request_timeout: u64,
}

pub fn serve(args: ServeArgs) -> ExitCode {
    let tree = TreeArgs {
        tree: args.tree.clone(),
        dir: args.dir.clone(),
        commit: args.commit,
        author: args.author.clone(),
    };
    let tree = match tree.tree() {
        Ok(t) => t,
        Err(e) => return usage_error(e),
    };
    let token = match args.token_file.as_ref().map(serve::read_token).transpose() {
        Ok(t) => t,
        Err(e) => return usage_error(e),
    };
    let options = serve::Options {
        tree,
        listen: args.listen,
        token,
        commit: args.commit,
        author: args.author,
        max_body: args.max_body,
        request_timeout: std::time::Duration::from_secs(args.request_timeout.max(1)),
    };
    match serve::main(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => usage_error(e),
    }
}
