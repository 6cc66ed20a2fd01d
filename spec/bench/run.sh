#!/bin/bash
# make bench: bring up a lab of 30 nodes unless one that big is up, run the
# benchmarks, and take down the lab only if this script brought it up (the
# playbook benchmarks run on a 5-node lab when this script made the lab).
# Needs Debian's ansible-core for the comparison, and for the first seed's
# playbook the community.crypto collection of Debian's `ansible` package
# (both installed if missing).
# The playbook benchmarks use the first 3 nodes (reset before and after):
# TASK_RUNS / CLUSTER_RUNS etcdrun runs (default 7 / 5), ANSIBLE_RUNS (default 3).
# The membership benchmark uses the first 5 (a 3-member cluster, 2 nodes that
# join and leave; reset before and after): MEMBERSHIP_RUNS runs (default 3).
# The trust benchmark (upgrade, certificate renewal, CA rotation) uses nodes
# 7-9 (reset before and after; a lab this script made is rebooted with 9
# nodes for it, after the others): TRUST_RUNS runs (default 3). The safety-net
# benchmark (snapshot, restore, doctor, defrag of 10,000 keys) then uses the
# same nodes: SAFETY_RUNS runs (default 3).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${ETCDRUN:-./etcdrun}
command -v ansible >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ansible-core >/dev/null
# (ansible-doc exits 0 for a module it cannot find: ask dpkg)
dpkg-query -W -f='${Status}' ansible 2>/dev/null | grep -q "install ok installed" ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ansible >/dev/null

started=""
nodes=$(bash spec/lab/lab.sh status 2>/dev/null | sed -n 's/^up nodes=\([0-9]*\).*/\1/p' || true)
if [ "${nodes:-0}" -lt 30 ]; then
    [ -n "$nodes" ] && bash spec/lab/lab.sh down >/dev/null
    bash spec/lab/lab.sh up 30
    started=1
fi
trap '[ -n "$started" ] && bash spec/lab/lab.sh down >/dev/null' EXIT

"$bin" spec/bench/adhoc.lua "${RUNS:-5}" 3,10,30
"$bin" spec/bench/open_session.lua 3 50
"$bin" spec/bench/open_session.lua 30 20

# The playbook benchmarks need 3 nodes and the membership one 5; 25 idle ones
# would only add noise on 2 cores, so a lab this script made is rebooted with 5.
if [ -n "$started" ]; then
    bash spec/lab/lab.sh down >/dev/null
    bash spec/lab/lab.sh up 5
fi
"$bin" spec/bench/tasks.lua "${TASK_RUNS:-7}" "${ANSIBLE_RUNS:-3}" 1,2,3
"$bin" spec/bench/cluster.lua "${CLUSTER_RUNS:-5}" "${ANSIBLE_RUNS:-3}" 1,2,3
"$bin" spec/bench/repl.lua etcd1:etcd2:etcd3 200
"$bin" spec/bench/membership.lua "${MEMBERSHIP_RUNS:-3}" 1,2,3,4,5

# The trust benchmark runs on nodes 7-9 (the specs' upgrade and rotation
# nodes): a lab this script made is rebooted with 9 nodes, once the others are
# done, so that they keep their 5.
if [ -n "$started" ]; then
    bash spec/lab/lab.sh down >/dev/null
    bash spec/lab/lab.sh up 9
fi
"$bin" spec/bench/trust.lua "${TRUST_RUNS:-3}" 7,8,9
"$bin" spec/bench/safety.lua "${SAFETY_RUNS:-3}" 7,8,9
