//! Athena / Glue `CREATE EXTERNAL TABLE` for a kind, generated from its schema.

use usage_core::{FieldType, Schema};

fn athena_type(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Str => "string",
        FieldType::I64 | FieldType::U64 => "bigint",
        FieldType::F64 => "double",
        FieldType::Bool => "boolean",
        FieldType::StrMap => "map<string,string>",
    }
}

/// The DDL for `schema`'s parts under `location` (e.g. `s3://bucket/relay_usage`),
/// JSON SerDe, with partition projection on year/month/day/hour so no
/// `MSCK REPAIR` is ever needed.
///
/// ```
/// use usage_core::{EventKind, RelayUsage};
/// let ddl = usage_s3::athena_ddl(RelayUsage::schema(), "s3://usage/relay_usage", None);
/// assert!(ddl.starts_with("CREATE EXTERNAL TABLE IF NOT EXISTS `relay_usage` ("));
/// assert!(ddl.contains("`cu` bigint"));
/// assert!(ddl.contains("'storage.location.template' = 's3://usage/relay_usage/year=${year}/month=${month}/day=${day}/hour=${hour}'"));
/// ```
pub fn athena_ddl(schema: &Schema, location: &str, table: Option<&str>) -> String {
    let location = location.trim_end_matches('/');
    let table = table.unwrap_or(&schema.kind);
    let mut cols = vec![
        "  `id` string".to_string(),
        "  `ts` string".to_string(),
        "  `kind` string".to_string(),
    ];
    for f in schema.fields.iter() {
        cols.push(format!("  `{}` {}", f.name, athena_type(f.ty)));
    }
    cols.push("  `service_name` string".into());
    cols.push("  `service_instance_id` string".into());
    format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS `{table}` (\n{cols}\n)\n\
         PARTITIONED BY (`year` string, `month` string, `day` string, `hour` string)\n\
         ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\n\
         WITH SERDEPROPERTIES ('ignore.malformed.json' = 'false')\n\
         STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'\n\
         OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'\n\
         LOCATION '{location}/'\n\
         TBLPROPERTIES (\n\
         \x20 'projection.enabled' = 'true',\n\
         \x20 'projection.year.type' = 'integer', 'projection.year.range' = '2024,2099', 'projection.year.digits' = '4',\n\
         \x20 'projection.month.type' = 'integer', 'projection.month.range' = '1,12', 'projection.month.digits' = '2',\n\
         \x20 'projection.day.type' = 'integer', 'projection.day.range' = '1,31', 'projection.day.digits' = '2',\n\
         \x20 'projection.hour.type' = 'integer', 'projection.hour.range' = '0,23', 'projection.hour.digits' = '2',\n\
         \x20 'storage.location.template' = '{location}/year=${{year}}/month=${{month}}/day=${{day}}/hour=${{hour}}'\n\
         );\n\
         -- ts is RFC 3339 text: use from_iso8601_timestamp(ts). Dedup re-sends with\n\
         -- row_number() OVER (PARTITION BY id ORDER BY ts) = 1.\n",
        cols = cols.join(",\n"),
    )
}
