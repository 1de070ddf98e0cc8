//! The property the model exists for: in any sequence of events, every message typed ends in
//! exactly one fate, once, and per friend in the order typed. A simulated driver, network and
//! friend produce the events; a failing case replays from its seed.

use super::*;

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
    /// Each revision: the ids, the fate they had, the fate they have now.
    revised: Vec<(Range<u64>, Fate, Fate)>,
}

impl World {
    fn new(seed: u64) -> World {
        let mut limits = limits();
        limits.idle = 10 * S;
        // Near its least (twice the ack timeout), so that giving up on a frozen friend, and
        // their confirmations after it, come up in a few hundred worlds.
        limits.give_up = 12 * S;
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
                Output::HalfClose { .. } => self.half_closed = true,
                // A graceful close: what their kernel holds is still read, and what is on its
                // way gets there too, unless we give up on it (our kernel drops it).
                Output::Close { give_up } => {
                    let unsent = self.unwritten.len() as u64;
                    self.unwritten.clear();
                    let network = std::mem::take(&mut self.network);
                    if !give_up {
                        self.kernel.extend(network);
                    }
                    self.end_connection(unsent, None);
                }
                Output::AskUnacked => {
                    // A frozen friend's kernel answers with its window closed: bytes of ours
                    // it has not taken are still ours to send, once they read.
                    let answering = self.frozen && !self.network.is_empty();
                    self.c.unacked(self.network.len(), answering, self.now)
                }
                Output::Settled { ids, fate } => self.fates.push((ids, fate)),
                Output::Revised { ids, was, fate } => self.revised.push((ids, was, fate)),
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
        // A revision changes a fate of sent or given up on, once, to what their program did.
        for (ids, was, fate) in &self.revised {
            for id in ids.clone() {
                assert_eq!(fate_of(id), was, "seed {seed}");
                assert!(
                    matches!(was, Fate::Sent | Fate::MaybeLost(Reason::GaveUp(_))),
                    "seed {seed}: {id} revised from {was:?}"
                );
                assert_eq!(
                    *fate == Fate::Delivered,
                    self.shown.contains(&id),
                    "seed {seed}"
                );
                let times = self
                    .revised
                    .iter()
                    .filter(|(r, ..)| r.contains(&id))
                    .count();
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
