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

use tests::{Sandbox, check, preload_lib, roar_bin, testing_installed};

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
    needs_only(&preload_lib(), GLIBC, (2, 28));
}

/// The build for glibc 2.34 and later, installed beside the portable one.
fn variant() -> std::path::PathBuf {
    preload_lib().with_file_name("libroar_preload-glibc2.34.so")
}

/// Its point: libc alone, no libdl or libpthread for every process to map.
#[test]
fn preload_library_for_glibc_2_34_needs_only_libc() {
    if !installed() {
        return;
    }
    let only_libc = &["libc.so.6", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1"];
    needs_only(&variant(), only_libc, (2, 34));
}

/// `lib` needs no shared object outside `allowed` and no glibc symbol
/// version newer than `newest_allowed`.
fn needs_only(lib: &std::path::Path, allowed: &[&str], newest_allowed: (u32, u32)) {
    let dynamic = tool("readelf", &["-d", "-W"], lib);
    let needed: Vec<&str> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    assert!(needed.contains(&"libc.so.6"), "{dynamic}");
    for n in &needed {
        assert!(
            allowed.contains(n),
            "{} needs {n}:\n{dynamic}",
            lib.display()
        );
    }
    let symbols = tool("objdump", &["-T"], lib);
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
        newest <= newest_allowed,
        "{} needs GLIBC_{}.{} (at most {}.{} allowed):\n{symbols}",
        lib.display(),
        newest.0,
        newest.1,
        newest_allowed.0,
        newest_allowed.1
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

/// On this machine (glibc 2.36) the installed roar loads the glibc 2.34
/// build into the command, as the command's own memory map shows, unless
/// `ROAR_PRELOAD_LIB` names the portable one; both record the same files.
#[test]
fn a_command_on_a_new_glibc_is_traced_by_the_glibc_2_34_build() {
    if !installed() {
        return;
    }
    let sb = Sandbox::new();
    sb.write("in.txt", "data\n");
    let script = "cat /proc/self/maps > maps.txt; cat in.txt > out.txt; \
                  mkdir -p d && tar cf d/a.tar in.txt";
    let mut seen = Vec::new();
    for portable in [false, true] {
        let mut cmd = sb.roar();
        cmd.args([
            "run",
            "--backend",
            "preload",
            "-q",
            "--",
            "sh",
            "-c",
            script,
        ]);
        if portable {
            cmd.env("ROAR_PRELOAD_LIB", preload_lib());
        }
        check(&mut cmd);
        let maps = String::from_utf8(sb.read("maps.txt")).unwrap();
        let (want, other) = if portable {
            ("/libroar_preload.so", "libroar_preload-glibc2.34.so")
        } else {
            ("/libroar_preload-glibc2.34.so", "/libroar_preload.so")
        };
        assert!(
            maps.contains(want),
            "no {want} in the command's maps:\n{maps}"
        );
        assert!(
            !maps.contains(other),
            "{other} in the command's maps:\n{maps}"
        );
        assert_eq!(
            maps.contains("libpthread.so.0"),
            portable,
            "libpthread.so.0 loaded only for the portable build:\n{maps}"
        );
        let run = sb.show_json("latest");
        seen.push((
            sb.in_sandbox(&run["inputs"]),
            sb.in_sandbox(&run["outputs"]),
        ));
    }
    assert_eq!(seen[0], seen[1], "the two builds recorded different files");
    let (inputs, outputs) = &seen[0];
    assert!(
        inputs.contains(std::path::Path::new("in.txt")),
        "{inputs:?}"
    );
    for out in ["out.txt", "maps.txt", "d/a.tar"] {
        assert!(
            outputs.contains(std::path::Path::new(out)),
            "{out} not in {outputs:?}"
        );
    }
}
