use super::*;
use crate::yaml::parse;

fn declare(files: &[(&str, &str)]) -> (Vec<Declared>, Vec<Problem>) {
    let mut resources = Resources::default();
    for (file, src) in files {
        for doc in parse(src).unwrap().documents {
            resources.read(file, &doc.root);
        }
    }
    let declared = resources.declare();
    (declared, resources.problems)
}

const REPO: &str = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: web, namespace: apps}\nspec: {image: ghcr.io/acme/web}\n";

const SHARED_REPO: &str = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: web, namespace: apps}\nspec:\n  image: ghcr.io/acme/web\n  accessFrom: {namespaceSelectors: [{matchLabels: {}}]}\n";

#[test]
fn every_api_version_is_read_and_namespace_defaults() {
    for version in ["v1beta1", "v1beta2", "v1"] {
        let policy = format!(
            "apiVersion: image.toolkit.fluxcd.io/{version}\nkind: ImagePolicy\nmetadata: {{name: web}}\nspec:\n  imageRepositoryRef: {{name: web, namespace: apps}}\n  policy: {{semver: {{range: 1.x}}}}\n"
        );
        let (declared, problems) = declare(&[("p.yaml", &policy), ("r.yaml", SHARED_REPO)]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(declared[0].id.to_string(), "default:web");
        let p = declared[0].policy.as_ref().unwrap();
        assert_eq!(p.repository.to_string(), "ghcr.io/acme/web");
    }
}

#[test]
fn cross_namespace_reference_needs_access_from() {
    let policy = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: web, namespace: other}\nspec:\n  imageRepositoryRef: {name: web, namespace: apps}\n  policy: {alphabetical: {}}\n";
    let (declared, _) = declare(&[("p.yaml", policy), ("r.yaml", REPO)]);
    assert!(
        declared[0]
            .policy
            .as_ref()
            .unwrap_err()
            .contains("accessFrom")
    );
}

#[test]
fn policy_errors_are_kept_per_policy() {
    for (spec, want) in [
        ("policy: {}", "names no rule"),
        ("policy: {semver: {range: 'x1'}}", "invalid"),
        ("policy: {alphabetical: {order: up}}", "asc"),
        ("policy: {alphabetical: {}, numerical: {}}", "more than one"),
        (
            "policy: {alphabetical: {}}\n  filterTags: {pattern: '[='}",
            "filterTags.pattern",
        ),
        (
            "policy: {alphabetical: {}}\n  digestReflectionPolicy: Sometimes",
            "digestReflectionPolicy",
        ),
        // image-reflector-controller api/v1/imagepolicy_types.go:30-31,
        // the CRD's validation rules.
        (
            "policy: {alphabetical: {}}\n  interval: 5m",
            "spec.interval is only accepted when spec.digestReflectionPolicy is set to 'Always'",
        ),
        (
            "policy: {alphabetical: {}}\n  interval: 5m\n  digestReflectionPolicy: IfNotPresent",
            "spec.interval is only accepted",
        ),
        (
            "policy: {alphabetical: {}}\n  digestReflectionPolicy: Always",
            "spec.interval must be set when spec.digestReflectionPolicy is set to 'Always'",
        ),
        (
            "imageRepositoryRef: {name: nope}\n  policy: {alphabetical: {}}",
            "not in the tree",
        ),
    ] {
        let spec = if spec.starts_with("imageRepositoryRef") {
            spec.to_string()
        } else {
            format!("imageRepositoryRef: {{name: web}}\n  {spec}")
        };
        let policy = format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: web, namespace: apps}}\nspec:\n  {spec}\n"
        );
        let (declared, _) = declare(&[("p.yaml", &policy), ("r.yaml", REPO)]);
        let err = declared[0].policy.as_ref().unwrap_err();
        assert!(err.contains(want), "{spec}: {err}");
    }
}

#[test]
fn automations_scope_policies_by_namespace_selector_and_path() {
    let policies = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: web, namespace: apps, labels: {team: a}}\nspec: {imageRepositoryRef: {name: web}, policy: {alphabetical: {}}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: api, namespace: apps}\nspec: {imageRepositoryRef: {name: web}, policy: {alphabetical: {}}}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: db, namespace: data}\nspec: {imageRepositoryRef: {name: web, namespace: apps}, policy: {alphabetical: {}}}\n";
    let auto = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata: {name: auto, namespace: apps}\nspec:\n  update: {path: ./clusters/prod/, strategy: Setters}\n  policySelector: {matchExpressions: [{key: team, operator: In, values: [a]}]}\n";
    let (declared, problems) = declare(&[("p.yaml", policies), ("r.yaml", REPO), ("a.yaml", auto)]);
    assert!(problems.is_empty(), "{problems:?}");
    let web = &declared[0];
    assert_eq!(web.scope.admits("clusters/prod/x.yaml", &web.id), Ok(()));
    assert!(
        web.scope
            .admits("clusters/production/x.yaml", &web.id)
            .unwrap_err()
            .contains("outside the update.path")
    );
    let api = &declared[1];
    assert!(
        api.scope
            .admits("clusters/prod/x.yaml", &api.id)
            .unwrap_err()
            .contains("policySelector")
    );
    let db = &declared[2];
    assert!(
        db.scope
            .admits("clusters/prod/x.yaml", &db.id)
            .unwrap_err()
            .contains("own namespace (data)")
    );
}

/// The `clusters/production` + `clusters/staging` layout: every
/// resource is declared once per cluster, and each cluster's automation
/// uses its own cluster's copies (issue 17).
#[test]
fn each_cluster_directory_has_its_own_declarations() {
    let policy = |range: &str| {
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {{name: web, namespace: apps}}\nspec: {{imageRepositoryRef: {{name: web}}, policy: {{semver: {{range: '{range}'}}}}}}\n"
        )
    };
    let auto = |path: &str| {
        format!(
            "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata: {{name: auto, namespace: apps}}\nspec: {{update: {{path: {path}}}}}\n"
        )
    };
    let (declared, problems) = declare(&[
        (
            "clusters/production/auto.yaml",
            &auto("./clusters/production"),
        ),
        ("clusters/production/policy.yaml", &policy("1.0.x")),
        ("clusters/production/repo.yaml", REPO),
        ("clusters/staging/auto.yaml", &auto("./clusters/staging")),
        ("clusters/staging/policy.yaml", &policy(">=1.0.0")),
        (
            "clusters/staging/repo.yaml",
            &REPO.replace("acme/web", "acme/web-rc"),
        ),
    ]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(declared.len(), 2);
    let (production, staging) = (&declared[0], &declared[1]);
    assert_eq!(production.rule, "semver 1.0.x");
    assert_eq!(production.image, "ghcr.io/acme/web");
    assert_eq!(staging.image, "ghcr.io/acme/web-rc");
    let id = &production.id;
    assert!(
        production
            .scope
            .admits("clusters/production/d.yaml", id)
            .is_ok()
    );
    assert!(
        production
            .scope
            .admits("clusters/staging/d.yaml", id)
            .is_err()
    );
    assert!(staging.scope.admits("clusters/staging/d.yaml", id).is_ok());
    assert!(
        staging
            .scope
            .admits("clusters/production/d.yaml", id)
            .is_err()
    );
}

#[test]
fn equally_near_repositories_that_differ_fail_the_policy() {
    let policy = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: web, namespace: apps}\nspec: {imageRepositoryRef: {name: web}, policy: {alphabetical: {}}}\n";
    let other = REPO.replace("acme/web", "acme/other");
    let (declared, _) = declare(&[
        ("base/a.yaml", REPO),
        ("base/b.yaml", &other),
        ("base/p.yaml", policy),
    ]);
    let err = declared[0].policy.as_ref().unwrap_err();
    assert!(
        err.contains("declared differently at base/a.yaml:1 and base/b.yaml:1"),
        "{err}"
    );
    // Identical copies are one repository.
    let (declared, _) = declare(&[
        ("base/a.yaml", REPO),
        ("base/b.yaml", REPO),
        ("base/p.yaml", policy),
    ]);
    assert!(declared[0].policy.is_ok());
}

#[test]
fn nearness_counts_shared_directories() {
    assert_eq!(shared_dirs("a/b/c.yaml", "a/b/d.yaml"), 2);
    assert_eq!(shared_dirs("a/b/c.yaml", "a/bb/d.yaml"), 1);
    assert_eq!(shared_dirs("c.yaml", "d.yaml"), 0);
    assert_eq!(shared_dirs("a/c.yaml", "d.yaml"), 0);
    // A `--policies` file beside a tree file: its path inside PATH.
    assert_eq!(
        shared_dirs("/p/infra/clusters/a/x.yaml", "clusters/a/d.yaml"),
        2
    );
    assert_eq!(
        shared_dirs("clusters/a/d.yaml", "./infra/clusters/b/x.yaml"),
        1
    );
    assert_eq!(shared_dirs("./infra/a/x.yaml", "./infra/b/y.yaml"), 2);
}

#[test]
fn credentials_in_an_image_are_refused_and_never_shown() {
    let repo = REPO.replace(
        "image: ghcr.io/acme/web",
        "image: 'robot:s3cr3t@ghcr.io/acme/web'",
    );
    let policy = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: web, namespace: apps}\nspec: {imageRepositoryRef: {name: web}, policy: {alphabetical: {}}}\n";
    let (declared, _) = declare(&[("p.yaml", policy), ("r.yaml", &repo)]);
    let err = declared[0].policy.as_ref().unwrap_err();
    assert!(
        err.contains("credentials") && !err.contains("s3cr3t"),
        "{err}"
    );
    assert!(!declared[0].image.contains("s3cr3t"));
}

#[test]
fn suspended_automations_apply_nothing_and_v1beta1_has_no_digest_reflection() {
    let auto = "apiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageUpdateAutomation\nmetadata: {name: auto, namespace: apps}\nspec: {suspend: true}\n";
    let policy = "apiVersion: image.toolkit.fluxcd.io/v1beta1\nkind: ImagePolicy\nmetadata: {name: web, namespace: apps}\nspec: {imageRepositoryRef: {name: web}, policy: {alphabetical: {}}, digestReflectionPolicy: Always}\n";
    let (declared, problems) = declare(&[("a.yaml", auto), ("p.yaml", policy), ("r.yaml", REPO)]);
    assert!(declared[0].scope.admits("x.yaml", &declared[0].id).is_err());
    assert!(problems.iter().any(|p| p.message.contains("suspended")));
    assert_eq!(
        declared[0].policy.as_ref().unwrap().digest,
        DigestReflection::Never
    );
}

#[test]
fn update_paths_are_normalised_and_confined() {
    let path = |p: &str| {
        update_path(
            &parse(&format!("update: {{path: '{p}'}}"))
                .unwrap()
                .documents[0]
                .root,
        )
    };
    assert_eq!(path("./a/b/"), Ok("a/b".to_string()));
    assert_eq!(path("."), Ok(String::new()));
    assert_eq!(path("a/../b"), Ok("b".to_string()));
    assert!(path("../x").is_err());
}

#[test]
fn unknown_version_resources_are_reported_and_copies_are_not() {
    let v9 = REPO.replace("/v1\n", "/v9\n");
    let (_, problems) = declare(&[("a.yaml", REPO), ("b.yaml", REPO), ("c.yaml", &v9)]);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems
            .iter()
            .any(|p| p.message.contains("unknown version"))
    );
}
