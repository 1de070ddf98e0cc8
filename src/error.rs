//! The program's one error type.
//!
//! Every failure that can end the program is an [`Error`]. Its `Display` text is written for the
//! person at the keyboard: it says what went wrong, where, and how to fix it. `main` maps each
//! variant to an exit code with [`Error::exit_code`]: 2 for mistakes in what the user gave us (the
//! command line, the peer table), 1 for faults met while running.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Everything that can stop p2p-chat from starting or running.
#[derive(Debug)]
pub enum Error {
    /// The command line is wrong; the text says which option and why.
    Usage(String),
    /// The peer table file could not be read at all.
    TableRead { path: String, source: io::Error },
    /// A line of the peer table is wrong (`line` is 1-based; 0 means the file as a whole).
    Table {
        path: String,
        line: usize,
        message: String,
    },
    /// Our own listening socket could not be opened.
    Bind { addr: SocketAddr, source: io::Error },
    /// Any other I/O failure while setting up (a thread that could not be started, say).
    Io(io::Error),
}

impl Error {
    /// A mistake in the peer table at `path`, on `line` (0: the file as a whole).
    pub fn table(path: &str, line: usize, message: impl Into<String>) -> Error {
        Error::Table {
            path: path.to_string(),
            line,
            message: message.into(),
        }
    }

    /// The error as `program` says it on stderr: after its name, and for a mistake on the command
    /// line, with where to read the options.
    pub fn report(&self, program: &str) -> String {
        match self {
            Error::Usage(_) => format!("{program}: {self}\nTry '{program} --help' for more."),
            _ => format!("{program}: {self}"),
        }
    }

    /// The process exit code for this error: 2 for bad input, 1 for a runtime fault.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::TableRead { .. } | Error::Table { .. } => 2,
            Error::Bind { .. } | Error::Io(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(message) => write!(f, "{message}"),
            Error::TableRead { path, source } => {
                write!(f, "cannot read peer table {path}: {source}")?;
                if source.kind() == io::ErrorKind::NotFound {
                    write!(f, " (create it, or point --peers at it)")?;
                }
                Ok(())
            }
            Error::Table {
                path,
                line: 0,
                message,
            } => write!(f, "{path}: {message}"),
            Error::Table {
                path,
                line,
                message,
            } => write!(f, "{path}:{line}: {message}"),
            Error::Bind { addr, source } if source.kind() == io::ErrorKind::AddrInUse => write!(
                f,
                "cannot listen on {addr}: the address is already in use \
                 (is this peer already running in another terminal?)"
            ),
            Error::Bind { addr, source } if source.kind() == io::ErrorKind::AddrNotAvailable => {
                write!(
                    f,
                    "cannot listen on {addr}: that address is not one of this machine's (is \
                     your line in the peer table right, and is NAME you?)"
                )
            }
            Error::Bind { addr, source }
                if source.kind() == io::ErrorKind::PermissionDenied && addr.port() < 1024 =>
            {
                write!(
                    f,
                    "cannot listen on {addr}: ports below 1024 are for the system (give your \
                     line in the peer table a port from 1024 up)"
                )
            }
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Io(source) => write!(f, "{source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::TableRead { source, .. } | Error::Bind { source, .. } | Error::Io(source) => {
                Some(source)
            }
            Error::Usage(_) | Error::Table { .. } => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(source: io::Error) -> Self {
        Error::Io(source)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Whether an I/O error is a socket timeout running out. A blocking read or write with a timeout
/// set reports it as `WouldBlock` on Unix and as `TimedOut` elsewhere, so both count.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_only_the_system_may_take_is_explained() {
        let addr = "127.0.0.1:80".parse().unwrap();
        let source = io::Error::from(io::ErrorKind::PermissionDenied);
        let text = Error::Bind { addr, source }.to_string();
        assert!(
            text.contains("ports below 1024 are for the system"),
            "{text}"
        );
    }
}
