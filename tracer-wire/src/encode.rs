//! Allocation-free encoding into a caller-supplied buffer.

use crate::{
    Args, Event, ExitStatus, FLAG_ARGV_TRUNCATED, FileStat, HEADER_LEN, Header, MAGIC, VERSION,
};

/// Why a record could not be encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The buffer cannot hold the record's fixed fields and paths.
    BufferTooSmall,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("record does not fit the buffer")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for EncodeError {}

struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(EncodeError::BufferTooSmall)?;
        let dst = self
            .buf
            .get_mut(self.pos..end)
            .ok_or(EncodeError::BufferTooSmall)?;
        dst.copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }
    fn u8(&mut self, v: u8) -> Result<(), EncodeError> {
        self.put(&[v])
    }
    fn u32(&mut self, v: u32) -> Result<(), EncodeError> {
        self.put(&v.to_le_bytes())
    }
    fn i32(&mut self, v: i32) -> Result<(), EncodeError> {
        self.put(&v.to_le_bytes())
    }
    fn u64(&mut self, v: u64) -> Result<(), EncodeError> {
        self.put(&v.to_le_bytes())
    }
    fn bytes(&mut self, v: &[u8]) -> Result<(), EncodeError> {
        let len = u32::try_from(v.len()).map_err(|_| EncodeError::BufferTooSmall)?;
        self.u32(len)?;
        self.put(v)
    }
    fn stat(&mut self, st: &Option<FileStat>) -> Result<(), EncodeError> {
        match st {
            None => self.u8(0),
            Some(st) => {
                self.u8(1)?;
                self.u64(st.dev)?;
                self.u64(st.ino)?;
                self.u64(st.size)?;
                self.put(&st.mtime_ns.to_le_bytes())?;
                self.u32(st.mode)
            }
        }
    }
    fn status(&mut self, st: ExitStatus) -> Result<(), EncodeError> {
        match st {
            ExitStatus::Code(c) => {
                self.u8(0)?;
                self.i32(c)
            }
            ExitStatus::Signal(s) => {
                self.u8(1)?;
                self.i32(s)
            }
        }
    }
    /// Writes argv as the last field, dropping whole trailing arguments
    /// when the buffer is too small. Returns true when it cut something.
    fn args_last(&mut self, args: Args<'_>) -> Result<bool, EncodeError> {
        let room = self.buf.len().saturating_sub(self.pos).saturating_sub(4);
        if args.0.len() <= room {
            self.bytes(args.0)?;
            return Ok(false);
        }
        // Keep whole arguments only: cut after the last NUL that fits.
        let head = &args.0[..room];
        let keep = head.iter().rposition(|b| *b == 0).map_or(0, |i| i + 1);
        self.bytes(&args.0[..keep])?;
        Ok(true)
    }
}

/// Encodes `event` with `header` into `buf` and returns the record length.
///
/// `header.flags` is written as given, plus [`FLAG_ARGV_TRUNCATED`] when an
/// argument vector had to be cut to fit. Paths are never cut here: a
/// producer that has a truncated path sets [`crate::FLAG_PATH_TRUNCATED`].
pub fn encode(header: &Header, event: &Event<'_>, buf: &mut [u8]) -> Result<usize, EncodeError> {
    if buf.len() < HEADER_LEN {
        return Err(EncodeError::BufferTooSmall);
    }
    let mut w = Writer {
        buf,
        pos: HEADER_LEN,
    };
    let mut flags = header.flags;
    match *event {
        Event::ProcessStart {
            ppid,
            cause,
            realtime_ns,
            exe,
            exe_stat,
            argv,
            cwd,
        } => {
            w.u32(ppid)?;
            w.u8(cause as u8)?;
            w.u64(realtime_ns)?;
            w.stat(&exe_stat)?;
            w.bytes(exe)?;
            w.bytes(cwd)?;
            if w.args_last(argv)? {
                flags |= FLAG_ARGV_TRUNCATED;
            }
        }
        Event::Exec {
            result,
            flags: exec_flags,
            path,
            argv,
        } => {
            w.i32(result)?;
            w.u32(exec_flags)?;
            w.bytes(path)?;
            if w.args_last(argv)? {
                flags |= FLAG_ARGV_TRUNCATED;
            }
        }
        Event::Exit { status } => w.status(status)?,
        Event::ChildExit { child, status } => {
            w.u32(child)?;
            w.status(status)?;
        }
        Event::Open {
            flags: oflags,
            mode,
            result,
            stat,
            path,
        } => {
            w.i32(oflags)?;
            w.u32(mode)?;
            w.i32(result)?;
            w.stat(&stat)?;
            w.bytes(path)?;
        }
        Event::Rename {
            flags: rflags,
            result,
            old,
            new,
        } => {
            w.u32(rflags)?;
            w.i32(result)?;
            w.bytes(old)?;
            w.bytes(new)?;
        }
        Event::Link { result, old, new } => {
            w.i32(result)?;
            w.bytes(old)?;
            w.bytes(new)?;
        }
        Event::Symlink {
            result,
            target,
            link,
        } => {
            w.i32(result)?;
            w.bytes(target)?;
            w.bytes(link)?;
        }
        Event::Unlink { result, dir, path } => {
            w.i32(result)?;
            w.u8(dir as u8)?;
            w.bytes(path)?;
        }
        Event::Truncate {
            result,
            length,
            path,
        } => {
            w.i32(result)?;
            w.u64(length)?;
            w.bytes(path)?;
        }
        Event::Mkdir { result, mode, path } => {
            w.i32(result)?;
            w.u32(mode)?;
            w.bytes(path)?;
        }
        Event::Chdir { result, path } => {
            w.i32(result)?;
            w.bytes(path)?;
        }
        Event::Write { path } => w.bytes(path)?,
        Event::Content { stat, blake3, path } => {
            w.stat(&Some(stat))?;
            w.put(&blake3)?;
            w.bytes(path)?;
        }
        Event::Loss { reason, count } => {
            w.u8(reason as u8)?;
            w.u64(count)?;
        }
    }
    let len = w.pos;
    let len32 = u32::try_from(len).map_err(|_| EncodeError::BufferTooSmall)?;
    let mut h = Writer { buf: w.buf, pos: 0 };
    h.put(&MAGIC.to_le_bytes())?;
    h.u8(VERSION)?;
    h.u8(event.kind())?;
    h.u32(len32)?;
    h.u64(header.seq)?;
    h.u64(header.ts_ns)?;
    h.u32(header.pid)?;
    h.u32(header.tid)?;
    h.u32(flags)?;
    h.u32(0)?; // the checksum, once the rest is written
    debug_assert_eq!(h.pos, HEADER_LEN);
    crate::seal(&mut h.buf[..len]);
    Ok(len)
}
