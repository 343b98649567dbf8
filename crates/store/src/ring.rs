//! The watch ring: the most recent events in revision order, and the cursor (`Watcher`) that
//! every watch reads it with.
//!
//! A watcher is only a revision cursor: replaying history and following live changes are the
//! same loop ("give me events after my revision, else wait for the revision to move"). A watcher
//! that falls behind the ring's capacity learns it is expired instead of silently missing events.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::{Event, Store};

pub(crate) struct Ring {
    events: VecDeque<Arc<Event>>,
    capacity: usize,
    /// Every event with a revision above `base` is in the ring.
    base: u64,
}

impl Ring {
    pub(crate) fn new(capacity: usize, current_rv: u64) -> Ring {
        Ring { events: VecDeque::new(), capacity: capacity.max(1), base: current_rv }
    }

    /// Replace the contents with events loaded at start (ascending, contiguous up to the current
    /// revision).
    pub(crate) fn load(&mut self, events: Vec<Arc<Event>>) {
        if let Some(first) = events.first() {
            self.base = first.rv.saturating_sub(1);
        }
        self.events = events.into();
        while self.events.len() > self.capacity {
            self.pop();
        }
    }

    pub(crate) fn push(&mut self, event: Arc<Event>) {
        self.events.push_back(event);
        while self.events.len() > self.capacity {
            self.pop();
        }
    }

    fn pop(&mut self) {
        if let Some(e) = self.events.pop_front() {
            self.base = e.rv;
        }
    }

    /// The oldest revision a watch can start from.
    pub(crate) fn oldest_available(&self) -> u64 {
        self.base
    }

    /// Up to `max` events under `prefix` with revision above `after`, and the revision scanned up
    /// to (the cursor's next position). `Err` when `after` is older than the ring.
    pub(crate) fn after(&self, prefix: &str, after: u64, max: usize) -> Result<(Vec<Arc<Event>>, u64), ()> {
        if after < self.base {
            return Err(());
        }
        let start = self.events.partition_point(|e| e.rv <= after);
        let mut out = Vec::new();
        let mut scanned = after;
        for e in self.events.range(start..) {
            if out.len() >= max {
                break;
            }
            scanned = e.rv;
            if e.key.starts_with(prefix) {
                out.push(e.clone());
            }
        }
        Ok((out, scanned))
    }
}

/// Why a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    /// The watcher fell behind the retained history (answer 410 Expired).
    #[error("the requested resource version is too old")]
    Expired,
    /// The store is gone (server shutting down).
    #[error("store closed")]
    Closed,
}

/// A cursor over the event stream under one key prefix.
pub struct Watcher {
    store: Store,
    prefix: String,
    last_rv: u64,
    rx: tokio::sync::watch::Receiver<u64>,
    buffer: VecDeque<Arc<Event>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("prefix", &self.prefix).field("last_rv", &self.last_rv).finish()
    }
}

const BATCH: usize = 512;

impl Watcher {
    pub(crate) fn new(store: Store, prefix: String, from_rv: u64, rx: tokio::sync::watch::Receiver<u64>) -> Watcher {
        Watcher { store, prefix, last_rv: from_rv, rx, buffer: VecDeque::new() }
    }

    /// The revision this watcher has delivered everything up to (for BOOKMARK events), once
    /// its buffer is drained.
    pub fn progress_rv(&self) -> u64 {
        match self.buffer.front() {
            Some(e) => e.rv.saturating_sub(1),
            None => self.last_rv,
        }
    }

    /// The next event, waiting for one if none is pending.
    pub async fn next(&mut self) -> Result<Arc<Event>, WatchError> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                return Ok(event);
            }
            let current = *self.rx.borrow_and_update();
            if current > self.last_rv {
                let (events, scanned) =
                    self.store.events_after(&self.prefix, self.last_rv, BATCH).map_err(|()| WatchError::Expired)?;
                self.last_rv = scanned;
                self.buffer.extend(events);
                continue;
            }
            if self.rx.changed().await.is_err() {
                return Err(WatchError::Closed);
            }
        }
    }
}
