//! The image's JSON documents (config, manifest, index) as the OCI image
//! spec defines them, in canonical JSON so that the same image is always
//! the same bytes, and the names nucleus gives its annotations.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::layer::Blob;
use crate::bundle::canonical::to_canonical_string;
use crate::nix::PathInfo;
use crate::request::RunRequest;
use crate::{Error, Result};

pub const MEDIA_TYPE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// On a layer: a JSON object mapping each store path in it to its narHash
/// (SRI), which `nucleus verify` recomputes from the layer's entries.
pub const ANNOTATION_NAR_HASHES: &str = "nucleus.nar-hashes";
/// On the manifest (and a label in the config): the digest of the bundle
/// `nucleus bundle` writes for the same installable and options.
pub const ANNOTATION_BUNDLE_DIGEST: &str = "nucleus.bundle-digest";
/// On the manifest (and a label in the config): the top-level store path.
pub const ANNOTATION_CLOSURE_ROOT: &str = "nucleus.closure-root";
/// The tag in index.json that `podman load`, skopeo and umoci go by.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

pub const LAYOUT_FILE: &str = "oci-layout";
pub const LAYOUT_VERSION: &str = "1.0.0";
pub const INDEX_FILE: &str = "index.json";
pub const BLOBS_DIR: &str = "blobs";
pub const SHA256_DIR: &str = "sha256";

/// Fixed: the same image has the same config whenever it is made (the
/// second after the epoch, as Nix's store mtime and dockerTools' images).
pub const CREATED: &str = "1970-01-01T00:00:01Z";

/// A JSON document and its digest.
#[derive(Clone, Debug)]
pub struct Document {
    pub bytes: Vec<u8>,
    pub blob: Blob,
}

impl Document {
    pub fn new(value: &Value) -> Result<Document> {
        let text = to_canonical_string(value)
            .map_err(|why| Error::Plan { reason: format!("cannot write the image's JSON: {why}") })?;
        let bytes = text.into_bytes();
        let blob = Blob { digest: sha256_digest(&bytes), size: bytes.len() as u64 };
        Ok(Document { bytes, blob })
    }

    pub fn hex(&self) -> &str {
        hex_of(&self.blob.digest)
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::policy::hex(&<sha2::Sha256 as sha2::Digest>::digest(bytes)))
}

/// The 64 hex digits of a `sha256:` digest.
pub fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// What the image config says about the process, from the same request a
/// bundle is made from.
pub struct ProcessConfig<'a> {
    pub request: &'a RunRequest,
    pub command: &'a [String],
    pub labels: BTreeMap<String, String>,
}

/// The image config: the process (command, environment, user, working
/// directory, ports), the platform, and the layers' diff_ids.
pub fn config(process: &ProcessConfig<'_>, diff_ids: &[String]) -> Value {
    let req = process.request;
    let mut config = json!({
        "Cmd": process.command,
        "Env": req.env,
        "User": format!("{}:{}", req.user.uid, req.user.gid),
        "WorkingDir": req.workdir,
        "Labels": process.labels,
    });
    if !req.publish.is_empty() {
        let ports: BTreeMap<String, Value> =
            req.publish.iter().map(|p| (format!("{}/tcp", p.port), json!({}))).collect();
        config["ExposedPorts"] = json!(ports);
    }
    json!({
        "created": CREATED,
        "architecture": go_architecture(),
        "os": "linux",
        "config": config,
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    })
}

/// A layer's descriptor, with the narHash of every store path it holds.
pub fn layer_descriptor(blob: &Blob, paths: &[PathInfo]) -> Result<Value> {
    let mut descriptor = descriptor(MEDIA_TYPE_LAYER, blob);
    if !paths.is_empty() {
        let hashes: BTreeMap<String, String> =
            paths.iter().map(|p| (p.path.to_string(), p.nar_hash.to_string())).collect();
        let text = to_canonical_string(&json!(hashes))
            .map_err(|why| Error::Plan { reason: format!("cannot write a layer annotation: {why}") })?;
        descriptor["annotations"] = json!({ ANNOTATION_NAR_HASHES: text });
    }
    Ok(descriptor)
}

pub fn descriptor(media_type: &str, blob: &Blob) -> Value {
    json!({ "mediaType": media_type, "digest": blob.digest, "size": blob.size })
}

pub fn manifest(config: &Blob, layers: Vec<Value>, annotations: &BTreeMap<String, String>) -> Value {
    json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": descriptor(MEDIA_TYPE_CONFIG, config),
        "layers": layers,
        "annotations": annotations,
    })
}

pub fn index(manifest: &Blob, reference: &str) -> Value {
    let mut entry = descriptor(MEDIA_TYPE_MANIFEST, manifest);
    entry["annotations"] = json!({ ANNOTATION_REF_NAME: reference });
    json!({ "schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": [entry] })
}

pub fn layout() -> Value {
    json!({ "imageLayoutVersion": LAYOUT_VERSION })
}

/// The platform's architecture in the names OCI takes from Go. A closure
/// is built for the machine's own system, so that is the image's.
pub fn go_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        other => other,
    }
}

/// The image's default name: `localhost/NAME:TAG`, NAME from the top-level
/// store path's package name and TAG the first 16 hex digits of the image
/// digest, so the same image always gets the same name and another image
/// never does. `nucleus kube` uses the same default.
pub fn default_reference(package: &str, image_digest: &str) -> String {
    format!("localhost/{}:{}", repository_name(package), &hex_of(image_digest)[..16])
}

/// A repository name as registries take it: lowercase letters, digits and
/// single `-`, `.` or `_` between them.
pub fn repository_name(package: &str) -> String {
    let mut name = String::new();
    for c in package.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = name.trim_end_matches('-');
    if name.is_empty() {
        "nucleus".to_string()
    } else {
        name.chars().take(64).collect::<String>().trim_end_matches('-').to_string()
    }
}

/// `--tag` or `--image`: a reference a registry and Kubernetes accept,
/// checked loosely (no spaces, no control characters, a sane length).
pub fn parse_reference(option: &str, text: &str) -> Result<String> {
    let valid = !text.is_empty()
        && text.len() <= 255
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "-._:/@".contains(c))
        && !text.starts_with(['-', '.', '/', ':', '@']);
    if valid {
        Ok(text.to_string())
    } else {
        Err(Error::invalid(
            option,
            format!("'{}' is not an image reference ([registry/]name[:tag][@digest])", crate::error::printable(text)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_registry_safe_and_derived_from_the_digest() {
        assert_eq!(repository_name("hello"), "hello");
        assert_eq!(repository_name("My_App++2"), "my-app-2");
        assert_eq!(repository_name("---"), "nucleus");
        let digest = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(default_reference("hello", &digest), "localhost/hello:abababababababab");
    }

    #[test]
    fn references_are_checked() {
        assert!(parse_reference("--image", "registry.example:5000/team/app:v1").is_ok());
        assert!(parse_reference("--image", "app@sha256:0123").is_ok());
        for bad in ["", "has space", "-flag", "new\nline"] {
            assert!(matches!(parse_reference("--image", bad), Err(Error::InvalidArgument { .. })), "{bad:?}");
        }
    }

    #[test]
    fn documents_are_canonical() {
        let a = Document::new(&json!({"b": 1, "a": [true, "x"]})).unwrap();
        assert_eq!(a.bytes, br#"{"a":[true,"x"],"b":1}"#);
        assert_eq!(a.blob.size, 22);
        assert!(a.blob.digest.starts_with("sha256:") && a.hex().len() == 64);
    }
}
