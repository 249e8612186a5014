//! Tasks: `Async.*` calls run in the background and report through a `task` object; progress,
//! cancellation points and results for actions; the per-object operation lock
//! ([`with_operation`]) that fills `current_operations`; the finished-task garbage collector.
//!
//! ```text
//!   Async.X.y ──▶ pending ──(work ends)──────────────▶ success | failure
//!                   │
//!                   └─ task.cancel ─▶ cancelling ─(next cancel point)─▶ cancelled
//! ```
//!
//! A task's `result` is the XML-RPC encoding of the value, for every client, as upstream.
//! This module never blocks the runtime: actions run on blocking threads and wait there.
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use xapi_db::TableId;
use xapi_idl::model::MessageDef;
use xapi_idl::records::TaskRecord;
use xapi_idl::{classes, enums, errors, ApiError, ApiResult, DateTime, Record, Ref, Value};

use crate::app::App;
use crate::dispatch::Ctx;

/// At most this many finished tasks are kept (`xapi_globs.ml` `max_tasks`); pending ones never
/// count.
pub const MAX_FINISHED_TASKS: usize = 200;
/// Finished tasks older than this are destroyed (`completed_task_timeout`, 65 minutes).
pub const FINISHED_TASK_TIMEOUT: Duration = Duration::from_secs(65 * 60);
/// Pending tasks older than this are destroyed (`pending_task_timeout`, 24 hours).
pub const PENDING_TASK_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// How often the garbage collector looks for expired tasks.
const GC_PERIOD: Duration = Duration::from_secs(60);

/// A cancellation request for a running task, waited on by cancellable sleeps.
#[derive(Default)]
struct CancelFlag {
    cancelled: Mutex<bool>,
    wake: Condvar,
}

/// Tasks whose work runs in this process, by task ref (refs are globally unique).
static RUNNING: LazyLock<Mutex<HashMap<String, Arc<CancelFlag>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn flag_of(task: &str) -> Option<Arc<CancelFlag>> {
    RUNNING.lock().get(task).cloned()
}

/// Creates a pending task owned by this host; `parent` makes it a subtask.
pub fn create(
    app: &App,
    label: &str,
    description: &str,
    parent: Option<&Ref<classes::Task>>,
) -> ApiResult<Ref<classes::Task>> {
    let task: Ref<classes::Task> = Ref::fresh();
    let rec = TaskRecord {
        uuid: uuid::Uuid::new_v4().to_string(),
        name_label: label.to_owned(),
        name_description: description.to_owned(),
        created: DateTime::now(),
        status: enums::TaskStatusType::Pending,
        resident_on: Ref::from_raw(&app.host),
        allowed_operations: vec![enums::TaskAllowedOperations::Cancel],
        subtask_of: parent.cloned().unwrap_or_else(Ref::null),
        ..TaskRecord::default()
    };
    let t = app.table_of::<classes::Task>();
    let row = clear_derived(app, t, rec.to_row());
    app.write(|txn| txn.insert(t, task.as_str(), row))?;
    Ok(task)
}

/// Empties the derived (relation) columns of a row: the store fills them, inserts keep them empty.
pub(crate) fn clear_derived(app: &App, t: TableId, mut row: Vec<Value>) -> Vec<Value> {
    let class = &app.model.classes[app.tables.class(t)];
    for (c, f) in class.fields.iter().enumerate() {
        if f.derived {
            if let Some(v) = row.get_mut(c) {
                *v = f.default.clone();
            }
        }
    }
    row
}

/// Starts `Async.<msg>`: creates the task, runs the call on the runtime, records its outcome.
pub fn spawn(mut ctx: Ctx, index: usize, params: Vec<Value>) -> ApiResult<Ref<classes::Task>> {
    let app = ctx.app.clone();
    let msg: &MessageDef = &app.model.messages[index];
    let task = create(&app, &format!("Async.{}", msg.wire), "", None)?;
    RUNNING
        .lock()
        .insert(task.as_str().to_owned(), Arc::new(CancelFlag::default()));
    ctx.task = Some(task.clone());
    let task_ref = task.clone();
    tokio::spawn(async move {
        let outcome = crate::dispatch::run(ctx, index, params).await;
        RUNNING.lock().remove(task_ref.as_str());
        if let Err(e) = finish(&app, task_ref.as_str(), outcome) {
            tracing::warn!(task = %task_ref, error = %e, "could not record task outcome");
        }
        collect_excess(&app);
    });
    Ok(task)
}

/// Records a task's outcome: status, progress 1.0, `finished`, `result` or `error_info`.
pub fn finish(app: &App, task: &str, outcome: ApiResult<Value>) -> ApiResult<()> {
    let t = app.table_of::<classes::Task>();
    let Some(row) = app.db.get(t, task) else {
        // Destroyed while it ran: nobody is waiting for the outcome.
        return Ok(());
    };
    let mut rec = TaskRecord::from_row(&row).map_err(ApiError::from)?;
    rec.finished = DateTime::now();
    rec.allowed_operations.clear();
    rec.current_operations.clear();
    match outcome {
        Ok(v) => {
            rec.status = enums::TaskStatusType::Success;
            rec.progress = 1.0;
            rec.result = encode_result(&v);
        }
        Err(e) => {
            rec.status = if e.code == errors::TASK_CANCELLED {
                enums::TaskStatusType::Cancelled
            } else {
                enums::TaskStatusType::Failure
            };
            rec.error_info = std::iter::once(e.code).chain(e.params).collect();
        }
    }
    write_changed(app, t, task, &row, rec)
}

/// Compatibility: `task.result` is the XML-RPC `<value>` of the result, for every client.
pub fn encode_result(v: &Value) -> String {
    let mut out = Vec::new();
    xapi_rpc::xmlrpc::encode_value(v, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes the fields of `rec` that differ from `old`, if the task still exists.
fn write_changed(
    app: &App,
    t: TableId,
    task: &str,
    old: &[Value],
    rec: TaskRecord,
) -> ApiResult<()> {
    let class = &app.model.classes[app.tables.class(t)];
    app.write(|txn| {
        if txn.view().get(t, task).is_some() {
            for (c, v) in rec.to_row().into_iter().enumerate() {
                if old.get(c) != Some(&v) && !class.fields[c].derived {
                    txn.set_field(t, task, c, v)?;
                }
            }
        }
        Ok(())
    })
}

/// Reads a task, or `HANDLE_INVALID [task, ref]`.
pub fn record(app: &App, task: &str) -> ApiResult<(Vec<Value>, TaskRecord)> {
    let t = app.table_of::<classes::Task>();
    let row = app
        .db
        .get(t, task)
        .ok_or_else(|| errors::handle_invalid("task", task))?;
    let rec = TaskRecord::from_row(&row).map_err(ApiError::from)?;
    Ok((row.to_vec(), rec))
}

/// Changes a task's record with `f` (one transaction per call).
pub fn update(app: &App, task: &str, f: impl FnOnce(&mut TaskRecord)) -> ApiResult<()> {
    let (row, mut rec) = record(app, task)?;
    f(&mut rec);
    write_changed(app, app.table_of::<classes::Task>(), task, &row, rec)
}

/// `task.cancel`: a pending task becomes `cancelling`; its work stops at the next cancel point.
pub fn cancel(app: &App, task: &str) -> ApiResult<()> {
    let (_, rec) = record(app, task)?;
    if rec.status != enums::TaskStatusType::Pending
        || !rec
            .allowed_operations
            .contains(&enums::TaskAllowedOperations::Cancel)
    {
        return Err(errors::operation_not_allowed(format!(
            "task {task} cannot be cancelled in state {}",
            xapi_idl::WireEnum::as_str(rec.status)
        )));
    }
    update(app, task, |rec| {
        rec.status = enums::TaskStatusType::Cancelling;
    })?;
    if let Some(flag) = flag_of(task) {
        *flag.cancelled.lock() = true;
        flag.wake.notify_all();
    }
    tracing::info!(task, "task cancelling");
    Ok(())
}

impl Ctx {
    /// Reports progress (0.0-1.0) on this call's task; a no-op for synchronous calls.
    pub fn set_progress(&self, progress: f64) -> ApiResult<()> {
        let Some(task) = &self.task else {
            return Ok(());
        };
        let progress = progress.clamp(0.0, 1.0);
        update(&self.app, task.as_str(), |rec| rec.progress = progress)
    }

    /// A cancel point: `TASK_CANCELLED [task]` once `task.cancel` was called on this task.
    pub fn cancel_point(&self) -> ApiResult<()> {
        let Some(task) = &self.task else {
            return Ok(());
        };
        let requested = match flag_of(task.as_str()) {
            Some(flag) => *flag.cancelled.lock(),
            None => record(&self.app, task.as_str())
                .map(|(_, rec)| rec.status == enums::TaskStatusType::Cancelling)
                .unwrap_or(false),
        };
        if requested {
            return Err(errors::task_cancelled(task.as_str()));
        }
        Ok(())
    }

    /// Waits `duration` on a blocking thread, ending early with `TASK_CANCELLED` on cancel.
    pub fn sleep_cancellable(&self, duration: Duration) -> ApiResult<()> {
        let flag = self.task.as_ref().and_then(|t| flag_of(t.as_str()));
        match flag {
            None => std::thread::sleep(duration),
            Some(flag) => {
                let deadline = std::time::Instant::now() + duration;
                let mut cancelled = flag.cancelled.lock();
                while !*cancelled {
                    if flag.wake.wait_until(&mut cancelled, deadline).timed_out() {
                        break;
                    }
                }
            }
        }
        self.cancel_point()
    }

    /// The ref naming this call in `current_operations`: its task, or a fresh one.
    pub fn operation_ref(&self) -> String {
        match &self.task {
            Some(t) => t.as_str().to_owned(),
            None => format!("OpaqueRef:{}", uuid::Uuid::new_v4()),
        }
    }
}

/// Runs `f` while operation `op` is recorded in `current_operations` of `class` object `r`.
///
/// A second operation on the same object meanwhile is refused with
/// `OTHER_OPERATION_IN_PROGRESS [class, ref, operation, task]`. While `f` runs the object's
/// `allowed_operations` is empty; afterwards the previous value is put back. (The VM lifecycle
/// work will replace that restore with a recomputation per class.)
pub fn with_operation<R>(
    ctx: &Ctx,
    class: &str,
    r: &str,
    op: &str,
    f: impl FnOnce() -> ApiResult<R>,
) -> ApiResult<R> {
    let app = &ctx.app;
    let lock = OperationLock::take(app, class, r, op, ctx.operation_ref())?;
    let result = f();
    drop(lock);
    result
}

/// An entry in an object's `current_operations`, removed on drop.
struct OperationLock {
    app: Arc<App>,
    t: TableId,
    r: String,
    op_ref: String,
    current: usize,
    allowed: Option<(usize, Value)>,
}

impl OperationLock {
    fn take(app: &Arc<App>, class: &str, r: &str, op: &str, op_ref: String) -> ApiResult<Self> {
        let ci = app
            .model
            .class_index(class)
            .ok_or_else(|| ApiError::internal(format!("no class {class}")))?;
        let t = app
            .tables
            .table(ci)
            .ok_or_else(|| ApiError::internal(format!("class {class} is not stored")))?;
        let fields = &app.model.classes[ci].field_index;
        let current = *fields
            .get("current_operations")
            .ok_or_else(|| ApiError::internal(format!("{class} has no current_operations")))?;
        let allowed_col = fields.get("allowed_operations").copied();
        let outcome = app.write(|txn| {
            let Some(row) = txn.view().get(t, r) else {
                return Ok(Err(errors::handle_invalid(class, r)));
            };
            if let Some(Value::Struct(ops)) = row.get(current) {
                if let Some((other_ref, other_op)) = ops.first() {
                    let other_op = other_op.as_str().unwrap_or_default().to_owned();
                    return Ok(Err(errors::other_operation_in_progress(
                        class, r, other_op, other_ref,
                    )));
                }
            }
            txn.map_add(t, r, current, &op_ref, Value::String(op.to_owned()))?;
            let saved = match allowed_col.and_then(|c| row.get(c).map(|v| (c, v.clone()))) {
                Some((c, v)) => {
                    txn.set_field(t, r, c, Value::Array(Vec::new()))?;
                    Some((c, v))
                }
                None => None,
            };
            Ok(Ok(saved))
        })?;
        let allowed = outcome?;
        Ok(OperationLock {
            app: app.clone(),
            t,
            r: r.to_owned(),
            op_ref,
            current,
            allowed,
        })
    }
}

impl Drop for OperationLock {
    fn drop(&mut self) {
        let (t, r) = (self.t, self.r.as_str());
        let result = self.app.write(|txn| {
            if txn.view().get(t, r).is_none() {
                return Ok(());
            }
            txn.map_remove(t, r, self.current, &self.op_ref)?;
            if let Some((c, v)) = &self.allowed {
                txn.set_field(t, r, *c, v.clone())?;
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::warn!(object = %self.r, error = %e, "could not clear current_operations");
        }
    }
}

fn is_finished(status: enums::TaskStatusType) -> bool {
    !matches!(
        status,
        enums::TaskStatusType::Pending | enums::TaskStatusType::Cancelling
    )
}

/// Which tasks the collector destroys: finished ones beyond [`MAX_FINISHED_TASKS`] (oldest
/// first) or older than [`FINISHED_TASK_TIMEOUT`], pending ones older than
/// [`PENDING_TASK_TIMEOUT`].
fn expired(tasks: &[(String, TaskRecord)], now: DateTime) -> Vec<String> {
    let finished_limit = now.0 - FINISHED_TASK_TIMEOUT.as_secs() as i64;
    let pending_limit = now.0 - PENDING_TASK_TIMEOUT.as_secs() as i64;
    let mut out = Vec::new();
    let mut finished: Vec<(&String, &TaskRecord)> = Vec::new();
    for (r, rec) in tasks {
        if is_finished(rec.status) {
            if rec.finished.0 < finished_limit {
                out.push(r.clone());
            } else {
                finished.push((r, rec));
            }
        } else if rec.created.0 < pending_limit && !RUNNING.lock().contains_key(r) {
            out.push(r.clone());
        }
    }
    if finished.len() > MAX_FINISHED_TASKS {
        finished.sort_by_key(|(r, rec)| (rec.finished, rec.created, r.as_str()));
        let excess = finished.len() - MAX_FINISHED_TASKS;
        out.extend(finished.iter().take(excess).map(|(r, _)| (*r).clone()));
    }
    out
}

fn collect(app: &App) {
    let t = app.table_of::<classes::Task>();
    let tasks: Vec<(String, TaskRecord)> = app
        .db
        .rows(t)
        .into_iter()
        .filter_map(|(r, row)| TaskRecord::from_row(&row).ok().map(|rec| (r, rec)))
        .collect();
    let doomed = expired(&tasks, DateTime::now());
    if doomed.is_empty() {
        return;
    }
    let result = app.write(|txn| {
        for r in &doomed {
            if txn.view().get(t, r).is_some() {
                txn.delete(t, r)?;
            }
        }
        Ok(())
    });
    match result {
        Ok(()) => tracing::debug!(count = doomed.len(), "finished tasks collected"),
        Err(e) => tracing::warn!(error = %e, "task garbage collection failed"),
    }
}

/// Enforces the finished-task cap right after a task ends (cheap when under the cap).
fn collect_excess(app: &App) {
    let t = app.table_of::<classes::Task>();
    if app.db.count(t) > MAX_FINISHED_TASKS {
        collect(app);
    }
}

/// The task garbage collector; runs forever.
pub async fn gc(app: Arc<App>) {
    let mut tick = tokio::time::interval(GC_PERIOD);
    loop {
        tick.tick().await;
        let app = app.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || collect(&app)).await {
            tracing::warn!(error = %e, "task garbage collection panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(status: enums::TaskStatusType, created: i64, finished: i64) -> TaskRecord {
        TaskRecord {
            status,
            created: DateTime(created),
            finished: DateTime(finished),
            ..TaskRecord::default()
        }
    }

    #[test]
    fn finished_tasks_beyond_the_cap_are_collected_oldest_first() {
        let now = 1_000_000;
        let tasks: Vec<(String, TaskRecord)> = (0..MAX_FINISHED_TASKS as i64 + 3)
            .map(|i| {
                (
                    format!("OpaqueRef:{i:04}"),
                    task(enums::TaskStatusType::Success, now - 100, now - 100 + i),
                )
            })
            .collect();
        let doomed = expired(&tasks, DateTime(now));
        assert_eq!(
            doomed,
            vec!["OpaqueRef:0000", "OpaqueRef:0001", "OpaqueRef:0002"]
        );
    }

    #[test]
    fn pending_tasks_never_count_towards_the_cap() {
        let now = 1_000_000;
        let tasks: Vec<(String, TaskRecord)> = (0..MAX_FINISHED_TASKS + 50)
            .map(|i| {
                (
                    format!("OpaqueRef:{i}"),
                    task(enums::TaskStatusType::Pending, now - 10, 0),
                )
            })
            .collect();
        assert!(expired(&tasks, DateTime(now)).is_empty());
    }

    #[test]
    fn old_finished_and_very_old_pending_tasks_expire() {
        let now = 10_000_000;
        let tasks = vec![
            (
                "old-done".to_owned(),
                task(enums::TaskStatusType::Failure, now - 5000, now - 3901),
            ),
            (
                "recent-done".to_owned(),
                task(enums::TaskStatusType::Success, now - 5000, now - 3800),
            ),
            (
                "stale-pending".to_owned(),
                task(enums::TaskStatusType::Pending, now - 86_401, 0),
            ),
            (
                "young-pending".to_owned(),
                task(enums::TaskStatusType::Pending, now - 86_000, 0),
            ),
        ];
        assert_eq!(
            expired(&tasks, DateTime(now)),
            vec!["old-done".to_owned(), "stale-pending".to_owned()]
        );
    }

    #[test]
    fn results_are_xml_rpc_values() {
        assert_eq!(
            encode_result(&Value::String("OpaqueRef:x".into())),
            "<value>OpaqueRef:x</value>"
        );
    }
}
