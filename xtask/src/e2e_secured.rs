//! Secured Kafka for the e2e rows of issue 21:
//! - mutual TLS: tansu behind stunnel (Debian's, OpenSSL), which demands a client
//!   certificate signed by the test CA. The chain is exporter -TLS-> stunnel ->
//!   the test's pausable proxy -> tansu, and tansu advertises stunnel's port.
//!   (tansu 0.6.0's own `--cert` does not speak TLS.)
//! - SASL/SCRAM: a second tansu with `--authentication`, which refuses any login
//!   it cannot verify.
//!
//! Certificates come from the `openssl` command, fresh per run.

use crate::e2e::Backends;
use crate::services::{self, Service};
use std::path::Path;
use std::time::Duration;

/// Starts both and sets `USAGE_E2E_KAFKA_TLS_*` and `USAGE_E2E_KAFKA_SCRAM`.
pub(crate) fn start(work: &Path, b: &mut Backends) -> Result<(), String> {
    let certs = work.join("run/kafka-tls");
    make_certificates(&certs)?;
    let tansu = services::install_tansu(work)?;
    let stunnel = services::install_stunnel()?;

    let (plain, proxy, tls) = (services::free_port()?, services::free_port()?, services::free_port()?);
    let mut s = spawn_tansu(&tansu, work, "tansu-tls", plain, tls, false)?;
    services::wait_for_port(&mut s, plain, Duration::from_secs(30))?;
    b.services.push(s);
    let c = |f: &str| certs.join(f).display().to_string();
    let conf = format!(
        "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{tls}\nconnect = 127.0.0.1:{proxy}\n\
         cert = {}\nkey = {}\nCAfile = {}\nverifyChain = yes\nrequireCert = yes\n",
        c("server.pem"),
        c("server.key"),
        c("ca.pem"),
    );
    let conf_path = certs.join("stunnel.conf");
    std::fs::write(&conf_path, conf).map_err(|e| format!("stunnel.conf: {e}"))?;
    let mut st = Service::spawn(
        "stunnel",
        &work.join("run/stunnel"),
        vec![stunnel.display().to_string(), conf_path.display().to_string()],
    )?;
    services::wait_for_port(&mut st, tls, Duration::from_secs(30))?;
    eprintln!("==> stunnel (mutual TLS) on 127.0.0.1:{tls} -> proxy :{proxy} -> tansu :{plain}");
    b.services.push(st);
    b.env
        .insert("USAGE_E2E_KAFKA_TLS_BROKERS".into(), format!("127.0.0.1:{tls}"));
    b.env
        .insert("USAGE_E2E_KAFKA_TLS_UPSTREAM".into(), format!("127.0.0.1:{plain}"));
    b.env.insert("USAGE_E2E_KAFKA_TLS_PROXY_PORT".into(), proxy.to_string());
    b.env
        .insert("USAGE_E2E_KAFKA_TLS_DIR".into(), certs.display().to_string());

    let auth = services::free_port()?;
    let mut s = spawn_tansu(&tansu, work, "tansu-scram", auth, auth, true)?;
    services::wait_for_port(&mut s, auth, Duration::from_secs(30))?;
    eprintln!("==> tansu with --authentication on 127.0.0.1:{auth}");
    b.services.push(s);
    b.env
        .insert("USAGE_E2E_KAFKA_SCRAM".into(), format!("127.0.0.1:{auth}"));
    Ok(())
}

fn spawn_tansu(bin: &Path, work: &Path, name: &str, port: u16, advertised: u16, auth: bool) -> Result<Service, String> {
    let mut command = vec![
        bin.display().to_string(),
        "broker".into(),
        "--listener-url".into(),
        format!("tcp://127.0.0.1:{port}"),
        "--advertised-listener-url".into(),
        format!("tcp://127.0.0.1:{advertised}"),
        "--storage-engine".into(),
        "memory://tansu/".into(),
    ];
    if auth {
        command.push("--authentication".into());
    }
    Service::spawn(name, &work.join("run").join(name), command)
}

/// A CA, a server certificate for 127.0.0.1/localhost and a client certificate
/// signed by it, and a second CA that signed nothing (the wrong trust store).
fn make_certificates(dir: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let p = |f: &str| dir.join(f).display().to_string();
    let openssl = |args: &[&str]| services::run("openssl", args).map(|_| ());
    for ca in ["ca", "other-ca"] {
        services::self_signed(
            &format!("usage e2e {ca}"),
            &dir.join(format!("{ca}.key")),
            &dir.join(format!("{ca}.pem")),
        )?;
    }
    std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        .map_err(|e| format!("server.ext: {e}"))?;
    for (name, cn) in [("server", "localhost"), ("client", "usage-exporter")] {
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &p(&format!("{name}.key")),
            "-out",
            &p(&format!("{name}.csr")),
        ])?;
        let mut sign = vec![
            "x509".to_string(),
            "-req".into(),
            "-days".into(),
            "2".into(),
            "-in".into(),
            p(&format!("{name}.csr")),
            "-CA".into(),
            p("ca.pem"),
            "-CAkey".into(),
            p("ca.key"),
            "-CAcreateserial".into(),
            "-out".into(),
            p(&format!("{name}.pem")),
        ];
        if name == "server" {
            sign.extend(["-extfile".into(), p("server.ext")]);
        }
        let sign: Vec<&str> = sign.iter().map(String::as_str).collect();
        openssl(&sign)?;
    }
    Ok(())
}
