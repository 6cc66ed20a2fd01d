#!/bin/bash
# Install the host packages the lab needs (spec/lab/lab.sh), and only those
# missing: a second run costs one dpkg-query and no network.
#
# etcd-server is deliberately NOT installed on the host: its postinst would
# start an etcd on the controller (init.d script), which the tests must never
# talk to by accident. lab.sh fetches the .deb with `apt-get download` and only
# unpacks it to build the release tarball.
set -euo pipefail

PACKAGES=(
    debootstrap             # builds the cached bookworm root filesystem
    debian-archive-keyring  # debootstrap verifies the mirror with it
    systemd-container       # systemd-nspawn: boots each node with systemd as PID 1
    iproute2                # bridge, veth pairs, network namespaces
    util-linux              # flock, setsid, mount, nsenter
    procps                  # sysctl, ps
    openssh-client          # ssh, ssh-keygen for the lab key and host keys
    curl                    # readiness checks of the release server
    python3                 # /usr/bin/python3 -m http.server serves the release
    etcd-client             # etcdctl on the controller, for tests and the demo
    tar gzip coreutils      # reproducible release tarball, sha256sum
    lua5.4 lua-busted       # the integration spec when etcdrun is not built
)

missing_packages() {
    local pkg status
    for pkg in "$@"; do
        # dpkg-query prints nothing and fails for a package never installed.
        status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
        [[ $status == installed ]] || printf '%s\n' "$pkg"
    done
}

main() {
    local -a todo
    mapfile -t todo < <(missing_packages "${PACKAGES[@]}")
    if ((${#todo[@]} == 0)); then
        echo "lab deps: all ${#PACKAGES[@]} packages present"
        return 0
    fi
    if ((EUID != 0)); then
        echo "lab deps: missing ${todo[*]}; run as root to install them" >&2
        return 1
    fi
    echo "lab deps: installing ${todo[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${todo[@]}" >/dev/null
}

main "$@"
