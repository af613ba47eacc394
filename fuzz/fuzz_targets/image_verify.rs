//! `nucleus verify IMAGE.tar` (`image::verify::verify`) on an `oci-archive`
//! from anywhere: the input is written to a temporary `.tar` file and
//! verified. The tar reader, the JSON documents, the descriptors, the
//! layers' entries turned back into NAR streams (`image::nar_stream`) and
//! the recorded narHashes all come from the input. Blob digests that do not
//! match are differences, not stops, so a seed image (`corpus/image_verify/
//! seed-clean`, which checks out) leads the fuzzer deep without it having
//! to forge a sha256.
//!
//! Whatever the bytes: no panic, an end, and an image that checks out has
//! the bundle digest annotation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nucleus::image::verify;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::Builder::new().prefix("nucleus-fuzz-verify-").tempdir_in(base()).unwrap();
    let path = dir.path().join("image.tar");
    std::fs::write(&path, data).unwrap();
    assert!(verify::is_image(&path));
    if let Ok(report) = verify::verify(&path) {
        if report.differences.is_empty() {
            assert!(report.bundle_digest.is_some());
            assert!(report.image_digest.starts_with("sha256:"));
        }
    }
});

/// Memory-backed where there is one: a file is written every run.
fn base() -> std::path::PathBuf {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}
