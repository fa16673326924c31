//! The trace stream, written through a shared memory mapping.
//!
//! A record costs a memory copy and no system call, and every record is in
//! the page cache the moment it is written: if roar is killed, even by
//! SIGKILL, the next roar reads the stream up to the last whole record. The
//! file grows in [`CHUNK`] steps; the unused tail is zeros, which readers
//! take as the end. [`Sink::finish`] cuts the file to its real length.
//!
//! The ptrace and eBPF backends both write their stream with it.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use tracer_wire::{Event, Header, LossReason, MAX_RECORD_LEN, encode};

const CHUNK: usize = 4 << 20;

/// Written as zeros through `pwrite` before the mapping is first touched.
/// On ext4 the first write fault of a fresh file costs about a millisecond
/// (the fault path updates the file's times under a journal handle); after
/// a plain write of the first pages the fault costs microseconds, and
/// cutting the file to length at the end is cheaper too.
const PREFILL: usize = 64 << 10;
static ZEROS: [u8; PREFILL] = [0; PREFILL];

pub struct Sink {
    file: File,
    map: *mut u8,
    cap: usize,
    len: usize,
    seq: u64,
    /// Records that could not be written (file could not grow).
    lost: u64,
}

// SAFETY: the mapping is owned by the Sink alone and only touched through
// `&mut self`; moving it to another thread moves that ownership.
unsafe impl Send for Sink {}

impl Sink {
    pub fn create(path: &Path) -> io::Result<Sink> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        let mut s = Sink {
            file,
            map: std::ptr::null_mut(),
            cap: 0,
            len: 0,
            seq: 0,
            lost: 0,
        };
        s.grow(CHUNK)?;
        std::os::unix::fs::FileExt::write_all_at(&s.file, &ZEROS, 0)?;
        Ok(s)
    }

    fn grow(&mut self, at_least: usize) -> io::Result<()> {
        let new_cap = (self.cap + at_least.max(CHUNK)).next_multiple_of(CHUNK);
        self.file.set_len(new_cap as u64)?;
        // SAFETY: mapping (or remapping) our own file, sized just above;
        // the old mapping is not referenced after mremap.
        let p = unsafe {
            if self.map.is_null() {
                libc::mmap(
                    std::ptr::null_mut(),
                    new_cap,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    self.file.as_raw_fd(),
                    0,
                )
            } else {
                libc::mremap(self.map.cast(), self.cap, new_cap, libc::MREMAP_MAYMOVE)
            }
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        self.map = p.cast();
        self.cap = new_cap;
        Ok(())
    }

    /// Appends one record.
    pub fn emit(&mut self, ts_ns: u64, pid: u32, tid: u32, flags: u32, ev: &Event<'_>) {
        let h = Header {
            seq: self.seq,
            ts_ns,
            pid,
            tid,
            flags,
        };
        // Keep room for the largest record, so that encode never has to cut
        // an argument vector for want of space at the end of a chunk.
        if self.cap - self.len < MAX_RECORD_LEN && self.grow(MAX_RECORD_LEN).is_err() {
            self.lost += 1;
            return;
        }
        // SAFETY: [len, cap) lies inside the live mapping.
        let room =
            unsafe { std::slice::from_raw_parts_mut(self.map.add(self.len), self.cap - self.len) };
        match encode(&h, ev, room) {
            Ok(n) => {
                self.len += n;
                self.seq += 1;
            }
            Err(_) => self.lost += 1,
        }
    }

    /// Reports lost records, then cuts the file to what was written.
    pub fn finish(mut self, ts_ns: u64, pid: u32) -> io::Result<()> {
        if self.lost > 0 {
            let count = self.lost;
            self.lost = 0;
            self.emit(
                ts_ns,
                pid,
                pid,
                0,
                &Event::Loss {
                    reason: LossReason::WriteFailed,
                    count,
                },
            );
        }
        let len = self.len as u64;
        self.unmap();
        self.file.set_len(len)
    }

    fn unmap(&mut self) {
        if !self.map.is_null() {
            // SAFETY: our mapping, not used after this.
            unsafe { libc::munmap(self.map.cast(), self.cap) };
            self.map = std::ptr::null_mut();
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.unmap();
    }
}
