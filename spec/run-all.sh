#!/bin/sh
# Runs every spec with the given binary (default ./etcdrun) and prints, as
# its last line, `N passed, N failed, N skipped` added up over all runs.
# Exit status is non-zero if any spec failed or busted itself broke.
bin=${1:-./etcdrun}
shift 2>/dev/null || true
counts=$(mktemp)
trap 'rm -f "$counts"' EXIT

status=0
ETCDRUN="$bin" ETCDRUN_SPEC_COUNTS="$counts" "$bin" spec/run.lua "$@" || status=1

# The lab (if a spec brought one up) is taken down even when specs failed.
if [ -f "${LAB_DIR:-.lab}/started-by-tests" ]; then
    bash spec/lab/lab.sh down >/dev/null 2>&1 || bash spec/lab/lab.sh down || true
fi

if [ ! -s "$counts" ]; then
    echo "spec run produced no results (busted failed to start?)"
    echo "0 passed, 1 failed"
    exit 1
fi
awk '{p+=$1; f+=$2; s+=$3} END {printf "%d passed, %d failed, %d skipped\n", p, f, s; exit (f > 0)}' \
    "$counts" || status=1
exit $status
