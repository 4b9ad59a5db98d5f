//! The config files docker and podman write (config.json, auth.json,
//! `DOCKER_AUTH_CONFIG`): `auths`, `credHelpers` and `credsStore`, parsed by
//! hand into [`Config`] so that no error can quote a password, with malformed
//! entries kept per host rather than failing the whole file.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::keys::{Key, display_key, parse_key, prefer};
use super::{CredentialError, Secret};

/// One parsed config.json / auth.json / DOCKER_AUTH_CONFIG.
#[derive(Debug, Clone)]
pub(super) struct Config {
    /// The path, or "DOCKER_AUTH_CONFIG".
    pub(super) origin: String,
    /// Normalised host → helper; one per host (see `prefer`).
    pub(super) helpers: BTreeMap<String, HelperRef>,
    /// `credsStore`.
    pub(super) store: Option<String>,
    pub(super) auths: Vec<AuthEntry>,
    /// Entries (`auths`, `credHelpers`) that are malformed, by the host they
    /// are for: an error for that host only, a warning for every other.
    pub(super) broken: Vec<(String, CredentialError)>,
}

#[derive(Debug, Clone)]
pub(super) struct HelperRef {
    pub(super) key: String,
    pub(super) name: String,
}

#[derive(Debug, Clone)]
pub(super) struct AuthEntry {
    /// As written in the file, for messages.
    pub(super) key: String,
    pub(super) host: String,
    /// podman's `host/namespace[/repo]` keys.
    pub(super) namespace: Option<String>,
    /// `None` for an entry with nothing usable, such as the `{}` docker
    /// writes next to a credsStore login.
    pub(super) secret: Option<Secret>,
}

impl Config {
    pub(super) fn helper_origin(&self, helper: &HelperRef) -> String {
        format!(
            "credHelpers[{:?}] in {}",
            display_key(&helper.key),
            self.origin
        )
    }

    pub(super) fn store_origin(&self) -> String {
        format!("credsStore in {}", self.origin)
    }

    pub(super) fn auth_origin(&self, entry: &AuthEntry) -> String {
        format!("auths[{:?}] in {}", display_key(&entry.key), self.origin)
    }

    /// The usable `auths` entry for `host/repository`: the longest namespace
    /// that is a prefix of the repository on `/` boundaries, then the bare
    /// host. Several spellings of the same key (`docker.io` and
    /// `https://index.docker.io/v1/`) are resolved by `prefer`, so the answer
    /// does not depend on map order the way docker's does.
    pub(super) fn best_auth(&self, host: &str, repository: &str) -> Option<(&AuthEntry, &Secret)> {
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

// The config is parsed into `serde_json::Value` and interpreted by hand
// rather than derived: serde's data errors quote the offending value
// ("invalid type: string \"hunter2\""), and here the values are passwords.
// Parsing into `Value` can only fail with syntax errors, whose messages are
// fixed, and the shape errors below name the field, never its value. Unknown
// fields are ignored because config.json holds much else (proxies, formats).
pub(super) fn parse_config(origin: String, bytes: &[u8]) -> Result<Config, CredentialError> {
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
pub(super) fn object_field<'a>(
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
pub(super) fn string_field<'a>(
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
pub(super) fn auth_secret(
    entry: &Map<String, Value>,
) -> Result<Option<Secret>, (&'static str, &'static str)> {
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
pub(super) fn decode_auth(auth: &str) -> Result<(String, String), &'static str> {
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

/// serde_json's message without its position suffix, only for syntax and
/// end-of-input errors (a fixed list: "expected `,` or `}`", "EOF while
/// parsing a string", ...). Data errors could quote input, so they get a
/// generic reason; parsing into `Value` does not produce them anyway.
pub(super) fn json_reason(err: &serde_json::Error) -> String {
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

/// A helper name becomes part of a program name looked up on PATH; a path
/// separator would make the config choose an arbitrary program instead.
pub(super) fn check_helper_name(name: &str) -> Result<(), &'static str> {
    if name.contains(['/', '\\', '\0']) {
        Err("is not a helper name (it contains a path separator)")
    } else {
        Ok(())
    }
}

impl AuthEntry {
    /// Lower is better: longer namespaces first, then `prefer`.
    pub(super) fn rank(&self, host: &str) -> (std::cmp::Reverse<usize>, (u8, String)) {
        let depth = self.namespace.as_ref().map_or(0, |ns| ns.len() + 1);
        (std::cmp::Reverse(depth), prefer(&self.key, host))
    }
}
