//! Human units in config files: durations (`"500ms"`, `"5m"`) and sizes (`"1MiB"`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration written as a humantime string (`"10s"`, `"1m 30s"`) or whole seconds.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl fmt::Debug for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor)
    }
}

/// Reads a duration from whatever the format holds, so a value of the wrong kind (a
/// boolean, a fraction, a list) is told what is expected. The examples are not quoted:
/// error text has its quoted values elided, as they may be secrets.
struct DurationVisitor;

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = HumanDuration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 500ms, 10s or 5m")
    }

    fn visit_u64<E: serde::de::Error>(self, secs: u64) -> Result<Self::Value, E> {
        Ok(HumanDuration(Duration::from_secs(secs)))
    }

    fn visit_i64<E: serde::de::Error>(self, secs: i64) -> Result<Self::Value, E> {
        u64::try_from(secs)
            .map(|s| HumanDuration(Duration::from_secs(s)))
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(secs), &self))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        let t = text.trim();
        // Whole seconds as text: how an environment override gives a number.
        if let Ok(secs) = t.parse::<u64>() {
            return Ok(HumanDuration(Duration::from_secs(secs)));
        }
        humantime::parse_duration(t)
            .map(HumanDuration)
            .map_err(|e| {
                E::custom(format!(
                    "invalid duration {t:?} ({e}); write e.g. 500ms, 10s or 5m"
                ))
            })
    }
}

/// A size in bytes written as a number or with a unit (`"64KiB"`, `"1MiB"`, `"1MB"`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl fmt::Debug for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", format_size(self.0))
    }
}

/// Formats a byte count with the largest binary unit that divides it exactly.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, factor) in UNITS {
        if bytes >= factor && bytes % factor == 0 {
            return format!("{}{name}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

/// Parses `"1MiB"`, `"512 KiB"`, `"1MB"`, `"100"` into bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {text:?}; write e.g. 1MiB or 65536 (bytes)"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?}; use B, KiB, MiB or GiB"
            ))
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SizeVisitor)
    }
}

/// Reads a size from whatever the format holds (see [`DurationVisitor`]).
struct SizeVisitor;

impl serde::de::Visitor<'_> for SizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size such as 1MiB, 64KiB or 65536 (bytes)")
    }

    fn visit_u64<E: serde::de::Error>(self, bytes: u64) -> Result<Self::Value, E> {
        Ok(ByteSize(bytes))
    }

    fn visit_i64<E: serde::de::Error>(self, bytes: i64) -> Result<Self::Value, E> {
        u64::try_from(bytes)
            .map(ByteSize)
            .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(bytes), &self))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        parse_size(text).map(ByteSize).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("42"), Ok(42));
        assert!(parse_size("1XB").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("99999999999999999GiB").is_err());
        assert_eq!(format_size(1 << 20), "1MiB");
        assert_eq!(format_size(1000), "1000B");
    }

    #[derive(Debug, serde::Deserialize)]
    struct Limits {
        #[allow(dead_code)]
        timeout: HumanDuration,
        #[allow(dead_code)]
        max_body: ByteSize,
    }

    fn limits_error(toml: &str) -> String {
        toml::from_str::<Limits>(toml).unwrap_err().to_string()
    }

    /// A value of the wrong kind says what is expected, and the examples survive the
    /// elision of quoted values that error text goes through.
    #[test]
    fn a_wrong_kind_of_duration_or_size_says_what_is_expected() {
        let e = limits_error("timeout = true\nmax_body = 1");
        assert!(
            e.contains("expected a duration such as 500ms, 10s or 5m"),
            "{e}"
        );
        let e = limits_error("timeout = 5.5\nmax_body = 1");
        assert!(e.contains("expected a duration"), "{e}");
        let e = limits_error("timeout = \"5 parsecs\"\nmax_body = 1");
        let scrubbed = crate::config::load::scrub_quoted(&e);
        assert!(
            scrubbed.contains("write e.g. 500ms, 10s or 5m"),
            "{scrubbed}"
        );
        let e = limits_error("timeout = -3\nmax_body = 1");
        assert!(e.contains("expected a duration"), "{e}");
        let e = limits_error("timeout = 3\nmax_body = true");
        assert!(e.contains("expected a size such as 1MiB"), "{e}");
        let e = limits_error("timeout = 3\nmax_body = \"2 parsecs\"");
        assert!(e.contains("unknown size unit"), "{e}");
        let ok: Limits = toml::from_str("timeout = \" 7 \"\nmax_body = \"1MiB\"").unwrap();
        assert_eq!(
            (ok.timeout.0, ok.max_body.0),
            (Duration::from_secs(7), 1 << 20)
        );
    }

    proptest::proptest! {
        #[test]
        fn size_parser_never_panics(s in ".*") {
            let _ = parse_size(&s);
        }
    }
}
