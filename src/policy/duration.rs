//! Humane durations, as policies and the CLI's `--ttl` write them: `30s`, `5m`, `1h`, `1d`, or plain
//! seconds (`90`). One number, one unit, nothing else: no spaces, signs, fractions or compounds.

/// At most 9 digits: any value times a day still fits a u64 many times over.
const MAX_DIGITS: usize = 9;

/// Seconds in `s`; zero is refused (nothing lives for no time).
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let (number, unit) = [('s', 1), ('m', 60), ('h', 3600), ('d', 86_400)]
        .into_iter()
        .find_map(|(suffix, unit)| s.strip_suffix(suffix).map(|n| (n, unit)))
        .unwrap_or((s, 1));
    if number.is_empty() || number.len() > MAX_DIGITS || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a duration: write e.g. 30s, 5m, 1h or plain seconds"));
    }
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a duration"))?;
    if n == 0 {
        return Err(format!("{s:?}: a duration must be longer than zero"));
    }
    Ok(n * unit)
}

/// The shortest exact form of `secs` in hours, minutes or seconds (`900` → `15m`); parse_duration reads it back.
pub fn format_duration(secs: u64) -> String {
    match secs {
        0 => "0s".to_owned(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_plain_seconds() {
        for (s, secs) in [("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86_400), ("90", 90), ("007s", 7)] {
            assert_eq!(parse_duration(s), Ok(secs), "{s}");
        }
        assert_eq!(parse_duration("999999999d"), Ok(999_999_999 * 86_400), "the largest, no overflow");
    }

    #[test]
    fn refuses_anything_else() {
        for bad in
            ["", "s", "0", "0m", "-5m", "+5m", "5 m", " 5m", "5m ", "1.5h", "1h30m", "5M", "5ms", "5w", "1000000000"]
        {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for (secs, s) in [(900, "15m"), (90, "90s"), (3600, "1h"), (86_400, "24h"), (61, "61s")] {
            assert_eq!(format_duration(secs), s);
            assert_eq!(parse_duration(s), Ok(secs));
        }
    }
}
