#!/usr/bin/env bash
# Make the base image the Dockerfile names (debian:bookworm-slim) locally,
# without an image registry: `debootstrap --variant=minbase bookworm` from the
# Debian mirror apt already uses, then `podman import`.
#
# The root file system tarball is cached (DDNS_IMAGE_CACHE, default
# /var/cache/ddns-server-test when writable, else ~/.cache/ddns-server-test),
# so a second run only re-imports it when podman lost the image.
#
# Usage: scripts/podman-base-image.sh [IMAGE]   (default debian:bookworm-slim)
set -euo pipefail
export PATH="${PATH:-/usr/bin:/bin}:/usr/sbin:/sbin"

IMAGE="${1:-debian:bookworm-slim}"
SUITE=bookworm

say() { printf 'podman-base-image: %s\n' "$*" >&2; }

cache_dir() {
    if [ -n "${DDNS_IMAGE_CACHE:-}" ]; then
        printf '%s\n' "$DDNS_IMAGE_CACHE"
    elif mkdir -p /var/cache/ddns-server-test 2>/dev/null && [ -w /var/cache/ddns-server-test ]; then
        printf '%s\n' /var/cache/ddns-server-test
    else
        printf '%s\n' "${XDG_CACHE_HOME:-$HOME/.cache}/ddns-server-test"
    fi
}

# The first Debian mirror in apt's sources (deb822 *.sources or one-line
# *.list), so the image comes from where this machine's packages come from.
apt_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk '/^URIs:/ {print $2}' "$f" | grep -v -- '-security' | head -n1 || true)
        if [ -n "$uri" ] && grep -qE '^Suites:.*\b'"$SUITE"'\b' "$f"; then
            printf '%s\n' "$uri"
            return
        fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(awk -v s="$SUITE" '$1 == "deb" && $0 ~ " " s " " {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' "$f")
        if [ -n "$uri" ]; then
            printf '%s\n' "$uri"
            return
        fi
    done
    return 1
}

if podman image exists "$IMAGE"; then
    say "$IMAGE is there"
    exit 0
fi

CACHE="$(cache_dir)"
mkdir -p "$CACHE"
TARBALL="$CACHE/$SUITE-minbase.tar"

if [ ! -s "$TARBALL" ]; then
    MIRROR="$(apt_mirror)" || { say "no Debian mirror for $SUITE in /etc/apt/sources*"; exit 1; }
    say "debootstrap --variant=minbase $SUITE from $MIRROR (once; cached in $TARBALL)"
    ROOT="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
    trap 'rm -rf "$ROOT" "$TARBALL.part"' EXIT
    debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
        { say "debootstrap failed; see $CACHE/debootstrap.log"; exit 1; }
    # what the official slim image leaves out, and apt lists
    rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb
    tar --numeric-owner -C "$ROOT" -cf "$TARBALL.part" .
    mv "$TARBALL.part" "$TARBALL"
fi

say "podman import $TARBALL as $IMAGE"
podman import --quiet "$TARBALL" "$IMAGE" >/dev/null
