"""One timed run, measured the same way by both benchmarks (bench/run.py and
bench/rep24/run.py): wall time from just before posix_spawn to waitpid's
return, the least harness overhead Python allows."""

import os
import tempfile
import time


def timed_run(argv, cwd, env, stdout_action, err_dir=None):
    """Runs `argv` in `cwd` with `env`, fd 1 set up by `stdout_action` (a
    posix_spawn file action) and stderr captured in a temporary file in
    `err_dir`. Returns (milliseconds, exit code, stderr text)."""
    with tempfile.TemporaryFile(dir=err_dir) as err:
        acts = [stdout_action, (os.POSIX_SPAWN_DUP2, err.fileno(), 2)]
        old = os.getcwd()
        os.chdir(cwd)
        try:
            t = time.perf_counter()
            pid = os.posix_spawnp(argv[0], argv, env, file_actions=acts)
            _, status = os.waitpid(pid, 0)
            dt = (time.perf_counter() - t) * 1000
        finally:
            os.chdir(old)
        err.seek(0)
        text = err.read().decode(errors="replace")
    return dt, os.waitstatus_to_exitcode(status), text
