//! An outbound link: one thread per friend we are talking to, with its own queue.
//!
//! This is the "stdin is readable: connect if needed, send" branch of a select() loop. What may
//! block, connecting and writing to a friend whose socket buffer is full, happens on this thread,
//! so a slow `connect` or a friend who stops reading only ever blocks this thread, never the
//! dispatcher, the console or the links to other friends.
//!
//! Two paths lead to the friend's socket:
//!
//! * **The fast path.** When the link is connected and has nothing queued, the dispatcher writes a
//!   batch itself with [`write_now`], a non-blocking write: a lone message then costs no thread
//!   hand-off at all between the dispatcher and the socket. The socket is kept in non-blocking
//!   mode whenever the link is idle, so that write can never block the dispatcher.
//! * **The queue.** Everything else goes through the link's queue: the first batch (which
//!   connects), batches that arrive while others wait, and whatever part of a batch the fast path
//!   could not write. The link takes every batch already waiting, joins them and writes them with
//!   one blocking `write_all`, bounded by the write timeout, then puts the socket back in
//!   non-blocking mode before it tells the dispatcher, through `queued_bytes`, that it is idle.
//!   Only the dispatcher adds work, so while `queued_bytes` is above zero it leaves the socket to
//!   the link, and the two never write at once.
//!
//! When the dispatcher drops the sending end (the link was idle, or we are quitting) the link
//! writes what is left, closes the connection and reports [`Event::LinkClosed`]. If it cannot
//! deliver, it reports [`Event::LinkDown`] with the number of messages lost and hands its queue
//! back, so the dispatcher can count what was still waiting.
//!
//! TCP accepts the first write to a connection the other side has already closed, so a friend
//! who restarted would silently swallow our next message. Before each write both paths therefore
//! peek at the socket for end-of-file; the link then opens a fresh connection, and it retries once
//! on a fresh connection when a write fails because the connection was reset.

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
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub frames: Vec<u8>,
    pub count: usize,
    /// The first bytes finish a frame whose start the fast path already wrote on the link's
    /// current connection. On a fresh connection they would be a meaningless fragment.
    pub resumes: bool,
}

impl Batch {
    /// Drops the first `written` bytes, which the fast path wrote, and keeps the rest for the
    /// link, counting only the messages that were not written whole.
    pub fn after_written(mut self, written: usize) -> Batch {
        let done = self.frames[..written]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.resumes = written > 0 && self.frames[written - 1] != b'\n';
        self.frames.drain(..written);
        self.count -= done;
        self
    }
}

/// Identifies one link thread, so that a late report from a link the dispatcher has already
/// replaced is not mistaken for news about the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkId(pub u64);

/// Counters the link and the dispatcher share.
#[derive(Debug, Default)]
pub struct Shared {
    /// Bytes handed to the link's queue and not yet written. The dispatcher adds, the link
    /// subtracts. At zero the link is idle and the dispatcher may use the fast path; at
    /// [`MAX_QUEUED_BYTES`] the dispatcher holds further batches, so a friend who stops reading
    /// cannot make us buffer without limit.
    pub queued_bytes: AtomicUsize,
    /// Messages written on the current connection, by either path: what a reset may have cost.
    pub sent_on_connection: AtomicUsize,
}

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
    pub shared: Arc<Shared>,
    pub events: Sender<Event>,
}

/// The link thread's body.
pub fn run(task: LinkTask) {
    let mut link = Link { task, stream: None };
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
        if let Err(reason) = link.deliver(&batch) {
            // `queued_bytes` stays above zero, so the dispatcher never takes this dead link for
            // an idle one and writes to its connection; it learns of the end from the report, or
            // when its next send finds the queue closed.
            let Link { task, stream } = link;
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
        link.written(batch.frames.len());
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

/// The fast path, called by the dispatcher for a link that is connected and idle: writes as much
/// of the batch as the socket takes without blocking and returns how many bytes that was. Returns
/// 0 without writing if the friend has closed or reset the connection: the link deals with that.
pub fn write_now(socket: &TcpStream, shared: &Shared, peer: &str, batch: &Batch) -> usize {
    if !matches!(socket_state(socket), SocketState::Open) {
        return 0;
    }
    let bytes = &batch.frames[..];
    let mut written = 0;
    while written < bytes.len() {
        match (&*socket).write(&bytes[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The socket buffer is full (WouldBlock) or the connection broke: the rest goes
            // through the link, which can wait and reconnect.
            Err(_) => break,
        }
    }
    trace_write(peer, &bytes[..written]);
    let whole = if written == bytes.len() {
        batch.count
    } else {
        bytes[..written].iter().filter(|&&b| b == b'\n').count()
    };
    shared
        .sent_on_connection
        .fetch_add(whole, Ordering::Relaxed);
    written
}

struct Link {
    task: LinkTask,
    /// Shared with the dispatcher (for the fast path) through the `Arc`: one socket, one file
    /// descriptor, two owners.
    stream: Option<Arc<TcpStream>>,
}

impl Link {
    /// Writes the batch to the friend, connecting first if needed. A connection the friend closed
    /// or reset is replaced by a fresh one, once.
    fn deliver(&mut self, batch: &Batch) -> Result<(), String> {
        let mut bytes = &batch.frames[..];
        let mut resumes = batch.resumes;
        let mut retried = false;
        loop {
            match self.stream.as_deref().map(socket_state) {
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
            if self.stream.is_none() {
                self.stream = Some(self.connect()?);
                if resumes {
                    // The start of the first frame went out on the old connection.
                    bytes = skip_fragment(bytes);
                    resumes = false;
                    warn!(
                        "the connection to {} broke in the middle of a message; \
                         1 message may not have arrived whole",
                        self.task.peer
                    );
                }
            }
            let stream = self.stream.as_ref().expect("connected just above");
            match write_blocking(stream, bytes) {
                Ok(()) => {
                    trace_write(&self.task.peer.name, bytes);
                    let sent = &self.task.shared.sent_on_connection;
                    sent.fetch_add(batch.count, Ordering::Relaxed);
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
        let before = self
            .task
            .shared
            .queued_bytes
            .fetch_sub(len, Ordering::Release);
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
        let sent = self.task.shared.sent_on_connection.load(Ordering::Relaxed);
        if sent == 0 {
            info!("{} {what}", self.task.peer);
        } else {
            warn!(
                "{} {what}: up to {sent} message(s) sent on it before may not have arrived",
                self.task.peer
            );
        }
    }

    /// Resolves the friend's host and connects to the first address that answers.
    fn connect(&self) -> Result<Arc<TcpStream>, String> {
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
                    // At rest the socket is non-blocking, for the dispatcher's fast path.
                    stream
                        .set_nonblocking(true)
                        .map_err(|e| format!("cannot set up the connection to {addr}: {e}"))?;
                    self.task
                        .shared
                        .sent_on_connection
                        .store(0, Ordering::Relaxed);
                    info!("connected to {peer}");
                    let stream = Arc::new(stream);
                    let _ = self.task.events.send(Event::LinkUp {
                        peer: self.task.peer_id,
                        link: self.task.id,
                        socket: Arc::clone(&stream),
                    });
                    return Ok(stream);
                }
                Err(e) => last_error = connect_error(addr, &e, self.task.connect_timeout),
            }
        }
        Err(last_error)
    }
}

/// Writes all of `bytes`, blocking up to the write timeout, on a socket that is non-blocking at
/// rest, and leaves it non-blocking again.
fn write_blocking(stream: &TcpStream, bytes: &[u8]) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    let written = (&*stream).write_all(bytes);
    let restored = stream.set_nonblocking(true);
    written.and(restored)
}

/// `bytes` without the end of a frame that began elsewhere: from just after the first `\n`.
fn skip_fragment(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == b'\n') {
        Some(end) => &bytes[end + 1..],
        None => &[],
    }
}

/// Logs the bytes written at trace level, target `wire`.
fn trace_write(peer: &str, bytes: &[u8]) {
    if !bytes.is_empty() && log_enabled!(target: "wire", log::Level::Trace) {
        trace!(target: "wire", "write {} bytes to {peer}: \"{}\"", bytes.len(), bytes.escape_ascii());
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

/// Looks at a socket that is non-blocking at rest: `peek` returns at once with "would block" on a
/// healthy connection, 0 after the friend closed it, or the error that broke it.
fn socket_state(stream: &TcpStream) -> SocketState {
    match stream.peek(&mut [0u8; 1]) {
        Ok(0) => SocketState::Closed,
        // The friend sent us something on our outbound connection; the protocol does not use
        // it, and it says nothing about the connection's health.
        Ok(_) => SocketState::Open,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => SocketState::Open,
        Err(_) => SocketState::Reset,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(frames: &[u8], count: usize) -> Batch {
        Batch {
            frames: frames.to_vec(),
            count,
            resumes: false,
        }
    }

    #[test]
    fn after_written_keeps_what_the_fast_path_did_not_write() {
        let b = batch(b"a/one\na/two\na/three\n", 3);
        assert_eq!(b.after_written(0), batch(b"a/one\na/two\na/three\n", 3));

        let b = batch(b"a/one\na/two\na/three\n", 3);
        assert_eq!(b.after_written(6), batch(b"a/two\na/three\n", 2));

        let b = batch(b"a/one\na/two\na/three\n", 3);
        let rest = b.after_written(8);
        assert_eq!(rest.frames, b"two\na/three\n");
        assert_eq!(
            rest.count, 2,
            "the cut message still counts as not delivered"
        );
        assert!(rest.resumes);
    }

    #[test]
    fn skip_fragment_drops_the_end_of_a_cut_frame() {
        assert_eq!(skip_fragment(b"wo\na/three\n"), b"a/three\n");
        assert_eq!(skip_fragment(b"wo\n"), b"");
        assert_eq!(skip_fragment(b"no end"), b"");
    }

    #[test]
    fn write_now_writes_to_an_open_socket_and_not_to_a_closed_one() {
        use std::io::Read;
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let socket = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        socket.set_nonblocking(true).unwrap();
        let (mut friend, _) = listener.accept().unwrap();
        let shared = Shared::default();

        assert_eq!(
            write_now(&socket, &shared, "bob", &batch(b"a/hi\na/yo\n", 2)),
            10
        );
        assert_eq!(shared.sent_on_connection.load(Ordering::Relaxed), 2);
        let mut got = [0u8; 10];
        friend.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"a/hi\na/yo\n");

        drop(friend); // the friend quits: end-of-file on our side
        let mut closed = false;
        for _ in 0..1000 {
            if write_now(&socket, &shared, "bob", &batch(b"a/lost?\n", 1)) == 0 {
                closed = true;
                break;
            }
            std::thread::yield_now();
        }
        assert!(
            closed,
            "write_now must leave a closed connection to the link"
        );
    }
}
