//! The messages that cross threads, and nothing else.
//!
//! Every channel in the program carries one of these types. Threads talk only through them (a
//! thread module imports another only to start it), so dependencies point one way: a reader that
//! tells the dispatcher a friend has spoken does not need to know the dispatcher exists, only
//! [`Event`].
//!
//! ```text
//!   console ──ConsoleEvent──> dispatcher ──Batch, Control──> link
//!   link    ──Event::Link(LinkReport)──> dispatcher
//!   reader  ──Event::{Heard, StdoutClosed}──> dispatcher
//! ```

pub use crate::conversation::Reason;
pub use crate::frame::Batch;
use crate::peers::PeerId;
use crate::sendq::Closing;

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
    pub text: String,
    /// Who it is for, in table order.
    pub to: Vec<PeerId>,
    /// Typed as `*/message`.
    pub everyone: bool,
}

/// What the dispatcher tells a link besides the messages in its queue. These travel on a
/// channel of their own, so a close reaches a link blocked behind a full queue; the model never
/// half-closes or asks while anything it handed over is unwritten, so nothing is overtaken that
/// matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Shut down our writing side, as `Closing` says: we have nothing more to say.
    /// Confirmations still come.
    HalfClose(Closing),
    /// Close the connection now, gracefully, as `Closing` says, with what is still unwritten
    /// left unsent.
    Close(Closing),
    /// How many written bytes has the friend's kernel not acknowledged?
    AskUnacked,
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

/// What a link reports: the I/O it did, for the dispatcher to feed into the friend's
/// [`Conversation`](crate::conversation::Conversation), which decides what it means.
#[derive(Debug)]
pub enum LinkReport {
    /// The connection is up.
    Connected,
    /// No connection could be made.
    ConnectFailed(Reason),
    /// This many more bytes of what the link took from its queue were written.
    Wrote(usize),
    /// Confirmation bytes, as they came.
    Confirmations(Vec<u8>),
    /// The answer to [`Control::AskUnacked`]: bytes the friend's kernel has not acknowledged,
    /// and whether it answers with its window closed (`sendq::ask_unacked`).
    Unacked { bytes: usize, answering: bool },
    /// The connection has ended: the link took `received` bytes from its queue, and `unsent` of
    /// them certainly never left. `reason` is `None` when it ended as asked (our close, or the
    /// friend's end after our half-close).
    Ended {
        received: u64,
        unsent: u64,
        reason: Option<Reason>,
    },
}
