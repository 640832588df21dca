#!/usr/bin/env bash
# Build the Dockerfile without a Docker daemon or an image registry:
#   1. the base image debian:bookworm-slim is made locally (podman-base-image.sh:
#      debootstrap from apt's mirror, cached);
#   2. `podman build --isolation=chroot --pull=never`, with this machine's CA
#      bundle and a pip.conf naming it mounted at /run/ddns-build for the RUN
#      steps (`-v`), so pip reaches the index the way this machine's pip does
#      and nothing of it stays in the image.
#
# Usage: scripts/podman-build.sh [TAG]     (default: ddns-server:latest)
set -euo pipefail
export PATH="${PATH:-/usr/bin:/bin}:/usr/sbin:/sbin"

TAG="${1:-ddns-server:latest}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
PYTHON="${PYTHON:-python3}"

"$HERE/podman-base-image.sh" debian:bookworm-slim

BUILD="$(mktemp -d)"
trap 'rm -rf "$BUILD"' EXIT

# The CA bundle this machine's pip trusts (pip's `cert`, else $PIP_CERT,
# $REQUESTS_CA_BUNDLE, $SSL_CERT_FILE, else Debian's bundle).
ca="$("$PYTHON" -m pip config get global.cert 2>/dev/null || true)"
for candidate in "$ca" "${PIP_CERT:-}" "${REQUESTS_CA_BUNDLE:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [ -n "$candidate" ] && [ -f "$candidate" ]; then
        cp "$candidate" "$BUILD/ca.crt"
        break
    fi
done

# pip.conf: the index settings of this machine's pip (local file:// indexes
# and find-links are left out: they are not in the build container).
{
    echo "[global]"
    if [ -f "$BUILD/ca.crt" ]; then echo "cert = /run/ddns-build/ca.crt"; fi
    for key in index-url extra-index-url trusted-host timeout default-timeout proxy; do
        value="$("$PYTHON" -m pip config get "global.$key" 2>/dev/null || true)"
        [ -n "$value" ] || value="$("$PYTHON" -m pip config get ":env:.$key" 2>/dev/null || true)"
        # shellcheck disable=SC2086 # split the list of URLs
        value="$(printf '%s\n' $value | grep -v '^file:' | tr '\n' ' ' | sed 's/ *$//' || true)"
        if [ -n "$value" ]; then echo "$key = $value"; fi
    done
} >"$BUILD/pip.conf"
chmod -R a+rX "$BUILD"

echo "podman-build: podman build --isolation=chroot -t $TAG $ROOT" >&2
podman build --isolation=chroot --pull=never \
    -v "$BUILD:/run/ddns-build:ro" \
    -t "$TAG" -f "$ROOT/Dockerfile" "$ROOT"
