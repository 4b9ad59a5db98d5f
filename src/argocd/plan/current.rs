//! Where an application's images stand today: the value in effect (the
//! override file, else the Application's own parameters, else the Helm
//! values or kustomization), or, when none names the image, the reference
//! its manifests run (the files its kustomization reaches, or its Helm
//! values files). Apart from planning because it only reads files; what to
//! do with the value is decided in [`super::finish`].

use std::sync::Arc;

use crate::argocd::config::{Configured, ImageSpec};
use crate::argocd::{kustomize, write};
use crate::policy::argo;
use crate::yaml::{self, Node};

use super::target::{Kind, join, kustomization_file, normalize};
use super::{Target, helm_names, kustomize_name};

/// The current value of an image and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Current {
    pub(super) reference: String,
    pub(super) from: String,
}

/// The files an application's current values are read from, each read
/// and parsed once for all its images.
pub(super) struct Files {
    /// The override file: its path, and its text when it exists and parses.
    overrides: (String, Option<yaml::Stream>),
    /// The file holding the Application, parsed once for all the
    /// applications it holds.
    application: Option<Arc<yaml::Stream>>,
    /// The Helm values file or kustomization, with its path.
    manifest: Option<(String, yaml::Stream)>,
}

impl Files {
    pub(super) fn read(
        c: &Configured,
        kind: Kind,
        override_file: String,
        target: Option<&Target>,
        read: &dyn Fn(&str) -> Option<String>,
        parsed: &dyn Fn(&str) -> Option<Arc<yaml::Stream>>,
    ) -> Files {
        let parse = |file: &str| read(file).and_then(|src| yaml::parse(&src).ok());
        let manifest = match (kind, target) {
            (Kind::Helm, Some(Target::HelmValues(f))) => Some(f.clone()),
            (Kind::Helm, _) => Some(join(&c.source.path, "values.yaml")),
            (Kind::Kustomize, Some(Target::Kustomization(f))) => Some(f.clone()),
            (Kind::Kustomize, _) => kustomization_file(&c.source.path, read),
        };
        Files {
            overrides: (override_file.clone(), parse(&override_file)),
            application: parsed(&c.app.origin.file),
            manifest: manifest.and_then(|f| Some((f.clone(), parse(&f)?))),
        }
    }

    /// The Application's source that is this repository.
    pub(super) fn source(&self, c: &Configured) -> Option<&Node> {
        let document = self.application.as_ref()?.documents.get(c.app.document)?;
        match c.source.index {
            None => document.root.at(&["spec", "source"]),
            Some(i) => document.root.at(&["spec", "sources"])?.items().get(i),
        }
    }
}

/// The value in effect: the override file, else the Application's own
/// parameters, else the values file or kustomization under the app's path
/// (or the configured target).
pub(super) fn current_value(
    c: &Configured,
    spec: &ImageSpec,
    kind: Kind,
    files: &Files,
) -> Option<Current> {
    let (override_file, overrides) = &files.overrides;
    let source = files.source(c);
    let manifest = files
        .manifest
        .as_ref()
        .and_then(|(file, stream)| Some((file.as_str(), first(stream)?)));
    let found = |reference: Option<String>, from: &str| {
        reference.map(|reference| Current {
            reference,
            from: from.to_string(),
        })
    };
    match kind {
        Kind::Helm => {
            let reference = |get: &dyn Fn(&str) -> Option<String>| helm_reference(spec, get);
            let in_file = |root: Option<&Node>| reference(&|p| write::helm_param(root?, p));
            found(in_file(overrides.as_ref().and_then(first)), override_file)
                .or_else(|| found(in_file(source), &c.app.origin.file))
                .or_else(|| {
                    let (file, root) = manifest?;
                    found(reference(&|p| write::values_at(root, p)), file)
                })
        }
        Kind::Kustomize => {
            let kname = kustomize_name(spec);
            // Upstream's `GetKustomizeImage` rule, so that reading and
            // writing find the same entry.
            let in_file = |root: Option<&Node>| {
                let images = kustomize_images_of(root?);
                let entry = kustomize::current(
                    &images,
                    &spec.name,
                    spec.targets.kustomize_name.as_deref(),
                )?;
                Some(
                    entry
                        .split_once('=')
                        .map_or(entry.as_str(), |(_, r)| r)
                        .to_string(),
                )
            };
            found(in_file(overrides.as_ref().and_then(first)), override_file)
                .or_else(|| found(in_file(source), &c.app.origin.file))
                .or_else(|| {
                    let (file, root) = manifest?;
                    let entry = write::kustomization_image(root, kname)?;
                    let mut reference = entry.new_name.unwrap_or_else(|| kname.to_string());
                    if let Some(tag) = entry.new_tag {
                        reference = format!("{reference}:{tag}");
                    }
                    if let Some(digest) = entry.digest {
                        reference = format!("{reference}@{digest}");
                    }
                    found(Some(reference), file)
                })
        }
    }
}

/// The image as the application's manifests run it, when no override,
/// parameter, values entry or kustomization image names it. Upstream takes
/// the current tag from the live application's `status.summary.images`
/// (pkg/argocd/argocd.go:1168-1192), which Argo CD fills from the rendered
/// manifests; a repository holds those manifests: for a Kustomize app the
/// files its kustomization reaches (`resources`, `bases`, `components`,
/// recursively), for a Helm app its values files. A reference to the same
/// reference with a tag or digest (`image: ghcr.io/acme/web:1.2.0`), or a
/// `repository` + `tag` pair, stands for a running image, and the one
/// upstream's `ContainsImage` picks ([`kustomize::running`]) is the current
/// value.
pub(super) fn running(
    c: &Configured,
    spec: &ImageSpec,
    kind: Kind,
    target: Option<&Target>,
    read: &dyn Fn(&str) -> Option<String>,
) -> Option<Current> {
    let mut files: Vec<String> = Vec::new();
    match kind {
        Kind::Helm => {
            files.push(join(&c.source.path, "values.yaml"));
            if let Some(Target::HelmValues(f)) = target {
                files.push(f.clone());
            }
        }
        Kind::Kustomize => {
            let mut dirs = vec![c.source.path.clone()];
            let mut seen = std::collections::BTreeSet::new();
            while let Some(dir) = dirs.pop() {
                if !seen.insert(dir.clone()) || seen.len() > 100 {
                    continue;
                }
                let Some(file) = kustomization_file(&dir, read) else {
                    continue;
                };
                let Some(root) = read(&file).and_then(|src| yaml::parse(&src).ok()) else {
                    continue;
                };
                let Some(root) = first(&root) else { continue };
                for key in ["resources", "bases", "components"] {
                    for entry in root.get(key).map(Node::items).unwrap_or_default() {
                        let Some(entry) = entry.as_str().filter(|e| !e.contains("://")) else {
                            continue;
                        };
                        let Ok(path) = normalize(&join(&dir, entry)) else {
                            continue;
                        };
                        if kustomization_file(&path, read).is_some() {
                            dirs.push(path);
                        } else {
                            files.push(path);
                        }
                    }
                }
            }
        }
    }
    let streams: Vec<(&String, yaml::Stream)> = files
        .iter()
        .filter_map(|file| Some((file, yaml::parse(&read(file)?).ok()?)))
        .collect();
    let at_parameters = streams.iter().find_map(|(file, stream)| match kind {
        Kind::Helm => Some(Current {
            reference: helm_reference(spec, &|p| write::values_at(first(stream)?, p))?,
            from: file.to_string(),
        }),
        Kind::Kustomize => None,
    });
    if at_parameters.is_some() {
        return at_parameters;
    }
    let mut found: Vec<(&String, String)> = Vec::new();
    for (file, stream) in &streams {
        let mut references = Vec::new();
        for document in &stream.documents {
            references_in(&document.root, &mut references);
        }
        found.extend(references.into_iter().map(|r| (*file, r)));
    }
    let references: Vec<String> = found.iter().map(|(_, r)| r.clone()).collect();
    let i = kustomize::running(
        &references,
        &spec.name,
        spec.targets.kustomize_name.as_deref(),
    )?;
    let (file, reference) = found.swap_remove(i);
    Some(Current {
        reference,
        from: file.clone(),
    })
}

/// Every image reference with a tag or digest in a tree, in order.
fn references_in(node: &Node, out: &mut Vec<String>) {
    match node {
        Node::Scalar(_) => {
            if let Some(value) = node.as_str() {
                let (_, tag, digest) = argo::split_reference(value);
                if tag.is_some() || digest.is_some() {
                    out.push(value.to_string());
                }
            }
        }
        Node::Mapping(entries, _) => {
            if let (Some(repository), Some(tag)) =
                (node.str_at(&["repository"]), node.str_at(&["tag"]))
                && !tag.is_empty()
            {
                out.push(format!("{repository}:{tag}"));
            }
            for (_, v) in entries {
                references_in(v, out);
            }
        }
        Node::Sequence(items, _) => items.iter().for_each(|i| references_in(i, out)),
        Node::Alias(_) | Node::Empty => {}
    }
}

/// The reference an image's Helm parameters hold, read through `get`.
fn helm_reference(spec: &ImageSpec, get: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let (spec_param, name_param, tag_param) = helm_names(spec);
    match spec_param {
        Some(p) => get(p),
        None => {
            let tag = get(tag_param)?;
            let name = get(name_param).unwrap_or_else(|| spec.name.clone());
            Some(format!("{name}:{tag}"))
        }
    }
}

/// The string entries of `kustomize.images` under `root` (an override
/// file's root or an Application source).
pub(super) fn kustomize_images_of(root: &Node) -> Vec<String> {
    root.at(&["kustomize", "images"])
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect()
}

fn first(stream: &yaml::Stream) -> Option<&Node> {
    stream.documents.first().map(|d| &d.root)
}

pub(super) fn current_tag(current: &Current) -> Option<&str> {
    let reference = current
        .reference
        .split_once('=')
        .map_or(current.reference.as_str(), |(_, r)| r);
    argo::split_reference(reference).1
}
