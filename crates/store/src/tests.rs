use std::sync::Arc;

use serde_json::{Value, json};

use super::*;

fn put(store: &Store, key: &str, value: Value) -> Stored {
    let outcome = store.mutate::<StoreError>(key, |_, _| Ok(Mutation::Put(value))).expect("write");
    outcome.stored().cloned().expect("written")
}

fn delete(store: &Store, key: &str) -> Outcome {
    store.mutate::<StoreError>(key, |_, _| Ok(Mutation::Delete)).expect("delete")
}

fn mem() -> Store {
    Store::open_in_memory(StoreConfig { history: 8 }).expect("open")
}

#[test]
fn revisions_strictly_increase_and_are_stamped() {
    let store = mem();
    let a = put(&store, "/pods/default/a", json!({"metadata": {"name": "a"}}));
    let b = put(&store, "/pods/default/b", json!({"metadata": {"name": "b"}}));
    let a2 = put(&store, "/pods/default/a", json!({"metadata": {"name": "a"}, "spec": 1}));
    assert!(a.rv < b.rv && b.rv < a2.rv);
    assert_eq!(a2.value["metadata"]["resourceVersion"], a2.rv.to_string());
    assert_eq!(store.current_rv(), a2.rv);
    let deleted = delete(&store, "/pods/default/b");
    let Outcome::Deleted(d) = deleted else { panic!("expected a deletion") };
    assert_eq!(d.rv, a2.rv + 1, "a delete takes a revision of its own");
    assert_eq!(d.value["metadata"]["resourceVersion"], d.rv.to_string());
    assert!(store.get("/pods/default/b").is_none());
}

#[test]
fn keep_and_missing_delete_change_nothing() {
    let store = mem();
    put(&store, "/a", json!({}));
    let rv = store.current_rv();
    assert!(matches!(
        store.mutate::<StoreError>("/a", |_, _| Ok(Mutation::Keep)).expect("keep"),
        Outcome::Unchanged(Some(_))
    ));
    assert!(matches!(delete(&store, "/missing"), Outcome::Unchanged(None)));
    assert_eq!(store.current_rv(), rv);
}

#[test]
fn a_failed_decision_writes_nothing() {
    #[derive(Debug)]
    enum E {
        Refused,
        Store,
    }
    impl From<StoreError> for E {
        fn from(_: StoreError) -> E {
            E::Store
        }
    }
    let store = mem();
    let r = store.mutate::<E>("/a", |_, _| Err(E::Refused));
    assert!(matches!(r, Err(E::Refused)));
    assert!(!matches!(r, Err(E::Store)));
    assert_eq!(store.current_rv(), 0);
    assert!(store.get("/a").is_none());
}

#[test]
fn list_by_prefix_with_pagination_and_filter() {
    let store = mem();
    for name in ["a", "b", "c", "d"] {
        put(&store, &format!("/pods/ns1/{name}"), json!({"n": name}));
    }
    put(&store, "/pods/ns2/a", json!({"n": "x"}));
    put(&store, "/pods/ns10/a", json!({"n": "y"}));
    let (page, _, more) = store.list("/pods/ns1/", None, Some(2), &mut |_| true).expect("list");
    assert_eq!(page.iter().map(|s| s.value["n"].as_str().unwrap_or("")).collect::<Vec<_>>(), ["a", "b"]);
    assert!(more);
    let (rest, _, more) = store.list("/pods/ns1/", Some("/pods/ns1/b"), Some(2), &mut |_| true).expect("list");
    assert_eq!(rest.len(), 2);
    assert!(!more);
    let (all, _, _) = store.list("/pods/", None, None, &mut |v| v["n"] != "b").expect("list");
    assert_eq!(all.len(), 5);
}

#[tokio::test]
async fn watch_replays_history_then_follows_live_changes() {
    let store = mem();
    let first = put(&store, "/pods/default/a", json!({"v": 1}));
    put(&store, "/services/default/s", json!({"v": 1}));
    put(&store, "/pods/default/a", json!({"v": 2}));
    let mut w = store.watch("/pods/", first.rv - 1).expect("within history");
    let e1 = w.next().await.expect("event");
    assert_eq!((e1.event_type, e1.object["v"].clone()), (EventType::Added, json!(1)));
    let e2 = w.next().await.expect("event");
    assert_eq!(e2.event_type, EventType::Modified);
    assert_eq!(e2.prev.as_deref(), Some(&json!({"v": 1, "metadata": {"resourceVersion": first.rv.to_string()}})));

    let writer = store.clone();
    let live = tokio::spawn(async move {
        delete(&writer, "/pods/default/a");
    });
    let e3 = w.next().await.expect("event");
    assert_eq!(e3.event_type, EventType::Deleted);
    assert_eq!(e3.object["v"], 2);
    live.await.expect("writer");
    assert_eq!(w.progress_rv(), store.current_rv());
}

#[tokio::test]
async fn watch_from_compacted_revision_is_expired() {
    let store = mem(); // history 8
    for i in 0..20 {
        put(&store, "/k", json!({ "i": i }));
    }
    assert!(store.watch("/", 1).is_none(), "revision 1 is long gone");
    let oldest = store.oldest_watchable_rv();
    assert_eq!(oldest, 12);
    assert!(store.watch("/", oldest).is_some());

    // A watcher that falls behind while open learns it, rather than missing events.
    let mut w = store.watch("/", oldest).expect("watch");
    for i in 0..20 {
        put(&store, "/k", json!({ "late": i }));
    }
    assert_eq!(w.next().await.map(|_| ()), Err(WatchError::Expired));
}

#[test]
fn data_survives_reopen_and_revisions_never_repeat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ordinal.db");
    let (last_rv, deleted_rv) = {
        let store = Store::open(&path, StoreConfig { history: 4 }).expect("open");
        put(&store, "/a", json!({"a": 1}));
        put(&store, "/b", json!({"b": 1}));
        let Outcome::Deleted(d) = delete(&store, "/b") else { panic!("expected a deletion") };
        for i in 0..10 {
            put(&store, "/c", json!({ "c": i }));
        }
        let stats = store.compact().expect("compact");
        assert!(stats.events_removed > 0);
        (store.current_rv(), d.rv)
    };
    let store = Store::open(&path, StoreConfig { history: 4 }).expect("reopen");
    assert_eq!(store.current_rv(), last_rv);
    assert_eq!(store.get("/a").map(|s| s.value["a"].clone()), Some(json!(1)));
    assert!(store.get("/b").is_none());
    assert_eq!(store.get("/c").map(|s| s.value["c"].clone()), Some(json!(9)));
    assert!(deleted_rv < last_rv);
    let next = put(&store, "/d", json!({}));
    assert_eq!(next.rv, last_rv + 1);
    // The ring was reloaded: a watch from a recent revision replays it.
    assert!(store.watch("/", last_rv - 2).is_some());
    assert!(store.watch("/", 1).is_none());
}

#[tokio::test]
async fn reloaded_ring_knows_previous_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ordinal.db");
    {
        let store = Store::open(&path, StoreConfig::standard()).expect("open");
        put(&store, "/a", json!({"v": 1}));
        put(&store, "/a", json!({"v": 2}));
    }
    let store = Store::open(&path, StoreConfig::standard()).expect("reopen");
    let mut w = store.watch("/", 0).expect("watch");
    let added = w.next().await.expect("event");
    assert!(added.prev.is_none());
    let modified = w.next().await.expect("event");
    assert_eq!(modified.prev.as_ref().map(|p| p["v"].clone()), Some(json!(1)));
    let _: Arc<Event> = modified;
}

#[test]
fn the_database_and_its_wal_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ordinal.db");
    let mode = |suffix: &str| {
        let file = format!("{}{suffix}", path.display());
        std::fs::metadata(file).map(|m| m.permissions().mode() & 0o777).ok()
    };
    let store = Store::open(&path, StoreConfig { history: 8 }).expect("open");
    put(&store, "/a", json!({}));
    assert_eq!((mode(""), mode("-wal"), mode("-shm")), (Some(0o600), Some(0o600), Some(0o600)));
    drop(store);
    // A database an older version left readable is tightened at the next open.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let _store = Store::open(&path, StoreConfig { history: 8 }).expect("reopen");
    assert_eq!(mode(""), Some(0o600));
}

#[test]
fn a_write_whose_decision_panicked_does_not_stop_later_writes() {
    let store = mem();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = store.mutate::<StoreError>("/a", |_, _| panic!("a handler bug"));
    }));
    assert!(panicked.is_err());
    assert!(store.get("/a").is_none(), "nothing was written");
    put(&store, "/a", json!({"ok": true}));
    assert_eq!(store.get("/a").map(|s| s.value["ok"].clone()), Some(json!(true)));
}

/// Wait (with a deadline, no sleeping) until `cond` holds.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::yield_now();
    }
}

/// Add one to the counter at `key` (creating it at 1).
fn increment(store: &Store, key: &str) -> Stored {
    let outcome = store
        .mutate::<StoreError>(key, |current, _| {
            let n = current.and_then(|c| c.value["n"].as_u64()).unwrap_or(0);
            Ok(Mutation::Put(json!({ "n": n + 1 })))
        })
        .expect("increment");
    outcome.stored().cloned().expect("written")
}

#[tokio::test]
async fn concurrent_writers_are_all_durable_in_one_gapless_order() {
    const THREADS: usize = 8;
    const WRITES: usize = 40;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ordinal.db");
    let store = Store::open(&path, StoreConfig::standard()).expect("open");
    // Each thread writes keys of its own and increments one shared key, alternately.
    let acked: Vec<Vec<(String, u64)>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = &store;
                scope.spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0..WRITES {
                        let own = format!("/own/{t}/{i}");
                        let s = put(store, &own, json!({ "t": t, "i": i }));
                        // Acknowledged means visible: readers see it and its revision.
                        assert_eq!(store.get(&own).map(|g| g.rv), Some(s.rv));
                        assert!(store.current_rv() >= s.rv);
                        acked.push((own, s.rv));
                        let c = increment(store, "/shared");
                        assert!(store.get("/shared").is_some_and(|g| g.rv >= c.rv));
                        assert!(store.current_rv() >= c.rv);
                        acked.push(("/shared".to_string(), c.rv));
                    }
                    acked
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("writer")).collect()
    });
    let total = THREADS * WRITES * 2;
    let mut rvs: Vec<u64> = acked.iter().flatten().map(|(_, rv)| *rv).collect();
    for per_thread in &acked {
        assert!(per_thread.windows(2).all(|w| w[0].1 < w[1].1), "one thread's revisions increase");
    }
    rvs.sort_unstable();
    rvs.dedup();
    assert_eq!(rvs, (1..=total as u64).collect::<Vec<_>>(), "unique revisions, no gaps");
    assert_eq!(store.current_rv(), total as u64);
    assert!(store.commits() <= total as u64);

    // A watch from the beginning sees every acknowledged write once, in revision order.
    let mut w = store.watch("/", 0).expect("watch");
    let mut seen = Vec::new();
    while seen.len() < total {
        let e = w.next().await.expect("event");
        seen.push((e.key.clone(), e.rv));
    }
    assert_eq!(w.progress_rv(), total as u64);
    assert!(seen.windows(2).all(|p| p[0].1 + 1 == p[1].1), "in order, each once");
    let mut expected: Vec<(String, u64)> = acked.into_iter().flatten().collect();
    expected.sort_by_key(|(_, rv)| *rv);
    assert_eq!(seen, expected);
    drop(w);
    drop(store);

    let store = Store::open(&path, StoreConfig::standard()).expect("reopen");
    assert_eq!(store.current_rv(), total as u64);
    for t in 0..THREADS {
        for i in 0..WRITES {
            let got = store.get(&format!("/own/{t}/{i}")).expect("acknowledged write survives reopen");
            assert_eq!((got.value["t"].clone(), got.value["i"].clone()), (json!(t), json!(i)));
        }
    }
    assert_eq!(store.get("/shared").map(|s| s.value["n"].clone()), Some(json!(THREADS * WRITES)));
}

#[test]
fn decide_sees_writes_that_are_not_yet_durable() {
    const THREADS: usize = 16;
    const WRITES: usize = 50;
    let store = mem();
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..WRITES {
                    let s = increment(&store, "/counter");
                    assert!(store.get("/counter").is_some_and(|g| g.rv >= s.rv));
                    assert!(store.current_rv() >= s.rv);
                }
            });
        }
    });
    let counter = store.get("/counter").expect("counter");
    assert_eq!(counter.value["n"], json!(THREADS * WRITES), "no increment lost");
    assert_eq!(counter.rv, (THREADS * WRITES) as u64);
}

/// A hook that holds the first commit until `release` is sent, fails the second if
/// `fail_second`, and reports every batch's revisions on `batches`.
fn hold_first_commit(
    store: &Store,
    fail_second: bool,
) -> (std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<Vec<u64>>) {
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let (batch_tx, batch_rx) = std::sync::mpsc::channel();
    let mut calls = 0;
    store.set_commit_hook(Box::new(move |rvs| {
        calls += 1;
        let _ = batch_tx.send(rvs.to_vec());
        if calls == 1 {
            let _ = release_rx.recv();
        }
        if calls == 2 && fail_second { Err(rusqlite::Error::InvalidQuery) } else { Ok(()) }
    }));
    (release_tx, batch_rx)
}

#[test]
fn writes_during_a_commit_share_the_next_one_and_readers_wait_for_durability() {
    let store = mem();
    let (release, batches) = hold_first_commit(&store, false);
    let seen = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| put(&store, "/a", json!({"v": 1})));
        assert_eq!(batches.recv().expect("first batch"), [1]);
        // Rows written, not committed: readers see nothing of it.
        assert_eq!(store.current_rv(), 0);
        assert!(store.get("/a").is_none());
        let (listed, listed_rv, _) = store.list("/", None, None, &mut |_| true).expect("list");
        assert!(listed.is_empty() && listed_rv == 0);

        // Writers that arrive meanwhile decide on the pending state and queue up.
        let update = scope.spawn(|| {
            store
                .mutate::<StoreError>("/a", |current, rv| {
                    *seen.lock().expect("seen") = Some((current.map(|c| (c.rv, c.value["v"].clone())), rv));
                    Ok(Mutation::Put(json!({"v": 2})))
                })
                .expect("update")
        });
        let other = scope.spawn(|| put(&store, "/b", json!({"v": 1})));
        // A decision that changes nothing but read the pending write waits for it too.
        let keep = scope.spawn(|| store.mutate::<StoreError>("/a", |_, _| Ok(Mutation::Keep)).expect("keep"));
        wait_until("three tickets queue", || store.queued() == 3);
        let (saw, update_rv) = seen.lock().expect("seen").clone().expect("decided");
        assert_eq!(saw, Some((1, json!(1))), "decide saw the pending write");
        assert!(store.get("/a").is_none());

        release.send(()).expect("release");
        assert_eq!(first.join().expect("first").rv, 1);
        let mut second = batches.recv().expect("second batch");
        second.sort_unstable();
        assert_eq!(second, [2, 3], "the queued writes commit together");
        let Outcome::Updated(updated) = update.join().expect("update") else { panic!("expected an update") };
        assert_eq!(updated.rv, update_rv);
        let other = other.join().expect("other");
        assert_eq!(updated.rv + other.rv, 5);
        let Outcome::Unchanged(Some(kept)) = keep.join().expect("keep") else { panic!("expected no change") };
        assert!(kept.rv == 1 || kept.rv == updated.rv);
    });
    assert_eq!(store.current_rv(), 3);
    assert_eq!(store.commits(), 2);
    assert_eq!(store.get("/a").map(|s| s.value["v"].clone()), Some(json!(2)));
}

#[tokio::test]
async fn a_failed_commit_fails_its_batch_and_leaves_no_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ordinal.db");
    let store = Store::open(&path, StoreConfig::standard()).expect("open");
    let (release, batches) = hold_first_commit(&store, true);
    std::thread::scope(|scope| {
        let first = scope.spawn(|| put(&store, "/a", json!({"v": 1})));
        assert_eq!(batches.recv().expect("first batch"), [1]);
        let write = |key: &'static str, v: i64| {
            let store = &store;
            scope.spawn(move || store.mutate::<StoreError>(key, move |_, _| Ok(Mutation::Put(json!({ "v": v })))))
        };
        let b = write("/b", 1);
        let a2 = write("/a", 2);
        let c = write("/c", 1);
        wait_until("three writes queue", || store.queued() == 3);
        release.send(()).expect("release");
        assert_eq!(first.join().expect("first").rv, 1, "the first batch committed");
        for w in [b, a2, c] {
            assert!(matches!(w.join().expect("writer"), Err(StoreError::Commit(_))), "the whole batch fails");
        }
    });
    assert_eq!(store.current_rv(), 1);
    assert_eq!(store.get("/a").map(|s| (s.rv, s.value["v"].clone())), Some((1, json!(1))));
    assert!(store.get("/b").is_none() && store.get("/c").is_none());

    // The revisions of the failed batch are handed out again: a watcher sees no gap.
    let mut w = store.watch("/", 0).expect("watch");
    let next = put(&store, "/d", json!({}));
    assert_eq!(next.rv, 2);
    let events: Vec<(String, u64)> = {
        let mut out = Vec::new();
        for _ in 0..2 {
            let e = w.next().await.expect("event");
            out.push((e.key.clone(), e.rv));
        }
        out
    };
    assert_eq!(events, [("/a".to_string(), 1), ("/d".to_string(), 2)]);
    drop(w);
    drop(store);
    let store = Store::open(&path, StoreConfig::standard()).expect("reopen");
    assert_eq!(store.current_rv(), 2);
    assert!(store.get("/b").is_none() && store.get("/c").is_none());
    assert_eq!(store.get("/a").map(|s| s.value["v"].clone()), Some(json!(1)));
}
