//! RootfsPlan + RunRequest → RuntimeConfig: the hardened OCI configuration
//! (config.json), with the runtime spec's types from the `oci-spec` crate.
//! Pure and deterministic: the same inputs give the same RuntimeConfig.

pub mod build;
pub mod config;
pub mod defaults;

pub use build::{hardened_spec, SpecInput};
pub use config::{MountList, RuntimeConfig};
pub use oci_spec::runtime::Spec;
