//! The scripted conversation, as data: [`conversation`] lists the steps, written with the first
//! five names of the table; [`perform`] plays them on the stage, waiting after each for the sign
//! that it worked; [`verdict`] says what went wrong, if anything.
//!
//! The demo shows the behaviour; the tests check it in depth. So the verdict is short: every
//! sign the script waited for came, every peer exited cleanly, and no peer logged an error.

use std::time::Duration;

use crate::Failure;
use crate::stage::{Source, Stage, without_clock};

/// How long a sign may take before the demo gives up on it.
const PATIENCE: Duration = Duration::from_secs(5);

/// The longest wait between two attempts to reach a friend who was away (p2p-chat's backoff).
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

/// What a line must be to count as a sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Exactly this text.
    Is(String),
    /// All of these pieces.
    Has(Vec<String>),
}

/// A sign that a step worked: a line from `peer`, from `source`, matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sign {
    pub peer: usize,
    pub source: Source,
    pub text: Match,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Say(String),
    /// `peer` types `line`; then each sign must appear.
    Type {
        peer: usize,
        line: String,
        signs: Vec<Sign>,
    },
    /// Wait up to `within` for a sign, typing nothing; a sign seen earlier counts.
    Await {
        sign: Sign,
        within: Duration,
    },
    /// `peer` ends its input (quit) and exits.
    Quit(usize),
    /// `peer` starts again.
    Restart(usize),
}

/// The conversation for a table whose first five names are `names[..5]`. `idle` is the peers'
/// idle timeout.
pub fn conversation(names: &[String], idle: Duration) -> Vec<Step> {
    let n = |i: usize| names[i].clone();
    let (a, b, c, d, e) = (0, 1, 2, 3, 4);
    let stranger = ["zed", "mallory", "nobody"]
        .into_iter()
        .find(|s| !names.iter().any(|name| name == s))
        .unwrap_or("zed-the-stranger")
        .to_string();
    let say = |text: String| Step::Say(text);
    let shown = |to: usize, from: usize, text: &str| Sign {
        peer: to,
        source: Source::Stdout,
        text: Match::Is(format!("[{}] {text}", n(from))),
    };
    let logged = |peer: usize, pieces: &[&str]| Sign {
        peer,
        source: Source::Stderr,
        text: Match::Has(pieces.iter().map(|p| p.to_string()).collect()),
    };
    let send = |from: usize, to: usize, text: &str| Step::Type {
        peer: from,
        line: format!("{}/{text}", n(to)),
        signs: vec![shown(to, from, text)],
    };
    let hi = format!("hi {}, are you coming to the demo tonight?", n(b));
    let coming = format!("yes! {} is coming too", n(c));
    let broadcast = "hello everyone, see you at 8!";
    let again = format!("still there, {}? this one goes over a new connection", n(b));
    let home = "did you get home safely?";
    let connected = format!("connected to {} (", n(b));
    let held = format!(" to {} (", n(e));
    vec![
        say(format!(
            "{} writes to {}: the first message opens a connection",
            n(a),
            n(b)
        )),
        send(a, b, &hi),
        send(b, a, &coming),
        say(format!(
            "{} and {} talk; each direction has its own connection",
            n(c),
            n(d)
        )),
        send(c, d, "did you fix the slides?"),
        send(d, c, "yes, they are on my laptop"),
        say(format!("{} leaves a note to self", n(a))),
        send(a, a, "note to self: bring snacks"),
        say(format!("{} writes to everyone with */", n(e))),
        Step::Type {
            peer: e,
            line: format!("*/{broadcast}"),
            signs: (0..names.len())
                .filter(|&p| p != e)
                .map(|p| shown(p, e, broadcast))
                .collect(),
        },
        say(format!(
            "{} asks who is connected with /peers (printed on stderr)",
            n(c)
        )),
        Step::Type {
            peer: c,
            line: "/peers".to_string(),
            signs: vec![logged(c, &["(you)"])],
        },
        say(format!(
            "{} writes to {stranger:?}, who is not in the table",
            n(d)
        )),
        Step::Type {
            peer: d,
            line: format!("{stranger}/are you there?"),
            signs: vec![logged(d, &[&format!("unknown friend {stranger:?}")])],
        },
        say(format!(
            "{} sends {} nothing for {:.1} s, so that connection closes; writing again reconnects",
            n(a),
            n(b),
            idle.as_secs_f64()
        )),
        Step::Await {
            sign: logged(a, &[&format!("closing idle connection to {} after", n(b))]),
            within: idle + PATIENCE,
        },
        Step::Type {
            peer: a,
            line: format!("{}/{again}", n(b)),
            signs: vec![shown(b, a, &again), logged(a, &[&connected])],
        },
        say(format!("{} leaves with /quit", n(e))),
        Step::Type {
            peer: e,
            line: "/quit".to_string(),
            signs: vec![],
        },
        Step::Quit(e),
        say(format!(
            "{} writes to {}, who has left: the message waits in {}'s outbox",
            n(b),
            n(e),
            n(e)
        )),
        Step::Type {
            peer: b,
            line: format!("{}/{home}", n(e)),
            signs: vec![logged(b, &[&held, "wait in their outbox"])],
        },
        say(format!(
            "{} starts again; {}'s p2p-chat retries with backoff and delivers what it held",
            n(e),
            n(b)
        )),
        Step::Restart(e),
        Step::Await {
            sign: shown(e, b, home),
            within: MAX_RETRY_WAIT + PATIENCE,
        },
        say(format!(
            "{}'s p2p-chat confirms it showed the message; {} asks /peers, which counts it as delivered",
            n(e),
            n(b)
        )),
        Step::Await {
            sign: logged(b, &[&format!("{}'s p2p-chat confirms", n(e))]),
            within: PATIENCE,
        },
        Step::Type {
            peer: b,
            line: "/peers".to_string(),
            signs: vec![logged(b, &["(you)"])],
        },
        say("end of input for everyone: each peer delivers what it holds, then quits".to_string()),
    ]
}

/// Plays `steps`, pausing `pace` after each that acts.
pub fn perform(stage: &mut Stage, steps: &[Step], pace: Duration) -> Result<(), Failure> {
    for step in steps {
        let mark = stage.lines().len();
        match step {
            Step::Say(text) => {
                stage.narrate(text);
                continue;
            }
            Step::Type { peer, line, signs } => {
                stage.type_line(*peer, line);
                for sign in signs {
                    await_sign(stage, mark, sign, PATIENCE)?;
                }
            }
            // A sign that may already have come (an idle close during earlier steps, a held
            // message delivered while its friend was starting): the whole transcript counts.
            Step::Await { sign, within } => {
                await_sign(stage, 0, sign, *within)?;
            }
            Step::Quit(peer) => stage.close(*peer, PATIENCE)?,
            Step::Restart(peer) => stage.start(*peer)?,
        }
        stage.pause(pace)?;
    }
    Ok(())
}

/// Waits until `sign` shows in a line after `mark`.
fn await_sign(
    stage: &mut Stage,
    mark: usize,
    sign: &Sign,
    within: Duration,
) -> Result<(), Failure> {
    let what = format!("{} to show {:?}", stage.name(sign.peer), sign.text);
    stage.wait_for(&what, within, |stage| seen(stage, mark, sign))?;
    Ok(())
}

fn seen(stage: &Stage, mark: usize, sign: &Sign) -> bool {
    stage.lines()[mark..].iter().any(|l| {
        l.peer == Some(sign.peer) && l.source == sign.source && matches(&sign.text, &l.text)
    })
}

fn matches(wanted: &Match, text: &str) -> bool {
    match wanted {
        Match::Is(line) => text == line,
        Match::Has(pieces) => pieces.iter().all(|p| text.contains(p.as_str())),
    }
}

/// What went wrong, beyond the waits that timed out: a peer that did not exit cleanly, or an
/// error any peer logged. Empty when all is well.
pub fn verdict(stage: &Stage) -> Vec<String> {
    let mut problems = stage.problems.clone();
    for line in stage.lines() {
        let Some(peer) = line.peer else { continue };
        let name = stage.name(peer);
        match line.source {
            Source::Exit if line.text != "exited with status 0" => {
                problems.push(format!("{name} {}", line.text));
            }
            Source::Stderr if without_clock(&line.text).starts_with("ERROR") => {
                problems.push(format!(
                    "{name} logged an error: {}",
                    without_clock(&line.text)
                ));
            }
            _ => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &str) -> Vec<String> {
        list.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_script_uses_the_first_five_names_and_a_stranger_who_is_not_a_friend() {
        let steps = conversation(&names("ann ben cat dan eva fay"), Duration::from_secs(2));
        let text = format!("{steps:?}");
        assert!(text.contains("ann") && text.contains("eva") && !text.contains("fay"));
        let steps = conversation(&names("zed mallory nobody d e"), Duration::from_secs(2));
        assert!(format!("{steps:?}").contains("zed-the-stranger/are you there?"));
    }

    #[test]
    fn signs_match_what_p2p_chat_prints() {
        let has = |pieces: &[&str]| Match::Has(pieces.iter().map(|p| p.to_string()).collect());
        assert!(matches(
            &has(&[" to eve (", "wait in their outbox"]),
            "WARN  [dispatcher] 1 message(s) to eve (127.0.0.1:7005) wait in their outbox: ..."
        ));
        assert!(!matches(&has(&[" to eve ("]), "1 message(s) to evelyn (x)"));
    }
}
