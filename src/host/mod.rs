//! Reading the host safely. Every host path a run uses is opened once,
//! without following symlinks, checked on the open descriptor, and used only
//! through it: volume and context sources ([`sources`]), secrets, hook
//! programs confined to the store ([`hooks`], [`store`]), and the state
//! root, which must be a place no other user controls ([`trust`]).

pub mod hooks;
pub mod open;
pub mod sources;
pub mod store;
pub mod trust;

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// Configuration files given on the command line (a seccomp profile, a
/// hooks file, an environment file) are small; a bigger one is a mistake.
pub const MAX_INPUT_FILE_BYTES: u64 = 1 << 20;

/// Reads a configuration file named by `option`, at most
/// [`MAX_INPUT_FILE_BYTES`]. It is read once, and only its contents are
/// used, so following a symlink here is harmless.
pub fn read_input_file(option: &str, path: &Path) -> Result<Vec<u8>> {
    let fail = |reason: &str, source: Option<std::io::Error>| Error::HostPath {
        option: option.to_string(),
        path: path.to_path_buf(),
        reason: reason.to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(|e| fail("cannot be read", Some(e)))?;
    let meta = file.metadata().map_err(|e| fail("cannot be examined", Some(e)))?;
    if !meta.is_file() {
        return Err(fail("is not a regular file", None));
    }
    let mut bytes = Vec::new();
    file.take(MAX_INPUT_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| fail("cannot be read", Some(e)))?;
    if bytes.len() as u64 > MAX_INPUT_FILE_BYTES {
        return Err(fail("is larger than 1 MiB", None));
    }
    Ok(bytes)
}
