//! Commands whose work happens somewhere no backend can follow: a container
//! client (`docker exec`, `kubectl exec`, ...) asks a daemon (dockerd and
//! containerd's shims, a remote podman service, the kubelet) to start the
//! process, so it is not in the traced process tree; roar would see the
//! client read its config and record a complete run with nothing in it.
//! The record step asks [`remote_work`] about the command and, when it
//! says so, the run is marked incomplete with the reason.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

/// Why `command`'s work would run outside the traced tree, or None.
pub fn remote_work(command: &[OsString]) -> Option<String> {
    let args: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
    let args = skip_wrappers(&args);
    let (prog, rest) = args.split_first()?;
    let name = prog.rsplit(|&b| b == b'/').next().unwrap_or(prog);
    let name = String::from_utf8_lossy(name).into_owned();
    let (subs, daemon): (&[&str], &str) = match name.as_str() {
        "docker" | "nerdctl" => (
            &["exec", "run", "start", "attach", "compose", "container"],
            "the container daemon",
        ),
        "podman-remote" => (
            &["exec", "run", "start", "attach"],
            "the remote podman service",
        ),
        // Local podman starts containers as its own descendants (conmon);
        // only --remote hands them to a service.
        "podman" if rest.iter().any(|a| *a == b"--remote" || *a == b"-r") => (
            &["exec", "run", "start", "attach"],
            "the remote podman service",
        ),
        "kubectl" | "oc" => (
            &["exec", "run", "attach", "debug", "cp"],
            "the kubelet on the pod's node",
        ),
        _ => return None,
    };
    let sub = subcommand(rest, subs)?;
    Some(format!(
        "`{name} {sub}` runs the work under {daemon}, outside the traced process tree: \
         only the client was recorded. Record inside the container instead (the preload \
         library with LD_PRELOAD and ROAR_TRACE_DIR, then roar ingest; see the README's \
         \"Recording a pod\"; an OpenJD container template is planned)"
    ))
}

/// The command behind `sudo`, `env`, `nice`, `nohup`, `timeout` and `time`.
fn skip_wrappers<'a>(mut args: &'a [&'a [u8]]) -> &'a [&'a [u8]] {
    loop {
        let Some((first, rest)) = args.split_first() else {
            return args;
        };
        let name = first.rsplit(|&b| b == b'/').next().unwrap_or(first);
        let rest = match name {
            b"sudo" | b"nice" | b"nohup" | b"time" | b"env" => skip_options(rest, name == b"env"),
            b"timeout" => skip_options(rest, false).get(1..).unwrap_or(&[]),
            _ => return args,
        };
        args = rest;
    }
}

/// Drops leading `-x` options (and `NAME=value` for `env`). Options that
/// take a separate value are rare enough in front of docker to ignore.
fn skip_options<'a>(args: &'a [&'a [u8]], assignments: bool) -> &'a [&'a [u8]] {
    let n = args
        .iter()
        .take_while(|a| a.starts_with(b"-") || (assignments && a.contains(&b'=')))
        .count();
    &args[n..]
}

/// The first of `subs` that stands where the subcommand would: after the
/// global options (and their values), before `--`.
fn subcommand<'a>(rest: &[&[u8]], subs: &[&'a str]) -> Option<&'a str> {
    let mut after_option = false;
    for a in rest.iter().take_while(|a| **a != b"--") {
        if a.starts_with(b"-") {
            after_option = !a.contains(&b'=');
            continue;
        }
        if let Some(s) = subs.iter().find(|s| s.as_bytes() == *a) {
            return Some(s);
        }
        if !after_option {
            return None;
        }
        // The value of the option before it (`-H unix:///x`, `-n ns`).
        after_option = false;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(cmd: &str) -> Option<String> {
        let args: Vec<OsString> = cmd.split(' ').map(OsString::from).collect();
        remote_work(&args)
    }

    #[test]
    fn container_clients_are_named() {
        for (cmd, what) in [
            ("docker exec c python3 train.py", "docker exec"),
            (
                "/usr/bin/docker -H unix:///d.sock exec -i c sh",
                "docker exec",
            ),
            ("docker run --rm img true", "docker run"),
            ("nerdctl exec c ls", "nerdctl exec"),
            ("podman --remote exec c ls", "podman exec"),
            ("podman-remote exec c ls", "podman-remote exec"),
            ("kubectl -n ml exec pod -- python3 x.py", "kubectl exec"),
            ("sudo -E env A=1 docker exec c ls", "docker exec"),
            ("timeout 10 kubectl exec p -- ls", "kubectl exec"),
        ] {
            let w = check(cmd).unwrap_or_else(|| panic!("{cmd}: not warned"));
            assert!(w.contains(what), "{cmd}: {w}");
            assert!(w.contains("outside the traced process tree"), "{w}");
        }
    }

    #[test]
    fn local_work_is_not_warned() {
        for cmd in [
            "docker ps",
            "docker images",
            "docker build .",
            "podman exec c ls",
            "kubectl get pods",
            "python3 docker exec",
            "sh -c true",
            "env",
        ] {
            assert_eq!(check(cmd), None, "{cmd}");
        }
    }
}
