//! Figure 7, the latency budget: where one message's time goes, stage by stage, for both
//! programs. alice and bob run with `P2P_STAGES` set, so each notes the time (CLOCK_MONOTONIC,
//! one clock for both processes) at every stage of every message (see `src/stages.rs`), and
//! writes them out when it quits. Messages go one at a time, as in the latency figure, so the
//! k-th mark of each stage belongs to the k-th message. This run is separate from the latency
//! figure: reading the clock costs time too.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::time::{ClockId, clock_gettime};

use crate::common::TempDir;
use crate::route::Route;

/// Messages sent first and not counted: connections open, caches warm.
const WARM_UP: usize = 50;
/// Messages measured.
pub const MESSAGES: usize = 1000;

/// The stages in the order a message meets them: the sender's, then the receiver's.
pub const STAGES: [&str; 10] = [
    "stdin-read",
    "parsed",
    "taken",
    "modelled",
    "writing",
    "written",
    "read",
    "decoded",
    "escaped",
    "printed",
];

/// The median time from each stage to the next, in the order of [`STAGES`] (so one fewer); the
/// median from the benchmark's write into the sender's stdin to the first stage, and from the
/// last stage to the benchmark's read of the receiver's stdout; and the median of the whole trip
/// as the benchmark sees it.
pub struct Budget {
    pub steps: Vec<Duration>,
    pub into: Duration,
    pub out_of: Duration,
    pub trip: Duration,
}

/// p2p-chat's two hand-offs between threads: console to dispatcher, dispatcher to link thread.
const HANDOFFS: [(&str, &str); 2] = [("parsed", "taken"), ("modelled", "writing")];

impl Budget {
    /// The time the steps of [`HANDOFFS`] took: what p2p-chat's path pays that one thread does
    /// not.
    pub fn handoffs(&self) -> Duration {
        STAGES
            .windows(2)
            .zip(&self.steps)
            .filter(|(pair, _)| HANDOFFS.contains(&(pair[0], pair[1])))
            .map(|(_, &step)| step)
            .sum()
    }
}

/// CLOCK_MONOTONIC now, in nanoseconds: the clock the peers stamp their stages with.
fn monotonic_nanos() -> i64 {
    let now = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    now.tv_sec() * 1_000_000_000 + now.tv_nsec()
}

pub fn measure(program: &str) -> Budget {
    let dir = TempDir::new();
    let mut route = Route::peers_recording(program, dir.path());
    // `Instant` is CLOCK_MONOTONIC too, but opaque: one reading of each ties them together.
    let (base, base_nanos) = (Instant::now(), monotonic_nanos());
    let nanos = |at: Instant| base_nanos + (at - base).as_nanos() as i64;
    let (mut sent, mut arrived) = (Vec::new(), Vec::new());
    for seq in 0..WARM_UP + MESSAGES {
        sent.push(monotonic_nanos());
        route.send(format!("bob/budget {seq}\n").as_bytes());
        let (at, _) = route.wait_lines(1, Duration::from_secs(5));
        arrived.push(nanos(at));
    }
    route.quit(Duration::from_secs(10));
    let sender = marks(dir.path(), "alice");
    let receiver = marks(dir.path(), "bob");
    let at = |stage: &str, k: usize| {
        let marks = match STAGES.iter().position(|&s| s == stage) {
            Some(i) if i < 6 => &sender,
            _ => &receiver,
        };
        let times = marks
            .get(stage)
            .unwrap_or_else(|| panic!("no {stage} marks"));
        assert_eq!(
            times.len(),
            WARM_UP + MESSAGES,
            "{stage}: one mark per message expected"
        );
        times[k]
    };
    let mut steps = Vec::new();
    for pair in STAGES.windows(2) {
        let mut deltas: Vec<i64> = (WARM_UP..WARM_UP + MESSAGES)
            .map(|k| at(pair[1], k) - at(pair[0], k))
            .collect();
        steps.push(median(&mut deltas));
    }
    let measured = WARM_UP..WARM_UP + MESSAGES;
    let mut into: Vec<i64> = measured
        .clone()
        .map(|k| at("stdin-read", k) - sent[k])
        .collect();
    let mut out_of: Vec<i64> = measured
        .clone()
        .map(|k| arrived[k] - at("printed", k))
        .collect();
    let mut trips: Vec<i64> = measured.map(|k| arrived[k] - sent[k]).collect();
    Budget {
        steps,
        into: median(&mut into),
        out_of: median(&mut out_of),
        trip: median(&mut trips),
    }
}

/// Every stage's times, in the order they happened, from the file `name-PID.txt` in `dir`.
fn marks(dir: &Path, name: &str) -> BTreeMap<String, Vec<i64>> {
    let file = std::fs::read_dir(dir)
        .expect("the stages directory")
        .flatten()
        .find(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}-"))
        })
        .unwrap_or_else(|| panic!("{name} wrote no stages"));
    let text = std::fs::read_to_string(file.path()).expect("the stages file");
    let mut marks: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for line in text.lines() {
        let (stage, nanos) = line.split_once(' ').expect("stage nanos");
        let nanos = nanos.parse().expect("nanoseconds");
        marks.entry(stage.to_string()).or_default().push(nanos);
    }
    marks
}

fn median(values: &mut [i64]) -> Duration {
    values.sort_unstable();
    Duration::from_nanos(values[values.len() / 2].max(0) as u64)
}
