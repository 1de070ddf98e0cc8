//! `make bench`: how fast, how exact and how costly p2p-chat is, measured on the real release
//! binaries over loopback, side by side with `p2p-chat-select` (the same chat as one poll() loop),
//! and printed as Markdown tables beside the targets.
//!
//! 1. [`throughput`]: a burst of 100,000 short messages written into alice's stdin for bob,
//!    timed until bob has printed the last one.
//! 2. [`latency`]: one message at a time on a warm connection; p50 and p99.
//! 3. [`idle`]: how close to `--idle-timeout` an unused connection is closed.
//! 4. [`mesh`]: threads, open files and resident memory per peer in full meshes of 5, 20 and 50
//!    peers, and start-up time.
//! 5. [`detect`]: how soon a friend who stops confirming (a stopped process) is warned about, against
//!    `--ack-timeout`.
//! 6. [`handoff`]: the cost of one hand-off between two threads over a channel, measured in the
//!    same run: what each hop inside p2p-chat costs and the poll() loop does not pay.
//! 7. [`budget`]: where one message's time goes, stage by stage, for both programs, in a run of
//!    its own with the stages recorded.
//!
//! Figures 1 to 5 and 7 are taken for both programs; 1 and 2 in five runs, each with fresh
//! peers, since a target is met when the median of five runs meets it.
//!
//! The baseline for 1 and 2 is a bare [`relay`]: this same binary, started as two child processes,
//! moving the same lines stdin -> one loopback TCP connection -> stdout with the chat's buffering
//! and nothing else. Shared machines are noisy, so the chat and the relay are measured in
//! alternating rounds in the same run and medians are compared.
//!
//! Every child goes through [`harness::Process`], which kills it when dropped; every wait has a
//! deadline and every loop a fixed count. Only 127.0.0.1 is used, on ports the kernel picked, and
//! peer tables live in a temporary directory removed at the end.

// The tests' shared helpers: temporary directories, free ports, peer tables.
mod budget;
#[path = "../../tests/common/mod.rs"]
mod common;
mod detect;
mod handoff;
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

use crate::report::{Race, Results};
use crate::route::{CHAT, Route, SELECT};

/// Figures 1 and 2 are taken this many times, each with fresh peers and a fresh relay: a target
/// is met when the median of the runs' ratios meets it.
const RUNS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // The relay's two halves are this binary started again; `cargo bench` itself passes `--bench`.
    match args.first().map(String::as_str) {
        Some(relay::SEND) => return relay::send(&args[1..]),
        Some(relay::RECEIVE) => return relay::receive(&args[1..]),
        _ => {}
    }
    // `cargo bench --bench chat -- budget`: the latency budget alone.
    if args.iter().any(|a| a == "budget") {
        let budget = [CHAT, SELECT].map(budget::measure);
        return report::print_budget(&budget);
    }
    let began = Instant::now();
    eprintln!("benchmarking {}", env!("CARGO_BIN_EXE_p2p-chat"));

    let races: Vec<Race> = (1..=RUNS).map(race).collect();

    let mut idle = Vec::new();
    for program in [CHAT, SELECT] {
        for timeout in idle::TIMEOUTS {
            eprintln!(
                "3/7 idle close: --idle-timeout {timeout}, {}",
                report::label(program)
            );
            idle.push(idle::measure(program, timeout));
        }
    }
    let mut meshes = Vec::new();
    for program in [CHAT, SELECT] {
        for peers in mesh::SIZES {
            eprintln!(
                "4/7 cost: full mesh of {peers} peers, {}",
                report::label(program)
            );
            meshes.push(mesh::measure(program, peers));
        }
    }
    let detection = [CHAT, SELECT].map(|program| {
        eprintln!(
            "5/7 detection: a friend who stops confirming, {}",
            report::label(program)
        );
        detect::measure(program)
    });
    eprintln!("6/7 the cost of one thread hand-off");
    let handoff = handoff::measure();
    let budget = [CHAT, SELECT].map(|program| {
        eprintln!(
            "7/7 latency budget, stage by stage: {}",
            report::label(program)
        );
        budget::measure(program)
    });

    report::print(&Results {
        races,
        idle,
        meshes,
        detection,
        handoff,
        budget,
        elapsed: began.elapsed(),
    });
}

/// One run of figures 1 and 2: fresh peers for each program and a fresh relay, taking turns.
fn race(run: usize) -> Race {
    let mut chat = Route::peers(CHAT, 30.0);
    chat.warm_up(100);
    let mut select = Route::peers(SELECT, 30.0);
    select.warm_up(100);
    let mut relay = Route::relay();
    relay.warm_up(100);
    let routes = &mut [&mut chat, &mut select, &mut relay];
    eprintln!(
        "1/7 throughput, run {run} of {RUNS}: p2p-chat, p2p-chat-select and the relay in turn"
    );
    let throughput = throughput::measure(routes);
    eprintln!("2/7 latency, run {run} of {RUNS}: p2p-chat, p2p-chat-select and the relay in turn");
    let latency = latency::measure(routes);
    Race {
        throughput,
        latency,
    }
}
