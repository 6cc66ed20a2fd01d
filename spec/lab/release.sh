#!/bin/bash
# Build, once, an etcd release tarball shaped exactly like upstream's from
# Debian's etcd-server and etcd-client packages (there is no internet here),
# and cache it with its SHA256SUMS:
#
#   $LAB_CACHE/release/v3.4.23/etcd-v3.4.23-linux-amd64.tar.gz
#   $LAB_CACHE/release/v3.4.23/SHA256SUMS
#
#   spec/lab/release.sh    build if missing, print the cached directory
#
# The tarball is reproducible (sorted names, fixed owner and mtime, gzip -n):
# two builds from the same packages give the same sha256.
set -euo pipefail
# shellcheck source=spec/lab/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Debian version of a package apt would install: "3.4.23-4+b4".
candidate_version() {
    apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'
}

# "1:3.4.23-4+b4" -> "3.4.23": upstream's version, as in its file names.
upstream_version() {
    local v=${1#*:}
    printf '%s\n' "${v%%-*}"
}

release_arch() {
    dpkg --print-architecture
}

# The newest release already cached, for a machine whose apt lists are gone.
cached_release() {
    local dir
    dir=$(find "$LAB_CACHE/release" -mindepth 1 -maxdepth 1 -name 'v*' -type d 2>/dev/null | sort -V | tail -n 1)
    [[ -n $dir && -r $dir/SHA256SUMS ]] && printf '%s\n' "$dir"
}

# Fetch the two .debs (apt-get download: no install, so no etcd is started on
# the controller) and unpack them under $1/x.
fetch_debs() {
    local work=$1 deb
    (cd "$work" && apt-get download -q etcd-server etcd-client >/dev/null 2>&1) || {
        apt-get update -qq
        (cd "$work" && apt-get download -q etcd-server etcd-client >/dev/null)
    }
    for deb in "$work"/etcd-server_*.deb "$work"/etcd-client_*.deb; do
        dpkg-deb -x "$deb" "$work/x"
    done
}

# Stage <name>/etcd and <name>/etcdctl and tar them like upstream does.
make_tarball() {
    local work=$1 name=$2 out=$3 epoch
    install -d -m 0755 "$work/stage/$name"
    install -m 0755 "$work/x/usr/bin/etcd" "$work/x/usr/bin/etcdctl" "$work/stage/$name/"
    # The packaged binary's own mtime: stable for one package version.
    epoch=$(stat -c %Y "$work/x/usr/bin/etcd")
    touch -h -d "@$epoch" "$work/stage/$name" "$work/stage/$name"/*
    tar --sort=name --format=gnu --owner=0 --group=0 --numeric-owner \
        --mtime="@$epoch" -C "$work/stage" -cf - "$name" | gzip -9 -n >"$out"
}

build_release() {
    local debver=$1 version arch name work dest
    version=$(upstream_version "$debver")
    arch=$(release_arch)
    name=etcd-v$version-linux-$arch
    dest=$LAB_CACHE/release/v$version
    [[ -r $dest/SHA256SUMS ]] && { printf '%s\n' "$dest"; return; }

    work=$(mktemp -d "$LAB_CACHE/.release.tmp.XXXXXX")
    # shellcheck disable=SC2064  # expand $work now
    trap "rm -rf '$work'" EXIT
    log "building $name.tar.gz from Debian's etcd-server/etcd-client $debver"
    fetch_debs "$work"
    mkdir -p "$work/out"
    make_tarball "$work" "$name" "$work/out/$name.tar.gz"
    (cd "$work/out" && sha256sum "$name.tar.gz" >SHA256SUMS)
    mkdir -p "$LAB_CACHE/release"
    rm -rf "$dest"
    mv -T "$work/out" "$dest"
    rm -rf "$work"
    trap - EXIT
    printf '%s\n' "$dest"
}

main() {
    local debver cached
    mkdir -p "$LAB_CACHE"
    exec {build_fd}>"$LAB_CACHE/.release.lock"
    flock -w 300 "$build_fd" || die "another release build holds $LAB_CACHE/.release.lock"
    debver=$(candidate_version etcd-server)
    if [[ -z $debver ]]; then
        if cached=$(cached_release); then
            printf '%s\n' "$cached"
            return
        fi
        apt-get update -qq
        debver=$(candidate_version etcd-server)
        [[ -n $debver ]] || die "apt knows no etcd-server package"
    fi
    build_release "$debver"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
