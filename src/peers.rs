//! The peer table: who is where.
//!
//! `peers.txt` is shared by every friend beforehand. Each line is `NAME HOST PORT`; `#` starts a
//! comment and blank lines are ignored. [`PeerTable::parse`] checks the text and needs no network,
//! so every rule is unit-tested; [`PeerTable::load`] reads the file and parses it. Host names are
//! looked up once at start-up, all at once and within a time limit, by [`PeerTable::resolve`]: a
//! friend whose name does not resolve (a laptop that is off) is no reason not to start, and is
//! looked up again by the link thread each time we write to them. The table never changes after
//! start-up, so threads share it behind an `Arc` with no lock.

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, bounded};

use crate::error::{Error, Result};
use crate::escape::{escaped, is_invisible};

/// The longest name a friend may have, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// A friend's index in the table. Cheap to copy and to use as a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub usize);

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Peer {
    /// `127.0.0.1:7002`, or `[::1]:7002` for an IPv6 address, whose colons would run into the
    /// port's.
    pub fn address(&self) -> String {
        match self.host.contains(':') {
            true => format!("[{}]:{}", self.host, self.port),
            false => format!("{}:{}", self.host, self.port),
        }
    }

    /// Resolves the host (an address or a name) to socket addresses. A name lookup may block on
    /// DNS for as long as the system likes, so only [`Peer::resolve`] calls this for a name.
    pub fn socket_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the host name has no addresses",
            ));
        }
        Ok(addrs)
    }

    /// [`Peer::socket_addrs`] within `timeout`.
    pub fn resolve(&self, timeout: Duration) -> io::Result<Vec<SocketAddr>> {
        self.lookup()
            .recv_timeout(timeout)
            .unwrap_or_else(|_| timed_out(timeout))
    }

    /// Starts [`Peer::socket_addrs`]; the answer arrives on the channel returned. An address
    /// needs no lookup and is there at once. std has no lookup with a deadline, so a name is
    /// looked up on a helper thread; one still waiting on DNS when its caller gives up is left
    /// to finish on its own, and its answer is dropped.
    fn lookup(&self) -> Receiver<io::Result<Vec<SocketAddr>>> {
        let (tx, rx) = bounded(1);
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            let _ = tx.send(Ok(vec![SocketAddr::new(ip, self.port)]));
            return rx;
        }
        let (answer, peer) = (tx.clone(), self.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("resolve:{}", self.name))
            .spawn(move || {
                let _ = answer.send(peer.socket_addrs());
            });
        if let Err(e) = spawned {
            let _ = tx.send(Err(e));
        }
        rx
    }
}

fn timed_out<T>(timeout: Duration) -> io::Result<T> {
    Err(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no answer within {:.1} s", timeout.as_secs_f64()),
    ))
}

impl fmt::Display for Peer {
    /// `bob (127.0.0.1:7002)`, the form every log line uses to name a friend.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.address())
    }
}

/// The whole table, in file order, plus the addresses each host resolved to at start-up.
#[derive(Debug, Clone, Default)]
pub struct PeerTable {
    peers: Vec<Peer>,
    /// `lines[i]` is the 1-based line of `peers[i]` in the file, for error messages.
    lines: Vec<usize>,
    /// `ips[i]` holds the addresses `peers[i].host` resolved to; used to tell whether a frame
    /// claiming to be from a friend came from that friend's machine.
    ips: Vec<Vec<IpAddr>>,
}

impl PeerTable {
    /// Reads and parses the table at `path`; see [`PeerTable::resolve`] for the host names.
    /// Only a regular file of at most [`MAX_TABLE_BYTES`] is read: `/dev/zero` would never end,
    /// and a FIFO would wait for a writer for ever.
    pub fn load(path: &str) -> Result<PeerTable> {
        let refuse = |message: String| Error::table(path, 0, message);
        let read_error = |source| Error::TableRead {
            path: path.to_string(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_error)?;
        if !meta.is_file() {
            return Err(refuse(
                "not a regular file (a device, a pipe or a directory); give the path of a text \
                 file of lines NAME HOST PORT"
                    .to_string(),
            ));
        }
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut text = Vec::new();
        // One byte more than the limit tells a file at the limit from one beyond it, even one
        // that grows while it is read.
        file.take(MAX_TABLE_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(read_error)?;
        if text.len() as u64 > MAX_TABLE_BYTES {
            return Err(refuse(format!(
                "the file is larger than {} KiB, far more than any group of friends needs",
                MAX_TABLE_BYTES / 1024
            )));
        }
        // A byte order mark, which some editors write, is not part of the first name.
        let text = text
            .strip_prefix("\u{feff}".as_bytes())
            .map(<[u8]>::to_vec)
            .unwrap_or(text);
        let text = String::from_utf8(text).map_err(|e| {
            let line = line_of_offset(e.as_bytes(), e.utf8_error().valid_up_to());
            Error::table(path, line, "the file is not valid UTF-8")
        })?;
        PeerTable::parse(&text, path)
    }

    /// Parses the text of a table; `path` is only used in error messages. Needs no network.
    pub fn parse(text: &str, path: &str) -> Result<PeerTable> {
        let error = |line: usize, message: String| Error::table(path, line, message);
        let mut peers: Vec<Peer> = Vec::new();
        let mut lines = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.split('#').next().unwrap_or_default();
            let fields: Vec<&str> = content.split_whitespace().collect();
            let (name, host, port) = match fields[..] {
                [] => continue,
                [name, host, port] => (name, host, port),
                _ => {
                    let found = match fields.len() {
                        1 => "1 field".to_string(),
                        n => format!("{n} fields"),
                    };
                    // More than three: a space inside a name or a host.
                    let hint = match fields.len() {
                        4.. => " (names and hosts cannot contain spaces)",
                        _ => "",
                    };
                    let message = format!(
                        "expected NAME HOST PORT, found {found}: {:?}{hint}",
                        content.trim()
                    );
                    return Err(error(line, message));
                }
            };
            check_name(name).map_err(|why| error(line, why))?;
            let port = parse_port(port).map_err(|why| error(line, why))?;
            if let Some(first) = peers.iter().position(|p| p.name == name) {
                return Err(error(
                    line,
                    format!("name {name:?} is already used on line {}", lines[first]),
                ));
            }
            if let Some(first) = peers.iter().position(|p| p.host == host && p.port == port) {
                return Err(error(
                    line,
                    format!(
                        "{host} port {port} is already {}'s address (line {}); \
                         every friend needs a host and port of their own",
                        peers[first].name, lines[first]
                    ),
                ));
            }
            peers.push(Peer {
                name: name.to_string(),
                host: host.to_string(),
                port,
            });
            lines.push(line);
        }
        if peers.is_empty() {
            return Err(error(
                0,
                "the table has no friends in it; add lines of the form NAME HOST PORT".to_string(),
            ));
        }
        let ips = vec![Vec::new(); peers.len()];
        Ok(PeerTable { peers, lines, ips })
    }

    /// Looks every host up, all at once, within `timeout`, and remembers the addresses so a
    /// frame can be checked against its sender's machine. Returns the friends whose host did not
    /// resolve, each with an error that names the table line; the caller decides what is fatal.
    pub fn resolve(&mut self, path: &str, timeout: Duration) -> Vec<(PeerId, Error)> {
        let deadline = Instant::now() + timeout;
        let lookups: Vec<_> = self.peers.iter().map(Peer::lookup).collect();
        let mut failed = Vec::new();
        for (index, lookup) in lookups.into_iter().enumerate() {
            let answer = lookup.recv_deadline(deadline);
            match answer.unwrap_or_else(|_| timed_out(timeout)) {
                Ok(addrs) => self.ips[index] = addrs.iter().map(SocketAddr::ip).collect(),
                Err(e) => failed.push((
                    PeerId(index),
                    Error::table(
                        path,
                        self.lines[index],
                        format!(
                            "host {:?} is neither an IP address nor a name that resolves ({e})",
                            self.peers[index].host
                        ),
                    ),
                )),
            }
        }
        failed
    }

    /// Finds a friend by name.
    pub fn find(&self, name: &str) -> Option<PeerId> {
        self.peers.iter().position(|p| p.name == name).map(PeerId)
    }

    /// The friend with this id. Ids only come from this table, so this cannot fail.
    pub fn get(&self, id: PeerId) -> &Peer {
        &self.peers[id.0]
    }

    /// Every friend's id, in table order.
    pub fn ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        (0..self.peers.len()).map(PeerId)
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The friends' names, comma-separated, for error messages such as "unknown friend".
    pub fn names(&self) -> String {
        let names: Vec<&str> = self.peers.iter().map(|p| p.name.as_str()).collect();
        names.join(", ")
    }

    /// The socket addresses the friend's host resolved to at start-up: empty if it did not, or
    /// if the table was only parsed. For a loop that must never wait on a lookup.
    pub fn resolved_addrs(&self, id: PeerId) -> Vec<SocketAddr> {
        let port = self.peers[id.0].port;
        self.ips[id.0]
            .iter()
            .map(|&ip| SocketAddr::new(ip, port))
            .collect()
    }

    /// Whether `ip` is one of the addresses the friend's host resolved to. A table that was only
    /// parsed, not resolved, knows no addresses and vouches for nobody.
    pub fn is_address_of(&self, id: PeerId, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.ips[id.0]
            .iter()
            .any(|known| known.to_canonical() == ip)
    }
}

/// The largest peer table read: a mebibyte.
pub const MAX_TABLE_BYTES: u64 = 1024 * 1024;

/// Checks a friend's name: 1 to 32 characters, no `/` (it separates name and message on the wire),
/// no whitespace (it separates the fields of the table), and nothing invisible: no control
/// character and no format character (bidi overrides, zero-width characters), which could make
/// two names look alike or one read backwards. Names in messages are shown escaped.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let shown = escaped(name.as_bytes());
    let chars = name.chars().count();
    if chars == 0 {
        return Err("a name cannot be empty".to_string());
    }
    if chars > MAX_NAME_CHARS {
        return Err(format!(
            "name \"{shown}\" is {chars} characters long; the limit is {MAX_NAME_CHARS}"
        ));
    }
    if name.contains('/') {
        return Err(format!(
            "name \"{shown}\" contains '/', which separates the name from the message on the wire"
        ));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "name \"{shown}\" contains whitespace or a control character"
        ));
    }
    if let Some(c) = name.chars().find(|&c| is_invisible(c)) {
        return Err(format!(
            "name \"{shown}\" contains the invisible character U+{:04X}, which can make a name \
             look like another or read backwards; type the name again without it",
            c as u32
        ));
    }
    Ok(())
}

fn parse_port(text: &str) -> std::result::Result<u16, String> {
    match text.parse::<u32>() {
        Ok(port @ 1..=65535) => Ok(port as u16),
        Ok(port) => Err(format!("port {port} is out of range 1-65535")),
        Err(_) => Err(format!("port {text:?} is not a number in range 1-65535")),
    }
}

fn line_of_offset(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> String {
        PeerTable::parse(text, "peers.txt")
            .expect_err("the table should be rejected")
            .to_string()
    }

    #[test]
    fn parses_names_hosts_ports_comments_and_blank_lines() {
        let text = "# friends\n\nalice 127.0.0.1 7001\n  bob\t::1   7002 # laptop\ncarol example.org 65535\n";
        let table = PeerTable::parse(text, "peers.txt").unwrap();
        assert_eq!(table.len(), 3);
        let bob = table.find("bob").unwrap();
        assert_eq!(
            table.get(bob),
            &Peer {
                name: "bob".into(),
                host: "::1".into(),
                port: 7002
            }
        );
        assert_eq!(table.names(), "alice, bob, carol");
        assert_eq!(table.find("dave"), None);
        assert_eq!(table.get(bob).to_string(), "bob ([::1]:7002)");
        assert_eq!(table.get(bob).address(), "[::1]:7002");
        assert_eq!(table.get(PeerId(0)).address(), "127.0.0.1:7001");
    }

    #[test]
    fn reports_wrong_field_counts_with_file_and_line() {
        assert_eq!(
            parse_err("alice 127.0.0.1 7001\nbob 127.0.0.1\n"),
            "peers.txt:2: expected NAME HOST PORT, found 2 fields: \"bob 127.0.0.1\""
        );
        assert!(parse_err("\n\nbob 127.0.0.1 7002 extra\n").starts_with("peers.txt:3: expected"));
    }

    #[test]
    fn rejects_ports_out_of_range_or_not_numbers() {
        assert_eq!(
            parse_err("a 127.0.0.1 7001\nb 127.0.0.1 7002\nc 127.0.0.1 7003\nd 127.0.0.1 99999\n"),
            "peers.txt:4: port 99999 is out of range 1-65535"
        );
        assert_eq!(
            parse_err("a 127.0.0.1 0\n"),
            "peers.txt:1: port 0 is out of range 1-65535"
        );
        assert!(parse_err("a 127.0.0.1 http\n").contains("port \"http\" is not a number"));
    }

    #[test]
    fn rejects_bad_and_duplicate_names_and_addresses() {
        assert!(parse_err("a/b 127.0.0.1 7001\n").contains("contains '/'"));
        let long = "x".repeat(33);
        assert!(parse_err(&format!("{long} 127.0.0.1 7001\n")).contains("the limit is 32"));
        assert!(PeerTable::parse(&format!("{} h 1\n", "é".repeat(32)), "p").is_ok());
        assert_eq!(
            parse_err("a 127.0.0.1 7001\n# c\na 127.0.0.1 7002\n"),
            "peers.txt:3: name \"a\" is already used on line 1"
        );
        assert!(
            parse_err("a 127.0.0.1 7001\nb 127.0.0.1 7001\n")
                .starts_with("peers.txt:2: 127.0.0.1 port 7001 is already a's address (line 1)")
        );
    }

    #[test]
    fn rejects_an_empty_table() {
        assert_eq!(
            parse_err("# nobody yet\n\n"),
            "peers.txt: the table has no friends in it; add lines of the form NAME HOST PORT"
        );
    }

    #[test]
    fn a_host_that_does_not_resolve_is_reported_with_its_line_and_the_rest_resolve() {
        let text = "a 127.0.0.1 7001\n\nb no-such-host.invalid 7002\n";
        let mut table = PeerTable::parse(text, "p").unwrap();
        let failed = table.resolve("p", Duration::from_secs(5));
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, PeerId(1));
        assert!(
            failed[0]
                .1
                .to_string()
                .starts_with("p:3: host \"no-such-host.invalid\""),
            "{}",
            failed[0].1
        );
        assert!(table.is_address_of(PeerId(0), "127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn a_parsed_table_vouches_for_no_address_until_resolved() {
        let text = "a 127.0.0.1 7001\n";
        let mut table = PeerTable::parse(text, "p").unwrap();
        let a = table.find("a").unwrap();
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(!table.is_address_of(a, local));
        assert!(table.resolve("p", Duration::from_secs(5)).is_empty());
        assert!(table.is_address_of(a, local));
        assert!(table.is_address_of(a, "::ffff:127.0.0.1".parse().unwrap()));
        assert!(!table.is_address_of(a, "127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn a_name_with_an_invisible_character_is_refused_with_its_line_and_shown_escaped() {
        let err = parse_err("alice 127.0.0.1 7001\nb\u{202e}ob 127.0.0.1 7002\n");
        assert!(
            err.starts_with("peers.txt:2: name \"b\\u{202e}ob\""),
            "{err}"
        );
        assert!(err.contains("U+202E"), "{err}");
        let err = parse_err("zero\u{200b}width 127.0.0.1 7001\n");
        assert!(err.contains("U+200B"), "{err}");
    }
}
