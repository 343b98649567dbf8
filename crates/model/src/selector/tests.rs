use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::resources;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn label_selector_operators() {
    let l = labels(&[("app", "nginx"), ("tier", "web")]);
    let cases = [
        ("", true),
        ("app=nginx", true),
        ("app==nginx", true),
        ("app = nginx , tier=web", true),
        ("app!=nginx", false),
        ("app!=redis", true),
        ("missing!=x", true),
        ("app in (nginx, redis)", true),
        ("app in (redis)", false),
        ("app notin (redis)", true),
        ("missing notin (x)", true),
        ("app notin (nginx)", false),
        ("tier", true),
        ("!tier", false),
        ("!missing", true),
        ("app=nginx,!missing,tier in (web)", true),
        ("example.com/role", false),
    ];
    for (s, want) in cases {
        let sel = LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(sel.matches(&l), want, "{s}");
    }
}

#[test]
fn label_selector_errors() {
    for bad in ["app=", "=x", "app in ()", "app in (a", "app=a b", "Bad Key=x", "app=no spaces allowed", "a,,b"] {
        if bad == "app=" {
            // An empty value is a valid (empty) label value.
            assert!(LabelSelector::parse(bad).is_ok());
            continue;
        }
        assert!(LabelSelector::parse(bad).is_err(), "{bad} should not parse");
    }
}

#[test]
fn structured_selectors_and_display() {
    let sel: metav1::LabelSelector = serde_json::from_value(json!({
        "matchLabels": {"app": "nginx"},
        "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}, {"key": "gone", "operator": "DoesNotExist"}]
    }))
    .expect("selector");
    let sel = LabelSelector::from_k8s(&sel).expect("valid");
    assert_eq!(sel.to_string(), "app=nginx,!gone,tier in (a,b)");
    assert!(sel.matches(&labels(&[("app", "nginx"), ("tier", "b")])));
    assert!(!sel.matches(&labels(&[("app", "nginx"), ("tier", "b"), ("gone", "x")])));
    let bad: metav1::LabelSelector =
        serde_json::from_value(json!({"matchExpressions": [{"key": "k", "operator": "Near"}]})).expect("shape");
    assert!(LabelSelector::from_k8s(&bad).is_err());
}

#[test]
fn field_selectors_per_kind() {
    let pods = resources::find("", "v1", "pods").expect("pods");
    let cms = resources::find("", "v1", "configmaps").expect("configmaps");
    let events = resources::find("", "v1", "events").expect("events");
    let pod = json!({"metadata": {"name": "web-0", "namespace": "default"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});

    let sel = FieldSelector::parse_for(pods, "metadata.name=web-0,status.phase=Running").expect("valid");
    assert!(sel.matches(pods, &pod));
    let sel = FieldSelector::parse_for(pods, "spec.nodeName!=n1").expect("valid");
    assert!(!sel.matches(pods, &pod));
    let sel = FieldSelector::parse_for(pods, "spec.nodeName==").expect("valid");
    assert!(!sel.matches(pods, &pod));
    assert_eq!(FieldSelector::parse_for(pods, "metadata.name=web-0").expect("valid").single_name(), Some("web-0"));

    let e = FieldSelector::parse_for(cms, "status.phase=Running").expect_err("not selectable on configmaps");
    assert_eq!(e.to_string(), "field label not supported: status.phase");

    let event = json!({"involvedObject": {"kind": "StatefulSet", "name": "web", "namespace": "default", "uid": "u1"}, "type": "Normal"});
    let sel = FieldSelector::parse_for(
        events,
        "involvedObject.name=web,involvedObject.namespace=default,involvedObject.kind=StatefulSet,involvedObject.uid=u1",
    )
    .expect("valid");
    assert!(sel.matches(events, &event));
}

#[test]
fn field_selector_escapes() {
    let sel = FieldSelector::parse(r"metadata.name=a\,b,metadata.namespace=x").expect("valid");
    assert_eq!(sel.terms()[0].value, "a,b");
    assert_eq!(sel.terms().len(), 2);
    assert!(FieldSelector::parse("nonsense").is_err());
}
