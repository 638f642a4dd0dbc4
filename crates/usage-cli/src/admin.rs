//! What `usage tap` and `usage top` share: finding a running gateway's admin
//! listener and fetching from it.

use crate::{load_config, Failure};
use std::path::PathBuf;

/// `--admin`, else `gateway.admin_listen`, else `gateway.listen` (where the admin
/// routes are served when no admin listener is set), as a base URL.
pub(crate) fn base_url(flag: Option<&str>, config: Option<&PathBuf>) -> Result<String, Failure> {
    let addr = match flag {
        Some(a) => a.to_string(),
        None => {
            let cfg: usage_gateway::GatewayConfig = load_config(config)?.gateway()?;
            cfg.admin_listen.unwrap_or(cfg.listen)
        }
    };
    Ok(if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.trim_end_matches('/').to_string()
    } else {
        format!("http://{addr}")
    })
}

/// A GET that names the gateway address when it cannot be reached, and the
/// gateway's own message when it refuses.
pub(crate) async fn get(client: &reqwest::Client, url: &str) -> Result<reqwest::Response, Failure> {
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| Failure::Failed(format!("cannot reach the gateway at {url}: {e}")))?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or(text);
    let failure = format!("{url}: {status}: {message}");
    Err(if status.is_client_error() {
        Failure::Usage(failure)
    } else {
        Failure::Failed(failure)
    })
}

/// A current-thread runtime for one command.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Failed(format!("cannot start a runtime: {e}")))
}
