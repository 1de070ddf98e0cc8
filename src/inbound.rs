//! The registry of open inbound connections: the one lock in the program.
//!
//! Three kinds of thread need the same facts about inbound connections at once: the acceptor
//! admits new ones and must know how many are open, each reader records who its connection turned
//! out to be and removes it when it ends, and the dispatcher lists them for `/peers` and closes
//! them all at quit. Passing that through the dispatcher would put it on the path of every
//! `accept`, so it lives here behind a `parking_lot` mutex, held only for a few map operations.
//!
//! The registry also keeps the cap fair, so that nobody who knows a friend's name can lock the
//! real friends out:
//! * When the cap is reached, a newcomer pushes out the oldest connection that has not yet said
//!   who it is (a friend's connection sends its first frame the moment it opens, so a flood of
//!   silent connections pushes out itself); failing that, the oldest one that speaks for a
//!   friend from an address the table does not give them, whatever it has said. A connection
//!   from a friend's own address is never pushed out by a newcomer; when every open connection
//!   is one, the newcomer is refused. So claims made from elsewhere can never lock a friend out.
//!   An address is the IP alone: where friends share a host (all on 127.0.0.1), a claim made from
//!   that host cannot be told from the friend, and this protection does not help.
//! * At most [`PER_FRIEND`] connections may speak for one friend. One more replaces the oldest of
//!   them, preferring one that comes from an address the table does not give that friend; so a
//!   flood that claims alice's name holds at most four slots, and cannot push out a connection
//!   from alice's own address unless it comes from there too.
//!
//! With the default cap, four per table entry, there is always room for a friend who has no
//! connection open. Warnings about the cap are logged at most once a second, with a count.

use std::collections::BTreeMap;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::warn;
use parking_lot::{Condvar, Mutex};

use crate::peers::PeerId;

/// The most connections that may speak for one friend at a time. More than one, so a friend who
/// restarts can reconnect before their old connection is noticed as closed.
pub const PER_FRIEND: usize = 4;

/// Identifies one inbound connection for its whole life. Ids grow, so a smaller id is older.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnId(u64);

struct Conn {
    remote: SocketAddr,
    /// The reader's socket, shared with it, so the registry can close it from any thread:
    /// shutting it down makes the reader's blocked `read` return.
    stream: Arc<TcpStream>,
    /// Who it speaks for, once its first valid frame has said so, and whether it comes from
    /// that friend's address in the table.
    friend: Option<(PeerId, bool)>,
}

struct State {
    conns: BTreeMap<ConnId, Conn>,
    next_id: u64,
    warnings: Throttle,
    /// We are quitting: nobody new is admitted, and a connection that ends is not the friend's
    /// doing.
    closing: bool,
}

pub struct Inbound {
    cap: usize,
    state: Mutex<State>,
    /// Signalled whenever a connection leaves, for [`Inbound::close_all`] to wait on.
    removed: Condvar,
}

impl Inbound {
    pub fn new(cap: usize) -> Inbound {
        Inbound {
            cap: cap.max(1),
            state: Mutex::new(State {
                conns: BTreeMap::new(),
                next_id: 0,
                warnings: Throttle::new(Duration::from_secs(1)),
                closing: false,
            }),
            removed: Condvar::new(),
        }
    }

    /// Registers a new connection, making room if the cap is reached; `None` if it must be
    /// refused. `stream` is shared with the connection's reader.
    pub fn admit(&self, stream: Arc<TcpStream>, remote: SocketAddr) -> Option<ConnId> {
        let mut state = self.state.lock();
        if state.closing {
            return None;
        }
        if state.conns.len() >= self.cap {
            // First to go: the oldest that has not said who it is; then the oldest that speaks
            // for a friend from an address the table does not give them, whatever it has said.
            let oldest = |verified: Option<bool>| {
                let conns = state.conns.iter();
                conns
                    .filter(|(_, conn)| conn.friend.map(|(_, v)| v) == verified)
                    .map(|(&id, _)| id)
                    .next()
            };
            let victim = oldest(None)
                .map(|id| (id, "silent"))
                .or_else(|| oldest(Some(false)).map(|id| (id, "unverified")));
            let cap = self.cap;
            let Some((victim, kind)) = victim else {
                state.warn(format!(
                    "refused connection from {remote}: every connection open ({cap}, the \
                     --max-inbound cap) comes from a friend's own address"
                ));
                return None;
            };
            let old = state.close(victim);
            state.warn(format!(
                "{cap} inbound connections open (the --max-inbound cap): closed the oldest \
                 {kind} one, from {old}, to make room"
            ));
        }
        let id = ConnId(state.next_id);
        state.next_id += 1;
        let conn = Conn {
            remote,
            stream,
            friend: None,
        };
        state.conns.insert(id, conn);
        Some(id)
    }

    /// Records that the connection speaks for `friend` (`verified`: from their address in the
    /// table). If that makes one too many for that friend, one of theirs is closed: possibly
    /// this one, if it is the only one from an address that is not theirs.
    pub fn identify(&self, id: ConnId, friend: PeerId, verified: bool) {
        let mut state = self.state.lock();
        let Some(conn) = state.conns.get_mut(&id) else {
            return; // already closed
        };
        conn.friend = Some((friend, verified));
        let theirs: Vec<(ConnId, bool)> = state
            .conns
            .iter()
            .filter_map(|(&id, conn)| match conn.friend {
                Some((f, verified)) if f == friend => Some((id, verified)),
                _ => None,
            })
            .collect();
        if theirs.len() <= PER_FRIEND {
            return;
        }
        // The oldest from a wrong address, else the oldest.
        let victim = theirs
            .iter()
            .find(|(_, verified)| !verified)
            .unwrap_or(&theirs[0])
            .0;
        let old = state.close(victim);
        state.warn(format!(
            "closed the connection from {old}: more than {PER_FRIEND} connections speak for the \
             same friend"
        ));
    }

    /// Forgets a connection as it ends (`Incoming::end` does this for both programs). Returns
    /// false if it was already gone: the registry closed it (to make room, or at the quit).
    pub fn remove(&self, id: ConnId) -> bool {
        let mut state = self.state.lock();
        let held = state.conns.remove(&id).is_some();
        self.removed.notify_all();
        held && !state.closing
    }

    /// How many connections each friend has open to us (indexed by `PeerId`), and how many have
    /// not said who they are yet.
    pub fn counts(&self, friends: usize) -> (Vec<usize>, usize) {
        let state = self.state.lock();
        let mut per_friend = vec![0; friends];
        let mut unknown = 0;
        for conn in state.conns.values() {
            match conn.friend {
                Some((PeerId(i), _)) if i < friends => per_friend[i] += 1,
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

    /// Closes every inbound connection, at the quit. Their reading sides first: a reader then
    /// sees an end of file and, like at the sender's end, confirms what it has shown (the first
    /// confirmation on a connection may still be waiting for a NUL byte) before it ends. Whatever
    /// is still open after `grace` is cut off.
    pub fn close_all(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        let mut state = self.state.lock();
        state.closing = true;
        for conn in state.conns.values() {
            let _ = conn.stream.shutdown(Shutdown::Read);
        }
        while !state.conns.is_empty() {
            if self.removed.wait_until(&mut state, deadline).timed_out() {
                break;
            }
        }
        for conn in state.conns.values() {
            let _ = conn.stream.shutdown(Shutdown::Both);
        }
        state.conns.clear();
    }
}

impl State {
    /// Closes and forgets a connection; returns its address.
    fn close(&mut self, id: ConnId) -> SocketAddr {
        let conn = self.conns.remove(&id).expect("closing a registered id");
        let _ = conn.stream.shutdown(Shutdown::Both);
        conn.remote
    }

    /// Logs a warning about the cap, unless one was logged less than a second ago.
    fn warn(&mut self, warning: String) {
        if let Some(held_back) = self.warnings.allow(Instant::now()) {
            warn!("{warning}{}", Throttle::note(held_back));
        }
    }
}

/// Lets one kind of warning through at most once per `interval` and counts the ones held back,
/// so the next warning can say how many there were. Time is an argument, so it is unit-tested.
struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    held_back: usize,
}

impl Throttle {
    fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            last: None,
            held_back: 0,
        }
    }

    /// `Some(held back since the last one)` if a warning may be logged at `now`, else `None`.
    fn allow(&mut self, now: Instant) -> Option<usize> {
        match self.last {
            Some(last) if now < last + self.interval => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }

    /// The tail of a warning that follows `held_back` unlogged ones.
    fn note(held_back: usize) -> String {
        if held_back == 0 {
            String::new()
        } else {
            format!(" ({held_back} more like this since the last such warning)")
        }
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

    /// Admits one new connection; returns its id and the client end, kept open by the caller.
    fn admit(inbound: &Inbound, listener: &TcpListener) -> (ConnId, TcpStream) {
        let (client, server, remote) = pair(listener);
        let id = inbound.admit(server, remote).expect("admitted");
        (id, client)
    }

    /// Whether the registry has closed the connection whose client end this is: a closed one
    /// reads end-of-file at once, an open one times out.
    fn closed(client: &mut TcpStream) -> bool {
        use std::io::Read;
        client
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        match client.read(&mut [0u8; 1]) {
            Ok(0) => true,
            Err(e) if crate::error::is_timeout(&e) => false,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_full_registry_evicts_the_oldest_silent_connection_and_then_refuses() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let inbound = Inbound::new(2);
        let (id1, mut c1) = admit(&inbound, &listener);
        let (id2, _c2) = admit(&inbound, &listener);
        inbound.identify(id2, PeerId(0), true);

        // Full: the silent first connection makes room, and its socket is closed.
        let (id3, _c3) = admit(&inbound, &listener);
        assert!(closed(&mut c1));
        assert_eq!(inbound.len(), 2);
        inbound.remove(id1); // its reader ending later changes nothing
        assert_eq!(inbound.len(), 2);

        // Full of connections from their friends' own addresses: a newcomer is refused.
        inbound.identify(id3, PeerId(1), true);
        let (_c4, s4, r4) = pair(&listener);
        assert!(inbound.admit(s4, r4).is_none());
        assert_eq!(inbound.counts(2), (vec![1, 1], 0));
    }

    #[test]
    fn closing_all_lets_each_reader_confirm_before_its_connection_is_cut() {
        use std::io::{Read, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let inbound = Arc::new(Inbound::new(4));
        let (mut client, server, remote) = pair(&listener);
        let id = inbound.admit(Arc::clone(&server), remote).unwrap();
        // A reader: at the end of file that closing brings, it confirms, then ends.
        let reader = {
            let inbound = Arc::clone(&inbound);
            std::thread::spawn(move || {
                assert_eq!((&*server).read(&mut [0u8; 1]).unwrap(), 0);
                (&*server).write_all(&[0]).unwrap();
                inbound.remove(id)
            })
        };
        inbound.close_all(Duration::from_secs(10));
        let friends_doing = reader.join().unwrap();
        assert!(
            !friends_doing,
            "a connection ended by our quit is not the friend's doing"
        );
        let mut confirmations = Vec::new();
        client.read_to_end(&mut confirmations).unwrap();
        assert_eq!(confirmations, [0]);
        // Nobody new is admitted once the quit has begun.
        let (_c, s, r) = pair(&listener);
        assert!(inbound.admit(s, r).is_none());
    }

    #[test]
    fn claims_from_a_wrong_address_are_pushed_out_before_any_friend_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let inbound = Inbound::new(3);
        // The cap is full: two claims from the wrong address (each has spoken), one friend.
        let (claim1, mut c1) = admit(&inbound, &listener);
        let (claim2, mut c2) = admit(&inbound, &listener);
        let (friend, mut c3) = admit(&inbound, &listener);
        inbound.identify(claim1, PeerId(0), false);
        inbound.identify(claim2, PeerId(1), false);
        inbound.identify(friend, PeerId(2), true);
        // Newcomers push out the oldest unverified claim first, never the friend.
        let (n1, _c4) = admit(&inbound, &listener);
        assert!(closed(&mut c1) && !closed(&mut c2) && !closed(&mut c3));
        // The newcomer turns out to be the real friend whose name the first claim used.
        inbound.identify(n1, PeerId(0), true);
        let (_n2, _c5) = admit(&inbound, &listener);
        assert!(closed(&mut c2) && !closed(&mut c3));
        assert_eq!(inbound.len(), 3);
    }

    #[test]
    fn one_more_connection_for_a_friend_replaces_their_oldest() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let inbound = Inbound::new(100);
        let mut clients = Vec::new();
        for _ in 0..PER_FRIEND + 2 {
            let (id, client) = admit(&inbound, &listener);
            inbound.identify(id, PeerId(0), true);
            clients.push(client);
        }
        assert_eq!(inbound.counts(2), (vec![PER_FRIEND, 0], 0));
        assert!(closed(&mut clients[0]) && closed(&mut clients[1]));
        assert!(!closed(&mut clients[2]) && !closed(&mut clients[PER_FRIEND + 1]));
    }

    #[test]
    fn a_claim_from_a_wrong_address_never_pushes_out_one_from_the_right_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let inbound = Inbound::new(100);
        let (real, mut real_client) = admit(&inbound, &listener);
        inbound.identify(real, PeerId(0), true);
        let mut impostors = Vec::new();
        for _ in 0..10 {
            let (id, client) = admit(&inbound, &listener);
            inbound.identify(id, PeerId(0), false);
            impostors.push(client);
        }
        assert!(!closed(&mut real_client));
        assert_eq!(inbound.counts(1), (vec![PER_FRIEND], 0));
        // The newest impostors hold the other slots.
        assert!(!closed(&mut impostors[9]) && closed(&mut impostors[0]));
    }

    #[test]
    fn throttle_lets_one_warning_through_per_interval_and_counts_the_rest() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut throttle = Throttle::new(second);
        assert_eq!(throttle.allow(t0), Some(0));
        assert_eq!(throttle.allow(t0 + Duration::from_millis(1)), None);
        assert_eq!(throttle.allow(t0 + Duration::from_millis(999)), None);
        assert_eq!(throttle.allow(t0 + second), Some(2));
        assert_eq!(throttle.allow(t0 + second), None);
        assert_eq!(throttle.allow(t0 + second * 5), Some(1));
        assert_eq!(Throttle::note(0), "");
        assert_eq!(
            Throttle::note(2),
            " (2 more like this since the last such warning)"
        );
    }
}
