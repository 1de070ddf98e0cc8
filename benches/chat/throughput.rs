//! Figure 1, throughput: a burst of short messages written at once into the sender's stdin, timed
//! from the first byte written until the last line is read from the receiver's stdout.
//!
//! The two designs and the relay take turns, round after round, with the one going first
//! rotating, so a slow spell on a shared machine lands on all three; the figure is the median of
//! the rounds.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::route::Route;

/// Messages per burst.
pub const MESSAGES: usize = 100_000;
/// Timed bursts per route in one run.
pub const ROUNDS: usize = 11;

/// Messages per second, one figure per round, for each route in the order given.
pub type Throughput = Vec<Vec<f64>>;

pub fn measure(routes: &mut [&mut Route]) -> Throughput {
    let burst = burst();
    // One untimed burst each, so all start with grown buffers and a warm page cache.
    for route in routes.iter_mut() {
        burst_rate(route, &burst);
    }
    let mut result = vec![Vec::new(); routes.len()];
    for round in 0..ROUNDS {
        for k in 0..routes.len() {
            let i = (round + k) % routes.len();
            result[i].push(burst_rate(routes[i], &burst));
        }
    }
    result
}

/// `bob/message 000000` ... one line per message, 19 bytes each.
fn burst() -> Vec<u8> {
    let mut text = String::with_capacity(MESSAGES * 20);
    for i in 0..MESSAGES {
        let _ = writeln!(text, "bob/message {i:06}");
    }
    text.into_bytes()
}

/// Sends one burst and returns messages per second.
fn burst_rate(route: &mut Route, burst: &[u8]) -> f64 {
    let start = Instant::now();
    route.send(burst);
    let (done, last) = route.wait_lines(MESSAGES, Duration::from_secs(60));
    let expected = format!("message {:06}", MESSAGES - 1);
    assert!(
        last.ends_with(&expected),
        "the last line printed was {last:?}; expected it to end with {expected:?}"
    );
    MESSAGES as f64 / (done - start).as_secs_f64()
}
