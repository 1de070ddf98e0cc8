//! One inbound connection in the poll loop: the socket, and the same [`Incoming`] a p2p-chat
//! reader thread feeds. What a reader does with a blocking read and a read timeout, this does
//! with a read when poll() says so and deadlines in the poll timeout: the first confirmation's
//! short wait for a classic NUL, and the silence limit of a connection that has not said who it
//! is.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::info;
use p2p_chat::conversation::earliest;
use p2p_chat::inbound::{ConnId, Inbound};
use p2p_chat::incoming::{Ending, FIRST_CONFIRMATION_WAIT, Incoming};
use p2p_chat::peers::{PeerId, PeerTable};
use p2p_chat::stages::{self, Stage};
use p2p_chat::terminal::Screen;

/// An inbound connection: a friend's, to read from.
pub struct InConn {
    /// Shared with the registry, which closes it to push it out.
    pub stream: Arc<TcpStream>,
    id: ConnId,
    incoming: Incoming,
    /// The first confirmation is held back until then, to see whether a NUL byte follows.
    first_wait: Option<Instant>,
    /// When it last sent anything: a connection that has not said who it is is closed after
    /// the silence limit.
    last_read: Instant,
    /// Done with: removed at the end of the turn.
    pub ended: bool,
}

/// What a read found, for the loop.
pub enum Heard {
    Nothing,
    /// The friend this connection speaks for sent something.
    Friend(PeerId),
    StdoutClosed,
}

impl InConn {
    /// Admits a new connection under the shared cap, or drops it (the registry says why).
    pub fn admit(
        stream: TcpStream,
        remote: SocketAddr,
        registry: &Inbound,
        now: Instant,
    ) -> Option<InConn> {
        if stream.set_nonblocking(true).is_err() {
            return None;
        }
        let stream = Arc::new(stream);
        let id = registry.admit(Arc::clone(&stream), remote)?;
        info!("accepted connection from {remote}");
        Some(InConn {
            stream,
            id,
            incoming: Incoming::new(remote),
            first_wait: None,
            last_read: now,
            ended: false,
        })
    }

    /// The next moment this connection needs the loop: the end of the first confirmation's
    /// wait, or of a stranger's silence.
    pub fn deadline(&self, silence_limit: Duration) -> Option<Instant> {
        let silent = self
            .incoming
            .friend()
            .is_none()
            .then(|| self.last_read + silence_limit);
        earliest(self.first_wait, silent)
    }

    /// Acts on what is due: a first confirmation with no NUL after it goes out; a connection
    /// that never said who it is and went silent is closed.
    pub fn expire(&mut self, table: &PeerTable, registry: &Inbound, limit: Duration, now: Instant) {
        if self.first_wait.is_some_and(|at| now >= at) {
            self.first_wait = None;
            self.incoming.first_wait_over();
            self.confirm(table);
        }
        if self.incoming.friend().is_none() && now >= self.last_read + limit {
            self.end(table, registry, Ending::Silent(limit));
        }
    }

    /// Reads what the connection has: frames to show and confirm, or its end.
    pub fn on_readable(
        &mut self,
        buf: &mut [u8],
        table: &PeerTable,
        screen: &Screen,
        registry: &Inbound,
        now: Instant,
    ) -> Heard {
        let n = match (&*self.stream).read(buf) {
            Ok(n) if n > 0 => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                return Heard::Nothing;
            }
            ended => {
                if ended.is_ok() {
                    self.settle(table);
                }
                self.end(table, registry, Ending::Theirs(ended.err()));
                return Heard::Nothing;
            }
        };
        self.last_read = now;
        stages::mark(Stage::Read);
        let mut lines = Vec::new();
        if let Some((friend, verified)) =
            self.incoming.receive(&buf[..n], table, screen, &mut lines)
        {
            registry.identify(self.id, friend, verified);
        }
        if !lines.is_empty() {
            if screen.show(&lines).is_err() {
                self.incoming.unshown();
                return Heard::StdoutClosed;
            }
            stages::mark(Stage::Printed);
        }
        // Confirm only what is on the screen now; the first time, only after the wait.
        if self.incoming.waits_for_first_confirmation() {
            self.first_wait.get_or_insert(now + FIRST_CONFIRMATION_WAIT);
        } else {
            self.confirm(table);
        }
        match self.incoming.friend() {
            Some(friend) => Heard::Friend(friend),
            None => Heard::Nothing,
        }
    }

    /// The sender has ended the connection, or we are quitting: no NUL byte will be read, so
    /// what waited for one is confirmed now, before the connection closes.
    pub fn settle(&mut self, table: &PeerTable) {
        self.incoming.first_wait_over();
        self.confirm(table);
    }

    /// Writes the confirmations due, without waiting: a sender whose socket does not take
    /// them at once does not read them, and gets no more.
    fn confirm(&mut self, table: &PeerTable) {
        let Some(confirmations) = self.incoming.take_confirmations() else {
            return;
        };
        match (&*self.stream).write(&confirmations) {
            Ok(n) if n == confirmations.len() => {}
            Ok(_) => self
                .incoming
                .stop_confirming(table, "they do not read them"),
            Err(e) => self.incoming.stop_confirming(table, &e.to_string()),
        }
    }

    fn end(&mut self, table: &PeerTable, registry: &Inbound, how: Ending) {
        self.ended = true;
        self.incoming.end(table, registry, self.id, how);
    }
}
