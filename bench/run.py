#!/usr/bin/env python3
"""roar benchmarks: native vs `roar run` vs strace vs roar-cli 0.4.7, in one run.

Usage: bench/run.py [--runs N] [--quick] [--only W1,W2,...]

Every tool runs every workload in its own copy of the workload directory (roar
and roar-cli both keep a store in .roar/). Each cell is the median wall time of
N runs after one warm-up; the runs of a workload interleave tool after tool, so
the machine's drift falls on every column alike, and ratios are against native
measured in the same rounds.
Results go to stdout and bench/out/results.md. Whole `roar run` is measured:
start-up, tracing, hashing and storing. roar also reports (ROAR_TIMING=1) how
long the command itself ran traced, from its release to its end; a second
table sets that against native, which is what tracing alone costs.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import timed_run  # bench/timing.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PY = os.path.realpath(sys.executable)  # the real interpreter, not the pyenv shim

W2 = """
import os
os.makedirs("w2", exist_ok=True)
for i in range(2000):
    with open(f"w2/f{i}.txt", "w") as f:
        f.write("x" * 100)
for i in range(2000):
    with open(f"w2/f{i}.txt") as f:
        f.read()
for i in range(2000):
    os.unlink(f"w2/f{i}.txt")
"""

W5 = """
import os
os.makedirs("out", exist_ok=True)
total = 0
for i in range(200):
    with open(f"in/i{i}.bin", "rb") as f:
        total += len(f.read())
block = os.urandom(1 << 20)
for j in range(20):
    with open(f"out/o{j}.bin", "wb") as f:
        for _ in range(10):
            f.write(block)
"""


def sh(cmd, cwd, **kw):
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)


def git_init(d):
    sh(["git", "init", "-q"], d)
    (d / ".gitignore").write_text("in/\nout/\nw2/\n*.o\nprog\n.roar/\n")
    sh(["git", "-c", "user.name=b", "-c", "user.email=b@x", "add", "-A"], d)
    sh(["git", "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "init", "--allow-empty"], d)


def make_workloads(base):
    """Returns {name: (dir, argv, prepare(dir) or None)}."""
    w = {}
    d = base / "W1"; d.mkdir(); git_init(d)
    w["W1 python imports"] = (d, [PY, "-c", "import json, email, http.client, decimal, asyncio"], None)
    d = base / "W2"; d.mkdir(); (d / "w2.py").write_text(W2); git_init(d)
    w["W2 2k small files"] = (d, [PY, "w2.py"], None)
    d = base / "W3"; d.mkdir()
    for i in range(20):
        (d / f"f{i}.c").write_text(f"int f{i}(int x) {{ int s = 0; for (int k = 0; k < x; k++) s += k * {i}; return s; }}\n")
    (d / "main.c").write_text("int main(void) { return 0; }\n")
    objs = " ".join(f"f{i}.o" for i in range(20))
    (d / "Makefile").write_text(f"prog: main.o {objs}\n\tcc -o prog main.o {objs}\n%.o: %.c\n\tcc -O2 -c $< -o $@\nclean:\n\trm -f *.o prog\n")
    git_init(d)
    w["W3 make -j2 (20 C files)"] = (d, ["make", "-s", "-j2"], lambda d: sh(["make", "-s", "clean"], d))
    d = base / "W4"; d.mkdir()
    for i in range(2000):
        sub = d / f"d{i // 100}"; sub.mkdir(exist_ok=True)
        (sub / f"f{i}.txt").write_text(f"file {i}\n")
    git_init(d)
    for k in range(60):
        (d / "d0" / "f0.txt").write_text(f"rev {k}\n")
        sh(["git", "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qam", f"c{k}"], d)
    w["W4 git status + log"] = (d, ["sh", "-c", "git status >/dev/null && git log -n 50 >/dev/null"], None)
    d = base / "W5"; d.mkdir(); (d / "in").mkdir(); (d / "w5.py").write_text(W5)
    for i in range(200):
        (d / "in" / f"i{i}.bin").write_bytes(os.urandom(1 << 20))
    git_init(d)

    def cold(d):
        # First run: outputs absent and inputs never hashed (new mtimes).
        shutil.rmtree(d / "out", ignore_errors=True)
        now = time.time()
        for p in (d / "in").iterdir():
            os.utime(p, (now, now))

    w["W5 200x1MiB in, 20x10MiB out (first)"] = (d, [PY, "w5.py"], cold)
    w["W5 (repeat)"] = (d, [PY, "w5.py"], None)
    d = base / "T"; d.mkdir(); git_init(d)
    w["true"] = (d, ["true"], None)
    return w


def spawn_ms(argv, cwd, env):
    """Wall time of one run (bench/timing.py) and its stderr; stdout is
    discarded."""
    dt, code, text = timed_run(argv, cwd, env if env is not None else os.environ,
                               (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0))
    if code != 0:
        raise RuntimeError(f"{argv[:4]} exited {code}: {text[-300:]}")
    return dt, text


def traced_ms(stderr):
    """The `traced command` time roar prints under ROAR_TIMING: from the
    command's release (tracer attached) until roar saw it end."""
    for line in stderr.splitlines():
        if line.startswith("roar: timing:") and "traced command" in line:
            return float(line.split("traced command")[1].split()[0])
    return None


def ebpf_load_ms(roar, env, runs):
    """Median time roar takes to load and attach its eBPF program (it prints
    it when ROAR_EBPF_TIMING is set)."""
    times = []
    d = Path(tempfile.mkdtemp(prefix="roar-bench-load-"))
    e = dict(env, ROAR_EBPF_TIMING="1", ROAR_DB=str(d / "roar.db"))
    for _ in range(runs + 1):
        r = subprocess.run([str(roar), "run", "--backend", "ebpf", "-q", "--", "true"], cwd=d, env=e,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in r.stderr.splitlines():
            if "load+attach" in line:
                times.append(float(line.split("load+attach")[1].split()[0]))
    shutil.rmtree(d, ignore_errors=True)
    return statistics.median(times[1:]) if len(times) > 1 else None


def traced_any(traced, tool):
    return any(v is not None for (_, t), v in traced.items() if t == tool)


def roarcli():
    venv = ROOT / "bench" / ".venv-roarcli"
    exe = venv / "bin" / "roar"
    if not exe.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "roar-cli==0.4.7"], check=True)
        except subprocess.CalledProcessError as e:
            print(f"roar-cli 0.4.7 could not be installed ({e}); its column is skipped", file=sys.stderr)
            return None
    return exe if exe.exists() else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 runs, 1 for roar-cli")
    ap.add_argument("--only", default="")
    ap.add_argument("--no-roarcli", action="store_true")
    ap.add_argument("--tools", default="", help="only these columns (comma-separated names, e.g. 'native,roar ebpf')")
    ap.add_argument("--roar", default="", help="the roar to measure, e.g. what `PREFIX=DIR ./install.sh` installed "
                    "(static, as users get it; its library beside it); default: a release build of this tree")
    a = ap.parse_args()
    runs = 3 if a.quick else a.runs
    if a.roar:
        roar = Path(a.roar).resolve()
    else:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "roar-cli", "-p", "tracer-preload"], cwd=ROOT, check=True)
        roar = ROOT / "target" / "release" / "roar"
    old = None if a.no_roarcli else roarcli()
    strace = shutil.which("strace")
    env = dict(os.environ, DO_NOT_TRACK="1")
    env.pop("ROAR_DB", None)
    roar_env = dict(env, ROAR_TIMING="1")

    tools = [("native", lambda argv: argv, runs)]
    tools.append(("roar preload", lambda argv: [str(roar), "run", "--backend", "preload", "-q", "--", *argv], runs))
    tools.append(("roar ptrace", lambda argv: [str(roar), "run", "--backend", "ptrace", "-q", "--", *argv], runs))
    ebpf_ok = subprocess.run([str(roar), "run", "--backend", "ebpf", "-q", "--", "true"], cwd=tempfile.gettempdir(),
                             env=dict(env, ROAR_DB=str(Path(tempfile.mkdtemp()) / "probe.db")),
                             stderr=subprocess.PIPE).returncode == 0
    if ebpf_ok:
        tools.append(("roar ebpf", lambda argv: [str(roar), "run", "--backend", "ebpf", "-q", "--", *argv], runs))
    else:
        print("the ebpf backend does not work here (see `roar doctor`); its column is skipped", file=sys.stderr)
    if strace:
        tools.append(("strace -f", lambda argv: [strace, "-f", "-e", "trace=%file,%process", "-o", "/dev/null", *argv], runs))
        tools.append(("strace --seccomp-bpf", lambda argv: [strace, "--seccomp-bpf", "-f", "-e", "trace=%file,%process", "-o", "/dev/null", *argv], runs))
    if old:
        tools.append(("roar-cli 0.4.7", lambda argv: [str(old), "run", *argv], 1 if a.quick else 3))

    if a.tools:
        keep = {t.strip() for t in a.tools.split(",")}
        tools = [t for t in tools if t[0] in keep]
    load_ms = ebpf_load_ms(roar, env, runs) if any(t[0] == "roar ebpf" for t in tools) else None

    base = Path(tempfile.mkdtemp(prefix="roar-bench-"))
    results = {}
    traced = {}  # roar's own figure for the command alone, per (workload, tool)
    try:
        # Every tool gets its own copy of every workload.
        copies = {}
        for tool, _, _ in tools:
            tdir = base / tool.replace(" ", "_")
            tdir.mkdir()
            copies[tool] = make_workloads(tdir)
        for name in copies[tools[0][0]]:
            if a.only and not any(name.startswith(o) for o in a.only.split(",")):
                continue
            # Runs are interleaved, tool after tool, so that the shared
            # machine's drift over minutes falls on every column alike.
            times = {t: [] for t, _, _ in tools}
            spans = {t: [] for t, _, _ in tools}
            failed = set()
            for i in range(max(n for _, _, n in tools) + 1):
                for tool, wrap, n in tools:
                    if i > n or tool in failed:
                        continue
                    d, argv, prep = copies[tool][name]
                    try:
                        if i == 0 and tool.startswith("roar"):
                            sh([str(old) if tool.startswith("roar-cli") else str(roar), "init"], d, env=env)
                        if prep:
                            prep(d)
                        dt, err = spawn_ms(wrap(argv), d, roar_env if tool.startswith("roar ") else env)
                    except Exception as e:  # a tool that fails a workload is reported, not fatal
                        failed.add(tool)
                        print(f"{tool} failed on {name}: {e}", file=sys.stderr)
                        continue
                    if i > 0:  # the first run warms caches
                        times[tool].append(dt)
                        t = traced_ms(err)
                        if t is not None:
                            spans[tool].append(t)
            for tool, _, _ in tools:
                ok = tool not in failed and times[tool]
                results[(name, tool)] = statistics.median(times[tool]) if ok else None
                traced[(name, tool)] = statistics.median(spans[tool]) if ok and spans[tool] else None
                print(f"  {tool:15} {name:40} {results[(name, tool)] or float('nan'):9.1f} ms", file=sys.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    names = list(dict.fromkeys(n for n, _ in results))
    tnames = [t for t, _, _ in tools]
    lines = [
        f"# roar benchmarks, {time.strftime('%Y-%m-%d %H:%M')} UTC",
        f"machine: {os.cpu_count()} cores, kernel {os.uname().release}; python: {PY}; median of {runs} runs (roar-cli: fewer)",
        "",
        "| workload | " + " | ".join(f"{t} ms (x native)" for t in tnames) + " |",
        "|---|" + "---|" * len(tnames),
    ]
    for n in names:
        nat = results.get((n, "native"))
        cells = []
        for t in tnames:
            v = results.get((n, t))
            if v is None:
                cells.append("failed")
            elif t == "native" or not nat:
                cells.append(f"{v:.1f}")
            elif n == "true":
                cells.append(f"{v:.1f} (+{v - nat:.1f} ms)")
            else:
                cells.append(f"{v:.1f} ({v / nat:.2f}x)")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    # The ptrace target: overhead (ratio - 1) at most half of strace
    # --seccomp-bpf's on the same workload in the same run.
    pairs = [(n, results.get((n, "native")), results.get((n, "roar ptrace")), results.get((n, "strace --seccomp-bpf"))) for n in names]
    pairs = [p for p in pairs if all(v for v in p[1:]) and p[0] != "true"]
    if pairs:
        lines += ["", "| workload | roar ptrace overhead | strace --seccomp-bpf overhead | ratio of overheads |", "|---|---|---|---|"]
        for n, nat, pt, ss in pairs:
            po, so = pt / nat - 1, ss / nat - 1
            ratio = f"{po / so:.2f}" if so > 0.005 else "n/a (strace overhead ~0)"
            lines.append(f"| {n} | {po * 100:+.0f}% | {so * 100:+.0f}% | {ratio} |")
    # The eBPF targets: W1-W4 at most 1.05x native excluding load+attach;
    # `true` at most 150 ms above native in total.
    if load_ms is not None:
        lines += ["", f"eBPF load+attach (median of {runs}): {load_ms:.1f} ms", "",
                  "| workload | roar ebpf x native | excluding load+attach |", "|---|---|---|"]
        for n in names:
            nat, eb = results.get((n, "native")), results.get((n, "roar ebpf"))
            if nat and eb:
                lines.append(f"| {n} | {eb / nat:.2f}x (+{eb - nat:.1f} ms) | {(eb - load_ms) / nat:.2f}x |")
    # What tracing itself costs the command: roar's `traced command` figure
    # (from the command's release to its end, as roar saw it) against the
    # native run. The rest of a whole run is roar's fixed cost: load and
    # attach, the store, git, hashing.
    rtools = [t for t in tnames if traced_any(traced, t)]
    if rtools:
        lines += ["", "Traced command alone (roar's ROAR_TIMING figure, release to end) x native:", "",
                  "| workload | native ms | " + " | ".join(rtools) + " |", "|---|---|" + "---|" * len(rtools)]
        for n in names:
            nat = results.get((n, "native"))
            if not nat:
                continue
            cells = []
            for t in rtools:
                v = traced.get((n, t))
                cells.append("-" if v is None else (f"{v:.1f} (+{v - nat:.1f} ms)" if n == "true" else f"{v:.1f} ({v / nat:.2f}x)"))
            lines.append(f"| {n} | {nat:.1f} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
