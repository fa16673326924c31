//! roar in real containers, under a private dockerd (see `containers/docker.rs`):
//! the preload library in images older or slimmer than the build machine
//! (Debian 11 and 12, no libgcc_s), the static roar under ptrace in busybox,
//! the pod layout with `roar ingest` as a container's pid 1, container
//! clients that do their work elsewhere, and `roar k8s pod-template`
//! (`containers/k8s.rs`).
//!
//! They need root (to start dockerd); elsewhere they are skipped and say
//! so. Under CI as root they must run.

#[path = "containers/docker.rs"]
mod docker;
#[path = "containers/k8s.rs"]
mod k8s;

use std::fs;
use std::path::Path;
use std::process::Output;

use docker::{Docker, available, available_installed};
use tests::{Sandbox, output, parse_json, preload_lib, roar_bin};

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(crate) fn streams(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".rwt"))
                .count()
        })
        .unwrap_or(0)
}

/// `docker run` of `script` in `image` with the library mounted, with and
/// without the two variables: output and status must be byte-identical,
/// and the preloaded one must have written its trace.
fn preload_changes_nothing(docker: &Docker, image: &str) {
    let traces = tempfile::TempDir::new().unwrap();
    let lib = format!("{}:/roar/libroar_preload.so:ro", preload_lib().display());
    let vol = format!("{}:/traces", traces.path().display());
    // stdout, stderr, a child, a file read and an exit status of 3.
    let script = "echo out; echo err >&2; ls / > /tmp/ls; cat /tmp/ls | cat >&2; exit 3";
    let plain: Output = docker.run(&["-v", &lib, "-v", &vol, image, "/bin/sh", "-c", script]);
    let preloaded: Output = docker.run(&[
        "-v",
        &lib,
        "-v",
        &vol,
        "-e",
        "LD_PRELOAD=/roar/libroar_preload.so",
        "-e",
        "ROAR_TRACE_DIR=/traces",
        image,
        "/bin/sh",
        "-c",
        script,
    ]);
    assert_eq!(plain.status.code(), Some(3), "{image}: {plain:?}");
    assert_eq!(
        preloaded.status.code(),
        plain.status.code(),
        "{image}: {preloaded:?}"
    );
    assert_eq!(
        text(&preloaded.stdout),
        text(&plain.stdout),
        "{image}: stdout"
    );
    assert_eq!(
        text(&preloaded.stderr),
        text(&plain.stderr),
        "{image}: stderr"
    );
    assert!(streams(traces.path()) >= 3, "{image}: no trace written");
}

#[test]
fn preload_in_bullseye_bookworm_and_without_libgcc_changes_nothing() {
    if available_installed().is_none() {
        return;
    }
    let docker = Docker::start();
    // In parallel: building the Debian images is most of this test's time.
    std::thread::scope(|s| {
        for name in ["bullseye", "bookworm", "nolibgcc"] {
            let docker = &docker;
            s.spawn(move || {
                let image = docker.image(name);
                preload_changes_nothing(docker, &image);
            });
        }
    });
}

#[test]
fn static_roar_records_under_ptrace_in_busybox() {
    if available_installed().is_none() {
        return;
    }
    let docker = Docker::start();
    let image = docker.image("busybox");
    let work = tempfile::TempDir::new().unwrap();
    fs::write(work.path().join("in.txt"), "busybox\n").unwrap();
    let bin = format!("{}:/roar/roar:ro", roar_bin().display());
    let vol = format!("{}:/work", work.path().display());
    let out = docker.run(&[
        "-v",
        &bin,
        "-v",
        &vol,
        "-w",
        "/work",
        "-e",
        "ROAR_DB=/work/roar.db",
        &image,
        "/bin/sh",
        "-c",
        "/roar/roar run --backend ptrace -- sh -c 'cat in.txt > out.txt' && /roar/roar show --json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let run = parse_json(&text(&out.stdout));
    assert_eq!(run["backend"], "ptrace", "{run:#}");
    assert_eq!(run["complete"], true, "{run:#}");
    assert!(run["processes"].to_string().contains("in.txt"), "{run:#}");
    assert!(
        run["inputs"].to_string().contains("/work/in.txt"),
        "{run:#}"
    );
    assert!(
        run["outputs"].to_string().contains("/work/out.txt"),
        "{run:#}"
    );
}

/// The pod layout: an init container copies roar and the library from a
/// roar image into a shared volume; the workload container gets only the
/// two variables; then `roar ingest` runs as pid 1 of a container of its own
/// (the next container: the same pid-namespace id, the same pid 1).
#[test]
fn pod_layout_records_and_ingest_as_pid_1_finds_the_workload() {
    if available_installed().is_none() {
        return;
    }
    let docker = Docker::start();
    let base = docker.image("bullseye");
    // The roar image: the static binary and the library, nothing else.
    let ctx = tempfile::TempDir::new().unwrap();
    fs::copy(roar_bin(), ctx.path().join("roar")).unwrap();
    fs::copy(preload_lib(), ctx.path().join("libroar_preload.so")).unwrap();
    fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY roar /usr/local/bin/roar\nCOPY libroar_preload.so /usr/local/lib/roar/libroar_preload.so\n",
    )
    .unwrap();
    let built = output(
        docker
            .cmd()
            .args(["build", "-q", "-t", "roar-test"])
            .arg(ctx.path()),
    );
    assert!(built.status.success(), "{built:?}");

    let shared = tempfile::TempDir::new().unwrap();
    let tools = shared.path().join("roar");
    let traces = shared.path().join("traces");
    let data = shared.path().join("data");
    for d in [&tools, &traces, &data] {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(data.join("in.csv"), "a,b\n1,2\n").unwrap();
    let tools_vol = format!("{}:/opt/roar", tools.display());
    let traces_vol = format!("{}:/traces", traces.display());
    let data_vol = format!("{}:/data", data.display());

    // init: `docker create` + `cp` stands in for an init container copying
    // out of the roar image (it has no shell).
    let id = text(&output(docker.cmd().args(["create", "roar-test", "/x"])).stdout)
        .trim()
        .to_string();
    for (from, to) in [
        ("/usr/local/bin/roar", tools.join("roar")),
        (
            "/usr/local/lib/roar/libroar_preload.so",
            tools.join("libroar_preload.so"),
        ),
    ] {
        let cp = output(docker.cmd().args(["cp", &format!("{id}:{from}")]).arg(&to));
        assert!(cp.status.success(), "{cp:?}");
    }
    let _ = output(docker.cmd().args(["rm", &id]));

    let work = docker.run(&[
        "-v",
        &tools_vol,
        "-v",
        &traces_vol,
        "-v",
        &data_vol,
        "-e",
        "LD_PRELOAD=/opt/roar/libroar_preload.so",
        "-e",
        "ROAR_TRACE_DIR=/traces",
        &base,
        "/bin/sh",
        "-c",
        "cat /data/in.csv > /data/out.csv; echo done",
    ]);
    assert!(work.status.success(), "{work:?}");
    assert_eq!(text(&work.stdout), "done\n");
    assert!(streams(&traces) >= 2, "the workload wrote no trace");

    let ingest = docker.run(&[
        "-v",
        &tools_vol,
        "-v",
        &traces_vol,
        "-v",
        &data_vol,
        "-e",
        "ROAR_DB=/data/roar.db",
        "-e",
        "ROAR_TRACE_DIR=/traces",
        &base,
        "/opt/roar/roar",
        "ingest",
        "--settle",
        "0",
        "/traces",
    ]);
    assert!(ingest.status.success(), "{ingest:?}");
    let stderr = text(&ingest.stderr);
    assert!(
        !stderr.contains("still running"),
        "ingest took the workload for its own: {stderr}"
    );
    let show = docker.run(&[
        "-v",
        &tools_vol,
        "-v",
        &data_vol,
        "-e",
        "ROAR_DB=/data/roar.db",
        &base,
        "/opt/roar/roar",
        "show",
        "--json",
    ]);
    assert!(show.status.success(), "{show:?}");
    let run = parse_json(&text(&show.stdout));
    assert!(
        run["inputs"].to_string().contains("/data/in.csv"),
        "{run:#}"
    );
    assert!(
        run["outputs"].to_string().contains("/data/out.csv"),
        "{run:#}"
    );
}

/// `roar run -- docker exec ...`: the work runs under dockerd, not in the
/// traced tree. A real exec into a running container, under every backend
/// `auto` may pick; and client shapes without a daemon.
#[test]
fn docker_exec_is_warned_and_the_run_incomplete() {
    let sb = Sandbox::new();
    // A stand-in client: the check is on the command, whatever it does.
    sb.write("bin/kubectl", "#!/bin/sh\nexit 0\n");
    let kubectl = sb.join("bin/kubectl");
    let _ = output(std::process::Command::new("chmod").arg("+x").arg(&kubectl));
    let out = output(
        sb.roar()
            .args(["run", "--"])
            .arg(&kubectl)
            .args(["-n", "ml", "exec", "pod", "--", "true"]),
    );
    assert!(out.status.success(), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("INCOMPLETE") && stderr.contains("kubectl exec"),
        "{stderr}"
    );
    let run = sb.show_json("latest");
    assert_eq!(run["complete"], false, "{run:#}");

    if available().is_none() {
        return;
    }
    let docker = Docker::start();
    let image = docker.image("busybox");
    let up = output(docker.cmd().args([
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "roar-c",
        &image,
        "sleep",
        "60",
    ]));
    assert!(up.status.success(), "{up:?}");
    let out = output(sb.roar().env("DOCKER_HOST", docker.host()).args([
        "run",
        "--",
        "/usr/bin/docker",
        "exec",
        "roar-c",
        "sh",
        "-c",
        "echo inside",
    ]));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(text(&out.stdout), "inside\n");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("INCOMPLETE") && stderr.contains("docker exec"),
        "{stderr}"
    );
    assert!(
        stderr.contains("outside the traced process tree"),
        "{stderr}"
    );
    let run = sb.show_json("latest");
    assert_eq!(run["complete"], false, "{run:#}");
    let _ = output(docker.cmd().args(["rm", "-f", "roar-c"]));
}
