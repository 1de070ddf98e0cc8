//! Figure 6, the cost of one thread hand-off: the price p2p-chat pays per hop between its
//! threads, where a poll() loop pays nothing. Two threads of this benchmark pass a token back and
//! forth over crossbeam rendezvous channels, the kind the console hands messages to the
//! dispatcher with; each pass wakes the other thread. The figure is the median, over rounds, of
//! the time per pass.

use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;

/// Passes per round.
const PASSES: u32 = 20_000;
/// Rounds measured.
pub const ROUNDS: usize = 9;

/// The time per pass, one figure per round.
pub fn measure() -> Vec<Duration> {
    (0..ROUNDS).map(|_| round()).collect()
}

fn round() -> Duration {
    let (to_other, from_us) = bounded::<u32>(0);
    let (to_us, from_other) = bounded::<u32>(0);
    let other = thread::spawn(move || {
        for token in from_us {
            if to_us.send(token + 1).is_err() {
                return;
            }
        }
    });
    let start = Instant::now();
    let mut token = 0;
    for _ in 0..PASSES / 2 {
        to_other.send(token).expect("the other thread runs");
        token = from_other.recv().expect("the other thread answers");
    }
    let took = start.elapsed();
    drop(to_other);
    other.join().expect("the other thread ends");
    assert_eq!(token, PASSES / 2);
    took / PASSES
}
