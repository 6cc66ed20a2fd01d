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
# The second etcd release the lab serves, for upgrade specs: the etcd of this
# Debian suite (3.5.16 in trixie), fetched from the same mirror with a private
# apt (release.sh --upgrade), checked with this keyring.
LAB_UPGRADE_SUITE=trixie
LAB_ARCHIVE_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
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

# The mirror apt already uses on this machine: the first enabled `deb` entry
# for the lab's suite ($LAB_SUITE), from deb822 .sources files first, then
# one-line sources.list. Never a hard-coded host: CI machines and developers'
# may differ. debootstrap and the upgrade release (another suite, same
# mirror) both come from it.
apt_mirror() {
    local uri
    if [[ -n ${LAB_MIRROR:-} ]]; then
        printf '%s\n' "$LAB_MIRROR"
        return
    fi
    uri=$(awk -v suite="$LAB_SUITE" '
        function flush() {
            if (types ~ /(^| )deb( |$)/ && suites ~ ("(^| )" suite "( |$)") &&
                enabled != "no" && uris != "" && found == "") {
                split(uris, u, " "); found = u[1]
            }
            types = suites = uris = enabled = ""
        }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { flush(); next }
        tolower($1) == "types:"   { $1 = ""; types = $0 }
        tolower($1) == "suites:"  { $1 = ""; suites = $0 }
        tolower($1) == "uris:"    { $1 = ""; uris = $0; sub(/^ +/, "", uris) }
        tolower($1) == "enabled:" { enabled = tolower($2) }
        END { flush(); print found }
    ' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [[ -z $uri && -r /etc/apt/sources.list ]]; then
        # deb [options] URI suite components
        uri=$(awk -v suite="$LAB_SUITE" '
            $1 == "deb" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit }
            }' /etc/apt/sources.list)
    fi
    [[ -n $uri ]] || die "no '$LAB_SUITE' deb entry in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list (set LAB_MIRROR)"
    printf '%s\n' "$uri"
}

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
