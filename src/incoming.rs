//! What arrives on one inbound connection, with no I/O: the bytes go in, the lines to show and
//! the confirmations to send back come out. p2p-chat's reader threads and p2p-chat-select's poll
//! loop both feed one [`Incoming`] per connection, so both check senders and confirm the same way.
//!
//! Each complete frame's sender is checked against the peer table. The first valid frame fixes
//! who the connection speaks for; a frame signed by anyone else is dropped. A friend's name from
//! an address the table does not give them is shown marked `(unverified: from ADDRESS)`.
//!
//! Confirmations: one byte per frame, NUL for a frame shown and NAK (0x15) for one dropped (see
//! [`crate::frame`]), written only to a sender who may expect them. The classic C program ends
//! every frame with a NUL byte, never reads the socket it sends on and keeps it in its select()
//! read set, so one byte back would make it spin: a connection that has sent a NUL byte is never
//! written to. To see a classic `\n\0` even when the NUL comes in a later read, the first
//! confirmation waits up to [`FIRST_CONFIRMATION_WAIT`] for more bytes; the driver does the
//! waiting and calls [`Incoming::first_wait_over`] when it is over, or at the sender's end of
//! file, after which no NUL can come.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use log::{info, log_enabled, trace, warn};

use crate::conversation::Secs;
use crate::escape::{claimed_name, escaped};
use crate::frame::{ACK_DROPPED, ACK_SHOWN, Decoded, FrameDecoder, MAX_FRAME};
use crate::inbound::{ConnId, Inbound};
use crate::peers::{PeerId, PeerTable};
use crate::stages::{self, Stage};
use crate::terminal::Screen;

/// How long the first confirmation on a connection waits for a NUL byte that would mark the
/// sender as the classic program. Its `\n\0` leave in one write, so they arrive together but for
/// a rare split between two TCP segments; a p2p-chat's first confirmation comes this much later.
pub const FIRST_CONFIRMATION_WAIT: Duration = Duration::from_millis(50);

/// Problems with what one connection sends that are logged one by one; the rest are only counted,
/// so a client sending garbage cannot flood the log (or slow us down writing it).
const LOGGED_PROBLEMS: usize = 10;

/// Whether a connection gets confirmations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Confirming {
    /// No frame has been confirmed yet: waiting to see whether a NUL byte follows.
    Undecided,
    Yes,
    /// The sender is the classic program, or writing to it failed.
    Never,
}

/// How an inbound connection ended, for the line that says so.
#[derive(Debug)]
pub enum Ending {
    /// The sender ended it (`None`: their end of file), or it broke.
    Theirs(Option<io::Error>),
    /// It never said who it is and was silent this long, so we close it.
    Silent(Duration),
    /// The registry closed it, to make room or because we are quitting; it has said why.
    Ours,
}

/// One inbound connection's state. See the module documentation.
#[derive(Debug)]
pub struct Incoming {
    decoder: FrameDecoder,
    senders: Senders,
    confirming: Confirming,
    /// One byte per frame handled and not yet confirmed.
    confirmations: Vec<u8>,
}

/// Who a connection speaks for, and what it did wrong.
#[derive(Debug)]
struct Senders {
    remote: SocketAddr,
    /// The friend this connection's first valid frame came from.
    friend: Option<PeerId>,
    /// The connection's sender, once known, and the display prefix made for them.
    sender: Option<(PeerId, Vec<u8>)>,
    warned_unverified: bool,
    /// Frames dropped so far: malformed, oversized, from strangers or from a second sender.
    problems: usize,
}

impl Incoming {
    pub fn new(remote: SocketAddr) -> Incoming {
        Incoming {
            decoder: FrameDecoder::new(),
            senders: Senders {
                remote,
                friend: None,
                sender: None,
                warned_unverified: false,
                problems: 0,
            },
            confirming: Confirming::Undecided,
            confirmations: Vec::new(),
        }
    }

    /// Bytes from the connection: every complete frame is checked and, if shown, formatted into
    /// `lines` for one write to stdout. Returns the friend and whether their address is the
    /// table's, when this is the frame that first says who the connection speaks for.
    pub fn receive(
        &mut self,
        bytes: &[u8],
        table: &PeerTable,
        screen: &Screen,
        lines: &mut Vec<u8>,
    ) -> Option<(PeerId, bool)> {
        if log_enabled!(target: "wire", log::Level::Trace) {
            trace!(target: "wire", "read {} bytes from {}: \"{}\"", bytes.len(), self.senders.remote, bytes.escape_ascii());
        }
        let waiting = self.waits_for_first_confirmation();
        if bytes.contains(&0) {
            self.confirming = Confirming::Never;
        } else if waiting {
            self.confirming = Confirming::Yes;
        }
        let senders = &mut self.senders;
        let known = senders.friend;
        self.decoder.push(bytes);
        while let Some(item) = self.decoder.next_frame() {
            let shown = match item {
                Decoded::Frame { sender, message } => {
                    stages::mark(Stage::Decoded);
                    let shown = senders.accept_frame(sender, message, table, screen, lines);
                    stages::mark(Stage::Escaped);
                    shown
                }
                Decoded::Malformed(bytes) => {
                    let bytes = escaped(&bytes[..bytes.len().min(80)]);
                    let who = senders.describe(table);
                    senders.complain(
                        format!(
                            "dropped a frame from {who} with no sender name (expected \
                             name/message): \"{bytes}\""
                        ),
                        table,
                    );
                    false
                }
                Decoded::Oversized => {
                    let who = senders.describe(table);
                    senders.complain(
                        format!(
                            "dropping a frame from {who} longer than {} KiB (the frame size \
                             limit)",
                            MAX_FRAME / 1024
                        ),
                        table,
                    );
                    false
                }
            };
            if self.confirming != Confirming::Never {
                self.confirmations
                    .push(if shown { ACK_SHOWN } else { ACK_DROPPED });
            }
        }
        let friend = senders.friend.filter(|_| known.is_none())?;
        Some((friend, table.is_address_of(friend, senders.remote.ip())))
    }

    /// Whether the first confirmation is being held back for [`FIRST_CONFIRMATION_WAIT`], to see
    /// whether a NUL byte follows.
    pub fn waits_for_first_confirmation(&self) -> bool {
        self.confirming == Confirming::Undecided && !self.confirmations.is_empty()
    }

    /// The first confirmation's wait is over with no NUL byte (its time is up, or the sender
    /// ended the connection, so none can follow): a p2p-chat (or a person at netcat) is at the
    /// other end. Call it at the sender's end of file too, then confirm: the sender may be
    /// waiting for its confirmations before it closes its side.
    pub fn first_wait_over(&mut self) {
        if self.confirming == Confirming::Undecided {
            self.confirming = Confirming::Yes;
        }
    }

    /// The confirmations to write now, if any: only once it is known the sender may expect
    /// them, and only for what is on the screen (call it after showing the lines). A stranger
    /// gets a NAK for each frame: a p2p-chat whose name our table lacks must not count its
    /// messages as shown, nor take us for a program that does not confirm.
    pub fn take_confirmations(&mut self) -> Option<Vec<u8>> {
        if self.confirming != Confirming::Yes || self.confirmations.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.confirmations))
    }

    /// Writing confirmations failed: the sender does not read them, and gets no more.
    pub fn stop_confirming(&mut self, table: &PeerTable, why: &str) {
        warn!(
            "{}: cannot write confirmations ({why}); sending no more",
            self.senders.describe(table)
        );
        self.confirming = Confirming::Never;
        self.confirmations.clear();
    }

    /// The lines of the last read could not be shown (stdout is gone): nothing more is confirmed,
    /// so the sender counts none of it as shown.
    pub fn unshown(&mut self) {
        self.confirming = Confirming::Never;
        self.confirmations.clear();
    }

    /// The friend this connection speaks for, once known.
    pub fn friend(&self) -> Option<PeerId> {
        self.senders.friend
    }

    /// The connection has ended `how`: it leaves the registry, and the line says so, unless the
    /// registry had closed it first (and said why); then the dropped frames not logged are
    /// summed up.
    pub fn end(&self, table: &PeerTable, registry: &Inbound, id: ConnId, how: Ending) {
        let how = if registry.remove(id) {
            how
        } else {
            Ending::Ours
        };
        let who = self.describe(table);
        match how {
            Ending::Theirs(None) => info!("{who} closed their connection to you"),
            Ending::Theirs(Some(e)) => warn!("connection from {who} failed: {e}"),
            Ending::Silent(limit) => {
                info!(
                    "closing connection from {who}: nothing received for {}",
                    Secs(limit)
                )
            }
            Ending::Ours => {}
        }
        let problems = self.senders.problems;
        if problems > LOGGED_PROBLEMS {
            warn!(
                "{} sent {problems} frames that were dropped ({} not logged)",
                self.describe(table),
                problems - LOGGED_PROBLEMS
            );
        }
    }

    /// `bob (127.0.0.1:54321)` once the friend is known, else just the address.
    pub fn describe(&self, table: &PeerTable) -> String {
        self.senders.describe(table)
    }
}

impl Senders {
    /// `bob (127.0.0.1:54321)` once the friend is known, else just the address.
    fn describe(&self, table: &PeerTable) -> String {
        match self.friend {
            Some(friend) => format!("{} ({})", table.get(friend).name, self.remote),
            None => self.remote.to_string(),
        }
    }

    /// Checks one frame's sender and, if it is a friend, formats the message into `lines`.
    /// Returns whether it will be shown.
    fn accept_frame(
        &mut self,
        sender: &[u8],
        message: &[u8],
        table: &PeerTable,
        screen: &Screen,
        lines: &mut Vec<u8>,
    ) -> bool {
        // A connection carries one sender: reuse the verdict and display prefix made for its
        // first frame instead of making them again for every frame of a burst.
        let known = matches!(&self.sender,
            Some((friend, _)) if table.get(*friend).name.as_bytes() == sender);
        if !known && let Some(friend) = self.friend {
            // The first valid frame fixed who this connection speaks for.
            let problem = format!(
                "dropped a frame signed {} from {}: this connection speaks for {}",
                claimed_name(&sender[..sender.len().min(80)]),
                self.remote,
                table.get(friend).name
            );
            self.complain(problem, table);
            return false;
        }
        if !known {
            let Some((friend, unverified)) = self.check_sender(sender, table) else {
                return false;
            };
            let from = unverified.then_some(self.remote.ip());
            self.sender = Some((friend, screen.prefix(sender, from)));
        }
        let (friend, prefix) = self
            .sender
            .as_ref()
            .expect("set just above when it was not already");
        if log_enabled!(target: "wire", log::Level::Trace) {
            trace!(target: "wire", "frame from {}: \"{}\"", table.get(*friend).name, message.escape_ascii());
        }
        screen.push_line(lines, prefix, message);
        true
    }

    /// Looks the sender up in the table. Returns the friend and whether the connection comes
    /// from an address the table does not give them, or `None` (with a warning) for a stranger.
    fn check_sender(&mut self, sender: &[u8], table: &PeerTable) -> Option<(PeerId, bool)> {
        let friend = std::str::from_utf8(sender)
            .ok()
            .and_then(|name| table.find(name));
        let Some(friend) = friend else {
            let problem = format!(
                "dropped a message from {} claiming to be from {}, who is not in the peer table",
                self.remote,
                claimed_name(&sender[..sender.len().min(80)])
            );
            self.complain(problem, table);
            return None;
        };
        let unverified = !table.is_address_of(friend, self.remote.ip());
        if self.friend.is_none() {
            self.friend = Some(friend);
            info!("{} connected to you", self.describe(table));
        }
        let name = &table.get(friend).name;
        if unverified && !self.warned_unverified {
            self.warned_unverified = true;
            warn!(
                "messages signed {name:?} are coming from {}, which is not {name}'s address in the \
                 table; they are shown as unverified",
                self.remote,
            );
        }
        Some((friend, unverified))
    }

    /// Logs a problem with what the connection sent, while fewer than [`LOGGED_PROBLEMS`] have
    /// been; counts it either way.
    fn complain(&mut self, problem: String, table: &PeerTable) {
        self.problems += 1;
        if self.problems <= LOGGED_PROBLEMS {
            warn!("{problem}");
        }
        if self.problems == LOGGED_PROBLEMS {
            warn!(
                "{}: further dropped frames are counted, not logged",
                self.describe(table)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// alice and bob at 127.0.0.1, and a screen without color (stdout is not a terminal here).
    fn setup() -> (PeerTable, Screen) {
        let text = "alice 127.0.0.1 7001\nbob 127.0.0.1 7002\n";
        let mut table = PeerTable::parse(text, "p").unwrap();
        assert!(table.resolve("p", Duration::from_secs(5)).is_empty());
        (table, Screen::from_env())
    }

    fn from(ip: &str) -> Incoming {
        Incoming::new(format!("{ip}:40000").parse().unwrap())
    }

    #[test]
    fn a_friend_is_shown_and_confirmed_once_the_first_wait_finds_no_nul() {
        let (table, screen) = setup();
        let mut conn = from("127.0.0.1");
        let mut lines = Vec::new();
        let known = conn.receive(b"alice/hi\nalice/yo\n", &table, &screen, &mut lines);
        assert_eq!(known, Some((PeerId(0), true)));
        assert_eq!(lines, b"[alice] hi\n[alice] yo\n");
        // Held back until the wait shows no NUL follows.
        assert!(conn.waits_for_first_confirmation());
        assert_eq!(conn.take_confirmations(), None);
        conn.first_wait_over();
        assert_eq!(conn.take_confirmations(), Some(vec![ACK_SHOWN, ACK_SHOWN]));
        // Later frames are confirmed at once, and who it is is not news any more.
        lines.clear();
        assert_eq!(
            conn.receive(b"alice/again\n", &table, &screen, &mut lines),
            None
        );
        assert_eq!(conn.take_confirmations(), Some(vec![ACK_SHOWN]));
    }

    #[test]
    fn the_classic_programs_nul_means_it_is_never_written_to() {
        let (table, screen) = setup();
        let mut conn = from("127.0.0.1");
        let mut lines = Vec::new();
        conn.receive(b"alice/hi\n", &table, &screen, &mut lines);
        // The NUL of `\n\0` came in a later read, within the wait.
        conn.receive(b"\0", &table, &screen, &mut lines);
        conn.first_wait_over();
        assert_eq!(conn.take_confirmations(), None);
        conn.receive(b"alice/more\n\0", &table, &screen, &mut lines);
        assert_eq!(conn.take_confirmations(), None);
        assert_eq!(lines, b"[alice] hi\n[alice] more\n");
    }

    #[test]
    fn a_second_sender_and_a_stranger_are_dropped_with_a_nak() {
        let (table, screen) = setup();
        let mut conn = from("127.0.0.1");
        let mut lines = Vec::new();
        conn.receive(b"alice/1\nbob/2\nalice/3\n", &table, &screen, &mut lines);
        assert_eq!(lines, b"[alice] 1\n[alice] 3\n");
        conn.first_wait_over();
        let acks = vec![ACK_SHOWN, ACK_DROPPED, ACK_SHOWN];
        assert_eq!(conn.take_confirmations(), Some(acks));

        let mut stranger = from("127.0.0.1");
        lines.clear();
        assert_eq!(
            stranger.receive(b"zed/hi\n", &table, &screen, &mut lines),
            None
        );
        stranger.first_wait_over();
        assert_eq!(stranger.take_confirmations(), Some(vec![ACK_DROPPED]));
        assert!(lines.is_empty());
    }

    #[test]
    fn a_friends_name_from_another_address_is_marked_unverified() {
        let (table, screen) = setup();
        let mut conn = from("127.0.0.9");
        let mut lines = Vec::new();
        let known = conn.receive(b"bob/it is me\n", &table, &screen, &mut lines);
        assert_eq!(known, Some((PeerId(1), false)));
        assert_eq!(lines, b"[bob (unverified: from 127.0.0.9)] it is me\n");
    }
}
