//! The first start creates a coherent single-host pool.
use xapi_system_tests::{s, TestDaemon, Value};

fn records(v: Value) -> Vec<(String, Value)> {
    match v {
        Value::Struct(m) => m,
        other => panic!("not a map: {other:?}"),
    }
}

#[test]
fn first_start_creates_a_single_host_pool() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let hosts = records(api.ok("host.get_all_records", vec![]));
    assert_eq!(hosts.len(), 1);
    let (host, host_rec) = &hosts[0];
    let pools = records(api.ok("pool.get_all_records", vec![]));
    assert_eq!(pools.len(), 1);
    assert_eq!(pools[0].1.get("master"), Some(&s(host)));
    assert_eq!(
        host_rec.get("API_version_major"),
        Some(&s("2")),
        "ints travel untyped in XML-RPC"
    );
    let metrics = host_rec
        .get("metrics")
        .and_then(Value::as_str)
        .unwrap()
        .to_owned();
    let total = api.ok("host_metrics.get_memory_total", vec![s(&metrics)]);
    assert!(matches!(total, Value::String(ref t) if t.parse::<i64>().unwrap() > 0));
    let cpus = api.ok("host.get_host_CPUs", vec![s(host)]);
    let n_cpus = std::thread::available_parallelism().unwrap().get();
    assert!(
        matches!(cpus, Value::Array(ref c) if c.len() == n_cpus),
        "{cpus:?}"
    );
    let dom0 = api.ok(
        "VM.get_all_records_where",
        vec![s(r#"field "is_control_domain"="true""#)],
    );
    let dom0 = records(dom0);
    assert_eq!(dom0.len(), 1);
    assert_eq!(dom0[0].1.get("power_state"), Some(&s("Running")));
    assert_eq!(dom0[0].1.get("resident_on"), Some(&s(host)));
    let resident = api.ok("host.get_resident_VMs", vec![s(host)]);
    assert_eq!(
        resident,
        Value::Array(vec![s(&dom0[0].0)]),
        "relation keeps host.resident_VMs true"
    );
}

#[test]
fn default_templates_networks_sm_and_roles_exist() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let templates = records(api.ok(
        "VM.get_all_records_where",
        vec![s(r#"field "is_a_template"="true""#)],
    ));
    assert!(templates.len() >= 30, "{} templates", templates.len());
    for name in [
        "Other install media",
        "Debian Bookworm 12",
        "Windows 10 (64-bit)",
    ] {
        let found = api.ok("VM.get_by_name_label", vec![s(name)]);
        assert!(
            matches!(found, Value::Array(ref v) if v.len() == 1),
            "{name}: {found:?}"
        );
    }
    let (_, debian) = templates
        .iter()
        .find(|(_, r)| r.get("name_label") == Some(&s("Debian Bookworm 12")))
        .unwrap();
    let oc = debian.get("other_config").unwrap();
    assert!(oc
        .get("disks")
        .and_then(Value::as_str)
        .unwrap()
        .starts_with("<provision><disk"));
    assert_eq!(oc.get("linux_template"), Some(&s("true")));
    assert!(debian
        .get("recommendations")
        .and_then(Value::as_str)
        .unwrap()
        .starts_with("<restrictions>"));
    let networks = records(api.ok("network.get_all_records", vec![]));
    assert!(networks
        .iter()
        .any(|(_, n)| n.get("bridge") == Some(&s("xenbr0"))));
    let sm_types: Vec<String> = records(api.ok("SM.get_all_records", vec![]))
        .into_iter()
        .map(|(_, r)| r.get("type").and_then(Value::as_str).unwrap().to_owned())
        .collect();
    for t in ["file", "ext", "iso", "nfs"] {
        assert!(
            sm_types.iter().any(|x| x == t),
            "SM type {t} missing: {sm_types:?}"
        );
    }
    let admin = api.ok("role.get_by_name_label", vec![s("pool-admin")]);
    let Value::Array(admin) = admin else { panic!() };
    assert_eq!(admin.len(), 1);
    let perms = api.ok("role.get_subroles", vec![admin[0].clone()]);
    assert!(
        matches!(perms, Value::Array(ref p) if p.len() > 1000),
        "pool-admin holds every permission"
    );
}
