//! The function's settings: the flags and the `functionConfig` (a
//! `ConfigMap` or an `ImageUpdateConfig`) read into one [`Settings`], the
//! flags winning where set. Apart from the list processing: it reads the
//! function's configuration, never the items.

use std::path::PathBuf;

use crate::yaml::Node;

/// The function's own configuration kind.
pub const CONFIG_API_VERSION: &str = "image-update.dev/v1alpha1";
pub const CONFIG_KIND: &str = "ImageUpdateConfig";

/// Where tags come from and how live registries are reached. Used both for
/// the command-line flags and for what `functionConfig` says; a flag that is
/// set overrides the `functionConfig` value ([`Settings::over`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub registry_snapshot: Option<PathBuf>,
    pub insecure_registries: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub docker_config: Option<PathBuf>,
    /// Directories Flux resources are also read from (never edited).
    pub policies: Vec<PathBuf>,
}

impl Settings {
    /// `self` (flags) where set, else `config`.
    pub fn over(&self, config: Settings) -> Settings {
        Settings {
            registry_snapshot: self.registry_snapshot.clone().or(config.registry_snapshot),
            insecure_registries: if self.insecure_registries.is_empty() {
                config.insecure_registries
            } else {
                self.insecure_registries.clone()
            },
            ca_file: self.ca_file.clone().or(config.ca_file),
            docker_config: self.docker_config.clone().or(config.docker_config),
            policies: if self.policies.is_empty() {
                config.policies
            } else {
                self.policies.clone()
            },
        }
    }
}
/// `functionConfig` keys: `ConfigMap` `data` key, `ImageUpdateConfig` `spec` key.
const KEYS: [(&str, &str); 5] = [
    ("registry-snapshot", "registrySnapshot"),
    ("insecure-registries", "insecureRegistries"),
    ("ca-file", "caFile"),
    ("docker-config", "dockerConfig"),
    ("policies", "policies"),
];

/// Reads the function's settings from a `functionConfig`: a `ConfigMap`
/// (what `kpt fn eval ... -- key=value` builds) whose `data` holds the
/// kebab-case keys, or an `image-update.dev/v1alpha1` `ImageUpdateConfig`
/// whose `spec` holds the camel-case ones. A missing or empty config is the
/// default. Unknown keys are refused: a misspelt `registry-snapshot` would
/// otherwise silently send the run to the live registries.
pub fn read_config(config: Option<&Node>) -> Result<Settings, String> {
    let Some(config) = config.filter(|c| !c.is_null()) else {
        return Ok(Settings::default());
    };
    let api_version = config.str_at(&["apiVersion"]).unwrap_or_default();
    let kind = config.str_at(&["kind"]).unwrap_or_default();
    let (values, camel) = match (api_version, kind) {
        ("v1", "ConfigMap") => (config.get("data"), false),
        (CONFIG_API_VERSION, CONFIG_KIND) => (config.get("spec"), true),
        _ => {
            return Err(format!(
                "functionConfig {api_version:?} {kind:?} is not supported; use a v1 ConfigMap (data: registry-snapshot, insecure-registries, ca-file, docker-config, policies) or an {CONFIG_API_VERSION} {CONFIG_KIND} (spec: registrySnapshot, insecureRegistries, caFile, dockerConfig, policies)"
            ));
        }
    };
    let where_ = if camel { "spec" } else { "data" };
    let mut settings = Settings::default();
    let Some(values) = values.filter(|v| !v.is_null()) else {
        return Ok(settings);
    };
    if !matches!(values, Node::Mapping(..)) {
        return Err(format!("functionConfig {where_} must be a mapping"));
    }
    let mut errors = Vec::new();
    for (key, value) in values.entries() {
        let key = key.as_str().unwrap_or_default();
        let Some(field) = KEYS
            .iter()
            .position(|(kebab, camel_key)| key == if camel { *camel_key } else { *kebab })
        else {
            let known: Vec<&str> = KEYS
                .iter()
                .map(|(kebab, camel_key)| if camel { *camel_key } else { *kebab })
                .collect();
            errors.push(format!(
                "functionConfig {where_}: unknown key {key:?} (known: {})",
                known.join(", ")
            ));
            continue;
        };
        if field == 4 {
            match string_list(value, false) {
                Some(list) => settings.policies = list.into_iter().map(PathBuf::from).collect(),
                None => errors.push(format!(
                    "functionConfig {where_}.{key}: write directories separated by commas{}",
                    if camel { ", or a list of strings" } else { "" }
                )),
            }
            continue;
        }
        if field == 1 {
            match string_list(value, true) {
                Some(list) => settings.insecure_registries = list,
                None => errors.push(format!(
                    "functionConfig {where_}.{key}: write host names separated by commas{}",
                    if camel { ", or a list of strings" } else { "" }
                )),
            }
            continue;
        }
        let text = match value {
            v if v.is_null() => None,
            Node::Scalar(s) => Some(s.value.trim().to_string()).filter(|s| !s.is_empty()),
            _ => {
                errors.push(format!(
                    "functionConfig {where_}.{key} must be a string (a path)"
                ));
                continue;
            }
        };
        let path = text.map(PathBuf::from);
        match field {
            0 => settings.registry_snapshot = path,
            2 => settings.ca_file = path,
            _ => settings.docker_config = path,
        }
    }
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(errors.join("; "))
    }
}

/// A comma-separated string or a sequence of strings, as a list (of host
/// names, lower-cased, when `hosts`).
fn string_list(node: &Node, hosts: bool) -> Option<Vec<String>> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .map(|h| {
                if hosts {
                    h.to_ascii_lowercase()
                } else {
                    h.to_string()
                }
            })
            .filter(|h| !h.is_empty())
            .collect()
    };
    match node {
        n if n.is_null() => Some(Vec::new()),
        Node::Scalar(s) => Some(split(&s.value)),
        Node::Sequence(items, _) => items
            .iter()
            .map(|i| i.as_str().map(split))
            .collect::<Option<Vec<_>>>()
            .map(|lists| lists.concat()),
        _ => None,
    }
}
