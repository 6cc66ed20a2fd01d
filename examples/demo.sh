#!/bin/bash
# make demo: from a fresh Debian 12 machine (as root) to a verified 3-member
# etcd cluster with TLS and client-certificate authentication, on the lab's
# real nodes: installs what is missing, builds, boots 3 nodes, runs
# playbooks/tls-cluster.lua. Run it again: it changes nothing the second time.
set -euo pipefail
cd "$(dirname "$0")/.."

sh .ci/deps.sh
make --no-print-directory -s etcdrun

status=$(bash spec/lab/lab.sh status 2>/dev/null | head -n 1 || true)
case "$status" in
"up nodes=3 "*) echo "demo: using the 3-node lab that is up" ;;
up*)
    echo "demo: a lab of another size is up ($status): run 'make lab-down' first" >&2
    exit 1
    ;;
*) bash spec/lab/lab.sh up 3 ;;
esac

# The lab serves an etcd release shaped like upstream's (no internet here).
version=$(cat .lab/etcd_version)
release=$(cat .lab/release_url)/v$version
# Exactly the command printed: the PKI is .lab/pki, next to the inventory.
echo "demo: ./etcdrun -i .lab/hosts playbooks/tls-cluster.lua -e etcd_version=$version -e etcd_release_url=$release"
exec ./etcdrun -i .lab/hosts playbooks/tls-cluster.lua -e etcd_version="$version" -e etcd_release_url="$release"
