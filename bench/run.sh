#!/usr/bin/env bash
# roar benchmark harness (hyperfine): native vs `roar run --backend preload`
# vs `strace -f` vs roar-cli 0.4.7 (PyPI), on workloads W1-W5 and `true`.
#
# Usage: bench/run.sh [--quick]
#
#   --quick   3 runs / 1 warm-up per cell (roar-cli: 2 runs / 0 warm-ups)
#             instead of 10 runs / 2 warm-ups (roar-cli: 3 runs / 1 warm-up).
#
# Installs hyperfine and strace (apt) and roar-cli 0.4.7 (venv at
# bench/.venv-roarcli) if missing, builds target/release/roar, generates the
# workloads in a temp dir, and writes hyperfine JSON plus results.md to
# bench/out/. Environment: PYTHON=/path/to/python overrides the interpreter
# (default: the real interpreter behind `python3`, not the pyenv shim);
# KEEP=1 keeps the temp dir; ONLY="W1 T" runs only those workloads.
set -euo pipefail

QUICK=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $a (usage: bench/run.sh [--quick])" >&2; exit 2 ;;
  esac
done

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
OUT="$BENCH/out"
VENV="$BENCH/.venv-roarcli"
mkdir -p "$OUT"
export DO_NOT_TRACK=1   # roar-cli telemetry off (harmless for everything else)

if [ "$QUICK" = 1 ]; then RUNS=3; WARM=1; RC_RUNS=2; RC_WARM=0
else RUNS=10; WARM=2; RC_RUNS=3; RC_WARM=1; fi

log() { echo "== $*" >&2; }

# ---------------------------------------------------------------- 1. tools
need_apt=()
command -v hyperfine >/dev/null || need_apt+=(hyperfine)
command -v strace >/dev/null || need_apt+=(strace)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]} (apt)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# roar-cli's console script is also called `roar`: call it by absolute path,
# its venv is never put on PATH.
RC="$VENV/bin/roar"
HAVE_RC=0
if [ ! -x "$RC" ]; then
  log "installing roar-cli==0.4.7 into $VENV"
  if python3 -m venv "$VENV" >/dev/null 2>&1 &&
     "$VENV/bin/pip" install -q --disable-pip-version-check roar-cli==0.4.7 >/dev/null 2>&1; then :; else
    echo "NOTE: roar-cli 0.4.7 could not be installed; its column is skipped." >&2
  fi
fi
[ -x "$RC" ] && HAVE_RC=1

# ---------------------------------------------------------------- 2. build
log "building release binaries"
(cd "$ROOT" && cargo build --release -q -p roar-cli -p tracer-preload)
ROAR="$ROOT/target/release/roar"
[ -x "$ROAR" ] && [ -f "$ROOT/target/release/libroar_preload.so" ] || { echo "no $ROAR / libroar_preload.so" >&2; exit 1; }

PY="${PYTHON:-$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')}"
PYVER="$("$PY" -c 'import sys; print(sys.version.split()[0])')"

# ---------------------------------------------------------------- 3. workloads
WORK="$(mktemp -d /tmp/roar-bench.XXXXXX)"
if [ "${KEEP:-0}" != 1 ]; then trap 'rm -rf "$WORK"' EXIT; else log "keeping $WORK"; fi

# W5 inputs (200 x 1 MiB) are generated once and symlinked into every copy.
log "generating workloads in $WORK"
mkdir -p "$WORK/shared/in"
"$PY" - "$WORK/shared/in" <<'EOF'
import os, sys
d = sys.argv[1]
for i in range(200):
    with open(os.path.join(d, f"i{i}.bin"), "wb") as f:
        f.write(os.urandom(1 << 20))
EOF

# One git repository per tool (roar and roar-cli both keep a .roar/ store;
# roar-cli refuses to run with untracked files, so outputs are gitignored).
mkwork() {
  local d="$1"
  mkdir -p "$d" && cd "$d"
  git init -q .
  git config user.email bench@example.invalid; git config user.name bench
  cat > .gitignore <<'EOF'
.roar/
in
out/
w2/
*.o
c/prog
__pycache__/
EOF
  ln -s ../shared/in in
  cat > w2.py <<'EOF'
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
EOF
  cat > w5.py <<'EOF'
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
EOF
  printf '#!/bin/sh\nset -e\ngit status >/dev/null\ngit log -n 50 >/dev/null\n' > w4.sh
  mkdir -p c
  local objs=""
  for i in $(seq 0 19); do
    printf '#include <stdio.h>\nint f%d(int x) { int s = 0; for (int i = 0; i < x; i++) s += i * %d; printf("%%d\\n", s); return s; }\n' "$i" "$i" > "c/f$i.c"
    objs="$objs f$i.o"
  done
  { printf '#include <stdio.h>\n'; for i in $(seq 0 19); do printf 'int f%d(int);\n' "$i"; done
    printf 'int main(void) { int s = 0;\n'; for i in $(seq 0 19); do printf ' s += f%d(%d);\n' "$i" "$i"; done
    printf ' return s == 0; }\n'; } > c/main.c
  printf 'OBJS =%s main.o\nprog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n%%.o: %%.c\n\t$(CC) -O2 -c -o $@ $<\nclean:\n\trm -f *.o prog\n.PHONY: clean\n' "$objs" > c/Makefile
  mkdir -p files
  for i in $(seq 0 1999); do echo "file $i" > "files/$(( i % 40 ))-$i.txt"; done
  git add -A && git commit -q -m "initial: 2000 files"
  # 50 more commits touching a few files each, so `git log -n 50` has work.
  for i in $(seq 1 50); do echo "edit $i" >> "files/0-$((i * 40 % 2000)).txt"; git commit -q -am "edit $i"; done
  cd - >/dev/null
}

TOOLS=(native roar strace)
[ "$HAVE_RC" = 1 ] && TOOLS+=(roarcli)
for t in "${TOOLS[@]}"; do mkwork "$WORK/$t"; done
(cd "$WORK/roar" && "$ROAR" init >/dev/null 2>&1)
if [ "$HAVE_RC" = 1 ]; then
  if ! (cd "$WORK/roarcli" && "$RC" init </dev/null >/dev/null 2>&1 && git add .gitignore && git commit -q -m "roar-cli init" >/dev/null 2>&1; git status --porcelain | grep -q . && exit 1; exit 0); then
    echo "NOTE: roar-cli init failed or left the tree dirty; its column is skipped." >&2
    HAVE_RC=0; TOOLS=(native roar strace)
  fi
fi

# name | command (run with hyperfine -N: no shell) | prepare (via shell, "" = none)
WORKLOADS=(
  "W1|$PY -c 'import json, email, http.client, decimal, asyncio'|"
  "W2|$PY w2.py|"
  "W3|make -s -j2 -C c|make -s -C c clean"
  "W4|sh w4.sh|"
  "W5first|$PY w5.py|rm -rf out"
  "W5repeat|$PY w5.py|"
  "T|true|"
)
declare -A DESC=(
  [W1]="W1 python imports" [W2]="W2 2k small files write/read/rm"
  [W3]="W3 make -j2, 20 C files" [W4]="W4 git status + log -n 50 (2k files)"
  [W5first]="W5 200x1MiB in, 20x10MiB out (first)" [W5repeat]="W5 (repeat, outputs exist)"
  [T]="T true"
)

wrap() { # tool cmd -> command line for hyperfine -N
  case "$1" in
    native)  echo "$2" ;;
    roar)    echo "$ROAR run --backend preload -q -- $2" ;;
    strace)  echo "strace -f -e trace=%file,%process -o /dev/null $2" ;;
    roarcli) echo "$RC run $2" ;;
  esac
}

ERRS="$OUT/errors.txt"; : > "$ERRS"
rm -f "$OUT"/*.json
for w in "${WORKLOADS[@]}"; do
  IFS='|' read -r name cmd prep <<<"$w"
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
  for t in "${TOOLS[@]}"; do
    full="$(wrap "$t" "$cmd")"
    runs=$RUNS; warm=$WARM
    [ "$t" = roarcli ] && { runs=$RC_RUNS; warm=$RC_WARM; }
    log "$name / $t: $full"
    cd "$WORK/$t"
    # Probe once so a failure is reported with its exact error.
    [ -n "$prep" ] && sh -c "$prep" >/dev/null 2>&1
    if ! eval "$full" >"$WORK/probe.out" 2>&1 </dev/null; then
      { echo "### $name / $t: \`$full\` failed (exit $?)"; tail -20 "$WORK/probe.out"; echo; } >> "$ERRS"
      echo "   FAILED, see $ERRS" >&2
      cd - >/dev/null; continue
    fi
    args=(-N --style basic --warmup "$warm" --runs "$runs" --export-json "$OUT/$name-$t.json")
    [ -n "$prep" ] && args+=(--prepare "$prep")
    if ! hyperfine "${args[@]}" "$full" >"$WORK/hf.out" 2>&1; then
      { echo "### $name / $t: hyperfine failed"; tail -20 "$WORK/hf.out"; echo; } >> "$ERRS"
      echo "   FAILED under hyperfine, see $ERRS" >&2
      rm -f "$OUT/$name-$t.json"
    fi
    cd - >/dev/null
  done
done

# ---------------------------------------------------------------- 5. table
RCV="skipped (not installed)"; [ "$HAVE_RC" = 1 ] && RCV="$("$RC" --version 2>/dev/null | head -1 || echo 0.4.7)"
"$PY" - "$OUT" "$RUNS" "$WARM" "$RC_RUNS" "$RC_WARM" "$PY ($PYVER)" "$ROAR" "$RCV" "${TOOLS[*]}" <<'EOF' | tee "$OUT/results.md"
import json, os, subprocess, sys, datetime
out, runs, warm, rcruns, rcwarm, py, roar, rcv, tools = sys.argv[1:]
tools = tools.split()
names = ["W1", "W2", "W3", "W4", "W5first", "W5repeat", "T"]
desc = {"W1": "W1 python imports", "W2": "W2 2k small files write/read/rm",
        "W3": "W3 make -j2, 20 C files", "W4": "W4 git status + log -n 50 (2k-file repo)",
        "W5first": "W5 200x1MiB in, 20x10MiB out (first run)", "W5repeat": "W5 (repeat: outputs exist)",
        "T": "T `true`"}
head = {"roar": "roar run --backend preload", "strace": "strace -f (%file,%process)", "roarcli": "roar-cli 0.4.7 run"}
def med(n, t):
    p = os.path.join(out, f"{n}-{t}.json")
    if not os.path.exists(p): return None
    return json.load(open(p))["results"][0]["median"] * 1000
kernel = os.uname().release
print(f"# roar benchmarks ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC})\n")
print(f"- machine: {os.cpu_count()} cores (nproc {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()}), kernel {kernel}")
print(f"- python run by W1/W2/W5: {py} (the real interpreter, not the pyenv shim)")
print(f"- roar: {roar}; roar-cli: {rcv}")
print(f"- hyperfine -N, median of {runs} runs after {warm} warm-ups (roar-cli: {rcruns} runs, {rcwarm} warm-ups)")
print(f"- cells: median ms (ratio to native); for `true`: median ms (+difference to native in ms)\n")
cols = [t for t in tools if t != "native"]
print("| workload | native ms | " + " | ".join(head[t] for t in cols) + " |")
print("|---|---:|" + "---:|" * len(cols))
for n in names:
    nat = med(n, "native")
    if nat is None and all(med(n, t) is None for t in cols): continue
    row = [desc[n], "FAIL" if nat is None else f"{nat:.1f}"]
    for t in cols:
        m = med(n, t)
        if m is None: row.append("FAIL"); continue
        if nat is None: row.append(f"{m:.1f}"); continue
        extra = f"+{m - nat:.1f} ms" if n == "T" else f"{m / nat:.2f}x"
        row.append(f"{m:.1f} ({extra})")
    print("| " + " | ".join(row) + " |")
print("\nTargets for `roar run`: W1-W4 <= 1.10x, W5 <= 1.5x first run and <= 1.15x repeat, `true` <= +20 ms.")
EOF
if [ -s "$ERRS" ]; then
  { echo; echo "## Failures"; echo; cat "$ERRS"; } | tee -a "$OUT/results.md"
fi
