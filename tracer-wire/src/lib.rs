//! The event format every roar backend produces and the store consumes.
//!
//! A trace is a byte stream of records. Every record starts with a fixed
//! [`HEADER_LEN`]-byte header carrying a magic number, a format version, the
//! event kind, the record's total length, a per-producer sequence number, a
//! monotonic timestamp and the pid/tid it concerns. The payload that follows
//! is a fixed sequence of little-endian integers and length-prefixed byte
//! strings, defined once in this crate for every kind.
//!
//! * Encoding ([`encode`]) writes into a caller-supplied buffer and never
//!   allocates, so the LD_PRELOAD shim can use it inside libc hooks.
//! * Decoding ([`Decoder`]) borrows from the input, rejects malformed bytes
//!   with a [`DecodeError`] and never panics. A stream may end in zero
//!   bytes (space a memory-mapped producer reserved and did not fill): an
//!   all-zero rest is the end. A record whose magic is zero but whose
//!   version and length are in place was reserved and never finished (its
//!   producer stores the magic last and died first): it is skipped, and its
//!   sequence number is missing.
//! * Sequence numbers start at 0 for each producer (one stream file of the
//!   preload shim, one tracer session of ptrace or eBPF) and increase by one
//!   per record, so a gap means records were lost. Producers that know they
//!   lost records say so with [`Event::Loss`].
//!
//! Paths are raw bytes: Linux paths need not be UTF-8 and are kept exactly.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

mod decode;
mod encode;

pub use decode::{DecodeError, Decoder};
pub use encode::{EncodeError, encode};

/// The integrity check of one encoded record (`record` is exactly the
/// record's bytes): a 32-bit hash of everything but the checksum field
/// itself, taken a word at a time so that the preload library pays a few
/// tens of nanoseconds per record. It catches damage (flipped bits, torn or
/// shifted bytes), not forgery.
pub fn checksum(record: &[u8]) -> u32 {
    let head = record.get(..CHECKSUM_AT).unwrap_or(record);
    let body = record.get(HEADER_LEN..).unwrap_or(&[]);
    let h = mix(words(head) ^ words(body).rotate_left(17) ^ record.len() as u64);
    (h ^ (h >> 32)) as u32
}

/// The length the header at the start of `record` states (whatever its
/// validity), or None when fewer than its first 8 bytes are there.
pub fn stated_len(record: &[u8]) -> Option<usize> {
    let l = record.get(4..8)?;
    Some(u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize)
}

/// Writes `seq` into an encoded record and seals it again: for producers
/// that number a record after encoding it (the preload library).
pub fn restamp(record: &mut [u8], seq: u64) {
    if let Some(slot) = record.get_mut(8..16) {
        slot.copy_from_slice(&seq.to_le_bytes());
    }
    seal(record);
}

/// Writes the record's [`checksum`] into its header.
pub(crate) fn seal(record: &mut [u8]) {
    let c = checksum(record);
    if let Some(slot) = record.get_mut(CHECKSUM_AT..HEADER_LEN) {
        slot.copy_from_slice(&c.to_le_bytes());
    }
}

/// The checksum a record carries.
pub(crate) fn stored_checksum(record: &[u8]) -> Option<u32> {
    let b = record.get(CHECKSUM_AT..HEADER_LEN)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn words(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(31);
    }
    let mut tail = [0u8; 8];
    let rest = chunks.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    (h ^ u64::from_le_bytes(tail) ^ ((rest.len() as u64) << 56)).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

/// The finaliser of SplitMix64: every input bit reaches every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// First two bytes of every record ("RW" in little-endian order).
pub const MAGIC: u16 = u16::from_le_bytes(*b"RW");
/// Version of the record layout. Version 2 fills the header's last four
/// bytes (reserved in version 1) with a [`checksum`] of the record; decoders
/// read both, and check the checksum of version 2 records.
pub const VERSION: u8 = 2;
/// The oldest version decoders still read (its records carry no checksum).
pub const MIN_VERSION: u8 = 1;
/// Where the checksum sits in the header.
const CHECKSUM_AT: usize = HEADER_LEN - 4;
/// Length of the fixed header that starts every record.
pub const HEADER_LEN: usize = 40;
/// Largest record a decoder accepts (argv of a huge exec, two long paths).
pub const MAX_RECORD_LEN: usize = 1 << 22;

/// Header flag: a path in this record was longer than the producer could
/// capture and was cut; the path is not trustworthy.
pub const FLAG_PATH_TRUNCATED: u32 = 1 << 0;
/// Header flag: the argument vector was cut to fit the record.
pub const FLAG_ARGV_TRUNCATED: u32 = 1 << 1;
/// Header flag: the call's result was decided at its entry, from what was
/// at its path then, not seen at its exit (ptrace's read-only opens,
/// unlinks, mkdirs and symlinks): a prediction. An open's success is then
/// `0`, not the descriptor the call returned.
pub const FLAG_RESULT_AT_ENTRY: u32 = 1 << 2;

/// The fixed header of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Header {
    /// Per-producer sequence number, starting at 0.
    pub seq: u64,
    /// `CLOCK_MONOTONIC` nanoseconds when the event happened.
    pub ts_ns: u64,
    /// Process (thread-group) id the event belongs to.
    pub pid: u32,
    /// Thread id that caused the event.
    pub tid: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
}

/// Identity and kind of a file as seen by `fstat` when the event happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// `st_mode`: file type and permission bits.
    pub mode: u32,
}

impl FileStat {
    /// True for a regular file.
    pub fn is_regular(&self) -> bool {
        self.mode & 0o170000 == 0o100000
    }
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// Exited with this status code.
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
}

/// Why a process record starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum StartCause {
    /// The producer saw the process begin without knowing how (first
    /// process of a trace, or a preload stream opened late).
    Unknown = 0,
    /// A new program image after a successful `execve`.
    Exec = 1,
    /// A new process created by `fork`/`clone` (same image as the parent).
    Fork = 2,
}

/// Flags on an [`Event::Exec`] attempt.
pub mod exec_flags {
    /// The target is a statically linked executable: LD_PRELOAD cannot see it.
    pub const STATIC_BINARY: u32 = 1 << 0;
    /// The new environment does not carry the preload library any more.
    pub const PRELOAD_DROPPED: u32 = 1 << 1;
    /// The target is set-user-ID or set-group-ID: the loader ignores LD_PRELOAD.
    pub const SETUID: u32 = 1 << 2;
    /// The target is set-user-ID or set-group-ID, but the kernel did not
    /// raise its privileges because it is being traced (ptrace): it runs
    /// as the caller, and may fail or behave differently.
    pub const PRIVILEGE_DROPPED: u32 = 1 << 3;
}

/// Why records were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum LossReason {
    /// Writing records to the trace failed (disk full, fd closed...).
    WriteFailed = 1,
    /// A record did not fit the producer's buffer.
    RecordTooLarge = 2,
    /// A kernel ring buffer was full.
    RingBufferFull = 3,
    /// The producer could not read the tracee's memory.
    Unreadable = 4,
    /// System calls of an ABI the producer does not decode (ia32 or x32
    /// calls from a 64-bit process); `count` is how many were made.
    ForeignAbi = 5,
    /// The process set up io_uring, whose file operations bypass every
    /// backend; `count` is how many rings it created.
    IoUring = 6,
    /// Anything else; the count says how many.
    Other = 255,
}

impl LossReason {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Self::WriteFailed,
            2 => Self::RecordTooLarge,
            3 => Self::RingBufferFull,
            4 => Self::Unreadable,
            5 => Self::ForeignAbi,
            6 => Self::IoUring,
            255 => Self::Other,
            _ => return None,
        })
    }
}

/// A NUL-separated argument vector (each argument followed by one NUL).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Args<'a>(pub &'a [u8]);

impl<'a> Args<'a> {
    /// The arguments, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let bytes = self.0;
        let trimmed = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        let empty = bytes.is_empty();
        trimmed.split(|b| *b == 0).filter(move |_| !empty)
    }
}

/// One traced event. Byte slices borrow from the decoded buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A process (image) starts being traced.
    ProcessStart {
        ppid: u32,
        cause: StartCause,
        /// `CLOCK_REALTIME` nanoseconds, for display.
        realtime_ns: u64,
        exe: &'a [u8],
        exe_stat: Option<FileStat>,
        argv: Args<'a>,
        cwd: &'a [u8],
    },
    /// An exec attempt, reported before the kernel runs it. `result` is 0
    /// when unknown (success is visible as the next image's ProcessStart)
    /// or a negative errno when the attempt failed.
    Exec {
        result: i32,
        flags: u32,
        path: &'a [u8],
        argv: Args<'a>,
    },
    /// The process itself is exiting (`exit`, `_exit`, group exit).
    Exit { status: ExitStatus },
    /// The process reaped a child and saw how it ended.
    ChildExit { child: u32, status: ExitStatus },
    /// An open-family call. `result` is the fd or a negative errno (with
    /// [`FLAG_RESULT_AT_ENTRY`], 0 or a negative errno). `stat` is the
    /// opened file's identity when the open succeeded.
    Open {
        flags: i32,
        mode: u32,
        result: i32,
        stat: Option<FileStat>,
        path: &'a [u8],
    },
    /// `rename*`. `flags` are `renameat2` flags.
    Rename {
        flags: u32,
        result: i32,
        old: &'a [u8],
        new: &'a [u8],
    },
    /// `link*`: `new` becomes another name of `old`.
    Link {
        result: i32,
        old: &'a [u8],
        new: &'a [u8],
    },
    /// `symlink*`: `link` now points at `target` (kept as written).
    Symlink {
        result: i32,
        target: &'a [u8],
        link: &'a [u8],
    },
    /// `unlink*`, `remove`, `rmdir`. `dir` is true for directory removal.
    Unlink {
        result: i32,
        dir: bool,
        path: &'a [u8],
    },
    /// `truncate`/`ftruncate`.
    Truncate {
        result: i32,
        length: u64,
        path: &'a [u8],
    },
    /// `mkdir*`.
    Mkdir {
        result: i32,
        mode: u32,
        path: &'a [u8],
    },
    /// `chdir`/`fchdir`; `path` is the new absolute working directory.
    Chdir { result: i32, path: &'a [u8] },
    /// Data written to a file through an fd (backends that see writes).
    Write { path: &'a [u8] },
    /// Records the producer knows it lost.
    Loss { reason: LossReason, count: u64 },
    /// The BLAKE3 hash of a file's content, taken by the producer before the
    /// run changed, replaced or deleted it: `stat` is the identity it had
    /// then. The hash of an input as it was read, when it is gone by the end.
    Content {
        stat: FileStat,
        blake3: [u8; 32],
        path: &'a [u8],
    },
}

/// Numeric event kinds as they appear in the header.
pub mod kind {
    pub const PROCESS_START: u8 = 1;
    pub const EXEC: u8 = 2;
    pub const EXIT: u8 = 3;
    pub const CHILD_EXIT: u8 = 4;
    pub const OPEN: u8 = 5;
    pub const RENAME: u8 = 6;
    pub const LINK: u8 = 7;
    pub const SYMLINK: u8 = 8;
    pub const UNLINK: u8 = 9;
    pub const TRUNCATE: u8 = 10;
    pub const MKDIR: u8 = 11;
    pub const CHDIR: u8 = 12;
    pub const WRITE: u8 = 13;
    pub const LOSS: u8 = 14;
    pub const CONTENT: u8 = 15;
}

impl Event<'_> {
    /// The header kind byte of this event.
    pub fn kind(&self) -> u8 {
        match self {
            Event::ProcessStart { .. } => kind::PROCESS_START,
            Event::Exec { .. } => kind::EXEC,
            Event::Exit { .. } => kind::EXIT,
            Event::ChildExit { .. } => kind::CHILD_EXIT,
            Event::Open { .. } => kind::OPEN,
            Event::Rename { .. } => kind::RENAME,
            Event::Link { .. } => kind::LINK,
            Event::Symlink { .. } => kind::SYMLINK,
            Event::Unlink { .. } => kind::UNLINK,
            Event::Truncate { .. } => kind::TRUNCATE,
            Event::Mkdir { .. } => kind::MKDIR,
            Event::Chdir { .. } => kind::CHDIR,
            Event::Write { .. } => kind::WRITE,
            Event::Content { .. } => kind::CONTENT,
            Event::Loss { .. } => kind::LOSS,
        }
    }
}

/// A decoded record: header plus event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub header: Header,
    pub event: Event<'a>,
}

#[cfg(test)]
mod tests;
