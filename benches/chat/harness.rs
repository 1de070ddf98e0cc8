//! Child processes for the benchmark, and the plumbing around them: each child's stdout and
//! stderr are read on threads of their own and stamped with the `Instant` they arrived, every
//! wait has a deadline, and every child is killed when its [`Process`] is dropped, so a failed
//! measurement never leaves a process behind. Also what `/proc` says about a process. Temporary
//! directories, free loopback ports and peer tables come from the tests' shared module
//! (`tests/common`), so there is one of each. Nothing here measures.

use std::fs;
use std::io::{self, Read, Write};
use std::process::{ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, unbounded};

use crate::common::{KillOnDrop, read_lines};

/// Bytes asked for per read of a child's stdout: large, so the reading side of the benchmark
/// costs few system calls and does not slow down what it measures.
const READ_BUFFER: usize = 1024 * 1024;

/// A running child with piped stdin, stdout and stderr. Dropping it kills and reaps the child.
pub struct Process {
    pub name: String,
    child: KillOnDrop,
    stdin: Option<ChildStdin>,
    pub output: Output,
    pub log: Log,
    /// When the child was spawned, for the start-up time.
    pub spawned: Instant,
}

impl Process {
    pub fn spawn(name: &str, mut command: Command) -> Process {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawned = Instant::now();
        let mut child = KillOnDrop(
            command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}")),
        );
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout was piped");
        let stderr = child.stderr.take().expect("stderr was piped");
        Process {
            name: name.to_string(),
            child,
            stdin,
            output: Output::start(name, stdout),
            log: Log::start(name, stderr),
            spawned,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes `bytes` to the child's stdin; blocks while the pipe is full.
    pub fn send(&mut self, bytes: &[u8]) {
        let stdin = self
            .stdin
            .as_mut()
            .expect("send is never called after close_stdin");
        stdin
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("cannot write to {}'s stdin: {e}", self.name));
    }

    /// Closes stdin: for p2p-chat, end of input is a graceful quit.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits up to `timeout` for the child to exit by itself; true if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let step = Duration::from_millis(5);
        let max_polls = timeout.as_millis() / step.as_millis() + 1;
        for _ in 0..max_polls {
            match self.child.try_wait() {
                Ok(Some(_)) => return true,
                Ok(None) if Instant::now() < deadline => thread::sleep(step),
                _ => return false,
            }
        }
        false
    }
}

/// One read from a child's stdout: when it arrived, how many lines it completed, and the text of
/// the last line it completed (without the newline).
struct Arrival {
    at: Instant,
    lines: usize,
    last_line: Vec<u8>,
}

/// A child's stdout, read on a thread of its own.
pub struct Output {
    name: String,
    arrivals: Receiver<Arrival>,
}

impl Output {
    fn start(name: &str, mut stdout: ChildStdout) -> Output {
        let (tx, arrivals) = unbounded();
        thread::Builder::new()
            .name(format!("stdout:{name}"))
            .spawn(move || {
                let mut buffer = vec![0u8; READ_BUFFER];
                // The start of a line whose newline has not arrived yet.
                let mut partial = Vec::new();
                loop {
                    let n = match stdout.read(&mut buffer) {
                        Ok(0) => return,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => return,
                    };
                    let at = Instant::now();
                    let arrival = split_lines(&buffer[..n], &mut partial, at);
                    if arrival.lines > 0 && tx.send(arrival).is_err() {
                        return;
                    }
                }
            })
            .expect("cannot start a thread to read a child's stdout");
        Output {
            name: name.to_string(),
            arrivals,
        }
    }

    /// Waits until exactly `count` more lines have been printed. Returns when the last of them
    /// arrived and its text. More lines than expected means the benchmark lost count: it panics.
    pub fn wait_lines(&self, count: usize, timeout: Duration) -> (Instant, Vec<u8>) {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        // Each arrival holds at least one line, so `count` arrivals are always enough.
        for _ in 0..count {
            match self.arrivals.recv_deadline(deadline) {
                Ok(arrival) => {
                    seen += arrival.lines;
                    if seen == count {
                        return (arrival.at, arrival.last_line);
                    }
                    assert!(
                        seen < count,
                        "{} printed {seen} lines where {count} were expected",
                        self.name
                    );
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{} printed {seen} of {count} lines within {:.1} s",
                    self.name,
                    timeout.as_secs_f64()
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{} closed its stdout after {seen} of {count} lines",
                    self.name
                ),
            }
        }
        unreachable!("count arrivals of at least one line each reach count lines")
    }
}

/// Counts the newlines in `bytes`, which follow `partial`, and finds the last complete line.
fn split_lines(bytes: &[u8], partial: &mut Vec<u8>, at: Instant) -> Arrival {
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    let mut last_line = Vec::new();
    match bytes.iter().rposition(|&b| b == b'\n') {
        None => partial.extend_from_slice(bytes),
        Some(end) => {
            let start = match bytes[..end].iter().rposition(|&b| b == b'\n') {
                Some(previous) => previous + 1,
                None => {
                    last_line = std::mem::take(partial);
                    0
                }
            };
            last_line.extend_from_slice(&bytes[start..end]);
            partial.clear();
            partial.extend_from_slice(&bytes[end + 1..]);
        }
    }
    Arrival {
        at,
        lines,
        last_line,
    }
}

/// One line a child wrote on stderr, and when it arrived.
pub struct LogLine {
    pub at: Instant,
    pub text: String,
}

/// A child's stderr, read line by line on a thread of its own.
pub struct Log {
    name: String,
    lines: Receiver<LogLine>,
}

impl Log {
    fn start(name: &str, stderr: ChildStderr) -> Log {
        let (tx, lines) = unbounded();
        read_lines(format!("stderr:{name}"), stderr, tx, |text| LogLine {
            at: Instant::now(),
            text,
        });
        Log {
            name: name.to_string(),
            lines,
        }
    }

    /// Waits for the next line containing `needle`, skipping others. Skipped warnings and errors
    /// are shown, since they usually explain a surprising figure.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> LogLine {
        let deadline = Instant::now() + timeout;
        // A peer writes a handful of lines per connection; this many means something is wrong.
        for _ in 0..100_000 {
            match self.lines.recv_deadline(deadline) {
                Ok(line) if line.text.contains(needle) => return line,
                Ok(line) => {
                    if line.text.contains("WARN") || line.text.contains("ERROR") {
                        eprintln!("    {}: {}", self.name, line.text);
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{} wrote no log line containing {needle:?} within {:.1} s",
                    self.name,
                    timeout.as_secs_f64()
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{} ended before writing a log line containing {needle:?}",
                    self.name
                ),
            }
        }
        panic!("{} wrote too many log lines without {needle:?}", self.name)
    }
}

/// What one process costs, from `/proc`.
#[derive(Debug, Clone, Copy)]
pub struct Footprint {
    pub threads: usize,
    pub fds: usize,
    pub rss_kib: u64,
}

pub fn footprint(pid: u32) -> Footprint {
    let count = |dir: String| {
        fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
            .count()
    };
    let status_path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&status_path)
        .unwrap_or_else(|e| panic!("cannot read {status_path}: {e}"));
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{status_path} has no VmRSS line"));
    Footprint {
        threads: count(format!("/proc/{pid}/task")),
        fds: count(format!("/proc/{pid}/fd")),
        rss_kib,
    }
}

/// The soft limit named `name` (as in `/proc/self/limits`, e.g. "Max open files") for this
/// process, which its children inherit.
pub fn soft_limit(name: &str) -> Option<String> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with(name))?;
    line[name.len()..]
        .split_whitespace()
        .next()
        .map(str::to_string)
}

/// The first line of a file under `/proc` or `/sys`, trimmed.
pub fn read_first_line(path: &str) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().next().map(|line| line.trim().to_string())
}
