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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Map, Value};

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
    pinned: BTreeMap<String, Credential>,
}

type HelperAnswer = Result<Option<Secret>, CredentialError>;

/// One parsed config.json / auth.json / DOCKER_AUTH_CONFIG.
#[derive(Debug, Clone)]
struct Config {
    /// The path, or "DOCKER_AUTH_CONFIG".
    origin: String,
    /// Normalised host → helper; one per host (see `prefer`).
    helpers: BTreeMap<String, HelperRef>,
    /// `credsStore`.
    store: Option<String>,
    auths: Vec<AuthEntry>,
    /// Entries (`auths`, `credHelpers`) that are malformed, by the host they
    /// are for: an error for that host only, a warning for every other.
    broken: Vec<(String, CredentialError)>,
}

#[derive(Debug, Clone)]
struct HelperRef {
    key: String,
    name: String,
}

#[derive(Debug, Clone)]
struct AuthEntry {
    /// As written in the file, for messages.
    key: String,
    host: String,
    /// podman's `host/namespace[/repo]` keys.
    namespace: Option<String>,
    /// `None` for an entry with nothing usable, such as the `{}` docker
    /// writes next to a credsStore login.
    secret: Option<Secret>,
}

/// Variables handed to helpers. Its `Debug` shows names only.
#[derive(Clone)]
struct HelperEnv(BTreeMap<String, String>);

impl fmt::Debug for HelperEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

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
            pinned: BTreeMap::new(),
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
    pub fn pin(&mut self, host: &str, credential: Credential) -> bool {
        let host = parse_key(host).host;
        if self.pinned.contains_key(&host) {
            return false;
        }
        self.pinned.insert(host, credential);
        true
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
        let host = parse_key(host).host;
        if let Some(pinned) = self.pinned.get(&host) {
            return Ok(Some(pinned.clone()));
        }
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
        let host = parse_key(host).host;
        let mut sources: Vec<String> = self
            .pinned
            .get(&host)
            .map(|c| c.source.clone())
            .into_iter()
            .collect();
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

impl Config {
    fn helper_origin(&self, helper: &HelperRef) -> String {
        format!(
            "credHelpers[{:?}] in {}",
            display_key(&helper.key),
            self.origin
        )
    }

    fn store_origin(&self) -> String {
        format!("credsStore in {}", self.origin)
    }

    fn auth_origin(&self, entry: &AuthEntry) -> String {
        format!("auths[{:?}] in {}", display_key(&entry.key), self.origin)
    }

    /// The usable `auths` entry for `host/repository`: the longest namespace
    /// that is a prefix of the repository on `/` boundaries, then the bare
    /// host. Several spellings of the same key (`docker.io` and
    /// `https://index.docker.io/v1/`) are resolved by `prefer`, so the answer
    /// does not depend on map order the way docker's does.
    fn best_auth(&self, host: &str, repository: &str) -> Option<(&AuthEntry, &Secret)> {
        self.auths
            .iter()
            .filter(|entry| entry.host == host)
            .filter(|entry| match &entry.namespace {
                None => true,
                Some(ns) => {
                    repository == ns
                        || (repository.starts_with(ns.as_str())
                            && repository.as_bytes().get(ns.len()) == Some(&b'/'))
                }
            })
            .filter_map(|entry| entry.secret.as_ref().map(|secret| (entry, secret)))
            .min_by_key(|(entry, _)| entry.rank(host))
    }
}

impl AuthEntry {
    /// Lower is better: longer namespaces first, then `prefer`.
    fn rank(&self, host: &str) -> (std::cmp::Reverse<usize>, (u8, String)) {
        let depth = self.namespace.as_ref().map_or(0, |ns| ns.len() + 1);
        (std::cmp::Reverse(depth), prefer(&self.key, host))
    }
}

/// Sort key among spellings of one host: docker's own key for Docker Hub
/// (the v1 URL), then the bare host, then the rest by text.
fn prefer(key: &str, host: &str) -> (u8, String) {
    let rank = if host == DOCKER_HUB && key == DOCKER_HUB_SERVER_URL {
        0
    } else if key == host {
        1
    } else {
        2
    };
    (rank, key.to_string())
}

/// A registry key split into host and podman namespace.
struct Key {
    host: String,
    namespace: Option<String>,
}

/// Normalises a key the way both tools can agree on: scheme and trailing
/// slashes dropped, host lowercased, Docker Hub's aliases folded together.
/// With a scheme the key is a URL and its path is ignored (docker's
/// `https://index.docker.io/v1/`); without one a path is a podman namespace,
/// except the API-version paths `v1` and `v2` that docker-era tools append.
fn parse_key(raw: &str) -> Key {
    let raw = raw.trim();
    let scheme = scheme_len(raw);
    let rest = &raw[scheme..];
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority.to_ascii_lowercase();
    // The same aliases as `crate::image::Repository::parse`.
    let host = match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB.to_string()
        }
        _ => host,
    };
    let path = path.trim_matches('/');
    let namespace = if scheme > 0 || path.is_empty() || path == "v1" || path == "v2" {
        None
    } else {
        Some(path.to_string())
    };
    Key { host, namespace }
}

fn scheme_len(key: &str) -> usize {
    ["https://", "http://"]
        .iter()
        .find(|scheme| {
            key.get(..scheme.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
        })
        .map_or(0, |scheme| scheme.len())
}

/// A key as written, with any `user:password@` hidden: nobody should write
/// one, but keys are echoed into messages and must not leak one if they do.
fn display_key(raw: &str) -> String {
    let start = scheme_len(raw);
    let end = raw[start..].find('/').map_or(raw.len(), |i| start + i);
    match raw[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &raw[..start], &raw[start + at..]),
        None => raw.to_string(),
    }
}

// The config is parsed into `serde_json::Value` and interpreted by hand
// rather than derived: serde's data errors quote the offending value
// ("invalid type: string \"hunter2\""), and here the values are passwords.
// Parsing into `Value` can only fail with syntax errors, whose messages are
// fixed, and the shape errors below name the field, never its value. Unknown
// fields are ignored because config.json holds much else (proxies, formats).
fn parse_config(origin: String, bytes: &[u8]) -> Result<Config, CredentialError> {
    let mut config = Config {
        origin,
        helpers: BTreeMap::new(),
        store: None,
        auths: Vec::new(),
        broken: Vec::new(),
    };
    // An empty file is an empty config, as in docker (it ignores io.EOF).
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(config);
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|err| CredentialError::Json {
        origin: config.origin.clone(),
        line: err.line(),
        column: err.column(),
        reason: json_reason(&err),
    })?;
    let invalid = |field: String, reason: &str| CredentialError::Invalid {
        origin: config.origin.clone(),
        field,
        reason: reason.to_string(),
    };
    let Value::Object(top) = value else {
        return Err(invalid("the document".to_string(), "must be a JSON object"));
    };

    if let Some(auths) = object_field(&top, "auths").map_err(|r| invalid("auths".into(), r))? {
        for (key, entry) in auths {
            let field = format!("auths[{:?}]", display_key(key));
            let Key { host, namespace } = parse_key(key);
            let entry = match entry {
                Value::Object(entry) => Some(entry),
                Value::Null => None,
                _ => {
                    config
                        .broken
                        .push((host, invalid(field, "must be an object")));
                    continue;
                }
            };
            let secret = match entry.map(auth_secret).transpose() {
                Ok(secret) => secret.flatten(),
                Err((name, r)) => {
                    config
                        .broken
                        .push((host, invalid(format!("{field}.{name}"), r)));
                    continue;
                }
            };
            config.auths.push(AuthEntry {
                key: key.clone(),
                host,
                namespace,
                secret,
            });
        }
    }

    if let Some(helpers) =
        object_field(&top, "credHelpers").map_err(|r| invalid("credHelpers".into(), r))?
    {
        for (key, name) in helpers {
            let field = format!("credHelpers[{:?}]", display_key(key));
            // Helpers are per registry, never per namespace (podman says the
            // same), so only the host part of the key counts.
            let host = parse_key(key).host;
            let name = match name {
                Value::String(name) => name,
                Value::Null => continue,
                _ => {
                    config
                        .broken
                        .push((host, invalid(field, "must be a string")));
                    continue;
                }
            };
            // An empty helper means "no helper", as in docker.
            if name.is_empty() {
                continue;
            }
            if let Err(r) = check_helper_name(name) {
                config.broken.push((host, invalid(field, r)));
                continue;
            }
            let candidate = HelperRef {
                key: key.clone(),
                name: name.clone(),
            };
            match config.helpers.get(&host) {
                Some(existing) if prefer(&existing.key, &host) <= prefer(key, &host) => {}
                _ => {
                    config.helpers.insert(host, candidate);
                }
            }
        }
    }

    match top.get("credsStore") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) if name.is_empty() => {}
        Some(Value::String(name)) => {
            check_helper_name(name).map_err(|r| invalid("credsStore".into(), r))?;
            config.store = Some(name.clone());
        }
        Some(_) => return Err(invalid("credsStore".into(), "must be a string")),
    }

    Ok(config)
}

/// `Some(object)`, `None` for absent or null (Go decodes null into a nil
/// map), or a reason.
fn object_field<'a>(
    object: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a Map<String, Value>>, &'static str> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner)),
        Some(_) => Err("must be an object"),
    }
}

/// A non-empty string field, `None` for absent, null or "", or a reason.
fn string_field<'a>(
    object: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, &'static str> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err("must be a string"),
    }
}

/// The secret of one `auths` entry. docker's order: a `registrytoken` is
/// sent as is and overrides everything, an `identitytoken` replaces the
/// password, `auth` overrides `username`/`password`. Errors are (field, reason).
fn auth_secret(entry: &Map<String, Value>) -> Result<Option<Secret>, (&'static str, &'static str)> {
    let field = |name: &'static str| string_field(entry, name).map_err(|r| (name, r));
    let auth = field("auth")?;
    let username = field("username")?;
    let password = field("password")?;
    let identity = field("identitytoken")?;
    let registry = field("registrytoken")?;

    if let Some(token) = registry {
        return Ok(Some(Secret::RegistryToken(token.to_string())));
    }
    if let Some(token) = identity {
        return Ok(Some(Secret::IdentityToken(token.to_string())));
    }
    if let Some(auth) = auth {
        let (username, password) = decode_auth(auth).map_err(|r| ("auth", r))?;
        return Ok(Some(Secret::Basic { username, password }));
    }
    if username.is_some() || password.is_some() {
        return Ok(Some(Secret::Basic {
            username: username.unwrap_or_default().to_string(),
            password: password.unwrap_or_default().to_string(),
        }));
    }
    Ok(None)
}

/// `base64("user:password")`, split at the first `:` because passwords may
/// contain colons and usernames may not (HTTP Basic). Padding is optional
/// since hand-made configs often omit it; the reasons never include the
/// decoder's message, which quotes the offending byte.
fn decode_auth(auth: &str) -> Result<(String, String), &'static str> {
    let bytes = base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
        .decode(auth.trim())
        .map_err(|_| "is not valid base64")?;
    let text = String::from_utf8(bytes).map_err(|_| "does not decode to UTF-8 text")?;
    let (username, password) = text
        .split_once(':')
        .ok_or("does not decode to \"username:password\"")?;
    if username.is_empty() {
        return Err("decodes to an empty username");
    }
    // docker trims NULs some tools pad with; nothing else is changed.
    Ok((
        username.to_string(),
        password.trim_matches('\0').to_string(),
    ))
}

/// A helper name becomes part of a program name looked up on PATH; a path
/// separator would make the config choose an arbitrary program instead.
fn check_helper_name(name: &str) -> Result<(), &'static str> {
    if name.contains(['/', '\\', '\0']) {
        Err("is not a helper name (it contains a path separator)")
    } else {
        Ok(())
    }
}

fn helper_program(name: &str) -> String {
    format!("docker-credential-{name}")
}

fn executable_names(program: &str) -> impl Iterator<Item = String> {
    let mut names = vec![program.to_string()];
    if cfg!(windows) {
        names.push(format!("{program}.exe"));
    }
    names.into_iter()
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// serde_json's message without its position suffix, only for syntax and
/// end-of-input errors (a fixed list: "expected `,` or `}`", "EOF while
/// parsing a string", ...). Data errors could quote input, so they get a
/// generic reason; parsing into `Value` does not produce them anyway.
fn json_reason(err: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof => {
            let text = err.to_string();
            let suffix = format!(" at line {} column {}", err.line(), err.column());
            text.strip_suffix(&suffix).unwrap_or(&text).to_string()
        }
        Category::Data => "unexpected value".to_string(),
        Category::Io => "read error".to_string(),
    }
}

/// Runs `program get` with the docker credential-helper protocol. `Ok(None)`
/// is the helper's "credentials not found". Stdout is parsed and dropped,
/// never quoted: it is where the secret is.
fn run_helper(
    program: &Path,
    helper: &str,
    server_url: &str,
    vars: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<Option<Secret>, CredentialError> {
    let deadline = Instant::now() + timeout;
    let timed_out = || CredentialError::HelperTimeout {
        helper: helper.to_string(),
        timeout,
    };
    // The child inherits the process environment (ecr-login needs AWS_*,
    // gcloud its config) with the caller's view of the variables on top, so
    // it sees the same PATH and HOME this module used.
    let mut child = Command::new(program)
        .arg("get")
        .envs(vars)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| CredentialError::HelperStart {
            helper: helper.to_string(),
            reason: err.to_string(),
        })?;

    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading closes the pipe; its exit
        // status then says what happened, so a write error is not reported.
        // The line is far smaller than a pipe buffer, so this cannot block.
        let _ = stdin.write_all(format!("{server_url}\n").as_bytes());
    }
    // Readers run on threads so a helper filling one pipe while we wait on
    // the other cannot deadlock, and so the deadline bounds everything.
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());

    let Some(status) = wait_until(&mut child, deadline) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(timed_out());
    };
    // A helper's own children may keep the pipes open after it exits; the
    // deadline still applies.
    let collect = |output: &mpsc::Receiver<Option<Vec<u8>>>| match output
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        Ok(bytes) => Ok(bytes),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(timed_out()),
        Err(mpsc::RecvTimeoutError::Disconnected) => Ok(Some(Vec::new())),
    };
    let stdout = collect(&stdout)?;
    let stderr = collect(&stderr)?.unwrap_or_default();
    let output_error = |reason: &str| CredentialError::HelperOutput {
        helper: helper.to_string(),
        reason: reason.to_string(),
    };
    let Some(stdout) = stdout else {
        return Err(output_error("more than 1 MiB on stdout"));
    };

    if !status.success() {
        // docker-credential-helpers print "credentials not found in native
        // keychain" on stdout; other helpers use stderr. Looking for the
        // phrase is how docker's own client recognises it.
        let says_not_found = |bytes: &[u8]| {
            String::from_utf8_lossy(bytes)
                .to_ascii_lowercase()
                .contains("credentials not found")
        };
        if says_not_found(&stdout) || says_not_found(&stderr) {
            return Ok(None);
        }
        return Err(CredentialError::HelperFailed {
            helper: helper.to_string(),
            status: describe_status(status),
            stderr: first_line(&stderr),
        });
    }

    let answer: Value = serde_json::from_slice(&stdout).map_err(|err| {
        output_error(&format!(
            "stdout is not JSON ({} at line {} column {})",
            json_reason(&err),
            err.line(),
            err.column()
        ))
    })?;
    let Value::Object(answer) = answer else {
        return Err(output_error("stdout is not a JSON object"));
    };
    let username = string_field(&answer, "Username")
        .map_err(|_| output_error("\"Username\" is not a string"))?
        .unwrap_or_default();
    let secret =
        string_field(&answer, "Secret").map_err(|_| output_error("\"Secret\" is not a string"))?;
    // A helper answering success with nothing in it has no credential.
    let Some(secret) = secret else {
        return Ok(None);
    };
    Ok(Some(if username == "<token>" {
        Secret::IdentityToken(secret.to_string())
    } else {
        Secret::Basic {
            username: username.to_string(),
            password: secret.to_string(),
        }
    }))
}

/// Reads a pipe to the end on a thread. Sends `None` if it held more than
/// `HELPER_OUTPUT_LIMIT` bytes; the rest is drained so the helper is not
/// blocked writing into a full pipe.
fn read_in_background<R: Read + Send + 'static>(
    pipe: Option<R>,
) -> mpsc::Receiver<Option<Vec<u8>>> {
    let (sender, receiver) = mpsc::channel();
    if let Some(pipe) = pipe {
        thread::spawn(move || {
            let mut limited = pipe.take(HELPER_OUTPUT_LIMIT + 1);
            let mut bytes = Vec::new();
            // A read error just ends the output; the exit status and the
            // parse of what arrived decide the outcome.
            let _ = limited.read_to_end(&mut bytes);
            let complete = bytes.len() as u64 <= HELPER_OUTPUT_LIMIT;
            if !complete {
                let _ = io::copy(&mut limited.into_inner(), &mut io::sink());
            }
            let _ = sender.send(complete.then_some(bytes));
        });
    }
    receiver
}

/// Polls for the child's exit until `deadline`; std has no wait with a
/// timeout. The pause grows to 50 ms, so a quick helper costs ~1 ms.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            // Cannot happen for a child we own; treat as "did not finish".
            Err(_) => return None,
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn describe_status(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => status.to_string(),
    }
}

/// The first non-empty stderr line, control characters removed, at most
/// `STDERR_QUOTE_CHARS` characters. Helpers should not print secrets on
/// stderr; the bound limits the damage of one that does.
fn first_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("");
    if line.is_empty() {
        return "no message on stderr".to_string();
    }
    let mut chars = line.chars().filter(|c| !c.is_control());
    let mut quoted: String = chars.by_ref().take(STDERR_QUOTE_CHARS).collect();
    if chars.next().is_some() {
        quoted.push('…');
    }
    quoted
}

// The fake helpers are /bin/sh scripts, so the tests are for unix hosts.
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::RwLock;

    /// Every secret the tests use contains this, so leak checks need one needle.
    const NEEDLE: &str = "s3cr3t";
    const PASSWORD: &str = "pa:ss-s3cr3t";

    /// Writing an executable while another test thread forks lets the child
    /// inherit the open file, and exec then fails with ETXTBSY. Scripts are
    /// written under the write lock; anything that may spawn a helper holds
    /// the read lock.
    static SCRIPTS: RwLock<()> = RwLock::new(());

    /// Table row parts: an expected lookup result or error message; helpers
    /// to install as (name, script body); a predicate on an error.
    type Expected = Result<Option<Secret>, &'static str>;
    type Helpers = &'static [(&'static str, &'static str)];
    type Check = Box<dyn Fn(&CredentialError) -> bool>;

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn basic(username: &str, password: &str) -> Secret {
        Secret::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }
    }

    fn auths(key: &str, username: &str) -> String {
        json!({"auths": {key: {"auth": b64(&format!("{username}:{PASSWORD}"))}}}).to_string()
    }

    struct Fixture {
        dir: tempfile::TempDir,
        env: Env,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                dir: tempfile::tempdir().unwrap(),
                env: Env::default(),
            }
        }

        fn path(&self, relative: &str) -> PathBuf {
            self.dir.path().join(relative)
        }

        fn text(&self, relative: &str) -> String {
            self.path(relative).to_str().unwrap().to_string()
        }

        fn file(&self, relative: &str, contents: &str) -> PathBuf {
            let path = self.path(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, contents).unwrap();
            path
        }

        fn var(&mut self, name: &str, value: &str) {
            self.env.vars.insert(name.to_string(), value.to_string());
        }

        /// Installs `docker-credential-<name>` running `body` under /bin/sh,
        /// and points PATH at it (and nothing else).
        fn helper(&mut self, name: &str, body: &str) {
            let path = self.path(&format!("bin/docker-credential-{name}"));
            {
                let _guard = SCRIPTS.write().unwrap_or_else(|e| e.into_inner());
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            let bin = self.text("bin");
            self.var("PATH", &bin);
        }

        fn store(&self) -> Store {
            Store::load(&self.env).unwrap()
        }

        fn lookup(
            &self,
            host: &str,
            repository: &str,
        ) -> Result<Option<Credential>, CredentialError> {
            self.lookup_with(&Store::load(&self.env)?, host, repository)
        }

        fn lookup_with(
            &self,
            store: &Store,
            host: &str,
            repository: &str,
        ) -> Result<Option<Credential>, CredentialError> {
            let _guard = SCRIPTS.read().unwrap_or_else(|e| e.into_inner());
            store.lookup(host, repository)
        }
    }

    /// Prints the helper's stdin line as the username, so tests see what it was asked.
    const ECHO_HELPER: &str = r#"read -r url
printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\n' "$url" "$url" "helper-s3cr3t""#;
    const TOKEN_HELPER: &str = r#"read -r url
printf '{"ServerURL":"%s","Username":"<token>","Secret":"tok-s3cr3t"}\n' "$url""#;
    const NOT_FOUND_HELPER: &str =
        "read -r url\necho 'credentials not found in native keychain'\nexit 1";
    const FAILING_HELPER: &str = "read -r url\necho \"leaked-s3cr3t on stdout\"\necho \"keychain locked for $url\" >&2\nexit 2";

    #[test]
    fn file_sources_in_order_first_match_wins() {
        // Each source holds a ghcr.io login whose username names it; a row
        // lists the sources present and the one that must answer.
        let all = [
            "env",
            "flag",
            "registry_auth_file",
            "docker_config",
            "home",
            "xdg",
        ];
        let rows: &[(&[&str], Option<&str>)] = &[
            (&all, Some("env")),
            (
                &["flag", "registry_auth_file", "docker_config", "xdg"],
                Some("flag"),
            ),
            (
                &["registry_auth_file", "docker_config", "home", "xdg"],
                Some("registry_auth_file"),
            ),
            (&["docker_config", "home", "xdg"], Some("docker_config")),
            // DOCKER_CONFIG replaces ~/.docker even when it has no config.json.
            (&["docker_config_dir_only", "home", "xdg"], Some("xdg")),
            (&["home", "xdg"], Some("home")),
            (&["xdg"], Some("xdg")),
            (&[], None),
        ];
        for (present, expected) in rows {
            let mut fx = Fixture::new();
            fx.var("HOME", &fx.text("home"));
            for source in *present {
                let config = auths("ghcr.io", source);
                match *source {
                    "env" => fx.var("DOCKER_AUTH_CONFIG", &config),
                    "flag" => {
                        fx.env.docker_config_flag = Some(fx.file("flag.json", &config));
                    }
                    "registry_auth_file" => {
                        let path = fx.file("raf/auth.json", &config);
                        fx.var("REGISTRY_AUTH_FILE", path.to_str().unwrap());
                    }
                    "docker_config" => {
                        fx.file("dc/config.json", &config);
                        fx.var("DOCKER_CONFIG", &fx.text("dc"));
                    }
                    "docker_config_dir_only" => fx.var("DOCKER_CONFIG", &fx.text("dc")),
                    "home" => {
                        fx.file("home/.docker/config.json", &config);
                    }
                    "xdg" => {
                        fx.file("run/containers/auth.json", &config);
                        fx.var("XDG_RUNTIME_DIR", &fx.text("run"));
                    }
                    other => unreachable!("{other}"),
                }
            }
            let found = fx.lookup("ghcr.io", "acme/web").unwrap();
            let username = found.as_ref().map(|c| match &c.secret {
                Secret::Basic { username, .. } => username.as_str(),
                other => panic!("{other:?}"),
            });
            assert_eq!(username, *expected, "sources {present:?}");
        }
    }

    #[test]
    fn sources_describe_where_the_credential_came_from() {
        let mut fx = Fixture::new();
        fx.var("DOCKER_AUTH_CONFIG", &auths("quay.io", "ci"));
        let home = fx.file("home/.docker/config.json", &auths("ghcr.io", "me"));
        fx.var("HOME", &fx.text("home"));
        fx.var("XDG_RUNTIME_DIR", &fx.text("run"));

        let found = fx.lookup("ghcr.io", "acme/web").unwrap().unwrap();
        assert_eq!(
            found.source,
            format!("auths[\"ghcr.io\"] in {}", home.display())
        );
        let found = fx.lookup("quay.io", "x").unwrap().unwrap();
        assert_eq!(found.source, "auths[\"quay.io\"] in DOCKER_AUTH_CONFIG");

        assert_eq!(
            fx.store().sources_for("ghcr.io"),
            vec![format!("auths[\"ghcr.io\"] in {}", home.display())]
        );
        assert_eq!(
            fx.store().sources_for("quay.io"),
            vec!["auths[\"quay.io\"] in DOCKER_AUTH_CONFIG".to_string()]
        );
        assert!(fx.store().sources_for("docker.io").is_empty());
    }

    #[test]
    fn a_config_without_an_entry_for_the_host_falls_through() {
        let mut fx = Fixture::new();
        fx.var("DOCKER_AUTH_CONFIG", &auths("quay.io", "ci"));
        // docker writes `{}` entries when a credsStore holds the secret.
        let flag = json!({"auths": {"ghcr.io": {}}}).to_string();
        fx.env.docker_config_flag = Some(fx.file("flag.json", &flag));
        fx.file("home/.docker/config.json", &auths("ghcr.io", "home"));
        fx.var("HOME", &fx.text("home"));
        let found = fx.lookup("ghcr.io", "").unwrap().unwrap();
        assert_eq!(found.secret, basic("home", PASSWORD));
        // The empty entry is not a source of credentials either.
        assert_eq!(fx.store().sources_for("ghcr.io").len(), 1);
    }

    #[test]
    fn sources_list_helpers_and_entries_in_lookup_order() {
        let mut fx = Fixture::new();
        fx.var(
            "DOCKER_AUTH_CONFIG",
            &json!({"credHelpers": {"ghcr.io": "a"}, "auths": {"ghcr.io": {"auth": b64("u:p")}}})
                .to_string(),
        );
        let config = json!({
            "credsStore": "desktop",
            "auths": {
                "https://ghcr.io": {"auth": b64("u:p")},
                "ghcr.io": {"auth": b64("u:p")},
                "ghcr.io/acme": {"auth": b64("u:p")},
                "quay.io": {"auth": b64("u:p")},
            },
        });
        let path = fx.file("home/.docker/config.json", &config.to_string());
        fx.var("HOME", &fx.text("home"));
        let path = path.display();
        assert_eq!(
            fx.store().sources_for("GHCR.IO"),
            vec![
                // credHelpers hides the auths entry next to it.
                "credential helper docker-credential-a (credHelpers[\"ghcr.io\"] in DOCKER_AUTH_CONFIG)".to_string(),
                format!("credential helper docker-credential-desktop (credsStore in {path})"),
                format!("auths[\"ghcr.io/acme\"] in {path}"),
                format!("auths[\"ghcr.io\"] in {path}"),
                format!("auths[\"https://ghcr.io\"] in {path}"),
            ]
        );
    }

    #[test]
    fn each_helper_is_asked_once_per_host() {
        let mut fx = Fixture::new();
        let log = fx.text("asked.log");
        fx.helper("counted", &format!("echo asked >> '{log}'\n{ECHO_HELPER}"));
        fx.helper(
            "none",
            &format!("echo asked >> '{log}'\n{NOT_FOUND_HELPER}"),
        );
        fx.var(
            "DOCKER_AUTH_CONFIG",
            &json!({"credHelpers": {"ghcr.io": "counted", "quay.io": "none"}}).to_string(),
        );
        let store = fx.store();
        let clone = store.clone();
        for _ in 0..3 {
            let found = fx.lookup_with(&store, "ghcr.io", "a/b").unwrap().unwrap();
            assert_eq!(found.secret, basic("ghcr.io", "helper-s3cr3t"));
            assert_eq!(fx.lookup_with(&clone, "quay.io", "a/b").unwrap(), None);
        }
        fx.lookup_with(&store, "localhost:5000", "a").unwrap();
        let asked = std::fs::read_to_string(&log).unwrap();
        assert_eq!(asked.lines().count(), 2, "{asked}");
    }

    #[test]
    fn the_same_file_named_twice_is_read_once() {
        let mut fx = Fixture::new();
        let path = fx.file("home/.docker/config.json", &auths("ghcr.io", "me"));
        fx.var("HOME", &fx.text("home"));
        fx.var("REGISTRY_AUTH_FILE", path.to_str().unwrap());
        assert_eq!(fx.store().sources_for("ghcr.io").len(), 1);
    }

    #[test]
    fn auth_entries() {
        let entry = |value: Value| json!({"auths": {"ghcr.io": value}}).to_string();
        let rows: Vec<(&str, Value, Expected)> = vec![
            (
                "auth",
                json!({"auth": b64("u:p")}),
                Ok(Some(basic("u", "p"))),
            ),
            (
                "colons in the password",
                json!({"auth": b64(&format!("u:{PASSWORD}"))}),
                Ok(Some(basic("u", PASSWORD))),
            ),
            (
                "empty password",
                json!({"auth": b64("u:")}),
                Ok(Some(basic("u", ""))),
            ),
            (
                "no padding",
                json!({"auth": b64("user:pw").trim_end_matches('=')}),
                Ok(Some(basic("user", "pw"))),
            ),
            (
                "auth wins over username and password",
                json!({"auth": b64("u:p"), "username": "other", "password": "other"}),
                Ok(Some(basic("u", "p"))),
            ),
            (
                "username and password",
                json!({"username": "u", "password": "p"}),
                Ok(Some(basic("u", "p"))),
            ),
            (
                "empty auth falls back to the fields",
                json!({"auth": "", "username": "u", "password": "p"}),
                Ok(Some(basic("u", "p"))),
            ),
            (
                "identity token",
                json!({"auth": b64("u:p"), "identitytoken": "id-s3cr3t"}),
                Ok(Some(Secret::IdentityToken("id-s3cr3t".into()))),
            ),
            (
                "registry token",
                json!({"identitytoken": "id-s3cr3t", "registrytoken": "reg-s3cr3t"}),
                Ok(Some(Secret::RegistryToken("reg-s3cr3t".into()))),
            ),
            (
                "unknown fields are ignored",
                json!({"email": "a@b", "serveraddress": "x"}),
                Ok(None),
            ),
            ("empty entry", json!({}), Ok(None)),
            ("null entry", Value::Null, Ok(None)),
            (
                "not base64",
                json!({"auth": "s3cr3t!!"}),
                Err("auths[\"ghcr.io\"].auth is not valid base64"),
            ),
            (
                "no colon",
                json!({"auth": b64("s3cr3t")}),
                Err("auths[\"ghcr.io\"].auth does not decode to"),
            ),
            (
                "empty username",
                json!({"auth": b64(":s3cr3t")}),
                Err("auths[\"ghcr.io\"].auth decodes to an empty username"),
            ),
            (
                "not utf-8",
                json!({"auth": base64::engine::general_purpose::STANDARD.encode([0xff, b':', b'x'])}),
                Err("does not decode to UTF-8"),
            ),
            (
                "password not a string",
                json!({"username": "u", "password": 12345}),
                Err("auths[\"ghcr.io\"].password must be a string"),
            ),
            (
                "entry not an object",
                json!("s3cr3t"),
                Err("auths[\"ghcr.io\"] must be an object"),
            ),
        ];
        for (name, value, expected) in rows {
            let mut fx = Fixture::new();
            let path = fx.file("config.json", &entry(value));
            fx.var("DOCKER_CONFIG", &fx.text(""));
            match (fx.lookup("ghcr.io", "acme/web"), expected) {
                (Ok(found), Ok(expected)) => {
                    assert_eq!(found.map(|c| c.secret), expected, "{name}");
                }
                (Err(err), Err(message)) => {
                    let text = err.to_string();
                    assert!(text.contains(message), "{name}: {text}");
                    assert!(text.contains(path.to_str().unwrap()), "{name}: {text}");
                    assert!(
                        !text.contains(NEEDLE) && !text.contains("12345"),
                        "{name}: {text}"
                    );
                }
                (got, expected) => panic!("{name}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn host_key_spellings() {
        let rows = [
            ("ghcr.io", "ghcr.io", true),
            ("https://ghcr.io", "ghcr.io", true),
            ("http://ghcr.io/", "ghcr.io", true),
            ("ghcr.io/v2/", "ghcr.io", true),
            ("HTTPS://GHCR.IO/v2", "ghcr.io", true),
            ("ghcr.io", "GHCR.io", true),
            ("ghcr.io", "ghcr.io:443", false),
            ("ghcr.io.evil.example", "ghcr.io", false),
            ("https://index.docker.io/v1/", "docker.io", true),
            ("index.docker.io", "docker.io", true),
            ("registry-1.docker.io", "docker.io", true),
            ("docker.io", "docker.io", true),
            ("https://index.docker.io/v1/", "index.docker.io", true),
            ("docker.io", "registry-1.docker.io", true),
            ("localhost:5000", "localhost:5000", true),
            ("http://localhost:5000/v2/", "localhost:5000", true),
            ("localhost:5000", "localhost", false),
            ("127.0.0.1:5000", "127.0.0.1:5000", true),
            ("http://127.0.0.1:5000", "127.0.0.1:5000", true),
        ];
        for (key, host, matches) in rows {
            let mut fx = Fixture::new();
            fx.var("DOCKER_AUTH_CONFIG", &auths(key, "u"));
            let found = fx.lookup(host, "library/nginx").unwrap();
            assert_eq!(found.is_some(), matches, "key {key:?} host {host:?}");
            if let Some(found) = found {
                assert_eq!(
                    found.source,
                    format!("auths[{key:?}] in DOCKER_AUTH_CONFIG")
                );
            }
        }
    }

    #[test]
    fn several_spellings_of_one_host_resolve_deterministically() {
        let config = json!({"auths": {
            "docker.io": {"auth": b64("short:p")},
            "https://index.docker.io/v1/": {"auth": b64("canonical:p")},
            "registry-1.docker.io": {},
        }});
        let mut fx = Fixture::new();
        fx.var("DOCKER_AUTH_CONFIG", &config.to_string());
        let found = fx.lookup("docker.io", "library/nginx").unwrap().unwrap();
        assert_eq!(found.secret, basic("canonical", "p"));

        // An empty canonical entry does not hide a usable alias.
        let config = json!({"auths": {
            "https://index.docker.io/v1/": {},
            "index.docker.io": {"auth": b64("alias:p")},
        }});
        fx.var("DOCKER_AUTH_CONFIG", &config.to_string());
        let found = fx.lookup("docker.io", "library/nginx").unwrap().unwrap();
        assert_eq!(found.secret, basic("alias", "p"));
    }

    #[test]
    fn podman_per_repository_keys() {
        let config = json!({"auths": {
            "ghcr.io": {"auth": b64("host:p")},
            "ghcr.io/acme": {"auth": b64("namespace:p")},
            "ghcr.io/acme/web": {"auth": b64("repository:p")},
            "ghcr.io/acme/empty": {},
            "docker.io/library/nginx": {"auth": b64("nginx:p")},
        }});
        let rows = [
            ("ghcr.io", "acme/web", Some("repository")),
            ("ghcr.io", "/acme/web/", Some("repository")),
            ("ghcr.io", "acme/web/sub", Some("repository")),
            // Prefixes count on `/` boundaries only.
            ("ghcr.io", "acme/webhooks", Some("namespace")),
            ("ghcr.io", "acme/api", Some("namespace")),
            ("ghcr.io", "acme/empty", Some("namespace")),
            ("ghcr.io", "acme", Some("namespace")),
            ("ghcr.io", "acmecorp/web", Some("host")),
            ("ghcr.io", "", Some("host")),
            ("docker.io", "library/nginx", Some("nginx")),
            ("docker.io", "library/redis", None),
        ];
        let mut fx = Fixture::new();
        let path = fx.file("run/containers/auth.json", &config.to_string());
        fx.var("XDG_RUNTIME_DIR", &fx.text("run"));
        for (host, repository, expected) in rows {
            let found = fx.lookup(host, repository).unwrap();
            let username = found.as_ref().map(|c| match &c.secret {
                Secret::Basic { username, .. } => username.as_str(),
                other => panic!("{other:?}"),
            });
            assert_eq!(username, expected, "{host} {repository}");
        }
        let found = fx.lookup("ghcr.io", "acme/web").unwrap().unwrap();
        assert_eq!(
            found.source,
            format!("auths[\"ghcr.io/acme/web\"] in {}", path.display())
        );
    }

    #[test]
    fn helpers_and_their_precedence() {
        let auth = json!({"auth": b64(&format!("file:{PASSWORD}"))});
        // (name, config, helpers installed, host, expected username or "none")
        let rows: Vec<(&str, Value, Helpers, &str, &str)> = vec![
            (
                "credHelpers beats credsStore and auths",
                json!({"credHelpers": {"ghcr.io": "a"}, "credsStore": "b", "auths": {"ghcr.io": auth}}),
                &[("a", ECHO_HELPER), ("b", TOKEN_HELPER)],
                "ghcr.io",
                "ghcr.io",
            ),
            (
                "credsStore beats auths",
                json!({"credsStore": "a", "auths": {"ghcr.io": auth}}),
                &[("a", ECHO_HELPER)],
                "ghcr.io",
                "ghcr.io",
            ),
            (
                "credsStore covers hosts not in credHelpers",
                json!({"credHelpers": {"quay.io": "b"}, "credsStore": "a"}),
                &[("a", ECHO_HELPER), ("b", NOT_FOUND_HELPER)],
                "ghcr.io",
                "ghcr.io",
            ),
            (
                "credsStore not found falls back to auths",
                json!({"credsStore": "a", "auths": {"ghcr.io": auth}}),
                &[("a", NOT_FOUND_HELPER)],
                "ghcr.io",
                "file",
            ),
            (
                "credHelpers not found does not fall back within the config",
                json!({"credHelpers": {"ghcr.io": "a"}, "auths": {"ghcr.io": auth}}),
                &[("a", NOT_FOUND_HELPER)],
                "ghcr.io",
                "none",
            ),
            (
                "empty helper name means no helper",
                json!({"credHelpers": {"ghcr.io": ""}, "credsStore": "", "auths": {"ghcr.io": auth}}),
                &[],
                "ghcr.io",
                "file",
            ),
            (
                "Docker Hub is asked for by its v1 URL",
                json!({"credHelpers": {"https://index.docker.io/v1/": "a"}}),
                &[("a", ECHO_HELPER)],
                "docker.io",
                "https://index.docker.io/v1/",
            ),
            (
                "credHelpers keys are normalised",
                json!({"credHelpers": {"https://localhost:5000/v2/": "a"}}),
                &[("a", ECHO_HELPER)],
                "localhost:5000",
                "localhost:5000",
            ),
        ];
        for (name, config, helpers, host, expected) in rows {
            let mut fx = Fixture::new();
            for (helper, body) in helpers {
                fx.helper(helper, body);
            }
            fx.var("DOCKER_AUTH_CONFIG", &config.to_string());
            let found = fx
                .lookup(host, "acme/web")
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let username = match found.as_ref().map(|c| &c.secret) {
                None => "none",
                Some(Secret::Basic { username, .. }) => username,
                Some(other) => panic!("{name}: {other:?}"),
            };
            assert_eq!(username, expected, "{name}");
        }
    }

    #[test]
    fn helper_answers() {
        let mut fx = Fixture::new();
        fx.helper("echo", ECHO_HELPER);
        fx.helper("token", TOKEN_HELPER);
        fx.var(
            "DOCKER_AUTH_CONFIG",
            &json!({"credHelpers": {"ghcr.io": "echo", "quay.io": "token"}}).to_string(),
        );
        let found = fx.lookup("ghcr.io", "").unwrap().unwrap();
        assert_eq!(found.secret, basic("ghcr.io", "helper-s3cr3t"));
        assert_eq!(
            found.source,
            "credential helper docker-credential-echo (credHelpers[\"ghcr.io\"] in DOCKER_AUTH_CONFIG)"
        );
        let found = fx.lookup("quay.io", "").unwrap().unwrap();
        assert_eq!(found.secret, Secret::IdentityToken("tok-s3cr3t".into()));
    }

    #[test]
    fn a_not_found_helper_moves_on_to_the_next_config() {
        let mut fx = Fixture::new();
        fx.helper("none", NOT_FOUND_HELPER);
        fx.var(
            "DOCKER_AUTH_CONFIG",
            &json!({"credHelpers": {"ghcr.io": "none"}}).to_string(),
        );
        fx.file("home/.docker/config.json", &auths("ghcr.io", "home"));
        fx.var("HOME", &fx.text("home"));
        let found = fx.lookup("ghcr.io", "").unwrap().unwrap();
        assert_eq!(found.secret, basic("home", PASSWORD));
    }

    #[test]
    fn helper_failures() {
        let long = "i=0; s=; while [ $i -lt 300 ]; do s=\"${s}x\"; i=$((i+1)); done; echo \"$s\" >&2; exit 3";
        let rows: Vec<(&str, Option<&str>, Check)> = vec![
            (
                "non-zero exit",
                Some(FAILING_HELPER),
                Box::new(|e| {
                    e == &CredentialError::HelperFailed {
                        helper: "docker-credential-h".into(),
                        status: "exit status 2".into(),
                        stderr: "keychain locked for ghcr.io".into(),
                    }
                }),
            ),
            (
                "long stderr is truncated",
                Some(long),
                Box::new(|e| match e {
                    CredentialError::HelperFailed { stderr, .. } => {
                        stderr.chars().count() == 201 && stderr.ends_with("x…")
                    }
                    _ => false,
                }),
            ),
            (
                "silent failure",
                Some("exit 4"),
                Box::new(|e| {
                    e.to_string()
                        .contains("exit status 4): no message on stderr")
                }),
            ),
            (
                "garbage on stdout",
                Some("read -r url\necho \"not json s3cr3t\""),
                Box::new(
                    |e| matches!(e, CredentialError::HelperOutput { reason, .. } if reason.contains("line 1 column 2")),
                ),
            ),
            (
                "wrong JSON shape",
                Some("read -r url\necho '{\"Username\": 1, \"Secret\": \"s3cr3t\"}'"),
                Box::new(|e| e.to_string().contains("\"Username\" is not a string")),
            ),
            (
                "not installed",
                None,
                Box::new(|e| {
                    e.to_string()
                        == "credential helper docker-credential-h (credHelpers[\"ghcr.io\"] in DOCKER_AUTH_CONFIG) is not an executable on PATH"
                }),
            ),
            (
                "hangs",
                Some("while :; do :; done"),
                Box::new(|e| matches!(e, CredentialError::HelperTimeout { .. })),
            ),
        ];
        for (name, body, check) in rows {
            let mut fx = Fixture::new();
            match body {
                Some(body) => fx.helper("h", body),
                None => fx.var("PATH", &fx.text("bin")),
            }
            fx.var(
                "DOCKER_AUTH_CONFIG",
                &json!({"credHelpers": {"ghcr.io": "h"}}).to_string(),
            );
            // Only the hanging helper gets a short limit, so a loaded CI
            // machine cannot turn the other rows into timeouts.
            let timeout = if name == "hangs" {
                Duration::from_millis(300)
            } else {
                HELPER_TIMEOUT
            };
            let store = fx.store().with_helper_timeout(timeout);
            let err = fx.lookup_with(&store, "ghcr.io", "").unwrap_err();
            assert!(check(&err), "{name}: {err:?}");
            assert!(!err.to_string().contains(NEEDLE), "{name}: {err}");
            assert!(!format!("{err:?}").contains(NEEDLE), "{name}: {err:?}");
        }
    }

    #[test]
    fn helpers_are_found_only_on_the_given_path() {
        let mut fx = Fixture::new();
        fx.helper("h", ECHO_HELPER);
        fx.var(
            "DOCKER_AUTH_CONFIG",
            &json!({"credsStore": "h"}).to_string(),
        );
        let bin = fx.text("bin");
        for (path, found) in [
            (bin.clone(), true),
            (format!("/nonexistent:{bin}"), true),
            (String::new(), false),
            // Relative entries resolve against the working directory: refused.
            ("bin".to_string(), false),
        ] {
            fx.var("PATH", &path);
            let result = fx.lookup("ghcr.io", "");
            assert_eq!(result.is_ok(), found, "PATH={path:?}: {result:?}");
        }
        fx.env.vars.remove("PATH");
        assert!(matches!(
            fx.lookup("ghcr.io", ""),
            Err(CredentialError::HelperNotFound { .. })
        ));

        // A file that is not executable is not a helper.
        use std::os::unix::fs::PermissionsExt;
        fx.var("PATH", &bin);
        let script = fx.path("bin/docker-credential-h");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(fx.lookup("ghcr.io", "").is_err());
    }

    #[test]
    fn helper_names_with_path_separators_are_refused() {
        for config in [
            json!({"credsStore": "../../tmp/x"}),
            json!({"credHelpers": {"ghcr.io": "a/b"}}),
        ] {
            let mut fx = Fixture::new();
            fx.var("DOCKER_AUTH_CONFIG", &config.to_string());
            let err = fx.lookup("ghcr.io", "").unwrap_err();
            assert!(err.to_string().contains("path separator"), "{err}");
        }
    }

    #[test]
    fn malformed_configs_are_errors_naming_the_source() {
        let rows = [
            (
                r#"{"auths": {"ghcr.io": {"auth": "czNjcjN0"}"#,
                "EOF while parsing an object at line 1 column 42",
            ),
            (
                "{\"auths\": {\n  \"ghcr.io\": {\"password\": \"s3cr3t\",}}}",
                "trailing comma at line 2 column 36",
            ),
            ("s3cr3t", "expected value at line 1 column 1"),
            ("[\"s3cr3t\"]", "the document must be a JSON object"),
            (r#"{"auths": ["s3cr3t"]}"#, "auths must be an object"),
            (
                r#"{"credsStore": ["s3cr3t"]}"#,
                "credsStore must be a string",
            ),
        ];
        for (contents, message) in rows {
            let mut fx = Fixture::new();
            let path = fx.file("home/.docker/config.json", contents);
            fx.var("HOME", &fx.text("home"));
            let err = Store::load(&fx.env).unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with(path.to_str().unwrap()), "{text}");
            assert!(text.contains(message), "{text}");
            assert!(
                !text.contains(NEEDLE) && !format!("{err:?}").contains(NEEDLE),
                "{text}"
            );

            fx.var("DOCKER_AUTH_CONFIG", contents);
            let text = Store::load(&fx.env).unwrap_err().to_string();
            assert!(text.starts_with("DOCKER_AUTH_CONFIG"), "{text}");
        }
    }

    #[test]
    fn missing_and_empty_sources_are_fine() {
        let mut fx = Fixture::new();
        assert_eq!(fx.lookup("ghcr.io", "acme/web").unwrap(), None);
        assert!(fx.store().sources_for("ghcr.io").is_empty());

        for name in [
            "HOME",
            "DOCKER_CONFIG",
            "REGISTRY_AUTH_FILE",
            "XDG_RUNTIME_DIR",
        ] {
            fx.var(name, &fx.text(name));
        }
        fx.var("DOCKER_AUTH_CONFIG", "  ");
        assert_eq!(fx.lookup("ghcr.io", "acme/web").unwrap(), None);
        assert!(fx.store().sources_for("ghcr.io").is_empty());

        // Empty files are empty configs, as in docker.
        fx.file("REGISTRY_AUTH_FILE", "");
        fx.file("DOCKER_CONFIG/config.json", "\n");
        assert_eq!(fx.lookup("ghcr.io", "acme/web").unwrap(), None);
    }

    #[test]
    fn a_missing_docker_config_flag_file_is_an_error() {
        let mut fx = Fixture::new();
        fx.env.docker_config_flag = Some(fx.path("typo.json"));
        let err = Store::load(&fx.env).unwrap_err();
        assert!(
            matches!(&err, CredentialError::Read { path, .. } if path.ends_with("typo.json")),
            "{err}"
        );
    }

    #[test]
    fn unreadable_files_are_errors() {
        let mut fx = Fixture::new();
        std::fs::create_dir_all(fx.path("raf")).unwrap();
        fx.var("REGISTRY_AUTH_FILE", &fx.text("raf"));
        let err = Store::load(&fx.env).unwrap_err();
        assert!(
            err.to_string().starts_with("cannot read credentials file"),
            "{err}"
        );
    }

    #[test]
    fn store_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Store>();
        shared::<CredentialError>();
    }

    #[test]
    fn secrets_never_appear_in_debug_or_errors() {
        let secrets = [
            basic("robot", PASSWORD),
            Secret::IdentityToken("id-s3cr3t".into()),
            Secret::RegistryToken("reg-s3cr3t".into()),
        ];
        for secret in &secrets {
            for text in [format!("{secret:?}"), format!("{secret:#?}")] {
                assert!(!text.contains(NEEDLE), "{text}");
            }
            let credential = Credential {
                secret: secret.clone(),
                source: "test".into(),
            };
            assert!(!format!("{credential:?}").contains(NEEDLE));
        }
        assert_eq!(
            format!("{:?}", secrets[0]),
            "Basic { username: \"robot\", password: <redacted> }"
        );
        assert_eq!(format!("{:?}", secrets[1]), "IdentityToken(<redacted>)");
        assert_eq!(format!("{:?}", secrets[2]), "RegistryToken(<redacted>)");

        // Env and Store hold DOCKER_AUTH_CONFIG and decoded passwords.
        let mut fx = Fixture::new();
        fx.var(
            "DOCKER_AUTH_CONFIG",
            &json!({"auths": {"ghcr.io": {"username": "u", "password": PASSWORD}}}).to_string(),
        );
        fx.var("AWS_SECRET_ACCESS_KEY", "aws-s3cr3t");
        fx.var("HOME", "/home/me");
        let env_debug = format!("{:?}", fx.env);
        assert!(
            !env_debug.contains(NEEDLE) && env_debug.contains("/home/me"),
            "{env_debug}"
        );
        let store_debug = format!("{:?}", fx.store());
        assert!(!store_debug.contains(NEEDLE), "{store_debug}");
        assert!(!fx.store().sources_for("ghcr.io").concat().contains(NEEDLE));

        // Every error variant, built around the needle wherever a field could
        // plausibly pick one up, shows only what it is given.
        let errors = [
            CredentialError::Read {
                path: "/x".into(),
                reason: "denied".into(),
            },
            CredentialError::Json {
                origin: "/x".into(),
                line: 1,
                column: 2,
                reason: "expected value".into(),
            },
            CredentialError::Invalid {
                origin: "/x".into(),
                field: "auths[\"a\"].auth".into(),
                reason: "is not valid base64".into(),
            },
            CredentialError::HelperNotFound {
                helper: "docker-credential-x".into(),
                configured_by: "credsStore in /x".into(),
            },
            CredentialError::HelperStart {
                helper: "docker-credential-x".into(),
                reason: "denied".into(),
            },
            CredentialError::HelperFailed {
                helper: "docker-credential-x".into(),
                status: "exit status 1".into(),
                stderr: "boom".into(),
            },
            CredentialError::HelperTimeout {
                helper: "docker-credential-x".into(),
                timeout: HELPER_TIMEOUT,
            },
            CredentialError::HelperOutput {
                helper: "docker-credential-x".into(),
                reason: "stdout is not JSON".into(),
            },
        ];
        for err in errors {
            assert!(!err.to_string().contains(NEEDLE) && !format!("{err:?}").contains(NEEDLE));
        }
    }

    #[test]
    fn keys_with_userinfo_are_redacted_in_messages() {
        assert_eq!(
            display_key("https://u:s3cr3t@ghcr.io/v2/"),
            "https://***@ghcr.io/v2/"
        );
        assert_eq!(display_key("u:s3cr3t@ghcr.io"), "***@ghcr.io");
        assert_eq!(display_key("ghcr.io/a@b"), "ghcr.io/a@b");
        let mut fx = Fixture::new();
        fx.var(
            "DOCKER_AUTH_CONFIG",
            &json!({"auths": {"u:s3cr3t@ghcr.io": {"auth": "!"}}}).to_string(),
        );
        let store = Store::load(&fx.env).unwrap();
        let err = store
            .lookup("u:s3cr3t@ghcr.io", "")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("***@ghcr.io") && !err.contains(NEEDLE),
            "{err}"
        );
        let warnings = store.warnings().concat();
        assert!(
            warnings.contains("***@ghcr.io") && !warnings.contains(NEEDLE),
            "{warnings}"
        );
    }

    /// Issue 15: one malformed entry for a registry the run does not use
    /// made the whole run a usage error (exit 2). It is a warning, and an
    /// error only for the registry it is for.
    #[test]
    fn a_malformed_entry_fails_only_its_own_registry() {
        let mut fx = Fixture::new();
        fx.var(
            "DOCKER_AUTH_CONFIG",
            &json!({
                "auths": {"broken.example": "s3cr3t", "ghcr.io": {"auth": b64("u:p")}},
                "credHelpers": {"other.example": 1}
            })
            .to_string(),
        );
        let store = Store::load(&fx.env).unwrap();
        assert_eq!(
            store
                .lookup("ghcr.io", "acme/web")
                .unwrap()
                .map(|c| c.secret),
            Some(Secret::Basic {
                username: "u".into(),
                password: "p".into()
            })
        );
        let err = store.lookup("broken.example", "x").unwrap_err().to_string();
        assert!(
            err.contains("auths[\"broken.example\"] must be an object"),
            "{err}"
        );
        let err = store.lookup("other.example", "x").unwrap_err().to_string();
        assert!(
            err.contains("credHelpers[\"other.example\"] must be a string"),
            "{err}"
        );
        let warnings = store.warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].ends_with("; ignored: it fails only the registry it is for"),
            "{warnings:?}"
        );
        assert!(!warnings.concat().contains(NEEDLE));
    }
}
