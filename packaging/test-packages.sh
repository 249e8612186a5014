#!/usr/bin/env bash
# Packaging test: builds the .deb packages and the RPMs from the committed tree, lints them,
# checks their contents, scriptlets and dependencies, then runs the installed daemon and `xe`
# from an unpacked root (no systemd: the unit's ExecStart line with test listeners).
#
#   packaging/test-packages.sh            # both formats
#   SKIP_RPM=1 packaging/test-packages.sh # .deb only
#
# Needs: cargo, dpkg-dev, debhelper, lintian, rpm, rpmlint, python3, curl-free (loopback only).
# VENDOR=0 builds the .deb against the cargo registry cache instead of vendored crates;
# REUSE=1 tests the packages already in $OUT instead of building them again; REF=<commit>
# packages another commit than HEAD (see packaging/Makefile).
# XAPI_PREBUILT=target/debug packages the binaries a `cargo test --workspace` already built
# instead of compiling release ones (a few minutes instead of ~25: what CI does).
# The .debs are then installed into a clean debootstrap root (packaging/test-install-debootstrap.sh;
# needs root and debootstrap; SKIP_DEBOOTSTRAP=1 leaves it out).
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$TOP/target/packaging}
VENDOR=${VENDOR:-1}
SKIP_RPM=${SKIP_RPM:-0}
SKIP_DEB=${SKIP_DEB:-0}
fail() { echo "FAIL: $*" >&2; exit 1; }
has() { grep -q -- "$2" <<<"$1" || fail "$3: missing $2"; }
t_last=$SECONDS
took() { echo "== $1: $((SECONDS - t_last)) s"; t_last=$SECONDS; }

run_installed() {
    local root=$1 state conf log pid
    state=$(mktemp -d); log=$state/xapi.log
    conf=$state/xapi.conf
    # The installed config, pointed into the unpacked root; listeners come from flags as in the test harness.
    sed -e "s|^plugins-dir = .*|plugins-dir = $root/etc/xapi.d/plugins|" \
        -e "s|^plugin-python-path = .*|plugin-python-path = $root/usr/share/xapi/python|" \
        -e "s|^auth = .*|auth = local|" "$root/etc/xapi.conf" > "$conf"
    XAPI_ROOT_PASSWORD=pkg-test "$root/usr/sbin/xapi" --config "$conf" --state-dir "$state" \
        --http 127.0.0.1:0 --https off --socket "$state/xapi" > "$log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do grep -q '^xapi: ready' "$log" && break; sleep 0.1; done
    grep -q '^xapi: ready' "$log" || { cat "$log"; kill "$pid"; fail "installed daemon did not start"; }
    export XE_SOCKET=$state/xapi
    local xe="$root/usr/bin/xe" host
    "$xe" host-list | tee "$state/hosts" | grep -q 'name-label' || fail "xe host-list"
    "$xe" vm-list | grep -q 'Control domain' || fail "xe vm-list"
    host=$("$xe" host-list --minimal)
    [ "$("$xe" host-call-plugin host-uuid="$host" plugin=echo fn=main args:k=v)" = "k=v" ] \
        || fail "the packaged echo plugin through xe host-call-plugin"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$state"
    echo "installed daemon + xe: ok"
}

if [ "$SKIP_DEB" != 1 ]; then
    [ "${REUSE:-0}" = 1 ] || \
        make -C "$TOP/packaging" deb OUT="$OUT" VENDOR="$VENDOR" DPKG_FLAGS="${DPKG_FLAGS:--d}"
    took "deb build"
    lintian --fail-on error "$OUT"/deb/*.changes
    took "lintian"
    c=$(dpkg-deb -c "$OUT"/deb/xapi_*.deb)
    for f in ./usr/sbin/xapi ./etc/xapi.conf ./etc/pam.d/xapi systemd/system/xapi.service \
        ./etc/xapi.d/plugins/ ./var/lib/xcp/ ./usr/share/man/man8/xapi.8.gz; do has "$c" "$f" xapi.deb; done
    c=$(dpkg-deb -c "$OUT"/deb/xapi-xe_*.deb)
    for f in ./usr/bin/xe ./usr/share/bash-completion/completions/xe ./usr/share/man/man1/xe.1.gz; do
        has "$c" "$f" xapi-xe.deb
    done
    c=$(dpkg-deb -c "$OUT"/deb/xapi-plugins-python_*.deb)
    for f in XenAPI.py XenAPIPlugin.py ./etc/xapi.d/plugins/echo; do has "$c" "$f" xapi-plugins-python.deb; done
    meta=$(mktemp -d)
    dpkg-deb -e "$OUT"/deb/xapi_*.deb "$meta"
    has "$(cat "$meta/conffiles")" /etc/xapi.conf conffiles
    has "$(cat "$meta/postinst")" xapi.service postinst
    rm -rf "$meta"
    root=$(mktemp -d)
    for d in "$OUT"/deb/*.deb; do dpkg-deb -x "$d" "$root"; done
    run_installed "$root"
    rm -rf "$root"
    took "deb contents + unpacked daemon"
    if [ "${SKIP_DEBOOTSTRAP:-0}" = 1 ]; then
        echo "debootstrap install test skipped (SKIP_DEBOOTSTRAP=1)"
    elif [ "$(id -u)" != 0 ] || ! command -v debootstrap >/dev/null; then
        echo "SKIP: the debootstrap install test needs root and debootstrap"
    else
        OUT="$OUT" "$TOP/packaging/test-install-debootstrap.sh" "$OUT/deb"
        took "debootstrap install"
    fi
fi

if [ "$SKIP_RPM" != 1 ]; then
    rpmlint "$TOP/packaging/rpm/xapi.spec"
    # Debian's rpm has no RPM build dependencies installed and no debugedit.
    [ "${REUSE:-0}" = 1 ] || \
        make -C "$TOP/packaging" rpm OUT="$OUT" NODEBUG=1 RPMBUILD_FLAGS="--nodeps --nocheck"
    took "rpm build"
    rpm=$(ls "$OUT"/rpm/RPMS/*/xapi-0*.rpm)
    l=$(rpm -qlp "$rpm")
    for f in /usr/sbin/xapi /etc/xapi.conf /etc/pam.d/xapi /usr/lib/systemd/system/xapi.service \
        /etc/xapi.d/plugins /var/lib/xcp /usr/share/man/man8/xapi.8; do has "$l" "$f" "rpm -qlp xapi"; done
    l=$(rpm -qlp "$OUT"/rpm/RPMS/*/xapi-xe-*.rpm)
    for f in /usr/bin/xe /usr/share/man/man1/xe.1; do has "$l" "$f" "rpm -qlp xapi-xe"; done
    has "$(rpm -qlp "$OUT"/rpm/RPMS/noarch/xapi-plugins-python-*.rpm)" XenAPIPlugin.py "rpm -qlp plugins"
    s=$(rpm -qp --scripts "$rpm")
    has "$s" "systemctl --no-reload preset xapi.service" "%post"
    has "$s" "disable --now xapi.service" "%preun"
    has "$(rpm -qp --requires "$OUT"/rpm/RPMS/noarch/xapi-plugins-python-*.rpm)" python3 "requires"
    rpmlint -r "$TOP/packaging/rpm/rpmlint-filters" "$OUT"/rpm/RPMS/*/*.rpm | tee "$OUT/rpmlint.txt"
    grep -q ' 0 errors' "$OUT/rpmlint.txt" || fail "rpmlint reports errors on the built RPMs"
    took "rpm checks + rpmlint"
    echo "rpm: ok"
fi
echo "packaging tests: ok"
