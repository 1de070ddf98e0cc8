//! The input line, edited by hand: keys in, the line and the cursor out. Pure, so every key is
//! unit-tested without a terminal.
//!
//! [`Keys`] turns the bytes a terminal sends into keys (UTF-8 characters, Enter, the arrows and
//! the editing keys, and the escape sequences they arrive as). [`LineEditor`] applies a key to the
//! line and says what the console should do. [`render`] lays the prompt and the line out in a
//! given width: a character moves the cursor once, wide ones (CJK, emoji) take two columns, and a
//! line longer than the width scrolls sideways to keep the cursor in view.

use crate::escape::{self, columns};

/// One key the user pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Backspace,
    Delete,
    Left,
    Right,
    Up,
    Down,
    Home,
    End,
    Tab,
    /// Ctrl-U: delete to the start of the line.
    KillStart,
    /// Ctrl-K: delete to the end of the line.
    KillEnd,
    /// Ctrl-W: delete the word before the cursor.
    KillWord,
    /// Ctrl-L: clear the screen.
    Clear,
    /// Ctrl-D: quit on an empty line, else delete the character under the cursor.
    EndOfInput,
    /// Ctrl-Z: stop the program until `fg`.
    Suspend,
    /// Anything else: a key with no meaning here, or an escape sequence not understood.
    Other,
}

/// Splits the bytes read from a terminal into keys; keeps an incomplete sequence for the next read.
#[derive(Debug, Default)]
pub struct Keys {
    pending: Vec<u8>,
}

impl Keys {
    /// The keys in `bytes`, after whatever the last call left incomplete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Key> {
        self.pending.extend_from_slice(bytes);
        let mut keys = Vec::new();
        let mut at = 0;
        while at < self.pending.len() {
            match decode(&self.pending[at..]) {
                Some((key, used)) => {
                    keys.push(key);
                    at += used;
                }
                None => break, // incomplete: wait for more bytes
            }
        }
        self.pending.drain(..at);
        keys
    }
}

/// The first key in `bytes` and how many bytes it took, or `None` if they end mid-key.
fn decode(bytes: &[u8]) -> Option<(Key, usize)> {
    let key = match bytes[0] {
        b'\r' | b'\n' => Key::Enter,
        0x7f | 0x08 => Key::Backspace,
        b'\t' => Key::Tab,
        0x01 => Key::Home,
        0x05 => Key::End,
        0x02 => Key::Left,
        0x06 => Key::Right,
        0x10 => Key::Up,
        0x0e => Key::Down,
        0x15 => Key::KillStart,
        0x0b => Key::KillEnd,
        0x17 => Key::KillWord,
        0x0c => Key::Clear,
        0x04 => Key::EndOfInput,
        0x1a => Key::Suspend,
        0x1b => return escape(bytes),
        byte if byte < 0x20 => Key::Other,
        byte if byte < 0x80 => Key::Char(char::from(byte)),
        _ => return utf8(bytes),
    };
    Some((key, 1))
}

/// An escape sequence: `ESC [ A`, `ESC O H`, `ESC [ 3 ~` and the like.
fn escape(bytes: &[u8]) -> Option<(Key, usize)> {
    let kind = *bytes.get(1)?;
    if kind != b'[' && kind != b'O' {
        return Some((Key::Other, 1)); // a lone Esc, then whatever came next
    }
    // Parameters (digits and `;`), then one final byte.
    let end = bytes[2..]
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b';'))?
        + 2;
    let key = match (&bytes[2..end], bytes[end]) {
        (_, b'A') => Key::Up,
        (_, b'B') => Key::Down,
        (_, b'C') => Key::Right,
        (_, b'D') => Key::Left,
        (_, b'H') => Key::Home,
        (_, b'F') => Key::End,
        (b"1" | b"7", b'~') => Key::Home,
        (b"4" | b"8", b'~') => Key::End,
        (b"3", b'~') => Key::Delete,
        _ => Key::Other,
    };
    Some((key, end + 1))
}

/// A character of two to four bytes; a byte that cannot start one is skipped.
fn utf8(bytes: &[u8]) -> Option<(Key, usize)> {
    let len = match bytes[0] {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return Some((Key::Other, 1)),
    };
    if bytes.len() < len {
        return None;
    }
    match std::str::from_utf8(&bytes[..len])
        .ok()
        .and_then(|s| s.chars().next())
    {
        Some(c) => Some((Key::Char(c), len)),
        None => Some((Key::Other, 1)),
    }
}

/// What the console should do after a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The line or the cursor may have changed: draw it.
    Draw,
    /// Enter: this line is done.
    Submit(String),
    /// Ctrl-D on an empty line.
    Quit,
    /// Ctrl-Z.
    Suspend,
    /// Ctrl-L: clear the screen, keeping the line.
    Clear,
    /// Tab found several names: they are the choices.
    Choices(Vec<String>),
}

/// The line being typed, its cursor and the session's history.
#[derive(Debug, Default)]
pub struct LineEditor {
    line: Vec<char>,
    cursor: usize,
    history: Vec<String>,
    /// While browsing history with Up and Down: the entry shown, and the line that was being
    /// typed before, to come back to.
    browsing: Option<(usize, Vec<char>)>,
}

impl LineEditor {
    pub fn line(&self) -> &[char] {
        &self.line
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Applies one key. `names` are what Tab completes before a `/`: the friends' names.
    pub fn apply(&mut self, key: Key, names: &[&str]) -> Outcome {
        match key {
            Key::Char(c) => {
                self.line.insert(self.cursor, c);
                self.cursor += 1;
            }
            Key::Enter => return Outcome::Submit(self.submit()),
            Key::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                self.line.remove(self.cursor);
            }
            Key::Delete if self.cursor < self.line.len() => {
                self.line.remove(self.cursor);
            }
            Key::EndOfInput if self.line.is_empty() => return Outcome::Quit,
            Key::EndOfInput if self.cursor < self.line.len() => {
                self.line.remove(self.cursor);
            }
            Key::Left => self.cursor = self.cursor.saturating_sub(1),
            Key::Right => self.cursor = (self.cursor + 1).min(self.line.len()),
            Key::Home => self.cursor = 0,
            Key::End => self.cursor = self.line.len(),
            Key::KillStart => {
                self.line.drain(..self.cursor);
                self.cursor = 0;
            }
            Key::KillEnd => self.line.truncate(self.cursor),
            Key::KillWord => {
                let mut start = self.cursor;
                while start > 0 && self.line[start - 1] == ' ' {
                    start -= 1;
                }
                while start > 0 && self.line[start - 1] != ' ' {
                    start -= 1;
                }
                self.line.drain(start..self.cursor);
                self.cursor = start;
            }
            Key::Up => self.browse(-1),
            Key::Down => self.browse(1),
            Key::Tab => return self.complete(names),
            Key::Suspend => return Outcome::Suspend,
            Key::Clear => return Outcome::Clear,
            Key::Backspace | Key::Delete | Key::EndOfInput | Key::Other => {}
        }
        Outcome::Draw
    }

    /// Empties the line and returns it, remembering it in the history.
    pub fn submit(&mut self) -> String {
        let text: String = self.line.drain(..).collect();
        self.cursor = 0;
        self.browsing = None;
        if !text.trim().is_empty() && self.history.last() != Some(&text) {
            self.history.push(text.clone());
        }
        text
    }

    /// Up (`step` -1) or Down (+1) through the history; Down past the newest entry returns to
    /// the line that was being typed.
    fn browse(&mut self, step: isize) {
        let (index, draft) = match self.browsing.take() {
            Some(browsing) => browsing,
            None if step < 0 => (self.history.len(), self.line.clone()),
            None => return,
        };
        let Some(next) = index.checked_add_signed(step) else {
            self.browsing = Some((index, draft)); // already at the oldest
            return;
        };
        if next >= self.history.len() {
            self.line = draft;
        } else {
            self.line = self.history[next].chars().collect();
            self.browsing = Some((next, draft));
        }
        self.cursor = self.line.len();
    }

    /// Tab: completes the friend's name before the cursor, up to the `/`.
    fn complete(&mut self, names: &[&str]) -> Outcome {
        let typed: String = self.line[..self.cursor].iter().collect();
        if typed.contains('/') || typed.contains(' ') {
            return Outcome::Draw;
        }
        let matches: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| n.starts_with(&typed))
            .collect();
        let completion = match matches.as_slice() {
            [] => return Outcome::Draw,
            [only] => format!("{only}/"),
            several => {
                let common = common_prefix(several);
                if common.len() == typed.len() {
                    return Outcome::Choices(several.iter().map(|s| s.to_string()).collect());
                }
                common
            }
        };
        let rest = self.line.split_off(self.cursor);
        self.line = completion.chars().chain(rest).collect();
        self.cursor = completion.chars().count();
        Outcome::Draw
    }
}

fn common_prefix(names: &[&str]) -> String {
    let first = names[0];
    let mut len = first.len();
    for name in &names[1..] {
        len = first
            .char_indices()
            .zip(name.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8())
            .min(len);
    }
    first[..len].to_string()
}

/// One character as it is drawn in the input line: control and invisible characters (pasted in)
/// as the same visible escapes incoming text gets, so they cannot disturb the screen.
fn drawn(c: char) -> String {
    let mut out = Vec::new();
    escape::escape_into(c.encode_utf8(&mut [0; 4]).as_bytes(), &mut out);
    String::from_utf8(out).expect("escape_into writes only valid UTF-8")
}

/// Lays out `prompt` and `line` in `width` columns: returns the text to draw on the row and the
/// column to put the cursor at. A line too long for the row scrolls so the cursor stays in view,
/// with a `<` or `>` at an edge where text is hidden.
pub fn render(prompt: &str, line: &[char], cursor: usize, width: usize) -> (String, usize) {
    let prompt_columns = escape::columns_of(prompt);
    // Leave the last column free: writing into it makes some terminals wrap.
    let room = width.saturating_sub(prompt_columns + 1).max(1);
    let cells: Vec<(String, usize)> = line
        .iter()
        .map(|&c| {
            let text = drawn(c);
            let cols = if text.chars().count() > 1 {
                text.len()
            } else {
                columns(c)
            };
            (text, cols)
        })
        .collect();
    let span = |range: std::ops::Range<usize>| cells[range].iter().map(|c| c.1).sum::<usize>();
    // Scroll: the first character shown is the earliest one that keeps the cursor on the row,
    // with room for the marks of what is hidden on either side.
    let mut start = 0;
    let (left, avail) = loop {
        let left = usize::from(start > 0);
        let right = usize::from(left + span(start..cells.len()) > room);
        let avail = room.saturating_sub(left + right).max(1);
        if start >= cursor || span(start..cursor) < avail {
            break (left, avail);
        }
        start += 1;
    };
    let mut text = prompt.to_string();
    if left == 1 {
        text.push('<');
    }
    let mut used = 0;
    let mut end = start;
    for (cell, cols) in &cells[start..] {
        if used + cols > avail {
            break;
        }
        text.push_str(cell);
        used += cols;
        end += 1;
    }
    if end < cells.len() {
        text.push('>');
    }
    (text, prompt_columns + left + span(start..cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(bytes: &[u8]) -> Vec<Key> {
        Keys::default().push(bytes)
    }

    fn typed(editor: &mut LineEditor, text: &str) {
        for c in text.chars() {
            editor.apply(Key::Char(c), &[]);
        }
    }

    fn line(editor: &LineEditor) -> String {
        editor.line().iter().collect()
    }

    #[test]
    fn bytes_become_keys_even_when_a_sequence_is_split_between_reads() {
        assert_eq!(
            keys(b"a\x1b[D\x1b[C\x1bOH\x1b[3~\x7f\r"),
            [
                Key::Char('a'),
                Key::Left,
                Key::Right,
                Key::Home,
                Key::Delete,
                Key::Backspace,
                Key::Enter
            ]
        );
        let mut split = Keys::default();
        assert_eq!(split.push(b"\x1b["), []);
        assert_eq!(split.push(b"A\xe6\x97"), [Key::Up]);
        assert_eq!(split.push(b"\xa5"), [Key::Char('日')]);
        assert_eq!(
            keys(b"\x1b[1;5C\x1bx"),
            [Key::Right, Key::Other, Key::Char('x')]
        );
        assert_eq!(
            keys(b"\x01\x05\x15\x0b\x17\x04\x1a\x0c"),
            [
                Key::Home,
                Key::End,
                Key::KillStart,
                Key::KillEnd,
                Key::KillWord,
                Key::EndOfInput,
                Key::Suspend,
                Key::Clear
            ]
        );
    }

    #[test]
    fn editing_keys_change_the_line_at_the_cursor() {
        let mut e = LineEditor::default();
        typed(&mut e, "fix the tpyo");
        for key in [Key::Left, Key::Left, Key::Backspace, Key::Right] {
            e.apply(key, &[]);
        }
        typed(&mut e, "p");
        assert_eq!(line(&e), "fix the typo");
        e.apply(Key::Home, &[]);
        e.apply(Key::Delete, &[]);
        typed(&mut e, "F");
        e.apply(Key::End, &[]);
        e.apply(Key::KillWord, &[]);
        assert_eq!(line(&e), "Fix the ");
        e.apply(Key::Left, &[]);
        e.apply(Key::KillStart, &[]);
        assert_eq!((line(&e), e.cursor()), (" ".to_string(), 0));
        e.apply(Key::KillEnd, &[]);
        assert_eq!(e.apply(Key::EndOfInput, &[]), Outcome::Quit);
    }

    #[test]
    fn multibyte_characters_move_the_cursor_once_each() {
        let mut e = LineEditor::default();
        typed(&mut e, "héllo 日本");
        e.apply(Key::Left, &[]);
        e.apply(Key::Backspace, &[]);
        assert_eq!(line(&e), "héllo 本");
        assert_eq!(
            e.apply(Key::Enter, &[]),
            Outcome::Submit("héllo 本".to_string())
        );
    }

    #[test]
    fn up_and_down_walk_the_history_and_come_back_to_the_draft() {
        let mut e = LineEditor::default();
        for text in ["bob/one", "bob/two"] {
            typed(&mut e, text);
            e.apply(Key::Enter, &[]);
        }
        typed(&mut e, "draft");
        e.apply(Key::Up, &[]);
        assert_eq!(line(&e), "bob/two");
        e.apply(Key::Up, &[]);
        e.apply(Key::Up, &[]);
        assert_eq!(line(&e), "bob/one");
        e.apply(Key::Down, &[]);
        e.apply(Key::Down, &[]);
        assert_eq!(line(&e), "draft");
        e.apply(Key::Up, &[]);
        assert_eq!(
            e.apply(Key::Enter, &[]),
            Outcome::Submit("bob/two".to_string())
        );
    }

    #[test]
    fn tab_completes_a_friends_name_up_to_the_slash() {
        let names = ["alice", "bob", "bobby"];
        let mut e = LineEditor::default();
        typed(&mut e, "a");
        e.apply(Key::Tab, &names);
        assert_eq!(line(&e), "alice/");
        let mut e = LineEditor::default();
        typed(&mut e, "b");
        e.apply(Key::Tab, &names);
        assert_eq!(line(&e), "bob");
        assert_eq!(
            e.apply(Key::Tab, &names),
            Outcome::Choices(vec!["bob".to_string(), "bobby".to_string()])
        );
        typed(&mut e, "/hi");
        e.apply(Key::Tab, &names);
        assert_eq!(line(&e), "bob/hi", "no completion after the slash");
        // On an empty line there is nothing to fill in: the first press lists every name.
        let mut e = LineEditor::default();
        let all = names.map(String::from).to_vec();
        assert_eq!(e.apply(Key::Tab, &names), Outcome::Choices(all));
    }

    #[test]
    fn render_counts_wide_characters_twice_and_scrolls_a_long_line() {
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(
            render("a> ", &chars("日本x"), 2, 80),
            ("a> 日本x".to_string(), 7)
        );
        assert_eq!(
            render("a> ", &chars("x\u{1b}y"), 3, 80),
            ("a> x\\x1by".to_string(), 9)
        );
        // 20 columns: the prompt takes 3, one is kept free, so 16 are for the line; a mark
        // takes one of them on each side where text is hidden.
        let long = chars("abcdefghijklmnopqrstuvwxyz");
        let (text, column) = render("a> ", &long, 26, 20);
        assert_eq!(text, "a> <mnopqrstuvwxyz");
        assert_eq!(column, 3 + 1 + 14);
        assert_eq!(
            render("a> ", &long, 0, 20),
            ("a> abcdefghijklmno>".to_string(), 3)
        );
        // In the middle: text hidden on both sides.
        let (text, column) = render("a> ", &long, 15, 20);
        assert_eq!(text, "a> <cdefghijklmnop>");
        assert_eq!(column, 3 + 1 + 13);
    }
}
