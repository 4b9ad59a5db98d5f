//! Whether an Argo CD application's source is this repository. Argo CD
//! compares repository URLs after normalising them; people write the same
//! repository as `https://github.com/org/repo.git`, `git@github.com:org/repo`
//! or `ssh://git@GitHub.com/org/repo/`, so the comparison ignores the scheme,
//! the user, a default port, a `.git` suffix, trailing slashes and the case of
//! the host. The path keeps its case: hosts differ on whether it matters.

/// The comparable form of a git URL: `host/path`.
pub fn normalize(url: &str) -> String {
    let url = url.trim();
    let (rest, scp_like) = match url.split_once("://") {
        Some((_, rest)) => (rest, false),
        None => (url, true),
    };
    let (authority, path) = if scp_like && !rest.starts_with('/') {
        // `user@host:path`, the scp-like syntax git accepts for ssh.
        match rest.split_once(':') {
            Some((host, path)) => (host, path),
            None => (rest, ""),
        }
    } else {
        rest.split_once('/').unwrap_or((rest, ""))
    };
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = match host.rsplit_once(':') {
        Some((h, "22" | "80" | "443")) => h,
        _ => host,
    };
    let path = path.trim_matches('/');
    let path = path
        .strip_suffix(".git")
        .unwrap_or(path)
        .trim_end_matches('/');
    format!("{}/{}", host.to_ascii_lowercase(), path)
}

/// Whether two URLs name the same repository.
pub fn same(a: &str, b: &str) -> bool {
    normalize(a) == normalize(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_repository_are_the_same() {
        let forms = [
            "https://github.com/org/repo",
            "https://github.com/org/repo.git",
            "https://github.com/org/repo/",
            "http://GitHub.com/org/repo",
            "https://user:token@github.com/org/repo.git",
            "git@github.com:org/repo.git",
            "ssh://git@github.com/org/repo",
            "ssh://git@github.com:22/org/repo.git",
            "git://github.com/org/repo",
        ];
        for form in forms {
            assert_eq!(normalize(form), "github.com/org/repo", "{form}");
        }
    }

    #[test]
    fn different_repositories_differ() {
        assert!(!same(
            "https://github.com/org/repo",
            "https://github.com/org/other"
        ));
        assert!(!same(
            "https://github.com/org/repo",
            "https://gitlab.com/org/repo"
        ));
        assert!(!same(
            "https://github.com/org/Repo",
            "https://github.com/org/repo"
        ));
        assert!(!same(
            "https://git.example.com:8443/r",
            "https://git.example.com/r"
        ));
    }
}
