//! RootfsPlan + RunRequest → Spec: the hardened OCI configuration.
//! Pure and deterministic: the same inputs give the same Spec.

pub mod build;
pub mod defaults;
pub mod spec;

pub use build::{build_spec, Launcher, StoreLayout};
pub use spec::Spec;
