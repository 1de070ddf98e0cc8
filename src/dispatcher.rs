//! The dispatcher thread: the heart of the program, and the `select()` call of the classic design.
//!
//! It owns the routing state: one `Link` record per friend we are talking to, each with the
//! `Instant` we last handed it a message. No other thread touches that state, so it needs no lock;
//! the others talk to the dispatcher through channels that all point here:
//!
//! * the console sends [`ConsoleEvent`]s (messages to route, `/peers`, quit);
//! * link and reader threads send [`Event`]s (a link is up, drained, down or closed; stdout is
//!   gone);
//! * the Ctrl-C handler sends `()` on the interrupt channel;
//! * and a timer channel, `at(deadline)`, fires when the next idle link is due to close.
//!
//! Routing a batch means handing it to the friend's link thread, which connects and writes. When
//! the link is already connected and has nothing queued, the dispatcher writes the batch to the
//! socket itself with a non-blocking write ([`link::write_now`]) instead: a lone message then
//! reaches the wire without waking another thread, and a full socket buffer still never blocks
//! the dispatcher, since what the socket does not take goes to the link.
//!
//! The loop waits on all four with one `select!`. The timer is the earliest idle deadline, so the
//! dispatcher sleeps until something happens and wakes within a few milliseconds of a link's
//! deadline, without a polling tick. [`sweep`] holds the expiry rule; it takes `now` as an
//! argument, so it is unit-tested with made-up instants.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, after, at, never, select, unbounded};
use log::{error, info, warn};

use crate::console::ConsoleEvent;
use crate::inbound::Inbound;
use crate::link::{self, Batch, LinkId, LinkTask, Shared};
use crate::peers::{PeerId, PeerTable};

/// The most bytes that wait in one link's queue. A batch that would go over it is held, and the
/// dispatcher stops reading the console until the link drains (it reports
/// [`Event::LinkDrained`] at half this) or is dropped by its write timeout. The console's channel
/// is bounded, so the console then blocks and stops reading stdin: memory stays bounded, and a
/// program piping into p2p-chat is slowed down as by any pipe, not dropped.
pub const MAX_QUEUED_BYTES: usize = 8 * 1024 * 1024;

/// What link and reader threads tell the dispatcher.
#[derive(Debug)]
pub enum Event {
    /// A link connected; `socket` is its connection, shared for the fast path.
    LinkUp {
        peer: PeerId,
        link: LinkId,
        socket: Arc<TcpStream>,
    },
    /// A link could not deliver and has ended. `undelivered` messages were in hand; `queue` is
    /// handed back so the dispatcher can count what was still waiting in it.
    LinkDown {
        peer: PeerId,
        link: LinkId,
        undelivered: usize,
        reason: String,
        queue: Receiver<Batch>,
    },
    /// A link's queue fell from above half of [`MAX_QUEUED_BYTES`] to below it.
    LinkDrained { peer: PeerId, link: LinkId },
    /// A link wrote everything it was given and closed its connection, whose local end was
    /// `local`.
    LinkClosed {
        peer: PeerId,
        link: LinkId,
        local: Option<SocketAddr>,
    },
    /// Writing to stdout failed (for example, the reader of a pipe went away).
    StdoutClosed,
}

/// Settings the dispatcher needs from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    pub write_timeout: Duration,
}

/// The dispatcher's record of one outbound link.
struct Link {
    id: LinkId,
    queue: Sender<Batch>,
    shared: Arc<Shared>,
    /// When we last handed this link a message; it closes `idle_timeout` after this.
    last_sent: Instant,
    /// Whether its connection is up (for `/peers`).
    connected: bool,
    /// The link's connection, once up: the fast path writes to it while the link is idle.
    socket: Option<Arc<TcpStream>>,
}

/// The channels the dispatcher listens on.
pub struct Inputs {
    pub console: Receiver<ConsoleEvent>,
    pub events: Receiver<Event>,
    pub interrupt: Receiver<()>,
}

pub struct Dispatcher {
    table: Arc<PeerTable>,
    me: PeerId,
    settings: Settings,
    inbound: Arc<Inbound>,
    /// Handed to each new link thread, which reports back on it.
    events: Sender<Event>,
    links: HashMap<PeerId, Link>,
    /// Batches waiting, in order, for room in their link's queue; while there are any, the
    /// console is not read.
    held: VecDeque<(PeerId, Batch)>,
    /// The friend whose full queue holds up the console, if any (to warn once).
    paused_for: Option<PeerId>,
    /// Link threads, joined at quit once they have all reported their end.
    threads: Vec<JoinHandle<()>>,
    /// Link threads that have not yet sent their last report (`LinkDown` or `LinkClosed`), and
    /// whom each is for; the dispatcher's map above forgets a link as soon as it closes it.
    live: HashMap<LinkId, PeerId>,
    /// Our end of the last link to ourselves that closed: our own reader sees a note to self
    /// arrive from this address.
    last_note_to_self: Option<SocketAddr>,
    next_link: u64,
}

impl Dispatcher {
    pub fn new(
        table: Arc<PeerTable>,
        me: PeerId,
        settings: Settings,
        inbound: Arc<Inbound>,
        events: Sender<Event>,
    ) -> Dispatcher {
        Dispatcher {
            table,
            me,
            settings,
            inbound,
            events,
            links: HashMap::new(),
            held: VecDeque::new(),
            paused_for: None,
            threads: Vec::new(),
            live: HashMap::new(),
            last_note_to_self: None,
            next_link: 0,
        }
    }

    /// The dispatcher thread's body: runs until quit, then delivers what is queued and returns.
    pub fn run(mut self, inputs: Inputs) {
        let Inputs {
            console,
            events,
            mut interrupt,
        } = inputs;
        let paused = never();
        loop {
            let (expired, deadline) = sweep(
                self.links
                    .iter()
                    .map(|(&peer, link)| (peer, link.last_sent)),
                self.settings.idle_timeout,
                Instant::now(),
            );
            for peer in expired {
                self.close_idle(peer);
            }
            // No link open: no deadline, and the timer arm never fires.
            let timer = deadline.map(at).unwrap_or_else(never);
            // While batches are held for a full queue, leave the console's messages where they
            // are: its bounded channel fills and the console waits.
            let console_arm = if self.held.is_empty() {
                &console
            } else {
                &paused
            };
            select! {
                recv(console_arm) -> event => match event {
                    Ok(ConsoleEvent::Send(batches)) => self.route(batches),
                    Ok(ConsoleEvent::Peers) => self.print_peers(),
                    // An explicit quit, or the console thread ended.
                    Ok(ConsoleEvent::Quit) | Err(_) => break,
                },
                recv(events) -> event => {
                    let event = event.expect("the dispatcher holds a sender, so this never disconnects");
                    if matches!(event, Event::StdoutClosed) {
                        info!("standard output is closed; quitting");
                        break;
                    }
                    self.handle(event);
                },
                recv(interrupt) -> signal => match signal {
                    Ok(()) => {
                        info!("interrupted; delivering queued messages, then quitting (Ctrl-C again to quit at once)");
                        break;
                    }
                    // No interrupt handler: stop watching, or this arm would fire forever.
                    Err(_) => interrupt = never(),
                },
                recv(timer) -> _ => {} // the sweep at the top of the loop closes the idle links
            }
        }
        // Messages typed before the quit may still be in the channel: route them too. Then close
        // the channel, so a console still sending learns that the program is quitting.
        for event in console.try_iter() {
            if let ConsoleEvent::Send(batches) = event {
                self.held.extend(batches);
            }
        }
        drop(console);
        self.release(true);
        self.finish(&events);
    }

    /// Queues each batch on its friend's link, in order, starting links as needed.
    fn route(&mut self, batches: Vec<(PeerId, Batch)>) {
        self.held.extend(batches);
        self.release(false);
    }

    /// Offers the held batches to their links, in order, until one does not fit. With `no_limit`
    /// (at quit, when no more input can come) every batch is queued whatever its size.
    fn release(&mut self, no_limit: bool) {
        let now = Instant::now();
        while let Some((peer, batch)) = self.held.pop_front() {
            if let Err(batch) = self.offer(peer, batch, no_limit, now) {
                self.held.push_front((peer, batch));
                return;
            }
        }
        self.paused_for = None;
    }

    /// Hands one batch to the friend's link, starting the link if there is none. Gives the
    /// batch back if the link already holds [`MAX_QUEUED_BYTES`].
    fn offer(
        &mut self,
        peer: PeerId,
        batch: Batch,
        no_limit: bool,
        now: Instant,
    ) -> Result<(), Batch> {
        let table = Arc::clone(&self.table);
        let Some(link) = self.link_for(peer) else {
            self.report_undelivered(peer, batch.count, "cannot start a thread for the link");
            return Ok(());
        };
        let queued = link.shared.queued_bytes.load(Ordering::Acquire);
        let mut batch = batch;
        if queued == 0
            && let Some(socket) = &link.socket
        {
            // The fast path: the link is connected and idle, so nothing is queued ahead of this
            // batch. Write it here, without blocking, and skip the hand-off to the link thread.
            let name = &table.get(peer).name;
            let written = link::write_now(socket, &link.shared, name, &batch);
            link.last_sent = now;
            if written == batch.frames.len() {
                return Ok(());
            }
            // The socket took only part of it, or the friend closed the connection: the link
            // thread, which may block and may reconnect, sends the rest.
            batch = batch.after_written(written);
        }
        let len = batch.frames.len();
        // An empty queue takes any batch, so one larger than the limit cannot wait forever.
        if !no_limit && queued > 0 && queued + len > MAX_QUEUED_BYTES {
            if self.paused_for != Some(peer) {
                self.paused_for = Some(peer);
                warn!(
                    "{} KiB are waiting for {}, who is reading slowly or not at all; \
                     reading no more input until they catch up or --write-timeout drops them",
                    queued / 1024,
                    table.get(peer).name
                );
            }
            return Err(batch);
        }
        link.shared.queued_bytes.fetch_add(len, Ordering::Relaxed);
        match link.queue.send(batch) {
            Ok(()) => {
                link.last_sent = now;
                Ok(())
            }
            Err(returned) => {
                // The link thread has just ended (its report is on its way). A fresh link
                // connects anew; its thread is waiting on its queue, so this send succeeds.
                self.links.remove(&peer);
                self.offer(peer, returned.into_inner(), no_limit, now)
            }
        }
    }

    /// The link to `peer`, started if there is none.
    fn link_for(&mut self, peer: PeerId) -> Option<&mut Link> {
        if !self.links.contains_key(&peer) {
            let link = self.spawn_link(peer)?;
            self.links.insert(peer, link);
        }
        self.links.get_mut(&peer)
    }

    fn spawn_link(&mut self, peer: PeerId) -> Option<Link> {
        let id = LinkId(self.next_link);
        self.next_link += 1;
        let (queue, receiver) = unbounded();
        let shared = Arc::new(Shared::default());
        let task = LinkTask {
            id,
            peer_id: peer,
            peer: self.table.get(peer).clone(),
            connect_timeout: self.settings.connect_timeout,
            write_timeout: self.settings.write_timeout,
            queue: receiver,
            shared: shared.clone(),
            events: self.events.clone(),
        };
        let spawned = thread::Builder::new()
            .name(format!("link:{}", self.table.get(peer).name))
            .spawn(move || link::run(task));
        match spawned {
            Ok(thread) => {
                self.threads.retain(|thread| !thread.is_finished());
                self.threads.push(thread);
                self.live.insert(id, peer);
                Some(Link {
                    id,
                    queue,
                    shared,
                    last_sent: Instant::now(),
                    connected: false,
                    socket: None,
                })
            }
            Err(e) => {
                error!("cannot start a link thread: {e}");
                None
            }
        }
    }

    /// Closes a link that has been idle for the idle timeout: dropping the queue's sender tells the
    /// link thread to finish and close its connection.
    fn close_idle(&mut self, peer: PeerId) {
        if self.links.remove(&peer).is_some() {
            info!(
                "closing idle connection to {} after {:.1} s",
                self.table.get(peer).name,
                self.settings.idle_timeout.as_secs_f64()
            );
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::LinkUp { peer, link, socket } => {
                if let Some(current) = self.links.get_mut(&peer).filter(|l| l.id == link) {
                    current.connected = true;
                    current.socket = Some(socket);
                }
            }
            Event::LinkDown {
                peer,
                link,
                undelivered,
                reason,
                queue,
            } => {
                self.live.remove(&link);
                if self.links.get(&peer).is_some_and(|l| l.id == link) {
                    self.links.remove(&peer);
                }
                let waiting: usize = queue.try_iter().map(|batch| batch.count).sum();
                self.report_undelivered(peer, undelivered + waiting, &reason);
                // Held batches for this friend now go to a fresh link, which connects anew.
                self.release(false);
            }
            Event::LinkDrained { .. } => self.release(false),
            Event::LinkClosed { peer, link, local } => {
                self.live.remove(&link);
                if peer == self.me {
                    self.last_note_to_self = local;
                }
            }
            Event::StdoutClosed => {}
        }
    }

    fn report_undelivered(&self, peer: PeerId, count: usize, reason: &str) {
        if count > 0 {
            error!(
                "{} message(s) to {} not delivered: {reason}",
                count,
                self.table.get(peer)
            );
        }
    }

    /// `/peers`: every friend with the state of our connections to and from them, on stderr.
    fn print_peers(&self) {
        let now = Instant::now();
        let (inbound, unknown) = self.inbound.counts(self.table.len());
        let mut out = String::from(
            "friend            address                 outbound                         inbound\n",
        );
        for id in self.table.ids() {
            let peer = self.table.get(id);
            let name = if id == self.me {
                format!("{} (you)", peer.name)
            } else {
                peer.name.clone()
            };
            let outbound = match self.links.get(&id) {
                None => "-".to_string(),
                Some(link) => {
                    let left = (link.last_sent + self.settings.idle_timeout)
                        .saturating_duration_since(now);
                    let state = if link.connected { "open" } else { "connecting" };
                    format!("{state}, idle close in {:.1} s", left.as_secs_f64())
                }
            };
            let address = format!("{}:{}", peer.host, peer.port);
            out.push_str(&format!(
                "{name:<17} {address:<23} {outbound:<32} {}\n",
                inbound[id.0]
            ));
        }
        if unknown > 0 {
            out.push_str(&format!(
                "{unknown} inbound connection(s) have not said who they are yet\n"
            ));
        }
        let _ = io::stderr().write_all(out.as_bytes());
    }

    /// Shutdown, in order: close every link's queue so each delivers what it holds and ends;
    /// wait for their reports (bounded by the connect and write timeouts); let a note to self be
    /// printed; then close every inbound connection.
    fn finish(mut self, events: &Receiver<Event>) {
        self.links.clear();
        let limit =
            self.settings.connect_timeout + self.settings.write_timeout + Duration::from_secs(1);
        let give_up = after(limit);
        while !self.live.is_empty() {
            select! {
                recv(events) -> event => {
                    if let Ok(event) = event {
                        self.handle(event);
                    }
                }
                recv(give_up) -> _ => {
                    for peer in self.live.values() {
                        error!(
                            "quitting before the link to {} finished ({:.1} s): messages still \
                             queued for them were not delivered",
                            self.table.get(*peer),
                            limit.as_secs_f64()
                        );
                    }
                    break;
                }
            }
        }
        if self.live.is_empty() {
            // Every link has sent its last report, so these joins return at once.
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
        }
        if let Some(local) = self.last_note_to_self {
            // Our own reader prints a note to self; give it a moment to read to the end.
            self.inbound.wait_ended(local, Duration::from_secs(2));
        }
        self.inbound.close_all();
    }
}

/// The expiry rule, with time as an argument: of the links `(peer, last_sent)`, which are idle at
/// `now`, and when the earliest of the others is due. A link is idle once `idle` has passed since
/// it was last given a message.
pub fn sweep(
    links: impl Iterator<Item = (PeerId, Instant)>,
    idle: Duration,
    now: Instant,
) -> (Vec<PeerId>, Option<Instant>) {
    let mut expired = Vec::new();
    let mut next: Option<Instant> = None;
    for (peer, last_sent) in links {
        let deadline = last_sent + idle;
        if deadline <= now {
            expired.push(peer);
        } else {
            next = Some(next.map_or(deadline, |n| n.min(deadline)));
        }
    }
    expired.sort();
    (expired, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_links_means_no_deadline() {
        let (expired, next) = sweep(std::iter::empty(), Duration::from_secs(30), Instant::now());
        assert!(expired.is_empty());
        assert_eq!(next, None);
    }

    #[test]
    fn the_next_deadline_is_the_earliest_last_send_plus_the_timeout() {
        let t0 = Instant::now();
        let idle = Duration::from_secs(30);
        let links = [
            (PeerId(1), t0 + Duration::from_secs(5)),
            (PeerId(2), t0 + Duration::from_secs(2)),
        ];
        let (expired, next) = sweep(links.into_iter(), idle, t0 + Duration::from_secs(10));
        assert!(expired.is_empty());
        assert_eq!(next, Some(t0 + Duration::from_secs(32)));
    }

    #[test]
    fn links_expire_exactly_at_their_deadline() {
        let t0 = Instant::now();
        let idle = Duration::from_millis(500);
        let links = [
            (PeerId(3), t0),
            (PeerId(1), t0),
            (PeerId(2), t0 + Duration::from_millis(400)),
        ];
        let just_before = t0 + Duration::from_millis(499);
        let (expired, next) = sweep(links.into_iter(), idle, just_before);
        assert!(expired.is_empty());
        assert_eq!(next, Some(t0 + idle));

        let (expired, next) = sweep(links.into_iter(), idle, t0 + idle);
        assert_eq!(expired, [PeerId(1), PeerId(3)]);
        assert_eq!(next, Some(t0 + Duration::from_millis(900)));
    }
}
