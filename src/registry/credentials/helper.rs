//! The docker credential-helper protocol: which `docker-credential-*`
//! program a helper name means, finding it on `PATH`, and running `get` with
//! a timeout and an output limit, its answer parsed and its stdout never
//! quoted (that is where the secret is).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::config::{json_reason, string_field};
use super::{CredentialError, HELPER_OUTPUT_LIMIT, STDERR_QUOTE_CHARS, Secret};

/// Variables handed to helpers. Its `Debug` shows names only.
#[derive(Clone)]
pub(super) struct HelperEnv(pub(super) BTreeMap<String, String>);

impl fmt::Debug for HelperEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

pub(super) fn helper_program(name: &str) -> String {
    format!("docker-credential-{name}")
}

pub(super) fn executable_names(program: &str) -> impl Iterator<Item = String> {
    let mut names = vec![program.to_string()];
    if cfg!(windows) {
        names.push(format!("{program}.exe"));
    }
    names.into_iter()
}

#[cfg(unix)]
pub(super) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
pub(super) fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// Runs `program get` with the docker credential-helper protocol. `Ok(None)`
/// is the helper's "credentials not found". Stdout is parsed and dropped,
/// never quoted: it is where the secret is.
pub(super) fn run_helper(
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
pub(super) fn read_in_background<R: Read + Send + 'static>(
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
pub(super) fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
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

pub(super) fn describe_status(status: ExitStatus) -> String {
    match status.code() {
        Some(code) => format!("exit status {code}"),
        None => status.to_string(),
    }
}

/// The first non-empty stderr line, control characters removed, at most
/// `STDERR_QUOTE_CHARS` characters. Helpers should not print secrets on
/// stderr; the bound limits the damage of one that does.
pub(super) fn first_line(stderr: &[u8]) -> String {
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
