#!/usr/bin/env bash
# Assembles hookline's container image from the release binary, without a container daemon
# and without pulling a base image: umoci writes an OCI image layout whose one layer holds
# the binary (debug sections stripped), the shared libraries it links (glibc), a passwd/group naming the non-root
# user 10001, nsswitch.conf and the host's CA bundle. Same entrypoint, command, user,
# environment, volume and ports as the Dockerfile (which needs a daemon and the network).
#
#   cargo build --release --bin hookline
#   bash deploy/image/build.sh [BINARY]
#   skopeo copy oci:target/image/hookline-oci:latest docker://REGISTRY/hookline:TAG
#
# BINARY defaults to $CARGO_TARGET_DIR/release/hookline (target/release/hookline). The
# layout goes to $HOOKLINE_IMAGE_LAYOUT (default $CARGO_TARGET_DIR/image/hookline-oci),
# tag $HOOKLINE_IMAGE_TAG (default latest). deploy/image/check.sh checks the result.
#
# Run as root (as CI does): the layer then records /data as owned by the hookline user,
# so a fresh volume is writable by it. As another user umoci works rootless and every
# file, /data included, is recorded as root's.
#
# Why the libraries: a Rust binary built on Debian links glibc dynamically (ldd lists
# libc, libm, libgcc_s and the loader). They are copied from the build machine, so the
# image runs exactly the glibc the binary was built and tested against. glibc 2.34+ has
# the `files` and `dns` NSS modules built in, so name resolution needs no further
# library, only /etc/nsswitch.conf; /etc/hosts and /etc/resolv.conf come from the runtime.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo_root/target}
binary=${1:-$target/release/hookline}
layout=${HOOKLINE_IMAGE_LAYOUT:-$target/image/hookline-oci}
tag=${HOOKLINE_IMAGE_TAG:-latest}
image="$layout:$tag"
uid=10001
gid=10001

die() {
    echo "build.sh: $*" >&2
    exit 1
}

for tool in umoci ldd objcopy; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (apt-get install umoci libc-bin binutils)"
done
[ -x "$binary" ] || die "no executable at $binary: cargo build --release --bin hookline"
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca_bundle" ] || die "no CA bundle at $ca_bundle (apt-get install ca-certificates)"

case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *) die "unsupported machine $(uname -m)" ;;
esac

version_line=$("$binary" --version)
version=${version_line#hookline }
version=${version%% *}
revision=${HOOKLINE_REVISION:-$(git -C "$repo_root" rev-parse HEAD 2>/dev/null || echo unknown)}
# The image's creation time is the commit's, so the same commit and binary give the same
# image (the layer's files carry it as their mtime too).
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$repo_root" log -1 --format=%ct 2>/dev/null || date +%s)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)

rootless=()
if [ "$(id -u)" -ne 0 ]; then
    rootless=(--rootless)
    echo "build.sh: not root: building rootless, /data will be recorded as owned by root" >&2
fi

mkdir -p "$(dirname "$layout")"
work=$(mktemp -d "$(dirname "$layout")/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
rm -rf "$layout"

umoci init --layout "$layout"
umoci new --image "$image"
umoci unpack "${rootless[@]}" --image "$image" "$work/bundle"
rootfs="$work/bundle/rootfs"

# Debian's merged-/usr layout: /lib and /lib64 point into /usr, where the libraries go.
install -d -m 0755 "$rootfs/usr/local/bin" "$rootfs/usr/lib" "$rootfs/usr/lib64" \
    "$rootfs/etc/ssl/certs"
ln -s usr/lib "$rootfs/lib"
ln -s usr/lib64 "$rootfs/lib64"
# Without its debug sections (the release profile keeps line tables: 119 MB instead of
# 25 MB); the symbols stay, so a backtrace still names functions. The Dockerfile does the same.
objcopy --strip-debug "$binary" "$rootfs/usr/local/bin/hookline"
chmod 0755 "$rootfs/usr/local/bin/hookline"

# Every library ldd resolves (`name => /path (addr)`) and the loader (`/path (addr)`),
# copied with symlinks resolved to the path the binary asks for.
libs=$(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[ -n "$libs" ] || die "ldd found no libraries in $binary (a static binary needs none: drop this step)"
if ldd "$binary" | grep -q 'not found'; then
    die "ldd cannot resolve every library of $binary: $(ldd "$binary" | grep 'not found')"
fi
while read -r lib; do
    install -D -m 0755 "$(readlink -f "$lib")" "$rootfs$lib"
    echo "library: $lib"
done <<<"$libs"

# The user the image runs as, and enough of /etc for glibc's lookups.
cat >"$rootfs/etc/passwd" <<EOF
root:x:0:0:root:/root:/usr/sbin/nologin
hookline:x:$uid:$gid:hookline:/data:/usr/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<EOF
root:x:0:
hookline:x:$gid:
EOF
cat >"$rootfs/etc/nsswitch.conf" <<EOF
passwd: files
group: files
hosts: files dns
EOF
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group" "$rootfs/etc/nsswitch.conf"
install -m 0644 "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
install -d -m 1777 "$rootfs/tmp"
install -d -m 0750 "$rootfs/data"
if [ "$(id -u)" -eq 0 ]; then
    chown "$uid:$gid" "$rootfs/data"
fi
find "$rootfs" -exec touch -h -d "@$epoch" {} +

umoci repack --image "$image" --history.created "$created" \
    --history.created_by "deploy/image/build.sh: hookline $version, glibc, passwd, CA bundle" \
    "$work/bundle"

label() { printf -- '--config.label=org.opencontainers.image.%s=%s' "$1" "$2"; }
umoci config --image "$image" --no-history \
    --created "$created" --author hookline --os linux --architecture "$arch" \
    --config.user "$uid:$gid" \
    --config.entrypoint hookline --config.cmd serve \
    --config.workingdir /data --config.volume /data \
    --config.exposedports 8080/tcp --config.exposedports 50051/tcp \
    --config.stopsignal SIGTERM \
    --config.env PATH=/usr/local/bin:/usr/bin:/bin \
    --config.env HOOKLINE_INGEST_ADDR=0.0.0.0:8080 \
    --config.env HOOKLINE_API_ADDR=0.0.0.0:50051 \
    --config.env HOOKLINE_DB=sqlite:///data/hookline.db \
    "$(label title hookline)" \
    "$(label description "Webhooks for container registries")" \
    "$(label licenses Apache-2.0)" \
    "$(label version "$version")" \
    "$(label revision "$revision")" \
    "$(label created "$created")" \
    --manifest.annotation "org.opencontainers.image.revision=$revision" \
    --manifest.annotation "org.opencontainers.image.version=$version"
umoci gc --layout "$layout"

manifest=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"])' "$layout/index.json")
echo "image: oci:$image ($manifest, $(du -sh "$layout/blobs" | cut -f1)), hookline $version, revision $revision"
