//! The shared conformance suite through the otlp exporter into rotel, a real
//! OpenTelemetry collector, read back from its detailed debug log (body, each
//! attribute with its type, resource attributes). The outage is a real kill and
//! restart of rotel on the same port.

mod rotel;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use usage_conformance::{env_addr, free_port, poll_read, record, run, scratch_dir, Backend, Server};
use usage_core::Event;
use usage_otlp::receive::{events_from_request, ReceiveOptions};

struct Rotel {
    bin: String,
    dir: PathBuf,
    http_port: u16,
    grpc_port: u16,
    run: Mutex<Option<String>>,
    server: Mutex<Option<Server>>,
    starts: Mutex<usize>,
}

impl Rotel {
    /// Each start prints to its own file, so a restart keeps what came before.
    fn spawn(&self, run: &str) -> Result<(), String> {
        let d = self.dir.join(run);
        std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        let n = {
            let mut s = self.starts.lock().unwrap();
            *s += 1;
            *s
        };
        let out = std::fs::File::create(d.join(format!("out-{n}.txt"))).map_err(|e| e.to_string())?;
        let mut command = Command::new(&self.bin);
        command
            .args(["start", "--otlp-grpc-endpoint"])
            .arg(format!("127.0.0.1:{}", self.grpc_port))
            .arg("--otlp-http-endpoint")
            .arg(format!("127.0.0.1:{}", self.http_port))
            .args([
                "--exporter",
                "blackhole",
                "--debug-log",
                "logs",
                "--debug-log-verbosity",
                "detailed",
            ])
            .arg("--pid-file")
            .arg(d.join("rotel.pid"))
            .arg("--log-file")
            .arg(d.join("rotel.log"))
            .stdout(out)
            .stderr(Stdio::null());
        let server = Server::start("rotel", &mut command, self.http_port, Duration::from_secs(30))?;
        *self.server.lock().unwrap() = Some(server);
        *self.run.lock().unwrap() = Some(run.to_string());
        Ok(())
    }

    /// A graceful stop (SIGTERM, then SIGKILL after 10 s). rotel answers 200 before its
    /// pipeline prints a record, so a SIGKILL can lose what it already acknowledged:
    /// the collector's own at-most-once window, not the exporter's.
    fn kill(&self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.stop(Duration::from_secs(10));
        }
    }

    fn read(&self, run: &str) -> Result<Vec<Event>, String> {
        let mut out = Vec::new();
        let dir = self.dir.join(run);
        for entry in std::fs::read_dir(&dir).map_err(|e| e.to_string())?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("out-") && name.ends_with(".txt")) {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).map_err(|e| e.to_string())?;
            let req = rotel::parse(rotel::complete_records(&text)).map_err(|e| format!("{name}: {e}"))?;
            out.extend(
                events_from_request(&req, &ReceiveOptions::default())
                    .and_then(|r| r.all())
                    .map_err(|e| format!("{name}: {e}"))?,
            );
        }
        Ok(out)
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Backend for Rotel {
    fn name(&self) -> String {
        "rotel".into()
    }
    fn exporter_type(&self) -> String {
        "otlp".into()
    }
    fn exporter_settings(&self, run: &str) -> String {
        // A fresh rotel (and debug log) per run.
        self.kill();
        self.spawn(run).expect("rotel");
        format!("endpoint = \"http://127.0.0.1:{}\"\n", self.http_port)
    }
    fn read_back(&self, run: &str, expected: usize) -> Result<Vec<Event>, String> {
        let events = poll_read(Duration::from_secs(30), expected, || self.read(run))?;
        // The resource travels as resource attributes.
        if let Some(e) = events.iter().find(|e| {
            e.resource()
                .is_none_or(|r| r.service_name != "conformance" || r.service_instance_id != "suite-1")
        }) {
            return Err(format!(
                "resource attributes: {} came back with {:?}",
                e.id(),
                e.resource()
            ));
        }
        Ok(events)
    }
    fn stop(&mut self) -> Result<(), String> {
        self.kill();
        Ok(())
    }
    fn start(&mut self) -> Result<(), String> {
        let run = self.run.lock().unwrap().clone().ok_or("no run")?;
        self.spawn(&run)
    }
}

#[test]
#[ignore = "e2e: run by `cargo xtask e2e`"]
fn otlp_exporter_into_rotel_passes_the_conformance_suite() {
    usage_core::link_exporters!(usage_otlp);
    let mut backend = Rotel {
        bin: env_addr("USAGE_E2E_ROTEL_BIN"),
        dir: scratch_dir("conformance-otlp"),
        http_port: free_port(),
        grpc_port: free_port(),
        run: Mutex::new(None),
        server: Mutex::new(None),
        starts: Mutex::new(0),
    };
    let reports =
        run(&mut backend, &scratch_dir("conformance-otlp-pipeline"), 3000).unwrap_or_else(|e| panic!("otlp: {e}"));
    record(&reports);
}
