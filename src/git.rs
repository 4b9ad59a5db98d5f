//! The git edge: turning a run's written files into one commit, and pushing it.
//!
//! Commits are built with git's plumbing against a temporary index (read the
//! target branch's tree, put in the new blobs of exactly the files this run
//! wrote, write a tree, commit it), so the user's index, other staged changes
//! and working tree are never touched, whatever branch the commit goes to.
//! When the commit lands on the checked-out branch, the index entries of the
//! committed files are brought up to date, as `git commit --only` would.
//! Everything goes through the `git` program: it is needed for pushing anyway,
//! it honours the user's configuration (credential helpers, SSH, signing), and
//! it behaves exactly like the git the user knows.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{dir} is not inside a git repository")]
    NotARepository { dir: String },
    #[error("`git {command}` failed: {message}")]
    Failed { command: String, message: String },
    #[error("cannot run git: {0}; `git` must be on PATH for --commit and --push")]
    Missing(String),
}

/// A person as git writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub name: String,
    pub email: String,
}

impl Signature {
    /// Parses `Name <email>`.
    pub fn parse(text: &str) -> Option<Signature> {
        let (name, rest) = text.split_once('<')?;
        let email = rest.strip_suffix('>')?.trim();
        let name = name.trim();
        (!name.is_empty() && !email.is_empty() && !email.contains(['<', '>'])).then(|| Signature {
            name: name.to_string(),
            email: email.to_string(),
        })
    }
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} <{}>", self.name, self.email)
    }
}

/// The documented fallback author.
pub fn default_signature() -> Signature {
    Signature {
        name: "image-update".to_string(),
        email: "image-update@users.noreply.github.com".to_string(),
    }
}

/// A file's new content for a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// Relative to the repository root.
    pub path: String,
    pub content: Vec<u8>,
    /// Read from the working tree (filters apply) rather than made from a blob.
    pub from_worktree: bool,
}

/// What HEAD is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The checked-out branch; `None` when HEAD is detached.
    pub branch: Option<String>,
    /// The commit; `None` in a repository without commits.
    pub commit: Option<String>,
}

/// How the push went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Pushed,
    /// The remote branch moved; fetch and rebuild on top of it.
    Behind,
}

pub struct Repo {
    /// The top of the working tree.
    pub root: PathBuf,
    /// Extra environment for every git command (a token header, say); never logged.
    env: Vec<(OsString, OsString)>,
}

impl Repo {
    pub fn open(dir: &Path) -> Result<Repo, GitError> {
        let probe = Repo {
            root: dir.to_path_buf(),
            env: Vec::new(),
        };
        let top = probe
            .git(&["rev-parse", "--show-toplevel"], None)
            .map_err(|e| match e {
                GitError::Failed { .. } => GitError::NotARepository {
                    dir: dir.display().to_string(),
                },
                e => e,
            })?;
        Ok(Repo {
            root: PathBuf::from(top.trim_end()),
            env: Vec::new(),
        })
    }

    /// Passes configuration to every git command through the environment
    /// (`GIT_CONFIG_COUNT`…), so values such as a token header appear neither
    /// in the process list nor on disk. Entries this process already passes
    /// that way (the GitHub Action's `safe.directory`, say) are kept: the new
    /// ones are numbered after them.
    pub fn with_config(mut self, entries: &[(&str, &str)]) -> Repo {
        let first = self
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "GIT_CONFIG_COUNT")
            .map(|(_, v)| v.to_string_lossy().into_owned())
            .or_else(|| std::env::var("GIT_CONFIG_COUNT").ok())
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let count = first + entries.len();
        self.env
            .push(("GIT_CONFIG_COUNT".into(), count.to_string().into()));
        for (n, (key, value)) in (first..).zip(entries) {
            self.env
                .push((format!("GIT_CONFIG_KEY_{n}").into(), (*key).into()));
            self.env
                .push((format!("GIT_CONFIG_VALUE_{n}").into(), (*value).into()));
        }
        self
    }

    pub fn head(&self) -> Result<Head, GitError> {
        let branch = self
            .git(&["symbolic-ref", "--quiet", "--short", "HEAD"], None)
            .ok()
            .map(|b| b.trim().to_string());
        let commit = self
            .git(&["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], None)
            .ok();
        Ok(Head {
            branch,
            commit: commit.map(|c| c.trim().to_string()),
        })
    }

    /// The commit a branch points at, if it exists.
    pub fn branch_tip(&self, branch: &str) -> Option<String> {
        self.git(
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}^{{commit}}"),
            ],
            None,
        )
        .ok()
        .map(|c| c.trim().to_string())
    }

    /// `user.name` / `user.email` from the repository's configuration.
    pub fn configured_signature(&self) -> Option<Signature> {
        let name = self.git(&["config", "user.name"], None).ok()?;
        let email = self.git(&["config", "user.email"], None).ok()?;
        Some(Signature {
            name: name.trim().to_string(),
            email: email.trim().to_string(),
        })
    }

    /// The content of `path` (relative to the root) at `commit`, if it exists there.
    pub fn file_at(&self, commit: &str, path: &str) -> Option<Vec<u8>> {
        let out = self
            .run(&["cat-file", "blob", &format!("{commit}:{path}")], None)
            .ok()?;
        Some(out)
    }

    /// The contents of `paths` (relative to the root) at `commit`, `None`
    /// where one does not exist there, read by one `git cat-file --batch`.
    pub fn files_at(&self, commit: &str, paths: &[&str]) -> Result<Vec<Option<Vec<u8>>>, GitError> {
        // The batch protocol is line-based: a name with a line break is
        // asked for on its own.
        let (batched, single): (Vec<usize>, Vec<usize>) =
            (0..paths.len()).partition(|&i| !paths[i].contains(['\n', '\r']));
        let mut found = vec![None; paths.len()];
        for i in single {
            found[i] = self.file_at(commit, paths[i]);
        }
        let names: Vec<String> = batched
            .iter()
            .map(|&i| format!("{commit}:{}", paths[i]))
            .collect();
        for (i, blob) in batched.into_iter().zip(self.blobs(&names)?) {
            found[i] = blob;
        }
        Ok(found)
    }

    /// The blobs `names` name (object ids, `commit:path`, …), `None` where
    /// one is missing or not a blob, read by one `git cat-file --batch`.
    /// Names must not contain line breaks.
    pub fn blobs(&self, names: &[String]) -> Result<Vec<Option<Vec<u8>>>, GitError> {
        let mut found = vec![None; names.len()];
        if names.is_empty() {
            return Ok(found);
        }
        let mut input = Vec::new();
        for name in names {
            input.extend_from_slice(name.as_bytes());
            input.push(b'\n');
        }
        let out = self.run(&["cat-file", "--batch"], Some(&input))?;
        let mut rest = out.as_slice();
        let malformed = || GitError::Failed {
            command: "cat-file".into(),
            message: "unexpected --batch output".into(),
        };
        for slot in &mut found {
            let end = rest
                .iter()
                .position(|b| *b == b'\n')
                .ok_or_else(malformed)?;
            let header = String::from_utf8_lossy(&rest[..end]).into_owned();
            rest = &rest[end + 1..];
            let mut fields = header.split(' ');
            let (Some(_), Some(kind), Some(size)) = (fields.next(), fields.next(), fields.next())
            else {
                // `<name> missing` (or ambiguous): not there.
                continue;
            };
            let size: usize = size.parse().map_err(|_| malformed())?;
            if rest.len() < size + 1 {
                return Err(malformed());
            }
            if kind == "blob" {
                *slot = Some(rest[..size].to_vec());
            }
            rest = &rest[size + 1..];
        }
        Ok(found)
    }

    /// The output of `git <args>` run in the tree (not the top of its
    /// repository): for readers whose paths are relative to the tree.
    pub fn output_in(dir: &Path, args: &[&str]) -> Result<Vec<u8>, GitError> {
        Repo {
            root: dir.to_path_buf(),
            env: Vec::new(),
        }
        .run(args, None)
    }

    /// A commit whose tree is `parent`'s with `files` (path relative to the
    /// root, new content) replaced. The caller's index is not touched.
    pub fn build_commit(
        &self,
        parent: Option<&str>,
        files: &[NewFile],
        message: &str,
        author: &Signature,
        sign: bool,
    ) -> Result<String, GitError> {
        let scratch = tempfile::Builder::new()
            .prefix("image-update-index")
            .tempdir()
            .map_err(|e| GitError::Failed {
                command: "commit".into(),
                message: format!("cannot create a temporary index: {e}"),
            })?;
        let index = scratch.path().join("index");
        let with_index = |args: &[&str], input: Option<&[u8]>| {
            self.run_with(
                args,
                input,
                &[("GIT_INDEX_FILE".into(), index.clone().into_os_string())],
            )
        };
        match parent {
            Some(parent) => with_index(&["read-tree", parent], None)?,
            None => with_index(&["read-tree", "--empty"], None)?,
        };
        // One pass over the parent's entries for the modes, one `git`
        // process for all the blobs and one index write: the work grows with
        // the number of files, not with its square.
        let modes = index_entries(&with_index(&["ls-files", "--stage", "-z"], None)?);
        let blobs = self.write_blobs(files, scratch.path())?;
        let mut entries = Vec::new();
        for (NewFile { path, .. }, blob) in files.iter().zip(&blobs) {
            let mode = modes
                .get(path.as_str())
                .map(|(mode, _)| mode.as_str())
                .filter(|m| *m == "100644" || *m == "100755")
                .unwrap_or("100644");
            entries.extend_from_slice(format!("{mode} {blob}\t{path}\0").as_bytes());
        }
        with_index(&["update-index", "-z", "--index-info"], Some(&entries))?;
        let tree = String::from_utf8_lossy(&with_index(&["write-tree"], None)?)
            .trim()
            .to_string();
        let mut args = vec!["commit-tree", tree.as_str()];
        if let Some(parent) = parent {
            args.extend(["-p", parent]);
        }
        if sign {
            args.push("-S");
        }
        let commit = self.run_with(&args, Some(message.as_bytes()), &identity(author))?;
        Ok(String::from_utf8_lossy(&commit).trim().to_string())
    }

    /// Stores `files` as blobs; their ids, in order. Contents that are final
    /// are hashed in one `git hash-object --stdin-paths` from scratch copies;
    /// working-tree contents go one by one through the filters of their path.
    fn write_blobs(&self, files: &[NewFile], scratch: &Path) -> Result<Vec<String>, GitError> {
        let failed = |e: std::io::Error| GitError::Failed {
            command: "hash-object".into(),
            message: format!("cannot write a scratch copy: {e}"),
        };
        let mut blobs = vec![String::new(); files.len()];
        let mut batch = Vec::new();
        let mut list = Vec::new();
        for (i, file) in files.iter().enumerate() {
            if file.from_worktree {
                let hashed = self.run(
                    &["hash-object", "-w", "--stdin", "--path", file.path.as_str()],
                    Some(&file.content),
                )?;
                blobs[i] = String::from_utf8_lossy(&hashed).trim().to_string();
            } else {
                let copy = scratch.join(format!("blob-{i}"));
                std::fs::write(&copy, &file.content).map_err(failed)?;
                list.extend_from_slice(copy.as_os_str().as_encoded_bytes());
                list.push(b'\n');
                batch.push(i);
            }
        }
        if !batch.is_empty() {
            let out = self.run(
                &["hash-object", "-w", "--no-filters", "--stdin-paths"],
                Some(&list),
            )?;
            let out = String::from_utf8_lossy(&out);
            let ids: Vec<&str> = out.lines().collect();
            if ids.len() != batch.len() {
                return Err(GitError::Failed {
                    command: "hash-object".into(),
                    message: format!("{} blobs written for {} files", ids.len(), batch.len()),
                });
            }
            for (i, id) in batch.into_iter().zip(ids) {
                blobs[i] = id.trim().to_string();
            }
        }
        Ok(blobs)
    }

    /// Moves `branch` from `old` to `new` (refusing if it moved meanwhile). When
    /// it is the checked-out branch (or `branch` is `None`, for a detached
    /// HEAD), the index entries of `paths` follow, as after `git commit --only`.
    ///
    /// The index is brought up to date *before* the branch moves, and the
    /// branch move is the last step: a process killed at any moment leaves
    /// either the old branch with the update staged (what the working tree
    /// already holds) or the new branch with a matching index — never a new
    /// branch over an index of old blobs, which the next ordinary commit would
    /// turn into a revert.
    pub fn advance(
        &self,
        branch: Option<&str>,
        old: Option<&str>,
        new: &str,
        paths: &[String],
    ) -> Result<(), GitError> {
        let reference = branch.map_or_else(|| "HEAD".to_string(), |b| format!("refs/heads/{b}"));
        let zero = "0".repeat(40);
        let old = old.unwrap_or(&zero);
        let checked_out = branch.is_none() || self.head()?.branch.as_deref() == branch;
        let before = if checked_out {
            // Whole listings rather than thousands of paths on a command line.
            let before = index_entries(&self.run(&["ls-files", "--stage", "-z"], None)?);
            let after = index_entries(&self.run(&["ls-tree", "-r", "-z", new], None)?);
            self.set_index_entries(paths, &after)?;
            Some(before)
        } else {
            None
        };
        let moved = self.git(
            &[
                "update-ref",
                "-m",
                "image-update: commit",
                &reference,
                new,
                old,
            ],
            None,
        );
        if let (Err(_), Some(before)) = (&moved, &before) {
            // The branch moved under us: the index goes back as it was.
            let _ = self.set_index_entries(paths, before);
        }
        moved.map(drop)
    }

    /// Sets the index entries of `paths` to `entries` (mode and blob by
    /// path), removing the ones `entries` lacks, in one index write.
    fn set_index_entries(
        &self,
        paths: &[String],
        entries: &std::collections::HashMap<String, (String, String)>,
    ) -> Result<(), GitError> {
        let mut info = Vec::new();
        for path in paths {
            let line = match entries.get(path) {
                Some((mode, blob)) => format!("{mode} {blob}\t{path}\0"),
                None => format!("0 {}\t{path}\0", "0".repeat(40)),
            };
            info.extend_from_slice(line.as_bytes());
        }
        self.run(&["update-index", "-z", "--index-info"], Some(&info))
            .map(drop)
    }

    /// Commits exactly `paths` (absolute, inside the working tree) as they are
    /// in the working tree, new and deleted files included, leaving the rest
    /// of the index alone; returns the new commit. For resource management,
    /// where the working tree already holds the change.
    pub fn commit_paths(
        &self,
        paths: &[PathBuf],
        message: &str,
        author: &Signature,
    ) -> Result<String, GitError> {
        let paths: Vec<&str> = paths.iter().filter_map(|p| p.to_str()).collect();
        let mut add = vec!["add", "-A", "--"];
        add.extend(&paths);
        self.git(&add, None)?;
        let mut commit = vec!["commit", "-q", "--no-verify", "-F", "-", "--only", "--"];
        commit.extend(&paths);
        self.run_with(&commit, Some(message.as_bytes()), &identity(author))?;
        Ok(self.git(&["rev-parse", "HEAD"], None)?.trim().to_string())
    }

    /// Moves a branch that is not checked out from `old` to `new`.
    pub fn move_branch(&self, branch: &str, old: &str, new: &str) -> Result<(), GitError> {
        self.git(
            &[
                "update-ref",
                "-m",
                "image-update: pushed",
                &format!("refs/heads/{branch}"),
                new,
                old,
            ],
            None,
        )
        .map(drop)
    }

    /// The URL a remote fetches from, if it is a configured remote.
    pub fn fetch_url(&self, remote: &str) -> Option<String> {
        self.git(&["remote", "get-url", remote], None)
            .ok()
            .map(|u| u.trim().to_string())
    }

    /// The URL a remote pushes to, if it is a configured remote.
    pub fn push_url(&self, remote: &str) -> Option<String> {
        self.git(&["remote", "get-url", "--push", remote], None)
            .ok()
            .map(|u| u.trim().to_string())
    }

    /// Pushes `commit` to `remote`'s `branch` (plus push options), without force.
    pub fn push(
        &self,
        remote: &str,
        commit: &str,
        branch: &str,
        options: &[String],
    ) -> Result<PushOutcome, GitError> {
        self.push_refspec(remote, &format!("{commit}:refs/heads/{branch}"), options)
    }

    /// Pushes a refspec as the user wrote it (Flux `git.push.refspec`).
    pub fn push_refspec(
        &self,
        remote: &str,
        refspec: &str,
        options: &[String],
    ) -> Result<PushOutcome, GitError> {
        let mut args = vec!["push", "--porcelain"];
        for o in options {
            args.extend(["--push-option", o.as_str()]);
        }
        args.extend([remote, refspec]);
        match self.run(&args, None) {
            Ok(_) => Ok(PushOutcome::Pushed),
            Err(GitError::Failed { message, .. })
                if message.contains("[rejected]")
                    || message.contains("non-fast-forward")
                    || message.contains("fetch first") =>
            {
                Ok(PushOutcome::Behind)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, GitError> {
        match self.git(&["merge-base", "--is-ancestor", ancestor, descendant], None) {
            Ok(_) => Ok(true),
            Err(GitError::Failed { message, .. }) if message.is_empty() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// How many commits `to` has that `from` lacks (all of them without `from`).
    pub fn count_between(&self, from: Option<&str>, to: &str) -> Result<usize, GitError> {
        let range = match from {
            Some(from) => format!("{from}..{to}"),
            None => to.to_string(),
        };
        let out = self.git(&["rev-list", "--count", &range], None)?;
        Ok(out.trim().parse().unwrap_or(0))
    }

    /// Fetches `branch` from `remote`; its tip, or `None` when it does not exist there.
    pub fn fetch(&self, remote: &str, branch: &str) -> Result<Option<String>, GitError> {
        match self.git(
            &["fetch", "--quiet", remote, &format!("refs/heads/{branch}")],
            None,
        ) {
            Ok(_) => Ok(Some(
                self.git(&["rev-parse", "FETCH_HEAD^{commit}"], None)?
                    .trim()
                    .to_string(),
            )),
            Err(GitError::Failed { message, .. })
                if message.contains("couldn't find remote ref") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn git(&self, args: &[&str], input: Option<&[u8]>) -> Result<String, GitError> {
        self.run(args, input)
            .map(|out| String::from_utf8_lossy(&out).into_owned())
    }

    fn run(&self, args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>, GitError> {
        self.run_with(args, input, &[])
    }

    fn run_with(
        &self,
        args: &[&str],
        input: Option<&[u8]>,
        extra: &[(OsString, OsString)],
    ) -> Result<Vec<u8>, GitError> {
        let mut child = Command::new("git")
            .arg("-C")
            .arg(&self.root)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(extra.iter().map(|(k, v)| (k, v)))
            .env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| GitError::Missing(e.to_string()))?;
        // The input is fed from another thread while the output is read:
        // a batch command answers as it reads, and a full output pipe would
        // otherwise stop it from reading the rest.
        let out = std::thread::scope(|scope| {
            let feeder = input.map(|input| {
                let mut stdin = child.stdin.take().expect("stdin is piped");
                scope.spawn(move || stdin.write_all(input))
            });
            let out = child
                .wait_with_output()
                .map_err(|e| GitError::Missing(e.to_string()));
            let fed = feeder.map_or(Ok(()), |f| f.join().expect("the feeder does not panic"));
            (out, fed)
        });
        let out = match out {
            (Ok(out), Err(e)) if out.status.success() => {
                return Err(GitError::Failed {
                    command: args.join(" "),
                    message: e.to_string(),
                });
            }
            (out, _) => out?,
        };
        if out.status.success() {
            Ok(out.stdout)
        } else {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(GitError::Failed {
                command: args.first().copied().unwrap_or_default().to_string(),
                message: format!(
                    "{}{}",
                    stderr.trim(),
                    if stdout.trim().is_empty() {
                        String::new()
                    } else {
                        format!(" {}", stdout.trim())
                    }
                ),
            })
        }
    }
}

/// Mode and object id by path, from `git ls-files --stage -z` or
/// `git ls-tree -z` output (`<mode> [<type>] <id> [<stage>]\t<path>\0`).
fn index_entries(out: &[u8]) -> std::collections::HashMap<String, (String, String)> {
    out.split(|b| *b == 0)
        .filter_map(|record| {
            let record = String::from_utf8_lossy(record);
            let (meta, path) = record.split_once('\t')?;
            let mut fields = meta.split(' ');
            let mode = fields.next()?.to_string();
            let id = fields.find(|f| f.len() >= 40)?.to_string();
            Some((path.to_string(), (mode, id)))
        })
        .collect()
}

/// `author` as both author and committer, for git's environment.
fn identity(author: &Signature) -> Vec<(OsString, OsString)> {
    [
        ("GIT_AUTHOR_NAME", &author.name),
        ("GIT_AUTHOR_EMAIL", &author.email),
        ("GIT_COMMITTER_NAME", &author.name),
        ("GIT_COMMITTER_EMAIL", &author.email),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()))
    .collect()
}

/// The `http.extraHeader` that authenticates HTTPS pushes with a token
/// (GitHub, GitLab and Gitea accept a token as the password of any user).
pub fn token_header(token: &str) -> String {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
    format!("Authorization: Basic {basic}")
}

/// Adds a `Signed-off-by` trailer, after a blank line unless the message
/// already ends in a trailer block.
pub fn sign_off(message: &str, who: &Signature) -> String {
    with_trailer(message, &format!("Signed-off-by: {who}"))
}

/// Adds `trailer` (`Key: value`) to the message's trailer block, starting
/// one after a blank line when the message does not end in one; once.
pub fn with_trailer(message: &str, trailer: &str) -> String {
    let body = message.trim_end();
    if body.lines().any(|l| l == trailer) {
        return format!("{body}\n");
    }
    let last_paragraph = body.rsplit("\n\n").next().unwrap_or("");
    let in_trailers = body.contains("\n\n")
        && !last_paragraph.is_empty()
        && last_paragraph.lines().all(|l| {
            l.split_once(": ").is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
        });
    if in_trailers {
        format!("{body}\n{trailer}\n")
    } else {
        format!("{body}\n\n{trailer}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_parse_like_git() {
        assert_eq!(
            Signature::parse("Flux Bot <flux@example.com>"),
            Some(Signature {
                name: "Flux Bot".into(),
                email: "flux@example.com".into()
            })
        );
        assert_eq!(Signature::parse("no email"), None);
        assert_eq!(Signature::parse("<only@email>"), None);
        assert_eq!(Signature::parse("a <b<c>"), None);
    }

    #[test]
    fn sign_off_adds_one_trailer() {
        let who = Signature::parse("A <a@x>").unwrap();
        assert_eq!(
            sign_off("Update images\n", &who),
            "Update images\n\nSigned-off-by: A <a@x>\n"
        );
        assert_eq!(
            sign_off("Update\n\nCo-authored-by: B <b@x>", &who),
            "Update\n\nCo-authored-by: B <b@x>\nSigned-off-by: A <a@x>\n"
        );
        let once = sign_off("Update", &who);
        assert_eq!(sign_off(&once, &who), once);
    }

    #[test]
    fn token_headers_are_basic_auth() {
        assert_eq!(
            token_header("t"),
            "Authorization: Basic eC1hY2Nlc3MtdG9rZW46dA=="
        );
    }
}
