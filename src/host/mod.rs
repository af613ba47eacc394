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
/// [`MAX_INPUT_FILE_BYTES`], once. Symlinks are followed only through
/// directories no other user controls ([`trust::open_trusted_file`]): an
/// environment file's contents reach the workload, so a name another user
/// could point at a file only root may read must not be followed. A hooks
/// file names programs that run as the caller, so it must itself be beyond
/// other users' reach.
pub fn read_input_file(option: &str, path: &Path) -> Result<Vec<u8>> {
    let fail = |reason: &str, source: Option<std::io::Error>| Error::HostPath {
        option: option.to_string(),
        path: path.to_path_buf(),
        reason: reason.to_string(),
        source,
    };
    let trust = if option == "--hooks" { trust::FileTrust::PathAndFile } else { trust::FileTrust::Path };
    let fd = trust::open_trusted_file(path, trust).map_err(|why| fail(&why, None))?;
    let file = std::fs::File::from(fd);
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
