//! Label and field selectors: the string forms of `?labelSelector=` and `?fieldSelector=`, the
//! structured `metav1.LabelSelector`, and which fields each kind lets clients select on.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use serde_json::Value;

use crate::ResourceInfo;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(String);

fn err(msg: impl Into<String>) -> SelectorError {
    SelectorError(msg.into())
}

/// One label requirement (upstream `labels.Requirement`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|l| vs.contains(l)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|l| !vs.contains(l)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }

    fn key(&self) -> &str {
        match self {
            Requirement::Equals(k, _)
            | Requirement::NotEquals(k, _)
            | Requirement::In(k, _)
            | Requirement::NotIn(k, _)
            | Requirement::Exists(k)
            | Requirement::DoesNotExist(k) => k,
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Equals(k, v) => write!(f, "{k}={v}"),
            Requirement::NotEquals(k, v) => write!(f, "{k}!={v}"),
            Requirement::In(k, vs) => write!(f, "{k} in ({})", vs.join(",")),
            Requirement::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(",")),
            Requirement::Exists(k) => write!(f, "{k}"),
            Requirement::DoesNotExist(k) => write!(f, "!{k}"),
        }
    }
}

/// A conjunction of label requirements. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// `[prefix/]name`: name ≤ 63 chars of alphanumerics, `-`, `_`, `.`, starting and ending
/// alphanumeric; prefix a DNS subdomain.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !crate::names::is_dns1123_subdomain(p))
    {
        return Err(format!("prefix part {p:?} must be a DNS-1123 subdomain"));
    }
    if name.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    if !is_qualified_name_part(name) {
        return Err("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string());
    }
    Ok(())
}

fn is_qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// A label value: empty, or ≤ 63 chars like a name part.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    if !is_qualified_name_part(value) {
        return Err("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into());
    }
    Ok(())
}

/// Upstream's separators between tokens: ASCII blanks only (any other character, a no-break
/// space included, is part of a key or value and fails its validation).
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// A cursor over the selector. `pos` is a byte offset that only ever moves by whole characters
/// or by an ASCII token just matched, so every slice at it is on a character boundary.
struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or_default()
    }
    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(is_blank).len();
    }
    fn peek(&mut self) -> Option<char> {
        self.skip_ws();
        self.rest().chars().next()
    }
    fn eat(&mut self, t: &str) -> bool {
        self.skip_ws();
        if self.rest().starts_with(t) {
            self.pos += t.len();
            true
        } else {
            false
        }
    }
    /// A key or value token: anything up to a blank or an operator character.
    fn word(&mut self) -> &'a str {
        self.skip_ws();
        let rest = self.rest();
        let end = rest.find(|c: char| is_blank(c) || "=!,()".contains(c)).unwrap_or(rest.len());
        self.pos += end;
        &rest[..end]
    }
    /// `in` / `notin` as whole words.
    fn keyword(&mut self, kw: &str) -> bool {
        self.skip_ws();
        match self.rest().strip_prefix(kw) {
            Some(after) if after.starts_with(|c: char| is_blank(c) || c == '(') => {
                self.pos += kw.len();
                true
            }
            _ => false,
        }
    }
}

impl LabelSelector {
    pub fn everything() -> LabelSelector {
        LabelSelector::default()
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parse the string form.
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let mut lx = Lexer { s, pos: 0 };
        let mut requirements = Vec::new();
        if lx.peek().is_none() {
            return Ok(LabelSelector { requirements });
        }
        loop {
            let requirement = if lx.eat("!") {
                let key = lx.word();
                check_key(key)?;
                Requirement::DoesNotExist(key.to_string())
            } else {
                let key = lx.word();
                check_key(key)?;
                if lx.eat("==") || lx.eat("=") {
                    let v = lx.word();
                    check_value(v)?;
                    Requirement::Equals(key.to_string(), v.to_string())
                } else if lx.eat("!=") {
                    let v = lx.word();
                    check_value(v)?;
                    Requirement::NotEquals(key.to_string(), v.to_string())
                } else if lx.keyword("notin") {
                    Requirement::NotIn(key.to_string(), value_set(&mut lx)?)
                } else if lx.keyword("in") {
                    Requirement::In(key.to_string(), value_set(&mut lx)?)
                } else {
                    Requirement::Exists(key.to_string())
                }
            };
            requirements.push(requirement);
            match lx.peek() {
                None => break,
                Some(',') => {
                    lx.eat(",");
                }
                Some(c) => return Err(err(format!("found '{c}', expected: ',' or 'end of string'"))),
            }
        }
        Ok(LabelSelector { requirements })
    }

    /// From a structured selector (`matchLabels` and `matchExpressions`).
    pub fn from_k8s(sel: &metav1::LabelSelector) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            check_key(k)?;
            check_value(v)?;
            requirements.push(Requirement::Equals(k.clone(), v.clone()));
        }
        for e in sel.match_expressions.iter().flatten() {
            check_key(&e.key)?;
            let values = e.values.clone().unwrap_or_default();
            let r = match e.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(err("for 'in', 'notin' operators, values set can't be empty".to_string()));
                }
                "In" => Requirement::In(e.key.clone(), values),
                "NotIn" => Requirement::NotIn(e.key.clone(), values),
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(err("values set must be empty for exists and does not exist"));
                }
                "Exists" => Requirement::Exists(e.key.clone()),
                "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
                other => return Err(err(format!("{other:?} is not a valid label selector operator"))),
            };
            requirements.push(r);
        }
        Ok(LabelSelector { requirements })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Match the labels of an object held as JSON.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(&labels_of(obj))
    }
}

/// Sorted by key like upstream's `String()`, joined with commas.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut reqs: Vec<&Requirement> = self.requirements.iter().collect();
        reqs.sort_by(|a, b| a.key().cmp(b.key()));
        let parts: Vec<String> = reqs.iter().map(|r| r.to_string()).collect();
        write!(f, "{}", parts.join(","))
    }
}

/// `metadata.labels` of an object.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

fn check_key(k: &str) -> Result<(), SelectorError> {
    if k.is_empty() {
        return Err(err("found '', expected: identifier"));
    }
    validate_label_key(k).map_err(|e| err(format!("key: Invalid value: {k:?}: {e}")))
}

fn check_value(v: &str) -> Result<(), SelectorError> {
    validate_label_value(v).map_err(|e| err(format!("values[0][key]: Invalid value: {v:?}: {e}")))
}

/// `(v1, v2, …)`: as upstream, a value may be empty (`()` is the set of the empty string), and
/// the values are a set (sorted, without duplicates).
fn value_set(lx: &mut Lexer<'_>) -> Result<Vec<String>, SelectorError> {
    if !lx.eat("(") {
        return Err(err(format!("found '{}' expected: '('", lx.peek().map(String::from).unwrap_or_default())));
    }
    let mut values = Vec::new();
    loop {
        let v = lx.word();
        check_value(v)?;
        values.push(v.to_string());
        if lx.eat(",") {
            continue;
        }
        if lx.eat(")") {
            break;
        }
        return Err(err(format!("found '{}', expected: ',' or ')'", lx.peek().map(String::from).unwrap_or_default())));
    }
    values.sort();
    values.dedup();
    Ok(values)
}

/// One `field=value` or `field!=value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    pub value: String,
    pub negated: bool,
}

/// A conjunction of field terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

/// The comma-separated terms (upstream `splitTerms`): an escaped comma is data, kept with its
/// backslash for `unescape`.
fn split_terms(s: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

/// The operators a term may use, longest first where they share a start (upstream
/// `termOperators`).
const TERM_OPERATORS: [&str; 3] = ["!=", "==", "="];

/// Split a term at the first operator (upstream `splitTerm`: the field has no escapes).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    term.char_indices().find_map(|(i, _)| {
        let rest = &term[i..];
        TERM_OPERATORS.iter().find(|op| rest.starts_with(**op)).map(|op| (&term[..i], *op, &rest[op.len()..]))
    })
}

/// A value with its escapes (`\\`, `\,`, `\=`) undone; an unescaped `,` or `=` is refused
/// (upstream `UnescapeValue`).
fn unescape(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(other) => return Err(err(format!("invalid field selector: invalid escape sequence: \\{other}"))),
                None => return Err(err("invalid field selector: invalid escape sequence: \\")),
            },
            ',' | '=' => return Err(err(format!("invalid field selector: unescaped character in value: {c}"))),
            _ => out.push(c),
        }
    }
    Ok(out)
}

impl FieldSelector {
    /// Parse without checking which fields the kind supports. Empty terms are skipped, as
    /// upstream skips them.
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = Vec::new();
        for part in split_terms(s) {
            if part.trim().is_empty() {
                continue;
            }
            let Some((field, op, value)) = split_term(part) else {
                return Err(err(format!("invalid selector: '{s}'; can't understand '{part}'")));
            };
            terms.push(FieldTerm {
                field: field.trim().to_string(),
                value: unescape(value.trim())?,
                negated: op == "!=",
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Parse and reject fields the kind does not support.
    pub fn parse_for(info: &ResourceInfo, s: &str) -> Result<FieldSelector, SelectorError> {
        let sel = FieldSelector::parse(s)?;
        for t in &sel.terms {
            if !field_supported(info, &t.field) {
                return Err(err(format!("field label not supported: {}", t.field)));
            }
        }
        Ok(sel)
    }

    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    pub fn matches(&self, info: &ResourceInfo, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let actual = field_value(info, obj, &t.field).unwrap_or_default();
            (actual == t.value) != t.negated
        })
    }

    /// The name when the selector is exactly `metadata.name=X`.
    pub fn single_name(&self) -> Option<&str> {
        match self.terms.as_slice() {
            [t] if t.field == "metadata.name" && !t.negated => Some(&t.value),
            _ => None,
        }
    }
}

/// Fields each kind can be selected on (upstream's `…ToSelectableFields` and conversion funcs).
fn kind_fields(info: &ResourceInfo) -> &'static [&'static str] {
    match (info.group, info.kind) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("", "Event") | ("events.k8s.io", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reportingController",
        ],
        ("", "Namespace") => &["status.phase"],
        ("", "Secret") => &["type"],
        ("", "Node") => &["spec.unschedulable"],
        ("", "PersistentVolumeClaim") => &["spec.volumeName"],
        ("", "ReplicationController") => &["status.replicas"],
        ("apps", "ReplicaSet") => &["status.replicas"],
        _ => &[],
    }
}

pub fn field_supported(info: &ResourceInfo, field: &str) -> bool {
    field == "metadata.name" || (field == "metadata.namespace" && info.namespaced) || kind_fields(info).contains(&field)
}

/// The value of a selectable field, as a string (`None`: not selectable for this kind).
pub fn field_value(info: &ResourceInfo, obj: &Value, field: &str) -> Option<String> {
    if !field_supported(info, field) {
        return None;
    }
    let render = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let value = match (info.kind, field) {
        ("Event", "source") => {
            let component = obj.pointer("/source/component").or_else(|| obj.pointer("/deprecatedSource/component"));
            render(component)
        }
        ("Event", "reportingComponent") => {
            render(obj.get("reportingComponent").or_else(|| obj.get("reportingController")))
        }
        ("Event", f) if f.starts_with("involvedObject.") => {
            let rest = &f["involvedObject.".len()..];
            render(obj.get("involvedObject").or_else(|| obj.get("regarding")).and_then(|o| o.get(rest)))
        }
        ("Node", "spec.unschedulable") => {
            render(Some(obj.pointer("/spec/unschedulable").unwrap_or(&Value::Bool(false))))
        }
        ("Pod", "spec.hostNetwork") => render(Some(obj.pointer("/spec/hostNetwork").unwrap_or(&Value::Bool(false)))),
        ("Pod", "status.podIPs") => render(obj.pointer("/status/podIPs/0/ip")),
        ("ReplicaSet", "status.replicas") => render(Some(obj.pointer("/status/replicas").unwrap_or(&Value::from(0)))),
        _ => {
            let pointer = format!("/{}", field.replace('.', "/"));
            render(obj.pointer(&pointer))
        }
    };
    Some(value)
}
