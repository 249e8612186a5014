//! The HTTP front: plain HTTP, HTTPS and the unix socket, one hyper HTTP/1.1 connection task
//! each (keep-alive, TCP_NODELAY), routing RPC paths to `rpc`, `/blob` to its handler and
//! `/export` / `/import` (XVA) to `importexport`.
//! Owns no API semantics. Replies carry a boxed body: most are one buffer (`full`), the XVA
//! export streams.
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio_rustls::TlsAcceptor;

use crate::app::App;
use crate::dispatch::Origin;

/// A reply: its body is either one buffer or a stream that may end in an I/O error (which
/// makes hyper drop the connection, so a truncated body cannot pass for a complete one).
pub type Reply = Response<BoxBody<Bytes, std::io::Error>>;

/// A whole-buffer body in the boxed form every reply uses (it keeps its exact length, so
/// it still goes out with `Content-Length`).
pub fn full(body: impl Into<Bytes>) -> BoxBody<Bytes, std::io::Error> {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Accepts TCP connections forever, optionally through TLS.
pub async fn serve_tcp(app: Arc<App>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // A keep-alive reply written in two segments would otherwise wait 40 ms for an ACK.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "set_nodelay failed");
        }
        let app = app.clone();
        match &tls {
            None => {
                tokio::spawn(serve_conn(app, stream, Origin::Tcp));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor.accept(stream).await {
                        Ok(tls_stream) => serve_conn(app, tls_stream, Origin::Tls).await,
                        Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    }
                });
            }
        }
    }
}

/// Accepts unix-socket connections forever; they are the local superuser.
pub async fn serve_unix(app: Arc<App>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_conn(app.clone(), stream, Origin::Unix));
            }
            Err(e) => {
                tracing::warn!(error = %e, "unix accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_conn<S>(app: Arc<App>, stream: S, origin: Origin)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let app = app.clone();
        async move { Ok::<_, Infallible>(handle(app, origin, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .max_buf_size(1 << 20)
        .serve_connection(TokioIo::new(stream), service)
        // `CONNECT /console` hands the connection over to the console tunnel.
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("X-Requested-With"),
    );
    r
}

fn error_page(status: StatusCode, message: &str) -> Reply {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let body = format!(
        "<html><body><h1>HTTP {}</h1>{}</body></html>",
        status.as_u16(),
        escaped
    );
    reply(status, "text/html", body.into_bytes())
}

async fn handle(app: Arc<App>, origin: Origin, req: Request<Incoming>) -> Reply {
    let reply = route(Arc::clone(&app), origin, req).await;
    // Whatever the handler wrote is committed before the answer goes out (API calls have
    // done so already; this covers /blob, /import and /export).
    match app.db.sync() {
        Ok(()) => reply,
        Err(e) => error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("object store: {e}"),
        ),
    }
}

async fn route(app: Arc<App>, origin: Origin, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    match *req.method() {
        Method::OPTIONS => reply(StatusCode::OK, "text/plain", Vec::new()),
        Method::POST => {
            let limit = app.config.max_body;
            let body = match Limited::new(req.into_body(), limit).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return error_page(StatusCode::PAYLOAD_TOO_LARGE, &e.to_string()),
            };
            // Longest-prefix routing as upstream: any POST that is not JSON-RPC is XML-RPC.
            let result = if path == "/jsonrpc" {
                crate::rpc::jsonrpc(&app, origin, &body)
                    .await
                    .map(|b| (b, "application/json"))
            } else {
                crate::rpc::xmlrpc(&app, origin, &body)
                    .await
                    .map(|b| (b, "text/xml"))
            };
            match result {
                Ok((body, ct)) => reply(StatusCode::OK, ct, body),
                Err(e) => error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.0),
            }
        }
        Method::GET if path == "/export" => {
            crate::importexport::handle_export(app, origin, req).await
        }
        Method::GET if path == "/export_metadata" => {
            crate::importexport::handle_export_metadata(app, origin, req).await
        }
        Method::PUT if path == "/import" => {
            crate::importexport::handle_import(app, origin, req).await
        }
        _ if path == crate::console::CONSOLE_PATH => crate::console::handle(app, origin, req).await,
        Method::GET | Method::PUT if path == "/blob" => {
            let (status, content_type, body) =
                crate::actions::blob::handle(&app, origin, req).await;
            let mut r = reply(status, "application/octet-stream", body);
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                r.headers_mut().insert(CONTENT_TYPE, v);
            }
            r
        }
        _ => error_page(StatusCode::NOT_FOUND, &format!("no handler for {path}")),
    }
}
