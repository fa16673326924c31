//! `roar push`, `roar pull`, and the push after `roar run` and `roar ingest`:
//! which team store, and what moved. The work is `team_store`'s.

use anyhow::Result;
use roar_core::config::{Config, PushWhen};
use team_store::{PullOptions, PushOptions, RemoteConfig};

/// The team store's URL: `--remote` (when not empty), else `ROAR_REMOTE`,
/// else `[remote] url`.
pub fn url(flag: Option<&str>, cfg: &Config) -> Option<String> {
    flag.filter(|u| !u.is_empty())
        .map(str::to_owned)
        .or_else(|| std::env::var("ROAR_REMOTE").ok().filter(|u| !u.is_empty()))
        .or_else(|| cfg.remote.url.clone().filter(|u| !u.is_empty()))
}

fn remote(flag: Option<&str>, cfg: &Config) -> Result<RemoteConfig> {
    let url = url(flag, cfg).ok_or_else(|| {
        anyhow::anyhow!(
            "no team store named: give --remote postgresql://..., set ROAR_REMOTE, or [remote] url in .roar/config.toml"
        )
    })?;
    Ok(RemoteConfig::parse(&url)?)
}

/// `roar push`.
pub fn push(flag: Option<&str>, quiet: bool) -> Result<()> {
    let (loc, store) = crate::open_located()?;
    let cfg = roar_core::config::load(&loc.roar_dir())?;
    let remote = remote(flag, &cfg)?;
    let mut bar = crate::progress::reporter("pushing runs");
    let r = team_store::push_with(&store, &remote, &PushOptions::default(), &mut bar)?;
    drop(bar);
    if !quiet {
        let mut line = format!(
            "roar: pushed {} to {} ({:.2} s",
            roar_core::words::count(r.sent as usize, "run"),
            remote.redacted(),
            r.elapsed.as_secs_f64()
        );
        if r.already_there > 0 {
            line.push_str(&format!("; {} already there", r.already_there));
        }
        if r.retries > 0 {
            line.push_str(&format!("; {} retried", r.retries));
        }
        eprintln!("{line})");
    }
    Ok(())
}

/// `roar pull`.
pub fn pull(flag: Option<&str>, quiet: bool) -> Result<()> {
    let (loc, store) = crate::open_located()?;
    let cfg = roar_core::config::load(&loc.roar_dir())?;
    let remote = remote(flag, &cfg)?;
    let mut bar = crate::progress::reporter("pulling runs");
    let r = team_store::pull_with(&store, &remote, &PullOptions::default(), &mut bar)?;
    drop(bar);
    if !quiet {
        eprintln!(
            "roar: pulled {} from {} ({:.2} s; {} already here or recorded here)",
            roar_core::words::count(r.received as usize, "run"),
            remote.redacted(),
            r.elapsed.as_secs_f64(),
            r.skipped
        );
    }
    Ok(())
}

/// How long `roar run` and `roar ingest` wait for their push: a team store that accepts a
/// connection and then stalls costs at most this.
const AFTER_RUN_BUDGET: std::time::Duration = std::time::Duration::from_secs(6);

/// After `roar run` or `roar ingest` recorded in the store at `db`: pushes when asked
/// (`--push`, a `--remote` named on the command line, or `[remote] push = "after-run"`),
/// within a few seconds, never failing the command. Returns what to add to the summary line,
/// if anything.
///
/// The push runs on its own thread with its own store connection; roar stops waiting after
/// [`AFTER_RUN_BUDGET`] and exits, which ends the thread. That is safe at any point: a batch
/// is one remote transaction, and the local mark moves only after it committed.
pub fn after_record(
    db: &std::path::Path,
    cfg: &Config,
    flag: Option<&str>,
    asked: bool,
) -> Option<String> {
    let named = flag.is_some_and(|u| !u.is_empty());
    if !(asked || named || cfg.remote.push == PushWhen::AfterRun) {
        return None;
    }
    let remote = match remote(flag, cfg) {
        Ok(r) => r,
        Err(e) => return Some(format!("not pushed: {e:#}")),
    };
    let shown = remote.redacted().to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    let db = db.to_owned();
    std::thread::spawn(move || {
        let result = dag::Store::open(&db)
            .map_err(team_store::RemoteError::from)
            .and_then(|store| team_store::push(&store, &remote, &PushOptions::after_run()));
        let _ = tx.send(result);
    });
    Some(match rx.recv_timeout(AFTER_RUN_BUDGET) {
        Ok(Ok(r)) => format!("pushed to {shown} ({} sent)", r.sent),
        Ok(Err(e)) => format!("not pushed ({e}); the next push sends it"),
        Err(_) => format!(
            "not pushed ({shown} did not answer within {} s); the next push sends it",
            AFTER_RUN_BUDGET.as_secs()
        ),
    })
}

/// Says `note` once on stderr, when there is one.
pub fn say(note: Option<String>) {
    if let Some(n) = note {
        eprintln!("roar: {n}");
    }
}
