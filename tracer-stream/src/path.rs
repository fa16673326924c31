//! Paths as the kernel resolves them.

/// `rel` appended to the absolute directory `base` (as the kernel resolves
/// a relative path against a cwd or dirfd); an empty `rel` names `base`.
pub fn join(base: &[u8], rel: &[u8]) -> Vec<u8> {
    let mut p = base.to_vec();
    if !rel.is_empty() {
        if !p.ends_with(b"/") {
            p.push(b'/');
        }
        p.extend_from_slice(rel);
    }
    p
}
