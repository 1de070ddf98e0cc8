//! The stage: the peers as child processes, and the transcript of what they were typed, showed
//! and logged. It runs on the demo's main thread, the only one that prints.
//!
//! Each child's stdout and stderr are read by a thread of their own (the project's shared
//! `read_lines`), which sends every line, labelled and timestamped, over one channel. Whenever
//! the stage waits, for a pause or for a line to appear, it receives from that channel with one
//! `select!` over it, the Ctrl-C channel and a timer set to the deadline, much as the chat's own
//! dispatcher does: so the transcript is printed in the order lines arrive, every wait has a
//! deadline, and Ctrl-C is noticed within moments. Every child is killed when the stage is
//! dropped, whatever way the demo ends; the children run in a process group of their own, so a
//! Ctrl-C at the terminal reaches the demo alone.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, at, never, select, unbounded};

use crate::Failure;
use crate::process::{KillOnDrop, read_lines};

/// How often a wait for a process to end looks again: `try_wait` has no channel to select on.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Stdin,
    Stdout,
    Stderr,
    /// The process ended; the text says how.
    Exit,
    /// The demo's own narration.
    Narration,
}

/// One line of the transcript.
#[derive(Debug, Clone)]
pub struct Line {
    pub at: Instant,
    /// The peer's index in the table; `None` for narration.
    pub peer: Option<usize>,
    pub source: Source,
    pub text: String,
}

/// How to start each peer.
pub struct Cast {
    pub names: Vec<String>,
    /// The program for each peer, in table order, and the arguments before the name.
    pub programs: Vec<PathBuf>,
    pub args: Vec<String>,
}

struct Child {
    process: KillOnDrop,
    stdin: Option<ChildStdin>,
    exited: bool,
}

pub struct Stage {
    cast: Cast,
    children: Vec<Child>,
    lines: Vec<Line>,
    /// Where the reader threads send lines; `None` once no peer will start again.
    sender: Option<Sender<Line>>,
    receiver: Receiver<Line>,
    interrupt: Receiver<()>,
    start: Instant,
    color: bool,
    /// Waits that timed out, named.
    pub problems: Vec<String>,
}

impl Stage {
    /// Starts every peer of the cast.
    pub fn open(cast: Cast, interrupt: Receiver<()>) -> Result<Stage, Failure> {
        let (sender, receiver) = unbounded();
        let mut stage = Stage {
            cast,
            children: Vec::new(),
            lines: Vec::new(),
            sender: Some(sender),
            receiver,
            interrupt,
            start: Instant::now(),
            color: io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            problems: Vec::new(),
        };
        for peer in 0..stage.cast.names.len() {
            stage.start(peer)?;
        }
        Ok(stage)
    }

    pub fn name(&self, peer: usize) -> &str {
        &self.cast.names[peer]
    }

    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// Starts `peer` (again, if it has exited) and waits until it listens.
    pub fn start(&mut self, peer: usize) -> Result<(), Failure> {
        let name = self.cast.names[peer].clone();
        let sender = self.sender.clone().ok_or(Failure::Interrupted)?;
        let mut command = Command::new(&self.cast.programs[peer]);
        command
            .args(&self.cast.args)
            .arg(&name)
            .env("RUST_LOG", log_filter())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let program = self.cast.programs[peer].display().to_string();
        let mut process = KillOnDrop(
            command
                .spawn()
                .map_err(|e| Failure::Setup(format!("cannot start {program}: {e}")))?,
        );
        let line = move |source| {
            move |text| Line {
                at: Instant::now(),
                peer: Some(peer),
                source,
                text,
            }
        };
        let (stdout, stderr) = (process.stdout.take(), process.stderr.take());
        read_lines(
            format!("stdout:{name}"),
            stdout.expect("piped"),
            sender.clone(),
            line(Source::Stdout),
        );
        read_lines(
            format!("stderr:{name}"),
            stderr.expect("piped"),
            sender,
            line(Source::Stderr),
        );
        let child = Child {
            stdin: process.stdin.take(),
            process,
            exited: false,
        };
        match self.children.get_mut(peer) {
            Some(slot) => *slot = child,
            None => self.children.push(child),
        }
        let mark = self.lines.len();
        let listening = format!("{name} listening on ");
        let listens = |stage: &Stage| {
            stage.lines[mark..]
                .iter()
                .any(|l| l.peer == Some(peer) && l.text.contains(&listening))
        };
        // A peer that fails at start-up is noticed at once, not after the timeout.
        let what = format!("{name} to listen");
        self.wait_for(&what, Duration::from_secs(5), |s| {
            listens(s) || s.children[peer].exited
        })?;
        if !listens(self) {
            self.pause(EXIT_POLL * 5)?; // its last words, saying why
            return Err(Failure::Setup(format!(
                "{name} did not start listening (its stderr, if any, is above)"
            )));
        }
        Ok(())
    }

    /// Prints a line of narration.
    pub fn narrate(&mut self, text: &str) {
        self.record(None, Source::Narration, text.to_string());
    }

    /// Types `text` into `peer`, as a person would.
    pub fn type_line(&mut self, peer: usize, text: &str) {
        self.record(Some(peer), Source::Stdin, text.to_string());
        let typed = self.children[peer]
            .stdin
            .as_mut()
            .map(|stdin| writeln!(stdin, "{text}").and_then(|()| stdin.flush()));
        if !matches!(typed, Some(Ok(()))) {
            let problem = format!("could not type {text:?} into {}", self.name(peer));
            self.problems.push(problem);
        }
    }

    /// Closes `peer`'s stdin, which p2p-chat takes as quit, and waits for it to exit.
    pub fn close(&mut self, peer: usize, timeout: Duration) -> Result<(), Failure> {
        self.children[peer].stdin = None;
        let what = format!("{} to exit", self.name(peer));
        self.wait_for(&what, timeout, |stage| stage.children[peer].exited)?;
        Ok(())
    }

    /// Closes every stdin, waits for everyone to exit and for their last lines.
    pub fn finish(&mut self, timeout: Duration) -> Result<(), Failure> {
        self.sender = None;
        for child in &mut self.children {
            child.stdin = None;
        }
        let everyone_out = |stage: &Stage| stage.children.iter().all(|c| c.exited);
        self.wait_for("every peer to exit", timeout, everyone_out)?;
        // Every pipe reaches end-of-file now and its reader ends: take what they still hold.
        while let Ok(line) = self.receiver.recv_timeout(EXIT_POLL * 5) {
            self.keep(line);
        }
        Ok(())
    }

    /// Pauses for readability, printing what arrives meanwhile.
    pub fn pause(&mut self, length: Duration) -> Result<(), Failure> {
        let end = Instant::now() + length;
        self.pump(end, |_| false)?;
        Ok(())
    }

    /// Waits until `done` holds, at most `timeout`; a timeout is noted as a problem naming
    /// `what`. Returns whether `done` held.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Stage) -> bool,
    ) -> Result<bool, Failure> {
        let held = self.pump(Instant::now() + timeout, done)?;
        if !held {
            let problem = format!(
                "gave up after {:.1} s waiting for {what}",
                timeout.as_secs_f64()
            );
            self.narrate(&problem);
            self.problems.push(problem);
        }
        Ok(held)
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
            self.record(Some(peer), Source::Exit, text);
        }
    }

    fn record(&mut self, peer: Option<usize>, source: Source, text: String) {
        let at = Instant::now();
        self.keep(Line {
            at,
            peer,
            source,
            text,
        });
    }

    /// Prints a line and keeps it. A closed stdout (`| head`) must not stop the demo.
    fn keep(&mut self, line: Line) {
        let text = render(&line, self.start, &self.cast.names, self.color);
        let _ = writeln!(io::stdout().lock(), "{text}");
        self.lines.push(line);
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

/// One transcript line as printed: seconds since the start, the peer, the source, the text:
/// `  1.23 bob   stdout [alice] hi`. Log lines lose their own clock; the first column says when.
fn render(line: &Line, start: Instant, names: &[String], color: bool) -> String {
    let seconds = line.at.saturating_duration_since(start).as_secs_f64();
    let paint = |code: &str, text: &str| match color {
        true => format!("\x1b[{code}m{text}\x1b[0m"),
        false => text.to_string(),
    };
    let Some(peer) = line.peer else {
        return format!("{seconds:6.2} {}", paint("1", &format!("* {}", line.text)));
    };
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let name = paint(
        ["36", "35", "34", "33", "32", "31"][peer % 6],
        &format!("{:<width$}", names[peer]),
    );
    let text = without_clock(&line.text);
    let (label, style) = match line.source {
        Source::Stdin => ("stdin ", "1"),
        Source::Stdout => ("stdout", "32"),
        Source::Stderr if text.starts_with("ERROR") || text.starts_with("error:") => {
            ("stderr", "31")
        }
        Source::Stderr if text.starts_with("WARN") => ("stderr", "33"),
        Source::Stderr => ("stderr", "2"),
        Source::Exit => ("exit  ", "1"),
        Source::Narration => ("", "0"),
    };
    format!("{seconds:6.2} {name} {label} {}", paint(style, text))
}

/// A log line without its leading `HH:MM:SS.mmm ` clock; other lines unchanged.
pub fn without_clock(text: &str) -> &str {
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
        let t0 = Instant::now();
        let names = vec!["alice".to_string(), "bob".to_string()];
        let line = |peer, source, text: &str, ms| Line {
            at: t0 + Duration::from_millis(ms),
            peer,
            source,
            text: text.to_string(),
        };
        let show = |l: Line| render(&l, t0, &names, false);
        assert_eq!(
            show(line(Some(1), Source::Stdout, "[alice] hi", 1234)),
            "  1.23 bob   stdout [alice] hi"
        );
        assert_eq!(
            show(line(
                Some(0),
                Source::Stderr,
                "12:00:01.234 INFO  [link:bob] connected",
                5
            )),
            "  0.01 alice stderr INFO  [link:bob] connected"
        );
        assert_eq!(
            show(line(None, Source::Narration, "bob leaves", 0)),
            "  0.00 * bob leaves"
        );
        assert_eq!(without_clock("error: no"), "error: no");
    }
}
