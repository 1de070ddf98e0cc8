//! A friend's side of the protocol, played by a raw socket, against both programs: confirmations
//! that settle one message each, a flood of them that must not grow our memory, and a classic
//! friend who never confirms.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::{Group, PATIENCE, both, wait_until};

/// The connection alice opens to the raw friend, within the test's patience.
fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let mut accepted = None;
    let came = wait_until(|| {
        accepted = listener.accept().ok();
        accepted.is_some()
    });
    assert!(came, "alice never connected");
    let (stream, _) = accepted.unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Reads from `stream` until `lines` newlines have come; returns what was read.
fn read_lines(stream: &mut TcpStream, lines: usize) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while all.iter().filter(|&&b| b == b'\n').count() < lines {
        let n = stream.read(&mut buf).expect("alice's frames");
        assert!(
            n > 0,
            "alice closed early: {:?}",
            String::from_utf8_lossy(&all)
        );
        all.extend_from_slice(&buf[..n]);
    }
    all
}

/// The most resident memory a process has had, in KiB.
fn peak_resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_nak_then_a_nul_settle_one_message_refused_and_the_next_delivered() {
    both(|program| {
        let (group, bob) = Group::with_listener(&["alice", "bob"]);
        let mut alice = group.start_program(program, "alice", &[]);
        alice.send("bob/one");
        let mut raw = accept(&bob);
        alice.send("bob/two");
        assert_eq!(read_lines(&mut raw, 2), b"alice/one\nalice/two\n");
        raw.write_all(&[0x15, 0x00]).unwrap();
        alice.expect_settled("bob", 1, 0, 1);
        let refused = alice.expect_stderr("their p2p-chat dropped them");
        assert!(refused.contains("1 message(s) to bob"), "{refused}");
    });
}

#[test]
fn a_flood_of_confirmations_at_a_blocked_link_is_refused_and_memory_stays_bounded() {
    both(|program| {
        let (group, bob) = Group::with_listener(&["alice", "bob"]);
        let mut alice = group.start_program(program, "alice", &["--write-timeout", "1"]);
        let alice_pid = alice.pid();
        // 18 MB for bob, who reads none of it: alice's writes block.
        let feeder = alice.flood("bob", 300, "/peers");
        let mut raw = accept(&bob);
        // bob answers with NUL bytes as fast as alice's socket takes them: up to 1 GB, or
        // until alice stops taking them (she stops reading once they outnumber her messages).
        raw.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        let nuls = vec![0u8; 64 * 1024];
        let mut sent = 0usize;
        while sent < 1 << 30 {
            match raw.write(&nuls) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        // More confirmations than messages: a protocol error, said as such.
        alice.expect_stderr("they confirmed more messages than we sent them");
        let peak = peak_resident_kib(alice_pid);
        assert!(
            peak < 64 * 1024,
            "alice grew to {peak} KiB after {sent} NUL bytes"
        );
        drop(feeder.join().expect("feeder"));
        drop(raw);
    });
}

#[test]
fn a_classic_friend_is_learned_counted_sent_at_once_closed_on_time_and_not_waited_for() {
    both(|program| {
        let (group, bob) = Group::with_listener(&["alice", "bob"]);
        let options = ["--idle-timeout", "1", "--ack-timeout", "0.3"];
        let mut alice = group.start_program(program, "alice", &options);
        alice.send("bob/one");
        let mut raw = accept(&bob);
        assert_eq!(read_lines(&mut raw, 1), b"alice/one\n");
        // Nothing confirmed, and their kernel took everything: they do not confirm.
        alice.expect_stderr("bob's program does not confirm");
        alice.expect_settled("bob", 0, 1, 0);
        // From now on a message counts as sent when it is written, with no waiting to learn.
        alice.send("bob/two");
        assert_eq!(read_lines(&mut raw, 1), b"alice/two\n");
        alice.expect_settled("bob", 0, 2, 0);
        assert_eq!(alice.stderr_count("does not confirm"), 1, "learned once");
        // The idle close is a half-close: bob reads the end of the stream.
        alice.expect_stderr("closing idle connection to bob after 1.0 s");
        let mut rest = Vec::new();
        raw.read_to_end(&mut rest).expect("alice's end of file");
        assert!(rest.is_empty(), "{rest:?}");
        drop(raw);
        // A message, then Ctrl-C: written, counted sent, and alice is gone.
        alice.send("bob/three");
        let mut raw = accept(&bob);
        assert_eq!(read_lines(&mut raw, 1), b"alice/three\n");
        alice.interrupt();
        assert!(alice.wait_exit().success());
        assert_eq!(alice.stderr_count("may not have arrived"), 0);
        assert_eq!(alice.stderr_count("not delivered"), 0);
    });
}

#[test]
fn confirmations_for_messages_not_yet_sent_confirm_nothing_and_end_the_connection() {
    both(|program| {
        let (group, bob) = Group::with_listener(&["alice", "bob"]);
        let mut alice = group.start_program(program, "alice", &[]);
        alice.send("bob/one");
        let mut raw = accept(&bob);
        assert_eq!(read_lines(&mut raw, 1), b"alice/one\n");
        raw.write_all(&[0]).unwrap();
        alice.expect_settled("bob", 1, 0, 0);
        // Three more, ahead of anything to confirm: they would settle the next three messages.
        raw.write_all(&[0, 0, 0]).unwrap();
        let line = alice.expect_stderr("our connection to bob ended");
        assert!(
            line.contains("they confirmed more messages than we sent them"),
            "{line}"
        );
        // The next messages go on a fresh connection, and are not confirmed by the forgery.
        alice.send("bob/two");
        let mut fresh = accept(&bob);
        assert_eq!(read_lines(&mut fresh, 1), b"alice/two\n");
        fresh.write_all(&[0]).unwrap();
        alice.expect_settled("bob", 2, 0, 0);
    });
}
