//! An outbound link: one thread per friend we are writing to, owning the connection to them.
//!
//! This is the "stdin is readable: connect if needed, send" branch of a select() loop, and the
//! write set. Everything that may block happens here, so a slow `connect` or a friend who stops
//! reading only ever blocks this thread: resolving the friend's host and connecting (both within
//! `--connect-timeout`), and writing (each chunk within `--write-timeout`).
//!
//! The link thread owns the socket's writing half. A second thread, the link's ack reader, owns
//! the reading half: it blocks in `read` and turns the friend's confirmations into [`Ack`]s on a
//! channel. The link waits with one `select!` on three things: its queue from the dispatcher
//! ([`ToLink`]), those acks, and the deadline by which the oldest unconfirmed message must be
//! confirmed.
//!
//! Confirmation: a p2p-chat that has shown a frame writes back one NUL byte (NAK, 0x15, for a
//! frame it dropped), in order, on the same connection. The link keeps every written message
//! until its byte comes back and reports each one to the dispatcher as delivered, refused, sent
//! or lost ([`LinkReport`]). A friend who has never confirmed runs a program that does not (the
//! classic C version, netcat): their messages count as sent once `--ack-timeout` passes with the
//! connection still up. A friend who has confirmed before and goes quiet is frozen or gone, and
//! the link gives up on them at that deadline.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, at, never, select, unbounded};
use log::{info, log_enabled, trace};

use crate::error::is_timeout;
use crate::event::{Batch, Event, Failure, LinkId, LinkReport, Reason, ToLink};
use crate::frame::{ACK_DROPPED, ACK_SHOWN};
use crate::peers::{Peer, PeerId};

/// The most bytes one write call is given. The write timeout applies to each such chunk, so a
/// friend who reads slowly but steadily is never taken for a stalled one.
pub const CHUNK: usize = 64 * 1024;

/// The timeouts a link works with, from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub write: Duration,
    pub ack: Duration,
}

/// Everything a link thread needs.
pub struct LinkTask {
    pub id: LinkId,
    pub peer_id: PeerId,
    pub peer: Peer,
    /// Whether this friend has confirmed messages before: if so, silence means trouble.
    pub confirms: bool,
    pub timeouts: Timeouts,
    pub queue: Receiver<ToLink>,
    pub events: Sender<Event>,
}

/// What the ack reader tells its link.
enum Ack {
    /// Confirmation bytes, in the order they arrived.
    Bytes(Vec<u8>),
    /// The friend closed the connection (`None`) or it broke.
    Ended(Option<io::Error>),
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
    let stream = match connect(&task.peer, task.timeouts.connect) {
        Ok(stream) => stream,
        Err(reason) => {
            return report(LinkReport::Failed(Failure {
                reason,
                unsent: Vec::new(),
                maybe_lost: 0,
                queue: task.queue.clone(),
            }));
        }
    };
    info!("connected to {}", task.peer);
    report(LinkReport::Connected);
    let (acks_tx, acks) = unbounded();
    let ack_reader = stream.try_clone().and_then(|half| {
        thread::Builder::new()
            .name(format!("acks:{}", task.peer.name))
            .spawn(move || read_acks(half, &acks_tx))
    });
    let ack_reader = match ack_reader {
        Ok(handle) => handle,
        Err(e) => {
            return report(LinkReport::Failed(Failure {
                reason: Reason::NoThread(e.to_string()),
                unsent: Vec::new(),
                maybe_lost: 0,
                queue: task.queue.clone(),
            }));
        }
    };
    let mut link = Link {
        stream,
        confirms: task.confirms,
        timeouts: task.timeouts,
        unconfirmed: VecDeque::new(),
        name: &task.peer.name,
        confirmed_here: false,
    };
    let end = link.serve(&task.queue, &acks, &report);
    // Both halves close here, so the ack reader's `read` returns and the thread ends.
    let _ = link.stream.shutdown(Shutdown::Both);
    let _ = ack_reader.join();
    match end {
        Ok(()) => report(LinkReport::Closed),
        Err((reason, unsent)) => {
            let maybe_lost = if link.confirms && reason.unconfirmed_were_dropped() {
                0
            } else {
                link.unconfirmed.iter().map(|(_, b)| b.count).sum()
            };
            // Messages the friend certainly did not show go back to be held, in order.
            let mut held: Vec<Batch> = Vec::new();
            if maybe_lost == 0 {
                held.extend(link.unconfirmed.drain(..).map(|(_, b)| b));
            }
            held.extend(unsent);
            report(LinkReport::Failed(Failure {
                reason,
                unsent: held,
                maybe_lost,
                queue: task.queue.clone(),
            }));
        }
    }
}

/// The ack reader thread's body: the "outbound socket is readable" branch of a select() loop.
/// Anything but confirmation bytes is ignored: the protocol sends nothing else this way.
fn read_acks(mut stream: TcpStream, acks: &Sender<Ack>) {
    let mut buf = [0u8; 4096];
    loop {
        let ended = match stream.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                let bytes: Vec<u8> = buf[..n]
                    .iter()
                    .copied()
                    .filter(|&b| b == ACK_SHOWN || b == ACK_DROPPED)
                    .collect();
                if !bytes.is_empty() && acks.send(Ack::Bytes(bytes)).is_err() {
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

/// Why a link ended early: the reason, and what it had not yet written, in order.
type Ended = (Reason, Vec<Batch>);

struct Link<'a> {
    stream: TcpStream,
    confirms: bool,
    timeouts: Timeouts,
    /// Written messages not yet confirmed, oldest first, each with when it was written.
    unconfirmed: VecDeque<(Instant, Batch)>,
    name: &'a str,
    /// A confirmation has come on this connection (logged once, as an event).
    confirmed_here: bool,
}

impl Link<'_> {
    /// Writes what the queue brings and settles what the friend confirms, until a
    /// [`ToLink::Close`] finds nothing outstanding, or the connection fails.
    fn serve(
        &mut self,
        queue: &Receiver<ToLink>,
        acks: &Receiver<Ack>,
        report: &impl Fn(LinkReport),
    ) -> Result<(), Ended> {
        let mut closing = false;
        loop {
            if closing && self.unconfirmed.is_empty() {
                return Ok(());
            }
            let deadline = self
                .unconfirmed
                .front()
                .map(|(t, _)| *t + self.timeouts.ack);
            let timer = deadline.map(at).unwrap_or_else(never);
            // After a Close nothing more comes: stop listening, or a closed queue would spin.
            let queue_arm = if closing { never() } else { queue.clone() };
            select! {
                recv(queue_arm) -> command => match command {
                    Ok(ToLink::Send(mut batch)) => {
                        // Join what else is already waiting: one write for all of it.
                        let mut close_after = false;
                        while batch.frames.len() < CHUNK {
                            match queue.try_recv() {
                                Ok(ToLink::Send(more)) => batch.append(more),
                                Ok(ToLink::Close) => { close_after = true; break; }
                                Err(_) => break,
                            }
                        }
                        self.write(batch)?;
                        closing = close_after;
                    }
                    // Closed by the dispatcher, or the dispatcher is gone: finish up.
                    Ok(ToLink::Close) | Err(_) => closing = true,
                },
                recv(acks) -> ack => match ack {
                    Ok(Ack::Bytes(bytes)) => self.confirmed(&bytes, report),
                    Ok(Ack::Ended(end)) => {
                        if self.unconfirmed.is_empty() {
                            // The friend closed or dropped an idle connection (they quit or
                            // restarted): nothing written is lost; the dispatcher opens a fresh
                            // connection for whatever comes next.
                            info!("{} closed our idle connection to them", self.name);
                        }
                        let reason = match end {
                            None => Reason::ClosedByFriend,
                            Some(e) => Reason::Broken(e.to_string()),
                        };
                        return Err((reason, Vec::new()));
                    }
                    // The ack reader always says why it ends before it does.
                    Err(_) => return Err((Reason::ClosedByFriend, Vec::new())),
                },
                recv(timer) -> _ => {
                    if self.confirms {
                        return Err((Reason::Unconfirmed(self.timeouts.ack), Vec::new()));
                    }
                    // This friend does not confirm: what is still fine after the ack timeout
                    // counts as sent.
                    let now = Instant::now();
                    let mut sent = 0;
                    while let Some((written, _)) = self.unconfirmed.front() {
                        if *written + self.timeouts.ack > now {
                            break;
                        }
                        sent += self.unconfirmed.pop_front().map_or(0, |(_, b)| b.count);
                    }
                    if sent > 0 {
                        report(LinkReport::Sent(sent));
                    }
                },
            }
        }
    }

    /// Settles confirmed messages, oldest first, and reports them.
    fn confirmed(&mut self, bytes: &[u8], report: &impl Fn(LinkReport)) {
        if !self.confirmed_here {
            self.confirmed_here = true;
            info!("{}'s p2p-chat confirms the messages it shows", self.name);
        }
        self.confirms = true;
        let shown = bytes.iter().filter(|&&b| b == ACK_SHOWN).count();
        let mut settled = 0;
        while settled < bytes.len() {
            let Some((_, front)) = self.unconfirmed.front_mut() else {
                break; // more confirmations than messages: nothing to settle
            };
            let n = front.count.min(bytes.len() - settled);
            front.split_messages(n);
            settled += n;
            if front.count == 0 {
                self.unconfirmed.pop_front();
            }
        }
        if shown > 0 {
            report(LinkReport::Delivered(shown.min(settled)));
        }
        if settled > shown {
            report(LinkReport::Refused(settled - shown));
        }
    }

    /// Writes a batch, chunk by chunk, each within the write timeout. What a stall leaves
    /// unwritten (the cut frame included) comes back in the error, to be sent again.
    fn write(&mut self, mut batch: Batch) -> Result<(), Ended> {
        let mut done = 0;
        while done < batch.frames.len() {
            let end = (done + CHUNK).min(batch.frames.len());
            if let Err(e) =
                write_within(&self.stream, &batch.frames[done..end], self.timeouts.write)
            {
                let whole = batch.frames_started_in(done + e.written);
                let written = batch.split_messages(whole);
                self.unconfirmed.push_back((Instant::now(), written));
                let reason = match is_timeout(&e.error) {
                    true => Reason::Stalled(self.timeouts.write),
                    false => Reason::Broken(e.error.to_string()),
                };
                return Err((reason, vec![batch]));
            }
            trace_write(self.name, &batch.frames[done..end]);
            done = end;
        }
        self.unconfirmed.push_back((Instant::now(), batch));
        Ok(())
    }
}

/// A write that failed part-way: how many bytes went out before `error`.
struct PartialWrite {
    written: usize,
    error: io::Error,
}

/// Writes all of `bytes` within `limit` in total, however many system calls it takes: the
/// socket's own timeout applies per call, so each call gets only what is left of the deadline.
fn write_within(mut stream: &TcpStream, bytes: &[u8], limit: Duration) -> Result<(), PartialWrite> {
    let deadline = Instant::now() + limit;
    let mut written = 0;
    while written < bytes.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let result = if left.is_zero() {
            Err(io::ErrorKind::TimedOut.into())
        } else {
            stream
                .set_write_timeout(Some(left))
                .and_then(|()| stream.write(&bytes[written..]))
        };
        match result {
            Ok(0) => {
                let error = io::ErrorKind::WriteZero.into();
                return Err(PartialWrite { written, error });
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(PartialWrite { written, error }),
        }
    }
    Ok(())
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
                // Frames are written whole, so Nagle's algorithm would only add delay.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => {
                last = Some(Reason::Connect {
                    addr,
                    kind: e.kind(),
                    error: e.to_string(),
                    timeout,
                })
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn write_within_reports_how_much_a_reader_who_takes_nothing_left_unwritten() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_friend, _) = listener.accept().unwrap(); // never reads
        let big = vec![b'x'; 64 << 20];
        let err = write_within(&stream, &big, Duration::from_millis(300)).unwrap_err();
        assert!(is_timeout(&err.error), "{}", err.error);
        // The kernel's buffers took a part; the rest is left to be sent again.
        assert!(err.written > 0 && err.written < big.len());
    }
}
