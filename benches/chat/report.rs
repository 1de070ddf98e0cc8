//! The printed result: Markdown tables of the figures beside their targets, the mesh costs, the
//! limits they imply, and the machine they were measured on.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use crate::budget::{self, Budget};
use crate::detect::{self, Detection};
use crate::handoff;
use crate::harness::{read_first_line, soft_limit};
use crate::idle::{self, IdleClose};
use crate::latency::{self, Latency};
use crate::mesh::MeshCost;
use crate::route::{CHAT, SELECT};
use crate::stats::{
    max_duration, median, median_duration, mib, micros, millis, percentile, rate, yes_no,
};
use crate::throughput::{self, Throughput};

/// Throughput at least this fraction of the relay's, for both programs.
const THROUGHPUT_TARGET: f64 = 0.5;
/// Median latency at most this multiple of the relay's: p2p-chat (two hand-offs more than the
/// relay), p2p-chat-select (none).
const P50_TARGETS: [f64; 2] = [1.25, 1.15];
/// The 99th percentile at most this multiple of the relay's, for both programs.
const P99_TARGET: f64 = 1.5;
/// A friend who stops confirming is warned about within this of `--ack-timeout`.
const DETECT_TARGET: Duration = Duration::from_millis(100);
/// An idle connection closes within this of its timeout.
const IDLE_TARGET: Duration = Duration::from_millis(20);
/// Resident memory of each peer in the 5-peer mesh stays under this.
const RSS_TARGET_KIB: u64 = 4 * 1024;
/// Rust's default stack size for spawned threads: address space reserved, not memory used.
const THREAD_STACK_KIB: u64 = 2 * 1024;

/// One run of figures 1 and 2; per route: p2p-chat, p2p-chat-select, the relay.
pub struct Race {
    pub throughput: Throughput,
    pub latency: Latency,
}

pub struct Results {
    pub races: Vec<Race>,
    pub idle: Vec<IdleClose>,
    pub meshes: Vec<MeshCost>,
    /// p2p-chat, then p2p-chat-select.
    pub detection: [Detection; 2],
    /// Time per pass between two threads, one figure per round.
    pub handoff: Vec<Duration>,
    /// p2p-chat, then p2p-chat-select.
    pub budget: [Budget; 2],
    pub elapsed: Duration,
}

/// The name a program goes by in the tables.
pub fn label(program: &str) -> &'static str {
    if program == SELECT {
        "p2p-chat-select"
    } else {
        "p2p-chat"
    }
}

pub fn print(results: &Results) {
    let mut out = String::new();
    headline(&mut out, results);
    details(&mut out, results);
    meshes(&mut out, &results.meshes);
    budget_table(&mut out, &results.budget);
    let threaded: Vec<&MeshCost> = results
        .meshes
        .iter()
        .filter(|m| m.program == CHAT)
        .collect();
    limits(&mut out, &threaded);
    machine(&mut out, results.elapsed);
    print!("{out}");
}

fn headline(out: &mut String, r: &Results) {
    let _ = writeln!(out, "\n## p2p-chat benchmark\n");
    let runs = r.races.len();
    let _ = writeln!(
        out,
        "Each ratio is the median of {runs} runs, each with fresh peers and a fresh relay taking turns; the range over the runs follows it.\n"
    );
    let _ = writeln!(
        out,
        "| figure | p2p-chat (threads) / relay | p2p-chat-select (poll) / relay | bare relay (median run) | target, threads / poll | met, threads / poll |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
    let rates = |race: &Race| [0, 1, 2].map(|i| median(&race.throughput[i]));
    let cells = race_cells(&r.races, rates, &[THROUGHPUT_TARGET; 2], |ratio, t| {
        ratio >= t
    });
    let _ = writeln!(
        out,
        "| throughput, burst of {} messages (median of {} rounds a run) | {} | {} | {} | >= {THROUGHPUT_TARGET:.2}x / >= {THROUGHPUT_TARGET:.2}x | {} |",
        group(throughput::MESSAGES),
        throughput::ROUNDS,
        cells.ratios[0],
        cells.ratios[1],
        rate(cells.relay),
        cells.met
    );
    let samples = latency::ROUNDS * latency::PER_ROUND;
    for (p, targets) in [(50.0, P50_TARGETS), (99.0, [P99_TARGET; 2])] {
        let times = |race: &Race| [0, 1, 2].map(|i| percentile(&race.latency[i], p).as_secs_f64());
        let cells = race_cells(&r.races, times, &targets, |ratio, t| ratio <= t);
        let _ = writeln!(
            out,
            "| latency p{p}, one message at a time, warm link ({samples} samples a run) | {} | {} | {} | <= {:.2}x / <= {:.2}x | {} |",
            cells.ratios[0],
            cells.ratios[1],
            micros(Duration::from_secs_f64(cells.relay)),
            targets[0],
            targets[1],
            cells.met
        );
    }

    // The design's floor: p2p-chat's message crosses two threads inside the sender.
    let relay_p50: Vec<f64> = r
        .races
        .iter()
        .map(|race| percentile(&race.latency[2], 50.0).as_secs_f64())
        .collect();
    let relay_p50 = Duration::from_secs_f64(median(&relay_p50));
    let handoffs = r.budget[0].handoffs();
    let _ = writeln!(
        out,
        "\np2p-chat's floor by its design: the relay's p50 plus its two hand-offs as the latency budget measured them ({}), {} or {:.2}x the relay; compare its p50 ratio above.",
        micros(handoffs),
        micros(relay_p50 + handoffs),
        (relay_p50 + handoffs).as_secs_f64() / relay_p50.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "\n| figure | p2p-chat (threads) | p2p-chat-select (poll) | target | met |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- |");
    for timeout in idle::TIMEOUTS {
        let timeout = Duration::from_secs_f64(timeout);
        let of = |program: &str| {
            r.idle
                .iter()
                .find(|c| c.program == program && c.timeout == timeout)
                .expect("measured for both programs")
        };
        let (chat, select) = (of(CHAT), of(SELECT));
        let worst = worst_ms(&chat.close_after_send, timeout);
        let _ = writeln!(
            out,
            "| idle close after --idle-timeout {} s (median of {}), from the send | {} | {} | within {} ms | {} |",
            timeout.as_secs_f64(),
            idle::ROUNDS,
            error_text(&chat.close_after_send, timeout),
            error_text(&select.close_after_send, timeout),
            IDLE_TARGET.as_millis(),
            yes_no(worst.abs() <= IDLE_TARGET.as_secs_f64() * 1e3)
        );
    }
    let [d, s] = &r.detection;
    let worst = worst_ms(&d.after_send, d.timeout).max(worst_ms(&s.after_send, s.timeout));
    let _ = writeln!(
        out,
        "| a friend who stops confirming warned about, --ack-timeout {} s (median of {}), from the send | {} | {} | within {} ms | {} |",
        d.timeout.as_secs_f64(),
        detect::ROUNDS,
        error_text(&d.after_send, d.timeout),
        error_text(&s.after_send, s.timeout),
        DETECT_TARGET.as_millis(),
        yes_no((0.0..=DETECT_TARGET.as_secs_f64() * 1e3).contains(&worst))
    );

    let largest = |program: &str| {
        r.meshes
            .iter()
            .find(|m| m.peers == 5 && m.program == program)
            .map_or(0, |m| m.meshed.iter().map(|f| f.rss_kib).max().unwrap_or(0))
    };
    let _ = writeln!(
        out,
        "| resident memory per peer, 5-peer full mesh (largest of 5) | {} | {} | < {} | {} |",
        mib(largest(CHAT)),
        mib(largest(SELECT)),
        mib(RSS_TARGET_KIB),
        yes_no(largest(CHAT) < RSS_TARGET_KIB)
    );
    let handoff = median_duration(&r.handoff);
    let _ = writeln!(
        out,
        "| one hand-off between two threads over a channel (median of {} rounds of ping-pong) | {:.1} µs a hop | none | - | - |",
        handoff::ROUNDS,
        handoff.as_secs_f64() * 1e6
    );
}

/// The largest error, in ms and signed, of `samples` against `configured`.
fn worst_ms(samples: &[Duration], configured: Duration) -> f64 {
    samples
        .iter()
        .map(|&d| signed_ms(d, configured))
        .max_by(|a, b| a.abs().total_cmp(&b.abs()))
        .unwrap_or_default()
}

/// `+0.5 ms median, +0.7 ms worst`.
fn error_text(samples: &[Duration], configured: Duration) -> String {
    format!(
        "{:+.1} ms median, {:+.1} ms worst",
        signed_ms(median_duration(samples), configured),
        worst_ms(samples, configured)
    )
}

/// A race figure's cells: each program's ratio to the relay as "median (min-max)", the relay's
/// figure in the median run, and whether each program meets its target.
struct RaceCells {
    ratios: [String; 2],
    relay: f64,
    met: String,
}

/// `figure` gives one run's value for p2p-chat, p2p-chat-select and the relay; `meets` says
/// whether a median ratio meets a target.
fn race_cells(
    races: &[Race],
    figure: impl Fn(&Race) -> [f64; 3],
    targets: &[f64; 2],
    meets: impl Fn(f64, f64) -> bool,
) -> RaceCells {
    let values: Vec<[f64; 3]> = races.iter().map(figure).collect();
    let relay = median(&values.iter().map(|v| v[2]).collect::<Vec<_>>());
    let mut ratios = [String::new(), String::new()];
    let mut met = Vec::new();
    for i in 0..2 {
        let mut runs: Vec<f64> = values.iter().map(|v| v[i] / v[2]).collect();
        runs.sort_by(f64::total_cmp);
        let mid = median(&runs);
        ratios[i] = format!(
            "{mid:.2}x ({:.2}-{:.2}x)",
            runs.first().copied().unwrap_or_default(),
            runs.last().copied().unwrap_or_default()
        );
        met.push(yes_no(meets(mid, targets[i])));
    }
    RaceCells {
        ratios,
        relay,
        met: met.join(" / "),
    }
}

fn details(out: &mut String, r: &Results) {
    let spread = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        format!("{:.2}-{:.2} M msgs/s", lo / 1e6, hi / 1e6)
    };
    let _ = writeln!(out, "\nRound by round, over every run:\n");
    let rates = |i: usize| -> Vec<f64> {
        r.races
            .iter()
            .flat_map(|race| race.throughput[i].clone())
            .collect()
    };
    let times = |i: usize| -> Vec<Duration> {
        r.races
            .iter()
            .flat_map(|race| race.latency[i].clone())
            .collect()
    };
    let _ = writeln!(
        out,
        "- throughput range over the rounds: p2p-chat {}, p2p-chat-select {}, relay {}",
        spread(&rates(0)),
        spread(&rates(1)),
        spread(&rates(2))
    );
    let tail = |v: &[Duration]| {
        format!(
            "{} / {}",
            micros(percentile(v, 90.0)),
            micros(max_duration(v))
        )
    };
    let _ = writeln!(
        out,
        "- latency p90 / max: p2p-chat {}, p2p-chat-select {}, relay {}",
        tail(&times(0)),
        tail(&times(1)),
        tail(&times(2))
    );
    for close in &r.idle {
        let list = |v: &[Duration]| {
            v.iter()
                .map(|&d| format!("{:.1}", d.as_secs_f64() * 1e3))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "- {}, idle timeout {} ms: close logged at {} ms after the send; bob saw the close at {} ms; close after bob printed the message: {} ms",
            label(close.program),
            close.timeout.as_millis(),
            list(&close.close_after_send),
            list(&close.disconnect_after_send),
            list(&close.close_after_print)
        );
    }
}

fn meshes(out: &mut String, meshes: &[MeshCost]) {
    let _ = writeln!(out, "\n### Cost per peer in a full mesh of N peers\n");
    let _ = writeln!(
        out,
        "| program | N | threads per peer | expected | open files per peer | resident before any message (median) | resident in the mesh (median / largest) | start-up, spawn to `listening on` (median / slowest) |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- | --- | --- |");
    for mesh in meshes {
        let threads = median_of(mesh.meshed.iter().map(|f| f.threads as f64));
        let fds = median_of(mesh.meshed.iter().map(|f| f.fds as f64));
        let idle_rss = median_of(mesh.idle.iter().map(|f| f.rss_kib as f64)) as u64;
        let rss = median_of(mesh.meshed.iter().map(|f| f.rss_kib as f64)) as u64;
        let max_rss = mesh.meshed.iter().map(|f| f.rss_kib).max().unwrap_or(0);
        let expected = match mesh.program == CHAT {
            true => format!("3N+2 = {}", 3 * mesh.peers + 2),
            false => "1".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {threads} | {expected} | {fds} | {} | {} / {} | {} / {} |",
            label(mesh.program),
            mesh.peers,
            mib(idle_rss),
            mib(rss),
            mib(max_rss),
            millis(median_duration(&mesh.startup)),
            millis(max_duration(&mesh.startup))
        );
    }
}

/// Where one peer, and a mesh on one machine, run out, from the growth between the two largest
/// meshes measured.
fn limits(out: &mut String, meshes: &[&MeshCost]) {
    let [.., small, large] = meshes else { return };
    let per =
        |f: &dyn Fn(&MeshCost) -> f64| (f(large) - f(small)) / (large.peers - small.peers) as f64;
    let threads = |m: &MeshCost| median_of(m.meshed.iter().map(|f| f.threads as f64));
    let fds = |m: &MeshCost| median_of(m.meshed.iter().map(|f| f.fds as f64));
    let rss = |m: &MeshCost| median_of(m.meshed.iter().map(|f| f.rss_kib as f64));
    let threads_per_friend = per(&threads);
    let fds_per_friend = per(&fds);
    let fixed_fds = fds(large) - fds_per_friend * (large.peers - 1) as f64;
    let kib_per_thread = per(&rss) / threads_per_friend;

    let _ = writeln!(out, "\n### Where it stops scaling\n");
    let _ = writeln!(
        out,
        "- Each friend in use costs {threads_per_friend:.1} threads and {fds_per_friend:.1} open files per peer (measured between N = {} and N = {}), and about {kib_per_thread:.0} KiB resident per thread; each thread also reserves {THREAD_STACK_KIB} KiB of address space for its stack.",
        small.peers, large.peers
    );
    if let Some(nofile) = soft_limit("Max open files").and_then(|v| v.parse::<f64>().ok()) {
        let friends = ((nofile - fixed_fds) / fds_per_friend).floor();
        let _ = writeln!(
            out,
            "- Open files (`ulimit -n` = {nofile}): one peer can talk with about {friends} friends at once before `accept` or `connect` fails with EMFILE (with the common default of 1024: about {:.0}).",
            ((1024.0 - fixed_fds) / fds_per_friend).floor()
        );
    }
    if let Some(nproc) = soft_limit("Max processes").and_then(|v| v.parse::<f64>().ok()) {
        // A full mesh of N peers on one machine needs N (3N + 2) threads of one user.
        let mesh = ((-2.0 + (4.0 + 12.0 * nproc).sqrt()) / 6.0).floor();
        let _ = writeln!(
            out,
            "- Threads (`ulimit -u` = {nproc}, which counts every thread of the user): one peer reaches it near {:.0} friends; a full mesh on one machine near N = {mesh} peers, whose {:.0} threads would reserve {:.1} GiB of stack address space and hold about {:.0} MiB resident in stacks alone.",
            ((nproc - 2.0) / threads_per_friend).floor(),
            mesh * (3.0 * mesh + 2.0),
            mesh * (3.0 * mesh + 2.0) * THREAD_STACK_KIB as f64 / (1024.0 * 1024.0),
            mesh * (3.0 * mesh + 2.0) * kib_per_thread / 1024.0
        );
    }
    if let Some(max) = read_first_line("/proc/sys/kernel/threads-max") {
        let _ = writeln!(
            out,
            "- System-wide thread limit (`/proc/sys/kernel/threads-max`): {max}."
        );
    }
}

fn machine(out: &mut String, elapsed: Duration) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let kernel = read_first_line("/proc/sys/kernel/osrelease").unwrap_or_default();
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "\nMachine: {cpus} CPUs ({model}), Linux {kernel}, {rustc}. Run took {:.0} s.",
        elapsed.as_secs_f64()
    );
}

fn median_of(values: impl Iterator<Item = f64>) -> f64 {
    median(&values.collect::<Vec<_>>())
}

/// `observed - configured`, in milliseconds.
fn signed_ms(observed: Duration, configured: Duration) -> f64 {
    (observed.as_secs_f64() - configured.as_secs_f64()) * 1e3
}

/// `100,000`
fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The latency budget alone.
pub fn print_budget(budgets: &[Budget; 2]) {
    let mut out = String::new();
    budget_table(&mut out, budgets);
    print!("{out}");
}

/// The latency budget: the median time from each stage of a message's trip to the next.
fn budget_table(out: &mut String, budgets: &[Budget; 2]) {
    let _ = writeln!(
        out,
        "\n### Where one message's time goes (median of {} messages, stages recorded)\n",
        budget::MESSAGES
    );
    let _ = writeln!(
        out,
        "| from | to | p2p-chat (threads) | p2p-chat-select (poll) |"
    );
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let _ = writeln!(
        out,
        "| the benchmark writes the line | stdin-read | {:.1} µs | {:.1} µs |",
        us(budgets[0].into),
        us(budgets[1].into)
    );
    for (i, pair) in budget::STAGES.windows(2).enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} µs | {:.1} µs |",
            pair[0],
            pair[1],
            budgets[0].steps[i].as_secs_f64() * 1e6,
            budgets[1].steps[i].as_secs_f64() * 1e6
        );
    }
    let _ = writeln!(
        out,
        "| printed | the benchmark reads it | {:.1} µs | {:.1} µs |",
        us(budgets[0].out_of),
        us(budgets[1].out_of)
    );
    let _ = writeln!(
        out,
        "| the whole trip, as the benchmark sees it | | {:.1} µs | {:.1} µs |",
        us(budgets[0].trip),
        us(budgets[1].trip)
    );
}
