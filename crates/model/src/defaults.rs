//! Defaulting, as kube-apiserver's defaulters for core/v1, apps/v1, storage/v1 and discovery/v1
//! do it (`pkg/apis/*/v1/defaults.go` and the generated `zz_generated.defaults.go`): every field a
//! client may leave out and the server fills in, including inside pod templates and claim
//! templates.
//!
//! The object is decoded into its `k8s-openapi` type (a body that does not fit is a 400 naming
//! the field), defaulted there, and encoded back. The result is the object as upstream would
//! store it: unknown fields and `null`s are gone, and so is anything the decode alone would have
//! invented (a required field the client left out stays absent, so validation can say
//! "Required value" about it).

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::api::{apps, autoscaling, core, discovery, networking, policy, rbac, scheduling, storage};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::quantity::parse_quantity;
use crate::{ApiError, ResourceInfo, typed};

/// What defaulting learned about the body on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaulted {
    /// Fields the kind's schema does not declare (they are not in the defaulted object), found
    /// by the same decode, so strict field validation costs no second round trip.
    pub unknown_fields: Vec<String>,
}

/// Fill in defaults for an object of kind `info`, in place. Errors only when the object does
/// not decode into its kind's type (400 BadRequest).
pub fn apply_defaults(info: &ResourceInfo, obj: &mut Value) -> Result<Defaulted, ApiError> {
    match (info.group, info.kind) {
        ("", "Namespace") => edit(info, obj, namespace),
        ("", "Node") => edit(info, obj, node),
        ("", "Pod") => edit(info, obj, pod),
        ("", "Service") => edit(info, obj, service),
        ("", "Endpoints") => edit(info, obj, endpoints),
        ("", "PersistentVolumeClaim") => edit(info, obj, claim),
        ("", "PersistentVolume") => edit(info, obj, volume),
        ("", "ConfigMap") => edit(info, obj, |_: &mut core::v1::ConfigMap| Ok(())),
        ("", "Secret") => edit(info, obj, secret),
        ("", "ServiceAccount") => edit(info, obj, |_: &mut core::v1::ServiceAccount| Ok(())),
        ("", "Event") => edit(info, obj, |_: &mut core::v1::Event| Ok(())),
        ("apps", "StatefulSet") => edit(info, obj, stateful_set),
        ("apps", "Deployment") => edit(info, obj, deployment),
        ("apps", "ReplicaSet") => edit(info, obj, replica_set),
        ("batch", "Job") => edit(info, obj, job),
        ("apps", "DaemonSet") => edit(info, obj, daemon_set),
        ("", "ReplicationController") => edit(info, obj, replication_controller),
        ("", "ResourceQuota") => edit(info, obj, |_: &mut core::v1::ResourceQuota| Ok(())),
        ("", "LimitRange") => edit(info, obj, limit_range),
        ("batch", "CronJob") => edit(info, obj, cron_job),
        ("apps", "ControllerRevision") => edit(info, obj, |_: &mut apps::v1::ControllerRevision| Ok(())),
        ("storage.k8s.io", "StorageClass") => edit(info, obj, storage_class),
        ("discovery.k8s.io", "EndpointSlice") => edit(info, obj, endpoint_slice),
        ("coordination.k8s.io", "Lease") => edit(info, obj, |_: &mut k8s_openapi::api::coordination::v1::Lease| Ok(())),
        ("events.k8s.io", "Event") => edit(info, obj, |_: &mut k8s_openapi::api::events::v1::Event| Ok(())),
        ("rbac.authorization.k8s.io", "Role") => edit(info, obj, |_: &mut rbac::v1::Role| Ok(())),
        ("rbac.authorization.k8s.io", "ClusterRole") => edit(info, obj, |_: &mut rbac::v1::ClusterRole| Ok(())),
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            edit(info, obj, |b: &mut rbac::v1::RoleBinding| subjects(b.subjects.as_mut()))
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            edit(info, obj, |b: &mut rbac::v1::ClusterRoleBinding| subjects(b.subjects.as_mut()))
        }
        ("networking.k8s.io", "NetworkPolicy") => edit(info, obj, network_policy),
        ("networking.k8s.io", "Ingress") => edit(info, obj, |_: &mut networking::v1::Ingress| Ok(())),
        ("networking.k8s.io", "IngressClass") => edit(info, obj, |_: &mut networking::v1::IngressClass| Ok(())),
        ("scheduling.k8s.io", "PriorityClass") => edit(info, obj, |pc: &mut scheduling::v1::PriorityClass| {
            or_set(&mut pc.preemption_policy, "PreemptLowerPriority".to_string());
            Ok(())
        }),
        ("autoscaling", "HorizontalPodAutoscaler") => edit(info, obj, horizontal_pod_autoscaler),
        ("policy", "PodDisruptionBudget") => edit(info, obj, |_: &mut policy::v1::PodDisruptionBudget| Ok(())),
        ("apiregistration.k8s.io", "APIService") => {
            edit(info, obj, |_: &mut k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService| Ok(()))
        }
        _ => Ok(Defaulted::default()),
    }
}

/// `Always` for `:latest` or untagged images, else `IfNotPresent` (a digest without a tag counts
/// as pinned), as upstream's `SetDefaults_Container`.
pub fn image_pull_policy(image: &str) -> &'static str {
    if image.trim().is_empty() {
        // Upstream fails to parse the reference and so finds no `latest` tag.
        return "IfNotPresent";
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match (last.split_once(':'), digest) {
        (Some((_, "latest")), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

/// Why a defaulter could not finish: the decode-time message upstream gives (a bad quantity).
type Outcome = Result<(), String>;

/// Decode, default, encode, and drop what the decode alone made up.
fn edit<T: DeserializeOwned + Serialize>(
    info: &ResourceInfo,
    obj: &mut Value,
    defaulter: impl FnOnce(&mut T) -> Outcome,
) -> Result<Defaulted, ApiError> {
    let given = typed::without_nulls(info, obj);
    let mut object: T = typed::decode(info, &given)?;
    let decoded = typed::encode(&object)?;
    let unknown_fields = crate::schema::unknown_between(&given, &decoded);
    defaulter(&mut object).map_err(|detail| typed::decode_error(info, &detail))?;
    let mut out = typed::encode(&object)?;
    if let (Value::Object(g), Value::Object(d), Value::Object(o)) = (&given, &decoded, &mut out) {
        for (key, value) in o.iter_mut() {
            if let (Some(gv), Some(dv)) = (g.get(key), d.get(key)) {
                drop_invented(gv, dv, value);
            }
        }
        o.retain(|key, value| {
            matches!(key.as_str(), "apiVersion" | "kind") || g.contains_key(key) || d.get(key) != Some(value)
        });
    }
    *obj = out;
    Ok(Defaulted { unknown_fields })
}

/// Remove from `out` the members absent from `given` that the decode alone produced (`decoded`
/// has them with the same value): required fields a typed struct cannot leave out.
fn drop_invented(given: &Value, decoded: &Value, out: &mut Value) {
    match (given, decoded, out) {
        (Value::Object(g), Value::Object(d), Value::Object(o)) => {
            o.retain(|key, value| g.contains_key(key) || d.get(key) != Some(value));
            for (key, value) in o.iter_mut() {
                if let (Some(gv), Some(dv)) = (g.get(key), d.get(key)) {
                    drop_invented(gv, dv, value);
                }
            }
        }
        (Value::Array(g), Value::Array(d), Value::Array(o)) if g.len() == o.len() && d.len() == o.len() => {
            for ((gv, dv), ov) in g.iter().zip(d).zip(o.iter_mut()) {
                drop_invented(gv, dv, ov);
            }
        }
        _ => {}
    }
}

/// Set an unset optional field.
fn or_set<T>(field: &mut Option<T>, value: T) {
    if field.is_none() {
        *field = Some(value);
    }
}

/// Set an unset or empty string field.
fn or_set_str(field: &mut Option<String>, value: &str) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value.to_string());
    }
}

/// Upstream `SetDefaults_ResourceList`: a well-formed quantity, rounded up to milli-units.
fn resource_list(list: &mut Option<BTreeMap<String, Q>>) -> Outcome {
    for value in list.iter_mut().flat_map(|l| l.values_mut()) {
        let q = parse_quantity(&value.0).map_err(|e| e.to_string())?;
        if q.has_sub_milli_precision() {
            value.0 = q.round_up_to_millis().to_string();
        }
    }
    Ok(())
}

fn namespace(ns: &mut core::v1::Namespace) -> Outcome {
    if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata.labels.get_or_insert_default().insert("kubernetes.io/metadata.name".into(), name);
    }
    or_set_str(&mut ns.status.get_or_insert_default().phase, "Active");
    Ok(())
}

fn node(node: &mut core::v1::Node) -> Outcome {
    if let Some(status) = node.status.as_mut() {
        if status.allocatable.is_none() && status.capacity.is_some() {
            status.allocatable = status.capacity.clone();
        }
        resource_list(&mut status.capacity)?;
        resource_list(&mut status.allocatable)?;
    }
    Ok(())
}

/// `SetDefaults_Pod`: what only a Pod (not a template) gets, then the pod spec defaults.
fn pod(pod: &mut core::v1::Pod) -> Outcome {
    let spec = pod.spec.get_or_insert_default();
    let all = spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten());
    for c in all {
        // Requests default to limits.
        let Some(resources) = c.resources.as_mut() else { continue };
        let Some(limits) = resources.limits.clone().filter(|l| !l.is_empty()) else { continue };
        let requests = resources.requests.get_or_insert_default();
        for (name, limit) in limits {
            requests.entry(name).or_insert(limit);
        }
    }
    or_set(&mut spec.enable_service_links, true);
    if spec.host_network == Some(true) {
        let all = spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten());
        for port in all.flat_map(|c| c.ports.iter_mut().flatten()) {
            if port.host_port.unwrap_or(0) == 0 {
                port.host_port = Some(port.container_port);
            }
        }
    }
    pod_spec(spec)?;
    resource_list(&mut spec.overhead)
}

/// Defaults of a pod template (inside a workload).
fn template(template: &mut core::v1::PodTemplateSpec) -> Outcome {
    let spec = template.spec.get_or_insert_default();
    pod_spec(spec)?;
    resource_list(&mut spec.overhead)
}

/// `SetDefaults_Container` and what the generated defaulter visits inside a container; works on
/// `Container` and `EphemeralContainer` alike (same field names, different types).
macro_rules! container_defaults {
    ($c:expr) => {{
        let c = $c;
        or_set_str(&mut c.image_pull_policy, image_pull_policy(c.image.as_deref().unwrap_or("")));
        or_set_str(&mut c.termination_message_path, "/dev/termination-log");
        or_set_str(&mut c.termination_message_policy, "File");
        container_parts(
            &mut c.ports,
            &mut c.env,
            &mut c.resources,
            [&mut c.liveness_probe, &mut c.readiness_probe, &mut c.startup_probe],
        )?;
        lifecycle(&mut c.lifecycle);
    }};
}

/// `SetDefaults_PodSpec` and everything nested in a pod spec.
fn pod_spec(spec: &mut core::v1::PodSpec) -> Outcome {
    or_set_str(&mut spec.dns_policy, "ClusterFirst");
    or_set_str(&mut spec.restart_policy, "Always");
    or_set(&mut spec.security_context, Default::default());
    or_set(&mut spec.termination_grace_period_seconds, 30);
    or_set_str(&mut spec.scheduler_name, "default-scheduler");
    for v in spec.volumes.iter_mut().flatten() {
        volume_source(v)?;
    }
    for c in spec.containers.iter_mut().chain(spec.init_containers.iter_mut().flatten()) {
        container_defaults!(c);
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        container_defaults!(c);
    }
    Ok(())
}

fn container_parts(
    ports: &mut Option<Vec<core::v1::ContainerPort>>,
    env: &mut Option<Vec<core::v1::EnvVar>>,
    resources: &mut Option<core::v1::ResourceRequirements>,
    probes: [&mut Option<core::v1::Probe>; 3],
) -> Outcome {
    for p in ports.iter_mut().flatten() {
        or_set_str(&mut p.protocol, "TCP");
    }
    for e in env.iter_mut().flatten() {
        if let Some(field_ref) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            or_set_str(&mut field_ref.api_version, "v1");
        }
    }
    if let Some(r) = resources.as_mut() {
        resource_list(&mut r.limits)?;
        resource_list(&mut r.requests)?;
    }
    for probe in probes.into_iter().flatten() {
        // `SetDefaults_Probe` replaces zeros as well as absent values.
        for (field, value) in [
            (&mut probe.timeout_seconds, 1),
            (&mut probe.period_seconds, 10),
            (&mut probe.success_threshold, 1),
            (&mut probe.failure_threshold, 3),
        ] {
            if field.unwrap_or(0) == 0 {
                *field = Some(value);
            }
        }
        if let Some(http) = probe.http_get.as_mut() {
            http_get(http);
        }
        if let Some(grpc) = probe.grpc.as_mut() {
            or_set(&mut grpc.service, String::new());
        }
    }
    Ok(())
}

fn http_get(http: &mut core::v1::HTTPGetAction) {
    or_set_str(&mut http.path, "/");
    or_set_str(&mut http.scheme, "HTTP");
}

fn lifecycle(lifecycle: &mut Option<core::v1::Lifecycle>) {
    let Some(l) = lifecycle.as_mut() else { return };
    for handler in [&mut l.post_start, &mut l.pre_stop].into_iter().flatten() {
        if let Some(http) = handler.http_get.as_mut() {
            http_get(http);
        }
    }
}

fn field_selector(field_ref: &mut Option<core::v1::ObjectFieldSelector>) {
    if let Some(f) = field_ref.as_mut() {
        or_set_str(&mut f.api_version, "v1");
    }
}

/// `SetDefaults_Volume` and the per-source defaulters.
fn volume_source(v: &mut core::v1::Volume) -> Outcome {
    let has_source = v.aws_elastic_block_store.is_some()
        || v.azure_disk.is_some()
        || v.azure_file.is_some()
        || v.cephfs.is_some()
        || v.cinder.is_some()
        || v.config_map.is_some()
        || v.csi.is_some()
        || v.downward_api.is_some()
        || v.empty_dir.is_some()
        || v.ephemeral.is_some()
        || v.fc.is_some()
        || v.flex_volume.is_some()
        || v.flocker.is_some()
        || v.gce_persistent_disk.is_some()
        || v.git_repo.is_some()
        || v.glusterfs.is_some()
        || v.host_path.is_some()
        || v.image.is_some()
        || v.iscsi.is_some()
        || v.nfs.is_some()
        || v.persistent_volume_claim.is_some()
        || v.photon_persistent_disk.is_some()
        || v.portworx_volume.is_some()
        || v.projected.is_some()
        || v.quobyte.is_some()
        || v.rbd.is_some()
        || v.scale_io.is_some()
        || v.secret.is_some()
        || v.storageos.is_some()
        || v.vsphere_volume.is_some();
    if !has_source {
        v.empty_dir = Some(Default::default());
    }
    if let Some(image) = v.image.as_mut() {
        or_set_str(&mut image.pull_policy, image_pull_policy(image.reference.as_deref().unwrap_or("")));
    }
    if let Some(limit) = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref()) {
        parse_quantity(&limit.0).map_err(|e| e.to_string())?;
    }
    if let Some(h) = v.host_path.as_mut() {
        or_set(&mut h.type_, String::new());
    }
    if let Some(s) = v.secret.as_mut() {
        or_set(&mut s.default_mode, 0o644);
    }
    if let Some(c) = v.config_map.as_mut() {
        or_set(&mut c.default_mode, 0o644);
    }
    if let Some(d) = v.downward_api.as_mut() {
        or_set(&mut d.default_mode, 0o644);
        for item in d.items.iter_mut().flatten() {
            field_selector(&mut item.field_ref);
        }
    }
    if let Some(p) = v.projected.as_mut() {
        or_set(&mut p.default_mode, 0o644);
        for source in p.sources.iter_mut().flatten() {
            if let Some(d) = source.downward_api.as_mut() {
                for item in d.items.iter_mut().flatten() {
                    field_selector(&mut item.field_ref);
                }
            }
            if let Some(token) = source.service_account_token.as_mut() {
                or_set(&mut token.expiration_seconds, 3600);
            }
        }
    }
    match v.ephemeral.as_mut().and_then(|e| e.volume_claim_template.as_mut()) {
        Some(template) => claim_spec(&mut template.spec),
        None => Ok(()),
    }
}

fn service(svc: &mut core::v1::Service) -> Outcome {
    let spec = svc.spec.get_or_insert_default();
    or_set_str(&mut spec.session_affinity, "None");
    match spec.session_affinity.as_deref() {
        Some("None") => spec.session_affinity_config = None,
        Some("ClientIP") => {
            let timeout = spec.session_affinity_config.as_ref().and_then(|c| c.client_ip.as_ref()?.timeout_seconds);
            if timeout.is_none() {
                spec.session_affinity_config = Some(core::v1::SessionAffinityConfig {
                    client_ip: Some(core::v1::ClientIPConfig { timeout_seconds: Some(10800) }),
                });
            }
        }
        _ => {}
    }
    or_set_str(&mut spec.type_, "ClusterIP");
    for p in spec.ports.iter_mut().flatten() {
        or_set_str(&mut p.protocol, "TCP");
        let unset = match &p.target_port {
            None => true,
            Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            Some(IntOrString::Int(_)) => false,
        };
        if unset {
            p.target_port = Some(IntOrString::Int(p.port));
        }
    }
    let kind = spec.type_.clone().unwrap_or_default();
    let externally_accessible = kind == "LoadBalancer"
        || kind == "NodePort"
        || (kind == "ClusterIP" && spec.external_ips.as_ref().is_some_and(|ips| !ips.is_empty()));
    if externally_accessible {
        or_set_str(&mut spec.external_traffic_policy, "Cluster");
    }
    if matches!(kind.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        or_set(&mut spec.internal_traffic_policy, "Cluster".to_string());
    }
    if kind == "LoadBalancer" {
        or_set(&mut spec.allocate_load_balancer_node_ports, true);
        let ingress = svc.status.as_mut().and_then(|s| s.load_balancer.as_mut()).and_then(|lb| lb.ingress.as_mut());
        for ing in ingress.into_iter().flatten() {
            if ing.ip.as_deref().is_some_and(|ip| !ip.is_empty()) {
                or_set(&mut ing.ip_mode, "VIP".to_string());
            }
        }
    }
    Ok(())
}

fn endpoints(ep: &mut core::v1::Endpoints) -> Outcome {
    for port in ep.subsets.iter_mut().flatten().flat_map(|s| s.ports.iter_mut().flatten()) {
        or_set_str(&mut port.protocol, "TCP");
    }
    Ok(())
}

fn claim_spec(spec: &mut core::v1::PersistentVolumeClaimSpec) -> Outcome {
    or_set(&mut spec.volume_mode, "Filesystem".to_string());
    if let Some(r) = spec.resources.as_mut() {
        resource_list(&mut r.limits)?;
        resource_list(&mut r.requests)?;
    }
    Ok(())
}

/// `SetDefaults_PersistentVolumeClaim` plus its spec: claims and claim templates.
fn claim(pvc: &mut core::v1::PersistentVolumeClaim) -> Outcome {
    let status = pvc.status.get_or_insert_default();
    or_set_str(&mut status.phase, "Pending");
    resource_list(&mut status.capacity)?;
    resource_list(&mut status.allocated_resources)?;
    claim_spec(pvc.spec.get_or_insert_default())
}

fn volume(pv: &mut core::v1::PersistentVolume) -> Outcome {
    or_set_str(&mut pv.status.get_or_insert_default().phase, "Pending");
    let spec = pv.spec.get_or_insert_default();
    or_set_str(&mut spec.persistent_volume_reclaim_policy, "Retain");
    or_set(&mut spec.volume_mode, "Filesystem".to_string());
    resource_list(&mut spec.capacity)?;
    if let Some(h) = spec.host_path.as_mut() {
        or_set(&mut h.type_, String::new());
    }
    Ok(())
}

/// `SetDefaults_Secret`, and the v1 decode rule that folds `stringData` into `data`.
fn secret(secret: &mut core::v1::Secret) -> Outcome {
    or_set_str(&mut secret.type_, "Opaque");
    if let Some(strings) = secret.string_data.take() {
        let data = secret.data.get_or_insert_default();
        for (key, value) in strings {
            data.insert(key, k8s_openapi::ByteString(value.into_bytes()));
        }
    }
    Ok(())
}

fn stateful_set(sts: &mut apps::v1::StatefulSet) -> Outcome {
    let spec = sts.spec.get_or_insert_default();
    or_set_str(&mut spec.pod_management_policy, "OrderedReady");
    let strategy = spec.update_strategy.get_or_insert_default();
    if strategy.type_.as_deref().is_none_or(str::is_empty) {
        strategy.type_ = Some("RollingUpdate".into());
        or_set(&mut strategy.rolling_update, Default::default());
    }
    if strategy.type_.as_deref() == Some("RollingUpdate")
        && let Some(rolling) = strategy.rolling_update.as_mut()
    {
        or_set(&mut rolling.partition, 0);
    }
    let retention = spec.persistent_volume_claim_retention_policy.get_or_insert_default();
    or_set_str(&mut retention.when_deleted, "Retain");
    or_set_str(&mut retention.when_scaled, "Retain");
    or_set(&mut spec.replicas, 1);
    or_set(&mut spec.revision_history_limit, 10);
    template(&mut spec.template)?;
    for claim_template in spec.volume_claim_templates.iter_mut().flatten() {
        claim(claim_template)?;
    }
    Ok(())
}

fn deployment(d: &mut apps::v1::Deployment) -> Outcome {
    let spec = d.spec.get_or_insert_default();
    or_set(&mut spec.replicas, 1);
    let strategy = spec.strategy.get_or_insert_default();
    or_set_str(&mut strategy.type_, "RollingUpdate");
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let rolling = strategy.rolling_update.get_or_insert_default();
        or_set(&mut rolling.max_unavailable, IntOrString::String("25%".into()));
        or_set(&mut rolling.max_surge, IntOrString::String("25%".into()));
    }
    or_set(&mut spec.revision_history_limit, 10);
    or_set(&mut spec.progress_deadline_seconds, 600);
    template(&mut spec.template)
}

/// Upstream `SetDefaults_Job`: one completion and one pod at a time unless told, six retries,
/// `NonIndexed`, not suspended, replacements once a pod has terminated or failed; the
/// template's defaults. (The selector and its labels are generated at create, in the strategy,
/// from the Job's uid.)
fn job(job: &mut k8s_openapi::api::batch::v1::Job) -> Outcome {
    let spec = job.spec.get_or_insert_default();
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    or_set(&mut spec.parallelism, 1);
    if spec.backoff_limit_per_index.is_some() {
        or_set(&mut spec.backoff_limit, i32::MAX);
    }
    or_set(&mut spec.backoff_limit, 6);
    or_set(&mut spec.completion_mode, "NonIndexed".to_string());
    or_set(&mut spec.suspend, false);
    or_set(&mut spec.manual_selector, false);
    or_set(&mut spec.pod_replacement_policy, "TerminatingOrFailed".to_string());
    template(&mut spec.template)
}

/// Upstream `SetDefaults_CronJob`: `Allow`, not suspended, three successful and one failed job
/// kept; the job template gets a Job's defaults.
fn cron_job(cj: &mut k8s_openapi::api::batch::v1::CronJob) -> Outcome {
    let spec = cj.spec.get_or_insert_default();
    or_set(&mut spec.concurrency_policy, "Allow".to_string());
    or_set(&mut spec.suspend, false);
    or_set(&mut spec.successful_jobs_history_limit, 3);
    or_set(&mut spec.failed_jobs_history_limit, 1);
    let mut job = k8s_openapi::api::batch::v1::Job { spec: spec.job_template.spec.take(), ..Default::default() };
    self::job(&mut job)?;
    spec.job_template.spec = job.spec;
    Ok(())
}

/// Upstream `SetDefaults_DaemonSet`: a rolling update one node at a time (no surge), ten
/// revisions kept; the template's defaults.
fn daemon_set(ds: &mut apps::v1::DaemonSet) -> Outcome {
    let spec = ds.spec.get_or_insert_default();
    let strategy = spec.update_strategy.get_or_insert_default();
    or_set(&mut strategy.type_, "RollingUpdate".to_string());
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let rolling = strategy.rolling_update.get_or_insert_default();
        or_set(&mut rolling.max_unavailable, IntOrString::Int(1));
        or_set(&mut rolling.max_surge, IntOrString::Int(0));
    }
    or_set(&mut spec.revision_history_limit, 10);
    template(&mut spec.template)
}

/// Upstream `SetDefaults_LimitRangeItem`: for containers, the default limit is the max and the
/// default request the default limit (else the min), where not given.
fn limit_range(range: &mut core::v1::LimitRange) -> Outcome {
    for item in range.spec.iter_mut().flat_map(|s| s.limits.iter_mut()) {
        if item.type_ != "Container" {
            continue;
        }
        let mut default = item.default.take().unwrap_or_default();
        for (k, v) in item.max.iter().flatten() {
            default.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let mut request = item.default_request.take().unwrap_or_default();
        for (k, v) in default.iter().chain(item.min.iter().flatten()) {
            request.entry(k.clone()).or_insert_with(|| v.clone());
        }
        item.default = Some(default).filter(|d| !d.is_empty());
        item.default_request = Some(request).filter(|d| !d.is_empty());
    }
    Ok(())
}

/// Upstream `SetDefaults_ReplicationController`: one replica; the selector and the labels
/// default to the template's labels.
fn replication_controller(rc: &mut core::v1::ReplicationController) -> Outcome {
    let template_labels = rc
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone());
    if rc.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
        rc.metadata.labels = template_labels.clone();
    }
    let spec = rc.spec.get_or_insert_default();
    if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
        spec.selector = template_labels;
    }
    or_set(&mut spec.replicas, 1);
    match spec.template.as_mut() {
        Some(t) => template(t),
        None => Ok(()),
    }
}

fn replica_set(rs: &mut apps::v1::ReplicaSet) -> Outcome {
    let spec = rs.spec.get_or_insert_default();
    or_set(&mut spec.replicas, 1);
    template(spec.template.get_or_insert_default())
}

/// Upstream `SetDefaults_Subject`: users and groups are RBAC subjects; service accounts are
/// core, whose empty group is not written.
fn subjects(subjects: Option<&mut Vec<rbac::v1::Subject>>) -> Outcome {
    for s in subjects.into_iter().flatten() {
        if s.api_group.is_none() && (s.kind == "User" || s.kind == "Group") {
            s.api_group = Some("rbac.authorization.k8s.io".to_string());
        }
    }
    Ok(())
}

/// Upstream `SetDefaults_NetworkPolicy`: `Ingress` in `policyTypes` always, `Egress` when there
/// are egress rules; ports default to TCP.
fn network_policy(np: &mut networking::v1::NetworkPolicy) -> Outcome {
    let Some(spec) = np.spec.as_mut() else { return Ok(()) };
    let ingress = spec.ingress.iter_mut().flatten().flat_map(|r| r.ports.iter_mut().flatten());
    let egress = spec.egress.iter_mut().flatten().flat_map(|r| r.ports.iter_mut().flatten());
    for port in ingress.chain(egress) {
        or_set(&mut port.protocol, "TCP".to_string());
    }
    if spec.policy_types.as_ref().is_none_or(Vec::is_empty) {
        let mut types = vec!["Ingress".to_string()];
        if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
            types.push("Egress".to_string());
        }
        spec.policy_types = Some(types);
    }
    Ok(())
}

/// Upstream `SetDefaults_HorizontalPodAutoscaler` (v2): at least one replica, and 80 % CPU
/// utilisation when no metric is given.
fn horizontal_pod_autoscaler(hpa: &mut autoscaling::v2::HorizontalPodAutoscaler) -> Outcome {
    let Some(spec) = hpa.spec.as_mut() else { return Ok(()) };
    or_set(&mut spec.min_replicas, 1);
    if spec.metrics.as_ref().is_none_or(Vec::is_empty) {
        spec.metrics = Some(vec![autoscaling::v2::MetricSpec {
            type_: "Resource".into(),
            resource: Some(autoscaling::v2::ResourceMetricSource {
                name: "cpu".into(),
                target: autoscaling::v2::MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(80),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }]);
    }
    Ok(())
}

fn storage_class(sc: &mut storage::v1::StorageClass) -> Outcome {
    or_set(&mut sc.reclaim_policy, "Delete".to_string());
    or_set(&mut sc.volume_binding_mode, "Immediate".to_string());
    Ok(())
}

fn endpoint_slice(slice: &mut discovery::v1::EndpointSlice) -> Outcome {
    for port in slice.ports.iter_mut().flatten() {
        or_set(&mut port.name, String::new());
        or_set(&mut port.protocol, "TCP".to_string());
    }
    Ok(())
}
