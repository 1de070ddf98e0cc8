//! Black-box tests of delivery: confirmations on the wire, friends who are frozen, offline or
//! never confirm, and hosts that do not resolve. Real processes on loopback; raw sockets play the
//! classic C program and netcat.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::{Group, TempDir, connect};

#[test]
fn a_receiver_confirms_each_frame_shown_with_a_nul_and_each_dropped_with_a_nak() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let mut bob = group.start_program(program, "bob", &[]);
        let mut raw = connect(group.port(1));
        raw.write_all(b"alice/one\nalice/two\nzed/who?\n").unwrap();
        bob.expect_line("[alice] one");
        bob.expect_line("[alice] two");
        let mut acks = [0xffu8; 3];
        raw.read_exact(&mut acks).unwrap();
        assert_eq!(acks, [0x00, 0x00, 0x15]);
    });
}

#[test]
fn a_sender_who_ends_the_connection_at_once_still_gets_its_confirmations() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let mut bob = group.start_program(program, "bob", &[]);
        let mut raw = connect(group.port(1));
        // The frames and our end of file together: the receiver sees the end while the first
        // confirmation waits to learn whether a NUL byte follows.
        raw.write_all(b"alice/one\nalice/two\n").unwrap();
        raw.shutdown(std::net::Shutdown::Write).unwrap();
        bob.expect_line("[alice] one");
        bob.expect_line("[alice] two");
        let mut acks = Vec::new();
        raw.read_to_end(&mut acks).unwrap();
        assert_eq!(acks, [0x00, 0x00]);
    });
}

#[test]
fn a_message_to_a_friend_whose_table_lacks_us_is_reported_not_delivered_not_counted_sent() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        // Bob's table has no alice: his p2p-chat drops what she sends, and must say so to her.
        let table = format!("bob 127.0.0.1 {}\n", group.port(1));
        let bob_table = group.dir.write("bob.txt", &table);
        let args = ["--peers", bob_table.to_str().unwrap(), "bob"];
        let mut bob = common::Peer::spawn_program(program, &args, group.dir.path());
        bob.expect_stderr("listening on");
        let mut alice = group.start_program(program, "alice", &[]);
        alice.send("bob/do you know me?");
        bob.expect_stderr("who is not in the peer table");
        alice.expect_settled("bob", 0, 0, 1);
        alice.expect_stderr("their p2p-chat dropped them");
        assert_eq!(alice.stderr_count("does not confirm"), 0);
    });
}

#[test]
fn a_receiver_who_quits_right_after_showing_a_first_frame_still_confirms_it() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let mut bob = group.start_program(program, "bob", &[]);
        let mut raw = connect(group.port(1));
        raw.write_all(b"alice/last words\n").unwrap();
        bob.expect_line("[alice] last words");
        // Bob quits while the first confirmation still waits to learn whether a NUL follows.
        bob.close_stdin();
        bob.wait_exit();
        let mut acks = Vec::new();
        let _ = raw.read_to_end(&mut acks);
        assert_eq!(acks, [0x00], "the message bob showed was not confirmed");
    });
}

#[test]
fn messages_on_connections_closed_at_once_are_counted_delivered_and_none_reported() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let mut bob = group.start_program(program, "bob", &[]);
        // An idle close a millisecond after each write: every message ends its connection.
        let mut alice = group.start_program(program, "alice", &["--idle-timeout", "0.001"]);
        for i in 0..5 {
            alice.send(&format!("bob/m{i}"));
            bob.expect_line(&format!("[alice] m{i}"));
            alice.expect_settled("bob", i + 1, 0, 0);
        }
        assert_eq!(alice.stderr_count("may not have arrived"), 0);
    });
}

#[test]
fn a_sender_that_ends_frames_with_nul_is_never_written_to() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let mut bob = group.start_program(program, "bob", &[]);
        let mut classic = connect(group.port(1));
        classic.write_all(b"alice/hi\n\0").unwrap();
        // The NUL may come in a read of its own, after the first confirmation's wait has begun.
        classic.write_all(b"alice/one\n").unwrap();
        classic.write_all(b"\0").unwrap();
        bob.expect_line("[alice] hi");
        bob.expect_line("[alice] one");
        // Ten times the first confirmation's wait: anything bob would write has come by then.
        classic
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut byte = [0u8; 1];
        match classic.read(&mut byte) {
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
                "{e}"
            ),
            Ok(n) => panic!("bob wrote {n} byte(s) to a classic sender: {byte:?}"),
        }
    });
}

#[test]
fn a_receiver_that_never_confirms_gets_exactly_the_frames_and_no_failure_is_reported() {
    common::both(|program| {
        let dir = TempDir::new();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let bob = listener.local_addr().unwrap();
        let port = common::free_ports(1)[0];
        let table = dir.write(
            "peers.txt",
            &format!("alice 127.0.0.1 {port}\nbob 127.0.0.1 {}\n", bob.port()),
        );
        let reader = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut all = Vec::new();
            stream.read_to_end(&mut all).unwrap();
            all
        });
        let args = [
            "--peers",
            table.to_str().unwrap(),
            "--ack-timeout",
            "0.3",
            "alice",
        ];
        let mut alice = common::Peer::spawn_program(program, &args, dir.path());
        alice.expect_stderr("listening on");
        alice.send("bob/one");
        alice.send("bob/two");
        alice.close_stdin();
        assert!(alice.wait_exit().success());
        assert_eq!(reader.join().unwrap(), b"alice/one\nalice/two\n");
        let errors: Vec<String> = alice
            .err_seen
            .iter()
            .filter(|l| l.contains("ERROR") || l.contains("WARN"))
            .cloned()
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
    });
}

#[test]
fn a_frozen_friend_who_resumes_gets_every_message_once_in_order_and_nothing_is_reported_lost() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob", "carol"]);
        let mut alice = group.start_program(program, "alice", &["--ack-timeout", "1"]);
        let mut bob = group.start("bob", &[]);
        let mut carol = group.start("carol", &[]);
        alice.send("bob/are you there?");
        bob.expect_line("[alice] are you there?");
        alice.wait_settled("bob", 1); // bob has confirmed, so alice knows bob confirms

        bob.signal("-STOP");
        alice.send("bob/frozen?");
        // Past the ack timeout: a warning, not a failure, and the connection is kept.
        let warning = alice.expect_stderr("has confirmed nothing for");
        assert!(
            warning.contains("1 message(s) unconfirmed, still trying"),
            "{warning}"
        );
        alice.send("bob/one more");
        // Nobody else waits for bob.
        alice.send("carol/still here");
        carol.expect_line("[alice] still here");

        bob.signal("-CONT");
        bob.expect_line("[alice] frozen?");
        bob.expect_line("[alice] one more");
        alice.expect_settled("bob", 3, 0, 0);
        alice.send("carol/done");
        carol.expect_line("[alice] done");
        assert_eq!(bob.stdout_now(), Vec::<String>::new(), "each shown once");
        assert_eq!(alice.stderr_count("connected to bob"), 1, "one connection");
        assert_eq!(alice.stderr_count("may not have arrived"), 0);
    });
}

/// Alice (running `program`, giving up after 2 s) and bob: bob has confirmed one message, and
/// is stopped.
fn bob_frozen_after_a_confirmation(program: &str) -> (Group, common::Peer, common::Peer) {
    let group = Group::new(&["alice", "bob"]);
    let args = ["--ack-timeout", "1", "--give-up", "2"];
    let mut alice = group.start_program(program, "alice", &args);
    let mut bob = group.start("bob", &[]);
    alice.send("bob/are you there?");
    bob.expect_line("[alice] are you there?");
    alice.wait_settled("bob", 1);
    bob.signal("-STOP");
    (group, alice, bob)
}

#[test]
fn a_friend_frozen_past_the_give_up_gets_everything_in_order_and_the_report_is_revised() {
    common::both(|program| {
        let (_group, mut alice, mut bob) = bob_frozen_after_a_confirmation(program);
        alice.send("bob/frozen?");
        let report = alice.expect_stderr("may not have arrived");
        assert!(report.contains("1 message(s) to bob"), "{report}");
        alice.expect_stderr(
            "bob's machine answers, but bob reads nothing: the connection stays open",
        );
        // Typed after the give-up: it waits behind the connection bob's kernel holds.
        alice.send("bob/after the give-up");
        bob.signal("-CONT");
        bob.expect_line("[alice] frozen?");
        bob.expect_line("[alice] after the give-up");
        alice.expect_stderr("reported as possibly lost were confirmed after all: delivered");
        alice.expect_settled("bob", 3, 0, 0);
    });
}

#[test]
fn a_friend_frozen_with_their_window_full_past_the_give_up_gets_everything_in_order() {
    common::both(|program| {
        // 200 KB: more than a stopped program's kernel takes (about 130 KB here), less than
        // that and alice's own send queue together, so all of it is written.
        const TYPED: usize = 2_000;
        let (_group, mut alice, mut bob) = bob_frozen_after_a_confirmation(program);
        let text: String = (0..TYPED)
            .map(|i| format!("bob/{i:05} {}\n", "x".repeat(90)))
            .collect();
        let mut stdin = alice.take_stdin();
        // Fed from another thread, so a full pipe can never block the test.
        let feeder = thread::spawn(move || {
            stdin.write_all(text.as_bytes()).expect("feed alice");
            stdin
        });
        alice.expect_stderr("bob's machine answers, but bob reads nothing");
        let mut stdin = feeder.join().expect("the feeder");
        writeln!(stdin, "bob/after the give-up").expect("feed alice");
        bob.signal("-CONT");
        for i in 0..TYPED {
            bob.expect_line(&format!("[alice] {i:05} {}", "x".repeat(90)));
        }
        bob.expect_line("[alice] after the give-up");
        alice.expect_settled("bob", TYPED + 2, 0, 0);
        drop(stdin);
    });
}

#[test]
fn a_message_to_an_offline_friend_waits_and_arrives_when_they_start() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let mut alice = group.start_program(program, "alice", &[]);
        alice.send("bob/see this when you come online");
        let held = alice.expect_stderr("wait in their outbox");
        assert!(held.contains("1 message(s) to bob"), "{held}");
        let mut bob = group.start("bob", &[]);
        // Retried with backoff (at most 10 s apart), so well within the patience.
        bob.expect_line("[alice] see this when you come online");
        alice.expect_stderr("can be reached again");
        alice.wait_settled("bob", 1);
        assert_eq!(alice.stderr_count("not delivered"), 0);
    });
}

#[test]
fn a_friend_whose_host_does_not_resolve_does_not_stop_start_up_and_is_answered() {
    common::both(|program| {
        let dir = TempDir::new();
        let port = common::free_ports(1)[0];
        let table = dir.write(
            "peers.txt",
            &format!("alice 127.0.0.1 {port}\nlaptop no-such-host.invalid 7002\n"),
        );
        let args = ["--peers", table.to_str().unwrap(), "alice"];
        let mut alice = common::Peer::spawn_program(program, &args, dir.path());
        let warning = alice.expect_stderr("no-such-host.invalid");
        assert!(warning.contains("peers.txt:2"), "{warning}");
        // What becomes of their messages: p2p-chat looks the name up again, the loop never does.
        let then = match program {
            common::BIN => "messages to laptop will wait until it does",
            _ => "messages to laptop wait unsent: p2p-chat-select looks names up only at start-up",
        };
        assert!(warning.ends_with(then), "{warning}");
        alice.expect_stderr("listening on");
        alice.send("laptop/are you on?");
        let held = alice.expect_stderr("wait in their outbox");
        assert!(held.contains("cannot resolve host"), "{held}");
        alice.close_stdin();
        assert!(alice.wait_exit().success());
        let report = alice.expect_stderr("not delivered");
        assert!(report.contains("1 message(s) to laptop"), "{report}");
    });
}

/// A name for this test's namespaces and veths, different for each test in this process and
/// from other processes' (each test program is a process of its own).
fn tag() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}x{n}", std::process::id() % 100_000)
}

/// Two network namespaces joined by a veth pair, each side with an address of its own; removed
/// (with the veth) on drop, even when the test fails.
struct Netns {
    names: [String; 2],
}

impl Netns {
    /// Makes the pair. Where namespaces cannot be made (not root, no `ip`) the test fails,
    /// saying which step failed and what it needs: a network test is never skipped.
    fn pair() -> Netns {
        let tag = tag();
        let netns = Netns {
            names: [format!("p2pa{tag}"), format!("p2pb{tag}")],
        };
        let [a, b] = &netns.names;
        let (va, vb) = (format!("va{tag}"), format!("vb{tag}"));
        let steps: Vec<Vec<&str>> = vec![
            vec!["netns", "add", a],
            vec!["netns", "add", b],
            vec![
                "link", "add", &va, "netns", a, "type", "veth", "peer", "name", &vb, "netns", b,
            ],
            vec!["-n", a, "addr", "add", "10.231.77.1/24", "dev", &va],
            vec!["-n", b, "addr", "add", "10.231.77.2/24", "dev", &vb],
            vec!["-n", a, "link", "set", &va, "up"],
            vec!["-n", b, "link", "set", &vb, "up"],
            vec!["-n", a, "link", "set", "lo", "up"],
            vec!["-n", b, "link", "set", "lo", "up"],
        ];
        for step in steps {
            let failed = match Command::new("ip").args(&step).output() {
                Ok(out) if out.status.success() => continue,
                Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
                Err(e) => format!("cannot run ip: {e}"),
            };
            // `netns` is dropped here, which removes whatever was made.
            panic!(
                "this test needs network namespaces (root, and iproute2's ip): \
                 `ip {}` failed: {failed}",
                step.join(" ")
            );
        }
        netns
    }

    /// Takes one side of the veth down (0: a's, 1: b's), or up again. Down on b's side, packets
    /// vanish, with no FIN and no RST; down on a's, a has no route to b at all.
    fn set_link(&self, side: usize, up: bool) {
        let state = if up { "up" } else { "down" };
        let tag = &self.names[side][4..];
        let veth = format!("{}{tag}", ["va", "vb"][side]);
        let status = Command::new("ip")
            .args(["-n", &self.names[side], "link", "set", &veth, state])
            .status()
            .expect("run ip");
        assert!(status.success());
    }

    /// Makes one side (0: a's, 1: b's) answer nothing, or answer again: a route that drops
    /// whatever it sends to the other side. Unlike a link taken down, the other side's packets
    /// still leave and arrive, as with a machine gone quiet on a LAN: nothing fails at the sender.
    fn silence(&self, side: usize, on: bool) {
        let other = ["10.231.77.2/32", "10.231.77.1/32"][side];
        let verb = if on { "add" } else { "del" };
        let status = Command::new("ip")
            .args(["-n", &self.names[side], "route", verb, "blackhole", other])
            .status()
            .expect("run ip");
        assert!(status.success());
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "del", name])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Alice (running `program` with `options`) and bob (p2p-chat), each in a namespace of the
/// pair, both listening. Bind them in this order, `let (netns, _dir, mut alice, mut bob)`, so
/// that alice and bob are dropped first and the namespaces last.
fn apart(program: &str, options: &[&str]) -> (Netns, TempDir, common::Peer, common::Peer) {
    let netns = Netns::pair();
    let dir = TempDir::new();
    let table = dir.write(
        "peers.txt",
        "alice 10.231.77.1 7001\nbob 10.231.77.2 7002\n",
    );
    let table = table.to_str().unwrap();
    let args = [&["--peers", table][..], options, &["alice"]].concat();
    let mut alice = common::Peer::spawn_in_netns(program, &netns.names[0], &args, dir.path());
    let args = ["--peers", table, "bob"];
    let mut bob = common::Peer::spawn_in_netns(common::BIN, &netns.names[1], &args, dir.path());
    alice.expect_stderr("listening on");
    bob.expect_stderr("listening on");
    (netns, dir, alice, bob)
}

#[test]
fn a_message_typed_with_no_route_to_the_friend_goes_once_the_route_is_back() {
    common::both(|program| {
        let (netns, _dir, mut alice, mut bob) = apart(program, &[]);
        // Alice's own side down: she has no route to bob, and her connect fails at once.
        netns.set_link(0, false);
        alice.send("bob/typed with no route");
        alice.expect_stderr("wait in their outbox");
        // The retry is alice's own doing: nothing else happens to wake her.
        netns.set_link(0, true);
        bob.expect_line("[alice] typed with no route");
        alice.expect_settled("bob", 1, 0, 0);
    });
}

/// One network namespace with a hosts file of its own (`ip netns exec` mounts
/// /etc/netns/NAME/hosts over /etc/hosts): removed, with the file, on drop.
struct HostsNetns {
    name: String,
    /// /etc/netns did not exist before: it goes too.
    made_dir: bool,
}

impl HostsNetns {
    fn new(hosts: &str) -> HostsNetns {
        let netns = HostsNetns {
            name: format!("p2ph{}", tag()),
            made_dir: !std::path::Path::new("/etc/netns").exists(),
        };
        let dir = format!("/etc/netns/{}", netns.name);
        std::fs::create_dir_all(&dir).expect("this test needs root, to write /etc/netns");
        std::fs::write(format!("{dir}/hosts"), hosts).expect("write the namespace's hosts");
        for step in [
            vec!["netns", "add", &netns.name],
            vec!["-n", &netns.name, "link", "set", "lo", "up"],
        ] {
            let out = Command::new("ip")
                .args(&step)
                .output()
                .expect("this test needs iproute2's ip");
            let why = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "`ip {}` failed (root?): {why}",
                step.join(" ")
            );
        }
        netns
    }
}

impl Drop for HostsNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name));
        if self.made_dir {
            let _ = std::fs::remove_dir("/etc/netns");
        }
    }
}

#[test]
fn a_friend_who_listens_only_on_their_hosts_second_address_is_reached() {
    common::both(|program| {
        // bobhost is ::1 first, where nobody listens, then 127.0.0.1, where bob does.
        let netns = HostsNetns::new("::1 bobhost\n127.0.0.1 bobhost\n");
        let dir = TempDir::new();
        let alice_table = dir.write("alice.txt", "alice 127.0.0.1 7001\nbob bobhost 7002\n");
        let bob_table = dir.write("bob.txt", "alice 127.0.0.1 7001\nbob 127.0.0.1 7002\n");
        let args = ["--peers", bob_table.to_str().unwrap(), "bob"];
        let mut bob = common::Peer::spawn_in_netns(common::BIN, &netns.name, &args, dir.path());
        let args = ["--peers", alice_table.to_str().unwrap(), "alice"];
        let mut alice = common::Peer::spawn_in_netns(program, &netns.name, &args, dir.path());
        bob.expect_stderr("listening on");
        alice.expect_stderr("listening on");
        alice.send("bob/found you");
        bob.expect_line("[alice] found you");
        alice.expect_settled("bob", 1, 0, 0);
    });
}

#[test]
fn a_network_that_vanishes_past_the_ack_timeout_and_heals_delivers_everything_once_in_order() {
    common::both(|program| {
        let (netns, _dir, mut alice, mut bob) = apart(program, &["--ack-timeout", "1"]);
        alice.send("bob/over the wire");
        bob.expect_line("[alice] over the wire");
        alice.wait_settled("bob", 1);

        // No FIN, no RST: packets vanish, past the ack timeout.
        netns.set_link(1, false);
        alice.send("bob/into the void");
        alice.expect_stderr("has confirmed nothing for");
        alice.send("bob/and back");
        netns.set_link(1, true);
        bob.expect_line("[alice] into the void");
        bob.expect_line("[alice] and back");
        alice.expect_settled("bob", 3, 0, 0);
        assert_eq!(alice.stderr_count("connected to bob"), 1, "one connection");
        assert_eq!(alice.stderr_count("may not have arrived"), 0);
        drop((alice, bob)); // kill both before the namespaces go
    });
}

#[test]
fn a_connection_kept_for_a_frozen_friend_ends_when_their_machine_stops_answering() {
    common::both(|program| kept_for_a_frozen_friend_then_gone(program, false));
}

#[test]
fn a_connection_kept_for_a_frozen_friend_ends_when_their_machine_stops_answering_before_our_fin() {
    common::both(|program| kept_for_a_frozen_friend_then_gone(program, true));
}

/// Bob frozen past `--give-up`, the connection kept for him to read; then his machine goes
/// quiet: once it has acknowledged alice's FIN (the kernel's keepalive probes go unanswered),
/// or `before_our_fin`, with everything but the FIN acknowledged (the FIN's retransmissions go
/// unanswered, and keepalive does not probe while they go). Either way the connection ends in
/// seconds, and what waited behind it goes once bob is back.
fn kept_for_a_frozen_friend_then_gone(program: &str, before_our_fin: bool) {
    let options = [
        "--ack-timeout",
        "1",
        "--give-up",
        "3",
        "--connect-timeout",
        "1",
    ];
    let (netns, _dir, mut alice, mut bob) = apart(program, &options);
    alice.send("bob/over the wire");
    bob.expect_line("[alice] over the wire");
    alice.wait_settled("bob", 1);

    // Frozen past --give-up: the connection is kept for bob to read.
    bob.signal("-STOP");
    alice.send("bob/frozen?");
    if before_our_fin {
        wait_for_everything_acknowledged(&netns.names[0]);
        netns.silence(1, true);
    }
    alice.expect_stderr("bob's machine answers, but bob reads nothing");
    alice.send("bob/typed while frozen");
    if !before_our_fin {
        wait_for_no_unacked_connection(&netns.names[0]);
        netns.silence(1, true);
    }
    alice.expect_stderr("our connection to bob ended");
    bob.signal("-CONT");
    bob.expect_line("[alice] frozen?");
    // Back: what waited goes on a new connection.
    netns.silence(1, false);
    bob.expect_line("[alice] typed while frozen");
    alice.expect_settled("bob", 2, 0, 1);
    drop((alice, bob)); // kill both before the namespaces go
}

#[test]
fn what_was_given_up_on_is_never_sent_late_after_newer_messages() {
    common::both(|program| {
        let (netns, _dir, mut alice, mut bob) =
            apart(program, &["--ack-timeout", "1", "--give-up", "2"]);
        alice.send("bob/over the wire");
        bob.expect_line("[alice] over the wire");
        alice.wait_settled("bob", 1);

        // Alice's network is down past --give-up: she reports the message and closes.
        netns.set_link(0, false);
        alice.send("bob/given up on");
        alice.expect_stderr("may not have arrived");
        // It comes back. Alice's kernel still held the message and its FIN: had it kept retrying
        // them, the message would be shown late, after one typed since.
        netns.set_link(0, true);
        alice.send("bob/after the give-up");
        bob.expect_line("[alice] after the give-up");
        wait_for_no_unacked_connection(&netns.names[0]);
        alice.send("bob/last");
        bob.expect_line("[alice] last");
        drop((alice, bob)); // kill both before the namespaces go
    });
}

/// Waits until no connection in namespace `netns` has sent a FIN that is not yet acknowledged,
/// which is how a connection closed with bytes still in flight waits.
fn wait_for_no_unacked_connection(netns: &str) {
    wait_for_connections(netns, "fin-wait-1", "still waits to send", str::is_empty);
}

/// Waits until namespace `netns` has an established connection, and every byte written on
/// each has been acknowledged (its send queue, the second column, is empty).
fn wait_for_everything_acknowledged(netns: &str) {
    wait_for_connections(
        netns,
        "established",
        "holds unacknowledged bytes",
        |listed| {
            let mut queues = listed.lines().map(|l| l.split_whitespace().nth(1));
            !listed.is_empty() && queues.all(|q| q == Some("0"))
        },
    );
}

/// Waits until `ss`'s list of the TCP connections in `state` in namespace `netns` passes `ok`.
fn wait_for_connections(netns: &str, state: &str, failing: &str, ok: impl Fn(&str) -> bool) {
    let deadline = std::time::Instant::now() + common::PATIENCE;
    loop {
        let out = Command::new("ip")
            .args(["netns", "exec", netns, "ss", "-tnH", "state", state])
            .output()
            .expect("run ss");
        let listed = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if ok(&listed) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a connection {failing}: {listed}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_15_mb_burst_with_idle_closes_between_its_parts_arrives_whole_and_in_order() {
    common::both(|program| {
        // About 15 MB of frames in four parts. Each part takes far longer to deliver than the idle
        // timeout, so an idle close that overtook queued messages would show as disorder; between
        // parts alice waits for the idle close itself, so each part goes over a fresh connection.
        const COUNT: usize = 200_000;
        const PARTS: usize = 4;
        let group = Group::new(&["alice", "bob"]);
        let mut bob = group.start("bob", &[]);
        let mut alice = group.start_program(program, "alice", &["--idle-timeout", "0.3"]);
        let mut stdin = alice.take_stdin();
        for part in 0..PARTS {
            let range = part * COUNT / PARTS..(part + 1) * COUNT / PARTS;
            let text: String = range
                .clone()
                .map(|i| format!("bob/{i:06} {}\n", "x".repeat(62)))
                .collect();
            // Fed from another thread, so a full pipe can never deadlock the test.
            let feeder = thread::spawn(move || {
                stdin.write_all(text.as_bytes()).expect("feed alice");
                stdin
            });
            for i in range {
                let line = bob.next_line();
                assert!(
                    line.starts_with(&format!("[alice] {i:06} ")),
                    "message {i} out of order: {line}"
                );
            }
            stdin = feeder.join().expect("feeder thread");
            alice.expect_stderr_count("closing idle connection to bob", part + 1);
        }
        drop(stdin);
        assert!(alice.wait_exit().success());
        // Every connection ended in an idle close: at least one a part (more, if a busy machine
        // paused the feeder for longer than the idle timeout), and none failed.
        let closes = alice.stderr_count("closing idle connection to bob");
        assert!(closes >= PARTS, "{closes} idle closes");
        assert_eq!(alice.stderr_count("connected to bob"), closes);
        assert_eq!(alice.stderr_count("not delivered"), 0);
        assert_eq!(alice.stderr_count("may not have arrived"), 0);
    });
}

#[test]
fn a_friend_who_reads_nothing_of_60_mb_holds_up_input_only_until_stalled_on_one_connection() {
    common::both(|program| {
        const TYPED: usize = 1000; // 60 MB
        let (group, bob) = Group::with_listener(&["alice", "carol", "bob"]);
        // bob accepts and never reads, and never confirms: a classic peer, frozen.
        let (accepted_tx, accepted) = crossbeam_channel::unbounded();
        thread::spawn(move || {
            for stream in bob.incoming().flatten() {
                if accepted_tx.send(stream).is_err() {
                    break;
                }
            }
        });
        let mut carol = group.start("carol", &[]);
        let mut alice =
            group.start_program_logging(program, "alice", &["--write-timeout", "1"], "debug");
        let feeder = alice.flood("bob", TYPED, "carol/past the stall");
        carol.expect_line("[alice] past the stall");
        // Input waited while bob's outbox was full and bob might still take bytes, until the write
        // timeout found bob stalled; after that, what does not fit is refused, and nobody waits.
        alice.expect_stderr("--write-timeout");
        drop(feeder.join().expect("feeder"));
        assert!(alice.wait_exit().success());
        let connections: Vec<_> = accepted.try_iter().collect();
        assert_eq!(
            connections.len(),
            1,
            "one connection carries bob's messages"
        );
        // Input waited while bob's kernel still took bytes (his outbox filled, drained a little,
        // filled again), and never after he was found stalled.
        let stalled = alice
            .err_seen
            .iter()
            .position(|l| l.contains("--write-timeout"))
            .expect("a stall report");
        let waits = |lines: &[String]| {
            lines
                .iter()
                .filter(|l| l.contains("input waits until"))
                .count()
        };
        assert!(
            waits(&alice.err_seen[..stalled]) >= 1,
            "{:#?}",
            alice.err_seen
        );
        assert_eq!(
            waits(&alice.err_seen[stalled..]),
            0,
            "{:#?}",
            alice.err_seen
        );
        // bob showed nothing, and every message to him is in a report, once.
        assert_eq!(
            common::reported(&alice.err_seen, "bob"),
            TYPED,
            "{:#?}",
            alice.err_seen
        );
    });
}

#[test]
fn a_second_ctrl_c_quits_at_once_and_still_reports_what_was_unconfirmed() {
    common::both(|program| {
        let (mut alice, bob) = quitting_with_bob_frozen(program);
        alice.interrupt();
        let status = alice.wait_exit();
        bob.signal("-CONT");
        assert_eq!(status.code(), Some(130), "{:#?}", alice.err_seen);
        // "unconfirmed" may not have arrived; what was typed during the quit was not sent.
        assert_eq!(
            common::reported(&alice.err_seen, "bob"),
            2,
            "{:#?}",
            alice.err_seen
        );
        let refused = "not delivered: you are quitting";
        assert_eq!(alice.stderr_count(refused), 1, "{:#?}", alice.err_seen);
    });
}

#[test]
fn a_message_typed_during_the_quit_is_reported_once_the_quit_ends() {
    common::both(|program| {
        let (mut alice, mut bob) = quitting_with_bob_frozen(program);
        bob.signal("-CONT");
        bob.expect_line("[alice] unconfirmed");
        assert_eq!(alice.wait_exit().code(), Some(0), "{:#?}", alice.err_seen);
        let refused = alice.expect_stderr("not delivered: you are quitting");
        assert!(refused.contains("1 message(s) to bob "), "{refused}");
        assert_eq!(common::reported(&alice.err_seen, "bob"), 1);
    });
}

/// Alice (running `program`) and bob: bob confirms "hello", is frozen, and alice sends
/// "unconfirmed", so her Ctrl-C waits for him; then she types one more message during the quit.
/// Returns once alice has read that message.
fn quitting_with_bob_frozen(program: &str) -> (common::Peer, common::Peer) {
    let group = Group::new(&["alice", "bob"]);
    let mut bob = group.start("bob", &[]);
    let mut alice = group.start_program(program, "alice", &[]);
    alice.send("bob/hello");
    bob.expect_line("[alice] hello");
    alice.wait_settled("bob", 1); // bob has confirmed, so the quit waits for him
    bob.signal("-STOP");
    alice.send("bob/unconfirmed");
    wait_until_read(&mut alice);
    alice.interrupt();
    alice.expect_stderr("interrupted");
    alice.send("bob/typed during the quit");
    wait_until_read(&mut alice);
    (alice, bob)
}

/// Returns once `peer` has read every line sent to it so far: it answers a `/peers` sent after
/// them, and the console takes lines in order.
fn wait_until_read(peer: &mut common::Peer) {
    let tables = peer.stderr_count("(you)");
    peer.send("/peers");
    peer.expect_stderr_count("(you)", tables + 1);
}

#[test]
fn quitting_while_input_waits_on_a_frozen_friend_reports_every_message_typed() {
    common::both(|program| {
        const TYPED: usize = 400; // 24 MB: more than bob's kernel buffers and outbox together
        let group = Group::new(&["alice", "bob"]);
        let mut bob = group.start("bob", &[]);
        let mut alice = group.start_program(
            program,
            "alice",
            &["--write-timeout", "1", "--ack-timeout", "1"],
        );
        alice.send("bob/hello");
        bob.expect_line("[alice] hello");
        alice.wait_settled("bob", 1); // bob has confirmed, so alice knows bob confirms

        bob.signal("-STOP");
        let feeder = alice.flood("bob", TYPED, "/quit");
        let status = alice.wait_exit();
        feeder.join().expect("feeder");
        bob.signal("-CONT");
        assert!(status.success());
        // bob was frozen throughout: none of the 400 can have been confirmed, so each one must be
        // in a report, as not delivered or as maybe lost, and none twice.
        assert_eq!(
            common::reported(&alice.err_seen, "bob"),
            TYPED,
            "{:#?}",
            alice.err_seen
        );
    });
}

#[test]
fn a_friend_killed_with_our_bytes_unread_is_told_once_and_shown_nothing_twice() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let mut alice = group.start_program(program, "alice", &[]);
        let mut bob = group.start("bob", &[]);
        alice.send("bob/first");
        bob.expect_line("[alice] first");
        alice.wait_settled("bob", 1);

        // Frozen, bob's kernel takes the bytes but bob never reads them; killed, bob's kernel
        // answers with a reset. What his kernel took may or may not have been shown (a confirmation
        // can be lost too), so it is reported, not sent again blindly; what never left would be
        // sent again. Either way: one fate, and nothing shown twice.
        bob.signal("-STOP");
        alice.send("bob/unread when you crashed");
        bob.kill();
        let mut bob = group.start("bob", &[]);
        bob.send("alice/I am back");
        alice.expect_line("[bob] I am back");
        alice.send("bob/after");
        let mut before_after = Vec::new();
        loop {
            match bob.next_line() {
                line if line == "[alice] after" => break,
                line => before_after.push(line),
            }
        }
        let settled = alice.wait_settled("bob", 3);
        let shown = before_after == ["[alice] unread when you crashed"];
        assert!(shown || before_after.is_empty(), "{before_after:#?}");
        let reported = common::reported(&alice.err_seen, "bob");
        assert_eq!(usize::from(shown) + reported, 1, "{:#?}", alice.err_seen);
        let expected = match shown {
            true => "3 delivered, 0 sent, 0 failed",
            false => "2 delivered, 0 sent, 1 failed",
        };
        assert!(settled.contains(expected), "{settled}");
    });
}

#[test]
fn a_stalled_friend_who_catches_up_gets_everything_in_order_and_nothing_is_reported_lost() {
    // 21 MB for bob, frozen past the write and ack timeouts: alice finds him stalled and warns,
    // refuses what does not fit in his outbox, and keeps the connection. When he resumes he
    // shows every message that was not refused, once and in order, and each one shown counts
    // as delivered: no message he showed is reported as possibly lost.
    const TYPED: usize = 350;
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let mut bob = group.start("bob", &[]);
        let options = ["--write-timeout", "1", "--ack-timeout", "1"];
        let mut alice = group.start_program(program, "alice", &options);
        alice.send("bob/first");
        bob.expect_line("[alice] first");
        alice.wait_settled("bob", 1);

        bob.signal("-STOP");
        let feeder = alice.flood("bob", TYPED, "/peers");
        alice.expect_stderr("bob has taken none of our bytes");
        alice.expect_stderr("has confirmed nothing for");
        let stdin = feeder.join().expect("feeder");
        bob.signal("-CONT");
        // Every message typed has its fate once bob has caught up: delivered, or refused at
        // the door while his outbox was full.
        let settled = alice.wait_settled("bob", TYPED + 1);
        let counts: Vec<usize> = settled
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        let (delivered, failed) = (counts[counts.len() - 3], counts[counts.len() - 1]);
        assert_eq!(delivered + failed, TYPED + 1, "{settled}");
        assert!(
            failed > 0,
            "some were refused while he was stalled: {settled}"
        );
        // bob showed exactly the delivered ones, once each, in the order typed.
        for i in 1..delivered {
            let line = bob.next_line();
            assert!(line.starts_with("[alice] zzz"), "line {i}: {line:.40}");
        }
        drop(stdin); // end of input
        assert!(alice.wait_exit().success());
        assert_eq!(
            bob.stdout_now(),
            Vec::<String>::new(),
            "nothing shown twice"
        );
        let refused = alice.expect_stderr("refused while their outbox was full");
        assert!(
            refused.contains(&format!("{failed} message(s) to bob")),
            "{refused}"
        );
        assert_eq!(
            alice.stderr_count("may not have arrived"),
            0,
            "{:#?}",
            alice.err_seen
        );
    });
}
