//! `/peers`: every friend with what we know of them, as a table fitted to a width. Pure: each
//! program makes a [`row`] per friend from its conversation and prints what [`render`] returns.

use std::time::{Duration, Instant};

use crate::conversation::{Conversation, LinkView};
use crate::escape::columns_of;
use crate::peers::Peer;

/// The columns, in order.
pub const HEADER: [&str; 9] = [
    "friend", "address", "outbound", "wait", "deliv", "sent", "fail", "in", "heard",
];

/// The columns to drop, in this order, until the table fits: the least needed first.
const DROP_ORDER: [usize; 6] = [1, 8, 7, 5, 6, 4];

/// One friend's cells, in [`HEADER`]'s order.
pub type Row = [String; 9];

/// One friend's row: `name` as it should read, what their conversation says, how many inbound
/// connections speak for them, and when they last sent us something.
pub fn row(
    name: String,
    peer: &Peer,
    talk: &Conversation,
    inbound: usize,
    last_heard: Option<Instant>,
    now: Instant,
) -> Row {
    let t = talk.tally();
    [
        name,
        peer.address(),
        outbound(talk, now),
        talk.waiting().to_string(),
        t.delivered.to_string(),
        t.sent.to_string(),
        t.failed.to_string(),
        inbound.to_string(),
        last_heard.map_or("-".to_string(), |at| ago(now - at)),
    ]
}

/// The table, one line per friend under a header, within `width` columns where dropping
/// columns can make it fit; then a line for inbound connections not yet known, if any.
pub fn render(rows: &[Row], width: usize, unknown: usize) -> String {
    let header: Row = HEADER.map(String::from);
    let all: Vec<&Row> = std::iter::once(&header).chain(rows).collect();
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|c| all.iter().map(|row| columns_of(&row[c])).max().unwrap_or(0))
        .collect();
    let mut shown: Vec<usize> = (0..HEADER.len()).collect();
    for drop in DROP_ORDER {
        let total: usize = shown.iter().map(|&c| widths[c] + 1).sum();
        if total <= width {
            break;
        }
        shown.retain(|&c| c != drop);
    }
    let mut out = String::new();
    for row in all {
        let cells: Vec<String> = shown
            .iter()
            .map(|&c| {
                // Padded by the columns it takes: a CJK name takes two a character.
                let pad = " ".repeat(widths[c] - columns_of(&row[c]));
                // Text columns to the left, counts to the right.
                match c {
                    0..=2 => format!("{}{pad}", row[c]),
                    _ => format!("{pad}{}", row[c]),
                }
            })
            .collect();
        out.push_str(cells.join(" ").trim_end());
        out.push('\n');
    }
    if unknown > 0 {
        out.push_str(&format!(
            "{unknown} inbound connection(s) have not said who they are yet\n"
        ));
    }
    out
}

/// The outbound column of `/peers`: what our connection to a friend is doing.
fn outbound(talk: &Conversation, now: Instant) -> String {
    match talk.link_view() {
        LinkView::Connecting => "connecting".to_string(),
        LinkView::Closing => "closing".to_string(),
        LinkView::Kept => "kept (frozen?)".to_string(),
        LinkView::Busy(n) => format!("{n} unconfirmed"),
        LinkView::Idle(at) => format!("idle {}s", secs_until(at, now)),
        LinkView::None => match talk.outage() {
            Some(outage) => format!("down, retry {}s", secs_until(outage.retry_at, now)),
            None => "-".to_string(),
        },
    }
}

/// Whole seconds until `at`, rounded up, so a deadline still ahead never reads 0.
fn secs_until(at: Instant, now: Instant) -> u64 {
    at.saturating_duration_since(now).as_secs_f64().ceil() as u64
}

/// `12s`, `3m`, `2h`: how long ago, for `/peers`.
fn ago(elapsed: Duration) -> String {
    match elapsed.as_secs() {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str) -> Row {
        [name, "127.0.0.1:7002", "-", "0", "1", "0", "0", "1", "3s"].map(String::from)
    }

    #[test]
    fn the_usual_80_columns_hold_every_column() {
        use crate::conversation::{Limits, Reason};
        use crate::frame::batch;
        let second = Duration::from_secs(1);
        let limits = Limits {
            idle: 30 * second,
            ack: 5 * second,
            give_up: 60 * second,
            connect: 5 * second,
            write: 5 * second,
        };
        // A friend who cannot be reached, retried at the longest backoff: the widest state.
        let now = Instant::now();
        let mut talk = Conversation::new(limits);
        talk.send(batch("a/x\n", 1), now);
        for _ in 0..8 {
            let at = talk.tick(now + 3600 * second).unwrap_or(now);
            talk.tick(at);
            talk.connect_failed(Reason::ClosedByFriend, now);
        }
        let peer = |name: &str, host: &str| Peer {
            name: name.to_string(),
            host: host.to_string(),
            port: 7002,
        };
        let rows = [
            super::row(
                "alice (you)".into(),
                &peer("alice", "127.0.0.1"),
                &Conversation::new(limits),
                0,
                None,
                now,
            ),
            super::row(
                "christopher".into(),
                &peer("christopher", "laptop.lan"),
                &talk,
                4,
                Some(now),
                now,
            ),
        ];
        let table = render(&rows, 79, 0);
        assert!(table.lines().next().unwrap().contains("address"), "{table}");
        assert!(table.contains("down, retry 10s"), "{table}");
        assert!(table.lines().all(|l| l.chars().count() <= 79), "{table}");
    }

    #[test]
    fn wide_characters_in_a_name_are_padded_by_the_columns_they_take() {
        let table = render(&[row("李"), row("zoë"), row("bob")], usize::MAX, 0);
        let address_at: Vec<usize> = table
            .lines()
            .skip(1)
            .map(|line| {
                let name = line.split(' ').next().unwrap();
                crate::escape::columns_of(name) + line[name.len()..].find('1').unwrap()
            })
            .collect();
        assert_eq!(address_at, [7, 7, 7], "{table}");
    }

    #[test]
    fn a_wide_table_keeps_every_column_and_a_narrow_one_drops_the_least_needed_first() {
        let rows = [row("bob"), row("carol")];
        let wide = render(&rows, usize::MAX, 0);
        assert!(wide.starts_with("friend address"), "{wide}");
        assert!(wide.contains("bob    127.0.0.1:7002 -"), "{wide}");
        let narrow = render(&rows, 30, 2);
        let lines: Vec<&str> = narrow.lines().collect();
        assert_eq!(lines[0], "friend outbound wait deliv");
        assert!(
            lines.iter().take(3).all(|l| l.chars().count() <= 30),
            "{narrow}"
        );
        assert_eq!(
            lines[3],
            "2 inbound connection(s) have not said who they are yet"
        );
    }
}
