//! The demo's command line: `p2p-chat-demo [OPTIONS]`. Pure, so every option is unit-tested.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use p2p_chat::cli::{SHORTEST, Words, seconds_in};

pub const USAGE: &str = "\
p2p-chat-demo: five p2p-chat peers on this machine chat by script, and the demo
checks its own transcript

Usage: p2p-chat-demo [OPTIONS]

The demo starts one p2p-chat process for every friend in the peer table (at
least five, all on this machine; the fourth runs p2p-chat-select, the same chat
as one poll() loop) and types a conversation into the first five: direct
messages, a note to self, a broadcast, /peers, an unknown name, an idle
connection closed and reopened, and a friend who quits, is written to, and
comes back. It prints one transcript of what each peer was typed (stdin),
showed (stdout) and logged (stderr). After each step it waits for the sign that
the step worked; a sign that does not come ends the demo, naming it. At the end
every peer must exit cleanly and none may have logged an error. At the default
pace it ends within 20 seconds.

Options:
  --peers FILE          peer table, lines of NAME HOST PORT [default: peers.txt]
  --chat-bin PATH       the p2p-chat program to run; p2p-chat-select must be
                        beside it [default: the p2p-chat next to this program]
  --idle-timeout SECS   the peers' idle timeout [default: 2]; decimals allowed
  --pace MS             pause between steps of the script, in milliseconds
                        [default: 1000]; 0 runs the script as fast as it can
  --timeline FILE       also draw the run as a sequence diagram, an SVG file:
                        a lane per peer, an arrow per message with its fate, a
                        bar per TCP connection (make demo writes
                        target/demo-timeline.svg)
  --tmux                no script: open a tmux session with one pane per friend
                        (the first five), for you to type into
  -h, --help            print this help

Environment:
  RUST_LOG   added to the peers' log filter (they log at info level at least,
             which the signs need); RUST_LOG=wire=trace shows each frame's bytes
  NO_COLOR   set to turn off color in the transcript

Exit status: 0 when every check passed (or the tmux session was opened); 1 when
a sign did not come, a check failed or the demo could not run (a port is taken,
p2p-chat or tmux is missing); 2 on a usage or peer-table error; 130 after
Ctrl-C.";

/// Everything the command line decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub peers_path: PathBuf,
    /// `None` means "the p2p-chat next to this program".
    pub chat_bin: Option<PathBuf>,
    pub idle_timeout: Duration,
    pub pace: Duration,
    pub tmux: bool,
    /// Where to draw the run as a sequence diagram, if anywhere.
    pub timeline: Option<PathBuf>,
}

/// Parses the arguments after the program name: the options, or `None` for `--help`. An error is
/// a one-line message.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Option<Options>, String> {
    let mut options = Options {
        peers_path: PathBuf::from("peers.txt"),
        chat_bin: None,
        // Short enough that idle connections close while the demo is on screen.
        idle_timeout: Duration::from_secs(2),
        // Slow enough to read along, one chat line a second.
        pace: Duration::from_millis(1000),
        tmux: false,
        timeline: None,
    };
    // The same reading of the words as p2p-chat's own command line.
    let mut words = Words::new(args);
    while let Some(word) = words.next() {
        let (arg, flag, inline) = word?;
        let mut value = || words.value(&flag, inline.clone());
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--peers" => options.peers_path = PathBuf::from(value()?),
            "--chat-bin" => options.chat_bin = Some(PathBuf::from(value()?)),
            // At most 10 s: the demo must see connections close within its run of about 20 s.
            "--idle-timeout" => {
                options.idle_timeout = seconds_in("--idle-timeout", &value()?, SHORTEST, 10.0)?
            }
            "--pace" => options.pace = pace(&value()?)?,
            "--timeline" => options.timeline = Some(PathBuf::from(value()?)),
            "--tmux" if inline.is_none() => options.tmux = true,
            other if other.starts_with('-') => return Err(format!("unknown option {arg}")),
            _ => {
                return Err(format!(
                    "unexpected argument {arg:?}: the demo takes options only"
                ));
            }
        }
    }
    Ok(Some(options))
}

/// Whole milliseconds, from 0 to 5000.
fn pace(text: &str) -> Result<Duration, String> {
    text.parse::<u64>()
        .ok()
        .filter(|ms| *ms <= 5000)
        .map(Duration::from_millis)
        .ok_or_else(|| {
            format!("--pace {text:?}: expected whole milliseconds from 0 to 5000, e.g. 1000")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Option<Options>, String> {
        parse(args.iter().map(OsString::from))
    }

    fn options(args: &[&str]) -> Options {
        run(args).unwrap().expect("options, not --help")
    }

    #[test]
    fn defaults_and_values_with_a_space_or_equals_sign() {
        let defaults = options(&[]);
        assert_eq!(defaults.peers_path, PathBuf::from("peers.txt"));
        assert_eq!((defaults.chat_bin, defaults.tmux), (None, false));
        assert_eq!(
            (defaults.idle_timeout, defaults.pace),
            (Duration::from_secs(2), Duration::from_secs(1))
        );
        let o = options(&[
            "--peers=t.txt",
            "--chat-bin",
            "/bin/chat",
            "--idle-timeout",
            "0.5",
        ]);
        assert_eq!(o.peers_path, PathBuf::from("t.txt"));
        assert_eq!(o.chat_bin, Some(PathBuf::from("/bin/chat")));
        assert_eq!(o.idle_timeout, Duration::from_millis(500));
        let o = options(&["--pace=0", "--tmux"]);
        assert_eq!((o.pace, o.tmux), (Duration::ZERO, true));
        assert_eq!(run(&["--pace", "1", "-h"]).unwrap(), None);
    }

    #[test]
    fn mistakes_are_one_line_naming_the_option() {
        let err = |args: &[&str]| run(args).unwrap_err();
        assert_eq!(err(&["--bogus"]), "unknown option --bogus");
        assert_eq!(err(&["--tmux=yes"]), "unknown option --tmux=yes");
        assert!(err(&["alice"]).starts_with("unexpected argument \"alice\""));
        assert_eq!(err(&["--peers"]), "--peers needs a value");
        for (option, bad) in [
            ("--idle-timeout", &["0", "11", "abc", "NaN", "-1"][..]),
            ("--pace", &["-1", "1.5", "soon", "5001"][..]),
        ] {
            for bad in bad {
                assert!(err(&[option, bad]).starts_with(option), "{option} {bad}");
            }
        }
        assert!(!err(&["--pace", "x"]).contains('\n'));
    }
}
