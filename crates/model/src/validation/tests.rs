use serde_json::{Value, json};

use super::*;
use crate::resources;

fn info(group: &str, plural: &str) -> &'static ResourceInfo {
    resources::find(group, "v1", plural).expect("served")
}

fn sts() -> Value {
    let mut v = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"serviceName": "nginx", "replicas": 2, "selector": {"matchLabels": {"app": "nginx"}},
            "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {"containers": [{"name": "nginx", "image": "nginx",
                "ports": [{"containerPort": 80, "name": "web"}], "volumeMounts": [{"name": "www", "mountPath": "/data"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}]}});
    crate::defaults::apply_defaults(info("apps", "statefulsets"), &mut v).expect("defaults");
    v
}

/// The errors as upstream prints them: `field: message`.
fn rendered(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(|e| e.to_string()).collect()
}

#[test]
fn a_seed_statefulset_is_valid() {
    assert_eq!(rendered(&validate_create(info("apps", "statefulsets"), &sts())), Vec::<String>::new());
}

#[test]
fn statefulset_create_errors() {
    let i = info("apps", "statefulsets");
    let mut v = sts();
    v["spec"]["template"]["metadata"]["labels"] = json!({"app": "other"});
    v["spec"]["replicas"] = json!(-1);
    v["spec"]["podManagementPolicy"] = json!("Sometimes");
    v["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
    v["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
    let errs = rendered(&validate_create(i, &v));
    assert_eq!(
        errs,
        [
            r#"spec.template.metadata.labels: Invalid value: {"app":"other"}: `selector` does not match template `labels`"#,
            "spec.template.spec.containers[0].image: Required value",
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            r#"spec.podManagementPolicy: Unsupported value: "Sometimes": supported values: "OrderedReady", "Parallel""#,
            r#"spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always""#,
        ]
    );
    let mut v = sts();
    v["spec"].as_object_mut().map(|s| s.remove("selector"));
    assert_eq!(rendered(&validate_create(i, &v)), ["spec.selector: Required value"]);
    let mut v = sts();
    v["metadata"]["name"] = json!("Web_1");
    assert!(
        rendered(&validate_create(i, &v))[0]
            .starts_with(r#"metadata.name: Invalid value: "Web_1": a lowercase RFC 1123 label"#)
    );
}

#[test]
fn statefulset_updates_only_touch_mutable_fields() {
    let i = info("apps", "statefulsets");
    let old = sts();
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(5);
    new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    new["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    assert!(validate_update(i, &old, &new).is_empty());
    new["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    assert_eq!(
        rendered(&validate_update(i, &old, &new)),
        [
            "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
        ]
    );
}

#[test]
fn services() {
    let i = info("", "services");
    let headless = json!({"metadata": {"name": "nginx", "namespace": "default"}, "spec": {"clusterIP": "None", "type": "ClusterIP"}});
    assert!(validate_create(i, &headless).is_empty(), "headless services may have no ports");
    let two_unnamed = json!({"metadata": {"name": "s", "namespace": "default"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}, {"port": 81}]}});
    assert_eq!(
        rendered(&validate_create(i, &two_unnamed)),
        ["spec.ports[0].name: Required value", "spec.ports[1].name: Required value"]
    );
    let node_port_on_cluster_ip = json!({"metadata": {"name": "s", "namespace": "default"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30001}]}});
    assert_eq!(validate_create(i, &node_port_on_cluster_ip).len(), 1);
    let old = json!({"metadata": {"name": "s", "namespace": "default"}, "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.5", "ports": [{"port": 80}]}});
    let mut new = old.clone();
    new["spec"]["clusterIP"] = json!("10.96.0.6");
    assert_eq!(
        rendered(&validate_update(i, &old, &new)),
        [r#"spec.clusterIPs[0]: Invalid value: ["10.96.0.6"]: may not change once set"#]
    );
}

#[test]
fn claims_grow_but_never_shrink_and_are_otherwise_immutable() {
    let i = info("", "persistentvolumeclaims");
    let old = json!({"metadata": {"name": "www-web-0", "namespace": "default"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"}});
    assert!(validate_create(i, &old).is_empty());
    let mut grown = old.clone();
    grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    grown["spec"]["volumeName"] = json!("pv-1");
    assert!(validate_update(i, &old, &grown).is_empty());
    let mut shrunk = old.clone();
    shrunk["spec"]["resources"]["requests"]["storage"] = json!("500Mi");
    assert_eq!(validate_update(i, &old, &shrunk).len(), 1);
    let mut changed = old.clone();
    changed["spec"]["accessModes"] = json!(["ReadWriteMany"]);
    assert!(rendered(&validate_update(i, &old, &changed))[0].starts_with("spec: Forbidden: spec is immutable"));
    let empty = json!({"metadata": {"name": "c", "namespace": "default"}, "spec": {}});
    assert_eq!(validate_create(i, &empty).len(), 2);
}

#[test]
fn persistent_volumes_need_exactly_one_source() {
    let i = resources::find("", "v1", "persistentvolumes").expect("served");
    let pv = json!({"metadata": {"name": "test-0"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/mnt/test-0"}}});
    assert!(validate_create(i, &pv).is_empty());
    let none =
        json!({"metadata": {"name": "x"}, "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
    assert_eq!(rendered(&validate_create(i, &none)), ["spec: Required value: must specify a volume type"]);
}

#[test]
fn pods_may_only_change_images() {
    let i = info("", "pods");
    let old = json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [{"name": "c", "image": "a"}]}});
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("b");
    assert!(validate_update(i, &old, &new).is_empty());
    new["spec"]["containers"][0]["args"] = json!(["x"]);
    assert_eq!(validate_update(i, &old, &new).len(), 1);
}

#[test]
fn config_keys_and_labels() {
    let i = info("", "configmaps");
    let cm = json!({"metadata": {"name": "c", "namespace": "default", "labels": {"bad key": "v"}}, "data": {"ok.key": "v", "bad/key": "v"}});
    let errs = validate_create(i, &cm);
    assert_eq!(errs.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["metadata.labels", "data"]);
}
