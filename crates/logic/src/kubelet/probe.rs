//! A prober's verdict, as kubelet's probe worker keeps it: results count in runs of equal
//! outcomes, and the verdict changes only when a run reaches `successThreshold` or
//! `failureThreshold`. Also when a probe may first run: `initialDelaySeconds` after the
//! container started, so a prober started late (after a server restart) does not wait again.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Probe;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProbeKind {
    Startup,
    Readiness,
    Liveness,
}

impl ProbeKind {
    /// As kubelet names it in `Unhealthy` events.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Liveness => "Liveness",
        }
    }
}

/// The probe's settings with kubelet's defaults applied (period 10 s, timeout 1 s, thresholds
/// 1 and 3, no initial delay; period and timeout at least a second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTiming {
    pub initial_delay: SignedDuration,
    pub period: SignedDuration,
    pub timeout: SignedDuration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl ProbeTiming {
    pub fn of(probe: &Probe) -> ProbeTiming {
        let secs =
            |v: Option<i32>, default: i64, min: i64| SignedDuration::from_secs(v.map_or(default, i64::from).max(min));
        let count = |v: Option<i32>, default: u32| v.map_or(default, |n| u32::try_from(n).unwrap_or(0)).max(1);
        ProbeTiming {
            initial_delay: secs(probe.initial_delay_seconds, 0, 0),
            period: secs(probe.period_seconds, 10, 1),
            timeout: secs(probe.timeout_seconds, 1, 1),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }

    /// How long from `now` until the first probe of a container that started at `started_at`.
    pub fn first_probe_in(&self, started_at: Timestamp, now: Timestamp) -> SignedDuration {
        let due = started_at.checked_add(self.initial_delay).unwrap_or(started_at);
        due.duration_since(now).max(SignedDuration::ZERO)
    }
}

/// One prober's state: the verdict (None until the first threshold is reached) and the run of
/// equal results that leads to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProbeCounter {
    pub verdict: Option<bool>,
    last: Option<bool>,
    run: u32,
}

impl ProbeCounter {
    /// Record one result; the new verdict when this result changes it.
    pub fn record(&mut self, success: bool, timing: &ProbeTiming) -> Option<bool> {
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success { timing.success_threshold } else { timing.failure_threshold };
        if self.run < threshold || self.verdict == Some(success) {
            return None;
        }
        self.verdict = Some(success);
        Some(success)
    }
}
