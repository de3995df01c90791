//! Who may write: with `--leader-elect`, the holder of a coordination Lease;
//! without it, this single replica always.
//!
//! The lease loop follows client-go's `leaderelection` (LeaseLock): every
//! `retryPeriod` the holder renews and every follower reads the Lease, so a
//! Lease released on graceful shutdown is taken within one retry period,
//! not at expiry. Expiry is judged by this replica's monotonic clock (when
//! it last saw the record change, plus its duration), never by comparing
//! another node's wall-clock `renewTime` with ours. Neither
//! kube-lease-manager (sleeps until expiry, hides when it renewed) nor
//! kube-leader-election (kube 4) fits, hence the loop here.
//!
//! The write guard: a replica may write only while it holds an unexpired
//! lease by its own clock, i.e. before `start of its last successful renew +
//! leaseDuration` on [`Instant`] (monotonic). A leader paused past its lease
//! (SIGSTOP) and resumed finds the guard closed before its first write,
//! whatever the `is_leader` flag still says.

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use prometheus::IntGauge;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Until when this replica may write.
#[derive(Debug)]
struct Hold {
    /// No election: always.
    always: bool,
    /// End of the current lease by this replica's monotonic clock.
    until: Mutex<Option<Instant>>,
}

impl Hold {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.until.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A replica's view of its leadership: the flag (for reacting to changes)
/// and the write guard (checked right before each write).
#[derive(Clone, Debug)]
pub struct Leader {
    rx: watch::Receiver<bool>,
    hold: Arc<Hold>,
}

impl Leader {
    /// Whether this replica leads *and* its lease is unexpired now: the
    /// check every writer makes right before an Event, patch or pod write.
    pub fn may_write(&self) -> bool {
        if !*self.rx.borrow() {
            return false;
        }
        if self.hold.always {
            return true;
        }
        self.hold.lock().is_some_and(|u| Instant::now() < u)
    }

    /// Whether this replica leads (same as [`Leader::may_write`]).
    pub fn is_leader(&self) -> bool {
        self.may_write()
    }

    /// The leadership flag, to wait for changes.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }

    /// A leadership driven by hand (tests): the flag and the lease end are
    /// set through the returned [`ManualLease`].
    pub fn manual() -> (ManualLease, Leader) {
        let (tx, rx) = watch::channel(false);
        let hold = Arc::new(Hold {
            always: false,
            until: Mutex::new(None),
        });
        (
            ManualLease {
                tx,
                hold: hold.clone(),
            },
            Leader { rx, hold },
        )
    }
}

/// The controls of a [`Leader::manual`] leadership.
#[derive(Debug)]
pub struct ManualLease {
    tx: watch::Sender<bool>,
    hold: Arc<Hold>,
}

impl ManualLease {
    /// Leads, with the lease ending at `until` (monotonic).
    pub fn grant_until(&self, until: Instant) {
        *self.hold.lock() = Some(until);
        self.tx.send_replace(true);
    }

    /// No longer leads.
    pub fn revoke(&self) {
        *self.hold.lock() = None;
        self.tx.send_replace(false);
    }
}

/// Leadership: a flag that is `true` while this replica may write.
/// Dropping it makes the lease task release the lease (if held) and end,
/// whoever still holds a [`Leader`] clone or the [`Leadership::export`]ed gauge.
pub struct Leadership {
    /// Current leadership, updated as the lease changes hands.
    pub is_leader: Leader,
    /// The lease task; it ending (with or without error) ends the process.
    pub task: Option<JoinHandle<Result<(), String>>>,
    /// Without election, the sender is held here so the flag never closes.
    _keep: Option<watch::Sender<bool>>,
    /// Tells the lease task to release and end (on drop).
    stop: CancellationToken,
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Leadership {
    fn fixed(lead: bool) -> Leadership {
        let (tx, rx) = watch::channel(lead);
        Leadership {
            is_leader: Leader {
                rx,
                hold: Arc::new(Hold {
                    always: lead,
                    until: Mutex::new(None),
                }),
            },
            task: None,
            _keep: Some(tx),
            stop: CancellationToken::new(),
        }
    }

    /// Always the leader (one replica, no election).
    pub fn always() -> Leadership {
        Leadership::fixed(true)
    }

    /// Never the leader (tests of read-only replicas).
    pub fn never() -> Leadership {
        Leadership::fixed(false)
    }

    /// Mirrors leadership into `gauge` (`imagedrift_leader`, 0 or 1) until
    /// the flag closes.
    pub fn export(&self, gauge: IntGauge) {
        let mut rx = self.is_leader.subscribe();
        gauge.set(i64::from(*rx.borrow_and_update()));
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                gauge.set(i64::from(*rx.borrow_and_update()));
            }
        });
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
    /// How often the holder renews and followers look (client-go's retryPeriod).
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// The namespace: configured, else `$POD_NAMESPACE`, else `default`;
    /// the identity: `$POD_NAME`, else `$HOSTNAME`, else a fixed name plus
    /// the process id.
    pub fn from_env(
        name: &str,
        namespace: &str,
        duration_seconds: u64,
        retry_period: Duration,
    ) -> LeaseSettings {
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
            retry_period,
        }
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_seconds)
    }
}

/// Starting leader election failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The settings cannot work.
    #[error(
        "leader election: retryPeriod {retry:?} must be shorter than half the lease duration ({duration}s)"
    )]
    Settings {
        /// The retry period.
        retry: Duration,
        /// The lease duration in seconds.
        duration: u64,
    },
}

/// Starts competing for the lease (creating it if missing). Calls `get`,
/// `create` and `patch` on `coordination.k8s.io` leases. The task ends when
/// the [`Leadership`] (or every [`Leader`]) is dropped, releasing the lease
/// first if held. (Waiting for every receiver alone never ended: the
/// exported gauge's task holds one for as long as the flag lives.)
pub async fn elect(client: Client, s: &LeaseSettings) -> Result<Leadership, LeaseError> {
    if s.retry_period.is_zero() || s.retry_period * 2 >= s.duration() {
        return Err(LeaseError::Settings {
            retry: s.retry_period,
            duration: s.duration_seconds,
        });
    }
    let api: Api<Lease> = Api::namespaced(client, &s.namespace);
    let (tx, rx) = watch::channel(false);
    let hold = Arc::new(Hold {
        always: false,
        until: Mutex::new(None),
    });
    let stop = CancellationToken::new();
    let task = tokio::spawn(lease_loop(api, s.clone(), tx, hold.clone(), stop.clone()));
    Ok(Leadership {
        is_leader: Leader { rx, hold },
        task: Some(task),
        _keep: None,
        stop,
    })
}

/// What this replica last saw of the Lease, and when (monotonic).
#[derive(Default)]
struct Observed {
    record: Option<String>,
    at: Option<Instant>,
}

/// One attempt's result.
enum Attempt {
    /// This replica holds the lease.
    Holding,
    /// Someone else holds it (named when known).
    Held(Option<String>),
}

async fn lease_loop(
    api: Api<Lease>,
    s: LeaseSettings,
    tx: watch::Sender<bool>,
    hold: Arc<Hold>,
    stop: CancellationToken,
) -> Result<(), String> {
    let mut observed = Observed::default();
    let mut holder: Option<String> = None;
    loop {
        let started = Instant::now();
        let leading = *tx.borrow();
        // A hung API server must not keep a stale flag up: an attempt that
        // takes longer than half the lease counts as failed, and a leader's
        // attempt ends one retry period before its lease does (client-go's
        // renewDeadline), so the flag and the `imagedrift_leader` gauge are
        // down before another replica can take the lease.
        let mut deadline = started + s.duration() / 2;
        if leading && let Some(until) = *hold.lock() {
            deadline = deadline.min(until.checked_sub(s.retry_period).unwrap_or(until));
        }
        let attempt =
            tokio::time::timeout_at(deadline, try_acquire_or_renew(&api, &s, &mut observed))
                .await
                .unwrap_or_else(|_| Err(AttemptError::TimedOut));
        match attempt {
            Ok(Attempt::Holding) => {
                *hold.lock() = Some(started + s.duration());
                if !leading {
                    tracing::info!(lease = %s.name, namespace = %s.namespace, identity = %s.identity, previous = holder.as_deref().unwrap_or(""), "became leader");
                    tx.send_replace(true);
                }
                holder = Some(s.identity.clone());
            }
            Ok(Attempt::Held(by)) => {
                if leading {
                    step_down(&tx, &hold);
                    tracing::info!(lease = %s.name, identity = %s.identity, holder = by.as_deref().unwrap_or(""), "lost leadership: another replica holds the lease");
                } else if by != holder {
                    tracing::info!(lease = %s.name, identity = %s.identity, holder = by.as_deref().unwrap_or(""), "leader is another replica");
                }
                holder = by;
            }
            Err(e) => {
                tracing::warn!(error = %e, lease = %s.name, namespace = %s.namespace, "cannot read or renew the lease");
                // Step down before the lease could end: the next retry
                // might come too late.
                let until = *hold.lock();
                if leading && until.is_none_or(|u| Instant::now() + s.retry_period >= u) {
                    step_down(&tx, &hold);
                    tracing::info!(lease = %s.name, identity = %s.identity, "lost leadership: the lease could not be renewed in time");
                }
            }
        }
        tokio::select! {
            biased;
            _ = async { tokio::select! { _ = tx.closed() => {}, _ = stop.cancelled() => {} } } => {
                if *tx.borrow() {
                    step_down(&tx, &hold);
                    return match release(&api, &s).await {
                        Ok(()) => {
                            tracing::info!(lease = %s.name, identity = %s.identity, "released the lease");
                            Ok(())
                        }
                        Err(e) => Err(format!("releasing lease {}: {e}", s.name)),
                    };
                }
                return Ok(());
            }
            _ = tokio::time::sleep_until(started + s.retry_period) => {}
        }
    }
}

/// Closes the write guard first, then lowers the flag.
fn step_down(tx: &watch::Sender<bool>, hold: &Hold) {
    *hold.lock() = None;
    tx.send_replace(false);
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

fn micro(t: Timestamp) -> MicroTime {
    MicroTime(t)
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Api(#[from] kube::Error),
    #[error("no answer within half the lease duration, or before the lease would end")]
    TimedOut,
}

async fn try_acquire_or_renew(
    api: &Api<Lease>,
    s: &LeaseSettings,
    observed: &mut Observed,
) -> Result<Attempt, AttemptError> {
    let now = Timestamp::now();
    let Some(lease) = api.get_opt(&s.name).await? else {
        let lease: Lease = serde_json::from_value(serde_json::json!({
            "metadata": {"name": s.name, "namespace": s.namespace},
            "spec": {
                "holderIdentity": s.identity,
                "leaseDurationSeconds": s.duration_seconds,
                "acquireTime": micro(now),
                "renewTime": micro(now),
                "leaseTransitions": 0,
            }
        }))
        .map_err(kube::Error::SerdeError)?;
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Attempt::Holding),
            Err(e) if is_conflict(&e) => Ok(Attempt::Held(None)),
            Err(e) => Err(e.into()),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let record = format!(
        "{:?}|{:?}|{:?}|{:?}",
        holder, spec.renew_time, spec.lease_transitions, spec.lease_duration_seconds
    );
    let seen_now = Instant::now();
    if observed.record.as_deref() != Some(record.as_str()) {
        observed.record = Some(record);
        observed.at = Some(seen_now);
    }
    let mine = holder.as_deref() == Some(s.identity.as_str());
    if let Some(other) = holder.as_ref().filter(|_| !mine) {
        let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        if observed.at.is_some_and(|at| at + duration > seen_now) {
            return Ok(Attempt::Held(Some(other.clone())));
        }
    }
    let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
    let acquire = if mine { spec.acquire_time } else { None }.unwrap_or(micro(now));
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": lease.metadata.resource_version},
        "spec": {
            "holderIdentity": s.identity,
            "leaseDurationSeconds": s.duration_seconds,
            "acquireTime": acquire,
            "renewTime": micro(now),
            "leaseTransitions": transitions,
        }
    });
    let pp = PatchParams {
        field_manager: Some("imagedrift".into()),
        ..PatchParams::default()
    };
    match api.patch(&s.name, &pp, &Patch::Merge(&patch)).await {
        Ok(_) => Ok(Attempt::Holding),
        Err(e) if is_conflict(&e) => Ok(Attempt::Held(holder)),
        Err(e) => Err(e.into()),
    }
}

/// Gives the lease up (holder cleared) if this replica still holds it.
async fn release(api: &Api<Lease>, s: &LeaseSettings) -> Result<(), kube::Error> {
    let Some(lease) = api.get_opt(&s.name).await? else {
        return Ok(());
    };
    let holder = lease
        .spec
        .as_ref()
        .and_then(|sp| sp.holder_identity.as_deref());
    if holder != Some(s.identity.as_str()) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": lease.metadata.resource_version},
        "spec": {"holderIdentity": null, "renewTime": null}
    });
    let pp = PatchParams {
        field_manager: Some("imagedrift".into()),
        ..PatchParams::default()
    };
    match api.patch(&s.name, &pp, &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(e) if is_conflict(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_write_guard_closes_when_the_lease_ends_by_the_monotonic_clock() {
        let (ctl, leader) = Leader::manual();
        assert!(!leader.may_write(), "not granted yet");
        ctl.grant_until(Instant::now() + Duration::from_secs(15));
        assert!(leader.may_write());
        // A pause (SIGSTOP) past the lease: the flag still says leader,
        // the guard does not.
        tokio::time::advance(Duration::from_secs(16)).await;
        assert!(*leader.subscribe().borrow());
        assert!(!leader.may_write());
        ctl.grant_until(Instant::now() + Duration::from_secs(15));
        assert!(leader.may_write());
        ctl.revoke();
        assert!(!leader.may_write());
    }

    #[test]
    fn fixed_leadership() {
        assert!(Leadership::always().is_leader.may_write());
        assert!(!Leadership::never().is_leader.may_write());
    }
}
