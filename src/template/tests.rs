use super::argo_data::argo_image_name;
use super::flux_data::parse_image_ref;
use super::gofmt::{go_float, go_quote};
use super::*;
use std::path::{Path, PathBuf};

/// The run every file case renders. Its changes cover a full-image setter,
/// a tag setter in a file that is not a Kubernetes resource, a second
/// change in the same object, and the same image set in another file.
fn context() -> Context {
    let podinfo = Object {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: "apps".into(),
        name: "podinfo".into(),
    };
    let backup = Object {
        api_version: "batch/v1".into(),
        kind: "CronJob".into(),
        namespace: "apps".into(),
        name: "podinfo-backup".into(),
    };
    let change = |file: &str,
                  setter: &str,
                  old: &str,
                  new: &str,
                  image: &str,
                  tags: (&str, &str),
                  object: &Object| Change {
        file: file.into(),
        setter: setter.into(),
        old: old.into(),
        new: new.into(),
        image: image.into(),
        old_tag: tags.0.into(),
        new_tag: tags.1.into(),
        object: object.clone(),
    };
    Context {
        automation: Some(("flux-system".into(), "apps".into())),
        flux_v1: false,
        values: BTreeMap::from([
            ("env".to_string(), "production".to_string()),
            ("team".to_string(), "platform".to_string()),
        ]),
        app_name: "podinfo".into(),
        changes: vec![
            change(
                "apps/podinfo/deployment.yaml",
                "flux-system:podinfo",
                "ghcr.io/stefanprodan/podinfo:6.4.0",
                "ghcr.io/stefanprodan/podinfo:6.5.0",
                "ghcr.io/stefanprodan/podinfo",
                ("6.4.0", "6.5.0"),
                &podinfo,
            ),
            change(
                "apps/redis/values.yaml",
                "flux-system:redis:tag",
                "7.2.3",
                "7.2.4",
                "redis",
                ("7.2.3", "7.2.4"),
                &Object::default(),
            ),
            change(
                "apps/podinfo/deployment.yaml",
                "flux-system:sidecar:tag",
                "1.0.0",
                "1.1.0",
                "ghcr.io/acme/sidecar",
                ("1.0.0", "1.1.0"),
                &podinfo,
            ),
            change(
                "apps/podinfo/cronjob.yaml",
                "flux-system:podinfo",
                "ghcr.io/stefanprodan/podinfo:6.4.0",
                "ghcr.io/stefanprodan/podinfo:6.5.0",
                "ghcr.io/stefanprodan/podinfo",
                ("6.4.0", "6.5.0"),
                &backup,
            ),
        ],
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `render_message` must print `.expected`.
    Message,
    /// `render_branch` must print `.expected`.
    Branch,
    /// `render_message` must fail; `.expected` holds the error and a newline.
    MessageError,
}

/// Every case of `testdata/templates/`: `NAME.tmpl` rendered against
/// [`context`] must give `NAME.expected`, which is what Go's text/template
/// (with Sprig) prints, worked out by hand from Go's documented behaviour;
/// the less obvious ones are explained here.
const CASES: &[(&str, Kind)] = &[
    // The example of the Flux docs. `{{ end -}}` also eats the blank line
    // before "Objects:", and each change line is followed by an empty line
    // (the inner range's body starts with the "\n" after its `}}` and ends
    // with the "\n" before `{{ end -}}`). Objects range in Go's key order
    // (apiVersion, kind, name, namespace), so the values file that is not
    // a resource (empty identifier) comes first and prints "-  ".
    ("flux-docs", Kind::Message),
    // One image per line; the podinfo ref set in two files is listed once.
    ("flux-updated-images", Kind::Message),
    // The v1beta1 example of the Flux 0.7.0 changelog, same trimming.
    ("flux-v1beta1-changelog", Kind::Message),
    // `.Changed.Changes` drops the cronjob change (same setter, old and new
    // value as the deployment's) and sorts by setter; printed whole it goes
    // through Flux's `Changes.String()` (`{OldValue:%q ...}`).
    ("flux-changed-methods", Kind::Message),
    // go-containerregistry's defaults: `redis` is
    // `index.docker.io/library/redis`.
    ("flux-image-ref", Kind::Message),
    // Argo's `.Image` is its ImageName (registry host dropped); podinfo,
    // updated in two files, is one change.
    ("argo-default", Kind::Message),
    // Argo's own test template; `index` of the empty `.Labels` is "".
    ("argo-labels", Kind::Message),
    // SHA-256 of "stefanprodan/podinfo-6.4.0-6.5.0,redis-7.2.3-7.2.4,acme/sidecar-1.0.0-1.1.0,".
    ("branch-sha256", Kind::Branch),
    ("branch-images", Kind::Branch),
    // 40 × "podinfo-" is 320 bytes, cut to 255 as Argo does.
    ("branch-truncated", Kind::Branch),
    // `index` of a missing key is the element's zero value ("") where the
    // field syntax gives `<no value>`, and `print` shows it as `<nil>`. An
    // ObjectIdentifier prints as its nested structs
    // `{{{apiVersion kind} {name namespace}}}`; `.Changed.Objects` and
    // `.Changed.FileChanges` print through Flux's `String()` methods
    // (objects by apiVersion, kind, namespace, name; files quoted).
    ("print-values", Kind::Message),
    // `{{-3}}` is the number -3, not a trim marker (that needs a space).
    ("trim", Kind::Message),
    // `range` over an int (Go 1.22), `break`/`continue` (Go 1.18), and
    // `and`/`or` returning the deciding operand.
    ("control", Kind::Message),
    // `=` assigns the variable of the enclosing scope; `:=` in `with`
    // shadows until `{{end}}`.
    ("variables", Kind::Message),
    // `{{template "nil"}}` runs with nil data: `{{.}}` is `<no value>`.
    ("define", Kind::Message),
    // `print` puts a space only between two non-strings; float constants
    // print as `%v` does (1e+06, 3); 'a' is 97; a string indexes to a byte.
    ("builtins-print", Kind::Message),
    // fmt's MISSING/EXTRA/NOVERB/BADINDEX markers; a verb applies to each
    // element of a slice (width included); a Stringer formats its String().
    ("builtins-printf", Kind::Message),
    ("builtins-compare", Kind::Message),
    // `index` of a missing key gives the zero value: a nil ObjectChanges,
    // whose `String()` is "{}". Struct keys index with a key from `range`.
    ("builtins-index", Kind::Message),
    // `html` of a missing value escapes "<no value>".
    ("builtins-escape", Kind::Message),
    ("sprig-upper", Kind::Message),
    ("sprig-lower", Kind::Message),
    // strings.Title: `-` separates words, `_` and digits do not.
    ("sprig-title", Kind::Message),
    ("sprig-trim", Kind::Message),
    ("sprig-trimAll", Kind::Message),
    ("sprig-trimPrefix", Kind::Message),
    // TrimSuffix removes one occurrence.
    ("sprig-trimSuffix", Kind::Message),
    // Replacing "" inserts around every character.
    ("sprig-replace", Kind::Message),
    ("sprig-contains", Kind::Message),
    ("sprig-hasPrefix", Kind::Message),
    ("sprig-hasSuffix", Kind::Message),
    // A nil argument is skipped; 3 becomes "3".
    ("sprig-quote", Kind::Message),
    ("sprig-squote", Kind::Message),
    ("sprig-default", Kind::Message),
    // A struct is never empty.
    ("sprig-empty", Kind::Message),
    // No non-empty argument: coalesce returns nil, printed `<no value>`.
    ("sprig-coalesce", Kind::Message),
    // Image refs join through their String().
    ("sprig-join", Kind::Message),
    // strings.Split("", ",") is [""].
    ("sprig-splitList", Kind::Message),
    ("sprig-list", Kind::Message),
    // `first` of an empty list is nil: `<no value>`.
    ("sprig-first", Kind::Message),
    ("sprig-last", Kind::Message),
    ("sprig-uniq", Kind::Message),
    // Byte order: "10" < "9" < "C" < "a".
    ("sprig-sortAlpha", Kind::Message),
    ("sprig-indent", Kind::Message),
    ("sprig-nindent", Kind::Message),
    ("sprig-repeat", Kind::Message),
    // A negative start means from 0, an end past the string means to its end.
    ("sprig-substr", Kind::Message),
    ("sprig-trunc", Kind::Message),
    // Width under 4 leaves the string alone.
    ("sprig-abbrev", Kind::Message),
    // encoding/json: `<` escaped, struct fields by their json tags
    // (omitempty), and a map keyed by structs cannot be marshalled, so
    // toJson gives "".
    ("sprig-toJson", Kind::Message),
    ("sprig-toString", Kind::Message),
    // Nil arguments are dropped.
    ("sprig-cat", Kind::Message),
    ("sprig-nospace", Kind::Message),
    ("sprig-ternary", Kind::Message),
    // Parse errors: `template: NAME:LINE: MESSAGE`.
    ("error-unknown-function", Kind::MessageError),
    ("error-unclosed-action", Kind::MessageError),
    // Reported on the line of the end of input.
    ("error-missing-end", Kind::MessageError),
    ("error-stray-end", Kind::MessageError),
    ("error-undefined-variable", Kind::MessageError),
    // Execution errors: `template: NAME:LINE:COL: executing "NAME" at
    // <NODE>: MESSAGE`, COL counting bytes from 0.
    ("error-missing-field", Kind::MessageError),
    ("error-field-of-string", Kind::MessageError),
    // A piped value of the wrong type is reported at the function name.
    ("error-wrong-type", Kind::MessageError),
    ("error-calling", Kind::MessageError),
    ("error-index-range", Kind::MessageError),
    // Go places a template node at its name (column 12) and cuts the
    // context after 20 bytes.
    ("error-template-not-defined", Kind::MessageError),
    ("error-break-outside-range", Kind::MessageError),
    ("error-non-executable", Kind::MessageError),
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/templates")
}

fn read(name: &str, ext: &str) -> String {
    let path = dir().join(format!("{name}.{ext}"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn file_cases() {
    let ctx = context();
    let mut failures = Vec::new();
    for &(name, kind) in CASES {
        let template = read(name, "tmpl");
        let expected = read(name, "expected");
        let got = match kind {
            Kind::Message => render_message(&template, &ctx).map_err(|e| e.to_string()),
            Kind::Branch => render_branch(&template, &ctx).map_err(|e| e.to_string()),
            Kind::MessageError => match render_message(&template, &ctx) {
                Ok(out) => Err(format!("rendered {out:?}")),
                Err(e) => Ok(format!("{e}\n")),
            },
        };
        match got {
            Ok(got) if got == expected => {}
            Ok(got) => failures.push(format!("{name}: got\n{got}\n--- expected\n{expected}")),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n=====\n"));
}

#[test]
fn every_file_is_a_case() {
    let mut names: Vec<String> = std::fs::read_dir(dir())
        .expect("testdata/templates")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for file in names {
        let (stem, ext) = file.rsplit_once('.').expect("extension");
        assert!(matches!(ext, "tmpl" | "expected"), "{file}");
        assert!(
            CASES.iter().any(|(n, _)| *n == stem),
            "{file} is not in CASES"
        );
    }
}

fn one_change(image: &str, old: &str, new: &str) -> Context {
    Context {
        changes: vec![Change {
            file: "kustomization.yaml".into(),
            setter: "argocd:app:tag".into(),
            old: old.into(),
            new: new.into(),
            image: image.into(),
            old_tag: old.into(),
            new_tag: new.into(),
            object: Object::default(),
        }],
        ..Context::default()
    }
}

#[test]
fn branch_sha256_matches_argo() {
    // The vector of Argo CD Image Updater's Test_TemplateBranchName.
    let ctx = one_change("foo/bar", "1.0", "1.1");
    assert_eq!(
        render_branch("image-updater-{{.SHA256}}", &ctx).unwrap(),
        "image-updater-0fcc2782543e4bb067c174c21bf44eb947f3e55c0d62c403e359c1c209cbd041"
    );
    // Argo strips a registry host from the name it hashes and shows.
    let ctx = one_change("ghcr.io/foo/bar", "1.0", "1.1");
    assert_eq!(
        render_branch(
            "image-updater-{{.SHA256}}{{range .Images}}-{{.Name}}{{end}}",
            &ctx
        )
        .unwrap(),
        "image-updater-0fcc2782543e4bb067c174c21bf44eb947f3e55c0d62c403e359c1c209cbd041-foo/bar"
    );
    // A host without a dot is not a registry to Argo.
    assert_eq!(argo_image_name("localhost:5000/foo"), "localhost:5000/foo");
}

#[test]
fn branch_truncation_keeps_utf8() {
    let long = format!("{}é", "a".repeat(254));
    assert_eq!(
        render_branch(&long, &Context::default()).unwrap(),
        "a".repeat(254)
    );
}

#[test]
fn default_message_shapes() {
    let ctx = context();
    assert_eq!(
        default_message(&ctx),
        "Update images\n\n\
         - apps/podinfo/deployment.yaml: ghcr.io/stefanprodan/podinfo:6.4.0 -> ghcr.io/stefanprodan/podinfo:6.5.0\n\
         - apps/redis/values.yaml: 7.2.3 -> 7.2.4\n\
         - apps/podinfo/deployment.yaml: 1.0.0 -> 1.1.0\n\
         - apps/podinfo/cronjob.yaml: ghcr.io/stefanprodan/podinfo:6.4.0 -> ghcr.io/stefanprodan/podinfo:6.5.0\n"
    );
    let one = one_change("ghcr.io/foo/bar", "1.0", "1.1");
    assert_eq!(
        default_message(&one),
        "Update image ghcr.io/foo/bar to 1.1\n\n- kustomization.yaml: 1.0 -> 1.1\n"
    );
    assert_eq!(default_message(&Context::default()), "Update images\n");
}

#[test]
fn go_number_and_quote_formats() {
    assert_eq!(go_float(1e6), "1e+06");
    assert_eq!(go_float(123456.0), "123456");
    assert_eq!(go_float(0.0001), "0.0001");
    assert_eq!(go_float(0.00001), "1e-05");
    assert_eq!(go_float(1.5), "1.5");
    assert_eq!(go_float(-2.0), "-2");
    assert_eq!(go_float(1234567.0), "1.234567e+06");
    assert_eq!(
        go_quote("a\"b\\\n\u{a0}\u{7f}é"),
        "\"a\\\"b\\\\\\n\\u00a0\\x7fé\""
    );
}

#[test]
fn image_ref_parts() {
    let p = parse_image_ref("helloworld:v1.0.1");
    assert_eq!(
        (
            p.registry.as_str(),
            p.repository.as_str(),
            p.identifier.as_str(),
            p.name.as_str()
        ),
        (
            "index.docker.io",
            "library/helloworld",
            "v1.0.1",
            "index.docker.io/library/helloworld:v1.0.1"
        )
    );
    let image = "localhost:5000/org/helloworld@sha256:6745aaad46d795c9836632e1fb62f24b7e7f4c843144da8e47a5465c411a14be";
    let p = parse_image_ref(image);
    assert_eq!(p.registry, "localhost:5000");
    assert_eq!(p.repository, "org/helloworld");
    assert_eq!(p.name, image);
}

#[test]
fn missing_key_on_map_versus_struct() {
    let ctx = context();
    assert_eq!(
        render_message("{{.Values.nope}}", &ctx).unwrap(),
        "<no value>"
    );
    let err = render_message("{{.Nope}}", &ctx).unwrap_err();
    assert_eq!(
        err.to_string(),
        "template: commit message:1:2: executing \"commit message\" at <.Nope>: can't evaluate field Nope in type source.TemplateData"
    );
}

/// Templates a repository could hold to exhaust memory or time: each
/// fails with a message, none aborts (issues 15.7, 18.4).
#[test]
fn output_and_work_are_bounded() {
    let ctx = context();
    let cases = [
        (
            r#"{{ repeat 9223372036854775807 "ab" }}"#,
            "limit of a template's output",
        ),
        (
            r#"{{ repeat 600000 "ab" }}"#,
            "limit of a template's output",
        ),
        (
            r#"{{ indent 9223372036854775807 "a" }}"#,
            "limit of a template's output",
        ),
        (
            r#"{{ nindent 2000000 "a" }}"#,
            "limit of a template's output",
        ),
        (
            r#"{{ indent 1000 (repeat 2000 "\n") }}"#,
            "limit of a template's output",
        ),
        (
            r#"{{ replace "" (repeat 2000 "y") (repeat 2000 "x") }}"#,
            "limit of a template's output",
        ),
        (
            r#"{{ join (repeat 1000 "y") (splitList "" (repeat 100000 "x")) }}"#,
            "limit of a template's output",
        ),
        (
            r#"{{ printf "%s%s" (repeat 600000 "a") (repeat 600000 "b") }}"#,
            "limit of a template's output",
        ),
        (
            r#"{{ range 100 }}{{ repeat 100000 "x" }}{{ end }}"#,
            "limit of a template's output",
        ),
        (
            "{{ range 9223372036854775807 }}{{ end }}",
            "more than 1000000 steps",
        ),
        (
            "{{ range 9223372036854775807 }}x{{ end }}",
            "more than 1000000 steps",
        ),
        (
            "{{ range $i := 1000 }}{{ range 1000 }}{{ range 1000 }}{{ end }}{{ end }}{{ end }}",
            "more than 1000000 steps",
        ),
    ];
    for (template, expected) in cases {
        let err = render_message(template, &ctx).expect_err(template);
        assert!(err.to_string().contains(expected), "{template}: {err}");
        let err = render_branch(template, &ctx).expect_err(template);
        assert!(err.to_string().contains(expected), "{template}: {err}");
    }
    // Within the bounds, and Go's own bound on printf widths.
    assert_eq!(
        render_message(r#"{{ repeat 3 "ab" }}"#, &ctx).unwrap(),
        "ababab"
    );
    assert_eq!(
        render_message(r#"{{ printf "%*d" 9223372036854775807 1 }}"#, &ctx).unwrap(),
        "%!(BADWIDTH)1"
    );
    assert_eq!(
        render_message("{{ range 3 }}{{ . }}{{ end }}", &ctx).unwrap(),
        "012"
    );
}
