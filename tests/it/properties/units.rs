//! Units: durations and sizes as the configuration writes them.

use super::*;

const DURATION_UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("msec", 1),
    ("s", 1000),
    ("sec", 1000),
    ("m", 60_000),
    ("min", 60_000),
    ("h", 3_600_000),
    ("hours", 3_600_000),
    ("d", 86_400_000),
];

const SIZE_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1 << 10),
    ("KiB", 1 << 10),
    ("kb", 1_000),
    ("M", 1 << 20),
    ("MiB", 1 << 20),
    ("MB", 1_000_000),
    ("g", 1 << 30),
    ("GiB", 1 << 30),
    ("GB", 1_000_000_000),
    ("TiB", 1 << 40),
    ("tb", 1_000_000_000_000),
];

#[rustfmt::skip]
const UNIT_PIECES: &[&str] = &[
    "0", "1", "9", "99999999999999999999", "_", " ", "\t", "-", "+", ".", "e", "ms", "s", "m", "h",
    "d", "w", "y", "us", "ns", "KiB", "kib", "k", "MB", "TiB", "B", "\u{0}", "é", "٣", "\u{a0}",
    "１",
];

proptest! {
    #![proptest_config(cases(3000))]

    /// `parse_duration` never panics, refuses a bare number, and reads `N<unit>` (any spaces
    /// around) as N units.
    #[test]
    fn durations_parse_as_written(
        junk in spelled(UNIT_PIECES, 8),
        n in 0u64..1_000_000,
        unit in select(DURATION_UNITS),
        pad in select(&["", " ", "\t"][..]),
    ) {
        let _ = parse_duration(&junk);
        let digits = n.to_string();
        prop_assert!(parse_duration(&digits).is_err());
        let text = format!("{pad}{n}{}{pad}", unit.0);
        prop_assert_eq!(
            parse_duration(&text),
            Ok(std::time::Duration::from_millis(n * unit.1)),
            "{:?}", text
        );
    }

    /// What `humantime` writes for a duration, `parse_duration` reads back exactly.
    #[test]
    fn durations_round_trip(secs in 0u64..10_000_000_000, nanos in 0u32..1_000_000_000) {
        let d = std::time::Duration::new(secs, nanos);
        let text = humantime::format_duration(d).to_string();
        prop_assert_eq!(parse_duration(&text), Ok(d), "{:?}", text);
    }

    /// `parse_size` never panics, and reads `N<unit>` (any case, `_` between digits, a space
    /// before the unit) as N times the unit, or says it is too large: never a wrapped value.
    #[test]
    fn sizes_parse_as_written(
        junk in spelled(UNIT_PIECES, 8),
        n in prop_oneof![0u64..100_000, any::<u64>()],
        unit in select(SIZE_UNITS),
        upper in any::<bool>(),
        space in any::<bool>(),
        underscore in any::<bool>(),
    ) {
        let _ = parse_size(&junk);
        let mut digits = n.to_string();
        if underscore && digits.len() > 1 {
            digits.insert(1, '_');
        }
        let unit_text = if upper { unit.0.to_uppercase() } else { unit.0.to_lowercase() };
        let sep = if space && !unit.0.is_empty() { " " } else { "" };
        let text = format!("{digits}{sep}{unit_text}");
        match n.checked_mul(unit.1) {
            Some(v) => prop_assert_eq!(parse_size(&text), Ok(v), "{:?}", text),
            None => prop_assert!(
                parse_size(&text).is_err_and(|e| e.contains("too large")),
                "{:?}", text
            ),
        }
    }
}
