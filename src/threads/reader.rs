//! A reader thread: the "client socket is readable" branch of a select() loop, one thread per
//! inbound connection.
//!
//! It owns its socket. Each `read` may hold several frames or part of one;
//! the reader decodes every complete frame in its buffer, checks the sender against the peer
//! table, formats the lot into one buffer and shows it with a single write to stdout. Printing
//! needs no routing state, so the reader does it itself instead of handing each message to the
//! dispatcher: one thread wake-up fewer per message.
//!
//! What the bytes mean (who the connection speaks for, what to show, what to confirm) is decided
//! by an [`Incoming`], the same one p2p-chat-select's poll loop uses; this thread does the
//! reading, the printing, the confirming write and the waiting. Once it has shown what a read
//! brought, it confirms it to the sender on the same socket.
//!
//! The connection ends at end-of-file, on an error, when it has been silent for the silence limit
//! before saying who it is, or when the registry closes it; a failure here ends this connection
//! only. A friend's connection is never closed for silence (see `Connection::silence_limit`).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use log::warn;

use crate::error::is_timeout;
use crate::event::Event;
use crate::inbound::{ConnId, Inbound};
use crate::incoming::{Ending, FIRST_CONFIRMATION_WAIT, Incoming};
use crate::peers::PeerTable;
use crate::stages::{self, Stage};
use crate::terminal::Screen;

/// What every reader thread needs; cloned (cheaply) into each.
#[derive(Clone)]
pub struct ReaderContext {
    pub table: Arc<PeerTable>,
    pub inbound: Arc<Inbound>,
    pub screen: Screen,
    /// A connection that has not said who it is and is silent for this long is closed.
    pub silence_limit: Duration,
    pub events: Sender<Event>,
}

/// How long writing confirmations may block before we stop confirming on that connection.
const CONFIRMATION_WRITE_LIMIT: Duration = Duration::from_secs(1);

/// How often, at most, a reader tells the dispatcher it heard from its friend (for `/peers`).
const HEARD_EVERY: Duration = Duration::from_secs(1);

/// Bytes asked for per `read`. Large enough that a burst is read in few system calls.
const READ_CHUNK: usize = 64 * 1024;

/// The reader thread's body.
pub fn run(stream: &TcpStream, remote: SocketAddr, id: ConnId, context: &ReaderContext) {
    // A read timeout turns "silent for too long" into an error we can act on.
    if let Err(e) = stream.set_read_timeout(Some(context.silence_limit)) {
        warn!("connection from {remote}: cannot set a read timeout: {e}");
    }
    let _ = stream.set_write_timeout(Some(CONFIRMATION_WRITE_LIMIT));
    let mut reader = Reader {
        id,
        context,
        incoming: Incoming::new(remote),
        heard_at: None,
    };
    match reader.serve(stream) {
        Some(how) => reader
            .incoming
            .end(&context.table, &context.inbound, id, how),
        None => {
            context.inbound.remove(id);
            let _ = context.events.send(Event::StdoutClosed);
        }
    }
}

struct Reader<'a> {
    id: ConnId,
    context: &'a ReaderContext,
    incoming: Incoming,
    /// When the dispatcher was last told we heard from the friend.
    heard_at: Option<Instant>,
}

impl Reader<'_> {
    /// How long the connection may stay silent: a connection that has not said who it is, for
    /// the silence limit; a friend's, for ever. A friend's program closes its own connection
    /// when it is done (the classic one never does, and it spins if we close it), and the
    /// registry's cap bounds how many connections a friend can hold open.
    fn silence_limit(&self) -> Option<Duration> {
        match self.incoming.friend() {
            None => Some(self.context.silence_limit),
            Some(_) => None,
        }
    }

    /// Reads, shows and confirms until the connection ends (`None`: stdout is gone).
    fn serve(&mut self, mut stream: &TcpStream) -> Option<Ending> {
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut lines = Vec::new();
        loop {
            // The first confirmation waits briefly for a NUL byte that would forbid it.
            let waiting = self.incoming.waits_for_first_confirmation();
            if waiting {
                let _ = stream.set_read_timeout(Some(FIRST_CONFIRMATION_WAIT));
            }
            let read = stream.read(&mut chunk);
            if waiting {
                let _ = stream.set_read_timeout(self.silence_limit());
            }
            let n = match read {
                Ok(0) => {
                    // No NUL byte can follow: what waited for one is confirmed before we close.
                    self.incoming.first_wait_over();
                    self.confirm(stream);
                    return Some(Ending::Theirs(None));
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_timeout(&e) && waiting => {
                    self.incoming.first_wait_over();
                    self.confirm(stream);
                    continue;
                }
                Err(e) if is_timeout(&e) => {
                    return Some(Ending::Silent(self.context.silence_limit));
                }
                Err(e) => return Some(Ending::Theirs(Some(e))),
            };
            stages::mark(Stage::Read);
            let context = self.context;
            let known =
                self.incoming
                    .receive(&chunk[..n], &context.table, &context.screen, &mut lines);
            if let Some((friend, verified)) = known {
                context.inbound.identify(self.id, friend, verified);
                self.heard_at = None;
                let _ = stream.set_read_timeout(self.silence_limit());
            }
            if !lines.is_empty() {
                if context.screen.show(&lines).is_err() {
                    return None;
                }
                stages::mark(Stage::Printed);
                lines.clear();
            }
            // Confirm only what is on the screen now.
            self.confirm(stream);
            self.heard();
        }
    }

    /// Writes the confirmations due; a connection whose sender does not read them gets no more.
    fn confirm(&mut self, mut stream: &TcpStream) {
        let Some(confirmations) = self.incoming.take_confirmations() else {
            return;
        };
        if let Err(e) = stream.write_all(&confirmations) {
            let table = &self.context.table;
            self.incoming.stop_confirming(table, &e.to_string());
        }
    }

    /// Tells the dispatcher the friend is talking to us: at once for the first frame, then at
    /// most once every [`HEARD_EVERY`], so a burst costs no more than one event a second.
    fn heard(&mut self) {
        let Some(friend) = self.incoming.friend() else {
            return;
        };
        let now = Instant::now();
        if self.heard_at.is_none_or(|at| now >= at + HEARD_EVERY) {
            self.heard_at = Some(now);
            let _ = self.context.events.send(Event::Heard(friend));
        }
    }
}
