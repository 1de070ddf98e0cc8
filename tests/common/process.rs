//! The plumbing every harness of the project needs, in one place: the tests include it through
//! their shared module, the benchmarks through the tests' module, and the demo directly. A child
//! process killed when dropped; a thread that reads a pipe line by line; a temporary directory; free
//! loopback ports; a peer table. Only the standard library and crossbeam, nothing that needs the
//! binaries' paths, so every one of them can include it.

#![allow(dead_code)] // each includer uses a different part

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use crossbeam_channel::Sender;

/// A child process that is killed and reaped when dropped, so that no way out of a test, a
/// benchmark or the demo (a failed assertion, a panic, Ctrl-C) leaves it running.
pub struct KillOnDrop(pub Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Killing a child that has already exited fails harmlessly; wait() reaps it either way.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads `pipe` line by line on a thread of its own named `name`, sending `wrap(line)` for each
/// (without its line ending; invalid UTF-8 replaced) until end-of-file or until the receiver is
/// gone. So nobody ever blocks on a pipe: they wait on the channel, with a timeout.
pub fn read_lines<T: Send + 'static>(
    name: String,
    pipe: impl Read + Send + 'static,
    lines: Sender<T>,
    wrap: impl Fn(String) -> T + Send + 'static,
) {
    let reader = move || {
        let mut pipe = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match pipe.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                line.pop();
            }
            if lines
                .send(wrap(String::from_utf8_lossy(&line).into_owned()))
                .is_err()
            {
                return;
            }
        }
    };
    thread::Builder::new()
        .name(name)
        .spawn(reader)
        .expect("cannot start a thread to read a pipe");
}

/// Sends `signal` (`-STOP`, `-CONT`, `-INT`, ...) to the process `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid} failed");
    // A stop reaches each thread of the process in its own time: wait until all have stopped,
    // or a thread already running could still show and confirm a message sent right after.
    if signal == "-STOP" {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !all_threads_stopped(pid) {
            assert!(std::time::Instant::now() < deadline, "{pid} did not stop");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// Whether every thread of `pid` is stopped (state `T` in /proc).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true; // gone
    };
    tasks.flatten().all(|task| {
        let state = stat_fields(&task.path()).map(|f| f[0].clone());
        matches!(state.as_deref(), Some("T") | Some("t") | None)
    })
}

/// Kills every process in the process group `pgid` (a tmux pane's shell and the peer it runs)
/// and waits, up to two seconds, until none of them runs. A peer whose terminal goes away quits
/// in its own time, delivering what it still holds, and keeps its port until then: long enough
/// for a test that starts next to be refused that port.
pub fn kill_group(pgid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(std::process::Stdio::null())
        .status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while group_runs(pgid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Whether a process of group `pgid` is still there and not a zombie (which holds no socket).
fn group_runs(pgid: u32) -> bool {
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return false;
    };
    let pgid = pgid.to_string();
    processes.flatten().any(|process| {
        stat_fields(&process.path()).is_some_and(|f| f.len() > 2 && f[2] == pgid && f[0] != "Z")
    })
}

/// The fields of `dir/stat` after the command name (which is in parentheses and may hold
/// spaces): the state first, then the parent, then the process group.
fn stat_fields(dir: &Path) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// A directory of its own under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "p2p-chat-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file in the directory and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `n` distinct loopback ports that were free a moment ago.
///
/// They are taken from [`port_range`], by default 20000-31999, below the kernel's range for
/// ephemeral ports (32768 and up on Linux): a port from `bind(0)` could be handed, between our
/// check and the peer's own bind, to an outgoing connection of a test running alongside, and that
/// peer would fail to start. Successive calls step through the range, so tests in one process do
/// not pick the same port.
pub fn free_ports(n: usize) -> Vec<u16> {
    reserve_ports(n)
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// Like [`free_ports`], but returns the listeners that hold the ports. A test that needs a port
/// to stay taken (a squatter) keeps its listener instead of binding the port again, which could
/// race with anything else on the machine.
pub fn reserve_ports(n: usize) -> Vec<TcpListener> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let (first, last) = port_range();
    let span = last - first + 1;
    // A step that shares no factor with the span visits every port of the range once.
    let step = (37..)
        .find(|s| gcd(*s, span) == 1)
        .expect("some step is coprime");
    let start = std::process::id() as usize * 7919;
    let mut held = Vec::new();
    for _ in 0..span {
        if held.len() == n {
            break;
        }
        let port = first + (start + NEXT.fetch_add(1, Ordering::SeqCst) * step) % span;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port as u16)) {
            held.push(listener);
        }
    }
    assert_eq!(
        held.len(),
        n,
        "no {n} free ports in {first}-{last} (set {PORTS_VARIABLE}=FIRST-LAST to use others)"
    );
    held
}

/// The environment variable that moves the ports the harness uses, e.g. `41000-41999`.
pub const PORTS_VARIABLE: &str = "P2P_TEST_PORTS";

/// The loopback ports the harness may use, inclusive: [`PORTS_VARIABLE`] if set, else
/// 20000-31999. A malformed value stops the run with a message saying how to write it.
pub fn port_range() -> (usize, usize) {
    let Ok(text) = std::env::var(PORTS_VARIABLE) else {
        return (20_000, 31_999);
    };
    parse_port_range(&text).unwrap_or_else(|| {
        panic!(
            "{PORTS_VARIABLE}={text:?} is not a port range: write FIRST-LAST, two ports from \
             1024 to 65535 with at least 16 between them, e.g. 41000-41999"
        )
    })
}

/// `FIRST-LAST` as two ports from 1024 to 65535, with at least 16 ports in the range.
pub fn parse_port_range(text: &str) -> Option<(usize, usize)> {
    let (first, last) = text.trim().split_once('-')?;
    let first: usize = first.trim().parse().ok()?;
    let last: usize = last.trim().parse().ok()?;
    (1024 <= first && first + 15 <= last && last <= 65_535).then_some((first, last))
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Writes `peers.txt` in `dir`, naming each friend on 127.0.0.1 at its port; returns its path.
pub fn write_table(dir: &TempDir, names: &[&str], ports: &[u16]) -> PathBuf {
    let text: String = names
        .iter()
        .zip(ports)
        .map(|(name, port)| format!("{name} 127.0.0.1 {port}\n"))
        .collect();
    dir.write("peers.txt", &text)
}
