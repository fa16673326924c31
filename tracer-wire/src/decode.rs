//! Borrowing, panic-free decoding.

use crate::{
    Args, Event, ExitStatus, FileStat, HEADER_LEN, Header, LossReason, MAGIC, MAX_RECORD_LEN,
    MIN_VERSION, Record, StartCause, VERSION, kind,
};

/// Why bytes could not be decoded. `offset` is where the bad record starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The stream ends inside a record (a producer died mid-write).
    Truncated { offset: usize },
    /// The record does not start with [`MAGIC`].
    BadMagic { offset: usize },
    /// The record was written by another format version.
    UnsupportedVersion { offset: usize, version: u8 },
    /// The kind byte names no known event.
    UnknownKind { offset: usize, kind: u8 },
    /// The length field is impossible, or fields overrun or underrun it.
    BadLength { offset: usize },
    /// A field holds a value outside its domain.
    BadField { offset: usize, field: &'static str },
    /// The record's bytes are not what its producer wrote (its checksum
    /// does not match): it was skipped by its length.
    Checksum { offset: usize },
}

impl DecodeError {
    /// Where the damaged record starts.
    pub fn offset(&self) -> usize {
        match *self {
            Self::Truncated { offset }
            | Self::BadMagic { offset }
            | Self::UnsupportedVersion { offset, .. }
            | Self::UnknownKind { offset, .. }
            | Self::BadLength { offset }
            | Self::BadField { offset, .. }
            | Self::Checksum { offset } => offset,
        }
    }
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated { offset } => write!(f, "trace ends inside a record at byte {offset}"),
            Self::BadMagic { offset } => write!(f, "no record header at byte {offset}"),
            Self::UnsupportedVersion { offset, version } => {
                write!(
                    f,
                    "record at byte {offset} has format version {version}, expected {MIN_VERSION} to {VERSION}"
                )
            }
            Self::UnknownKind { offset, kind } => {
                write!(f, "record at byte {offset} has unknown kind {kind}")
            }
            Self::BadLength { offset } => write!(f, "record at byte {offset} has a bad length"),
            Self::BadField { offset, field } => {
                write!(f, "record at byte {offset} has an invalid {field}")
            }
            Self::Checksum { offset } => {
                write!(
                    f,
                    "record at byte {offset} is damaged (its checksum does not match)"
                )
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    offset: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::BadLength {
            offset: self.offset,
        })?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::BadLength {
            offset: self.offset,
        })?;
        self.pos = end;
        Ok(s)
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.arr::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.arr()?))
    }
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn bad(&self, field: &'static str) -> DecodeError {
        DecodeError::BadField {
            offset: self.offset,
            field,
        }
    }
    fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(self.bad(field)),
        }
    }
    fn stat(&mut self) -> Result<Option<FileStat>, DecodeError> {
        if !self.bool("stat marker")? {
            return Ok(None);
        }
        Ok(Some(FileStat {
            dev: self.u64()?,
            ino: self.u64()?,
            size: self.u64()?,
            mtime_ns: self.i64()?,
            mode: self.u32()?,
        }))
    }
    fn status(&mut self) -> Result<ExitStatus, DecodeError> {
        let tag = self.u8()?;
        let v = self.i32()?;
        match tag {
            0 => Ok(ExitStatus::Code(v)),
            1 => Ok(ExitStatus::Signal(v)),
            _ => Err(self.bad("exit status")),
        }
    }
    fn args(&mut self) -> Result<Args<'a>, DecodeError> {
        let b = self.bytes()?;
        if !b.is_empty() && b.last() != Some(&0) {
            return Err(self.bad("argument vector"));
        }
        Ok(Args(b))
    }
}

/// Iterates over the records of a byte stream.
///
/// A damaged record never ends the stream: one whose header is sound (its
/// length fits) but whose checksum or payload is not is skipped by its
/// length; one whose header is not is skipped up to the next place a record
/// header with a matching checksum starts. Each skip is one `Err`, naming
/// where the damage starts; the records after it are read.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// Byte offset of the next record.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn next_record(&mut self) -> Result<Record<'a>, DecodeError> {
        let offset = self.pos;
        let rest = &self.buf[offset..];
        if rest.len() < HEADER_LEN {
            return Err(DecodeError::Truncated { offset });
        }
        let mut r = Reader {
            buf: &rest[..HEADER_LEN],
            pos: 0,
            offset,
        };
        let magic = u16::from_le_bytes(r.arr()?);
        if magic != MAGIC {
            return Err(DecodeError::BadMagic { offset });
        }
        let version = r.u8()?;
        if !(MIN_VERSION..=VERSION).contains(&version) {
            return Err(DecodeError::UnsupportedVersion { offset, version });
        }
        let kind = r.u8()?;
        let len = r.u32()? as usize;
        if !(HEADER_LEN..=MAX_RECORD_LEN).contains(&len) {
            return Err(DecodeError::BadLength { offset });
        }
        if rest.len() < len {
            return Err(DecodeError::Truncated { offset });
        }
        // From here on the length is trusted: whatever is wrong below, the
        // next record starts after it.
        self.pos = offset + len;
        if version >= 2 && crate::stored_checksum(rest) != Some(crate::checksum(&rest[..len])) {
            return Err(DecodeError::Checksum { offset });
        }
        let header = Header {
            seq: r.u64()?,
            ts_ns: r.u64()?,
            pid: r.u32()?,
            tid: r.u32()?,
            flags: r.u32()?,
        };
        let mut p = Reader {
            buf: &rest[..len],
            pos: HEADER_LEN,
            offset,
        };
        let event = decode_payload(kind, &mut p)?;
        if p.pos != len {
            return Err(DecodeError::BadLength { offset });
        }
        Ok(Record { header, event })
    }
}

fn decode_payload<'a>(k: u8, p: &mut Reader<'a>) -> Result<Event<'a>, DecodeError> {
    Ok(match k {
        kind::PROCESS_START => {
            let ppid = p.u32()?;
            let cause = match p.u8()? {
                0 => StartCause::Unknown,
                1 => StartCause::Exec,
                2 => StartCause::Fork,
                _ => return Err(p.bad("start cause")),
            };
            let realtime_ns = p.u64()?;
            let exe_stat = p.stat()?;
            let exe = p.bytes()?;
            let cwd = p.bytes()?;
            let argv = p.args()?;
            Event::ProcessStart {
                ppid,
                cause,
                realtime_ns,
                exe,
                exe_stat,
                argv,
                cwd,
            }
        }
        kind::EXEC => {
            let result = p.i32()?;
            let flags = p.u32()?;
            let path = p.bytes()?;
            let argv = p.args()?;
            Event::Exec {
                result,
                flags,
                path,
                argv,
            }
        }
        kind::EXIT => Event::Exit {
            status: p.status()?,
        },
        kind::CHILD_EXIT => Event::ChildExit {
            child: p.u32()?,
            status: p.status()?,
        },
        kind::OPEN => Event::Open {
            flags: p.i32()?,
            mode: p.u32()?,
            result: p.i32()?,
            stat: p.stat()?,
            path: p.bytes()?,
        },
        kind::RENAME => Event::Rename {
            flags: p.u32()?,
            result: p.i32()?,
            old: p.bytes()?,
            new: p.bytes()?,
        },
        kind::LINK => Event::Link {
            result: p.i32()?,
            old: p.bytes()?,
            new: p.bytes()?,
        },
        kind::SYMLINK => Event::Symlink {
            result: p.i32()?,
            target: p.bytes()?,
            link: p.bytes()?,
        },
        kind::UNLINK => Event::Unlink {
            result: p.i32()?,
            dir: p.bool("directory flag")?,
            path: p.bytes()?,
        },
        kind::TRUNCATE => Event::Truncate {
            result: p.i32()?,
            length: p.u64()?,
            path: p.bytes()?,
        },
        kind::MKDIR => Event::Mkdir {
            result: p.i32()?,
            mode: p.u32()?,
            path: p.bytes()?,
        },
        kind::CHDIR => Event::Chdir {
            result: p.i32()?,
            path: p.bytes()?,
        },
        kind::WRITE => Event::Write { path: p.bytes()? },
        kind::CONTENT => Event::Content {
            stat: p.stat()?.ok_or_else(|| p.bad("content stat"))?,
            blake3: p.arr()?,
            path: p.bytes()?,
        },
        kind::LOSS => {
            let reason = LossReason::from_u8(p.u8()?).ok_or(p.bad("loss reason"))?;
            Event::Loss {
                reason,
                count: p.u64()?,
            }
        }
        other => {
            return Err(DecodeError::UnknownKind {
                offset: p.offset,
                kind: other,
            });
        }
    })
}

/// The length of a record whose writer died before storing its magic (a
/// producer that stores the magic last): the rest of its header is there,
/// so the records after it can still be read. Its sequence number is
/// missing from the stream, which is how the loss shows.
fn unfinished_len(rest: &[u8]) -> Option<usize> {
    let head = rest.get(..HEADER_LEN)?;
    if !head
        .get(2)
        .is_some_and(|v| (MIN_VERSION..=VERSION).contains(v))
    {
        return None;
    }
    let len = crate::stated_len(head)?;
    ((HEADER_LEN..=MAX_RECORD_LEN).contains(&len) && len <= rest.len()).then_some(len)
}

impl<'a> Iterator for Decoder<'a> {
    type Item = Result<Record<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.pos >= self.buf.len() {
                return None;
            }
            let rest = &self.buf[self.pos..];
            if !rest.starts_with(&[0, 0]) {
                break;
            }
            if rest.iter().all(|b| *b == 0) {
                // Space a producer had reserved (a memory-mapped stream):
                // the end, not damage.
                self.pos = self.buf.len();
                return None;
            }
            match unfinished_len(rest) {
                Some(len) => self.pos += len,
                None => break,
            }
        }
        let start = self.pos;
        let r = self.next_record();
        if r.is_err() && self.pos == start {
            // The header itself is unsound: go on from the next place a
            // whole, sound record starts.
            self.pos = self.resync(start + 1);
        }
        Some(r)
    }
}

impl Decoder<'_> {
    /// The first offset from `from` where a record with a sound header and
    /// a matching checksum starts (or the end).
    fn resync(&self, from: usize) -> usize {
        let magic = MAGIC.to_le_bytes();
        let mut at = from;
        while let Some(i) = self
            .buf
            .get(at..)
            .and_then(|b| b.windows(2).position(|w| w == magic))
        {
            let cand = at + i;
            if sound_at(self.buf, cand) {
                return cand;
            }
            at = cand + 1;
        }
        self.buf.len()
    }
}

/// True when a version-2 record with a sound length and a matching checksum
/// starts at `at`.
fn sound_at(buf: &[u8], at: usize) -> bool {
    let Some(head) = buf.get(at..at + HEADER_LEN) else {
        return false;
    };
    if head[2] != VERSION {
        return false;
    }
    let len = crate::stated_len(head).unwrap_or(0);
    (HEADER_LEN..=MAX_RECORD_LEN).contains(&len)
        && buf
            .get(at..at + len)
            .is_some_and(|rec| crate::stored_checksum(rec) == Some(crate::checksum(rec)))
}
