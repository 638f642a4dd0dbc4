//! `usage schema`: the kinds linked into this binary and their fields.

use crate::{Failure, Outcome};
use usage_core::{registered_kinds, Schema};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Only this kind.
    #[arg(long)]
    kind: Option<String>,
}

fn kinds(only: Option<&str>) -> Result<Vec<&'static Schema>, Failure> {
    let all = registered_kinds();
    match only {
        None => Ok(all),
        Some(k) => match all.iter().find(|s| s.kind == k) {
            Some(s) => Ok(vec![*s]),
            None => Err(Failure::Usage(format!(
                "unknown kind `{k}`; known kinds: {}",
                all.iter().map(|s| s.kind.to_string()).collect::<Vec<_>>().join(", ")
            ))),
        },
    }
}

pub(crate) fn run(args: Args) -> Outcome {
    for s in kinds(args.kind.as_deref())? {
        println!("{}", s.kind);
        println!("  {:<28} string (UUIDv7)", "id");
        println!("  {:<28} timestamp (RFC 3339, UTC, microseconds)", "ts");
        for f in s.fields.iter() {
            println!(
                "  {:<28} {}{}",
                f.name,
                f.ty,
                if f.nullable { " (nullable)" } else { "" }
            );
        }
        println!();
    }
    Ok(())
}
