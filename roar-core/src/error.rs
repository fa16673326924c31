//! The one error type of the recording engine. The CLI maps it to exit
//! statuses in one place: [`Error::Setup`] carries its own (125 when tracing
//! cannot be set up, 126/127 as `env` uses them), everything else is 1.

use std::fmt::Display;

/// Exit status when tracing cannot be set up (as `env` uses 125).
pub const SETUP_FAILED: i32 = 125;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A failure before the command started: nothing ran. `code` is the
    /// status roar exits with.
    #[error("{msg}")]
    Setup { msg: String, code: i32 },
    /// A file or directory roar needed could not be used; `what` names it.
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] dag::StoreError),
    /// Input that makes no sense here (a bad config, no store, a bad name),
    /// said in full.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A set-up failure that exits with `code`.
    pub fn setup(code: i32, msg: impl Into<String>) -> Error {
        Error::Setup {
            msg: msg.into(),
            code,
        }
    }

    /// This error as a set-up failure (status 125): anything that stops
    /// `roar run` before the command starts.
    pub fn before_start(self) -> Error {
        match self {
            e @ Error::Setup { .. } => e,
            e => Error::setup(SETUP_FAILED, e.to_string()),
        }
    }

    /// The status roar exits with for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Setup { code, .. } => *code,
            _ => 1,
        }
    }
}

/// `map_err(io("cannot read X"))`: an I/O error naming what it was about.
pub fn io(what: impl Display) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io {
        what: what.to_string(),
        source,
    }
}
