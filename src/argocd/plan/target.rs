//! Where an application's writes go: whether Argo CD would treat its source
//! as a Helm chart or a Kustomize directory, and which file its write-back
//! target names, resolved against the app's path.

use super::Target;
use crate::argocd::config::{Configured, SourceKind};

/// Helm or Kustomize, as Argo CD would detect it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Helm,
    Kustomize,
}

pub(super) fn app_kind(
    c: &Configured,
    read: &dyn Fn(&str) -> Option<String>,
) -> Result<Kind, String> {
    match c.write_back.target_kind() {
        Some(SourceKind::Helm) => return Ok(Kind::Helm),
        Some(SourceKind::Kustomize) => return Ok(Kind::Kustomize),
        None => {}
    }
    if c.source.helm {
        return Ok(Kind::Helm);
    }
    if c.source.kustomize {
        return Ok(Kind::Kustomize);
    }
    if read(&join(&c.source.path, "Chart.yaml")).is_some() {
        return Ok(Kind::Helm);
    }
    if kustomization_file(&c.source.path, read).is_some() {
        return Ok(Kind::Kustomize);
    }
    let path = match c.source.index {
        None => "spec.source.path".to_string(),
        Some(i) => format!("spec.sources[{i}].path"),
    };
    let shown = match c.source.path.as_str() {
        "" => "\"\" (the repository root)".to_string(),
        dir => format!("{dir:?}"),
    };
    Err(format!(
        "{path} {shown}: no Chart.yaml and no kustomization file there, so it is neither a Helm chart nor a Kustomize directory (upstream updates only those); check that {path} names a directory of this repository, relative to its root, or set a write-back target (helmvalues:<file>, kustomization:<dir>)"
    ))
}

/// The write-back target, resolved against the app's path.
pub(super) fn target_of(
    c: &Configured,
    controller_ns: &str,
    read: &dyn Fn(&str) -> Option<String>,
) -> Result<Target, String> {
    if !c.write_back.is_git() {
        if let Some(method) = &c.write_back.method
            && method != "argocd"
        {
            return Err(format!(
                "write-back method {method:?} is neither \"argocd\" nor \"git[:credentials]\""
            ));
        }
        return Ok(Target::Application {
            file: c.app.origin.file.clone(),
            document: c.app.document,
        });
    }
    target_path(
        c.write_back.target.as_deref(),
        &c.base,
        &c.app.name,
        &c.app.namespace,
        controller_ns,
    )
    .map(|t| match t {
        Target::Kustomization(dir) => Target::Kustomization(
            kustomization_file(&dir, read).unwrap_or_else(|| join(&dir, "kustomization.yaml")),
        ),
        t => t,
    })
}

/// Resolves a `write-back-target` (`None` = the override file) against the
/// app's path; a target starting with `/` is relative to the repository
/// root. A kustomization target names a directory.
pub fn target_path(
    target: Option<&str>,
    app_path: &str,
    app_name: &str,
    app_namespace: &str,
    controller_ns: &str,
) -> Result<Target, String> {
    let Some(target) = target.filter(|t| !t.is_empty()) else {
        let name = if app_namespace == controller_ns {
            format!(".argocd-source-{app_name}.yaml")
        } else {
            format!(".argocd-source-{app_namespace}_{app_name}.yaml")
        };
        return Ok(Target::Override(join(app_path, &name)));
    };
    let (kind, arg) = target.split_once(':').unwrap_or((target, ""));
    let resolve = |arg: &str, default: &str| {
        let arg = if arg.is_empty() { default } else { arg };
        match arg.strip_prefix('/') {
            Some(absolute) => normalize(absolute),
            None => normalize(&join(app_path, arg)),
        }
    };
    match kind {
        "kustomization" => resolve(arg, ".").map(Target::Kustomization),
        "helmvalues" => resolve(arg, "values.yaml").map(Target::HelmValues),
        _ => bare_target(target),
    }
}

/// A target without a `kind:` prefix is a file relative to the repository
/// root, as upstream takes it (pkg/argocd/argocd.go:615-629, written at
/// that path by pkg/argocd/git.go:348): a `.yaml` / `.yml` file other than
/// an `.argocd-source-*` one is a Helm values file; a kustomization file is
/// refused (upstream: overrides would replace its content); anything else
/// receives the override file's content.
fn bare_target(target: &str) -> Result<Target, String> {
    let base = target.rsplit('/').next().unwrap_or(target);
    if matches!(
        base,
        "kustomization.yaml" | "kustomization.yml" | "Kustomization"
    ) {
        return Err(format!(
            "write-back target {target:?} is a kustomization file, which the override file would replace; use \"kustomization:<dir>\" to update its images"
        ));
    }
    let file = normalize(target.trim_start_matches('/'))?;
    if file.is_empty() {
        return Err(format!("write-back target {target:?} names no file"));
    }
    let values =
        (base.ends_with(".yaml") || base.ends_with(".yml")) && !base.starts_with(".argocd-source-");
    Ok(if values {
        Target::HelmValues(file)
    } else {
        Target::Override(file)
    })
}

/// `a/./b/../c` → `a/c`; an error when `..` leaves the repository.
pub(super) fn normalize(path: &str) -> Result<String, String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts
                    .pop()
                    .ok_or_else(|| format!("{path:?} leaves the repository"))?;
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

pub(super) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() || dir == "." {
        name.to_string()
    } else {
        format!("{}/{name}", dir.trim_end_matches('/'))
    }
}

pub(super) fn kustomization_file(
    dir: &str,
    read: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|name| join(dir, name))
        .find(|path| read(path).is_some())
}
