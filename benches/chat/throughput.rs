//! Figure 1, throughput: a burst of short messages written at once into the sender's stdin, timed
//! from the first byte written until the last line is read from the receiver's stdout.
//!
//! The chat and the relay take turns, round after round, with the one going first alternating,
//! so a slow spell on a shared machine lands on both; the figure is the median of the rounds.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::route::Route;

/// Messages per burst.
pub const MESSAGES: usize = 100_000;
/// Timed bursts per route.
pub const ROUNDS: usize = 31;

/// Messages per second, one figure per round.
pub struct Throughput {
    pub chat: Vec<f64>,
    pub relay: Vec<f64>,
}

pub fn measure(chat: &mut Route, relay: &mut Route) -> Throughput {
    let burst = burst();
    // One untimed burst each, so both start with grown buffers and a warm page cache.
    burst_rate(chat, &burst);
    burst_rate(relay, &burst);
    let mut result = Throughput {
        chat: Vec::new(),
        relay: Vec::new(),
    };
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            result.chat.push(burst_rate(chat, &burst));
            result.relay.push(burst_rate(relay, &burst));
        } else {
            result.relay.push(burst_rate(relay, &burst));
            result.chat.push(burst_rate(chat, &burst));
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
