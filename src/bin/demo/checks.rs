//! The checks: does the transcript show that every step of the script did what it should?
//!
//! Pure: [`check`] reads the finished transcript and the steps and lists what is wrong, so it is
//! unit-tested with made-up transcripts. It asks for more than the waits did: every message shown
//! exactly once, at the right peer and nowhere else, things in the right order, every peer ended
//! cleanly, and no error logged but the one the script provoked.

use crate::script::{
    Step, connected_log, delivered_in_row, idle_close_log, is_held, listening_log, shown_line,
    undelivered_log, unknown_friend_answer,
};
use crate::transcript::{Line, Source, exit_text, find, without_clock};

/// Everything wrong with `lines` as a performance of `steps` by peers called `names`; empty when
/// all is well.
pub fn check(lines: &[Line], names: &[String], steps: &[Step]) -> Vec<String> {
    let mut problems = Vec::new();
    // Every line some peer must show exactly once, as (peer, line).
    let mut expected: Vec<(usize, String)> = Vec::new();
    let logged = |peer: usize, from: usize, needle: &str| {
        find(lines, from, |l| {
            l.is(peer, Source::Stderr) && l.text.contains(needle)
        })
    };
    let exited = |peer: usize| find(lines, 0, |l| l.is(peer, Source::Exit));
    for step in steps {
        match step {
            Step::Narrate(_) => {}
            Step::Send { from, to, text } => expected.push((*to, shown_line(&names[*from], text))),
            Step::Broadcast { from, text } => {
                for to in (0..names.len()).filter(|to| to != from) {
                    expected.push((to, shown_line(&names[*from], text)));
                }
            }
            Step::ListPeers { who } => {
                if logged(*who, 0, "(you)").is_none() {
                    problems.push(format!(
                        "{} typed /peers, but no table of friends appeared on its stderr",
                        names[*who]
                    ));
                }
            }
            Step::WriteToStranger { from, name, .. } => {
                if logged(*from, 0, &unknown_friend_answer(name)).is_none() {
                    problems.push(format!(
                        "{} wrote to {name:?}, who is not in the table, and was not told so",
                        names[*from]
                    ));
                }
            }
            Step::SendAfterIdle { from, to, text } => {
                let (from, to) = (*from, *to);
                expected.push((to, shown_line(&names[from], text)));
                let typed_text = format!("{}/{text}", names[to]);
                let typed = find(lines, 0, |l| {
                    l.is(from, Source::Stdin) && l.text == typed_text
                });
                let closed = logged(from, 0, &idle_close_log(&names[to]));
                match (closed, typed) {
                    (None, _) => problems.push(format!(
                        "{} never closed its idle connection to {}",
                        names[from], names[to]
                    )),
                    (Some(closed), Some(typed)) if closed > typed => problems.push(format!(
                        "{} closed its idle connection to {} only after writing again",
                        names[from], names[to]
                    )),
                    _ => {}
                }
                let reconnected =
                    typed.and_then(|typed| logged(from, typed, &connected_log(&names[to])));
                if reconnected.is_none() {
                    problems.push(format!(
                        "{} did not reconnect to {} when writing after the idle close",
                        names[from], names[to]
                    ));
                }
            }
            Step::Quit { who } => {
                if exited(*who).is_none() {
                    problems.push(format!("{} typed /quit but did not exit", names[*who]));
                }
            }
            Step::SendToDeparted { from, to, text } => {
                expected.push((*to, shown_line(&names[*from], text)));
                let to_friend = undelivered_log(&names[*to]);
                let held = find(lines, exited(*to).unwrap_or(0), |l| {
                    l.is(*from, Source::Stderr) && is_held(&l.text, &to_friend)
                });
                if held.is_none() {
                    problems.push(format!(
                        "{} wrote to {}, who had left, and was not told the message waits",
                        names[*from], names[*to]
                    ));
                }
            }
            Step::Rejoin { who } => {
                let listening = listening_log(&names[*who]);
                let again = exited(*who).and_then(|exit| logged(*who, exit, &listening));
                if again.is_none() {
                    problems.push(format!("{} never started again", names[*who]));
                }
            }
            Step::ConfirmedDelivery { from, to } => {
                let confirmed = lines.iter().any(|l| {
                    l.is(*from, Source::Stderr)
                        && delivered_in_row(&l.text, &names[*to]).is_some_and(|n| n > 0)
                });
                if !confirmed {
                    problems.push(format!(
                        "{}'s /peers never counted a message to {} as delivered",
                        names[*from], names[*to]
                    ));
                }
            }
        }
    }

    for (peer, line) in &expected {
        let count = lines
            .iter()
            .filter(|l| l.is(*peer, Source::Stdout) && &l.text == line)
            .count();
        if count != 1 {
            problems.push(format!(
                "{} showed {line:?} {count} time(s), expected once",
                names[*peer]
            ));
        }
    }
    for line in lines.iter().filter(|l| l.source == Source::Stdout) {
        let Some(peer) = line.peer else { continue };
        if !expected
            .iter()
            .any(|(p, text)| *p == peer && *text == line.text)
        {
            problems.push(format!(
                "{} showed a line no one sent it: {:?}",
                names[peer], line.text
            ));
        }
    }
    for line in lines.iter().filter(|l| l.source == Source::Stderr) {
        let Some(peer) = line.peer else { continue };
        if without_clock(&line.text).starts_with("ERROR") {
            problems.push(format!(
                "{} logged an unexpected error: {}",
                names[peer],
                without_clock(&line.text)
            ));
        }
    }
    // Every run of every peer ends cleanly: one who rejoined exits twice.
    let clean_exit = exit_text(Some(0));
    for (peer, name) in names.iter().enumerate() {
        let runs = 1 + steps
            .iter()
            .filter(|s| matches!(s, Step::Rejoin { who } if *who == peer))
            .count();
        let exits: Vec<&Line> = lines.iter().filter(|l| l.is(peer, Source::Exit)).collect();
        if exits.len() < runs {
            problems.push(format!("{name} never exited"));
        }
        for exit in exits.iter().filter(|l| l.text != clean_exit) {
            problems.push(format!("{name} {}", exit.text));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn names() -> Vec<String> {
        ["ann", "ben", "cat"]
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    fn steps() -> Vec<Step> {
        vec![
            Step::Send {
                from: 0,
                to: 1,
                text: "hi".to_string(),
            },
            Step::Broadcast {
                from: 2,
                text: "all".to_string(),
            },
            Step::ListPeers { who: 1 },
            Step::WriteToStranger {
                from: 1,
                name: "zed".to_string(),
                text: "x".to_string(),
            },
            Step::SendAfterIdle {
                from: 0,
                to: 1,
                text: "again".to_string(),
            },
            Step::Quit { who: 2 },
            Step::SendToDeparted {
                from: 1,
                to: 2,
                text: "bye".to_string(),
            },
            Step::Rejoin { who: 2 },
            Step::ConfirmedDelivery { from: 1, to: 2 },
        ]
    }

    /// A transcript of `steps` going right, as (peer, source, text).
    fn good() -> Vec<(usize, Source, &'static str)> {
        use Source::*;
        vec![
            (0, Stdin, "ben/hi"),
            (
                0,
                Stderr,
                "12:00:00.001 INFO  [link:ben] connected to ben (127.0.0.1:7002)",
            ),
            (1, Stdout, "[ann] hi"),
            (2, Stdin, "*/all"),
            (0, Stdout, "[cat] all"),
            (1, Stdout, "[cat] all"),
            (1, Stdin, "/peers"),
            (
                1,
                Stderr,
                "ben (you)         127.0.0.1:7002          -     0",
            ),
            (1, Stdin, "zed/x"),
            (
                1,
                Stderr,
                "error: unknown friend \"zed\": message not sent; your friends are: ann, ben, cat",
            ),
            (
                0,
                Stderr,
                "12:00:02.001 INFO  [dispatcher] closing idle connection to ben after 2.0 s",
            ),
            (0, Stdin, "ben/again"),
            (
                0,
                Stderr,
                "12:00:03.001 INFO  [link:ben] connected to ben (127.0.0.1:7002)",
            ),
            (1, Stdout, "[ann] again"),
            (2, Stdin, "/quit"),
            (2, Exit, "exited with status 0"),
            (1, Stdin, "cat/bye"),
            (
                1,
                Stderr,
                "12:00:04.001 WARN  [dispatcher] 1 message(s) to cat (127.0.0.1:7003) wait in \
                 their outbox: cannot connect to 127.0.0.1:7003: connection refused",
            ),
            (
                2,
                Stderr,
                "12:00:05.001 INFO  [main] cat listening on 127.0.0.1:7003 (idle timeout 2.0 s)",
            ),
            (2, Stdout, "[ben] bye"),
            (1, Stdin, "/peers"),
            (
                1,
                Stderr,
                "cat       127.0.0.1:7003 idle, close in 1.9s    0     1    0    0  0     -",
            ),
            (0, Exit, "exited with status 0"),
            (1, Exit, "exited with status 0"),
            (2, Exit, "exited with status 0"),
        ]
    }

    fn transcript(rows: &[(usize, Source, &str)]) -> Vec<Line> {
        let at = Instant::now();
        rows.iter()
            .map(|(peer, source, text)| Line {
                at,
                peer: Some(*peer),
                source: *source,
                text: text.to_string(),
            })
            .collect()
    }

    fn problems(rows: &[(usize, Source, &str)]) -> Vec<String> {
        check(&transcript(rows), &names(), &steps())
    }

    fn without(text: &str) -> Vec<(usize, Source, &'static str)> {
        good()
            .into_iter()
            .filter(|(_, _, t)| !t.contains(text))
            .collect()
    }

    #[test]
    fn a_good_transcript_passes() {
        assert_eq!(problems(&good()), Vec::<String>::new());
    }

    #[test]
    fn a_missing_or_doubled_message_fails() {
        let p = problems(&without("[ann] hi"));
        assert_eq!(p, ["ben showed \"[ann] hi\" 0 time(s), expected once"]);

        let mut doubled = good();
        doubled.push((1, Source::Stdout, "[ann] hi"));
        assert_eq!(
            problems(&doubled),
            ["ben showed \"[ann] hi\" 2 time(s), expected once"]
        );
    }

    #[test]
    fn a_message_at_the_wrong_peer_fails() {
        let mut wrong = good();
        wrong.push((2, Source::Stdout, "[ann] hi"));
        assert_eq!(
            problems(&wrong),
            ["cat showed a line no one sent it: \"[ann] hi\""]
        );
    }

    #[test]
    fn each_provoked_event_must_appear() {
        assert!(problems(&without("(you)"))[0].contains("/peers"));
        assert!(problems(&without("unknown friend"))[0].contains("was not told so"));
        assert!(problems(&without("closing idle"))[0].contains("never closed its idle connection"));
        assert!(problems(&without("cat listening"))[0].contains("never started again"));
        assert!(problems(&without("idle, close in 1.9"))[0].contains("never counted"));
        assert_eq!(
            problems(&without("[ben] bye")),
            ["cat showed \"[ben] bye\" 0 time(s), expected once"]
        );
        assert!(problems(&without("wait in"))[0].contains("was not told the message waits"));
        let p = problems(&without("[link:ben] connected"));
        assert!(p.iter().any(|p| p.contains("did not reconnect")), "{p:?}");
    }

    #[test]
    fn an_idle_close_after_writing_again_does_not_count() {
        let mut late = without("closing idle");
        let at = late
            .iter()
            .position(|(_, _, t)| *t == "[ann] again")
            .unwrap();
        late.insert(
            at,
            (
                0,
                Source::Stderr,
                "INFO  [dispatcher] closing idle connection to ben after 2.0 s",
            ),
        );
        assert_eq!(
            problems(&late),
            ["ann closed its idle connection to ben only after writing again"]
        );
    }

    #[test]
    fn unexpected_errors_and_bad_exits_fail() {
        let mut bad = good();
        bad.retain(|row| !(row.0 == 0 && row.1 == Source::Exit));
        bad.push((
            0,
            Source::Stderr,
            "12:00:05.000 ERROR [dispatcher] 1 message(s) to ben (x) not delivered: y",
        ));
        bad.push((1, Source::Exit, "killed by a signal"));
        let p = problems(&bad);
        assert!(
            p.iter()
                .any(|p| p.starts_with("ann logged an unexpected error: ERROR")),
            "{p:?}"
        );
        assert!(p.contains(&"ann never exited".to_string()), "{p:?}");
        assert!(
            p.contains(&"ben killed by a signal".to_string()),
            "every exit counts: {p:?}"
        );
    }
}
