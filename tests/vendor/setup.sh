#!/usr/bin/env bash
# Install the vendor checkers (tests/vendor/requirements.txt) into a Python venv.
#
#   tests/vendor/setup.sh [DIR]     DIR defaults to target/vendor-venv in the repository
#
# Idempotent and safe to run concurrently (the test harness runs it once per test
# process, CI once as a stage):
# - DIR is complete or absent, never half built: the venv is built in a temporary
#   sibling directory and renamed into place, stamp file included;
# - DIR/.requirements.sha256 holds the sha256 of requirements.txt it was built from:
#   when it matches, nothing is done (no lock, no network);
# - builders serialise on flock(DIR.lock), and re-check the stamp once they hold it,
#   so a second concurrent caller finds the first one's venv instead of building again.
# Prints one line saying what it did. Use DIR/bin/python (python -m pip, not bin/pip).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$here/../.." && pwd)
requirements=$here/requirements.txt

dir=${1:-$repo_root/target/vendor-venv}
dir=${dir%/}
mkdir -p "$(dirname "$dir")"
dir=$(cd "$(dirname "$dir")" && pwd)/$(basename "$dir")
stamp_name=.requirements.sha256
want=$(sha256sum "$requirements" | cut -d ' ' -f 1)

up_to_date() {
    [ -x "$dir/bin/python" ] && [ "$(cat "$dir/$stamp_name" 2>/dev/null)" = "$want" ]
}

if up_to_date; then
    echo "vendor venv up to date: $dir (requirements ${want:0:12})"
    exit 0
fi

python=python3
if ! command -v "$python" >/dev/null 2>&1; then
    echo "setup.sh: python3 not found; install it (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
fi
# Debian ships the venv module without ensurepip (that is python3-venv), so
# `python3 -m venv --help` works there and only creating a venv fails.
if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    echo "setup.sh: \`$python -m venv\` is unavailable ($($python --version 2>&1)); install python3-venv (Debian: apt-get install python3-venv)" >&2
    exit 1
fi

exec 9>"$dir.lock"
flock 9
if up_to_date; then
    echo "vendor venv up to date: $dir (built by a concurrent setup.sh)"
    exit 0
fi

# Holding the lock: any temporary sibling left is from a builder that was killed.
rm -rf "$dir".tmp.* "$dir".old.*
started=$(date +%s)
tmp=$(mktemp -d "$dir.tmp.XXXXXX")
chmod 755 "$tmp" # mktemp's 0700 would stay on DIR
trap 'rm -rf "$tmp"' EXIT
log=$tmp/setup.log

fail() {
    echo "setup.sh: $1; its output:" >&2
    cat "$log" >&2
    exit 1
}

"$python" -m venv "$tmp" >"$log" 2>&1 ||
    fail "\`$python -m venv $tmp\` failed (on Debian: apt-get install python3-venv)"
# --no-compile, then compileall with the final path: the .pyc files then name DIR,
# not the temporary directory, in tracebacks.
"$tmp/bin/python" -m pip install --quiet --no-compile --disable-pip-version-check \
    --requirement "$requirements" >>"$log" 2>&1 ||
    fail "pip install -r $requirements failed"
"$tmp/bin/python" -m compileall -q -j 0 -s "$tmp" -p "$dir" "$tmp/lib" >>"$log" 2>&1 ||
    fail "compileall failed"
# Scripts and activate name the directory they were created in.
while IFS= read -r script; do
    sed -i "s|$tmp|$dir|g" "$script"
done < <(grep -lsI --fixed-strings "$tmp" "$tmp"/bin/* || true)
rm -f "$log"
echo "$want" >"$tmp/$stamp_name"

if [ -e "$dir" ]; then
    # Built from another requirements.txt (or half removed by hand): replace it.
    old=$(mktemp -d "$dir.old.XXXXXX")
    mv "$dir" "$old/"
    mv "$tmp" "$dir"
    rm -rf "$old"
    action=rebuilt
else
    mv "$tmp" "$dir"
    action=built
fi
trap - EXIT
echo "vendor venv $action: $dir in $(($(date +%s) - started))s (requirements ${want:0:12}, $("$dir/bin/python" --version 2>&1))"
