//! The console thread: the "stdin is readable" branch of a select() loop.
//!
//! It blocks reading stdin, so it is always ready for the next line, and hands what each read
//! returned to a [`Console`] (in `compose`, shared with p2p-chat-select), which answers mistakes
//! and turns the lines into messages for the dispatcher: whatever one read returned, in one
//! hand-off. A typed line is one read, so it goes out at once; a paste or a pipe arrives up to
//! [`READ_BYTES`] at a time, thousands of lines in one hand-off.
//!
//! End of input means `/quit`. The console ends after sending [`ConsoleEvent::Quit`]; the
//! dispatcher also treats the channel closing as quit.
//!
//! In a terminal the console reads keys, not lines: `run_terminal` feeds them to the line
//! editor ([`LineEditor`](crate::terminal::editor::LineEditor)) and hands each entered line to
//! the same code a piped line goes through. The line being typed lives on the [`Screen`], which
//! draws it below everything else.

use std::io::{self, BufReader, Read};
use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::compose::Console;
use crate::event::ConsoleEvent;
use crate::peers::{PeerId, PeerTable};
use crate::terminal::{Screen, Typing};

/// The most stdin bytes one read takes, and so the most input one hand-off carries.
pub const READ_BYTES: usize = 64 * 1024;

/// The console thread's body, reading real stdin.
pub fn run(table: Arc<PeerTable>, me: PeerId, to_dispatcher: Sender<ConsoleEvent>, screen: Screen) {
    let mut console = Console::new(table, me, to_dispatcher);
    if screen.is_terminal() {
        run_terminal(&mut console, &screen);
    } else {
        let input = BufReader::with_capacity(READ_BYTES, io::stdin());
        console.serve(input, &mut io::stderr());
    }
}

/// The console in a terminal: keys in, lines edited on the screen, entered lines handled as a
/// pipe's lines are (see [`Console::keys`]).
fn run_terminal(console: &mut Console<Sender<ConsoleEvent>>, screen: &Screen) {
    let mut typing = Typing::new(console.table(), screen);
    let mut bytes = [0u8; 4096];
    loop {
        let n = match io::stdin().read(&mut bytes) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("cannot read the terminal: {e}; quitting");
                break;
            }
        };
        if !console.keys(&bytes[..n], &mut typing, screen) {
            return;
        }
    }
    console.quit();
}
