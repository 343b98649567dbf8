use serde_json::json;

use super::*;
use crate::resources;

#[test]
fn seed_statefulset_gets_upstream_defaults() {
    let info = resources::find("apps", "v1", "statefulsets").expect("served");
    let mut sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
        "spec": {"serviceName": "nginx", "selector": {"matchLabels": {"app": "nginx"}},
            "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [
                {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}],
                 "readinessProbe": {"httpGet": {"port": 80}}}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}});
    apply_defaults(info, &mut sts).expect("decodes");
    let spec = &sts["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["podManagementPolicy"], "OrderedReady");
    assert_eq!(spec["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["persistentVolumeClaimRetentionPolicy"], json!({"whenDeleted": "Retain", "whenScaled": "Retain"}));
    assert_eq!(spec["volumeClaimTemplates"][0]["spec"]["volumeMode"], "Filesystem");
    let pod = &spec["template"]["spec"];
    assert_eq!(
        (pod["restartPolicy"].clone(), pod["dnsPolicy"].clone(), pod["terminationGracePeriodSeconds"].clone()),
        (json!("Always"), json!("ClusterFirst"), json!(30))
    );
    let c = &pod["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always", "untagged images are pulled always");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["readinessProbe"]["periodSeconds"], 10);
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTP");
}

#[test]
fn on_delete_gets_no_rolling_update_block() {
    let info = resources::find("apps", "v1", "statefulsets").expect("served");
    let mut sts =
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"updateStrategy": {"type": "OnDelete"}}});
    apply_defaults(info, &mut sts).expect("decodes");
    assert_eq!(sts["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
}

#[test]
fn services_default_type_protocol_and_target_port() {
    let info = resources::find("", "v1", "services").expect("served");
    let mut svc = json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "NodePort", "ports": [{"port": 80, "name": "web"}]}});
    apply_defaults(info, &mut svc).expect("decodes");
    assert_eq!(svc["spec"]["ports"][0], json!({"port": 80, "name": "web", "protocol": "TCP", "targetPort": 80}));
    assert_eq!(svc["spec"]["sessionAffinity"], "None");
    assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
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
    ] {
        assert_eq!(image_pull_policy(image), want, "{image}");
    }
}

#[test]
fn undecodable_objects_are_bad_requests() {
    let info = resources::find("apps", "v1", "statefulsets").expect("served");
    let mut bad = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"replicas": "three"}});
    let e = apply_defaults(info, &mut bad).expect_err("replicas must be a number");
    assert_eq!(e.code, 400);
    assert!(
        e.message.starts_with(r#"StatefulSet in version "v1" cannot be handled as a StatefulSet"#),
        "{}",
        e.message
    );
}
