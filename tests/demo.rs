//! Black-box tests of `p2p-chat-demo`: the real demo driver runs the real p2p-chat on a fresh
//! peer table of five free loopback ports, in a fresh directory, under a deadline. The names are
//! not the usual alice and bob, so a demo that hard-coded them would fail.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

mod common;

use common::{Peer, TempDir, free_ports, reserve_ports};

const DEMO: &str = env!("CARGO_BIN_EXE_p2p-chat-demo");
const CHAT: &str = env!("CARGO_BIN_EXE_p2p-chat");
const NAMES: [&str; 5] = ["ann", "ben", "cat", "dan", "eva"];

/// Writes a peer table of `NAMES` on `ports` in `dir`; returns its path.
fn write_table(dir: &TempDir, ports: &[u16]) -> PathBuf {
    common::write_table(dir, &NAMES, ports)
}

struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs the demo with `args` in `dir`; the shared [`Peer`] reads its output on other threads, so
/// it never blocks on a full pipe, and kills it if the test fails. Fails the test if it runs past
/// `timeout`.
fn run_demo(dir: &TempDir, args: &[&str], envs: &[(&str, &str)], timeout: Duration) -> Outcome {
    let mut command = Command::new(DEMO);
    command.env_remove("RUST_LOG");
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut demo = Peer::spawn_command(command, args, dir.path(), Stdio::null());
    let status = demo.wait_exit_within(timeout);
    Outcome {
        status,
        stdout: demo.out_seen.join("\n"),
        stderr: demo.err_seen.join("\n"),
    }
}

/// The scripted demo, fast (50 ms between steps, a 0.5 s idle timeout), on a fresh table of
/// `ports`, with `extra` options.
fn run_script(dir: &TempDir, ports: &[u16], extra: &[&str]) -> Outcome {
    let table = write_table(dir, ports);
    let table = table.to_str().unwrap();
    let mut args = vec![
        "--peers",
        table,
        "--chat-bin",
        CHAT,
        "--pace",
        "50",
        "--idle-timeout",
        "0.5",
    ];
    args.extend_from_slice(extra);
    run_demo(dir, &args, &[], Duration::from_secs(60))
}

#[test]
fn the_scripted_demo_passes_its_own_checks_on_any_table_of_five() {
    let dir = TempDir::new();
    let ports = free_ports(NAMES.len());
    let out = run_script(&dir, &ports, &[]);
    let all = format!("stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(out.status.success(), "exit {:?}\n{all}", out.status);
    for key in [
        "ben stdout [ann] hi ben, are you coming to the demo tonight?",
        "ann stdout [ann] note to self: bring snacks",
        "ann stdout [eva] hello everyone, see you at 8!",
        "dan stdout [eva] hello everyone, see you at 8!",
        "cat stderr cat (you)",
        "dan stderr error: unknown friend \"zed\"",
        "ann stderr INFO  [dispatcher] closing idle connection to ben after 0.5 s",
        "ben stdout [ann] still there, ben? this one goes over a new connection",
        "eva exit   exited with status 0",
        "ben stderr WARN  [dispatcher] 1 message(s) to eva (127.0.0.1:",
        "eva stdout [ben] did you get home safely?",
        "demo passed: all checks passed",
    ] {
        assert!(out.stdout.contains(key), "missing {key:?}\n{all}");
    }
    // With colors off (stdout is a pipe), no escape sequences reach the transcript.
    assert!(!out.stdout.contains('\x1b'), "{all}");
    // The departed friend's port is free again: nothing the demo started is still running.
    for port in ports {
        assert!(
            TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} still taken"
        );
    }
}

#[test]
fn a_sign_that_does_not_come_ends_the_demo_naming_it() {
    // Stand-ins for both programs that start and listen, as far as their log says, and then
    // show nothing: the first message is never shown, and the demo must say so and fail.
    let dir = TempDir::new();
    let table = write_table(&dir, &free_ports(NAMES.len()));
    let mute = "#!/bin/sh\nfor name; do :; done\necho \"$name listening on nowhere\" >&2\nexec cat >/dev/null\n";
    for program in ["p2p-chat", "p2p-chat-select"] {
        let path = dir.write(program, mute);
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let chat = dir.path().join("p2p-chat");
    let args = [
        "--peers",
        table.to_str().unwrap(),
        "--chat-bin",
        chat.to_str().unwrap(),
        "--pace",
        "0",
    ];
    let out = run_demo(&dir, &args, &[], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}\n{}", out.stdout, out.stderr);
    let wanted = "gave up after 5.0 s waiting for ben to show \"[ann] hi ben, are you coming";
    assert!(out.stderr.contains(wanted), "{}", out.stderr);
    assert!(!out.stdout.contains("demo passed"), "{}", out.stdout);
}

#[test]
fn a_taken_port_is_named_and_nothing_starts() {
    let dir = TempDir::new();
    // The listener that reserved cat's port keeps it taken: binding the port again here could
    // race with anything else on the machine.
    let mut reserved = reserve_ports(NAMES.len());
    let ports: Vec<u16> = reserved
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    let table = write_table(&dir, &ports);
    let squatter = reserved.swap_remove(2);
    drop(reserved);
    let args = ["--peers", table.to_str().unwrap(), "--chat-bin", CHAT];
    let out = run_demo(&dir, &args, &[], Duration::from_secs(20));
    drop(squatter);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    let wanted = format!(
        "cannot listen on 127.0.0.1:{} for cat: the port is already in use",
        ports[2]
    );
    assert!(out.stderr.contains(&wanted), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn usage_errors_exit_2_with_one_line_and_help_lists_the_options() {
    let dir = TempDir::new();
    let out = run_demo(&dir, &["--pace", "soon"], &[], Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("--pace \"soon\""), "{}", out.stderr);

    let out = run_demo(&dir, &["--help"], &[], Duration::from_secs(20));
    assert!(out.status.success());
    for option in [
        "--peers",
        "--chat-bin",
        "--idle-timeout",
        "--pace",
        "--tmux",
    ] {
        assert!(out.stdout.contains(option), "{option} missing from --help");
    }

    // Too small a table is a table error, exit 2.
    std::fs::write(
        dir.path().join("peers.txt"),
        "ann 127.0.0.1 1\nben 127.0.0.1 2\n",
    )
    .unwrap();
    let out = run_demo(&dir, &["--chat-bin", CHAT], &[], Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("needs from 5"), "{}", out.stderr);
}

#[test]
fn tmux_missing_says_how_to_install_it() {
    let dir = TempDir::new();
    let table = write_table(&dir, &free_ports(NAMES.len()));
    // An empty PATH: no tmux to be found.
    let empty = dir.path().join("empty-path");
    std::fs::create_dir_all(&empty).unwrap();
    let args = [
        "--tmux",
        "--peers",
        table.to_str().unwrap(),
        "--chat-bin",
        CHAT,
    ];
    let out = run_demo(
        &dir,
        &args,
        &[("PATH", empty.to_str().unwrap())],
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("tmux is not installed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("apt-get install tmux"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("brew install tmux"), "{}", out.stderr);
}

#[test]
fn demo_tmux_inside_a_tmux_session_with_no_client_attached_succeeds_and_says_how_to_attach() {
    let dir = TempDir::new();
    let table = write_table(&dir, &free_ports(NAMES.len()));
    let done = dir.path().join("done");
    // The demo runs in a pane of a detached session: a terminal, inside tmux, and no client.
    let status = dir.path().join("status");
    let script = format!(
        "{DEMO} --tmux --peers {} --chat-bin {CHAT}; echo \"exit $?\" > {status}; touch {done}; \
         sleep 60",
        table.display(),
        status = status.display(),
        done = done.display()
    );
    let session = [
        "-s",
        "outer",
        // tmux names a window after the program in it: the demo's own window is called so too.
        "-n",
        "p2p-chat-demo",
        "-x",
        "160",
        "-y",
        "48",
        &script,
    ];
    let Some(server) = common::tmux::TmuxServer::start(dir.path(), &session) else {
        return;
    };
    assert!(common::wait_until(|| done.exists()), "the demo did not end");
    let screen = server
        .run(&["capture-pane", "-p", "-t", "=outer:"])
        .unwrap();
    let screen = String::from_utf8_lossy(&screen.stdout).to_string();
    let status = std::fs::read_to_string(&status).unwrap();
    assert_eq!(
        status, "exit 0\n",
        "the demo failed; its pane showed:\n{screen}"
    );
    assert!(screen.contains("tmux attach -t p2p-chat-demo"), "{screen}");
    // The session it made is there, with a pane for each friend, and the window it was started
    // from was left alone.
    let panes = |target: &str| {
        let listed = server.run(&["list-panes", "-t", target]).unwrap();
        String::from_utf8_lossy(&listed.stdout).lines().count()
    };
    assert_eq!(panes("=p2p-chat-demo:"), NAMES.len());
    assert_eq!(panes("=outer:"), 1, "{screen}");
}

#[test]
fn the_timeline_has_a_lane_per_peer_an_arrow_per_message_and_a_bar_per_connection() {
    let dir = TempDir::new();
    let svg = dir.path().join("timeline.svg");
    let ports = free_ports(NAMES.len());
    let out = run_script(&dir, &ports, &["--timeline", svg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", out.stderr);
    assert!(
        out.stdout.contains("the run as a sequence diagram: "),
        "{}",
        out.stdout
    );
    let text = std::fs::read_to_string(&svg).expect("the diagram");
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let class = |name: &str| {
        doc.descendants()
            .filter(|n| n.attribute("class") == Some(name))
            .count()
    };
    // What the transcript shows: the messages typed (a broadcast is one per other peer), and
    // the connections the senders logged as opened.
    let mut messages = 0;
    let mut connections = 0;
    for line in out.stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() > 3 && words[2] == "stdin" {
            match words[3].split_once('/') {
                Some(("*", _)) => messages += NAMES.len() - 1,
                Some((to, _)) if NAMES.contains(&to) => messages += 1,
                _ => {}
            }
        }
        let opened = NAMES
            .iter()
            .any(|n| line.contains(&format!("connected to {n} (")));
        if words.get(2) == Some(&"stderr") && opened {
            connections += 1;
        }
    }
    assert_eq!(class("lane"), NAMES.len(), "{text}");
    assert!(messages >= 8, "{}", out.stdout);
    assert_eq!(class("message"), messages, "{text}");
    assert!(connections >= 6, "{}", out.stdout);
    assert_eq!(class("connection"), connections, "{text}");
    // dave runs the poll loop, and his lane says so; every message has its fate.
    assert!(text.contains("dan (poll loop)"), "{text}");
    let fated = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("message"))
        .all(|n| n.attribute("data-fate").is_some());
    assert!(fated);
}
