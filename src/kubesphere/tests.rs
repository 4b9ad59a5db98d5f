use super::*;

fn read(src: &str) -> Result<Option<Unified>, Vec<FieldError>> {
    let stream = yaml::parse(src).unwrap();
    read_unified("u.yaml", &stream.documents[0].root)
}

const ARGO: &str = "apiVersion: gitops.kubesphere.io/v1alpha1
kind: ImageUpdater
metadata: {name: demo, namespace: demo}
spec:
  images: [\"nginx:^0.1\", \"myalias=some/image\"]
  kind: argocd
  argocd:
    app: {name: demo, namespace: demo}
    write: git
    update-strategy: {nginx: semver, myalias: latest}
    allow-tags: {nginx: any}
    ignore-tags: {myalias: \"*-dev, *-rc\"}
    platforms: {nginx: linux/amd64}
    secret: {nginx: docker-hub-secret}
";

#[test]
fn argo_resources_become_argo_updaters() {
    let u = read(ARGO).unwrap().unwrap();
    let Engine::Argo(a) = u.engine else { panic!() };
    assert_eq!(a.id, ("demo".into(), "demo".into()));
    assert_eq!(a.origin, ("u.yaml".into(), 1));
    assert!(!a.write_back_argocd);
    assert_eq!(a.images[0].alias, "nginx");
    assert_eq!(a.images[0].constraint.as_deref(), Some("^0.1"));
    assert_eq!(a.images[0].platforms, vec!["linux/amd64"]);
    assert_eq!(a.images[0].secret.as_deref(), Some("docker-hub-secret"));
    assert_eq!(a.images[1].alias, "myalias");
    assert_eq!(a.images[1].image, "some/image");
    assert_eq!(a.images[1].strategy.as_deref(), Some("latest"));
    assert_eq!(a.images[1].ignore_tags, vec!["*-dev", "*-rc"]);
}

#[test]
fn images_split_alias_name_and_constraint() {
    for (text, want) in [
        ("nginx", ("nginx", "nginx", None)),
        ("nginx:^0.1", ("nginx", "nginx", Some("^0.1"))),
        ("nginx:>=1.0 <2", ("nginx", "nginx", Some(">=1.0 <2"))),
        (
            "web=localhost:5000/acme/app:1.x",
            ("web", "localhost:5000/acme/app", Some("1.x")),
        ),
        ("ghcr.io/acme/api", ("api", "ghcr.io/acme/api", None)),
    ] {
        let (a, i, c) = parse_image(text).unwrap();
        assert_eq!((a.as_str(), i.as_str(), c.as_deref()), want, "{text}");
    }
    for bad in ["nginx@sha256:00", "nginx:", "Up/per", "A_B=nginx"] {
        assert!(parse_image(bad).is_err(), "{bad}");
    }
}

#[test]
fn validation_names_the_field_and_what_is_allowed() {
    let cases = [
        (
            ARGO.replace("kind: argocd", "kind: jenkins"),
            "spec.kind",
            "allowed: argocd, fluxcd",
        ),
        (
            ARGO.replace("myalias: latest", "myalias: newest"),
            "spec.argocd.update-strategy.myalias",
            "allowed: semver, newest-build",
        ),
        (
            ARGO.replace("myalias=some/image", "nginx=some/image"),
            "spec.images[1]",
            "already used by spec.images[0]",
        ),
        (
            ARGO.replace("allow-tags: {nginx: any}", "allow-tags: {tomcat: any}"),
            "spec.argocd.allow-tags.tomcat",
            "aliases are: nginx, myalias",
        ),
        (
            format!("{ARGO}  fluxcd: {{interval: 1m}}\n"),
            "spec.fluxcd",
            "not allowed when spec.kind is argocd",
        ),
        (
            ARGO.replace("write: git", "write: svn"),
            "spec.argocd.write",
            "allowed: built-in, git",
        ),
        (
            ARGO.replace("\"nginx:^0.1\"", "\"nginx@sha256:1\""),
            "spec.images[0]",
            "digest is not allowed",
        ),
    ];
    for (src, field, message) in cases {
        let errors = read(&src).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.field == field && e.message.contains(message)),
            "{field}: {errors:?}"
        );
    }
}

const FLUX: &str = "apiVersion: gitops.kubesphere.io/v1alpha1
kind: ImageUpdater
metadata: {name: demo, namespace: demo}
spec:
  images:
  - nginx:^0.1
  - podinfo=ghcr.io/stefanprodan/podinfo
  kind: fluxcd
  fluxcd:
    interval: 1m
    secret: docker-hub-secret
    policy: {semver: {range: 5.0.x}}
    sourceRef: {kind: GitRepository, name: podinfo}
    update: {path: ./clusters/my-cluster, strategy: Setters}
";

#[test]
fn a_constraint_wins_over_the_policy_and_an_image_needs_one_of_them() {
    let u = read(FLUX).unwrap().unwrap();
    let docs = flux_documents(&u);
    assert_eq!(docs.len(), 5);
    assert_eq!(docs[1].1["spec"]["policy"]["semver"]["range"], "^0.1");
    assert_eq!(docs[3].1["metadata"]["name"], "demo-podinfo");
    assert_eq!(docs[3].1["spec"]["policy"]["semver"]["range"], "5.0.x");
    assert_eq!(docs[0].0, 6);
    let errors = read(&FLUX.replace("    policy: {semver: {range: 5.0.x}}\n", "")).unwrap_err();
    assert_eq!(errors[0].field, "spec.images[1]");
    assert!(errors[0].message.contains("has no rule"), "{errors:?}");
}

#[test]
fn fluxcd_resources_are_declared_at_the_unified_resource() {
    let mut resources = flux::Resources::default();
    let stream = yaml::parse(FLUX).unwrap();
    feed(&mut resources, "u.yaml", &stream.documents[0].root);
    let declared = resources.declare();
    assert_eq!(declared.len(), 2);
    assert_eq!(declared[0].id.to_string(), "demo:demo-nginx");
    assert_eq!(
        declared[0].origin,
        Origin {
            file: "u.yaml".into(),
            line: 6
        }
    );
    assert_eq!(declared[1].rule, "semver 5.0.x");
    assert!(declared[1].policy.is_ok());
    assert!(
        declared[0]
            .scope
            .admits("clusters/my-cluster/a.yaml", &declared[0].id)
            .is_ok()
    );
    assert!(resources.problems[0].message.contains("docker-hub-secret"));
}

#[test]
fn durations_follow_go() {
    for ok in ["1m", "30s", "1h30m", "500ms", "1.5h"] {
        assert!(check_duration(ok).is_ok(), "{ok}");
    }
    for bad in ["", "1", "m", "1 m", "1d"] {
        assert!(check_duration(bad).is_err(), "{bad}");
    }
}
