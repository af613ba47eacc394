//! nucleus: run Nix closures inside gVisor.
//!
//! The modules follow the pipeline, one typed value handed from each stage
//! to the next:
//!
//! ```text
//! cli, policy ─► RunRequest            (checked user input)
//! host        ─► HostSources           (host paths opened once, checked on the descriptor)
//! nix         ─► StorePath ─► Closure  (installable, closure, narHash)
//! rootfs      ─► RootfsPlan            (what /bin, /etc and /nix/store show)
//! plan        ─► LaunchPlan            (oci: the runtime config; bundle: contents and digest; every decision)
//! image, kube ─► OCI image, manifest   (the closure as layers; the sandbox in Kubernetes' terms)
//! sandbox     ─► exit status           (state: the container's record; runsc; the supervisor)
//! ```

pub mod bundle;
pub mod cli;
pub mod commands;
pub mod error;
pub mod host;
pub mod image;
pub mod interrupt;
pub mod kube;
pub mod nix;
pub mod oci;
pub mod plan;
pub mod policy;
pub mod request;
pub mod rootfs;
pub mod sandbox;
pub mod sha256;
pub mod state;

pub use error::{Error, Result};
