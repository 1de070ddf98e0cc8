//! The line being typed in a terminal: the keys decoded so far, the [`LineEditor`], and the
//! names Tab completes. The console logic (`compose::Console::keys`) feeds it what stdin brings
//! and handles each outcome, an entered line as it handles a pipe's line; this module knows
//! nothing of that logic, so dependencies point one way.

use super::Screen;
use super::editor::{Key, Keys, LineEditor, Outcome};
use crate::peers::PeerTable;

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

    /// The keys in `bytes`, after whatever the last read left incomplete.
    pub fn decode(&mut self, bytes: &[u8]) -> Vec<Key> {
        self.keys.push(bytes)
    }

    /// Applies one key to the line: what the console should do next.
    pub fn apply(&mut self, key: Key) -> Outcome {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        self.editor.apply(key, &names)
    }

    /// Draws the line as it now is.
    pub fn draw(&self, screen: &Screen) {
        screen.set_input(self.editor.line(), self.editor.cursor());
    }
}
