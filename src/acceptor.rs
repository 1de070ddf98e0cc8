//! The acceptor thread: the "listening socket is readable" branch of a select() loop.
//!
//! It blocks in `accept`, registers each new connection with the [`Inbound`] registry (which
//! enforces the cap) and starts one reader thread for it. It owns nothing else. To stop it, the
//! dispatcher sets a flag and connects to the listener once, which wakes the blocked `accept`
//! (the way tiny-http stops its acceptor); see [`Acceptor::stop`].

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{error, info, warn};

use crate::inbound::Admission;
use crate::reader::{self, ReaderContext};

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
    let mut cap_warnings = Throttle::new(Duration::from_secs(1));
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
        admit(stream, remote, &context, &mut cap_warnings);
    }
}

/// Registers a new connection and starts its reader. Warnings about the cap go through
/// `cap_warnings`, so that a flood of connections cannot flood the log as well.
fn admit(
    stream: TcpStream,
    remote: SocketAddr,
    context: &ReaderContext,
    cap_warnings: &mut Throttle,
) {
    // The registry and the reader share the socket, so either can close it.
    let stream = Arc::new(stream);
    let id = match context.inbound.admit(Arc::clone(&stream), remote) {
        Admission::Admitted { id, evicted } => {
            if let Some(old) = evicted
                && let Some(more) = cap_warnings.allow(Instant::now())
            {
                warn!(
                    "{} inbound connections open (the --max-inbound cap): closed the oldest \
                     silent one, from {old}, to make room{}",
                    context.inbound.cap(),
                    Throttle::note(more)
                );
            }
            id
        }
        Admission::Refused => {
            if let Some(more) = cap_warnings.allow(Instant::now()) {
                warn!(
                    "refused connection from {remote}: {} friends' connections are already \
                     open (the --max-inbound cap){}",
                    context.inbound.cap(),
                    Throttle::note(more)
                );
            }
            return;
        }
    };
    info!("accepted connection from {remote}");
    let inbound = context.inbound.clone();
    let context = context.clone();
    let spawned = thread::Builder::new()
        .name(format!("reader:{remote}"))
        .spawn(move || {
            reader::run(&stream, remote, id, &context);
            context.inbound.remove(id);
        });
    if let Err(e) = spawned {
        error!("closing connection from {remote}: cannot start its reader thread: {e}");
        inbound.remove(id);
    }
}

/// Lets one kind of warning through at most once per `interval` and counts the ones held back,
/// so the next warning can say how many there were. Time is an argument, so it is unit-tested.
struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    held_back: usize,
}

impl Throttle {
    fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            last: None,
            held_back: 0,
        }
    }

    /// `Some(held back since the last one)` if a warning may be logged at `now`, else `None`.
    fn allow(&mut self, now: Instant) -> Option<usize> {
        match self.last {
            Some(last) if now < last + self.interval => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }

    /// The tail of a warning that follows `held_back` unlogged ones.
    fn note(held_back: usize) -> String {
        if held_back == 0 {
            String::new()
        } else {
            format!(" ({held_back} more like this since the last such warning)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_lets_one_warning_through_per_interval_and_counts_the_rest() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut throttle = Throttle::new(second);
        assert_eq!(throttle.allow(t0), Some(0));
        assert_eq!(throttle.allow(t0 + Duration::from_millis(1)), None);
        assert_eq!(throttle.allow(t0 + Duration::from_millis(999)), None);
        assert_eq!(throttle.allow(t0 + second), Some(2));
        assert_eq!(throttle.allow(t0 + second), None);
        assert_eq!(throttle.allow(t0 + second * 5), Some(1));
        assert_eq!(Throttle::note(0), "");
        assert_eq!(
            Throttle::note(2),
            " (2 more like this since the last such warning)"
        );
    }
}
