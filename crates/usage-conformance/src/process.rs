//! Backend processes for e2e tests and benches: free ports, waiting for a listener,
//! tools `cargo xtask e2e` installed, and children that never outlive the test.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A tool `cargo xtask e2e` installs under `target/e2e` (e.g. `venv/bin/moto_server`),
/// if it is there.
pub fn e2e_tool(relative: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/e2e")
        .join(relative);
    path.exists().then_some(path)
}

/// A child process that is killed when dropped, so a failed test leaves no server.
#[derive(Debug)]
pub struct Server {
    child: Child,
}

impl Server {
    /// Starts `command` and waits until 127.0.0.1:`port` accepts connections; an
    /// error names the program, and says so when it exited instead of listening.
    pub fn start(name: &str, command: &mut Command, port: u16, limit: Duration) -> Result<Server, String> {
        let child = command.spawn().map_err(|e| format!("start {name}: {e}"))?;
        let mut server = Server { child };
        let end = Instant::now() + limit;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("{name} exited ({status}) before listening on port {port}"));
            }
            if Instant::now() > end {
                return Err(format!("{name} did not listen on port {port} within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Leaves the process running past this handle (a server other tests share,
    /// stopped by whoever started the run); returns its pid.
    pub fn detach(self) -> u32 {
        let pid = self.child.id();
        std::mem::forget(self);
        pid
    }

    /// A graceful stop: SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn stop(mut self, grace: Duration) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let end = Instant::now() + grace;
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
