//! An outbound link: one thread per connection we open to a friend, owning that connection.
//!
//! This is the "connect if needed, send" branch of a select() loop, and its write set. What may
//! block happens here, so a slow `connect` or a friend who stops reading only ever blocks this
//! thread: resolving the friend's host and connecting (within `--connect-timeout`), and writing.
//!
//! The link decides nothing. It carries out what the dispatcher asks (write these bytes,
//! half-close, close, ask the kernel) and reports what happened ([`LinkReport`]); the friend's
//! [`Conversation`](crate::conversation::Conversation), in the dispatcher, decides what it means.
//!
//! The link thread owns the socket's writing half. A second thread, the link's ack reader, owns
//! the reading half: it blocks in `read` and hands confirmation bytes to the link on a channel
//! that holds one read's worth. So the friend's confirmations are read only as fast as the link
//! passes them on, and a friend who sends a flood of them fills their own socket, not our memory.
//! The link waits with one `select!` on its queue of bytes to write, the dispatcher's controls
//! and those confirmations.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded, never, select};
use log::{info, log_enabled, trace};

use crate::error::is_timeout;
use crate::event::{Batch, Control, Event, LinkId, LinkReport, Reason};
use crate::frame::{ACK_DROPPED, ACK_SHOWN, Written};
use crate::peers::{Peer, PeerId};
use crate::sendq::{self, Closing};
use crate::stages::{self, Stage};

/// The longest a write waits for the ack reader to pass on what has arrived: it reads at once,
/// so this is only a bound in case it cannot.
const CATCH_UP: Duration = Duration::from_millis(100);

/// Everything a link thread needs.
pub struct LinkTask {
    pub id: LinkId,
    pub peer_id: PeerId,
    pub peer: Peer,
    pub connect_timeout: Duration,
    /// How long one write call may block before the link looks at its controls again.
    pub write_timeout: Duration,
    pub queue: Receiver<Batch>,
    pub control: Receiver<Control>,
    pub events: Sender<Event>,
}

/// What the ack reader tells its link.
enum Ack {
    /// Confirmation bytes, in the order they arrived, out of `read` bytes read.
    Bytes { acks: Vec<u8>, read: u64 },
    /// The friend closed the connection (`None`) or it broke.
    Ended(Option<io::Error>),
}

/// How the link's work ended.
enum End {
    /// The dispatcher asked for the close (or is gone).
    Asked(Closing),
    /// The friend ended the connection: their end of file (`None`) or an error.
    Theirs(Option<String>),
}

/// The link thread's body.
pub fn run(task: LinkTask) {
    let report = |report| {
        let _ = task.events.send(Event::Link {
            peer: task.peer_id,
            link: task.id,
            report,
        });
    };
    let stream = match connect(&task.peer, task.connect_timeout) {
        Ok(stream) => stream,
        Err(reason) => return report(LinkReport::ConnectFailed(reason)),
    };
    info!("connected to {}", task.peer);
    report(LinkReport::Connected);
    let (acks_tx, acks) = bounded(1);
    let taken = Arc::new(AtomicU64::new(0));
    let ack_reader = stream.try_clone().and_then(|half| {
        let taken = taken.clone();
        thread::Builder::new()
            .name(format!("acks:{}", task.peer.name))
            .spawn(move || read_acks(half, &acks_tx, &taken))
    });
    let ack_reader = match ack_reader {
        Ok(handle) => handle,
        Err(e) => {
            let reason = Some(Reason::NoThread(e.to_string()));
            let (received, unsent) = (0, 0);
            return report(LinkReport::Ended {
                received,
                unsent,
                reason,
            });
        }
    };
    let _ = stream.set_write_timeout(Some(task.write_timeout));
    let mut link = Link {
        stream: &stream,
        name: &task.peer.name,
        report: &report,
        control: &task.control,
        acks: &acks,
        received: 0,
        written: 0,
        frames_written: 0,
        confirmations: 0,
        taken: &taken,
        passed: 0,
        half_closed: false,
        reading: true,
    };
    let end = link.serve(&task.queue);
    let Link {
        received,
        written,
        half_closed,
        ..
    } = link;
    // Bytes we took and never wrote did not leave; when the friend ended the connection, nor did
    // what our kernel had not yet sent. After our own close the kernel still sends its queue
    // (a FIN, never a reset), so that may yet arrive; when we give up, only for a second more.
    let mut unsent = received - written;
    let (reason, closing) = match end {
        End::Asked(closing) => (None, closing),
        End::Theirs(error) => {
            unsent += sendq::unsent(&stream).unwrap_or(0) as u64;
            let reason = match error {
                None if half_closed => None,
                None => Some(Reason::ClosedByFriend),
                Some(error) => Some(Reason::Broken(error)),
            };
            (reason, Closing::Done)
        }
    };
    sendq::close_writing(&stream, closing);
    // Wake the ack reader (its `read` returns), and make its next hand-over fail, so it ends.
    let _ = stream.shutdown(Shutdown::Read);
    drop(acks);
    let _ = ack_reader.join();
    report(LinkReport::Ended {
        received,
        unsent,
        reason,
    });
}

/// The ack reader thread's body: the "outbound socket is readable" branch of a select() loop.
/// Only confirmation bytes are passed on: the protocol sends nothing else this way.
/// `taken` counts the bytes read, so the link can tell what has arrived and is not yet passed
/// on. Bytes are peeked at and counted before they are read: until then the link sees them in
/// the socket (FIONREAD), so no confirmation is ever in neither place.
fn read_acks(stream: TcpStream, acks: &Sender<Ack>, taken: &AtomicU64) {
    let mut buf = [0u8; 4096];
    loop {
        let ended = match stream.peek(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                taken.fetch_add(n as u64, Ordering::Release);
                // At least `n` bytes wait: this read takes exactly the ones peeked at.
                if let Err(e) = (&stream).read_exact(&mut buf[..n]) {
                    let _ = acks.send(Ack::Ended(Some(e)));
                    return;
                }
                let bytes: Vec<u8> = buf[..n]
                    .iter()
                    .copied()
                    .filter(|&b| b == ACK_SHOWN || b == ACK_DROPPED)
                    .collect();
                let ack = Ack::Bytes {
                    acks: bytes,
                    read: n as u64,
                };
                if acks.send(ack).is_err() {
                    return;
                }
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Some(e),
        };
        let _ = acks.send(Ack::Ended(ended));
        return;
    }
}

struct Link<'a, R: Fn(LinkReport)> {
    stream: &'a TcpStream,
    name: &'a str,
    report: &'a R,
    control: &'a Receiver<Control>,
    acks: &'a Receiver<Ack>,
    /// Bytes taken from the queue, and how many of them were written.
    received: u64,
    written: u64,
    /// Frames written whole, and confirmations passed on: a friend who confirms more than we
    /// wrote is not read any further (the conversation closes the connection).
    frames_written: usize,
    confirmations: usize,
    /// Bytes the ack reader has read, and how many of them it has passed on to this thread.
    taken: &'a AtomicU64,
    passed: u64,
    half_closed: bool,
    reading: bool,
}

impl<R: Fn(LinkReport)> Link<'_, R> {
    /// Writes what the queue brings, passes on confirmations and answers controls, until the
    /// dispatcher closes the connection or the friend ends it.
    fn serve(&mut self, queue: &Receiver<Batch>) -> End {
        loop {
            // After the half-close nothing more is written; after a protocol error nothing more
            // is read.
            let queue = if self.half_closed {
                never()
            } else {
                queue.clone()
            };
            let acks = if self.reading {
                self.acks.clone()
            } else {
                never()
            };
            select! {
                recv(queue) -> batch => match batch {
                    Ok(batch) => {
                        if let Some(end) = self.write(&batch) {
                            return end;
                        }
                    }
                    Err(_) => return End::Asked(Closing::Done), // the dispatcher is gone
                },
                recv(self.control) -> control => {
                    if let Some(end) = self.obey(control.unwrap_or(Control::Close(Closing::Done))) {
                        return end;
                    }
                }
                recv(acks) -> ack => {
                    if let Some(end) = self.pass_on(ack) {
                        return end;
                    }
                }
            }
        }
    }

    /// Carries out a control; returns how the link ends, if it does.
    fn obey(&mut self, control: Control) -> Option<End> {
        match control {
            Control::HalfClose(closing) => {
                self.half_closed = true;
                sendq::close_writing(self.stream, closing);
                None
            }
            Control::Close(closing) => Some(End::Asked(closing)),
            Control::AskUnacked => {
                // An error is no answer: never claim the friend's kernel has everything.
                if let Ok((bytes, answering)) = sendq::ask_unacked(self.stream) {
                    (self.report)(LinkReport::Unacked { bytes, answering });
                }
                None
            }
        }
    }

    /// Passes on what the ack reader read; returns how the link ends, if it does.
    fn pass_on(&mut self, ack: Result<Ack, crossbeam_channel::RecvError>) -> Option<End> {
        match ack {
            Ok(Ack::Bytes { acks, read }) => {
                self.passed += read;
                if acks.is_empty() {
                    return None;
                }
                self.confirmations += acks.len();
                if self.confirmations > self.frames_written {
                    self.reading = false;
                }
                (self.report)(LinkReport::Confirmations(acks));
                None
            }
            Ok(Ack::Ended(error)) => Some(End::Theirs(error.map(|e| e.to_string()))),
            // The ack reader always says why it ends before it does.
            Err(_) => Some(End::Theirs(None)),
        }
    }

    /// Passes on every confirmation that arrived before now, read by the ack reader or still in
    /// the socket, so that none is taken for one of the bytes about to be written: a friend
    /// cannot confirm a message before it was sent.
    fn catch_up(&mut self) -> Option<End> {
        while self.reading {
            let unread = sendq::unread(self.stream).unwrap_or(0) as u64;
            if self.taken.load(Ordering::Acquire) + unread <= self.passed {
                return None;
            }
            match self.acks.recv_timeout(CATCH_UP) {
                Ok(ack) => {
                    if let Some(end) = self.pass_on(Ok(ack)) {
                        return Some(end);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => return Some(End::Theirs(None)),
            }
        }
        None
    }

    /// Writes a batch (at most about [`CHUNK`](crate::conversation::CHUNK) bytes, as the model
    /// hands them out). Between calls (a call returns early when it has waited `--write-timeout`)
    /// confirmations are passed on and controls obeyed, so a friend who reads slowly goes on
    /// confirming, and a close reaches a link whose friend takes nothing.
    fn write(&mut self, batch: &Batch) -> Option<End> {
        stages::mark(Stage::Writing);
        self.received += batch.frames.len() as u64;
        let mut written = Written::default();
        while written.bytes < batch.frames.len() {
            if let Some(end) = self.catch_up() {
                return Some(end);
            }
            while let Ok(control) = self.control.try_recv() {
                if let Some(end) = self.obey(control) {
                    return Some(end);
                }
            }
            let done = written.bytes;
            match self.stream.write(&batch.frames[done..]) {
                Ok(0) => return Some(End::Theirs(Some("wrote nothing".to_string()))),
                Ok(n) => {
                    stages::mark(Stage::Written);
                    trace_write(self.name, &batch.frames[done..done + n]);
                    self.frames_written += written.advance(batch, done + n);
                    self.written += n as u64;
                    (self.report)(LinkReport::Wrote(n));
                }
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Some(End::Theirs(Some(e.to_string()))),
            }
        }
        None
    }
}

/// Resolves the friend's host and connects to the first address that answers, all within
/// `timeout` for the lookup and `timeout` for each connection attempt.
fn connect(peer: &Peer, timeout: Duration) -> Result<TcpStream, Reason> {
    let addrs = peer.resolve(timeout).map_err(|e| Reason::Resolve {
        host: peer.host.clone(),
        error: e.to_string(),
    })?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                sendq::tune(&stream, timeout);
                return Ok(stream);
            }
            Err(e) => last = Some(Reason::connect(addr, &e, timeout)),
        }
    }
    Err(last.expect("resolve returns at least one address"))
}

/// Logs the bytes written at trace level, target `wire`.
fn trace_write(peer: &str, bytes: &[u8]) {
    if log_enabled!(target: "wire", log::Level::Trace) {
        trace!(target: "wire", "write {} bytes to {peer}: \"{}\"", bytes.len(), bytes.escape_ascii());
    }
}
