//! `image-update` keeps container image references in a GitOps repository up
//! to date from inside the repository: it reads the declarations users already
//! keep in git, asks the registries what exists, and rewrites only the bytes
//! that must change.
//!
//! Pure decisions (`marker`, `rewrite`, `image`, `policy`, `flux`, `plan`) take
//! and return values; `scan`, `registry`, `report` and `cli` are the edges;
//! `update` strings them together; `krm` runs the same engine as a KRM
//! function over a `ResourceList`, and `action` runs it as a GitHub Action.

pub mod action;
pub mod argocd;
pub mod civil;
pub mod cli;
pub mod commit;
pub mod diff;
pub mod flux;
pub mod git;
pub mod history;
pub mod hold;
pub mod image;
pub mod krm;
pub mod kubesphere;
pub mod manage;
pub mod marker;
pub mod outcome;
pub mod parallel;
pub mod plan;
pub mod policy;
pub mod registry;
pub mod report;
pub mod rewrite;
pub mod scan;
pub mod serve;
pub mod template;
pub mod tree_write;
pub mod update;
pub mod yaml;
