//! `blob.*` and the HTTP `/blob` handler: blob rows live in the object store, their bytes in
//! `<state dir>/blobs/<uuid>`, replaced atomically on PUT; `size` and `last_updated` follow
//! every write. Public blobs are readable without credentials.
use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use tokio::io::AsyncWriteExt;
use xapi_idl::records::BlobRecord;
use xapi_idl::traits::BlobActions;
use xapi_idl::{classes, errors, ApiError, ApiResult, DateTime, Record, Ref, Value};

use crate::app::App;
use crate::dispatch::{Ctx, Origin};

/// Where a blob's bytes live.
pub fn path_of(app: &App, uuid: &str) -> PathBuf {
    app.config.state_dir.join("blobs").join(uuid)
}

xapi_idl::actions! {
    impl BlobActions for App {
        fn create(&self, ctx: &Ctx, mime_type: String, public: bool) -> ApiResult<Ref<classes::Blob>> {
            let app = &ctx.app;
            let blob: Ref<classes::Blob> = Ref::fresh();
            let rec = BlobRecord {
                uuid: uuid::Uuid::new_v4().to_string(),
                size: 0,
                public,
                last_updated: DateTime::now(),
                mime_type,
                ..BlobRecord::default()
            };
            let t = app.table_of::<classes::Blob>();
            app.write(|txn| txn.insert(t, blob.as_str(), rec.to_row()))?;
            Ok(blob)
        }

        fn destroy(&self, ctx: &Ctx, self_: Ref<classes::Blob>) -> ApiResult<()> {
            let app = &ctx.app;
            let t = app.table_of::<classes::Blob>();
            let row = app
                .db
                .write(|txn| txn.delete(t, self_.as_str()))
                .map_err(|e| match e {
                    xapi_db::DbError::NotFound { .. } => errors::handle_invalid("blob", self_.as_str()),
                    other => crate::errors::db_error(other),
                })?;
            if let Ok(rec) = BlobRecord::from_row(&row) {
                match std::fs::remove_file(path_of(app, &rec.uuid)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(blob = %self_, error = %e, "could not delete blob data"),
                }
            }
            Ok(())
        }
    }
}

/// An HTTP answer: status, content type, body.
pub type HttpAnswer = (StatusCode, String, Vec<u8>);

fn text(status: StatusCode, message: &str) -> HttpAnswer {
    (status, "text/plain".to_owned(), message.as_bytes().to_vec())
}

/// Decodes `%xx` and `+` in a query component.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query arguments in order, decoded.
pub fn query_args(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn cookie<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request carries credentials: a session (query or cookie) or root's password
/// by HTTP Basic auth; the unix socket needs none.
fn authorised(
    app: &App,
    origin: Origin,
    req: &Request<Incoming>,
    args: &[(String, String)],
) -> bool {
    if origin == Origin::Unix {
        return true;
    }
    let session = args
        .iter()
        .find(|(k, _)| k == "session_id")
        .map(|(_, v)| v.as_str())
        .or_else(|| cookie(req, "session_id"));
    if let Some(s) = session {
        return app.sessions.validate(s).is_some();
    }
    let basic = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| decode_base64(b64.trim()));
    match basic.as_deref().and_then(|s| s.split_once(':')) {
        Some(("root", password)) => app.auth.check_root(password),
        _ => false,
    }
}

fn decode_base64(text: &str) -> Option<String> {
    match xapi_rpc::xmlrpc::decode_value(
        format!("<value><base64>{text}</base64></value>").as_bytes(),
        &xapi_rpc::Limits::default(),
    ) {
        Ok(Value::Base64(bytes)) => String::from_utf8(bytes).ok(),
        _ => None,
    }
}

/// `GET /blob?ref=|uuid=` and `PUT /blob?ref=`.
pub async fn handle(
    app: &std::sync::Arc<App>,
    origin: Origin,
    req: Request<Incoming>,
) -> HttpAnswer {
    let args = query_args(req.uri().query());
    let arg = |k: &str| args.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let t = app.table_of::<classes::Blob>();
    let blob = match (arg("ref"), arg("uuid")) {
        (Some(r), _) => Some(r),
        (None, Some(u)) if req.method() == Method::GET => app.db.ref_by_uuid(t, &u),
        _ => None,
    };
    let Some(blob) = blob else {
        return text(StatusCode::NOT_FOUND, "no such blob");
    };
    let Some(rec) = app
        .db
        .get(t, &blob)
        .and_then(|row| BlobRecord::from_row(&row).ok())
    else {
        return text(StatusCode::NOT_FOUND, "no such blob");
    };
    let public_read = rec.public && req.method() == Method::GET;
    if !public_read && !authorised(app, origin, &req, &args) {
        return text(StatusCode::UNAUTHORIZED, "authorisation required");
    }
    let path = path_of(app, &rec.uuid);
    if req.method() == Method::GET {
        return match tokio::fs::read(&path).await {
            Ok(bytes) => (StatusCode::OK, mime(&rec.mime_type), bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (StatusCode::OK, mime(&rec.mime_type), Vec::new())
            }
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        };
    }
    match store(&path, req.into_body()).await {
        Ok(size) => {
            let size = i64::try_from(size).unwrap_or(i64::MAX);
            let result = set_size(app, &blob, size);
            match result {
                Ok(()) => (StatusCode::OK, "text/plain".to_owned(), Vec::new()),
                Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The blob's `mime_type` as the content type (bytes when it has none).
fn mime(m: &str) -> String {
    if m.is_empty() {
        "application/octet-stream".to_owned()
    } else {
        m.to_owned()
    }
}

fn set_size(app: &App, blob: &str, size: i64) -> ApiResult<()> {
    let t = app.table_of::<classes::Blob>();
    let class = &app.model.classes[<classes::Blob as xapi_idl::Class>::INDEX];
    let col = |name: &str| {
        class
            .field_index
            .get(name)
            .copied()
            .ok_or_else(|| ApiError::internal(format!("blob has no {name}")))
    };
    let (size_col, updated_col) = (col("size")?, col("last_updated")?);
    app.write(|txn| {
        if txn.view().get(t, blob).is_some() {
            txn.set_field(t, blob, size_col, Value::Int(size))?;
            txn.set_field(
                t,
                blob,
                updated_col,
                xapi_idl::ToValue::to_value(&DateTime::now()),
            )?;
        }
        Ok(())
    })
}

/// Streams the body to a temporary file beside `path`, fsyncs and renames it into place.
async fn store(path: &std::path::Path, mut body: Incoming) -> std::io::Result<u64> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("blob path without a directory"))?;
    tokio::fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    let result = async {
        let mut file = tokio::fs::File::create(&tmp).await?;
        let mut size = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(std::io::Error::other)?;
            if let Some(data) = frame.data_ref() {
                let data: &Bytes = data;
                file.write_all(data).await?;
                size += data.len() as u64;
            }
        }
        file.sync_all().await?;
        tokio::fs::rename(&tmp, path).await?;
        Ok(size)
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_arguments_are_percent_decoded() {
        assert_eq!(
            query_args(Some("ref=OpaqueRef%3Aab&session_id=x+y&flag")),
            vec![
                ("ref".to_owned(), "OpaqueRef:ab".to_owned()),
                ("session_id".to_owned(), "x y".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }

    #[test]
    fn basic_credentials_decode() {
        assert_eq!(decode_base64("cm9vdDpwdw==").as_deref(), Some("root:pw"));
        assert_eq!(decode_base64("!!"), None);
    }
}
