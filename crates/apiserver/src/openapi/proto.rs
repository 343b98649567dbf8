//! Encodes our Swagger 2.0 JSON document as a gnostic `openapi.v2.Document` protobuf (the
//! `openapiv2/OpenAPIv2.proto` schema of google/gnostic), the only form of `/openapi/v2` kubectl
//! accepts.
//!
//! Why no protobuf crate: the message definitions would have to be generated from the `.proto`
//! (a build script and `protoc`) or written out as ~40 derive structs, for a document that is
//! only ever written, once, from JSON we already build. Protobuf's wire format for what we need
//! is three cases (varint, 64-bit, length-delimited), so a field table per message and a small
//! writer are shorter and keep the JSON the single source of truth.
//!
//! Mapping rules, from gnostic: object maps become repeated `Named…{name = 1; value = 2}`
//! records; `x-…` keys become `NamedAny` vendor extensions; `Any` values carry YAML text (JSON is
//! valid YAML, so we write JSON); oneof wrappers (`ParametersItem`, `Parameter`,
//! `NonBodyParameter`, `ResponseValue`, `SchemaItem`, `AdditionalPropertiesItem`) pick their
//! branch from the content.

use serde_json::Value;

/// The encoded document and the JSON keys that had no protobuf field (none for our documents;
/// the tests check, so nothing is dropped silently).
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub skipped: Vec<String>,
}

pub fn encode_document(doc: &Value) -> Encoded {
    let mut enc = Encoder { skipped: Vec::new() };
    let bytes = enc.message(M::Document, doc, "");
    Encoded { bytes, skipped: enc.skipped }
}

/// Message types with a field table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum M {
    Document,
    Info,
    Paths,
    PathItem,
    Operation,
    Responses,
    Response,
    BodyParameter,
    QueryParameter,
    PathParameter,
    Schema,
    ExternalDocs,
    Tag,
}

/// How one JSON key is written.
#[derive(Debug, Clone, Copy)]
enum F {
    Str(u32),
    Strs(u32),
    Bool(u32),
    Int(u32),
    Double(u32),
    /// `Any { yaml = 2 }`.
    Any(u32),
    Anys(u32),
    Msg(u32, M),
    Msgs(u32, M),
    /// A JSON object as a message holding `repeated Named{M} = 1` (`Definitions`, `Properties`).
    NamedMap(u32, M),
    /// `repeated ParametersItem`.
    Parameters(u32),
    /// `SchemaItem { Schema schema = 1 }`.
    SchemaItem(u32),
    /// `TypeItem { repeated string value = 1 }` from a string or a list.
    Type(u32),
    /// `ItemsItem { repeated Schema schema = 1 }` from a schema or a list.
    Items(u32),
    /// `AdditionalPropertiesItem { Schema schema = 1; bool boolean = 2 }`.
    AdditionalProperties(u32),
}

/// A message's field table, its vendor-extension field, and where keys that are not in the
/// table go (`Paths` and `Responses` hold their entries as named records).
struct Spec {
    fields: Fields,
    extensions: Option<u32>,
    rest: Option<(u32, Rest)>,
}

#[derive(Debug, Clone, Copy)]
enum Rest {
    PathItem,
    ResponseValue,
}

/// A field table: JSON key → how it is written.
type Fields = &'static [(&'static str, F)];

fn spec(m: M) -> Spec {
    use F::*;
    let (fields, extensions, rest): (Fields, Option<u32>, Option<(u32, Rest)>) = match m {
        M::Document => (
            &[
                ("swagger", Str(1)),
                ("info", Msg(2, M::Info)),
                ("host", Str(3)),
                ("basePath", Str(4)),
                ("schemes", Strs(5)),
                ("consumes", Strs(6)),
                ("produces", Strs(7)),
                ("paths", Msg(8, M::Paths)),
                ("definitions", NamedMap(9, M::Schema)),
                ("tags", Msgs(14, M::Tag)),
                ("externalDocs", Msg(15, M::ExternalDocs)),
            ],
            Some(16),
            None,
        ),
        M::Info => (
            &[("title", Str(1)), ("version", Str(2)), ("description", Str(3)), ("termsOfService", Str(4))],
            Some(7),
            None,
        ),
        M::Paths => (&[], Some(1), Some((2, Rest::PathItem))),
        M::PathItem => (
            &[
                ("$ref", Str(1)),
                ("get", Msg(2, M::Operation)),
                ("put", Msg(3, M::Operation)),
                ("post", Msg(4, M::Operation)),
                ("delete", Msg(5, M::Operation)),
                ("options", Msg(6, M::Operation)),
                ("head", Msg(7, M::Operation)),
                ("patch", Msg(8, M::Operation)),
                ("parameters", Parameters(9)),
            ],
            Some(10),
            None,
        ),
        M::Operation => (
            &[
                ("tags", Strs(1)),
                ("summary", Str(2)),
                ("description", Str(3)),
                ("externalDocs", Msg(4, M::ExternalDocs)),
                ("operationId", Str(5)),
                ("produces", Strs(6)),
                ("consumes", Strs(7)),
                ("parameters", Parameters(8)),
                ("responses", Msg(9, M::Responses)),
                ("schemes", Strs(10)),
                ("deprecated", Bool(11)),
            ],
            Some(13),
            None,
        ),
        M::Responses => (&[], Some(2), Some((1, Rest::ResponseValue))),
        M::Response => (&[("description", Str(1)), ("schema", SchemaItem(2))], Some(5), None),
        M::BodyParameter => (
            &[
                ("description", Str(1)),
                ("name", Str(2)),
                ("in", Str(3)),
                ("required", Bool(4)),
                ("schema", Msg(5, M::Schema)),
            ],
            Some(6),
            None,
        ),
        M::QueryParameter => (
            &[
                ("required", Bool(1)),
                ("in", Str(2)),
                ("description", Str(3)),
                ("name", Str(4)),
                ("allowEmptyValue", Bool(5)),
                ("type", Str(6)),
                ("format", Str(7)),
                ("collectionFormat", Str(9)),
                ("default", Any(10)),
                ("maximum", Double(11)),
                ("minimum", Double(13)),
                ("maxLength", Int(15)),
                ("minLength", Int(16)),
                ("pattern", Str(17)),
                ("uniqueItems", Bool(20)),
                ("enum", Anys(21)),
            ],
            Some(23),
            None,
        ),
        M::PathParameter => (
            &[
                ("required", Bool(1)),
                ("in", Str(2)),
                ("description", Str(3)),
                ("name", Str(4)),
                ("type", Str(5)),
                ("format", Str(6)),
                ("collectionFormat", Str(8)),
                ("default", Any(9)),
                ("maxLength", Int(14)),
                ("minLength", Int(15)),
                ("pattern", Str(16)),
                ("uniqueItems", Bool(19)),
                ("enum", Anys(20)),
            ],
            Some(22),
            None,
        ),
        M::Schema => (
            &[
                ("$ref", Str(1)),
                ("format", Str(2)),
                ("title", Str(3)),
                ("description", Str(4)),
                ("default", Any(5)),
                ("multipleOf", Double(6)),
                ("maximum", Double(7)),
                ("exclusiveMaximum", Bool(8)),
                ("minimum", Double(9)),
                ("exclusiveMinimum", Bool(10)),
                ("maxLength", Int(11)),
                ("minLength", Int(12)),
                ("pattern", Str(13)),
                ("maxItems", Int(14)),
                ("minItems", Int(15)),
                ("uniqueItems", Bool(16)),
                ("maxProperties", Int(17)),
                ("minProperties", Int(18)),
                ("required", Strs(19)),
                ("enum", Anys(20)),
                ("additionalProperties", AdditionalProperties(21)),
                ("type", Type(22)),
                ("items", Items(23)),
                ("allOf", Msgs(24, M::Schema)),
                ("properties", NamedMap(25, M::Schema)),
                ("discriminator", Str(26)),
                ("readOnly", Bool(27)),
                ("externalDocs", Msg(29, M::ExternalDocs)),
                ("example", Any(30)),
            ],
            Some(31),
            None,
        ),
        M::ExternalDocs => (&[("description", Str(1)), ("url", Str(2))], Some(3), None),
        M::Tag => {
            (&[("name", Str(1)), ("description", Str(2)), ("externalDocs", Msg(3, M::ExternalDocs))], Some(4), None)
        }
    };
    Spec { fields, extensions, rest }
}

/// Appends protobuf fields to a buffer.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }
    fn tag(&mut self, field: u32, wire_type: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire_type));
    }
    fn bytes(&mut self, field: u32, data: &[u8]) {
        self.tag(field, 2);
        self.varint(data.len() as u64);
        self.0.extend_from_slice(data);
    }
    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }
    fn uint(&mut self, field: u32, v: u64) {
        self.tag(field, 0);
        self.varint(v);
    }
    fn double(&mut self, field: u32, v: f64) {
        self.tag(field, 1);
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
    }
}

/// `Any { string yaml = 2 }`. JSON is YAML, and kubectl reads these with a YAML parser.
fn any(v: &Value) -> Vec<u8> {
    let mut w = Writer::default();
    w.string(2, &v.to_string());
    w.0
}

/// `Named… { string name = 1; … value = 2 }`.
fn named(name: &str, value: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    w.string(1, name);
    w.bytes(2, value);
    w.0
}

struct Encoder {
    skipped: Vec<String>,
}

impl Encoder {
    fn skip(&mut self, at: &str, key: &str) {
        self.skipped.push(format!("{at}/{key}"));
    }

    fn message(&mut self, m: M, v: &Value, at: &str) -> Vec<u8> {
        let mut w = Writer::default();
        let Value::Object(obj) = v else {
            self.skip(at, "(not an object)");
            return w.0;
        };
        let spec = spec(m);
        for (key, value) in obj {
            let here = format!("{at}/{key}");
            if let Some((_, f)) = spec.fields.iter().find(|(k, _)| k == key) {
                self.field(&mut w, *f, value, &here);
            } else if let (true, Some(n)) = (key.starts_with("x-"), spec.extensions) {
                w.bytes(n, &named(key, &any(value)));
            } else if let Some((n, rest)) = spec.rest {
                let inner = match rest {
                    Rest::PathItem => self.message(M::PathItem, value, &here),
                    Rest::ResponseValue => self.response_value(value, &here),
                };
                w.bytes(n, &named(key, &inner));
            } else {
                self.skip(at, key);
            }
        }
        w.0
    }

    fn field(&mut self, w: &mut Writer, f: F, v: &Value, at: &str) {
        match (f, v) {
            (F::Str(n), Value::String(s)) => w.string(n, s),
            (F::Strs(n), Value::Array(items)) => {
                for s in items {
                    match s.as_str() {
                        Some(s) => w.string(n, s),
                        None => self.skip(at, "(non-string item)"),
                    }
                }
            }
            (F::Bool(n), Value::Bool(b)) => {
                if *b {
                    w.uint(n, 1);
                }
            }
            // int64 is a varint of the two's-complement bits.
            (F::Int(n), Value::Number(x)) => match x.as_i64() {
                Some(i) => w.uint(n, i as u64),
                None => self.skip(at, "(not an int64)"),
            },
            (F::Double(n), Value::Number(x)) => match x.as_f64() {
                Some(d) => w.double(n, d),
                None => self.skip(at, "(not a number)"),
            },
            (F::Any(n), v) => w.bytes(n, &any(v)),
            (F::Anys(n), Value::Array(items)) => {
                for item in items {
                    w.bytes(n, &any(item));
                }
            }
            (F::Msg(n, m), v) => {
                let inner = self.message(m, v, at);
                w.bytes(n, &inner);
            }
            (F::Msgs(n, m), Value::Array(items)) => {
                for item in items {
                    let inner = self.message(m, item, at);
                    w.bytes(n, &inner);
                }
            }
            (F::NamedMap(n, m), Value::Object(entries)) => {
                let mut holder = Writer::default();
                for (name, value) in entries {
                    let inner = self.message(m, value, &format!("{at}/{name}"));
                    holder.bytes(1, &named(name, &inner));
                }
                w.bytes(n, &holder.0);
            }
            (F::Parameters(n), Value::Array(items)) => {
                for item in items {
                    let inner = self.parameters_item(item, at);
                    w.bytes(n, &inner);
                }
            }
            (F::SchemaItem(n), v) => {
                let mut holder = Writer::default();
                let schema = self.message(M::Schema, v, at);
                holder.bytes(1, &schema);
                w.bytes(n, &holder.0);
            }
            (F::Type(n), v) => {
                let mut holder = Writer::default();
                let types: Vec<&Value> = match v {
                    Value::Array(items) => items.iter().collect(),
                    one => vec![one],
                };
                for t in types {
                    match t.as_str() {
                        Some(t) => holder.string(1, t),
                        None => self.skip(at, "(non-string type)"),
                    }
                }
                w.bytes(n, &holder.0);
            }
            (F::Items(n), v) => {
                let mut holder = Writer::default();
                let schemas: Vec<&Value> = match v {
                    Value::Array(items) => items.iter().collect(),
                    one => vec![one],
                };
                for s in schemas {
                    let inner = self.message(M::Schema, s, at);
                    holder.bytes(1, &inner);
                }
                w.bytes(n, &holder.0);
            }
            (F::AdditionalProperties(n), v) => {
                let mut holder = Writer::default();
                match v {
                    Value::Bool(b) => holder.uint(2, u64::from(*b)),
                    schema => {
                        let inner = self.message(M::Schema, schema, at);
                        holder.bytes(1, &inner);
                    }
                }
                w.bytes(n, &holder.0);
            }
            _ => self.skip(at, "(unexpected JSON type)"),
        }
    }

    /// `ParametersItem { Parameter parameter = 1; JsonReference json_reference = 2 }` with
    /// `Parameter { BodyParameter body_parameter = 1; NonBodyParameter non_body_parameter = 2 }`
    /// and `NonBodyParameter { … query = 3; path = 4 }`.
    fn parameters_item(&mut self, v: &Value, at: &str) -> Vec<u8> {
        let mut item = Writer::default();
        if let Some(reference) = v.get("$ref").and_then(Value::as_str) {
            item.bytes(2, &json_reference(reference, v));
            return item.0;
        }
        let mut parameter = Writer::default();
        match v.get("in").and_then(Value::as_str) {
            Some("body") => {
                let body = self.message(M::BodyParameter, v, at);
                parameter.bytes(1, &body);
            }
            Some(location @ ("query" | "path")) => {
                let (field, m) = if location == "query" { (3, M::QueryParameter) } else { (4, M::PathParameter) };
                let mut non_body = Writer::default();
                let sub = self.message(m, v, at);
                non_body.bytes(field, &sub);
                parameter.bytes(2, &non_body.0);
            }
            _ => self.skip(at, "(parameter location)"),
        }
        item.bytes(1, &parameter.0);
        item.0
    }

    /// `ResponseValue { Response response = 1; JsonReference json_reference = 2 }`.
    fn response_value(&mut self, v: &Value, at: &str) -> Vec<u8> {
        let mut w = Writer::default();
        if let Some(reference) = v.get("$ref").and_then(Value::as_str) {
            w.bytes(2, &json_reference(reference, v));
        } else {
            let response = self.message(M::Response, v, at);
            w.bytes(1, &response);
        }
        w.0
    }
}

/// `JsonReference { string _ref = 1; string description = 2 }`.
fn json_reference(reference: &str, v: &Value) -> Vec<u8> {
    let mut w = Writer::default();
    w.string(1, reference);
    if let Some(d) = v.get("description").and_then(Value::as_str) {
        w.string(2, d);
    }
    w.0
}
