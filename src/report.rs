//! The only code that prints a run's outcome (`outcome::Report`): text for
//! people, JSON for machines (a stable schema, `version: 1`), Markdown
//! (`markdown`), with the unified diff `diff` made for `--diff`.

mod markdown;

use std::fmt::Write as _;

use crate::outcome::{Change, Report, Severity, write_of};
use crate::policy::{Candidates, Outcome, PER_OUTCOME};

impl Report {
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("the report serialises");
        s.push('\n');
        s
    }

    pub fn to_text(&self) -> String {
        self.text(false)
    }

    /// The text report with, under each policy and Argo CD image, the
    /// candidates it considered and why each was or was not chosen.
    pub fn to_text_explained(&self) -> String {
        self.text(true)
    }

    fn text(&self, explain: bool) -> String {
        let mut out = String::new();
        for p in &self.policies {
            match (&p.tag, &p.error) {
                (_, Some(error)) => {
                    let _ = writeln!(
                        out,
                        "{}:{}: error: policy {}: {error}",
                        shown(&p.file),
                        p.line,
                        p.policy
                    );
                }
                (Some(tag), None) => {
                    let digest = p
                        .digest
                        .as_deref()
                        .map(|d| format!("@{d}"))
                        .unwrap_or_default();
                    // A policy declared in several places (one per
                    // cluster directory) says which declaration this is.
                    let copies = self.policies.iter().filter(|q| q.policy == p.policy);
                    let at = if copies.count() > 1 {
                        format!(", {}:{}", p.file, p.line)
                    } else {
                        String::new()
                    };
                    let _ = writeln!(
                        out,
                        "policy {}: {}:{tag}{digest} ({}{at})",
                        p.policy, p.image, p.rule
                    );
                }
                (None, None) => {}
            }
            if explain && let Some(candidates) = &p.candidates {
                explained(&mut out, candidates);
            }
            for hold in &p.holds {
                let _ = writeln!(out, "policy {}: {}", p.policy, hold.reason);
            }
        }
        let verb = if self.dry_run {
            "would change"
        } else {
            "changed"
        };
        for c in &self.changes {
            let _ = writeln!(
                out,
                "{}:{}: {verb} {} -> {} ({})",
                shown(&c.file),
                c.line,
                c.old,
                c.new,
                setter_name(c)
            );
        }
        let mut said = std::collections::BTreeSet::new();
        for app in &self.applications {
            for i in &app.images {
                if i.new.is_some() && !said.insert(write_of(app, i)) {
                    continue;
                }
                let name = if i.alias.is_empty() {
                    &i.image
                } else {
                    &i.alias
                };
                for hold in &i.holds {
                    let _ = writeln!(
                        out,
                        "{}: application {} image {name}: {}",
                        shown(&app.file),
                        app.application,
                        hold.reason
                    );
                }
                let line = match (&i.new, &i.error, &i.note) {
                    (Some(new), _, _) => format!(
                        "{verb} {} -> {new}",
                        i.current.as_deref().unwrap_or("(none)")
                    ),
                    // Errors and refused downgrades are among the problems below.
                    (None, None, Some(note))
                        if !self
                            .problems
                            .iter()
                            .any(|p| p.message.ends_with(note.as_str())) =>
                    {
                        note.clone()
                    }
                    _ => continue,
                };
                let _ = writeln!(
                    out,
                    "{}: application {} image {name}: {line}",
                    shown(if i.new.is_some() {
                        &app.target
                    } else {
                        &app.file
                    }),
                    app.application
                );
            }
        }
        if explain {
            for app in &self.applications {
                for i in app.images.iter().filter(|i| i.candidates.is_some()) {
                    let name = if i.alias.is_empty() {
                        &i.image
                    } else {
                        &i.alias
                    };
                    let _ = writeln!(
                        out,
                        "application {} image {name}: {} ({})",
                        app.application,
                        i.selected.as_deref().unwrap_or("nothing selected"),
                        i.strategy
                    );
                    explained(&mut out, i.candidates.as_ref().expect("filtered"));
                }
            }
        }
        if let Some(why) = &self.holds_not_checked {
            let _ = writeln!(
                out,
                "note: no git history ({why}): rollback holds are not checked"
            );
        }
        for p in &self.problems {
            let severity = match p.severity {
                Severity::Info => "note",
                Severity::Warning => "warning",
                Severity::Error => "error",
            };
            let file = p.file.as_deref().map(shown);
            let place = match (file, p.line, p.column) {
                (Some(f), Some(l), Some(c)) => format!("{f}:{l}:{c}: "),
                (Some(f), Some(l), None) => format!("{f}:{l}: "),
                (Some(f), None, _) => format!("{f}: "),
                _ => String::new(),
            };
            let _ = writeln!(out, "{place}{severity}: {}", p.message);
        }
        if let Some(c) = &self.commit {
            let branch = c
                .branch
                .as_deref()
                .map(|b| format!(" on {b}"))
                .unwrap_or_default();
            let pushed = if c.pushed { ", pushed" } else { "" };
            let _ = writeln!(
                out,
                "committed {}{branch}{pushed}",
                &c.sha[..c.sha.len().min(12)]
            );
            if let Some(note) = &c.note {
                let _ = writeln!(out, "note: {note}");
            }
        }
        if !self.requests.is_empty() {
            let _ = writeln!(
                out,
                "requests: {}",
                crate::registry::requests::summary(&self.requests)
            );
        }
        let failed = self.policies.iter().filter(|p| p.error.is_some()).count();
        let images = self.applications.iter().flat_map(|a| &a.images);
        let image_errors = images.filter(|i| i.error.is_some()).count();
        let changes = self.change_count();
        let failed = failed + image_errors;
        let applications = match self.applications.len() {
            0 => String::new(),
            n => format!(", {n} {}", plural(n, "application", "applications")),
        };
        let count = |s| self.problems.iter().filter(|p| p.severity == s).count();
        let kept = match self.kept_back() {
            k if k.is_empty() => String::new(),
            k => format!(", {k}"),
        };
        let _ = writeln!(
            out,
            "{} {}{applications}, {changes} {} in {} {}{kept}{}{}{}{}",
            self.policies.len(),
            plural(self.policies.len(), "policy", "policies"),
            plural(changes, "change", "changes"),
            self.files.len(),
            plural(self.files.len(), "file", "files"),
            if failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            },
            match count(Severity::Error) {
                0 => String::new(),
                n => format!(", {n} {}", plural(n, "error", "errors")),
            },
            match count(Severity::Warning) {
                0 => String::new(),
                n => format!(", {n} {}", plural(n, "warning", "warnings")),
            },
            if self.dry_run {
                " (dry run: nothing written)"
            } else {
                ""
            },
        );
        out
    }
}

/// The candidates under a policy or image line, as `select --explain` lists
/// tags: `*` before the chosen one, then the outcome and the reason.
fn explained(out: &mut String, candidates: &Candidates) {
    for c in &candidates.shown {
        let mark = if c.outcome == Outcome::Chosen {
            '*'
        } else {
            ' '
        };
        let _ = writeln!(
            out,
            "  {mark} {:<24} {:<16} {}",
            shown(&c.tag),
            c.outcome.name(),
            c.reason
        );
    }
    if !candidates.omitted.is_empty() {
        let counts: Vec<String> = candidates
            .omitted
            .iter()
            .map(|(outcome, n)| format!("{n} {}", outcome.name()))
            .collect();
        let _ = writeln!(
            out,
            "    ... not shown: {} (at most {PER_OUTCOME} of each outcome are)",
            counts.join(", ")
        );
    }
}

fn setter_name(c: &Change) -> String {
    match c.setter {
        "image" => c.policy.to_string(),
        field => format!("{}:{field}", c.policy),
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// A file name for a line of text output: control characters (a newline,
/// an escape sequence) are shown escaped, so a hostile name cannot forge
/// lines or drive the terminal.
pub fn shown(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.chars().any(char::is_control) {
        return path.into();
    }
    path.chars()
        .map(|c| match c {
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect::<String>()
        .into()
}
