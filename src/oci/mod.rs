//! RootfsPlan + RunRequest → Spec: the hardened OCI configuration, with
//! the runtime spec's types from the `oci-spec` crate. Pure and
//! deterministic: the same inputs give the same Spec.

pub mod build;
pub mod defaults;

pub use build::{hardened_spec, SpecInput};
pub use oci_spec::runtime::Spec;
