//! The machine a run happened on: CPU model, cores, kernel, virtualisation.

use serde::Serialize;

/// What is recorded about the machine.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Logical CPUs (`processor` entries in /proc/cpuinfo).
    pub cores: usize,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Whether the CPU reports the `hypervisor` flag (a virtual machine).
    pub virtualized: bool,
    /// The hypervisor's name, where the kernel tells it.
    pub hypervisor: Option<String>,
    /// /proc/loadavg when the run started: other work on the machine skews figures.
    pub loadavg_at_start: String,
}

impl Machine {
    /// Reads the machine's description from /proc and /sys.
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Machine::from_cpuinfo(&cpuinfo)
    }

    fn from_cpuinfo(cpuinfo: &str) -> Machine {
        let field = |name: &str| {
            cpuinfo.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_string())
            })
        };
        let virtualized =
            field("flags").is_some_and(|flags| flags.split_whitespace().any(|f| f == "hypervisor"));
        let hypervisor = ["/sys/hypervisor/type", "/sys/class/dmi/id/sys_vendor"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| virtualized && !s.is_empty());
        Machine {
            cpu_model: field("model name").unwrap_or_else(|| "unknown".into()),
            cores: cpuinfo
                .lines()
                .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
                .count()
                .max(1),
            kernel: rustix::system::uname()
                .release()
                .to_string_lossy()
                .into_owned(),
            virtualized,
            hypervisor,
            loadavg_at_start: loadavg(),
        }
    }

    /// One line for the terminal.
    pub fn summary(&self) -> String {
        format!(
            "{} · {} cores · Linux {} · {}",
            self.cpu_model,
            self.cores,
            self.kernel,
            match (&self.hypervisor, self.virtualized) {
                (Some(h), _) => format!("virtualised ({h})"),
                (None, true) => "virtualised".into(),
                (None, false) => "bare metal".into(),
            }
        )
    }
}

/// The first three fields of /proc/loadavg (1, 5, 15 minutes).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_model_and_hypervisor_flag() {
        let m = Machine::from_cpuinfo(
            "processor\t: 0\nprocessor\t: 1\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse hypervisor avx\n",
        );
        assert_eq!(m.cpu_model, "AMD EPYC 9B14");
        assert!(m.virtualized);
        assert_eq!(m.cores, 2);
        let bare = Machine::from_cpuinfo("model name : X\nflags : fpu sse\n");
        assert!(!bare.virtualized);
        assert!(bare.hypervisor.is_none());
    }
}
