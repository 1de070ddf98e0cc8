//! What the kernel holds in a connection's queues, for what std cannot ask: three ioctls.
//!
//! A [`Conversation`](crate::conversation::Conversation) needs two facts only the kernel has:
//! how many written bytes the friend's kernel has not acknowledged yet (`SIOCOUTQ`: none, and a
//! friend who never confirms runs a program that does not), and how many have not even been
//! sent (`SIOCOUTQNSD`: when a connection breaks, those certainly did not arrive, and are sent
//! again). And a driver about to write asks how many bytes wait to be read (`FIONREAD`): any
//! confirmation that came before the write must reach the model before it, or a friend could
//! confirm messages before they were sent. Both drivers call these; nothing else here touches a
//! socket.

use std::io;
use std::os::fd::AsRawFd;

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
