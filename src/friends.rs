//! Every friend's [`Conversation`], and what the user is told about them: the model both
//! programs drive. p2p-chat's dispatcher holds one and carries its actions out with link threads;
//! p2p-chat-select's loop holds one and carries them out with non-blocking sockets. Neither
//! decides anything about a message: they move events in ([`Friends::talk`] gives the friend's
//! model), and take actions out ([`Friends::next_action`]), while the reports are said by the
//! [`Narrator`] on the way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::conversation::{Conversation, Limits, Output, earliest};
use crate::event::{Batch, Typed};
use crate::inbound::Inbound;
use crate::narrator::Narrator;
use crate::peers::{PeerId, PeerTable};
use crate::roster;
use crate::sendq::Closing;
use crate::terminal::Screen;
use crate::terminal::term;

/// What a model asks of its driver: the outputs that need I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open a connection, then tell the model `connected` or `connect_failed`.
    Connect,
    /// Shut down the writing side of the connection, as `Closing` says.
    HalfClose(Closing),
    /// Close the connection gracefully, as `Closing` says, then tell the model `ended`.
    Close(Closing),
    /// Ask the kernel how many written bytes the friend's kernel has not acknowledged, and tell
    /// the model `unacked`.
    AskUnacked,
}

pub struct Friends {
    table: Arc<PeerTable>,
    limits: Limits,
    talks: Vec<Conversation>,
    last_heard: Vec<Option<Instant>>,
    narrator: Narrator,
    /// Set when the quit begins: by then every message has its fate, delivered or not.
    quit_by: Option<Instant>,
    /// Input waits for a friend: said once each time it starts.
    input_held: bool,
}

impl Friends {
    pub fn new(table: Arc<PeerTable>, me: PeerId, limits: Limits, screen: &Screen) -> Friends {
        Friends {
            talks: table.ids().map(|_| Conversation::new(limits)).collect(),
            last_heard: vec![None; table.len()],
            narrator: Narrator::new(table.clone(), me, limits, screen),
            table,
            limits,
            quit_by: None,
            input_held: false,
        }
    }

    /// A friend's model, to give it an event.
    pub fn talk(&mut self, peer: PeerId) -> &mut Conversation {
        &mut self.talks[peer.0]
    }

    /// A friend's model, to read.
    pub fn get(&self, peer: PeerId) -> &Conversation {
        &self.talks[peer.0]
    }

    /// The next thing a friend's model asks of the driver, saying every report before it.
    /// Call it until `None` after each event given to that model.
    pub fn next_action(&mut self, peer: PeerId) -> Option<Action> {
        while let Some(output) = self.talks[peer.0].poll_output() {
            let action = match output {
                Output::Connect => Action::Connect,
                Output::HalfClose { kept: true } => {
                    self.narrator.kept_for_reading(peer);
                    let answer = self.limits.connect;
                    Action::HalfClose(Closing::Kept { answer })
                }
                Output::HalfClose { kept: false } => {
                    if self.quit_by.is_none() {
                        self.narrator.closing_idle(peer, self.limits.idle);
                    }
                    Action::HalfClose(Closing::Done)
                }
                Output::Close { give_up: true } => Action::Close(Closing::GiveUp),
                Output::Close { give_up: false } => Action::Close(Closing::Done),
                Output::AskUnacked => Action::AskUnacked,
                report => {
                    let talk = &self.talks[peer.0];
                    let quitting = self.quit_by.is_some();
                    self.narrator.tell(peer, &report, talk, quitting);
                    continue;
                }
            };
            return Some(action);
        }
        None
    }

    /// Lets every model act on what is due at `now`; a quit that has waited its time gives up
    /// on what is left ([`Friends::abandon`]). Returns the earliest next deadline; then the
    /// driver takes each friend's actions, and calls [`Friends::print_echoes`].
    pub fn tick(&mut self, now: Instant) -> Option<Instant> {
        if self.quit_by.is_some_and(|by| now >= by) && !self.all_done() {
            self.abandon(now);
        }
        let mut next = self.quit_by.filter(|&by| by > now);
        for talk in &mut self.talks {
            next = earliest(next, talk.tick(now));
        }
        next
    }

    /// Prints the echoes due, with every fate said so far; returns when the next is due. The
    /// drivers call it once a turn, after the actions.
    pub fn print_echoes(&mut self, now: Instant) -> Option<Instant> {
        self.narrator.print_echoes(now)
    }

    /// Whether to take input now: not while a reachable friend's outbox is full (they are
    /// taking bytes and will catch up or stall), except when quitting, when what comes is
    /// reported as not delivered.
    pub fn take_input(&mut self) -> bool {
        let holding = self.talks.iter().position(Conversation::holds_up_input);
        if let Some(index) = holding.filter(|_| !self.input_held) {
            self.narrator.input_waits(PeerId(index), &self.talks[index]);
        }
        self.input_held = holding.is_some();
        self.quit_by.is_some() || !self.input_held
    }

    /// Messages typed: each batch goes to its friend's model; in a terminal, each message's
    /// echo follows it. The driver then takes each friend's actions.
    pub fn send(&mut self, batches: Vec<(PeerId, Batch)>, typed: Vec<Typed>, now: Instant) {
        // Per friend, the id the model gives the next of these messages; none if it refused them.
        let mut next: Vec<Option<u64>> = vec![None; self.talks.len()];
        for (peer, batch) in batches {
            next[peer.0] = self.talks[peer.0].send(batch, now).map(|ids| ids.start);
        }
        // The typed messages come in the order of each friend's batch: their echoes follow the ids.
        for typed in typed {
            let ids: Vec<Option<u64>> = typed
                .to
                .iter()
                .map(|friend| {
                    let id = next[friend.0];
                    next[friend.0] = id.map(|id| id + 1);
                    id
                })
                .collect();
            self.narrator.typed(typed, &ids, now);
        }
    }

    /// A friend sent us something: they are up.
    pub fn heard(&mut self, peer: PeerId, now: Instant) {
        if self.last_heard[peer.0].is_none() {
            self.narrator.online(peer);
        }
        self.last_heard[peer.0] = Some(now);
        self.talks[peer.0].heard(now);
    }

    /// Starts the quit: every model delivers what it can, for at most `wait`, and reports the
    /// rest. The driver then carries out each friend's actions, and ends once [`all_done`].
    ///
    /// [`all_done`]: Friends::all_done
    pub fn quit(&mut self, now: Instant, wait: Duration) {
        if self.quit_by.is_none() {
            self.quit_by = Some(now + wait);
            for talk in &mut self.talks {
                talk.quit();
            }
        }
    }

    pub fn quitting(&self) -> bool {
        self.quit_by.is_some()
    }

    /// The quit took too long, or Ctrl-C came twice: every message still unsettled gets its
    /// fate now. What the models asked of the driver is dropped: the connections end with the
    /// process.
    pub fn abandon(&mut self, now: Instant) {
        self.quit_by.get_or_insert(now);
        for talk in &mut self.talks {
            talk.abandon();
        }
        for id in self.table.clone().ids() {
            while self.next_action(id).is_some() {}
        }
    }

    /// Everything typed has its fate and no connection is open.
    pub fn all_done(&self) -> bool {
        self.talks.iter().all(Conversation::is_done)
    }

    /// The end: the counts of what was refused while quitting, and the last echoes.
    pub fn finish(&mut self, now: Instant) {
        for id in self.table.clone().ids() {
            self.talks[id.0].finish();
            while self.next_action(id).is_some() {}
        }
        self.narrator.print_echoes(now);
    }

    /// `/peers`: the table, above the input line and fitted to the window in a terminal, with
    /// the inbound connections the registry counts.
    pub fn print_peers(&self, registry: &Inbound, screen: &Screen) {
        let (inbound, unknown) = registry.counts(self.table.len());
        let width = match screen.is_terminal() {
            true => term::width().saturating_sub(1),
            false => usize::MAX,
        };
        let table = self.peers(&inbound, unknown, width, Instant::now());
        screen.above(table.as_bytes());
    }

    /// The `/peers` table, within `width` columns, given how many inbound connections speak for
    /// each friend and how many have not said who they are.
    fn peers(&self, inbound: &[usize], unknown: usize, width: usize, now: Instant) -> String {
        let rows: Vec<roster::Row> = self
            .table
            .ids()
            .map(|id| {
                let name = self.narrator.name_of(id);
                let peer = self.table.get(id);
                let (talk, heard) = (&self.talks[id.0], self.last_heard[id.0]);
                roster::row(name, peer, talk, inbound[id.0], heard, now)
            })
            .collect();
        roster::render(&rows, width, unknown)
    }
}
