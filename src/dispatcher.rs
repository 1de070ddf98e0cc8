//! The dispatcher thread: the heart of the program, and the `select()` call of the classic design.
//!
//! It owns one [`Conversation`] per friend, the pure model of what we know about them (their
//! outbox, what is in flight, their kind, every deadline, every message's fate), and the handle
//! of the link thread that carries out its I/O. No other thread touches them, so they need no
//! lock. The dispatcher only moves events into the models and carries their outputs out:
//!
//! * the console sends [`ConsoleEvent`]s (messages to route, `/peers`, quit);
//! * links report what their I/O did, and readers say a friend spoke ([`Event`]);
//! * the Ctrl-C handler sends `()` on the interrupt channel;
//! * a timer channel, `at(deadline)`, fires at the earliest deadline any model returned.
//!
//! And it waits, in the same `select`, to *send*: each link has a small bounded queue, and a
//! model with bytes to write adds a send arm on its link's queue. That arm is ready when the link
//! has room, exactly as a socket in select()'s write set is ready when its buffer has room. The
//! `Select` is built anew each turn from the models' wishes: the counterpart of the C program's
//! `FD_ZERO`/`FD_SET` before every `select()`.
//!
//! Flow control: while a reachable friend's outbox is full, the dispatcher stops taking the
//! console's input (so a program piping into p2p-chat is slowed down, not dropped); a friend who
//! takes nothing for `--write-timeout` is stalled, and then holds nobody up.

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender, after, at, bounded, never};
use log::{debug, info};

use crate::conversation::{Conversation, Limits, LinkView, Output};
use crate::event::{Batch, ConsoleEvent, Control, Event, LinkId, LinkReport, Reason, Typed};
use crate::inbound::Inbound;
use crate::link::{self, LinkTask};
use crate::logging::{NOTICE, STATE};
use crate::narrator::Narrator;
use crate::peers::{PeerId, PeerTable};
use crate::roster;
use crate::screen::Screen;
use crate::term;

/// Batches a link's queue holds. Small: messages wait in the outbox, where the model can still
/// count, hold and report them, rather than in a channel.
const LINK_QUEUE: usize = 2;

/// Settings the dispatcher needs from the command line.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub limits: Limits,
    pub connect_timeout: Duration,
}

/// The channels the dispatcher listens on.
pub struct Inputs {
    pub console: Receiver<ConsoleEvent>,
    pub events: Receiver<Event>,
    pub interrupt: Receiver<()>,
}

/// The dispatcher's handle on one running link thread.
struct LinkHandle {
    id: LinkId,
    queue: Sender<Batch>,
    control: Sender<Control>,
    thread: JoinHandle<()>,
    /// Bytes put in its queue. Those it never took from there did not leave.
    handed: u64,
}

/// One friend: the model, and the link carrying out its I/O.
struct Friend {
    talk: Conversation,
    link: Option<LinkHandle>,
    /// When they last sent us something, if they have.
    last_heard: Option<Instant>,
}

pub struct Dispatcher {
    table: Arc<PeerTable>,
    settings: Settings,
    inbound: Arc<Inbound>,
    /// Handed to each new link thread, which reports back on it.
    events: Sender<Event>,
    screen: Screen,
    friends: Vec<Friend>,
    /// Says what the models report, in the log and in the echoes of our own messages.
    narrator: Narrator,
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
        let friends = table
            .ids()
            .map(|_| Friend {
                talk: Conversation::new(settings.limits),
                link: None,
                last_heard: None,
            })
            .collect();
        let narrator = Narrator::new(table.clone(), me, settings.limits, &screen);
        Dispatcher {
            table,
            settings,
            inbound,
            events,
            screen,
            friends,
            narrator,
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
            let next = self.tick(now);
            if self.quitting && self.friends.iter().all(|f| f.talk.is_done()) {
                break;
            }
            let timer = next.map(at).unwrap_or_else(never);
            // The send arms: a clone of each link queue a model has bytes for (cheap: an `Arc`).
            let feeds: Vec<(PeerId, Sender<Batch>)> = self
                .table
                .ids()
                .filter_map(|id| {
                    let friend = &self.friends[id.0];
                    let link = friend
                        .link
                        .as_ref()
                        .filter(|_| friend.talk.wants_to_write())?;
                    Some((id, link.queue.clone()))
                })
                .collect();
            let holding = self.friends.iter().position(|f| f.talk.holds_up_input());
            if let Some(index) = holding.filter(|_| !input_held) {
                let who = &self.table.get(PeerId(index)).name;
                let bound = self.friends[index].talk.outbox_bound();
                debug!(
                    target: STATE,
                    "{who}'s outbox is full ({bound}): input waits until they take more"
                );
            }
            input_held = holding.is_some();
            let mut select = Select::new();
            // While quitting, input is still taken, to be reported as not delivered.
            let console_arm = (self.quitting || !input_held).then(|| select.recv(&console));
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
                let _ = operation.recv(&timer); // `tick` at the top of the loop does the work
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
                let friend = &mut self.friends[peer.0];
                let batch = friend
                    .talk
                    .take_chunk(now)
                    .expect("a send arm is only made for a model that wants to write");
                let link = friend.link.as_mut().expect("a send arm has a link");
                link.handed += batch.frames.len() as u64;
                // A link that has just ended never took it: its report counts it as unsent.
                let _ = operation.send(queue, batch);
            }
        }
        // A console blocked handing over a batch is waiting at the rendezvous: take it, so what
        // it holds is reported rather than lost when the process ends.
        while let Ok(ConsoleEvent::Send(batches, typed)) = console.try_recv() {
            self.take(batches, typed);
        }
        self.narrator.print_echoes(Instant::now());
        self.inbound.close_all();
    }

    /// Lets every model act on its deadlines, carries out what they ask, prints the echoes due;
    /// returns the earliest next deadline.
    fn tick(&mut self, now: Instant) -> Option<Instant> {
        let mut next = self.narrator.print_echoes(now);
        for id in self.table.clone().ids() {
            if let Some(at) = self.friends[id.0].talk.tick(now) {
                next = Some(next.map_or(at, |n: Instant| n.min(at)));
            }
            self.carry_out(id);
        }
        next
    }

    /// Takes the console's messages into their friends' conversations.
    fn take(&mut self, batches: Vec<(PeerId, Batch)>, typed: Vec<Typed>) {
        let now = Instant::now();
        for typed in typed {
            self.narrator.typed(typed, now);
        }
        for (peer, batch) in batches {
            self.friends[peer.0].talk.send(batch);
            self.carry_out(peer);
        }
    }

    /// A link or a reader has news: it goes into the friend's model.
    fn handle(&mut self, event: Event) {
        let now = Instant::now();
        let peer = match event {
            Event::Link { peer, link, report } => {
                self.link_report(peer, link, report, now);
                peer
            }
            Event::Heard(peer) => {
                let friend = &mut self.friends[peer.0];
                if friend.last_heard.is_none() {
                    self.narrator.online(peer);
                }
                friend.last_heard = Some(now);
                friend.talk.heard(now);
                peer
            }
            Event::StdoutClosed => return,
        };
        self.carry_out(peer);
    }

    fn link_report(&mut self, peer: PeerId, link: LinkId, report: LinkReport, now: Instant) {
        let friend = &mut self.friends[peer.0];
        let Some(handle) = friend.link.as_ref().filter(|l| l.id == link) else {
            return; // news from a link already replaced
        };
        let talk = &mut friend.talk;
        match report {
            LinkReport::Connected => talk.connected(now),
            LinkReport::Wrote(n) => talk.wrote(n, now),
            LinkReport::Confirmations(bytes) => talk.confirmations(&bytes, now),
            LinkReport::Unacked(n) => talk.unacked(n, now),
            LinkReport::ConnectFailed(reason) => {
                self.ended(peer);
                self.friends[peer.0].talk.connect_failed(reason, now);
            }
            LinkReport::Ended {
                received,
                unsent,
                reason,
            } => {
                let never_taken = handle.handed - received;
                self.ended(peer);
                let talk = &mut self.friends[peer.0].talk;
                talk.ended(never_taken + unsent, reason, now);
            }
        }
    }

    /// Carries out what a friend's model asks, and has the narrator say what it reports.
    fn carry_out(&mut self, peer: PeerId) {
        while let Some(output) = self.friends[peer.0].talk.poll_output() {
            let control = match &output {
                Output::Connect => {
                    self.spawn_link(peer);
                    continue;
                }
                Output::HalfClose => Control::HalfClose,
                Output::Close => Control::Close,
                Output::AskUnacked => Control::AskUnacked,
                _ => {
                    let friend = &self.friends[peer.0];
                    self.narrator
                        .tell(peer, &output, &friend.talk, self.quitting);
                    continue;
                }
            };
            if control == Control::HalfClose && !self.quitting {
                self.narrator.closing_idle(peer, self.settings.limits.idle);
            }
            if let Some(link) = &self.friends[peer.0].link {
                // The model asks one thing at a time, and the channel has room for several.
                let _ = link.control.try_send(control);
            }
        }
    }

    fn spawn_link(&mut self, peer: PeerId) {
        let id = LinkId(self.next_link);
        self.next_link += 1;
        let (queue, queue_rx) = bounded(LINK_QUEUE);
        let (control, control_rx) = bounded(4);
        let task = LinkTask {
            id,
            peer_id: peer,
            peer: self.table.get(peer).clone(),
            connect_timeout: self.settings.connect_timeout,
            write_timeout: self.settings.limits.write,
            queue: queue_rx,
            control: control_rx,
            events: self.events.clone(),
        };
        let spawned = thread::Builder::new()
            .name(format!("link:{}", self.table.get(peer).name))
            .spawn(move || link::run(task));
        let friend = &mut self.friends[peer.0];
        match spawned {
            Ok(thread) => {
                friend.link = Some(LinkHandle {
                    id,
                    queue,
                    control,
                    thread,
                    handed: 0,
                });
            }
            Err(e) => {
                let reason = Reason::NoThread(e.to_string());
                friend.talk.connect_failed(reason, Instant::now());
            }
        }
    }

    /// A link has sent its last report: join its thread, which returns right after.
    fn ended(&mut self, peer: PeerId) {
        if let Some(handle) = self.friends[peer.0].link.take() {
            let _ = handle.thread.join();
        }
    }

    /// Starts the shutdown: what cannot be delivered now is reported; the links finish. Sets
    /// `give_up` to the timer after which we stop waiting for them.
    fn begin_quit(&mut self, give_up: &mut Receiver<Instant>) {
        if self.quitting {
            return;
        }
        self.quitting = true;

        for id in self.table.clone().ids() {
            self.friends[id.0].talk.quit();
            self.carry_out(id);
        }
        let l = self.settings.limits;
        *give_up = after(self.settings.connect_timeout + l.write + l.ack + Duration::from_secs(1));
    }

    /// The links did not finish in time: every message still unsettled gets its fate now. The
    /// threads are left to end with the process: one may be blocked on a stalled friend.
    fn abandon(&mut self) {
        for id in self.table.clone().ids() {
            self.friends[id.0].talk.abandon();
            self.friends[id.0].link = None;
            self.carry_out(id);
        }
    }

    /// `/peers`: every friend with what we know of them, on stderr, fitted to a terminal.
    fn print_peers(&self) {
        let now = Instant::now();
        let (inbound, unknown) = self.inbound.counts(self.table.len());
        let rows: Vec<roster::Row> = self
            .table
            .ids()
            .map(|id| {
                let peer = self.table.get(id);
                let friend = &self.friends[id.0];
                let t = friend.talk.tally();
                [
                    self.narrator.name_of(id),
                    format!("{}:{}", peer.host, peer.port),
                    outbound(&friend.talk, now),
                    friend.talk.waiting().to_string(),
                    t.delivered.to_string(),
                    t.sent.to_string(),
                    t.failed.to_string(),
                    inbound[id.0].to_string(),
                    friend
                        .last_heard
                        .map_or("-".to_string(), |at| ago(now - at)),
                ]
            })
            .collect();
        let width = match self.screen.is_terminal() {
            true => term::width().saturating_sub(1),
            false => usize::MAX,
        };
        self.screen
            .above(roster::render(&rows, width, unknown).as_bytes());
    }
}

/// The outbound column of `/peers`: what our connection to a friend is doing.
fn outbound(talk: &Conversation, now: Instant) -> String {
    match talk.link_view() {
        LinkView::Connecting => "connecting".to_string(),
        LinkView::Closing => "closing".to_string(),
        LinkView::Busy(n) => format!("{n} unconfirmed"),
        LinkView::Idle(at) => format!(
            "idle, close in {:.1}s",
            at.saturating_duration_since(now).as_secs_f64()
        ),
        LinkView::None => match talk.outage() {
            Some(outage) => format!(
                "unreachable, retry {:.0}s",
                outage.retry_at.saturating_duration_since(now).as_secs_f64()
            ),
            None => "-".to_string(),
        },
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
