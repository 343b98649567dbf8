//! The Kubernetes REST API over the store.
//!
//! Request flow: `auth` (bearer token, or the in-process marker) → `path` (what is addressed) →
//! `handlers` (verb dispatch; writes run decode → default → prepare → validate → store as one
//! atomic store mutation) → `media` (JSON or Table out). Discovery and OpenAPI documents are
//! computed from the resource registry (`model::RESOURCES`). `router` builds the whole app;
//! `serve` runs it over TLS; `internal_service` is the same app for in-process clients (no TCP).
//!
//! Only this crate decides validity, defaults, resourceVersions and conflicts, and only
//! `error.rs` turns an error into a `Status` response.

mod alloc;
mod convert;
mod error;
mod handlers;
mod media;
mod object;
mod path;
mod proto_body;
mod strategy;
mod watch;

pub mod discovery;
pub mod openapi;
pub mod serve;
pub mod streams;
pub mod table;
pub mod tls;
pub mod tokens;

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use model::ApiError;
use serde_json::{Value, json};
use store::Store;
use tokio_util::sync::CancellationToken;

pub use error::status_response;

/// Static configuration of the API server.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The bearer token that authenticates as cluster admin.
    pub admin_token: String,
    /// Service virtual IPs come from this network.
    pub service_network: Ipv4Addr,
    pub service_prefix: u8,
    pub node_port_range: RangeInclusive<u16>,
    /// `host:port` clients reach the API at (discovery's `serverAddressByClientCIDRs`).
    pub advertise_address: String,
    /// Port the `kubernetes` Service targets.
    pub secure_port: u16,
    pub bookmark_interval: Duration,
    /// Upper bound on a watch without `timeoutSeconds`.
    pub max_watch_duration: Duration,
    /// Admission as upstream's defaults enable it for storage: new claims get the default
    /// StorageClass and the `kubernetes.io/pvc-protection` finalizer, new volumes
    /// `kubernetes.io/pv-protection` (on only when the controllers that honour them run).
    pub storage_admission: bool,
    /// The PKCS#8 (DER) key that signs service-account tokens (`None`: none are issued).
    pub service_account_key: Option<Vec<u8>>,
}

/// Shared state behind every handler.
pub struct ApiState {
    pub store: Store,
    pub config: ApiConfig,
    alloc: Mutex<alloc::Allocators>,
    ready: AtomicBool,
    /// Cancelled at shutdown: ends open watches.
    pub shutdown: CancellationToken,
    /// The node agent's logs, exec and attach, once it runs.
    pub pod_streams: std::sync::OnceLock<Arc<dyn streams::PodStreams>>,
    /// Issues and checks service-account tokens.
    pub tokens: Option<tokens::TokenSigner>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").field("store", &self.store).finish_non_exhaustive()
    }
}

impl ApiState {
    /// State over an open store; the address allocators are rebuilt from the stored Services.
    pub fn new(store: Store, config: ApiConfig, shutdown: CancellationToken) -> Result<Arc<ApiState>, ApiError> {
        let tokens = config.service_account_key.as_deref().and_then(tokens::TokenSigner::new);
        let mut alloc =
            alloc::Allocators::new(config.service_network, config.service_prefix, config.node_port_range.clone());
        let services = path::collection_prefix(
            model::resources::by_kind("v1", "Service").ok_or_else(|| ApiError::internal("services not served"))?,
            None,
        );
        let (stored, _, _) =
            store.list(&services, None, None, &mut |_| true).map_err(|e| ApiError::internal(e.to_string()))?;
        for svc in stored {
            let (ip, ports) = strategy::service_addresses(&svc.value);
            if let Some(ip) = ip {
                let _ = alloc.claim_ip(ip);
            }
            for p in ports {
                let _ = alloc.claim_port(p);
            }
        }
        Ok(Arc::new(ApiState {
            store,
            config,
            alloc: Mutex::new(alloc),
            ready: AtomicBool::new(false),
            shutdown,
            pod_streams: std::sync::OnceLock::new(),
            tokens,
        }))
    }

    fn give_back(&self, taken: strategy::Taken) {
        if let Ok(mut alloc) = self.alloc.lock() {
            taken.give_back(&mut alloc);
        }
    }

    fn release_service(&self, old: &Value, new: Option<&Value>) {
        if let Ok(mut alloc) = self.alloc.lock() {
            strategy::release_service(&mut alloc, old, new);
        }
    }

    /// Create what a cluster has from the start: the four system namespaces, the local
    /// APIServices, the two system PriorityClasses, the default RBAC roles and bindings and the
    /// `kubernetes` Service. Idempotent.
    /// Marks the server ready.
    pub fn bootstrap(&self) -> Result<(), ApiError> {
        let opts = handlers::WriteOptions { dry_run: false, field_validation: handlers::FieldValidation::Strict };
        let ns_info =
            model::resources::by_kind("v1", "Namespace").ok_or_else(|| ApiError::internal("namespaces not served"))?;
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let target = path::Target { info: ns_info, namespace: None, name: None, sub: None };
            match handlers::write::create(self, &target, json!({"metadata": {"name": ns}}), opts) {
                Ok(_) => {}
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e),
            }
        }
        self.register_api_services(opts)?;
        let (roles, bindings) = model::rbac::bootstrap_policy();
        let objects = roles
            .iter()
            .map(|r| serde_json::to_value(r).map(|v| ("ClusterRole", v)))
            .chain(bindings.iter().map(|b| serde_json::to_value(b).map(|v| ("ClusterRoleBinding", v))));
        for object in objects {
            let (kind, object) = object.map_err(|e| ApiError::internal(e.to_string()))?;
            let info = model::resources::by_kind("rbac.authorization.k8s.io/v1", kind)
                .ok_or_else(|| ApiError::internal(format!("{kind} not served")))?;
            let target = path::Target { info, namespace: None, name: None, sub: None };
            match handlers::write::create(self, &target, object, opts) {
                Ok(_) => {}
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e),
            }
        }
        let pc_info = model::resources::by_kind("scheduling.k8s.io/v1", "PriorityClass")
            .ok_or_else(|| ApiError::internal("priorityclasses not served"))?;
        for (name, value, description) in model::validation::SYSTEM_PRIORITY_CLASSES {
            let target = path::Target { info: pc_info, namespace: None, name: None, sub: None };
            let class = json!({"metadata": {"name": name}, "value": value, "description": description});
            match handlers::write::create(self, &target, class, opts) {
                Ok(_) => {}
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e),
            }
        }
        let svc_info =
            model::resources::by_kind("v1", "Service").ok_or_else(|| ApiError::internal("services not served"))?;
        let first_ip = self.alloc.lock().map(|a| a.first_ip()).map_err(|_| ApiError::internal("allocator poisoned"))?;
        let target = path::Target { info: svc_info, namespace: Some("default".into()), name: None, sub: None };
        let svc = json!({
            "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {
                "type": "ClusterIP",
                "clusterIP": first_ip.to_string(),
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.config.secure_port}],
                "sessionAffinity": "None",
            },
        });
        match handlers::write::create(self, &target, svc, opts) {
            Ok(_) => {}
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e),
        }
        self.ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Every Role, ClusterRole and binding as stored, decoded (what RBAC decides with).
    pub fn rbac_policy(&self) -> model::rbac::Policy {
        fn all<T: serde::de::DeserializeOwned>(state: &ApiState, kind: &str) -> Vec<T> {
            let Some(info) = model::resources::by_kind("rbac.authorization.k8s.io/v1", kind) else { return Vec::new() };
            let prefix = path::collection_prefix(crate::convert::storage_info(info), None);
            let Ok((items, _, _)) = state.store.list(&prefix, None, None, &mut |_| true) else { return Vec::new() };
            items.iter().filter_map(|i| T::deserialize(&*i.value).ok()).collect()
        }
        model::rbac::Policy {
            cluster_roles: all(self, "ClusterRole"),
            cluster_role_bindings: all(self, "ClusterRoleBinding"),
            roles: all(self, "Role"),
            role_bindings: all(self, "RoleBinding"),
        }
    }

    /// Say where the API is reachable from pods (upstream's endpoint reconciler): the
    /// Endpoints and the EndpointSlice of `default/kubernetes`, one address, port `https`.
    /// Rewritten whenever it differs (a new port after a restart).
    pub fn publish_api_endpoints(&self, addr: std::net::SocketAddr) -> Result<(), ApiError> {
        let opts = handlers::WriteOptions { dry_run: false, field_validation: handlers::FieldValidation::Strict };
        let ip = addr.ip().to_string();
        let port = json!({"name": "https", "port": addr.port(), "protocol": "TCP"});
        let endpoints = json!({
            "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [port]}],
        });
        let slice = json!({
            "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
            "ports": [port],
        });
        for (api_version, kind, object, compare) in
            [("v1", "Endpoints", endpoints, "/subsets"), ("discovery.k8s.io/v1", "EndpointSlice", slice, "/endpoints")]
        {
            let info = model::resources::by_kind(api_version, kind)
                .ok_or_else(|| ApiError::internal(format!("{kind} not served")))?;
            let key = path::object_key(crate::convert::storage_info(info), Some("default"), "kubernetes");
            let existing = self.store.get(&key);
            let mut target = path::Target { info, namespace: Some("default".into()), name: None, sub: None };
            match existing {
                None => match handlers::write::create(self, &target, object, opts) {
                    Ok(_) => {}
                    Err(e) if e.is_already_exists() => {}
                    Err(e) => return Err(e),
                },
                Some(item) if item.value.pointer(compare) == object.pointer(compare) => {}
                Some(item) => {
                    let mut object = object;
                    object["metadata"]["resourceVersion"] = json!(item.rv.to_string());
                    target.name = Some("kubernetes".into());
                    handlers::write::update(self, &target, object, opts)?;
                }
            }
        }
        Ok(())
    }

    /// An APIService per served group version, as kube-apiserver registers its local ones
    /// (`<version>.<group>`, upstream's priorities, labelled automanaged on start), each
    /// `Available` because this server serves it.
    fn register_api_services(&self, opts: handlers::WriteOptions) -> Result<(), ApiError> {
        let info = model::resources::by_kind("apiregistration.k8s.io/v1", "APIService")
            .ok_or_else(|| ApiError::internal("apiservices not served"))?;
        for (group, version) in model::resources::groups() {
            let name = format!("{version}.{group}");
            let (group_priority, version_priority) = model::resources::api_service_priority(group, version);
            let object = json!({
                "metadata": {"name": name, "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"}},
                "spec": {"group": group, "version": version,
                         "groupPriorityMinimum": group_priority, "versionPriority": version_priority},
            });
            let target = path::Target { info, namespace: None, name: None, sub: None };
            match handlers::write::create(self, &target, object.clone(), opts) {
                Ok(_) => {}
                Err(e) if e.is_already_exists() => {}
                Err(e) => return Err(e),
            }
            let stored = self.store.get(&path::object_key(info, None, &name));
            let available =
                stored.as_ref().and_then(|s| s.value.pointer("/status/conditions")).and_then(Value::as_array);
            if available.is_some_and(|c| c.iter().any(|c| c["type"] == "Available" && c["status"] == "True")) {
                continue;
            }
            let mut with_status = object;
            with_status["status"] = json!({"conditions": [{
                "type": "Available", "status": "True", "reason": "Local",
                "message": "Local APIServices are always available",
                "lastTransitionTime": object::rfc3339(jiff::Timestamp::now()),
            }]});
            let target = path::Target { info, namespace: None, name: Some(name), sub: Some(path::Sub::Status) };
            handlers::write::update(self, &target, with_status, opts)?;
        }
        Ok(())
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && !self.shutdown.is_cancelled()
    }
}

/// Marks a request made in process by Ordinal's own components (they skip token checks: the
/// marker cannot arrive over the network).
#[derive(Debug, Clone, Copy)]
pub struct Internal;

/// The whole API as an axum app.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/healthz", get(readyz))
        .route("/version", get(version))
        .route("/api", get(api_root))
        .route("/apis", get(apis_root))
        .route("/api/v1", get(core_resources))
        .route("/apis/{group}", get(group_doc))
        .route("/apis/{group}/{version}", get(group_resources))
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3", get(openapi_v3_index))
        .route("/openapi/v3/{*path}", get(openapi_v3_doc))
        .fallback(handlers::resource)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        // Outermost: a panic anywhere below (authentication included) becomes a 500 Status.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(error::panic_response))
        .with_state(state)
}

/// The app for in-process clients: every request is marked `Internal`.
pub fn internal_service(state: Arc<ApiState>) -> Router {
    router(state).layer(middleware::map_request(|mut req: Request| async move {
        req.extensions_mut().insert(Internal);
        req
    }))
}

const ANONYMOUS_PATHS: &[&str] = &["/livez", "/readyz", "/healthz", "/version"];

/// Who a request comes from, put on the request by `authenticate` for the handlers that answer
/// about the caller (`SelfSubjectAccessReview`, `SelfSubjectRulesReview`). In-process requests
/// carry none and act as `system:masters`.
#[derive(Debug, Clone)]
pub struct Caller(pub model::rbac::User);

impl Caller {
    fn from_identity(identity: tls::ClientIdentity) -> Caller {
        let mut groups = identity.groups;
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        Caller(model::rbac::User { name: identity.user, groups })
    }
}

/// Authenticate (the admin token, a client certificate, a service-account token), then
/// authorize with RBAC (`model::rbac`) against the stored roles and bindings; `system:masters`
/// may do everything, as kube-apiserver's privileged group. 401 without credentials, 403 with
/// kube-apiserver's message when no rule allows.
async fn authenticate(State(state): State<Arc<ApiState>>, mut req: Request, next: Next) -> Response {
    if req.extensions().get::<Internal>().is_some() {
        return next.run(req).await;
    }
    let path = req.uri().path();
    let anonymous_ok = ANONYMOUS_PATHS.iter().any(|p| path == *p || path.starts_with(&format!("{p}/")));
    let identity = if token_ok(req.headers(), &state.config.admin_token) {
        Some(tls::ClientIdentity { user: "admin".into(), groups: vec!["system:masters".into()] })
    } else {
        req.extensions().get::<tls::ClientIdentity>().cloned().or_else(|| service_account(&state, req.headers()))
    };
    let Some(identity) = identity else {
        return if anonymous_ok { next.run(req).await } else { status_response(&ApiError::unauthorized()) };
    };
    let caller = Caller::from_identity(identity);
    if !anonymous_ok && !caller.0.groups.iter().any(|g| g == "system:masters") {
        let request = model::rbac::request_attributes(req.method().as_str(), req.uri().path(), req.uri().query());
        if !model::rbac::authorize(&state.rbac_policy(), &caller.0, &request) {
            return status_response(&ApiError::forbidden(model::rbac::forbidden_message(&caller.0.name, &request)));
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// The service account a bearer token stands for: a token this server issued, unexpired, for
/// this API, whose service account (and bound pod) still exist with the uids it names.
fn service_account(state: &ApiState, headers: &HeaderMap) -> Option<tls::ClientIdentity> {
    let token = headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")?.trim();
    let claims = state.tokens.as_ref()?.verify(token, jiff::Timestamp::now().as_second())?;
    let ns = claims.kubernetes.namespace.as_str();
    let exists = |kind: &str, bound: &tokens::Bound| {
        let info = model::resources::by_kind("v1", kind)?;
        let stored = state.store.get(&path::object_key(info, Some(ns), &bound.name))?;
        (object::uid(&stored.value) == bound.uid && !object::is_deleting(&stored.value)).then_some(())
    };
    exists("ServiceAccount", &claims.kubernetes.serviceaccount)?;
    if let Some(pod) = &claims.kubernetes.pod {
        exists("Pod", pod)?;
    }
    Some(tls::ClientIdentity {
        user: claims.sub.clone(),
        groups: vec![
            "system:serviceaccounts".into(),
            format!("system:serviceaccounts:{ns}"),
            "system:authenticated".into(),
        ],
    })
}

/// Compare the bearer token in constant time.
fn token_ok(headers: &HeaderMap, expected: &str) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(token) = value.strip_prefix("Bearer ").map(str::trim) else { return false };
    if token.len() != expected.len() || expected.is_empty() {
        return false;
    }
    token.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

async fn livez() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    if state.is_ready() {
        "ok".into_response()
    } else {
        (StatusCode::INTERNAL_SERVER_ERROR, "[-]ordinal-bootstrap failed: not finished\nreadyz check failed")
            .into_response()
    }
}

/// The Kubernetes version whose API Ordinal serves.
pub const KUBERNETES_MINOR: &str = "33";

async fn version() -> Response {
    json_ok(&json!({
        "major": "1",
        "minor": KUBERNETES_MINOR,
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0+ordinal-{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else if cfg!(target_arch = "aarch64") { "arm64" } else { std::env::consts::ARCH }),
    }))
}

fn json_ok(v: &Value) -> Response {
    media::json(StatusCode::OK, v)
}

fn with_content_type(mut resp: Response, content_type: &'static str) -> Response {
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn accept(headers: &HeaderMap) -> &str {
    headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// `/api` (core) and `/apis`: aggregated discovery when the client asks for it, else legacy.
fn root_document(core: bool, headers: &HeaderMap, legacy: impl FnOnce() -> Value) -> Response {
    match discovery::negotiate(accept(headers)) {
        Some(v) => with_content_type(json_ok(&discovery::aggregated(core, v)), discovery::content_type(v)),
        None => json_ok(&legacy()),
    }
}

async fn api_root(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    root_document(true, &headers, || discovery::api_versions(&state.config.advertise_address))
}

async fn apis_root(headers: HeaderMap) -> Response {
    root_document(false, &headers, discovery::api_group_list)
}

fn not_found() -> Response {
    status_response(&ApiError::path_not_found())
}

async fn core_resources() -> Response {
    discovery::api_resource_list("", "v1").map(|v| json_ok(&v)).unwrap_or_else(not_found)
}

async fn group_doc(Path(group): Path<String>) -> Response {
    discovery::api_group(&group).map(|v| json_ok(&v)).unwrap_or_else(not_found)
}

async fn group_resources(Path((group, version)): Path<(String, String)>) -> Response {
    discovery::api_resource_list(&group, &version).map(|v| json_ok(&v)).unwrap_or_else(not_found)
}

async fn openapi_v2(headers: HeaderMap) -> Response {
    if accept(&headers).contains("protobuf") {
        with_content_type((StatusCode::OK, openapi::v2_protobuf()).into_response(), openapi::V2_PROTOBUF_CONTENT_TYPE)
    } else {
        json_ok(&openapi::v2_json())
    }
}

async fn openapi_v3_index() -> Response {
    json_ok(&openapi::v3_index())
}

async fn openapi_v3_doc(Path(path): Path<String>) -> Response {
    match openapi::v3_document_bytes(&path) {
        Some(bytes) => with_content_type((StatusCode::OK, bytes).into_response(), "application/json"),
        None => not_found(),
    }
}

/// The settings of this crate's property tests (the fuzzing of request bodies): `cases` by
/// default, so a test run stays fast; `PROPTEST_CASES=n` for a longer run. No regression files.
#[cfg(test)]
pub(crate) fn fuzz_config(cases: u32) -> proptest::test_runner::Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    proptest::test_runner::Config { cases, failure_persistence: None, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use futures::future::BoxFuture;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use crate::streams::{ByteStream, LogOptions, PodStreams, Session};

    /// A node whose every stream panics: the one way a test makes a real handler panic.
    struct Panicking;

    impl PodStreams for Panicking {
        fn logs(&self, _: Arc<Value>, _: LogOptions) -> BoxFuture<'static, Result<ByteStream, ApiError>> {
            panic!("logs exploded")
        }
        fn exec(
            &self,
            _: Arc<Value>,
            _: String,
            _: Vec<String>,
            _: bool,
            _: bool,
        ) -> BoxFuture<'static, Result<Session, ApiError>> {
            panic!("exec exploded")
        }
        fn attach(&self, _: Arc<Value>, _: String, _: bool, _: bool) -> BoxFuture<'static, Result<Session, ApiError>> {
            panic!("attach exploded")
        }
        fn port_forward(&self, _: Arc<Value>, _: u16) -> BoxFuture<'static, Result<tokio::net::TcpStream, String>> {
            panic!("port-forward exploded")
        }
    }

    async fn call(app: Router, method: &str, uri: &str, body: Value) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        let resp = app.oneshot(req).await.expect("the router answers");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_with_a_status() {
        let dir = tempfile::tempdir().expect("scratch");
        let store = Store::open(&dir.path().join("db"), store::StoreConfig { history: 100 }).expect("store");
        let config = ApiConfig {
            admin_token: "token".into(),
            service_network: Ipv4Addr::new(10, 96, 0, 0),
            service_prefix: 16,
            node_port_range: 30000..=32767,
            advertise_address: "127.0.0.1:6443".into(),
            secure_port: 6443,
            bookmark_interval: Duration::from_secs(30),
            max_watch_duration: Duration::from_secs(60),
            storage_admission: false,
            service_account_key: None,
        };
        let state = ApiState::new(store, config, CancellationToken::new()).expect("state");
        state.bootstrap().expect("bootstrap");
        let _ = state.pod_streams.set(Arc::new(Panicking));
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        let (code, _) = call(internal_service(state.clone()), "POST", "/api/v1/namespaces/default/pods", pod).await;
        assert_eq!(code, StatusCode::CREATED);

        let (code, status) =
            call(internal_service(state.clone()), "GET", "/api/v1/namespaces/default/pods/p/log", Value::Null).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            (status["kind"].as_str(), status["reason"].as_str(), status["code"].as_i64()),
            (Some("Status"), Some("InternalError"), Some(500))
        );
        assert_eq!(
            status["message"],
            "Internal error occurred: This request caused apiserver to panic. Look in the logs for details."
        );
        // The server goes on answering.
        let (code, _) = call(internal_service(state), "GET", "/api/v1/namespaces/default/pods/p", Value::Null).await;
        assert_eq!(code, StatusCode::OK);
    }
}
