//! The `override_helm`, `override_kustomize`, `helm_values_write` and
//! `kustomization_write` cases of the Argo CD conformance table, then the
//! surgical behaviour upstream does not have.
//!
//! One table case is upstream behaviour we refuse on purpose:
//! `kustomize-override-indented-dashes-not-a-marker` feeds a file that is
//! not valid YAML; upstream silently replaces it with a fresh file, we
//! return an error. Its expectation (the output does not start with
//! `---`) is checked for any output we would produce.

use std::collections::BTreeMap;

use granit_parser::ScalarStyle;

use super::locate::{Base, locate};
use super::override_file::kustomize_image;
use super::*;
use crate::rewrite;
use crate::yaml::{self, Node};

/// YAML data with positions and layout forgotten; a plain scalar that
/// YAML reads as another type is kept apart from the string.
#[derive(Debug, PartialEq)]
enum Data {
    Null,
    Str(String),
    Typed(String),
    List(Vec<Data>),
    Map(BTreeMap<String, Data>),
}

fn data(node: &Node) -> Data {
    match node {
        Node::Scalar(_) if node.is_null() => Data::Null,
        Node::Scalar(s) if s.style == ScalarStyle::Plain && !rewrite::is_safe_plain(&s.value) => {
            Data::Typed(s.value.clone())
        }
        Node::Scalar(s) => Data::Str(s.value.clone()),
        Node::Sequence(items, _) => Data::List(items.iter().map(data).collect()),
        Node::Mapping(entries, _) => Data::Map(
            entries
                .iter()
                .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), data(v)))
                .collect(),
        ),
        Node::Alias(_) | Node::Empty => Data::Null,
    }
}

fn data_of(src: &str) -> Data {
    data(&yaml::parse(src).unwrap().documents[0].root)
}

use crate::argocd::cases::for_each as for_each_case;

fn strings(node: Option<&Node>) -> Vec<String> {
    let items = node.map(Node::items).unwrap_or_default();
    items
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

/// Checks one writer result against a case's `expected`.
fn expect(
    name: &str,
    existing: Option<&str>,
    got: Result<Option<String>, String>,
    expected: &Node,
) {
    if expected.str_at(&["error"]) == Some("true") {
        assert!(got.is_err(), "case {name}: expected an error, got {got:?}");
        return;
    }
    if expected.str_at(&["skip_commit"]) == Some("true") {
        assert_eq!(got, Ok(None), "case {name}");
        return;
    }
    let out = match got {
        Ok(Some(out)) => out,
        Ok(None) => existing.unwrap().to_string(),
        Err(e) => panic!("case {name}: {e}"),
    };
    let content = expected.str_at(&["content"]).unwrap_or_default();
    match expected.str_at(&["compare"]) {
        Some("exact") => assert_eq!(out, content, "case {name}"),
        Some("yaml") => assert_eq!(data_of(&out), data_of(content), "case {name}:\n{out}"),
        Some("prefix_absent") => {
            let prefix = expected.str_at(&["prefix"]).unwrap();
            assert!(!out.starts_with(prefix), "case {name}:\n{out}");
        }
        other => panic!("case {name}: unknown compare {other:?}"),
    }
}

/// Our deliberate divergence: unparseable input is refused.
fn refused_on_purpose(name: &str, got: &Result<Option<String>, String>) -> bool {
    name == "kustomize-override-indented-dashes-not-a-marker"
        && got.as_ref().is_err_and(|e| e.contains("not valid YAML"))
}

#[test]
fn argocd_override_helm_conformance_cases() {
    let ran = for_each_case("override_helm", |name, input, expected| {
        let existing = input.str_at(&["existing"]);
        let set: Vec<HelmParam> = input
            .get("set")
            .unwrap()
            .items()
            .iter()
            .map(|p| HelmParam {
                name: p.str_at(&["name"]).unwrap().into(),
                value: p.str_at(&["value"]).unwrap().into(),
                force_string: true,
            })
            .collect();
        expect(name, existing, override_helm(existing, &set), expected);
    });
    assert_eq!(ran, 4, "override_helm cases");
}

#[test]
fn argocd_override_kustomize_conformance_cases() {
    let ran = for_each_case("override_kustomize", |name, input, expected| {
        let existing = input.str_at(&["existing"]);
        let got = override_kustomize(existing, &strings(input.get("set")));
        if !refused_on_purpose(name, &got) {
            expect(name, existing, got, expected);
        }
    });
    assert_eq!(ran, 5, "override_kustomize cases");
}

#[test]
fn argocd_helm_values_conformance_cases() {
    let ran = for_each_case("helm_values_write", |name, input, expected| {
        let existing = input.str_at(&["existing"]);
        let writes: Vec<(String, String)> = input
            .get("writes")
            .unwrap()
            .items()
            .iter()
            .map(|w| {
                (
                    w.str_at(&["path"]).unwrap().into(),
                    w.str_at(&["value"]).unwrap().into(),
                )
            })
            .collect();
        expect(name, existing, helm_values(existing, &writes), expected);
    });
    assert_eq!(ran, 6, "helm_values_write cases");
}

#[test]
fn argocd_kustomization_conformance_cases() {
    let ran = for_each_case("kustomization_write", |name, input, expected| {
        let existing = input.str_at(&["existing"]).unwrap();
        let got = kustomization_images(existing, &strings(input.get("images")));
        expect(name, Some(existing), got, expected);
    });
    assert_eq!(ran, 3, "kustomization_write cases");
}

fn param(name: &str, value: &str) -> HelmParam {
    HelmParam {
        name: name.into(),
        value: value.into(),
        force_string: true,
    }
}

fn changed(got: Result<Option<String>, String>) -> String {
    got.unwrap().expect("a change")
}

#[test]
fn override_helm_keeps_comments_and_only_touches_the_value() {
    let src = "# managed by image-update\nhelm:\n  parameters:\n  # the web image\n  - name: image.tag\n    value: '1.0' # pinned\n    forcestring: true\n";
    let out = changed(override_helm(Some(src), &[param("image.tag", "1.1")]));
    assert_eq!(out, src.replace("'1.0'", "'1.1'"));
}

#[test]
fn override_helm_keeps_crlf() {
    let src = "helm:\r\n  parameters:\r\n  - name: b\r\n    value: x\r\n    forcestring: true\r\n";
    let out = changed(override_helm(
        Some(src),
        &[param("b", "v2"), param("a", "1.20")],
    ));
    assert_eq!(
        out,
        "helm:\r\n  parameters:\r\n  - name: a\r\n    value: \"1.20\"\r\n    forcestring: true\r\n  - name: b\r\n    value: v2\r\n    forcestring: true\r\n"
    );
}

#[test]
fn override_helm_inserts_in_sorted_place_or_appends_to_unsorted() {
    let sorted = "helm:\n  parameters:\n  - name: a\n    value: '1'\n  - name: c\n    value: '3'\n";
    let out = changed(override_helm(Some(sorted), &[param("b", "v2")]));
    assert_eq!(
        out,
        "helm:\n  parameters:\n  - name: a\n    value: '1'\n  - name: b\n    value: v2\n    forcestring: true\n  - name: c\n    value: '3'\n"
    );
    let unsorted =
        "helm:\n  parameters:\n  - name: c\n    value: '3'\n  - name: a\n    value: '1'\n";
    let out = changed(override_helm(Some(unsorted), &[param("b", "v2")]));
    assert!(
        out.ends_with("    value: '1'\n  - name: b\n    value: v2\n    forcestring: true\n"),
        "{out}"
    );
}

#[test]
fn override_helm_adds_the_flag_upstream_writes() {
    let src = "helm:\n  parameters:\n  - name: image.tag\n    value: v1\n";
    let out = changed(override_helm(Some(src), &[param("image.tag", "v1")]));
    assert_eq!(out, format!("{src}    forcestring: true\n"));
}

#[test]
fn indented_and_flush_lists_keep_their_style() {
    let indented = "kustomize:\n    images:\n        -   a:1\n";
    let out = changed(override_kustomize(Some(indented), &["b:2".into()]));
    assert_eq!(
        out,
        "kustomize:\n    images:\n        -   a:1\n        -   b:2\n"
    );
    let flush = "kustomize:\n  images:\n  - a:1\n";
    let out = changed(override_kustomize(Some(flush), &["b:2".into()]));
    assert_eq!(out, "kustomize:\n  images:\n  - a:1\n  - b:2\n");
}

#[test]
fn kustomize_matching_treats_docker_hub_as_no_registry() {
    let src = "kustomize:\n  images:\n  - docker.io/bitnami/nginx:1.0\n";
    let out = changed(override_kustomize(Some(src), &["bitnami/nginx:1.1".into()]));
    assert_eq!(out, "kustomize:\n  images:\n  - bitnami/nginx:1.1\n");
    let root = &yaml::parse(&out).unwrap().documents[0].root;
    assert_eq!(
        kustomize_image(root, "docker.io/bitnami/nginx").as_deref(),
        Some("bitnami/nginx:1.1")
    );
}

#[test]
fn empty_flow_list_becomes_a_block_list() {
    let src = "helm:\n  parameters: [] # none yet\n";
    let out = changed(override_helm(Some(src), &[param("x", "1")]));
    assert_eq!(
        out,
        "helm:\n  parameters:\n  - name: x\n    value: \"1\"\n    forcestring: true # none yet\n"
    );
}

#[test]
fn non_empty_flow_list_is_refused_with_its_line() {
    let src = "kustomize:\n  images: [a:1]\n";
    let err = override_kustomize(Some(src), &["b:2".into()]).unwrap_err();
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn parameters_that_are_not_a_list_are_refused() {
    let src = "helm:\n  parameters:\n    name: x\n";
    let err = override_helm(Some(src), &[param("x", "1")]).unwrap_err();
    assert!(
        err.contains("line 3") && err.contains("not a list"),
        "{err}"
    );
}

#[test]
fn malformed_file_is_an_error_and_nothing_else() {
    let src = "helm:\n  parameters:\n  - name: [x\n";
    assert!(override_helm(Some(src), &[param("x", "1")]).is_err());
    assert!(helm_values(Some("a: b: c\n"), &[("a".into(), "1".into())]).is_err());
    assert!(kustomization_images("images: [\n", &["a:1".into()]).is_err());
}

const APPS: &str = "\
# two apps
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: one
spec:
  source:
    repoURL: https://example.com/one.git
    path: chart
    helm:
      valueFiles: [values.yaml]
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: two
spec:
  sources:
    - repoURL: https://example.com/charts.git
      chart: web
      helm:
        valueFiles:
          - values.yaml
    - repoURL: https://example.com/two.git
      path: overlays/prod # prod
  destination:
    namespace: two
";

#[test]
fn application_helm_creates_parameters_next_to_flow_value_files() {
    // The file indents its lists (`sources:`), so the new one is too.
    let out = changed(application_helm(
        APPS,
        0,
        None,
        &[param("image.tag", "1.2.3")],
    ));
    let want = APPS.replace(
            "      valueFiles: [values.yaml]\n",
            "      valueFiles: [values.yaml]\n      parameters:\n        - name: image.tag\n          value: 1.2.3\n          forceString: true\n",
        );
    assert_eq!(out, want);
    assert_eq!(
        application_helm(&out, 0, None, &[param("image.tag", "1.2.3")]),
        Ok(None)
    );
}

#[test]
fn application_multi_source_edits_only_the_chosen_source() {
    let out = changed(application_helm(
        APPS,
        1,
        Some(0),
        &[param("image.tag", "2.0")],
    ));
    let want = APPS.replace(
            "          - values.yaml\n",
            "          - values.yaml\n        parameters:\n          - name: image.tag\n            value: \"2.0\"\n            forceString: true\n",
        );
    assert_eq!(out, want);
}

#[test]
fn application_kustomize_creates_the_kustomize_key() {
    let images = ["ghcr.io/acme/web:1.4".to_string()];
    let out = changed(application_kustomize(APPS, 1, Some(1), &images));
    let want = APPS.replace(
            "      path: overlays/prod # prod\n",
            "      path: overlays/prod # prod\n      kustomize:\n        images:\n          - ghcr.io/acme/web:1.4\n",
        );
    assert_eq!(out, want);
    assert_eq!(application_kustomize(&out, 1, Some(1), &images), Ok(None));
    let stream = yaml::parse(&out).unwrap();
    let source = locate(
        &stream,
        Base::Source {
            document: 1,
            source: Some(1),
        },
    )
    .unwrap();
    assert_eq!(
        kustomize_image(source, "ghcr.io/acme/web").as_deref(),
        Some("ghcr.io/acme/web:1.4")
    );
}

#[test]
fn application_errors_name_what_is_missing() {
    assert!(
        application_helm(APPS, 2, None, &[])
            .unwrap_err()
            .contains("no document 2")
    );
    assert!(
        application_helm(APPS, 1, None, &[])
            .unwrap_err()
            .contains("spec.source")
    );
    assert!(application_helm("kind: Secret\n", 0, None, &[]).is_err());
}

#[test]
fn every_writer_is_idempotent() {
    let set = [param("image.tag", "1.20"), param("image.name", "web")];
    let once = changed(override_helm(None, &set));
    assert_eq!(override_helm(Some(&once), &set), Ok(None));
    let images = ["web:1.2".to_string(), "db=postgres:16".to_string()];
    let once = changed(override_kustomize(None, &images));
    assert_eq!(override_kustomize(Some(&once), &images), Ok(None));
    let once = changed(kustomization_images("resources: [a.yaml]\n", &images));
    assert_eq!(kustomization_images(&once, &images), Ok(None));
    let writes = [("image.tag".to_string(), "2024-06-20".to_string())];
    let once = changed(helm_values(Some("image:\n  tag: old\n"), &writes));
    assert_eq!(once, "image:\n  tag: \"2024-06-20\"\n");
    assert_eq!(helm_values(Some(&once), &writes), Ok(None));
}

#[test]
fn kustomization_removes_a_stale_tag_and_keeps_new_name() {
    let src = "images:\n- name: web # app\n  newName: mirror.local/web\n  newTag: '1.0'\n";
    let out = changed(kustomization_images(src, &["web@sha256:abc".into()]));
    assert_eq!(
        out,
        "images:\n- name: web # app\n  newName: mirror.local/web\n  digest: sha256:abc\n"
    );
    let first = "images:\n- newTag: '1.0'\n  name: web\n";
    let out = changed(kustomization_images(first, &["web@sha256:abc".into()]));
    assert_eq!(out, "images:\n- name: web\n  digest: sha256:abc\n");
    let root = &yaml::parse(&out).unwrap().documents[0].root;
    let got = kustomization_image(root, "web").unwrap();
    assert_eq!(got.digest.as_deref(), Some("sha256:abc"));
    assert_eq!(got.new_tag, None);
}

#[test]
fn helm_values_reads_and_writes_list_items() {
    let src =
        "sidecars:\n  - name: proxy\n    image: envoy:1.0\n  - name: log\n    image: fluent:2\n";
    let writes = [("sidecars[1].image".to_string(), "fluent:3".to_string())];
    let out = changed(helm_values(Some(src), &writes));
    assert_eq!(out, src.replace("fluent:2", "fluent:3"));
    let root = &yaml::parse(&out).unwrap().documents[0].root;
    assert_eq!(
        values_at(root, "sidecars[1].image").as_deref(),
        Some("fluent:3")
    );
    assert!(helm_values(Some(src), &[("sidecars[5].image".into(), "x".into())]).is_err());
    assert!(helm_values(Some(src), &[("sidecars.image".into(), "x".into())]).is_err());
}

#[test]
fn helm_values_creates_nested_keys_in_the_files_indentation() {
    let src = "# values\nreplicas: 1\nresources:\n    limits:\n        cpu: 1\n";
    let writes = [("image.tag".to_string(), "v2".to_string())];
    let out = changed(helm_values(Some(src), &writes));
    assert_eq!(out, format!("{src}image:\n    tag: v2\n"));
}

#[test]
fn vacant_keys_and_missing_final_newline_are_filled_in_place() {
    let src = "helm: {}
other: 1";
    let out = changed(override_helm(Some(src), &[param("a", "b")]));
    assert_eq!(
        out,
        "helm:\n  parameters:\n  - name: a\n    value: b\n    forcestring: true\nother: 1"
    );
    let src = "kustomize:\n  images:\n  - a:1";
    let out = changed(override_kustomize(Some(src), &["b:2".into()]));
    assert_eq!(out, "kustomize:\n  images:\n  - a:1\n  - b:2\n");
}
