//! Request bodies in Kubernetes protobuf (`application/vnd.kubernetes.protobuf`), which kubectl
//! 1.33's generator commands send (`kubectl create configmap|secret|deployment|namespace|
//! service …`), decoded into the JSON form the rest of the pipeline uses. Responses stay JSON.
//!
//! Hand-written rather than generated: only decoding is needed, for the handful of messages
//! those commands send, and the wire format (varints and length-delimited fields) is tiny. Each
//! message is a table of (field number → JSON name, kind); one generic walker reads them all.
//! Unknown field numbers are skipped, as protobuf readers do.

use base64::Engine;
use model::ApiError;
use serde_json::{Map, Value, json};

/// How one field is encoded and rendered.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    /// Bytes, rendered base64 as JSON does.
    Bytes,
    Msg(&'static [Field]),
    /// A `map<string, V>` entry message (key = 1, value = 2).
    Map(&'static Kind),
    /// `resource.Quantity` (a message with `string = 1`), rendered as its string.
    Quantity,
    /// `intstr.IntOrString` {type = 1, intVal = 2, strVal = 3}.
    IntOrString,
    /// `metav1.Time` {seconds = 1, nanos = 2}, rendered RFC 3339.
    Time,
}

struct Field {
    number: u64,
    name: &'static str,
    kind: Kind,
    repeated: bool,
    /// A Go pointer field: a zero value was set on purpose and is kept. Zero values of plain
    /// fields are dropped, as Go's JSON encoding (`omitempty`) would drop them.
    pointer: bool,
}

const fn f(number: u64, name: &'static str, kind: Kind) -> Field {
    Field { number, name, kind, repeated: false, pointer: false }
}

const fn p(number: u64, name: &'static str, kind: Kind) -> Field {
    Field { number, name, kind, repeated: false, pointer: true }
}

const fn r(number: u64, name: &'static str, kind: Kind) -> Field {
    Field { number, name, kind, repeated: true, pointer: false }
}

use Kind::*;

const STRING_MAP: Kind = Map(&Str);

const OWNER_REFERENCE: &[Field] = &[
    f(1, "kind", Str),
    f(3, "name", Str),
    f(4, "uid", Str),
    f(5, "apiVersion", Str),
    p(6, "controller", Bool),
    p(7, "blockOwnerDeletion", Bool),
];

const OBJECT_META: &[Field] = &[
    f(1, "name", Str),
    f(2, "generateName", Str),
    f(3, "namespace", Str),
    f(5, "uid", Str),
    f(6, "resourceVersion", Str),
    f(7, "generation", Int),
    f(8, "creationTimestamp", Time),
    f(11, "labels", STRING_MAP),
    f(12, "annotations", STRING_MAP),
    r(13, "ownerReferences", Msg(OWNER_REFERENCE)),
    r(14, "finalizers", Str),
];

const LABEL_SELECTOR_REQUIREMENT: &[Field] = &[f(1, "key", Str), f(2, "operator", Str), r(3, "values", Str)];
const LABEL_SELECTOR: &[Field] =
    &[f(1, "matchLabels", STRING_MAP), r(2, "matchExpressions", Msg(LABEL_SELECTOR_REQUIREMENT))];

const CONTAINER_PORT: &[Field] =
    &[f(1, "name", Str), f(2, "hostPort", Int), f(3, "containerPort", Int), f(4, "protocol", Str), f(5, "hostIP", Str)];
const ENV_VAR: &[Field] = &[f(1, "name", Str), f(2, "value", Str)];
const QUANTITY_MAP: Kind = Map(&Quantity);
const RESOURCES: &[Field] = &[f(1, "limits", QUANTITY_MAP), f(2, "requests", QUANTITY_MAP)];
const VOLUME_MOUNT: &[Field] = &[
    f(1, "name", Str),
    f(2, "readOnly", Bool),
    f(3, "mountPath", Str),
    f(4, "subPath", Str),
    f(6, "subPathExpr", Str),
];
const CONTAINER: &[Field] = &[
    f(1, "name", Str),
    f(2, "image", Str),
    r(3, "command", Str),
    r(4, "args", Str),
    f(5, "workingDir", Str),
    r(6, "ports", Msg(CONTAINER_PORT)),
    r(7, "env", Msg(ENV_VAR)),
    f(8, "resources", Msg(RESOURCES)),
    r(9, "volumeMounts", Msg(VOLUME_MOUNT)),
    f(13, "terminationMessagePath", Str),
    f(14, "imagePullPolicy", Str),
    f(16, "stdin", Bool),
    f(17, "stdinOnce", Bool),
    f(18, "tty", Bool),
    f(20, "terminationMessagePolicy", Str),
];
const POD_SPEC: &[Field] = &[
    r(2, "containers", Msg(CONTAINER)),
    f(3, "restartPolicy", Str),
    p(4, "terminationGracePeriodSeconds", Int),
    p(5, "activeDeadlineSeconds", Int),
    f(6, "dnsPolicy", Str),
    f(7, "nodeSelector", STRING_MAP),
    f(8, "serviceAccountName", Str),
    f(10, "nodeName", Str),
    f(11, "hostNetwork", Bool),
    f(16, "hostname", Str),
    f(17, "subdomain", Str),
    f(19, "schedulerName", Str),
    r(20, "initContainers", Msg(CONTAINER)),
    p(30, "enableServiceLinks", Bool),
];
const POD_TEMPLATE_SPEC: &[Field] = &[f(1, "metadata", Msg(OBJECT_META)), f(2, "spec", Msg(POD_SPEC))];
const POD: &[Field] = &[f(1, "metadata", Msg(OBJECT_META)), f(2, "spec", Msg(POD_SPEC))];

const ROLLING_UPDATE_DEPLOYMENT: &[Field] = &[f(1, "maxUnavailable", IntOrString), f(2, "maxSurge", IntOrString)];
const DEPLOYMENT_STRATEGY: &[Field] = &[f(1, "type", Str), f(2, "rollingUpdate", Msg(ROLLING_UPDATE_DEPLOYMENT))];
const DEPLOYMENT_SPEC: &[Field] = &[
    p(1, "replicas", Int),
    f(2, "selector", Msg(LABEL_SELECTOR)),
    f(3, "template", Msg(POD_TEMPLATE_SPEC)),
    f(4, "strategy", Msg(DEPLOYMENT_STRATEGY)),
    f(5, "minReadySeconds", Int),
    p(6, "revisionHistoryLimit", Int),
    f(7, "paused", Bool),
    p(9, "progressDeadlineSeconds", Int),
];
const DEPLOYMENT: &[Field] = &[f(1, "metadata", Msg(OBJECT_META)), f(2, "spec", Msg(DEPLOYMENT_SPEC))];

const SERVICE_PORT: &[Field] = &[
    f(1, "name", Str),
    f(2, "protocol", Str),
    f(3, "port", Int),
    f(4, "targetPort", IntOrString),
    f(5, "nodePort", Int),
    f(6, "appProtocol", Str),
];
const SERVICE_SPEC: &[Field] = &[
    r(1, "ports", Msg(SERVICE_PORT)),
    f(2, "selector", STRING_MAP),
    f(3, "clusterIP", Str),
    f(4, "type", Str),
    r(5, "externalIPs", Str),
    f(7, "sessionAffinity", Str),
    f(10, "externalName", Str),
    f(11, "externalTrafficPolicy", Str),
    f(13, "publishNotReadyAddresses", Bool),
    r(18, "clusterIPs", Str),
];
const SERVICE: &[Field] = &[f(1, "metadata", Msg(OBJECT_META)), f(2, "spec", Msg(SERVICE_SPEC))];

const CONFIG_MAP: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "data", STRING_MAP),
    f(3, "binaryData", Map(&Bytes)),
    p(4, "immutable", Bool),
];
const SECRET: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    f(2, "data", Map(&Bytes)),
    f(3, "type", Str),
    f(4, "stringData", STRING_MAP),
    p(5, "immutable", Bool),
];
const NAMESPACE_SPEC: &[Field] = &[r(1, "finalizers", Str)];
const NAMESPACE: &[Field] = &[f(1, "metadata", Msg(OBJECT_META)), f(2, "spec", Msg(NAMESPACE_SPEC))];
const OBJECT_REFERENCE: &[Field] = &[f(1, "kind", Str), f(2, "namespace", Str), f(3, "name", Str)];
const LOCAL_OBJECT_REFERENCE: &[Field] = &[f(1, "name", Str)];
const SERVICE_ACCOUNT: &[Field] = &[
    f(1, "metadata", Msg(OBJECT_META)),
    r(2, "secrets", Msg(OBJECT_REFERENCE)),
    r(3, "imagePullSecrets", Msg(LOCAL_OBJECT_REFERENCE)),
    p(4, "automountServiceAccountToken", Bool),
];

/// authentication.k8s.io/v1 `TokenRequest`, as `kubectl create token` (1.33) sends it.
const BOUND_OBJECT_REFERENCE: &[Field] =
    &[f(1, "kind", Str), f(2, "apiVersion", Str), f(3, "name", Str), f(4, "uid", Str)];
const TOKEN_REQUEST_SPEC: &[Field] =
    &[r(1, "audiences", Str), p(4, "expirationSeconds", Int), f(3, "boundObjectRef", Msg(BOUND_OBJECT_REFERENCE))];
const TOKEN_REQUEST: &[Field] = &[f(1, "metadata", Msg(OBJECT_META)), f(2, "spec", Msg(TOKEN_REQUEST_SPEC))];

/// batch/v1 `Job`, as `kubectl create job` (1.33) sends it.
const JOB_SPEC: &[Field] = &[
    p(1, "parallelism", Int),
    p(2, "completions", Int),
    p(3, "activeDeadlineSeconds", Int),
    f(4, "selector", Msg(LABEL_SELECTOR)),
    p(5, "manualSelector", Bool),
    f(6, "template", Msg(POD_TEMPLATE_SPEC)),
    p(7, "backoffLimit", Int),
    p(8, "ttlSecondsAfterFinished", Int),
    p(9, "completionMode", Str),
    p(10, "suspend", Bool),
];
const JOB: &[Field] = &[f(1, "metadata", Msg(OBJECT_META)), f(2, "spec", Msg(JOB_SPEC))];

/// authorization.k8s.io/v1 self-reviews, as `kubectl auth can-i` (1.33) sends them.
const RESOURCE_ATTRIBUTES: &[Field] = &[
    f(1, "namespace", Str),
    f(2, "verb", Str),
    f(3, "group", Str),
    f(4, "version", Str),
    f(5, "resource", Str),
    f(6, "subresource", Str),
    f(7, "name", Str),
];
const NON_RESOURCE_ATTRIBUTES: &[Field] = &[f(1, "path", Str), f(2, "verb", Str)];
const ACCESS_REVIEW_SPEC: &[Field] = &[
    f(1, "resourceAttributes", Msg(RESOURCE_ATTRIBUTES)),
    f(2, "nonResourceAttributes", Msg(NON_RESOURCE_ATTRIBUTES)),
];
const ACCESS_REVIEW: &[Field] = &[f(1, "metadata", Msg(OBJECT_META)), f(2, "spec", Msg(ACCESS_REVIEW_SPEC))];
const RULES_REVIEW: &[Field] = &[f(1, "metadata", Msg(OBJECT_META)), f(2, "spec", Msg(&[f(1, "namespace", Str)]))];

/// The message table for a kind.
fn message_for(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    Some(match (api_version, kind) {
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        ("v1", "Service") => SERVICE,
        ("v1", "Pod") => POD,
        ("apps/v1", "Deployment") => DEPLOYMENT,
        ("authentication.k8s.io/v1", "TokenRequest") => TOKEN_REQUEST,
        ("batch/v1", "Job") => JOB,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => ACCESS_REVIEW,
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => RULES_REVIEW,
        _ => return None,
    })
}

const MAGIC: &[u8] = b"k8s\0";

fn malformed(what: &str) -> ApiError {
    ApiError::bad_request(format!("the body of the request could not be decoded as protobuf: {what}"))
}

/// A protobuf reader over one message's bytes.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.buf.split_first().ok_or_else(|| malformed("truncated varint"))?;
            self.buf = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed("varint too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], ApiError> {
        let len = usize::try_from(self.varint()?).map_err(|_| malformed("length"))?;
        if len > self.buf.len() {
            return Err(malformed("truncated field"));
        }
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    fn skip(&mut self, wire_type: u64) -> Result<(), ApiError> {
        match wire_type {
            0 => self.varint().map(|_| ()),
            1 => self.take(8),
            2 => self.bytes().map(|_| ()),
            5 => self.take(4),
            _ => Err(malformed("unsupported wire type")),
        }
    }

    fn take(&mut self, n: usize) -> Result<(), ApiError> {
        if n > self.buf.len() {
            return Err(malformed("truncated field"));
        }
        self.buf = &self.buf[n..];
        Ok(())
    }

    /// The next (field number, wire type), or `None` at the end.
    fn key(&mut self) -> Result<Option<(u64, u64)>, ApiError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        Ok(Some((key >> 3, key & 7)))
    }
}

fn utf8(bytes: &[u8]) -> Result<String, ApiError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed("string is not UTF-8"))
}

/// Decode one value of `kind` from the field payload.
fn value(kind: Kind, reader: &mut Reader<'_>) -> Result<Value, ApiError> {
    Ok(match kind {
        Str => json!(utf8(reader.bytes()?)?),
        Bytes => json!(base64::engine::general_purpose::STANDARD.encode(reader.bytes()?)),
        // Varints carry two's-complement for negative int32/int64.
        Int => json!(reader.varint()? as i64),
        Bool => json!(reader.varint()? != 0),
        Msg(fields) => message(fields, reader.bytes()?)?,
        Quantity => {
            let inner = message(&[f(1, "string", Str)], reader.bytes()?)?;
            inner.get("string").cloned().unwrap_or_else(|| json!("0"))
        }
        IntOrString => {
            let inner = message(&[f(1, "type", Int), f(2, "intVal", Int), f(3, "strVal", Str)], reader.bytes()?)?;
            if inner.get("type").and_then(Value::as_i64) == Some(1) {
                inner.get("strVal").cloned().unwrap_or_else(|| json!(""))
            } else {
                inner.get("intVal").cloned().unwrap_or_else(|| json!(0))
            }
        }
        Time => {
            let inner = message(&[f(1, "seconds", Int), f(2, "nanos", Int)], reader.bytes()?)?;
            let seconds = inner.get("seconds").and_then(Value::as_i64).unwrap_or(0);
            match jiff::Timestamp::from_second(seconds) {
                Ok(ts) if seconds != 0 => json!(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                _ => Value::Null,
            }
        }
        Map(_) => return Err(malformed("map outside a field")),
    })
}

/// Decode a message by its table.
fn message(fields: &[Field], bytes: &[u8]) -> Result<Value, ApiError> {
    let mut out = Map::new();
    let mut reader = Reader { buf: bytes };
    while let Some((number, wire_type)) = reader.key()? {
        let Some(field) = fields.iter().find(|fl| fl.number == number) else {
            reader.skip(wire_type)?;
            continue;
        };
        match field.kind {
            Map(value_kind) => {
                let entry = reader.bytes()?;
                let mut er = Reader { buf: entry };
                let (mut key, mut val) = (String::new(), Value::Null);
                while let Some((n, wt)) = er.key()? {
                    match n {
                        1 => key = utf8(er.bytes()?)?,
                        2 => val = value(*value_kind, &mut er)?,
                        _ => er.skip(wt)?,
                    }
                }
                let map = out.entry(field.name).or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = map {
                    // proto3 omits empty values; JSON shows them as "".
                    m.insert(key, if val.is_null() { default_of(*value_kind) } else { val });
                }
            }
            kind => {
                let v = value(kind, &mut reader)?;
                let zero = matches!(&v, Value::String(s) if s.is_empty())
                    || v.as_i64() == Some(0)
                    || v.as_bool() == Some(false);
                if v.is_null() || (zero && !field.pointer && !field.repeated) {
                    continue;
                }
                if field.repeated {
                    let list = out.entry(field.name).or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(a) = list {
                        a.push(v);
                    }
                } else {
                    out.insert(field.name.to_string(), v);
                }
            }
        }
    }
    Ok(Value::Object(out))
}

fn default_of(kind: Kind) -> Value {
    match kind {
        Str | Bytes | Quantity => json!(""),
        Int => json!(0),
        Bool => json!(false),
        _ => json!({}),
    }
}

/// Decode a whole request body: `k8s\0` + `runtime.Unknown{typeMeta, raw, …}`.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let rest = body.strip_prefix(MAGIC).ok_or_else(|| malformed("missing the k8s protobuf prefix"))?;
    let type_meta: &[Field] = &[f(1, "apiVersion", Str), f(2, "kind", Str)];
    // The envelope is walked by hand so the raw bytes are not turned into base64.
    let mut reader = Reader { buf: rest };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    while let Some((number, wire_type)) = reader.key()? {
        match number {
            1 => {
                let tm = message(type_meta, reader.bytes()?)?;
                api_version = tm.get("apiVersion").and_then(Value::as_str).unwrap_or("").to_string();
                kind = tm.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
            }
            2 => raw = Some(reader.bytes()?),
            _ => reader.skip(wire_type)?,
        }
    }
    let fields = message_for(&api_version, &kind).ok_or_else(|| {
        ApiError::unsupported_media_type(&format!("application/vnd.kubernetes.protobuf ({api_version} {kind})"))
    })?;
    let mut obj = message(fields, raw.unwrap_or_default())?;
    if let Value::Object(m) = &mut obj {
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!(kind));
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny encoder for the tests.
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn bytes_field(n: u64, data: &[u8], out: &mut Vec<u8>) {
        varint(n << 3 | 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }
    fn int_field(n: u64, v: u64, out: &mut Vec<u8>) {
        varint(n << 3, out);
        varint(v, out);
    }
    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        bytes_field(1, k.as_bytes(), &mut e);
        bytes_field(2, v, &mut e);
        e
    }
    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        bytes_field(1, api_version.as_bytes(), &mut tm);
        bytes_field(2, kind.as_bytes(), &mut tm);
        let mut out = MAGIC.to_vec();
        bytes_field(1, &tm, &mut out);
        bytes_field(2, raw, &mut out);
        out
    }

    #[test]
    fn configmap_from_kubectl_create() {
        let mut meta = Vec::new();
        bytes_field(1, b"one", &mut meta);
        let mut raw = Vec::new();
        bytes_field(1, &meta, &mut raw);
        bytes_field(2, &entry("a", b"b"), &mut raw);
        bytes_field(2, &entry("empty", b""), &mut raw);
        let obj = decode(&envelope("v1", "ConfigMap", &raw)).expect("decodes");
        assert_eq!(
            obj,
            json!({"metadata": {"name": "one"}, "data": {"a": "b", "empty": ""}, "apiVersion": "v1", "kind": "ConfigMap"})
        );
    }

    #[test]
    fn secret_data_is_base64() {
        let mut meta = Vec::new();
        bytes_field(1, b"s", &mut meta);
        let mut raw = Vec::new();
        bytes_field(1, &meta, &mut raw);
        bytes_field(2, &entry("k", &[0, 1, 2]), &mut raw);
        bytes_field(3, b"Opaque", &mut raw);
        let obj = decode(&envelope("v1", "Secret", &raw)).expect("decodes");
        assert_eq!(obj["data"]["k"], "AAEC");
        assert_eq!(obj["type"], "Opaque");
    }

    #[test]
    fn deployment_with_container_port_and_service_target_port() {
        let mut port = Vec::new();
        int_field(3, 80, &mut port);
        let mut container = Vec::new();
        bytes_field(1, b"nginx", &mut container);
        bytes_field(2, b"nginx:1.25", &mut container);
        bytes_field(6, &port, &mut container);
        let mut pod_spec = Vec::new();
        bytes_field(2, &container, &mut pod_spec);
        let mut template = Vec::new();
        bytes_field(2, &pod_spec, &mut template);
        let mut spec = Vec::new();
        int_field(1, 3, &mut spec);
        bytes_field(3, &template, &mut spec);
        let mut raw = Vec::new();
        bytes_field(2, &spec, &mut raw);
        let obj = decode(&envelope("apps/v1", "Deployment", &raw)).expect("decodes");
        assert_eq!(obj["spec"]["replicas"], 3);
        assert_eq!(obj["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"], 80);

        let mut target = Vec::new();
        int_field(1, 1, &mut target);
        bytes_field(3, b"web", &mut target);
        let mut sport = Vec::new();
        int_field(3, 80, &mut sport);
        bytes_field(4, &target, &mut sport);
        let mut sspec = Vec::new();
        bytes_field(1, &sport, &mut sspec);
        let mut raw = Vec::new();
        bytes_field(2, &sspec, &mut raw);
        let obj = decode(&envelope("v1", "Service", &raw)).expect("decodes");
        assert_eq!(obj["spec"]["ports"][0], json!({"port": 80, "targetPort": "web"}));
    }

    mod fuzz {
        use std::collections::BTreeMap;

        use proptest::prelude::*;

        use super::*;

        /// The kinds decoded, and one that is not.
        const KINDS: &[(&str, &str)] = &[
            ("v1", "ConfigMap"),
            ("v1", "Secret"),
            ("v1", "Namespace"),
            ("v1", "ServiceAccount"),
            ("v1", "Service"),
            ("v1", "Pod"),
            ("apps/v1", "Deployment"),
            ("authentication.k8s.io/v1", "TokenRequest"),
            ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
            ("authorization.k8s.io/v1", "SelfSubjectRulesReview"),
            ("batch/v1", "Job"),
            ("batch/v1", "CronJob"),
        ];

        /// Protobuf-shaped bytes: fields with random numbers and wire types, nested messages.
        fn message_bytes() -> impl Strategy<Value = Vec<u8>> {
            let field = (1u64..40, 0u64..8, proptest::collection::vec(any::<u8>(), 0..24)).prop_map(|(n, wt, data)| {
                let mut out = Vec::new();
                match wt {
                    0 => int_field(n, u64::from_le_bytes([data.first().copied().unwrap_or(0); 8]), &mut out),
                    2 => bytes_field(n, &data, &mut out),
                    _ => {
                        varint(n << 3 | wt, &mut out);
                        out.extend_from_slice(&data);
                    }
                }
                out
            });
            proptest::collection::vec(field, 0..8).prop_map(|fields| fields.concat()).prop_recursive(
                3,
                64,
                4,
                |inner| {
                    (1u64..40, inner.clone(), inner).prop_map(|(n, nested, rest)| {
                        let mut out = Vec::new();
                        bytes_field(n, &nested, &mut out);
                        out.extend_from_slice(&rest);
                        out
                    })
                },
            )
        }

        proptest! {
            #![proptest_config(crate::fuzz_config(256))]

            /// Any bytes after the prefix, and any message for any kind, decode or are refused
            /// (400, 415), never a panic.
            #[test]
            fn any_body_decodes_or_is_refused(kind in proptest::sample::select(KINDS), raw in message_bytes(), noise in proptest::collection::vec(any::<u8>(), 0..200)) {
                for body in [envelope(kind.0, kind.1, &raw), [MAGIC, noise.as_slice()].concat(), noise.clone()] {
                    if let Err(e) = decode(&body) {
                        prop_assert!(e.code == 400 || e.code == 415, "{}", e.message);
                    }
                }
            }

            /// A ConfigMap as kubectl encodes it decodes to its JSON form.
            #[test]
            fn configmaps_round_trip(name in "[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", data in proptest::collection::btree_map(any::<String>(), any::<String>(), 0..5)) {
                let mut meta = Vec::new();
                bytes_field(1, name.as_bytes(), &mut meta);
                let mut raw = Vec::new();
                bytes_field(1, &meta, &mut raw);
                for (k, v) in &data {
                    bytes_field(2, &entry(k, v.as_bytes()), &mut raw);
                }
                let mut wanted = json!({"metadata": {"name": name}, "apiVersion": "v1", "kind": "ConfigMap"});
                if !data.is_empty() {
                    wanted["data"] = json!(data.into_iter().collect::<BTreeMap<_, _>>());
                }
                prop_assert_eq!(decode(&envelope("v1", "ConfigMap", &raw)).map_err(|e| e.message), Ok(wanted));
            }
        }
    }

    #[test]
    fn bad_input_is_a_bad_request_and_unknown_kinds_unsupported() {
        assert_eq!(decode(b"{}").expect_err("no magic").code, 400);
        assert_eq!(decode(&[b'k', b'8', b's', 0, 0x0a, 0x05]).expect_err("truncated").code, 400);
        assert_eq!(decode(&envelope("batch/v1", "CronJob", &[])).expect_err("not decoded").code, 415);
    }
}
