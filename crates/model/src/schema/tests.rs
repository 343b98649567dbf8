use serde_json::{Value, json};

use super::*;
use crate::resources;

fn unknown(group: &str, plural: &str, obj: Value) -> Vec<String> {
    unknown_fields(resources::find(group, "v1", plural).expect("served"), &obj)
}

fn sts(spec_extra: Value, container_extra: Value) -> Value {
    let mut container = json!({"name": "nginx", "image": "nginx", "resources": {},
        "ports": [{"containerPort": 80, "name": "web"}]});
    if let (Some(c), Some(extra)) = (container.as_object_mut(), container_extra.as_object()) {
        c.extend(extra.clone());
    }
    let mut spec = json!({"serviceName": "nginx", "replicas": 2, "selector": {"matchLabels": {"app": "nginx"}},
        "template": {"metadata": {"creationTimestamp": null, "labels": {"app": "nginx"}}, "spec": {"containers": [container]}},
        "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}}]});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
        s.extend(extra.clone());
    }
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": null,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": spec, "status": {}})
}

#[test]
fn typos_are_reported_with_their_path_in_body_order() {
    assert_eq!(
        unknown("apps", "statefulsets", sts(json!({"replicaz": 3}), json!({"imagePullPolice": "Always"}))),
        ["spec.template.spec.containers[0].imagePullPolice", "spec.replicaz"]
    );
    let mut top = sts(json!({}), json!({}));
    top["metadata"]["lables"] = json!({"a": "b"});
    top["extra"] = json!(true);
    top["spec"]["volumeClaimTemplates"][0]["spec"]["storageClass"] = json!("fast");
    assert_eq!(
        unknown("apps", "statefulsets", top),
        ["metadata.lables", "spec.volumeClaimTemplates[0].spec.storageClass", "extra"]
    );
}

#[test]
fn what_kubectl_sends_is_never_unknown() {
    for (label, obj) in [
        ("creationTimestamp: null, status: {}, resources: {}", sts(json!({}), json!({}))),
        ("nulls anywhere", sts(json!({"ordinals": null}), json!({"command": null}))),
        ("empty lists and maps", sts(json!({"volumeClaimTemplates": []}), json!({"env": [], "args": []}))),
    ] {
        assert_eq!(unknown("apps", "statefulsets", obj), Vec::<String>::new(), "{label}");
    }
}

#[test]
fn free_form_maps_are_never_unknown() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "annotations": {}},
        "data": {"whatever.key": "v", "spec": "x"}});
    assert!(unknown("", "configmaps", cm).is_empty());
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": {"any/key": "x"}},
        "spec": {"ports": [{"port": 80, "targetPort": "web"}], "selector": {"app": "x"}, "clusterIP": "None"}});
    assert!(unknown("", "services", svc).is_empty());
    let revision = json!({"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "web-1"},
        "revision": 1, "data": {"spec": {"template": {"anything": {"goes": null}}}}});
    assert!(unknown("apps", "controllerrevisions", revision).is_empty());
}

#[test]
fn undecodable_bodies_report_nothing_here() {
    assert!(unknown("apps", "statefulsets", sts(json!({"replicas": "two", "replicaz": 1}), json!({}))).is_empty());
}
