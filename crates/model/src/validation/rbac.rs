//! `rbac.authorization.k8s.io/v1` (upstream `pkg/apis/rbac/validation`): a binding refers to a
//! Role or ClusterRole of the RBAC group by name, never changes that reference, and names each
//! subject by a known kind.

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};

use super::{Errors, Path};
use crate::FieldError;

const GROUP: &str = "rbac.authorization.k8s.io";

fn role_ref(role: &RoleRef, kinds: &[&str], errs: &mut Errors) {
    let path = Path::new("roleRef");
    if role.api_group != GROUP {
        errs.push(FieldError::not_supported(path.child("apiGroup"), role.api_group.as_str(), &[GROUP]));
    }
    if !kinds.contains(&role.kind.as_str()) {
        errs.push(FieldError::not_supported(path.child("kind"), role.kind.as_str(), kinds));
    }
    if role.name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    }
}

fn subjects(subjects: Option<&Vec<Subject>>, cluster_scoped: bool, errs: &mut Errors) {
    for (i, s) in subjects.into_iter().flatten().enumerate() {
        let path = Path::new("subjects").index(i);
        if s.name.is_empty() {
            errs.push(FieldError::required(path.child("name"), ""));
        }
        match s.kind.as_str() {
            "ServiceAccount" => {
                if s.api_group.as_deref().is_some_and(|g| !g.is_empty()) {
                    errs.push(FieldError::not_supported(path.child("apiGroup"), s.api_group.clone(), &[""]));
                }
                if cluster_scoped && s.namespace.as_deref().unwrap_or_default().is_empty() {
                    errs.push(FieldError::required(path.child("namespace"), ""));
                }
            }
            "User" | "Group" => {
                if s.api_group.as_deref() != Some(GROUP) {
                    errs.push(FieldError::not_supported(path.child("apiGroup"), s.api_group.clone(), &[GROUP]));
                }
            }
            other => {
                errs.push(FieldError::not_supported(path.child("kind"), other, &["ServiceAccount", "User", "Group"]))
            }
        }
    }
}

pub(crate) fn role_binding(b: &RoleBinding, errs: &mut Errors) {
    role_ref(&b.role_ref, &["Role", "ClusterRole"], errs);
    subjects(b.subjects.as_ref(), false, errs);
}

pub(crate) fn cluster_role_binding(b: &ClusterRoleBinding, errs: &mut Errors) {
    role_ref(&b.role_ref, &["ClusterRole"], errs);
    subjects(b.subjects.as_ref(), true, errs);
}

fn role_ref_update(old: &RoleRef, new: &RoleRef, errs: &mut Errors) {
    if old != new {
        errs.push(FieldError::invalid(
            "roleRef",
            serde_json::to_value(new).unwrap_or_default(),
            "cannot change roleRef",
        ));
    }
}

pub(crate) fn role_binding_update(old: &RoleBinding, new: &RoleBinding, errs: &mut Errors) {
    role_ref_update(&old.role_ref, &new.role_ref, errs);
}

pub(crate) fn cluster_role_binding_update(old: &ClusterRoleBinding, new: &ClusterRoleBinding, errs: &mut Errors) {
    role_ref_update(&old.role_ref, &new.role_ref, errs);
}
