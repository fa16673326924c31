/* Prints the layout of struct re_record, for the test that checks the Rust
 * mirror against it (see roar_ebpf.h). Built and run on the host by build.rs. */
#include <stddef.h>
#include <stdio.h>
#include <linux/types.h>
#include "roar_ebpf.h"

#define F(f) printf("%s %zu %zu\n", #f, offsetof(struct re_record, f), sizeof(((struct re_record *)0)->f))

int main(void)
{
	printf("size %zu %zu\n", sizeof(struct re_record), sizeof(struct re_record));
	F(version); F(kind); F(flags); F(pid); F(tid); F(ts_ns); F(ret); F(nr); F(args);
	F(st_ino); F(st_size); F(st_mtime_sec); F(st_mtime_nsec); F(st_mode); F(st_dev);
	F(ppid); F(exit_code); F(len); F(_pad);
#define K(k) printf("%s %d 0\n", #k, k)
	K(RE_VERSION); K(RE_SYSCALL); K(RE_EXEC); K(RE_FORK); K(RE_EXIT);
	K(RE_F_TRUNCATED); K(RE_F_UNREADABLE); K(RE_F_STAT); K(RE_F_ARGV_TRUNCATED); K(RE_F_FOREIGN);
	K(RE_STAT_RINGBUF_FULL); K(RE_STAT_TRUNCATED); K(RE_STAT_UNREADABLE);
	K(RE_NSTATS);
	K(RE_NSLOTS); K(RE_CTL_TRACE); K(RE_CTL_UNTRACE);
	printf("slot %zu %zu\n", sizeof(struct re_slot), sizeof(struct re_slot));
	printf("slot.start_time %zu 8\n", offsetof(struct re_slot, start_time));
	return 0;
}
