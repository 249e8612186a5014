//! Storage over the wire: the local default SR with its plugged PBD, a `file` SR in a temp
//! directory through create/snapshot/clone/resize/destroy of VDIs with sizes kept true, and
//! upstream's errors for the refused cases.
use xapi_system_tests::fields::{boolean, field, int, strings, text};
use xapi_system_tests::{s, Api, TestDaemon, Value};

const MIB: i64 = 1 << 20;

fn code(e: &[String]) -> &str {
    e.first().map(String::as_str).unwrap_or_default()
}

fn pool(api: &mut Api) -> String {
    strings(api.ok("pool.get_all", vec![])).remove(0)
}

fn host(api: &mut Api) -> String {
    strings(api.ok("host.get_all", vec![])).remove(0)
}

fn map(pairs: &[(&str, &str)]) -> Value {
    Value::Struct(pairs.iter().map(|(k, v)| ((*k).into(), s(v))).collect())
}

fn create_sr(api: &mut Api, kind: &str, config: Value) -> Result<String, Vec<String>> {
    create_sr_with(api, kind, config, map(&[]))
}

fn create_vdi(api: &mut Api, sr: &str, name: &str, size: i64) -> Result<String, Vec<String>> {
    api.call(
        "VDI.create",
        vec![Value::Struct(vec![
            ("name_label".into(), s(name)),
            ("name_description".into(), s("")),
            ("SR".into(), s(sr)),
            ("virtual_size".into(), Value::Int(size)),
            ("type".into(), s("user")),
            ("sharable".into(), Value::Bool(false)),
            ("read_only".into(), Value::Bool(false)),
            ("other_config".into(), map(&[])),
        ])],
    )
    .map(|v| v.as_str().unwrap_or_default().to_owned())
}

/// `virtual_allocation` is the sum of the managed VDIs' virtual sizes.
fn assert_sizes_true(api: &mut Api, sr: &str) {
    api.ok("SR.update", vec![s(sr)]);
    let vdis = strings(field(api, "SR", sr, "VDIs"));
    let mut total = 0;
    for v in &vdis {
        if boolean(api, "VDI", v, "managed") {
            total += int(api, "VDI", v, "virtual_size");
        }
    }
    assert_eq!(int(api, "SR", sr, "virtual_allocation"), total);
    let size = int(api, "SR", sr, "physical_size");
    let used = int(api, "SR", sr, "physical_utilisation");
    assert!(size > 0 && used > 0 && used <= size, "{used} of {size}");
}

#[test]
fn the_default_sr_is_local_storage_with_a_plugged_pbd_and_survives_restart() {
    let mut d = TestDaemon::start();
    let mut api = d.login();
    let p = pool(&mut api);
    let sr = text(&mut api, "pool", &p, "default_SR");
    assert_eq!(text(&mut api, "SR", &sr, "name_label"), "Local storage");
    assert_eq!(text(&mut api, "SR", &sr, "type"), "file");
    assert_eq!(text(&mut api, "pool", &p, "suspend_image_SR"), sr);
    assert_eq!(text(&mut api, "pool", &p, "crash_dump_SR"), sr);
    let pbds = strings(field(&mut api, "SR", &sr, "PBDs"));
    assert_eq!(pbds.len(), 1);
    assert!(boolean(&mut api, "PBD", &pbds[0], "currently_attached"));
    assert!(int(&mut api, "SR", &sr, "physical_size") > 0);
    let vdi = create_vdi(&mut api, &sr, "kept", 4 * MIB).unwrap();
    drop(api);

    d.restart();
    let mut api = d.login();
    let p = pool(&mut api);
    assert_eq!(text(&mut api, "pool", &p, "default_SR"), sr);
    let locals = strings(api.ok("SR.get_by_name_label", vec![s("Local storage")]));
    assert_eq!(locals.len(), 1, "a restart must not make a second local SR");
    assert!(boolean(&mut api, "PBD", &pbds[0], "currently_attached"));
    assert_eq!(int(&mut api, "VDI", &vdi, "virtual_size"), 4 * MIB);
    // The SR was re-attached at start: VDI operations work.
    let snap = api.string("VDI.snapshot", vec![s(&vdi), map(&[])]);
    assert!(boolean(&mut api, "VDI", &snap, "is_a_snapshot"));
}

#[test]
fn a_file_sr_creates_snapshots_clones_resizes_and_destroys_vdis() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("sr");
    let sr = create_sr(
        &mut api,
        "file",
        map(&[("location", location.to_str().unwrap())]),
    )
    .unwrap();
    let types = strings(api.ok("SR.get_supported_types", vec![]));
    for t in ["file", "iso", "dummy", "ext"] {
        assert!(types.contains(&t.to_owned()), "{t} in {types:?}");
    }
    let pbds = strings(field(&mut api, "SR", &sr, "PBDs"));
    assert!(boolean(&mut api, "PBD", &pbds[0], "currently_attached"));

    let vdi = create_vdi(&mut api, &sr, "disk", 10 * MIB).unwrap();
    assert_eq!(int(&mut api, "VDI", &vdi, "virtual_size"), 10 * MIB);
    let uuid = text(&mut api, "VDI", &vdi, "uuid");
    assert!(location.join(format!("{uuid}.vhd")).exists());
    assert_sizes_true(&mut api, &sr);

    let snap = api.string("VDI.snapshot", vec![s(&vdi), map(&[])]);
    assert!(boolean(&mut api, "VDI", &snap, "is_a_snapshot"));
    assert_eq!(text(&mut api, "VDI", &snap, "snapshot_of"), vdi);
    assert_eq!(text(&mut api, "VDI", &snap, "name_label"), "disk");
    let snaps = strings(field(&mut api, "VDI", &vdi, "snapshots"));
    assert_eq!(snaps, vec![snap.clone()]);
    let clone = api.string("VDI.clone", vec![s(&vdi), map(&[])]);
    assert!(!boolean(&mut api, "VDI", &clone, "is_a_snapshot"));
    assert_eq!(int(&mut api, "VDI", &clone, "virtual_size"), 10 * MIB);
    assert_sizes_true(&mut api, &sr);

    api.ok("VDI.resize", vec![s(&vdi), Value::Int(20 * MIB)]);
    assert_eq!(int(&mut api, "VDI", &vdi, "virtual_size"), 20 * MIB);
    assert_eq!(int(&mut api, "VDI", &snap, "virtual_size"), 10 * MIB);
    assert_sizes_true(&mut api, &sr);

    api.ok("VDI.set_on_boot", vec![s(&vdi), s("reset")]);
    assert_eq!(text(&mut api, "VDI", &vdi, "on_boot"), "reset");
    api.ok("VDI.set_allow_caching", vec![s(&vdi), Value::Bool(true)]);
    assert!(boolean(&mut api, "VDI", &vdi, "allow_caching"));

    // Shrinking is refused; an unknown type has no driver.
    let e = api.err("VDI.resize", vec![s(&vdi), Value::Int(MIB)]);
    assert_eq!(code(&e), "INVALID_VALUE");
    let e = create_sr(&mut api, "nonesuch", map(&[])).unwrap_err();
    assert_eq!(code(&e), "SR_UNKNOWN_DRIVER");
    // A file SR needs a location: backend code 94.
    let e = create_sr(&mut api, "file", map(&[])).unwrap_err();
    assert_eq!(e, vec!["SR_BACKEND_FAILURE_94", "", &e[2], ""]);

    // A plugged SR cannot be destroyed; an unplugged one with VDIs is not empty.
    let e = api.err("SR.destroy", vec![s(&sr)]);
    assert_eq!(code(&e), "SR_HAS_PBD");
    api.ok("PBD.unplug", vec![s(&pbds[0])]);
    assert!(!boolean(&mut api, "PBD", &pbds[0], "currently_attached"));
    let e = create_vdi(&mut api, &sr, "late", MIB).unwrap_err();
    assert_eq!(code(&e), "SR_NOT_ATTACHED");
    let e = api.err("SR.destroy", vec![s(&sr)]);
    assert_eq!(code(&e), "SR_NOT_EMPTY");
    api.ok("PBD.plug", vec![s(&pbds[0])]);

    for v in [&clone, &snap, &vdi] {
        api.ok("VDI.destroy", vec![s(v)]);
    }
    let e = api.err("VDI.get_uuid", vec![s(&vdi)]);
    assert_eq!(code(&e), "HANDLE_INVALID");
    assert!(!location.join(format!("{uuid}.vhd")).exists());
    api.ok("SR.scan", vec![s(&sr)]);
    let visible: Vec<String> = strings(field(&mut api, "SR", &sr, "VDIs"))
        .into_iter()
        .filter(|v| boolean(&mut api, "VDI", v, "managed"))
        .collect();
    assert!(visible.is_empty(), "{visible:?}");
    assert_eq!(int(&mut api, "SR", &sr, "virtual_allocation"), 0);
    // The scan's garbage collection removed the hidden base copies too.
    let vhds: Vec<_> = std::fs::read_dir(&location)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "vhd"))
        .collect();
    assert!(vhds.is_empty(), "{vhds:?}");

    api.ok("PBD.unplug", vec![s(&pbds[0])]);
    api.ok("SR.destroy", vec![s(&sr)]);
    let e = api.err("SR.get_uuid", vec![s(&sr)]);
    assert_eq!(code(&e), "HANDLE_INVALID");
}

#[test]
fn an_introduced_sr_without_pbds_refuses_vdi_work_and_can_be_forgotten() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let uuid = "1b1c0d4e-3a5f-4c1e-9b65-6f4f1a2b3c4d";
    let sr = api.string(
        "SR.introduce",
        vec![
            s(uuid),
            s("introduced"),
            s(""),
            s("dummy"),
            s("user"),
            Value::Bool(false),
            map(&[]),
        ],
    );
    assert_eq!(text(&mut api, "SR", &sr, "uuid"), uuid);
    let e = create_vdi(&mut api, &sr, "x", MIB).unwrap_err();
    assert_eq!(e, vec!["SR_HAS_NO_PBDS".to_owned(), sr.clone()]);
    let e = api.err("SR.destroy", vec![s(&sr)]);
    assert_eq!(code(&e), "SR_HAS_NO_PBDS");
    api.ok("SR.forget", vec![s(&sr)]);
    let e = api.err("SR.get_uuid", vec![s(&sr)]);
    assert_eq!(code(&e), "HANDLE_INVALID");
}

#[test]
fn a_dummy_sr_keeps_vdis_in_memory() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let sr = create_sr(&mut api, "dummy", map(&[])).unwrap();
    let vdi = create_vdi(&mut api, &sr, "mem", 8 * MIB).unwrap();
    assert_eq!(int(&mut api, "VDI", &vdi, "virtual_size"), 8 * MIB);
    let h = host(&mut api);
    let e = api.err("SR.probe", vec![s(&h), map(&[]), s("nonesuch"), map(&[])]);
    assert_eq!(code(&e), "SR_UNKNOWN_DRIVER");
    api.ok("VDI.destroy", vec![s(&vdi)]);
    assert!(strings(field(&mut api, "SR", &sr, "VDIs")).is_empty());
}

fn vm_disks(api: &mut Api, vm: &str) -> Vec<String> {
    let mut out = Vec::new();
    for vbd in strings(field(api, "VM", vm, "VBDs")) {
        if text(api, "VBD", &vbd, "type") == "Disk" {
            out.push(text(api, "VBD", &vbd, "VDI"));
        }
    }
    out
}

#[test]
fn a_vm_installed_from_a_template_gets_its_disks_as_vdis_that_follow_snapshot_and_clone() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let p = pool(&mut api);
    let default_sr = text(&mut api, "pool", &p, "default_SR");
    let template = strings(api.ok("VM.get_by_name_label", vec![s("Debian Bookworm 12")])).remove(0);
    let vm = api.string("VM.clone", vec![s(&template), s("installed")]);
    let spec = api.ok("VM.get_other_config", vec![s(&vm)]);
    let Value::Struct(spec) = spec else {
        panic!("other_config")
    };
    let spec = spec
        .into_iter()
        .find(|(k, _)| k == "disks")
        .and_then(|(_, v)| v.as_str().map(str::to_owned))
        .expect("the template recommends disks");
    let wanted = spec.matches("<disk").count();
    assert!(wanted > 0);
    api.ok("VM.provision", vec![s(&vm)]);
    let disks = vm_disks(&mut api, &vm);
    assert_eq!(disks.len(), wanted);
    for vdi in &disks {
        assert_eq!(text(&mut api, "VDI", vdi, "SR"), default_sr);
        let size = int(&mut api, "VDI", vdi, "virtual_size");
        assert!(
            spec.contains(&format!("size=\"{size}\"")),
            "{size} in {spec}"
        );
    }
    assert_sizes_true(&mut api, &default_sr);
    // Provisioning consumes the recommendation: a second call adds nothing.
    api.ok("VM.provision", vec![s(&vm)]);
    assert_eq!(vm_disks(&mut api, &vm).len(), wanted);

    api.ok("VM.set_is_a_template", vec![s(&vm), Value::Bool(false)]);
    let snap = api.string("VM.snapshot", vec![s(&vm), s("before")]);
    let snap_disks = vm_disks(&mut api, &snap);
    assert_eq!(snap_disks.len(), wanted);
    for (orig, copy) in disks.iter().zip(&snap_disks) {
        assert_ne!(orig, copy, "a VM snapshot has its own disks");
        assert!(boolean(&mut api, "VDI", copy, "is_a_snapshot"));
        assert_eq!(&text(&mut api, "VDI", copy, "snapshot_of"), orig);
    }
    let clone = api.string("VM.clone", vec![s(&vm), s("twin")]);
    for (orig, copy) in disks.iter().zip(&vm_disks(&mut api, &clone)) {
        assert_ne!(orig, copy, "a VM clone has its own disks");
        assert!(!boolean(&mut api, "VDI", copy, "is_a_snapshot"));
    }
    // Reverting replaces the VM's disks with clones of the snapshot's.
    api.ok("VM.revert", vec![s(&snap)]);
    let reverted = vm_disks(&mut api, &vm);
    assert_eq!(reverted.len(), wanted);
    for old in &disks {
        assert!(!reverted.contains(old));
        let e = api.err("VDI.get_uuid", vec![s(old)]);
        assert_eq!(code(&e), "HANDLE_INVALID");
    }
    assert_sizes_true(&mut api, &default_sr);
}

/// Runs `qemu-io` on a VDI's NBD export; `None` when qemu-io is not installed.
fn qemu_io(socket: &std::path::Path, export: &str, cmd: &str) -> Option<String> {
    let uri = format!("nbd+unix:///{export}?socket={}", socket.display());
    let out = std::process::Command::new("qemu-io")
        .args(["-f", "raw", &uri, "-c", cmd])
        .output()
        .ok()?;
    assert!(out.status.success(), "qemu-io {cmd}: {out:?}");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn vdi_contents_written_through_nbd_survive_snapshot_and_restart() {
    let mut d = TestDaemon::start();
    let mut api = d.login();
    let template = strings(api.ok("VM.get_by_name_label", vec![s("Debian Bookworm 12")])).remove(0);
    let vm = api.string("VM.clone", vec![s(&template), s("data")]);
    // A small disk, so the cross-SR copy below stays quick.
    api.ok("VM.remove_from_other_config", vec![s(&vm), s("disks")]);
    api.ok(
        "VM.add_to_other_config",
        vec![
            s(&vm),
            s("disks"),
            s(r#"<provision><disk device="0" size="16777216" sr="" bootable="true" type="system"/></provision>"#),
        ],
    );
    api.ok("VM.provision", vec![s(&vm)]);
    api.ok("VM.set_is_a_template", vec![s(&vm), Value::Bool(false)]);
    let m = 256 * MIB;
    api.ok(
        "VM.set_memory_limits",
        vec![
            s(&vm),
            Value::Int(m),
            Value::Int(m),
            Value::Int(m),
            Value::Int(m),
        ],
    );
    let vdi = vm_disks(&mut api, &vm).remove(0);
    let uuid = text(&mut api, "VDI", &vdi, "uuid");
    let socket = d.state_dir().join("nbd").join(format!("{uuid}.sock"));
    api.ok(
        "VM.start",
        vec![s(&vm), Value::Bool(false), Value::Bool(false)],
    );
    assert!(socket.exists(), "starting the VM activates its disk");
    let Some(_) = qemu_io(&socket, &uuid, "write -P 0xa5 1M 64k") else {
        eprintln!("qemu-io missing (Debian: qemu-utils); data path not checked");
        return;
    };
    let snap = api.string("VM.snapshot", vec![s(&vm), s("marked")]);
    let snap_vdi = vm_disks(&mut api, &snap).remove(0);
    let snap_uuid = text(&mut api, "VDI", &snap_vdi, "uuid");
    // Written after the snapshot: the snapshot must not see it.
    qemu_io(&socket, &uuid, "write -P 0x5a 2M 64k").unwrap();
    api.ok("VM.hard_shutdown", vec![s(&vm)]);
    assert!(!socket.exists(), "a halted VM's disk is deactivated");
    drop(api);

    d.restart();
    let mut api = d.login();
    api.ok(
        "VM.start",
        vec![s(&vm), Value::Bool(false), Value::Bool(false)],
    );
    let out = qemu_io(&socket, &uuid, "read -P 0xa5 1M 64k").unwrap();
    assert!(!out.contains("Pattern verification failed"), "{out}");
    let out = qemu_io(&socket, &uuid, "read -P 0x5a 2M 64k").unwrap();
    assert!(!out.contains("Pattern verification failed"), "{out}");
    api.ok("VM.hard_shutdown", vec![s(&vm)]);

    // The snapshot's disk, cloned into a new VM, has the first marker only.
    let copy = api.string("VM.clone", vec![s(&snap), s("from-snapshot")]);
    let copy_vdi = vm_disks(&mut api, &copy).remove(0);
    assert_ne!(copy_vdi, snap_vdi);
    let copy_uuid = text(&mut api, "VDI", &copy_vdi, "uuid");
    api.ok("VM.set_is_a_template", vec![s(&copy), Value::Bool(false)]);
    api.ok(
        "VM.start",
        vec![s(&copy), Value::Bool(false), Value::Bool(false)],
    );
    let copy_socket = d.state_dir().join("nbd").join(format!("{copy_uuid}.sock"));
    let out = qemu_io(&copy_socket, &copy_uuid, "read -P 0xa5 1M 64k").unwrap();
    assert!(!out.contains("Pattern verification failed"), "{out}");
    let out = qemu_io(&copy_socket, &copy_uuid, "read -P 0 2M 64k").unwrap();
    assert!(!out.contains("Pattern verification failed"), "{out}");
    assert!(!snap_uuid.is_empty());

    // VDI.copy to another SR goes through both data paths: the copy has both markers.
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("sr");
    let other = create_sr(
        &mut api,
        "file",
        map(&[("location", location.to_str().unwrap())]),
    )
    .unwrap();
    let copied = api.string(
        "VDI.copy",
        vec![s(&vdi), s(&other), s("OpaqueRef:NULL"), s("OpaqueRef:NULL")],
    );
    assert_eq!(text(&mut api, "VDI", &copied, "SR"), other);
    assert_eq!(
        int(&mut api, "VDI", &copied, "virtual_size"),
        int(&mut api, "VDI", &vdi, "virtual_size")
    );
    let copied_uuid = text(&mut api, "VDI", &copied, "uuid");
    let raw = dir.path().join("copy.raw");
    let status = std::process::Command::new("qemu-img")
        .args(["convert", "-f", "vpc", "-O", "raw"])
        .arg(location.join(format!("{copied_uuid}.vhd")))
        .arg(&raw)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&raw).unwrap();
    let at = |off: usize| &bytes[off..off + 65536];
    assert!(at(1 << 20).iter().all(|b| *b == 0xa5));
    assert!(at(2 << 20).iter().all(|b| *b == 0x5a));
    assert!(at(4 << 20).iter().all(|b| *b == 0));
}

fn create_sr_with(
    api: &mut Api,
    kind: &str,
    config: Value,
    sm_config: Value,
) -> Result<String, Vec<String>> {
    let h = host(api);
    api.call(
        "SR.create",
        vec![
            s(&h),
            config,
            Value::Int(0),
            s("test SR"),
            s(""),
            s(kind),
            s("user"),
            Value::Bool(false),
            sm_config,
        ],
    )
    .map(|v| v.as_str().unwrap_or_default().to_owned())
}

/// A halted, non-template VM (cloned from the Debian template) whose one disk of `size`
/// bytes is on the SR with uuid `sr_uuid` (the default SR when empty).
fn vm_with_disk(api: &mut Api, name: &str, size: i64, sr_uuid: &str) -> (String, String) {
    let template = strings(api.ok("VM.get_by_name_label", vec![s("Debian Bookworm 12")])).remove(0);
    let vm = api.string("VM.clone", vec![s(&template), s(name)]);
    api.ok("VM.remove_from_other_config", vec![s(&vm), s("disks")]);
    let spec = format!(
        r#"<provision><disk device="0" size="{size}" sr="{sr_uuid}" bootable="true" type="system"/></provision>"#
    );
    api.ok("VM.add_to_other_config", vec![s(&vm), s("disks"), s(&spec)]);
    api.ok("VM.provision", vec![s(&vm)]);
    api.ok("VM.set_is_a_template", vec![s(&vm), Value::Bool(false)]);
    let m = 256 * MIB;
    api.ok(
        "VM.set_memory_limits",
        vec![
            s(&vm),
            Value::Int(m),
            Value::Int(m),
            Value::Int(m),
            Value::Int(m),
        ],
    );
    let vdi = vm_disks(api, &vm).remove(0);
    (vm, vdi)
}

fn start(api: &mut Api, vm: &str) {
    api.ok(
        "VM.start",
        vec![s(vm), Value::Bool(false), Value::Bool(false)],
    );
}

/// An NBD connection to the active VDI with uuid `uuid`.
fn nbd_client(d: &TestDaemon, uuid: &str) -> nbd::Client {
    let socket = d.state_dir().join("nbd").join(format!("{uuid}.sock"));
    nbd::Client::connect(&socket, uuid).expect("the VDI is served over NBD")
}

/// The VHD files of an SR directory, by file name.
fn vhd_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("the SR directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".vhd"))
        .collect();
    names.sort();
    names
}

/// The raw contents of a dynamic VHD, read by qemu-img (an independent reader); `None` when
/// qemu-img is not installed.
fn vhd_contents(vhd: &std::path::Path) -> Option<Vec<u8>> {
    let raw = tempfile::NamedTempFile::new().expect("a temp file");
    let status = std::process::Command::new("qemu-img")
        .args(["convert", "-f", "vpc", "-O", "raw"])
        .arg(vhd)
        .arg(raw.path())
        .status()
        .ok()?;
    assert!(status.success(), "qemu-img convert {}", vhd.display());
    Some(std::fs::read(raw.path()).expect("qemu-img's output"))
}

#[test]
fn probe_ext_reports_each_sr_found_as_a_complete_configuration() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let h = host(&mut api);
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("sr");
    let config = map(&[("location", location.to_str().unwrap())]);
    let sr = create_sr(&mut api, "file", config.clone()).unwrap();
    let uuid = text(&mut api, "SR", &sr, "uuid");
    let found = api.ok(
        "SR.probe_ext",
        vec![s(&h), config.clone(), s("file"), map(&[])],
    );
    let Value::Array(found) = found else {
        panic!("probe_ext returns a set: {found:?}")
    };
    assert_eq!(found.len(), 1, "{found:?}");
    let Value::Struct(result) = &found[0] else {
        panic!("a probe_result record: {found:?}")
    };
    let get = |k: &str| result.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("complete"), Some(Value::Bool(true)));
    assert_eq!(get("configuration"), Some(config));
    let Some(Value::Struct(stat)) = get("sr") else {
        panic!("an sr_stat: {result:?}")
    };
    assert!(stat.contains(&("uuid".to_owned(), s(&uuid))), "{stat:?}");
    assert!(
        stat.contains(&("health".to_owned(), s("healthy"))),
        "{stat:?}"
    );
    // An empty directory holds no SR.
    let empty = tempfile::tempdir().unwrap();
    let none = api.ok(
        "SR.probe_ext",
        vec![
            s(&h),
            map(&[("location", empty.path().to_str().unwrap())]),
            s("file"),
            map(&[]),
        ],
    );
    assert_eq!(none, Value::Array(vec![]));
}

#[test]
fn vdi_copy_into_an_existing_vdi_replaces_its_contents() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let (vm, vdi) = vm_with_disk(&mut api, "source", 8 * MIB, "");
    let uuid = text(&mut api, "VDI", &vdi, "uuid");
    start(&mut api, &vm);
    let mut c = nbd_client(&d, &uuid);
    c.write_at(MIB as u64, &[0xa5; 65536]).unwrap();
    c.flush().unwrap();
    c.disconnect().unwrap();
    api.ok("VM.hard_shutdown", vec![s(&vm)]);
    let sr = text(&mut api, "VDI", &vdi, "SR");
    let null = "OpaqueRef:NULL";

    // Fill a target with the marker (a copy to a new VDI), then copy an empty VDI into it:
    // every chunk is written, so the marker is gone.
    let target = api.string("VDI.copy", vec![s(&vdi), s(&sr), s(null), s(null)]);
    let empty = create_vdi(&mut api, &sr, "empty", 8 * MIB).unwrap();
    let into = api.string("VDI.copy", vec![s(&empty), s(null), s(null), s(&target)]);
    assert_eq!(into, target, "VDI.copy into_vdi returns that VDI");
    let sr_dir = d.state_dir().join("sr");
    let target_uuid = text(&mut api, "VDI", &target, "uuid");
    let vhd = std::fs::read_dir(&sr_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(format!("{target_uuid}.vhd")))
        .find(|p| p.exists())
        .expect("the target's VHD in the local SR");
    if let Some(bytes) = vhd_contents(&vhd) {
        assert!(bytes[MIB as usize..][..65536].iter().all(|b| *b == 0));
    }
    // And back: the source's marker arrives in the existing VDI.
    api.ok("VDI.copy", vec![s(&vdi), s(null), s(null), s(&target)]);
    if let Some(bytes) = vhd_contents(&vhd) {
        assert!(bytes[MIB as usize..][..65536].iter().all(|b| *b == 0xa5));
    }

    // A smaller VDI cannot take the contents; a snapshot is read-only.
    let small = create_vdi(&mut api, &sr, "small", 4 * MIB).unwrap();
    let e = api.err("VDI.copy", vec![s(&vdi), s(null), s(null), s(&small)]);
    assert_eq!(
        e,
        vec![
            "VDI_TOO_SMALL".to_owned(),
            small.clone(),
            (8 * MIB).to_string()
        ]
    );
    let snap = api.string("VDI.snapshot", vec![s(&target), map(&[])]);
    let e = api.err("VDI.copy", vec![s(&vdi), s(null), s(null), s(&snap)]);
    assert_eq!(e, vec!["VDI_READONLY".to_owned(), snap.clone()]);
}

#[test]
fn a_thick_sr_refuses_what_exceeds_its_free_space_with_sr_full() {
    const GIB: i64 = 1 << 30;
    let d = TestDaemon::start();
    let mut api = d.login();
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("sr");
    let sr = create_sr_with(
        &mut api,
        "file",
        map(&[("location", location.to_str().unwrap())]),
        map(&[("allocation", "thick")]),
    )
    .unwrap();
    api.ok("SR.update", vec![s(&sr)]);
    let size = int(&mut api, "SR", &sr, "physical_size");
    let used = int(&mut api, "SR", &sr, "physical_utilisation");
    // Beyond the whole filesystem (within the VHD limit of 2040 GiB when possible).
    let huge = (size + GIB).min(2040 * GIB);
    if huge <= size - used {
        eprintln!("filesystem larger than the VHD limit; SR_FULL not checked");
        return;
    }
    let e = create_vdi(&mut api, &sr, "huge", huge).unwrap_err();
    assert_eq!(code(&e), "SR_FULL", "{e:?}");
    assert_eq!(e[1], huge.to_string(), "requested");
    let free: i64 = e[2].parse().unwrap();
    assert!(free <= size - used && free >= 0, "maximum {free} of {size}");
    assert!(strings(field(&mut api, "SR", &sr, "VDIs")).is_empty());

    // Most of the free space: created; a snapshot would promise as much again: refused.
    let big = (free / 5 * 3) / (2 * MIB) * (2 * MIB);
    let vdi = create_vdi(&mut api, &sr, "big", big).unwrap();
    let e = api.err("VDI.snapshot", vec![s(&vdi), map(&[])]);
    assert_eq!(code(&e), "SR_FULL", "{e:?}");
    assert_eq!(e[1], big.to_string());
    let e = api.err("VDI.resize", vec![s(&vdi), Value::Int(huge)]);
    assert_eq!(code(&e), "SR_FULL", "{e:?}");
    assert_eq!(e[1], (huge - big).to_string());
    api.ok("VDI.destroy", vec![s(&vdi)]);

    // The default (thin) SR may be overcommitted, as upstream's file SRs.
    let p = pool(&mut api);
    let local = text(&mut api, "pool", &p, "default_SR");
    let thin = create_vdi(&mut api, &local, "overcommitted", huge).unwrap();
    assert!(int(&mut api, "VDI", &thin, "virtual_size") >= huge);
    api.ok("VDI.destroy", vec![s(&thin)]);
}

#[test]
fn vdis_of_a_udev_sr_are_physical_devices_that_cannot_be_destroyed() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sdb"), vec![0u8; MIB as usize]).unwrap();
    let sr = create_sr(
        &mut api,
        "udev",
        map(&[("location", dir.path().to_str().unwrap())]),
    )
    .unwrap();
    let vdis = strings(field(&mut api, "SR", &sr, "VDIs"));
    assert_eq!(vdis.len(), 1, "{vdis:?}");
    let vdi = &vdis[0];
    assert_eq!(text(&mut api, "VDI", vdi, "location"), "sdb");
    assert_eq!(int(&mut api, "VDI", vdi, "virtual_size"), MIB);
    let e = api.err("VDI.destroy", vec![s(vdi)]);
    assert_eq!(e, vec!["VDI_IS_A_PHYSICAL_DEVICE".to_owned(), vdi.clone()]);
    assert!(dir.path().join("sdb").exists());
    // The SR cannot make devices either.
    let e = create_vdi(&mut api, &sr, "new", MIB).unwrap_err();
    assert_eq!(code(&e), "UNIMPLEMENTED_IN_SM_BACKEND");
}

#[test]
fn destroying_a_snapshot_coalesces_the_chain_in_the_background() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("sr");
    let sr = create_sr(
        &mut api,
        "file",
        map(&[("location", location.to_str().unwrap())]),
    )
    .unwrap();
    let vdi = create_vdi(&mut api, &sr, "disk", 8 * MIB).unwrap();
    let uuid = text(&mut api, "VDI", &vdi, "uuid");
    let snap = api.string("VDI.snapshot", vec![s(&vdi), map(&[])]);
    assert_eq!(
        vhd_files(&location).len(),
        3,
        "base copy, leaf and snapshot"
    );
    api.ok("VDI.destroy", vec![s(&snap)]);
    // No scan: the collector runs by itself and leaves the VDI as a single VHD.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let want = vec![format!("{uuid}.vhd")];
    while vhd_files(&location) != want {
        assert!(
            std::time::Instant::now() < deadline,
            "chain not coalesced: {:?}",
            vhd_files(&location)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let Value::Struct(sm_config) = api.ok("VDI.get_sm_config", vec![s(&vdi)]) else {
        panic!("sm_config")
    };
    assert!(
        !sm_config.iter().any(|(k, _)| k == "vhd-parent"),
        "{sm_config:?}"
    );
    let managed: Vec<String> = strings(field(&mut api, "SR", &sr, "VDIs"));
    assert_eq!(
        managed,
        vec![vdi.clone()],
        "the base copy's record went too"
    );
}

/// A loop device over a sparse temp file, detached on drop.
struct Loop {
    device: String,
    _file: tempfile::NamedTempFile,
}

impl Loop {
    /// `None` (with the reason printed) when not root or `losetup` is missing.
    fn new(size: u64) -> Option<Loop> {
        let uid = std::process::Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("not root: the ext SR test needs a loop device");
            return None;
        }
        let file = tempfile::NamedTempFile::new().expect("a temp file");
        file.as_file()
            .set_len(size)
            .expect("sizing the backing file");
        let out = match std::process::Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file.path())
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                eprintln!("losetup missing ({e}; Debian: mount): ext SR not checked");
                return None;
            }
        };
        assert!(out.status.success(), "losetup: {out:?}");
        let device = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Some(Loop {
            device,
            _file: file,
        })
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.device])
            .status();
    }
}

#[test]
fn an_ext_sr_on_a_loop_device_formats_mounts_serves_snapshots_and_goes_away() {
    let Some(dev) = Loop::new(256 * MIB as u64) else {
        return;
    };
    let d = TestDaemon::start();
    let mut api = d.login();
    let sr = create_sr(&mut api, "ext", map(&[("device", &dev.device)])).unwrap();
    let sr_uuid = text(&mut api, "SR", &sr, "uuid");
    let mount = d.state_dir().join("sr-mount").join(&sr_uuid);
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        mounts
            .lines()
            .any(|l| l.starts_with(&format!("{} ", dev.device)) && l.contains(" ext4 ")),
        "the driver formatted and mounted {}: {mounts}",
        dev.device
    );
    let size = int(&mut api, "SR", &sr, "physical_size");
    assert!(size > 200 * MIB && size <= 256 * MIB, "{size}");

    let (vm, vdi) = vm_with_disk(&mut api, "on-ext", 16 * MIB, &sr_uuid);
    assert_eq!(text(&mut api, "VDI", &vdi, "SR"), sr);
    let uuid = text(&mut api, "VDI", &vdi, "uuid");
    assert!(mount.join(format!("{uuid}.vhd")).exists());
    start(&mut api, &vm);
    let mut c = nbd_client(&d, &uuid);
    c.write_at(3 * MIB as u64, &[0x3c; 65536]).unwrap();
    c.flush().unwrap();
    // A snapshot of the running disk, then a write it must not see.
    let snap = api.string("VDI.snapshot", vec![s(&vdi), map(&[])]);
    c.write_at(3 * MIB as u64, &[0xc3; 65536]).unwrap();
    let mut back = vec![0u8; 65536];
    c.read_at(3 * MIB as u64, &mut back).unwrap();
    assert!(back.iter().all(|b| *b == 0xc3));
    c.disconnect().unwrap();
    api.ok("VM.hard_shutdown", vec![s(&vm)]);
    // The snapshot's contents, through a copy to the local SR read by qemu-img.
    let p = pool(&mut api);
    let local = text(&mut api, "pool", &p, "default_SR");
    let null = "OpaqueRef:NULL";
    let copy = api.string("VDI.copy", vec![s(&snap), s(&local), s(null), s(null)]);
    let copy_uuid = text(&mut api, "VDI", &copy, "uuid");
    let local_dir = std::fs::read_dir(d.state_dir().join("sr"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join(format!("{copy_uuid}.vhd")).exists())
        .unwrap();
    if let Some(bytes) = vhd_contents(&local_dir.join(format!("{copy_uuid}.vhd"))) {
        assert!(bytes[3 * MIB as usize..][..65536]
            .iter()
            .all(|b| *b == 0x3c));
    }

    // Tear down: VM and disks, then the SR; the mount goes with it.
    api.ok("VDI.destroy", vec![s(&snap)]);
    for vbd in strings(field(&mut api, "VM", &vm, "VBDs")) {
        api.ok("VBD.destroy", vec![s(&vbd)]);
    }
    api.ok("VM.destroy", vec![s(&vm)]);
    api.ok("VDI.destroy", vec![s(&vdi)]);
    let pbds = strings(field(&mut api, "SR", &sr, "PBDs"));
    api.ok("PBD.unplug", vec![s(&pbds[0])]);
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts
            .lines()
            .any(|l| l.starts_with(&format!("{} ", dev.device))),
        "unplugging unmounts: {mounts}"
    );
    api.ok("SR.destroy", vec![s(&sr)]);
    let e = api.err("SR.get_uuid", vec![s(&sr)]);
    assert_eq!(code(&e), "HANDLE_INVALID");
}

#[test]
fn a_booting_sim_guest_writes_its_marker_into_its_first_disk() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let (vm, vdi) = vm_with_disk(&mut api, "marked", 8 * MIB, "");
    let vm_uuid = text(&mut api, "VM", &vm, "uuid");
    let uuid = text(&mut api, "VDI", &vdi, "uuid");
    start(&mut api, &vm);
    // The guest boots (at once or after its boot delay) and writes through the NBD export.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut sector = vec![0u8; 512];
    loop {
        let mut c = nbd_client(&d, &uuid);
        c.read_at(0, &mut sector).unwrap();
        c.disconnect().unwrap();
        if sector.starts_with(b"XAPI-RS-SIM-BOOT\n") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no boot marker: {sector:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let text_of = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        text_of(&sector).contains(&format!("vm={vm_uuid}\n")),
        "{}",
        text_of(&sector)
    );
    api.ok("VM.hard_shutdown", vec![s(&vm)]);
    // After shutdown the marker is in the VHD file, as an independent reader sees it.
    let sr_dir = d.state_dir().join("sr");
    let vhd = std::fs::read_dir(&sr_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(format!("{uuid}.vhd")))
        .find(|p| p.exists())
        .unwrap();
    if let Some(bytes) = vhd_contents(&vhd) {
        assert_eq!(&bytes[..512], &sector[..]);
    }
}

/// `VDI.db_introduce` with the full parameter list (nothing left to defaults).
fn db_introduce(
    api: &mut Api,
    uuid: &str,
    name: &str,
    sr: &str,
    location: &str,
    virtual_size: i64,
) -> Result<String, Vec<String>> {
    let null = "OpaqueRef:NULL";
    api.call(
        "VDI.db_introduce",
        vec![
            s(uuid),
            s(name),
            s(""),
            s(sr),
            s("user"),
            Value::Bool(false),
            Value::Bool(false),
            map(&[("kept", "yes")]),
            s(location),
            map(&[]),
            map(&[]),
            Value::Bool(true),
            Value::Int(virtual_size),
            Value::Int(0),
            s(null),
            Value::Bool(false),
            Value::DateTime("19700101T00:00:00Z".into()),
            s(null),
            Value::Bool(false),
        ],
    )
    .map(|v| v.as_str().unwrap_or_default().to_owned())
}

#[test]
fn db_forget_and_db_introduce_touch_only_the_database() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let methods = api.ok("system.listMethods", vec![]);
    let Value::Array(methods) = methods else {
        panic!("listMethods returns an array: {methods:?}")
    };
    // Hidden messages are callable, so listMethods names them like the other hidden ones.
    for hidden in [
        "VDI.db_forget",
        "VDI.db_introduce",
        "VDI.get_all_records_where",
    ] {
        assert!(methods.contains(&s(hidden)), "{hidden} is listed");
    }

    // A VM disk with a marker written through the data path; then detached from the VM.
    let (vm, vdi) = vm_with_disk(&mut api, "db-forget", 8 * MIB, "");
    let uuid = text(&mut api, "VDI", &vdi, "uuid");
    let sr = text(&mut api, "VDI", &vdi, "SR");
    let location = text(&mut api, "VDI", &vdi, "location");
    start(&mut api, &vm);
    let mut c = nbd_client(&d, &uuid);
    c.write_at(MIB as u64, &[0xa5; 65536]).unwrap();
    c.flush().unwrap();
    c.disconnect().unwrap();
    api.ok("VM.hard_shutdown", vec![s(&vm)]);
    for vbd in strings(field(&mut api, "VM", &vm, "VBDs")) {
        api.ok("VBD.destroy", vec![s(&vbd)]);
    }
    let vhd = std::fs::read_dir(d.state_dir().join("sr"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(format!("{uuid}.vhd")))
        .find(|p| p.exists())
        .expect("the VDI's VHD in the local SR");

    // db_forget drops the record and nothing else: the file stays, and a scan finds it again
    // as a new record.
    api.ok("VDI.db_forget", vec![s(&vdi)]);
    assert_eq!(
        api.err("VDI.get_record", vec![s(&vdi)]),
        vec!["HANDLE_INVALID", "VDI", &vdi]
    );
    assert_eq!(
        api.err("VDI.get_by_uuid", vec![s(&uuid)]),
        vec!["UUID_INVALID", "VDI", &uuid]
    );
    assert!(!strings(field(&mut api, "SR", &sr, "VDIs")).contains(&vdi));
    assert!(vhd.exists(), "db_forget leaves the data on the SR");
    api.ok("SR.scan", vec![s(&sr)]);
    let found = api.string("VDI.get_by_uuid", vec![s(&uuid)]);
    assert_ne!(found, vdi, "the scan made a new record");
    assert_eq!(text(&mut api, "VDI", &found, "location"), location);

    // Forgotten again, then db_introduce'd under its uuid and location.
    api.ok("VDI.db_forget", vec![s(&found)]);
    assert!(vhd.exists());
    let back = db_introduce(&mut api, &uuid, "reintroduced", &sr, &location, 8 * MIB).unwrap();
    assert_eq!(api.string("VDI.get_by_uuid", vec![s(&uuid)]), back);
    assert_eq!(text(&mut api, "VDI", &back, "name_label"), "reintroduced");
    assert_eq!(text(&mut api, "VDI", &back, "location"), location);
    assert_eq!(text(&mut api, "VDI", &back, "SR"), sr);
    assert_eq!(int(&mut api, "VDI", &back, "virtual_size"), 8 * MIB);
    assert_eq!(
        field(&mut api, "VDI", &back, "other_config"),
        map(&[("kept", "yes")])
    );
    assert!(strings(field(&mut api, "SR", &sr, "VDIs")).contains(&back));

    // Upstream's refusals; the short form leaves the trailing parameters to their defaults.
    let short = |uuid: &str, location: &str| {
        vec![
            s(uuid),
            s("again"),
            s(""),
            s(&sr),
            s("user"),
            Value::Bool(false),
            Value::Bool(false),
            map(&[]),
            s(location),
        ]
    };
    let fresh = "00000000-0000-4000-8000-0000000000aa";
    assert_eq!(
        api.err("VDI.db_introduce", short(&uuid, "elsewhere")),
        vec!["UUID_INVALID", "VDI", &uuid]
    );
    assert_eq!(
        api.err("VDI.db_introduce", short(fresh, &location)),
        vec!["LOCATION_NOT_UNIQUE", &sr, &location]
    );
    assert_eq!(
        api.err("VDI.db_introduce", short("not-a-uuid", "elsewhere")),
        vec!["UUID_INVALID", "VDI", "not-a-uuid"]
    );
    let other = api.string("VDI.db_introduce", short(fresh, "elsewhere"));
    assert!(
        boolean(&mut api, "VDI", &other, "managed"),
        "managed defaults to true"
    );
    assert_eq!(int(&mut api, "VDI", &other, "virtual_size"), 0);
    api.ok("VDI.db_forget", vec![s(&other)]);
    assert!(vhd.exists(), "forgetting a record never touches data");

    // The reintroduced VDI is usable: attached to the VM again, its marker reads back.
    api.ok(
        "VBD.create",
        vec![Value::Struct(vec![
            ("VM".into(), s(&vm)),
            ("VDI".into(), s(&back)),
            ("userdevice".into(), s("0")),
            ("bootable".into(), Value::Bool(true)),
            ("mode".into(), s("RW")),
            ("type".into(), s("Disk")),
            ("empty".into(), Value::Bool(false)),
            ("unpluggable".into(), Value::Bool(false)),
            ("other_config".into(), map(&[])),
            ("qos_algorithm_type".into(), s("")),
            ("qos_algorithm_params".into(), map(&[])),
        ])],
    );
    start(&mut api, &vm);
    let mut c = nbd_client(&d, &uuid);
    assert_eq!(c.size(), 8 * MIB as u64);
    let mut buf = vec![0; 65536];
    c.read_at(MIB as u64, &mut buf).unwrap();
    assert!(
        buf.iter().all(|b| *b == 0xa5),
        "the data survived forget and introduce"
    );
    c.disconnect().unwrap();
    api.ok("VM.hard_shutdown", vec![s(&vm)]);
}
