# Shared names and helpers of the lab scripts; sourced, never run.
#
# Everything the lab creates on the host is named from the constants below, so
# `lab.sh down` can find and remove it by name after a crash, without trusting
# any state file.
# shellcheck shell=bash disable=SC2034  # constants used by the scripts sourcing this

LAB_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_CHECKOUT=$(cd "$LAB_SRC/../.." && pwd)

# Controller-side files (inventory, ssh_config, keys, logs): per checkout,
# ignored by git. Made absolute because they end up in ssh_config and hosts.
LAB_DIR=${LAB_DIR:-$LAB_CHECKOUT/.lab}
mkdir -p "$LAB_DIR" 2>/dev/null || true
LAB_DIR=$(cd "$LAB_DIR" && pwd)

# Cached across checkouts (CI's fresh clone reuses them): the base rootfs and
# the release tarball.
LAB_CACHE=${LAB_CACHE:-/var/cache/etcdrun-lab}
# Node disks (overlay upper/work and the mounted roots) live outside the
# checkout so that `grep -r`, luacheck or find over the tree never walk into a
# mounted root filesystem. Only one lab per machine can exist (fixed subnet),
# so a fixed path is enough.
LAB_VAR=${LAB_VAR:-/var/lib/etcdrun-lab}
# Small runtime facts (who owns the running lab, pids, stop flags).
LAB_RUN=${LAB_RUN:-/run/etcdrun-lab}

LAB_SUITE=bookworm
LAB_BASE=$LAB_CACHE/base-$LAB_SUITE
LAB_BRIDGE=etcdlab0
LAB_VETH_PREFIX=etcdlabv           # host end of node i: etcdlabv<i>
LAB_NETNS_PREFIX=etcdlab-          # namespace of node etcdN: etcdlab-etcdN
LAB_CGROUP=etcdrun-lab             # under /sys/fs/cgroup/{systemd,unified}
LAB_CGROUP_ROOTS=(/sys/fs/cgroup/systemd /sys/fs/cgroup/unified)
LAB_HOST_IP=198.18.0.1
LAB_PREFIXLEN=24
LAB_HTTP_PORT=${LAB_HTTP_PORT:-8080}
LAB_PYTHON=/usr/bin/python3        # not a pyenv shim: the system interpreter

log() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }

node_name() { printf 'etcd%d' "$1"; }
node_ip() { printf '198.18.0.%d' $((10 + $1)); }
node_netns() { printf '%s%s' "$LAB_NETNS_PREFIX" "$(node_name "$1")"; }
node_veth() { printf '%s%d' "$LAB_VETH_PREFIX" "$1"; }
node_var() { printf '%s/nodes/%s' "$LAB_VAR" "$(node_name "$1")"; }

# "etcd7" -> 7; dies on anything else so a typo never reaches `ip` or `rm`.
node_index() {
    [[ $1 =~ ^etcd([1-9][0-9]?)$ ]] || die "not a lab node name: '$1' (expected etcdN)"
    printf '%d' "${BASH_REMATCH[1]}"
}

require_root() {
    ((EUID == 0)) || die "must run as root (network namespaces, mounts, systemd-nspawn)"
}

# Serialise every command that changes the lab: two `up`s racing would both
# see "no lab" and trample each other.
lab_lock() {
    mkdir -p "$LAB_RUN"
    exec {LAB_LOCK_FD}>"$LAB_RUN/lock"
    flock -w 120 "$LAB_LOCK_FD" || die "another lab command holds $LAB_RUN/lock"
}

# Move the calling shell into the lab cgroup $1 of every hierarchy, before it
# starts anything: what runs there is what `down` kills, found without any
# pid file.
join_lab_cgroup() {
    local root dir
    for root in "${LAB_CGROUP_ROOTS[@]}"; do
        dir=$root/$LAB_CGROUP/$1
        mkdir -p "$dir"
        printf '%d\n' "$BASHPID" >"$dir/cgroup.procs"
    done
}

# Seconds since the epoch with milliseconds, for timings printed by up/down.
now() { printf '%s' "$EPOCHREALTIME"; }
elapsed() { awk -v s="$1" -v e="$EPOCHREALTIME" 'BEGIN { printf "%.1f", e - s }'; }
