//! Is an executable statically linked? (LD_PRELOAD cannot see inside it.)

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// True when `path` is an ELF without a program interpreter, or a `#!`
/// script whose interpreter is one.
pub fn is_static(path: &Path) -> bool {
    is_static_depth(path, 0)
}

fn is_static_depth(path: &Path, depth: u32) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 256];
    let Ok(n) = f.read(&mut head) else {
        return false;
    };
    let head = &head[..n];
    if head.starts_with(b"#!") && depth == 0 {
        let line = head[2..].split(|b| *b == b'\n').next().unwrap_or(b"");
        let line = String::from_utf8_lossy(line);
        let interp = line.split_whitespace().next().unwrap_or("");
        return !interp.is_empty() && is_static_depth(&PathBuf::from(interp), depth + 1);
    }
    if !head.starts_with(b"\x7fELF") || head.len() < 64 {
        return false;
    }
    let le = head[5] == 1;
    let rd16 = |o: usize| -> u64 {
        let b = [head[o], head[o + 1]];
        u64::from(if le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let (phoff, phentsize, phnum) = if head[4] == 2 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[0x20..0x28]);
        (
            if le {
                u64::from_le_bytes(b)
            } else {
                u64::from_be_bytes(b)
            },
            rd16(0x36),
            rd16(0x38),
        )
    } else {
        let mut b = [0u8; 4];
        b.copy_from_slice(&head[0x1c..0x20]);
        (
            u64::from(if le {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }),
            rd16(0x2a),
            rd16(0x2c),
        )
    };
    if phentsize < 4 || phnum == 0 || phnum > 4096 {
        return false;
    }
    let mut table = vec![0u8; (phentsize * phnum) as usize];
    if f.read_exact_at(&mut table, phoff).is_err() {
        return false;
    }
    let has_interp = table.chunks(phentsize as usize).any(|ph| {
        let b = [ph[0], ph[1], ph[2], ph[3]];
        (if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }) == 3
    });
    !has_interp
}

#[cfg(test)]
mod tests {
    #[test]
    fn system_binaries_are_dynamic() {
        assert!(!super::is_static(std::path::Path::new("/bin/sh")));
        assert!(!super::is_static(std::path::Path::new("/nonexistent")));
    }
}
