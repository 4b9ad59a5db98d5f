use super::*;

/// What a push that lost a race replays on the new tip: the Argo CD
/// writes of the file, on top of its marker edits, and nothing for a
/// file the run did not touch.
#[test]
fn replay_redoes_argo_cd_writes_after_the_markers() {
    let resolved = Resolved::new("ghcr.io/acme/web", "1.1.0", None).unwrap();
    let replay = Replay {
        targets: BTreeMap::from([(
            PolicyId::new("apps", "web"),
            vec![Target {
                origin: flux::Origin {
                    file: "p.yaml".into(),
                    line: 1,
                },
                scope: flux::Scope::Everywhere,
                latest: Ok(resolved),
                guard: None,
                unread: false,
            }],
        )]),
        argo: BTreeMap::from([(
            "app/.argocd-source-app.yaml".to_string(),
            vec![Write::OverrideKustomize(vec![
                "ghcr.io/acme/api:2.1.0".into(),
            ])],
        )]),
    };
    let src = "# other edits on the new tip\nimage: ghcr.io/acme/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}\nkustomize:\n  images:\n  - ghcr.io/acme/api:2.0.0\n";
    assert_eq!(
        replay
            .apply("app/.argocd-source-app.yaml", src)
            .unwrap()
            .unwrap(),
        "# other edits on the new tip\nimage: ghcr.io/acme/web:1.1.0 # {\"$imagepolicy\": \"apps:web\"}\nkustomize:\n  images:\n  - ghcr.io/acme/api:2.1.0\n"
    );
    let marked_only = replay.apply("other.yaml", src).unwrap().unwrap();
    assert!(marked_only.contains("web:1.1.0") && marked_only.contains("api:2.0.0"));
    assert_eq!(replay.apply("other.yaml", "a: 1\n").unwrap(), None);
}

#[test]
fn if_not_present_reuses_only_a_digest_pinned_for_the_same_image_and_tag() {
    let pinned = Pinned {
        name: "ghcr.io/acme/web".into(),
        tag: "1.2.3".into(),
        digest: "sha256:aa".into(),
    };
    let reuse =
        |reflection, image: &str, tag: &str| digest_to_reuse(reflection, Some(&pinned), image, tag);
    assert_eq!(
        reuse(DigestReflection::IfNotPresent, "ghcr.io/acme/web", "1.2.3"),
        Some("sha256:aa".into())
    );
    assert_eq!(
        reuse(DigestReflection::IfNotPresent, "ghcr.io/acme/web", "1.2.4"),
        None
    );
    assert_eq!(
        reuse(
            DigestReflection::IfNotPresent,
            "docker.io/evil/web",
            "1.2.3"
        ),
        None
    );
    assert_eq!(
        reuse(DigestReflection::Always, "ghcr.io/acme/web", "1.2.3"),
        None
    );
    let empty = Pinned {
        digest: String::new(),
        ..pinned.clone()
    };
    assert_eq!(
        digest_to_reuse(
            DigestReflection::IfNotPresent,
            Some(&empty),
            "ghcr.io/acme/web",
            "1.2.3"
        ),
        None
    );
}
