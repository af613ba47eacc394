//! Closure → OCI image: the closure's store paths as layers, the process
//! as the image config, and what Nix and nucleus know as annotations.
//!
//! ```text
//! Closure ─► layers::group ─► [LayerSource]   (popular paths one per layer, the rest together, a root layer)
//! LayerSource ─► layer::write_layer           (deterministic tar, narHash checked on the way)
//! layers + RunRequest ─► oci documents        (config, manifest, index: canonical JSON)
//! documents + layers ─► output                (layout directory or oci-archive, written safely)
//! ```
//!
//! The image is reproducible: its digest (the manifest's) depends on the
//! closure and the options only. Layers carry no time, owner or host
//! metadata (see [`layer`] and [`tar`]); the JSON documents are canonical;
//! the one name that is not a function of the content, the ref name in
//! `index.json`, is outside the manifest, so it never changes the digest.
//! The default ref name is itself derived from the digest.

pub mod layer;
pub mod layers;
pub mod nar_stream;
pub mod oci;
pub mod output;
pub mod tar;
pub mod verify;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::Value;

use crate::nix::Closure;
use crate::request::RunRequest;
use crate::rootfs::RootfsPlan;
use crate::{Error, Result};
use layer::{Blob, LayerSource, RootEntries};
use oci::Document;

pub use output::Output;

/// What an image is made from: the same values a bundle is made from, and
/// the bundle's digest.
pub struct ImageInput<'a> {
    pub request: &'a RunRequest,
    pub closure: &'a Closure,
    pub rootfs: &'a RootfsPlan,
    pub command: &'a [String],
    pub bundle_digest: &'a str,
    pub max_layers: usize,
}

/// Every decision about the image, before any layer is read.
#[derive(Debug)]
pub struct ImagePlan {
    /// Bottom first; the last is the root layer.
    pub layers: Vec<LayerSource>,
    /// The image config without its diff_ids.
    config: Value,
    annotations: BTreeMap<String, String>,
    /// For the default name.
    package: String,
}

/// The JSON documents of a finished image.
#[derive(Debug)]
pub struct Documents {
    pub config: Document,
    pub manifest: Document,
    pub index: Document,
    /// The ref name in index.json.
    pub reference: String,
}

impl Documents {
    /// The image digest: the manifest's.
    pub fn image_digest(&self) -> &str {
        &self.manifest.blob.digest
    }
}

impl ImagePlan {
    pub fn new(input: &ImageInput<'_>) -> Result<ImagePlan> {
        check_request(input.request)?;
        let mut layers: Vec<LayerSource> =
            layers::group(input.closure, input.max_layers).into_iter().map(LayerSource::Store).collect();
        let links: Vec<(String, PathBuf)> = input
            .rootfs
            .system
            .iter()
            .map(|bind| (bind.destination.trim_start_matches('/').to_string(), bind.source.clone()))
            .collect();
        let directories = workdir_directories(&input.request.workdir, &links);
        layers.push(LayerSource::Root(RootEntries { links, directories }));
        let annotations = BTreeMap::from([
            (oci::ANNOTATION_BUNDLE_DIGEST.to_string(), input.bundle_digest.to_string()),
            (oci::ANNOTATION_CLOSURE_ROOT.to_string(), input.closure.root.to_string()),
        ]);
        let process =
            oci::ProcessConfig { request: input.request, command: input.command, labels: annotations.clone() };
        Ok(ImagePlan {
            layers,
            config: oci::config(&process, &[]),
            annotations,
            package: input.closure.root.package_name().to_string(),
        })
    }

    /// Runs `work` on every layer, on every core, biggest layers first;
    /// results come back in layer order, or the first layer's error.
    pub fn for_each_layer<T: Send>(&self, work: impl Fn(usize, &LayerSource) -> Result<T> + Sync) -> Result<Vec<T>> {
        let mut order: Vec<usize> = (0..self.layers.len()).collect();
        order.sort_by_key(|i| std::cmp::Reverse(self.layers[*i].weight()));
        let results: Mutex<Vec<Option<Result<T>>>> = Mutex::new((0..self.layers.len()).map(|_| None).collect());
        let next = AtomicUsize::new(0);
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(self.layers.len()).max(1);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let result = work(i, &self.layers[i]);
                        let failed = result.is_err();
                        if let Ok(mut all) = results.lock() {
                            all[i] = Some(result);
                        }
                        if failed {
                            // Stop handing out layers; the others finish theirs.
                            next.store(order.len(), Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let results = results.into_inner().map_err(|_| Error::Plan { reason: "a layer's worker panicked".into() })?;
        let mut out = Vec::with_capacity(results.len());
        let mut first_error = None;
        for result in results {
            match result {
                Some(Ok(value)) => out.push(value),
                Some(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                None => {}
            }
        }
        match first_error {
            Some(e) => Err(e),
            None if out.len() == self.layers.len() => Ok(out),
            None => Err(Error::Plan { reason: "a layer was not made".into() }),
        }
    }

    /// The layers' digests, computed without writing anything: what
    /// `nucleus kube` needs for the default image name.
    pub fn digest_layers(&self) -> Result<Vec<Blob>> {
        self.for_each_layer(|_, source| layer::write_layer(source, std::io::sink(), layer::NarCheck::Check))
    }

    /// The config, manifest and index for layers with these digests.
    pub fn documents(&self, layers: &[Blob], reference: Option<&str>) -> Result<Documents> {
        let mut config = self.config.clone();
        config["rootfs"]["diff_ids"] = Value::from(layers.iter().map(|b| b.digest.clone()).collect::<Vec<_>>());
        let config = Document::new(&config)?;
        let descriptors = self
            .layers
            .iter()
            .zip(layers)
            .map(|(source, blob)| match source {
                LayerSource::Store(paths) => oci::layer_descriptor(blob, paths),
                LayerSource::Root(_) => oci::layer_descriptor(blob, &[]),
            })
            .collect::<Result<Vec<_>>>()?;
        let manifest = Document::new(&oci::manifest(&config.blob, descriptors, &self.annotations))?;
        let reference = match reference {
            Some(reference) => reference.to_string(),
            None => oci::default_reference(&self.package, &manifest.blob.digest),
        };
        let index = Document::new(&oci::index(&manifest.blob, &reference))?;
        Ok(Documents { config, manifest, index, reference })
    }
}

/// The working directory and its parents, for the root layer, unless it is
/// `/`, in the store, in `/tmp` or below one of the links (which lead into
/// the read-only store): a runtime need not create it in a read-only root.
fn workdir_directories(workdir: &str, links: &[(String, PathBuf)]) -> Vec<String> {
    let relative = workdir.trim_matches('/');
    let Some(first) = relative.split('/').next().filter(|f| !f.is_empty()) else { return Vec::new() };
    if first == "nix" || first == "tmp" || links.iter().any(|(name, _)| name == first) {
        return Vec::new();
    }
    let parts: Vec<&str> = relative.split('/').collect();
    (1..=parts.len()).map(|n| parts[..n].join("/")).collect()
}

/// Options that only a runtime on this host can carry out have no place in
/// an image: refused, rather than silently left out.
pub fn check_request(req: &RunRequest) -> Result<()> {
    let refuse = |option: &str, why: &str| Err(Error::invalid(option, why.to_string()));
    if req.hooks.is_some() {
        return refuse("--hooks", "hooks run on the host that launches the sandbox; an image cannot carry them");
    }
    if !req.secrets.is_empty() {
        return refuse(
            "--secret",
            "an image cannot carry secrets; give them to the runtime (Kubernetes: a Secret volume)",
        );
    }
    if req.rootless {
        return refuse("--rootless", "it is a way of launching runsc on this host, not part of an image");
    }
    if req.platform.is_some() {
        return refuse("--platform", "the runsc platform is chosen by each node's runtime, not by the image");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workdir_is_a_directory_of_the_root_layer_where_it_can_be() {
        let links = vec![("bin".to_string(), PathBuf::from("/nix/store/x-hello/bin"))];
        assert_eq!(workdir_directories("/srv/app/data", &links), ["srv", "srv/app", "srv/app/data"]);
        for inside in ["/", "/tmp/x", "/bin/sub", "/nix/store"] {
            assert!(workdir_directories(inside, &links).is_empty(), "{inside}");
        }
    }
}
