//! The `p2p-chat` binary: parse the command line, load the table, bind, install Ctrl-C, run, and
//! turn the outcome into an exit code (0 fine, 1 runtime fault, 2 bad usage or table).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use p2p_chat::cli::{self, Action};
use p2p_chat::error::Result;
use p2p_chat::terminal::term;

fn main() -> ExitCode {
    match try_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{}", e.report("p2p-chat"));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn try_main() -> Result<ExitCode> {
    let options = match cli::parse(std::env::args_os().skip(1))? {
        Action::Run(options) => options,
        Action::Help => {
            println!("{}{}", cli::ABOUT, cli::OPTIONS);
            return Ok(ExitCode::SUCCESS);
        }
        Action::Version => {
            println!("p2p-chat {}", env!("CARGO_PKG_VERSION"));
            return Ok(ExitCode::SUCCESS);
        }
    };
    let screen = p2p_chat::screen(&options);
    p2p_chat::logging::init(&screen, options.verbose);
    // A friend's host that does not resolve now is looked up again when we write to them.
    let (table, me) = p2p_chat::load_table(&options, "will wait until it does")?;
    let listener = p2p_chat::listen(&table, me, &options)?;

    // The first Ctrl-C asks for a graceful quit; a second one quits at once: the dispatcher
    // reports what is unsettled and ends. Should it not within a second, the process ends here.
    let (interrupt_tx, interrupt_rx) = crossbeam_channel::bounded(2);
    let interrupted = AtomicBool::new(false);
    let on_exit = screen.clone();
    ctrlc::set_handler(move || {
        let _ = interrupt_tx.try_send(());
        if interrupted.swap(true, Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_secs(1));
            // The input line goes (a half-typed line is shown back, marked not sent), so the
            // shell's prompt gets a line of its own.
            on_exit.close();
            term::restore();
            std::process::exit(130);
        }
    })
    .map_err(|e| std::io::Error::other(format!("cannot install the Ctrl-C handler: {e}")))?;

    match p2p_chat::run(&options, table, me, listener, interrupt_rx, screen)? {
        true => Ok(ExitCode::from(130)), // as a shell reports a process ended by Ctrl-C
        false => Ok(ExitCode::SUCCESS),
    }
}
