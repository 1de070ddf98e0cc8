//! Console commands: what one line typed by the user means. Pure: no I/O, no table look-ups.
//!
//! `friend/message` sends to one friend (the first `/` splits, so the text may hold more `/`),
//! `*/message` sends to every other friend, and a line that starts with `/` is a command:
//! `/peers`, `/events`, `/help`, `/quit`. A blank line means nothing and is ignored.

use std::fmt;

/// Who a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Friend(&'a str),
    /// `*`: every friend in the table except ourselves.
    Everyone,
}

/// One parsed console line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    Send {
        to: Target<'a>,
        text: &'a str,
    },
    Peers,
    /// Show or hide connection events (in a terminal).
    Events,
    Help,
    Quit,
}

/// Why a line is not a command. `Display` says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    NoSlash,
    NoName,
    EmptyMessage { to: String },
    UnknownCommand(String),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::NoSlash => write!(
                f,
                "no '/' in that line: write friend/message, */message for everyone, or /help"
            ),
            CommandError::NoName => {
                write!(f, "no friend's name before the '/': write friend/message")
            }
            CommandError::EmptyMessage { to } => {
                let to = if to == "*" { "everyone" } else { to };
                write!(
                    f,
                    "nothing to send to {to}: write the message after the '/'"
                )
            }
            CommandError::UnknownCommand(name) => {
                write!(
                    f,
                    "unknown command /{name}: the commands are /peers, /events, /help and /quit"
                )
            }
        }
    }
}

/// The text `/help` prints.
pub const HELP: &str = "\
commands:
  friend/message   send message to friend (connects if needed)
  */message        send message to every other friend
  /peers           list friends, connections and what became of your messages
  /events          show or hide connection events (in a terminal; -v shows them
                   from the start)
  /help            show this help
  /quit            leave (also Ctrl-D on an empty line, or Ctrl-C); messages
                   already entered are sent first. A half-typed line is not
                   sent at Ctrl-C: it is shown back, marked not sent
keys (in a terminal): Left/Right, Home/End or Ctrl-A/E, Backspace, Delete,
  Ctrl-U/K/W delete to the start/to the end/a word, Up/Down history, Tab
  completes a friend's name, Ctrl-L clears the screen, Ctrl-Z stops until fg";

/// Parses one line (without its line ending). `Ok(None)` means a blank line.
pub fn parse(line: &str) -> Result<Option<Command<'_>>, CommandError> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    // ASCII whitespace only: it is cheap, and names and commands are ASCII-delimited anyway.
    if line.trim_ascii().is_empty() {
        return Ok(None);
    }
    if let Some(name) = line.strip_prefix('/') {
        return match name.trim_ascii() {
            "peers" => Ok(Some(Command::Peers)),
            "events" => Ok(Some(Command::Events)),
            "help" | "?" => Ok(Some(Command::Help)),
            "quit" | "exit" => Ok(Some(Command::Quit)),
            other => Err(CommandError::UnknownCommand(other.to_string())),
        };
    }
    // The '/' is near the start (names are short), so a plain scan finds it at once.
    let slash = line
        .bytes()
        .position(|b| b == b'/')
        .ok_or(CommandError::NoSlash)?;
    let (name, text) = (&line[..slash], &line[slash + 1..]);
    let name = name.trim_ascii();
    if name.is_empty() {
        return Err(CommandError::NoName);
    }
    if text.trim_ascii().is_empty() {
        return Err(CommandError::EmptyMessage {
            to: name.to_string(),
        });
    }
    let to = if name == "*" {
        Target::Everyone
    } else {
        Target::Friend(name)
    };
    Ok(Some(Command::Send { to, text }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send<'a>(to: Target<'a>, text: &'a str) -> Option<Command<'a>> {
        Some(Command::Send { to, text })
    }

    #[test]
    fn friend_slash_message_splits_at_the_first_slash() {
        assert_eq!(parse("bob/hi"), Ok(send(Target::Friend("bob"), "hi")));
        assert_eq!(
            parse("bob/see http://x/y"),
            Ok(send(Target::Friend("bob"), "see http://x/y"))
        );
        assert_eq!(
            parse(" bob /  hi \r"),
            Ok(send(Target::Friend("bob"), "  hi "))
        );
    }

    #[test]
    fn star_means_everyone() {
        assert_eq!(
            parse("*/hello all"),
            Ok(send(Target::Everyone, "hello all"))
        );
    }

    #[test]
    fn slash_commands() {
        assert_eq!(parse("/peers"), Ok(Some(Command::Peers)));
        assert_eq!(parse("/help"), Ok(Some(Command::Help)));
        assert_eq!(parse("/quit\r"), Ok(Some(Command::Quit)));
        assert_eq!(
            parse("/dance"),
            Err(CommandError::UnknownCommand("dance".into()))
        );
    }

    #[test]
    fn blank_lines_are_nothing() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("  \t\r"), Ok(None));
    }

    #[test]
    fn mistakes_are_errors_that_say_how_to_fix_them() {
        assert_eq!(parse("hello"), Err(CommandError::NoSlash));
        assert_eq!(parse(" /x").unwrap_err(), CommandError::NoName);
        assert_eq!(
            parse("bob/   "),
            Err(CommandError::EmptyMessage { to: "bob".into() })
        );
        assert!(CommandError::NoSlash.to_string().contains("friend/message"));
        let nothing = parse("*/").unwrap_err().to_string();
        assert!(
            nothing.starts_with("nothing to send to everyone:"),
            "{nothing}"
        );
    }
}
