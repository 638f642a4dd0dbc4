//! Tables from event schemas: column types per server generation, `CREATE TABLE`,
//! additive migrations, and type-conflict detection.

use usage_core::{FieldType, Schema};

/// What the server supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// 22.3 and later: `DateTime64(6)`, `LowCardinality`, `Bool`, `Map`, insert dedup tokens.
    Modern,
    /// Older servers (e.g. Debian's 18.16): `DateTime` plus an exact `ts_us UInt64`,
    /// `UInt8` for booleans, JSON text for string maps, no `LowCardinality`.
    Legacy,
}

impl Flavor {
    /// From `SELECT version()`, e.g. `"24.8.4.13"` or `"18.16.1"`.
    pub fn from_version(v: &str) -> Flavor {
        let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
        if (major, minor) >= (22, 3) {
            Flavor::Modern
        } else {
            Flavor::Legacy
        }
    }
}

/// Where a column's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The event id.
    Id,
    /// Event time.
    Ts,
    /// Event time in microseconds (legacy servers only).
    TsMicros,
    /// The i-th field of the kind's schema.
    Field(usize),
    /// `service.name`.
    ServiceName,
    /// `service.instance.id`.
    ServiceInstanceId,
}

/// One column of a kind's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// ClickHouse type.
    pub ty: String,
    /// What fills it.
    pub source: Source,
}

/// Text fields that repeat a lot (projects, chains, methods): `LowCardinality` on modern servers.
const LOW_CARDINALITY: [&str; 9] = [
    "project",
    "chain",
    "api_interface",
    "api_method",
    "provider",
    "origin",
    "chain_id",
    "event_type",
    "pipeline",
];

fn field_type(name: &str, ty: FieldType, nullable: bool, flavor: Flavor) -> String {
    let base = match (ty, flavor) {
        (FieldType::Str, _) => "String",
        (FieldType::I64, _) => "Int64",
        (FieldType::U64, _) => "UInt64",
        (FieldType::F64, _) => "Float64",
        (FieldType::Bool, Flavor::Modern) => "Bool",
        (FieldType::Bool, Flavor::Legacy) => "UInt8",
        (FieldType::StrMap, Flavor::Modern) => "Map(String, String)",
        (FieldType::StrMap, Flavor::Legacy) => "String",
    };
    let low = flavor == Flavor::Modern && ty == FieldType::Str && LOW_CARDINALITY.contains(&name);
    match (nullable && ty != FieldType::StrMap, low) {
        (true, true) => format!("LowCardinality(Nullable({base}))"),
        (true, false) => format!("Nullable({base})"),
        (false, true) => format!("LowCardinality({base})"),
        (false, false) => base.to_string(),
    }
}

/// The columns of `schema`'s table, in insert order.
pub fn columns(schema: &Schema, flavor: Flavor) -> Vec<Column> {
    let mut out = vec![Column {
        name: "id".into(),
        ty: "UUID".into(),
        source: Source::Id,
    }];
    match flavor {
        Flavor::Modern => out.push(Column {
            name: "ts".into(),
            ty: "DateTime64(6, 'UTC')".into(),
            source: Source::Ts,
        }),
        Flavor::Legacy => {
            out.push(Column {
                name: "ts".into(),
                ty: "DateTime('UTC')".into(),
                source: Source::Ts,
            });
            out.push(Column {
                name: "ts_us".into(),
                ty: "UInt64".into(),
                source: Source::TsMicros,
            });
        }
    }
    for (i, f) in schema.fields.iter().enumerate() {
        out.push(Column {
            name: f.name.to_string(),
            ty: field_type(&f.name, f.ty, f.nullable, flavor),
            source: Source::Field(i),
        });
    }
    let text = if flavor == Flavor::Modern {
        "LowCardinality(String)"
    } else {
        "String"
    };
    out.push(Column {
        name: "service_name".into(),
        ty: text.into(),
        source: Source::ServiceName,
    });
    out.push(Column {
        name: "service_instance_id".into(),
        ty: text.into(),
        source: Source::ServiceInstanceId,
    });
    out
}

/// The sorting key: duplicates of the same event (same key) collapse in a
/// `ReplacingMergeTree`. Per built-in kind, the columns billing queries filter on, then time and id.
pub fn default_order_by(schema: &Schema) -> String {
    let lead: &[&str] = match schema.kind.as_ref() {
        "relay_usage" => &["project", "chain"],
        "optimizer_qos" => &["chain_id", "provider"],
        "network_event" => &["pipeline", "stream_id"],
        _ => &[],
    };
    let mut cols: Vec<&str> = lead
        .iter()
        .copied()
        .filter(|c| schema.field(c).is_some_and(|f| !f.nullable))
        .collect();
    cols.extend(["ts", "id"]);
    format!("({})", cols.join(", "))
}

/// Whether an `ORDER BY` expression's last column is exactly `id` (so a
/// `ReplacingMergeTree` collapses copies of one event and never two events):
/// `(project, ts, id)` yes; `(ts, paid)` or `(id, ts)` no.
pub fn order_by_ends_with_id(order: &str) -> bool {
    let inner = order.trim();
    let inner = inner
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or(inner);
    let (mut depth, mut start) = (0i32, 0);
    let mut last = inner;
    for (i, c) in inner.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => start = i + 1,
            _ => {}
        }
        last = &inner[start..];
    }
    matches!(last.trim(), "id" | "`id`" | "\"id\"")
}

/// Quotes an identifier.
pub fn ident(s: &str) -> String {
    // Inside back quotes ClickHouse reads a backslash as an escape: backslash and
    // back quote are both escaped with one.
    format!("`{}`", s.replace('\\', "\\\\").replace('`', "\\`"))
}

/// `CREATE TABLE IF NOT EXISTS` for a kind.
pub fn create_table(database: &str, table: &str, schema: &Schema, flavor: Flavor, order_by: &str) -> String {
    let cols: Vec<String> = columns(schema, flavor)
        .iter()
        .map(|c| format!("    {} {}", ident(&c.name), c.ty))
        .collect();
    let settings = match flavor {
        // Lets a retried insert with the same dedup token be dropped by the server.
        Flavor::Modern => "\nSETTINGS non_replicated_deduplication_window = 1000",
        Flavor::Legacy => "",
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {}.{} (\n{}\n)\nENGINE = ReplacingMergeTree()\nPARTITION BY toYYYYMM(ts)\nORDER BY {order_by}{settings}",
        ident(database),
        ident(table),
        cols.join(",\n"),
    )
}

/// `ALTER TABLE ... ADD COLUMN` for a column the table lacks.
pub fn add_column(database: &str, table: &str, column: &Column) -> String {
    format!(
        "ALTER TABLE {}.{} ADD COLUMN {} {}",
        ident(database),
        ident(table),
        ident(&column.name),
        column.ty
    )
}

/// Where a kind's table lives.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Database.
    pub database: &'a str,
    /// The table inserts go to (on a cluster: the `Distributed` one).
    pub table: &'a str,
    /// `Some(name)`: a `ReplicatedReplacingMergeTree` table `<table>_local` on every
    /// node of the cluster and a `Distributed` table `<table>` over it, all `ON CLUSTER`.
    pub cluster: Option<&'a str>,
}

/// The replicated table behind a cluster's `Distributed` table.
pub fn local_table(table: &str) -> String {
    format!("{table}_local")
}

/// The statements that create a kind's tables, in order.
pub fn create_statements(t: Target<'_>, schema: &Schema, flavor: Flavor, order_by: &str) -> Vec<String> {
    let Some(cluster) = t.cluster else {
        return vec![create_table(t.database, t.table, schema, flavor, order_by)];
    };
    let local = local_table(t.table);
    let cols: Vec<String> = columns(schema, flavor)
        .iter()
        .map(|c| format!("    {} {}", ident(&c.name), c.ty))
        .collect();
    // Replicas of a shard share a Keeper path; `{shard}` and `{replica}` are the
    // nodes' own macros. Replicated tables dedup retried blocks by token without settings.
    let path = format!("/clickhouse/tables/{{shard}}/{}/{local}", t.database);
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.{local_id} ON CLUSTER {c} (\n{cols}\n)\n\
             ENGINE = ReplicatedReplacingMergeTree('{path}', '{{replica}}')\nPARTITION BY toYYYYMM(ts)\nORDER BY {order_by}",
            db = ident(t.database),
            local_id = ident(&local),
            c = ident(cluster),
            cols = cols.join(",\n"),
            path = path.replace('\\', "\\\\").replace('\'', "\\'"),
        ),
        // Sharded by id: every copy of an event lands on the shard that collapses it.
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {c} AS {db}.{local_id}\n\
             ENGINE = Distributed({c}, {db}, {local_id}, cityHash64(id))",
            db = ident(t.database),
            table = ident(t.table),
            local_id = ident(&local),
            c = ident(cluster),
        ),
    ]
}

/// The statements that add a missing column (on a cluster: to the replicated
/// tables first, then to the `Distributed` one).
pub fn add_column_statements(t: Target<'_>, column: &Column) -> Vec<String> {
    let Some(cluster) = t.cluster else {
        return vec![add_column(t.database, t.table, column)];
    };
    [local_table(t.table), t.table.to_string()]
        .iter()
        .map(|table| {
            format!(
                "ALTER TABLE {}.{} ON CLUSTER {} ADD COLUMN IF NOT EXISTS {} {}",
                ident(t.database),
                ident(table),
                ident(cluster),
                ident(&column.name),
                column.ty
            )
        })
        .collect()
}

/// Whether an existing column type holds what `wanted` would (ignoring
/// `LowCardinality` and time zone arguments, which do not change the values).
pub fn compatible(existing: &str, wanted: &str) -> bool {
    normalize(existing) == normalize(wanted)
}

fn normalize(t: &str) -> String {
    let mut s = t.replace(' ', "");
    while let Some(inner) = s.strip_prefix("LowCardinality(").and_then(|r| r.strip_suffix(')')) {
        s = inner.to_string();
    }
    if let Some(inner) = s
        .strip_prefix("Nullable(LowCardinality(")
        .and_then(|r| r.strip_suffix("))"))
    {
        s = format!("Nullable({inner})");
    }
    if s.starts_with("DateTime64(6") {
        return "DateTime64(6)".into();
    }
    if s.starts_with("DateTime(") || s == "DateTime" {
        return "DateTime".into();
    }
    if s == "Bool" {
        return "Bool".into();
    }
    s
}

#[cfg(test)]
mod tests {

    #[test]
    fn order_by_must_end_with_exactly_id() {
        for ok in [
            "(project, ts, id)",
            "(toStartOfHour(ts), `id`)",
            "id",
            " ( project , id ) ",
        ] {
            assert!(order_by_ends_with_id(ok), "{ok}");
        }
        for bad in ["(ts, paid)", "(id, ts)", "(project, chain_id)", "(f(id, x))", "()", ""] {
            assert!(!order_by_ends_with_id(bad), "{bad}");
        }
    }

    #[test]
    fn cluster_tables_are_replicated_and_distributed_by_id() {
        let schema = usage_core::kind_schema("relay_usage").unwrap();
        let t = Target {
            database: "usage",
            table: "relay_usage",
            cluster: Some("main"),
        };
        let create = create_statements(t, schema, Flavor::Modern, &default_order_by(schema));
        assert_eq!(create.len(), 2);
        assert!(create[0].starts_with("CREATE TABLE IF NOT EXISTS `usage`.`relay_usage_local` ON CLUSTER `main` ("));
        assert!(create[0].contains(
            "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/usage/relay_usage_local', '{replica}')"
        ));
        assert!(create[0].ends_with("ORDER BY (project, chain, ts, id)"));
        assert_eq!(
            create[1],
            "CREATE TABLE IF NOT EXISTS `usage`.`relay_usage` ON CLUSTER `main` AS `usage`.`relay_usage_local`\n\
             ENGINE = Distributed(`main`, `usage`, `relay_usage_local`, cityHash64(id))"
        );
        let col = Column {
            name: "region".into(),
            ty: "String".into(),
            source: Source::Field(0),
        };
        let alter = add_column_statements(t, &col);
        assert_eq!(
            alter,
            [
                "ALTER TABLE `usage`.`relay_usage_local` ON CLUSTER `main` ADD COLUMN IF NOT EXISTS `region` String",
                "ALTER TABLE `usage`.`relay_usage` ON CLUSTER `main` ADD COLUMN IF NOT EXISTS `region` String",
            ]
        );
        let single = Target { cluster: None, ..t };
        assert_eq!(
            add_column_statements(single, &col),
            [add_column("usage", "relay_usage", &col)]
        );
    }

    use super::*;

    #[test]
    fn identifiers_cannot_close_their_quotes() {
        assert_eq!(ident("relay_usage"), "`relay_usage`");
        assert_eq!(ident("x\\`; DROP"), "`x\\\\\\`; DROP`");
        assert_eq!(ident("a`b"), "`a\\`b`");
    }
    use usage_core::{EventKind, NetworkEvent, RelayUsage};

    #[test]
    fn flavors_from_versions() {
        assert_eq!(Flavor::from_version("18.16.1"), Flavor::Legacy);
        assert_eq!(Flavor::from_version("22.2.9"), Flavor::Legacy);
        assert_eq!(Flavor::from_version("22.3.1"), Flavor::Modern);
        assert_eq!(Flavor::from_version("24.8.4.13"), Flavor::Modern);
    }

    #[test]
    fn relay_usage_tables_per_flavor() {
        let m = create_table(
            "default",
            "relay_usage",
            RelayUsage::schema(),
            Flavor::Modern,
            &default_order_by(RelayUsage::schema()),
        );
        assert!(m.contains("`ts` DateTime64(6, 'UTC')"), "{m}");
        assert!(m.contains("`project` LowCardinality(String)"), "{m}");
        assert!(m.contains("`success` Bool"), "{m}");
        assert!(m.contains("ORDER BY (project, chain, ts, id)"), "{m}");
        assert!(
            m.contains("ENGINE = ReplacingMergeTree()\nPARTITION BY toYYYYMM(ts)"),
            "{m}"
        );
        let l = create_table(
            "default",
            "relay_usage",
            RelayUsage::schema(),
            Flavor::Legacy,
            "(ts, id)",
        );
        assert!(
            l.contains("`ts` DateTime('UTC')") && l.contains("`ts_us` UInt64"),
            "{l}"
        );
        assert!(l.contains("`success` UInt8") && l.contains("`project` String"), "{l}");
        assert!(!l.contains("LowCardinality") && !l.contains("SETTINGS"), "{l}");
        let n = columns(NetworkEvent::schema(), Flavor::Legacy);
        assert_eq!(n.iter().find(|c| c.name == "attributes").unwrap().ty, "String");
    }

    #[test]
    fn compatibility_ignores_low_cardinality_and_time_zones() {
        assert!(compatible("LowCardinality(String)", "String"));
        assert!(compatible("DateTime64(6)", "DateTime64(6, 'UTC')"));
        assert!(compatible("Nullable(String)", "LowCardinality(Nullable(String))"));
        assert!(!compatible("Int64", "UInt64"));
        assert!(!compatible("String", "UInt64"));
    }
}
