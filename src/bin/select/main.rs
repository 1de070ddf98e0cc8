//! `p2p-chat-select`: the same chat driven the classic way, to read next to p2p-chat and next to
//! the C program `p2p-chat-app.c`. One thread, one `poll()` call, and every socket in it.
//!
//! What we know about each friend is the same pure model p2p-chat's dispatcher drives, a
//! [`Conversation`](p2p_chat::conversation::Conversation): outbox, flight, kind, deadlines, fates.
//! So is what arrives on an inbound connection ([`Incoming`](p2p_chat::incoming::Incoming)), the
//! admission cap ([`Inbound`]) and what the user is told (`Friends`, `Narrator`). Only the way
//! events reach them differs: here every socket is non-blocking and one poll() says which is ready.
//!
//! Each turn of the loop ticks every model (acting on what is due, and learning the earliest next
//! deadline), then builds the poll set: the signal descriptor (Ctrl-C arrives here as data, not
//! as a handler on another thread), the listening socket, stdin (unless a reachable friend's
//! outbox is full: flow control), every inbound connection (readable: frames to show) and every
//! outbound one (readable: confirmations or the friend's end; writable: wanted only while
//! connecting or while the model has bytes to write). poll()'s timeout is the earliest deadline.
//! Then it handles whatever is ready, and goes round again.

mod inbound;
mod outbound;
mod sys;

use std::io::{self, ErrorKind};
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{error, info};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use p2p_chat::cli::{self, Action, Options};
use p2p_chat::compose::Console;
use p2p_chat::conversation::{Limits, earliest};
use p2p_chat::event::ConsoleEvent;
use p2p_chat::friends::Friends;
use p2p_chat::inbound::Inbound;
use p2p_chat::logging::NOTICE;
use p2p_chat::peers::{PeerId, PeerTable};
use p2p_chat::stages::{self, Stage};
use p2p_chat::terminal::{Screen, Typing, term};

use inbound::InConn;
use outbound::Link;

/// What becomes of messages to a friend whose host did not resolve.
const UNRESOLVED: &str = "wait unsent: p2p-chat-select looks names up only at start-up";

/// `p2p-chat-select --help`: what this program is, then the options both programs share.
const ABOUT: &str = "\
p2p-chat-select: p2p-chat as one poll() loop on one thread

Usage: p2p-chat-select [OPTIONS] <NAME>

The same chat as p2p-chat, for the same peer table and the same friends: type
friend/message, */message, /peers, /help, /quit; messages arrive on stdout as
[sender] message, and everything else goes to stderr. The same model decides
every message's fate (delivered, sent, or reported), and in a terminal the same
console edits the line you type (keys as in p2p-chat --help). Only the driver
differs: one poll() where p2p-chat has threads and channels;
docs/select-vs-threads.md compares the two.

";

/// What the loop owns: everything.
struct Chat {
    table: Arc<PeerTable>,
    options: Options,
    limits: Limits,
    /// How long a connection that has not said who it is may stay silent.
    silence_limit: Duration,
    screen: Screen,
    listener: TcpListener,
    signals: SignalFd,
    stdin_open: bool,
    /// What is typed, turned into messages and commands: p2p-chat's console logic.
    console: Console<Vec<ConsoleEvent>>,
    /// In a terminal: the line being typed.
    typing: Option<Typing>,
    /// Every friend's model, as p2p-chat's dispatcher holds it, and our connection to each.
    friends: Friends,
    links: Vec<Link>,
    inbound: Vec<InConn>,
    /// The admission cap, shared with p2p-chat: who gets in, who is pushed out.
    registry: Arc<Inbound>,
}

/// Which descriptor each entry of the poll set stands for.
#[derive(Clone, Copy)]
enum Slot {
    Signals,
    Listener,
    Stdin,
    Inbound(usize),
    Outbound(PeerId),
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", e.report("p2p-chat-select"));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn run() -> p2p_chat::error::Result<ExitCode> {
    let options = match cli::parse(std::env::args_os().skip(1))? {
        Action::Run(options) => options,
        Action::Help => {
            println!("{ABOUT}{}", cli::OPTIONS);
            return Ok(ExitCode::SUCCESS);
        }
        Action::Version => {
            println!("p2p-chat-select {}", env!("CARGO_PKG_VERSION"));
            return Ok(ExitCode::SUCCESS);
        }
    };
    let screen = p2p_chat::screen(&options);
    p2p_chat::logging::init(&screen, options.verbose);
    // Every lookup happens here, once: the loop must never wait on DNS.
    let (table, me) = p2p_chat::load_table(&options, UNRESOLVED)?;
    let listener = p2p_chat::listen(&table, me, &options)?;
    listener.set_nonblocking(true)?;
    let signals = sys::signals()?;
    let table = Arc::new(table);
    let limits = options.limits();
    let mut chat = Chat {
        friends: Friends::new(table.clone(), me, limits, &screen),
        links: table.ids().map(|_| Link::default()).collect(),
        registry: p2p_chat::inbound_registry(&options, &table),
        console: Console::new(table.clone(), me, Vec::new()),
        typing: screen.is_terminal().then(|| Typing::new(&table, &screen)),
        table,
        silence_limit: p2p_chat::silence_limit(options.idle_timeout),
        options,
        limits,
        screen,
        listener,
        signals,
        stdin_open: true,
        inbound: Vec::new(),
    };
    // In a terminal the console edits the line itself, as p2p-chat's does; raw mode is undone
    // when this guard goes, however the loop ends.
    let _raw_mode = chat
        .typing
        .is_some()
        .then(term::RawMode::enter)
        .transpose()?;
    Ok(chat.serve())
}

impl Chat {
    /// The loop: one poll() per turn, until quit.
    fn serve(&mut self) -> ExitCode {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let now = Instant::now();
            let mut next = self.tick(now);
            if self.friends.quitting() && self.friends.all_done() {
                return self.bye(ExitCode::SUCCESS);
            }
            let read_stdin = self.stdin_open && self.friends.take_input();
            // The poll set, rebuilt each turn, as FD_SET is before each select(). What was
            // typed before a Ctrl-C is read before the Ctrl-C is acted on: it was typed to go.
            let (mut slots, mut fds) = (vec![], vec![]);
            let stdin = io::stdin();
            if read_stdin {
                slots.push(Slot::Stdin);
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            slots.extend([Slot::Signals, Slot::Listener]);
            fds.push(PollFd::new(self.signals.as_fd(), PollFlags::POLLIN));
            fds.push(PollFd::new(self.listener.as_fd(), PollFlags::POLLIN));
            for (i, conn) in self.inbound.iter().enumerate() {
                slots.push(Slot::Inbound(i));
                fds.push(PollFd::new(conn.stream.as_fd(), PollFlags::POLLIN));
                next = earliest(next, conn.deadline(self.silence_limit));
            }
            for (id, link) in self.table.ids().zip(&self.links) {
                if let Some((fd, events)) = link.poll_interest(self.friends.get(id)) {
                    slots.push(Slot::Outbound(id));
                    fds.push(PollFd::new(fd, events));
                }
                next = earliest(next, link.connect_deadline());
            }
            let timeout = match next {
                // Rounded up, so poll() never wakes a millisecond before the deadline.
                Some(at) => {
                    let wait = at.saturating_duration_since(now) + Duration::from_micros(999);
                    PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX)
                }
                None => PollTimeout::NONE,
            };
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    // Unlike the C program, which breaks out of its loop here, say so and end.
                    error!("poll failed: {e}");
                    return ExitCode::FAILURE;
                }
            }
            let ready: Vec<(Slot, PollFlags)> = slots
                .iter()
                .zip(&fds)
                .filter_map(|(&slot, fd)| Some((slot, fd.revents()?)))
                .filter(|(_, events)| !events.is_empty())
                .collect();
            drop(fds);
            let now = Instant::now();
            for (slot, events) in ready {
                match slot {
                    Slot::Signals => {
                        if let Some(code) = self.on_signal(now) {
                            return code;
                        }
                    }
                    Slot::Listener => self.accept(now),
                    Slot::Stdin => self.read_stdin(&mut buf),
                    Slot::Inbound(i) => self.on_inbound(i, &mut buf, now),
                    Slot::Outbound(peer) => {
                        let talk = self.friends.talk(peer);
                        self.links[peer.0].on_ready(events, &mut buf, talk, &self.table, peer, now);
                        self.carry_out(peer);
                    }
                }
            }
            // Connections that ended this turn go now, so the indexes above stayed valid.
            self.inbound.retain(|conn| !conn.ended);
        }
    }

    /// Lets every model act on its deadlines and carries out what they ask; gives up connects
    /// and first-confirmation waits that are due. Returns the earliest next deadline.
    fn tick(&mut self, now: Instant) -> Option<Instant> {
        for id in self.table.clone().ids() {
            self.links[id.0].expire_connect(self.friends.talk(id), now);
        }
        // Carrying out can move a deadline (a connect that fails at once, with no route, holds
        // the messages for a retry), so the models tick again until they ask for nothing.
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
        for conn in &mut self.inbound {
            conn.expire(&self.table, &self.registry, self.silence_limit, now);
        }
        self.inbound.retain(|conn| !conn.ended);
        next
    }

    /// Carries out what a friend's model asks; says whether it asked anything.
    fn carry_out(&mut self, peer: PeerId) -> bool {
        let timeout = self.options.connect_timeout;
        let mut acted = false;
        while let Some(action) = self.friends.next_action(peer) {
            let talk = self.friends.talk(peer);
            self.links[peer.0].obey(action, talk, &self.table, peer, timeout, Instant::now());
            acted = true;
        }
        acted
    }

    /// Ctrl-C: the first asks for a graceful quit, the second quits at once. A resized window
    /// comes this way too.
    fn on_signal(&mut self, now: Instant) -> Option<ExitCode> {
        while let Ok(Some(signal)) = self.signals.read_signal() {
            if signal.ssi_signo == Signal::SIGWINCH as u32 {
                self.screen.resized(); // the window changed size
                continue;
            }
            if self.friends.quitting() {
                self.friends.abandon(now);
                return Some(self.bye(ExitCode::from(130)));
            }
            info!(
                target: NOTICE,
                "interrupted; delivering what was typed, then quitting (Ctrl-C again to quit at once)"
            );
            self.quit(now);
        }
        None
    }

    fn accept(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((stream, remote)) => {
                    if let Some(conn) = InConn::admit(stream, remote, &self.registry, now) {
                        self.inbound.push(conn);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    error!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// A friend's connection to us has something: frames to show, or its end.
    fn on_inbound(&mut self, i: usize, buf: &mut [u8], now: Instant) {
        let conn = &mut self.inbound[i];
        let heard = conn.on_readable(buf, &self.table, &self.screen, &self.registry, now);
        match heard {
            inbound::Heard::Nothing => {}
            inbound::Heard::Friend(peer) => {
                self.friends.heard(peer, now);
                self.carry_out(peer);
            }
            inbound::Heard::StdoutClosed => {
                info!("standard output is closed; quitting");
                self.quit(now);
            }
        }
    }

    /// Reads what stdin has and gives it to the console, which answers mistakes and hands over
    /// messages and commands; a line split across reads waits for its end.
    fn read_stdin(&mut self, buf: &mut [u8]) {
        let n = match sys::read_stdin(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => return,
            Err(e) => {
                error!("cannot read standard input: {e}; quitting");
                0
            }
        };
        let answers = &mut io::stderr();
        let keep_going = match (&mut self.typing, n) {
            (_, 0) => {
                self.console.end(answers); // end of input means quit
                false
            }
            (Some(typing), _) => self.console.keys(&buf[..n], typing, &self.screen),
            (None, _) => self.console.feed(&buf[..n], answers),
        };
        // After /quit or the end of input, nothing more is read.
        self.stdin_open &= keep_going;
        let now = Instant::now();
        for event in self.console.take_events() {
            match event {
                ConsoleEvent::Send(batches, typed) => {
                    stages::mark(Stage::Taken);
                    self.friends.send(batches, typed, now);
                }
                // `/peers`: the same table as p2p-chat's.
                ConsoleEvent::Peers => self.friends.print_peers(&self.registry, &self.screen),
                ConsoleEvent::Quit => self.quit(now),
            }
        }
    }

    /// Starts the quit: the models deliver what they can, within the quit's wait, and report
    /// the rest; nothing new.
    fn quit(&mut self, now: Instant) {
        let wait = self.limits.quit_wait();
        self.friends.quit(now, wait);
    }

    fn bye(&mut self, code: ExitCode) -> ExitCode {
        self.friends.finish(Instant::now());
        for conn in &mut self.inbound {
            conn.settle(&self.table);
        }
        self.registry.close_all(Duration::ZERO);
        stages::write(&self.options.name); // only in a run that records them
        self.screen.close();
        info!("bye");
        code
    }
}
