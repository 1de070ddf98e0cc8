//! p2p-chat: a peer-to-peer terminal chat for a small closed group of friends.
//!
//! Every running peer is a TCP server on its own well-known port and opens TCP connections to
//! friends when it has something to say. Who is where comes from a static table, `peers.txt`.
//! The design is thread-per-connection over blocking `std::net`: each thread does one blocking
//! thing, and one dispatcher thread ties them together with `select!` over channels.
//!
//! ```text
//!   stdin ──> [console] ──ConsoleEvent──┐ (bounded)
//!                                       v
//!   Ctrl-C ─> (ctrlc handler) ──()──> [dispatcher] ──Batch──> [link:bob] ─────TCP────> bob
//!                                       ^    ^  │ owns links,     (one per friend we write to:
//!              at(next idle deadline) ──┘    │  │ last-sent        connects, and writes what
//!                                            │  │ Instants         may block)
//!                                            │  └─ fast path: bob's link is idle, so a
//!                                            │     non-blocking write to its socket ──TCP──> bob
//!                 Event (link up/drained/down/closed, stdout gone)
//!                                            │
//!   TCP ──> [acceptor] ──spawns──> [reader:addr] ──> stdout "[sender] message"
//!              │                        │
//!              └──> Inbound registry <──┘   (the one mutex: admission cap, /peers counts)
//! ```
//!
//! * [`acceptor`]: blocks in `accept`, admits connections under a cap, spawns a reader for each.
//! * [`reader`]: one per inbound connection; decodes frames and prints them.
//! * [`console`]: reads stdin lines, answers mistakes, hands messages to the dispatcher.
//! * [`dispatcher`]: owns the outbound links and their idle deadlines; routes; expires.
//! * [`link`]: one per friend we talk to; connects, writes batches, reports failures. When the
//!   link is idle the dispatcher writes to its socket itself, without blocking: one thread
//!   hand-off fewer for a lone message.
//! * Pure modules, unit-tested without I/O: [`peers`] (the table), [`frame`] (the wire format),
//!   [`command`] (console lines), [`screen`] (safe display), [`cli`] (the command line).
//!
//! Flow control: a friend's link queue holds at most 8 MiB. When a batch would overflow it, the
//! dispatcher holds the batch and stops reading the console's channel, which is bounded, so the
//! console blocks and stops reading stdin until the link drains or its write timeout drops it.
//!
//! Shutdown order (on `/quit`, end of input or Ctrl-C): the dispatcher routes what is still in the
//! console channel, drops every link's queue sender, and waits for each link to write what it holds
//! and report; then it lets a note to self be printed, closes every inbound connection, and [`run`]
//! stops the acceptor and returns. Every message typed is either delivered or reported as failed.

pub mod acceptor;
pub mod cli;
pub mod command;
pub mod console;
pub mod dispatcher;
pub mod error;
pub mod frame;
pub mod inbound;
pub mod link;
pub mod logging;
pub mod peers;
pub mod reader;
pub mod screen;

use std::net::TcpListener;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, bounded, unbounded};
use log::info;

use crate::acceptor::{Acceptor, ReaderContext};
use crate::cli::Options;
use crate::dispatcher::{Dispatcher, Inputs, Settings};
use crate::error::{Error, Result};
use crate::inbound::Inbound;
use crate::peers::{PeerId, PeerTable};
use crate::screen::Screen;

/// Finds our own entry in the table.
pub fn find_me(table: &PeerTable, options: &Options) -> Result<PeerId> {
    table.find(&options.name).ok_or_else(|| Error::Table {
        path: options.peers_path.clone(),
        line: 0,
        message: format!(
            "no entry named {:?}; the names are: {} (add a line for {:?}, or pick one of those)",
            options.name,
            table.names(),
            options.name
        ),
    })
}

/// Opens our listening socket on our own entry's address and port.
pub fn bind(table: &PeerTable, me: PeerId) -> Result<TcpListener> {
    let addrs = table.get(me).socket_addrs()?;
    let mut first_error = None;
    for addr in addrs {
        match TcpListener::bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(source) => {
                first_error.get_or_insert(Error::Bind { addr, source });
            }
        }
    }
    Err(first_error.expect("socket_addrs returns at least one address"))
}

/// The default cap on inbound connections: a few per friend, so a friend who restarts can
/// reconnect before their old connection is noticed as closed, and never fewer than 16.
pub fn default_max_inbound(table: &PeerTable) -> usize {
    (4 * table.len()).max(16)
}

/// Runs the chat until quit. `interrupt` receives `()` on Ctrl-C.
pub fn run(
    options: &Options,
    table: PeerTable,
    me: PeerId,
    listener: TcpListener,
    interrupt: Receiver<()>,
) -> Result<()> {
    let table = Arc::new(table);
    let max_inbound = options
        .max_inbound
        .unwrap_or_else(|| default_max_inbound(&table));
    let inbound = Arc::new(Inbound::new(max_inbound));
    let (events_tx, events_rx) = unbounded();
    // Bounded, so that when the dispatcher stops taking the console's batches (a friend's queue
    // is full) the console waits instead of reading stdin into memory without limit.
    let (console_tx, console_rx) = bounded(4);

    info!(
        "{} listening on {} (idle timeout {:.1} s)",
        table.get(me).name,
        listener.local_addr()?,
        options.idle_timeout.as_secs_f64()
    );
    let acceptor = Acceptor::spawn(
        listener,
        ReaderContext {
            table: table.clone(),
            inbound: inbound.clone(),
            screen: Screen::from_env(),
            silence_limit: silence_limit(options.idle_timeout),
            events: events_tx.clone(),
        },
    )?;

    // The console thread is not joined: at Ctrl-C it may be blocked reading a terminal, and it
    // ends with the process.
    let console_table = table.clone();
    thread::Builder::new()
        .name("console".into())
        .spawn(move || console::run(console_table, me, console_tx))?;

    let dispatcher = Dispatcher::new(
        table,
        me,
        Settings {
            idle_timeout: options.idle_timeout,
            connect_timeout: options.connect_timeout,
            write_timeout: options.write_timeout,
        },
        inbound,
        events_tx,
    );
    let inputs = Inputs {
        console: console_rx,
        events: events_rx,
        interrupt,
    };
    thread::Builder::new()
        .name("dispatcher".into())
        .spawn(move || dispatcher.run(inputs))?
        .join()
        .map_err(|_| Error::Io(std::io::Error::other("the dispatcher thread panicked")))?;
    acceptor.stop();
    info!("bye");
    Ok(())
}

/// How long an inbound connection may stay silent before we close it: well beyond the idle
/// timeout after which a friend closes an unused connection themselves, so only a stuck or
/// abandoned connection is ever closed by us. Ten times the idle timeout, at least a second.
pub fn silence_limit(idle_timeout: Duration) -> Duration {
    (idle_timeout * 10).max(Duration::from_secs(1))
}
