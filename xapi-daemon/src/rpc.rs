//! The RPC endpoints: decode an XML-RPC or JSON-RPC body, dispatch, encode the envelope.
//! `system.*` calls are answered here. Knows no HTTP.
use std::sync::Arc;

use xapi_rpc::{jsonrpc, xmlrpc, DecodeError, Limits, Value};

use crate::app::App;
use crate::dispatch::{self, Origin};

/// The request body could not be decoded: upstream answers HTTP 500 with a short message.
#[derive(Debug)]
pub struct BadRequest(pub String);

impl From<DecodeError> for BadRequest {
    fn from(e: DecodeError) -> BadRequest {
        BadRequest(e.to_string())
    }
}

fn limits(app: &App) -> Limits {
    Limits {
        max_body: app.config.max_body,
        ..Limits::default()
    }
}

/// `system.listMethods`: every synchronous wire name, hidden ones included.
fn list_methods(app: &App) -> Value {
    Value::Array(
        app.model
            .wire_names()
            .map(|n| Value::String(n.to_owned()))
            .collect(),
    )
}

/// Answers the `system.*` methods; `None` for everything else.
fn system_call(app: &App, method: &str, params: &[Value]) -> Option<Value> {
    if method == "system.listMethods" {
        return Some(list_methods(app));
    }
    if method.starts_with("system.isAlive") {
        return Some(
            params
                .first()
                .cloned()
                .unwrap_or(Value::String(String::new())),
        );
    }
    None
}

/// Frees a large result off the request path: dropping the value tree of `get_all_records`
/// over thousands of objects takes tens of milliseconds the reply need not wait for.
fn drop_later(v: Value, encoded_len: usize) {
    if encoded_len > 1 << 20 {
        tokio::task::spawn_blocking(move || drop(v));
    }
}

/// Handles one XML-RPC body.
pub async fn xmlrpc(app: &Arc<App>, origin: Origin, body: &[u8]) -> Result<Vec<u8>, BadRequest> {
    let call = xmlrpc::decode_call(body, &limits(app))?;
    let mut out = Vec::with_capacity(512);
    if call.method == "system.listMethods" {
        // Compatibility: upstream returns the bare array, not a Status/Value struct.
        xmlrpc::encode_bare(&list_methods(app), &mut out);
        return Ok(out);
    }
    if let Some(v) = system_call(app, &call.method, &call.params) {
        xmlrpc::encode_success(&v, &mut out);
        return Ok(out);
    }
    match dispatch::call(app, origin, &call.method, call.params).await {
        Ok(v) => {
            xmlrpc::encode_success(&v, &mut out);
            drop_later(v, out.len());
        }
        Err(e) => xmlrpc::encode_failure(&e.code, &e.params, &mut out),
    }
    Ok(out)
}

/// Handles one JSON-RPC (1.0 or 2.0) body.
pub async fn jsonrpc(app: &Arc<App>, origin: Origin, body: &[u8]) -> Result<Vec<u8>, BadRequest> {
    let req = jsonrpc::decode_request(body, &limits(app))?;
    let mut out = Vec::with_capacity(512);
    if let Some(v) = system_call(app, &req.call.method, &req.call.params) {
        jsonrpc::encode_success(req.version, &req.id, &v, &mut out);
        return Ok(out);
    }
    match dispatch::call(app, origin, &req.call.method, req.call.params).await {
        Ok(v) => {
            jsonrpc::encode_success(req.version, &req.id, &v, &mut out);
            drop_later(v, out.len());
        }
        Err(e) => jsonrpc::encode_failure(req.version, &req.id, &e.code, &e.params, &mut out),
    }
    Ok(out)
}
