//! Compiles the C fixture programs in `fixtures/` with the system C compiler
//! (`$CC`, default `cc`) and tells the test binary where they are through
//! `FIXTURE_<NAME>` environment variables (read with `env!`).
//!
//! Programs are built directly with the compiler rather than the `cc` crate
//! because these are executables, not libraries to link into Rust.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// (source stem, extra flags, env var suffix)
const FIXTURES: &[(&str, &[&str], &str)] = &[
    ("threads", &["-pthread"], "THREADS"),
    ("fork_exec", &[], "FORK_EXEC"),
    ("chdir_openat", &[], "CHDIR_OPENAT"),
    ("odd_names", &[], "ODD_NAMES"),
    ("temp_then_delete", &[], "TEMP_THEN_DELETE"),
    ("static_write", &["-static"], "STATIC_WRITE"),
    ("raw_syscall", &[], "RAW_SYSCALL"),
    ("thread_exec", &["-pthread"], "THREAD_EXEC"),
    ("vfork_exec", &[], "VFORK_EXEC"),
    // -no-pie keeps the path below 4 GiB, where a 32-bit call can name it.
    ("ia32_open", &["-static", "-no-pie"], "IA32_OPEN"),
    ("deny_bpf", &[], "DENY_BPF"),
    ("setuid_euid", &[], "SETUID_EUID"),
    ("own_fds", &[], "OWN_FDS"),
    ("busy_streams", &["-pthread"], "BUSY_STREAMS"),
];

fn main() {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    let cc = env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    println!("cargo:rerun-if-env-changed=CC");
    for (stem, flags, var) in FIXTURES {
        let src = PathBuf::from("fixtures").join(format!("{stem}.c"));
        let exe = out_dir.join(stem);
        println!("cargo:rerun-if-changed={}", src.display());
        let status = Command::new(&cc)
            .args(["-O1", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&exe)
            .arg(&src)
            .args(*flags)
            .status()
            .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
        assert!(status.success(), "`{cc}` failed to build {}", src.display());
        println!("cargo:rustc-env=FIXTURE_{var}={}", exe.display());
    }
}
