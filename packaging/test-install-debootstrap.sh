#!/usr/bin/env bash
# Installs the built .deb packages into a clean Debian root made with debootstrap, then, without
# systemd, starts the installed daemon with the installed unit's ExecStart line (listeners moved
# to loopback), logs in through PAM as a user created in that root, and runs the installed `xe`.
#
#   packaging/test-install-debootstrap.sh [DEB_DIR]    # default: $OUT/deb (make -C packaging deb)
#
# Needs root, debootstrap, mount, and the network the first time: the minbase root is cached
# under $XAPI_DEBOOTSTRAP_CACHE (default /var/tmp/xapi-rs-debootstrap) and copied for each run.
# MIRROR overrides the Debian mirror (default: the one in this machine's apt sources).
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$TOP/target/packaging}
DEBS=$(cd "${1:-$OUT/deb}" && pwd)
SUITE=${SUITE:-bookworm}
CACHE=${XAPI_DEBOOTSTRAP_CACHE:-/var/tmp/xapi-rs-debootstrap}
# Dependencies of the packages, preinstalled in the cached root so that later runs install
# offline; anything missing is still fetched by apt-get -f inside the root.
INCLUDE=python3,passwd,libpam-modules,libpam-runtime
USER_NAME=xapiop
USER_PASSWORD=pkg-Test-pw1
fail() { echo "FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, chroot, mount)"
command -v debootstrap >/dev/null || fail "debootstrap is not installed"
ls "$DEBS"/xapi_*.deb "$DEBS"/xapi-xe_*.deb "$DEBS"/xapi-plugins-python_*.deb >/dev/null \
    || fail "no packages in $DEBS (make -C packaging deb)"

# The Debian mirror this machine's apt uses (deb822 .sources or one-line sources.list).
mirror() {
    local m
    m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | sed -n 's|^URIs:[[:space:]]*\(\S*/debian\)/\?$|\1|p' | head -n 1)
    [ -n "$m" ] || m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
        | sed -n 's|^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\(\S*/debian\)/\?[[:space:]].*|\2|p' \
        | head -n 1)
    echo "${m:-http://deb.debian.org/debian}"
}
MIRROR=${MIRROR:-$(mirror)}

t0=$SECONDS
base=$CACHE/$SUITE-minbase-$(echo "$INCLUDE" | md5sum | cut -c1-8)
if [ ! -e "$base/.xapi-rs-complete" ]; then
    echo "debootstrap $SUITE from $MIRROR into $base (cached for later runs)"
    mkdir -p "$CACHE"
    rm -rf "$base.tmp"
    debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$base.tmp" "$MIRROR" \
        > "$CACHE/debootstrap.log" 2>&1 || { tail -n 30 "$CACHE/debootstrap.log"; fail debootstrap; }
    touch "$base.tmp/.xapi-rs-complete"
    rm -rf "$base" && mv "$base.tmp" "$base"
fi

root=$(mktemp -d /var/tmp/xapi-rs-root.XXXXXX)
pid=
mounted=()
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    # Anything else still running inside the root (a daemon that outlived its parent, a hung xe).
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -9 "${p#/proc/}" 2>/dev/null
    done
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" || true
    done
    # Only remove the copy once nothing is mounted inside it any more.
    if ! grep -q " $root/" /proc/mounts; then rm -rf "$root"; fi
}
trap cleanup EXIT
cp -a "$base/." "$root/"
rm -f "$root/.xapi-rs-complete"
mnt() { mount "$@"; mounted+=("${*: -1}"); }
mnt -t proc proc "$root/proc"
mnt --bind /sys "$root/sys"
mnt --bind /dev "$root/dev"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }
echo "clean root ready: $((SECONDS - t0)) s"

# Install: dpkg, then apt-get -f for whatever dependency the cached root lacks.
mkdir -p "$root/tmp/debs"
cp "$DEBS"/xapi_*.deb "$DEBS"/xapi-xe_*.deb "$DEBS"/xapi-plugins-python_*.deb "$root/tmp/debs/"
if ! in_root sh -c 'dpkg -i /tmp/debs/*.deb' > "$root/tmp/dpkg.log" 2>&1; then
    echo "dpkg -i left dependencies unresolved; apt-get -f install"
    in_root sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get -f install -y -q' \
        || { cat "$root/tmp/dpkg.log"; fail "installing the packages and their dependencies"; }
fi
for p in xapi xapi-xe xapi-plugins-python; do
    [ "$(in_root dpkg-query -W -f '${db:Status-Status}' "$p")" = installed ] || fail "$p not installed"
done
echo "packages installed: $((SECONDS - t0)) s"

# A user of this root, with a password checked by the root's PAM (pam_unix, /etc/shadow).
in_root useradd -m "$USER_NAME"
echo "$USER_NAME:$USER_PASSWORD" | in_root chpasswd

# The installed unit's ExecStart line, as systemd would run it (minus systemd's prefixes).
unit=$(ls "$root"/usr/lib/systemd/system/xapi.service "$root"/lib/systemd/system/xapi.service \
    2>/dev/null | head -n 1)
[ -n "$unit" ] || fail "the package installed no xapi.service"
exec_start=$(sed -n 's/^ExecStart=[-@:+!]*//p' "$unit" | head -n 1)
[ -n "$exec_start" ] || fail "no ExecStart in $unit"
echo "ExecStart: $exec_start"
# Listeners on loopback instead of the installed 0.0.0.0:80/443; flags override /etc/xapi.conf.
log=$root/tmp/xapi.log
# shellcheck disable=SC2086 # ExecStart is a command line: split it as systemd does
# Started directly (not through the in_root function, whose subshell would be what $! names),
# so `pid` is the daemon itself and cleanup stops it.
chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    $exec_start --http 127.0.0.1:0 --https 127.0.0.1:0 > "$log" 2>&1 &
pid=$!
for _ in $(seq 600); do grep -q '^xapi: ready' "$log" && break; sleep 0.1; done
grep -q '^xapi: ready' "$log" || { cat "$log"; fail "the installed daemon did not start"; }
port=$(sed -n 's|^xapi: listening on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$log" | head -n 1)
[ -n "$port" ] || { cat "$log"; fail "no HTTP port in the daemon's output"; }
[ -S "$root/var/lib/xcp/xapi" ] || fail "no local socket at /var/lib/xcp/xapi"
[ -s "$root/var/lib/xcp/xapi-ssl.pem" ] || fail "no certificate generated under /var/lib/xcp"
echo "installed daemon ready on port $port: $((SECONDS - t0)) s"

# As upstream, a PAM user other than root must be a subject of the pool; the local superuser
# (the unix socket, through the installed XenAPI.py) makes it one. New subjects are pool-admins.
in_root env PYTHONPATH=/usr/share/xapi/python python3 - "$USER_NAME" <<'PY'
import sys
import XenAPI
user = sys.argv[1]
s = XenAPI.xapi_local()
s.xenapi.login_with_password("root", "", "1.0", "test-install-debootstrap")
s.xenapi.subject.create({"subject_identifier": user, "other_config": {"subject-name": user}})
s.xenapi.session.logout()
PY

xe=(/usr/bin/xe -s 127.0.0.1 -p "$port" --nossl -u "$USER_NAME")
if in_root "${xe[@]}" -pw not-the-password host-list > "$root/tmp/bad" 2>&1; then
    fail "a wrong password was accepted"
fi
# xe words SESSION_AUTHENTICATION_FAILED as upstream's xe does.
grep -q 'Authentication failed' "$root/tmp/bad" || { cat "$root/tmp/bad"; fail "wrong password"; }
hosts=$(in_root "${xe[@]}" -pw "$USER_PASSWORD" host-list) || fail "xe host-list as $USER_NAME"
echo "$hosts"
grep -q 'name-label' <<<"$hosts" || fail "xe host-list printed no host"
vms=$(in_root "${xe[@]}" -pw "$USER_PASSWORD" vm-list) || fail "xe vm-list as $USER_NAME"
grep -q 'Control domain' <<<"$vms" || { echo "$vms"; fail "xe vm-list shows no control domain"; }
# A second user of the root with a good password but no subject: PAM accepts, RBAC refuses.
in_root useradd -m xapinosubject
echo "xapinosubject:$USER_PASSWORD" | in_root chpasswd
if in_root /usr/bin/xe -s 127.0.0.1 -p "$port" --nossl -u xapinosubject -pw "$USER_PASSWORD" \
    host-list > "$root/tmp/nosubject" 2>&1; then fail "a user without a subject logged in"; fi
# (xe's wording of SESSION_AUTHORIZATION_FAILED, from the error's documentation)
grep -q 'could not be authorized' "$root/tmp/nosubject" \
    || { cat "$root/tmp/nosubject"; fail "user without a subject"; }
echo "debootstrap install + PAM login + xe host-list/vm-list: ok ($((SECONDS - t0)) s)"
