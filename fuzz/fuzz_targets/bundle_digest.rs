//! The bundle digest over an untrusted bundle's `config.json` and
//! `nucleus.json` (what `nucleus verify BUNDLE` recomputes):
//! `bundle::canonical::to_canonical_string` and
//! `DigestRecord::canonical_document`/`compute`.
//!
//! The input is the record's JSON, a 0xFF byte (which UTF-8 never holds),
//! then config.json; without the 0xFF, or when the record does not parse,
//! a fixed record (bundle at `/b`, one staged volume) is used.
//!
//! Canonical JSON reads back to the same value, and is a fixed point: its
//! members are sorted and nothing has a second spelling. The document is
//! canonical, names the record's network and closure, and (without a
//! closure to collapse) holds config.json with exactly the documented
//! normalisations: `linux.cgroupsPath`, the container-name annotation (and
//! annotations left empty) and a `/proc/self/ns/net` namespace path left
//! out, mount sources inside the bundle written as the host path they
//! stage or as `$BUNDLE/<rest>`. It is refused exactly when the record's
//! bundleDir or staged sources are not ones nucleus writes, when a mount
//! already looks like a placeholder (a `$…` source, a `closure` type), or
//! when a number in it is not an integer. The digest is the document's sha256.
#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use nucleus::bundle::canonical::to_canonical_string;
use nucleus::bundle::DigestRecord;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let (record, config) = match data.iter().position(|b| *b == 0xff) {
        Some(i) => (serde_json::from_slice::<DigestRecord>(&data[..i]).ok(), &data[i + 1..]),
        None => (None, data),
    };
    let record = record.unwrap_or_else(default_record);
    let Ok(config) = serde_json::from_slice::<Value>(config) else { return };

    if let Ok(text) = to_canonical_string(&config) {
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, config, "{text}");
        assert_eq!(to_canonical_string(&back).unwrap(), text);
    } else {
        assert!(!integral(&config), "refused {config}");
    }

    let expected = normalisation_ok(&record).then(|| normalised(&config, &record));
    let document = record.canonical_document(&config);
    let Ok(document) = document else {
        if let Some(expected) = expected {
            if record.closure.is_none() {
                assert!(!integral(&expected) || has_placeholder(&config), "refused {config}");
            }
        }
        return;
    };
    assert!(expected.is_some(), "accepted a record nucleus never writes: {record:?}");
    assert!(!has_placeholder(&config), "accepted a mount that looks like a placeholder: {config}");
    let parsed: Value = serde_json::from_str(&document).unwrap();
    assert_eq!(to_canonical_string(&parsed).unwrap(), document, "not canonical: {document}");
    assert_eq!(parsed["nucleusDigest"], 2);
    assert_eq!(parsed["network"], record.network.as_str());
    let pairs: Option<Vec<[&str; 2]>> =
        record.closure.as_ref().map(|c| c.iter().map(|e| [e.path.as_str(), e.nar_hash.as_str()]).collect());
    assert_eq!(parsed["closure"], json!(pairs));
    if record.closure.is_none() {
        assert_eq!(Some(&parsed["config"]), expected.as_ref(), "{config}");
    }
    let digest = record.compute(&config).unwrap();
    let hex: String = Sha256::digest(document.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest.as_str(), format!("sha256:{hex}"));
});

/// A mount whose source starts with `$` or whose type is `closure`.
fn has_placeholder(config: &Value) -> bool {
    config["mounts"].as_array().is_some_and(|mounts| {
        mounts.iter().any(|m| {
            m.get("source").and_then(Value::as_str).is_some_and(|s| s.starts_with('$'))
                || m.get("type").and_then(Value::as_str) == Some("closure")
        })
    })
}

fn default_record() -> DigestRecord {
    serde_json::from_value(json!({
        "digestFormat": 2,
        "nucleusVersion": "0.1.0",
        "digest": "sha256:0",
        "bundleDir": "/b",
        "root": null,
        "closure": null,
        "network": "none",
        "stagedSources": {"staging/volume-0": "/srv/data"}
    }))
    .unwrap()
}

/// Only integers among the numbers.
fn integral(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_i64() || n.is_u64(),
        Value::Array(items) => items.iter().all(integral),
        Value::Object(members) => members.values().all(integral),
        _ => true,
    }
}

/// bundleDir absolute and not `/` once normalised; staged sources are
/// `staging/volume-<digits>` or `staging/context`, standing for absolute,
/// normalised host paths.
fn normalisation_ok(record: &DigestRecord) -> bool {
    let normal = |p: &Path| {
        let text = p.to_str().unwrap_or("");
        text.starts_with('/') && (text == "/" || !text[1..].split('/').any(|c| c.is_empty() || c == "." || c == ".."))
    };
    let dir_ok = record.bundle_dir.is_absolute()
        && record.bundle_dir.components().any(|c| matches!(c, std::path::Component::Normal(_)))
        && !lexically_root(&record.bundle_dir);
    dir_ok
        && record.staged_sources.iter().all(|(staged, host)| {
            let volume = staged
                .strip_prefix("staging/volume-")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            (volume || staged == "staging/context") && normal(host)
        })
}

/// Whether `..` brings `path` back to `/`.
fn lexically_root(path: &Path) -> bool {
    let mut depth: usize = 0;
    for c in path.components() {
        match c {
            std::path::Component::Normal(_) => depth += 1,
            std::path::Component::ParentDir => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    depth == 0
}

/// config.json with the documented normalisations (no closure collapse).
fn normalised(config: &Value, record: &DigestRecord) -> Value {
    let mut config = config.clone();
    if let Some(object) = config.as_object_mut() {
        if let Some(Value::Object(annotations)) = object.get_mut("annotations") {
            annotations.remove("nucleus.container-name");
            if annotations.is_empty() {
                object.remove("annotations");
            }
        }
    }
    if let Some(Value::Object(linux)) = config.get_mut("linux") {
        linux.remove("cgroupsPath");
        if let Some(Value::Array(namespaces)) = linux.get_mut("namespaces") {
            for ns in namespaces.iter_mut().filter_map(Value::as_object_mut) {
                if ns.get("path") == Some(&json!("/proc/self/ns/net")) {
                    ns.remove("path");
                }
            }
        }
    }
    let staged: &BTreeMap<String, PathBuf> = &record.staged_sources;
    if let Some(Value::Array(mounts)) = config.get_mut("mounts") {
        for mount in mounts.iter_mut() {
            if let Some(Value::String(source)) = mount.get_mut("source") {
                if let Ok(rest) = Path::new(source.as_str()).strip_prefix(&record.bundle_dir) {
                    let rest = rest.display().to_string();
                    *source = match staged.get(&rest) {
                        Some(host) => host.display().to_string(),
                        None => format!("$BUNDLE/{rest}"),
                    };
                }
            }
        }
    }
    config
}
