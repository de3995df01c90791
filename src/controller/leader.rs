//! Who may write: with `--leader-elect`, the holder of a coordination Lease
//! (kube-lease-manager); without it, this single replica always.

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Leadership: a flag that is `true` while this replica may write.
pub struct Leadership {
    /// Current leadership, updated as the lease changes hands.
    pub is_leader: watch::Receiver<bool>,
    /// The lease task; it ending (with or without error) ends the process.
    pub task: Option<JoinHandle<Result<(), String>>>,
    /// Without election, the sender is held here so `is_leader` never closes.
    _keep: Option<watch::Sender<bool>>,
}

impl Leadership {
    /// Always the leader (one replica, no election).
    pub fn always() -> Leadership {
        let (tx, rx) = watch::channel(true);
        Leadership {
            is_leader: rx,
            task: None,
            _keep: Some(tx),
        }
    }

    /// Never the leader (tests of read-only replicas).
    pub fn never() -> Leadership {
        let (tx, rx) = watch::channel(false);
        Leadership {
            is_leader: rx,
            task: None,
            _keep: Some(tx),
        }
    }
}

/// Where and as whom to take the lease.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// Lease duration in seconds.
    pub duration_seconds: u64,
}

impl LeaseSettings {
    /// The namespace: configured, else `$POD_NAMESPACE`, else `default`;
    /// the identity: `$POD_NAME`, else `$HOSTNAME`, else a fixed name plus
    /// the process id.
    pub fn from_env(name: &str, namespace: &str, duration_seconds: u64) -> LeaseSettings {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        LeaseSettings {
            name: name.to_string(),
            namespace: Some(namespace.to_string())
                .filter(|n| !n.is_empty())
                .or_else(|| env("POD_NAMESPACE"))
                .unwrap_or_else(|| "default".into()),
            identity: env("POD_NAME")
                .or_else(|| env("HOSTNAME"))
                .unwrap_or_else(|| format!("imagedrift-{}", std::process::id())),
            duration_seconds,
        }
    }
}

/// Starts competing for the lease (creating it if missing). Calls `get`,
/// `create` and `patch` on `coordination.k8s.io` leases.
pub async fn elect(client: Client, s: &LeaseSettings) -> Result<Leadership, LeaseManagerError> {
    let grace = (s.duration_seconds / 3).max(1);
    let manager = LeaseManagerBuilder::new(client, &s.name)
        .with_namespace(&s.namespace)
        .with_identity(&s.identity)
        .with_duration(s.duration_seconds)
        .with_grace(grace)
        .build()
        .await?;
    let (rx, handle) = manager.watch().await;
    // The manager's task ends when every receiver is dropped (it releases
    // the lease first) or when it fails.
    let task = tokio::spawn(async move {
        match handle.await {
            Ok(Ok(_manager)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(join) => Err(join.to_string()),
        }
    });
    Ok(Leadership {
        is_leader: rx,
        task: Some(task),
        _keep: None,
    })
}
