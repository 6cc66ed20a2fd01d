#!/bin/bash
# make bench: bring up a lab of 30 nodes unless one that big is up, run the
# benchmarks, and take down the lab only if this script brought it up.
# Needs Debian's ansible-core for the comparison (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${ETCDRUN:-./etcdrun}
command -v ansible >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ansible-core >/dev/null

started=""
nodes=$(bash spec/lab/lab.sh status | sed -n 's/^up nodes=\([0-9]*\).*/\1/p')
if [ "${nodes:-0}" -lt 30 ]; then
    [ -n "$nodes" ] && bash spec/lab/lab.sh down >/dev/null
    bash spec/lab/lab.sh up 30
    started=1
fi
trap '[ -n "$started" ] && bash spec/lab/lab.sh down >/dev/null' EXIT

"$bin" spec/bench/adhoc.lua "${RUNS:-5}" 3,10,30
"$bin" spec/bench/open_session.lua 3 50
"$bin" spec/bench/open_session.lua 30 20
