//! The acceptor thread: the "listening socket is readable" branch of a select() loop.
//!
//! It blocks in `accept`, registers each new connection with the
//! [`Inbound`](crate::inbound::Inbound) registry (which enforces the cap) and starts one reader
//! thread for it. It owns nothing else. To stop it, the dispatcher sets a flag and connects to the
//! listener once, which wakes the blocked `accept` (the way tiny-http stops its acceptor); see
//! [`Acceptor::stop`].

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use log::{error, info};

use super::reader::{self, ReaderContext};

/// A handle on the running acceptor thread.
pub struct Acceptor {
    stopping: Arc<AtomicBool>,
    addr: SocketAddr,
    thread: JoinHandle<()>,
}

impl Acceptor {
    /// Starts the acceptor thread on an already bound listener.
    pub fn spawn(listener: TcpListener, context: ReaderContext) -> io::Result<Acceptor> {
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let thread = thread::Builder::new()
            .name("acceptor".into())
            .spawn(move || run(listener, context, &flag))?;
        Ok(Acceptor {
            stopping,
            addr,
            thread,
        })
    }

    /// Stops accepting and waits for the thread to end.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the blocked accept(). If this connect fails the listener is already broken and the
        // thread has ended or will end on its next error.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let _ = self.thread.join();
    }
}

/// The acceptor thread's body.
fn run(listener: TcpListener, context: ReaderContext, stopping: &AtomicBool) {
    loop {
        let (stream, remote) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                // Typically EMFILE (out of file descriptors). Retrying at once would spin, so
                // pause briefly: the descriptors come back as connections close.
                error!("accept failed: {e}; retrying in 100 ms");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        admit(stream, remote, &context);
    }
}

/// Registers a new connection and starts its reader. The registry keeps the cap, and warns about
/// it; a refused connection is closed by dropping it.
fn admit(stream: TcpStream, remote: SocketAddr, context: &ReaderContext) {
    // The registry and the reader share the socket, so either can close it.
    let stream = Arc::new(stream);
    let Some(id) = context.inbound.admit(Arc::clone(&stream), remote) else {
        return;
    };
    info!("accepted connection from {remote}");
    let inbound = context.inbound.clone();
    let context = context.clone();
    let spawned = thread::Builder::new()
        .name(format!("reader:{remote}"))
        .spawn(move || reader::run(&stream, remote, id, &context));
    if let Err(e) = spawned {
        error!("closing connection from {remote}: cannot start its reader thread: {e}");
        inbound.remove(id);
    }
}
