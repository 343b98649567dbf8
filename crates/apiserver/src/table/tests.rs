//! What `kubectl get` would print for each kind: headers, wide columns, and cell text, at a
//! fixed `now`.

use jiff::{SignedDuration, Timestamp};
use model::{RESOURCES, ResourceInfo, resources};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::format::{format_label_selector, label_selector_string, quantity};
use super::{IncludeObject, TableOptions, column_definitions, human_duration, row, table, watch_table};

const NOW: &str = "2024-06-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().expect("NOW is a valid timestamp")
}

/// `now` minus `secs` seconds, as an RFC 3339 string.
fn ago(secs: i64) -> String {
    (now() - SignedDuration::from_secs(secs)).to_string()
}

fn opts(include_object: IncludeObject) -> TableOptions {
    TableOptions { include_object, now: now() }
}

fn info(group: &str, plural: &str) -> &'static ResourceInfo {
    resources::find(group, "v1", plural).expect("resource is registered")
}

/// The cells of `obj`'s row, wide ones included.
#[track_caller]
fn check(group: &str, plural: &str, obj: Value, expected: Value) {
    let resource = info(group, plural);
    let row = row(resource, &obj, &opts(IncludeObject::Metadata));
    assert_eq!(row["cells"], expected, "{plural}");
    let columns = column_definitions(resource);
    assert_eq!(row["cells"].as_array().map(Vec::len), Some(columns.len()), "one cell per column for {plural}");
}

/// The headers kubectl prints (upper-cased names), without and with `-o wide`.
fn headers(resource: &ResourceInfo) -> (Vec<String>, Vec<String>) {
    let columns = column_definitions(resource);
    let name = |c: &Value| c["name"].as_str().unwrap_or_default().to_uppercase();
    let normal = columns.iter().filter(|c| c["priority"] == 0).map(name).collect();
    let wide = columns.iter().filter(|c| c["priority"] == 1).map(name).collect();
    (normal, wide)
}

#[test]
fn human_duration_matches_upstream() {
    let cases: &[(i64, &str)] = &[
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (5 * 60, "5m"),
        (5 * 60 + 30, "5m30s"),
        (10 * 60 + 30, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (8 * 3600 + 59 * 60, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (51 * 3600, "2d3h"),
        (8 * 86400, "8d"),
        (400 * 86400, "400d"),
        (2 * 365 * 86400, "2y"),
        ((3 * 365 + 45) * 86400, "3y45d"),
        (8 * 365 * 86400 + 86400, "8y"),
    ];
    for (secs, expected) in cases {
        assert_eq!(human_duration(SignedDuration::from_secs(*secs)), *expected, "{secs}s");
    }
    // Sub-second precision truncates like Go's integer conversion.
    assert_eq!(human_duration(SignedDuration::from_millis(-1500)), "0s");
    assert_eq!(human_duration(SignedDuration::from_millis(59_999)), "59s");
}

#[test]
fn columns_match_kubectl_headers() {
    let cases: &[(&str, &str, &[&str], &[&str])] = &[
        (
            "",
            "pods",
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            &["IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
        ),
        ("apps", "statefulsets", &["NAME", "READY", "AGE"], &["CONTAINERS", "IMAGES"]),
        (
            "apps",
            "deployments",
            &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        ("apps", "replicasets", &["NAME", "DESIRED", "CURRENT", "READY", "AGE"], &["CONTAINERS", "IMAGES", "SELECTOR"]),
        ("apps", "controllerrevisions", &["NAME", "CONTROLLER", "REVISION", "AGE"], &[]),
        ("", "services", &["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], &["SELECTOR"]),
        ("", "endpoints", &["NAME", "ENDPOINTS", "AGE"], &[]),
        ("discovery.k8s.io", "endpointslices", &["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], &[]),
        (
            "",
            "persistentvolumeclaims",
            &["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"],
            &["VOLUMEMODE"],
        ),
        (
            "",
            "persistentvolumes",
            &[
                "NAME",
                "CAPACITY",
                "ACCESS MODES",
                "RECLAIM POLICY",
                "STATUS",
                "CLAIM",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "REASON",
                "AGE",
            ],
            &["VOLUMEMODE"],
        ),
        (
            "storage.k8s.io",
            "storageclasses",
            &["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"],
            &[],
        ),
        (
            "",
            "events",
            &["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            &["SUBOBJECT", "SOURCE", "FIRST SEEN", "COUNT", "NAME"],
        ),
        (
            "events.k8s.io",
            "events",
            &["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            &["SUBOBJECT", "SOURCE", "FIRST SEEN", "COUNT", "NAME"],
        ),
        ("", "namespaces", &["NAME", "STATUS", "AGE"], &[]),
        (
            "",
            "nodes",
            &["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
            &["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"],
        ),
        ("", "configmaps", &["NAME", "DATA", "AGE"], &[]),
        ("", "secrets", &["NAME", "TYPE", "DATA", "AGE"], &[]),
        ("", "serviceaccounts", &["NAME", "SECRETS", "AGE"], &[]),
        ("coordination.k8s.io", "leases", &["NAME", "HOLDER", "AGE"], &[]),
    ];
    for (group, plural, normal, wide) in cases {
        let (got_normal, got_wide) = headers(info(group, plural));
        assert_eq!(got_normal, *normal, "{plural}.{group}");
        assert_eq!(got_wide, *wide, "{plural}.{group} -o wide");
    }
}

#[test]
fn every_kind_has_a_name_column_with_format_name_and_complete_definitions() {
    for resource in RESOURCES {
        let columns = column_definitions(resource);
        let names: Vec<&Value> = columns.iter().filter(|c| c["format"] == "name").collect();
        assert_eq!(names.len(), 1, "{}", resource.kind);
        assert_eq!(names[0]["name"], "Name", "{}", resource.kind);
        for column in &columns {
            for field in ["name", "type", "format", "description", "priority"] {
                assert!(column.get(field).is_some(), "{}: column {column} lacks {field}", resource.kind);
            }
        }
        // An object with nothing set still renders one cell per column.
        let row = row(resource, &json!({}), &opts(IncludeObject::Metadata));
        assert_eq!(row["cells"].as_array().map(Vec::len), Some(columns.len()), "{}", resource.kind);
    }
}

#[test]
fn unknown_kinds_get_name_and_created_at() {
    let widget = ResourceInfo {
        group: "example.com",
        version: "v1",
        kind: "Widget",
        plural: "widgets",
        singular: "widget",
        short_names: &[],
        namespaced: true,
        categories: &[],
        subresources: &[],
        tracks_generation: false,
    };
    let columns = column_definitions(&widget);
    assert_eq!(
        columns.iter().map(|c| (c["name"].clone(), c["type"].clone())).collect::<Vec<_>>(),
        vec![(json!("Name"), json!("string")), (json!("Created At"), json!("date"))]
    );
    let obj = json!({"metadata": {"name": "w", "creationTimestamp": "2024-05-01T10:00:00Z"}});
    assert_eq!(row(&widget, &obj, &opts(IncludeObject::Metadata))["cells"], json!(["w", "2024-05-01T10:00:00Z"]));
}

fn pod(status: Value) -> Value {
    json!({
        "metadata": {"name": "web-0", "namespace": "default", "creationTimestamp": ago(600)},
        "spec": {"containers": [{"name": "app", "image": "nginx"}], "nodeName": "node-1"},
        "status": status,
    })
}

#[test]
fn pod_rows() {
    let running = json!({
        "phase": "Running",
        "podIP": "10.0.0.5",
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{
            "name": "app", "ready": true, "restartCount": 2,
            "state": {"running": {"startedAt": ago(300)}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(300)}},
        }],
    });
    check(
        "",
        "pods",
        pod(running.clone()),
        json!(["web-0", "1/1", "Running", "2 (5m ago)", "10m", "10.0.0.5", "node-1", "<none>", "<none>"]),
    );

    let mut pending = pod(json!({"phase": "Pending"}));
    pending["spec"].as_object_mut().map(|s| s.remove("nodeName"));
    check("", "pods", pending, json!(["web-0", "0/1", "Pending", "0", "10m", "<none>", "<none>", "<none>", "<none>"]));

    let creating = json!({
        "phase": "Pending",
        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}],
    });
    check(
        "",
        "pods",
        pod(creating),
        json!(["web-0", "0/1", "ContainerCreating", "0", "10m", "<none>", "node-1", "<none>", "<none>"]),
    );

    let mut terminating = pod(running);
    terminating["metadata"]["deletionTimestamp"] = json!(ago(2));
    check(
        "",
        "pods",
        terminating,
        json!(["web-0", "1/1", "Terminating", "2 (5m ago)", "10m", "10.0.0.5", "node-1", "<none>", "<none>"]),
    );

    let completed = json!({
        "phase": "Succeeded",
        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": ago(60)}}}],
    });
    check(
        "",
        "pods",
        pod(completed),
        json!(["web-0", "0/1", "Completed", "0", "10m", "<none>", "node-1", "<none>", "<none>"]),
    );

    let failed = json!({
        "phase": "Failed",
        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}],
    });
    check(
        "",
        "pods",
        pod(failed),
        json!(["web-0", "0/1", "Error", "0", "10m", "<none>", "node-1", "<none>", "<none>"]),
    );

    let killed = json!({
        "phase": "Running",
        "containerStatuses": [{"name": "app", "restartCount": 0, "state": {"terminated": {"exitCode": 137, "signal": 9}}}],
    });
    check(
        "",
        "pods",
        pod(killed),
        json!(["web-0", "0/1", "Signal:9", "0", "10m", "<none>", "node-1", "<none>", "<none>"]),
    );

    let crashing = json!({
        "phase": "Running",
        "containerStatuses": [{"name": "app", "ready": false, "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(90)}}}],
    });
    check(
        "",
        "pods",
        pod(crashing),
        json!(["web-0", "0/1", "CrashLoopBackOff", "4 (90s ago)", "10m", "<none>", "node-1", "<none>", "<none>"]),
    );
}

#[test]
fn pod_init_containers_and_readiness_gates() {
    let mut initializing = pod(json!({
        "phase": "Pending",
        "initContainerStatuses": [{"name": "init", "restartCount": 0, "state": {"running": {}}}],
        "containerStatuses": [{"name": "app", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}],
    }));
    initializing["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox"}]);
    check(
        "",
        "pods",
        initializing.clone(),
        json!(["web-0", "0/1", "Init:0/1", "0", "10m", "<none>", "node-1", "<none>", "<none>"]),
    );

    initializing["status"]["initContainerStatuses"][0]["state"] = json!({"waiting": {"reason": "CrashLoopBackOff"}});
    initializing["status"]["initContainerStatuses"][0]["restartCount"] = json!(3);
    check(
        "",
        "pods",
        initializing.clone(),
        json!(["web-0", "0/1", "Init:CrashLoopBackOff", "3", "10m", "<none>", "node-1", "<none>", "<none>"]),
    );

    initializing["status"]["initContainerStatuses"][0]["state"] = json!({"terminated": {"exitCode": 2}});
    check(
        "",
        "pods",
        initializing,
        json!(["web-0", "0/1", "Init:ExitCode:2", "3", "10m", "<none>", "node-1", "<none>", "<none>"]),
    );

    // A started sidecar (restartPolicy Always) counts towards READY, and its restarts count.
    let mut with_sidecar = pod(json!({
        "phase": "Running",
        "podIPs": [{"ip": "10.0.0.9"}],
        "conditions": [{"type": "Initialized", "status": "True"}, {"type": "ready-gate", "status": "True"}],
        "initContainerStatuses": [{"name": "proxy", "restartCount": 1, "started": true, "ready": true, "state": {"running": {}}}],
        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}],
    }));
    with_sidecar["spec"]["initContainers"] = json!([{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]);
    with_sidecar["spec"]["readinessGates"] = json!([{"conditionType": "ready-gate"}, {"conditionType": "other-gate"}]);
    check(
        "",
        "pods",
        with_sidecar,
        json!(["web-0", "2/2", "Running", "1", "10m", "10.0.0.9", "node-1", "<none>", "1/2"]),
    );
}

#[test]
fn finished_pods_carry_a_completed_row_condition() {
    let pods = info("", "pods");
    let succeeded = row(pods, &pod(json!({"phase": "Succeeded"})), &opts(IncludeObject::Metadata));
    assert_eq!(succeeded["conditions"][0]["type"], "Completed");
    assert_eq!(succeeded["conditions"][0]["reason"], "Succeeded");
    let running = row(pods, &pod(json!({"phase": "Running"})), &opts(IncludeObject::Metadata));
    assert_eq!(running.get("conditions"), None);
}

#[test]
fn workload_rows() {
    let template = json!({"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}, {"name": "log", "image": "busybox"}]}});
    check(
        "apps",
        "statefulsets",
        json!({
            "metadata": {"name": "web", "creationTimestamp": ago(51 * 3600)},
            "spec": {"replicas": 3, "template": template},
            "status": {"replicas": 3, "readyReplicas": 2},
        }),
        json!(["web", "2/3", "2d3h", "nginx,log", "nginx:1.25,busybox"]),
    );
    check(
        "apps",
        "deployments",
        json!({
            "metadata": {"name": "api", "creationTimestamp": ago(30)},
            "spec": {"replicas": 2, "template": template,
                "selector": {"matchLabels": {"app": "api"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "edge"]}]}},
            "status": {"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1},
        }),
        json!(["api", "1/2", 2, 1, "30s", "nginx,log", "nginx:1.25,busybox", "app=api,tier in (edge,web)"]),
    );
    check(
        "apps",
        "replicasets",
        json!({
            "metadata": {"name": "api-5d4f", "creationTimestamp": ago(30)},
            "spec": {"replicas": 2, "template": template, "selector": {"matchLabels": {"app": "api"}}},
            "status": {"replicas": 2, "readyReplicas": 1},
        }),
        json!(["api-5d4f", 2, 2, 1, "30s", "nginx,log", "nginx:1.25,busybox", "app=api"]),
    );
    check(
        "apps",
        "controllerrevisions",
        json!({
            "metadata": {"name": "web-7c9f", "creationTimestamp": ago(30),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": true}]},
            "revision": 2,
        }),
        json!(["web-7c9f", "statefulset.apps/web", 2, "30s"]),
    );
    check(
        "apps",
        "controllerrevisions",
        json!({"metadata": {"name": "orphan"}, "revision": 1}),
        json!(["orphan", "<none>", 1, "<unknown>"]),
    );
}

#[test]
fn service_rows() {
    check(
        "",
        "services",
        json!({
            "metadata": {"name": "nginx", "creationTimestamp": ago(300)},
            "spec": {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"],
                "ports": [{"name": "web", "port": 80, "protocol": "TCP"}], "selector": {"app": "nginx"}},
        }),
        json!(["nginx", "ClusterIP", "None", "<none>", "80/TCP", "5m", "app=nginx"]),
    );
    check(
        "",
        "services",
        json!({
            "metadata": {"name": "np", "creationTimestamp": ago(300)},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
                "ports": [{"port": 80, "nodePort": 30000, "protocol": "TCP"}, {"port": 53, "nodePort": 30053, "protocol": "UDP"}],
                "selector": {"tier": "web", "app": "np"}},
        }),
        json!(["np", "NodePort", "10.96.0.10", "<none>", "80:30000/TCP,53:30053/UDP", "5m", "app=np,tier=web"]),
    );
    check(
        "",
        "services",
        json!({
            "metadata": {"name": "lb", "creationTimestamp": ago(300)},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.11", "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]},
        }),
        json!(["lb", "LoadBalancer", "10.96.0.11", "<pending>", "443:31443/TCP", "5m", "<none>"]),
    );
    check(
        "",
        "services",
        json!({"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}),
        json!(["ext", "ExternalName", "<none>", "example.com", "<none>", "<unknown>", "<none>"]),
    );
}

#[test]
fn endpoint_rows() {
    check(
        "",
        "endpoints",
        json!({
            "metadata": {"name": "nginx", "creationTimestamp": ago(300)},
            "subsets": [{
                "addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}],
                "ports": [{"port": 80}],
            }],
        }),
        json!(["nginx", "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...", "5m"]),
    );
    check("", "endpoints", json!({"metadata": {"name": "empty"}}), json!(["empty", "<none>", "<unknown>"]));
    check(
        "discovery.k8s.io",
        "endpointslices",
        json!({
            "metadata": {"name": "nginx-abc", "creationTimestamp": ago(300)},
            "addressType": "IPv4",
            "ports": [{"name": "web", "port": 80}, {"name": "metrics"}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}],
        }),
        json!(["nginx-abc", "IPv4", "80,metrics", "10.0.0.1,10.0.0.2", "5m"]),
    );
    check(
        "discovery.k8s.io",
        "endpointslices",
        json!({"metadata": {"name": "none"}, "addressType": "IPv4"}),
        json!(["none", "IPv4", "<unset>", "<unset>", "<unknown>"]),
    );
}

#[test]
fn storage_rows() {
    check(
        "",
        "persistentvolumeclaims",
        json!({
            "metadata": {"name": "data-web-0", "creationTimestamp": ago(300)},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": "standard", "volumeName": "pvc-123", "volumeMode": "Filesystem"},
            "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1024Mi"}},
        }),
        json!(["data-web-0", "Bound", "pvc-123", "1Gi", "RWO", "standard", "<unset>", "5m", "Filesystem"]),
    );
    check(
        "",
        "persistentvolumeclaims",
        json!({
            "metadata": {"name": "waiting", "creationTimestamp": ago(5)},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Pending"},
        }),
        json!(["waiting", "Pending", "", "", "", "", "<unset>", "5s", "<unset>"]),
    );
    check(
        "",
        "persistentvolumes",
        json!({
            "metadata": {"name": "pv1", "creationTimestamp": ago(86400)},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "manual", "volumeMode": "Filesystem"},
            "status": {"phase": "Available"},
        }),
        json!(["pv1", "10Gi", "RWO,RWX", "Retain", "Available", "", "manual", "<unset>", "", "24h", "Filesystem"]),
    );
    check(
        "",
        "persistentvolumes",
        json!({
            "metadata": {"name": "pv2", "creationTimestamp": ago(60), "deletionTimestamp": ago(1),
                "annotations": {"volume.beta.kubernetes.io/storage-class": "legacy"}},
            "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOncePod"], "persistentVolumeReclaimPolicy": "Delete",
                "claimRef": {"namespace": "default", "name": "data-web-1"}, "storageClassName": "standard",
                "volumeAttributesClassName": "gold"},
            "status": {"phase": "Bound"},
        }),
        json!([
            "pv2",
            "5Gi",
            "RWOP",
            "Delete",
            "Terminating",
            "default/data-web-1",
            "legacy",
            "gold",
            "",
            "60s",
            "<unset>"
        ]),
    );
    check(
        "storage.k8s.io",
        "storageclasses",
        json!({
            "metadata": {"name": "standard", "creationTimestamp": ago(3 * 86400),
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "ordinal.dev/hostpath",
            "volumeBindingMode": "WaitForFirstConsumer",
        }),
        json!(["standard (default)", "ordinal.dev/hostpath", "Delete", "WaitForFirstConsumer", false, "3d"]),
    );
    check(
        "storage.k8s.io",
        "storageclasses",
        json!({"metadata": {"name": "fast"}, "provisioner": "p", "reclaimPolicy": "Retain", "allowVolumeExpansion": true}),
        json!(["fast", "p", "Retain", "Immediate", true, "<unknown>"]),
    );
}

#[test]
fn event_rows() {
    check(
        "",
        "events",
        json!({
            "metadata": {"name": "web-0.17a", "creationTimestamp": ago(600)},
            "involvedObject": {"kind": "Pod", "name": "web-0", "fieldPath": "spec.containers{app}"},
            "reason": "Pulled", "type": "Normal", "message": "Container image pulled\n",
            "source": {"component": "kubelet", "host": "node-1"},
            "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 3,
        }),
        json!([
            "30s",
            "Normal",
            "Pulled",
            "pod/web-0",
            "spec.containers{app}",
            "kubelet, node-1",
            "Container image pulled",
            "10m",
            3,
            "web-0.17a"
        ]),
    );
    // A new-style event: eventTime only, no count, reporting controller instead of source.
    check(
        "",
        "events",
        json!({
            "metadata": {"name": "web.1"},
            "involvedObject": {"kind": "StatefulSet", "name": "web"},
            "reason": "SuccessfulCreate", "type": "Normal", "message": "create Pod web-0 in StatefulSet web successful",
            "eventTime": "2024-06-01T11:58:00.000000Z", "reportingComponent": "statefulset-controller",
        }),
        json!([
            "2m",
            "Normal",
            "SuccessfulCreate",
            "statefulset/web",
            "",
            "statefulset-controller",
            "create Pod web-0 in StatefulSet web successful",
            "2m",
            1,
            "web.1"
        ]),
    );
    check(
        "events.k8s.io",
        "events",
        json!({
            "metadata": {"name": "web.2"},
            "regarding": {"kind": "Pod", "name": "web-1"},
            "reason": "BackOff", "type": "Warning", "note": "Back-off restarting failed container",
            "eventTime": ago(3600), "reportingController": "kubelet", "reportingInstance": "node-1",
            "series": {"count": 7, "lastObservedTime": ago(20)},
        }),
        json!([
            "20s",
            "Warning",
            "BackOff",
            "pod/web-1",
            "",
            "kubelet, node-1",
            "Back-off restarting failed container",
            "60m",
            7,
            "web.2"
        ]),
    );
}

#[test]
fn cluster_and_config_rows() {
    check(
        "",
        "namespaces",
        json!({"metadata": {"name": "default", "creationTimestamp": ago(3 * 86400 + 7200)}, "status": {"phase": "Active"}}),
        json!(["default", "Active", "3d2h"]),
    );
    check(
        "",
        "nodes",
        json!({
            "metadata": {"name": "node-1", "creationTimestamp": ago(7200),
                "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker", "node-role.kubernetes.io/": ""}},
            "spec": {"unschedulable": true},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                "addresses": [{"type": "Hostname", "address": "node-1"}, {"type": "InternalIP", "address": "192.168.1.10"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0-ordinal", "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0"},
            },
        }),
        json!([
            "node-1",
            "Ready,SchedulingDisabled",
            "control-plane,worker",
            "120m",
            "v1.33.0-ordinal",
            "192.168.1.10",
            "<none>",
            "Debian GNU/Linux 12",
            "6.1.0",
            "<unknown>"
        ]),
    );
    check(
        "",
        "nodes",
        json!({"metadata": {"name": "new"}}),
        json!(["new", "Unknown", "<none>", "<unknown>", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"]),
    );
    check(
        "",
        "configmaps",
        json!({"metadata": {"name": "cfg", "creationTimestamp": ago(45)}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}),
        json!(["cfg", 3, "45s"]),
    );
    check(
        "",
        "secrets",
        json!({"metadata": {"name": "tls", "creationTimestamp": ago(45)}, "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
        json!(["tls", "kubernetes.io/tls", 2, "45s"]),
    );
    check(
        "",
        "serviceaccounts",
        json!({"metadata": {"name": "default", "creationTimestamp": ago(45)}}),
        json!(["default", 0, "45s"]),
    );
    check(
        "coordination.k8s.io",
        "leases",
        json!({"metadata": {"name": "ordinal-leader", "creationTimestamp": ago(45)}, "spec": {"holderIdentity": "node-1_abc"}}),
        json!(["ordinal-leader", "node-1_abc", "45s"]),
    );
}

#[test]
fn rows_carry_the_requested_object() {
    let pods = info("", "pods");
    let obj = json!({
        "kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web"}, "managedFields": [{"manager": "kubectl"}]},
        "spec": {"containers": []},
    });
    let metadata = row(pods, &obj, &opts(IncludeObject::Metadata));
    assert_eq!(
        metadata["object"],
        json!({
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web"}},
        })
    );
    assert_eq!(row(pods, &obj, &opts(IncludeObject::Object))["object"], obj);
    assert_eq!(row(pods, &obj, &opts(IncludeObject::None))["object"], Value::Null);
    assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
}

#[test]
fn list_and_watch_tables() {
    let sts = info("apps", "statefulsets");
    let objs = [json!({"metadata": {"name": "a"}}), json!({"metadata": {"name": "b"}})];
    let list = table(sts, &objs, json!({"resourceVersion": "42", "continue": "tok"}), &opts(IncludeObject::Metadata));
    assert_eq!(list["kind"], "Table");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(list["metadata"], json!({"resourceVersion": "42", "continue": "tok"}));
    assert_eq!(list["columnDefinitions"].as_array().map(Vec::len), Some(5));
    assert_eq!(
        list["rows"].as_array().map(|r| r.iter().map(|row| row["cells"][0].clone()).collect::<Vec<_>>()),
        Some(vec![json!("a"), json!("b")])
    );
    assert_eq!(table(sts, &[], json!({}), &opts(IncludeObject::Metadata))["rows"], json!([]));

    let first = watch_table(sts, &objs[0], "43", true, &opts(IncludeObject::Metadata));
    assert_eq!(first["metadata"], json!({"resourceVersion": "43"}));
    assert_eq!(first["columnDefinitions"], Value::from(column_definitions(sts)));
    assert_eq!(first["rows"].as_array().map(Vec::len), Some(1));
    let later = watch_table(sts, &objs[1], "44", false, &opts(IncludeObject::Metadata));
    assert_eq!(later["columnDefinitions"], Value::Null);
    assert_eq!(later["rows"][0]["cells"][0], "b");
}

#[test]
fn quantities_print_in_canonical_form() {
    let cases = [
        (json!("1Gi"), "1Gi"),
        (json!("1024Mi"), "1Gi"),
        (json!("1536Mi"), "1536Mi"),
        (json!("1000M"), "1G"),
        (json!("1000"), "1k"),
        (json!("2048"), "2048"),
        (json!("0Gi"), "0"),
        (json!("1.5Gi"), "1.5Gi"),
        (json!("500m"), "500m"),
        (json!(5), "5"),
    ];
    for (value, expected) in cases {
        assert_eq!(quantity(Some(&value)), expected, "{value}");
    }
    assert_eq!(quantity(None), "0");
}

#[test]
fn label_selectors_print_like_upstream() {
    let cases = [
        (json!(null), Some(""), "<none>"),
        (json!({}), Some(""), "<none>"),
        (json!({"matchLabels": {"b": "2", "a": "1"}}), Some("a=1,b=2"), "a=1,b=2"),
        (
            json!({"matchExpressions": [{"key": "z", "operator": "Exists"}, {"key": "y", "operator": "DoesNotExist"}, {"key": "x", "operator": "NotIn", "values": ["b", "a"]}]}),
            Some("x notin (a,b),!y,z"),
            "x notin (a,b),!y,z",
        ),
        (json!({"matchExpressions": [{"key": "k", "operator": "Near"}]}), None, "<error>"),
        (json!({"matchExpressions": [{"key": "k", "operator": "In", "values": []}]}), None, "<error>"),
    ];
    for (selector, expected, formatted) in cases {
        assert_eq!(label_selector_string(Some(&selector)).as_deref(), expected, "{selector}");
        assert_eq!(format_label_selector(Some(&selector)), formatted, "{selector}");
    }
}
