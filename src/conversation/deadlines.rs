//! Every deadline of a conversation, in one place: time is an argument, so each rule is tested
//! with made-up instants, and a driver waits for exactly the instant [`Conversation::tick`]
//! returns, with no polling tick.

use std::time::{Duration, Instant};

use super::outbox::Flight;
use super::{Conn, Conversation, GivingUp, Kind, Output, Reason};

/// The time limits (the command line's options make them: `cli::Options::limits`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Half-close a connection this long after the last message was written.
    pub idle: Duration,
    /// A friend who confirms and has confirmed nothing for this long gets a warning; a friend
    /// who never has, whose kernel took all our bytes this long ago, does not confirm.
    pub ack: Duration,
    /// Give up on a connection that has confirmed nothing for this long.
    pub give_up: Duration,
    /// How long a friend's machine has to answer (`--connect-timeout`): a connection, and the
    /// keepalive probes of one kept for a frozen friend.
    pub connect: Duration,
    /// A connection that took none of our bytes for this long is stalled.
    pub write: Duration,
}

impl Limits {
    /// How long quitting waits for the links before it reports what they still hold: a connect,
    /// a write and a confirmation's time, and a second more.
    pub fn quit_wait(&self) -> Duration {
        self.connect + self.write + self.ack + Duration::from_secs(1)
    }
}

impl Conversation {
    /// Time has passed: acts on every deadline that is due at `now` and returns the next one.
    pub fn tick(&mut self, now: Instant) -> Option<Instant> {
        let limits = self.limits;
        let mut next = Next::default();
        match &mut self.conn {
            Conn::Connecting => {}
            Conn::Down => {
                // Quitting too: a quit empties the outbox of a friend found unreachable, so
                // what is left here waits for a friend not tried yet.
                if self.outbox.messages > 0 {
                    match &self.outage {
                        Some(outage) if outage.retry_at > now => next.at(outage.retry_at),
                        _ => {
                            self.conn = Conn::Connecting;
                            self.outputs.push_back(Output::Connect);
                        }
                    }
                }
            }
            Conn::Open(link) if link.closing.is_some() => {}
            Conn::Open(link) => {
                let unconfirmed: usize = self.flight.iter().map(Flight::count).sum();
                let waiting = link.written < link.handed || self.outbox.messages > 0;
                if waiting && link.half_closed_at.is_none() && !link.stalled {
                    let at = link.progress + limits.write;
                    if next.due(at, now) {
                        link.stalled = true;
                        self.outputs.push_back(Output::Stalled);
                    }
                }
                // Quitting does not wait for a friend who is taking nothing now.
                if waiting && self.quitting && next.due(link.progress + limits.write, now) {
                    link.closing = Some(Some(Reason::Stalled(limits.write)));
                    self.outputs.push_back(Output::Close { give_up: false });
                    return None;
                }
                // Silence counts from the last confirmation or the oldest unconfirmed write.
                let oldest = self.flight.front().and_then(|f| f.written_at);
                let silent_since = oldest.map(|t| link.confirmed_at.map_or(t, |c| c.max(t)));
                if let Some(since) = silent_since.filter(|_| self.kind != Kind::Classic) {
                    // Giving up asks the kernel first (`give_up` acts on its answer); with no
                    // answer, it closes.
                    if next.due(since + limits.give_up, now) {
                        let asked = match link.giving_up {
                            GivingUp::Asked(at) => at,
                            _ => {
                                link.giving_up = GivingUp::Asked(now);
                                self.outputs.push_back(Output::AskUnacked);
                                now
                            }
                        };
                        if next.due(asked + limits.ack, now) {
                            link.closing = Some(Some(Reason::GaveUp(limits.give_up)));
                            self.outputs.push_back(Output::Close { give_up: true });
                            return None;
                        }
                    }
                    if self.kind == Kind::Confirms
                        && !link.warned
                        && next.due(since + limits.ack, now)
                    {
                        link.warned = true;
                        let silent = now.saturating_duration_since(since);
                        let count = unconfirmed;
                        self.outputs
                            .push_back(Output::Unconfirmed { count, silent });
                    }
                    if self.kind == Kind::Unknown && link.written == link.handed {
                        let asked = link.asked_at.map_or(since, |a| a.max(since));
                        if next.due(asked + limits.ack, now) {
                            link.asked_at = Some(now);
                            self.outputs.push_back(Output::AskUnacked);
                        }
                    }
                }
                let all_written = link.written == link.handed && self.outbox.messages == 0;
                match link.half_closed_at {
                    None if all_written => {
                        let at = match self.quitting && unconfirmed == 0 {
                            true => now,
                            false => link.last_sent + limits.idle,
                        };
                        if next.due(at, now) {
                            link.half_closed_at = Some(now);
                            self.outputs.push_back(Output::HalfClose { kept: false });
                        }
                    }
                    Some(half) if unconfirmed == 0 => {
                        // Their end normally comes at once; do not wait for it forever. A frozen
                        // friend we gave up on reads what they hold when they resume, however
                        // long that takes (the kernel's keepalive probes end the connection if
                        // their machine is gone), but a quit does not wait for them.
                        let give_up = link.giving_up == GivingUp::Kept;
                        let at = match () {
                            _ if !give_up => Some(half + limits.ack),
                            _ if self.quitting => Some(now),
                            _ => None,
                        };
                        if at.is_some_and(|at| next.due(at, now)) {
                            link.closing = Some(None);
                            self.outputs.push_back(Output::Close { give_up });
                        }
                    }
                    _ => {}
                }
            }
        }
        next.0
    }
}

/// The earlier of two deadlines, either of which may be none.
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The earliest of some deadlines.
#[derive(Default)]
struct Next(Option<Instant>);

impl Next {
    fn at(&mut self, at: Instant) {
        self.0 = earliest(self.0, Some(at));
    }

    /// Whether `at` is due at `now`; if not, it becomes a candidate for the next deadline.
    fn due(&mut self, at: Instant, now: Instant) -> bool {
        if at <= now {
            return true;
        }
        self.at(at);
        false
    }
}
