//! `cargo xtask docs-check`: every command and config block in README.md and docs/
//! is run against the real `usage` binary, so the docs cannot drift from it.
//!
//! - `usage ...` (in sh blocks, or as inline code in prose and tables): offline
//!   commands (`schema`, `completions`, `--version`) run for real; the rest are
//!   parsed by the binary's own command line (`--help` appended: an unknown
//!   command, flag or bad value fails), since they need a gateway or a backend.
//! - `cargo run -p usage-cli -- ...` is checked as the `usage` command it runs;
//!   `cargo xtask X` must name a command; `cargo bench -p P --bench B` a bench.
//! - ```toml blocks (not Cargo manifests) go through `usage check`: unknown keys,
//!   bad values and bad `[gateway]` settings fail; healthchecks may fail (no
//!   backends here). Absolute paths are moved under a scratch dir, `env` secrets
//!   get placeholder values and `file` secrets and TLS files placeholder files.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `cargo xtask` commands the docs may name.
const XTASK_COMMANDS: [&str; 6] = ["test", "e2e", "bench", "fuzz", "docs-check", "help"];
/// `usage` subcommands that need nothing running and are run for real.
const RUN_FOR_REAL: [&str; 3] = ["schema", "completions", "--version"];

/// One thing the docs show.
struct Snippet {
    place: String,
    text: String,
    toml: bool,
}

pub fn run(root: &Path, cargo: &str) -> Result<(), String> {
    // The same build selection as the tests: a no-op after them.
    crate::services::run(cargo, &["test", "--workspace", "--no-run", "--quiet"])?;
    let usage = root.join("target/debug/usage");
    let scratch = root.join("target/docs-check");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .map_err(|e| format!("docs/: {e}"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut snippets = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let name = f.strip_prefix(root).unwrap_or(f).display().to_string();
        collect(&name, &text, &mut snippets);
    }
    let (mut checked, mut failures, mut seen) = (0, Vec::new(), HashSet::new());
    for (i, s) in snippets.iter().enumerate() {
        if !seen.insert((s.text.clone(), s.toml)) {
            continue; // the same command documented twice is checked once
        }
        let outcome = if s.toml {
            check_toml(&usage, &scratch.join(format!("block-{i}")), &s.text)
        } else {
            check_command(root, &usage, &scratch, &s.text)
        };
        match outcome {
            Ok(None) => {}
            Ok(Some(how)) => {
                checked += 1;
                eprintln!("  ok    {:<28} {how}: {}", s.place, first_line(&s.text));
            }
            Err(why) => {
                eprintln!("  DRIFT {:<28} {}\n        {why}", s.place, first_line(&s.text));
                failures.push(s.place.clone());
            }
        }
    }
    eprintln!(
        "docs-check: {checked} documented commands and config blocks checked, {} drifted",
        failures.len()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("the docs drifted from the binary at {}", failures.join(", ")))
    }
}

fn first_line(text: &str) -> &str {
    text.lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .unwrap_or("")
}

/// Commands in shell blocks and inline code, and TOML blocks, with their place.
fn collect(file: &str, text: &str, out: &mut Vec<Snippet>) {
    let lines: Vec<&str> = text.lines().collect();
    // Prose is read a paragraph at a time: a code span may wrap onto the next line.
    let mut paragraph: (usize, String) = (0, String::new());
    let mut i = 0;
    while i < lines.len() {
        let Some(tag) = lines[i].trim_start().strip_prefix("```") else {
            if lines[i].trim().is_empty() || lines[i].starts_with('|') {
                prose(file, &mut paragraph, out);
            }
            if paragraph.1.is_empty() {
                paragraph.0 = i + 1;
            }
            paragraph.1.push_str(lines[i]);
            paragraph.1.push(' ');
            if lines[i].starts_with('|') {
                prose(file, &mut paragraph, out); // a table row stands alone
            }
            i += 1;
            continue;
        };
        prose(file, &mut paragraph, out);
        let start = i + 1;
        let mut end = start;
        while end < lines.len() && !lines[end].trim_start().starts_with("```") {
            end += 1;
        }
        let body = &lines[start..end.min(lines.len())];
        let place = format!("{file}:{}", start);
        match tag.trim() {
            "toml" if !body.iter().any(|l| l.trim() == "[dependencies]") => {
                out.push(Snippet {
                    place,
                    text: body.join("\n"),
                    toml: true,
                });
            }
            "sh" | "bash" | "console" | "shell" => {
                for command in shell_lines(body) {
                    if is_command(&command) {
                        out.push(Snippet {
                            place: place.clone(),
                            text: command,
                            toml: false,
                        });
                    }
                }
            }
            _ => {}
        }
        i = end + 1;
    }
    prose(file, &mut paragraph, out);
}

/// The commands among a paragraph's code spans; empties the paragraph.
fn prose(file: &str, paragraph: &mut (usize, String), out: &mut Vec<Snippet>) {
    let text = std::mem::take(&mut paragraph.1);
    for code in inline_code(&text) {
        let code = code.split_whitespace().collect::<Vec<_>>().join(" ");
        if is_command(&code) {
            out.push(Snippet {
                place: format!("{file}:{}", paragraph.0),
                text: code,
                toml: false,
            });
        }
    }
}

/// The `code` spans of prose.
fn inline_code(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

fn is_command(text: &str) -> bool {
    let t = text.trim_start_matches("$ ");
    ["usage ", "cargo xtask ", "cargo bench ", "cargo run "]
        .iter()
        .any(|p| t.starts_with(p))
}

/// A block's commands: continuation lines joined, `$ ` prompts and comments
/// dropped, `&&` and `|` splitting one line into several commands.
fn shell_lines(body: &[&str]) -> Vec<String> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in body {
        let line = line.trim();
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        joined.push(std::mem::take(&mut current));
    }
    let mut out = Vec::new();
    for line in joined {
        let line = match line.find(" #") {
            Some(i) => &line[..i],
            None => line.as_str(),
        };
        for part in line.split("&&").flat_map(|p| p.split('|')) {
            let part = part.trim().trim_start_matches("$ ").trim();
            if !part.is_empty() && !part.starts_with('#') {
                out.push(part.to_string());
            }
        }
    }
    out
}

/// Words as a shell splits them (quotes, no expansion); redirections dropped.
fn words(command: &str) -> Vec<String> {
    let (mut out, mut word, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in command.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                any = false;
            }
            (None, c) => word.push(c),
        }
    }
    if any || !word.is_empty() {
        out.push(word);
    }
    let mut kept = Vec::new();
    let mut skip_next = false;
    for w in out {
        if skip_next {
            skip_next = false;
        } else if w == ">" || w == "2>" || w == "<" {
            skip_next = true;
        } else if !(w.starts_with('>') || w.starts_with("2>")) {
            kept.push(w);
        }
    }
    kept
}

/// `Ok(Some(how))` checked, `Ok(None)` not ours to check, `Err` drift.
fn check_command(root: &Path, usage: &Path, scratch: &Path, command: &str) -> Result<Option<String>, String> {
    let w = words(command.trim_start_matches("$ "));
    match (w.first().map(String::as_str), w.get(1).map(String::as_str)) {
        (Some("usage"), _) => check_usage(usage, scratch, &w[1..]).map(Some),
        (Some("cargo"), Some("run")) => match w.iter().position(|x| x == "--") {
            Some(i) if w.iter().any(|x| x == "usage-cli") => check_usage(usage, scratch, &w[i + 1..]).map(Some),
            _ => Ok(None),
        },
        (Some("cargo"), Some("xtask")) => {
            let task = w.get(2).map(String::as_str).unwrap_or("help");
            if XTASK_COMMANDS.contains(&task) {
                Ok(Some("xtask command exists".into()))
            } else {
                Err(format!(
                    "`cargo xtask {task}`: no such command (have {})",
                    XTASK_COMMANDS.join(", ")
                ))
            }
        }
        (Some("cargo"), Some("bench")) => check_bench(root, &w).map(Some),
        _ => Ok(None),
    }
}

fn check_usage(usage: &Path, scratch: &Path, args: &[String]) -> Result<String, String> {
    let real = args.first().is_some_and(|a| RUN_FOR_REAL.contains(&a.as_str()));
    let mut cmd = Command::new(usage);
    cmd.args(args).current_dir(scratch).env_remove("USAGE_CONFIG");
    if !real {
        cmd.arg("--help");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", usage.display()))?;
    if out.status.success() {
        Ok(if real { "ran" } else { "parsed" }.into())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().replace('\n', "\n        "))
    }
}

/// `cargo bench -p P --bench B`: crate P has a bench target B.
fn check_bench(root: &Path, w: &[String]) -> Result<String, String> {
    let after = |flag: &str| w.iter().position(|x| x == flag).and_then(|i| w.get(i + 1));
    let (Some(package), Some(bench)) = (after("-p"), after("--bench")) else {
        return Ok("cargo bench (whole workspace)".into());
    };
    for dir in ["crates", "exporters"] {
        let manifest = root.join(dir).join(package).join("Cargo.toml");
        if let Ok(text) = std::fs::read_to_string(&manifest) {
            let declared = text.contains(&format!("name = \"{bench}\""));
            let file = root.join(dir).join(package).join("benches").join(format!("{bench}.rs"));
            return if declared && file.exists() {
                Ok("bench exists".into())
            } else {
                Err(format!("{package} has no bench `{bench}`"))
            };
        }
    }
    Err(format!("no crate `{package}` under crates/ or exporters/"))
}

/// A config block through `usage check`; exit 2 (bad config) is drift.
fn check_toml(usage: &Path, dir: &Path, block: &str) -> Result<Option<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let fs_root = dir.join("fs");
    // Absolute paths (spools, secrets, certificates) move into the scratch dir.
    let text = block.replace("\"/", &format!("\"{}/", fs_root.display()));
    let mut envs = Vec::new();
    for (key, value) in quoted_values(&text) {
        match key.as_str() {
            "env" => envs.push((value, "docs-check-placeholder".to_string())),
            "file" | "ca" | "cert" | "key" if value.starts_with('/') => placeholder_file(&key, Path::new(&value))?,
            _ => {}
        }
    }
    let config = dir.join("usage.toml");
    std::fs::write(&config, &text).map_err(|e| e.to_string())?;
    let out = Command::new(usage)
        .args(["check", "--timeout", "300ms", "--config"])
        .arg(&config)
        .current_dir(dir)
        .env_remove("USAGE_CONFIG")
        .envs(envs)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", usage.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match out.status.code() {
        Some(0) => Ok(Some("usage check: ok".into())),
        // Only the healthchecks failed: the config itself is right.
        Some(1) if stdout.contains("\nhealthchecks:") => Ok(Some("usage check: config ok".into())),
        _ => Err(String::from_utf8_lossy(&out.stderr).trim().replace('\n', "\n        ")),
    }
}

/// `key = "value"` pairs anywhere in a block (inline tables included).
fn quoted_values(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in text.split(['{', ',', '\n']) {
        if let Some((k, v)) = part.split_once('=') {
            let v = v.trim().trim_end_matches('}').trim();
            if let Some(v) = v.strip_prefix('"').and_then(|v| v.split('"').next()) {
                out.push((k.trim().trim_matches('"').to_string(), v.to_string()));
            }
        }
    }
    out
}

/// A secret file, or a certificate and key pair that loads (self-signed).
fn placeholder_file(key: &str, path: &Path) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    if key == "file" {
        return std::fs::write(path, "docs-check-placeholder").map_err(|e| e.to_string());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let (cert, private) = (dir.join("docs-check.crt"), dir.join("docs-check.key"));
    if !cert.exists() {
        crate::services::self_signed("docs-check", &private, &cert)?;
    }
    let from = if key == "key" { &private } else { &cert };
    std::fs::copy(from, path).map(|_| ()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_found_in_blocks_and_prose() {
        let mut s = Vec::new();
        collect(
            "x.md",
            "Run `usage top --admin a:1` or `ls`.\n```sh\nusage spool inspect /s   # look\ncargo build && \\\n  cargo xtask e2e\n```\n```toml\n[spool]\n```\n",
            &mut s,
        );
        let texts: Vec<&str> = s.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "usage top --admin a:1",
                "usage spool inspect /s",
                "cargo xtask e2e",
                "[spool]"
            ]
        );
        assert!(s[3].toml);
    }

    #[test]
    fn words_split_like_a_shell_without_redirections() {
        assert_eq!(
            words("usage completions bash > /etc/x 'a b' \"\""),
            ["usage", "completions", "bash", "a b", ""]
        );
    }

    #[test]
    fn secrets_and_paths_are_found_in_inline_tables() {
        let v = quoted_values("password = { env = \"P\" }\ntls = { ca = \"/c.pem\", key = \"/k\" }");
        assert_eq!(
            v,
            [
                ("env".to_string(), "P".to_string()),
                ("ca".to_string(), "/c.pem".to_string()),
                ("key".to_string(), "/k".to_string())
            ]
        );
    }
}
