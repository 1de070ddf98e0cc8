//! `--tmux`: no script, but a tmux session with one pane per friend, for a person to type into.
//!
//! The session (`p2p-chat-demo`) gets one tiled pane for each of the first five friends of the
//! table. Each pane prints a one-line hint, runs that friend's p2p-chat, and says when it has
//! ended. Then the demo attaches to the session (or switches to it, inside tmux); when it is not
//! on a terminal it prints how to attach instead. The session belongs to tmux, not to the demo:
//! it lives on after a detach until its panes are closed or it is killed.

use std::ffi::OsStr;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::Failure;

pub const SESSION: &str = "p2p-chat-demo";

/// What the panes run.
pub struct Panes<'a> {
    /// The program for each friend: p2p-chat, or p2p-chat-select.
    pub programs: &'a [PathBuf],
    pub peers_path: &'a Path,
    pub idle_timeout: Duration,
    /// The friends to run, one pane each.
    pub names: &'a [String],
}

/// Checks that tmux is installed and that our session is not open already.
pub fn check_ready() -> Result<(), Failure> {
    match Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Failure::Setup(
                "tmux is not installed: install it (sudo apt-get install tmux, or brew install \
                 tmux on macOS), or run the scripted demo without --tmux"
                    .to_string(),
            ));
        }
        Err(e) => return Err(Failure::Setup(format!("cannot run tmux: {e}"))),
    }
    if tmux(["has-session", "-t", SESSION]).is_ok() {
        return Err(Failure::Setup(format!(
            "a tmux session named {SESSION} is already running: go back to it with \
             'tmux attach -t {SESSION}', or end it with 'tmux kill-session -t {SESSION}'"
        )));
    }
    Ok(())
}

/// Opens the session and attaches to it.
pub fn run(panes: &Panes) -> Result<(), Failure> {
    let mut pane_ids = Vec::new();
    for index in 0..panes.names.len() {
        let script = pane_script(panes, index);
        // A detached session has no terminal to take its size from; make it roomy enough for
        // five panes. It takes the terminal's size once attached.
        let place: &[&str] = if index == 0 {
            &["new-session", "-d", "-s", SESSION, "-x", "200", "-y", "50"]
        } else {
            &["split-window", "-t", SESSION]
        };
        let mut args: Vec<&OsStr> = place.iter().map(OsStr::new).collect();
        // -P -F: print the new pane's id, to title it below. The command is given as separate
        // words, which tmux runs without a shell of its own, so `sh` is the only shell involved.
        args.extend(["-P", "-F", "#{pane_id}", "sh", "-c"].map(OsStr::new));
        args.push(OsStr::new(&script));
        let pane = tmux(args).map_err(Failure::Setup)?;
        let _ = tmux([
            "select-pane",
            "-t",
            pane.trim(),
            "-T",
            &pane_title(panes, index),
        ]);
        // Re-tile after each split so the next split has room.
        let _ = tmux(["select-layout", "-t", SESSION, "tiled"]);
        pane_ids.push(pane.trim().to_string());
    }
    let _ = tmux(["set-option", "-t", SESSION, "pane-border-status", "top"]);
    if let Some(first) = pane_ids.first() {
        let _ = tmux(["select-pane", "-t", first]);
    }

    let on_terminal = io::stdin().is_terminal() && io::stdout().is_terminal();
    if !on_terminal {
        say(&format!(
            "tmux session {SESSION} is running with {} peers. Attach with: tmux attach -t {SESSION}\n\
             End it with: tmux kill-session -t {SESSION}",
            panes.names.len()
        ));
        return Ok(());
    }
    // Inside tmux, attaching would nest sessions; switch this client to the new one instead.
    let verb = if std::env::var_os("TMUX").is_some() {
        "switch-client"
    } else {
        "attach-session"
    };
    let status = Command::new("tmux")
        .args([verb, "-t", SESSION])
        .status()
        .map_err(|e| Failure::Setup(format!("cannot attach to tmux: {e}")))?;
    if !status.success() {
        return Err(Failure::Setup(format!(
            "tmux {verb} failed; attach yourself with: tmux attach -t {SESSION}"
        )));
    }
    if tmux(["has-session", "-t", SESSION]).is_ok() {
        say(&format!(
            "The session {SESSION} is still running. Back to it: tmux attach -t {SESSION}\n\
             End it: tmux kill-session -t {SESSION}"
        ));
    }
    Ok(())
}

/// A pane's title, the start-up hint that stays visible above it: who it is and what to type.
fn pane_title(panes: &Panes, index: usize) -> String {
    let names = panes.names;
    let name = &names[index];
    let friend = &names[(index + 1) % names.len()];
    format!("{name}: type {friend}/hello to send, /help for commands, Ctrl-D or /quit to leave")
}

/// The `sh` script a pane runs for the friend at `index`: a hint, the chat (with connection
/// events shown, so the class can watch the protocol), then a note that it has ended, so the pane
/// does not vanish before it can be read. The shell traps Ctrl-C instead of dying of it, so
/// Ctrl-C quits the chat gracefully and the pane stays with its note.
fn pane_script(panes: &Panes, index: usize) -> String {
    let name = &panes.names[index];
    let hint = pane_title(panes, index);
    let chat = &panes.programs[index];
    format!(
        "trap : INT; printf '%s\\n' {hint}; {chat} -v --peers {peers} --idle-timeout {idle} \
         {name_q}; printf '\\n%s\\n' {left}; read line",
        hint = quote(&hint),
        chat = quote(&chat.to_string_lossy()),
        peers = quote(&panes.peers_path.to_string_lossy()),
        idle = panes.idle_timeout.as_secs_f64(),
        name_q = quote(name),
        left = quote(&format!(
            "{name} has left the chat. Press Enter to close this pane."
        )),
    )
}

/// Prints a line on stdout, ignoring a closed stdout.
fn say(text: &str) {
    let _ = writeln!(io::stdout(), "{text}");
}

/// `text` as one `sh` word: in single quotes, each `'` written as `'\''`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Runs one tmux command and returns its output, or an error saying what tmux said.
fn tmux<I, S>(args: I) -> Result<String, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<S> = args.into_iter().collect();
    let output = Command::new("tmux")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run tmux: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let words: Vec<String> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        Err(format!(
            "tmux {} failed: {}",
            words.first().map(String::as_str).unwrap_or(""),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes_and_spaces() {
        assert_eq!(quote("plain"), "'plain'");
        assert_eq!(quote("it's a b"), r"'it'\''s a b'");
    }

    #[test]
    fn each_pane_quotes_its_program_traps_ctrl_c_and_hints_at_the_next_friend() {
        let names: Vec<String> = ["ann", "ben", "cat"].map(String::from).to_vec();
        let programs = [
            "/opt/my bin/p2p-chat",
            "/opt/it's/p2p-chat-select",
            "/b/p2p-chat",
        ]
        .map(PathBuf::from);
        let panes = Panes {
            programs: &programs,
            peers_path: Path::new("/tmp/peers.txt"),
            idle_timeout: Duration::from_secs(2),
            names: &names,
        };
        let script = pane_script(&panes, 2);
        assert!(script.starts_with("trap : INT;"), "{script}");
        assert!(script.contains("cat: type ann/hello to send"), "{script}");
        assert!(script.contains("Ctrl-D or /quit to leave"), "{script}");
        assert!(
            script.contains("'/b/p2p-chat' -v --peers '/tmp/peers.txt' --idle-timeout 2 'cat';"),
            "{script}"
        );
        assert!(pane_script(&panes, 1).contains(r"'/opt/it'\''s/p2p-chat-select' -v"));
    }
}
