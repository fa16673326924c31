//! A temp directory to run programs under the preload and read their traces.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use tracer_wire::{Decoder, Event, Record};

/// `<target>/debug/libroar_preload.so`, found from this test binary's path
/// (`<target>/debug/deps/<test>`). `cargo test` does not rebuild a cdylib
/// for integration tests, so the first call builds it.
pub fn preload_so() -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--lib", "-p", "tracer-preload"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building libroar_preload.so failed");
    });
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps");
    let so = dir.join("libroar_preload.so");
    assert!(so.exists(), "{} not built", so.display());
    so
}

/// One stream file, decoded.
pub struct Stream {
    pub file: PathBuf,
    pub records: Vec<Record<'static>>,
}

impl Stream {
    pub fn events(&self) -> impl Iterator<Item = &Event<'static>> {
        self.records.iter().map(|r| &r.event)
    }
}

pub struct Sandbox {
    /// Where programs run.
    pub work: PathBuf,
    /// ROAR_TRACE_DIR.
    pub trace: PathBuf,
    pub root: PathBuf,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!(
            "roar-preload-test-{}-{}-{}",
            std::process::id(),
            n,
            name
        ));
        let _ = std::fs::remove_dir_all(&root);
        let work = root.join("work");
        let trace = root.join("trace");
        std::fs::create_dir_all(&work).expect("mkdir work");
        std::fs::create_dir_all(&trace).expect("mkdir trace");
        // Canonical so expected paths match what getcwd reports.
        let work = work.canonicalize().expect("canonicalize");
        let trace = trace.canonicalize().expect("canonicalize");
        Sandbox { work, trace, root }
    }

    pub fn write(&self, name: &str, data: &str) {
        std::fs::write(self.work.join(name), data).expect("write fixture");
    }

    /// A command running in the work dir, without the preload.
    pub fn plain(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args).current_dir(&self.work);
        c
    }

    /// The same command with the preload and the trace dir set.
    pub fn traced(&self, program: &str, args: &[&str]) -> Command {
        let mut c = self.plain(program, args);
        c.env("LD_PRELOAD", preload_so())
            .env("ROAR_TRACE_DIR", &self.trace);
        c
    }

    pub fn run(&self, program: &str, args: &[&str]) -> Output {
        let out = self.traced(program, args).output().expect("spawn");
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Decodes every stream file; panics on malformed records and checks
    /// that each stream starts with ProcessStart and has seq 0..n.
    pub fn streams(&self) -> Vec<Stream> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.trace).expect("read trace dir") {
            let file = entry.expect("dir entry").path();
            if file.extension().and_then(|e| e.to_str()) != Some("rwt") {
                continue;
            }
            let bytes: &'static [u8] = Vec::leak(std::fs::read(&file).expect("read stream"));
            let records: Vec<Record<'static>> = Decoder::new(bytes)
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{}: {e:?}", file.display()));
            assert!(!records.is_empty(), "{}: empty stream", file.display());
            assert!(
                matches!(records[0].event, Event::ProcessStart { .. })
                    && records[0].header.seq == 0,
                "{}: first record {:?}",
                file.display(),
                records[0]
            );
            let mut seqs: Vec<u64> = records.iter().map(|r| r.header.seq).collect();
            seqs.sort_unstable();
            let want: Vec<u64> = (0..records.len() as u64).collect();
            assert_eq!(seqs, want, "{}: seq not contiguous", file.display());
            out.push(Stream { file, records });
        }
        out
    }

    /// All events of all streams.
    pub fn events(&self) -> Vec<Event<'static>> {
        self.streams()
            .into_iter()
            .flat_map(|s| s.records.into_iter().map(|r| r.event))
            .collect()
    }

    /// A readable dump, for assertion messages.
    pub fn dump(&self) -> String {
        let mut s = String::new();
        for st in self.streams() {
            s.push_str(&format!("== {}\n", st.file.display()));
            for r in &st.records {
                s.push_str(&format!("  {:?} {}\n", r.header, show(&r.event)));
            }
        }
        s
    }

    pub fn path(&self, name: &str) -> Vec<u8> {
        self.work.join(name).into_os_string().into_encoded_bytes()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// Debug output with byte strings shown as text.
pub fn show(ev: &Event<'_>) -> String {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match ev {
        Event::ProcessStart {
            ppid,
            cause,
            exe,
            argv,
            cwd,
            ..
        } => format!(
            "ProcessStart ppid={ppid} {cause:?} exe={} cwd={} argv={:?}",
            s(exe),
            s(cwd),
            argv.iter().map(s).collect::<Vec<_>>()
        ),
        Event::Exec {
            result,
            flags,
            path,
            argv,
        } => format!(
            "Exec result={result} flags={flags:#x} path={} argv={:?}",
            s(path),
            argv.iter().map(s).collect::<Vec<_>>()
        ),
        Event::Open {
            flags,
            result,
            stat,
            path,
            ..
        } => format!(
            "Open flags={flags:#o} result={result} stat={} path={}",
            stat.is_some(),
            s(path)
        ),
        Event::Rename {
            old, new, result, ..
        } => {
            format!("Rename result={result} {} -> {}", s(old), s(new))
        }
        other => format!("{other:?}"),
    }
}
