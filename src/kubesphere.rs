//! The unified `ImageUpdater` (`gitops.kubesphere.io/v1alpha1`): one resource
//! that says which images to keep up to date and which engine's rules apply,
//! Flux's (`spec.kind: fluxcd`) or Argo CD Image Updater's (`spec.kind: argocd`).
//!
//! Users who do not care which engine runs underneath write only this, so it
//! must mean exactly what the equivalent engine resources mean. This module
//! reads and validates it (every mistake is reported with its field path, what
//! is wrong and what is allowed) and translates it: a `fluxcd` resource into
//! the `ImageRepository` / `ImagePolicy` / `ImageUpdateAutomation` Flux would
//! need, fed to [`flux::Resources`] so the engine cannot tell the difference;
//! an `argocd` resource into [`ArgoUpdater`], the plain settings the Argo CD
//! reader consumes. It is pure: nodes in, values out.
//!
//! Naming: the image `[alias=]name[:constraint]` of resource `ns/res` is
//! policy `ns:res-alias`, so a Flux marker names it
//! `{"$imagepolicy": "ns:res-alias"}`; the alias defaults to the last path
//! segment of the image name. A constraint in `images` is that image's semver
//! range and wins over `fluxcd.policy`; an image with neither is invalid.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value, json};

use crate::argocd::config::{ArgoImage, ArgoUpdater};
use crate::flux::{self, Origin};
use crate::hold;
use crate::image::Repository;
use crate::outcome::{Problem, Severity};
use crate::policy::argo::AllowTags;
use crate::policy::{Order, Rule, TagFilter};
use crate::yaml::{self, Node};

pub const API_GROUP: &str = "gitops.kubesphere.io";
pub const API_VERSION: &str = "gitops.kubesphere.io/v1alpha1";
pub const KIND: &str = "ImageUpdater";
/// The label the translated Flux policies carry, which the translated
/// automation selects on, so that it uses its own policies only.
pub const OWNER_LABEL: &str = "gitops.kubesphere.io/imageupdater";

/// Argo CD Image Updater's update strategies (legacy names included).
pub const ARGO_STRATEGIES: [&str; 6] = [
    "semver",
    "newest-build",
    "latest",
    "alphabetical",
    "name",
    "digest",
];

/// One thing wrong with a resource: where (a field path such as
/// `spec.images[1]`) and what, including what would be allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A valid unified resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unified {
    pub namespace: String,
    pub name: String,
    pub origin: Origin,
    /// Its `image-update.dev/` annotations (promotion gates).
    pub annotations: BTreeMap<String, String>,
    pub images: Vec<ImageEntry>,
    pub engine: Engine,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    Flux(FluxSettings),
    Argo(ArgoUpdater),
}

/// One entry of `spec.images`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEntry {
    pub alias: String,
    /// The image name, without constraint.
    pub image: String,
    pub constraint: Option<String>,
    /// The line of the entry, for messages.
    pub line: usize,
}

/// What `spec.fluxcd` says, validated; `git` is kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FluxSettings {
    pub interval: String,
    pub secret: Option<String>,
    /// `spec.fluxcd.policy` as JSON, for images without a constraint.
    pub policy: Option<Value>,
    pub source_ref: Option<Value>,
    pub git: Option<Value>,
    pub update: Option<Value>,
}

/// The `image-update.dev/` annotations of a resource.
fn gate_annotations(root: &Node) -> BTreeMap<String, String> {
    let mut all = root
        .at(&["metadata", "annotations"])
        .map(flux::string_map)
        .unwrap_or_default();
    all.retain(|key, _| key.starts_with(hold::PREFIX));
    all
}

/// Reads one YAML document: `Ok(None)` when it is not a unified
/// `ImageUpdater`, else the resource or every error found in it.
pub fn read_unified(file: &str, root: &Node) -> Result<Option<Unified>, Vec<FieldError>> {
    let Some(api_version) = root.str_at(&["apiVersion"]) else {
        return Ok(None);
    };
    if !api_version.starts_with(&format!("{API_GROUP}/")) || root.str_at(&["kind"]) != Some(KIND) {
        return Ok(None);
    }
    let mut errors = Vec::new();
    if api_version != API_VERSION {
        errors.push(FieldError::new(
            "apiVersion",
            format!("unknown version {api_version:?}; allowed: {API_VERSION}"),
        ));
    }
    let name = root.object_name();
    if let Err(e) = check_name(name) {
        errors.push(FieldError::new("metadata.name", e));
    }
    let namespace = root.namespace_or("default");
    if let Err(e) = check_label(namespace) {
        errors.push(FieldError::new("metadata.namespace", e));
    }
    let spec = root.get("spec").unwrap_or(&Node::Empty);
    if !matches!(spec, Node::Mapping(..)) {
        errors.push(FieldError::new("spec", "required: a mapping"));
        return Err(errors);
    }
    unknown_keys(
        spec,
        "spec",
        &["images", "kind", "argocd", "fluxcd"],
        &mut errors,
    );
    let images = read_images(spec, name, &mut errors);
    let kind = spec.str_at(&["kind"]).unwrap_or_default();
    let engine = match kind {
        "fluxcd" => {
            if spec.get("argocd").is_some() {
                errors.push(FieldError::new(
                    "spec.argocd",
                    "not allowed when spec.kind is fluxcd; use spec.fluxcd",
                ));
            }
            read_flux(spec.get("fluxcd"), &images, &mut errors).map(Engine::Flux)
        }
        "argocd" => {
            if spec.get("fluxcd").is_some() {
                errors.push(FieldError::new(
                    "spec.fluxcd",
                    "not allowed when spec.kind is argocd; use spec.argocd",
                ));
            }
            read_argo(spec.get("argocd"), &images, &mut errors).map(|mut a| {
                a.id = (namespace.to_string(), name.to_string());
                a.origin = (file.to_string(), root.position().line);
                a.annotations = gate_annotations(root);
                Engine::Argo(a)
            })
        }
        "" => {
            errors.push(FieldError::new(
                "spec.kind",
                "required; allowed: argocd, fluxcd",
            ));
            None
        }
        other => {
            errors.push(FieldError::new(
                "spec.kind",
                format!("unknown kind {other:?}; allowed: argocd, fluxcd"),
            ));
            None
        }
    };
    match engine {
        Some(engine) if errors.is_empty() => Ok(Some(Unified {
            namespace: namespace.to_string(),
            name: name.to_string(),
            origin: Origin {
                file: file.to_string(),
                line: root.position().line,
            },
            annotations: gate_annotations(root),
            images,
            engine,
        })),
        _ => Err(errors),
    }
}

fn unknown_keys(node: &Node, path: &str, allowed: &[&str], errors: &mut Vec<FieldError>) {
    for (k, _) in node.entries() {
        let key = k.as_str().unwrap_or_default();
        if !allowed.contains(&key) {
            errors.push(FieldError::new(
                format!("{path}.{key}"),
                format!("unknown field; allowed: {}", allowed.join(", ")),
            ));
        }
    }
}

/// A Kubernetes object name (DNS-1123 subdomain, at most 253 characters).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("required".to_string());
    }
    let ok = name.len() <= 253
        && name.split('.').all(|part| check_label(part).is_ok())
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit, at most 253 characters"
        ))
    }
}

/// A DNS-1123 label: namespaces and aliases.
pub fn check_label(label: &str) -> Result<(), String> {
    let ok = !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{label:?} is not valid: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
        ))
    }
}

/// Splits `[alias=]image[:constraint]`; the alias defaults to the last path
/// segment of the image name.
pub fn parse_image(text: &str) -> Result<(String, String, Option<String>), String> {
    let text = text.trim();
    // An `=` belongs to the alias only when what precedes it could be one
    // (`nginx:>=1.0` has no alias).
    let (alias, rest) = match text.split_once('=') {
        Some((a, rest)) if !a.is_empty() && !a.contains([':', '/', '<', '>', '!', ' ']) => {
            (Some(a), rest)
        }
        _ => (None, text),
    };
    if rest.contains('@') {
        return Err(format!(
            "{text:?}: a digest is not allowed; write [alias=]image[:constraint]"
        ));
    }
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, constraint) = match rest[slash..].find(':') {
        Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].trim())),
        None => (rest, None),
    };
    if constraint == Some("") {
        return Err(format!(
            "{text:?}: empty constraint after ':'; write [alias=]image[:constraint]"
        ));
    }
    Repository::parse(name).map_err(|e| format!("{text:?}: {}", e.reason))?;
    let alias = alias
        .map(str::to_string)
        .unwrap_or_else(|| name.rsplit('/').next().unwrap_or(name).to_string());
    check_label(&alias).map_err(|e| format!("{text:?}: alias {e}"))?;
    Ok((alias, name.to_string(), constraint.map(str::to_string)))
}

fn read_images(spec: &Node, name: &str, errors: &mut Vec<FieldError>) -> Vec<ImageEntry> {
    let mut images: Vec<ImageEntry> = Vec::new();
    let node = spec.get("images").unwrap_or(&Node::Empty);
    if !matches!(node, Node::Sequence(..)) || node.items().is_empty() {
        errors.push(FieldError::new(
            "spec.images",
            "required: a non-empty list of \"[alias=]image[:constraint]\"",
        ));
        return images;
    }
    for (i, item) in node.items().iter().enumerate() {
        let field = format!("spec.images[{i}]");
        let Some(text) = item.as_str() else {
            errors.push(FieldError::new(
                field,
                "must be a string \"[alias=]image[:constraint]\"",
            ));
            continue;
        };
        match parse_image(text) {
            Ok((alias, image, constraint)) => {
                if let Some(first) = images.iter().position(|e| e.alias == alias) {
                    errors.push(FieldError::new(
                        field,
                        format!(
                            "alias {alias:?} is already used by spec.images[{first}]; give one of them another alias (alias=image)"
                        ),
                    ));
                    continue;
                }
                if check_name(&format!("{name}-{alias}")).is_err() {
                    errors.push(FieldError::new(
                        field,
                        format!(
                            "policy name \"{name}-{alias}\" would be too long; use a shorter alias"
                        ),
                    ));
                }
                images.push(ImageEntry {
                    alias,
                    image,
                    constraint,
                    line: item.position().line,
                });
            }
            Err(e) => errors.push(FieldError::new(field, e)),
        }
    }
    images
}

/// Go durations as Flux intervals take them: `1m`, `30s`, `1h30m`, `500ms`.
pub fn check_duration(text: &str) -> Result<(), String> {
    let bad = || {
        format!("{text:?} is not a duration: a number and a unit (h, m, s, ms), e.g. 1m or 1h30m")
    };
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        rest = &rest[digits..];
        let unit = ["ms", "us", "µs", "ns", "h", "m", "s"]
            .into_iter()
            .find(|u| rest.starts_with(u))
            .ok_or_else(bad)?;
        rest = &rest[unit.len()..];
    }
    Ok(())
}

/// Checks `policy: {semver|alphabetical|numerical}` the way Flux reads it.
fn check_flux_policy(node: &Node, field: &str, errors: &mut Vec<FieldError>) {
    let rules: Vec<&str> = ["semver", "alphabetical", "numerical"]
        .into_iter()
        .filter(|k| node.get(k).is_some())
        .collect();
    unknown_keys(
        node,
        field,
        &["semver", "alphabetical", "numerical"],
        errors,
    );
    match rules.as_slice() {
        [] => errors.push(FieldError::new(
            field,
            "names no rule; allowed: semver {range}, alphabetical {order}, numerical {order}",
        )),
        ["semver"] => {
            let range = node.str_at(&["semver", "range"]).unwrap_or_default();
            if let Err(e) = Rule::semver(range) {
                errors.push(FieldError::new(
                    format!("{field}.semver.range"),
                    e.to_string(),
                ));
            }
        }
        [rule] => {
            let order = node.str_at(&[rule, "order"]).unwrap_or_default();
            if let Err(e) = Order::parse(order) {
                errors.push(FieldError::new(
                    format!("{field}.{rule}.order"),
                    e.to_string(),
                ));
            }
        }
        _ => errors.push(FieldError::new(
            field,
            format!(
                "names more than one rule ({}); allowed: one",
                rules.join(", ")
            ),
        )),
    }
}

fn read_flux(
    node: Option<&Node>,
    images: &[ImageEntry],
    errors: &mut Vec<FieldError>,
) -> Option<FluxSettings> {
    let empty = Node::Empty;
    let node = node.unwrap_or(&empty);
    unknown_keys(
        node,
        "spec.fluxcd",
        &["interval", "secret", "policy", "sourceRef", "git", "update"],
        errors,
    );
    let interval = node.str_at(&["interval"]).unwrap_or("1m").to_string();
    if let Err(e) = check_duration(&interval) {
        errors.push(FieldError::new("spec.fluxcd.interval", e));
    }
    let policy = node.get("policy").filter(|p| !p.is_null());
    if let Some(policy) = policy {
        check_flux_policy(policy, "spec.fluxcd.policy", errors);
    }
    for (i, image) in images.iter().enumerate() {
        match &image.constraint {
            Some(range) => {
                if let Err(e) = Rule::semver(range) {
                    errors.push(FieldError::new(
                        format!("spec.images[{i}]"),
                        format!("constraint {range:?} is not a semver range: {e}"),
                    ));
                }
            }
            None if policy.is_none() => errors.push(FieldError::new(
                format!("spec.images[{i}]"),
                format!(
                    "image {:?} has no rule: add a semver constraint (image:range) or set spec.fluxcd.policy",
                    image.image
                ),
            )),
            None => {}
        }
    }
    if let Some(strategy) = node.str_at(&["update", "strategy"])
        && strategy != "Setters"
    {
        errors.push(FieldError::new(
            "spec.fluxcd.update.strategy",
            format!("{strategy:?} is not supported; allowed: Setters"),
        ));
    }
    if let Some(path) = node.str_at(&["update", "path"])
        && path.split('/').filter(|p| *p == "..").count()
            > path
                .split('/')
                .filter(|p| !matches!(*p, "" | "." | ".."))
                .count()
    {
        errors.push(FieldError::new(
            "spec.fluxcd.update.path",
            format!("{path:?} leads outside the repository"),
        ));
    }
    if let Some(kind) = node.str_at(&["sourceRef", "kind"])
        && kind != "GitRepository"
    {
        errors.push(FieldError::new(
            "spec.fluxcd.sourceRef.kind",
            format!("{kind:?} is not supported; allowed: GitRepository"),
        ));
    }
    let secret = node.str_at(&["secret"]).map(str::to_string);
    if let Some(s) = &secret
        && let Err(e) = check_name(s)
    {
        errors.push(FieldError::new("spec.fluxcd.secret", e));
    }
    Some(FluxSettings {
        interval,
        secret,
        policy: policy.map(to_json),
        source_ref: node.get("sourceRef").filter(|n| !n.is_null()).map(to_json),
        git: node.get("git").filter(|n| !n.is_null()).map(to_json),
        update: node.get("update").filter(|n| !n.is_null()).map(to_json),
    })
}

/// A per-alias map (`update-strategy: {nginx: semver}`): values by alias, with
/// keys that name no image reported.
fn alias_map(
    node: &Node,
    key: &str,
    images: &[ImageEntry],
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, (String, String)> {
    let mut map = BTreeMap::new();
    let Some(value) = node.get(key).filter(|n| !n.is_null()) else {
        return map;
    };
    if !matches!(value, Node::Mapping(..)) {
        errors.push(FieldError::new(
            format!("spec.argocd.{key}"),
            "must be a mapping of image alias to value",
        ));
        return map;
    }
    for (k, v) in value.entries() {
        let alias = k.as_str().unwrap_or_default();
        let field = format!("spec.argocd.{key}.{alias}");
        if !images.iter().any(|i| i.alias == alias) {
            let known: Vec<&str> = images.iter().map(|i| i.alias.as_str()).collect();
            errors.push(FieldError::new(
                field,
                format!("names no image; the aliases are: {}", known.join(", ")),
            ));
            continue;
        }
        match v.as_str() {
            Some(text) => {
                map.insert(alias.to_string(), (text.to_string(), field));
            }
            None => errors.push(FieldError::new(field, "must be a string")),
        }
    }
    map
}

fn read_argo(
    node: Option<&Node>,
    images: &[ImageEntry],
    errors: &mut Vec<FieldError>,
) -> Option<ArgoUpdater> {
    let empty = Node::Empty;
    let node = node.unwrap_or(&empty);
    unknown_keys(
        node,
        "spec.argocd",
        &[
            "app",
            "write",
            "update-strategy",
            "allow-tags",
            "ignore-tags",
            "platforms",
            "secret",
        ],
        errors,
    );
    let app_name = node.str_at(&["app", "name"]).unwrap_or_default();
    if let Err(e) = check_name(app_name) {
        errors.push(FieldError::new("spec.argocd.app.name", e));
    }
    let app_namespace = node
        .str_at(&["app", "namespace"])
        .filter(|n| !n.is_empty())
        .unwrap_or("argocd");
    if let Err(e) = check_label(app_namespace) {
        errors.push(FieldError::new("spec.argocd.app.namespace", e));
    }
    let write_back_argocd = match node.str_at(&["write"]).unwrap_or("built-in") {
        "built-in" => true,
        "git" => false,
        other => {
            errors.push(FieldError::new(
                "spec.argocd.write",
                format!("unknown write method {other:?}; allowed: built-in, git"),
            ));
            true
        }
    };
    let strategies = alias_map(node, "update-strategy", images, errors);
    for (alias, (strategy, field)) in &strategies {
        if !ARGO_STRATEGIES.contains(&strategy.as_str()) {
            errors.push(FieldError::new(
                field,
                format!(
                    "unknown strategy {strategy:?}; allowed: {}",
                    ARGO_STRATEGIES.join(", ")
                ),
            ));
        } else if strategy == "digest"
            && images
                .iter()
                .any(|i| &i.alias == alias && i.constraint.is_none())
        {
            errors.push(FieldError::new(
                field,
                "digest follows one tag: give it as the image's constraint (image:tag)",
            ));
        }
    }
    let allow = alias_map(node, "allow-tags", images, errors);
    for (value, field) in allow.values() {
        if let Err(e) = AllowTags::parse(value) {
            errors.push(FieldError::new(field, e));
        }
    }
    let ignore = alias_map(node, "ignore-tags", images, errors);
    let platforms = alias_map(node, "platforms", images, errors);
    for (value, field) in platforms.values() {
        for p in split_list(value) {
            let parts = p.split('/').count();
            if !(2..=3).contains(&parts) || p.split('/').any(str::is_empty) {
                errors.push(FieldError::new(
                    field,
                    format!("{p:?} is not a platform; write os/arch[/variant], e.g. linux/amd64"),
                ));
            }
        }
    }
    let secrets = alias_map(node, "secret", images, errors);
    for (value, field) in secrets.values() {
        if let Err(e) = check_name(value) {
            errors.push(FieldError::new(field, e));
        }
    }
    for (i, image) in images.iter().enumerate() {
        let strategy = strategies.get(&image.alias).map(|s| s.0.as_str());
        if let Some(c) = &image.constraint
            && matches!(strategy, None | Some("semver"))
            && let Err(e) = Rule::semver(c)
        {
            errors.push(FieldError::new(
                format!("spec.images[{i}]"),
                format!("constraint {c:?} is not a semver range: {e}"),
            ));
        }
    }
    let get =
        |m: &BTreeMap<String, (String, String)>, alias: &str| m.get(alias).map(|(v, _)| v.clone());
    Some(ArgoUpdater {
        id: Default::default(),
        origin: Default::default(),
        annotations: BTreeMap::new(),
        app_namespace: app_namespace.to_string(),
        app_name: app_name.to_string(),
        write_back_argocd,
        images: images
            .iter()
            .map(|i| ArgoImage {
                alias: i.alias.clone(),
                image: i.image.clone(),
                constraint: i.constraint.clone(),
                strategy: get(&strategies, &i.alias),
                allow_tags: get(&allow, &i.alias),
                ignore_tags: get(&ignore, &i.alias)
                    .map(|v| split_list(&v))
                    .unwrap_or_default(),
                platforms: get(&platforms, &i.alias)
                    .map(|v| split_list(&v))
                    .unwrap_or_default(),
                secret: get(&secrets, &i.alias),
            })
            .collect(),
    })
}

/// Argo's comma-separated lists (`ignore-tags`, `platforms`).
fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A node as JSON: scalars are strings (plain `true`/`false` are booleans),
/// plain null-like scalars are null. Aliases are never followed.
pub fn to_json(node: &Node) -> Value {
    match node {
        Node::Scalar(s) => match (node.as_str(), s.style) {
            (None, _) => Value::Null,
            (Some(v @ ("true" | "false")), granit_parser::ScalarStyle::Plain) => {
                Value::Bool(v == "true")
            }
            (Some(v), _) => Value::String(v.to_string()),
        },
        Node::Sequence(items, _) => Value::Array(items.iter().map(to_json).collect()),
        Node::Mapping(entries, _) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Node::Alias(_) | Node::Empty => Value::Null,
    }
}

/// What a Secret named in a unified resource becomes: a repository cannot
/// hold cluster Secrets, so the registry credentials come from the same
/// lookup every run uses.
pub fn secret_note(field: &str, secret: &str) -> String {
    format!(
        "{field} names Secret {secret:?}, which a repository cannot hold; registry credentials come from DOCKER_AUTH_CONFIG, --docker-config, REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json or ~/.docker/config.json, and $XDG_RUNTIME_DIR/containers/auth.json instead (first match wins)"
    )
}

/// The Flux resources a `fluxcd` resource stands for, as JSON documents with
/// the line of the unified resource they come from (the image's entry for
/// repositories and policies, the resource itself for the automation).
pub fn flux_documents(u: &Unified) -> Vec<(usize, Value)> {
    let Engine::Flux(flux) = &u.engine else {
        return Vec::new();
    };
    let mut docs = Vec::new();
    let api = format!("{}/v1", flux::API_GROUP);
    for image in &u.images {
        let name = format!("{}-{}", u.name, image.alias);
        let mut repo_spec = json!({"image": image.image, "interval": flux.interval});
        if let Some(secret) = &flux.secret {
            repo_spec["secretRef"] = json!({"name": secret});
        }
        docs.push((
            image.line,
            json!({
                "apiVersion": api,
                "kind": "ImageRepository",
                "metadata": {"name": name, "namespace": u.namespace},
                "spec": repo_spec,
            }),
        ));
        let policy = match &image.constraint {
            Some(range) => json!({"semver": {"range": range}}),
            None => flux.policy.clone().unwrap_or(Value::Null),
        };
        // The image's promotion gate, as the policy's own annotations.
        let mut metadata = json!({
            "name": name,
            "namespace": u.namespace,
            "labels": {OWNER_LABEL: u.name},
        });
        for setting in ["promote-from", "soak"] {
            if let Some(value) = hold::annotated(&[&u.annotations], &image.alias, setting) {
                metadata["annotations"][format!("{}{setting}", hold::PREFIX)] = json!(value);
            }
        }
        docs.push((
            image.line,
            json!({
                "apiVersion": api,
                "kind": "ImagePolicy",
                "metadata": metadata,
                "spec": {"imageRepositoryRef": {"name": name}, "policy": policy},
            }),
        ));
    }
    let mut spec = json!({
        "interval": flux.interval,
        "policySelector": {"matchLabels": {OWNER_LABEL: u.name}},
        "update": flux.update.clone().unwrap_or(json!({"path": ".", "strategy": "Setters"})),
    });
    if let Some(source) = &flux.source_ref {
        spec["sourceRef"] = source.clone();
    }
    if let Some(git) = &flux.git {
        spec["git"] = git.clone();
    }
    docs.push((
        u.origin.line,
        json!({
            "apiVersion": api,
            "kind": "ImageUpdateAutomation",
            "metadata": {"name": u.name, "namespace": u.namespace},
            "spec": spec,
        }),
    ));
    docs
}

/// Reads one document for `run`: a `fluxcd` resource is fed to `resources`
/// as the Flux resources it stands for, declared at the unified resource's
/// file and lines; an invalid resource becomes problems. `kind: argocd`
/// resources are left to the Argo CD reader.
pub fn feed(resources: &mut flux::Resources, file: &str, root: &Node) -> Option<ArgoUpdater> {
    let unified = match read_unified(file, root) {
        Ok(Some(u)) => u,
        Ok(None) => return None,
        Err(errors) => {
            let line = root.position().line;
            resources.problems.extend(errors.into_iter().map(|e| {
                Problem::at(
                    file,
                    line,
                    None,
                    Severity::Error,
                    format!("ImageUpdater: {e}"),
                )
            }));
            return None;
        }
    };
    if let Engine::Flux(flux) = &unified.engine
        && let Some(secret) = &flux.secret
    {
        resources.problems.push(Problem::at(
            file,
            unified.origin.line,
            None,
            Severity::Info,
            secret_note("spec.fluxcd.secret", secret),
        ));
    }
    for (line, doc) in flux_documents(&unified) {
        // JSON is YAML; blank lines before it put the document at the line
        // of the unified resource, so every message points there.
        let text = format!("{}{doc}\n", "\n".repeat(line.saturating_sub(1)));
        match yaml::parse(&text) {
            Ok(stream) => {
                for d in &stream.documents {
                    resources.read(file, &d.root);
                }
            }
            Err(e) => resources.problems.push(Problem::at(
                file,
                line,
                None,
                Severity::Error,
                format!("ImageUpdater: internal translation error: {e}"),
            )),
        }
    }
    match unified.engine {
        Engine::Argo(argo) => Some(argo),
        Engine::Flux(_) => None,
    }
}

/// Validates a `filterTags` pattern as Flux would; for the CLI.
pub fn check_filter(pattern: &str, extract: &str) -> Result<(), String> {
    TagFilter::new(pattern, extract)
        .map(drop)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
