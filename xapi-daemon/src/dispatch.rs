//! The dispatcher: method lookup, session and RBAC checks, arity and defaults, `Async.` tasks,
//! then the implicit engine or the generated explicit dispatch (`Async.` tasks live in `tasks`).
//! Knows no wire format.
use std::sync::Arc;

use xapi_idl::model::{MessageDef, MessageKind};
use xapi_idl::traits::dispatch_explicit;
use xapi_idl::{classes, errors, ApiError, ApiResult, Lifecycle, Ref, Value};

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
    params: Vec<Value>,
) -> ApiResult<Value> {
    let result = route(app, origin, method, params).await;
    // The answer acknowledges the call's writes: they (and everything written before them)
    // reach SQLite first, in one group commit.
    match (app.db.sync(), result) {
        (Ok(()), result) => result,
        (Err(e), Ok(_)) => Err(crate::errors::db_error(e)),
        (Err(e), Err(failure)) => {
            tracing::error!(error = %e, "object store commit failed after a failed call");
            Err(failure)
        }
    }
}

/// Checks the session, the method and its parameters, then runs it.
async fn route(
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
        return crate::tasks::spawn(ctx, index, params).map(|t| Value::String(t.into_string()));
    }
    run(ctx, index, params).await
}

/// Runs a message: implicit ones inline (they only touch the store), the long-polling event
/// calls as futures, other explicit ones on a blocking thread (they may wait on the hypervisor
/// or storage).
pub(crate) async fn run(ctx: Ctx, index: usize, params: Vec<Value>) -> ApiResult<Value> {
    let msg: &MessageDef = &ctx.app.model.messages[index];
    if let Some(waiting) = crate::events::waiting_call(&msg.wire) {
        return crate::events::run_waiting(ctx, waiting, params).await;
    }
    match msg.kind {
        MessageKind::Implicit(kind) => crate::implicit::run(&ctx.app, msg, kind, params),
        MessageKind::Explicit(n) => {
            // On the multi-threaded runtime the action runs right here, with this worker's
            // other tasks handed to another thread meanwhile: the call skips two thread
            // hand-overs (there and back) on its way. Elsewhere it goes to the blocking pool.
            if multi_thread() {
                let app = &ctx.app;
                let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    tokio::task::block_in_place(|| dispatch_explicit(&**app, &ctx, n, params))
                }));
                return caught.unwrap_or_else(|panic| {
                    Err(ApiError::internal(format!(
                        "action failed: {}",
                        panic_message(&panic)
                    )))
                });
            }
            let app = ctx.app.clone();
            tokio::task::spawn_blocking(move || dispatch_explicit(&*app, &ctx, n, params))
                .await
                .map_err(|e| ApiError::internal(format!("action failed: {e}")))?
        }
    }
}

/// What a caught panic said, for the `INTERNAL_ERROR` of the call.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panicked")
}

/// Whether this runs on the multi-threaded runtime (where `block_in_place` is allowed).
fn multi_thread() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}
