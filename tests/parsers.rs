//! The parsers that read user input, against awkward text: multi-byte
//! characters where a length counts bytes, overflowing numbers, empty parts,
//! `..` and NUL. None may panic; each refuses what it must. (The fuzz
//! targets under `fuzz/` run the same parsers at length.)

use std::path::Path;

use nucleus::nix::base32;
use nucleus::nix::hash::NarHash;
use nucleus::nix::installable::Installable;
use nucleus::nix::StorePath;
use nucleus::policy;
use nucleus::request::InstallableRequest;

/// Inputs that once were, or could plausibly be, trouble for a parser
/// that slices by byte position: multi-byte characters at the cut,
/// empty parts, overflowing numbers. None may panic.
const AWKWARD: &[&str] = &[
    "",
    ":",
    "::",
    ":::",
    "/",
    "é",
    "€",
    "1€",
    "€K",
    "1K€",
    "/tmp:é",
    "/tmp:/é:rw",
    "\0",
    "/\0",
    "a=\0",
    "=",
    "18446744073709551616",
    "18446744073709551615G",
    "9223372036854775807",
    "8589934592G",
    ".",
    "..",
    "...",
    "0.0001",
    "1.",
    ".1",
    "1.€",
    "€.1",
    "sha256-",
    "sha256:",
    "sha256:é",
    "sha512-abc",
    "md5:abc",
];

#[test]
fn policy_parsers_never_panic_on_awkward_input() {
    for text in AWKWARD {
        let _ = policy::parse_volume(text, Path::new("/"));
        let _ = policy::parse_tmpfs(text);
        let _ = policy::parse_secret(text, Path::new("/"));
        let _ = policy::parse_publish(text);
        let _ = policy::parse_size("--memory", text);
        let _ = policy::parse_env(text);
        let _ = policy::parse_name(text);
        let _ = policy::parse_hostname(text);
        let _ = policy::parse_user(text);
        let _ = policy::parse_cpus(text);
        let _ = policy::parse_pids(text);
        let _ = policy::parse_workdir(text);
        let _ = policy::parse_platform(text);
        let _ = policy::hooks::parse(text.as_bytes(), Path::new("h"));
        let _ = policy::seccomp::parse_profile(text.as_bytes(), Path::new("p"));
        let _ = Installable::classify(&installable(text));
        let _ = StorePath::parse(text);
        let _ = NarHash::parse(text);
        let _ = base32::decode(text);
    }
}

#[test]
fn sizes_and_cpus_refuse_overflow_and_multibyte_suffixes() {
    for bad in ["18446744073709551616", "17179869184G", "8589934592G", "€", "1€", "€K", "K", "k"] {
        assert!(policy::parse_size("--memory", bad).is_err(), "{bad}");
    }
    assert_eq!(policy::parse_size("--memory", "8589934591G").unwrap(), 8589934591 << 30);
    for bad in ["18446744073709551.616", "1000.001", "1.€", "€.1", "1..2", "+1", " 1"] {
        assert!(policy::parse_cpus(bad).is_err(), "{bad}");
    }
    assert_eq!(policy::parse_cpus("1000").unwrap(), 1_000_000);
}

#[test]
fn nar_hash_parsing_is_total_and_canonical() {
    // Every accepted text prints back to a text that parses to the same value.
    for text in [
        "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha256:0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73",
    ] {
        let h = NarHash::parse(text).unwrap();
        assert_eq!(NarHash::parse(&h.to_string()).unwrap(), h);
    }
    // Multi-byte characters where a length check counts bytes.
    let sri_with_euro = format!("sha256-{}€", "A".repeat(41));
    assert_eq!(sri_with_euro.len(), 7 + 44);
    assert!(NarHash::parse(&sri_with_euro).is_err());
    let hex_with_euro = format!("{}€", "0".repeat(61));
    assert_eq!(hex_with_euro.len(), 64);
    assert!(NarHash::parse(&hex_with_euro).is_err());
    let nix32_with_euro = format!("€{}", "0".repeat(49));
    assert_eq!(nix32_with_euro.len(), 52);
    assert!(NarHash::parse(&nix32_with_euro).is_err());
}

#[test]
fn base32_decode_round_trips() {
    for len in 0..40usize {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 91 + 7) as u8).collect();
        let text = base32::encode(&bytes);
        assert_eq!(base32::decode(&text).unwrap(), bytes);
    }
    assert!(base32::decode("zz").is_err());
    assert!(base32::decode("é").is_err());
}

#[test]
fn store_paths_refuse_multibyte_names_and_traversal() {
    let hash = "g04kv8hlcgkldv0zdyi9y4zpy6hkq0p7";
    for bad in [
        format!("/nix/store/{hash}-é"),
        format!("/nix/store/{hash}é-x"),
        format!("/nix/store/{}-x", "é".repeat(16)),
        format!("/nix/store/{hash}-.."),
        format!("/nix/store/{hash}-x/.."),
        format!("/nix/store/{hash}-{}", "a".repeat(212)),
    ] {
        assert!(StorePath::parse(&bad).is_err(), "{bad}");
    }
    assert!(StorePath::parse(&format!("/nix/store/{hash}-{}", "a".repeat(211))).is_ok());
}

#[test]
fn hooks_json_refuses_what_is_not_a_hooks_object() {
    for bad in [
        &b""[..],
        b"null",
        b"[]",
        b"{\"prestart\":null}",
        b"{\"prestart\":[{}]}",
        b"{\"prestart\":[{\"path\":1}]}",
        b"{\"prestart\":[{\"path\":\"/x\",\"timeout\":-1}]}",
        b"{\"prestart\":[{\"path\":\"/x\",\"timeout\":1e999}]}",
        b"\xff",
    ] {
        assert!(policy::hooks::parse(bad, Path::new("h")).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    // Deep nesting is refused by serde_json's recursion limit, not by
    // overflowing the stack.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(policy::hooks::parse(deep.as_bytes(), Path::new("h")).is_err());
    let deep_obj = format!("{{\"prestart\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(policy::hooks::parse(deep_obj.as_bytes(), Path::new("h")).is_err());
}

#[test]
fn seccomp_profiles_are_validated_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("profile.json");
    for bad in [
        &b""[..],
        b"{}",
        b"[]",
        b"{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{}]}",
        b"{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":{}}",
        b"{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\":[1]}",
        b"{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":[{\"names\":[\"x\"],\"action\":\"ALLOW\"}]}",
    ] {
        std::fs::write(&file, bad).unwrap();
        assert!(load_profile(&file, None).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    std::fs::write(
        &file,
        br#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#,
    )
    .unwrap();
    assert!(load_profile(&file, None).is_ok());
    // A pin that is not 64 hex digits, including multi-byte text.
    for pin in ["", "€", &"é".repeat(32), &"0".repeat(63)] {
        assert!(load_profile(&file, Some(pin)).is_err(), "{pin}");
    }
}

#[test]
fn installables_refuse_nul_and_newline() {
    for bad in ["", "a\0b", "a\nb", "./x\n.nix"] {
        assert!(Installable::classify(&installable(bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn path_options_refuse_dotdot_nul_and_owned_trees() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().display().to_string();
    for bad in [
        format!("{src}:/a/../../etc"),
        format!("{src}:/proc/../etc"),
        format!("{src}:/ok\0"),
        format!("{src}:/nix/store/x"),
        format!("{src}:/run/secrets"),
        format!("{src}:/./nix"),
        format!("{src}:/nix//store"),
        "/proc/self/root:/data".to_string(),
        "/dev/shm:/data".to_string(),
        "/run:/data".to_string(),
        "/nix/var/nix/daemon-socket:/data".to_string(),
    ] {
        assert!(policy::parse_volume(&bad, Path::new("/")).is_err(), "{bad}");
    }
    // A source that is a symlink is refused when it is opened: nucleus
    // follows no symlink in a host path.
    let link = dir.path().join("sneaky");
    std::os::unix::fs::symlink("/etc", &link).unwrap();
    let mut req = nucleus::request::RunRequest::new(None, Some(vec!["/bin/true".into()]));
    req.volumes.push(policy::parse_volume(&format!("{}:/data", link.display()), Path::new("/")).unwrap());
    assert!(nucleus::host::sources::HostSources::open(&req).is_err());
    for bad in ["/proc", "/nix/x", "relative", "/a/../b", "/\0", "/"] {
        assert!(policy::parse_tmpfs(bad).is_err(), "{bad:?}");
    }
    for bad in ["relative", "/a/../b", "/a\0"] {
        assert!(policy::parse_workdir(bad).is_err(), "{bad:?}");
    }
    assert_eq!(policy::parse_workdir("/a/./b//c/").unwrap(), "/a/b/c");
}

fn installable(text: &str) -> InstallableRequest {
    InstallableRequest { text: text.to_string(), ..Default::default() }
}

/// A seccomp profile file as `--seccomp-profile` reads it.
fn load_profile(file: &Path, pin: Option<&str>) -> nucleus::Result<()> {
    let bytes = std::fs::read(file).unwrap();
    if let Some(pin) = pin {
        policy::seccomp::check_pin(&bytes, pin, file)?;
    }
    policy::seccomp::parse_profile(&bytes, file).map(drop)
}
