//! Starts and stops a real CNCF distribution registry (`docker-registry serve`)
//! for one test.
//!
//! Each [`Registry`] gets a free 127.0.0.1 port, its own temporary work
//! directory (config.yml, htpasswd, certificates, logs) and storage directory
//! (filesystem driver; or a caller-supplied one, so images pushed to an
//! anonymous registry can be served again by an authenticated or TLS one),
//! optional htpasswd or token authentication, and optional TLS with a
//! throwaway CA. The process is killed when the value is dropped; a watchdog
//! shell also kills it if the test process dies without running destructors.

use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::http;
use super::token::{TokenIssuer, TokenOptions};

const INSTALL_HINT: &str = "install it with `apt-get install docker-registry apache2-utils`";
const READY_TIMEOUT: Duration = Duration::from_secs(15);
const START_ATTEMPTS: usize = 5;

/// Authentication in front of the registry.
#[derive(Clone, Debug, Default)]
pub enum Auth {
    /// Anonymous pull and push.
    #[default]
    None,
    /// `auth: htpasswd` with these users (bcrypt via `htpasswd -Bbn`).
    Htpasswd { users: Vec<(String, String)> },
    /// `auth: token` backed by a harness [`TokenIssuer`] started with these options.
    Token(TokenOptions),
}

/// How to start a [`Registry`].
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    pub auth: Auth,
    /// Serve HTTPS with a server certificate for `127.0.0.1` and `localhost`
    /// signed by a throwaway CA ([`Registry::ca_pem_path`]).
    pub tls: bool,
    /// Serve this existing storage directory instead of a fresh one.
    pub storage: Option<PathBuf>,
    /// Write one access-log line per request to the log (for counting requests).
    pub access_log: bool,
}

impl RegistryOptions {
    /// Anonymous, plain HTTP, fresh storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// htpasswd (Basic) authentication with these users.
    pub fn htpasswd(mut self, users: &[(&str, &str)]) -> Self {
        self.auth = Auth::Htpasswd {
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
        };
        self
    }

    /// Token (Bearer) authentication backed by a harness token issuer.
    pub fn token(mut self, options: TokenOptions) -> Self {
        self.auth = Auth::Token(options);
        self
    }

    pub fn tls(mut self, tls: bool) -> Self {
        self.tls = tls;
        self
    }

    pub fn storage(mut self, dir: impl Into<PathBuf>) -> Self {
        self.storage = Some(dir.into());
        self
    }

    pub fn access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }
}

pub struct TlsFiles {
    ca_pem_path: PathBuf,
    ca_der: Vec<u8>,
    server_cert_der: Vec<u8>,
}

/// A running `docker-registry serve`; killed on drop.
pub struct Registry {
    process: Process,
    port: u16,
    options: RegistryOptions,
    workdir: TempDir,
    storage: PathBuf,
    /// Keeps a harness-created storage directory alive (declared after the
    /// child so the process is gone before the directory is removed).
    storage_guard: Option<TempDir>,
    tls: Option<TlsFiles>,
    issuer: Option<TokenIssuer>,
}

impl Registry {
    /// Starts a registry and waits until `/v2/` answers. Panics with the
    /// registry's log on failure.
    pub fn start(options: RegistryOptions) -> Registry {
        Self::start_with_guard(options, None)
    }

    /// Starts with storage in `guard`, which the registry then owns.
    pub(crate) fn start_with_guard(
        mut options: RegistryOptions,
        guard: Option<TempDir>,
    ) -> Registry {
        let binary = registry_binary();
        let workdir = tempfile::Builder::new()
            .prefix("harness-registry-")
            .tempdir()
            .expect("create registry work dir");
        let (storage, storage_guard) = match (&options.storage, guard) {
            (_, Some(guard)) => (guard.path().to_path_buf(), Some(guard)),
            (Some(dir), None) => (dir.clone(), None),
            (None, None) => {
                let guard = tempfile::Builder::new()
                    .prefix("harness-storage-")
                    .tempdir()
                    .expect("create registry storage dir");
                (guard.path().to_path_buf(), Some(guard))
            }
        };
        fs::create_dir_all(&storage).expect("create storage dir");
        options.storage = Some(storage.clone());

        let tls = options.tls.then(|| write_tls_files(workdir.path()));
        let issuer = match &options.auth {
            Auth::Token(token_options) => Some(TokenIssuer::start(token_options.clone())),
            _ => None,
        };
        let auth_yaml = auth_yaml(&options.auth, workdir.path(), issuer.as_ref());

        let mut last_log = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let config = config_yaml(
                port,
                &storage,
                tls.is_some(),
                workdir.path(),
                &auth_yaml,
                options.access_log,
            );
            let config_path = workdir.path().join("config.yml");
            fs::write(&config_path, config).expect("write registry config.yml");
            let log_path = workdir.path().join(format!("registry-{attempt}.log"));
            let mut process = Process::spawn(&binary, &config_path, &log_path, workdir.path());
            match process.wait_ready(port, &log_path) {
                Ok(()) => {
                    return Registry {
                        process,
                        port,
                        options,
                        workdir,
                        storage,
                        storage_guard,
                        tls,
                        issuer,
                    };
                }
                Err(reason) => {
                    process.kill();
                    last_log = fs::read_to_string(&log_path).unwrap_or_default();
                    let collided = last_log.contains("address already in use");
                    if !(collided && attempt < START_ATTEMPTS) {
                        panic!(
                            "docker-registry did not become ready on 127.0.0.1:{port} ({reason}); \
                             config:\n{}\nregistry log:\n{last_log}",
                            fs::read_to_string(&config_path).unwrap_or_default()
                        );
                    }
                }
            }
        }
        panic!("docker-registry could not find a free port; last log:\n{last_log}");
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// `base_url()` + `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The throwaway CA certificate (PEM) that signed the server certificate.
    pub fn ca_pem_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_pem_path.as_path())
    }

    /// DER of the CA certificate.
    pub fn ca_der(&self) -> Option<&[u8]> {
        self.tls.as_ref().map(|t| t.ca_der.as_slice())
    }

    /// DER of the server certificate the registry presents.
    pub fn server_cert_der(&self) -> Option<&[u8]> {
        self.tls.as_ref().map(|t| t.server_cert_der.as_slice())
    }

    /// The token issuer, for `Auth::Token` registries.
    pub fn token_issuer(&self) -> Option<&TokenIssuer> {
        self.issuer.as_ref()
    }

    /// The storage directory served.
    /// CPU time the registry process has used so far (user + system, from
    /// `/proc/<pid>/stat`), for benchmarks that weigh the registry's work
    /// against the client's; `None` where `/proc` cannot tell.
    pub fn cpu_time(&self) -> Option<std::time::Duration> {
        let pid = fs::read_to_string(&self.process.pid_file).ok()?;
        let stat = fs::read_to_string(format!("/proc/{}/stat", pid.trim())).ok()?;
        // The fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf only reads a configuration value.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let per_second = u64::try_from(per_second).ok().filter(|&n| n > 0)?;
        Some(std::time::Duration::from_millis(ticks * 1000 / per_second))
    }

    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// The registry's combined stdout/stderr so far (all start attempts).
    pub fn log(&self) -> String {
        let mut logs: Vec<PathBuf> = fs::read_dir(self.workdir.path())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        logs.retain(|p| p.extension().is_some_and(|e| e == "log"));
        logs.sort();
        logs.iter()
            .map(|p| fs::read_to_string(p).unwrap_or_default())
            .collect()
    }

    /// Pushes an image (see [`super::push::push_image`]); only for anonymous,
    /// plain-HTTP registries (use [`super::Seed`] otherwise).
    pub fn push_image(&self, repo: &str, tag: &str, created: &str, platform: &str) -> String {
        self.assert_pushable();
        super::push::push_image(&self.base_url(), repo, tag, created, platform)
    }

    /// Pushes an index (see [`super::push::push_index`]); only for anonymous,
    /// plain-HTTP registries (use [`super::Seed`] otherwise).
    pub fn push_index(&self, repo: &str, tag: &str, images: &[(&str, &str)]) -> String {
        self.assert_pushable();
        super::push::push_index(&self.base_url(), repo, tag, images)
    }

    fn assert_pushable(&self) {
        assert!(
            matches!(self.options.auth, Auth::None) && self.tls.is_none(),
            "the harness pushes only to anonymous plain-HTTP registries; use support::Seed \
             to seed an authenticated or TLS registry"
        );
    }

    /// Stops the registry now (as drop does) and returns the storage
    /// directory's owner guard, if the harness created it.
    pub fn stop(mut self) -> Option<TempDir> {
        self.process.kill();
        self.storage_guard.take()
    }
}

/// The watchdog shell and the registry it runs.
struct Process {
    child: Option<Child>,
    watchdog: Option<ChildStdin>,
    pid_file: PathBuf,
}

impl Process {
    /// Runs the registry under `sh` so that it dies when our end of the
    /// watchdog's stdin closes (drop, or the test process dying).
    fn spawn(binary: &Path, config: &Path, log: &Path, workdir: &Path) -> Process {
        let log_file = fs::File::create(log).expect("create registry log");
        let pid_file = workdir.join("registry.pid");
        let script = r#"exec 3<&0
"$0" serve "$1" </dev/null &
pid=$!
echo "$pid" > "$2"
( read -r _ <&3; kill "$pid" 2>/dev/null ) </dev/null &
exec 3<&-
wait "$pid"
"#;
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(script)
            .arg(binary)
            .arg(config)
            .arg(&pid_file)
            .current_dir(workdir)
            .stdin(Stdio::piped())
            .stdout(log_file.try_clone().expect("clone log handle"))
            .stderr(log_file);
        // Keep the developer's REGISTRY_* overrides from changing the config.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("REGISTRY_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn sh for {}: {e}", binary.display()));
        let watchdog = child.stdin.take();
        Process {
            child: Some(child),
            watchdog,
            pid_file,
        }
    }

    /// Ready when the registry logged that it listens on `port` (so a
    /// bind failure is never mistaken for another server on the same port)
    /// and `/v2/` answers over HTTP.
    fn wait_ready(&mut self, port: u16, log: &Path) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = format!("http://127.0.0.1:{port}/v2/");
        let listening = format!("listening on 127.0.0.1:{port}");
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok())
                .flatten()
            {
                return Err(format!("process exited with {status}"));
            }
            // Any HTTP answer counts: 200/401, or Go's plain-HTTP-to-HTTPS 400.
            if fs::read_to_string(log).is_ok_and(|l| l.contains(&listening))
                && http::request("GET", &url, &[], b"").is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no answer on {url} within {READY_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        // Closing the watchdog's stdin makes it kill the registry.
        drop(self.watchdog.take());
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => break,
            }
        }
        // The watchdog did not finish: kill the registry by its recorded pid,
        // then the watchdog shell itself.
        if let Ok(pid) = fs::read_to_string(&self.pid_file) {
            let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Finds `docker-registry`, or panics with the install hint.
pub fn registry_binary() -> PathBuf {
    find_program("docker-registry").unwrap_or_else(|| {
        panic!("`docker-registry` (CNCF distribution) was not found on PATH or in /usr/bin; {INSTALL_HINT}")
    })
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A port that was free a moment ago (bind :0, read, drop).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0 to find a free port")
        .port()
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).expect("string to JSON")
}

fn config_yaml(
    port: u16,
    storage: &Path,
    tls: bool,
    workdir: &Path,
    auth_yaml: &str,
    access_log: bool,
) -> String {
    let mut y = String::new();
    y.push_str("version: 0.1\n");
    y.push_str(&format!(
        "log:\n  level: info\n  accesslog:\n    disabled: {}\n",
        !access_log
    ));
    y.push_str("storage:\n  filesystem:\n");
    y.push_str(&format!(
        "    rootdirectory: {}\n",
        yaml_str(&storage.to_string_lossy())
    ));
    y.push_str("  delete:\n    enabled: true\n");
    y.push_str("  maintenance:\n    uploadpurging:\n      enabled: false\n");
    y.push_str("http:\n");
    y.push_str(&format!("  addr: \"127.0.0.1:{port}\"\n"));
    y.push_str(&format!("  secret: {}\n", yaml_str(&super::random_hex(16))));
    y.push_str("  headers:\n    X-Content-Type-Options: [nosniff]\n");
    if tls {
        y.push_str("  tls:\n");
        y.push_str(&format!(
            "    certificate: {}\n",
            yaml_str(&workdir.join("server.pem").to_string_lossy())
        ));
        y.push_str(&format!(
            "    key: {}\n",
            yaml_str(&workdir.join("server-key.pem").to_string_lossy())
        ));
    }
    y.push_str(auth_yaml);
    y
}

fn auth_yaml(auth: &Auth, workdir: &Path, issuer: Option<&TokenIssuer>) -> String {
    match auth {
        Auth::None => String::new(),
        Auth::Htpasswd { users } => {
            let path = workdir.join("htpasswd");
            write_htpasswd(&path, users);
            format!(
                "auth:\n  htpasswd:\n    realm: \"harness-registry\"\n    path: {}\n",
                yaml_str(&path.to_string_lossy())
            )
        }
        Auth::Token(_) => {
            let issuer = issuer.expect("token issuer started");
            let bundle = workdir.join("token-root.pem");
            fs::write(&bundle, issuer.cert_pem()).expect("write rootcertbundle");
            format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                yaml_str(&issuer.realm()),
                yaml_str(issuer.service()),
                yaml_str(issuer.issuer()),
                yaml_str(&bundle.to_string_lossy())
            )
        }
    }
}

fn write_htpasswd(path: &Path, users: &[(String, String)]) {
    let htpasswd = find_program("htpasswd").unwrap_or_else(|| {
        panic!("`htpasswd` (apache2-utils) was not found on PATH or in /usr/bin; {INSTALL_HINT}")
    });
    let mut file = fs::File::create(path).expect("create htpasswd file");
    for (user, password) in users {
        let out = Command::new(&htpasswd)
            .args(["-Bbn", user, password])
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}; {INSTALL_HINT}", htpasswd.display()));
        assert!(
            out.status.success(),
            "htpasswd -Bbn {user} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // `htpasswd -n` prints "user:hash" and an empty line.
        let line = String::from_utf8_lossy(&out.stdout);
        writeln!(file, "{}", line.trim()).expect("write htpasswd file");
    }
}

pub fn write_tls_files(workdir: &Path) -> TlsFiles {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::generate().expect("generate CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "image-update harness test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign CA");
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().expect("generate server key");
    let mut server_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("server certificate params");
    server_params.distinguished_name = DistinguishedName::new();
    server_params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    server_params.is_ca = IsCa::ExplicitNoCa;
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.use_authority_key_identifier_extension = true;
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .expect("sign server certificate");

    let ca_pem_path = workdir.join("ca.pem");
    fs::write(&ca_pem_path, ca_cert.pem()).expect("write ca.pem");
    fs::write(workdir.join("server.pem"), server_cert.pem()).expect("write server.pem");
    fs::write(workdir.join("server-key.pem"), server_key.serialize_pem())
        .expect("write server-key.pem");
    TlsFiles {
        ca_pem_path,
        ca_der: ca_cert.der().to_vec(),
        server_cert_der: server_cert.der().to_vec(),
    }
}
