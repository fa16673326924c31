#!/usr/bin/env bash
# Records the two-step example pipeline in a fresh git repository and shows
# what roar knows about it. Usage: examples/pipeline/run.sh [WORKDIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:-$(mktemp -d /tmp/roar-example.XXXXXX)}
mkdir -p "$work"
cp -r "$here/prepare.py" "$here/train.py" "$here/data" "$work/"
cd "$work"
git init -q
git -c user.name=roar -c user.email=roar@example.invalid add -A
git -c user.name=roar -c user.email=roar@example.invalid commit -qm "example pipeline"
set -x
roar init
roar run python3 prepare.py
roar run python3 train.py
roar log
roar show --json
roar show data/clean.csv
