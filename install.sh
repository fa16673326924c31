#!/usr/bin/env bash
# Builds roar and installs `roar` and its preload library.
# PREFIX defaults to /usr/local as root and ~/.local otherwise; roar finds
# PREFIX/lib/roar/libroar_preload.so by itself.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" = 0 ]; then prefix=${PREFIX:-/usr/local}; else prefix=${PREFIX:-$HOME/.local}; fi
cargo build --release --locked -p roar-cli -p tracer-preload
install -d "$prefix/bin" "$prefix/lib/roar"
install -m 0755 target/release/roar "$prefix/bin/roar"
install -m 0644 target/release/libroar_preload.so "$prefix/lib/roar/libroar_preload.so"
echo "installed roar to $prefix/bin/roar and its preload library to $prefix/lib/roar/" >&2
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "note: $prefix/bin is not on your PATH" >&2 ;; esac
