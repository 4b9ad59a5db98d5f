//! Flux image automation read from the tree: `ImageRepository`, `ImagePolicy`
//! and `ImageUpdateAutomation` of `image.toolkit.fluxcd.io` v1beta1, v1beta2
//! and v1, translated into the engine's dialect-free [`Policy`].
//!
//! Flux's cluster rules are applied as kubectl and the controllers would: a
//! resource without a namespace is in `default`; a policy may reference a
//! repository in another namespace only when that repository's `accessFrom`
//! allows it; an automation uses only the policies of its own namespace that
//! its `policySelector` matches, and only inside its `update.path`.

use std::collections::BTreeMap;

use crate::image::{Repository, redact_credentials};
use crate::outcome::{Problem, Severity};
use crate::policy::{
    DigestReflection, Flavor, Order, Policy, PolicyId, Rule, RuleError, Selector, TagFilter,
};
use crate::yaml::Node;

pub const API_GROUP: &str = "image.toolkit.fluxcd.io";
const VERSIONS: [&str; 3] = ["v1beta1", "v1beta2", "v1"];

/// Where a resource was declared, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

#[derive(Debug, Clone)]
struct Meta {
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    origin: Origin,
}

#[derive(Debug)]
struct ImageRepository {
    meta: Meta,
    image: Option<String>,
    exclusions: Vec<String>,
    access_from: bool,
    insecure: bool,
}

#[derive(Debug)]
struct ImagePolicy {
    meta: Meta,
    /// (namespace, name) of the repository.
    repository: (String, String),
    spec: Result<PolicySpec, String>,
}

#[derive(Debug)]
struct PolicySpec {
    rule: Rule,
    filter: Option<TagFilter>,
    digest: DigestReflection,
}

#[derive(Debug)]
struct Automation {
    meta: Meta,
    suspended: bool,
    path: Result<String, String>,
    selector: Option<Result<LabelSelector, String>>,
    git: GitSettings,
}

/// What an `ImageUpdateAutomation` says about committing and pushing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitSettings {
    /// `namespace`, `name` of the automation, for `.AutomationObject`.
    pub automation: (String, String),
    /// `git.commit.author` as `Name <email>`.
    pub author: Option<String>,
    pub message_template: Option<String>,
    pub message_values: BTreeMap<String, String>,
    pub push_branch: Option<String>,
    pub push_refspec: Option<String>,
    /// `git.push.options`, as `key=value` (or `key` when the value is empty).
    pub push_options: Vec<String>,
    /// `update.path`, normalised; empty for the root.
    pub path: String,
    /// An `image.toolkit.fluxcd.io/v1` automation, whose templates no
    /// longer see `.Updated` and `.Changed.ImageResult`.
    pub v1: bool,
}

/// All Flux resources found in the tree, in the order they were read.
#[derive(Debug, Default)]
pub struct Resources {
    repositories: Vec<ImageRepository>,
    policies: Vec<ImagePolicy>,
    automations: Vec<Automation>,
    pub problems: Vec<Problem>,
    /// Files that declare Flux resources but cannot be parsed (reported as
    /// errors): what they declare is unknown.
    pub unread: Vec<Origin>,
}

/// Where a policy's markers are honoured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// No automation in the tree: every policy applies everywhere.
    Everywhere,
    /// The `update.path` of each automation that selects the policy.
    Paths(Vec<ScopedPath>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedPath {
    /// Relative to the tree root, `/`-separated, no leading `./`; empty for the root.
    pub path: String,
    pub automation: String,
}

impl Scope {
    /// `Ok` when a marker in `file` may use the policy, else the reason it may not.
    pub fn admits(&self, file: &str, policy: &PolicyId) -> Result<(), String> {
        match self {
            Scope::Everywhere => Ok(()),
            Scope::Paths(paths) if paths.is_empty() => Err(format!(
                "no ImageUpdateAutomation uses policy {policy}: an automation uses only policies of its own namespace ({}) that its policySelector matches",
                policy.namespace
            )),
            Scope::Paths(paths) => {
                if paths.iter().any(|p| within(file, &p.path)) {
                    return Ok(());
                }
                let names: Vec<String> = paths
                    .iter()
                    .map(|p| {
                        format!(
                            "{} (update.path {:?})",
                            p.automation,
                            if p.path.is_empty() { "." } else { &p.path }
                        )
                    })
                    .collect();
                Err(format!(
                    "the file is outside the update.path of every automation using policy {policy}: {}",
                    names.join(", ")
                ))
            }
        }
    }
}

fn within(file: &str, dir: &str) -> bool {
    dir.is_empty()
        || file
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A policy as the engine sees it, or why it cannot be used.
#[derive(Debug)]
pub struct Declared {
    pub id: PolicyId,
    pub origin: Origin,
    pub image: String,
    pub rule: String,
    pub policy: Result<Policy, String>,
    pub scope: Scope,
    /// The promotion gate of its `image-update.dev/promote-from` and
    /// `image-update.dev/soak` annotations (an invalid one fails `policy`).
    pub gate: Option<crate::hold::Gate>,
}

impl Resources {
    /// Reads one YAML document if it is a Flux image resource.
    pub fn read(&mut self, file: &str, root: &Node) {
        let Some(api_version) = root.str_at(&["apiVersion"]) else {
            return;
        };
        let Some(version) = api_version
            .strip_prefix(API_GROUP)
            .and_then(|v| v.strip_prefix('/'))
        else {
            return;
        };
        let kind = root.str_at(&["kind"]).unwrap_or_default();
        let line = root.position().line;
        if !matches!(
            kind,
            "ImageRepository" | "ImagePolicy" | "ImageUpdateAutomation"
        ) {
            return;
        }
        if !VERSIONS.contains(&version) {
            self.problems.push(Problem::at(
                file,
                line,
                None,
                Severity::Warning,
                format!(
                    "{kind} of unknown version {api_version} ignored (known: v1beta1, v1beta2, v1)"
                ),
            ));
            return;
        }
        let meta = Meta {
            namespace: root.namespace_or("default").to_string(),
            name: root.object_name().to_string(),
            labels: root
                .at(&["metadata", "labels"])
                .map(string_map)
                .unwrap_or_default(),
            annotations: root
                .at(&["metadata", "annotations"])
                .map(string_map)
                .unwrap_or_default(),
            origin: Origin {
                file: file.to_string(),
                line,
            },
        };
        if meta.name.is_empty() {
            self.problems.push(Problem::at(
                file,
                line,
                None,
                Severity::Error,
                format!("{kind} has no metadata.name"),
            ));
            return;
        }
        let spec = root.get("spec").unwrap_or(&Node::Empty);
        match kind {
            "ImageRepository" => self.repositories.push(ImageRepository {
                image: spec.str_at(&["image"]).map(str::to_string),
                exclusions: spec
                    .get("exclusionList")
                    .map(|l| {
                        l.items()
                            .iter()
                            .filter_map(|i| i.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                access_from: spec.get("accessFrom").is_some_and(|n| !n.is_null()),
                insecure: spec.str_at(&["insecure"]) == Some("true"),
                meta,
            }),
            "ImagePolicy" => self.policies.push(ImagePolicy {
                repository: (
                    spec.str_at(&["imageRepositoryRef", "namespace"])
                        .filter(|ns| !ns.is_empty())
                        .unwrap_or(&meta.namespace)
                        .to_string(),
                    spec.str_at(&["imageRepositoryRef", "name"])
                        .unwrap_or_default()
                        .to_string(),
                ),
                spec: policy_spec(spec, version),
                meta,
            }),
            _ => self.automations.push(Automation {
                git: git_settings(spec, &meta, version == "v1"),
                suspended: spec.str_at(&["suspend"]) == Some("true"),
                path: update_path(spec),
                selector: spec
                    .get("policySelector")
                    .filter(|n| !n.is_null())
                    .map(LabelSelector::read),
                meta,
            }),
        }
    }

    /// Resolves references and scopes into the engine's policies.
    pub fn declare(&mut self) -> Vec<Declared> {
        for a in &self.automations {
            let problem = |m: String| {
                Problem::at(
                    &a.meta.origin.file,
                    a.meta.origin.line,
                    None,
                    Severity::Error,
                    m,
                )
            };
            if let Err(e) = &a.path {
                self.problems.push(problem(format!(
                    "ImageUpdateAutomation {}: {e}",
                    a.meta.name
                )));
            }
            if a.suspended {
                self.problems.push(Problem::at(
                    &a.meta.origin.file,
                    a.meta.origin.line,
                    None,
                    Severity::Info,
                    format!(
                        "ImageUpdateAutomation {}/{} is suspended; its markers are not applied",
                        a.meta.namespace, a.meta.name
                    ),
                ));
            }
            if let Some(Err(e)) = &a.selector {
                self.problems.push(problem(format!(
                    "ImageUpdateAutomation {}: policySelector: {e}",
                    a.meta.name
                )));
            }
        }
        self.policies
            .iter()
            .map(|p| {
                let id = PolicyId::new(&p.meta.namespace, &p.meta.name);
                let repo = self.repository_of(p);
                let gate = crate::hold::Gate::annotated(&[&p.meta.annotations], "");
                let policy = self
                    .policy(&id, p, repo.clone())
                    .and_then(|policy| gate.clone().map(|_| policy));
                Declared {
                    image: repo
                        .0
                        .and_then(|r| r.image.as_deref())
                        .map(|i| redact_credentials(i).into_owned())
                        .unwrap_or_default(),
                    rule: p
                        .spec
                        .as_ref()
                        .map(|s| s.rule.to_string())
                        .unwrap_or_default(),
                    policy,
                    gate: gate.ok().flatten(),
                    scope: self.scope(p),
                    origin: p.meta.origin.clone(),
                    id,
                }
            })
            .collect()
    }

    fn policy(
        &self,
        id: &PolicyId,
        p: &ImagePolicy,
        (repo, conflict): (Option<&ImageRepository>, Option<String>),
    ) -> Result<Policy, String> {
        let (ns, name) = &p.repository;
        if name.is_empty() {
            return Err("spec.imageRepositoryRef.name is missing".to_string());
        }
        if let Some(conflict) = conflict {
            return Err(conflict);
        }
        let Some(repo) = repo else {
            return Err(format!("ImageRepository {ns}/{name} is not in the tree"));
        };
        if *ns != p.meta.namespace && !repo.access_from {
            return Err(format!(
                "ImageRepository {ns}/{name} is in another namespace and has no spec.accessFrom, so Flux denies access from namespace {}",
                p.meta.namespace
            ));
        }
        let spec = p.spec.as_ref().map_err(Clone::clone)?;
        let image = repo
            .image
            .as_deref()
            .ok_or_else(|| format!("ImageRepository {ns}/{name} has no spec.image"))?;
        if redact_credentials(image) != image {
            return Err(format!(
                "ImageRepository {ns}/{name}: spec.image {:?} carries credentials; use spec.secretRef",
                redact_credentials(image)
            ));
        }
        if image.contains('@') || crate::image::Reference::split(image).tag.is_some() {
            return Err(format!(
                "ImageRepository {ns}/{name}: spec.image {image:?} must not have a tag or digest"
            ));
        }
        let repository = Repository::parse(image).map_err(|e| e.to_string())?;
        let mut selector = Selector::new(spec.rule.clone(), Flavor::Flux)
            .with_exclusions(&repo.exclusions)
            .map_err(|e| format!("ImageRepository {ns}/{name}: {e}"))?;
        selector.filter = spec.filter.clone();
        Ok(Policy {
            id: id.clone(),
            image: image.to_string(),
            repository,
            selector,
            digest: spec.digest,
            insecure: repo.insecure,
        })
    }

    /// The repository a policy uses. The same repository may be declared
    /// in several places (one copy per cluster directory): the copy nearest
    /// to the policy's file is the one of its cluster. Equally near copies
    /// that say different things are a conflict, returned beside the first.
    fn repository_of(&self, p: &ImagePolicy) -> (Option<&ImageRepository>, Option<String>) {
        let copies = self
            .repositories
            .iter()
            .filter(|r| (&r.meta.namespace, &r.meta.name) == (&p.repository.0, &p.repository.1));
        let nearest = nearest(&p.meta.origin.file, copies, |r| &r.meta.origin.file);
        let Some(first) = nearest.first().copied() else {
            return (None, None);
        };
        fn says(r: &ImageRepository) -> (&Option<String>, &Vec<String>, bool, bool) {
            (&r.image, &r.exclusions, r.access_from, r.insecure)
        }
        let here = shared_dirs(&p.meta.origin.file, &first.meta.origin.file);
        if let Some(u) = self
            .unread
            .iter()
            .find(|u| shared_dirs(&p.meta.origin.file, &u.file) > here)
        {
            let conflict = format!(
                "ImageRepository {}/{}: {} cannot be read and is nearer to this policy than the declaration at {}:{}, so it may hold this folder's own copy",
                p.repository.0,
                p.repository.1,
                u.file,
                first.meta.origin.file,
                first.meta.origin.line
            );
            return (Some(first), Some(conflict));
        }
        let conflict = nearest.iter().find(|r| says(r) != says(first)).map(|other| {
            format!(
                    "ImageRepository {}/{} is declared differently at {}:{} and {}:{}, both as near to this policy",
                    p.repository.0,
                    p.repository.1,
                    first.meta.origin.file,
                    first.meta.origin.line,
                    other.meta.origin.file,
                other.meta.origin.line
            )
        });
        (Some(first), conflict)
    }

    /// The automations that use this declaration of a policy: those of its
    /// namespace whose selector matches it and for which it is the nearest
    /// declaration of its name (a `clusters/staging` automation uses the
    /// `clusters/staging` copy of a policy, not the `clusters/production`
    /// one).
    fn scope(&self, p: &ImagePolicy) -> Scope {
        if self.automations.is_empty() {
            return Scope::Everywhere;
        }
        let selects = |a: &Automation, q: &ImagePolicy| match &a.selector {
            None => true,
            Some(Ok(selector)) => selector.matches(&q.meta.labels),
            Some(Err(_)) => false,
        };
        Scope::Paths(
            self.automations
                .iter()
                .filter(|a| a.meta.namespace == p.meta.namespace && !a.suspended)
                .filter(|a| selects(a, p))
                .filter(|a| {
                    let copies = self.policies.iter().filter(|q| {
                        (&q.meta.namespace, &q.meta.name) == (&p.meta.namespace, &p.meta.name)
                            && selects(a, q)
                    });
                    nearest(&a.meta.origin.file, copies, |q| &q.meta.origin.file)
                        .iter()
                        .any(|q| std::ptr::eq(*q, p))
                })
                // A file nearer to the automation that cannot be read may
                // hold the copy of its folder: it uses none it cannot see.
                .filter(|a| {
                    let at = |f: &str| shared_dirs(&a.meta.origin.file, f);
                    let here = at(&p.meta.origin.file);
                    !self.unread.iter().any(|u| at(&u.file) > here)
                })
                .filter_map(|a| {
                    Some(ScopedPath {
                        path: a.path.clone().ok()?,
                        automation: format!("{}/{}", a.meta.namespace, a.meta.name),
                    })
                })
                .collect(),
        )
    }

    /// The git settings of the automation that covers the most of `files`
    /// (paths relative to the tree root); `None` when the tree has none.
    /// The commit authors of the automations in the tree (`Name <email>`):
    /// their commits are automated ones.
    pub fn authors(&self) -> impl Iterator<Item = &str> {
        self.automations
            .iter()
            .filter_map(|a| a.git.author.as_deref())
    }

    pub fn git_settings<'a>(
        &self,
        files: impl Iterator<Item = &'a str> + Clone,
    ) -> Option<GitSettings> {
        self.automations
            .iter()
            .filter(|a| !a.suspended)
            .rev()
            .max_by_key(|a| files.clone().filter(|f| within(f, &a.git.path)).count())
            .map(|a| a.git.clone())
    }
}

/// The items declared nearest to `file`: those whose file shares the most
/// leading directories with it.
pub fn nearest<'a, T>(
    file: &str,
    items: impl Iterator<Item = &'a T>,
    file_of: impl Fn(&T) -> &str,
) -> Vec<&'a T> {
    let mut best = Vec::new();
    let mut best_shared = 0;
    for item in items {
        let shared = shared_dirs(file, file_of(item));
        if best.is_empty() || shared > best_shared {
            best = vec![item];
            best_shared = shared;
        } else if shared == best_shared {
            best.push(item);
        }
    }
    best
}

/// How many leading directories two files (relative, `/`-separated) share.
///
/// A file of a `--policies` directory is named `PATH/<file>`, PATH starting
/// with `/`, `./` or `../` as no tree file does. Beside a tree file it is
/// compared by its path inside that directory, which is not known here: of
/// its paths without 0, 1, 2, … leading directories, the one that shares
/// the most (the copies of one directory lose the same leading part, so
/// the nearest of them is still the one of the tree file's cluster).
pub fn shared_dirs(a: &str, b: &str) -> usize {
    fn dirs(f: &str) -> Vec<&str> {
        f.rsplit_once('/')
            .map_or(Vec::new(), |(d, _)| d.split('/').collect())
    }
    fn common(a: &[&str], b: &[&str]) -> usize {
        a.iter()
            .zip(b)
            .take_while(|(x, y)| !x.is_empty() && x == y)
            .count()
    }
    let outside = |f: &str| f.starts_with('/') || f.starts_with("./") || f.starts_with("../");
    let (da, db) = (dirs(a), dirs(b));
    match (outside(a), outside(b)) {
        (true, false) => (0..da.len())
            .map(|i| common(&da[i..], &db))
            .max()
            .unwrap_or(0),
        (false, true) => (0..db.len())
            .map(|i| common(&da, &db[i..]))
            .max()
            .unwrap_or(0),
        _ => common(&da, &db),
    }
}

fn policy_spec(spec: &Node, version: &str) -> Result<PolicySpec, String> {
    let policy = spec.get("policy").ok_or("spec.policy is missing")?;
    let mut rules = Vec::new();
    if let Some(semver) = policy.get("semver") {
        let range = semver
            .str_at(&["range"])
            .ok_or("spec.policy.semver.range is missing")?;
        rules.push(Rule::semver(range).map_err(|e| e.to_string())?);
    }
    for (key, make) in [
        ("alphabetical", Rule::Alphabetical as fn(Order) -> Rule),
        ("numerical", Rule::Numerical),
    ] {
        if let Some(node) = policy.get(key) {
            let order = Order::parse(node.str_at(&["order"]).unwrap_or_default())
                .map_err(|e| e.to_string())?;
            rules.push(make(order));
        }
    }
    let rule = match rules.len() {
        1 => rules.pop().expect("one rule"),
        0 => {
            return Err(
                "spec.policy names no rule (semver, alphabetical or numerical)".to_string(),
            );
        }
        _ => return Err("spec.policy names more than one rule".to_string()),
    };
    let filter = match spec.str_at(&["filterTags", "pattern"]) {
        Some(pattern) if !pattern.is_empty() => Some(
            TagFilter::new(
                pattern,
                spec.str_at(&["filterTags", "extract"]).unwrap_or_default(),
            )
            .map_err(|e: RuleError| e.to_string())?,
        ),
        _ => None,
    };
    // v1beta1 has no digestReflectionPolicy; the API server would drop it.
    let reflection = if version == "v1beta1" {
        None
    } else {
        spec.str_at(&["digestReflectionPolicy"])
    };
    // The v1 CRD's validation rules: the API server refuses such a policy.
    if version == "v1" {
        let interval = spec.get("interval").is_some_and(|n| !n.is_null());
        let always = reflection == Some("Always");
        if interval && !always {
            return Err("spec.interval is only accepted when spec.digestReflectionPolicy is set to 'Always' (the API server refuses this ImagePolicy)".to_string());
        }
        if always && !interval {
            return Err("spec.interval must be set when spec.digestReflectionPolicy is set to 'Always' (the API server refuses this ImagePolicy)".to_string());
        }
    }
    let digest = match reflection.unwrap_or("Never") {
        "Never" => DigestReflection::Never,
        "IfNotPresent" => DigestReflection::IfNotPresent,
        "Always" => DigestReflection::Always,
        other => {
            return Err(format!(
                "digestReflectionPolicy {other:?} is not Always, IfNotPresent or Never"
            ));
        }
    };
    Ok(PolicySpec {
        rule,
        filter,
        digest,
    })
}

fn git_settings(spec: &Node, meta: &Meta, v1: bool) -> GitSettings {
    let text = |path: &[&str]| {
        spec.str_at(path)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let author = match (
        text(&["git", "commit", "author", "name"]),
        text(&["git", "commit", "author", "email"]),
    ) {
        (Some(name), Some(email)) => Some(format!("{name} <{email}>")),
        _ => None,
    };
    GitSettings {
        automation: (meta.namespace.clone(), meta.name.clone()),
        author,
        message_template: text(&["git", "commit", "messageTemplate"]),
        message_values: spec
            .at(&["git", "commit", "messageTemplateValues"])
            .map(string_map)
            .unwrap_or_default(),
        push_branch: text(&["git", "push", "branch"]),
        push_refspec: text(&["git", "push", "refspec"]),
        push_options: spec
            .at(&["git", "push", "options"])
            .map(|o| {
                string_map(o)
                    .into_iter()
                    .map(|(k, v)| if v.is_empty() { k } else { format!("{k}={v}") })
                    .collect()
            })
            .unwrap_or_default(),
        path: update_path(spec).unwrap_or_default(),
        v1,
    }
}

fn update_path(spec: &Node) -> Result<String, String> {
    let raw = spec.str_at(&["update", "path"]).unwrap_or(".");
    if let Some(strategy) = spec.str_at(&["update", "strategy"])
        && strategy != "Setters"
    {
        return Err(format!(
            "update.strategy {strategy:?} is not supported (only Setters)"
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("update.path {raw:?} leads outside the repository"));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

pub fn string_map(node: &Node) -> BTreeMap<String, String> {
    node.entries()
        .iter()
        .filter_map(|(k, v)| {
            Some((
                k.as_str()?.to_string(),
                v.as_str().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// A Kubernetes label selector (`matchLabels` and `matchExpressions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSelector {
    labels: BTreeMap<String, String>,
    expressions: Vec<(String, String, Vec<String>)>,
}

impl LabelSelector {
    pub fn read(node: &Node) -> Result<LabelSelector, String> {
        let mut expressions = Vec::new();
        for e in node
            .get("matchExpressions")
            .map(Node::items)
            .unwrap_or_default()
        {
            let key = e
                .str_at(&["key"])
                .ok_or("matchExpressions entry without key")?;
            let operator = e.str_at(&["operator"]).unwrap_or_default();
            if !matches!(operator, "In" | "NotIn" | "Exists" | "DoesNotExist") {
                return Err(format!(
                    "operator {operator:?} is not In, NotIn, Exists or DoesNotExist"
                ));
            }
            let values = e
                .get("values")
                .map(|v| {
                    v.items()
                        .iter()
                        .filter_map(|i| i.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            expressions.push((key.to_string(), operator.to_string(), values));
        }
        Ok(LabelSelector {
            labels: node.get("matchLabels").map(string_map).unwrap_or_default(),
            expressions,
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.expressions.iter().all(|(key, op, values)| {
                let value = labels.get(key);
                match op.as_str() {
                    "In" => value.is_some_and(|v| values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !values.contains(v)),
                    "Exists" => value.is_some(),
                    _ => value.is_none(),
                }
            })
    }
}

#[cfg(test)]
mod tests;
