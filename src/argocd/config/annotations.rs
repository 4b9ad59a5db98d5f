//! Argo CD Image Updater's legacy settings: the
//! `argocd-image-updater.argoproj.io/*` annotations on an Application
//! (`image-list`, per-image `<alias>.helm.image-name` and friends, app-wide
//! and per-image update settings, write-back). Apart from the ImageUpdater
//! resource's reading because the two dialects differ in syntax and
//! validation (Go's `strconv.ParseBool`, comma lists) while filling the same
//! [`Settings`], [`WriteBack`] and [`ImageSpec`].

use std::collections::BTreeMap;

use super::{ANNOTATION, ImageSpec, ManifestTargets, Settings, WriteBack, split_image};

impl Settings {
    /// Legacy annotations: `<prefix>update-strategy` and friends. As
    /// upstream: a `force-update` that Go's `strconv.ParseBool` refuses
    /// (an empty one too) is an error for the whole application, and
    /// `platforms` is read only per image (`prefix` not empty).
    pub(super) fn from_annotations(
        annotations: &BTreeMap<String, String>,
        prefix: &str,
    ) -> Result<Settings, String> {
        let get = |key: &str| {
            annotations
                .get(&format!("{ANNOTATION}{prefix}{key}"))
                .map(|v| v.trim().to_string())
        };
        let force_update = match get("force-update") {
            None => None,
            Some(v) => Some(go_parse_bool(&v).ok_or_else(|| {
                format!(
                    "{ANNOTATION}{prefix}force-update: {v:?} is not a boolean (true/false, 1/0, t/f); upstream skips the application"
                )
            })?),
        };
        Ok(Settings {
            strategy: get("update-strategy").filter(|v| !v.is_empty()),
            force_update,
            allow_tags: get("allow-tags").filter(|v| !v.is_empty()),
            ignore_tags: get("ignore-tags").map(|v| comma_list(&v)),
            pull_secret: get("pull-secret").filter(|v| !v.is_empty()),
            platforms: get("platforms")
                .filter(|_| !prefix.is_empty())
                .map(|v| comma_list(&v))
                .filter(|p| !p.is_empty()),
        })
    }
}

impl WriteBack {
    pub(super) fn from_annotations(annotations: &BTreeMap<String, String>) -> WriteBack {
        let get = |key: &str| annotations.get(&format!("{ANNOTATION}{key}")).cloned();
        WriteBack {
            method: get("write-back-method"),
            branch: get("git-branch"),
            target: get("write-back-target"),
            repository: get("git-repository")
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty()),
        }
    }
}

/// `image-list` and the per-image annotations; `defaults` are what the
/// app-wide annotations do not set.
pub(super) fn images_from_annotations(
    annotations: &BTreeMap<String, String>,
    defaults: &Settings,
) -> Result<Vec<ImageSpec>, String> {
    let list = annotations
        .get(&format!("{ANNOTATION}image-list"))
        .map(String::as_str)
        .unwrap_or_default();
    let app_wide = Settings::from_annotations(annotations, "")?.or(defaults);
    let mut images = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (alias, image) = match entry.split_once('=') {
            Some((alias, image)) => (alias.trim(), image.trim()),
            None => ("", entry),
        };
        let (name, constraint) = split_image(image)?;
        // Per-image annotations are keyed by the alias, else by the name.
        let key = if alias.is_empty() { &name } else { alias };
        let get = |suffix: &str| {
            annotations
                .get(&format!("{ANNOTATION}{key}.{suffix}"))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let targets = ManifestTargets {
            helm_name: get("helm.image-name"),
            helm_tag: get("helm.image-tag"),
            helm_spec: get("helm.image-spec"),
            kustomize_name: get("kustomize.image-name"),
        };
        if targets.kustomize_name.is_some()
            && (targets.helm_name.is_some()
                || targets.helm_tag.is_some()
                || targets.helm_spec.is_some())
        {
            return Err(format!(
                "image {key:?} has both helm.* and kustomize.image-name annotations; upstream skips the application"
            ));
        }
        images.push(ImageSpec {
            alias: alias.to_string(),
            settings: Settings::from_annotations(annotations, &format!("{key}."))?.or(&app_wide),
            targets,
            constraint,
            name,
            gate: Ok(None),
        });
    }
    if images.is_empty() {
        return Err(format!("{ANNOTATION}image-list names no image"));
    }
    Ok(images)
}

/// Go's `strconv.ParseBool`.
fn go_parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn comma_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}
