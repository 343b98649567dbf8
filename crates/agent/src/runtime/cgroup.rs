//! Resource limits through cgroups, v2 where the unified hierarchy has the controllers, else the
//! v1 controllers (hosts in "hybrid" mode, like this one, have v1 `memory`, `cpu` and `pids`),
//! and device access through the v1 `devices` controller: a container may open only the
//! devices of its own `/dev` (runc's default list; block devices may not even be made), a
//! privileged one every device. (On v2 the equivalent is a BPF program Ordinal does not load
//! yet; there a container is held to its private `/dev` and its capabilities alone.)
//! Each container gets `<parent>/<pod-uid>/<container>`; the shim writes itself into the
//! `cgroup.procs` files before it starts anything.

use std::fs;
use std::path::{Path, PathBuf};

/// Limits of one container, from `resources.limits`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    /// CPU in millicores.
    pub cpu_millis: Option<u64>,
    pub pids: Option<u64>,
    /// Every device (a privileged container), not only the default ones.
    pub all_devices: bool,
}

/// The devices a container may use (v1 `devices.allow` lines): runc's defaults, less making
/// block devices (`b *:* m`), which a container has no use for.
const DEFAULT_DEVICES: [&str; 11] = [
    "c *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
    "c 10:200 rwm",
];

const CFS_PERIOD_US: u64 = 100_000;

/// Quota for `millis` of CPU per CFS period, as kubelet computes it (minimum 1ms).
pub fn cpu_quota_us(millis: u64) -> u64 {
    (millis * CFS_PERIOD_US / 1000).max(1000)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// Unified hierarchy at this root.
    V2(PathBuf),
    /// v1: controller name → its hierarchy root.
    V1(Vec<(&'static str, PathBuf)>),
}

#[derive(Debug, Clone)]
pub struct Cgroups {
    pub hierarchy: Hierarchy,
    /// Path under each root where this server's pods live (e.g. `ordinal`).
    pub parent: String,
}

impl Cgroups {
    /// What this machine offers, or None (no usable controllers; limits are then not enforced).
    pub fn detect(parent: &str) -> Option<Cgroups> {
        let base = Path::new("/sys/fs/cgroup");
        let unified = fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
        let hierarchy = if unified.split_whitespace().any(|c| c == "memory") {
            Hierarchy::V2(base.to_path_buf())
        } else {
            let v1: Vec<(&'static str, PathBuf)> = ["memory", "cpu", "pids", "devices"]
                .into_iter()
                .filter_map(|c| {
                    let dir = base.join(c);
                    dir.join("cgroup.procs").exists().then_some((c, dir))
                })
                .collect();
            if v1.is_empty() {
                return None;
            }
            Hierarchy::V1(v1)
        };
        Some(Cgroups { hierarchy, parent: parent.trim_matches('/').to_string() })
    }

    fn dirs(&self, relative: &str) -> Vec<(&'static str, PathBuf)> {
        let rel = format!("{}/{}", self.parent, relative.trim_matches('/'));
        match &self.hierarchy {
            Hierarchy::V2(root) => vec![("unified", root.join(&rel))],
            Hierarchy::V1(roots) => roots.iter().map(|(c, root)| (*c, root.join(&rel))).collect(),
        }
    }

    /// Create the container's cgroups with its limits; returns the `cgroup.procs` files to join.
    pub fn create(&self, relative: &str, limits: &Limits) -> std::io::Result<Vec<PathBuf>> {
        let mut procs = Vec::new();
        if let Hierarchy::V2(root) = &self.hierarchy {
            enable_v2_controllers(root, &format!("{}/{}", self.parent, relative.trim_matches('/')))?;
        }
        for (controller, dir) in self.dirs(relative) {
            fs::create_dir_all(&dir)?;
            let write = |file: &str, value: String| fs::write(dir.join(file), value);
            match controller {
                "memory" => {
                    if let Some(bytes) = limits.memory_bytes {
                        write("memory.limit_in_bytes", bytes.to_string())?;
                    }
                }
                "cpu" => {
                    if let Some(millis) = limits.cpu_millis {
                        write("cpu.cfs_period_us", CFS_PERIOD_US.to_string())?;
                        write("cpu.cfs_quota_us", cpu_quota_us(millis).to_string())?;
                    }
                }
                "pids" => {
                    if let Some(n) = limits.pids {
                        write("pids.max", n.to_string())?;
                    }
                }
                "devices" => {
                    if limits.all_devices {
                        write("devices.allow", "a".into())?;
                    } else {
                        write("devices.deny", "a".into())?;
                        for rule in DEFAULT_DEVICES {
                            write("devices.allow", rule.into())?;
                        }
                    }
                }
                _ => {
                    if let Some(bytes) = limits.memory_bytes {
                        write("memory.max", bytes.to_string())?;
                        write("memory.swap.max", "0".into())?;
                    }
                    if let Some(millis) = limits.cpu_millis {
                        write("cpu.max", format!("{} {CFS_PERIOD_US}", cpu_quota_us(millis)))?;
                    }
                    if let Some(n) = limits.pids {
                        write("pids.max", n.to_string())?;
                    }
                }
            }
            procs.push(dir.join("cgroup.procs"));
        }
        Ok(procs)
    }

    /// Did the kernel's OOM killer kill a process of this cgroup?
    pub fn oom_killed(&self, relative: &str) -> bool {
        self.dirs(relative).iter().any(|(controller, dir)| {
            let file = match *controller {
                "memory" => "memory.oom_control",
                "unified" => "memory.events",
                _ => return false,
            };
            fs::read_to_string(dir.join(file)).is_ok_and(|text| {
                text.lines()
                    .any(|l| l.strip_prefix("oom_kill ").is_some_and(|n| n.trim().parse::<u64>().unwrap_or(0) > 0))
            })
        })
    }

    /// Kill what is left in the cgroup and remove it (and the pod's directory when empty).
    pub fn remove(&self, relative: &str) {
        for (_, dir) in self.dirs(relative) {
            remove_tree(&dir);
        }
    }

    /// Remove every cgroup under the parent (server stop with `--stop-pods`, test cleanup).
    pub fn remove_all(&self) {
        for (_, dir) in self.dirs("") {
            remove_tree(&dir);
        }
    }
}

fn remove_tree(dir: &Path) {
    if !dir.exists() {
        return;
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
    // A cgroup can be removed only once its killed processes are gone; they go within moments.
    for _ in 0..200 {
        match fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => std::thread::sleep(std::time::Duration::from_millis(5)),
            Err(_) => return,
        }
    }
}

/// On v2, each ancestor must delegate memory, cpu and pids to its children.
fn enable_v2_controllers(root: &Path, relative: &str) -> std::io::Result<()> {
    let mut dir = root.to_path_buf();
    let parts: Vec<&str> = relative.split('/').filter(|p| !p.is_empty()).collect();
    for part in parts {
        let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let wanted: Vec<String> = ["memory", "cpu", "pids"]
            .iter()
            .filter(|c| available.split_whitespace().any(|a| a == **c))
            .map(|c| format!("+{c}"))
            .collect();
        if !wanted.is_empty() {
            let _ = fs::write(dir.join("cgroup.subtree_control"), wanted.join(" "));
        }
        dir = dir.join(part);
        fs::create_dir_all(&dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quota_follows_kubelet() {
        assert_eq!(cpu_quota_us(500), 50_000);
        assert_eq!(cpu_quota_us(2000), 200_000);
        assert_eq!(cpu_quota_us(1), 1000, "kubelet's minimum quota");
    }
}
