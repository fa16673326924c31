//! Kubernetes: the pod template that records a pod's user container with
//! the standalone preload library, as data (`roar k8s pod-template` prints
//! it as JSON or YAML).
//!
//! The layout, the same in both shapes:
//! * an init container from the roar image (`--roar-image`, built from
//!   `examples/kubernetes/Dockerfile.roar`: the static `roar` and the
//!   library on busybox) copies both into an `emptyDir` at [`LIB_DIR`];
//! * the user container gets exactly two variables, `LD_PRELOAD` and
//!   `ROAR_TRACE_DIR`, that `emptyDir` read-only and the trace volume at
//!   [`TRACE_DIR`] (a PersistentVolumeClaim shared by every recorded pod):
//!   nothing is installed at run time and PATH is left alone;
//! * a Job (`roar-ingest`) runs `roar ingest` in the roar image as its
//!   pid 1 on the trace volume and records the runs in a store on it.
//!
//! Without `--osmo` the output is a `v1 List` of a `PodTemplate` (the user
//! container is a placeholder to replace or merge by name) and the ingest
//! Job. With `--osmo` it is one entry of OSMO's `POD_TEMPLATE` config:
//! `{"roar": {"spec": ...}}`, whose container is named
//! `{{USER_CONTAINER_NAME}}` because OSMO merges containers by name.

use serde_json::{Value, json};

/// Where the init container puts `roar` and the library (an `emptyDir`).
pub const LIB_DIR: &str = "/roar/lib";
/// Where traces are written (the shared trace volume).
pub const TRACE_DIR: &str = "/roar/traces";
/// The store the ingest Job records into, on the trace volume.
pub const STORE: &str = "/roar/traces/.roar/roar.db";
/// The claim every recorded pod and the ingest Job mount at [`TRACE_DIR`].
pub const TRACE_CLAIM: &str = "roar-traces";
/// Paths inside the roar image (Dockerfile.roar).
pub const IMAGE_ROAR: &str = "/usr/local/bin/roar";
pub const IMAGE_LIB: &str = "/usr/local/lib/roar/libroar_preload.so";
/// The user container's name in OSMO's templates.
pub const OSMO_USER_CONTAINER: &str = "{{USER_CONTAINER_NAME}}";

const LIB_VOLUME: &str = "roar-lib";
const TRACE_VOLUME: &str = "roar-traces";

pub struct Options {
    /// Format OSMO's `POD_TEMPLATE` entry instead of a Kubernetes List.
    pub osmo: bool,
    /// The image holding roar and the library at [`IMAGE_ROAR`] and [`IMAGE_LIB`].
    pub roar_image: String,
}

/// The two variables, and only those, the user container gets.
pub fn user_env() -> Value {
    json!([
        {"name": "LD_PRELOAD", "value": format!("{LIB_DIR}/libroar_preload.so")},
        {"name": "ROAR_TRACE_DIR", "value": TRACE_DIR},
    ])
}

fn init_container(image: &str) -> Value {
    json!({
        "name": "roar-install",
        "image": image,
        "command": ["cp", IMAGE_ROAR, IMAGE_LIB, format!("{LIB_DIR}/")],
        "volumeMounts": [{"name": LIB_VOLUME, "mountPath": LIB_DIR}],
    })
}

fn user_container(name: &str, image: Option<&str>) -> Value {
    let mut c = json!({
        "name": name,
        "env": user_env(),
        "volumeMounts": [
            {"name": LIB_VOLUME, "mountPath": LIB_DIR, "readOnly": true},
            {"name": TRACE_VOLUME, "mountPath": TRACE_DIR},
        ],
    });
    if let Some(image) = image {
        c["image"] = json!(image);
    }
    c
}

fn volumes() -> Value {
    json!([
        {"name": LIB_VOLUME, "emptyDir": {}},
        {"name": TRACE_VOLUME, "persistentVolumeClaim": {"claimName": TRACE_CLAIM}},
    ])
}

/// The pod spec that records its user container `name`.
pub fn pod_spec(image: &str, name: &str, user_image: Option<&str>) -> Value {
    json!({
        "initContainers": [init_container(image)],
        "containers": [user_container(name, user_image)],
        "volumes": volumes(),
    })
}

/// The Job that turns every finished tree on the trace volume into a run.
/// Safe to run again (or as a CronJob): trees already recorded are skipped.
pub fn ingest_job(image: &str) -> Value {
    json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "roar-ingest"},
        "spec": {
            "backoffLimit": 2,
            "template": {"spec": {
                "restartPolicy": "OnFailure",
                "containers": [{
                    "name": "ingest",
                    "image": image,
                    "command": [IMAGE_ROAR, "ingest", "--db", STORE, TRACE_DIR],
                    "volumeMounts": [{"name": TRACE_VOLUME, "mountPath": TRACE_DIR}],
                }],
                "volumes": [
                    {"name": TRACE_VOLUME, "persistentVolumeClaim": {"claimName": TRACE_CLAIM}},
                ],
            }},
        },
    })
}

/// What `roar k8s pod-template` prints.
pub fn pod_template(opts: &Options) -> Value {
    let image = opts.roar_image.as_str();
    if opts.osmo {
        return json!({"roar": {"spec": pod_spec(image, OSMO_USER_CONTAINER, None)}});
    }
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "roar-recorded"},
                "template": {"spec": pod_spec(image, "main", Some("debian:bookworm-slim"))},
            },
            ingest_job(image),
        ],
    })
}

/// `value` as block-style YAML (a JSON value needs nothing more): strings
/// that could read as anything else are double-quoted JSON strings, which
/// YAML reads the same.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(m) if !m.is_empty() => map_yaml(m, 0, false, &mut out),
        Value::Array(a) if !a.is_empty() => list_yaml(a, 0, &mut out),
        v => {
            out.push_str(&scalar(v));
            out.push('\n');
        }
    }
    out
}

/// `first_inline`: the map is a list item, its first key follows the "- ".
fn map_yaml(
    m: &serde_json::Map<String, Value>,
    indent: usize,
    first_inline: bool,
    out: &mut String,
) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 || !first_inline {
            out.push_str(&" ".repeat(indent));
        }
        out.push_str(&string(k));
        out.push(':');
        nested(v, indent + 2, out);
    }
}

fn list_yaml(a: &[Value], indent: usize, out: &mut String) {
    for v in a {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match v {
            Value::Object(m) if !m.is_empty() => {
                out.push(' ');
                map_yaml(m, indent + 2, true, out);
            }
            _ => nested(v, indent + 2, out),
        }
    }
}

/// A value after "key:" or "-": a scalar on the same line, a collection below.
fn nested(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            map_yaml(m, indent, false, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            list_yaml(a, indent, out);
        }
        v => {
            out.push(' ');
            out.push_str(&scalar(v));
            out.push('\n');
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => string(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
        v => v.to_string(),
    }
}

/// Plain when YAML cannot read it as anything but this string.
fn string(s: &str) -> String {
    let first_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '/' || c == '_');
    let chars_ok = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/_.-:".contains(c));
    let special = matches!(
        s.to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "null"
    );
    if first_ok && chars_ok && !special && !s.ends_with(':') {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_quotes_what_would_read_otherwise() {
        let v = json!({"a": "yes", "b": "{{X}}", "c": "roar:latest", "d": "1", "e": [], "f": {},
                       "g": [{"h": true, "i": [1, "x: y"]}], "j": null});
        assert_eq!(
            to_yaml(&v),
            "a: \"yes\"\nb: \"{{X}}\"\nc: roar:latest\nd: \"1\"\ne: []\nf: {}\ng:\n  - h: true\n    i:\n      - 1\n      - \"x: y\"\nj: null\n"
        );
    }

    #[test]
    fn the_user_container_gets_only_the_two_variables() {
        for osmo in [false, true] {
            let t = pod_template(&Options {
                osmo,
                roar_image: "r:1".into(),
            });
            let spec = if osmo {
                &t["roar"]["spec"]
            } else {
                &t["items"][0]["template"]["spec"]
            };
            let user = &spec["containers"][0];
            assert_eq!(user["env"], user_env());
            assert!(user.get("command").is_none() && user.get("args").is_none());
            assert_eq!(
                user["name"],
                if osmo { OSMO_USER_CONTAINER } else { "main" }
            );
            assert_eq!(spec["initContainers"][0]["image"], "r:1");
        }
    }
}
