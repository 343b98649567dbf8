use serde_json::json;

use super::*;

fn pod(extra: serde_json::Value) -> Pod {
    let mut v = json!({
        "metadata": {"name": "web-0", "namespace": "default", "uid": "u-1", "labels": {"app": "nginx"}},
        "spec": {"hostname": "web-0", "subdomain": "nginx", "containers": [{"name": "c", "image": "busybox"}]}
    });
    json_patch::merge(&mut v, &extra);
    serde_json::from_value(v).expect("pod")
}

fn container(v: serde_json::Value) -> Container {
    serde_json::from_value(v).expect("container")
}

fn image() -> ImageDefaults {
    ImageDefaults {
        entrypoint: vec!["/entry".into()],
        cmd: vec!["--serve".into()],
        env: vec!["PATH=/bin".into(), "MODE=image".into()],
        working_dir: "/srv".into(),
        user: "1000".into(),
    }
}

#[test]
fn command_and_args_follow_the_kubernetes_table() {
    let img = image();
    let cases = [
        (json!({"name": "c"}), vec!["/entry", "--serve"]),
        (json!({"name": "c", "command": ["/bin/sh"]}), vec!["/bin/sh"]),
        (json!({"name": "c", "args": ["x"]}), vec!["/entry", "x"]),
        (json!({"name": "c", "command": ["/bin/sh"], "args": ["-c", "true"]}), vec!["/bin/sh", "-c", "true"]),
    ];
    for (c, want) in cases {
        assert_eq!(argv(&container(c.clone()), &img), want, "{c}");
    }
}

#[test]
fn env_merges_expands_and_resolves_references() {
    let p = pod(json!({}));
    let c = container(json!({"name": "c", "args": ["$(GREETING) from $(POD_NAME)", "$$(literal)"], "env": [
        {"name": "MODE", "value": "pod"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "GREETING", "value": "hello $(MODE)"},
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}}
    ]}));
    let mut facts = PodFacts { pod_ip: "10.244.0.7".into(), ..Default::default() };
    facts.config_maps.insert("default/cfg".into(), [("color".to_string(), "blue".to_string())].into());
    facts.secrets.insert("default/creds".into(), [("password".to_string(), "s3cret".to_string())].into());
    let plan = process_plan(&p, &c, &image(), &facts).expect("plan");
    assert_eq!(plan.argv, ["/entry", "hello pod from web-0", "$(literal)"]);
    let env: BTreeMap<String, String> = plan.env.into_iter().collect();
    assert_eq!(env["MODE"], "pod", "the container's env overrides the image's");
    assert_eq!(env["PATH"], "/bin");
    assert_eq!((env["POD_IP"].as_str(), env["APP"].as_str()), ("10.244.0.7", "nginx"));
    assert_eq!((env["COLOR"].as_str(), env["PASSWORD"].as_str()), ("blue", "s3cret"));
    assert_eq!((plan.working_dir.as_str(), plan.user.as_str()), ("/srv", "1000"));

    let missing = container(
        json!({"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]}),
    );
    assert!(matches!(process_plan(&p, &missing, &image(), &facts), Err(ConfigError::MissingRef(_))));
    let optional = container(
        json!({"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}}]}),
    );
    assert!(process_plan(&p, &optional, &image(), &facts).is_ok());
    let nothing = container(json!({"name": "c"}));
    assert_eq!(process_plan(&p, &nothing, &ImageDefaults::default(), &facts), Err(ConfigError::NoCommand));
}

#[test]
fn security_context_user_wins_over_the_image() {
    let p = pod(json!({"spec": {"securityContext": {"runAsUser": 2000, "runAsGroup": 3000}}}));
    let c = container(json!({"name": "c", "securityContext": {"runAsUser": 4000}}));
    assert_eq!(process_plan(&p, &c, &image(), &PodFacts::default()).expect("plan").user, "4000:3000");
}

#[test]
fn hosts_file_names_the_pod_under_its_headless_service() {
    let hosts = hosts_file(&pod(json!({})), "10.244.0.7", "cluster.local");
    assert!(hosts.contains("127.0.0.1\tlocalhost\n"));
    assert!(hosts.ends_with("10.244.0.7\tweb-0.nginx.default.svc.cluster.local\tweb-0\n"), "{hosts}");
    let plain = pod(json!({"spec": {"subdomain": null, "hostname": null}}));
    assert!(hosts_file(&plain, "10.244.0.8", "cluster.local").ends_with("10.244.0.8\tweb-0\n"));
}

#[test]
fn resolv_conf_per_dns_policy() {
    let host = "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n";
    let cluster_first = resolv_conf(&pod(json!({})), "10.244.0.1", "cluster.local", host);
    assert_eq!(
        cluster_first,
        "search default.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.244.0.1\noptions ndots:5\n"
    );
    let default = resolv_conf(&pod(json!({"spec": {"dnsPolicy": "Default"}})), "10.244.0.1", "cluster.local", host);
    assert_eq!(default, "search corp.example\nnameserver 192.0.2.53\noptions edns0\n");
    let none = pod(json!({"spec": {"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["a.b"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]}}}));
    assert_eq!(
        resolv_conf(&none, "10.244.0.1", "cluster.local", host),
        "search a.b\nnameserver 1.1.1.1\noptions ndots:2 rotate\n"
    );
    let tuned = pod(json!({"spec": {"dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}}));
    assert!(
        resolv_conf(&tuned, "10.244.0.1", "cluster.local", host).ends_with("options ndots:1\n"),
        "dnsConfig overrides options"
    );
}

#[test]
fn services_and_env_from_feed_the_environment_in_kubelets_order() {
    let svc = |ns: &str, name: &str, ip: &str, ports: serde_json::Value| -> k8s_openapi::api::core::v1::Service {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports}}))
        .expect("service")
    };
    let services = vec![
        svc("default", "kubernetes", "10.96.0.1", json!([{"name": "https", "port": 443, "protocol": "TCP"}])),
        svc(
            "default",
            "redis-main",
            "10.96.0.9",
            json!([{"port": 6379}, {"name": "dns-udp", "port": 53, "protocol": "UDP"}]),
        ),
        svc("default", "nginx", "None", json!([{"port": 80}])),
        svc("other", "elsewhere", "10.96.0.7", json!([{"port": 1}])),
    ];
    let mut facts = PodFacts { services, ..Default::default() };
    facts
        .config_maps
        .insert("default/cfg".into(), [("color".into(), "blue".into()), ("1bad".into(), "x".into())].into());
    let p = pod(json!({}));
    let c = container(json!({"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "APP_"}],
        "env": [{"name": "APP_color", "value": "red"}, {"name": "URL", "value": "https://$(KUBERNETES_SERVICE_HOST)"}]}));
    let env: BTreeMap<String, String> = process_plan(&p, &c, &image(), &facts).expect("plan").env.into_iter().collect();
    let want = [
        ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
        ("KUBERNETES_SERVICE_PORT", "443"),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
        ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
        ("KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"),
        ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
        ("KUBERNETES_PORT_443_TCP_PORT", "443"),
        ("KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"),
        ("REDIS_MAIN_SERVICE_PORT", "6379"),
        ("REDIS_MAIN_SERVICE_PORT_DNS_UDP", "53"),
        ("REDIS_MAIN_PORT_53_UDP", "udp://10.96.0.9:53"),
        ("APP_color", "red"), // env over envFrom
        ("URL", "https://10.96.0.1"),
    ];
    for (k, v) in want {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert_eq!(env.get("APP_1bad").map(String::as_str), Some("x"), "the prefix makes the key a valid name");
    let bare = container(json!({"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}]}));
    let bare_env = process_plan(&p, &bare, &image(), &facts).expect("plan").env;
    assert!(bare_env.iter().any(|(k, _)| k == "color") && !bare_env.iter().any(|(k, _)| k == "1bad"), "{bare_env:?}");
    assert!(!env.keys().any(|k| k.starts_with("NGINX_") || k.starts_with("ELSEWHERE_")), "{env:?}");

    // enableServiceLinks: false keeps only the kubernetes Service.
    let quiet = pod(json!({"spec": {"enableServiceLinks": false}}));
    let env: BTreeMap<String, String> =
        process_plan(&quiet, &c, &image(), &facts).expect("plan").env.into_iter().collect();
    assert!(env.contains_key("KUBERNETES_SERVICE_HOST") && !env.contains_key("REDIS_MAIN_SERVICE_HOST"));

    // A missing envFrom source is an error unless optional.
    let missing = container(json!({"name": "c", "envFrom": [{"secretRef": {"name": "nope"}}]}));
    assert_eq!(
        process_plan(&p, &missing, &image(), &facts),
        Err(ConfigError::MissingRef("secret \"nope\" not found".into()))
    );
    let optional = container(json!({"name": "c", "envFrom": [{"secretRef": {"name": "nope", "optional": true}}]}));
    assert!(process_plan(&p, &optional, &image(), &facts).is_ok());
}
