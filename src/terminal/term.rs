//! The terminal, for what the standard library does not do: raw mode, its size, local time.
//!
//! It uses `nix` (already compiled for `ctrlc`), as `sendq` does for the socket queues: termios
//! to turn the terminal's own line editing and echo off while the console edits the line itself,
//! an ioctl for the window's width and `localtime_r` for the clock on chat lines. Its two
//! `unsafe` calls are here; the library's only other one is in `sendq`.
//!
//! Raw mode is always undone. [`RawMode`] restores the saved settings when dropped (a normal quit,
//! an error), and [`restore`] does it from anywhere else: the panic hook, the second Ctrl-C, the
//! way into Ctrl-Z. Ctrl-C keeps sending SIGINT (the graceful quit works even while the console is
//! busy); Ctrl-Z and Ctrl-\ arrive as keys, so the console can restore the terminal before it
//! stops and set it up again after `fg`.

use std::io;
use std::os::fd::AsFd;

use nix::sys::signal::{SigSet, Signal, raise};
use nix::sys::termios::{
    self, InputFlags, LocalFlags, SetArg, SpecialCharacterIndices as Special, Termios,
};
use parking_lot::Mutex;

/// The settings the terminal had before raw mode, to put back.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

/// Raw mode while it lives.
pub struct RawMode(());

impl RawMode {
    /// Saves the terminal's settings and switches stdin to raw mode.
    pub fn enter() -> io::Result<RawMode> {
        let saved = termios::tcgetattr(io::stdin().as_fd())?;
        *SAVED.lock() = Some(saved.clone());
        set_raw(saved)?;
        std::panic::set_hook({
            let default = std::panic::take_hook();
            Box::new(move |info| {
                restore();
                default(info);
            })
        });
        Ok(RawMode(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

fn set_raw(mut raw: Termios) -> io::Result<()> {
    // Keys come one at a time and are not echoed; the console draws the line itself.
    raw.local_flags
        .remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::IEXTEN);
    // Enter arrives as \r, Ctrl-S and Ctrl-Q are keys, not flow control.
    raw.input_flags.remove(InputFlags::ICRNL | InputFlags::IXON);
    // Ctrl-C still raises SIGINT; Ctrl-Z and Ctrl-\ become plain keys.
    raw.control_chars[Special::VSUSP as usize] = 0;
    raw.control_chars[Special::VQUIT as usize] = 0;
    raw.control_chars[Special::VMIN as usize] = 1;
    raw.control_chars[Special::VTIME as usize] = 0;
    termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSADRAIN, &raw)?;
    Ok(())
}

/// Puts the terminal back as it was before raw mode; does nothing if raw mode was never entered.
pub fn restore() {
    if let Some(saved) = SAVED.lock().as_ref() {
        let _ = termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSADRAIN, saved);
    }
}

/// Ctrl-Z: restores the terminal, stops the process as the shell expects, and after `fg` sets
/// raw mode again.
pub fn suspend() {
    restore();
    let _ = raise(Signal::SIGTSTP);
    // Here again after SIGCONT.
    let saved = SAVED.lock().clone();
    if let Some(saved) = saved {
        let _ = set_raw(saved);
    }
}

nix::ioctl_read_bad!(window_size, nix::libc::TIOCGWINSZ, nix::libc::winsize);

/// The terminal's width in columns, read afresh each time so a resize is followed; 80 if unknown.
pub fn width() -> usize {
    let mut size = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the pointer, which points to one.
    let asked = unsafe { window_size(nix::libc::STDOUT_FILENO, &mut size) };
    match asked {
        Ok(_) if size.ws_col > 0 => usize::from(size.ws_col),
        _ => 80,
    }
}

/// The local time of day, `HH:MM`, for chat lines.
pub fn local_hh_mm() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as nix::libc::time_t;
    // SAFETY: `tm` is plain data that `localtime_r` fills in; both pointers are to locals.
    let tm = unsafe {
        let mut tm: nix::libc::tm = std::mem::zeroed();
        nix::libc::localtime_r(&now, &mut tm);
        tm
    };
    format!("{:02}:{:02}", tm.tm_hour, tm.tm_min)
}

/// Blocks SIGWINCH in this thread (and the threads it starts later), so that only a thread that
/// asks for it takes it.
pub fn block_resizes() {
    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    let _ = winch.thread_block();
}

/// Waits for each SIGWINCH and calls `resized`, for ever: the body of a thread of its own.
pub fn resizes(resized: impl Fn()) {
    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    while winch.wait().is_ok() {
        resized();
    }
}
