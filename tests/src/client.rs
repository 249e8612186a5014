//! A small blocking XenAPI client for tests: HTTP/1.1 with keep-alive over TCP, TLS (any
//! certificate accepted) or a unix socket, XML-RPC or JSON-RPC bodies.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;

use xapi_rpc::{jsonrpc, xmlrpc, Call, Limits, Response, Value};

/// Where to connect.
#[derive(Debug, Clone)]
pub enum Endpoint {
    Http(SocketAddr),
    Https(SocketAddr),
    Unix(PathBuf),
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// One keep-alive connection (reopened on demand).
pub struct Client {
    endpoint: Endpoint,
    conn: Option<BufReader<Box<dyn Stream>>>,
    next_id: i64,
}

/// An HTTP response as the tests look at it.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Client {
    /// A client that connects lazily.
    pub fn new(endpoint: Endpoint) -> Client {
        Client {
            endpoint,
            conn: None,
            next_id: 1,
        }
    }

    fn connect(&self) -> std::io::Result<Box<dyn Stream>> {
        Ok(match &self.endpoint {
            Endpoint::Http(a) => {
                let s = TcpStream::connect(a)?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
            Endpoint::Unix(p) => Box::new(UnixStream::connect(p)?),
            Endpoint::Https(a) => {
                let s = TcpStream::connect(a)?;
                s.set_nodelay(true)?;
                let name =
                    rustls_pki_types::ServerName::try_from("localhost").expect("static name");
                let conn = rustls::ClientConnection::new(tls_config(), name)
                    .map_err(std::io::Error::other)?;
                Box::new(rustls::StreamOwned::new(conn, s))
            }
        })
    }

    /// POSTs a body and reads the whole reply, reconnecting once if a kept-alive connection died.
    pub fn post(
        &mut self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> std::io::Result<HttpReply> {
        match self.post_once(path, content_type, body) {
            Ok(r) => Ok(r),
            Err(_) => {
                self.conn = None;
                self.post_once(path, content_type, body)
            }
        }
    }

    fn post_once(
        &mut self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> std::io::Result<HttpReply> {
        if self.conn.is_none() {
            self.conn = Some(BufReader::new(self.connect()?));
        }
        let conn = self.conn.as_mut().expect("connected above");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        conn.get_mut().write_all(&req)?;
        conn.get_mut().flush()?;
        read_reply(conn)
    }

    /// An XML-RPC call; `Err` holds `[code, params...]` of a Failure.
    pub fn call(&mut self, method: &str, params: Vec<Value>) -> Result<Value, Vec<String>> {
        let mut body = Vec::new();
        xmlrpc::encode_call(&Call::new(method, params), &mut body);
        let reply = self
            .post("/", "text/xml", &body)
            .map_err(|e| vec![format!("io: {e}")])?;
        if reply.status != 200 {
            return Err(vec![
                format!("HTTP {}", reply.status),
                String::from_utf8_lossy(&reply.body).into_owned(),
            ]);
        }
        match xmlrpc::decode_response(&reply.body, &client_limits()) {
            Ok(Response::Success(v)) => Ok(v),
            Ok(Response::Failure(e)) => Err(e),
            Ok(Response::Fault { code, message }) => {
                Err(vec!["FAULT".into(), code.to_string(), message])
            }
            Err(e) => Err(vec![format!("bad response: {e}")]),
        }
    }

    /// A JSON-RPC call (v1 or v2); `Err` holds `[code, params...]`.
    pub fn call_json(
        &mut self,
        v2: bool,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Value, Vec<String>> {
        let id = jsonrpc::Id::Int(self.next_id);
        self.next_id += 1;
        let version = if v2 {
            jsonrpc::Version::V2
        } else {
            jsonrpc::Version::V1
        };
        let mut body = Vec::new();
        jsonrpc::encode_request(
            &jsonrpc::Request {
                version,
                id,
                call: Call::new(method, params),
            },
            &mut body,
        );
        let reply = self
            .post("/jsonrpc", "application/json", &body)
            .map_err(|e| vec![format!("io: {e}")])?;
        match jsonrpc::decode_response(&reply.body, &client_limits()) {
            Ok(Response::Success(v)) => Ok(v),
            Ok(Response::Failure(e)) => Err(e),
            Ok(other) => Err(vec![format!("unexpected {other:?}")]),
            Err(e) => Err(vec![format!("bad response: {e}")]),
        }
    }
}

/// Replies can be large (`get_all_records` of 10,000 VMs is ~64 MB of XML).
fn client_limits() -> Limits {
    Limits {
        max_body: 1 << 30,
        max_items: 100_000_000,
        ..Limits::default()
    }
}

fn read_reply(conn: &mut BufReader<Box<dyn Stream>>) -> std::io::Result<HttpReply> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        conn.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| std::io::Error::other("reply without content-length"))?;
    let mut body = vec![0; len];
    conn.read_exact(&mut body)?;
    Ok(HttpReply {
        status,
        headers,
        body,
    })
}

/// A logged-in session over one client.
pub struct Api {
    pub client: Client,
    pub session: String,
}

impl Api {
    /// `session.login_with_password`.
    pub fn login(mut client: Client, user: &str, password: &str) -> Result<Api, Vec<String>> {
        let v = client.call(
            "session.login_with_password",
            vec![crate::s(user), crate::s(password)],
        )?;
        let session = v
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| vec![format!("not a ref: {v:?}")])?;
        Ok(Api { client, session })
    }

    /// Calls `method` with the session prepended.
    pub fn call(&mut self, method: &str, mut params: Vec<Value>) -> Result<Value, Vec<String>> {
        params.insert(0, crate::s(&self.session));
        self.client.call(method, params)
    }

    /// Calls and expects success.
    pub fn ok(&mut self, method: &str, params: Vec<Value>) -> Value {
        match self.call(method, params.clone()) {
            Ok(v) => v,
            Err(e) => panic!("{method}({params:?}) failed: {e:?}"),
        }
    }

    /// Calls and expects a failure; returns `[code, params...]`.
    pub fn err(&mut self, method: &str, params: Vec<Value>) -> Vec<String> {
        match self.call(method, params.clone()) {
            Ok(v) => panic!("{method}({params:?}) unexpectedly returned {v:?}"),
            Err(e) => e,
        }
    }

    /// A string result.
    pub fn string(&mut self, method: &str, params: Vec<Value>) -> String {
        match self.ok(method, params) {
            Value::String(s) => s,
            other => panic!("{method}: expected a string, got {other:?}"),
        }
    }
}

/// Accepts any server certificate: the test daemon's is self-signed and fresh.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    Arc::new(config)
}
