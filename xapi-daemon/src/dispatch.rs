//! The dispatcher: method lookup, session and RBAC checks, arity and defaults, `Async.` tasks,
//! then the implicit engine or the generated explicit dispatch. Knows no wire format.
use std::sync::Arc;

use xapi_idl::model::{MessageDef, MessageKind};
use xapi_idl::records::TaskRecord;
use xapi_idl::traits::dispatch_explicit;
use xapi_idl::{
    classes, enums, errors, ApiError, ApiResult, DateTime, Lifecycle, Record, Ref, Value,
};

use crate::app::App;
use crate::session::SessionInfo;

/// Where a call came from; the unix socket is pre-authenticated as the local superuser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Plain HTTP over TCP.
    Tcp,
    /// HTTPS.
    Tls,
    /// The local unix socket.
    Unix,
}

/// Per-call context handed to explicit actions.
pub struct Ctx {
    pub app: Arc<App>,
    /// The calling session (absent for the few messages that take none).
    pub session: Option<Arc<SessionInfo>>,
    pub origin: Origin,
    /// The task this call reports to, for `Async.` calls.
    pub task: Option<Ref<classes::Task>>,
}

/// Runs one API call end to end.
pub async fn call(
    app: &Arc<App>,
    origin: Origin,
    method: &str,
    mut params: Vec<Value>,
) -> ApiResult<Value> {
    let (is_async, wire) = match method.strip_prefix("Async.") {
        Some(rest) => (true, rest),
        None => (false, method),
    };
    let Some(index) = app.model.message_index(wire) else {
        return Err(errors::message_method_unknown(method));
    };
    // Compatibility: `Class_message` is only accepted for synchronous calls.
    if is_async && !wire.contains('.') {
        return Err(errors::message_method_unknown(method));
    }
    let msg = &app.model.messages[index];
    let session = if msg.has_session {
        if params.is_empty() {
            return Err(errors::message_parameter_count_mismatch(
                &msg.wire,
                msg.required_params(),
                0,
            ));
        }
        let s = params.remove(0);
        let r = s.as_str().unwrap_or_default();
        Some(
            app.sessions
                .validate(r)
                .ok_or_else(|| errors::session_invalid(r))?,
        )
    } else {
        None
    };
    if msg.lifecycle == Lifecycle::Removed {
        return Err(errors::message_removed());
    }
    if let MessageKind::Explicit(_) = msg.kind {
        if !xapi_idl::traits::is_implemented(&**app, msg.class, &msg.name) {
            return Err(errors::not_implemented(&msg.wire));
        }
    }
    let received = params.len();
    if received < msg.required_params() || received > msg.params.len() {
        return Err(errors::message_parameter_count_mismatch(
            &msg.wire,
            msg.required_params(),
            received,
        ));
    }
    let missing = msg.params.len() - received;
    params.extend(msg.defaults[msg.defaults.len() - missing..].iter().cloned());
    if let Some(s) = &session {
        if !s.may_call(&msg.roles) {
            return Err(errors::rbac_permission_denied(
                &msg.permission,
                "No permission in user session",
            ));
        }
    }
    tracing::debug!(method = %msg.wire, originator = session.as_ref().map(|s| s.originator.as_str()).unwrap_or(""), "api call");
    let ctx = Ctx {
        app: app.clone(),
        session,
        origin,
        task: None,
    };
    if is_async {
        if !msg.async_ok {
            return Err(ApiError::new(
                "Fault",
                vec![format!(
                    "No async mode for this operation (rpc: {})",
                    msg.wire
                )],
            ));
        }
        return spawn_task(ctx, index, params).map(|t| Value::String(t.into_string()));
    }
    run(ctx, index, params).await
}

/// Runs a message: implicit ones inline (they only touch the store), explicit ones on a
/// blocking thread (they may wait on the hypervisor or storage).
async fn run(ctx: Ctx, index: usize, params: Vec<Value>) -> ApiResult<Value> {
    let msg: &MessageDef = &ctx.app.model.messages[index];
    match msg.kind {
        MessageKind::Implicit(kind) => crate::implicit::run(&ctx.app, msg, kind, params),
        MessageKind::Explicit(n) => {
            let app = ctx.app.clone();
            tokio::task::spawn_blocking(move || dispatch_explicit(&*app, &ctx, n, params))
                .await
                .map_err(|e| ApiError::internal(format!("action failed: {e}")))?
        }
    }
}

/// Creates a pending task, runs the call in the background and records its outcome.
fn spawn_task(mut ctx: Ctx, index: usize, params: Vec<Value>) -> ApiResult<Ref<classes::Task>> {
    let app = ctx.app.clone();
    let msg = &app.model.messages[index];
    let task: Ref<classes::Task> = Ref::fresh();
    let rec = TaskRecord {
        uuid: uuid::Uuid::new_v4().to_string(),
        name_label: format!("Async.{}", msg.wire),
        created: DateTime::now(),
        status: enums::TaskStatusType::Pending,
        resident_on: Ref::from_raw(&app.host),
        allowed_operations: vec![enums::TaskAllowedOperations::Cancel],
        ..TaskRecord::default()
    };
    let t = app.table_of::<classes::Task>();
    app.write(|txn| txn.insert(t, task.as_str(), rec.to_row()))?;
    ctx.task = Some(task.clone());
    let task_ref = task.clone();
    tokio::spawn(async move {
        let outcome = run(ctx, index, params).await;
        if let Err(e) = finish_task(&app, t, task_ref.as_str(), outcome) {
            tracing::warn!(task = %task_ref, error = %e, "could not record task outcome");
        }
    });
    Ok(task)
}

fn finish_task(app: &App, t: usize, task: &str, outcome: ApiResult<Value>) -> ApiResult<()> {
    let Some(row) = app.db.get(t, task) else {
        return Ok(());
    };
    let mut rec = TaskRecord::from_row(&row).map_err(ApiError::from)?;
    rec.finished = DateTime::now();
    rec.progress = 1.0;
    rec.allowed_operations.clear();
    match outcome {
        Ok(v) => {
            rec.status = enums::TaskStatusType::Success;
            // Compatibility: the result is the XML-RPC encoding of the value, for every client.
            let mut out = Vec::new();
            xapi_rpc::xmlrpc::encode_value(&v, &mut out);
            rec.result = String::from_utf8_lossy(&out).into_owned();
        }
        Err(e) => {
            rec.status = enums::TaskStatusType::Failure;
            rec.error_info = std::iter::once(e.code).chain(e.params).collect();
        }
    }
    app.write(|txn| {
        if txn.view().get(t, task).is_some() {
            for (c, v) in rec.to_row().into_iter().enumerate() {
                if row.get(c) != Some(&v)
                    && !app.model.classes[app.tables.class(t)].fields[c].derived
                {
                    txn.set_field(t, task, c, v)?;
                }
            }
        }
        Ok(())
    })
}
