//! `image-update run` and `snapshot` against a real registry: Debian's
//! `docker-registry` (CNCF distribution 2.8), started per test on loopback
//! with images pushed through the OCI API, anonymous, behind htpasswd, behind
//! token auth and behind TLS with a throwaway CA.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{RegistryOptions, Seed, Seeded, TokenOptions};

fn seed() -> Seed {
    Seed::new()
        .image("acme/web", "1.0.0", "2024-01-01T00:00:00Z")
        .image("acme/web", "1.1.0", "2024-02-01T00:00:00Z")
        .image("acme/web", "2.0.0", "2024-03-01T00:00:00Z")
        .image("acme/api", "v3.1.0", "2024-01-15T00:00:00Z")
        .index(
            "acme/multi",
            "1.4.0",
            &[
                ("linux/amd64", "2024-04-01T00:00:00Z"),
                ("linux/arm64", "2024-04-01T00:00:00Z"),
            ],
        )
}

/// A tree whose policies point at `host`: web (semver 1.x, digest reflected),
/// api (semver ^3) and multi (semver >=1, digest reflected), with markers.
fn tree(dir: &Path, host: &str, insecure: bool) {
    let mut docs = Vec::new();
    for (name, range, digest) in [
        ("web", "1.x", true),
        ("api", "^3", false),
        ("multi", ">=1.0.0", true),
    ] {
        docs.push(format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  image: {host}/acme/{name}\n  insecure: {insecure}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: {name}, namespace: apps}}\nspec:\n  imageRepositoryRef: {{name: {name}}}\n  policy: {{semver: {{range: '{range}'}}}}\n  digestReflectionPolicy: {}\n",
            if digest { "Always\n  interval: 5m" } else { "Never" }
        ));
    }
    std::fs::write(dir.join("policies.yaml"), docs.join("---\n")).unwrap();
    std::fs::write(
        dir.join("deploy.yaml"),
        format!(
            "web: {host}/acme/web:1.0.0 # {{\"$imagepolicy\": \"apps:web\"}}\napi: v3.0.0 # {{\"$imagepolicy\": \"apps:api:tag\"}}\nmulti: sha256:0 # {{\"$imagepolicy\": \"apps:multi:digest\"}}\n"
        ),
    )
    .unwrap();
}

fn image_update(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (Output, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_image-update"))
        .args(args)
        .env("HOME", dir)
        // No registry cache: every run starts cold, whatever the user's ~/.cache holds.
        .env("XDG_CACHE_HOME", "/dev/null")
        .env_remove("DOCKER_CONFIG")
        .env_remove("DOCKER_AUTH_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, report)
}

fn run(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> (Output, serde_json::Value) {
    let mut args = vec![
        "run",
        dir.to_str().unwrap(),
        "--dry-run",
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    image_update(dir, &args, env)
}

fn policy<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["policies"]
        .as_array()
        .unwrap_or_else(|| panic!("no report: {report}"))
        .iter()
        .find(|p| p["policy"] == name)
        .unwrap()
}

/// Every policy resolved as the seeded registry says it should.
fn assert_resolved(report: &serde_json::Value, seeded: &Seeded) {
    assert_eq!(policy(report, "apps:web")["tag"], "1.1.0", "{report}");
    assert_eq!(
        policy(report, "apps:web")["digest"],
        seeded.digest("acme/web", "1.1.0"),
        "{report}"
    );
    assert_eq!(policy(report, "apps:api")["tag"], "v3.1.0", "{report}");
    assert_eq!(
        policy(report, "apps:multi")["digest"],
        seeded.digest("acme/multi", "1.4.0"),
        "{report}"
    );
    assert_eq!(report["changes"].as_array().unwrap().len(), 3, "{report}");
}

#[test]
fn anonymous_registry_and_a_snapshot_that_replays_it() {
    let (registry, seeded) = seed().start(RegistryOptions::new());
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &registry.host(), true);
    let (out, report) = run(dir.path(), &[], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{report}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_resolved(&report, &seeded);

    let snapshot = dir.path().join("snapshot.json");
    let (out, _) = image_update(
        dir.path(),
        &[
            "snapshot",
            dir.path().to_str().unwrap(),
            "-o",
            snapshot.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&snapshot).unwrap()).unwrap();
    let web = &recorded["repositories"][format!("{}/acme/web", registry.host())];
    let mut tags: Vec<&str> = web["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    tags.sort();
    assert_eq!(tags, ["1.0.0", "1.1.0", "2.0.0"]);
    assert_eq!(web["digests"]["1.1.0"], seeded.digest("acme/web", "1.1.0"));

    // The registry is gone; the snapshot answers the same.
    drop(registry);
    let (out, replayed) = run(
        dir.path(),
        &["--registry-snapshot", snapshot.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{replayed}");
    assert_eq!(replayed["policies"], report["policies"]);
    assert_eq!(replayed["changes"], report["changes"]);
}

#[test]
fn htpasswd_basic_auth_with_a_docker_config() {
    let (registry, seeded) =
        seed().start(RegistryOptions::new().htpasswd(&[("robot", "s3cr3t-pw")]));
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &registry.host(), true);

    let (out, report) = run(dir.path(), &[], &[]);
    assert_eq!(out.status.code(), Some(1));
    let error = policy(&report, "apps:web")["error"].as_str().unwrap();
    assert!(
        error.contains("401") && error.contains("no credentials were found"),
        "{error}"
    );

    let config = dir.path().join("config.json");
    let auth = "cm9ib3Q6czNjcjN0LXB3"; // robot:s3cr3t-pw
    std::fs::write(
        &config,
        format!(
            r#"{{"auths": {{"{}": {{"auth": "{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let (out, report) = run(
        dir.path(),
        &["--docker-config", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_resolved(&report, &seeded);

    std::fs::write(
        &config,
        format!(
            r#"{{"auths": {{"{}": {{"username": "robot", "password": "wrong-pw"}}}}}}"#,
            registry.host()
        ),
    )
    .unwrap();
    let (out, report) = run(
        dir.path(),
        &["--docker-config", config.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let error = policy(&report, "apps:web")["error"].as_str().unwrap();
    assert!(
        error.contains("credentials tried") && error.contains("config.json"),
        "{error}"
    );
    let printed =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !printed.contains("wrong-pw") && !printed.contains("s3cr3t-pw") && !printed.contains(auth)
    );
}

#[test]
fn token_auth_fetches_one_token_through_a_credential_helper() {
    let options = RegistryOptions::new().token(TokenOptions::new().credentials("ci", "h3lper-pw"));
    let (registry, seeded) = seed().start(options);
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &registry.host(), true);
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-test");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"ci\",\"Secret\":\"h3lper-pw\"}' \"$server\"\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        format!(r#"{{"credHelpers": {{"{}": "test"}}}}"#, registry.host()),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (out, report) = run(
        dir.path(),
        &["--docker-config", config.to_str().unwrap()],
        &[("PATH", &path)],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_resolved(&report, &seeded);
    let issuer = registry.token_issuer().unwrap();
    assert_eq!(issuer.issued_count(), 1, "{:?}", issuer.requests());
    assert!(issuer.requests().iter().all(|r| r.had_authorization));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("h3lper-pw"));

    // With a cache that knows the tree, the next run asks its repositories
    // ahead: still one token, and one listing each.
    let cache = dir.path().join("cache");
    let host = registry.host();
    let args = [
        "--docker-config",
        config.to_str().unwrap(),
        "--insecure-registry",
        &host,
        "--cache-dir",
        cache.to_str().unwrap(),
    ];
    for round in ["records the tree", "asks ahead"] {
        let issued = issuer.issued_count();
        let (out, report) = run(dir.path(), &args, &[("PATH", &path)]);
        assert_eq!(out.status.code(), Some(0), "{round}: {report}");
        assert_resolved(&report, &seeded);
        assert_eq!(issuer.issued_count() - issued, 1, "{round}");
        let (lists, _) = support::reported(&report, "list");
        assert_eq!(lists, 3, "{round}: {report}");
    }
    // A repository the last run did not list (here: taken out of its
    // record) is asked after the tree is read, with a token of its own.
    let record = image_update::registry::cache::Cache::new(&cache);
    let tree = dir.path().canonicalize().unwrap();
    let tree = tree.to_str().unwrap();
    let mut listed = record.listed(tree).unwrap();
    assert_eq!(listed.len(), 3);
    listed.retain(|l| !l.path.ends_with("/api"));
    record.put_listed(tree, &listed);
    let issued = issuer.issued_count();
    let (out, report) = run(dir.path(), &args, &[("PATH", &path)]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_resolved(&report, &seeded);
    assert_eq!(issuer.issued_count() - issued, 2);
}

#[test]
fn token_auth_with_an_identity_token() {
    let options = RegistryOptions::new().token(TokenOptions::new().credentials("ci", "pw"));
    let (registry, seeded) = seed().start(options);
    let issuer = registry.token_issuer().unwrap();
    // Obtain a refresh token the way `docker login` would, then forget the password.
    let answer = support::http::get(
        &format!(
            "{}?service={}&offline_token=true&client_id=test",
            issuer.realm(),
            issuer.service()
        ),
        &[("Authorization", &support::http::basic_auth("ci", "pw"))],
    );
    let refresh = answer.json()["refresh_token"].as_str().unwrap().to_string();
    issuer.reset();
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &registry.host(), true);
    let auth_config = format!(
        r#"{{"auths": {{"{}": {{"identitytoken": "{refresh}"}}}}}}"#,
        registry.host()
    );
    let (out, report) = run(dir.path(), &[], &[("DOCKER_AUTH_CONFIG", &auth_config)]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_resolved(&report, &seeded);
    let requests = issuer.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].grant_type.as_deref(), Some("refresh_token"));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&refresh));
}

#[test]
fn tls_with_a_private_ca() {
    let (registry, seeded) = seed().start(RegistryOptions::new().tls(true));
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &registry.host(), false);

    let (out, report) = run(dir.path(), &["--retries", "0"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let error = policy(&report, "apps:web")["error"].as_str().unwrap();
    assert!(
        error.contains("TLS") && error.contains("--ca-file"),
        "{error}"
    );

    let ca = registry
        .ca_pem_path()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let (out, report) = run(dir.path(), &["--ca-file", &ca], &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_resolved(&report, &seeded);
}

#[test]
fn plain_http_needs_the_registry_named_insecure() {
    let (registry, seeded) = seed().start(RegistryOptions::new());
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path(), &registry.host(), false);
    let (out, report) = run(dir.path(), &["--retries", "0"], &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "HTTPS to a plain-HTTP registry must fail: {report}"
    );
    let (out, report) = run(dir.path(), &["--insecure-registry", &registry.host()], &[]);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_resolved(&report, &seeded);
}

#[test]
fn created_times_and_platforms_come_from_configs_and_indexes() {
    use image_update::image::Repository;
    use image_update::registry::credentials::{Env, Store};
    use image_update::registry::live::{Live, Options};
    use image_update::registry::{Registry, TagRef};

    let options = RegistryOptions::new().token(TokenOptions::new().credentials("ci", "pw"));
    let (registry, _) = seed().start(options);
    let env = Env {
        docker_config_flag: None,
        vars: [(
            "DOCKER_AUTH_CONFIG".to_string(),
            format!(
                r#"{{"auths": {{"{}": {{"username": "ci", "password": "pw"}}}}}}"#,
                registry.host()
            ),
        )]
        .into(),
    };
    let live = Live::new(Options::default(), Store::load(&env).unwrap()).unwrap();
    live.mark_insecure(&[registry.host()].into());
    let tag = |repo: &str, tag: &str| TagRef {
        repository: Repository::parse(&format!("{}/{repo}", registry.host())).unwrap(),
        tag: tag.to_string(),
    };
    let tags = [
        tag("acme/web", "1.0.0"),
        tag("acme/web", "2.0.0"),
        tag("acme/multi", "1.4.0"),
        tag("acme/web", "9.9.9"),
    ];
    let created = live.created(&tags, "linux/arm64");
    assert_eq!(created[0].as_ref().unwrap(), "2024-01-01T00:00:00Z");
    assert_eq!(created[1].as_ref().unwrap(), "2024-03-01T00:00:00Z");
    assert_eq!(created[2].as_ref().unwrap(), "2024-04-01T00:00:00Z");
    assert!(
        created[3].as_ref().unwrap_err().message.contains("404"),
        "{:?}",
        created[3]
    );
    let missing = live.created(&[tag("acme/multi", "1.4.0")], "linux/s390x");
    assert!(
        missing[0]
            .as_ref()
            .unwrap_err()
            .message
            .contains("linux/amd64, linux/arm64"),
        "{missing:?}"
    );
    let platforms = live.platforms(&tags[..3]);
    assert_eq!(platforms[0].as_ref().unwrap(), &["linux/amd64"]);
    assert_eq!(
        platforms[2].as_ref().unwrap(),
        &["linux/amd64", "linux/arm64"]
    );
    assert_eq!(live.tokens_fetched().values().sum::<usize>(), 1);
}
