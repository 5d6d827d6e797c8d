//! The one place where paths are validated and split.

use crate::FsError;

/// Longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest single component accepted, in bytes.
pub const MAX_COMPONENT_LEN: usize = 255;
/// Deepest path accepted.
pub const MAX_DEPTH: usize = 256;

/// Validates `path` and returns its components (empty for `/`).
///
/// A valid path is absolute, has no empty, `.` or `..` component, no NUL
/// byte, and stays within the length bounds. A single trailing `/` is
/// tolerated (`/a/` is `/a`), as HDFS does.
pub fn components(path: &str) -> Result<Vec<&str>, FsError> {
    let bad = |reason: &str| FsError::InvalidPath {
        path: truncate_for_message(path),
        reason: reason.to_string(),
    };
    if path.len() > MAX_PATH_LEN {
        return Err(bad("path is longer than 4096 bytes"));
    }
    if !path.starts_with('/') {
        return Err(bad("path must be absolute"));
    }
    if path.contains('\0') {
        return Err(bad("path contains a NUL byte"));
    }
    let trimmed = if path.len() > 1 && path.ends_with('/') {
        &path[..path.len() - 1]
    } else {
        path
    };
    if trimmed == "/" {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for c in trimmed[1..].split('/') {
        match c {
            "" => return Err(bad("path has an empty component")),
            "." | ".." => return Err(bad("path has a '.' or '..' component")),
            _ if c.len() > MAX_COMPONENT_LEN => {
                return Err(bad("a path component is longer than 255 bytes"))
            }
            _ if c.contains(':') => return Err(bad("a path component contains ':'")),
            _ => out.push(c),
        }
    }
    if out.len() > MAX_DEPTH {
        return Err(bad("path is deeper than 256 components"));
    }
    Ok(out)
}

/// Returns the canonical form of `path` (no trailing slash).
pub fn normalize(path: &str) -> Result<String, FsError> {
    let comps = components(path)?;
    Ok(join(&comps))
}

/// Joins components into an absolute path.
pub fn join(comps: &[&str]) -> String {
    if comps.is_empty() {
        return "/".to_string();
    }
    let mut s = String::new();
    for c in comps {
        s.push('/');
        s.push_str(c);
    }
    s
}

/// Appends a child name to a directory path.
pub fn child(dir: &str, name: &str) -> String {
    if dir == "/" {
        format!("/{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Returns the parent of a canonical path and the last component, or `None` for `/`.
pub fn split_parent(path: &str) -> Option<(&str, &str)> {
    if path == "/" {
        return None;
    }
    let i = path.rfind('/')?;
    let parent = if i == 0 { "/" } else { &path[..i] };
    Some((parent, &path[i + 1..]))
}

/// Whether `path` equals `ancestor` or lies below it (both canonical).
pub fn is_within(path: &str, ancestor: &str) -> bool {
    ancestor == "/"
        || path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

fn truncate_for_message(path: &str) -> String {
    let mut end = path.len().min(256);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    path[..end].replace('\0', "\\0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_canonical_paths() {
        assert_eq!(components("/").unwrap(), Vec::<&str>::new());
        assert_eq!(components("/a/b").unwrap(), vec!["a", "b"]);
        assert_eq!(components("/a/b/").unwrap(), vec!["a", "b"]);
        assert_eq!(normalize("/a/").unwrap(), "/a");
    }

    #[test]
    fn rejects_bad_paths() {
        for p in ["", "a/b", "/a//b", "/a/./b", "/a/../b", "/a\0b", "/a:b"] {
            assert!(
                matches!(components(p), Err(FsError::InvalidPath { .. })),
                "{p:?}"
            );
        }
        let long = format!("/{}", "x".repeat(300));
        assert!(components(&long).is_err());
        let deep = "/a".repeat(300);
        assert!(components(&deep).is_err());
        let huge = "/ab".repeat(2000);
        assert!(components(&huge).is_err());
    }

    #[test]
    fn parents_and_ancestry() {
        assert_eq!(split_parent("/a"), Some(("/", "a")));
        assert_eq!(split_parent("/a/b"), Some(("/a", "b")));
        assert_eq!(split_parent("/"), None);
        assert!(is_within("/a/b", "/a"));
        assert!(is_within("/a", "/a"));
        assert!(!is_within("/ab", "/a"));
        assert!(is_within("/x", "/"));
        assert_eq!(child("/", "a"), "/a");
        assert_eq!(child("/a", "b"), "/a/b");
    }
}
