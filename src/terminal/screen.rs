//! The chat's only output: one line `[sender] message` per incoming message, on stdout.
//!
//! Whatever arrives from the network is shown, never obeyed: invalid UTF-8 becomes U+FFFD, and
//! every control character except tab (ESC, BEL, backspace, carriage return, DEL, the C1 range
//! U+0080-U+009F) is written as a visible escape such as `\x1b`, in the name and the text alike.
//! So are the invisible format characters (bidi controls, zero-width characters, the byte order
//! mark) and the line and paragraph separators, written `\u{202e}`. A remote peer therefore
//! cannot clear our screen, retitle the window, fake a second line, show its text reversed or
//! hide part of it.
//!
//! Reader threads format a whole batch of lines into one buffer and call [`Screen::show`] once,
//! which writes it under stdout's lock and flushes: lines from different connections never
//! interleave, and a burst costs one system call rather than one per line.
//!
//! When stdin and stdout are a terminal, the screen also owns the input line at the bottom: the
//! prompt and what is being typed. Everything else (messages, notices, log lines, answers) is
//! printed above it through [`Screen::show`] or [`Screen::above`], which take one lock (the
//! screen), erase the input line, print, and draw the line again with the cursor where it was.
//! So incoming text never breaks the line being typed. Chat lines then also carry the time.

use std::cell::Cell;
use std::io::{self, IsTerminal, Write};
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{editor, term};
use crate::escape::{columns, columns_of, escape_into};

/// How incoming messages are written to stdout.
#[derive(Clone)]
pub struct Screen {
    color: bool,
    /// `HH:MM ` before each chat line.
    clock: bool,
    /// The input line, in a terminal; `None` when stdin or stdout is a pipe or a file.
    input: Option<Arc<Mutex<InputLine>>>,
}

/// The line at the bottom of a terminal.
struct InputLine {
    prompt: String,
    /// Shown, dim, while nothing is typed.
    hint: String,
    line: Vec<char>,
    cursor: usize,
    /// Once the program is ending: nothing is drawn any more.
    closed: bool,
    /// Where the cursor was last put on the input row, and how many columns were drawn there:
    /// to find the row again after a resize.
    drawn: Cell<(usize, usize)>,
}

const BOLD_CYAN: &str = "\x1b[1;36m";
const YELLOW: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const RESET: &str = "\x1b[0m";
/// Back to the start of the row, and erase it.
const ERASE_ROW: &str = "\r\x1b[K";

impl Screen {
    /// For pipes: colors only when stdout is a terminal and `NO_COLOR` is not set (see
    /// no-color.org), no clock, no input line.
    pub fn from_env() -> Screen {
        Screen {
            color: io::stdout().is_terminal() && !no_color(),
            clock: false,
            input: None,
        }
    }

    /// For a terminal: an input line with `prompt`, and `hint` while it is empty; the time on
    /// chat lines unless `clock` is false.
    pub fn terminal(prompt: String, hint: String, clock: bool) -> Screen {
        Screen {
            color: !no_color(),
            clock,
            input: Some(Arc::new(Mutex::new(InputLine {
                prompt,
                hint,
                line: Vec::new(),
                cursor: 0,
                closed: false,
                drawn: Cell::new((0, 0)),
            }))),
        }
    }

    /// A writer of whole lines to [`Screen::above`].
    pub fn above_writer(&self) -> Above {
        Above {
            screen: self.clone(),
            line: Vec::new(),
        }
    }

    /// The input line's prompt; empty without one.
    pub fn prompt(&self) -> String {
        self.input
            .as_ref()
            .map(|input| input.lock().prompt.clone())
            .unwrap_or_default()
    }

    /// Whether this screen has an input line: stdin and stdout are a terminal.
    pub fn is_terminal(&self) -> bool {
        self.input.is_some()
    }

    /// `text` in the dim style, if colors are on: for events and what was typed.
    pub fn dim(&self, text: &str) -> String {
        self.styled(DIM, text)
    }

    /// `text` in yellow, if colors are on: for warnings.
    pub fn yellow(&self, text: &str) -> String {
        self.styled(YELLOW, text)
    }

    /// `text` in red, if colors are on: for errors.
    pub fn red(&self, text: &str) -> String {
        self.styled(RED, text)
    }

    fn styled(&self, style: &str, text: &str) -> String {
        match self.color {
            true => format!("{style}{text}{RESET}"),
            false => text.to_string(),
        }
    }

    /// The start of a display line, `[sender] `, with the name made safe. `unverified_from` is
    /// set when the name is a friend's but the connection came from an address the table does not
    /// give that friend. A reader makes this once per sender, not once per message.
    pub fn prefix(&self, sender: &[u8], unverified_from: Option<IpAddr>) -> Vec<u8> {
        let mut out = Vec::new();
        if self.color {
            out.extend_from_slice(BOLD_CYAN.as_bytes());
        }
        out.push(b'[');
        escape_into(sender, &mut out);
        if let Some(ip) = unverified_from {
            if self.color {
                out.extend_from_slice(YELLOW.as_bytes());
            }
            // `write!` to a Vec cannot fail.
            let _ = write!(out, " (unverified: from {ip})");
            if self.color {
                out.extend_from_slice(BOLD_CYAN.as_bytes());
            }
        }
        out.push(b']');
        if self.color {
            out.extend_from_slice(RESET.as_bytes());
        }
        out.push(b' ');
        out
    }

    /// Appends one display line to `out`: the time (in a terminal), the sender's prefix, the
    /// message made safe, a newline.
    pub fn push_line(&self, out: &mut Vec<u8>, prefix: &[u8], message: &[u8]) {
        if self.clock {
            out.extend_from_slice(term::local_hh_mm().as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(prefix);
        escape_into(message, out);
        out.push(b'\n');
    }

    /// Writes formatted lines to stdout and flushes. Fails when stdout is gone (for example the
    /// reading end of a pipe was closed); the caller then asks the program to quit.
    pub fn show(&self, lines: &[u8]) -> io::Result<()> {
        let Some(input) = &self.input else {
            return write_out(lines);
        };
        let input = input.lock();
        let mut out = Vec::with_capacity(lines.len() + 100);
        out.extend_from_slice(ERASE_ROW.as_bytes());
        out.extend_from_slice(lines);
        self.draw(&input, &mut out);
        write_out(&out)
    }

    /// Prints `text` (whole lines) on stderr: above the input line in a terminal.
    pub fn above(&self, text: &[u8]) {
        let Some(input) = &self.input else {
            let _ = io::stderr().write_all(text);
            return;
        };
        let input = input.lock();
        // stdout's lock is reentrant: held across the three writes, it keeps other output out.
        let _stdout = io::stdout().lock();
        let _ = write_out(ERASE_ROW.as_bytes());
        let text = String::from_utf8_lossy(text);
        let _ = io::stderr().write_all(wrapped(&text, term::width().saturating_sub(1)).as_bytes());
        self.redraw(&input, b"");
    }

    /// The console's line changed: draw it.
    pub fn set_input(&self, line: &[char], cursor: usize) {
        let Some(input) = &self.input else { return };
        let mut input = input.lock();
        input.line = line.to_vec();
        input.cursor = cursor;
        self.redraw(&input, ERASE_ROW.as_bytes());
    }

    /// Ctrl-Z: erases the input line, gives the terminal back to the shell until `fg`, then
    /// draws the line again. Output waits meanwhile.
    pub fn suspend(&self) {
        let Some(input) = &self.input else { return };
        let input = input.lock();
        // stdout's lock is reentrant: the redraw takes it again on this thread.
        let _stdout = io::stdout().lock();
        let _ = write_out(ERASE_ROW.as_bytes());
        term::suspend();
        self.redraw(&input, b"");
    }

    /// Ctrl-L: clears the screen and draws the input line again, at the top.
    pub fn clear(&self) {
        let Some(input) = &self.input else { return };
        // Cursor to the top-left corner, then erase the whole screen.
        self.redraw(&input.lock(), b"\x1b[H\x1b[2J");
    }

    /// The program is ending: erase the input line for good; a half-typed line is shown, marked
    /// as not sent, so it is never dropped without a word.
    pub fn close(&self) {
        let Some(input) = &self.input else { return };
        let mut input = input.lock();
        input.closed = true;
        let mut out = ERASE_ROW.to_string();
        if !input.line.is_empty() {
            let typed: String = input.line.iter().collect();
            let note = format!("{}{typed}  (not sent: typed but not entered)", input.prompt);
            out.push_str(&self.dim(&note));
            out.push('\n');
        }
        let _ = write_out(out.as_bytes());
    }

    /// The window changed size (SIGWINCH): the input line is drawn again for the new width. A
    /// terminal that rewraps text on a resize (most do; tmux does) has wrapped the old line onto
    /// several rows, with the cursor on the row of its column: go up to the first of them and
    /// erase from there, so no stale copy is left.
    pub fn resized(&self) {
        let Some(input) = &self.input else { return };
        let input = input.lock();
        // The cursor's row among the wrapped ones: its column's, or the last drawn column's
        // when it stood just past the end of the text.
        let (column, drawn) = input.drawn.get();
        let rows_up = column.min(drawn.saturating_sub(1)) / term::width().max(1);
        let mut before = Vec::new();
        if rows_up > 0 {
            let _ = write!(before, "\x1b[{rows_up}A");
        }
        before.extend_from_slice(b"\r\x1b[J");
        self.redraw(&input, &before);
    }

    /// Writes `before` (an erase), then the input line with the cursor in its place, in one write.
    fn redraw(&self, input: &InputLine, before: &[u8]) {
        let mut out = before.to_vec();
        self.draw(input, &mut out);
        let _ = write_out(&out);
    }

    /// Appends the input line, and the cursor's move to its place, to `out`.
    fn draw(&self, input: &InputLine, out: &mut Vec<u8>) {
        if input.closed {
            return;
        }
        let width = term::width();
        let (text, column) = editor::render(&input.prompt, &input.line, input.cursor, width);
        out.extend_from_slice(text.as_bytes());
        let mut drawn = columns_of(&text);
        if input.line.is_empty() {
            let room = width.saturating_sub(drawn + 1);
            let hint = fitted_hint(&input.hint, room);
            drawn += hint.chars().count();
            out.extend_from_slice(self.dim(&hint).as_bytes());
        }
        out.push(b'\r');
        if column > 0 {
            let _ = write!(out, "\x1b[{column}C");
        }
        input.drawn.set((column, drawn));
    }
}

/// Whole lines written to it are printed on stderr, above the input line in a terminal: for
/// answers to the console and log lines.
pub struct Above {
    screen: Screen,
    /// The start of a line not yet ended.
    line: Vec<u8>,
}

impl Write for Above {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(bytes);
        if let Some(end) = self.line.iter().rposition(|&b| b == b'\n') {
            let whole: Vec<u8> = self.line.drain(..=end).collect();
            self.screen.above(&whole);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `text` with each line longer than `width` columns wrapped at spaces, the rest of it indented
/// under the first line's text (after its `HH:MM ` time, if it has one). Color sequences take no
/// columns; a word longer than a line is cut.
fn wrapped(text: &str, width: usize) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let (line, end) = match line.strip_suffix('\n') {
            Some(line) => (line, "\n"),
            None => (line, ""),
        };
        let timed = line.len() > 6 && line.as_bytes()[2] == b':' && line.as_bytes()[5] == b' ';
        let indent = if timed { 6 } else { 2 };
        let mut column = 0;
        let mut first = true;
        for word in line.split(' ') {
            let cols = visible_columns(word);
            if !first && column + 1 + cols > width && column > indent {
                out.push('\n');
                out.push_str(&" ".repeat(indent));
                column = indent;
            } else if !first {
                out.push(' ');
                column += 1;
            }
            out.push_str(word);
            column += cols;
            first = false;
        }
        out.push_str(end);
    }
    out
}

/// Columns `text` takes on the terminal, not counting color sequences (`ESC [ ... m`).
fn visible_columns(text: &str) -> usize {
    let mut columns = 0;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // Skip to the sequence's final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        columns += self::columns(c);
    }
    columns
}

/// As many of the hint's comma-separated parts as fit in `room` columns, whole.
fn fitted_hint(hint: &str, room: usize) -> String {
    let mut fitted = String::new();
    for part in hint.split(", ") {
        let next = match fitted.is_empty() {
            true => part.to_string(),
            false => format!("{fitted}, {part}"),
        };
        if next.chars().count() > room {
            break;
        }
        fitted = next;
    }
    fitted
}

/// Writes `bytes` to stdout in one locked write, and flushes.
fn write_out(bytes: &[u8]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()
}

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escape::{INVISIBLE, is_invisible};

    fn line(sender: &[u8], from: Option<IpAddr>, message: &[u8]) -> String {
        let screen = Screen {
            color: false,
            clock: false,
            input: None,
        };
        let mut out = Vec::new();
        screen.push_line(&mut out, &screen.prefix(sender, from), message);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formats_sender_in_brackets_then_the_message() {
        assert_eq!(line(b"bob", None, b"hi / there"), "[bob] hi / there\n");
        assert_eq!(line(b"bob", None, b"tab\there"), "[bob] tab\there\n");
        assert_eq!(
            line("zoë".as_bytes(), None, "ça va? 👋".as_bytes()),
            "[zoë] ça va? 👋\n"
        );
    }

    #[test]
    fn escapes_terminal_controls_in_name_and_text() {
        assert_eq!(
            line(b"b\x1b[2Jo", None, b"\x1b]0;title\x07 \x08\r[eve] fake\x7f"),
            "[b\\x1b[2Jo] \\x1b]0;title\\x07 \\x08\\x0d[eve] fake\\x7f\n"
        );
        // C1 controls, such as the single-character CSI U+009B.
        assert_eq!(
            line(b"a", None, "x\u{9b}2J\u{85}".as_bytes()),
            "[a] x\\u{9b}2J\\u{85}\n"
        );
    }

    #[test]
    fn invisible_format_characters_and_separators_are_escaped() {
        for &(first, last) in &INVISIBLE {
            for code in first..=last {
                let c = char::from_u32(code).unwrap();
                let text = format!("a{c}b");
                let expected = format!("[x] a\\u{{{code:x}}}b\n");
                assert_eq!(line(b"x", None, text.as_bytes()), expected);
                assert_eq!(
                    line(text.as_bytes(), None, b"m"),
                    format!("[a\\u{{{code:x}}}b] m\n"),
                    "in the name too"
                );
            }
        }
        // What the issue reported: a right-to-left override that shows text reversed.
        assert_eq!(
            line(b"a", None, "pay \u{202e}gnp.exe".as_bytes()),
            "[a] pay \\u{202e}gnp.exe\n"
        );
        // Each is named: bidi marks, zero-width space, BOM, line and paragraph separators.
        for code in [
            0x200E, 0x200F, 0x200B, 0xFEFF, 0x2028, 0x2029, 0x2066, 0x2069,
        ] {
            assert!(is_invisible(char::from_u32(code).unwrap()), "{code:x}");
        }
    }

    #[test]
    fn ordinary_text_and_joined_emoji_are_shown_as_they_are() {
        for text in [
            "café, naïve, Ærøskøbing",
            "日本語のテキスト、한국어",
            "مرحبا שלום",
            "👋 👍🏽 ❤️ 🇫🇷",
            "👩\u{200D}💻 👨\u{200D}👩\u{200D}👧 🏳\u{FE0F}\u{200D}🌈",
        ] {
            assert_eq!(line(b"a", None, text.as_bytes()), format!("[a] {text}\n"));
        }
        // A joiner that joins no emoji is escaped.
        assert_eq!(
            line(b"a", None, "a\u{200D}b 👩\u{200D}".as_bytes()),
            "[a] a\\u{200d}b 👩\\u{200d}\n"
        );
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(
            line(b"a", None, b"ok \xff\xfe end \xe2\x82"),
            "[a] ok \u{fffd}\u{fffd} end \u{fffd}\n"
        );
    }

    #[test]
    fn marks_unverified_senders_with_their_address() {
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(
            line(b"bob", Some(ip), b"hi"),
            "[bob (unverified: from 10.0.0.9)] hi\n"
        );
    }

    #[test]
    fn color_wraps_only_the_name() {
        let screen = Screen {
            color: true,
            clock: false,
            input: None,
        };
        let mut out = Vec::new();
        screen.push_line(&mut out, &screen.prefix(b"bob", None), b"\x1b");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\x1b[1;36m[bob]\x1b[0m \\x1b\n"
        );
    }

    #[test]
    fn the_hint_keeps_only_whole_parts_that_fit() {
        let hint = "friend/message, */message for everyone, Tab completes a name, /help";
        assert_eq!(fitted_hint(hint, 100), hint);
        assert_eq!(
            fitted_hint(hint, 40),
            "friend/message, */message for everyone"
        );
        assert_eq!(fitted_hint(hint, 10), "");
    }

    #[test]
    fn long_lines_wrap_at_spaces_under_their_text() {
        let line =
            "16:26 [you -> everyone] see you at 8!  delivered: bob; waiting: carol (not running)\n";
        assert_eq!(
            wrapped(line, 60),
            "16:26 [you -> everyone] see you at 8!  delivered: bob;\n      waiting: carol (not running)\n"
        );
        // Short lines, and lines of one long word, stay as they are; colors take no room.
        assert_eq!(wrapped("short\n", 60), "short\n");
        let dim = "\x1b[2m16:26 · a b\x1b[0m\n";
        assert_eq!(wrapped(dim, 14), dim);
        assert_eq!(wrapped("x".repeat(70).as_str(), 60), "x".repeat(70));
    }
}
