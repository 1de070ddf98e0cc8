//! What is typed, turned into messages and commands: the console's logic, shared by
//! p2p-chat's console thread and p2p-chat-select's poll loop.
//!
//! Bytes go in as they were read; complete lines come out of a line buffer and each becomes a
//! command. Mistakes (an unknown friend, a missing `/`, an empty message) are answered at once
//! and the console carries on. Messages are encoded into frames here, one [`Batch`] per friend,
//! and handed over as [`ConsoleEvent`]s through a [`Handover`]: whatever one read returned, in
//! one hand-off, so a lone message is fast and a burst is cheap. In a terminal, keys come in
//! instead ([`Console::keys`]), and each line the line editor hands back is handled the same way.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::command::{self, Command, Target};
use crate::escape::escaped;
use crate::event::{Batch, ConsoleEvent, Typed};
use crate::frame::{self, MAX_FRAME};
use crate::logging;
use crate::peers::{PeerId, PeerTable};
use crate::stages::{self, Stage};
use crate::terminal::Screen;
use crate::terminal::editor::Outcome;
use crate::terminal::typing::Typing;

/// The longest line the console keeps; the rest of a longer line is skipped, so a runaway paste
/// cannot grow memory without bound. Any line this long is refused anyway (see [`MAX_FRAME`]).
const MAX_LINE: usize = MAX_FRAME + 1024;

/// Where the console's events go: p2p-chat's dispatcher, through a channel; p2p-chat-select's
/// loop (and the tests), through a list. An error hands the event back: nobody takes it.
pub trait Handover {
    fn hand(&mut self, event: ConsoleEvent) -> Result<(), ConsoleEvent>;
}

impl Handover for Sender<ConsoleEvent> {
    fn hand(&mut self, event: ConsoleEvent) -> Result<(), ConsoleEvent> {
        self.send(event).map_err(|e| e.into_inner())
    }
}

impl Handover for Vec<ConsoleEvent> {
    fn hand(&mut self, event: ConsoleEvent) -> Result<(), ConsoleEvent> {
        self.push(event);
        Ok(())
    }
}

/// The console's state: the table to check names against, the batches being gathered, and the
/// start of a line not yet ended.
pub struct Console<H: Handover> {
    table: Arc<PeerTable>,
    me: PeerId,
    hand: H,
    lines: LineBuffer,
    /// `outbox[i]` gathers frames for friend `PeerId(i)`.
    outbox: Vec<Batch>,
    /// Messages in the outbox, all friends together.
    pending: usize,
    /// Reading keys in a terminal, not lines from a pipe.
    terminal: bool,
    /// In a terminal: the messages gathered, as typed, for their echoes.
    typed: Vec<Typed>,
}

impl<H: Handover> Console<H> {
    pub fn new(table: Arc<PeerTable>, me: PeerId, hand: H) -> Self {
        let outbox = (0..table.len()).map(|_| Batch::default()).collect();
        Console {
            table,
            me,
            hand,
            lines: LineBuffer::default(),
            outbox,
            pending: 0,
            terminal: false,
            typed: Vec::new(),
        }
    }

    /// Reads lines until end of input, `/quit`, or the dispatcher going away. Answers to mistakes
    /// and `/help` go to `answers` (stderr in the program).
    pub fn serve<R: Read>(&mut self, mut input: BufReader<R>, answers: &mut impl Write) {
        loop {
            let chunk = match input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!("cannot read standard input: {e}; quitting");
                    return self.end(answers);
                }
            };
            if chunk.is_empty() {
                return self.end(answers);
            }
            let used = chunk.len();
            let keep_going = self.feed(chunk, answers);
            input.consume(used);
            if !keep_going {
                return;
            }
        }
    }

    /// Handles the lines `chunk` completes and hands over what they gather: everything one read
    /// returned goes out before waiting for more. A typed line goes out at once; a paste or a
    /// pipe goes out in batches. Returns false once the console should stop (`/quit`, or nobody
    /// takes its events).
    pub fn feed(&mut self, chunk: &[u8], answers: &mut impl Write) -> bool {
        stages::mark(Stage::StdinRead);
        let mut lines = std::mem::take(&mut self.lines);
        let keep_going = lines.split(chunk, &mut |line, flaw| self.line(line, flaw, answers));
        self.lines = lines;
        keep_going && self.flush()
    }

    /// End of input, which means `/quit`. A last line without a newline still counts.
    pub fn end(&mut self, answers: &mut impl Write) {
        let mut lines = std::mem::take(&mut self.lines);
        let keep_going = lines.finish(&mut |line, flaw| self.line(line, flaw, answers));
        if keep_going {
            self.quit();
        }
    }

    /// Hands over what was gathered, then quit.
    pub fn quit(&mut self) {
        if self.flush() {
            let _ = self.hand.hand(ConsoleEvent::Quit);
        }
    }

    /// Keys typed in a terminal: edited into a line on the screen, an entered line handled as a
    /// pipe's line is. Answers are printed above the input line, after the line they answer.
    /// Returns false once the console should stop (`/quit`, Ctrl-D on an empty line).
    pub fn keys(&mut self, bytes: &[u8], typing: &mut Typing, screen: &Screen) -> bool {
        self.terminal = true;
        let mut answers = screen.above_writer();
        for key in typing.decode(bytes) {
            let keep_going = match typing.apply(key) {
                Outcome::Draw => true,
                Outcome::Submit(line) => {
                    // A message is shown with what became of it, in its echo; anything else,
                    // or a message refused here, is shown as typed, above its answer.
                    let typed = screen.dim(&format!("{}{line}", screen.prompt()));
                    let message = matches!(command::parse(&line), Ok(Some(Command::Send { .. })));
                    if !message {
                        let _ = writeln!(answers, "{typed}");
                    }
                    // The editor takes no control characters: a typed line has no flaw.
                    let mut refusal = Vec::new();
                    let keep_going = self.line(&line, None, &mut refusal);
                    if message && !refusal.is_empty() {
                        let _ = writeln!(answers, "{typed}");
                    }
                    let _ = answers.write_all(&refusal);
                    keep_going
                }
                Outcome::Quit => false,
                Outcome::Suspend => {
                    screen.suspend();
                    true
                }
                Outcome::Clear => {
                    screen.clear();
                    true
                }
                Outcome::Choices(names) => {
                    let _ = writeln!(answers, "{}", names.join("  "));
                    true
                }
            };
            if !keep_going {
                typing.draw(screen);
                self.quit();
                return false;
            }
        }
        typing.draw(screen);
        self.flush()
    }

    pub fn table(&self) -> &PeerTable {
        &self.table
    }

    /// Takes the events handed over so far (for a console that hands them to a list).
    pub fn take_events(&mut self) -> H
    where
        H: Default,
    {
        std::mem::take(&mut self.hand)
    }

    /// Handles one line. Returns false when the console should stop.
    fn line(&mut self, line: &str, flaw: Option<Flaw>, answers: &mut impl Write) -> bool {
        let parsed = match flaw {
            Some(Flaw::TooLong) => Err(format!(
                "that line is over {MAX_LINE} bytes, longer than any message can be; nothing \
                 was sent"
            )),
            Some(Flaw::Nul) => Err("that line holds a NUL byte, which would end a frame on \
                                    the wire; nothing was sent: remove it"
                .to_string()),
            None => command::parse(line).map_err(|e| e.to_string()),
        };
        match parsed {
            Ok(None) => true,
            Ok(Some(command)) => self.obey(command, answers),
            Err(e) => {
                let _ = writeln!(answers, "error: {e}");
                true
            }
        }
    }

    /// Carries out one command. Returns false when the console should stop.
    fn obey(&mut self, command: Command<'_>, answers: &mut impl Write) -> bool {
        match command {
            Command::Send { to, text } => {
                if let Err(e) = self.queue(to, text) {
                    let _ = writeln!(answers, "error: {e}");
                }
                true
            }
            Command::Help => {
                let _ = writeln!(answers, "{}", command::HELP);
                true
            }
            Command::Peers => self.flush() && self.hand.hand(ConsoleEvent::Peers).is_ok(),
            Command::Events => {
                let answer = match (self.terminal, self.terminal && logging::toggle_events()) {
                    (false, _) => {
                        "connection events always go to stderr when stdin or stdout is \
                                   not a terminal"
                    }
                    (true, true) => "connection events are shown (/events hides them)",
                    (true, false) => "connection events are hidden (/events shows them)",
                };
                let _ = writeln!(answers, "{answer}");
                true
            }
            Command::Quit => {
                self.quit();
                false
            }
        }
    }

    /// Encodes a message into the batch of each friend it is for.
    fn queue(&mut self, to: Target<'_>, text: &str) -> Result<(), String> {
        let me = &self.table.get(self.me).name;
        let size = frame::encoded_len(me, text);
        if size > MAX_FRAME {
            return Err(format!(
                "message not sent: it is {size} bytes on the wire and the limit is {MAX_FRAME}; \
                 split it into shorter messages"
            ));
        }
        match to {
            Target::Friend(name) => {
                let friend = self.table.find(name).ok_or_else(|| {
                    format!(
                        "unknown friend {name:?}: message not sent; your friends are: {}",
                        self.table.names()
                    )
                })?;
                self.add(friend, text);
                self.echo(text, || vec![friend], false);
            }
            Target::Everyone => {
                let (table, me) = (Arc::clone(&self.table), self.me);
                let others = || table.ids().filter(move |&id| id != me);
                if others().next().is_none() {
                    return Err("no one else is in the peer table: message not sent".to_string());
                }
                for friend in others() {
                    self.add(friend, text);
                }
                self.echo(text, || others().collect(), true);
            }
        }
        Ok(())
    }

    /// In a terminal, notes the message for its echo in the transcript (elsewhere there is no
    /// echo, and nothing is allocated for one).
    fn echo(&mut self, text: &str, to: impl FnOnce() -> Vec<PeerId>, everyone: bool) {
        if self.terminal {
            let text = escaped(text.as_bytes());
            self.typed.push(Typed {
                text,
                to: to(),
                everyone,
            });
        }
    }

    fn add(&mut self, friend: PeerId, text: &str) {
        let me = &self.table.get(self.me).name;
        let batch = &mut self.outbox[friend.0];
        frame::encode(me, text, &mut batch.frames);
        batch.count += 1;
        self.pending += 1;
    }

    /// Hands every gathered batch over. Returns false if nobody takes them any more.
    pub fn flush(&mut self) -> bool {
        if self.pending == 0 {
            return true;
        }
        self.pending = 0;
        stages::mark(Stage::Parsed);
        let batches: Vec<(PeerId, Batch)> = self
            .outbox
            .iter_mut()
            .enumerate()
            .filter(|(_, batch)| batch.count > 0)
            .map(|(i, batch)| (PeerId(i), std::mem::take(batch)))
            .collect();
        let typed = std::mem::take(&mut self.typed);
        match self.hand.hand(ConsoleEvent::Send(batches, typed)) {
            Ok(()) => true,
            Err(unsent) => {
                if let ConsoleEvent::Send(batches, _) = unsent {
                    let count: usize = batches.iter().map(|(_, batch)| batch.count).sum();
                    log::error!("{count} message(s) not delivered: you are quitting");
                }
                false
            }
        }
    }
}

/// What makes a line from stdin unusable whatever it says. Found by [`LineBuffer`], which sees
/// a whole read at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// Longer than [`MAX_LINE`]: it has been cut.
    TooLong,
    /// It holds a NUL byte, which ends a frame on the wire. (Only a pipe can bring one: the line
    /// editor takes no control characters.)
    Nul,
}

/// Splits stdin's bytes into lines however the reads cut them, keeping at most [`MAX_LINE`] bytes
/// of a line that spans reads, and finds each line's [`Flaw`]. Pure: no I/O.
#[derive(Debug, Default)]
struct LineBuffer {
    /// The start of a line that did not end within the last read; empty almost always.
    partial: Vec<u8>,
    /// The line in `partial` was longer than [`MAX_LINE`] and has been cut.
    too_long: bool,
}

impl LineBuffer {
    /// Calls `each(line, flaw)` for every line that `chunk` completes, without its `\n`, and
    /// keeps the unfinished rest. Stops early, returning false, when `each` does. Invalid UTF-8
    /// is shown with replacement characters.
    fn split(&mut self, chunk: &[u8], each: &mut impl FnMut(&str, Option<Flaw>) -> bool) -> bool {
        let Some(last) = chunk.iter().rposition(|&b| b == b'\n') else {
            self.keep(chunk);
            return true;
        };
        let (mut complete, rest) = (&chunk[..last], &chunk[last + 1..]);
        if !self.partial.is_empty() || self.too_long {
            // The first line began in an earlier read: finish it in `partial`.
            let end = complete
                .iter()
                .position(|&b| b == b'\n')
                .unwrap_or(complete.len());
            self.keep(&complete[..end]);
            complete = complete.get(end + 1..).unwrap_or_default();
            let first_was_last = end == last;
            if !self.finish(each) {
                return false;
            }
            if first_was_last {
                self.keep(rest);
                return true;
            }
        }
        // Every other complete line lies whole in this read: check them all at once (UTF-8, and
        // whether any holds a NUL byte) and hand each out without a copy.
        let nul = complete.contains(&0);
        let flaw_of = |line: &[u8]| flaw(line, line.len() > MAX_LINE, nul);
        let keep_going = match std::str::from_utf8(complete) {
            Ok(text) => text
                .split('\n')
                .all(|line| each(line, flaw_of(line.as_bytes()))),
            Err(_) => complete
                .split(|&b| b == b'\n')
                .all(|line| each(&String::from_utf8_lossy(line), flaw_of(line))),
        };
        if keep_going {
            self.keep(rest);
        }
        keep_going
    }

    /// Hands over the line held in `partial`, if any: at end of input, a last line that had no
    /// `\n`.
    fn finish(&mut self, each: &mut impl FnMut(&str, Option<Flaw>) -> bool) -> bool {
        if self.partial.is_empty() && !self.too_long {
            return true;
        }
        let flaw = flaw(&self.partial, self.too_long, true);
        let keep_going = each(&String::from_utf8_lossy(&self.partial), flaw);
        self.partial.clear();
        self.too_long = false;
        keep_going
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = MAX_LINE - self.partial.len();
        self.too_long |= bytes.len() > room;
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// A line's flaw; `may_hold_nul` is false when its whole read holds no NUL byte, so the line is
/// not searched again.
fn flaw(line: &[u8], too_long: bool, may_hold_nul: bool) -> Option<Flaw> {
    match () {
        _ if too_long => Some(Flaw::TooLong),
        _ if may_hold_nul && line.contains(&0) => Some(Flaw::Nul),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PeerTable {
        PeerTable::parse(
            "alice 127.0.0.1 7001\nbob 127.0.0.1 7002\ncarol 127.0.0.1 7003\n",
            "peers.txt",
        )
        .unwrap()
    }

    /// Runs the console over `input` as alice; returns the events and what it said on stderr.
    fn run_console(input: &str) -> (Vec<ConsoleEvent>, String) {
        let mut answers = Vec::new();
        let mut console = Console::new(Arc::new(table()), PeerId(0), Vec::new());
        console.serve(BufReader::new(input.as_bytes()), &mut answers);
        (console.hand, String::from_utf8(answers).unwrap())
    }

    fn frames(events: &[ConsoleEvent]) -> Vec<(usize, String, usize)> {
        events
            .iter()
            .filter_map(|e| match e {
                ConsoleEvent::Send(batches, _) => Some(batches),
                _ => None,
            })
            .flatten()
            .map(|(id, b)| (id.0, String::from_utf8(b.frames.clone()).unwrap(), b.count))
            .collect()
    }

    #[test]
    fn lines_already_buffered_are_sent_as_one_batch_per_friend() {
        let (events, answers) = run_console("bob/hi\ncarol/yo\nbob/a/b\n");
        assert_eq!(answers, "");
        assert_eq!(
            frames(&events),
            [
                (1, "alice/hi\nalice/a/b\n".to_string(), 2),
                (2, "alice/yo\n".to_string(), 1)
            ]
        );
        assert!(matches!(events.last(), Some(ConsoleEvent::Quit)));
    }

    #[test]
    fn broadcast_goes_to_everyone_but_me_and_notes_to_self_work() {
        let (events, _) = run_console("*/all\nalice/note\n");
        assert_eq!(
            frames(&events),
            [
                (0, "alice/note\n".to_string(), 1),
                (1, "alice/all\n".to_string(), 1),
                (2, "alice/all\n".to_string(), 1)
            ]
        );
    }

    #[test]
    fn mistakes_are_answered_and_the_console_carries_on() {
        let (events, answers) = run_console("zed/hi\nhello\nbob/\n/nope\nbob/still here\n");
        let lines: Vec<&str> = answers.lines().collect();
        assert_eq!(lines.len(), 4, "{answers}");
        assert!(
            lines[0].contains("unknown friend \"zed\"") && lines[0].contains("alice, bob, carol")
        );
        assert!(lines[1].contains("no '/'"));
        assert!(lines[2].contains("nothing to send to bob"));
        assert!(lines[3].contains("unknown command /nope"));
        assert_eq!(frames(&events), [(1, "alice/still here\n".to_string(), 1)]);
    }

    #[test]
    fn peers_flushes_first_and_quit_stops_reading() {
        let (events, _) = run_console("bob/one\n/peers\n/quit\nbob/never sent\n");
        assert!(matches!(&events[0], ConsoleEvent::Send(b, _) if b.len() == 1));
        assert!(matches!(events[1], ConsoleEvent::Peers));
        assert!(matches!(events[2], ConsoleEvent::Quit));
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn a_last_line_without_newline_is_still_sent() {
        let (events, _) = run_console("bob/no newline");
        assert_eq!(frames(&events), [(1, "alice/no newline\n".to_string(), 1)]);
    }

    #[test]
    fn an_oversized_message_is_refused_with_the_limit() {
        let long = format!("bob/{}\n", "x".repeat(MAX_FRAME));
        let (events, answers) = run_console(&long);
        assert!(answers.contains("the limit is 65536"), "{answers}");
        assert!(frames(&events).is_empty());
    }

    #[test]
    fn a_runaway_line_is_cut_skipped_and_answered() {
        let input = format!("bob/{}\nbob/after\n", "y".repeat(3 * MAX_LINE));
        let (events, answers) = run_console(&input);
        assert!(
            answers.contains("longer than any message can be"),
            "{answers}"
        );
        assert_eq!(frames(&events), [(1, "alice/after\n".to_string(), 1)]);
    }

    /// Splits `chunks` with a fresh buffer; returns each line and whether it was too long.
    fn split_all(chunks: &[&[u8]]) -> Vec<(String, bool)> {
        split_flawed(chunks)
            .into_iter()
            .map(|(line, flaw)| (line, flaw == Some(Flaw::TooLong)))
            .collect()
    }

    /// Splits `chunks` with a fresh buffer; returns each line's start and its flaw.
    fn split_flawed(chunks: &[&[u8]]) -> Vec<(String, Option<Flaw>)> {
        let mut buffer = LineBuffer::default();
        let mut lines = Vec::new();
        let mut each = |line: &str, flaw: Option<Flaw>| {
            let shown = line.chars().take(8).collect();
            lines.push((shown, flaw));
            true
        };
        for chunk in chunks {
            assert!(buffer.split(chunk, &mut each));
        }
        assert!(buffer.finish(&mut each));
        lines
    }

    #[test]
    fn line_buffer_joins_lines_cut_across_reads() {
        assert_eq!(
            split_all(&[b"bob/h", b"i\ncarol/", b"yo\nlast"]),
            [
                ("bob/hi".into(), false),
                ("carol/yo".into(), false),
                ("last".into(), false)
            ]
        );
        assert_eq!(
            split_all(&[b"a\n", b"", b"\n"]),
            [("a".into(), false), ("".into(), false)]
        );
    }

    #[test]
    fn line_buffer_cuts_runaway_lines_in_and_across_reads() {
        let long = vec![b'y'; MAX_LINE + 1];
        let mut in_one_read = long.clone();
        in_one_read.extend_from_slice(b"\nok\n");
        assert_eq!(
            split_all(&[&in_one_read]),
            [("yyyyyyyy".into(), true), ("ok".into(), false)]
        );
        let mut buffer = LineBuffer::default();
        let mut each = |_: &str, _: Option<Flaw>| true;
        for _ in 0..10 {
            buffer.split(&long, &mut each);
            assert!(buffer.partial.len() <= MAX_LINE, "memory stays bounded");
        }
        assert_eq!(
            split_all(&[&long, &long, b"\nok"]),
            [("yyyyyyyy".into(), true), ("ok".into(), false)]
        );
    }

    #[test]
    fn line_buffer_flags_each_line_holding_a_nul_byte_however_the_reads_cut_it() {
        let nul = Some(Flaw::Nul);
        assert_eq!(
            split_flawed(&[b"ok\na\0b\nfine\n"]),
            [
                ("ok".into(), None),
                ("a\0b".into(), nul),
                ("fine".into(), None)
            ]
        );
        // The NUL in a line that spans reads, and in a last line with no newline.
        assert_eq!(
            split_flawed(&[b"x/1\x00", b"2\ny/", b"ok\nz\0"]),
            [
                ("x/1\u{0}2".into(), nul),
                ("y/ok".into(), None),
                ("z\0".into(), nul)
            ]
        );
        assert_eq!(split_flawed(&[b"\xff\0\n"]), [("\u{fffd}\0".into(), nul)]);
    }

    #[test]
    fn a_line_with_a_nul_byte_is_refused_and_the_others_are_sent() {
        let (events, answers) = run_console("bob/one\nbob/t\0wo\nbob/three\n");
        assert!(answers.contains("holds a NUL byte"), "{answers}");
        assert_eq!(
            frames(&events),
            [(1, "alice/one\nalice/three\n".to_string(), 2)]
        );
    }

    #[test]
    fn help_is_answered_locally() {
        let (_, answers) = run_console("/help\n");
        assert!(answers.contains("friend/message"));
    }
}
