#!/usr/bin/env bash
# Builds roar and installs `roar` and its preload library, portable:
#   PREFIX/bin/roar                        statically linked (runs in any
#                                          Linux image, busybox included)
#   PREFIX/lib/roar/libroar_preload.so     needs only libc, at GLIBC_2.28 or
#                                          lower (any glibc image from 2.28 on)
#   PREFIX/lib/roar/libroar_preload-glibc2.34.so
#                                          the same for glibc 2.34 and later:
#                                          it needs no libdl or libpthread,
#                                          so each process loads two objects
#                                          fewer; roar uses it for commands
#                                          whose glibc is that new
# PREFIX defaults to /usr/local as root and ~/.local otherwise; roar finds
# PREFIX/lib/roar/libroar_preload.so by itself.
#
# What the build needs (clang, libbpf-dev and bpftool for the eBPF backend,
# zig for the library): as root it is installed (scripts/deps.sh build);
# otherwise the script stops and names what is missing.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" = 0 ]; then prefix=${PREFIX:-/usr/local}; else prefix=${PREFIX:-$HOME/.local}; fi
scripts/deps.sh build

arch=$(uname -m)
triple=$arch-unknown-linux-gnu
target=${CARGO_TARGET_DIR:-target}
export PATH=$PWD/.venv-zig/bin:$PATH
# The library: zig links it against glibc 2.28's symbol versions and
# without libgcc_s.
cargo zigbuild --release --locked --target "$triple.2.28" -p tracer-preload
# The glibc 2.34 build, in a target directory of its own so that neither
# build undoes the other's.
CARGO_TARGET_DIR=$target/glibc-2.34 \
    cargo zigbuild --release --locked --target "$triple.2.34" -p tracer-preload
# roar: static glibc (bundled sqlite, vendored libgit2), and not
# position-independent: a static-pie roar relocates itself on every start
# (28,000 relocations, 140 page faults, 0.4 ms of each run). The cost is
# that roar's own code loads at a fixed address; RUSTFLAGS given here come
# last, so RUSTFLAGS="-C relocation-model=pie" builds it the other way.
RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static ${RUSTFLAGS:-}" \
    cargo build --release --locked --target "$triple" -p roar-cli
out=$target/$triple/release
! readelf -d "$out/roar" | grep -q NEEDED || {
    echo "install.sh: $out/roar is not statically linked" >&2
    exit 1
}
install -d "$prefix/bin" "$prefix/lib/roar"
install -m 0755 "$out/roar" "$prefix/bin/roar.new"
strip "$prefix/bin/roar.new" && mv -f "$prefix/bin/roar.new" "$prefix/bin/roar"
install -m 0644 "$out/libroar_preload.so" "$prefix/lib/roar/libroar_preload.so.new"
strip --strip-debug "$prefix/lib/roar/libroar_preload.so.new"
mv -f "$prefix/lib/roar/libroar_preload.so.new" "$prefix/lib/roar/libroar_preload.so"
variant=$prefix/lib/roar/libroar_preload-glibc2.34.so
install -m 0644 "$target/glibc-2.34/$triple/release/libroar_preload.so" "$variant.new"
strip --strip-debug "$variant.new"
mv -f "$variant.new" "$variant"
echo "installed roar to $prefix/bin/roar and its preload library to $prefix/lib/roar/" >&2
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "note: $prefix/bin is not on your PATH" >&2 ;; esac
