//! The scripted conversation. [`perform`] reads like the play it is: who says what to whom, and
//! after each line the sign that it worked, which the stage waits for.
//!
//! The demo shows the behaviour; the tests check it in depth. So the verdict is short: every
//! sign the script waited for came, every peer exited cleanly, and no peer logged an error.

use std::time::Duration;

use crate::Failure;
use crate::stage::{Line, PATIENCE, Stage};

/// The longest wait between two attempts to reach a friend who was away (p2p-chat's backoff).
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);

/// `from` writes `text` to `to`, who must show it.
fn send(stage: &mut Stage, from: &str, to: &str, text: &str) -> Result<(), Failure> {
    let line = format!("{to}/{text}");
    stage.type_line(from, &line, &[Line::shown(to, from, text)])
}

/// Plays the conversation with the first five peers of the table; `idle` is the peers' idle
/// timeout. The broadcast reaches every peer.
pub fn perform(s: &mut Stage, idle: Duration) -> Result<(), Failure> {
    let names = s.names();
    let [a, b, c, d, e] = [0, 1, 2, 3, 4].map(|i| names[i].as_str());

    s.narrate(&format!(
        "{a} writes to {b}: the first message opens a connection"
    ));
    let hi = format!("hi {b}, are you coming to the demo tonight?");
    send(s, a, b, &hi)?;
    send(s, b, a, &format!("yes! {c} is coming too"))?;
    s.narrate(&format!(
        "{c} and {d} talk; each direction has its own connection"
    ));
    send(s, c, d, "did you fix the slides?")?;
    send(s, d, c, "yes, they are on my laptop")?;
    s.narrate(&format!("{a} leaves a note to self"));
    send(s, a, a, "note to self: bring snacks")?;

    s.narrate(&format!("{e} writes to everyone with */"));
    let hello = "hello everyone, see you at 8!";
    let others = names.iter().filter(|n| *n != e);
    let heard: Vec<Line> = others.map(|n| Line::shown(n, e, hello)).collect();
    s.type_line(e, &format!("*/{hello}"), &heard)?;
    s.narrate(&format!(
        "{c} asks who is connected with /peers (printed on stderr)"
    ));
    s.type_line(c, "/peers", &[Line::logged(c, "(you)")])?;
    let stranger = stranger(&names);
    s.narrate(&format!(
        "{d} writes to {stranger:?}, who is not in the table"
    ));
    let unknown = Line::logged(d, &format!("unknown friend {stranger:?}"));
    s.type_line(d, &format!("{stranger}/are you there?"), &[unknown])?;

    let idle_s = idle.as_secs_f64();
    s.narrate(&format!(
        "{a} sends {b} nothing for {idle_s:.1} s, so that connection closes; writing again reconnects"
    ));
    let closing = Line::logged(a, &format!("closing idle connection to {b} after"));
    s.await_sign(&closing, idle + PATIENCE)?;
    let again = format!("still there, {b}? this one goes over a new connection");
    let connected = format!("connected to {b} (");
    let signs = [Line::shown(b, a, &again), Line::logged(a, &connected)];
    s.type_line(a, &format!("{b}/{again}"), &signs)?;

    s.narrate(&format!("{e} leaves with /quit"));
    s.type_line(e, "/quit", &[])?;
    s.quit(e)?;
    s.narrate(&format!(
        "{b} writes to {e}, who has left: the message waits in {e}'s outbox"
    ));
    let home = "did you get home safely?";
    let held = Line::logged(b, "wait in their outbox");
    s.type_line(b, &format!("{e}/{home}"), &[held])?;
    s.narrate(&format!(
        "{e} starts again; {b}'s p2p-chat retries with backoff and delivers what it held"
    ));
    s.restart(e)?;
    s.await_sign(&Line::shown(e, b, home), MAX_RETRY_WAIT + PATIENCE)?;
    s.narrate(&format!(
        "{e}'s p2p-chat confirms it showed the message; {b} asks /peers, which counts it as delivered"
    ));
    let confirms = Line::logged(b, &format!("{e}'s p2p-chat confirms"));
    s.await_sign(&confirms, PATIENCE)?;
    s.type_line(b, "/peers", &[Line::logged(b, "(you)")])?;
    s.narrate("end of input for everyone: each peer delivers what it holds, then quits");
    Ok(())
}

/// A name to write to that is not in the table.
fn stranger(names: &[String]) -> String {
    ["zed", "mallory", "nobody"]
        .into_iter()
        .find(|s| !names.iter().any(|name| name == s))
        .unwrap_or("zed-the-stranger")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stranger_is_never_a_friend() {
        let table = |names: [&str; 3]| names.map(String::from);
        assert_eq!(stranger(&table(["ann", "ben", "cat"])), "zed");
        assert_eq!(stranger(&table(["zed", "ben", "cat"])), "mallory");
        let everyone = table(["zed", "mallory", "nobody"]);
        assert_eq!(stranger(&everyone), "zed-the-stranger");
    }
}
