//! The data Flux gives a commit message template, built as Go values: v1's
//! `.AutomationObject` and `.Changed` (`update.Result`, with kyaml's struct
//! keys and Flux's orderings) and v1beta1's `.Updated` (image refs split as
//! go-containerregistry does). Only how Flux shapes its data lives here.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

use super::gofmt::{go_quote, json_string, write_v};
use super::value::{Struct, Val, embedded, list_val, map_val, method, plain, struct_val, tagged};
use super::{Change, Context, Object};

pub(super) fn namespaced_name(namespace: &str, name: &str) -> Val {
    struct_val(
        "types.NamespacedName",
        vec![
            plain("Namespace", Val::str(namespace)),
            plain("Name", Val::str(name)),
        ],
        Some(format!("{namespace}/{name}")),
    )
}

/// Flux's `update.ObjectIdentifier`, which embeds kyaml's
/// `ResourceIdentifier{TypeMeta{APIVersion, Kind}, NameMeta{Name, Namespace}}`.
pub(super) fn object_identifier(o: &Object) -> Val {
    let type_meta = struct_val(
        "yaml.TypeMeta",
        vec![
            tagged("APIVersion", "apiVersion", Val::str(&o.api_version)),
            tagged("Kind", "kind", Val::str(&o.kind)),
        ],
        None,
    );
    let name_meta = struct_val(
        "yaml.NameMeta",
        vec![
            tagged("Name", "name", Val::str(&o.name)),
            tagged("Namespace", "namespace", Val::str(&o.namespace)),
        ],
        None,
    );
    let resource = struct_val(
        "yaml.ResourceIdentifier",
        vec![
            embedded("TypeMeta", type_meta),
            embedded("NameMeta", name_meta),
        ],
        None,
    );
    struct_val(
        "update.ObjectIdentifier",
        vec![embedded("ResourceIdentifier", resource)],
        None,
    )
}

/// Go's map order for object keys: apiVersion, kind, name, namespace.
pub(super) fn object_go_order(o: &Object) -> ObjectKey<'_> {
    (&o.api_version, &o.kind, &o.name, &o.namespace)
}

/// Flux's `lessObjectIdentifier` (used by `ObjectChanges.String()`).
pub(super) fn object_flux_order(o: &Object) -> ObjectKey<'_> {
    (&o.api_version, &o.kind, &o.namespace, &o.name)
}

pub(super) fn change_order(a: &Change, b: &Change) -> Ordering {
    (&a.setter, &a.old, &a.new).cmp(&(&b.setter, &b.old, &b.new))
}

/// Flux's `update.Changes`; `String()` prints the changes sorted.
pub(super) fn flux_changes(changes: &[&Change]) -> Val {
    let mut sorted = changes.to_vec();
    sorted.sort_by(|a, b| change_order(a, b));
    let mut string = String::from("[");
    for (i, c) in sorted.iter().enumerate() {
        if i > 0 {
            string.push(' ');
        }
        let _ = write!(
            string,
            "{{OldValue:{} NewValue:{} Setter:{}}}",
            go_quote(&c.old),
            go_quote(&c.new),
            go_quote(&c.setter)
        );
    }
    string.push(']');
    let items = changes
        .iter()
        .map(|c| {
            struct_val(
                "update.Change",
                vec![
                    plain("OldValue", Val::str(&c.old)),
                    plain("NewValue", Val::str(&c.new)),
                    plain("Setter", Val::str(&c.setter)),
                ],
                None,
            )
        })
        .collect();
    list_val("update.Changes", items, changes.is_empty(), Some(string))
}

/// Flux's `update.ObjectChanges` (map ObjectIdentifier → Changes).
pub(super) fn flux_object_changes(groups: &[(&Object, Vec<&Change>)]) -> Val {
    let mut by_flux = groups.to_vec();
    by_flux.sort_by(|a, b| object_flux_order(a.0).cmp(&object_flux_order(b.0)));
    let mut string = String::from("{");
    for (i, (o, changes)) in by_flux.iter().enumerate() {
        if i > 0 {
            string.push(' ');
        }
        write_v(&mut string, &object_identifier(o));
        string.push(':');
        write_v(&mut string, &flux_changes(changes));
    }
    string.push('}');
    let entries = groups
        .iter()
        .map(|(o, changes)| (object_identifier(o), flux_changes(changes)))
        .collect();
    map_val(
        "update.ObjectChanges",
        "update.ObjectIdentifier",
        entries,
        flux_changes(&[]),
        Some(string),
    )
}

/// Groups changes by object, objects in Go's map order, changes in run order.
/// An object's fields in some sort order.
pub(super) type ObjectKey<'a> = (&'a str, &'a str, &'a str, &'a str);

pub(super) fn group_by_object<'c>(changes: &[&'c Change]) -> Vec<(&'c Object, Vec<&'c Change>)> {
    let mut groups: BTreeMap<ObjectKey, (&Object, Vec<&Change>)> = BTreeMap::new();
    for c in changes {
        groups
            .entry(object_go_order(&c.object))
            .or_insert_with(|| (&c.object, Vec::new()))
            .1
            .push(c);
    }
    groups.into_values().collect()
}

pub(super) fn group_by_file(changes: &[Change]) -> BTreeMap<&str, Vec<&Change>> {
    let mut files: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
    for c in changes {
        files.entry(c.file.as_str()).or_default().push(c);
    }
    files
}

/// Flux v1 `.Changed` (`update.Result`).
pub(super) fn changed_data(ctx: &Context, image_result: Val) -> Val {
    let files = group_by_file(&ctx.changes);
    let mut string = String::from("{");
    let mut entries = Vec::new();
    for (i, (file, changes)) in files.iter().enumerate() {
        let objects = flux_object_changes(&group_by_object(changes));
        if i > 0 {
            string.push(' ');
        }
        string.push_str(&go_quote(file));
        string.push(':');
        write_v(&mut string, &objects);
        entries.push((Val::str(file), objects));
    }
    string.push('}');
    let file_changes = map_val(
        "update.FileChanges",
        "string",
        entries,
        flux_object_changes(&[]),
        Some(string),
    );

    let mut unique: Vec<&Change> = Vec::new();
    for c in &ctx.changes {
        if !unique
            .iter()
            .any(|u| u.old == c.old && u.new == c.new && u.setter == c.setter)
        {
            unique.push(c);
        }
    }
    unique.sort_by(|a, b| change_order(a, b));

    let all: Vec<&Change> = files.values().flatten().copied().collect();
    let mut objects = group_by_object(&all);
    for (_, changes) in &mut objects {
        changes.sort_by(|a, b| change_order(a, b));
    }

    struct_val(
        "update.Result",
        vec![
            plain("FileChanges", file_changes),
            plain("ImageResult", image_result),
            method("Changes", flux_changes(&unique)),
            method("Objects", flux_object_changes(&objects)),
        ]
        .into_iter()
        .filter(|f| !(ctx.flux_v1 && f.name == "ImageResult"))
        .collect(),
        None,
    )
}

/// The parts of an image reference, as go-containerregistry splits it.
pub(super) struct RefParts {
    pub(super) registry: String,
    pub(super) repository: String,
    pub(super) identifier: String,
    pub(super) name: String,
}

pub(super) fn parse_image_ref(reference: &str) -> RefParts {
    let (base, digest) = match reference.split_once('@') {
        Some((b, d)) => (b, Some(d)),
        None => (reference, None),
    };
    let (repo, tag) = match base.rfind(':') {
        Some(i) if !base[i..].contains('/') => (&base[..i], Some(&base[i + 1..])),
        _ => (base, None),
    };
    let (registry, repository) = match repo.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest.to_string())
        }
        _ => ("index.docker.io", repo.to_string()),
    };
    let registry = if registry == "docker.io" {
        "index.docker.io"
    } else {
        registry
    };
    let repository = if registry == "index.docker.io" && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    let (identifier, name) = match digest {
        Some(d) => (d.to_string(), format!("{registry}/{repository}@{d}")),
        None => {
            let tag = tag.unwrap_or("latest");
            (tag.to_string(), format!("{registry}/{repository}:{tag}"))
        }
    };
    RefParts {
        registry: registry.to_string(),
        repository,
        identifier,
        name,
    }
}

/// The v1beta1 image ref a change records: its text and its policy.
pub(super) fn image_ref_text(c: &Change) -> (String, String, String) {
    let mut parts = c.setter.splitn(3, ':');
    let namespace = parts.next().unwrap_or_default().to_string();
    let policy = parts.next().unwrap_or_default().to_string();
    let full_setter = parts.next().is_none();
    let text = if full_setter || c.image.is_empty() || c.new_tag.is_empty() {
        c.new.clone()
    } else {
        format!("{}:{}", c.image, c.new_tag)
    };
    (text, namespace, policy)
}

pub(super) fn image_ref(text: &str, namespace: &str, policy: &str) -> Val {
    let parts = parse_image_ref(text);
    let mut json = String::from("{\"Reference\":");
    json_string(text, &mut json);
    json.push('}');
    Val::Struct(Rc::new(Struct {
        ty: "update.ImageRef",
        fields: vec![
            method("Identifier", Val::str(&parts.identifier)),
            method("Repository", Val::str(&parts.repository)),
            method("Registry", Val::str(&parts.registry)),
            method("Name", Val::str(&parts.name)),
            method("Policy", namespaced_name(namespace, policy)),
        ],
        string: Some(text.to_string()),
        json: Some(json),
    }))
}

pub(super) fn image_refs_by_object(changes: &[&Change]) -> Val {
    let entries = group_by_object(changes)
        .into_iter()
        .map(|(o, cs)| {
            let refs = cs
                .iter()
                .map(|c| {
                    let (text, ns, policy) = image_ref_text(c);
                    image_ref(&text, &ns, &policy)
                })
                .collect();
            (
                object_identifier(o),
                list_val("[]update.ImageRef", refs, false, None),
            )
        })
        .collect();
    map_val(
        "map[update.ObjectIdentifier][]update.ImageRef",
        "update.ObjectIdentifier",
        entries,
        list_val("[]update.ImageRef", Vec::new(), true, None),
        None,
    )
}

/// Flux v1beta1 `.Updated` (the old `update.Result`).
pub(super) fn updated_data(ctx: &Context) -> Val {
    let files = group_by_file(&ctx.changes);
    let file_entries = files
        .iter()
        .map(|(file, changes)| {
            let result = struct_val(
                "update.FileResult",
                vec![plain("Objects", image_refs_by_object(changes))],
                None,
            );
            (Val::str(file), result)
        })
        .collect();
    let zero_file = struct_val(
        "update.FileResult",
        vec![plain("Objects", image_refs_by_object(&[]))],
        None,
    );
    let mut images: Vec<(String, String, String)> = Vec::new();
    for c in &ctx.changes {
        let r = image_ref_text(c);
        if !images.contains(&r) {
            images.push(r);
        }
    }
    images.sort();
    let image_vals = images
        .iter()
        .map(|(text, ns, policy)| image_ref(text, ns, policy))
        .collect();
    let all: Vec<&Change> = files.values().flatten().copied().collect();
    struct_val(
        "update.Result",
        vec![
            plain(
                "Files",
                map_val(
                    "map[string]update.FileResult",
                    "string",
                    file_entries,
                    zero_file,
                    None,
                ),
            ),
            method(
                "Images",
                list_val("[]update.ImageRef", image_vals, images.is_empty(), None),
            ),
            method("Objects", image_refs_by_object(&all)),
        ],
        None,
    )
}
