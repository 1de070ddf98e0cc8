//! The demo's command line: `p2p-chat-demo [OPTIONS]`. Pure, so every option is unit-tested.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use p2p_chat::cli::{Words, seconds_in};

pub const USAGE: &str = "\
p2p-chat-demo: five p2p-chat peers on this machine chat by script, and the demo
checks its own transcript

Usage: p2p-chat-demo [OPTIONS]

The demo starts one p2p-chat process for every friend in the peer table (at least
five, all on this machine) and types a conversation into the first five: direct
messages, a note to self, a broadcast, /peers, an unknown name, an idle connection
closed and reopened, and a friend who quits and is then written to. It prints one
transcript of what each peer was typed (stdin), showed (stdout) and logged
(stderr), then checks it. At the default pace it ends by itself within 20 seconds.

Options:
  --peers FILE          peer table, lines of NAME HOST PORT [default: peers.txt]
  --chat-bin PATH       the p2p-chat program to run [default: the p2p-chat
                        next to this program]
  --idle-timeout SECS   the peers' idle timeout [default: 2]; decimals allowed
  --pace MS             pause between steps of the script, in milliseconds
                        [default: 1000]; 0 runs the script as fast as it can
  --tmux                no script: open a tmux session with one pane per friend
                        (the first five), for you to type into
  -h, --help            print this help

Environment:
  RUST_LOG   added to the peers' log filter (they log at info level at least, which
             the checks need); RUST_LOG=wire=trace shows every frame's bytes
  NO_COLOR   set to turn off color in the transcript

Exit status: 0 when every check passed (or the tmux session was opened); 1 when a
check failed or the demo could not run (a port is taken, p2p-chat or tmux is
missing); 2 on a usage or peer-table error; 130 after Ctrl-C.";

/// Everything the command line decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub peers_path: PathBuf,
    /// `None` means "the p2p-chat next to this program".
    pub chat_bin: Option<PathBuf>,
    pub idle_timeout: Duration,
    pub pace: Duration,
    pub tmux: bool,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Run(Options),
    Help,
}

/// Parses the arguments after the program name. An error is a one-line message.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Action, String> {
    let mut options = Options {
        peers_path: PathBuf::from("peers.txt"),
        chat_bin: None,
        // Short enough that idle connections close while the demo is on screen.
        idle_timeout: Duration::from_secs(2),
        // Slow enough to read along, one chat line a second.
        pace: Duration::from_millis(1000),
        tmux: false,
    };
    // The same reading of the words as p2p-chat's own command line.
    let mut words = Words::new(args);
    while let Some(word) = words.next() {
        let (arg, flag, inline) = word?;
        let mut value = || words.value(&flag, inline.clone());
        match flag.as_str() {
            "-h" | "--help" => return Ok(Action::Help),
            "--peers" => options.peers_path = PathBuf::from(value()?),
            "--chat-bin" => options.chat_bin = Some(PathBuf::from(value()?)),
            "--idle-timeout" => options.idle_timeout = idle_timeout(&value()?)?,
            "--pace" => options.pace = pace(&value()?)?,
            "--tmux" if inline.is_none() => options.tmux = true,
            other if other.starts_with('-') => return Err(format!("unknown option {arg}")),
            _ => {
                return Err(format!(
                    "unexpected argument {arg:?}: the demo takes options only"
                ));
            }
        }
    }
    Ok(Action::Run(options))
}

/// Seconds, decimals allowed, up to 10: the demo must see connections close within its run of
/// about 20 seconds.
fn idle_timeout(text: &str) -> Result<Duration, String> {
    seconds_in("--idle-timeout", text, 0.0, 10.0)
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

    fn run(args: &[&str]) -> Result<Action, String> {
        parse(args.iter().map(OsString::from))
    }

    fn options(args: &[&str]) -> Options {
        match run(args).unwrap() {
            Action::Run(options) => options,
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn no_arguments_take_the_defaults() {
        let o = options(&[]);
        assert_eq!(o.peers_path, PathBuf::from("peers.txt"));
        assert_eq!(o.chat_bin, None);
        assert_eq!(o.idle_timeout, Duration::from_secs(2));
        assert_eq!(o.pace, Duration::from_millis(1000));
        assert!(!o.tmux);
    }

    #[test]
    fn options_take_values_with_a_space_or_equals_sign() {
        let o = options(&[
            "--peers=t.txt",
            "--chat-bin",
            "/bin/chat",
            "--idle-timeout",
            "0.5",
            "--pace=0",
            "--tmux",
        ]);
        assert_eq!(o.peers_path, PathBuf::from("t.txt"));
        assert_eq!(o.chat_bin, Some(PathBuf::from("/bin/chat")));
        assert_eq!(o.idle_timeout, Duration::from_millis(500));
        assert_eq!(o.pace, Duration::ZERO);
        assert!(o.tmux);
        assert_eq!(run(&["--pace", "1", "-h"]).unwrap(), Action::Help);
    }

    #[test]
    fn mistakes_are_one_line_naming_the_option() {
        let err = |args: &[&str]| run(args).unwrap_err();
        assert_eq!(err(&["--bogus"]), "unknown option --bogus");
        assert_eq!(err(&["--tmux=yes"]), "unknown option --tmux=yes");
        assert!(err(&["alice"]).starts_with("unexpected argument \"alice\""));
        assert_eq!(err(&["--peers"]), "--peers needs a value");
        for bad in ["0", "11", "abc", "NaN", "-1"] {
            assert!(
                err(&["--idle-timeout", bad]).starts_with("--idle-timeout"),
                "{bad}"
            );
        }
        for bad in ["-1", "1.5", "soon", "5001"] {
            assert!(err(&["--pace", bad]).starts_with("--pace"), "{bad}");
        }
        assert!(!err(&["--pace", "x"]).contains('\n'));
    }
}
