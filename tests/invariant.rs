//! The checkpoint rule, proven in-process and fast. Two partitions' serve loops (the batch step
//! inside them) are driven with fabricated events, a real local checkpoint store, real SQLite
//! state and dedupe stores, a recording dead-letter sink and the `test-verdicts` plugin (each
//! event carries its verdict), under tokio's paused time, so backoffs cost nothing.
//!
//! A property test draws verdicts (ok, flaky, retryable, rejected, trap, timeout) at random
//! positions, batch sizes, attempts, the failure policy, copies of events on the other partition
//! (sent at the same instant: the dedupe race) and crash points (the partitions' tasks dropped
//! mid-flight, as a killed process leaves them), and asserts after every run:
//! - the checkpoint never passes an event that was neither handled (its state write committed)
//!   nor dead-lettered, nor a copy whose key another event still holds;
//! - only an event's own verdict dead-letters it (an `ok` event never is);
//! - effects commit before the checkpoint (an `ok` event behind the checkpoint has its write);
//! - after the last run, every event after a checkpoint was delivered again: each `ok` key is
//!   handled exactly once across both partitions and every crash, and with `dead-letter` every
//!   partition is checkpointed at its end.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_messaging_eventhubs::CheckpointStore;
use hubwasm::checkpoint::local::LocalCheckpointStore;
use hubwasm::config::{FailureConfig, FailurePolicy, Mode};
use hubwasm::effects::dedupe::{Dedupe, KeySource};
use hubwasm::effects::state::StateStore;
use hubwasm::event::{Event, PartitionContext};
use hubwasm::plugin::{Limits, Plugin, PluginHandle, PluginSpec, Runtime, RuntimeOptions};
use hubwasm::processor::owned::PartitionState;
use hubwasm::processor::partition::{serve, PartitionSetup};
use hubwasm::processor::reader::Item;
use hubwasm::processor::stats::Stats;
use hubwasm::sink::{DeadLetter, DeadLetterError, DeadLetterSink};
use proptest::prelude::*;
use tokio::sync::mpsc;

const NS: &str = "invariant.local";
const HUB: &str = "orders";
const GROUP: &str = "$Default";
const PARTITIONS: [&str; 2] = ["0", "1"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Ok,
    Flaky,
    Retry,
    Reject,
    Trap,
    Loop,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Flaky => "flaky",
            Verdict::Retry => "retry",
            Verdict::Reject => "reject",
            Verdict::Trap => "trap",
            Verdict::Loop => "loop",
        }
    }
}

/// One scripted event: its key and verdict (a copy has the same of both).
#[derive(Debug, Clone, Copy)]
struct Scripted {
    id: u32,
    verdict: Verdict,
}

impl Scripted {
    fn event(&self, seq: i64) -> Event {
        let body = format!(
            r#"{{"event_id":"k{}","verdict":"{}"}}"#,
            self.id,
            self.verdict.word()
        );
        Event::new(body.into_bytes(), seq, seq.to_string())
    }
}

#[derive(Debug, Clone)]
struct Case {
    /// The events of partitions 0 and 1, in order (sequence number = index).
    streams: [Vec<Scripted>; 2],
    max_batch: usize,
    max_attempts: u32,
    halt: bool,
    /// Virtual milliseconds after which each run before the last is cut short (a crash).
    crashes: Vec<u64>,
}

fn verdict() -> impl Strategy<Value = Verdict> {
    // Loops cost real time (the call deadline), so they are rare.
    prop_oneof![
        10 => Just(Verdict::Ok),
        2 => Just(Verdict::Flaky),
        2 => Just(Verdict::Retry),
        2 => Just(Verdict::Reject),
        2 => Just(Verdict::Trap),
        1 => Just(Verdict::Loop),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(verdict(), 0..20),
        // Partition 1: copies of partition 0's events (by index) or fresh events.
        prop::collection::vec(
            (any::<bool>(), any::<prop::sample::Index>(), verdict()),
            0..20,
        ),
        1usize..8,
        1u32..4,
        prop::bool::weighted(0.2),
        prop::collection::vec(0u64..400, 0..3),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(first, second, max_batch, max_attempts, halt, crashes, looping)| {
                let mut loops = 0;
                let mut tame = |verdict: Verdict| {
                    // A timeout costs real time (the call deadline): one in a tenth of the cases.
                    if verdict == Verdict::Loop {
                        loops += 1;
                        if !looping || loops > 1 {
                            return Verdict::Ok;
                        }
                    }
                    verdict
                };
                let zero: Vec<Scripted> = first
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| Scripted {
                        id: i as u32,
                        verdict: tame(v),
                    })
                    .collect();
                let one: Vec<Scripted> = second
                    .into_iter()
                    .enumerate()
                    .map(|(i, (copy, index, v))| match (copy, zero.is_empty()) {
                        (true, false) => zero[index.index(zero.len())],
                        _ => Scripted {
                            id: 1000 + i as u32,
                            verdict: tame(v),
                        },
                    })
                    .collect();
                Case {
                    streams: [zero, one],
                    max_batch,
                    max_attempts,
                    halt,
                    crashes,
                }
            },
        )
}

/// Dead letters kept in memory, in the order written.
#[derive(Default)]
struct Recording {
    letters: Mutex<Vec<DeadLetter>>,
}

#[async_trait::async_trait]
impl DeadLetterSink for Recording {
    async fn write(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        self.letters.lock().unwrap().push(letter.clone());
        Ok(())
    }

    fn describe(&self) -> String {
        "recording".into()
    }
}

fn ctx(partition: &str) -> PartitionContext {
    PartitionContext {
        namespace: NS.into(),
        event_hub: HUB.into(),
        consumer_group: GROUP.into(),
        partition_id: partition.into(),
    }
}

/// The stores of one case, kept across its runs (what survives a crash).
struct World {
    _dir: tempfile::TempDir,
    checkpoints: Arc<LocalCheckpointStore>,
    state: Arc<dyn StateStore>,
    dedupe: Arc<Dedupe>,
    dead: Arc<Recording>,
}

impl World {
    fn new() -> Self {
        // In memory where the machine has a memory file system: nothing here tests the disk.
        let dir = match std::path::Path::new("/dev/shm") {
            shm if shm.is_dir() => tempfile::tempdir_in(shm),
            _ => tempfile::tempdir(),
        }
        .unwrap();
        let checkpoints = Arc::new(LocalCheckpointStore::new(dir.path().join("checkpoints")));
        let state: Arc<dyn StateStore> = Arc::new(
            hubwasm::effects::sqlite::SqliteState::open(&dir.path().join("state.sqlite")).unwrap(),
        );
        let dedupe = Arc::new(Dedupe {
            store: Arc::new(
                hubwasm::effects::sqlite::SqliteDedupe::open(&dir.path().join("dedupe.sqlite"))
                    .unwrap(),
            ),
            key: Some(KeySource::parse("json:event_id").unwrap()),
            ttl: Duration::from_secs(3600),
            scope: format!("{NS}/{HUB}/{GROUP}"),
        });
        Self {
            _dir: dir,
            checkpoints,
            state,
            dedupe,
            dead: Arc::default(),
        }
    }

    async fn checkpoints(&self) -> BTreeMap<String, i64> {
        self.checkpoints
            .list_checkpoints(NS, HUB, GROUP)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|c| Some((c.partition_id, c.sequence_number?)))
            .collect()
    }

    /// How often each key was handled, over both partitions' committed state.
    async fn handled(&self) -> HashMap<String, u64> {
        let mut handled = HashMap::new();
        for p in PARTITIONS {
            let (_, entries) = self
                .state
                .load(&format!("{NS}/{HUB}/{GROUP}/{p}"))
                .await
                .unwrap();
            for (key, value) in entries {
                let id = key.strip_prefix("handled/").unwrap().to_string();
                let n = u64::from_le_bytes(value.try_into().unwrap());
                *handled.entry(id).or_insert(0) += n;
            }
        }
        handled
    }

    fn setup(&self, plugin: &Arc<Plugin>, case: &Case) -> Arc<PartitionSetup> {
        Arc::new(PartitionSetup {
            plugin: PluginHandle::new(plugin.clone()),
            tenant: Arc::new(hubwasm::tenant::Tenant::new("default", Default::default())),
            dedupe: Some(self.dedupe.clone()),
            state: Some((self.state.clone(), 1024, 1 << 20)),
            outputs: Arc::new(hubwasm::effects::outputs::Outputs { list: Vec::new() }),
            store: self.checkpoints.clone(),
            dead_letter: self.dead.clone(),
            failure: FailureConfig {
                policy: if case.halt {
                    FailurePolicy::Halt
                } else {
                    FailurePolicy::DeadLetter
                },
                max_attempts: case.max_attempts,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
            },
            mode: Mode::Batch,
            max_batch_size: case.max_batch,
            max_wait: Duration::from_millis(20),
            stats: Arc::new(Stats::default()),
            owned: Arc::default(),
            instance_id: "invariant".into(),
            ownership_check: Duration::from_secs(3600),
            resume: tokio::sync::broadcast::channel(4).0,
            progress: Default::default(),
            seen: Default::default(),
        })
    }

    /// One run of both partitions from their checkpoints: cut short after `crash` (virtual
    /// time), or until every partition ended or halted.
    async fn run(&self, plugin: &Arc<Plugin>, case: &Case, crash: Option<u64>) {
        let setup = self.setup(plugin, case);
        let from = self.checkpoints().await;
        let (stop_tx, stop) = hubwasm::shutdown::channel();
        let mut tasks = Vec::new();
        for (p, stream) in PARTITIONS.iter().zip(&case.streams) {
            let next = from.get(*p).map_or(0, |s| s + 1) as usize;
            let (tx, rx) = mpsc::channel(8);
            let events: Vec<Event> = stream
                .iter()
                .enumerate()
                .skip(next)
                .map(|(seq, s)| s.event(seq as i64))
                .collect();
            // Delivered in pieces, then the receiver closes (the partition's events end).
            for piece in events.chunks(5) {
                tx.send(Item::Events(piece.to_vec())).await.unwrap();
            }
            tx.send(Item::Closed("end of the script".into())).await.ok();
            drop(tx);
            tasks.push(tokio::spawn(serve(rx, ctx(p), setup.clone(), stop.clone())));
        }
        match crash {
            Some(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                for task in &tasks {
                    task.abort();
                }
                for task in tasks {
                    let _ = task.await;
                }
            }
            None => {
                // A halted partition waits for an operator: stop it once the rest are done.
                loop {
                    let halted = setup
                        .owned
                        .list()
                        .iter()
                        .filter(|o| o.state == PartitionState::Halted)
                        .count();
                    let running = tasks.iter().filter(|t| !t.is_finished()).count();
                    if running == 0 || running == halted {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                stop_tx.stop();
                for task in tasks {
                    task.await.unwrap();
                }
            }
        }
    }

    /// The rules that hold after every run, crashed or not.
    async fn check(&self, case: &Case, after: &str) -> Result<(), TestCaseError> {
        let checkpoints = self.checkpoints().await;
        let handled = self.handled().await;
        let letters = self.dead.letters.lock().unwrap().clone();
        let dead: Vec<(String, i64)> = letters
            .iter()
            .map(|l| (l.partition_id.clone(), l.sequence_number))
            .collect();
        // Only an event's own verdict dead-letters it.
        for letter in &letters {
            let p = PARTITIONS
                .iter()
                .position(|p| *p == letter.partition_id)
                .unwrap();
            let scripted = case.streams[p][letter.sequence_number as usize];
            prop_assert!(
                scripted.verdict != Verdict::Ok,
                "{after}: an ok event was dead-lettered: {letter:?}"
            );
        }
        let key = |s: &Scripted| format!("k{}", s.id);
        let dead_key = |k: &str| {
            dead.iter().any(|(p, seq)| {
                let i = PARTITIONS.iter().position(|x| x == p).unwrap();
                key(&case.streams[i][*seq as usize]) == k
            })
        };
        for (i, p) in PARTITIONS.iter().enumerate() {
            let Some(&cp) = checkpoints.get(*p) else {
                continue;
            };
            for seq in 0..=cp {
                let scripted = &case.streams[i][seq as usize];
                let k = key(scripted);
                let own = dead.contains(&(p.to_string(), seq));
                let done = handled.get(&k).copied().unwrap_or(0) > 0;
                // A copy skipped because another event holds its key: that event is still to
                // be delivered (beyond its partition's checkpoint).
                let held_elsewhere = case.streams.iter().enumerate().any(|(j, stream)| {
                    stream.iter().enumerate().any(|(s, other)| {
                        (j, s as i64) != (i, seq)
                            && other.id == scripted.id
                            && checkpoints
                                .get(PARTITIONS[j])
                                .is_none_or(|c| (s as i64) > *c)
                    })
                });
                prop_assert!(
                    own || done || dead_key(&k) || held_elsewhere,
                    "{after}: partition {p} checkpointed at {cp}, past event {seq} ({scripted:?}) \
                     which was neither handled nor dead-lettered\ncheckpoints {checkpoints:?}\n\
                     handled {handled:?}\ndead {dead:?}"
                );
            }
        }
        // Effects happen once: no key is handled twice, whatever crashed or was copied.
        for (k, n) in &handled {
            prop_assert!(*n == 1, "{after}: {k} handled {n} times");
        }
        Ok(())
    }

    /// After the last run: everything was delivered again and came to an end.
    async fn check_end(&self, case: &Case) -> Result<(), TestCaseError> {
        let checkpoints = self.checkpoints().await;
        let handled = self.handled().await;
        let dead = self.dead.letters.lock().unwrap().clone();
        if case.halt {
            return Ok(());
        }
        for (i, p) in PARTITIONS.iter().enumerate() {
            let last = case.streams[i].len() as i64 - 1;
            prop_assert_eq!(
                checkpoints.get(*p).copied(),
                (last >= 0).then_some(last),
                "partition {} ends checkpointed at its last event",
                p
            );
        }
        for stream in &case.streams {
            for s in stream.iter().filter(|s| s.verdict == Verdict::Ok) {
                let k = format!("k{}", s.id);
                prop_assert_eq!(handled.get(&k).copied(), Some(1), "{} handled once", k);
            }
        }
        for letter in &dead {
            prop_assert!(letter.attempts >= 1);
        }
        Ok(())
    }
}

/// The test plugin, compiled once; every case gets fresh instances of it.
fn plugin(rt: &tokio::runtime::Runtime) -> Arc<Plugin> {
    rt.block_on(async {
        let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
        let mut spec = PluginSpec::new(hubwasm_plugins::TEST_VERDICTS);
        spec.limits = Limits {
            timeout: Duration::from_millis(20),
            ..Limits::default()
        };
        Arc::new(runtime.load(spec).await.unwrap())
    })
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

async fn one_case(plugin: &Arc<Plugin>, case: &Case) -> Result<(), TestCaseError> {
    let world = World::new();
    for (n, crash) in case.crashes.iter().enumerate() {
        world.run(plugin, case, Some(*crash)).await;
        world
            .check(case, &format!("crash {n} after {crash} ms"))
            .await?;
    }
    world.run(plugin, case, None).await;
    world.check(case, "the last run").await?;
    world.check_end(case).await
}

fn cases() -> u32 {
    std::env::var("HUBWASM_INVARIANT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

#[test]
fn the_checkpoint_never_passes_an_event_that_was_not_handled_or_dead_lettered() {
    let rt = paused_runtime();
    let plugin = plugin(&rt);
    let config = ProptestConfig {
        cases: cases(),
        // Failures are kept in the test's own folder only when asked for.
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(case in case())| {
        rt.block_on(one_case(&plugin, &case))?;
    });
}

/// The same machinery on fixed scripts, so a failure names the rule in plain words.
#[test]
fn a_poison_event_is_dead_lettered_and_everything_else_handled_once() {
    use Verdict::*;
    let rt = paused_runtime();
    let plugin = plugin(&rt);
    let s = |id, verdict| Scripted { id, verdict };
    let case = Case {
        streams: [
            vec![s(0, Ok), s(1, Reject), s(2, Ok), s(3, Trap), s(4, Ok)],
            // A copy of 0 and of 2 at the same instant, and one event of its own.
            vec![s(0, Ok), s(2, Ok), s(9, Ok)],
        ],
        max_batch: 3,
        max_attempts: 2,
        halt: false,
        crashes: vec![],
    };
    rt.block_on(async {
        let world = World::new();
        world.run(&plugin, &case, None).await;
        world.check(&case, "one run").await.unwrap();
        world.check_end(&case).await.unwrap();
        let dead: Vec<(String, i64, String)> = world
            .dead
            .letters
            .lock()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l.partition_id.clone(),
                    l.sequence_number,
                    l.error_kind.clone(),
                )
            })
            .collect();
        assert_eq!(
            dead,
            [
                ("0".to_string(), 1, "rejected".to_string()),
                ("0".to_string(), 3, "trapped".to_string())
            ]
        );
        let mut handled: Vec<String> = world.handled().await.into_keys().collect();
        handled.sort();
        assert_eq!(handled, ["k0", "k2", "k4", "k9"]);
    });
}

/// With `halt`, the checkpoint stays before the failing event and nothing after it is handled.
#[test]
fn a_halted_partition_keeps_its_checkpoint_before_the_failure() {
    use Verdict::*;
    let rt = paused_runtime();
    let plugin = plugin(&rt);
    let s = |id, verdict| Scripted { id, verdict };
    let case = Case {
        streams: [vec![s(0, Ok), s(1, Ok), s(2, Retry), s(3, Ok)], vec![]],
        max_batch: 4,
        max_attempts: 3,
        halt: true,
        crashes: vec![],
    };
    rt.block_on(async {
        let world = World::new();
        world.run(&plugin, &case, None).await;
        world.check(&case, "halted").await.unwrap();
        assert_eq!(world.checkpoints().await.get("0"), Some(&1));
        assert!(world.dead.letters.lock().unwrap().is_empty());
        assert!(!world.handled().await.contains_key("k3"));
    });
}
