//! The wire format, with no I/O.
//!
//! A frame is `sender/message` followed by a terminator, in UTF-8. We always end frames with `\n`;
//! on reading we also accept `\r\n` and a NUL byte, because the classic C version of this exercise
//! writes `name/message\n\0` and netcat or telnet send plain lines. Empty frames (such as the gap
//! between that `\n` and `\0`) are skipped.
//!
//! A receiver that is a p2p-chat confirms each frame with one byte ([`ACK_SHOWN`] or
//! [`ACK_DROPPED`]) written back on the same connection; see `reader` for when it does.
//!
//! TCP is a byte stream: one `read` may return half a frame or several frames at once. The
//! [`FrameDecoder`] keeps the bytes of an unfinished frame until its terminator arrives, so every
//! frame comes out whole and separate however the bytes were split. It never holds more than
//! [`MAX_FRAME`] bytes of one frame: a longer frame is skipped to its end and reported, so a client
//! that never sends a terminator cannot make us buffer without limit.

/// The longest frame we accept, in bytes, not counting its terminator.
pub const MAX_FRAME: usize = 64 * 1024;

/// Confirmations travel the other way, from receiver to sender on the sender's connection: one
/// byte per frame, in order. This one says "shown". A NUL shows nothing on a terminal, so a
/// person sending with netcat sees nothing of it.
pub const ACK_SHOWN: u8 = 0x00;
/// The confirmation for a frame that was read but dropped (its sender is not in the table).
pub const ACK_DROPPED: u8 = 0x15;

/// Appends one frame to `out`: `sender/message\n`. One buffer can hold many frames, so a writer can
/// send a whole batch with one `write`.
pub fn encode(sender: &str, message: &str, out: &mut Vec<u8>) {
    out.reserve(sender.len() + message.len() + 2);
    out.extend_from_slice(sender.as_bytes());
    out.push(b'/');
    out.extend_from_slice(message.as_bytes());
    out.push(b'\n');
}

/// The length of the frame [`encode`] would write, terminator excluded.
pub fn encoded_len(sender: &str, message: &str) -> usize {
    sender.len() + 1 + message.len()
}

/// Encoded frames for one friend, and how many messages they hold.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    pub frames: Vec<u8>,
    pub count: usize,
}

impl Batch {
    /// Appends another batch: one write for both.
    pub fn append(&mut self, other: Batch) {
        self.frames.extend_from_slice(&other.frames);
        self.count += other.count;
    }

    /// Splits off the first `n` messages, leaving the rest in `self`. Frames end with `\n`.
    pub fn split_messages(&mut self, n: usize) -> Batch {
        if n >= self.count {
            return std::mem::take(self);
        }
        if n == 0 {
            return Batch::default();
        }
        let end = self
            .frames
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'\n')
            .nth(n - 1)
            .map_or(0, |(i, _)| i + 1);
        let rest = self.frames.split_off(end);
        let first = Batch {
            frames: std::mem::replace(&mut self.frames, rest),
            count: n,
        };
        self.count -= n;
        first
    }

    /// How many frames start within the first `len` bytes: the ones a connection cut after
    /// `len` bytes has sent whole or in part.
    pub fn frames_started_in(&self, len: usize) -> usize {
        match len.min(self.frames.len()) {
            0 => 0,
            len => {
                1 + self.frames[..len - 1]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count()
            }
        }
    }
}

/// How much of a batch has been written: bytes, and frames written whole (each may now be
/// confirmed).
#[derive(Debug, Default, Clone, Copy)]
pub struct Written {
    pub bytes: usize,
    pub frames: usize,
}

impl Written {
    /// Notes that the batch's first `to` bytes are written; returns how many more frames that
    /// finishes. A batch written to its end is counted from its `count`, with no look at its
    /// bytes: only a partial write (a slow friend) is scanned, from where the last one stopped.
    pub fn advance(&mut self, batch: &Batch, to: usize) -> usize {
        let to = to.min(batch.frames.len());
        let finished = if to == batch.frames.len() {
            batch.count - self.frames
        } else {
            let new = &batch.frames[self.bytes.min(to)..to];
            new.iter().filter(|&&b| b == b'\n').count()
        };
        self.bytes = to;
        self.frames += finished;
        finished
    }
}

/// What the decoder found next in the byte stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A well-formed frame. Neither part has been checked for UTF-8 or control characters: that is
    /// the display's job.
    Frame { sender: &'a [u8], message: &'a [u8] },
    /// A complete frame with no `/`, or with nothing before it: it names no sender.
    Malformed(&'a [u8]),
    /// A frame longer than [`MAX_FRAME`]; its bytes are being dropped up to its terminator.
    Oversized,
}

/// Splits a byte stream into frames. Feed it with [`push`](Self::push), then call
/// [`next_frame`](Self::next_frame) until it returns `None` ("incomplete: wait for more bytes").
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    /// Start of the first frame not yet returned.
    start: usize,
    /// How many bytes after `start` are known to hold no terminator, not to be searched again.
    scanned: usize,
    /// True while skipping the rest of an oversized frame.
    discarding: bool,
}

fn is_terminator(byte: u8) -> bool {
    // Almost every byte is above `\n`, so one comparison rejects it.
    byte <= b'\n' && (byte == b'\n' || byte == 0)
}

impl FrameDecoder {
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// Adds bytes as they came from the socket.
    pub fn push(&mut self, mut data: &[u8]) {
        if self.discarding {
            match data.iter().position(|&b| is_terminator(b)) {
                None => return,
                Some(end) => {
                    data = &data[end + 1..];
                    self.discarding = false;
                }
            }
        }
        if self.start > 0 {
            // Everything before `start` has been handed out; reclaim the space.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Returns the next complete frame, or `None` when the rest is an unfinished frame.
    pub fn next_frame(&mut self) -> Option<Decoded<'_>> {
        // Find the bounds first, with indices only, and borrow the buffer once at the end.
        let (begin, end) = loop {
            let pending = &self.buf[self.start..];
            let Some(offset) = pending[self.scanned..]
                .iter()
                .position(|&b| is_terminator(b))
            else {
                self.scanned = pending.len();
                if pending.len() > MAX_FRAME {
                    self.buf.clear();
                    self.start = 0;
                    self.scanned = 0;
                    self.discarding = true;
                    return Some(Decoded::Oversized);
                }
                return None;
            };
            let begin = self.start;
            let mut end = begin + self.scanned + offset;
            self.start = end + 1;
            self.scanned = 0;
            if end > begin && self.buf[end - 1] == b'\r' {
                end -= 1;
            }
            if end > begin {
                break (begin, end);
            }
        };
        if end - begin > MAX_FRAME {
            return Some(Decoded::Oversized);
        }
        let frame = &self.buf[begin..end];
        Some(match frame.iter().position(|&b| b == b'/') {
            Some(slash) if slash > 0 => Decoded::Frame {
                sender: &frame[..slash],
                message: &frame[slash + 1..],
            },
            _ => Decoded::Malformed(frame),
        })
    }

    /// Bytes held for a frame that has not ended yet.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// A batch of `count` messages with these frames, for unit tests.
#[cfg(test)]
pub(crate) fn batch(frames: &str, count: usize) -> Batch {
    Batch {
        frames: frames.as_bytes().to_vec(),
        count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_messages_takes_whole_frames_from_the_front() {
        let mut b = batch("a/one\na/two\na/three\n", 3);
        assert_eq!(b.split_messages(0), Batch::default());
        assert_eq!(b.split_messages(1), batch("a/one\n", 1));
        assert_eq!(b, batch("a/two\na/three\n", 2));
        assert_eq!(b.split_messages(5), batch("a/two\na/three\n", 2));
        assert_eq!(b, Batch::default());
    }

    #[test]
    fn frames_started_in_counts_frames_sent_whole_or_in_part() {
        let b = batch("a/one\na/two\n", 2);
        assert_eq!(b.frames_started_in(0), 0);
        assert_eq!(b.frames_started_in(1), 1);
        assert_eq!(b.frames_started_in(6), 1);
        assert_eq!(b.frames_started_in(7), 2);
        assert_eq!(b.frames_started_in(99), 2);
    }

    #[test]
    fn written_counts_frames_finished_by_each_write() {
        let b = batch("a/one\na/two\na/three\n", 3);
        let mut written = Written::default();
        assert_eq!(written.advance(&b, 3), 0); // "a/o": nothing finished
        assert_eq!(written.advance(&b, 12), 2); // "ne\na/two\na/" finishes one and two
        assert_eq!(written.advance(&b, 12), 0);
        assert_eq!(written.advance(&b, 99), 1); // the rest, counted from the batch
        assert_eq!((written.bytes, written.frames), (20, 3));
        // Whole at once: the count is the batch's, whatever the bytes hold.
        assert_eq!(Written::default().advance(&batch("x", 4), 1), 4);
    }

    /// Decodes everything `chunks` holds, pushing one chunk at a time, as owned strings.
    fn decode_chunks(chunks: &[&[u8]]) -> Vec<String> {
        let mut decoder = FrameDecoder::new();
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(item) = decoder.next_frame() {
                out.push(match item {
                    Decoded::Frame { sender, message } => format!(
                        "{}|{}",
                        String::from_utf8_lossy(sender),
                        String::from_utf8_lossy(message)
                    ),
                    Decoded::Malformed(bytes) => {
                        format!("malformed:{}", String::from_utf8_lossy(bytes))
                    }
                    Decoded::Oversized => "oversized".to_string(),
                });
            }
        }
        out
    }

    #[test]
    fn encode_writes_sender_slash_message_newline() {
        let mut out = Vec::new();
        encode("alice", "hi/there", &mut out);
        encode("bob", "", &mut out);
        assert_eq!(out, b"alice/hi/there\nbob/\n");
        assert_eq!(encoded_len("alice", "hi/there"), "alice/hi/there".len());
    }

    #[test]
    fn accepts_newline_crlf_and_nul_terminators() {
        assert_eq!(
            decode_chunks(&[b"a/one\nb/two\r\nc/three\0"]),
            ["a|one", "b|two", "c|three"]
        );
    }

    #[test]
    fn classic_c_frames_with_newline_then_nul_give_one_message_each() {
        assert_eq!(
            decode_chunks(&[b"alice/hi\n\0bob/yo\n\0"]),
            ["alice|hi", "bob|yo"]
        );
    }

    #[test]
    fn skips_empty_frames() {
        assert_eq!(decode_chunks(&[b"\n\r\n\0\0a/x\n\n"]), ["a|x"]);
    }

    #[test]
    fn a_frame_split_across_reads_comes_out_whole() {
        assert_eq!(
            decode_chunks(&[b"ali", b"ce/hel", b"lo", b"\r", b"\nbo", b"b/x\n"]),
            ["alice|hello", "bob|x"]
        );
        // One byte at a time, too.
        let bytes = b"alice/one\nbob/two\0";
        let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode_chunks(&chunks), ["alice|one", "bob|two"]);
    }

    #[test]
    fn an_incomplete_frame_waits_for_more_bytes() {
        let mut decoder = FrameDecoder::new();
        decoder.push(b"alice/no end yet");
        assert_eq!(decoder.next_frame(), None);
        assert_eq!(decoder.buffered(), 16);
        decoder.push(b"\n");
        assert_eq!(
            decoder.next_frame(),
            Some(Decoded::Frame {
                sender: b"alice",
                message: b"no end yet"
            })
        );
        assert_eq!(decoder.next_frame(), None);
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn frames_without_a_sender_are_malformed() {
        assert_eq!(
            decode_chunks(&[b"no slash here\n/no name\nok/fine\n"]),
            ["malformed:no slash here", "malformed:/no name", "ok|fine"]
        );
    }

    #[test]
    fn an_oversized_frame_is_dropped_without_buffering_it_whole() {
        let mut decoder = FrameDecoder::new();
        let block = vec![b'x'; 16 * 1024];
        decoder.push(b"a/");
        let mut reports = 0;
        for _ in 0..64 {
            decoder.push(&block);
            while let Some(item) = decoder.next_frame() {
                assert_eq!(item, Decoded::Oversized);
                reports += 1;
            }
            assert!(decoder.buffered() <= MAX_FRAME + block.len());
        }
        assert_eq!(reports, 1, "one report per oversized frame");
        decoder.push(b"tail of the big one\nb/after\n");
        assert_eq!(
            decoder.next_frame(),
            Some(Decoded::Frame {
                sender: b"b",
                message: b"after"
            })
        );
    }

    #[test]
    fn a_frame_of_exactly_the_limit_is_accepted_and_one_more_byte_is_not() {
        let mut exact = b"a/".to_vec();
        exact.resize(MAX_FRAME, b'm');
        exact.push(b'\n');
        let out = decode_chunks(&[&exact]);
        assert_eq!(out.len(), 1);
        assert!(out[0].starts_with("a|mmm"));

        let mut over = b"a/".to_vec();
        over.resize(MAX_FRAME + 1, b'm');
        over.extend_from_slice(b"\nb/next\n");
        assert_eq!(decode_chunks(&[&over]), ["oversized", "b|next"]);
    }
}
