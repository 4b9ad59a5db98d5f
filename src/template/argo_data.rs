//! The data Argo CD Image Updater gives its templates: the commit message's
//! `.AppChanges` entries and the branch name's `.Images` and `.SHA256`, one
//! entry per distinct (image, old tag, new tag), images named as Argo names
//! them. Only how Argo shapes its data lives here.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::Context;
use super::value::{Val, list_val, plain, struct_val};

/// Argo's `ImageName`: the image without a registry host (a first path
/// component containing a `.`).
pub(super) fn argo_image_name(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, rest)) if first.contains('.') => rest,
        _ => image,
    }
}

/// Argo's change list: one entry per distinct (image, old tag, new tag).
pub(super) fn argo_changes(ctx: &Context) -> Vec<(&str, &str, &str)> {
    let mut out: Vec<(&str, &str, &str)> = Vec::new();
    for c in &ctx.changes {
        let entry = (
            argo_image_name(&c.image),
            c.old_tag.as_str(),
            c.new_tag.as_str(),
        );
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

pub(super) fn branch_data(ctx: &Context) -> Val {
    let mut hasher = Sha256::new();
    let mut images = Vec::new();
    for (image, old, new) in argo_changes(ctx) {
        hasher.update(format!("{image}-{old}-{new},").as_bytes());
        images.push(struct_val(
            "argocd.imageChange",
            vec![
                plain("Name", Val::str(image)),
                plain("Alias", Val::str("")),
                plain("OldTag", Val::str(old)),
                plain("NewTag", Val::str(new)),
            ],
            None,
        ));
    }
    let mut sha = String::with_capacity(64);
    for byte in hasher.finalize().iter() {
        let _ = write!(sha, "{byte:02x}");
    }
    struct_val(
        "argocd.branchNameTemplate",
        vec![
            plain(
                "Images",
                list_val("[]argocd.imageChange", images, false, None),
            ),
            plain("SHA256", Val::str(&sha)),
            plain("AppName", Val::str(&ctx.app_name)),
        ],
        None,
    )
}
