//! p2p-chat: a peer-to-peer terminal chat for a small closed group of friends.
//!
//! Every running peer is a TCP server on its own well-known port and opens TCP connections to
//! friends when it has something to say. Who is where comes from a static table, `peers.txt`.
//! The design is thread-per-connection over blocking `std::net`: each thread does one blocking
//! thing, and one dispatcher thread ties them together with `select!` over channels.
//!
//! ```text
//!   stdin ──> [console] ──ConsoleEvent──┐ (rendezvous)
//!                                       v
//!   Ctrl-C ─> (ctrlc handler) ──()──> [dispatcher] ══Batch══> [link:bob] ═══TCP═══> bob
//!                                      ^   ^   │ one Conversation (bounded  │ connects, writes,
//!      at(the models' next deadline) ──┘   │   │ per friend:       queue)   │ half-closes; reports
//!                                          │   │ the model   ──Control──>   │ what its I/O did
//!                                          │   │                 [acks:bob] <──NUL per frame──
//!                 Event (link reports, a friend spoke, stdout gone)
//!                                          │
//!   TCP ──> [acceptor] ──spawns──> [reader:addr] ──> stdout "[sender] message"
//!              │                        │  └──> NUL per frame shown, back to the sender
//!              └──> Inbound registry <──┘   (the one mutex: admission cap, /peers counts)
//! ```
//!
//! The lesson is in three places: the model, and its two drivers.
//!
//! * [`conversation`]: the pure model of what we know about one friend: outbox, flight, kind,
//!   deadlines, and the one place a message's fate is decided. Time is an argument.
//!   [`friends`] holds one per friend, for either driver.
//! * p2p-chat's threads, one module per role, in [`threads`]:
//!   - [`dispatcher`](threads::dispatcher): owns the friends' models and the link carrying out
//!     each one's I/O; moves events into the models and carries their outputs out. It never
//!     touches a socket.
//!   - [`link`](threads::link): one per connection we open, owning it; connects, writes,
//!     half-closes, and (with its ack reader thread) passes on the friend's confirmations. It
//!     decides nothing; [`sendq`] asks the kernel what is still in the connection's send queue,
//!     sets keepalive, and on a close bounds how long the kernel tries to send what it holds
//!     (given up on, it must not arrive late).
//!   - [`acceptor`](threads::acceptor): blocks in `accept`, admits connections under a cap,
//!     spawns a reader for each.
//!   - [`reader`](threads::reader): one per inbound connection; decodes frames, prints them,
//!     confirms them.
//!   - [`console`](threads::console): reads stdin lines (or, in a terminal, keys), hands messages
//!     to the dispatcher.
//!   - [`event`]: the types that cross threads. Threads talk only through these; a thread
//!     module imports another only to start it (the acceptor its readers, the dispatcher links).
//! * p2p-chat-select's loop, in `src/bin/select/`: the same model, driven from one poll().
//!
//! Shared by both drivers, and pure (unit-tested without I/O) unless said: [`incoming`] (what
//! arrives on one inbound connection: sender checks, lines to show, confirmations), [`inbound`]
//! (who may connect: the cap; a lock), [`compose`] (what is typed: lines, commands, batches),
//! [`command`] (console lines), [`frame`] (the wire format), [`escape`] (text from the network
//! made safe to print, and the columns text takes), [`narrator`] (the words for what the models
//! report), [`roster`] (`/peers`), [`stages`] (the latency budget's clock stamps).
//!
//! Apart from the lesson: [`terminal`] (the screen, the line editor, the echoes of your own
//! messages, raw mode), and the set-up: [`peers`] (the table), [`cli`] (the command line),
//! [`error`], [`logging`] (through the screen).
//!
//! Every message ends in one state the user can see: delivered (the friend's p2p-chat confirmed
//! it), sent (the friend's program does not confirm; the bytes were written), or reported as not
//! delivered or as possibly lost, with a count. Messages for a friend who cannot be reached wait
//! in their outbox and are retried.
//!
//! Flow control is bounded channels: the console hands over to the dispatcher at a rendezvous,
//! each link's queue holds two batches, and an outbox holds 1,000 messages or 8 MiB. While a
//! reachable friend's outbox is full the dispatcher stops taking input; a friend who takes
//! nothing for `--write-timeout` is stalled and holds nobody up after that.
//!
//! Shutdown order (on `/quit`, end of input or Ctrl-C): the dispatcher takes no more input and
//! reports what waits for friends who cannot be reached; every model has its link deliver what
//! its outbox holds, waits for the confirmations (not from a friend who does not confirm, nor a
//! stalled one), then closes; then the dispatcher closes every inbound connection, their reading
//! sides first, so each reader confirms what it has shown before it ends, and [`run`] stops the
//! acceptor, prints a half-typed line back as not sent, restores the terminal and returns. Every
//! message typed is delivered, sent, or reported.

pub mod cli;
pub mod command;
pub mod compose;
pub mod conversation;
pub mod error;
pub mod escape;
pub mod event;
pub mod frame;
pub mod friends;
pub mod inbound;
pub mod incoming;
pub mod logging;
pub mod narrator;
pub mod peers;
pub mod roster;
pub mod sendq;
pub mod stages;
pub mod terminal;
pub mod threads;

use std::io::IsTerminal;
use std::net::TcpListener;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, bounded, unbounded};
use log::info;

use crate::cli::Options;
use crate::conversation::Secs;
use crate::error::{Error, Result};
use crate::inbound::Inbound;
use crate::peers::{PeerId, PeerTable};
use crate::terminal::{Screen, term};
use crate::threads::acceptor::Acceptor;
use crate::threads::dispatcher::{Dispatcher, Inputs, Settings};
use crate::threads::reader::ReaderContext;

/// Shown in the empty input line of a terminal.
const HINT: &str = "friend/message, */message for everyone, Tab completes a name, /help";

/// The screen for this run. Stdin and stdout both a terminal: a person is typing, so the line is
/// edited here, below what arrives; otherwise lines in and lines out.
/// In a terminal, SIGWINCH (the window changed size) is blocked in the calling thread, and so in
/// every thread started after it, to be taken by the one that waits for it ([`term::resizes`]
/// in p2p-chat, the signal descriptor in p2p-chat-select): call this before starting threads.
pub fn screen(options: &Options) -> Screen {
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        term::block_resizes();
        let prompt = format!("{}> ", escape::escaped(options.name.as_bytes()));
        Screen::terminal(prompt, HINT.to_string(), options.clock)
    } else {
        Screen::from_env()
    }
}

/// Finds our own entry in the table.
pub fn find_me(table: &PeerTable, options: &Options) -> Result<PeerId> {
    table.find(&options.name).ok_or_else(|| {
        let message = format!(
            "no entry named {:?}; the names are: {} (add a line for {:?}, or pick one of those)",
            options.name,
            table.names(),
            options.name
        );
        Error::table(&options.peers_path, 0, message)
    })
}

/// Loads the table, finds our entry and resolves every host (each within the connect timeout).
/// Only our own host must resolve: a friend's that does not is named in a warning, which ends
/// with `then` (what becomes of messages to them).
pub fn load_table(options: &Options, then: &str) -> Result<(PeerTable, PeerId)> {
    let mut table = PeerTable::load(&options.peers_path)?;
    let me = find_me(&table, options)?;
    for (id, error) in table.resolve(&options.peers_path, options.connect_timeout) {
        if id == me {
            return Err(error);
        }
        log::warn!("{error}; messages to {} {then}", table.get(id).name);
    }
    Ok((table, me))
}

/// Opens our listening socket on our own entry's address and port, and says so.
pub fn listen(table: &PeerTable, me: PeerId, options: &Options) -> Result<TcpListener> {
    let mut first_error = None;
    for addr in table.get(me).socket_addrs()? {
        match TcpListener::bind(addr) {
            Ok(listener) => {
                let (name, idle) = (&table.get(me).name, Secs(options.idle_timeout));
                let at = listener.local_addr()?;
                info!(target: logging::NOTICE, "{name} listening on {at} (idle timeout {idle})");
                return Ok(listener);
            }
            Err(source) => {
                first_error.get_or_insert(Error::Bind { addr, source });
            }
        }
    }
    Err(first_error.expect("socket_addrs returns at least one address"))
}

/// The registry of inbound connections, with `--max-inbound` or the default cap: a few per
/// friend, so a friend who restarts can reconnect before their old connection is noticed as
/// closed, and never fewer than 16.
pub fn inbound_registry(options: &Options, table: &PeerTable) -> Arc<Inbound> {
    let cap = options.max_inbound.unwrap_or((4 * table.len()).max(16));
    Arc::new(Inbound::new(cap))
}

/// Runs the chat until quit. `interrupt` receives `()` on each Ctrl-C. In a terminal, raw mode
/// is on from here until it returns, however it returns. Returns whether a second Ctrl-C cut the
/// quit short.
pub fn run(
    options: &Options,
    table: PeerTable,
    me: PeerId,
    listener: TcpListener,
    interrupt: Receiver<()>,
    screen: Screen,
) -> Result<bool> {
    let raw_mode = match screen.is_terminal() {
        true => Some(term::RawMode::enter()?),
        false => None,
    };
    if screen.is_terminal() {
        // Not joined: it waits for the next resize, and ends with the process.
        let resized = screen.clone();
        thread::Builder::new()
            .name("resize".into())
            .spawn(move || term::resizes(|| resized.resized()))?;
    }
    let table_name = table.get(me).name.clone();
    let table = Arc::new(table);
    let inbound = inbound_registry(options, &table);
    let (events_tx, events_rx) = unbounded();
    // A rendezvous: a batch passes only when the dispatcher takes it. So when the dispatcher
    // stops taking input (a friend's outbox is full) the console waits instead of reading stdin
    // into memory, and at quit no batch can be left stranded in the channel.
    let (console_tx, console_rx) = bounded(0);

    let acceptor = Acceptor::spawn(
        listener,
        ReaderContext {
            table: table.clone(),
            inbound: inbound.clone(),
            screen: screen.clone(),
            silence_limit: silence_limit(options.idle_timeout),
            events: events_tx.clone(),
        },
    )?;

    // The console thread is not joined: at Ctrl-C it may be blocked reading a terminal, and it
    // ends with the process.
    let console_table = table.clone();
    let console_screen = screen.clone();
    thread::Builder::new()
        .name("console".into())
        .spawn(move || threads::console::run(console_table, me, console_tx, console_screen))?;

    let dispatcher = Dispatcher::new(
        table,
        me,
        Settings {
            limits: options.limits(),
            connect_timeout: options.connect_timeout,
        },
        inbound,
        events_tx,
        screen.clone(),
    );
    let inputs = Inputs {
        console: console_rx,
        events: events_rx,
        interrupt,
    };
    let at_once = thread::Builder::new()
        .name("dispatcher".into())
        .spawn(move || dispatcher.run(inputs))?
        .join()
        .map_err(|_| Error::Io(std::io::Error::other("the dispatcher thread panicked")))?;
    acceptor.stop();
    stages::write(&table_name); // only in a run that records them
    screen.close();
    drop(raw_mode);
    info!("bye");
    Ok(at_once)
}

/// How long an inbound connection that has not said who it is may stay silent before we close
/// it: ten times the idle timeout, at least a second. A friend's connection is never closed for
/// silence (see `reader`).
pub fn silence_limit(idle_timeout: Duration) -> Duration {
    (idle_timeout * 10).max(Duration::from_secs(1))
}
