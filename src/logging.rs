//! Log lines on stderr: connection events, notices, warnings and errors, never the chat itself.
//!
//! With stdin or stdout a pipe, each line carries the wall-clock time (UTC, to the millisecond,
//! so the logs of several peers can be compared), the level and the name of the thread that wrote
//! it, which shows the design at work: `12:00:01.234 INFO  [link:bob] connected to bob (...)`.
//! The default filter is `info`; `RUST_LOG` overrides it (`RUST_LOG=info,wire=trace` adds
//! every frame's bytes).
//!
//! In a terminal, the view is quiet by default: log lines go through the [`Screen`], above the
//! input line, as one short line each with the local time and a mark: `!` a warning, `x` an error,
//! `·` a notice (a friend came online, can be reached again). Connection events (connect, accept,
//! idle close) are info lines too, hidden until `-v` or `/events` shows them, dimmed.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use log::Level;

use crate::terminal::Screen;
use crate::terminal::term;

/// The log target of info lines shown by default in a terminal: `info!(target: NOTICE, ...)`.
pub const NOTICE: &str = "notice";

/// The log target of debug lines that record a change of state worth waiting on: the tests and
/// the demo turn it on (`RUST_LOG=info,state=debug`) to wait for the event itself instead of
/// polling `/peers`. Hidden by default.
pub const STATE: &str = "state";

/// Whether a terminal shows connection events.
static EVENTS: AtomicBool = AtomicBool::new(false);

/// Installs the logger, writing through `screen` when it is a terminal. Call once, early.
pub fn init(screen: &Screen, verbose: bool) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if !screen.is_terminal() {
        builder.format(|out, record| {
            let thread = std::thread::current();
            writeln!(
                out,
                "{} {:<5} [{}] {}",
                clock(),
                record.level(),
                thread.name().unwrap_or("main"),
                record.args()
            )
        });
        builder.init();
        return;
    }
    // Asking for a log filter is asking to see the log.
    EVENTS.store(
        verbose || std::env::var_os("RUST_LOG").is_some(),
        Ordering::Relaxed,
    );
    let style = screen.clone();
    builder
        .format(move |out, record| {
            let (mark, text) = match record.level() {
                Level::Error => (style.red("x"), record.args().to_string()),
                Level::Warn => (style.yellow("!"), record.args().to_string()),
                _ if record.target() == NOTICE => ("·".to_string(), record.args().to_string()),
                _ if EVENTS.load(Ordering::Relaxed) => {
                    let event = format!("{} · {}", term::local_hh_mm(), record.args());
                    return writeln!(out, "{}", style.dim(&event));
                }
                _ => return Ok(()), // an event, hidden
            };
            writeln!(out, "{} {mark} {text}", term::local_hh_mm())
        })
        .target(env_logger::Target::Pipe(Box::new(screen.above_writer())))
        .init();
}

/// `/events`: shows connection events if they were hidden, hides them if shown. Returns whether
/// they are shown now.
pub fn toggle_events() -> bool {
    !EVENTS.fetch_xor(true, Ordering::Relaxed)
}

/// `HH:MM:SS.mmm` in UTC.
fn clock() -> String {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since_epoch.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        since_epoch.subsec_millis()
    )
}
