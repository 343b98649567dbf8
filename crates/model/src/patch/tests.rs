use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;
use crate::resources;

fn sts() -> &'static crate::ResourceInfo {
    resources::find("apps", "v1", "statefulsets").expect("served")
}

fn web() -> Value {
    json!({
        "metadata": {"name": "web", "finalizers": ["a"], "labels": {"app": "nginx", "tier": "x"}},
        "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {
            "containers": [{"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80, "name": "web"}],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}],
            "volumes": [{"name": "www", "emptyDir": {}}]}}}
    })
}

fn smp(doc: &Value, patch: Value) -> Value {
    strategic_merge_patch(sts(), doc, &patch).unwrap_or_else(|e| panic!("{patch}: {e}"))
}

#[test]
fn apply_image_change_with_set_element_order() {
    // kubectl apply's second run, and `kubectl set image`.
    let out = smp(
        &web(),
        json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"image": "nginx:1.26", "name": "nginx"}]}}}}),
    );
    let c = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(c.as_array().map(Vec::len), Some(1));
    assert_eq!(c[0]["image"], "nginx:1.26");
    assert_eq!(c[0]["ports"][0]["containerPort"], 80, "unmentioned fields survive");
}

#[test]
fn containers_add_delete_and_reorder() {
    let added =
        smp(&web(), json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox"}]}}}}));
    let names: Vec<Value> =
        (0..2).map(|i| added["spec"]["template"]["spec"]["containers"][i]["name"].clone()).collect();
    assert_eq!(names, [json!("nginx"), json!("side")]);
    let reordered = smp(
        &added,
        json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "nginx"}]}}}}),
    );
    assert_eq!(reordered["spec"]["template"]["spec"]["containers"][0]["name"], "side");
    let deleted =
        smp(&added, json!({"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}}));
    assert_eq!(deleted["spec"]["template"]["spec"]["containers"].as_array().map(Vec::len), Some(1));
}

#[test]
fn env_merges_by_name_and_null_deletes() {
    let out = smp(
        &web(),
        json!({
            "metadata": {"labels": {"tier": null}},
            "spec": {"template": {"spec": {"containers": [{"name": "nginx", "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}]}]}}}
        }),
    );
    assert_eq!(out["metadata"]["labels"], json!({"app": "nginx"}));
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([
        {"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "C", "value": "3"}])
    );
}

#[test]
fn rollout_undo_replaces_the_template() {
    let template = json!({"metadata": {"labels": {"app": "nginx"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.24"}]}, "$patch": "replace"});
    let out = smp(&web(), json!({"spec": {"template": template}}));
    assert_eq!(
        out["spec"]["template"],
        json!({"metadata": {"labels": {"app": "nginx"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.24"}]}})
    );
    assert_eq!(out["spec"]["replicas"], 2);
}

#[test]
fn rollout_restart_adds_a_template_annotation() {
    let out = smp(
        &web(),
        json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-22T13:18:42Z"}}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "2026-11-22T13:18:42Z"
    );
    assert_eq!(out["spec"]["template"]["metadata"]["labels"]["app"], "nginx");
}

#[test]
fn lists_without_a_strategy_are_replaced_and_sets_union() {
    let doc = json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"volumeClaimTemplates": [{"metadata": {"name": "x"}}]}});
    let out = smp(
        &doc,
        json!({"metadata": {"finalizers": ["b", "c"]}, "spec": {"volumeClaimTemplates": [{"metadata": {"name": "y"}}]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
    assert_eq!(out["spec"]["volumeClaimTemplates"], json!([{"metadata": {"name": "y"}}]));
    let out = smp(&doc, json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}));
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    let out = smp(&doc, json!({"spec": {"volumeClaimTemplates": [{"$patch": "replace"}]}}));
    assert_eq!(out["spec"]["volumeClaimTemplates"], json!([]));
}

#[test]
fn retain_keys_and_unknown_directives() {
    let doc = json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}});
    let out = smp(&doc, json!({"spec": {"updateStrategy": {"$retainKeys": ["type"], "type": "OnDelete"}}}));
    assert_eq!(out["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
    assert!(strategic_merge_patch(sts(), &doc, &json!({"spec": {"$bogus": 1}})).is_err());
    assert!(
        strategic_merge_patch(
            sts(),
            &web(),
            &json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}})
        )
        .is_err(),
        "merge key missing"
    );
}

#[test]
fn service_ports_merge_by_port() {
    let svc = resources::find("", "v1", "services").expect("served");
    let doc = json!({"spec": {"ports": [{"port": 80, "name": "web", "nodePort": 30000}]}});
    let out = strategic_merge_patch(svc, &doc, &json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}))
        .expect("patch");
    assert_eq!(out["spec"]["ports"], json!([{"port": 80, "name": "web", "nodePort": 30000, "targetPort": 8080}]));
}

#[test]
fn json_and_merge_patches() {
    let doc = json!({"spec": {"replicas": 2}, "metadata": {"annotations": {"a": "1"}}});
    let out = json_patch(&doc, &json!([{"op": "replace", "path": "/spec/replicas", "value": 3}])).expect("applies");
    assert_eq!(out["spec"]["replicas"], 3);
    let e = json_patch(&doc, &json!([{"op": "test", "path": "/spec/replicas", "value": 9}])).expect_err("test fails");
    assert_eq!(e.code(), 422);
    assert_eq!(json_patch(&doc, &json!({"op": "x"})).expect_err("not a list").code(), 400);
    let out = merge_patch(&doc, &json!({"metadata": {"annotations": {"a": null, "b": "2"}}})).expect("merges");
    assert_eq!(out["metadata"]["annotations"], json!({"b": "2"}));
}
