//! Proves the registry test harness in `tests/support` works.
//!
//! Registry-facing tests of `image-update` rely on `support::Registry`,
//! `support::Seed` and `support::TokenIssuer` behaving like real registries do;
//! if the harness were wrong, those tests would test the harness instead of the
//! CLI. Each test here starts its own registry (own port and directories, so
//! they run in parallel) and checks it with the harness's plain HTTP client:
//! pushed tags are listed, digests match, htpasswd and token auth challenge
//! and accept as distribution does, identity tokens work, and TLS serves the
//! generated certificate.

mod support;

use support::http::{self, basic_auth, bearer, parse_challenge};
use support::push::{
    ACCEPT_MANIFESTS, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, Format, OCI_INDEX, OCI_MANIFEST,
};
use support::{Registry, RegistryOptions, Seed, TokenOptions};

const JAN: &str = "2024-01-15T10:00:00Z";
const FEB: &str = "2024-02-15T10:00:00Z";
const MAR: &str = "2024-03-15T10:00:00Z";

/// The `tags` of a tags/list response, sorted: distribution 2.8 lists tags in
/// directory order, not sorted.
fn sorted_tags(response: &http::Response) -> Vec<String> {
    let mut tags: Vec<String> = response.json()["tags"]
        .as_array()
        .expect("tags array")
        .iter()
        .map(|t| t.as_str().expect("tag string").to_string())
        .collect();
    tags.sort();
    tags
}

#[test]
fn anonymous_registry_lists_pushed_repositories_and_tags() {
    let (registry, _seeded) = Seed::new()
        .image("team/app", "1.0.0", JAN)
        .image("team/app", "1.1.0", FEB)
        .index(
            "team/multi",
            "2.0",
            &[("linux/amd64", MAR), ("linux/arm64/v8", MAR)],
        )
        .start(RegistryOptions::new());

    let catalog = http::get(&registry.url("/v2/_catalog"), &[]).expect_status(200, "catalog");
    assert_eq!(
        catalog.json()["repositories"],
        serde_json::json!(["team/app", "team/multi"])
    );
    let tags = http::get(&registry.url("/v2/team/app/tags/list"), &[]).expect_status(200, "tags");
    assert_eq!(tags.json()["name"], "team/app");
    assert_eq!(sorted_tags(&tags), ["1.0.0", "1.1.0"]);
    // Index children are pushed by digest, so only the index tag is listed.
    let tags = http::get(&registry.url("/v2/team/multi/tags/list"), &[]).expect_status(200, "tags");
    assert_eq!(sorted_tags(&tags), ["2.0"]);
}

#[test]
fn direct_push_to_plain_registry_and_head_digest() {
    let registry = Registry::start(RegistryOptions::new());
    assert!(registry.base_url().starts_with("http://127.0.0.1:"));
    let digest = registry.push_image("solo", "v1", JAN, "linux/amd64");
    let index = registry.push_index("solo", "v2", &[("linux/amd64", FEB), ("linux/arm/v7", FEB)]);

    let head = http::head(
        &registry.url("/v2/solo/manifests/v1"),
        &[("Accept", ACCEPT_MANIFESTS)],
    )
    .expect_status(200, "HEAD manifest");
    assert_eq!(head.header("Docker-Content-Digest"), Some(digest.as_str()));
    assert_eq!(head.header("Content-Type"), Some(OCI_MANIFEST));

    let head = http::head(
        &registry.url("/v2/solo/manifests/v2"),
        &[("Accept", ACCEPT_MANIFESTS)],
    )
    .expect_status(200, "HEAD index");
    assert_eq!(head.header("Docker-Content-Digest"), Some(index.as_str()));
    assert_eq!(head.header("Content-Type"), Some(OCI_INDEX));
}

#[test]
fn manifests_configs_and_index_children_have_the_pushed_digests() {
    let (registry, seeded) = Seed::new()
        .image("team/app", "1.0.0", JAN)
        .image_for("team/app", "arm-only", FEB, "linux/arm64/v8")
        .index(
            "team/multi",
            "2.0",
            &[("linux/amd64", FEB), ("linux/arm64/v8", MAR)],
        )
        .start(RegistryOptions::new());
    let accept = [("Accept", ACCEPT_MANIFESTS)];

    let digest = seeded.digest("team/app", "1.0.0");
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    let head = http::head(&registry.url("/v2/team/app/manifests/1.0.0"), &accept)
        .expect_status(200, "HEAD manifest");
    assert_eq!(head.header("Docker-Content-Digest"), Some(digest));

    // GET by tag returns the exact bytes pushed; the config has `created`
    // and the platform.
    let manifest = http::get(&registry.url("/v2/team/app/manifests/arm-only"), &accept)
        .expect_status(200, "GET manifest");
    assert_eq!(
        support::digest_of(&manifest.body),
        seeded.digest("team/app", "arm-only")
    );
    let config_digest = manifest.json()["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let config = http::get(
        &registry.url(&format!("/v2/team/app/blobs/{config_digest}")),
        &[],
    )
    .expect_status(200, "GET config blob");
    assert_eq!(support::digest_of(&config.body), config_digest);
    let config = config.json();
    assert_eq!(config["created"], FEB);
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["variant"], "v8");

    // The index lists each platform manifest, and each resolves by digest.
    let index = http::get(&registry.url("/v2/team/multi/manifests/2.0"), &accept)
        .expect_status(200, "GET index");
    assert_eq!(
        support::digest_of(&index.body),
        seeded.digest("team/multi", "2.0")
    );
    let entries = index.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(entries.len(), 2);
    for (entry, platform) in entries.iter().zip(["linux/amd64", "linux/arm64/v8"]) {
        let child = seeded.platform_digest("team/multi", "2.0", platform);
        assert_eq!(entry["digest"], child);
        let head = http::head(
            &registry.url(&format!("/v2/team/multi/manifests/{child}")),
            &accept,
        )
        .expect_status(200, "HEAD child manifest");
        assert_eq!(head.header("Docker-Content-Digest"), Some(child));
    }
    assert_eq!(entries[1]["platform"]["variant"], "v8");
}

#[test]
fn docker_media_types_can_be_seeded() {
    let (registry, seeded) = Seed::new()
        .format(Format::Docker)
        .image("legacy", "1", JAN)
        .index("legacy", "2", &[("linux/amd64", FEB), ("linux/arm64", FEB)])
        .start(RegistryOptions::new());
    let accept = [("Accept", ACCEPT_MANIFESTS)];
    let head =
        http::head(&registry.url("/v2/legacy/manifests/1"), &accept).expect_status(200, "HEAD");
    assert_eq!(head.header("Content-Type"), Some(DOCKER_MANIFEST));
    assert_eq!(
        head.header("Docker-Content-Digest"),
        Some(seeded.digest("legacy", "1"))
    );
    let head =
        http::head(&registry.url("/v2/legacy/manifests/2"), &accept).expect_status(200, "HEAD");
    assert_eq!(head.header("Content-Type"), Some(DOCKER_MANIFEST_LIST));
    assert_eq!(
        head.header("Docker-Content-Digest"),
        Some(seeded.digest("legacy", "2"))
    );
}

#[test]
fn htpasswd_registry_challenges_with_basic_and_accepts_credentials() {
    let (registry, seeded) = Seed::new()
        .image("private/app", "3.0", JAN)
        .start(RegistryOptions::new().htpasswd(&[("alice", "s3cret"), ("bob", "hunter2")]));

    let anonymous = http::get(&registry.url("/v2/"), &[]).expect_status(401, "anonymous /v2/");
    let challenge = parse_challenge(anonymous.header("WWW-Authenticate").expect("challenge"));
    assert_eq!(challenge.scheme, "Basic");
    assert_eq!(challenge.param("realm"), Some("harness-registry"));

    let wrong = basic_auth("alice", "wrong");
    http::get(&registry.url("/v2/"), &[("Authorization", &wrong)])
        .expect_status(401, "wrong password");

    for (user, password) in [("alice", "s3cret"), ("bob", "hunter2")] {
        let auth = basic_auth(user, password);
        http::get(&registry.url("/v2/"), &[("Authorization", &auth)])
            .expect_status(200, "/v2/ with credentials");
        let tags = http::get(
            &registry.url("/v2/private/app/tags/list"),
            &[("Authorization", &auth)],
        )
        .expect_status(200, "tags with credentials");
        assert_eq!(sorted_tags(&tags), ["3.0"]);
        let head = http::head(
            &registry.url("/v2/private/app/manifests/3.0"),
            &[("Authorization", &auth), ("Accept", ACCEPT_MANIFESTS)],
        )
        .expect_status(200, "HEAD with credentials");
        assert_eq!(
            head.header("Docker-Content-Digest"),
            Some(seeded.digest("private/app", "3.0"))
        );
    }
}

#[test]
fn token_registry_challenges_with_bearer_and_accepts_issued_tokens() {
    let (registry, seeded) = Seed::new()
        .image("team/app", "1.0.0", JAN)
        .image("team/app", "1.1.0", FEB)
        .start(RegistryOptions::new().token(TokenOptions::new().credentials("ci", "t0ken-pass")));
    let issuer = registry.token_issuer().expect("token issuer");

    let anonymous = http::get(&registry.url("/v2/team/app/tags/list"), &[])
        .expect_status(401, "anonymous tags");
    let challenge = parse_challenge(anonymous.header("WWW-Authenticate").expect("challenge"));
    assert_eq!(challenge.scheme, "Bearer");
    assert_eq!(challenge.param("realm"), Some(issuer.realm().as_str()));
    assert_eq!(challenge.param("service"), Some(issuer.service()));
    assert_eq!(challenge.param("scope"), Some("repository:team/app:pull"));

    // Follow the challenge like a client would.
    let token_url = format!(
        "{}?service={}&scope={}",
        challenge.param("realm").unwrap(),
        http::url_encode(challenge.param("service").unwrap()),
        http::url_encode(challenge.param("scope").unwrap())
    );
    http::get(&token_url, &[]).expect_status(401, "issuer without credentials");
    http::get(&token_url, &[("Authorization", &basic_auth("ci", "nope"))])
        .expect_status(401, "issuer with a wrong password");
    let reply = http::get(
        &token_url,
        &[("Authorization", &basic_auth("ci", "t0ken-pass"))],
    )
    .expect_status(200, "issuer with credentials")
    .json();
    let token = reply["token"].as_str().unwrap().to_string();
    assert_eq!(reply["access_token"], reply["token"]);
    assert_eq!(reply["expires_in"], 300);
    assert!(reply["issued_at"].as_str().unwrap().ends_with('Z'));
    let claims = support::token::jwt_claims(&token);
    assert_eq!(claims["aud"], issuer.service());
    assert_eq!(claims["iss"], issuer.issuer());
    assert_eq!(claims["sub"], "ci");
    assert_eq!(
        claims["access"],
        serde_json::json!([{ "type": "repository", "name": "team/app", "actions": ["pull"] }])
    );

    // The same token serves several requests: one token issued in total.
    let auth = bearer(&token);
    let tags = http::get(
        &registry.url("/v2/team/app/tags/list"),
        &[("Authorization", &auth)],
    )
    .expect_status(200, "tags with token");
    assert_eq!(sorted_tags(&tags), ["1.0.0", "1.1.0"]);
    let head = http::head(
        &registry.url("/v2/team/app/manifests/1.1.0"),
        &[("Authorization", &auth), ("Accept", ACCEPT_MANIFESTS)],
    )
    .expect_status(200, "HEAD with token");
    assert_eq!(
        head.header("Docker-Content-Digest"),
        Some(seeded.digest("team/app", "1.1.0"))
    );
    assert_eq!(issuer.issued_count(), 1);

    let requests = issuer.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(
        requests
            .iter()
            .map(|r| (r.had_authorization, r.status))
            .collect::<Vec<_>>(),
        [(false, 401), (true, 401), (true, 200)]
    );
    assert!(requests[2].path_and_query.starts_with("/token?service="));
    assert_eq!(requests[2].scopes, ["repository:team/app:pull"]);
    let recorded = format!("{requests:?}");
    assert!(
        !recorded.contains("t0ken-pass")
            && !recorded.contains(&basic_auth("ci", "t0ken-pass")[6..])
    );
}

#[test]
fn token_scopes_are_enforced() {
    let (registry, _seeded) = Seed::new()
        .image("open/app", "1", JAN)
        .image("closed/app", "1", JAN)
        .start(RegistryOptions::new().token(TokenOptions::new().deny_repository("closed/app")));
    let issuer = registry.token_issuer().unwrap();

    // Anonymous tokens (no credentials configured), catalog scope.
    let token = issuer.fetch("registry:catalog:*", None);
    let catalog = http::get(
        &registry.url("/v2/_catalog"),
        &[("Authorization", &bearer(&token))],
    )
    .expect_status(200, "catalog with token");
    assert_eq!(
        catalog.json()["repositories"],
        serde_json::json!(["closed/app", "open/app"])
    );

    // A token for one repository does not open another.
    let open = issuer.fetch("repository:open/app:pull", None);
    http::get(
        &registry.url("/v2/open/app/tags/list"),
        &[("Authorization", &bearer(&open))],
    )
    .expect_status(200, "tags of the granted repository");
    http::get(
        &registry.url("/v2/closed/app/tags/list"),
        &[("Authorization", &bearer(&open))],
    )
    .expect_status(401, "tags of another repository");

    // Denied repositories get a token without access: insufficient_scope.
    let closed = issuer.fetch("repository:closed/app:pull", None);
    assert_eq!(
        support::token::jwt_claims(&closed)["access"],
        serde_json::json!([])
    );
    let denied = http::get(
        &registry.url("/v2/closed/app/tags/list"),
        &[("Authorization", &bearer(&closed))],
    )
    .expect_status(401, "tags of a denied repository");
    let challenge = parse_challenge(denied.header("WWW-Authenticate").unwrap());
    assert_eq!(challenge.param("error"), Some("insufficient_scope"));

    // Expired or foreign tokens are refused.
    let expired = issuer.mint("someone", &["repository:open/app:pull"], -3600);
    http::get(
        &registry.url("/v2/open/app/tags/list"),
        &[("Authorization", &bearer(&expired))],
    )
    .expect_status(401, "expired token");
    let other = support::TokenIssuer::start(TokenOptions::new());
    let foreign = other.mint("someone", &["repository:open/app:pull"], 300);
    http::get(
        &registry.url("/v2/open/app/tags/list"),
        &[("Authorization", &bearer(&foreign))],
    )
    .expect_status(401, "token signed by an untrusted key");
    assert_eq!(issuer.issued_count(), 3);
}

#[test]
fn identity_tokens_refresh_and_password_grants() {
    let (registry, _seeded) = Seed::new()
        .image("team/app", "1.0.0", JAN)
        .start(RegistryOptions::new().token(TokenOptions::new().credentials("robot", "pw")));
    let issuer = registry.token_issuer().unwrap();
    let service = http::url_encode(issuer.service());

    // docker login: GET with offline_token=true returns a refresh (identity) token.
    let login = http::get(
        &format!(
            "{}?account=robot&client_id=harness&offline_token=true&service={service}",
            issuer.realm()
        ),
        &[("Authorization", &basic_auth("robot", "pw"))],
    )
    .expect_status(200, "offline token");
    let refresh = login.json()["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_string();
    http::get(
        &format!("{}?offline_token=true&service={service}", issuer.realm()),
        &[("Authorization", &basic_auth("robot", "pw"))],
    )
    .expect_status(400, "offline_token without client_id");

    // Later: POST grant_type=refresh_token for a scoped access token.
    let form = format!(
        "grant_type=refresh_token&service={service}&client_id=harness&scope={}&refresh_token={}",
        http::url_encode("repository:team/app:pull"),
        http::url_encode(&refresh)
    );
    let form_type = [("Content-Type", "application/x-www-form-urlencoded")];
    let reply = http::request("POST", &issuer.realm(), &form_type, form.as_bytes())
        .unwrap()
        .expect_status(200, "refresh grant")
        .json();
    assert!(reply.get("refresh_token").is_none());
    assert_eq!(
        support::token::jwt_claims(reply["access_token"].as_str().unwrap())["sub"],
        "robot"
    );
    let auth = bearer(reply["access_token"].as_str().unwrap());
    http::get(
        &registry.url("/v2/team/app/tags/list"),
        &[("Authorization", &auth)],
    )
    .expect_status(200, "tags with refreshed token");

    let bad = form.replace(&http::url_encode(&refresh), "not-a-refresh-token");
    http::request("POST", &issuer.realm(), &form_type, bad.as_bytes())
        .unwrap()
        .expect_status(400, "unknown refresh token");

    // POST grant_type=password, with access_type=offline for a new refresh token.
    let form = format!(
        "grant_type=password&service={service}&client_id=harness&access_type=offline&username=robot&password=pw&scope={}",
        http::url_encode("repository:team/app:pull")
    );
    let reply = http::request("POST", &issuer.realm(), &form_type, form.as_bytes())
        .unwrap()
        .expect_status(200, "password grant")
        .json();
    assert!(reply["refresh_token"].is_string());
    let bad = form.replace("password=pw", "password=nope");
    http::request("POST", &issuer.realm(), &form_type, bad.as_bytes())
        .unwrap()
        .expect_status(400, "password grant with a wrong password");

    assert_eq!(issuer.issued_count(), 3);
    let requests = issuer.requests();
    let grants: Vec<_> = requests.iter().map(|r| r.grant_type.as_deref()).collect();
    assert_eq!(
        grants,
        [
            None,
            None,
            Some("refresh_token"),
            Some("refresh_token"),
            Some("password"),
            Some("password")
        ]
    );
    let recorded = format!("{requests:?}");
    assert!(!recorded.contains(&refresh) && !recorded.contains("password=pw"));
}

#[test]
fn tls_registry_serves_a_certificate_signed_by_the_exposed_ca() {
    let (registry, _seeded) = Seed::new()
        .image("secure/app", "1.0", JAN)
        .start(RegistryOptions::new().tls(true));
    assert_eq!(registry.base_url(), format!("https://{}", registry.host()));

    let ca_path = registry.ca_pem_path().expect("CA path");
    let ca_pem = std::fs::read_to_string(ca_path).expect("read CA PEM");
    let cas = support::tls::pem_certificates(&ca_pem);
    assert_eq!(cas.len(), 1, "one CA certificate in {}", ca_path.display());
    let ca = &cas[0];
    assert_eq!(Some(ca.as_slice()), registry.ca_der());
    let (subject, issuer) = support::tls::subject_and_issuer(ca).expect("CA parses as X.509");
    assert_eq!(subject, issuer, "the CA is self-issued");
    assert!(support::tls::is_signed_by(ca, ca), "the CA is self-signed");

    // The server speaks TLS and presents the generated leaf, signed by the CA.
    let chain =
        support::tls::tls12_server_certificates(&registry.host()).expect("TLS 1.2 handshake");
    assert_eq!(Some(chain[0].as_slice()), registry.server_cert_der());
    assert!(
        support::tls::is_signed_by(&chain[0], ca),
        "server certificate signed by the CA"
    );
    let (_, leaf_issuer) = support::tls::subject_and_issuer(&chain[0]).unwrap();
    assert_eq!(leaf_issuer, subject);

    // Plain HTTP is refused the way Go's TLS server does.
    let plain = http::get(&format!("http://{}/v2/", registry.host()), &[]);
    assert_eq!(plain.status, 400);
    assert!(
        plain.text().contains("HTTP request to an HTTPS server"),
        "{}",
        plain.text()
    );
}

#[test]
fn tls_with_htpasswd_starts_on_seeded_storage() {
    let (registry, _seeded) = Seed::new()
        .image("both/app", "1", JAN)
        .start(RegistryOptions::new().tls(true).htpasswd(&[("u", "p")]));
    assert!(registry.is_tls());
    assert!(
        registry
            .storage_dir()
            .join("docker/registry/v2/repositories/both/app")
            .is_dir()
    );
    let chain =
        support::tls::tls12_server_certificates(&registry.host()).expect("TLS 1.2 handshake");
    assert_eq!(Some(chain[0].as_slice()), registry.server_cert_der());
}

#[test]
fn registries_restart_on_the_same_storage_and_clean_up() {
    let first = Registry::start(RegistryOptions::new());
    let digest = first.push_image("keep/me", "v1", JAN, "linux/amd64");
    let storage = first.storage_dir().to_path_buf();
    let guard = first.stop().expect("harness-owned storage");

    let second = Registry::start(RegistryOptions::new().storage(&storage));
    let head = http::head(
        &second.url("/v2/keep/me/manifests/v1"),
        &[("Accept", ACCEPT_MANIFESTS)],
    )
    .expect_status(200, "HEAD after restart");
    assert_eq!(head.header("Docker-Content-Digest"), Some(digest.as_str()));
    assert!(
        second.log().contains("listening on 127.0.0.1"),
        "{}",
        second.log()
    );
    let host = second.host();
    drop(second);
    assert!(
        http::request("GET", &format!("http://{host}/v2/"), &[], b"").is_err(),
        "registry still answering after drop"
    );
    drop(guard);
    assert!(!storage.exists(), "storage removed with its guard");
}
