//! The registry of open inbound connections: the one lock in the program.
//!
//! Three kinds of thread need the same facts about inbound connections at once: the acceptor
//! admits new ones and must know how many are open, each reader records who its connection turned
//! out to be and removes it when it ends, and the dispatcher lists them for `/peers` and closes
//! them all at quit. Passing that through the dispatcher would put it on the path of every
//! `accept`, so it lives here behind a `parking_lot` mutex, held only for a few map operations.
//!
//! The registry also enforces the cap. When it is full, the oldest connection that has not yet sent
//! a valid frame is closed to make room; a friend's connection sends its first frame the moment it
//! is opened, so a flood of silent connections pushes out itself rather than our friends. Only when
//! every open connection is a known friend is the newcomer refused.

use std::collections::BTreeMap;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::peers::PeerId;

/// Identifies one inbound connection for its whole life. Ids grow, so a smaller id is older.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnId(u64);

/// The acceptor's answer for a new connection.
#[derive(Debug)]
pub enum Admission {
    /// Registered; `evicted` is the silent connection closed to make room, if any.
    Admitted {
        id: ConnId,
        evicted: Option<SocketAddr>,
    },
    /// The cap is reached by friends' connections; the newcomer should be closed.
    Refused,
}

struct Conn {
    remote: SocketAddr,
    /// The reader's socket, shared with it, so the registry can close it from any thread:
    /// shutting it down makes the reader's blocked `read` return.
    stream: Arc<TcpStream>,
    friend: Option<PeerId>,
}

#[derive(Default)]
struct State {
    conns: BTreeMap<ConnId, Conn>,
    next_id: u64,
}

pub struct Inbound {
    cap: usize,
    state: Mutex<State>,
}

impl Inbound {
    pub fn new(cap: usize) -> Inbound {
        Inbound {
            cap: cap.max(1),
            state: Mutex::new(State::default()),
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Registers a new connection, making room if the cap is reached. `stream` is shared with the
    /// connection's reader.
    pub fn admit(&self, stream: Arc<TcpStream>, remote: SocketAddr) -> Admission {
        let mut state = self.state.lock();
        let mut evicted = None;
        if state.conns.len() >= self.cap {
            let silent = state
                .conns
                .iter()
                .find(|(_, conn)| conn.friend.is_none())
                .map(|(&id, _)| id);
            let Some(oldest_silent) = silent else {
                return Admission::Refused;
            };
            let conn = state
                .conns
                .remove(&oldest_silent)
                .expect("the id was just found in the map");
            let _ = conn.stream.shutdown(Shutdown::Both);
            evicted = Some(conn.remote);
        }
        let id = ConnId(state.next_id);
        state.next_id += 1;
        state.conns.insert(
            id,
            Conn {
                remote,
                stream,
                friend: None,
            },
        );
        Admission::Admitted { id, evicted }
    }

    /// Records that the connection has sent a valid frame from `friend`.
    pub fn identify(&self, id: ConnId, friend: PeerId) {
        if let Some(conn) = self.state.lock().conns.get_mut(&id) {
            conn.friend = Some(friend);
        }
    }

    /// Forgets a connection; its reader calls this as it ends. Harmless if already evicted.
    pub fn remove(&self, id: ConnId) {
        self.state.lock().conns.remove(&id);
    }

    /// How many connections each friend has open to us (indexed by `PeerId`), and how many have
    /// not said who they are yet.
    pub fn counts(&self, friends: usize) -> (Vec<usize>, usize) {
        let state = self.state.lock();
        let mut per_friend = vec![0; friends];
        let mut unknown = 0;
        for conn in state.conns.values() {
            match conn.friend {
                Some(PeerId(i)) if i < friends => per_friend[i] += 1,
                _ => unknown += 1,
            }
        }
        (per_friend, unknown)
    }

    /// How many connections are open.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.state.lock().conns.len()
    }

    /// Closes every inbound connection; their readers then end on their own.
    pub fn close_all(&self) {
        let mut state = self.state.lock();
        for conn in state.conns.values() {
            let _ = conn.stream.shutdown(Shutdown::Both);
        }
        state.conns.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A connected socket pair on loopback; the registry only needs real sockets to shut down.
    fn pair(listener: &TcpListener) -> (TcpStream, Arc<TcpStream>, SocketAddr) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, remote) = listener.accept().unwrap();
        (client, Arc::new(server), remote)
    }

    fn admitted(admission: Admission) -> (ConnId, Option<SocketAddr>) {
        match admission {
            Admission::Admitted { id, evicted } => (id, evicted),
            Admission::Refused => panic!("expected the connection to be admitted"),
        }
    }

    #[test]
    fn a_full_registry_evicts_the_oldest_silent_connection_and_then_refuses() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let inbound = Inbound::new(2);
        let (_c1, s1, r1) = pair(&listener);
        let (_c2, s2, r2) = pair(&listener);
        let (id1, _) = admitted(inbound.admit(s1, r1));
        let (id2, _) = admitted(inbound.admit(s2, r2));
        inbound.identify(id2, PeerId(0));

        // Full: the silent first connection makes room.
        let (_c3, s3, r3) = pair(&listener);
        let (id3, evicted) = admitted(inbound.admit(s3, r3));
        assert_eq!(evicted, Some(r1));
        assert_eq!(inbound.len(), 2);
        inbound.remove(id1); // its reader ending later changes nothing
        assert_eq!(inbound.len(), 2);

        // Full of friends: a newcomer is refused.
        inbound.identify(id3, PeerId(1));
        let (_c4, s4, r4) = pair(&listener);
        assert!(matches!(inbound.admit(s4, r4), Admission::Refused));
        assert_eq!(inbound.counts(2), (vec![1, 1], 0));
    }

    #[test]
    fn eviction_closes_the_socket() {
        use std::io::Read;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let inbound = Inbound::new(1);
        let (_c1, s1, r1) = pair(&listener);
        let reader_side = Arc::clone(&s1);
        admitted(inbound.admit(s1, r1));
        let (_c2, s2, r2) = pair(&listener);
        admitted(inbound.admit(s2, r2));
        // The evicted reader's blocking read returns at once with end-of-file.
        let mut buf = [0u8; 1];
        assert_eq!((&*reader_side).read(&mut buf).unwrap(), 0);
    }
}
