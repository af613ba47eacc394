//! The value parsers of `nucleus::policy`: each one against a plain
//! reference written from its documented grammar. Numbers are digits only
//! (no `+`, no blanks): one value has one spelling.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use nucleus::policy::{self, EnvArg};

#[path = "reference/paths.rs"]
mod paths;
use paths::normalised;

fuzz_target!(|data: &[u8]| {
    // Command-line arguments reach the parsers as UTF-8 (clap refuses the rest).
    let Ok(text) = std::str::from_utf8(data) else { return };

    assert_eq!(policy::parse_size("--memory", text).ok(), size(text), "parse_size({text:?})");
    assert_eq!(policy::parse_cpus(text).ok(), cpus(text), "parse_cpus({text:?})");
    assert_eq!(policy::parse_name(text).ok().as_deref(), name_ok(text).then_some(text), "parse_name({text:?})");
    assert_eq!(policy::parse_hostname(text).is_ok(), hostname_ok(text), "parse_hostname({text:?})");
    assert_eq!(policy::parse_platform(text).is_ok(), ["ptrace", "kvm", "systrap"].contains(&text));
    assert_eq!(policy::parse_env(text).ok(), env(text), "parse_env({text:?})");

    let user = policy::parse_user(text).ok().map(|u| {
        assert!(u.additional_gids.is_empty());
        (u.uid, u.gid)
    });
    let (u, g) = text.split_once(':').unwrap_or((text, text));
    assert_eq!(user, number::<u32>(u).zip(number::<u32>(g)), "parse_user({text:?})");
    assert_eq!(policy::parse_gid(text).ok(), number::<u32>(text), "parse_gid({text:?})");

    let pids = number::<u64>(text).filter(|n| *n >= policy::MIN_PIDS);
    assert_eq!(policy::parse_pids(text).ok(), pids, "parse_pids({text:?})");
    let seconds = number::<u64>(text).filter(|n| (1..=u64::from(u32::MAX)).contains(n));
    assert_eq!(policy::parse_seconds("--timeout", text).ok(), seconds, "parse_seconds({text:?})");
    assert_eq!(policy::parse_port("--ready-tcp", text).ok(), port(text), "parse_port({text:?})");
    assert_eq!(
        policy::parse_nix_identifier("--arg", text).is_ok(),
        nix_identifier_ok(text),
        "parse_nix_identifier({text:?})"
    );
    let published = policy::parse_publish(text).ok().map(|p| (p.host_ip, p.host_port, p.port));
    assert_eq!(published, publish(text), "parse_publish({text:?})");

    assert_eq!(policy::parse_workdir(text).ok(), normalised(text), "parse_workdir({text:?})");
    if let Ok(dir) = policy::parse_workdir(text) {
        assert_eq!(policy::parse_workdir(&dir).unwrap(), dir, "parse_workdir is not idempotent");
    }
});

/// Digits only, as a `T`; `None` for anything else or anything too big.
fn number<T: TryFrom<u128>>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = text.trim_start_matches('0');
    if significant.len() > 38 {
        return None;
    }
    let n: u128 = if significant.is_empty() { 0 } else { significant.parse().ok()? };
    T::try_from(n).ok()
}

/// `KEY=VALUE` (split at the first `=`) or a bare `KEY`; KEY non-empty and
/// without blanks, no NUL anywhere.
fn env(text: &str) -> Option<EnvArg> {
    if text.contains('\0') {
        return None;
    }
    let key = text.split('=').next().unwrap();
    if key.is_empty() || key.chars().any(char::is_whitespace) {
        return None;
    }
    Some(match text.find('=') {
        Some(i) => EnvArg::Set(key.to_string(), text[i + 1..].to_string()),
        None => EnvArg::Inherit(text.to_string()),
    })
}

/// `N[KMG]`, binary units, case-insensitive, 1 ..= i64::MAX bytes.
fn size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 10),
        b'm' | b'M' => (&text[..text.len() - 1], 20),
        b'g' | b'G' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let n: u64 = number(digits)?;
    let bytes = u128::from(n) << shift;
    (bytes > 0 && bytes <= i64::MAX as u128).then_some(bytes as u64)
}

/// `W`, `W.F`, `.F` with at most three fraction digits, in thousandths,
/// 10 ..= 1_000_000 (0.01 to 1000 CPUs).
fn cpus(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) || frac.len() > 3 {
        return None;
    }
    let whole = u128::from(if whole.is_empty() { 0 } else { number::<u64>(whole)? });
    let frac: u128 = format!("{frac:0<3}").parse().ok()?;
    let millis = whole * 1000 + frac;
    (policy::MIN_CPU_MILLIS as u128..=1_000_000).contains(&millis).then_some(millis as u64)
}

fn port(text: &str) -> Option<u16> {
    number::<u16>(text).filter(|p| *p > 0)
}

/// `[HOSTIP:]HOSTPORT:PORT[/tcp]`; HOSTIP is an IPv4 or IPv6 address, bare
/// or in one pair of brackets; the host address defaults to 127.0.0.1.
fn publish(text: &str) -> Option<(IpAddr, u16, u16)> {
    let spec = match text.rfind('/') {
        Some(slash) if &text[slash..] == "/tcp" => &text[..slash],
        Some(_) => return None,
        None => text,
    };
    let (rest, container) = spec.rsplit_once(':')?;
    let (ip, host) = match rest.rsplit_once(':') {
        Some((ip, host)) => (ip, host),
        None => ("127.0.0.1", rest),
    };
    let ip: IpAddr = ip.strip_prefix('[').and_then(|i| i.strip_suffix(']')).unwrap_or(ip).parse().ok()?;
    Some((ip, port(host)?, port(container)?))
}

fn nix_identifier_ok(text: &str) -> bool {
    let b = text.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'\'' | b'-'))
}

fn name_ok(text: &str) -> bool {
    let b = text.as_bytes();
    (1..=policy::MAX_NAME_LEN).contains(&b.len())
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

