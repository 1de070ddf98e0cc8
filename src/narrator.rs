//! Says what the conversations report: each [`Output`] that is news becomes a log line on stderr
//! and, in a terminal, the fate in the echo of the message it is about. The dispatcher hands
//! every report here, so the words a user reads are in one place and decide nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{Level, debug, error, info, log, warn};

use crate::conversation::{
    Conversation, Fate, Kind, Limits, MAX_BACKOFF, Output, Reason, Rejection, Secs,
};
use crate::event::Typed;
use crate::logging::{NOTICE, STATE};
use crate::peers::{PeerId, PeerTable};
use crate::terminal::Screen;
use crate::terminal::echo::{self, Echoes};
use crate::terminal::term;

pub struct Narrator {
    table: Arc<PeerTable>,
    me: PeerId,
    limits: Limits,
    /// Our own messages on their way, for their echoes in a terminal.
    echoes: Echoes,
    /// Per friend: messages refused at the door that had no echo to say so, for the count.
    unechoed_refusals: Vec<usize>,
    screen: Screen,
}

impl Narrator {
    pub fn new(table: Arc<PeerTable>, me: PeerId, limits: Limits, screen: &Screen) -> Narrator {
        let echoes_len = table.len();
        let echoes = Echoes::new(echoes_len);
        Narrator {
            table,
            me,
            limits,
            echoes,
            unechoed_refusals: vec![0; echoes_len],
            screen: screen.clone(),
        }
    }

    /// A message was typed in a terminal: its echo follows it. `ids`: the id each recipient's
    /// model gave it, or `None` where it was refused at the door.
    pub fn typed(&mut self, typed: Typed, ids: &[Option<u64>], now: Instant) {
        self.echoes.typed(typed, ids, now);
    }

    /// Prints the echoes that are due; returns when the next one will be.
    pub fn print_echoes(&mut self, now: Instant) -> Option<Instant> {
        let table = &self.table;
        // Stamped with the time they are printed, so the transcript reads in time order.
        let at = term::local_hh_mm();
        for line in self.echoes.lines(now, &at, |id| table.get(id).name.clone()) {
            self.screen.above(format!("{line}\n").as_bytes());
        }
        self.echoes.next_due()
    }

    /// A friend's name as `/peers` shows it: ours is marked.
    pub fn name_of(&self, id: PeerId) -> String {
        match id == self.me {
            true => format!("{} (you)", self.table.get(id).name),
            false => self.table.get(id).name.clone(),
        }
    }

    /// A friend spoke to us for the first time in this run.
    pub fn online(&self, peer: PeerId) {
        if peer != self.me {
            info!(target: NOTICE, "{} is online", self.table.get(peer).name);
        }
    }

    /// Input stops being taken: this friend is reachable and their outbox is full.
    pub fn input_waits(&self, peer: PeerId, talk: &Conversation) {
        let who = &self.table.get(peer).name;
        let bound = talk.outbox_bound();
        debug!(target: STATE, "{who}'s outbox is full ({bound}): input waits until they take more");
    }

    /// The idle close begins: the model half-closes exactly `idle` after the last byte written.
    pub fn closing_idle(&self, peer: PeerId, idle: Duration) {
        let name = &self.table.get(peer).name;
        info!("closing idle connection to {name} after {}", Secs(idle));
    }

    /// We gave up on a friend whose kernel answers: they may yet read what we sent.
    pub fn kept_for_reading(&self, peer: PeerId) {
        let name = &self.table.get(peer).name;
        info!(
            "{name}'s machine answers, but {name} reads nothing: the connection stays open for \
             them to read what we sent, for as long as their machine answers, and messages typed \
             since wait behind it"
        );
    }

    /// Says what a friend's model reported.
    pub fn tell(&mut self, peer: PeerId, output: &Output, talk: &Conversation, quitting: bool) {
        let who = self.table.get(peer);
        if let Output::Closed { .. } = output {
            // No confirmation can come now: the fates echoed so far are final.
            self.echoes.connection_ended(peer);
        }
        match output {
            Output::Settled { ids, fate } => {
                let all = (ids.end - ids.start) as usize;
                debug!(target: FATE, "{all} message(s) to {}: {}", who.name, fate_word(fate));
                // In a terminal the echo of each message says its fate: the report is only for
                // messages that have no echo (all of them, with a pipe).
                let revisable = talk.may_revise(ids);
                let n = all
                    - self
                        .echoes
                        .settle(peer, ids.clone(), &echo_fate(fate), revisable);
                match fate {
                    _ if n == 0 => {}
                    Fate::Delivered | Fate::Sent => {}
                    Fate::Refused => error!(
                        "{n} message(s) to {who} not delivered: their p2p-chat dropped them \
                         (does their peer table have an entry for {}?)",
                        self.table.get(self.me).name
                    ),
                    Fate::MaybeLost(reason) => {
                        error!("{n} message(s) to {who} may not have arrived: {reason}")
                    }
                    Fate::NotDelivered(reason) if quitting => error!(
                        "{n} message(s) to {who} not delivered: quitting before they could take \
                         them ({reason})"
                    ),
                    Fate::NotDelivered(reason) => {
                        error!("{n} message(s) to {who} not delivered: {reason}")
                    }
                }
                if talk.is_settled() {
                    let t = talk.tally();
                    debug!(
                        target: STATE,
                        "all {} message(s) to {} settled: {} delivered, {} sent, {} failed",
                        t.delivered + t.sent + t.failed,
                        who.name,
                        t.delivered,
                        t.sent,
                        t.failed
                    );
                }
            }
            Output::Revised { ids, was, fate } => {
                let what = match fate {
                    Fate::Delivered => "delivered",
                    _ => "dropped by their p2p-chat",
                };
                let counted = match was {
                    Fate::Sent => "counted as sent",
                    _ => "reported as possibly lost",
                };
                // In a terminal each echo is printed again with its new fate; a notice tells of
                // the rest (all of them, with a pipe).
                let all = (ids.end - ids.start) as usize;
                let n = all
                    - self
                        .echoes
                        .settle(peer, ids.clone(), &echo_fate(fate), false);
                if n > 0 {
                    info!(
                        target: NOTICE,
                        "{n} message(s) to {who} {counted} were confirmed after all: {what}"
                    );
                }
            }
            Output::Rejected { count, why, first } => {
                let reason = match why {
                    Rejection::OutboxFull => "their outbox is full",
                    Rejection::Quitting => "you are quitting",
                };
                let fate = echo::Fate::NotDelivered(reason.to_string());
                let echoed = self.echoes.refused(peer, *count, &fate);
                self.unechoed_refusals[peer.0] += count - echoed;
                if why == &Rejection::OutboxFull && *first && echoed < *count {
                    error!(
                        "{}'s outbox is full ({} messages wait while they cannot be reached or \
                         take nothing): new messages to {who} are refused; the count follows \
                         when they are back",
                        who.name,
                        talk.waiting()
                    );
                }
            }
            Output::RefusedRun { count, why } => {
                let reason = match why {
                    Rejection::OutboxFull => "refused while their outbox was full",
                    Rejection::Quitting => "you are quitting",
                };
                // Those with an echo have said so there.
                let unechoed = std::mem::take(&mut self.unechoed_refusals[peer.0]).min(*count);
                if unechoed > 0 {
                    error!("{unechoed} message(s) to {who} not delivered: {reason}");
                }
            }
            Output::Waiting { ids, reason, first } => {
                let n = ids.end - ids.start;
                debug!(target: FATE, "{n} message(s) to {}: held", who.name);
                let fate = echo::Fate::Waiting(reason.short());
                self.echoes.settle(peer, ids.clone(), &fate, false);
                if *first {
                    // In a terminal the echo of each message already says it waits, and why.
                    let level = match self.screen.is_terminal() {
                        true => Level::Info,
                        false => Level::Warn,
                    };
                    log!(
                        level,
                        "{} message(s) to {who} wait in their outbox: {reason}; trying again every \
                         {:.0} s at most, and at once when they connect to us",
                        talk.waiting(),
                        MAX_BACKOFF.as_secs_f64()
                    );
                }
            }
            Output::Unconfirmed { count, silent } => {
                let fate = echo::Fate::Waiting("unconfirmed, still trying".to_string());
                if self.echoes.all(peer, &fate) >= *count {
                    return; // their echoes say so
                }
                warn!(
                    "{} has confirmed nothing for {}: {count} message(s) unconfirmed, still \
                     trying for up to {} (--give-up)",
                    who.name,
                    Secs(*silent),
                    Secs(self.limits.give_up)
                );
            }
            Output::Learned(Kind::Confirms) => {
                info!("{}'s p2p-chat confirms the messages it shows", who.name)
            }
            Output::Learned(Kind::Classic) => info!(
                "{}'s program does not confirm: messages to them count as sent once written",
                who.name
            ),
            Output::Learned(Kind::Unknown) => {}
            Output::Reachable => info!(target: NOTICE, "{who} can be reached again"),
            Output::Stalled => warn!(
                "{} has taken none of our bytes for {} (--write-timeout): stalled or frozen; \
                 nobody else's input waits for them",
                who.name,
                Secs(self.limits.write)
            ),
            Output::Closed { reason: None, .. } => {
                debug!(target: STATE, "connection to {} closed", who.name)
            }
            Output::Closed {
                reason: Some(Reason::ClosedByFriend),
                idle: true,
            } => info!("{} closed our idle connection to them", who.name),
            Output::Closed {
                reason: Some(reason),
                ..
            } => info!("our connection to {} ended: {reason}", who.name),
            Output::Connect
            | Output::HalfClose { .. }
            | Output::Close { .. }
            | Output::AskUnacked => {}
        }
    }
}

/// The log target of a debug line for every fate decided (and every message held): what the
/// demo's sequence diagram reads.
pub const FATE: &str = "fate";

/// A fate in one or a few words, for the `fate` debug lines.
fn fate_word(fate: &Fate) -> &'static str {
    match fate {
        Fate::Delivered => "delivered",
        Fate::Sent => "sent",
        Fate::Refused => "refused",
        Fate::MaybeLost(_) => "may not have arrived",
        Fate::NotDelivered(_) => "not delivered",
    }
}

/// A model's fate as the echo of a message says it.
fn echo_fate(fate: &Fate) -> echo::Fate {
    match fate {
        Fate::Delivered => echo::Fate::Delivered,
        Fate::Sent => echo::Fate::Sent,
        Fate::Refused => echo::Fate::NotDelivered("their p2p-chat dropped it".to_string()),
        Fate::MaybeLost(reason) => echo::Fate::MaybeLost(reason.short()),
        Fate::NotDelivered(reason) => echo::Fate::NotDelivered(reason.short()),
    }
}
