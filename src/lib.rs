//! nucleus: run Nix closures inside gVisor.
//!
//! The modules follow the pipeline, one typed value handed from each stage
//! to the next:
//!
//! ```text
//! cli ─► RunRequest
//! nix::installable ─► StorePath ─► nix::closure::Closure
//! rootfs ─► RootfsPlan ─► oci ─► Spec
//! bundle ─► Bundle + Digest ─► sandbox ─► exit status
//! ```

pub mod bundle;
pub mod cli;
pub mod commands;
pub mod error;
pub mod hooks;
pub mod nix;
pub mod oci;
pub mod policy;
pub mod request;
pub mod rootfs;
pub mod sandbox;

pub use error::{Error, Result};
