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

/// The share of the machine's CPU time that processes other than the
/// bench and its peers may use, during the run or just before it, before
/// the report warns that the machine was busy.
pub const OTHER_WORK_WARNING: f64 = 0.10;

/// The CPU time of the whole machine so far, from the `cpu` line of
/// /proc/stat, in clock ticks: all of it, the part spent running processes,
/// and the part a virtual machine's CPUs were ready to run but the
/// hypervisor ran something else (steal).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuTimes {
    /// Ticks stolen by the hypervisor (0 on bare metal).
    pub steal: u64,
    /// user + nice + system: time spent running processes (guest time is
    /// counted in user and nice; interrupts are not counted, as the kernel
    /// does not charge them to the process they serve either).
    pub busy: u64,
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
            busy: ticks[0] + ticks[1] + ticks[2],
            total: ticks.iter().sum(),
        })
    }

    /// The share (0 to 1) of the CPU time from `self` to `later` that the
    /// hypervisor gave to other work; `None` if no time passed.
    pub fn steal_share(self, later: CpuTimes) -> Option<f64> {
        StealTally::default().add(self, later).share()
    }
}

/// The CPU time this process and the children it has waited for (the
/// peers of finished points) have used, in clock ticks, from
/// /proc/self/stat; `None` where it cannot be read or parsed.
fn own_ticks() -> Option<u64> {
    parse_own_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

fn parse_own_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces or
    // parentheses itself: the fields that follow start after the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    // After it: state (field 3) ... utime (14), stime (15), cutime (16),
    // cstime (17).
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let mut sum = 0u64;
    for field in fields.get(11..15)? {
        // cutime and cstime are signed in the kernel's format.
        sum += u64::try_from(field.parse::<i64>().ok()?).ok()?;
    }
    Some(sum)
}

/// A reading of the machine's CPU time and of the bench's own: between two
/// of them, how much went to the hypervisor's other guests (steal) and how
/// much to other processes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    machine: CpuTimes,
    /// `None` where /proc/self/stat cannot be read.
    own: Option<u64>,
}

impl Usage {
    /// Reads /proc/stat and /proc/self/stat; `None` if /proc/stat cannot
    /// be read.
    pub fn now() -> Option<Usage> {
        Some(Usage {
            machine: CpuTimes::now()?,
            own: own_ticks(),
        })
    }

    /// The share of the time from `self` to `later` the hypervisor stole
    /// (see [`CpuTimes::steal_share`]).
    pub fn steal_share(self, later: Usage) -> Option<f64> {
        self.machine.steal_share(later.machine)
    }

    /// The share (0 to 1) of all CPUs' time from `self` to `later` that
    /// went to processes other than this one and the children it waited
    /// for; `None` if no time passed or our own time is unknown. Why not
    /// the load average: it decays
    /// over minutes, so work that ended before the run (a build, an earlier
    /// run) reads as competition, and the bench's own spinning sides count
    /// in it during the run.
    pub fn others_share(self, later: Usage) -> Option<f64> {
        let total = later.machine.total.checked_sub(self.machine.total)?;
        if total == 0 {
            return None;
        }
        let busy = later.machine.busy.saturating_sub(self.machine.busy);
        let own = later.own?.saturating_sub(self.own?);
        // The two counts are kept apart by the kernel and round apart; a
        // process that ran alone can read a tick or two above the machine.
        Some(busy.saturating_sub(own).min(total) as f64 / total as f64)
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
                busy: 150,
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
    fn own_time_is_user_system_and_waited_children_after_the_name() {
        // A name with spaces and parentheses; utime 7, stime 3, cutime 20,
        // cstime 5 (fields 14-17).
        let stat =
            "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 20 5 20 0 1 0 99 1000 50";
        assert_eq!(parse_own_ticks(stat), Some(35));
        assert_eq!(parse_own_ticks("4242 (x) S 1 2"), None, "too short");
        assert_eq!(parse_own_ticks("garbage"), None);
        // This process's own reading parses.
        assert!(own_ticks().is_some());
    }

    #[test]
    fn others_share_is_the_busy_time_the_bench_did_not_use() {
        let at = |busy, total, own| Usage {
            machine: CpuTimes {
                steal: 0,
                busy,
                total,
            },
            own: Some(own),
        };
        let start = at(100, 1000, 40);
        // 400 ticks passed, 250 of them busy, 150 of those ours: 25 %.
        assert_eq!(start.others_share(at(350, 1400, 190)), Some(0.25));
        // All the busy time ours (the bench alone, however hard it spins).
        assert_eq!(start.others_share(at(500, 1400, 440)), Some(0.0));
        // Our count rounding above the machine's is not negative work.
        assert_eq!(start.others_share(at(300, 1400, 245)), Some(0.0));
        assert_eq!(start.others_share(start), None, "no time passed");
        assert_eq!(start.others_share(at(0, 0, 0)), None, "went backwards");
        let unknown = Usage { own: None, ..start };
        assert_eq!(
            unknown.others_share(at(350, 1400, 190)),
            None,
            "own time unknown"
        );
    }

    #[test]
    fn a_tally_weighs_each_span_by_its_length() {
        let at = |steal, total| CpuTimes {
            steal,
            busy: 0,
            total,
        };
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
