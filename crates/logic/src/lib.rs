//! Pure decision logic. Every planner takes snapshots (and `now` where time matters) and returns
//! actions; nothing here does I/O, reads a clock, or awaits. Controllers apply the actions.

pub mod container;
pub mod dns;
pub mod endpoints;
pub mod gc;
pub mod pod_status;
pub mod proxy;
pub mod schedule;
pub mod statefulset;
pub mod volume;

/// A Kubernetes quantity in milli-units (0 when malformed: validation rejects those earlier).
pub(crate) fn quantity_of(s: &str) -> i128 {
    model::quantity::parse_quantity(s).map(|q| q.millis()).unwrap_or(0)
}
