//! Applying a strategic merge patch, as `k8s.io/apimachinery/pkg/util/strategicpatch` does:
//! maps merge recursively and `null` deletes; lists follow their field's strategy; and the
//! directives `$patch` (replace, delete, merge), `$retainKeys`, `$setElementOrder/<list>` and
//! `$deleteFromPrimitiveList/<list>` steer the merge. The result never contains a directive.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::{Map, Value};

use super::PatchError;
use super::merge_keys::{ListStrategy, list_strategy};
use crate::ResourceInfo;

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";

pub(super) fn apply(info: &ResourceInfo, doc: &Value, patch: &Value) -> Result<Value, PatchError> {
    let (Value::Object(orig), Value::Object(patch)) = (doc, patch) else {
        return Err(PatchError::Malformed("a strategic merge patch must be a JSON object".into()));
    };
    let ctx = Ctx { info };
    match ctx.merge_map(orig, patch, &mut Vec::new())? {
        Some(m) => Ok(Value::Object(m)),
        None => Err(PatchError::NotApplicable("the patch deletes the whole object".into())),
    }
}

struct Ctx<'a> {
    info: &'a ResourceInfo,
}

fn directive(map: &Map<String, Value>) -> Result<Option<&str>, PatchError> {
    match map.get(PATCH) {
        None => Ok(None),
        Some(Value::String(s)) if matches!(s.as_str(), "replace" | "delete" | "merge") => Ok(Some(s)),
        Some(other) => Err(PatchError::Malformed(format!("unknown patch type: {other}"))),
    }
}

impl Ctx<'_> {
    /// Merge `patch` into `orig`. `None`: the patch deletes this map.
    fn merge_map(
        &self,
        orig: &Map<String, Value>,
        patch: &Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Result<Option<Map<String, Value>>, PatchError> {
        match directive(patch)? {
            Some("delete") => return Ok(None),
            Some("replace") => return self.clean_map(patch, path).map(Some),
            _ => {}
        }
        let mut result = orig.clone();
        let mut orders: Vec<(&str, &Value)> = Vec::new();
        let mut deletions: Vec<(&str, &Value)> = Vec::new();
        for (key, value) in patch {
            if let Some(field) = key.strip_prefix(SET_ORDER) {
                orders.push((field, value));
                continue;
            }
            if let Some(field) = key.strip_prefix(DELETE_FROM) {
                deletions.push((field, value));
                continue;
            }
            if key == PATCH || key == RETAIN_KEYS {
                continue;
            }
            if key.starts_with('$') {
                return Err(PatchError::Malformed(format!("unknown directive {key:?}")));
            }
            if value.is_null() {
                result.remove(key);
                continue;
            }
            path.push(key.clone());
            let merged = match (orig.get(key), value) {
                (Some(Value::Object(o)), Value::Object(p)) => self.merge_map(o, p, path)?.map(Value::Object),
                (_, Value::Object(p)) => match directive(p)? {
                    Some("delete") => None,
                    _ => Some(Value::Object(self.clean_map(p, path)?)),
                },
                (Some(Value::Array(o)), Value::Array(p)) => Some(Value::Array(self.merge_list(o, p, path)?)),
                (_, Value::Array(p)) => Some(Value::Array(self.clean_list(p, path)?)),
                (_, scalar) => Some(scalar.clone()),
            };
            path.pop();
            match merged {
                Some(v) => {
                    result.insert(key.clone(), v);
                }
                None => {
                    result.remove(key);
                }
            }
        }
        for (field, values) in deletions {
            let Value::Array(remove) = values else {
                return Err(PatchError::Malformed(format!("{DELETE_FROM}{field} must be a list")));
            };
            let remove: HashSet<String> = remove.iter().map(canonical).collect();
            if let Some(Value::Array(list)) = result.get_mut(field) {
                list.retain(|v| !remove.contains(&canonical(v)));
            }
        }
        for (field, order) in orders {
            let Value::Array(order) = order else {
                return Err(PatchError::Malformed(format!("{SET_ORDER}{field} must be a list")));
            };
            path.push(field.to_string());
            let strategy = self.strategy(path);
            path.pop();
            if let Some(Value::Array(list)) = result.get_mut(field) {
                reorder(list, order, strategy);
            }
        }
        if let Some(retain) = patch.get(RETAIN_KEYS) {
            let Value::Array(keep) = retain else {
                return Err(PatchError::Malformed(format!("{RETAIN_KEYS} must be a list")));
            };
            let keep: HashSet<&str> = keep.iter().filter_map(Value::as_str).collect();
            result.retain(|k, _| keep.contains(k.as_str()));
        }
        Ok(Some(result))
    }

    fn strategy(&self, path: &[String]) -> ListStrategy {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        list_strategy(self.info, &path)
    }

    fn merge_list(&self, orig: &[Value], patch: &[Value], path: &mut Vec<String>) -> Result<Vec<Value>, PatchError> {
        // `{"$patch": "replace"}` as an element: the rest of the patch list is the new list.
        let replace =
            patch.iter().any(|e| e.as_object().is_some_and(|m| m.get(PATCH) == Some(&Value::from("replace"))));
        if replace {
            let rest: Vec<Value> = patch
                .iter()
                .filter(|e| !e.as_object().is_some_and(|m| m.get(PATCH) == Some(&Value::from("replace"))))
                .cloned()
                .collect();
            return self.clean_list(&rest, path);
        }
        match self.strategy(path) {
            ListStrategy::Replace => self.clean_list(patch, path),
            ListStrategy::MergeSet => {
                let mut out = orig.to_vec();
                let mut present: HashSet<String> = out.iter().map(canonical).collect();
                for v in self.clean_list(patch, path)? {
                    if present.insert(canonical(&v)) {
                        out.push(v);
                    }
                }
                Ok(out)
            }
            ListStrategy::MergeByKey(merge_key) => {
                // Elements by position (`None`: removed), and where each key value sits, first
                // first: a patch element finds its match without scanning the list.
                let mut out: Vec<Option<Value>> = orig.iter().cloned().map(Some).collect();
                let mut at: HashMap<String, VecDeque<usize>> = HashMap::new();
                for (i, o) in orig.iter().enumerate() {
                    if let Some(k) = o.get(merge_key) {
                        at.entry(canonical(k)).or_default().push_back(i);
                    }
                }
                for element in patch {
                    let Value::Object(p) = element else {
                        return Err(PatchError::Malformed(format!(
                            "list {} merges by {merge_key:?}, but holds a non-object element",
                            path.join(".")
                        )));
                    };
                    let Some(key_value) = p.get(merge_key) else {
                        return Err(PatchError::Malformed(format!(
                            "map: {element} does not contain declared merge key: {merge_key}"
                        )));
                    };
                    let positions = at.entry(canonical(key_value)).or_default();
                    let deleting = directive(p)? == Some("delete");
                    match (positions.front().copied(), deleting) {
                        (Some(i), true) => {
                            out[i] = None;
                            positions.pop_front();
                        }
                        (None, true) => {}
                        (Some(i), false) => {
                            let merged = match &out[i] {
                                Some(Value::Object(o)) => self.merge_map(o, p, path)?,
                                _ => Some(self.clean_map(p, path)?),
                            };
                            out[i] = merged.map(Value::Object);
                            if out[i].is_none() {
                                positions.pop_front();
                            }
                        }
                        (None, false) => {
                            positions.push_back(out.len());
                            out.push(Some(Value::Object(self.clean_map(p, path)?)));
                        }
                    }
                }
                Ok(out.into_iter().flatten().collect())
            }
        }
    }

    /// A patch value that lands where nothing was: drop directives and `null`s.
    fn clean_map(&self, patch: &Map<String, Value>, path: &mut Vec<String>) -> Result<Map<String, Value>, PatchError> {
        let mut out = Map::new();
        for (key, value) in patch {
            if key.starts_with('$') {
                if key == PATCH || key == RETAIN_KEYS || key.starts_with(SET_ORDER) || key.starts_with(DELETE_FROM) {
                    continue;
                }
                return Err(PatchError::Malformed(format!("unknown directive {key:?}")));
            }
            path.push(key.clone());
            let cleaned = match value {
                Value::Null => None,
                Value::Object(m) => match directive(m)? {
                    Some("delete") => None,
                    _ => Some(Value::Object(self.clean_map(m, path)?)),
                },
                Value::Array(l) => Some(Value::Array(self.clean_list(l, path)?)),
                other => Some(other.clone()),
            };
            path.pop();
            if let Some(v) = cleaned {
                out.insert(key.clone(), v);
            }
        }
        Ok(out)
    }

    fn clean_list(&self, list: &[Value], path: &mut Vec<String>) -> Result<Vec<Value>, PatchError> {
        let mut out = Vec::new();
        for element in list {
            match element {
                Value::Object(m) => match directive(m)? {
                    Some("delete") | Some("replace") if m.len() == 1 => {}
                    Some("delete") => {}
                    _ => out.push(Value::Object(self.clean_map(m, path)?)),
                },
                Value::Array(inner) => out.push(Value::Array(self.clean_list(inner, path)?)),
                other => out.push(other.clone()),
            }
        }
        Ok(out)
    }
}

/// `$setElementOrder`: listed elements first, in that order; the rest keep their order after.
fn reorder(list: &mut Vec<Value>, order: &[Value], strategy: ListStrategy) {
    let key_of = |v: &Value| -> String {
        match strategy {
            ListStrategy::MergeByKey(k) => canonical(v.get(k).unwrap_or(&Value::Null)),
            _ => canonical(v),
        }
    };
    let mut at: HashMap<String, VecDeque<usize>> = HashMap::new();
    for (i, v) in list.iter().enumerate() {
        at.entry(key_of(v)).or_default().push_back(i);
    }
    let mut rest: Vec<Option<Value>> = std::mem::take(list).into_iter().map(Some).collect();
    for w in order {
        if let Some(i) = at.get_mut(&key_of(w)).and_then(VecDeque::pop_front) {
            list.extend(rest[i].take());
        }
    }
    list.extend(rest.into_iter().flatten());
}

/// A text that is equal for equal values (object keys sorted), so list elements and merge keys
/// are found by hashing: a patch of a few MiB is applied in linear time, not quadratic (it
/// runs under the store's write lock).
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> =
                entries.iter().map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), canonical(v))).collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(l) => format!("[{}]", l.iter().map(canonical).collect::<Vec<_>>().join(",")),
        scalar => scalar.to_string(),
    }
}
