//! Lexical path normalisation, shared with the CLI so both sides spell paths the same way.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

/// `path` made absolute against `cwd` and lexically normalised: no `.`, no `..`, no repeated or
/// trailing separators. Symlinks are not resolved (`..` simply drops the previous component,
/// and `..` at the root stays at the root). Bytes that are not UTF-8 are kept as they are.
pub fn absolute_normal(path: &Path, cwd: &Path) -> PathBuf {
    let mut parts: Vec<OsString> = Vec::new();
    let joined = cwd.join(path);
    for component in joined.components() {
        match component {
            Component::RootDir | Component::Prefix(_) => parts.clear(),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(name) => parts.push(name.to_os_string()),
        }
    }
    let mut out = PathBuf::from("/");
    for part in parts {
        out.push(part);
    }
    // Starting from `/` means even a relative `cwd` never yields a relative path.
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        let cwd = Path::new("/home/u/proj");
        assert_eq!(
            absolute_normal(Path::new("out/m.bin"), cwd),
            Path::new("/home/u/proj/out/m.bin")
        );
        assert_eq!(
            absolute_normal(Path::new("./a/../b//c/"), cwd),
            Path::new("/home/u/proj/b/c")
        );
        assert_eq!(
            absolute_normal(Path::new("/x/./y/../z"), cwd),
            Path::new("/x/z")
        );
        assert_eq!(
            absolute_normal(Path::new("../../../../.."), cwd),
            Path::new("/")
        );
    }
}
