//! Bench: change-to-wakeup latency of `event.from` with 1 and 1,000 waiters (p50 / p99).
//!
//! Starts the daemon in-process on a loopback port with a temporary state directory, parks
//! N clients in `event.from(["network"], token, 60)`, then changes a network's name and
//! measures, for every waiter, the time from sending the change to receiving its wake-up.
//!
//! ```sh
//! cargo run --release -p xapi-daemon --example event_latency [-- ROUNDS_1 ROUNDS_1000]
//! ```
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xapi_daemon::config::{Args, Config};
use xapi_rpc::{xmlrpc, Call, Limits, Response, Value};

const PASSWORD: &str = "bench-password";

fn s(t: &str) -> Value {
    Value::String(t.to_owned())
}

async fn call(stream: &mut TcpStream, method: &str, params: Vec<Value>) -> anyhow::Result<Value> {
    call_at(stream, method, params).await.map(|(v, _)| v)
}

/// A call; also returns when its reply's last byte arrived (before decoding).
async fn call_at(
    stream: &mut TcpStream,
    method: &str,
    params: Vec<Value>,
) -> anyhow::Result<(Value, Instant)> {
    let mut body = Vec::new();
    xmlrpc::encode_call(&Call::new(method, params), &mut body);
    let mut req = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    stream.write_all(&req).await?;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| anyhow::anyhow!("no content-length"))?;
            if got.len() >= end + 4 + len {
                let arrived = Instant::now();
                let body = &got[end + 4..end + 4 + len];
                return match xmlrpc::decode_response(body, &Limits::default())? {
                    Response::Success(v) => Ok((v, arrived)),
                    other => anyhow::bail!("{method} failed: {other:?}"),
                };
            }
        }
        let k = stream.read(&mut buf).await?;
        anyhow::ensure!(k > 0, "connection closed");
        got.extend_from_slice(&buf[..k]);
    }
}

fn token_of(batch: &Value) -> String {
    batch
        .get("token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn measure(addr: SocketAddr, waiters: usize, rounds: usize) -> anyhow::Result<()> {
    let mut admin = TcpStream::connect(addr).await?;
    admin.set_nodelay(true)?;
    let session = call(
        &mut admin,
        "session.login_with_password",
        vec![s("root"), s(PASSWORD)],
    )
    .await?;
    let session = session.as_str().unwrap_or_default().to_owned();
    let net = call(
        &mut admin,
        "network.create",
        vec![
            s(&session),
            Value::Struct(vec![("name_label".into(), s("bench"))]),
        ],
    )
    .await?;
    let net = net.as_str().unwrap_or_default().to_owned();
    let first = call(
        &mut admin,
        "event.from",
        vec![
            s(&session),
            Value::Array(vec![s("network")]),
            s(""),
            Value::Double(0.0),
        ],
    )
    .await?;
    let token = token_of(&first);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let mut handles = Vec::new();
    for _ in 0..waiters {
        let (session, tx, mut token) = (session.clone(), tx.clone(), token.clone());
        handles.push(tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await?;
            c.set_nodelay(true)?;
            for _ in 0..rounds {
                let (batch, arrived) = call_at(
                    &mut c,
                    "event.from",
                    vec![
                        s(&session),
                        Value::Array(vec![s("network")]),
                        s(&token),
                        Value::Double(60.0),
                    ],
                )
                .await?;
                let _ = tx.send(arrived);
                token = token_of(&batch);
            }
            anyhow::Ok(())
        }));
    }
    drop(tx);
    let mut latencies = Vec::with_capacity(waiters * rounds);
    for round in 0..rounds {
        // Let every waiter park again before the change.
        let settle = if waiters > 1 { 300 } else { 20 };
        tokio::time::sleep(Duration::from_millis(settle)).await;
        let sent = Instant::now();
        call(
            &mut admin,
            "network.set_name_label",
            vec![s(&session), s(&net), s(&format!("round-{round}"))],
        )
        .await?;
        for _ in 0..waiters {
            let woke = rx
                .recv()
                .await
                .ok_or_else(|| anyhow::anyhow!("a waiter ended early"))?;
            latencies.push(woke.saturating_duration_since(sent));
        }
    }
    for h in handles {
        h.await??;
    }
    latencies.sort();
    println!(
        "waiters={waiters:5} rounds={rounds:4} samples={:6}  p50={:8.3} ms  p99={:8.3} ms  max={:8.3} ms",
        latencies.len(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds_one: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let rounds_many: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let config = Config::resolve(Args {
        state_dir: Some(dir.path().to_owned()),
        http: Some(addr.to_string()),
        https: Some("off".into()),
        socket: Some("off".into()),
        ..Args::default()
    })?;
    let config = Config {
        root_password: Some(PASSWORD.into()),
        ..config
    };
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("daemon runtime");
        if let Err(e) = rt.block_on(xapi_daemon::run(config)) {
            eprintln!("daemon: {e}");
        }
    });
    let client = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    client.block_on(async {
        let began = Instant::now();
        while TcpStream::connect(addr).await.is_err() {
            anyhow::ensure!(
                began.elapsed() < Duration::from_secs(30),
                "daemon did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        measure(addr, 1, rounds_one).await?;
        measure(addr, 1000, rounds_many).await
    })
}
