//! Placeholder: replaced by the write-back writers.
#![allow(unused_variables)]

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmParam {
    pub name: String,
    pub value: String,
    pub force_string: bool,
}

pub fn override_helm(existing: Option<&str>, set: &[HelmParam]) -> Result<Option<String>, String> {
    Err("todo".into())
}
pub fn override_kustomize(existing: Option<&str>, set: &[String]) -> Result<Option<String>, String> {
    Err("todo".into())
}
pub fn kustomization_images(existing: &str, images: &[String]) -> Result<Option<String>, String> {
    Err("todo".into())
}
pub fn helm_values(existing: Option<&str>, writes: &[(String, String)]) -> Result<Option<String>, String> {
    Err("todo".into())
}
pub fn application_helm(src: &str, document: usize, source: Option<usize>, set: &[HelmParam]) -> Result<Option<String>, String> {
    Err("todo".into())
}
pub fn application_kustomize(src: &str, document: usize, source: Option<usize>, images: &[String]) -> Result<Option<String>, String> {
    Err("todo".into())
}
