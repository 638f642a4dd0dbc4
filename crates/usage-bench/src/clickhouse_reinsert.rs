//! `usage-bench clickhouse-reinsert`: the anchor for the ClickHouse exporter. The rows
//! an exporter run wrote are fetched back as RowBinary, in blocks of the exporter's
//! batch size (not timed), then POSTed to a copy of the table one block at a time,
//! as the exporter's one worker does (timed): what the server takes for the same
//! bytes, without us.

use std::time::{Duration, Instant};

pub struct Reinsert {
    /// The server's HTTP URL, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// The table the exporter wrote.
    pub table: String,
    /// Rows per INSERT (the exporter's `batch_max_events`).
    pub batch: u64,
}

pub fn run(r: &Reinsert) -> Result<serde_json::Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(reinsert(r))
}

/// One statement: `sql` in the URL with `body` as its data, or (no data) `sql` as the
/// body, since older servers refuse a POST without a length.
async fn query(client: &reqwest::Client, url: &str, sql: String, data: Vec<u8>) -> Result<Vec<u8>, String> {
    let (target, body) = if data.is_empty() {
        (
            reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?,
            sql.clone().into_bytes(),
        )
    } else {
        (
            reqwest::Url::parse_with_params(url, &[("query", sql.as_str())]).map_err(|e| format!("{url}: {e}"))?,
            data,
        )
    };
    let response = client
        .post(target)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{sql}: {e}"))?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| format!("{sql}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{sql}: HTTP {status}: {}", String::from_utf8_lossy(&bytes)));
    }
    Ok(bytes.to_vec())
}

async fn reinsert(r: &Reinsert) -> Result<serde_json::Value, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .map_err(|e| e.to_string())?;
    let url = r.url.trim_end_matches('/');
    let rows: u64 =
        String::from_utf8_lossy(&query(&client, url, format!("SELECT count() FROM {}", r.table), Vec::new()).await?)
            .trim()
            .parse()
            .map_err(|e| format!("count of {}: {e}", r.table))?;
    if rows == 0 {
        return Err(format!("{} is empty: nothing to re-insert", r.table));
    }
    let copy = format!("{}_anchor", r.table);
    query(&client, url, format!("CREATE TABLE {copy} AS {}", r.table), Vec::new()).await?;
    let mut blocks = Vec::new();
    let mut bytes = 0usize;
    for offset in (0..rows).step_by(r.batch.max(1) as usize) {
        let block = query(
            &client,
            url,
            format!(
                "SELECT * FROM {} ORDER BY id LIMIT {offset}, {} FORMAT RowBinary",
                r.table, r.batch
            ),
            Vec::new(),
        )
        .await?;
        bytes += block.len();
        blocks.push(block);
    }
    // Columns named, in the table's order (the chdb front takes only this shape).
    let described = query(
        &client,
        url,
        format!("DESCRIBE TABLE {} FORMAT TabSeparated", r.table),
        Vec::new(),
    )
    .await?;
    let columns: Vec<String> = String::from_utf8_lossy(&described)
        .lines()
        .filter_map(|l| l.split('\t').next())
        .filter(|c| !c.is_empty())
        .map(|c| format!("`{c}`"))
        .collect();
    let insert = format!("INSERT INTO {copy} ({}) FORMAT RowBinary", columns.join(", "));
    let start = Instant::now();
    for block in blocks {
        query(&client, url, insert.clone(), block).await?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let copied: u64 =
        String::from_utf8_lossy(&query(&client, url, format!("SELECT count() FROM {copy}"), Vec::new()).await?)
            .trim()
            .parse()
            .map_err(|e| format!("count of {copy}: {e}"))?;
    if copied != rows {
        return Err(format!("{copy} holds {copied} rows, not {rows}"));
    }
    Ok(serde_json::json!({
        "rows": rows,
        "bytes": bytes,
        "seconds": seconds,
        "events_per_second": rows as f64 / seconds,
    }))
}
