//! `DateTime`: the datamodel's `datetime`, whole seconds in UTC, wire form `20240131T09:05:00Z`.
use std::fmt;

/// A point in time with one-second resolution, as XenAPI carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct DateTime(pub i64);

impl DateTime {
    /// `19700101T00:00:00Z`, the datamodel's "never".
    pub const EPOCH: DateTime = DateTime(0);

    /// The current time.
    pub fn now() -> DateTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        DateTime(secs)
    }

    /// Parses ISO 8601 as clients send it: `20240131T09:05:00Z`, `2024-01-31T09:05:00Z`,
    /// with or without the zone (none means UTC), or with a `+hh:mm` / `-hhmm` offset.
    pub fn parse(text: &str) -> Option<DateTime> {
        let t = text.trim();
        let (date, rest) = t.split_once('T')?;
        let date: String = date.chars().filter(|c| *c != '-').collect();
        if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let year: i64 = date[0..4].parse().ok()?;
        let month: u32 = date[4..6].parse().ok()?;
        let day: u32 = date[6..8].parse().ok()?;
        let (time, offset) = split_zone(rest)?;
        let time: String = time.chars().filter(|c| *c != ':').collect();
        let time = time.split('.').next()?;
        if time.len() != 6 || !time.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let h: i64 = time[0..2].parse().ok()?;
        let m: i64 = time[2..4].parse().ok()?;
        let s: i64 = time[4..6].parse().ok()?;
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
            return None;
        }
        let days = days_from_civil(year, month, day);
        Some(DateTime(days * 86_400 + h * 3600 + m * 60 + s - offset))
    }
}

/// Splits the time part from its zone; returns the zone offset in seconds east of UTC.
fn split_zone(rest: &str) -> Option<(&str, i64)> {
    if let Some(t) = rest.strip_suffix('Z') {
        return Some((t, 0));
    }
    if let Some(pos) = rest.rfind(['+', '-']) {
        let (t, zone) = rest.split_at(pos);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let hh: i64 = digits[0..2].parse().ok()?;
        let mm: i64 = digits[2..4].parse().ok()?;
        return Some((t, sign * (hh * 3600 + mm * 60)));
    }
    Some((rest, 0))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

impl fmt::Display for DateTime {
    /// The wire form, `%Y%m%dT%H:%M:%SZ`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}{m:02}{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_prints_as_upstream_never() {
        assert_eq!(DateTime::EPOCH.to_string(), "19700101T00:00:00Z");
    }

    #[test]
    fn wire_form_round_trips() {
        let t = DateTime::parse("20240131T09:05:00Z").unwrap();
        assert_eq!(t.to_string(), "20240131T09:05:00Z");
        assert_eq!(t.0, 1_706_691_900);
    }

    #[test]
    fn dashed_form_and_offsets_parse() {
        let utc = DateTime::parse("2024-01-31T09:05:00Z").unwrap();
        assert_eq!(DateTime::parse("2024-01-31T10:05:00+01:00"), Some(utc));
        assert_eq!(DateTime::parse("20240131T09:05:00"), Some(utc));
        assert_eq!(DateTime::parse("2024-01-31T09:05:00.123Z"), Some(utc));
    }

    #[test]
    fn garbage_does_not_parse() {
        assert_eq!(DateTime::parse("yesterday"), None);
        assert_eq!(DateTime::parse("20241331T00:00:00Z"), None);
    }
}
