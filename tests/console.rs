//! Black-box tests of the console in a real terminal: alice runs in a tmux pane of a tmux server
//! of the test's own (`tmux -S` with a socket in the test's directory), keys are sent with `send-keys`, and the screen is read with
//! `capture-pane`. Her friends are piped processes and raw sockets, as elsewhere. Each tmux
//! server is killed when its test ends, pass or fail. Without tmux, the tests fail and say so.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use common::tmux::TmuxServer;
use common::{BIN, Group, PATIENCE, Peer};

/// One tmux server with one session running one command in a 120x32 pane.
struct Tmux {
    server: TmuxServer,
}

impl Tmux {
    /// Starts `command` (run by `sh`) in a new pane. Without tmux, fails the test, or returns
    /// `None` where the user has asked to skip the console tests.
    fn start(dir: &Path, command: &str) -> Option<Tmux> {
        let server = TmuxServer::start(dir, &["-x", "120", "-y", "32", command])?;
        Some(Tmux { server })
    }

    fn run(&self, args: &[&str]) -> Option<Output> {
        self.server.run(args)
    }

    /// Makes the window `columns` wide, as a person dragging its edge would.
    fn resize(&self, columns: usize) {
        let columns = columns.to_string();
        self.run(&["resize-window", "-x", &columns, "-y", "32"]);
    }

    /// Sends keys by their tmux names (`Enter`, `Left`, `C-c`, `BSpace`, ...).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types `text` as it is.
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "0", "-l", text]);
    }

    /// Types `text` and presses Enter.
    fn enter(&self, text: &str) {
        self.type_text(text);
        self.keys(&["Enter"]);
    }

    /// The pane's text now.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "0"])
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Waits until the screen satisfies `ready`; returns it, or panics with it.
    fn wait_screen(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {what}:\n{screen}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The last line of the screen with anything on it: the input line.
fn input_line(screen: &str) -> &str {
    screen
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
}

/// The shell command that runs alice in the pane, then records her exit status and the
/// terminal's settings in `stty` when she has ended. The shell traps Ctrl-C, so it lives on.
fn alice_command(group: &Group, extra: &str, stty: &Path) -> String {
    program_command(BIN, group, extra, stty)
}

/// [`alice_command`] for `program`, p2p-chat or p2p-chat-select.
fn program_command(program: &str, group: &Group, extra: &str, stty: &Path) -> String {
    format!(
        "trap : INT; env -u RUST_LOG NO_COLOR=1 {program} --peers {} {extra} alice; \
         echo \"exit $?\" > {stty}.tmp; stty -a >> {stty}.tmp; mv {stty}.tmp {stty}",
        group.table.display(),
        stty = stty.display()
    )
}

/// alice in a pane, with `extra` options, once her prompt shows; `None` without tmux.
fn alice_in_tmux(group: &Group, extra: &str) -> Option<Tmux> {
    let stty = group.dir.path().join("stty.txt");
    let tmux = Tmux::start(group.dir.path(), &alice_command(group, extra, &stty))?;
    tmux.wait_screen("the prompt", |s| s.contains("alice> "));
    Some(tmux)
}

#[test]
fn a_half_typed_line_survives_an_incoming_message_a_warning_and_ctrl_l() {
    let group = Group::new(&["alice", "bob"]);
    let mut bob = group.start("bob", &[]);
    let Some(tmux) = alice_in_tmux(&group, "") else {
        return;
    };
    tmux.type_text("bob/hello the");
    tmux.wait_screen("the typed text", |s| {
        input_line(s) == "alice> bob/hello the"
    });

    bob.send("alice/are you typing?");
    let mut stranger = TcpStream::connect(("127.0.0.1", group.port(0))).unwrap();
    stranger.write_all(b"zed/let me in\n").unwrap();
    // Above the line being typed, which is drawn again below them (the screen may be caught
    // between the two: wait for the whole of it).
    tmux.wait_screen("the message and the warning above the typed text", |s| {
        s.contains("[bob] are you typing?")
            && s.contains("\"zed\"")
            && input_line(s) == "alice> bob/hello the"
    });

    tmux.enter("re");
    bob.expect_line("[alice] hello there");
    tmux.wait_screen("the echo of the message", |s| {
        s.contains("[you -> bob] hello there  delivered")
    });

    // Ctrl-L clears the screen; the half-typed line is drawn again at the top and still sends.
    tmux.type_text("bob/after the clear");
    tmux.keys(&["C-l"]);
    tmux.wait_screen("a cleared screen with the line at its top", |s| {
        !s.contains("are you typing?") && s.lines().next() == Some("alice> bob/after the clear")
    });
    tmux.keys(&["Enter"]);
    bob.expect_line("[alice] after the clear");
}

#[test]
fn editing_keys_history_and_tab_send_the_right_text() {
    let group = Group::new(&["alice", "bob"]);
    let mut bob = group.start("bob", &[]);
    let Some(tmux) = alice_in_tmux(&group, "") else {
        return;
    };
    // Tab completes the name; a typo is mended with the arrows and Backspace.
    tmux.type_text("b");
    tmux.keys(&["Tab"]);
    tmux.type_text("fix the tpyo");
    tmux.keys(&["Left", "Left", "BSpace", "Right"]);
    tmux.enter("p");
    bob.expect_line("[alice] fix the typo");
    // Multibyte characters move the cursor once each.
    tmux.type_text("bob/héllo 日本x");
    tmux.keys(&["Left", "BSpace", "Enter"]);
    bob.expect_line("[alice] héllo 日x");
    // Home, Delete, End.
    tmux.type_text("xbob/ok");
    tmux.keys(&["Home", "DC", "End"]);
    tmux.enter("!");
    bob.expect_line("[alice] ok!");
    // Up twice, then Enter: the message two back, again.
    tmux.keys(&["Up", "Up", "Up", "Enter"]);
    bob.expect_line("[alice] fix the typo");
    // Ctrl-W.
    tmux.type_text("bob/keep this not this");
    tmux.keys(&["C-w", "C-w", "BSpace", "Enter"]);
    bob.expect_line("[alice] keep this");
    // Pasting several lines sends each.
    tmux.type_text("bob/one\rbob/two\r");
    bob.expect_line("[alice] one");
    bob.expect_line("[alice] two");

    // /peers fits the pane: in 50 columns, the address column goes.
    tmux.enter("/peers");
    tmux.wait_screen("the table", |s| {
        s.contains("friend ") && s.contains("address")
    });
    tmux.run(&["resize-window", "-t", "0", "-x", "50", "-y", "32"]);
    tmux.keys(&["C-l"]);
    tmux.enter("/peers");
    let screen = tmux.wait_screen("the narrow table", |s| {
        s.lines()
            .any(|l| l.starts_with("friend ") && !l.contains("address"))
    });
    let header = screen.lines().rfind(|l| l.starts_with("friend ")).unwrap();
    assert!(header.len() < 50, "{header}");
}

#[test]
fn the_default_view_shows_the_chat_and_no_connection_events_until_asked() {
    let group = Group::new(&["alice", "bob"]);
    let mut bob = group.start("bob", &[]);
    let Some(tmux) = alice_in_tmux(&group, "--idle-timeout 0.5") else {
        return;
    };
    tmux.enter("bob/hi");
    bob.expect_line("[alice] hi");
    bob.send("alice/hi yourself");
    tmux.wait_screen("the chat", |s| {
        s.contains("[bob] hi yourself") && s.contains("[you -> bob] hi  delivered")
    });
    // The idle close comes 0.5 s after the message: wait past it, with a message after it.
    bob.expect_stderr("closed their connection to you");
    bob.send("alice/later");
    let screen = tmux.wait_screen("the later message", |s| s.contains("[bob] later"));
    for event in [
        "connected to",
        "accepted connection",
        "closing idle",
        "closed their",
    ] {
        assert!(
            !screen.contains(event),
            "{event:?} in the default view:\n{screen}"
        );
    }
    // Chat lines carry the time.
    let line = screen.lines().find(|l| l.contains("[bob] later")).unwrap();
    assert!(
        line.as_bytes()[2] == b':' && line.as_bytes()[5] == b' ',
        "{line}"
    );

    tmux.enter("/events");
    tmux.wait_screen("the answer", |s| s.contains("connection events are shown"));
    tmux.enter("bob/again");
    tmux.wait_screen("the connection events", |s| {
        s.contains("connected to bob") && s.contains("closing idle connection to bob")
    });
}

/// Whether `stty -a` output shows a terminal in its normal, cooked mode.
fn cooked(stty: &str) -> bool {
    let flags: Vec<&str> = stty.split_whitespace().collect();
    flags.contains(&"icanon") && flags.contains(&"echo")
}

/// Runs alice in a pane, then `act` on it, and returns her exit status line and `stty -a`
/// after she has ended.
fn terminal_after(group: &Group, act: impl FnOnce(&Tmux)) -> Option<String> {
    let tmux = alice_in_tmux(group, "")?;
    act(&tmux);
    let stty = group.dir.path().join("stty.txt");
    let ended = common::wait_until(|| stty.exists());
    assert!(ended, "alice did not end:\n{}", tmux.screen());
    Some(std::fs::read_to_string(&stty).unwrap())
}

#[test]
fn the_terminal_is_restored_after_quit_ctrl_d_and_two_ctrl_c() {
    let group = Group::new(&["alice", "bob"]);
    let quit = |tmux: &Tmux| tmux.keys(&["/quit", "Enter"]);
    let Some(after) = terminal_after(&group, quit) else {
        return;
    };
    assert!(
        after.starts_with("exit 0") && cooked(&after),
        "after /quit: {after}"
    );
    let after = terminal_after(&group, |tmux| tmux.keys(&["C-d"])).unwrap();
    assert!(
        after.starts_with("exit 0") && cooked(&after),
        "after Ctrl-D: {after}"
    );

    // bob takes the message and never confirms it, so the quit the first Ctrl-C starts waits
    // for him; the second Ctrl-C quits at once.
    let (group, bob) = Group::with_listener(&["alice", "bob"]);
    let holder = thread::spawn(move || bob.accept().map(|(stream, _)| stream));
    let after = terminal_after(&group, |tmux| {
        tmux.enter("bob/are you there?");
        tmux.wait_screen("the message on its way", |s| s.contains("sending"));
        tmux.keys(&["C-c"]);
        tmux.wait_screen("the quit", |s| s.contains("interrupted"));
        tmux.keys(&["C-c"]);
    })
    .unwrap();
    assert!(
        after.starts_with("exit 130") && cooked(&after),
        "after Ctrl-C twice: {after}"
    );
    drop(holder);
}

#[test]
fn after_ctrl_z_the_shell_has_its_terminal_back_and_after_fg_the_line_works_again() {
    let group = Group::new(&["alice", "bob"]);
    let mut bob = group.start("bob", &[]);
    // An interactive shell with job control, as a person would have.
    let Some(tmux) = Tmux::start(group.dir.path(), "env -u RUST_LOG PS1='$ ' bash --norc -i")
    else {
        return;
    };
    tmux.wait_screen("the shell", |s| s.trim_start().starts_with('$'));
    let command = format!("NO_COLOR=1 {BIN} --peers {} alice", group.table.display());
    tmux.enter(&command);
    tmux.wait_screen("the prompt", |s| s.contains("alice> "));
    tmux.type_text("bob/half");
    tmux.keys(&["C-z"]);
    tmux.wait_screen("the job stopped", |s| s.contains("Stopped"));
    tmux.enter("stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo | tr '\\n' ,");
    tmux.wait_screen("the shell's terminal settings", |s| {
        s.contains("icanon,echo,")
    });
    tmux.enter("fg");
    tmux.wait_screen("the line back", |s| input_line(s) == "alice> bob/half");
    tmux.enter(" way");
    bob.expect_line("[alice] half way");
    tmux.enter("/quit");
}

#[test]
fn the_poll_loop_in_a_terminal_is_the_same_chat_editor_echoes_and_all() {
    let group = Group::new(&["alice", "bob"]);
    let mut bob = group.start("bob", &[]);
    let stty = group.dir.path().join("stty.txt");
    let command = program_command(common::SELECT_BIN, &group, "", &stty);
    let Some(tmux) = Tmux::start(group.dir.path(), &command) else {
        return;
    };
    tmux.wait_screen("the prompt", |s| s.contains("alice> "));
    // Tab completes the name; the message goes, and its echo says it was delivered.
    tmux.keys(&["b", "Tab"]);
    tmux.wait_screen("the completed name", |s| input_line(s) == "alice> bob/");
    tmux.enter("hello from the loop");
    bob.expect_line("[alice] hello from the loop");
    tmux.wait_screen("the echo", |s| {
        s.contains("[you -> bob] hello from the loop  delivered")
    });
    // A message refused at the console stays on screen as typed, above the reason.
    tmux.enter("carol/words to keep");
    tmux.wait_screen("the refused line, then why", |s| {
        s.contains("alice> carol/words to keep\nerror: unknown friend \"carol\"")
    });
    tmux.keys(&["/quit", "Enter"]);
    let ended = common::wait_until(|| stty.exists());
    assert!(ended, "alice did not end:\n{}", tmux.screen());
    let after = std::fs::read_to_string(&stty).unwrap();
    assert!(after.starts_with("exit 0") && cooked(&after), "{after}");
}

#[test]
fn a_second_ctrl_c_leaves_the_shell_a_clean_line() {
    common::both(|program| {
        // bob takes the message and never confirms it, so the first Ctrl-C's quit waits.
        let (group, bob) = Group::with_listener(&["alice", "bob"]);
        let holder = thread::spawn(move || bob.accept().map(|(stream, _)| stream));
        let done = group.dir.path().join("done");
        let command = format!(
            "trap : INT; env -u RUST_LOG NO_COLOR=1 {program} --peers {} alice; \
             printf 'shell$ '; touch {}; sleep 60",
            group.table.display(),
            done.display()
        );
        let Some(tmux) = Tmux::start(group.dir.path(), &command) else {
            return;
        };
        tmux.wait_screen("the prompt", |s| s.contains("alice> "));
        tmux.enter("bob/are you there?");
        tmux.wait_screen("the message on its way", |s| s.contains("sending"));
        tmux.type_text("half typed");
        // Ctrl-C makes the terminal drop input not yet read: wait until the program has it.
        tmux.wait_screen("the half-typed line", |s| s.contains("alice> half typed"));
        tmux.keys(&["C-c"]);
        tmux.wait_screen("the quit", |s| s.contains("interrupted"));
        tmux.keys(&["C-c"]);
        assert!(common::wait_until(|| done.exists()), "{}", tmux.screen());
        let screen = tmux.wait_screen("the shell's line", |s| s.contains("shell$"));
        let row = screen.lines().find(|l| l.contains("shell$")).unwrap();
        assert!(
            row.starts_with("shell$"),
            "the input line was left behind: {screen}"
        );
        assert!(screen.contains("half typed  (not sent"), "{screen}");
        drop(holder);
    });
}

#[test]
fn resizing_the_window_redraws_the_line_typed_with_no_stale_copy() {
    common::both(|program| {
        let group = Group::new(&["alice", "bob"]);
        let stty = group.dir.path().join("stty.txt");
        let command = program_command(program, &group, "", &stty);
        let Some(tmux) = Tmux::start(group.dir.path(), &command) else {
            return;
        };
        tmux.wait_screen("the prompt", |s| s.contains("alice> "));
        // About 100 columns: more than 50, less than 120.
        let words: Vec<String> = (0..15).map(|i| format!("word{i}")).collect();
        tmux.type_text(&format!("bob/{}", words.join(" ")));
        tmux.wait_screen("the typed line", |s| input_line(s).ends_with("word14"));
        // Narrower than the line: it is drawn again, scrolled, on one row, and nothing else
        // on the screen shows a piece of it.
        tmux.resize(50);
        let one_row = |s: &str| {
            let rows: Vec<&str> = s.lines().filter(|l| l.contains("word")).collect();
            rows.len() == 1 && rows[0].starts_with("alice> <") && rows[0].ends_with("word14")
        };
        tmux.wait_screen("the line redrawn at 50 columns", one_row);
        // Wider again: the whole line, once.
        tmux.resize(120);
        tmux.wait_screen("the line redrawn at 120 columns", |s| {
            let rows: Vec<&str> = s.lines().filter(|l| l.contains("word")).collect();
            rows.len() == 1 && rows[0].starts_with("alice> bob/word0 ")
        });
    });
}

/// alice in a pane with `extra` options: her "hello" delivered to bob, then bob frozen and
/// "are you frozen?" typed. `None` without tmux.
fn alice_asks_a_frozen_bob(group: &Group, bob: &mut Peer, extra: &str) -> Option<Tmux> {
    let tmux = alice_in_tmux(group, extra)?;
    tmux.enter("bob/hello");
    bob.expect_line("[alice] hello");
    tmux.wait_screen("the echo", |s| s.contains("[you -> bob] hello  delivered"));
    bob.signal("-STOP");
    tmux.enter("bob/are you frozen?");
    Some(tmux)
}

#[test]
fn a_frozen_friend_is_told_once_in_the_echo_of_the_message() {
    let group = Group::new(&["alice", "bob"]);
    let mut bob = group.start("bob", &[]);
    let Some(tmux) = alice_asks_a_frozen_bob(&group, &mut bob, "--ack-timeout 1") else {
        return;
    };
    let screen = tmux.wait_screen("the echo saying so", |s| {
        s.contains("[you -> bob] are you frozen?  waiting (unconfirmed, still trying)")
    });
    // The echo says it: no warning line besides.
    assert!(!screen.contains("has confirmed nothing"), "{screen}");
    bob.signal("-CONT");
    bob.expect_line("[alice] are you frozen?");
    let screen = tmux.wait_screen("the echo updated", |s| {
        s.contains("[you -> bob] are you frozen?  delivered")
    });
    assert!(!screen.contains("has confirmed nothing"), "{screen}");
}

#[test]
fn a_friend_counted_as_not_confirming_who_confirms_after_all_gets_the_echo_printed_again() {
    // bob is the test: he reads alice's message and confirms nothing, so alice counts him as a
    // program that does not confirm; then he confirms it after all.
    let (group, bob) = Group::with_listener(&["alice", "bob"]);
    let Some(tmux) = alice_in_tmux(&group, "--ack-timeout 0.3") else {
        return;
    };
    tmux.enter("bob/hello");
    let (mut raw, _) = bob.accept().expect("alice connects");
    raw.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    let mut frame = [0u8; 12];
    raw.read_exact(&mut frame).expect("alice's frame");
    assert_eq!(&frame, b"alice/hello\n");
    tmux.wait_screen("the echo", |s| {
        s.contains("[you -> bob] hello  sent (no confirmation")
    });
    raw.write_all(&[0]).expect("a confirmation");
    tmux.wait_screen("the echo printed again", |s| {
        s.contains("[you -> bob] hello  delivered")
    });
}

#[test]
fn a_friend_frozen_past_the_give_up_who_resumes_gets_the_echo_printed_again() {
    let group = Group::new(&["alice", "bob"]);
    let mut bob = group.start("bob", &[]);
    let options = "--ack-timeout 1 --give-up 2";
    let Some(tmux) = alice_asks_a_frozen_bob(&group, &mut bob, options) else {
        return;
    };
    tmux.wait_screen("the echo giving up", |s| {
        s.contains("[you -> bob] are you frozen?  may not have arrived")
    });
    bob.signal("-CONT");
    bob.expect_line("[alice] are you frozen?");
    tmux.wait_screen("the echo printed again", |s| {
        s.contains("[you -> bob] are you frozen?  delivered")
    });
}

#[test]
fn quitting_with_friends_offline_says_each_fate_once_in_the_echo() {
    let group = Group::new(&["alice", "bob", "carol"]);
    let stty = group.dir.path().join("stty.txt");
    let command = format!("{}; sleep 60", alice_command(&group, "", &stty));
    let Some(tmux) = Tmux::start(group.dir.path(), &command) else {
        return;
    };
    tmux.wait_screen("the prompt", |s| s.contains("alice> "));
    tmux.enter("*/hi all");
    tmux.wait_screen("the echo", |s| s.contains("hi all  waiting: bob, carol"));
    tmux.keys(&["/quit", "Enter"]);
    assert!(common::wait_until(|| stty.exists()), "{}", tmux.screen());
    let screen = tmux.wait_screen("the last echo", |s| {
        s.contains("hi all  not delivered: bob, carol")
    });
    // The echo says it; no report besides, for either friend.
    assert!(!screen.contains("message(s) to"), "{screen}");
}
