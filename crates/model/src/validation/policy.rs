//! `policy/v1` and `autoscaling/v2` (upstream `pkg/apis/policy/validation`,
//! `pkg/apis/autoscaling/validation`): a budget sets one of its two bounds, and an autoscaler
//! names its target and keeps `minReplicas ≤ maxReplicas`. Ordinal stores both; it computes no
//! budget status and scales nothing (README).

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use super::{Errors, Path};
use crate::FieldError;

pub(crate) fn pod_disruption_budget(pdb: &PodDisruptionBudget, errs: &mut Errors) {
    let Some(spec) = &pdb.spec else { return };
    if spec.min_available.is_some() && spec.max_unavailable.is_some() {
        errs.push(FieldError::invalid(Path::new("spec"), "", "minAvailable and maxUnavailable cannot be both set"));
    }
}

pub(crate) fn horizontal_pod_autoscaler(hpa: &HorizontalPodAutoscaler, errs: &mut Errors) {
    let path = Path::new("spec");
    let Some(spec) = &hpa.spec else {
        errs.push(FieldError::required(path, ""));
        return;
    };
    let target = path.child("scaleTargetRef");
    if spec.scale_target_ref.kind.is_empty() {
        errs.push(FieldError::required(target.child("kind"), ""));
    }
    if spec.scale_target_ref.name.is_empty() {
        errs.push(FieldError::required(target.child("name"), ""));
    }
    let min = spec.min_replicas.unwrap_or(1);
    if min < 1 {
        errs.push(FieldError::invalid(path.child("minReplicas"), min, "must be greater than or equal to 1"));
    }
    if spec.max_replicas < min {
        errs.push(FieldError::invalid(
            path.child("maxReplicas"),
            spec.max_replicas,
            "must be greater than or equal to `minReplicas`",
        ));
    }
}
