//! Where a friend's messages wait: the outbox (typed, not yet taken for a connection) and the
//! flight (taken for the current connection, not yet settled).

use std::collections::VecDeque;
use std::time::Instant;

use crate::frame::{Batch, Written};

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

/// Messages handed to the connection, with where they end in its byte stream. Messages settled
/// from its front are only counted off, not cut out: a batch is copied once, not once per
/// confirmation.
#[derive(Debug)]
pub(super) struct Flight {
    pub(super) batch: Batch,
    /// Messages at the front already settled.
    settled: usize,
    /// The offset in the connection's stream just past this batch.
    pub(super) end: u64,
    /// When its last byte was written, once it has been.
    pub(super) written_at: Option<Instant>,
    /// How much of it has been written.
    written: Written,
}

impl Flight {
    pub(super) fn new(batch: Batch, end: u64) -> Flight {
        Flight {
            batch,
            settled: 0,
            end,
            written_at: None,
            written: Written::default(),
        }
    }

    /// Notes that the batch's first `len` bytes have been written; returns how many more of
    /// its frames that finishes.
    pub(super) fn written_up_to(&mut self, len: usize, now: Instant) -> usize {
        if len >= self.batch.frames.len() {
            self.written_at = Some(now);
        }
        self.written.advance(&self.batch, len)
    }

    /// Messages not yet settled.
    pub(super) fn count(&self) -> usize {
        self.batch.count - self.settled
    }

    /// Counts off the `n` oldest messages not yet settled.
    pub(super) fn settle(&mut self, n: usize) {
        self.settled += n;
    }

    /// Takes off the messages wholly at or after `cut` in the stream (a connection that ended
    /// there never sent them), and returns them; a message cut in two stays. The settled ones
    /// at the front are all before the cut: they were written, and confirmed.
    pub(super) fn split_unsent(&mut self, cut: u64) -> Batch {
        let start = self.end - self.batch.frames.len() as u64;
        let started = match cut.checked_sub(start) {
            Some(len) if len > 0 => self.batch.frames_started_in(len as usize),
            _ => 0,
        };
        let head = self.batch.split_messages(started.max(self.settled));
        std::mem::replace(&mut self.batch, head)
    }
}
