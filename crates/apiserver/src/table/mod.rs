//! `meta.k8s.io/v1` `Table` rendering for `kubectl get`: the server decides the columns and the
//! cell text, and kubectl prints them verbatim, so this module reproduces kube-apiserver's
//! printers (`pkg/printers/internalversion`) column for column and cell for cell.
//!
//! Like kube-apiserver, every row carries the wide (`-o wide`, `priority: 1`) cells too; kubectl
//! hides them unless asked. Kinds without a printer get upstream's default convertor: `Name` and
//! `Created At`. Pure functions over `serde_json::Value`: no I/O, and the clock is `opts.now`.

mod cells;
mod format;

#[cfg(test)]
mod tests;

use jiff::Timestamp;
use model::ResourceInfo;
use serde_json::{Value, json};

pub use format::human_duration;

/// What each row's `object` holds (the `includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// `object` is `null`.
    None,
    /// `object` is a `PartialObjectMetadata` (the default): kubectl needs it for `-A`'s
    /// NAMESPACE column, `--show-labels` and `-L`.
    #[default]
    Metadata,
    /// `object` is the whole object (`kubectl get --sort-by` asks for this).
    Object,
}

/// How to render a Table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableOptions {
    pub include_object: IncludeObject,
    /// The moment ages (`AGE`, `LAST SEEN`, restarts' `(5m ago)`) are measured at.
    pub now: Timestamp,
}

/// The column definitions for `info`'s kind, wide ones (`priority: 1`) included.
pub fn column_definitions(info: &ResourceInfo) -> Vec<Value> {
    Printer::of(info).columns().iter().map(|c| c.to_json()).collect()
}

/// One row: `{"cells": […], "object": …}`, plus `conditions` where upstream sets them (finished
/// pods).
pub fn row(info: &ResourceInfo, obj: &Value, opts: &TableOptions) -> Value {
    let printed = Printer::of(info).cells(obj, opts.now);
    let mut row = serde_json::Map::new();
    row.insert("cells".to_string(), Value::Array(printed.cells));
    if let Some(conditions) = printed.conditions {
        row.insert("conditions".to_string(), conditions);
    }
    row.insert("object".to_string(), row_object(obj, opts.include_object));
    Value::Object(row)
}

/// A whole Table; `list_metadata` is the list's `metadata` (resourceVersion, continue).
pub fn table(info: &ResourceInfo, objs: &[Value], list_metadata: Value, opts: &TableOptions) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": column_definitions(info),
        "rows": objs.iter().map(|obj| row(info, obj, opts)).collect::<Vec<_>>(),
    })
}

/// One-row Table for a watch event; `with_columns` false → `"columnDefinitions": null` (as
/// kube-apiserver sends after the first event).
pub fn watch_table(
    info: &ResourceInfo,
    obj: &Value,
    resource_version: &str,
    with_columns: bool,
    opts: &TableOptions,
) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": if with_columns { Value::from(column_definitions(info)) } else { Value::Null },
        "rows": [row(info, obj, opts)],
    })
}

/// The row's `object` for the requested `includeObject`.
fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => {
            let mut metadata = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
            if let Some(m) = metadata.as_object_mut() {
                m.remove("managedFields");
            }
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata})
        }
    }
}

/// One column definition. Every field is always serialised, as upstream does.
#[derive(Debug, Clone, Copy)]
struct Column {
    name: &'static str,
    /// The OpenAPI type name: `string`, `integer`, `date`, … (cells may still be numbers or
    /// booleans where upstream's are; kubectl prints whatever the cell holds).
    kind: &'static str,
    /// `name` on the Name column makes kubectl print `pod/web-0` in multi-type output.
    format: &'static str,
    description: &'static str,
    /// `1` = shown only with `-o wide`.
    priority: u8,
}

impl Column {
    fn to_json(self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

const fn col(name: &'static str, description: &'static str) -> Column {
    Column { name, kind: "string", format: "", description, priority: 0 }
}

const fn int(name: &'static str, description: &'static str) -> Column {
    Column { name, kind: "integer", format: "", description, priority: 0 }
}

const fn wide(name: &'static str, description: &'static str) -> Column {
    Column { name, kind: "string", format: "", description, priority: 1 }
}

const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    description: "The object's name, unique within its namespace (or the cluster, for cluster-scoped kinds).",
    priority: 0,
};
const AGE: Column = col("Age", "Time since the object was created (metadata.creationTimestamp).");
const CONTAINERS: Column = wide("Containers", "The names of the containers in the pod template.");
const IMAGES: Column = wide("Images", "The images of the containers in the pod template.");
const SELECTOR: Column = wide("Selector", "The label selector of the pods this object manages.");

const POD: &[Column] = &[
    NAME,
    col("Ready", "Ready containers out of all containers (restartable init containers count as containers)."),
    col("Status", "A one-word summary of the pod's state, taken from its phase and container states."),
    col("Restarts", "Container restarts in this pod, and how long ago the most recent one ended."),
    AGE,
    wide("IP", "The pod's first IP address."),
    wide("Node", "The node the pod is bound to."),
    wide("Nominated Node", "The node the scheduler nominated after preempting pods there."),
    wide("Readiness Gates", "Readiness gates whose condition is True, out of all readiness gates."),
];
const STATEFUL_SET: &[Column] = &[NAME, col("Ready", "Ready pods out of desired replicas."), AGE, CONTAINERS, IMAGES];
const DEPLOYMENT: &[Column] = &[
    NAME,
    col("Ready", "Ready pods out of desired replicas."),
    col("Up-to-date", "Pods running the current pod template."),
    col("Available", "Pods available to serve (ready for at least minReadySeconds)."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const REPLICA_SET: &[Column] = &[
    NAME,
    int("Desired", "The desired number of replicas (spec.replicas)."),
    int("Current", "The number of pods the controller has created (status.replicas)."),
    int("Ready", "The number of ready pods (status.readyReplicas)."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const DAEMON_SET: &[Column] = &[
    NAME,
    int("Desired", "The number of nodes that should run the daemon pod."),
    int("Current", "The number of nodes running the daemon pod."),
    int("Ready", "The number of nodes whose daemon pod is ready."),
    int("Up-to-date", "The number of nodes running the updated daemon pod."),
    int("Available", "The number of nodes whose daemon pod is available."),
    col("Node Selector", "The node selector of the daemon's pods."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const RESOURCE_QUOTA: &[Column] = &[
    NAME,
    AGE,
    col("Request", "Used and hard amounts of what the quota requests bound."),
    col("Limit", "Used and hard amounts of what the quota limits bound."),
];
const CONTROLLER_REVISION: &[Column] = &[
    NAME,
    col("Controller", "The object that owns this revision, as kind.group/name."),
    col("Revision", "The revision number."),
    AGE,
];
const SERVICE: &[Column] = &[
    NAME,
    col("Type", "How the service is exposed: ClusterIP, NodePort, LoadBalancer or ExternalName."),
    col("Cluster-IP", "The service's virtual IP inside the cluster (None for headless services)."),
    col("External-IP", "Addresses the service is reachable at from outside the cluster."),
    col("Port(s)", "Service ports as port[:nodePort]/protocol."),
    AGE,
    wide("Selector", "The label selector of the pods behind the service."),
];
const ENDPOINTS: &[Column] = &[NAME, col("Endpoints", "The first few ready addresses, as ip:port."), AGE];
const ENDPOINT_SLICE: &[Column] = &[
    NAME,
    col("AddressType", "The kind of address in this slice: IPv4, IPv6 or FQDN."),
    col("Ports", "The first few ports (number or name)."),
    col("Endpoints", "The first few endpoint addresses."),
    AGE,
];
const PERSISTENT_VOLUME_CLAIM: &[Column] = &[
    NAME,
    col("Status", "The claim's phase: Pending, Bound or Lost (Terminating while being deleted)."),
    col("Volume", "The persistent volume bound to the claim."),
    col("Capacity", "The storage capacity of the bound volume."),
    col("Access Modes", "The access modes of the bound volume (RWO, ROX, RWX, RWOP)."),
    col("StorageClass", "The storage class of the claim."),
    col("VolumeAttributesClass", "The volume attributes class of the claim."),
    AGE,
    wide("VolumeMode", "Whether the volume is a Filesystem or a raw Block device."),
];
const PERSISTENT_VOLUME: &[Column] = &[
    NAME,
    col("Capacity", "The volume's storage capacity."),
    col("Access Modes", "The volume's access modes (RWO, ROX, RWX, RWOP)."),
    col("Reclaim Policy", "What happens to the volume when its claim is released."),
    col("Status", "The volume's phase: Available, Bound, Released or Failed (Terminating while being deleted)."),
    col("Claim", "The claim bound to the volume, as namespace/name."),
    col("StorageClass", "The storage class of the volume."),
    col("VolumeAttributesClass", "The volume attributes class of the volume."),
    col("Reason", "Why the volume is in its phase."),
    AGE,
    wide("VolumeMode", "Whether the volume is a Filesystem or a raw Block device."),
];
const STORAGE_CLASS: &[Column] = &[
    NAME,
    col("Provisioner", "The volume plugin that provisions volumes of this class."),
    col("ReclaimPolicy", "The reclaim policy of volumes provisioned for this class."),
    col("VolumeBindingMode", "When claims of this class are bound: Immediate or WaitForFirstConsumer."),
    col("AllowVolumeExpansion", "Whether claims of this class may be resized."),
    AGE,
];
const EVENT: &[Column] = &[
    col("Last Seen", "Time since the event was last observed."),
    col("Type", "The event's type: Normal or Warning."),
    col("Reason", "A short, machine-readable reason for the event."),
    col("Object", "The object the event is about, as kind/name."),
    wide("Subobject", "The part of the object the event is about (a field path)."),
    wide("Source", "The component (and host) that reported the event."),
    col("Message", "The human-readable description of the event."),
    wide("First Seen", "Time since the event was first observed."),
    wide("Count", "How many times the event has been observed."),
    Column { priority: 1, ..NAME },
];
const NAMESPACE: &[Column] = &[NAME, col("Status", "The namespace's phase: Active or Terminating."), AGE];
const NODE: &[Column] = &[
    NAME,
    col("Status", "Ready, NotReady or Unknown, plus SchedulingDisabled when cordoned."),
    col("Roles", "The node's roles, from node-role.kubernetes.io/<role> labels."),
    AGE,
    col("Version", "The kubelet version."),
    wide("Internal-IP", "The node's first internal IP address."),
    wide("External-IP", "The node's first external IP address."),
    wide("OS-Image", "The operating system image reported by the node."),
    wide("Kernel-Version", "The kernel version reported by the node."),
    wide("Container-Runtime", "The container runtime and version reported by the node."),
];
const CONFIG_MAP: &[Column] = &[NAME, col("Data", "The number of keys in data and binaryData."), AGE];
const SECRET: &[Column] = &[NAME, col("Type", "The secret's type."), col("Data", "The number of keys in data."), AGE];
const ROLE_BINDING: &[Column] = &[
    NAME,
    col("Role", "Role to which this binding refers."),
    AGE,
    wide("Users", "Users in the binding."),
    wide("Groups", "Groups in the binding."),
    wide("ServiceAccounts", "ServiceAccounts in the binding."),
];
const NETWORK_POLICY: &[Column] =
    &[NAME, col("Pod-Selector", "Selects the pods to which this NetworkPolicy object applies."), AGE];
const INGRESS: &[Column] = &[
    NAME,
    col("Class", "The name of the IngressClass resource that should be used for this Ingress."),
    col("Hosts", "Hosts that incoming requests are matched against before the ingress rule."),
    col("Address", "Address is a list containing ingress points for the load-balancer."),
    col("Ports", "Ports of TLS configurations that open."),
    AGE,
];
const INGRESS_CLASS: &[Column] = &[
    NAME,
    col("Controller", "Controller that is responsible for handling this class."),
    col("Parameters", "A reference to a resource with additional parameters."),
    AGE,
];
const PRIORITY_CLASS: &[Column] = &[
    NAME,
    Column {
        name: "Value",
        kind: "integer",
        format: "",
        description: "The priority of pods of this class.",
        priority: 0,
    },
    Column {
        name: "Global-Default",
        kind: "boolean",
        format: "",
        description: "Whether this class is the default for pods without one.",
        priority: 0,
    },
    AGE,
    col("PreemptionPolicy", "The policy for preempting pods with lower priority."),
];
const HORIZONTAL_POD_AUTOSCALER: &[Column] = &[
    NAME,
    col("Reference", "Reference to the object being scaled."),
    col("Targets", "The current and target values of the metrics."),
    Column { name: "MinPods", kind: "string", format: "", description: "Lower limit of replicas.", priority: 0 },
    Column { name: "MaxPods", kind: "integer", format: "", description: "Upper limit of replicas.", priority: 0 },
    Column { name: "Replicas", kind: "integer", format: "", description: "Current number of replicas.", priority: 0 },
    AGE,
];
const JOB: &[Column] = &[
    NAME,
    col("Status", "Status of the job."),
    col("Completions", "The completed pods out of the desired completions."),
    col("Duration", "Time the job took, or has been running."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const CRON_JOB: &[Column] = &[
    NAME,
    col("Schedule", "The schedule in Cron format."),
    col("Timezone", "The time zone of the schedule."),
    col("Suspend", "Whether new jobs are held back."),
    Column { name: "Active", kind: "integer", format: "", description: "The jobs running.", priority: 0 },
    col("Last Schedule", "When a job was last scheduled."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];
const POD_DISRUPTION_BUDGET: &[Column] = &[
    NAME,
    col("Min Available", "The minimum number of pods that must be available."),
    col("Max Unavailable", "The maximum number of pods that may be unavailable."),
    Column {
        name: "Allowed Disruptions",
        kind: "integer",
        format: "",
        description: "How many more pods may be disrupted now.",
        priority: 0,
    },
    AGE,
];
const API_SERVICE: &[Column] = &[
    NAME,
    col("Service", "The reference to the service that hosts this API endpoint."),
    col("Available", "Whether this service is available."),
    AGE,
];
const SERVICE_ACCOUNT: &[Column] = &[NAME, col("Secrets", "The number of secrets listed on the account."), AGE];
const LEASE: &[Column] = &[NAME, col("Holder", "The identity currently holding the lease."), AGE];
const DEFAULT: &[Column] = &[
    NAME,
    Column {
        name: "Created At",
        kind: "date",
        format: "",
        description: "When the object was created (metadata.creationTimestamp).",
        priority: 0,
    },
];

/// The printer for a kind, chosen by group and kind as upstream registers its handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Printer {
    Pod,
    StatefulSet,
    Deployment,
    ReplicaSet,
    ControllerRevision,
    Service,
    Endpoints,
    EndpointSlice,
    PersistentVolumeClaim,
    PersistentVolume,
    StorageClass,
    /// `core/v1` events.
    Event,
    /// `events.k8s.io/v1` events: the same columns, read from the newer field names.
    EventsV1Event,
    Namespace,
    Node,
    ConfigMap,
    Secret,
    ServiceAccount,
    Lease,
    ApiService,
    RoleBinding,
    NetworkPolicy,
    Ingress,
    IngressClass,
    PriorityClass,
    HorizontalPodAutoscaler,
    PodDisruptionBudget,
    Job,
    CronJob,
    DaemonSet,
    ResourceQuota,
    /// Upstream's default table convertor: Name and Created At.
    Default,
}

/// A printed row before the `object` is attached.
struct Printed {
    cells: Vec<Value>,
    conditions: Option<Value>,
}

impl Printer {
    fn of(info: &ResourceInfo) -> Printer {
        match (info.group, info.kind) {
            ("", "Pod") => Printer::Pod,
            ("", "Service") => Printer::Service,
            ("", "Endpoints") => Printer::Endpoints,
            ("", "PersistentVolumeClaim") => Printer::PersistentVolumeClaim,
            ("", "PersistentVolume") => Printer::PersistentVolume,
            ("", "Event") => Printer::Event,
            ("", "Namespace") => Printer::Namespace,
            ("", "Node") => Printer::Node,
            ("", "ConfigMap") => Printer::ConfigMap,
            ("", "Secret") => Printer::Secret,
            ("", "ServiceAccount") => Printer::ServiceAccount,
            ("apps", "StatefulSet") => Printer::StatefulSet,
            ("apps", "Deployment") => Printer::Deployment,
            ("apps", "ReplicaSet") => Printer::ReplicaSet,
            ("apps", "ControllerRevision") => Printer::ControllerRevision,
            ("storage.k8s.io", "StorageClass") => Printer::StorageClass,
            ("discovery.k8s.io", "EndpointSlice") => Printer::EndpointSlice,
            ("coordination.k8s.io", "Lease") => Printer::Lease,
            ("apiregistration.k8s.io", "APIService") => Printer::ApiService,
            ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => Printer::RoleBinding,
            ("networking.k8s.io", "NetworkPolicy") => Printer::NetworkPolicy,
            ("networking.k8s.io", "Ingress") => Printer::Ingress,
            ("networking.k8s.io", "IngressClass") => Printer::IngressClass,
            ("scheduling.k8s.io", "PriorityClass") => Printer::PriorityClass,
            ("autoscaling", "HorizontalPodAutoscaler") => Printer::HorizontalPodAutoscaler,
            ("policy", "PodDisruptionBudget") => Printer::PodDisruptionBudget,
            ("batch", "Job") => Printer::Job,
            ("apps", "DaemonSet") => Printer::DaemonSet,
            ("", "ResourceQuota") => Printer::ResourceQuota,
            ("", "ReplicationController") => Printer::ReplicaSet,
            ("batch", "CronJob") => Printer::CronJob,
            ("events.k8s.io", "Event") => Printer::EventsV1Event,
            _ => Printer::Default,
        }
    }

    fn columns(self) -> &'static [Column] {
        match self {
            Printer::Pod => POD,
            Printer::StatefulSet => STATEFUL_SET,
            Printer::Deployment => DEPLOYMENT,
            Printer::ReplicaSet => REPLICA_SET,
            Printer::ControllerRevision => CONTROLLER_REVISION,
            Printer::Service => SERVICE,
            Printer::Endpoints => ENDPOINTS,
            Printer::EndpointSlice => ENDPOINT_SLICE,
            Printer::PersistentVolumeClaim => PERSISTENT_VOLUME_CLAIM,
            Printer::PersistentVolume => PERSISTENT_VOLUME,
            Printer::StorageClass => STORAGE_CLASS,
            Printer::Event | Printer::EventsV1Event => EVENT,
            Printer::Namespace => NAMESPACE,
            Printer::Node => NODE,
            Printer::ConfigMap => CONFIG_MAP,
            Printer::Secret => SECRET,
            Printer::ServiceAccount => SERVICE_ACCOUNT,
            Printer::Lease => LEASE,
            Printer::ApiService => API_SERVICE,
            Printer::RoleBinding => ROLE_BINDING,
            Printer::NetworkPolicy => NETWORK_POLICY,
            Printer::Ingress => INGRESS,
            Printer::IngressClass => INGRESS_CLASS,
            Printer::PriorityClass => PRIORITY_CLASS,
            Printer::HorizontalPodAutoscaler => HORIZONTAL_POD_AUTOSCALER,
            Printer::PodDisruptionBudget => POD_DISRUPTION_BUDGET,
            Printer::Job => JOB,
            Printer::DaemonSet => DAEMON_SET,
            Printer::ResourceQuota => RESOURCE_QUOTA,
            Printer::CronJob => CRON_JOB,
            Printer::Default => DEFAULT,
        }
    }

    fn cells(self, obj: &Value, now: Timestamp) -> Printed {
        let cells = match self {
            Printer::Pod => cells::pod(obj, now),
            Printer::StatefulSet => cells::stateful_set(obj, now),
            Printer::Deployment => cells::deployment(obj, now),
            Printer::ReplicaSet => cells::replica_set(obj, now),
            Printer::ControllerRevision => cells::controller_revision(obj, now),
            Printer::Service => cells::service(obj, now),
            Printer::Endpoints => cells::endpoints(obj, now),
            Printer::EndpointSlice => cells::endpoint_slice(obj, now),
            Printer::PersistentVolumeClaim => cells::persistent_volume_claim(obj, now),
            Printer::PersistentVolume => cells::persistent_volume(obj, now),
            Printer::StorageClass => cells::storage_class(obj, now),
            Printer::Event => cells::event(&cells::EventFields::core(obj), now),
            Printer::EventsV1Event => cells::event(&cells::EventFields::events_v1(obj), now),
            Printer::Namespace => cells::namespace(obj, now),
            Printer::Node => cells::node(obj, now),
            Printer::ConfigMap => cells::config_map(obj, now),
            Printer::Secret => cells::secret(obj, now),
            Printer::ServiceAccount => cells::service_account(obj, now),
            Printer::Lease => cells::lease(obj, now),
            Printer::ApiService => cells::api_service(obj, now),
            Printer::RoleBinding => cells::role_binding(obj, now),
            Printer::NetworkPolicy => cells::network_policy(obj, now),
            Printer::Ingress => cells::ingress(obj, now),
            Printer::IngressClass => cells::ingress_class(obj, now),
            Printer::PriorityClass => cells::priority_class(obj, now),
            Printer::HorizontalPodAutoscaler => cells::horizontal_pod_autoscaler(obj, now),
            Printer::PodDisruptionBudget => cells::pod_disruption_budget(obj, now),
            Printer::Job => cells::job(obj, now),
            Printer::DaemonSet => cells::daemon_set(obj, now),
            Printer::ResourceQuota => cells::resource_quota(obj, now),
            Printer::CronJob => cells::cron_job(obj, now),
            Printer::Default => cells::default(obj),
        };
        let conditions = if self == Printer::Pod { cells::pod_conditions(obj) } else { None };
        Printed { cells, conditions }
    }
}
