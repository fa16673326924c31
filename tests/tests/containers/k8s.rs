//! `roar k8s pod-template`: its output checked against the Kubernetes
//! schemas (kubernetes-validate, installed by scripts/deps.sh), and the pod
//! it describes run in docker: the init container's copy from the roar
//! image built from `examples/kubernetes/Dockerfile.roar`, the user
//! container in another image under a Go parent like OSMO's `osmo_exec`,
//! then the ingest Job as pid 1 of the roar image; and the same traces
//! ingested on the host, where the container's paths are not all visible.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use tests::{output, parse_json, preload_lib, roar_bin, roar_command, target_dir};

use super::docker::{Docker, available_installed};
use super::{streams, text};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template(args: &[&str]) -> String {
    template_cmd(&[&["k8s", "pod-template"], args].concat())
}

/// roar's stdout for `args`, which must succeed.
fn template_cmd(args: &[&str]) -> String {
    let out = output(roar_command(&std::env::temp_dir()).args(args));
    assert!(out.status.success(), "{out:?}");
    text(&out.stdout)
}

/// `yaml` read by PyYAML (kubernetes-validate's, else python3's), as JSON.
fn yaml_to_json(yaml: &str) -> Value {
    let venv = workspace().join(".venv-k8s/bin/python");
    let python = if venv.is_file() {
        venv
    } else {
        PathBuf::from("python3")
    };
    let out = output(
        Command::new(python)
            .args([
                "-c",
                "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)",
            ])
            .arg(write_tmp("t.yaml", yaml).1),
    );
    assert!(out.status.success(), "PyYAML: {out:?}\n{yaml}");
    parse_json(&text(&out.stdout))
}

fn write_tmp(name: &str, content: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::TempDir::new().unwrap();
    let p = d.path().join(name);
    fs::write(&p, content).unwrap();
    (d, p)
}

fn validator() -> Option<PathBuf> {
    let v = workspace().join(".venv-k8s/bin/kubernetes-validate");
    if v.is_file() {
        return Some(v);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: scripts/deps.sh installs it",
        v.display()
    );
    eprintln!("skipped the schema check: run scripts/deps.sh (kubernetes-validate in .venv-k8s)");
    None
}

/// `kubernetes-validate --strict` (unknown fields are errors) on `doc`.
fn validate(v: &Path, doc: &Value) {
    let (_d, p) = write_tmp("doc.json", &doc.to_string());
    let out = output(Command::new(v).arg("--strict").arg(&p));
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && said.contains("passed"),
        "{said}\n{doc:#}"
    );
}

/// What every recorded pod spec must hold: the user container with only
/// the two variables (no command, no PATH), the init container copying
/// from where Dockerfile.roar puts roar and the library.
fn check_spec(spec: &Value, user_name: &str) {
    let user = &spec["containers"][0];
    assert_eq!(user["name"], user_name, "{spec:#}");
    let names: Vec<&str> = user["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["LD_PRELOAD", "ROAR_TRACE_DIR"], "{spec:#}");
    for key in ["command", "args", "envFrom"] {
        assert!(user.get(key).is_none(), "{key} in {user:#}");
    }
    let dockerfile =
        fs::read_to_string(workspace().join("examples/kubernetes/Dockerfile.roar")).unwrap();
    let init = &spec["initContainers"][0];
    let cmd: Vec<&str> = init["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(cmd[0], "cp", "{init:#}");
    for from in &cmd[1..cmd.len() - 1] {
        assert!(
            dockerfile.contains(&format!(" {from}\n")),
            "Dockerfile.roar puts nothing at {from}"
        );
    }
}

#[test]
fn pod_template_is_valid_kubernetes_in_json_and_yaml() {
    // Completions and the man page come from clap: the command is in both.
    let bash = template_cmd(&["completions", "bash"]);
    assert!(bash.contains("pod-template") && bash.contains("--roar-image"));
    assert!(template_cmd(&["man"]).contains("roar\\-k8s(1)"));
    let v = validator();
    for osmo in [false, true] {
        let flag: &[&str] = if osmo { &["--osmo"] } else { &[] };
        let json = parse_json(&template(&[flag, &["--format", "json"]].concat()));
        let yaml = template(&[flag, &["--format", "yaml", "--roar-image", "r:1"]].concat());
        let from_yaml = yaml_to_json(&yaml);
        let mut expect = json.clone();
        replace_image(&mut expect, "roar:latest", "r:1");
        assert_eq!(from_yaml, expect, "YAML and JSON differ:\n{yaml}");
        if osmo {
            let spec = &json["roar"]["spec"];
            check_spec(spec, "{{USER_CONTAINER_NAME}}");
            if let Some(v) = &v {
                let pod = json!({"apiVersion": "v1", "kind": "Pod",
                                 "metadata": {"name": "osmo-task"}, "spec": spec});
                validate(v, &pod);
            }
            continue;
        }
        assert_eq!(json["kind"], "List");
        let items = json["items"].as_array().unwrap();
        assert_eq!(items[0]["kind"], "PodTemplate");
        check_spec(&items[0]["template"]["spec"], "main");
        assert_eq!(items[1]["kind"], "Job");
        let ingest = items[1]["spec"]["template"]["spec"]["containers"][0]["command"].to_string();
        assert!(ingest.contains("\"ingest\""), "{ingest}");
        if let Some(v) = &v {
            for item in items {
                validate(v, item);
            }
        }
    }
}

fn contains_all(list: &Value, of: &Value) -> bool {
    let list = list.as_array().unwrap();
    of.as_array().unwrap().iter().all(|x| list.contains(x))
}

/// examples/kubernetes holds the template's pod and Job, filled in with a
/// workload and its data volume: the same recording parts, schema-valid.
#[test]
fn the_kubernetes_examples_are_the_template_filled_in() {
    let t = parse_json(&template(&["--format", "json"]));
    let spec = &t["items"][0]["template"]["spec"];
    let job = &t["items"][1];
    let dir = workspace().join("examples/kubernetes");
    let pod = yaml_to_json(&fs::read_to_string(dir.join("pod.yaml")).unwrap());
    let example_job = yaml_to_json(&fs::read_to_string(dir.join("ingest-job.yaml")).unwrap());
    assert_eq!(pod["spec"]["initContainers"], spec["initContainers"]);
    let (user, want) = (&pod["spec"]["containers"][0], &spec["containers"][0]);
    assert_eq!(user["env"], want["env"]);
    assert!(
        contains_all(&user["volumeMounts"], &want["volumeMounts"]),
        "{user:#}"
    );
    assert!(contains_all(&pod["spec"]["volumes"], &spec["volumes"]));
    let (c, want) = (
        &example_job["spec"]["template"]["spec"]["containers"][0],
        &job["spec"]["template"]["spec"]["containers"][0],
    );
    assert_eq!(
        (&c["image"], &c["command"]),
        (&want["image"], &want["command"])
    );
    assert!(contains_all(&c["volumeMounts"], &want["volumeMounts"]));
    if let Some(v) = validator() {
        validate(&v, &pod);
        validate(&v, &example_job);
    }
}

fn replace_image(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "image" && x == from {
                    *x = json!(to);
                } else {
                    replace_image(x, from, to);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| replace_image(x, from, to)),
        _ => {}
    }
}

/// `docker run` arguments for `c`'s env and volume mounts, each volume a
/// host directory.
fn container_args(c: &Value, volumes: &BTreeMap<&str, PathBuf>) -> Vec<String> {
    let mut args = Vec::new();
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        let host = &volumes[m["name"].as_str().unwrap()];
        let ro = if m["readOnly"] == true { ":ro" } else { "" };
        args.push("-v".into());
        args.push(format!(
            "{}:{}{ro}",
            host.display(),
            m["mountPath"].as_str().unwrap()
        ));
    }
    for e in c["env"].as_array().into_iter().flatten() {
        args.push("-e".into());
        args.push(format!(
            "{}={}",
            e["name"].as_str().unwrap(),
            e["value"].as_str().unwrap()
        ));
    }
    args
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// `examples/kubernetes/Dockerfile.roar` built on the busybox image, from
/// a context laid out as `PREFIX=DIR ./install.sh` lays out DIR.
fn build_roar_image(docker: &Docker, tag: &str) {
    let base = docker.image("busybox");
    let ctx = tempfile::TempDir::new().unwrap();
    fs::create_dir_all(ctx.path().join("bin")).unwrap();
    fs::create_dir_all(ctx.path().join("lib/roar")).unwrap();
    fs::copy(roar_bin(), ctx.path().join("bin/roar")).unwrap();
    fs::copy(
        preload_lib(),
        ctx.path().join("lib/roar/libroar_preload.so"),
    )
    .unwrap();
    let built = output(
        docker
            .cmd()
            .args([
                "build",
                "-q",
                "--build-arg",
                &format!("BASE={base}"),
                "-t",
                tag,
                "-f",
            ])
            .arg(workspace().join("examples/kubernetes/Dockerfile.roar"))
            .arg(ctx.path()),
    );
    assert!(
        built.status.success(),
        "docker build Dockerfile.roar: {built:?}"
    );
}

/// The Go parent, built from source (golang-go from scripts/deps.sh).
fn osmo_exec(dir: &Path) -> PathBuf {
    let out_bin = dir.join("osmo_exec");
    let cache = target_dir().join("go-cache");
    let out = output(
        Command::new("go")
            .args(["build", "-o"])
            .arg(&out_bin)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/containers/osmo_exec.go"))
            .env("CGO_ENABLED", "0")
            .env("GOCACHE", &cache)
            .env("GOPATH", cache.join("gopath"))
            .env("GOFLAGS", "-mod=mod"),
    );
    assert!(out.status.success(), "go build osmo_exec.go: {out:?}");
    out_bin
}

fn by_path<'a>(list: &'a Value, path: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|f| f["path"] == path)
}

/// The pod `roar k8s pod-template` describes, in docker. The workload:
/// reads and writes a data volume mounted at the same path on the host,
/// writes and reads a container-only directory (/scratch), reads a mount
/// the host does not have at that path (/pod-only), and reads a file
/// at a path where the host has another file (shadow/, a different mount in
/// the container).
#[test]
fn the_templates_pod_records_in_docker_and_ingests_as_pid_1_and_on_the_host() {
    if available_installed().is_none() {
        return;
    }
    let docker = Docker::start();
    build_roar_image(&docker, "roar-k8s-test");
    let user_image = docker.image("bullseye");
    let t = parse_json(&template(&[
        "--format",
        "json",
        "--roar-image",
        "roar-k8s-test",
    ]));
    let spec = &t["items"][0]["template"]["spec"];
    let job = &t["items"][1]["spec"]["template"]["spec"]["containers"][0];

    let shared = tempfile::TempDir::new().unwrap();
    let root = shared.path();
    let volumes: BTreeMap<&str, PathBuf> = [
        ("roar-lib", root.join("lib")),
        ("roar-traces", root.join("traces")),
    ]
    .into();
    let (data, shadow, osmo) = (root.join("data"), root.join("shadow"), root.join("osmo"));
    for d in volumes
        .values()
        .chain([&data, &shadow, &osmo, &root.join("shadow-in-pod")])
    {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(data.join("in.csv"), "a,b\n1,2\n").unwrap();
    fs::create_dir_all(root.join("pod-only")).unwrap();
    fs::write(root.join("pod-only/in.txt"), "only in the pod\n").unwrap();
    fs::write(root.join("shadow-in-pod/model.txt"), "in the pod\n").unwrap();
    fs::write(shadow.join("model.txt"), "on the host, another file\n").unwrap();
    osmo_exec(&osmo);

    // The init container, as the template says, in the roar image.
    let init = &spec["initContainers"][0];
    let mut args = container_args(init, &volumes);
    args.push(init["image"].as_str().unwrap().into());
    args.extend(strings(&init["command"]));
    let out = docker.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "init container: {out:?}");
    assert!(volumes["roar-lib"].join("libroar_preload.so").is_file());
    assert!(volumes["roar-lib"].join("roar").is_file());

    // The user container: another image, only the template's env, under
    // the Go parent.
    let d = data.display();
    let script = format!(
        "cat {d}/in.csv > {d}/out.csv; mkdir /scratch; echo s > /scratch/s.txt; \
         cat /scratch/s.txt > {d}/s-copy.txt; cat {}/model.txt > {d}/model-copy.txt; \
         cat /pod-only/in.txt > {d}/pod-copy.txt; echo done",
        shadow.display()
    );
    let mut args = container_args(&spec["containers"][0], &volumes);
    let pod_only = Path::new("/pod-only").to_path_buf();
    let mounts = [
        (&data, &data),
        (&root.join("shadow-in-pod"), &shadow),
        (&root.join("pod-only"), &pod_only),
    ];
    for (host, inside) in mounts {
        args.extend([
            "-v".into(),
            format!("{}:{}", host.display(), inside.display()),
        ]);
    }
    args.extend(["-v".into(), format!("{}:/osmo:ro", osmo.display())]);
    args.extend([
        user_image,
        "/osmo/osmo_exec".into(),
        "sh".into(),
        "-c".into(),
        script,
    ]);
    let out = docker.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "user container: {out:?}");
    assert_eq!(text(&out.stdout), "done\n");
    assert!(streams(&volumes["roar-traces"]) >= 4, "no trace written");

    // The ingest Job: pid 1 of the roar image, the data at the same path.
    let mut args = container_args(job, &volumes);
    args.extend(["-v".into(), format!("{d}:{d}")]);
    args.push("roar-k8s-test".into());
    args.extend(strings(&job["command"]));
    let out = docker.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "ingest job: {out:?}");
    assert!(!text(&out.stderr).contains("still running"), "{out:?}");
    let store = volumes["roar-traces"].join(".roar/roar.db");
    let run = show(&store);
    let hash_of = |list: &Value, p: &Path| -> Value {
        by_path(list, &p.display().to_string()).map_or(Value::Null, |f| f["hash"].clone())
    };
    let in_hash = hash_of(&run["inputs"], &data.join("in.csv"));
    assert!(
        in_hash.as_str().is_some_and(|h| h.starts_with("blake3:")),
        "{run:#}"
    );
    assert_eq!(
        hash_of(&run["outputs"], &data.join("out.csv")),
        in_hash,
        "{run:#}"
    );
    assert!(run["complete"] == true, "{run:#}");

    // The same traces ingested on the host: /scratch and /pod-only are not
    // here, and the host's shadow/model.txt is not the file the pod read.
    let host_db = root.join("host.db");
    let out = output(
        roar_command(root)
            .args(["--db"])
            .arg(&host_db)
            .args(["ingest", "--settle", "0"])
            .arg(&volumes["roar-traces"]),
    );
    assert!(out.status.success(), "{out:?}");
    let run = show(&host_db);
    let warnings = run["warnings"].to_string();
    for (list, path) in [
        ("inputs", "/pod-only/in.txt".to_string()),
        ("outputs", "/scratch/s.txt".to_string()),
        ("inputs", shadow.join("model.txt").display().to_string()),
    ] {
        let f =
            by_path(&run[list], &path).unwrap_or_else(|| panic!("{path} not in {list}: {run:#}"));
        assert_eq!(f["hash"], Value::Null, "{path} was hashed here: {run:#}");
        assert!(warnings.contains(&path), "{path} not named: {warnings}");
    }
    assert!(warnings.contains("not visible here"), "{warnings}");
    assert!(!warnings.contains("changed during the run"), "{warnings}");
    assert_eq!(
        hash_of(&run["inputs"], &data.join("in.csv")),
        in_hash,
        "{run:#}"
    );
    let copy = hash_of(&run["outputs"], &data.join("s-copy.txt"));
    assert!(copy.is_string(), "{run:#}");
}

fn show(db: &Path) -> Value {
    let out = output(
        roar_command(&std::env::temp_dir())
            .arg("--db")
            .arg(db)
            .args(["show", "--json"]),
    );
    assert!(out.status.success(), "{out:?}");
    parse_json(&text(&out.stdout))
}
