//! Writing into the working tree, and only into it.
//!
//! Every file the tool creates or rewrites goes through here, whatever the
//! mode (`run`, `fn` write-backs, `create`, `serve`), so the rules hold in one
//! place:
//!
//! - A path is resolved one component at a time below the tree's root: `..`
//!   is refused, and so is a symbolic link anywhere on the way (a directory
//!   link such as `apps -> ../elsewhere`, or the file itself). The root may be
//!   a link; nothing below it may.
//! - Writes are atomic: a temporary file in the same directory, synced, then
//!   renamed over the old file (or linked to a new name, which fails when the
//!   name appeared meanwhile).
//! - The temporary file has its final owner and mode before a byte is written,
//!   so an interrupted write never leaves a copy more readable than the file
//!   it was copying. A rewritten file keeps its mode and owner; a new file
//!   (and a new directory) gets what `touch` (`mkdir`) would give it, 0666
//!   (0777) less the umask, and the owner of its directory, which matters when
//!   the tool runs as root in a workspace another user owns.
//! - Temporary files are named `.<name>.image-update-<pid>-<n>.tmp`. The ones
//!   of the current process are removed on SIGTERM and SIGINT; ones an
//!   earlier, killed process left behind are removed by the next walk once
//!   they are [`STALE_AFTER`] old.

use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

/// How old a temporary file of ours must be before a later run removes it.
/// A write takes milliseconds; a younger one may belong to a run in progress.
pub const STALE_AFTER: Duration = Duration::from_secs(15 * 60);

const TEMP_MARK: &str = ".image-update-";

static TEMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A path the tool will not write (carried inside an [`io::Error`]; see
/// [`refusal`]).
#[derive(Debug, thiserror::Error)]
#[error("refusing to write {rel}: {why}")]
pub struct Refused {
    pub rel: String,
    pub why: String,
}

fn refused(rel: &str, why: String) -> io::Error {
    io::Error::other(Refused {
        rel: rel.to_string(),
        why,
    })
}

/// The refusal inside an error from [`replace_file`] or [`create_file`], if
/// that is why it failed.
pub fn refusal(e: &io::Error) -> Option<&Refused> {
    e.get_ref().and_then(|r| r.downcast_ref::<Refused>())
}

/// `root/rel`, after checking that every component below `root` is a real
/// directory (created when `create_dirs`, else it must exist) and the last one
/// is not a symbolic link.
pub fn confine(root: &Path, rel: &str, create_dirs: bool) -> io::Result<PathBuf> {
    let parts: Vec<&str> = Path::new(rel)
        .components()
        .map(|c| match c {
            Component::Normal(p) => p.to_str().ok_or(()),
            _ => Err(()),
        })
        .collect::<Result<_, ()>>()
        .map_err(|()| {
            refused(
                rel,
                "the path must stay inside the tree (no `..`, no absolute path)".into(),
            )
        })?;
    let Some((file, dirs)) = parts.split_last() else {
        return Err(refused(rel, "empty path".into()));
    };
    let mut path = root.to_path_buf();
    for (i, dir) in dirs.iter().enumerate() {
        let parent = path.clone();
        path.push(dir);
        let shown = parts[..=i].join("/");
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(refused(
                    rel,
                    format!("{shown} is a symbolic link; writes never go through links"),
                ));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(refused(rel, format!("{shown} is not a directory"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create_dirs => {
                match fs::create_dir(&path) {
                    Ok(()) => give_to_owner_of(&parent, &path),
                    // Someone made it meanwhile: check it again.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        let m = fs::symlink_metadata(&path)?;
                        if !m.is_dir() {
                            return Err(refused(rel, format!("{shown} is not a directory")));
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    path.push(file);
    if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(refused(
            rel,
            "it is a symbolic link; writes never go through links".into(),
        ));
    }
    Ok(path)
}

/// Replaces `root/rel` atomically, keeping its mode and owner. When the file
/// no longer holds `expected` (someone changed it while we worked), nothing
/// is written. A read-only file is refused, not rewritten behind its
/// owner's back.
pub fn replace_file(root: &Path, rel: &str, expected: &[u8], contents: &[u8]) -> io::Result<()> {
    let path = confine(root, rel, false)?;
    let metadata = fs::symlink_metadata(&path)?;
    if !metadata.is_file() {
        return Err(refused(rel, "it is not a regular file".into()));
    }
    if metadata.permissions().readonly() {
        return Err(refused(
            rel,
            "the file is read-only; make it writable to let image-update update it".into(),
        ));
    }
    write_via_temp(&path, &Born::Like(metadata), contents, |temp| {
        if fs::read(&path)? != expected {
            return Err(io::Error::other(
                "the file changed while image-update ran; not written",
            ));
        }
        fs::rename(temp, &path)
    })
}

/// Creates `root/rel` atomically (complete or absent), creating its
/// directories when needed; refuses to replace a file that appeared meanwhile
/// (`AlreadyExists`).
pub fn create_file(root: &Path, rel: &str, contents: &[u8]) -> io::Result<()> {
    let path = confine(root, rel, true)?;
    let dir = path.parent().unwrap_or(root);
    write_via_temp(&path, &Born::New(dir), contents, |temp| {
        fs::hard_link(temp, &path)?;
        fs::remove_file(temp)
    })
}

/// What a temporary file's owner and mode come from.
enum Born<'a> {
    /// The file it replaces.
    Like(fs::Metadata),
    /// A new file in this directory.
    New(&'a Path),
}

fn write_via_temp(
    path: &Path,
    born: &Born,
    contents: &[u8],
    finish: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{name}{TEMP_MARK}{}-{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let guard = interrupt::Registered::new(&temp);
    let result = (|| {
        let mut file = open_temp(&temp, born)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        finish(&temp)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    drop(guard);
    result
}

#[cfg(unix)]
fn open_temp(temp: &Path, born: &Born) -> io::Result<fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    match born {
        Born::Like(old) => {
            // Born unreadable, then the old file's owner, then its mode: at
            // no moment wider than the file it replaces.
            let file = options.mode(0o000).open(temp)?;
            // Only root may give a file away; for others this fails
            // harmlessly and the file is theirs anyway.
            let _ = std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid()));
            file.set_permissions(fs::Permissions::from_mode(old.mode() & 0o7777))?;
            Ok(file)
        }
        Born::New(dir) => {
            // The kernel applies the umask: the final mode from the start.
            let file = options.mode(0o666).open(temp)?;
            if let Ok(d) = fs::metadata(dir) {
                let _ = std::os::unix::fs::fchown(&file, Some(d.uid()), Some(d.gid()));
            }
            Ok(file)
        }
    }
}

#[cfg(not(unix))]
fn open_temp(temp: &Path, born: &Born) -> io::Result<fs::File> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)?;
    if let Born::Like(old) = born {
        file.set_permissions(old.permissions())?;
    }
    Ok(file)
}

/// A directory we made belongs to whoever owns its parent.
fn give_to_owner_of(parent: &Path, path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(p) = fs::metadata(parent) {
            let _ = std::os::unix::fs::lchown(path, Some(p.uid()), Some(p.gid()));
        }
    }
    #[cfg(not(unix))]
    let _ = (parent, path);
}

/// Whether a file name is one of our temporary files:
/// `.<name>.image-update-<pid>-<n>.tmp`, exactly.
pub fn is_temp_name(file_name: &str) -> bool {
    let Some(rest) = file_name
        .strip_prefix('.')
        .and_then(|r| r.strip_suffix(".tmp"))
    else {
        return false;
    };
    let Some((name, numbers)) = rest.rsplit_once(TEMP_MARK) else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    !name.is_empty()
        && numbers
            .split_once('-')
            .is_some_and(|(p, n)| digits(p) && digits(n))
}

/// Removes `path` when it is a temporary file of ours (by name) that is a
/// regular file last modified at least [`STALE_AFTER`] before `now`; whether
/// it did.
pub fn remove_if_stale(path: &Path, now: SystemTime) -> bool {
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(is_temp_name);
    let old = fs::symlink_metadata(path).is_ok_and(|m| {
        m.is_file()
            && m.modified()
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age >= STALE_AFTER))
    });
    named && old && fs::remove_file(path).is_ok()
}

/// Removing the temporary files in flight when SIGTERM or SIGINT arrives.
///
/// The handler may only do async-signal-safe work, so the paths live in a
/// fixed table of byte buffers that it reads without locks or allocation;
/// after unlinking them it restores the default action and raises the signal
/// again, so the process ends the way it would have.
mod interrupt {
    #[cfg(unix)]
    mod imp {
        use std::cell::UnsafeCell;
        use std::os::unix::ffi::OsStrExt;
        use std::path::Path;
        use std::sync::Once;
        use std::sync::atomic::{AtomicU8, Ordering};

        const SLOTS: usize = 64;
        const LEN: usize = 4096;
        const FREE: u8 = 0;
        const BUSY: u8 = 1;
        const READY: u8 = 2;

        struct Slot {
            state: AtomicU8,
            path: UnsafeCell<[u8; LEN]>,
        }

        // SAFETY: a slot's bytes are written only by the thread that moved
        // it from FREE to BUSY, and read (by the handler) only while READY.
        unsafe impl Sync for Slot {}

        static TABLE: [Slot; SLOTS] = [const {
            Slot {
                state: AtomicU8::new(FREE),
                path: UnsafeCell::new([0; LEN]),
            }
        }; SLOTS];

        static INSTALL: Once = Once::new();

        extern "C" fn on_signal(signal: libc::c_int) {
            for slot in &TABLE {
                if slot.state.load(Ordering::Acquire) == READY {
                    // SAFETY: READY slots hold a NUL-terminated path.
                    unsafe { libc::unlink(slot.path.get().cast::<libc::c_char>()) };
                }
            }
            // SAFETY: async-signal-safe calls that end the process as the
            // signal's default action would.
            unsafe {
                libc::signal(signal, libc::SIG_DFL);
                libc::raise(signal);
            }
        }

        fn install() {
            INSTALL.call_once(|| {
                for signal in [libc::SIGTERM, libc::SIGINT] {
                    // SAFETY: installing a handler that only uses
                    // async-signal-safe calls; an ignored signal (nohup)
                    // stays ignored.
                    unsafe {
                        let mut old: libc::sigaction = std::mem::zeroed();
                        libc::sigaction(signal, std::ptr::null(), &mut old);
                        if old.sa_sigaction == libc::SIG_IGN {
                            continue;
                        }
                        let mut action: libc::sigaction = std::mem::zeroed();
                        action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                        libc::sigemptyset(&mut action.sa_mask);
                        libc::sigaction(signal, &action, std::ptr::null_mut());
                    }
                }
            });
        }

        pub struct Registered(Option<usize>);

        impl Registered {
            pub fn new(path: &Path) -> Registered {
                install();
                let bytes = path.as_os_str().as_bytes();
                if bytes.len() >= LEN {
                    return Registered(None);
                }
                for (i, slot) in TABLE.iter().enumerate() {
                    if slot
                        .state
                        .compare_exchange(FREE, BUSY, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        // SAFETY: this thread owns the BUSY slot.
                        let buf = unsafe { &mut *slot.path.get() };
                        buf[..bytes.len()].copy_from_slice(bytes);
                        buf[bytes.len()] = 0;
                        slot.state.store(READY, Ordering::Release);
                        return Registered(Some(i));
                    }
                }
                // More writes in flight than slots: this one is left to the
                // stale-file cleanup.
                Registered(None)
            }
        }

        impl Drop for Registered {
            fn drop(&mut self) {
                if let Some(i) = self.0 {
                    TABLE[i].state.store(FREE, Ordering::Release);
                }
            }
        }
    }

    #[cfg(not(unix))]
    mod imp {
        pub struct Registered;
        impl Registered {
            pub fn new(_: &std::path::Path) -> Registered {
                Registered
            }
        }
    }

    /// A temporary file removed if the process is interrupted while this lives.
    pub use imp::Registered;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_file_never_replaces_one_that_appeared() {
        let dir = tempfile::tempdir().unwrap();
        create_file(dir.path(), "new/dir/a.yaml", b"a: 1\n").unwrap();
        let path = dir.path().join("new/dir/a.yaml");
        assert_eq!(fs::read_to_string(&path).unwrap(), "a: 1\n");
        let err = create_file(dir.path(), "new/dir/a.yaml", b"a: 2\n").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&path).unwrap(), "a: 1\n");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn a_file_changed_behind_our_back_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.yaml");
        fs::write(&path, "a: 2\n").unwrap();
        let err = replace_file(dir.path(), "a.yaml", b"a: 1\n", b"a: 3\n").unwrap_err();
        assert!(err.to_string().contains("changed while"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "a: 2\n");
        replace_file(dir.path(), "a.yaml", b"a: 2\n", b"a: 3\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "a: 3\n");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "a temporary file was left behind"
        );
    }

    #[test]
    fn parent_paths_and_absolute_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for rel in ["../x.yaml", "a/../../x.yaml", "/etc/x.yaml", ""] {
            let err = create_file(dir.path(), rel, b"x").unwrap_err();
            assert!(
                err.to_string().contains("refusing to write"),
                "{rel}: {err}"
            );
        }
        assert!(!dir.path().parent().unwrap().join("x.yaml").exists());
    }

    #[cfg(unix)]
    #[test]
    fn writes_never_go_through_a_linked_directory_or_file() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("apps")).unwrap();
        fs::write(outside.path().join("a.yaml"), "a: 1\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("a.yaml"), dir.path().join("b.yaml"))
            .unwrap();
        let err = create_file(dir.path(), "apps/web/new.yaml", b"x").unwrap_err();
        assert!(err.to_string().contains("apps is a symbolic link"), "{err}");
        let err = replace_file(dir.path(), "apps/a.yaml", b"a: 1\n", b"a: 2\n").unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = replace_file(dir.path(), "b.yaml", b"a: 1\n", b"a: 2\n").unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(
            fs::read_to_string(outside.path().join("a.yaml")).unwrap(),
            "a: 1\n"
        );
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn new_files_get_touch_modes_and_rewrites_keep_theirs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let umask = current_umask();
        create_file(dir.path(), "d/new.yaml", b"x").unwrap();
        let mode = |p: &str| {
            fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("d/new.yaml"), 0o666 & !umask);
        assert_eq!(mode("d"), 0o777 & !umask);
        fs::write(dir.path().join("private.yaml"), "a: 1\n").unwrap();
        fs::set_permissions(
            dir.path().join("private.yaml"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        replace_file(dir.path(), "private.yaml", b"a: 1\n", b"a: 2\n").unwrap();
        assert_eq!(mode("private.yaml"), 0o600);
    }

    /// Hardening 18.2: as root (the GitHub Action's container) a new file
    /// and a new directory belong to the owner of the directory they are
    /// made in, not to root. Needs root to give files away; otherwise there
    /// is nothing to check.
    #[cfg(unix)]
    #[test]
    fn new_files_take_the_owner_of_their_directory() {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: a plain query.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: giving files away needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(4321), Some(4322)).unwrap();
        create_file(dir.path(), "apps/.argocd-source-web.yaml", b"x").unwrap();
        for made in ["apps", "apps/.argocd-source-web.yaml"] {
            let m = fs::metadata(dir.path().join(made)).unwrap();
            assert_eq!((m.uid(), m.gid()), (4321, 4322), "{made}");
        }
    }

    /// The temporary copy of a private file is never readable by others,
    /// even before its content is complete: its mode is set before writing.
    #[cfg(unix)]
    #[test]
    fn the_temporary_copy_of_a_private_file_is_private_from_the_start() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.yaml");
        fs::write(&path, "a: 1\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let metadata = fs::metadata(&path).unwrap();
        let temp = dir.path().join(".secret.yaml.image-update-1-1.tmp");
        let file = open_temp(&temp, &Born::Like(metadata)).unwrap();
        // Nothing written yet, and already the final mode.
        assert_eq!(file.metadata().unwrap().len(), 0);
        assert_eq!(
            fs::metadata(&temp).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[cfg(unix)]
    #[test]
    fn read_only_files_are_reported_not_rewritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro.yaml");
        fs::write(&path, "a: 1\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
        let err = replace_file(dir.path(), "ro.yaml", b"a: 1\n", b"a: 2\n").unwrap_err();
        assert!(err.to_string().contains("read-only"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "a: 1\n");
    }

    #[cfg(unix)]
    fn current_umask() -> u32 {
        let status = fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
        u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
    }

    /// Hardening 15.8: SIGTERM while a temporary file exists removes it and
    /// still ends the process by that signal. Runs [`interrupted_child`] in
    /// a child process of this test binary.
    #[cfg(unix)]
    #[test]
    fn sigterm_removes_the_temporary_file_in_flight() {
        use std::os::unix::process::ExitStatusExt;
        let dir = tempfile::tempdir().unwrap();
        let temp = dir.path().join(".a.yaml.image-update-1-0.tmp");
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "tree_write::tests::interrupted_child",
                "--test-threads=1",
            ])
            .env("IMAGE_UPDATE_TEST_TEMP", &temp)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        assert!(dir.path().join("created").exists(), "the child did not run");
        assert!(!temp.exists(), "the temporary file survived SIGTERM");
    }

    #[cfg(unix)]
    #[test]
    #[ignore = "run by sigterm_removes_the_temporary_file_in_flight"]
    fn interrupted_child() {
        let temp = PathBuf::from(std::env::var_os("IMAGE_UPDATE_TEST_TEMP").unwrap());
        fs::write(&temp, "half").unwrap();
        fs::write(temp.parent().unwrap().join("created"), "").unwrap();
        let _guard = interrupt::Registered::new(&temp);
        // SAFETY: raising a signal in this process.
        unsafe { libc::raise(libc::SIGTERM) };
        unreachable!("SIGTERM ends the process");
    }

    #[test]
    fn only_our_exact_temporary_names_count() {
        for yes in [
            ".a.yaml.image-update-12-0.tmp",
            ".x.image-update-1-22.tmp",
            "..hidden.yaml.image-update-3-4.tmp",
        ] {
            assert!(is_temp_name(yes), "{yes}");
        }
        for no in [
            "a.yaml.image-update-12-0.tmp",
            ".a.yaml.image-update-12.tmp",
            ".a.yaml.image-update-x-0.tmp",
            ".a.yaml.image-update-1-0.tmp.bak",
            ".image-update-1-0.tmp",
            ".tmpAbC123",
        ] {
            assert!(!is_temp_name(no), "{no}");
        }
    }

    #[test]
    fn only_old_temporary_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let temp = dir.path().join(".a.yaml.image-update-1-0.tmp");
        let other = dir.path().join("a.yaml.bak");
        fs::write(&temp, "x").unwrap();
        fs::write(&other, "x").unwrap();
        let now = SystemTime::now();
        assert!(!remove_if_stale(&temp, now), "a fresh one may be in use");
        let later = now + STALE_AFTER + Duration::from_secs(1);
        assert!(!remove_if_stale(&other, later));
        assert!(remove_if_stale(&temp, later));
        assert!(!temp.exists() && other.exists());
    }
}
