//! The p2p-chat child processes, one per friend in the table, and the threads that read them.
//!
//! Each child's stdin, stdout and stderr are pipes. The demo writes to stdin itself; for each
//! output pipe one reader thread (`stdout:bob`, `stderr:bob`) reads whole lines and sends them,
//! labelled and timestamped, over one channel to the stage, the only thread that prints. The
//! channel disconnects when every pipe has reached end-of-file, that is when every child is gone.
//!
//! Nothing started here outlives the demo. [`Children`] kills and reaps every child still running
//! when it is dropped, which happens on every way out of the demo, Ctrl-C included (the stage
//! turns Ctrl-C into an early return). The children run in a process group of their own, so a
//! Ctrl-C at the terminal reaches the demo alone and the demo decides how they end; and should the
//! demo itself be killed outright, each child sees its stdin close, which p2p-chat treats as quit.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::transcript::{Line, Source};

/// How to start each child.
pub struct Launch {
    pub chat_bin: PathBuf,
    /// p2p-chat-select, the poll() twin, run for the friend at `select_peer`.
    pub select_bin: PathBuf,
    pub select_peer: usize,
    pub peers_path: PathBuf,
    pub idle_timeout: Duration,
    pub names: Vec<String>,
    /// Where each child's reader threads send its lines. Dropped by [`Children::no_more_starts`],
    /// so that the channel disconnects once every pipe has closed.
    pub output: Option<Sender<Line>>,
}

struct RunningPeer {
    process: Child,
    /// `None` once closed: end of input, which p2p-chat treats as quit.
    stdin: Option<ChildStdin>,
    exited: bool,
}

/// Every child the demo started, in table order.
pub struct Children {
    launch: Launch,
    peers: Vec<RunningPeer>,
}

impl Children {
    /// Starts one p2p-chat per name, each reading its own pipes on two new threads that send
    /// their lines to `launch.output`. If one fails to start, those already started are killed.
    pub fn start(launch: Launch) -> io::Result<Children> {
        let mut children = Children {
            launch,
            peers: Vec::new(),
        };
        for index in 0..children.launch.names.len() {
            children.spawn(index)?;
        }
        Ok(children)
    }

    /// Starts `peer` again after it has exited, as a friend who comes back would.
    pub fn restart(&mut self, peer: usize) -> io::Result<()> {
        if self.running(peer) {
            return Err(io::Error::other("it is still running"));
        }
        self.spawn(peer)
    }

    /// No child will be started again: let the line channel close with the last pipe.
    pub fn no_more_starts(&mut self) {
        self.launch.output = None;
    }

    /// Starts the child for table entry `index`, in its slot of `peers`.
    fn spawn(&mut self, index: usize) -> io::Result<()> {
        let launch = &self.launch;
        let name = &launch.names[index];
        let output = launch
            .output
            .clone()
            .ok_or_else(|| io::Error::other("the demo is finishing"))?;
        let program = match index == launch.select_peer {
            true => &launch.select_bin,
            false => &launch.chat_bin,
        };
        let mut command = Command::new(program);
        command
            .arg("--peers")
            .arg(&launch.peers_path)
            .arg("--idle-timeout")
            .arg(launch.idle_timeout.as_secs_f64().to_string())
            // p2p-chat-select does not confirm, like the classic program: its friends count a
            // message to it as sent once this has passed, well before the script ends.
            .args(["--ack-timeout", "0.5"])
            .arg(name)
            .env("RUST_LOG", log_filter())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut process = command.spawn()?;
        let stdin = process.stdin.take();
        let stdout = process.stdout.take();
        let stderr = process.stderr.take();
        // Registered before anything else can fail, so that Drop kills it.
        let running = RunningPeer {
            process,
            stdin,
            exited: false,
        };
        if index < self.peers.len() {
            // The slot's old process has exited and been reaped by `poll_exit`'s `try_wait`.
            self.peers[index] = running;
        } else {
            self.peers.push(running);
        }
        let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
            return Err(io::Error::other("a child's output pipes were not created"));
        };
        spawn_reader(index, Source::Stdout, name, stdout, output.clone())?;
        spawn_reader(index, Source::Stderr, name, stderr, output)
    }

    /// Writes one line to `peer`'s stdin, as if typed.
    pub fn type_line(&mut self, peer: usize, text: &str) -> io::Result<()> {
        let stdin = self
            .peers
            .get_mut(peer)
            .and_then(|p| p.stdin.as_mut())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "its input is closed"))?;
        stdin.write_all(format!("{text}\n").as_bytes())?;
        stdin.flush()
    }

    /// Closes `peer`'s stdin: end of input, which p2p-chat treats as quit.
    pub fn close_stdin(&mut self, peer: usize) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.stdin = None;
        }
    }

    /// The exit code of `peer` if it has just ended (`Some(None)` if killed by a signal), without
    /// waiting. Reports each exit once.
    pub fn poll_exit(&mut self, peer: usize) -> Option<Option<i32>> {
        let p = self.peers.get_mut(peer)?;
        if p.exited {
            return None;
        }
        match p.process.try_wait() {
            Ok(Some(status)) => {
                p.exited = true;
                Some(status.code())
            }
            Ok(None) => None,
            // Cannot ask: count it as gone, so no one waits on it forever; Drop still kills it.
            Err(_) => {
                p.exited = true;
                Some(None)
            }
        }
    }

    /// Whether `peer` is still running, as far as the demo has seen.
    pub fn running(&self, peer: usize) -> bool {
        self.peers.get(peer).is_some_and(|p| !p.exited)
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for peer in &mut self.peers {
            peer.stdin = None;
            if let Ok(None) = peer.process.try_wait() {
                let _ = peer.process.kill();
            }
            let _ = peer.process.wait();
        }
    }
}

/// The children's log filter: at least `info`, which the checks read, plus whatever `RUST_LOG`
/// adds (`RUST_LOG=wire=trace` shows the bytes on the wire).
fn log_filter() -> String {
    match std::env::var("RUST_LOG") {
        Ok(extra) if !extra.trim().is_empty() => format!("info,{extra}"),
        _ => "info".to_string(),
    }
}

/// Starts the thread that reads one output pipe of one child, line by line, until end-of-file.
fn spawn_reader(
    peer: usize,
    source: Source,
    name: &str,
    pipe: impl Read + Send + 'static,
    output: Sender<Line>,
) -> io::Result<()> {
    let label = if source == Source::Stdout {
        "stdout"
    } else {
        "stderr"
    };
    thread::Builder::new()
        .name(format!("{label}:{name}"))
        .spawn(move || {
            let mut pipe = BufReader::new(pipe);
            let mut bytes = Vec::new();
            loop {
                bytes.clear();
                match pipe.read_until(b'\n', &mut bytes) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    bytes.pop();
                }
                let line = Line {
                    at: Instant::now(),
                    peer: Some(peer),
                    source,
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                };
                if output.send(line).is_err() {
                    return; // the stage has finished
                }
            }
        })?;
    Ok(())
}
