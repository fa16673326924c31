#!/usr/bin/env python3
"""How roar's cost per run grows with the store's history.

The other benches start every measured run on a fresh store. A pipeline step
run every day does not: its store holds every earlier run's files. This one
runs the same step (`cp -r` of a tree of FILES small files, the REP'24 copy)
RUNS times on one store and prints, per run, roar's own phases (ROAR_TIMING:
collect, store) and the store's size, so that a cost that grows with history
shows as a trend, not as noise.

    bench/history.py [--roar PATH] [--files 7000] [--runs 20] [--backend preload]

Scratch goes on /dev/shm when it has room (this VM's ext4 costs 0.25-1 ms per
file creation and would drown the trend), else the system temp directory.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def find_roar(given):
    if given:
        return Path(given)
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path(__file__).resolve().parents[1] / "target"))
    return target / "release" / "roar"


def make_tree(src: Path, files: int):
    for i in range(files):
        d = src / f"pkg{i % 7}" / f"mod{(i // 7) % 40}" / f"sub{(i // 280) % 5}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"file_{i}.py").write_text(f"x = {i}\n" * (1 + i % 50))


PHASE = re.compile(r"(\w[\w ]*?) ([0-9.]+) ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--roar")
    ap.add_argument("--files", type=int, default=7000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--backend", default="preload")
    a = ap.parse_args()
    roar = find_roar(a.roar)
    if not roar.exists():
        sys.exit(f"history: no roar at {roar} (build with cargo build --release, or pass --roar)")
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and shutil.disk_usage(shm).free > 2 << 30 else Path(tempfile.gettempdir())
    scratch = Path(tempfile.mkdtemp(prefix="roar-history-", dir=base))
    try:
        make_tree(scratch / "src", a.files)
        env = dict(os.environ, ROAR_DB=str(scratch / "store" / "roar.db"), ROAR_TIMING="1")
        (scratch / "store").mkdir()
        print(f"# {a.files} files copied per run, backend {a.backend}, scratch {base}, roar {roar}")
        print("| run | whole run ms | collect ms | store ms | store size MiB |")
        print("|---|---|---|---|---|")
        for n in range(1, a.runs + 1):
            shutil.rmtree(scratch / "dst", ignore_errors=True)
            t = time.perf_counter()
            r = subprocess.run([str(roar), "run", "--backend", a.backend, "-q", "--", "cp", "-r", "src", "dst"],
                               cwd=scratch, env=env, capture_output=True, text=True)
            whole = (time.perf_counter() - t) * 1000
            if r.returncode != 0:
                sys.exit(f"history: run {n} failed: {r.stderr.strip()}")
            phases = {k.strip(): float(v) for k, v in PHASE.findall(r.stderr.split("timing:", 1)[-1])}
            size = sum(p.stat().st_size for p in (scratch / "store").glob("roar.db*")) / 2**20
            print(f"| {n} | {whole:.0f} | {phases.get('collect', 0):.1f} | {phases.get('store', 0):.1f} | {size:.1f} |",
                  flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
