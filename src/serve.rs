//! `image-update serve`: a small REST API over the `ImageUpdater` resources
//! of a working tree, for tools (dashboards, bots) that want to manage image
//! updates without writing YAML themselves.
//!
//! The tree stays the only state: every request reads the files, every
//! change is a file change (through [`crate::manage`], so other bytes are
//! kept), committed when asked. Objects and errors look like the Kubernetes
//! API's (`kind: Status`, `reason`, `details.causes[].field`), because the
//! resource is a Kubernetes-style resource and its clients know that shape.
//! A resource's `resourceVersion` is a hash of its document, so a `PUT` made
//! from a stale read — including one made stale by a hand edit or a
//! `git pull` — is refused with 409. Writes are serialised by one mutex;
//! reads are not blocked by them (files are replaced atomically).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::git::{self, Repo, Signature};
use crate::kubesphere::{self, FieldError};
use crate::manage::{self, Found, Kind, Tree};
use crate::tree_write;

/// Settings of the server, resolved by the CLI.
#[derive(Debug, Clone)]
pub struct Options {
    pub tree: Tree,
    pub listen: SocketAddr,
    pub token: Option<String>,
    /// Commit every change, with this author (`None`: the repository's).
    pub commit: bool,
    pub author: Option<String>,
    pub max_body: usize,
    /// How long a client may take to send a request's headers, and its body.
    pub request_timeout: Duration,
}

/// How long the accept loop rests after a failed accept (out of file
/// descriptors, say) instead of retrying at once and spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

struct State {
    options: Options,
    author: Signature,
    writes: Mutex<()>,
}

/// Checks the options, binds, prints the address on stderr and serves until
/// the process ends. `Err` is a usage or start-up error.
pub fn main(options: Options) -> Result<(), String> {
    if !options.listen.ip().is_loopback() && options.token.is_none() {
        return Err(format!(
            "refusing to listen on {} without --token-file: only loopback addresses may be unauthenticated",
            options.listen
        ));
    }
    let author = if options.commit {
        let repo = Repo::open(&options.tree.root).map_err(|e| format!("--commit: {e}"))?;
        match &options.author {
            Some(a) => Signature::parse(a)
                .ok_or_else(|| format!("invalid --author {a:?}: write \"Name <email>\""))?,
            None => repo
                .configured_signature()
                .unwrap_or_else(git::default_signature),
        }
    } else {
        git::default_signature()
    };
    let state = Arc::new(State {
        options,
        author,
        writes: Mutex::new(()),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(state.options.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", state.options.listen))?;
        let bound = listener
            .local_addr()
            .map_err(|e| format!("cannot read the bound address: {e}"))?;
        eprintln!("image-update serve: listening on http://{bound}");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // The pending connection stays queued; retrying at once
                // would fail again at once.
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            };
            let state = state.clone();
            let timeout = state.options.request_timeout;
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(request, state).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(timeout)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: &Value) -> Reply {
    let mut text = serde_json::to_vec_pretty(body).expect("JSON serialises");
    text.push(b'\n');
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(text)))
        .expect("a valid response")
}

/// A Kubernetes `Status` error.
fn status(code: StatusCode, reason: &str, message: &str, causes: &[FieldError]) -> Reply {
    let mut body = json!({
        "apiVersion": "v1",
        "kind": "Status",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    if !causes.is_empty() {
        body["details"] = json!({
            "group": kubesphere::API_GROUP,
            "kind": "imageupdaters",
            "causes": causes.iter().map(|c| json!({
                "reason": "FieldValueInvalid",
                "message": c.message,
                "field": c.field,
            })).collect::<Vec<_>>(),
        });
    }
    reply(code, &body)
}

fn not_found(ns: &str, name: &str) -> Reply {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("imageupdaters {name:?} not found in namespace {ns:?}"),
        &[],
    )
}

fn internal(message: String) -> Reply {
    status(
        StatusCode::INTERNAL_SERVER_ERROR,
        "InternalError",
        &message,
        &[],
    )
}

/// Compares without stopping at the first difference.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(request: Request<Incoming>, state: Arc<State>) -> Reply {
    let path = request.uri().path().to_string();
    if path == "/openapi.json" && request.method() == Method::GET {
        return reply(StatusCode::OK, &openapi());
    }
    if let Some(token) = &state.options.token {
        let given = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !same_secret(given.trim().as_bytes(), token.as_bytes()) {
            let mut r = status(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "a valid bearer token is required (Authorization: Bearer <token>)",
                &[],
            );
            r.headers_mut().insert(
                "www-authenticate",
                hyper::header::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    // Exactly one `/` between segments, none at the end: `//namespaces/…`
    // and `…/imageupdaters/` are other paths.
    let segments: Vec<&str> = match path.strip_prefix('/') {
        Some(rest) if !rest.split('/').any(str::is_empty) => rest.split('/').collect(),
        _ => Vec::new(),
    };
    let (ns, name) = match segments.as_slice() {
        ["namespaces", ns, "imageupdaters"] => (ns.to_string(), None),
        ["namespaces", ns, "imageupdaters", name] => (ns.to_string(), Some(name.to_string())),
        _ => {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("no such path {path:?}; see /openapi.json"),
                &[],
            );
        }
    };
    if let Err(e) = kubesphere::check_label(&ns) {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("namespace {e}"),
            &[],
        );
    }
    if let Some(Err(e)) = name.as_deref().map(kubesphere::check_name) {
        return status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("name {e}"),
            &[],
        );
    }
    let method = request.method().clone();
    let body = match method {
        Method::POST | Method::PUT => match read_body(
            request,
            state.options.max_body,
            state.options.request_timeout,
        )
        .await
        {
            Ok(body) => Some(body),
            Err(reply) => return reply,
        },
        _ => None,
    };
    let work = move || match (method, name) {
        (Method::GET, None) => list(&state, &ns),
        (Method::POST, None) => create(&state, &ns, body.expect("read above")),
        (Method::GET, Some(name)) => {
            match state.options.tree.find(Kind::ImageUpdater, &ns, &name) {
                Some(found) => reply(StatusCode::OK, &found.to_json()),
                None => not_found(&ns, &name),
            }
        }
        (Method::PUT, Some(name)) => replace(&state, &ns, &name, body.expect("read above")),
        (Method::DELETE, Some(name)) => delete(&state, &ns, &name),
        (method, name) => {
            let mut r = status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                &format!("{method} is not allowed on {path}"),
                &[],
            );
            let allow = if name.is_some() {
                "GET, PUT, DELETE"
            } else {
                "GET, POST"
            };
            r.headers_mut()
                .insert("allow", hyper::header::HeaderValue::from_static(allow));
            r
        }
    };
    // File and git work blocks; it runs off the connection tasks.
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| internal(format!("the request failed: {e}")))
}

async fn read_body(
    request: Request<Incoming>,
    limit: usize,
    timeout: Duration,
) -> Result<Value, Reply> {
    let json = request.headers().get(CONTENT_TYPE).is_some_and(|kind| {
        let kind = kind.to_str().unwrap_or_default().to_ascii_lowercase();
        kind.split(';').next().unwrap_or_default().trim() == "application/json"
    });
    if !json {
        return Err(status(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "the body must be application/json",
            &[],
        ));
    }
    let body = tokio::time::timeout(timeout, Limited::new(request.into_body(), limit).collect());
    let bytes = match body.await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Err(_) => {
            return Err(status(
                StatusCode::REQUEST_TIMEOUT,
                "Timeout",
                &format!("the body did not arrive within {}s", timeout.as_secs()),
                &[],
            ));
        }
        Ok(Err(_)) => {
            return Err(status(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                &format!("the body is larger than {limit} bytes or could not be read"),
                &[],
            ));
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        status(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("the body is not JSON: {e}"),
            &[],
        )
    })
}

fn list(state: &State, ns: &str) -> Reply {
    let (found, _) = state.options.tree.list(Some(Kind::ImageUpdater));
    let items: Vec<Value> = found
        .iter()
        .filter(|f| f.namespace == ns)
        .map(Found::to_json)
        .collect();
    reply(
        StatusCode::OK,
        &json!({
            "apiVersion": kubesphere::API_VERSION,
            "kind": "ImageUpdaterList",
            "metadata": {},
            "items": items,
        }),
    )
}

fn invalid(name: &str, errors: &[FieldError]) -> Reply {
    let summary: Vec<String> = errors.iter().map(ToString::to_string).collect();
    status(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Invalid",
        &format!("ImageUpdater {name:?} is invalid: {}", summary.join("; ")),
        errors,
    )
}

/// Runs `change` under the write lock, then commits `path`; a failed commit
/// puts the file back as it was.
fn change_and_commit(
    state: &State,
    path: &std::path::Path,
    message: String,
    change: impl FnOnce() -> Result<(), Box<Reply>>,
) -> Result<(), Box<Reply>> {
    let before = std::fs::read(path).ok();
    change()?;
    // A change that changes nothing (a PUT of the same object) is no commit.
    if !state.options.commit || std::fs::read(path).ok() == before {
        return Ok(());
    }
    let committed = Repo::open(&state.options.tree.root)
        .and_then(|repo| repo.commit_paths(&[path.to_path_buf()], &message, &state.author));
    if let Err(e) = committed {
        // Put back through the same confined, atomic writer.
        let root = &state.options.tree.root;
        let rel = path
            .strip_prefix(root)
            .map(|r| r.to_string_lossy().replace('\\', "/"))
            .unwrap_or_default();
        let restored = match (&before, std::fs::read(path).ok()) {
            (Some(bytes), Some(now)) => tree_write::replace_file(root, &rel, &now, bytes),
            (Some(bytes), None) => tree_write::create_file(root, &rel, bytes),
            (None, _) => std::fs::remove_file(path),
        };
        let note = match restored {
            Ok(()) => "the file was restored",
            Err(_) => "the file could not be restored",
        };
        return Err(Box::new(internal(format!("cannot commit: {e}; {note}"))));
    }
    Ok(())
}

fn create(state: &State, ns: &str, body: Value) -> Reply {
    let (text, unified) =
        match check_strings(&body).and_then(|()| manage::updater_from_json(&body, ns, None)) {
            Ok(ok) => ok,
            Err(errors) => return invalid(body_name(&body), &errors),
        };
    let _guard = state.writes.lock().unwrap_or_else(|e| e.into_inner());
    let tree = &state.options.tree;
    let (_, path) = tree.new_path(Kind::ImageUpdater, ns, &unified.name);
    let result = change_and_commit(
        state,
        &path,
        format!("Create ImageUpdater {ns}/{}", unified.name),
        || {
            tree.create(Kind::ImageUpdater, ns, &unified.name, &text)
                .map(drop)
                .map_err(|e| {
                    Box::new(match e {
                        manage::ManageError::Exists { .. } | manage::ManageError::FileExists(_) => {
                            status(StatusCode::CONFLICT, "AlreadyExists", &e.to_string(), &[])
                        }
                        e => internal(e.to_string()),
                    })
                })
        },
    );
    if let Err(reply) = result {
        return *reply;
    }
    match tree.find(Kind::ImageUpdater, ns, &unified.name) {
        Some(found) => reply(StatusCode::CREATED, &found.to_json()),
        None => internal("the new resource cannot be read back".to_string()),
    }
}

fn replace(state: &State, ns: &str, name: &str, body: Value) -> Reply {
    let (text, _) = match check_strings(&body)
        .and_then(|()| manage::updater_from_json(&body, ns, Some(name)))
    {
        Ok(ok) => ok,
        Err(errors) => return invalid(name, &errors),
    };
    let wanted = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    let _guard = state.writes.lock().unwrap_or_else(|e| e.into_inner());
    let tree = &state.options.tree;
    let Some(found) = tree.find(Kind::ImageUpdater, ns, name) else {
        return not_found(ns, name);
    };
    if let Some(wanted) = wanted
        && wanted != found.version
    {
        return status(
            StatusCode::CONFLICT,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on imageupdaters {name:?}: the object has been modified (resourceVersion {wanted:?}, now {:?}); read it again and apply your changes to the latest version",
                found.version
            ),
            &[],
        );
    }
    let result = change_and_commit(
        state,
        &found.path,
        format!("Update ImageUpdater {ns}/{name}"),
        || {
            tree.replace(&found, &text)
                .map_err(|e| Box::new(internal(e.to_string())))
        },
    );
    if let Err(reply) = result {
        return *reply;
    }
    match tree.find(Kind::ImageUpdater, ns, name) {
        Some(found) => reply(StatusCode::OK, &found.to_json()),
        None => internal("the resource cannot be read back".to_string()),
    }
}

fn delete(state: &State, ns: &str, name: &str) -> Reply {
    let _guard = state.writes.lock().unwrap_or_else(|e| e.into_inner());
    let tree = &state.options.tree;
    let Some(found) = tree.find(Kind::ImageUpdater, ns, name) else {
        return not_found(ns, name);
    };
    let result = change_and_commit(
        state,
        &found.path,
        format!("Delete ImageUpdater {ns}/{name}"),
        || {
            tree.delete(&found)
                .map_err(|e| Box::new(internal(e.to_string())))
        },
    );
    if let Err(reply) = result {
        return *reply;
    }
    reply(
        StatusCode::OK,
        &json!({
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Success",
            "code": 200,
            "details": {"name": name, "group": kubesphere::API_GROUP, "kind": "imageupdaters"},
        }),
    )
}

fn body_name(body: &Value) -> &str {
    body.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Every value under `spec` must be a string, an object or a list: the
/// resource's fields are all strings, and YAML would otherwise turn `1` into
/// `"1"` behind the client's back.
fn check_strings(body: &Value) -> Result<(), Vec<FieldError>> {
    fn walk(value: &Value, path: String, errors: &mut Vec<FieldError>) {
        match value {
            Value::String(_) => {}
            Value::Object(map) => {
                for (k, v) in map {
                    walk(v, format!("{path}.{k}"), errors);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, format!("{path}[{i}]"), errors);
                }
            }
            other => errors.push(FieldError {
                field: path,
                message: format!("{other} is not allowed; values must be strings"),
            }),
        }
    }
    let mut errors = Vec::new();
    if let Some(spec) = body.get("spec").filter(|s| s.is_object()) {
        walk(spec, "spec".to_string(), &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The OpenAPI 3 description of exactly these endpoints.
pub fn openapi() -> Value {
    let strings = json!({"type": "object", "additionalProperties": {"type": "string"}});
    let status = json!({"$ref": "#/components/schemas/Status"});
    let error = |what: &str| json!({"description": what, "content": {"application/json": {"schema": status}}});
    let object = |what: &str| json!({"description": what, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ImageUpdater"}}}});
    let body = json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ImageUpdater"}}}});
    let ns = json!({"name": "namespace", "in": "path", "required": true,
        "schema": {"type": "string", "maxLength": 63, "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}});
    let name_schema = json!({"type": "string", "maxLength": 253,
        "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"});
    let name = json!({"name": "name", "in": "path", "required": true, "schema": name_schema});
    let common = |mut responses: Value| {
        responses["401"] = error("missing or wrong bearer token");
        responses["400"] = error("malformed request (not JSON, bad path parameter)");
        responses
    };
    let argocd = json!({"type": "object", "additionalProperties": false, "properties": {
        "app": {"type": "object", "properties": {"name": {"type": "string"}, "namespace": {"type": "string"}}},
        "write": {"type": "string", "enum": ["git", "built-in"]},
        "update-strategy": {"type": "object", "additionalProperties": {"type": "string",
            "enum": kubesphere::ARGO_STRATEGIES}},
        "allow-tags": strings,
        "ignore-tags": strings,
        "platforms": strings,
        "secret": strings,
    }});
    let fluxcd = json!({"type": "object", "additionalProperties": false, "properties": {
        "interval": {"type": "string"},
        "secret": {"type": "string"},
        "policy": {"type": "object"},
        "sourceRef": {"type": "object", "properties": {"kind": {"type": "string"}, "name": {"type": "string"}}},
        "git": {"type": "object"},
        "update": {"type": "object", "properties": {"path": {"type": "string"}, "strategy": {"type": "string", "enum": ["Setters"]}}},
    }});
    let status_schema = json!({
        "type": "object",
        "required": ["kind", "status", "code"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string", "enum": ["Status"]},
            "status": {"type": "string", "enum": ["Success", "Failure"]},
            "message": {"type": "string"},
            "reason": {"type": "string"},
            "code": {"type": "integer"},
            "details": {"type": "object", "properties": {
                "name": {"type": "string"},
                "causes": {"type": "array", "items": {"type": "object", "properties": {
                    "reason": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"},
                }}},
            }},
        },
    });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "image-update serve",
            "version": "v1alpha1",
            "description": "The gitops.kubesphere.io/v1alpha1 ImageUpdater resources of a working tree. Every change is a file change (and a commit with --commit).",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/namespaces/{namespace}/imageupdaters": {
                "parameters": [ns],
                "get": {
                    "operationId": "listImageUpdaters",
                    "responses": common(json!({"200": {"description": "the resources of the namespace",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ImageUpdaterList"}}}}})),
                },
                "post": {
                    "operationId": "createImageUpdater",
                    "requestBody": body,
                    "responses": common(json!({
                        "201": object("created"),
                        "409": error("a resource of that name exists"),
                        "413": error("body too large"),
                        "415": error("not application/json"),
                        "422": error("invalid resource; details.causes name the fields"),
                        "500": error("the file could not be written or committed; the tree is unchanged"),
                    })),
                },
            },
            "/namespaces/{namespace}/imageupdaters/{name}": {
                "parameters": [ns, name],
                "get": {
                    "operationId": "readImageUpdater",
                    "responses": common(json!({"200": object("the resource"), "404": error("no such resource")})),
                },
                "put": {
                    "operationId": "replaceImageUpdater",
                    "requestBody": body,
                    "responses": common(json!({
                        "200": object("replaced"),
                        "404": error("no such resource"),
                        "409": error("metadata.resourceVersion is stale"),
                        "413": error("body too large"),
                        "415": error("not application/json"),
                        "422": error("invalid resource; details.causes name the fields"),
                        "500": error("the file could not be written or committed; the tree is unchanged"),
                    })),
                },
                "delete": {
                    "operationId": "deleteImageUpdater",
                    "responses": common(json!({
                        "200": error("deleted (a Status with status Success)"),
                        "404": error("no such resource"),
                        "500": error("the file could not be written or committed; the tree is unchanged"),
                    })),
                },
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "ImageUpdater": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string", "enum": [kubesphere::API_VERSION]},
                        "kind": {"type": "string", "enum": [kubesphere::KIND]},
                        "metadata": {
                            "type": "object",
                            "properties": {
                                "name": name_schema,
                                "namespace": {"type": "string"},
                                "resourceVersion": {"type": "string"},
                                "labels": strings,
                                "annotations": strings,
                            },
                        },
                        "spec": {
                            "type": "object",
                            "required": ["kind", "images"],
                            "additionalProperties": false,
                            "properties": {
                                "kind": {"type": "string", "enum": ["argocd", "fluxcd"]},
                                "images": {"type": "array", "minItems": 1, "items": {"type": "string"},
                                    "description": "[alias=]image[:constraint]"},
                                "argocd": argocd,
                                "fluxcd": fluxcd,
                            },
                        },
                    },
                },
                "ImageUpdaterList": {
                    "type": "object",
                    "required": ["kind", "items"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string", "enum": ["ImageUpdaterList"]},
                        "metadata": {"type": "object"},
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/ImageUpdater"}},
                    },
                },
                "Status": status_schema,
            },
        },
    })
}

/// Reads a token file: its first line, which must not be empty.
pub fn read_token(path: &PathBuf) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        return Err(format!("{} holds no token", path.display()));
    }
    Ok(token)
}
