//! VM export and import as XVA over HTTP, as upstream serves them:
//! `GET /export?session_id=..&uuid=..|ref=..[&task_id=..]` answers the VM as an XVA tar, and
//! `PUT /import?session_id=..[&sr_id=..][&task_id=..]` reads one and creates the VM with fresh
//! uuids, its disks on the SR (with their data), VBDs and VIFs. A request without a valid
//! session (or from the local unix socket) is refused with 401, as upstream does. When a
//! `task_id` is given the task records the outcome (the new VM refs for an import).
//!
//! Objects are read and created through the XenAPI itself (`dispatch::call` with the
//! caller's session, so RBAC applies); disk data goes through the storage layer's data paths.
//! The tar layout lives in `format`, the two directions in `export` and `import`.
//!
//! An export streams: the session, the VM and `ova.xml` are checked and built first (so
//! their errors get a proper HTTP status), then the tar is written on a blocking thread into
//! a bounded channel (`stream`) that the response body drains, so memory stays bounded
//! whatever the disks' size. An error after the header went out aborts the body.
pub mod disk;
pub mod export;
pub mod format;
pub mod import;
pub mod stream;

use std::io::Write;
use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use xapi_idl::{ApiError, ApiResult, Value};

use crate::actions::blob::query_args;
use crate::app::App;
use crate::dispatch::{self, Origin};
use crate::server::{full, Reply};

/// Makes XenAPI calls on behalf of an HTTP request from a blocking thread.
pub struct Caller {
    /// The daemon.
    pub app: Arc<App>,
    origin: Origin,
    session: String,
    /// Whether the session was opened for this request (and must be closed after it).
    own_session: bool,
    rt: tokio::runtime::Handle,
}

impl Caller {
    /// Calls `method` with the request's session prepended.
    pub fn call(&self, method: &str, params: Vec<Value>) -> ApiResult<Value> {
        let mut all = vec![Value::String(self.session.clone())];
        all.extend(params);
        self.rt
            .block_on(dispatch::call(&self.app, self.origin, method, all))
    }

    /// Calls `method` and expects a string (a ref, a uuid, an enum value).
    pub fn call_string(&self, method: &str, params: Vec<Value>) -> ApiResult<String> {
        match self.call(method, params)? {
            Value::String(s) => Ok(s),
            other => Err(ApiError::internal(format!(
                "{method} returned a {}",
                other.kind()
            ))),
        }
    }

    /// Ends the session the request was given, if it was opened for the request.
    pub(crate) fn close(&self) {
        if self.own_session {
            let _ = self.call("session.logout", Vec::new());
        }
    }
}

/// A string parameter.
pub fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}

/// How many chunks of `stream::CHUNK` bytes an export may have waiting for the client.
const EXPORT_CHUNKS: usize = 4;

/// A plain-text reply.
pub(crate) fn text(status: StatusCode, body: &str) -> Reply {
    let mut r = Response::new(full(body.to_owned()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// The 401 reply that asks for credentials.
pub(crate) fn unauthorised() -> Reply {
    let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorised\n");
    r.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"xapi\""),
    );
    r
}

/// The value of query argument `key`.
pub(crate) fn arg<'a>(args: &'a [(String, String)], key: &str) -> Option<&'a str> {
    args.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The caller for a request: its `session_id` (query or cookie) must be valid; the unix
/// socket may omit it and gets a superuser session for the request.
pub(crate) async fn caller(
    app: &Arc<App>,
    origin: Origin,
    args: &[(String, String)],
) -> Option<Caller> {
    let rt = tokio::runtime::Handle::current();
    match arg(args, "session_id") {
        Some(sid) => app.sessions.validate(sid).map(|_| Caller {
            app: app.clone(),
            origin,
            session: sid.to_owned(),
            own_session: false,
            rt,
        }),
        None if origin == Origin::Unix => {
            let login = dispatch::call(
                app,
                origin,
                "session.login_with_password",
                vec![s("root"), s(""), s("1.0"), s("xva")],
            )
            .await
            .ok()?;
            Some(Caller {
                app: app.clone(),
                origin,
                session: login.as_str()?.to_owned(),
                own_session: true,
                rt,
            })
        }
        None => None,
    }
}

/// The request's caller, or the 401 reply (with its task, if any, failed) that refuses it.
async fn authorised(
    app: &Arc<App>,
    origin: Origin,
    args: &[(String, String)],
) -> Result<Caller, Reply> {
    match caller(app, origin, args).await {
        Some(c) => Ok(c),
        None => {
            finish_task(
                app,
                args,
                &Err(ApiError::new("SESSION_AUTHENTICATION_FAILED", vec![])),
            );
            Err(unauthorised())
        }
    }
}

/// Records the outcome in the request's `task_id` task, if one was given.
fn finish_task(app: &App, args: &[(String, String)], outcome: &ApiResult<Value>) {
    if let Some(task) = arg(args, "task_id") {
        let o = match outcome {
            Ok(v) => Ok(v.clone()),
            Err(e) => Err(e.clone()),
        };
        if let Err(e) = crate::tasks::finish(app, task, o) {
            tracing::warn!(task, error = %e, "cannot record the outcome of an HTTP task");
        }
    }
}

fn api_error_reply(e: &ApiError) -> Reply {
    let status = match e.code.as_str() {
        "HANDLE_INVALID" | "UUID_INVALID" => StatusCode::NOT_FOUND,
        c if c.starts_with("IMPORT_") => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut body = e.code.clone();
    for p in &e.params {
        body.push(' ');
        body.push_str(p);
    }
    body.push('\n');
    text(status, &body)
}

/// `GET /export`.
pub async fn handle_export(app: Arc<App>, origin: Origin, req: Request<Incoming>) -> Reply {
    let args = query_args(req.uri().query());
    let c = match authorised(&app, origin, &args).await {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    let args2 = args.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        let plan = (|| {
            let vm = match (arg(&args2, "ref"), arg(&args2, "uuid")) {
                (Some(r), _) => r.to_owned(),
                (None, Some(u)) => c.call_string("VM.get_by_uuid", vec![s(u)])?,
                (None, None) => {
                    return Err(ApiError::new(
                        "INVALID_VALUE",
                        vec!["uuid".into(), String::new()],
                    ))
                }
            };
            export::prepare(&c, &vm)
        })();
        match plan {
            Ok(plan) => Ok((c, plan)),
            Err(e) => {
                c.close();
                Err(e)
            }
        }
    })
    .await
    .unwrap_or_else(|e| Err(ApiError::internal(e)));
    let (c, plan) = match prepared {
        Ok(x) => x,
        Err(e) => {
            finish_task(&app, &args, &Err(e.clone()));
            return api_error_reply(&e);
        }
    };
    let (writer, body) = stream::channel(EXPORT_CHUNKS, stream::CHUNK);
    let args2 = args.clone();
    let app2 = app.clone();
    tokio::task::spawn_blocking(move || stream_export(&app2, &args2, c, &plan, writer));
    let mut r = Response::new(body.boxed());
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        "content-disposition",
        HeaderValue::from_static("attachment; filename=\"export.xva\""),
    );
    if let Some(v) = arg(&args, "task_id").and_then(|t| HeaderValue::from_str(t).ok()) {
        h.insert("task-id", v);
    }
    r
}

/// Writes the XVA into the response body (on a blocking thread), then records the outcome:
/// success only once the last chunk is handed over, and before the body ends (so a client
/// that has read it all finds the task finished). A failure aborts the body.
fn stream_export(
    app: &App,
    args: &[(String, String)],
    c: Caller,
    plan: &export::Plan,
    mut writer: stream::ChunkWriter,
) {
    let written = export::write(&c, plan, &mut writer).map(|_| ());
    c.close();
    let outcome = written.and_then(|_| {
        writer
            .flush()
            .map_err(|e| ApiError::internal(format!("export: {e}")))
    });
    match outcome {
        Ok(()) => {
            finish_task(app, args, &Ok(s("")));
            if let Err(e) = app.db.sync() {
                tracing::warn!(error = %e, "cannot commit the export task's outcome");
            }
            drop(writer);
        }
        Err(e) => {
            tracing::warn!(error = %e, "export failed after the reply started");
            finish_task(app, args, &Err(e.clone()));
            if let Err(e) = app.db.sync() {
                tracing::warn!(error = %e, "cannot commit the export task's outcome");
            }
            // The client may be gone already (then there is nobody to tell).
            let _ = writer.abort(std::io::Error::other(e.to_string()));
        }
    }
}

/// `PUT /import`: the body is spooled to a file in the state directory (so memory stays
/// bounded), then read as an XVA.
pub async fn handle_import(app: Arc<App>, origin: Origin, req: Request<Incoming>) -> Reply {
    let args = query_args(req.uri().query());
    let c = match authorised(&app, origin, &args).await {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    let spool = match spool(&app, req).await {
        Ok(f) => f,
        Err(io) => {
            // Logging out calls the API synchronously: not on the runtime's own threads.
            tokio::task::spawn_blocking(move || c.close());
            tracing::warn!(error = %io, "import upload failed");
            let e = ApiError::new("IMPORT_ERROR_PREMATURE_EOF", vec![]);
            finish_task(&app, &args, &Err(e.clone()));
            return api_error_reply(&e);
        }
    };
    let args2 = args.clone();
    let result = tokio::task::spawn_blocking(move || {
        let sr = arg(&args2, "sr_id").map(str::to_owned);
        let out = import::import(&c, spool.path(), sr.as_deref());
        c.close();
        out
    })
    .await
    .unwrap_or_else(|e| Err(ApiError::internal(e)));
    let outcome = result.map(|vms| Value::Array(vms.iter().map(|v| s(v)).collect()));
    finish_task(&app, &args, &outcome);
    match outcome {
        Ok(Value::Array(vms)) => {
            // The body lists the new VMs' refs, one per line (the task holds them too).
            let body: String = vms
                .iter()
                .filter_map(Value::as_str)
                .map(|v| format!("{v}\n"))
                .collect();
            text(StatusCode::OK, &body)
        }
        Ok(_) => text(StatusCode::OK, ""),
        Err(e) => api_error_reply(&e),
    }
}

/// The uploaded XVA in the state directory; removed when dropped.
pub struct Spool(std::path::PathBuf);

impl Spool {
    /// Where the upload is.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn spool(app: &App, req: Request<Incoming>) -> std::io::Result<Spool> {
    let path = app
        .config
        .state_dir
        .join(format!("import-{}.xva", uuid::Uuid::new_v4()));
    let spool = Spool(path);
    let mut file = std::fs::File::create(spool.path())?;
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(std::io::Error::other)?;
        if let Ok(data) = frame.into_data() {
            file.write_all(&data)?;
        }
    }
    file.sync_all()?;
    Ok(spool)
}
