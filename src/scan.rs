//! The filesystem edge: walking the tree (writing goes through
//! [`crate::tree_write`]).
//!
//! Every file is visited, hidden ones included (`.github/`,
//! `.argocd-source-*.yaml`), except `.git/`. Symbolic links are never followed:
//! one that points inside the tree reaches a file the walk visits anyway, and
//! one that points outside it must not be written through.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use globset::{GlobSet, GlobSetBuilder};

use crate::outcome::{Problem, Severity};
use crate::tree_write;

/// A file found by the walk.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Relative to the root, `/`-separated.
    pub rel: String,
    pub path: PathBuf,
    /// Whether `--include`/`--exclude` let this file be edited.
    pub editable: bool,
}

/// `--include` / `--exclude` globs over paths relative to the root.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl Filter {
    pub fn new(include: &[String], exclude: &[String]) -> Result<Filter, globset::Error> {
        let set = |globs: &[String]| -> Result<Option<GlobSet>, globset::Error> {
            if globs.is_empty() {
                return Ok(None);
            }
            let mut builder = GlobSetBuilder::new();
            for g in globs {
                builder.add(
                    globset::GlobBuilder::new(g.trim_start_matches("./"))
                        .literal_separator(true)
                        .build()?,
                );
            }
            builder.build().map(Some)
        };
        Ok(Filter {
            include: set(include)?,
            exclude: set(exclude)?,
        })
    }

    pub fn allows(&self, rel: &str) -> bool {
        self.include.as_ref().is_none_or(|s| s.is_match(rel))
            && self.exclude.as_ref().is_none_or(|s| !s.is_match(rel))
    }
}

/// Whether Flux would read markers from a file of this name.
pub fn is_yaml_name(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.ends_with(".yaml") || name.ends_with(".yml") || name == "Kustomization"
}

/// What the walk does with the temporary files of interrupted runs
/// ([`tree_write::is_temp_name`]); they are never visited as files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftovers {
    /// Remove the stale ones, with a note (a run that writes).
    Remove,
    /// Leave them (a dry run, a read-only command).
    Skip,
}

/// Walks the tree on every core and calls `f` for each regular file (or for
/// something to report: an unreadable directory, a link that leads out of
/// the tree) as soon as it is found, so files are read while the walk goes
/// on. Results come back in the order of a sorted depth-first walk, so runs
/// are deterministic whatever the threads did.
pub fn walk_map<R: Send>(
    root: &Path,
    filter: &Filter,
    leftovers: Leftovers,
    f: impl Fn(Result<Entry, Problem>) -> R + Sync,
) -> Vec<R> {
    let results: Mutex<Vec<(Vec<String>, R)>> = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let walker = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .follow_links(false)
        .filter_entry(|e| {
            !(e.depth() > 0 && e.file_type().is_some_and(|t| t.is_dir()) && e.file_name() == ".git")
        })
        .threads(threads)
        .build_parallel();
    walker.run(|| {
        let (f, results) = (&f, &results);
        Box::new(move |item| {
            let found = match item {
                Err(e) => {
                    let problem = walk_problem(root, &e);
                    Some((problem.file.clone().unwrap_or_default(), Err(problem)))
                }
                Ok(item) => {
                    let rel = relative(root, item.path());
                    if item.path_is_symlink() {
                        link_problem(root, item.path()).map(|why| {
                            let problem = Problem::file(&rel, Severity::Info, why);
                            (rel.clone(), Err(problem))
                        })
                    } else if item.file_type().is_some_and(|t| t.is_file())
                        && tree_write::is_temp_name(&item.file_name().to_string_lossy())
                    {
                        // Our own temporary file: an old one is what a killed
                        // run left; a young one may be a run in progress.
                        (leftovers == Leftovers::Remove
                            && tree_write::remove_if_stale(item.path(), SystemTime::now()))
                        .then(|| {
                            let problem = Problem::file(
                                &rel,
                                Severity::Info,
                                "removed a stale temporary file an interrupted run left behind",
                            );
                            (rel.clone(), Err(problem))
                        })
                    } else if item.file_type().is_some_and(|t| t.is_file()) {
                        Some((
                            rel.clone(),
                            Ok(Entry {
                                editable: filter.allows(&rel),
                                rel,
                                path: item.into_path(),
                            }),
                        ))
                    } else {
                        None
                    }
                }
            };
            if let Some((rel, found)) = found {
                let key = rel.split('/').map(str::to_string).collect();
                let result = f(found);
                results
                    .lock()
                    .expect("no walker panics holding the lock")
                    .push((key, result));
            }
            ignore::WalkState::Continue
        })
    });
    let mut results = results.into_inner().expect("no walker panicked");
    results.sort_by(|a, b| a.0.cmp(&b.0));
    results.into_iter().map(|(_, r)| r).collect()
}

/// A walk error (an unreadable directory, say), its path relative to the
/// tree as every other path, and not repeated inside the message.
fn walk_problem(root: &Path, e: &ignore::Error) -> Problem {
    let (path, cause) = unwrap_walk_error(e);
    let path = path.map(|p| relative(root, p)).unwrap_or_default();
    Problem::file(&path, Severity::Error, format!("cannot read: {cause}"))
}

/// The path a walk error is about and the error itself, without the
/// depth and path wrappers.
fn unwrap_walk_error(e: &ignore::Error) -> (Option<&Path>, &ignore::Error) {
    match e {
        ignore::Error::WithPath { path, err } => (Some(path), unwrap_walk_error(err).1),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            unwrap_walk_error(err)
        }
        other => (None, other),
    }
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// What to report about a symbolic link the walk does not follow: nothing
/// when it leads inside the tree (its target is visited anyway).
fn link_problem(root: &Path, link: &Path) -> Option<&'static str> {
    match fs::canonicalize(link) {
        Ok(target) => (!fs::canonicalize(root).is_ok_and(|root| target.starts_with(root)))
            .then_some("symbolic link leads outside the tree; not followed"),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Some("symbolic link loop; not followed"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some("dangling symbolic link (its target does not exist); not followed")
        }
        Err(_) => Some("symbolic link whose target cannot be resolved; not followed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_flux_reads() {
        for yes in [
            "a.yaml",
            "x/b.yml",
            "Kustomization",
            "d/Kustomization",
            ".argocd-source-a.yaml",
        ] {
            assert!(is_yaml_name(yes), "{yes}");
        }
        for no in ["a.json", "kustomization", "a.yaml.tpl", "yaml"] {
            assert!(!is_yaml_name(no), "{no}");
        }
    }

    /// Hardening 15 (messages): an unreadable directory is named by its
    /// path in the tree, not by an absolute path inside the message.
    #[test]
    fn unreadable_directories_are_named_relative_to_the_tree() {
        let root = Path::new("/work/tree");
        let e = ignore::Error::WithDepth {
            depth: 2,
            err: Box::new(ignore::Error::WithPath {
                path: root.join("apps/secret"),
                err: Box::new(ignore::Error::Io(std::io::Error::from(
                    std::io::ErrorKind::PermissionDenied,
                ))),
            }),
        };
        let problem = walk_problem(root, &e);
        assert_eq!(problem.file.as_deref(), Some("apps/secret"));
        assert_eq!(problem.message, "cannot read: permission denied");
    }

    #[cfg(unix)]
    #[test]
    fn dangling_links_and_loops_are_called_that() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::os::unix::fs::symlink("missing.yaml", root.join("dangling.yaml")).unwrap();
        std::os::unix::fs::symlink("loop-b", root.join("loop-a")).unwrap();
        std::os::unix::fs::symlink("loop-a", root.join("loop-b")).unwrap();
        std::os::unix::fs::symlink("/", root.join("out")).unwrap();
        fs::write(root.join("in.yaml"), "").unwrap();
        std::os::unix::fs::symlink("in.yaml", root.join("in-link.yaml")).unwrap();
        let found = walk_map(root, &Filter::default(), Leftovers::Skip, |e| match e {
            Ok(e) => format!("{}: file", e.rel),
            Err(p) => format!("{}: {}", p.file.unwrap(), p.message),
        });
        assert_eq!(
            found,
            [
                "dangling.yaml: dangling symbolic link (its target does not exist); not followed",
                "in.yaml: file",
                "loop-a: symbolic link loop; not followed",
                "loop-b: symbolic link loop; not followed",
                "out: symbolic link leads outside the tree; not followed",
            ]
        );
    }

    #[test]
    fn filters_match_relative_paths_with_literal_separators() {
        let f = Filter::new(&["apps/*.yaml".into()], &["apps/skip.yaml".into()]).unwrap();
        assert!(f.allows("apps/a.yaml"));
        assert!(!f.allows("apps/sub/a.yaml"));
        assert!(!f.allows("apps/skip.yaml"));
        assert!(Filter::default().allows("anything"));
    }
}
