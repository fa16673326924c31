//! Asking questions of the record: `lineage`, `status`, `dag`, `export` and `reproduce` on a
//! real three-step pipeline (prepare, train, evaluate) recorded by `roar run`, with a source
//! edited in the middle.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;
use tests::{Sandbox, check, output, parse_json};

const BACKEND: &str = "preload";

const PREPARE: &str = "\
rows = open('data/raw.csv').read().splitlines()[1:]
with open('data/clean.csv', 'w') as f:
    f.write('\\n'.join(r.replace(',', ' ') for r in rows) + '\\n')
";
const TRAIN_V1: &str = "\
SCALE = 1
nums = [int(x) for x in open('data/clean.csv').read().split()]
with open('model.bin', 'w') as f:
    f.write('weights=%d\\n' % (sum(nums) * SCALE))
";
const TRAIN_V2: &str = "\
SCALE = 2
nums = [int(x) for x in open('data/clean.csv').read().split()]
with open('model.bin', 'w') as f:
    f.write('weights=%d\\n' % (sum(nums) * SCALE))
";
const EVALUATE: &str = "\
model = open('model.bin').read().strip()
lines = len(open('data/clean.csv').read().splitlines())
with open('metrics.json', 'w') as f:
    f.write('{\"model\": \"%s\", \"rows\": %d}\\n' % (model, lines))
";

struct Pipeline {
    sb: Sandbox,
    commit: String,
}

impl Pipeline {
    /// Sources committed to git, nothing run yet.
    fn new() -> Pipeline {
        let sb = Sandbox::new();
        sb.write("data/raw.csv", "a,b\n1,2\n3,4\n");
        sb.write("prepare.py", PREPARE);
        sb.write("train.py", TRAIN_V1);
        sb.write("evaluate.py", EVALUATE);
        sb.git(&["add", "-A"]);
        sb.git(&["commit", "-q", "-m", "pipeline"]);
        let commit = sb.git(&["rev-parse", "HEAD"]);
        Pipeline { sb, commit }
    }

    fn step(&self, script: &str) -> i64 {
        let out = self.sb.run(BACKEND, &["python3", script]);
        assert!(
            out.status.success(),
            "roar run python3 {script} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.sb.show_json("latest")["id"].as_i64().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = check(self.sb.roar().args(args));
        parse_json(&String::from_utf8_lossy(&out))
    }

    fn text(&self, args: &[&str]) -> String {
        String::from_utf8(check(self.sb.roar().args(args))).unwrap()
    }

    fn abs(&self, rel: &str) -> String {
        self.sb.join(rel).to_string_lossy().into_owned()
    }
}

/// Runs prepare, train, evaluate; edits train.py; runs train and evaluate again.
/// Returns the pipeline and the ids [prepare, train1, eval1, train2, eval2].
fn edited_pipeline() -> (Pipeline, [i64; 5]) {
    let p = Pipeline::new();
    let prep = p.step("prepare.py");
    let train1 = p.step("train.py");
    let eval1 = p.step("evaluate.py");
    p.sb.write("train.py", TRAIN_V2);
    let train2 = p.step("train.py");
    let eval2 = p.step("evaluate.py");
    (p, [prep, train1, eval1, train2, eval2])
}

fn blake3_of(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    format!("blake3:{}", blake3::hash(&bytes).to_hex())
}

fn stale_ids(status: &Value) -> Vec<i64> {
    status["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["stale"] == true)
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

fn reasons_of(status: &Value, id: i64) -> Vec<(String, String)> {
    let run = status["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("run {id} not in status: {status:#}"));
    run["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_owned(),
                r["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn status_follows_an_edited_source_downstream_and_forgets_superseded_runs() {
    let p = Pipeline::new();
    let prep = p.step("prepare.py");
    let train1 = p.step("train.py");
    let eval1 = p.step("evaluate.py");

    let st = p.json(&["status", "--json"]);
    assert_eq!(stale_ids(&st), Vec::<i64>::new(), "{st:#}");
    assert!(p.text(&["status"]).starts_with("up to date"));

    // Code edited in the middle: train is stale because of it, evaluate through train.
    p.sb.write("train.py", TRAIN_V2);
    let st = p.json(&["status", "--json"]);
    assert_eq!(stale_ids(&st), vec![train1, eval1], "{st:#}");
    assert_eq!(
        reasons_of(&st, train1),
        vec![("modified".into(), p.abs("train.py"))]
    );
    assert_eq!(
        reasons_of(&st, eval1),
        vec![("upstream".into(), p.abs("model.bin"))]
    );
    let text = p.text(&["status"]);
    assert!(text.contains("train.py modified"), "{text}");
    assert!(text.contains("upstream run"), "{text}");

    // Re-running train supersedes the old run; evaluate read the old model.
    let train2 = p.step("train.py");
    let st = p.json(&["status", "--json"]);
    assert_eq!(stale_ids(&st), vec![eval1], "{st:#}");
    assert_eq!(
        reasons_of(&st, eval1),
        vec![("reproduced".into(), p.abs("model.bin"))]
    );
    let listed: Vec<i64> = st["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert!(
        !listed.contains(&train1),
        "superseded run listed: {listed:?}"
    );
    assert!(listed.contains(&train2) && listed.contains(&prep));

    let eval2 = p.step("evaluate.py");
    let st = p.json(&["status", "--json"]);
    assert_eq!(stale_ids(&st), Vec::<i64>::new(), "{st:#}");

    // Source data edited: everything downstream of it; an output deleted: listed, and its
    // reader stale.
    p.sb.write("data/raw.csv", "a,b\n5,6\n");
    std::fs::remove_file(p.sb.join("model.bin")).unwrap();
    let st = p.json(&["status", "--json"]);
    assert_eq!(stale_ids(&st), vec![prep, train2, eval2], "{st:#}");
    let outputs = st["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1, "{st:#}");
    assert_eq!(outputs[0]["path"], p.abs("model.bin"));
    assert_eq!(outputs[0]["change"], "deleted");
    assert!(reasons_of(&st, eval2).contains(&("deleted".into(), p.abs("model.bin"))));
    let text = p.text(&["status"]);
    assert!(text.contains("data/raw.csv modified"), "{text}");
    assert!(text.contains("model.bin  deleted"), "{text}");
}

#[test]
fn lineage_goes_down_to_sources_through_the_content_that_was_read() {
    let (p, [prep, _train1, _eval1, train2, eval2]) = edited_pipeline();
    let lin = p.json(&["lineage", "--json", "metrics.json"]);
    assert_eq!(lin["state"], "recorded");
    assert_eq!(lin["path"], p.abs("metrics.json"));
    assert_eq!(
        lin["recorded"]["hash"].as_str().unwrap(),
        blake3_of(&p.sb.join("metrics.json"))
    );
    let ids: Vec<i64> = lin["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![prep, train2, eval2]);
    for run in lin["runs"].as_array().unwrap() {
        assert_eq!(run["git"]["commit"], p.commit.as_str());
        assert_eq!(run["command"][0], "python3");
    }
    let train = &lin["runs"][1];
    let from: Vec<(String, Value)> = train["inputs_from"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_owned(), f["run"].clone()))
        .collect();
    assert!(from.contains(&(p.abs("data/clean.csv"), Value::from(prep))));
    assert!(from.contains(&(p.abs("train.py"), Value::Null)));
    let sources: Vec<(String, String)> = lin["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_owned(),
                s["hash"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut source_paths: Vec<&str> = sources.iter().map(|s| s.0.as_str()).collect();
    source_paths.sort();
    let mut expected = vec![
        p.abs("data/raw.csv"),
        p.abs("evaluate.py"),
        p.abs("prepare.py"),
        p.abs("train.py"),
    ];
    expected.sort();
    assert_eq!(source_paths, expected);
    // The edited train.py, not the committed one.
    assert!(sources.contains(&(p.abs("train.py"), blake3_of(&p.sb.join("train.py")))));

    let text = p.text(&["lineage", "metrics.json"]);
    assert!(text.starts_with("metrics.json"), "{text}");
    assert!(text.contains(&format!("└─ @{eval2} run {eval2}")), "{text}");
    assert!(text.contains("source"), "{text}");
    assert!(text.contains("(shown above)"), "{text}");

    // A run reference works where a path does.
    let by_ref = p.json(&["lineage", "--json", &format!("@{train2}")]);
    let ids: Vec<i64> = by_ref["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![prep, train2]);

    // Content never recorded, then a deleted file: the newest recorded version stands in.
    p.sb.write("metrics.json", "{\"hand\": \"edited\"}\n");
    let lin = p.json(&["lineage", "--json", "metrics.json"]);
    assert_eq!(lin["state"], "unrecorded");
    assert_eq!(lin["runs"].as_array().unwrap().len(), 3);
    std::fs::remove_file(p.sb.join("metrics.json")).unwrap();
    let lin = p.json(&["lineage", "--json", "metrics.json"]);
    assert_eq!(lin["state"], "missing");
    assert_eq!(lin["runs"].as_array().unwrap().last().unwrap()["id"], eval2);

    let out = output(p.sb.roar().args(["lineage", "never-seen.txt"]));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no recorded run"));
}

#[test]
fn reproduce_script_rebuilds_a_deleted_output_byte_for_byte() {
    let (p, [prep, _, _, train2, eval2]) = edited_pipeline();
    let want = blake3_of(&p.sb.join("metrics.json"));

    let text = p.text(&["reproduce", "metrics.json"]);
    let order: Vec<usize> = [prep, train2, eval2]
        .iter()
        .map(|id| text.find(&format!("run {id} ")).expect("run listed"))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.contains(&p.commit), "{text}");

    let script = check(p.sb.roar().args(["reproduce", "--script", "metrics.json"]));
    let script_path = p.sb.join("rebuild.sh");
    std::fs::write(&script_path, &script).unwrap();
    let s = String::from_utf8_lossy(&script);
    assert!(s.starts_with("#!/bin/sh\n"), "{s}");
    assert!(s.contains("set -eu"), "{s}");
    assert!(!s.contains("git checkout"), "{s}");

    for f in ["metrics.json", "model.bin", "data/clean.csv"] {
        std::fs::remove_file(p.sb.join(f)).unwrap();
    }
    // Run from elsewhere: the script changes to each run's directory itself.
    let out = output(
        Command::new("sh")
            .arg(&script_path)
            .current_dir("/")
            .stdin(Stdio::null()),
    );
    assert!(
        out.status.success(),
        "script failed: {}\n{s}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(blake3_of(&p.sb.join("metrics.json")), want);

    // It fails fast on a missing source, before running anything.
    std::fs::remove_file(p.sb.join("metrics.json")).unwrap();
    std::fs::remove_file(p.sb.join("data/raw.csv")).unwrap();
    let out = output(Command::new("sh").arg(&script_path).stdin(Stdio::null()));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing source"));
    assert!(!p.sb.join("metrics.json").exists());

    let doc = p.json(&["reproduce", "--json", &format!("@{eval2}")]);
    let ids: Vec<i64> = doc["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![prep, train2, eval2]);
    assert_eq!(
        doc["runs"][0]["shell"],
        format!("cd {} && python3 prepare.py", p.sb.path().display()).as_str()
    );

    // `latest` names a run.
    let text = p.text(&["reproduce", "latest"]);
    assert!(text.contains(&format!("run {eval2} ")), "{text}");
}

#[test]
fn prov_json_export_validates_against_the_schema() {
    let (p, runs) = edited_pipeline();
    let file = p.sb.join("prov.json");
    check(
        p.sb.roar()
            .args(["export", "--format", "prov-json", "-o"])
            .arg(&file),
    );
    let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let activities = doc["activity"].as_object().unwrap();
    assert_eq!(activities.len(), runs.len());
    let eval = &activities[&format!("run:{}", runs[4])];
    assert_eq!(eval["roar:gitCommit"], p.commit.as_str());
    assert_eq!(eval["roar:command"], "python3 evaluate.py");
    let metrics = blake3_of(&p.sb.join("metrics.json"));
    assert!(doc["entity"].get(&metrics).is_some());
    let generated = doc["wasGeneratedBy"].as_object().unwrap();
    assert!(
        generated
            .values()
            .any(|g| g["prov:entity"] == metrics.as_str()
                && g["prov:activity"] == format!("run:{}", runs[4]).as_str())
    );
    assert!(!doc["used"].as_object().unwrap().is_empty());
    assert!(!doc["wasDerivedFrom"].as_object().unwrap().is_empty());
    assert_eq!(
        doc["wasAssociatedWith"].as_object().unwrap().len(),
        runs.len()
    );

    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("prov-json.schema.json");
    let validate = |doc: &Path| {
        output(
            Command::new("python3")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("validate_prov_json.py"))
                .arg(&schema)
                .arg(doc),
        )
    };
    let out = validate(&file);
    assert_ne!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "roar's PROV-JSON does not validate:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The schema does reject a broken document.
    let mut broken = doc.clone();
    let used = broken["used"].as_object_mut().unwrap();
    let first = used.keys().next().unwrap().clone();
    used[&first]
        .as_object_mut()
        .unwrap()
        .remove("prov:activity");
    let bad = p.sb.join("broken.json");
    std::fs::write(&bad, serde_json::to_vec(&broken).unwrap()).unwrap();
    let out = validate(&bad);
    assert_eq!(out.status.code(), Some(1), "a broken document validated");
}

#[test]
fn dot_renders_with_graphviz() {
    let (p, _) = edited_pipeline();
    let dot = check(p.sb.roar().args(["dag", "--dot"]));
    let exported = check(p.sb.roar().args(["export", "--format", "dot"]));
    assert_eq!(dot, exported);
    let text = String::from_utf8_lossy(&dot);
    assert!(text.starts_with("digraph roar {"), "{text}");
    assert!(text.contains("python3 train.py"), "{text}");

    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Graphviz `dot` must be installed (apt-get install graphviz)");
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&dot).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dot rejected roar's output: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("<svg"));
}

#[test]
fn dag_json_has_runs_artifacts_and_edges() {
    let (p, runs) = edited_pipeline();
    let dag = p.json(&["dag", "--json"]);
    let ids: Vec<i64> = dag["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, runs.to_vec());
    let model_versions = dag["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["paths"]
                .as_array()
                .unwrap()
                .contains(&Value::from(p.abs("model.bin")))
        })
        .count();
    assert_eq!(model_versions, 2, "two versions of model.bin: {dag:#}");
    let edges = dag["edges"].as_array().unwrap();
    let metrics = blake3_of(&p.sb.join("metrics.json"));
    assert!(edges.iter().any(|e| e["type"] == "wrote"
        && e["from"] == format!("run:{}", runs[4]).as_str()
        && e["to"] == metrics.as_str()));
    let exported = p.json(&["export", "--format", "json"]);
    assert_eq!(exported, dag);
    let text = p.text(&["dag"]);
    assert!(text.contains("-> metrics.json"), "{text}");
}

#[test]
fn paths_that_are_not_utf8_survive_every_question() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let sb = Sandbox::new();
    sb.write("in.txt", "bytes\n");
    let odd = OsStr::from_bytes(b"caf\xe9 'x'.txt");
    let out = sb.run(BACKEND, &[OsStr::new("cp"), OsStr::new("in.txt"), odd]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // lineage and reproduce take the raw bytes as PATH.
    let lin = check(sb.roar().args(["lineage", "--json"]).arg(odd));
    let lin = parse_json(&String::from_utf8_lossy(&lin));
    assert_eq!(lin["state"], "recorded");
    assert_eq!(
        tests::unescape_path(lin["path"].as_str().unwrap()),
        sb.join(odd)
    );
    let script = check(sb.roar().args(["reproduce", "--script"]).arg(odd));
    std::fs::remove_file(sb.join(odd)).unwrap();
    let script_path = sb.join("rebuild.sh");
    std::fs::write(&script_path, &script).unwrap();
    let run = output(Command::new("sh").arg(&script_path).stdin(Stdio::null()));
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(sb.read(odd), b"bytes\n");

    let st = check(sb.roar().args(["status", "--json"]));
    let st = parse_json(&String::from_utf8_lossy(&st));
    assert_eq!(stale_ids(&st), Vec::<i64>::new(), "{st:#}");

    // PROV-JSON keeps the bytes as \udcXX escapes and still validates; dot still renders.
    let file = sb.join("prov.json");
    check(
        sb.roar()
            .args(["export", "--format", "prov-json", "-o"])
            .arg(&file),
    );
    let raw = std::fs::read_to_string(&file).unwrap();
    assert!(raw.contains("caf\\udce9"), "{raw}");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let v = output(
        Command::new("python3")
            .arg(manifest.join("validate_prov_json.py"))
            .arg(manifest.join("prov-json.schema.json"))
            .arg(&file),
    );
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let dot = check(sb.roar().args(["dag", "--dot"]));
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Graphviz `dot` must be installed");
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&dot).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
