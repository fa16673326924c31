#!/usr/bin/env bash
# Installs what building and testing roar needs beyond Rust, on Debian:
# system packages (as root, only those missing) and the released OpenJD
# runtime in .venv-openjd/ (the OpenJD end-to-end tests run jobs with it).
# Idempotent and quick when everything is there; .ci/run and the README's
# test command both start with it.
set -euo pipefail
cd "$(dirname "$0")/.."

# graphviz: the DOT export test renders with the real `dot`.
# postgresql: the team-store tests start a throwaway PostgreSQL 15 server themselves.
pkgs=(build-essential pkg-config strace git graphviz postgresql)
# python3 is normally preinstalled (pyenv); the fixtures need one.
command -v python3 >/dev/null || pkgs+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || pkgs+=(python3-venv)
# The eBPF backend compiles its BPF program with clang from build.rs.
[ -d tracer-ebpf ] && pkgs+=(clang libbpf-dev bpftool libelf-dev)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "deps.sh: not root; install these Debian packages first: ${missing[*]}" >&2
        exit 1
    fi
fi

# The PROV-JSON export test validates against tests/prov-json.schema.json with jsonschema.
if ! python3 -c 'import jsonschema' 2>/dev/null; then
    python3 -m pip install -q jsonschema 2>/dev/null \
        || python3 -m pip install -q --break-system-packages jsonschema
fi

# tests/tests/environment.rs reads the PROV-JSON export with the W3C PROV library, pinned.
if ! python3 -c 'import prov, sys; sys.exit(prov.__version__ != "3.2.3")' 2>/dev/null; then
    python3 -m pip install -q prov==3.2.3 2>/dev/null \
        || python3 -m pip install -q --break-system-packages prov==3.2.3
fi

# The released Python OpenJD runtime, pinned.
if [ ! -x .venv-openjd/bin/openjd ]; then
    python3 -m venv .venv-openjd
    .venv-openjd/bin/pip install -q openjd-cli==0.8.0
fi
