//! What `install.sh` installs runs in any container image: `roar` is
//! statically linked, and the preload library needs nothing but glibc's own
//! libraries, at symbol versions no newer than GLIBC_2.28 (Debian 10, RHEL 8).
//! A library that needed GLIBC_2.34 or libgcc_s made every program in an
//! older or slimmer image fail to start.
//!
//! These check the artifacts the suite runs against (`ROAR_TEST_BIN`,
//! `ROAR_TEST_LIB`, as `.ci/run` sets them after `install.sh`); the
//! workspace's debug build is linked for this machine only and is skipped.

use std::process::Command;

use tests::{check, preload_lib, roar_bin, testing_installed};

fn tool(name: &str, args: &[&str], file: &std::path::Path) -> String {
    String::from_utf8(check(Command::new(name).args(args).arg(file))).unwrap()
}

fn installed() -> bool {
    if !testing_installed() {
        eprintln!("skipped: set ROAR_TEST_BIN and ROAR_TEST_LIB to what install.sh installed");
    }
    testing_installed()
}

/// glibc's own libraries: present in every glibc image.
const GLIBC: &[&str] = &[
    "libc.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libm.so.6",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
];

#[test]
fn preload_library_needs_only_glibc_2_28() {
    if !installed() {
        return;
    }
    let lib = preload_lib();
    let dynamic = tool("readelf", &["-d", "-W"], &lib);
    let needed: Vec<&str> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    assert!(needed.contains(&"libc.so.6"), "{dynamic}");
    for n in &needed {
        assert!(GLIBC.contains(n), "{} needs {n}:\n{dynamic}", lib.display());
    }
    let symbols = tool("objdump", &["-T"], &lib);
    let mut newest = (0u32, 0u32);
    for word in symbols.split_whitespace() {
        let Some(v) = word
            .strip_prefix("GLIBC_")
            .or_else(|| word.strip_prefix("(GLIBC_"))
        else {
            continue;
        };
        let v = v.trim_end_matches(')');
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let ver = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        newest = newest.max(ver);
    }
    assert!(
        newest >= (2, 2),
        "no versioned glibc symbols found:\n{symbols}"
    );
    assert!(
        newest <= (2, 28),
        "{} needs GLIBC_{}.{} (at most 2.28 allowed):\n{symbols}",
        lib.display(),
        newest.0,
        newest.1
    );
    assert!(
        !symbols.contains("_Unwind_"),
        "imports unwinder symbols:\n{symbols}"
    );
}

#[test]
fn roar_is_statically_linked() {
    if !installed() {
        return;
    }
    let bin = roar_bin();
    let dynamic = tool("readelf", &["-d", "-W"], &bin);
    assert!(
        !dynamic.contains("(NEEDED)"),
        "{} needs shared libraries:\n{dynamic}",
        bin.display()
    );
    let headers = tool("readelf", &["-l", "-W"], &bin);
    assert!(
        !headers.contains("INTERP"),
        "{} names a dynamic loader:\n{headers}",
        bin.display()
    );
}
