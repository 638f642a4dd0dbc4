//! `usage schema`: the kinds linked into this binary, their fields, and DDL.

use crate::{Failure, Outcome};
use usage_core::{registered_kinds, Schema};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// What to print: `fields` (default), `athena` or `clickhouse`.
    #[arg(default_value = "fields")]
    format: String,
    /// Only this kind.
    #[arg(long)]
    kind: Option<String>,
    /// For `athena`: the table's S3 location, e.g. s3://bucket/relay_usage.
    #[arg(long)]
    location: Option<String>,
    /// For `athena` and `clickhouse`: the table name (default: the kind).
    #[arg(long)]
    table: Option<String>,
    /// For `clickhouse`: the database (default `default`).
    #[arg(long, default_value = "default")]
    database: String,
    /// For `clickhouse`: the DDL for servers before 22.3 (e.g. 18.16).
    #[arg(long)]
    legacy: bool,
    /// For `clickhouse`: the DDL for a cluster (`ON CLUSTER`, replicated tables and a
    /// `Distributed` table), as the exporter runs it with `cluster = "NAME"`.
    #[arg(long)]
    cluster: Option<String>,
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
    match args.format.as_str() {
        "fields" => {
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
        "athena" => athena(&args),
        "clickhouse" => clickhouse(&args),
        other => Err(Failure::Usage(format!(
            "unknown schema format `{other}`; use fields, athena or clickhouse"
        ))),
    }
}

#[cfg(feature = "s3")]
fn athena(args: &Args) -> Outcome {
    let Some(kind) = args.kind.as_deref() else {
        return Err(Failure::Usage("athena needs --kind".into()));
    };
    let Some(location) = args.location.as_deref() else {
        return Err(Failure::Usage("athena needs --location s3://bucket/prefix".into()));
    };
    if !location.starts_with("s3://") {
        return Err(Failure::Usage(format!("--location {location}: must start with s3://")));
    }
    let schema = kinds(Some(kind))?[0];
    print!("{}", usage::s3::athena_ddl(schema, location, args.table.as_deref()));
    Ok(())
}

#[cfg(not(feature = "s3"))]
fn athena(_args: &Args) -> Outcome {
    Err(Failure::Usage(
        "this build has no s3 support (cargo feature `s3`)".into(),
    ))
}

#[cfg(feature = "clickhouse")]
fn clickhouse(args: &Args) -> Outcome {
    use usage::clickhouse::ddl;
    let flavor = if args.legacy {
        ddl::Flavor::Legacy
    } else {
        ddl::Flavor::Modern
    };
    for schema in kinds(args.kind.as_deref())? {
        let table = args.table.clone().unwrap_or_else(|| schema.kind.to_string());
        let target = ddl::Target {
            database: &args.database,
            table: &table,
            cluster: args.cluster.as_deref(),
        };
        for sql in ddl::create_statements(target, schema, flavor, &ddl::default_order_by(schema)) {
            println!("{sql};\n");
        }
    }
    Ok(())
}

#[cfg(not(feature = "clickhouse"))]
fn clickhouse(_args: &Args) -> Outcome {
    Err(Failure::Usage(
        "this build has no clickhouse support (cargo feature `clickhouse`)".into(),
    ))
}
