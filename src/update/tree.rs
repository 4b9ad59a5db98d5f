//! Reading the tree: every file once, screened by a byte search, parsed on
//! all cores, each dialect's resources declared and each editable file's
//! markers found; and the `--policies` directories, read the same way but
//! never edited. Every file that cannot be read or parsed becomes a problem
//! naming it, judged by what it holds.

use std::path::{Path, PathBuf};

use crate::argocd;
use crate::flux;
use crate::marker::{self, Marker};
use crate::outcome::{Problem, Severity};
use crate::scan::{self, Filter};
use crate::yaml;

/// A file that carries markers.
pub(super) struct MarkedFile {
    pub(super) rel: String,
    pub(super) src: String,
    pub(super) markers: Vec<Marker>,
}

/// What one file contributes to the run.
#[derive(Default)]
struct Reading {
    problems: Vec<Problem>,
    /// The parsed file, when it may hold Flux resources.
    resources: Option<(String, yaml::Stream)>,
    marked: Option<MarkedFile>,
    /// Set when the file declares Flux resources and cannot be parsed.
    unread: Option<flux::Origin>,
    /// Set when the file declares an Argo CD ImageUpdater and cannot be
    /// parsed.
    unread_updater: Option<String>,
}

/// Reads every file once: Flux resources from any YAML file, markers from the
/// editable ones. Files are screened by a byte search before any parsing, and
/// read and parsed on all cores; the results are merged in walk order.
pub(super) fn read_tree(
    root: &Path,
    filter: &Filter,
    leftovers: scan::Leftovers,
    controller_ns: &str,
    problems: &mut Vec<Problem>,
) -> (
    Vec<MarkedFile>,
    flux::Resources,
    argocd::config::Declarations,
) {
    let readings = scan::walk_map(root, filter, leftovers, |entry| match entry {
        Ok(entry) => read_file(&entry, entry.editable),
        Err(problem) => Reading {
            problems: vec![problem],
            ..Reading::default()
        },
    });
    let mut resources = flux::Resources::default();
    let mut argo = argocd::config::Declarations::default();
    let mut marked = Vec::new();
    for reading in readings {
        problems.extend(reading.problems);
        if let Some((rel, stream)) = reading.resources {
            declare(&rel, &stream, &mut resources, &mut argo, controller_ns);
        }
        resources.unread.extend(reading.unread);
        argo.unread.extend(reading.unread_updater);
        marked.extend(reading.marked);
    }
    (marked, resources, argo)
}

/// Every resource of one parsed file, to the readers of each dialect.
fn declare(
    rel: &str,
    stream: &yaml::Stream,
    resources: &mut flux::Resources,
    argo: &mut argocd::config::Declarations,
    controller_ns: &str,
) {
    for (i, document) in stream.documents.iter().enumerate() {
        resources.read(rel, &document.root);
        argo.read(rel, i, &document.root, controller_ns);
        if let Some(unified) = crate::kubesphere::feed(resources, rel, &document.root) {
            argo.add_unified(&unified);
        }
    }
}

/// The `--policies` directories: their resources are read as the tree's
/// are, their markers never, and nothing in them is edited. Their files are
/// named `<PATH>/<file>` (PATH as given, `./` before a relative one that
/// has none), which no tree file can be, so an Application read there is
/// never read or written as a tree file. Returns those prefixes, each with
/// its directory.
/// `root` is the tree, when there is one (a PATH inside it is skipped).
pub fn read_policies(
    root: Option<&Path>,
    dirs: &[PathBuf],
    resources: &mut flux::Resources,
    argo: &mut argocd::config::Declarations,
    controller_ns: &str,
    problems: &mut Vec<Problem>,
) -> Vec<(String, PathBuf)> {
    let tree = root.and_then(|r| r.canonicalize().ok());
    let mut prefixes = Vec::new();
    for dir in dirs {
        let mut prefix = dir
            .to_string_lossy()
            .replace('\\', "/")
            .trim_end_matches('/')
            .to_string();
        // `infra` becomes `./infra`: a name no file of the tree can have.
        if dir.is_relative() && !prefix.starts_with("./") && !prefix.starts_with("../") {
            prefix = format!("./{prefix}");
        }
        if let (Some(tree), Ok(d)) = (&tree, dir.canonicalize())
            && d.starts_with(tree)
        {
            problems.push(Problem::general(
                Severity::Warning,
                format!("--policies {prefix} is inside the tree, which is read anyway; ignored"),
            ));
            continue;
        }
        let named = |rel: &str| format!("{prefix}/{rel}");
        let readings =
            scan::walk_map(
                dir,
                &Filter::default(),
                scan::Leftovers::Skip,
                |entry| match entry {
                    // Never edited, but asked for: a file we cannot parse is said.
                    Ok(entry) => read_file(
                        &scan::Entry {
                            editable: false,
                            ..entry
                        },
                        true,
                    ),
                    Err(problem) => Reading {
                        problems: vec![problem],
                        ..Reading::default()
                    },
                },
            );
        for reading in readings {
            problems.extend(reading.problems.into_iter().map(|mut p| {
                p.file = p.file.map(|f| named(&f));
                p
            }));
            if let Some((rel, stream)) = reading.resources {
                declare(&named(&rel), &stream, resources, argo, controller_ns);
            }
            resources
                .unread
                .extend(reading.unread.map(|o| flux::Origin {
                    file: named(&o.file),
                    ..o
                }));
            argo.unread
                .extend(reading.unread_updater.map(|f| named(&f)));
        }
        prefixes.push((prefix, dir.clone()));
    }
    prefixes
}

/// A file of the tree by its relative path, for the Argo CD planner: never
/// outside the tree, never through a symbolic link.
pub(super) fn read_in_tree(root: &Path, rel: &str) -> Option<String> {
    let path = Path::new(rel);
    if path.is_absolute()
        || path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return None;
    }
    let full = root.join(path);
    let mut dir = root.to_path_buf();
    for component in path.components() {
        dir.push(component);
        if std::fs::symlink_metadata(&dir)
            .ok()?
            .file_type()
            .is_symlink()
        {
            return None;
        }
    }
    std::fs::read_to_string(full).ok()
}

/// A UTF-16 file (by its byte-order mark) that would hold markers or
/// resources if it were read as text: reported, since the byte screen for
/// UTF-8 tokens would pass over it in silence.
fn utf16_with_declarations(rel: &str, bytes: &[u8]) -> Option<Problem> {
    let (order, little) = match bytes {
        [0xFF, 0xFE, ..] => ("FF FE", true),
        [0xFE, 0xFF, ..] => ("FE FF", false),
        _ => return None,
    };
    let units = bytes[2..].chunks_exact(2).map(|p| match little {
        true => u16::from_le_bytes([p[0], p[1]]),
        false => u16::from_be_bytes([p[0], p[1]]),
    });
    let text: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    [
        marker::TOKEN,
        flux::API_GROUP,
        argocd::config::SCREEN,
        crate::kubesphere::API_GROUP,
    ]
    .iter()
    .any(|token| text.contains(token))
    .then(|| {
        Problem::file(
            rel,
            Severity::Error,
            format!(
                "UTF-16 text (byte-order mark {order}) with image-update declarations; only UTF-8 is read: convert it to UTF-8; left untouched"
            ),
        )
    })
}

/// Reads one file; `say_unparsable` is whether a file we need that does
/// not parse is reported (not for a tree file `--exclude`d from editing).
fn read_file(entry: &scan::Entry, say_unparsable: bool) -> Reading {
    let mut reading = Reading::default();
    let rel = entry.rel.as_str();
    let bytes = match std::fs::read(&entry.path) {
        Ok(bytes) => bytes,
        Err(e) => {
            reading.problems.push(Problem::file(
                rel,
                Severity::Error,
                format!("cannot read: {e}"),
            ));
            return reading;
        }
    };
    if let Some(problem) = scan::is_yaml_name(rel)
        .then(|| utf16_with_declarations(rel, &bytes))
        .flatten()
    {
        reading.problems.push(problem);
        return reading;
    }
    // Markers in files we may not edit are not our business: such a file is
    // parsed only when it may hold Flux resources.
    let has_marker =
        entry.editable && memchr::memmem::find(&bytes, marker::TOKEN.as_bytes()).is_some();
    let has_resource = memchr::memmem::find(&bytes, flux::API_GROUP.as_bytes()).is_some()
        || memchr::memmem::find(&bytes, argocd::config::SCREEN.as_bytes()).is_some()
        || memchr::memmem::find(&bytes, crate::kubesphere::API_GROUP.as_bytes()).is_some();
    if !has_marker && !has_resource {
        return reading;
    }
    if !scan::is_yaml_name(rel) {
        if has_marker && !rel.ends_with(".md") {
            reading.problems.push(Problem::file(
                rel,
                Severity::Info,
                "mentions $imagepolicy, but markers are read only in *.yaml, *.yml and Kustomization files",
            ));
        }
        return reading;
    }
    let src = match String::from_utf8(bytes) {
        Ok(src) => src,
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = 1 + memchr::memchr_iter(b'\n', valid).count();
            let column = 1 + valid.len() - memchr::memrchr(b'\n', valid).map_or(0, |i| i + 1);
            reading.problems.push(Problem::at(
                rel,
                line,
                Some(column),
                Severity::Error,
                format!("not UTF-8 text ({}); left untouched", e.utf8_error()),
            ));
            return reading;
        }
    };
    let stream = match yaml::parse(&src) {
        Ok(stream) => stream,
        Err(e) => {
            let problem = unparsable(rel, &src, has_marker, say_unparsable, &e);
            // What it declares is unknown: it may hold a folder's copy.
            if problem
                .as_ref()
                .is_some_and(|p| p.severity == Severity::Error)
            {
                if declares(&src, &[flux::API_GROUP, crate::kubesphere::API_GROUP]) {
                    reading.unread = Some(flux::Origin {
                        file: rel.to_string(),
                        line: e.line,
                    });
                }
                if declares(&src, &[argocd::config::UPDATER_API]) {
                    reading.unread_updater = Some(rel.to_string());
                }
            }
            reading.problems.extend(problem);
            return reading;
        }
    };
    if has_marker {
        let found = marker::find(&src, &stream);
        reading.problems.extend(found.ignored.into_iter().map(|i| {
            Problem::at(
                rel,
                i.line,
                Some(i.column),
                Severity::Warning,
                format!("marker ignored: {}", i.reason),
            )
        }));
        if !found.markers.is_empty() {
            reading.marked = Some(MarkedFile {
                rel: rel.to_string(),
                src,
                markers: found.markers,
            });
        }
    }
    if has_resource {
        reading.resources = Some((rel.to_string(), stream));
    }
    reading
}

/// What to say about a file that is not YAML. Only a file we need is an
/// error: one with markers to update, or one that declares resources of
/// ours (an `apiVersion:` line of their groups). A Helm template that
/// merely mentions a group (an `argocd.argoproj.io/hook` annotation, say)
/// is passed over in silence, as Flux passes over files it cannot parse;
/// one that declares resources gets a note, since templates are not read;
/// a tree file excluded from editing is never reported (`say` false).
fn unparsable(
    rel: &str,
    src: &str,
    has_marker: bool,
    say: bool,
    e: &yaml::SyntaxError,
) -> Option<Problem> {
    if !say {
        return None;
    }
    // A file that is YAML but for a repeated key is no template, whatever
    // its values mention (an automation's `{{range …}}` message template).
    let template = src.contains("{{") && yaml::parse_full(src).is_err();
    let declares = declares(
        src,
        &[
            flux::API_GROUP,
            argocd::config::SCREEN,
            argocd::config::UPDATER_API,
            crate::kubesphere::API_GROUP,
        ],
    );
    let (severity, message) = match (has_marker, declares, template) {
        (true, _, _) | (false, true, false) => (
            Severity::Error,
            format!(
                "malformed YAML: {}; file left untouched{}",
                e.message,
                template_hint(template, rel)
            ),
        ),
        (false, true, true) => (
            Severity::Info,
            format!(
                "a template ({{{{ }}}}), not YAML ({}): the resources it declares are not read; render it to update them",
                e.message
            ),
        ),
        (false, false, _) => return None,
    };
    Some(Problem::at(rel, e.line, Some(e.column), severity, message))
}

/// Whether `src` has an `apiVersion:` line of one of `groups`: it declares
/// resources of that group (a mere mention, in an annotation, does not).
fn declares(src: &str, groups: &[&str]) -> bool {
    src.lines().any(|line| {
        let line = line.trim_start().trim_start_matches("- ");
        line.strip_prefix("apiVersion:").is_some_and(|v| {
            let group = v.trim().trim_matches(['"', '\'']);
            groups.iter().any(|g| group.starts_with(g))
        })
    })
}

/// For a file that does not parse because it is a template (Helm's
/// `templates/`, or any `{{ }}`), how to stop reading it.
fn template_hint(template: bool, rel: &str) -> String {
    if template {
        let dir = rel.rsplit_once('/').map_or("", |(dir, _)| dir);
        let glob = if dir.is_empty() {
            rel.to_string()
        } else {
            format!("{dir}/**")
        };
        format!(
            " (it looks like a template, e.g. a Helm chart's: leave it out with --exclude '{glob}')"
        )
    } else {
        String::new()
    }
}
