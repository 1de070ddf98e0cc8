//! Black-box tests of the peer working end to end: real `p2p-chat` processes on loopback. The
//! tests of the classic exercise, which p2p-chat-select must pass too, are in `classic.rs`.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::thread;

use common::{Group, Peer, TempDir, run_to_end};

#[test]
fn the_link_thread_writes_every_message_on_one_connection() {
    let group = Group::new(&["alice", "bob"]);
    let mut alice = group.start_logging("alice", &[], "info,wire=trace");
    let mut bob = group.start("bob", &[]);
    for i in 0..5 {
        alice.send(&format!("bob/next {i}"));
        bob.expect_line(&format!("[alice] next {i}"));
    }
    alice.expect_stderr_count("write 13 bytes to bob", 5);
    let writes: Vec<String> = alice
        .drain_stderr()
        .into_iter()
        .filter(|l| l.contains("write 13 bytes to bob"))
        .collect();
    assert!(
        writes.iter().all(|l| l.contains("[link:bob]")),
        "only the link thread touches bob's socket: {writes:#?}"
    );
    assert_eq!(alice.stderr_count("connected to bob"), 1, "one connection");
}

#[test]
fn a_note_to_self_goes_through_our_own_server() {
    let group = Group::new(&["alice", "bob"]);
    let mut alice = group.start("alice", &[]);
    alice.send("alice/remember the milk");
    alice.expect_line("[alice] remember the milk");
    alice.expect_stderr("connected to alice");
}

#[test]
fn a_broadcast_reaches_every_other_friend() {
    let group = Group::new(&["alice", "bob", "carol"]);
    let mut alice = group.start("alice", &[]);
    let mut bob = group.start("bob", &[]);
    let mut carol = group.start("carol", &[]);
    alice.send("*/hello everyone");
    bob.expect_line("[alice] hello everyone");
    carol.expect_line("[alice] hello everyone");
    alice.send("alice/check");
    alice.expect_line("[alice] check"); // and not the broadcast
}

/// Types `count` messages of about `length` bytes to bob, who is frozen until alice says his
/// outbox is full at `bound` and her input waits; then bob resumes, and every message must arrive,
/// in order. A frozen reader makes the bound certain to be reached: the kernel's buffers fill,
/// then the link's queue, then the outbox.
fn a_burst_to_a_frozen_friend_waits_at(bound: &str, count: usize, length: usize) {
    let group = Group::new(&["alice", "bob"]);
    let mut bob = group.start("bob", &[]);
    // Timeouts far beyond the test, so the freeze is only ever a slow reader to alice.
    let patient = ["--write-timeout", "60", "--ack-timeout", "60"];
    let mut alice = group.start("alice", &patient);
    bob.signal("-STOP");
    let mut stdin = alice.take_stdin();
    let text: String = (0..count)
        .map(|i| format!("bob/{i:07} {}\n", "b".repeat(length)))
        .collect();
    let feeder = thread::spawn(move || stdin.write_all(text.as_bytes()).expect("feed alice"));
    alice.expect_stderr(&format!("bob's outbox is full ({bound}): input waits"));
    bob.signal("-CONT");
    for i in 0..count {
        let line = bob.next_line();
        let expected = format!("[alice] {i:07} {}", "b".repeat(length));
        assert!(line == expected, "line {i}: {line:.40?}");
    }
    feeder.join().expect("feeder thread");
    assert!(alice.wait_exit().success());
    assert_eq!(alice.stderr_count("not delivered"), 0);
}

#[test]
fn a_burst_of_short_lines_waits_at_the_outbox_bound_of_1000_messages_and_none_is_dropped() {
    // 12 MB in 40-byte lines: beyond the kernel's buffers, and 1,000 messages come long
    // before 8 MiB.
    a_burst_to_a_frozen_friend_waits_at("1000 messages", 300_000, 27);
}

#[test]
fn a_burst_of_long_lines_waits_at_the_outbox_bound_of_8_mib_and_none_is_dropped() {
    // 24 MB in 60 KB lines: 8 MiB is about 140 of them, long before 1,000.
    a_burst_to_a_frozen_friend_waits_at("8 MiB", 400, 60_000);
}

#[test]
fn the_test_ports_can_be_moved_with_an_environment_variable() {
    assert_eq!(
        common::parse_port_range("41000-41999"),
        Some((41_000, 41_999))
    );
    for bad in [
        "41000",
        "41999-41000",
        "80-1000",
        "60000-70000",
        "a-b",
        "41000-41010",
    ] {
        assert_eq!(common::parse_port_range(bad), None, "{bad}");
    }
}

#[test]
fn unknown_and_offline_friends_are_reported_and_the_chat_goes_on() {
    let group = Group::new(&["alice", "bob", "carol"]);
    let mut alice = group.start("alice", &["--connect-timeout", "1"]);
    let mut bob = group.start("bob", &[]);

    alice.send("zed/are you there?");
    let line = alice.expect_stderr("unknown friend \"zed\"");
    assert!(line.contains("alice, bob, carol"), "{line}");

    alice.send("carol/hello?");
    let line = alice.expect_stderr("to carol");
    assert!(
        line.contains("1 message(s)") && line.contains("wait in their outbox"),
        "{line}"
    );
    assert!(
        line.contains(&format!("127.0.0.1:{}", group.port(2))),
        "{line}"
    );
    assert!(line.contains("connection refused"), "{line}");

    for bad in ["no slash here", "bob/", "/dance"] {
        alice.send(bad);
    }
    alice.expect_stderr("no '/' in that line");
    alice.expect_stderr("nothing to send to bob");
    alice.expect_stderr("unknown command /dance");

    alice.send("bob/still here");
    bob.expect_line("[alice] still here");

    // At quit, what still waits for carol is reported.
    alice.send("/quit");
    assert!(alice.wait_exit().success());
    let line = alice.expect_stderr("not delivered");
    assert!(line.contains("1 message(s) to carol"), "{line}");
}

#[test]
fn quit_command_delivers_then_exits() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let mut bob = group.start("bob", &[]);
        let mut alice = group.start_program(program, "alice", &[]);
        // In one read: the quit comes before alice has even begun to connect.
        alice.send_bytes(b"bob/before quitting\n/quit\n");
        assert!(alice.wait_exit().success(), "{:#?}", alice.err_seen);
        bob.expect_line("[alice] before quitting");
    });
}

#[test]
fn ctrl_c_quits_gracefully() {
    let group = Group::new(&["alice", "bob"]);
    let mut bob = group.start("bob", &[]);
    let mut alice = group.start("alice", &[]);
    alice.send("bob/typed before ctrl-c");
    bob.expect_line("[alice] typed before ctrl-c");
    alice.interrupt();
    let status = alice.wait_exit();
    assert!(status.success(), "exit status {status:?}");
    assert!(alice.err_seen.iter().any(|l| l.contains("interrupted")));
    assert!(alice.err_seen.iter().all(|l| !l.contains("panicked")));
}

#[test]
fn peers_lists_friends_and_connections() {
    let group = Group::new(&["alice", "bob", "carol"]);
    let mut alice = group.start("alice", &[]);
    let mut bob = group.start("bob", &[]);
    alice.send("bob/hi");
    bob.expect_line("[alice] hi");
    alice.expect_stderr("connected to bob");
    // Once bob has confirmed "hi", nothing is outstanding and the link waits to close.
    alice.wait_settled("bob", 1);
    alice.send("/peers");
    let me = alice.expect_stderr("alice (you)");
    assert!(me.contains(&format!("127.0.0.1:{}", group.port(0))), "{me}");
    let bob_row = alice.expect_stderr("bob  "); // a row: the name padded
    let counts: Vec<&str> = bob_row.split_whitespace().rev().take(6).collect();
    // Read right to left: heard, in, failed, sent, delivered, waiting.
    assert_eq!(
        counts,
        ["-", "0", "0", "0", "1", "0"],
        "one delivered: {bob_row}"
    );
    let carol = alice.expect_stderr("carol ");
    assert!(carol.contains(" - "), "{carol}");
    bob.send("/peers");
    let alice_row = bob.expect_stderr("alice  ");
    let tail: Vec<&str> = alice_row.split_whitespace().rev().take(2).collect();
    assert_eq!(tail[1], "1", "one inbound from alice: {alice_row}");
    assert!(
        tail[0].ends_with('s'),
        "heard from alice seconds ago: {alice_row}"
    );
    alice.send("/help");
    alice.expect_stderr("*/message");
}

#[test]
fn a_connection_speaks_for_the_first_friend_it_names_and_no_one_else() {
    let group = Group::new(&["alice", "bob", "carol"]);
    let mut bob = group.start("bob", &[]);
    let mut raw = TcpStream::connect(("127.0.0.1", group.port(1))).expect("connect to bob");
    raw.set_read_timeout(Some(common::PATIENCE)).unwrap();
    raw.write_all(b"zed/0\nalice/1\ncarol/2\nalice/3\nalic/4\n")
        .unwrap();
    bob.expect_line("[alice] 1");
    bob.expect_line("[alice] 3");
    // A stranger's frame before the first friend's is dropped as a stranger's...
    bob.expect_stderr("claiming to be from \"zed\"");
    // ...and once the connection speaks for alice, any other name is dropped, friend or not.
    let local = raw.local_addr().unwrap();
    for other in ["carol", "alic"] {
        let warning = bob.expect_stderr(&format!("signed \"{other}\""));
        assert!(
            warning.contains(&local.to_string()) && warning.contains("speaks for alice"),
            "{warning}"
        );
    }
    assert!(!bob.out_seen.iter().any(|l| l.contains("[carol]")));
    // Confirmed in order: dropped, shown, dropped, shown, dropped.
    let mut acks = [0xffu8; 5];
    std::io::Read::read_exact(&mut raw, &mut acks).unwrap();
    assert_eq!(acks, [0x15, 0x00, 0x15, 0x00, 0x15]);
}

#[test]
fn help_and_version_exit_zero() {
    let dir = TempDir::new();
    let (status, out, _) = run_to_end(&["--help"], dir.path(), b"");
    assert!(status.success());
    assert!(out.contains("Usage: p2p-chat [OPTIONS] <NAME>"), "{out}");
    let (status, out, _) = run_to_end(&["--version"], dir.path(), b"");
    assert!(status.success());
    assert!(out.starts_with("p2p-chat "), "{out}");
    // Every program's help fits a terminal of 80 columns.
    let demo = env!("CARGO_BIN_EXE_p2p-chat-demo");
    for program in [common::BIN, common::SELECT_BIN, demo] {
        let (status, out, _) = common::run_program_to_end(program, &["--help"], dir.path(), b"");
        assert!(status.success(), "{program}");
        for line in out.lines() {
            assert!(line.chars().count() <= 80, "{program}: {line}");
        }
    }
}

#[test]
fn table_and_usage_errors_exit_2_with_a_clear_line() {
    let dir = TempDir::new();
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "a 127.0.0.1 1\nb 127.0.0.1\n",
            &["a"],
            "peers.txt:2: expected NAME HOST PORT",
        ),
        (
            "a 127.0.0.1 99999\n",
            &["a"],
            "peers.txt:1: port 99999 is out of range 1-65535",
        ),
        (
            "a 127.0.0.1 1\n",
            &["zed"],
            "no entry named \"zed\"; the names are: a",
        ),
        (
            "a 127.0.0.1 1\n",
            &["a", "--idle-timeout", "soon"],
            "--idle-timeout \"soon\"",
        ),
        ("a 127.0.0.1 1\n", &[], "missing NAME"),
    ];
    for (table, args, expected) in cases {
        dir.write("peers.txt", table);
        let (status, out, err) = run_to_end(args, dir.path(), b"");
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in {err:?}"
        );
        assert!(out.is_empty());
        assert_eq!(
            err.lines().filter(|l| l.starts_with("p2p-chat: ")).count(),
            1,
            "{err}"
        );
    }
    let (status, _, err) = run_to_end(&["--peers", "nowhere.txt", "a"], dir.path(), b"");
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("cannot read peer table nowhere.txt"), "{err}");
}

#[test]
fn a_port_in_use_exits_1_naming_the_address() {
    let group = Group::new(&["alice", "bob"]);
    let _first = group.start("alice", &[]);
    let mut second = Peer::spawn(
        &["--peers", group.table.to_str().unwrap(), "alice"],
        group.dir.path(),
    );
    let status = second.wait_exit();
    assert_eq!(status.code(), Some(1));
    let err = second.err_seen.join("\n");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{}", group.port(0)))
            && err.contains("already running"),
        "{err}"
    );
}

#[test]
fn an_address_that_is_not_this_machines_exits_1_saying_so() {
    let dir = TempDir::new();
    // 192.0.2.1 is reserved for documentation: no machine has it, and binding sends nothing.
    let table = dir.write("peers.txt", "alice 192.0.2.1 7301\nbob 127.0.0.1 7302\n");
    let (status, _, err) = run_to_end(
        &["--peers", table.to_str().unwrap(), "alice"],
        dir.path(),
        b"",
    );
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot listen on 192.0.2.1:7301: that address is not one of this machine's"),
        "{err}"
    );
}
