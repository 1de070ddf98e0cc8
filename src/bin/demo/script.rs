//! The scripted conversation, as data: a list of [`Step`]s written with the first five names of
//! the table, played by [`perform`] and checked afterwards by [`crate::checks`].
//!
//! Each step acts, then waits (with a deadline) for the sign that it worked before the script
//! moves on, then pauses so a person can read along. The waits keep the script in step with the
//! peers; the pauses are only for the eye.

use std::time::Duration;

use crate::failure::Failure;
use crate::stage::Stage;
use crate::transcript::{Line, Source, find};

/// How long a message may take to show up at its friend before the demo gives up on it.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest wait between two attempts to reach a friend who was away (p2p-chat's backoff).
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

/// How often [`Step::ConfirmedDelivery`] asks `/peers` again.
const ASK_AGAIN: Duration = Duration::from_millis(200);

/// One step of the conversation. Peers are indices into the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A line of narration.
    Narrate(String),
    /// `from` types `to/text`; `to` shows `[from] text`. `from == to` is a note to self.
    Send {
        from: usize,
        to: usize,
        text: String,
    },
    /// `from` types `*/text`; every other peer shows `[from] text`. The script broadcasts only
    /// while everyone is still running.
    Broadcast { from: usize, text: String },
    /// `who` types `/peers`; the table of friends appears on its stderr.
    ListPeers { who: usize },
    /// `from` writes to `name`, who is not in the table, and is told so.
    WriteToStranger {
        from: usize,
        name: String,
        text: String,
    },
    /// `from` has sent nothing to `to` for the idle timeout, so the connection closes; then
    /// `from` writes again, over a new connection.
    SendAfterIdle {
        from: usize,
        to: usize,
        text: String,
    },
    /// `who` types `/quit` and ends.
    Quit { who: usize },
    /// `from` writes to `to`, who has quit: the message is held in `to`'s outbox until `to`
    /// comes back.
    SendToDeparted {
        from: usize,
        to: usize,
        text: String,
    },
    /// `who`, who has quit, starts again and is shown what was held for them.
    Rejoin { who: usize },
    /// `from` asks `/peers` until its row for `to` counts a message as delivered: `to`'s
    /// p2p-chat confirmed showing it.
    ConfirmedDelivery { from: usize, to: usize },
}

/// The conversation, for a table whose first five names are `names[..5]`.
pub fn conversation(names: &[String]) -> Vec<Step> {
    let [a, b, c, d, e] = [0, 1, 2, 3, 4];
    let n = |i: usize| names[i].as_str();
    let stranger = ["zed", "mallory", "nobody"]
        .into_iter()
        .find(|s| !names.iter().any(|name| name == s))
        .unwrap_or("zed-the-stranger")
        .to_string();
    let send = |from: usize, to: usize, text: String| Step::Send { from, to, text };
    let say = |text: String| Step::Narrate(text);
    vec![
        say(format!(
            "{} writes to {}: the first message opens a connection",
            n(a),
            n(b)
        )),
        send(
            a,
            b,
            format!("hi {}, are you coming to the demo tonight?", n(b)),
        ),
        send(b, a, format!("yes! {} is coming too", n(c))),
        say(format!(
            "{} and {} talk; each direction has its own connection",
            n(c),
            n(d)
        )),
        send(c, d, "did you fix the slides?".to_string()),
        send(d, c, "yes, they are on my laptop".to_string()),
        say(format!("{} leaves a note to self", n(a))),
        send(a, a, "note to self: bring snacks".to_string()),
        say(format!("{} writes to everyone with */", n(e))),
        Step::Broadcast {
            from: e,
            text: "hello everyone, see you at 8!".to_string(),
        },
        say(format!(
            "{} asks who is connected with /peers (printed on stderr)",
            n(c)
        )),
        Step::ListPeers { who: c },
        say(format!(
            "{} writes to {stranger:?}, who is not in the table",
            n(d)
        )),
        Step::WriteToStranger {
            from: d,
            name: stranger,
            text: "are you there?".to_string(),
        },
        Step::SendAfterIdle {
            from: a,
            to: b,
            text: format!("still there, {}? this one goes over a new connection", n(b)),
        },
        say(format!("{} leaves with /quit", n(e))),
        Step::Quit { who: e },
        say(format!(
            "{} writes to {}, who has left: the message waits in {}'s outbox",
            n(b),
            n(e),
            n(e)
        )),
        Step::SendToDeparted {
            from: b,
            to: e,
            text: "did you get home safely?".to_string(),
        },
        say(format!(
            "{} starts again; {}'s p2p-chat retries with backoff and delivers what it held",
            n(e),
            n(b)
        )),
        Step::Rejoin { who: e },
        say(format!(
            "{} asks /peers: {}'s p2p-chat confirmed it showed the message, so it counts as delivered",
            n(b),
            n(e)
        )),
        Step::ConfirmedDelivery { from: b, to: e },
        say("end of input for everyone: each peer delivers what it holds, then quits".to_string()),
    ]
}

/// Waits until every peer says it is listening: before that, a message to it would be refused.
/// A peer that does not start ends the demo, since the script cannot be played without it.
pub fn wait_until_listening(stage: &mut Stage) -> Result<(), Failure> {
    for peer in 0..stage.peer_count() {
        if !stage.wait_listening(peer, 0, DELIVERY_TIMEOUT)? {
            return Err(Failure::Setup(format!(
                "{} did not start listening (its stderr, if any, is above)",
                stage.name(peer)
            )));
        }
    }
    Ok(())
}

/// Plays `steps` on the stage, pausing `pace` after each action.
pub fn perform(
    stage: &mut Stage,
    steps: &[Step],
    pace: Duration,
    idle_timeout: Duration,
) -> Result<(), Failure> {
    for step in steps {
        let mark = stage.lines().len();
        match step {
            Step::Narrate(text) => {
                stage.narrate(text);
                continue;
            }
            Step::Send { from, to, text } => {
                stage.type_line(*from, &format!("{}/{text}", stage.name(*to)));
                wait_shown(stage, mark, *to, *from, text)?;
            }
            Step::Broadcast { from, text } => {
                stage.type_line(*from, &format!("*/{text}"));
                let others: Vec<usize> = (0..stage.peer_count()).filter(|p| p != from).collect();
                for to in others {
                    wait_shown(stage, mark, to, *from, text)?;
                }
            }
            Step::ListPeers { who } => {
                stage.type_line(*who, "/peers");
                let who = *who;
                stage.wait_until(
                    &format!("{}'s table of friends", stage.name(who)),
                    DELIVERY_TIMEOUT,
                    |lines| {
                        find(lines, mark, |l| {
                            l.is(who, Source::Stderr) && l.text.contains("(you)")
                        })
                        .is_some()
                    },
                )?;
            }
            Step::WriteToStranger { from, name, text } => {
                stage.type_line(*from, &format!("{name}/{text}"));
                let from = *from;
                let answer = unknown_friend_answer(name);
                stage.wait_until(
                    &format!("{} to be told {name:?} is unknown", stage.name(from)),
                    DELIVERY_TIMEOUT,
                    |lines| {
                        find(lines, mark, |l| {
                            l.is(from, Source::Stderr) && l.text.contains(&answer)
                        })
                        .is_some()
                    },
                )?;
            }
            Step::SendAfterIdle { from, to, text } => {
                let (from, to) = (*from, *to);
                let closing = idle_close_log(stage.name(to));
                let since = last_typed_to(stage.lines(), from, stage.name(to));
                stage.wait_until(
                    &format!(
                        "{} to close its idle connection to {}",
                        stage.name(from),
                        stage.name(to)
                    ),
                    idle_timeout + DELIVERY_TIMEOUT,
                    |lines| {
                        find(lines, since, |l| {
                            l.is(from, Source::Stderr) && l.text.contains(&closing)
                        })
                        .is_some()
                    },
                )?;
                stage.narrate(&format!(
                    "{} has sent {} nothing for {:.1} s, so that connection is closed; writing again reconnects",
                    stage.name(from),
                    stage.name(to),
                    idle_timeout.as_secs_f64()
                ));
                stage.pause(pace)?;
                let mark = stage.lines().len();
                stage.type_line(from, &format!("{}/{text}", stage.name(to)));
                wait_shown(stage, mark, to, from, text)?;
                let connected = connected_log(stage.name(to));
                stage.wait_until(
                    &format!("{} to reconnect to {}", stage.name(from), stage.name(to)),
                    DELIVERY_TIMEOUT,
                    |lines| {
                        find(lines, mark, |l| {
                            l.is(from, Source::Stderr) && l.text.contains(&connected)
                        })
                        .is_some()
                    },
                )?;
            }
            Step::Quit { who } => {
                stage.type_line(*who, "/quit");
                stage.close_and_wait(*who, DELIVERY_TIMEOUT)?;
            }
            Step::Rejoin { who } => {
                let who = *who;
                let mark = stage.lines().len();
                stage.restart(who, DELIVERY_TIMEOUT)?;
                let held = steps.iter().filter_map(|step| match step {
                    Step::SendToDeparted { from, to, text } if *to == who => Some((*from, text)),
                    _ => None,
                });
                for (from, text) in held {
                    let line = shown_line(stage.name(from), text);
                    stage.wait_until(
                        &format!("{} to show the held {line:?}", stage.name(who)),
                        MAX_RETRY_WAIT + DELIVERY_TIMEOUT,
                        |lines| {
                            find(lines, mark, |l| l.is(who, Source::Stdout) && l.text == line)
                                .is_some()
                        },
                    )?;
                }
            }
            Step::ConfirmedDelivery { from, to } => {
                let (from, to) = (*from, *to);
                let friend = stage.name(to).to_string();
                let deadline = std::time::Instant::now() + DELIVERY_TIMEOUT;
                loop {
                    let mark = stage.lines().len();
                    stage.type_line(from, "/peers");
                    let answered = |lines: &[Line]| {
                        find(lines, mark, |l| {
                            l.is(from, Source::Stderr)
                                && delivered_in_row(&l.text, &friend).is_some()
                        })
                    };
                    stage.wait_until(
                        &format!("{}'s table of friends", stage.name(from)),
                        DELIVERY_TIMEOUT,
                        |lines| answered(lines).is_some(),
                    )?;
                    let delivered = answered(stage.lines())
                        .and_then(|i| delivered_in_row(&stage.lines()[i].text, &friend));
                    if delivered.unwrap_or(0) > 0 {
                        break;
                    }
                    if std::time::Instant::now() >= deadline {
                        stage.narrate(&format!("{friend}'s row never counted a delivery"));
                        break;
                    }
                    stage.pause(ASK_AGAIN)?;
                }
            }
            Step::SendToDeparted { from, to, text } => {
                stage.type_line(*from, &format!("{}/{text}", stage.name(*to)));
                let from = *from;
                let to_friend = undelivered_log(stage.name(*to));
                // Refused at once when nothing listens; up to the peers' connect timeout (3 s)
                // when the address does not answer at all.
                stage.wait_until(
                    &format!(
                        "{} to say the message to {} waits in their outbox",
                        stage.name(from),
                        stage.name(*to)
                    ),
                    Duration::from_secs(3) + DELIVERY_TIMEOUT,
                    |lines| {
                        find(lines, mark, |l| {
                            l.is(from, Source::Stderr) && is_held(&l.text, &to_friend)
                        })
                        .is_some()
                    },
                )?;
            }
        }
        stage.pause(pace)?;
    }
    Ok(())
}

/// Waits until `to` shows `[from] text` in a line after `mark`.
fn wait_shown(
    stage: &mut Stage,
    mark: usize,
    to: usize,
    from: usize,
    text: &str,
) -> Result<bool, Failure> {
    let line = shown_line(stage.name(from), text);
    stage.wait_until(
        &format!("{} to show {line:?}", stage.name(to)),
        DELIVERY_TIMEOUT,
        |lines| find(lines, mark, |l| l.is(to, Source::Stdout) && l.text == line).is_some(),
    )
}

/// The index just after the last line `from` typed to `to`: an idle close must come after it.
fn last_typed_to(lines: &[Line], from: usize, to: &str) -> usize {
    let prefix = format!("{to}/");
    lines
        .iter()
        .rposition(|l| l.is(from, Source::Stdin) && l.text.starts_with(&prefix))
        .map_or(0, |i| i + 1)
}

/// The log line of a peer that has started: `alice listening on 127.0.0.1:7001 (idle ...)`.
pub fn listening_log(name: &str) -> String {
    format!("{name} listening on ")
}

/// What a peer prints on stdout for a message `text` from `sender`.
pub fn shown_line(sender: &str, text: &str) -> String {
    format!("[{sender}] {text}")
}

/// The answer to a message for `name`, who is not in the table (from p2p-chat's console).
pub fn unknown_friend_answer(name: &str) -> String {
    format!("unknown friend {name:?}")
}

/// The log line of a dispatcher closing its idle connection to `friend`.
pub fn idle_close_log(friend: &str) -> String {
    format!("closing idle connection to {friend} after")
}

/// The log line of a link that has connected to `friend`: `connected to bob (127.0.0.1:7002)`.
pub fn connected_log(friend: &str) -> String {
    format!("connected to {friend} (")
}

/// The part of the error naming `friend` when messages to them were not delivered:
/// `1 message(s) to eve (127.0.0.1:7005) not delivered: cannot connect ...`.
pub fn undelivered_log(friend: &str) -> String {
    format!(" to {friend} (")
}

/// Whether a log line says messages for the friend named in `to_friend` wait in their outbox.
pub fn is_held(text: &str, to_friend: &str) -> bool {
    text.contains(to_friend) && text.contains("wait in their outbox")
}

/// In a `/peers` row for `friend`, the count of messages delivered to them: the fifth column
/// from the right (waiting, delivered, sent, failed, in, heard). `None` for any other line.
pub fn delivered_in_row(row: &str, friend: &str) -> Option<usize> {
    let mut words = row.split_whitespace();
    if words.next() != Some(friend) {
        return None;
    }
    let counts: Vec<usize> = row
        .split_whitespace()
        .rev()
        .skip(1)
        .take(5)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    (counts.len() == 5).then(|| counts[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &str) -> Vec<String> {
        list.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_script_uses_the_first_five_names_only() {
        let steps = conversation(&names("ann ben cat dan eva fay"));
        let peers = |step: &Step| -> Vec<usize> {
            match step {
                Step::Narrate(_) => vec![],
                Step::Send { from, to, .. }
                | Step::SendAfterIdle { from, to, .. }
                | Step::SendToDeparted { from, to, .. }
                | Step::ConfirmedDelivery { from, to } => vec![*from, *to],
                Step::Broadcast { from, .. } | Step::WriteToStranger { from, .. } => vec![*from],
                Step::ListPeers { who } | Step::Quit { who } | Step::Rejoin { who } => vec![*who],
            }
        };
        assert!(steps.iter().flat_map(peers).all(|p| p < 5));
        let text: String = steps.iter().map(|s| format!("{s:?}")).collect();
        assert!(text.contains("ann") && text.contains("eva") && !text.contains("fay"));
    }

    #[test]
    fn the_stranger_is_never_a_friend() {
        let steps = conversation(&names("zed mallory nobody d e"));
        let stranger = steps.iter().find_map(|s| match s {
            Step::WriteToStranger { name, .. } => Some(name.clone()),
            _ => None,
        });
        assert_eq!(stranger.as_deref(), Some("zed-the-stranger"));
    }

    #[test]
    fn the_expected_texts_match_what_p2p_chat_prints() {
        assert_eq!(shown_line("alice", "hi"), "[alice] hi");
        assert!(
            "12:00:00.000 INFO  [main] alice listening on 127.0.0.1:7001 (idle timeout 2.0 s)"
                .contains(&listening_log("alice"))
        );
        assert!(
            "error: unknown friend \"zed\": message not sent; your friends are: alice, bob"
                .contains(&unknown_friend_answer("zed"))
        );
        assert!(
            "12:00:02.000 INFO  [dispatcher] closing idle connection to bob after 2.0 s"
                .contains(&idle_close_log("bob"))
        );
        assert!(
            "12:00:00.100 INFO  [link:bob] connected to bob (127.0.0.1:7002)"
                .contains(&connected_log("bob"))
        );
        assert!(is_held(
            "12:00:00.100 WARN  [dispatcher] 1 message(s) to eve (127.0.0.1:7005) wait in their \
             outbox: cannot connect to 127.0.0.1:7005: connection refused",
            &undelivered_log("eve")
        ));
        assert!(!is_held(
            "WARN  1 message(s) to evelyn (x) wait in their outbox",
            &undelivered_log("eve")
        ));
        let row = "eve         127.0.0.1:7005 idle, close in 1.9s    0     1    0    0  0     -";
        assert_eq!(delivered_in_row(row, "eve"), Some(1));
        assert_eq!(delivered_in_row(row, "ev"), None);
        assert_eq!(
            delivered_in_row("eve         127.0.0.1:7005 connecting", "eve"),
            None
        );
    }
}
