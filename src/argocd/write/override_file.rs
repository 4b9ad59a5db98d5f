//! The override file `.argocd-source-<app>.yaml` beside an app: Helm
//! `parameters` or Kustomize `images`, merged as upstream merges them, and
//! its readers.

use super::HelmParam;
use super::edit::{Text, finish, is_blank};
use super::locate::{Base, single_document};
use super::merge::{Flag, merge_helm, merge_kustomize};
use crate::argocd::kustomize;
#[cfg(test)]
use crate::yaml::Node;

/// `.argocd-source-<app>.yaml` for a Helm app; `existing` is the current text
/// (`None` when the file is absent).
///
/// Managed parameters replace the entry of the same name or are added; other
/// entries are kept. A new file lists the parameters sorted by name with
/// `forcestring` (upstream's spelling in this file) and is `parameters: []`
/// when nothing is managed. In an existing file a new entry goes to its sorted
/// place when the list is sorted by name, else to the end.
pub fn override_helm(existing: Option<&str>, set: &[HelmParam]) -> Result<Option<String>, String> {
    let src = existing.filter(|s| !is_blank(s)).unwrap_or("");
    let mut text = Text::new(src);
    single_document(&text.parse()?)?;
    merge_helm(&mut text, Base::Root, set, Flag::Override, true)?;
    finish(existing, text.src)
}

/// `.argocd-source-<app>.yaml` for a Kustomize app; `set` are Argo image
/// override strings `[orig=]name[:tag][@digest]`.
///
/// Upstream's rule: an override matches the first entry with the same image
/// name and registry (no registry and `docker.io` are the same); it replaces
/// that entry unless it carries no tag (the entry keeps its tag) or the same
/// tag — digests compared first when either side has one. Unmatched overrides
/// are appended.
pub fn override_kustomize(
    existing: Option<&str>,
    set: &[String],
) -> Result<Option<String>, String> {
    let src = existing.filter(|s| !is_blank(s)).unwrap_or("");
    let mut text = Text::new(src);
    single_document(&text.parse()?)?;
    merge_kustomize(
        &mut text,
        Base::Root,
        &|existing| kustomize::merge_override(existing, set),
        true,
    )?;
    finish(existing, text.src)
}

/// The override string under `root.kustomize.images` for the image named
/// like `image` (tag and digest ignored), using upstream's matching.
#[cfg(test)]
pub(super) fn kustomize_image(root: &Node, image: &str) -> Option<String> {
    let images: Vec<String> = root
        .at(&super::KUSTOMIZE_IMAGES)?
        .items()
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    crate::argocd::kustomize::current(&images, image, None).cloned()
}
