//! What an executable is linked against: statically (LD_PRELOAD cannot see
//! inside it) or through a program interpreter, and which glibc that
//! interpreter brings.

use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// How the kernel and the loader will run a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linking {
    /// Not an ELF we could read (missing, unreadable, another format).
    Unknown,
    /// An ELF without a program interpreter.
    Static,
    /// An ELF run by this program interpreter (`PT_INTERP`, as written).
    Dynamic(PathBuf),
}

/// How `path` runs; a `#!` script runs as its interpreter does.
pub fn linking(path: &Path) -> Linking {
    linking_depth(path, 0)
}

/// True when `path` is an ELF without a program interpreter, or a `#!`
/// script whose interpreter is one.
pub fn is_static(path: &Path) -> bool {
    linking(path) == Linking::Static
}

fn linking_depth(path: &Path, depth: u32) -> Linking {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Linking::Unknown;
    };
    let mut head = [0u8; 256];
    let Ok(n) = f.read(&mut head) else {
        return Linking::Unknown;
    };
    let head = &head[..n];
    if head.starts_with(b"#!") {
        if depth > 0 {
            return Linking::Unknown;
        }
        let line = head[2..].split(|b| *b == b'\n').next().unwrap_or(b"");
        let line = String::from_utf8_lossy(line);
        let interp = line.split_whitespace().next().unwrap_or("");
        if interp.is_empty() {
            return Linking::Unknown;
        }
        return linking_depth(Path::new(interp), depth + 1);
    }
    let Some(elf) = Elf::parse(head) else {
        return Linking::Unknown;
    };
    let Some(phdrs) = elf.program_headers(&f) else {
        return Linking::Unknown;
    };
    let Some(interp) = phdrs.iter().find(|p| p.kind == PT_INTERP) else {
        return Linking::Static;
    };
    let mut name = vec![0u8; interp.filesz.min(4096) as usize];
    if f.read_exact_at(&mut name, interp.offset).is_err() {
        return Linking::Unknown;
    }
    let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
    name.truncate(end);
    Linking::Dynamic(PathBuf::from(
        <std::ffi::OsString as OsStringExt>::from_vec(name),
    ))
}

/// True when the glibc beside program interpreter `interp` (its `libc.so.6`,
/// in the directory the interpreter resolves to, as every glibc
/// distribution lays them out) defines symbol version `version`, such as
/// `GLIBC_2.34`. False when there is no such libc or it cannot be read.
pub fn glibc_defines(interp: &Path, version: &str) -> bool {
    let Ok(real) = std::fs::canonicalize(interp) else {
        return false;
    };
    let Some(dir) = real.parent() else {
        return false;
    };
    let Ok(f) = std::fs::File::open(dir.join("libc.so.6")) else {
        return false;
    };
    dynamic_strings(&f).is_some_and(|strings| {
        strings
            .split(|&b| b == 0)
            .any(|name| name == version.as_bytes())
    })
}

/// The dynamic string table of a shared object (where its version names
/// are), found through `PT_DYNAMIC` so that stripped section headers do not
/// matter.
fn dynamic_strings(f: &std::fs::File) -> Option<Vec<u8>> {
    let mut head = [0u8; 64];
    f.read_exact_at(&mut head, 0).ok()?;
    let elf = Elf::parse(&head)?;
    let phdrs = elf.program_headers(f)?;
    let dynamic = phdrs.iter().find(|p| p.kind == PT_DYNAMIC)?;
    let mut table = vec![0u8; dynamic.filesz.min(1 << 16) as usize];
    f.read_exact_at(&mut table, dynamic.offset).ok()?;
    let entry = elf.word * 2;
    let (mut strtab, mut strsz) = (None, None);
    for e in table.chunks_exact(entry) {
        let tag = elf.read_word(e, 0);
        let val = elf.read_word(e, elf.word);
        match tag {
            0 => break,
            DT_STRTAB => strtab = Some(val),
            DT_STRSZ => strsz = Some(val),
            _ => {}
        }
    }
    let (addr, size) = (strtab?, strsz?);
    // The table's address is a virtual one: the load segment holding it
    // says where that is in the file.
    let seg = phdrs
        .iter()
        .find(|p| p.kind == PT_LOAD && p.vaddr <= addr && addr < p.vaddr + p.filesz)?;
    let mut strings = vec![0u8; size.min(1 << 22) as usize];
    f.read_exact_at(&mut strings, seg.offset + (addr - seg.vaddr))
        .ok()?;
    Some(strings)
}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;

/// An ELF header's layout: word size and byte order, and where its
/// program headers are.
struct Elf {
    le: bool,
    /// 8 for ELFCLASS64, 4 for ELFCLASS32.
    word: usize,
    phoff: u64,
    phentsize: usize,
    phnum: usize,
}

struct ProgramHeader {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

impl Elf {
    fn parse(head: &[u8]) -> Option<Elf> {
        if !head.starts_with(b"\x7fELF") || head.len() < 64 {
            return None;
        }
        let le = head[5] == 1;
        let word = match head[4] {
            2 => 8,
            1 => 4,
            _ => return None,
        };
        let mut elf = Elf {
            le,
            word,
            phoff: 0,
            phentsize: 0,
            phnum: 0,
        };
        if word == 8 {
            elf.phoff = elf.read_word(head, 0x20);
            elf.phentsize = elf.read(head, 0x36, 2) as usize;
            elf.phnum = elf.read(head, 0x38, 2) as usize;
        } else {
            elf.phoff = elf.read_word(head, 0x1c);
            elf.phentsize = elf.read(head, 0x2a, 2) as usize;
            elf.phnum = elf.read(head, 0x2c, 2) as usize;
        }
        let needed = if word == 8 { 0x38 } else { 0x20 };
        (elf.phentsize >= needed && elf.phnum > 0 && elf.phnum <= 4096).then_some(elf)
    }

    /// The unsigned `len`-byte integer at `off` in `b`.
    fn read(&self, b: &[u8], off: usize, len: usize) -> u64 {
        let bytes = &b[off..off + len];
        let fold = |acc: u64, x: &u8| (acc << 8) | u64::from(*x);
        if self.le {
            bytes.iter().rev().fold(0, fold)
        } else {
            bytes.iter().fold(0, fold)
        }
    }

    fn read_word(&self, b: &[u8], off: usize) -> u64 {
        self.read(b, off, self.word)
    }

    fn program_headers(&self, f: &std::fs::File) -> Option<Vec<ProgramHeader>> {
        let mut table = vec![0u8; self.phentsize * self.phnum];
        f.read_exact_at(&mut table, self.phoff).ok()?;
        Some(
            table
                .chunks_exact(self.phentsize)
                .map(|ph| {
                    let kind = self.read(ph, 0, 4) as u32;
                    if self.word == 8 {
                        ProgramHeader {
                            kind,
                            offset: self.read(ph, 0x08, 8),
                            vaddr: self.read(ph, 0x10, 8),
                            filesz: self.read(ph, 0x20, 8),
                        }
                    } else {
                        ProgramHeader {
                            kind,
                            offset: self.read(ph, 0x04, 4),
                            vaddr: self.read(ph, 0x08, 4),
                            filesz: self.read(ph, 0x10, 4),
                        }
                    }
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_binaries_are_dynamic() {
        assert!(!is_static(Path::new("/bin/sh")));
        assert!(!is_static(Path::new("/nonexistent")));
        assert!(matches!(linking(Path::new("/bin/sh")), Linking::Dynamic(_)));
        assert_eq!(linking(Path::new("/nonexistent")), Linking::Unknown);
    }

    #[test]
    fn a_script_runs_as_its_interpreter() {
        let dir = std::env::temp_dir().join(format!("roar-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("s");
        std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
        assert_eq!(linking(&script), linking(Path::new("/bin/sh")));
        std::fs::write(&script, "#!\n").unwrap();
        assert_eq!(linking(&script), Linking::Unknown);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// This machine's glibc (Debian 12: 2.36) against what `ldd` says it is.
    #[test]
    fn the_system_glibc_version_is_read_from_its_libc() {
        let Linking::Dynamic(interp) = linking(Path::new("/bin/sh")) else {
            panic!("/bin/sh is not dynamically linked");
        };
        let out = std::process::Command::new("ldd")
            .arg("--version")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let first = text.lines().next().unwrap_or("");
        let minor: u32 = first
            .rsplit("2.")
            .next()
            .and_then(|m| m.trim().parse().ok())
            .unwrap_or_else(|| panic!("cannot read a glibc version in {first:?}"));
        assert!(glibc_defines(&interp, "GLIBC_2.2.5") || !cfg!(target_arch = "x86_64"));
        assert!(glibc_defines(&interp, &format!("GLIBC_2.{minor}")));
        assert!(!glibc_defines(&interp, &format!("GLIBC_2.{}", minor + 1)));
        assert!(!glibc_defines(&interp, "GLIBC_2"));
        assert!(!glibc_defines(
            Path::new("/nonexistent/ld.so"),
            "GLIBC_2.2.5"
        ));
    }
}
