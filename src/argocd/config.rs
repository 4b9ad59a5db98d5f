//! Argo CD Image Updater's settings, read from the tree instead of a cluster.
//!
//! In a cluster the updater reads live `Application` objects and its
//! `ImageUpdater` resources; here both are documents in git. This module
//! turns them into one plain description per application: which images to
//! update and under which rules (inherited image → application ref → global,
//! field by field), and where the result is written. It also decides which
//! applications belong to this repository. It reads nothing itself: documents
//! come in, descriptions and problems go out.

use std::collections::BTreeMap;

use crate::flux::{LabelSelector, Origin, shared_dirs, string_map};
use crate::outcome::{Problem, Severity};
use crate::policy::argo::go_glob;
use crate::yaml::Node;

use super::repo_url;

mod annotations;

use annotations::images_from_annotations;

/// Found in every file worth parsing: Applications and ImageUpdaters.
pub const SCREEN: &str = "argoproj.io/";
const APPLICATION_API: &str = "argoproj.io/";
pub const UPDATER_API: &str = "argocd-image-updater.argoproj.io/";
const ANNOTATION: &str = "argocd-image-updater.argoproj.io/";
/// The namespace Argo CD runs in unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "argocd";

/// Update settings; `None` = not set here, inherit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub strategy: Option<String>,
    pub force_update: Option<bool>,
    pub allow_tags: Option<String>,
    pub ignore_tags: Option<Vec<String>>,
    pub pull_secret: Option<String>,
    pub platforms: Option<Vec<String>>,
}

impl Settings {
    /// This level's values, and `parent`'s where this level sets none.
    pub fn or(self, parent: &Settings) -> Settings {
        Settings {
            strategy: self.strategy.or_else(|| parent.strategy.clone()),
            force_update: self.force_update.or(parent.force_update),
            allow_tags: self.allow_tags.or_else(|| parent.allow_tags.clone()),
            ignore_tags: self.ignore_tags.or_else(|| parent.ignore_tags.clone()),
            pull_secret: self.pull_secret.or_else(|| parent.pull_secret.clone()),
            platforms: self.platforms.or_else(|| parent.platforms.clone()),
        }
    }

    /// An ImageUpdater's `commonUpdateSettings`.
    fn from_resource(node: Option<&Node>) -> Settings {
        let Some(node) = node else {
            return Settings::default();
        };
        Settings {
            strategy: text(node, "updateStrategy"),
            // Checked by `invalid_force_update` before a resource is kept.
            force_update: node.get("forceUpdate").and_then(|v| yaml_bool(v).ok()),
            allow_tags: text(node, "allowTags"),
            ignore_tags: node.get("ignoreTags").map(strings),
            pull_secret: text(node, "pullSecret"),
            platforms: node.get("platforms").map(strings),
        }
    }
}

/// Where and how results are written; `None` = inherit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBack {
    /// `argocd` (the default), `git`, or `git:<credentials>`.
    pub method: Option<String>,
    /// `git-branch`: `branch`, `base:write` or `:write`.
    pub branch: Option<String>,
    /// `kustomization[:dir]`, `helmvalues[:file]`; `None` = the override file.
    pub target: Option<String>,
    /// `gitConfig.repository` / `git-repository`: the repository written
    /// to, when it is not the source's (a chart from a Helm repository).
    pub repository: Option<String>,
}

impl WriteBack {
    fn or(self, parent: &WriteBack) -> WriteBack {
        WriteBack {
            method: self.method.or_else(|| parent.method.clone()),
            branch: self.branch.or_else(|| parent.branch.clone()),
            target: self.target.or_else(|| parent.target.clone()),
            repository: self.repository.or_else(|| parent.repository.clone()),
        }
    }

    fn from_resource(node: Option<&Node>) -> WriteBack {
        let Some(node) = node else {
            return WriteBack::default();
        };
        WriteBack {
            method: text(node, "method"),
            branch: node.str_at(&["gitConfig", "branch"]).map(str::to_string),
            target: node
                .str_at(&["gitConfig", "writeBackTarget"])
                .map(str::to_string),
            repository: node
                .str_at(&["gitConfig", "repository"])
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_string),
        }
    }

    /// Whether results go to git (else into the Application resource).
    pub fn is_git(&self) -> bool {
        self.method
            .as_deref()
            .is_some_and(|m| m == "git" || m.starts_with("git:"))
    }

    /// The kind of source the git write-back target makes the application,
    /// whatever its sources say, as upstream's `getApplicationSourceType`
    /// reads it (pkg/argocd/argocd.go:1299-1312): `kustomization[:dir]` is
    /// Kustomize, and any target ending in `.yaml` / `.yml` (`helmvalues`,
    /// `helmvalues:<file>`, a bare values file) but the override file
    /// `.argocd-source-*` is Helm.
    pub fn target_kind(&self) -> Option<SourceKind> {
        let target = self.target.as_deref().filter(|_| self.is_git())?;
        if target.starts_with("kustomization") {
            return Some(SourceKind::Kustomize);
        }
        let file = match target.strip_prefix("helmvalues") {
            Some("") => "values.yaml",
            Some(rest) => rest.strip_prefix(':').unwrap_or(rest),
            None => target,
        };
        let base = file.rsplit('/').next().unwrap_or(file);
        ((file.ends_with(".yaml") || file.ends_with(".yml"))
            && !base.starts_with(".argocd-source-"))
        .then_some(SourceKind::Helm)
    }
}

/// Helm or Kustomize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Helm,
    Kustomize,
}

/// The Helm parameter names and Kustomize image name an image is written to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestTargets {
    pub helm_name: Option<String>,
    pub helm_tag: Option<String>,
    pub helm_spec: Option<String>,
    pub kustomize_name: Option<String>,
}

/// One image of one application, with its settings fully inherited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    pub alias: String,
    /// The image name as configured, without tag or digest.
    pub name: String,
    /// The tag part of the configured reference; `""` = none.
    pub constraint: String,
    pub settings: Settings,
    pub targets: ManifestTargets,
    /// The promotion gate of its `image-update.dev/` annotations (on the
    /// Application, else its ImageUpdater), or why it is invalid.
    pub gate: Result<Option<crate::hold::Gate>, String>,
}

/// One source of an Application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `None` for `spec.source`, `Some(i)` for `spec.sources[i]`.
    pub index: Option<usize>,
    pub repo_url: String,
    pub path: String,
    pub target_revision: String,
    /// `chart` or a `helm` block: a Helm source.
    pub helm: bool,
    /// A `helm` block, which upstream looks for in multi-source apps.
    pub helm_block: bool,
    /// A `kustomize` block: a Kustomize source.
    pub kustomize: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub origin: Origin,
    /// Index of the document in its file.
    pub document: usize,
    pub sources: Vec<Source>,
}

impl Application {
    /// A problem at its declaration, said of it: `Application ns/name`
    /// followed by `message` (which starts with its own separator).
    pub fn problem(&self, severity: Severity, message: impl std::fmt::Display) -> Problem {
        Problem::at(
            &self.origin.file,
            self.origin.line,
            None,
            severity,
            format!("Application {}/{}{message}", self.namespace, self.name),
        )
    }
}

/// An application to update: what, how, and where.
#[derive(Debug, Clone)]
pub struct Configured {
    pub app: Application,
    /// The source that is this repository (or, for a multi-source app
    /// whose write-back target asks for Helm or Kustomize, the source of
    /// that kind, as upstream picks it).
    pub source: Source,
    /// The directory a relative write-back target and the override file
    /// are resolved against: the source's path, or upstream's primary
    /// source's in a multi-source app with such a target.
    pub base: String,
    pub images: Vec<ImageSpec>,
    pub write_back: WriteBack,
    /// What configured it: `ImageUpdater ns/name` or `annotations`.
    pub by: String,
}

#[derive(Debug)]
struct RefImage {
    alias: String,
    image: String,
    settings: Settings,
    targets: ManifestTargets,
}

#[derive(Debug)]
struct AppRef {
    name_pattern: String,
    /// `name_pattern` compiled once: every application is matched against it.
    name_glob: Option<regex::Regex>,
    labels: Option<Result<LabelSelector, String>>,
    use_annotations: bool,
    settings: Settings,
    write_back: WriteBack,
    images: Vec<RefImage>,
}

impl AppRef {
    fn matches(&self, app: &Application) -> bool {
        let name = self
            .name_glob
            .as_ref()
            .is_some_and(|re| re.is_match(&app.name));
        let labels = match &self.labels {
            None => true,
            Some(Ok(selector)) => selector.matches(&app.labels),
            Some(Err(_)) => false,
        };
        name && labels
    }

    /// Upstream applies the most specific matching ref: an exact name before
    /// a pattern, a longer literal part before a shorter one, a ref with a
    /// label selector before one without.
    fn specificity(&self) -> (bool, usize, bool) {
        let wild = |c: char| matches!(c, '*' | '?' | '[');
        (
            !self.name_pattern.contains(wild),
            self.name_pattern.chars().filter(|c| !wild(*c)).count(),
            self.labels.is_some(),
        )
    }
}

#[derive(Debug)]
struct Updater {
    /// The namespace whose applications it configures.
    namespace: String,
    /// The file it is declared in.
    file: String,
    /// How the report names it.
    label: String,
    settings: Settings,
    write_back: WriteBack,
    refs: Vec<AppRef>,
    /// Its annotations (promotion gates, `image-update.dev/`).
    annotations: BTreeMap<String, String>,
}

/// A `kind: argocd` resource, as the Argo CD reader consumes it: the settings
/// of one Application's image updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgoUpdater {
    /// (namespace, name) of the `ImageUpdater`.
    pub id: (String, String),
    /// (file, line) of the `ImageUpdater`.
    pub origin: (String, usize),
    pub app_namespace: String,
    pub app_name: String,
    /// `write: built-in` (Argo's write-back method `argocd`); `false` for
    /// `write: git` (the `.argocd-source-<app>.yaml` override file).
    pub write_back_argocd: bool,
    pub images: Vec<ArgoImage>,
    /// The unified resource's `image-update.dev/` annotations.
    pub annotations: BTreeMap<String, String>,
}

/// One image of an [`ArgoUpdater`], with its per-alias settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgoImage {
    pub alias: String,
    /// The image name, without constraint.
    pub image: String,
    pub constraint: Option<String>,
    /// As written (`semver`, `newest-build`, `latest`, `alphabetical`,
    /// `name`, `digest`); `None` is Argo's default, semver.
    pub strategy: Option<String>,
    pub allow_tags: Option<String>,
    pub ignore_tags: Vec<String>,
    pub platforms: Vec<String>,
    /// The name of a cluster Secret; see `kubesphere::secret_note`.
    pub secret: Option<String>,
}

/// Everything Argo CD-related read from the tree.
#[derive(Debug, Default)]
pub struct Declarations {
    apps: Vec<Application>,
    updaters: Vec<Updater>,
    /// Files that declare an ImageUpdater but cannot be parsed (reported
    /// as errors): what they declare is unknown.
    pub unread: Vec<String>,
    pub problems: Vec<Problem>,
}

impl Declarations {
    /// Reads one document if it is an Application or an ImageUpdater.
    pub fn read(&mut self, file: &str, document: usize, root: &Node, controller_ns: &str) {
        let api = root.str_at(&["apiVersion"]).unwrap_or_default();
        let kind = root.str_at(&["kind"]).unwrap_or_default();
        let origin = Origin {
            file: file.to_string(),
            line: root.position().line,
        };
        let namespace = root.namespace_or(controller_ns).to_string();
        let name = root.object_name().to_string();
        let is_app = api.starts_with(APPLICATION_API) && kind == "Application";
        let is_updater = api.starts_with(UPDATER_API) && kind == "ImageUpdater";
        if !is_app && !is_updater {
            return;
        }
        if name.is_empty() {
            self.problems.push(Problem::at(
                file,
                origin.line,
                None,
                Severity::Error,
                format!("{kind} has no metadata.name"),
            ));
            return;
        }
        let spec = root.get("spec").unwrap_or(&Node::Empty);
        if is_updater {
            let label = format!("ImageUpdater {namespace}/{name}");
            if let Some((at, message)) = invalid_force_update(spec) {
                self.problems.push(Problem::at(
                    file,
                    at.line,
                    Some(at.column),
                    Severity::Error,
                    format!("{label}: {message}"),
                ));
                // Kept without refs: still the nearest copy for the
                // applications of its cluster folder, which it then leaves
                // alone, as a refused resource would in that cluster.
                self.updaters.push(Updater {
                    settings: Settings::default(),
                    write_back: WriteBack::default(),
                    refs: Vec::new(),
                    annotations: BTreeMap::new(),
                    label,
                    namespace,
                    file: file.to_string(),
                });
                return;
            }
            self.updaters.push(Updater {
                annotations: root
                    .at(&["metadata", "annotations"])
                    .map(string_map)
                    .unwrap_or_default(),
                settings: Settings::from_resource(spec.get("commonUpdateSettings")),
                write_back: WriteBack::from_resource(spec.get("writeBackConfig")),
                refs: spec
                    .get("applicationRefs")
                    .map(Node::items)
                    .unwrap_or_default()
                    .iter()
                    .map(read_ref)
                    .collect(),
                label,
                namespace,
                file: file.to_string(),
            });
            return;
        }
        let mut sources = Vec::new();
        if let Some(source) = spec.get("source").filter(|s| !s.is_null()) {
            sources.push(read_source(source, None));
        }
        for (i, source) in spec
            .get("sources")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            sources.push(read_source(source, Some(i)));
        }
        let meta = |key| root.at(&["metadata", key]).map(string_map);
        self.apps.push(Application {
            labels: meta("labels").unwrap_or_default(),
            annotations: meta("annotations").unwrap_or_default(),
            namespace,
            name,
            origin,
            document,
            sources,
        });
    }

    /// A unified `ImageUpdater` of `kind: argocd` (`gitops.kubesphere.io`):
    /// the same as an Argo CD ImageUpdater with one ref naming its one
    /// application exactly, which makes it the most specific ref there is.
    pub fn add_unified(&mut self, unified: &ArgoUpdater) {
        let images = unified
            .images
            .iter()
            .map(|i| RefImage {
                alias: i.alias.clone(),
                image: match &i.constraint {
                    Some(c) => format!("{}:{c}", i.image),
                    None => i.image.clone(),
                },
                settings: Settings {
                    strategy: i.strategy.clone(),
                    allow_tags: i.allow_tags.clone(),
                    ignore_tags: Some(i.ignore_tags.clone()).filter(|t| !t.is_empty()),
                    platforms: Some(i.platforms.clone()).filter(|p| !p.is_empty()),
                    // A Secret of the application's namespace.
                    pull_secret: i
                        .secret
                        .as_ref()
                        .map(|s| format!("pullsecret:{}/{s}", unified.app_namespace)),
                    force_update: None,
                },
                targets: ManifestTargets::default(),
            })
            .collect();
        self.updaters.push(Updater {
            annotations: unified.annotations.clone(),
            namespace: unified.app_namespace.clone(),
            file: unified.origin.0.clone(),
            label: format!(
                "ImageUpdater {}/{} (gitops.kubesphere.io)",
                unified.id.0, unified.id.1
            ),
            settings: Settings::default(),
            write_back: WriteBack {
                method: Some(
                    if unified.write_back_argocd {
                        "argocd"
                    } else {
                        "git"
                    }
                    .into(),
                ),
                ..WriteBack::default()
            },
            refs: vec![AppRef {
                name_pattern: unified.app_name.clone(),
                name_glob: go_glob(&unified.app_name),
                labels: None,
                use_annotations: false,
                settings: Settings::default(),
                write_back: WriteBack::default(),
                images,
            }],
        });
    }

    /// The applications to update. `repo_url` is this repository; an
    /// application whose sources are all elsewhere is reported and skipped.
    pub fn configure(&mut self, repo_url: Option<&str>) -> Vec<Configured> {
        let mut configured = Vec::new();
        for app in &self.apps {
            let Some((images, write_back, by)) = self.settings_of(app) else {
                continue;
            };
            let images = match images {
                Ok(images) => images,
                Err(e) => {
                    self.problems
                        .push(app.problem(Severity::Error, format!(": {e}")));
                    continue;
                }
            };
            let Some(repo_url) = repo_url else {
                self.problems.push(app.problem(
                    Severity::Warning,
                    " skipped: cannot tell whether its source is this repository (no --repo-url and no origin remote)",
                ));
                continue;
            };
            let (source, base) = match our_source(app, &write_back, repo_url) {
                Some(found) => found,
                None => {
                    let mut urls: Vec<&str> =
                        app.sources.iter().map(|s| s.repo_url.as_str()).collect();
                    if let Some(r) = write_back
                        .repository
                        .as_deref()
                        .filter(|_| write_back.is_git())
                    {
                        urls = vec![r];
                    }
                    self.problems.push(app.problem(
                        Severity::Info,
                        format!(
                            " skipped: its source ({}) is not this repository ({repo_url})",
                            urls.join(", ")
                        ),
                    ));
                    continue;
                }
            };
            configured.push(Configured {
                app: app.clone(),
                source,
                base,
                images,
                write_back,
                by,
            });
        }
        configured
    }

    /// The images and write-back of an application, from the most specific
    /// matching ImageUpdater ref, else from its annotations; `None` when
    /// nothing configures it.
    #[allow(clippy::type_complexity)]
    /// [`Self::configuration_of`], with each image's promotion gate: from
    /// the Application's annotations, else its ImageUpdater's (per image,
    /// `image-update.dev/<alias>.promote-from`, before the general form).
    fn settings_of(
        &self,
        app: &Application,
    ) -> Option<(Result<Vec<ImageSpec>, String>, WriteBack, String)> {
        let (images, write_back, by) = self.configuration_of(app)?;
        let updater = self.best_ref(app).map(|(u, _)| &u.annotations);
        let images = images.map(|images| {
            images
                .into_iter()
                .map(|spec| {
                    let key = if spec.alias.is_empty() {
                        spec.name.clone()
                    } else {
                        spec.alias.clone()
                    };
                    let maps: Vec<&BTreeMap<String, String>> = [Some(&app.annotations), updater]
                        .into_iter()
                        .flatten()
                        .collect();
                    ImageSpec {
                        gate: crate::hold::Gate::annotated(&maps, &key),
                        ..spec
                    }
                })
                .collect()
        });
        Some((images, write_back, by))
    }

    /// The most specific ref of the nearest ImageUpdater copy that
    /// matches `app`.
    fn best_ref(&self, app: &Application) -> Option<(&Updater, &AppRef)> {
        // An ImageUpdater declared once per cluster directory configures
        // the applications of its own directory: of several copies, the
        // nearest to the application is used.
        let nearest_copy = |u: &&Updater| {
            let copies = self
                .updaters
                .iter()
                .filter(|v| v.label == u.label && v.namespace == u.namespace);
            crate::flux::nearest(&app.origin.file, copies, |v| &v.file)
                .iter()
                .any(|v| std::ptr::eq(*v, *u))
        };
        self.updaters
            .iter()
            .filter(|u| u.namespace == app.namespace)
            .filter(nearest_copy)
            .flat_map(|u| u.refs.iter().map(move |r| (u, r)))
            .filter(|(_, r)| r.matches(app))
            .fold(
                None,
                |best: Option<(&Updater, &AppRef)>, (u, r)| match best {
                    Some((_, b)) if b.specificity() >= r.specificity() => best,
                    _ => Some((u, r)),
                },
            )
    }

    fn configuration_of(
        &self,
        app: &Application,
    ) -> Option<(Result<Vec<ImageSpec>, String>, WriteBack, String)> {
        let best = self.best_ref(app);
        // An ImageUpdater file nearer to the application than the one found
        // may hold its folder's own copy.
        if let Some((u, _)) = best
            && let Some(file) = self
                .unread
                .iter()
                .find(|f| shared_dirs(&app.origin.file, f) > shared_dirs(&app.origin.file, &u.file))
        {
            return Some((
                Err(format!(
                    "{file} cannot be read and is nearer than {} at {}, so it may hold this folder's own copy; not updated",
                    u.label, u.file
                )),
                WriteBack::default(),
                u.label.clone(),
            ));
        }
        let from_annotations = WriteBack::from_annotations(&app.annotations);
        match best {
            Some((u, r)) if !r.use_annotations => {
                let settings = r.settings.clone().or(&u.settings);
                let write_back = r.write_back.clone().or(&u.write_back);
                let images = r
                    .images
                    .iter()
                    .map(|i| {
                        let (name, constraint) = split_image(&i.image)?;
                        if i.alias.is_empty() {
                            return Err(format!("image {:?} has no alias", i.image));
                        }
                        Ok(ImageSpec {
                            alias: i.alias.clone(),
                            name,
                            constraint,
                            settings: i.settings.clone().or(&settings),
                            targets: i.targets.clone(),
                            gate: Ok(None),
                        })
                    })
                    .collect();
                Some((images, write_back, u.label.clone()))
            }
            Some((u, r)) => {
                let settings = r.settings.clone().or(&u.settings);
                let write_back = from_annotations.or(&r.write_back.clone().or(&u.write_back));
                Some((
                    images_from_annotations(&app.annotations, &settings),
                    write_back,
                    format!("{} (annotations)", u.label),
                ))
            }
            None if app
                .annotations
                .contains_key(&format!("{ANNOTATION}image-list")) =>
            {
                Some((
                    images_from_annotations(&app.annotations, &Settings::default()),
                    from_annotations,
                    "annotations".to_string(),
                ))
            }
            None => None,
        }
    }
}

fn read_ref(node: &Node) -> AppRef {
    let name_pattern = text(node, "namePattern").unwrap_or_else(|| "*".to_string());
    AppRef {
        name_glob: go_glob(&name_pattern),
        name_pattern,
        labels: node
            .get("labelSelectors")
            .filter(|n| !n.is_null())
            .map(LabelSelector::read),
        use_annotations: text(node, "useAnnotations").as_deref() == Some("true"),
        settings: Settings::from_resource(node.get("commonUpdateSettings")),
        write_back: WriteBack::from_resource(node.get("writeBackConfig")),
        images: node
            .get("images")
            .map(Node::items)
            .unwrap_or_default()
            .iter()
            .map(|i| RefImage {
                alias: text(i, "alias").unwrap_or_default(),
                image: text(i, "imageName").unwrap_or_default(),
                settings: Settings::from_resource(i.get("commonUpdateSettings")),
                targets: ManifestTargets {
                    helm_name: i
                        .str_at(&["manifestTargets", "helm", "name"])
                        .map(str::to_string),
                    helm_tag: i
                        .str_at(&["manifestTargets", "helm", "tag"])
                        .map(str::to_string),
                    helm_spec: i
                        .str_at(&["manifestTargets", "helm", "spec"])
                        .map(str::to_string),
                    kustomize_name: i
                        .str_at(&["manifestTargets", "kustomize", "name"])
                        .map(str::to_string),
                },
            })
            .collect(),
    }
}

/// The source an application's images are written for, and the directory
/// its targets are relative to; `None` when it is not this repository's.
///
/// A source whose `repoURL` is this repository is used, as before. A
/// multi-source application whose git write-back target asks for Helm or
/// Kustomize uses the source of that kind, as upstream's
/// `getApplicationSource` does (pkg/argocd/argocd.go:1346-1390): the first
/// with a `helm` (or `kustomize`) block, else the first with either: that
/// is the chart of a chart + `ref: values` pair. It is this repository's
/// when `gitConfig.repository` / `git-repository` names this repository
/// (upstream's documented set-up for charts from a Helm repository, which
/// also makes a single chart source this repository's; naming another
/// repository makes the application another repository's), or its own
/// `repoURL` does, or another source's does (the `ref:` source holding the
/// values). Relative targets are then resolved against
/// upstream's primary source (`getApplicationSource` without a write-back
/// config, pkg/argocd/argocd.go:581-585): the first source with a `chart`,
/// `helm` or `kustomize`, else the first.
fn our_source(
    app: &Application,
    write_back: &WriteBack,
    repo_url: &str,
) -> Option<(Source, String)> {
    let ours = |url: &str| repo_url::same(url, repo_url);
    let first_ours = app.sources.iter().find(|s| ours(&s.repo_url));
    let repository = write_back
        .repository
        .as_deref()
        .filter(|_| write_back.is_git());
    if repository.is_some_and(|r| !ours(r)) {
        // Upstream writes to the repository named there, not to this one.
        return None;
    }
    let named = repository.is_some();
    let kind = write_back.target_kind().filter(|_| app.sources.len() > 1);
    let Some(kind) = kind else {
        return first_ours
            .or_else(|| app.sources.first().filter(|_| named))
            .map(|s| (s.clone(), s.path.clone()));
    };
    let of_kind = |s: &&Source| match kind {
        SourceKind::Helm => s.helm_block,
        SourceKind::Kustomize => s.kustomize,
    };
    // Then the source Argo CD detects as that kind (upstream aligns
    // `status.sourceTypes`, which a repository does not hold: a `chart`
    // is what makes Argo CD say Helm).
    let detected = |s: &&Source| match kind {
        SourceKind::Helm => s.helm,
        SourceKind::Kustomize => s.kustomize,
    };
    let chosen = app
        .sources
        .iter()
        .find(of_kind)
        .or_else(|| app.sources.iter().find(detected))
        .or_else(|| app.sources.iter().find(|s| s.helm_block || s.kustomize))
        .unwrap_or(&app.sources[0]);
    if !named && first_ours.is_none() {
        return None;
    }
    let primary = app
        .sources
        .iter()
        .find(|s| s.helm || s.kustomize)
        .unwrap_or(&app.sources[0]);
    Some((chosen.clone(), primary.path.clone()))
}

fn read_source(node: &Node, index: Option<usize>) -> Source {
    let present = |key| node.get(key).is_some_and(|n| !n.is_null());
    Source {
        index,
        repo_url: text(node, "repoURL").unwrap_or_default(),
        path: text(node, "path")
            .unwrap_or_default()
            .trim_matches('/')
            .trim_start_matches("./")
            .to_string(),
        target_revision: text(node, "targetRevision").unwrap_or_default(),
        helm: present("chart") || present("helm"),
        helm_block: present("helm"),
        kustomize: present("kustomize"),
    }
}

/// Where an image's `pullSecret` says its registry credentials are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullSecret {
    /// `pullsecret:<ns>/<name>` or `secret:<ns>/<name>#<field>`: a cluster
    /// Secret, which a repository cannot hold.
    Cluster(String),
    /// `env:<VAR>`: `user:password` in an environment variable.
    Env(String),
    /// `ext:<script>`: a program that prints `user:password`.
    Ext(String),
}

impl PullSecret {
    pub fn parse(value: &str) -> Result<PullSecret, String> {
        let (scheme, rest) = value
            .split_once(':')
            .ok_or_else(|| format!("pull secret {value:?} has no scheme"))?;
        let non_empty = |what: &str| {
            if rest.is_empty() {
                Err(format!("pull secret {value:?} names no {what}"))
            } else {
                Ok(rest.to_string())
            }
        };
        match scheme {
            "pullsecret" | "secret" => {
                let name = rest.split('#').next().unwrap_or_default();
                match name.split_once('/') {
                    Some((ns, n)) if !ns.is_empty() && !n.is_empty() => {
                        Ok(PullSecret::Cluster(value.to_string()))
                    }
                    _ => Err(format!(
                        "pull secret {value:?}: expected {scheme}:<namespace>/<name>"
                    )),
                }
            }
            "env" => non_empty("variable").map(PullSecret::Env),
            "ext" => non_empty("program").map(PullSecret::Ext),
            _ => Err(format!(
                "pull secret {value:?}: unknown scheme {scheme:?} (expected pullsecret:, secret:, env: or ext:)"
            )),
        }
    }
}

/// `user:password`, split at the first colon (a password may hold more).
pub fn user_password(text: &str) -> Option<(String, String)> {
    let (user, password) = text.trim().split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// `name[:constraint]` (or `name@digest`, which has no constraint).
pub fn split_image(image: &str) -> Result<(String, String), String> {
    let r = crate::image::Reference::split(image.trim());
    if r.name.is_empty() {
        return Err(format!("image {image:?} has no name"));
    }
    Ok((r.name.to_string(), r.tag.unwrap_or_default().to_string()))
}

/// A YAML boolean as the API server reads one (YAML 1.1, as
/// `sigs.k8s.io/yaml` does); a quoted value is a string.
fn yaml_bool(node: &Node) -> Result<bool, String> {
    match node {
        Node::Scalar(s) if s.style == granit_parser::ScalarStyle::Plain => match s.value.as_str() {
            "true" | "True" | "TRUE" | "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => {
                Ok(true)
            }
            "false" | "False" | "FALSE" | "n" | "N" | "no" | "No" | "NO" | "off" | "Off"
            | "OFF" => Ok(false),
            v => Err(format!("{v:?}")),
        },
        Node::Scalar(s) => Err(format!("the string {:?}", s.value)),
        _ => Err("a collection".to_string()),
    }
}

/// The first `forceUpdate` of an ImageUpdater's spec (at any of its three
/// levels) that is not a boolean, as its CRD's schema requires: the API
/// server refuses such a resource, so it updates nothing (as an invalid
/// `force-update` annotation makes upstream skip its application).
fn invalid_force_update(spec: &Node) -> Option<(crate::yaml::Position, String)> {
    let refs = spec
        .get("applicationRefs")
        .map(Node::items)
        .unwrap_or_default();
    let images = refs
        .iter()
        .flat_map(|r| r.get("images").map(Node::items).unwrap_or_default());
    std::iter::once(spec)
        .chain(refs)
        .chain(images)
        .filter_map(|n| n.at(&["commonUpdateSettings", "forceUpdate"]))
        .filter(|v| !v.is_null())
        .find_map(|v| {
            let found = yaml_bool(v).err()?;
            Some((
                v.position(),
                format!(
                    "forceUpdate is {found}, not a boolean (true or false) as the ImageUpdater schema requires; the API server would refuse the resource, so it updates nothing"
                ),
            ))
        })
}

fn text(node: &Node, key: &str) -> Option<String> {
    node.str_at(&[key]).map(str::to_string)
}

fn strings(node: &Node) -> Vec<String> {
    node.items()
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests;
