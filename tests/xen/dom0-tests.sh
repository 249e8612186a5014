#!/bin/sh
# dom0-tests.sh -- run in a Xen dom0 by run-nested.sh (POSIX sh: dom0's /bin/sh is dash).
# Starts `xapi --backend xen`, then drives it with `xe` over the unix socket and checks every
# step against the hypervisor's own view (`xl info`, `xl list -v`, xenconsoled's logs):
# the host record, a PV guest (start paused, console, guest data, pause/unpause,
# clean_shutdown, hard_shutdown, a guest that powers itself off), a PV guest suspended to a
# file and resumed, given a live memory target and a hot-plugged vcpu, a PVH guest, and a PV
# guest with a disk on the default SR and a VIF on xenbr0.
# Prints `N passed, M failed`; exits 1 on any failure.
#
# Environment: LAB_ADD (/lab/add: where xapi and xe are), XAPI_STATE (/tmp/xapi),
# LAB_GUEST (/lab/guest), GUEST_MEM_MIB (128), BOOT_WAIT (s to wait for a guest's console,
# 90), BACKEND (xen; `sim` runs the XenAPI half against the simulated host, skipping the
# hypervisor-side checks, to debug this script without Xen), XAPI_HTTP (127.0.0.1:8080: a plain
# HTTP listener for the session login made with wget and the CONNECT /console requests).

ADD=${LAB_ADD:-/lab/add}
STATE=${XAPI_STATE:-/tmp/xapi}
GUEST=${LAB_GUEST:-/lab/guest}
MEM=$(( ${GUEST_MEM_MIB:-128} * 1048576 ))
BOOT_WAIT=${BOOT_WAIT:-90}
BACKEND=${BACKEND:-xen}
HTTP_ADDR=${XAPI_HTTP:-127.0.0.1:8080}
export XE_SOCKET=$STATE/xapi.sock HOME=$STATE
XE=$ADD/xe
PASSED=0 FAILED=0
T_START=$(cut -d' ' -f1 /proc/uptime)

say() { echo "# $*"; }
ok() { PASSED=$((PASSED + 1)); echo "ok   $*"; }
not_ok() { FAILED=$((FAILED + 1)); echo "FAIL $*"; }
# check DESCRIPTION COMMAND...: one test, passed when the command succeeds.
check() { d=$1; shift; if "$@"; then ok "$d"; else not_ok "$d"; fi; }
# eq DESCRIPTION GOT WANT
eq() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1: got '$2', want '$3'"; fi; }
on_xen() { [ "$BACKEND" = xen ]; }
now() { cut -d' ' -f1 /proc/uptime; }
since() { awk "BEGIN{printf \"%.1f\", $(now) - $1}"; }

finish() {
    if [ -n "${XAPI_PID:-}" ]; then
        kill "$XAPI_PID" 2>/dev/null
        if [ "$FAILED" != 0 ]; then say "--- xapi log (last 60 lines) ---"; tail -n 60 "$STATE/xapi.log"; fi
    fi
    echo "$PASSED passed, $FAILED failed (dom0 wall $(since "$T_START")s)"
    [ "$FAILED" = 0 ]
    exit $?
}

xe() { "$XE" "$@"; }
quiet() { "$@" >/dev/null; }
# xe_get CLASS UUID PARAM [KEY]
xe_get() {
    if [ -n "${4:-}" ]; then xe "$1-param-get" uuid="$2" param-name="$3" param-key="$4"
    else xe "$1-param-get" uuid="$2" param-name="$3"; fi
}
power() { xe_get vm "$1" power-state 2>&1; }

# `xl list -v`. If xl fails (it died of SIGSEGV in the lab before Xen ran with xsave=0: see
# run-nested.sh), the failure is printed with the kernel's segfault report, so a check that
# then reads "no domain" shows why.
xl_list_v() {
    out=$(xl list -v 2>/dev/null); rc=$?
    if [ "$rc" = 0 ]; then printf '%s\n' "$out"; return 0; fi
    echo "# xl list -v failed (exit $rc): $(dmesg 2>/dev/null | grep -i segfault | tail -n 1)" >&2
    return 1
}

# The state xl reports for the domain whose handle is VM uuid $1: Running, Paused, Halted
# (no domain) or the raw flags.
xl_state() {
    flags=$(xl_list_v | awk -v u="$1" '$7 == u { print $5 }')
    case $flags in
        "") echo halted ;;
        *p*) echo paused ;;
        *s*|*c*|*d*) echo "xl:$flags" ;;
        *) echo running ;;
    esac
}

# wait_for SECONDS COMMAND...: retry every 0.5 s until the command succeeds, at most
# SECONDS of wall time (under TCG one xe call alone takes about a second).
wait_for() {
    w_end=$(awk "BEGIN{print $(now) + $1}"); shift
    while ! "$@" >/dev/null 2>&1; do
        awk "BEGIN{exit !($(now) < $w_end)}" || return 1
        sleep 0.5
    done
}

# `xe vm-list` (non-control VMs that are not templates) as "uuid state" lines.
xe_states() {
    xe vm-list is-control-domain=false params=uuid,power-state |
        awk -F': ' '/^uuid/ { u = $2 } /power-state/ { print u, $2 }' | sort
}
# The same from `xl list -v` for the VMs of `xe_states` output $1, then any other domain
# but dom0 as "uuid unknown-to-xapi".
xl_states() {
    for u in $(echo "$1" | cut -d' ' -f1); do echo "$u $(xl_state "$u")"; done
    xl_list_v | awk 'NR > 1 && $2 != 0 { print $7 }' | while read -r u; do
        echo "$1" | grep -q "^$u " || echo "$u unknown-to-xapi"
    done
}
# agree STEP: `xl list` and `VM.get_all_records` tell the same story. The daemon follows the
# hypervisor asynchronously (a guest that reboots by itself, e.g. a TCG triple fault at boot,
# is restarted by the monitor), so the two get SETTLE seconds to agree; a late agreement is
# reported as a diagnostic line, a lasting disagreement fails.
SETTLE=${SETTLE:-20}
agree() {
    on_xen || return 0
    g_end=$(awk "BEGIN{print $(now) + $SETTLE}"); g_t=$(now)
    while :; do
        a=$(xe_states | sed 's/ suspended$/ halted/'); b=$(xl_states "$a" | sort)
        [ "$a" = "$b" ] && break
        awk "BEGIN{exit !($(now) < $g_end)}" || break
        say "$1: xe [$a] and xl [$b] differ; looking again"
        sleep 1
    done
    if [ "$a" = "$b" ]; then ok "$1: xl list agrees with xe vm-list"
    else not_ok "$1: xl list disagrees with xe vm-list: xe [$a] xl [$b]"; fi
}
# state STEP VM WANT: xe's power-state (and xl's) is WANT.
xl_state_is() { [ "$(xl_state "$1")" = "$2" ]; }
state() {
    eq "$1: power-state" "$(power "$2")" "$3"
    if on_xen; then
        wait_for "$SETTLE" xl_state_is "$2" "$3" ||
            say "$1: xl state still $(xl_state "$2") after ${SETTLE}s"
        eq "$1: xl state" "$(xl_state "$2")" "$3"
    fi
    agree "$1"
}

# The console log of VM $1's current domain (xenconsoled names it after the domain).
console_of() {
    on_xen || return 0
    domid=$(xe_get vm "$1" dom-id 2>/dev/null)
    name=$(xl domname "$domid" 2>/dev/null)
    [ -n "$name" ] && cat "/var/log/xen/console/guest-$name.log" 2>/dev/null
}
console_has() { console_of "$1" | grep -q "$2"; }
# The name is fixed when the domain is built: remember the log to read it after the end.
log_file_of() {
    domid=$(xe_get vm "$1" dom-id 2>/dev/null)
    echo "/var/log/xen/console/guest-$(xl domname "$domid" 2>/dev/null).log"
}
saw_console() {
    on_xen || { ok "$1: console (skipped without xen)"; return; }
    if wait_for "$BOOT_WAIT" grep -q "$3" "$2"; then ok "$1: console shows $3"
    else not_ok "$1: console never showed $3"; say "console ($2):"; cat "$2" 2>/dev/null | tail -n 20; fi
}

# console_connect CONSOLE_UUID SECONDS: CONNECT /console on the HTTP listener with the
# session, then print whatever comes back (the 200 line, then the console's bytes).
console_connect() {
    { printf 'CONNECT /console?uuid=%s&session_id=%s HTTP/1.0\r\n\r\n' "$1" "$session"
      sleep "$2"; } | timeout $(( $2 + 2 )) busybox nc "${HTTP_ADDR%:*}" "${HTTP_ADDR##*:}" 2>/dev/null
}

# boot_disk FILE: a 1 MiB raw disk whose boot sector prints HVM-BOOT-OK to Xen's debug port
# (0xe9) and COM1 every second: cli; cld; xor ax,ax; mov ds,ax; sti; mov si,msg;
# next: lodsb; test al,al; jz pause; out 0xe9,al; mov dx,0x3f8; out dx,al; jmp next;
# pause: mov ah,0x86; mov cx,0x000f; mov dx,0x4240; int 0x15 (wait 1 s); jmp to mov si.
boot_disk() {
    dd if=/dev/zero of="$1" bs=1M count=1 2>/dev/null
    for b_hex in fa fc 31 c0 8e d8 fb be 23 7c ac 84 c0 74 08 e6 e9 ba f8 03 ee eb f3 \
        b4 86 b9 0f 00 ba 40 42 cd 15 eb e4; do
        printf "\\$(printf %03o "0x$b_hex")"
    done >"$1.code"
    printf 'HVM-BOOT-OK\r\n\000' >>"$1.code"
    dd if="$1.code" of="$1" conv=notrunc 2>/dev/null
    printf '\125\252' | dd of="$1" bs=1 seek=510 conv=notrunc 2>/dev/null
    rm -f "$1.code"
}

# new_vm NAME TYPE ARGS: a VM from the "Other install media" template, turned into a
# direct-boot guest of the lab kernel.
new_vm() {
    v=$(xe vm-install template="Other install media" new-name-label="$1") || return 1
    xe vm-param-set uuid="$v" HVM-boot-policy= domain-type="$2" \
        PV-kernel="$GUEST/vmlinux.gz" PV-ramdisk="$GUEST/initrd.cpio" PV-args="$3" \
        memory-static-min="$MEM" memory-dynamic-min="$MEM" memory-dynamic-max="$MEM" \
        memory-static-max="$MEM" VCPUs-max=1 VCPUs-at-startup=1 actions-after-crash=destroy >&2 ||
        return 1
    echo "$v"
}

# api METHOD ARG...: one XML-RPC call over the HTTP listener (raw HTTP needs a session); the
# arguments are sent as bare values (text, so strings and ints alike), the session first.
# Prints the response's Value, fails unless the Status is Success.
if command -v wget >/dev/null 2>&1; then WGET=wget; else WGET="busybox wget"; fi
api() {
    a_body="<?xml version=\"1.0\"?><methodCall><methodName>$1</methodName><params>"; shift
    for a_arg; do a_body="$a_body<param><value>$a_arg</value></param>"; done
    a_out=$($WGET -q -O - --header 'Content-Type: text/xml' --post-data "$a_body</params></methodCall>" \
        "http://$HTTP_ADDR/") || { echo "api: no answer from $HTTP_ADDR" >&2; return 1; }
    case $a_out in
        *"<name>Status</name><value>Success</value>"*) ;;
        *) echo "api: $a_out" >&2; return 1 ;;
    esac
    echo "$a_out" | tr -d '\n' |
        sed -n 's|.*<name>Value</name><value>\(<string>\)\{0,1\}\([^<]*\)<.*|\2|p'
}

# --------------------------------------------------------------- the daemon ----
say "backend $BACKEND; $(uname -r); xapi $(ls -l "$ADD/xapi" | awk '{print $5}') bytes"
mkdir -p "$STATE"
t=$(now)
NO_COLOR=1 XAPI_ROOT_PASSWORD=lab-root XAPI_LOG=${XAPI_LOG:-info} "$ADD/xapi" --backend "$BACKEND" \
    --state-dir "$STATE" --http "$HTTP_ADDR" --https off --socket "$XE_SOCKET" >"$STATE/xapi.log" 2>&1 &
XAPI_PID=$!
ready_or_dead() { grep -q '^xapi: ready' "$STATE/xapi.log" || ! kill -0 "$XAPI_PID" 2>/dev/null; }
wait_for 120 ready_or_dead
if grep -q '^xapi: ready' "$STATE/xapi.log"; then
    ok "xapi --backend $BACKEND is ready after $(since "$t")s"
else
    not_ok "xapi --backend $BACKEND did not become ready"
    cat "$STATE/xapi.log"
    XAPI_PID=
    finish
fi

# --------------------------------------------------------------------- host ----
host=$(xe host-list --minimal)
check "one host" [ -n "$host" ]
if on_xen; then
    xl info >"$STATE/xl-info"
    info() { awk -F': *' -v k="$1" '$1 ~ "^"k" *$" { print $2 }' "$STATE/xl-info"; }
    eq "host memory-total = xl info total_memory" \
        "$(( $(xe_get host "$host" memory-total) / 1048576 ))" "$(info total_memory)"
    eq "host CPUs = xl info nr_cpus" \
        "$(xe host-cpu-list host-uuid="$host" --minimal | tr ',' '\n' | grep -c .)" "$(info nr_cpus)"
    eq "host cpu_info:cpu_count = xl info nr_cpus" \
        "$(xe_get host "$host" cpu_info cpu_count)" "$(info nr_cpus)"
    eq "host software-version:xen = xl info xen_version" \
        "$(xe_get host "$host" software-version xen)" \
        "$(info xen_major).$(info xen_minor)$(info xen_extra)"
fi
dom0=$(xe vm-list is-control-domain=true --minimal)
check "the control domain is listed" [ -n "$dom0" ]
eq "dom0 is running" "$(power "$dom0")" running
eq "dom0 has domid 0" "$(xe_get vm "$dom0" dom-id)" 0
agree "start"

# ----------------------------------------------------------------- PV guest ----
say "PV guest"
vm=$(new_vm lab-pv pv "console=hvc0 loglevel=4 lab_wait")
check "vm-install from a template + PV kernel/ramdisk" [ -n "$vm" ]
t=$(now)
check "vm-start paused=true" xe vm-start uuid="$vm" paused=true
say "vm-start paused took $(since "$t")s"
state "started paused" "$vm" paused
log=$(on_xen && log_file_of "$vm")
check "vm-unpause" xe vm-unpause uuid="$vm"
state "unpaused" "$vm" running
saw_console "pv" "$log" GUEST-INIT-OK
say "boot to GUEST-INIT-OK: $(since "$t")s"
# The lab guest writes data/os_version/name; the simulated one reports SimLinux.
os_name="lab guest"; on_xen || os_name=SimLinux
if wait_for 30 sh -c "'$XE' vm-param-get uuid=$vm param-name=os-version | grep -q '$os_name'"; then
    ok "guest data/os_version reaches VM_guest_metrics"
else
    not_ok "guest metrics: os-version '$(xe_get vm "$vm" os-version 2>&1)'"
    if on_xen; then
        say "xenstore of the domain:"; xenstore-ls -p "/local/domain/$(xe_get vm "$vm" dom-id)" 2>&1 | head -40
        say "console:"; cat "$log"
    fi
fi
check "vm-pause" xe vm-pause uuid="$vm"
state "paused" "$vm" paused
check "vm-unpause again" xe vm-unpause uuid="$vm"
state "running again" "$vm" running
t=$(now)
check "vm-shutdown (clean)" xe vm-shutdown uuid="$vm"
say "clean shutdown took $(since "$t")s"
state "clean_shutdown" "$vm" halted
on_xen && check "the guest saw the poweroff request" grep -q "GUEST-DONE poweroff requested" "$log"
check "vm-start" xe vm-start uuid="$vm"
state "started" "$vm" running
log=$(on_xen && log_file_of "$vm")
saw_console "pv again" "$log" GUEST-INIT-OK
# Reboots build a new domain: clean through the PV control node (the lab guest's kernel
# restarts at once on the request), hard by destroying the old one. xenconsoled appends
# each boot of the same domain name to one log.
boots() { grep -c GUEST-INIT-OK "$log" 2>/dev/null; }
booted_again() { [ "$(boots)" -gt "$1" ]; }
for kind in clean hard; do
    before=$(xe_get vm "$vm" dom-id); n=$(on_xen && boots)
    if [ $kind = clean ]; then check "vm-reboot (clean)" xe vm-reboot uuid="$vm"
    else check "vm-reboot --force (hard)" xe vm-reboot uuid="$vm" --force; fi
    state "$kind reboot" "$vm" running
    check "the $kind reboot built a new domain" [ "$(xe_get vm "$vm" dom-id)" != "$before" ]
    on_xen && check "the guest booted again after the $kind reboot" \
        wait_for "$BOOT_WAIT" booted_again "$n"
done
check "vm-shutdown --force (hard)" xe vm-shutdown uuid="$vm" --force
state "hard_shutdown" "$vm" halted

say "a guest that powers itself off"
xe vm-param-set uuid="$vm" PV-args="console=hvc0 loglevel=4" >/dev/null
check "vm-start" xe vm-start uuid="$vm"
if on_xen; then
    if wait_for "$BOOT_WAIT" sh -c "[ \"\$('$XE' vm-param-get uuid=$vm param-name=power-state)\" = halted ]"; then
        ok "the guest's own poweroff ends Halted"
    else
        not_ok "after the guest's own poweroff: power-state $(power "$vm")"
    fi
    state "self poweroff" "$vm" halted
fi
xe vm-shutdown uuid="$vm" --force >/dev/null 2>&1
check "vm-uninstall" quiet xe vm-uninstall uuid="$vm" force=true

# --------------------------------------------- suspend/resume, memory, vcpus ----
say "PV guest: suspend/resume, memory target, vcpu hot-plug"
vm=$(new_vm lab-sr pv "console=hvc0 loglevel=4 lab_wait")
check "vm-install sr" [ -n "$vm" ]
LOW=$(( MEM * 3 / 4 ))
xe vm-param-set uuid="$vm" VCPUs-max=2 memory-static-min="$LOW" memory-dynamic-min="$LOW" >/dev/null
check "vm-start sr (VCPUs-max 2)" xe vm-start uuid="$vm"
state "sr started" "$vm" running
log=$(on_xen && log_file_of "$vm")
saw_console "sr" "$log" "GUEST: waiting for the toolstack"
t=$(now)
check "vm-suspend" xe vm-suspend uuid="$vm"
say "suspend took $(since "$t")s"
eq "suspended: power-state" "$(power "$vm")" suspended
# A suspended VM has no domain: xl must not list it (agree reads Suspended as no domain).
on_xen && eq "suspended: xl lists no domain" "$(xl_state "$vm")" halted
agree "suspended"
t=$(now)
check "vm-resume" xe vm-resume uuid="$vm"
say "resume took $(since "$t")s"
state "resumed" "$vm" running
if on_xen; then
    domid=$(xe_get vm "$vm" dom-id)
    check "the resumed domain's xenstore answers" quiet xenstore-read "/local/domain/$domid/name"
    eq "the resumed domain has the VM's name" "$(xl domname "$domid" 2>/dev/null)" \
        "$(xenstore-read "/local/domain/$domid/name" 2>/dev/null)"
fi
check "vm-memory-target-set while running" quiet xe vm-memory-target-set uuid="$vm" target="$LOW"
eq "memory-dynamic-max after the change" "$(xe_get vm "$vm" memory-dynamic-max)" "$LOW"
if on_xen; then
    eq "xenstore memory/target (KiB)" \
        "$(xenstore-read "/local/domain/$domid/memory/target" 2>/dev/null)" "$(( LOW / 1024 ))"
fi
if on_xen; then
    eq "xl list shows 1 online vcpu" "$(xl list "$domid" | awk 'NR == 2 { print $4 }')" 1
    eq "xenstore cpu/1/availability before hot-plug" \
        "$(xenstore-read "/local/domain/$domid/cpu/1/availability" 2>/dev/null)" offline
fi
check "vm-vcpu-hotplug new-vcpus=2" quiet xe vm-vcpu-hotplug uuid="$vm" new-vcpus=2
eq "VCPUs-at-startup after hot-plug" "$(xe_get vm "$vm" VCPUs-at-startup)" 2
if on_xen; then
    # libxl marks vcpu 1 available in xenstore (the guest kernel then makes it present; bringing
    # it on line is udev's job, and the lab guest has no udev, so xl list's count stays 1).
    eq "xenstore cpu/1/availability" \
        "$(xenstore-read "/local/domain/$domid/cpu/1/availability" 2>/dev/null)" online
fi
# A local migration (xe vm-migrate: VM.pool_migrate to the one host): the guest moves to a
# new domain through libxl's save stream and keeps its memory target and vCPUs.
old_domid=$(xe_get vm "$vm" dom-id)
t=$(now)
check "vm-migrate to this host" quiet xe vm-migrate uuid="$vm" host="$host"
say "local migration took $(since "$t")s"
state "migrated" "$vm" running
if on_xen; then
    domid=$(xe_get vm "$vm" dom-id)
    check "the migrated guest runs in a new domain" [ "$domid" != "$old_domid" ]
    eq "xenstore memory/target after migration (KiB)" \
        "$(xenstore-read "/local/domain/$domid/memory/target" 2>/dev/null)" "$(( LOW / 1024 ))"
    eq "xenstore cpu/1/availability after migration (the hot-plugged vcpu moved too)" \
        "$(xenstore-read "/local/domain/$domid/cpu/1/availability" 2>/dev/null)" online
    check "no migration stream is left behind" \
        sh -c "[ -z \"\$(ls '$STATE'/migration 2>/dev/null)\" ]"
fi
check "vm-shutdown sr (clean)" xe vm-shutdown uuid="$vm"
state "sr clean_shutdown" "$vm" halted
on_xen && check "the resumed guest saw the poweroff request" \
    grep -q "GUEST-DONE poweroff requested" "$log"
check "vm-uninstall sr" quiet xe vm-uninstall uuid="$vm" force=true

# ---------------------------------------------------------------- PVH guest ----
say "PVH guest"
vm=$(new_vm lab-pvh pvh "console=hvc0 loglevel=4 lab_wait")
check "vm-install pvh" [ -n "$vm" ]
# TCG's SVM reports RDTSCP exits as RDTSC: never intercept the TSC.
xe vm-param-set uuid="$vm" platform:tsc_mode=native >/dev/null
check "vm-start pvh" xe vm-start uuid="$vm"
state "pvh started" "$vm" running
log=$(on_xen && log_file_of "$vm")
saw_console "pvh" "$log" GUEST-INIT-OK
on_xen && eq "xl sees a PVH domain" \
    "$(xl list -l "$(xe_get vm "$vm" dom-id)" 2>/dev/null | grep -o '"type": "[a-z]*"' | head -1)" '"type": "pvh"'
check "vm-shutdown pvh (clean)" xe vm-shutdown uuid="$vm"
state "pvh clean_shutdown" "$vm" halted
check "vm-uninstall pvh" quiet xe vm-uninstall uuid="$vm" force=true

# ------------------------------------------------------------ disk and VIF ----
say "PV guest with a disk on the default SR and a VIF on xenbr0"
on_xen && /lab/bin/mkdevs
vm=$(new_vm lab-dev pv "console=hvc0 loglevel=4 lab_wait")
check "vm-install dev" [ -n "$vm" ]
sr=$(xe pool-list params=default-SR --minimal)
vdi=$(xe vdi-create sr-uuid="$sr" name-label=lab-disk virtual-size=16777216 type=user)
check "vdi-create on the default SR" [ -n "$vdi" ]
check "vbd-create" quiet xe vbd-create vm-uuid="$vm" vdi-uuid="$vdi" device=0 bootable=false mode=RW type=Disk
net=$(xe network-list bridge=xenbr0 --minimal)
check "a network on xenbr0" [ -n "$net" ]
check "vif-create" quiet xe vif-create vm-uuid="$vm" network-uuid="$net" device=0 mac=00:16:3e:00:00:02
check "vm-start with disk and vif" xe vm-start uuid="$vm"
state "dev started" "$vm" running
log=$(on_xen && log_file_of "$vm")
saw_console "dev" "$log" "GUEST: wrote sector 1"
if on_xen; then
    domid=$(xe_get vm "$vm" dom-id)
    if ! grep -q "GUEST: wrote sector 1" "$log"; then
        say "disk backend of domain $domid:"
        xenstore-ls -p "/local/domain/0/backend" 2>&1 | grep -v -e '^ *frontend' | head -60
        for p in /proc/[0-9]*; do tr '\0' ' ' <"$p/cmdline"; echo; done 2>/dev/null | grep -e qemu -e nbd
        for f in /var/log/xen/*.log; do say "$f:"; tail -n 15 "$f"; done
    fi
    eq "xl block-list shows one disk" "$(xl block-list "$domid" | awk 'NR > 1' | grep -c .)" 1
    check "the SR disk is blkback on a kernel NBD device" sh -c \
        "xenstore-read /local/domain/0/backend/vbd/$domid/51712/params | grep -q '^/dev/nbd'"
    eq "xl network-list shows one vif" "$(xl network-list "$domid" | awk 'NR > 1' | grep -c .)" 1
    check "vif$domid.0 is on bridge xenbr0" sh -c "ip -o link show master xenbr0 | grep -q 'vif$domid.0'"
    check "the guest sees its network link" grep -q "GUEST: links:.*eth0" "$log"
fi
# Hot-plug: a second disk and a second VIF into the running guest (its front ends are
# loaded), then out again.
vdi2=$(xe vdi-create sr-uuid="$sr" name-label=lab-disk-2 virtual-size=8388608 type=user)
vbd2=$(xe vbd-create vm-uuid="$vm" vdi-uuid="$vdi2" device=1 mode=RW type=Disk)
check "vbd-create (second disk)" [ -n "$vbd2" ]
check "vbd-plug while running" xe vbd-plug uuid="$vbd2"
eq "the plugged vbd is currently-attached" "$(xe_get vbd "$vbd2" currently-attached)" true
if on_xen; then
    eq "xl block-list shows two disks" "$(xl block-list "$domid" | awk 'NR > 1' | grep -c .)" 2
    check "the guest connected the hot-plugged disk (xvdb backend state 4)" \
        wait_for 30 sh -c "[ \"\$(xenstore-read /local/domain/0/backend/vbd/$domid/51728/state)\" = 4 ]"
fi
check "vbd-unplug while running" xe vbd-unplug uuid="$vbd2"
eq "the unplugged vbd is not currently-attached" "$(xe_get vbd "$vbd2" currently-attached)" false
on_xen && eq "xl block-list shows one disk again" \
    "$(xl block-list "$domid" | awk 'NR > 1' | grep -c .)" 1
vif2=$(xe vif-create vm-uuid="$vm" network-uuid="$net" device=1 mac=00:16:3e:00:00:03)
check "vif-create (second vif)" [ -n "$vif2" ]
check "vif-plug while running" xe vif-plug uuid="$vif2"
eq "the plugged vif is currently-attached" "$(xe_get vif "$vif2" currently-attached)" true
if on_xen; then
    eq "xl network-list shows two vifs" "$(xl network-list "$domid" | awk 'NR > 1' | grep -c .)" 2
    check "vif$domid.1 is on bridge xenbr0" wait_for 30 sh -c \
        "ip -o link show master xenbr0 | grep -q 'vif$domid.1'"
    check "the guest connected the hot-plugged vif (backend state 4)" \
        wait_for 30 sh -c "[ \"\$(xenstore-read /local/domain/0/backend/vif/$domid/1/state)\" = 4 ]"
fi
check "vif-unplug while running" xe vif-unplug uuid="$vif2"
on_xen && eq "xl network-list shows one vif again" \
    "$(xl network-list "$domid" | awk 'NR > 1' | grep -c .)" 1
check "vm-shutdown dev (clean)" xe vm-shutdown uuid="$vm"
state "dev clean_shutdown" "$vm" halted
if on_xen; then
    check "what the guest wrote is in the VDI" sh -c "grep -rlq GUEST-WROTE-THIS '$STATE'"
    check "no NBD device is left connected" sh -c "! ls /sys/block/nbd*/pid >/dev/null 2>&1"
fi
check "vm-uninstall dev" quiet xe vm-uninstall uuid="$vm" force=true

# ------------------------------------------------------------ bootable disks ----
# A udev SR over a directory of disk images the daemon does not own: an ext2 disk pygrub
# boots and a raw disk whose boot sector a BIOS runs.
disk_dir=$STATE/lab-disks
mkdir -p "$disk_dir"
boot_disk "$disk_dir/boot.img"
if [ -f "$GUEST/pygrub.img" ]; then cp "$GUEST/pygrub.img" "$disk_dir/pygrub.img"
else dd if=/dev/zero of="$disk_dir/pygrub.img" bs=1M count=1 2>/dev/null; fi
dsr=$(xe sr-create type=udev content-type=disk name-label=lab-disks \
    device-config:location="$disk_dir")
check "sr-create udev over a directory of disk images" [ -n "$dsr" ]
quiet xe sr-scan uuid="$dsr"
hvdi=$(xe vdi-list sr-uuid="$dsr" location=boot.img --minimal)
check "the boot-sector disk is a VDI" [ -n "$hvdi" ]
pvdi=$(xe vdi-list sr-uuid="$dsr" location=pygrub.img --minimal)
check "the pygrub disk is a VDI" [ -n "$pvdi" ]

# ------------------------------------------------------------- pygrub guest ----
say "PV guest booted by pygrub from its disk"
vm=$(xe vm-install template="Other install media" new-name-label=lab-pygrub)
check "vm-install pygrub" [ -n "$vm" ]
xe vm-param-set uuid="$vm" HVM-boot-policy= domain-type=pv PV-bootloader=pygrub \
    memory-static-min="$MEM" memory-dynamic-min="$MEM" memory-dynamic-max="$MEM" \
    memory-static-max="$MEM" VCPUs-max=1 VCPUs-at-startup=1 >/dev/null
check "vbd-create (pygrub disk)" quiet xe vbd-create vm-uuid="$vm" vdi-uuid="$pvdi" device=0 \
    bootable=true mode=RO type=Disk
t=$(now)
check "vm-start pygrub" xe vm-start uuid="$vm"
state "pygrub started" "$vm" running
on_xen && say "pygrub start took $(since "$t")s"
log=$(on_xen && log_file_of "$vm")
# The kernel command line of grub.cfg's default entry reached the guest.
saw_console "pygrub" "$log" "GUEST: cmdline.*lab_pygrub"
check "vm-shutdown pygrub (clean)" xe vm-shutdown uuid="$vm"
state "pygrub clean_shutdown" "$vm" halted
check "vm-uninstall pygrub" quiet xe vm-uninstall uuid="$vm" force=true

# ---------------------------------------------------------------- HVM guest ----
# A session for the raw HTTP requests below (CONNECT /console).
session=$(api session.login_with_password root lab-root 1.0 dom0-tests)
say "HVM guest: BIOS boot from a disk, serial and VNC consoles"
vm=$(xe vm-install template="Other install media" new-name-label=lab-hvm)
check "vm-install hvm" [ -n "$vm" ]
xe vm-param-set uuid="$vm" memory-static-min="$MEM" memory-dynamic-min="$MEM" \
    memory-dynamic-max="$MEM" memory-static-max="$MEM" VCPUs-max=1 VCPUs-at-startup=1 \
    HVM-boot-params:order=c platform:tsc_mode=native >/dev/null
eq "the template made an HVM VM" "$(xe_get vm "$vm" HVM-boot-policy)" "BIOS order"
hvbd=$(xe vbd-create vm-uuid="$vm" vdi-uuid="$hvdi" device=0 bootable=true mode=RO type=Disk)
check "vbd-create (boot disk, read-only)" [ -n "$hvbd" ]
# qemu-xen emulates HVM disks as IDE, which cannot be read-only: refused before any domain
# is built, with a reason.
if on_xen; then
    eq "vm-start hvm with a read-only emulated disk is refused" \
        "$(xe vm-start uuid="$vm" 2>&1 | head -n 1)" 'You attempted an operation that was not allowed.'
fi
check "vbd-param-set mode=RW" xe vbd-param-set uuid="$hvbd" mode=RW
# An empty CD drive, and an ISO library holding one image to put in it while running.
iso_dir=$STATE/lab-isos
mkdir -p "$iso_dir"
dd if=/dev/zero of="$iso_dir/lab-cd.iso" bs=1M count=1 2>/dev/null
isr=$(xe sr-create type=iso content-type=iso name-label=lab-isos device-config:location="$iso_dir")
check "sr-create iso" [ -n "$isr" ]
quiet xe sr-scan uuid="$isr"
cdvdi=$(xe vdi-list sr-uuid="$isr" name-label=lab-cd.iso --minimal)
check "the ISO image is a VDI" [ -n "$cdvdi" ]
# The drive starts with a disc: QEMU 7.2's Xen disk backend cannot create an empty drive, and
# a later insert into one kills the device model (plain `xl cd-insert` too).
check "vbd-create (CD drive with the disc)" quiet xe vbd-create vm-uuid="$vm" vdi-uuid="$cdvdi" \
    device=3 type=CD mode=RO
t=$(now)
check "vm-start hvm" xe vm-start uuid="$vm"
state "hvm started" "$vm" running
if on_xen && [ "$(power "$vm")" != running ]; then
    for f in /var/log/xen/qemu-dm-*.log /var/log/xen/xl-*.log; do
        [ -f "$f" ] && { say "$f:"; tail -n 20 "$f"; }
    done
    say "xapi log:"; grep -i -e libxl -e error "$STATE/xapi.log" | tail -n 20
fi
if on_xen && [ "$(power "$vm")" = running ]; then
    domid=$(xe_get vm "$vm" dom-id)
    say "hvm start took $(since "$t")s"
    eq "xl sees an HVM domain" \
        "$(xl list -l "$domid" 2>/dev/null | grep -o '"type": "[a-z]*"' | head -1)" '"type": "hvm"'
    eq "xl sees boot order c" \
        "$(xl list -l "$domid" 2>/dev/null | grep -o '"boot": "[a-z]*"' | head -1)" '"boot": "c"'
    check "the device model is running" wait_for 60 sh -c \
        "xenstore-read /local/domain/0/device-model/$domid/state | grep -qx running"
    # hvmloader and SeaBIOS, then our boot sector: it writes to Xen's debug port 0xe9,
    # which Xen logs as "(dN) ..." in its console ring.
    if wait_for "$BOOT_WAIT" sh -c "xl dmesg | grep -q '(d$domid) HVM-BOOT-OK'"; then
        ok "the BIOS booted the VDI's boot sector (Xen's debug port)"
    else
        not_ok "the boot sector never ran"; xl dmesg | grep "(d$domid)" | tail -n 20
    fi
    tty=$(xenstore-read "/local/domain/$domid/serial/0/tty" 2>/dev/null)
    check "the emulated serial port has a pty" [ -n "$tty" ]
    [ -n "$tty" ] && eq "the serial console shows the guest's output" \
        "$(timeout 5 cat "$tty" 2>/dev/null | grep -m 1 -o HVM-BOOT-OK)" HVM-BOOT-OK
    port=$(xenstore-read "/local/domain/$domid/console/vnc-port" 2>/dev/null)
    check "the device model published a VNC port" [ -n "$port" ]
    [ -n "$port" ] && eq "VNC on 127.0.0.1:$port speaks RFB" \
        "$(timeout 5 busybox nc 127.0.0.1 "$port" </dev/null 2>/dev/null | head -c 7)" "RFB 003"
fi
# The XenAPI's console objects, and the daemon's CONNECT /console tunnel to each.
rfb=$(xe console-list vm-uuid="$vm" protocol=rfb --minimal)
vt=$(xe console-list vm-uuid="$vm" protocol=vt100 --minimal)
check "the running HVM VM has an rfb console object" [ -n "$rfb" ]
check "... and a vt100 one" [ -n "$vt" ]
case $(xe console-param-get uuid="$rfb" param-name=location) in
    "https://"*"/console?uuid=$rfb") ok "the rfb console's location is the host's /console URL" ;;
    *) not_ok "rfb console location: $(xe console-param-get uuid="$rfb" param-name=location)" ;;
esac
if on_xen; then
    eq "CONNECT /console (rfb) reaches the VNC server" \
        "$(console_connect "$rfb" 3 | grep -a -o 'RFB 003' | head -n 1)" "RFB 003"
    eq "CONNECT /console (vt100) shows the guest's serial output" \
        "$(console_connect "$vt" 4 | grep -a -o HVM-BOOT-OK | head -n 1)" HVM-BOOT-OK
fi
# CD media change while the HVM guest runs: out, then in again.
cd_backend_has() { xenstore-ls -f /local/domain/0/backend 2>/dev/null | grep -q "$1"; }
on_xen && check "the CD drive's backend holds the image at boot" cd_backend_has lab-cd.iso
check "vm-cd-eject while running" xe vm-cd-eject uuid="$vm"
eq "the CD VBD is empty" "$(xe vbd-list vm-uuid="$vm" type=CD params=empty --minimal)" true
on_xen && check "the CD drive's backend is empty" sh -c "! xenstore-ls -f /local/domain/0/backend | grep -q lab-cd.iso"
check "vm-cd-insert while running" xe vm-cd-insert uuid="$vm" cd-name=lab-cd.iso
eq "the CD VBD holds the disc" "$(xe vbd-list vm-uuid="$vm" type=CD params=vdi-uuid --minimal)" "$cdvdi"
on_xen && check "the CD drive's backend holds the image again" cd_backend_has lab-cd.iso
on_xen && check "the device model survived the media change" sh -c \
    "xenstore-read /local/domain/0/device-model/$domid/state | grep -qx running"
# A bare boot sector has no PV control interface: it cannot acknowledge a clean shutdown
# (the simulated guest can).
on_xen && eq "vm-shutdown hvm (clean) without PV drivers is not acknowledged" \
    "$(xe vm-shutdown uuid="$vm" 2>&1 | head -n 1)" \
    "VM didn't acknowledge the need to shutdown."
check "vm-shutdown hvm --force" xe vm-shutdown uuid="$vm" --force
state "hvm hard_shutdown" "$vm" halted
# ([x]: the pattern must not match grep's own command line.)
on_xen && check "no device model is left running" \
    sh -c "! grep -l '[x]en-qemu-system' /proc/[0-9]*/cmdline >/dev/null 2>&1"
check "vm-uninstall hvm" quiet xe vm-uninstall uuid="$vm" force=true
check "the boot disks survive (the udev SR does not own them)" \
    sh -c "[ -s '$disk_dir/boot.img' ] && [ -s '$disk_dir/pygrub.img' ]"
check "pbd-unplug udev" xe pbd-unplug uuid="$(xe pbd-list sr-uuid="$dsr" --minimal)"
check "sr-forget udev" xe sr-forget uuid="$dsr"
check "pbd-unplug iso" xe pbd-unplug uuid="$(xe pbd-list sr-uuid="$isr" --minimal)"
check "sr-forget iso" xe sr-forget uuid="$isr"
agree "end"
finish
