//! Figure 3, idle-close accuracy: alice is started with a short `--idle-timeout` and sends bob one
//! message; the benchmark notes when it wrote the line, when bob printed it, when alice logged
//! `closing idle connection to bob` and when bob logged that alice `closed their connection to you`. Then the next
//! message opens a fresh connection and the cycle repeats. The error is the observed close minus
//! the configured timeout, measured from the send (alice starts her idle clock when her dispatcher
//! routes the message, a few microseconds after the send).

use std::time::{Duration, Instant};

use crate::route::Route;

/// The `--idle-timeout` values tried, in seconds.
pub const TIMEOUTS: [f64; 2] = [0.5, 1.0];
/// Cycles per timeout.
pub const ROUNDS: usize = 8;

/// One timeout's samples, each measured from the moment the message was written to alice.
pub struct IdleClose {
    /// p2p-chat or p2p-chat-select.
    pub program: &'static str,
    pub timeout: Duration,
    /// Until alice's `closing idle connection` line.
    pub close_after_send: Vec<Duration>,
    /// Until bob's `closed their connection to you` line.
    pub disconnect_after_send: Vec<Duration>,
    /// From bob printing the message until alice's close line.
    pub close_after_print: Vec<Duration>,
}

pub fn measure(program: &'static str, timeout_secs: f64) -> IdleClose {
    let timeout = Duration::from_secs_f64(timeout_secs);
    let mut route = Route::peers(program, timeout_secs);
    let mut result = IdleClose {
        program,
        timeout,
        close_after_send: Vec::new(),
        disconnect_after_send: Vec::new(),
        close_after_print: Vec::new(),
    };
    let slack = Duration::from_secs(10);
    for round in 0..ROUNDS {
        let line = format!("bob/idle probe {round}\n");
        let sent = Instant::now();
        route.send(line.as_bytes());
        let (printed, _) = route.wait_lines(1, slack);
        let closed = route
            .sender
            .log
            .wait_for("closing idle connection to bob", timeout + slack)
            .at;
        let gone = route
            .receiver
            .log
            .wait_for("closed their connection to you", slack)
            .at;
        result.close_after_send.push(closed - sent);
        result.disconnect_after_send.push(gone - sent);
        result.close_after_print.push(closed - printed);
    }
    result
}
