//! Cell text helpers shared by the printers: ages (`HumanDuration`), label and selector strings,
//! storage quantities and access modes, each written to print what kube-apiserver prints.
//!
//! Pure string formatting over `serde_json::Value`; no clock (callers pass `now`).

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

/// Elapsed time in upstream's `duration.HumanDuration` form: about two significant figures
/// (`59s`, `119s`, `5m30s`, `2h5m`, `2d3h`, `400d`, `3y45d`). Up to one second in the future
/// reads `0s` (clock skew); further ahead is `<invalid>`.
pub fn human_duration(d: SignedDuration) -> String {
    // Go truncates toward zero when converting to whole seconds, and so does `as_secs`.
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{days}d") } else { format!("{days}d{h}h") };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let dy = days % 365;
        return if dy == 0 { format!("{years}y") } else { format!("{years}y{dy}d") };
    }
    format!("{years}y")
}

/// Upstream's `translateTimestampSince`: the age of `ts` at `now`, `<unknown>` when unset.
pub fn since(now: Timestamp, ts: Option<Timestamp>) -> String {
    match ts {
        Some(ts) => human_duration(now.duration_since(ts)),
        None => "<unknown>".to_string(),
    }
}

/// The timestamp at `pointer`, when present and parseable (RFC 3339, with or without fraction).
pub fn timestamp(obj: &Value, pointer: &str) -> Option<Timestamp> {
    obj.pointer(pointer).and_then(Value::as_str).and_then(|s| s.parse().ok())
}

/// The string at `pointer`, `""` when absent or not a string (Go's zero value).
pub fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The integer at `pointer`, `0` when absent.
pub fn int_at(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// The array at `pointer`, empty when absent.
pub fn array_at<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// The number of keys of the map at `pointer`, `0` when absent.
pub fn map_len(obj: &Value, pointer: &str) -> usize {
    obj.pointer(pointer).and_then(Value::as_object).map_or(0, serde_json::Map::len)
}

/// Upstream's `labels.FormatLabels`: `a=1,b=2` sorted by key, `<none>` when empty.
pub fn format_labels(map: Option<&Value>) -> String {
    let mut pairs: Vec<(&str, &str)> = map
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    if pairs.is_empty() {
        return "<none>".to_string();
    }
    pairs.sort_unstable();
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// A `metav1.LabelSelector` rendered as upstream's `labels.Selector.String()`: requirements
/// sorted by key, `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`. An absent or empty selector is
/// `""`. `None` when the selector is malformed (an unknown operator, or values that do not fit
/// the operator).
pub fn label_selector_string(selector: Option<&Value>) -> Option<String> {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return Some(String::new());
    };
    let mut requirements: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (key, value) in labels {
            requirements.push((key.clone(), format!("{key}={}", value.as_str().unwrap_or(""))));
        }
    }
    for expr in selector.get("matchExpressions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]) {
        let key = str_at(expr, "/key");
        let mut values: Vec<&str> = array_at(expr, "/values").iter().map(|v| v.as_str().unwrap_or("")).collect();
        values.sort_unstable();
        let text = match str_at(expr, "/operator") {
            "In" | "NotIn" if values.is_empty() => return None,
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return None,
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        };
        requirements.push((key.to_string(), text));
    }
    requirements.sort_by(|a, b| a.0.cmp(&b.0));
    Some(requirements.into_iter().map(|(_, text)| text).collect::<Vec<_>>().join(","))
}

/// Upstream's `metav1.FormatLabelSelector`: like [`label_selector_string`], but `<none>` when
/// empty and `<error>` when malformed.
pub fn format_label_selector(selector: Option<&Value>) -> String {
    match label_selector_string(selector) {
        None => "<error>".to_string(),
        Some(s) if s.is_empty() => "<none>".to_string(),
        Some(s) => s,
    }
}

/// Access modes as `RWO,ROX,RWX,RWOP`, always in that order, duplicates dropped.
pub fn access_modes(modes: &[Value]) -> String {
    const ORDER: [(&str, &str); 4] =
        [("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP")];
    ORDER
        .iter()
        .filter(|(mode, _)| modes.iter().any(|m| m.as_str() == Some(mode)))
        .map(|(_, short)| *short)
        .collect::<Vec<_>>()
        .join(",")
}

/// A resource quantity as upstream's `Quantity.String()` prints it, for the common shapes: an
/// integer with a binary suffix moves up while divisible by 1024 (`1024Mi` → `1Gi`), an integer
/// with a decimal suffix (or none) moves up while divisible by 1000 (`1000M` → `1G`). Anything
/// else (fractions, exponents, milli-units) is printed as written. An absent quantity is `0`.
pub fn quantity(value: Option<&Value>) -> String {
    let text = match value {
        Some(Value::String(s)) => s.trim(),
        Some(Value::Number(n)) => return quantity(Some(&Value::String(n.to_string()))),
        _ => return "0".to_string(),
    };
    const BINARY: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    const DECIMAL: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    let digits_end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    let Ok(mut number) = digits.parse::<u128>() else {
        return text.to_string();
    };
    let (table, factor, mut index) = if let Some(i) = BINARY.iter().skip(1).position(|s| *s == suffix) {
        (BINARY, 1024, i + 1)
    } else if let Some(i) = DECIMAL.iter().position(|s| *s == suffix) {
        (DECIMAL, 1000, i)
    } else {
        return text.to_string();
    };
    if number == 0 {
        return "0".to_string();
    }
    while index + 1 < table.len() && number % factor == 0 {
        number /= factor;
        index += 1;
    }
    format!("{number}{}", table[index])
}

/// Join `list` with commas, or `list + N more...` when entries were left out (upstream's
/// `listWithMoreString`; `<unset>` when there is nothing to show).
pub fn list_with_more(list: &[String], more: bool, count: usize, max: usize) -> String {
    let joined = list.join(",");
    if more {
        return format!("{joined} + {} more...", count.saturating_sub(max));
    }
    if joined.is_empty() { "<unset>".to_string() } else { joined }
}

/// `host:port`, with IPv6 hosts in brackets (Go's `net.JoinHostPort`).
pub fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}
