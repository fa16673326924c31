//! Runs real programs under `libroar_preload.so` and checks their traces.

#[path = "preload/sandbox.rs"]
mod sandbox;

use std::process::Command;

use sandbox::{Sandbox, Stream, preload_so, show};
use tracer_wire::{Event, ExitStatus, StartCause, exec_flags};

const HOOKS: &[&str] = &[
    "chdir",
    "fchdir",
    "chroot",
    "unshare",
    "setns",
    "open",
    "open64",
    "openat",
    "openat64",
    "__open_2",
    "__open64_2",
    "__openat_2",
    "__openat64_2",
    "creat",
    "creat64",
    "mkstemp",
    "mkstemp64",
    "mkostemp",
    "mkostemp64",
    "mkstemps",
    "mkstemps64",
    "mkostemps",
    "mkostemps64",
    "fopen",
    "fopen64",
    "freopen",
    "freopen64",
    "rename",
    "renameat",
    "renameat2",
    "link",
    "linkat",
    "symlink",
    "symlinkat",
    "unlink",
    "unlinkat",
    "remove",
    "truncate",
    "truncate64",
    "ftruncate",
    "ftruncate64",
    "mkdir",
    "mkdirat",
    "rmdir",
    "execve",
    "execv",
    "execvp",
    "execvpe",
    "execl",
    "execlp",
    "execle",
    "fexecve",
    "execveat",
    "posix_spawn",
    "posix_spawnp",
    "exit",
    "_exit",
    "_Exit",
    "wait",
    "waitpid",
    "wait4",
    "wait3",
    "waitid",
];

#[test]
fn exports_every_hook() {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(preload_so())
        .output()
        .expect("run nm");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .map(|n| n.split('@').next().unwrap_or(n))
        .collect();
    for hook in HOOKS {
        assert!(names.contains(hook), "{hook} not exported");
    }
}

fn opened<'a>(events: &'a [Event<'static>], path: &[u8]) -> Vec<&'a Event<'static>> {
    events
        .iter()
        .filter(|e| matches!(e, Event::Open { path: p, .. } if *p == path))
        .collect()
}

/// Content records of `path`: the hash the library took before a call
/// destroyed it.
fn contents(events: &[Event<'static>], path: &[u8]) -> Vec<[u8; 32]> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Content {
                path: p, blake3, ..
            } if *p == path => Some(*blake3),
            _ => None,
        })
        .collect()
}

#[test]
fn pre_existing_files_are_hashed_before_they_are_destroyed() {
    let sb = Sandbox::new("content");
    let files = [
        ("deleted.txt", "read, then deleted\n"),
        ("replaced.txt", "replaced by a rename\n"),
        ("moved.txt", "moved out of the way\n"),
        ("rplus.txt", "rewritten in place\n"),
        ("truncated.txt", "emptied by O_TRUNC\n"),
        ("appended.txt", "appended to by >>\n"),
        ("wronly.txt", "overwritten through O_WRONLY\n"),
    ];
    for (name, body) in files {
        sb.write(name, body);
    }
    std::thread::sleep(std::time::Duration::from_millis(30));
    // A directory named as roar run names one: its start is now, so files
    // older than now existed before the run; new.txt, made during the run
    // (after the start and its 10 ms slack), is not hashed when it is moved.
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let run_dir = sb.root.join(format!("run-1-{start_ms}-0"));
    std::os::unix::fs::symlink(&sb.trace, &run_dir).unwrap();
    let script = "sleep 0.05; cat deleted.txt >/dev/null; rm deleted.txt; \
        echo new > tmp.txt; mv tmp.txt replaced.txt; mv moved.txt ../moved.txt; \
        python3 -c \"open('rplus.txt', 'r+').write('R')\"; : > truncated.txt; \
        echo more >> appended.txt; \
        python3 -c \"import os; os.write(os.open('wronly.txt', os.O_WRONLY), b'W')\"; \
        echo made > new.txt; mv new.txt new2.txt; echo again >> new2.txt";
    let out = sb
        .traced("sh", &["-c", script])
        .env("ROAR_TRACE_DIR", &run_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ev = sb.events();
    let dump = sb.dump();
    for (name, body) in files {
        let want = *blake3::hash(body.as_bytes()).as_bytes();
        assert!(
            contents(&ev, &sb.path(name)).contains(&want),
            "{name}: no content record with its original hash\n{dump}"
        );
    }
    for name in ["tmp.txt", "new.txt", "new2.txt"] {
        assert!(
            contents(&ev, &sb.path(name)).is_empty(),
            "{name} was made by the run and hashed anyway\n{dump}"
        );
    }
    // The program's files are what they would be without the library.
    assert_eq!(
        std::fs::read(sb.work.join("rplus.txt")).unwrap(),
        b"Rewritten in place\n"
    );
    assert_eq!(std::fs::read(sb.work.join("truncated.txt")).unwrap(), b"");
    assert_eq!(
        std::fs::read(sb.work.join("appended.txt")).unwrap(),
        b"appended to by >>\nmore\n"
    );
    assert_eq!(
        std::fs::read(sb.work.join("wronly.txt")).unwrap(),
        b"Wverwritten through O_WRONLY\n"
    );
}

/// A large file opened read-write by process after process (a loop of
/// `sqlite3 db 'select ...'`) is hashed once in a run, not once per open.
#[test]
fn a_large_file_is_hashed_once_per_run() {
    let sb = Sandbox::new("content-once");
    let big: String = "0123456789abcdef".repeat(1 << 17);
    sb.write("db.bin", &big);
    std::thread::sleep(std::time::Duration::from_millis(30));
    let start_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let run_dir = sb.root.join(format!("run-1-{start_ms}-0"));
    std::os::unix::fs::symlink(&sb.trace, &run_dir).unwrap();
    let script = "for i in 1 2 3; do python3 -c \"open('db.bin', 'r+').read(1)\"; done";
    let out = sb
        .traced("sh", &["-c", script])
        .env("ROAR_TRACE_DIR", &run_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let ev = sb.events();
    let want = *blake3::hash(big.as_bytes()).as_bytes();
    assert_eq!(contents(&ev, &sb.path("db.bin")), [want], "{}", sb.dump());
}

#[test]
fn shell_copy_and_rename() {
    let sb = Sandbox::new("shell");
    sb.write("in.txt", "hello\n");
    sb.run("sh", &["-c", "cat in.txt > out.txt; mv out.txt final.txt"]);
    assert_eq!(
        std::fs::read(sb.work.join("final.txt")).unwrap(),
        b"hello\n"
    );
    let ev = sb.events();
    let dump = sb.dump();

    // cat read in.txt: absolute path and the file's identity.
    let reads = opened(&ev, &sb.path("in.txt"));
    assert!(
        reads
            .iter()
            .any(|e| matches!(e, Event::Open { result, stat: Some(st), .. }
            if *result >= 0 && st.size == 6 && st.is_regular())),
        "{dump}"
    );
    // sh created out.txt for the redirection.
    assert!(
        opened(&ev, &sb.path("out.txt")).iter().any(
            |e| matches!(e, Event::Open { flags, result, stat: Some(_), .. }
                if flags & libc::O_CREAT != 0 && *result >= 0)
        ),
        "{dump}"
    );
    // mv renamed it.
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Rename { old, new, result: 0, .. }
            if *old == sb.path("out.txt") && *new == sb.path("final.txt"))),
        "{dump}"
    );
    // cat's own image announced itself with exe, argv and cwd.
    let cwd = sb.work.as_os_str().as_encoded_bytes();
    assert!(
        ev.iter().any(|e| matches!(e, Event::ProcessStart { exe, argv, cwd: c, cause: StartCause::Exec, exe_stat: Some(_), .. }
            if exe.ends_with(b"/cat")
                && argv.iter().collect::<Vec<_>>() == [&b"cat"[..], b"in.txt"]
                && *c == cwd)),
        "{dump}"
    );
    // sh exec'd cat and mv by absolute path...
    for prog in [&b"/cat"[..], b"/mv"] {
        assert!(
            ev.iter().any(
                |e| matches!(e, Event::Exec { result: 0, path, flags: 0, .. }
                if path.starts_with(b"/") && path.ends_with(prog))
            ),
            "{dump}"
        );
    }
    // ...and reaped them.
    let reaped = ev
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::ChildExit {
                    status: ExitStatus::Code(0),
                    ..
                }
            )
        })
        .count();
    assert!(reaped >= 2, "{dump}");
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::Exit {
                status: ExitStatus::Code(0)
            }
        )),
        "{dump}"
    );
    // No absolute-path violations anywhere.
    for e in &ev {
        if let Event::Open { path, .. } | Event::Unlink { path, .. } = e {
            assert!(path.starts_with(b"/"), "relative path in {}", show(e));
        }
    }
}

#[test]
fn python_script() {
    let sb = Sandbox::new("python");
    sb.write("data.txt", "abc");
    let script = "import os, subprocess\n\
                  d = open('data.txt').read()\n\
                  open('copy.txt', 'w').write(d)\n\
                  os.mkdir('sub')\n\
                  os.rename('copy.txt', 'sub/moved.txt')\n\
                  os.symlink('moved.txt', 'sub/link')\n\
                  os.unlink('sub/link')\n\
                  subprocess.run(['true'])\n";
    sb.run("python3", &["-c", script]);
    let ev = sb.events();
    let dump = sb.dump();
    assert!(
        opened(&ev, &sb.path("data.txt"))
            .iter()
            .any(|e| matches!(e, Event::Open { stat: Some(st), .. } if st.size == 3)),
        "{dump}"
    );
    assert!(!opened(&ev, &sb.path("copy.txt")).is_empty(), "{dump}");
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Mkdir { result: 0, path, .. } if *path == sb.path("sub"))),
        "{dump}"
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Rename { old, new, result: 0, .. }
            if *old == sb.path("copy.txt") && *new == sb.path("sub/moved.txt"))),
        "{dump}"
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Symlink { target, link, result: 0 }
            if *target == *b"moved.txt" && *link == sb.path("sub/link"))),
        "{dump}"
    );
    assert!(
        ev.iter().any(
            |e| matches!(e, Event::Unlink { dir: false, path, result: 0 }
            if *path == sb.path("sub/link"))
        ),
        "{dump}"
    );
    // python's subprocess exec'd true and reaped it.
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Exec { path, .. } if path.ends_with(b"/true"))),
        "{dump}"
    );
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::ChildExit {
                status: ExitStatus::Code(0),
                ..
            }
        )),
        "{dump}"
    );
    // The pyenv shim is a bash script that execs the real interpreter.
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::ProcessStart { argv, .. }
            if argv.iter().any(|a| a == b"-c"))),
        "{dump}"
    );
}

#[test]
fn output_and_status_unchanged() {
    let sb = Sandbox::new("same");
    sb.write("f.txt", "x\ny\n");
    let cases: &[(&str, &[&str])] = &[
        (
            "sh",
            &[
                "-c",
                "cat f.txt; echo err >&2; ls /nonexistent-roar; exit 3",
            ],
        ),
        (
            "python3",
            &[
                "-c",
                "import sys, os\nprint(open('f.txt').read())\ntry:\n  open('/nonexistent-roar')\nexcept OSError as e:\n  print(e.errno, e, file=sys.stderr)\nos.closerange(3, 100)\nsys.exit(7)",
            ],
        ),
        ("sh", &["-c", "kill -TERM $$"]),
    ];
    for (prog, args) in cases {
        let a = sb.plain(prog, args).output().unwrap();
        let b = sb.traced(prog, args).output().unwrap();
        assert_eq!(a.stdout, b.stdout, "{prog} {args:?}");
        assert_eq!(a.stderr, b.stderr, "{prog} {args:?}");
        assert_eq!(a.status, b.status, "{prog} {args:?}");
    }
    // The traced runs did produce records.
    assert!(!sb.events().is_empty());
}

#[test]
fn static_binary_is_flagged() {
    let sb = Sandbox::new("static");
    sb.write("st.c", "int main(void) { return 0; }\n");
    let cc = sb
        .plain("gcc", &["-static", "-o", "st", "st.c"])
        .output()
        .expect("run gcc");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    sb.run("sh", &["-c", "./st; true"]);
    let ev = sb.events();
    let want = sb.path("st");
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Exec { path, flags, result: 0, .. }
            if *path == want && flags & exec_flags::STATIC_BINARY != 0)),
        "{}",
        sb.dump()
    );
    // A dynamic target is not flagged.
    assert!(
        ev.iter()
            .all(|e| !matches!(e, Event::Exec { path, flags, .. }
            if path.ends_with(b"/true") && flags & exec_flags::STATIC_BINARY != 0)),
        "{}",
        sb.dump()
    );
}

#[test]
fn env_i_drops_preload() {
    let sb = Sandbox::new("envi");
    sb.run("env", &["-i", "/bin/true"]);
    let ev = sb.events();
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Exec { path, flags, .. }
            if *path == *b"/bin/true" && flags & exec_flags::PRELOAD_DROPPED != 0)),
        "{}",
        sb.dump()
    );
}

#[test]
fn survives_closing_all_fds() {
    let sb = Sandbox::new("closeall");
    sb.run(
        "python3",
        &[
            "-c",
            "import os; os.closerange(3, 65536); open('x','w').write('a')",
        ],
    );
    let ev = sb.events();
    assert!(
        opened(&ev, &sb.path("x"))
            .iter()
            .any(|e| matches!(e, Event::Open { result, .. } if *result >= 0)),
        "{}",
        sb.dump()
    );
}

#[test]
fn closing_by_other_means_keeps_stream() {
    // close_range via os.closerange above; here dup2 onto every high fd and
    // close each fd one by one.
    let sb = Sandbox::new("dup2");
    let script = "import os\n\
                  fd = os.open('/dev/null', os.O_RDONLY)\n\
                  for n in range(3, 1100):\n\
                  \x20   if n != fd:\n\
                  \x20       try: os.dup2(fd, n)\n\
                  \x20       except OSError: pass\n\
                  for n in range(3, 1100):\n\
                  \x20   try: os.close(n)\n\
                  \x20   except OSError: pass\n\
                  open('after','w').write('a')\n";
    sb.run("python3", &["-c", script]);
    let ev = sb.events();
    assert!(!opened(&ev, &sb.path("after")).is_empty(), "{}", sb.dump());
}

#[test]
fn dirfd_relative_openat_is_absolute() {
    let sb = Sandbox::new("dirfd");
    std::fs::create_dir(sb.work.join("d")).unwrap();
    sb.run(
        "python3",
        &["-c", "import os\nd = os.open('d', os.O_RDONLY)\nos.close(os.open('f', os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=d))"],
    );
    let ev = sb.events();
    assert!(
        opened(&ev, &sb.path("d/f")).iter().any(
            |e| matches!(e, Event::Open { result, mode: 0o600, stat: Some(_), .. } if *result >= 0)
        ),
        "{}",
        sb.dump()
    );
}

#[test]
fn threads_all_recorded() {
    let sb = Sandbox::new("threads");
    let script = "import threading\n\
                  def w(i):\n\
                  \x20   for j in range(20):\n\
                  \x20       open(f't{i}_{j}', 'w').write('x')\n\
                  ts = [threading.Thread(target=w, args=(i,)) for i in range(8)]\n\
                  [t.start() for t in ts]\n\
                  [t.join() for t in ts]\n";
    sb.run("python3", &["-c", script]);
    let ev = sb.events();
    for i in 0..8 {
        for j in 0..20 {
            let name = format!("t{i}_{j}");
            assert!(!opened(&ev, &sb.path(&name)).is_empty(), "{name} missing");
        }
    }
}

#[test]
fn fork_child_gets_own_stream() {
    let sb = Sandbox::new("fork");
    let script = "import os\n\
                  pid = os.fork()\n\
                  if pid == 0:\n\
                  \x20   open('child', 'w').write('c')\n\
                  \x20   os._exit(5)\n\
                  os.waitpid(pid, 0)\n";
    sb.run("python3", &["-c", script]);
    let streams = sb.streams();
    // The pyenv shim's bash forks too: pick the stream that opened `child`.
    let child = streams
        .iter()
        .find(|s| {
            s.events()
                .any(|e| matches!(e, Event::Open { path, .. } if *path == sb.path("child")))
        })
        .unwrap_or_else(|| panic!("no stream opened child\n{}", sb.dump()));
    assert!(
        matches!(
            child.records[0].event,
            Event::ProcessStart {
                cause: StartCause::Fork,
                ..
            }
        ),
        "{}",
        sb.dump()
    );
    assert!(
        child.events().any(|e| matches!(
            e,
            Event::Exit {
                status: ExitStatus::Code(5)
            }
        )),
        "{}",
        sb.dump()
    );
    let ev = sb.events();
    assert!(
        ev.iter().any(|e| matches!(
            e,
            Event::ChildExit {
                status: ExitStatus::Code(5),
                ..
            }
        )),
        "{}",
        sb.dump()
    );
}

/// A fork child opens its stream only at its first record, dated from the
/// fork. One that makes a child before it recorded anything (a vfork child
/// that execs, a fork, then an exec of its own) still has a stream, opened
/// as its own, that began before its children did.
#[test]
fn a_fork_child_that_only_makes_children_is_still_their_parent() {
    let sb = Sandbox::new("lazy");
    let prog = compile(
        &sb,
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lazy.c"),
        "lazy",
    );
    sb.run(&prog, &[]);
    let streams = sb.streams();
    let dump = sb.dump();
    let start = |s: &&Stream| match s.records.first().map(|r| &r.event) {
        Some(Event::ProcessStart { ppid, argv, .. }) => {
            Some((*ppid, argv.iter().collect::<Vec<_>>()))
        }
        _ => None,
    };
    let image_of = |tag: &[u8]| {
        streams
            .iter()
            .find(|s| start(s).is_some_and(|(_, a)| a.get(1) == Some(&tag)))
            .unwrap_or_else(|| panic!("no image of true {tag:?}\n{dump}"))
    };
    // (tag, whether its parent is a fork child whose stream the library
    // opened late: it must be a fork image, dated from the fork)
    for (tag, forked_parent) in [(&b"vforked"[..], true), (b"forked", true), (b"0.3", false)] {
        let image = image_of(tag);
        let (ppid, _) = start(&image).unwrap();
        let me = &image.records[0].header;
        // Its parent: an earlier image of its pid (an exec) or of its ppid.
        let parent = streams.iter().any(|s| {
            let h = &s.records[0].header;
            (h.pid == ppid || (h.pid == me.pid && !std::ptr::eq(s, image))) && h.ts_ns < me.ts_ns
        });
        assert!(parent, "{tag:?} has no parent image\n{dump}");
        if forked_parent {
            let fork_image = streams.iter().any(|s| {
                let r = &s.records[0];
                r.header.pid == ppid
                    && r.header.ts_ns < me.ts_ns
                    && matches!(
                        r.event,
                        Event::ProcessStart {
                            cause: StartCause::Fork,
                            ..
                        }
                    )
            });
            assert!(fork_image, "{tag:?}: its parent has no fork image\n{dump}");
        }
    }
    // The vfork child's pid has one image only: the program it exec'd.
    let pid = image_of(b"vforked").records[0].header.pid;
    let images = streams
        .iter()
        .filter(|s| s.records[0].header.pid == pid)
        .count();
    assert_eq!(images, 1, "{dump}");
}

/// A shell's fork children that only redirect to /dev/null and exec open
/// no stream: a device is not recorded, and the exec'd image reports
/// itself. A regular file opened beside it still is.
#[test]
fn a_redirect_to_a_device_opens_no_stream() {
    let sb = Sandbox::new("devnull");
    sb.run(
        "bash",
        &[
            "-c",
            "/bin/true > /dev/null; /bin/true x 2>/dev/null; echo hi > f",
        ],
    );
    let streams = sb.streams();
    let dump = sb.dump();
    let forks = streams
        .iter()
        .filter(|s| {
            matches!(
                s.records[0].event,
                Event::ProcessStart {
                    cause: StartCause::Fork,
                    ..
                }
            )
        })
        .count();
    assert_eq!(forks, 0, "{dump}");
    let ev = sb.events();
    assert!(
        !ev.iter()
            .any(|e| matches!(e, Event::Open { path, result, .. } if *result >= 0 && path.starts_with(b"/dev/"))),
        "{dump}"
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Open { path, .. } if *path == sb.path("f"))),
        "{dump}"
    );
}

/// Relative paths follow every change of directory, though the cwd is
/// cached: chdir and fchdir in the process, a thread's relative open after
/// the main thread moved, and a vfork child's chdir (Python's subprocess
/// with `cwd=`), which must not leave its cwd in its parent's cache.
#[test]
fn relative_paths_follow_the_cwd() {
    let sb = Sandbox::new("cwd");
    std::fs::create_dir_all(sb.work.join("sub")).unwrap();
    std::fs::write(sb.work.join("sub/run.sh"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(
        sb.work.join("sub/run.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let script = "import os, subprocess, threading\n\
                  open('a', 'w').close()\n\
                  os.chdir('sub')\n\
                  open('b', 'w').close()\n\
                  fd = os.open('..', os.O_RDONLY)\n\
                  os.fchdir(fd)\n\
                  open('c', 'w').close()\n\
                  subprocess.run(['./run.sh'], cwd='sub', check=True)\n\
                  open('d', 'w').close()\n\
                  os.chdir('sub')\n\
                  t = threading.Thread(target=lambda: open('e', 'w').close())\n\
                  t.start(); t.join()\n";
    sb.run("python3", &["-c", script]);
    let ev = sb.events();
    let dump = sb.dump();
    for (name, at) in [
        ("a", "a"),
        ("b", "sub/b"),
        ("c", "c"),
        ("d", "d"),
        ("e", "sub/e"),
    ] {
        let want = sb.path(at);
        assert!(
            ev.iter().any(
                |e| matches!(e, Event::Open { path, result, .. } if *result >= 0 && *path == want)
            ),
            "{name} not opened as {at}\n{dump}"
        );
    }
}

#[test]
fn untraced_without_trace_dir() {
    let sb = Sandbox::new("off");
    let out = sb
        .plain("sh", &["-c", "echo hi > f; cat f"])
        .env("LD_PRELOAD", preload_so())
        .env_remove("ROAR_TRACE_DIR")
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"hi\n");
    assert!(sb.streams().is_empty());
}

/// Compiles tests/fixtures/hooks.c into the sandbox.
fn build_fixture(sb: &Sandbox) -> String {
    compile(
        sb,
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hooks.c"),
        "hooks",
    )
}

/// Compiles one C source into the sandbox as `name`.
fn compile(sb: &Sandbox, src: &str, name: &str) -> String {
    let out = sb
        .plain("gcc", &["-O2", "-pthread", "-o", name, src])
        .output()
        .expect("run gcc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sb.work.join(name).to_string_lossy().into_owned()
}

/// Threads racing to grow one stream, fork children, children of a raw
/// clone (no atfork handler: the wiped state page makes them open their own
/// stream) and vfork children: every stream decodes to the end, starts with
/// ProcessStart and has every sequence number once (`Sandbox::streams`).
/// Repeated, since races show up only sometimes.
#[test]
fn concurrent_writers_leave_whole_streams() {
    let sb = Sandbox::new("busy");
    // The conformance suite's fixture (tests/fixtures), run here on its own.
    let prog = compile(
        &sb,
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/busy_streams.c"
        ),
        "busy",
    );
    sb.write("in.txt", "input\n");
    for round in 0..10 {
        sb.run(&prog, &[]);
        let streams = sb.streams();
        // The program, 20 fork and 5 raw-clone children, 3 exec'd /bin/true.
        assert_eq!(streams.len(), 29, "round {round}");
        let raw: Vec<_> = streams
            .iter()
            .filter(|s| {
                s.events()
                    .any(|e| matches!(e, Event::Open { path, .. } if path.ends_with(b"/raw-0.txt")))
            })
            .collect();
        assert_eq!(raw.len(), 1, "round {round}: {}", sb.dump());
        assert!(matches!(
            raw[0].records[0].event,
            Event::ProcessStart {
                cause: StartCause::Fork,
                ..
            }
        ));
        let main_opens = streams
            .iter()
            .map(|s| {
                s.events()
                    .filter(|e| matches!(e, Event::Open { path, .. } if path.ends_with(b"/in.txt")))
                    .count()
            })
            .max();
        // 8 threads x 500 opens (+ one each before writing its file).
        assert_eq!(main_opens, Some(8 * 501), "round {round}");
        for f in std::fs::read_dir(&sb.trace).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
        }
    }
}

#[test]
fn c_fixture_every_hook() {
    let sb = Sandbox::new("cfixture");
    let prog = build_fixture(&sb);
    let plain = sb.plain(&prog, &[]).output().unwrap();
    for f in std::fs::read_dir(&sb.work).unwrap() {
        let f = f.unwrap().path();
        if f.file_name().unwrap() != "hooks" {
            let _ = std::fs::remove_file(f);
        }
    }
    let traced = sb.traced(&prog, &[]).output().unwrap();
    assert_eq!(
        plain.stdout,
        b"ok\n",
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    assert_eq!(
        traced.stdout,
        plain.stdout,
        "{}",
        String::from_utf8_lossy(&traced.stderr)
    );
    assert_eq!(traced.stderr, plain.stderr);
    assert_eq!(traced.status, plain.status);
    assert_eq!(traced.status.code(), Some(42));

    let streams = sb.streams();
    let dump = sb.dump();
    let main = streams
        .iter()
        .find(|s| {
            matches!(s.records[0].event, Event::ProcessStart { exe, cause: StartCause::Exec, .. }
                if exe.ends_with(b"/hooks"))
        })
        .unwrap_or_else(|| panic!("no stream for the fixture\n{dump}"));
    let ev: Vec<Event<'static>> = main.events().copied().collect();
    let p = |n: &str| sb.path(n);
    let has = |what: &str, f: &dyn Fn(&Event<'static>) -> bool| {
        assert!(ev.iter().any(f), "missing {what}\n{dump}");
    };
    let enoent = -libc::ENOENT;

    has("open a.txt", &|e| {
        matches!(e, Event::Open { flags, mode: 0o640, result, stat: Some(_), path }
        if *flags == libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC && *result >= 0 && *path == p("a.txt"))
    });
    has(
        "failed open",
        &|e| matches!(e, Event::Open { result, stat: None, path, .. } if *result == enoent && *path == p("missing/x")),
    );
    has(
        "__open_2",
        &|e| matches!(e, Event::Open { flags: 0, result, path, .. } if *result >= 0 && *path == p("a.txt")),
    );
    has(
        "openat dirfd",
        &|e| matches!(e, Event::Open { mode: 0o600, path, .. } if *path == p("b.txt")),
    );
    has("creat", &|e| {
        matches!(e, Event::Open { flags, mode: 0o644, path, .. }
        if *flags == libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC && *path == p("c.txt"))
    });
    has("fopen w+", &|e| {
        matches!(e, Event::Open { flags, result, stat: Some(_), path, .. }
        if *flags == libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC && *result >= 0 && *path == p("d.txt"))
    });
    has(
        "freopen r",
        &|e| matches!(e, Event::Open { flags: 0, result, path, .. } if *result >= 0 && *path == p("d.txt")),
    );
    has(
        "failed fopen",
        &|e| matches!(e, Event::Open { result, path, .. } if *result == enoent && *path == p("missing/y")),
    );
    has(
        "ftruncate",
        &|e| matches!(e, Event::Truncate { result: 0, length: 3, path } if *path == p("a.txt")),
    );
    has(
        "truncate",
        &|e| matches!(e, Event::Truncate { result: 0, length: 1, path } if *path == p("a.txt")),
    );
    has(
        "link",
        &|e| matches!(e, Event::Link { result: 0, old, new } if *old == p("a.txt") && *new == p("a.link")),
    );
    has(
        "linkat",
        &|e| matches!(e, Event::Link { result: 0, old, new } if *old == p("b.txt") && *new == p("b.link")),
    );
    has(
        "symlinkat",
        &|e| matches!(e, Event::Symlink { result: 0, target, link } if *target == *b"a.txt" && *link == p("a.sym")),
    );
    has(
        "renameat2",
        &|e| matches!(e, Event::Rename { flags: 1, result: 0, old, new } if *old == p("c.txt") && *new == p("c2.txt")),
    );
    has(
        "mkdirat",
        &|e| matches!(e, Event::Mkdir { result: 0, mode: 0o755, path } if *path == p("sub")),
    );
    has(
        "unlinkat",
        &|e| matches!(e, Event::Unlink { result: 0, dir: false, path } if *path == p("a.sym")),
    );
    has(
        "remove dir",
        &|e| matches!(e, Event::Unlink { result: 0, dir: true, path } if *path == p("sub2")),
    );
    has(
        "remove file",
        &|e| matches!(e, Event::Unlink { result: 0, dir: false, path } if *path == p("b.link")),
    );
    has(
        "rmdir",
        &|e| matches!(e, Event::Unlink { result: 0, dir: true, path } if *path == p("sub")),
    );
    has(
        "failed unlinkat",
        &|e| matches!(e, Event::Unlink { result, dir: true, path } if *result == enoent && *path == p("nonexistent")),
    );
    has(
        "open after closing every fd",
        &|e| matches!(e, Event::Open { result, path, .. } if *result >= 0 && *path == p("after_close.txt")),
    );
    has(
        "failed posix_spawn",
        &|e| matches!(e, Event::Exec { result, path, .. } if *result == enoent && *path == *b"/nonexistent/prog"),
    );
    has(
        "posix_spawnp",
        &|e| matches!(e, Event::Exec { result: 0, path, flags: 0, .. } if path.starts_with(b"/") && path.ends_with(b"/true")),
    );
    has("ChildExit 3", &|e| {
        matches!(
            e,
            Event::ChildExit {
                status: ExitStatus::Code(3),
                ..
            }
        )
    });
    has("ChildExit 4", &|e| {
        matches!(
            e,
            Event::ChildExit {
                status: ExitStatus::Code(4),
                ..
            }
        )
    });
    has("ChildExit SIGKILL", &|e| {
        matches!(
            e,
            Event::ChildExit {
                status: ExitStatus::Signal(9),
                ..
            }
        )
    });
    has("Exit 42 from main", &|e| {
        matches!(
            e,
            Event::Exit {
                status: ExitStatus::Code(42)
            }
        )
    });
    let exits = ev
        .iter()
        .filter(|e| matches!(e, Event::Exit { .. }))
        .count();
    assert_eq!(exits, 1, "{dump}");

    // Exec attempts, from the forked children's streams and the vfork
    // child (which writes into the parent's stream).
    let all = sb.events();
    /// (flags, path, argv, result) -> matches.
    type ExecPred<'a> = &'a dyn Fn(u32, &[u8], Vec<&[u8]>, i32) -> bool;
    let exec = |what: &str, f: ExecPred| {
        assert!(
            all.iter()
                .any(|e| matches!(e, Event::Exec { result, flags, path, argv }
                if f(*flags, path, argv.iter().collect(), *result))),
            "missing exec {what}\n{dump}"
        );
    };
    // A fork child that only execs a traced program writes no attempt: its
    // new image's ProcessStart, with no fork image before it, says it all.
    let exec_only = |what: &str, want: &[&[u8]]| {
        let pids: Vec<u32> = streams
            .iter()
            .flat_map(|s| s.records.iter())
            .filter(|r| {
                matches!(r.event, Event::ProcessStart { cause: StartCause::Exec, argv, .. }
                if argv.iter().collect::<Vec<_>>() == want)
            })
            .map(|r| r.header.pid)
            .collect();
        assert_eq!(pids.len(), 1, "{what}: one new image\n{dump}");
        let attempts = streams
            .iter()
            .flat_map(|s| s.records.iter())
            .filter(|r| {
                r.header.pid == pids[0]
                    && !matches!(
                        r.event,
                        Event::ProcessStart {
                            cause: StartCause::Exec,
                            ..
                        } | Event::Exit { .. }
                    )
            })
            .count();
        assert_eq!(attempts, 0, "{what}: no fork image or attempt\n{dump}");
    };
    exec_only("execl", &[b"sh", b"-c", b"exit 3"]);
    exec_only("execlp", &[b"true", b"x"]);
    exec("execle", &|fl, path, _, r| {
        r == 0 && fl & exec_flags::PRELOAD_DROPPED != 0 && path == b"/bin/true"
    });
    exec("execv (vfork)", &|_, path, argv, r| {
        r == 0 && path == b"/bin/sh" && argv == [&b"sh"[..], b"-c", b"exit 4"]
    });
    exec("failed execve", &|_, path, _, r| {
        r == enoent && path == b"/nonexistent/prog"
    });
    exec("fexecve", &|_, path, _, r| {
        r == 0 && path == b"/usr/bin/true"
    });
    exec("execveat", &|_, path, _, r| r == 0 && path == b"/bin/true");
    // The vfork child's record sits in the parent's stream, under its pid.
    assert!(
        main.records
            .iter()
            .any(|r| r.header.pid != main.records[0].header.pid
                && matches!(r.event, Event::Exec { path, .. } if path == b"/bin/sh")),
        "{dump}"
    );
}

#[test]
fn oversized_path_and_argv_are_flagged() {
    let sb = Sandbox::new("trunc");
    let script = "import subprocess\n\
                  try:\n\
                  \x20   open('a' * 9000)\n\
                  except OSError:\n\
                  \x20   pass\n\
                  subprocess.run(['/bin/true'] + ['y' * 1000] * 100, check=True)\n";
    sb.run("python3", &["-c", script]);
    let streams = sb.streams();
    let recs: Vec<_> = streams.iter().flat_map(|s| s.records.iter()).collect();
    assert!(
        recs.iter()
            .any(|r| r.header.flags & tracer_wire::FLAG_PATH_TRUNCATED != 0
                && matches!(r.event, Event::Open { result, .. } if result == -libc::ENAMETOOLONG)),
        "{}",
        sb.dump()
    );
    assert!(
        recs.iter()
            .any(|r| r.header.flags & tracer_wire::FLAG_ARGV_TRUNCATED != 0
                && matches!(r.event, Event::Exec { path, argv, .. }
                if path == b"/bin/true" && argv.iter().count() > 5)),
        "{}",
        sb.dump()
    );
    assert!(
        recs.iter()
            .any(|r| r.header.flags & tracer_wire::FLAG_ARGV_TRUNCATED != 0
                && matches!(r.event, Event::ProcessStart { exe, .. } if exe.ends_with(b"/true"))),
        "{}",
        sb.dump()
    );
}

/// Stream names are `<pid>.<mono ns>.<16 hex>.<boot>-<pidns>.rwt`: the last
/// field tells pid namespaces (containers) apart for `roar ingest`.
#[test]
fn stream_names_carry_boot_and_pid_namespace() {
    let sb = Sandbox::new("names");
    sb.run("sh", &["-c", "true"]);
    let boot: String = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .collect();
    let ns: String = std::fs::read_link("/proc/self/ns/pid")
        .unwrap()
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let streams = sb.streams();
    assert!(!streams.is_empty());
    for s in streams {
        let name = s.file.file_name().unwrap().to_str().unwrap().to_owned();
        let fields: Vec<&str> = name.split('.').collect();
        assert_eq!(fields.len(), 5, "{name}");
        assert_eq!(fields[0], s.records[0].header.pid.to_string(), "{name}");
        assert!(fields[1].bytes().all(|b| b.is_ascii_digit()), "{name}");
        assert_eq!(fields[2].len(), 16, "{name}");
        assert_eq!(fields[3], format!("{boot}-{ns}"), "{name}");
        assert_eq!(fields[4], "rwt");
    }
}

/// A fork child that records nothing and `_exit`s gets no stream: its
/// parent's wait reports it. With SIGCHLD ignored nobody would, so the
/// child records its own exit.
#[test]
fn a_fork_child_that_only_exits_is_reported_by_its_parent() {
    let sb = Sandbox::new("fork-exit");
    let script = "import os, signal, time\n\
        p = os.fork()\n\
        if p == 0:\n    os._exit(3)\n\
        os.waitpid(p, 0)\n\
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)\n\
        q = os.fork()\n\
        if q == 0:\n    os._exit(4)\n\
        time.sleep(0.2)\n\
        print(p, q)\n";
    let out = sb.traced("python3", &["-c", script]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    let (p, q) = (pids[0], pids[1]);
    let streams = sb.streams();
    let dump = sb.dump();
    let of = |pid: u32| {
        streams
            .iter()
            .filter(|s| s.records[0].header.pid == pid)
            .count()
    };
    assert_eq!(of(p), 0, "the reaped child opened a stream\n{dump}");
    assert!(
        sb.events().iter().any(|e| matches!(
            e,
            Event::ChildExit { child, status: ExitStatus::Code(3) } if *child == p
        )),
        "{dump}"
    );
    assert_eq!(of(q), 1, "the child nobody reaps recorded nothing\n{dump}");
    let q_exit = streams
        .iter()
        .filter(|s| s.records[0].header.pid == q)
        .flat_map(|s| s.events())
        .any(|e| {
            matches!(
                e,
                Event::Exit {
                    status: ExitStatus::Code(4)
                }
            )
        });
    assert!(q_exit, "{dump}");
}
