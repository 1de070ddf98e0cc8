//! Where a friend's messages wait: the outbox (typed, not yet taken for a connection) and the
//! flight (taken for the current connection, not yet settled).

use std::collections::VecDeque;
use std::time::Instant;

use crate::frame::Batch;

/// An outbox holds at most this many messages...
pub const OUTBOX_MESSAGES: usize = 1000;
/// ...and at most this many bytes of frames.
pub const OUTBOX_BYTES: usize = 8 * 1024 * 1024;
/// The most bytes taken from the outbox at once: about one write's worth.
pub const CHUNK: usize = 64 * 1024;

/// Messages waiting for a friend, in the order they were typed.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    batches: VecDeque<Batch>,
    pub(super) messages: usize,
    pub(super) bytes: usize,
}

impl Outbox {
    pub(super) fn push_back(&mut self, batch: Batch) {
        self.messages += batch.count;
        self.bytes += batch.frames.len();
        self.batches.push_back(batch);
    }

    pub(super) fn push_front(&mut self, batch: Batch) {
        self.messages += batch.count;
        self.bytes += batch.frames.len();
        self.batches.push_front(batch);
    }

    /// Takes batches from the front, joined, up to about [`CHUNK`] bytes.
    pub(super) fn pop_chunk(&mut self) -> Option<Batch> {
        let mut chunk = self.batches.pop_front()?;
        while let Some(next) = self.batches.front() {
            if chunk.frames.len() + next.frames.len() > CHUNK {
                break;
            }
            let next = self.batches.pop_front().expect("front was just seen");
            chunk.append(next);
        }
        self.messages -= chunk.count;
        self.bytes -= chunk.frames.len();
        Some(chunk)
    }

    pub(super) fn clear(&mut self) {
        *self = Outbox::default();
    }

    pub(super) fn is_full(&self) -> bool {
        self.messages >= OUTBOX_MESSAGES || self.bytes >= OUTBOX_BYTES
    }
}

/// Messages handed to the connection, with where they end in its byte stream.
#[derive(Debug)]
pub(super) struct Flight {
    pub(super) batch: Batch,
    /// The offset in the connection's stream just past this batch.
    pub(super) end: u64,
    /// When its last byte was written, once it has been.
    pub(super) written_at: Option<Instant>,
}

impl Flight {
    pub(super) fn start(&self) -> u64 {
        self.end - self.batch.frames.len() as u64
    }
}
