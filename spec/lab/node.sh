#!/bin/bash
# The launcher of one lab node, started detached by lab.sh: `node.sh INDEX`.
#
# It moves itself into the node's own cgroup first (so each node's systemd
# gets a hierarchy of its own, and `lab.sh down` can kill whatever is left by
# cgroup), then boots the node with systemd-nspawn. nspawn exits with 133 when
# the node asks to reboot: booting it again is what makes `systemctl reboot`
# inside a node work. SIGTERM asks for an orderly poweroff instead.
set -uo pipefail
# shellcheck source=spec/lab/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

readonly REBOOT_STATUS=133

# Flags as LAB-NOTES found them to work here: no host systemd or machined
# (--register=no --keep-unit), the namespace lab.sh made, nothing copied from
# the host, and a console that only writes to the log.
boot_once() {
    local i=$1 name root
    name=$(node_name "$i")
    root=$(node_var "$i")/root
    systemd-nspawn --quiet --boot --directory="$root" --machine="$name" \
        --register=no --keep-unit \
        --network-namespace-path="/run/netns/$(node_netns "$i")" \
        --resolv-conf=off --timezone=off --link-journal=no --console=read-only \
        </dev/null &
    child=$!
    printf '%d\n' "$child" >"$LAB_RUN/$name.nspawn.pid"
    # `wait` returns early when a trapped signal arrives; wait again until
    # nspawn itself has gone, then report its status.
    while :; do
        wait "$child"
        status=$?
        kill -0 "$child" 2>/dev/null || break
    done
}

main() {
    local i=${1:?usage: node.sh INDEX} name
    name=$(node_name "$i")
    join_lab_cgroup "$name"
    printf '%d\n' "$BASHPID" >"$LAB_RUN/$name.pid"
    stopping=0 child='' status=0
    # nspawn turns SIGTERM into SIGRTMIN+3 for the node's systemd: a poweroff.
    trap 'stopping=1; [[ -n $child ]] && kill -TERM "$child" 2>/dev/null' TERM INT
    while :; do
        printf '\n== %s boot %s ==\n' "$name" "$(date '+%F %T')"
        boot_once "$i"
        printf '== %s: nspawn exited with %d ==\n' "$name" "$status"
        ((stopping == 0 && status == REBOOT_STATUS)) || break
    done
    rm -f "$LAB_RUN/$name.pid" "$LAB_RUN/$name.nspawn.pid"
}

main "$@"
