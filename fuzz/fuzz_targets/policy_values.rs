//! The value parsers of `nucleus::policy`: each one against a plain
//! reference written from its documented grammar.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nucleus::policy;

fuzz_target!(|data: &[u8]| {
    // Command-line arguments reach the parsers as UTF-8 (clap refuses the rest).
    let Ok(text) = std::str::from_utf8(data) else { return };

    assert_eq!(policy::parse_size("--memory", text).ok(), size(text), "parse_size({text:?})");
    assert_eq!(policy::parse_cpus(text).ok(), cpus(text), "parse_cpus({text:?})");
    assert_eq!(policy::parse_name(text).is_ok(), name_ok(text), "parse_name({text:?})");
    if let Ok(n) = policy::parse_name(text) {
        assert_eq!(n, text);
    }
    assert_eq!(policy::parse_hostname(text).is_ok(), hostname_ok(text), "parse_hostname({text:?})");
    assert_eq!(policy::parse_platform(text).is_ok(), ["ptrace", "kvm", "systrap"].contains(&text));

    match policy::parse_env(text) {
        Ok((key, value)) => {
            assert!(!key.is_empty() && !key.contains('=') && !text.contains('\0'), "parse_env({text:?})");
            assert_eq!(format!("{key}={value}"), text);
        }
        Err(_) => assert!(
            !text.contains('=') || text.starts_with('=') || text.contains('\0'),
            "parse_env refused {text:?}"
        ),
    }

    match policy::parse_user(text) {
        Ok(user) => {
            assert!(user.additional_gids.is_empty());
            let (u, g) = text.split_once(':').unwrap_or((text, text));
            assert_eq!((Some(user.uid), Some(user.gid)), (number(u), number(g)), "parse_user({text:?})");
        }
        Err(_) => {
            let (u, g) = text.split_once(':').unwrap_or((text, text));
            assert!(number(u).is_none() || number(g).is_none(), "parse_user refused {text:?}");
        }
    }

    let pids = decimal(text).and_then(|n| u64::try_from(n).ok()).filter(|n| *n >= policy::MIN_PIDS);
    assert_eq!(policy::parse_pids(text).ok(), pids, "parse_pids({text:?})");

    assert_eq!(policy::parse_workdir(text).ok(), normalised(text), "parse_workdir({text:?})");
    if let Ok(dir) = policy::parse_workdir(text) {
        assert_eq!(policy::parse_workdir(&dir).unwrap(), dir, "parse_workdir is not idempotent");
    }
});

/// A decimal number as Rust's `str::parse` reads it (an optional `+`);
/// `None` for anything that is not one or does not fit in a u128.
fn decimal(text: &str) -> Option<u128> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Some(0);
    }
    if significant.len() > 38 {
        return None;
    }
    significant.parse().ok()
}

fn number(text: &str) -> Option<u32> {
    decimal(text).and_then(|n| u32::try_from(n).ok())
}

/// `N[KMG]`, binary units, case-insensitive, 1 ..= i64::MAX bytes.
fn size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 10),
        b'm' | b'M' => (&text[..text.len() - 1], 20),
        b'g' | b'G' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 20 {
        return None;
    }
    let n: u128 = if significant.is_empty() { 0 } else { significant.parse().ok()? };
    if n > u64::MAX as u128 {
        return None;
    }
    let bytes = n << shift;
    (bytes > 0 && bytes <= i64::MAX as u128).then_some(bytes as u64)
}

/// `W`, `W.F`, `.F` with at most three fraction digits, in thousandths,
/// 1 ..= 1_000_000.
fn cpus(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) || frac.len() > 3 {
        return None;
    }
    let significant = whole.trim_start_matches('0');
    if significant.len() > 19 {
        return None;
    }
    let whole: u128 = if significant.is_empty() { 0 } else { significant.parse().ok()? };
    let frac: u128 = format!("{frac:0<3}").parse().ok()?;
    let millis = whole * 1000 + frac;
    (1..=1_000_000).contains(&millis).then_some(millis as u64)
}

fn name_ok(text: &str) -> bool {
    let b = text.as_bytes();
    (1..=128).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn hostname_ok(text: &str) -> bool {
    text.len() <= 253
        && text.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Absolute, no NUL, no `..`; `.` and empty components dropped.
fn normalised(text: &str) -> Option<String> {
    if !text.starts_with('/') || text.contains('\0') {
        return None;
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            _ => parts.push(part),
        }
    }
    Some(format!("/{}", parts.join("/")))
}
