/* The `hello` of the paper's "hello-bin" workload (GNU hello there): a
 * dynamically linked C program that prints one line and exits, so that
 * 1,000 runs of it measure what a tracer costs per new process image. */
#include <stdio.h>

int main(void) {
    puts("Hello, world!");
    return 0;
}
