//! The stage: the peers as child processes, and the transcript of what they were typed, showed
//! and logged. It runs on the demo's main thread, the only one that prints. The script names the
//! peers as the table does, types into them, and waits for the lines that show a step worked.
//!
//! Each child's stdout and stderr are read by a thread of their own (the project's shared
//! `read_lines`), which sends every line, labelled and timestamped, over one channel. Whenever
//! the stage waits, for a pause or for a line to appear, it receives from that channel with one
//! `select!` over it, the Ctrl-C channel and a timer set to the deadline, much as the chat's own
//! dispatcher does: so the transcript is printed in the order lines arrive, every wait has a
//! deadline, and Ctrl-C is noticed within moments. Every child is killed when the stage is
//! dropped, whatever way the demo ends; the children run in a process group of their own, so a
//! Ctrl-C at the terminal reaches the demo alone.

use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, at, never, select, unbounded};

use crate::Failure;
use crate::process::{KillOnDrop, read_lines};

/// How often a wait for a process to end looks again: `try_wait` has no channel to select on.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// How long a sign may take before the demo gives up on it, and a peer to start or to quit.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Stdin,
    Stdout,
    Stderr,
    /// The process ended; the text says how.
    Exit,
}

/// One line of the transcript: which peer, which of its pipes, and the text. A log line is kept
/// without its clock; the transcript has its own. The sign that a step worked is a `Line` too,
/// one the transcript must show: from that peer and pipe, containing that text.
pub struct Line {
    pub peer: String,
    pub source: Source,
    pub text: String,
    /// Seconds since the start of the demo, once the transcript has it.
    pub at: f64,
}

impl Line {
    fn new(peer: &str, source: Source, text: String) -> Line {
        let peer = peer.to_string();
        let at = 0.0;
        Line {
            peer,
            source,
            text,
            at,
        }
    }

    /// The sign that `to` shows the message `text` from `from`.
    pub fn shown(to: &str, from: &str, text: &str) -> Line {
        Line::new(to, Source::Stdout, format!("[{from}] {text}"))
    }

    /// The sign that `peer` logs a line (or prints a report on stderr) containing `text`.
    pub fn logged(peer: &str, text: &str) -> Line {
        Line::new(peer, Source::Stderr, text.to_string())
    }

    /// Whether this line is the `sign`.
    fn shows(&self, sign: &Line) -> bool {
        self.peer == sign.peer && self.source == sign.source && self.text.contains(&sign.text)
    }
}

/// A friend on the stage: how to start them (a `Command` can be spawned again, to restart them)
/// and, while they run, their process and the stdin the script types into.
struct Peer {
    name: String,
    command: Command,
    running: Option<KillOnDrop>,
    stdin: Option<ChildStdin>,
}

pub struct Stage {
    peers: Vec<Peer>,
    lines: Vec<Line>,
    /// Where the reader threads send lines, and where the stage receives them.
    sender: Sender<Line>,
    receiver: Receiver<Line>,
    interrupt: Receiver<()>,
    start: Instant,
    color: bool,
    /// The pause after each step that acts, to read along.
    pace: Duration,
}

impl Stage {
    /// Starts one peer per command, in table order; `names` are theirs.
    pub fn open(
        names: Vec<String>,
        commands: Vec<Command>,
        pace: Duration,
        interrupt: Receiver<()>,
    ) -> Result<Stage, Failure> {
        let peer = |(name, mut command): (String, Command)| {
            command.env("RUST_LOG", log_filter()).process_group(0);
            command
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let (running, stdin) = (None, None);
            Peer {
                name,
                command,
                running,
                stdin,
            }
        };
        let (sender, receiver) = unbounded();
        let mut stage = Stage {
            peers: names.into_iter().zip(commands).map(peer).collect(),
            lines: Vec::new(),
            sender,
            receiver,
            interrupt,
            start: Instant::now(),
            color: io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            pace,
        };
        for index in 0..stage.peers.len() {
            stage.start(index)?;
        }
        Ok(stage)
    }

    /// Every peer's name, in table order.
    pub fn names(&self) -> Vec<String> {
        self.peers.iter().map(|peer| peer.name.clone()).collect()
    }

    /// Starts the peer at `index` (again, if it has exited) and waits until it listens.
    fn start(&mut self, index: usize) -> Result<(), Failure> {
        let peer = &mut self.peers[index];
        let mut process = KillOnDrop(peer.command.spawn().map_err(|e| {
            let program = peer.command.get_program().to_string_lossy();
            Failure::Failed(format!("cannot start {program}: {e}"))
        })?);
        let stdout: Box<dyn Read + Send> = Box::new(process.stdout.take().expect("piped"));
        let stderr: Box<dyn Read + Send> = Box::new(process.stderr.take().expect("piped"));
        for (pipe, source) in [(stdout, Source::Stdout), (stderr, Source::Stderr)] {
            let name = peer.name.clone();
            let thread = format!("{source:?}:{name}");
            let line = move |text| Line::new(&name, source, text);
            read_lines(thread, pipe, self.sender.clone(), line);
        }
        peer.stdin = process.stdin.take();
        peer.running = Some(process);
        let listening = format!("{} listening on ", peer.name);
        let listening = Line::logged(&peer.name, &listening);
        self.wait_for_sign(self.lines.len(), &listening, PATIENCE)
    }

    /// Prints a line of narration.
    pub fn narrate(&mut self, text: &str) {
        let seconds = self.start.elapsed().as_secs_f64();
        crate::say(&narration(text, seconds, self.color));
    }

    /// `peer` types `text`, as a person would; then each sign must appear after it.
    pub fn type_line(&mut self, peer: &str, text: &str, signs: &[Line]) -> Result<(), Failure> {
        let (index, mark) = (self.index(peer), self.lines.len());
        self.keep(Line::new(peer, Source::Stdin, text.to_string()));
        let stdin = self.peers[index].stdin.as_mut();
        let typed = stdin.map(|stdin| writeln!(stdin, "{text}").and_then(|()| stdin.flush()));
        if !matches!(typed, Some(Ok(()))) {
            return Err(Failure::Failed(format!(
                "could not type {text:?} into {peer}"
            )));
        }
        for sign in signs {
            self.wait_for_sign(mark, sign, PATIENCE)?;
        }
        self.pause(self.pace)
    }

    /// Waits up to `within` for `sign` anywhere in the transcript: for a sign that may have come
    /// during earlier steps.
    pub fn await_sign(&mut self, sign: &Line, within: Duration) -> Result<(), Failure> {
        self.wait_for_sign(0, sign, within)
    }

    /// `peer` ends its input, which p2p-chat takes as quit, and exits.
    pub fn quit(&mut self, peer: &str) -> Result<(), Failure> {
        let index = self.index(peer);
        self.peers[index].stdin = None;
        let exited = |stage: &Stage| stage.peers[index].running.is_none();
        self.wait_for(&format!("{peer} to exit"), PATIENCE, exited)?;
        self.pause(self.pace)
    }

    /// `peer` starts again.
    pub fn restart(&mut self, peer: &str) -> Result<(), Failure> {
        self.start(self.index(peer))?;
        self.pause(self.pace)
    }

    /// Closes every stdin, waits for everyone to exit and for their last lines.
    pub fn finish(&mut self, timeout: Duration) -> Result<(), Failure> {
        for peer in &mut self.peers {
            peer.stdin = None;
        }
        let everyone_out = |stage: &Stage| stage.peers.iter().all(|p| p.running.is_none());
        self.wait_for("every peer to exit", timeout, everyone_out)?;
        // Every pipe reaches end-of-file now, and its reader sends what it still holds. (The
        // stage keeps a sender for restarts, so the channel stays open: wait for a lull.)
        while let Ok(line) = self.receiver.recv_timeout(EXIT_POLL * 5) {
            self.keep(line);
        }
        Ok(())
    }

    /// What went wrong by the end: a peer that did not exit cleanly, or an error any peer
    /// logged. Empty when all is well. (A sign that did not come has ended the demo already.)
    pub fn verdict(&self) -> Vec<String> {
        let problem = |line: &Line| {
            let (name, text) = (&line.peer, &line.text);
            match line.source {
                Source::Exit if text != "exited with status 0" => Some(format!("{name} {text}")),
                Source::Stderr if text.starts_with("ERROR") => {
                    Some(format!("{name} logged an error: {text}"))
                }
                _ => None,
            }
        };
        self.lines.iter().filter_map(problem).collect()
    }

    fn index(&self, peer: &str) -> usize {
        let index = self.peers.iter().position(|p| p.name == peer);
        index.expect("the script names peers of the table")
    }

    /// Pauses for readability, printing what arrives meanwhile.
    fn pause(&mut self, length: Duration) -> Result<(), Failure> {
        self.pump(Instant::now() + length, |_| false)?;
        Ok(())
    }

    /// Waits up to `within` for `sign` in the transcript after line `mark`. A peer that exits
    /// meanwhile will not show it: that fails at once.
    fn wait_for_sign(&mut self, mark: usize, sign: &Line, within: Duration) -> Result<(), Failure> {
        let index = self.index(&sign.peer);
        let seen = |stage: &Stage| stage.lines[mark..].iter().any(|line| line.shows(sign));
        let gone = |stage: &Stage| stage.peers[index].running.is_none();
        let what = format!("{} to show {:?}", sign.peer, sign.text);
        self.wait_for(&what, within, |stage| seen(stage) || gone(stage))?;
        if seen(self) {
            return Ok(());
        }
        self.pause(EXIT_POLL * 5)?; // its last words, saying why
        Err(Failure::Failed(format!(
            "{} exited before showing {:?} (its stderr, if any, is above)",
            sign.peer, sign.text
        )))
    }

    /// Waits until `done` holds, at most `timeout`; after that, fails naming `what`.
    fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Stage) -> bool,
    ) -> Result<(), Failure> {
        match self.pump(Instant::now() + timeout, done)? {
            true => Ok(()),
            false => Err(Failure::Failed(format!(
                "gave up after {:.1} s waiting for {what} (the transcript is above)",
                timeout.as_secs_f64()
            ))),
        }
    }

    /// Receives and prints lines, and notes exits, until `done` holds (true) or `deadline`
    /// passes (false). Ctrl-C ends it with [`Failure::Interrupted`].
    fn pump(&mut self, deadline: Instant, done: impl Fn(&Stage) -> bool) -> Result<bool, Failure> {
        loop {
            self.note_exits();
            if done(self) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            // Exits have no channel: look again at least every EXIT_POLL.
            let timer = at(deadline.min(now + EXIT_POLL));
            select! {
                recv(self.receiver) -> line => match line {
                    Ok(line) => self.keep(line),
                    Err(_) => self.receiver = never(),
                },
                recv(self.interrupt) -> signal => match signal {
                    Ok(()) => return Err(Failure::Interrupted),
                    Err(_) => self.interrupt = never(),
                },
                recv(timer) -> _ => {}
            }
        }
    }

    /// Notes, as a line, each peer that has ended since the last look.
    fn note_exits(&mut self) {
        for index in 0..self.peers.len() {
            let peer = &mut self.peers[index];
            let Some(process) = &mut peer.running else {
                continue;
            };
            let text = match process.try_wait() {
                Ok(None) => continue,
                Ok(Some(status)) => match status.code() {
                    Some(code) => format!("exited with status {code}"),
                    None => "killed by a signal".to_string(),
                },
                Err(e) => format!("cannot be waited for: {e}"),
            };
            peer.running = None;
            let exit = Line::new(&peer.name, Source::Exit, text);
            self.keep(exit);
        }
    }

    /// Prints a line and keeps it. Debug lines are kept for the sequence diagram, not printed.
    fn keep(&mut self, mut line: Line) {
        line.text = without_clock(&line.text).to_string();
        line.at = self.start.elapsed().as_secs_f64();
        if !line.text.starts_with("DEBUG") {
            crate::say(&render(&line, line.at, &self.names(), self.color));
        }
        self.lines.push(line);
    }

    /// Every line so far, in the order it came.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }
}

/// The peers' log filter: at least `info`, which the demo reads, plus whatever `RUST_LOG` adds
/// (`RUST_LOG=wire=trace` shows the bytes on the wire).
fn log_filter() -> String {
    // The fate of each message and the state changes are for the sequence diagram.
    let base = "info,fate=debug,state=debug";
    match std::env::var("RUST_LOG") {
        Ok(extra) if !extra.trim().is_empty() => format!("{base},{extra}"),
        _ => base.to_string(),
    }
}

/// One transcript line as printed `seconds` after the start: the peer, the source, the text:
/// `  1.23 bob   stdout [alice] hi`.
fn render(line: &Line, seconds: f64, names: &[String], color: bool) -> String {
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let hue = names.iter().position(|n| *n == line.peer).unwrap_or(0) % 6;
    let name = format!("{:<width$}", line.peer);
    let name = paint(color, ["36", "35", "34", "33", "32", "31"][hue], &name);
    let text = &line.text;
    let (label, style) = match line.source {
        Source::Stdin => ("stdin ", "1"),
        Source::Stdout => ("stdout", "32"),
        Source::Stderr if text.starts_with("ERROR") || text.starts_with("error:") => {
            ("stderr", "31")
        }
        Source::Stderr if text.starts_with("WARN") => ("stderr", "33"),
        Source::Stderr => ("stderr", "2"),
        Source::Exit => ("exit  ", "1"),
    };
    format!("{seconds:6.2} {name} {label} {}", paint(color, style, text))
}

/// A line of the demo's own narration as printed `seconds` after the start: `  2.00 * text`.
fn narration(text: &str, seconds: f64, color: bool) -> String {
    format!("{seconds:6.2} {}", paint(color, "1", &format!("* {text}")))
}

/// `text` in the terminal style `code` (SGR), when there is color.
fn paint(color: bool, code: &str, text: &str) -> String {
    match color {
        true => format!("\x1b[{code}m{text}\x1b[0m"),
        false => text.to_string(),
    }
}

/// A log line without its leading `HH:MM:SS.mmm ` clock; other lines unchanged.
fn without_clock(text: &str) -> &str {
    let b = text.as_bytes();
    let clock = b.len() > 13
        && b[..12].iter().enumerate().all(|(i, c)| match i {
            2 | 5 => *c == b':',
            8 => *c == b'.',
            _ => c.is_ascii_digit(),
        })
        && b[12] == b' ';
    if clock { &text[13..] } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_show_time_peer_and_source_and_log_lines_lose_their_clock() {
        let names = ["alice", "bob"].map(String::from);
        let show = |peer: &str, source, text: &str, seconds| {
            let text = without_clock(text).to_string();
            render(&Line::new(peer, source, text), seconds, &names, false)
        };
        let log = "12:00:01.234 INFO  [link:bob] connected";
        assert_eq!(
            show("bob", Source::Stdout, "[alice] hi", 1.234),
            "  1.23 bob   stdout [alice] hi"
        );
        assert_eq!(
            show("alice", Source::Stderr, log, 0.005),
            "  0.01 alice stderr INFO  [link:bob] connected"
        );
        assert_eq!(without_clock("error: no"), "error: no");
        assert_eq!(narration("bob leaves", 2.0, false), "  2.00 * bob leaves");
        assert_eq!(narration("x", 0.0, true), "  0.00 \x1b[1m* x\x1b[0m");
    }

    #[test]
    fn a_sign_is_a_line_from_that_peer_and_pipe_containing_its_text() {
        let warning =
            "WARN  [dispatcher] 1 message(s) to eve (127.0.0.1:7005) wait in their outbox";
        let line = Line::new("bob", Source::Stderr, warning.to_string());
        assert!(line.shows(&Line::logged("bob", "wait in their outbox")));
        assert!(!line.shows(&Line::logged("alice", "wait in their outbox")));
        assert!(!line.shows(&Line::logged("bob", "to evelyn")));
        let shown = Line::new("eve", Source::Stdout, "[bob] did you get home?".to_string());
        assert!(shown.shows(&Line::shown("eve", "bob", "did you get home?")));
        assert!(!shown.shows(&Line::logged("eve", "[bob] did you get home?")));
        assert!(!shown.shows(&Line::shown("eve", "alice", "did you get home?")));
    }
}
