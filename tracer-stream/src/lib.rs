//! What the out-of-process tracers (ptrace, eBPF) share, so that neither
//! depends on the other:
//!
//! * [`Sink`]: the trace stream, written through a shared memory mapping
//!   (a SIGKILLed roar still leaves every whole record it wrote);
//! * [`Gate`]: the pipe a forked child waits on until its tracer is set up,
//!   so that the command runs no instruction untraced;
//! * [`path::join`]: a relative path resolved against a directory, as the
//!   kernel does; [`clock`]: the timestamps records carry.
//!
//! The preload library does not use this crate: inside a program's libc
//! calls it may not allocate, and it writes its own streams.

pub mod clock;
mod gate;
pub mod path;
mod sink;

pub use gate::Gate;
pub use sink::Sink;
