//! The git history edge: what the files that hold managed values (and the
//! paths promotion gates name) held in the last commits, for the rollback
//! holds and promotion gates of `hold`.
//!
//! It costs a fixed number of `git` processes whatever the repository's
//! size: one `rev-parse`, one `log` of at most `depth` first-parent commits
//! with the raw changes to the asked paths only (`--raw`, no patches), one
//! `ls-tree` of those paths at HEAD, one `cat-file --batch` for every
//! version of them, and, when merges changed them, one `log --no-walk` of
//! the branch tips they merged (who wrote a merged change). Nothing is
//! decided here; `values` says what a version of a file holds, `hold`
//! what that means.

pub mod policies;
pub mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::git::{GitError, Repo};
use crate::hold::{Commit, PathCommit};

/// Past this many paths, git is asked for the whole tree's changes.
const MAX_PATHSPECS: usize = 16;

/// The default `--history-depth`.
pub const DEFAULT_DEPTH: usize = 1000;

/// The history of some paths of a tree.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Newest first, first parents only, at most `depth`.
    pub commits: Vec<Commit>,
    /// Per commit (same index), the asked files it changed.
    pub changes: Vec<Vec<FileChange>>,
    /// The asked files at HEAD, by path, as blob ids.
    pub head: BTreeMap<String, String>,
    /// The text of every blob above (lossy UTF-8).
    pub blobs: BTreeMap<String, String>,
    /// Why the history stops before the repository's first commit
    /// (`None`: it does not).
    pub cut: Option<String>,
}

impl History {
    /// The changes of `file`, newest first: commit, text before, text
    /// after.
    pub fn versions_of(&self, file: &str) -> Vec<(&Commit, Option<&str>, Option<&str>)> {
        let text = |blob: &Option<String>| blob.as_ref().and_then(|b| self.text(b));
        self.commits
            .iter()
            .zip(&self.changes)
            .flat_map(|(commit, changes)| {
                changes
                    .iter()
                    .filter(|c| c.path == file)
                    .map(move |c| (commit, text(&c.before), text(&c.after)))
            })
            .collect()
    }

    fn text(&self, blob: &str) -> Option<&str> {
        self.blobs.get(blob).map(String::as_str)
    }

    /// The files under `dir` at HEAD and, newest first, what each commit
    /// changed there (the text before it), with `read` applied to every
    /// text; for [`crate::hold::presence`].
    pub fn under<T>(
        &self,
        dir: &str,
        read: &dyn Fn(&str) -> T,
    ) -> (BTreeMap<String, T>, Vec<PathCommit<T>>) {
        let inside = |path: &str| {
            path.strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
        };
        let now = self
            .head
            .iter()
            .filter(|(path, _)| inside(path))
            .filter_map(|(path, blob)| Some((path.clone(), read(self.text(blob)?))))
            .collect();
        let commits = self
            .commits
            .iter()
            .zip(&self.changes)
            .map(|(commit, changes)| PathCommit {
                time: commit.time,
                before: changes
                    .iter()
                    .filter(|c| inside(&c.path))
                    .map(|c| {
                        let text = c.before.as_ref().and_then(|b| self.text(b));
                        (c.path.clone(), text.map(read))
                    })
                    .collect(),
            })
            .collect();
        (now, commits)
    }
}

/// One file a commit changed: its path relative to the tree, and its blob
/// before and after (`None`: absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Why [`read`] finds no history when `DIR` is not in a repository.
const NOT_A_REPOSITORY: &str = "is not in a git repository";
/// Why [`read`] finds no history in a repository without commits.
const NO_COMMIT: &str = "the repository has no commit yet";

/// When `why`, an `Err` of [`read`], says there is no history to read
/// (not a git repository, no commit yet): that, without the tree's path;
/// `None` when git failed (cannot be run, refuses a repository of another
/// owner, a damaged repository).
pub fn absent(why: &str) -> Option<&'static str> {
    if why.ends_with(NOT_A_REPOSITORY) {
        Some("not in a git repository")
    } else if why == NO_COMMIT {
        Some(NO_COMMIT)
    } else {
        None
    }
}

/// Reads the history of `paths` (files or directories, relative to `dir`,
/// the tree) over at most `depth` commits of HEAD's first-parent line.
/// `Err` says why there is none: not a git repository, no commit yet, no
/// `git`.
pub fn read(dir: &Path, paths: &BTreeSet<String>, depth: usize) -> Result<History, String> {
    let git = |args: &[&str]| {
        Repo::output_in(dir, args).map_err(|e| match e {
            GitError::Missing(e) => format!("git cannot be run: {e}"),
            GitError::Failed { message, .. } => message,
            e => e.to_string(),
        })
    };
    let probe =
        git(&["rev-parse", "--is-shallow-repository", "--verify", "HEAD"]).map_err(|e| {
            if e.contains("not a git repository") {
                format!("{} {NOT_A_REPOSITORY}", dir.display())
            } else if e.contains("HEAD") {
                NO_COMMIT.to_string()
            } else {
                e
            }
        })?;
    let shallow = String::from_utf8_lossy(&probe).starts_with("true");
    let mut history = History::default();
    if paths.is_empty() || depth == 0 {
        history.cut = (depth == 0).then(|| "--history-depth is 0".to_string());
        return Ok(history);
    }
    // Git matches every entry against every pathspec: past a few, asking
    // for everything under the tree and keeping the asked paths here is
    // far cheaper (1.2 s against 0.04 s for 500 files over 1,000 commits).
    // A name that is not UTF-8 reaches us with U+FFFD in it, which git
    // would not match: then too, ask for everything (git's names are read
    // the same lossy way below, so they agree).
    let lossy = paths.iter().any(|p| p.contains('\u{FFFD}'));
    let pathspecs: Vec<String> = match paths.len() {
        0..=MAX_PATHSPECS if !lossy => paths.iter().map(|p| format!(":(literal){p}")).collect(),
        _ => vec![".".to_string()],
    };
    let asked = |path: &str| {
        paths.contains(path)
            || path
                .char_indices()
                .filter(|(_, c)| *c == '/')
                .any(|(i, _)| paths.contains(&path[..i]))
    };
    let count = format!("--max-count={depth}");
    let mut args = vec![
        "log",
        &count,
        "--first-parent",
        "--diff-merges=first-parent",
        // Every commit is listed, touching the paths or not, so that the
        // depth counts commits and the oldest one read is known.
        "--sparse",
        "--no-renames",
        "--raw",
        "--no-abbrev",
        "-z",
        "--relative",
        FORMAT,
        "--",
    ];
    args.extend(pathspecs.iter().map(String::as_str));
    let log = git(&args)?;
    let mut oldest_parents = String::new();
    // The merges that changed an asked file, by the branch tip they merged.
    let mut merges: Vec<(usize, String)> = Vec::new();
    for record in log.split(|b| *b == 0x1e).skip(1) {
        let (header, raw) = match record.iter().position(|b| *b == 0) {
            Some(i) => (&record[..i], &record[i + 1..]),
            None => (record, &[][..]),
        };
        let (commit, parents) = commit_header(header)?;
        let mut changes = raw_changes(raw);
        changes.retain(|c| asked(&c.path));
        if let Some(tip) = parents.split(' ').nth(1)
            && !changes.is_empty()
        {
            merges.push((history.commits.len(), tip.to_string()));
        }
        oldest_parents = parents;
        history.commits.push(commit);
        history.changes.push(changes);
    }
    if !merges.is_empty() {
        let mut args = vec!["log", "--no-walk=unsorted", FORMAT];
        args.extend(merges.iter().map(|(_, tip)| tip.as_str()));
        // A tip a shallow clone lacks leaves its merge the merger's.
        if let Ok(tips) = git(&args) {
            let tips: BTreeMap<String, Commit> = tips
                .split(|b| *b == 0x1e)
                .skip(1)
                .filter_map(|header| commit_header(header.trim_ascii_end()).ok())
                .map(|(tip, _)| (tip.sha.clone(), tip))
                .collect();
            for (i, tip) in merges {
                history.commits[i].merged = tips.get(&tip).cloned().map(Box::new);
            }
        }
    }
    history.cut = match (oldest_parents.is_empty(), shallow) {
        (true, true) => Some(
            "the repository is a shallow clone, whose history stops early (`git fetch --unshallow` reads all of it)".to_string(),
        ),
        (true, false) => None,
        (false, _) => Some(format!("--history-depth {depth} reached")),
    };
    let mut args = vec!["ls-tree", "-r", "-z", "HEAD", "--"];
    args.extend(pathspecs.iter().map(String::as_str));
    for entry in git(&args)?.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        let Some((meta, path)) = entry.split_once('\t') else {
            continue;
        };
        if let [_, "blob", blob] = meta.split(' ').collect::<Vec<_>>()[..]
            && asked(path)
        {
            history.head.insert(path.to_string(), blob.to_string());
        }
    }
    let wanted: BTreeSet<String> = history
        .changes
        .iter()
        .flatten()
        .flat_map(|c| [c.before.clone(), c.after.clone()])
        .flatten()
        .chain(history.head.values().cloned())
        .collect();
    let wanted: Vec<String> = wanted.into_iter().collect();
    let repo = Repo::open(dir).map_err(|e| e.to_string())?;
    let texts = repo.blobs(&wanted).map_err(|e| e.to_string())?;
    for (blob, text) in wanted.into_iter().zip(texts) {
        if let Some(text) = text {
            history
                .blobs
                .insert(blob, String::from_utf8_lossy(&text).into_owned());
        }
    }
    Ok(history)
}

/// A commit's header as `git log` writes it with [`FORMAT`].
const FORMAT: &str = "--format=%x1e%H%x1f%P%x1f%ct%x1f%an%x1f%ae%x1f%s%x1f%(trailers:key=Image-Update-Automation,valueonly,separator=%x2c)";

/// A commit from its [`FORMAT`] header, with its parents (space-separated).
fn commit_header(header: &[u8]) -> Result<(Commit, String), String> {
    let header = String::from_utf8_lossy(header);
    let fields: Vec<&str> = header.split('\x1f').collect();
    let [sha, parents, time, name, email, subject, trailer] = fields[..] else {
        return Err(format!("unexpected `git log` output: {header:?}"));
    };
    let commit = Commit {
        sha: sha.to_string(),
        time: time.parse().unwrap_or_default(),
        author_name: name.to_string(),
        author_email: email.to_string(),
        subject: subject.to_string(),
        trailer: !trailer.trim().is_empty(),
        merged: None,
    };
    Ok((commit, parents.to_string()))
}

/// `:old_mode new_mode old_blob new_blob status\0path\0` entries.
fn raw_changes(raw: &[u8]) -> Vec<FileChange> {
    let mut changes = Vec::new();
    let mut parts = raw.split(|b| *b == 0);
    while let Some(meta) = parts.next() {
        let meta = String::from_utf8_lossy(meta);
        let Some(meta) = meta.trim_start_matches('\n').strip_prefix(':') else {
            continue;
        };
        let Some(path) = parts.next() else {
            break;
        };
        let fields: Vec<&str> = meta.split(' ').collect();
        let [old_mode, new_mode, old, new, _status] = fields[..] else {
            continue;
        };
        // Only regular files (and links, which are never followed) hold
        // text; a zero id is "absent".
        let blob = |mode: &str, id: &str| {
            (mode.starts_with("100") && id.bytes().any(|b| b != b'0')).then(|| id.to_string())
        };
        changes.push(FileChange {
            path: String::from_utf8_lossy(path).into_owned(),
            before: blob(old_mode, old),
            after: blob(new_mode, new),
        });
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_format_asks_for_this_tools_trailer() {
        assert!(FORMAT.contains(&format!("key={},", crate::hold::TRAILER_KEY)));
    }

    #[test]
    fn raw_changes_read_git_z_output() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        let zero = "0".repeat(40);
        let raw = format!(
            "\n:100644 100644 {a} {b} M\0apps/web.yaml\0:000000 100644 {zero} {a} A\0new file.yaml\0:100644 000000 {b} {zero} D\0gone.yaml\0:120000 120000 {a} {b} M\0link\0"
        );
        let change = |path: &str, before: Option<&str>, after: Option<&str>| FileChange {
            path: path.to_string(),
            before: before.map(str::to_string),
            after: after.map(str::to_string),
        };
        assert_eq!(
            raw_changes(raw.as_bytes()),
            vec![
                change("apps/web.yaml", Some(&a), Some(&b)),
                change("new file.yaml", None, Some(&a)),
                change("gone.yaml", Some(&b), None),
                // A symbolic link holds no text of ours.
                change("link", None, None),
            ]
        );
    }
}
