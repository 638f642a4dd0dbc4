//! Event time: UTC microseconds since the Unix epoch, with RFC 3339 text form.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An instant in UTC with microsecond precision.
///
/// ```
/// use usage_core::Timestamp;
/// let ts = Timestamp::parse_rfc3339("2026-11-21T23:50:10.123456Z").unwrap();
/// assert_eq!(ts.to_string(), "2026-11-21T23:50:10.123456Z");
/// assert_eq!(Timestamp::from_micros(ts.as_micros()), ts);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// Calendar parts of a timestamp, used for partition paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// Year (e.g. 2026).
    pub year: i32,
    /// Month, 1-12.
    pub month: u32,
    /// Day of month, 1-31.
    pub day: u32,
    /// Hour, 0-23.
    pub hour: u32,
    /// Minute, 0-59.
    pub minute: u32,
    /// Second, 0-59.
    pub second: u32,
    /// Microsecond, 0-999999.
    pub micros: u32,
}

const MICROS_PER_SEC: i64 = 1_000_000;
const SECS_PER_DAY: i64 = 86_400;

impl Timestamp {
    /// The current wall-clock time (a calibrated TSC read where available, see
    /// `docs/architecture.md`). A clock before 1970 reads as the epoch.
    #[inline]
    pub fn now() -> Self {
        Timestamp(super::clock::now_micros())
    }

    /// From microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// Milliseconds since the epoch (floor).
    pub const fn as_millis(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Nanoseconds since the epoch (saturating), as OTLP wants.
    pub const fn as_nanos(self) -> u64 {
        if self.0 < 0 {
            0
        } else {
            (self.0 as u64).saturating_mul(1000)
        }
    }

    /// From a `SystemTime` (truncated to microseconds).
    pub fn from_system_time(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(d.as_micros() as i64),
            Err(e) => Timestamp(-(e.duration().as_micros() as i64)),
        }
    }

    /// This instant plus a duration (saturating).
    pub fn plus(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(d.as_micros() as i64))
    }

    /// Splits into calendar parts (proleptic Gregorian, UTC).
    pub fn civil(self) -> CivilTime {
        let secs = self.0.div_euclid(MICROS_PER_SEC);
        let micros = self.0.rem_euclid(MICROS_PER_SEC) as u32;
        let days = secs.div_euclid(SECS_PER_DAY);
        let sod = secs.rem_euclid(SECS_PER_DAY) as u32;
        let (year, month, day) = civil_from_days(days);
        CivilTime {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
            micros,
        }
    }

    /// Writes `YYYY-MM-DDTHH:MM:SS.ffffffZ` into `out` (always 27 bytes for years 0-9999).
    pub fn write_rfc3339(self, out: &mut Vec<u8>) {
        // Every JSON line carries one, and a batch's events mostly share their
        // second: the text up to the second is kept per thread and reused.
        let secs = self.0.div_euclid(MICROS_PER_SEC);
        let micros = self.0.rem_euclid(MICROS_PER_SEC) as u32;
        let mut buf = LAST_SECOND.with(|last| {
            let (cached, text) = last.get();
            if cached == secs {
                return text;
            }
            let text = second_text(self);
            last.set((secs, text));
            text
        });
        put_pair(&mut buf, 20, micros / 10_000);
        put_pair(&mut buf, 22, micros / 100 % 100);
        put_pair(&mut buf, 24, micros % 100);
        out.extend_from_slice(&buf);
    }

    /// Parses RFC 3339 (`2026-11-21T23:50:10Z`, optional fraction up to nanoseconds,
    /// `Z` or `±HH:MM` offset; a space may replace `T`). Fractions beyond microseconds
    /// are truncated.
    pub fn parse_rfc3339(s: &str) -> Result<Self, TimestampError> {
        parse(s.as_bytes()).ok_or_else(|| TimestampError(s.chars().take(64).collect()))
    }
}

/// A timestamp string that is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 timestamp {0:?} (expected e.g. \"2026-11-21T23:50:10.123456Z\")")]
pub struct TimestampError(String);

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut v = Vec::with_capacity(27);
        self.write_rfc3339(&mut v);
        f.write_str(std::str::from_utf8(&v).map_err(|_| fmt::Error)?)
    }
}

thread_local! {
    /// The last second written by `write_rfc3339` on this thread and its text.
    static LAST_SECOND: std::cell::Cell<(i64, [u8; 27])> = const { std::cell::Cell::new((i64::MIN, [0; 27])) };
}

/// `YYYY-MM-DDTHH:MM:SS.000000Z` for the second holding `ts`.
fn second_text(ts: Timestamp) -> [u8; 27] {
    let c = ts.civil();
    let year = c.year.clamp(0, 9999) as u32;
    let mut buf = *b"0000-00-00T00:00:00.000000Z";
    put_pair(&mut buf, 0, year / 100);
    put_pair(&mut buf, 2, year % 100);
    put_pair(&mut buf, 5, c.month);
    put_pair(&mut buf, 8, c.day);
    put_pair(&mut buf, 11, c.hour);
    put_pair(&mut buf, 14, c.minute);
    put_pair(&mut buf, 17, c.second);
    buf
}

/// "00" to "99", two bytes each.
const DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Writes `v` (0-99) as two digits at `buf[at..at + 2]`.
#[inline(always)]
fn put_pair(buf: &mut [u8; 27], at: usize, v: u32) {
    let i = (v as usize % 100) * 2;
    buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[i..i + 2]);
}

/// Days since 1970-01-01 to (year, month, day). Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

/// (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |acc, c| acc * 10 + u32::from(c - b'0')))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn parse(b: &[u8]) -> Option<Timestamp> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = i64::from(num(&b[0..4])?);
    let month = num(&b[5..7])?;
    let day = num(&b[8..10])?;
    let (hour, minute, second) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    // 60 is a leap second; fold it into the next second like most parsers do.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        let digits = &frac[..n.min(6)];
        micros = i64::from(num(digits)?) * 10i64.pow(6 - digits.len() as u32);
        rest = &frac[n..];
    }
    let offset_secs = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = i64::from(num(&[*h1, *h2])?);
            let m = i64::from(num(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * SECS_PER_DAY + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second) - offset_secs;
    Some(Timestamp(secs * MICROS_PER_SEC + micros))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            Timestamp(951_782_400_000_001).to_string(),
            "2000-02-29T00:00:00.000001Z"
        );
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let z = Timestamp::parse_rfc3339("2026-01-02T03:04:05Z").unwrap();
        let off = Timestamp::parse_rfc3339("2026-01-02T05:04:05+02:00").unwrap();
        assert_eq!(z, off);
        let ns = Timestamp::parse_rfc3339("2026-01-02T03:04:05.123456789Z").unwrap();
        assert_eq!(ns.as_micros() - z.as_micros(), 123_456);
        let ms = Timestamp::parse_rfc3339("2026-01-02 03:04:05.5z").unwrap();
        assert_eq!(ms.as_micros() - z.as_micros(), 500_000);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+0200",
            "2026-01-01X00:00:00Z",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn civil_parts_match_partition_layout() {
        let t = Timestamp::parse_rfc3339("2024-02-29T17:45:01.000002Z").unwrap().civil();
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second, t.micros),
            (2024, 2, 29, 17, 45, 1, 2)
        );
    }

    /// The text from `civil`, digit by digit: what `write_rfc3339` must match.
    fn reference_text(t: Timestamp) -> String {
        let c = t.civil();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            c.year.clamp(0, 9999),
            c.month,
            c.day,
            c.hour,
            c.minute,
            c.second,
            c.micros
        )
    }

    #[test]
    fn cached_second_follows_every_step() {
        // Steps inside one second (cache hits), across seconds, days and years,
        // back in time, and before the epoch (the signed path).
        let start = Timestamp::parse_rfc3339("2026-12-31T23:59:59.999990Z")
            .unwrap()
            .as_micros();
        let mut steps = vec![0, 1, 5, 9, 10, 11, 999_999, 1_000_000, -1, -2_000_001, 86_400_000_000];
        steps.extend([
            -start,
            -start - 1,
            -start - 1_000_001,
            3,
            -start + 253_402_300_799_999_999,
        ]);
        let mut t = start;
        for step in steps {
            t += step;
            let ts = Timestamp(t);
            let mut out = Vec::new();
            ts.write_rfc3339(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), reference_text(ts), "at {t}");
        }
    }

    proptest! {
        #[test]
        fn text_matches_calendar_parts(start in -62_135_596_800_000_000i64..253_402_300_799_999_999, steps in proptest::collection::vec(-3_000_000i64..3_000_000, 1..20)) {
            let mut t = start;
            for step in steps {
                t = t.saturating_add(step);
                prop_assert_eq!(Timestamp(t).to_string(), reference_text(Timestamp(t)));
            }
        }

        #[test]
        fn format_parse_round_trip(micros in 0i64..253_402_300_799_999_999) {
            let t = Timestamp(micros);
            prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_string()).unwrap(), t);
        }
    }
}
