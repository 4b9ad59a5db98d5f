//! Argo CD Image Updater, in the repository: its settings read from the tree
//! ([`config`]), and its results written where Argo CD reads them.

pub mod config;
pub mod plan;
pub mod repo_url;
pub mod write;
