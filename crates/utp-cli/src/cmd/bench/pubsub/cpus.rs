//! Which CPU the publisher and each subscriber process run on.
//!
//! Cross-core (the default): the publisher on the first allowed CPU, the
//! subscribers spread round-robin over the other allowed CPUs (on a 2-CPU
//! machine: all of them on the second). Every process is pinned: left to
//! the scheduler, spinning processes get packed onto one CPU and a
//! latency becomes a scheduler time slice. Same-core puts everyone on the
//! first CPU; unpinned pins nobody (both only to show what that costs).

use crate::cmd::bench::placement::{Placement, away_from_first};

/// Where every process of a pub/sub run goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The publisher's CPU (`None`: not pinned).
    pub publisher: Option<usize>,
    /// Subscriber `i`'s CPU (`None`: not pinned).
    pub subscribers: Vec<Option<usize>>,
}

/// Assigns `count` subscribers under `placement`, given the CPUs the bench
/// may use (`allowed`, in ascending order, as read before any pinning).
pub fn assign(placement: Placement, allowed: &[usize], count: usize) -> Assignment {
    let first = allowed.first().copied().unwrap_or(0);
    match placement {
        Placement::Unpinned => Assignment {
            publisher: None,
            subscribers: vec![None; count],
        },
        Placement::SameCore => Assignment {
            publisher: Some(first),
            subscribers: vec![Some(first); count],
        },
        Placement::CrossCore => {
            let subscribers = (0..count)
                .map(|i| Some(away_from_first(allowed, i).unwrap_or(first)))
                .collect();
            Assignment {
                publisher: Some(first),
                subscribers,
            }
        }
    }
}

impl Assignment {
    /// Most subscribers sharing one CPU (what their waiting policy must survive).
    pub fn most_per_cpu(&self) -> usize {
        let mut counts = std::collections::HashMap::new();
        for cpu in &self.subscribers {
            *counts.entry(*cpu).or_insert(0usize) += 1;
        }
        counts.values().copied().max().unwrap_or(0)
    }

    /// Subscribers pinned to the same CPU as subscriber `i`, itself
    /// included (unpinned ones count as sharing with every other unpinned one).
    pub fn sharing(&self, i: usize) -> usize {
        let me = self.subscribers.get(i).copied().flatten();
        self.subscribers.iter().filter(|&&c| c == me).count()
    }

    /// One line for the report, e.g. `publisher CPU 0, subscribers CPU 1, 1, 1, 1`.
    pub fn describe(&self) -> String {
        let cpu = |c: &Option<usize>| c.map_or("any".to_string(), |c| c.to_string());
        let subs: Vec<String> = self.subscribers.iter().map(cpu).collect();
        format!(
            "publisher CPU {}, subscribers CPU {}",
            cpu(&self.publisher),
            subs.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_cpus_put_the_publisher_first_and_every_subscriber_on_the_second() {
        let a = assign(Placement::CrossCore, &[0, 1], 4);
        assert_eq!(a.publisher, Some(0));
        assert_eq!(a.subscribers, vec![Some(1); 4]);
        assert_eq!(a.most_per_cpu(), 4);
        assert_eq!(a.sharing(3), 4);
        assert_eq!(assign(Placement::CrossCore, &[0, 1], 1).sharing(0), 1);
    }

    #[test]
    fn more_cpus_spread_subscribers_round_robin_away_from_the_publisher() {
        let a = assign(Placement::CrossCore, &[2, 3, 5, 7], 4);
        assert_eq!(a.publisher, Some(2));
        assert_eq!(a.subscribers, vec![Some(3), Some(5), Some(7), Some(3)]);
        assert_eq!(a.most_per_cpu(), 2);
        assert_eq!((a.sharing(0), a.sharing(1), a.sharing(3)), (2, 1, 2));
        let b = assign(Placement::CrossCore, &(0..8).collect::<Vec<_>>(), 4);
        assert_eq!(b.subscribers, vec![Some(1), Some(2), Some(3), Some(4)]);
        assert_eq!(b.most_per_cpu(), 1);
    }

    #[test]
    fn a_single_cpu_shares_it_and_other_placements_do_what_they_say() {
        let one = assign(Placement::CrossCore, &[4], 2);
        assert_eq!(
            (one.publisher, one.subscribers),
            (Some(4), vec![Some(4); 2])
        );
        let same = assign(Placement::SameCore, &[1, 2], 2);
        assert_eq!(same.subscribers, vec![Some(1); 2]);
        let free = assign(Placement::Unpinned, &[0, 1], 2);
        assert_eq!((free.publisher, free.subscribers), (None, vec![None; 2]));
        assert_eq!(
            assign(Placement::CrossCore, &[0, 1], 2).describe(),
            "publisher CPU 0, subscribers CPU 1, 1"
        );
    }
}
