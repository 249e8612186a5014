//! End-to-end tests of the table-driven and written-out explicit commands: the built `xe`
//! against the real daemon (simulated hypervisor), each effect checked with `-param-get`.
mod common;

use common::{xe, Run};
use xapi_system_tests::TestDaemon;

fn ok(r: Run, what: &str) -> String {
    assert_eq!(r.code, 0, "{what}: {}{}", r.out, r.err);
    r.out.trim().to_owned()
}

fn get(d: &TestDaemon, class: &str, uuid: &str, param: &str) -> String {
    let u = format!("uuid={uuid}");
    let p = format!("param-name={param}");
    ok(
        xe(d, &[&format!("{class}-param-get"), &u, &p]),
        &format!("{class} {param}"),
    )
}

#[test]
fn vm_memory_and_vcpu_commands_change_the_vm() {
    let d = TestDaemon::start();
    let vm = ok(xe(&d, &["vm-create", "name-label=mem-test"]), "vm-create");
    assert_eq!(get(&d, "vm", &vm, "name-label"), "mem-test");
    let u = format!("uuid={vm}");

    ok(
        xe(
            &d,
            &[
                "vm-memory-limits-set",
                &u,
                "static-min=128MiB",
                "static-max=1GiB",
                "dynamic-min=256MiB",
                "dynamic-max=512MiB",
            ],
        ),
        "vm-memory-limits-set",
    );
    assert_eq!(get(&d, "vm", &vm, "memory-static-max"), "1073741824");
    assert_eq!(get(&d, "vm", &vm, "memory-dynamic-min"), "268435456");

    // As upstream: the target is both ends of the dynamic range.
    ok(
        xe(&d, &["vm-memory-target-set", &u, "target=384MiB"]),
        "vm-memory-target-set",
    );
    assert_eq!(get(&d, "vm", &vm, "memory-dynamic-min"), "402653184");
    assert_eq!(get(&d, "vm", &vm, "memory-dynamic-max"), "402653184");

    ok(
        xe(
            &d,
            &[
                "vm-memory-dynamic-range-set",
                &u,
                "min=300MiB",
                "max=600MiB",
            ],
        ),
        "vm-memory-dynamic-range-set",
    );
    assert_eq!(get(&d, "vm", &vm, "memory-dynamic-max"), "629145600");

    ok(
        xe(&d, &["vm-memory-set", &u, "memory=768MiB"]),
        "vm-memory-set",
    );
    assert_eq!(get(&d, "vm", &vm, "memory-dynamic-max"), "805306368");

    let bad = xe(&d, &["vm-vcpu-hotplug", &u, "new-vcpus=two"]);
    assert_eq!(bad.code, 1);
    assert_eq!(
        bad.err,
        "Error: Failed to parse parameter 'new-vcpus': expecting an integer\n"
    );

    // vCPU hot-plug on the running VM.
    ok(xe(&d, &["vm-param-set", &u, "VCPUs-max=4"]), "VCPUs-max");
    ok(xe(&d, &["vm-start", &u]), "vm-start");
    ok(
        xe(&d, &["vm-vcpu-hotplug", &u, "new-vcpus=3"]),
        "vm-vcpu-hotplug",
    );
    assert_eq!(get(&d, "vm", &vm, "VCPUs-number"), "3");
    ok(xe(&d, &["vm-shutdown", &u, "--force"]), "vm-shutdown");
}

#[test]
fn host_vdi_and_unimplemented_commands() {
    let d = TestDaemon::start();
    let host = ok(xe(&d, &["host-list", "--minimal", "params=uuid"]), "host");
    let free = ok(
        xe(&d, &["host-compute-free-memory", &format!("uuid={host}")]),
        "host-compute-free-memory",
    );
    assert!(free.parse::<u64>().is_ok(), "{free}");

    // A call the daemon has not implemented still goes over the wire; its error is printed.
    let r = xe(&d, &["host-disable", &format!("uuid={host}")]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("not implemented"), "{}", r.err);

    // A call missing from the datamodel reaches the daemon, which names it unknown.
    let r = xe(&d, &["host-enable-ssh", &format!("uuid={host}")]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("method: host.enable_ssh"), "{}", r.err);

    let sr = ok(
        xe(&d, &["sr-list", "type=file", "--minimal", "params=uuid"]),
        "sr",
    );
    let sr = sr.split(',').next().unwrap_or_default().to_owned();
    let vdi = ok(
        xe(
            &d,
            &[
                "vdi-create",
                &format!("sr-uuid={sr}"),
                "name-label=disk0",
                "virtual-size=64MiB",
            ],
        ),
        "vdi-create",
    );
    let u = format!("uuid={vdi}");
    ok(
        xe(&d, &["vdi-resize", &u, "disk-size=128MiB"]),
        "vdi-resize",
    );
    assert_eq!(get(&d, "vdi", &vdi, "virtual-size"), "134217728");
    let clone = ok(
        xe(&d, &["vdi-clone", &u, "new-name-label=disk0-clone"]),
        "vdi-clone",
    );
    assert_ne!(clone, vdi);
    assert_eq!(get(&d, "vdi", &clone, "name-label"), "disk0-clone");
    ok(
        xe(&d, &["vdi-destroy", &format!("uuid={clone}")]),
        "vdi-destroy",
    );
    let gone = xe(
        &d,
        &["vdi-param-get", &format!("uuid={clone}"), "param-name=uuid"],
    );
    assert_eq!(gone.code, 1);

    // snapshot commands on a VM snapshot.
    let vm = ok(xe(&d, &["vm-create", "name-label=snap-src"]), "vm-create");
    let snap = ok(
        xe(
            &d,
            &["vm-snapshot", &format!("uuid={vm}"), "new-name-label=s1"],
        ),
        "vm-snapshot",
    );
    let copy = ok(
        xe(
            &d,
            &[
                "snapshot-clone",
                &format!("uuid={snap}"),
                "new-name-label=from-snap",
                "new-name-description=cloned",
            ],
        ),
        "snapshot-clone",
    );
    assert_eq!(get(&d, "template", &copy, "name-description"), "cloned");
    ok(
        xe(&d, &["snapshot-destroy", &format!("snapshot-uuid={snap}")]),
        "snapshot-destroy",
    );
    let gone = xe(
        &d,
        &[
            "snapshot-param-get",
            &format!("uuid={snap}"),
            "param-name=uuid",
        ],
    );
    assert_eq!(gone.code, 1);
}

/// As upstream, `vm-uninstall` destroys the disks the VM owns (`vm-disk-add` marks them with
/// `other-config:owner`) and leaves those `vbd-create` attached (not owned).
#[test]
fn vm_uninstall_destroys_owned_disks_and_keeps_attached_ones() {
    let d = TestDaemon::start();
    let vm = ok(xe(&d, &["vm-create", "name-label=owner-test"]), "vm-create");
    let sr = ok(
        xe(&d, &["pool-list", "params=default-SR", "--minimal"]),
        "default SR",
    );
    let vm_arg = format!("vm={vm}");
    let sr_arg = format!("sr-uuid={sr}");
    ok(
        xe(
            &d,
            &[
                "vm-disk-add",
                &vm_arg,
                &sr_arg,
                "disk-size=4MiB",
                "device=0",
            ],
        ),
        "vm-disk-add",
    );
    let vm_uuid = format!("vm-uuid={vm}");
    let owned_vbd = ok(xe(&d, &["vbd-list", &vm_uuid, "--minimal"]), "vbd-list");
    let owned = get(&d, "vbd", &owned_vbd, "vdi-uuid");
    let kept = ok(
        xe(
            &d,
            &[
                "vdi-create",
                &sr_arg,
                "name-label=kept",
                "virtual-size=4MiB",
                "type=user",
            ],
        ),
        "vdi-create",
    );
    let vbd = ok(
        xe(
            &d,
            &[
                "vbd-create",
                &vm_uuid,
                &format!("vdi-uuid={kept}"),
                "device=1",
                "mode=RW",
                "type=Disk",
            ],
        ),
        "vbd-create",
    );
    assert_eq!(get(&d, "vbd", &vbd, "other-config"), "");
    assert!(get(&d, "vbd", &owned_vbd, "other-config").contains("owner"));
    ok(
        xe(&d, &["vm-uninstall", &format!("uuid={vm}"), "--force"]),
        "vm-uninstall",
    );
    let list = |uuid: &str| {
        ok(
            xe(&d, &["vdi-list", &format!("uuid={uuid}"), "--minimal"]),
            "vdi-list",
        )
    };
    assert_eq!(list(&owned), "", "the owned disk went with the VM");
    assert_eq!(list(&kept), kept, "the attached disk stays");
}
