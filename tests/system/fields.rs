//! Reading and writing fields through the generated implicit messages.
use xapi_system_tests::{s, Api, TestDaemon, Value};

fn new_network(api: &mut Api, label: &str) -> String {
    api.string(
        "network.create",
        vec![Value::Struct(vec![("name_label".into(), s(label))])],
    )
}

#[test]
fn setters_and_getters_round_trip() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let net = new_network(&mut api, "first");
    api.ok("network.set_name_label", vec![s(&net), s("renamed")]);
    assert_eq!(
        api.ok("network.get_name_label", vec![s(&net)]),
        s("renamed")
    );
    api.ok("network.set_MTU", vec![s(&net), s("9000")]);
    assert_eq!(
        api.ok("network.get_MTU", vec![s(&net)]),
        s("9000"),
        "ints accepted as strings"
    );
    api.ok("network.set_MTU", vec![s(&net), Value::Int(1400)]);
    assert_eq!(api.ok("network.get_MTU", vec![s(&net)]), s("1400"));
    let rec = api.ok("network.get_record", vec![s(&net)]);
    assert_eq!(rec.get("name_label"), Some(&s("renamed")));
    let uuid = rec.get("uuid").and_then(Value::as_str).unwrap().to_owned();
    assert_eq!(api.ok("network.get_by_uuid", vec![s(&uuid)]), s(&net));
}

#[test]
fn map_updates_follow_upstream_rules() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let net = new_network(&mut api, "maps");
    api.ok("network.add_to_other_config", vec![s(&net), s("k"), s("v")]);
    let uuid = api.string("network.get_uuid", vec![s(&net)]);
    let err = api.err("network.add_to_other_config", vec![s(&net), s("k"), s("w")]);
    assert_eq!(
        err,
        vec!["MAP_DUPLICATE_KEY", "network", "other_config", &uuid, "k"]
    );
    api.ok("network.remove_from_other_config", vec![s(&net), s("k")]);
    api.ok("network.remove_from_other_config", vec![s(&net), s("k")]);
    let oc = api.ok("network.get_other_config", vec![s(&net)]);
    assert_eq!(oc, Value::Struct(vec![]));
    api.ok(
        "network.set_other_config",
        vec![s(&net), Value::Struct(vec![("a".into(), s("1"))])],
    );
    assert_eq!(
        api.ok("network.get_other_config", vec![s(&net)]).get("a"),
        Some(&s("1"))
    );
}

#[test]
fn set_updates_add_once_and_remove_silently() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let net = new_network(&mut api, "tags");
    api.ok("network.add_tags", vec![s(&net), s("blue")]);
    api.ok("network.add_tags", vec![s(&net), s("blue")]);
    assert_eq!(
        api.ok("network.get_tags", vec![s(&net)]),
        Value::Array(vec![s("blue")])
    );
    api.ok("network.remove_tags", vec![s(&net), s("blue")]);
    api.ok("network.remove_tags", vec![s(&net), s("blue")]);
    assert_eq!(
        api.ok("network.get_tags", vec![s(&net)]),
        Value::Array(vec![])
    );
}

#[test]
fn enums_are_accepted_in_any_case_and_stored_canonically() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let Value::Array(vms) = api.ok("VM.get_all", vec![]) else {
        panic!()
    };
    let vm = vms[0].clone();
    api.ok(
        "VM.set_actions_after_shutdown",
        vec![vm.clone(), s("RESTART")],
    );
    assert_eq!(
        api.ok("VM.get_actions_after_shutdown", vec![vm.clone()]),
        s("restart")
    );
    let err = api.err("VM.set_actions_after_shutdown", vec![vm, s("sideways")]);
    assert_eq!(err, vec!["FIELD_TYPE_ERROR", "actions_after_shutdown"]);
}

#[test]
fn create_fills_defaults_ignores_unknown_fields_and_takes_empty_refs() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let net = api.string(
        "network.create",
        vec![Value::Struct(vec![
            ("name_label".into(), s("d")),
            ("no_such_field".into(), s("x")),
        ])],
    );
    let rec = api.ok("network.get_record", vec![s(&net)]);
    assert_eq!(rec.get("MTU"), Some(&s("1500")), "datamodel default");
    let vms = api.ok("VM.get_all", vec![]);
    let Value::Array(vms) = vms else { panic!() };
    let vm = vms[0].as_str().unwrap().to_owned();
    let vif = api.string(
        "VIF.create",
        vec![Value::Struct(vec![
            ("device".into(), s("0")),
            ("network".into(), s(&net)),
            ("VM".into(), s(&vm)),
            ("MAC".into(), s("")),
            ("MTU".into(), s("1500")),
            ("other_config".into(), Value::Struct(vec![])),
            ("qos_algorithm_type".into(), s("")),
            ("qos_algorithm_params".into(), Value::Struct(vec![])),
            ("locking_mode".into(), s("network_default")),
            ("ipv4_allowed".into(), Value::Array(vec![])),
            ("ipv6_allowed".into(), Value::Array(vec![])),
            ("currently_attached".into(), Value::Bool(false)),
        ])],
    );
    let vifs = api.ok("VM.get_VIFs", vec![s(&vm)]);
    assert!(
        matches!(vifs, Value::Array(ref v) if v.contains(&s(&vif))),
        "VM.VIFs follows VIF.VM: {vifs:?}"
    );
    assert_eq!(
        api.ok("network.get_VIFs", vec![s(&net)]),
        Value::Array(vec![s(&vif)])
    );
    let bad = api.err(
        "VBD.create",
        vec![Value::Struct(vec![("VM".into(), s("OpaqueRef:missing"))])],
    );
    assert_eq!(bad, vec!["HANDLE_INVALID", "VM", "OpaqueRef:missing"]);
    api.ok("VIF.destroy", vec![s(&vif)]);
    assert_eq!(
        api.err("VIF.get_record", vec![s(&vif)]),
        vec!["HANDLE_INVALID", "VIF", &vif]
    );
    assert_eq!(
        api.ok("network.get_VIFs", vec![s(&net)]),
        Value::Array(vec![])
    );
}

#[test]
fn lookups_and_filters() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let net = new_network(&mut api, "findme");
    assert_eq!(
        api.ok("network.get_by_name_label", vec![s("findme")]),
        Value::Array(vec![s(&net)])
    );
    assert_eq!(
        api.err("network.get_by_uuid", vec![s("nope")]),
        vec!["UUID_INVALID", "network", "nope"]
    );
    let found = api.ok(
        "network.get_all_records_where",
        vec![s(r#"field "name__label" = "findme""#)],
    );
    assert!(matches!(found, Value::Struct(ref m) if m.len() == 1 && m[0].0 == net));
    let found = api.ok(
        "network.get_all_where",
        vec![s(
            r#"field "name_label"="findme" and not (field "MTU"="9")"#,
        )],
    );
    assert_eq!(found, Value::Array(vec![s(&net)]));
    let err = api.err(
        "network.get_all_records_where",
        vec![s("field \"name__label\" = ")],
    );
    assert_eq!(err[0], "INVALID_VALUE");
    let err = api.err(
        "network.get_all_records_where",
        vec![s(r#"field "nonexistent"="x""#)],
    );
    assert_eq!(err[0], "INVALID_VALUE");
}

#[test]
fn wrong_types_and_bad_refs_get_upstream_errors() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let net = new_network(&mut api, "types");
    assert_eq!(
        api.err("network.set_MTU", vec![s(&net), s("lots")]),
        vec!["FIELD_TYPE_ERROR", "MTU"]
    );
    assert_eq!(
        api.err("network.get_record", vec![s("OpaqueRef:nope")]),
        vec!["HANDLE_INVALID", "network", "OpaqueRef:nope"]
    );
    assert_eq!(
        api.err("network.set_name_label", vec![s("OpaqueRef:nope"), s("x")])[0],
        "HANDLE_INVALID"
    );
}
