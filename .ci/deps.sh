#!/bin/sh
# Installs, with apt-get, the Debian packages etcdrun builds and tests with
# (the package build, lintian, man and the shells the completion is tested
# in too), skipping those already present. Used by `make deps` and .ci/run.
set -eu
pkgs="make gcc pkg-config liblua5.4-dev libssh-dev libssl-dev libarchive-dev
libcurl4-openssl-dev libedit-dev libyaml-dev libicu-dev tmux lua-busted lua-check lua-cjson clang
libclang-rt-14-dev python3-jinja2 ansible
openssl python3 tar xz-utils ca-certificates
dpkg-dev debhelper lintian groff-base man-db bash-completion zsh git"

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -q
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi
# The lab (real nodes for the integration specs) has its own package list.
if [ -f spec/lab/deps.sh ]; then
    bash spec/lab/deps.sh
fi
