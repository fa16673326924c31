//! What a user at a terminal sees while roar works: a progress bar on stderr for `status`,
//! `export` and `ingest` (and `push`/`pull`, in team.rs), erased when the work is done, and
//! none when stderr is not a terminal or `NO_PROGRESS` is set. `ROAR_PROGRESS_DELAY_MS=0`
//! draws it at once, so a test need not make work that takes a second.

use std::process::{Command, Stdio};

use tests::{Sandbox, check, on_terminal, preload_lib};

/// A store with one run that read `n` files.
fn store_with_inputs(n: usize) -> Sandbox {
    let sb = Sandbox::new();
    for i in 0..n {
        sb.write(format!("in/{i}.txt"), format!("{i}\n"));
    }
    check(
        sb.roar()
            .args(["run", "-q", "--backend", "preload", "--", "sh", "-c"])
            .arg("cat in/*.txt > all.txt"),
    );
    sb
}

/// The bar for `what` was drawn (`[###...]` with a count) and erased at the end.
fn assert_bar(screen: &str, what: &str) {
    let drawn = format!("\rroar: {what} [");
    assert!(screen.contains(&drawn), "no {what:?} bar in {screen:?}");
    let last = screen.rfind(&drawn).unwrap();
    assert!(
        screen[last..].contains("\r\x1b[K"),
        "the {what:?} bar was not erased: {screen:?}"
    );
}

fn quick(mut cmd: Command) -> Command {
    cmd.env("ROAR_PROGRESS_DELAY_MS", "0");
    cmd
}

#[test]
fn status_and_export_draw_a_bar_on_a_terminal_only() {
    let sb = store_with_inputs(300);
    let mut status = quick(sb.roar());
    status.arg("status");
    let screen = on_terminal(&status);
    assert_bar(&screen, "checking files");
    assert!(screen.contains("up to date"), "{screen:?}");

    for format in ["json", "openlineage"] {
        let mut export = quick(sb.roar());
        export.args(["export", "--format", format, "-o", "export.out"]);
        assert_bar(&on_terminal(&export), "exporting runs");
    }

    // Not a terminal: the same command prints no bar.
    let out = tests::output(&mut status);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\r'), "a bar on a pipe: {err:?}");
    // NO_PROGRESS on a terminal: none either.
    status.env("NO_PROGRESS", "1");
    let screen = on_terminal(&status);
    assert!(!screen.contains("checking files ["), "{screen:?}");
    assert!(screen.contains("up to date"), "{screen:?}");
}

#[test]
fn ingest_draws_a_bar_per_process_tree() {
    let sb = Sandbox::new();
    let dir = sb.join("traces");
    for i in 0..5 {
        let status = Command::new("sh")
            .args(["-c", &format!("echo {i} > out{i}.txt")])
            .current_dir(sb.path())
            .env("LD_PRELOAD", preload_lib())
            .env("ROAR_TRACE_DIR", &dir)
            .stdin(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let mut ingest = quick(sb.roar());
    ingest.arg("ingest").arg(&dir);
    let screen = on_terminal(&ingest);
    assert_bar(&screen, "ingesting process trees");
    assert!(screen.contains("/5"), "{screen:?}");
    assert_eq!(sb.log_json().len(), 5, "{screen:?}");
}
