//! The demo's run as a sequence diagram, in SVG: one lane per peer with time going down, an arrow
//! for each message from the sender's lane to the receiver's, a bar beside the sender's lane for
//! each TCP connection from connect to close, and the moments a peer left and started again.
//!
//! Everything comes from the transcript the stage kept: what the script typed (the messages),
//! what each peer printed (when a message was shown) and logged (connections opening, the idle
//! close, closing; and at debug level the fate of every message). Pure: lines in, text out.
//!
//! Made to be projected: large text, the Okabe-Ito colours (told apart by colour-blind eyes too),
//! and every kind of thing also told by its shape (a dashed arrow, a cross, a tick), not by colour
//! alone.

use std::fmt::Write as _;

use crate::stage::{Line, Source};

const LANE_GAP: f64 = 220.0;
const LEFT: f64 = 110.0;
const TOP: f64 = 90.0;
const PIXELS_PER_SECOND: f64 = 60.0;
const BOTTOM: f64 = 150.0;

/// Colours (Okabe-Ito) for the fates, with the dash pattern that tells them apart without colour.
fn style(fate: &str) -> (&'static str, &'static str) {
    match fate {
        "delivered" => ("#0072B2", ""),
        "sent" => ("#009E73", "8 4"),
        "held, then delivered" => ("#E69F00", "2 4"),
        _ => ("#D55E00", "10 3 2 3"),
    }
}

/// One message's arrow.
struct Arrow {
    from: usize,
    to: usize,
    text: String,
    sent: f64,
    shown: Option<f64>,
    fate: Option<&'static str>,
    held: bool,
}

/// One connection's bar, beside the sender's lane.
struct Bar {
    from: usize,
    to: usize,
    open: f64,
    idle_close: Option<f64>,
    close: Option<f64>,
}

/// The diagram. `names` are the peers in table order; `poll[i]` says peer `i` runs
/// p2p-chat-select; `idle` is their idle timeout, in seconds.
pub fn svg(names: &[String], poll: &[bool], lines: &[Line], idle: f64) -> String {
    let lane = |name: &str| names.iter().position(|n| n == name);
    let mut arrows: Vec<Arrow> = Vec::new();
    let mut bars: Vec<Bar> = Vec::new();
    // Per peer: (started, ended) spans of its process.
    let mut runs: Vec<Vec<(f64, Option<f64>)>> = vec![Vec::new(); names.len()];
    let end = lines.last().map_or(1.0, |l| l.at) + 0.5;
    for line in lines {
        let Some(me) = lane(&line.peer) else { continue };
        match line.source {
            Source::Stdin => {
                let Some((to, text)) = line.text.split_once('/') else {
                    continue;
                };
                let targets: Vec<usize> = match to {
                    "*" => (0..names.len()).filter(|&i| i != me).collect(),
                    name => lane(name).into_iter().collect(),
                };
                for to in targets {
                    arrows.push(Arrow {
                        from: me,
                        to,
                        text: text.to_string(),
                        sent: line.at,
                        shown: None,
                        fate: None,
                        held: false,
                    });
                }
            }
            Source::Stdout => {
                // `[sender] text`: the oldest arrow from that sender to me with that text.
                let Some((sender, text)) =
                    line.text.strip_prefix('[').and_then(|r| r.split_once("] "))
                else {
                    continue;
                };
                let sender = sender.split(' ').next().unwrap_or(sender);
                let found = arrows.iter_mut().find(|a| {
                    a.to == me && a.shown.is_none() && names[a.from] == sender && a.text == text
                });
                if let Some(arrow) = found {
                    arrow.shown = Some(line.at);
                }
            }
            Source::Stderr => read_log(me, line, names, &mut arrows, &mut bars, &mut runs),
            Source::Exit => {
                if let Some(run) = runs[me].last_mut() {
                    run.1 = Some(line.at);
                }
            }
        }
    }
    draw(names, poll, &arrows, &bars, &runs, idle, end)
}

/// What a log line adds: a process starting, a connection opening or closing, a fate.
fn read_log(
    me: usize,
    line: &Line,
    names: &[String],
    arrows: &mut [Arrow],
    bars: &mut Vec<Bar>,
    runs: &mut [Vec<(f64, Option<f64>)>],
) {
    let text = line.text.as_str();
    let lane = |name: &str| names.iter().position(|n| n == name);
    let after = |marker: &str| text.split_once(marker).map(|(_, rest)| rest);
    if text.contains(&format!("{} listening on ", names[me])) {
        runs[me].push((line.at, None));
    } else if let Some(rest) = after("connected to ") {
        let name = rest.split(' ').next().unwrap_or_default();
        if let Some(to) = lane(name).filter(|_| !text.contains("connected to you")) {
            bars.push(Bar {
                from: me,
                to,
                open: line.at,
                idle_close: None,
                close: None,
            });
        }
    } else if let Some(rest) = after("closing idle connection to ") {
        let name = rest.split(' ').next().unwrap_or_default();
        if let Some(bar) = open_bar(bars, me, lane(name)) {
            bar.idle_close = Some(line.at);
        }
    } else if let Some(name) = closed(text) {
        if let Some(bar) = open_bar(bars, me, lane(name)) {
            bar.close = Some(line.at);
        }
    } else if text.starts_with("DEBUG [")
        && let Some(rest) = after(" message(s) to ")
        && let Some((name, fate)) = rest.split_once(": ")
    {
        let count: usize = text
            .split("] ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let Some(to) = lane(name) else { return };
        let waiting = arrows
            .iter_mut()
            .filter(|a| a.from == me && a.to == to && a.fate.is_none());
        for arrow in waiting.take(count) {
            match fate {
                "held" => arrow.held = true,
                "delivered" if arrow.held => arrow.fate = Some("held, then delivered"),
                "delivered" => arrow.fate = Some("delivered"),
                "sent" => arrow.fate = Some("sent"),
                "refused" => arrow.fate = Some("refused"),
                "may not have arrived" => arrow.fate = Some("may not have arrived"),
                _ => arrow.fate = Some("not delivered"),
            }
        }
    }
}

/// The friend whose connection from us a log line says has closed, if it does: `connection to
/// bob closed` (debug), `our connection to bob ended: ...`, `bob closed our idle connection to
/// them`.
fn closed(text: &str) -> Option<&str> {
    let rest = text.split_once("] ")?.1;
    if let Some(r) = rest.strip_prefix("connection to ")
        && r.ends_with(" closed")
    {
        return r.split(' ').next();
    }
    if let Some(r) = rest.strip_prefix("our connection to ") {
        return r.split(' ').next();
    }
    rest.strip_suffix(" closed our idle connection to them")
}

fn open_bar(bars: &mut [Bar], from: usize, to: Option<usize>) -> Option<&mut Bar> {
    let to = to?;
    bars.iter_mut()
        .rev()
        .find(|b| b.from == from && b.to == to && b.close.is_none())
}

fn draw(
    names: &[String],
    poll: &[bool],
    arrows: &[Arrow],
    bars: &[Bar],
    runs: &[Vec<(f64, Option<f64>)>],
    idle: f64,
    end: f64,
) -> String {
    let x = |i: usize| LEFT + 80.0 + i as f64 * LANE_GAP;
    let y = |t: f64| TOP + t * PIXELS_PER_SECOND;
    let width = x(names.len() - 1) + 260.0;
    let height = y(end) + BOTTOM;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="DejaVu Sans, Arial, sans-serif" font-size="16">"##
    );
    let _ = writeln!(
        s,
        r##"<defs><marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="context-stroke"/></marker></defs>"##
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="white"/>"##);
    // The time scale, a tick a second.
    let _ = writeln!(
        s,
        r##"<g class="scale"><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="#555"/>"##,
        y(end)
    );
    for second in 0..=end.floor() as usize {
        let ty = y(second as f64);
        let _ = writeln!(
            s,
            r##"<line x1="{:.1}" y1="{ty:.1}" x2="{LEFT}" y2="{ty:.1}" stroke="#555"/><text x="{:.1}" y="{:.1}" text-anchor="end" font-size="14">{second} s</text>"##,
            LEFT - 8.0,
            LEFT - 12.0,
            ty + 5.0
        );
    }
    let _ = writeln!(s, "</g>");
    // Lanes: solid while the peer runs, dotted while it does not.
    for (i, name) in names.iter().enumerate() {
        let label = match poll.get(i) {
            Some(true) => format!("{name} (poll loop)"),
            _ => name.clone(),
        };
        let _ = writeln!(
            s,
            r##"<g class="lane" data-peer="{}"><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="20" font-weight="bold">{}</text>"##,
            xml(name),
            x(i),
            TOP - 30.0,
            xml(&label)
        );
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#999" stroke-dasharray="2 6"/>"##,
            x(i),
            TOP,
            y(end)
        );
        for (k, (start, stop)) in runs[i].iter().enumerate() {
            let stop = stop.unwrap_or(end);
            if k > 0 {
                let _ = writeln!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" font-size="14">started again</text>"##,
                    x(i) + 8.0,
                    y(*start) - 6.0
                );
            }
            let _ = writeln!(
                s,
                r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="black" stroke-width="3"/>"##,
                x(i),
                y(*start),
                y(stop)
            );
            if stop < end {
                let _ = writeln!(
                    s,
                    r##"<text x="{:.1}" y="{:.1}" font-size="14">left</text>"##,
                    x(i) + 8.0,
                    y(stop) + 16.0
                );
            }
        }
        let _ = writeln!(s, "</g>");
    }
    // Connections: a bar right of the sender's lane, one slot per friend.
    let mut labelled: Vec<(usize, f64)> = Vec::new();
    for bar in bars {
        let slot = (bar.to + names.len() - bar.from) % names.len();
        let bx = x(bar.from) + 10.0 + slot as f64 * 9.0;
        let close = bar.close.unwrap_or(end);
        let _ = writeln!(
            s,
            r##"<g class="connection" data-from="{}" data-to="{}"><rect x="{bx:.1}" y="{:.1}" width="7" height="{:.1}" fill="#CC79A7" fill-opacity="0.45" stroke="#CC79A7"/>"##,
            xml(&names[bar.from]),
            xml(&names[bar.to]),
            y(bar.open),
            (y(close) - y(bar.open)).max(2.0)
        );
        if let Some(at) = bar.idle_close {
            let (ty, tx1, tx2) = (y(at), bx - 3.0, bx + 10.0);
            let _ = writeln!(
                s,
                r##"<line x1="{tx1:.1}" y1="{ty:.1}" x2="{tx2:.1}" y2="{ty:.1}" stroke="black" stroke-width="2"/>"##
            );
            // One label for the idle closes of one sender at one moment (a broadcast's).
            if !labelled
                .iter()
                .any(|&(f, t)| f == bar.from && (t - at).abs() < 0.5)
            {
                labelled.push((bar.from, at));
                let lx = x(bar.from) + 12.0 + names.len() as f64 * 9.0;
                let _ = writeln!(
                    s,
                    r##"<text x="{lx:.1}" y="{:.1}" font-size="13">idle {idle:.1} s</text>"##,
                    ty + 4.0
                );
            }
        }
        let _ = writeln!(s, "</g>");
    }
    // Messages. A broadcast is labelled once, on its longest arrow.
    let labelled_on = |arrow: &Arrow| {
        !arrows.iter().any(|other| {
            other.from == arrow.from
                && other.sent == arrow.sent
                && other.text == arrow.text
                && other.to.abs_diff(other.from) > arrow.to.abs_diff(arrow.from)
        })
    };
    for arrow in arrows {
        let fate = arrow.fate.unwrap_or("not delivered");
        let (colour, dash) = style(fate);
        let (x1, y1) = (x(arrow.from), y(arrow.sent));
        let reached = arrow.shown.unwrap_or(arrow.sent + 0.3);
        let (x2, mut y2) = (x(arrow.to), y(reached));
        if arrow.from == arrow.to {
            y2 = y2.max(y1 + 24.0); // a loop needs some height to be seen
        }
        let _ = write!(s, r##"<g class="message" data-fate="{}">"##, xml(fate));
        if arrow.from == arrow.to {
            // A note to self: a loop out of the lane and back.
            let _ = write!(
                s,
                r##"<path d="M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}" fill="none" stroke="{colour}" stroke-width="2.5" stroke-dasharray="{dash}" marker-end="url(#head)"/>"##,
                x1 + 90.0,
                x1 + 90.0
            );
        } else {
            let _ = write!(
                s,
                r##"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{colour}" stroke-width="2.5" stroke-dasharray="{dash}" marker-end="url(#head)"/>"##
            );
        }
        if arrow.shown.is_none() {
            let _ = write!(
                s,
                r##"<path d="M{:.1},{:.1} l12,12 m0,-12 l-12,12" stroke="{colour}" stroke-width="3"/>"##,
                x2 - 6.0,
                y2 - 6.0
            );
        }
        if !labelled_on(arrow) {
            let _ = writeln!(s, "</g>");
            continue;
        }
        let label = format!("{}  ({fate})", short(&arrow.text, 26));
        let (lx, ly) = match arrow.from == arrow.to {
            true => (x1 + 96.0, (y1 + y2) / 2.0),
            false => ((x1 + x2) / 2.0, (y1 + y2) / 2.0 - 6.0),
        };
        let anchor = if arrow.from == arrow.to {
            "start"
        } else {
            "middle"
        };
        let _ = writeln!(
            s,
            r##"<text x="{lx:.1}" y="{ly:.1}" text-anchor="{anchor}" font-size="14" fill="black" stroke="white" stroke-width="4" paint-order="stroke">{}</text></g>"##,
            xml(&label)
        );
    }
    legend(&mut s, 20.0, y(end) + 30.0, idle);
    let _ = writeln!(s, "</svg>");
    s
}

/// What each mark means, at the foot of the diagram.
fn legend(s: &mut String, left: f64, top: f64, idle: f64) {
    let _ = writeln!(s, r##"<g class="legend" font-size="15">"##);
    let entries = ["delivered", "sent", "held, then delivered", "not delivered"];
    for (i, fate) in entries.iter().enumerate() {
        let (colour, dash) = style(fate);
        let lx = left + i as f64 * 250.0;
        let _ = writeln!(
            s,
            r##"<line x1="{lx:.1}" y1="{top:.1}" x2="{:.1}" y2="{top:.1}" stroke="{colour}" stroke-width="2.5" stroke-dasharray="{dash}" marker-end="url(#head)"/><text x="{:.1}" y="{:.1}">{fate}</text>"##,
            lx + 50.0,
            lx + 58.0,
            top + 5.0
        );
    }
    let row = top + 36.0;
    let _ = writeln!(
        s,
        r##"<rect x="{left:.1}" y="{:.1}" width="7" height="24" fill="#CC79A7" fill-opacity="0.45" stroke="#CC79A7"/><text x="{:.1}" y="{:.1}">a TCP connection, from connect to close; its tick: the idle close after {idle:.1} s</text>"##,
        row - 12.0,
        left + 16.0,
        row + 5.0
    );
    let row = top + 70.0;
    let _ = writeln!(
        s,
        r##"<line x1="{left:.1}" y1="{row:.1}" x2="{:.1}" y2="{row:.1}" stroke="black" stroke-width="3"/><text x="{:.1}" y="{:.1}">a peer running (dotted: not running); an arrow: a message, with its fate; an x: never shown</text></g>"##,
        left + 30.0,
        left + 38.0,
        row + 5.0
    );
}

/// The text made safe inside XML.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// At most `chars` characters, with an ellipsis when cut.
fn short(text: &str, chars: usize) -> String {
    match text.chars().count() > chars {
        true => format!("{}…", text.chars().take(chars - 1).collect::<String>()),
        false => text.to_string(),
    }
}
