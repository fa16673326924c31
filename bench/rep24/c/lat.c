/* lmbench-like latencies (lmbench itself is not on apt): the operations the
 * paper times with lat_syscall (null, read, write, stat, fstat, open) and
 * lat_proc (fork, exec), each N times in a tight loop. Prints one line per
 * operation: "<name> <microseconds per operation>".
 *
 * usage: lat FILE HELLO N_SYSCALL N_PROC
 *   FILE   an existing file for stat/fstat/open (the paper uses 1 KiB)
 *   HELLO  the program that "exec" runs (as lat_proc exec runs its hello)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void report(const char *name, double start, long n) {
    printf("%s %.3f\n", name, (now_us() - start) / n);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: lat FILE HELLO N_SYSCALL N_PROC\n");
        return 2;
    }
    const char *file = argv[1], *hello = argv[2];
    long n = atol(argv[3]), np = atol(argv[4]);
    char c = 0;
    struct stat st;
    double t;

    t = now_us();
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    report("null", t, n);

    int zero = open("/dev/zero", O_RDONLY), null = open("/dev/null", O_WRONLY);
    if (zero < 0 || null < 0) die("open /dev/zero or /dev/null");
    t = now_us();
    for (long i = 0; i < n; i++)
        if (read(zero, &c, 1) != 1) die("read");
    report("read", t, n);
    t = now_us();
    for (long i = 0; i < n; i++)
        if (write(null, &c, 1) != 1) die("write");
    report("write", t, n);

    t = now_us();
    for (long i = 0; i < n; i++)
        if (stat(file, &st) != 0) die(file);
    report("stat", t, n);
    int fd = open(file, O_RDONLY);
    if (fd < 0) die(file);
    t = now_us();
    for (long i = 0; i < n; i++)
        if (fstat(fd, &st) != 0) die("fstat");
    report("fstat", t, n);
    close(fd);
    t = now_us();
    for (long i = 0; i < n; i++) {
        fd = open(file, O_RDONLY);
        if (fd < 0) die(file);
        close(fd);
    }
    report("open/close", t, n);

    t = now_us();
    for (long i = 0; i < np; i++) {
        pid_t p = fork();
        if (p < 0) die("fork");
        if (p == 0) _exit(0);
        waitpid(p, NULL, 0);
    }
    report("fork", t, np);
    t = now_us();
    for (long i = 0; i < np; i++) {
        pid_t p = fork();
        if (p < 0) die("fork");
        if (p == 0) {
            dup2(null, 1);
            execl(hello, hello, (char *)NULL);
            _exit(127);
        }
        int status;
        waitpid(p, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("exec of HELLO failed");
    }
    report("fork+exec", t, np);
    return 0;
}
