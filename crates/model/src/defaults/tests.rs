use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;
use crate::resources;

fn info(group: &str, plural: &str) -> &'static ResourceInfo {
    resources::find(group, "v1", plural).expect("served")
}

fn defaulted(group: &str, plural: &str, mut obj: Value) -> Value {
    apply_defaults(info(group, plural), &mut obj).expect("decodes");
    obj
}

/// `test-statefulset.yaml` from the seeds, as kubectl sends it.
fn seed_statefulset() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"creationTimestamp": null, "labels": {"app": "statefulset-test"}, "name": "statefulset-test",
            "namespace": "default"},
        "spec": {"serviceName": "test-statefulset-svc", "replicas": 3,
            "selector": {"matchLabels": {"app": "statefulset-test"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
            "template": {"metadata": {"labels": {"app": "statefulset-test"}},
                "spec": {"containers": [{"image": "nginx", "name": "nginx", "resources": {},
                    "volumeMounts": [{"name": "www", "mountPath": "/usr/share/nginx/html"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}})
}

#[test]
fn seed_statefulset_gets_exactly_upstreams_defaults() {
    let sts = defaulted("apps", "statefulsets", seed_statefulset());
    assert_eq!(
        sts["spec"],
        json!({
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "podManagementPolicy": "OrderedReady",
            "replicas": 3,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "statefulset-test"}},
            "serviceName": "test-statefulset-svc",
            "template": {"metadata": {"labels": {"app": "statefulset-test"}}, "spec": {
                "containers": [{"image": "nginx", "imagePullPolicy": "Always", "name": "nginx", "resources": {},
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                    "volumeMounts": [{"mountPath": "/usr/share/nginx/html", "name": "www"}]}],
                "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                "securityContext": {}, "terminationGracePeriodSeconds": 30}},
            "updateStrategy": {"rollingUpdate": {"partition": 2}, "type": "RollingUpdate"},
            "volumeClaimTemplates": [{"metadata": {"name": "www"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                    "volumeMode": "Filesystem"},
                "status": {"phase": "Pending"}}],
        })
    );
    assert_eq!(sts["metadata"].get("creationTimestamp"), None, "nulls are dropped");
}

#[test]
fn statefulset_update_strategy_follows_upstream() {
    for (given, want) in [
        (json!(null), json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})),
        (json!({"type": "OnDelete"}), json!({"type": "OnDelete"})),
        // An explicit type gets no rollingUpdate block, as upstream.
        (json!({"type": "RollingUpdate"}), json!({"type": "RollingUpdate"})),
        (
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}),
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2, "partition": 0}}),
        ),
    ] {
        let mut sts = seed_statefulset();
        sts["spec"]["updateStrategy"] = given.clone();
        let sts = defaulted("apps", "statefulsets", sts);
        assert_eq!(sts["spec"]["updateStrategy"], want, "{given}");
    }
}

#[test]
fn a_missing_selector_stays_missing() {
    let mut sts = seed_statefulset();
    sts["spec"].as_object_mut().map(|s| s.remove("selector"));
    sts["spec"]["template"]["spec"]["containers"][0].as_object_mut().map(|c| c.remove("name"));
    let sts = defaulted("apps", "statefulsets", sts);
    assert_eq!(sts["spec"].get("selector"), None);
    assert_eq!(sts["spec"]["template"]["spec"]["containers"][0].get("name"), None);
}

#[test]
fn pods_get_pod_only_defaults_but_templates_do_not() {
    let pod = defaulted(
        "",
        "pods",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"hostNetwork": true, "containers": [{
            "name": "c", "image": "busybox:1.36", "ports": [{"containerPort": 8080}],
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "100m"}},
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            "livenessProbe": {"httpGet": {"port": 8080}, "periodSeconds": 0},
            "readinessProbe": {"grpc": {"port": 9000}, "timeoutSeconds": 5}}],
            "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "cfg"}},
                {"name": "host", "hostPath": {"path": "/tmp"}}]}}),
    );
    let spec = &pod["spec"];
    assert_eq!(spec["enableServiceLinks"], true);
    let c = &spec["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["ports"][0], json!({"containerPort": 8080, "hostPort": 8080, "protocol": "TCP"}));
    assert_eq!(c["resources"]["requests"], json!({"cpu": "100m", "memory": "64Mi"}), "requests default to limits");
    assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    assert_eq!(
        c["livenessProbe"],
        json!({"failureThreshold": 3, "httpGet": {"path": "/", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10,
            "successThreshold": 1, "timeoutSeconds": 1})
    );
    assert_eq!(c["readinessProbe"]["grpc"], json!({"port": 9000, "service": ""}));
    assert_eq!(c["readinessProbe"]["timeoutSeconds"], 5);
    assert_eq!(spec["volumes"][0], json!({"emptyDir": {}, "name": "scratch"}));
    assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
    assert_eq!(spec["volumes"][2]["hostPath"], json!({"path": "/tmp", "type": ""}));

    let mut sts = seed_statefulset();
    sts["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({"limits": {"cpu": "1"}});
    let sts = defaulted("apps", "statefulsets", sts);
    let template = &sts["spec"]["template"]["spec"];
    assert_eq!(template.get("enableServiceLinks"), None);
    assert_eq!(template["containers"][0]["resources"], json!({"limits": {"cpu": "1"}}));
}

#[test]
fn services_headless_and_node_port() {
    let headless = defaulted(
        "",
        "services",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
            "spec": {"clusterIP": "None", "ports": [{"name": "web", "port": 80}], "selector": {"app": "nginx"}}}),
    );
    assert_eq!(
        headless["spec"],
        json!({"clusterIP": "None", "internalTrafficPolicy": "Cluster",
            "ports": [{"name": "web", "port": 80, "protocol": "TCP", "targetPort": 80}],
            "selector": {"app": "nginx"}, "sessionAffinity": "None", "type": "ClusterIP"})
    );
    let node_port = defaulted(
        "",
        "services",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "targetPort": "web", "nodePort": 30000}]}}),
    );
    assert_eq!(node_port["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(node_port["spec"]["ports"][0]["targetPort"], "web");
    let lb = defaulted(
        "",
        "services",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP", "ports": [{"port": 443}]}}),
    );
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(lb["spec"]["sessionAffinityConfig"], json!({"clientIP": {"timeoutSeconds": 10800}}));
    let external = defaulted(
        "",
        "services",
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}}),
    );
    assert_eq!(external["spec"].get("internalTrafficPolicy"), None);
}

#[test]
fn storage_kinds() {
    let pvc = defaulted(
        "",
        "persistentvolumeclaims",
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    assert_eq!((&pvc["spec"]["volumeMode"], &pvc["status"]["phase"]), (&json!("Filesystem"), &json!("Pending")));
    let pv = defaulted(
        "",
        "persistentvolumes",
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "test-0"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/mnt/test-0"}}}),
    );
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pv["spec"]["hostPath"]["type"], "");
    let sc = defaulted(
        "storage.k8s.io",
        "storageclasses",
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "local"},
            "provisioner": "ordinal.dev/local-path"}),
    );
    assert_eq!((&sc["reclaimPolicy"], &sc["volumeBindingMode"]), (&json!("Delete"), &json!("Immediate")));
}

#[test]
fn other_kinds() {
    let d = defaulted(
        "apps",
        "deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:latest"}]}}}}),
    );
    assert_eq!(
        d["spec"]["strategy"],
        json!({"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"})
    );
    assert_eq!((&d["spec"]["replicas"], &d["spec"]["revisionHistoryLimit"]), (&json!(1), &json!(10)));
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"], "Always");
    let rs = defaulted(
        "apps",
        "replicasets",
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"}}),
    );
    assert_eq!(rs["spec"]["replicas"], 1);
    let secret = defaulted(
        "",
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}),
    );
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["data"], json!({"password": "aHVudGVyMg=="}), "stringData folds into data");
    assert_eq!(secret.get("stringData"), None);
    let ns =
        defaulted("", "namespaces", json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}));
    assert_eq!(ns["metadata"]["labels"], json!({"kubernetes.io/metadata.name": "team-a"}));
    assert_eq!(ns["status"], json!({"phase": "Active"}));
    assert_eq!(ns.get("spec"), None, "spec.finalizers is the create strategy's, not a default");
    let slice = defaulted(
        "discovery.k8s.io",
        "endpointslices",
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "e"},
            "addressType": "IPv4", "endpoints": [], "ports": [{"port": 80}]}),
    );
    assert_eq!(slice["ports"][0], json!({"name": "", "port": 80, "protocol": "TCP"}));
}

#[test]
fn unknown_fields_are_dropped_when_not_rejected() {
    let cm = defaulted(
        "",
        "configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}, "bogus": 1}),
    );
    assert_eq!(cm, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}));
}

#[test]
fn resource_quantities_are_checked_and_rounded_to_millis() {
    let mut sts = seed_statefulset();
    sts["spec"]["template"]["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "100n"}});
    let sts = defaulted("apps", "statefulsets", sts);
    assert_eq!(sts["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"], "1m");

    let mut bad = seed_statefulset();
    bad["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] = json!("1 Gi");
    let e = apply_defaults(info("apps", "statefulsets"), &mut bad).expect_err("not a quantity");
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            400,
            r#"StatefulSet in version "v1" cannot be handled as a StatefulSet: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"#
        )
    );
}

#[test]
fn image_pull_policy_follows_the_tag() {
    for (image, want) in [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("localhost:5000/app", "Always"),
        ("localhost:5000/app:v1", "IfNotPresent"),
        ("app@sha256:abc", "IfNotPresent"),
        ("app:latest@sha256:abc", "Always"),
        ("", "IfNotPresent"),
    ] {
        assert_eq!(image_pull_policy(image), want, "{image}");
    }
}

#[test]
fn undecodable_objects_are_bad_requests_naming_the_field() {
    let mut bad = seed_statefulset();
    bad["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": "eighty"}]);
    let e = apply_defaults(info("apps", "statefulsets"), &mut bad).expect_err("containerPort must be a number");
    assert_eq!(e.code, 400);
    assert!(
        e.message.starts_with(
            r#"StatefulSet in version "v1" cannot be handled as a StatefulSet: spec.template.spec.containers[0].ports[0].containerPort: invalid type: string "eighty""#
        ),
        "{}",
        e.message
    );
}

#[test]
fn defaulting_reports_the_unknown_fields_it_drops() {
    let mut obj = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
        "data": {"k": "v"}, "dta": {"k": "v"}});
    let defaulted = apply_defaults(info("", "configmaps"), &mut obj).expect("decodes");
    assert_eq!(defaulted.unknown_fields, ["dta"]);
    assert!(obj.get("dta").is_none());
    assert_eq!(
        crate::schema::unknown_fields(
            info("", "configmaps"),
            &serde_json::json!({"apiVersion": "v1",
        "kind": "ConfigMap", "dta": {}})
        ),
        ["dta"],
        "the same answer as the standalone check"
    );
}
