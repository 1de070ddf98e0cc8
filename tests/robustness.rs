//! Black-box tests of faults and hostile input: raw sockets play the hostile client, and every
//! fault must get a clear answer while the chat goes on.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{Group, PATIENCE, TempDir, connect, run_to_end};

/// A small deterministic pseudo-random generator (xorshift), so failures can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn more_table_errors_name_the_file_and_line() {
    let dir = TempDir::new();
    let cases = [
        (
            "a 127.0.0.1 7001 extra\n",
            "peers.txt:1: expected NAME HOST PORT, found 4 fields",
        ),
        (
            "b 127.0.0.1 7002\na no-such-host.invalid 7001\n",
            "peers.txt:2: host \"no-such-host.invalid\" is neither",
        ),
        (
            "a 127.0.0.1 7001\na 127.0.0.1 7002\n",
            "peers.txt:2: name \"a\" is already used on line 1",
        ),
        (
            "a 127.0.0.1 7001\nb 127.0.0.1 7001\n",
            "peers.txt:2: 127.0.0.1 port 7001 is already a's address",
        ),
        (
            "a/b 127.0.0.1 7001\n",
            "peers.txt:1: name \"a/b\" contains '/'",
        ),
        (
            &format!("{} 127.0.0.1 7001\n", "n".repeat(40)),
            "is 40 characters long; the limit is 32",
        ),
        (
            "a 127.0.0.1 -5\n",
            "peers.txt:1: port \"-5\" is not a number",
        ),
    ];
    for (table, expected) in cases {
        dir.write("peers.txt", table);
        let (status, _, err) = run_to_end(&["a"], dir.path(), b"");
        assert_eq!(status.code(), Some(2), "{table:?}: {err}");
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    }
    for (args, expected) in [
        (
            &["a", "--max-inbound", "lots"][..],
            "--max-inbound \"lots\"",
        ),
        (
            &["a", "--connect-timeout=-1"][..],
            "--connect-timeout \"-1\"",
        ),
        (
            &["a", "--write-timeout"][..],
            "--write-timeout needs a value",
        ),
    ] {
        let (status, _, err) = run_to_end(args, dir.path(), b"");
        assert_eq!(status.code(), Some(2), "{args:?}");
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    }
}

#[test]
fn an_oversized_frame_is_dropped_with_a_warning_and_the_connection_goes_on() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let mut bob = group.start_program(program, "bob", &[]);
        let mut raw = connect(group.port(1));
        raw.write_all(b"alice/").unwrap();
        let block = vec![b'x'; 64 * 1024];
        // 4 MiB with no terminator: bob must drop it, not keep it.
        for _ in 0..64 {
            raw.write_all(&block).unwrap();
        }
        raw.write_all(b"\nalice/small again\n").unwrap();
        bob.expect_line("[alice] small again");
        let warning = bob.expect_stderr("longer than 64 KiB");
        assert!(
            warning.contains("127.0.0.1:"),
            "names the connection: {warning}"
        );
        assert_eq!(bob.stderr_count("longer than 64 KiB"), 1);
    });
}

#[test]
fn invalid_utf8_and_control_characters_are_shown_harmlessly() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let mut bob = group.start_program(program, "bob", &[]);
        let mut raw = connect(group.port(1));
        raw.write_all(b"alice/caf\xc3\xa9 \xff\xfe!\n").unwrap();
        bob.expect_line("[alice] café \u{fffd}\u{fffd}!");
        // Clear screen, set the window title, ring the bell, backspace, a fake second line, C1 CSI.
        raw.write_all(b"alice/\x1b[2J\x1b]0;pwned\x07\x08\r[eve] fake \xc2\x9b31m\x7f\n")
            .unwrap();
        bob.expect_line("[alice] \\x1b[2J\\x1b]0;pwned\\x07\\x08\\x0d[eve] fake \\u{9b}31m\\x7f");
    });
}

#[test]
fn frames_from_strangers_are_dropped_and_impostors_flagged() {
    common::both(|program| {
        let dir = TempDir::new();
        let ports = common::free_ports(2);
        // The table puts alice on 127.0.0.2, so a frame signed "alice" from 127.0.0.1 is suspect.
        let table = dir.write(
            "peers.txt",
            &format!("alice 127.0.0.2 {}\nbob 127.0.0.1 {}\n", ports[0], ports[1]),
        );
        let mut bob = common::Peer::spawn_program(
            program,
            &["--peers", table.to_str().unwrap(), "bob"],
            dir.path(),
        );
        bob.expect_stderr("listening on");
        let mut raw = connect(ports[1]);
        raw.write_all(b"mallory/let me in\n\x1b[31mred/x\nnoslash\nalice/it is me\n")
            .unwrap();
        bob.expect_line("[alice (unverified: from 127.0.0.1)] it is me");
        let warning = bob.expect_stderr("claiming to be from \"mallory\"");
        assert!(
            warning.contains("127.0.0.1:"),
            "names the source: {warning}"
        );
        bob.expect_stderr("claiming to be from \"\\x1b[31mred\"");
        bob.expect_stderr("with no sender name");
        bob.expect_stderr("not alice's address in the table");
        assert!(bob.stdout_now().is_empty(), "strangers are never shown");
    });
}

#[test]
fn a_connection_sending_garbage_cannot_flood_the_log() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let mut bob = group.start_program(program, "bob", &[]);
        let mut raw = connect(group.port(1));
        for i in 0..500 {
            raw.write_all(format!("stranger{i}/hello\nno slash {i}\n").as_bytes())
                .unwrap();
        }
        raw.write_all(b"alice/after the garbage\n").unwrap();
        bob.expect_line("[alice] after the garbage");
        drop(raw);
        let summary = bob.expect_stderr("frames that were dropped");
        assert!(
            summary.contains("sent 1000 frames that were dropped (990 not logged)"),
            "{summary}"
        );
        bob.expect_stderr("further dropped frames are counted, not logged");
        assert_eq!(bob.stderr_count("dropped a"), 10);
    });
}

#[test]
fn a_flood_of_connections_is_capped_and_friends_still_get_through() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let mut bob = group.start_program(program, "bob", &["--max-inbound", "8"]);
        let mut alice = group.start("alice", &[]);
        let mut flood = Vec::new();
        for i in 0..300 {
            let mut stream = connect(group.port(1));
            if i % 2 == 0 {
                // Half a frame, then silence.
                let _ = stream.write_all(b"alice/half a fra");
            }
            flood.push(stream);
        }
        alice.send("bob/through the flood");
        bob.expect_line("[alice] through the flood");
        bob.expect_stderr("closed the oldest silent one");
        // About 290 evictions, but at most one warning a second about them.
        let evictions_logged = bob.stderr_count("closed the oldest silent one");
        assert!(
            evictions_logged <= 10,
            "{evictions_logged} eviction warnings"
        );
        // Once the evicted readers have ended: at most 8 readers, plus main, the Ctrl-C handler's
        // thread, acceptor, console and dispatcher. Bounded by the cap, not by the 300 connections.
        let settled = common::wait_until(|| bob.threads() <= 8 + 5);
        assert!(settled, "{} threads", bob.threads());
        bob.send("/peers");
        bob.expect_stderr("have not said who they are yet");
    });
}

#[test]
fn forty_connections_claiming_one_friend_hold_four_slots_and_another_friend_gets_through() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob", "carol"]);
        let mut bob = group.start_program(program, "bob", &[]);
        let mut carol = group.start("carol", &[]);
        // Anyone who knows alice's name: 40 connections, each naming alice, all kept open while
        // carol writes. (Opened as fast as a loop can, they would also overflow the kernel's queue of
        // connections not yet accepted, which costs a newcomer a SYN retransmission: see README.)
        let mut flood = Vec::new();
        for i in 0..40 {
            let mut stream = connect(group.port(1));
            stream.write_all(format!("alice/{i}\n").as_bytes()).unwrap();
            flood.push(stream);
        }
        bob.expect_stdout("[alice] 39");
        carol.send("bob/let me in");
        bob.expect_stdout("[carol] let me in");
        // At the first try: bob refused nobody, and carol never had to hold the message and retry.
        // (carol's log is read apart from bob's screen: wait until her line has come.)
        carol.expect_stderr("connected to bob");
        assert_eq!(bob.stderr_count("refused connection"), 0);
        assert_eq!(carol.stderr_count("wait in their outbox"), 0);
        assert_eq!(carol.stderr_count("connected to bob"), 1);
        bob.send("/peers");
        let alice = bob.expect_stderr("alice  ");
        let open: usize = alice
            .split_whitespace()
            .rev()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (1..=4).contains(&open),
            "at most four of alice's kept: {alice}"
        );
        drop(flood);
    });
}

#[test]
fn when_every_slot_is_a_friend_a_newcomer_is_refused() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let mut bob = group.start_program(program, "bob", &["--max-inbound", "1"]);
        let mut first = connect(group.port(1));
        first.write_all(b"alice/I am here\n").unwrap();
        bob.expect_line("[alice] I am here");
        let mut second = connect(group.port(1));
        bob.expect_stderr("refused connection from 127.0.0.1:");
        // The read timeout is PATIENCE (10 s); bob closes at once. An end-of-file or a reset well
        // within a fifth of that is bob's doing, not the timeout's.
        let asked = Instant::now();
        let read = second.read(&mut [0u8; 1]);
        let waited = asked.elapsed();
        let closed = match &read {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
            ),
        };
        assert!(closed, "bob must close the refused connection: {read:?}");
        assert!(
            waited < PATIENCE / 5,
            "closed by the read timeout: {waited:?}"
        );
    });
}

#[test]
fn a_silent_inbound_connection_that_never_says_who_it_is_is_closed() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        // Idle timeout 0.1 s: silence limit is 10 x that, at least 1 s.
        let mut bob = group.start_program(program, "bob", &["--idle-timeout", "0.1"]);
        let mut raw = connect(group.port(1));
        raw.set_read_timeout(Some(PATIENCE)).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 1];
        assert_eq!(raw.read(&mut buf).expect("bob closes, not a timeout"), 0);
        assert!(started.elapsed() >= Duration::from_millis(900));
        bob.expect_stderr("nothing received for 1.0 s");
    });
}

#[test]
fn a_classic_senders_silent_connection_is_kept_past_15_times_the_idle_timeout() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        // Idle timeout 0.1 s; the classic C program sends and never closes its connection, and its
        // loop spins if we close it. 15 x 0.1 s = 1.5 s of its silence must pass with it still open.
        let mut bob = group.start_program(program, "bob", &["--idle-timeout", "0.1"]);
        let mut raw = connect(group.port(1));
        raw.write_all(b"alice/hello from C\n\0").unwrap();
        bob.expect_line("[alice] hello from C");
        raw.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        let mut buf = [0u8; 1];
        let read = raw.read(&mut buf);
        assert!(
            read.as_ref().is_err_and(p2p_chat::error::is_timeout),
            "bob ended or wrote to the connection: {read:?}"
        );
        assert_eq!(bob.stderr_count("nothing received"), 0);
        // Still open, and still shown.
        raw.write_all(b"alice/still here\n\0").unwrap();
        bob.expect_line("[alice] still here");
    });
}

#[test]
fn a_friend_who_stops_reading_is_reported_stalled_and_holds_up_no_one() {
    const TYPED: usize = 400;
    let dir = TempDir::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let bob = listener.local_addr().unwrap();
    // "bob" accepts and then never reads.
    let holder = thread::spawn(move || listener.accept().map(|(stream, _)| stream));
    let mut alice = alice_with_bob_at(&dir, bob, &["--write-timeout", "1", "--ack-timeout", "1"]);
    let feeder = alice.flood("bob", TYPED, "alice/still responsive");
    // Bob's outbox fills and input waits, rather than memory growing, until the write timeout
    // finds bob stalled...
    let stalled = alice.expect_stderr("--write-timeout");
    assert!(
        stalled.contains("bob has taken none of our bytes"),
        "{stalled}"
    );
    // ...then beyond its bound is refused, while everyone else's messages flow.
    alice.expect_stderr("outbox is full");
    alice.expect_stdout("[alice] still responsive");
    drop(feeder.join().expect("feeder"));
    assert!(alice.wait_exit().success());
    // Every message to bob is in a report, once: refused, not delivered or maybe lost.
    assert_eq!(
        common::reported(&alice.err_seen, "bob"),
        TYPED,
        "{:#?}",
        alice.err_seen
    );
    drop(holder.join());
}

#[test]
fn a_message_after_a_friend_restarts_arrives_on_a_fresh_connection() {
    let group = Group::new(&["alice", "bob"]);
    let mut alice = group.start("alice", &[]);
    let mut bob = group.start("bob", &[]);
    alice.send("bob/before");
    bob.expect_line("[alice] before");
    alice.wait_settled("bob", 1);
    bob.kill();
    let mut bob = group.start("bob", &[]);
    alice.send("bob/after the restart");
    bob.expect_line("[alice] after the restart");
    alice.expect_stderr("closed our idle connection to them");
    assert_eq!(alice.stderr_count("not delivered"), 0);
    assert_eq!(alice.stderr_count("may not have arrived"), 0);
}

#[test]
fn a_closed_stdout_ends_the_program_cleanly_and_confirms_nothing_unshown() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let mut bob = Command::new(program)
            .args(["--peers", group.table.to_str().unwrap(), "bob"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the reading end of bob's stdout, as `p2p-chat bob | head -0` would.
        drop(bob.stdout.take());
        let mut bob = common::KillOnDrop(bob);
        let (lines_tx, bob_err) = crossbeam_channel::unbounded();
        common::read_lines(
            "bob stderr".into(),
            bob.stderr.take().unwrap(),
            lines_tx,
            |l| l,
        );
        let deadline = Instant::now() + PATIENCE;
        loop {
            match bob_err.recv_deadline(deadline) {
                Ok(line) if line.contains("listening on") => break,
                Ok(_) => {}
                Err(e) => panic!("bob never said he listens: {e:?}"),
            }
        }
        // The first line bob shows fails to reach his stdout, and that ends bob.
        let mut alice = connect(group.port(1));
        alice.write_all(b"alice/anyone there?\n").unwrap();
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = bob.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "bob did not quit");
            thread::sleep(Duration::from_millis(10)); // std has no wait-with-timeout for a child
        };
        let err: Vec<String> = bob_err.iter().collect();
        let err = err.join("\n");
        assert!(status.success(), "{status:?}: {err}");
        assert!(err.contains("standard output is closed"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        // Nothing was shown, so nothing may be confirmed as shown.
        let mut acks = Vec::new();
        let _ = alice.read_to_end(&mut acks);
        assert!(
            !acks.contains(&0),
            "a message never shown was confirmed: {acks:?}"
        );
    });
}

#[test]
fn random_bytes_do_not_break_a_peer() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let mut bob = group.start_program(program, "bob", &[]);
        let mut alice = group.start("alice", &[]);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..60 {
            let mut raw = connect(group.port(1));
            let len = (rng.next() % 20_000) as usize;
            let mut bytes = rng.bytes(len);
            if round % 3 == 0 {
                // Valid frames with random text, so the display has hostile text to escape.
                bytes.splice(0..0, b"alice/".iter().copied());
                bytes.push(b'\n');
            }
            let _ = raw.write_all(&bytes);
        }
        alice.send("bob/still chatting");
        bob.expect_stdout("[alice] still chatting");
        for line in bob.stdout_now().iter().chain(&bob.out_seen) {
            assert!(
                !line.chars().any(|c| c.is_control() && c != '\t'),
                "a control character reached the terminal: {line:?}"
            );
        }
        assert!(bob.drain_stderr().iter().all(|l| !l.contains("panicked")));
    });
}

/// A listener that never accepts, with its backlog full: the kernel then drops new SYNs, so a
/// connect to it neither succeeds nor fails, as with a host that is down. Keep all three alive.
fn unanswering_listener() -> (TcpListener, SocketAddr, Vec<TcpStream>) {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let mut backlog = Vec::new();
    let filled =
        (0..4096).any(
            |_| match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(stream) => {
                    backlog.push(stream);
                    false
                }
                Err(_) => true,
            },
        );
    assert!(filled, "the backlog never filled");
    (silent, addr, backlog)
}

/// Starts alice with a table where bob is at `bob`, and `extra` options.
fn alice_with_bob_at(dir: &TempDir, bob: SocketAddr, extra: &[&str]) -> common::Peer {
    let port = common::free_ports(1)[0];
    let table = dir.write(
        "peers.txt",
        &format!("alice 127.0.0.1 {port}\nbob 127.0.0.1 {}\n", bob.port()),
    );
    let mut args = vec!["--peers", table.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push("alice");
    let mut alice = common::Peer::spawn(&args, dir.path());
    alice.expect_stderr("listening on");
    alice
}

#[test]
fn a_friend_who_does_not_answer_is_reported_after_the_connect_timeout() {
    let dir = TempDir::new();
    let (_silent, silent_addr, _backlog) = unanswering_listener();
    let mut alice = alice_with_bob_at(&dir, silent_addr, &["--connect-timeout", "0.5"]);
    alice.send("bob/are you up?");
    alice.send("alice/meanwhile");
    alice.expect_line("[alice] meanwhile");
    let line = alice.expect_stderr("no answer within 0.5 s");
    assert!(line.contains("1 message(s) to bob"), "{line}");
    assert!(line.contains(&silent_addr.to_string()), "{line}");
}

#[test]
fn ctrl_c_while_a_message_is_in_flight_reports_it_before_exiting() {
    let dir = TempDir::new();
    let (_silent, silent_addr, _backlog) = unanswering_listener();
    let mut alice = alice_with_bob_at(&dir, silent_addr, &["--connect-timeout", "1"]);
    alice.send("bob/still connecting when ctrl-c comes");
    // /peers is answered after the message was routed: bob's link is then trying to connect.
    alice.send("/peers");
    let row = alice.expect_stderr("bob  ");
    assert!(row.contains("connecting"), "{row}");
    alice.interrupt();
    alice.expect_stderr("interrupted");
    let status = alice.wait_exit();
    assert!(status.success(), "{status:?}");
    let report = alice.expect_stderr("not delivered");
    assert!(report.contains("1 message(s) to bob"), "{report}");
}

#[test]
fn an_unreadable_stdin_ends_the_program_cleanly() {
    let group = Group::new(&["alice", "bob"]);
    // A directory opens, but reading it fails (EISDIR).
    let stdin = std::fs::File::open(group.dir.path()).unwrap();
    let mut alice = common::Peer::spawn_with_stdin(
        &["--peers", group.table.to_str().unwrap(), "alice"],
        group.dir.path(),
        Stdio::from(stdin),
    );
    assert!(alice.wait_exit().success());
    let err = alice.err_seen.join("\n");
    assert!(err.contains("cannot read standard input"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
