//! Kubernetes resource quantities (`1Gi`, `500m`, `1e3`, `100M`): parsing, exact ordering and
//! the unit conversions upstream's `resource.Quantity` offers (`Value()`, `MilliValue()`).
//!
//! A quantity is held as a whole number of nano-units (`i128`): upstream keeps no precision
//! below 10⁻⁹ either (it rounds up, away from zero), and caps magnitudes at 2⁶³-1 units.

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

const NANOS_PER_UNIT: i128 = 1_000_000_000;
/// Upstream's cap: the largest int64 value, in units.
const MAX_NANOS: i128 = i64::MAX as i128 * NANOS_PER_UNIT;

/// An exact amount, in nano-units. Ordered and comparable regardless of how it was written
/// (`1Gi == 1024Mi`, `1Gi > 1G`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity {
    nanos: i128,
}

/// Why a string is not a quantity, in upstream's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    Format,
    #[error("unable to parse numeric part of quantity")]
    Numeric,
    #[error("unable to parse quantity's suffix")]
    Suffix,
}

impl Quantity {
    pub fn from_nanos(nanos: i128) -> Quantity {
        Quantity { nanos: nanos.clamp(-MAX_NANOS, MAX_NANOS) }
    }
    pub fn from_millis(millis: i128) -> Quantity {
        Quantity::from_nanos(millis.saturating_mul(1_000_000))
    }
    pub fn from_units(units: i128) -> Quantity {
        Quantity::from_nanos(units.saturating_mul(NANOS_PER_UNIT))
    }
    pub fn nanos(self) -> i128 {
        self.nanos
    }
    /// Milli-units, rounded up (upstream `MilliValue()`).
    pub fn millis(self) -> i128 {
        ceil_div(self.nanos, 1_000_000)
    }
    /// Whole units, rounded up (upstream `Value()`).
    pub fn value(self) -> i128 {
        ceil_div(self.nanos, NANOS_PER_UNIT)
    }
    pub fn is_zero(self) -> bool {
        self.nanos == 0
    }
    pub fn is_negative(self) -> bool {
        self.nanos < 0
    }
    /// Whether the amount has precision below a milli-unit (which upstream rounds away).
    pub fn has_sub_milli_precision(self) -> bool {
        self.nanos % 1_000_000 != 0
    }
    /// Rounded up (away from zero) to whole milli-units, as upstream's `RoundUp(-3)`.
    pub fn round_up_to_millis(self) -> Quantity {
        let m = 1_000_000;
        let rem = self.nanos % m;
        if rem == 0 {
            self
        } else if self.nanos > 0 {
            Quantity::from_nanos(self.nanos - rem + m)
        } else {
            Quantity::from_nanos(self.nanos - rem - m)
        }
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a.div_euclid(b);
    if a.rem_euclid(b) == 0 { q } else { q + 1 }
}

/// Decimal rendering with the largest exact SI suffix among `n`, `u`, `m` and none
/// (`2`, `500m`, `1500`, `250u`).
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.nanos;
        if n % NANOS_PER_UNIT == 0 {
            write!(f, "{}", n / NANOS_PER_UNIT)
        } else if n % 1_000_000 == 0 {
            write!(f, "{}m", n / 1_000_000)
        } else if n % 1_000 == 0 {
            write!(f, "{}u", n / 1_000)
        } else {
            write!(f, "{n}n")
        }
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Quantity, QuantityError> {
        parse_quantity(s)
    }
}

/// How a suffix scales the number: `base^exponent`.
fn suffix_scale(suffix: &str) -> Result<(u32, i32), QuantityError> {
    Ok(match suffix {
        "" => (10, 0),
        "n" => (10, -9),
        "u" => (10, -6),
        "m" => (10, -3),
        "k" => (10, 3),
        "M" => (10, 6),
        "G" => (10, 9),
        "T" => (10, 12),
        "P" => (10, 15),
        "E" => (10, 18),
        "Ki" => (2, 10),
        "Mi" => (2, 20),
        "Gi" => (2, 30),
        "Ti" => (2, 40),
        "Pi" => (2, 50),
        "Ei" => (2, 60),
        other if other.len() > 1 && other.starts_with(['e', 'E']) => {
            let exponent: i32 = other[1..].parse().map_err(|_| QuantityError::Suffix)?;
            (10, exponent)
        }
        _ => return Err(QuantityError::Suffix),
    })
}

/// Split `[+-]digits[.digits]suffix` as upstream's `parseQuantityString` does.
fn split(s: &str) -> Result<(bool, &str, &str, &str), QuantityError> {
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let whole_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let (whole, rest) = rest.split_at(whole_end);
    let (frac, rest) = match rest.strip_prefix('.') {
        Some(after) => {
            let end = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
            after.split_at(end)
        }
        None => ("", rest),
    };
    if whole.is_empty() && frac.is_empty() {
        return Err(QuantityError::Format);
    }
    // The suffix: letters from the suffix alphabet, then an optional signed exponent.
    let letters = rest.find(|c: char| !"eEinumkKMGTP".contains(c)).unwrap_or(rest.len());
    let mut tail = &rest[letters..];
    if let Some(t) = tail.strip_prefix(['+', '-']) {
        tail = t;
    }
    if !tail.chars().all(|c| c.is_ascii_digit()) {
        return Err(QuantityError::Format);
    }
    Ok((negative, whole, frac, rest))
}

/// Parse a quantity as the API accepts it (surrounding whitespace ignored, as the JSON decoder
/// does).
pub fn parse_quantity(s: &str) -> Result<Quantity, QuantityError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(QuantityError::Format);
    }
    let (negative, whole, frac, suffix) = split(s)?;
    let (base, exponent) = suffix_scale(suffix)?;
    // The number as digits × 10^-frac_len, exactly.
    let digits = format!("{whole}{frac}");
    let digits = digits.trim_start_matches('0');
    if digits.len() > 36 {
        return Err(QuantityError::Numeric);
    }
    if digits.is_empty() {
        // Zero whatever the exponent (`0e2000000000` must not scale a zero two billion times).
        return Ok(Quantity::default());
    }
    let mantissa: i128 = digits.parse().map_err(|_| QuantityError::Numeric)?;
    // nanos = mantissa × base^exponent × 10^(9 - frac_len), rounded up away from zero.
    let mut numerator = mantissa;
    let mut denominator: i128 = 1;
    let mut scale10 = 9 - frac.len() as i64;
    if base == 10 {
        scale10 += i64::from(exponent);
    } else {
        numerator = numerator.checked_mul(1i128 << exponent).ok_or(QuantityError::Numeric)?;
    }
    if scale10 >= 0 {
        for _ in 0..scale10 {
            numerator = match numerator.checked_mul(10) {
                Some(n) => n,
                // Far beyond the cap: saturate as upstream does.
                None => return Ok(Quantity::from_nanos(if negative { -MAX_NANOS } else { MAX_NANOS })),
            };
        }
    } else {
        for _ in 0..(-scale10) {
            denominator = match denominator.checked_mul(10) {
                Some(d) => d,
                // Smaller than a nano-unit: rounds up to one (or is zero).
                None => {
                    let nanos = if numerator == 0 { 0 } else { 1 };
                    return Ok(Quantity::from_nanos(if negative { -nanos } else { nanos }));
                }
            };
        }
    }
    let nanos = ceil_div(numerator, denominator);
    Ok(Quantity::from_nanos(if negative { -nanos } else { nanos }))
}
