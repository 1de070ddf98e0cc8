//! Hostile input, against both programs: names claimed from the wrong address must not lock a
//! friend out, and bad values are refused at the door (durations that round to nothing, peer
//! tables that are not files or are huge, invisible characters in names, look-alike names).

mod common;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Command;

use common::{TempDir, both, free_ports, run_program_to_end};
use nix::libc;

/// A connection to `to` from the loopback address `from` (any 127.x.y.z is this machine), so a
/// test can play friends at different addresses.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let sin = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let IpAddr::V4(to_ip) = to.ip() else {
        panic!("IPv4 only")
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns, with addresses that live
    // across each call.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let owned = OwnedFd::from_raw_fd(fd);
        let local = sin(from, 0);
        let bound = libc::bind(fd, &local as *const _ as *const libc::sockaddr, len);
        assert_eq!(bound, 0, "bind {from}: {}", std::io::Error::last_os_error());
        let remote = sin(to_ip, to.port());
        let done = libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len);
        assert_eq!(done, 0, "connect {to}: {}", std::io::Error::last_os_error());
        TcpStream::from(owned)
    }
}

/// A table of five friends, each at an address of their own, alice's at 127.0.0.1.
fn table_at_five_addresses(dir: &TempDir) -> (String, Vec<SocketAddr>) {
    let ports = free_ports(5);
    let names = ["alice", "bob", "carol", "dave", "eve"];
    let addrs: Vec<SocketAddr> = (0..5)
        .map(|i| SocketAddr::from(([127, 0, 0, [1, 3, 4, 5, 6][i]], ports[i])))
        .collect();
    let text: String = names
        .iter()
        .zip(&addrs)
        .map(|(name, addr)| format!("{name} {} {}\n", addr.ip(), addr.port()))
        .collect();
    let path = dir.write("peers.txt", &text);
    (path.to_str().unwrap().to_string(), addrs)
}

/// `claims` connections from 127.0.0.2, each naming one of the five friends in turn and saying
/// one frame, fill alice's cap; then bob connects from his own address and must get through.
fn claims_from_a_wrong_address_never_lock_out_a_friend(claims: usize) {
    both(|program| {
        let dir = TempDir::new();
        let (table, addrs) = table_at_five_addresses(&dir);
        let args = ["--peers", table.as_str(), "alice"];
        let mut alice = common::Peer::spawn_program(program, &args, dir.path());
        alice.expect_stderr("listening on");
        let names = ["alice", "bob", "carol", "dave", "eve"];
        let attacker = Ipv4Addr::new(127, 0, 0, 2);
        let mut held = Vec::new();
        for i in 0..claims {
            let mut claim = connect_from(attacker, addrs[0]);
            let name = names[i % names.len()];
            claim
                .write_all(format!("{name}/claim {i}\n").as_bytes())
                .unwrap();
            held.push(claim);
        }
        // Every claim got in and was shown, marked, the last one too (older ones make room
        // for newer): alice has read them all, and the cap is full of claims that have spoken.
        let last = format!("claim {}", claims - 1);
        loop {
            let line = alice.next_line();
            assert!(line.contains("(unverified: from 127.0.0.2)"), "{line}");
            if line.ends_with(&last) {
                break;
            }
        }
        let mut bob = connect_from(Ipv4Addr::new(127, 0, 0, 3), addrs[0]);
        bob.write_all(b"bob/it is really me\n").unwrap();
        loop {
            let line = alice.next_line();
            if line.contains("it is really me") {
                assert_eq!(line, "[bob] it is really me", "shown as bob, unmarked");
                break;
            }
            assert!(line.contains("unverified"), "{line}");
        }
        // Every connection alice lost was closed by her: pushed out to make room (said as
        // such), or at her quit. None may be told as the sender's doing.
        alice.close_stdin();
        assert!(alice.wait_exit().success());
        assert!(alice.stderr_count("to make room") > 0);
        assert_eq!(alice.stderr_count("closed their connection to you"), 0);
        drop(held);
    });
}

#[test]
fn twenty_claims_from_a_wrong_address_do_not_lock_out_a_friend_from_his_own() {
    claims_from_a_wrong_address_never_lock_out_a_friend(20);
}

#[test]
fn two_hundred_claims_from_a_wrong_address_do_not_lock_out_a_friend_from_his_own() {
    claims_from_a_wrong_address_never_lock_out_a_friend(200);
}

#[test]
fn durations_that_round_to_nothing_or_run_past_a_day_are_refused_with_the_range() {
    both(|program| {
        let dir = TempDir::new();
        let table = common::write_table(&dir, &["alice"], &free_ports(1));
        let table = table.to_str().unwrap();
        for (option, value) in [
            ("--connect-timeout", "1e-10"),
            ("--write-timeout", "1e-10"),
            ("--idle-timeout", "1e-300"),
            ("--ack-timeout", "0.0001"),
            ("--give-up", "1e9"),
        ] {
            let args = ["--peers", table, option, value, "alice"];
            let (status, _, stderr) = run_program_to_end(program, &args, dir.path(), b"");
            assert_eq!(status.code(), Some(2), "{option} {value}: {stderr}");
            assert!(stderr.contains("from 0.001 to 86400"), "{stderr}");
            // Each program points at its own help.
            let name = std::path::Path::new(program).file_name().unwrap();
            let hint = format!("Try '{} --help'", name.to_string_lossy());
            assert!(stderr.contains(&hint), "{stderr}");
        }
    });
}

#[test]
fn a_peer_table_that_is_not_a_file_or_is_huge_is_refused_and_a_byte_order_mark_is_not_a_name() {
    both(|program| {
        let dir = TempDir::new();
        let fifo = dir.path().join("fifo");
        let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(made.success());
        let huge = dir.write("huge.txt", &"# padding\n".repeat(120_000));
        let fifo = fifo.to_str().unwrap();
        let huge = huge.to_str().unwrap();
        for (path, says) in [
            ("/dev/zero", "not a regular file"),
            (fifo, "not a regular file"),
            (huge, "larger than 1024 KiB"),
        ] {
            let (status, _, stderr) =
                run_program_to_end(program, &["--peers", path, "alice"], dir.path(), b"");
            assert_eq!(status.code(), Some(2), "{path}: {stderr}");
            assert!(stderr.contains(says), "{path}: {stderr}");
        }
        // A byte order mark before the first name is not part of it.
        let port = free_ports(1)[0];
        let bom = dir.write("bom.txt", &format!("\u{feff}alice 127.0.0.1 {port}\n"));
        let args = ["--peers", bom.to_str().unwrap(), "alice"];
        let (status, _, stderr) = run_program_to_end(program, &args, dir.path(), b"/quit\n");
        assert_eq!(status.code(), Some(0), "{stderr}");
        // A bidi override inside a name is refused, with its line.
        let bidi = dir.write(
            "bidi.txt",
            "alice 127.0.0.1 7001\nb\u{202e}ob 127.0.0.1 7002\n",
        );
        let args = ["--peers", bidi.to_str().unwrap(), "alice"];
        let (status, _, stderr) = run_program_to_end(program, &args, dir.path(), b"");
        assert_eq!(status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("bidi.txt:2: name \"b\\u{202e}ob\""),
            "{stderr}"
        );
    });
}

#[test]
fn a_look_alike_name_is_spelled_out_in_the_warning() {
    both(|program| {
        let group = common::Group::new(&["alice", "bob"]);
        let mut bob = group.start_program(program, "bob", &[]);
        let mut raw = common::connect(group.port(1));
        // A Cyrillic a: not alice.
        raw.write_all("\u{430}lice/it is me\n".as_bytes()).unwrap();
        let warning = bob.expect_stderr("who is not in the peer table");
        assert!(warning.contains("(\\u{430}lice)"), "{warning}");
    });
}
