//! RBAC over the wire: a PAM user logs in as a subject holding only the read-only role.
//! Needs root (it creates local users and a PAM service file); CI runs as root.
use std::process::Command;

use xapi_system_tests::{s, Api, Client, TestDaemon, Value};

const SERVICE: &str = "xapi-rs-test";

fn require_root() {
    let out = Command::new("id").arg("-u").output().expect("id");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "this test needs root (CI runs as root)"
    );
}

fn ensure_user(name: &str, password: &str) {
    let exists = Command::new("id")
        .arg(name)
        .output()
        .expect("id")
        .status
        .success();
    if !exists {
        let ok = Command::new("useradd")
            .args(["-M", "-s", "/usr/sbin/nologin", name])
            .status()
            .expect("useradd");
        assert!(ok.success(), "useradd {name}");
    }
    let mut child = Command::new("chpasswd")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("chpasswd");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{name}:{password}\n").as_bytes())
        .expect("write");
    assert!(child.wait().expect("chpasswd").success());
}

fn pam_daemon() -> TestDaemon {
    require_root();
    std::fs::write(
        format!("/etc/pam.d/{SERVICE}"),
        "auth required pam_unix.so\naccount required pam_unix.so\n",
    )
    .expect("write PAM service file");
    ensure_user("xapirs-ro", "ro-password");
    ensure_user("xapirs-nosubject", "ns-password");
    TestDaemon::start_with_config(&format!("auth = pam\npam-service = {SERVICE}\n"))
}

#[test]
fn a_read_only_subject_may_read_but_not_write() {
    let d = pam_daemon();
    let mut root = Api::login(Client::new(d.unix()), "root", "").unwrap();
    let subject = root.string(
        "subject.create",
        vec![Value::Struct(vec![
            ("subject_identifier".into(), s("xapirs-ro")),
            (
                "other_config".into(),
                Value::Struct(vec![("subject-name".into(), s("xapirs-ro"))]),
            ),
        ])],
    );
    let admin = root.ok("role.get_by_name_label", vec![s("pool-admin")]);
    let read_only = root.ok("role.get_by_name_label", vec![s("read-only")]);
    let (Value::Array(admin), Value::Array(read_only)) = (admin, read_only) else {
        panic!()
    };
    assert_eq!(
        root.ok("subject.get_roles", vec![s(&subject)]),
        Value::Array(admin.clone()),
        "new subjects are pool-admins"
    );
    root.ok(
        "subject.remove_from_roles",
        vec![s(&subject), admin[0].clone()],
    );
    root.ok(
        "subject.add_to_roles",
        vec![s(&subject), read_only[0].clone()],
    );
    assert_eq!(
        root.err(
            "subject.add_to_roles",
            vec![s(&subject), read_only[0].clone()]
        ),
        vec!["ROLE_ALREADY_EXISTS"]
    );

    let mut ro = Api::login(Client::new(d.http()), "xapirs-ro", "ro-password").unwrap();
    assert!(matches!(ro.ok("VM.get_all", vec![]), Value::Array(ref v) if !v.is_empty()));
    let err = ro.err(
        "network.create",
        vec![Value::Struct(vec![("name_label".into(), s("nope"))])],
    );
    assert_eq!(
        err,
        vec![
            "RBAC_PERMISSION_DENIED",
            "network.create",
            "No permission in user session"
        ]
    );
    let me = ro.session.clone();
    let rec = ro.ok("session.get_record", vec![s(&me)]);
    assert_eq!(rec.get("is_local_superuser"), Some(&Value::Bool(false)));
    assert_eq!(rec.get("subject"), Some(&s(&subject)));
    let Some(Value::Array(perms)) = rec.get("rbac_permissions") else {
        panic!("{rec:?}")
    };
    assert!(perms.contains(&s("vm.get_all")) && !perms.contains(&s("network.create")));
}

#[test]
fn pam_rejects_bad_passwords_and_users_without_a_subject() {
    let d = pam_daemon();
    let err = Api::login(Client::new(d.http()), "xapirs-ro", "wrong")
        .err()
        .unwrap();
    assert_eq!(err[0], "SESSION_AUTHENTICATION_FAILED");
    let err = Api::login(Client::new(d.http()), "xapirs-nosubject", "ns-password")
        .err()
        .unwrap();
    assert_eq!(err[0], "SESSION_AUTHORIZATION_FAILED");
    assert_eq!(err[1], "xapirs-nosubject");
}
