#!/bin/bash
# xenstored-userspace.sh -- run the real oxenstored (Debian xen-utils-4.17) as a
# plain userspace daemon on a machine WITHOUT Xen, so xenstore clients can be
# tested against it over a unix socket.
#
#   xenstored-userspace.sh start   # prints the socket path; idempotent
#   xenstored-userspace.sh stop
#   xenstored-userspace.sh status
#
# How: oxenstored --no-fork --no-domain-init, with xenstored-nox-shim.so
# LD_PRELOADed (fakes xc_interface_open / xenevtchn_open, clamps the
# RLIMIT_NOFILE request, moves the socket to $XENSTORED_PATH).  Only the unix
# socket works: no domain rings, no INTRODUCE of real domains (INTRODUCE makes
# this oxenstored exit).  Clients: libxenstore's xs_open(0), the xenstore-* CLI
# and crates/xenstore use $XENSTORED_PATH (default /run/xenstored/socket).
# The C xenstored does NOT work this way: with -D it segfaults on the first
# request; without -D it exits "Failed to open connection to hypervisor".
# Needs gcc, apt-get download (or $OXENSTORED, or an installed
# xen-utils-4.17), libxenmisc4.17 (pulled in by libxen-dev); root only when
# the socket lives under /run.  State lives in $XS_DIR
# (/var/tmp/xenstored-userspace).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
XS_DIR=${XS_DIR:-/var/tmp/xenstored-userspace}
SOCK=${XENSTORED_PATH:-/run/xenstored/socket}
PIDF=$XS_DIR/oxenstored.pid
SYSTEM_BIN=/usr/lib/xen-4.17/bin/oxenstored

# Picks the oxenstored binary: $OXENSTORED, the installed package, or a copy
# unpacked from a downloaded xen-utils-4.17 .deb.
binary() {
    if [ -n "${OXENSTORED:-}" ]; then echo "$OXENSTORED"
    elif [ -x "$SYSTEM_BIN" ]; then echo "$SYSTEM_BIN"
    else echo "$XS_DIR/root$SYSTEM_BIN"; fi
}

prepare() {
    mkdir -p "$XS_DIR"
    BIN=$(binary)
    if [ ! -x "$BIN" ]; then
        (cd "$XS_DIR" && apt-get -q -o APT::Sandbox::User=root download xen-utils-4.17 >/dev/null)
        dpkg-deb -x "$XS_DIR"/xen-utils-4.17_*.deb "$XS_DIR/root"
    fi
    if ldd "$BIN" | grep -q 'not found'; then
        echo "missing libraries (apt-get install libxenmisc4.17):" >&2
        ldd "$BIN" | grep 'not found' >&2; exit 1
    fi
    if [ ! -f "$XS_DIR/shim.so" ] || [ "$HERE/xenstored-nox-shim.c" -nt "$XS_DIR/shim.so" ]; then
        gcc -shared -fPIC -O2 -o "$XS_DIR/shim.so" "$HERE/xenstored-nox-shim.c" -ldl
    fi
    cat >"$XS_DIR/oxenstored.conf" <<EOF
pid-file = $XS_DIR/oxenstored.pid.conf
quota-activate = true
quota-maxentity = 100000
quota-maxsize = 4096
quota-maxwatch = 1000
quota-transaction = 100
persistent = false
access-log-file = $XS_DIR/access.log
xenstored-log-file = $XS_DIR/xenstored.log
EOF
}

running() { [ -f "$PIDF" ] && kill -0 "$(cat "$PIDF")" 2>/dev/null && [ -S "$SOCK" ]; }

start() {
    if running; then echo "$SOCK"; exit 0; fi
    prepare
    mkdir -p "$(dirname "$SOCK")"
    rm -f "$SOCK"
    XENSTORED_PATH=$SOCK LD_PRELOAD=$XS_DIR/shim.so "$BIN" \
        --no-fork --no-domain-init --config-file "$XS_DIR/oxenstored.conf" \
        >"$XS_DIR/stdout.log" 2>&1 </dev/null 9>&- &
    echo $! >"$PIDF"
    for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
    if [ ! -S "$SOCK" ]; then
        echo "$BIN did not create $SOCK within 5s; its output:" >&2
        cat "$XS_DIR/stdout.log" >&2
        kill "$(cat "$PIDF")" 2>/dev/null || true
        rm -f "$PIDF"
        exit 1
    fi
    echo "$SOCK"
}

case "${1:-}" in
start)
    # Several test binaries may start the daemon at once: serialise them.
    mkdir -p "$XS_DIR"
    exec 9>"$XS_DIR/lock"
    flock 9
    start
    ;;
stop)
    if running || [ -f "$PIDF" ]; then kill "$(cat "$PIDF")" 2>/dev/null || true; fi
    rm -f "$PIDF"
    ;;
status)
    if running; then echo "running pid $(cat "$PIDF") socket $SOCK"; else echo stopped; exit 1; fi
    ;;
*) sed -n '2,22p' "$0"; exit 2 ;;
esac
