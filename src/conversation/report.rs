//! What a [`Conversation`](super::Conversation) tells its driver: the outputs it queues, the
//! fates it decides, and the reasons it gives. `Display` and [`Reason::short`] say them for a
//! person; the drivers choose where.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use super::Kind;

/// Why messages did not get through, or a connection ended. `Display` says it for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The host name did not resolve (or not within the connect timeout).
    Resolve { host: String, error: String },
    /// No connection could be made.
    Connect {
        addr: SocketAddr,
        kind: io::ErrorKind,
        error: String,
        timeout: Duration,
    },
    /// Nothing was confirmed for the give-up time: frozen, or their machine is gone.
    GaveUp(Duration),
    /// They took none of our bytes for the write timeout, and we are quitting.
    Stalled(Duration),
    /// The friend closed our connection while messages were unconfirmed.
    ClosedByFriend,
    /// The connection broke (reset, or any other error).
    Broken(String),
    /// The friend confirmed more messages than we wrote to them.
    Protocol,
    /// The thread could not be started.
    NoThread(String),
    /// We were quitting.
    Quitting,
}

impl Reason {
    /// A connect to `addr` failed with `error`, `--connect-timeout` being `timeout`.
    pub fn connect(addr: SocketAddr, error: &io::Error, timeout: Duration) -> Reason {
        let (kind, error) = (error.kind(), error.to_string());
        Reason::Connect {
            addr,
            kind,
            error,
            timeout,
        }
    }

    /// A few words for the echo of a message in a terminal; the log line has the whole story.
    pub fn short(&self) -> String {
        match self {
            Reason::Resolve { .. } => "their host does not resolve".to_string(),
            Reason::Connect {
                kind: io::ErrorKind::ConnectionRefused,
                ..
            } => "not running".to_string(),
            Reason::Connect {
                kind: io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock,
                ..
            } => "no answer".to_string(),
            Reason::Connect { error, .. } => error.clone(),
            Reason::GaveUp(_) => "no confirmation: frozen or gone".to_string(),
            Reason::Stalled(_) => "stalled".to_string(),
            Reason::ClosedByFriend => "they quit".to_string(),
            Reason::Broken(_) => "connection broke".to_string(),
            Reason::Protocol => "bad confirmations".to_string(),
            Reason::NoThread(_) => "no thread for the link".to_string(),
            Reason::Quitting => "quitting".to_string(),
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Resolve { host, error } => write!(f, "cannot resolve host {host:?}: {error}"),
            Reason::Connect {
                addr,
                kind: io::ErrorKind::ConnectionRefused,
                ..
            } => write!(
                f,
                "cannot connect to {addr}: connection refused (is their p2p-chat running?)"
            ),
            Reason::Connect {
                addr,
                kind: io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock,
                timeout,
                ..
            } => write!(
                f,
                "cannot connect to {addr}: no answer within {} (--connect-timeout)",
                Secs(*timeout)
            ),
            Reason::Connect { addr, error, .. } => write!(f, "cannot connect to {addr}: {error}"),
            Reason::GaveUp(limit) => write!(
                f,
                "nothing confirmed for {} (--give-up): frozen, or their machine is gone",
                Secs(*limit)
            ),
            Reason::Stalled(limit) => write!(
                f,
                "they took none of our bytes for {} (--write-timeout): stalled or frozen",
                Secs(*limit)
            ),
            Reason::ClosedByFriend => write!(f, "they closed the connection (quit or restarted?)"),
            Reason::Broken(error) => write!(f, "the connection broke: {error}"),
            Reason::Protocol => write!(f, "they confirmed more messages than we sent them"),
            Reason::NoThread(error) => write!(f, "cannot start a thread for the link: {error}"),
            Reason::Quitting => write!(f, "you are quitting"),
        }
    }
}

/// A duration as the log lines say it: `2.5 s`, or `40 ms` when that would round to nothing
/// (the options go down to a millisecond).
pub struct Secs(pub Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 < Duration::from_millis(100) {
            true => write!(f, "{} ms", self.0.as_millis()),
            false => write!(f, "{:.1} s", self.0.as_secs_f64()),
        }
    }
}

/// The final fate of a run of messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Their p2p-chat confirmed showing it.
    Delivered,
    /// Their p2p-chat read it and dropped it: its table does not know us by our name.
    Refused,
    /// Written to a friend whose program does not confirm.
    Sent,
    /// It left, and then the connection ended unconfirmed: it may or may not have been shown.
    MaybeLost(Reason),
    /// It never left.
    NotDelivered(Reason),
}

/// What the model asks of its driver, and what it reports. Drained with
/// [`Conversation::poll_output`](super::Conversation::poll_output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Open a connection to the friend, then call `connected` or `connect_failed`.
    Connect,
    /// Shut down our writing side: everything is written, and we have nothing more to say.
    /// `kept`: we gave up on the friend confirming what we sent, but their kernel holds it (or
    /// answers with its window closed); the connection is kept for them to read it, while their
    /// machine answers.
    HalfClose { kept: bool },
    /// Close the connection, and call `ended` when it is closed. `give_up`: what it still holds
    /// has been given up on (reported as possibly lost), and newer messages will take another
    /// connection, so our kernel must not send it later, out of order with them.
    Close { give_up: bool },
    /// Ask the kernel how many written bytes the friend's kernel has not acknowledged yet, and
    /// answer with `unacked`.
    AskUnacked,
    /// These messages have their fate, once and for all.
    Settled { ids: Range<u64>, fate: Fate },
    /// These messages, counted with fate `was` (sent, or given up on), were confirmed after
    /// all: their fate is now `fate` (delivered or refused).
    Revised {
        ids: Range<u64>,
        was: Fate,
        fate: Fate,
    },
    /// Messages refused at the door, never queued: the outbox was full while the friend could
    /// not be reached, or we are quitting. `first`: the first of a run.
    Rejected {
        count: usize,
        why: Rejection,
        first: bool,
    },
    /// A run of refusals is over (the friend is back, we quit, or the program ends): `count`
    /// messages in all were refused, for this reason.
    RefusedRun { count: usize, why: Rejection },
    /// These messages wait in the outbox, for this reason, to be tried again. `first`: the
    /// first time in this outage.
    Waiting {
        ids: Range<u64>,
        reason: Reason,
        first: bool,
    },
    /// A friend who confirms has confirmed nothing for `silent`: `count` messages unconfirmed.
    /// We keep trying until the give-up time.
    Unconfirmed { count: usize, silent: Duration },
    /// We learned what the friend's program is.
    Learned(Kind),
    /// The friend can be reached again, after an outage.
    Reachable,
    /// The friend has taken none of our bytes for the write timeout: they no longer hold up
    /// anyone's input, and messages beyond a full outbox are refused.
    Stalled,
    /// The connection has closed: as asked (`None`), or for this reason; `idle`: nothing was
    /// on its way on it. Any message it carried has been settled or held before this.
    Closed { reason: Option<Reason>, idle: bool },
}

/// Why new messages were refused at the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The outbox is full and the friend cannot be reached (or is stalled).
    OutboxFull,
    /// We are quitting.
    Quitting,
}

/// How messages to a friend ended, since start-up, for `/peers`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub delivered: usize,
    pub sent: usize,
    /// Refused, may not have arrived, or not delivered.
    pub failed: usize,
}

impl Tally {
    pub(super) fn count(&mut self, fate: &Fate, n: usize) {
        match fate {
            Fate::Delivered => self.delivered += n,
            Fate::Sent => self.sent += n,
            _ => self.failed += n,
        }
    }

    /// `n` messages counted with fate `was` now have fate `now`.
    pub(super) fn revise(&mut self, was: &Fate, now: &Fate, n: usize) {
        match was {
            Fate::Delivered => self.delivered -= n,
            Fate::Sent => self.sent -= n,
            _ => self.failed -= n,
        }
        self.count(now, n);
    }
}
