//! Write-back method `argocd` done in git: Helm parameters or Kustomize
//! images set on an `Application` (one document of a possibly multi-document
//! file), under `spec.source` or `spec.sources[i]`.

use super::HelmParam;
use super::edit::{Text, finish};
use super::locate::{Base, locate};
use super::merge::{Flag, merge_helm, merge_kustomize};
use crate::argocd::kustomize;

/// Sets Helm parameters on the `Application` that is document `document` of
/// `src`, under `spec.source` (`source = None`) or `spec.sources[i]`. The
/// CRD spells the flag `forceString` and omits it when false.
pub fn application_helm(
    src: &str,
    document: usize,
    source: Option<usize>,
    set: &[HelmParam],
) -> Result<Option<String>, String> {
    let mut text = Text::new(src);
    let base = Base::Source { document, source };
    locate(&text.parse()?, base)?;
    merge_helm(&mut text, base, set, Flag::Crd, false)?;
    finish(Some(src), text.src)
}

/// Sets Kustomize image overrides on an `Application`'s source, with the same
/// matching as [`override_kustomize`].
pub fn application_kustomize(
    src: &str,
    document: usize,
    source: Option<usize>,
    images: &[String],
) -> Result<Option<String>, String> {
    let mut text = Text::new(src);
    let base = Base::Source { document, source };
    locate(&text.parse()?, base)?;
    let set_all = |existing: &[String]| {
        let mut list = existing.to_vec();
        for image in images {
            kustomize::set(&mut list, image);
        }
        list
    };
    merge_kustomize(&mut text, base, &set_all, false)?;
    finish(Some(src), text.src)
}
