//! Registry credentials, found the way the docker and podman CLIs find them.
//!
//! People already have working logins for their registries: `docker login`
//! and `podman login` write config files, CI systems inject
//! `DOCKER_AUTH_CONFIG`, cloud registries ship `docker-credential-*` helpers.
//! The live registry client should use those rather than invent its own
//! configuration, so this module reproduces the lookup rules of those tools:
//! which files, in which order, how registry keys are spelled, and how helpers
//! are asked. It is pure logic over an [`Env`] the CLI builds (it never reads
//! the process environment or the real home directory itself), which keeps it
//! testable with temporary directories. Everything it returns or reports can
//! end up in a log, so secrets live only inside [`Secret`], whose `Debug` is
//! redacted, and no error message ever carries file contents, helper output or
//! a secret.
//!
//! This file holds the public API ([`Env`], [`Secret`], [`Credential`],
//! [`Store`]) and the lookup order; `config` parses the config files, `keys`
//! spells and matches registry keys, `helper` runs credential helpers.

mod config;
mod helper;
mod keys;
// The fake helpers are /bin/sh scripts, so the tests are for unix hosts.
#[cfg(all(test, unix))]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use config::{AuthEntry, Config, parse_config};
use helper::{HelperEnv, executable_names, helper_program, is_executable, run_helper};
use keys::parse_key;

/// How long a credential helper may run. Helpers may talk to a cloud API
/// (ecr-login, gcloud), so this is generous, but a hung helper must not hang
/// the whole run.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The canonical host for Docker Hub; the same spelling `crate::image` uses.
const DOCKER_HUB: &str = "docker.io";

/// What docker stores Docker Hub logins under, and what it sends to helpers.
const DOCKER_HUB_SERVER_URL: &str = "https://index.docker.io/v1/";

/// The longest helper stderr line quoted in an error.
const STDERR_QUOTE_CHARS: usize = 200;

/// A helper answer is a small JSON object; anything bigger is not an answer,
/// and reading it unbounded would let a broken helper exhaust memory.
const HELPER_OUTPUT_LIMIT: u64 = 1 << 20;

/// The environment variables whose values are paths, safe to show in `Debug`.
const PATH_VARS: [&str; 5] = [
    "DOCKER_CONFIG",
    "REGISTRY_AUTH_FILE",
    "HOME",
    "XDG_RUNTIME_DIR",
    "PATH",
];

/// Where to look; built by the CLI from flags and the process environment.
#[derive(Clone, Default)]
pub struct Env {
    /// `--docker-config FILE` (a config.json file).
    pub docker_config_flag: Option<PathBuf>,
    /// The process environment (DOCKER_CONFIG, REGISTRY_AUTH_FILE, HOME,
    /// XDG_RUNTIME_DIR, DOCKER_AUTH_CONFIG, PATH, and whatever else the CLI
    /// passes; all of it is also given to credential helpers).
    pub vars: BTreeMap<String, String>,
}

// `Debug` is written by hand because `vars` holds DOCKER_AUTH_CONFIG (base64
// passwords) and possibly other secrets such as cloud keys: only the values of
// the path variables are shown.
impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Env")
            .field("docker_config_flag", &self.docker_config_flag)
            .field("vars", &VarsDebug(&self.vars))
            .finish()
    }
}

struct VarsDebug<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for VarsDebug<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in self.0 {
            if PATH_VARS.contains(&name.as_str()) {
                map.entry(name, value);
            } else {
                map.entry(name, &Redacted);
            }
        }
        map.finish()
    }
}

/// A credential's secret part. `Debug` shows the variant and the username
/// only, so a `Credential` can be logged or put in an assertion safely.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth refresh token (`identitytoken`, or a helper's `<token>`
    /// username): exchanged at the registry's token endpoint.
    IdentityToken(String),
    /// A bearer token sent to the registry as is (`registrytoken`).
    RegistryToken(String),
}

struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &Redacted)
                .finish(),
            Secret::IdentityToken(_) => f.debug_tuple("IdentityToken").field(&Redacted).finish(),
            Secret::RegistryToken(_) => f.debug_tuple("RegistryToken").field(&Redacted).finish(),
        }
    }
}

/// A secret and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub secret: Secret,
    /// Human description without secrets, e.g. `auths["ghcr.io"] in
    /// /root/.docker/config.json` or `credential helper
    /// docker-credential-ecr-login (credsStore in /root/.docker/config.json)`.
    pub source: String,
}

/// Why credentials could not be looked up. No variant carries file contents,
/// helper stdout, or any part of a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// A config file exists (or was named by `--docker-config`) but cannot be read.
    #[error("cannot read credentials file {}: {reason}", path.display())]
    Read { path: PathBuf, reason: String },

    /// A config file or DOCKER_AUTH_CONFIG is not JSON. `reason` is one of
    /// serde_json's fixed syntax messages, never a quote of the input.
    #[error("{origin} is not valid JSON: {reason} at line {line} column {column}")]
    Json {
        origin: String,
        line: usize,
        column: usize,
        reason: String,
    },

    /// A config is JSON but a field the lookup uses has the wrong shape.
    #[error("{origin}: {field} {reason}")]
    Invalid {
        origin: String,
        field: String,
        reason: String,
    },

    /// The helper a config names is not an executable on `PATH`.
    #[error("credential helper {helper} ({configured_by}) is not an executable on PATH")]
    HelperNotFound {
        helper: String,
        configured_by: String,
    },

    /// The helper could not be started.
    #[error("cannot run credential helper {helper}: {reason}")]
    HelperStart { helper: String, reason: String },

    /// The helper exited unsuccessfully for a reason other than "not found".
    /// `stderr` is its first non-empty stderr line, at most 200 characters.
    #[error("credential helper {helper} failed ({status}): {stderr}")]
    HelperFailed {
        helper: String,
        status: String,
        stderr: String,
    },

    /// The helper did not finish in time and was killed.
    #[error("credential helper {helper} did not answer within {timeout:?}")]
    HelperTimeout { helper: String, timeout: Duration },

    /// The helper succeeded but its stdout is not a credential.
    #[error("credential helper {helper} gave an unusable answer: {reason}")]
    HelperOutput { helper: String, reason: String },
}

/// The credentials visible to one run: every config found, in order.
#[derive(Debug, Clone)]
pub struct Store {
    configs: Vec<Config>,
    helper_env: HelperEnv,
    helper_timeout: Duration,
    /// Helper answers by (program, server URL), errors included. Callers may
    /// look a credential up for every request, and a running helper blocks
    /// the caller (in the live client, its whole async runtime); asking each
    /// helper once per host per run keeps that to one short stall, and a
    /// hung helper costs one timeout, not one per repository. Shared by
    /// clones.
    answers: Arc<Mutex<BTreeMap<(String, String), HelperAnswer>>>,
    /// Credentials given for one host by the run's own configuration (an
    /// Argo CD `pullSecret` of the `env:` or `ext:` form); consulted first.
    /// Given once the tree is read, while the client may be in use; shared
    /// by clones.
    pinned: Arc<Mutex<BTreeMap<String, Credential>>>,
}

type HelperAnswer = Result<Option<Secret>, CredentialError>;

impl Store {
    /// Reads the config files named by `env` (missing files are fine;
    /// malformed ones are errors).
    ///
    /// Order, first match wins: DOCKER_AUTH_CONFIG, `--docker-config`,
    /// REGISTRY_AUTH_FILE, `$DOCKER_CONFIG/config.json` (else
    /// `$HOME/.docker/config.json`), `$XDG_RUNTIME_DIR/containers/auth.json`.
    /// A file named by `--docker-config` must exist: a mistyped flag silently
    /// meaning "anonymous" would only show up later as a confusing 401.
    pub fn load(env: &Env) -> Result<Store, CredentialError> {
        // Empty variables count as unset, as in docker (`os.Getenv(...) != ""`).
        let var = |name: &str| {
            env.vars
                .get(name)
                .map(String::as_str)
                .filter(|value| !value.trim().is_empty())
        };

        let mut configs = Vec::new();
        if let Some(text) = var("DOCKER_AUTH_CONFIG") {
            configs.push(parse_config(
                "DOCKER_AUTH_CONFIG".to_string(),
                text.as_bytes(),
            )?);
        }

        let mut files: Vec<(PathBuf, bool)> = Vec::new();
        if let Some(flag) = &env.docker_config_flag {
            files.push((flag.clone(), true));
        }
        if let Some(file) = var("REGISTRY_AUTH_FILE") {
            files.push((PathBuf::from(file), false));
        }
        // DOCKER_CONFIG replaces the home directory location rather than
        // adding to it, as in docker.
        if let Some(dir) = var("DOCKER_CONFIG") {
            files.push((Path::new(dir).join("config.json"), false));
        } else if let Some(home) = var("HOME") {
            files.push((Path::new(home).join(".docker").join("config.json"), false));
        }
        if let Some(dir) = var("XDG_RUNTIME_DIR") {
            files.push((Path::new(dir).join("containers").join("auth.json"), false));
        }

        // The same file named twice (REGISTRY_AUTH_FILE pointing at
        // ~/.docker/config.json is common) is read and reported once.
        let mut seen = BTreeSet::new();
        for (path, required) in files {
            if !seen.insert(path.clone()) {
                continue;
            }
            match std::fs::read(&path) {
                Ok(bytes) => configs.push(parse_config(path.display().to_string(), &bytes)?),
                Err(err) if err.kind() == io::ErrorKind::NotFound && !required => {}
                Err(err) => {
                    return Err(CredentialError::Read {
                        path,
                        reason: err.to_string(),
                    });
                }
            }
        }

        Ok(Store {
            configs,
            helper_env: HelperEnv(env.vars.clone()),
            helper_timeout: HELPER_TIMEOUT,
            answers: Arc::default(),
            pinned: Arc::default(),
        })
    }

    /// The malformed entries of the configs, each said once; they fail only
    /// the registry they are for, when it is used.
    pub fn warnings(&self) -> Vec<String> {
        self.configs
            .iter()
            .flat_map(|c| &c.broken)
            .map(|(_, e)| format!("{e}; ignored: it fails only the registry it is for"))
            .collect()
    }

    /// Uses `credential` for `host` before anything the config files say.
    /// The first credential pinned for a host wins; `false` when the host
    /// already had one.
    pub fn pin(&self, host: &str, credential: Credential) -> bool {
        let mut pinned = self.pinned.lock().unwrap_or_else(PoisonError::into_inner);
        let host = parse_key(host).host;
        if pinned.contains_key(&host) {
            return false;
        }
        pinned.insert(host, credential);
        true
    }

    /// Whether `host` has a credential the run's own configuration pinned.
    pub fn is_pinned(&self, host: &str) -> bool {
        self.pinned_for(host).is_some()
    }

    fn pinned_for(&self, host: &str) -> Option<Credential> {
        let pinned = self.pinned.lock().unwrap_or_else(PoisonError::into_inner);
        pinned.get(&parse_key(host).host).cloned()
    }

    /// The same store with a different helper time limit (tests, or a CLI
    /// flag if one is ever wanted).
    pub fn with_helper_timeout(mut self, timeout: Duration) -> Store {
        self.helper_timeout = timeout;
        self
    }

    /// The credential for `host` (a registry host as in an image reference:
    /// "ghcr.io", "docker.io", "localhost:5000", "127.0.0.1:5000"), for
    /// repository `repository` (path like "acme/web", used for podman's
    /// per-repository keys), or None.
    ///
    /// Within one config: `credHelpers[host]` > `credsStore` > `auths`. A
    /// credsStore helper that has nothing for the host falls back to `auths`;
    /// a per-host credHelpers helper is authoritative for its config (docker
    /// never falls back to the file for it), so "not found" there moves on to
    /// the next config, as podman does.
    pub fn lookup(
        &self,
        host: &str,
        repository: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        if let Some(pinned) = self.pinned_for(host) {
            return Ok(Some(pinned));
        }
        let host = parse_key(host).host;
        let repository = repository.trim_matches('/');
        for config in &self.configs {
            if let Some(found) = self.lookup_in(config, &host, repository)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Human list of the sources consulted for a host (for "401: tried …"
    /// messages), no secrets: every configured helper and non-empty `auths`
    /// entry that applies to the host, in lookup order (the first one that
    /// yields a credential is the one `lookup` returns). Empty when no
    /// config knows the host, so the caller can say "no credentials found"
    /// instead; files that do not exist or have no entry are not listed.
    /// No helper is run.
    pub fn sources_for(&self, host: &str) -> Vec<String> {
        let mut sources: Vec<String> = self
            .pinned_for(host)
            .map(|c| c.source)
            .into_iter()
            .collect();
        let host = parse_key(host).host;
        for config in &self.configs {
            if let Some(helper) = config.helpers.get(&host) {
                // Authoritative for this config: nothing else in it is read.
                sources.push(format!(
                    "credential helper {} ({})",
                    helper_program(&helper.name),
                    config.helper_origin(helper)
                ));
                continue;
            }
            if let Some(name) = &config.store {
                sources.push(format!(
                    "credential helper {} ({})",
                    helper_program(name),
                    config.store_origin()
                ));
            }
            // podman namespace keys for other repositories are listed too:
            // this answer is per host, and seeing them explains a 401 that a
            // key for the wrong namespace caused.
            let mut entries: Vec<&AuthEntry> = config
                .auths
                .iter()
                .filter(|entry| entry.host == host && entry.secret.is_some())
                .collect();
            entries.sort_by_key(|entry| entry.rank(&host));
            sources.extend(entries.into_iter().map(|entry| config.auth_origin(entry)));
        }
        sources
    }

    fn lookup_in(
        &self,
        config: &Config,
        host: &str,
        repository: &str,
    ) -> Result<Option<Credential>, CredentialError> {
        if let Some((_, broken)) = config.broken.iter().find(|(h, _)| h == host) {
            return Err(broken.clone());
        }
        if let Some(helper) = config.helpers.get(host) {
            return self.ask_helper(&helper.name, host, config.helper_origin(helper));
        }
        if let Some(name) = &config.store
            && let Some(found) = self.ask_helper(name, host, config.store_origin())?
        {
            return Ok(Some(found));
        }
        Ok(config
            .best_auth(host, repository)
            .map(|(entry, secret)| Credential {
                secret: secret.clone(),
                source: config.auth_origin(entry),
            }))
    }

    fn ask_helper(
        &self,
        name: &str,
        host: &str,
        configured_by: String,
    ) -> Result<Option<Credential>, CredentialError> {
        let helper = helper_program(name);
        let Some(program) = self.find_on_path(&helper) else {
            return Err(CredentialError::HelperNotFound {
                helper,
                configured_by,
            });
        };
        // Docker keys Docker Hub logins by the v1 index URL, so that is what
        // helpers have stored and must be asked for.
        let server_url = if host == DOCKER_HUB {
            DOCKER_HUB_SERVER_URL
        } else {
            host
        };
        // The lock is held while the helper runs so concurrent lookups for
        // the same host wait for one answer instead of starting a second
        // helper; lookups block while a helper runs anyway.
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (helper.clone(), server_url.to_string());
        let answer = match answers.get(&key) {
            Some(answer) => answer.clone(),
            None => {
                let answer = run_helper(
                    &program,
                    &helper,
                    server_url,
                    &self.helper_env.0,
                    self.helper_timeout,
                );
                answers.insert(key, answer.clone());
                answer
            }
        };
        drop(answers);
        let secret = answer?;
        Ok(secret.map(|secret| Credential {
            secret,
            source: format!("credential helper {helper} ({configured_by})"),
        }))
    }

    /// Searches `PATH` from the given environment, not the process's, so
    /// the caller (and tests) decide which helpers exist.
    fn find_on_path(&self, program: &str) -> Option<PathBuf> {
        let path = self.helper_env.0.get("PATH")?;
        // `split_paths` only parses the string it is given; it reads no
        // environment.
        std::env::split_paths(path)
            // Empty and relative entries would resolve against the working
            // directory, i.e. run whatever a checked-out repository contains;
            // Go's exec.LookPath (which docker uses) refuses those too.
            .filter(|dir| dir.is_absolute())
            .flat_map(|dir| executable_names(program).map(move |name| dir.join(name)))
            .find(|candidate| is_executable(candidate))
    }
}
