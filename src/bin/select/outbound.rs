//! Our connection to one friend in the poll loop: the non-blocking socket that carries out the
//! I/O of the friend's [`Conversation`], which every method is given. This is what p2p-chat's
//! link thread does with blocking calls, done here by hand: a connect that does not wait
//! (finished when the socket turns writable), a buffer for the bytes taken from the model and
//! not yet written, partial writes, and a read only when poll() says there is something
//! (confirmations, or the friend's end).

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use log::info;
use nix::poll::PollFlags;
use p2p_chat::conversation::{Conversation, Reason};
use p2p_chat::friends::Action;
use p2p_chat::peers::{PeerId, PeerTable};
use p2p_chat::sendq;
use p2p_chat::stages::{self, Stage};

use crate::sys;

/// Our connection to a friend, if one is open.
#[derive(Default)]
pub struct Link {
    conn: Option<Connection>,
}

struct Connection {
    stream: TcpStream,
    addr: SocketAddr,
    /// The host's next addresses, tried in turn if this one fails, as p2p-chat's link does.
    rest: Vec<SocketAddr>,
    /// Until the socket turns writable, the connect is under way; given up at this instant.
    connecting: Option<Instant>,
    /// `--connect-timeout`, for the reason given when it fails.
    timeout: Duration,
    /// Bytes the model handed over and the socket has not taken yet.
    unwritten: Vec<u8>,
    half_closed: bool,
}

impl Link {
    /// The descriptor and the events to poll it for: always readable (confirmations, their
    /// end); writable only while connecting, or while bytes wait to be written.
    pub fn poll_interest(&self, talk: &Conversation) -> Option<(BorrowedFd<'_>, PollFlags)> {
        let conn = self.conn.as_ref()?;
        let mut events = PollFlags::POLLIN;
        if conn.connecting.is_some() || !conn.unwritten.is_empty() || talk.wants_to_write() {
            events |= PollFlags::POLLOUT;
        }
        Some((conn.stream.as_fd(), events))
    }

    /// When a connect under way will be given up.
    pub fn connect_deadline(&self) -> Option<Instant> {
        self.conn.as_ref()?.connecting
    }

    /// Gives up a connect that took longer than `--connect-timeout`.
    pub fn expire_connect(&mut self, talk: &mut Conversation, now: Instant) {
        let Some(conn) = &self.conn else { return };
        if conn.connecting.is_some_and(|by| now >= by) {
            let timed_out = io::Error::from(ErrorKind::TimedOut);
            let reason = Reason::connect(conn.addr, &timed_out, conn.timeout);
            self.connect_failed(reason, talk, now);
        }
    }

    /// The connect under way failed: the host's next address, if it has one; else the model
    /// is told why.
    fn connect_failed(&mut self, reason: Reason, talk: &mut Conversation, now: Instant) {
        let Some(conn) = self.conn.take() else { return };
        match conn.rest.is_empty() {
            true => talk.connect_failed(reason, now),
            false => match start(conn.rest, conn.timeout, now) {
                Ok(next) => self.conn = Some(next),
                Err(reason) => talk.connect_failed(reason, now),
            },
        }
    }

    /// Carries out what the model asks.
    pub fn obey(
        &mut self,
        action: Action,
        talk: &mut Conversation,
        table: &PeerTable,
        peer: PeerId,
        timeout: Duration,
        now: Instant,
    ) {
        match action {
            Action::Connect => match connect(table, peer, timeout, now) {
                Ok(conn) => self.conn = Some(conn),
                Err(reason) => talk.connect_failed(reason, now),
            },
            Action::HalfClose(closing) => {
                if let Some(conn) = &mut self.conn {
                    conn.half_closed = true;
                    sendq::close_writing(&conn.stream, closing);
                }
            }
            // Gracefully: our kernel still sends what it holds, then a FIN (unless we give up).
            Action::Close(closing) => {
                if let Some(conn) = self.conn.take() {
                    sendq::close_writing(&conn.stream, closing);
                    talk.ended(conn.unwritten.len() as u64, None, now);
                }
            }
            Action::AskUnacked => {
                // An error is no answer: never claim the friend's kernel has everything.
                if let Some(Ok((bytes, answering))) =
                    self.conn.as_ref().map(|c| sendq::ask_unacked(&c.stream))
                {
                    talk.unacked(bytes, answering, now);
                }
            }
        }
    }

    /// Our connection is ready: connected (or not), has bytes for us or its end, can take bytes.
    pub fn on_ready(
        &mut self,
        events: PollFlags,
        buf: &mut [u8],
        talk: &mut Conversation,
        table: &PeerTable,
        peer: PeerId,
        now: Instant,
    ) {
        let Some(conn) = &mut self.conn else { return };
        let trouble = PollFlags::POLLERR | PollFlags::POLLHUP;
        if conn.connecting.is_some() {
            if events.intersects(PollFlags::POLLOUT | trouble) {
                match conn.stream.take_error() {
                    Ok(None) => {
                        conn.connecting = None;
                        info!("connected to {}", table.get(peer));
                        talk.connected(now);
                    }
                    Ok(Some(e)) | Err(e) => {
                        let reason = Reason::connect(conn.addr, &e, conn.timeout);
                        self.connect_failed(reason, talk, now);
                    }
                }
            }
            return;
        }
        // A hang-up or an error comes with nothing to read: reading is how to learn which.
        if events.intersects(PollFlags::POLLIN | trouble) {
            // One small read per turn: confirmations come no faster than we handle them.
            let small = buf.len().min(4096);
            match conn.stream.read(&mut buf[..small]) {
                Ok(0) => return self.ended(talk, None, now),
                Ok(n) => talk.confirmations(&buf[..n], now),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => return self.ended(talk, Some(e.to_string()), now),
            }
        }
        if events.contains(PollFlags::POLLOUT) {
            self.write(talk, now);
        }
    }

    /// Writes what the socket takes, taking the model's next bytes when the buffer is empty.
    fn write(&mut self, talk: &mut Conversation, now: Instant) {
        let Some(conn) = &mut self.conn else { return };
        // Confirmations that came before these bytes go to the model first (the next turn reads
        // them), so a friend cannot confirm a message before it was sent.
        if conn.half_closed || sendq::unread(&conn.stream).unwrap_or(0) > 0 {
            return;
        }
        if conn.unwritten.is_empty()
            && let Some(batch) = talk.take_chunk(now)
        {
            stages::mark(Stage::Modelled);
            conn.unwritten = batch.frames;
        }
        if conn.unwritten.is_empty() {
            return;
        }
        // A partial write leaves the rest for the next time the socket is writable.
        stages::mark(Stage::Writing);
        match conn.stream.write(&conn.unwritten) {
            Ok(n) => {
                stages::mark(Stage::Written);
                conn.unwritten.drain(..n);
                talk.wrote(n, now);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => self.ended(talk, Some(e.to_string()), now),
        }
    }

    /// The friend ended the connection (`None`: their end of file) or it broke. What we never
    /// wrote, and what our kernel never sent, certainly did not arrive.
    fn ended(&mut self, talk: &mut Conversation, error: Option<String>, now: Instant) {
        let Some(conn) = self.conn.take() else { return };
        let unsent = conn.unwritten.len() + sendq::unsent(&conn.stream).unwrap_or(0);
        let reason = match error {
            None if conn.half_closed => None,
            None => Some(Reason::ClosedByFriend),
            Some(error) => Some(Reason::Broken(error)),
        };
        talk.ended(unsent as u64, reason, now);
    }
}

/// Starts a connection to the friend without waiting for it, at the addresses their host
/// resolved to at start-up.
fn connect(
    table: &PeerTable,
    peer: PeerId,
    timeout: Duration,
    now: Instant,
) -> Result<Connection, Reason> {
    let addrs = table.resolved_addrs(peer);
    if addrs.is_empty() {
        let host = table.get(peer).host.clone();
        let error = "it did not resolve at start-up, when names are looked up".to_string();
        return Err(Reason::Resolve { host, error });
    }
    start(addrs, timeout, now)
}

/// Starts a connection to the first of `addrs` (at least one) that does not fail at once.
fn start(
    mut addrs: Vec<SocketAddr>,
    timeout: Duration,
    now: Instant,
) -> Result<Connection, Reason> {
    let addr = addrs.remove(0);
    let stream = match sys::connect_nonblocking(addr) {
        Ok(stream) => stream,
        Err(_) if !addrs.is_empty() => return start(addrs, timeout, now),
        Err(e) => return Err(Reason::connect(addr, &e, timeout)),
    };
    sendq::tune(&stream, timeout);
    Ok(Connection {
        stream,
        addr,
        rest: addrs,
        connecting: Some(now + timeout),
        timeout,
        unwritten: Vec::new(),
        half_closed: false,
    })
}
