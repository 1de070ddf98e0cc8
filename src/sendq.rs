//! What the kernel holds in a connection's queues, for what std cannot ask or tell: three
//! ioctls, `TCP_INFO` and a few socket options.
//!
//! A [`Conversation`](crate::conversation::Conversation) needs two facts only the kernel has:
//! how many written bytes the friend's kernel has not acknowledged yet (`SIOCOUTQ`: none, and a
//! friend who never confirms runs a program that does not; at `--give-up`, none, or some while
//! their kernel answers with its window closed (`TCP_INFO`), and a friend who stopped confirming
//! is frozen, not gone), and how many have not even been sent (`SIOCOUTQNSD`: when a connection
//! breaks, those certainly did not arrive, and are sent again). And a driver about to write asks
//! how many bytes wait to be read (`FIONREAD`): any confirmation that came before the write must
//! reach the model before it, or a friend could confirm messages before they were sent. And a
//! close says how long the kernel may try to get what it holds across ([`close_writing`]): given
//! up on, it must not arrive later, after messages typed since; kept for a frozen friend, the
//! kernel's keepalive probes ([`tune`]), and a bound as long on the FIN, tell a frozen friend from
//! a machine that is gone. Both drivers call these; nothing else here touches a socket.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::libc;

nix::ioctl_read_bad!(outq, libc::TIOCOUTQ, libc::c_int);
/// `SIOCOUTQNSD` from linux/sockios.h (not in the libc crate).
const SIOCOUTQNSD: libc::c_ulong = 0x894B;
nix::ioctl_read_bad!(outq_not_sent, SIOCOUTQNSD, libc::c_int);

nix::ioctl_read_bad!(inq, libc::FIONREAD, libc::c_int);

/// Bytes that have arrived on `socket` and wait to be read.
pub fn unread(socket: &impl AsRawFd) -> io::Result<usize> {
    ask(socket, inq)
}

/// Bytes written to `socket` that the friend's kernel has not acknowledged.
pub fn unacked(socket: &impl AsRawFd) -> io::Result<usize> {
    ask(socket, outq)
}

/// Bytes written to `socket` that have not been sent at all.
pub fn unsent(socket: &impl AsRawFd) -> io::Result<usize> {
    ask(socket, outq_not_sent)
}

/// The answer to a model's `AskUnacked`: the bytes written to `socket` that the friend's kernel
/// has not acknowledged, and whether it answers all the same, with its window closed (an error
/// there is a no).
pub fn ask_unacked(socket: &impl AsRawFd) -> io::Result<(usize, bool)> {
    let answering = answers_with_window_closed(socket).unwrap_or(false);
    Ok((unacked(socket)?, answering))
}

/// Whether the friend's kernel answers though it takes nothing more (`TCP_INFO`): its window is
/// closed, nothing of ours is being sent again, and our last probe of that window was answered.
/// So their program reads nothing (frozen, stuck) while our bytes wait in our queue: not a
/// network that is down, where probes and retransmissions go unanswered.
fn answers_with_window_closed(socket: &impl AsRawFd) -> io::Result<bool> {
    // SAFETY: `tcp_info` is plain integers, for which all zeroes is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the descriptor is open for the borrow's length; `info` and `len` are valid and
    // `len` says how much of `info` the kernel may fill.
    let done = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            &mut info as *mut libc::tcp_info as *mut libc::c_void,
            &mut len,
        )
    };
    if done != 0 {
        return Err(io::Error::last_os_error());
    }
    // An older kernel fills less, without the window: then this says no.
    let has_window = len as usize >= std::mem::size_of::<libc::tcp_info>();
    Ok(has_window && info.tcpi_snd_wnd == 0 && info.tcpi_retransmits == 0 && info.tcpi_probes == 0)
}

/// How we close our writing side, which says how long our kernel may go on trying to get what
/// it holds (the bytes it has not sent, or that the friend's kernel has not acknowledged, and
/// the FIN after them) across.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// We have nothing more to say: as long as it takes.
    Done,
    /// The connection is kept for a frozen friend whose kernel answers (`answer`:
    /// `--connect-timeout`). If it holds all we sent, as long as keepalive waits for an answer
    /// ([`tune`]): keepalive does not probe while the FIN is on its way, so without this a
    /// machine that stopped answering just then would keep the connection, and what waits behind
    /// it, for the kernel's many minutes of retries. If their window is closed, with our bytes
    /// still queued, for as long as the kernel's probes of it are answered.
    Kept { answer: Duration },
    /// We give up on the connection, and on what the friend's kernel has not acknowledged: a
    /// second. Left to retry for minutes, our kernel would deliver it once a network heals,
    /// after the messages sent since on a newer connection.
    GiveUp,
}

/// Shuts down our writing side: the kernel sends what it holds, then a FIN, for as long as
/// `closing` allows. That bound is a TCP user timeout: the kernel drops the connection rather
/// than retry bytes first sent longer ago (or probe a closed window for longer); a drop, not a
/// reset, so what the friend's kernel already holds is still theirs to read.
pub fn close_writing(stream: &TcpStream, closing: Closing) {
    let drop_after = match closing {
        Closing::Done => None,
        // With their window closed, a user timeout would end the connection while they stay
        // frozen, however well their kernel answers: the kernel's own probe limit ends it.
        Closing::Kept { .. } if !unacked(stream).is_ok_and(|n| n == 0) => None,
        Closing::Kept { answer } => Some((1 + PROBES) * keepalive_secs(answer) * 1000),
        Closing::GiveUp => Some(1000),
    };
    if let Some(ms) = drop_after {
        set(stream, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, ms);
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// Set on every connection we open. Frames are written whole, so Nagle's algorithm would only
/// add delay. And once nothing is on its way, the kernel sends keepalive probes `answer` apart
/// (in whole seconds) after `answer` of quiet, and ends the connection when [`PROBES`] in a row go
/// unanswered: a frozen friend's kernel answers them, a machine that is gone does not. (While
/// bytes are on their way their retransmissions do that job, and the model's deadlines too.)
pub fn tune(stream: &TcpStream, answer: Duration) {
    let _ = stream.set_nodelay(true);
    let secs = keepalive_secs(answer);
    set(stream, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(stream, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs);
    set(stream, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, secs);
    set(stream, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, PROBES);
}

/// The quiet before the first keepalive probe and between probes: `answer` in whole seconds.
fn keepalive_secs(answer: Duration) -> libc::c_int {
    answer.as_secs_f64().ceil().max(1.0) as libc::c_int
}

/// Unanswered keepalive probes that end a connection.
const PROBES: libc::c_int = 3;

/// One socket option with an `int` value. A failure leaves the kernel's default: none of these
/// is needed for a message to arrive.
fn set(socket: &impl AsRawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
    // SAFETY: the descriptor is open for the borrow's length; the value lives across the call.
    let _ = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            &value as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// One of the ioctls above, which each read one count into a `c_int`.
fn ask(
    socket: &impl AsRawFd,
    ioctl: unsafe fn(libc::c_int, *mut libc::c_int) -> nix::Result<libc::c_int>,
) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: the descriptor is open for the borrow's length and `n` is a valid c_int.
    unsafe { ioctl(socket.as_raw_fd(), &mut n) }?;
    Ok(n.max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    #[test]
    fn what_waits_to_be_read_and_a_queue_the_friend_has_taken_or_cannot_take() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut friend, _) = listener.accept().unwrap(); // reads nothing
        // What they write waits to be read, counted.
        assert_eq!(unread(&stream).unwrap(), 0);
        friend.write_all(b"\0\0").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while unread(&stream).unwrap() < 2 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(unread(&stream).unwrap(), 2);
        stream.write_all(b"hello\n").unwrap();
        // Loopback acknowledges at once; wait for it rather than assume it.
        let deadline = Instant::now() + Duration::from_secs(5);
        while unacked(&stream).unwrap() > 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(unacked(&stream).unwrap(), 0);
        assert_eq!(unsent(&stream).unwrap(), 0);
        // Fill their receive window: what is left over stays unsent in our queue.
        stream.set_nonblocking(true).unwrap();
        let big = vec![b'x'; 1 << 20];
        while stream.write(&big).is_ok() {}
        assert!(unacked(&stream).unwrap() > 0);
        assert!(unsent(&stream).unwrap() > 0);
    }
}
