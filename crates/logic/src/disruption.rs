//! The disruption controller's arithmetic (upstream `pkg/controller/disruption`): how many pods
//! a PodDisruptionBudget expects, how many must stay healthy, how many are, and so how many may
//! be disrupted now (`disruptionsAllowed`), which the eviction subresource spends
//! (`model::admission::eviction`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

/// How long an eviction's record keeps its pod out of the healthy count (upstream
/// `DeletionTimeout`).
pub const DELETION_TIMEOUT_SECONDS: i64 = 120;

/// Upstream `getExpectedPodCount`: (expected pods, desired healthy). An integer
/// `minAvailable` counts the selected pods; a percentage, or `maxUnavailable`, counts the
/// replicas the pods' controllers want (`scale`).
pub fn expected_pod_count(pdb: &PodDisruptionBudget, pods: usize, scale: i32) -> (i32, i32) {
    let spec = pdb.spec.clone().unwrap_or_default();
    let pods = i32::try_from(pods).unwrap_or(i32::MAX);
    match (&spec.max_unavailable, &spec.min_available) {
        (Some(max), _) => {
            let unavailable = crate::scaled_value(max, scale, true);
            (scale, (scale - unavailable).max(0))
        }
        (None, Some(IntOrString::Int(n))) => (pods, *n),
        (None, Some(min @ IntOrString::String(_))) => (scale, crate::scaled_value(min, scale, true)),
        (None, None) => (pods, 0),
    }
}

/// The budget's status for the pods it selects now (`scale` as in `expected_pod_count`); the
/// disrupted pods the eviction subresource recorded are kept, and the `DisruptionAllowed`
/// condition's transition time moves only when its status does.
pub fn budget_status(
    pdb: &PodDisruptionBudget,
    pods: &[&Pod],
    scale: i32,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let old = pdb.status.clone().unwrap_or_default();
    let (expected, desired) = expected_pod_count(pdb, pods.len(), scale);
    // Upstream `buildDisruptedPodMap`: an eviction's record lasts until its pod is gone or being
    // deleted, or `DELETION_TIMEOUT` has passed.
    let disrupted: BTreeMap<String, Time> = old
        .disrupted_pods
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, at)| {
            let pod = pods.iter().find(|p| p.metadata.name.as_deref() == Some(name.as_str()));
            pod.is_some_and(|p| p.metadata.deletion_timestamp.is_none())
                && at.0.as_second() + DELETION_TIMEOUT_SECONDS > now.as_second()
        })
        .collect();
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && crate::pod::is_ready(p))
        .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default()))
        .count();
    let healthy = i32::try_from(healthy).unwrap_or(i32::MAX);
    let allowed = (healthy - desired).max(0);
    let (status, reason, message) = match allowed > 0 {
        true => ("True", "SufficientPods", ""),
        false => ("False", "InsufficientPods", ""),
    };
    let generation = pdb.metadata.generation;
    let previous = old.conditions.iter().flatten().find(|c| c.type_ == "DisruptionAllowed");
    let transition = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    PodDisruptionBudgetStatus {
        observed_generation: generation,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        disruptions_allowed: allowed,
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        conditions: Some(vec![Condition {
            type_: "DisruptionAllowed".into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: generation,
            last_transition_time: transition,
        }]),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pdb(spec: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({"metadata": {"name": "web", "generation": 1}, "spec": spec})).expect("pdb")
    }

    fn pod(name: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name}, "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}))
        .expect("pod")
    }

    #[test]
    fn expected_and_desired_pods_follow_the_kind_of_bound() {
        let cases = [
            (json!({"minAvailable": 2}), 3, 5, (3, 2)),
            (json!({"minAvailable": "50%"}), 3, 5, (5, 3)),
            (json!({"maxUnavailable": 1}), 3, 5, (5, 4)),
            (json!({"maxUnavailable": "30%"}), 3, 5, (5, 3)),
            (json!({"maxUnavailable": 9}), 3, 5, (5, 0)),
            (json!({}), 3, 5, (3, 0)),
        ];
        for (spec, pods, scale, want) in cases {
            assert_eq!(expected_pod_count(&pdb(spec.clone()), pods, scale), want, "{spec}");
        }
    }

    #[test]
    fn disruptions_allowed_are_healthy_pods_beyond_the_desired_ones() {
        let now = Timestamp::from_second(1_800_000_000).expect("time");
        let pods = [pod("web-0", true), pod("web-1", true), pod("web-2", false)];
        let refs: Vec<&Pod> = pods.iter().collect();
        let budget = pdb(json!({"minAvailable": 1}));
        let status = budget_status(&budget, &refs, 3, now);
        assert_eq!((status.current_healthy, status.desired_healthy, status.expected_pods), (2, 1, 3));
        assert_eq!(status.disruptions_allowed, 1);
        assert_eq!(status.observed_generation, Some(1));
        let condition = &status.conditions.as_deref().unwrap_or_default()[0];
        assert_eq!((condition.status.as_str(), condition.reason.as_str()), ("True", "SufficientPods"));
        let tight = budget_status(&pdb(json!({"minAvailable": 2})), &refs, 3, now);
        assert_eq!(tight.disruptions_allowed, 0);
        assert_eq!(tight.conditions.as_deref().unwrap_or_default()[0].reason, "InsufficientPods");
        // An eviction recorded a minute ago keeps its pod out of the count; one older than the
        // timeout, or of a pod that is gone, does not.
        let mut spent = pdb(json!({"minAvailable": 1}));
        spent.status = Some(PodDisruptionBudgetStatus {
            disrupted_pods: Some(BTreeMap::from([
                ("web-0".to_string(), Time(Timestamp::from_second(now.as_second() - 60).expect("t"))),
                ("web-1".to_string(), Time(Timestamp::from_second(now.as_second() - 600).expect("t"))),
                ("web-9".to_string(), Time(now)),
            ])),
            ..Default::default()
        });
        let status = budget_status(&spent, &refs, 3, now);
        assert_eq!(status.current_healthy, 1);
        assert_eq!(status.disrupted_pods.map(|d| d.into_keys().collect::<Vec<_>>()), Some(vec!["web-0".to_string()]));
    }
}
