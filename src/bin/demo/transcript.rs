//! The transcript: every line the peers were typed, showed and logged, in the order the demo saw
//! them, printed as it grows and kept for the checks.
//!
//! Only the stage's thread touches it (the reader threads send it lines over a channel), so it
//! needs no lock. Formatting is pure and unit-tested; [`Transcript::record`] is the one place
//! that prints.

use std::io::{self, IsTerminal, Write};
use std::time::Instant;

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Typed into the peer by the script.
    Stdin,
    /// Shown by the peer: an incoming chat message.
    Stdout,
    /// Logged by the peer: connection events, errors and console answers.
    Stderr,
    /// The peer's process ended; the text says how.
    Exit,
    /// The demo's own narration between the steps.
    Narration,
}

/// One line of the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub at: Instant,
    /// Index of the peer in the table; `None` for narration.
    pub peer: Option<usize>,
    pub source: Source,
    pub text: String,
}

impl Line {
    /// Whether this line is `peer`'s, from `source`.
    pub fn is(&self, peer: usize, source: Source) -> bool {
        self.peer == Some(peer) && self.source == source
    }
}

/// The index of the first line at or after `from` that is `wanted`.
pub fn find(lines: &[Line], from: usize, wanted: impl Fn(&Line) -> bool) -> Option<usize> {
    lines
        .get(from..)?
        .iter()
        .position(wanted)
        .map(|offset| from + offset)
}

/// The text of an exit line for a process that ended with `code` (`None`: killed by a signal).
pub fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(code) => format!("exited with status {code}"),
        None => "killed by a signal".to_string(),
    }
}

pub struct Transcript {
    start: Instant,
    names: Vec<String>,
    color: bool,
    lines: Vec<Line>,
}

impl Transcript {
    /// A transcript for peers called `names`, colored when stdout is a terminal and `NO_COLOR` is
    /// not set (see no-color.org).
    pub fn new(names: Vec<String>) -> Transcript {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Transcript {
            start: Instant::now(),
            names,
            color: io::stdout().is_terminal() && !no_color,
            lines: Vec::new(),
        }
    }

    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Prints a line and keeps it.
    pub fn record(&mut self, line: Line) {
        let text = render(&line, self.start, &self.names, self.color);
        // A closed stdout (`| head`) must not stop the demo or its checks.
        let _ = writeln!(io::stdout().lock(), "{text}");
        self.lines.push(line);
    }

    /// Prints a line that is not part of the transcript: the legend and the verdict.
    pub fn say(&self, text: &str) {
        let _ = writeln!(io::stdout().lock(), "{text}");
    }
}

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
/// One color per peer, in table order, repeating after six.
const PEER_COLORS: [&str; 6] = [
    "\x1b[36m", "\x1b[35m", "\x1b[34m", "\x1b[33m", "\x1b[32m", "\x1b[31m",
];

/// One transcript line as printed: seconds since the start, the peer, the source, the text.
/// `12.34 bob    stdout [alice] hi`. Log lines lose their own clock; the first column says when.
pub fn render(line: &Line, start: Instant, names: &[String], color: bool) -> String {
    let seconds = line.at.saturating_duration_since(start).as_secs_f64();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let paint = |code: &str, text: &str| {
        if color {
            format!("{code}{text}{RESET}")
        } else {
            text.to_string()
        }
    };
    let Some(peer) = line.peer else {
        return format!("{seconds:6.2} {}", paint(BOLD, &format!("* {}", line.text)));
    };
    let name = names.get(peer).map(String::as_str).unwrap_or("?");
    let name = paint(
        PEER_COLORS[peer % PEER_COLORS.len()],
        &format!("{name:<width$}"),
    );
    let (label, text) = match line.source {
        Source::Stdin => ("stdin ", paint(BOLD, &line.text)),
        Source::Stdout => ("stdout", paint(GREEN, &line.text)),
        Source::Stderr => {
            let text = without_clock(&line.text);
            let code = if text.starts_with("ERROR") || text.starts_with("error:") {
                RED
            } else if text.starts_with("WARN") {
                YELLOW
            } else {
                DIM
            };
            ("stderr", paint(code, text))
        }
        Source::Exit => ("exit  ", paint(BOLD, &line.text)),
        Source::Narration => ("", line.text.clone()),
    };
    format!("{seconds:6.2} {name} {label} {text}")
}

/// A log line without its leading `HH:MM:SS.mmm ` clock; other lines unchanged.
pub fn without_clock(text: &str) -> &str {
    let bytes = text.as_bytes();
    let is_clock = bytes.len() > 13
        && bytes[..12].iter().enumerate().all(|(i, b)| match i {
            2 | 5 => *b == b':',
            8 => *b == b'.',
            _ => b.is_ascii_digit(),
        })
        && bytes[12] == b' ';
    if is_clock { &text[13..] } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn names() -> Vec<String> {
        vec!["alice".to_string(), "bob".to_string()]
    }

    fn line(
        peer: Option<usize>,
        source: Source,
        text: &str,
        after_ms: u64,
        start: Instant,
    ) -> Line {
        Line {
            at: start + Duration::from_millis(after_ms),
            peer,
            source,
            text: text.to_string(),
        }
    }

    #[test]
    fn lines_show_time_peer_and_source_without_color() {
        let t0 = Instant::now();
        let render = |l: &Line| render(l, t0, &names(), false);
        assert_eq!(
            render(&line(Some(1), Source::Stdout, "[alice] hi", 1234, t0)),
            "  1.23 bob   stdout [alice] hi"
        );
        assert_eq!(
            render(&line(Some(0), Source::Stdin, "bob/hi", 5, t0)),
            "  0.01 alice stdin  bob/hi"
        );
        assert_eq!(
            render(&line(
                Some(0),
                Source::Stderr,
                "12:00:01.234 INFO  [link:bob] connected to bob (127.0.0.1:7002)",
                0,
                t0
            )),
            "  0.00 alice stderr INFO  [link:bob] connected to bob (127.0.0.1:7002)"
        );
        assert_eq!(
            render(&line(None, Source::Narration, "bob leaves", 0, t0)),
            "  0.00 * bob leaves"
        );
    }

    #[test]
    fn color_marks_errors_red_and_messages_green() {
        let t0 = Instant::now();
        let error = render(
            &line(Some(0), Source::Stderr, "error: unknown friend", 0, t0),
            t0,
            &names(),
            true,
        );
        assert!(
            error.contains(&format!("{RED}error: unknown friend{RESET}")),
            "{error:?}"
        );
        let shown = render(
            &line(Some(1), Source::Stdout, "[alice] hi", 0, t0),
            t0,
            &names(),
            true,
        );
        assert!(
            shown.contains(&format!("{GREEN}[alice] hi{RESET}")),
            "{shown:?}"
        );
    }

    #[test]
    fn only_a_leading_clock_is_removed() {
        assert_eq!(without_clock("09:59:59.999 WARN  [x] y"), "WARN  [x] y");
        assert_eq!(without_clock("friend   address"), "friend   address");
        assert_eq!(without_clock("12:00:01.234"), "12:00:01.234");
        assert_eq!(without_clock("1a:00:01.234 x"), "1a:00:01.234 x");
    }

    #[test]
    fn find_starts_at_the_given_index() {
        let t0 = Instant::now();
        let lines = [
            line(Some(0), Source::Stderr, "a", 0, t0),
            line(Some(1), Source::Stderr, "a", 0, t0),
            line(Some(0), Source::Stderr, "a", 0, t0),
        ];
        assert_eq!(find(&lines, 0, |l| l.is(0, Source::Stderr)), Some(0));
        assert_eq!(find(&lines, 1, |l| l.is(0, Source::Stderr)), Some(2));
        assert_eq!(find(&lines, 3, |l| l.is(0, Source::Stderr)), None);
        assert_eq!(find(&lines, 9, |_| true), None);
    }
}
