//! The VM lifecycle over the wire on the simulated host: VMs made from templates go through
//! every power transition; refused transitions carry upstream's errors; host memory, metrics
//! and allowed operations stay true; guests that crash, power off or reboot by themselves
//! follow `actions_after_*`; running VMs survive a daemon restart; a random walk of lifecycle
//! calls on several VMs agrees with a model.
use std::time::{Duration, Instant};

use xapi_system_tests::fields::{field, int, strings, text};
use xapi_system_tests::vms::vm_from_template;
use xapi_system_tests::{s, Api, TestDaemon, Value};

const MIB: i64 = 1 << 20;

fn b(v: bool) -> Value {
    Value::Bool(v)
}

fn i(v: i64) -> Value {
    Value::Int(v)
}

fn power(api: &mut Api, vm: &str) -> String {
    text(api, "VM", vm, "power_state")
}

fn allowed(api: &mut Api, vm: &str) -> Vec<String> {
    let mut ops = strings(field(api, "VM", vm, "allowed_operations"));
    ops.sort();
    ops
}

fn host(api: &mut Api) -> String {
    strings(api.ok("host.get_all", vec![])).remove(0)
}

fn free_memory(api: &mut Api) -> i64 {
    let h = host(api);
    match api.ok("host.compute_free_memory", vec![s(&h)]) {
        Value::Int(n) => n,
        Value::String(t) => t.parse().expect("free memory as a number"),
        other => panic!("host.compute_free_memory: {other:?}"),
    }
}

/// Clones a template, provisions it, turns it into a VM with `mib` of memory.
fn new_vm(api: &mut Api, name: &str, mib: i64) -> String {
    vm_from_template(api, "Debian Bookworm 12", name, mib)
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn code(e: &[String]) -> &str {
    e.first().map(String::as_str).unwrap_or_default()
}

#[test]
fn a_vm_from_a_template_goes_through_the_whole_lifecycle() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let free0 = free_memory(&mut api);
    let vm = new_vm(&mut api, "life", 512);
    assert_eq!(power(&mut api, &vm), "Halted");
    let ops = allowed(&mut api, &vm);
    assert!(ops.contains(&"start".to_owned()), "{ops:?}");
    assert!(!ops.contains(&"clean_shutdown".to_owned()), "{ops:?}");

    api.ok("VM.start", vec![s(&vm), b(false), b(false)]);
    assert_eq!(power(&mut api, &vm), "Running");
    let domid = int(&mut api, "VM", &vm, "domid");
    assert!(domid > 0);
    assert_eq!(free_memory(&mut api), free0 - 512 * MIB);
    let metrics = text(&mut api, "VM", &vm, "metrics");
    assert_eq!(
        int(&mut api, "VM_metrics", &metrics, "memory_actual"),
        512 * MIB
    );
    let gm = text(&mut api, "VM", &vm, "guest_metrics");
    assert_ne!(gm, "OpaqueRef:NULL", "the guest agent reported");
    let os = field(&mut api, "VM_guest_metrics", &gm, "os_version");
    assert_eq!(os.get("distro"), Some(&s("simlinux")));
    let ops = allowed(&mut api, &vm);
    for op in [
        "clean_shutdown",
        "hard_shutdown",
        "pause",
        "suspend",
        "clean_reboot",
    ] {
        assert!(ops.contains(&op.to_owned()), "{op} missing from {ops:?}");
    }
    assert!(!ops.contains(&"start".to_owned()));
    assert!(!ops.contains(&"destroy".to_owned()));

    api.ok("VM.pause", vec![s(&vm)]);
    assert_eq!(power(&mut api, &vm), "Paused");
    assert!(allowed(&mut api, &vm).contains(&"unpause".to_owned()));
    api.ok("VM.unpause", vec![s(&vm)]);
    assert_eq!(power(&mut api, &vm), "Running");

    api.ok("VM.suspend", vec![s(&vm)]);
    assert_eq!(power(&mut api, &vm), "Suspended");
    assert_eq!(int(&mut api, "VM", &vm, "domid"), -1);
    assert_eq!(
        free_memory(&mut api),
        free0,
        "a suspended VM holds no memory"
    );
    let ops = allowed(&mut api, &vm);
    assert!(ops.contains(&"resume".to_owned()) && ops.contains(&"destroy".to_owned()));
    api.ok("VM.resume", vec![s(&vm), b(false), b(false)]);
    assert_eq!(power(&mut api, &vm), "Running");

    let before = int(&mut api, "VM", &vm, "domid");
    api.ok("VM.clean_reboot", vec![s(&vm)]);
    assert_eq!(power(&mut api, &vm), "Running");
    let after = int(&mut api, "VM", &vm, "domid");
    assert_ne!(before, after, "a reboot builds a new domain");
    api.ok("VM.hard_reboot", vec![s(&vm)]);
    assert_ne!(int(&mut api, "VM", &vm, "domid"), after);
    let h = host(&mut api);
    api.ok(
        "VM.pool_migrate",
        vec![s(&vm), s(&h), Value::Struct(vec![])],
    );
    assert_eq!(power(&mut api, &vm), "Running");

    api.ok("VM.clean_shutdown", vec![s(&vm)]);
    assert_eq!(power(&mut api, &vm), "Halted");
    assert_eq!(free_memory(&mut api), free0);
    assert_eq!(text(&mut api, "VM", &vm, "guest_metrics"), "OpaqueRef:NULL");
    assert!(strings(field(&mut api, "VM", &vm, "current_operations").keys_as_array()).is_empty());

    api.ok("VM.start", vec![s(&vm), b(true), b(false)]);
    assert_eq!(power(&mut api, &vm), "Paused", "start_paused");
    api.ok("VM.hard_shutdown", vec![s(&vm)]);
    api.ok("VM.destroy", vec![s(&vm)]);
    wait_for("the metrics to go with the VM", || {
        api.call("VM_metrics.get_uuid", vec![s(&metrics)]).is_err()
    });
}

trait Keys {
    fn keys_as_array(self) -> Value;
}

impl Keys for Value {
    fn keys_as_array(self) -> Value {
        match self {
            Value::Struct(m) => Value::Array(m.into_iter().map(|(k, _)| s(&k)).collect()),
            other => other,
        }
    }
}

#[test]
fn refused_transitions_carry_upstream_errors() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let vm = new_vm(&mut api, "refused", 256);
    let e = api.err("VM.suspend", vec![s(&vm)]);
    assert_eq!(
        e,
        vec!["VM_BAD_POWER_STATE", vm.as_str(), "running", "halted"]
    );
    let e = api.err("VM.unpause", vec![s(&vm)]);
    assert_eq!(
        e,
        vec!["VM_BAD_POWER_STATE", vm.as_str(), "paused", "halted"]
    );
    let e = api.err("VM.resume", vec![s(&vm), b(false), b(false)]);
    assert_eq!(
        e,
        vec!["VM_BAD_POWER_STATE", vm.as_str(), "suspended", "halted"]
    );
    let e = api.err("VM.hard_shutdown", vec![s(&vm)]);
    assert_eq!(
        e,
        vec![
            "VM_BAD_POWER_STATE",
            vm.as_str(),
            "paused, suspended, running",
            "halted"
        ]
    );
    let e = api.err("VM.provision", vec![s(&vm)]);
    assert_eq!(code(&e), "ONLY_PROVISION_TEMPLATE");

    api.ok("VM.start", vec![s(&vm), b(false), b(false)]);
    let e = api.err("VM.start", vec![s(&vm), b(false), b(false)]);
    assert_eq!(
        e,
        vec!["VM_BAD_POWER_STATE", vm.as_str(), "halted", "running"]
    );
    let e = api.err("VM.destroy_never_exists", vec![s(&vm)]);
    assert_eq!(code(&e), "MESSAGE_METHOD_UNKNOWN");
    let e = api.err(
        "VM.set_memory_limits",
        vec![s(&vm), i(MIB), i(MIB), i(MIB), i(MIB)],
    );
    assert_eq!(code(&e), "VM_BAD_POWER_STATE");
    let e = api.err("VM.set_VCPUs_number_live", vec![s(&vm), i(64)]);
    assert_eq!(code(&e), "INVALID_VALUE");
    api.ok("VM.hard_shutdown", vec![s(&vm)]);

    let e = api.err(
        "VM.set_memory_limits",
        vec![
            s(&vm),
            i(256 * MIB),
            i(128 * MIB),
            i(256 * MIB),
            i(256 * MIB),
        ],
    );
    assert_eq!(code(&e), "MEMORY_CONSTRAINT_VIOLATION");

    let template = strings(api.ok("VM.get_by_name_label", vec![s("Debian Bookworm 12")])).remove(0);
    let e = api.err("VM.start", vec![s(&template), b(false), b(false)]);
    assert_eq!(e, vec!["VM_IS_TEMPLATE", template.as_str(), "start"]);
    let ops = allowed(&mut api, &template);
    assert!(ops.contains(&"clone".to_owned()) && ops.contains(&"provision".to_owned()));
    assert!(
        !ops.contains(&"destroy".to_owned()),
        "default templates stay"
    );

    let h = host(&mut api);
    let dom0 = text(&mut api, "host", &h, "control_domain");
    assert_eq!(field(&mut api, "VM", &dom0, "is_control_domain"), b(true));
    assert_eq!(power(&mut api, &dom0), "Running");
    let e = api.err("VM.clean_shutdown", vec![s(&dom0)]);
    assert_eq!(code(&e), "OPERATION_NOT_ALLOWED");
    let e = api.err("VM.suspend", vec![s(&dom0)]);
    assert_eq!(code(&e), "OPERATION_NOT_ALLOWED");
}

#[test]
fn memory_exhaustion_is_refused_and_memory_stays_accounted() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let free0 = free_memory(&mut api);
    let h = host(&mut api);
    let m = text(&mut api, "host", &h, "metrics");
    let total = int(&mut api, "host_metrics", &m, "memory_total");
    let dom0 = text(&mut api, "host", &h, "control_domain");
    let dom0_memory = int(&mut api, "VM", &dom0, "memory_static_max");
    assert_eq!(free0, total - dom0_memory, "dom0 is the only domain");

    let big = new_vm(&mut api, "big", 256);
    let too_much = free0 + MIB;
    api.ok(
        "VM.set_memory_limits",
        vec![s(&big), i(too_much), i(too_much), i(too_much), i(too_much)],
    );
    let e = api.err("VM.start", vec![s(&big), b(false), b(false)]);
    assert_eq!(
        e,
        vec![
            "HOST_NOT_ENOUGH_FREE_MEMORY".to_owned(),
            too_much.to_string(),
            free0.to_string()
        ]
    );
    assert_eq!(power(&mut api, &big), "Halted");
    assert_eq!(
        free_memory(&mut api),
        free0,
        "a failed start leaves nothing behind"
    );

    // Fill the host with VMs of a quarter of the free memory each: the fifth does not fit.
    let quarter = free0 / 4 / MIB;
    let mut vms = Vec::new();
    for n in 0..4 {
        let vm = new_vm(&mut api, &format!("fill-{n}"), quarter);
        api.ok("VM.start", vec![s(&vm), b(false), b(false)]);
        vms.push(vm);
    }
    let rest = free_memory(&mut api);
    assert_eq!(rest, free0 - 4 * quarter * MIB);
    let fifth = new_vm(&mut api, "fifth", quarter);
    let e = api.err("VM.start", vec![s(&fifth), b(false), b(false)]);
    assert_eq!(code(&e), "HOST_NOT_ENOUGH_FREE_MEMORY");
    api.ok("VM.hard_shutdown", vec![s(&vms[0])]);
    api.ok("VM.start", vec![s(&fifth), b(false), b(false)]);
}

fn crashing_vm(api: &mut Api, name: &str, key: &str, action_field: &str, action: &str) -> String {
    let vm = new_vm(api, name, 128);
    api.ok(&format!("VM.set_{action_field}"), vec![s(&vm), s(action)]);
    api.ok("VM.add_to_other_config", vec![s(&vm), s(key), s("100")]);
    vm
}

#[test]
fn guests_that_crash_or_leave_follow_their_actions() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let free0 = free_memory(&mut api);

    let destroy = crashing_vm(
        &mut api,
        "crash-destroy",
        "sim-crash-after-ms",
        "actions_after_crash",
        "destroy",
    );
    let preserve = crashing_vm(
        &mut api,
        "crash-preserve",
        "sim-crash-after-ms",
        "actions_after_crash",
        "preserve",
    );
    let restart = crashing_vm(
        &mut api,
        "crash-restart",
        "sim-crash-after-ms",
        "actions_after_crash",
        "restart",
    );
    let poweroff = crashing_vm(
        &mut api,
        "poweroff",
        "sim-poweroff-after-ms",
        "actions_after_shutdown",
        "destroy",
    );
    let reboot = crashing_vm(
        &mut api,
        "reboot",
        "sim-reboot-after-ms",
        "actions_after_reboot",
        "restart",
    );
    for vm in [&destroy, &preserve, &restart, &poweroff, &reboot] {
        api.ok("VM.start", vec![s(vm), b(false), b(false)]);
    }
    let restart_domid = int(&mut api, "VM", &restart, "domid");
    let reboot_domid = int(&mut api, "VM", &reboot, "domid");
    // The restarting ones must not crash forever: they come back without the fault.
    api.ok(
        "VM.remove_from_other_config",
        vec![s(&restart), s("sim-crash-after-ms")],
    );
    api.ok(
        "VM.remove_from_other_config",
        vec![s(&reboot), s("sim-reboot-after-ms")],
    );

    wait_for("the crashed VM to halt", || {
        power(&mut api, &destroy) == "Halted"
    });
    wait_for("the powered-off VM to halt", || {
        power(&mut api, &poweroff) == "Halted"
    });
    wait_for("the crashed VM to be preserved", || {
        power(&mut api, &preserve) == "Paused"
    });
    wait_for("the crashed VM to restart", || {
        int(&mut api, "VM", &restart, "domid") != restart_domid
            && power(&mut api, &restart) == "Running"
    });
    wait_for("the rebooted VM to come back", || {
        int(&mut api, "VM", &reboot, "domid") != reboot_domid
            && power(&mut api, &reboot) == "Running"
    });
    let metrics = text(&mut api, "VM", &preserve, "metrics");
    assert_eq!(
        strings(field(&mut api, "VM_metrics", &metrics, "state")),
        vec!["crashed"]
    );
    // The preserved domain still holds its memory until it is shut down.
    assert_eq!(free_memory(&mut api), free0 - 3 * 128 * MIB);
    api.ok("VM.hard_shutdown", vec![s(&preserve)]);
    assert_eq!(free_memory(&mut api), free0 - 2 * 128 * MIB);
}

#[test]
fn running_vms_survive_a_daemon_restart() {
    let mut d = TestDaemon::start();
    let mut api = d.login();
    let running = new_vm(&mut api, "keeps-running", 256);
    let paused = new_vm(&mut api, "keeps-paused", 256);
    let suspended = new_vm(&mut api, "keeps-suspended", 256);
    for vm in [&running, &paused, &suspended] {
        api.ok("VM.start", vec![s(vm), b(false), b(false)]);
    }
    api.ok("VM.pause", vec![s(&paused)]);
    api.ok("VM.suspend", vec![s(&suspended)]);
    let domid = int(&mut api, "VM", &running, "domid");
    let free = free_memory(&mut api);

    d.restart();
    let mut api = d.login();
    assert_eq!(power(&mut api, &running), "Running");
    assert_eq!(int(&mut api, "VM", &running, "domid"), domid);
    assert_eq!(power(&mut api, &paused), "Paused");
    assert_eq!(power(&mut api, &suspended), "Suspended");
    assert_eq!(free_memory(&mut api), free);
    assert!(allowed(&mut api, &running).contains(&"clean_shutdown".to_owned()));
    api.ok("VM.clean_shutdown", vec![s(&running)]);
    api.ok("VM.unpause", vec![s(&paused)]);
    api.ok("VM.resume", vec![s(&suspended), b(false), b(false)]);
    assert_eq!(power(&mut api, &suspended), "Running");
}

/// The simulated host carries a domain's live memory target and vCPUs in its own migration
/// and suspend state, so this also passes without the daemon rebuilding the domain from the
/// live values (`power::booted_record`); that fix is shown on real Xen, where libxl rebuilds
/// from the config, by tests/xen/dom0-tests.sh ("... after migration").
#[test]
fn live_memory_and_vcpu_changes_move_with_a_migrated_or_resumed_domain() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let vm = new_vm(&mut api, "live-changes", 256);
    let (low, high) = (i(128 * MIB), i(256 * MIB));
    api.ok(
        "VM.set_memory_limits",
        vec![s(&vm), low, high.clone(), high.clone(), high],
    );
    api.ok("VM.set_VCPUs_max", vec![s(&vm), i(2)]);
    api.ok("VM.start", vec![s(&vm), b(false), b(false)]);
    let metrics = text(&mut api, "VM", &vm, "metrics");
    let vcpus = |api: &mut Api| int(api, "VM_metrics", &metrics, "VCPUs_number");
    assert_eq!(vcpus(&mut api), 1);
    api.ok(
        "VM.set_memory_dynamic_range",
        vec![s(&vm), i(192 * MIB), i(192 * MIB)],
    );
    api.ok("VM.set_VCPUs_number_live", vec![s(&vm), i(2)]);
    assert_eq!(int(&mut api, "VM", &vm, "memory_target"), 192 * MIB);
    let h = host(&mut api);
    let before = int(&mut api, "VM", &vm, "domid");
    api.ok(
        "VM.pool_migrate",
        vec![s(&vm), s(&h), Value::Struct(vec![])],
    );
    assert_ne!(int(&mut api, "VM", &vm, "domid"), before, "a new domain");
    assert_eq!(
        int(&mut api, "VM", &vm, "memory_target"),
        192 * MIB,
        "the balloon target set while running survives the migration"
    );
    assert_eq!(
        vcpus(&mut api),
        2,
        "the hot-plugged vCPU survives the migration"
    );
    api.ok("VM.suspend", vec![s(&vm)]);
    api.ok("VM.resume", vec![s(&vm), b(false), b(false)]);
    assert_eq!(int(&mut api, "VM", &vm, "memory_target"), 192 * MIB);
    assert_eq!(vcpus(&mut api), 2);
}

#[test]
fn snapshots_and_checkpoints_revert() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let vm = new_vm(&mut api, "snapped", 256);
    api.ok("VM.set_VCPUs_max", vec![s(&vm), i(2)]);
    let snap = api.string(
        "VM.snapshot",
        vec![s(&vm), s("before"), Value::Array(vec![])],
    );
    assert_eq!(field(&mut api, "VM", &snap, "is_a_snapshot"), b(true));
    assert_eq!(text(&mut api, "VM", &snap, "snapshot_of"), vm);
    api.ok("VM.set_VCPUs_max", vec![s(&vm), i(4)]);
    api.ok("VM.revert", vec![s(&snap)]);
    assert_eq!(int(&mut api, "VM", &vm, "VCPUs_max"), 2);
    let e = api.err("VM.start", vec![s(&snap), b(false), b(false)]);
    assert_eq!(code(&e), "VM_IS_SNAPSHOT");

    api.ok("VM.start", vec![s(&vm), b(false), b(false)]);
    let cp = api.string("VM.checkpoint", vec![s(&vm), s("live")]);
    assert_eq!(
        power(&mut api, &vm),
        "Running",
        "a checkpoint keeps the VM running"
    );
    assert_eq!(power(&mut api, &cp), "Suspended");
    api.ok("VM.revert", vec![s(&cp)]);
    assert_eq!(power(&mut api, &vm), "Suspended");
    api.ok("VM.resume", vec![s(&vm), b(false), b(false)]);
    assert_eq!(power(&mut api, &vm), "Running");
}

#[test]
fn a_vbd_mode_changes_only_while_its_vm_is_halted() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let vm = new_vm(&mut api, "vbd-mode", 256);
    let vbd = strings(api.ok("VM.get_VBDs", vec![s(&vm)])).remove(0);
    assert_eq!(text(&mut api, "VBD", &vbd, "mode"), "RW");
    api.ok("VBD.set_mode", vec![s(&vbd), s("RO")]);
    assert_eq!(text(&mut api, "VBD", &vbd, "mode"), "RO");
    api.ok("VM.start", vec![s(&vm), b(false), b(false)]);
    let e = api.err("VBD.set_mode", vec![s(&vbd), s("RW")]);
    assert_eq!(e, ["VM_BAD_POWER_STATE", vm.as_str(), "halted", "running"]);
    assert_eq!(text(&mut api, "VBD", &vbd, "mode"), "RO");
    api.ok("VM.hard_shutdown", vec![s(&vm)]);
    api.ok("VBD.set_mode", vec![s(&vbd), s("RW")]);
    assert_eq!(text(&mut api, "VBD", &vbd, "mode"), "RW");
}

#[test]
fn vifs_and_vbds_plug_into_running_vms() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let vm = new_vm(&mut api, "devices", 256);
    let net = strings(api.ok("network.get_all", vec![])).remove(0);
    let vif = api.string(
        "VIF.create",
        vec![Value::Struct(vec![
            ("device".into(), s("0")),
            ("network".into(), s(&net)),
            ("VM".into(), s(&vm)),
            ("MAC".into(), s("")),
            ("MTU".into(), i(1500)),
            ("other_config".into(), Value::Struct(vec![])),
            ("qos_algorithm_type".into(), s("")),
            ("qos_algorithm_params".into(), Value::Struct(vec![])),
        ])],
    );
    let cd = api.string(
        "VBD.create",
        vec![Value::Struct(vec![
            ("VM".into(), s(&vm)),
            ("VDI".into(), s("OpaqueRef:NULL")),
            ("userdevice".into(), s("3")),
            ("bootable".into(), b(false)),
            ("mode".into(), s("RO")),
            ("type".into(), s("CD")),
            ("empty".into(), b(true)),
            ("unpluggable".into(), b(true)),
            ("other_config".into(), Value::Struct(vec![])),
            ("qos_algorithm_type".into(), s("")),
            ("qos_algorithm_params".into(), Value::Struct(vec![])),
        ])],
    );
    assert_eq!(
        strings(api.ok("VM.get_allowed_VIF_devices", vec![s(&vm)])),
        vec!["1", "2", "3", "4", "5", "6"]
    );
    assert!(!strings(api.ok("VM.get_allowed_VBD_devices", vec![s(&vm)])).contains(&"3".to_owned()));
    let e = api.err("VIF.plug", vec![s(&vif)]);
    assert_eq!(code(&e), "VM_BAD_POWER_STATE");
    let e = api.err("VBD.eject", vec![s(&cd)]);
    assert_eq!(e, vec!["VBD_IS_EMPTY", cd.as_str()]);

    api.ok("VM.start", vec![s(&vm), b(false), b(false)]);
    assert_eq!(field(&mut api, "VIF", &vif, "currently_attached"), b(true));
    assert_eq!(field(&mut api, "VBD", &cd, "currently_attached"), b(true));
    assert_eq!(text(&mut api, "VBD", &cd, "device"), "xvdd");
    let e = api.err("VIF.plug", vec![s(&vif)]);
    assert_eq!(e, vec!["DEVICE_ALREADY_ATTACHED", vif.as_str()]);
    api.ok("VIF.unplug", vec![s(&vif)]);
    assert_eq!(field(&mut api, "VIF", &vif, "currently_attached"), b(false));
    assert_eq!(
        strings(field(&mut api, "VIF", &vif, "allowed_operations")),
        vec!["plug"]
    );
    api.ok("VIF.plug", vec![s(&vif)]);
    api.ok("VBD.unplug", vec![s(&cd)]);
    let e = api.err("VBD.unplug", vec![s(&cd)]);
    assert_eq!(e, vec!["DEVICE_ALREADY_DETACHED", cd.as_str()]);
    api.ok("VBD.plug", vec![s(&cd)]);
    api.ok("VM.hard_shutdown", vec![s(&vm)]);
    assert_eq!(field(&mut api, "VIF", &vif, "currently_attached"), b(false));
    let mac = text(&mut api, "VIF", &vif, "MAC");
    assert_eq!(mac.len(), 17, "a MAC was generated: {mac:?}");

    let copy = api.string("VM.clone", vec![s(&vm), s("copy")]);
    assert_eq!(strings(field(&mut api, "VM", &copy, "VIFs")).len(), 1);
    // The provisioned disk and the CD drive.
    assert_eq!(strings(field(&mut api, "VM", &copy, "VBDs")).len(), 2);
    api.ok("VM.destroy", vec![s(&vm)]);
    wait_for("the devices to go with the VM", || {
        api.call("VIF.get_uuid", vec![s(&vif)]).is_err()
            && api.call("VBD.get_uuid", vec![s(&cd)]).is_err()
    });
}

/// A small deterministic PRNG (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What the model expects of each call from each power state.
fn model_step(state: &str, op: &str) -> Option<&'static str> {
    match (state, op) {
        ("Halted", "start") => Some("Running"),
        ("Halted", "start_paused") => Some("Paused"),
        ("Running", "pause") => Some("Paused"),
        ("Paused", "unpause") => Some("Running"),
        ("Running", "suspend") => Some("Suspended"),
        ("Suspended", "resume") => Some("Running"),
        ("Running", "clean_shutdown") => Some("Halted"),
        ("Running" | "Paused" | "Suspended", "hard_shutdown") => Some("Halted"),
        ("Running", "clean_reboot") => Some("Running"),
        ("Running" | "Paused", "hard_reboot") => Some("Running"),
        _ => None,
    }
}

fn model_allowed(state: &str) -> Vec<&'static str> {
    let mut ops = match state {
        "Halted" => vec![
            "start",
            "start_on",
            "destroy",
            "clone",
            "copy",
            "snapshot",
            "export",
            "migrate_send",
            "make_into_template",
            "changing_static_range",
            "changing_shadow_memory",
            "changing_dynamic_range",
        ],
        "Running" => vec![
            "pause",
            "clean_shutdown",
            "clean_reboot",
            "hard_shutdown",
            "hard_reboot",
            "suspend",
            "checkpoint",
            "snapshot",
            "changing_VCPUs_live",
            "pool_migrate",
            "migrate_send",
            "changing_dynamic_range",
        ],
        "Paused" => vec![
            "unpause",
            "hard_shutdown",
            "hard_reboot",
            "checkpoint",
            "snapshot",
        ],
        "Suspended" => vec![
            "resume",
            "resume_on",
            "hard_shutdown",
            "destroy",
            "checkpoint",
            "snapshot",
            "export",
            "migrate_send",
        ],
        _ => unreachable!(),
    };
    ops.sort_unstable();
    ops
}

#[test]
fn random_lifecycle_calls_agree_with_a_model() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let free0 = free_memory(&mut api);
    let sizes = [128, 192, 256];
    let vms: Vec<String> = sizes
        .iter()
        .enumerate()
        .map(|(n, mib)| new_vm(&mut api, &format!("model-{n}"), *mib))
        .collect();
    let mut states = vec!["Halted"; vms.len()];
    let ops = [
        "start",
        "start_paused",
        "pause",
        "unpause",
        "suspend",
        "resume",
        "clean_shutdown",
        "hard_shutdown",
        "clean_reboot",
        "hard_reboot",
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for step in 0..120 {
        let n = rng.below(vms.len());
        let op = ops[rng.below(ops.len())];
        let vm = vms[n].clone();
        let (method, params) = match op {
            "start" => ("VM.start", vec![s(&vm), b(false), b(false)]),
            "start_paused" => ("VM.start", vec![s(&vm), b(true), b(false)]),
            "resume" => ("VM.resume", vec![s(&vm), b(false), b(false)]),
            other => (
                match other {
                    "pause" => "VM.pause",
                    "unpause" => "VM.unpause",
                    "suspend" => "VM.suspend",
                    "clean_shutdown" => "VM.clean_shutdown",
                    "hard_shutdown" => "VM.hard_shutdown",
                    "clean_reboot" => "VM.clean_reboot",
                    _ => "VM.hard_reboot",
                },
                vec![s(&vm)],
            ),
        };
        let outcome = api.call(method, params);
        match (model_step(states[n], op), outcome) {
            (Some(next), Ok(_)) => states[n] = next,
            (None, Err(e)) => assert_eq!(
                code(&e),
                "VM_BAD_POWER_STATE",
                "step {step}: {op} on {}",
                states[n]
            ),
            (want, got) => panic!(
                "step {step}: {op} from {}: model {want:?}, daemon {got:?}",
                states[n]
            ),
        }
        for (k, vm) in vms.iter().enumerate() {
            assert_eq!(
                power(&mut api, vm),
                states[k],
                "step {step}: power state of vm {k}"
            );
        }
        // The lifecycle keeper refreshes allowed_operations just after some changes (metrics,
        // guest data): give it a moment to settle before comparing.
        let mut got = Vec::new();
        for _ in 0..100 {
            got = allowed(&mut api, &vm);
            got.retain(|o| o != "provision");
            if got == model_allowed(states[n]) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(
            got,
            model_allowed(states[n]),
            "step {step}: allowed ops in {}",
            states[n]
        );
        let held: i64 = states
            .iter()
            .zip(sizes)
            .filter(|(st, _)| matches!(**st, "Running" | "Paused"))
            .map(|(_, mib)| mib * MIB)
            .sum();
        assert_eq!(
            free_memory(&mut api),
            free0 - held,
            "step {step}: host free memory"
        );
        let h = host(&mut api);
        let resident = strings(field(&mut api, "host", &h, "resident_VMs")).len();
        let live = states
            .iter()
            .filter(|st| matches!(**st, "Running" | "Paused"))
            .count();
        assert_eq!(resident, live + 1, "step {step}: domains (dom0 included)");
    }
}

#[test]
fn destroying_a_running_vm_is_refused_and_a_halted_one_goes() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let vm = new_vm(&mut api, "doomed", 256);
    api.ok("VM.start", vec![s(&vm), b(false), b(false)]);
    let err = api.err("VM.destroy", vec![s(&vm)]);
    assert_eq!(code(&err), "VM_BAD_POWER_STATE", "{err:?}");
    assert_eq!(power(&mut api, &vm), "Running");
    api.ok("VM.hard_shutdown", vec![s(&vm)]);
    api.ok("VM.destroy", vec![s(&vm)]);
    assert_eq!(
        code(&api.err("VM.get_record", vec![s(&vm)])),
        "HANDLE_INVALID"
    );
}
