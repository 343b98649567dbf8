//! Kubelet's back-off (client-go's `flowcontrol.Backoff`, without jitter as kubelet uses it):
//! one entry per container, a delay that doubles on every `next` up to a maximum, and an entry
//! that expires once it has not been touched for twice the maximum, so a container that ran
//! long enough starts again at once after its next failure.

use jiff::{SignedDuration, Timestamp};

/// How a back-off grows (kubelet: 10 s, doubling, at most 5 minutes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackOffPolicy {
    pub initial: SignedDuration,
    pub max: SignedDuration,
}

impl BackOffPolicy {
    /// Kubelet's crash-loop and image-pull back-off.
    pub const KUBELET: BackOffPolicy =
        BackOffPolicy { initial: SignedDuration::from_secs(10), max: SignedDuration::from_secs(300) };
}

/// One back-off entry; `Default` is "no entry yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackOff {
    /// The current delay; zero without an entry.
    pub delay: SignedDuration,
    /// When the entry last grew (`lastUpdate`); None without an entry.
    pub last_update: Option<Timestamp>,
}

impl BackOff {
    /// Upstream `hasExpired`: untouched for more than twice the maximum.
    fn expired(&self, policy: BackOffPolicy, event_time: Timestamp) -> bool {
        match self.last_update {
            None => true,
            Some(last) => event_time.duration_since(last) > policy.max * 2,
        }
    }

    /// Upstream `IsInBackOffSince`: is `now` still within the delay that follows `event_time`
    /// (for a container, the time its last run finished)?
    pub fn in_backoff_since(&self, policy: BackOffPolicy, event_time: Timestamp, now: Timestamp) -> bool {
        !self.expired(policy, event_time) && now.duration_since(event_time) < self.delay
    }

    /// When the back-off that follows `event_time` ends.
    pub fn until(&self, event_time: Timestamp) -> Timestamp {
        event_time.checked_add(self.delay).unwrap_or(event_time)
    }

    /// Upstream `Next`: the entry after one more failure handled at `now` (the first delay for a
    /// new or expired entry, otherwise double, at most the maximum).
    pub fn next(&self, policy: BackOffPolicy, event_time: Timestamp, now: Timestamp) -> BackOff {
        let delay = if self.expired(policy, event_time) { policy.initial } else { (self.delay * 2).min(policy.max) };
        BackOff { delay, last_update: Some(now) }
    }
}

/// A whole-second duration as Go prints it (`10s`, `2m40s`, `5m0s`, `1h0m0s`): kubelet's
/// messages quote its back-off that way.
pub fn go_duration(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}
