//! The line being typed in a terminal: keys in, the [`LineEditor`] edits the line on the
//! [`Screen`], and each entered line goes to the console logic ([`Console::entered`]) as a
//! pipe's line would. Run by p2p-chat's console thread and p2p-chat-select's loop alike.

use std::io::Write;

use super::Screen;
use super::editor::{Keys, LineEditor, Outcome};
use crate::command::{self, Command};
use crate::compose::{Console, Handover};
use crate::peers::PeerTable;

/// The keys decoded so far, the editor, and the names Tab completes.
pub struct Typing {
    keys: Keys,
    editor: LineEditor,
    names: Vec<String>,
}

impl Typing {
    /// Draws the empty input line.
    pub fn new(table: &PeerTable, screen: &Screen) -> Typing {
        screen.set_input(&[], 0);
        Typing {
            keys: Keys::default(),
            editor: LineEditor::default(),
            names: table.ids().map(|id| table.get(id).name.clone()).collect(),
        }
    }

    /// Keys typed: edited into the line on the screen, an entered line handed to `console`.
    /// Answers are printed above the input line, after the line they answer. Returns false once
    /// the console should stop (`/quit`, Ctrl-D on an empty line).
    pub fn keys<H: Handover>(
        &mut self,
        bytes: &[u8],
        console: &mut Console<H>,
        screen: &Screen,
    ) -> bool {
        let mut answers = screen.above_writer();
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        for key in self.keys.push(bytes) {
            let keep_going = match self.editor.apply(key, &names) {
                Outcome::Draw => true,
                Outcome::Submit(line) => {
                    // A message is shown with what became of it; anything else is shown as
                    // typed, above its answer.
                    if !matches!(command::parse(&line), Ok(Some(Command::Send { .. }))) {
                        let typed = format!("{}{line}", screen.prompt());
                        let _ = writeln!(answers, "{}", screen.dim(&typed));
                    }
                    console.entered(&line, &mut answers)
                }
                Outcome::Quit => false,
                Outcome::Suspend => {
                    screen.suspend();
                    true
                }
                Outcome::Clear => {
                    screen.clear();
                    true
                }
                Outcome::Choices(names) => {
                    let _ = writeln!(answers, "{}", names.join("  "));
                    true
                }
            };
            if !keep_going {
                screen.set_input(self.editor.line(), self.editor.cursor());
                console.quit();
                return false;
            }
        }
        screen.set_input(self.editor.line(), self.editor.cursor());
        console.flush()
    }
}
