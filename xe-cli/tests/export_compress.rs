//! `xe vm-export compress=...` end to end: the file xe writes is gzip (`compress=true`) or
//! zstd (`compress=zstd`) compressed, a plain export stays a tar, and `xe vm-import` takes the
//! compressed files back as new VMs.
mod common;

use common::xe;
use xapi_system_tests::TestDaemon;

fn ok(d: &TestDaemon, args: &[&str]) -> String {
    let r = xe(d, args);
    assert_eq!(r.code, 0, "xe {args:?}: {}{}", r.out, r.err);
    r.out.trim().to_owned()
}

#[test]
fn vm_export_compresses_as_asked_and_vm_import_takes_it_back() {
    let d = TestDaemon::start();
    // A 4 MiB disk (the template's own disks would make every export read gigabytes).
    let tpl = ok(
        &d,
        &[
            "template-list",
            "name-label=CentOS Stream 8",
            "params=uuid",
            "--minimal",
        ],
    );
    ok(
        &d,
        &[
            "template-param-set",
            &format!("uuid={tpl}"),
            "other-config:disks=<provision><disk device=\"0\" size=\"4194304\" sr=\"\" \
             bootable=\"true\" type=\"system\"/></provision>",
        ],
    );
    let vm = ok(
        &d,
        &[
            "vm-install",
            "template=CentOS Stream 8",
            "new-name-label=packed",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8]); 4] = [
        ("compress=true", &[0x1f, 0x8b]),
        ("compress=gzip", &[0x1f, 0x8b]),
        ("compress=zstd", &[0x28, 0xb5, 0x2f, 0xfd]),
        ("compress=false", b"ova.xml"),
    ];
    for (i, (option, magic)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("vm{i}.xva"));
        let filename = format!("filename={}", file.display());
        let out = ok(&d, &["vm-export", &format!("uuid={vm}"), &filename, option]);
        assert_eq!(out, "Export succeeded");
        let bytes = std::fs::read(&file).unwrap();
        assert!(bytes.starts_with(magic), "{option}: {:02x?}", &bytes[..8]);

        let new = ok(&d, &["vm-import", &filename]);
        assert_ne!(new, vm, "{option}");
        let name = ok(
            &d,
            &[
                "vm-param-get",
                &format!("uuid={new}"),
                "param-name=name-label",
            ],
        );
        assert_eq!(name, "packed", "{option}");
        ok(&d, &["vm-uninstall", &format!("uuid={new}"), "--force"]);
    }
}
