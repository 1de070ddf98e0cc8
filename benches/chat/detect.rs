//! Figure 5, how soon a frozen or vanished friend is noticed: alice runs with `--ack-timeout 1`,
//! bob confirms a first message, then bob's process is stopped (SIGSTOP) and alice sends one
//! more. The figure is the time from that send until alice warns that bob "has confirmed nothing"
//! (she keeps the connection and goes on trying until `--give-up`). A stopped process is what a vanished machine looks like from alice's side, minus the
//! kernel: bob's kernel still takes the bytes, but no confirmation comes (tests/delivery.rs cuts a
//! veth between network namespaces for the real thing, which needs root). Then bob is resumed,
//! shows the message once, and the cycle repeats on a fresh connection.

use std::time::{Duration, Instant};

use crate::common::{TempDir, free_ports, signal, write_table};
use crate::harness::Process;
use crate::route::{CHAT, start_peer};

/// The `--ack-timeout` alice runs with, in seconds.
pub const ACK_TIMEOUT: f64 = 1.0;
/// Cycles measured.
pub const ROUNDS: usize = 5;

/// Long enough for anything here on a busy machine.
const SLACK: Duration = Duration::from_secs(10);

pub struct Detection {
    pub timeout: Duration,
    /// From the send to a stopped bob until alice's warning.
    pub after_send: Vec<Duration>,
}

/// Measures alice running `program` ([`CHAT`] or `SELECT`); bob is always p2p-chat.
pub fn measure(program: &str) -> Detection {
    let dir = TempDir::new();
    let table = write_table(&dir, &["alice", "bob"], &free_ports(2));
    let (bob, _) = start_peer(CHAT, &table, "bob", &[]);
    let ack_timeout = ACK_TIMEOUT.to_string();
    let (mut alice, _) = start_peer(program, &table, "alice", &["--ack-timeout", &ack_timeout]);
    let mut after_send = Vec::new();
    for round in 0..ROUNDS {
        alice.send(format!("bob/confirmed {round}\n").as_bytes());
        bob.output.wait_lines(1, SLACK);
        wait_confirmed(&mut alice);

        signal(bob.pid(), "-STOP");
        let sent = Instant::now();
        alice.send(format!("bob/into the freeze {round}\n").as_bytes());
        let report = alice.log.wait_for("has confirmed nothing for", SLACK);
        after_send.push(report.at - sent);
        signal(bob.pid(), "-CONT");
        bob.output.wait_lines(1, SLACK);
    }
    Detection {
        timeout: Duration::from_secs_f64(ACK_TIMEOUT),
        after_send,
    }
}

/// Asks alice's `/peers` until bob's row shows the link idle: every message confirmed (after a
/// resume, the message from the freeze too, on the same connection).
fn wait_confirmed(alice: &mut Process) {
    let deadline = Instant::now() + SLACK;
    while Instant::now() < deadline {
        alice.send(b"/peers\n");
        // bob's row: the name padded to the column's width.
        if alice.log.wait_for("bob  ", SLACK).text.contains("idle") {
            return;
        }
    }
    panic!("bob never confirmed");
}
