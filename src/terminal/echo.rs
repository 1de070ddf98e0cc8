//! Your own messages in a terminal's transcript, with what became of them. Pure: the dispatcher
//! tells it what happened and when, and prints the lines it returns.
//!
//! Each typed message gets an `Echo`, found by the id each recipient's model gave the message
//! (the model decides every fate and reports it by those ids; the echo only shows it). A message
//! refused at the door gets no id: its echo waits in the friend's queue of refusals for the
//! report that says why, and those reports come in the order the messages were typed.
//!
//! An echo is printed once every recipient's fate is known (a p2p-chat friend confirms within
//! milliseconds), or [`SHOW_AFTER`] after it was typed, with the unknown ones as "sending". After
//! that, each change is printed as a line of its own: a waiting message that went out, a message
//! that was sent to a program that does not confirm. A broadcast is one line: who got it, who
//! did not, and why.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;
use std::time::{Duration, Instant};

use crate::event::Typed;
use crate::peers::PeerId;

/// How long an echo waits for its fates before it is printed anyway.
pub const SHOW_AFTER: Duration = Duration::from_millis(500);

/// What became of a message for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Their p2p-chat confirmed showing it.
    Delivered,
    /// Their machine took it; their program does not confirm.
    Sent,
    /// Held in their outbox while they cannot be reached, for this reason.
    Waiting(String),
    /// The connection died after it left; it is not sent again.
    MaybeLost(String),
    NotDelivered(String),
}

impl Fate {
    fn is_final(&self) -> bool {
        !matches!(self, Fate::Waiting(_))
    }
}

/// One typed message on its way.
#[derive(Debug)]
struct Echo {
    typed: Typed,
    typed_at: Instant,
    /// Per recipient, in `typed.to`'s order: the fate so far, and the one last printed.
    fates: Vec<(Option<Fate>, Option<Fate>)>,
    printed: bool,
    /// Recipients whose fate may still change: on the way, or counted while a late
    /// confirmation could still revise it.
    open: usize,
}

/// Every echo not yet finished, found by each recipient's message id.
#[derive(Debug)]
pub struct Echoes {
    next_id: u64,
    echoes: BTreeMap<u64, Echo>,
    /// (friend, the id their model gave the message) -> the echo, while its fate there is not
    /// final.
    on_way: BTreeMap<(PeerId, u64), u64>,
    /// Per friend: echoes of messages refused at the door, oldest first, until the report of
    /// the refusal.
    refused: Vec<VecDeque<u64>>,
}

impl Echoes {
    pub fn new(friends: usize) -> Echoes {
        Echoes {
            next_id: 0,
            echoes: BTreeMap::new(),
            on_way: BTreeMap::new(),
            refused: vec![VecDeque::new(); friends],
        }
    }

    /// A message was typed, for the friends in `typed.to`; `ids` gives, in the same order, the
    /// id each one's model gave it, or `None` if it was refused at the door.
    pub fn typed(&mut self, typed: Typed, ids: &[Option<u64>], now: Instant) {
        let id = self.next_id;
        self.next_id += 1;
        for (&friend, message) in typed.to.iter().zip(ids) {
            match message {
                Some(message) => _ = self.on_way.insert((friend, *message), id),
                None => self.refused[friend.0].push_back(id),
            }
        }
        let fates = vec![(None, None); typed.to.len()];
        let open = ids.iter().flatten().count();
        let echo = Echo {
            typed,
            typed_at: now,
            fates,
            printed: false,
            open,
        };
        self.echoes.insert(id, echo);
    }

    /// The messages to `friend` with these ids met `fate`; `revisable`: a late confirmation
    /// may still change it. Returns how many of them have an echo (messages from a pipe have
    /// none): the rest need a report of their own.
    pub fn settle(
        &mut self,
        friend: PeerId,
        ids: Range<u64>,
        fate: &Fate,
        revisable: bool,
    ) -> usize {
        let found = self.found(friend, ids, |_| true);
        self.apply(&found, friend, fate, revisable)
    }

    /// Every message to `friend` still on its way, and not yet counted, met `fate` (say,
    /// waiting for a confirmation). Returns how many have an echo.
    pub fn all(&mut self, friend: PeerId, fate: &Fate) -> usize {
        let found = self.found(friend, 0..u64::MAX, |fate| {
            !fate.is_some_and(Fate::is_final)
        });
        self.apply(&found, friend, fate, false)
    }

    fn apply(
        &mut self,
        found: &[(u64, u64)],
        friend: PeerId,
        fate: &Fate,
        revisable: bool,
    ) -> usize {
        for &(message, echo) in found {
            if fate.is_final() && !revisable {
                self.close(friend, message, echo);
            }
            self.set(echo, friend, fate.clone());
        }
        found.len()
    }

    /// The connection to `friend` ended: fates a late confirmation could have revised are final.
    pub fn connection_ended(&mut self, friend: PeerId) {
        let revisable = self.found(friend, 0..u64::MAX, |fate| fate.is_some_and(Fate::is_final));
        for (message, echo) in revisable {
            self.close(friend, message, echo);
        }
    }

    /// The messages to `friend` with these ids that have an echo and whose fate there so far
    /// passes `keep`: (message id, echo id).
    fn found(
        &self,
        friend: PeerId,
        ids: Range<u64>,
        keep: impl Fn(Option<&Fate>) -> bool,
    ) -> Vec<(u64, u64)> {
        self.on_way
            .range((friend, ids.start)..(friend, ids.end))
            .map(|(&(_, message), &echo)| (message, echo))
            .filter(|&(_, echo)| keep(self.fate(echo, friend)))
            .collect()
    }

    /// The fate of echo `id` for `friend` so far.
    fn fate(&self, id: u64, friend: PeerId) -> Option<&Fate> {
        let echo = self.echoes.get(&id)?;
        let at = echo.typed.to.iter().position(|&f| f == friend)?;
        echo.fates[at].0.as_ref()
    }

    /// The message's fate will not change again.
    fn close(&mut self, friend: PeerId, message: u64, echo: u64) {
        self.on_way.remove(&(friend, message));
        if let Some(echo) = self.echoes.get_mut(&echo) {
            echo.open -= 1;
        }
    }

    /// The `n` oldest messages to `friend` refused at the door, for the reason `fate` gives.
    /// Returns how many of them have an echo.
    pub fn refused(&mut self, friend: PeerId, n: usize, fate: &Fate) -> usize {
        let queue = &mut self.refused[friend.0];
        let ids: Vec<u64> = queue.drain(..n.min(queue.len())).collect();
        for &id in &ids {
            self.set(id, friend, fate.clone());
        }
        ids.len()
    }

    fn set(&mut self, id: u64, friend: PeerId, fate: Fate) {
        let Some(echo) = self.echoes.get_mut(&id) else {
            return;
        };
        if let Some(at) = echo.typed.to.iter().position(|&f| f == friend) {
            echo.fates[at].0 = Some(fate);
        }
    }

    /// The lines to print at `now`, in the order typed; `name` gives a friend's name. Echoes whose
    /// every fate is final and printed are forgotten.
    pub fn lines(
        &mut self,
        now: Instant,
        at: &str,
        name: impl Fn(PeerId) -> String,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        let mut done = Vec::new();
        // First lines keep the order typed: one not ready holds back the ones after it.
        let mut held = false;
        for (&id, echo) in &mut self.echoes {
            let known = echo.fates.iter().all(|(fate, _)| fate.is_some());
            let ready = known || now >= echo.typed_at + SHOW_AFTER;
            held |= !echo.printed && !ready;
            if !echo.printed && ready && !held {
                echo.printed = true;
                lines.push(line(at, &echo.typed, &echo.fates, &name, true));
                for (fate, shown) in &mut echo.fates {
                    shown.clone_from(fate);
                }
            } else if echo.printed && echo.fates.iter().any(|(fate, shown)| fate != shown) {
                lines.push(line(at, &echo.typed, &echo.fates, &name, false));
                for (fate, shown) in &mut echo.fates {
                    shown.clone_from(fate);
                }
            }
            let finished = echo.open == 0 && echo.fates.iter().all(|(fate, _)| fate.is_some());
            if echo.printed && finished {
                done.push(id);
            }
        }
        for id in done {
            self.echoes.remove(&id);
        }
        lines
    }

    /// When the oldest unprinted echo is due to be printed anyway.
    pub fn next_due(&self) -> Option<Instant> {
        self.echoes
            .values()
            .filter(|echo| !echo.printed)
            .map(|echo| echo.typed_at + SHOW_AFTER)
            .min()
    }
}

/// `16:20 [you -> bob] hi  delivered`, or for a broadcast `[you -> everyone] hi  delivered to
/// alice, bob; waiting for carol (...)`. `all` prints every recipient; otherwise only those whose
/// fate changed since the last line.
fn line(
    at: &str,
    typed: &Typed,
    fates: &[(Option<Fate>, Option<Fate>)],
    name: &impl Fn(PeerId) -> String,
    all: bool,
) -> String {
    // Recipients grouped by fate, in the order the fates first appear.
    let mut groups: Vec<(Option<Fate>, Vec<String>)> = Vec::new();
    for (friend, (fate, shown)) in typed.to.iter().zip(fates) {
        if !all && fate == shown {
            continue;
        }
        match groups.iter_mut().find(|(f, _)| f == fate) {
            Some((_, names)) => names.push(name(*friend)),
            None => groups.push((fate.clone(), vec![name(*friend)])),
        }
    }
    let broadcast = typed.everyone;
    let parts: Vec<String> = groups
        .iter()
        .map(|(fate, names)| {
            let who = names.join(", ");
            let (word, reason) = match fate {
                None => ("sending", None),
                Some(Fate::Delivered) => ("delivered", None),
                Some(Fate::Sent) => ("sent (no confirmation from their program)", None),
                Some(Fate::Waiting(r)) => ("waiting", Some(r)),
                Some(Fate::MaybeLost(r)) => ("may not have arrived", Some(r)),
                Some(Fate::NotDelivered(r)) => ("not delivered", Some(r)),
            };
            let mut part = match broadcast {
                true => format!("{word}: {who}"),
                false => word.to_string(),
            };
            if let Some(reason) = reason {
                part.push_str(&format!(" ({reason})"));
            }
            part
        })
        .collect();
    let to = match broadcast {
        true => "everyone".to_string(),
        false => typed
            .to
            .iter()
            .map(|&f| name(f))
            .collect::<Vec<_>>()
            .join(", "),
    };
    format!("{at} [you -> {to}] {}  {}", typed.text, parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(id: PeerId) -> String {
        ["alice", "bob", "carol"][id.0].to_string()
    }

    fn typed(text: &str, to: &[usize], everyone: bool) -> Typed {
        Typed {
            text: text.to_string(),
            to: to.iter().map(|&i| PeerId(i)).collect(),
            everyone,
        }
    }

    #[test]
    fn a_message_is_printed_once_its_fate_is_known_and_then_forgotten() {
        let t0 = Instant::now();
        let mut echoes = Echoes::new(3);
        echoes.typed(typed("hi", &[1], false), &[Some(0)], t0);
        echoes.typed(typed("again", &[1], false), &[Some(1)], t0);
        assert!(
            echoes.lines(t0, "16:20", name).is_empty(),
            "nothing known yet"
        );
        assert_eq!(echoes.next_due(), Some(t0 + SHOW_AFTER));
        echoes.settle(PeerId(1), 0..1, &Fate::Delivered, false);
        assert_eq!(
            echoes.lines(t0, "16:20", name),
            ["16:20 [you -> bob] hi  delivered"]
        );
        assert_eq!(echoes.echoes.len(), 1, "the delivered one is forgotten");
        // Not known in time: printed as sending, and again when it is known.
        assert_eq!(
            echoes.lines(t0 + SHOW_AFTER, "16:20", name),
            ["16:20 [you -> bob] again  sending"]
        );
        echoes.settle(PeerId(1), 1..2, &Fate::Sent, false);
        assert_eq!(
            echoes.lines(t0 + SHOW_AFTER, "16:20", name),
            ["16:20 [you -> bob] again  sent (no confirmation from their program)"]
        );
        assert!(echoes.echoes.is_empty() && echoes.next_due().is_none());
    }

    #[test]
    fn a_waiting_message_is_printed_and_printed_again_when_it_goes_out() {
        let t0 = Instant::now();
        let mut echoes = Echoes::new(3);
        echoes.typed(typed("see you", &[2], false), &[Some(7)], t0);
        echoes.settle(
            PeerId(2),
            7..8,
            &Fate::Waiting("cannot connect".to_string()),
            false,
        );
        assert_eq!(
            echoes.lines(t0, "16:20", name),
            ["16:20 [you -> carol] see you  waiting (cannot connect)"]
        );
        echoes.settle(PeerId(2), 7..8, &Fate::Delivered, false);
        assert_eq!(
            echoes.lines(t0, "16:20", name),
            ["16:20 [you -> carol] see you  delivered"]
        );
        assert!(echoes.echoes.is_empty());
    }

    #[test]
    fn a_fate_a_late_confirmation_revises_is_printed_again_until_the_connection_ends() {
        let t0 = Instant::now();
        let mut echoes = Echoes::new(3);
        echoes.typed(typed("frozen?", &[1], false), &[Some(0)], t0);
        echoes.typed(typed("still?", &[1], false), &[Some(1)], t0);
        let lost = Fate::MaybeLost("frozen or gone".to_string());
        echoes.settle(PeerId(1), 0..2, &lost, true);
        assert_eq!(
            echoes.lines(t0, "16:20", name),
            [
                "16:20 [you -> bob] frozen?  may not have arrived (frozen or gone)",
                "16:20 [you -> bob] still?  may not have arrived (frozen or gone)"
            ]
        );
        // A warning about messages on their way leaves counted ones alone.
        let waiting = Fate::Waiting("unconfirmed".to_string());
        assert_eq!(echoes.all(PeerId(1), &waiting), 0);
        // The first is confirmed after all: printed again, then forgotten.
        echoes.settle(PeerId(1), 0..1, &Fate::Delivered, false);
        assert_eq!(
            echoes.lines(t0, "16:20", name),
            ["16:20 [you -> bob] frozen?  delivered"]
        );
        assert_eq!(echoes.echoes.len(), 1);
        // The connection ends: the second's fate is final, and it is forgotten.
        echoes.connection_ended(PeerId(1));
        assert!(echoes.lines(t0, "16:20", name).is_empty());
        assert!(echoes.echoes.is_empty() && echoes.on_way.is_empty());
    }

    #[test]
    fn a_broadcast_is_one_line_saying_who_got_it_and_who_did_not() {
        let t0 = Instant::now();
        let mut echoes = Echoes::new(3);
        // Each friend's model numbers its own messages.
        echoes.typed(
            typed("hello all", &[0, 1, 2], true),
            &[Some(3), Some(0), Some(5)],
            t0,
        );
        echoes.settle(PeerId(0), 3..4, &Fate::Delivered, false);
        echoes.settle(PeerId(1), 0..1, &Fate::Delivered, false);
        echoes.all(PeerId(2), &Fate::Waiting("offline".to_string()));
        assert_eq!(
            echoes.lines(t0, "16:20", name),
            ["16:20 [you -> everyone] hello all  delivered: alice, bob; waiting: carol (offline)"]
        );
        echoes.all(PeerId(2), &Fate::NotDelivered("quitting".to_string()));
        assert_eq!(
            echoes.lines(t0, "16:20", name),
            ["16:20 [you -> everyone] hello all  not delivered: carol (quitting)"]
        );
    }

    #[test]
    fn a_message_whose_fate_is_known_waits_for_the_ones_typed_before_it() {
        let t0 = Instant::now();
        let mut echoes = Echoes::new(3);
        echoes.typed(typed("to bob", &[1], false), &[Some(0)], t0);
        echoes.typed(typed("to carol", &[2], false), &[Some(0)], t0);
        echoes.all(PeerId(2), &Fate::Waiting("offline".to_string()));
        assert!(
            echoes.lines(t0, "16:20", name).is_empty(),
            "bob's comes first"
        );
        echoes.settle(PeerId(1), 0..1, &Fate::Delivered, false);
        assert_eq!(
            echoes.lines(t0, "16:20", name),
            [
                "16:20 [you -> bob] to bob  delivered",
                "16:20 [you -> carol] to carol  waiting (offline)"
            ]
        );
    }

    #[test]
    fn fates_find_their_messages_by_id_and_refusals_by_order() {
        let t0 = Instant::now();
        let mut echoes = Echoes::new(3);
        echoes.typed(typed("1", &[1], false), &[Some(0)], t0);
        echoes.typed(typed("2", &[1], false), &[Some(1)], t0);
        echoes.typed(typed("3", &[1], false), &[None], t0);
        echoes.typed(typed("4", &[1], false), &[None], t0);
        // Settled out of the order typed: each finds its own message.
        echoes.settle(PeerId(1), 1..2, &Fate::Delivered, false);
        echoes.settle(
            PeerId(1),
            0..1,
            &Fate::MaybeLost("frozen".to_string()),
            false,
        );
        // Ids of another friend, or of messages already settled, find nothing.
        assert_eq!(echoes.settle(PeerId(2), 0..2, &Fate::Delivered, false), 0);
        assert_eq!(echoes.settle(PeerId(1), 0..2, &Fate::Sent, false), 0);
        let full = Fate::NotDelivered("outbox full".to_string());
        assert_eq!(echoes.refused(PeerId(1), 1, &full), 1);
        let quitting = Fate::NotDelivered("quitting".to_string());
        assert_eq!(echoes.refused(PeerId(1), 5, &quitting), 1);
        assert_eq!(
            echoes.lines(t0, "16:20", name),
            [
                "16:20 [you -> bob] 1  may not have arrived (frozen)",
                "16:20 [you -> bob] 2  delivered",
                "16:20 [you -> bob] 3  not delivered (outbox full)",
                "16:20 [you -> bob] 4  not delivered (quitting)"
            ]
        );
        assert!(echoes.echoes.is_empty() && echoes.on_way.is_empty());
    }
}
