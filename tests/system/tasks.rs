//! `Async.*` tasks: progress, results, failures, cancellation, `current_operations` and
//! conflicting operations, and the client-side `task.*` messages.
use std::time::{Duration, Instant};

use xapi_system_tests::{s, Api, TestDaemon, Value};

/// Each `VM.clone` step takes this long in these tests.
const STEP_MS: &str = "150";

fn slow_daemon() -> TestDaemon {
    TestDaemon::start_with(&[("XAPI_SIM_STEP_DELAY_MS", STEP_MS)])
}

fn a_template(api: &mut Api) -> String {
    match api.ok(
        "VM.get_all_where",
        vec![s(r#"field "is_a_template"="true""#)],
    ) {
        Value::Array(v) => v[0].as_str().expect("ref").to_owned(),
        other => panic!("{other:?}"),
    }
}

fn status(api: &mut Api, task: &str) -> String {
    api.string("task.get_status", vec![s(task)])
}

fn progress(api: &mut Api, task: &str) -> f64 {
    match api.ok("task.get_progress", vec![s(task)]) {
        Value::Double(p) => p,
        Value::String(t) => t.parse().expect("float"),
        other => panic!("{other:?}"),
    }
}

/// Polls until the task leaves pending/cancelling; returns the progress values seen.
fn wait_done(api: &mut Api, task: &str) -> Vec<f64> {
    let began = Instant::now();
    let mut seen = Vec::new();
    loop {
        seen.push(progress(api, task));
        let st = status(api, task);
        if st != "pending" && st != "cancelling" {
            return seen;
        }
        assert!(began.elapsed() < Duration::from_secs(20), "task stuck");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|x| x.as_str().unwrap_or_default().to_owned())
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn async_clone_reports_progress_and_its_result() {
    let d = slow_daemon();
    let mut api = d.login();
    let template = a_template(&mut api);
    let began = Instant::now();
    let task = api.string("Async.VM.clone", vec![s(&template), s("my copy")]);
    assert!(
        began.elapsed() < Duration::from_millis(300),
        "the task ref comes back at once"
    );
    assert!(task.starts_with("OpaqueRef:"));
    let seen = wait_done(&mut api, &task);
    assert_eq!(status(&mut api, &task), "success");
    assert!(
        seen.iter().any(|p| *p > 0.0 && *p < 1.0),
        "progress moved: {seen:?}"
    );
    assert_eq!(progress(&mut api, &task), 1.0);
    let rec = api.ok("task.get_record", vec![s(&task)]);
    let result = rec.get("result").and_then(Value::as_str).expect("result");
    let new_vm = result
        .strip_prefix("<value>")
        .and_then(|r| r.strip_suffix("</value>"))
        .expect("an XML-RPC value");
    assert!(new_vm.starts_with("OpaqueRef:"), "{result}");
    assert_eq!(api.ok("VM.get_name_label", vec![s(new_vm)]), s("my copy"));
    assert_eq!(
        api.ok("VM.get_is_a_template", vec![s(new_vm)]),
        Value::Bool(true)
    );
    assert_ne!(
        api.ok("VM.get_uuid", vec![s(new_vm)]),
        api.ok("VM.get_uuid", vec![s(&template)])
    );
    assert_eq!(
        rec.get("resident_on").and_then(Value::as_str),
        api.ok("host.get_all", vec![]).as_array_first()
    );
    assert_eq!(rec.get("name_label"), Some(&s("Async.VM.clone")));
    assert!(strings(rec.get("error_info").expect("error_info")).is_empty());
}

trait First {
    fn as_array_first(&self) -> Option<&str>;
}

impl First for Value {
    fn as_array_first(&self) -> Option<&str> {
        match self {
            Value::Array(v) => v.first().and_then(Value::as_str),
            _ => None,
        }
    }
}

#[test]
fn cancelling_stops_the_work_with_task_cancelled() {
    let d = slow_daemon();
    let mut api = d.login();
    let template = a_template(&mut api);
    let task = api.string("Async.VM.clone", vec![s(&template), s("never")]);
    std::thread::sleep(Duration::from_millis(100));
    api.ok("task.cancel", vec![s(&task)]);
    let began = Instant::now();
    wait_done(&mut api, &task);
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "stopped at the next cancel point"
    );
    assert_eq!(status(&mut api, &task), "cancelled");
    assert_eq!(
        strings(&api.ok("task.get_error_info", vec![s(&task)])),
        vec!["TASK_CANCELLED".to_owned(), task.clone()]
    );
    assert_eq!(
        api.ok("VM.get_by_name_label", vec![s("never")]),
        Value::Array(vec![])
    );
    assert_eq!(
        api.ok("VM.get_current_operations", vec![s(&template)]),
        Value::Struct(vec![])
    );
    // A finished task cannot be cancelled.
    assert_eq!(
        api.err("task.cancel", vec![s(&task)])[0],
        "OPERATION_NOT_ALLOWED"
    );
}

#[test]
fn a_conflicting_operation_is_refused_while_one_runs() {
    let d = slow_daemon();
    let mut api = d.login();
    let template = a_template(&mut api);
    let allowed_before = api.ok("VM.get_allowed_operations", vec![s(&template)]);
    let task = api.string("Async.VM.clone", vec![s(&template), s("first")]);
    std::thread::sleep(Duration::from_millis(100));
    let current = api.ok("VM.get_current_operations", vec![s(&template)]);
    assert_eq!(current, Value::Struct(vec![(task.clone(), s("clone"))]));
    assert_eq!(
        api.ok("VM.get_allowed_operations", vec![s(&template)]),
        Value::Array(vec![])
    );
    assert_eq!(
        api.err("VM.clone", vec![s(&template), s("second")]),
        vec![
            "OTHER_OPERATION_IN_PROGRESS".to_owned(),
            "VM".to_owned(),
            template.clone(),
            "clone".to_owned(),
            task.clone()
        ]
    );
    wait_done(&mut api, &task);
    assert_eq!(status(&mut api, &task), "success");
    assert_eq!(
        api.ok("VM.get_current_operations", vec![s(&template)]),
        Value::Struct(vec![])
    );
    assert_eq!(
        api.ok("VM.get_allowed_operations", vec![s(&template)]),
        allowed_before
    );
    // Afterwards the same call goes through.
    let vm = api.string("VM.clone", vec![s(&template), s("second")]);
    assert_eq!(api.ok("VM.get_name_label", vec![s(&vm)]), s("second"));
}

#[test]
fn a_failing_async_call_records_its_error() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let task = api.string("Async.VM.clone", vec![s("OpaqueRef:missing"), s("x")]);
    wait_done(&mut api, &task);
    assert_eq!(status(&mut api, &task), "failure");
    assert_eq!(
        strings(&api.ok("task.get_error_info", vec![s(&task)])),
        vec!["HANDLE_INVALID", "VM", "OpaqueRef:missing"]
    );
}

#[test]
fn client_tasks_are_created_updated_and_destroyed() {
    let d = TestDaemon::start();
    let mut api = d.login();
    let task = api.string("task.create", vec![s("upload"), s("my upload")]);
    let rec = api.ok("task.get_record", vec![s(&task)]);
    assert_eq!(rec.get("status"), Some(&s("pending")));
    assert_eq!(rec.get("name_description"), Some(&s("my upload")));
    api.ok("task.set_progress", vec![s(&task), Value::Double(0.5)]);
    assert_eq!(progress(&mut api, &task), 0.5);
    api.ok("task.set_result", vec![s(&task), s("<value>x</value>")]);
    api.ok("task.set_status", vec![s(&task), s("success")]);
    let rec = api.ok("task.get_record", vec![s(&task)]);
    assert_eq!(rec.get("status"), Some(&s("success")));
    assert_eq!(rec.get("result"), Some(&s("<value>x</value>")));
    api.ok("task.destroy", vec![s(&task)]);
    assert_eq!(
        api.err("task.get_record", vec![s(&task)])[0],
        "HANDLE_INVALID"
    );
}

#[test]
fn task_progress_is_visible_through_events() {
    let d = slow_daemon();
    let mut api = d.login();
    let template = a_template(&mut api);
    let start = api.ok(
        "event.from",
        vec![Value::Array(vec![s("task")]), s(""), Value::Double(0.0)],
    );
    let mut token = start
        .get("token")
        .and_then(Value::as_str)
        .expect("token")
        .to_owned();
    let task = api.string("Async.VM.clone", vec![s(&template), s("watched")]);
    let mut statuses = Vec::new();
    let began = Instant::now();
    while !statuses.iter().any(|st: &String| st == "success") {
        assert!(began.elapsed() < Duration::from_secs(20), "{statuses:?}");
        let batch = api.ok(
            "event.from",
            vec![Value::Array(vec![s("task")]), s(&token), Value::Double(5.0)],
        );
        token = batch
            .get("token")
            .and_then(Value::as_str)
            .expect("token")
            .to_owned();
        if let Some(Value::Array(evs)) = batch.get("events") {
            for e in evs {
                if e.get("ref").and_then(Value::as_str) == Some(task.as_str()) {
                    let snap = e.get("snapshot").expect("snapshot");
                    statuses.push(
                        snap.get("status")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_owned(),
                    );
                }
            }
        }
    }
    assert!(statuses.len() >= 3, "saw the task move: {statuses:?}");
}
