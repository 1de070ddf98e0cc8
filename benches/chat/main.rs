//! `make bench`: how fast, how exact and how costly p2p-chat is, measured on the real release
//! binary (`target/release/p2p-chat`) over loopback, and printed as Markdown tables beside the
//! targets.
//!
//! 1. [`throughput`]: a burst of 100,000 short messages written into alice's stdin for bob,
//!    timed until bob has printed the last one.
//! 2. [`latency`]: one message at a time on a warm connection; p50 and p99.
//! 3. [`idle`]: how close to `--idle-timeout` an unused connection is closed.
//! 4. [`mesh`]: threads, open files and resident memory per peer in full meshes of 5, 20 and 50
//!    peers, and start-up time.
//! 5. [`detect`]: how soon a friend who stops confirming (a stopped process) is reported, against
//!    `--ack-timeout`.
//!
//! The baseline for 1 and 2 is a bare [`relay`]: this same binary, started as two child processes,
//! moving the same lines stdin -> one loopback TCP connection -> stdout with the chat's buffering
//! and nothing else. Shared machines are noisy, so the chat and the relay are measured in
//! alternating rounds in the same run and medians are compared.
//!
//! Every child goes through [`harness::Process`], which kills it when dropped; every wait has a
//! deadline and every loop a fixed count. Only 127.0.0.1 is used, on ports the kernel picked, and
//! peer tables live in a temporary directory removed at the end.

mod detect;
mod harness;
mod idle;
mod latency;
mod mesh;
mod relay;
mod report;
mod route;
mod stats;
mod throughput;

use std::time::Instant;

use crate::report::Results;
use crate::route::Route;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The relay's two halves are this binary started again; `cargo bench` itself passes `--bench`.
    match args.first().map(String::as_str) {
        Some(relay::SEND) => return relay::send(&args[1..]),
        Some(relay::RECEIVE) => return relay::receive(&args[1..]),
        _ => {}
    }
    let began = Instant::now();
    eprintln!("benchmarking {}", env!("CARGO_BIN_EXE_p2p-chat"));

    let mut chat = Route::chat("pair", 30.0);
    chat.warm_up(100);
    let mut relay = Route::relay();
    relay.warm_up(100);
    eprintln!("1/5 throughput: chat and relay in alternating rounds");
    let throughput = throughput::measure(&mut chat, &mut relay);
    eprintln!("2/5 latency: chat and relay in alternating rounds");
    let latency = latency::measure(&mut chat, &mut relay);
    drop(chat);
    drop(relay);

    let idle = idle::TIMEOUTS
        .iter()
        .map(|&timeout| {
            eprintln!("3/5 idle close: --idle-timeout {timeout}");
            idle::measure(timeout)
        })
        .collect();
    let meshes = mesh::SIZES
        .iter()
        .map(|&peers| {
            eprintln!("4/5 cost: full mesh of {peers} peers");
            mesh::measure(peers)
        })
        .collect();
    eprintln!("5/5 detection: a friend who stops confirming");
    let detection = detect::measure();

    report::print(&Results {
        throughput,
        latency,
        idle,
        meshes,
        detection,
        elapsed: began.elapsed(),
    });
}
