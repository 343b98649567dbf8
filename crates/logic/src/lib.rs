//! Pure decision logic. Every planner takes snapshots (and `now` where time matters) and returns
//! actions; nothing here does I/O, reads a clock, or awaits. Controllers apply the actions.

pub mod container;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod dns;
pub mod endpoints;
pub mod gc;
pub mod hash;
pub mod job;
pub mod kubelet;
pub mod ownership;
pub mod pod;
pub mod pod_status;
pub mod proxy;
pub mod replicaset;
pub mod schedule;
pub mod security;
pub mod serviceaccount;
pub mod statefulset;
pub mod volume;

/// A Kubernetes quantity in milli-units (0 when malformed: validation rejects those earlier).
pub(crate) fn quantity_of(s: &str) -> i128 {
    model::quantity::parse_quantity(s).map(|q| q.millis()).unwrap_or(0)
}

/// An int-or-percent against `total` (upstream `GetScaledValueFromIntOrPercent`): a
/// percentage rounds up or down as asked; a malformed one counts as 0.
pub fn scaled_value(
    value: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
    total: i32,
    round_up: bool,
) -> i32 {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let pct: i64 = s.strip_suffix('%').and_then(|p| p.parse().ok()).unwrap_or(0);
            let scaled = i64::from(total) * pct;
            let v = if round_up { (scaled + 99).div_euclid(100) } else { scaled.div_euclid(100) };
            i32::try_from(v).unwrap_or(i32::MAX)
        }
    }
}
