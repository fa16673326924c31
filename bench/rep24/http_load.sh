#!/bin/bash
# The HTTP workload (the paper's SimpleHttp): `python -m http.server` serving
# srv/test, loaded by `hey` (the paper's load generator), both started here so
# that one traced command holds server and client.
# usage: http_load.sh PYTHON PORT REQUESTS
set -e
py=$1 port=$2 n=$3
"$py" -m http.server "$port" --bind 127.0.0.1 --directory srv > server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 500); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.02
done
hey -n "$n" -c 8 "http://127.0.0.1:$port/test" > hey.out
# Every request must have been served, or the run does not count.
grep -Eq "\[200\][[:space:]]+$n responses" hey.out
