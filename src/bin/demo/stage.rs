//! The stage: the peers as child processes, and the transcript of what they were typed, showed
//! and logged. It runs on the demo's main thread, the only one that prints. The script names the
//! peers as the table does, types into them and waits for [`Sign`]s that a step worked.
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

/// One line of the transcript. A log line is kept without its clock: the transcript has its own.
pub struct Line {
    /// The peer's index in the table.
    pub peer: usize,
    pub source: Source,
    pub text: String,
}

impl Line {
    fn new(peer: usize, source: Source, text: String) -> Line {
        Line { peer, source, text }
    }
}

/// A sign that a step worked: a line from `peer`'s `source` that contains `text`.
pub struct Sign {
    pub peer: String,
    pub source: Source,
    pub text: String,
}

impl Sign {
    /// `to` shows the message `text` from `from`.
    pub fn shown(to: &str, from: &str, text: &str) -> Sign {
        let (peer, text) = (to.to_string(), format!("[{from}] {text}"));
        Sign {
            peer,
            source: Source::Stdout,
            text,
        }
    }

    /// `peer` logs a line (or prints a report on stderr) that contains `text`.
    pub fn logged(peer: &str, text: &str) -> Sign {
        let (peer, text) = (peer.to_string(), text.to_string());
        Sign {
            peer,
            source: Source::Stderr,
            text,
        }
    }

    /// Whether `line` is this sign; `peer` is the index of the sign's peer.
    fn is(&self, line: &Line, peer: usize) -> bool {
        line.peer == peer && line.source == self.source && line.text.contains(&self.text)
    }
}

struct Child {
    process: KillOnDrop,
    stdin: Option<ChildStdin>,
    exited: bool,
}

pub struct Stage {
    names: Vec<String>,
    /// How to start each peer; a `Command` can be spawned again to restart one.
    commands: Vec<Command>,
    children: Vec<Child>,
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
        mut commands: Vec<Command>,
        pace: Duration,
        interrupt: Receiver<()>,
    ) -> Result<Stage, Failure> {
        for command in &mut commands {
            command
                .env("RUST_LOG", log_filter())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0);
        }
        let (sender, receiver) = unbounded();
        let color = io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let children = Vec::new();
        let (lines, start) = (Vec::new(), Instant::now());
        let mut stage = Stage {
            names,
            commands,
            children,
            lines,
            sender,
            receiver,
            interrupt,
            start,
            color,
            pace,
        };
        for peer in 0..stage.names.len() {
            stage.start(peer)?;
        }
        Ok(stage)
    }

    /// Every peer's name, in table order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Starts `peer` (again, if it has exited) and waits until it listens.
    fn start(&mut self, peer: usize) -> Result<(), Failure> {
        let command = &mut self.commands[peer];
        let mut process = KillOnDrop(command.spawn().map_err(|e| {
            let program = command.get_program().to_string_lossy();
            Failure::Failed(format!("cannot start {program}: {e}"))
        })?);
        let name = self.names[peer].clone();
        let stdout: Box<dyn Read + Send> = Box::new(process.stdout.take().expect("piped"));
        let stderr: Box<dyn Read + Send> = Box::new(process.stderr.take().expect("piped"));
        for (pipe, source) in [(stdout, Source::Stdout), (stderr, Source::Stderr)] {
            let line = move |text| Line::new(peer, source, text);
            read_lines(
                format!("{source:?}:{name}"),
                pipe,
                self.sender.clone(),
                line,
            );
        }
        let (stdin, exited) = (process.stdin.take(), false);
        let child = Child {
            process,
            stdin,
            exited,
        };
        match self.children.get_mut(peer) {
            Some(slot) => *slot = child,
            None => self.children.push(child),
        }
        let listening = Sign::logged(&name, &format!("{name} listening on "));
        self.wait_for_sign(self.lines.len(), &listening, PATIENCE)
    }

    /// Prints a line of narration.
    pub fn narrate(&mut self, text: &str) {
        let seconds = self.start.elapsed().as_secs_f64();
        crate::say(&format!(
            "{seconds:6.2} {}",
            paint(self.color, "1", &format!("* {text}"))
        ));
    }

    /// `peer` types `line`, as a person would; then each sign must appear after it.
    pub fn type_line(&mut self, peer: &str, line: &str, signs: &[Sign]) -> Result<(), Failure> {
        let (index, mark) = (self.index(peer), self.lines.len());
        self.keep(index, Source::Stdin, line.to_string());
        let stdin = self.children[index].stdin.as_mut();
        let typed = stdin.map(|stdin| writeln!(stdin, "{line}").and_then(|()| stdin.flush()));
        if !matches!(typed, Some(Ok(()))) {
            return Err(Failure::Failed(format!(
                "could not type {line:?} into {peer}"
            )));
        }
        for sign in signs {
            self.wait_for_sign(mark, sign, PATIENCE)?;
        }
        self.pause(self.pace)
    }

    /// Waits up to `within` for `sign` anywhere in the transcript: for a sign that may have come
    /// during earlier steps.
    pub fn await_sign(&mut self, sign: &Sign, within: Duration) -> Result<(), Failure> {
        self.wait_for_sign(0, sign, within)
    }

    /// `peer` ends its input, which p2p-chat takes as quit, and exits.
    pub fn quit(&mut self, peer: &str) -> Result<(), Failure> {
        let index = self.index(peer);
        self.children[index].stdin = None;
        let exited = |stage: &Stage| stage.children[index].exited;
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
        for child in &mut self.children {
            child.stdin = None;
        }
        let everyone_out = |stage: &Stage| stage.children.iter().all(|c| c.exited);
        self.wait_for("every peer to exit", timeout, everyone_out)?;
        // Every pipe reaches end-of-file now, and its reader sends what it still holds. (The
        // stage keeps a sender for restarts, so the channel stays open: wait for a lull.)
        while let Ok(line) = self.receiver.recv_timeout(EXIT_POLL * 5) {
            self.keep(line.peer, line.source, line.text);
        }
        Ok(())
    }

    /// Pauses for readability, printing what arrives meanwhile.
    fn pause(&mut self, length: Duration) -> Result<(), Failure> {
        self.pump(Instant::now() + length, |_| false)?;
        Ok(())
    }

    fn index(&self, peer: &str) -> usize {
        let index = self.names.iter().position(|name| name == peer);
        index.expect("the script names peers of the table")
    }

    /// Waits up to `within` for `sign` in the transcript after line `mark`. A peer that exits
    /// meanwhile will not show it: that fails at once.
    fn wait_for_sign(&mut self, mark: usize, sign: &Sign, within: Duration) -> Result<(), Failure> {
        let peer = self.index(&sign.peer);
        let seen = |stage: &Stage| stage.lines[mark..].iter().any(|line| sign.is(line, peer));
        let what = format!("{} to show {:?}", sign.peer, sign.text);
        self.wait_for(&what, within, |stage| {
            seen(stage) || stage.children[peer].exited
        })?;
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
                    Ok(line) => self.keep(line.peer, line.source, line.text),
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

    fn note_exits(&mut self) {
        for peer in 0..self.children.len() {
            let child = &mut self.children[peer];
            if child.exited {
                continue;
            }
            let text = match child.process.try_wait() {
                Ok(None) => continue,
                Ok(Some(status)) => match status.code() {
                    Some(code) => format!("exited with status {code}"),
                    None => "killed by a signal".to_string(),
                },
                Err(e) => format!("cannot be waited for: {e}"),
            };
            child.exited = true;
            self.keep(peer, Source::Exit, text);
        }
    }

    /// Prints a line and keeps it. A closed stdout (`| head`) must not stop the demo.
    fn keep(&mut self, peer: usize, source: Source, text: String) {
        let text = without_clock(&text).to_string();
        let line = Line::new(peer, source, text);
        let seconds = self.start.elapsed().as_secs_f64();
        crate::say(&render(&line, seconds, &self.names, self.color));
        self.lines.push(line);
    }

    /// What went wrong by the end: a peer that did not exit cleanly, or an error any peer
    /// logged. Empty when all is well. (A sign that did not come has ended the demo already.)
    pub fn verdict(&self) -> Vec<String> {
        let problem = |line: &Line| {
            let (name, text) = (&self.names[line.peer], &line.text);
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
}

/// The peers' log filter: at least `info`, which the demo reads, plus whatever `RUST_LOG` adds
/// (`RUST_LOG=wire=trace` shows the bytes on the wire).
fn log_filter() -> String {
    match std::env::var("RUST_LOG") {
        Ok(extra) if !extra.trim().is_empty() => format!("info,{extra}"),
        _ => "info".to_string(),
    }
}

/// One transcript line as printed `seconds` after the start: the peer, the source, the text:
/// `  1.23 bob   stdout [alice] hi`.
fn render(line: &Line, seconds: f64, names: &[String], color: bool) -> String {
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let name = format!("{:<width$}", names[line.peer]);
    let name = paint(
        color,
        ["36", "35", "34", "33", "32", "31"][line.peer % 6],
        &name,
    );
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
        let show = |peer, source, text: &str, seconds| {
            let text = without_clock(text).to_string();
            render(&Line::new(peer, source, text), seconds, &names, false)
        };
        let log = "12:00:01.234 INFO  [link:bob] connected";
        assert_eq!(
            show(1, Source::Stdout, "[alice] hi", 1.234),
            "  1.23 bob   stdout [alice] hi"
        );
        assert_eq!(
            show(0, Source::Stderr, log, 0.005),
            "  0.01 alice stderr INFO  [link:bob] connected"
        );
        assert_eq!(without_clock("error: no"), "error: no");
    }
}
