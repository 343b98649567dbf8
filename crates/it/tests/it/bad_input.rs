//! Bad input gets a Kubernetes `Status` with the right code and changes nothing.

use it::TestServer;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

/// Send a raw request through the in-process client; return (status, parsed body).
async fn send(
    client: &kube::Client,
    method: &str,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let req = http::Request::builder().method(method).uri(uri).header("content-type", content_type).body(body)?;
    let resp = client.send(req.map(kube::client::Body::from)).await?;
    let status = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body()).await?.to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok((status, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_unknown_and_wrong_method() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client();
    let cms = "/api/v1/namespaces/default/configmaps";

    let (code, body) = send(&client, "POST", cms, "application/json", b"{not json".to_vec()).await?;
    assert_eq!((code, body["kind"].as_str(), body["reason"].as_str()), (400, Some("Status"), Some("BadRequest")));

    let (code, body) = send(&client, "POST", cms, "application/yaml", b"metadata: [unclosed".to_vec()).await?;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));

    let big = format!(r#"{{"metadata":{{"name":"big"}},"data":{{"x":"{}"}}}}"#, "a".repeat(3 * 1024 * 1024 + 1));
    let (code, body) = send(&client, "POST", cms, "application/json", big.into_bytes()).await?;
    assert_eq!((code, body["reason"].as_str()), (413, Some("RequestEntityTooLarge")));

    let (code, body) =
        send(&client, "GET", "/apis/apps/v1/namespaces/default/widgets", "application/json", Vec::new()).await?;
    assert_eq!((code, body["reason"].as_str()), (404, Some("NotFound")));

    let (code, body) =
        send(&client, "POST", "/api/v1/namespaces/default/configmaps/x", "application/json", b"{}".to_vec()).await?;
    assert_eq!((code, body["reason"].as_str()), (405, Some("MethodNotAllowed")));

    let (code, _) =
        send(&client, "PATCH", "/api/v1/namespaces/default/configmaps/x", "text/plain", b"{}".to_vec()).await?;
    assert_eq!(code, 415);

    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n";
    let (code, body) = send(&client, "POST", cms, "application/yaml", yaml.as_bytes().to_vec()).await?;
    assert_eq!((code, body["data"]["k"].as_str()), (201, Some("v")));

    let wrong_kind = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#;
    let (code, _) = send(&client, "POST", cms, "application/json", wrong_kind.as_bytes().to_vec()).await?;
    assert_eq!(code, 400);

    let (code, body) = send(
        &client,
        "POST",
        &format!("{cms}?fieldValidation=Strict"),
        "application/json",
        br#"{"metadata":{"name":"strict"},"dta":{"k":"v"}}"#.to_vec(),
    )
    .await?;
    assert_eq!(code, 400);
    assert!(body["message"].as_str().unwrap_or("").contains("dta"), "{body}");

    // Only the YAML object was written.
    let names: Vec<String> = Api::<ConfigMap>::default_namespaced(client)
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    assert_eq!(names, ["from-yaml"]);
    server.stop().await;
    Ok(())
}

/// Non-ASCII selectors used to panic the request (a dropped connection); they are refused with
/// a 400 `Status` naming what is wrong, as kube-apiserver refuses them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_ascii_selectors_are_bad_requests() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client();
    let pods = "/api/v1/namespaces/default/pods";
    for (query, message) in [
        ("fieldSelector=%C3%A9%3Dx", "field label not supported: é"),
        ("fieldSelector=%C3%A9", "invalid selector: 'é'; can't understand 'é'"),
        ("fieldSelector=metadata.name%3D%5C%C3%A9", "invalid field selector: invalid escape sequence: \\é"),
        ("labelSelector=%C2%A0", "unable to parse requirement: key: Invalid value: \"\\u{a0}\": name part must"),
        ("labelSelector=app%3D%C3%A9", "unable to parse requirement: values[0][key]: Invalid value: \"é\""),
        ("labelSelector=app+in+(%C3%A9", "unable to parse requirement: values[0][key]: Invalid value: \"é\""),
    ] {
        for verb in ["GET", "DELETE"] {
            let (code, body) = send(&client, verb, &format!("{pods}?{query}"), "application/json", Vec::new()).await?;
            assert_eq!(
                (code, body["kind"].as_str(), body["reason"].as_str()),
                (400, Some("Status"), Some("BadRequest")),
                "{verb} {query}: {body}"
            );
            let got = body["message"].as_str().unwrap_or_default();
            assert!(got.starts_with(message), "{verb} {query}: {got}");
        }
    }
    let (code, _) = send(&client, "GET", &format!("{pods}?watch=true&labelSelector=%C2%A0"), "", Vec::new()).await?;
    assert_eq!(code, 400);
    server.stop().await;
    Ok(())
}

/// A JSON patch is bounded as kube-apiserver bounds it: at most 10 000 operations (413), and
/// at most 3 MiB added by `copy` (422; thirty copies of the root would take the server's
/// memory). The object is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_patches_within_upstreams_limits() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let client = server.client();
    let cm = "/api/v1/namespaces/default/configmaps/bomb";
    let created = serde_json::json!({"metadata": {"name": "bomb"}, "data": {"a": "x".repeat(100)}});
    let (code, _) = send(
        &client,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        "application/json",
        created.to_string().into_bytes(),
    )
    .await?;
    assert_eq!(code, 201);
    let copies: Vec<serde_json::Value> = (0..30)
        .map(|i| serde_json::json!({"op": "copy", "from": "/data", "path": format!("/metadata/annotations{i}")}))
        .chain((0..30).map(|i| serde_json::json!({"op": "copy", "from": "", "path": format!("/data/k{i}")})))
        .collect();
    let body = serde_json::to_vec(&copies)?;
    let (code, status) = send(&client, "PATCH", cm, "application/json-patch+json", body).await?;
    assert_eq!((code, status["reason"].as_str()), (422, Some("Invalid")), "{status}");
    assert!(status["message"].as_str().unwrap_or_default().contains("exceeding the limit 3145728"), "{status}");
    let many = vec![serde_json::json!({"op": "test", "path": "/metadata/name", "value": "bomb"}); 10_001];
    let (code, status) = send(&client, "PATCH", cm, "application/json-patch+json", serde_json::to_vec(&many)?).await?;
    assert_eq!((code, status["reason"].as_str()), (413, Some("RequestEntityTooLarge")), "{status}");
    assert_eq!(status["message"], "The allowed maximum operations in a JSON patch is 10000, got 10001");
    let (code, stored) = send(&client, "GET", cm, "", Vec::new()).await?;
    assert_eq!((code, stored["data"].as_object().map(|d| d.len())), (200, Some(1)));
    server.stop().await;
    Ok(())
}
