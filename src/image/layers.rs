//! Which store paths go into which layer.
//!
//! A runtime stacks at most about 125 layers (overlayfs's limit on lower
//! directories, which Docker's and containerd's snapshotters inherit), so a
//! closure of thousands of paths cannot have one layer per path. nixpkgs'
//! `streamLayeredImage` settled how to spend a budget of layers, and this
//! follows it:
//!
//! - Each path's **popularity** is the number of paths in the closure whose
//!   own closure contains it. glibc, bash, coreutils and the like are at
//!   the top, the application itself (referenced by nothing) at the bottom.
//! - The most popular paths get **a layer each**, in that order; whatever
//!   is left shares **one last layer**. A fixed budget of layers is then
//!   spent where reuse is likeliest.
//!
//! A layer holding one store path is a pure function of that path (see
//! [`super::layer`]): the same bytes and digest in every image that holds
//! the path. Two images of related closures therefore share the layers of
//! every popular path they have in common, whatever else differs, and a
//! registry, `podman load` or containerd stores and moves those once. Only
//! the shared last layer mixes paths; it holds the least popular ones
//! (the application and what only it uses), which change together anyway.
//! Among equally popular paths the bigger comes first, since a layer of its
//! own spares more bytes when it is shared; then the store path decides, so
//! the order is the same on every machine. Popular paths come first, so the
//! bottom of the stack (and so the runtimes' snapshot chain) is also the
//! part images share.

use crate::nix::{Closure, PathInfo, StorePath};

/// The most layers an image gets by default, as in `streamLayeredImage`.
pub const DEFAULT_MAX_LAYERS: usize = 100;
/// Overlayfs stacks at most this many lower layers in the runtimes that matter.
pub const MAX_LAYERS_LIMIT: usize = 125;
/// One layer of store paths and the root layer at least.
pub const MIN_LAYERS: usize = 2;

/// Store paths per layer, bottom first, for a budget of `max_layers`
/// layers of which one is kept for the root layer (the links that make
/// `/bin`, `/etc`, … and `/tmp`).
pub fn group(closure: &Closure, max_layers: usize) -> Vec<Vec<PathInfo>> {
    let store_layers = max_layers.max(MIN_LAYERS) - 1;
    let counts = popularity(closure);
    let mut ranked: Vec<(usize, &PathInfo)> = closure.paths.iter().zip(counts).map(|(info, n)| (n, info)).collect();
    ranked.sort_by(|a, b| {
        b.0.cmp(&a.0).then_with(|| b.1.nar_size.cmp(&a.1.nar_size)).then_with(|| a.1.path.cmp(&b.1.path))
    });
    let infos: Vec<PathInfo> = ranked.into_iter().map(|(_, info)| info.clone()).collect();
    if infos.len() <= store_layers {
        return infos.into_iter().map(|info| vec![info]).collect();
    }
    let (own, rest) = infos.split_at(store_layers - 1);
    let mut layers: Vec<Vec<PathInfo>> = own.iter().map(|info| vec![info.clone()]).collect();
    let mut rest = rest.to_vec();
    rest.sort_by(|a, b| a.path.cmp(&b.path));
    layers.push(rest);
    layers
}

/// For each path of `closure.paths` (same order), how many paths of the
/// closure (itself included) have it in their closure: a walk of the
/// references from every path, on indices, so thousands of paths take
/// milliseconds.
fn popularity(closure: &Closure) -> Vec<usize> {
    let index = |p: &StorePath| closure.paths.binary_search_by(|info| info.path.cmp(p)).ok();
    let references: Vec<Vec<usize>> =
        closure.paths.iter().map(|p| p.references.iter().filter_map(&index).collect()).collect();
    let mut count = vec![0; closure.paths.len()];
    let mut seen_from = vec![usize::MAX; closure.paths.len()];
    let mut todo = Vec::new();
    for start in 0..closure.paths.len() {
        todo.push(start);
        while let Some(i) = todo.pop() {
            if seen_from[i] == start {
                continue;
            }
            seen_from[i] = start;
            count[i] += 1;
            todo.extend(references[i].iter().copied().filter(|r| seen_from[*r] != start));
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::hash::NarHash;

    fn path(name: &str) -> StorePath {
        let hash: String = name.chars().cycle().filter(|c| c.is_ascii_lowercase()).take(32).collect();
        let hash = hash.replace(['e', 'o', 't', 'u'], "a");
        StorePath::parse(&format!("/nix/store/{hash}-{name}")).unwrap()
    }

    fn closure(edges: &[(&str, &[&str])]) -> Closure {
        let mut paths: Vec<PathInfo> = edges
            .iter()
            .map(|(name, refs)| PathInfo {
                path: path(name),
                nar_hash: NarHash([0; 32]),
                nar_size: 1,
                references: refs.iter().map(|r| path(r)).collect(),
            })
            .collect();
        paths.sort_by(|a, b| a.path.cmp(&b.path));
        Closure { root: path(edges[0].0), paths }
    }

    fn names(layers: &[Vec<PathInfo>]) -> Vec<Vec<&str>> {
        layers.iter().map(|l| l.iter().map(|p| p.path.package_name()).collect()).collect()
    }

    #[test]
    fn popular_paths_come_first_one_per_layer() {
        let c = closure(&[
            ("app", &["libfoo", "glibc", "bash"]),
            ("libfoo", &["glibc"]),
            ("bash", &["glibc"]),
            ("glibc", &[]),
        ]);
        assert_eq!(names(&group(&c, 100)), [["glibc"], ["bash"], ["libfoo"], ["app"]]);
    }

    #[test]
    fn the_rest_shares_the_last_layer_within_the_budget() {
        let c = closure(&[
            ("app", &["libfoo", "glibc", "bash", "data"]),
            ("libfoo", &["glibc"]),
            ("bash", &["glibc"]),
            ("glibc", &[]),
            ("data", &[]),
        ]);
        let layers = group(&c, 4);
        assert_eq!(layers.len(), 3, "one layer of the budget is the root layer's");
        assert_eq!(names(&layers[..2]), [["glibc"], ["bash"]]);
        assert_eq!(layers[2].len(), 3);
        assert!(group(&c, 1).len() == 1, "the smallest budget still holds every path");
        assert_eq!(group(&c, 1)[0].len(), 5);
    }

    #[test]
    fn among_equally_popular_paths_the_bigger_gets_a_layer_first() {
        let mut c = closure(&[("app", &["aaa", "zzz"]), ("aaa", &[]), ("zzz", &[])]);
        for info in &mut c.paths {
            if info.path.package_name() == "zzz" {
                info.nar_size = 1 << 20;
            }
        }
        assert_eq!(names(&group(&c, 3)), [vec!["zzz"], vec!["aaa", "app"]]);
    }

    #[test]
    fn related_closures_share_their_single_path_layers() {
        let one = closure(&[("app", &["glibc", "libfoo"]), ("libfoo", &["glibc"]), ("glibc", &[])]);
        let two = closure(&[("app", &["glibc", "libbar"]), ("libbar", &["glibc"]), ("glibc", &[])]);
        assert_eq!(group(&one, 100)[0], group(&two, 100)[0]);
    }
}
