//! Long operations run as upstream xe runs them: the `Async.` form of the call creates a
//! server task, xe waits for it to leave `pending` (watching the task with `event.from`,
//! or polling `task.get_status` on a server without events), turns a failed task's
//! `error_info` into the error the synchronous call would have raised, and destroys the task.
use std::time::Duration;

use xapi_rpc::Value;

use crate::api::{s, Api};
use crate::error::CliError;

/// Calls `Async.<method>` and waits for its task; the task's result on success.
pub fn call(api: &mut Api, method: &str, params: Vec<Value>) -> Result<String, CliError> {
    let task = api.call_string(&format!("Async.{method}"), params)?;
    let outcome = wait(api, &task)
        .and_then(|()| result(api, &task))
        .map(|v| match v {
            Value::String(text) => text,
            _ => String::new(),
        });
    // As upstream, the task is destroyed whatever happened; a failure to do so is not reported.
    let _ = api.call("task.destroy", vec![s(&task)]);
    outcome
}

fn status(api: &mut Api, task: &str) -> Result<String, CliError> {
    api.call_string("task.get_status", vec![s(task)])
}

/// Waits until `task` is no longer pending.
pub fn wait(api: &mut Api, task: &str) -> Result<(), CliError> {
    if status(api, task)? != "pending" {
        return Ok(());
    }
    let classes = Value::Array(vec![s(&format!("task/{task}"))]);
    let mut token = String::new();
    loop {
        let batch = api.call(
            "event.from",
            vec![classes.clone(), s(&token), Value::Double(30.0)],
        );
        match batch {
            Ok(v) => {
                if let Some(t) = v.get("token").and_then(Value::as_str) {
                    token = t.to_owned();
                }
                let done = match v.get("events") {
                    Some(Value::Array(events)) => events.iter().any(|e| {
                        e.get("ref").and_then(Value::as_str) == Some(task)
                            && (e.get("operation").and_then(Value::as_str) == Some("del")
                                || e.get("snapshot")
                                    .and_then(|r| r.get("status"))
                                    .and_then(Value::as_str)
                                    .is_some_and(|st| st != "pending"))
                    }),
                    _ => false,
                };
                if done {
                    return Ok(());
                }
            }
            Err(CliError::Api { .. }) => {
                // No usable event stream: poll the task instead.
                while status(api, task)? == "pending" {
                    std::thread::sleep(Duration::from_millis(100));
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
}

/// The outcome of a finished task, as upstream's `result_from_task` reads it: the decoded
/// result on success, the task's error otherwise.
pub fn result(api: &mut Api, task: &str) -> Result<Value, CliError> {
    match status(api, task)?.as_str() {
        "success" => {
            let text = api.call_string("task.get_result", vec![s(task)])?;
            Ok(decode_result(&text))
        }
        "cancelling" | "cancelled" => Err(CliError::Api {
            code: "TASK_CANCELLED".into(),
            params: vec![task.to_owned()],
        }),
        "pending" => Err(crate::error::fail(
            "wait_for_task_completion failed; task is still pending",
        )),
        _ => {
            let info = api.call("task.get_error_info", vec![s(task)])?;
            let mut items: Vec<String> = match info {
                Value::Array(v) => v
                    .iter()
                    .map(|x| x.as_str().unwrap_or_default().to_owned())
                    .collect(),
                _ => Vec::new(),
            };
            if items.is_empty() {
                return Err(crate::error::fail(format!(
                    "Task failed but no error recorded: {task}"
                )));
            }
            let code = items.remove(0);
            Err(CliError::Api {
                code,
                params: items,
            })
        }
    }
}

/// A task's `result` is an XML-RPC `<value>` document (empty for void calls): its value.
pub fn decode_result(text: &str) -> Value {
    let t = text.trim();
    if t.is_empty() {
        return Value::String(String::new());
    }
    xapi_rpc::xmlrpc::decode_value(t.as_bytes(), &xapi_rpc::Limits::default())
        .unwrap_or_else(|_| Value::String(t.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_results_are_unwrapped_from_their_value_document() {
        assert_eq!(
            decode_result("<value>OpaqueRef:abc</value>"),
            s("OpaqueRef:abc")
        );
        assert_eq!(decode_result(""), s(""));
        assert_eq!(decode_result("plain"), s("plain"));
        assert_eq!(
            decode_result("<value><array><data><value>OpaqueRef:v</value></data></array></value>"),
            Value::Array(vec![s("OpaqueRef:v")])
        );
    }
}
