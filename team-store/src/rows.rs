//! A run as rows of the team store: written a batch at a time with one `INSERT ... SELECT FROM
//! unnest(...)` per table, read back the same way, and a digest that says whether two copies of
//! a run are the same.

use std::collections::{HashMap, HashSet};

use dag::{
    Container, Environment, FileRecord, GitInfo, Host, OpenJdContext, Origin, Package,
    ProcessRecord, Run,
};
use postgres::GenericClient;

/// BLAKE3 of everything about a run that travels between stores, in a fixed encoding.
pub(crate) fn digest(run: &Run) -> String {
    let mut h = Enc(blake3::Hasher::new());
    h.str("roar-run-v1");
    h.str(&run.uuid);
    h.str(&run.origin.store);
    h.opt_str(run.origin.host.as_deref());
    h.i64(run.order_key);
    h.opt_str(run.label.as_deref());
    h.list(&run.command);
    h.bytes(&run.cwd);
    h.str(&run.backend);
    h.opt_str(run.backend_reason.as_deref());
    h.i64(run.started_at_ms);
    h.opt_i64(run.duration_ms.map(|d| d as i64));
    h.opt_i64(run.exit_code.map(i64::from));
    h.opt_i64(run.signal.map(i64::from));
    h.i64(i64::from(run.complete));
    match &run.git {
        None => h.i64(0),
        Some(g) => {
            h.i64(1);
            h.opt_str(g.commit.as_deref());
            h.opt_str(g.branch.as_deref());
            h.i64(i64::from(g.dirty));
            h.opt_str(g.remote.as_deref());
        }
    }
    h.i64(i64::from(run.roar_pid));
    h.i64(run.env.len() as i64);
    for (name, value) in &run.env {
        h.str(name);
        h.opt_str(value.as_deref());
    }
    match &run.openjd {
        None => h.i64(0),
        Some(o) => {
            h.i64(1);
            h.opt_str(o.session_id.as_deref());
            h.opt_bytes(o.working_dir.as_deref());
            h.opt_str(o.step.as_deref());
            h.i64(o.environments.len() as i64);
            for e in &o.environments {
                h.str(e);
            }
        }
    }
    h.i64(run.warnings.len() as i64);
    for w in &run.warnings {
        h.str(w);
    }
    for files in [&run.inputs, &run.outputs] {
        h.i64(files.len() as i64);
        for f in files {
            h.bytes(&f.path);
            h.opt_str(f.hash.as_deref());
            h.opt_i64(f.size.map(|s| s as i64));
            h.i64(i64::from(f.filtered));
        }
    }
    h.i64(run.processes.len() as i64);
    for p in &run.processes {
        h.i64(i64::from(p.pid));
        h.i64(i64::from(p.ppid));
        h.bytes(&p.exe);
        h.list(&p.argv);
        h.bytes(&p.cwd);
        h.opt_i64(p.exit_code.map(i64::from));
        h.opt_i64(p.signal.map(i64::from));
        h.i64(p.started_ns as i64);
    }
    h.0.finalize().to_hex().to_string()
}

struct Enc(blake3::Hasher);

impl Enc {
    fn bytes(&mut self, b: &[u8]) {
        self.0.update(&(b.len() as u64).to_le_bytes());
        self.0.update(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt_bytes(&mut self, b: Option<&[u8]>) {
        match b {
            None => {
                self.0.update(&[0]);
            }
            Some(b) => {
                self.0.update(&[1]);
                self.bytes(b);
            }
        }
    }
    fn opt_str(&mut self, s: Option<&str>) {
        self.opt_bytes(s.map(str::as_bytes));
    }
    fn i64(&mut self, v: i64) {
        self.0.update(&v.to_le_bytes());
    }
    fn opt_i64(&mut self, v: Option<i64>) {
        match v {
            None => {
                self.0.update(&[0]);
            }
            Some(v) => {
                self.0.update(&[1]);
                self.i64(v);
            }
        }
    }
    fn list(&mut self, items: &[Vec<u8>]) {
        self.i64(items.len() as i64);
        for i in items {
            self.bytes(i);
        }
    }
}

/// How a batch went.
pub(crate) struct Written {
    pub inserted: u64,
    pub already_there: u64,
    pub bytes: u64,
}

/// Why a batch was not written.
pub(crate) enum WriteError {
    Pg(postgres::Error),
    /// The uuid is there with another digest: (uuid, what the remote holds).
    Conflict {
        uuid: String,
        theirs: String,
    },
}

impl From<postgres::Error> for WriteError {
    fn from(e: postgres::Error) -> Self {
        WriteError::Pg(e)
    }
}

/// Writes `runs` (sorted by uuid, so concurrent batches take row locks in one order) in the
/// caller's transaction, each with its environment from `envs` (by uuid) when it has one.
/// Runs already there with the same digest are no-ops. The environment is not part of the
/// digest: it is what the run used, not what it did, and runs pushed before schema version 2
/// have none.
pub(crate) fn write(
    tx: &mut impl GenericClient,
    runs: &[&Run],
    envs: &HashMap<String, Environment>,
) -> Result<Written, WriteError> {
    let digests: Vec<String> = runs.iter().map(|r| digest(r)).collect();
    let mut bytes = 0u64;
    let mut c = Cols::default();
    for (r, d) in runs.iter().zip(&digests) {
        bytes += (r.cwd.len() + r.command.iter().map(Vec::len).sum::<usize>() + 200) as u64;
        c.uuid.push(r.uuid.clone());
        c.digest.push(d.clone());
        c.origin.push(r.origin.store.clone());
        c.host.push(r.origin.host.clone());
        c.order_key.push(r.order_key);
        c.label.push(r.label.clone());
        c.cwd.push(r.cwd.clone());
        c.backend.push(r.backend.clone());
        c.backend_reason.push(r.backend_reason.clone());
        c.started.push(r.started_at_ms);
        c.duration.push(r.duration_ms.map(|d| d as i64));
        c.exit.push(r.exit_code);
        c.signal.push(r.signal);
        c.complete.push(r.complete);
        let g = r.git.as_ref();
        c.git_commit.push(g.and_then(|g| g.commit.clone()));
        c.git_branch.push(g.and_then(|g| g.branch.clone()));
        c.git_dirty.push(g.map(|g| g.dirty));
        c.git_remote.push(g.and_then(|g| g.remote.clone()));
        c.roar_pid.push(i64::from(r.roar_pid));
        let o = r.openjd.as_ref();
        c.openjd.push(o.is_some());
        c.oj_session.push(o.and_then(|o| o.session_id.clone()));
        c.oj_dir.push(o.and_then(|o| o.working_dir.clone()));
        c.oj_step.push(o.and_then(|o| o.step.clone()));
        c.oj_envs
            .push(o.map(|o| o.environments.join("\n")).unwrap_or_default());
    }
    let inserted: HashSet<String> = tx
        .query(
            "INSERT INTO roar.runs (uuid, digest, origin_store, origin_host, order_key, label, \
             cwd, backend, backend_reason, started_at_ms, duration_ms, exit_code, signal, \
             complete, git_commit, git_branch, git_dirty, git_remote, roar_pid, openjd, \
             openjd_session, openjd_dir, openjd_step, openjd_envs) \
             SELECT u::uuid, d, o::uuid, h, k, l, c, b, br, s, du, e, si, co, gc, gb, gd, gr, \
             rp, oj, os, od, ost, oe \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], \
               $6::text[], $7::bytea[], $8::text[], $9::text[], $10::int8[], $11::int8[], \
               $12::int4[], $13::int4[], $14::bool[], $15::text[], $16::text[], $17::bool[], \
               $18::text[], $19::int8[], $20::bool[], $21::text[], $22::bytea[], $23::text[], \
               $24::text[]) \
             AS t(u, d, o, h, k, l, c, b, br, s, du, e, si, co, gc, gb, gd, gr, rp, oj, os, \
               od, ost, oe) \
             ON CONFLICT (uuid) DO NOTHING RETURNING uuid::text",
            &[
                &c.uuid,
                &c.digest,
                &c.origin,
                &c.host,
                &c.order_key,
                &c.label,
                &c.cwd,
                &c.backend,
                &c.backend_reason,
                &c.started,
                &c.duration,
                &c.exit,
                &c.signal,
                &c.complete,
                &c.git_commit,
                &c.git_branch,
                &c.git_dirty,
                &c.git_remote,
                &c.roar_pid,
                &c.openjd,
                &c.oj_session,
                &c.oj_dir,
                &c.oj_step,
                &c.oj_envs,
            ],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();

    // Runs that were already there must be the same run.
    let present: Vec<String> = c
        .uuid
        .iter()
        .filter(|u| !inserted.contains(*u))
        .cloned()
        .collect();
    if !present.is_empty() {
        let theirs: HashMap<String, (String, String, Option<String>)> = tx
            .query(
                "SELECT uuid::text, digest, origin_store::text, origin_host FROM roar.runs \
                 WHERE uuid = ANY($1::text[]::uuid[])",
                &[&present],
            )?
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
            .collect();
        for (u, d) in c.uuid.iter().zip(&digests) {
            if let Some((their_digest, store, host)) = theirs.get(u)
                && their_digest != d
            {
                return Err(WriteError::Conflict {
                    uuid: u.clone(),
                    theirs: format!(
                        "the team store's copy (recorded by store {store} on host {}, digest {})",
                        host.as_deref().unwrap_or("(unknown)"),
                        &their_digest[..16]
                    ),
                });
            }
        }
    }

    let mut ch = Children::default();
    for r in runs.iter().filter(|r| inserted.contains(&r.uuid)) {
        ch.add(r, &mut bytes);
        if let Some(env) = envs.get(&r.uuid) {
            ch.add_environment(&r.uuid, env);
        }
    }
    ch.write(tx)?;
    Ok(Written {
        inserted: inserted.len() as u64,
        already_there: present.len() as u64,
        bytes,
    })
}

#[derive(Default)]
struct Cols {
    uuid: Vec<String>,
    digest: Vec<String>,
    origin: Vec<String>,
    host: Vec<Option<String>>,
    order_key: Vec<i64>,
    label: Vec<Option<String>>,
    cwd: Vec<Vec<u8>>,
    backend: Vec<String>,
    backend_reason: Vec<Option<String>>,
    started: Vec<i64>,
    duration: Vec<Option<i64>>,
    exit: Vec<Option<i32>>,
    signal: Vec<Option<i32>>,
    complete: Vec<bool>,
    git_commit: Vec<Option<String>>,
    git_branch: Vec<Option<String>>,
    git_dirty: Vec<Option<bool>>,
    git_remote: Vec<Option<String>>,
    roar_pid: Vec<i64>,
    openjd: Vec<bool>,
    oj_session: Vec<Option<String>>,
    oj_dir: Vec<Option<Vec<u8>>>,
    oj_step: Vec<Option<String>>,
    oj_envs: Vec<String>,
}

/// Column arrays of the child tables, one tuple field per column.
#[derive(Default)]
#[allow(clippy::type_complexity)]
struct Children {
    arg: (Vec<String>, Vec<i32>, Vec<Vec<u8>>),
    env: (Vec<String>, Vec<i32>, Vec<String>, Vec<Option<String>>),
    warn: (Vec<String>, Vec<i32>, Vec<String>),
    file: (
        Vec<String>,
        Vec<bool>,
        Vec<i32>,
        Vec<Vec<u8>>,
        Vec<Option<String>>,
        Vec<Option<i64>>,
        Vec<bool>,
    ),
    proc: (
        Vec<String>,
        Vec<i32>,
        Vec<i64>,
        Vec<i64>,
        Vec<Vec<u8>>,
        Vec<Vec<u8>>,
        Vec<Option<i32>>,
        Vec<Option<i32>>,
        Vec<i64>,
    ),
    argv: (Vec<String>, Vec<i32>, Vec<i32>, Vec<Vec<u8>>),
    package: (
        Vec<String>,
        Vec<i32>,
        Vec<String>,
        Vec<String>,
        Vec<String>,
        Vec<Vec<u8>>,
    ),
    host: (
        Vec<String>,
        Vec<Option<String>>,
        Vec<Option<String>>,
        Vec<Option<String>>,
        Vec<Option<String>>,
        Vec<Option<i32>>,
        Vec<Option<i64>>,
        Vec<String>,
    ),
    container: (
        Vec<String>,
        Vec<String>,
        Vec<Option<String>>,
        Vec<Option<String>>,
        Vec<Option<String>>,
    ),
}

impl Children {
    fn add(&mut self, r: &Run, bytes: &mut u64) {
        let u = &r.uuid;
        for (i, a) in r.command.iter().enumerate() {
            self.arg.0.push(u.clone());
            self.arg.1.push(i as i32);
            self.arg.2.push(a.clone());
        }
        for (i, (n, v)) in r.env.iter().enumerate() {
            *bytes += (n.len() + v.as_ref().map_or(0, String::len)) as u64;
            self.env.0.push(u.clone());
            self.env.1.push(i as i32);
            self.env.2.push(n.clone());
            self.env.3.push(v.clone());
        }
        for (i, w) in r.warnings.iter().enumerate() {
            *bytes += w.len() as u64;
            self.warn.0.push(u.clone());
            self.warn.1.push(i as i32);
            self.warn.2.push(w.clone());
        }
        for (output, files) in [(false, &r.inputs), (true, &r.outputs)] {
            for (i, f) in files.iter().enumerate() {
                *bytes += (f.path.len() + 80) as u64;
                self.file.0.push(u.clone());
                self.file.1.push(output);
                self.file.2.push(i as i32);
                self.file.3.push(f.path.clone());
                self.file.4.push(f.hash.clone());
                self.file.5.push(f.size.map(|s| s as i64));
                self.file.6.push(f.filtered);
            }
        }
        for (i, p) in r.processes.iter().enumerate() {
            *bytes += (p.exe.len() + p.cwd.len() + 40) as u64;
            self.proc.0.push(u.clone());
            self.proc.1.push(i as i32);
            self.proc.2.push(i64::from(p.pid));
            self.proc.3.push(i64::from(p.ppid));
            self.proc.4.push(p.exe.clone());
            self.proc.5.push(p.cwd.clone());
            self.proc.6.push(p.exit_code);
            self.proc.7.push(p.signal);
            self.proc.8.push(p.started_ns as i64);
            for (j, a) in p.argv.iter().enumerate() {
                *bytes += a.len() as u64;
                self.argv.0.push(u.clone());
                self.argv.1.push(i as i32);
                self.argv.2.push(j as i32);
                self.argv.3.push(a.clone());
            }
        }
    }

    fn add_environment(&mut self, uuid: &str, env: &Environment) {
        for (i, p) in env.packages.iter().enumerate() {
            let k = &mut self.package;
            k.0.push(uuid.to_owned());
            k.1.push(i as i32);
            k.2.push(p.manager.clone());
            k.3.push(p.name.clone());
            k.4.push(p.version.clone());
            k.5.push(p.location.clone());
        }
        if let Some(h) = &env.host {
            let k = &mut self.host;
            k.0.push(uuid.to_owned());
            k.1.push(h.hostname.clone());
            k.2.push(h.kernel.clone());
            k.3.push(h.os.clone());
            k.4.push(h.cpu_model.clone());
            k.5.push(h.cpus.map(|c| c as i32));
            k.6.push(h.memory_bytes.map(|m| m as i64));
            k.7.push(h.gpus.join("\n"));
        }
        if let Some(c) = &env.container {
            let k = &mut self.container;
            k.0.push(uuid.to_owned());
            k.1.push(c.runtime.clone());
            k.2.push(c.image.clone());
            k.3.push(c.image_id.clone());
            k.4.push(c.id.clone());
        }
    }

    fn write(&self, tx: &mut impl GenericClient) -> Result<(), postgres::Error> {
        if !self.package.0.is_empty() {
            let k = &self.package;
            tx.execute(
                "INSERT INTO roar.run_packages (run, idx, manager, name, version, location) \
                 SELECT r::uuid, i, m, n, v, l FROM unnest($1::text[], $2::int4[], $3::text[], \
                   $4::text[], $5::text[], $6::bytea[]) AS t(r, i, m, n, v, l) \
                 ON CONFLICT DO NOTHING",
                &[&k.0, &k.1, &k.2, &k.3, &k.4, &k.5],
            )?;
        }
        if !self.host.0.is_empty() {
            let k = &self.host;
            tx.execute(
                "INSERT INTO roar.run_host (run, hostname, kernel, os, cpu_model, cpus, \
                 memory_bytes, gpus) SELECT r::uuid, h, k, o, c, n, m, g FROM unnest($1::text[], \
                   $2::text[], $3::text[], $4::text[], $5::text[], $6::int4[], $7::int8[], \
                   $8::text[]) AS t(r, h, k, o, c, n, m, g) ON CONFLICT DO NOTHING",
                &[&k.0, &k.1, &k.2, &k.3, &k.4, &k.5, &k.6, &k.7],
            )?;
        }
        if !self.container.0.is_empty() {
            let k = &self.container;
            tx.execute(
                "INSERT INTO roar.run_container (run, runtime, image, image_id, container_id) \
                 SELECT r::uuid, t, i, d, c FROM unnest($1::text[], $2::text[], $3::text[], \
                   $4::text[], $5::text[]) AS u(r, t, i, d, c) ON CONFLICT DO NOTHING",
                &[&k.0, &k.1, &k.2, &k.3, &k.4],
            )?;
        }
        if !self.arg.0.is_empty() {
            tx.execute(
                "INSERT INTO roar.run_args (run, idx, arg) \
                 SELECT r::uuid, i, a FROM unnest($1::text[], $2::int4[], $3::bytea[]) AS t(r, i, a) \
                 ON CONFLICT DO NOTHING",
                &[&self.arg.0, &self.arg.1, &self.arg.2],
            )?;
        }
        if !self.env.0.is_empty() {
            tx.execute(
                "INSERT INTO roar.run_env (run, idx, name, value) \
                 SELECT r::uuid, i, n, v FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[]) \
                 AS t(r, i, n, v) ON CONFLICT DO NOTHING",
                &[&self.env.0, &self.env.1, &self.env.2, &self.env.3],
            )?;
        }
        if !self.warn.0.is_empty() {
            tx.execute(
                "INSERT INTO roar.run_warnings (run, idx, text) \
                 SELECT r::uuid, i, w FROM unnest($1::text[], $2::int4[], $3::text[]) AS t(r, i, w) \
                 ON CONFLICT DO NOTHING",
                &[&self.warn.0, &self.warn.1, &self.warn.2],
            )?;
        }
        if !self.file.0.is_empty() {
            let f = &self.file;
            tx.execute(
                "INSERT INTO roar.run_files (run, output, idx, path, hash, size, filtered) \
                 SELECT r::uuid, o, i, p, h, s, fl FROM unnest($1::text[], $2::bool[], \
                   $3::int4[], $4::bytea[], $5::text[], $6::int8[], $7::bool[]) \
                 AS t(r, o, i, p, h, s, fl) ON CONFLICT DO NOTHING",
                &[&f.0, &f.1, &f.2, &f.3, &f.4, &f.5, &f.6],
            )?;
        }
        if !self.proc.0.is_empty() {
            let p = &self.proc;
            tx.execute(
                "INSERT INTO roar.processes (run, idx, pid, ppid, exe, cwd, exit_code, signal, \
                 started_ns) SELECT r::uuid, i, pid, ppid, exe, cwd, e, s, st FROM \
                 unnest($1::text[], $2::int4[], $3::int8[], $4::int8[], $5::bytea[], \
                   $6::bytea[], $7::int4[], $8::int4[], $9::int8[]) \
                 AS t(r, i, pid, ppid, exe, cwd, e, s, st) ON CONFLICT DO NOTHING",
                &[&p.0, &p.1, &p.2, &p.3, &p.4, &p.5, &p.6, &p.7, &p.8],
            )?;
        }
        if !self.argv.0.is_empty() {
            let a = &self.argv;
            tx.execute(
                "INSERT INTO roar.process_argv (run, proc, idx, arg) \
                 SELECT r::uuid, p, i, a FROM unnest($1::text[], $2::int4[], $3::int4[], \
                   $4::bytea[]) AS t(r, p, i, a) ON CONFLICT DO NOTHING",
                &[&a.0, &a.1, &a.2, &a.3],
            )?;
        }
        Ok(())
    }
}

/// Reads the runs with these uuids in full, checking each against its digest. Returns them in
/// the order asked, their environments in the same order, and the bytes read.
pub(crate) fn read(
    client: &mut impl GenericClient,
    uuids: &[String],
) -> Result<(Vec<Run>, Vec<Environment>, u64), ReadError> {
    let mut bytes = 0u64;
    let mut runs: HashMap<String, (Run, String)> = HashMap::new();
    for r in client.query(
        "SELECT uuid::text, origin_store::text, origin_host, order_key, label, cwd, backend, \
         backend_reason, started_at_ms, duration_ms, exit_code, signal, complete, git_commit, \
         git_branch, git_dirty, git_remote, roar_pid, openjd, openjd_session, openjd_dir, \
         openjd_step, openjd_envs, digest FROM roar.runs WHERE uuid = ANY($1::text[]::uuid[])",
        &[&uuids],
    )? {
        let uuid: String = r.get(0);
        let cwd: Vec<u8> = r.get(5);
        bytes += (cwd.len() + 200) as u64;
        let git_dirty: Option<bool> = r.get(15);
        let openjd: bool = r.get(18);
        let envs: String = r.get(22);
        let run = Run {
            id: 0,
            uuid: uuid.clone(),
            origin: Origin {
                store: r.get(1),
                host: r.get(2),
            },
            pulled: true,
            order_key: r.get(3),
            seq: 0,
            label: r.get(4),
            command: Vec::new(),
            cwd,
            backend: r.get(6),
            backend_reason: r.get(7),
            started_at_ms: r.get(8),
            git: git_dirty.map(|dirty| GitInfo {
                commit: r.get(13),
                branch: r.get(14),
                dirty,
                remote: r.get(16),
            }),
            env: Vec::new(),
            openjd: openjd.then(|| OpenJdContext {
                session_id: r.get(19),
                working_dir: r.get(20),
                step: r.get(21),
                environments: envs
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
            }),
            exit_code: r.get(10),
            signal: r.get(11),
            duration_ms: r.get::<_, Option<i64>>(9).map(|d| d as u64),
            complete: r.get(12),
            finished: true,
            warnings: Vec::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            processes: Vec::new(),
            trace_dir: None,
            roar_pid: r.get::<_, i64>(17) as u32,
        };
        runs.insert(uuid, (run, r.get(23)));
    }
    for r in client.query(
        "SELECT run::text, arg FROM roar.run_args WHERE run = ANY($1::text[]::uuid[]) \
         ORDER BY run, idx",
        &[&uuids],
    )? {
        let a: Vec<u8> = r.get(1);
        bytes += a.len() as u64;
        if let Some((run, _)) = runs.get_mut(r.get::<_, &str>(0)) {
            run.command.push(a);
        }
    }
    for r in client.query(
        "SELECT run::text, name, value FROM roar.run_env WHERE run = ANY($1::text[]::uuid[]) \
         ORDER BY run, idx",
        &[&uuids],
    )? {
        if let Some((run, _)) = runs.get_mut(r.get::<_, &str>(0)) {
            run.env.push((r.get(1), r.get(2)));
        }
    }
    for r in client.query(
        "SELECT run::text, text FROM roar.run_warnings WHERE run = ANY($1::text[]::uuid[]) \
         ORDER BY run, idx",
        &[&uuids],
    )? {
        if let Some((run, _)) = runs.get_mut(r.get::<_, &str>(0)) {
            run.warnings.push(r.get(1));
        }
    }
    for r in client.query(
        "SELECT run::text, output, path, hash, size, filtered FROM roar.run_files \
         WHERE run = ANY($1::text[]::uuid[]) ORDER BY run, output, idx",
        &[&uuids],
    )? {
        let path: Vec<u8> = r.get(2);
        bytes += (path.len() + 80) as u64;
        let f = FileRecord {
            path,
            hash: r.get(3),
            size: r.get::<_, Option<i64>>(4).map(|s| s as u64),
            filtered: r.get(5),
        };
        if let Some((run, _)) = runs.get_mut(r.get::<_, &str>(0)) {
            if r.get::<_, bool>(1) {
                run.outputs.push(f);
            } else {
                run.inputs.push(f);
            }
        }
    }
    for r in client.query(
        "SELECT run::text, pid, ppid, exe, cwd, exit_code, signal, started_ns FROM roar.processes \
         WHERE run = ANY($1::text[]::uuid[]) ORDER BY run, idx",
        &[&uuids],
    )? {
        if let Some((run, _)) = runs.get_mut(r.get::<_, &str>(0)) {
            run.processes.push(ProcessRecord {
                pid: r.get::<_, i64>(1) as u32,
                ppid: r.get::<_, i64>(2) as u32,
                exe: r.get(3),
                argv: Vec::new(),
                cwd: r.get(4),
                exit_code: r.get(5),
                signal: r.get(6),
                started_ns: r.get::<_, i64>(7) as u64,
            });
        }
    }
    for r in client.query(
        "SELECT run::text, proc, arg FROM roar.process_argv WHERE run = ANY($1::text[]::uuid[]) \
         ORDER BY run, proc, idx",
        &[&uuids],
    )? {
        let a: Vec<u8> = r.get(2);
        bytes += a.len() as u64;
        if let Some((run, _)) = runs.get_mut(r.get::<_, &str>(0))
            && let Some(p) = run.processes.get_mut(r.get::<_, i32>(1) as usize)
        {
            p.argv.push(a);
        }
    }
    let mut envs = read_environments(client, uuids)?;
    let mut out = Vec::with_capacity(uuids.len());
    let mut out_envs = Vec::with_capacity(uuids.len());
    for u in uuids {
        let Some((run, stored)) = runs.remove(u) else {
            return Err(ReadError::Damaged {
                uuid: u.clone(),
                why: "listed but not readable".into(),
            });
        };
        if digest(&run) != stored {
            return Err(ReadError::Damaged {
                uuid: u.clone(),
                why: "its rows do not match its digest".into(),
            });
        }
        out.push(run);
        out_envs.push(envs.remove(u).unwrap_or_default());
    }
    Ok((out, out_envs, bytes))
}

/// The environments of the runs with these uuids that have one.
fn read_environments(
    client: &mut impl GenericClient,
    uuids: &[String],
) -> Result<HashMap<String, Environment>, postgres::Error> {
    let mut envs: HashMap<String, Environment> = HashMap::new();
    for r in client.query(
        "SELECT run::text, manager, name, version, location FROM roar.run_packages \
         WHERE run = ANY($1::text[]::uuid[]) ORDER BY run, idx",
        &[&uuids],
    )? {
        envs.entry(r.get(0)).or_default().packages.push(Package {
            manager: r.get(1),
            name: r.get(2),
            version: r.get(3),
            location: r.get(4),
        });
    }
    for r in client.query(
        "SELECT run::text, hostname, kernel, os, cpu_model, cpus, memory_bytes, gpus \
         FROM roar.run_host WHERE run = ANY($1::text[]::uuid[])",
        &[&uuids],
    )? {
        let gpus: String = r.get(7);
        envs.entry(r.get(0)).or_default().host = Some(Host {
            hostname: r.get(1),
            kernel: r.get(2),
            os: r.get(3),
            cpu_model: r.get(4),
            cpus: r.get::<_, Option<i32>>(5).map(|c| c as u32),
            memory_bytes: r.get::<_, Option<i64>>(6).map(|m| m as u64),
            gpus: gpus.lines().map(str::to_owned).collect(),
        });
    }
    for r in client.query(
        "SELECT run::text, runtime, image, image_id, container_id FROM roar.run_container \
         WHERE run = ANY($1::text[]::uuid[])",
        &[&uuids],
    )? {
        envs.entry(r.get(0)).or_default().container = Some(Container {
            runtime: r.get(1),
            image: r.get(2),
            image_id: r.get(3),
            id: r.get(4),
        });
    }
    Ok(envs)
}

pub(crate) enum ReadError {
    Pg(postgres::Error),
    Damaged { uuid: String, why: String },
}

impl From<postgres::Error> for ReadError {
    fn from(e: postgres::Error) -> Self {
        ReadError::Pg(e)
    }
}
