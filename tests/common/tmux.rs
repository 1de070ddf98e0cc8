//! A tmux server of the test's own: its socket lives in the test's directory, so nothing of it
//! outlives the test, and it is killed when dropped, even when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Set to `1` to skip the tests that need tmux on a machine without it (README says so);
/// otherwise a missing tmux fails them, so a green run always means the console was tested.
pub const SKIP_TMUX: &str = "P2P_TEST_SKIP_TMUX";

pub struct TmuxServer {
    socket: PathBuf,
}

impl TmuxServer {
    /// Starts a server with one detached session: `new-session -d`, then `args` (its size, its
    /// name, the command `sh` runs in it). Without tmux, fails the test saying how to get it, or
    /// returns `None` where the user has asked to skip.
    pub fn start(dir: &Path, args: &[&str]) -> Option<TmuxServer> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let socket = dir.join(format!("tmux-{}", NEXT.fetch_add(1, Ordering::SeqCst)));
        let server = TmuxServer { socket };
        let new_session = [&["new-session", "-d"], args].concat();
        match server.run(&new_session) {
            Some(out) if out.status.success() => Some(server),
            Some(out) => panic!("tmux new-session: {}", String::from_utf8_lossy(&out.stderr)),
            None if std::env::var_os(SKIP_TMUX).is_some_and(|v| v == "1") => {
                eprintln!("skipped: tmux is not installed, and {SKIP_TMUX}=1 says to skip");
                None
            }
            None => panic!(
                "this test needs tmux, which is not installed: install it (on Debian, apt-get \
                 install tmux), or set {SKIP_TMUX}=1 to skip the tests that need it"
            ),
        }
    }

    /// Runs one tmux command on this server; `None` if tmux cannot be run.
    pub fn run(&self, args: &[&str]) -> Option<Output> {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .ok()
    }
}

impl Drop for TmuxServer {
    /// Kills what each pane runs, then the server. A killed server only hangs up on its panes,
    /// and a peer told its terminal is gone quits in its own time, holding its port meanwhile.
    fn drop(&mut self) {
        let panes = self.run(&["list-panes", "-a", "-F", "#{pane_pid}"]);
        let panes = panes.map(|out| String::from_utf8_lossy(&out.stdout).into_owned());
        for pane in panes.iter().flat_map(|text| text.split_whitespace()) {
            // Each pane runs in a session and process group of its own, led by its first process.
            if let Ok(pgid) = pane.parse() {
                super::kill_group(pgid);
            }
        }
        let _ = self.run(&["kill-server"]);
    }
}
