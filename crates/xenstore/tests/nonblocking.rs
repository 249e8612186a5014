//! The async `AsyncClient` against a real userspace oxenstored: pipelining,
//! watch streams and transactions.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

mod common;

use std::time::{Duration, Instant};

use tokio::time::timeout;
use xenstore::{
    Access, AsyncClient, AsyncXsOps, Errno, Permissions, WatchEvent, WatchStream, XsError,
    RELEASE_DOMAIN,
};

const WAIT: Duration = Duration::from_secs(5);

async fn client() -> Option<AsyncClient> {
    match common::endpoint() {
        Some(endpoint) => Some(AsyncClient::connect(&endpoint).await.unwrap()),
        None => None,
    }
}

macro_rules! client_or_skip {
    () => {
        match client().await {
            Some(client) => client,
            None => return,
        }
    };
}

async fn next(watch: &mut WatchStream) -> WatchEvent {
    timeout(WAIT, watch.next_event())
        .await
        .expect("watch event in time")
        .unwrap()
}

#[tokio::test]
async fn write_read_directory_rm_round_trip() {
    let xs = client_or_skip!();
    let base = common::prefix("async-rw");
    xs.write(&format!("{base}/a"), "one").await.unwrap();
    xs.mkdir(&format!("{base}/b")).await.unwrap();
    assert_eq!(xs.read(&format!("{base}/a")).await.unwrap(), b"one");
    let mut names = xs.directory(&base).await.unwrap();
    names.sort();
    assert_eq!(names, vec!["a", "b"]);
    xs.rm(&base).await.unwrap();
    assert!(xs
        .read(&format!("{base}/a"))
        .await
        .unwrap_err()
        .is_not_found());
    assert!(xs.try_read(&base).await.unwrap().is_none());
}

#[tokio::test]
async fn permissions_round_trip() {
    let xs = client_or_skip!();
    let path = format!("{}/node", common::prefix("async-perms"));
    xs.write(&path, "x").await.unwrap();
    let wanted = Permissions::new(3, Access::Read).with(0, Access::Both);
    xs.set_perms(&path, &wanted).await.unwrap();
    assert_eq!(xs.get_perms(&path).await.unwrap(), wanted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pipelined_requests_are_matched_to_their_replies() {
    let xs = client_or_skip!();
    let base = common::prefix("async-pipeline");
    const N: usize = 2000;
    let started = Instant::now();
    // Every request is on the wire before the first reply is awaited.
    let writes: Vec<_> = (0..N)
        .map(|i| xs.write(&format!("{base}/{i}"), format!("value-{i}")))
        .collect();
    for write in writes {
        write.await.unwrap();
    }
    let reads: Vec<_> = (0..N).map(|i| xs.read(&format!("{base}/{i}"))).collect();
    for (i, read) in reads.into_iter().enumerate() {
        assert_eq!(read.await.unwrap(), format!("value-{i}").as_bytes());
    }
    eprintln!("{} pipelined requests in {:?}", 2 * N, started.elapsed());
    assert_eq!(xs.directory(&base).await.unwrap().len(), N);
    xs.rm(&base).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tasks_share_one_connection() {
    let xs = client_or_skip!();
    let base = common::prefix("async-tasks");
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..16 {
        let xs = xs.clone();
        let base = base.clone();
        tasks.spawn(async move {
            for i in 0..50 {
                let path = format!("{base}/{t}/{i}");
                let (write, missing) = (
                    xs.write(&path, i.to_string()),
                    xs.read(&format!("{path}-no")),
                );
                write.await.unwrap();
                assert!(missing.await.unwrap_err().is_not_found());
                assert_eq!(xs.read(&path).await.unwrap(), i.to_string().as_bytes());
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(xs.directory(&base).await.unwrap().len(), 16);
    xs.rm(&base).await.unwrap();
}

#[tokio::test]
async fn watch_stream_fires_on_write_and_on_rm_of_a_child() {
    let xs = client_or_skip!();
    let base = common::prefix("async-watch");
    xs.mkdir(&base).await.unwrap();
    let mut watch = xs.watch(&base, "w-async").await.unwrap();
    assert_eq!(next(&mut watch).await.path, base);
    let child = format!("{base}/child");
    xs.write(&child, "v").await.unwrap();
    let event = next(&mut watch).await;
    assert_eq!(
        (event.path.as_str(), event.token.as_str()),
        (child.as_str(), "w-async")
    );
    xs.rm(&child).await.unwrap();
    assert_eq!(next(&mut watch).await.path, child);
    watch.unwatch().await.unwrap();
}

#[tokio::test]
async fn watch_stream_is_a_futures_stream() {
    fn assert_stream<S: futures_core::Stream<Item = WatchEvent>>(_: &S) {}
    let xs = client_or_skip!();
    let watch = xs
        .watch(&common::prefix("async-stream"), "stream")
        .await
        .unwrap();
    assert_stream(&watch);
}

#[tokio::test]
async fn release_domain_special_watch_registers() {
    let xs = client_or_skip!();
    let mut watch = xs.watch(RELEASE_DOMAIN, "async-released").await.unwrap();
    let event = next(&mut watch).await;
    assert_eq!(event.path, RELEASE_DOMAIN);
    assert_eq!(event.token, "async-released");
}

#[tokio::test]
async fn conflicting_commit_returns_eagain() {
    let xs = client_or_skip!();
    let other = client().await.unwrap();
    let path = format!("{}/node", common::prefix("async-conflict"));
    xs.write(&path, "0").await.unwrap();
    let tx = xs.transaction_start().await.unwrap();
    tx.read(&path).await.unwrap();
    tx.write(&path, "tx").await.unwrap();
    other.write(&path, "other").await.unwrap();
    assert_eq!(tx.commit().await.unwrap_err().errno(), Some(&Errno::Eagain));
    assert_eq!(xs.read(&path).await.unwrap(), b"other");
}

#[tokio::test]
async fn transaction_helper_retries_after_eagain() {
    let xs = client_or_skip!();
    let other = client().await.unwrap();
    let path = format!("{}/counter", common::prefix("async-retry"));
    xs.write(&path, "1").await.unwrap();
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let result: Result<u32, XsError> = xs
        .transaction(|tx| {
            let (path, other, attempts) = (path.clone(), other.clone(), &attempts);
            async move {
                let attempt = attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                let value: u32 = String::from_utf8(tx.read(&path).await?)
                    .unwrap()
                    .parse()
                    .unwrap();
                if attempt == 1 {
                    other.write(&path, "10").await?;
                }
                tx.write(&path, (value + 1).to_string()).await?;
                Ok(value + 1)
            }
        })
        .await;
    assert_eq!(result.unwrap(), 11);
    assert_eq!(attempts.into_inner(), 2);
    assert_eq!(xs.read(&path).await.unwrap(), b"11");
}

#[tokio::test]
async fn dropped_transaction_is_aborted() {
    let xs = client_or_skip!();
    let path = format!("{}/node", common::prefix("async-drop"));
    {
        let tx = xs.transaction_start().await.unwrap();
        tx.write(&path, "never").await.unwrap();
    }
    assert!(xs.try_read(&path).await.unwrap().is_none());
}

#[tokio::test]
async fn domain_queries() {
    let xs = client_or_skip!();
    assert_eq!(xs.get_domain_path(7).await.unwrap(), "/local/domain/7");
    assert!(!xs.is_domain_introduced(7).await.unwrap());
}
