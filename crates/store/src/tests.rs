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
