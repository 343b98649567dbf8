//! Workload rules (upstream `pkg/apis/apps/validation` and `pkg/apis/batch/validation`):
//! StatefulSet, Deployment, ReplicaSet, ControllerRevision and batch/v1 Job, and what their
//! updates may change.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{
    ControllerRevision, Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, ReplicaSetSpec, StatefulSet,
    StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{self, check, dns1123_label_errors};
use super::pod::pod_template;
use super::{Errors, Path, json, non_negative};
use crate::FieldError;
use crate::selector::LabelSelector as Selector;

const PERCENT_MSG: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

/// `spec.selector`: required, well-formed and non-empty; the parsed form when usable.
fn selector(selector: Option<&LabelSelector>, what: &str, errs: &mut Errors) -> Option<Selector> {
    let path = Path::new("spec").child("selector");
    let Some(sel) = selector else {
        errs.push(FieldError::required(&path, ""));
        return None;
    };
    meta::label_selector(sel, &path, errs);
    let count =
        sel.match_labels.as_ref().map_or(0, |m| m.len()) + sel.match_expressions.as_ref().map_or(0, |e| e.len());
    if count == 0 {
        errs.push(FieldError::invalid(
            &path,
            meta::selector_json(sel),
            format!("empty selector is invalid for {what}"),
        ));
    }
    Selector::from_k8s(sel).ok()
}

/// The selector must match the template's labels (when it selects anything).
fn template_matches(selector: Option<&Selector>, template: &PodTemplateSpec, errs: &mut Errors) {
    let labels = template.metadata.as_ref().and_then(|m| m.labels.clone()).unwrap_or_default();
    if let Some(sel) = selector
        && !sel.is_empty()
        && !sel.matches(&labels)
    {
        errs.push(FieldError::invalid(
            "spec.template.metadata.labels",
            json(&labels),
            "`selector` does not match template `labels`",
        ));
    }
}

/// Workload templates: restart policy `Always`, no `activeDeadlineSeconds`.
fn template_policies(template: &PodTemplateSpec, kind: &str, errs: &mut Errors) {
    let spec = template.spec.as_ref();
    let restart = spec.and_then(|s| s.restart_policy.as_deref()).unwrap_or("");
    if restart != "Always" {
        errs.push(FieldError::not_supported("spec.template.spec.restartPolicy", restart, &["Always"]));
    }
    if spec.is_some_and(|s| s.active_deadline_seconds.is_some()) {
        errs.push(FieldError::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
}

/// Upstream `ValidatePositiveIntOrPercent`, plus the value it stands for (0 when malformed).
fn int_or_percent(value: &IntOrString, path: &Path, errs: &mut Errors) -> (i64, bool) {
    match value {
        IntOrString::Int(n) => {
            non_negative(*n, path, errs);
            (i64::from(*n), false)
        }
        IntOrString::String(s) => {
            match s.strip_suffix('%').filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())) {
                Some(digits) => (digits.parse().unwrap_or(i64::MAX), true),
                None => {
                    errs.push(FieldError::invalid(path, s.as_str(), PERCENT_MSG));
                    (s.parse().unwrap_or(0), false)
                }
            }
        }
    }
}

fn not_over_100_percent(value: &IntOrString, (n, percent): (i64, bool), path: &Path, errs: &mut Errors) {
    if percent && n > 100 {
        errs.push(FieldError::invalid(path, json(value), "must not be greater than 100%"));
    }
}

/// Upstream `ValidateStatefulSetSpec` (and, as 1.34, the pod template and claim templates).
pub(crate) fn stateful_set(sts: &StatefulSet, errs: &mut Errors) {
    let default_spec = StatefulSetSpec::default();
    let spec = sts.spec.as_ref().unwrap_or(&default_spec);
    let path = Path::new("spec");
    match spec.pod_management_policy.as_deref().unwrap_or("") {
        "" => errs.push(FieldError::required(path.child("podManagementPolicy"), "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            path.child("podManagementPolicy"),
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    update_strategy(spec.update_strategy.as_ref(), &path.child("updateStrategy"), errs);
    if let Some(policy) = &spec.persistent_volume_claim_retention_policy {
        let p = path.child("persistentVolumeClaimRetentionPolicy");
        for (field, value) in [("whenDeleted", &policy.when_deleted), ("whenScaled", &policy.when_scaled)] {
            let v = value.as_deref().unwrap_or("");
            if v != "Retain" && v != "Delete" {
                errs.push(FieldError::not_supported(p.child(field), v, &["Retain", "Delete"]));
            }
        }
    }
    non_negative(spec.replicas.unwrap_or(1), &path.child("replicas"), errs);
    non_negative(spec.min_ready_seconds.unwrap_or(0), &path.child("minReadySeconds"), errs);
    if let Some(ordinals) = &spec.ordinals {
        non_negative(ordinals.start.unwrap_or(0), &path.child("ordinals.start"), errs);
    }
    let parsed = selector(Some(&spec.selector).filter(|_| has_selector(sts)), "statefulset", errs);
    template_matches(parsed.as_ref(), &spec.template, errs);
    // 1.34: the template is validated as a pod template, with the claim templates as volumes.
    let claims: Vec<String> =
        spec.volume_claim_templates.iter().flatten().filter_map(|t| t.metadata.name.clone()).collect();
    pod_template(&spec.template, &path.child("template"), &claims, errs);
    template_policies(&spec.template, "StatefulSet", errs);
    if let Some(name) = spec.service_name.as_deref().filter(|n| !n.is_empty()) {
        check(name, &path.child("serviceName"), errs, dns1123_label_errors);
    }
    let mut names = BTreeSet::new();
    for (i, t) in spec.volume_claim_templates.iter().flatten().enumerate() {
        let p = path.child("volumeClaimTemplates").index(i);
        let name = t.metadata.name.as_deref().unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required(p.child("metadata").child("name"), ""));
        } else {
            // The name is also the pod volume's name.
            check(name, &p.child("metadata").child("name"), errs, dns1123_label_errors);
            if !names.insert(name) {
                errs.push(FieldError::duplicate(p.child("metadata").child("name"), name));
            }
        }
        super::core::claim_spec(&t.spec.clone().unwrap_or_default(), &p.child("spec"), errs);
    }
}

/// Whether the StatefulSet has a selector at all (the typed field cannot tell a missing one
/// from an empty one; defaulting keeps a missing one missing, so an empty default is "missing").
fn has_selector(sts: &StatefulSet) -> bool {
    sts.spec.as_ref().is_some_and(|s| s.selector != LabelSelector::default())
}

fn update_strategy(strategy: Option<&StatefulSetUpdateStrategy>, path: &Path, errs: &mut Errors) {
    let default = StatefulSetUpdateStrategy::default();
    let strategy = strategy.unwrap_or(&default);
    match strategy.type_.as_deref().unwrap_or("") {
        "" => errs.push(FieldError::required(path, "")),
        "OnDelete" => {
            if let Some(rolling) = &strategy.rolling_update {
                errs.push(FieldError::invalid(
                    path.child("rollingUpdate"),
                    json(rolling),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(rolling) = &strategy.rolling_update {
                let p = path.child("rollingUpdate");
                non_negative(rolling.partition.unwrap_or(0), &p.child("partition"), errs);
                if let Some(max) = &rolling.max_unavailable {
                    let mp = p.child("maxUnavailable");
                    let value = int_or_percent(max, &mp, errs);
                    if value.0 == 0 {
                        errs.push(FieldError::invalid(&mp, json(max), "cannot be 0"));
                    }
                    not_over_100_percent(max, value, &mp, errs);
                }
            }
        }
        _ => errs.push(FieldError::invalid(path, json(strategy), "must be 'RollingUpdate' or 'OnDelete'")),
    }
}

/// Upstream `ValidateStatefulSetUpdate` (1.33): only these spec fields may change.
pub(crate) fn stateful_set_update(old: &StatefulSet, new: &StatefulSet, errs: &mut Errors) {
    let (Some(old_spec), Some(new_spec)) = (&old.spec, &new.spec) else { return };
    let mut clone = new_spec.clone();
    clone.replicas = old_spec.replicas;
    clone.template = old_spec.template.clone();
    clone.update_strategy = old_spec.update_strategy.clone();
    clone.min_ready_seconds = old_spec.min_ready_seconds;
    clone.ordinals = old_spec.ordinals.clone();
    clone.revision_history_limit = old_spec.revision_history_limit;
    clone.persistent_volume_claim_retention_policy = old_spec.persistent_volume_claim_retention_policy.clone();
    // Beyond upstream (#68737): a claim template's storage request may grow (the controller
    // then expands the claims); it may not shrink, and nothing else in a template may change.
    if let (Some(old_t), Some(new_t)) = (&old_spec.volume_claim_templates, &new_spec.volume_claim_templates)
        && old_t.len() == new_t.len()
    {
        let storage = |t: &k8s_openapi::api::core::v1::PersistentVolumeClaim| {
            t.spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .cloned()
        };
        let mut same_but_storage = true;
        for (i, (o, n)) in old_t.iter().zip(new_t).enumerate() {
            let mut n_as_old = n.clone();
            if let (Some(spec), Some(old_q)) = (n_as_old.spec.as_mut(), storage(o))
                && let Some(requests) = spec.resources.as_mut().and_then(|r| r.requests.as_mut())
            {
                requests.insert("storage".into(), old_q);
            }
            if n_as_old != *o {
                same_but_storage = false;
                continue;
            }
            let quantity = |q: Option<k8s_openapi::apimachinery::pkg::api::resource::Quantity>| {
                q.and_then(|q| crate::quantity::parse_quantity(&q.0).ok()).map(|q| q.millis()).unwrap_or(0)
            };
            if quantity(storage(n)) < quantity(storage(o)) {
                errs.push(FieldError::forbidden(
                        format!("spec.volumeClaimTemplates[{i}].spec.resources.requests.storage"),
                        "may only grow: Ordinal expands existing claims when a template asks for more, and volumes cannot shrink",
                    ));
            }
        }
        if same_but_storage {
            clone.volume_claim_templates = old_spec.volume_claim_templates.clone();
        } else {
            errs.push(FieldError::forbidden(
                "spec.volumeClaimTemplates",
                "only the storage request of a volumeClaimTemplates entry may change (and only grow)",
            ));
            clone.volume_claim_templates = old_spec.volume_claim_templates.clone();
        }
    }
    if clone != *old_spec {
        errs.push(FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

/// Upstream `ValidatePodTemplateSpecForReplicaSet` (Deployments and ReplicaSets).
fn replica_set_template(
    template: Option<&PodTemplateSpec>,
    selector: Option<&Selector>,
    kind: &str,
    errs: &mut Errors,
) {
    let Some(template) = template else {
        errs.push(FieldError::required("spec.template", ""));
        return;
    };
    template_matches(selector, template, errs);
    pod_template(template, &Path::new("spec").child("template"), &[], errs);
    template_policies(template, kind, errs);
}

/// Upstream `ValidateDeploymentSpec`.
pub(crate) fn deployment(d: &Deployment, errs: &mut Errors) {
    let default_spec = DeploymentSpec::default();
    let spec = d.spec.as_ref().unwrap_or(&default_spec);
    let path = Path::new("spec");
    non_negative(spec.replicas.unwrap_or(1), &path.child("replicas"), errs);
    let has = spec.selector != LabelSelector::default();
    let parsed = selector(Some(&spec.selector).filter(|_| has), "deployment", errs);
    replica_set_template(Some(&spec.template), parsed.as_ref(), "ReplicaSet", errs);
    deployment_strategy(spec.strategy.as_ref(), &path.child("strategy"), errs);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    non_negative(min_ready, &path.child("minReadySeconds"), errs);
    if let Some(limit) = spec.revision_history_limit {
        non_negative(limit, &path.child("revisionHistoryLimit"), errs);
    }
    if let Some(deadline) = spec.progress_deadline_seconds {
        let p = path.child("progressDeadlineSeconds");
        non_negative(deadline, &p, errs);
        if deadline <= min_ready {
            errs.push(FieldError::invalid(&p, deadline, "must be greater than minReadySeconds"));
        }
    }
}

fn deployment_strategy(strategy: Option<&DeploymentStrategy>, path: &Path, errs: &mut Errors) {
    let default = DeploymentStrategy::default();
    let strategy = strategy.unwrap_or(&default);
    match strategy.type_.as_deref().unwrap_or("") {
        "Recreate" => {
            if strategy.rolling_update.is_some() {
                errs.push(FieldError::forbidden(
                    path.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match &strategy.rolling_update {
            None => errs
                .push(FieldError::required(path.child("rollingUpdate"), "this should be defaulted and never be nil")),
            Some(rolling) => {
                let p = path.child("rollingUpdate");
                let zero = IntOrString::Int(0);
                let unavailable = rolling.max_unavailable.as_ref().unwrap_or(&zero);
                let surge = rolling.max_surge.as_ref().unwrap_or(&zero);
                let u = int_or_percent(unavailable, &p.child("maxUnavailable"), errs);
                let s = int_or_percent(surge, &p.child("maxSurge"), errs);
                if u.0 == 0 && s.0 == 0 {
                    errs.push(FieldError::invalid(
                        p.child("maxUnavailable"),
                        json(unavailable),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                not_over_100_percent(unavailable, u, &p.child("maxUnavailable"), errs);
            }
        },
        _ => errs.push(FieldError::not_supported(path, json(strategy), &["Recreate", "RollingUpdate"])),
    }
}

/// apps/v1 selectors never change.
fn selector_immutable(old: &LabelSelector, new: &LabelSelector, errs: &mut Errors) {
    if old != new {
        errs.push(FieldError::immutable("spec.selector", meta::selector_json(new)));
    }
}

pub(crate) fn deployment_update(old: &Deployment, new: &Deployment, errs: &mut Errors) {
    if let (Some(o), Some(n)) = (&old.spec, &new.spec) {
        selector_immutable(&o.selector, &n.selector, errs);
    }
}

/// Upstream `ValidateReplicaSetSpec`.
pub(crate) fn replica_set(rs: &ReplicaSet, errs: &mut Errors) {
    let default_spec = ReplicaSetSpec::default();
    let spec = rs.spec.as_ref().unwrap_or(&default_spec);
    let path = Path::new("spec");
    non_negative(spec.replicas.unwrap_or(1), &path.child("replicas"), errs);
    non_negative(spec.min_ready_seconds.unwrap_or(0), &path.child("minReadySeconds"), errs);
    let has = spec.selector != LabelSelector::default();
    // Upstream's message names deployments here too.
    let parsed = selector(Some(&spec.selector).filter(|_| has), "deployment", errs);
    replica_set_template(spec.template.as_ref(), parsed.as_ref(), "ReplicaSet", errs);
}

/// Upstream `ValidateDaemonSetSpec`: a selector matching a template that restarts `Always`,
/// a known update strategy.
pub(crate) fn daemon_set(ds: &k8s_openapi::api::apps::v1::DaemonSet, errs: &mut Errors) {
    let default_spec = k8s_openapi::api::apps::v1::DaemonSetSpec::default();
    let spec = ds.spec.as_ref().unwrap_or(&default_spec);
    let path = Path::new("spec");
    non_negative(spec.min_ready_seconds.unwrap_or(0), &path.child("minReadySeconds"), errs);
    let has = spec.selector != LabelSelector::default();
    let parsed = selector(Some(&spec.selector).filter(|_| has), "daemonset", errs);
    replica_set_template(Some(&spec.template), parsed.as_ref(), "DaemonSet", errs);
    match spec.update_strategy.as_ref().and_then(|s| s.type_.as_deref()) {
        None | Some("RollingUpdate" | "OnDelete") => {}
        Some(other) => errs.push(FieldError::not_supported(
            path.child("updateStrategy").child("type"),
            other,
            &["OnDelete", "RollingUpdate"],
        )),
    }
}

/// Upstream `ValidateReplicationControllerSpec`: a non-empty selector that the template's labels
/// match, a template that restarts `Always`.
pub(crate) fn replication_controller(rc: &k8s_openapi::api::core::v1::ReplicationController, errs: &mut Errors) {
    let default_spec = k8s_openapi::api::core::v1::ReplicationControllerSpec::default();
    let spec = rc.spec.as_ref().unwrap_or(&default_spec);
    let path = Path::new("spec");
    non_negative(spec.replicas.unwrap_or(1), &path.child("replicas"), errs);
    let labels = spec.selector.clone().unwrap_or_default();
    if labels.is_empty() {
        errs.push(FieldError::required(path.child("selector"), ""));
        return;
    }
    let selector = LabelSelector { match_labels: Some(labels), ..Default::default() };
    let parsed = Selector::from_k8s(&selector).ok();
    replica_set_template(spec.template.as_ref(), parsed.as_ref(), "ReplicationController", errs);
}

pub(crate) fn daemon_set_update(
    old: &k8s_openapi::api::apps::v1::DaemonSet,
    new: &k8s_openapi::api::apps::v1::DaemonSet,
    errs: &mut Errors,
) {
    if let (Some(o), Some(n)) = (&old.spec, &new.spec) {
        selector_immutable(&o.selector, &n.selector, errs);
    }
}

pub(crate) fn replica_set_update(old: &ReplicaSet, new: &ReplicaSet, errs: &mut Errors) {
    if let (Some(o), Some(n)) = (&old.spec, &new.spec) {
        selector_immutable(&o.selector, &n.selector, errs);
    }
}

pub(crate) fn controller_revision(rev: &ControllerRevision, errs: &mut Errors) {
    if rev.data.is_none() {
        errs.push(FieldError::required("data", "data is mandatory"));
    }
    non_negative(rev.revision, &Path::new("revision"), errs);
}

pub(crate) fn controller_revision_update(old: &ControllerRevision, new: &ControllerRevision, errs: &mut Errors) {
    if old.data != new.data {
        errs.push(FieldError::immutable("data", json(&new.data)));
    }
}

/// Upstream `ValidateJob`: a selector matching the template (generated unless
/// `manualSelector`), a template that restarts `OnFailure` or `Never`, counts not negative,
/// `Indexed` with `completions`.
pub(crate) fn job(job: &k8s_openapi::api::batch::v1::Job, errs: &mut Errors) {
    let Some(spec) = &job.spec else {
        errs.push(FieldError::required("spec", ""));
        return;
    };
    let path = Path::new("spec");
    for (field, value) in [
        ("parallelism", spec.parallelism.map(i64::from)),
        ("completions", spec.completions.map(i64::from)),
        ("backoffLimit", spec.backoff_limit.map(i64::from)),
        ("ttlSecondsAfterFinished", spec.ttl_seconds_after_finished.map(i64::from)),
    ] {
        if let Some(v) = value {
            non_negative(v, &path.child(field), errs);
        }
    }
    if let Some(deadline) = spec.active_deadline_seconds
        && deadline <= 0
    {
        errs.push(FieldError::invalid(path.child("activeDeadlineSeconds"), deadline, "must be greater than 0"));
    }
    let parsed = selector(spec.selector.as_ref(), "job", errs);
    template_matches(parsed.as_ref(), &spec.template, errs);
    pod_template(&spec.template, &path.child("template"), &[], errs);
    let restart = spec.template.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("");
    if restart != "OnFailure" && restart != "Never" {
        errs.push(FieldError::not_supported("spec.template.spec.restartPolicy", restart, &["OnFailure", "Never"]));
    }
    match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => {}
        Some("Indexed") if spec.completions.is_none() => {
            errs.push(FieldError::required(path.child("completions"), "when completion mode is Indexed"))
        }
        Some("Indexed") => {}
        Some(other) => {
            errs.push(FieldError::not_supported(path.child("completionMode"), other, &["NonIndexed", "Indexed"]))
        }
    }
}

/// Upstream `ValidateJobUpdate`: the selector, the template (while the job runs), the
/// completion mode and (for `NonIndexed`) the completions are fixed.
pub(crate) fn job_update(
    old: &k8s_openapi::api::batch::v1::Job,
    new: &k8s_openapi::api::batch::v1::Job,
    errs: &mut Errors,
) {
    let (Some(o), Some(n)) = (&old.spec, &new.spec) else { return };
    if o.selector != n.selector {
        errs.push(FieldError::immutable("spec.selector", json(&n.selector)));
    }
    if o.template != n.template && o.suspend != Some(true) {
        errs.push(FieldError::immutable("spec.template", json(&n.template)));
    }
    if o.completion_mode != n.completion_mode {
        errs.push(FieldError::immutable("spec.completionMode", json(&n.completion_mode)));
    }
    if o.completions != n.completions && n.completion_mode.as_deref() != Some("Indexed") {
        errs.push(FieldError::immutable("spec.completions", json(&n.completions)));
    }
}

/// Upstream `ValidateCronJob`: a schedule that parses (and no `TZ=` in it), a known time
/// zone, a name short enough for its jobs' names (52), limits not negative, a job template
/// whose pods restart `OnFailure` or `Never`.
pub(crate) fn cron_job(cj: &k8s_openapi::api::batch::v1::CronJob, errs: &mut Errors) {
    let name = cj.metadata.name.as_deref().unwrap_or_default();
    if name.len() > 52 {
        errs.push(FieldError::invalid("metadata.name", name, "must be no more than 52 characters"));
    }
    let Some(spec) = &cj.spec else {
        errs.push(FieldError::required("spec", ""));
        return;
    };
    let path = Path::new("spec");
    if spec.schedule.is_empty() {
        errs.push(FieldError::required(path.child("schedule"), ""));
    } else if spec.schedule.contains("TZ") {
        errs.push(FieldError::invalid(
            path.child("schedule"),
            spec.schedule.as_str(),
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ));
    } else if let Err(e) = crate::cron::Schedule::parse(&spec.schedule) {
        errs.push(FieldError::invalid(path.child("schedule"), spec.schedule.as_str(), e));
    }
    if let Some(zone) = spec.time_zone.as_deref()
        && jiff::tz::TimeZone::get(zone).is_err()
    {
        errs.push(FieldError::invalid(path.child("timeZone"), zone, "unknown time zone"));
    }
    for (field, value) in [
        ("startingDeadlineSeconds", spec.starting_deadline_seconds),
        ("successfulJobsHistoryLimit", spec.successful_jobs_history_limit.map(i64::from)),
        ("failedJobsHistoryLimit", spec.failed_jobs_history_limit.map(i64::from)),
    ] {
        if let Some(v) = value {
            non_negative(v, &path.child(field), errs);
        }
    }
    match spec.concurrency_policy.as_deref() {
        None | Some("Allow" | "Forbid" | "Replace") => {}
        Some(other) => errs.push(FieldError::not_supported(
            path.child("concurrencyPolicy"),
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let template = spec.job_template.spec.as_ref().map(|s| &s.template);
    match template {
        Some(template) => {
            let template_path = path.child("jobTemplate").child("spec").child("template");
            pod_template(template, &template_path, &[], errs);
            let restart = template.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("");
            if restart != "OnFailure" && restart != "Never" {
                errs.push(FieldError::not_supported(
                    template_path.child("spec").child("restartPolicy"),
                    restart,
                    &["OnFailure", "Never"],
                ));
            }
        }
        None => errs.push(FieldError::required(path.child("jobTemplate").child("spec"), "")),
    }
}
