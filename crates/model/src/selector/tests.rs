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
    for bad in ["app=", "=x", "app in (a", "app in a", "app=a b", "Bad Key=x", "app=no spaces allowed", "a,,b"] {
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

#[test]
fn empty_values_in_sets_as_upstream() {
    // `x in (foo,,baz),y,z notin ()` is upstream's own example of valid syntax.
    let sel = LabelSelector::parse("x in (foo,,baz),y,z notin ()").expect("valid");
    assert_eq!(
        sel.requirements(),
        [
            Requirement::In("x".into(), vec!["".into(), "baz".into(), "foo".into()]),
            Requirement::Exists("y".into()),
            Requirement::NotIn("z".into(), vec!["".into()]),
        ]
    );
    assert_eq!(sel.to_string(), "x in (,baz,foo),y,z notin ()");
    assert!(sel.matches(&labels(&[("x", ""), ("y", "1")])));
}

/// Non-ASCII input used to slice strings inside a character (a panic per request).
#[test]
fn non_ascii_selectors_are_errors_not_panics() {
    for (s, bad, what) in [
        ("\u{a0}", "\u{a0}", "key"),
        ("é=x", "é", "key"),
        ("app=é", "é", "values[0][key]"),
        ("app in (\u{a0})", "\u{a0}", "values[0][key]"),
        ("app\u{2003}=x", "app\u{2003}", "key"),
    ] {
        let e = LabelSelector::parse(s).expect_err(s);
        assert!(e.to_string().starts_with(&format!("{what}: Invalid value: {bad:?}: ")), "{s:?}: {e}");
    }
    let pods = resources::find("", "v1", "pods").expect("pods");
    for (s, wanted) in [
        ("é=x", "field label not supported: é"),
        ("metadata.name=é", ""),
        ("\\é=x", "field label not supported: \\é"),
        ("metadata.name=\\é", "invalid field selector: invalid escape sequence: \\é"),
        ("é", "invalid selector: 'é'; can't understand 'é'"),
        ("metadata.name=a,é", "invalid selector: 'metadata.name=a,é'; can't understand 'é'"),
        ("metadata.name=a=b", "invalid field selector: unescaped character in value: ="),
        ("metadata.name=a\\", "invalid field selector: invalid escape sequence: \\"),
    ] {
        match FieldSelector::parse_for(pods, s) {
            Ok(sel) => assert!(wanted.is_empty() && sel.terms()[0].value == "é", "{s:?}: {sel:?}"),
            Err(e) => assert_eq!(e.to_string(), wanted, "{s:?}"),
        }
    }
    // Empty terms are skipped, as upstream does.
    assert_eq!(FieldSelector::parse(",metadata.name=a,,").expect("valid").single_name(), Some("a"));
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    /// Characters selectors are made of, with the ones that used to break the parsers.
    const ALPHABET: &str = "[a-z0-9A-Z=!,()./_\\\\ \t-]|é|\u{a0}|\u{2003}|☃|\u{10348}";

    fn selector_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            proptest::collection::vec(ALPHABET, 0..40).prop_map(|v| v.concat()),
            proptest::collection::vec(
                prop_oneof![
                    "[a-z]{1,5}",
                    Just("in".to_string()),
                    Just("notin".to_string()),
                    Just("==".to_string()),
                    Just("!=".to_string()),
                    ALPHABET.prop_map(String::from)
                ],
                0..12
            )
            .prop_map(|v| v.join(" ")),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        "([a-z0-9]([-a-z0-9]{0,4}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,4}[a-z0-9])?){0,2}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?"
    }

    fn value() -> impl Strategy<Value = String> {
        "([A-Za-z0-9]([-A-Za-z0-9_.]{0,10}[A-Za-z0-9])?)?"
    }

    fn requirement() -> impl Strategy<Value = Requirement> {
        let values = || proptest::collection::btree_set(value(), 1..4).prop_map(|s| s.into_iter().collect::<Vec<_>>());
        prop_oneof![
            (key(), value()).prop_map(|(k, v)| Requirement::Equals(k, v)),
            (key(), value()).prop_map(|(k, v)| Requirement::NotEquals(k, v)),
            (key(), values()).prop_map(|(k, v)| Requirement::In(k, v)),
            (key(), values()).prop_map(|(k, v)| Requirement::NotIn(k, v)),
            key().prop_map(Requirement::Exists),
            key().prop_map(Requirement::DoesNotExist),
        ]
    }

    /// A selector's requirements in printing order (sorted by key, stable).
    fn sorted(sel: &LabelSelector) -> Vec<Requirement> {
        let mut reqs = sel.requirements().to_vec();
        reqs.sort_by(|a, b| a.key().cmp(b.key()));
        reqs
    }

    proptest! {
        #![proptest_config(crate::fuzz_config(256))]

        /// Any text is parsed or refused with a message, never a panic; what parses prints to
        /// text that parses back to the same requirements.
        #[test]
        fn label_selectors_parse_or_refuse_and_round_trip(s in selector_text()) {
            if let Ok(sel) = LabelSelector::parse(&s) {
                let printed = sel.to_string();
                let again = LabelSelector::parse(&printed).map_err(|e| TestCaseError::fail(format!("{printed:?}: {e}")))?;
                prop_assert_eq!(sorted(&again), sorted(&sel));
                prop_assert_eq!(again.to_string(), printed);
            }
        }

        /// Selectors built from valid requirements print and parse back to themselves.
        #[test]
        fn printed_label_selectors_parse_back(reqs in proptest::collection::vec(requirement(), 0..5)) {
            let sel = LabelSelector { requirements: reqs };
            let again = LabelSelector::parse(&sel.to_string()).map_err(|e| TestCaseError::fail(format!("{sel}: {e}")))?;
            prop_assert_eq!(sorted(&again), sorted(&sel));
        }

        /// Any text is a field selector or an error, for any kind.
        #[test]
        fn field_selectors_parse_or_refuse(s in selector_text()) {
            let _ = FieldSelector::parse(&s);
            let pods = resources::find("", "v1", "pods").expect("pods");
            if let Ok(sel) = FieldSelector::parse_for(pods, &s) {
                let _ = sel.matches(pods, &json!({"metadata": {"name": s}}));
            }
        }

        /// Any value, escaped as upstream's `EscapeValue` does, comes back from the parser.
        #[test]
        fn escaped_field_values_round_trip(field in "[a-z][a-z.]{0,15}", op in "!=|==|=", value in any::<String>()) {
            let escaped = value.replace('\\', "\\\\").replace(',', "\\,").replace('=', "\\=");
            let sel = FieldSelector::parse(&format!("{field}{op}{escaped}"))
                .map_err(|e| TestCaseError::fail(format!("{escaped:?}: {e}")))?;
            prop_assert_eq!(sel.terms(), [FieldTerm { field, value: value.trim().to_string(), negated: op == "!=" }]);
        }
    }
}
