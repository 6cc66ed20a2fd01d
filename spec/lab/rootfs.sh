#!/bin/bash
# Build, once, the Debian root filesystem every lab node boots from (read-only
# lower layer of each node's overlayfs) and cache it outside the checkout.
#
#   spec/lab/rootfs.sh          build if missing or stale, print its path
#   spec/lab/rootfs.sh --force  rebuild even if cached
#
# The build goes into a temporary directory that is renamed into place only
# when complete: an interrupted build is never mistaken for a cached one.
set -euo pipefail
# shellcheck source=spec/lab/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# What a node needs: systemd as PID 1 and a logind for PAM sessions, sshd, and
# python3 so the same nodes can be driven by Ansible for comparison; curl, tar
# and gzip so a playbook can fetch and unpack the release on the node.
BASE_PACKAGES=systemd,systemd-sysv,dbus,libpam-systemd,openssh-server,openssh-client,python3,ca-certificates,openssl,curl,tar,gzip,xz-utils,iproute2,iputils-ping,procps,sudo,less
# Bump when configure_base changes, so cached bases built before are rebuilt.
BASE_RECIPE_VERSION=1
BASE_RECIPE="suite=$LAB_SUITE variant=minbase packages=$BASE_PACKAGES recipe=$BASE_RECIPE_VERSION"
BASE_STAMP=.etcdrun-lab-recipe

# Unmount everything mounted below $1 (deepest first). debootstrap mounts
# proc and sys in its target; a killed build can leave them, and `rm -rf`
# must never walk into them.
umount_below() {
    local dir=$1 mnt
    awk -v d="$dir/" 'index($5 "/", d) == 1 { print $5 }' /proc/self/mountinfo |
        sort -r | while read -r mnt; do
        umount -l "$mnt" 2>/dev/null || true
    done
}

remove_tree() {
    [[ -e $1 ]] || return 0
    umount_below "$1"
    rm -rf --one-file-system "$1"
}

# Make the fresh debootstrap output a base that every node can share: nothing
# in it may identify one machine (machine-id, host keys, hostname), and sshd
# takes root's key only.
configure_base() {
    local root=$1 unit
    : >"$root/etc/machine-id"
    rm -f "$root/var/lib/dbus/machine-id"
    rm -f "$root"/etc/ssh/ssh_host_*
    rm -f "$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"

    cat >"$root/etc/ssh/sshd_config.d/etcdrun-lab.conf" <<'EOF'
# etcdrun lab: root by key only, no DNS lookups (the nodes have no resolver).
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
# Only the key types the lab generates per node (RSA generation is slow).
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
EOF
    install -d -m 0700 "$root/root/.ssh"

    # Units that only cost boot time or memory here: timers that would reach
    # for a network the nodes do not have, and gettys on a read-only console.
    for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
        e2scrub_all.timer e2scrub_reap.service fstrim.timer \
        console-getty.service getty@tty1.service systemd-timesyncd.service; do
        ln -sf /dev/null "$root/etc/systemd/system/$unit"
    done

    # A bounded journal: thirty nodes share one disk and one page cache.
    install -d "$root/etc/systemd/journald.conf.d"
    printf '[Journal]\nSystemMaxUse=16M\nRuntimeMaxUse=16M\n' \
        >"$root/etc/systemd/journald.conf.d/etcdrun-lab.conf"

    # The nodes cannot reach the mirror; its package lists only take space.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    printf '%s\n' "$BASE_RECIPE" >"$root/$BASE_STAMP"
}

base_is_current() {
    [[ -r $LAB_BASE/$BASE_STAMP ]] && [[ $(<"$LAB_BASE/$BASE_STAMP") == "$BASE_RECIPE" ]]
}

build_base() {
    local mirror tmp start
    mirror=$(apt_mirror)
    tmp=$LAB_CACHE/.base-$LAB_SUITE.tmp.$$
    # shellcheck disable=SC2064  # expand $tmp now: it is this build's own
    trap "remove_tree '$tmp'" EXIT
    start=$(now)
    log "building the $LAB_SUITE base from $mirror (about 90 s, once)"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" --components=main \
        "$LAB_SUITE" "$tmp" "$mirror" >"$LAB_CACHE/debootstrap.log" 2>&1 ||
        die "debootstrap failed; see $LAB_CACHE/debootstrap.log"
    configure_base "$tmp"
    # Swap atomically; a base that running nodes still use as lowerdir is
    # only renamed aside, and removed by the next build.
    if [[ -e $LAB_BASE ]]; then
        mv -T "$LAB_BASE" "$LAB_CACHE/.base-$LAB_SUITE.old.$$"
    fi
    mv -T "$tmp" "$LAB_BASE"
    trap - EXIT
    log "base ready in $(elapsed "$start") s: $LAB_BASE ($(du -sh --one-file-system "$LAB_BASE" | cut -f1))"
}

main() {
    local force=0 old
    [[ ${1:-} == --force ]] && force=1
    require_root
    mkdir -p "$LAB_CACHE"
    exec {build_fd}>"$LAB_CACHE/.build.lock"
    flock -w 900 "$build_fd" || die "another base build holds $LAB_CACHE/.build.lock"
    # Holding the lock, any temporary tree is a dead build's leftover.
    for old in "$LAB_CACHE"/.base-"$LAB_SUITE".tmp.*; do
        [[ -e $old ]] && remove_tree "$old"
    done
    if ((force)) || ! base_is_current; then
        build_base
    fi
    # Old bases are removed only when no node can still be using them.
    if [[ ! -e /sys/class/net/$LAB_BRIDGE ]]; then
        for old in "$LAB_CACHE"/.base-"$LAB_SUITE".old.*; do
            [[ -e $old ]] && remove_tree "$old"
        done
    fi
    printf '%s\n' "$LAB_BASE"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
