//! The `p2p-chat-demo` binary: five real p2p-chat processes on this machine chat by script, and
//! the demo checks its own transcript (`make demo`); or, with `--tmux`, one tmux pane per friend
//! for a person to type into (`make demo-tmux`).
//!
//! ```text
//!                      stdin pipes (typed lines)
//!   [main: stage] ─────────────────────────────────> p2p-chat alice, bob, carol, dave, eve
//!        ^   ^                                               │ stdout and stderr pipes
//!        │   └──Line── [stdout:alice] [stderr:alice] ... <───┘ (one reader thread per pipe)
//!        └──()── Ctrl-C handler
//! ```
//!
//! The main thread plays the script (`script`), printing the transcript as lines arrive
//! (`stage`, `transcript`), then checks it (`checks`) and maps the outcome to an exit code: 0 when
//! every check passed, 1 when one failed or the demo could not run, 2 for a usage or peer-table
//! error, 130 after Ctrl-C.

mod checks;
mod children;
mod failure;
mod options;
mod ports;
mod script;
mod stage;
mod tmux;
mod transcript;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded};
use p2p_chat::peers::PeerTable;

use crate::children::{Children, Launch};
use crate::failure::Failure;
use crate::options::{Action, Options};
use crate::stage::Stage;
use crate::transcript::{Line, Source, Transcript};

/// The script needs five friends; more are started too (a broadcast reaches them), up to this.
const MOST_FRIENDS: usize = 16;

/// The friend (by table order) who runs p2p-chat-select, the poll() twin, instead of p2p-chat.
const SELECT_PEER: usize = 3;

/// How long the peers may take to deliver what they hold and exit at the end.
const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("p2p-chat-demo: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

fn try_main() -> Result<(), Failure> {
    let options = match options::parse(std::env::args_os().skip(1)).map_err(Failure::Usage)? {
        Action::Run(options) => options,
        Action::Help => {
            say(options::USAGE);
            return Ok(());
        }
    };
    let table = load_table(&options.peers_path)?;
    let names: Vec<String> = table.ids().map(|id| table.get(id).name.clone()).collect();
    let chat_bin = chat_bin(&options)?;
    // The children and tmux may run in another directory: give them an absolute path.
    let peers_path =
        std::fs::canonicalize(&options.peers_path).unwrap_or(options.peers_path.clone());
    if options.tmux {
        // tmux first: without it, or with its session already open, the ports do not matter.
        tmux::check_ready()?;
        ports::check_free(&table).map_err(Failure::Setup)?;
        return tmux::run(&tmux::Panes {
            chat_bin: &chat_bin,
            select_bin: &select_bin(&chat_bin)?,
            select_peer: SELECT_PEER,
            peers_path: &peers_path,
            idle_timeout: options.idle_timeout,
            names: &names[..5],
        });
    }
    ports::check_free(&table).map_err(Failure::Setup)?;
    play(&options, &chat_bin, &peers_path, names)
}

/// Starts everyone, plays the script, checks the transcript.
fn play(
    options: &Options,
    chat_bin: &Path,
    peers_path: &Path,
    names: Vec<String>,
) -> Result<(), Failure> {
    let started = Instant::now();
    // Ctrl-C becomes a message to the stage, which returns early; dropping the children kills
    // them. A second Ctrl-C before that quits at once.
    let (interrupt_tx, interrupt_rx) = bounded(1);
    let mut interrupted = false;
    ctrlc::set_handler(move || {
        if std::mem::replace(&mut interrupted, true) {
            std::process::exit(130);
        }
        let _ = interrupt_tx.try_send(());
    })
    .map_err(|e| Failure::Setup(format!("cannot install the Ctrl-C handler: {e}")))?;

    let mut transcript = Transcript::new(names.clone());
    transcript.say(&format!(
        "p2p-chat demo: {} peers from the table; each line shows seconds since the start, the peer, \
         and its stdin (typed by the script), stdout (messages it received) or stderr (its log)",
        names.len()
    ));
    transcript.record(Line {
        at: Instant::now(),
        peer: None,
        source: Source::Narration,
        text: format!(
            "starting {} peers, each listening on its port from the table; {} runs \
             p2p-chat-select, the same chat as one poll() loop",
            names.len(),
            names[SELECT_PEER]
        ),
    });
    let (output_tx, output_rx) = unbounded();
    let launch = Launch {
        chat_bin: chat_bin.to_path_buf(),
        select_bin: select_bin(chat_bin)?,
        select_peer: SELECT_PEER,
        peers_path: peers_path.to_path_buf(),
        idle_timeout: options.idle_timeout,
        names: names.clone(),
        output: Some(output_tx),
    };
    let children = Children::start(launch)
        .map_err(|e| Failure::Setup(format!("cannot start {}: {e}", chat_bin.display())))?;
    let mut stage = Stage::new(children, output_rx, interrupt_rx, transcript);

    let steps = script::conversation(&names);
    script::wait_until_listening(&mut stage)?;
    script::perform(&mut stage, &steps, options.pace, options.idle_timeout)?;
    stage.finish(FINISH_TIMEOUT)?;

    let mut problems = stage.problems().to_vec();
    problems.extend(checks::check(stage.lines(), &names, &steps));
    if !problems.is_empty() {
        return Err(Failure::Checks(problems));
    }
    say(&format!(
        "demo passed: all checks passed in {:.1} s (every message arrived once at the right peer, \
         the unknown name was answered, the idle connection closed and reopened, the message to \
         the friend who left was held and delivered when they came back, their p2p-chat confirmed it, \
         everyone quit cleanly)",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Prints a line on stdout. A closed stdout (`| head`) is not worth a panic.
fn say(text: &str) {
    let _ = writeln!(std::io::stdout(), "{text}");
}

/// Loads the table and checks it has enough friends for the script.
fn load_table(path: &Path) -> Result<PeerTable, Failure> {
    let table =
        PeerTable::load(&path.to_string_lossy()).map_err(|e| Failure::Table(e.to_string()))?;
    if !(5..=MOST_FRIENDS).contains(&table.len()) {
        return Err(Failure::Table(format!(
            "{}: the demo needs from 5 to {MOST_FRIENDS} friends in the table; it has {}",
            path.display(),
            table.len()
        )));
    }
    Ok(table)
}

/// p2p-chat-select, next to the p2p-chat program.
fn select_bin(chat_bin: &Path) -> Result<PathBuf, Failure> {
    let path = chat_bin.with_file_name(format!("p2p-chat-select{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        return Err(Failure::Setup(format!(
            "{} does not exist: build it with 'cargo build --release' (or 'make build')",
            path.display()
        )));
    }
    Ok(path)
}

/// The p2p-chat program: `--chat-bin`, or the one next to this program.
fn chat_bin(options: &Options) -> Result<PathBuf, Failure> {
    let path = match &options.chat_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| Failure::Setup(format!("cannot find this program's own path: {e}")))?
            .with_file_name(format!("p2p-chat{}", std::env::consts::EXE_SUFFIX)),
    };
    if !path.is_file() {
        return Err(Failure::Setup(format!(
            "{} does not exist: build it with 'cargo build --release' (or 'make build'), or \
             point --chat-bin at it",
            path.display()
        )));
    }
    // Absolute, so tmux panes find it whatever their working directory.
    Ok(std::fs::canonicalize(&path).unwrap_or(path))
}
