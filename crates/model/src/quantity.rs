//! Kubernetes resource quantities (`1Gi`, `500m`, `1e3`, `100M`): parsing and ordering.

use std::cmp::Ordering;
use std::fmt;

/// A quantity as an exact count of milli-units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity {
    millis: i128,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
pub struct QuantityError;

impl Quantity {
    pub fn from_millis(millis: i128) -> Quantity {
        Quantity { millis }
    }
    pub fn millis(self) -> i128 {
        self.millis
    }
    /// Whole units, rounded up (as `Value()` does).
    pub fn value(self) -> i128 {
        (self.millis + 999).div_euclid(1000)
    }
    pub fn is_zero(self) -> bool {
        self.millis == 0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millis % 1000 == 0 { write!(f, "{}", self.millis / 1000) } else { write!(f, "{}m", self.millis) }
    }
}

/// Parse the canonical string form.
pub fn parse_quantity(s: &str) -> Result<Quantity, QuantityError> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'-') => (-1i128, &s[1..]),
        Some(b'+') => (1, &s[1..]),
        _ => (1, s),
    };
    let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return Err(QuantityError);
    }
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    // Value in units of 10^-frac_digits.
    let digits = format!("{whole}{frac}");
    let mantissa: i128 = if digits.is_empty() { 0 } else { digits.parse().map_err(|_| QuantityError)? };
    let frac_digits = frac.len() as u32;

    // (numerator multiplier, power of ten) for the suffix.
    let (multiplier, exp10): (i128, i32) = match suffix {
        "" => (1, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        other if other.starts_with(['e', 'E']) => {
            let e: i32 = other[1..].parse().map_err(|_| QuantityError)?;
            if e.abs() > 30 {
                return Err(QuantityError);
            }
            (1, e)
        }
        _ => return Err(QuantityError),
    };
    // millis = mantissa * multiplier * 10^(exp10 + 3 - frac_digits), rounded up like upstream.
    let scale = exp10 + 3 - frac_digits as i32;
    let base = mantissa.checked_mul(multiplier).ok_or(QuantityError)?;
    let millis = if scale >= 0 {
        base.checked_mul(10i128.checked_pow(scale as u32).ok_or(QuantityError)?).ok_or(QuantityError)?
    } else {
        let div = 10i128.checked_pow((-scale) as u32).ok_or(QuantityError)?;
        (base + div - 1) / div
    };
    Ok(Quantity { millis: sign * millis })
}

impl PartialOrd<i128> for Quantity {
    fn partial_cmp(&self, other: &i128) -> Option<Ordering> {
        self.millis.partial_cmp(&(other * 1000))
    }
}

impl PartialEq<i128> for Quantity {
    fn eq(&self, other: &i128) -> bool {
        self.millis == other * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let q = |s| parse_quantity(s).unwrap_or_else(|_| panic!("{s}"));
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("1G").value(), 1_000_000_000);
        assert_eq!(q("500m").millis(), 500);
        assert_eq!(q("1.5Gi").value(), 3 << 29);
        assert_eq!(q("1e3").value(), 1000);
        assert_eq!(q("100M").value(), 100_000_000);
        assert_eq!(q("0.1").millis(), 100);
        assert!(q("1Gi") > q("1G"));
        assert!(q("2Gi") > q("1Gi"));
        assert_eq!(q("1024Mi"), q("1Gi"));
        for bad in ["", "Gi", "1.2.3", "1Zi", "abc", "1 Gi"] {
            assert!(parse_quantity(bad).is_err(), "{bad}");
        }
    }
}
