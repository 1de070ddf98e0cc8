//! A friend who stops confirming: a warning at the ack timeout, then at the give-up a question to
//! the kernel, whose answer closes the connection or keeps it for the friend to read.

use super::*;

#[test]
fn a_frozen_friend_who_confirms_gets_a_warning_then_everything_once_on_resuming() {
    let t0 = Instant::now();
    let mut c = open_with(1, t0);
    c.confirmations(&[ACK_SHOWN], t0);
    outputs(&mut c);
    // Frozen: three more are written and nothing comes back.
    for i in 0..3 {
        c.send(batch(&format!("a/{i}\n"), 1), t0);
    }
    let t1 = t0 + S;
    let chunk = c.take_chunk(t1).unwrap();
    c.wrote(chunk.frames.len(), t1);
    assert_eq!(c.tick(t1 + S), Some(t1 + 5 * S));
    c.tick(t1 + 5 * S);
    let silent = 5 * S;
    assert_eq!(outputs(&mut c), [Output::Unconfirmed { count: 3, silent }]);
    // One warning per silence; no second connection, no close before the give-up time
    // (the idle half-close at 30 s leaves the reading side open for their confirmations).
    assert_eq!(c.tick(t1 + 20 * S), Some(t1 + 30 * S));
    assert_eq!(outputs(&mut c), []);
    // Resumed after 20 s: all three delivered, nothing reported lost.
    c.confirmations(&[ACK_SHOWN; 3], t1 + 20 * S);
    assert_eq!(outputs(&mut c), [settled(1..4, Fate::Delivered)]);
    assert_eq!(c.tally().delivered, 4);
}

/// A conversation with two messages written at `t0`, the first confirmed, the second not
/// until the give-up time, when the model asks the kernel about it.
fn silent_until_the_give_up(t0: Instant) -> Conversation {
    let mut c = open_with(2, t0);
    c.confirmations(&[ACK_SHOWN], t0);
    outputs(&mut c);
    assert_eq!(c.tick(t0 + 59 * S), Some(t0 + 60 * S));
    outputs(&mut c);
    c.tick(t0 + 60 * S);
    assert_eq!(outputs(&mut c), [Output::AskUnacked]);
    c
}

#[test]
fn at_the_give_up_time_with_bytes_unacknowledged_the_connection_closes_and_reports_them() {
    let t0 = Instant::now();
    let mut c = silent_until_the_give_up(t0);
    // The friend's kernel lacks some of our bytes: the network may be down.
    c.unacked(7, false, t0 + 60 * S);
    assert_eq!(outputs(&mut c), [Output::Close { give_up: true }]);
    c.ended(0, None, t0 + 60 * S);
    let lost = Fate::MaybeLost(Reason::GaveUp(60 * S));
    let reason = Some(Reason::GaveUp(60 * S));
    assert_eq!(
        outputs(&mut c),
        [
            settled(1..2, lost),
            Output::Closed {
                reason,
                idle: false
            }
        ]
    );
    assert!(c.is_done());

    // With no answer from the kernel, it closes an ack timeout later all the same.
    let mut c = silent_until_the_give_up(t0);
    assert_eq!(c.tick(t0 + 61 * S), Some(t0 + 65 * S));
    c.tick(t0 + 65 * S);
    assert_eq!(outputs(&mut c), [Output::Close { give_up: true }]);
}

#[test]
fn a_frozen_friend_given_up_on_keeps_the_connection_and_revises_the_report_on_reading() {
    let t0 = Instant::now();
    let t1 = t0 + 60 * S;
    let mut c = silent_until_the_give_up(t0);
    // Their kernel has every byte: they are frozen, and may yet read it.
    c.unacked(0, false, t1);
    let lost = Fate::MaybeLost(Reason::GaveUp(60 * S));
    assert_eq!(
        outputs(&mut c),
        [
            settled(1..2, lost.clone()),
            Output::HalfClose { kept: true }
        ]
    );
    assert!(c.gave_up());
    assert_eq!(c.link_view(), LinkView::Kept);
    assert_eq!(c.tally().failed, 1);
    // What is typed now waits behind the connection, says so, and is not held against input.
    assert_eq!(c.send(batch("a/later\n", 1), t1), Some(2..3));
    let waiting = Output::Waiting {
        ids: 2..3,
        reason: Reason::GaveUp(60 * S),
        first: false,
    };
    assert_eq!(outputs(&mut c), [waiting]);
    assert!(c.take_chunk(t1).is_none());
    assert!(!c.holds_up_input());
    // They resume: their confirmation revises the report, and their end lets the rest go, on
    // a new connection, in order.
    c.confirmations(&[ACK_SHOWN], t1 + 5 * S);
    let revised = Output::Revised {
        ids: 1..2,
        was: lost,
        fate: Fate::Delivered,
    };
    assert_eq!(outputs(&mut c), [revised]);
    assert_eq!((c.tally().delivered, c.tally().failed), (2, 0));
    c.ended(0, None, t1 + 5 * S);
    let closed = Output::Closed {
        reason: None,
        idle: true,
    };
    assert_eq!(outputs(&mut c), [closed]);
    c.tick(t1 + 5 * S);
    assert_eq!(outputs(&mut c), [Output::Connect]);

    // Frozen for an hour: still kept (the kernel ends it if their machine is gone).
    let mut c = silent_until_the_give_up(t0);
    c.unacked(0, false, t1);
    outputs(&mut c);
    assert_eq!(c.tick(t1 + 3600 * S), None);
    assert_eq!(outputs(&mut c), []);
    assert!(c.gave_up());

    // A quit does not wait for them.
    let mut c = silent_until_the_give_up(t0);
    c.unacked(0, false, t1);
    outputs(&mut c);
    c.quit();
    c.tick(t1 + S);
    assert_eq!(outputs(&mut c), [Output::Close { give_up: true }]);
}

#[test]
fn a_frozen_friend_whose_window_is_closed_is_kept_too_and_what_never_left_stays_reported() {
    let t0 = Instant::now();
    let t1 = t0 + 60 * S;
    let lost = Fate::MaybeLost(Reason::GaveUp(60 * S));
    // Their kernel lacks bytes of ours, but answers with its window closed: frozen, not gone.
    let mut c = silent_until_the_give_up(t0);
    c.unacked(4, true, t1);
    let kept = Output::HalfClose { kept: true };
    assert_eq!(outputs(&mut c), [settled(1..2, lost.clone()), kept]);
    assert!(c.gave_up());
    // They resume and read it all: the report is revised.
    c.confirmations(&[ACK_SHOWN], t1 + 5 * S);
    assert_eq!((c.tally().delivered, c.tally().failed), (2, 0));

    // Their machine is gone instead, with our last bytes never sent: they stay reported (not
    // sent again, and not reported twice), and what was typed since goes on a new connection.
    let mut c = silent_until_the_give_up(t0);
    c.unacked(4, true, t1);
    outputs(&mut c);
    c.send(batch("a/later\n", 1), t1);
    outputs(&mut c);
    c.ended(4, Some(Reason::ClosedByFriend), t1 + 600 * S);
    let outs = outputs(&mut c);
    assert!(
        !outs.iter().any(|o| matches!(o, Output::Settled { .. })),
        "{outs:?}"
    );
    assert_eq!((c.tally().delivered, c.tally().failed), (1, 1));
    c.tick(t1 + 600 * S);
    assert!(outputs(&mut c).contains(&Output::Connect));
}
