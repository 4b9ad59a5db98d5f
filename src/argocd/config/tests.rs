use super::*;
use crate::yaml::parse;

fn declarations(src: &str) -> Declarations {
    let mut d = Declarations::default();
    read_files(&mut d, &[("apps.yaml", src)]);
    d
}

/// Reads every document of each `(file, text)`.
fn read_files(d: &mut Declarations, files: &[(&str, &str)]) {
    for (file, src) in files {
        for (i, doc) in parse(src).unwrap().documents.iter().enumerate() {
            d.read(file, i, &doc.root, DEFAULT_NAMESPACE);
        }
    }
}

const REPO: &str = "https://github.com/org/gitops.git";

#[test]
fn annotations_configure_images_with_app_wide_defaults() {
    let mut d = declarations(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: web
  annotations:
    argocd-image-updater.argoproj.io/image-list: "web=ghcr.io/org/web:~1.2, nginx"
    argocd-image-updater.argoproj.io/update-strategy: newest-build
    argocd-image-updater.argoproj.io/web.update-strategy: semver
    argocd-image-updater.argoproj.io/web.ignore-tags: "*-dev, *-rc"
    argocd-image-updater.argoproj.io/nginx.helm.image-tag: nginx.tag
    argocd-image-updater.argoproj.io/write-back-method: git
    argocd-image-updater.argoproj.io/git-branch: main
spec:
  source:
    repoURL: git@github.com:org/gitops
    path: apps/web
"#,
    );
    let configured = d.configure(Some(REPO));
    assert_eq!(configured.len(), 1, "{:?}", d.problems);
    let c = &configured[0];
    assert_eq!(c.by, "annotations");
    assert_eq!(c.source.path, "apps/web");
    assert!(c.write_back.is_git());
    assert_eq!(c.write_back.branch.as_deref(), Some("main"));
    let web = &c.images[0];
    assert_eq!(
        (
            web.alias.as_str(),
            web.name.as_str(),
            web.constraint.as_str()
        ),
        ("web", "ghcr.io/org/web", "~1.2")
    );
    assert_eq!(web.settings.strategy.as_deref(), Some("semver"));
    assert_eq!(
        web.settings.ignore_tags,
        Some(vec!["*-dev".to_string(), "*-rc".to_string()])
    );
    let nginx = &c.images[1];
    assert_eq!(nginx.settings.strategy.as_deref(), Some("newest-build"));
    assert_eq!(nginx.targets.helm_tag.as_deref(), Some("nginx.tag"));
}

const UPDATER: &str = r#"apiVersion: argocd-image-updater.argoproj.io/v1alpha1
kind: ImageUpdater
metadata: {name: updater, namespace: argocd}
spec:
  commonUpdateSettings:
    updateStrategy: semver
    platforms: [linux/arm64]
  writeBackConfig:
    method: git
    gitConfig: {branch: main, writeBackTarget: kustomization}
  applicationRefs:
  - namePattern: "web-*"
    commonUpdateSettings: {allowTags: "regexp:^v"}
    images:
    - alias: app
      imageName: ghcr.io/org/app:^1
      commonUpdateSettings: {updateStrategy: newest-build}
      manifestTargets: {kustomize: {name: app}}
  - namePattern: "web-prod"
    writeBackConfig: {gitConfig: {writeBackTarget: "helmvalues:values-prod.yaml"}}
    images:
    - alias: app
      imageName: ghcr.io/org/app
      manifestTargets: {helm: {name: image.repository, tag: image.tag}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web-dev, namespace: argocd}
spec:
  source: {repoURL: "https://github.com/org/gitops", path: /dev}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web-prod, namespace: argocd}
spec:
  sources:
  - {repoURL: "https://charts.example.com", chart: app}
  - {repoURL: "https://github.com/org/gitops", path: prod}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web-other, namespace: team}
spec:
  source: {repoURL: "https://github.com/org/gitops", path: other}
"#;

/// The CRD types `forceUpdate` as a boolean: a string (quoted, or a
/// word YAML does not read as a boolean) at any level makes the
/// resource one the API server refuses, an error that updates nothing,
/// as upstream refuses an invalid `force-update` annotation.
#[test]
fn an_image_updater_with_a_force_update_that_is_not_a_boolean_is_an_error() {
    let at_image = UPDATER.replace(
        "commonUpdateSettings: {updateStrategy: newest-build}",
        "commonUpdateSettings: {updateStrategy: newest-build, forceUpdate: \"true\"}",
    );
    let at_spec = UPDATER.replace(
        "    updateStrategy: semver\n",
        "    updateStrategy: semver\n    forceUpdate: invalid\n",
    );
    for (src, line, found) in [
        (at_image, 17, "the string \"true\""),
        (at_spec.clone(), 7, "\"invalid\""),
    ] {
        let mut d = declarations(&src);
        let configured = d.configure(Some(REPO));
        assert!(
            configured.iter().all(|c| c.by == "annotations"),
            "{configured:?}"
        );
        let problem = &d.problems[0];
        assert_eq!(
            (problem.severity, problem.line),
            (Severity::Error, Some(line)),
            "{problem:?}"
        );
        assert!(
            problem.message.starts_with(&format!(
                "ImageUpdater argocd/updater: forceUpdate is {found}, not a boolean"
            )),
            "{}",
            problem.message
        );
    }
    let valid = UPDATER.replace(
        "    updateStrategy: semver\n",
        "    updateStrategy: semver\n    forceUpdate: yes\n",
    );
    let mut d = declarations(&valid);
    let configured = d.configure(Some(REPO));
    let dev = configured.iter().find(|c| c.app.name == "web-dev").unwrap();
    assert_eq!(dev.images[0].settings.force_update, Some(true));

    // Cluster copies: the refused copy of cluster a is still that
    // cluster's, so cluster b's copy does not configure a's application.
    let (updater, apps) = UPDATER.split_once("---\n").unwrap();
    let mut d = Declarations::default();
    read_files(
        &mut d,
        &[
            (
                "clusters/a/updater.yaml",
                at_spec.split_once("---\n").unwrap().0,
            ),
            ("clusters/b/updater.yaml", updater),
            ("clusters/a/apps.yaml", apps),
            ("clusters/b/apps.yaml", apps),
        ],
    );
    let configured = d.configure(Some(REPO));
    let by_updater: Vec<&str> = configured
        .iter()
        .filter(|c| c.by.starts_with("ImageUpdater"))
        .map(|c| c.app.origin.file.as_str())
        .collect();
    assert!(!by_updater.is_empty(), "{configured:?}");
    assert!(
        by_updater.iter().all(|f| f.starts_with("clusters/b/")),
        "{by_updater:?}"
    );
}

/// An ImageUpdater file of a cluster folder that cannot be parsed may
/// hold that folder's copy: the folder's applications are an error,
/// not configured by another folder's copy.
#[test]
fn an_unreadable_image_updater_copy_is_not_replaced_by_another_folders() {
    let (updater, apps) = UPDATER.split_once("---\n").unwrap();
    let mut d = Declarations {
        unread: vec!["clusters/a/updater.yaml".to_string()],
        ..Declarations::default()
    };
    read_files(
        &mut d,
        &[
            ("clusters/b/updater.yaml", updater),
            ("clusters/a/apps.yaml", apps),
            ("clusters/b/apps.yaml", apps),
        ],
    );
    let configured = d.configure(Some(REPO));
    assert!(
        configured
            .iter()
            .all(|c| c.app.origin.file == "clusters/b/apps.yaml"),
        "{configured:?}"
    );
    assert!(!configured.is_empty());
    assert!(
            d.problems.iter().any(|p| p.severity == Severity::Error
                && p.file.as_deref() == Some("clusters/a/apps.yaml")
                && p.message.contains(
                    "clusters/a/updater.yaml cannot be read and is nearer than ImageUpdater argocd/updater at clusters/b/updater.yaml"
                )),
            "{:?}",
            d.problems
        );
}

#[test]
fn image_updater_settings_inherit_field_by_field() {
    let mut d = declarations(UPDATER);
    let configured = d.configure(Some(REPO));
    let dev = configured.iter().find(|c| c.app.name == "web-dev").unwrap();
    assert_eq!(dev.by, "ImageUpdater argocd/updater");
    assert_eq!(dev.source.path, "dev");
    let image = &dev.images[0];
    assert_eq!(image.settings.strategy.as_deref(), Some("newest-build"));
    assert_eq!(image.settings.allow_tags.as_deref(), Some("regexp:^v"));
    assert_eq!(
        image.settings.platforms,
        Some(vec!["linux/arm64".to_string()])
    );
    assert_eq!(image.constraint, "^1");
    assert_eq!(dev.write_back.target.as_deref(), Some("kustomization"));
    assert_eq!(dev.write_back.branch.as_deref(), Some("main"));
}

#[test]
fn the_most_specific_ref_wins_and_the_source_is_this_repository() {
    let mut d = declarations(UPDATER);
    let configured = d.configure(Some(REPO));
    let prod = configured
        .iter()
        .find(|c| c.app.name == "web-prod")
        .unwrap();
    // A Helm values target: the chart's source, as upstream picks it
    // (issue 17), resolved against the repository root (the chart's
    // path).
    assert_eq!(prod.source.index, Some(0));
    assert_eq!((prod.source.path.as_str(), prod.base.as_str()), ("", ""));
    assert_eq!(
        prod.write_back.target.as_deref(),
        Some("helmvalues:values-prod.yaml")
    );
    assert_eq!(prod.images[0].settings.strategy.as_deref(), Some("semver"));
    assert_eq!(
        prod.images[0].targets.helm_tag.as_deref(),
        Some("image.tag")
    );
    // An ImageUpdater only configures applications of its namespace.
    assert!(configured.iter().all(|c| c.app.name != "web-other"));
}

/// Which kind a git write-back target asks for: upstream's
/// `getApplicationSourceType` (pkg/argocd/argocd.go:1299-1312) and its
/// cases in pkg/argocd/argocd_test.go:865-1075 (`.yaml` and `.yml`
/// targets are Helm, a kustomization base is Kustomize, the default
/// override file is neither).
#[test]
fn a_write_back_target_decides_the_kind() {
    let kind = |method: Option<&str>, target: &str| {
        WriteBack {
            method: method.map(str::to_string),
            target: Some(target.to_string()),
            ..WriteBack::default()
        }
        .target_kind()
    };
    for (target, want) in [
        ("charts/myapp/values.yaml", Some(SourceKind::Helm)),
        ("charts/myapp/values.yml", Some(SourceKind::Helm)),
        ("helmvalues", Some(SourceKind::Helm)),
        (
            "helmvalues:/helm/config/values.yaml",
            Some(SourceKind::Helm),
        ),
        ("kustomization", Some(SourceKind::Kustomize)),
        (
            "kustomization:/overlays/production",
            Some(SourceKind::Kustomize),
        ),
        (".argocd-source-multi-source-app.yaml", None),
        ("apps/.argocd-source-app.yaml", None),
        ("overrides.json", None),
    ] {
        assert_eq!(kind(Some("git"), target), want, "{target}");
        assert_eq!(
            kind(Some("git:secret:argocd/creds"), target),
            want,
            "{target}"
        );
    }
    // The argocd method has no target.
    assert_eq!(kind(None, "values.yaml"), None);
    assert_eq!(kind(Some("argocd"), "values.yaml"), None);
}

/// The source a multi-source application's values target updates, as
/// upstream's `getApplicationSource` picks it (pkg/argocd/argocd.go:
/// 1346-1390; pkg/argocd/argocd_test.go:866-935 for the Kustomize
/// source listed first), and whether the application is this
/// repository's (`gitConfig.repository`, pkg/argocd/update.go:1189-1193).
#[test]
fn a_values_target_picks_upstreams_source() {
    let app = |annotations: &str, sources: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: app\n  namespace: argocd\n  annotations:\n    argocd-image-updater.argoproj.io/image-list: ghcr.io/org/app\n    argocd-image-updater.argoproj.io/write-back-method: git\n{annotations}spec:\n  sources:\n{sources}"
        )
    };
    let target = |t: &str| format!("    argocd-image-updater.argoproj.io/write-back-target: {t}\n");
    let chart_and_ref = "  - {repoURL: 'https://charts.example.com', chart: app, helm: {valueFiles: [$values/envs/prod.yaml]}}\n  - {repoURL: 'https://github.com/org/gitops', ref: values}\n";
    let kustomize_first = "  - {repoURL: 'https://github.com/org/gitops', path: overlays/production, kustomize: {}}\n  - {repoURL: 'https://github.com/org/gitops', path: charts/myapp, helm: {}}\n";
    let pick = |src: &str| {
        let mut d = declarations(src);
        d.configure(Some(REPO))
            .first()
            .map(|c| (c.source.index, c.source.path.clone(), c.base.clone()))
    };
    // Chart + ref: the chart's source; relative targets from the root.
    assert_eq!(
        pick(&app(&target("helmvalues:/envs/prod.yaml"), chart_and_ref)),
        Some((Some(0), String::new(), String::new()))
    );
    // Kustomize listed first: the Helm source; relative targets from
    // upstream's primary source (the first with helm or kustomize).
    assert_eq!(
        pick(&app(&target("helmvalues"), kustomize_first)),
        Some((Some(1), "charts/myapp".into(), "overlays/production".into()))
    );
    assert_eq!(
        pick(&app(&target("kustomization"), kustomize_first)),
        Some((
            Some(0),
            "overlays/production".into(),
            "overlays/production".into()
        ))
    );
    // Without such a target, the first source of this repository.
    assert_eq!(
        pick(&app("", kustomize_first)),
        Some((
            Some(0),
            "overlays/production".into(),
            "overlays/production".into()
        ))
    );
    // A chart alone is this repository's only when gitConfig names it.
    let chart_only = "  - {repoURL: 'https://charts.example.com', chart: app, helm: {}}\n";
    assert_eq!(pick(&app(&target("helmvalues:/v.yaml"), chart_only)), None);
    let named = format!(
        "{}    argocd-image-updater.argoproj.io/git-repository: git@github.com:org/gitops.git\n",
        target("helmvalues:/v.yaml")
    );
    assert_eq!(
        pick(&app(&named, chart_only)),
        Some((Some(0), String::new(), String::new()))
    );
    // Naming another repository makes it that repository's.
    let elsewhere = format!(
        "{}    argocd-image-updater.argoproj.io/git-repository: https://github.com/org/other\n",
        target("helmvalues:/v.yaml")
    );
    assert_eq!(pick(&app(&elsewhere, kustomize_first)), None);
}

#[test]
fn applications_of_other_repositories_are_reported_and_skipped() {
    let mut d = declarations(UPDATER);
    let configured = d.configure(Some("https://github.com/org/elsewhere"));
    assert!(configured.is_empty());
    assert!(
        d.problems
            .iter()
            .any(|p| p.message.contains("web-dev skipped")
                && p.message.contains("not this repository")),
        "{:?}",
        d.problems
    );
}

#[test]
fn image_ref_parse_cases() {
    let ran = crate::argocd::cases::for_each("image_ref_parse", |name, input, expected| {
        let reference = input.str_at(&["ref"]).unwrap();
        let (alias, image) = reference.split_once('=').unwrap_or(("", reference));
        let (image_name, constraint) = split_image(image).unwrap();
        assert_eq!(
            alias,
            expected.str_at(&["alias"]).unwrap_or_default(),
            "{name}"
        );
        let registry = expected.str_at(&["registry"]).unwrap_or_default();
        let want_name = expected.str_at(&["name"]).unwrap();
        let want = if registry.is_empty() {
            want_name.to_string()
        } else {
            format!("{registry}/{want_name}")
        };
        assert_eq!(image_name, want, "{name}");
        assert_eq!(
            constraint,
            expected.str_at(&["tag"]).unwrap_or_default(),
            "{name}"
        );
    });
    assert!(ran >= 3, "only {ran} image_ref_parse cases");
    assert!(split_image(":1.0").is_err());
}

#[test]
fn credential_ref_cases() {
    let ran = crate::argocd::cases::for_each("credential_ref", |name, input, expected| {
        let parsed = PullSecret::parse(input.str_at(&["ref"]).unwrap());
        if expected.str_at(&["error"]) == Some("true") {
            assert!(parsed.is_err(), "{name}: {parsed:?}");
            return;
        }
        match (expected.str_at(&["type"]).unwrap(), parsed.unwrap()) {
            ("secret", PullSecret::Cluster(_)) => {}
            ("env", PullSecret::Env(var)) => {
                let value = input.str_at(&["env", &var]).unwrap();
                let (user, password) = user_password(value).unwrap();
                assert_eq!(
                    Some(user.as_str()),
                    expected.str_at(&["username"]),
                    "{name}"
                );
                assert_eq!(
                    Some(password.as_str()),
                    expected.str_at(&["password"]),
                    "{name}"
                );
            }
            (kind, got) => panic!("{name}: expected {kind}, got {got:?}"),
        }
    });
    assert!(ran >= 3, "only {ran} credential_ref cases");
    assert!(matches!(
        PullSecret::parse("ext:/bin/login"),
        Ok(PullSecret::Ext(_))
    ));
    assert!(PullSecret::parse("secret:nonamespace").is_err());
}
