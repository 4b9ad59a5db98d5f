//! A registry snapshot: a JSON file that stands in for the registries, so runs
//! are reproducible, testable and work offline. `image-update snapshot` (with a
//! live client) records one; `--registry-snapshot FILE` replays it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{Registry, RegistryError, TagRef};
use crate::image::Repository;
use crate::policy::argo::DEFAULT_PLATFORM;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SnapshotFile {
    pub version: u32,
    pub repositories: BTreeMap<String, RepositorySnapshot>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RepositorySnapshot {
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub digests: BTreeMap<String, String>,
    /// Build dates of the default platform's image (`linux/amd64`), and of
    /// every platform a written snapshot gives no `created_for` entry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub created: BTreeMap<String, String>,
    /// Build dates of an index's image for another platform, by platform:
    /// the child of the index a rule for that platform reads.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub created_for: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub platforms: BTreeMap<String, Vec<String>>,
}

/// A loaded snapshot, keyed by normalised repository.
#[derive(Debug, Default)]
pub struct Snapshot {
    repositories: BTreeMap<Repository, RepositorySnapshot>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot read registry snapshot {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("registry snapshot {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

impl Snapshot {
    pub fn load(path: &Path) -> Result<Snapshot, SnapshotError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SnapshotError::Read {
            path: shown.clone(),
            source,
        })?;
        Snapshot::parse(&text).map_err(|message| SnapshotError::Invalid {
            path: shown,
            message,
        })
    }

    pub fn parse(text: &str) -> Result<Snapshot, String> {
        let file: SnapshotFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if file.version != 1 {
            return Err(format!(
                "version {} is not supported (expected 1)",
                file.version
            ));
        }
        let mut repositories = BTreeMap::new();
        for (name, repo) in file.repositories {
            let key = Repository::parse(&name).map_err(|e| e.to_string())?;
            if repositories.insert(key.clone(), repo).is_some() {
                return Err(format!(
                    "repository {key} is listed twice (as {name:?} and another spelling)"
                ));
            }
        }
        Ok(Snapshot { repositories })
    }

    fn repository(&self, repository: &Repository) -> Result<&RepositorySnapshot, RegistryError> {
        self.repositories
            .get(repository)
            .ok_or_else(|| RegistryError {
                repository: repository.to_string(),
                message: "repository not in the registry snapshot".to_string(),
            })
    }
}

impl Registry for Snapshot {
    fn tags(&self, repositories: &[Repository]) -> Vec<Result<Vec<String>, RegistryError>> {
        repositories
            .iter()
            .map(|r| self.repository(r).map(|s| s.tags.clone()))
            .collect()
    }

    fn digests(&self, tags: &[TagRef]) -> Vec<Result<String, RegistryError>> {
        self.facts(tags, "digest", |r| &r.digests)
    }

    fn created(&self, tags: &[TagRef], platform: &str) -> Vec<Result<String, RegistryError>> {
        let what = format!("build date (created) for {platform}");
        self.facts(tags, &what, |r| match r.created_for.get(platform) {
            Some(dates) if platform != DEFAULT_PLATFORM => dates,
            _ => &r.created,
        })
    }

    /// A repository written without any `platforms` says nothing about
    /// them: its tags are taken as unknown, which filters nothing. Once it
    /// has some, a tag without an entry is a missing fact.
    fn platforms(&self, tags: &[TagRef]) -> Vec<Result<Vec<String>, RegistryError>> {
        tags.iter()
            .map(|t| match self.repository(&t.repository) {
                Ok(r) if r.platforms.is_empty() => Ok(Vec::new()),
                _ => self
                    .facts(std::slice::from_ref(t), "platform list", |r| &r.platforms)
                    .remove(0),
            })
            .collect()
    }
}

impl Snapshot {
    /// One recorded fact per tag, or an error naming what is missing.
    fn facts<T: Clone>(
        &self,
        tags: &[TagRef],
        what: &str,
        field: impl Fn(&RepositorySnapshot) -> &BTreeMap<String, T>,
    ) -> Vec<Result<T, RegistryError>> {
        tags.iter()
            .map(|t| {
                field(self.repository(&t.repository)?)
                    .get(&t.tag)
                    .cloned()
                    .ok_or_else(|| RegistryError {
                        repository: t.repository.to_string(),
                        message: format!(
                            "the registry snapshot has no {what} for tag {:?}; record it again with `image-update snapshot` and the run's flags",
                            t.tag
                        ),
                    })
            })
            .collect()
    }
}

/// Wraps a registry and writes down every answer it gives, for
/// `image-update snapshot`: the file then replays exactly what the run read.
pub struct Recorder<R> {
    inner: R,
    file: Mutex<SnapshotFile>,
}

impl<R: Registry> Recorder<R> {
    pub fn new(inner: R) -> Recorder<R> {
        Recorder {
            inner,
            file: Mutex::new(SnapshotFile {
                version: 1,
                repositories: BTreeMap::new(),
            }),
        }
    }

    pub fn into_file(self) -> SnapshotFile {
        self.file.into_inner().expect("not poisoned")
    }

    /// Writes down the successful answers about tags.
    fn record<T: Clone>(
        &self,
        tags: &[TagRef],
        answers: &[Result<T, RegistryError>],
        field: impl Fn(&mut RepositorySnapshot) -> &mut BTreeMap<String, T>,
    ) {
        let mut file = self.file.lock().expect("not poisoned");
        for (tag, answer) in tags.iter().zip(answers) {
            if let Ok(value) = answer {
                let repository = file
                    .repositories
                    .entry(tag.repository.to_string())
                    .or_default();
                field(repository).insert(tag.tag.clone(), value.clone());
            }
        }
    }
}

impl<R: Registry> Registry for Recorder<R> {
    fn tags(&self, repositories: &[Repository]) -> Vec<Result<Vec<String>, RegistryError>> {
        let answers = self.inner.tags(repositories);
        let mut file = self.file.lock().expect("not poisoned");
        for (repository, answer) in repositories.iter().zip(&answers) {
            if let Ok(tags) = answer {
                file.repositories
                    .entry(repository.to_string())
                    .or_default()
                    .tags = tags.clone();
            }
        }
        answers
    }

    fn digests(&self, tags: &[TagRef]) -> Vec<Result<String, RegistryError>> {
        let answers = self.inner.digests(tags);
        self.record(tags, &answers, |r| &mut r.digests);
        answers
    }

    fn created(&self, tags: &[TagRef], platform: &str) -> Vec<Result<String, RegistryError>> {
        let answers = self.inner.created(tags, platform);
        self.record(tags, &answers, |r| {
            if platform == DEFAULT_PLATFORM {
                &mut r.created
            } else {
                r.created_for.entry(platform.to_string()).or_default()
            }
        });
        answers
    }

    fn platforms(&self, tags: &[TagRef]) -> Vec<Result<Vec<String>, RegistryError>> {
        let answers = self.inner.platforms(tags);
        self.record(tags, &answers, |r| &mut r.platforms);
        answers
    }

    fn mark_insecure(&self, hosts: &BTreeSet<String>) {
        self.inner.mark_insecure(hosts);
    }

    fn pin_credential(&self, host: &str, credential: super::credentials::Credential) -> bool {
        self.inner.pin_credential(host, credential)
    }

    fn notes(&self) -> Vec<String> {
        self.inner.notes()
    }

    fn requests(&self) -> Vec<super::requests::RequestCount> {
        self.inner.requests()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_compared_after_normalisation() {
        let snap = Snapshot::parse(r#"{"version": 1, "repositories": {"nginx": {"tags": ["1", "2"], "digests": {"2": "sha256:x"}}}}"#).unwrap();
        let repo = Repository::parse("index.docker.io/library/nginx").unwrap();
        assert_eq!(
            snap.tags(std::slice::from_ref(&repo)),
            vec![Ok(vec!["1".to_string(), "2".to_string()])]
        );
        let got = snap.digests(&[
            TagRef {
                repository: repo.clone(),
                tag: "2".into(),
            },
            TagRef {
                repository: repo,
                tag: "1".into(),
            },
        ]);
        assert_eq!(got[0], Ok("sha256:x".to_string()));
        assert!(got[1].as_ref().unwrap_err().message.contains("no digest"));
    }

    #[test]
    fn a_recording_replays_what_was_read() {
        let source = Snapshot::parse(r#"{"version": 1, "repositories": {"ghcr.io/a/b": {"tags": ["1", "2"], "digests": {"2": "sha256:x", "1": "sha256:y"}}, "ghcr.io/a/c": {"tags": ["9"]}}}"#).unwrap();
        let recorder = Recorder::new(source);
        let repo = Repository::parse("ghcr.io/a/b").unwrap();
        recorder.tags(std::slice::from_ref(&repo));
        recorder.digests(&[TagRef {
            repository: repo.clone(),
            tag: "2".into(),
        }]);
        let file = recorder.into_file();
        let text = serde_json::to_string(&file).unwrap();
        assert_eq!(
            text,
            r#"{"version":1,"repositories":{"ghcr.io/a/b":{"tags":["1","2"],"digests":{"2":"sha256:x"}}}}"#
        );
        let replay = Snapshot::parse(&text).unwrap();
        assert_eq!(
            replay.tags(&[repo]),
            vec![Ok(vec!["1".to_string(), "2".to_string()])]
        );
    }

    #[test]
    fn missing_repositories_and_bad_files_are_errors() {
        let snap = Snapshot::parse(r#"{"version": 1, "repositories": {}}"#).unwrap();
        let got = snap.tags(&[Repository::parse("ghcr.io/a/b").unwrap()]);
        assert_eq!(
            got[0].as_ref().unwrap_err().to_string(),
            "ghcr.io/a/b: repository not in the registry snapshot"
        );
        assert!(
            Snapshot::parse(r#"{"version": 2, "repositories": {}}"#)
                .unwrap_err()
                .contains("version 2")
        );
        assert!(Snapshot::parse(r#"{"version": 1, "repositories": {"nginx": {"tags": []}, "docker.io/library/nginx": {"tags": []}}}"#).unwrap_err().contains("twice"));
        assert!(Snapshot::parse(r#"{"version": 1, "repositories": {"a": {"tag": []}}}"#).is_err());
    }
}
