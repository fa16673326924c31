//! A git index file read directly, for the clean check only: each entry's
//! stat data and id, and the cache tree's root when git left it valid.
//! libgit2 verifies the whole file's checksum on every read (1.3 ms of a
//! 2,000-file repository's 4.5); git itself verifies it only in `fsck`.
//!
//! Whatever this reader does not take is `None`, and the caller falls back
//! to libgit2's status: version 4's compressed paths, a split or sparse
//! index (the extensions a reader must understand), a conflict, an
//! intent-to-add or skip-worktree entry, entries out of order, anything cut
//! short.

/// One stage-0 entry, as the index holds it (times and sizes truncated to
/// 32 bits, as git compares them).
pub(super) struct Entry<'a> {
    pub path: &'a [u8],
    pub ctime: (u32, u32),
    pub mtime: (u32, u32),
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
    pub id: git2::Oid,
}

pub(super) struct Index<'a> {
    /// In the index's order: by path.
    pub entries: Vec<Entry<'a>>,
    /// The tree the whole index describes, when the cache tree's root is
    /// valid (git invalidates it along every path it changes).
    pub tree: Option<git2::Oid>,
}

/// The entry flags: stage (a conflict), and "extended flags follow".
const STAGE: u16 = 0x3000;
const EXTENDED: u16 = 0x4000;
const NAME_MASK: u16 = 0x0fff;
/// The fixed part of an entry: ten 32-bit fields, the id, the flags.
const FIXED: usize = 62;
/// The trailing checksum (SHA-1; this reader takes SHA-1 repositories).
const CHECKSUM: usize = 20;

pub(super) fn parse(data: &[u8]) -> Option<Index<'_>> {
    let body = &data[..data.len().checked_sub(CHECKSUM)?];
    if body.get(..4)? != b"DIRC" {
        return None;
    }
    let version = be32(body, 4)?;
    if !(2..=3).contains(&version) {
        return None;
    }
    let count = be32(body, 8)? as usize;
    let mut at = 12;
    let mut entries: Vec<Entry<'_>> = Vec::with_capacity(count.min(body.len() / FIXED));
    for _ in 0..count {
        let field = |i: usize| be32(body, at + 4 * i);
        let flags = be16(body, at + 60)?;
        if flags & STAGE != 0 {
            return None;
        }
        let mut fixed = FIXED;
        if flags & EXTENDED != 0 {
            // Intent-to-add and skip-worktree live here; none is plain.
            if version < 3 || be16(body, at + FIXED)? != 0 {
                return None;
            }
            fixed += 2;
        }
        let rest = body.get(at + fixed..)?;
        let len = match usize::from(flags & NAME_MASK) {
            n if n == usize::from(NAME_MASK) => rest.iter().position(|&b| b == 0)?,
            n => n,
        };
        let path = rest.get(..len)?;
        if rest.get(len) != Some(&0)
            || path.contains(&0)
            || entries.last().is_some_and(|p| p.path >= path)
        {
            return None;
        }
        entries.push(Entry {
            path,
            ctime: (field(0)?, field(1)?),
            mtime: (field(2)?, field(3)?),
            ino: field(5)?,
            mode: field(6)?,
            uid: field(7)?,
            gid: field(8)?,
            size: field(9)?,
            id: git2::Oid::from_bytes(body.get(at + 40..at + 60)?).ok()?,
        });
        // NUL-padded to a multiple of eight, with at least one NUL.
        at += (fixed + len + 8) & !7;
    }
    let mut tree = None;
    while at < body.len() {
        let signature = body.get(at..at + 4)?;
        let size = be32(body, at + 4)? as usize;
        let start = at + 8;
        let ext = body.get(start..start.checked_add(size)?)?;
        match signature {
            b"TREE" => tree = root_tree(ext, entries.len()),
            // A lowercase signature is one a reader must understand (a
            // split index's "link", a sparse index's "sdir").
            s if s[0].is_ascii_lowercase() => return None,
            _ => {}
        }
        at = start + size;
    }
    (at == body.len()).then_some(Index { entries, tree })
}

/// The cache tree's root id, when it is valid and covers all `entries`:
/// an empty path, "COUNT SUBTREES\n", then the id unless COUNT is -1.
fn root_tree(ext: &[u8], entries: usize) -> Option<git2::Oid> {
    let rest = ext.strip_prefix(b"\0")?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&rest[..nl]).ok()?;
    let count: i64 = line.split_once(' ')?.0.parse().ok()?;
    if usize::try_from(count).ok()? != entries {
        return None;
    }
    git2::Oid::from_bytes(rest.get(nl + 1..nl + 21)?).ok()
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
