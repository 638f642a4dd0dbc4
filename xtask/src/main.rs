//! Project automation: `cargo xtask <command>`.
//!
//! - `test`: the whole test suite, as CI runs it (format check, clippy with
//!   warnings denied, every unit, integration and doc test, `docs-check`, then `e2e`).
//! - `e2e`: starts real backends as local processes and runs every exporter's
//!   conformance suite against them (`--compose` uses docker-compose.yml instead).
//! - `bench`: the side-by-side comparison (criterion benches, real backends, the
//!   collector role), written to `target/bench/report.md` and `report.json`;
//!   `bench --criterion-only [args]` runs just `cargo bench --workspace`.
//! - `docs-check`: runs every command and config block in README.md and docs/
//!   against the real binary and fails on drift.
//! - `fuzz --seconds N`: every decoder's `fuzz_` property test, with fresh random
//!   inputs, round after round for N seconds (default 60).

mod bench;
mod bench_collector;
mod bench_report;
mod docs_check;
mod e2e;
mod e2e_s3;
mod e2e_secured;
mod fuzz;
mod services;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("e2e") => e2e::run(&root(), &cargo(), args.iter().any(|a| a == "--compose")),
        Some("bench") if args.get(1).map(String::as_str) == Some("--criterion-only") => bench(&args[2..]),
        Some("bench") if args.get(1).map(String::as_str) == Some("--report-only") => bench::report_only(&root()),
        Some("bench") => bench::run(&root(), &cargo(), args.iter().any(|a| a == "--quick")),
        Some("fuzz") => fuzz::run(&cargo(), &args[1..]),
        Some("docs-check") => docs_check::run(&root(), &cargo()),
        Some("help") | Some("--help") | Some("-h") | None => {
            print_help();
            Ok(())
        }
        Some(other) => {
            eprintln!("xtask: unknown command `{other}`\n");
            print_help();
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_help() {
    eprintln!(
        "usage: cargo xtask <command>\n\n\
         commands:\n  \
         test    fmt check + clippy -D warnings + all tests + docs-check + e2e (what CI runs)\n  \
         e2e     real backends as local processes + every exporter's conformance suite\n          \
         (--compose: use docker-compose.yml instead)\n  \
         bench   measure everything side by side -> target/bench/report.md (+ .json);
                 `bench --criterion-only [args]` runs only the criterion benches;
                 `bench --report-only` rewrites report.md from report.json\n  \
         fuzz    every decoder's fuzz_ property test, round after round (--seconds N, default 60)\n  \
         docs-check  every command and config block in README.md and docs/ against the binary"
    );
}

/// Runs one step, printing it and how long it took; fails on a non-zero exit.
pub(crate) fn step(name: &str, program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("==> {name}: {program} {}", args.join(" "));
    let start = Instant::now();
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| format!("{name}: cannot run {program}: {e}"))?;
    eprintln!(
        "<== {name}: {} in {:.1}s",
        if status.success() { "ok" } else { "FAILED" },
        start.elapsed().as_secs_f64()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("{name} failed ({status})"))
    }
}

fn root() -> PathBuf {
    // xtask lives one level below the workspace root.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn test() -> Result<(), String> {
    let cargo = cargo();
    let start = Instant::now();
    step("format", &cargo, &["fmt", "--all", "--check"])?;
    step(
        "clippy",
        &cargo,
        &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"],
    )?;
    // `cargo test` also builds the examples (they are `test = true`); a separate
    // `cargo build` would resolve features differently and build everything twice.
    step("tests", &cargo, &["test", "--workspace"])?;
    eprintln!("==> docs-check");
    docs_check::run(&root(), &cargo)?;
    eprintln!("==> e2e");
    e2e::run(&root(), &cargo, false)?;
    eprintln!("all checks passed in {:.1}s", start.elapsed().as_secs_f64());
    Ok(())
}

fn bench(extra: &[String]) -> Result<(), String> {
    let mut args = vec!["bench", "--workspace"];
    args.extend(extra.iter().map(String::as_str));
    step("bench", &cargo(), &args)
}
