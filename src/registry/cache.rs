//! Registry facts kept on disk between runs.
//!
//! Mostly immutable ones, keyed by digest. A digest names content that can
//! never change, so what a manifest and its image config say (build date,
//! platform, index children) holds forever. Tags move: the client still asks
//! each run which digest a tag names (a `HEAD`, free on Docker Hub), and only
//! a digest it has not seen costs a manifest or blob `GET`. This is the pull
//! budget a repeat run saves.
//!
//! One file per digest (`v1/sha256/<hex>.json`), written to a temporary file
//! in the same directory and renamed, so two runs sharing the directory see
//! either a whole entry or none. An entry that does not parse, or that names
//! another digest, is ignored and replaced. The number of entries is bounded:
//! past [`MAX_ENTRIES`], the oldest written go first.
//!
//! Beside them, one file per tree (`v1/trees/<sha256 of its path>.json`):
//! the repositories the tree's last run listed, so that the next run can
//! list them while it reads the tree. It is only a guess at what will be
//! asked, written and bounded the same way.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Entries kept before the oldest are pruned (a few hundred bytes each).
pub const MAX_ENTRIES: usize = 10_000;
const FORMAT: &str = "image-update/registry-cache/1";

/// What a manifest says, once its digest is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Facts {
    /// An image: its config's `created` and platform (`os/arch[/variant]`).
    Image {
        created: Option<String>,
        platform: Option<String>,
    },
    /// An index: `(platform, digest)` per child.
    Index { children: Vec<(String, String)> },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    format: String,
    digest: String,
    facts: Facts,
}

/// A repository a run of a tree listed, how it was asked (over plain HTTP,
/// with a credential the tree's own settings gave for its host), and the
/// tags whose digests the run asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listed {
    pub registry: String,
    pub path: String,
    pub insecure: bool,
    pub pinned: bool,
    pub tags: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TreeEntry {
    format: String,
    tree: String,
    listed: Vec<Listed>,
}

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    max_entries: usize,
}

impl Cache {
    /// A cache under `dir` (created on the first write).
    pub fn new(dir: &Path) -> Cache {
        Cache {
            root: dir.join("v1"),
            max_entries: MAX_ENTRIES,
        }
    }

    pub fn with_max_entries(mut self, max_entries: usize) -> Cache {
        self.max_entries = max_entries.max(1);
        self
    }

    /// The facts stored for `digest`; `None` for a miss, a digest that is
    /// not `sha256:<64 hex>`, or an entry that is corrupt or foreign.
    pub fn get(&self, digest: &str) -> Option<Facts> {
        let text = std::fs::read(self.path(digest)?).ok()?;
        let entry: Entry = serde_json::from_slice(&text).ok()?;
        (entry.format == FORMAT && entry.digest == digest).then_some(entry.facts)
    }

    /// Stores `facts` for `digest`, atomically. A cache that cannot be
    /// written only costs requests, so failures are ignored.
    pub fn put(&self, digest: &str, facts: &Facts) {
        let Some(path) = self.path(digest) else {
            return;
        };
        let entry = Entry {
            format: FORMAT.to_string(),
            digest: digest.to_string(),
            facts: facts.clone(),
        };
        write_atomically(&path, &serde_json::to_vec(&entry).expect("facts serialise"));
    }

    /// What the last run of `tree` (its canonical path) listed; `None` when
    /// nothing is stored, or the entry is corrupt or another tree's.
    pub fn listed(&self, tree: &str) -> Option<Vec<Listed>> {
        let text = std::fs::read(self.tree_path(tree)).ok()?;
        let entry: TreeEntry = serde_json::from_slice(&text).ok()?;
        (entry.format == FORMAT && entry.tree == tree).then_some(entry.listed)
    }

    /// Stores what this run of `tree` listed, atomically; failures are
    /// ignored, as for facts.
    pub fn put_listed(&self, tree: &str, listed: &[Listed]) {
        let entry = TreeEntry {
            format: FORMAT.to_string(),
            tree: tree.to_string(),
            listed: listed.to_vec(),
        };
        let bytes = serde_json::to_vec(&entry).expect("repositories serialise");
        write_atomically(&self.tree_path(tree), &bytes);
    }

    /// Whether no entry is stored (then every digest is a miss, and a run
    /// need not ask which digest a tag names before reading it).
    pub fn is_empty(&self) -> bool {
        std::fs::read_dir(self.root.join("sha256")).map_or(true, |mut read| {
            !read.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json")))
        })
    }

    /// Removes the oldest entries (and stray temporary files) once there are
    /// more than the bound, down to nine tenths of it: of digests and of
    /// trees alike.
    pub fn prune(&self) {
        for dir in ["sha256", "trees"] {
            self.prune_dir(&self.root.join(dir));
        }
    }

    fn prune_dir(&self, dir: &Path) {
        let Ok(read) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<(std::time::SystemTime, PathBuf)> = read
            .filter_map(|e| {
                let e = e.ok()?;
                let modified = e.metadata().ok()?.modified().ok()?;
                Some((modified, e.path()))
            })
            .collect();
        if entries.len() <= self.max_entries {
            return;
        }
        entries.sort();
        let excess = entries.len() - self.max_entries * 9 / 10;
        for (_, path) in entries.into_iter().take(excess) {
            // Another run may have removed it already.
            let _ = std::fs::remove_file(path);
        }
    }

    fn path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| self.root.join("sha256").join(format!("{hex}.json")))
    }

    fn tree_path(&self, tree: &str) -> PathBuf {
        let digest = super::protocol::sha256_digest(tree.as_bytes());
        let hex = digest.trim_start_matches("sha256:");
        self.root.join("trees").join(format!("{hex}.json"))
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it there,
/// so readers see the old file or the new one, never a part.
fn write_atomically(path: &Path, bytes: &[u8]) {
    let _ = (|| -> std::io::Result<()> {
        let dir = path.parent().expect("entries live in a directory");
        std::fs::create_dir_all(dir)?;
        let mut temp = tempfile::NamedTempFile::new_in(dir)?;
        temp.write_all(bytes)?;
        temp.persist(path).map_err(|e| e.error)?;
        Ok(())
    })();
}

/// The default cache directory: `$XDG_CACHE_HOME/image-update`, else
/// `~/.cache/image-update`; `None` when neither is known. The environment is
/// passed in.
pub fn default_dir(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let non_empty = |name: &str| env(name).filter(|v| !v.is_empty());
    non_empty("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| non_empty("HOME").map(|home| Path::new(&home).join(".cache")))
        .map(|dir| dir.join("image-update"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn image() -> Facts {
        Facts::Image {
            created: Some("2024-01-01T00:00:00Z".into()),
            platform: Some("linux/amd64".into()),
        }
    }

    #[test]
    fn stores_and_reads_back_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        assert_eq!(cache.get(DIGEST), None);
        assert!(cache.is_empty());
        cache.put(DIGEST, &image());
        assert!(!cache.is_empty());
        assert_eq!(cache.get(DIGEST), Some(image()));
        let index = Facts::Index {
            children: vec![("linux/arm64".into(), DIGEST.into())],
        };
        let other = DIGEST.replace('0', "f");
        cache.put(&other, &index);
        assert_eq!(cache.get(&other), Some(index));
        // Nothing but entries is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("v1/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n.ends_with(".json")), "{names:?}");
    }

    #[test]
    fn corrupt_and_foreign_entries_are_misses_and_get_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let path = cache.path(DIGEST).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let other = DIGEST.replace('0', "f");
        let foreign = format!(
            r#"{{"format":"{FORMAT}","digest":"{other}","facts":{{"kind":"index","children":[]}}}}"#
        );
        for bad in [
            "{not json",
            "",
            r#"{"format":"someone-else/1","digest":"x","facts":{}}"#,
            &foreign,
        ] {
            std::fs::write(&path, bad).unwrap();
            assert_eq!(cache.get(DIGEST), None, "{bad}");
        }
        cache.put(DIGEST, &image());
        assert_eq!(cache.get(DIGEST), Some(image()));
    }

    #[test]
    fn only_sha256_digests_name_entries() {
        let cache = Cache::new(Path::new("/nonexistent"));
        for bad in [
            "sha256:../../etc/passwd",
            "sha256:ABCDEF",
            "md5:0123",
            "latest",
            &DIGEST.to_uppercase(),
        ] {
            assert_eq!(cache.path(bad), None, "{bad}");
        }
        assert!(cache.path(DIGEST).is_some());
    }

    #[test]
    fn pruning_keeps_the_newest_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path()).with_max_entries(10);
        let digests: Vec<String> = (0..12).map(|i| format!("sha256:{i:064x}")).collect();
        for (i, d) in digests.iter().enumerate() {
            cache.put(d, &image());
            let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000 + i as u64);
            std::fs::File::options()
                .write(true)
                .open(cache.path(d).unwrap())
                .unwrap()
                .set_modified(time)
                .unwrap();
        }
        cache.prune();
        let kept: Vec<bool> = digests.iter().map(|d| cache.get(d).is_some()).collect();
        assert_eq!(kept.iter().filter(|k| **k).count(), 9);
        assert!(kept[3..].iter().all(|k| *k), "the newest stay: {kept:?}");
    }

    #[test]
    fn a_trees_record_is_its_own_and_whole() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path()).with_max_entries(2);
        let listed = |path: &str| Listed {
            registry: "ghcr.io".into(),
            path: path.into(),
            insecure: false,
            pinned: false,
            tags: vec!["v1".into()],
        };
        assert_eq!(cache.listed("/work/a"), None);
        cache.put_listed("/work/a", &[listed("org/a")]);
        cache.put_listed("/work/b", &[listed("org/b")]);
        assert_eq!(cache.listed("/work/a"), Some(vec![listed("org/a")]));
        assert_eq!(cache.listed("/work/b"), Some(vec![listed("org/b")]));
        // Another tree's record at this tree's name is foreign.
        std::fs::copy(cache.tree_path("/work/b"), cache.tree_path("/work/a")).unwrap();
        assert_eq!(cache.listed("/work/a"), None);
        std::fs::write(cache.tree_path("/work/a"), "{not json").unwrap();
        assert_eq!(cache.listed("/work/a"), None);
        // Records are bounded as digests are.
        for tree in ["/work/c", "/work/d"] {
            cache.put_listed(tree, &[listed("org/c")]);
        }
        cache.prune();
        let kept = std::fs::read_dir(dir.path().join("v1/trees"))
            .unwrap()
            .count();
        assert_eq!(kept, 1, "down to nine tenths of the bound");
    }

    #[test]
    fn default_dir_follows_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            default_dir(env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/image-update"))
        );
        assert_eq!(
            default_dir(env(&[("XDG_CACHE_HOME", ""), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.cache/image-update"))
        );
        assert_eq!(default_dir(env(&[])), None);
    }
}
