//! Log lines on stderr: connection events, warnings and errors, never the chat itself.
//!
//! Each line carries the wall-clock time (UTC, to the millisecond, so the logs of several peers
//! can be compared), the level and the name of the thread that wrote it, which shows the design
//! at work: `12:00:01.234 INFO  [link:bob] connected to bob (127.0.0.1:7002)`.
//! The default filter is `info`; `RUST_LOG` overrides it (`RUST_LOG=info,wire=trace` adds
//! every frame's bytes).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Installs the logger. Call once, first thing in `main`.
pub fn init() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|out, record| {
            let thread = std::thread::current();
            writeln!(
                out,
                "{} {:<5} [{}] {}",
                clock(),
                record.level(),
                thread.name().unwrap_or("main"),
                record.args()
            )
        })
        .init();
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
