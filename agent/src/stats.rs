//! Node stats from sysinfo: CPU, memory, disk of Docker's data root, load, uptime, OS.
//!
//! sysinfo reads `/proc` synchronously, so [`NodeSampler::sample`] is meant for
//! `spawn_blocking`.

use berth_proto::v1 as pb;
use std::path::Path;
use sysinfo::{Disks, System};

/// The machine's cores and memory: what the scheduler may place here unless told otherwise.
pub fn machine_capacity() -> (f64, u64) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0);
    let memory = System::new()
        .map(|mut s| {
            s.refresh_memory();
            s.total_memory()
        })
        .unwrap_or(0);
    (cores, memory)
}

pub struct NodeSampler {
    system: Option<System>,
    disks: Option<Disks>,
    os: String,
    kernel: String,
    cores: u32,
}

impl Default for NodeSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeSampler {
    pub fn new() -> Self {
        let mut system = System::new().ok();
        if let Some(s) = system.as_mut() {
            // The first CPU reading is a baseline; usage is the difference to the next one.
            s.refresh_cpu_usage();
        }
        let cores = system
            .as_ref()
            .map(|s| s.cpus().len() as u32)
            .filter(|c| *c > 0)
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get() as u32)
                    .unwrap_or(1)
            });
        Self {
            system,
            disks: Disks::new_with_refreshed_list().ok(),
            os: System::long_os_version().unwrap_or_default(),
            kernel: System::kernel_version().unwrap_or_default(),
            cores,
        }
    }

    /// Refreshes and reads. `disk_path` is the directory whose file system is reported.
    pub fn sample(&mut self, disk_path: &Path) -> pb::NodeStats {
        let mut stats = pb::NodeStats {
            cores: self.cores,
            os: self.os.clone(),
            kernel: self.kernel.clone(),
            ..Default::default()
        };
        if let Some(s) = self.system.as_mut() {
            s.refresh_cpu_usage();
            s.refresh_memory();
            stats.cpu_percent = f64::from(s.global_cpu_usage());
            stats.memory_used_bytes = s.used_memory();
            stats.memory_total_bytes = s.total_memory();
        }
        if let Ok(load) = System::load_average() {
            stats.load1 = load.one;
            stats.load5 = load.five;
            stats.load15 = load.fifteen;
        }
        stats.uptime_secs = System::uptime().unwrap_or(0);
        if let Some(disks) = self.disks.as_mut() {
            disks.refresh(true);
            // The file system holding the path is the disk with the longest matching mount point.
            let best = disks
                .iter()
                .filter(|d| disk_path.starts_with(d.mount_point()))
                .max_by_key(|d| d.mount_point().as_os_str().len());
            if let Some(d) = best {
                stats.disk_total_bytes = d.total_space();
                stats.disk_used_bytes = d.total_space().saturating_sub(d.available_space());
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_machine() {
        let mut s = NodeSampler::new();
        let stats = s.sample(Path::new("/"));
        assert!(stats.cores >= 1);
        assert!(stats.memory_total_bytes > 0);
        assert!(stats.memory_used_bytes <= stats.memory_total_bytes);
        assert!(
            stats.disk_total_bytes > 0,
            "the root file system has a size"
        );
        assert!(stats.uptime_secs > 0);
        assert!(!stats.kernel.is_empty());
    }
}
