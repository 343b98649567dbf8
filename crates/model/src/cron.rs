//! CronJob schedules as Kubernetes reads them (robfig/cron's standard parser): five fields —
//! minute, hour, day of month, month, day of week — each `*`, `?`, a value, a range `a-b`, a
//! step `*/n` or `a-b/n`, or a comma list of those, with month (`JAN`…) and weekday (`SUN`…)
//! names; or a descriptor (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`,
//! `@midnight`, `@hourly`). When both day fields are restricted a day matching either runs, as
//! in cron. Times are walked in the schedule's time zone with jiff, so daylight-saving gaps and
//! folds resolve as jiff resolves civil times (the compatible strategy).
//!
//! Hand-written rather than a crate: the maintained cron crates (`cron`, `croner`) compute in
//! chrono with chrono-tz, while Ordinal's clock and time-zone database are jiff's; matching
//! five small bit sets field by field is less code than converting between the two.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether day-of-month or day-of-week was `*`/`?` (then both must match).
    any_day: bool,
}

const MONTHS: &[&str] = &["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn value(s: &str, names: &[&str], offset: u32) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(i as u32 + offset);
    }
    s.parse::<u32>().map_err(|_| format!("failed to parse int from {s}"))
}

/// One field as a bit set over `min..=max`; `star` when it was `*` or `?`.
fn field(text: &str, min: u32, max: u32, names: &[&str], offset: u32) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut star = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, Some(s.parse::<u32>().map_err(|_| format!("failed to parse int from {s}"))?)),
            None => (part, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            star = star || step.is_none();
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, offset)?, value(b, names, offset)?)
        } else {
            let v = value(range, names, offset)?;
            // `5/10` means from 5 to the end, every 10.
            (v, if step.is_some() { max } else { v })
        };
        if lo < min {
            return Err(format!("beginning of range ({lo}) below minimum ({min}): {part}"));
        }
        if hi > max {
            return Err(format!("end of range ({hi}) above maximum ({max}): {part}"));
        }
        if lo > hi {
            return Err(format!("beginning of range ({lo}) beyond end of range ({hi}): {part}"));
        }
        let step = step.unwrap_or(1);
        if step == 0 {
            return Err(format!("step of range should be a positive number: {part}"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok((bits, star))
}

impl Schedule {
    /// Parse a schedule (upstream's error texts where a user meets them).
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let text = text.trim();
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => return Err(format!("unrecognized descriptor: {other}")),
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!("expected exactly 5 fields, found {}: {text}", fields.len()));
        }
        let (minutes, _) = field(fields[0], 0, 59, &[], 0)?;
        let (hours, _) = field(fields[1], 0, 23, &[], 0)?;
        let (days, dom_star) = field(fields[2], 1, 31, &[], 0)?;
        let (months, _) = field(fields[3], 1, 12, MONTHS, 1)?;
        let (weekdays, dow_star) = field(fields[4], 0, 6, WEEKDAYS, 0)?;
        Ok(Schedule { minutes, hours, days, months, weekdays, any_day: dom_star || dow_star })
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        self.months & (1 << date.month()) != 0 && if self.any_day { dom && dow } else { dom || dow }
    }

    /// The first time after `after` (strictly) that the schedule fires in `zone`; `None` when it
    /// never does within five years (`0 0 30 2 *`).
    pub fn next_after(&self, after: Timestamp, zone: &TimeZone) -> Option<Timestamp> {
        let start = after.to_zoned(zone.clone()).datetime();
        let mut date = start.date();
        for _ in 0..(366 * 5) {
            if self.day_matches(date) {
                for hour in (0..24).filter(|h| self.hours & (1 << h) != 0) {
                    for minute in (0..60).filter(|m| self.minutes & (1 << m) != 0) {
                        let civil = DateTime::from_parts(date, Time::new(hour, minute, 0, 0).ok()?);
                        let Ok(at) = zone.to_ambiguous_zoned(civil).compatible() else { continue };
                        if at.timestamp() > after {
                            return Some(at.timestamp());
                        }
                    }
                }
            }
            date = date.checked_add(1.day()).ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    #[test]
    fn schedules_fire_when_cron_would() {
        let utc = TimeZone::UTC;
        let cases = [
            ("* * * * *", "2026-12-05T12:00:30Z", "2026-12-05T12:01:00Z"),
            ("*/15 * * * *", "2026-12-05T12:00:00Z", "2026-12-05T12:15:00Z"),
            ("0 2 * * *", "2026-12-05T12:00:00Z", "2026-12-06T02:00:00Z"),
            ("30 9 * * MON-FRI", "2026-12-05T12:00:00Z", "2026-12-07T09:30:00Z"), // Saturday → Monday
            ("0 0 1 JAN *", "2026-12-05T12:00:00Z", "2027-01-01T00:00:00Z"),
            ("@hourly", "2026-12-05T12:59:59Z", "2026-12-05T13:00:00Z"),
            ("@weekly", "2026-12-05T12:00:00Z", "2026-12-06T00:00:00Z"),
            // Both day fields restricted: either matches (the 10th, or a Sunday).
            ("0 0 10 * 0", "2026-12-05T12:00:00Z", "2026-12-06T00:00:00Z"),
            ("5/20 * * * *", "2026-12-05T12:06:00Z", "2026-12-05T12:25:00Z"),
            ("0 0 29 2 *", "2026-12-05T12:00:00Z", "2028-02-29T00:00:00Z"),
        ];
        for (text, after, want) in cases {
            let schedule = Schedule::parse(text).expect(text);
            assert_eq!(schedule.next_after(at(after), &utc), Some(at(want)), "{text}");
        }
        assert_eq!(Schedule::parse("0 0 30 2 *").expect("parses").next_after(at("2026-12-05T12:00:00Z"), &utc), None);
    }

    #[test]
    fn time_zones_and_daylight_saving_are_honoured() {
        let berlin = TimeZone::get("Europe/Berlin").expect("tzdb");
        let daily = Schedule::parse("0 9 * * *").expect("parses");
        // 09:00 in Berlin is 08:00 UTC in winter, 07:00 UTC in summer.
        assert_eq!(daily.next_after(at("2026-12-05T12:00:00Z"), &berlin), Some(at("2026-12-06T08:00:00Z")));
        assert_eq!(daily.next_after(at("2026-07-01T12:00:00Z"), &berlin), Some(at("2026-07-02T07:00:00Z")));
        // 02:30 does not exist on 2026-03-29 in Berlin: it runs at 03:30 local (01:30 UTC).
        let gap = Schedule::parse("30 2 * * *").expect("parses");
        assert_eq!(gap.next_after(at("2026-03-28T12:00:00Z"), &berlin), Some(at("2026-03-29T01:30:00Z")));
    }

    #[test]
    fn bad_schedules_say_why() {
        let cases = [
            ("* * * *", "expected exactly 5 fields, found 4: * * * *"),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
            ("*/0 * * * *", "step of range should be a positive number: */0"),
            ("5-2 * * * *", "beginning of range (5) beyond end of range (2): 5-2"),
            ("x * * * *", "failed to parse int from x"),
            ("@every 5m", "unrecognized descriptor: @every 5m"),
        ];
        for (text, want) in cases {
            assert_eq!(Schedule::parse(text), Err(want.to_string()), "{text}");
        }
    }
}
