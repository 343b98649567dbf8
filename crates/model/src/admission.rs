//! Admission decisions kube-apiserver makes with its default plugins, as pure functions over the
//! object and what the store holds. Today: `Priority` (`plugin/pkg/admission/priority`): a new
//! pod gets the priority (and preemption policy) of the PriorityClass it names, or of the
//! global default class; there is at most one global default. And the eviction subresource's
//! budget check (`pkg/registry/core/pod/storage/eviction.go`).

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::scheduling::v1::PriorityClass;

/// What the `Priority` plugin writes into a new pod's spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPriority {
    /// The class name (the default class's when the pod named none, `""` without one).
    pub class_name: String,
    pub priority: i32,
    pub preemption_policy: Option<String>,
}

/// Upstream's `DefaultPriorityWhenNoDefaultClassExists`.
pub const DEFAULT_PRIORITY: i32 = 0;

/// The global default class: the lowest-valued one if a race made several.
fn global_default(classes: &[PriorityClass]) -> Option<&PriorityClass> {
    classes.iter().filter(|c| c.global_default == Some(true)).min_by_key(|c| c.value)
}

/// The priority of a new `pod`, or why it is forbidden (upstream's message, without the
/// `pods "x" is forbidden: ` prefix).
pub fn pod_priority(pod: &Pod, classes: &[PriorityClass]) -> Result<PodPriority, String> {
    let spec = pod.spec.as_ref();
    let named = spec.and_then(|s| s.priority_class_name.as_deref()).unwrap_or_default();
    let resolved = if named.is_empty() {
        match global_default(classes) {
            Some(c) => PodPriority {
                class_name: c.metadata.name.clone().unwrap_or_default(),
                priority: c.value,
                preemption_policy: c.preemption_policy.clone(),
            },
            None => PodPriority { class_name: String::new(), priority: DEFAULT_PRIORITY, preemption_policy: None },
        }
    } else {
        let class = classes
            .iter()
            .find(|c| c.metadata.name.as_deref() == Some(named))
            .ok_or_else(|| format!("no PriorityClass with name {named} was found"))?;
        PodPriority {
            class_name: named.to_string(),
            priority: class.value,
            preemption_policy: class.preemption_policy.clone(),
        }
    };
    if let Some(given) = spec.and_then(|s| s.priority)
        && given != resolved.priority
    {
        return Err(format!(
            "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {} from the given PriorityClass name",
            resolved.priority
        ));
    }
    if let (Some(given), Some(computed)) =
        (spec.and_then(|s| s.preemption_policy.as_deref()), resolved.preemption_policy.as_deref())
        && given != computed
    {
        return Err(format!(
            "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {computed} from the given PriorityClass name"
        ));
    }
    Ok(resolved)
}

/// Whether `class` may be written: a second global default is forbidden (upstream's message).
pub fn priority_class(class: &PriorityClass, existing: &[PriorityClass]) -> Result<(), String> {
    if class.global_default != Some(true) {
        return Ok(());
    }
    match existing.iter().find(|c| c.global_default == Some(true) && c.metadata.name != class.metadata.name) {
        Some(other) => Err(format!(
            "PriorityClass {} is already marked as default. Only one default can exist",
            other.metadata.name.as_deref().unwrap_or_default()
        )),
        None => Ok(()),
    }
}

/// Whether the eviction of a pod covered by `pdb` may go ahead (upstream's
/// `checkAndDecrement`): `Err` with upstream's cause message when it would break the budget or
/// the budget's status is not current.
pub fn eviction(pdb: &k8s_openapi::api::policy::v1::PodDisruptionBudget) -> Result<(), String> {
    let status = pdb.status.clone().unwrap_or_default();
    let name = pdb.metadata.name.as_deref().unwrap_or_default();
    if status.observed_generation < pdb.metadata.generation {
        return Err(format!("The disruption budget {name} is still being processed by the server."));
    }
    if status.disruptions_allowed <= 0 {
        return Err(format!(
            "The disruption budget {name} needs {} healthy pods and has {} currently",
            status.desired_healthy, status.current_healthy
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn class(name: &str, value: i32, default: bool, policy: Option<&str>) -> PriorityClass {
        serde_json::from_value(json!({"metadata": {"name": name}, "value": value, "globalDefault": default,
            "preemptionPolicy": policy}))
        .expect("class")
    }

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("pod")
    }

    #[test]
    fn pods_get_their_class_priority_the_default_or_zero() {
        let high = class("high", 1000, false, Some("Never"));
        let default = class("normal", 10, true, None);
        let other_default = class("low", 5, true, None);
        let ok = |class: &str, priority: i32, policy: Option<&str>| PodPriority {
            class_name: class.into(),
            priority,
            preemption_policy: policy.map(String::from),
        };
        let cases: Vec<(serde_json::Value, Vec<PriorityClass>, Result<PodPriority, String>)> = vec![
            (json!({}), vec![], Ok(ok("", 0, None))),
            (json!({"priorityClassName": "high"}), vec![high.clone()], Ok(ok("high", 1000, Some("Never")))),
            (json!({}), vec![high.clone(), default.clone()], Ok(ok("normal", 10, None))),
            // Two defaults (a race): the lower one.
            (json!({}), vec![default.clone(), other_default], Ok(ok("low", 5, None))),
            (
                json!({"priorityClassName": "missing"}),
                vec![high.clone()],
                Err("no PriorityClass with name missing was found".into()),
            ),
            (json!({"priorityClassName": "high", "priority": 1000}), vec![high.clone()], Ok(ok("high", 1000, Some("Never")))),
            (
                json!({"priorityClassName": "high", "priority": 7}),
                vec![high.clone()],
                Err("the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name".into()),
            ),
            (
                json!({"priorityClassName": "high", "preemptionPolicy": "PreemptLowerPriority"}),
                vec![high],
                Err("the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in pod spec; priority admission controller computed Never from the given PriorityClass name".into()),
            ),
        ];
        for (spec, classes, want) in cases {
            assert_eq!(pod_priority(&pod(spec.clone()), &classes), want, "{spec}");
        }
    }

    #[test]
    fn only_one_class_is_the_global_default() {
        let a = class("a", 1, true, None);
        let b = class("b", 2, true, None);
        let c = class("c", 3, false, None);
        assert_eq!(priority_class(&c, std::slice::from_ref(&a)), Ok(()));
        assert_eq!(priority_class(&a, std::slice::from_ref(&a)), Ok(()), "updating the default itself");
        assert_eq!(
            priority_class(&b, &[a, c]),
            Err("PriorityClass a is already marked as default. Only one default can exist".into())
        );
    }

    #[test]
    fn an_eviction_needs_a_current_budget_with_a_disruption_to_spare() {
        let budget =
            |generation: i64, observed: i64, allowed: i32| -> k8s_openapi::api::policy::v1::PodDisruptionBudget {
                serde_json::from_value(json!({"metadata": {"name": "web", "generation": generation},
                "status": {"observedGeneration": observed, "disruptionsAllowed": allowed,
                    "currentHealthy": 2, "desiredHealthy": 2, "expectedPods": 3}}))
                .expect("pdb")
            };
        assert_eq!(eviction(&budget(1, 1, 1)), Ok(()));
        assert_eq!(
            eviction(&budget(1, 1, 0)),
            Err("The disruption budget web needs 2 healthy pods and has 2 currently".into())
        );
        assert_eq!(
            eviction(&budget(2, 1, 1)),
            Err("The disruption budget web is still being processed by the server.".into())
        );
    }
}
