//! `cargo xtask fuzz --seconds N`: every decoder's `fuzz_` property test (JSON
//! events, `/v1/metrics` bodies, OTLP protobuf and JSON, the spool reader, config)
//! run again and again with fresh random inputs until the time is up. Failures
//! are kept by proptest under `proptest-regressions/` and replayed by `cargo test`.
//!
//! A coverage-guided fuzzer would find more per second; on stable Rust here
//! cargo-fuzz cannot build (it needs nightly sanitizer flags) and cargo-afl needs
//! AFL++ built with its LLVM plugin, so these are long property runs instead.

use std::process::Command;
use std::time::{Duration, Instant};

/// The crates whose tests have `fuzz_` targets.
const CRATES: [&str; 3] = ["usage-core", "usage-otlp-proto", "usage-gateway"];
/// Cases per target per round: a round takes seconds, so the deadline is kept.
const CASES_PER_ROUND: u32 = 2_000;

pub(crate) fn run(cargo: &str, args: &[String]) -> Result<(), String> {
    let seconds: u64 = match args.iter().position(|a| a == "--seconds") {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or("--seconds takes a number of seconds")?,
        None => 60,
    };
    let mut test_args = vec!["test".to_string()];
    for c in CRATES {
        test_args.extend(["-p".to_string(), c.to_string()]);
    }
    // Built once, before the clock starts.
    let mut build = test_args.clone();
    build.push("--no-run".into());
    crate::step(
        "fuzz build",
        cargo,
        &build.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    test_args.extend([
        "fuzz_".to_string(),
        "--".to_string(),
        "--test-threads".to_string(),
        "2".to_string(),
    ]);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut rounds = 0u32;
    while Instant::now() < deadline {
        rounds += 1;
        let status = Command::new(cargo)
            .args(&test_args)
            .env("USAGE_FUZZ_CASES", CASES_PER_ROUND.to_string())
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("cannot run {cargo}: {e}"))?;
        if !status.success() {
            return Err(format!(
                "fuzz round {rounds} found a failing input (run `cargo test fuzz_` to replay it from proptest-regressions/)"
            ));
        }
    }
    eprintln!("fuzz: {rounds} rounds of {CASES_PER_ROUND} cases per target, no failure, in {seconds}s");
    Ok(())
}
