//! One blocking HTTP/1.1 keep-alive connection to a XenAPI server over TCP, TLS or a unix
//! socket. Owns framing only: it never looks inside request or response bodies.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;

use crate::tofu::TrustStore;

/// Where the server is.
#[derive(Debug, Clone)]
pub enum Target {
    /// Plain HTTP (`--nossl`).
    Http { host: String, port: u16 },
    /// HTTPS, with the server certificate checked against the trust store.
    Https {
        host: String,
        port: u16,
        /// `--no-verify`: accept any certificate (tests only).
        no_verify: bool,
    },
    /// The local daemon's unix socket.
    Unix(PathBuf),
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A lazily opened connection that is reopened once if the server dropped it.
pub struct Connection {
    target: Target,
    conn: Option<BufReader<Box<dyn Stream>>>,
}

/// Largest response body accepted (the codec applies its own limits after this).
const MAX_BODY: usize = 256 << 20;

impl Connection {
    /// A connection to `target`; nothing is opened until the first request.
    pub fn new(target: Target) -> Connection {
        Connection { target, conn: None }
    }

    /// Where this connection goes.
    pub fn target(&self) -> &Target {
        &self.target
    }

    fn open(&self) -> Result<Box<dyn Stream>, String> {
        open(&self.target)
    }

    /// POSTs `body` to `path` and returns the response body of a 200 reply.
    pub fn post(&mut self, path: &str, content_type: &str, body: &[u8]) -> Result<Vec<u8>, String> {
        let reused = self.conn.is_some();
        match self.post_once(path, content_type, body) {
            Ok(r) => Ok(r),
            Err(_) if reused => {
                // A kept-alive connection may have been closed by the server meanwhile.
                self.conn = None;
                self.post_once(path, content_type, body)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    fn post_once(
        &mut self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<Vec<u8>, String> {
        if self.conn.is_none() {
            self.conn = Some(BufReader::new(self.open()?));
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err("not connected".into());
        };
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: xe-cli/xapi-rs\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            host_header(&self.target),
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        let io = |e: std::io::Error| e.to_string();
        conn.get_mut().write_all(&req).map_err(io)?;
        conn.get_mut().flush().map_err(io)?;
        let (status, close, reply) = read_reply(conn)?;
        if close {
            self.conn = None;
        }
        if status != 200 {
            return Err(format!(
                "server replied HTTP {status}: {}",
                String::from_utf8_lossy(&reply).trim()
            ));
        }
        Ok(reply)
    }
}

/// What a file transfer sends or receives.
pub enum Body<'a> {
    /// `PUT`: `len` bytes read from the reader.
    Upload(&'a mut dyn Read, u64),
    /// `GET`: the body of a 200 reply is written here.
    Download(&'a mut dyn Write),
}

/// One `GET` or `PUT` of a file on its own connection (as upstream's xe does for
/// `/export` and `/import`), streaming the file. Returns the status and, for replies that were
/// not downloaded, their (bounded) body.
pub fn transfer(target: &Target, path: &str, body: Body<'_>) -> Result<(u16, Vec<u8>), String> {
    let io = |e: std::io::Error| e.to_string();
    let mut conn = BufReader::new(open(target)?);
    let (method, len) = match &body {
        Body::Upload(_, len) => ("PUT", *len),
        Body::Download(_) => ("GET", 0),
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: xe-cli/xapi-rs\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n",
        host_header(target)
    );
    conn.get_mut().write_all(head.as_bytes()).map_err(io)?;
    let download = match body {
        Body::Upload(reader, len) => {
            let copied = std::io::copy(&mut reader.take(len), conn.get_mut()).map_err(io)?;
            if copied != len {
                return Err(format!("the file ended after {copied} of {len} bytes"));
            }
            conn.get_mut().flush().map_err(io)?;
            None
        }
        Body::Download(w) => Some(w),
    };
    let Head {
        status,
        length,
        chunked,
        ..
    } = read_head(&mut conn)?;
    match download {
        Some(w) if status == 200 && !chunked => {
            match length {
                Some(n) => {
                    let copied = std::io::copy(&mut (&mut conn).take(n as u64), w).map_err(io)?;
                    if copied != n as u64 {
                        return Err("connection closed before the end of the file".into());
                    }
                }
                None => {
                    std::io::copy(&mut conn, w).map_err(io)?;
                }
            }
            w.flush().map_err(io)?;
            Ok((status, Vec::new()))
        }
        Some(w) if status == 200 => {
            copy_chunked(&mut conn, w, None)?;
            w.flush().map_err(io)?;
            Ok((status, Vec::new()))
        }
        _ => {
            let mut text = Vec::new();
            let _ = conn.take(1 << 16).read_to_end(&mut text);
            Ok((status, text))
        }
    }
}

/// A response's status line and the headers that frame its body.
struct Head {
    status: u16,
    length: Option<usize>,
    chunked: bool,
    /// The server closes the connection after this response.
    close: bool,
}

/// Reads a status line and headers.
fn read_head(conn: &mut BufReader<Box<dyn Stream>>) -> Result<Head, String> {
    let io = |e: std::io::Error| e.to_string();
    let mut line = String::new();
    if conn.read_line(&mut line).map_err(io)? == 0 {
        return Err("connection closed by server".into());
    }
    let mut head = Head {
        status: line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad HTTP status line {:?}", line.trim_end()))?,
        length: None,
        chunked: false,
        close: line.starts_with("HTTP/1.0"),
    };
    loop {
        line.clear();
        if conn.read_line(&mut line).map_err(io)? == 0 {
            return Err("connection closed in HTTP headers".into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                head.length = v.parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                head.chunked = v.eq_ignore_ascii_case("chunked");
            } else if k.eq_ignore_ascii_case("connection") {
                head.close = v.eq_ignore_ascii_case("close");
            }
        }
    }
    Ok(head)
}

/// Opens a new stream to `target`.
fn open(target: &Target) -> Result<Box<dyn Stream>, String> {
    match target {
        Target::Http { host, port } => {
            let s = tcp(host, *port)?;
            Ok(Box::new(s))
        }
        Target::Unix(path) => UnixStream::connect(path)
            .map(|s| Box::new(s) as Box<dyn Stream>)
            .map_err(|e| format!("{e} (connecting to {})", path.display())),
        Target::Https {
            host,
            port,
            no_verify,
        } => {
            let s = tcp(host, *port)?;
            let store = TrustStore::new(host, *port, *no_verify);
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(store))
            .with_no_client_auth();
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("invalid server name {host}: {e}"))?;
            let conn =
                rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
            Ok(Box::new(rustls::StreamOwned::new(conn, s)))
        }
    }
}

fn tcp(host: &str, port: u16) -> Result<TcpStream, String> {
    let s = TcpStream::connect((host, port))
        .map_err(|e| format!("{e} (connecting to {host}:{port})"))?;
    // Requests are small and synchronous: Nagle would add a round trip per call.
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(s)
}

fn host_header(target: &Target) -> String {
    match target {
        Target::Http { host, .. } | Target::Https { host, .. } => host.clone(),
        Target::Unix(_) => "localhost".into(),
    }
}

/// Reads one response: status, whether the server will close, and the body.
fn read_reply(conn: &mut BufReader<Box<dyn Stream>>) -> Result<(u16, bool, Vec<u8>), String> {
    let io = |e: std::io::Error| e.to_string();
    let Head {
        status,
        length,
        chunked,
        mut close,
    } = read_head(conn)?;
    let body = if chunked {
        read_chunked(conn)?
    } else if let Some(len) = length {
        if len > MAX_BODY {
            return Err(format!("response of {len} bytes is too large"));
        }
        let mut body = vec![0; len];
        conn.read_exact(&mut body).map_err(io)?;
        body
    } else {
        let mut body = Vec::new();
        conn.take(MAX_BODY as u64)
            .read_to_end(&mut body)
            .map_err(io)?;
        close = true;
        body
    };
    Ok((status, close, body))
}

fn read_chunked(conn: &mut BufReader<Box<dyn Stream>>) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    copy_chunked(conn, &mut body, Some(MAX_BODY))?;
    Ok(body)
}

/// Decodes a chunked body into `out` as it arrives (a file download of any size streams
/// through); with `limit`, refuses a body larger than that.
fn copy_chunked(
    conn: &mut BufReader<Box<dyn Stream>>,
    out: &mut dyn Write,
    limit: Option<usize>,
) -> Result<u64, String> {
    let io = |e: std::io::Error| e.to_string();
    let mut total: u64 = 0;
    let mut line = String::new();
    loop {
        line.clear();
        if conn.read_line(&mut line).map_err(io)? == 0 {
            return Err("connection closed before the end of the chunked body".into());
        }
        let size_text = line.trim().split(';').next().unwrap_or("");
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                line.clear();
                if conn.read_line(&mut line).map_err(io)? == 0 || line.trim().is_empty() {
                    break;
                }
            }
            return Ok(total);
        }
        total = total.saturating_add(size);
        if limit.is_some_and(|l| total > l as u64) {
            return Err("chunked response is too large".into());
        }
        let copied = std::io::copy(&mut (&mut *conn).take(size), out).map_err(io)?;
        if copied != size {
            return Err("connection closed inside a chunk".into());
        }
        line.clear();
        conn.read_line(&mut line).map_err(io)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection whose server already sent `wire` and closed.
    fn conn_with(wire: &[u8]) -> BufReader<Box<dyn Stream>> {
        let (mut server, client) = UnixStream::pair().unwrap();
        server.write_all(wire).unwrap();
        drop(server);
        BufReader::new(Box::new(client))
    }

    #[test]
    fn chunked_bodies_stream_into_the_writer_without_a_size_limit() {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for (i, size) in [5usize, 70_000, 1].into_iter().enumerate() {
            let chunk = vec![b'a' + i as u8; size];
            wire.extend_from_slice(format!("{size:x};ext=1\r\n").as_bytes());
            wire.extend_from_slice(&chunk);
            wire.extend_from_slice(b"\r\n");
            expected.extend_from_slice(&chunk);
        }
        wire.extend_from_slice(b"0\r\nX-Trailer: y\r\n\r\n");
        let mut out = Vec::new();
        let n = copy_chunked(&mut conn_with(&wire), &mut out, None).unwrap();
        assert_eq!(n, expected.len() as u64);
        assert_eq!(out, expected);
        // The same body through the bounded reader, with a limit it exceeds.
        let err = copy_chunked(&mut conn_with(&wire), &mut Vec::new(), Some(1000)).unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn a_body_cut_inside_a_chunk_is_an_error() {
        let err = copy_chunked(&mut conn_with(b"10\r\nshort"), &mut Vec::new(), None).unwrap_err();
        assert!(err.contains("inside a chunk"), "{err}");
        let err = copy_chunked(&mut conn_with(b"3\r\nabc\r\n"), &mut Vec::new(), None).unwrap_err();
        assert!(err.contains("before the end"), "{err}");
    }
}
