//! Byte paths: lexical normalisation and display.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Makes `p` absolute against `cwd` and removes `.`, `..` and repeated
/// slashes lexically (symlinks are not resolved: the path the program used
/// is the path users recognise).
pub fn normalize(p: &[u8], cwd: &[u8]) -> Vec<u8> {
    // Most traced paths are already so: a copy, without splitting them into
    // a vector of parts (a sixth of decoding a copied tree's trace).
    if already_normal(p) {
        return p.to_vec();
    }
    by_parts(p, cwd)
}

/// Whether `p` is absolute with no empty, `.` or `..` component and no
/// trailing slash: what [`normalize`] would give back unchanged.
fn already_normal(p: &[u8]) -> bool {
    match p {
        [b'/'] => true,
        [b'/', rest @ ..] => rest
            .split(|b| *b == b'/')
            .all(|c| !c.is_empty() && c != b"." && c != b".."),
        _ => false,
    }
}

/// [`normalize`], component by component.
fn by_parts(p: &[u8], cwd: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let joined: Vec<&[u8]> = if p.first() == Some(&b'/') {
        p.split(|b| *b == b'/').collect()
    } else {
        cwd.split(|b| *b == b'/')
            .chain(p.split(|b| *b == b'/'))
            .collect()
    };
    for part in joined {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut out = Vec::with_capacity(p.len() + 1);
    for part in &parts {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

pub fn as_path(b: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(b))
}

pub fn to_bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_bytes().to_vec()
}

/// True when `path` is `dir` or below it.
pub fn is_under(path: &[u8], dir: &[u8]) -> bool {
    path.starts_with(dir)
        && (path.len() == dir.len() || dir.ends_with(b"/") || path.get(dir.len()) == Some(&b'/'))
}

/// `path` relative to `base` for display, or the whole path.
pub fn display_rel(path: &[u8], base: &[u8]) -> String {
    let shown = if is_under(path, base) && path.len() > base.len() + 1 {
        &path[base.len() + 1..]
    } else {
        path
    };
    String::from_utf8_lossy(shown).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        assert_eq!(normalize(b"a/./b/../c", b"/w/d"), b"/w/d/a/c");
        assert_eq!(normalize(b"/x//y/..", b"/w"), b"/x");
        assert_eq!(normalize(b"../..", b"/w"), b"/");
        assert_eq!(normalize(b"caf\xe9", b"/w"), b"/w/caf\xe9");
    }

    /// The store normalises refs with `dag::absolute_normal`; trace paths go
    /// through this faster byte version. Both must spell paths the same way.
    #[test]
    fn agrees_with_the_store() {
        for (p, cwd) in [
            (&b"a/./b/../c"[..], &b"/w/d"[..]),
            (b"/x//y/..", b"/w"),
            (b"../../..", b"/w"),
            (b"caf\xe9/./x/", b"/w"),
            (b".", b"/"),
            (b"a//b", b"/w/"),
        ] {
            let ours = normalize(p, cwd);
            let store = dag::absolute_normal(as_path(p), as_path(cwd));
            assert_eq!(
                as_path(&ours),
                store,
                "{:?} in {:?}",
                as_path(p),
                as_path(cwd)
            );
        }
    }

    /// Every path of up to four components from a small alphabet, absolute
    /// or not, with or without a trailing slash: the shortcut gives what the
    /// component walk gives.
    #[test]
    fn the_shortcut_agrees_with_the_walk() {
        let parts: [&[u8]; 5] = [b"", b".", b"..", b"a", b"bc"];
        let mut paths: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..4 {
            let longer: Vec<Vec<u8>> = paths
                .iter()
                .flat_map(|p| parts.iter().map(move |c| [p.as_slice(), b"/", c].concat()))
                .collect();
            paths.extend(longer);
        }
        let mut shortcut = 0;
        for p in &paths {
            for q in [
                p.clone(),
                p[1.min(p.len())..].to_vec(),
                [p.as_slice(), b"/"].concat(),
            ] {
                shortcut += usize::from(already_normal(&q));
                assert_eq!(
                    normalize(&q, b"/w/d"),
                    by_parts(&q, b"/w/d"),
                    "{:?}",
                    as_path(&q)
                );
            }
        }
        assert!(shortcut > 50, "the shortcut was taken {shortcut} times");
    }

    #[test]
    fn under() {
        assert!(is_under(b"/a/b", b"/a"));
        assert!(!is_under(b"/ab", b"/a"));
        assert!(is_under(b"/a", b"/a"));
        assert!(is_under(b"/a/b", b"/"));
    }
}
