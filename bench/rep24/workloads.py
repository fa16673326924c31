"""The twelve workloads, each recreated from the definition of the same
workload in the suite of Grayson et al. (ACM REP 2024), as the PROBE
repository's `benchmark/workloads.py` had it in the paper's time (2024; the
classes `Cmds`, `Archive`, `Unarchive`, `Copy`, `Postmark`, `VCSTraffic`,
`SimpleHttp`, and the SPLASH-3 and lmbench entries). The comment on each says
which paper workload it mirrors and how it differs; README.md has the table.

A workload is made fresh in a scratch directory (tmpfs) from what prepare.py put
in the cache. `argv(i)` is the command of run i; `prep()` resets its outputs
before each run (not timed); `check_roar(show)` and `check_trace(text)` say
what is wrong with what a tracer recorded (None when it looks complete).
"""

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

HERE = Path(__file__).resolve().parent


@dataclass
class Workload:
    key: str
    title: str
    paper: str
    cwd: Path
    argv: Callable[[int], list]
    prep: Optional[Callable[[], None]] = None
    check_roar: Callable[[dict], Optional[str]] = lambda show: None
    # (path substring, at least how many lines of a strace/fsatrace log name it)
    marker: tuple = ("", 0)
    # at least how many file writes a strace/fsatrace log must show
    writes: int = 0
    parse_stdout: Optional[Callable[[str], dict]] = None
    extra: dict = field(default_factory=dict)


def paths(show, key):
    return [f["path"] for f in show.get(key, [])]


def need(cond, msg):
    return None if cond else msg


def at_least(show, key, n, prefix=""):
    got = sum(1 for p in paths(show, key) if p.startswith(prefix))
    return need(got >= n, f"{got} {key}{' under ' + prefix if prefix else ''}, expected >= {n}")


def has_path(show, key, suffix):
    return need(any(p.endswith(suffix) for p in paths(show, key)), f"{suffix} not among {key}")


def n_procs(show, n):
    got = len(show.get("processes", []))
    return need(got >= n, f"{got} processes, expected >= {n}")


def first(*problems):
    return next((p for p in problems if p), None)


def count_files(d):
    return sum(len(fs) for _, _, fs in os.walk(d))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bash(script):
    return ["/bin/bash", "-e", "-c", script]


def make(info, scratch, quick):
    """All workloads, set up under `scratch`."""
    bindir = Path(info["bin"])
    hello = bindir / "hello"
    q = (lambda full, small: small if quick else full)
    w = []

    def wdir(name):
        d = scratch / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    # Paper: Cmds("Utils", "hello-bin", repeat(1000, ("hello",), no_stdout=True))
    # with GNU hello. Same loop (bash, stdout to /dev/null), our C hello.
    n = q(1000, 200)
    d = wdir("hello")
    w.append(Workload("hello", f"{n:,} x `hello`", "Utils hello-bin (1,000 x GNU hello)", d,
                      lambda i, n=n: bash(f"for i in $(seq {n}); do {hello} > /dev/null; done"),
                      check_roar=lambda s, n=n: n_procs(s, n + 1), marker=("/dev/null", n)))

    # Paper: Cmds("Utils", "cd"): 1,000,000 iterations of `cd $dir0; cd $dir1`.
    # Same loop, 10,000 iterations (20,000 cd) by default.
    it = q(10_000, 2_000)
    d = wdir("cd")
    (d / "a").mkdir(exist_ok=True)
    (d / "b").mkdir(exist_ok=True)
    w.append(Workload("cd", f"{2 * it:,} x `cd` in bash", "Utils cd (2,000,000 cd)", d,
                      lambda i, it=it, d=d: bash(f"for i in $(seq {it}); do cd {d}/a; cd {d}/b; done"),
                      check_roar=lambda s: n_procs(s, 2), marker=("/seq", 1)))

    # Paper: Cmds("Compile", "w/gcc", "hello"): g++ -Wall -O3 test.cxx -o test.exe.
    # Same command on our own small iostream program.
    d = wdir("gcc")
    shutil.copy(HERE / "c" / "hello.cxx", d / "test.cxx")
    w.append(Workload("gcc", "g++ -O3 hello", "Compile w/gcc hello", d,
                      lambda i: ["/usr/bin/g++", "-Wall", "-O3", "test.cxx", "-o", "test.exe"],
                      prep=lambda d=d: (d / "test.exe").unlink(missing_ok=True),
                      check_roar=lambda s: first(has_path(s, "inputs", "/test.cxx"), has_path(s, "outputs", "/test.exe")),
                      marker=("test.exe", 1)))

    # Paper: Cmds("Data science", "python", "import-pandas"): import pandas, then
    # importlib.reload(pandas) 100 times. Same script (fewer reloads in --quick);
    # pandas from PyPI in a venv, or standard-library modules if it cannot be had.
    d = wdir("python")
    reloads = q(100, 20)
    mod = "pandas" if info["pandas"] else "email.mime.multipart"
    extra = "" if info["pandas"] else "import json, decimal, asyncio, http.client, xml.dom.minidom\n"
    (d / "imports.py").write_text(f"import importlib\n{extra}import {mod}\n"
                                  f"for _ in range({reloads}):\n    importlib.reload({mod})\n")
    w.append(Workload("python", f"python: import {mod.split('.')[0]} (+{reloads} reloads)", "Data science import-pandas", d,
                      lambda i, py=info["python"]: [py, "imports.py"],
                      check_roar=lambda s: has_path(s, "inputs", "/imports.py"), marker=("imports.py", 1)))

    # Paper: Archive("gzip", linux tarball, 3 reps): tar --create --use-compress-prog
    # gzip of an extracted source tree. Ours: one `tar czf` of the extracted
    # Django 5.1.4 sdist (BenchExec 3.20, the paper's smaller tarball, in --quick).
    sd = info["sdists"]
    tgz = Path(sd["BenchExec"] if quick else sd["Django"])
    d = wdir("tar")
    src = d / "src"
    if not src.exists():
        src.mkdir()
        subprocess.run(["tar", "xzf", str(tgz), "-C", str(src), "--strip-components", "1"], check=True)
    nsrc = count_files(src)
    w.append(Workload("tar", f"tar czf of {tgz.name} ({nsrc:,} files)", "Un/archive Tar gzip (Linux, 3 reps)", d,
                      lambda i: ["/usr/bin/tar", "czf", "new.tar.gz", "-C", "src", "."],
                      prep=lambda d=d: (d / "new.tar.gz").unlink(missing_ok=True),
                      check_roar=lambda s, n=nsrc: first(has_path(s, "outputs", "/new.tar.gz"), at_least(s, "inputs", int(n * 0.9))),
                      marker=("new.tar.gz", 1)))

    # Paper: Unarchive("gzip", ...): tar --extract --strip-components 1 --overwrite.
    # Ours: `tar xzf` of the same sdist into an emptied directory.
    d = wdir("untar")
    shutil.copy(tgz, d / "sdist.tar.gz")
    out = d / "out"
    w.append(Workload("untar", f"tar xzf of it", "Un/archive Untar gzip (Linux, 3 reps)", d,
                      lambda i: ["/usr/bin/tar", "xzf", "sdist.tar.gz", "-C", "out", "--strip-components", "1"],
                      prep=lambda out=out: (shutil.rmtree(out, ignore_errors=True), out.mkdir()),
                      check_roar=lambda s, n=nsrc, out=out: first(has_path(s, "inputs", "/sdist.tar.gz"),
                                                                 at_least(s, "outputs", int(n * 0.9), str(out))),
                      marker=("sdist.tar.gz", 1), writes=int(nsrc * 0.9)))

    # Paper: Copy("cp smaller", BenchExec sdist) and Copy("cp linux"): cp --recursive
    # of an extracted source tree. Ours: the Django and BenchExec trees together
    # (about 7,300 files; BenchExec alone in --quick).
    d = wdir("cp")
    srcs = d / "src"
    if not srcs.exists():
        for name in (["BenchExec"] if quick else ["BenchExec", "Django"]):
            (srcs / name).mkdir(parents=True)
            subprocess.run(["tar", "xzf", sd[name], "-C", str(srcs / name), "--strip-components", "1"], check=True)
    ncp = count_files(srcs)
    dst = d / "dst"
    w.append(Workload("cp", f"cp -r of {ncp:,} files", "Copy cp smaller / cp linux", d,
                      lambda i: ["/bin/cp", "-r", "src", "dst"],
                      prep=lambda dst=dst: shutil.rmtree(dst, ignore_errors=True),
                      check_roar=lambda s, n=ncp, dst=dst: first(at_least(s, "outputs", int(n * 0.9), str(dst)),
                                                                 at_least(s, "inputs", int(n * 0.9))),
                      marker=("dst", 1), writes=int(ncp * 0.9)))

    # Paper: Postmark(100_000): postmark 1.5 built from the NetApp source, input
    # "set transactions 100000 / run". Ours: Debian's postmark 1.53 (the paper's
    # flake also packages it), 20,000 transactions. Postmark deletes every file
    # it made, so a complete record has no outputs: we check the process only.
    d = wdir("postmark")
    tr = q(20_000, 3_000)
    (d / "postmark.input").write_text(f"set location {d}/pm\nset transactions {tr}\nrun\nquit\n")
    w.append(Workload("postmark", f"postmark, {tr:,} transactions", "IO Bench Postmark (100,000 transactions)", d,
                      lambda i: bash("/usr/bin/postmark < postmark.input"),
                      prep=lambda d=d: (shutil.rmtree(d / "pm", ignore_errors=True), (d / "pm").mkdir()),
                      check_roar=lambda s: first(n_procs(s, 2), has_path(s, "inputs", "/postmark.input")),
                      marker=(f"{d}/pm", 1), writes=100))

    # Paper: Cmds("IO-bench", "lmbench", ...): lat_syscall null/read/write/stat/
    # fstat/open and lat_proc fork/exec, -N 300 each. lmbench is not on apt, so
    # bench/rep24/c/lat.c times the same operations in one program.
    d = wdir("lmbench")
    (d / "test_file").write_bytes(b"\0" * 1024)
    ns, npr = q(20_000, 3_000), q(300, 60)

    def parse_lat(text):
        out = {}
        for line in text.splitlines():
            name, _, us = line.rpartition(" ")
            if name:
                out[name] = float(us)
        return out
    w.append(Workload("lmbench", "lmbench-like latencies", "IO-bench lmbench (lat_syscall, lat_proc)", d,
                      lambda i: [str(bindir / "lat"), "test_file", str(hello), str(ns), str(npr)],
                      check_roar=lambda s, n=npr: first(n_procs(s, 2 * n + 1), has_path(s, "inputs", "/test_file")),
                      marker=("test_file", 1), parse_stdout=parse_lat))

    # Paper: VCSTraffic(strace repository, git checkout of each of its first 500
    # commits, in one bash script). Ours: 300 commits of a history made by
    # prepare.py over the BenchExec tree (no network needed), checked out newest
    # to oldest, the same way.
    if info.get("gitrepo"):
        d = wdir("git")
        repo = d / "repo"
        if not repo.exists():
            subprocess.run(["git", "clone", "-q", info["gitrepo"], str(repo)], check=True)
        commits = subprocess.run(["git", "-C", str(repo), "log", "--format=%H"], check=True,
                                 capture_output=True, text=True).stdout.split()[:q(300, 60)]
        (d / "script").write_text(f"cd {repo}\n" + "".join(f"git checkout -q {c} >/dev/null 2>&1\n" for c in commits))
        w.append(Workload("git", f"{len(commits)} git checkouts", "VCS git (strace repo, 500 checkouts)", d,
                          lambda i: ["/bin/bash", "-e", "script"],
                          prep=lambda repo=repo: subprocess.run(["git", "-C", str(repo), "checkout", "-q", "-f", "main"], check=True),
                          check_roar=lambda s, n=len(commits), repo=repo: first(n_procs(s, n), at_least(s, "outputs", 1, str(repo))),
                          marker=(".git", 1), writes=10))

    # Paper: SimpleHttp: `python -m http.server` serving one 16 KiB file, loaded
    # by `hey -n 50000`, server and client started by one script. Ours: the same
    # server and load generator from a bash script, 5,000 requests.
    d = wdir("http")
    (d / "srv").mkdir(exist_ok=True)
    (d / "srv" / "test").write_bytes(b"A" * 16 * 1024)
    reqs = q(5_000, 1_000)
    py = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else info["python"]
    shutil.copy(HERE / "http_load.sh", d / "http_load.sh")
    w.append(Workload("http", f"HTTP server, {reqs:,} requests", "Net HTTP-srv/traffic simplehttp (50,000 requests)", d,
                      lambda i, reqs=reqs, py=py: ["/bin/bash", "http_load.sh", py, str(free_port()), str(reqs)],
                      check_roar=lambda s: first(n_procs(s, 2), has_path(s, "inputs", "/srv/test")),
                      marker=("srv/test", 1)))

    # Paper: Cmds("CPU-bench", "splash3", "water-nsquared"): 300 x
    # `WATER-NSQUARED < inputs/water-nsquared/n512-p1`. Ours: the same, 30 times,
    # unless SPLASH-3 could not be built (then our stand-in, water.c).
    d = wdir("water")
    (d / "input").write_text(info["water_input"])
    if info.get("water_random"):  # water-nsquared reads random.in from its cwd
        shutil.copy(info["water_random"], d / "random.in")
    reps = q(30, 6)
    what = "SPLASH-3 water-nsquared" if info["water_is_splash3"] else "water stand-in (not SPLASH-3)"
    w.append(Workload("water", f"{what}, {reps} runs", "CPU-bench splash3 water-nsquared (300 runs)", d,
                      lambda i, reps=reps, exe=info["water"]: bash(f"for i in $(seq {reps}); do {exe} < input > /dev/null; done"),
                      check_roar=lambda s, n=reps: first(n_procs(s, n), has_path(s, "inputs", "/water/input")),
                      marker=("input", 1)))
    for x in w:
        if x.prep:
            x.prep()
    return w
