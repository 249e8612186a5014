//! Logging in over every listener, and session lifecycle.
use xapi_system_tests::{s, Api, Client, TestDaemon, Value};

const PW: &str = "test-root-password";

#[test]
fn root_logs_in_over_http_https_and_unix() {
    let d = TestDaemon::start();
    for endpoint in [d.http(), d.https(), d.unix()] {
        let mut api = Api::login(Client::new(endpoint.clone()), "root", PW).unwrap();
        assert!(api.session.starts_with("OpaqueRef:"), "{endpoint:?}");
        let pools = api.ok("pool.get_all", vec![]);
        assert!(
            matches!(pools, Value::Array(ref p) if p.len() == 1),
            "{endpoint:?}: {pools:?}"
        );
    }
}

#[test]
fn wrong_password_is_refused_with_user_and_reason() {
    let d = TestDaemon::start();
    let err = Api::login(Client::new(d.http()), "root", "nope")
        .err()
        .unwrap();
    assert_eq!(
        err,
        vec![
            "SESSION_AUTHENTICATION_FAILED",
            "root",
            "Authentication failure"
        ]
    );
    let err = Api::login(Client::new(d.https()), "nobody", PW)
        .err()
        .unwrap();
    assert_eq!(err[0], "SESSION_AUTHENTICATION_FAILED");
}

#[test]
fn unix_socket_is_the_local_superuser_without_a_password() {
    let d = TestDaemon::start();
    let mut api = Api::login(Client::new(d.unix()), "anyone", "anything").unwrap();
    let me = api.session.clone();
    let rec = api.ok("session.get_record", vec![s(&me)]);
    assert_eq!(rec.get("is_local_superuser"), Some(&Value::Bool(true)));
}

#[test]
fn session_record_carries_originator_and_activity() {
    let d = TestDaemon::start();
    let mut c = Client::new(d.http());
    let r = c
        .call(
            "session.login_with_password",
            vec![s("root"), s(PW), s("1.0"), s("xapi-rs-tests")],
        )
        .unwrap();
    let r = r.as_str().unwrap().to_owned();
    let rec = c.call("session.get_record", vec![s(&r), s(&r)]).unwrap();
    assert_eq!(rec.get("originator"), Some(&s("xapi-rs-tests")));
    assert_eq!(rec.get("is_local_superuser"), Some(&Value::Bool(true)));
    assert!(matches!(rec.get("last_active"), Some(Value::DateTime(t)) if !t.starts_with("1970")));
    assert!(
        matches!(rec.get("this_host"), Some(Value::String(h)) if h.starts_with("OpaqueRef:") && h != "OpaqueRef:NULL")
    );
}

#[test]
fn logout_invalidates_the_session_and_others_survive() {
    let d = TestDaemon::start();
    let mut a = d.login();
    let mut b = d.login();
    assert_ne!(a.session, b.session, "several concurrent sessions per user");
    a.ok("session.logout", vec![]);
    let err = a.err("pool.get_all", vec![]);
    assert_eq!(err, vec!["SESSION_INVALID".to_owned(), a.session.clone()]);
    b.ok("pool.get_all", vec![]);
}

#[test]
fn idle_sessions_expire() {
    let d = TestDaemon::start_with(&[("XAPI_SESSION_IDLE_TIMEOUT_MS", "300")]);
    let mut api = d.login();
    api.ok("pool.get_all", vec![]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(api.err("pool.get_all", vec![])[0], "SESSION_INVALID");
}

#[test]
fn login_accepts_two_three_or_four_arguments_but_not_five() {
    let d = TestDaemon::start();
    let mut c = Client::new(d.http());
    c.call("session.login_with_password", vec![s("root"), s(PW)])
        .unwrap();
    c.call(
        "session.login_with_password",
        vec![s("root"), s(PW), s("1.1")],
    )
    .unwrap();
    c.call(
        "session.login_with_password",
        vec![s("root"), s(PW), s("1.1"), s("o")],
    )
    .unwrap();
    let err = c
        .call(
            "session.login_with_password",
            vec![s("root"), s(PW), s("1.1"), s("o"), s("x")],
        )
        .unwrap_err();
    assert_eq!(
        err,
        vec![
            "MESSAGE_PARAMETER_COUNT_MISMATCH",
            "session.login_with_password",
            "2",
            "5"
        ]
    );
}
