//! Names given on the command line outside `policy`, and the names nucleus
//! derives from a package's name (which comes from whoever built the store
//! path): `lifecycle::parse_signal`, `kube::parse_name`,
//! `image::oci::parse_reference` against references written from their
//! documentation, and `oci::repository_name`, `kube::default_name` and
//! `oci::default_reference`, whose results must pass those same checks for
//! any package name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nucleus::image::oci;
use nucleus::kube;
use nucleus::sandbox::lifecycle::parse_signal;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };

    // `TERM`, `SIGTERM` (any case) or its number.
    if let Ok(signal) = parse_signal(text) {
        let name = signal.as_str();
        let number = signal as i32;
        assert!(
            text.parse::<i32>() == Ok(number)
                || text.eq_ignore_ascii_case(name)
                || text.eq_ignore_ascii_case(&name[3..]),
            "{text:?} -> {name}"
        );
        assert_eq!(parse_signal(name).ok(), Some(signal));
        assert_eq!(parse_signal(&name[3..].to_lowercase()).ok(), Some(signal));
        assert_eq!(parse_signal(&number.to_string()).ok(), Some(signal));
    }

    assert_eq!(kube::parse_name(text).is_ok(), kube_name_ok(text), "kube::parse_name({text:?})");
    assert_eq!(oci::parse_reference("--image", text).is_ok(), reference_ok(text), "parse_reference({text:?})");

    let repository = oci::repository_name(text);
    assert!(repository_ok(&repository), "repository_name({text:?}) = {repository:?}");
    let name = kube::default_name(text);
    assert!(kube::parse_name(&name).is_ok(), "default_name({text:?}) = {name:?}");
    let digest = format!("sha256:{}", "0123456789abcdef".repeat(4));
    let tag = oci::default_reference(text, &digest);
    assert!(oci::parse_reference("--tag", &tag).is_ok(), "default_reference({text:?}) = {tag:?}");
});

/// 1 to 52 lowercase letters, digits and `-`, starting with a letter and
/// not ending with `-`.
fn kube_name_ok(text: &str) -> bool {
    let b = text.as_bytes();
    (1..=52).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1] != b'-'
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// No spaces or control characters, at most 255 bytes: letters, digits and
/// `-._:/@`, not starting with a separator.
fn reference_ok(text: &str) -> bool {
    let b = text.as_bytes();
    (1..=255).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-._:/@".contains(c))
        && !b"-./:@".contains(&b[0])
}

/// Lowercase letters and digits, single `-` between them, 1 to 64 bytes.
fn repository_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.split('-').all(|part| !part.is_empty())
        && name.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}
