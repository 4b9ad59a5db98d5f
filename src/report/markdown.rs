//! The report as Markdown, for the GitHub Action's step summary and
//! `--output markdown` (pull-request bodies): what changed and why (the
//! one-line reason of each choice), what each policy and Argo CD image
//! chose or why nothing moved, the problems and the commit. Everything
//! quoted from the repository or a registry is escaped, so a tag or a file
//! name cannot break a table or inject markup.

use std::fmt::Write as _;

use crate::outcome::{ImageOutcome, PolicyOutcome, Report, Severity};
use crate::policy::Candidates;

impl Report {
    /// The Markdown report; `prefix` is put before every path (the tree's
    /// place in the repository, for the Action).
    pub fn to_markdown(&self, prefix: &str) -> String {
        let mut out = String::from("## image-update\n\n");
        self.headline(&mut out);
        let changes = self.change_count();
        if changes > 0 {
            out.push_str(
                "| File | Line | Change | Policy | Why |\n| --- | ---: | --- | --- | --- |\n",
            );
            for c in &self.changes {
                let setter = match c.setter {
                    "image" => c.policy.to_string(),
                    field => format!("{}:{field}", c.policy),
                };
                // The declaration that chose this value (a policy may be
                // declared once per cluster folder).
                let chosen = self.policies.iter().find(|p| {
                    p.policy == c.policy && p.tag.as_deref().is_some_and(|t| c.new.contains(t))
                });
                let _ = writeln!(
                    out,
                    "| {} | {} | {} → {} | {} | {} |",
                    code(&format!("{prefix}{}", c.file)),
                    c.line,
                    code(&c.old),
                    code(&c.new),
                    code(&setter),
                    cell(&chosen.map(reason_of).unwrap_or_default()),
                );
            }
            // Argo CD writes have no marker line; the policy is the image
            // of an application.
            for (app, i) in self.application_writes() {
                let _ = writeln!(
                    out,
                    "| {} |  | {} → {} | {} | {} |",
                    code(&format!("{prefix}{}", app.target)),
                    code(i.current.as_deref().unwrap_or("(none)")),
                    code(i.new.as_deref().unwrap_or_default()),
                    code(&format!("{} {}", app.application, i.image)),
                    cell(&summary_of(&i.candidates)),
                );
            }
            out.push('\n');
        }

        if !self.policies.is_empty() {
            out.push_str(
                "### Policies\n\n| Policy | Image | Rule | Result | Why |\n| --- | --- | --- | --- | --- |\n",
            );
            for p in &self.policies {
                let result = match (&p.tag, &p.error) {
                    (_, Some(error)) => format!("**error**: {}", cell(error)),
                    (Some(tag), None) => match &p.digest {
                        Some(digest) => code(&format!("{tag}@{digest}")),
                        None => code(tag),
                    },
                    (None, None) => String::new(),
                };
                let result = std::iter::once(result)
                    .chain(p.holds.iter().map(|h| cell(&h.reason)))
                    .filter(|r| !r.is_empty())
                    .collect::<Vec<_>>()
                    .join("<br>");
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {result} | {} |",
                    code(&p.policy.to_string()),
                    code(&p.image),
                    cell(&p.rule),
                    cell(&self.why_policy(p)),
                );
            }
            out.push('\n');
        }

        if !self.applications.is_empty() {
            out.push_str(
                "### Argo CD images\n\n| Application | Image | Strategy | Result | Why |\n| --- | --- | --- | --- | --- |\n",
            );
            for app in &self.applications {
                for i in &app.images {
                    let result = match (&i.new, &i.error) {
                        (_, Some(error)) => format!("**error**: {}", cell(error)),
                        (Some(new), None) => format!(
                            "{} → {}",
                            code(i.current.as_deref().unwrap_or("(none)")),
                            code(new)
                        ),
                        (None, None) => i.selected.as_deref().map(code).unwrap_or_default(),
                    };
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {result} | {} |",
                        code(&app.application),
                        code(&i.image),
                        cell(i.strategy),
                        cell(&why_image(i)),
                    );
                }
            }
            out.push('\n');
        }

        let held: Vec<String> = self
            .applications
            .iter()
            .flat_map(|app| {
                app.images.iter().flat_map(move |i| {
                    i.holds.iter().map(move |h| {
                        format!(
                            "| {} | {} | {} |\n",
                            code(&app.application),
                            code(&i.image),
                            cell(&h.reason)
                        )
                    })
                })
            })
            .collect();
        if !held.is_empty() {
            out.push_str(
                "### Argo CD images held or waiting\n\n| Application | Image | Why |\n| --- | --- | --- |\n",
            );
            out.extend(held);
            out.push('\n');
        }

        if !self.problems.is_empty() {
            out.push_str("### Problems\n\n| Severity | Where | Message |\n| --- | --- | --- |\n");
            for p in &self.problems {
                let severity = match p.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                    Severity::Info => "note",
                };
                let place = match (&p.file, p.line, p.column) {
                    (Some(f), Some(l), Some(c)) => code(&format!("{prefix}{f}:{l}:{c}")),
                    (Some(f), Some(l), None) => code(&format!("{prefix}{f}:{l}")),
                    (Some(f), None, _) => code(&format!("{prefix}{f}")),
                    _ => String::new(),
                };
                let _ = writeln!(out, "| {severity} | {place} | {} |", cell(&p.message));
            }
            out.push('\n');
        }
        out
    }

    /// How many references change, and the commit.
    fn headline(&self, out: &mut String) {
        let files = self.files.len();
        let changes = self.change_count();
        let kept = self.kept_back();
        let kept_back = !kept.is_empty();
        if changes == 0 && kept_back {
            let verb = if self.dry_run {
                "would change"
            } else {
                "changed"
            };
            let _ = write!(out, "No image reference {verb}; {kept}.");
        } else if changes == 0 {
            out.push_str("No image reference needs a change.");
        } else {
            let verb = if self.dry_run {
                "would change"
            } else {
                "changed"
            };
            let _ = write!(
                out,
                "{changes} {} {verb} in {files} {}.",
                if changes == 1 {
                    "reference"
                } else {
                    "references"
                },
                if files == 1 { "file" } else { "files" },
            );
            if kept_back {
                let _ = write!(out, " {kept}.");
            }
            if self.dry_run {
                out.push_str(" Dry run: nothing was written.");
            }
        }
        if let Some(c) = &self.commit {
            let _ = write!(out, " Committed {}", code(&c.sha));
            if let Some(branch) = &c.branch {
                let _ = write!(out, " on {}", code(branch));
            }
            out.push_str(if c.pushed {
                " and pushed."
            } else {
                " (not pushed)."
            });
        }
        out.push_str("\n\n");
    }

    /// Why a policy moved, or why nothing moved: the choice's reason when
    /// a marker changed; an error's tally of the candidates; the choice and
    /// the markers left unchanged (a refused downgrade, a marker outside
    /// the update path); else up to date.
    fn why_policy(&self, p: &PolicyOutcome) -> String {
        if p.error.is_some() {
            return match &p.candidates {
                Some(c) if c.chosen().is_none() => c.summary(),
                _ => "see the error".to_string(),
            };
        }
        if self.changes.iter().any(|c| c.policy == p.policy) {
            return reason_of(p);
        }
        let marker = format!("marker {}", p.policy);
        let left: Vec<&str> = self
            .problems
            .iter()
            .map(|problem| problem.message.as_str())
            .filter(|message| {
                message.starts_with(&marker) && message[marker.len()..].starts_with([':', ' '])
            })
            .collect();
        match left[..] {
            [] => format!("up to date: {}", reason_of(p)),
            [one] => format!("{}; {one}", reason_of(p)),
            [first, ..] => format!(
                "{}; {first}; and {} more (see the problems)",
                reason_of(p),
                left.len() - 1
            ),
        }
    }
}

/// Why an Argo CD image moved or did not.
fn why_image(i: &ImageOutcome) -> String {
    let reason = summary_of(&i.candidates);
    match (&i.new, &i.error, &i.note) {
        (Some(_), _, _) => reason,
        (None, Some(_), _) => match &i.candidates {
            Some(c) if c.chosen().is_none() => reason,
            _ => "see the error".to_string(),
        },
        (None, None, Some(note)) if reason.is_empty() => note.clone(),
        (None, None, Some(note)) => format!("{note}: {reason}"),
        (None, None, None) => reason,
    }
}

/// The one-line reason of a policy's choice.
fn reason_of(p: &PolicyOutcome) -> String {
    summary_of(&p.candidates)
}

fn summary_of(candidates: &Option<Candidates>) -> String {
    candidates
        .as_ref()
        .map(Candidates::summary)
        .unwrap_or_default()
}

/// Inline code that survives a Markdown table cell: a fence longer than any
/// run of backticks inside, pipes escaped, line ends as spaces.
fn code(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let longest = text
        .split(|c| c != '`')
        .map(str::len)
        .max()
        .unwrap_or_default();
    let fence = "`".repeat(longest + 1);
    let pad = if text.starts_with('`') || text.ends_with('`') {
        " "
    } else {
        ""
    };
    let body = text.replace('|', "\\|").replace(['\r', '\n'], " ");
    format!("{fence}{pad}{body}{pad}{fence}")
}

/// Plain text for a Markdown table cell: no HTML, no table breaks.
fn cell(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("\\|"),
            '\\' | '`' | '*' | '_' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("<br>"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_survive_backticks_and_pipes() {
        assert_eq!(code("a|b"), "`a\\|b`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(cell("<a> & *b*\nc"), "&lt;a&gt; &amp; \\*b\\*<br>c");
    }
}
