//! Where a message's time goes: a timestamp at each stage of its trip, recorded only in a run
//! that asks for it (`P2P_STAGES=DIR`, set by `make bench` for its latency budget), so that an
//! ordinary run pays one relaxed load per stage and reads no clock.
//!
//! The clock is CLOCK_MONOTONIC, the same for every process on the machine, so the stages of the
//! sender and of the receiver can be put on one time line. At the end of the run the stages are
//! written to `DIR/NAME-PID.txt`, one `stage nanoseconds` line each, in the order they happened.

use std::fmt::Write as _;
use std::sync::OnceLock;

use nix::time::{ClockId, clock_gettime};
use parking_lot::Mutex;

/// The stages of one message's trip, in order: the sender's, then the receiver's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The sender read the line from stdin.
    StdinRead,
    /// The lines of one read were parsed and encoded into frames, ready to hand over.
    Parsed,
    /// The driver holding the models took it (in p2p-chat: the dispatcher, after a hand-off).
    Taken,
    /// The model gave its bytes to be written (in p2p-chat: put in the link's queue).
    Modelled,
    /// The writer took them (in p2p-chat: the link thread, after a hand-off).
    Writing,
    /// `write` returned.
    Written,
    /// The receiver's `read` returned.
    Read,
    /// The frame was decoded and its sender checked.
    Decoded,
    /// The line to show was formatted, made safe.
    Escaped,
    /// The write to stdout returned.
    Printed,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::StdinRead => "stdin-read",
            Stage::Parsed => "parsed",
            Stage::Taken => "taken",
            Stage::Modelled => "modelled",
            Stage::Writing => "writing",
            Stage::Written => "written",
            Stage::Read => "read",
            Stage::Decoded => "decoded",
            Stage::Escaped => "escaped",
            Stage::Printed => "printed",
        }
    }
}

/// The directory to write to, and each stage reached with its time in nanoseconds.
struct Recorder {
    dir: String,
    marks: Mutex<Vec<(Stage, i64)>>,
}

/// `None` in an ordinary run.
static RECORDER: OnceLock<Option<Recorder>> = OnceLock::new();

fn recorder() -> &'static Option<Recorder> {
    RECORDER.get_or_init(|| {
        let dir = std::env::var("P2P_STAGES").ok()?;
        let marks = Mutex::new(Vec::with_capacity(1 << 16));
        Some(Recorder { dir, marks })
    })
}

/// Notes that a message reached `stage` now, in a run that records stages.
pub fn mark(stage: Stage) {
    if let Some(recorder) = recorder()
        && let Ok(now) = clock_gettime(ClockId::CLOCK_MONOTONIC)
    {
        let nanos = now.tv_sec() * 1_000_000_000 + now.tv_nsec();
        recorder.marks.lock().push((stage, nanos));
    }
}

/// Writes what was recorded, if anything, for the peer called `name`.
pub fn write(name: &str) {
    let Some(Recorder { dir, marks }) = recorder() else {
        return;
    };
    let mut text = String::new();
    for (stage, nanos) in marks.lock().iter() {
        let _ = writeln!(text, "{} {nanos}", stage.name());
    }
    let path = format!("{dir}/{name}-{}.txt", std::process::id());
    if let Err(e) = std::fs::write(&path, text) {
        log::warn!("cannot write the stages to {path}: {e}");
    }
}
