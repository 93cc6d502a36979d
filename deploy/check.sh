#!/usr/bin/env bash
# Checks the operator kit (docs/deploy.md) offline; .ci/run runs it.
#
#   bash deploy/check.sh                  everything, the image from a release build
#   bash deploy/check.sh --binary PATH    the image from that hookline binary instead (CI
#                                         passes the one its tests just built: the release
#                                         build alone would add 8 minutes on 2 cores)
#   bash deploy/check.sh --no-image       all but the container image
#
# 1. deploy/k8s: every manifest, and the kustomization rendered by `kubectl kustomize`
#    when kubectl is there, validated strictly against the Kubernetes 1.27 and 1.37 JSON
#    schemas (kubernetes-validate, schemas bundled: no cluster, no network); then
#    deploy/check.py's rules (files vs kustomization, security contexts, resources,
#    probes only on what each role serves, grace period vs shutdown_grace, PDBs, Services).
# 2. deploy/compose.yaml against the compose-spec schema (check-jsonschema, bundled), and
#    deploy/check.py's rules: services, the registry's notifications section equal to the
#    integration tests' (tests/it/harness/registry.rs) but for url and token, its token
#    and URL matching the hookline service, the allow-list matching the network.
# 3. deploy/grafana/hookline.json queries only metrics hookline exports (and shows each);
#    docs/operations.md documents every one with its type (deploy/check.py grafana).
# 4. The Dockerfile's final stage, and a copy of the build context .dockerignore lets
#    through: `cargo fetch --locked --offline` parses the manifest there (every target's
#    file present) and every file the build includes is in it.
# 5. The image: release build (a no-op when current) or --binary, deploy/image/build.sh,
#    deploy/image/check.sh.
#
# The Python tools come from PyPI into a virtualenv under target/ (deploy/requirements.txt,
# pinned), made once and reused while the pins stay the same.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
target=${CARGO_TARGET_DIR:-$repo_root/target}
image=yes
binary=""
case "${1:-}" in
    "") ;;
    --no-image) image="" ;;
    --binary)
        binary=${2:?--binary needs a path}
        [ -x "$binary" ] || { echo "deploy/check.sh: no executable at $binary" >&2; exit 2; }
        ;;
    *)
        echo "usage: bash deploy/check.sh [--no-image | --binary PATH]" >&2
        exit 2
        ;;
esac

step() {
    printf '\n-- %s\n' "$*"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/hookline-deploy-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

step "tools (virtualenv $target/deploy-venv)"
venv="$target/deploy-venv"
if ! cmp -s deploy/requirements.txt "$venv/requirements.txt" 2>/dev/null; then
    rm -rf "$venv"
    mkdir -p "$target"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r deploy/requirements.txt
    cp deploy/requirements.txt "$venv/requirements.txt"
fi
py="$venv/bin/python"
"$venv/bin/kubernetes-validate" --version
"$venv/bin/check-jsonschema" --version

# Oldest Kubernetes the manifests support (gRPC probes are GA in 1.27) and the newest
# schemas kubernetes-validate bundles.
k8s_versions=(1.27.0 1.37.0)
validate() {
    local version
    for version in "${k8s_versions[@]}"; do
        "$venv/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$version" "$@"
        echo "ok: valid for Kubernetes $version (strict): $*"
    done
}

step "kubernetes: deploy/k8s"
mapfile -t manifests < <(find deploy/k8s -name '*.yaml' ! -name kustomization.yaml | sort)
validate "${manifests[@]}"
rendered=()
if command -v kubectl >/dev/null 2>&1; then
    kubectl kustomize deploy/k8s >"$work/rendered.yaml"
    echo "ok: kubectl kustomize rendered $(grep -c '^kind:' "$work/rendered.yaml") objects ($(kubectl version --client 2>/dev/null | grep -i kustomize || echo 'kustomize'))"
    validate "$work/rendered.yaml"
    rendered=("$work/rendered.yaml")
else
    echo "WARNING: no kubectl: the kustomization is not rendered, only its files are checked" >&2
fi
"$py" deploy/check.py k8s "${rendered[@]}"

step "compose: deploy/compose.yaml"
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yaml
if docker compose version >/dev/null 2>&1; then
    docker compose -f deploy/compose.yaml config --quiet
    echo "ok: docker compose config"
fi
"$py" deploy/check.py compose

step "grafana: deploy/grafana/hookline.json"
"$py" deploy/check.py grafana

step "Dockerfile and its build context"
# The context a builder would send: .dockerignore here is an allow-list (`*`, then
# `!path` lines), which this copies.
context="$work/context"
mkdir -p "$context"
if [ "$(grep -v '^#' .dockerignore | grep -v '^$' | head -n 1)" != "*" ]; then
    echo ".dockerignore: expected an allow-list starting with '*'" >&2
    exit 1
fi
while read -r keep; do
    [ -e "$keep" ] || { echo ".dockerignore lets in $keep, which does not exist" >&2; exit 1; }
    cp -r --parents "$keep" "$context/"
done < <(sed -n 's/^!\(.*\)$/\1/p' .dockerignore)
# --target: only what this machine's build needs is in the local cache.
host=$(rustc -vV | sed -n 's/^host: //p')
(cd "$context" && cargo fetch --locked --offline --quiet --target "$host")
echo "ok: cargo reads the manifest and lock file from the build context alone"
"$py" deploy/check.py dockerfile "$context"

if [ -z "$image" ]; then
    step "image: skipped (--no-image)"
    exit 0
fi
if [ -z "$binary" ]; then
    step "image: release build"
    cargo build --release --locked --bin hookline
    binary="$target/release/hookline"
fi
step "image: deploy/image/build.sh $binary, deploy/image/check.sh"
bash deploy/image/build.sh "$binary"
bash deploy/image/check.sh
echo
echo "deploy check passed"
