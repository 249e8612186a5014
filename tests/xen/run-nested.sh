#!/bin/bash
# run-nested.sh -- test `xapi --backend xen` on real Xen without Xen hardware: boot
# Xen 4.17 + a Debian 12 dom0 under qemu-system-x86_64 (TCG software emulation, no KVM),
# copy the `xen`-featured `xapi` and `xe` into dom0, run tests/xen/dom0-tests.sh there,
# print its `N passed, M failed` and exit non-zero on any failure.
#
# usage:  run-nested.sh                  # build image (if needed) + binaries, run the tests
#         run-nested.sh build            # (re)build the cached dom0 image only
#         run-nested.sh run 'xl info'    # boot and run one command in dom0, print its output
#         run-nested.sh run -f script.sh # ... a script file (/bin/sh = dash)
#         run-nested.sh run -a FILE ... 'cmd'  # -a (repeatable): copy FILE into dom0 /lab/add/
#
# The image is built from Debian packages only (debootstrap + apt): xen-hypervisor-4.17-amd64,
# xen-utils-4.17, linux-image-amd64, busybox-static, nbd-client, qemu-system-xen. dom0 runs
# from an initramfs; its /init starts xenstored and xenconsoled, runs the command, powers the
# machine off. The image is rebuilt when this script changes (cached steps: ~5 s; from
# scratch with debootstrap: ~1.5 min); the first build needs the Debian mirror this machine's
# apt uses.
#
# Binaries: XAPI_BIN / XE_BIN take prebuilt ones; otherwise
#   cargo build -p xapi-daemon --features xen --bin xapi && cargo build -p xe-cli
# runs in the repository (CARGO_TARGET_DIR honoured; CARGO_PROFILE, default dev). They
# are stripped and gzip'd before copying (dom0's initramfs lives in its RAM).
#
# Inside dom0, for guests:
#   /lab/guest/vmlinux.gz  the Debian kernel as a gzip'd ELF (libxenguest would otherwise
#                          xz-decompress the bzImage on every build: ~10 s under TCG)
#   /lab/guest/initrd.cpio busybox init: prints GUEST-INIT-OK, writes data/os_version/* to
#       xenstore, pokes any vbd (writes GUEST-WROTE-THIS at sector 1) / vif, then powers off
#       at once, unless the kernel command line has `lab_wait`: then it waits for the
#       toolstack (control/shutdown -> /sbin/poweroff). Both print GUEST-DONE before the end.
#   /lab/guest/pygrub.img  a 32 MiB ext2 disk with /boot/{vmlinux.gz,initrd.cpio} and a
#                          grub2 menu (the default entry adds `lab_wait lab_pygrub`)
#   /lab/guest/{pv,pvh,pv-dev}.cfg  xl configs (GUEST_MEM MiB, 1 vcpu) for comparisons
#   /lab/bin/mkdevs        /tmp/disk.img (16 MiB, DOM0-DISK-HEADER at 0) + bridge xenbr0
#   /lab/bin/run-guest CFG [timeout]  xl create, wait for the domain to go, print its console
#
# Output of `run`: the command's stdout+stderr (between LAB-BEGIN/LAB-END on the serial
# console, Xen's own "(XEN)" lines removed); exit status = the command's, 124 on timeout,
# 125 when the markers never showed. The whole serial log, with host-side elapsed-time
# stamps, is kept in $LAB_DIR/last-serial.log.
#
# Environment: LAB_DIR (/var/tmp/xapi-rs-xen-lab), TIMEOUT (900 s for the whole qemu run),
#   QEMU_MEM (1536 MiB), DOM0_MEM (768M: the initramfs is unpacked into half of it, and the
#   debug-built xapi needs ~200 MB; with 384M the image fits, the binaries do not),, SMP (2),
#   QEMU_CPU (max), TB_SIZE (256 MiB TCG cache), GUEST_MEM (128; the Debian kernel alone
#   needs ~58 MiB), MIRROR (default: the first Debian URI in this machine's apt sources),
#   SUITE (bookworm), XEN_EXTRA ("smap=0 smep=0": keep those), DOM0_EXTRA (dom0 kernel args;
#   LAB_XENSTORED=oxenstored picks oxenstored).
# Needs root (debootstrap, chroot) and: qemu-system-x86 debootstrap cpio zstd xz-utils, plus
# libxen-dev to build the binaries. The host's glibc must not be newer than bookworm's.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
LAB_DIR=${LAB_DIR:-/var/tmp/xapi-rs-xen-lab}
TIMEOUT=${TIMEOUT:-900}
QEMU_MEM=${QEMU_MEM:-1536}
DOM0_MEM=${DOM0_MEM:-768M}
SMP=${SMP:-2}
TB_SIZE=${TB_SIZE:-256}
QEMU_CPU=${QEMU_CPU:-max}
GUEST_MEM=${GUEST_MEM:-128}
SUITE=${SUITE:-bookworm}
# With SMAP/SMEP on (TCG's "-cpu max" offers them) the PV dom0 kernel dies at its first
# exception bounce (#PF in create_bounce_frame). With XSAVE on, dom0 processes started while
# a guest with two vCPUs runs now and then die of corrupted vector state (SIGSEGV in libc's
# memcpy, heap aborts: 3 of 12 rounds of a stress loop, twice; 0 of 12 with xsave=0), so
# Xen does not use XSAVE here (no AVX in the lab; nothing needs it).
XEN_EXTRA=${XEN_EXTRA:-smap=0 smep=0 xsave=0}
DOM0_EXTRA=${DOM0_EXTRA:-}
DOM0_MODULES="xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xenfs xen-blkback xen-netback loop bridge tun nbd"

ROOTFS=$LAB_DIR/rootfs
STAGE=$LAB_DIR/stage
log() { printf '[run-nested] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# The Debian mirror this machine's apt already uses (deb822 or one-line sources).
host_mirror() {
    { sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null
      sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\).*/\2/p' /etc/apt/sources.list 2>/dev/null
    } | grep -v -- '-security' | head -n 1
}

# ------------------------------------------------------------------- image ----
build_rootfs() {
    [ -e "$ROOTFS/.debootstrap-done" ] && return 0
    local mirror=${MIRROR:-$(host_mirror)}
    [ -n "$mirror" ] || die "no Debian mirror in this machine's apt sources; set MIRROR"
    log "debootstrap $SUITE into $ROOTFS from $mirror"
    rm -rf "$ROOTFS"; mkdir -p "$LAB_DIR"
    debootstrap --variant=minbase \
        --include=xen-utils-4.17,xen-hypervisor-4.17-amd64,busybox-static,kmod,iproute2,util-linux \
        "$SUITE" "$ROOTFS" "$mirror" >"$LAB_DIR/debootstrap.log" 2>&1 \
        || { tail -20 "$LAB_DIR/debootstrap.log" >&2; exit 1; }
    touch "$ROOTFS/.debootstrap-done"
}

# Packages beyond the debootstrap set: nbd-client connects the daemon's NBD exports of
# VDIs to /dev/nbdN, which blkback serves to guests; qemu-system-xen is the device model of
# HVM guests (with seabios, which hvmloader loads, and VNC). Packages a previous version of
# this list installed are purged.
DOM0_PACKAGES="nbd-client qemu-system-xen"
build_packages() {
    local old p purge=""
    old=$(cat "$ROOTFS/.packages-done" 2>/dev/null || true)
    [ "$old" = "$DOM0_PACKAGES" ] && return 0
    for p in $old; do case " $DOM0_PACKAGES " in *" $p "*) ;; *) purge="$purge $p";; esac; done
    log "installing $DOM0_PACKAGES into the rootfs${purge:+ (purging$purge)}"
    # No services start inside the chroot.
    printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"; chmod 755 "$ROOTFS/usr/sbin/policy-rc.d"
    { [ -z "$purge" ] || DEBIAN_FRONTEND=noninteractive chroot "$ROOTFS" apt-get -q purge -y \
            --autoremove $purge >"$LAB_DIR/packages.log" 2>&1; } &&
        chroot "$ROOTFS" apt-get -q update >>"$LAB_DIR/packages.log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive chroot "$ROOTFS" apt-get -q install -y \
            --no-install-recommends $DOM0_PACKAGES >>"$LAB_DIR/packages.log" 2>&1 \
        || { rm -f "$ROOTFS/usr/sbin/policy-rc.d"; tail -20 "$LAB_DIR/packages.log" >&2; exit 1; }
    rm -f "$ROOTFS/usr/sbin/policy-rc.d"
    chroot "$ROOTFS" apt-get clean
    echo "$DOM0_PACKAGES" >"$ROOTFS/.packages-done"
}

# linux-image-amd64 is a metapackage: fetch the versioned image package with the chroot's
# apt and unpack it beside the rootfs (unpacking straight into the usrmerged rootfs would
# turn its /lib symlink into a directory), without running initramfs-tools.
build_kernel() {
    [ -e "$ROOTFS/.kernel-done" ] && return 0
    local pkg x=$LAB_DIR/kernel-x
    pkg=$(chroot "$ROOTFS" apt-cache depends linux-image-amd64 |
          awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    [ -n "$pkg" ] || die "cannot find the kernel package behind linux-image-amd64"
    log "fetching kernel package $pkg"
    mkdir -p "$ROOTFS/tmp/kdeb"
    chroot "$ROOTFS" sh -c "cd /tmp/kdeb && apt-get -q -o APT::Sandbox::User=root download $pkg" >/dev/null
    rm -rf "$x"; dpkg-deb -x "$ROOTFS"/tmp/kdeb/"$pkg"_*.deb "$x"
    mkdir -p "$ROOTFS/usr/lib/modules"
    for d in "$x/lib/modules" "$x/usr/lib/modules"; do
        if [ -d "$d" ]; then cp -a "$d"/. "$ROOTFS/usr/lib/modules/"; fi
    done
    cp -a "$x"/boot/. "$ROOTFS/boot/"
    rm -rf "$x" "$ROOTFS/tmp/kdeb"
    local kver=${pkg#linux-image-}
    chroot "$ROOTFS" depmod "$kver"
    echo "$kver" >"$ROOTFS/.kernel-done"
}

write_dom0_init() {
    cat >"$ROOTFS/init" <<EOF
#!/bin/sh
# dom0 /init, written by tests/xen/run-nested.sh
export PATH=/usr/lib/xen-4.17/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb
DOM0_MODULES="$DOM0_MODULES"
EOF
    cat >>"$ROOTFS/init" <<'EOF'
up() { cut -d' ' -f1 /proc/uptime; }
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts
# udev would make these; the hotplug scripts' locking spins forever without /dev/stdin
ln -sf /proc/self/fd /dev/fd; ln -sf fd/0 /dev/stdin; ln -sf fd/1 /dev/stdout; ln -sf fd/2 /dev/stderr
mount -t tmpfs tmpfs /run
# The unpacked initramfs is capped at half of dom0's RAM and mostly full: scratch
# directories get their own tmpfs.
for d in /tmp /var/lib/xen /var/log; do mkdir -p $d; mount -t tmpfs tmpfs $d; done
mkdir -p /run/xen /run/xenstored /run/lock /var/log/xen/console
echo "LAB: dom0 /init started, dom0 uptime $(up)s"
for m in $DOM0_MODULES; do modprobe $m || echo "LAB: modprobe $m failed"; done
mount -t xenfs xenfs /proc/xen
hostname dom0
ip link set lo up
XS=xenstored
for a in $(cat /proc/cmdline); do case $a in LAB_XENSTORED=*) XS=${a#LAB_XENSTORED=};; esac; done
/usr/lib/xen-4.17/bin/$XS --pid-file=/run/xenstored.pid
i=0; while ! xenstore-read / >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 100 ] && break; sleep 0.1; done
xen-init-dom0 >/dev/null
xenconsoled --pid-file=/run/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console
echo "LAB: toolstack daemons up ($XS), dom0 uptime $(up)s"
echo "LAB-BEGIN"
if [ -f /lab/cmd.sh ]; then sh /lab/cmd.sh </dev/null 2>&1; rc=$?; else echo "no /lab/cmd.sh"; rc=125; fi
echo "LAB-END rc=$rc dom0_uptime=$(up)"
sync
busybox poweroff -f
echo o >/proc/sysrq-trigger
EOF
    chmod 755 "$ROOTFS/init"
}

write_dom0_helpers() {
    cat >"$ROOTFS/lab/bin/run-guest" <<'EOF'
#!/bin/sh
# run-guest <xl cfg> [timeout-s]: xl create, wait until the domain is gone (the guest
# powers off; on_poweroff=destroy), print its console log and timings.
cfg=$1; to=${2:-300}
name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$cfg")
t0=$(cut -d' ' -f1 /proc/uptime)
xl create "$cfg" || exit 1
t1=$(cut -d' ' -f1 /proc/uptime)
echo "run-guest: xl create took $(awk "BEGIN{print $t1 - $t0}")s"
xl list
i=0
while xl domid "$name" >/dev/null 2>&1; do
    i=$((i+1)); [ $i -gt $((to*2)) ] && { echo "run-guest: TIMEOUT, destroying"; xl destroy "$name"; break; }
    sleep 0.5
done
t2=$(cut -d' ' -f1 /proc/uptime)
echo "run-guest: create -> domain gone: $(awk "BEGIN{print $t2 - $t0}")s"
echo "--- console log of $name ---"
cat /var/log/xen/console/guest-"$name".log 2>/dev/null
grep -q GUEST-INIT-OK /var/log/xen/console/guest-"$name".log 2>/dev/null
EOF
    cat >"$ROOTFS/lab/bin/mkdevs" <<'EOF'
#!/bin/sh
# A 16 MiB backing file with a header the guest can read, and the bridge xenbr0.
dd if=/dev/zero of=/tmp/disk.img bs=1M count=16 2>/dev/null
printf 'DOM0-DISK-HEADER' | dd of=/tmp/disk.img conv=notrunc 2>/dev/null
ip link show xenbr0 >/dev/null 2>&1 ||
    { ip link add name xenbr0 type bridge stp_state 0 forward_delay 0 && ip link set xenbr0 up; }
EOF
    chmod 755 "$ROOTFS/lab/bin/run-guest" "$ROOTFS/lab/bin/mkdevs"
}

# The guest's initramfs: static busybox, the PV block/net front ends, and xenstore-write
# with the shared libraries it needs (so the guest can publish data/ like an agent).
write_guest() {
    local kver=$1 gi=$STAGE/guest-initrd lib
    rm -f "$ROOTFS/lab/guest/vmlinuz"
    extract_vmlinux "$ROOTFS/boot/vmlinuz-$kver" | gzip -1 >"$ROOTFS/lab/guest/vmlinux.gz" \
        || cp "$ROOTFS/boot/vmlinuz-$kver" "$ROOTFS/lab/guest/vmlinux.gz"
    rm -rf "$gi"; mkdir -p "$gi/bin" "$gi/sbin" "$gi/proc" "$gi/sys" "$gi/dev" "$gi/lib"
    cp "$ROOTFS/bin/busybox" "$gi/bin/busybox"
    for a in sh mount echo cat uname sleep ls grep insmod ip head printf dd tr cut; do
        ln -s busybox "$gi/bin/$a"
    done
    cp "$ROOTFS/usr/lib/modules/$kver/kernel/drivers/block/xen-blkfront.ko" \
       "$ROOTFS/usr/lib/modules/$kver/kernel/drivers/net/xen-netfront.ko" "$gi/lib/"
    cp "$ROOTFS/usr/bin/xenstore-write" "$gi/bin/xenstore-write"
    mkdir -p "$gi/lib64" "$gi/usr/lib"
    for lib in $(chroot "$ROOTFS" ldd /usr/bin/xenstore-write | grep -o '/[^ ]*'); do
        mkdir -p "$gi$(dirname "$lib")"
        cp -L "$ROOTFS$lib" "$gi$lib"
    done
    # What the kernel runs on a toolstack "poweroff" request (drivers/xen/manage.c calls
    # orderly_poweroff, which execs /sbin/poweroff): our init is no busybox init, so power
    # off directly.
    printf '#!/bin/sh\necho "GUEST-DONE poweroff requested" >/dev/console\nexec /bin/busybox poweroff -f\n' \
        >"$gi/sbin/poweroff"
    chmod 755 "$gi/sbin/poweroff"
    cat >"$gi/init" <<'GUESTINIT'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
# A toolstack reboot request makes the kernel call ctrl_alt_del(): restart at once rather
# than signal this init, which has no reboot handling.
echo 1 >/proc/sys/kernel/ctrl-alt-del
echo "GUEST-INIT-OK kernel=$(uname -r) uptime=$(cat /proc/uptime) $(grep MemTotal /proc/meminfo)"
echo "GUEST: hypervisor=$(cat /sys/hypervisor/type 2>/dev/null) xenbus: $(ls /sys/bus/xen/devices 2>/dev/null | tr '\n' ' ')"
echo "GUEST: cmdline $(cat /proc/cmdline)"
# Publish a little guest-agent data (relative paths are under the domain's home).
xenstore-write data/os_version/name "lab guest" data/os_version/uname "$(uname -r)" \
    data/updated 1 && echo "GUEST: wrote data/os_version"
if ls /sys/bus/xen/devices | grep -q -e vbd -e vif; then
    insmod /lib/xen-blkfront.ko; insmod /lib/xen-netfront.ko
    i=0; while [ ! -b /dev/xvda ] && [ $i -lt 50 ]; do sleep 0.2; i=$((i+1)); done
    echo "GUEST: partitions: $(grep -v major /proc/partitions | tr -s ' \n' ' ')"
    echo "GUEST: links: $(ip -o link | cut -d' ' -f2 | tr '\n' ' ')"
    if [ -b /dev/xvda ]; then
        echo "GUEST: xvda starts with: $(head -c 16 /dev/xvda)"
        printf 'GUEST-WROTE-THIS' | dd of=/dev/xvda bs=512 seek=1 conv=notrunc,fsync 2>/dev/null \
            && echo "GUEST: wrote sector 1"
    fi
fi
if grep -q lab_wait /proc/cmdline; then
    echo "GUEST: waiting for the toolstack"
    while :; do sleep 3600; done
fi
echo "GUEST-DONE powering off"
/bin/busybox poweroff -f
GUESTINIT
    chmod 755 "$gi/init"
    (cd "$gi" && find . | cpio -o -H newc 2>/dev/null) >"$ROOTFS/lab/guest/initrd.cpio"

    # A disk pygrub can boot: a whole-disk ext2 file system (no partition table) holding the
    # kernel, the initrd and a grub2 menu whose default entry makes the guest wait.
    local bd=$STAGE/pygrub-root
    rm -rf "$bd"; mkdir -p "$bd/boot/grub"
    cp "$ROOTFS/lab/guest/vmlinux.gz" "$ROOTFS/lab/guest/initrd.cpio" "$bd/boot/"
    cat >"$bd/boot/grub/grub.cfg" <<'GRUBCFG'
set default=0
set timeout=0
menuentry 'lab guest (pygrub)' {
    linux /boot/vmlinux.gz console=hvc0 loglevel=4 lab_wait lab_pygrub
    initrd /boot/initrd.cpio
}
menuentry 'wrong entry' {
    linux /boot/missing-kernel
}
GRUBCFG
    rm -f "$ROOTFS/lab/guest/pygrub.img"
    mke2fs -q -F -t ext2 -L labboot -d "$bd" "$ROOTFS/lab/guest/pygrub.img" 32M >/dev/null \
        || die "mke2fs -d failed (e2fsprogs >= 1.43 needed)"
    rm -rf "$bd"

    local t name type extra
    for t in pv pvh pv-dev; do
        name=tiny${t//-/}; type=${t%-dev}
        case $t in
            # TCG's SVM reports RDTSCP exits as RDTSC: never intercept the TSC
            pvh) extra='tsc_mode = "native"' ;;
            pv-dev) extra=$'disk = [ "format=raw,vdev=xvda,access=rw,backendtype=phy,target=/tmp/disk.img" ]\nvif = [ "bridge=xenbr0,mac=00:16:3e:00:00:01" ]' ;;
            *) extra= ;;
        esac
        cat >"$ROOTFS/lab/guest/$t.cfg" <<CFG
name = "$name"
type = "$type"
kernel = "/lab/guest/vmlinux.gz"
ramdisk = "/lab/guest/initrd.cpio"
extra = "console=hvc0 loglevel=4"
memory = $GUEST_MEM
vcpus = 1
on_poweroff = "destroy"
on_crash = "destroy"
$extra
CFG
    done
}

# bzImage -> ELF vmlinux (boot protocol >= 2.08: payload offset/length at 0x248/0x24c,
# relative to the protected-mode code at (setup_sects + 1) * 512).
extract_vmlinux() {
    local f=$1 ss off len
    ss=$(od -An -t u1 -j $((0x1f1)) -N 1 "$f" | tr -d ' ')
    off=$(od -An -t u4 -j $((0x248)) -N 4 "$f" | tr -d ' ')
    len=$(od -An -t u4 -j $((0x24c)) -N 4 "$f" | tr -d ' ')
    # tail dies of SIGPIPE once head has its bytes: no pipefail here
    ( set +o pipefail
      tail -c +$(( (ss + 1) * 512 + off + 1 )) "$f" | head -c "$len" >"$STAGE/payload" )
    # --single-stream: the kernel appends a 4-byte size after the xz stream
    case $(od -An -t x1 -N 2 "$STAGE/payload" | tr -d ' ') in
        fd37) xz -dc --single-stream "$STAGE/payload" ;;
        1f8b) zcat "$STAGE/payload" ;;
        28b5) zstd -dc "$STAGE/payload" ;;
        *) return 1 ;;
    esac
}

# dom0's initramfs: the rootfs without docs, caches, perl, python's test suite and all but the
# modules dom0 loads (with their dependencies), zstd-compressed (dom0 holds ~2x its size in
# RAM). Python stays: pygrub is a python program.
build_base_cpio() {
    local kver=$1 list=$STAGE/files.list
    log "packing dom0 initramfs"
    (
        cd "$ROOTFS"
        find . -xdev \
            \( -path ./usr/share/doc -o -path ./usr/share/man -o -path ./usr/share/locale \
               -o -path ./usr/share/info -o -path ./usr/share/i18n -o -path ./usr/share/zoneinfo \
               -o -path './usr/lib/python3.*/test' -o -path './usr/lib/python3.*/idlelib' \
               -o -path './usr/lib/python3.*/ensurepip' -o -path './usr/lib/python3.*/lib2to3' \
               -o -path './usr/lib/python3.*/pydoc_data' -o -path './usr/lib/python3.*/tkinter' \
               -o -path ./var/cache/apt -o -path ./var/lib/apt/lists \
               -o -path ./usr/lib/modules -o -path ./boot -o -path ./tmp/kdeb \
               -o -path ./usr/lib/x86_64-linux-gnu/gconv -o -path ./usr/lib/x86_64-linux-gnu/perl-base \
               -o -path './usr/lib/udev/hwdb*' -o -path './usr/bin/perl*' \
               -o -path ./usr/lib/xen-4.17/boot/xen-shim -o -path ./usr/lib/ipxe \
               -o -path ./.packages-done \
               -o -path ./.debootstrap-done -o -path ./.kernel-done \) -prune -o -print
        echo ./usr/lib/modules; echo "./usr/lib/modules/$kver"
        ls -d ./usr/lib/modules/"$kver"/modules.*
        for m in $DOM0_MODULES; do
            chroot . modprobe -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1=="insmod"{print "."$2}'
        done | sed 's#^\./lib/#./usr/lib/#' | sort -u | while read -r f; do
            d=$(dirname "$f")
            while [ "$d" != ./usr/lib/modules/"$kver" ] && [ "$d" != . ]; do echo "$d"; d=$(dirname "$d"); done
            echo "$f"
        done | sort -u
        # The last member of the archive has been seen missing after unpacking (llc.ko, so
        # no bridge module): end with a marker file nobody needs.
        echo ./lab/end-of-image
    ) >"$list"
    (cd "$ROOTFS" && cpio -o -H newc <"$list" 2>/dev/null) | zstd -q -3 -T0 >"$STAGE/dom0-base.cpio"
}

# What the image depends on: this script and the settings baked into it.
image_stamp() { { cat "$0"; echo "$GUEST_MEM $SUITE"; } | sha256sum | cut -d' ' -f1; }

do_build() {
    [ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot)"
    mkdir -p "$LAB_DIR" "$STAGE"
    local t0=$SECONDS kver
    build_rootfs
    build_kernel
    build_packages
    kver=$(cat "$ROOTFS/.kernel-done")
    mkdir -p "$ROOTFS/lab/bin" "$ROOTFS/lab/guest"
    touch "$ROOTFS/lab/end-of-image"
    write_dom0_init
    write_dom0_helpers
    write_guest "$kver"
    build_base_cpio "$kver"
    zcat "$ROOTFS"/boot/xen-4.17-amd64.gz >"$STAGE/xen.elf"   # qemu's multiboot wants plain ELF
    cp "$ROOTFS/boot/vmlinuz-$kver" "$STAGE/vmlinuz"
    image_stamp >"$STAGE/image.stamp"
    log "image built in $((SECONDS - t0))s: $(du -h "$STAGE/dom0-base.cpio" | cut -f1) initramfs"
}

ensure_image() {
    if [ -e "$STAGE/dom0-base.cpio" ] && [ "$(cat "$STAGE/image.stamp" 2>/dev/null)" = "$(image_stamp)" ]; then
        return 0
    fi
    do_build
}

# --------------------------------------------------------------------- run ----
do_run() {
    local cmd=$STAGE/cmd
    [ "$(id -u)" = 0 ] || die "must run as root"
    ensure_image
    rm -rf "$cmd.d"; mkdir -p "$cmd.d/lab/add"
    while [ "${1:-}" = -a ]; do cp -a "$2" "$cmd.d/lab/add/"; shift 2; done
    if [ "${1:-}" = -f ]; then cp "$2" "$cmd.d/lab/cmd.sh"; else printf '%s\n' "$*" >"$cmd.d/lab/cmd.sh"; fi
    # A small uncompressed archive with /lab/cmd.sh and /lab/add/*, placed BEFORE the zstd
    # one: the kernel merges concatenated archives but drops whatever follows a compressed one.
    (cd "$cmd.d" && find . | cpio -o -H newc 2>/dev/null) >"$STAGE/cmd.cpio"
    cat "$STAGE/cmd.cpio" "$STAGE/dom0-base.cpio" >"$STAGE/dom0-run.cpio"

    local xen_args="console=com1 com1=115200,8n1 dom0_mem=$DOM0_MEM,max:$DOM0_MEM dom0_max_vcpus=1 loglvl=all guest_loglvl=all $XEN_EXTRA"
    local dom0_args="console=hvc0 earlyprintk=xen rdinit=/init loglevel=4 $DOM0_EXTRA"
    # qemu's multiboot -initrd: comma-separated "file args" modules; a ',' in args is ',,'
    local mods="$STAGE/vmlinuz ${dom0_args//,/,,},$STAGE/dom0-run.cpio"
    local serial=$LAB_DIR/last-serial.log
    log "booting (timeout ${TIMEOUT}s, qemu -m $QEMU_MEM, dom0_mem=$DOM0_MEM, -smp $SMP, TCG)"
    local start=${EPOCHREALTIME/./} rc
    set +e
    timeout --foreground -k 5 "$TIMEOUT" \
        qemu-system-x86_64 -accel "tcg,tb-size=$TB_SIZE" -cpu "$QEMU_CPU" -smp "$SMP" -m "$QEMU_MEM" \
            -nographic -no-reboot -nic none -monitor none -serial stdio \
            -kernel "$STAGE/xen.elf" -append "$xen_args" -initrd "$mods" </dev/null 2>&1 |
        while IFS= read -r line; do
            local now=${EPOCHREALTIME/./} cs
            cs=$(( (now - start) / 10000 ))
            printf '[%4d.%02d] %s\n' $((cs / 100)) $((cs % 100)) "${line%$'\r'}"
        done >"$serial"
    rc=${PIPESTATUS[0]}
    set -e
    local total=$(( (${EPOCHREALTIME/./} - start) / 1000000 ))
    sed -n '/LAB-BEGIN/,/LAB-END/p' "$serial" | sed -e 's/^\[[ 0-9.]*\] //' \
        | grep -a -v -e '^LAB-BEGIN' -e '^LAB-END' -e '^(XEN) ' || true
    grep -m1 -a 'Xen version' "$serial" | sed 's/^/# /' >&2 || true
    grep -a -E 'LAB: |LAB-END' "$serial" | sed 's/^/# /' >&2 || true
    log "qemu exited rc=$rc after ${total}s; full serial log: $serial"
    [ "$rc" = 124 ] && { log "TIMEOUT"; return 124; }
    local crc; crc=$(sed -n 's/.*LAB-END rc=\([0-9]*\).*/\1/p' "$serial" | head -1)
    [ -n "$crc" ] || { log "command markers not found (boot failure?)"; return 125; }
    return "$crc"
}

# ------------------------------------------------------------------- tests ----
# Builds (unless given) the xen-featured xapi and xe, stripped copies in $STAGE/bin.
binaries() {
    local profile=${CARGO_PROFILE:-dev} dir target
    if [ -z "${XAPI_BIN:-}" ] || [ -z "${XE_BIN:-}" ]; then
        log "building xapi (--features xen) and xe ($profile profile)"
        (cd "$REPO" && cargo build --profile "$profile" -p xapi-daemon --features xen --bin xapi \
            && cargo build --profile "$profile" -p xe-cli --bin xe) >&2
        target=${CARGO_TARGET_DIR:-$REPO/target}
        case $profile in dev) dir=debug ;; *) dir=$profile ;; esac
        XAPI_BIN=${XAPI_BIN:-$target/$dir/xapi}
        XE_BIN=${XE_BIN:-$target/$dir/xe}
    fi
    [ -x "$XAPI_BIN" ] || die "no xapi binary at $XAPI_BIN"
    [ -x "$XE_BIN" ] || die "no xe binary at $XE_BIN"
    # dom0's rootfs is its initramfs, in RAM and nearly full: ship the binaries stripped and
    # gzip'd, for dom0 to unpack into a tmpfs.
    rm -rf "$STAGE/bin"; mkdir -p "$STAGE/bin"
    objcopy --strip-all "$XAPI_BIN" "$STAGE/bin/xapi"
    objcopy --strip-all "$XE_BIN" "$STAGE/bin/xe"
    tar -C "$STAGE/bin" -cf - xapi xe | gzip -1 >"$STAGE/bins.tar.gz"
}

do_tests() {
    local t0=$SECONDS rc=0 out=$LAB_DIR/last-tests.log
    [ "$(id -u)" = 0 ] || die "must run as root"
    binaries
    ensure_image
    do_run -a "$STAGE/bins.tar.gz" -a "$HERE/dom0-tests.sh" \
        'mkdir -p /tmp/lab-add && gzip -dc /lab/add/bins.tar.gz | tar -xf - -C /tmp/lab-add &&
         rm /lab/add/bins.tar.gz && LAB_ADD=/tmp/lab-add sh /lab/add/dom0-tests.sh' | tee "$out" || rc=$?
    local summary
    summary=$(grep -a -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1 || true)
    log "${summary:-no summary (the dom0 test script did not finish)}; rc=$rc; wall $((SECONDS - t0))s"
    [ "$rc" = 0 ] && [ -n "$summary" ] || exit 1
}

case "${1:-}" in
    "") do_tests ;;
    build) do_build ;;
    run) shift; do_run "$@" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 2 ;;
esac
