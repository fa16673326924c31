//! Builds the BPF program with clang, against a `vmlinux.h` that bpftool
//! dumps from the running kernel's BTF, and prints the C layout of the
//! shared record for the test that checks the Rust mirror.
//!
//! A machine without clang or bpftool still builds the crate: the program
//! is then empty and the backend reports, at run time, what was missing
//! when roar was built (`.ci/run` installs both). The build watches where
//! it looked for the tools (`PATH`, and each candidate path, present or
//! not), so installing clang later rebuilds the real program.

use std::path::{Path, PathBuf};
use std::process::Command;

fn find(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var) {
        println!("cargo::rerun-if-changed={}", Path::new(&p).display());
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(["/usr/bin".into(), "/usr/sbin".into(), "/sbin".into()])
        .collect();
    for name in names {
        for dir in &dirs {
            let p = dir.join(name);
            if p.is_file() {
                // An upgrade (or a removal) of the tool rebuilds the program.
                println!("cargo::rerun-if-changed={}", p.display());
                return Some(p);
            }
        }
    }
    // Not found: watch the directories it would appear in, so that
    // `apt install clang` makes the next build try again. (A missing path
    // would rerun this script on every build; only existing ones are named.)
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
    None
}

fn run(cmd: &mut Command) -> Result<Vec<u8>, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

fn build(out: &Path) -> Result<(), String> {
    let clang = find("CLANG", &["clang"]).ok_or("clang not found (apt install clang)")?;
    let bpftool = find("BPFTOOL", &["bpftool"]).ok_or("bpftool not found (apt install bpftool)")?;
    let helpers = Path::new("/usr/include/bpf/bpf_helpers.h");
    // Present: watched for changes; missing: the script reruns on every
    // build until libbpf-dev is installed (the build warns each time).
    println!("cargo::rerun-if-changed={}", helpers.display());
    if !helpers.is_file() {
        return Err("libbpf headers not found (apt install libbpf-dev)".into());
    }
    let btf = "/sys/kernel/btf/vmlinux";
    let vmlinux = out.join("vmlinux.h");
    if !vmlinux.is_file() {
        let h = run(Command::new(&bpftool).args(["btf", "dump", "file", btf, "format", "c"]))?;
        std::fs::write(&vmlinux, h).map_err(|e| e.to_string())?;
    }
    run(Command::new(&clang)
        .args([
            "-target",
            "bpf",
            "-O2",
            "-g",
            "-D__TARGET_ARCH_x86",
            "-Wall",
        ])
        .arg("-I")
        .arg(out)
        .args(["-I", "bpf", "-c", "bpf/roar.bpf.c", "-o"])
        .arg(out.join("roar.bpf.o")))?;
    // The few kernel types the program's CO-RE relocations use, cut out of
    // this kernel's BTF: loading against it is ~100 ms faster than against
    // the full BTF. Used only when the running kernel is this one (same
    // build id and BTF size, recorded next to it); otherwise roar reads the
    // full BTF as usual.
    let min = out.join("min.btf");
    let notes = std::fs::read("/sys/kernel/notes").unwrap_or_default();
    let btf_len = std::fs::metadata(btf).map(|m| m.len()).unwrap_or(0);
    let made = !notes.is_empty()
        && run(Command::new(&bpftool)
            .args(["gen", "min_core_btf", btf])
            .arg(&min)
            .arg(out.join("roar.bpf.o")))
        .is_ok();
    if made {
        let mut id = btf_len.to_le_bytes().to_vec();
        id.extend_from_slice(&notes);
        std::fs::write(out.join("btf_identity"), id).map_err(|e| e.to_string())?;
    } else {
        let _ = std::fs::write(&min, b"");
        let _ = std::fs::write(out.join("btf_identity"), b"");
    }
    let layout = out.join("layout");
    run(Command::new(&clang)
        .args(["-O0", "-I", "bpf", "bpf/layout.c", "-o"])
        .arg(&layout))?;
    let printed = run(&mut Command::new(&layout))?;
    std::fs::write(out.join("layout.txt"), printed).map_err(|e| e.to_string())
}

fn main() {
    for f in [
        "bpf/roar.bpf.c",
        "bpf/roar_ebpf.h",
        "bpf/layout.c",
        "build.rs",
    ] {
        println!("cargo::rerun-if-changed={f}");
    }
    println!("cargo::rerun-if-env-changed=CLANG");
    println!("cargo::rerun-if-env-changed=BPFTOOL");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let status = match build(&out) {
        Ok(()) => String::new(),
        Err(e) => {
            println!("cargo::warning=the eBPF program was not built: {e}");
            let _ = std::fs::write(out.join("roar.bpf.o"), b"");
            let _ = std::fs::write(out.join("layout.txt"), b"");
            let _ = std::fs::write(out.join("min.btf"), b"");
            let _ = std::fs::write(out.join("btf_identity"), b"");
            e
        }
    };
    // The identity of the program, recorded with a pinned instance: a roar
    // carrying other programs replaces the pins instead of using them.
    let prog = std::fs::read(out.join("roar.bpf.o")).unwrap_or_default();
    let hash = prog.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    println!("cargo::rustc-env=ROAR_EBPF_PROGRAM_HASH={hash:016x}");
    // One line: what was missing when the program could not be built.
    println!(
        "cargo::rustc-env=ROAR_EBPF_BUILD_ERROR={}",
        status.replace('\n', " ")
    );
}
