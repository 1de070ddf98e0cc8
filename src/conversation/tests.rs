//! The model's unit tests: each rule with made-up instants. A friend frozen past the ack
//! timeout and the give-up is in `give_up`; random worlds are in `world`.

// A friend who stops confirming: the warning, the question to the kernel, the kept connection.
mod give_up;
// Random sequences of events against a simulated driver, network and friend.
mod world;

use super::*;
use crate::frame::batch;

const S: Duration = Duration::from_secs(1);

fn limits() -> Limits {
    Limits {
        idle: 30 * S,
        ack: 5 * S,
        give_up: 60 * S,
        connect: 5 * S,
        write: 5 * S,
    }
}

fn outputs(c: &mut Conversation) -> Vec<Output> {
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn settled(ids: Range<u64>, fate: Fate) -> Output {
    Output::Settled { ids, fate }
}

/// A conversation given one batch of `count` messages at `t0`, which has asked to connect.
fn asked_to_connect(frames: &str, count: usize, t0: Instant) -> Conversation {
    let mut c = Conversation::new(limits());
    c.send(batch(frames, count), t0);
    c.tick(t0);
    assert_eq!(outputs(&mut c), [Output::Connect]);
    c
}

/// A conversation with `n` one-line messages written on an open connection at `t0`.
fn open_with(n: usize, t0: Instant) -> Conversation {
    let mut c = Conversation::new(limits());
    for i in 0..n {
        c.send(batch(&format!("a/{i}\n"), 1), t0);
    }
    assert_eq!(c.tick(t0), None);
    assert_eq!(outputs(&mut c), [Output::Connect]);
    c.connected(t0);
    while let Some(chunk) = c.take_chunk(t0) {
        c.wrote(chunk.frames.len(), t0);
    }
    c
}

#[test]
fn a_confirmed_message_is_delivered_and_the_idle_connection_half_closes_then_closes() {
    let t0 = Instant::now();
    let mut c = open_with(1, t0);
    c.confirmations(&[ACK_SHOWN], t0);
    assert_eq!(
        outputs(&mut c),
        [
            Output::Learned(Kind::Confirms),
            settled(0..1, Fate::Delivered)
        ]
    );
    // The idle close comes exactly the idle timeout after the message was taken and written.
    assert_eq!(c.tick(t0 + S), Some(t0 + 30 * S));
    assert_eq!(c.tick(t0 + 30 * S), None);
    assert_eq!(outputs(&mut c), [Output::HalfClose { kept: false }]);
    assert_eq!(c.link_view(), LinkView::Closing);
    // Their end normally comes at once; without it we close after the ack timeout.
    assert_eq!(c.tick(t0 + 31 * S), Some(t0 + 35 * S));
    c.tick(t0 + 35 * S);
    assert_eq!(outputs(&mut c), [Output::Close { give_up: false }]);
    c.ended(0, None, t0 + 35 * S);
    assert_eq!(
        outputs(&mut c),
        [Output::Closed {
            reason: None,
            idle: true
        }]
    );
    assert!(c.is_done());
    assert_eq!(c.tally().delivered, 1);
}

#[test]
fn the_idle_close_counts_from_the_last_byte_written_not_from_when_it_was_taken() {
    let t0 = Instant::now();
    let mut c = asked_to_connect("a/12345678\n", 1, t0);
    c.connected(t0);
    let chunk = c.take_chunk(t0).unwrap();
    // A slow friend takes a byte every 4 s: the last at 44 s, past the idle timeout.
    let mut now = t0;
    for _ in 0..chunk.frames.len() {
        now += 4 * S;
        c.wrote(1, now);
        c.tick(now);
    }
    c.confirmations(&[ACK_SHOWN], now);
    assert_eq!(c.tick(now + S), Some(now + 30 * S));
    assert_eq!(c.link_view(), LinkView::Idle(now + 30 * S));
    let half_close = |o: &Output| matches!(o, Output::HalfClose { .. });
    assert!(!outputs(&mut c).iter().any(half_close));
    c.tick(now + 30 * S);
    assert_eq!(outputs(&mut c), [Output::HalfClose { kept: false }]);
}

#[test]
fn a_nak_then_a_nul_settle_one_refused_then_one_delivered() {
    let t0 = Instant::now();
    let mut c = open_with(2, t0);
    c.confirmations(&[ACK_DROPPED, ACK_SHOWN], t0);
    let all = outputs(&mut c);
    assert_eq!(
        all[1..],
        [settled(0..1, Fate::Refused), settled(1..2, Fate::Delivered)]
    );
    let t = c.tally();
    assert_eq!((t.delivered, t.failed), (1, 1));
}

#[test]
fn confirmations_for_messages_not_written_close_the_connection_and_count_nothing() {
    let t0 = Instant::now();
    let mut c = asked_to_connect("a/x\n", 1, t0);
    c.connected(t0);
    // Three NULs before anything was written: forged.
    c.confirmations(&[ACK_SHOWN; 3], t0);
    assert_eq!(outputs(&mut c), [Output::Close { give_up: true }]);
    assert_eq!(c.kind(), Kind::Unknown);
    assert!(c.take_chunk(t0).is_none(), "nothing more goes out on it");
    // The message never left: it waits and goes out on the next connection, at once.
    c.ended(0, None, t0);
    assert_eq!(c.tally(), Tally::default());
    c.tick(t0);
    let reason = Some(Reason::Protocol);
    assert_eq!(
        outputs(&mut c),
        [Output::Closed { reason, idle: true }, Output::Connect]
    );

    // One written message, two confirmations: the same.
    let mut c = open_with(1, t0);
    c.confirmations(&[ACK_SHOWN, ACK_SHOWN], t0);
    assert_eq!(outputs(&mut c), [Output::Close { give_up: true }]);
    c.ended(0, None, t0);
    let lost = settled(0..1, Fate::MaybeLost(Reason::Protocol));
    let reason = Some(Reason::Protocol);
    assert_eq!(
        outputs(&mut c),
        [
            lost,
            Output::Closed {
                reason,
                idle: false
            }
        ]
    );
}

#[test]
fn bytes_that_never_left_are_sent_again_first_and_bytes_that_left_are_reported() {
    let t0 = Instant::now();
    let mut c = open_with(3, t0);
    // Two more typed after the first three went out.
    c.send(batch("a/3\na/4\n", 2), t0);
    // The connection breaks with the last 7 bytes (all of "a/2\n" and part of "a/1\n")
    // still in our queue: a/1 may have been partly sent, so only a/2 certainly was not.
    c.ended(7, Some(Reason::Broken("reset".into())), t0 + S);
    let reason = Reason::Broken("reset".into());
    let lost = Fate::MaybeLost(reason.clone());
    let reason = Some(reason);
    assert_eq!(
        outputs(&mut c),
        [
            settled(0..2, lost),
            Output::Closed {
                reason,
                idle: false
            }
        ]
    );
    assert_eq!(c.waiting(), 3);
    // A connection that was up: tried again at once, and a/2 goes ahead of a/3 and a/4.
    c.tick(t0 + S);
    assert_eq!(outputs(&mut c), [Output::Connect]);
    c.connected(t0 + S);
    assert_eq!(c.take_chunk(t0 + S), Some(batch("a/2\na/3\na/4\n", 3)));
}

#[test]
fn a_friend_who_never_confirms_is_learned_classic_and_a_late_confirmation_upgrades() {
    let t0 = Instant::now();
    let mut c = open_with(2, t0);
    assert_eq!(c.tick(t0 + S), Some(t0 + 5 * S));
    c.tick(t0 + 5 * S);
    assert_eq!(outputs(&mut c), [Output::AskUnacked]);
    // Their kernel has not taken everything: maybe their machine is gone. Ask again later.
    c.unacked(10, false, t0 + 5 * S);
    assert_eq!(outputs(&mut c), []);
    assert_eq!(c.tick(t0 + 6 * S), Some(t0 + 10 * S));
    c.tick(t0 + 10 * S);
    assert_eq!(outputs(&mut c), [Output::AskUnacked]);
    c.unacked(0, false, t0 + 10 * S);
    assert_eq!(
        outputs(&mut c),
        [Output::Learned(Kind::Classic), settled(0..2, Fate::Sent)]
    );
    // From now on a message counts as sent as soon as it is written.
    c.send(batch("a/2\n", 1), t0);
    let chunk = c.take_chunk(t0 + 11 * S).unwrap();
    c.wrote(chunk.frames.len(), t0 + 11 * S);
    assert_eq!(outputs(&mut c), [settled(2..3, Fate::Sent)]);
    // Quitting does not wait for them: the connection half-closes at once.
    c.quit();
    c.tick(t0 + 11 * S);
    assert_eq!(outputs(&mut c), [Output::HalfClose { kept: false }]);
    // A confirmation after all moves the oldest sent message to delivered, once.
    c.confirmations(&[ACK_SHOWN], t0 + 12 * S);
    assert_eq!(
        outputs(&mut c),
        [
            Output::Learned(Kind::Confirms),
            Output::Revised {
                ids: 0..1,
                was: Fate::Sent,
                fate: Fate::Delivered
            }
        ]
    );
    let t = c.tally();
    assert_eq!((t.delivered, t.sent), (1, 2));
}

#[test]
fn an_unreachable_friend_is_retried_with_backoff_and_at_once_when_heard() {
    let t0 = Instant::now();
    let mut c = asked_to_connect("a/0\n", 1, t0);
    c.connect_failed(Reason::ClosedByFriend, t0);
    let reason = Reason::ClosedByFriend;
    let first = true;
    assert_eq!(
        outputs(&mut c),
        [Output::Waiting {
            ids: 0..1,
            reason,
            first
        }]
    );
    let mut at = t0;
    for wait in [500, 1000, 2000, 4000, 8000, 10_000, 10_000] {
        assert_eq!(c.tick(at), Some(at + Duration::from_millis(wait)));
        at += Duration::from_millis(wait);
        c.tick(at);
        assert_eq!(outputs(&mut c), [Output::Connect]);
        c.connect_failed(Reason::ClosedByFriend, at);
        outputs(&mut c);
    }
    c.heard(at);
    c.tick(at);
    assert_eq!(outputs(&mut c), [Output::Connect]);
}

#[test]
fn a_full_outbox_refuses_only_while_they_cannot_be_reached_and_reachable_ends_it() {
    let t0 = Instant::now();
    let mut c = Conversation::new(limits());
    for _ in 0..OUTBOX_MESSAGES {
        assert!(c.send(batch("a/x\n", 1), t0).is_some());
    }
    c.tick(t0);
    assert!(c.holds_up_input(), "connecting: input waits");
    c.connect_failed(Reason::ClosedByFriend, t0);
    assert!(!c.holds_up_input());
    outputs(&mut c);
    assert_eq!(c.send(batch("a/y\n", 1), t0), None);
    let (why, first) = (Rejection::OutboxFull, true);
    assert_eq!(
        outputs(&mut c),
        [Output::Rejected {
            count: 1,
            why,
            first
        }]
    );
    c.tick(t0 + S);
    c.connected(t0 + S);
    let chunk = c.take_chunk(t0 + S).unwrap();
    c.wrote(chunk.frames.len(), t0 + S);
    c.confirmations(&[ACK_SHOWN], t0 + S);
    let all = outputs(&mut c);
    assert!(all.contains(&Output::Reachable), "{all:?}");
    assert!(
        all.contains(&Output::RefusedRun {
            count: 1,
            why: Rejection::OutboxFull
        }),
        "{all:?}"
    );
    assert_eq!(c.tally().failed, 1);
}

#[test]
fn a_friend_who_takes_nothing_is_stalled_and_then_holds_up_no_input() {
    let t0 = Instant::now();
    let mut c = asked_to_connect("a/x\n", 1, t0);
    c.connected(t0);
    c.take_chunk(t0).unwrap(); // never written
    for _ in 0..OUTBOX_MESSAGES {
        c.send(batch("a/x\n", 1), t0);
    }
    assert!(c.holds_up_input());
    assert_eq!(c.tick(t0 + S), Some(t0 + 5 * S));
    c.tick(t0 + 5 * S);
    assert_eq!(outputs(&mut c), [Output::Stalled]);
    assert!(!c.holds_up_input());
    assert_eq!(c.send(batch("a/y\n", 1), t0), None);
    // Taking what was handed over does not end the stall while the outbox is full: their
    // kernel may take another buffer's worth, and input would wait and flow by turns.
    c.wrote(4, t0 + 6 * S);
    assert!(!c.holds_up_input());
    // Quitting closes a stalled connection rather than wait for it.
    c.take_chunk(t0 + 7 * S).unwrap();
    outputs(&mut c);
    c.tick(t0 + 12 * S);
    assert_eq!(outputs(&mut c), [], "one report per stall");
    c.quit();
    c.tick(t0 + 12 * S);
    let refused = Output::RefusedRun {
        count: 1,
        why: Rejection::OutboxFull,
    };
    assert_eq!(outputs(&mut c), [refused, Output::Close { give_up: false }]);
}

#[test]
fn the_count_of_messages_refused_during_a_stall_is_told_when_the_friend_has_caught_up() {
    let t0 = Instant::now();
    let mut c = asked_to_connect("a/x\n", 1, t0);
    c.connected(t0);
    c.take_chunk(t0).unwrap(); // not written yet
    for _ in 0..OUTBOX_MESSAGES {
        c.send(batch("a/x\n", 1), t0);
    }
    c.tick(t0 + 5 * S);
    assert_eq!(outputs(&mut c), [Output::Stalled]);
    assert_eq!(c.send(batch("a/y\n", 1), t0 + 5 * S), None);
    outputs(&mut c);
    // The friend takes everything, outbox and all: the stall is over, and so is the refusing.
    let mut now = t0 + 6 * S;
    c.wrote(4, now);
    while let Some(chunk) = c.take_chunk(now) {
        now += S / 10;
        c.wrote(chunk.frames.len(), now);
    }
    let refused = Output::RefusedRun {
        count: 1,
        why: Rejection::OutboxFull,
    };
    assert_eq!(outputs(&mut c), [refused]);
    assert!(c.send(batch("a/z\n", 1), now).is_some());
}

#[test]
fn a_message_the_quit_follows_at_once_is_still_delivered() {
    // The message and the quit came in one read: the driver had no turn to connect between them.
    let t0 = Instant::now();
    let mut c = Conversation::new(limits());
    c.send(batch("a/last words\n", 1), t0);
    c.quit();
    assert_eq!(outputs(&mut c), []);
    assert!(!c.is_done());
    c.tick(t0);
    assert_eq!(outputs(&mut c), [Output::Connect]);
    c.connected(t0);
    assert!(c.take_chunk(t0).is_some());
    // Should it fail, it is reported, not retried: we are quitting.
    c.ended(13, Some(Reason::ClosedByFriend), t0);
    let fate = Fate::NotDelivered(Reason::ClosedByFriend);
    assert!(outputs(&mut c).contains(&settled(0..1, fate)));
    assert!(c.is_done());
}

#[test]
fn quitting_reports_what_waits_for_an_unreachable_friend_and_refuses_new_messages() {
    let t0 = Instant::now();
    let mut c = asked_to_connect("a/0\na/1\n", 2, t0);
    c.connect_failed(Reason::ClosedByFriend, t0);
    outputs(&mut c);
    c.quit();
    let fate = Fate::NotDelivered(Reason::ClosedByFriend);
    assert_eq!(outputs(&mut c), [settled(0..2, fate)]);
    assert!(c.is_done());
    assert_eq!(c.send(batch("a/2\n", 1), t0), None);
    let (why, first) = (Rejection::Quitting, true);
    assert_eq!(
        outputs(&mut c),
        [Output::Rejected {
            count: 1,
            why,
            first
        }]
    );
    c.send(batch("a/3\n", 1), t0);
    let first = false;
    let rejected = Output::Rejected {
        count: 1,
        why,
        first,
    };
    assert_eq!(outputs(&mut c), [rejected]);
    // The count of what was refused while quitting is told once, at the end.
    c.finish();
    assert_eq!(outputs(&mut c), [Output::RefusedRun { count: 2, why }]);
    assert_eq!(c.tally().failed, 4);
}

#[test]
fn abandoning_settles_written_as_maybe_lost_and_the_rest_as_not_delivered() {
    let t0 = Instant::now();
    let mut c = open_with(1, t0);
    c.send(batch("a/1\n", 1), t0);
    c.take_chunk(t0).unwrap(); // taken, not written
    c.send(batch("a/2\n", 1), t0);
    c.abandon();
    let q = Reason::Quitting;
    assert_eq!(
        outputs(&mut c),
        [
            settled(0..1, Fate::MaybeLost(q.clone())),
            settled(1..2, Fate::NotDelivered(q.clone())),
            settled(2..3, Fate::NotDelivered(q)),
        ]
    );
    assert!(c.is_done());
}

#[test]
fn a_friend_who_closes_after_our_end_without_confirming_is_classic_and_got_everything() {
    let t0 = Instant::now();
    let mut c = open_with(2, t0);
    c.tick(t0 + 30 * S);
    assert_eq!(
        outputs(&mut c),
        [Output::AskUnacked, Output::HalfClose { kept: false }]
    );
    // They read to our end of file and closed: no confirmation ever came.
    c.ended(0, None, t0 + 30 * S);
    assert_eq!(
        outputs(&mut c),
        [
            Output::Learned(Kind::Classic),
            settled(0..2, Fate::Sent),
            Output::Closed {
                reason: None,
                idle: false
            }
        ]
    );
}

#[test]
fn quitting_waits_for_a_stalled_friend_who_is_taking_bytes_again_and_not_for_one_who_is_not() {
    let t0 = Instant::now();
    let mut c = asked_to_connect("a/x\n", 1, t0);
    c.connected(t0);
    c.take_chunk(t0).unwrap();
    for _ in 0..OUTBOX_MESSAGES {
        c.send(batch("a/x\n", 1), t0);
    }
    c.tick(t0 + 5 * S);
    outputs(&mut c);
    assert!(!c.holds_up_input(), "stalled");
    // Taking bytes again: still stalled for input (the outbox is full), but quitting waits.
    c.wrote(2, t0 + 6 * S);
    c.quit();
    assert_eq!(c.tick(t0 + 7 * S), Some(t0 + 11 * S));
    let closes = |o: &Output| matches!(o, Output::Close { .. });
    assert!(!outputs(&mut c).iter().any(closes));
    // No progress for the write timeout: quitting closes.
    c.tick(t0 + 11 * S);
    assert_eq!(outputs(&mut c), [Output::Close { give_up: false }]);
}

#[test]
fn durations_are_said_in_seconds_or_in_milliseconds_when_those_would_round_to_nothing() {
    assert_eq!(Secs(Duration::from_millis(2500)).to_string(), "2.5 s");
    assert_eq!(Secs(Duration::from_millis(100)).to_string(), "0.1 s");
    assert_eq!(Secs(Duration::from_millis(40)).to_string(), "40 ms");
    assert_eq!(Secs(Duration::from_millis(1)).to_string(), "1 ms");
}
