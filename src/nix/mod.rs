//! Everything that speaks Nix: store paths, nixbase32, NAR hashing, and the
//! `nix` commands that resolve installables and report closures.

pub mod base32;
pub mod cache;
pub mod closure;
pub mod command;
pub mod daemon;
pub mod hash;
pub mod installable;
pub mod nar;
pub mod store_path;

pub use closure::{Closure, PathInfo};
pub use store_path::StorePath;
