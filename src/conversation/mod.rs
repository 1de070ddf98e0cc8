//! What we know about one friend, and the one place where a message's fate is decided.
//!
//! A [`Conversation`] is a pure model: no sockets, no threads, no clock. A driver feeds it events
//! (a message typed, the connection is up, bytes were written, confirmation bytes arrived, the
//! connection ended, time passed) and carries out the [`Output`]s it queues: connect, half-close,
//! close, ask the kernel a question, and report a fate. p2p-chat's dispatcher drives one per
//! friend from channels; p2p-chat-select's poll() loop drives the same model from readiness. The
//! lesson compares the two drivers, because the model is the same.
//!
//! Every message queued for a friend gets an id, counting up from 0, and the ids move through
//! these runs, always in order:
//!
//! ```text
//!    settled    | counted, may still be confirmed  | in flight on this connection | outbox
//!               | sent          | given up on      |                              |
//!   .. sent_from  .. lost_from    .. flight_from     .. outbox_from                 .. next_id
//! ```
//!
//! A message leaves the outbox when the driver takes it for the connection ([`take_chunk`]), and
//! leaves the flight with exactly one fate ([`Output::Settled`]): delivered or refused (a
//! confirmation byte), sent (a friend who does not confirm: its bytes were written), may not have
//! arrived (it left, and then the connection ended or we gave up), or not delivered (it never
//! left). Bytes that certainly never left when a connection ended go back to the front of the
//! outbox and are sent again on the next connection, ahead of newer messages. While the
//! connection lasts, a confirmation can still revise a fate of sent, or of given up on while
//! the friend's kernel answered ([`Output::Revised`]).
//!
//! The events and what the driver reads are here; every deadline is in `deadlines.rs` (`tick`),
//! how connections and the program end in `ending.rs`, the outbox in `outbox.rs`, and the words
//! of the outputs in `report.rs`.
//!
//! [`take_chunk`]: Conversation::take_chunk

use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::frame::{ACK_DROPPED, ACK_SHOWN, Batch};

mod deadlines;
mod ending;
mod outbox;
mod report;

pub use deadlines::{Limits, earliest};
pub use outbox::{CHUNK, OUTBOX_BYTES, OUTBOX_MESSAGES};
pub use report::{Fate, Output, Reason, Rejection, Secs, Tally};

use outbox::{Flight, Outbox};

/// The wait before the second attempt to reach a friend; it doubles after each failure...
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// ...up to this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What a friend's program is, as far as we have learned in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nothing written to them has been settled yet.
    Unknown,
    /// Their p2p-chat confirms each message it shows.
    Confirms,
    /// Their program (the classic C version, netcat) never confirms: a message counts as sent
    /// once its bytes are written.
    Classic,
}

/// A friend who cannot be reached at the moment.
#[derive(Debug, Clone)]
pub struct Outage {
    pub reason: Reason,
    pub retry_at: Instant,
    /// The wait after the next failure.
    backoff: Duration,
    /// Whether the driver has been told that messages wait (once per outage).
    told: bool,
}

/// The state of our connection to the friend, as `/peers` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkView {
    None,
    Connecting,
    /// Open, with this many messages not yet settled.
    Busy(usize),
    /// Open and idle: it closes at this instant.
    Idle(Instant),
    Closing,
    /// Given up on, kept for a frozen friend to read.
    Kept,
}

/// One open connection.
#[derive(Debug)]
struct Link {
    /// Bytes taken for this connection so far, and how many of them were written.
    handed: u64,
    written: u64,
    /// Frames whose bytes were all written, and confirmations read: never more than that.
    frames_written: usize,
    confirmations: usize,
    /// When a message was last taken, or its bytes last written: the idle close counts from
    /// here, so a friend who reads slowly is not half-closed while still taking our bytes.
    last_sent: Instant,
    /// The last time a write made progress, or bytes began to wait to be written.
    progress: Instant,
    stalled: bool,
    /// The last confirmation: silence counts from here, or from the oldest unconfirmed write.
    confirmed_at: Option<Instant>,
    warned: bool,
    asked_at: Option<Instant>,
    half_closed_at: Option<Instant>,
    /// We asked the driver to close, for this reason (`None`: a normal close).
    closing: Option<Option<Reason>>,
    giving_up: GivingUp,
}

/// Where giving up on a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GivingUp {
    /// Confirmations come, or the give-up deadline has not passed.
    No,
    /// The deadline passed then, and we asked the kernel whether the friend's has every byte, or
    /// answers with its window closed.
    Asked(Instant),
    /// We gave up on its messages while the friend's kernel answered (a frozen friend): it is
    /// half-closed and read until their end (or the kernel finds their machine gone).
    Kept,
}

#[derive(Debug)]
enum Conn {
    Down,
    Connecting,
    /// Boxed: a link is large, and a friend has at most one.
    Open(Box<Link>),
}

/// Everything we know about one friend. See the module documentation.
#[derive(Debug)]
pub struct Conversation {
    limits: Limits,
    kind: Kind,
    outbox: Outbox,
    flight: VecDeque<Flight>,
    sent_from: u64,
    lost_from: u64,
    flight_from: u64,
    outbox_from: u64,
    next_id: u64,
    conn: Conn,
    outage: Option<Outage>,
    /// Messages refused at the door in this run of refusals (for `rejected_why`), not yet
    /// reported.
    rejected: usize,
    rejected_why: Rejection,
    quitting: bool,
    tally: Tally,
    outputs: VecDeque<Output>,
}

impl Conversation {
    pub fn new(limits: Limits) -> Conversation {
        Conversation {
            limits,
            kind: Kind::Unknown,
            outbox: Outbox::default(),
            flight: VecDeque::new(),
            sent_from: 0,
            lost_from: 0,
            flight_from: 0,
            outbox_from: 0,
            next_id: 0,
            conn: Conn::Down,
            outage: None,
            rejected: 0,
            rejected_why: Rejection::OutboxFull,
            quitting: false,
            tally: Tally::default(),
            outputs: VecDeque::new(),
        }
    }

    /// The next thing for the driver to do or report, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    // ----- Events -----

    /// Messages typed for this friend. Returns the ids they were queued under, or `None` when
    /// they were refused at the door (an [`Output::Rejected`] says so).
    pub fn send(&mut self, batch: Batch, now: Instant) -> Option<Range<u64>> {
        let why = match () {
            _ if self.quitting => Some(Rejection::Quitting),
            _ if self.refuses() => Some(Rejection::OutboxFull),
            _ => None,
        };
        if let Some(why) = why {
            if why != self.rejected_why {
                self.end_refusals();
                self.rejected_why = why;
            }
            let first = self.rejected == 0;
            self.rejected += batch.count;
            self.tally.failed += batch.count;
            let count = batch.count;
            self.outputs
                .push_back(Output::Rejected { count, why, first });
            return None;
        }
        let ids = self.next_id..self.next_id + batch.count as u64;
        self.next_id = ids.end;
        if let Conn::Open(link) = &mut self.conn
            && link.written == link.handed
            && self.outbox.messages == 0
        {
            link.progress = now; // bytes wait to be written from now
        }
        self.outbox.push_back(batch);
        let reason = match &self.outage {
            Some(outage) if !self.is_connected() => Some(outage.reason.clone()),
            _ if self.gave_up() => Some(Reason::GaveUp(self.limits.give_up)),
            _ => None,
        };
        if let Some(reason) = reason {
            let (ids, first) = (ids.clone(), false);
            self.outputs
                .push_back(Output::Waiting { ids, reason, first });
        }
        Some(ids)
    }

    /// The connection asked for with [`Output::Connect`] is up.
    pub fn connected(&mut self, now: Instant) {
        if !matches!(self.conn, Conn::Connecting) {
            return;
        }
        self.conn = Conn::Open(Box::new(Link {
            handed: 0,
            written: 0,
            frames_written: 0,
            confirmations: 0,
            last_sent: now,
            progress: now,
            stalled: false,
            confirmed_at: None,
            warned: false,
            asked_at: None,
            half_closed_at: None,
            closing: None,
            giving_up: GivingUp::No,
        }));
    }

    /// The connection asked for could not be made.
    pub fn connect_failed(&mut self, reason: Reason, now: Instant) {
        if matches!(self.conn, Conn::Connecting) {
            self.conn = Conn::Down;
            self.hold(reason, false, now);
        }
    }

    /// The driver has room for more bytes on the open connection: the next messages to write,
    /// if there are any and the connection takes them.
    pub fn take_chunk(&mut self, now: Instant) -> Option<Batch> {
        let Conn::Open(link) = &mut self.conn else {
            return None;
        };
        if link.half_closed_at.is_some() || link.closing.is_some() {
            return None;
        }
        let batch = self.outbox.pop_chunk()?;
        if link.written == link.handed {
            link.progress = now;
        }
        link.handed += batch.frames.len() as u64;
        link.last_sent = now;
        self.outbox_from += batch.count as u64;
        self.flight
            .push_back(Flight::new(batch.clone(), link.handed));
        Some(batch)
    }

    /// `n` more bytes of what was taken have been written to the connection.
    pub fn wrote(&mut self, n: usize, now: Instant) {
        let Conn::Open(link) = &mut self.conn else {
            return;
        };
        let (from, to) = (link.written, (link.written + n as u64).min(link.handed));
        link.written = to;
        link.progress = now;
        link.last_sent = now;
        // A stall ends when the friend has caught up with everything, outbox and all, not when
        // their kernel takes another buffer's worth: input would wait and flow by turns.
        let was_stalled = link.stalled;
        link.stalled &= to < link.handed || self.outbox.messages > 0;
        let caught_up = was_stalled && !link.stalled;
        // Count the frames these bytes finish: each may now be confirmed.
        for flight in self.flight.iter_mut().skip_while(|f| f.end <= from) {
            // Where the whole batch starts, settled front and all.
            let start = flight.end - flight.batch.frames.len() as u64;
            if start >= to {
                break;
            }
            link.frames_written += flight.written_up_to((to - start) as usize, now);
        }
        if self.kind == Kind::Classic {
            self.settle_written_as_sent();
        }
        if caught_up {
            self.end_refusals(); // nothing more is refused: the count of those that were
        }
    }

    /// Confirmation bytes from the friend, in the order they came; other bytes are ignored. A
    /// confirmation for a message not yet written is a protocol error: the connection is closed.
    pub fn confirmations(&mut self, bytes: &[u8], now: Instant) {
        let Conn::Open(link) = &mut self.conn else {
            return;
        };
        let is_ack = |b: &&u8| **b == ACK_SHOWN || **b == ACK_DROPPED;
        let count = bytes.iter().filter(is_ack).count();
        if link.closing.is_some() || count == 0 {
            return;
        }
        if link.confirmations + count > link.frames_written {
            link.closing = Some(Some(Reason::Protocol));
            self.outputs.push_back(Output::Close { give_up: true });
            return;
        }
        link.confirmations += count;
        link.confirmed_at = Some(now);
        link.warned = false;
        if let GivingUp::Asked(_) = link.giving_up {
            link.giving_up = GivingUp::No;
        }
        if self.kind != Kind::Confirms {
            self.kind = Kind::Confirms;
            self.outputs.push_back(Output::Learned(Kind::Confirms));
        }
        // One run of equal bytes at a time: first for messages already counted, then for
        // messages in flight.
        let mut acks = bytes.iter().filter(is_ack).peekable();
        while let Some(&byte) = acks.next() {
            let mut run = 1;
            while acks.next_if(|&&b| b == byte).is_some() {
                run += 1;
            }
            let fate = match byte {
                ACK_DROPPED => Fate::Refused,
                _ => Fate::Delivered,
            };
            let revised = self.revise(run, &fate);
            self.settle_front(run - revised, fate);
        }
        self.reachable();
    }

    /// The answer to [`Output::AskUnacked`]: how many written bytes the friend's kernel has not
    /// acknowledged, and whether it answers all the same, with its window closed. None, with
    /// nothing confirmed for the ack timeout: their program does not confirm. At the give-up
    /// deadline: whether a frozen friend's kernel holds everything, or answers.
    pub fn unacked(&mut self, bytes: usize, answering: bool, now: Instant) {
        let Conn::Open(link) = &mut self.conn else {
            return;
        };
        link.asked_at = Some(now);
        let all_written = link.written == link.handed;
        let giving_up = matches!(link.giving_up, GivingUp::Asked(_)) && link.closing.is_none();
        if bytes == 0 && self.kind == Kind::Unknown && all_written {
            self.kind = Kind::Classic;
            self.outputs.push_back(Output::Learned(Kind::Classic));
            self.settle_written_as_sent();
        }
        if giving_up {
            self.give_up(all_written && (bytes == 0 || answering), now);
        }
    }

    /// The friend spoke to us: they are up, so try them now rather than at the backoff.
    pub fn heard(&mut self, now: Instant) {
        if let Some(outage) = &mut self.outage {
            outage.retry_at = now;
        }
    }

    // ----- What the driver reads -----

    /// Whether the driver should offer bytes to the connection: it is open, takes more, and
    /// messages wait.
    pub fn wants_to_write(&self) -> bool {
        match &self.conn {
            Conn::Open(link) => {
                link.half_closed_at.is_none() && link.closing.is_none() && self.outbox.messages > 0
            }
            _ => false,
        }
    }

    /// Whether input should wait for this friend: they are reachable, taking our bytes, and
    /// their outbox is full.
    pub fn holds_up_input(&self) -> bool {
        !self.refuses_when_full() && !matches!(self.conn, Conn::Down) && self.outbox.is_full()
    }

    /// Whether everything typed for them has its fate and no connection is open.
    pub fn is_done(&self) -> bool {
        matches!(self.conn, Conn::Down) && self.flight_from == self.next_id
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether a confirmation on the current connection could still change the fate these
    /// messages were given (sent, or given up on while the friend's kernel answered).
    pub fn may_revise(&self, ids: &Range<u64>) -> bool {
        self.is_connected() && ids.start >= self.sent_from && ids.end <= self.flight_from
    }

    /// Whether the connection is one we gave up on, kept for the friend to read.
    pub fn gave_up(&self) -> bool {
        matches!(&self.conn, Conn::Open(link) if link.giving_up == GivingUp::Kept)
    }

    pub fn tally(&self) -> Tally {
        self.tally
    }

    pub fn outage(&self) -> Option<&Outage> {
        self.outage.as_ref()
    }

    /// Messages waiting in the outbox.
    pub fn waiting(&self) -> usize {
        self.outbox.messages
    }

    /// Which bound a full outbox has reached, in words.
    pub fn outbox_bound(&self) -> String {
        match self.outbox.messages >= OUTBOX_MESSAGES {
            true => format!("{OUTBOX_MESSAGES} messages"),
            false => format!("{} MiB", OUTBOX_BYTES >> 20),
        }
    }

    /// Every message taken so far is settled and nothing waits.
    pub fn is_settled(&self) -> bool {
        self.flight.is_empty() && self.outbox.messages == 0
    }

    /// The connection, as `/peers` shows it.
    pub fn link_view(&self) -> LinkView {
        match &self.conn {
            Conn::Down => LinkView::None,
            Conn::Connecting => LinkView::Connecting,
            Conn::Open(link) if link.giving_up == GivingUp::Kept && link.closing.is_none() => {
                LinkView::Kept
            }
            Conn::Open(link) if link.half_closed_at.is_some() || link.closing.is_some() => {
                LinkView::Closing
            }
            Conn::Open(_) if !self.flight.is_empty() => {
                LinkView::Busy(self.flight.iter().map(Flight::count).sum())
            }
            Conn::Open(link) => LinkView::Idle(link.last_sent + self.limits.idle),
        }
    }

    // ----- Inside -----

    fn refuses(&self) -> bool {
        self.refuses_when_full() && self.outbox.is_full()
    }

    /// The friend cannot be reached, or takes nothing: a full outbox refuses rather than waits.
    fn refuses_when_full(&self) -> bool {
        match &self.conn {
            Conn::Open(link) => link.stalled || link.giving_up == GivingUp::Kept,
            _ => self.outage.is_some(),
        }
    }

    fn is_connected(&self) -> bool {
        matches!(self.conn, Conn::Open(_))
    }

    /// Settles the `n` oldest messages in flight with `fate`.
    fn settle_front(&mut self, mut n: usize, fate: Fate) {
        if n == 0 {
            return;
        }
        let first = self.flight_from;
        while n > 0 {
            let Some(front) = self.flight.front_mut() else {
                break;
            };
            let take = front.count().min(n);
            front.settle(take);
            if front.count() == 0 {
                self.flight.pop_front();
            }
            n -= take;
            self.flight_from += take as u64;
        }
        let count = (self.flight_from - first) as usize;
        self.tally.count(&fate, count);
        // Only a run of sent messages can still change (a late confirmation); any other fate
        // comes after that run is over. (`give_up` keeps its run open itself.)
        self.lost_from = self.flight_from;
        if fate != Fate::Sent {
            self.sent_from = self.flight_from;
        }
        let ids = first..self.flight_from;
        self.outputs.push_back(Output::Settled { ids, fate });
    }

    /// Confirmations for messages already counted, oldest first: sent (to a friend taken for
    /// one who does not confirm), then given up on. Returns how many of `run` it revised.
    fn revise(&mut self, run: usize, fate: &Fate) -> usize {
        let given_up = Fate::MaybeLost(Reason::GaveUp(self.limits.give_up));
        let mut left = run;
        for (end, was) in [(self.lost_from, Fate::Sent), (self.flight_from, given_up)] {
            let n = ((end - self.sent_from) as usize).min(left);
            if n > 0 {
                let ids = self.sent_from..self.sent_from + n as u64;
                self.sent_from = ids.end;
                self.tally.revise(&was, fate, n);
                let fate = fate.clone();
                self.outputs.push_back(Output::Revised { ids, was, fate });
                left -= n;
            }
        }
        self.lost_from = self.lost_from.max(self.sent_from);
        run - left
    }

    /// Unsettled messages at the front of the flight whose batches have been written whole.
    fn written_whole(&self) -> usize {
        self.flight
            .iter()
            .take_while(|f| f.written_at.is_some())
            .map(Flight::count)
            .sum()
    }

    /// A classic friend's messages count as sent once written.
    fn settle_written_as_sent(&mut self) {
        let written = self.written_whole();
        if written > 0 {
            self.settle_front(written, Fate::Sent);
            self.reachable();
        }
    }

    /// A message got through: any outage is over.
    fn reachable(&mut self) {
        if self.outage.take().is_some() {
            self.outputs.push_back(Output::Reachable);
            self.end_refusals();
        }
    }

    /// A run of refusals is over: its count is reported once.
    fn end_refusals(&mut self) {
        let count = std::mem::take(&mut self.rejected);
        if count > 0 {
            let why = self.rejected_why;
            self.outputs.push_back(Output::RefusedRun { count, why });
        }
    }
}

#[cfg(test)]
mod tests;
