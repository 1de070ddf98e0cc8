//! The two routes a line can take from a process's stdin to another's stdout, set up so that the
//! measurements treat them alike: two p2p-chat peers (alice sends, bob prints) and the bare relay.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{TempDir, free_ports, write_table};
use crate::harness::Process;
use crate::relay;

/// The threaded design.
pub const CHAT: &str = env!("CARGO_BIN_EXE_p2p-chat");
/// The same chat as one poll() loop.
pub const SELECT: &str = env!("CARGO_BIN_EXE_p2p-chat-select");

/// Long enough for a peer to start on a busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A sending process and a receiving one. Lines written to the sender's stdin come out on the
/// receiver's stdout.
pub struct Route {
    pub sender: Process,
    pub receiver: Process,
    /// The peer table of a chat route; removed when the route is dropped.
    _dir: Option<TempDir>,
}

impl Route {
    /// alice and bob, both running `program` ([`CHAT`] or [`SELECT`]), on free loopback ports.
    /// bob starts first, so alice's first message finds him listening. The connection is opened
    /// by the first message, so call [`Route::warm_up`] before timing anything.
    pub fn peers(program: &str, idle_timeout_secs: f64) -> Route {
        let dir = TempDir::new();
        let table = write_table(&dir, &["alice", "bob"], &free_ports(2));
        let idle = idle_timeout_secs.to_string();
        let (receiver, _) = start_peer(program, &table, "bob", &["--idle-timeout", &idle]);
        let (sender, _) = start_peer(program, &table, "alice", &["--idle-timeout", &idle]);
        Route {
            sender,
            receiver,
            _dir: Some(dir),
        }
    }

    /// Like [`Route::peers`], with both peers noting the time at every stage of every message
    /// (`P2P_STAGES`), written to `dir` when they quit (see [`Route::quit`]).
    pub fn peers_recording(program: &str, dir: &Path) -> Route {
        let table_dir = TempDir::new();
        let table = write_table(&table_dir, &["alice", "bob"], &free_ports(2));
        let record = [("P2P_STAGES", dir.to_str().expect("a UTF-8 path"))];
        let options = ["--idle-timeout", "30"];
        let (receiver, _) = start_peer_with(program, &table, "bob", &options, &record);
        let (sender, _) = start_peer_with(program, &table, "alice", &options, &record);
        Route {
            sender,
            receiver,
            _dir: Some(table_dir),
        }
    }

    /// Ends both peers as a person would, with the end of their input, and waits for them.
    pub fn quit(&mut self, timeout: Duration) {
        self.sender.close_stdin();
        assert!(self.sender.wait_exit(timeout), "the sender did not quit");
        self.receiver.close_stdin();
        assert!(
            self.receiver.wait_exit(timeout),
            "the receiver did not quit"
        );
    }

    pub fn relay() -> Route {
        let (sender, receiver) = relay::start();
        Route {
            sender,
            receiver,
            _dir: None,
        }
    }

    /// Sends `lines` lines and waits for them all, so connections are open and buffers grown.
    pub fn warm_up(&mut self, lines: usize) {
        let mut text = String::new();
        for i in 0..lines {
            let _ = writeln!(text, "bob/warm-up {i}");
        }
        self.sender.send(text.as_bytes());
        self.receiver
            .output
            .wait_lines(lines, Duration::from_secs(30));
    }

    /// Writes `bytes` (whole lines `bob/...`) to the sender's stdin.
    pub fn send(&mut self, bytes: &[u8]) {
        self.sender.send(bytes);
    }

    /// Waits for `count` lines on the receiver's stdout; returns when the last arrived and its text.
    pub fn wait_lines(&mut self, count: usize, timeout: Duration) -> (Instant, String) {
        let (at, line) = self.receiver.output.wait_lines(count, timeout);
        (at, String::from_utf8_lossy(&line).into_owned())
    }
}

/// Starts `program` as peer `name`, with `options` added, and waits for its `listening on`
/// line. Returns the peer and its start-up time, from spawn to that line.
pub fn start_peer(
    program: &str,
    table: &Path,
    name: &str,
    options: &[&str],
) -> (Process, Duration) {
    start_peer_with(program, table, name, options, &[])
}

/// Like [`start_peer`], with `envs` added to its environment.
pub fn start_peer_with(
    program: &str,
    table: &Path,
    name: &str,
    options: &[&str],
    envs: &[(&str, &str)],
) -> (Process, Duration) {
    let mut command = Command::new(program);
    command.envs(envs.iter().copied());
    command
        .arg("--peers")
        .arg(table)
        .args(options)
        .args(["--connect-timeout", "10", name])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    let peer = Process::spawn(name, command);
    let listening = peer.log.wait_for("listening on", START_TIMEOUT);
    let startup = listening.at - peer.spawned;
    (peer, startup)
}
