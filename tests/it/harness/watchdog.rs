//! A hung test says where it hangs: after a bound, the test process attaches gdb to itself
//! and prints every thread's backtrace to stderr, which nextest shows with the test's
//! failure (its own timeout then kills the test). Without it a hang in CI prints nothing.
//!
//! Armed by every `TestDb`; disarmed when it is dropped.

use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

/// Prints the backtraces if not dropped within the bound.
pub struct Watchdog {
    disarm: Option<mpsc::Sender<()>>,
}

impl Watchdog {
    /// Arms a watchdog that fires after `after` (unless dropped first).
    pub fn arm(after: Duration) -> Watchdog {
        let (disarm, disarmed) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if disarmed.recv_timeout(after) != Err(mpsc::RecvTimeoutError::Timeout) {
                return;
            }
            let pid = std::process::id().to_string();
            let dump = Command::new("gdb")
                .args([
                    "-p",
                    &pid,
                    "-batch",
                    "-ex",
                    "info threads",
                    "-ex",
                    "thread apply all bt",
                ])
                .output();
            match dump {
                Ok(out) => eprintln!(
                    "=== watchdog: still running after {after:?}; every thread's backtrace ===\n{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
                Err(error) => eprintln!(
                    "=== watchdog: still running after {after:?}; no backtrace (gdb: {error}) ==="
                ),
            }
        });
        Watchdog {
            disarm: Some(disarm),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(disarm) = self.disarm.take() {
            let _ = disarm.send(());
        }
    }
}
