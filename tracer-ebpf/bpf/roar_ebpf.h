/* The record the BPF program hands to user space through the ring buffer.
 *
 * This header is the one definition of the layout. The Rust mirror in
 * src/record.rs is checked against it field by field: build.rs compiles
 * layout.c (which prints offsetof/sizeof of every field below) and a unit
 * test compares the numbers with Rust's offset_of!. */
#ifndef ROAR_EBPF_H
#define ROAR_EBPF_H

#define RE_VERSION 1

/* Record kinds. */
#define RE_SYSCALL 1 /* a traced system call returned */
#define RE_EXEC 2    /* a traced process started a new image */
#define RE_FORK 3    /* a traced process created a process */
#define RE_EXIT 4    /* the last thread of a traced process ended */

/* Record flags. */
#define RE_F_TRUNCATED 1  /* a path or directory walk was cut short */
#define RE_F_UNREADABLE 2 /* an argument could not be read */
#define RE_F_STAT 4       /* the st_* fields describe the file opened/executed */
#define RE_F_ARGV_TRUNCATED 8 /* argv was cut */
#define RE_F_FOREIGN 16   /* an ia32 or x32 system call, not decoded (nr as made) */

/* Strings follow the header back to back; len[i] is the byte length of
 * string i (0 when absent). Slots: 0 a path argument as the caller wrote
 * it, 1 the directory it is relative to (or the file an fd names) as
 * dentry names from the leaf up, NUL-terminated each; 2 and 3 the same for
 * a second path. RE_EXEC: 0 the filename, 1 the cwd, 2 argv, 3 the
 * executable. */
#define RE_NSTR 4

/* Counters in the STATS array. */
#define RE_STAT_RINGBUF_FULL 0
#define RE_STAT_TRUNCATED 1
#define RE_STAT_UNREADABLE 2
#define RE_NSTATS 3

/* Runs one instance serves at once: each run owns a slot, its ring buffer
 * is RINGS[slot], its counters STATS[slot * RE_NSTATS + i], and each traced
 * tgid maps to its slot in TRACED. A power of two (the program masks). */
#define RE_NSLOTS 64

/* roar_ctl operations (run by user space with BPF_PROG_TEST_RUN, so that
 * the traced bitmap is only ever changed by atomic operations). */
#define RE_CTL_TRACE 1   /* ctx: op, tgid, slot */
#define RE_CTL_UNTRACE 2 /* ctx: op, tgid */

/* SLOTS[i]: who owns slot i (pid 0: free); user space only. */
struct re_slot {
	__u32 pid;        /* the roar that registered */
	__u32 root;       /* the command it runs */
	__u64 start_time; /* the roar's start time (/proc/PID/stat field 22) */
};

struct re_record {
	__u16 version;
	__u16 kind;
	__u32 flags;
	__u32 pid;
	__u32 tid;
	__u64 ts_ns;
	__s64 ret;
	__u64 nr;
	__u64 args[6];
	__u64 st_ino;
	__u64 st_size;
	__s64 st_mtime_sec;
	__u32 st_mtime_nsec;
	__u32 st_mode;
	__u32 st_dev; /* kernel encoding: major << 20 | minor */
	__u32 ppid;
	__u32 exit_code; /* wait status as the parent would see it */
	__u16 len[RE_NSTR];
	__u32 _pad;
};

#endif
