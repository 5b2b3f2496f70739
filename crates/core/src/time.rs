//! Time as hookd stores it (unix milliseconds) and shows it (RFC 3339, UTC).
//!
//! A tiny civil-calendar conversion (Howard Hinnant's algorithms) instead of a
//! date crate: hookd only parses `occurred_at` and prints `createdAt`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the unix epoch, by the system clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2026-11-22T15:52:13.123Z`
pub fn format_rfc3339_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// Parses RFC 3339 (`2026-11-22T15:52:13Z`, fractions and `+02:00` offsets
/// allowed) into unix milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = &s[start..i.min(start + 3)];
        frac_ms = digits.parse::<i64>().ok()? * 10i64.pow(3 - digits.len() as u32);
    }
    let offset_min = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let off = num(i + 1..i + 3)? * 60 + num(i + 4..i + 6)?;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + frac_ms)
}

/// The forms a time takes in the API's queries and bodies and in the CLI's
/// flags, said once for both (help texts and the OpenAPI document quote it).
pub const WHEN_FORMS: &str = "an RFC 3339 time (2025-11-22T15:52:13Z), Unix seconds (1763826733), or a duration like 2h, 30m or 7d";

/// The earliest time accepted (2000-01-01): an earlier one is a mistake
/// (Unix milliseconds read as seconds, a zero), not a wish to match
/// everything.
pub const EARLIEST_MS: i64 = 946_684_800_000;

/// How far ahead of now a time may be: ten years.
pub const LATEST_AHEAD_MS: i64 = 10 * 365 * 86_400_000;

/// Which way a duration counts from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// `2h` is two hours ago (`since`, `until`, `before`).
    Ago,
    /// `90d` is ninety days from now (a key's expiry).
    Ahead,
}

/// Reads a time written in any of [`WHEN_FORMS`] into Unix ms: RFC 3339; a
/// whole number is Unix **seconds**; a duration counts from `now_ms` the
/// way `direction` says. Outside 2000-01-01 ..= ten years from now it is
/// refused, with the range in the message.
pub fn parse_when(text: &str, now_ms: i64, direction: Direction) -> Result<i64, String> {
    let text = text.trim();
    let ms = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<i64>()
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .ok_or_else(|| format!("{text:?} is too large for Unix seconds"))?
    } else if let Some(ms) = parse_rfc3339_ms(text) {
        ms
    } else if let Some(d) = parse_duration_ms(text) {
        match direction {
            Direction::Ago => now_ms.saturating_sub(d),
            Direction::Ahead => now_ms.saturating_add(d),
        }
    } else {
        return Err(format!("{text:?} is not {WHEN_FORMS}"));
    };
    let latest = now_ms.saturating_add(LATEST_AHEAD_MS);
    if !(EARLIEST_MS..=latest).contains(&ms) {
        return Err(format!(
            "{text:?} is {}: must be between 2000-01-01 and ten years from now (a number is Unix seconds, not milliseconds)",
            format_rfc3339_ms(ms)
        ));
    }
    Ok(ms)
}

/// `2h`, `30m`, `1h30m`, `7d`, `2w`, `500ms`, `45s` in milliseconds.
fn parse_duration_ms(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit: i64 = match &rest[..letters] {
            "ms" => 1,
            "s" | "sec" => 1000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return None,
        };
        rest = rest[letters..].trim_start();
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for ms in [
            0,
            1_636_936_200_123,
            951_782_400_000, /* 2000-02-29 */
            4_102_444_799_999,
        ] {
            assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ms)), Some(ms));
        }
        assert_eq!(
            format_rfc3339_ms(1_636_936_200_000),
            "2021-11-15T00:30:00.000Z"
        );
    }

    #[test]
    fn parses_offsets_and_fractions() {
        assert_eq!(
            parse_rfc3339_ms("2021-11-15T01:30:00+01:00"),
            Some(1_636_936_200_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2021-11-15T00:30:00.5Z"),
            Some(1_636_936_200_500)
        );
        assert_eq!(
            parse_rfc3339_ms("2021-11-15T00:30:00.123456Z"),
            Some(1_636_936_200_123)
        );
        for bad in [
            "",
            "2021-11-15",
            "2021-13-15T00:30:00Z",
            "2021-11-15T00:30:00",
            "2021-11-15T00:30:00+0100",
            "yesterday",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_time_reads_the_same_in_every_form_and_a_mistake_says_the_range() {
        let now = 1_763_826_733_000;
        let ago = |t: &str| parse_when(t, now, Direction::Ago);
        assert_eq!(ago("2025-11-22T15:52:13Z"), Ok(now));
        assert_eq!(ago("1763826733"), Ok(now));
        assert_eq!(ago("2h"), Ok(now - 7_200_000));
        assert_eq!(ago("1h30m"), Ok(now - 5_400_000));
        assert_eq!(
            parse_when("90d", now, Direction::Ahead),
            Ok(now + 90 * 86_400_000)
        );
        // Unix milliseconds read as seconds land far in the future: refused.
        let ms = ago("1763826733000").unwrap_err();
        assert!(ms.contains("between 2000-01-01"), "{ms}");
        assert!(ago("0").unwrap_err().contains("1970"), "zero is 1970");
        assert!(ago("yesterday").unwrap_err().contains("RFC 3339"));
        assert!(ago("").is_err());
        assert!(ago("2x").is_err());
    }
}
