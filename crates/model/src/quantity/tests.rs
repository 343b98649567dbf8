use super::*;

fn q(s: &str) -> Quantity {
    parse_quantity(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn parses_the_forms_manifests_use() {
    for (text, nanos) in [
        ("1Gi", (1i128 << 30) * NANOS_PER_UNIT),
        ("1G", 1_000_000_000 * NANOS_PER_UNIT),
        ("100M", 100_000_000 * NANOS_PER_UNIT),
        ("1.5Gi", (3i128 << 29) * NANOS_PER_UNIT),
        ("500m", 500_000_000),
        ("0.1", 100_000_000),
        (".5", 500_000_000),
        ("5.", 5 * NANOS_PER_UNIT),
        ("1e3", 1000 * NANOS_PER_UNIT),
        ("1E3", 1000 * NANOS_PER_UNIT),
        ("1E", 1_000_000_000_000_000_000 * NANOS_PER_UNIT),
        ("2e-3", 2_000_000),
        ("+7", 7 * NANOS_PER_UNIT),
        ("-250m", -250_000_000),
        ("10n", 10),
        ("3u", 3_000),
        (" 1Ki ", 1024 * NANOS_PER_UNIT),
        ("0", 0),
    ] {
        assert_eq!(q(text).nanos(), nanos, "{text}");
    }
}

#[test]
fn rejects_what_upstream_rejects() {
    for (bad, err) in [
        ("", QuantityError::Format),
        ("Gi", QuantityError::Format),
        ("1.2.3", QuantityError::Format),
        ("1 Gi", QuantityError::Format),
        ("1Zi", QuantityError::Format),
        ("abc", QuantityError::Format),
        ("1i", QuantityError::Suffix),
        ("1e", QuantityError::Suffix),
        ("1m5", QuantityError::Suffix),
        ("1KiB", QuantityError::Format),
    ] {
        assert_eq!(parse_quantity(bad), Err(err), "{bad:?}");
    }
    assert_eq!(
        QuantityError::Format.to_string(),
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
    );
}

#[test]
fn orders_exactly_across_units() {
    assert_eq!(q("1024Mi"), q("1Gi"));
    assert_eq!(q("1000m"), q("1"));
    assert_eq!(q("1k"), q("1e3"));
    assert!(q("1Gi") > q("1G"));
    assert!(q("2Gi") > q("1Gi"));
    assert!(q("500Mi") < q("1Gi"));
    assert!(q("1n") > q("0"));
    assert!(q("-1") < q("0"));
}

#[test]
fn converts_like_upstream() {
    assert_eq!(q("1Gi").value(), 1 << 30);
    assert_eq!(q("100m").value(), 1, "Value() rounds up");
    assert_eq!(q("1.5").millis(), 1500);
    assert_eq!(q("1n").millis(), 1, "MilliValue() rounds up");
    assert_eq!(q("0.1n").nanos(), 1, "precision below a nano-unit rounds up");
    assert_eq!(q("-0.1n").nanos(), -1, "away from zero");
    assert_eq!(q("100n").round_up_to_millis(), q("1m"));
    assert!(q("100n").has_sub_milli_precision());
    assert!(!q("2m").has_sub_milli_precision());
    assert_eq!(q("1e40").value(), i64::MAX as i128, "capped at int64");
}

#[test]
fn displays_with_the_largest_exact_suffix() {
    for (text, shown) in
        [("2", "2"), ("0.5", "500m"), ("1500", "1500"), ("250u", "250u"), ("7n", "7n"), ("1Ki", "1024")]
    {
        assert_eq!(q(text).to_string(), shown, "{text}");
    }
}

/// A zero with a huge exponent used to scale the zero once per power of ten (minutes of CPU
/// per request).
#[test]
fn zero_with_a_huge_exponent_is_zero_at_once() {
    for text in ["0e2147483647", "0.0E2147483647", "-0e2147483647", "0e-2147483648"] {
        let started = std::time::Instant::now();
        assert_eq!(q(text), Quantity::default(), "{text}");
        assert!(started.elapsed() < std::time::Duration::from_millis(100), "{text}: {:?}", started.elapsed());
    }
    assert_eq!(q("1e2147483647").value(), i64::MAX as i128, "capped");
    assert_eq!(q(&format!("0.{}1", "0".repeat(100_000))).nanos(), 1, "rounds up");
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn quantity_text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[ +-]?[0-9.]{0,40}[eEinumkKMGTPZ]{0,3}[-+]?[0-9]{0,12} ?",
            "[+-]?[0-9]{0,3}(\\.[0-9]{0,3})?(e|E)[-+]?[0-9]{6,10}",
        ]
    }

    proptest! {
        #![proptest_config(crate::fuzz_config(256))]

        /// Any text is a quantity or one of upstream's errors, without a panic; a quantity
        /// prints as text that parses back to it.
        #[test]
        fn quantities_parse_or_refuse_and_round_trip(text in quantity_text()) {
            if let Ok(parsed) = parse_quantity(&text) {
                prop_assert_eq!(parse_quantity(&parsed.to_string()), Ok(parsed), "{}", parsed);
            }
        }

        /// Every amount within the cap prints and parses back exactly.
        #[test]
        fn every_amount_round_trips(nanos in -MAX_NANOS..=MAX_NANOS) {
            let quantity = Quantity::from_nanos(nanos);
            prop_assert_eq!(parse_quantity(&quantity.to_string()), Ok(quantity));
        }
    }
}
