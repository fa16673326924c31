#!/usr/bin/env python3
"""The REP'24 provenance benchmark (Grayson et al., ACM REP 2024), recreated.

    bench/rep24/run.py [--rounds 5] [--only W,...] [--backends T,...] [--quick]

Sets up (once, into --cache, default ~/.cache/roar-rep24), then runs
interleaved rounds: each round runs every tool once on every workload, in a
shuffled order, after one warm-up round that is not counted. Scratch is on
tmpfs. Prints, per workload, the median time of each tool divided by the
median native time, the geometric-mean overhead of each tool beside the
paper's figures, roar's own phase timings (ROAR_TIMING=1) and the lmbench
latencies; writes every raw figure to bench/out/rep24-<time>.json.

Every traced run is checked: roar's record (`roar show --json latest`) or the
strace/fsatrace log must hold what the workload did (e.g. the ~7,300 outputs
of `cp -r`); a run that fails the check is flagged in the table ("!") and its
reason printed, so a tool that silently records nothing cannot look fast.
"""

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import prepare  # noqa: E402
from timing import timed_run  # noqa: E402  (bench/timing.py)
import workloads as rep24_workloads  # noqa: E402

TOOLS = ["native", "roar preload", "roar ptrace", "roar ebpf", "strace -f", "fsatrace"]
ALIASES = {"preload": "roar preload", "ptrace": "roar ptrace", "ebpf": "roar ebpf", "strace": "strace -f"}
# Grayson et al., ACM REP 2024: geometric-mean overhead on their suite.
PAPER = {"fsatrace": "0%", "CARE": "45%", "strace": "66%", "RR": "146%", "ReproZip": "193%"}


def scratch_dir(need_gib):
    """A tmpfs directory for the workloads and stores: /dev/shm when it has
    room, else a tmpfs mounted for the run (root only), else the system temp
    dir on disk, with a warning."""
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > need_gib * 2**30:
        return Path(tempfile.mkdtemp(prefix="roar-rep24-", dir=shm)), "/dev/shm (tmpfs)", None
    if os.geteuid() == 0:
        d = Path(tempfile.mkdtemp(prefix="roar-rep24-mnt-"))
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={need_gib + 1}g", "tmpfs", str(d)], capture_output=True)
        if r.returncode == 0:
            return d, f"a tmpfs mounted at {d}", d
    d = Path(tempfile.mkdtemp(prefix="roar-rep24-"))
    return d, f"{d} (NOT tmpfs: file creation costs the disk's price)", None


def find_roar(arg):
    cands = [arg] if arg else []
    if os.environ.get("CARGO_TARGET_DIR"):
        cands.append(Path(os.environ["CARGO_TARGET_DIR"]) / "release" / "roar")
    cands.append(ROOT / "target" / "release" / "roar")
    for c in cands:
        if c and Path(c).is_file():
            return Path(c)
    return None


def spawn(argv, cwd, env, out_path):
    """Wall time in ms of one run (bench/timing.py); stdout goes to
    out_path, stderr is returned."""
    with open(out_path, "wb") as out:
        dt, code, text = timed_run(argv, cwd, env, (os.POSIX_SPAWN_DUP2, out.fileno(), 1), out_path.parent)
    if code != 0:
        raise RuntimeError(f"exit {code}: {text.strip()[-400:]}")
    return dt, text


def phases(stderr):
    """roar's `timing:` line (ROAR_TIMING=1) as {phase: ms}."""
    for line in stderr.splitlines():
        if line.startswith("roar: timing:"):
            out = {}
            for part in line.split(":", 2)[2].split(","):
                tok = part.split()
                if len(tok) >= 3 and tok[-1] == "ms":
                    out[" ".join(tok[:-2])] = float(tok[-2])
            return out
    return {}


class Tools:
    def __init__(self, roar, fsatrace, env):
        self.roar, self.fsatrace, self.env = roar, fsatrace, env
        self.warnings = {}  # (workload, tool) -> (count, first) of roar's warnings on complete runs

    def argv(self, tool, argv, rundir):
        if tool == "native":
            return argv
        if tool.startswith("roar "):
            return [str(self.roar), "run", "--backend", tool.split()[1], "-q", "--", *argv]
        if tool == "strace -f":
            return ["/usr/bin/strace", "-f", "-e", "trace=file,process", "-o", str(rundir / "trace.log"), "--", *argv]
        if tool == "fsatrace":
            return [str(self.fsatrace), "rwmdtq", str(rundir / "trace.log"), "--", *argv]
        raise ValueError(tool)

    def environ(self, tool, rundir):
        if tool.startswith("roar "):
            return dict(self.env, ROAR_DB=str(rundir / "store" / "roar.db"), ROAR_TIMING="1")
        return self.env

    def check(self, tool, w, rundir):
        """What is wrong with what `tool` recorded of this run, or None."""
        if tool == "native":
            return None
        if tool.startswith("roar "):
            r = subprocess.run([str(self.roar), "show", "--json", "latest"], capture_output=True, text=True,
                               env=dict(self.env, ROAR_DB=str(rundir / "store" / "roar.db")))
            if r.returncode != 0:
                return f"roar show failed: {r.stderr.strip()[-200:]}"
            show = json.loads(r.stdout)
            warns = show.get("warnings") or []
            if not show.get("complete", False):
                return f"run marked incomplete: {'; '.join(map(str, warns))[:200]}"
            if warns:  # honest notes on a complete run (e.g. an input rewritten before it was hashed)
                self.warnings.setdefault((w.key, tool), (len(warns), str(warns[0])[:160]))
            return w.check_roar(show)
        log = rundir / "trace.log"
        if not log.exists() or log.stat().st_size == 0:
            return "empty trace log"
        sub, n = w.marker
        got = writes = 0
        with open(log, errors="replace") as f:
            for line in f:
                got += sub in line
                # strace: an open for writing; fsatrace: a `w|path` line
                writes += ("O_WRONLY" in line or "O_RDWR" in line) if tool == "strace -f" else line.startswith("w|")
        if got < max(n, 1):
            return f"{got} log lines name {sub}, expected >= {max(n, 1)}"
        return None if writes >= w.writes else f"{writes} file writes in the log, expected >= {w.writes}"


def probe(tools, tool, scratch):
    """None if `tool` can run `true` here, else why not."""
    d = scratch / "probe" / tool.replace(" ", "_")
    (d / "store").mkdir(parents=True)
    try:
        spawn(tools.argv(tool, ["/bin/true"], d), d, tools.environ(tool, d), d / "out")
        return None
    except Exception as e:  # any failure makes the column "not available", with the reason
        return str(e)[:300]


def geomean(xs):
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def run_rounds(ws, tools, cols, a, scratch):
    raw = {(w.key, t): [] for w in ws for t in cols}
    ph = {(w.key, t): [] for w in ws for t in cols}
    lat = {(w.key, t): [] for w in ws for t in cols}
    problems = {}
    failed = {}
    rng = random.Random(a.seed)
    for rnd in range(a.warmup + a.rounds):
        counted = rnd >= a.warmup
        label = f"round {rnd - a.warmup + 1}/{a.rounds}" if counted else "warm-up"
        order = list(ws)
        rng.shuffle(order)
        t0 = time.time()
        for w in order:
            tl = list(cols)
            rng.shuffle(tl)
            for tool in tl:
                if (w.key, tool) in failed:
                    continue
                rundir = scratch / "runs" / f"{w.key}-{tool.replace(' ', '_')}-{rnd}"
                (rundir / "store").mkdir(parents=True)
                try:
                    if w.prep:
                        w.prep()
                    dt, err = spawn(tools.argv(tool, w.argv(rnd), rundir), w.cwd, tools.environ(tool, rundir), rundir / "stdout")
                except Exception as e:  # a tool failing a workload is reported, not fatal
                    failed[(w.key, tool)] = str(e)[:300]
                    print(f"  {tool} failed on {w.key}: {e}", file=sys.stderr)
                    shutil.rmtree(rundir, ignore_errors=True)
                    continue
                bad = tools.check(tool, w, rundir)
                if bad:
                    problems.setdefault((w.key, tool), bad)
                if counted:
                    raw[(w.key, tool)].append(dt)
                    if tool.startswith("roar "):
                        ph[(w.key, tool)].append(phases(err))
                    if w.parse_stdout:
                        lat[(w.key, tool)].append(w.parse_stdout((rundir / "stdout").read_text()))
                shutil.rmtree(rundir, ignore_errors=True)
        print(f"{label} done in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    return raw, ph, lat, problems, failed


def fmt_ms(ms):
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


def report(ws, cols, unavailable, res, warned, info, scratch_note, a):
    raw, ph, lat, problems, failed = res
    med = {k: statistics.median(v) for k, v in raw.items() if v}
    traced = [t for t in cols if t != "native"]
    shown = traced + [t for t in TOOLS if t in unavailable and t != "native"]
    L = [f"# REP'24 provenance benchmark, recreated ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC)", "",
         f"{a.rounds} interleaved rounds after {a.warmup} warm-up, shuffled order{', --quick sizes' if a.quick else ''}; "
         f"scratch on {scratch_note}; {os.cpu_count()} cores, kernel {os.uname().release}.",
         "Median time of each tool / median native time. `!` = the tool's record of that run failed a check "
         "(listed below); `n/a` = not available here.", ""]
    L.append("| workload | native | " + " | ".join(shown) + " |")
    L.append("|---|---|" + "---|" * len(shown))
    ratios = {t: [] for t in traced}
    for w in ws:
        nat = med.get((w.key, "native"))
        row = [w.title, fmt_ms(nat) if nat else "failed"]
        for t in shown:
            if t in unavailable:
                row.append("n/a")
            elif (w.key, t) in failed:
                row.append("failed")
            elif nat and (w.key, t) in med:
                r = med[(w.key, t)] / nat
                ratios[t].append(r)
                row.append(f"{r:.2f}x" + (" !" if (w.key, t) in problems else ""))
            else:
                row.append("-")
        L.append("| " + " | ".join(row) + " |")
    gm = {t: geomean(ratios[t]) for t in traced}
    L.append("| **geomean overhead** | | " + " | ".join(
        "n/a" if t in unavailable else (f"**{(gm[t] - 1) * 100:.0f}%**" if gm.get(t) else "-") for t in shown) + " |")
    L += ["", "Geometric-mean overhead, this run beside the paper (Grayson et al., ACM REP 2024, its own suite and machine):", "",
          "| tool | this run | paper |", "|---|---|---|"]
    for t in shown:
        paper = PAPER.get("fsatrace" if t == "fsatrace" else "strace" if t == "strace -f" else "", "")
        this = ("not available: " + unavailable[t][:80]) if t in unavailable else (f"{(gm[t] - 1) * 100:.0f}%" if gm.get(t) else "-")
        L.append(f"| {t} | {this} | {paper or '-'} |")
    for t in ("CARE", "RR", "ReproZip"):
        L.append(f"| {t} | not run | {PAPER[t]} |")
    for t in [t for t in cols if t.startswith("roar ")]:
        names = []
        for d in (x for w in ws for x in ph[(w.key, t)]):
            names += [n for n in d if n not in names]
        if not names:
            continue
        L += ["", f"roar's own phases under `{t}` (ROAR_TIMING=1, median ms; `traced command` = the command itself):", "",
              "| workload | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for w in ws:
            ds = ph[(w.key, t)]
            cells = [f"{statistics.median([d[n] for d in ds if n in d]):.1f}" if any(n in d for d in ds) else "-" for n in names]
            L.append(f"| {w.title} | " + " | ".join(cells) + " |")
    lw = next((w for w in ws if w.parse_stdout), None)
    if lw and any(lat[(lw.key, t)] for t in cols):
        ops = list(dict.fromkeys(op for t in cols for d in lat[(lw.key, t)] for op in d))
        L += ["", "lmbench-like latencies (median microseconds per operation):", "",
              "| operation | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for op in ops:
            cells = []
            for t in cols:
                xs = [d[op] for d in lat[(lw.key, t)] if op in d]
                cells.append(f"{statistics.median(xs):.2f}" if xs else "-")
            L.append(f"| {op} | " + " | ".join(cells) + " |")
    if problems or failed or unavailable:
        L += ["", "Problems:"]
        for t, why in unavailable.items():
            L.append(f"- {t}: not available: {why}")
        for (k, t), why in sorted(failed.items()):
            L.append(f"- {t} on {k}: failed: {why}")
        for (k, t), why in sorted(problems.items()):
            L.append(f"- {t} on {k}: incomplete record: {why}")
    if warned:
        L += ["", "roar's warnings on complete runs (not counted as failed checks):"]
        for (k, t), (n, first) in sorted(warned.items()):
            L.append(f"- {t} on {k}: {n} warning(s), e.g. {first}")
    notes = info.get("notes", {})
    if notes or info.get("missing"):
        L += ["", "Set-up:"] + [f"- {k}: {v}" for k, v in notes.items()] + [f"- missing {k}: {v}" for k, v in info["missing"].items()]
    return "\n".join(L), med, gm


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="uncounted rounds first (default 1)")
    ap.add_argument("--only", default="", help="workload keys, comma-separated: " + "hello,cd,gcc,python,tar,untar,cp,postmark,lmbench,git,http,water")
    ap.add_argument("--backends", default="", help="tools, comma-separated (native is always run): " + ",".join(TOOLS))
    ap.add_argument("--quick", action="store_true", help="2 rounds and smaller workloads, to see that it all works")
    ap.add_argument("--cache", default="~/.cache/roar-rep24")
    ap.add_argument("--roar", default="", help="the roar binary (default: the release build)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    a = ap.parse_args()
    if a.quick and "--rounds" not in sys.argv:
        a.rounds = 2
    a.seed = a.seed if a.seed is not None else random.randrange(2**31)

    info = prepare.Setup(a.cache).all()
    roar = find_roar(a.roar)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROAR_")}
    env["DO_NOT_TRACK"] = "1"
    cols = TOOLS if not a.backends else ["native"] + [ALIASES.get(b.strip(), b.strip()) for b in a.backends.split(",") if b.strip() and b.strip() != "native"]
    bad = [t for t in cols if t not in TOOLS]
    if bad:
        sys.exit(f"unknown tool(s) {bad}: choose from {TOOLS}")
    unavailable = {}
    if roar is None:
        for t in cols:
            if t.startswith("roar "):
                unavailable[t] = "no release roar binary (cargo build --release -p roar-cli -p tracer-preload, or --roar)"
    if info["fsatrace"] is None:
        unavailable["fsatrace"] = info["missing"].get("fsatrace", "not built")
    scratch, scratch_note, mounted = scratch_dir(4)
    print(f"scratch: {scratch_note}", file=sys.stderr)
    tools = Tools(roar, Path(info["fsatrace"]) if info["fsatrace"] else None, env)
    try:
        for t in cols:
            if t != "native" and t not in unavailable:
                why = probe(tools, t, scratch)
                if why:
                    unavailable[t] = why
        run_cols = [t for t in cols if t not in unavailable]
        ws = rep24_workloads.make(info, scratch / "w", a.quick)
        if a.only:
            keys = [k.strip() for k in a.only.split(",")]
            ws = [w for w in ws if w.key in keys]
        res = run_rounds(ws, tools, run_cols, a, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if mounted:
            subprocess.run(["umount", str(mounted)])
            mounted.rmdir()
    text, med, gm = report(ws, run_cols, {t: unavailable[t] for t in cols if t in unavailable}, res, tools.warnings, info, scratch_note, a)
    print(text)
    raw, ph, lat, problems, failed = res
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    doc = {"when_utc": stamp, "args": vars(a), "scratch": scratch_note, "cores": os.cpu_count(), "kernel": os.uname().release,
           "roar": str(roar) if roar else None, "setup": info, "unavailable": unavailable,
           "workloads": [{"key": w.key, "title": w.title, "paper": w.paper} for w in ws],
           "runs_ms": {f"{k}|{t}": v for (k, t), v in raw.items()},
           "roar_phases_ms": {f"{k}|{t}": v for (k, t), v in ph.items() if v},
           "lmbench_us": {f"{k}|{t}": v for (k, t), v in lat.items() if v},
           "problems": {f"{k}|{t}": v for (k, t), v in problems.items()},
           "failed": {f"{k}|{t}": v for (k, t), v in failed.items()},
           "roar_warnings": {f"{k}|{t}": v for (k, t), v in tools.warnings.items()},
           "geomean_ratio": gm, "paper_geomean_overhead": PAPER, "table_md": text}
    (out / f"rep24-{stamp}.json").write_text(json.dumps(doc, indent=1))
    (out / "rep24-latest.md").write_text(text + "\n")
    print(f"\nraw results: {out / f'rep24-{stamp}.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
