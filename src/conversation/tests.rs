//! The model's unit tests: each rule with made-up instants, then random worlds.

use super::*;
use crate::frame::batch;

const S: Duration = Duration::from_secs(1);

fn limits() -> Limits {
    Limits {
        idle: 30 * S,
        ack: 5 * S,
        give_up: 60 * S,
        write: 5 * S,
    }
}

fn outputs(c: &mut Conversation) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn settled(ids: Range<u64>, fate: Fate) -> Output {
    Output::Settled { ids, fate }
}

/// A conversation with `n` one-line messages written on an open connection at `t0`.
fn open_with(n: usize, t0: Instant) -> Conversation {
    let mut c = Conversation::new(limits());
    for i in 0..n {
        c.send(batch(&format!("a/{i}\n"), 1), t0);
    }
    assert_eq!(c.tick(t0), None);
    assert_eq!(outputs(&mut c), [Output::Connect]);
    c.connected(t0);
    while let Some(chunk) = c.take_chunk(t0) {
        c.wrote(chunk.frames.len(), t0);
    }
    c
}

#[test]
fn a_confirmed_message_is_delivered_and_the_idle_connection_half_closes_then_closes() {
    let t0 = Instant::now();
    let mut c = open_with(1, t0);
    c.confirmations(&[ACK_SHOWN], t0);
    assert_eq!(
        outputs(&mut c),
        [
            Output::Learned(Kind::Confirms),
            settled(0..1, Fate::Delivered)
        ]
    );
    // The idle close comes exactly the idle timeout after the message was taken.
    assert_eq!(c.tick(t0 + S), Some(t0 + 30 * S));
    assert_eq!(c.tick(t0 + 30 * S), None);
    assert_eq!(outputs(&mut c), [Output::HalfClose]);
    assert_eq!(c.link_view(), LinkView::Closing);
    // Their end normally comes at once; without it we close after the ack timeout.
    assert_eq!(c.tick(t0 + 31 * S), Some(t0 + 35 * S));
    c.tick(t0 + 35 * S);
    assert_eq!(outputs(&mut c), [Output::Close]);
    c.ended(0, None, t0 + 35 * S);
    assert_eq!(
        outputs(&mut c),
        [Output::Closed {
            reason: None,
            idle: true
        }]
    );
    assert!(c.is_done());
    assert_eq!(c.tally().delivered, 1);
}

#[test]
fn a_nak_then_a_nul_settle_one_refused_then_one_delivered() {
    let t0 = Instant::now();
    let mut c = open_with(2, t0);
    c.confirmations(&[ACK_DROPPED, ACK_SHOWN], t0);
    let all = outputs(&mut c);
    assert_eq!(
        all[1..],
        [settled(0..1, Fate::Refused), settled(1..2, Fate::Delivered)]
    );
    let t = c.tally();
    assert_eq!((t.delivered, t.failed), (1, 1));
}

#[test]
fn confirmations_for_messages_not_written_close_the_connection_and_count_nothing() {
    let t0 = Instant::now();
    let mut c = Conversation::new(limits());
    c.send(batch("a/x\n", 1), t0);
    c.tick(t0);
    c.connected(t0);
    outputs(&mut c);
    // Three NULs before anything was written: forged.
    c.confirmations(&[ACK_SHOWN; 3], t0);
    assert_eq!(outputs(&mut c), [Output::Close]);
    assert_eq!(c.kind(), Kind::Unknown);
    assert!(c.take_chunk(t0).is_none(), "nothing more goes out on it");
    // The message never left: it waits and goes out on the next connection, at once.
    c.ended(0, None, t0);
    assert_eq!(c.tally(), Tally::default());
    c.tick(t0);
    let reason = Some(Reason::Protocol);
    assert_eq!(
        outputs(&mut c),
        [Output::Closed { reason, idle: true }, Output::Connect]
    );

    // One written message, two confirmations: the same.
    let mut c = open_with(1, t0);
    c.confirmations(&[ACK_SHOWN, ACK_SHOWN], t0);
    assert_eq!(outputs(&mut c), [Output::Close]);
    c.ended(0, None, t0);
    let lost = settled(0..1, Fate::MaybeLost(Reason::Protocol));
    let reason = Some(Reason::Protocol);
    assert_eq!(
        outputs(&mut c),
        [
            lost,
            Output::Closed {
                reason,
                idle: false
            }
        ]
    );
}

#[test]
fn a_frozen_friend_who_confirms_gets_a_warning_then_everything_once_on_resuming() {
    let t0 = Instant::now();
    let mut c = open_with(1, t0);
    c.confirmations(&[ACK_SHOWN], t0);
    outputs(&mut c);
    // Frozen: three more are written and nothing comes back.
    for i in 0..3 {
        c.send(batch(&format!("a/{i}\n"), 1), t0);
    }
    let t1 = t0 + S;
    let chunk = c.take_chunk(t1).unwrap();
    c.wrote(chunk.frames.len(), t1);
    assert_eq!(c.tick(t1 + S), Some(t1 + 5 * S));
    c.tick(t1 + 5 * S);
    let silent = 5 * S;
    assert_eq!(outputs(&mut c), [Output::Unconfirmed { count: 3, silent }]);
    // One warning per silence; no second connection, no close before the give-up time
    // (the idle half-close at 30 s leaves the reading side open for their confirmations).
    assert_eq!(c.tick(t1 + 20 * S), Some(t1 + 30 * S));
    assert_eq!(outputs(&mut c), []);
    // Resumed after 20 s: all three delivered, nothing reported lost.
    c.confirmations(&[ACK_SHOWN; 3], t1 + 20 * S);
    assert_eq!(outputs(&mut c), [settled(1..4, Fate::Delivered)]);
    assert_eq!(c.tally().delivered, 4);
}

#[test]
fn silence_until_the_give_up_time_closes_and_reports_what_left_as_maybe_lost() {
    let t0 = Instant::now();
    let mut c = open_with(2, t0);
    c.confirmations(&[ACK_SHOWN], t0);
    outputs(&mut c);
    assert_eq!(c.tick(t0 + 59 * S), Some(t0 + 60 * S));
    outputs(&mut c);
    c.tick(t0 + 60 * S);
    assert_eq!(outputs(&mut c), [Output::Close]);
    c.ended(0, None, t0 + 60 * S);
    let lost = Fate::MaybeLost(Reason::GaveUp(60 * S));
    let reason = Some(Reason::GaveUp(60 * S));
    assert_eq!(
        outputs(&mut c),
        [
            settled(1..2, lost),
            Output::Closed {
                reason,
                idle: false
            }
        ]
    );
    assert!(c.is_done());
}

#[test]
fn bytes_that_never_left_are_sent_again_first_and_bytes_that_left_are_reported() {
    let t0 = Instant::now();
    let mut c = open_with(3, t0);
    // Two more typed after the first three went out.
    c.send(batch("a/3\na/4\n", 2), t0);
    // The connection breaks with the last 7 bytes (all of "a/2\n" and part of "a/1\n")
    // still in our queue: a/1 may have been partly sent, so only a/2 certainly was not.
    c.ended(7, Some(Reason::Broken("reset".into())), t0 + S);
    let reason = Reason::Broken("reset".into());
    let lost = Fate::MaybeLost(reason.clone());
    let reason = Some(reason);
    assert_eq!(
        outputs(&mut c),
        [
            settled(0..2, lost),
            Output::Closed {
                reason,
                idle: false
            }
        ]
    );
    assert_eq!(c.waiting(), 3);
    // A connection that was up: tried again at once, and a/2 goes ahead of a/3 and a/4.
    c.tick(t0 + S);
    assert_eq!(outputs(&mut c), [Output::Connect]);
    c.connected(t0 + S);
    assert_eq!(c.take_chunk(t0 + S), Some(batch("a/2\na/3\na/4\n", 3)));
}

#[test]
fn a_friend_who_never_confirms_is_learned_classic_and_a_late_confirmation_upgrades() {
    let t0 = Instant::now();
    let mut c = open_with(2, t0);
    assert_eq!(c.tick(t0 + S), Some(t0 + 5 * S));
    c.tick(t0 + 5 * S);
    assert_eq!(outputs(&mut c), [Output::AskUnacked]);
    // Their kernel has not taken everything: maybe their machine is gone. Ask again later.
    c.unacked(10, t0 + 5 * S);
    assert_eq!(outputs(&mut c), []);
    assert_eq!(c.tick(t0 + 6 * S), Some(t0 + 10 * S));
    c.tick(t0 + 10 * S);
    assert_eq!(outputs(&mut c), [Output::AskUnacked]);
    c.unacked(0, t0 + 10 * S);
    assert_eq!(
        outputs(&mut c),
        [Output::Learned(Kind::Classic), settled(0..2, Fate::Sent)]
    );
    // From now on a message counts as sent as soon as it is written.
    c.send(batch("a/2\n", 1), t0);
    let chunk = c.take_chunk(t0 + 11 * S).unwrap();
    c.wrote(chunk.frames.len(), t0 + 11 * S);
    assert_eq!(outputs(&mut c), [settled(2..3, Fate::Sent)]);
    // Quitting does not wait for them: the connection half-closes at once.
    c.quit();
    c.tick(t0 + 11 * S);
    assert_eq!(outputs(&mut c), [Output::HalfClose]);
    // A confirmation after all moves the oldest sent message to delivered, once.
    c.confirmations(&[ACK_SHOWN], t0 + 12 * S);
    assert_eq!(
        outputs(&mut c),
        [
            Output::Learned(Kind::Confirms),
            Output::Revised {
                ids: 0..1,
                fate: Fate::Delivered
            }
        ]
    );
    let t = c.tally();
    assert_eq!((t.delivered, t.sent), (1, 2));
}

#[test]
fn an_unreachable_friend_is_retried_with_backoff_and_at_once_when_heard() {
    let t0 = Instant::now();
    let mut c = Conversation::new(limits());
    c.send(batch("a/0\n", 1), t0);
    c.tick(t0);
    outputs(&mut c);
    c.connect_failed(Reason::ClosedByFriend, t0);
    let reason = Reason::ClosedByFriend;
    let first = true;
    assert_eq!(
        outputs(&mut c),
        [Output::Waiting {
            ids: 0..1,
            reason,
            first
        }]
    );
    let mut at = t0;
    for wait in [500, 1000, 2000, 4000, 8000, 10_000, 10_000] {
        assert_eq!(c.tick(at), Some(at + Duration::from_millis(wait)));
        at += Duration::from_millis(wait);
        c.tick(at);
        assert_eq!(outputs(&mut c), [Output::Connect]);
        c.connect_failed(Reason::ClosedByFriend, at);
        outputs(&mut c);
    }
    c.heard(at);
    c.tick(at);
    assert_eq!(outputs(&mut c), [Output::Connect]);
}

#[test]
fn a_full_outbox_refuses_only_while_they_cannot_be_reached_and_reachable_ends_it() {
    let t0 = Instant::now();
    let mut c = Conversation::new(limits());
    for _ in 0..OUTBOX_MESSAGES {
        assert!(c.send(batch("a/x\n", 1), t0).is_some());
    }
    c.tick(t0);
    assert!(c.holds_up_input(), "connecting: input waits");
    c.connect_failed(Reason::ClosedByFriend, t0);
    assert!(!c.holds_up_input());
    outputs(&mut c);
    assert_eq!(c.send(batch("a/y\n", 1), t0), None);
    let (why, first) = (Rejection::OutboxFull, true);
    assert_eq!(
        outputs(&mut c),
        [Output::Rejected {
            count: 1,
            why,
            first
        }]
    );
    c.tick(t0 + S);
    c.connected(t0 + S);
    let chunk = c.take_chunk(t0 + S).unwrap();
    c.wrote(chunk.frames.len(), t0 + S);
    c.confirmations(&[ACK_SHOWN], t0 + S);
    let all = outputs(&mut c);
    assert!(all.contains(&Output::Reachable), "{all:?}");
    assert!(
        all.contains(&Output::RefusedRun {
            count: 1,
            why: Rejection::OutboxFull
        }),
        "{all:?}"
    );
    assert_eq!(c.tally().failed, 1);
}

#[test]
fn a_friend_who_takes_nothing_is_stalled_and_then_holds_up_no_input() {
    let t0 = Instant::now();
    let mut c = Conversation::new(limits());
    c.send(batch("a/x\n", 1), t0);
    c.tick(t0);
    c.connected(t0);
    outputs(&mut c);
    c.take_chunk(t0).unwrap(); // never written
    for _ in 0..OUTBOX_MESSAGES {
        c.send(batch("a/x\n", 1), t0);
    }
    assert!(c.holds_up_input());
    assert_eq!(c.tick(t0 + S), Some(t0 + 5 * S));
    c.tick(t0 + 5 * S);
    assert_eq!(outputs(&mut c), [Output::Stalled]);
    assert!(!c.holds_up_input());
    assert_eq!(c.send(batch("a/y\n", 1), t0), None);
    // Taking what was handed over does not end the stall while the outbox is full: their
    // kernel may take another buffer's worth, and input would wait and flow by turns.
    c.wrote(4, t0 + 6 * S);
    assert!(!c.holds_up_input());
    // Quitting closes a stalled connection rather than wait for it.
    c.take_chunk(t0 + 7 * S).unwrap();
    outputs(&mut c);
    c.tick(t0 + 12 * S);
    assert_eq!(outputs(&mut c), [], "one report per stall");
    c.quit();
    c.tick(t0 + 12 * S);
    let refused = Output::RefusedRun {
        count: 1,
        why: Rejection::OutboxFull,
    };
    assert_eq!(outputs(&mut c), [refused, Output::Close]);
}

#[test]
fn quitting_reports_what_waits_for_an_unreachable_friend_and_refuses_new_messages() {
    let t0 = Instant::now();
    let mut c = Conversation::new(limits());
    c.send(batch("a/0\na/1\n", 2), t0);
    c.tick(t0);
    c.connect_failed(Reason::ClosedByFriend, t0);
    outputs(&mut c);
    c.quit();
    let fate = Fate::NotDelivered(Reason::ClosedByFriend);
    assert_eq!(outputs(&mut c), [settled(0..2, fate)]);
    assert!(c.is_done());
    assert_eq!(c.send(batch("a/2\n", 1), t0), None);
    let (why, first) = (Rejection::Quitting, true);
    assert_eq!(
        outputs(&mut c),
        [Output::Rejected {
            count: 1,
            why,
            first
        }]
    );
    c.send(batch("a/3\n", 1), t0);
    let first = false;
    let rejected = Output::Rejected {
        count: 1,
        why,
        first,
    };
    assert_eq!(outputs(&mut c), [rejected]);
    // The count of what was refused while quitting is told once, at the end.
    c.finish();
    assert_eq!(outputs(&mut c), [Output::RefusedRun { count: 2, why }]);
    assert_eq!(c.tally().failed, 4);
}

#[test]
fn abandoning_settles_written_as_maybe_lost_and_the_rest_as_not_delivered() {
    let t0 = Instant::now();
    let mut c = open_with(1, t0);
    c.send(batch("a/1\n", 1), t0);
    c.take_chunk(t0).unwrap(); // taken, not written
    c.send(batch("a/2\n", 1), t0);
    c.abandon();
    let q = Reason::Quitting;
    assert_eq!(
        outputs(&mut c),
        [
            settled(0..1, Fate::MaybeLost(q.clone())),
            settled(1..2, Fate::NotDelivered(q.clone())),
            settled(2..3, Fate::NotDelivered(q)),
        ]
    );
    assert!(c.is_done());
}

/// xorshift64: a failing case replays from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One conversation in a simulated world: a driver, a network and a friend whose program
/// may confirm or not, freeze, restart, and whose network may break.
struct World {
    c: Conversation,
    now: Instant,
    rng: Rng,
    typed: u64,
    rejected: usize,
    connecting: bool,
    open: bool,
    half_closed: bool,
    /// Taken by the driver, not yet written; written, not yet at their kernel; at their
    /// kernel, not yet read by their program.
    unwritten: Vec<u8>,
    network: Vec<u8>,
    kernel: Vec<u8>,
    /// Their program: does it confirm, is it frozen, what it showed, what it owes us.
    confirms: bool,
    frozen: bool,
    partial: Vec<u8>,
    shown: Vec<u64>,
    acks: Vec<u8>,
    fates: Vec<(Range<u64>, Fate)>,
    revised: Vec<(Range<u64>, Fate)>,
}

impl World {
    fn new(seed: u64) -> World {
        let mut limits = limits();
        limits.idle = 10 * S;
        let mut rng = Rng(seed | 1);
        let confirms = rng.chance(50);
        World {
            c: Conversation::new(limits),
            now: Instant::now(),
            rng,
            typed: 0,
            rejected: 0,
            connecting: false,
            open: false,
            half_closed: false,
            unwritten: Vec::new(),
            network: Vec::new(),
            kernel: Vec::new(),
            confirms,
            frozen: false,
            partial: Vec::new(),
            shown: Vec::new(),
            acks: Vec::new(),
            fates: Vec::new(),
            revised: Vec::new(),
        }
    }

    /// Carries out what the model asks, and records what it reports.
    fn drive(&mut self) {
        while let Some(output) = self.c.poll_output() {
            match output {
                Output::Connect => self.connecting = true,
                Output::HalfClose => self.half_closed = true,
                // A graceful close: what their kernel holds or will get is still read.
                Output::Close => {
                    let unsent = self.unwritten.len() as u64;
                    self.unwritten.clear();
                    let network = std::mem::take(&mut self.network);
                    self.kernel.extend(network);
                    self.end_connection(unsent, None);
                }
                Output::AskUnacked => self.c.unacked(self.network.len(), self.now),
                Output::Settled { ids, fate } => self.fates.push((ids, fate)),
                Output::Revised { ids, fate } => self.revised.push((ids, fate)),
                Output::Rejected { count, .. } => self.rejected += count,
                _ => {}
            }
        }
    }

    fn end_connection(&mut self, unsent: u64, reason: Option<Reason>) {
        self.open = false;
        self.half_closed = false;
        // Their program reads what its kernel holds some time, but its confirmations
        // have nowhere to go.
        self.read(usize::MAX);
        self.kernel.clear();
        self.partial.clear();
        self.acks.clear();
        self.c.ended(unsent, reason, self.now);
    }

    /// Their program reads up to `n` bytes and shows (or drops) each whole frame.
    fn read(&mut self, n: usize) {
        let n = n.min(self.kernel.len());
        for byte in self.kernel.drain(..n) {
            if byte != b'\n' {
                self.partial.push(byte);
                continue;
            }
            let text = String::from_utf8(std::mem::take(&mut self.partial)).unwrap();
            let id: u64 = text.strip_prefix("a/").unwrap().parse().unwrap();
            // One in ten is dropped (their table does not know us): not shown.
            let dropped = self.rng.chance(10);
            if !dropped {
                self.shown.push(id);
            }
            if self.confirms {
                self.acks
                    .push(if dropped { ACK_DROPPED } else { ACK_SHOWN });
            }
        }
    }

    fn step(&mut self) {
        match self.rng.below(14) {
            0 | 1 => {
                let k = 1 + self.rng.below(3);
                let mut frames = String::new();
                for id in self.typed..self.typed + k {
                    frames.push_str(&format!("a/{id}\n"));
                }
                if let Some(ids) = self.c.send(batch(&frames, k as usize), self.now) {
                    assert_eq!(ids, self.typed..self.typed + k);
                    self.typed += k;
                }
            }
            2 => {
                self.now += Duration::from_millis(self.rng.below(8000));
                self.c.tick(self.now);
            }
            3 if self.connecting => {
                self.connecting = false;
                if self.rng.chance(70) {
                    self.open = true;
                    self.c.connected(self.now);
                } else {
                    self.c
                        .connect_failed(Reason::Broken("refused".into()), self.now);
                }
            }
            4 if self.open => {
                while self.unwritten.len() < 200 {
                    let Some(chunk) = self.c.take_chunk(self.now) else {
                        break;
                    };
                    self.unwritten.extend(chunk.frames);
                }
                let n = self.rng.below(self.unwritten.len() as u64 + 1) as usize;
                self.network.extend(self.unwritten.drain(..n));
                self.c.wrote(n, self.now);
            }
            5 if self.open => {
                let n = self.rng.below(self.network.len() as u64 + 1) as usize;
                self.kernel.extend(self.network.drain(..n));
            }
            6 if self.open && !self.frozen => {
                let n = self.rng.below(64) as usize;
                self.read(n);
                let n = self.rng.below(self.acks.len() as u64 + 1) as usize;
                let acks: Vec<u8> = self.acks.drain(..n).collect();
                self.c.confirmations(&acks, self.now);
                // After our half-close, their end comes once they have read everything.
                let read_all = self.network.is_empty() && self.kernel.is_empty();
                if self.half_closed && read_all && self.acks.is_empty() {
                    self.end_connection(0, None);
                }
            }
            7 if self.rng.chance(20) => self.frozen = !self.frozen,
            8 if self.open && self.rng.chance(10) => {
                // The connection breaks; the tail of what is on its way was never sent.
                let never_sent = self.rng.below(self.network.len() as u64 + 1) as usize;
                self.network.truncate(self.network.len() - never_sent);
                let unsent = (self.unwritten.len() + never_sent) as u64;
                self.unwritten.clear();
                self.kernel.append(&mut self.network);
                self.end_connection(unsent, Some(Reason::Broken("reset".into())));
            }
            9 if !self.open && !self.connecting => self.confirms = self.rng.chance(50),
            10 => self.c.heard(self.now),
            // The network and their program keep up most of the time.
            11..=13 if self.open => {
                self.kernel.append(&mut self.network);
                if !self.frozen {
                    self.read(usize::MAX);
                    let acks = std::mem::take(&mut self.acks);
                    self.c.confirmations(&acks, self.now);
                }
            }
            _ => {}
        }
        self.drive();
    }

    /// Quits, lets the world run until every message has its fate (or gives up on it).
    fn finish(&mut self) {
        self.c.quit();
        self.drive();
        for round in 0..2000 {
            if self.c.is_done() {
                return;
            }
            if round == 1000 {
                self.frozen = false;
            }
            self.step();
        }
        self.c.abandon();
        self.drive();
    }

    fn check(&self, seed: u64) {
        let fate_of = |id: u64| {
            let (_, fate) = self.fates.iter().find(|(r, _)| r.contains(&id)).unwrap();
            fate
        };
        // Every message queued has exactly one fate, given in the order typed.
        let mut next = 0;
        for (ids, _) in &self.fates {
            assert_eq!(ids.start, next, "seed {seed}: fates {:?}", self.fates);
            next = ids.end;
        }
        assert_eq!(next, self.typed, "seed {seed}");
        // Shown once each, in the order typed: nothing resent was ever shown before.
        assert!(
            self.shown.windows(2).all(|w| w[0] < w[1]),
            "seed {seed}: shown {:?}",
            self.shown
        );
        for &id in &self.shown {
            let fate = fate_of(id);
            assert!(
                !matches!(fate, Fate::NotDelivered(_) | Fate::Refused),
                "seed {seed}: {id} was shown, but {fate:?}"
            );
        }
        for (ids, fate) in &self.fates {
            if *fate == Fate::Delivered {
                assert!(
                    ids.clone().all(|id| self.shown.contains(&id)),
                    "seed {seed}"
                );
            }
        }
        // A revision changes a fate of sent, once, to what their program did.
        for (ids, fate) in &self.revised {
            for id in ids.clone() {
                assert_eq!(*fate_of(id), Fate::Sent, "seed {seed}");
                assert_eq!(
                    *fate == Fate::Delivered,
                    self.shown.contains(&id),
                    "seed {seed}"
                );
                let times = self.revised.iter().filter(|(r, _)| r.contains(&id)).count();
                assert_eq!(times, 1, "seed {seed}: {id} revised twice");
            }
        }
        let t = self.c.tally();
        let all = self.typed as usize + self.rejected;
        assert_eq!(t.delivered + t.sent + t.failed, all, "seed {seed}");
    }
}

#[test]
fn in_any_sequence_of_events_every_message_ends_in_exactly_one_fate_in_order() {
    for seed in 1..=300u64 {
        let mut world = World::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for _ in 0..400 {
            world.step();
        }
        world.finish();
        world.check(seed);
    }
}

#[test]
fn a_friend_who_closes_after_our_end_without_confirming_is_classic_and_got_everything() {
    let t0 = Instant::now();
    let mut c = open_with(2, t0);
    c.tick(t0 + 30 * S);
    assert_eq!(outputs(&mut c), [Output::AskUnacked, Output::HalfClose]);
    // They read to our end of file and closed: no confirmation ever came.
    c.ended(0, None, t0 + 30 * S);
    assert_eq!(
        outputs(&mut c),
        [
            Output::Learned(Kind::Classic),
            settled(0..2, Fate::Sent),
            Output::Closed {
                reason: None,
                idle: false
            }
        ]
    );
}

#[test]
fn quitting_waits_for_a_stalled_friend_who_is_taking_bytes_again_and_not_for_one_who_is_not() {
    let t0 = Instant::now();
    let mut c = Conversation::new(limits());
    c.send(batch("a/x\n", 1), t0);
    c.tick(t0);
    c.connected(t0);
    c.take_chunk(t0).unwrap();
    for _ in 0..OUTBOX_MESSAGES {
        c.send(batch("a/x\n", 1), t0);
    }
    c.tick(t0 + 5 * S);
    outputs(&mut c);
    assert!(!c.holds_up_input(), "stalled");
    // Taking bytes again: still stalled for input (the outbox is full), but quitting waits.
    c.wrote(2, t0 + 6 * S);
    c.quit();
    assert_eq!(c.tick(t0 + 7 * S), Some(t0 + 11 * S));
    assert!(!outputs(&mut c).contains(&Output::Close));
    // No progress for the write timeout: quitting closes.
    c.tick(t0 + 11 * S);
    assert_eq!(outputs(&mut c), [Output::Close]);
}
