//! VM export and import as XVA over HTTP: a VM whose disk holds known bytes is exported with
//! `GET /export`, the tar carries upstream's member names (zero chunks left out), and
//! `PUT /import` creates a new VM (new uuids) whose disk reads back the same bytes. Requests
//! without a valid session get upstream's 401. The export streams: a VM with several MiB of
//! disk data comes back chunked, without a `Content-Length`.
use std::io::{Read, Write};
use std::net::TcpStream;

use xapi_system_tests::fields::{field, strings, text};
use xapi_system_tests::{s, Api, TestDaemon, Value};

const MIB: usize = 1 << 20;
/// Four tar chunks, the last one partial.
const SIZE: usize = 3 * MIB + 4096;

/// One HTTP/1.1 exchange on a fresh connection: (status, body).
fn http(d: &TestDaemon, method: &str, target: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let (status, _, body) = http_with_headers(d, method, target, body);
    (status, body)
}

/// One HTTP/1.1 exchange: (status, headers lower-cased, body with any chunking removed).
fn http_with_headers(
    d: &TestDaemon,
    method: &str,
    target: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut c = TcpStream::connect(d.http).expect("connect");
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(body).unwrap();
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).unwrap();
    let split = reply
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("reply headers");
    let headers = String::from_utf8_lossy(&reply[..split]).to_lowercase();
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let raw = &reply[split + 4..];
    let body = if headers.contains("transfer-encoding: chunked") {
        dechunk(raw)
    } else {
        raw.to_vec()
    };
    (status, headers, body)
}

/// Removes HTTP/1.1 chunked framing; panics unless it ends with the last (empty) chunk.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let line = String::from_utf8_lossy(&raw[..eol]).to_string();
        let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
            .expect("hex chunk size");
        raw = &raw[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        assert_eq!(&raw[size..size + 2], b"\r\n", "chunk terminator");
        raw = &raw[size + 2..];
    }
}

/// The first sector belongs to the simulated guest, which writes its boot marker there.
const GUEST_SECTOR: usize = 512;

/// The disk contents the test writes: markers in chunks 0, 2 and 3; chunk 1 stays zero.
fn expected() -> Vec<u8> {
    let mut v = vec![0u8; SIZE];
    v[4096..][..5].copy_from_slice(b"first");
    v[2 * MIB + 100..][..4096].fill(0x5a);
    v[3 * MIB..].fill(0x77);
    v
}

fn disk_vdi(api: &mut Api, vm: &str) -> String {
    strings(field(api, "VM", vm, "VBDs"))
        .into_iter()
        .find(|vbd| text(api, "VBD", vbd, "type") == "Disk")
        .map(|vbd| text(api, "VBD", &vbd, "VDI"))
        .expect("a disk")
}

fn start(api: &mut Api, vm: &str) {
    api.ok(
        "VM.start",
        vec![s(vm), Value::Bool(false), Value::Bool(false)],
    );
}

fn nbd(d: &TestDaemon, api: &mut Api, vdi: &str) -> nbd::Client {
    let uuid = text(api, "VDI", vdi, "uuid");
    let socket = d.state_dir().join("nbd").join(format!("{uuid}.sock"));
    nbd::Client::connect(&socket, &uuid).expect("the VDI is served over NBD")
}

/// A halted VM with one disk of `SIZE` bytes on the default SR and one VIF.
fn source_vm(api: &mut Api) -> String {
    source_vm_of(api, SIZE)
}

/// A halted VM with one disk of `size` bytes on the default SR and one VIF.
fn source_vm_of(api: &mut Api, size: usize) -> String {
    let template = strings(api.ok("VM.get_by_name_label", vec![s("Debian Bookworm 12")])).remove(0);
    let vm = api.string("VM.clone", vec![s(&template), s("exported")]);
    api.ok("VM.remove_from_other_config", vec![s(&vm), s("disks")]);
    let spec = format!(
        r#"<provision><disk device="0" size="{size}" sr="" bootable="true" type="system"/></provision>"#
    );
    api.ok("VM.add_to_other_config", vec![s(&vm), s("disks"), s(&spec)]);
    api.ok("VM.provision", vec![s(&vm)]);
    api.ok("VM.set_is_a_template", vec![s(&vm), Value::Bool(false)]);
    let m = Value::Int(256 << 20);
    api.ok(
        "VM.set_memory_limits",
        vec![s(&vm), m.clone(), m.clone(), m.clone(), m],
    );
    let net = strings(api.ok("network.get_all", vec![])).remove(0);
    api.ok(
        "VIF.create",
        vec![Value::Struct(vec![
            ("device".into(), s("0")),
            ("network".into(), s(&net)),
            ("VM".into(), s(&vm)),
            ("MAC".into(), s("00:16:3e:00:00:07")),
            ("MTU".into(), Value::Int(1500)),
            ("other_config".into(), Value::Struct(vec![])),
            ("qos_algorithm_type".into(), s("")),
            ("qos_algorithm_params".into(), Value::Struct(vec![])),
        ])],
    );
    vm
}

#[test]
fn an_exported_vm_imports_as_a_new_vm_with_the_same_disk_bytes() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let vm = source_vm(&mut api);
    let vdi = disk_vdi(&mut api, &vm);
    start(&mut api, &vm);
    let data = expected();
    let mut c = nbd(&d, &mut api, &vdi);
    c.write_at(GUEST_SECTOR as u64, &data[GUEST_SECTOR..MIB])
        .unwrap();
    c.write_at(2 * MIB as u64, &data[2 * MIB..]).unwrap();
    c.flush().unwrap();
    c.disconnect().unwrap();
    api.ok("VM.hard_shutdown", vec![s(&vm)]);

    let uuid = text(&mut api, "VM", &vm, "uuid");
    let session = api.session.clone();
    let (status, xva) = http(
        &d,
        "GET",
        &format!("/export?session_id={session}&uuid={uuid}"),
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&xva));

    // Upstream's layout, as GNU tar lists it: ova.xml, then the disk's chunks each followed
    // by its XXH64 checksum; the all-zero chunk 1 is left out.
    let xva_file = XvaFile::new(&xva);
    let names = xva_file.names();
    assert_eq!(names.first().map(String::as_str), Some("ova.xml"));
    let prefix = names[1].split('/').next().unwrap().to_owned();
    assert!(prefix.starts_with("Ref:"), "{names:?}");
    let chunks: Vec<String> = [0, 2, 3]
        .iter()
        .flat_map(|i| {
            [
                format!("{prefix}/{i:08}"),
                format!("{prefix}/{i:08}.xxhash"),
            ]
        })
        .collect();
    assert_eq!(names[1..], chunks[..]);
    let ova = xva_file.member("ova.xml");
    let ova = String::from_utf8_lossy(&ova);
    for needle in [
        "<name>version</name>",
        "<name>objects</name>",
        "<name>export_vsn</name>",
        "<value>VM</value>",
        "<value>VBD</value>",
        "<value>VIF</value>",
        "<value>VDI</value>",
        "<value>network</value>",
    ] {
        assert!(ova.contains(needle), "ova.xml lacks {needle}");
    }

    // Import with a task, as xe does: the task holds the new VM.
    let task = api.string("task.create", vec![s("import"), s("")]);
    let (status, body) = http(
        &d,
        "PUT",
        &format!("/import?session_id={session}&task_id={task}"),
        &xva,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(text(&mut api, "task", &task, "status"), "success");
    let result = text(&mut api, "task", &task, "result");
    let new_vm = String::from_utf8_lossy(&body).trim().to_owned();
    assert!(new_vm.starts_with("OpaqueRef:"), "{new_vm}");
    assert!(result.contains(&new_vm), "{result}");
    assert_ne!(new_vm, vm);
    assert_ne!(text(&mut api, "VM", &new_vm, "uuid"), uuid);
    assert_eq!(text(&mut api, "VM", &new_vm, "name_label"), "exported");
    assert_eq!(text(&mut api, "VM", &new_vm, "power_state"), "Halted");
    assert_eq!(strings(field(&mut api, "VM", &new_vm, "VIFs")).len(), 1);
    let new_vdi = disk_vdi(&mut api, &new_vm);
    assert_ne!(new_vdi, vdi);
    assert_ne!(
        text(&mut api, "VDI", &new_vdi, "uuid"),
        text(&mut api, "VDI", &vdi, "uuid")
    );

    // The imported disk holds the same bytes.
    start(&mut api, &new_vm);
    let mut c = nbd(&d, &mut api, &new_vdi);
    let mut back = vec![0u8; SIZE];
    c.read_at(0, &mut back).unwrap();
    c.disconnect().unwrap();
    assert!(
        back[GUEST_SECTOR..] == data[GUEST_SECTOR..],
        "the imported disk differs from the exported one"
    );
}

#[test]
fn export_and_import_refuse_a_bad_session_with_401() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let vm = strings(api.ok("VM.get_all", vec![])).remove(0);
    let uuid = text(&mut api, "VM", &vm, "uuid");
    let (status, _) = http(
        &d,
        "GET",
        &format!("/export?session_id=OpaqueRef:bogus&uuid={uuid}"),
        b"",
    );
    assert_eq!(status, 401);
    let (status, _) = http(&d, "GET", &format!("/export?uuid={uuid}"), b"");
    assert_eq!(status, 401);
    let (status, _) = http(&d, "PUT", "/import?session_id=OpaqueRef:bogus", b"x");
    assert_eq!(status, 401);
    // A tar that does not start with ova.xml is refused, and nothing is created.
    let before = strings(api.ok("VM.get_all", vec![])).len();
    let session = api.session.clone();
    let (status, body) = http(
        &d,
        "PUT",
        &format!("/import?session_id={session}"),
        &[0u8; 1024],
    );
    assert_ne!(status, 200);
    assert!(
        String::from_utf8_lossy(&body).starts_with("IMPORT_ERROR"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(strings(api.ok("VM.get_all", vec![])).len(), before);
}

#[test]
fn a_large_export_streams_chunked_and_finishes_its_task() {
    const BIG: usize = 8 * MIB;
    let d = TestDaemon::start();
    let mut api = d.login();
    let vm = source_vm_of(&mut api, BIG);
    let vdi = disk_vdi(&mut api, &vm);
    start(&mut api, &vm);
    // Every tar chunk holds data, so nothing is left out and the XVA outgrows the disk.
    let fill: Vec<u8> = (0..BIG - MIB).map(|i| (i % 251 + 1) as u8).collect();
    let mut c = nbd(&d, &mut api, &vdi);
    c.write_at(MIB as u64, &fill).unwrap();
    c.write_at(GUEST_SECTOR as u64, &[0x33; 4096]).unwrap();
    c.flush().unwrap();
    c.disconnect().unwrap();
    api.ok("VM.hard_shutdown", vec![s(&vm)]);

    let session = api.session.clone();
    let task = api.string("task.create", vec![s("export"), s("")]);
    let (status, headers, xva) = http_with_headers(
        &d,
        "GET",
        &format!("/export?session_id={session}&ref={vm}&task_id={task}"),
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&xva));
    // Streamed: the length is not known up front, so HTTP/1.1 frames it in chunks.
    assert!(
        headers.contains("transfer-encoding: chunked"),
        "not streamed: {headers}"
    );
    assert!(!headers.contains("content-length"), "{headers}");
    assert!(xva.len() > BIG, "{} bytes", xva.len());
    // The task is finished by the time the body has ended.
    assert_eq!(text(&mut api, "task", &task, "status"), "success");

    let xva_file = XvaFile::new(&xva);
    let names = xva_file.names();
    // ova.xml and eight chunks with their checksums.
    assert_eq!(names.len(), 1 + 2 * 8);
    let prefix = names[1].split('/').next().unwrap();
    let chunk = xva_file.member(&format!("{prefix}/00000005"));
    assert_eq!(chunk[..], fill[4 * MIB..5 * MIB]);
}

/// An XVA written to a temporary file, read back with GNU tar (an independent reader).
struct XvaFile {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl XvaFile {
    fn new(xva: &[u8]) -> XvaFile {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.xva");
        std::fs::write(&path, xva).unwrap();
        XvaFile { _dir: dir, path }
    }

    /// Runs tar with `args` then the archive's path (then `extra`), asserting it succeeds.
    fn tar(&self, args: &[&str], extra: &[&str]) -> Vec<u8> {
        let out = std::process::Command::new("tar")
            .args(args)
            .arg(&self.path)
            .args(extra)
            .output()
            .expect("tar is installed");
        assert!(
            out.status.success(),
            "tar {args:?} {extra:?} rejects the XVA"
        );
        out.stdout
    }

    /// The member names, in archive order (tar must accept the whole archive).
    fn names(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.tar(&["-tf"], &[]))
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// One member's contents.
    fn member(&self, name: &str) -> Vec<u8> {
        self.tar(&["-xOf"], &[name])
    }
}

/// Runs `tool args` with `input` on stdin and returns its stdout, or None (and says why) when
/// the tool is not installed.
fn filter(tool: &str, args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    use std::process::{Command, Stdio};
    let mut child = match Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipping the {tool} check: {tool} is not installed");
            return None;
        }
        Err(e) => panic!("{tool}: {e}"),
    };
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success(), "{tool} {args:?} failed");
    Some(out.stdout)
}

/// Imports `xva` and returns the bytes of the new VM's disk (read with the VM running).
fn import_and_read_disk(d: &TestDaemon, api: &mut Api, xva: &[u8], size: usize) -> Vec<u8> {
    let session = api.session.clone();
    let (status, body) = http(d, "PUT", &format!("/import?session_id={session}"), xva);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let new_vm = String::from_utf8_lossy(&body).trim().to_owned();
    assert!(new_vm.starts_with("OpaqueRef:"), "{new_vm}");
    let vdi = disk_vdi(api, &new_vm);
    start(api, &new_vm);
    let mut c = nbd(d, api, &vdi);
    let mut back = vec![0u8; size];
    c.read_at(0, &mut back).unwrap();
    c.disconnect().unwrap();
    api.ok("VM.hard_shutdown", vec![s(&new_vm)]);
    back
}

#[test]
fn compressed_exports_decompress_with_the_system_tools_and_compressed_xvas_import() {
    const DISK: usize = 2 * MIB;
    let d = TestDaemon::start();
    let mut api = d.login();
    let vm = source_vm_of(&mut api, DISK);
    let vdi = disk_vdi(&mut api, &vm);
    start(&mut api, &vm);
    let marker = vec![0x42u8; 64 * 1024];
    let mut c = nbd(&d, &mut api, &vdi);
    c.write_at(MIB as u64, &marker).unwrap();
    c.flush().unwrap();
    c.disconnect().unwrap();
    api.ok("VM.hard_shutdown", vec![s(&vm)]);
    let session = api.session.clone();
    let export = |d: &TestDaemon, query: &str| {
        let (status, headers, body) = http_with_headers(
            d,
            "GET",
            &format!("/export?session_id={session}&ref={vm}{query}"),
            b"",
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert!(headers.contains("transfer-encoding: chunked"), "{headers}");
        body
    };

    let plain = export(&d, "");
    assert_eq!(&plain[..7], b"ova.xml");
    let gzip = export(&d, "&use_compression=true");
    assert_eq!(&gzip[..2], &[0x1f, 0x8b], "not gzip");
    assert_eq!(export(&d, "&use_compression=gzip")[..2], [0x1f, 0x8b]);
    let zstd = export(&d, "&use_compression=zstd");
    assert_eq!(&zstd[..4], &[0x28, 0xb5, 0x2f, 0xfd], "not zstd");
    // Upstream reads any other value as no compression.
    assert_eq!(&export(&d, "&use_compression=false")[..7], b"ova.xml");
    assert!(gzip.len() < plain.len() / 4 && zstd.len() < plain.len() / 4);

    // The system's decompressors accept them, and what comes out is a whole XVA.
    for (tool, packed) in [("gzip", &gzip), ("zstd", &zstd)] {
        if let Some(tar) = filter(tool, &["-dc"], packed) {
            let names = XvaFile::new(&tar).names();
            assert_eq!(names.first().map(String::as_str), Some("ova.xml"), "{tool}");
            assert_eq!(names.len(), 1 + 2 * 2, "{tool}: {names:?}");
        }
    }

    // The daemon's own compressed exports import, and so does one the system's gzip wrote.
    let mut inputs = vec![("gzip export", gzip.clone()), ("zstd export", zstd.clone())];
    if let Some(packed) = filter("gzip", &["-c"], &plain) {
        inputs.push(("system gzip", packed));
    }
    if let Some(packed) = filter("zstd", &["-c", "-q"], &plain) {
        inputs.push(("system zstd", packed));
    }
    for (what, xva) in inputs {
        let back = import_and_read_disk(&d, &mut api, &xva, DISK);
        assert!(
            back[MIB..][..marker.len()] == marker[..],
            "{what}: disk differs"
        );
        assert!(back[MIB + marker.len()..].iter().all(|&b| b == 0), "{what}");
    }
}

#[test]
fn preserve_power_state_keeps_the_running_state_in_ova_xml() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let vm = source_vm_of(&mut api, MIB);
    start(&mut api, &vm);
    let session = api.session.clone();
    let ova = |query: &str| {
        let (status, xva) = http(
            &d,
            "GET",
            &format!("/export?session_id={session}&ref={vm}{query}"),
            b"",
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&xva));
        String::from_utf8_lossy(&XvaFile::new(&xva).member("ova.xml")).into_owned()
    };
    let running = "<name>power_state</name><value>Running</value>";
    let halted = "<name>power_state</name><value>Halted</value>";
    let kept = ova("&preserve_power_state=true");
    assert!(kept.contains(running), "power state not kept");
    let cleared = ova("&preserve_power_state=false");
    assert!(cleared.contains(halted) && !cleared.contains(running));
    let default = ova("");
    assert!(default.contains(halted) && !default.contains(running));
    api.ok("VM.hard_shutdown", vec![s(&vm)]);
}

#[test]
fn a_metadata_export_holds_only_ova_xml() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let vm = source_vm_of(&mut api, MIB);
    let uuid = text(&mut api, "VM", &vm, "uuid");
    let session = api.session.clone();
    let (status, tar) = http(
        &d,
        "GET",
        &format!("/export_metadata?session_id={session}&uuid={uuid}"),
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&tar));
    let xva = XvaFile::new(&tar);
    assert_eq!(
        xva.names(),
        ["ova.xml"],
        "no disk chunks in a metadata export"
    );
    let ova = String::from_utf8_lossy(&xva.member("ova.xml")).into_owned();
    assert!(ova.contains(&uuid), "the VM's record is in ova.xml");
    let (status, _) = http(&d, "GET", &format!("/export_metadata?uuid={uuid}"), b"");
    assert_eq!(status, 401, "a metadata export needs a session");
}
