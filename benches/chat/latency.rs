//! Figure 2, latency: one message at a time on a warm connection. Each sample is the time from
//! writing the line into the sender's stdin until the benchmark reads it from the receiver's
//! stdout; the next line is written only then. Both routes pay the benchmark's own pipe writes,
//! pipe reads and one thread hand-off inside the benchmark, so the ratio understates the gap a
//! little.
//!
//! The routes take turns in rounds, so all see the same machine.

use std::time::{Duration, Instant};

use crate::route::Route;

/// Rounds per route in one run.
pub const ROUNDS: usize = 4;
/// Messages per round: ROUNDS x PER_ROUND samples per route.
pub const PER_ROUND: usize = 250;

/// Every sample, in the order taken, for each route in the order given.
pub type Latency = Vec<Vec<Duration>>;

pub fn measure(routes: &mut [&mut Route]) -> Latency {
    let mut result = vec![Vec::new(); routes.len()];
    for round in 0..ROUNDS {
        let first = round * PER_ROUND;
        for k in 0..routes.len() {
            let i = (round + k) % routes.len();
            ping_pong(routes[i], first, &mut result[i]);
        }
    }
    result
}

/// Sends PER_ROUND messages one at a time, each after the previous one has arrived.
fn ping_pong(route: &mut Route, first: usize, samples: &mut Vec<Duration>) {
    for seq in first..first + PER_ROUND {
        let line = format!("bob/ping {seq}\n");
        let expected = format!("ping {seq}");
        let start = Instant::now();
        route.send(line.as_bytes());
        let (arrived, text) = route.wait_lines(1, Duration::from_secs(5));
        assert!(
            text.ends_with(&expected),
            "got {text:?} where {expected:?} was expected"
        );
        samples.push(arrived - start);
    }
}
