//! The object store: an SQLite revision log with an in-memory mirror and a watch ring.
//!
//! # What is persisted
//! `ordinal.db` (WAL, `synchronous=FULL`) holds three tables:
//! - `objects(key, rv, value)`: the current state, one row per live object;
//! - `events(rv, key, type, value)`: the recent change log, trimmed by compaction;
//! - `meta(name, value)`: the last issued revision (`rv`), so revisions never repeat, even after
//!   every event has been compacted away.
//!
//! Every write's rows (upsert/delete the object, append its event, bump `rv`) are committed
//! (fsynced) before the caller sees success, so an acknowledged write survives `kill -9` or
//! power loss. Concurrent writes share one transaction and one fsync (group commit, below); a
//! batch commits or rolls back whole.
//!
//! # What lives in memory
//! The current objects (a `BTreeMap` by key, for prefix lists and gets without SQL) and a ring of
//! the most recent events (for watches). Both are rebuilt from the database at start, and both
//! hold only committed writes: readers (`get`, `list`, `watch`, `current_rv`) take a short read
//! lock on them and never see a write before it is durable, nor wait for an fsync.
//!
//! # Group commit
//! A write first *decides*, under one short lock (the `pending` mutex): `decide` sees the
//! committed object overlaid with writes decided but not yet durable, and the write takes the
//! next revision and a place in the queue. Writes to one key are therefore serialisable and
//! revisions are handed out without gaps in commit order. Then, if no commit is running, the
//! writer becomes the committer: it takes the whole queue, writes it in one SQLite transaction
//! (one fsync), applies it to the in-memory state and publishes the last revision (under the
//! state lock), and wakes the waiters; otherwise it waits on a condition variable until its
//! batch is settled. Writes that arrive during a commit form the next batch; nothing waits on a
//! timer, so a lone writer commits at once. A failed commit fails every write not yet durable
//! (its batch and the queue behind it, whose decisions may rest on it): none becomes visible and
//! the next revision handed out is again the last durable one plus one, so readers never see a
//! gap. A decision that read a pending write and writes nothing (`Keep`, a delete of a key a
//! pending write removed, an error from `decide`) is answered only once that write is durable,
//! and fails with it.
//!
//! # Keys
//! The store knows nothing about Kubernetes paths: keys are strings, lists and watches select by
//! key prefix. It knows one thing about objects: it stamps `metadata.resourceVersion`.

mod ring;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};

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
    /// The commit of the batch this write (or the write its decision read) belonged to failed;
    /// shared by every write of that batch and of the queue behind it.
    #[error("commit failed: {0}")]
    Commit(#[source] Arc<StoreError>),
    #[error("the committer panicked")]
    CommitPanicked,
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

/// A decided write waiting for its commit.
struct Write {
    rv: u64,
    key: String,
    event_type: EventType,
    value: Arc<Value>,
    bytes: Vec<u8>,
    prev: Option<Arc<Value>>,
}

/// A place in the commit order: a write, or (`write: None`) a decision that read a pending
/// write and must not be answered before that write is durable.
struct Ticket {
    seq: u64,
    write: Option<Write>,
}

/// The latest decided state of a key whose write is not yet durable.
struct Overlay {
    /// The ticket of the write that decided it.
    seq: u64,
    /// `None`: deleted.
    stored: Option<Stored>,
}

/// Everything between deciding and durability, under one mutex (the decide lock).
struct Pending {
    /// The revision of the last decided write (the last durable one when nothing is pending).
    last_rv: u64,
    /// The last durable revision.
    durable_rv: u64,
    /// The next ticket number. Tickets, unlike revisions, are never reused after a failure.
    next_seq: u64,
    /// Every ticket up to this one is settled: committed or failed.
    settled_seq: u64,
    /// Settled tickets that failed, until their writer collects the error.
    failed: HashMap<u64, Arc<StoreError>>,
    /// Decided, not yet taken by a committer, in ticket (and revision) order.
    queue: Vec<Ticket>,
    /// Keys written by unsettled tickets, with their latest decided state.
    overlay: HashMap<String, Overlay>,
    /// A committer is at work (it holds a batch taken from the queue).
    committing: bool,
}

/// A test's hook into the commit: called with the batch's revisions after its rows are written
/// and before the commit; an error rolls the batch back.
#[cfg(test)]
type CommitHook = Box<dyn FnMut(&[u64]) -> rusqlite::Result<()> + Send>;

struct Inner {
    /// Held by the committer for the length of a commit, and by compaction.
    db: Mutex<Connection>,
    /// Committed state only: what readers see.
    state: RwLock<State>,
    pending: Mutex<Pending>,
    /// Signalled (under `pending`) whenever a batch settles.
    settled: Condvar,
    /// SQLite transactions committed since open.
    commits: AtomicU64,
    rv_tx: tokio::sync::watch::Sender<u64>,
    config: StoreConfig,
    #[cfg(test)]
    commit_hook: Mutex<Option<CommitHook>>,
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
        let pending = Pending {
            last_rv: rv,
            durable_rv: rv,
            next_seq: 1,
            settled_seq: 0,
            failed: HashMap::new(),
            queue: Vec::new(),
            overlay: HashMap::new(),
            committing: false,
        };
        Ok(Store {
            inner: Arc::new(Inner {
                db: Mutex::new(conn),
                state: RwLock::new(State { objects, ring }),
                pending: Mutex::new(pending),
                settled: Condvar::new(),
                commits: AtomicU64::new(0),
                rv_tx,
                config,
                #[cfg(test)]
                commit_hook: Mutex::new(None),
            }),
        })
    }

    /// The newest durable revision.
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

    /// Atomically read the object at `key`, let `decide` choose what to do, and do it; return
    /// once the write is durable.
    ///
    /// Decisions are serialised, and `decide` sees the latest decided state of the key (including
    /// writes not yet durable), so no other write can slip in between: this is the one primitive
    /// behind create, update, patch and delete. Concurrent writes share a commit (see the module
    /// comment).
    pub fn mutate<E: From<StoreError>>(
        &self,
        key: &str,
        decide: impl FnOnce(Option<&Stored>, u64) -> Result<Mutation, E>,
    ) -> Result<Outcome, E> {
        let mut pending = self.lock_pending();
        // The latest decided state: a pending write of the key if any, else the committed object.
        let (current, read_seq) = match pending.overlay.get(key) {
            Some(o) => (o.stored.clone(), Some(o.seq)),
            None => (self.get(key), None),
        };
        let next_rv = pending.last_rv + 1;
        // A `decide` that panics (a bug in a handler) poisons the decide lock before anything was
        // queued, so the lock is taken back by every later write (`lock_pending`): one bad
        // request must not stop every later write.
        let mutation = match decide(current.as_ref(), next_rv) {
            Ok(m) => m,
            Err(e) => {
                // Refused on the strength of a pending write: answer once that write is durable.
                if read_seq.is_some() {
                    let seq = pending.enqueue(None);
                    self.wait_settled(pending, seq)?;
                }
                return Err(e);
            }
        };
        let (event_type, value) = match (mutation, &current) {
            (Mutation::Keep, _) | (Mutation::Delete, None) => {
                // Nothing to write, but the answer may show a pending write: not before it is durable.
                if read_seq.is_some() {
                    let seq = pending.enqueue(None);
                    self.wait_settled(pending, seq)?;
                }
                return Ok(Outcome::Unchanged(current));
            }
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
        let value = Arc::new(value);
        let stored = Stored { rv: next_rv, value: value.clone() };
        pending.last_rv = next_rv;
        let write = Write {
            rv: next_rv,
            key: key.to_string(),
            event_type,
            value,
            bytes,
            prev: current.as_ref().map(|c| c.value.clone()),
        };
        let seq = pending.enqueue(Some(write));
        let overlay = (event_type != EventType::Deleted).then(|| stored.clone());
        pending.overlay.insert(key.to_string(), Overlay { seq, stored: overlay });
        self.wait_settled(pending, seq)?;
        Ok(match event_type {
            EventType::Added => Outcome::Created(stored),
            EventType::Modified => Outcome::Updated(stored),
            EventType::Deleted => Outcome::Deleted(stored),
        })
    }

    fn lock_pending(&self) -> MutexGuard<'_, Pending> {
        self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Return once ticket `seq` is settled: committing batches while no one else is, waiting
    /// while someone is. `Err` if its batch failed.
    fn wait_settled<'a>(&'a self, mut pending: MutexGuard<'a, Pending>, seq: u64) -> Result<(), StoreError> {
        while pending.settled_seq < seq {
            if pending.committing {
                pending = self.inner.settled.wait(pending).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // No commit is running, so every unsettled ticket, this one included, is queued: take
            // them all as one batch. Writers arriving meanwhile queue up for the next one.
            pending.committing = true;
            let batch = std::mem::take(&mut pending.queue);
            drop(pending);
            // A panic in here would leave `committing` set and every writer waiting forever:
            // it fails the batch like an error instead.
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.commit(&batch))).unwrap_or_else(|_| {
                    tracing::error!("the store's committer panicked");
                    Err(StoreError::CommitPanicked)
                });
            pending = self.lock_pending();
            pending.settle(&batch, result);
            pending.committing = false;
            self.inner.settled.notify_all();
        }
        match pending.failed.remove(&seq) {
            Some(e) => Err(StoreError::Commit(e)),
            None => Ok(()),
        }
    }

    /// Write a batch in one transaction, then apply it to the in-memory state and publish its
    /// last revision. Nothing is applied if the commit fails.
    fn commit(&self, batch: &[Ticket]) -> Result<(), StoreError> {
        let writes: Vec<&Write> = batch.iter().filter_map(|t| t.write.as_ref()).collect();
        let Some(last) = writes.last() else { return Ok(()) };
        let last_rv = last.rv;
        {
            // A committer that panicked mid-transaction poisons this lock; its transaction was
            // rolled back when it unwound, so the connection is taken back.
            let db = self.inner.db.lock().unwrap_or_else(PoisonError::into_inner);
            self.write_batch(&db, &writes, last_rv)?;
        }
        self.inner.commits.fetch_add(1, Ordering::Relaxed);
        // Durable: the memory must follow the disk, so a poisoned state lock is taken back.
        let mut state = self.inner.state.write().unwrap_or_else(PoisonError::into_inner);
        for w in writes {
            match w.event_type {
                EventType::Deleted => {
                    state.objects.remove(&w.key);
                }
                _ => {
                    state.objects.insert(w.key.clone(), Stored { rv: w.rv, value: w.value.clone() });
                }
            }
            state.ring.push(Arc::new(Event {
                rv: w.rv,
                key: w.key.clone(),
                event_type: w.event_type,
                object: w.value.clone(),
                prev: w.prev.clone(),
            }));
        }
        // Publish the revision under the state lock: a list sees objects and revision
        // together, so a watch started from a list's revision neither repeats nor misses.
        self.inner.rv_tx.send_replace(last_rv);
        Ok(())
    }

    fn write_batch(&self, db: &Connection, writes: &[&Write], last_rv: u64) -> rusqlite::Result<()> {
        // Dropped without `commit` (an error below), the transaction rolls back.
        let tx = db.unchecked_transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO objects (key, rv, value) VALUES (?1, ?2, ?3) ON CONFLICT(key) DO UPDATE SET rv = excluded.rv, value = excluded.value",
            )?;
            let mut delete = tx.prepare_cached("DELETE FROM objects WHERE key = ?1")?;
            let mut event = tx.prepare_cached("INSERT INTO events (rv, key, type, value) VALUES (?1, ?2, ?3, ?4)")?;
            for w in writes {
                match w.event_type {
                    EventType::Deleted => delete.execute([&w.key])?,
                    _ => upsert.execute(params![w.key, w.rv as i64, w.bytes])?,
                };
                event.execute(params![w.rv as i64, w.key, w.event_type.code(), w.bytes])?;
            }
            tx.prepare_cached(
                "INSERT INTO meta (name, value) VALUES ('rv', ?1) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            )?
            .execute([last_rv as i64])?;
        }
        #[cfg(test)]
        if let Some(hook) = self.inner.commit_hook.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
            let rvs: Vec<u64> = writes.iter().map(|w| w.rv).collect();
            hook(&rvs)?;
        }
        tx.commit()
    }

    /// SQLite transactions (fsyncs) committed since the store was opened: with concurrent
    /// writers, fewer than the writes.
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
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

#[cfg(test)]
impl Store {
    /// Install a hook the committer calls before each commit (tests of batching and failures).
    fn set_commit_hook(&self, hook: CommitHook) {
        *self.inner.commit_hook.lock().unwrap_or_else(PoisonError::into_inner) = Some(hook);
    }

    /// Tickets waiting for the next batch.
    fn queued(&self) -> usize {
        self.lock_pending().queue.len()
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Copy)]
pub struct CompactStats {
    pub events_removed: usize,
    pub oldest_rv: u64,
}

impl Pending {
    /// Queue a ticket; its number.
    fn enqueue(&mut self, write: Option<Write>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Ticket { seq, write });
        seq
    }

    /// Record the end of a committer's batch.
    fn settle(&mut self, batch: &[Ticket], result: Result<(), StoreError>) {
        let Some(last) = batch.last() else { return };
        match result {
            Ok(()) => {
                self.settled_seq = last.seq;
                for w in batch.iter().filter_map(|t| t.write.as_ref()) {
                    self.durable_rv = w.rv;
                }
                // A key written again by a later ticket keeps that ticket's state.
                self.overlay.retain(|_, o| o.seq > last.seq);
            }
            Err(e) => {
                tracing::error!(error = %e, "store commit failed");
                // Every unsettled ticket fails: this batch, and the queue behind it, whose
                // decisions may rest on it. Nothing of them was applied, and the revisions they
                // took are handed out again, so readers never see a gap.
                let e = Arc::new(e);
                for seq in self.settled_seq + 1..self.next_seq {
                    self.failed.insert(seq, e.clone());
                }
                self.settled_seq = self.next_seq - 1;
                self.queue.clear();
                self.overlay.clear();
                self.last_rv = self.durable_rv;
            }
        }
    }
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
