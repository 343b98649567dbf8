//! `scheduling.k8s.io/v1` (upstream `pkg/apis/scheduling/validation`): user-defined priorities
//! stay at or below one billion (higher ones are the `system-` classes'), and a class's value
//! never changes.

use k8s_openapi::api::scheduling::v1::PriorityClass;

use super::Errors;
use crate::FieldError;

/// Upstream `HighestUserDefinablePriority`.
const HIGHEST_USER_DEFINABLE: i32 = 1_000_000_000;

/// The classes every cluster has (upstream `SystemPriorityClasses`): name, value, description.
pub const SYSTEM_CLASSES: [(&str, i32, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

pub(crate) fn priority_class(pc: &PriorityClass, errs: &mut Errors) {
    let name = pc.metadata.name.as_deref().unwrap_or_default();
    let system = name.starts_with("system-");
    if system && !SYSTEM_CLASSES.iter().any(|(n, v, _)| *n == name && *v == pc.value && pc.global_default != Some(true))
    {
        errs.push(FieldError::forbidden(
            "metadata.name",
            "priority class names with 'system-' prefix are reserved for system use only",
        ));
    }
    if !system && pc.value > HIGHEST_USER_DEFINABLE {
        errs.push(FieldError::forbidden(
            "value",
            format!("maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE}"),
        ));
    }
    if let Some(policy) = pc.preemption_policy.as_deref()
        && policy != "PreemptLowerPriority"
        && policy != "Never"
    {
        errs.push(FieldError::not_supported("preemptionPolicy", policy, &["Never", "PreemptLowerPriority"]));
    }
}

pub(crate) fn priority_class_update(old: &PriorityClass, new: &PriorityClass, errs: &mut Errors) {
    if old.value != new.value {
        errs.push(FieldError::forbidden("value", "may not be changed in an update."));
    }
}
