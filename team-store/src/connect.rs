//! Connecting with TLS, telling retryable failures from final ones, and backing off.

use std::time::{Duration, Instant};

use postgres::Client;
use postgres::error::SqlState;
use postgres_native_tls::MakeTlsConnector;

use crate::RemoteError;
use crate::config::{RemoteConfig, TlsMode};

/// How long to keep trying when the server is busy, full or briefly away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Give up once this much time has passed since the push or pull started.
    pub deadline: Duration,
    /// First pause; each retry doubles it (with jitter) up to `max_pause`.
    pub first_pause: Duration,
    pub max_pause: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            deadline: Duration::from_secs(300),
            first_pause: Duration::from_millis(50),
            max_pause: Duration::from_secs(2),
        }
    }
}

/// What to do about a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Serialization failure, deadlock, too many connections, refused, reset: wait and retry.
    Retry,
    Auth,
    Permission,
    Fatal,
}

pub(crate) fn classify(e: &postgres::Error) -> Kind {
    if let Some(db) = e.as_db_error() {
        let c = db.code();
        return if *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::TOO_MANY_CONNECTIONS
            || *c == SqlState::CANNOT_CONNECT_NOW
            || *c == SqlState::ADMIN_SHUTDOWN
            || *c == SqlState::CRASH_SHUTDOWN
            || *c == SqlState::CONNECTION_FAILURE
        {
            Kind::Retry
        } else if *c == SqlState::INVALID_PASSWORD
            || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            Kind::Auth
        } else if *c == SqlState::INSUFFICIENT_PRIVILEGE {
            Kind::Permission
        } else {
            Kind::Fatal
        };
    }
    let text = e.to_string();
    if text.contains("password missing") || text.contains("authentication") {
        return Kind::Auth;
    }
    if e.is_closed() {
        return Kind::Retry;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>().is_some() {
            return Kind::Retry;
        }
        source = s.source();
    }
    if text.contains("timeout") || text.contains("connection") {
        Kind::Retry
    } else {
        Kind::Fatal
    }
}

/// The deadline and backoff of one push or pull.
pub(crate) struct Backoff {
    started: Instant,
    policy: RetryPolicy,
    pause: Duration,
    seed: u64,
    pub(crate) retries: u64,
}

impl Backoff {
    pub(crate) fn new(policy: RetryPolicy) -> Backoff {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ (u64::from(std::process::id()) << 32);
        Backoff {
            started: Instant::now(),
            policy,
            pause: policy.first_pause,
            seed: seed | 1,
            retries: 0,
        }
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Sleeps before the next attempt, or says there is no time left.
    pub(crate) fn wait(&mut self) -> bool {
        // xorshift: full jitter, so 100 workers refused at once do not come back at once.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jittered = self.pause.mul_f64(0.5 + (self.seed % 1000) as f64 / 1000.0);
        let left = self.policy.deadline.saturating_sub(self.started.elapsed());
        if left.is_zero() {
            return false;
        }
        std::thread::sleep(jittered.min(left));
        self.pause = (self.pause * 2).min(self.policy.max_pause);
        self.retries += 1;
        self.started.elapsed() < self.policy.deadline
    }

    pub(crate) fn reset_pause(&mut self) {
        self.pause = self.policy.first_pause;
    }
}

pub(crate) fn tls(remote: &RemoteConfig) -> Result<MakeTlsConnector, RemoteError> {
    let mut b = native_tls::TlsConnector::builder();
    match remote.tls {
        TlsMode::Disable | TlsMode::Prefer | TlsMode::Require => {
            b.danger_accept_invalid_certs(true)
                .danger_accept_invalid_hostnames(true);
        }
        TlsMode::VerifyCa => {
            b.danger_accept_invalid_hostnames(true);
        }
        TlsMode::VerifyFull => {}
    }
    if let Some(path) = &remote.root_cert {
        let pem = std::fs::read(path).map_err(|e| RemoteError::BadUrl {
            remote: remote.redacted().into(),
            reason: format!("sslrootcert {}: {e}", path.display()),
        })?;
        let cert = native_tls::Certificate::from_pem(&pem).map_err(|e| RemoteError::BadUrl {
            remote: remote.redacted().into(),
            reason: format!("sslrootcert {}: {e}", path.display()),
        })?;
        b.add_root_certificate(cert);
    }
    let connector = b.build().map_err(|e| RemoteError::Postgres {
        remote: remote.redacted().into(),
        detail: format!("cannot set up TLS: {e}"),
    })?;
    Ok(MakeTlsConnector::new(connector))
}

/// Turns a PostgreSQL error into ours, naming the remote without its password.
pub(crate) fn error(
    remote: &RemoteConfig,
    e: &postgres::Error,
    elapsed: Option<Duration>,
) -> RemoteError {
    let name = remote.redacted().to_string();
    let detail = remote.scrub(&match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    });
    match classify(e) {
        Kind::Auth => RemoteError::Auth {
            remote: name,
            detail,
        },
        Kind::Permission => RemoteError::Permission {
            remote: name,
            detail,
            hint: "workers need only SELECT and INSERT (see team-store/pg/worker_role.sql); \
                   creating or upgrading the schema needs the owner role"
                .into(),
        },
        Kind::Retry => match elapsed {
            Some(t) => RemoteError::Deadline {
                remote: name,
                secs: t.as_secs_f64(),
                detail,
            },
            None => RemoteError::Unreachable {
                remote: name,
                detail,
            },
        },
        Kind::Fatal => RemoteError::Postgres {
            remote: name,
            detail,
        },
    }
}

/// A session with the team store, ready for a push or a pull.
pub(crate) struct Session {
    /// The remote, with the connect timeout the options asked for.
    pub remote: RemoteConfig,
    pub backoff: Backoff,
    pub client: Client,
    /// The remote's identity, under which this store keeps its marks.
    pub remote_id: String,
}

/// Connects (retrying as [`connect`] does) and makes sure the schema is there.
pub(crate) fn session(
    remote: &RemoteConfig,
    connect_timeout: Option<Duration>,
    retry: RetryPolicy,
) -> Result<Session, RemoteError> {
    let mut remote = remote.clone();
    if let Some(t) = connect_timeout {
        remote.set_connect_timeout(t);
    }
    let mut backoff = Backoff::new(retry);
    let mut client = connect(&remote, &mut backoff)?;
    let remote_id = crate::schema::ensure(&mut client, &remote)?;
    Ok(Session {
        remote,
        backoff,
        client,
        remote_id,
    })
}

/// Connects, retrying while the server is full, starting up or refusing connections.
pub(crate) fn connect(remote: &RemoteConfig, backoff: &mut Backoff) -> Result<Client, RemoteError> {
    let tls = tls(remote)?;
    loop {
        match remote.pg.connect(tls.clone()) {
            Ok(c) => {
                backoff.reset_pause();
                return Ok(c);
            }
            Err(e) if classify(&e) == Kind::Retry => {
                if !backoff.wait() {
                    return Err(match error(remote, &e, None) {
                        RemoteError::Unreachable { remote, detail } => RemoteError::Unreachable {
                            remote,
                            detail: format!(
                                "{detail} (tried for {:.1} s)",
                                backoff.elapsed().as_secs_f64()
                            ),
                        },
                        other => other,
                    });
                }
            }
            Err(e) => return Err(error(remote, &e, None)),
        }
    }
}
