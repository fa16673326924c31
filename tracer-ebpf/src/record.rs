//! The Rust mirror of `struct re_record` (bpf/roar_ebpf.h), checked
//! against the C layout by the test below.

/// Record kinds.
pub const RE_SYSCALL: u16 = 1;
pub const RE_EXEC: u16 = 2;
pub const RE_FORK: u16 = 3;
pub const RE_EXIT: u16 = 4;
/// Record flags.
pub const RE_F_TRUNCATED: u32 = 1;
pub const RE_F_UNREADABLE: u32 = 2;
pub const RE_F_STAT: u32 = 4;
pub const RE_F_ARGV_TRUNCATED: u32 = 8;
pub const RE_F_FOREIGN: u32 = 16;
/// The record version this crate decodes.
pub const RE_VERSION: u16 = 1;
/// Counters in the STATS map.
pub const RE_STAT_RINGBUF_FULL: u32 = 0;
pub const RE_STAT_TRUNCATED: u32 = 1;
pub const RE_STAT_UNREADABLE: u32 = 2;
pub const RE_NSTATS: u32 = 3;
/// Runs one instance serves at once (bpf/roar_ebpf.h).
pub const RE_NSLOTS: u32 = 64;
/// `roar_ctl` operations.
pub const RE_CTL_TRACE: u64 = 1;
pub const RE_CTL_UNTRACE: u64 = 2;

/// `struct re_slot`: who owns a slot (pid 0: free).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    pub pid: u32,
    pub root: u32,
    pub start_time: u64,
}

// SAFETY: plain integers, no padding.
unsafe impl aya::Pod for Slot {}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RawRecord {
    pub version: u16,
    pub kind: u16,
    pub flags: u32,
    pub pid: u32,
    pub tid: u32,
    pub ts_ns: u64,
    pub ret: i64,
    pub nr: u64,
    pub args: [u64; 6],
    pub st_ino: u64,
    pub st_size: u64,
    pub st_mtime_sec: i64,
    pub st_mtime_nsec: u32,
    pub st_mode: u32,
    pub st_dev: u32,
    pub ppid: u32,
    pub exit_code: u32,
    pub len: [u16; 4],
    pub _pad: u32,
}

impl RawRecord {
    /// The header at the start of `b` and the strings after it.
    pub fn parse(b: &[u8]) -> Option<(RawRecord, [&[u8]; 4])> {
        let n = std::mem::size_of::<RawRecord>();
        if b.len() < n {
            return None;
        }
        // SAFETY: `b` holds at least size_of::<RawRecord>() bytes and every
        // bit pattern is a valid RawRecord (plain integers).
        let rec: RawRecord = unsafe { std::ptr::read_unaligned(b.as_ptr().cast()) };
        if rec.version != RE_VERSION {
            return None;
        }
        let mut strs: [&[u8]; 4] = [&[]; 4];
        let mut at = n;
        for (i, l) in rec.len.iter().enumerate() {
            let end = at.checked_add(*l as usize)?;
            strs[i] = b.get(at..end)?;
            at = end;
        }
        Some((rec, strs))
    }
}

#[cfg(test)]
mod tests {
    use super::RawRecord;
    use std::mem::{offset_of, size_of};

    /// The C compiler's view of the layout, printed by bpf/layout.c.
    const C_LAYOUT: &str = include_str!(concat!(env!("OUT_DIR"), "/layout.txt"));

    #[test]
    fn layout_matches_the_c_header() {
        if C_LAYOUT.is_empty() {
            panic!(
                "bpf/layout.c was not built ({}); install clang",
                env!("ROAR_EBPF_BUILD_ERROR")
            );
        }
        macro_rules! field {
            ($f:ident) => {
                (
                    stringify!($f),
                    offset_of!(RawRecord, $f),
                    size_of_val(&RawRecord::default().$f),
                )
            };
        }
        let rust = [
            ("size", size_of::<RawRecord>(), size_of::<RawRecord>()),
            field!(version),
            field!(kind),
            field!(flags),
            field!(pid),
            field!(tid),
            field!(ts_ns),
            field!(ret),
            field!(nr),
            field!(args),
            field!(st_ino),
            field!(st_size),
            field!(st_mtime_sec),
            field!(st_mtime_nsec),
            field!(st_mode),
            field!(st_dev),
            field!(ppid),
            field!(exit_code),
            field!(len),
            field!(_pad),
        ];
        let konst = |n: &'static str, v: u64| (n, v as usize, 0usize);
        let consts = [
            konst("RE_VERSION", super::RE_VERSION.into()),
            konst("RE_SYSCALL", super::RE_SYSCALL.into()),
            konst("RE_EXEC", super::RE_EXEC.into()),
            konst("RE_FORK", super::RE_FORK.into()),
            konst("RE_EXIT", super::RE_EXIT.into()),
            konst("RE_F_TRUNCATED", super::RE_F_TRUNCATED.into()),
            konst("RE_F_UNREADABLE", super::RE_F_UNREADABLE.into()),
            konst("RE_F_STAT", super::RE_F_STAT.into()),
            konst("RE_F_ARGV_TRUNCATED", super::RE_F_ARGV_TRUNCATED.into()),
            konst("RE_F_FOREIGN", super::RE_F_FOREIGN.into()),
            konst("RE_STAT_RINGBUF_FULL", super::RE_STAT_RINGBUF_FULL.into()),
            konst("RE_STAT_TRUNCATED", super::RE_STAT_TRUNCATED.into()),
            konst("RE_STAT_UNREADABLE", super::RE_STAT_UNREADABLE.into()),
            konst("RE_NSTATS", super::RE_NSTATS.into()),
            konst("RE_NSLOTS", super::RE_NSLOTS.into()),
            konst("RE_CTL_TRACE", super::RE_CTL_TRACE),
            konst("RE_CTL_UNTRACE", super::RE_CTL_UNTRACE),
            ("slot", size_of::<super::Slot>(), size_of::<super::Slot>()),
            ("slot.start_time", offset_of!(super::Slot, start_time), 8),
        ];
        let rust: Vec<(&str, usize, usize)> = rust.into_iter().chain(consts).collect();
        let c: Vec<(String, usize, usize)> = C_LAYOUT
            .lines()
            .map(|l| {
                let v: Vec<&str> = l.split_whitespace().collect();
                (
                    v[0].to_string(),
                    v[1].parse().unwrap(),
                    v[2].parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(c.len(), rust.len(), "a field was added on one side only");
        for ((cn, co, cs), (rn, ro, rs)) in c.iter().zip(rust.iter().copied()) {
            assert_eq!((cn.as_str(), *co, *cs), (rn, ro, rs));
        }
    }
}
