//! The blocking `Client` against a real userspace oxenstored.
#![allow(clippy::unwrap_used)] // Tests unwrap: a panic is the failure report.

mod common;

use std::time::Duration;

use xenstore::{Access, Client, Errno, Permissions, XsError, XsOps, RELEASE_DOMAIN};

const WAIT: Duration = Duration::from_secs(5);

fn client() -> Option<Client> {
    common::endpoint().map(|endpoint| Client::connect(&endpoint).unwrap())
}

macro_rules! client_or_skip {
    () => {
        match client() {
            Some(client) => client,
            None => return,
        }
    };
}

#[test]
fn write_read_directory_rm_round_trip() {
    let xs = client_or_skip!();
    let base = common::prefix("rw");
    xs.write(&format!("{base}/a"), "one").unwrap();
    xs.write(&format!("{base}/b"), b"two\0bytes").unwrap();
    xs.mkdir(&format!("{base}/c/d")).unwrap();
    assert_eq!(xs.read(&format!("{base}/a")).unwrap(), b"one");
    assert_eq!(xs.read(&format!("{base}/b")).unwrap(), b"two\0bytes");
    assert_eq!(xs.read_string(&format!("{base}/c/d")).unwrap(), "");
    let mut names = xs.directory(&base).unwrap();
    names.sort();
    assert_eq!(names, vec!["a", "b", "c"]);
    xs.rm(&format!("{base}/c")).unwrap();
    assert_eq!(xs.directory(&base).unwrap().len(), 2);
    xs.rm(&base).unwrap();
    assert!(xs.try_read(&format!("{base}/a")).unwrap().is_none());
}

#[test]
fn missing_node_is_enoent() {
    let xs = client_or_skip!();
    let base = common::prefix("enoent");
    let err = xs.read(&format!("{base}/nothing")).unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    let err = xs.directory(&format!("{base}/nothing")).unwrap_err();
    assert_eq!(err.errno(), Some(&Errno::Enoent));
}

#[test]
fn invalid_path_is_einval() {
    let xs = client_or_skip!();
    let err = xs.read("not//valid").unwrap_err();
    assert_eq!(err.errno(), Some(&Errno::Einval));
}

#[test]
fn permissions_round_trip() {
    let xs = client_or_skip!();
    let path = format!("{}/node", common::prefix("perms"));
    xs.write(&path, "x").unwrap();
    let default = xs.get_perms(&path).unwrap();
    assert_eq!(default, Permissions::new(0, Access::None));
    let wanted = Permissions::new(0, Access::Read)
        .with(5, Access::Both)
        .with(7, Access::Write);
    xs.set_perms(&path, &wanted).unwrap();
    assert_eq!(xs.get_perms(&path).unwrap(), wanted);
}

#[test]
fn conflicting_commit_returns_eagain_and_applies_nothing() {
    let xs = client_or_skip!();
    let other = client().unwrap();
    let path = format!("{}/counter", common::prefix("conflict"));
    xs.write(&path, "0").unwrap();
    let tx = xs.transaction_start().unwrap();
    assert_eq!(tx.read(&path).unwrap(), b"0");
    tx.write(&path, "from-tx").unwrap();
    other.write(&path, "from-other").unwrap();
    let err = tx.commit().unwrap_err();
    assert!(err.is_again(), "{err:?}");
    assert_eq!(xs.read(&path).unwrap(), b"from-other");
}

#[test]
fn transaction_helper_retries_after_eagain() {
    let xs = client_or_skip!();
    let other = client().unwrap();
    let path = format!("{}/counter", common::prefix("retry"));
    xs.write(&path, "1").unwrap();
    let mut attempts = 0;
    let result: Result<u32, XsError> = xs.transaction(|tx| {
        attempts += 1;
        let value: u32 = tx.read_string(&path)?.parse().unwrap();
        if attempts == 1 {
            // Another writer gets in between our read and our commit.
            other.write(&path, "10").unwrap();
        }
        tx.write(&path, (value + 1).to_string())?;
        Ok(value + 1)
    });
    assert_eq!(result.unwrap(), 11);
    assert_eq!(attempts, 2);
    assert_eq!(xs.read(&path).unwrap(), b"11");
}

#[test]
fn transaction_helper_gives_up_after_bounded_attempts() {
    let xs = client_or_skip!();
    let other = client().unwrap();
    let path = format!("{}/node", common::prefix("giveup"));
    xs.write(&path, "0").unwrap();
    let mut attempts = 0;
    let result: Result<(), XsError> = xs.transaction_with_attempts(3, |tx| {
        attempts += 1;
        tx.read(&path)?;
        other.write(&path, attempts.to_string()).unwrap();
        tx.write(&path, "mine")
    });
    assert!(result.unwrap_err().is_again());
    assert_eq!(attempts, 3);
}

#[test]
fn aborted_and_dropped_transactions_change_nothing() {
    let xs = client_or_skip!();
    let path = format!("{}/node", common::prefix("abort"));
    let tx = xs.transaction_start().unwrap();
    tx.write(&path, "x").unwrap();
    tx.abort().unwrap();
    assert!(xs.try_read(&path).unwrap().is_none());
    {
        let tx = xs.transaction_start().unwrap();
        tx.write(&path, "y").unwrap();
    }
    assert!(xs.try_read(&path).unwrap().is_none());
}

#[test]
fn watch_fires_on_write_and_on_rm_of_a_child() {
    let xs = client_or_skip!();
    let base = common::prefix("watch");
    xs.mkdir(&base).unwrap();
    let watch = xs.watch(&base, "w-blocking").unwrap();
    let first = watch.recv_timeout(WAIT).unwrap();
    assert_eq!(
        (first.path.as_str(), first.token.as_str()),
        (base.as_str(), "w-blocking")
    );

    let child = format!("{base}/child");
    xs.write(&child, "v").unwrap();
    assert_eq!(watch.recv_timeout(WAIT).unwrap().path, child);
    xs.rm(&child).unwrap();
    assert_eq!(watch.recv_timeout(WAIT).unwrap().path, child);

    watch.unwatch().unwrap();
    xs.write(&child, "again").unwrap();
    // A later watch with the same token sees only its own first firing.
    let again = xs
        .watch(&format!("{base}/elsewhere"), "w-blocking")
        .unwrap();
    assert_eq!(
        again.recv_timeout(WAIT).unwrap().path,
        format!("{base}/elsewhere")
    );
    assert!(again.recv_timeout(Duration::from_millis(200)).is_none());
}

#[test]
fn token_cannot_be_used_twice_on_one_connection() {
    let xs = client_or_skip!();
    let base = common::prefix("token");
    let _watch = xs.watch(&base, "dup").unwrap();
    let err = xs.watch(&format!("{base}/x"), "dup").err().unwrap();
    assert!(matches!(err, XsError::TokenInUse(_)));
}

#[test]
fn release_domain_special_watch_registers_and_fires_once() {
    let xs = client_or_skip!();
    let watch = xs.watch(RELEASE_DOMAIN, "released").unwrap();
    let event = watch.recv_timeout(WAIT).unwrap();
    assert_eq!(event.path, RELEASE_DOMAIN);
    assert_eq!(event.token, "released");
}

#[test]
fn domain_queries_answer_for_unknown_domains() {
    let xs = client_or_skip!();
    assert_eq!(xs.get_domain_path(5).unwrap(), "/local/domain/5");
    assert!(!xs.is_domain_introduced(5).unwrap());
    assert_eq!(xs.release(5).unwrap_err().errno(), Some(&Errno::Einval));
}

#[test]
fn directory_larger_than_one_payload_is_listed_whole() {
    let xs = client_or_skip!();
    let base = common::prefix("bigdir");
    let tx = xs.transaction_start().unwrap();
    for i in 0..600 {
        tx.write(&format!("{base}/child-{i:05}"), "x").unwrap();
    }
    tx.commit().unwrap();
    let names = xs.directory(&base).unwrap();
    assert_eq!(names.len(), 600);
    assert!(names.iter().map(String::len).sum::<usize>() + names.len() > 4096);
    xs.rm(&base).unwrap();
}

#[test]
fn oversized_value_is_refused_locally_and_connection_survives() {
    let xs = client_or_skip!();
    let path = format!("{}/big", common::prefix("big"));
    let err = xs.write(&path, vec![b'x'; 5000]).unwrap_err();
    assert!(matches!(err, XsError::PayloadTooLarge(_)));
    xs.write(&path, "small").unwrap();
    assert_eq!(xs.read(&path).unwrap(), b"small");
}

#[test]
fn threads_share_one_client() {
    let xs = client_or_skip!();
    let base = common::prefix("threads");
    std::thread::scope(|scope| {
        for t in 0..8 {
            let xs = xs.clone();
            let base = base.clone();
            scope.spawn(move || {
                for i in 0..50 {
                    let path = format!("{base}/{t}/{i}");
                    xs.write(&path, format!("{t}-{i}")).unwrap();
                    assert_eq!(xs.read(&path).unwrap(), format!("{t}-{i}").as_bytes());
                }
            });
        }
    });
    assert_eq!(xs.directory(&base).unwrap().len(), 8);
    xs.rm(&base).unwrap();
}
