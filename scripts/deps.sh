#!/usr/bin/env bash
# Installs what building and testing roar needs beyond Rust, on Debian:
# system packages (as root, only those missing), zig and cargo-zigbuild in
# .venv-zig/ (the portable release build) and the released OpenJD runtime
# in .venv-openjd/ (the OpenJD end-to-end tests run jobs with it).
#
#   scripts/deps.sh          everything: build and test (.ci/run, the README's test command)
#   scripts/deps.sh build    only what ./install.sh needs
#
# Idempotent and quick when everything is there. Not root and a package
# missing: says exactly which ones and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}

# The eBPF backend compiles its BPF program with clang from build.rs
# (headers from libbpf-dev, vmlinux.h from bpftool).
pkgs=(build-essential pkg-config clang libbpf-dev bpftool libelf-dev libssl-dev)
python3 -c 'import venv, ensurepip' 2>/dev/null || pkgs+=(python3-venv)
if [ "$mode" = all ]; then
    # graphviz: the DOT export test renders with the real `dot`.
    # postgresql: the team-store tests start a throwaway PostgreSQL 15 server themselves.
    # docker.io, mmdebstrap, busybox-static: the container tests start a private
    # dockerd and build their base images without a registry; golang-go builds
    # their Go parent (like OSMO's osmo_exec) from source.
    # openssl: the OpenLineage https test makes its own certificate.
    # podman: the OpenJD container template is tested with Podman too (runc, as
    # platform notes say: crun refuses this machine's cgroup layout).
    pkgs+=(strace git graphviz postgresql docker.io mmdebstrap busybox-static golang-go openssl podman runc)
    # autoconf, automake, sqlite3, vim, patch, flock (util-linux): the real-program
    # corpus (tests/tests/realprograms.rs) generates and builds an autotools project.
    pkgs+=(autoconf automake sqlite3 vim patch util-linux)
fi
# python3 is normally preinstalled (pyenv); the fixtures need one.
command -v python3 >/dev/null || pkgs+=(python3)

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
        echo "deps.sh: not root; install these Debian packages first (sudo apt-get install ${missing[*]}), then rerun" >&2
        exit 1
    fi
fi

# zig (from PyPI) links the preload library against glibc 2.28's symbol
# versions, so that it loads in any glibc image from 2.28 on.
if [ ! -x .venv-zig/bin/cargo-zigbuild ] || ! .venv-zig/bin/python -m ziglang version >/dev/null 2>&1; then
    python3 -m venv .venv-zig
    .venv-zig/bin/pip install -q ziglang==0.17.1 cargo-zigbuild==0.24.1
fi

[ "$mode" = all ] || exit 0

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

# `roar k8s pod-template` is checked against the Kubernetes schemas (offline, bundled), pinned.
if [ ! -x .venv-k8s/bin/kubernetes-validate ]; then
    python3 -m venv .venv-k8s
    .venv-k8s/bin/pip install -q kubernetes-validate==1.37.0
fi

# The released Python OpenJD runtime, pinned.
if [ ! -x .venv-openjd/bin/openjd ]; then
    python3 -m venv .venv-openjd
    .venv-openjd/bin/pip install -q openjd-cli==0.8.0
fi
