//! `image-update serve` over loopback: the real binary on a free port, a real
//! HTTP client (reqwest), a real git repository for `--commit`.

mod support;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use support::git;

use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "t0ken-for-tests";

struct Server {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(tree: &Path, extra: &[&str]) -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let token = tree.parent().unwrap().join("token");
    fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_image-update"))
        .arg("serve")
        .arg(tree)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--dir",
            "updaters",
            "--token-file",
        ])
        .arg(&token)
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("image-update serve: listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Server {
        child,
        base,
        client: reqwest::Client::new(),
    }
}

impl Server {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        (status, value)
    }
}

fn updater(name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "gitops.kubesphere.io/v1alpha1",
        "kind": "ImageUpdater",
        "metadata": {"name": name},
        "spec": {
            "kind": "argocd",
            "images": [image],
            "argocd": {"app": {"name": "web", "namespace": "argocd"}, "write": "git",
                       "update-strategy": {"nginx": "semver"}},
        },
    })
}

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir(&tree).unwrap();
    git(&tree, &["init", "-q", "-b", "main"]);
    git(&tree, &["commit", "-q", "--allow-empty", "-m", "init"]);
    dir
}

#[tokio::test]
async fn create_get_list_replace_delete_with_commits() {
    let dir = repo();
    let tree = dir.path().join("tree");
    let mixed = "# keep\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: gitops.kubesphere.io/v1alpha1\nkind: ImageUpdater\nmetadata: {name: hand, namespace: demo}\nspec: {kind: argocd, images: [nginx], argocd: {app: {name: web}}}\n";
    fs::write(tree.join("mixed.yaml"), mixed).unwrap();
    git(&tree, &["add", "mixed.yaml"]);
    git(&tree, &["commit", "-q", "-m", "hand"]);
    let server = start(
        &tree,
        &["--commit", "--author", "API <api@example.invalid>"],
    );
    use reqwest::Method;
    let ns = "/namespaces/demo/imageupdaters";

    let (code, created) = server
        .call(Method::POST, ns, Some(&updater("web", "nginx:^1.0")))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["metadata"]["annotations"]["gitops.kubesphere.io/file"],
        "updaters/demo/imageupdater-web.yaml"
    );
    assert!(tree.join("updaters/demo/imageupdater-web.yaml").is_file());
    assert_eq!(
        git(&tree, &["log", "-1", "--format=%an %s"]).trim(),
        "API Create ImageUpdater demo/web"
    );

    let (code, again) = server
        .call(Method::POST, ns, Some(&updater("web", "nginx")))
        .await;
    assert_eq!(
        (code, again["reason"].as_str()),
        (StatusCode::CONFLICT, Some("AlreadyExists"))
    );

    let (code, got) = server.call(Method::GET, &format!("{ns}/web"), None).await;
    assert_eq!(code, StatusCode::OK);
    let version = got["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        version,
        created["metadata"]["resourceVersion"].as_str().unwrap()
    );

    let (code, list) = server.call(Method::GET, ns, None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list["kind"], "ImageUpdaterList");
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hand", "web"]);

    // Replace: a stale version is refused, the current one accepted.
    let mut change = got.clone();
    change["spec"]["images"] = json!(["nginx:^2.0"]);
    change["metadata"]["resourceVersion"] = json!("0000000000000000");
    let (code, stale) = server
        .call(Method::PUT, &format!("{ns}/web"), Some(&change))
        .await;
    assert_eq!(
        (code, stale["reason"].as_str()),
        (StatusCode::CONFLICT, Some("Conflict")),
        "{stale}"
    );
    change["metadata"]["resourceVersion"] = json!(version);
    let (code, replaced) = server
        .call(Method::PUT, &format!("{ns}/web"), Some(&change))
        .await;
    assert_eq!(code, StatusCode::OK, "{replaced}");
    assert_ne!(replaced["metadata"]["resourceVersion"], json!(version));
    assert!(
        fs::read_to_string(tree.join("updaters/demo/imageupdater-web.yaml"))
            .unwrap()
            .contains("nginx:^2.0")
    );

    // An edit in git makes the version stale too.
    let (_, hand) = server.call(Method::GET, &format!("{ns}/hand"), None).await;
    fs::write(
        tree.join("mixed.yaml"),
        mixed.replace("images: [nginx]", "images: [nginx, redis]"),
    )
    .unwrap();
    let (code, _) = server
        .call(Method::PUT, &format!("{ns}/hand"), Some(&hand))
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    fs::write(tree.join("mixed.yaml"), mixed).unwrap();

    // Delete from a multi-document file removes only that document.
    let (code, status) = server
        .call(Method::DELETE, &format!("{ns}/hand"), None)
        .await;
    assert_eq!(code, StatusCode::OK, "{status}");
    assert_eq!(status["status"], "Success");
    assert_eq!(
        fs::read_to_string(tree.join("mixed.yaml")).unwrap(),
        "# keep\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
    );
    let (code, gone) = server.call(Method::GET, &format!("{ns}/hand"), None).await;
    assert_eq!(
        (code, gone["reason"].as_str()),
        (StatusCode::NOT_FOUND, Some("NotFound"))
    );
    let (code, _) = server
        .call(Method::DELETE, &format!("{ns}/web"), None)
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(!tree.join("updaters/demo/imageupdater-web.yaml").exists());
    assert_eq!(git(&tree, &["status", "--porcelain"]), "");
    assert_eq!(git(&tree, &["rev-list", "--count", "HEAD"]).trim(), "6");
}

#[tokio::test]
async fn auth_and_bad_requests() {
    let dir = repo();
    let tree = dir.path().join("tree");
    let server = start(&tree, &["--max-body", "2000"]);
    let url = format!("{}/namespaces/demo/imageupdaters", server.base);
    use reqwest::Method;

    for auth in [None, Some("Bearer wrong"), Some("Basic dDp0")] {
        let mut request = server.client.get(&url);
        if let Some(a) = auth {
            request = request.header("authorization", a);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(
            (body["kind"].as_str(), body["reason"].as_str()),
            (Some("Status"), Some("Unauthorized"))
        );
    }
    // The description is public.
    let spec: Value = serde_json::from_slice(
        &server
            .client
            .get(format!("{}/openapi.json", server.base))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(spec["paths"]["/namespaces/{namespace}/imageupdaters/{name}"]["put"].is_object());

    let response = server
        .client
        .post(&url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    let big = json!({"metadata": {"name": "x"}, "spec": {"images": ["a".repeat(3000)]}});
    let (code, _) = server
        .call(Method::POST, "/namespaces/demo/imageupdaters", Some(&big))
        .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);

    let mut bad = updater("web", "nginx");
    bad["spec"]["argocd"]["update-strategy"] = json!({"nginx": "newest", "tomcat": "semver"});
    bad["spec"]["fluxcd"] = json!({"interval": "1m"});
    let (code, status) = server
        .call(Method::POST, "/namespaces/demo/imageupdaters", Some(&bad))
        .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("Invalid"))
    );
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "spec.fluxcd",
            "spec.argocd.update-strategy.tomcat",
            "spec.argocd.update-strategy.nginx"
        ],
        "{status}"
    );

    let (code, status) = server
        .call(
            Method::POST,
            "/namespaces/demo/imageupdaters",
            Some(&json!({"spec": {"kind": "fluxcd", "images": ["nginx", 3]}})),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(status["details"]["causes"][0]["field"], "spec.images[1]");

    let (code, _) = server
        .call(
            Method::PUT,
            "/namespaces/demo/imageupdaters/other",
            Some(&updater("web", "nginx")),
        )
        .await;
    assert_eq!(
        code,
        StatusCode::UNPROCESSABLE_ENTITY,
        "name in the body differs from the URL"
    );
    let (code, _) = server
        .call(
            Method::PUT,
            "/namespaces/demo/imageupdaters/web",
            Some(&updater("web", "nginx")),
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = server
        .call(Method::GET, "/namespaces/Bad_NS/imageupdaters", None)
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, _) = server
        .call(Method::PATCH, "/namespaces/demo/imageupdaters/web", None)
        .await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    let (code, _) = server.call(Method::GET, "/apis", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(
        fs::read_dir(&tree).unwrap().count(),
        1,
        "only .git: nothing was written"
    );
}

#[test]
fn a_public_address_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_image-update"))
        .arg("serve")
        .arg(dir.path())
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("without --token-file"));
}

#[tokio::test]
async fn concurrent_writers_are_serialised() {
    let dir = repo();
    let tree = dir.path().join("tree");
    let server = std::sync::Arc::new(start(&tree, &["--commit"]));
    let mut tasks = Vec::new();
    for i in 0..12 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            // Four writers race for each name.
            let name = format!("app{}", i % 3);
            server
                .call(
                    reqwest::Method::POST,
                    "/namespaces/demo/imageupdaters",
                    Some(&updater(&name, "nginx")),
                )
                .await
                .0
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(
        codes.iter().filter(|c| **c == StatusCode::CREATED).count(),
        3,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| **c == StatusCode::CONFLICT).count(),
        9,
        "{codes:?}"
    );
    assert_eq!(git(&tree, &["rev-list", "--count", "HEAD"]).trim(), "4");
    assert_eq!(git(&tree, &["status", "--porcelain"]), "");
}

/// A server with `--commit` on a new repository, and the object of the
/// `ImageUpdater` `demo/web` it created.
async fn committing_server_with_web() -> (tempfile::TempDir, Server, Value) {
    let dir = repo();
    let server = start(
        &dir.path().join("tree"),
        &["--commit", "--author", "API <api@example.invalid>"],
    );
    let (code, created) = server
        .call(
            reqwest::Method::POST,
            "/namespaces/demo/imageupdaters",
            Some(&updater("web", "nginx:^1.0")),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    (dir, server, created)
}

/// Hardening 15.10: a `PUT` of an unchanged object under `--commit` is a
/// 200 and no commit (it was a 500); bodies need `application/json`; the
/// path has no doubled or trailing `/`.
#[tokio::test]
async fn unchanged_puts_content_types_and_strict_paths() {
    use reqwest::Method;
    let (dir, server, created) = committing_server_with_web().await;
    let tree = dir.path().join("tree");
    let ns = "/namespaces/demo/imageupdaters";
    let head = git(&tree, &["rev-parse", "HEAD"]);
    let (code, same) = server
        .call(Method::PUT, &format!("{ns}/web"), Some(&created))
        .await;
    assert_eq!(code, StatusCode::OK, "{same}");
    assert_eq!(
        same["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    assert_eq!(git(&tree, &["rev-parse", "HEAD"]), head, "an empty commit");

    for kind in [None, Some("text/plain"), Some("application/jsonx")] {
        let mut request = server
            .client
            .post(format!("{}{ns}", server.base))
            .bearer_auth(TOKEN)
            .body(updater("other", "nginx").to_string());
        if let Some(kind) = kind {
            request = request.header("content-type", kind);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{kind:?}"
        );
    }
    for path in [
        "//namespaces/demo/imageupdaters",
        "/namespaces/demo/imageupdaters/",
        "/namespaces/demo/imageupdaters/web/",
        "/namespaces//imageupdaters",
    ] {
        let (code, body) = server.call(Method::GET, path, None).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{path}: {body}");
    }
}

/// Hardening 15.10: a client that stalls in its headers or its body is cut
/// off after `--request-timeout`.
#[tokio::test]
async fn stalled_clients_are_timed_out() {
    use std::io::{Read, Write};
    let dir = repo();
    let tree = dir.path().join("tree");
    let server = start(&tree, &["--request-timeout", "1"]);
    let address = server.base.trim_start_matches("http://").to_string();
    let started = std::time::Instant::now();
    let body_stall = tokio::task::spawn_blocking({
        let address = address.clone();
        move || {
            let mut s = std::net::TcpStream::connect(&address).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                .unwrap();
            write!(
                s,
                "POST /namespaces/demo/imageupdaters HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
            )
            .unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            answer
        }
    });
    let header_stall = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(&address).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        s.write_all(b"GET /namespaces/demo/imageupdaters HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).map(|_| ()).map_err(|e| e.kind())
    });
    let answer = body_stall.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(
        header_stall.await.unwrap(),
        Ok(()),
        "the connection was not closed"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

/// Hardening 15.1: `POST` does not write through a linked directory.
#[tokio::test]
async fn a_post_never_writes_through_a_linked_directory() {
    use reqwest::Method;
    let dir = repo();
    let (tree, x) = (dir.path().join("tree"), dir.path().join("x"));
    fs::create_dir(&x).unwrap();
    std::os::unix::fs::symlink("../x", tree.join("updaters")).unwrap();
    let server = start(&tree, &[]);
    let (code, status) = server
        .call(
            Method::POST,
            "/namespaces/demo/imageupdaters",
            Some(&updater("web", "nginx")),
        )
        .await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("updaters is a symbolic link"),
        "{status}"
    );
    assert_eq!(
        fs::read_dir(&x).unwrap().count(),
        0,
        "written outside the tree"
    );
}

/// Hardening 15.10: at the descriptor limit the accept loop waits instead of
/// spinning (it used a whole core).
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_accept_loop_does_not_spin_at_the_descriptor_limit() {
    let dir = repo();
    let tree = dir.path().join("tree");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 24 && exec \"$0\" serve \"$1\" --listen 127.0.0.1:0")
        .arg(env!("CARGO_BIN_EXE_image-update"))
        .arg(&tree)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line.trim().rsplit("http://").next().unwrap().to_string();
    // Hold more connections open than the server has descriptors.
    let held: Vec<_> = (0..40)
        .filter_map(|_| std::net::TcpStream::connect(&address).ok())
        .collect();
    let cpu = || {
        let stat = fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
        let fields: Vec<u64> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|f| f.parse().unwrap())
            .collect();
        fields[0] + fields[1]
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let before = cpu();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let used = cpu() - before;
    drop(held);
    let _ = child.kill();
    let _ = child.wait();
    // Clock ticks (100 a second): a spinning loop uses about 200 here.
    assert!(used < 40, "the server used {used} ticks in 2 s while idle");
}

/// A commit that fails (the index is locked) puts the file back as it was.
#[tokio::test]
async fn a_failed_commit_puts_the_file_back() {
    use reqwest::Method;
    let (dir, server, created) = committing_server_with_web().await;
    let tree = dir.path().join("tree");
    let ns = "/namespaces/demo/imageupdaters";
    let file = tree.join("updaters/demo/imageupdater-web.yaml");
    let before = fs::read(&file).unwrap();
    fs::write(tree.join(".git/index.lock"), "").unwrap();

    let mut changed = created.clone();
    changed["spec"]["images"] = json!(["nginx:^2.0"]);
    let (code, status) = server
        .call(Method::PUT, &format!("{ns}/web"), Some(&changed))
        .await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("the file was restored"),
        "{status}"
    );
    assert_eq!(fs::read(&file).unwrap(), before);

    let (code, status) = server
        .call(Method::POST, ns, Some(&updater("api", "nginx")))
        .await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{status}");
    assert!(!tree.join("updaters/demo/imageupdater-api.yaml").exists());

    let (code, status) = server
        .call(Method::DELETE, &format!("{ns}/web"), None)
        .await;
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR, "{status}");
    assert_eq!(fs::read(&file).unwrap(), before);
}
