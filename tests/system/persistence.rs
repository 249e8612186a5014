//! Acknowledged writes survive a restart and `kill -9`.
use xapi_system_tests::{s, TestDaemon, Value};

#[test]
fn writes_and_sessions_survive_a_restart() {
    let mut d = TestDaemon::start();
    let mut api = d.login();
    let net = api.string(
        "network.create",
        vec![Value::Struct(vec![("name_label".into(), s("kept"))])],
    );
    api.ok("network.add_to_other_config", vec![s(&net), s("k"), s("v")]);
    d.restart();
    let mut again = xapi_system_tests::Api {
        client: d.client(d.http()),
        session: api.session.clone(),
    };
    assert_eq!(
        again.ok("network.get_name_label", vec![s(&net)]),
        s("kept"),
        "session survives too"
    );
    assert_eq!(
        again.ok("network.get_other_config", vec![s(&net)]).get("k"),
        Some(&s("v"))
    );
    let pools = again.ok("pool.get_all", vec![]);
    assert!(
        matches!(pools, Value::Array(ref p) if p.len() == 1),
        "restart does not seed twice"
    );
}

#[test]
fn every_acknowledged_write_survives_kill_dash_nine() {
    let mut d = TestDaemon::start();
    let mut api = d.login();
    let net = api.string(
        "network.create",
        vec![Value::Struct(vec![("name_label".into(), s("n"))])],
    );
    let mut created = Vec::new();
    for i in 0..150 {
        api.ok(
            "network.set_name_label",
            vec![s(&net), s(&format!("label-{i}"))],
        );
        created.push(api.string(
            "network.create",
            vec![Value::Struct(vec![(
                "name_label".into(),
                s(&format!("net-{i}")),
            )])],
        ));
    }
    // Kill right after the last acknowledgement: no shutdown path runs.
    d.kill9_and_restart();
    let mut api = d.login();
    assert_eq!(
        api.ok("network.get_name_label", vec![s(&net)]),
        s("label-149")
    );
    for (i, r) in created.iter().enumerate() {
        assert_eq!(
            api.ok("network.get_name_label", vec![s(r)]),
            s(&format!("net-{i}"))
        );
    }
}
