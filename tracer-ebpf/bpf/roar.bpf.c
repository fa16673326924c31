// SPDX-License-Identifier: GPL-2.0
/* roar's eBPF program: follows one process tree inside the kernel and hands
 * its file and process events to user space through a ring buffer.
 *
 * TRACED holds the tgids being followed, and TRACED_BITS the same set as a
 * bitmap indexed by tgid: user space puts the command's pid in both before
 * releasing it; sched_process_fork adds children and
 * sched_process_exit removes a process when its last thread ends. For the
 * file system calls, sys_exit takes the arguments from the saved user
 * registers (the kernel leaves them as the caller set them, and the call
 * number in orig_ax), reads the path strings (resident then: the kernel
 * has just copied them),
 * the directory a relative path is relative to (a dentry walk of the cwd or
 * the dirfd), the identity of an opened file from its struct file, and
 * emits one record. Anything that could not be captured is flagged on the
 * record and counted in STATS: nothing is lost silently. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "roar_ebpf.h"

char LICENSE[] SEC("license") = "GPL";

#define AREA 8192      /* strings start below this offset... */
#define STR_MAX 4096   /* ...and are at most this long */
#define NAME_CAP 256   /* one dentry name, NUL included */
#define DEPTH 48       /* dentry names walked per path */
#define RING_SIZE (16 << 20)
#define AT_FDCWD_ (-100)
#define SIGNAL_GROUP_EXIT_ 0x4
#define TS_COMPAT_ 0x0002 /* thread_info.status: in an ia32 system call */
#define X32_SYSCALL_BIT 0x40000000

/* An offset into the string area the verifier can bound: the barrier keeps
 * clang from dropping the mask as redundant after a range check, which
 * would leave the verifier with an unbounded register. */
static __always_inline __u32 bounded(__u32 o)
{
	asm volatile("" : "+r"(o));
	return o & (AREA - 1);
}

struct scratch {
	struct re_record rec;
	char data[2 * AREA];
};

/* tgid -> the slot of the run that traces it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} TRACED SEC(".maps");

/* Bit (tgid % 64) of word (tgid / 64): the test every system call on the
 * machine makes while the programs are attached, the whole idle cost. An
 * array lookup is inlined by the verifier; a hash lookup is a call and a
 * hash. User space sizes it from kernel.pid_max at load; a tgid beyond it
 * (pid_max raised later) falls back to TRACED. Changed only by atomic
 * operations here (user space goes through roar_ctl). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} TRACED_BITS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} SCRATCH SEC(".maps");

/* Set at load: a private instance (one run, loaded for it) writes to
 * EVENTS; a pinned one to RINGS[slot]. Changing an element of a map of
 * maps makes the kernel wait for an RCU grace period (~10 ms), which a
 * private load has no reason to pay. */
const volatile __u32 private_ring = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RING_SIZE);
} EVENTS SEC(".maps");

/* RINGS[slot]: the ring buffer of the run in that slot, created by the
 * first run to take the slot and kept for the next (its size is the run's
 * choice: ring buffers of any size fit). */
struct ring {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RING_SIZE);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, RE_NSLOTS);
	__type(key, __u32);
	__array(values, struct ring);
} RINGS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RE_NSTATS * RE_NSLOTS);
	__type(key, __u32);
	__type(value, __u64);
} STATS SEC(".maps");

/* Who owns each slot, and who holds a pinned instance: user space only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RE_NSLOTS);
	__type(key, __u32);
	__type(value, struct re_slot);
} SLOTS SEC(".maps");

struct holder {
	char name[64];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct holder);
	__type(value, __u64);
} HOLDERS SEC(".maps");

static __always_inline void count(__u32 slot, __u32 which)
{
	if (slot >= RE_NSLOTS)
		return;
	__u32 i = (slot & (RE_NSLOTS - 1)) * RE_NSTATS + which;
	__u64 *v = bpf_map_lookup_elem(&STATS, &i);
	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline int traced(__u32 tgid)
{
	__u32 word = tgid >> 6;
	__u64 *w = bpf_map_lookup_elem(&TRACED_BITS, &word);
	if (!w)
		return bpf_map_lookup_elem(&TRACED, &tgid) != 0;
	return (*w >> (tgid & 63)) & 1;
}

/* The slot of a traced tgid; NO_SLOT when it has none (untraced since the
 * caller's traced() test: a run ending, or a dead run's slot reclaimed).
 * Such a process belongs to no run any more: its records are dropped and
 * its children not traced, never given to slot 0's run. */
#define NO_SLOT RE_NSLOTS
static __always_inline __u32 slot_of(__u32 tgid)
{
	__u32 *s = bpf_map_lookup_elem(&TRACED, &tgid);
	return s ? (*s & (RE_NSLOTS - 1)) : NO_SLOT;
}

static __always_inline void set_traced(__u32 tgid, __u32 slot)
{
	__u32 word = tgid >> 6;
	bpf_map_update_elem(&TRACED, &tgid, &slot, BPF_ANY);
	__u64 *w = bpf_map_lookup_elem(&TRACED_BITS, &word);
	if (w)
		__sync_fetch_and_or(w, 1ULL << (tgid & 63));
}

static __always_inline void clear_traced(__u32 tgid)
{
	__u32 word = tgid >> 6;
	__u64 *w = bpf_map_lookup_elem(&TRACED_BITS, &word);
	if (w)
		__sync_fetch_and_and(w, ~(1ULL << (tgid & 63)));
	bpf_map_delete_elem(&TRACED, &tgid);
}

/* x86_64 system call numbers the program decodes. */
enum {
	NR_open = 2, NR_stat_unused = 4, NR_sendfile = 40, NR_execve = 59,
	NR_truncate = 76, NR_ftruncate = 77,
	NR_rename = 82, NR_mkdir = 83, NR_rmdir = 84, NR_creat = 85, NR_link = 86,
	NR_unlink = 87, NR_symlink = 88, NR_openat = 257, NR_mkdirat = 258,
	NR_unlinkat = 263, NR_renameat = 264, NR_linkat = 265, NR_symlinkat = 266,
	NR_splice = 275, NR_renameat2 = 316, NR_execveat = 322,
	NR_copy_file_range = 326, NR_io_uring_setup = 425, NR_openat2 = 437,
};

static __always_inline int interesting(long nr)
{
	switch (nr) {
	case NR_open: case NR_sendfile: case NR_execve: case NR_truncate:
	case NR_ftruncate: case NR_rename:
	case NR_mkdir: case NR_rmdir: case NR_creat: case NR_link: case NR_unlink:
	case NR_symlink: case NR_openat: case NR_mkdirat: case NR_unlinkat:
	case NR_renameat: case NR_linkat: case NR_symlinkat: case NR_splice:
	case NR_renameat2: case NR_execveat: case NR_copy_file_range:
	case NR_io_uring_setup: case NR_openat2:
		return 1;
	}
	return 0;
}

/* Fields `first` to `last` of the kernel object at `p`, read with one
 * probe read into `buf` (each read is a helper call and a fault-checked
 * copy: a dentry walk made four per name, most of an event's cost). The
 * offsets are CO-RE constants, so the verifier sees the size and every
 * offset into `buf`; it is 0 when they do not fit `buf` (another kernel's
 * layout), and the caller reads the fields one by one. */
#define SPAN(buf, type, p, first, last)                                          \
	({                                                                       \
		__u32 a_ = bpf_core_field_offset(type, first);                   \
		__u32 b_ = bpf_core_field_offset(type, last) +                   \
			   bpf_core_field_size(type, last);                      \
		b_ > a_ && b_ - a_ <= sizeof(buf) &&                             \
			!bpf_probe_read_kernel(buf, b_ - a_, (const char *)(p) + a_); \
	})
/* Field `f` of a SPAN read from `first`, as a `T`. */
#define AT(buf, type, first, f, T)                                               \
	(*(T *)((char *)(buf) + (bpf_core_field_offset(type, f) -                \
				 bpf_core_field_offset(type, first))))

/* A mount's parent, the dentry it is mounted on and its root. */
static __always_inline void mount_span(struct mount *m, struct mount **parent,
				       struct dentry **point, struct dentry **root)
{
	__u64 w[3];
	if (SPAN(w, struct mount, m, mnt_parent, mnt.mnt_root)) {
		*parent = AT(w, struct mount, mnt_parent, mnt_parent, struct mount *);
		*point = AT(w, struct mount, mnt_parent, mnt_mountpoint, struct dentry *);
		*root = AT(w, struct mount, mnt_parent, mnt.mnt_root, struct dentry *);
		return;
	}
	*parent = BPF_CORE_READ(m, mnt_parent);
	*point = BPF_CORE_READ(m, mnt_mountpoint);
	*root = BPF_CORE_READ(m, mnt.mnt_root);
}

/* Appends the names from dentry `dentry` up to the root, crossing mounts,
 * each NUL-terminated (user space reverses them), at offset `o`; returns
 * the new offset. A global function: the verifier checks it once, not once
 * per call site. Kernel pointers travel as integers. A name costs two
 * reads (its parent and name pointers together, then the name), a mount
 * crossed one. */
__noinline int walk_dentries(struct scratch *s, __u32 o, __u32 slot, __u64 vfsmnt_p, __u64 dentry)
{
	struct vfsmount *vfsmnt = (struct vfsmount *)vfsmnt_p;
	struct dentry *d = (struct dentry *)dentry;
	struct mount *mnt = (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);
	struct mount *mp;
	struct dentry *point, *root;
	__u32 start = o;
	int i;

	if (!s)
		return o;
	mount_span(mnt, &mp, &point, &root);
	for (i = 0; i < DEPTH; i++) {
		struct dentry *parent;
		const unsigned char *name;
		__u64 w[3];
		if (SPAN(w, struct dentry, d, d_parent, d_name.name)) {
			parent = AT(w, struct dentry, d_parent, d_parent, struct dentry *);
			name = AT(w, struct dentry, d_parent, d_name.name, const unsigned char *);
		} else {
			parent = BPF_CORE_READ(d, d_parent);
			name = BPF_CORE_READ(d, d_name.name);
		}
		if (d == root || d == parent) {
			if (mp == mnt || !mp)
				break;
			d = point;
			mnt = mp;
			mount_span(mnt, &mp, &point, &root);
			continue;
		}
		if (o >= AREA) {
			s->rec.flags |= RE_F_TRUNCATED;
			break;
		}
		long n = bpf_probe_read_kernel_str(&s->data[bounded(o)], NAME_CAP, name);
		if (n <= 0) {
			s->rec.flags |= RE_F_UNREADABLE;
			break;
		}
		o += n;
		d = parent;
	}
	if (i == DEPTH)
		s->rec.flags |= RE_F_TRUNCATED;
	s->rec.len[slot & (RE_NSTR - 1)] = o - start;
	return o;
}

static __always_inline void put_dpath(struct scratch *s, __u32 *off, int slot,
				      struct vfsmount *vfsmnt, struct dentry *d)
{
	*off = walk_dentries(s, *off, slot, (__u64)vfsmnt, (__u64)d);
}

static __always_inline struct file *fd_file(struct task_struct *t, long fd)
{
	struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
	unsigned int max;
	struct file **fds;
	struct file *f = 0;
	__u64 w[2];
	if (SPAN(w, struct fdtable, fdt, max_fds, fd)) {
		max = AT(w, struct fdtable, max_fds, max_fds, unsigned int);
		fds = AT(w, struct fdtable, max_fds, fd, struct file **);
	} else {
		max = BPF_CORE_READ(fdt, max_fds);
		fds = BPF_CORE_READ(fdt, fd);
	}

	if (fd < 0 || fd >= max)
		return 0;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

static __always_inline void put_file(struct scratch *s, __u32 *off, int slot, struct file *f)
{
	if (!f) {
		s->rec.flags |= RE_F_UNREADABLE;
		return;
	}
	struct path fp = {};
	BPF_CORE_READ_INTO(&fp, f, f_path);
	put_dpath(s, off, slot, fp.mnt, fp.dentry);
}

/* A process's cwd as walked, by process and cwd (dentry and mount): every
 * relative path a call names is resolved against the cwd, and walking it
 * again for each (five names and two mounts for a tree under /dev/shm) was
 * the most of a relative open's cost. A hit must also find the cwd's parent
 * and name (hash and length) as they were, so a directory removed and
 * another made in the freed dentry is walked afresh. Like the preload
 * library's cwd cache, it does not see an ancestor of the cwd renamed
 * while the process stays in it. Walks that were cut short or unreadable
 * are not kept. */
#define CWD_MAX 512
struct cwd_key {
	__u64 dentry;
	__u64 mnt;
	__u32 tgid;
	__u32 pad;
};

struct cwd_walk {
	__u64 parent;
	__u64 hash_len;
	__u32 len;
	__u32 pad;
	char names[CWD_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct cwd_key);
	__type(value, struct cwd_walk);
} CWDS SEC(".maps");

/* Where a walk to be kept is put together (too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cwd_walk);
} CWD_NEW SEC(".maps");

/* A cached walk's length the verifier can bound (as `bounded`). */
static __always_inline __u32 cwd_len(__u32 n)
{
	asm volatile("" : "+r"(n));
	return n & (CWD_MAX - 1);
}

/* The directory at `pwd` (a cwd, or a dirfd's), from CWDS when it was
 * walked before for this process. */
static __always_inline void put_dir(struct scratch *s, __u32 *off, int slot, struct path pwd)
{
	__u64 w[3];
	if (!SPAN(w, struct dentry, pwd.dentry, d_parent, d_name.name)) {
		put_dpath(s, off, slot, pwd.mnt, pwd.dentry);
		return;
	}
	__u64 parent = AT(w, struct dentry, d_parent, d_parent, __u64);
	__u64 hash_len = AT(w, struct dentry, d_parent, d_name.hash_len, __u64);
	struct cwd_key k = {
		.dentry = (__u64)pwd.dentry,
		.mnt = (__u64)pwd.mnt,
		.tgid = s->rec.pid,
	};
	__u32 o = *off;
	struct cwd_walk *c = bpf_map_lookup_elem(&CWDS, &k);
	if (c && c->parent == parent && c->hash_len == hash_len && o < AREA) {
		__u32 n = cwd_len(c->len);
		if (n && !bpf_probe_read_kernel(&s->data[bounded(o)], n, c->names)) {
			s->rec.len[slot & (RE_NSTR - 1)] = n;
			*off = o + n;
			return;
		}
	}
	__u32 flags = s->rec.flags;
	put_dpath(s, off, slot, pwd.mnt, pwd.dentry);
	__u32 n = *off - o;
	if ((s->rec.flags & ~flags & (RE_F_TRUNCATED | RE_F_UNREADABLE)) || n == 0 ||
	    n >= CWD_MAX || o >= AREA)
		return;
	__u32 zero = 0;
	struct cwd_walk *fresh = bpf_map_lookup_elem(&CWD_NEW, &zero);
	if (!fresh)
		return;
	fresh->parent = parent;
	fresh->hash_len = hash_len;
	fresh->len = n;
	if (bpf_probe_read_kernel(fresh->names, cwd_len(n), &s->data[bounded(o)]))
		return;
	bpf_map_update_elem(&CWDS, &k, fresh, BPF_ANY);
}

static __always_inline void put_cwd(struct scratch *s, __u32 *off, int slot, struct task_struct *t)
{
	struct path pwd = {};
	BPF_CORE_READ_INTO(&pwd, t, fs, pwd);
	put_dir(s, off, slot, pwd);
}

static __always_inline void stat_file(struct scratch *s, struct file *f)
{
	if (!f)
		return;
	struct inode *ino = BPF_CORE_READ(f, f_inode);
	if (!ino)
		return;
	__u64 w[16];
	if (SPAN(w, struct inode, ino, i_mode, i_mtime_nsec)) {
		s->rec.st_mode = AT(w, struct inode, i_mode, i_mode, umode_t);
		s->rec.st_ino = AT(w, struct inode, i_mode, i_ino, unsigned long);
		s->rec.st_size = AT(w, struct inode, i_mode, i_size, loff_t);
		s->rec.st_mtime_sec = AT(w, struct inode, i_mode, i_mtime_sec, time64_t);
		s->rec.st_mtime_nsec = AT(w, struct inode, i_mode, i_mtime_nsec, __u32);
		s->rec.st_dev = BPF_CORE_READ(AT(w, struct inode, i_mode, i_sb, struct super_block *), s_dev);
	} else {
		s->rec.st_ino = BPF_CORE_READ(ino, i_ino);
		s->rec.st_size = BPF_CORE_READ(ino, i_size);
		s->rec.st_mode = BPF_CORE_READ(ino, i_mode);
		s->rec.st_mtime_sec = BPF_CORE_READ(ino, i_mtime_sec);
		s->rec.st_mtime_nsec = BPF_CORE_READ(ino, i_mtime_nsec);
		s->rec.st_dev = BPF_CORE_READ(ino, i_sb, s_dev);
	}
	s->rec.flags |= RE_F_STAT;
}

/* A user string into `slot`. Returns its first byte (0 when unread). */
static __always_inline char put_ustr(struct scratch *s, __u32 *off, int slot, __u64 p)
{
	__u32 o = *off;
	if (o >= AREA) {
		s->rec.flags |= RE_F_TRUNCATED;
		return 0;
	}
	__u32 at = bounded(o);
	long n = bpf_probe_read_user_str(&s->data[at], STR_MAX, (const void *)p);
	if (n <= 0) {
		s->rec.flags |= RE_F_UNREADABLE;
		return 0;
	}
	s->rec.len[slot] = n;
	*off = o + n;
	return s->data[bounded(at)];
}

/* A path argument relative to `dirfd`: the string in `slot`, and when it
 * is relative, the directory it is relative to in `slot + 1`. */
static __always_inline void put_at(struct scratch *s, __u32 *off, int slot,
				   struct task_struct *t, long dirfd, __u64 p)
{
	char c = put_ustr(s, off, slot, p);
	if (c == '/' || c == 0)
		return;
	if ((int)dirfd == AT_FDCWD_) {
		put_cwd(s, off, slot + 1, t);
		return;
	}
	struct file *f = fd_file(t, (int)dirfd);
	if (!f) {
		s->rec.flags |= RE_F_UNREADABLE;
		return;
	}
	struct path fp = {};
	BPF_CORE_READ_INTO(&fp, f, f_path);
	put_dir(s, off, slot + 1, fp);
}

/* Into the ring of the run that traces the record's process. */
static __always_inline void emit(struct scratch *s, __u32 off)
{
	__u32 slot = slot_of(s->rec.pid);
	if (slot >= RE_NSLOTS)
		return;
	if (s->rec.flags & RE_F_TRUNCATED)
		count(slot, RE_STAT_TRUNCATED);
	if (s->rec.flags & RE_F_UNREADABLE)
		count(slot, RE_STAT_UNREADABLE);
	__u64 size = sizeof(struct re_record) + (off & (2 * AREA - 1));
	if (size > sizeof(struct scratch))
		size = sizeof(struct scratch);
	/* Batches: user space polls every few milliseconds, and is woken
	 * early only when a quarter of the ring is in use. Waking it for every
	 * record costs a context switch per file call. */
#define OUTPUT(ring)                                                              \
	do {                                                                      \
		__u64 used = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);          \
		__u64 cap = bpf_ringbuf_query(ring, BPF_RB_RING_SIZE);            \
		__u64 wake = used > cap / 4 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP; \
		if (bpf_ringbuf_output(ring, s, size, wake))                      \
			count(slot, RE_STAT_RINGBUF_FULL);                        \
	} while (0)
	if (private_ring) {
		OUTPUT(&EVENTS);
		return;
	}
	void *ring = bpf_map_lookup_elem(&RINGS, &slot);
	if (!ring) {
		count(slot, RE_STAT_RINGBUF_FULL);
		return;
	}
	OUTPUT(ring);
}

static __always_inline struct scratch *start(__u16 kind, __u32 pid, __u32 tid)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&SCRATCH, &zero);
	if (!s)
		return 0;
	__builtin_memset(&s->rec, 0, sizeof(s->rec));
	s->rec.version = RE_VERSION;
	s->rec.kind = kind;
	s->rec.pid = pid;
	s->rec.tid = tid;
	s->rec.ts_ns = bpf_ktime_get_ns();
	return s;
}

/* Every system call of a traced process ends here (there is no sys_enter
 * program: the arguments are still in the registers the kernel saved at
 * entry, and a stash by tid cost three hash map operations a call). */
SEC("raw_tracepoint/sys_exit")
int roar_sys_exit(__u64 *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	if (!traced(id >> 32))
		return 0;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	/* The saved registers and the task's status through BTF pointers:
	 * plain loads, not a probe-read helper call each. Most system calls of
	 * a traced process are none of the file calls, and this is all they
	 * pay: the number, the ABI check and the switch. */
	struct task_struct *bt = bpf_get_current_task_btf();
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bt);
	long nr = regs->orig_ax;
	if (nr < 0)
		return 0; /* skipped by a tracer */
	/* TS_COMPAT is cleared only on the way back to user space, after this
	 * tracepoint. */
	if ((nr & X32_SYSCALL_BIT) || (bt->thread_info.status & TS_COMPAT_)) {
		/* Numbers of another ABI: decoding them as x86_64 calls would
		 * record nonsense. Reported, not decoded. */
		struct scratch *s = start(RE_SYSCALL, id >> 32, tid);
		if (s) {
			s->rec.nr = nr;
			s->rec.flags |= RE_F_FOREIGN;
			emit(s, 0);
		}
		return 0;
	}
	if (!interesting(nr))
		return 0;
	__u64 a[6];
	a[0] = regs->di;
	a[1] = regs->si;
	a[2] = regs->dx;
	a[3] = regs->r10;
	a[4] = regs->r8;
	a[5] = regs->r9;
	long ret = (long)ctx[1];
	if ((nr == NR_execve || nr == NR_execveat) && ret == 0)
		return 0; /* seen as sched_process_exec */
	struct scratch *s = start(RE_SYSCALL, id >> 32, tid);
	if (!s)
		return 0;
	__u32 off = 0;
	s->rec.ret = ret;
	s->rec.nr = nr;
	for (int i = 0; i < 6; i++)
		s->rec.args[i] = a[i];

	switch (nr) {
	case NR_open: case NR_creat:
		put_at(s, &off, 0, t, AT_FDCWD_, a[0]);
		break;
	case NR_openat:
		put_at(s, &off, 0, t, a[0], a[1]);
		break;
	case NR_openat2: {
		__u64 how[2] = {};
		if (bpf_probe_read_user(how, sizeof(how), (void *)a[2]))
			s->rec.flags |= RE_F_UNREADABLE;
		s->rec.args[2] = how[0];
		s->rec.args[3] = how[1];
		put_at(s, &off, 0, t, a[0], a[1]);
		break;
	}
	case NR_rename: case NR_link:
		put_at(s, &off, 0, t, AT_FDCWD_, a[0]);
		put_at(s, &off, 2, t, AT_FDCWD_, a[1]);
		break;
	case NR_renameat: case NR_renameat2: case NR_linkat:
		put_at(s, &off, 0, t, a[0], a[1]);
		put_at(s, &off, 2, t, a[2], a[3]);
		break;
	case NR_symlink:
		put_ustr(s, &off, 0, a[0]);
		put_at(s, &off, 2, t, AT_FDCWD_, a[1]);
		break;
	case NR_symlinkat:
		put_ustr(s, &off, 0, a[0]);
		put_at(s, &off, 2, t, a[1], a[2]);
		break;
	case NR_unlink: case NR_rmdir: case NR_truncate: case NR_mkdir:
	case NR_execve:
		put_at(s, &off, 0, t, AT_FDCWD_, a[0]);
		break;
	case NR_unlinkat: case NR_mkdirat: case NR_execveat:
		put_at(s, &off, 0, t, a[0], a[1]);
		break;
	case NR_ftruncate:
		put_file(s, &off, 1, fd_file(t, (int)a[0]));
		break;
	case NR_sendfile:
		if (ret > 0)
			put_file(s, &off, 1, fd_file(t, (int)a[0]));
		break;
	case NR_copy_file_range: case NR_splice:
		if (ret > 0)
			put_file(s, &off, 1, fd_file(t, (int)a[2]));
		break;
	}
	if ((nr == NR_open || nr == NR_creat || nr == NR_openat || nr == NR_openat2) && ret >= 0)
		stat_file(s, fd_file(t, ret));
	emit(s, off);
	return 0;
}

SEC("raw_tracepoint/sched_process_fork")
int roar_fork(__u64 *ctx)
{
	struct task_struct *parent = (struct task_struct *)ctx[0];
	struct task_struct *child = (struct task_struct *)ctx[1];
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	if (!traced(ptgid))
		return 0;
	__u32 pid = BPF_CORE_READ(child, pid);
	__u32 tgid = BPF_CORE_READ(child, tgid);
	if (pid != tgid)
		return 0; /* a thread: its process is followed already */
	__u32 slot = slot_of(ptgid);
	if (slot >= RE_NSLOTS)
		return 0; /* the parent was untraced meanwhile */
	set_traced(tgid, slot); /* the child belongs to the parent's run */
	struct scratch *s = start(RE_FORK, tgid, pid);
	if (!s)
		return 0;
	s->rec.ppid = ptgid;
	/* The child's cwd, walked once here: chdir is not followed (a relative
	 * path is resolved against the cwd of the moment, exec walks it too),
	 * so a fork image says where it started without a record per cd. */
	__u32 off = 0;
	put_cwd(s, &off, 1, child);
	emit(s, off);
	return 0;
}

SEC("raw_tracepoint/sched_process_exec")
int roar_exec(__u64 *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	if (!traced(tgid))
		return 0;
	struct task_struct *t = (struct task_struct *)ctx[0];
	__u32 old = (__u32)ctx[1];
	struct linux_binprm *bprm = (struct linux_binprm *)ctx[2];
	struct scratch *s = start(RE_EXEC, tgid, tid);
	if (!s)
		return 0;
	s->rec.ret = old;
	__u32 off = 0;
	const char *filename = BPF_CORE_READ(bprm, filename);
	long n = bpf_probe_read_kernel_str(&s->data[0], STR_MAX, filename);
	if (n > 0) {
		s->rec.len[0] = n;
		off = n;
	} else {
		s->rec.flags |= RE_F_UNREADABLE;
	}
	put_cwd(s, &off, 1, t);
	__u64 as = BPF_CORE_READ(t, mm, arg_start);
	__u64 ae = BPF_CORE_READ(t, mm, arg_end);
	__u64 len = ae > as ? ae - as : 0;
	if (len > STR_MAX - 1) {
		len = STR_MAX - 1;
		s->rec.flags |= RE_F_ARGV_TRUNCATED;
	}
	if (off < AREA && len > 0) {
		if (bpf_probe_read_user(&s->data[bounded(off)], len & (STR_MAX - 1), (void *)as) == 0) {
			s->rec.len[2] = len;
			off += len;
		} else {
			s->rec.flags |= RE_F_UNREADABLE;
		}
	}
	struct file *f = BPF_CORE_READ(bprm, file);
	put_file(s, &off, 3, f);
	stat_file(s, f);
	emit(s, off);
	return 0;
}

SEC("raw_tracepoint/sched_process_exit")
int roar_exit(__u64 *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	if (!traced(tgid))
		return 0;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	if (BPF_CORE_READ(t, signal, live.counter) != 0)
		return 0; /* other threads of the process still run */
	struct scratch *s = start(RE_EXIT, tgid, tid);
	if (!s) {
		clear_traced(tgid);
		return 0;
	}
	__u32 code = BPF_CORE_READ(t, exit_code);
	if (BPF_CORE_READ(t, signal, flags) & SIGNAL_GROUP_EXIT_)
		code = BPF_CORE_READ(t, signal, group_exit_code);
	s->rec.exit_code = code;
	emit(s, 0); /* while the tgid still names its slot */
	clear_traced(tgid);
	return 0;
}

/* Not attached: user space runs it with BPF_PROG_TEST_RUN to add a run's
 * root process to the traced set, or take a process out, with the same
 * atomic bitmap operations the hooks use. */
SEC("raw_tracepoint/roar_ctl")
int roar_ctl(__u64 *ctx)
{
	__u32 tgid = (__u32)ctx[1];
	if (ctx[0] == RE_CTL_TRACE)
		set_traced(tgid, (__u32)ctx[2] & (RE_NSLOTS - 1));
	else if (ctx[0] == RE_CTL_UNTRACE)
		clear_traced(tgid);
	return 0;
}
