//! The units of the file format: durations (`500ms`, `30s`, `1m`, `1h`,
//! `1d`) and sizes (`512KiB`, `1MiB`). Shared by the compiler and the
//! policies' own settings.

use std::time::Duration;

/// Reads `<integer><unit>` where the unit is one of `units`, and returns
/// the integer times the unit's factor; `what` and `example` shape the
/// error message.
fn scaled(text: &str, units: &[(&str, u64)], what: &str, example: &str) -> Result<u64, String> {
    let expected = || {
        let names: Vec<&str> = units.iter().map(|(u, _)| *u).collect();
        format!(
            "invalid {what} `{text}`: expected an integer and a unit ({}), such as {example}",
            names.join(", ")
        )
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(expected)?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().map_err(|_| expected())?;
    let &(_, factor) = units
        .iter()
        .find(|(u, _)| *u == unit)
        .ok_or_else(expected)?;
    n.checked_mul(factor)
        .ok_or_else(|| format!("{what} `{text}` is too large"))
}

/// Parses a duration written as an integer and a unit: `ms`, `s`, `m`,
/// `h` or `d` (`500ms`, `30s`, `1m`, `1h`, `1d`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const MILLIS: &[(&str, u64)] = &[
        ("ms", 1),
        ("s", 1_000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
    ];
    scaled(text, MILLIS, "duration", "`500ms` or `30s`").map(Duration::from_millis)
}

/// Parses a size written as an integer and a binary unit: `B`, `KiB`,
/// `MiB` or `GiB` (`512KiB`, `1MiB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    const BYTES: &[(&str, u64)] = &[
        ("B", 1),
        ("KiB", 1 << 10),
        ("MiB", 1 << 20),
        ("GiB", 1 << 30),
    ];
    scaled(text, BYTES, "size", "`512KiB`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
        for bad in [
            "",
            "s",
            "10",
            "1.5s",
            "-1s",
            "10 s",
            "10sec",
            "1w",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} was accepted");
        }
        assert!(
            parse_duration("18446744073709551615d")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("10B"), Ok(10));
        for bad in ["", "1", "1kb", "1 MiB", "1MB"] {
            assert!(parse_size(bad).is_err(), "{bad} was accepted");
        }
    }
}
