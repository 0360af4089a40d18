//! Runs of the replication simulation (`sim`): default seeds in `cargo test`, many more in
//! `make soak`, and the known bugs it must find.

use super::sim::{Bugs, Sim, SimConfig, SimStats, Violation};

/// The seeds every `cargo test` runs.
const DEFAULT_SEEDS: std::ops::Range<u64> = 1..41;

fn run(seed: u64, config: SimConfig) -> Result<SimStats, Violation> {
    Sim::new(seed, config).run()
}

/// Proves Kafka's replication invariants hold for 3 and 5 replicas under drops, delays,
/// duplicates, cut-off replicas and crashes that lose unwritten records, and that the
/// healed cluster converges with every acknowledged record.
#[test]
fn replication_keeps_kafkas_invariants() {
    let mut totals = SimStats::default();
    for seed in DEFAULT_SEEDS {
        for replicas in [3, 5] {
            let config = SimConfig {
                replicas,
                ..SimConfig::default()
            };
            match run(seed, config) {
                Ok(stats) => {
                    totals.acknowledged += stats.acknowledged;
                    totals.crashes += stats.crashes;
                    totals.elections += stats.elections;
                    totals.truncations += stats.truncations;
                    totals.late_answers_dropped += stats.late_answers_dropped;
                }
                Err(violation) => panic!("seed {seed}, {replicas} replicas: {violation:?}"),
            }
        }
    }
    eprintln!("{totals:?}");
    // The runs did what they are for: many acknowledged writes, crashes, elections,
    // truncations of diverged suffixes and late answers dropped.
    assert!(totals.acknowledged > 10_000, "{totals:?}");
    assert!(totals.crashes > 50 && totals.elections > 100, "{totals:?}");
    assert!(
        totals.truncations > 10 && totals.late_answers_dropped > 10,
        "{totals:?}"
    );
}

/// Runs the bug `bugs` puts back over the default seeds with 3 and 5 replicas and checks it is
/// found as committed records missing from a replica the controller may elect.
fn assert_found(bugs: Bugs) {
    let found = DEFAULT_SEEDS.into_iter().find_map(|seed| {
        [3, 5].into_iter().find_map(|replicas| {
            let config = SimConfig {
                replicas,
                bugs,
                ..SimConfig::default()
            };
            let found = run(seed, config).err();
            found.map(|violation| (seed, replicas, violation))
        })
    });
    eprintln!("{bugs:?}: first found as {found:?}");
    assert!(
        matches!(
            found,
            Some((_, _, Violation::CommittedMissingFromIsr { .. }))
        ),
        "{found:?}"
    );
}

/// Proves the simulation finds a follower that reports records before they are written: the
/// leader counts them as committed while a crash of the follower, which the controller may
/// elect, would take them back.
#[test]
fn finds_unwritten_appends_counted() {
    assert_found(Bugs {
        report_unwritten: true,
        ..Bugs::default()
    });
}

/// Proves the simulation finds a leader forgetting an ISR change the controller may have
/// made (its answer lost, the retry refused as stale): the high watermark then passes a
/// replica the controller may elect. `Shard::alter_isr` did this until the simulation
/// found it.
#[test]
fn finds_pending_isr_forgotten() {
    assert_found(Bugs {
        forget_pending_isr_on_failure: true,
        ..Bugs::default()
    });
}

/// Many more seeds, longer runs, with 3, 4 and 5 replicas (`make soak`).
#[test]
#[ignore]
fn soak_replication_many_seeds() {
    for seed in 1000..3000 {
        for replicas in [3, 4, 5] {
            let config = SimConfig {
                replicas,
                fault_ticks: 10_000,
                ..SimConfig::default()
            };
            if let Err(violation) = run(seed, config) {
                panic!("seed {seed}, {replicas} replicas: {violation:?}");
            }
        }
    }
}

/// Replays one run with its last events printed, failing if it breaks an invariant:
/// `SIM_SEED=1892 SIM_REPLICAS=4 SIM_TICKS=10000 cargo test --release --lib replay_one_seed --
/// --ignored --nocapture` (the soak's seeds run `SIM_TICKS=10000`).
#[test]
#[ignore]
fn replay_one_seed() {
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(default)
    };
    let config = SimConfig {
        replicas: number("SIM_REPLICAS", 3) as usize,
        fault_ticks: number("SIM_TICKS", 3_000),
        trace: true,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(number("SIM_SEED", 1), config);
    let outcome = sim.run_traced();
    let shown = number("SIM_EVENTS", 200) as usize;
    for event in sim.events.iter().rev().take(shown).rev() {
        eprintln!("{event}");
    }
    eprintln!("{outcome:?}");
    assert!(outcome.is_ok(), "{outcome:?}");
}
