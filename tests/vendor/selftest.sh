#!/usr/bin/env bash
# Self-test of the vendor checkers: every samples/<format>-ok.json must pass
# check_chat.py, and every samples/<format>-bad-*.json must be refused with a line
# containing what samples/refusals.tsv expects for it (so it fails for its own reason).
#
#   tests/vendor/selftest.sh [VENV]   VENV defaults to $CARGO_TARGET_DIR/vendor-venv
#                                     (target/vendor-venv); built by setup.sh if needed
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$here/../.." && pwd)
venv=${1:-${CARGO_TARGET_DIR:-$repo_root/target}/vendor-venv}
bash "$here/setup.sh" "$venv"

passed=0
failed=0
for sample in "$here"/samples/*.json; do
    name=$(basename "$sample" .json)
    format=${name%%-*}
    rc=0
    output=$("$venv/bin/python" "$here/check_chat.py" "$format" <"$sample" 2>&1) || rc=$?
    expected=$(awk -F '\t' -v name="$name" '$1 == name { print $2 }' "$here/samples/refusals.tsv")
    case "$name" in
    *-ok) [ "$rc" -eq 0 ] && good=yes || good=no ;;
    *-bad-*) [ "$rc" -eq 1 ] && [ -n "$expected" ] && grep -qF -- "$expected" <<<"$output" && good=yes || good=no ;;
    *) output="not named <format>-ok or <format>-bad-<what>" good=no ;;
    esac
    if [ "$good" = yes ]; then
        passed=$((passed + 1))
        printf 'ok    %-30s %s\n' "$name" "$(head -n 1 <<<"$output")"
    else
        failed=$((failed + 1))
        printf 'FAIL  %-30s exit %d, expected %s:\n' "$name" "$rc" "${expected:-ok}"
        sed 's/^/      /' <<<"$output"
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
