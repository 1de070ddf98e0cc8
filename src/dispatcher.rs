//! The dispatcher thread: the heart of the program, and the `select()` call of the classic design.
//!
//! It owns the routing state, one [`Friend`] record per table entry: the friend's outbox (the
//! messages typed for them and not yet handed to a link), their link if one is running, and what
//! we know of them (do they confirm, can they be reached). No other thread touches that state,
//! so it needs no lock. The others talk to it through channels that all point here:
//!
//! * the console sends [`ConsoleEvent`]s (messages to route, `/peers`, quit);
//! * links and readers send [`Event`]s (what became of messages; a friend spoke to us);
//! * the Ctrl-C handler sends `()` on the interrupt channel;
//! * a timer channel, `at(deadline)`, fires at the next idle close or retry.
//!
//! And it waits, in the same `select`, to *send*: each link has a small bounded queue, and an
//! outbox with messages adds a send arm on its link's queue. That arm is ready when the link has
//! room, exactly as a socket in select()'s write set is ready when its buffer has room. So the
//! dispatcher never blocks on a friend, and a friend who reads slowly only fills their own outbox.
//!
//! Flow control: while a reachable friend's outbox is full, the dispatcher stops taking the
//! console's input (so a program piping into p2p-chat is slowed down, not dropped), for at most
//! the write timeout: a friend who takes nothing for that long is stalled, and then their outbox
//! holds what it can and refuses the rest with a report, and everyone else's messages flow.
//!
//! Time is an argument: [`Friend::due`] says what a friend needs at `now` (an idle close, a
//! retry) and when it next will, so the expiry rules are unit-tested with made-up instants.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender, after, at, bounded, never};
use log::{debug, error, info, warn};

use crate::echo::{Echoes, Fate};
use crate::event::{
    Batch, ConsoleEvent, Event, Failure, LinkId, LinkReport, Reason, ToLink, Typed,
};
use crate::inbound::Inbound;
use crate::link::{self, CHUNK, LinkTask, Timeouts};
use crate::logging::{NOTICE, STATE};
use crate::peers::{PeerId, PeerTable};
use crate::screen::Screen;
use crate::term;

/// An outbox holds at most this many messages...
pub const OUTBOX_MESSAGES: usize = 1000;
/// ...and at most this many bytes of frames.
pub const OUTBOX_BYTES: usize = 8 * 1024 * 1024;

/// The longest wait between two attempts to reach a friend who cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The wait before the second attempt; it doubles after each failure, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Batches a link's queue holds. Small: messages wait in the outbox, where they can still be
/// counted, held and reported, rather than inside a link that may be about to fail.
const LINK_QUEUE: usize = 2;

/// Settings the dispatcher needs from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub idle_timeout: Duration,
    pub timeouts: Timeouts,
}

/// The channels the dispatcher listens on.
pub struct Inputs {
    pub console: Receiver<ConsoleEvent>,
    pub events: Receiver<Event>,
    pub interrupt: Receiver<()>,
}

/// Messages waiting for a friend, in the order they were typed.
#[derive(Debug, Default)]
struct Outbox {
    batches: VecDeque<Batch>,
    messages: usize,
    bytes: usize,
}

impl Outbox {
    fn push_back(&mut self, batch: Batch) {
        self.messages += batch.count;
        self.bytes += batch.frames.len();
        self.batches.push_back(batch);
    }

    /// Puts messages that came back from a link in front of everything typed after them.
    fn push_front(&mut self, batches: Vec<Batch>) {
        for batch in batches.into_iter().rev().filter(|b| b.count > 0) {
            self.messages += batch.count;
            self.bytes += batch.frames.len();
            self.batches.push_front(batch);
        }
    }

    /// Takes batches from the front, joined, up to about one write's worth.
    fn pop_chunk(&mut self) -> Option<Batch> {
        let mut chunk = self.batches.pop_front()?;
        while chunk.frames.len() < CHUNK {
            match self.batches.pop_front() {
                Some(next) if chunk.frames.len() + next.frames.len() <= CHUNK => chunk.append(next),
                Some(next) => {
                    self.batches.push_front(next);
                    break;
                }
                None => break,
            }
        }
        self.messages -= chunk.count;
        self.bytes -= chunk.frames.len();
        Some(chunk)
    }

    /// Empties the outbox; returns how many messages it held.
    fn clear(&mut self) -> usize {
        self.batches.clear();
        self.bytes = 0;
        std::mem::take(&mut self.messages)
    }

    fn is_full(&self) -> bool {
        self.messages >= OUTBOX_MESSAGES || self.bytes >= OUTBOX_BYTES
    }

    /// Which bound a full outbox has reached, in words.
    fn bound(&self) -> String {
        match self.messages >= OUTBOX_MESSAGES {
            true => format!("{OUTBOX_MESSAGES} messages"),
            false => format!("{} MiB", OUTBOX_BYTES >> 20),
        }
    }

    fn is_empty(&self) -> bool {
        self.messages == 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    Connecting,
    Open,
    /// Told to close after its idle time; takes no more messages.
    Closing,
}

/// The dispatcher's handle on one running link thread.
struct LinkHandle {
    id: LinkId,
    queue: Sender<ToLink>,
    thread: JoinHandle<()>,
    state: LinkState,
    /// Messages handed to the link that it has not yet reported on.
    outstanding: usize,
    /// When we last handed it a message; it closes `idle_timeout` after this once nothing is
    /// outstanding.
    last_used: Instant,
}

/// A friend who cannot be reached at the moment.
#[derive(Debug)]
struct Outage {
    reason: Reason,
    retry_at: Instant,
    /// The wait after the next failure.
    backoff: Duration,
    /// Whether the user has been told that messages wait for this friend.
    told: bool,
}

/// Everything the dispatcher knows about one friend.
#[derive(Default)]
struct Friend {
    outbox: Outbox,
    link: Option<LinkHandle>,
    /// They have confirmed a message before, so they run p2p-chat, and silence means trouble.
    confirms: bool,
    outage: Option<Outage>,
    /// Messages refused since their outbox filled during this outage.
    refused: usize,
    /// How the messages to them ended, for `/peers`.
    tally: Tally,
    /// When they last sent us something, if they have.
    last_heard: Option<Instant>,
}

/// How many messages to a friend ended in each state since start-up.
#[derive(Debug, Default)]
struct Tally {
    /// Their p2p-chat confirmed that it showed them.
    delivered: usize,
    /// Their machine took the bytes; their program does not confirm.
    sent: usize,
    /// Reported as not delivered, or as may not have arrived.
    failed: usize,
}

/// What a friend needs at a given moment.
#[derive(Debug, PartialEq, Eq)]
enum Due {
    Nothing,
    /// Their link has been idle long enough: close it.
    IdleClose,
    /// Messages wait and no link runs: start one.
    Connect,
}

impl Friend {
    /// What this friend needs at `now`, and when they next will need something. Pure: time is
    /// an argument. While quitting an idle link closes at once and nobody is retried.
    fn due(&self, idle: Duration, now: Instant, quitting: bool) -> (Due, Option<Instant>) {
        match &self.link {
            Some(link)
                if link.state == LinkState::Open
                    && link.outstanding == 0
                    && self.outbox.is_empty() =>
            {
                let idle_at = if quitting { now } else { link.last_used + idle };
                if idle_at <= now {
                    (Due::IdleClose, None)
                } else {
                    (Due::Nothing, Some(idle_at))
                }
            }
            None if !self.outbox.is_empty() && !quitting => match &self.outage {
                Some(outage) if outage.retry_at > now => (Due::Nothing, Some(outage.retry_at)),
                _ => (Due::Connect, None),
            },
            _ => (Due::Nothing, None),
        }
    }

    /// Whether the console must wait for this friend: they are reachable and their outbox is
    /// full, so their link is busy and will either catch up or time out.
    fn holds_up_input(&self) -> bool {
        self.link.is_some() && self.outage.is_none() && self.outbox.is_full()
    }

    /// Whether new messages for them are refused: they cannot be reached and the outbox is full.
    fn refuses(&self) -> bool {
        self.outage.is_some() && self.outbox.is_full()
    }

    /// Whether the dispatcher has messages for their link and the link takes them.
    fn feedable(&self) -> Option<&Sender<ToLink>> {
        self.link
            .as_ref()
            .filter(|link| link.state != LinkState::Closing && !self.outbox.is_empty())
            .map(|link| &link.queue)
    }
}

pub struct Dispatcher {
    table: Arc<PeerTable>,
    me: PeerId,
    settings: Settings,
    inbound: Arc<Inbound>,
    /// Handed to each new link thread, which reports back on it.
    events: Sender<Event>,
    /// Where `/peers` and the echoes of our own messages are printed.
    screen: Screen,
    friends: Vec<Friend>,
    /// Our own messages on their way, for their echoes in a terminal.
    echoes: Echoes,
    next_link: u64,
    quitting: bool,
}

impl Dispatcher {
    pub fn new(
        table: Arc<PeerTable>,
        me: PeerId,
        settings: Settings,
        inbound: Arc<Inbound>,
        events: Sender<Event>,
        screen: Screen,
    ) -> Dispatcher {
        let friends = table.ids().map(|_| Friend::default()).collect();
        let echoes = Echoes::new(table.len());
        Dispatcher {
            table,
            me,
            settings,
            inbound,
            events,
            screen,
            friends,
            echoes,
            next_link: 0,
            quitting: false,
        }
    }

    /// The dispatcher thread's body: runs until quit, then delivers or reports what it holds.
    pub fn run(mut self, inputs: Inputs) {
        let Inputs {
            mut console,
            events,
            mut interrupt,
        } = inputs;
        let mut give_up = never();
        let mut input_held = false;
        loop {
            let now = Instant::now();
            self.print_echoes(now);
            let next = match (self.tend(now), self.echoes.next_due()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if self.quitting && self.friends.iter().all(|f| f.link.is_none()) {
                break;
            }
            let timer = next.map(at).unwrap_or_else(never);
            // The send arms: a clone of each link queue that has room to fill (cheap: an `Arc`).
            let feeds: Vec<(PeerId, Sender<ToLink>)> = self
                .table
                .ids()
                .filter_map(|id| Some((id, self.friends[id.0].feedable()?.clone())))
                .collect();
            let mut select = Select::new();
            // While quitting, input is still taken, to be reported as not delivered.
            let holding = self.friends.iter().position(Friend::holds_up_input);
            if let Some(index) = holding.filter(|_| !input_held) {
                let who = &self.table.get(PeerId(index)).name;
                let bound = self.friends[index].outbox.bound();
                debug!(
                    target: STATE,
                    "{who}'s outbox is full ({bound}): input waits until they take more"
                );
            }
            input_held = holding.is_some();
            let takes_input = self.quitting || !input_held;
            let console_arm = takes_input.then(|| select.recv(&console));
            let events_arm = select.recv(&events);
            let interrupt_arm = select.recv(&interrupt);
            let timer_arm = select.recv(&timer);
            let give_up_arm = select.recv(&give_up);
            let feed_arms: Vec<usize> = feeds.iter().map(|(_, q)| select.send(q)).collect();
            let operation = select.select();
            let index = operation.index();
            if Some(index) == console_arm {
                match operation.recv(&console) {
                    Ok(ConsoleEvent::Send(batches, typed)) => self.take(batches, typed),
                    Ok(ConsoleEvent::Peers) => self.print_peers(),
                    Ok(ConsoleEvent::Quit) => self.begin_quit(&mut give_up),
                    // The console thread ended: stop watching, or this arm would fire forever.
                    Err(_) => {
                        console = never();
                        self.begin_quit(&mut give_up);
                    }
                }
            } else if index == events_arm {
                match operation.recv(&events) {
                    Ok(Event::StdoutClosed) => {
                        info!("standard output is closed; quitting");
                        self.begin_quit(&mut give_up);
                    }
                    Ok(event) => self.handle(event),
                    Err(_) => unreachable!("the dispatcher holds a sender of its own events"),
                }
            } else if index == interrupt_arm {
                match operation.recv(&interrupt) {
                    Ok(()) if !self.quitting => {
                        info!(
                            target: NOTICE,
                            "interrupted; delivering what was typed, then quitting \
                             (Ctrl-C again to quit at once)"
                        );
                        self.begin_quit(&mut give_up);
                    }
                    Ok(()) => {}
                    // No interrupt handler: stop watching, or this arm would fire forever.
                    Err(_) => interrupt = never(),
                }
            } else if index == timer_arm {
                let _ = operation.recv(&timer); // `tend` at the top of the loop does the work
            } else if index == give_up_arm {
                let _ = operation.recv(&give_up);
                self.abandon();
                break;
            } else {
                let slot = feed_arms
                    .iter()
                    .position(|&arm| arm == index)
                    .expect("every other arm is a send arm");
                let (peer, queue) = &feeds[slot];
                self.feed(*peer, |batch| operation.send(queue, ToLink::Send(batch)));
            }
        }
        // A console blocked handing over a batch is waiting at the rendezvous: take it, so what
        // it holds is reported rather than lost when the process ends.
        while let Ok(ConsoleEvent::Send(batches, typed)) = console.try_recv() {
            self.take(batches, typed);
        }
        self.finish();
    }

    /// Takes the console's messages into their friends' outboxes, refusing those for a friend
    /// who cannot be reached and whose outbox is full.
    fn take(&mut self, batches: Vec<(PeerId, Batch)>, typed: Vec<Typed>) {
        let now = Instant::now();
        for typed in typed {
            self.echoes.typed(typed, now);
        }
        for (peer, batch) in batches {
            let friend = &mut self.friends[peer.0];
            if self.quitting {
                friend.refused += batch.count; // reported by `finish`
                let fate = Fate::NotDelivered("p2p-chat is quitting".to_string());
                self.echoes.newest(peer, batch.count, &fate);
            } else if friend.refuses() {
                let fate = Fate::NotDelivered("their outbox is full".to_string());
                self.echoes.newest(peer, batch.count, &fate);
                if friend.refused == 0 {
                    error!(
                        "{}'s outbox is full ({} messages wait while they cannot be reached): \
                         new messages to them are refused; the count follows when they are back",
                        self.table.get(peer),
                        friend.outbox.messages
                    );
                }
                friend.refused += batch.count;
            } else {
                friend.outbox.push_back(batch);
                if let Some(outage) = &friend.outage {
                    let fate = Fate::Waiting(outage.reason.short());
                    self.echoes.all(peer, &fate);
                }
            }
        }
    }

    /// Hands the front of a friend's outbox to its link through `send`, the ready send arm.
    fn feed(
        &mut self,
        peer: PeerId,
        send: impl FnOnce(Batch) -> Result<(), crossbeam_channel::SendError<ToLink>>,
    ) {
        let friend = &mut self.friends[peer.0];
        let Some(batch) = friend.outbox.pop_chunk() else {
            return;
        };
        let count = batch.count;
        match send(batch) {
            Ok(()) => {
                if let Some(link) = &mut friend.link {
                    link.outstanding += count;
                    link.last_used = Instant::now();
                }
            }
            // The link has just ended; its report is on the way and says what to do next.
            Err(returned) => {
                if let ToLink::Send(batch) = returned.into_inner() {
                    friend.outbox.push_front(vec![batch]);
                }
            }
        }
    }

    /// Closes idle links and starts links for friends whose messages wait. Returns the next
    /// moment something will be due.
    fn tend(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        for index in 0..self.friends.len() {
            let id = PeerId(index);
            let (due, when) =
                self.friends[id.0].due(self.settings.idle_timeout, now, self.quitting);
            next = match (next, when) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            match due {
                Due::Nothing => {}
                Due::IdleClose => self.close_idle(id),
                Due::Connect => self.spawn_link(id),
            }
        }
        next
    }

    fn close_idle(&mut self, peer: PeerId) {
        let Some(link) = &mut self.friends[peer.0].link else {
            return;
        };
        // Nothing is outstanding, so the link has taken everything and its queue has room.
        if link.queue.try_send(ToLink::Close).is_ok() {
            link.state = LinkState::Closing;
            if !self.quitting {
                info!(
                    "closing idle connection to {} after {:.1} s",
                    self.table.get(peer).name,
                    self.settings.idle_timeout.as_secs_f64()
                );
            }
        }
    }

    fn spawn_link(&mut self, peer: PeerId) {
        let id = LinkId(self.next_link);
        self.next_link += 1;
        let (queue, receiver) = bounded(LINK_QUEUE);
        let friend = &mut self.friends[peer.0];
        let task = LinkTask {
            id,
            peer_id: peer,
            peer: self.table.get(peer).clone(),
            confirms: friend.confirms,
            timeouts: self.settings.timeouts,
            queue: receiver,
            events: self.events.clone(),
        };
        let spawned = thread::Builder::new()
            .name(format!("link:{}", self.table.get(peer).name))
            .spawn(move || link::run(task));
        match spawned {
            Ok(thread) => {
                friend.link = Some(LinkHandle {
                    id,
                    queue,
                    thread,
                    state: LinkState::Connecting,
                    outstanding: 0,
                    last_used: Instant::now(),
                });
            }
            Err(e) => {
                let (tx, rx) = bounded(0);
                drop(tx);
                self.failed(
                    peer,
                    Failure {
                        reason: Reason::NoThread(e.to_string()),
                        unsent: Vec::new(),
                        maybe_lost: 0,
                        queue: rx,
                    },
                );
            }
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Link { peer, link, report } => {
                let friend = &mut self.friends[peer.0];
                let Some(handle) = friend.link.as_mut().filter(|l| l.id == link) else {
                    return; // news from a link already replaced
                };
                let settles = matches!(
                    report,
                    LinkReport::Delivered(_) | LinkReport::Sent(_) | LinkReport::Refused(_)
                );
                match report {
                    LinkReport::Connected => {
                        if handle.state == LinkState::Connecting {
                            handle.state = LinkState::Open;
                        }
                        if let Some(outage) = friend.outage.as_mut().filter(|o| o.told) {
                            outage.told = false;
                            info!(
                                target: NOTICE,
                                "{} can be reached again: sending the messages held for them",
                                self.table.get(peer)
                            );
                        }
                    }
                    LinkReport::Delivered(n) => {
                        handle.outstanding -= n;
                        friend.tally.delivered += n;
                        self.echoes.oldest(peer, n, &Fate::Delivered);
                        friend.confirms = true;
                        self.reachable(peer);
                    }
                    LinkReport::Sent(n) => {
                        handle.outstanding -= n;
                        friend.tally.sent += n;
                        self.echoes.oldest(peer, n, &Fate::Sent);
                        self.reachable(peer);
                    }
                    LinkReport::Refused(n) => {
                        handle.outstanding -= n;
                        friend.tally.failed += n;
                        let fate = Fate::NotDelivered("their p2p-chat dropped it".to_string());
                        self.echoes.oldest(peer, n, &fate);
                        friend.confirms = true;
                        error!(
                            "{n} message(s) to {} not delivered: their p2p-chat dropped them \
                             (does their peer table give {} this machine's address?)",
                            self.table.get(peer),
                            self.table.get(self.me).name
                        );
                    }
                    LinkReport::Closed => self.ended(peer),

                    LinkReport::Failed(failure) => self.failed(peer, failure),
                }
                if settles {
                    self.log_if_settled(peer);
                }
            }
            Event::Heard(peer) => {
                let friend = &mut self.friends[peer.0];
                if friend.last_heard.is_none() && peer != self.me {
                    info!(target: NOTICE, "{} is online", self.table.get(peer).name);
                }
                friend.last_heard = Some(Instant::now());
                // They talk to us, so they are up: try them now, not at the backoff.
                if let Some(outage) = &mut friend.outage {
                    outage.retry_at = Instant::now();
                }
            }
            Event::StdoutClosed => {}
        }
    }

    /// Logs, as a state change, that every message handed to a friend's link so far has its
    /// fate: the link is open, holds nothing unconfirmed, and nothing waits in the outbox.
    fn log_if_settled(&self, peer: PeerId) {
        let friend = &self.friends[peer.0];
        let Some(link) = &friend.link else { return };
        if link.state == LinkState::Open && link.outstanding == 0 && friend.outbox.is_empty() {
            let t = &friend.tally;
            debug!(
                target: STATE,
                "all {} message(s) to {} settled: {} delivered, {} sent, {} failed",
                t.delivered + t.sent + t.failed,
                self.table.get(peer).name,
                t.delivered,
                t.sent,
                t.failed
            );
        }
    }

    /// A link has sent its last report: join its thread, which returns right after.
    fn ended(&mut self, peer: PeerId) {
        if let Some(handle) = self.friends[peer.0].link.take() {
            let _ = handle.thread.join();
        }
    }

    /// A friend took a message: they are reachable, so any outage is over.
    fn reachable(&mut self, peer: PeerId) {
        if self.friends[peer.0].outage.take().is_some() {
            self.report_refused(peer);
        }
    }

    /// Reports, with their count, the messages refused while the friend's outbox was full.
    fn report_refused(&mut self, peer: PeerId) {
        let friend = &mut self.friends[peer.0];
        let refused = std::mem::take(&mut friend.refused);
        if refused > 0 {
            friend.tally.failed += refused;
            let who = self.table.get(peer);
            error!(
                "{refused} message(s) to {who} not delivered: refused while their outbox was full"
            );
        }
    }

    /// A link failed: what it hands back is held in front of the outbox and the friend is
    /// retried with backoff; or, when quitting, it is all reported.
    fn failed(&mut self, peer: PeerId, failure: Failure) {
        let Failure {
            reason,
            unsent,
            maybe_lost,
            queue,
        } = failure;
        self.ended(peer);
        let mut held = unsent;
        held.extend(queue.try_iter().filter_map(|command| match command {
            ToLink::Send(batch) => Some(batch),
            ToLink::Close => None,
        }));
        let returned: usize = held.iter().map(|b| b.count).sum();
        let friend = &mut self.friends[peer.0];
        friend.outbox.push_front(held);
        let who = self.table.get(peer);
        friend.tally.failed += maybe_lost;
        self.echoes
            .oldest(peer, maybe_lost, &Fate::MaybeLost(reason.short()));
        if maybe_lost > 0 {
            error!("{maybe_lost} message(s) to {who} may not have arrived: {reason}");
        }
        if returned > 0 && reason.unconfirmed_were_dropped() && !self.quitting {
            warn!(
                "{returned} message(s) to {who} were not confirmed and will be sent again: {reason}"
            );
        }
        if self.quitting {
            let lost = friend.outbox.clear();
            if lost > 0 {
                error!("{lost} message(s) to {who} not delivered: {reason}");
            }
            self.echoes.all(peer, &Fate::NotDelivered(reason.short()));
            return;
        }
        if friend.outbox.is_empty() {
            return; // an idle connection closed by the friend: nothing waits, nothing to say
        }
        let now = Instant::now();
        // A friend who closed or reset a working connection has usually restarted: try again at
        // once. After that, and for anything else, wait longer each time.
        let (wait, backoff) = match &friend.outage {
            None if reason.unconfirmed_were_dropped() => (Duration::ZERO, FIRST_BACKOFF),
            None => (FIRST_BACKOFF, FIRST_BACKOFF * 2),
            Some(outage) => (outage.backoff, (outage.backoff * 2).min(MAX_BACKOFF)),
        };
        let told = friend.outage.as_ref().is_some_and(|o| o.told);
        if !told && !wait.is_zero() {
            // In a terminal the echo of each message already says it waits, and why.
            let level = match self.screen.is_terminal() {
                true => log::Level::Info,
                false => log::Level::Warn,
            };
            log::log!(
                level,
                "{} message(s) to {who} wait in their outbox: {reason}; trying again every \
                 {:.0} s at most, and at once when they connect to us",
                friend.outbox.messages,
                MAX_BACKOFF.as_secs_f64()
            );
        }
        if !wait.is_zero() {
            self.echoes.all(peer, &Fate::Waiting(reason.short()));
        }
        friend.outage = Some(Outage {
            reason,
            retry_at: now + wait,
            backoff,
            told: told || !wait.is_zero(),
        });
    }

    /// Starts the shutdown: no more input; what cannot be sent now is reported; links finish.
    /// Sets `give_up` to the timer after which we stop waiting for them.
    fn begin_quit(&mut self, give_up: &mut Receiver<Instant>) {
        if self.quitting {
            return;
        }
        self.quitting = true;
        for id in self.table.clone().ids() {
            let friend = &mut self.friends[id.0];
            if friend.link.is_none() {
                let held = friend.outbox.clear();
                if held > 0 {
                    let why = friend
                        .outage
                        .as_ref()
                        .map_or("quitting".to_string(), |o| o.reason.to_string());
                    error!(
                        "{held} message(s) to {} not delivered: quitting while they cannot be \
                         reached ({why})",
                        self.table.get(id)
                    );
                    let fate = Fate::NotDelivered("quitting while they cannot be reached".into());
                    self.echoes.all(id, &fate);
                }
            }
            self.report_refused(id);
        }
        let t = self.settings.timeouts;
        *give_up = after(t.connect + t.write + t.ack + Duration::from_secs(1));
    }

    /// The links did not finish in time: report what each still had.
    fn abandon(&mut self) {
        for id in self.table.ids() {
            let friend = &mut self.friends[id.0];
            let outstanding = friend.link.as_ref().map_or(0, |l| l.outstanding);
            let lost = outstanding + friend.outbox.clear();
            if friend.link.is_some() && lost > 0 {
                error!(
                    "{lost} message(s) to {} not delivered or not confirmed: quitting before \
                     their link finished",
                    self.table.get(id)
                );
            }
            // The thread is left to end with the process: it may be blocked on a stalled friend.
            friend.link = None;
            let fate = Fate::NotDelivered("quitting before their link finished".to_string());
            self.echoes.all(id, &fate);
        }
    }

    /// After the last link: report what was typed after the quit began, and close every inbound
    /// connection so the readers end.
    fn finish(mut self) {
        for id in self.table.ids() {
            let refused = self.friends[id.0].refused;
            if refused > 0 {
                let who = self.table.get(id);
                error!("{refused} message(s) to {who} not delivered: p2p-chat is quitting");
            }
        }
        self.print_echoes(Instant::now());
        self.inbound.close_all();
    }

    /// Prints the echoes of our own messages that are due (in a terminal; there are none
    /// otherwise).
    fn print_echoes(&mut self, now: Instant) {
        let table = &self.table;
        for line in self.echoes.lines(now, |id| table.get(id).name.clone()) {
            self.screen.above(format!("{line}\n").as_bytes());
        }
    }

    /// `/peers`: every friend with what we know of them, on stderr. In a terminal the table fits
    /// its width: the least needed columns go first in a narrow pane.
    fn print_peers(&self) {
        let now = Instant::now();
        let (inbound, unknown) = self.inbound.counts(self.table.len());
        let header = [
            "friend", "address", "outbound", "wait", "deliv", "sent", "fail", "in", "heard",
        ];
        let mut rows: Vec<Vec<String>> = vec![header.map(String::from).to_vec()];
        for id in self.table.ids() {
            let peer = self.table.get(id);
            let friend = &self.friends[id.0];
            let name = if id == self.me {
                format!("{} (you)", peer.name)
            } else {
                peer.name.clone()
            };
            let t = &friend.tally;
            let heard = friend
                .last_heard
                .map_or("-".to_string(), |at| ago(now - at));
            rows.push(vec![
                name,
                format!("{}:{}", peer.host, peer.port),
                self.outbound_state(friend, now),
                friend.outbox.messages.to_string(),
                t.delivered.to_string(),
                t.sent.to_string(),
                t.failed.to_string(),
                inbound[id.0].to_string(),
                heard,
            ]);
        }
        let width = |column: usize| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or_default()
        };
        let widths: Vec<usize> = (0..header.len()).map(width).collect();
        // The columns to drop, in this order, until the table fits the terminal.
        let mut shown: Vec<usize> = (0..header.len()).collect();
        let room = match self.screen.is_terminal() {
            true => term::width().saturating_sub(1),
            false => usize::MAX,
        };
        for drop in [1, 8, 7, 5, 6, 4] {
            let total: usize = shown.iter().map(|&c| widths[c] + 1).sum();
            if total <= room {
                break;
            }
            shown.retain(|&c| c != drop);
        }
        let mut out = String::new();
        for row in &rows {
            let cells: Vec<String> = shown
                .iter()
                .map(|&c| {
                    let w = widths[c];
                    // Text columns to the left, counts to the right.
                    match c {
                        0..=2 => format!("{:<w$}", row[c]),
                        _ => format!("{:>w$}", row[c]),
                    }
                })
                .collect();
            out.push_str(cells.join(" ").trim_end());
            out.push('\n');
        }
        if unknown > 0 {
            out.push_str(&format!(
                "{unknown} inbound connection(s) have not said who they are yet\n"
            ));
        }
        self.screen.above(out.as_bytes());
    }

    /// The outbound column of `/peers`: what our connection to a friend is doing.
    fn outbound_state(&self, friend: &Friend, now: Instant) -> String {
        match (&friend.link, &friend.outage) {
            (Some(link), _) => match link.state {
                LinkState::Connecting => "connecting".to_string(),
                LinkState::Closing => "closing".to_string(),
                LinkState::Open if link.outstanding > 0 => {
                    format!("{} unconfirmed", link.outstanding)
                }
                LinkState::Open => {
                    let left = (link.last_used + self.settings.idle_timeout)
                        .saturating_duration_since(now);
                    format!("idle, close in {:.1}s", left.as_secs_f64())
                }
            },
            (None, Some(outage)) => format!(
                "unreachable, retry {:.0}s",
                outage.retry_at.saturating_duration_since(now).as_secs_f64()
            ),
            (None, None) => "-".to_string(),
        }
    }
}

/// `12s`, `3m`, `2h`: how long ago, for `/peers`.
fn ago(elapsed: Duration) -> String {
    match elapsed.as_secs() {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::batch;

    fn link(state: LinkState, outstanding: usize, last_used: Instant) -> LinkHandle {
        let (queue, _) = bounded(1);
        LinkHandle {
            id: LinkId(0),
            queue,
            thread: thread::spawn(|| {}),
            state,
            outstanding,
            last_used,
        }
    }

    #[test]
    fn an_open_link_closes_exactly_idle_after_its_last_message_and_not_while_busy() {
        let t0 = Instant::now();
        let idle = Duration::from_millis(500);
        let mut friend = Friend {
            link: Some(link(LinkState::Open, 0, t0)),
            ..Friend::default()
        };
        let just_before = t0 + Duration::from_millis(499);
        assert_eq!(
            friend.due(idle, just_before, false),
            (Due::Nothing, Some(t0 + idle))
        );
        assert_eq!(friend.due(idle, t0 + idle, false), (Due::IdleClose, None));
        assert_eq!(
            friend.due(idle, t0, true),
            (Due::IdleClose, None),
            "at quit, at once"
        );

        // Unconfirmed messages, or messages still waiting, keep it open.
        friend.link.as_mut().unwrap().outstanding = 1;
        assert_eq!(friend.due(idle, t0 + idle * 9, false), (Due::Nothing, None));
        friend.link.as_mut().unwrap().outstanding = 0;
        friend.outbox.push_back(batch("a/x\n", 1));
        assert_eq!(friend.due(idle, t0 + idle * 9, false), (Due::Nothing, None));
        // So does connecting.
        let connecting = Friend {
            link: Some(link(LinkState::Connecting, 0, t0)),
            ..Friend::default()
        };
        assert_eq!(
            connecting.due(idle, t0 + idle * 9, false),
            (Due::Nothing, None)
        );
    }

    #[test]
    fn waiting_messages_start_a_link_at_once_or_at_the_retry_time() {
        let t0 = Instant::now();
        let idle = Duration::from_secs(30);
        let mut friend = Friend::default();
        assert_eq!(
            friend.due(idle, t0, false),
            (Due::Nothing, None),
            "nothing to send"
        );
        friend.outbox.push_back(batch("a/x\n", 1));
        assert_eq!(friend.due(idle, t0, false), (Due::Connect, None));
        let retry_at = t0 + Duration::from_secs(4);
        friend.outage = Some(Outage {
            reason: Reason::ClosedByFriend,
            retry_at,
            backoff: MAX_BACKOFF,
            told: true,
        });
        assert_eq!(friend.due(idle, t0, false), (Due::Nothing, Some(retry_at)));
        assert_eq!(friend.due(idle, retry_at, false), (Due::Connect, None));
        assert_eq!(
            friend.due(idle, retry_at, true),
            (Due::Nothing, None),
            "not at quit"
        );
    }

    #[test]
    fn an_outbox_keeps_order_counts_and_bounds() {
        let mut outbox = Outbox::default();
        outbox.push_back(batch("a/2\n", 1));
        outbox.push_back(batch("a/3\na/4\n", 2));
        outbox.push_front(vec![batch("a/0\n", 1), batch("a/1\n", 1)]);
        assert_eq!(outbox.messages, 5);
        assert_eq!(
            outbox.pop_chunk(),
            Some(batch("a/0\na/1\na/2\na/3\na/4\n", 5))
        );
        assert!(outbox.is_empty());
        assert_eq!(outbox.bytes, 0);
        for _ in 0..OUTBOX_MESSAGES {
            assert!(!outbox.is_full());
            outbox.push_back(batch("a/x\n", 1));
        }
        assert!(outbox.is_full());
        assert_eq!(outbox.clear(), OUTBOX_MESSAGES);
        outbox.push_back(batch(&"x".repeat(OUTBOX_BYTES), 1));
        assert!(outbox.is_full(), "bytes count too");
    }

    #[test]
    fn the_console_waits_only_for_a_reachable_friend_and_a_full_outbox_refuses_only_offline() {
        let t0 = Instant::now();
        let mut friend = Friend {
            link: Some(link(LinkState::Open, 0, t0)),
            ..Friend::default()
        };
        for _ in 0..OUTBOX_MESSAGES {
            friend.outbox.push_back(batch("a/x\n", 1));
        }
        assert!(friend.holds_up_input() && !friend.refuses());
        friend.outage = Some(Outage {
            reason: Reason::Stalled(Duration::from_secs(5)),
            retry_at: t0,
            backoff: FIRST_BACKOFF,
            told: true,
        });
        assert!(!friend.holds_up_input() && friend.refuses());
    }
}
