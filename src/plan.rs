//! Planning: from markers and resolved policies to byte edits, without
//! touching the filesystem. Every decision about what changes in a file, and
//! every reason a marker is left alone, is made here.

use std::collections::BTreeMap;

use crate::flux::{Origin, Scope, nearest, shared_dirs};
use crate::image::Reference;
use crate::image::{is_valid_digest, is_valid_tag};
use crate::marker::{Field, Marker};
use crate::outcome::{Change, Problem, Severity};
use crate::policy::{PolicyId, Selector};
use crate::rewrite::{self, Edit};

/// A policy's result, ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub image: String,
    pub tag: String,
    pub digest: Option<String>,
}

impl Resolved {
    /// Refuses a tag or digest that could not have come from a sane registry;
    /// such a value is never written into a file.
    pub fn new(image: &str, tag: &str, digest: Option<String>) -> Result<Resolved, String> {
        if !is_valid_tag(tag) {
            return Err(format!(
                "the registry listed {tag:?}, which is not a valid OCI tag; refusing to write it"
            ));
        }
        if let Some(d) = &digest
            && !is_valid_digest(d)
        {
            return Err(format!(
                "the registry returned digest {d:?}, which is not algorithm:hex; refusing to write it"
            ));
        }
        Ok(Resolved {
            image: image.to_string(),
            tag: tag.to_string(),
            digest,
        })
    }

    /// The value a setter of this field receives; `None` when there is none.
    pub fn value(&self, field: Field) -> Option<String> {
        match field {
            Field::Image => Some(match &self.digest {
                Some(d) => format!("{}:{}@{d}", self.image, self.tag),
                None => format!("{}:{}", self.image, self.tag),
            }),
            Field::Tag => Some(self.tag.clone()),
            Field::Name => Some(self.image.clone()),
            Field::Digest => self.digest.clone(),
        }
    }
}

/// What the planner knows of each declaration of a policy.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where the policy is declared.
    pub origin: Origin,
    pub scope: Scope,
    /// The result, or `Err` when the policy failed (already reported).
    pub latest: Result<Resolved, ()>,
    /// The rule's ordering, when a value that ranks below the one in the
    /// file must not be written (`None`: `--allow-downgrade`, as upstream).
    pub guard: Option<Selector>,
    /// Not a declaration but a file that may hold one: it declares Flux
    /// resources and cannot be parsed (already reported). A marker to which
    /// it is nearer than the declaration found is left unchanged, since its
    /// folder's own copy of the policy may be in it.
    pub unread: bool,
}

/// Every declaration of each policy: the same policy may be declared once
/// per cluster directory.
pub type Targets = BTreeMap<PolicyId, Vec<Target>>;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct FilePlan {
    pub edits: Vec<Edit>,
    pub changes: Vec<Change>,
    pub problems: Vec<Problem>,
}

/// Plans the edits for one file's markers.
pub fn plan_file(file: &str, src: &str, markers: &[Marker], targets: &Targets) -> FilePlan {
    let mut plan = FilePlan::default();
    for marker in markers {
        let line = marker.scalar.start.line;
        let column = Some(marker.scalar.start.column);
        let id = &marker.setter.policy;
        let problem =
            |severity, message: String| Problem::at(file, line, column, severity, message);
        let Some(copies) = targets.get(id) else {
            let elsewhere: Vec<String> = targets
                .keys()
                .filter(|k| k.name == id.name)
                .map(ToString::to_string)
                .collect();
            let hint = if elsewhere.is_empty() {
                String::new()
            } else {
                format!(" (did you mean {}?)", elsewhere.join(" or "))
            };
            // Flux skips such a marker silently; policies often live in
            // another repository or path, which `--policies` can add.
            plan.problems.push(problem(
                Severity::Warning,
                format!(
                    "marker {}: no ImagePolicy {id} in the tree{hint}; not applied (add its directory with --policies PATH)",
                    marker.setter
                ),
            ));
            continue;
        };
        let (unread, copies): (Vec<&Target>, Vec<&Target>) = copies.iter().partition(|t| t.unread);
        let competing = reaching(file, id, &copies);
        let Some(target) = competing.first().copied() else {
            let why = outside(file, id, &copies);
            plan.problems.push(problem(
                Severity::Warning,
                format!("marker {} not applied: {why}", marker.setter),
            ));
            continue;
        };
        if target.scope == Scope::Everywhere
            && let Some(u) = unread.iter().find(|u| {
                shared_dirs(file, &u.origin.file) > shared_dirs(file, &target.origin.file)
            })
        {
            plan.problems.push(problem(
                Severity::Error,
                format!(
                    "marker {}: {} cannot be read and is nearer to this file than the declaration of policy {id} at {}:{}, so it may hold this folder's own copy; left unchanged",
                    marker.setter, u.origin.file, target.origin.file, target.origin.line
                ),
            ));
            continue;
        }
        if let Some(conflict) = conflict(&competing, id, marker.setter.field) {
            plan.problems.push(problem(
                Severity::Error,
                format!("marker {}: {conflict}; left unchanged", marker.setter),
            ));
            continue;
        }
        let Ok(latest) = &target.latest else {
            continue;
        };
        let Some(new) = latest.value(marker.setter.field) else {
            plan.problems.push(problem(
                Severity::Warning,
                format!(
                    "marker {}: policy {id} reflects no digest (set spec.digestReflectionPolicy to Always or IfNotPresent); left unchanged",
                    marker.setter
                ),
            ));
            continue;
        };
        if new == marker.scalar.value {
            continue;
        }
        let current_tag = match marker.setter.field {
            Field::Image => Reference::split(&marker.scalar.value).tag,
            Field::Tag => Some(marker.scalar.value.as_str()),
            Field::Name | Field::Digest => None,
        };
        if let (Some(guard), Some(current)) = (&target.guard, current_tag)
            && guard.ranks_below(&latest.tag, current)
        {
            plan.problems.push(problem(
                Severity::Warning,
                format!(
                    "marker {}: not downgraded from {current} to {} ({} ranks it lower); pass --allow-downgrade to write it",
                    marker.setter, latest.tag, guard.rule
                ),
            ));
            continue;
        }
        plan.edits.push(Edit {
            span: marker.scalar.span.clone(),
            old: src[marker.scalar.span.clone()].to_string(),
            new: rewrite::render(&new, marker.scalar.style),
        });
        plan.changes.push(Change {
            file: file.to_string(),
            line,
            policy: id.clone(),
            setter: marker.setter.field.as_str(),
            old: marker.scalar.value.clone(),
            new,
            object: marker.object.clone(),
        });
    }
    plan
}

/// The declarations of a policy that apply in `file`. A declaration
/// reaches the files of the automations that use it; with no automation in
/// the tree, the declarations nearest to the file (those of its cluster
/// directory) are the ones that apply.
fn reaching<'a>(file: &str, id: &PolicyId, copies: &[&'a Target]) -> Vec<&'a Target> {
    let admitted = copies
        .iter()
        .copied()
        .filter(|t| t.scope.admits(file, id).is_ok());
    if copies.iter().all(|t| t.scope == Scope::Everywhere) {
        let admitted: Vec<&Target> = admitted.collect();
        nearest(file, admitted.iter(), |t| &t.origin.file)
            .into_iter()
            .copied()
            .collect()
    } else {
        admitted.collect()
    }
}

/// Why no declaration of a policy reaches `file`, naming every automation
/// that uses one.
fn outside(file: &str, id: &PolicyId, copies: &[&Target]) -> String {
    let mut paths = Vec::new();
    for copy in copies {
        if let Scope::Paths(p) = &copy.scope {
            paths.extend(p.iter().cloned());
        }
    }
    Scope::Paths(paths)
        .admits(file, id)
        .err()
        .unwrap_or_default()
}

/// Declarations of a policy that reach the same file and give its marker
/// different values compete for it: neither wins.
fn conflict(competing: &[&Target], id: &PolicyId, field: Field) -> Option<String> {
    let value = |t: &Target| t.latest.as_ref().ok().and_then(|r| r.value(field));
    let (first, rest) = competing.split_first()?;
    let other = rest.iter().find(|t| value(t) != value(first))?;
    let show = |t: &Target| value(t).unwrap_or_else(|| "no value".to_string());
    Some(format!(
        "policy {id} is declared at {}:{} and at {}:{}, both reach this file and they disagree ({} against {})",
        first.origin.file,
        first.origin.line,
        other.origin.file,
        other.origin.line,
        show(first),
        show(other)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::ScopedPath;
    use crate::marker;
    use crate::yaml::parse;

    fn target(file: &str, scope: Scope, latest: Result<Resolved, ()>) -> Target {
        Target {
            origin: Origin {
                file: file.to_string(),
                line: 1,
            },
            scope,
            latest,
            guard: None,
            unread: false,
        }
    }

    fn targets(scope: Scope, latest: Result<Resolved, ()>) -> Targets {
        BTreeMap::from([(
            PolicyId::new("apps", "web"),
            vec![target("p.yaml", scope, latest)],
        )])
    }

    fn run(src: &str, targets: &Targets) -> (String, FilePlan) {
        let stream = parse(src).unwrap();
        let found = marker::find(src, &stream);
        let plan = plan_file("f.yaml", src, &found.markers, targets);
        (rewrite::apply(src, &plan.edits).unwrap(), plan)
    }

    const SRC: &str = "image: ghcr.io/acme/web:1.0 # {\"$imagepolicy\": \"apps:web\"}\ntag: '1.0' # {\"$imagepolicy\": \"apps:web:tag\"}\nname: ghcr.io/acme/web # {\"$imagepolicy\": \"apps:web:name\"}\n";

    #[test]
    fn each_setter_receives_its_part_and_unchanged_values_are_not_reported() {
        let latest = Resolved::new("ghcr.io/acme/web", "1.1", None).unwrap();
        let (out, plan) = run(SRC, &targets(Scope::Everywhere, Ok(latest)));
        assert_eq!(
            out,
            "image: ghcr.io/acme/web:1.1 # {\"$imagepolicy\": \"apps:web\"}\ntag: '1.1' # {\"$imagepolicy\": \"apps:web:tag\"}\nname: ghcr.io/acme/web # {\"$imagepolicy\": \"apps:web:name\"}\n"
        );
        let setters: Vec<&str> = plan.changes.iter().map(|c| c.setter).collect();
        assert_eq!(setters, ["image", "tag"]);
        assert!(plan.problems.is_empty());
    }

    #[test]
    fn digest_setter_without_digest_is_reported_and_left_alone() {
        let src = "d: sha256:0 # {\"$imagepolicy\": \"apps:web:digest\"}\n";
        let latest = Resolved::new("ghcr.io/acme/web", "1.1", None).unwrap();
        let (out, plan) = run(src, &targets(Scope::Everywhere, Ok(latest)));
        assert_eq!(out, src);
        assert!(plan.problems[0].message.contains("reflects no digest"));
    }

    #[test]
    fn unknown_policies_are_warnings_with_a_hint() {
        let src = "i: x # {\"$imagepolicy\": \"flux-system:web\"}\n";
        let latest = Resolved::new("ghcr.io/acme/web", "1.1", None).unwrap();
        let (out, plan) = run(src, &targets(Scope::Everywhere, Ok(latest)));
        assert_eq!(out, src);
        assert_eq!(plan.problems[0].severity, Severity::Warning);
        assert_eq!(plan.problems[0].line, Some(1));
        assert!(
            plan.problems[0].message.contains("did you mean apps:web?"),
            "{:?}",
            plan.problems
        );
    }

    /// Two declarations of one policy: the one of the marker's cluster
    /// applies; two that both reach the file and disagree are a conflict,
    /// two that agree are not (issue 17).
    #[test]
    fn copies_of_a_policy_apply_in_their_own_files_and_compete_only_when_they_disagree() {
        let resolved = |tag: &str| Ok(Resolved::new("ghcr.io/acme/web", tag, None).unwrap());
        let paths = |path: &str| {
            Scope::Paths(vec![ScopedPath {
                path: path.into(),
                automation: format!("apps/{path}"),
            }])
        };
        let plan_in = |file: &str, copies: Vec<Target>| {
            let stream = parse(SRC).unwrap();
            let found = marker::find(SRC, &stream);
            let targets = BTreeMap::from([(PolicyId::new("apps", "web"), copies)]);
            plan_file(file, SRC, &found.markers, &targets)
        };
        let tags = |plan: &FilePlan| -> Vec<String> {
            plan.changes
                .iter()
                .filter(|c| c.setter == "tag")
                .map(|c| c.new.clone())
                .collect()
        };
        // Each automation reaches only its cluster's files.
        let copies = || {
            vec![
                target("prod/p.yaml", paths("prod"), resolved("1.1")),
                target("staging/p.yaml", paths("staging"), resolved("2.0")),
            ]
        };
        assert_eq!(tags(&plan_in("staging/d.yaml", copies())), ["2.0"]);
        assert_eq!(tags(&plan_in("prod/d.yaml", copies())), ["1.1"]);
        // No automation: the nearest declaration applies.
        let copies = vec![
            target("prod/p.yaml", Scope::Everywhere, resolved("1.1")),
            target("staging/p.yaml", Scope::Everywhere, resolved("2.0")),
        ];
        assert_eq!(tags(&plan_in("staging/app/d.yaml", copies)), ["2.0"]);
        // Both reach the root: they compete, and disagree.
        let copies = vec![
            target("prod/p.yaml", paths(""), resolved("1.1")),
            target("staging/p.yaml", paths(""), resolved("2.0")),
        ];
        let plan = plan_in("d.yaml", copies);
        assert!(plan.edits.is_empty());
        assert_eq!(plan.problems.len(), 2, "{:?}", plan.problems);
        assert!(plan.problems[1].message.contains("policy apps:web is declared at prod/p.yaml:1 and at staging/p.yaml:1, both reach this file and they disagree (1.1 against 2.0)"), "{:?}", plan.problems);
        // ... or agree.
        let copies = vec![
            target("prod/p.yaml", paths(""), resolved("2.0")),
            target("staging/p.yaml", paths(""), resolved("2.0")),
        ];
        let plan = plan_in("d.yaml", copies);
        assert!(plan.problems.is_empty(), "{:?}", plan.problems);
        assert_eq!(tags(&plan), ["2.0"]);
    }

    #[test]
    fn out_of_scope_and_failed_policies_change_nothing() {
        let latest = Resolved::new("ghcr.io/acme/web", "1.1", None).unwrap();
        let scope = Scope::Paths(vec![ScopedPath {
            path: "other".into(),
            automation: "apps/auto".into(),
        }]);
        let (out, plan) = run(SRC, &targets(scope, Ok(latest)));
        assert_eq!(out, SRC);
        assert_eq!(plan.problems.len(), 3);
        assert!(
            plan.problems
                .iter()
                .all(|p| p.severity == Severity::Warning)
        );
        let (out, plan) = run(SRC, &targets(Scope::Everywhere, Err(())));
        assert_eq!(out, SRC);
        assert!(plan.problems.is_empty());
    }

    #[test]
    fn invalid_tags_and_digests_are_refused() {
        assert!(
            Resolved::new("a", "bad tag", None)
                .unwrap_err()
                .contains("not a valid OCI tag")
        );
        assert!(
            Resolved::new("a", "1.0", Some("md5:zz".into()))
                .unwrap_err()
                .contains("digest")
        );
        let r = Resolved::new("a", "1.0", Some(format!("sha256:{}", "a".repeat(64)))).unwrap();
        assert_eq!(
            r.value(Field::Image).unwrap(),
            format!("a:1.0@sha256:{}", "a".repeat(64))
        );
    }
}
