//! The messages that cross threads, and nothing else.
//!
//! Every channel in the program carries one of these types. The thread modules import this one
//! and never each other, so dependencies point one way: a reader that tells the dispatcher a
//! friend has spoken does not need to know the dispatcher exists, only [`Event`].
//!
//! ```text
//!   console ──ConsoleEvent──> dispatcher ──ToLink──> link ──Event::Link(LinkReport)──> dispatcher
//!   reader  ──Event::{Heard, StdoutClosed}──> dispatcher
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use crossbeam_channel::Receiver;

pub use crate::frame::Batch;
use crate::peers::PeerId;

/// What the console asks of the dispatcher.
#[derive(Debug)]
pub enum ConsoleEvent {
    /// Messages to deliver, one batch per friend, in the order they were typed; and in a
    /// terminal, each message as typed, for the echo of it (empty otherwise).
    Send(Vec<(PeerId, Batch)>, Vec<Typed>),
    /// Print the friends and their connections.
    Peers,
    /// Deliver what was typed, then end the program.
    Quit,
}

/// One message as typed in a terminal, for its echo in the transcript (the echo module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typed {
    /// The local time it was typed, `HH:MM`.
    pub at: String,
    pub text: String,
    /// Who it is for, in table order.
    pub to: Vec<PeerId>,
    /// Typed as `*/message`.
    pub everyone: bool,
}

/// What the dispatcher puts in a link's queue. The queue is bounded: a full one is the
/// dispatcher's sign that the link is busy, as a full socket buffer is to a select() loop.
#[derive(Debug)]
pub enum ToLink {
    Send(Batch),
    /// The link has been idle: close the connection once everything before this is resolved.
    /// It travels through the same queue, so it can never overtake a message.
    Close,
}

/// Identifies one link thread, so a late report from a link the dispatcher has replaced is not
/// taken for news about the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkId(pub u64);

/// What reader and link threads tell the dispatcher.
#[derive(Debug)]
pub enum Event {
    /// News from the link `link` to `peer`.
    Link {
        peer: PeerId,
        link: LinkId,
        report: LinkReport,
    },
    /// A friend sent us something: at once when their connection says who they are (they are
    /// online, so messages held for them can go now), then at most once a second.
    Heard(PeerId),
    /// Writing to stdout failed (for example, the reader of a pipe went away).
    StdoutClosed,
}

/// What a link reports. Every message handed to a link comes back in exactly one report:
/// delivered, sent, refused, maybe lost, or handed back unsent.
#[derive(Debug)]
pub enum LinkReport {
    /// The connection is up.
    Connected,
    /// The friend's p2p-chat confirmed it showed this many more messages.
    Delivered(usize),
    /// The friend's p2p-chat confirmed it read this many more messages but dropped them (its
    /// table does not know us by our name).
    Refused(usize),
    /// The friend does not confirm (the classic program, netcat): this many more messages were
    /// written and the connection is still fine after `--ack-timeout`.
    Sent(usize),
    /// The link closed its connection after a [`ToLink::Close`], with nothing outstanding.
    Closed,
    /// The link has ended without delivering everything.
    Failed(Failure),
}

/// A link's last words when it could not deliver.
#[derive(Debug)]
pub struct Failure {
    pub reason: Reason,
    /// Messages that certainly were not shown, in order, to be held and sent again.
    pub unsent: Vec<Batch>,
    /// Messages written on a connection that then failed, whose fate nobody can know.
    pub maybe_lost: usize,
    /// The link's queue, handed back so the dispatcher can take what was still waiting in it.
    pub queue: Receiver<ToLink>,
}

/// Why a link failed. `Display` says it for a person.
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
    /// The friend took none of our next bytes for the write timeout.
    Stalled(Duration),
    /// A friend who confirms did not confirm within the ack timeout: frozen or vanished.
    Unconfirmed(Duration),
    /// The friend closed our connection while messages were unconfirmed (they quit).
    ClosedByFriend,
    /// The connection broke (reset, or any other error).
    Broken(String),
    /// The thread could not be started.
    NoThread(String),
}

impl Reason {
    /// Whether messages the friend has not confirmed were certainly not shown: the friend's
    /// process closed or reset the connection, and a p2p-chat confirms what it shows before it
    /// reads on. After a stall or a missing confirmation they may still be shown later.
    pub fn unconfirmed_were_dropped(&self) -> bool {
        matches!(self, Reason::ClosedByFriend | Reason::Broken(_))
    }
}

impl Reason {
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
            Reason::Stalled(_) => "stalled".to_string(),
            Reason::Unconfirmed(_) => "no confirmation: frozen or gone".to_string(),
            Reason::ClosedByFriend => "they quit".to_string(),
            Reason::Broken(_) => "connection broke".to_string(),
            Reason::NoThread(_) => "no thread for the link".to_string(),
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
                "cannot connect to {addr}: no answer within {:.1} s (--connect-timeout)",
                timeout.as_secs_f64()
            ),
            Reason::Connect { addr, error, .. } => write!(f, "cannot connect to {addr}: {error}"),
            Reason::Stalled(limit) => write!(
                f,
                "they took none of our bytes for {:.1} s (--write-timeout): stalled or frozen",
                limit.as_secs_f64()
            ),
            Reason::Unconfirmed(limit) => write!(
                f,
                "no confirmation within {:.1} s (--ack-timeout): frozen, or their machine is gone",
                limit.as_secs_f64()
            ),
            Reason::ClosedByFriend => write!(f, "they closed the connection (quit or restarted?)"),
            Reason::Broken(error) => write!(f, "the connection broke: {error}"),
            Reason::NoThread(error) => write!(f, "cannot start a thread for the link: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_closed_or_broken_connection_proves_unconfirmed_messages_unseen() {
        assert!(Reason::ClosedByFriend.unconfirmed_were_dropped());
        assert!(Reason::Broken("reset".into()).unconfirmed_were_dropped());
        assert!(!Reason::Stalled(Duration::from_secs(5)).unconfirmed_were_dropped());
        assert!(!Reason::Unconfirmed(Duration::from_secs(5)).unconfirmed_were_dropped());
    }
}
