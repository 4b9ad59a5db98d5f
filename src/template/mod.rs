//! Renders commit messages and branch names from the Go `text/template`
//! templates users already have: Flux `ImageUpdateAutomation`
//! `spec.git.commit.messageTemplate`, Argo CD Image Updater's commit message
//! and write-branch templates, or a template given on our command line. The
//! output must be byte for byte what Go would print, so that switching to this
//! tool changes nothing in a repository's history. Parsing (lexing, whitespace
//! trimming, comments) is gotmpl's; evaluation is done here, because gotmpl's
//! data model only knows string-keyed maps, while the Flux data has structs,
//! `Stringer`s (`{{.AutomationObject}}` prints `namespace/name`) and maps keyed
//! by structs (`range $resource, $changes := .Changed.Objects` then
//! `$resource.Kind`).
//!
//! Semantics follow Go's `text/template` (missing map keys print
//! `<no value>`, missing struct fields are errors, maps range in Go's sorted
//! key order, `{{template "x"}}` runs with nil data, ...) and the Sprig
//! functions Flux documents (a hermetic subset, see [`render_message`]).
//!
//! This file holds the public API and the data every dialect shares; the
//! engine is split along its seams: `value` (the Go value model), `gofmt`
//! (Go's fmt, strconv and JSON output, `printf`), `parse` (gotmpl's parser
//! plus Go's parse-time checks), `exec` (the evaluator), `funcs` (Go's
//! builtins and the Sprig subset), `flux_data` and `argo_data` (how each tool
//! shapes the data its templates see).

mod argo_data;
mod exec;
mod flux_data;
mod funcs;
mod gofmt;
mod parse;
#[cfg(test)]
mod tests;
mod value;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use argo_data::{argo_changes, branch_data};
use exec::Exec;
use flux_data::{changed_data, namespaced_name, updated_data};
use funcs::too_large;
use gofmt::go_quote;
use parse::parse_template;
use value::{Val, list_val, map_val, plain, struct_val};

/// Name Flux gives the commit message template (shown in errors).
const MESSAGE_TEMPLATE_NAME: &str = "commit message";
/// Name Argo CD Image Updater gives the branch template (shown in errors).
const BRANCH_TEMPLATE_NAME: &str = "branchName";
/// Argo CD Image Updater cuts rendered branch names to 255 bytes.
const MAX_BRANCH_LEN: usize = 255;
/// Nesting limit for `{{template}}` calls (Go allows 100000; our stack does not).
const MAX_TEMPLATE_DEPTH: usize = 100;
/// The most bytes a template may print, and the longest string any function
/// may return (Go has no limit; a repository's template must not be able to
/// exhaust memory).
pub const MAX_OUTPUT: usize = 1 << 20;
/// The most steps (actions, text pieces, range iterations) an execution may
/// take (Go has no limit; a repository's template must not run for ever).
pub const MAX_STEPS: usize = 1_000_000;

/// One value change made by a run (dialect-neutral).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Path relative to the repository root, `/`-separated.
    pub file: String,
    /// Flux setter text, e.g. `flux-system:podinfo` or `flux-system:podinfo:tag`.
    pub setter: String,
    /// Old value as it was in the file.
    pub old: String,
    /// New value.
    pub new: String,
    /// Image name of the policy, as written (e.g. `ghcr.io/stefanprodan/podinfo`).
    pub image: String,
    /// Tag before (best effort; may be "").
    pub old_tag: String,
    /// Tag after.
    pub new_tag: String,
    /// Resource the change is in (fields empty when the file is not a k8s resource).
    pub object: Object,
}

/// The Kubernetes resource a change was made in.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Object {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// Everything a template can see.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// (namespace, name) of the ImageUpdateAutomation, if any.
    pub automation: Option<(String, String)>,
    /// The automation is `image.toolkit.fluxcd.io/v1`: its templates no
    /// longer see `.Updated` and `.Changed.ImageResult`, and using them is
    /// Flux's `RemovedTemplateField` error.
    pub flux_v1: bool,
    /// Flux `spec.git.commit.messageTemplateValues`.
    pub values: BTreeMap<String, String>,
    /// Argo CD application name ("" when none).
    pub app_name: String,
    /// The changes, in the order the run made them.
    pub changes: Vec<Change>,
}

/// A template that does not parse or fails while executing, with Go's
/// message format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `v1` automation's template uses a field Flux removed (reason
    /// `RemovedTemplateField`, with Flux's advice).
    #[error("RemovedTemplateField: {}", removed_field_advice(.0))]
    RemovedField(&'static str),
    /// `template: NAME:LINE: MESSAGE`, as Go's parser reports.
    #[error("template: {name}:{line}: {message}")]
    Parse {
        name: String,
        line: usize,
        message: String,
    },
    /// `template: NAME:LINE:COL: executing "TEMPLATE" at <CONTEXT>: MESSAGE`,
    /// as Go's executor reports (COL is Go's 0-based byte column, CONTEXT the
    /// failing node; past 20 bytes, its first 20 characters and `...`).
    #[error(
        "template: {name}:{line}:{column}: executing {} at <{context}>: {message}",
        go_quote(.template)
    )]
    Exec {
        name: String,
        line: usize,
        column: usize,
        template: String,
        context: String,
        message: String,
    },
}

/// Flux's advice for a removed template field.
fn removed_field_advice(field: &str) -> String {
    let instead = match field {
        ".Updated" => " Please use '.Changed' instead.",
        ".Changed.ImageResult" => {
            " Please use '.Changed.FileChanges' or '.Changed.Objects' instead."
        }
        _ => "",
    };
    format!(
        "template uses removed '{field}' field.{instead} See: https://fluxcd.io/flux/components/image/imageupdateautomations/#message-template"
    )
}

/// Renders a commit message template. Named `commit message`, as in Flux.
///
/// The template sees the data of every dialect at once:
///
/// * Flux v1 (`source.TemplateData`): `.AutomationObject` (`.Namespace`,
///   `.Name`; prints `namespace/name`, `/` without an automation),
///   `.Changed.FileChanges` (file → object → changes), `.Changed.Objects`,
///   `.Changed.Changes` (changes have `.OldValue`, `.NewValue`, `.Setter`;
///   objects `.APIVersion`, `.Kind`, `.Namespace`, `.Name`), `.Values`.
///   As in current Flux, `.Changed.Changes` is de-duplicated and sorted by
///   setter, old value, new value; `.Changed.Objects` gathers an object's
///   changes from every file, sorted the same way; the lists inside
///   `.Changed.FileChanges` keep the run's order. Maps range in Go's order:
///   files by path, objects by apiVersion, kind, name, namespace (Go compares
///   struct keys field by field, and kyaml declares `Name` before `Namespace`).
/// * Flux v1beta1 (`.Updated`, also `.Changed.ImageResult`): `.Updated.Files`,
///   `.Updated.Objects`, `.Updated.Images`. An image ref prints as the new
///   reference (`new` for a full-image setter, else `image:new_tag`) and has
///   `.Identifier`, `.Repository`, `.Registry`, `.Name`, `.Policy`.
///   `.Updated.Images` is de-duplicated and sorted by its text.
/// * Argo CD Image Updater: `.AppName` and `.AppChanges` (`.Image`, `.OldTag`,
///   `.NewTag`, `.Labels` (always empty)), one entry per distinct
///   (image, old tag, new tag), in run order. `.Image` is Argo's `ImageName`:
///   the image without its registry host when its first path component
///   contains a `.` (`ghcr.io/a/b` → `a/b`).
///
/// Functions: Go's builtins and the hermetic Sprig functions `upper lower
/// title trim trimAll trimPrefix trimSuffix replace contains hasPrefix
/// hasSuffix quote squote default empty coalesce join splitList list first
/// last uniq sortAlpha indent nindent repeat substr trunc abbrev toJson
/// toString cat nospace ternary`, with Sprig's argument orders.
pub fn render_message(template: &str, context: &Context) -> Result<String, TemplateError> {
    render(MESSAGE_TEMPLATE_NAME, template, &message_data(context)).map_err(|e| {
        let text = e.to_string();
        // Flux's own test for a removed field is this text of Go's error.
        let removed = [
            (
                ".Updated",
                "can't evaluate field Updated in type source.TemplateData",
            ),
            (
                ".Changed.ImageResult",
                "can't evaluate field ImageResult in type update.Result",
            ),
        ];
        match removed.iter().find(|(_, pattern)| text.contains(pattern)) {
            Some((field, _)) if context.flux_v1 => TemplateError::RemovedField(field),
            _ => e,
        }
    })
}

/// Renders a branch name template (Argo CD `git.branch` after `:`). Named
/// `branchName`, as in Argo CD Image Updater.
///
/// Data (`argocd.branchNameTemplate`): `.AppName`, `.Images` (`.Name`,
/// `.Alias` (always ""), `.OldTag`, `.NewTag`; one entry per distinct
/// (image, old tag, new tag) as for `.AppChanges`) and `.SHA256`: the
/// lowercase hex SHA-256 of `NAME-OLDTAG-NEWTAG,` concatenated over `.Images`,
/// exactly what Argo hashes. As in Argo, a result longer than 255 bytes is
/// cut to 255 (backing off to a UTF-8 boundary). The functions are those of
/// [`render_message`] (Argo itself offers only Go's builtins here).
pub fn render_branch(template: &str, context: &Context) -> Result<String, TemplateError> {
    let mut name = render(BRANCH_TEMPLATE_NAME, template, &branch_data(context))?;
    if name.len() > MAX_BRANCH_LEN {
        let mut cut = MAX_BRANCH_LEN;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    Ok(name)
}

/// The message used when no template is configured.
///
/// First line: `Update image IMAGE to TAG` when every change sets the same
/// image to the same tag (a single change, or one image in several files),
/// else `Update images`. Then, when there are changes, an empty line and one
/// line per change, in run order: `- FILE: OLD -> NEW`. Every line ends with
/// `\n`. Example:
///
/// ```text
/// Update image ghcr.io/stefanprodan/podinfo to 6.5.0
///
/// - apps/podinfo.yaml: ghcr.io/stefanprodan/podinfo:6.4.0 -> ghcr.io/stefanprodan/podinfo:6.5.0
/// ```
pub fn default_message(context: &Context) -> String {
    let mut targets: Vec<(&str, &str)> = Vec::new();
    for c in &context.changes {
        let target = (c.image.as_str(), c.new_tag.as_str());
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    let mut out = match targets.as_slice() {
        [(image, tag)] if !image.is_empty() && !tag.is_empty() => {
            format!("Update image {image} to {tag}\n")
        }
        _ => "Update images\n".to_string(),
    };
    if !context.changes.is_empty() {
        out.push('\n');
        for c in &context.changes {
            let _ = writeln!(out, "- {}: {} -> {}", c.file, c.old, c.new);
        }
    }
    out
}

fn render(name: &str, src: &str, data: &Val) -> Result<String, TemplateError> {
    let parsed = parse_template(name, src)?;
    let mut exec = Exec {
        name,
        src,
        defines: &parsed.defines,
        vars: vec![("$".to_string(), data.clone())],
        out: String::new(),
        depth: 0,
        steps: 0,
        current: name.to_string(),
    };
    exec.walk(data, &parsed.root)?;
    Ok(exec.out)
}

fn string_map(ty: &'static str, values: &BTreeMap<String, String>) -> Val {
    let entries = values
        .iter()
        .map(|(k, v)| (Val::str(k), Val::str(v)))
        .collect();
    map_val(ty, "string", entries, Val::str(""), None)
}

fn message_data(ctx: &Context) -> Val {
    let (namespace, name) = ctx
        .automation
        .as_ref()
        .map_or(("", ""), |(ns, n)| (ns.as_str(), n.as_str()));
    let updated = updated_data(ctx);
    let app_changes = argo_changes(ctx)
        .into_iter()
        .map(|(image, old, new)| {
            struct_val(
                "argocd.commitMessageChange",
                vec![
                    plain("Image", Val::str(image)),
                    plain("OldTag", Val::str(old)),
                    plain("NewTag", Val::str(new)),
                    plain("Labels", string_map("map[string]string", &BTreeMap::new())),
                ],
                None,
            )
        })
        .collect();
    struct_val(
        "source.TemplateData",
        vec![
            plain("AutomationObject", namespaced_name(namespace, name)),
            plain("Updated", updated.clone()),
            plain("Changed", changed_data(ctx, updated)),
            plain("Values", string_map("map[string]string", &ctx.values)),
            plain("AppName", Val::str(&ctx.app_name)),
            plain(
                "AppChanges",
                list_val("[]argocd.commitMessageChange", app_changes, false, None),
            ),
        ]
        .into_iter()
        .filter(|f| !(ctx.flux_v1 && f.name == "Updated"))
        .collect(),
        None,
    )
}

/// `Err` unless `extra` (`None`: it overflowed) plus `base` bytes fit in
/// [`MAX_OUTPUT`]; checked before a string is built, never after.
fn bounded(extra: Option<usize>, base: usize, what: &str) -> Result<(), String> {
    match extra.and_then(|e| e.checked_add(base)) {
        Some(size) if size <= MAX_OUTPUT => Ok(()),
        _ => Err(too_large(what)),
    }
}
