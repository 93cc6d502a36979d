#!/usr/bin/env bash
# Checks the image deploy/image/build.sh wrote, the way a container runtime would use it:
#
#   1. its configuration: entrypoint, command, user, environment, volume, ports, labels;
#   2. umoci unpacks it into a bundle, and the unpacked rootfs's `hookline --version`
#      runs (chroot as the image's user when root, else through the rootfs's own loader
#      and libraries) and prints `hookline …`;
#   3. as root: `hookline serve` (every role, SQLite on the image's /data) runs in the
#      chroot as the image's user on free loopback ports, /readyz answers 200, the
#      Dockerfile's HEALTHCHECK command passes against it, the console answers, and it
#      stops cleanly on SIGTERM within the default shutdown_grace.
#
#   bash deploy/image/check.sh [LAYOUT[:TAG]]     (default target/image/hookline-oci:latest)
#
# Loopback only; every wait is bounded.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo_root/target}
image=${1:-${HOOKLINE_IMAGE_LAYOUT:-$target/image/hookline-oci}:${HOOKLINE_IMAGE_TAG:-latest}}
layout=${image%:*}
uid=10001
gid=10001

fail() {
    echo "check.sh: FAILED: $*" >&2
    exit 1
}
[ -f "$layout/index.json" ] || fail "no OCI layout at $layout (run deploy/image/build.sh)"

work=$(mktemp -d "${TMPDIR:-/tmp}/hookline-image-check.XXXXXX")
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

echo "--- configuration of $image"
python3 - "$image" <<'EOF'
import json, os, sys

image = sys.argv[1]
layout, tag = image.rsplit(":", 1)
def blob(digest):
    algo, hexa = digest.split(":", 1)
    with open(os.path.join(layout, "blobs", algo, hexa)) as f:
        return json.load(f)
index = json.load(open(os.path.join(layout, "index.json")))
refs = [m for m in index["manifests"]
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]
assert len(refs) == 1, f"tag {tag!r}: {len(refs)} manifests in index.json"
manifest = blob(refs[0]["digest"])
config = blob(manifest["config"]["digest"])
c = config["config"]
env = dict(e.split("=", 1) for e in c.get("Env", []))
labels = c.get("Labels", {})
want = {
    "Entrypoint": (c.get("Entrypoint"), ["hookline"]),
    "Cmd": (c.get("Cmd"), ["serve"]),
    "User": (c.get("User"), "10001:10001"),
    "WorkingDir": (c.get("WorkingDir"), "/data"),
    "Volumes": (sorted(c.get("Volumes", {})), ["/data"]),
    "ExposedPorts": (sorted(c.get("ExposedPorts", {})), ["50051/tcp", "8080/tcp"]),
    "HOOKLINE_INGEST_ADDR": (env.get("HOOKLINE_INGEST_ADDR"), "0.0.0.0:8080"),
    "HOOKLINE_API_ADDR": (env.get("HOOKLINE_API_ADDR"), "0.0.0.0:50051"),
    "HOOKLINE_DB": (env.get("HOOKLINE_DB"), "sqlite:///data/hookline.db"),
    "os": (config.get("os"), "linux"),
}
bad = [f"{k}: {got!r}, want {exp!r}" for k, (got, exp) in want.items() if got != exp]
revision = labels.get("org.opencontainers.image.revision", "")
if not revision or revision == "unknown":
    bad.append(f"label org.opencontainers.image.revision: {revision!r}")
if "PATH" not in env:
    bad.append("no PATH in Env: the runtime could not find `hookline`")
if bad:
    sys.exit("image configuration:\n  " + "\n  ".join(bad))
layers = manifest["layers"]
size = sum(l["size"] for l in layers)
print(f"ok: entrypoint {c['Entrypoint']} cmd {c['Cmd']} user {c['User']}, "
      f"revision {revision}, {len(layers)} layer(s), {size / 1e6:.1f} MB compressed")
EOF

echo "--- unpack"
rootless=()
[ "$(id -u)" -eq 0 ] || rootless=(--rootless)
umoci unpack "${rootless[@]}" --image "$image" "$work/bundle" >/dev/null
rootfs="$work/bundle/rootfs"
[ -x "$rootfs/usr/local/bin/hookline" ] || fail "no executable /usr/local/bin/hookline in the image"
python3 - "$work/bundle/config.json" <<'EOF'
import json, sys
spec = json.load(open(sys.argv[1]))
p = spec["process"]
assert p["args"] == ["hookline", "serve"], p["args"]
assert (p["user"]["uid"], p["user"]["gid"]) == (10001, 10001), p["user"]
print(f"ok: runtime bundle runs {p['args']} as {p['user']['uid']}:{p['user']['gid']} in {p['cwd']}")
EOF

echo "--- hookline --version inside the image"
if [ "$(id -u)" -eq 0 ]; then
    chroot=$(command -v chroot) || fail "no chroot (coreutils)"
    # The image's own files only: its loader, its glibc, its passwd.
    version=$(env -i PATH=/usr/local/bin:/usr/bin:/bin \
        "$chroot" --userspec="$uid:$gid" "$rootfs" hookline --version)
else
    loader=$(find "$rootfs/usr/lib64" "$rootfs/usr/lib" -maxdepth 2 -name 'ld-linux*.so*' | head -n 1)
    [ -n "$loader" ] || fail "no dynamic loader in the image"
    version=$("$loader" --inhibit-cache --library-path "$rootfs/usr/lib/x86_64-linux-gnu:$rootfs/usr/lib/aarch64-linux-gnu" \
        "$rootfs/usr/local/bin/hookline" --version)
fi
case "$version" in
    "hookline "*) echo "ok: $version" ;;
    *) fail "hookline --version printed ${version@Q}, want 'hookline …'" ;;
esac

if [ "$(id -u)" -ne 0 ]; then
    echo "--- serve: skipped (needs root for chroot)"
    exit 0
fi

echo "--- hookline serve inside the image"
read -r ingest_port api_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
# The image's environment, with loopback addresses (chroot shares the host's network).
# The working directory is / here (/data in the image); the database path is absolute.
env -i PATH=/usr/local/bin:/usr/bin:/bin HOOKLINE_DB=sqlite:///data/hookline.db \
    HOOKLINE_INGEST_ADDR="127.0.0.1:$ingest_port" HOOKLINE_API_ADDR="127.0.0.1:$api_port" \
    "$chroot" --userspec="$uid:$gid" "$rootfs" hookline serve >"$work/serve.log" 2>&1 &
server_pid=$!

http_status() { # URL -> status code, or 000
    python3 - "$1" <<'EOF'
import sys, urllib.request, urllib.error
try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
}
ready=""
for _ in $(seq 1 100); do # 20 s at most
    if ! kill -0 "$server_pid" 2>/dev/null; then
        cat "$work/serve.log" >&2
        fail "hookline serve exited inside the image"
    fi
    if [ "$(http_status "http://127.0.0.1:$ingest_port/readyz")" = 200 ]; then
        ready=yes
        break
    fi
    sleep 0.2
done
[ -n "$ready" ] || { cat "$work/serve.log" >&2; fail "/readyz did not answer 200 within 20 s"; }
echo "ok: /readyz 200 on 127.0.0.1:$ingest_port"
[ -s "$rootfs/data/hookline.db" ] || fail "no database at /data/hookline.db in the image"
owner=$(stat -c %u:%g "$rootfs/data/hookline.db")
[ "$owner" = "$uid:$gid" ] || fail "/data/hookline.db is owned by $owner, want $uid:$gid"
echo "ok: the image's user created /data/hookline.db"

# The Dockerfile's HEALTHCHECK command, run as the runtime would (its CMD array).
healthcheck=$(python3 - "$repo_root/Dockerfile" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
m = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.M)
if not m:
    sys.exit("no HEALTHCHECK … CMD [...] in the Dockerfile")
for arg in json.loads(m.group(1)):
    print(arg)
EOF
)
mapfile -t healthcheck_cmd <<<"$healthcheck"
if env -i PATH=/usr/bin:/bin HOOKLINE_INGEST_ADDR="0.0.0.0:$ingest_port" timeout 5 "${healthcheck_cmd[@]}"; then
    echo "ok: the Dockerfile's HEALTHCHECK passes (${healthcheck_cmd[0]} … /healthz)"
else
    fail "the Dockerfile's HEALTHCHECK failed against /healthz on port $ingest_port"
fi
unused_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if env -i PATH=/usr/bin:/bin HOOKLINE_INGEST_ADDR="0.0.0.0:$unused_port" timeout 5 "${healthcheck_cmd[@]}" 2>/dev/null; then
    fail "the Dockerfile's HEALTHCHECK passes with nothing listening"
fi
echo "ok: the HEALTHCHECK fails with nothing listening"

console=$(http_status "http://127.0.0.1:$api_port/console/")
case "$console" in
    2* | 3*) echo "ok: the console answers $console on the API port" ;;
    *) fail "GET /console/ on the API port answered $console" ;;
esac

kill -TERM "$server_pid"
stopped=""
for _ in $(seq 1 75); do # 15 s: shutdown_grace (10 s) and some
    if ! kill -0 "$server_pid" 2>/dev/null; then
        stopped=yes
        break
    fi
    sleep 0.2
done
[ -n "$stopped" ] || { cat "$work/serve.log" >&2; fail "hookline serve did not stop within 15 s of SIGTERM"; }
rc=0
wait "$server_pid" || rc=$?
server_pid=""
[ "$rc" -eq 0 ] || { cat "$work/serve.log" >&2; fail "hookline serve exited $rc after SIGTERM"; }
echo "ok: stopped cleanly on SIGTERM"
echo "image check passed: $image"
