//! `--tmux`: no script, but a tmux session with one pane per friend, for a person to type into.
//!
//! The session (`p2p-chat-demo`) gets one tiled pane for each of the first five friends of the
//! table. Each pane prints a one-line hint, runs that friend's chat, and says when it has ended.
//! Then the demo attaches to the session (or switches to it, inside tmux); when it is not on a
//! terminal it prints how to attach instead. The session belongs to tmux, not to the demo: it
//! lives on after a detach until its panes are closed or it is killed.

use std::ffi::OsStr;
use std::io::{self, IsTerminal};
use std::process::{Command, Stdio};

use crate::{Failure, say};

pub const SESSION: &str = "p2p-chat-demo";
/// The session, and its window, as tmux targets. `=` asks for exactly this session, and the colon
/// for its window: a bare name is first looked for among the windows of the current session, and
/// tmux names a window after the program running in it, so from inside tmux the window the demo
/// was started from is called p2p-chat-demo too, and would be split instead.
const SESSION_TARGET: &str = "=p2p-chat-demo";
const WINDOW_TARGET: &str = "=p2p-chat-demo:";

/// Checks that tmux is installed and that our session is not open already.
pub fn check_ready() -> Result<(), Failure> {
    if let Err(e) = Command::new("tmux").arg("-V").output() {
        return Err(Failure::Failed(match e.kind() {
            io::ErrorKind::NotFound => "tmux is not installed: install it (sudo apt-get install \
                tmux, or brew install tmux on macOS), or run the scripted demo without --tmux"
                .to_string(),
            _ => format!("cannot run tmux: {e}"),
        }));
    }
    if tmux(["has-session", "-t", SESSION_TARGET]).is_ok() {
        return Err(Failure::Failed(format!(
            "a tmux session named {SESSION} is already running: go back to it with \
             'tmux attach -t {SESSION}', or end it with 'tmux kill-session -t {SESSION}'"
        )));
    }
    Ok(())
}

/// Opens the session, one pane for each of `names` running its command, and attaches to it.
pub fn run(names: &[String], commands: &[Command]) -> Result<(), Failure> {
    let mut first_pane = None;
    for (index, command) in commands.iter().enumerate() {
        // A detached session has no terminal to take its size from; make it roomy enough for
        // five panes. It takes the terminal's size once attached.
        let place: &[&str] = match index {
            0 => &["new-session", "-d", "-s", SESSION, "-x", "200", "-y", "50"],
            _ => &["split-window", "-t", WINDOW_TARGET],
        };
        // -P -F: print the new pane's id, to title it below. The command is given as separate
        // words, which tmux runs without a shell of its own, so `sh` is the only shell involved.
        let script = pane_script(names, index, command);
        let mut args: Vec<&OsStr> = place.iter().map(OsStr::new).collect();
        args.extend(["-P", "-F", "#{pane_id}", "sh", "-c", &script].map(OsStr::new));
        let pane = tmux(args).map_err(Failure::Failed)?.trim().to_string();
        let _ = tmux(["select-pane", "-t", &pane, "-T", &hint(names, index)]);
        first_pane.get_or_insert(pane);
        // Re-tile after each split so the next split has room.
        let _ = tmux(["select-layout", "-t", WINDOW_TARGET, "tiled"]);
    }
    let _ = tmux([
        "set-option",
        "-t",
        SESSION_TARGET,
        "pane-border-status",
        "top",
    ]);
    if let Some(first) = first_pane {
        let _ = tmux(["select-pane", "-t", &first]);
    }

    if !(io::stdin().is_terminal() && io::stdout().is_terminal()) {
        say(&format!(
            "tmux session {SESSION} is running with {} peers. Attach with: tmux attach -t \
             {SESSION}\nEnd it with: tmux kill-session -t {SESSION}",
            names.len()
        ));
        return Ok(());
    }
    // Inside tmux, attaching would nest sessions; switch this client to the new one instead.
    let verb = match std::env::var_os("TMUX") {
        Some(_) => "switch-client",
        None => "attach-session",
    };
    let attached = Command::new("tmux")
        .args([verb, "-t", SESSION_TARGET])
        .stderr(Stdio::null())
        .status();
    if !attached.is_ok_and(|status| status.success()) {
        // Inside a tmux session no one is attached to, there is no client to switch: the
        // session is ready all the same.
        say(&format!(
            "tmux session {SESSION} is running with {} peers. Attach with: tmux attach -t \
             {SESSION} (from inside tmux: tmux switch-client -t {SESSION})\nEnd it with: tmux \
             kill-session -t {SESSION}",
            names.len()
        ));
        return Ok(());
    }
    if tmux(["has-session", "-t", SESSION_TARGET]).is_ok() {
        say(&format!(
            "The session {SESSION} is still running. Back to it: tmux attach -t {SESSION}\n\
             End it: tmux kill-session -t {SESSION}"
        ));
    }
    Ok(())
}

/// A pane's title, the start-up hint that stays visible above it: who it is and what to type.
fn hint(names: &[String], index: usize) -> String {
    let (name, friend) = (&names[index], &names[(index + 1) % names.len()]);
    format!("{name}: type {friend}/hello to send, /help for commands, Ctrl-D or /quit to leave")
}

/// The `sh` script a pane runs for the friend at `index`: the hint, the chat, then a note that it
/// has ended, so the pane does not vanish before it can be read. The shell traps Ctrl-C instead
/// of dying of it, so Ctrl-C quits the chat gracefully and the pane stays with its note.
fn pane_script(names: &[String], index: usize, command: &Command) -> String {
    let words: Vec<String> = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|word| quote(&word.to_string_lossy()))
        .collect();
    let left = format!(
        "{} has left the chat. Press Enter to close this pane.",
        names[index]
    );
    format!(
        "trap : INT; printf '%s\\n' {}; {}; printf '\\n%s\\n' {}; read line",
        quote(&hint(names, index)),
        words.join(" "),
        quote(&left)
    )
}

/// `text` as one `sh` word: in single quotes, each `'` written as `'\''`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Runs one tmux command and returns its output, or an error saying what tmux said.
fn tmux<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Result<String, String> {
    let args: Vec<S> = args.into_iter().collect();
    let output = Command::new("tmux")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run tmux: {e}"))?;
    if !output.status.success() {
        let verb = args.first().map(|a| a.as_ref().to_string_lossy());
        let said = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "tmux {} failed: {}",
            verb.unwrap_or_default(),
            said.trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pane_quotes_its_command_traps_ctrl_c_and_hints_at_the_next_friend() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote("it's a b"), r"'it'\''s a b'");
        let names = ["ann", "ben", "cat"].map(String::from);
        let mut command = Command::new("/opt/it's/p2p-chat");
        command.args(["-v", "--peers", "/tmp/peers.txt", "cat"]);
        let script = pane_script(&names, 2, &command);
        assert!(script.starts_with("trap : INT;"), "{script}");
        assert!(script.contains("cat: type ann/hello to send"), "{script}");
        assert!(script.contains("Ctrl-D or /quit to leave"), "{script}");
        let run = r"'/opt/it'\''s/p2p-chat' '-v' '--peers' '/tmp/peers.txt' 'cat';";
        assert!(script.contains(run), "{script}");
    }
}
