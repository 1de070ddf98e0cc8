//! `p2p-chat-select`: the same chat written the classic way, to read next to p2p-chat and next to
//! the C program `p2p-chat-app.c`. One thread, one `poll()` call, and every socket in it.
//!
//! Each turn of the loop builds the poll set: the signal descriptor (Ctrl-C arrives here as data,
//! not as a handler running on another thread), the listening socket, stdin, every inbound
//! connection (readable: frames to show) and every outbound one (readable: the friend closed it or
//! sent confirmations; writable: wanted only while connecting or while bytes wait). poll()'s
//! timeout is the earliest deadline: an idle close, a connect that takes too long, the end of a
//! quit. Then it handles whatever is ready and goes round again.
//!
//! What threads get from blocking calls, this loop does by hand: a connect that does not wait
//! (`sys::connect_nonblocking`, finished when the socket turns writable), a buffer per outbound
//! connection for what the friend has not taken yet, partial writes, and a read of each socket
//! only when poll() says it has something. So one slow or absent friend never holds up the rest.
//!
//! It is the classic peer: no confirmations, no outbox, no line editor. It reads the
//! confirmations a p2p-chat sends back only to throw them away. The table, the wire format, the
//! console commands and the `[sender] message` output are p2p-chat's, through the same library.

mod sys;

use std::collections::BTreeMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use log::{error, info, warn};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use p2p_chat::cli::{self, Action, Options};
use p2p_chat::command::{self, Command, Target};
use p2p_chat::frame::{self, Decoded, FrameDecoder};
use p2p_chat::peers::{PeerId, PeerTable};
use p2p_chat::screen::{Screen, escaped};

/// The most bytes that may wait for one friend; beyond, new messages to them are refused.
const MAX_PENDING: usize = 8 * 1024 * 1024;

/// How long a quit may wait for the last bytes to go out.
const QUIT_LIMIT: Duration = Duration::from_secs(5);

/// An outbound connection: ours, to a friend, to write to.
struct Outbound {
    stream: TcpStream,
    addr: SocketAddr,
    /// Until the socket turns writable, the connect is still under way.
    connecting: bool,
    started: Instant,
    /// Frames the friend has not taken yet; `sent` of them went out.
    pending: Vec<u8>,
    sent: usize,
    last_used: Instant,
}

impl Outbound {
    fn waiting(&self) -> &[u8] {
        &self.pending[self.sent..]
    }
}

/// An inbound connection: a friend's, to read from.
struct Inbound {
    stream: TcpStream,
    addr: SocketAddr,
    decoder: FrameDecoder,
}

/// What the loop owns: everything.
struct Chat {
    table: PeerTable,
    me: PeerId,
    options: Options,
    screen: Screen,
    listener: TcpListener,
    signals: SignalFd,
    stdin_open: bool,
    /// The start of a stdin line that has not ended yet.
    partial: Vec<u8>,
    outbound: BTreeMap<PeerId, Outbound>,
    inbound: Vec<Inbound>,
    /// Set by /quit, end of input or Ctrl-C: the time by which to be gone.
    quit_by: Option<Instant>,
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
            eprintln!("p2p-chat-select: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn run() -> p2p_chat::error::Result<ExitCode> {
    let options = match cli::parse(std::env::args_os().skip(1))? {
        Action::Run(options) => options,
        Action::Help => {
            println!(
                "p2p-chat-select: p2p-chat as one poll() loop\n\n{}",
                cli::USAGE
            );
            return Ok(ExitCode::SUCCESS);
        }
        Action::Version => {
            println!("p2p-chat-select {}", env!("CARGO_PKG_VERSION"));
            return Ok(ExitCode::SUCCESS);
        }
    };
    let screen = Screen::from_env();
    p2p_chat::logging::init(&screen, false);
    let mut table = PeerTable::load(&options.peers_path)?;
    let me = p2p_chat::find_me(&table, &options)?;
    for (id, error) in table.resolve(&options.peers_path, options.connect_timeout) {
        if id == me {
            return Err(error);
        }
        warn!("{error}; messages to {} cannot be sent", table.get(id).name);
    }
    let listener = p2p_chat::bind(&table, me)?;
    listener.set_nonblocking(true)?;
    // Ctrl-C becomes something to read: blocked as a signal, delivered through a descriptor.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGTERM);
    mask.thread_block().map_err(io::Error::from)?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK).map_err(io::Error::from)?;
    info!(
        "{} listening on {} (idle timeout {:.1} s)",
        table.get(me).name,
        listener.local_addr()?,
        options.idle_timeout.as_secs_f64()
    );
    let mut chat = Chat {
        table,
        me,
        options,
        screen,
        listener,
        signals,
        stdin_open: true,
        partial: Vec::new(),
        outbound: BTreeMap::new(),
        inbound: Vec::new(),
        quit_by: None,
    };
    Ok(chat.serve())
}

impl Chat {
    /// The loop: one poll() per turn, until quit.
    fn serve(&mut self) -> ExitCode {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let now = Instant::now();
            self.expire(now);
            if let Some(by) = self.quit_by {
                let flushed = self.outbound.values().all(|o| o.waiting().is_empty());
                if flushed || now >= by {
                    self.report_unsent("p2p-chat-select is quitting");
                    info!("bye");
                    return ExitCode::SUCCESS;
                }
            }
            // The poll set, rebuilt each turn, as FD_SET is before each select().
            let mut slots = vec![Slot::Signals, Slot::Listener];
            let mut fds = vec![
                PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
            ];
            let stdin = io::stdin();
            if self.stdin_open && self.quit_by.is_none() {
                slots.push(Slot::Stdin);
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            for (i, conn) in self.inbound.iter().enumerate() {
                slots.push(Slot::Inbound(i));
                fds.push(PollFd::new(conn.stream.as_fd(), PollFlags::POLLIN));
            }
            for (&peer, out) in &self.outbound {
                // The write set: only while connecting or while bytes wait.
                let mut events = PollFlags::POLLIN;
                if out.connecting || !out.waiting().is_empty() {
                    events |= PollFlags::POLLOUT;
                }
                slots.push(Slot::Outbound(peer));
                fds.push(PollFd::new(out.stream.as_fd(), events));
            }
            let timeout = match self.next_deadline() {
                Some(at) => {
                    let wait = at.saturating_duration_since(now) + Duration::from_millis(1);
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
            // Inbound connections that end are removed after the turn, highest index first, so
            // the indexes in `ready` stay valid.
            let mut ended = Vec::new();
            for (slot, events) in ready {
                match slot {
                    Slot::Signals => {
                        if let Some(code) = self.on_signal() {
                            return code;
                        }
                    }
                    Slot::Listener => self.accept(),
                    Slot::Stdin => self.read_stdin(&mut buf),
                    Slot::Inbound(i) => {
                        if !self.read_inbound(i, &mut buf) {
                            ended.push(i);
                        }
                    }
                    Slot::Outbound(peer) => self.on_outbound(peer, events, &mut buf),
                }
            }
            for i in ended.into_iter().rev() {
                self.inbound.swap_remove(i);
            }
        }
    }

    /// The earliest moment something is due: an idle close, a connect's limit, the quit's.
    fn next_deadline(&self) -> Option<Instant> {
        let links = self.outbound.values().map(|out| match out.connecting {
            true => out.started + self.options.connect_timeout,
            false if out.waiting().is_empty() => out.last_used + self.options.idle_timeout,
            false => out.last_used + QUIT_LIMIT.max(self.options.idle_timeout),
        });
        links.chain(self.quit_by).min()
    }

    /// Closes idle connections and gives up connects that took too long.
    fn expire(&mut self, now: Instant) {
        let idle = self.options.idle_timeout;
        let connect = self.options.connect_timeout;
        let due: Vec<PeerId> = self
            .outbound
            .iter()
            .filter(|(_, out)| match out.connecting {
                true => now >= out.started + connect,
                false => {
                    out.waiting().is_empty()
                        && (now >= out.last_used + idle || self.quit_by.is_some())
                }
            })
            .map(|(&peer, _)| peer)
            .collect();
        for peer in due {
            let out = self.outbound.remove(&peer).expect("just found");
            let name = &self.table.get(peer).name;
            if out.connecting {
                self.failed(
                    peer,
                    &out,
                    &format!("no answer within {:.1} s", connect.as_secs_f64()),
                );
            } else if self.quit_by.is_none() {
                info!(
                    "closing idle connection to {name} after {:.1} s",
                    idle.as_secs_f64()
                );
            }
        }
    }

    /// Ctrl-C: the first asks for a graceful quit, the second quits at once.
    fn on_signal(&mut self) -> Option<ExitCode> {
        while let Ok(Some(_)) = self.signals.read_signal() {
            if self.quit_by.is_some() {
                self.report_unsent("interrupted twice");
                return Some(ExitCode::from(130));
            }
            info!(
                "interrupted; sending what was typed, then quitting (Ctrl-C again to quit at once)"
            );
            self.quit_by = Some(Instant::now() + QUIT_LIMIT);
        }
        None
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, addr)) => {
                    if self.inbound.len() >= p2p_chat::default_max_inbound(&self.table) {
                        warn!("refused connection from {addr}: too many connections open");
                        continue;
                    }
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    info!("accepted connection from {addr}");
                    let decoder = FrameDecoder::new();
                    self.inbound.push(Inbound {
                        stream,
                        addr,
                        decoder,
                    });
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

    /// Reads what stdin has and handles each whole line; a line split across reads waits.
    fn read_stdin(&mut self, buf: &mut [u8]) {
        let n = match sys::read_stdin(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => return,
            Err(e) => {
                error!("cannot read standard input: {e}; quitting");
                0
            }
        };
        if n == 0 {
            // End of input means quit; a last line without a newline still counts.
            self.stdin_open = false;
            let last = std::mem::take(&mut self.partial);
            if !last.is_empty() {
                self.line(&last);
            }
            self.quit();
            return;
        }
        self.partial.extend_from_slice(&buf[..n]);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let whole: Vec<u8> = self.partial.drain(..=end).collect();
        for line in whole.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if self.quit_by.is_none() {
                self.line(line);
            }
        }
    }

    fn quit(&mut self) {
        if self.quit_by.is_none() {
            self.quit_by = Some(Instant::now() + QUIT_LIMIT);
        }
    }

    /// One console line: a message, a command, or a mistake to answer.
    fn line(&mut self, line: &[u8]) {
        let Ok(line) = std::str::from_utf8(line) else {
            eprintln!("error: that line is not valid UTF-8; nothing was sent");
            return;
        };
        match command::parse(line) {
            Ok(None) => {}
            Ok(Some(Command::Send { to, text })) => self.send(to, text),
            Ok(Some(Command::Peers)) => self.print_peers(),
            Ok(Some(Command::Events)) => eprintln!("connection events always go to stderr here"),
            Ok(Some(Command::Help)) => eprintln!("{}", command::HELP),
            Ok(Some(Command::Quit)) => self.quit(),
            Err(e) => eprintln!("error: {e}"),
        }
    }

    fn send(&mut self, to: Target<'_>, text: &str) {
        let friends: Vec<PeerId> = match to {
            Target::Friend(name) => match self.table.find(name) {
                Some(friend) => vec![friend],
                None => {
                    eprintln!(
                        "error: unknown friend {name:?}: message not sent; your friends are: {}",
                        self.table.names()
                    );
                    return;
                }
            },
            Target::Everyone => self.table.ids().filter(|&id| id != self.me).collect(),
        };
        if friends.is_empty() {
            eprintln!("error: no one else is in the peer table: message not sent");
            return;
        }
        let me = self.table.get(self.me).name.clone();
        if frame::encoded_len(&me, text) > frame::MAX_FRAME {
            eprintln!(
                "error: message not sent: it is longer than {} bytes",
                frame::MAX_FRAME
            );
            return;
        }
        for friend in friends {
            if !self.outbound.contains_key(&friend) && !self.open(friend) {
                continue;
            }
            let out = self.outbound.get_mut(&friend).expect("opened above");
            // A friend who takes nothing must not make our memory grow without end.
            if out.waiting().len() >= MAX_PENDING {
                let who = self.table.get(friend);
                error!(
                    "1 message(s) to {who} not delivered: {MAX_PENDING} bytes already wait for them"
                );
                continue;
            }
            frame::encode(&me, text, &mut out.pending);
            out.last_used = Instant::now();
        }
    }

    /// Starts a connection to `friend` without waiting for it. False (reported) if it failed
    /// at once.
    fn open(&mut self, friend: PeerId) -> bool {
        let peer = self.table.get(friend);
        let started = peer
            .socket_addrs()
            .and_then(|addrs| {
                addrs
                    .first()
                    .copied()
                    .ok_or_else(|| ErrorKind::NotFound.into())
            })
            .and_then(|addr| Ok((sys::connect_nonblocking(addr)?, addr)));
        match started {
            Ok((stream, addr)) => {
                let now = Instant::now();
                self.outbound.insert(
                    friend,
                    Outbound {
                        stream,
                        addr,
                        connecting: true,
                        started: now,
                        pending: Vec::new(),
                        sent: 0,
                        last_used: now,
                    },
                );
                true
            }
            Err(e) => {
                error!("1 message(s) to {peer} not delivered: cannot connect: {e}");
                false
            }
        }
    }

    /// A friend's connection to us has something: frames to show, or its end.
    fn read_inbound(&mut self, i: usize, buf: &mut [u8]) -> bool {
        let conn = &mut self.inbound[i];
        let n = match conn.stream.read(buf) {
            Ok(0) => {
                info!("{} closed their connection to you", conn.addr);
                return false;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                return true;
            }
            Err(e) => {
                warn!("connection from {} failed: {e}", conn.addr);
                return false;
            }
        };
        conn.decoder.push(&buf[..n]);
        let mut lines = Vec::new();
        while let Some(item) = conn.decoder.next_frame() {
            match item {
                Decoded::Frame { sender, message } => {
                    let friend = std::str::from_utf8(sender)
                        .ok()
                        .and_then(|s| self.table.find(s));
                    if friend.is_none() {
                        warn!(
                            "dropped a message from {} claiming to be from \"{}\", who is not in the peer table",
                            conn.addr,
                            escaped(sender)
                        );
                        continue;
                    }
                    let prefix = self.screen.prefix(sender, None);
                    self.screen.push_line(&mut lines, &prefix, message);
                }
                Decoded::Malformed(_) => {
                    warn!("dropped a frame from {} with no sender name", conn.addr)
                }
                Decoded::Oversized => {
                    warn!("dropping a frame from {} longer than the limit", conn.addr)
                }
            }
        }
        if !lines.is_empty() && self.screen.show(&lines).is_err() {
            info!("standard output is closed; quitting");
            self.quit();
        }
        true
    }

    /// Our connection to a friend is ready: connected (or not), can take bytes, or has bytes
    /// for us (confirmations, thrown away) or its end.
    fn on_outbound(&mut self, peer: PeerId, events: PollFlags, buf: &mut [u8]) {
        let Some(out) = self.outbound.get_mut(&peer) else {
            return;
        };
        if out.connecting
            && events.intersects(PollFlags::POLLOUT | PollFlags::POLLERR | PollFlags::POLLHUP)
        {
            match out.stream.take_error() {
                Ok(None) => {
                    out.connecting = false;
                    info!("connected to {} ({})", self.table.get(peer).name, out.addr);
                }
                Ok(Some(e)) | Err(e) => {
                    let out = self.outbound.remove(&peer).expect("just found");
                    self.failed(peer, &out, &format!("cannot connect to {}: {e}", out.addr));
                    return;
                }
            }
        }
        // A hang-up or an error comes with nothing to read: reading is how to learn which.
        if events.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match out.stream.read(buf) {
                Ok(0) => {
                    let out = self.outbound.remove(&peer).expect("just found");
                    if out.waiting().is_empty() {
                        info!(
                            "{} closed our idle connection to them",
                            self.table.get(peer).name
                        );
                    } else {
                        self.failed(peer, &out, "they closed the connection");
                    }
                    return;
                }
                // A p2p-chat's confirmations: this classic peer does not keep them.
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => {
                    let out = self.outbound.remove(&peer).expect("just found");
                    self.failed(peer, &out, &format!("the connection broke: {e}"));
                    return;
                }
            }
        }
        if !out.connecting && events.contains(PollFlags::POLLOUT) && !out.waiting().is_empty() {
            // A partial write leaves the rest for the next time the socket is writable.
            match out.stream.write(&out.pending[out.sent..]) {
                Ok(n) => {
                    out.sent += n;
                    out.last_used = Instant::now();
                    if out.sent == out.pending.len() {
                        out.pending.clear();
                        out.sent = 0;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => {
                    let out = self.outbound.remove(&peer).expect("just found");
                    self.failed(peer, &out, &format!("the connection broke: {e}"));
                }
            }
        }
    }

    /// Reports the messages a dropped connection still held.
    fn failed(&self, peer: PeerId, out: &Outbound, why: &str) {
        let count = out.waiting().iter().filter(|&&b| b == b'\n').count();
        if count > 0 {
            error!(
                "{count} message(s) to {} not delivered: {why}",
                self.table.get(peer)
            );
        } else {
            warn!("{}: {why}", self.table.get(peer));
        }
    }

    fn report_unsent(&self, why: &str) {
        for (&peer, out) in &self.outbound {
            if !out.waiting().is_empty() {
                self.failed(peer, out, why);
            }
        }
    }

    fn print_peers(&self) {
        let mut text = String::from("friend            address               outbound  in\n");
        for id in self.table.ids() {
            let peer = self.table.get(id);
            let name = match id == self.me {
                true => format!("{} (you)", peer.name),
                false => peer.name.clone(),
            };
            let state = match self.outbound.get(&id) {
                Some(out) if out.connecting => "connecting",
                Some(_) => "open",
                None => "-",
            };
            let address = format!("{}:{}", peer.host, peer.port);
            let inbound = self
                .inbound
                .iter()
                .filter(|c| {
                    peer.socket_addrs()
                        .is_ok_and(|a| a.iter().any(|a| a.ip() == c.addr.ip()))
                })
                .count();
            text.push_str(&format!(
                "{name:<17} {address:<21} {state:<9} {inbound:>2}\n"
            ));
        }
        eprint!("{text}");
    }
}
