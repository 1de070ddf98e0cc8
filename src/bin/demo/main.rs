//! The `p2p-chat-demo` binary: five real p2p-chat processes on this machine chat by script, and
//! the demo prints and checks their transcript (`make demo`); or, with `--tmux`, one tmux pane
//! per friend for a person to type into (`make demo-tmux`). One of the five, the fourth, runs
//! p2p-chat-select, the same chat as one poll() loop.
//!
//! ```text
//!                      stdin pipes (typed lines)
//!   [main: stage] ─────────────────────────────────> p2p-chat alice, bob, carol, eve;
//!        ^   ^                                       p2p-chat-select dave
//!        │   └──Line── [Stdout:alice] [Stderr:alice] ... <───┘ (one reader thread per pipe)
//!        └──()── Ctrl-C handler
//! ```
//!
//! The main thread plays the script (`script`) on the stage (`stage`), which prints the transcript
//! as lines arrive, then gives the verdict and maps it to an exit code: 0 when all went well, 1
//! when something did not or the demo could not run, 2 for a usage or peer-table error, 130
//! after Ctrl-C.

mod options;
#[path = "../../../tests/common/process.rs"]
mod process;
mod script;
mod stage;
mod timeline;
mod tmux;

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use crossbeam_channel::bounded;
use p2p_chat::peers::PeerTable;

use crate::options::Options;
use crate::stage::Stage;

/// The script needs five friends; more are started too (a broadcast reaches them), up to this.
const MOST_FRIENDS: usize = 16;

/// The friend (by table order) who runs p2p-chat-select, the poll() twin, instead of p2p-chat.
const SELECT_PEER: usize = 3;

/// How long the peers may take to deliver what they hold and exit at the end.
const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything that can end the demo unsuccessfully, with what to print.
#[derive(Debug)]
pub enum Failure {
    /// The command line or the peer table is wrong: exit 2.
    Usage(String),
    /// The demo cannot run here (a port is taken, a program is missing), or it ran and something
    /// went wrong: exit 1.
    Failed(String),
    /// Ctrl-C: exit 130, as a shell reports a process ended by SIGINT.
    Interrupted,
}

fn main() -> ExitCode {
    let Err(failure) = try_main() else {
        return ExitCode::SUCCESS;
    };
    let (code, message) = match failure {
        Failure::Usage(message) => (2, message),
        Failure::Failed(message) => (1, message),
        Failure::Interrupted => (
            130,
            "interrupted; every peer the demo started has stopped".into(),
        ),
    };
    eprintln!("p2p-chat-demo: {message}");
    ExitCode::from(code)
}

fn try_main() -> Result<(), Failure> {
    let usage = |e| Failure::Usage(format!("{e} (see p2p-chat-demo --help)"));
    let Some(options) = options::parse(std::env::args_os().skip(1)).map_err(usage)? else {
        say(options::USAGE);
        return Ok(());
    };
    let table = PeerTable::load(&options.peers_path.to_string_lossy())
        .map_err(|e| Failure::Usage(e.to_string()))?;
    if !(5..=MOST_FRIENDS).contains(&table.len()) {
        return Err(Failure::Usage(format!(
            "{}: the demo needs from 5 to {MOST_FRIENDS} friends in the table; it has {}",
            options.peers_path.display(),
            table.len()
        )));
    }
    let names: Vec<String> = table.ids().map(|id| table.get(id).name.clone()).collect();
    let commands = commands(&options, &names)?;
    if options.tmux {
        // tmux first: without it, or with its session already open, the ports do not matter.
        tmux::check_ready()?;
        check_ports(&table)?;
        return tmux::run(&names[..5], &commands[..5]);
    }
    check_ports(&table)?;
    play(&options, names, commands)
}

/// How to start each friend: the program (p2p-chat, or p2p-chat-select for one of them) and its
/// arguments, the same for the script and for the tmux panes.
fn commands(options: &Options, names: &[String]) -> Result<Vec<Command>, Failure> {
    let chat = program(options, "p2p-chat")?;
    let select = program(options, "p2p-chat-select")?;
    // The children and tmux may run in another directory: give them an absolute path.
    let peers = std::fs::canonicalize(&options.peers_path).unwrap_or(options.peers_path.clone());
    let idle = options.idle_timeout.as_secs_f64().to_string();
    let command = |(index, name): (usize, &String)| {
        let mut command = Command::new(if index == SELECT_PEER { &select } else { &chat });
        // -v shows connection events in a tmux pane from the start; on a pipe it changes nothing.
        command.args(["-v", "--peers"]).arg(&peers);
        // p2p-chat-select does not confirm, like the classic program: its friends count a
        // message to it as sent once --ack-timeout has passed, well before the script ends.
        command.args(["--idle-timeout", &idle, "--ack-timeout", "0.5", name]);
        command
    };
    Ok(names.iter().enumerate().map(command).collect())
}

/// Starts everyone, plays the script, gives the verdict.
fn play(options: &Options, names: Vec<String>, commands: Vec<Command>) -> Result<(), Failure> {
    let started = Instant::now();
    // Ctrl-C becomes a message to the stage, which returns early; dropping the stage kills the
    // peers. A second Ctrl-C before that quits at once.
    let (interrupt_tx, interrupt_rx) = bounded(1);
    let mut interrupted = false;
    ctrlc::set_handler(move || {
        if std::mem::replace(&mut interrupted, true) {
            std::process::exit(130);
        }
        let _ = interrupt_tx.try_send(());
    })
    .map_err(|e| Failure::Failed(format!("cannot install the Ctrl-C handler: {e}")))?;

    say(&format!(
        "p2p-chat demo: {} peers from the table; each line shows seconds since the start, the peer, \
         and its stdin (typed by the script), stdout (messages it received) or stderr (its log); \
         {} runs p2p-chat-select, the same chat as one poll() loop",
        names.len(),
        names[SELECT_PEER]
    ));
    let mut stage = Stage::open(names, commands, options.pace, interrupt_rx)?;
    script::perform(&mut stage, options.idle_timeout)?;
    stage.finish(FINISH_TIMEOUT)?;
    if let Some(path) = &options.timeline {
        let names = stage.names();
        let poll: Vec<bool> = (0..names.len()).map(|i| i == SELECT_PEER).collect();
        let idle = options.idle_timeout.as_secs_f64();
        let drawing = timeline::svg(&names, &poll, stage.lines(), idle);
        match std::fs::write(path, drawing) {
            Ok(()) => say(&format!(
                "the run as a sequence diagram: {} (open it in a web browser)",
                path.display()
            )),
            Err(e) => say(&format!("cannot write {}: {e}", path.display())),
        }
    }
    let problems = stage.verdict();
    if !problems.is_empty() {
        let list: String = problems.iter().map(|p| format!("\n  - {p}")).collect();
        let count = problems.len();
        return Err(Failure::Failed(format!("{count} check(s) failed:{list}")));
    }
    say(&format!(
        "demo passed: all checks passed in {:.1} s (every sign the script waited for came: \
         messages, the answer to the unknown name, the idle close and reconnect, the message \
         held for the friend who left and delivered when they came back, its confirmation; \
         everyone quit cleanly and no one logged an error)",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Prints a line on stdout. A closed stdout (`| head`) is not worth a panic.
fn say(text: &str) {
    let _ = writeln!(std::io::stdout(), "{text}");
}

/// Before anything starts: every friend's address must be free on this machine, or that friend
/// would fail to start and the demo with it in confusing ways. Names the friend if not.
fn check_ports(table: &PeerTable) -> Result<(), Failure> {
    for peer in table.ids().map(|id| table.get(id)) {
        let addrs = peer.socket_addrs().map_err(|e| {
            let host = &peer.host;
            Failure::Failed(format!("cannot resolve {}'s host {host:?}: {e}", peer.name))
        })?;
        for addr in addrs {
            TcpListener::bind(addr).map_err(|e| {
                let why = match e.kind() {
                    std::io::ErrorKind::AddrInUse => "the port is already in use (is a p2p-chat \
                        still running? stop it, or edit the table)"
                        .to_string(),
                    _ => format!("{e} (the demo runs every friend on this machine)"),
                };
                Failure::Failed(format!("cannot listen on {addr} for {}: {why}", peer.name))
            })?;
        }
    }
    Ok(())
}

/// A program of the project: `--chat-bin`'s directory, or this program's, holds them all.
fn program(options: &Options, name: &str) -> Result<PathBuf, Failure> {
    let beside = match &options.chat_bin {
        Some(chat) => chat.clone(),
        None => std::env::current_exe()
            .map_err(|e| Failure::Failed(format!("cannot find this program's own path: {e}")))?,
    };
    let path = beside.with_file_name(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        return Err(Failure::Failed(format!(
            "{} does not exist: build it with 'cargo build --release' (or 'make build'), or \
             point --chat-bin at p2p-chat",
            path.display()
        )));
    }
    // Absolute, so tmux panes find it whatever their working directory.
    Ok(std::fs::canonicalize(&path).unwrap_or(path))
}
