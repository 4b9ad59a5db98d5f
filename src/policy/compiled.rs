//! Regular expressions compiled once per process. A tree's policies and
//! applications repeat the same few `filterTags` patterns, `exclusionList`
//! entries, `allow-tags` expressions and `ignore-tags` globs, and compiling
//! one (Unicode classes and all) costs as much as matching it against
//! hundreds of tags: on the benchmark tree, 147 compilations were 6%
//! of a warm run's own work. A compiled `Regex` is immutable and cheap to
//! clone, so sharing one changes no answer.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use regex::Regex;

/// Past this many distinct patterns (a long-running `serve` meeting ever
/// new ones) the memory starts over.
const MAX_KEPT: usize = 4096;

static KEPT: LazyLock<Mutex<HashMap<String, Result<Regex, regex::Error>>>> =
    LazyLock::new(Mutex::default);

/// `Regex::new(pattern)`, compiled at most once while kept.
pub fn regex(pattern: &str) -> Result<Regex, regex::Error> {
    if let Some(kept) = KEPT.lock().map_or(None, |k| k.get(pattern).cloned()) {
        return kept;
    }
    // Compiled outside the lock: two threads may both compile a new
    // pattern, which costs time, never a wrong answer.
    let compiled = Regex::new(pattern);
    if let Ok(mut kept) = KEPT.lock() {
        if kept.len() >= MAX_KEPT {
            kept.clear();
        }
        kept.insert(pattern.to_string(), compiled.clone());
    }
    compiled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_pattern_matches_as_compiled_and_an_invalid_one_keeps_its_error() {
        let a = regex("^build-(?P<n>[0-9]+)$").unwrap();
        let b = regex("^build-(?P<n>[0-9]+)$").unwrap();
        assert_eq!(a.as_str(), b.as_str());
        assert!(b.is_match("build-12") && !b.is_match("build-x"));
        let first = regex("(unclosed").unwrap_err();
        assert_eq!(
            regex("(unclosed").unwrap_err().to_string(),
            first.to_string()
        );
    }
}
