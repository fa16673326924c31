extern crate std;
use std::vec::Vec;

use crate::*;

fn samples() -> Vec<Event<'static>> {
    let st = Some(FileStat {
        dev: 2049,
        ino: 77,
        size: 10,
        mtime_ns: -5,
        mode: 0o100644,
    });
    std::vec![
        Event::ProcessStart {
            ppid: 1,
            cause: StartCause::Exec,
            realtime_ns: 123,
            exe: b"/usr/bin/python3",
            exe_stat: st,
            argv: Args(b"python3\0train.py\0\0"),
            cwd: b"/work/dir",
        },
        Event::Exec {
            result: -2,
            flags: exec_flags::STATIC_BINARY,
            path: b"/bin/x",
            argv: Args(b"")
        },
        Event::Exit {
            status: ExitStatus::Code(3)
        },
        Event::ChildExit {
            child: 99,
            status: ExitStatus::Signal(9)
        },
        Event::Open {
            flags: 0o1101,
            mode: 0o644,
            result: 3,
            stat: st,
            path: b"/a/\xff name"
        },
        Event::Open {
            flags: 0,
            mode: 0,
            result: -2,
            stat: None,
            path: b"/nope"
        },
        Event::Rename {
            flags: 1,
            result: 0,
            old: b"/a/.tmp",
            new: b"/a/final"
        },
        Event::Link {
            result: 0,
            old: b"/a",
            new: b"/b"
        },
        Event::Symlink {
            result: 0,
            target: b"../rel",
            link: b"/a/l"
        },
        Event::Unlink {
            result: 0,
            dir: true,
            path: b"/a/d"
        },
        Event::Truncate {
            result: 0,
            length: 1 << 40,
            path: b"/a/t"
        },
        Event::Mkdir {
            result: -17,
            mode: 0o755,
            path: b"/a/d"
        },
        Event::Chdir {
            result: 0,
            path: b"/a"
        },
        Event::Write { path: b"/a/w" },
        Event::Content {
            stat: FileStat {
                dev: 3,
                ino: 4,
                size: 5,
                mtime_ns: 6,
                mode: 0o100644,
            },
            blake3: [7; 32],
            path: b"/a/edited",
        },
        Event::Loss {
            reason: LossReason::RingBufferFull,
            count: 42
        },
    ]
}

fn stream() -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    for (i, ev) in samples().iter().enumerate() {
        let h = Header {
            seq: i as u64,
            ts_ns: 1000 + i as u64,
            pid: 7,
            tid: 8,
            flags: 0,
        };
        let n = encode(&h, ev, &mut buf).unwrap();
        out.extend_from_slice(&buf[..n]);
    }
    out
}

#[test]
fn every_kind_round_trips() {
    let bytes = stream();
    let decoded: Vec<_> = Decoder::new(&bytes).collect::<Result<_, _>>().unwrap();
    assert_eq!(decoded.len(), samples().len());
    for (i, (rec, ev)) in decoded.iter().zip(samples()).enumerate() {
        assert_eq!(rec.event, ev);
        assert_eq!(rec.header.seq, i as u64);
        assert_eq!(rec.header.pid, 7);
        assert_eq!(rec.header.tid, 8);
    }
}

#[test]
fn args_iterate_including_empty_arguments() {
    let a = Args(b"python3\0\0-x\0");
    let v: Vec<&[u8]> = a.iter().collect();
    assert_eq!(v, [&b"python3"[..], b"", b"-x"]);
    assert_eq!(Args(b"").iter().count(), 0);
}

#[test]
fn every_truncated_prefix_is_an_error_not_a_panic() {
    let bytes = stream();
    let first_len = {
        let mut d = Decoder::new(&bytes);
        d.next().unwrap().unwrap();
        d.position()
    };
    for cut in 1..bytes.len() {
        let res: Result<Vec<_>, _> = Decoder::new(&bytes[..cut]).collect();
        if cut < first_len {
            assert!(
                matches!(res, Err(DecodeError::Truncated { offset: 0 })),
                "cut {cut}"
            );
        }
        // Whatever was decodable before the cut is returned before the error.
        let ok = Decoder::new(&bytes[..cut])
            .take_while(|r| r.is_ok())
            .count();
        assert!(ok <= samples().len());
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut x: u64 = 0x9E3779B97F4A7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let good = stream();
    for round in 0..20_000 {
        let mut buf: Vec<u8> = if round % 2 == 0 {
            (0..(next() % 300)).map(|_| next() as u8).collect()
        } else {
            // Valid stream with a few bytes flipped: exercises field checks.
            let mut g = good.clone();
            for _ in 0..(1 + next() % 4) {
                let i = (next() as usize) % g.len();
                g[i] = next() as u8;
            }
            g
        };
        if round % 3 == 0 && buf.len() >= 2 {
            buf[0..2].copy_from_slice(&MAGIC.to_le_bytes());
        }
        for r in Decoder::new(&buf) {
            let _ = r;
        }
    }
}

#[test]
fn bad_header_fields_are_named() {
    let mut bytes = stream();
    bytes[2] = 9;
    assert_eq!(
        Decoder::new(&bytes).next(),
        Some(Err(DecodeError::UnsupportedVersion {
            offset: 0,
            version: 9
        }))
    );
    let mut bytes = stream();
    bytes[3] = 200;
    let len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    restamp(&mut bytes[..len], 0); // a producer that wrote a kind we do not know
    assert_eq!(
        Decoder::new(&bytes).next(),
        Some(Err(DecodeError::UnknownKind {
            offset: 0,
            kind: 200
        }))
    );
    let mut bytes = stream();
    bytes[0] = b'X';
    assert_eq!(
        Decoder::new(&bytes).next(),
        Some(Err(DecodeError::BadMagic { offset: 0 }))
    );
}

#[test]
fn long_argv_is_cut_at_an_argument_boundary_and_flagged() {
    let mut argv = Vec::new();
    for i in 0..1000 {
        argv.extend_from_slice(std::format!("argument-{i}\0").as_bytes());
    }
    let ev = Event::Exec {
        result: 0,
        flags: 0,
        path: b"/bin/echo",
        argv: Args(&argv),
    };
    let mut buf = [0u8; 512];
    let n = encode(&Header::default(), &ev, &mut buf).unwrap();
    let rec = Decoder::new(&buf[..n]).next().unwrap().unwrap();
    assert!(rec.header.flags & FLAG_ARGV_TRUNCATED != 0);
    let Event::Exec { argv, .. } = rec.event else {
        panic!()
    };
    let kept: Vec<_> = argv.iter().collect();
    assert!(!kept.is_empty() && kept.len() < 1000);
    assert_eq!(kept[0], b"argument-0");
}

#[test]
fn paths_that_do_not_fit_are_an_error() {
    let path = [b'a'; 600];
    let ev = Event::Open {
        flags: 0,
        mode: 0,
        result: 3,
        stat: None,
        path: &path,
    };
    let mut buf = [0u8; 512];
    assert_eq!(
        encode(&Header::default(), &ev, &mut buf),
        Err(EncodeError::BufferTooSmall)
    );
}

#[test]
fn a_zero_tail_is_the_end() {
    let mut bytes = stream();
    let n = samples().len();
    bytes.extend_from_slice(&[0u8; 4096]);
    let decoded: Vec<_> = Decoder::new(&bytes).collect::<Result<_, _>>().unwrap();
    assert_eq!(decoded.len(), n);
    assert_eq!(Decoder::new(&[0u8; 10]).count(), 0);
}

#[test]
fn a_record_without_its_magic_is_skipped_by_its_length() {
    // Three records; the middle one's writer died before storing the magic.
    let bytes = stream();
    let mut d = Decoder::new(&bytes);
    d.next().unwrap().unwrap();
    let second = d.position();
    d.next().unwrap().unwrap();
    let third = d.position();
    let mut cut = bytes[..third].to_vec();
    cut[second..second + 2].fill(0);
    // ...and the rest of that slot partly unwritten.
    cut[second + HEADER_LEN..third].fill(0);
    cut.extend_from_slice(&bytes[third..]);
    cut.extend_from_slice(&[0u8; 100]);
    let seqs: Vec<u64> = Decoder::new(&cut).map(|r| r.unwrap().header.seq).collect();
    let want: Vec<u64> = (0..samples().len() as u64).filter(|s| *s != 1).collect();
    assert_eq!(seqs, want);
    // Zeros followed by records are damage, not an end.
    let mut holed = bytes.clone();
    holed[second..third].fill(0);
    assert!(matches!(
        Decoder::new(&holed).nth(1),
        Some(Err(DecodeError::BadMagic { .. }))
    ));
}

/// The length of the first record of `bytes`.
fn first_len(bytes: &[u8]) -> usize {
    u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize
}

#[test]
fn a_damaged_record_is_skipped_and_the_rest_read() {
    let clean = stream();
    let all = Decoder::new(&clean).count();
    // A flipped bit inside the first record's payload: one error, then
    // every other record.
    let mut bytes = clean.clone();
    bytes[HEADER_LEN + 1] ^= 0x10;
    let got: Vec<_> = Decoder::new(&bytes).collect();
    assert_eq!(got.len(), all);
    assert_eq!(got[0], Err(DecodeError::Checksum { offset: 0 }));
    assert!(got[1..].iter().all(Result::is_ok));
    // A header whose length is garbage: skipped up to the next sound record.
    let mut bytes = clean.clone();
    bytes[5] = 0xff;
    let got: Vec<_> = Decoder::new(&bytes).collect();
    assert!(got[0].is_err());
    assert_eq!(got.iter().filter(|r| r.is_ok()).count(), all - 1);
    // Bytes inserted between records, and a stream cut in its last record.
    let n = first_len(&clean);
    let mut bytes = clean[..n].to_vec();
    bytes.extend_from_slice(b"garbage!");
    bytes.extend_from_slice(&clean[n..clean.len() - 3]);
    let got: Vec<_> = Decoder::new(&bytes).collect();
    assert_eq!(got.iter().filter(|r| r.is_ok()).count(), all - 1);
    assert_eq!(got.iter().filter(|r| r.is_err()).count(), 2);
}

#[test]
fn version_1_records_are_still_read() {
    let mut bytes = stream();
    let n = first_len(&bytes);
    bytes[2] = 1;
    bytes[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&[0; 4]);
    let first = Decoder::new(&bytes[..n]).next().unwrap();
    assert!(first.is_ok(), "{first:?}");
}

#[test]
fn every_single_bit_flip_is_caught() {
    let clean = stream();
    let n = first_len(&clean);
    for byte in 0..n {
        for bit in 0..8 {
            let mut bytes = clean[..n].to_vec();
            bytes[byte] ^= 1 << bit;
            let got: Vec<_> = Decoder::new(&bytes).collect();
            assert!(
                got.iter().all(|r| r.is_err()),
                "byte {byte} bit {bit} went unnoticed: {got:?}"
            );
        }
    }
}
