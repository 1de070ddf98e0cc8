//! Everything that can end the demo unsuccessfully, with the exit code for each.

use std::fmt;

#[derive(Debug)]
pub enum Failure {
    /// The command line is wrong: exit 2.
    Usage(String),
    /// The peer table cannot be used: exit 2.
    Table(String),
    /// The demo cannot run here (a port is taken, a program is missing): exit 1.
    Setup(String),
    /// The demo ran and some checks of its transcript failed: exit 1.
    Checks(Vec<String>),
    /// Ctrl-C: exit 130, as a shell reports a process ended by SIGINT.
    Interrupted,
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) | Failure::Table(_) => 2,
            Failure::Setup(_) | Failure::Checks(_) => 1,
            Failure::Interrupted => 130,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(message) => {
                write!(f, "{message} (see p2p-chat-demo --help)")
            }
            Failure::Table(message) | Failure::Setup(message) => write!(f, "{message}"),
            Failure::Checks(problems) => {
                write!(f, "{} check(s) failed:", problems.len())?;
                for problem in problems {
                    write!(f, "\n  - {problem}")?;
                }
                Ok(())
            }
            Failure::Interrupted => write!(
                f,
                "interrupted; every peer the demo started has been stopped"
            ),
        }
    }
}
