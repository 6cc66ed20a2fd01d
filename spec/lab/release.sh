#!/bin/bash
# Build, once, an etcd release tarball shaped exactly like upstream's from
# Debian's etcd-server and etcd-client packages (there is no internet here),
# and cache it with its SHA256SUMS:
#
#   $LAB_CACHE/release/v3.4.23/etcd-v3.4.23-linux-amd64.tar.gz
#   $LAB_CACHE/release/v3.4.23/SHA256SUMS
#
#   spec/lab/release.sh            the etcd of this machine's apt (bookworm:
#                                  3.4.23); build if missing, print the
#                                  cached directory
#   spec/lab/release.sh --upgrade  the same for the etcd of Debian
#                                  $LAB_UPGRADE_SUITE (trixie: 3.5.16), the
#                                  release upgrade specs move to
#
# The upgrade release comes from the mirror this machine's apt uses, through a
# private apt (its own sources list, lists, cache and an empty dpkg status, in
# a temporary directory): the host's lists, cache and dpkg state are neither
# used nor changed (only its sources, for the mirror, and its apt.conf). Once
# built it is reused without asking the mirror again (remove its directory to
# rebuild). Its directory holds a `.suite` file naming the suite; the release
# of the host's apt has none.
#
# The tarball is reproducible (sorted names, fixed owner and mtime, gzip -n):
# two builds from the same packages give the same sha256. It holds etcd,
# etcdctl and, where the packages ship it (3.5 and later), etcdutl.
set -euo pipefail
# shellcheck source=spec/lab/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Options that point apt-get and apt-cache at a private apt (private_apt);
# empty: the host's apt.
APT_OPTS=()
# Temporary directories removed when the script exits, whatever the outcome.
TMP_DIRS=()
cleanup() {
    ((${#TMP_DIRS[@]} == 0)) || rm -rf "${TMP_DIRS[@]}"
}

# Debian version of a package apt would install: "3.4.23-4+b4".
candidate_version() {
    apt-cache "${APT_OPTS[@]}" policy "$1" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'
}

# A private apt for Debian suite $1 in directory $2: one source, the host's
# mirror (apt_mirror) for that suite, checked with the Debian archive keyring;
# its own lists and cache, no preferences, an empty dpkg status. Sets APT_OPTS.
private_apt() {
    local suite=$1 dir=$2 mirror
    mirror=$(apt_mirror)
    [[ -r $LAB_ARCHIVE_KEYRING ]] || die "$LAB_ARCHIVE_KEYRING missing (package debian-archive-keyring)"
    # apt fetches as the _apt user: it must be able to enter the directory.
    chmod 0755 "$dir"
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
    printf 'deb [signed-by=%s] %s %s main\n' "$LAB_ARCHIVE_KEYRING" "$mirror" "$suite" >"$dir/sources.list"
    APT_OPTS=(
        -o "Dir::Etc::SourceList=$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
        -o "Dir::State=$dir" -o "Dir::State::Lists=$dir/lists" -o Dir::State::status=/dev/null
        -o "Dir::Cache=$dir/cache"
    )
}

# "1:3.4.23-4+b4" -> "3.4.23": upstream's version, as in its file names.
upstream_version() {
    local v=${1#*:}
    printf '%s\n' "${v%%-*}"
}

release_arch() {
    dpkg --print-architecture
}

# The newest release already cached from suite $1 (its `.suite` file), or,
# without $1, from the host's apt (no `.suite`), for a machine whose apt lists
# are gone.
cached_release() {
    local suite=${1:-} dir found=''
    while read -r dir; do
        [[ -r $dir/SHA256SUMS ]] || continue
        if [[ -n $suite ]]; then
            [[ -r $dir/.suite && $(<"$dir/.suite") == "$suite" ]] || continue
        else
            [[ ! -e $dir/.suite ]] || continue
        fi
        found=$dir
    done < <(find "$LAB_CACHE/release" -mindepth 1 -maxdepth 1 -name 'v*' -type d 2>/dev/null | sort -V)
    [[ -n $found ]] && printf '%s\n' "$found"
}

# Fetch the two .debs (apt-get download: no install, so no etcd is started on
# the controller) and unpack them under $1/x.
fetch_debs() {
    local work=$1 deb
    (cd "$work" && apt-get "${APT_OPTS[@]}" download -q etcd-server etcd-client >/dev/null 2>&1) || {
        apt-get "${APT_OPTS[@]}" update -qq
        (cd "$work" && apt-get "${APT_OPTS[@]}" download -q etcd-server etcd-client >/dev/null)
    }
    for deb in "$work"/etcd-server_*.deb "$work"/etcd-client_*.deb; do
        dpkg-deb -x "$deb" "$work/x"
    done
}

# Stage <name>/etcd, <name>/etcdctl (and <name>/etcdutl, shipped by 3.5's
# etcd-server) and tar them like upstream does.
make_tarball() {
    local work=$1 name=$2 out=$3 epoch
    local -a bins=("$work/x/usr/bin/etcd" "$work/x/usr/bin/etcdctl")
    [[ -e $work/x/usr/bin/etcdutl ]] && bins+=("$work/x/usr/bin/etcdutl")
    install -d -m 0755 "$work/stage/$name"
    install -m 0755 "${bins[@]}" "$work/stage/$name/"
    # The packaged binary's own mtime: stable for one package version.
    epoch=$(stat -c %Y "$work/x/usr/bin/etcd")
    touch -h -d "@$epoch" "$work/stage/$name" "$work/stage/$name"/*
    tar --sort=name --format=gnu --owner=0 --group=0 --numeric-owner \
        --mtime="@$epoch" -C "$work/stage" -cf - "$name" | gzip -9 -n >"$out"
}

# Build the release of Debian version $1 into the cache; $2: the suite it
# came from (recorded in `.suite`), empty for the host's apt.
build_release() {
    local debver=$1 suite=${2:-} version arch name work dest
    version=$(upstream_version "$debver")
    arch=$(release_arch)
    name=etcd-v$version-linux-$arch
    dest=$LAB_CACHE/release/v$version
    [[ -r $dest/SHA256SUMS ]] && { printf '%s\n' "$dest"; return; }

    work=$(mktemp -d "$LAB_CACHE/.release.tmp.XXXXXX")
    TMP_DIRS+=("$work")
    log "building $name.tar.gz from Debian's etcd-server/etcd-client $debver${suite:+ ($suite)}"
    fetch_debs "$work"
    mkdir -p "$work/out"
    make_tarball "$work" "$name" "$work/out/$name.tar.gz"
    (cd "$work/out" && sha256sum "$name.tar.gz" >SHA256SUMS)
    # A dot file: lab.sh publishes "$dir"/*, so it is never served.
    [[ -z $suite ]] || printf '%s\n' "$suite" >"$work/out/.suite"
    mkdir -p "$LAB_CACHE/release"
    rm -rf "$dest"
    mv -T "$work/out" "$dest"
    rm -rf "$work"
    printf '%s\n' "$dest"
}

# The release of Debian $LAB_UPGRADE_SUITE: the cached one, or one built from
# that suite of the host's mirror through a private apt.
upgrade_release() {
    local suite=$LAB_UPGRADE_SUITE cached apt debver
    if cached=$(cached_release "$suite"); then
        printf '%s\n' "$cached"
        return
    fi
    apt=$(mktemp -d "$LAB_CACHE/.apt-$suite.tmp.XXXXXX")
    TMP_DIRS+=("$apt")
    private_apt "$suite" "$apt"
    apt-get "${APT_OPTS[@]}" update -qq --error-on=any ||
        die "apt-get update of Debian $suite from $(apt_mirror) failed"
    debver=$(candidate_version etcd-server)
    [[ -n $debver ]] || die "Debian $suite on $(apt_mirror) has no etcd-server package"
    build_release "$debver" "$suite"
}

main() {
    local debver cached old
    [[ $# -eq 0 || ($# -eq 1 && $1 == --upgrade) ]] || die "usage: release.sh [--upgrade]"
    mkdir -p "$LAB_CACHE"
    exec {build_fd}>"$LAB_CACHE/.release.lock"
    flock -w 300 "$build_fd" || die "another release build holds $LAB_CACHE/.release.lock"
    trap cleanup EXIT
    # Holding the lock, any temporary directory is a dead build's leftover.
    for old in "$LAB_CACHE"/.release.tmp.* "$LAB_CACHE"/.apt-*.tmp.*; do
        [[ -e $old ]] && rm -rf "$old"
    done
    if [[ ${1:-} == --upgrade ]]; then
        upgrade_release
        return
    fi
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
