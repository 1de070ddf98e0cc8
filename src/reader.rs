//! A reader thread: the "client socket is readable" branch of a select() loop, one thread per
//! inbound connection.
//!
//! It owns its socket and a [`FrameDecoder`]. Each `read` may hold several frames or part of one;
//! the reader decodes every complete frame in its buffer, checks the sender against the peer
//! table, formats the lot into one buffer and shows it with a single write to stdout. Printing
//! needs no routing state, so the reader does it itself instead of handing each message to the
//! dispatcher: one thread wake-up fewer per message.
//!
//! Once it has shown what a read brought, it confirms it to the sender on the same socket: one
//! byte per frame, NUL for a frame shown and NAK (0x15) for one dropped (see [`crate::frame`]). It
//! confirms only to a sender who may expect it. The classic C program ends every frame with a NUL
//! byte, never reads the socket it sends on and keeps it in its select() read set, so one byte
//! back would make it spin: a connection that has sent a NUL byte is never written to. To tell
//! the classic program's `\n\0` apart from a p2p-chat's `\n` even when the NUL comes in a later
//! read, the first confirmation waits up to [`FIRST_CONFIRMATION_WAIT`] for more bytes. Netcat
//! and telnet users get NUL bytes, which a terminal does not show.
//!
//! The connection ends at end-of-file, on an error, when it has been silent for the silence limit
//! before saying who it is, or when the registry closes it; a failure here ends this connection
//! only. A friend's connection is never closed for silence (see `Connection::silence_limit`).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use log::{info, log_enabled, trace, warn};

use crate::error::is_timeout;
use crate::event::Event;
use crate::frame::{ACK_DROPPED, ACK_SHOWN, Decoded, FrameDecoder, MAX_FRAME};
use crate::inbound::{ConnId, Inbound};
use crate::peers::{PeerId, PeerTable};
use crate::screen::{Screen, escaped};

/// What every reader thread needs; cloned (cheaply) into each.
#[derive(Clone)]
pub struct ReaderContext {
    pub table: Arc<PeerTable>,
    pub inbound: Arc<Inbound>,
    pub screen: Screen,
    /// A connection silent for this long is closed.
    pub silence_limit: Duration,
    pub events: Sender<Event>,
}

/// How long the first confirmation on a connection waits for a NUL byte that would mark the
/// sender as the classic program. Its `\n\0` leave in one write, so they arrive together but for
/// a rare split between two TCP segments; a p2p-chat's first confirmation comes this much later.
pub const FIRST_CONFIRMATION_WAIT: Duration = Duration::from_millis(50);

/// How long writing confirmations may block before we stop confirming on that connection.
const CONFIRMATION_WRITE_LIMIT: Duration = Duration::from_secs(1);

/// Whether a connection gets confirmations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Confirming {
    /// No frame has been confirmed yet: waiting to see whether a NUL byte follows.
    Undecided,
    Yes,
    /// The sender is the classic program, or writing to it failed.
    Never,
}

/// How often, at most, a reader tells the dispatcher it heard from its friend (for `/peers`).
const HEARD_EVERY: Duration = Duration::from_secs(1);

/// Bytes asked for per `read`. Large enough that a burst is read in few system calls.
const READ_CHUNK: usize = 64 * 1024;

/// Problems with what one connection sends that are logged one by one; the rest are only counted,
/// so a client sending garbage cannot flood the log (or slow us down writing it).
const LOGGED_PROBLEMS: usize = 10;

/// Why a connection ended, for the log line.
enum End {
    Eof,
    Silent,
    Failed(io::Error),
    StdoutClosed,
}

/// The reader thread's body.
pub fn run(stream: &TcpStream, remote: SocketAddr, id: ConnId, context: &ReaderContext) {
    // A read timeout turns "silent for too long" into an error we can act on.
    if let Err(e) = stream.set_read_timeout(Some(context.silence_limit)) {
        warn!("connection from {remote}: cannot set a read timeout: {e}");
    }
    let _ = stream.set_write_timeout(Some(CONFIRMATION_WRITE_LIMIT));
    let mut connection = Connection {
        remote,
        id,
        context,
        friend: None,
        sender: None,
        warned_unverified: false,
        problems: 0,
        confirming: Confirming::Undecided,
        confirmations: Vec::new(),
        heard_at: None,
    };
    let end = connection.serve(stream);
    let who = connection.describe();
    if connection.problems > LOGGED_PROBLEMS {
        warn!(
            "{who} sent {} frames that were dropped ({} not logged)",
            connection.problems,
            connection.problems - LOGGED_PROBLEMS
        );
    }
    match end {
        End::Eof => info!("{who} closed their connection to you"),
        End::Silent => info!(
            "closing connection from {who}: nothing received for {:.1} s",
            context.silence_limit.as_secs_f64()
        ),
        End::Failed(e) => warn!("connection from {who} failed: {e}"),
        End::StdoutClosed => {
            let _ = context.events.send(Event::StdoutClosed);
        }
    }
}

struct Connection<'a> {
    remote: SocketAddr,
    id: ConnId,
    context: &'a ReaderContext,
    /// The friend this connection's first valid frame came from.
    friend: Option<PeerId>,
    /// The connection's sender, once known, and the display prefix made for them.
    sender: Option<(PeerId, Vec<u8>)>,
    warned_unverified: bool,
    /// Frames dropped so far: malformed, oversized or from strangers.
    problems: usize,
    confirming: Confirming,
    /// One byte per frame handled and not yet confirmed.
    confirmations: Vec<u8>,
    /// When the dispatcher was last told we heard from the friend.
    heard_at: Option<Instant>,
}

impl Connection<'_> {
    /// How long the connection may stay silent: a connection that has not said who it is, for
    /// the silence limit; a friend's, for ever. A friend's program closes its own connection
    /// when it is done (the classic one never does, and it spins if we close it), and the
    /// registry's cap bounds how many connections a friend can hold open.
    fn silence_limit(&self) -> Option<Duration> {
        match self.friend {
            None => Some(self.context.silence_limit),
            Some(_) => None,
        }
    }

    fn serve(&mut self, mut stream: &TcpStream) -> End {
        let mut decoder = FrameDecoder::new();
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut lines = Vec::new();
        loop {
            // The first confirmation waits briefly for a NUL byte that would forbid it.
            let waiting =
                self.confirming == Confirming::Undecided && !self.confirmations.is_empty();
            if waiting {
                let _ = stream.set_read_timeout(Some(FIRST_CONFIRMATION_WAIT));
            }
            let read = stream.read(&mut chunk);
            if waiting {
                let _ = stream.set_read_timeout(self.silence_limit());
            }
            let n = match read {
                Ok(0) => return End::Eof,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) && waiting => {
                    // No NUL followed: a p2p-chat (or a person at netcat) is at the other end.
                    self.confirming = Confirming::Yes;
                    self.confirm(stream);
                    continue;
                }
                Err(e) if is_timeout(&e) => return End::Silent,
                Err(e) => return End::Failed(e),
            };
            let bytes = &chunk[..n];
            if log_enabled!(target: "wire", log::Level::Trace) {
                trace!(target: "wire", "read {n} bytes from {}: \"{}\"", self.remote, bytes.escape_ascii());
            }
            if bytes.contains(&0) {
                self.confirming = Confirming::Never;
            } else if waiting {
                self.confirming = Confirming::Yes;
            }
            let known = self.friend.is_some();
            decoder.push(bytes);
            while let Some(item) = decoder.next_frame() {
                let shown = match item {
                    Decoded::Frame { sender, message } => {
                        self.accept_frame(sender, message, &mut lines)
                    }
                    Decoded::Malformed(bytes) => {
                        self.complain(format!(
                            "dropped a frame from {} with no sender name (expected name/message): \"{}\"",
                            self.describe(),
                            escaped(&bytes[..bytes.len().min(80)])
                        ));
                        false
                    }
                    Decoded::Oversized => {
                        self.complain(format!(
                            "dropping a frame from {} longer than {} KiB (the frame size limit)",
                            self.describe(),
                            MAX_FRAME / 1024
                        ));
                        false
                    }
                };
                if self.confirming != Confirming::Never {
                    self.confirmations
                        .push(if shown { ACK_SHOWN } else { ACK_DROPPED });
                }
            }
            if !known && self.friend.is_some() {
                let _ = stream.set_read_timeout(self.silence_limit());
            }
            if !lines.is_empty() {
                if self.context.screen.show(&lines).is_err() {
                    return End::StdoutClosed;
                }
                lines.clear();
            }
            // Confirm only what is on the screen now, and only to a friend.
            if self.confirming == Confirming::Yes {
                self.confirm(stream);
            }
            self.heard();
        }
    }

    /// Writes the confirmations gathered so far; a connection whose sender does not read them
    /// gets no more.
    fn confirm(&mut self, mut stream: &TcpStream) {
        if self.friend.is_none() {
            // A stranger gets nothing back from us.
            self.confirmations.clear();
            return;
        }
        if self.confirmations.is_empty() {
            return;
        }
        if let Err(e) = stream.write_all(&self.confirmations) {
            warn!(
                "{}: cannot write confirmations ({e}); sending no more",
                self.describe()
            );
            self.confirming = Confirming::Never;
        }
        self.confirmations.clear();
    }

    /// Checks one frame's sender and, if it is a friend, formats the message into `lines`.
    /// Returns whether it will be shown.
    fn accept_frame(&mut self, sender: &[u8], message: &[u8], lines: &mut Vec<u8>) -> bool {
        let table = &self.context.table;
        // A connection carries one sender: reuse the verdict and display prefix made for its
        // first frame instead of making them again for every frame of a burst.
        let known = matches!(&self.sender,
            Some((friend, _)) if table.get(*friend).name.as_bytes() == sender);
        if !known && let Some(friend) = self.friend {
            // The first valid frame fixed who this connection speaks for.
            self.complain(format!(
                "dropped a frame signed \"{}\" from {}: this connection speaks for {}",
                escaped(&sender[..sender.len().min(80)]),
                self.remote,
                table.get(friend).name
            ));
            return false;
        }
        if !known {
            let Some((friend, unverified)) = self.check_sender(sender) else {
                return false;
            };
            let from = unverified.then_some(self.remote.ip());
            self.sender = Some((friend, self.context.screen.prefix(sender, from)));
        }
        let (friend, prefix) = self
            .sender
            .as_ref()
            .expect("set just above when it was not already");
        if log_enabled!(target: "wire", log::Level::Trace) {
            trace!(target: "wire", "frame from {}: \"{}\"", table.get(*friend).name, message.escape_ascii());
        }
        self.context.screen.push_line(lines, prefix, message);
        true
    }

    /// Looks the sender up in the table. Returns the friend and whether the connection comes
    /// from an address the table does not give them, or `None` (with a warning) for a stranger.
    fn check_sender(&mut self, sender: &[u8]) -> Option<(PeerId, bool)> {
        let table = &self.context.table;
        let friend = std::str::from_utf8(sender)
            .ok()
            .and_then(|name| table.find(name));
        let Some(friend) = friend else {
            self.complain(format!(
                "dropped a message from {} claiming to be from \"{}\", who is not in the peer table",
                self.remote,
                escaped(&sender[..sender.len().min(80)])
            ));
            return None;
        };
        let unverified = !table.is_address_of(friend, self.remote.ip());
        if self.friend.is_none() {
            self.friend = Some(friend);
            self.context.inbound.identify(self.id, friend, !unverified);
            self.heard_at = None;
            info!("{} connected to you", self.describe());
        }
        let name = &table.get(friend).name;
        if unverified && !self.warned_unverified {
            self.warned_unverified = true;
            warn!(
                "messages signed {name:?} are coming from {}, which is not {name}'s address in the \
                 table; they are shown as unverified",
                self.remote,
            );
        }
        Some((friend, unverified))
    }

    /// Tells the dispatcher the friend is talking to us: at once for the first frame, then at
    /// most once every [`HEARD_EVERY`], so a burst costs no more than one event a second.
    fn heard(&mut self) {
        let Some(friend) = self.friend else { return };
        let now = Instant::now();
        if self.heard_at.is_none_or(|at| now >= at + HEARD_EVERY) {
            self.heard_at = Some(now);
            let _ = self.context.events.send(Event::Heard(friend));
        }
    }

    /// Logs a problem with what the connection sent, while fewer than [`LOGGED_PROBLEMS`] have
    /// been; counts it either way.
    fn complain(&mut self, problem: String) {
        self.problems += 1;
        if self.problems <= LOGGED_PROBLEMS {
            warn!("{problem}");
        }
        if self.problems == LOGGED_PROBLEMS {
            warn!(
                "{}: further dropped frames are counted, not logged",
                self.describe()
            );
        }
    }

    /// `bob (127.0.0.1:54321)` once the friend is known, else just the address.
    fn describe(&self) -> String {
        match self.friend {
            Some(friend) => format!("{} ({})", self.context.table.get(friend).name, self.remote),
            None => self.remote.to_string(),
        }
    }
}
