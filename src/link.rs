//! An outbound link: one thread per friend we are talking to, with its own queue.
//!
//! This is the "stdin is readable: connect if needed, send" branch of a select() loop, moved onto
//! a thread of its own so that a slow `connect` or a friend who stops reading only ever blocks
//! this thread, never the dispatcher, the console or the links to other friends.
//!
//! The dispatcher owns the sending end of the queue. The link connects on its first batch, then
//! takes batches of encoded frames off the queue, joins every batch already waiting into one
//! buffer and writes it with one `write_all`. When the dispatcher drops the sending end (the link
//! was idle, or we are quitting) the link writes what is left, closes the connection and reports
//! [`Event::LinkClosed`]. If it cannot deliver, it reports [`Event::LinkDown`] with the number of
//! messages lost and hands its queue back, so the dispatcher can count what was still waiting.
//!
//! TCP accepts the first write to a connection the other side has already closed, so a friend
//! who restarted would silently swallow our next message. Before each write the link therefore
//! peeks at the socket for end-of-file, and it retries once on a fresh connection when a write
//! fails because the connection was reset.

use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use log::{info, log_enabled, trace, warn};

use crate::dispatcher::{Event, MAX_QUEUED_BYTES};
use crate::peers::{Peer, PeerId};

/// Encoded frames for one friend, and how many messages they hold.
#[derive(Debug, Default)]
pub struct Batch {
    pub frames: Vec<u8>,
    pub count: usize,
}

/// Identifies one link thread, so that a late report from a link the dispatcher has already
/// replaced is not mistaken for news about the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkId(pub u64);

/// Joining queued batches stops at this size, so one write never holds an unbounded buffer.
const MAX_WRITE: usize = 1024 * 1024;

/// Everything a link thread needs.
pub struct LinkTask {
    pub id: LinkId,
    pub peer_id: PeerId,
    pub peer: Peer,
    pub connect_timeout: Duration,
    pub write_timeout: Duration,
    pub queue: Receiver<Batch>,
    /// Bytes handed to this link and not yet written. The dispatcher adds, the link subtracts;
    /// at [`MAX_QUEUED_BYTES`] the dispatcher holds further batches, so a friend who stops
    /// reading cannot make us buffer without limit.
    pub queued_bytes: Arc<AtomicUsize>,
    pub events: Sender<Event>,
}

/// The link thread's body.
pub fn run(task: LinkTask) {
    let mut link = Link {
        task,
        stream: None,
        sent_on_stream: 0,
    };
    while let Ok(mut batch) = link.task.queue.recv() {
        // Join every batch that is already waiting onto the first: one write for all of them.
        while batch.frames.len() < MAX_WRITE {
            match link.task.queue.try_recv() {
                Ok(more) => {
                    batch.frames.extend_from_slice(&more.frames);
                    batch.count += more.count;
                }
                Err(_) => break,
            }
        }
        let delivered = link.deliver(&batch.frames, batch.count);
        link.written(batch.frames.len());
        if let Err(reason) = delivered {
            let Link { task, stream, .. } = link;
            drop(stream);
            let _ = task.events.send(Event::LinkDown {
                peer: task.peer_id,
                link: task.id,
                undelivered: batch.count,
                reason,
                queue: task.queue,
            });
            return;
        }
    }
    // The dispatcher dropped its end: everything it sent has been written.
    if let Some(stream) = &link.stream {
        // Half-close, so the friend reads everything we wrote and then sees end-of-file.
        let _ = stream.shutdown(Shutdown::Write);
    }
    let _ = link.task.events.send(Event::LinkClosed {
        peer: link.task.peer_id,
        link: link.task.id,
        local: link.stream.as_ref().and_then(|s| s.local_addr().ok()),
    });
}

struct Link {
    task: LinkTask,
    stream: Option<TcpStream>,
    /// Messages written on `stream` so far: what a reset may have cost.
    sent_on_stream: usize,
}

impl Link {
    /// Writes `bytes`, holding `count` messages, to the friend, connecting first if needed. A
    /// connection the friend closed or reset is replaced by a fresh one, once.
    fn deliver(&mut self, bytes: &[u8], count: usize) -> Result<(), String> {
        let mut retried = false;
        loop {
            match self.stream.as_ref().map(socket_state) {
                Some(SocketState::Closed) => {
                    info!(
                        "{} closed our connection (restarted?); opening a fresh one",
                        self.task.peer
                    );
                    self.stream = None;
                }
                Some(SocketState::Reset) => {
                    self.report_reset("reset our connection");
                    self.stream = None;
                }
                Some(SocketState::Open) | None => {}
            }
            let stream = match &mut self.stream {
                Some(stream) => stream,
                None => {
                    self.sent_on_stream = 0;
                    self.stream.insert(self.connect()?)
                }
            };
            if log_enabled!(target: "wire", log::Level::Trace) {
                trace!(target: "wire", "write {} bytes to {}: \"{}\"", bytes.len(), self.task.peer.name, bytes.escape_ascii());
            }
            match stream.write_all(bytes) {
                Ok(()) => {
                    self.sent_on_stream += count;
                    return Ok(());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(format!(
                        "{} has not read what we sent for {:.1} s (write timed out); dropped the connection",
                        self.task.peer.name,
                        self.task.write_timeout.as_secs_f64()
                    ));
                }
                Err(e) if !retried && is_reset(&e) => {
                    self.report_reset(&format!(
                        "broke our connection ({e}); sending again on a fresh one,"
                    ));
                    self.stream = None;
                    retried = true;
                }
                Err(e) => return Err(format!("writing failed: {e}")),
            }
        }
    }

    /// Takes `len` written bytes off the queue's count, and tells the dispatcher when the queue
    /// drops below half of its limit, so that it can hand over batches it was holding.
    fn written(&self, len: usize) {
        let before = self.task.queued_bytes.fetch_sub(len, Ordering::Relaxed);
        let half = MAX_QUEUED_BYTES / 2;
        if before > half && before - len <= half {
            let _ = self.task.events.send(Event::LinkDrained {
                peer: self.task.peer_id,
                link: self.task.id,
            });
        }
    }

    /// A reset means the friend's side threw away bytes it had not read, so messages written
    /// earlier on this connection may be lost. We cannot know which: say how many could be.
    fn report_reset(&self, what: &str) {
        if self.sent_on_stream == 0 {
            info!("{} {what}", self.task.peer);
        } else {
            warn!(
                "{} {what}: up to {} message(s) sent on it before may not have arrived",
                self.task.peer, self.sent_on_stream
            );
        }
    }

    /// Resolves the friend's host and connects to the first address that answers.
    fn connect(&self) -> Result<TcpStream, String> {
        let peer = &self.task.peer;
        let addrs = peer
            .socket_addrs()
            .map_err(|e| format!("cannot resolve host {:?}: {e}", peer.host))?;
        let mut last_error = String::new();
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.task.connect_timeout) {
                Ok(stream) => {
                    // Frames are written whole, so Nagle's algorithm would only add delay.
                    let _ = stream.set_nodelay(true);
                    let _ = stream.set_write_timeout(Some(self.task.write_timeout));
                    info!("connected to {peer}");
                    let _ = self.task.events.send(Event::LinkUp {
                        peer: self.task.peer_id,
                        link: self.task.id,
                    });
                    return Ok(stream);
                }
                Err(e) => last_error = connect_error(addr, &e, self.task.connect_timeout),
            }
        }
        Err(last_error)
    }
}

/// What a non-blocking look at an idle outbound socket finds.
enum SocketState {
    /// Nothing to read: the connection is as we left it.
    Open,
    /// End-of-file: the friend closed the connection (they quit or restarted).
    Closed,
    /// An error such as a reset: the friend's side dropped the connection.
    Reset,
}

/// Looks at the socket without blocking: a non-blocking `peek` returns at once with
/// "would block" on a healthy connection, 0 after the friend closed it, or the error that broke it.
fn socket_state(stream: &TcpStream) -> SocketState {
    if stream.set_nonblocking(true).is_err() {
        return SocketState::Reset;
    }
    let state = match stream.peek(&mut [0u8; 1]) {
        Ok(0) => SocketState::Closed,
        // The friend sent us something on our outbound connection; the protocol does not use
        // it, and it says nothing about the connection's health.
        Ok(_) => SocketState::Open,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => SocketState::Open,
        Err(_) => SocketState::Reset,
    };
    if stream.set_nonblocking(false).is_err() {
        return SocketState::Reset;
    }
    state
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
    )
}

/// A connect failure as a person would want to read it.
fn connect_error(addr: SocketAddr, e: &io::Error, timeout: Duration) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            format!("cannot connect to {addr}: connection refused (is their p2p-chat running?)")
        }
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => format!(
            "cannot connect to {addr}: no answer within {:.1} s (--connect-timeout)",
            timeout.as_secs_f64()
        ),
        _ => format!("cannot connect to {addr}: {e}"),
    }
}
