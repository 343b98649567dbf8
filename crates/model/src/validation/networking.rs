//! `networking.k8s.io/v1` (upstream `pkg/apis/networking/validation`): the parts users get
//! wrong. Ordinal stores these objects; nothing enforces NetworkPolicies or routes Ingresses.

use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};

use super::{Errors, Path};
use crate::FieldError;

pub(crate) fn network_policy(np: &NetworkPolicy, errs: &mut Errors) {
    let Some(spec) = &np.spec else { return };
    for (i, t) in spec.policy_types.iter().flatten().enumerate() {
        if t != "Ingress" && t != "Egress" {
            errs.push(FieldError::not_supported(
                Path::new("spec").child("policyTypes").index(i),
                t.as_str(),
                &["Ingress", "Egress"],
            ));
        }
    }
}

pub(crate) fn ingress(ing: &Ingress, errs: &mut Errors) {
    let spec = Path::new("spec");
    let Some(s) = &ing.spec else {
        errs.push(FieldError::required(spec, ""));
        return;
    };
    let rules = s.rules.as_deref().unwrap_or_default();
    if s.default_backend.is_none() && rules.is_empty() {
        errs.push(FieldError::invalid(&spec, "", "either `defaultBackend` or `rules` must be specified"));
    }
    const PATH_TYPES: &[&str] = &["Exact", "Prefix", "ImplementationSpecific"];
    for (i, rule) in rules.iter().enumerate() {
        let Some(http) = &rule.http else { continue };
        for (j, p) in http.paths.iter().enumerate() {
            let at = spec.child("rules").index(i).child("http").child("paths").index(j);
            if !PATH_TYPES.contains(&p.path_type.as_str()) {
                errs.push(FieldError::not_supported(at.child("pathType"), p.path_type.as_str(), PATH_TYPES));
            }
            if p.path_type != "ImplementationSpecific" && !p.path.as_deref().unwrap_or_default().starts_with('/') {
                errs.push(FieldError::invalid(at.child("path"), p.path.clone(), "must be an absolute path"));
            }
        }
    }
}
