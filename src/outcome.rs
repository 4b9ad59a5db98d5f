//! The outcome of a run as plain data: what each policy and Argo CD image
//! selected, the changes, the problems, the commit and the registry requests.
//!
//! Everything that produces an outcome (dialects, planning, the engine, git)
//! fills these values, and everything that shows one (text, JSON, Markdown,
//! Action annotations, KRM results) reads them, so this module sits below
//! both and imports only small data types. Rendering lives in `report`.

use serde::Serialize;

use crate::marker::ObjectRef;
use crate::policy::{Candidates, PolicyId};
use crate::registry::requests::RequestCount;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

/// Something the user should know about a file or a policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub severity: Severity,
    pub message: String,
}

impl Problem {
    pub fn at(
        file: &str,
        line: usize,
        column: Option<usize>,
        severity: Severity,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            file: Some(file.to_string()),
            line: Some(line),
            column,
            severity,
            message: message.into(),
        }
    }

    /// A problem with a whole file rather than one line of it.
    pub fn file(file: &str, severity: Severity, message: impl Into<String>) -> Problem {
        Problem {
            file: Some(file.to_string()),
            line: None,
            column: None,
            severity,
            message: message.into(),
        }
    }

    pub fn general(severity: Severity, message: impl Into<String>) -> Problem {
        Problem {
            file: None,
            line: None,
            column: None,
            severity,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyOutcome {
    pub policy: PolicyId,
    pub image: String,
    pub rule: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub error: Option<String>,
    /// Where the policy is declared.
    pub file: String,
    pub line: usize,
    /// Candidates held by a rollback or waiting at a promotion gate (the
    /// rule's own winner among them when nothing could be applied).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<crate::hold::Hold>,
    /// Why each listed tag was or was not chosen (bounded); absent when
    /// no tags were listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Candidates>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub file: String,
    pub line: usize,
    pub policy: PolicyId,
    pub setter: &'static str,
    pub old: String,
    pub new: String,
    pub object: ObjectRef,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub version: u32,
    pub dry_run: bool,
    pub policies: Vec<PolicyOutcome>,
    pub changes: Vec<Change>,
    pub problems: Vec<Problem>,
    /// Argo CD applications and what happened to each image.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<AppOutcome>,
    /// Files written (or, in a dry run, that would be written).
    pub files: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The commit `--commit` made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<Committed>,
    /// Registry requests sent (and answered from the cache) per registry
    /// and kind; absent when no registry was asked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RequestCount>,
    /// Why rollback holds were not looked for although values are
    /// managed: there is no history (`not in a git repository`, no commit
    /// yet). A fact of the run, not a problem of the tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holds_not_checked: Option<String>,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
            || self.policies.iter().any(|p| p.error.is_some())
    }

    /// The exit status a finished run maps to: 1 when something failed.
    pub fn exit_code(&self) -> std::process::ExitCode {
        if self.failed() {
            std::process::ExitCode::from(1)
        } else {
            std::process::ExitCode::SUCCESS
        }
    }

    /// The Argo CD images written (or, in a dry run, to be written), each
    /// with its application, once: identical copies of an Application (one
    /// per cluster folder) that write one file write each image once.
    pub fn application_writes(&self) -> Vec<(&AppOutcome, &ImageOutcome)> {
        let mut seen = std::collections::BTreeSet::new();
        self.applications
            .iter()
            .flat_map(|app| app.images.iter().map(move |i| (app, i)))
            .filter(|(app, i)| i.new.is_some() && seen.insert(write_of(app, i)))
            .collect()
    }

    /// Marker changes and Argo CD image writes: what is written.
    pub fn change_count(&self) -> usize {
        self.changes.len() + self.application_writes().len()
    }

    /// How many policies and Argo CD images a rollback holds back from a
    /// newer tag, and how many wait for one at a promotion gate, by the
    /// first refusal each says (why the rule's own winner was not taken).
    pub fn kept_back(&self) -> KeptBack {
        let first = self
            .policies
            .iter()
            .map(|p| &p.holds)
            .chain(
                self.applications
                    .iter()
                    .flat_map(|a| a.images.iter().map(|i| &i.holds)),
            )
            .filter_map(|holds| holds.first());
        let mut kept = KeptBack::default();
        for hold in first {
            match hold.outcome {
                "held" => kept.held += 1,
                _ => kept.waiting += 1,
            }
        }
        kept
    }
}

/// Policies and Argo CD images that did not take the rule's own winner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeptBack {
    /// By a rollback hold.
    pub held: usize,
    /// At a promotion gate.
    pub waiting: usize,
}

impl KeptBack {
    pub fn is_empty(&self) -> bool {
        self.held == 0 && self.waiting == 0
    }
}

impl std::fmt::Display for KeptBack {
    /// `1 held by a rollback, 2 waiting for promotion` (the parts that are
    /// not zero; nothing when both are).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = [
            (self.held, "held by a rollback"),
            (self.waiting, "waiting for promotion"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        f.write_str(&parts.join(", "))
    }
}

/// What one Argo CD image write is: the file, the image and its value.
pub fn write_of<'a>(
    app: &'a AppOutcome,
    i: &'a ImageOutcome,
) -> (&'a str, &'a str, &'a str, Option<&'a str>) {
    (&app.target, &i.alias, &i.image, i.new.as_deref())
}

/// What happened to one image of one application, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageOutcome {
    pub alias: String,
    pub image: String,
    pub strategy: &'static str,
    /// The reference in effect before the run, and where it was read.
    pub current: Option<String>,
    pub current_from: Option<String>,
    pub selected: Option<String>,
    /// The reference written (or, in a dry run, to be written).
    pub new: Option<String>,
    pub error: Option<String>,
    pub note: Option<String>,
    /// Candidates held by a rollback or waiting at a promotion gate.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<crate::hold::Hold>,
    /// Why each listed tag was or was not chosen (bounded); absent when
    /// no selection was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Candidates>,
}

/// One application's outcome, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppOutcome {
    pub application: String,
    pub file: String,
    pub line: usize,
    pub configured_by: String,
    /// The file results go to (empty when the target is invalid).
    pub target: String,
    /// `git-branch` as configured, for the commit step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub images: Vec<ImageOutcome>,
}

/// The commit a run made, as the JSON report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Committed {
    pub sha: String,
    pub branch: Option<String>,
    pub pushed: bool,
    /// How many pushes it took (more than one when the remote moved).
    #[serde(skip_serializing_if = "is_zero")]
    pub attempts: usize,
    /// What happened beyond the plain case (a rebuilt or unnecessary push).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}
