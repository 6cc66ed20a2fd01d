#!/bin/sh
# Runs each libFuzzer binary given for SECONDS with its corpus in
# fuzz/corpus/<name>/ (new inputs go to a scratch copy, the tree stays clean).
# Fails on the first crash, leak or sanitizer report.
seconds=$1
shift
for bin in "$@"; do
    name=$(basename "$bin" _fuzz)
    work=$(mktemp -d)
    [ -d "fuzz/corpus/$name" ] && cp -R "fuzz/corpus/$name/." "$work/"
    echo "fuzz: $name for ${seconds}s"
    dict=""
    [ -f "fuzz/$name.dict" ] && dict="-dict=fuzz/$name.dict"
    # shellcheck disable=SC2086
    if ! "$bin" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 $dict \
            -artifact_prefix="build/fuzz/$name-" "$work" 2>build/fuzz/$name.log; then
        tail -40 "build/fuzz/$name.log"
        rm -rf "$work"
        echo "fuzz: $name FAILED (log: build/fuzz/$name.log)"
        exit 1
    fi
    tail -3 "build/fuzz/$name.log"
    rm -rf "$work"
done
