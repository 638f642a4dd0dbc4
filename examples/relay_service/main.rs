//! `relay_service`: a small JSON-RPC relay (axum) that emits one `relay_usage` per request.
//!
//! - `POST /{chain}`: a JSON-RPC call (or batch) forwarded to the chain's provider.
//! - `POST /{chain}/subscribe`: a subscription. The subscribe itself carries the
//!   method's compute units; every message streamed to the client then emits one
//!   `subscription_delivery` event with a small fixed cu.
//!
//! The project comes from the `Project-Id` header (any case; missing means
//! [`DEFAULT_PROJECT`]), the origin from `Origin`. A relay that fails before it
//! reaches a provider (bad JSON, unknown chain, provider unreachable) emits cu = 0
//! and success = false; one the provider answered with an error is billed its cu.
//!
//! ```text
//! RELAY_PROVIDERS="ETH1=http://127.0.0.1:8545" cargo run -p usage-examples --example relay_service
//! curl -H 'Project-Id: acme' -d '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber"}' 127.0.0.1:3000/ETH1
//! ```
//! Events go where `usage.toml` (or `USAGE_CONFIG`, `USAGE_...` env) says; with
//! neither, to the `file` exporter under `./usage-data`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use usage_core::{Pipeline, RelayUsage, Text, UsageConfig, UsageSink};

/// The project billed when a request has no `Project-Id` header.
pub const DEFAULT_PROJECT: &str = "anonymous";
/// Compute units of one message delivered on a subscription.
pub const SUBSCRIPTION_DELIVERY_CU: u64 = 1;

/// Compute units per method (a simplified price list).
fn compute_units(method: &str) -> u64 {
    match method {
        "eth_blockNumber" | "eth_chainId" | "eth_subscribe" => 10,
        "eth_getLogs" => 75,
        "eth_sendRawTransaction" => 250,
        m if m.starts_with("debug_") || m.starts_with("trace_") => 300,
        _ => 20,
    }
}

/// One upstream node serving a chain.
#[derive(Debug, Clone)]
struct Provider {
    name: String,
    url: String,
}

struct Relay {
    sink: UsageSink,
    providers: HashMap<String, Provider>,
    http: reqwest::Client,
}

/// What is known about a request before it is relayed.
struct Call {
    project: Text,
    origin: Text,
    chain: Text,
    method: Text,
    started: Instant,
}

impl Call {
    fn new(headers: &HeaderMap, chain: &str) -> Call {
        // HeaderMap lookups ignore case: `project-id`, `Project-Id`, `PROJECT-ID`.
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
        };
        Call {
            project: header("project-id").unwrap_or(DEFAULT_PROJECT).into(),
            origin: header("origin").unwrap_or("").into(),
            chain: chain.into(),
            method: Text::default(),
            started: Instant::now(),
        }
    }

    fn usage(&self, provider: &str, cu: u64, success: bool) -> RelayUsage {
        let method = self.method.as_ref();
        RelayUsage {
            project: self.project.clone(),
            chain: self.chain.clone(),
            api_interface: "jsonrpc".into(),
            api_method: self.method.clone(),
            cu,
            latency_ms: self.started.elapsed().as_millis() as u64,
            success,
            is_write: method == "eth_sendRawTransaction",
            is_archive: false,
            is_batch: method == "batch",
            is_debug_trace: method.starts_with("debug_") || method.starts_with("trace_"),
            provider: provider.into(),
            origin: self.origin.clone(),
            ..Default::default()
        }
    }
}

fn method_of(v: &serde_json::Value) -> &str {
    v.get("method").and_then(|m| m.as_str()).unwrap_or("")
}

/// The methods of a call or batch, or `None` when the body is not JSON-RPC.
fn methods(body: &[u8]) -> Option<Vec<String>> {
    match serde_json::from_slice::<serde_json::Value>(body).ok()? {
        serde_json::Value::Array(calls) if !calls.is_empty() => {
            Some(calls.iter().map(|c| method_of(c).to_string()).collect())
        }
        call @ serde_json::Value::Object(_) if !method_of(&call).is_empty() => Some(vec![method_of(&call).to_string()]),
        _ => None,
    }
}

async fn relay(State(r): State<Arc<Relay>>, Path(chain): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let mut call = Call::new(&headers, &chain);
    let Some(methods) = methods(&body) else {
        r.sink.emit(call.usage("", 0, false));
        return (StatusCode::BAD_REQUEST, "not a JSON-RPC request").into_response();
    };
    call.method = if methods.len() > 1 {
        "batch".into()
    } else {
        methods[0].as_str().into()
    };
    let cu = methods.iter().map(|m| compute_units(m)).sum();
    let Some(provider) = r.providers.get(&chain) else {
        r.sink.emit(call.usage("", 0, false));
        return (StatusCode::NOT_FOUND, format!("no provider for chain {chain}")).into_response();
    };
    let answer = r
        .http
        .post(&provider.url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    let resp = match answer {
        Ok(resp) => resp,
        Err(_) => {
            // Never reached a provider: nothing to bill.
            r.sink.emit(call.usage(&provider.name, 0, false));
            return (StatusCode::BAD_GATEWAY, "provider unreachable").into_response();
        }
    };
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap_or_default();
    // The provider did the work: billed, even when it answered with a JSON-RPC error.
    let ok = status == 200 && !has_error(&bytes);
    r.sink.emit(call.usage(&provider.name, cu, ok));
    (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY), bytes).into_response()
}

fn has_error(body: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(a)) => a.iter().any(|v| v.get("error").is_some()),
        Ok(v) => v.get("error").is_some(),
        Err(_) => true,
    }
}

/// A subscription: the provider streams newline-delimited messages; each message
/// handed to the client emits one `subscription_delivery`.
async fn subscribe(
    State(r): State<Arc<Relay>>,
    Path(chain): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut call = Call::new(&headers, &chain);
    let Some(method) = methods(&body).filter(|m| m.len() == 1).map(|m| m[0].clone()) else {
        r.sink.emit(call.usage("", 0, false));
        return (StatusCode::BAD_REQUEST, "not a JSON-RPC subscribe").into_response();
    };
    call.method = method.as_str().into();
    let Some(provider) = r.providers.get(&chain).cloned() else {
        r.sink.emit(call.usage("", 0, false));
        return (StatusCode::NOT_FOUND, format!("no provider for chain {chain}")).into_response();
    };
    let url = format!("{}/subscribe", provider.url.trim_end_matches('/'));
    let resp = match r
        .http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
    {
        Ok(resp) if resp.status().is_success() => resp,
        Ok(resp) => {
            r.sink.emit(call.usage(&provider.name, compute_units(&method), false));
            return (StatusCode::BAD_GATEWAY, format!("provider answered {}", resp.status())).into_response();
        }
        Err(_) => {
            r.sink.emit(call.usage(&provider.name, 0, false));
            return (StatusCode::BAD_GATEWAY, "provider unreachable").into_response();
        }
    };
    r.sink.emit(call.usage(&provider.name, compute_units(&method), true));
    call.method = "subscription_delivery".into();
    let (sink, call) = (r.sink.clone(), Arc::new(call));
    // Re-frame the provider's byte stream into whole lines, one event per line.
    let lines = futures_util::stream::unfold(
        (resp.bytes_stream(), Vec::<u8>::new()),
        |(mut upstream, mut buf)| async move {
            loop {
                if let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    return Some((line, (upstream, buf)));
                }
                match upstream.next().await {
                    Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                    _ => return None,
                }
            }
        },
    );
    let provider_name = provider.name;
    let delivered = lines.map(move |line| {
        sink.emit(call.usage(&provider_name, SUBSCRIPTION_DELIVERY_CU, true));
        Ok::<_, std::io::Error>(Bytes::from(line))
    });
    Response::new(Body::from_stream(delivered))
}

fn router(sink: UsageSink, providers: HashMap<String, Provider>) -> Router {
    let state = Relay {
        sink,
        providers,
        http: reqwest::Client::new(),
    };
    Router::new()
        .route("/{chain}", post(relay))
        .route("/{chain}/subscribe", post(subscribe))
        .with_state(Arc::new(state))
}

/// `ETH1=http://a:8545,ARB1=http://b:8547` -> providers named after their host.
fn parse_providers(spec: &str) -> Result<HashMap<String, Provider>, String> {
    spec.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|entry| {
            let (chain, url) = entry
                .split_once('=')
                .ok_or_else(|| format!("RELAY_PROVIDERS: `{entry}` is not CHAIN=URL"))?;
            let name = url.trim().trim_start_matches("http://").trim_start_matches("https://");
            Ok((
                chain.trim().to_string(),
                Provider {
                    name: name.to_string(),
                    url: url.trim().to_string(),
                },
            ))
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    usage::link_exporters();
    let pipeline = Pipeline::from_config(&UsageConfig::load()?)?;
    let providers =
        parse_providers(&std::env::var("RELAY_PROVIDERS").unwrap_or_else(|_| "ETH1=http://127.0.0.1:8545".into()))?;
    let listen = std::env::var("RELAY_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!(
        "relay_service on http://{listen}, chains: {:?}",
        providers.keys().collect::<Vec<_>>()
    );
    axum::serve(listener, router(pipeline.sink(), providers))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // Deliver what is queued before exiting; the report says what happened to every event.
    let report = pipeline.shutdown(Duration::from_secs(10)).await?;
    println!("{report:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use usage_core::{Event, Value};

    /// A provider: JSON-RPC answers (an error for `eth_fail`) and a 3-message subscription.
    async fn provider() -> String {
        async fn rpc(body: Bytes) -> Response {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let answer = if method_of(&v) == "eth_fail" {
                serde_json::json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "boom"}})
            } else {
                serde_json::json!({"jsonrpc": "2.0", "id": 1, "result": "0x10"})
            };
            axum::Json(answer).into_response()
        }
        async fn subscription() -> Response {
            let messages = (0..3).map(|i| Ok::<_, std::io::Error>(Bytes::from(format!("{{\"block\":{i}}}\n"))));
            Response::new(Body::from_stream(futures_util::stream::iter(messages)))
        }
        let app = Router::new()
            .route("/", post(rpc))
            .route("/subscribe", post(subscription));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn field(e: &Event, name: &str) -> String {
        match e.field(name) {
            Some(Value::Str(s)) => s.to_string(),
            Some(Value::U64(n)) => n.to_string(),
            Some(Value::Bool(b)) => b.to_string(),
            other => format!("{other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_request_is_one_event_with_project_origin_cu_and_outcome() {
        usage_core::link_exporters!(usage_file);
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "[exporters.local]\ntype = \"file\"\npath = {:?}\n",
            dir.path().join("out").display().to_string()
        );
        let pipeline = Pipeline::from_config(&UsageConfig::from_toml(&toml).unwrap()).unwrap();
        let upstream = provider().await;
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let providers = parse_providers(&format!("ETH1={upstream},ARB1={dead}")).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = format!("http://{}", listener.local_addr().unwrap());
        let app = router(pipeline.sink(), providers);
        tokio::spawn(async move { axum::serve(listener, app).await });

        let client = reqwest::Client::new();
        let post = |path: &str, project: Option<&str>, body: &str| {
            let mut req = client.post(format!("{relay}{path}")).body(body.to_string());
            if let Some(p) = project {
                req = req.header("PROJECT-ID", p).header("Origin", "https://app.example");
            }
            req.send()
        };
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"eth_getLogs"}"#;
        assert_eq!(post("/ETH1", Some("acme"), call).await.unwrap().status(), 200);
        assert_eq!(post("/ETH1", None, call).await.unwrap().status(), 200);
        let fail = r#"{"jsonrpc":"2.0","id":1,"method":"eth_fail"}"#;
        assert_eq!(post("/ETH1", Some("acme"), fail).await.unwrap().status(), 200);
        assert_eq!(post("/ETH1", Some("acme"), "{nope").await.unwrap().status(), 400);
        assert_eq!(post("/SOL", Some("acme"), call).await.unwrap().status(), 404);
        assert_eq!(post("/ARB1", Some("acme"), call).await.unwrap().status(), 502);
        let sub = r#"{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}"#;
        let streamed = post("/ETH1/subscribe", Some("acme"), sub)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(streamed.lines().count(), 3);

        pipeline.shutdown(Duration::from_secs(10)).await.unwrap();
        let mut got = Vec::new();
        usage_file::read::scan(&dir.path().join("out"), &Default::default(), |e| got.push(e)).unwrap();
        let row = |e: &Event| {
            (
                field(e, "project"),
                field(e, "chain"),
                field(e, "api_method"),
                field(e, "cu"),
                field(e, "success"),
            )
        };
        let mut rows: Vec<_> = got.iter().map(row).collect();
        rows.sort();
        let expect = |p: &str, c: &str, m: &str, cu: u64, ok: bool| {
            (
                p.to_string(),
                c.to_string(),
                m.to_string(),
                cu.to_string(),
                ok.to_string(),
            )
        };
        let mut want = vec![
            expect("acme", "ETH1", "eth_getLogs", 75, true),
            expect(DEFAULT_PROJECT, "ETH1", "eth_getLogs", 75, true),
            expect("acme", "ETH1", "eth_fail", 20, false),
            expect("acme", "ETH1", "", 0, false),
            expect("acme", "SOL", "eth_getLogs", 0, false),
            expect("acme", "ARB1", "eth_getLogs", 0, false),
            expect("acme", "ETH1", "eth_subscribe", 10, true),
            expect("acme", "ETH1", "subscription_delivery", SUBSCRIPTION_DELIVERY_CU, true),
            expect("acme", "ETH1", "subscription_delivery", SUBSCRIPTION_DELIVERY_CU, true),
            expect("acme", "ETH1", "subscription_delivery", SUBSCRIPTION_DELIVERY_CU, true),
        ];
        want.sort();
        assert_eq!(rows, want);
        let origins: Vec<String> = got.iter().map(|e| field(e, "origin")).collect();
        assert_eq!(
            origins.iter().filter(|o| o.is_empty()).count(),
            1,
            "only the request without headers"
        );
        assert!(origins
            .iter()
            .filter(|o| !o.is_empty())
            .all(|o| o == "https://app.example"));
    }

    #[test]
    fn providers_spec_errors_name_the_entry() {
        assert!(parse_providers("ETH1").unwrap_err().contains("`ETH1` is not CHAIN=URL"));
        assert_eq!(parse_providers("A=http://x:1, B=http://y:2").unwrap().len(), 2);
    }
}
