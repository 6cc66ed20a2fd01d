#!/bin/bash
# The lab's release server, started detached by lab.sh: `serve.sh WWW_DIR`.
# Plain HTTP on the bridge address only (nodes fetch the release from it as
# from upstream's URL); it lives in the lab cgroup "http", so `down` stops it
# like a node.
set -euo pipefail
# shellcheck source=spec/lab/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

join_lab_cgroup http
exec "$LAB_PYTHON" -m http.server "$LAB_HTTP_PORT" --bind "$LAB_HOST_IP" --directory "${1:?usage: serve.sh WWW_DIR}"
