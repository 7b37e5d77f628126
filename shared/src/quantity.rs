//! Resource quantities: memory (`512m`, `1.5g`, `1024`) and CPUs (`0.5`, `2`).

use crate::ValidationError;
use crate::error::quoted;

/// Docker refuses less than 6 MiB of memory for a container.
pub const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;
/// Docker's own limit on `--cpus` precision is 1e-9 CPU; we refuse more than this many CPUs.
pub const MAX_CPUS: f64 = 1024.0;

/// Parses a memory size with Docker's units (`b`, `k`, `m`, `g`, `t`, binary, case-insensitive,
/// optional trailing `b`/`ib`: `512m`, `512MiB`, `1.5g`, `1024`). Rejects negatives, zero,
/// garbage, overflow and anything below [`MIN_MEMORY_BYTES`]. Field name: `memory`.
pub fn parse_memory(s: &str) -> Result<u64, ValidationError> {
    let err = |m: String| ValidationError::new("memory", m);
    let t = s.trim();
    if t.is_empty() {
        return Err(err("empty: give a size such as 512m or 1g".into()));
    }
    if t.starts_with('-') {
        return Err(err(format!("{} is negative", quoted(t))));
    }
    let bad = || {
        err(format!(
            "invalid size {}: expected a number with an optional unit b, k, m, g or t \
             (e.g. 512m, 1.5g, 512MiB)",
            quoted(t)
        ))
    };
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(num_end);
    let multiplier: u128 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let too_large = || err(format!("{} is too large", quoted(t)));
    // Exact integer arithmetic: `1.5g` is 1.5 × 2^30 bytes with no float rounding. Digits past
    // the 30th cannot change a result that fits in u64, so they are ignored.
    let int: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().map_err(|_| too_large())?
    };
    let frac_digits = &frac_part[..frac_part.len().min(30)];
    let frac: u128 = if frac_digits.is_empty() {
        0
    } else {
        frac_digits.parse().map_err(|_| bad())?
    };
    let scale = 10u128.pow(frac_digits.len() as u32);
    let bytes = int
        .checked_mul(multiplier)
        .and_then(|b| b.checked_add(frac.checked_mul(multiplier)? / scale))
        .ok_or_else(too_large)?;
    let bytes = u64::try_from(bytes).map_err(|_| too_large())?;
    if bytes == 0 {
        return Err(err(
            "must be greater than zero (leave the flag out for no limit)".into(),
        ));
    }
    if bytes < MIN_MEMORY_BYTES {
        return Err(err(format!(
            "{} ({}) is below the minimum of {} that Docker accepts",
            quoted(t),
            format_bytes(bytes),
            format_bytes(MIN_MEMORY_BYTES)
        )));
    }
    Ok(bytes)
}

/// Parses `--cpus`: a finite decimal > 0 and <= [`MAX_CPUS`]. Field name: `cpus`.
pub fn parse_cpus(s: &str) -> Result<f64, ValidationError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(ValidationError::new(
            "cpus",
            "empty: give a number of CPUs such as 0.5 or 2",
        ));
    }
    let cpus: f64 = t.parse().map_err(|_| {
        ValidationError::new(
            "cpus",
            format!(
                "{} is not a number: give a decimal such as 0.5 or 2",
                quoted(t)
            ),
        )
    })?;
    if cpus == 0.0 {
        return Err(ValidationError::new(
            "cpus",
            "must be greater than zero (leave the flag out for no limit)",
        ));
    }
    validate_cpus(cpus)?;
    Ok(cpus)
}

/// Checks a CPU count that arrived as a number (API side): 0 means unlimited.
pub fn validate_cpus(cpus: f64) -> Result<(), ValidationError> {
    let err = |m: String| Err(ValidationError::new("cpus", m));
    if !cpus.is_finite() {
        return err(format!("{cpus} is not a finite number"));
    }
    if cpus < 0.0 {
        return err(format!("{cpus} is negative"));
    }
    if cpus > MAX_CPUS {
        return err(format!("{cpus} is more than the maximum of {MAX_CPUS}"));
    }
    if cpus > 0.0 && cpus < MIN_CPUS {
        return err(format!(
            "{cpus} is below Docker's precision of {MIN_CPUS} CPU"
        ));
    }
    Ok(())
}

/// Docker counts CPUs in billionths (`NanoCPUs`); anything smaller would round to "unlimited".
const MIN_CPUS: f64 = 1e-9;

/// Human size with binary units, one decimal: `512.0MiB`, `1.5GiB`, `900B`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    // Tenths of the unit, rounded half up, computed in integers so no float error shows.
    let size = u128::from(bytes);
    let mut divisor: u128 = 1024;
    for (i, unit) in UNITS.iter().enumerate() {
        let tenths = (size * 10 + divisor / 2) / divisor;
        if tenths < 10 * 1024 || i == UNITS.len() - 1 {
            return format!("{}.{}{unit}", tenths / 10, tenths % 10);
        }
        divisor *= 1024;
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_refused(s: &str) -> String {
        match parse_memory(s) {
            Ok(b) => panic!("{s:?} accepted as {b}"),
            Err(e) => {
                assert_eq!(e.field, "memory", "{e}");
                e.message
            }
        }
    }

    fn cpus_refused(s: &str) -> String {
        match parse_cpus(s) {
            Ok(c) => panic!("{s:?} accepted as {c}"),
            Err(e) => {
                assert_eq!(e.field, "cpus", "{e}");
                e.message
            }
        }
    }

    #[test]
    fn memory_accepts_docker_units() {
        assert_eq!(parse_memory("512m"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_memory("1g"), Ok(1024 * 1024 * 1024));
        assert_eq!(parse_memory("1.5g"), Ok(1_610_612_736));
        assert_eq!(parse_memory("512MiB"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_memory("512mb"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_memory("10240k"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_memory("6291456"), Ok(6_291_456));
        assert_eq!(parse_memory("6291456B"), Ok(6_291_456));
        assert_eq!(parse_memory("2G"), Ok(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_memory("1t"), Ok(1 << 40));
        assert_eq!(parse_memory("0.5g"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_memory(".5g"), Ok(512 * 1024 * 1024));
        assert_eq!(parse_memory("8 m"), Ok(8 * 1024 * 1024));
        assert_eq!(parse_memory(" 64m "), Ok(64 * 1024 * 1024));
    }

    #[test]
    fn memory_1024k_is_one_mib_so_below_the_minimum() {
        // 1024k parses (the unit is fine) but 1 MiB is below Docker's 6 MiB floor.
        let m = memory_refused("1024k");
        assert!(m.contains("below the minimum of 6.0MiB"), "{m}");
        assert!(m.contains("1.0MiB"), "{m}");
    }

    #[test]
    fn memory_refuses_negative() {
        let m = memory_refused("-5");
        assert!(m.contains("negative"), "{m}");
    }

    #[test]
    fn memory_refuses_garbage() {
        for s in ["12qq", "abc", "m", "1.2.3g", "1gg", "1ib", "5 5m", "."] {
            let m = memory_refused(s);
            assert!(m.starts_with("invalid size"), "{s:?}: {m}");
        }
    }

    #[test]
    fn memory_refuses_zero_and_below_minimum() {
        assert!(memory_refused("0").contains("greater than zero"));
        assert!(memory_refused("0m").contains("greater than zero"));
        assert!(memory_refused("").starts_with("empty"));
        let m = memory_refused("5m");
        assert!(
            m.contains("\"5m\" (5.0MiB) is below the minimum of 6.0MiB"),
            "{m}"
        );
        assert!(memory_refused("6291455").contains("below the minimum"));
    }

    #[test]
    fn memory_refuses_overflow() {
        assert!(memory_refused("99999999999999999999t").contains("too large"));
        assert!(memory_refused("16777216t").contains("too large"));
        let long = "9".repeat(10_000);
        let m = memory_refused(&long);
        assert!(m.contains("too large") && m.len() < 150, "{m}");
    }

    #[test]
    fn cpus_accepts_positive_decimals() {
        assert_eq!(parse_cpus("0.5"), Ok(0.5));
        assert_eq!(parse_cpus("2"), Ok(2.0));
        assert_eq!(parse_cpus(".25"), Ok(0.25));
        assert_eq!(parse_cpus("1024"), Ok(1024.0));
    }

    #[test]
    fn cpus_refuses_bad_values() {
        assert!(cpus_refused("0").contains("greater than zero"));
        assert!(cpus_refused("-1").contains("negative"));
        assert!(cpus_refused("abc").contains("\"abc\" is not a number"));
        assert!(cpus_refused("NaN").contains("not a finite number"));
        assert!(cpus_refused("inf").contains("not a finite number"));
        assert!(cpus_refused("2000").contains("more than the maximum of 1024"));
        assert!(cpus_refused("").starts_with("empty"));
        assert!(cpus_refused("1e-12").contains("precision"));
    }

    #[test]
    fn validate_cpus_allows_zero_as_unlimited() {
        assert_eq!(validate_cpus(0.0), Ok(()));
        assert_eq!(validate_cpus(1.5), Ok(()));
        assert_eq!(validate_cpus(MAX_CPUS), Ok(()));
        for bad in [-0.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1024.5] {
            let e = validate_cpus(bad).expect_err("refused");
            assert_eq!(e.field, "cpus");
        }
    }

    #[test]
    fn format_bytes_uses_binary_units() {
        assert_eq!(format_bytes(0), "0B");
        assert_eq!(format_bytes(900), "900B");
        assert_eq!(format_bytes(1023), "1023B");
        assert_eq!(format_bytes(1024), "1.0KiB");
        assert_eq!(format_bytes(512 * 1024 * 1024), "512.0MiB");
        assert_eq!(format_bytes(1_610_612_736), "1.5GiB");
        assert_eq!(format_bytes(6 * 1024 * 1024), "6.0MiB");
        // 1023.99 KiB rounds to 1024.0KiB, shown as the next unit instead.
        assert_eq!(format_bytes(1024 * 1024 - 1), "1.0MiB");
        assert_eq!(format_bytes(u64::MAX), "16.0EiB");
    }
}
