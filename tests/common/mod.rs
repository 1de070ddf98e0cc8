//! Shared helpers for the black-box tests, and for the benchmarks, which include this file too:
//! a fresh directory with a peer table on free loopback ports, and [`Peer`], a running `p2p-chat`
//! process whose output is collected by background threads so that a test waits on a condition
//! with a timeout, never on a bare blocking read. Every process is killed when its `Peer` is
//! dropped, even if the test fails.

#![allow(dead_code)] // each test file uses a different part of this module

// Processes, pipes, directories, ports and tables: shared with the benchmarks and the demo too.
mod process;
pub use process::*;
// A tmux server of the test's own, for the tests of the console and of the demo in tmux.
pub mod tmux;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, unbounded};

pub const BIN: &str = env!("CARGO_BIN_EXE_p2p-chat");
/// The same chat as one poll() loop: the classic design, run by the same classic tests.
pub const SELECT_BIN: &str = env!("CARGO_BIN_EXE_p2p-chat-select");

/// How long a test waits for something that should take milliseconds. Generous, so a loaded
/// machine does not make a test flaky; a passing test never waits this long.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A directory with `peers.txt` naming each friend on 127.0.0.1 at a free port.
pub struct Group {
    pub dir: TempDir,
    pub table: PathBuf,
    pub ports: Vec<u16>,
}

impl Group {
    pub fn new(names: &[&str]) -> Group {
        Group::at(names, free_ports(names.len()))
    }

    /// Like [`Group::new`], but the last name is played by the test: it gets the listener that
    /// holds its port, so nothing can take the port before the test uses it.
    pub fn with_listener(names: &[&str]) -> (Group, TcpListener) {
        let mut listeners = reserve_ports(names.len());
        let ports = listeners
            .iter()
            .map(|l| l.local_addr().expect("local addr").port())
            .collect();
        let listener = listeners.pop().expect("at least one name");
        (Group::at(names, ports), listener)
    }

    fn at(names: &[&str], ports: Vec<u16>) -> Group {
        let dir = TempDir::new();
        let table = write_table(&dir, names, &ports);
        Group { dir, table, ports }
    }

    pub fn port(&self, index: usize) -> u16 {
        self.ports[index]
    }

    /// Starts `name` with this group's table and waits until it listens.
    pub fn start(&self, name: &str, extra: &[&str]) -> Peer {
        self.start_logging(name, extra, "info")
    }

    /// Like [`Group::start`], running `program` (p2p-chat or p2p-chat-select).
    pub fn start_program(&self, program: &str, name: &str, extra: &[&str]) -> Peer {
        self.start_program_logging(program, name, extra, "info")
    }

    /// Like [`Group::start`], with `RUST_LOG` set to `filter`.
    pub fn start_logging(&self, name: &str, extra: &[&str], filter: &str) -> Peer {
        self.start_program_logging(BIN, name, extra, filter)
    }

    /// Like [`Group::start_program`], with `RUST_LOG` set to `filter`.
    pub fn start_program_logging(
        &self,
        program: &str,
        name: &str,
        extra: &[&str],
        filter: &str,
    ) -> Peer {
        let mut args = vec!["--peers", self.table.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        args.push(name);
        let dir = self.dir.path();
        let mut peer = Peer::spawn_program_logging(program, &args, dir, Stdio::piped(), filter);
        peer.expect_stderr("listening on");
        peer
    }
}

/// Runs `test` once for each program, p2p-chat (threads) and p2p-chat-select (one poll()
/// loop): the two drivers of one model must behave alike.
pub fn both(test: impl Fn(&str)) {
    for program in [BIN, SELECT_BIN] {
        eprintln!("--- {program}");
        test(program);
    }
}

/// One running `p2p-chat` process.
pub struct Peer {
    child: KillOnDrop,
    stdin: Option<ChildStdin>,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Everything read so far, for failure messages.
    pub out_seen: Vec<String>,
    pub err_seen: Vec<String>,
}

impl Peer {
    /// Starts the binary with `args` in `dir`, all three standard streams piped.
    pub fn spawn(args: &[&str], dir: &Path) -> Peer {
        Peer::spawn_with_stdin(args, dir, Stdio::piped())
    }

    /// Starts the binary with `args` in `dir`, reading `stdin`; stdout and stderr piped.
    pub fn spawn_with_stdin(args: &[&str], dir: &Path, stdin: Stdio) -> Peer {
        Peer::spawn_logging(args, dir, stdin, "info")
    }

    /// Starts the binary with `args` in `dir`, reading `stdin`, with `RUST_LOG` set to `filter`.
    pub fn spawn_logging(args: &[&str], dir: &Path, stdin: Stdio, filter: &str) -> Peer {
        Peer::spawn_program_logging(BIN, args, dir, stdin, filter)
    }

    /// Starts `program` (p2p-chat or p2p-chat-select) with `args` in `dir`, streams piped.
    pub fn spawn_program(program: &str, args: &[&str], dir: &Path) -> Peer {
        Peer::spawn_program_logging(program, args, dir, Stdio::piped(), "info")
    }

    fn spawn_program_logging(
        program: &str,
        args: &[&str],
        dir: &Path,
        stdin: Stdio,
        filter: &str,
    ) -> Peer {
        let mut command = Command::new(program);
        command
            .env("RUST_LOG", with_state(filter))
            .env_remove("NO_COLOR");
        Peer::spawn_command(command, args, dir, stdin)
    }

    /// Starts `program` inside the network namespace `netns` (with `ip netns exec`, which
    /// becomes the program, so killing the child kills it).
    pub fn spawn_in_netns(program: &str, netns: &str, args: &[&str], dir: &Path) -> Peer {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", netns, program]);
        command
            .env("RUST_LOG", with_state("info"))
            .env_remove("NO_COLOR");
        Peer::spawn_command(command, args, dir, Stdio::piped())
    }

    /// Starts `command` with `args` in `dir`, reading `stdin`, its output collected line by line;
    /// killed when dropped. The command's environment is the caller's to set.
    pub fn spawn_command(mut command: Command, args: &[&str], dir: &Path, stdin: Stdio) -> Peer {
        let mut child = command
            .args(args)
            .current_dir(dir)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start p2p-chat");
        let stdout = collect_lines(child.stdout.take().expect("piped stdout"));
        let stderr = collect_lines(child.stderr.take().expect("piped stderr"));
        let mut child = KillOnDrop(child);
        Peer {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            out_seen: Vec::new(),
            err_seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Types one line.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        writeln!(stdin, "{line}").expect("write to p2p-chat's stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Writes raw bytes to stdin in one go (from the calling thread).
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        stdin.write_all(bytes).expect("write to p2p-chat's stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Takes stdin, e.g. to feed it from another thread.
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin is still open")
    }

    /// Types `count` messages of 60 KB to `friend`, then the line `last`, from another thread,
    /// so a full pipe never blocks the test. The thread returns stdin, still open.
    pub fn flood(&mut self, friend: &str, count: usize, last: &str) -> JoinHandle<ChildStdin> {
        let mut stdin = self.take_stdin();
        let line = format!("{friend}/{}\n", "z".repeat(60_000));
        let last = format!("{last}\n");
        thread::spawn(move || {
            for _ in 0..count {
                stdin.write_all(line.as_bytes()).expect("feed the peer");
            }
            stdin.write_all(last.as_bytes()).expect("feed the peer");
            stdin
        })
    }

    /// Closes stdin: end of input, which means /quit.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the next stdout line, which must be `expected`.
    pub fn expect_line(&mut self, expected: &str) {
        let line = self.next_line();
        assert_eq!(line, expected, "stderr so far: {:#?}", self.drain_stderr());
    }

    /// The next stdout line, waiting up to [`PATIENCE`].
    pub fn next_line(&mut self) -> String {
        match self.stdout.recv_timeout(PATIENCE) {
            Ok(line) => {
                self.out_seen.push(line.clone());
                line
            }
            Err(e) => {
                let stderr = self.drain_stderr();
                panic!(
                    "no stdout line within {PATIENCE:?} ({e:?}); stdout so far: {:#?}; stderr: {stderr:#?}",
                    self.out_seen
                )
            }
        }
    }

    /// Waits until a stdout line equal to `expected` appears (other lines may come first).
    pub fn expect_stdout(&mut self, expected: &str) {
        wait_for(&self.stdout, &mut self.out_seen, |l| l == expected)
            .unwrap_or_else(|| panic!("stdout never showed {expected:?}: {:#?}", self.out_seen));
    }

    /// Waits until a stderr line containing `needle` appears; returns it.
    pub fn expect_stderr(&mut self, needle: &str) -> String {
        wait_for(&self.stderr, &mut self.err_seen, |l| l.contains(needle)).unwrap_or_else(|| {
            panic!(
                "stderr never showed {needle:?}; stderr: {:#?}; stdout: {:#?}",
                self.err_seen, self.out_seen
            )
        })
    }

    /// Whether the stdout line `expected` was seen or arrives within `timeout`.
    pub fn stdout_shows_within(&mut self, expected: &str, timeout: Duration) -> bool {
        if self.out_seen.iter().any(|l| l == expected) {
            return true;
        }
        wait_for_within(&self.stdout, &mut self.out_seen, timeout, |l| l == expected).is_some()
    }

    /// Waits until `count` stderr lines containing `needle` have been seen.
    pub fn expect_stderr_count(&mut self, needle: &str, count: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.err_seen.iter().filter(|l| l.contains(needle)).count() < count {
            match self.stderr.recv_deadline(deadline) {
                Ok(line) => self.err_seen.push(line),
                Err(_) => panic!(
                    "stderr never showed {needle:?} {count} times; stderr: {:#?}",
                    self.err_seen
                ),
            }
        }
    }

    /// Counts stderr lines seen so far containing `needle`.
    pub fn stderr_count(&mut self, needle: &str) -> usize {
        self.drain_stderr();
        self.err_seen.iter().filter(|l| l.contains(needle)).count()
    }

    /// Stdout lines that have already arrived, without waiting.
    pub fn stdout_now(&mut self) -> Vec<String> {
        let new: Vec<String> = self.stdout.try_iter().collect();
        self.out_seen.extend(new.iter().cloned());
        new
    }

    /// All stderr seen so far, including lines that have arrived but were not yet read.
    pub fn drain_stderr(&mut self) -> Vec<String> {
        self.err_seen.extend(self.stderr.try_iter());
        self.err_seen.clone()
    }

    /// Waits for the process to exit, up to [`PATIENCE`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.wait_exit_within(PATIENCE)
    }

    /// Waits up to `timeout` for the process to exit, then for its last lines.
    pub fn wait_exit_within(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the collector threads deliver the last lines.
                self.err_seen.extend(self.stderr.iter());
                self.out_seen.extend(self.stdout.iter());
                return status;
            }
            if Instant::now() >= deadline {
                let stderr = self.drain_stderr();
                self.out_seen.extend(self.stdout.try_iter());
                panic!(
                    "the process did not exit within {timeout:?}; stdout: {:#?}; stderr: {stderr:#?}",
                    self.out_seen
                );
            }
            // Polling a child's exit has no blocking-with-timeout form in std; a short pause
            // between polls is the standard way.
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until all `total` messages typed to `friend` so far are settled (delivered,
    /// counted as sent, or failed), as the dispatcher's state line says. `total` makes the wait
    /// exact: a line from an earlier, smaller total does not end it.
    /// Returns the line, which says how many were delivered, sent and failed.
    pub fn wait_settled(&mut self, friend: &str, total: usize) -> String {
        self.expect_stderr(&format!("all {total} message(s) to {friend} settled"))
    }

    /// Waits until every message to `friend` is settled and checks how: so many delivered, so
    /// many counted as sent, so many failed.
    pub fn expect_settled(&mut self, friend: &str, delivered: usize, sent: usize, failed: usize) {
        let settled = self.wait_settled(friend, delivered + sent + failed);
        let counts = format!("{delivered} delivered, {sent} sent, {failed} failed");
        assert!(settled.contains(&counts), "{settled}");
    }

    /// Sends SIGINT, as Ctrl-C in a terminal would.
    pub fn interrupt(&self) {
        self.signal("-INT");
    }

    /// Sends `signal` (`-STOP`, `-CONT`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        process::signal(self.pid(), signal);
    }

    /// Kills the process at once (a crash, from the friends' point of view).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The number of threads the process has now (Linux).
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .map(|dir| dir.count())
            .unwrap_or(0)
    }
}

/// A log filter with the state lines added, which [`Peer::wait_settled`] waits on.
fn with_state(filter: &str) -> String {
    format!("{filter},state=debug")
}

/// Connects to a peer's port on loopback, as a raw client: no Nagle delay, and reads that give
/// up after [`PATIENCE`] rather than block forever.
pub fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_nodelay(true).expect("set TCP_NODELAY");
    stream
        .set_read_timeout(Some(PATIENCE))
        .expect("set a read timeout");
    stream
}

/// A pipe's lines, read on a thread of its own.
fn collect_lines(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = unbounded();
    read_lines("lines".to_string(), pipe, tx, |line| line);
    rx
}

fn wait_for(
    rx: &Receiver<String>,
    seen: &mut Vec<String>,
    pred: impl Fn(&str) -> bool,
) -> Option<String> {
    if let Some(line) = seen.iter().find(|l| pred(l)) {
        return Some(line.clone());
    }
    wait_for_within(rx, seen, PATIENCE, pred)
}

fn wait_for_within(
    rx: &Receiver<String>,
    seen: &mut Vec<String>,
    timeout: Duration,
    pred: impl Fn(&str) -> bool,
) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        match rx.recv_deadline(deadline) {
            Ok(line) => {
                seen.push(line.clone());
                if pred(&line) {
                    return Some(line);
                }
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// Polls `condition` until it holds or [`PATIENCE`] runs out; returns whether it held. For state
/// that no stream announces, such as a process's thread count.
pub fn wait_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Runs the binary to completion with `args` in `dir` and the given stdin; returns
/// (exit status, stdout, stderr). Bounded by [`PATIENCE`].
pub fn run_to_end(args: &[&str], dir: &Path, stdin: &[u8]) -> (ExitStatus, String, String) {
    run_program_to_end(BIN, args, dir, stdin)
}

/// Like [`run_to_end`], running `program` (p2p-chat or p2p-chat-select).
pub fn run_program_to_end(
    program: &str,
    args: &[&str],
    dir: &Path,
    stdin: &[u8],
) -> (ExitStatus, String, String) {
    let mut peer = Peer::spawn_program(program, args, dir);
    if !stdin.is_empty() {
        peer.send_bytes(stdin);
    }
    peer.close_stdin();
    let status = peer.wait_exit();
    let out = peer.out_seen.join("\n");
    let err = peer.err_seen.join("\n");
    (status, out, err)
}

/// The sum of the counts a peer reported (in `lines`, its stderr) as not delivered or maybe
/// lost for `friend`.
pub fn reported(lines: &[String], friend: &str) -> usize {
    let to = format!(" message(s) to {friend} ");
    lines
        .iter()
        .filter(|l| l.contains("not delivered") || l.contains("may not have arrived"))
        .filter_map(|l| {
            let at = l.find(&to)?;
            let count = l[..at].rsplit(' ').next()?;
            count.parse::<usize>().ok()
        })
        .sum()
}
