//! Pod spec rules, shared by Pods and every pod template (upstream `ValidatePodSpec`,
//! `ValidatePodTemplateSpec`), and what a Pod update may change (`ValidatePodUpdate`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, HTTPGetAction, Lifecycle, LifecycleHandler, Pod, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as Q;

use super::meta::{self, check, dns1123_label_errors, dns1123_subdomain_errors, qualified_name_errors};
use super::{
    Errors, Path, json, non_negative, not_found, optional_one_of, port_name_errors, port_num, port_num_or_name,
    required_one_of,
};
use crate::FieldError;
use crate::quantity::parse_quantity;

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const MESSAGE_POLICIES: &[&str] = &["File", "FallbackToLogsOnError"];
const HOST_PATH_TYPES: &[&str] =
    &["", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket"];
const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const FILE_MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";
const UPDATABLE_POD_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Where a pod spec sits.
#[derive(Clone, Copy)]
pub(crate) struct Context<'a> {
    /// A Pod rather than a template: a few rules are stricter.
    pub is_pod: bool,
    /// Volume names supplied from outside the spec (a StatefulSet's claim templates).
    pub claim_volumes: &'a [String],
}

/// A Pod on create or update (`validatePodMetadataAndSpec` plus `ValidatePodCreate`'s rules).
pub(crate) fn pod(pod: &Pod, errs: &mut Errors) {
    let spec_path = Path::new("spec");
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    pod_spec(spec, &spec_path, Context { is_pod: true, claim_volumes: &[] }, errs);
    if spec.ephemeral_containers.as_ref().is_some_and(|e| !e.is_empty()) {
        errs.push(FieldError::forbidden(spec_path.child("ephemeralContainers"), "cannot be set on create"));
    }
    if spec.node_name.as_deref().is_some_and(|n| !n.is_empty())
        && spec.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty())
    {
        errs.push(FieldError::forbidden(
            spec_path.child("nodeName"),
            "cannot be set until all schedulingGates have been cleared",
        ));
    }
}

/// Upstream `ValidatePodTemplateSpec` at `path` (`spec.template`). Note upstream reports the
/// template's labels at `spec.template.labels`, not `…metadata.labels`.
pub(crate) fn pod_template(template: &PodTemplateSpec, path: &Path, claim_volumes: &[String], errs: &mut Errors) {
    let metadata = template.metadata.as_ref();
    meta::labels(metadata.and_then(|m| m.labels.as_ref()), &path.child("labels"), errs);
    meta::annotations(metadata.and_then(|m| m.annotations.as_ref()), &path.child("annotations"), errs);
    let default_spec = PodSpec::default();
    let spec = template.spec.as_ref().unwrap_or(&default_spec);
    pod_spec(spec, &path.child("spec"), Context { is_pod: false, claim_volumes }, errs);
    if spec.ephemeral_containers.as_ref().is_some_and(|e| !e.is_empty()) {
        errs.push(FieldError::forbidden(
            path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
}

/// Upstream `ValidatePodSpec`.
pub(crate) fn pod_spec(spec: &PodSpec, path: &Path, ctx: Context<'_>, errs: &mut Errors) {
    if spec.termination_grace_period_seconds.is_none() {
        errs.push(FieldError::required(path.child("terminationGracePeriodSeconds"), ""));
    }
    let grace = spec.termination_grace_period_seconds;
    let mut volumes = volumes(spec.volumes.as_deref().unwrap_or(&[]), &path.child("volumes"), errs);
    volumes.extend(ctx.claim_volumes.iter().cloned());
    containers(&spec.containers, &volumes, grace, &path.child("containers"), ctx, errs);
    init_containers(spec, &volumes, grace, &path.child("initContainers"), ctx, errs);
    for (i, c) in spec.ephemeral_containers.iter().flatten().enumerate() {
        let p = path.child("ephemeralContainers").index(i);
        name_and_image(&c.name, c.image.as_deref(), &p, ctx, errs);
    }
    if spec.host_network == Some(true) {
        for (i, c) in spec.containers.iter().enumerate() {
            for (j, port) in c.ports.iter().flatten().enumerate() {
                let host_port = port.host_port.unwrap_or(0);
                if (ctx.is_pod || host_port != 0) && host_port != port.container_port {
                    errs.push(FieldError::invalid(
                        path.child("containers").index(i).child("ports").index(j).child("hostPort"),
                        host_port,
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    required_one_of(spec.restart_policy.as_deref(), &path.child("restartPolicy"), RESTART_POLICIES, errs);
    required_one_of(spec.dns_policy.as_deref(), &path.child("dnsPolicy"), DNS_POLICIES, errs);
    meta::labels(spec.node_selector.as_ref(), &path.child("nodeSelector"), errs);
    dns_config(spec, &path.child("dnsConfig"), errs);
    for (i, gate) in spec.scheduling_gates.iter().flatten().enumerate() {
        check(&gate.name, &path.child("schedulingGates").index(i), errs, qualified_name_errors);
    }
    for (field, value) in [
        ("serviceAccountName", &spec.service_account_name),
        ("nodeName", &spec.node_name),
        ("priorityClassName", &spec.priority_class_name),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            check(v, &path.child(field), errs, dns1123_subdomain_errors);
        }
    }
    if let Some(deadline) = spec.active_deadline_seconds
        && !(1..=i64::from(i32::MAX)).contains(&deadline)
    {
        errs.push(FieldError::invalid(
            path.child("activeDeadlineSeconds"),
            deadline,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            check(v, &path.child(field), errs, dns1123_label_errors);
        }
    }
    tolerations(spec.tolerations.as_deref().unwrap_or(&[]), &path.child("tolerations"), errs);
    optional_one_of(
        spec.preemption_policy.as_deref(),
        &path.child("preemptionPolicy"),
        &["Never", "PreemptLowerPriority"],
        errs,
    );
    if let Some(os) = &spec.os {
        optional_one_of(Some(os.name.as_str()), &path.child("os").child("name"), &["linux", "windows"], errs);
    }
}

/// Upstream `ValidateVolumes`: the names of the volumes that are valid.
fn volumes(list: &[Volume], path: &Path, errs: &mut Errors) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, v) in list.iter().enumerate() {
        let p = path.index(i);
        let mut own = Vec::new();
        volume_source(v, &p, &mut own);
        if v.name.is_empty() {
            own.push(FieldError::required(p.child("name"), ""));
        } else {
            check(&v.name, &p.child("name"), &mut own, dns1123_label_errors);
        }
        if names.contains(&v.name) {
            own.push(FieldError::duplicate(p.child("name"), v.name.as_str()));
        }
        if own.is_empty() {
            names.insert(v.name.clone());
        }
        errs.extend(own);
    }
    names
}

/// Exactly one source, and the basic rules of the common ones.
fn volume_source(v: &Volume, path: &Path, errs: &mut Errors) {
    let sources = [
        ("emptyDir", v.empty_dir.is_some()),
        ("hostPath", v.host_path.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("secret", v.secret.is_some()),
        ("nfs", v.nfs.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("rbd", v.rbd.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("cinder", v.cinder.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("flocker", v.flocker.is_some()),
        ("downwardAPI", v.downward_api.is_some()),
        ("fc", v.fc.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("projected", v.projected.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("configMap", v.config_map.is_some()),
        ("storageos", v.storageos.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("image", v.image.is_some()),
    ];
    let mut count = 0;
    for (name, present) in sources {
        if !present {
            continue;
        }
        if count > 0 {
            errs.push(FieldError::forbidden(path.child(name), "may not specify more than 1 volume type"));
        }
        count += 1;
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    }
    let mode = |m: Option<i32>, p: Path, errs: &mut Errors| {
        if let Some(m) = m
            && !(0..=0o777).contains(&m)
        {
            errs.push(FieldError::invalid(p, m, FILE_MODE_MSG));
        }
    };
    if let Some(h) = &v.host_path {
        if h.path.is_empty() {
            errs.push(FieldError::required(path.child("hostPath").child("path"), ""));
        }
        optional_one_of(h.type_.as_deref(), &path.child("hostPath").child("type"), HOST_PATH_TYPES, errs);
    }
    if let Some(e) = &v.empty_dir
        && let Some(limit) = &e.size_limit
        && parse_quantity(&limit.0).is_ok_and(|q| q.is_negative())
    {
        errs.push(FieldError::forbidden(
            path.child("emptyDir").child("sizeLimit"),
            "SizeLimit field must be a valid resource quantity",
        ));
    }
    if let Some(s) = &v.secret {
        if s.secret_name.as_deref().unwrap_or("").is_empty() {
            errs.push(FieldError::required(path.child("secret").child("secretName"), ""));
        }
        mode(s.default_mode, path.child("secret").child("defaultMode"), errs);
    }
    if let Some(c) = &v.config_map {
        if c.name.is_empty() {
            errs.push(FieldError::required(path.child("configMap").child("name"), ""));
        }
        mode(c.default_mode, path.child("configMap").child("defaultMode"), errs);
    }
    if let Some(d) = &v.downward_api {
        mode(d.default_mode, path.child("downwardAPI").child("defaultMode"), errs);
    }
    if let Some(p) = &v.projected {
        mode(p.default_mode, path.child("projected").child("defaultMode"), errs);
    }
    if let Some(c) = &v.persistent_volume_claim
        && c.claim_name.is_empty()
    {
        errs.push(FieldError::required(path.child("persistentVolumeClaim").child("claimName"), ""));
    }
    if let Some(n) = &v.nfs {
        let p = path.child("nfs");
        if n.server.is_empty() {
            errs.push(FieldError::required(p.child("server"), ""));
        }
        if n.path.is_empty() {
            errs.push(FieldError::required(p.child("path"), ""));
        } else if !n.path.starts_with('/') {
            errs.push(FieldError::invalid(p.child("path"), n.path.as_str(), "must be an absolute path"));
        }
    }
    if let Some(c) = &v.csi
        && c.driver.is_empty()
    {
        errs.push(FieldError::required(path.child("csi").child("driver"), ""));
    }
}

/// Upstream `validateContainers`.
fn containers(
    list: &[Container],
    volumes: &BTreeSet<String>,
    grace: Option<i64>,
    path: &Path,
    ctx: Context<'_>,
    errs: &mut Errors,
) {
    if list.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    let mut names = BTreeSet::new();
    for (i, c) in list.iter().enumerate() {
        let p = path.index(i);
        container_common(c, volumes, &p, ctx, errs);
        if !names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(p.child("name"), c.name.as_str()));
        }
        if let Some(l) = &c.lifecycle {
            lifecycle(l, grace, &p.child("lifecycle"), errs);
        }
        probes(c, &p, errs);
        if c.restart_policy.is_some() {
            errs.push(FieldError::forbidden(p.child("restartPolicy"), "may not be set for non-init containers"));
        }
    }
    host_port_conflicts(list, path, errs);
}

/// Upstream `validateInitContainers`.
fn init_containers(
    spec: &PodSpec,
    volumes: &BTreeSet<String>,
    grace: Option<i64>,
    path: &Path,
    ctx: Context<'_>,
    errs: &mut Errors,
) {
    let mut names: BTreeSet<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let p = path.index(i);
        container_common(c, volumes, &p, ctx, errs);
        let restartable = c.restart_policy.as_deref() == Some("Always");
        if let Some(policy) = c.restart_policy.as_deref() {
            optional_one_of(Some(policy), &p.child("restartPolicy"), &["Always"], errs);
        }
        if names.contains(c.name.as_str()) {
            errs.push(FieldError::duplicate(p.child("name"), c.name.as_str()));
        } else if !c.name.is_empty() {
            names.insert(c.name.as_str());
        }
        host_port_conflicts(std::slice::from_ref(c), path, errs);
        if restartable {
            if let Some(l) = &c.lifecycle {
                lifecycle(l, grace, &p.child("lifecycle"), errs);
            }
            probes(c, &p, errs);
        } else {
            for (field, set) in [
                ("lifecycle", c.lifecycle.is_some()),
                ("livenessProbe", c.liveness_probe.is_some()),
                ("readinessProbe", c.readiness_probe.is_some()),
                ("startupProbe", c.startup_probe.is_some()),
            ] {
                if set {
                    errs.push(FieldError::forbidden(
                        p.child(field),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
}

fn name_and_image(name: &str, image: Option<&str>, path: &Path, ctx: Context<'_>, errs: &mut Errors) {
    if name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else {
        check(name, &path.child("name"), errs, dns1123_label_errors);
    }
    let image = image.unwrap_or("");
    if image.is_empty() {
        errs.push(FieldError::required(path.child("image"), ""));
    } else if ctx.is_pod && image.trim() != image {
        errs.push(FieldError::invalid(path.child("image"), image, "must not have leading or trailing whitespace"));
    }
}

/// Upstream `validateContainerCommon`.
fn container_common(c: &Container, volumes: &BTreeSet<String>, path: &Path, ctx: Context<'_>, errs: &mut Errors) {
    name_and_image(&c.name, c.image.as_deref(), path, ctx, errs);
    required_one_of(
        c.termination_message_policy.as_deref(),
        &path.child("terminationMessagePolicy"),
        MESSAGE_POLICIES,
        errs,
    );
    ports(c.ports.as_deref().unwrap_or(&[]), &path.child("ports"), errs);
    env(c.env.as_deref().unwrap_or(&[]), &path.child("env"), errs);
    volume_mounts(c.volume_mounts.as_deref().unwrap_or(&[]), volumes, &path.child("volumeMounts"), errs);
    required_one_of(c.image_pull_policy.as_deref(), &path.child("imagePullPolicy"), PULL_POLICIES, errs);
    if let Some(r) = &c.resources {
        resources(r, &path.child("resources"), errs);
    }
}

/// Upstream `validateContainerPorts`.
fn ports(list: &[ContainerPort], path: &Path, errs: &mut Errors) {
    let mut names = BTreeSet::new();
    for (i, port) in list.iter().enumerate() {
        let p = path.index(i);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = port_name_errors(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.push(FieldError::invalid(p.child("name"), name, msg));
                }
            } else if !names.insert(name) {
                errs.push(FieldError::duplicate(p.child("name"), name));
            }
        }
        if port.container_port == 0 {
            errs.push(FieldError::required(p.child("containerPort"), ""));
        } else {
            port_num(port.container_port, &p.child("containerPort"), errs);
        }
        if let Some(hp) = port.host_port.filter(|hp| *hp != 0) {
            port_num(hp, &p.child("hostPort"), errs);
        }
        required_one_of(port.protocol.as_deref(), &p.child("protocol"), PROTOCOLS, errs);
    }
}

/// Host ports may not repeat across the given containers (`TCP//8080`).
fn host_port_conflicts(list: &[Container], path: &Path, errs: &mut Errors) {
    let mut seen = BTreeSet::new();
    for (i, c) in list.iter().enumerate() {
        for (j, port) in c.ports.iter().flatten().enumerate() {
            let Some(hp) = port.host_port.filter(|hp| *hp != 0) else { continue };
            let key =
                format!("{}/{}/{hp}", port.protocol.as_deref().unwrap_or(""), port.host_ip.as_deref().unwrap_or(""));
            if !seen.insert(key.clone()) {
                errs.push(FieldError::duplicate(path.index(i).child("ports").index(j).child("hostPort"), key));
            }
        }
    }
}

/// Upstream `ValidateEnv` (with 1.33's relaxed names: printable ASCII but `=`).
fn env(list: &[EnvVar], path: &Path, errs: &mut Errors) {
    for (i, e) in list.iter().enumerate() {
        let p = path.index(i);
        if e.name.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        } else if e.name.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
            errs.push(FieldError::invalid(
                p.child("name"),
                e.name.as_str(),
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
        let Some(from) = &e.value_from else { continue };
        let fp = p.child("valueFrom");
        if let Some(f) = &from.field_ref {
            let p = fp.child("fieldRef");
            if f.api_version.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(p.child("apiVersion"), ""));
            }
            let path_ok = ENV_FIELD_PATHS.contains(&f.field_path.as_str())
                || f.field_path.starts_with("metadata.labels['")
                || f.field_path.starts_with("metadata.annotations['");
            if f.field_path.is_empty() {
                errs.push(FieldError::required(p.child("fieldPath"), ""));
            } else if !path_ok {
                errs.push(FieldError::not_supported(p.child("fieldPath"), f.field_path.as_str(), ENV_FIELD_PATHS));
            }
        }
        for (field, reference) in [
            ("configMapKeyRef", from.config_map_key_ref.as_ref().map(|r| (&r.name, &r.key))),
            ("secretKeyRef", from.secret_key_ref.as_ref().map(|r| (&r.name, &r.key))),
        ] {
            let Some((name, key)) = reference else { continue };
            let p = fp.child(field);
            check(name, &p.child("name"), errs, dns1123_subdomain_errors);
            if key.is_empty() {
                errs.push(FieldError::required(p.child("key"), ""));
            } else {
                for msg in super::core::config_key_errors(key) {
                    errs.push(FieldError::invalid(p.child("key"), key.as_str(), msg));
                }
            }
        }
        let sources = [
            from.field_ref.is_some(),
            from.resource_field_ref.is_some(),
            from.config_map_key_ref.is_some(),
            from.secret_key_ref.is_some(),
        ]
        .into_iter()
        .filter(|set| *set)
        .count();
        if sources == 0 {
            errs.push(FieldError::invalid(
                &fp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
            errs.push(FieldError::invalid(&fp, "", "may not be specified when `value` is not empty"));
        } else if sources > 1 {
            errs.push(FieldError::invalid(&fp, "", "may not have more than one field specified at a time"));
        }
    }
}

/// Upstream `ValidateVolumeMounts`.
fn volume_mounts(list: &[VolumeMount], volumes: &BTreeSet<String>, path: &Path, errs: &mut Errors) {
    let mut mount_points = BTreeSet::new();
    for (i, m) in list.iter().enumerate() {
        let p = path.index(i);
        if m.name.is_empty() {
            errs.push(FieldError::required(p.child("name"), ""));
        }
        if !volumes.contains(&m.name) {
            errs.push(not_found(&p.child("name"), &m.name));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(p.child("mountPath"), ""));
        }
        if !mount_points.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(p.child("mountPath"), m.mount_path.as_str(), "must be unique"));
        }
        if m.sub_path.as_deref().is_some_and(|s| !s.is_empty())
            && m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty())
        {
            errs.push(FieldError::invalid(
                p.child("subPathExpr"),
                m.sub_path_expr.as_deref().unwrap_or(""),
                "subPathExpr and subPath are mutually exclusive",
            ));
        }
    }
}

/// Upstream `validateResourceRequirements` for a container.
fn resources(r: &ResourceRequirements, path: &Path, errs: &mut Errors) {
    let limits_path = path.child("limits");
    let requests_path = path.child("requests");
    let empty = BTreeMap::new();
    let limits = r.limits.as_ref().unwrap_or(&empty);
    for (name, q) in limits {
        let p = limits_path.key(name);
        resource_name(name, &p, errs);
        resource_quantity(name, q, &p, errs);
    }
    for (name, q) in r.requests.iter().flatten() {
        let p = requests_path.key(name);
        resource_name(name, &p, errs);
        resource_quantity(name, q, &p, errs);
        let overcommit = is_native(name) && !name.starts_with("hugepages-");
        match (limits.get(name), parse_quantity(&q.0)) {
            (Some(limit), Ok(request)) => {
                let Ok(limit_q) = parse_quantity(&limit.0) else { continue };
                if request != limit_q && !overcommit {
                    errs.push(FieldError::invalid(
                        &requests_path,
                        q.0.as_str(),
                        format!("must be equal to {name} limit of {}", limit.0),
                    ));
                } else if request > limit_q {
                    errs.push(FieldError::invalid(
                        &requests_path,
                        q.0.as_str(),
                        format!("must be less than or equal to {name} limit of {}", limit.0),
                    ));
                }
            }
            (None, _) if !overcommit => {
                errs.push(FieldError::required(&limits_path, "Limit must be set for non overcommitable resources"));
            }
            _ => {}
        }
    }
}

/// Names without a domain, or in `kubernetes.io`, are the native resources.
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn resource_name(name: &str, path: &Path, errs: &mut Errors) {
    let msgs = qualified_name_errors(name);
    if !msgs.is_empty() {
        for msg in msgs {
            errs.push(FieldError::invalid(path, name, msg));
        }
        return;
    }
    let standard = matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    if !name.contains('/') && !standard {
        errs.push(FieldError::invalid(path, name, "must be a standard resource for containers"));
    }
}

/// Upstream `ValidateResourceQuantityValue`.
fn resource_quantity(name: &str, q: &Q, path: &Path, errs: &mut Errors) {
    let Ok(value) = parse_quantity(&q.0) else {
        errs.push(FieldError::invalid(path, q.0.as_str(), crate::quantity::QuantityError::Format.to_string()));
        return;
    };
    if value.is_negative() {
        errs.push(FieldError::invalid(path, q.0.as_str(), "must be greater than or equal to 0"));
    }
    // Extended resources are counted in whole units.
    if !is_native(name) && value.nanos() % 1_000_000_000 != 0 {
        errs.push(FieldError::invalid(path, q.0.as_str(), "must be an integer"));
    }
}

fn probes(c: &Container, path: &Path, errs: &mut Errors) {
    for (field, probe, kind) in [
        ("livenessProbe", &c.liveness_probe, ProbeKind::Liveness),
        ("readinessProbe", &c.readiness_probe, ProbeKind::Readiness),
        ("startupProbe", &c.startup_probe, ProbeKind::Startup),
    ] {
        if let Some(p) = probe {
            self::probe(p, kind, &path.child(field), errs);
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

/// Upstream `validateProbe` and the per-kind extras.
fn probe(p: &Probe, kind: ProbeKind, path: &Path, errs: &mut Errors) {
    let handlers = [
        ("exec", p.exec.is_some()),
        ("httpGet", p.http_get.is_some()),
        ("tcpSocket", p.tcp_socket.is_some()),
        ("grpc", p.grpc.is_some()),
    ];
    one_handler(&handlers, path, errs);
    if let Some(exec) = &p.exec
        && exec.command.as_ref().is_none_or(Vec::is_empty)
    {
        errs.push(FieldError::required(path.child("exec").child("command"), ""));
    }
    if let Some(http) = &p.http_get {
        http_get(http, &path.child("httpGet"), errs);
    }
    if let Some(tcp) = &p.tcp_socket {
        port_num_or_name(&tcp.port, &path.child("tcpSocket").child("port"), errs);
    }
    if let Some(grpc) = &p.grpc {
        port_num(grpc.port, &path.child("grpc").child("port"), errs);
    }
    for (field, value) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        non_negative(value.unwrap_or(0), &path.child(field), errs);
    }
    if let Some(t) = p.termination_grace_period_seconds
        && t <= 0
    {
        errs.push(FieldError::invalid(path.child("terminationGracePeriodSeconds"), t, "must be greater than 0"));
    }
    match kind {
        ProbeKind::Liveness | ProbeKind::Startup => {
            let threshold = p.success_threshold.unwrap_or(0);
            if threshold != 1 {
                errs.push(FieldError::invalid(path.child("successThreshold"), threshold, "must be 1"));
            }
        }
        ProbeKind::Readiness => {
            if let Some(t) = p.termination_grace_period_seconds {
                errs.push(FieldError::invalid(
                    path.child("terminationGracePeriodSeconds"),
                    t,
                    "must not be set for readinessProbes",
                ));
            }
        }
    }
}

fn one_handler(handlers: &[(&str, bool)], path: &Path, errs: &mut Errors) {
    let mut count = 0;
    for (name, set) in handlers {
        if !set {
            continue;
        }
        if count > 0 {
            errs.push(FieldError::forbidden(path.child(name), "may not specify more than 1 handler type"));
        }
        count += 1;
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
}

fn http_get(http: &HTTPGetAction, path: &Path, errs: &mut Errors) {
    if http.path.as_deref().unwrap_or("").is_empty() {
        errs.push(FieldError::required(path.child("path"), ""));
    }
    port_num_or_name(&http.port, &path.child("port"), errs);
    optional_one_of(http.scheme.as_deref().or(Some("")), &path.child("scheme"), &["HTTP", "HTTPS"], errs);
}

fn lifecycle(l: &Lifecycle, grace: Option<i64>, path: &Path, errs: &mut Errors) {
    for (field, handler) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
        if let Some(h) = handler {
            lifecycle_handler(h, grace, &path.child(field), errs);
        }
    }
}

fn lifecycle_handler(h: &LifecycleHandler, grace: Option<i64>, path: &Path, errs: &mut Errors) {
    let handlers = [
        ("exec", h.exec.is_some()),
        ("httpGet", h.http_get.is_some()),
        ("tcpSocket", h.tcp_socket.is_some()),
        ("sleep", h.sleep.is_some()),
    ];
    one_handler(&handlers, path, errs);
    if let Some(exec) = &h.exec
        && exec.command.as_ref().is_none_or(Vec::is_empty)
    {
        errs.push(FieldError::required(path.child("exec").child("command"), ""));
    }
    if let Some(http) = &h.http_get {
        http_get(http, &path.child("httpGet"), errs);
    }
    if let Some(tcp) = &h.tcp_socket {
        port_num_or_name(&tcp.port, &path.child("tcpSocket").child("port"), errs);
    }
    if let (Some(sleep), Some(grace)) = (&h.sleep, grace)
        && (sleep.seconds < 0 || sleep.seconds > grace)
    {
        errs.push(FieldError::invalid(
            path.child("sleep"),
            sleep.seconds,
            format!("must be non-negative and less than terminationGracePeriodSeconds ({grace})"),
        ));
    }
}

fn dns_config(spec: &PodSpec, path: &Path, errs: &mut Errors) {
    let config = spec.dns_config.as_ref();
    if spec.dns_policy.as_deref() == Some("None") {
        match config {
            None => {
                errs.push(FieldError::required(path, "must provide `dnsConfig` when `dnsPolicy` is None"));
                return;
            }
            Some(c) if c.nameservers.as_ref().is_none_or(Vec::is_empty) => {
                errs.push(FieldError::required(
                    path.child("nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                ));
                return;
            }
            Some(_) => {}
        }
    }
    let Some(c) = config else { return };
    let nameservers = c.nameservers.as_deref().unwrap_or(&[]);
    if nameservers.len() > 3 {
        errs.push(FieldError::invalid(
            path.child("nameservers"),
            json(&nameservers),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        super::valid_ip(ns, &path.child("nameservers").index(i), errs);
    }
    for (i, o) in c.options.iter().flatten().enumerate() {
        if o.name.as_deref().unwrap_or("").is_empty() {
            errs.push(FieldError::required(path.child("options").index(i), "must not be empty"));
        }
    }
}

/// Upstream `ValidateTolerations`.
fn tolerations(list: &[Toleration], path: &Path, errs: &mut Errors) {
    for (i, t) in list.iter().enumerate() {
        let p = path.index(i);
        let key = t.key.as_deref().unwrap_or("");
        let operator = t.operator.as_deref().unwrap_or("");
        let effect = t.effect.as_deref().unwrap_or("");
        let value = t.value.as_deref().unwrap_or("");
        if !key.is_empty() {
            check(key, &p.child("key"), errs, qualified_name_errors);
        }
        if key.is_empty() && operator != "Exists" {
            errs.push(FieldError::invalid(
                p.child("operator"),
                operator,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                p.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match operator {
            "" | "Equal" => {
                let msgs = meta::label_value_errors(value);
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(p.child("operator"), value, msgs.join(";")));
                }
            }
            "Exists" if !value.is_empty() => errs.push(FieldError::invalid(
                p.child("operator"),
                value,
                "value must be empty when `operator` is 'Exists'",
            )),
            "Exists" => {}
            other => errs.push(FieldError::not_supported(p.child("operator"), other, &["Equal", "Exists"])),
        }
        if !effect.is_empty() {
            optional_one_of(Some(effect), &p.child("effect"), &["NoSchedule", "PreferNoSchedule", "NoExecute"], errs);
        }
    }
}

/// Upstream `ValidatePodUpdate`: only images, `activeDeadlineSeconds` (down), added tolerations,
/// removed scheduling gates and a negative grace period set to 1 may change.
pub(crate) fn pod_update(old: &Pod, new: &Pod, errs: &mut Errors) {
    let spec_path = Path::new("spec");
    let default_spec = PodSpec::default();
    let old_spec = old.spec.as_ref().unwrap_or(&default_spec);
    let new_spec = new.spec.as_ref().unwrap_or(&default_spec);
    let empty: Vec<Container> = Vec::new();
    for (field, o, n) in [
        ("containers", &old_spec.containers, &new_spec.containers),
        (
            "initContainers",
            old_spec.init_containers.as_ref().unwrap_or(&empty),
            new_spec.init_containers.as_ref().unwrap_or(&empty),
        ),
    ] {
        if o.len() != n.len() {
            errs.push(FieldError::forbidden(spec_path.child(field), "pod updates may not add or remove containers"));
            return;
        }
    }
    let deadline = spec_path.child("activeDeadlineSeconds");
    match (old_spec.active_deadline_seconds, new_spec.active_deadline_seconds) {
        (_, Some(n)) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(FieldError::invalid(&deadline, n, "must be between 0 and 2147483647, inclusive"));
            return;
        }
        (Some(o), Some(n)) if o < n => {
            errs.push(FieldError::invalid(&deadline, n, "must be less than or equal to previous value"));
            return;
        }
        (Some(_), None) => {
            errs.push(FieldError::invalid(
                &deadline,
                serde_json::Value::Null,
                "must not update from a positive integer to nil value",
            ));
        }
        _ => {}
    }
    let old_tolerations = old_spec.tolerations.as_deref().unwrap_or(&[]);
    let new_tolerations = new_spec.tolerations.as_deref().unwrap_or(&[]);
    let kept = old_tolerations.iter().all(|o| {
        new_tolerations.iter().any(|n| Toleration { toleration_seconds: n.toleration_seconds, ..o.clone() } == *n)
    });
    if !kept {
        errs.push(FieldError::forbidden(
            spec_path.child("tolerations"),
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    let old_gates: BTreeSet<&str> = old_spec.scheduling_gates.iter().flatten().map(|g| g.name.as_str()).collect();
    for (i, gate) in new_spec.scheduling_gates.iter().flatten().enumerate() {
        if !old_gates.contains(gate.name.as_str()) {
            errs.push(FieldError::forbidden(
                spec_path.child("schedulingGates").index(i).child("name"),
                format!("only deletion is allowed, but found new scheduling gate '{}'", gate.name),
            ));
        }
    }
    // Everything else must be as it was.
    let mut munged = new_spec.clone();
    for (c, o) in munged.containers.iter_mut().zip(&old_spec.containers) {
        c.image = o.image.clone();
    }
    for (c, o) in munged.init_containers.iter_mut().flatten().zip(old_spec.init_containers.iter().flatten()) {
        c.image = o.image.clone();
    }
    munged.active_deadline_seconds = old_spec.active_deadline_seconds;
    munged.scheduling_gates = old_spec.scheduling_gates.clone();
    munged.tolerations = old_spec.tolerations.clone();
    if old_spec.termination_grace_period_seconds.is_some_and(|g| g < 0)
        && munged.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old_spec.termination_grace_period_seconds;
    }
    if munged != *old_spec {
        errs.push(FieldError::forbidden(
            &spec_path,
            format!("pod updates may not change fields other than {UPDATABLE_POD_FIELDS}"),
        ));
    }
}
