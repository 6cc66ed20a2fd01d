#!/bin/bash
# The etcdrun lab: N real Debian nodes on this machine, each with systemd as
# PID 1 (systemd-nspawn), its own network namespace and address on a private
# bridge, and sshd taking root's lab key. See spec/lab/README.md.
#
#   lab.sh up [N]                  boot N nodes (default 3); wait for SSH
#   lab.sh down                    remove everything the lab made; safe twice
#   lab.sh status                  first line "up nodes=N dir=DIR" or "down"
#   lab.sh stop-node etcdN [--hard]  poweroff (or kill -9) one node
#   lab.sh start-node etcdN        boot it again (same disk); wait for SSH
#   lab.sh cut etcdN | heal etcdN  take its link off the bridge, or back
#   lab.sh addr etcdN add|del IP   a second address on its eth0 (the node
#                                  cannot: nspawn gives it no CAP_NET_ADMIN)
#   lab.sh ssh etcdN [CMD...]      ssh with the lab's ssh_config
#   lab.sh publish                 build (once) and serve both etcd releases
#                                  in the running lab (up does it too)
#   lab.sh mem                     memory (PSS) per node
set -euo pipefail
# shellcheck source=spec/lab/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

LAB_MAX_NODES=99    # etcd1..etcd99 -> 198.18.0.11..198.18.0.109

# Limits that every node's systemd, journald and logind share with the host:
# with the kernel defaults, boots stall past about 15 nodes (LAB-NOTES).
SYSCTL_MINIMA=(
    fs.inotify.max_user_instances=8192
    fs.inotify.max_user_watches=1048576
    kernel.keys.maxkeys=20000
    kernel.keys.maxbytes=25000000
)

# ---------------------------------------------------------------- state ----

# The controller directory of the running lab, which may belong to another
# checkout: `ssh` and `status` from anywhere talk to the lab that is up.
state_dir() {
    if [[ -r $LAB_RUN/owner ]]; then
        cat "$LAB_RUN/owner"
    else
        printf '%s\n' "$LAB_DIR"
    fi
}

node_count() {
    [[ -r $LAB_RUN/nodes ]] && cat "$LAB_RUN/nodes" || echo 0
}

# Anything a lab leaves on the host, up or half-made: `up` refuses to build
# over it rather than corrupt it.
lab_traces() {
    local ns
    [[ -e /sys/class/net/$LAB_BRIDGE ]] && echo "bridge $LAB_BRIDGE"
    [[ -e $LAB_RUN/owner ]] && echo "lab record $LAB_RUN/owner"
    for ns in /run/netns/"$LAB_NETNS_PREFIX"*; do
        [[ -e $ns ]] && echo "namespace ${ns##*/}"
    done
    lab_mounts | sed 's/^/mount /'
    return 0
}

lab_mounts() {
    awk -v d="$LAB_VAR/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

launcher_pid() {
    local f=$LAB_RUN/$1.pid pid
    [[ -r $f ]] || return 1
    pid=$(<"$f")
    # A pid file can outlive its process (crash, reboot): trust it only while
    # that pid is still our launcher.
    grep -qs 'node\.sh' "/proc/$pid/cmdline" || return 1
    printf '%s\n' "$pid"
}

# ------------------------------------------------------------- cgroups -----

# Every pid in the lab's cgroups below $1 ("" for all, "etcd2", "http").
cgroup_pids() {
    local sub=$1 root
    for root in "${LAB_CGROUP_ROOTS[@]}"; do
        [[ -d $root/$LAB_CGROUP/$sub ]] || continue
        find "$root/$LAB_CGROUP/$sub" -name cgroup.procs -exec cat {} + 2>/dev/null
    done | sort -un
}

# SIGKILL until nothing is left: a node's processes live in a pid namespace
# whose init may still be forking while we kill.
kill_cgroup() {
    local sub=$1 pids
    for _ in $(seq 100); do
        pids=$(cgroup_pids "$sub")
        [[ -z $pids ]] && return 0
        # shellcheck disable=SC2086  # one pid per word
        kill -KILL $pids 2>/dev/null || true
        sleep 0.05
    done
    die "processes in cgroup $LAB_CGROUP/$sub survive SIGKILL: $(cgroup_pids "$sub" | tr '\n' ' ')"
}

# Remove the empty cgroup directories below $1 (deepest first); $2=keep keeps
# $1 itself.
remove_cgroups() {
    local sub=$1 keep=${2:-} root
    for root in "${LAB_CGROUP_ROOTS[@]}"; do
        [[ -d $root/$LAB_CGROUP/$sub ]] || continue
        find "$root/$LAB_CGROUP/$sub" -mindepth 1 -depth -type d -exec rmdir {} + 2>/dev/null || true
        [[ $keep == keep ]] || rmdir "$root/$LAB_CGROUP/$sub" 2>/dev/null || true
    done
}

# ------------------------------------------------------------- network -----

raise_sysctls() {
    local kv key want have
    for kv in "${SYSCTL_MINIMA[@]}"; do
        key=${kv%%=*} want=${kv#*=}
        have=$(sysctl -n "$key")
        ((have >= want)) || sysctl -qw "$key=$want"
    done
}

setup_bridge() {
    ip link add "$LAB_BRIDGE" type bridge
    # Bridge ports need no IPv6; keep router solicitations and DAD quiet.
    sysctl -qw "net.ipv6.conf.$LAB_BRIDGE.disable_ipv6=1" 2>/dev/null || true
    ip addr add "$LAB_HOST_IP/$LAB_PREFIXLEN" dev "$LAB_BRIDGE"
    ip link set "$LAB_BRIDGE" up
}

# Node i's namespace, with eth0 (the inner end of a veth pair whose outer end
# is a bridge port) and loopback up. No default route: lab traffic stays on
# 198.18.0.0/24.
setup_node_net() {
    local i=$1 ns veth
    ns=$(node_netns "$i") veth=$(node_veth "$i")
    ip netns add "$ns"
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    sysctl -qw "net.ipv6.conf.$veth.disable_ipv6=1" 2>/dev/null || true
    ip link set "$veth" master "$LAB_BRIDGE" up
    ip -n "$ns" addr add "$(node_ip "$i")/$LAB_PREFIXLEN" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
}

# ---------------------------------------------------------------- nodes ----

node_hosts_file() {
    local n=$1 i
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n'
    printf '%s\tlab-controller\n' "$LAB_HOST_IP"
    for i in $(seq "$n"); do
        printf '%s\t%s\n' "$(node_ip "$i")" "$(node_name "$i")"
    done
}

# Node i's own disk: an overlay over the shared base, plus what makes it one
# machine: hostname, hosts, fresh host keys, root's authorized key.
prepare_node_root() {
    local i=$1 n=$2 dir root name
    dir=$(node_var "$i") name=$(node_name "$i")
    root=$dir/root
    mkdir -p "$dir/upper" "$dir/work" "$root"
    mount -t overlay overlay \
        -o "lowerdir=$LAB_BASE,upperdir=$dir/upper,workdir=$dir/work" "$root"
    printf '%s\n' "$name" >"$root/etc/hostname"
    node_hosts_file "$n" >"$root/etc/hosts"
    ssh-keygen -q -t ed25519 -N '' -C "root@$name" -f "$root/etc/ssh/ssh_host_ed25519_key"
    ssh-keygen -q -t ecdsa -b 256 -N '' -C "root@$name" -f "$root/etc/ssh/ssh_host_ecdsa_key"
    install -m 0600 "$STATE/id_ed25519.pub" "$root/root/.ssh/authorized_keys"
}

launch_node() {
    local i=$1 name
    name=$(node_name "$i")
    rm -f "$LAB_RUN/$name.pid"
    # setsid: the node outlives this shell and ignores Ctrl-C in its terminal.
    # The lab lock's fd is closed for it, or the lock would live as long as it.
    setsid "$LAB_SRC/node.sh" "$i" </dev/null >>"$STATE/logs/$name.console" 2>&1 {LAB_LOCK_FD}>&- &
    disown    # down kills it; no "Killed" job notice from this shell
}

node_port_open() {
    (exec 3<>"/dev/tcp/$1/22") 2>/dev/null
}

# Wait until node i accepts an SSH login, or its deadline passes. The port
# is polled first (cheap); a real login then proves sshd, PAM and the key.
wait_ssh_one() {
    local i=$1 deadline=$2 name ip err=''
    name=$(node_name "$i") ip=$(node_ip "$i")
    while ((SECONDS < deadline)); do
        if node_port_open "$ip" &&
            err=$(ssh -F "$STATE/ssh_config" -o ConnectTimeout=3 "$name" true 2>&1); then
            return 0
        fi
        sleep 0.2
    done
    {
        echo "$name ($ip) did not accept SSH within $LAB_SSH_TIMEOUT s${err:+: $err}"
        echo "last console lines of $name ($STATE/logs/$name.console):"
        tail -n 15 "$STATE/logs/$name.console" 2>/dev/null | sed 's/^/    /'
    } >&2
    return 1
}

wait_ssh() {
    local deadline=$((SECONDS + LAB_SSH_TIMEOUT)) i failed=0
    local -a pids=()
    for i in "$@"; do
        wait_ssh_one "$i" "$deadline" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do
        wait "$i" || failed=1
    done
    return "$failed"
}

# ---------------------------------------------------- controller files ----

make_key() {
    [[ -r $STATE/id_ed25519 ]] && return
    ssh-keygen -q -t ed25519 -N '' -C etcdrun-lab -f "$STATE/id_ed25519"
}

# The inventory in the seed's shape, read as it is by etcdrun and Ansible.
write_inventory() {
    local n=$1 i
    {
        echo "# etcdrun lab: $n nodes on $LAB_BRIDGE ($LAB_HOST_IP/$LAB_PREFIXLEN), written by spec/lab/lab.sh up"
        echo "# ssh -F $STATE/ssh_config etcd1; release: $(<"$STATE/release_url")"
        echo "[etcd]"
        for i in $(seq "$n"); do
            echo "$(node_name "$i") ansible_host=$(node_ip "$i") ansible_user=root"
        done
        echo
        echo "[etcd:vars]"
        echo "ansible_ssh_private_key_file=$STATE/id_ed25519"
        echo "ansible_ssh_common_args=-F $STATE/ssh_config"
    } >"$STATE/hosts"
}

write_ssh_config() {
    local n=$1 i
    {
        echo "# etcdrun lab: ssh -F $STATE/ssh_config etcdN"
        for i in $(seq "$n"); do
            printf 'Host %s\n    HostName %s\n' "$(node_name "$i")" "$(node_ip "$i")"
        done
        cat <<EOF
Host etcd* 198.18.0.*
    User root
    IdentityFile $STATE/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $STATE/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 5
    LogLevel ERROR
EOF
    } >"$STATE/ssh_config"
}

# The nodes' real host keys, under both name and address, so clients keep
# strict host-key checking.
write_known_hosts() {
    local n=$1 i key
    for i in $(seq "$n"); do
        for key in "$(node_var "$i")"/root/etc/ssh/ssh_host_{ed25519,ecdsa}_key.pub; do
            printf '%s,%s %s\n' "$(node_name "$i")" "$(node_ip "$i")" "$(cut -d' ' -f1,2 "$key")"
        done
    done >"$STATE/known_hosts"
}

# ---------------------------------------------------------- release --------

# Serve the cached releases under upstream's path, so a playbook downloads
# $release_url/v3.4.23/etcd-v3.4.23-linux-amd64.tar.gz exactly as from
# https://github.com/etcd-io/etcd/releases/download. etcd_version names the
# release of the nodes' Debian (3.4.23), etcd_upgrade_version the one of
# $LAB_UPGRADE_SUITE (3.5.16) that upgrade specs move to. The server serves
# www/ as it is, so publishing into a running lab needs no restart.
publish_release() {
    local cache upgrade
    cache=$("$LAB_SRC/release.sh")
    upgrade=$("$LAB_SRC/release.sh" --upgrade)
    publish_dir "$cache"
    publish_dir "$upgrade"
    put_file "$STATE/release_url" "http://$LAB_HOST_IP:$LAB_HTTP_PORT/etcd-io/etcd/releases/download"
    put_file "$STATE/etcd_version" "${cache##*/v}"
    put_file "$STATE/etcd_upgrade_version" "${upgrade##*/v}"
}

# Write line $2 to file $1 by rename: specs reading it meanwhile (publish in
# a running lab) never see it empty.
put_file() {
    printf '%s\n' "$2" >"$1.tmp.$$"
    mv -f "$1.tmp.$$" "$1"
}

publish_dir() {
    local cache=$1 dir f
    dir=$STATE/www/etcd-io/etcd/releases/download/${cache##*/}
    mkdir -p "$dir"
    for f in "$cache"/*; do
        ln -f "$f" "$dir/" 2>/dev/null || cp "$f" "$dir/"
    done
}

start_http() {
    setsid "$LAB_SRC/serve.sh" "$STATE/www" \
        </dev/null >>"$STATE/logs/http.log" 2>&1 {LAB_LOCK_FD}>&- &
    disown
    local url
    url="$(<"$STATE/release_url")/v$(<"$STATE/etcd_version")/SHA256SUMS"
    for _ in $(seq 50); do
        curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    die "release server did not answer $url; see $STATE/logs/http.log"
}

# ------------------------------------------------------------- commands ----

check_tools() {
    local tool
    for tool in systemd-nspawn debootstrap ip ssh ssh-keygen curl "$LAB_PYTHON"; do
        command -v "$tool" >/dev/null || die "$tool not found: run spec/lab/deps.sh"
    done
}

cmd_up() {
    local n=${1:-3} start i traces
    if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > LAB_MAX_NODES)); then
        die "node count must be 1..$LAB_MAX_NODES, not '$n'"
    fi
    require_root
    check_tools
    lab_lock
    traces=$(lab_traces)
    if [[ -n $traces ]]; then
        die "a lab already exists ($(node_count) nodes, state in $(state_dir)); run 'lab.sh down' first. Found: $(echo "$traces" | head -n 3 | tr '\n' ';')"
    fi
    start=$(now)
    STATE=$LAB_DIR
    # A half-made lab is worse than none: undo everything unless asked not to.
    trap 'up_failed' EXIT

    raise_sysctls
    LAB_BASE=$("$LAB_SRC/rootfs.sh")
    mkdir -p "$LAB_RUN" "$STATE/logs" "$LAB_VAR/nodes"
    rm -f "$STATE"/logs/*
    printf '%s\n' "$STATE" >"$LAB_RUN/owner"
    printf '%d\n' "$n" >"$LAB_RUN/nodes"

    make_key
    publish_release
    setup_bridge
    for i in $(seq "$n"); do
        setup_node_net "$i"
        prepare_node_root "$i" "$n"
    done
    write_ssh_config "$n"
    write_known_hosts "$n"
    write_inventory "$n"
    start_http
    for i in $(seq "$n"); do
        launch_node "$i"
    done
    LAB_SSH_TIMEOUT=${LAB_SSH_TIMEOUT:-$((60 + 3 * n))}
    wait_ssh $(seq "$n") || die "lab up failed"
    trap - EXIT
    log "$n nodes up in $(elapsed "$start") s; inventory $STATE/hosts, ssh -F $STATE/ssh_config etcd1"
}

up_failed() {
    local status=$?
    ((status == 0)) && return
    if [[ -n ${LAB_KEEP_ON_FAIL:-} ]]; then
        log "up failed; LAB_KEEP_ON_FAIL is set, leaving the lab for inspection (lab.sh down removes it)"
    else
        log "up failed; removing the half-made lab (set LAB_KEEP_ON_FAIL=1 to keep it)"
        teardown
    fi
    exit "$status"
}

# Remove everything by name, not by record: this must work after a crash, a
# reboot or a half-finished up. Order matters: processes hold mounts and
# namespaces, and namespaces hold the veths.
teardown() {
    local mnt ns link owner dir
    kill_cgroup ""
    while read -r mnt; do
        [[ -n $mnt ]] && { umount "$mnt" 2>/dev/null || umount -l "$mnt"; }
    done < <(lab_mounts)
    for ns in /run/netns/"$LAB_NETNS_PREFIX"*; do
        [[ -e $ns ]] && ip netns delete "${ns##*/}"
    done
    for link in $(ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' |
        grep -E "^(${LAB_VETH_PREFIX}[0-9]+|$LAB_BRIDGE)\$" | sort -r); do
        ip link delete "$link" 2>/dev/null || true
    done
    remove_cgroups ""
    if [[ -d $LAB_VAR/nodes ]]; then
        [[ -z $(lab_mounts) ]] || die "mounts remain under $LAB_VAR: $(lab_mounts | tr '\n' ' ')"
        rm -rf --one-file-system "$LAB_VAR/nodes"
    fi
    owner=$(state_dir)
    for dir in "$owner" "$LAB_DIR"; do
        rm -rf "$dir/www"
        rm -f "$dir/hosts" "$dir/ssh_config" "$dir/known_hosts" "$dir/release_url" "$dir/etcd_version" \
            "$dir/etcd_upgrade_version" "$dir/started-by-tests"
    done
    find "$LAB_RUN" -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf {} + 2>/dev/null || true
}

cmd_down() {
    local start
    require_root
    lab_lock
    start=$(now)
    teardown
    log "down in $(elapsed "$start") s"
}

cmd_status() {
    local n i name state link
    if [[ ! -e /sys/class/net/$LAB_BRIDGE ]]; then
        echo "down"
        [[ -z $(lab_traces) ]] || echo "leftovers of a lab remain: run 'lab.sh down'"
        return 3
    fi
    n=$(node_count)
    STATE=$(state_dir)
    echo "up nodes=$n dir=$STATE"
    for i in $(seq "$n"); do
        name=$(node_name "$i")
        state=stopped link=up
        launcher_pid "$name" >/dev/null && state=running
        ip link show "$(node_veth "$i")" 2>/dev/null | grep -q 'state DOWN' && link="cut"
        printf '%-7s %-13s %-8s link=%s\n' "$name" "$(node_ip "$i")" "$state" "$link"
    done
}

require_lab() {
    [[ -e /sys/class/net/$LAB_BRIDGE && -r $LAB_RUN/owner ]] || die "no lab is up: run 'lab.sh up'"
    STATE=$(state_dir)
}

# A node name given on the command line, checked against the running lab.
lab_node() {
    local i
    i=$(node_index "${1:-}")
    ((i <= $(node_count))) || die "$1 is not in the lab ($(node_count) nodes)"
    printf '%d\n' "$i"
}

cmd_stop_node() {
    local i name pid hard=0
    require_root
    require_lab
    i=$(lab_node "${1:-}")
    [[ ${2:-} == --hard ]] && hard=1
    name=$(node_name "$i")
    lab_lock
    if pid=$(launcher_pid "$name"); then
        if ((hard)); then
            kill -KILL "$pid" 2>/dev/null || true
        else
            # Orderly poweroff: nspawn relays it to the node's systemd.
            kill -TERM "$pid"
            for _ in $(seq 300); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
        fi
    fi
    kill_cgroup "$name"
    remove_cgroups "$name" keep
    rm -f "$LAB_RUN/$name.pid" "$LAB_RUN/$name.nspawn.pid"
    if ((hard)); then log "$name killed"; else log "$name stopped"; fi
}

cmd_start_node() {
    local i name
    require_root
    require_lab
    i=$(lab_node "${1:-}")
    name=$(node_name "$i")
    lab_lock
    ! launcher_pid "$name" >/dev/null || die "$name is already running"
    kill_cgroup "$name"
    launch_node "$i"
    LAB_SSH_TIMEOUT=${LAB_SSH_TIMEOUT:-60}
    wait_ssh "$i" || die "$name did not come back"
    log "$name started"
}

cmd_link() {
    local updown=$1 i
    require_root
    require_lab
    i=$(lab_node "${2:-}")
    ip link set "$(node_veth "$i")" "$updown"
    log "$(node_name "$i") link $updown"
}

cmd_addr() {
    local i op=${2:-} ip=${3:-}
    require_root
    require_lab
    i=$(lab_node "${1:-}")
    [[ $op == add || $op == del ]] || die "usage: lab.sh addr etcdN add|del IP"
    [[ $ip =~ ^198\.18\.0\.[0-9]+$ ]] || die "lab.sh addr: $ip is not on the lab's 198.18.0.0/24"
    if [[ $op == add ]]; then
        ip -n "$(node_netns "$i")" addr replace "$ip/$LAB_PREFIXLEN" dev eth0
    else
        ip -n "$(node_netns "$i")" addr del "$ip/$LAB_PREFIXLEN" dev eth0 2>/dev/null || true
    fi
    log "$(node_name "$i") addr $op $ip"
}

# For a lab that came up before a release was added: the files appear in the
# served www/ and the version files are (re)written; nodes are not touched.
cmd_publish() {
    require_root
    require_lab
    lab_lock
    publish_release
    log "serving $(<"$STATE/release_url")/v$(<"$STATE/etcd_version") and .../v$(<"$STATE/etcd_upgrade_version")"
}

cmd_ssh() {
    require_lab
    local name=${1:-}
    lab_node "$name" >/dev/null
    shift
    exec ssh -F "$STATE/ssh_config" "$name" "$@"
}

# Proportional set size of every process of a node (its systemd, sshd,
# journald, ..., plus the launcher and nspawn), in MiB.
cmd_mem() {
    local n i name pid total kb
    require_root
    require_lab
    n=$(node_count)
    for i in $(seq "$n"); do
        name=$(node_name "$i")
        total=0
        for pid in $(cgroup_pids "$name"); do
            kb=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
            total=$((total + ${kb:-0}))
        done
        printf '%s\t%.1f MiB PSS\n' "$name" "$(awk -v k="$total" 'BEGIN { print k / 1024 }')"
    done
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

main() {
    local cmd=${1:-help}
    shift || true
    case $cmd in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    stop-node) cmd_stop_node "$@" ;;
    start-node) cmd_start_node "$@" ;;
    cut) cmd_link down "$@" ;;
    heal) cmd_link up "$@" ;;
    ssh) cmd_ssh "$@" ;;
    addr) cmd_addr "$@" ;;
    mem) cmd_mem ;;
    publish) cmd_publish ;;
    help | -h | --help) usage ;;
    *) usage >&2; exit 2 ;;
    esac
}

main "$@"
