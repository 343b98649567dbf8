use super::*;

fn service(publish: bool, target: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "nginx", "namespace": "default"},
        "spec": {"clusterIP": "None", "selector": {"app": "nginx"}, "publishNotReadyAddresses": publish,
                 "ports": [{"name": "web", "port": 80, "targetPort": target}]}
    }))
    .expect("service")
}

fn pod(name: &str, ip: &str, ready: bool, subdomain: Option<&str>) -> Pod {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": {"app": "nginx"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    });
    if let Some(s) = subdomain {
        p["spec"]["subdomain"] = json!(s);
        p["spec"]["hostname"] = json!(name);
    }
    serde_json::from_value(p).expect("pod")
}

#[test]
fn endpoints_split_ready_and_not_ready_with_hostnames_for_the_subdomain() {
    let pods = vec![
        pod("web-0", "10.0.0.2", true, Some("nginx")),
        pod("web-1", "10.0.0.3", false, Some("nginx")),
        pod("other", "10.0.0.4", true, Some("elsewhere")),
    ];
    let subsets = endpoints_subsets(&service(false, json!(80)), &pods);
    let s = &subsets[0];
    let ips = |key: &str| -> Vec<String> {
        s[key]
            .as_array()
            .map(|a| a.iter().map(|x| x["ip"].as_str().unwrap_or("").to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(ips("addresses"), vec!["10.0.0.2", "10.0.0.4"]);
    assert_eq!(ips("notReadyAddresses"), vec!["10.0.0.3"]);
    assert_eq!(s["addresses"][0]["hostname"], "web-0");
    assert!(s["addresses"][1].get("hostname").is_none(), "another subdomain: no hostname");
    assert_eq!(s["ports"], json!([{"name": "web", "port": 80, "protocol": "TCP"}]));
    // publishNotReadyAddresses: every pod is an address.
    let all = endpoints_subsets(&service(true, json!(80)), &pods);
    assert_eq!(all[0]["addresses"].as_array().map(Vec::len), Some(3));
    assert!(all[0].get("notReadyAddresses").is_none());
}

#[test]
fn named_target_ports_resolve_per_pod_and_slices_carry_conditions() {
    let pods = vec![pod("web-0", "10.0.0.2", true, None), pod("web-1", "10.0.0.3", false, None)];
    let svc = service(false, json!("http"));
    let subsets = endpoints_subsets(&svc, &pods);
    assert_eq!(subsets[0]["ports"][0]["port"], 8080);
    let (endpoints, ports) = slice_content(&svc, &pods);
    assert_eq!(ports, json!([{"name": "web", "port": 8080, "protocol": "TCP"}]));
    assert_eq!(endpoints[0]["conditions"], json!({"ready": true, "serving": true, "terminating": false}));
    assert_eq!(endpoints[1]["conditions"], json!({"ready": false, "serving": false, "terminating": false}));
    assert_eq!(endpoints[0]["targetRef"]["name"], "web-0");
    // A terminating ready pod is serving but not ready.
    let mut going = pods.clone();
    going[0].metadata.deletion_timestamp = serde_json::from_value(json!("2026-01-01T00:00:00Z")).ok();
    let (endpoints, _) = slice_content(&svc, &going);
    assert_eq!(endpoints[0]["conditions"], json!({"ready": false, "serving": true, "terminating": true}));
}

#[test]
fn services_without_selectors_and_pods_without_ips_give_nothing() {
    let mut svc = service(false, json!(80));
    svc.spec.as_mut().expect("spec").selector = None;
    assert_eq!(endpoints_subsets(&svc, &[pod("web-0", "10.0.0.2", true, None)]), json!([]));
    assert_eq!(endpoints_subsets(&service(false, json!(80)), &[pod("web-0", "", true, None)]), json!([]));
}
