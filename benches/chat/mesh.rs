//! Figure 4, the cost of the design: N peers in a full mesh on loopback, where every peer has sent
//! one message to everyone (`*/hello`), so each has N-1 outbound links and N-1 inbound readers
//! open. `--idle-timeout` is an hour, so nothing closes while `/proc` is read. Also the start-up
//! time of each peer, from spawn to its `listening on` log line, and each peer's footprint before
//! any message, for comparison.

use std::time::{Duration, Instant};

use crate::common::{TempDir, free_ports, write_table};
use crate::harness::{Footprint, footprint};
use crate::route::start_peer;

/// Mesh sizes, in peers.
pub const SIZES: [usize; 3] = [5, 20, 50];

/// One mesh's figures, one entry per peer.
pub struct MeshCost {
    /// The program every peer runs: p2p-chat or p2p-chat-select.
    pub program: &'static str,
    pub peers: usize,
    /// Each peer's footprint after start-up, before any message.
    pub idle: Vec<Footprint>,
    /// Each peer's footprint once it has a link to and from everyone.
    pub meshed: Vec<Footprint>,
    pub startup: Vec<Duration>,
}

pub fn measure(program: &'static str, size: usize) -> MeshCost {
    let dir = TempDir::new();
    let names: Vec<String> = (1..=size).map(|i| format!("peer{i:02}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let table = write_table(&dir, &name_refs, &free_ports(size));
    let mut peers = Vec::new();
    let mut startup = Vec::new();
    for name in &names {
        let (peer, took) = start_peer(program, &table, name, &["--idle-timeout", "3600"]);
        peers.push(peer);
        startup.push(took);
    }
    let idle = peers.iter().map(|peer| footprint(peer.pid())).collect();
    for peer in &mut peers {
        let line = format!("*/hello from {}\n", peer.name);
        peer.send(line.as_bytes());
    }
    // Once every peer has printed a line from each of the others, every link and every reader
    // in the mesh exists.
    for peer in &peers {
        peer.output.wait_lines(size - 1, Duration::from_secs(60));
    }
    let meshed = peers.iter().map(|peer| footprint(peer.pid())).collect();
    // A graceful quit, bounded; anyone still running is killed when `peers` is dropped.
    for peer in &mut peers {
        peer.close_stdin();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for peer in &mut peers {
        peer.wait_exit(deadline.saturating_duration_since(Instant::now()));
    }
    MeshCost {
        program,
        peers: size,
        idle,
        meshed,
        startup,
    }
}
