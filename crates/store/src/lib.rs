//! The object store: an SQLite revision log with an in-memory mirror and a watch ring.
//!
//! # What is persisted
//! `ordinal.db` (WAL, `synchronous=FULL`) holds three tables:
//! - `objects(key, rv, value)`: the current state, one row per live object;
//! - `events(rv, key, type, value)`: the recent change log, trimmed by compaction;
//! - `meta(name, value)`: the last issued revision (`rv`), so revisions never repeat, even after
//!   every event has been compacted away.
//!
//! Every write is one SQLite transaction that upserts/deletes the object, appends its event and
//! bumps `rv`; it is committed (fsynced) before the caller sees success, so an acknowledged write
//! survives `kill -9` or power loss.
//!
//! # What lives in memory
//! The current objects (a `BTreeMap` by key, for prefix lists and gets without SQL) and a ring of
//! the most recent events (for watches). Both are rebuilt from the database at start. Writers are
//! serialised by one mutex around the SQLite connection; readers only take a short read lock on
//! the in-memory state and never wait for an fsync.
//!
//! # Keys
//! The store knows nothing about Kubernetes paths: keys are strings, lists and watches select by
//! key prefix. It knows one thing about objects: it stamps `metadata.resourceVersion`.

mod ring;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use ring::Ring;
pub use ring::{WatchError, Watcher};

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    fn code(self) -> i64 {
        match self {
            EventType::Added => 0,
            EventType::Modified => 1,
            EventType::Deleted => 2,
        }
    }
    fn from_code(code: i64) -> Option<EventType> {
        match code {
            0 => Some(EventType::Added),
            1 => Some(EventType::Modified),
            2 => Some(EventType::Deleted),
            _ => None,
        }
    }
    /// The watch event `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as the watch ring holds it.
#[derive(Debug, Clone)]
pub struct Event {
    pub rv: u64,
    pub key: String,
    pub event_type: EventType,
    /// The object after the change (for `Deleted`: its last state, stamped with the deletion rv).
    pub object: Arc<Value>,
    /// The object before the change, when known (needed to turn a selector-filtered MODIFIED
    /// into ADDED/DELETED). `None` for `Added`, and for the first event of a key after a restart.
    pub prev: Option<Arc<Value>>,
}

/// A stored object with the revision of its last change.
#[derive(Debug, Clone)]
pub struct Stored {
    pub rv: u64,
    pub value: Arc<Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("corrupt value at {key}: {source}")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("encode value for {key}: {source}")]
    Encode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("store lock poisoned")]
    Poisoned,
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What a `mutate` closure decides to do with the key.
#[derive(Debug)]
pub enum Mutation {
    /// Write this value (create if absent, update if present).
    Put(Value),
    /// Remove the object.
    Delete,
    /// Change nothing; return the current object.
    Keep,
}

/// The result of a `mutate`.
#[derive(Debug, Clone)]
pub enum Outcome {
    Created(Stored),
    Updated(Stored),
    /// The last state of the removed object, stamped with the deletion revision.
    Deleted(Stored),
    /// Nothing changed; the current object, if any.
    Unchanged(Option<Stored>),
}

impl Outcome {
    /// The object the caller should see: the written one, the deleted one, or the current one.
    pub fn stored(&self) -> Option<&Stored> {
        match self {
            Outcome::Created(s) | Outcome::Updated(s) | Outcome::Deleted(s) => Some(s),
            Outcome::Unchanged(s) => s.as_ref(),
        }
    }
}

/// Tunables.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// How many recent events the watch ring (and the `events` table) keeps.
    pub history: usize,
}

impl StoreConfig {
    pub fn standard() -> StoreConfig {
        StoreConfig { history: 20_000 }
    }
}

struct State {
    objects: BTreeMap<String, Stored>,
    ring: Ring,
}

struct Inner {
    db: Mutex<Connection>,
    state: RwLock<State>,
    rv_tx: tokio::sync::watch::Sender<u64>,
    config: StoreConfig,
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("rv", &self.current_rv()).finish()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, rv INTEGER NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (rv INTEGER PRIMARY KEY, key TEXT NOT NULL, type INTEGER NOT NULL, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
";

impl Store {
    /// Open (or create) the database at `path`.
    /// Open (or create) the database at `path`. It and its WAL and shared-memory files are
    /// private (0600): SQLite creates the latter two with the database's own mode, so the
    /// database is made 0600 before SQLite first opens it, and tightened if it was not.
    pub fn open(path: &Path, config: StoreConfig) -> Result<Store, StoreError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(io(path))?;
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&file)(e)),
                _ => {}
            }
        }
        let conn = Connection::open(path)?;
        Store::from_connection(conn, config)
    }

    /// A store on a private in-memory database (tests).
    pub fn open_in_memory(config: StoreConfig) -> Result<Store, StoreError> {
        Store::from_connection(Connection::open_in_memory()?, config)
    }

    fn from_connection(conn: Connection, config: StoreConfig) -> Result<Store, StoreError> {
        // auto_vacuum must be chosen before the first table exists; on an existing file it is a no-op.
        conn.execute_batch(
            "PRAGMA auto_vacuum = INCREMENTAL; PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;",
        )?;
        conn.execute_batch(SCHEMA)?;
        let rv: u64 = conn
            .query_row("SELECT value FROM meta WHERE name = 'rv'", [], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|v| v as u64)
            .unwrap_or(0);

        let mut objects = BTreeMap::new();
        {
            let mut stmt = conn.prepare("SELECT key, rv, value FROM objects")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?)))?;
            for row in rows {
                let (key, obj_rv, bytes) = row?;
                let value: Value = serde_json::from_slice(&bytes)
                    .map_err(|source| StoreError::Corrupt { key: key.clone(), source })?;
                objects.insert(key, Stored { rv: obj_rv as u64, value: Arc::new(value) });
            }
        }

        let mut ring = Ring::new(config.history, rv);
        {
            let mut stmt = conn.prepare(
                "SELECT rv, key, type, value FROM (SELECT * FROM events ORDER BY rv DESC LIMIT ?1) ORDER BY rv ASC",
            )?;
            let rows = stmt.query_map([config.history as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, Vec<u8>>(3)?))
            })?;
            let mut last_seen: BTreeMap<String, Arc<Value>> = BTreeMap::new();
            let mut loaded = Vec::new();
            for row in rows {
                let (ev_rv, key, code, bytes) = row?;
                let value: Value = serde_json::from_slice(&bytes)
                    .map_err(|source| StoreError::Corrupt { key: key.clone(), source })?;
                let Some(event_type) = EventType::from_code(code) else { continue };
                let object = Arc::new(value);
                let prev = match event_type {
                    EventType::Added => None,
                    _ => last_seen.get(&key).cloned(),
                };
                if event_type == EventType::Deleted {
                    last_seen.remove(&key);
                } else {
                    last_seen.insert(key.clone(), object.clone());
                }
                loaded.push(Arc::new(Event { rv: ev_rv as u64, key, event_type, object, prev }));
            }
            ring.load(loaded);
        }

        let (rv_tx, _) = tokio::sync::watch::channel(rv);
        Ok(Store {
            inner: Arc::new(Inner { db: Mutex::new(conn), state: RwLock::new(State { objects, ring }), rv_tx, config }),
        })
    }

    /// The newest revision issued.
    pub fn current_rv(&self) -> u64 {
        *self.inner.rv_tx.borrow()
    }

    pub fn get(&self, key: &str) -> Option<Stored> {
        let state = self.inner.state.read().ok()?;
        state.objects.get(key).cloned()
    }

    /// Objects whose key starts with `prefix` and sorts after `after` (exclusive), up to `limit`,
    /// filtered by `keep`; with the revision the snapshot was taken at.
    pub fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
        keep: &mut dyn FnMut(&Value) -> bool,
    ) -> Result<(Vec<Stored>, u64, bool), StoreError> {
        let state = self.inner.state.read().map_err(|_| StoreError::Poisoned)?;
        let rv = self.current_rv();
        let start = match after {
            Some(a) if a >= prefix => std::ops::Bound::Excluded(a.to_string()),
            _ => std::ops::Bound::Included(prefix.to_string()),
        };
        let mut out = Vec::new();
        let mut more = false;
        for (key, stored) in state.objects.range((start, std::ops::Bound::Unbounded)) {
            if !key.starts_with(prefix) {
                break;
            }
            if !keep(&stored.value) {
                continue;
            }
            if limit.is_some_and(|l| out.len() >= l) {
                more = true;
                break;
            }
            out.push(stored.clone());
        }
        Ok((out, rv, more))
    }

    /// Atomically read the object at `key`, let `decide` choose what to do, and do it.
    ///
    /// All writes are serialised, so `decide` sees the latest state and no other write can slip
    /// in between: this is the one primitive behind create, update, patch and delete.
    pub fn mutate<E: From<StoreError>>(
        &self,
        key: &str,
        decide: impl FnOnce(Option<&Stored>, u64) -> Result<Mutation, E>,
    ) -> Result<Outcome, E> {
        // A `decide` that panicked (a bug in a handler) poisons this lock without having touched
        // the database (its transaction starts after `decide`), so the lock is taken back:
        // one bad request must not stop every later write.
        let db = self.inner.db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.get(key);
        let next_rv = self.current_rv() + 1;
        let mutation = decide(current.as_ref(), next_rv)?;
        let (event_type, value) = match (mutation, &current) {
            (Mutation::Keep, _) | (Mutation::Delete, None) => return Ok(Outcome::Unchanged(current)),
            (Mutation::Put(mut value), cur) => {
                stamp_rv(&mut value, next_rv);
                (if cur.is_some() { EventType::Modified } else { EventType::Added }, value)
            }
            (Mutation::Delete, Some(cur)) => {
                let mut last = (*cur.value).clone();
                stamp_rv(&mut last, next_rv);
                (EventType::Deleted, last)
            }
        };
        let bytes = serde_json::to_vec(&value).map_err(|source| StoreError::Encode { key: key.to_string(), source })?;
        write_txn(&db, key, next_rv, event_type, &bytes).map_err(StoreError::from)?;

        let value = Arc::new(value);
        let stored = Stored { rv: next_rv, value: value.clone() };
        {
            let mut state = self.inner.state.write().map_err(|_| StoreError::Poisoned)?;
            match event_type {
                EventType::Deleted => {
                    state.objects.remove(key);
                }
                _ => {
                    state.objects.insert(key.to_string(), stored.clone());
                }
            }
            state.ring.push(Arc::new(Event {
                rv: next_rv,
                key: key.to_string(),
                event_type,
                object: value,
                prev: current.as_ref().map(|c| c.value.clone()),
            }));
            // Publish the revision under the state lock: a list sees objects and revision
            // together, so a watch started from a list's revision neither repeats nor misses.
            self.inner.rv_tx.send_replace(next_rv);
        }
        // Readers never took the writer lock and never waited for the fsync above.
        drop(db);
        Ok(match event_type {
            EventType::Added => Outcome::Created(stored),
            EventType::Modified => Outcome::Updated(stored),
            EventType::Deleted => Outcome::Deleted(stored),
        })
    }

    /// Watch keys under `prefix` for changes after revision `from_rv`.
    ///
    /// Fails with `None` when `from_rv` is older than the retained history (the API answers
    /// 410 Gone, reason Expired).
    pub fn watch(&self, prefix: &str, from_rv: u64) -> Option<Watcher> {
        let state = self.inner.state.read().ok()?;
        if from_rv < state.ring.oldest_available() {
            return None;
        }
        Some(Watcher::new(self.clone(), prefix.to_string(), from_rv, self.inner.rv_tx.subscribe()))
    }

    /// The oldest revision a watch may start from.
    pub fn oldest_watchable_rv(&self) -> u64 {
        self.inner.state.read().map(|s| s.ring.oldest_available()).unwrap_or(u64::MAX)
    }

    /// Drop events the ring no longer holds from disk, checkpoint the WAL and return free pages
    /// to the file system. Safe to call at any time; run periodically by the server.
    pub fn compact(&self) -> Result<CompactStats, StoreError> {
        let oldest = self.oldest_watchable_rv();
        let db = self.inner.db.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let removed = db.execute("DELETE FROM events WHERE rv <= ?1", [oldest as i64])?;
        db.execute_batch("PRAGMA incremental_vacuum;")?;
        db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(CompactStats { events_removed: removed, oldest_rv: oldest })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Events after `after_rv` under `prefix`, at most `max`; `Err(())` if `after_rv` fell out of
    /// the ring. Used by `Watcher`.
    fn events_after(&self, prefix: &str, after_rv: u64, max: usize) -> Result<(Vec<Arc<Event>>, u64), ()> {
        let state = self.inner.state.read().map_err(|_| ())?;
        state.ring.after(prefix, after_rv, max)
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Copy)]
pub struct CompactStats {
    pub events_removed: usize,
    pub oldest_rv: u64,
}

fn write_txn(db: &Connection, key: &str, rv: u64, event_type: EventType, bytes: &[u8]) -> rusqlite::Result<()> {
    let tx = db.unchecked_transaction()?;
    match event_type {
        EventType::Deleted => {
            tx.execute("DELETE FROM objects WHERE key = ?1", [key])?;
        }
        _ => {
            tx.execute(
                "INSERT INTO objects (key, rv, value) VALUES (?1, ?2, ?3) ON CONFLICT(key) DO UPDATE SET rv = excluded.rv, value = excluded.value",
                params![key, rv as i64, bytes],
            )?;
        }
    }
    tx.execute(
        "INSERT INTO events (rv, key, type, value) VALUES (?1, ?2, ?3, ?4)",
        params![rv as i64, key, event_type.code(), bytes],
    )?;
    tx.execute(
        "INSERT INTO meta (name, value) VALUES ('rv', ?1) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
        [rv as i64],
    )?;
    tx.commit()
}

/// Set `metadata.resourceVersion` (creating `metadata` if needed).
fn stamp_rv(value: &mut Value, rv: u64) {
    if let Value::Object(map) = value {
        let meta = map.entry("metadata").or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(meta) = meta {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
    }
}

impl From<StoreError> for model::ApiError {
    fn from(e: StoreError) -> model::ApiError {
        tracing::error!(error = %e, "store failure");
        model::ApiError::internal(format!("storage: {e}"))
    }
}
