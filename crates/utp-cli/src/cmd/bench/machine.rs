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

/// The share of the CPU time the hypervisor may steal before the report
/// warns (a run) or marks a point: a vCPU that is not running when its peer
/// wakes it adds the host's scheduling delay to every blocking round trip,
/// and a spinning side loses whole slices.
pub const STEAL_WARNING: f64 = 0.05;

/// A share (0 to 1) as a percentage with one decimal, as the JSON gives it.
pub fn percent(share: f64) -> f64 {
    (share * 1000.0).round() / 10.0
}

/// The CPU time of the whole machine so far, from the `cpu` line of
/// /proc/stat, in clock ticks: all of it, and the part a virtual machine's
/// CPUs were ready to run but the hypervisor ran something else (steal).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuTimes {
    /// Ticks stolen by the hypervisor (0 on bare metal).
    pub steal: u64,
    /// user + nice + system + idle + iowait + irq + softirq + steal.
    pub total: u64,
}

impl CpuTimes {
    /// Reads /proc/stat; `None` where it cannot be read or parsed.
    pub fn now() -> Option<CpuTimes> {
        CpuTimes::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    fn parse(stat: &str) -> Option<CpuTimes> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        // user nice system idle iowait irq softirq steal (guest time is
        // already counted in user and nice).
        let ticks: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        (ticks.len() == 8).then(|| CpuTimes {
            steal: ticks[7],
            total: ticks.iter().sum(),
        })
    }

    /// The share (0 to 1) of the CPU time from `self` to `later` that the
    /// hypervisor gave to other work; `None` if no time passed.
    pub fn steal_share(self, later: CpuTimes) -> Option<f64> {
        StealTally::default().add(self, later).share()
    }
}

/// Steal time added up over several spans (the runs of one point), so a
/// point's share weighs each run by its length.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StealTally {
    steal: u64,
    total: u64,
}

impl StealTally {
    /// Adds the span from `start` to `end` (readings of /proc/stat); a
    /// span whose counters went backwards adds nothing.
    pub fn add(mut self, start: CpuTimes, end: CpuTimes) -> Self {
        if let Some(total) = end.total.checked_sub(start.total) {
            self.total += total;
            self.steal += end.steal.saturating_sub(start.steal).min(total);
        }
        self
    }

    /// The stolen share of the time added; `None` if none was.
    pub fn share(self) -> Option<f64> {
        (self.total > 0).then(|| self.steal as f64 / self.total as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_share_is_the_stolen_part_of_the_time_between_two_readings() {
        let at = |stat: &str| CpuTimes::parse(stat).unwrap();
        let start = at("cpu  100 0 50 800 10 0 20 20 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n");
        assert_eq!(
            start,
            CpuTimes {
                steal: 20,
                total: 1000
            }
        );
        // 1000 more ticks, 150 of them stolen.
        let later = at("cpu  400 0 150 1250 10 0 20 170 0 0\n");
        assert_eq!(start.steal_share(later), Some(0.15));
        assert_eq!(start.steal_share(start), None, "no time passed");
        // A kernel without the steal column, or garbage: not read.
        assert_eq!(CpuTimes::parse("cpu  1 2 3 4 5 6 7\n"), None);
        assert_eq!(CpuTimes::parse("cpu  1 2 x 4 5 6 7 8\n"), None);
        assert_eq!(CpuTimes::parse("intr 1 2 3\n"), None);
    }

    #[test]
    fn a_tally_weighs_each_span_by_its_length() {
        let at = |steal, total| CpuTimes { steal, total };
        // 10 of 100 ticks stolen, then none of 300: 2.5 % over the point,
        // not the 5 % an average of the two shares would give.
        let tally = StealTally::default()
            .add(at(0, 0), at(10, 100))
            .add(at(10, 100), at(10, 400));
        assert_eq!(tally.share(), Some(0.025));
        // Counters that went backwards (a reading from another boot, or
        // garbage) add nothing; steal never counts for more than the span.
        let odd = StealTally::default()
            .add(at(0, 500), at(0, 400))
            .add(at(0, 0), at(90, 50));
        assert_eq!(odd.share(), Some(1.0));
        assert_eq!(StealTally::default().share(), None, "no time added");
        assert_eq!(percent(0.12345), 12.3);
    }

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
