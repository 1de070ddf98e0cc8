//! What the kernel holds in a connection's queues, for what std cannot ask or tell: three
//! ioctls and a few socket options.
//!
//! A [`Conversation`](crate::conversation::Conversation) needs two facts only the kernel has:
//! how many written bytes the friend's kernel has not acknowledged yet (`SIOCOUTQ`: none, and a
//! friend who never confirms runs a program that does not; none at `--give-up`, and a friend
//! who stopped confirming is frozen, their machine holding all we sent), and how many have not even been
//! sent (`SIOCOUTQNSD`: when a connection breaks, those certainly did not arrive, and are sent
//! again). And a driver about to write asks how many bytes wait to be read (`FIONREAD`): any
//! confirmation that came before the write must reach the model before it, or a friend could
//! confirm messages before they were sent. And when we give up on a connection, what our kernel
//! still holds must not arrive later, after messages typed since ([`close_writing`]); while we
//! keep one, the kernel's keepalive probes tell a frozen friend from a machine that is gone
//! ([`tune`]). Both drivers call these; nothing else here touches a socket.

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

/// Shuts down our writing side: the kernel sends what it holds, then a FIN. `give_up`: we give
/// up on the connection, and on what the friend's kernel has not acknowledged. Without more, our
/// kernel would retry that for minutes and, once a network heals, deliver it after the messages
/// sent since on a newer connection; so a TCP user timeout of a second (`DROP_AFTER_MS`) makes
/// it drop the connection rather than retry bytes first sent longer ago than that (or probe a
/// closed window for longer): a drop, not a reset, so what the friend's kernel already holds is
/// still theirs to read, and the FIN keeps a second to be acknowledged on a lossy link.
pub fn close_writing(stream: &TcpStream, give_up: bool) {
    if give_up {
        set(
            stream,
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            DROP_AFTER_MS,
        );
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// See [`close_writing`].
const DROP_AFTER_MS: libc::c_int = 1000;

/// Set on every connection we open. Frames are written whole, so Nagle's algorithm would only
/// add delay. And once nothing is on its way, the kernel sends keepalive probes `answer` apart
/// (in whole seconds) after `answer` of quiet, and ends the connection when three in a row go
/// unanswered: a frozen friend's kernel answers them, a machine that is gone does not. (While
/// bytes are on their way their retransmissions do that job, and the model's deadlines too.)
pub fn tune(stream: &TcpStream, answer: Duration) {
    let _ = stream.set_nodelay(true);
    let secs = answer.as_secs_f64().ceil().max(1.0) as libc::c_int;
    set(stream, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(stream, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs);
    set(stream, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, secs);
    set(stream, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
}

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
