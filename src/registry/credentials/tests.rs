use super::keys::display_key;
use super::*;
use base64::Engine as _;
use serde_json::{Value, json};
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

    fn lookup(&self, host: &str, repository: &str) -> Result<Option<Credential>, CredentialError> {
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
const FAILING_HELPER: &str =
    "read -r url\necho \"leaked-s3cr3t on stdout\"\necho \"keychain locked for $url\" >&2\nexit 2";

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
    let long =
        "i=0; s=; while [ $i -lt 300 ]; do s=\"${s}x\"; i=$((i+1)); done; echo \"$s\" >&2; exit 3";
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
