//! Review M4: a key bound to a project fails closed. Events of another project, or
//! of a kind that carries no project, are refused (and kept) unless the key lists
//! that kind in `unbound_kinds`.

mod common;

use common::{batch, relays, request, serve};
use usage_core::{Event, OptimizerQos, UsageConfig};
use usage_gateway::Gateway;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_key_passes_only_its_project_and_the_kinds_it_lists() {
    usage_core::link_exporters!(usage_file);
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[pipeline]\nflush_interval = \"10ms\"\ndata_dir = \"{d}/data\"\n[spool]\npath = \"{d}/spool\"\n[gateway]\n\
         [[gateway.keys]]\nkey = \"strict\"\nproject = \"acme\"\n\
         [[gateway.keys]]\nkey = \"qos\"\nproject = \"acme\"\nunbound_kinds = [\"optimizer_qos\"]\n\
         [exporters.out]\ntype = \"file\"\npath = \"{d}/out\"\n",
        d = dir.path().display()
    );
    let gw = Gateway::new(&UsageConfig::from_toml(&toml).unwrap()).unwrap();
    let addr = serve(&gw).await;
    let mut events = relays("acme", 1);
    events.extend(relays("globex", 1));
    events.push(Event::new(OptimizerQos::default()));
    let body = batch(&events);
    let answer = |key: &'static str| {
        let (addr, body) = (addr.clone(), body.clone());
        async move {
            let r = request(&addr, "POST", "/v1/metrics", &[("authorization", key)], &body).await;
            assert_eq!(r.status, 200, "{}", r.body);
            serde_json::from_str::<serde_json::Value>(&r.body).unwrap()
        }
    };
    let strict = answer("Bearer strict").await;
    assert_eq!(strict["accepted"], 1, "{strict}");
    let refused: Vec<_> = strict["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].clone())
        .collect();
    assert_eq!(refused, [1, 2], "{strict}");
    assert!(
        strict["rejected"][1]["error"]
            .as_str()
            .unwrap()
            .contains("carries no project"),
        "{strict}"
    );
    let qos = answer("Bearer qos").await;
    assert_eq!(qos["accepted"], 2, "the listed kind passes: {qos}");
    assert_eq!(qos["rejected"][0]["index"], 1);
}
