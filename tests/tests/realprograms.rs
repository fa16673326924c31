//! The real-program corpus, checked against an oracle that owes nothing to
//! roar: builds (`./configure && make` of an autotools project generated
//! here by the real autoconf and automake, `make -j2` of zlib's sources,
//! `cargo build --offline`), in-place editors (`vim -es`, `sed -i`,
//! `sort -o f f`, `patch`), archivers (tar, gzip, gunzip), sqlite3 on a
//! database, a symlinked directory and a write through a symlink, a long
//! command line through xargs, and flock lock files.
//!
//! The oracle, per case:
//! * **outputs**: every regular file of the work directory hashed (BLAKE3)
//!   before and after the command; the outputs are exactly the files that
//!   are new or whose content changed.
//! * **inputs**: the command run once more, untraced by roar, under
//!   `strace -f -y`, in an identical copy of the work directory; a file of
//!   the directory that existed before and was opened for reading (or
//!   executed) before anything changed it must be an input, with the hash
//!   the *before* snapshot gives it. Every input roar lists in the directory
//!   must have existed before, with that hash.
//!
//! Each case runs under preload, ptrace and (as root) eBPF. One documented
//! exception, warned on stderr when it is used: eBPF cannot hash an input
//! that the run then rewrites or deletes (README, "What each backend sees");
//! there, a null hash with a warning naming the file is accepted.
//!
//! Cost: about 70 s on 2 busy cores for the whole file (the autotools
//! build and cargo dominate; each case runs four times: strace and three
//! backends). The process tree of `./configure` is also checked: no pid is
//! left without an end, and nothing is said to have outlived the command.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;
use tests::{Sandbox, check, output};

/// Relative path -> `blake3:<hex>` of every regular file, `.git` and
/// `.roar` aside.
type Snapshot = BTreeMap<PathBuf, String>;

fn snapshot(root: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("dir entry");
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new(".git") || rel == Path::new(".roar") {
                continue;
            }
            let ft = entry.file_type().expect("file type");
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let bytes =
                    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                out.insert(rel, format!("blake3:{}", blake3::hash(&bytes).to_hex()));
            }
        }
    }
    out
}

struct Case {
    name: &'static str,
    setup: fn(&Path),
    /// Run as `sh -c SCRIPT` in the work directory.
    script: &'static str,
}

fn write(dir: &Path, rel: &str, body: impl AsRef<[u8]>) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, body).unwrap();
}

fn sh(dir: &Path, script: &str) {
    check(Command::new("sh").args(["-c", script]).current_dir(dir));
}

/// An autotools project made once by the real autoconf/automake
/// (`autoreconf -i`), copied with its timestamps into each work directory.
fn autotools_template() -> &'static Path {
    static T: OnceLock<tempfile::TempDir> = OnceLock::new();
    T.get_or_init(|| {
        let t = tempfile::Builder::new()
            .prefix("roar-autotools-")
            .tempdir()
            .unwrap();
        let d = t.path();
        write(
            d,
            "configure.ac",
            "AC_INIT([hello], [1.0])\nAM_INIT_AUTOMAKE([foreign])\nAC_PROG_CC\n\
             AC_CHECK_HEADERS([unistd.h])\nAC_CHECK_FUNCS([strdup])\n\
             AC_CONFIG_HEADERS([config.h])\nAC_CONFIG_FILES([Makefile])\nAC_OUTPUT\n",
        );
        write(
            d,
            "Makefile.am",
            "bin_PROGRAMS = hello\nhello_SOURCES = hello.c util.c\n",
        );
        write(
            d,
            "hello.c",
            "#include \"config.h\"\n#include <stdio.h>\nint util(void);\n\
             int main(void) { printf(\"%d\\n\", util()); return 0; }\n",
        );
        write(d, "util.c", "int util(void) { return 42; }\n");
        sh(d, "autoreconf -i >/dev/null 2>&1 && rm -rf autom4te.cache");
        t
    })
    .path()
}

fn setup_autotools(dir: &Path) {
    let src = autotools_template();
    sh(dir, &format!("cp -a '{}/.' .", src.display()));
}

/// zlib's sources, as vendored by the libz-sys crate this workspace locks
/// (so they are in the cargo registry wherever the workspace builds).
fn zlib_sources() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let reg = home.join("registry/src");
    for index in std::fs::read_dir(&reg).unwrap_or_else(|e| panic!("{}: {e}", reg.display())) {
        let index = index.unwrap().path();
        for krate in std::fs::read_dir(&index).unwrap() {
            let krate = krate.unwrap().path();
            let name = krate.file_name().unwrap().to_string_lossy().into_owned();
            let zlib = krate.join("src/zlib");
            if name.starts_with("libz-sys-") && zlib.join("deflate.c").is_file() {
                return zlib;
            }
        }
    }
    panic!(
        "zlib sources (crate libz-sys) not found under {}: run `cargo fetch` in the workspace",
        reg.display()
    );
}

fn setup_zlib(dir: &Path) {
    let src = zlib_sources();
    sh(
        dir,
        &format!(
            "mkdir zlib && cp '{}'/*.c '{}'/*.h zlib/",
            src.display(),
            src.display()
        ),
    );
    write(
        dir,
        "zlib/Makefile",
        "OBJS = $(patsubst %.c,%.o,$(sort $(wildcard *.c)))\n\
         libz.a: $(OBJS)\n\tar rcs $@ $(OBJS)\n\
         %.o: %.c\n\tcc -O1 -D_LARGEFILE64_SOURCE=1 -c $< -o $@\n",
    );
}

fn setup_cargo(dir: &Path) {
    write(
        dir,
        "tiny/Cargo.toml",
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    write(
        dir,
        "tiny/src/main.rs",
        "mod util;\nfn main() { println!(\"{}\", util::answer()); }\n",
    );
    write(dir, "tiny/src/util.rs", "pub fn answer() -> u32 { 42 }\n");
}

/// A database made once by sqlite3, its bytes written into each directory.
fn setup_sqlite(dir: &Path) {
    static DB: OnceLock<Vec<u8>> = OnceLock::new();
    let db = DB.get_or_init(|| {
        let t = tempfile::tempdir().unwrap();
        sh(
            t.path(),
            "sqlite3 db.sqlite 'create table t(x); insert into t values (1), (2);'",
        );
        std::fs::read(t.path().join("db.sqlite")).unwrap()
    });
    write(dir, "db.sqlite", db);
}

fn setup_editors(dir: &Path) {
    write(dir, "notes.txt", "one fish\ntwo fish\n");
    write(dir, "a.txt", "x marks the spot\n");
    write(dir, "words.txt", "pear\napple\nfig\n");
    write(dir, "f.txt", "line one\nline two\n");
    write(
        dir,
        "fix.diff",
        "--- f.txt\n+++ f.txt\n@@ -1,2 +1,2 @@\n line one\n-line two\n+line 2\n",
    );
}

fn setup_archives(dir: &Path) {
    write(dir, "src/a.txt", "alpha\n");
    write(dir, "src/b.txt", "beta\n");
    write(dir, "notes.txt", "compress me\n");
    write(dir, "old.txt", "was compressed\n");
    sh(dir, "gzip -n old.txt");
}

fn setup_links(dir: &Path) {
    write(dir, "data/in.txt", "through a symlinked directory\n");
    write(dir, "target.txt", "old\n");
    std::os::unix::fs::symlink("data", dir.join("cur")).unwrap();
    std::os::unix::fs::symlink("target.txt", dir.join("link.txt")).unwrap();
}

fn setup_long_argv(dir: &Path) {
    for i in 0..200 {
        write(
            dir,
            &format!("input-file-with-a-rather-long-name-{i:03}.txt"),
            format!("{i}\n"),
        );
    }
}

fn setup_locks(dir: &Path) {
    write(dir, "lock.file", "");
    write(dir, "log.txt", "kept\n");
    write(dir, "in.txt", "guarded\n");
}

const CASES: &[Case] = &[
    Case {
        name: "./configure && make",
        setup: setup_autotools,
        script: "./configure >/dev/null && make >/dev/null 2>&1",
    },
    Case {
        name: "make -j2 (zlib)",
        setup: setup_zlib,
        script: "make -s -j2 -C zlib >/dev/null",
    },
    Case {
        name: "cargo build --offline",
        setup: setup_cargo,
        script: "cd tiny && CARGO_TARGET_DIR=target cargo build --offline -q",
    },
    Case {
        name: "sqlite3",
        setup: setup_sqlite,
        script: "sqlite3 db.sqlite 'insert into t values (3); select count(*) from t;' > count.txt",
    },
    Case {
        name: "vim -es, sed -i, sort -o f f, patch",
        setup: setup_editors,
        script: "vim -es -u NONE -i NONE -N -c '%s/one/red/' -c 'wq' notes.txt \
                 && sed -i s/x/y/ a.txt && sort -o words.txt words.txt && patch -s f.txt fix.diff",
    },
    Case {
        name: "tar, gzip, gunzip",
        setup: setup_archives,
        script: "tar -czf src.tgz src && mkdir out && tar -xzf src.tgz -C out \
                 && gzip -n notes.txt && gunzip old.txt.gz",
    },
    Case {
        name: "symlinked directory, write through a symlink",
        setup: setup_links,
        script: "cat cur/in.txt > cur/copy.txt && echo new > link.txt",
    },
    Case {
        name: "long argv (xargs)",
        setup: setup_long_argv,
        script: "ls | grep '^input-file' | xargs cat > all.txt",
    },
    Case {
        name: "flock lock files",
        setup: setup_locks,
        script: "flock lock.file cat in.txt > out.txt && exec 3>>log.txt && flock 3",
    },
];

/// Splits strace's argument text at top-level commas.
fn split_args(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quoted, mut esc) =
        (Vec::new(), String::new(), 0, false, false);
    for c in s.chars() {
        if quoted {
            cur.push(c);
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                cur.push(c);
            }
            '(' | '[' | '{' | '<' => {
                depth += 1;
                cur.push(c);
            }
            ')' | ']' | '}' | '>' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur).trim().to_owned()),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

/// `"text"` -> text (strace's escapes for plain ASCII paths are none).
fn unquote(s: &str) -> Option<String> {
    let s = s.strip_suffix("...").unwrap_or(s);
    s.strip_prefix('"')?.strip_suffix('"').map(str::to_owned)
}

/// The path in a `-y` decoration: `3</a/b>` or `AT_FDCWD</a>`.
fn decorated(s: &str) -> Option<PathBuf> {
    let start = s.find('<')?;
    let end = s.rfind('>')?;
    (end > start).then(|| PathBuf::from(&s[start + 1..end]))
}

fn normal(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// `name` relative to the directory a dirfd argument names (or the cwd).
fn resolve(dir: Option<&Path>, cwd: &Path, name: &str) -> PathBuf {
    let p = Path::new(name);
    if p.is_absolute() {
        normal(p)
    } else {
        normal(&dir.unwrap_or(cwd).join(p))
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum First {
    Read,
    Changed,
}

/// What strace says was read before it was changed: absolute paths.
fn strace_reads(log: &str, top: &Path) -> BTreeSet<PathBuf> {
    let mut first: HashMap<PathBuf, First> = HashMap::new();
    let mut cwd: HashMap<String, PathBuf> = HashMap::new();
    let mut pending: HashMap<String, String> = HashMap::new();
    let mut mark = |p: PathBuf, what: First| {
        first.entry(p).or_insert(what);
    };
    for raw in log.lines() {
        let Some((pid, rest)) = raw.split_once(char::is_whitespace) else {
            continue;
        };
        let rest = rest.trim_start();
        let line = if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            pending.insert(pid.to_owned(), head.to_owned());
            continue;
        } else if rest.starts_with("<... ") {
            let Some((_, tail)) = rest.split_once("resumed>") else {
                continue;
            };
            format!("{}{}", pending.remove(pid).unwrap_or_default(), tail)
        } else {
            rest.to_owned()
        };
        let (Some(open), Some(eq)) = (line.find('('), line.rfind(" = ")) else {
            continue;
        };
        let name = &line[..open];
        let result = line[eq + 3..].trim();
        let ok = !result.starts_with('-');
        let Some(close) = line[..eq].rfind(')') else {
            continue;
        };
        let args = split_args(&line[open + 1..close]);
        if let Some(d) = args
            .iter()
            .find(|a| a.starts_with("AT_FDCWD<"))
            .and_then(|a| decorated(a))
        {
            cwd.insert(pid.to_owned(), d);
        }
        let here = cwd.get(pid).cloned().unwrap_or_else(|| top.to_path_buf());
        let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
        let fd_path = || decorated(result);
        match name {
            "open" | "openat" | "creat" if ok => {
                let Some(p) = fd_path() else { continue };
                let flags = args
                    .iter()
                    .find(|a| a.contains("O_"))
                    .cloned()
                    .unwrap_or_default();
                let writes = flags.contains("O_WRONLY") || flags.contains("O_RDWR");
                if flags.contains("O_TRUNC") || name == "creat" {
                    mark(p, First::Changed);
                } else if !writes && !flags.contains("O_CREAT") {
                    mark(p, First::Read);
                }
                // Opened for writing, or created if missing (a lock file,
                // sqlite's database): read only if a read follows. Nothing
                // changed yet (`sort -o f f` reads the original after this).
            }
            "read" | "pread64" | "readv" if ok => {
                if let Some(p) = decorated(arg(0)) {
                    mark(p, First::Read);
                }
            }
            "write" | "pwrite64" | "writev" | "ftruncate" if ok => {
                if let Some(p) = decorated(arg(0)) {
                    mark(p, First::Changed);
                }
            }
            "truncate" if ok => {
                if let Some(n) = unquote(arg(0)) {
                    mark(resolve(None, &here, &n), First::Changed);
                }
            }
            "rename" | "link" | "symlink" if ok => {
                if let Some(n) = unquote(arg(1)) {
                    mark(resolve(None, &here, &n), First::Changed);
                }
            }
            "renameat" | "renameat2" | "linkat" if ok => {
                if let Some(n) = unquote(arg(3)) {
                    mark(
                        resolve(decorated(arg(2)).as_deref(), &here, &n),
                        First::Changed,
                    );
                }
            }
            "execve" if ok => {
                if let Some(n) = unquote(arg(0)) {
                    mark(resolve(None, &here, &n), First::Read);
                }
            }
            _ => {}
        }
    }
    first
        .into_iter()
        .filter(|(p, f)| *f == First::Read && p.starts_with(top))
        .map(|(p, _)| p)
        .collect()
}

/// What the oracle expects of one case.
struct Oracle {
    before: Snapshot,
    /// Relative paths of the files read as they were before.
    inputs: BTreeSet<PathBuf>,
}

fn oracle(case: &Case) -> Oracle {
    let sb = Sandbox::new();
    (case.setup)(sb.path());
    let before = snapshot(sb.path());
    let log = sb.join(".git/strace.log");
    let out = output(
        Command::new("strace")
            .args([
                "-f",
                "--seccomp-bpf",
                "-y",
                "-qq",
                "-s",
                "0",
                "-e",
                "trace=%file,read,pread64,write,pwrite64,writev,ftruncate",
                "-o",
            ])
            .arg(&log)
            .args(["sh", "-c", case.script])
            .current_dir(sb.path()),
    );
    assert!(
        out.status.success(),
        "{}: untraced under strace: {out:?}",
        case.name
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let inputs = strace_reads(&text, sb.path())
        .into_iter()
        .filter_map(|p| p.strip_prefix(sb.path()).ok().map(Path::to_path_buf))
        .filter(|p| before.contains_key(p))
        .collect();
    Oracle { before, inputs }
}

/// `path -> hash` of a run's inputs or outputs inside the sandbox.
fn listed(sb: &Sandbox, list: &Value) -> BTreeMap<PathBuf, Option<String>> {
    list.as_array()
        .unwrap()
        .iter()
        .filter_map(|f| {
            let p = tests::unescape_path(f["path"].as_str()?);
            let rel = p.strip_prefix(sb.path()).ok()?.to_path_buf();
            (!rel.starts_with(".roar") && !rel.starts_with(".git"))
                .then(|| (rel, f["hash"].as_str().map(str::to_owned)))
        })
        .collect()
}

/// One line of the difference table.
struct Diff {
    backend: &'static str,
    case: &'static str,
    what: String,
    path: PathBuf,
    oracle: String,
    roar: String,
}

fn short(h: Option<&String>) -> String {
    match h {
        Some(h) => h.get(..19).unwrap_or(h).to_owned(),
        None => "null".into(),
    }
}

fn check_case(case: &'static Case, backend: &'static str, o: &Oracle, diffs: &mut Vec<Diff>) {
    let sb = Sandbox::new();
    (case.setup)(sb.path());
    let before = snapshot(sb.path());
    assert_eq!(
        before, o.before,
        "{}: the two copies differ before the run",
        case.name
    );
    let out = output(sb.roar().args([
        "run",
        "--backend",
        backend,
        "-q",
        "--",
        "sh",
        "-c",
        case.script,
    ]));
    let mut diff = |what: &str, path: &Path, oracle: String, roar: String| {
        diffs.push(Diff {
            backend,
            case: case.name,
            what: what.into(),
            path: path.into(),
            oracle,
            roar,
        })
    };
    if !out.status.success() {
        diff(
            "run failed",
            Path::new("-"),
            "exit 0".into(),
            format!("{:?}", out),
        );
        return;
    }
    let after = snapshot(sb.path());
    let run = sb.show_json("latest");
    let warnings = run["warnings"].to_string();
    let outputs = listed(&sb, &run["outputs"]);
    let inputs = listed(&sb, &run["inputs"]);
    // Outputs: exactly the files created or changed, with their content now.
    for (p, h) in &after {
        let changed = o.before.get(p) != Some(h);
        match (changed, outputs.get(p)) {
            (true, None) => diff("output missing", p, short(Some(h)), "-".into()),
            (true, Some(r)) if r.as_ref() != Some(h) => {
                diff("output hash", p, short(Some(h)), short(r.as_ref()))
            }
            (false, Some(_)) => diff(
                "output unchanged",
                p,
                "not an output".into(),
                "output".into(),
            ),
            _ => {}
        }
    }
    for p in outputs.keys().filter(|p| !after.contains_key(*p)) {
        diff(
            "output absent",
            p,
            "no such file at the end".into(),
            "output".into(),
        );
    }
    // Inputs: what strace saw read, hashed as it was before.
    let destroyed = |p: &Path| after.get(p) != o.before.get(p);
    for p in o
        .inputs
        .iter()
        .chain(inputs.keys().filter(|p| !o.inputs.contains(*p)))
    {
        let want = o.before.get(p);
        match inputs.get(p) {
            None => diff("input missing", p, short(want), "-".into()),
            Some(None)
                if backend == "ebpf"
                    && destroyed(p)
                    && warnings.contains(&*p.to_string_lossy()) =>
            {
                eprintln!(
                    "warning: [ebpf] {}: {} changed by the run, hash null with a warning \
                     (documented: eBPF cannot hash an input the run rewrites or deletes)",
                    case.name,
                    p.display()
                );
            }
            Some(r) if want.is_none() => {
                diff("input did not exist", p, "-".into(), short(r.as_ref()))
            }
            Some(r) if r.as_ref() != want => diff("input hash", p, short(want), short(r.as_ref())),
            Some(_) => {}
        }
    }
    check_processes(case, backend, &run, &mut diff);
    if case.name == "long argv (xargs)" {
        check_long_argv(backend, &run, &mut diff);
    }
}

/// xargs gave cat all 200 names (a command line over 7 KiB): recorded
/// whole, or, under eBPF (which reads at most about 4 KiB of it in the
/// kernel), cut with a warning that says so (documented in the README).
fn check_long_argv(backend: &str, run: &Value, diff: &mut impl FnMut(&str, &Path, String, String)) {
    let longest = run["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["argv"][0] == "cat")
        .map(|p| p["argv"].as_array().map_or(0, Vec::len))
        .max()
        .unwrap_or(0);
    let warned = run["warnings"].to_string().contains("recorded cut");
    if backend == "ebpf" && longest < 201 && warned {
        eprintln!(
            "warning: [ebpf] long argv: cat's command line recorded cut ({longest} of 201 \
             arguments) with a warning (documented: eBPF reads about 4 KiB of it)"
        );
    } else if longest != 201 {
        diff(
            "argv",
            Path::new("cat"),
            "201 arguments".into(),
            format!("{longest}, warned {warned}"),
        );
    }
}

/// The process tree: every image ends (an exit status, or an exec into the
/// next image of the same pid), and nothing outlived the command.
fn check_processes(
    case: &Case,
    _backend: &str,
    run: &Value,
    diff: &mut impl FnMut(&str, &Path, String, String),
) {
    let warnings = run["warnings"].to_string();
    if warnings.contains("outlived") {
        diff(
            "processes",
            Path::new("-"),
            "none outlived the command".into(),
            warnings.clone(),
        );
    }
    let mut last: BTreeMap<u64, bool> = BTreeMap::new();
    for p in run["processes"].as_array().unwrap() {
        let ended = !p["exit_code"].is_null() || !p["signal"].is_null();
        last.insert(p["pid"].as_u64().unwrap(), ended);
    }
    let open: Vec<u64> = last.iter().filter(|(_, e)| !**e).map(|(p, _)| *p).collect();
    if !open.is_empty() {
        diff(
            "processes",
            Path::new("-"),
            "every pid's last image ended".into(),
            format!("{} pids never end in {}: {open:?}", open.len(), case.name),
        );
    }
    let _ = warnings;
}

fn backends() -> Vec<&'static str> {
    let mut b = vec!["preload", "ptrace"];
    if tests::is_root() {
        b.push("ebpf");
    } else {
        eprintln!("warning: not root: the eBPF backend is not checked against the corpus");
    }
    b
}

fn run_cases(names: &[&str]) {
    let mut diffs = Vec::new();
    for case in CASES.iter().filter(|c| names.contains(&c.name)) {
        let o = oracle(case);
        assert!(
            !o.inputs.is_empty(),
            "{}: strace saw no input at all",
            case.name
        );
        for backend in backends() {
            check_case(case, backend, &o, &mut diffs);
        }
    }
    if !diffs.is_empty() {
        let mut table = format!(
            "{:<8} {:<40} {:<20} {:<55} {:<22} {}\n",
            "backend", "case", "difference", "path", "oracle", "roar"
        );
        for d in &diffs {
            table.push_str(&format!(
                "{:<8} {:<40} {:<20} {:<55} {:<22} {}\n",
                d.backend,
                d.case,
                d.what,
                d.path.display(),
                d.oracle,
                d.roar
            ));
        }
        panic!("roar differs from the oracle:\n{table}");
    }
}

#[test]
fn configure_and_make_of_an_autotools_project() {
    run_cases(&["./configure && make"]);
}

#[test]
fn make_j2_of_zlib_and_cargo_build() {
    run_cases(&["make -j2 (zlib)", "cargo build --offline"]);
}

#[test]
fn editors_archivers_and_sqlite() {
    run_cases(&[
        "sqlite3",
        "vim -es, sed -i, sort -o f f, patch",
        "tar, gzip, gunzip",
    ]);
}

#[test]
fn symlinks_long_argv_and_locks() {
    run_cases(&[
        "symlinked directory, write through a symlink",
        "long argv (xargs)",
        "flock lock files",
    ]);
}

#[test]
fn every_case_is_run() {
    let named = [
        "./configure && make",
        "make -j2 (zlib)",
        "cargo build --offline",
        "sqlite3",
        "vim -es, sed -i, sort -o f f, patch",
        "tar, gzip, gunzip",
        "symlinked directory, write through a symlink",
        "long argv (xargs)",
        "flock lock files",
    ];
    let all: BTreeSet<&str> = CASES.iter().map(|c| c.name).collect();
    assert_eq!(all, named.into_iter().collect::<BTreeSet<_>>());
}
