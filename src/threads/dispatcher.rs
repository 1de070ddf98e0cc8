//! The dispatcher thread: the heart of the program, and the `select()` call of the classic design.
//!
//! It owns the [`Friends`]: one [`Conversation`](crate::conversation::Conversation) per friend,
//! the pure model of what we know about them (their outbox, what is in flight, their kind, every
//! deadline, every message's fate), and for each the handle of the link thread that carries out
//! its I/O. No other thread touches them, so they need no lock. The dispatcher only moves events
//! into the models and carries their actions out:
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

use crossbeam_channel::{Receiver, Select, Sender, at, bounded, never};
use log::info;

use super::link::{self, LinkTask};
use crate::conversation::{Limits, earliest};
use crate::event::{Batch, ConsoleEvent, Control, Event, LinkId, LinkReport, Reason};
use crate::friends::{Action, Friends};
use crate::inbound::Inbound;
use crate::logging::NOTICE;
use crate::peers::{PeerId, PeerTable};
use crate::stages::{self, Stage};
use crate::terminal::Screen;

/// Batches a link's queue holds. Small: messages wait in the outbox, where the model can still
/// count, hold and report them, rather than in a channel.
const LINK_QUEUE: usize = 2;

/// How long the readers get at the quit, once their connections' reading sides are shut, to
/// confirm what they have shown.
const READERS_AT_QUIT: Duration = Duration::from_millis(200);

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

pub struct Dispatcher {
    table: Arc<PeerTable>,
    settings: Settings,
    inbound: Arc<Inbound>,
    /// Handed to each new link thread, which reports back on it.
    events: Sender<Event>,
    screen: Screen,
    friends: Friends,
    /// Each friend's link, while one runs.
    links: Vec<Option<LinkHandle>>,
    next_link: u64,
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
        Dispatcher {
            friends: Friends::new(table.clone(), me, settings.limits, &screen),
            links: table.ids().map(|_| None).collect(),
            table,
            settings,
            inbound,
            events,
            screen,
            next_link: 0,
        }
    }

    /// The dispatcher thread's body: runs until quit, then delivers or reports what it holds.
    /// Returns whether a second Ctrl-C cut the quit short.
    pub fn run(mut self, inputs: Inputs) -> bool {
        let Inputs {
            mut console,
            events,
            mut interrupt,
        } = inputs;
        let mut at_once = false;
        loop {
            let now = Instant::now();
            // Carrying out can move a deadline (a link thread that cannot be started holds the
            // messages for a retry), so the models tick again until they ask for nothing.
            let next = loop {
                let next = self.friends.tick(now);
                let table = Arc::clone(&self.table);
                let acted = table
                    .ids()
                    .fold(false, |acted, id| self.carry_out(id) | acted);
                if !acted {
                    break next;
                }
            };
            let next = earliest(next, self.friends.print_echoes(now));
            if self.friends.quitting() && self.friends.all_done() {
                break;
            }
            // One deadline: the models' earliest, or the end of the quit.
            let timer = next.map(at).unwrap_or_else(never);
            // The send arms: a clone of each link queue a model has bytes for (cheap: an `Arc`).
            let feeds: Vec<(PeerId, Sender<Batch>)> = self
                .table
                .ids()
                .filter(|&id| self.friends.get(id).wants_to_write())
                .filter_map(|id| Some((id, self.links[id.0].as_ref()?.queue.clone())))
                .collect();
            let mut select = Select::new();
            let console_arm = self.friends.take_input().then(|| select.recv(&console));
            let events_arm = select.recv(&events);
            let interrupt_arm = select.recv(&interrupt);
            let timer_arm = select.recv(&timer);
            let feed_arms: Vec<usize> = feeds.iter().map(|(_, q)| select.send(q)).collect();
            let operation = select.select();
            let index = operation.index();
            if Some(index) == console_arm {
                match operation.recv(&console) {
                    Ok(ConsoleEvent::Send(batches, typed)) => {
                        stages::mark(Stage::Taken);
                        self.friends.send(batches, typed, Instant::now());
                    }
                    Ok(ConsoleEvent::Peers) => self.print_peers(),
                    Ok(ConsoleEvent::Quit) => self.begin_quit(),
                    // The console thread ended: stop watching, or this arm would fire forever.
                    Err(_) => {
                        console = never();
                        self.begin_quit();
                    }
                }
            } else if index == events_arm {
                match operation.recv(&events) {
                    Ok(Event::StdoutClosed) => {
                        info!("standard output is closed; quitting");
                        self.begin_quit();
                    }
                    Ok(event) => self.handle(event),
                    Err(_) => unreachable!("the dispatcher holds a sender of its own events"),
                }
            } else if index == interrupt_arm {
                match operation.recv(&interrupt) {
                    Ok(()) if !self.friends.quitting() => {
                        info!(
                            target: NOTICE,
                            "interrupted; delivering what was typed, then quitting \
                             (Ctrl-C again to quit at once)"
                        );
                        self.begin_quit();
                    }
                    // Ctrl-C again: what is unsettled gets its fate now, and we are done.
                    Ok(()) => {
                        self.friends.abandon(Instant::now());
                        at_once = true;
                    }
                    // No interrupt handler: stop watching, or this arm would fire forever.
                    Err(_) => interrupt = never(),
                }
            } else if index == timer_arm {
                let _ = operation.recv(&timer); // the top of the loop does the work
            } else {
                let slot = feed_arms
                    .iter()
                    .position(|&arm| arm == index)
                    .expect("every other arm is a send arm");
                let (peer, queue) = &feeds[slot];
                let batch = self
                    .friends
                    .talk(*peer)
                    .take_chunk(now)
                    .expect("a send arm is only made for a model that wants to write");
                let link = self.links[peer.0].as_mut().expect("a send arm has a link");
                link.handed += batch.frames.len() as u64;
                stages::mark(Stage::Modelled);
                // A link that has just ended never took it: its report counts it as unsent.
                let _ = operation.send(queue, batch);
            }
        }
        // A console blocked handing over a batch is waiting at the rendezvous: take it, so what
        // it holds is reported rather than lost when the process ends.
        while let Ok(ConsoleEvent::Send(batches, typed)) = console.try_recv() {
            self.friends.send(batches, typed, Instant::now());
            for id in self.table.clone().ids() {
                self.carry_out(id);
            }
        }
        self.friends.finish(Instant::now());
        self.inbound.close_all(READERS_AT_QUIT);
        at_once
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
                self.friends.heard(peer, now);
                peer
            }
            Event::StdoutClosed => return,
        };
        self.carry_out(peer);
    }

    fn link_report(&mut self, peer: PeerId, link: LinkId, report: LinkReport, now: Instant) {
        let Some(handle) = self.links[peer.0].as_ref().filter(|l| l.id == link) else {
            return; // news from a link already replaced
        };
        let handed = handle.handed;
        let talk = self.friends.talk(peer);
        match report {
            LinkReport::Connected => talk.connected(now),
            LinkReport::Wrote(n) => talk.wrote(n, now),
            LinkReport::Confirmations(bytes) => talk.confirmations(&bytes, now),
            LinkReport::Unacked { bytes, answering } => talk.unacked(bytes, answering, now),
            LinkReport::ConnectFailed(reason) => {
                self.ended(peer);
                self.friends.talk(peer).connect_failed(reason, now);
            }
            LinkReport::Ended {
                received,
                unsent,
                reason,
            } => {
                self.ended(peer);
                let never_taken = handed - received;
                self.friends
                    .talk(peer)
                    .ended(never_taken + unsent, reason, now);
            }
        }
    }

    /// Carries out what a friend's model asks; says whether it asked anything.
    fn carry_out(&mut self, peer: PeerId) -> bool {
        let mut acted = false;
        while let Some(action) = self.friends.next_action(peer) {
            acted = true;
            let control = match action {
                Action::Connect => {
                    self.spawn_link(peer);
                    continue;
                }
                Action::HalfClose(closing) => Control::HalfClose(closing),
                Action::Close(closing) => Control::Close(closing),
                Action::AskUnacked => Control::AskUnacked,
            };
            if let Some(link) = &self.links[peer.0] {
                // The model asks one thing at a time, and the channel has room for several.
                let _ = link.control.try_send(control);
            }
        }
        acted
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
        match spawned {
            Ok(thread) => {
                let handed = 0;
                self.links[peer.0] = Some(LinkHandle {
                    id,
                    queue,
                    control,
                    thread,
                    handed,
                });
            }
            Err(e) => {
                let reason = Reason::NoThread(e.to_string());
                self.friends
                    .talk(peer)
                    .connect_failed(reason, Instant::now());
            }
        }
    }

    /// A link has sent its last report: join its thread, which returns right after.
    fn ended(&mut self, peer: PeerId) {
        if let Some(handle) = self.links[peer.0].take() {
            let _ = handle.thread.join();
        }
    }

    /// Starts the shutdown: what cannot be delivered now is reported; the links finish, or,
    /// after the quit's wait, the models give up on them (a link thread may be blocked on a
    /// stalled friend: it is left to end with the process).
    fn begin_quit(&mut self) {
        let wait = self.settings.limits.quit_wait();
        self.friends.quit(Instant::now(), wait);
    }

    /// `/peers`: every friend with what we know of them.
    fn print_peers(&self) {
        self.friends.print_peers(&self.inbound, &self.screen);
    }
}
