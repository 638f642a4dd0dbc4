//! Ctrl-C and SIGTERM for the commands that emit (`demo`, `pump`): the first stops
//! emitting so the command drains and prints its usual report; a second one exits
//! at once (code 130).

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler (once per process; a second call is a no-op).
pub(crate) fn install() {
    let _ = ctrlc::set_handler(|| {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            eprintln!("\nusage: interrupted again: exiting without draining");
            std::process::exit(130);
        }
        eprintln!("\nusage: interrupted: no more events; draining what was emitted (again to quit now)");
    });
}

/// Whether Ctrl-C or SIGTERM arrived.
pub(crate) fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
