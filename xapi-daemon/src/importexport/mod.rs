//! VM export and import as XVA over HTTP, as upstream serves them:
//! `GET /export?session_id=..&uuid=..|ref=..[&task_id=..][&use_compression=true|gzip|zstd]
//! [&preserve_power_state=true]` answers the VM as an XVA tar (compressed when asked, see
//! `compress`), and `PUT /import?session_id=..[&sr_id=..][&task_id=..]` reads one (plain,
//! gzip or zstd, recognised by its first bytes) and creates the VM with fresh
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
pub mod compress;
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

/// The VM a request names with `ref` or `uuid`.
fn requested_vm(c: &Caller, args: &[(String, String)]) -> ApiResult<String> {
    match (arg(args, "ref"), arg(args, "uuid")) {
        (Some(r), _) => Ok(r.to_owned()),
        (None, Some(u)) => c.call_string("VM.get_by_uuid", vec![s(u)]),
        (None, None) => Err(ApiError::new(
            "INVALID_VALUE",
            vec!["uuid".into(), String::new()],
        )),
    }
}

/// Boolean query argument `key` (`true` or not, as upstream reads it), `default` when absent.
fn flag_or(args: &[(String, String)], key: &str, default: bool) -> bool {
    arg(args, key).map_or(default, |v| v == "true")
}

/// The VMs of an `all=true` metadata export: every VM but the default templates, and the
/// control domains only with `include_dom0` (default true), as upstream chooses them.
fn all_vms(c: &Caller, include_dom0: bool) -> ApiResult<Vec<String>> {
    let Value::Struct(records) = c.call("VM.get_all_records", vec![])? else {
        return Ok(Vec::new());
    };
    let yes = |rec: &Value, k: &str| rec.get(k) == Some(&Value::Bool(true));
    Ok(records
        .into_iter()
        .filter(|(_, rec)| {
            let default_template = yes(rec, "is_default_template")
                || (yes(rec, "is_a_template")
                    && rec
                        .get("other_config")
                        .and_then(|o| o.get("default_template"))
                        .and_then(Value::as_str)
                        == Some("true"));
            !default_template && (include_dom0 || !yes(rec, "is_control_domain"))
        })
        .map(|(r, _)| r)
        .collect())
}

/// `GET /export_metadata?session_id=..&uuid=..|ref=..|all=true[&export_snapshots=..]
/// [&include_dom0=..][&excluded_device_types=VIF,VBD..][&task_id=..]`: a tar holding only
/// `ova.xml`, with the power state kept and (by default) the snapshots' metadata, as
/// upstream's metadata handler answers; its length is known, so it is not chunked.
pub async fn handle_export_metadata(
    app: Arc<App>,
    origin: Origin,
    req: Request<Incoming>,
) -> Reply {
    let args = query_args(req.uri().query());
    let c = match authorised(&app, origin, &args).await {
        Ok(c) => c,
        Err(reply) => return reply,
    };
    let args2 = args.clone();
    let result = tokio::task::spawn_blocking(move || {
        let out = (|| {
            let vms = if flag_or(&args2, "all", false) {
                all_vms(&c, flag_or(&args2, "include_dom0", true))?
            } else {
                vec![requested_vm(&c, &args2)?]
            };
            let options = export::Options {
                preserve_power_state: true,
                with_snapshot_metadata: flag_or(&args2, "export_snapshots", true),
                excluded_devices: arg(&args2, "excluded_device_types")
                    .unwrap_or("")
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned)
                    .collect(),
            };
            export::metadata(&export::prepare(&c, &vms, &options)?)
        })();
        c.close();
        out
    })
    .await
    .unwrap_or_else(|e| Err(ApiError::internal(e)));
    let tar = match result {
        Ok(tar) => tar,
        Err(e) => {
            finish_task(&app, &args, &Err(e.clone()));
            return api_error_reply(&e);
        }
    };
    finish_task(&app, &args, &Ok(s("")));
    let mut r = Response::new(full(tar));
    xva_headers(&mut r, &args);
    r
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
            let vm = requested_vm(&c, &args2)?;
            // A full export never carries snapshot metadata (upstream ignores
            // `export_snapshots` here).
            let options = export::Options {
                preserve_power_state: flag_or(&args2, "preserve_power_state", false),
                ..export::Options::default()
            };
            export::prepare(&c, &[vm], &options)
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
    xva_headers(&mut r, &args);
    r
}

/// The headers of an XVA answer: a binary attachment, and the request's task as upstream
/// echoes it.
fn xva_headers(r: &mut Reply, args: &[(String, String)]) {
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(
        "content-disposition",
        HeaderValue::from_static("attachment; filename=\"export.xva\""),
    );
    if let Some(v) = arg(args, "task_id").and_then(|t| HeaderValue::from_str(t).ok()) {
        h.insert("task-id", v);
    }
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
    let io = |e: std::io::Error| ApiError::internal(format!("export: {e}"));
    let algorithm = compress::Algorithm::from_query(arg(args, "use_compression"));
    let written = compress::Encoder::new(algorithm, &mut writer)
        .map_err(io)
        .and_then(|enc| export::write(&c, plan, enc))
        .and_then(|enc| enc.finish().map_err(io))
        .map(|_| ());
    c.close();
    let outcome = written.and_then(|_| writer.flush().map_err(io));
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
/// bounded; decompressed on the way when it starts with a gzip or zstd magic), then read as
/// an XVA.
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
    let file = std::fs::File::create(spool.path())?;
    let mut body = req.into_body();
    // The first bytes say whether the upload is compressed; they may come in several frames.
    let mut head = Vec::new();
    let mut out: Option<compress::Decoder<std::io::BufWriter<std::fs::File>>> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(std::io::Error::other)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        match out.as_mut() {
            Some(w) => w.write_all(&data)?,
            None => {
                head.extend_from_slice(&data);
                if head.len() >= compress::SNIFF_LEN {
                    let mut w = decoder(&head, file.try_clone()?)?;
                    w.write_all(&std::mem::take(&mut head))?;
                    out = Some(w);
                }
            }
        }
    }
    let w = match out {
        Some(w) => w,
        None => {
            let mut w = decoder(&head, file.try_clone()?)?;
            w.write_all(&head)?;
            w
        }
    };
    w.finish()?.flush()?;
    file.sync_all()?;
    Ok(spool)
}

/// The writer that spools an upload starting with `head` into `file`.
fn decoder(
    head: &[u8],
    file: std::fs::File,
) -> std::io::Result<compress::Decoder<std::io::BufWriter<std::fs::File>>> {
    let algorithm = compress::Algorithm::sniff(head);
    if let Some(a) = algorithm {
        tracing::debug!(algorithm = ?a, "import upload is compressed");
    }
    compress::Decoder::new(algorithm, std::io::BufWriter::new(file))
}
