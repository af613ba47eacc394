//! RootfsPlan + RunRequest → Config: the hardened OCI configuration
//! (config.json), with the runtime spec's types from the `oci-spec` crate.
//! Pure and deterministic: the same inputs give the same Config.

pub mod build;
pub mod config;
pub mod defaults;

pub use build::{hardened_spec, SpecInput};
pub use config::{Config, MountList};
pub use oci_spec::runtime::Spec;
