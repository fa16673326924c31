// A parent like OSMO's osmo_exec: a static Go program (the preload library
// is never loaded into it) that appends a directory to PATH and execs the
// user's command, which inherits LD_PRELOAD and ROAR_TRACE_DIR from it.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

func main() {
	os.Setenv("PATH", os.Getenv("PATH")+":/osmo/bin")
	path, err := exec.LookPath(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "osmo_exec:", err)
		os.Exit(127)
	}
	err = syscall.Exec(path, os.Args[1:], os.Environ())
	fmt.Fprintln(os.Stderr, "osmo_exec:", err)
	os.Exit(126)
}
