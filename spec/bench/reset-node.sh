#!/bin/bash
# Return lab nodes to what the lab booted them with, as far as the benchmarks
# are concerned: remove everything etcdrun's tls-cluster.lua, the first seed's
# Ansible playbook (spec/bench/seed/) and the per-task bench (spec/bench/tasks/)
# put there, so that the next cold run starts from a fresh node.
#
#   bash spec/bench/reset-node.sh [-F ssh_config] [-d controller_dir]... NODE...
#       resets every NODE in parallel over ssh (this file is piped to
#       `bash -s -- --local` on each), then removes each controller_dir
#       (the PKI / artifacts directories of both tools)
#   bash spec/bench/reset-node.sh --local
#       resets the machine it runs on (as root)
set -euo pipefail

if [ "${1:-}" = "--local" ]; then
    export LC_ALL=C
    for unit in etcd etcdrun-bench; do
        systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
    rm -rf /opt/etcd /etc/etcd /var/lib/etcd /etc/profile.d/etcd.sh /tmp/etcd.tar.gz \
        /etc/systemd/system/etcd.service /etc/systemd/system/etcdrun-bench.service \
        /opt/etcdrun-bench /root/.ansible
    systemctl daemon-reload
    systemctl reset-failed etcd etcdrun-bench >/dev/null 2>&1 || true
    if id -u etcd >/dev/null 2>&1; then userdel etcd; fi
    if getent group etcd >/dev/null; then groupdel etcd; fi
    # the two lines the seed's lineinfile tasks append to /etc/profile
    if grep -qxF -e 'export PATH="$PATH:/opt/etcd/bin"' -e 'export ETCDCTL_API=3' /etc/profile; then
        grep -vxF -e 'export PATH="$PATH:/opt/etcd/bin"' -e 'export ETCDCTL_API=3' /etc/profile \
            >/etc/profile.reset || true
        chmod 0644 /etc/profile.reset
        mv /etc/profile.reset /etc/profile
    fi
    exit 0
fi

self=$(readlink -f "$0")
cfg=""
dirs=()
while [ $# -gt 0 ]; do
    case "$1" in
        -F) cfg=$2; shift 2 ;;
        -d) dirs+=("$2"); shift 2 ;;
        --) shift; break ;;
        -*) echo "reset-node.sh: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "usage: reset-node.sh [-F ssh_config] [-d dir]... NODE..." >&2; exit 2; }

pids=()
for node in "$@"; do
    ssh ${cfg:+-F "$cfg"} -o ConnectTimeout=5 "$node" bash -s -- --local <"$self" &
    pids+=($!)
done
rc=0
for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || { echo "reset-node.sh: reset failed on ${*:$((i + 1)):1}" >&2; rc=1; }
done
for d in "${dirs[@]}"; do
    rm -rf -- "$d"
done
exit $rc
