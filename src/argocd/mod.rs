//! Argo CD Image Updater, in the repository: its settings read from the tree
//! ([`config`]), and its results written where Argo CD reads them.

pub mod config;
pub mod kustomize;
pub mod plan;
pub mod repo_url;
pub mod write;

/// The Argo CD conformance table (`testdata/conformance/argocd-cases.yaml`),
/// for the tests of every module that reproduces a part of it.
#[cfg(test)]
pub(crate) mod cases {
    use crate::yaml::{self, Node};

    const CASES: &str = include_str!("../../testdata/conformance/argocd-cases.yaml");

    /// Calls `check(name, input, expected)` for every case of `kind` and
    /// returns how many there were.
    pub fn for_each(kind: &str, mut check: impl FnMut(&str, &Node, &Node)) -> usize {
        let stream = yaml::parse(CASES).expect("the table parses");
        let mut ran = 0;
        for case in stream.documents[0].root.get("cases").unwrap().items() {
            if case.str_at(&["kind"]) == Some(kind) {
                let name = case.str_at(&["name"]).unwrap();
                check(
                    name,
                    case.get("input").unwrap(),
                    case.get("expected").unwrap(),
                );
                ran += 1;
            }
        }
        ran
    }
}
