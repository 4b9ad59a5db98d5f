use super::*;

#[test]
fn target_path_cases() {
    let ran = crate::argocd::cases::for_each("target_path", |name, input, expected| {
        let got = target_path(
            input.str_at(&["target"]),
            input.str_at(&["app_path"]).unwrap(),
            input.str_at(&["app_name"]).unwrap_or("app"),
            input.str_at(&["app_namespace"]).unwrap_or("argocd"),
            input.str_at(&["controller_namespace"]).unwrap_or("argocd"),
        );
        if expected.str_at(&["error"]) == Some("true") {
            assert!(got.is_err(), "{name}: {got:?}");
            return;
        }
        let got = got.unwrap();
        match (
            expected.str_at(&["kustomize_dir"]),
            expected.str_at(&["file"]),
        ) {
            (Some(dir), _) => assert_eq!(got, Target::Kustomization(dir.into()), "{name}"),
            (None, Some(file)) => assert_eq!(got.file(), file, "{name}"),
            _ => panic!("{name}: nothing expected"),
        }
    });
    assert!(ran >= 5, "only {ran} target_path cases");
}

/// A target without `kind:` is a file from the repository root
/// (pkg/argocd/argocd.go:615-629, pkg/argocd/git.go:348): a values
/// file, or the override file's content at another path.
#[test]
fn bare_targets_are_files_from_the_repository_root() {
    let target = |t: &str| target_path(Some(t), "apps/web", "web", "argocd", "argocd");
    assert_eq!(
        target("envs/dev/values.yaml"),
        Ok(Target::HelmValues("envs/dev/values.yaml".into()))
    );
    assert_eq!(
        target("/envs/dev/values.yml"),
        Ok(Target::HelmValues("envs/dev/values.yml".into()))
    );
    assert_eq!(
        target("apps/web/.argocd-source-web.yaml"),
        Ok(Target::Override("apps/web/.argocd-source-web.yaml".into()))
    );
    assert!(target("apps/web/kustomization.yml").is_err());
    assert!(target("../x.yaml").is_err());
}

#[test]
fn a_target_cannot_leave_the_repository() {
    assert!(
        target_path(
            Some("helmvalues:../../x.yaml"),
            "a",
            "n",
            "argocd",
            "argocd"
        )
        .is_err()
    );
    assert_eq!(
        target_path(Some("kustomization"), "a/b", "n", "argocd", "argocd"),
        Ok(Target::Kustomization("a/b".into()))
    );
}
