//! The command line: `p2p-chat [OPTIONS] <NAME>`. Pure, so every option is unit-tested.

use std::ffi::OsString;
use std::time::Duration;

use crate::conversation::{Limits, Secs};
use crate::error::{Error, Result};

/// `p2p-chat --help`: what p2p-chat is, then [`OPTIONS`].
pub const ABOUT: &str = "\
p2p-chat: peer-to-peer terminal chat for a small group of friends

Usage: p2p-chat [OPTIONS] <NAME>

NAME is your own entry in the peer table. Type friend/message to send, */message
to send to everyone, /peers, /events, /help, /quit. Incoming messages are
printed on stdout as [sender] message; connection events and errors go to
stderr.

In a terminal, p2p-chat edits the line you type itself: Left/Right, Home/End
(Ctrl-A/E), Backspace, Delete, Ctrl-U/K/W to delete to the start, to the end
or a word, Up/Down for the history, Tab to complete a friend's name, Ctrl-L to
clear the screen. Incoming text is printed above the line, which stays whole.
Chat lines carry the time; your own messages are shown with what became of
them. Connection events are hidden unless -v or /events. Ctrl-D on an empty
line quits; Ctrl-C quits too (a half-typed line is not sent: it is shown back,
marked not sent); Ctrl-Z stops p2p-chat until fg. With stdin or stdout a pipe
or a file, none of this: lines in, [sender] message lines out, every log line
on stderr.

";

/// The options and what follows them, the same for both programs.
pub const OPTIONS: &str = "\
Options:
  --peers FILE             peer table, lines of NAME HOST PORT
                           [default: peers.txt]
  --idle-timeout SECS      close an outbound connection after SECS without
                           sending [default: 30]; every SECS is from 0.001 to
                           86400, decimals allowed, e.g. 0.5
  --connect-timeout SECS   give up connecting to a friend after SECS; on a
                           quiet connection, a friend's machine that answers
                           none of 3 probes SECS apart is gone [default: 3]
  --write-timeout SECS     a friend who takes none of our bytes for SECS is
                           stalled: nobody else's input waits for them any
                           more [default: 5]
  --ack-timeout SECS       a friend's p2p-chat confirms every message it shows:
                           silence for SECS gets a warning; a friend who has
                           never confirmed, and whose machine took our bytes,
                           runs a program that does not confirm [default: 5]
  --give-up SECS           report the messages of a connection that confirmed
                           nothing for SECS, and close it, or keep it while
                           their machine answers if only their program reads
                           nothing; at least twice --ack-timeout [default: 60,
                           or that]
  --max-inbound N          most inbound connections at once [default: 4 per
                           friend in the table, at least 16]
  -v, --verbose            in a terminal, show connection events from the start
                           (/events turns them on and off)
  --no-time                in a terminal, no HH:MM before chat lines
  -h, --help               print this help
  -V, --version            print the version

Environment:
  RUST_LOG   log filter for stderr [default: info]; RUST_LOG=info,wire=trace
             also shows every frame's bytes as they are written and read
  NO_COLOR   set to turn off color on stdout

Exit status: 0 after /quit, end of input or Ctrl-C; 1 on a runtime failure
(for example the port is in use); 2 on a usage or peer-table error; 130 after
a second Ctrl-C, which quits without waiting for deliveries (what is still
unconfirmed is reported).";

/// Everything the command line decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub name: String,
    pub peers_path: String,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    pub write_timeout: Duration,
    pub ack_timeout: Duration,
    pub give_up: Duration,
    /// `None` means "derive it from the table size".
    pub max_inbound: Option<usize>,
    /// In a terminal: show connection events from the start.
    pub verbose: bool,
    /// In a terminal: the time before chat lines.
    pub clock: bool,
}

impl Options {
    /// The time limits each friend's model keeps.
    pub fn limits(&self) -> Limits {
        Limits {
            idle: self.idle_timeout,
            ack: self.ack_timeout,
            give_up: self.give_up,
            connect: self.connect_timeout,
            write: self.write_timeout,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Run(Options),
    Help,
    Version,
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Action> {
    let mut name: Option<String> = None;
    let mut give_up = None;
    let mut options = Options {
        name: String::new(),
        peers_path: "peers.txt".to_string(),
        idle_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(3),
        write_timeout: Duration::from_secs(5),
        ack_timeout: Duration::from_secs(5),
        give_up: Duration::from_secs(60),
        max_inbound: None,
        verbose: false,
        clock: true,
    };
    let mut words = Words::new(args);
    while let Some(word) = words.next() {
        let (arg, flag, inline) = word.map_err(usage)?;
        let mut value = || words.value(&flag, inline.clone()).map_err(usage);
        match flag.as_str() {
            "-h" | "--help" => return Ok(Action::Help),
            "-V" | "--version" => return Ok(Action::Version),
            "-v" | "--verbose" => options.verbose = true,
            "--no-time" => options.clock = false,
            "--peers" => options.peers_path = value()?,
            "--idle-timeout" => options.idle_timeout = seconds(&flag, &value()?)?,
            "--connect-timeout" => options.connect_timeout = seconds(&flag, &value()?)?,
            "--write-timeout" => options.write_timeout = seconds(&flag, &value()?)?,
            "--ack-timeout" => options.ack_timeout = seconds(&flag, &value()?)?,
            "--give-up" => give_up = Some(seconds(&flag, &value()?)?),
            "--max-inbound" => {
                let text = value()?;
                let n = text
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=10_000).contains(n));
                options.max_inbound = Some(n.ok_or_else(|| {
                    usage(format!(
                        "--max-inbound {text:?}: expected a whole number from 1 to 10000"
                    ))
                })?);
            }
            "--" => {
                if let Some(rest) = words.rest() {
                    set_name(&mut name, rest.to_string_lossy().into_owned())?;
                }
            }
            other if other.starts_with('-') && other.len() > 1 => {
                return Err(usage(format!("unknown option {other}")));
            }
            _ => set_name(&mut name, arg)?,
        }
    }
    options.name = name.ok_or_else(|| {
        usage("missing NAME: say which entry of the peer table is you, e.g. alice".to_string())
    })?;
    // A friend who does not confirm is learned only after --ack-timeout (and asked again after
    // another): giving up sooner would report every message to them as possibly lost.
    let least = 2 * options.ack_timeout;
    options.give_up = give_up.unwrap_or(options.give_up.max(least));
    if options.give_up < least {
        return Err(usage(format!(
            "--give-up {} is less than twice --ack-timeout ({}): a friend who does not confirm \
             is only learned after --ack-timeout, so giving up sooner would report every \
             message to them as possibly lost; raise --give-up or lower --ack-timeout",
            Secs(options.give_up),
            Secs(options.ack_timeout)
        )));
    }
    Ok(Action::Run(options))
}

fn set_name(name: &mut Option<String>, value: String) -> Result<()> {
    if let Some(first) = name {
        return Err(usage(format!(
            "one NAME only: got {first:?} and then {value:?}"
        )));
    }
    *name = Some(value);
    Ok(())
}

/// Parses a positive number of seconds, decimals allowed, up to a day.
fn seconds(option: &str, text: &str) -> Result<Duration> {
    seconds_in(option, text, SHORTEST, LONGEST).map_err(usage)
}

/// The shortest time any option takes, in seconds: a millisecond. Anything shorter rounds to
/// nothing somewhere (a socket timeout of zero means "never"), so it is refused at the door.
pub const SHORTEST: f64 = 0.001;
/// The longest, in seconds: a day, far beyond any use and within what sockets accept.
const LONGEST: f64 = 86_400.0;

/// A number of seconds from `least` to `most`, decimals allowed; the error says which option and
/// what it takes.
pub fn seconds_in(
    option: &str,
    text: &str,
    least: f64,
    most: f64,
) -> std::result::Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= least && *s <= most)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| {
            format!(
                "{option} {text:?}: expected a number of seconds from {least} to {most}, e.g. 30 \
                 or 0.5"
            )
        })
}

/// One word of a command line: the whole word, the flag, and its value if written `--flag=value`.
pub type Word = (String, String, Option<String>);

/// The words of a command line taken one option at a time, for every binary of the project:
/// `--opt value` and `--opt=value` alike.
pub struct Words<I> {
    rest: I,
}

impl<I: Iterator<Item = OsString>> Words<I> {
    pub fn new(args: impl IntoIterator<IntoIter = I>) -> Self {
        Words {
            rest: args.into_iter(),
        }
    }

    /// The next word as (the whole word, the flag, its `=value` if written so).
    #[allow(clippy::should_implement_trait)] // it borrows `self` again for `value`
    pub fn next(&mut self) -> Option<std::result::Result<Word, String>> {
        let word = self.rest.next()?;
        Some(match word.into_string() {
            Err(word) => Err(format!("argument {word:?} is not valid UTF-8")),
            Ok(word) => {
                let (flag, inline) = match word.split_once('=') {
                    Some((flag, value)) if flag.starts_with("--") => {
                        (flag.to_string(), Some(value.to_string()))
                    }
                    _ => (word.clone(), None),
                };
                Ok((word, flag, inline))
            }
        })
    }

    /// The value of `flag`: the one after `=`, else the next word.
    pub fn value(
        &mut self,
        flag: &str,
        inline: Option<String>,
    ) -> std::result::Result<String, String> {
        match inline {
            Some(value) => Ok(value),
            None => self
                .rest
                .next()
                .and_then(|v| v.into_string().ok())
                .ok_or_else(|| format!("{flag} needs a value")),
        }
    }

    /// The next word as it is (after `--`).
    pub fn rest(&mut self) -> Option<OsString> {
        self.rest.next()
    }
}

fn usage(message: String) -> Error {
    Error::Usage(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Action> {
        parse(args.iter().map(OsString::from))
    }

    fn options(args: &[&str]) -> Options {
        match run(args).unwrap() {
            Action::Run(options) => options,
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn name_alone_takes_the_defaults() {
        let o = options(&["alice"]);
        assert_eq!(o.name, "alice");
        assert_eq!(o.peers_path, "peers.txt");
        assert_eq!(o.idle_timeout, Duration::from_secs(30));
        assert_eq!(o.connect_timeout, Duration::from_secs(3));
        assert_eq!(o.write_timeout, Duration::from_secs(5));
        assert_eq!(o.ack_timeout, Duration::from_secs(5));
        assert_eq!(o.give_up, Duration::from_secs(60));
        assert_eq!(o.max_inbound, None);
        assert!(!o.verbose && o.clock);
        let o = options(&["-v", "--no-time", "alice"]);
        assert!(o.verbose && !o.clock);
        // A long --ack-timeout moves the default --give-up to twice it.
        let o = options(&["--ack-timeout", "40", "alice"]);
        assert_eq!(o.give_up, Duration::from_secs(80));
    }

    #[test]
    fn options_take_values_with_a_space_or_equals_sign() {
        let o = options(&[
            "--peers",
            "x.txt",
            "--idle-timeout=0.5",
            "bob",
            "--connect-timeout",
            "2",
            "--write-timeout=1.5",
            "--ack-timeout",
            "0.25",
            "--give-up=12",
            "--max-inbound",
            "3",
        ]);
        assert_eq!(o.name, "bob");
        assert_eq!(o.peers_path, "x.txt");
        assert_eq!(o.idle_timeout, Duration::from_millis(500));
        assert_eq!(o.connect_timeout, Duration::from_secs(2));
        assert_eq!(o.write_timeout, Duration::from_millis(1500));
        assert_eq!(o.ack_timeout, Duration::from_millis(250));
        assert_eq!(o.give_up, Duration::from_secs(12));
        assert_eq!(o.max_inbound, Some(3));
    }

    #[test]
    fn every_line_of_the_help_fits_80_columns() {
        for line in ABOUT.lines().chain(OPTIONS.lines()) {
            assert!(line.chars().count() <= 80, "{} columns: {line}", line.len());
        }
    }

    #[test]
    fn help_and_version() {
        assert_eq!(run(&["-h"]).unwrap(), Action::Help);
        assert_eq!(run(&["alice", "--help"]).unwrap(), Action::Help);
        assert_eq!(run(&["-V"]).unwrap(), Action::Version);
    }

    #[test]
    fn errors_name_the_option_and_the_fix() {
        let err = |args: &[&str]| run(args).unwrap_err().to_string();
        assert!(err(&[]).starts_with("missing NAME"));
        assert!(err(&["a", "b"]).contains("one NAME only"));
        assert!(err(&["--bogus", "a"]).starts_with("unknown option --bogus"));
        assert!(err(&["a", "--peers"]).starts_with("--peers needs a value"));
        let early = err(&["a", "--give-up", "1"]);
        assert!(early.starts_with("--give-up 1.0 s is less than twice --ack-timeout (5.0 s)"));
        for bad in [
            "0", "-1", "abc", "NaN", "inf", "1e9", "1e-10", "1e-300", "0.0009",
        ] {
            assert!(
                err(&["a", "--idle-timeout", bad]).starts_with(&format!("--idle-timeout {bad:?}")),
                "{bad}"
            );
        }
        let range = err(&["a", "--write-timeout", "1e-10"]);
        assert!(range.contains("from 0.001 to 86400"), "{range}");
        assert_eq!(
            options(&["--ack-timeout", "0.001", "a"])
                .ack_timeout
                .as_millis(),
            1
        );
        assert!(err(&["a", "--max-inbound", "0"]).starts_with("--max-inbound \"0\""));
        assert_eq!(run(&["a", "--peers"]).unwrap_err().exit_code(), 2);
    }
}
