//! Keeps `run`'s credentials current: the credentials file and the provider
//! config are re-read when their content changes, so a rotated token (an
//! ECR password lives 12 h) or an edited ConfigMap needs no restart.
//!
//! Polling the content, not inotify: kubelet updates mounted Secrets and
//! ConfigMaps by swapping a `..data` symlink, which a watch on the file
//! itself never sees, and reading two small files every few seconds costs
//! nothing measurable.

use super::NodeCredentials;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the files are compared with what was last read.
pub const POLL_EVERY: Duration = Duration::from_secs(5);

/// Re-reads changed files every `every` until `token` is cancelled.
pub async fn watch(node: Arc<NodeCredentials>, every: Duration, token: CancellationToken) {
    if node.is_empty() {
        return;
    }
    tracing::info!(files = ?node.watched_files(), every = ?every, "watching credential files for changes");
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tick.tick() => {
                // File reads block; keep them off the async workers.
                let n = node.clone();
                let _ = tokio::task::spawn_blocking(move || n.reload()).await;
            }
        }
    }
}
