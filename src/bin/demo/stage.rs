//! The stage: the demo's main thread, which types into the peers, waits, and prints.
//!
//! It owns the children, the transcript and the receiving end of the channel every reader thread
//! sends its lines to. Whenever it waits, for a pause or for a line to appear, it receives those
//! lines with one `select!` over the line channel, the Ctrl-C channel and a timer set to the
//! deadline, much as the chat's own dispatcher does. So the transcript is printed by one thread in
//! the order lines arrive, every wait has a deadline, and Ctrl-C is noticed within moments.
//!
//! A wait that times out is not fatal: it is noted as a problem and the script goes on, so one
//! missing line does not hide what else went right or wrong.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, at, never, select};

use crate::children::Children;
use crate::failure::Failure;
use crate::script::listening_log;
use crate::transcript::{Line, Source, Transcript, exit_text, find};

/// How often a wait for a process to end looks again: `try_wait` has no channel to select on.
const EXIT_POLL: Duration = Duration::from_millis(20);

pub struct Stage {
    children: Children,
    output: Receiver<Line>,
    interrupt: Receiver<()>,
    transcript: Transcript,
    /// Set once every reader thread has ended: no more lines will come.
    pipes_closed: bool,
    /// What went wrong while playing the script (a wait that timed out, a pipe that broke).
    problems: Vec<String>,
}

impl Stage {
    pub fn new(
        children: Children,
        output: Receiver<Line>,
        interrupt: Receiver<()>,
        transcript: Transcript,
    ) -> Stage {
        Stage {
            children,
            output,
            interrupt,
            transcript,
            pipes_closed: false,
            problems: Vec::new(),
        }
    }

    pub fn name(&self, peer: usize) -> &str {
        &self.transcript.names()[peer]
    }

    /// How many peers are on stage (everyone in the table).
    pub fn peer_count(&self) -> usize {
        self.children.len()
    }

    pub fn lines(&self) -> &[Line] {
        self.transcript.lines()
    }

    /// Adds a line of narration to the transcript.
    pub fn narrate(&mut self, text: &str) {
        self.transcript.record(Line {
            at: Instant::now(),
            peer: None,
            source: Source::Narration,
            text: text.to_string(),
        });
    }

    /// Types `text` into `peer` and records it.
    pub fn type_line(&mut self, peer: usize, text: &str) {
        self.transcript.record(Line {
            at: Instant::now(),
            peer: Some(peer),
            source: Source::Stdin,
            text: text.to_string(),
        });
        if let Err(e) = self.children.type_line(peer, text) {
            self.problems.push(format!(
                "could not type {text:?} into {}: {e}",
                self.name(peer)
            ));
        }
    }

    /// Pauses for readability, printing what arrives meanwhile.
    pub fn pause(&mut self, length: Duration) -> Result<(), Failure> {
        self.pump(Instant::now() + length, |_| false)?;
        Ok(())
    }

    /// Waits until `done` holds for the transcript, at most `timeout`. A timeout is noted as a
    /// problem naming `what`; the answer says whether `done` held.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Line]) -> bool,
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

    /// Closes `peer`'s stdin (end of input means quit) and waits for it to exit, at most
    /// `timeout`.
    pub fn close_and_wait(&mut self, peer: usize, timeout: Duration) -> Result<(), Failure> {
        self.children.close_stdin(peer);
        self.wait_exits(&[peer], timeout)
    }

    /// Starts `peer` again after it has quit, and waits until it listens, at most `timeout`.
    pub fn restart(&mut self, peer: usize, timeout: Duration) -> Result<(), Failure> {
        let mark = self.lines().len();
        let started = match self.children.restart(peer) {
            Ok(()) => self.wait_listening(peer, mark, timeout)?,
            Err(e) => {
                self.narrate(&format!("could not start {} again: {e}", self.name(peer)));
                false
            }
        };
        if !started {
            let problem = format!("{} did not start listening again", self.name(peer));
            self.problems.push(problem);
        }
        Ok(())
    }

    /// Waits until `peer` logs that it listens, in a line after `since` (true), or exits or
    /// `timeout` passes (false).
    pub fn wait_listening(
        &mut self,
        peer: usize,
        since: usize,
        timeout: Duration,
    ) -> Result<bool, Failure> {
        let listening = listening_log(self.name(peer));
        self.wait_for_start(peer, timeout, |lines| {
            find(lines, since, |l| {
                l.is(peer, Source::Stderr) && l.text.contains(&listening)
            })
            .is_some()
        })
    }

    /// Closes every stdin and waits for everyone to exit and for their last lines to arrive.
    pub fn finish(&mut self, timeout: Duration) -> Result<(), Failure> {
        let deadline = Instant::now() + timeout;
        let everyone: Vec<usize> = (0..self.children.len()).collect();
        self.children.no_more_starts();
        for &peer in &everyone {
            self.children.close_stdin(peer);
        }
        self.wait_exits(&everyone, timeout)?;
        // Every child has ended, so every pipe reaches end-of-file and the channel disconnects.
        while !self.pipes_closed {
            let now = Instant::now();
            if now >= deadline {
                self.problems
                    .push("the peers' last lines did not all arrive in time".to_string());
                break;
            }
            self.pump((now + EXIT_POLL).min(deadline), |_| false)?;
        }
        Ok(())
    }

    /// The problems met so far.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Waits until `started` holds for the transcript (true), or `peer` exits or `timeout` passes
    /// (false): a peer that fails at start-up is noticed at once, not after the timeout.
    fn wait_for_start(
        &mut self,
        peer: usize,
        timeout: Duration,
        started: impl Fn(&[Line]) -> bool,
    ) -> Result<bool, Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if self.pump((now + EXIT_POLL).min(deadline), &started)? {
                return Ok(true);
            }
            self.record_exits(&[peer]);
            if !self.children.running(peer) {
                // Let its last words (why it failed) reach the transcript.
                self.pump(Instant::now() + EXIT_POLL * 5, |_| false)?;
                return Ok(false);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
        }
    }

    /// Waits for each of `peers` to exit, recording how each ended.
    fn wait_exits(&mut self, peers: &[usize], timeout: Duration) -> Result<(), Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            self.record_exits(peers);
            let waiting: Vec<&str> = peers
                .iter()
                .filter(|&&peer| self.children.running(peer))
                .map(|&peer| self.name(peer))
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                let problem = format!(
                    "{} did not exit within {:.1} s of the end of their input",
                    waiting.join(", "),
                    timeout.as_secs_f64()
                );
                self.problems.push(problem);
                return Ok(());
            }
            self.pump((now + EXIT_POLL).min(deadline), |_| false)?;
        }
    }

    /// Records an exit line for each of `peers` that has ended since the last look.
    fn record_exits(&mut self, peers: &[usize]) {
        for &peer in peers {
            if let Some(code) = self.children.poll_exit(peer) {
                self.transcript.record(Line {
                    at: Instant::now(),
                    peer: Some(peer),
                    source: Source::Exit,
                    text: exit_text(code),
                });
            }
        }
    }

    /// Receives and records lines until `done` holds (true) or `deadline` passes (false). Ctrl-C
    /// ends it with [`Failure::Interrupted`].
    fn pump(&mut self, deadline: Instant, done: impl Fn(&[Line]) -> bool) -> Result<bool, Failure> {
        let timer = at(deadline);
        loop {
            if done(self.transcript.lines()) {
                return Ok(true);
            }
            select! {
                recv(self.output) -> line => match line {
                    Ok(line) => self.transcript.record(line),
                    // Every reader has ended. Stop watching, or this arm would fire forever.
                    Err(_) => {
                        self.output = never();
                        self.pipes_closed = true;
                    }
                },
                recv(self.interrupt) -> signal => match signal {
                    Ok(()) => return Err(Failure::Interrupted),
                    Err(_) => self.interrupt = never(),
                },
                recv(timer) -> _ => return Ok(done(self.transcript.lines())),
            }
        }
    }
}
