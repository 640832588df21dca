#!/usr/bin/env bash
# Make sure the programs the integration tests drive are installed:
#   named (bind9), dig + nsupdate (bind9-dnsutils), knsupdate + kdig
#   (knot-dnsutils), ddclient, inadyn, curl, pdns_server (pdns-server with
#   pdns-backend-sqlite3: the octodns mirror's peer); podman + debootstrap (the
#   Dockerfile's build test), promtool (prometheus: the alert rules' check),
#   knotc (knot) and nsd-checkconf (nsd): docs/secondaries.md's examples.
#
# Installs what is missing with apt-get when we are root or have passwordless
# sudo, without leaving the packages' daemons running (a policy-rc.d that
# forbids service starts during the install, then a check for any named,
# ddclient or inadyn daemon that appeared anyway; processes that other
# programs run in the foreground are left alone).
#
# When it cannot install, it lists what is missing and exits 0 (the tests that
# need a missing tool are skipped), except under CI=true, where it exits 1
# (in CI, a skipped tool is a failure).
#
# Usage: scripts/ensure-tools.sh [--check]
#   --check   only report; never install (also: ENSURE_TOOLS_NO_INSTALL=1)
set -euo pipefail

# named and inadyn live in sbin, which is not on every user's PATH.
export PATH="${PATH:-/usr/bin:/bin}:/usr/sbin:/sbin:/usr/local/sbin"

# perl:MODULE is a Perl module, file:PATH a file a package installs (a backend)
PDNS_SQLITE_SCHEMA=/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql
COMMANDS=(named dig nsupdate knsupdate kdig ddclient inadyn curl perl:IO::Socket::SSL
    pdns_server "file:$PDNS_SQLITE_SCHEMA" podman debootstrap promtool knotc nsd-checkconf)
declare -A PACKAGE=(
    [named]=bind9
    [dig]=bind9-dnsutils
    [nsupdate]=bind9-dnsutils
    [knsupdate]=knot-dnsutils
    [kdig]=knot-dnsutils
    [ddclient]=ddclient
    [inadyn]=inadyn
    [curl]=curl
    # ddclient's HTTPS (only recommended by its package, which we install without recommends)
    [perl:IO::Socket::SSL]=libio-socket-ssl-perl
    # the octodns mirror's peer: PowerDNS with its sqlite3 backend
    [pdns_server]=pdns-server
    ["file:$PDNS_SQLITE_SCHEMA"]=pdns-backend-sqlite3
    [podman]=podman
    [debootstrap]=debootstrap
    [promtool]=prometheus
    [knotc]=knot
    [nsd-checkconf]=nsd
)
# daemons the packages may start, and their systemd units
DAEMONS=(named ddclient inadyn pdns_server prometheus knotd nsd)
declare -A UNIT=([named]=named.service [ddclient]=ddclient.service [inadyn]=inadyn.service
    [pdns_server]=pdns.service [prometheus]=prometheus.service [knotd]=knot.service
    [nsd]=nsd.service)
declare -A DAEMON_PACKAGE=([named]=bind9 [ddclient]=ddclient [inadyn]=inadyn
    [pdns_server]=pdns-server [prometheus]=prometheus [knotd]=knot [nsd]=nsd)

# The path is a variable so that the script's own tests can point it elsewhere.
POLICY_RC_D="${POLICY_RC_D:-/usr/sbin/policy-rc.d}"

say() { printf 'ensure-tools: %s\n' "$*"; }
warn() { printf 'ensure-tools: %s\n' "$*" >&2; }

check_only="${ENSURE_TOOLS_NO_INSTALL:-}"
case "${1:-}" in
    --check) check_only=1 ;;
    "") ;;
    -h | --help)
        sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        warn "unknown option: $1 (usage: $0 [--check])"
        exit 2
        ;;
esac

missing_commands() {
    local cmd
    for cmd in "${COMMANDS[@]}"; do
        case "$cmd" in
            perl:*) perl -M"${cmd#perl:}" -e 1 >/dev/null 2>&1 || printf '%s\n' "$cmd" ;;
            file:*) [ -e "${cmd#file:}" ] || printf '%s\n' "$cmd" ;;
            *) command -v "$cmd" >/dev/null 2>&1 || printf '%s\n' "$cmd" ;;
        esac
    done
}

packages_for() { # commands... -> unique package names, in order
    local cmd pkg seen=" "
    for cmd in "$@"; do
        pkg="${PACKAGE[$cmd]}"
        case "$seen" in *" $pkg "*) continue ;; esac
        seen="$seen$pkg "
        printf '%s\n' "$pkg"
    done
}

give_up() { # message
    warn "$1"
    if [ "${CI:-}" = "true" ]; then
        warn "CI=true: the integration tests need these tools; failing."
        exit 1
    fi
    warn "the integration tests that need them will be skipped."
    exit 0
}

# PIDs of running processes called $1 (by /proc, so no procps needed). Perl
# daemons like ddclient rename themselves ("ddclient - sleeping ..."), so a
# comm that starts with "NAME " counts too, and so does an interpreter whose
# script is NAME.
pids_of() {
    local name="$1" dir comm pid arg0 arg1
    for dir in /proc/[0-9]*; do
        pid="${dir#/proc/}"
        [ "$pid" = "$$" ] && continue
        comm="$(cat "$dir/comm" 2>/dev/null)" || continue
        if [ "$comm" = "$name" ] || [[ "$comm" == "$name "* ]]; then
            printf '%s\n' "$pid"
            continue
        fi
        arg0="" arg1=""
        { IFS= read -r -d '' arg0 && IFS= read -r -d '' arg1; } <"$dir/cmdline" 2>/dev/null || true
        if [ "${arg0##*/}" = "$name" ] || { [[ "${arg0##*/}" == perl* ]] && [ "${arg1##*/}" = "$name" ]; }; then
            printf '%s\n' "$pid"
        fi
    done
}

# True when PID is a daemon: its parent is init or a systemd. A named that a
# test (ours or someone else's on a shared machine) runs in the foreground has
# that test as its parent and must never be touched here.
is_daemon() {
    local ppid parent
    ppid="$(sed -n 's/^PPid:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null)" || return 1
    [ -n "$ppid" ] || return 1
    [ "$ppid" = 1 ] && return 0
    parent="$(cat "/proc/$ppid/comm" 2>/dev/null)" || return 1
    [ "$parent" = systemd ]
}

mapfile -t missing < <(missing_commands)
if [ "${#missing[@]}" -eq 0 ]; then
    say "all present (${COMMANDS[*]})"
    exit 0
fi
mapfile -t packages < <(packages_for "${missing[@]}")
warn "missing: ${missing[*]} (Debian packages: ${packages[*]})"

if [ -n "$check_only" ]; then
    give_up "not installing (--check); run: sudo apt-get install ${packages[*]}"
fi

if [ "$EUID" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    give_up "cannot install (not root, no passwordless sudo); run: sudo apt-get install ${packages[*]}"
fi
if ! command -v apt-get >/dev/null 2>&1; then
    give_up "cannot install (no apt-get here); install the equivalents of: ${packages[*]}"
fi

# -- install, with service starts forbidden

declare -A before=()
for daemon in "${DAEMONS[@]}"; do
    before[$daemon]=" $(pids_of "$daemon" | tr '\n' ' ')"
done

policy_backup=""
restore_policy() {
    if [ -n "$policy_backup" ]; then
        "${as_root[@]}" mv -f "$policy_backup" "$POLICY_RC_D"
    else
        "${as_root[@]}" rm -f "$POLICY_RC_D"
    fi
}
if [ -e "$POLICY_RC_D" ]; then
    policy_backup="$POLICY_RC_D.ensure-tools.$$"
    "${as_root[@]}" mv -f "$POLICY_RC_D" "$policy_backup"
fi
trap restore_policy EXIT
# invoke-rc.d and deb-systemd-invoke ask this script; 101 = "action forbidden".
printf '#!/bin/sh\n# written by ddns-server scripts/ensure-tools.sh during an install\nexit 101\n' |
    "${as_root[@]}" tee "$POLICY_RC_D" >/dev/null
"${as_root[@]}" chmod 755 "$POLICY_RC_D"

apt_env=(env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l)
install_ok=1
say "apt-get update"
if ! "${as_root[@]}" "${apt_env[@]}" apt-get update -qq; then
    warn "apt-get update failed"
fi
say "apt-get install ${packages[*]}"
if ! "${as_root[@]}" "${apt_env[@]}" apt-get install -y -qq --no-install-recommends --no-upgrade \
    -o Dpkg::Use-Pty=0 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${packages[@]}"; then
    install_ok=""
fi

restore_policy
trap - EXIT

# -- leave no daemon behind

installed=" ${packages[*]} "
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    for daemon in "${DAEMONS[@]}"; do
        # Only services whose package we just installed: a named the user
        # already ran is theirs. Disabled too, so that a reboot does not start
        # a DNS resolver or a DDNS client nobody asked for.
        [[ "$installed" == *" ${DAEMON_PACKAGE[$daemon]} "* ]] || continue
        unit="${UNIT[$daemon]}"
        if systemctl is-enabled --quiet "$unit" 2>/dev/null || systemctl is-active --quiet "$unit" 2>/dev/null; then
            "${as_root[@]}" systemctl disable --now --quiet "$unit" 2>/dev/null || true
            say "stopped and disabled $unit (the tests run their own; 'systemctl enable --now $unit' to undo)"
        fi
    done
fi
for daemon in "${DAEMONS[@]}"; do
    new=()
    for pid in $(pids_of "$daemon"); do
        [[ "${before[$daemon]} " == *" $pid "* ]] && continue
        is_daemon "$pid" && new+=("$pid")
    done
    [ "${#new[@]}" -eq 0 ] && continue
    say "stopping the $daemon started by its package (pid ${new[*]})"
    "${as_root[@]}" kill -TERM "${new[@]}" 2>/dev/null || true
    for _ in $(seq 50); do
        alive=()
        for pid in "${new[@]}"; do [ -d "/proc/$pid" ] && alive+=("$pid"); done
        [ "${#alive[@]}" -eq 0 ] && break
        sleep 0.1
    done
    if [ "${#alive[@]}" -gt 0 ]; then
        "${as_root[@]}" kill -KILL "${alive[@]}" 2>/dev/null || true
    fi
done

mapfile -t still < <(missing_commands)
if [ "${#still[@]}" -gt 0 ]; then
    mapfile -t packages < <(packages_for "${still[@]}")
    give_up "still missing after install: ${still[*]} (packages: ${packages[*]})"
fi
if [ -z "$install_ok" ]; then
    warn "apt-get reported an error, but every tool is now present"
fi
say "installed ${packages[*]}; all present (${COMMANDS[*]})"
