//! The `usage` binary as an operator runs it for months (issue 22): misspelt
//! config, logs, signals, completions, pacing, progress, what `check` says.

mod common;

use common::{text, usage, usage_cmd, usage_env};
use std::process::Command;

/// Issue 22: a misspelt key is an error even in a switched-off exporter, with the
/// key it probably meant; a misspelt USAGE_ section too.
#[test]
fn misspelt_keys_fail_check_with_a_suggestion_even_when_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("usage.toml"),
        "[exporters.local]\ntype = \"file\"\n[exporters.later]\ntype = \"kafka\"\nenabled = false\nbrokers = \"b:9092\"\ncompresion = \"lz4\"\n",
    )
    .unwrap();
    let o = usage(dir.path(), &["check"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(err.contains("exporters.later") && err.contains("compresion"), "{err}");
    assert!(err.contains("did you mean `compression`?"), "{err}");
    std::fs::write(dir.path().join("usage.toml"), "[exporters.local]\ntype = \"fiel\"\n").unwrap();
    let (out, err) = text(&usage(dir.path(), &["check"]));
    assert!(err.contains("did you mean `file`?"), "{out}{err}");
    std::fs::write(dir.path().join("usage.toml"), "[exporters.local]\ntype = \"file\"\n").unwrap();
    let o = usage_env(dir.path(), &["check"], &[("USAGE_PIPELNE__QUEUE_CAPACITY", "10")]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(
        err.contains("USAGE_PIPELNE__QUEUE_CAPACITY") && err.contains("did you mean `pipeline`?"),
        "{err}"
    ); // `[gateway]` is checked by `usage check` too, not only when the gateway starts.
    std::fs::write(
        dir.path().join("usage.toml"),
        "[gateway]\nadmin_lisen = \"127.0.0.1:9\"\n",
    )
    .unwrap();
    let o = usage(dir.path(), &["check"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(
        err.contains("gateway.admin_lisen") && err.contains("did you mean `admin_listen`?"),
        "{err}"
    );
    std::fs::write(dir.path().join("usage.toml"), "[gateway]\notlp_grpc = true\n").unwrap();
    let (out, _) = text(&usage(dir.path(), &["check", "--timeout", "1s"]));
    assert!(
        out.contains("gateway: ok (ingest on 127.0.0.1:8080, OTLP/gRPC on 127.0.0.1:4317"),
        "{out}"
    );
}

/// Issue 22: RUST_LOG / USAGE_LOG pick what is logged, JSON lines on request, no
/// colour codes when stderr is not a terminal, and a bad filter is a usage error.
#[test]
fn logs_follow_rust_log_and_usage_log_without_colour_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    // An http exporter without a key is off by default, which is said at WARN.
    std::fs::write(
        dir.path().join("usage.toml"),
        "[exporters.local]\ntype = \"file\"\n[exporters.api]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/v1/metrics\"\n",
    )
    .unwrap();
    let run = |env: &[(&str, &str)]| usage_env(dir.path(), &["check", "--timeout", "1s"], env);
    let said = "exporter off: a key it needs is missing";
    let (_, default) = text(&run(&[]));
    assert!(
        default.contains(said) && default.contains("api"),
        "warn by default: {default}"
    );
    assert!(
        !default.contains('\u{1b}'),
        "no colour codes off a terminal: {default:?}"
    );
    let (_, quiet) = text(&run(&[("USAGE_LOG", "error")]));
    assert!(!quiet.contains(said), "{quiet}");
    let (_, warn) = text(&run(&[("RUST_LOG", "warn"), ("USAGE_LOG", "error")]));
    assert!(warn.contains(said), "RUST_LOG wins: {warn}");
    let (_, json) = text(&run(&[("USAGE_LOG_FORMAT", "json")]));
    let line = json
        .lines()
        .find(|l| l.contains(said))
        .unwrap_or_else(|| panic!("{json}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], "WARN", "{line}");
    let o = run(&[("RUST_LOG", "usage_core=loud")]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("RUST_LOG"), "{err}");
}

/// Issue 22: `-c/--config` before or after the command, shell completions, and a
/// top-level help that lists every command and the exit codes.
#[test]
fn global_config_flag_completions_and_help() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine.toml"), "[exporters.local]\ntype = \"file\"\n").unwrap();
    for args in [
        &["-c", "mine.toml", "check"][..],
        &["check", "--config", "mine.toml"][..],
    ] {
        let o = usage(dir.path(), args);
        let (out, err) = text(&o);
        assert!(o.status.success(), "{args:?}: {out}{err}");
        assert!(out.contains("local        type file"), "{args:?}: {out}");
    }
    let o = usage(dir.path(), &["completions", "bash"]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(
        out.contains("_usage()") && out.contains("gateway") && out.contains("--config"),
        "{out}"
    );
    let (out, _) = text(&usage(dir.path(), &["completions", "zsh"]));
    assert!(out.starts_with("#compdef usage"), "{out}");
    let (help, _) = text(&usage(dir.path(), &["--help"]));
    for command in [
        "gateway",
        "check",
        "report",
        "pump",
        "spool",
        "rejected",
        "schema",
        "demo",
        "completions",
    ] {
        assert!(help.contains(command), "{command} in: {help}");
    }
    assert!(
        help.contains("Exit codes: 0 done, 1 failed") && help.contains("-c, --config"),
        "{help}"
    );
}

/// Issue 22: pump paces itself to the slowest queue, the exporter's included (it
/// used to watch only the ingest queue and overflowed the file exporter's).
#[test]
fn pump_paces_itself_to_the_exporter_queue_and_drops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("usage.toml"),
        "[pipeline]\nqueue_capacity = 50000\n[exporters.local]\ntype = \"file\"\nqueue_max_events = 2000\nbatch_max_events = 500\n",
    )
    .unwrap();
    let o = usage(dir.path(), &["pump", "--count", "30000", "--json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["exporters"][0]["delivered"], 30000, "{out}");
    assert_eq!(v["exporters"][0]["dropped"], 0, "{out}");
}

/// Runs `usage` in `dir`, waits until `started` holds, sends `signal`, and returns
/// its exit status with stdout and stderr.
fn signalled(mut cmd: Command, started: impl Fn() -> bool, signal: &str) -> (std::process::ExitStatus, String, String) {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !started() {
        assert!(std::time::Instant::now() < end, "it never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status, text(&out.stdout), text(&out.stderr))
}

/// Issue 22: SIGTERM (or Ctrl-C) stops pump emitting; it drains and prints the same
/// report as a normal end, with every emitted event delivered.
#[test]
fn pump_stops_on_sigterm_drains_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let ids = dir.path().join("ids.txt");
    let mut cmd = usage_cmd(
        dir.path(),
        &["pump", "--count", "100000000", "--rate", "5000", "--json", "--ids"],
    );
    cmd.arg(&ids);
    // Running once ids reach the file (its buffer flushed at least once).
    let (status, stdout, stderr) = signalled(cmd, || std::fs::metadata(&ids).map_or(0, |m| m.len()) > 0, "-TERM");
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["interrupted"], true, "{stdout}");
    let sent = v["sent"].as_u64().unwrap();
    assert!(sent > 0 && sent < 100_000_000, "{stdout}");
    assert_eq!(v["exporters"][0]["delivered"].as_u64(), Some(sent), "{stdout}");
    assert_eq!(v["exporters"][0]["dropped"], 0, "{stdout}");
}

#[test]
fn demo_stops_on_sigterm_and_prints_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = usage_cmd(
        dir.path(),
        &["demo", "--seconds", "600", "--threads", "1", "--rate", "2000"],
    );
    // Running once the file exporter has written its first part.
    let data = dir.path().join("usage-data");
    let (status, stdout, stderr) = signalled(cmd, || data.exists(), "-INT");
    assert!(status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("emitted ") && stdout.contains("(0 dropped at ingest)"),
        "{stdout}"
    );
    assert!(stdout.contains("delivered"), "the exporter table: {stdout}");
}

/// Issue 22: an exporter's queue drops are logged at WARN, rate-limited: one line
/// for many drops within 10 s.
#[test]
fn exporter_queue_drops_are_warned_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("usage.toml"),
        "[exporters.local]\ntype = \"file\"\nqueue_max_events = 100\nbatch_max_events = 50\nflush_interval = \"200ms\"\n",
    )
    .unwrap();
    let o = usage(dir.path(), &["demo", "--seconds", "2", "--threads", "1", "--rate", "0"]);
    let (out, err) = text(&o);
    let warned = err
        .lines()
        .filter(|l| l.contains("exporter queue full: events DROPPED"))
        .count();
    assert_eq!(warned, 1, "one line for the interval: {err}");
    assert!(err.contains("WARN"), "{err}");
    // Many drops behind that one line.
    let dropped: u64 = out
        .lines()
        .find(|l| l.starts_with("local "))
        .and_then(|l| l.split_whitespace().nth(6))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(dropped > 100, "{out}");
}

/// Issue 22: `report` shows its progress (on a terminal, or with USAGE_PROGRESS=1).
#[test]
fn report_shows_progress_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let o = usage(dir.path(), &["pump", "--count", "5000"]);
    assert!(o.status.success(), "{:?}", text(&o));
    let o = usage_env(dir.path(), &["report"], &[("USAGE_PROGRESS", "1")]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(err.contains("parts, 5000 events"), "{err}");
    // Without it (stderr is not a terminal here): no progress line.
    let (_, err) = text(&usage(dir.path(), &["report"]));
    assert!(!err.contains("parts,"), "{err}");
}

/// Issue 22: `usage check` says which file and which variables it used (names,
/// never values), and which exporter keys came from the environment.
#[test]
fn check_names_the_file_and_the_variables_it_used() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine.toml"), "[exporters.local]\ntype = \"file\"\n").unwrap();
    let o = usage_env(
        dir.path(),
        &["check", "-c", "mine.toml"],
        &[
            ("USAGE_EXPORTERS__LOCAL__COMPRESSION", "gzip"),
            ("USAGE_PIPELINE__SERVICE_NAME", "secret-looking-value"),
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("file: mine.toml (--config)"), "{out}");
    assert!(
        out.contains("environment: USAGE_EXPORTERS__LOCAL__COMPRESSION, USAGE_PIPELINE__SERVICE_NAME"),
        "{out}"
    );
    assert!(out.contains("from the environment: compression"), "{out}");
    assert!(!out.contains("secret-looking-value"), "values are not printed: {out}");
    let (out, _) = text(&usage(dir.path(), &["check"]));
    assert!(out.contains("file: none (defaults"), "{out}");
}
