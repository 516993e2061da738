#!/usr/bin/env bash
# A nightly ptfuzz campaign for any CI system: what examples/ci/nightly.yml does, in plain shell.
#
#   examples/ci/nightly.sh                        # every subsystem, each within its file's budget
#   SUBSYSTEMS="cxl rdma" TIME=60 examples/ci/nightly.sh
#
# Run from the repository root, with ptfuzz installed (pip install -e '.[test]').  Keep
# .ptfuzz-db/ between runs (your CI's cache): a rerun replays what the last one found and
# reached first.  Results land in $OUT/SUBSYSTEM/ (new findings, report/index.html,
# report/summary.md, summary.json, junit.xml) and $OUT/regression.xml.
#
# Exit status: 0 nothing new, 1 a new finding (or a replay that fails), 2 a configuration or
# plugin error, as ptfuzz's own; the worst over all steps.
set -uo pipefail

SUBSYSTEMS=${SUBSYSTEMS:-"cxl rdma netdev gpu"}
OUT=${OUT:-out}
TIME=${TIME:-}
status=0

worst() {  # keep the worst exit status: 2 (broken) over 1 (found) over 0
    local code=$1
    if [ "$code" -gt 1 ] || { [ "$code" -eq 1 ] && [ "$status" -eq 0 ]; }; then
        status=$code
    fi
}

for subsystem in $SUBSYSTEMS; do
    out="$OUT/$subsystem"
    mkdir -p "$out"
    echo "== ptfuzz campaign: $subsystem"
    ptfuzz campaign "examples/ci/nightly/$subsystem.toml" \
        --baseline corpora/ \
        --corpus "$out/corpora" \
        --report "$out/report" \
        --json "$out/summary.json" \
        --junit "$out/junit.xml" \
        ${TIME:+--time "$TIME"}
    worst $?
    if [ -f "$out/report/summary.md" ]; then
        cat "$out/report/summary.md"
    fi
done

echo "== corpus replay (pytest --ptfuzz-corpus)"
python -m pytest -p no:cacheprovider -rX \
    --ptfuzz-corpus corpora/ \
    --ptfuzz-baseline corpora/ \
    --junitxml "$OUT/regression.xml"
code=$?
# pytest: 0 passed, 1 failed; anything else (usage, internal) is the recipe's own error
if [ "$code" -gt 1 ]; then code=2; fi
worst $code

exit "$status"
