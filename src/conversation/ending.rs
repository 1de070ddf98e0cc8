//! How things end: a connection (what never left is held and sent again first, what left
//! unconfirmed is reported), an attempt to connect (held, and retried with backoff), and the
//! program (what cannot be delivered is reported, once).

use std::time::{Duration, Instant};

use super::outbox::Flight;
use super::{
    Conn, Conversation, FIRST_BACKOFF, Fate, GivingUp, Kind, MAX_BACKOFF, Outage, Output, Reason,
};

impl Conversation {
    /// The connection has ended. `unsent` bytes at its end were never sent (still in our queue,
    /// or never written): those messages are held and sent again. `reason` is `None` when it
    /// ended as asked: after our close, or with the friend's end after our half-close.
    pub fn ended(&mut self, unsent: u64, reason: Option<Reason>, now: Instant) {
        if !matches!(self.conn, Conn::Open(_)) {
            return;
        }
        let Conn::Open(link) = std::mem::replace(&mut self.conn, Conn::Down) else {
            unreachable!("matched just above");
        };
        let idle = self.flight.is_empty();
        let reason = match (link.closing, reason) {
            (Some(ours), _) => ours,
            (None, None) if link.half_closed_at.is_some() => None,
            (None, None) => Some(Reason::ClosedByFriend),
            (None, theirs) => theirs,
        };
        // Whole messages in the unsent tail go back to the front of the outbox, in order.
        let cut = link.handed.saturating_sub(unsent);
        while let Some(mut last) = self.flight.pop_back() {
            if last.end <= cut {
                self.flight.push_back(last);
                break;
            }
            let unsent = last.split_unsent(cut);
            if unsent.count > 0 {
                self.outbox_from -= unsent.count as u64;
                self.outbox.push_front(unsent);
            }
            if last.count() > 0 {
                self.flight.push_back(last);
                break;
            }
        }
        // Their program read to our end of file and closed without a confirmation: a p2p-chat
        // confirms before it closes, so this one does not confirm.
        let read_to_our_end = reason.is_none() && link.half_closed_at.is_some();
        if read_to_our_end && self.kind == Kind::Unknown && !self.flight.is_empty() {
            self.kind = Kind::Classic;
            self.outputs.push_back(Output::Learned(Kind::Classic));
            self.settle_written_as_sent();
        }
        (self.sent_from, self.lost_from) = (self.flight_from, self.flight_from);
        let unconfirmed: usize = self.flight.iter().map(Flight::count).sum();
        let why = reason.clone().unwrap_or(Reason::ClosedByFriend);
        self.settle_front(unconfirmed, Fate::MaybeLost(why));
        self.outputs.push_back(Output::Closed {
            reason: reason.clone(),
            idle,
        });
        if let Some(reason) = reason {
            self.hold(reason, true, now);
        }
    }

    /// The give-up deadline passed, and the kernel says whether the friend's has every byte we
    /// wrote, or answers with its window closed (`answering`). Either way what is in flight is
    /// reported as possibly lost. If so, the friend is frozen or their program stuck, and may yet
    /// read it all: the connection is half-closed and kept while their machine answers, their
    /// confirmations revise the report, and what was typed since waits behind it, to be sent in
    /// order once it ends. If not, the network may be down: the connection is closed, and our
    /// kernel gives up on what it held.
    pub(super) fn give_up(&mut self, answering: bool, now: Instant) {
        let Conn::Open(link) = &mut self.conn else {
            return;
        };
        // Nothing left to give up on (their messages just counted as sent, say).
        if self.flight.is_empty() {
            link.giving_up = GivingUp::No;
            return;
        }
        let reason = Reason::GaveUp(self.limits.give_up);
        if !answering {
            link.closing = Some(Some(reason));
            self.outputs.push_back(Output::Close { give_up: true });
            return;
        }
        link.giving_up = GivingUp::Kept;
        link.half_closed_at = Some(now);
        // Reported now, and still open to revision: `settle_front` closes the runs it counts.
        let (sent_from, lost_from) = (self.sent_from, self.flight_from);
        let unconfirmed = self.flight.iter().map(Flight::count).sum();
        self.settle_front(unconfirmed, Fate::MaybeLost(reason.clone()));
        (self.sent_from, self.lost_from) = (sent_from, lost_from);
        self.outputs.push_back(Output::HalfClose { kept: true });
        // What was typed and not yet sent waits behind the connection.
        if self.outbox.messages > 0 {
            let (ids, first) = (self.outbox_from..self.next_id, false);
            self.outputs
                .push_back(Output::Waiting { ids, reason, first });
        }
    }

    /// Quitting: deliver what can be delivered; what waits for an unreachable friend is not
    /// delivered; nothing new is taken. A friend not tried yet (the message came in the same
    /// read as the quit) is tried once.
    pub fn quit(&mut self) {
        self.quitting = true;
        self.end_refusals();
        if let (Conn::Down, Some(outage)) = (&self.conn, &self.outage) {
            self.drop_outbox(outage.reason.clone());
        }
    }

    /// The program ends: the count of messages refused while quitting is reported.
    pub fn finish(&mut self) {
        self.end_refusals();
    }

    /// Quitting took too long: every message not yet settled gets its fate now, and the
    /// connection is closed.
    pub fn abandon(&mut self) {
        self.quitting = true;
        self.settle_front(self.written_whole(), Fate::MaybeLost(Reason::Quitting));
        let unwritten: usize = self.flight.iter().map(Flight::count).sum();
        self.settle_front(unwritten, Fate::NotDelivered(Reason::Quitting));
        self.drop_outbox(Reason::Quitting);
        (self.sent_from, self.lost_from) = (self.flight_from, self.flight_from);
        self.conn = Conn::Down;
    }

    /// The outbox's messages will not be delivered.
    fn drop_outbox(&mut self, reason: Reason) {
        let count = self.outbox.messages;
        if count > 0 {
            self.outbox.clear();
            let ids = self.outbox_from..self.outbox_from + count as u64;
            debug_assert!(
                self.flight.is_empty(),
                "the outbox is dropped after the flight"
            );
            self.outbox_from = ids.end;
            self.flight_from = ids.end;
            (self.sent_from, self.lost_from) = (ids.end, ids.end);
            self.tally.count(&Fate::NotDelivered(reason.clone()), count);
            let fate = Fate::NotDelivered(reason);
            self.outputs.push_back(Output::Settled { ids, fate });
        }
    }

    /// A connection attempt failed, or a connection ended for `reason`: what waits is held for
    /// a retry (at once after a connection that was up, then later each time), or dropped when
    /// quitting.
    pub(super) fn hold(&mut self, reason: Reason, was_up: bool, now: Instant) {
        if self.quitting {
            return self.drop_outbox(reason);
        }
        if self.outbox.messages == 0 {
            return;
        }
        let (wait, backoff) = match &self.outage {
            None if was_up => (Duration::ZERO, FIRST_BACKOFF),
            None => (FIRST_BACKOFF, FIRST_BACKOFF * 2),
            Some(o) => (o.backoff, (o.backoff * 2).min(MAX_BACKOFF)),
        };
        let told = self.outage.as_ref().is_some_and(|o| o.told);
        if !wait.is_zero() {
            let (ids, first) = (self.outbox_from..self.next_id, !told);
            let reason = reason.clone();
            self.outputs
                .push_back(Output::Waiting { ids, reason, first });
        }
        self.outage = Some(Outage {
            reason,
            retry_at: now + wait,
            backoff,
            told: told || !wait.is_zero(),
        });
    }
}
