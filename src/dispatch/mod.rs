//! Dispatch: takes due work off the queue and delivers it.
//!
//! Not built yet (issue "Dispatcher: concurrent delivery…"). Until then the role waits on
//! the wake signal and logs that events are stored but not delivered, so an operator is
//! never misled into thinking deliveries happen.

use tokio_util::sync::CancellationToken;

use crate::config::DispatchConfig;
use crate::store::Store;

/// Runs the dispatcher role until `shutdown` fires.
pub async fn run(store: Store, config: DispatchConfig, shutdown: CancellationToken) {
    tracing::warn!(
        "dispatcher role: delivery is not implemented yet; events are stored and wait in the queue"
    );
    let mut waiter = store.wake().waiter();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = waiter.wait(config.poll_interval) => {}
        }
    }
}
