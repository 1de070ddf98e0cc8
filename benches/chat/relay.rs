//! The baseline for throughput and latency: a bare relay that moves lines stdin -> one loopback
//! TCP connection -> stdout and does nothing else.
//!
//! It runs as two child processes of this same benchmark binary (`chat relay-send PORT` and
//! `chat relay-receive PORT`), so it pays for the same pipes and process boundaries as a pair of
//! chat peers. Its buffering copies the chat's: the sender reads stdin through a 64 KiB buffer a
//! line at a time and writes the lines gathered so far with one `write_all` whenever the buffer is
//! empty (as `threads/console.rs` does), on a connection with Nagle off (as `threads/link.rs`
//! does); the receiver reads 64 KiB at a time and writes the complete lines of each read to stdout
//! with one write and a flush (as `threads/reader.rs` and `terminal/screen.rs` do). What it leaves
//! out is what the chat adds: parsing, routing through the dispatcher, a thread per link and per
//! reader, frame checks and escaping.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::harness::Process;

/// The argument that makes this binary the sending half of the relay.
pub const SEND: &str = "relay-send";
/// The argument that makes this binary the receiving half of the relay.
pub const RECEIVE: &str = "relay-receive";

/// The chat's stdin read size (`console::READ_BYTES`), which is also its socket read size
/// (`reader::READ_CHUNK`).
const BUFFER: usize = p2p_chat::threads::console::READ_BYTES;

/// Starts the receiving half, then the sending half connected to it.
pub fn start() -> (Process, Process) {
    let port = crate::common::free_ports(1)[0].to_string();
    let exe = std::env::current_exe().expect("the benchmark knows the path of its own binary");
    let mut command = Command::new(&exe);
    command.args([RECEIVE, &port]);
    let receiver = Process::spawn("relay-receiver", command);
    receiver.log.wait_for("listening", Duration::from_secs(10));
    let mut command = Command::new(&exe);
    command.args([SEND, &port]);
    let sender = Process::spawn("relay-sender", command);
    sender.log.wait_for("connected", Duration::from_secs(10));
    receiver.log.wait_for("accepted", Duration::from_secs(10));
    (sender, receiver)
}

fn port(args: &[String]) -> u16 {
    args.first()
        .and_then(|port| port.parse().ok())
        .expect("the relay is started with a port number")
}

/// The sending half: stdin -> TCP, until end of input.
pub fn send(args: &[String]) {
    let port = port(args);
    let mut stream =
        TcpStream::connect(("127.0.0.1", port)).expect("the relay sender cannot connect");
    stream
        .set_nodelay(true)
        .expect("the relay sender cannot turn Nagle off");
    eprintln!("relay sender connected to 127.0.0.1:{port}");
    let mut input = BufReader::with_capacity(BUFFER, io::stdin());
    let mut line = Vec::new();
    let mut batch = Vec::new();
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("the relay sender cannot read stdin: {e}"),
        }
        batch.extend_from_slice(&line);
        if input.buffer().is_empty() || batch.len() >= BUFFER {
            stream
                .write_all(&batch)
                .expect("the relay sender cannot write to its connection");
            batch.clear();
        }
    }
    stream
        .write_all(&batch)
        .expect("the relay sender cannot write to its connection");
    let _ = stream.shutdown(Shutdown::Write);
}

/// The receiving half: one TCP connection -> stdout, until the sender closes it.
pub fn receive(args: &[String]) {
    let port = port(args);
    let listener =
        TcpListener::bind(("127.0.0.1", port)).expect("the relay receiver cannot bind its port");
    eprintln!("relay receiver listening on 127.0.0.1:{port}");
    let (mut stream, remote) = listener
        .accept()
        .expect("the relay receiver cannot accept a connection");
    eprintln!("relay receiver accepted {remote}");
    let mut chunk = vec![0u8; BUFFER];
    let mut pending = Vec::new();
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("the relay receiver cannot read its connection: {e}"),
        };
        pending.extend_from_slice(&chunk[..n]);
        if let Some(end) = pending.iter().rposition(|&b| b == b'\n') {
            let mut stdout = io::stdout().lock();
            if stdout.write_all(&pending[..=end]).is_err() || stdout.flush().is_err() {
                return; // the benchmark has gone
            }
            pending.drain(..=end);
        }
    }
}
