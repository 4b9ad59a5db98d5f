//! From a finished run to one commit, and optionally a push: which files, on
//! which branch, by whom, with which message, and what to do when the remote
//! moved while we worked.
//!
//! The decisions (author, message, branch) are made here from the settings;
//! git itself is driven through [`crate::git`]. A push rejected because the
//! branch moved is not forced: the new tip is fetched, the run's resolved
//! policies are applied again to that tip's files, and the push is retried a
//! bounded number of times — two automations racing for one branch is a known
//! failure of the upstream tools.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::flux::GitSettings;
use crate::git::{self, GitError, NewFile, PushOutcome, Repo, Signature};
use crate::image::Reference;
use crate::outcome::{Committed, Report};
use crate::template::{self, Change, Context, Object};

/// The run's policies, able to update any version of a file the same way: a
/// push that lost a race redoes its work on the new tip with them. The engine
/// (`update::Replay`) implements it, so committing needs nothing of the engine.
pub trait Replay {
    /// `src` updated by the run's policies; `None` when nothing changes.
    fn apply(&self, rel: &str, src: &str) -> Result<Option<String>, String>;
}

/// How often a push that lost a race is rebuilt and tried again.
const PUSH_ATTEMPTS: usize = 3;

/// Commit and push settings, resolved from flags.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub author: Option<String>,
    /// The template text (already read from `@FILE`).
    pub message_template: Option<String>,
    /// A branch name, or an Argo CD-style template for one.
    pub branch: Option<String>,
    pub push: bool,
    pub remote: String,
    pub signoff: bool,
    pub sign: bool,
    /// A token for HTTPS pushes (read from `--git-token-env`).
    pub token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("message template: {0}")]
    Template(String),
    #[error("branch template: {0}")]
    Branch(String),
    #[error("invalid author {0:?}: write \"Name <email>\"")]
    Author(String),
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("re-applying the update on the new tip of {branch} failed: {reason}")]
    Replay { branch: String, reason: String },
    #[error("the remote branch {branch} kept moving; gave up after {PUSH_ATTEMPTS} attempts")]
    Raced { branch: String },
    #[error("invalid branch {0:?}: {1}")]
    BranchName(String, String),
    #[error(
        "local {branch} has commits {remote}/{branch} lacks, and {remote}/{branch} has commits it lacks; nothing was pushed: merge or rebase {branch}, then push"
    )]
    Diverged { branch: String, remote: String },
    /// The commit exists locally; pushing it failed. The commit is still
    /// reported, and a later `--push` delivers it.
    #[error(
        "the commit {} was made locally but not pushed: {source}; a later run with --push pushes it",
        committed.sha
    )]
    NotPushed {
        committed: Committed,
        source: Box<CommitError>,
    },
}

/// Checks the settings that can be checked before the run writes anything:
/// the author's form and the branch name (a template's syntax).
pub fn check(settings: &Settings, dir: &Path) -> Result<(), CommitError> {
    if let Some(text) = &settings.author {
        Signature::parse(text).ok_or_else(|| CommitError::Author(text.clone()))?;
    }
    if let Some(branch) = &settings.branch {
        if branch.contains("{{") {
            template::render_branch(branch, &Context::default())
                .map_err(|e| CommitError::BranchName(branch.clone(), format!("template: {e}")))?;
        } else {
            check_branch_name(dir, branch)?;
        }
    }
    Ok(())
}

/// A branch name as git accepts it (`git check-ref-format --branch`).
fn check_branch_name(dir: &Path, branch: &str) -> Result<(), CommitError> {
    let valid = !branch.starts_with('-')
        && std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["check-ref-format", "--branch", branch])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|e| CommitError::Git(GitError::Missing(e.to_string())))?
            .success();
    if valid {
        Ok(())
    } else {
        Err(CommitError::BranchName(
            branch.to_string(),
            "not a valid git branch name".to_string(),
        ))
    }
}

/// The template data of a run's changes.
pub fn context(report: &Report, git: Option<&GitSettings>) -> Context {
    let images: BTreeMap<String, &str> = report
        .policies
        .iter()
        .map(|p| (p.policy.to_string(), p.image.as_str()))
        .collect();
    let changes = report
        .changes
        .iter()
        .map(|c| {
            let tag = |value: &str| match c.setter {
                "tag" => value.to_string(),
                "image" => Reference::split(value).tag.unwrap_or_default().to_string(),
                _ => String::new(),
            };
            Change {
                file: c.file.clone(),
                setter: match c.setter {
                    "image" => c.policy.to_string(),
                    field => format!("{}:{field}", c.policy),
                },
                old: c.old.clone(),
                new: c.new.clone(),
                image: images
                    .get(&c.policy.to_string())
                    .copied()
                    .unwrap_or_default()
                    .to_string(),
                old_tag: tag(&c.old),
                new_tag: tag(&c.new),
                object: Object {
                    api_version: c.object.api_version.clone(),
                    kind: c.object.kind.clone(),
                    namespace: c.object.namespace.clone(),
                    name: c.object.name.clone(),
                },
            }
        })
        .collect::<Vec<_>>();
    // Argo CD write-backs, one change per image, in the Application.
    let mut changes = changes;
    let mut apps = Vec::new();
    for app in &report.applications {
        for i in &app.images {
            let Some(new) = &i.new else { continue };
            let old = i.current.clone().unwrap_or_default();
            let tag = |r: &str| Reference::split(r).tag.unwrap_or_default().to_string();
            let (namespace, name) = app.application.split_once('/').unwrap_or(("", ""));
            if !apps.contains(&name) {
                apps.push(name);
            }
            changes.push(Change {
                file: app.target.clone(),
                setter: format!("{}:{}", app.application, i.alias),
                old_tag: tag(&old),
                new_tag: tag(new),
                old,
                new: new.clone(),
                image: i.image.clone(),
                object: Object {
                    api_version: "argoproj.io/v1alpha1".to_string(),
                    kind: "Application".to_string(),
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                },
            });
        }
    }
    Context {
        automation: git.map(|g| g.automation.clone()),
        flux_v1: git.is_some_and(|g| g.v1),
        values: git.map(|g| g.message_values.clone()).unwrap_or_default(),
        // `.AppName` of Argo CD's templates: the application, when one changed.
        app_name: match apps.as_slice() {
            [one] => one.to_string(),
            _ => String::new(),
        },
        changes,
    }
}

/// Commits what the run wrote under `dir` and pushes it when asked.
/// `None` when the run changed nothing.
pub fn commit(
    dir: &Path,
    report: &Report,
    replay: &dyn Replay,
    git: Option<&GitSettings>,
    settings: &Settings,
) -> Result<Option<Committed>, CommitError> {
    if report.files.is_empty() && !settings.push {
        return Ok(None);
    }
    let mut repo = match Repo::open(dir) {
        // Nothing changed outside a repository: nothing to push either.
        Err(GitError::NotARepository { .. }) if report.files.is_empty() => return Ok(None),
        opened => opened?,
    };
    // The token goes only to the HTTPS URL the remote pushes to, not to
    // every host git might talk to.
    if let Some(token) = &settings.token
        && let Some(url) = repo
            .push_url(&settings.remote)
            .filter(|u| u.starts_with("https://"))
    {
        repo = repo.with_config(&[(
            &format!("http.{url}.extraHeader"),
            &git::token_header(token),
        )]);
    }
    if report.files.is_empty() {
        return push_unpushed(&repo, git, settings);
    }
    // Decide everything that can fail before anything is committed.
    let context = context(report, git);
    let template = settings
        .message_template
        .clone()
        .or_else(|| git.and_then(|g| g.message_template.clone()));
    let mut message = match template {
        Some(t) => template::render_message(&t, &context)
            .map_err(|e| CommitError::Template(e.to_string()))?,
        None => template::default_message(&context),
    };
    let author = match settings
        .author
        .as_ref()
        .or(git.and_then(|g| g.author.as_ref()))
    {
        Some(text) => Signature::parse(text).ok_or_else(|| CommitError::Author(text.clone()))?,
        None => repo
            .configured_signature()
            .unwrap_or_else(git::default_signature),
    };
    // Whoever the author is (CI often commits as the repository's own
    // user.name), the history knows this commit as an automation's.
    message = git::with_trailer(&message, crate::hold::TRAILER);
    if settings.signoff {
        message = git::sign_off(&message, &author);
    }
    let head = repo.head()?;
    // --branch may be a template (as Argo CD's branch setting); Flux's
    // push.branch is a plain name.
    let branch = match (&settings.branch, git.and_then(|g| g.push_branch.clone())) {
        (Some(b), _) => Some(
            template::render_branch(b, &context).map_err(|e| CommitError::Branch(e.to_string()))?,
        ),
        (None, Some(b)) => Some(b),
        (None, None) => head.branch.clone(),
    };

    if let Some(b) = &branch {
        check_branch_name(&repo.root, b)?;
    }
    if settings.push && branch.is_none() {
        return Err(CommitError::Git(GitError::Failed {
            command: "push".into(),
            message: "HEAD is detached: name the branch to push with --branch".into(),
        }));
    }

    // Paths relative to the repository root, as git names them.
    let prefix = relative_to(&repo.root, dir)?;
    let paths: Vec<(String, String)> = report
        .files
        .iter()
        .map(|f| (f.clone(), join(&prefix, f)))
        .collect();

    let existing = branch.as_deref().and_then(|b| repo.branch_tip(b));
    let parent = existing.clone().or_else(|| head.commit.clone());
    // The update is applied to each file as the parent has it, so that the
    // user's other edits in those files stay uncommitted and blobs keep the
    // repository's normal form (line ends, filters). Files the parent lacks
    // (untracked ones the run edited) come from the working tree.
    let files =
        replayed(&repo, replay, parent.as_deref(), &paths, Some(dir)).map_err(|reason| {
            CommitError::Replay {
                branch: branch.clone().unwrap_or_default(),
                reason,
            }
        })?;
    if files.is_empty() {
        // The branch already has these changes.
        return Ok(None);
    }
    let sha = repo.build_commit(parent.as_deref(), &files, &message, &author, settings.sign)?;
    let committed_paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    let old = if branch.is_some() {
        existing.as_deref()
    } else {
        head.commit.as_deref()
    };
    repo.advance(branch.as_deref(), old, &sha, &committed_paths)?;

    let mut committed = Committed {
        sha: sha.clone(),
        branch: branch.clone(),
        pushed: false,
        attempts: 0,
        note: None,
    };
    if !settings.push {
        return Ok(Some(committed));
    }
    let target = branch.clone().expect("a push has a branch, checked above");
    let options = git.map(|g| g.push_options.clone()).unwrap_or_default();
    let pushed = push(
        &repo,
        &mut committed,
        &PushPlan {
            head: &head,
            target: &target,
            local: &sha,
            paths: &paths,
            message: &message,
            author: &author,
            options: &options,
        },
        replay,
        git,
        settings,
    );
    match pushed {
        Ok(()) => Ok(Some(committed)),
        Err(e) => {
            committed.pushed = false;
            Err(CommitError::NotPushed {
                committed,
                source: Box::new(e),
            })
        }
    }
}

/// What a push needs of the commit just made.
struct PushPlan<'a> {
    head: &'a git::Head,
    target: &'a str,
    /// The local commit.
    local: &'a str,
    paths: &'a [(String, String)],
    message: &'a str,
    author: &'a Signature,
    options: &'a [String],
}

/// Pushes `committed`, rebuilding it on the remote's new tip when the remote
/// moved; updates `committed` with what was pushed.
fn push(
    repo: &Repo,
    committed: &mut Committed,
    plan: &PushPlan,
    replay: &dyn Replay,
    git: Option<&GitSettings>,
    settings: &Settings,
) -> Result<(), CommitError> {
    let PushPlan {
        head,
        target,
        local: sha,
        paths,
        message,
        author,
        options,
    } = *plan;
    let target = target.to_string();
    for attempt in 1..=PUSH_ATTEMPTS {
        committed.attempts = attempt;
        match repo.push(&settings.remote, &committed.sha, &target, options)? {
            PushOutcome::Pushed => {
                committed.pushed = true;
                if committed.sha != sha {
                    committed.note =
                        Some(follow_rebuilt(repo, head, &target, sha, &committed.sha)?);
                }
                // Flux pushes to the branch and, when set, also with the refspec.
                if let Some(refspec) = git.and_then(|g| g.push_refspec.as_deref()) {
                    let refspec = with_source(refspec, &target, &committed.sha);
                    if repo.push_refspec(&settings.remote, &refspec, options)?
                        == PushOutcome::Behind
                    {
                        return Err(CommitError::Git(GitError::Failed {
                            command: "push".into(),
                            message: format!(
                                "the remote rejected refspec {refspec} as not a fast-forward"
                            ),
                        }));
                    }
                }
                return Ok(());
            }
            PushOutcome::Behind => {
                let Some(tip) = repo.fetch(&settings.remote, &target)? else {
                    continue;
                };
                let files = replayed(repo, replay, Some(&tip), paths, None).map_err(|reason| {
                    CommitError::Replay {
                        branch: target.clone(),
                        reason,
                    }
                })?;
                if files.is_empty() {
                    committed.sha = tip;
                    committed.note = Some(format!(
                        "{}/{target} already had these changes; nothing was pushed",
                        settings.remote
                    ));
                    return Ok(());
                }
                committed.sha =
                    repo.build_commit(Some(&tip), &files, message, author, settings.sign)?;
            }
        }
    }
    Err(CommitError::Raced { branch: target })
}

/// With nothing to commit, `--push` still delivers what an earlier run
/// committed but could not push: the branch's local commits the remote lacks,
/// when the remote's tip is among them (a fast-forward). `None` when there is
/// nothing to push, or the branch is a template (known only from changes).
fn push_unpushed(
    repo: &Repo,
    git: Option<&GitSettings>,
    settings: &Settings,
) -> Result<Option<Committed>, CommitError> {
    let branch = match (&settings.branch, git.and_then(|g| g.push_branch.clone())) {
        (Some(b), _) if b.contains("{{") => return Ok(None),
        (Some(b), _) => Some(b.clone()),
        (None, Some(b)) => Some(b),
        (None, None) => repo.head()?.branch,
    };
    let Some(branch) = branch else {
        return Ok(None);
    };
    let Some(local) = repo.branch_tip(&branch) else {
        return Ok(None);
    };
    let remote_tip = repo.fetch(&settings.remote, &branch)?;
    if remote_tip.as_deref() == Some(local.as_str()) {
        return Ok(None);
    }
    if let Some(tip) = &remote_tip {
        if repo.is_ancestor(&local, tip)? {
            // The remote is ahead or equal: nothing of ours is missing there.
            return Ok(None);
        }
        if !repo.is_ancestor(tip, &local)? {
            return Err(CommitError::Diverged {
                branch,
                remote: settings.remote.clone(),
            });
        }
    }
    let options = git.map(|g| g.push_options.clone()).unwrap_or_default();
    let unpushed = repo.count_between(remote_tip.as_deref(), &local)?;
    let mut committed = Committed {
        sha: local.clone(),
        branch: Some(branch.clone()),
        pushed: false,
        attempts: 1,
        note: None,
    };
    match repo.push(&settings.remote, &local, &branch, &options) {
        Ok(PushOutcome::Pushed) => {
            committed.pushed = true;
            committed.note = Some(format!(
                "nothing changed; pushed {unpushed} earlier commit(s) of {branch} that {} lacked",
                settings.remote
            ));
            Ok(Some(committed))
        }
        Ok(PushOutcome::Behind) => Err(CommitError::NotPushed {
            committed,
            source: Box::new(CommitError::Raced { branch }),
        }),
        Err(e) => Err(CommitError::NotPushed {
            committed,
            source: Box::new(e.into()),
        }),
    }
}

/// After a push rebuilt on a moved remote tip, the local branch follows the
/// pushed commit when it is not checked out; a checked-out one is left alone
/// (moving it would make the working tree look like it reverted the other
/// side's changes), and the note says so.
fn follow_rebuilt(
    repo: &Repo,
    head: &git::Head,
    branch: &str,
    local: &str,
    pushed: &str,
) -> Result<String, CommitError> {
    if head.branch.as_deref() == Some(branch) {
        Ok(format!(
            "the remote branch had moved; the update was rebuilt on it and pushed as {pushed}; local {branch} still has {local}: pull to catch up"
        ))
    } else {
        repo.move_branch(branch, local, pushed)?;
        Ok(format!(
            "the remote branch had moved; the update was rebuilt on it and pushed as {pushed}"
        ))
    }
}

/// A Flux refspec whose source names the pushed branch, with the pushed commit
/// as its source instead (the local branch may lag behind a rebuilt push).
fn with_source(refspec: &str, branch: &str, commit: &str) -> String {
    let (force, rest) = match refspec.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", refspec),
    };
    match rest.split_once(':') {
        Some((source, destination))
            if source == "HEAD" || source == branch || source == format!("refs/heads/{branch}") =>
        {
            format!("{force}{commit}:{destination}")
        }
        _ => refspec.to_string(),
    }
}

/// The run's update applied to each file as it is at `commit`; files that
/// need no change there are left out. A file `commit` lacks is taken from the
/// working tree under `worktree` when given (an untracked file the run
/// edited), else left out (it was removed on the other side of a race).
fn replayed(
    repo: &Repo,
    replay: &dyn Replay,
    commit: Option<&str>,
    paths: &[(String, String)],
    worktree: Option<&Path>,
) -> Result<Vec<NewFile>, String> {
    let names: Vec<&str> = paths.iter().map(|(_, in_repo)| in_repo.as_str()).collect();
    let contents = match commit {
        Some(c) => repo.files_at(c, &names).map_err(|e| e.to_string())?,
        None => vec![None; paths.len()],
    };
    let mut files = Vec::new();
    for ((rel, in_repo), content) in paths.iter().zip(contents) {
        match content {
            Some(content) => {
                let src = String::from_utf8(content)
                    .map_err(|_| format!("{in_repo} is not UTF-8 in the parent commit"))?;
                if let Some(updated) = replay.apply(rel, &src)? {
                    files.push(NewFile {
                        path: in_repo.clone(),
                        content: updated.into_bytes(),
                        from_worktree: false,
                    });
                }
            }
            None => {
                if let Some(dir) = worktree {
                    let content =
                        std::fs::read(dir.join(rel)).map_err(|e| format!("{rel}: {e}"))?;
                    files.push(NewFile {
                        path: in_repo.clone(),
                        content,
                        from_worktree: true,
                    });
                }
            }
        }
    }
    Ok(files)
}

fn relative_to(root: &Path, dir: &Path) -> Result<String, CommitError> {
    let canonical = |p: &Path| {
        std::fs::canonicalize(p).map_err(|e| CommitError::Read {
            path: p.display().to_string(),
            reason: e.to_string(),
        })
    };
    let (root, dir): (PathBuf, PathBuf) = (canonical(root)?, canonical(dir)?);
    let rel = dir.strip_prefix(&root).map_err(|_| CommitError::Read {
        path: dir.display().to_string(),
        reason: format!("not inside the repository at {}", root.display()),
    })?;
    Ok(rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/"))
}

fn join(prefix: &str, rel: &str) -> String {
    if prefix.is_empty() {
        rel.to_string()
    } else {
        format!("{prefix}/{rel}")
    }
}
