//! Releasing the cgroups runsc made for a container. runsc removes them
//! when it deletes a container, but not when its supervisor is killed; so
//! every path that discards a container removes them here, by the path
//! recorded when the name was reserved.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Mountpoints of every cgroup hierarchy (v1 controllers and v2).
fn hierarchies() -> Vec<PathBuf> {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else { return Vec::new() };
    mountinfo
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fstype = after.split_whitespace().next()?;
            let mountpoint = before.split_whitespace().nth(4)?;
            matches!(fstype, "cgroup" | "cgroup2").then(|| PathBuf::from(unescape(mountpoint)))
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
fn unescape(field: &str) -> String {
    field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
}

/// How long a cgroup may keep processes that are already dying: a killed
/// supervisor takes its pid namespace with it, but the kernel ends a
/// sandbox of many threads over some milliseconds, and rmdir refuses a
/// cgroup until its last process is gone.
const DYING_PROCESSES_LIMIT: Duration = Duration::from_secs(5);

/// Removes `cgroups_path` (one of nucleus's own, `/nucleus-…`) from every
/// hierarchy, innermost directories first, waiting a little for processes
/// that are on their way out. A cgroup whose processes live on stays.
pub fn release(cgroups_path: &str) {
    let Some(name) =
        cgroups_path.strip_prefix('/').filter(|n| n.starts_with("nucleus-") && !n.contains('/') && !n.contains(".."))
    else {
        tracing::warn!(cgroups_path, "not a cgroup path nucleus makes; left alone");
        return;
    };
    let deadline = Instant::now() + DYING_PROCESSES_LIMIT;
    loop {
        let mut left = false;
        for hierarchy in hierarchies() {
            let dir = hierarchy.join(name);
            remove_tree(&dir);
            left |= dir.exists();
        }
        if !left || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn remove_tree(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path());
        }
    }
    if let Err(e) = std::fs::remove_dir(dir) {
        tracing::debug!(dir = %dir.display(), "cgroup not removed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nucleus_cgroups_are_touched() {
        // Nothing to remove, and paths that are not nucleus's are refused
        // before any hierarchy is looked at.
        release("/nucleus-0123456789ab-none-such");
        release("/system.slice");
        release("/nucleus-x/../../system.slice");
        assert_eq!(unescape("/sys/fs/cgroup/a\\040b"), "/sys/fs/cgroup/a b");
    }
}
