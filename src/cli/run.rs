//! `imagedrift run`: the in-cluster controller.

use super::{init_tracing, kube_client};
use anyhow::Context as _;
use imagedrift::config::{Config, RunFlags};
use imagedrift::controller::leader::{Leadership, LeaseSettings, elect};
use imagedrift::controller::reconcile::Settings;
use imagedrift::controller::runner::{self, Context, Readiness, watch_all};
use imagedrift::controller::schedule::RandomJitter;
use imagedrift::controller::secrets::{
    Anonymous, ApiSecrets, KeyringParser, PullCredentials, SecretCredentials,
};
use imagedrift::metrics::Metrics;
use imagedrift::registry::Resolver;
use imagedrift::remedy::optin::{Enabled, OptIn};
use imagedrift::remedy::{Remedies, RemedyConfig};
use kube::runtime::events::{Recorder, Reporter};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Loads the configuration, then runs until SIGTERM/SIGINT or until the
/// controller, the HTTP server or the lease task dies.
pub fn main(flags: RunFlags) -> ExitCode {
    let config = match Config::load(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("imagedrift: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config.log);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("imagedrift: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(config, flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "imagedrift stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config, flags: RunFlags) -> anyhow::Result<()> {
    let client = kube_client(&flags.kube).await?;
    let prom = prometheus::Registry::new();
    let metrics = Metrics::register(&prom).context("registering metrics")?;
    let registry = Arc::new(Resolver::new(config.registries.clone(), &prom)?);
    if config.pull_secrets.enabled {
        tracing::info!("reading pods' imagePullSecrets by name");
        let reader = ApiSecrets(client.clone());
        let creds = SecretCredentials::new(reader, KeyringParser, config.pull_secrets.cache_ttl);
        serve(
            config,
            client,
            prom,
            flags.enable_remedies,
            metrics,
            registry,
            Arc::new(creds),
        )
        .await
    } else {
        serve(
            config,
            client,
            prom,
            flags.enable_remedies,
            metrics,
            registry,
            Arc::new(Anonymous),
        )
        .await
    }
}

/// Runs everything with the chosen credential source.
async fn serve<C: PullCredentials>(
    config: Config,
    client: kube::Client,
    prom: prometheus::Registry,
    enable_remedies: bool,
    metrics: Metrics,
    registry: Arc<Resolver>,
    credentials: Arc<C>,
) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    spawn_signal_handler(token.clone());

    let le = &config.leader_election;
    let lease = LeaseSettings::from_env(
        &le.lease_name,
        &le.lease_namespace,
        le.lease_duration_seconds,
    );
    let mut leadership = if le.enabled {
        tracing::info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity, "leader election on");
        elect(client.clone(), &lease)
            .await
            .context("starting leader election")?
    } else {
        Leadership::always()
    };

    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| {
            format!(
                "listening on {} (key `listen`, flag --listen)",
                config.listen
            )
        })?;
    tracing::info!(listen = %config.listen, "serving /metrics, /livez, /readyz");
    let ready = Readiness::default();
    let mut http = tokio::spawn(imagedrift::http::serve(
        listener,
        imagedrift::http::router(metrics.clone(), ready.clone()),
        token.clone(),
    ));

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "imagedrift".into(),
            instance: Some(lease.identity.clone()),
        },
    );
    let remedies = if enable_remedies || remedies_configured(&config.remedies) {
        tracing::info!(
            dry_run = config.remedies.dry_run,
            "remedies on for workloads that opt in"
        );
        Some(
            Remedies::new(
                client.clone(),
                recorder.clone(),
                config.remedies.clone(),
                &prom,
                leadership.is_leader.clone(),
            )
            .context("setting up remedies")?,
        )
    } else {
        None
    };
    let ctx = Context {
        registry,
        credentials,
        recorder,
        metrics,
        settings: Settings {
            interval: config.interval,
            spread: config.jitter_span(),
            unknown_threshold: config.drift_check_failed_after,
        },
        max_concurrent_checks: config.max_concurrent_checks,
        namespaces: config.namespaces.clone(),
        leader: leadership.is_leader.clone(),
        ready,
        remedies,
    };
    let inputs = watch_all(client, &config.namespaces, &config.label_selector);
    let mut controller = tokio::spawn(runner::run(
        ctx,
        inputs,
        Box::new(RandomJitter::default()),
        token.clone(),
    ));
    let mut lease_task = leadership.task.take();

    // One shutdown path: whichever part stops first stops the others.
    let outcome: anyhow::Result<()> = tokio::select! {
        _ = token.cancelled() => Ok(()),
        r = &mut controller => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::anyhow!(e).context("controller stopped")),
            Err(e) => Err(anyhow::anyhow!(e).context("controller task failed")),
        },
        r = &mut http => match r {
            Ok(Ok(())) => Err(anyhow::anyhow!("HTTP server stopped")),
            Ok(Err(e)) => Err(anyhow::anyhow!(e).context("HTTP server failed")),
            Err(e) => Err(anyhow::anyhow!(e).context("HTTP task failed")),
        },
        r = async { match lease_task.as_mut() { Some(t) => t.await, None => std::future::pending().await } } => match r {
            Ok(Ok(())) => Err(anyhow::anyhow!("leader election stopped")),
            Ok(Err(e)) => Err(anyhow::anyhow!(e).context("leader election failed")),
            Err(e) => Err(anyhow::anyhow!(e).context("lease task failed")),
        },
    };
    token.cancel();
    // Dropping every leadership receiver makes the lease task release the lease.
    drop(leadership);
    let grace = Duration::from_secs(10);
    let _ = tokio::time::timeout(grace, async {
        let _ = controller.await;
        let _ = http.await;
        if let Some(t) = lease_task {
            let _ = t.await;
        }
    })
    .await;
    tracing::info!("stopped");
    outcome
}

fn spawn_signal_handler(token: CancellationToken) {
    tokio::spawn(async move {
        let term = async {
            #[cfg(unix)]
            {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot listen for SIGTERM");
                        std::future::pending::<()>().await;
                    }
                }
            }
            #[cfg(not(unix))]
            std::future::pending::<()>().await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            _ = term => tracing::info!("SIGTERM: shutting down"),
        }
        token.cancel();
    });
}

/// Whether the `remedies:` section enables any remedy anywhere.
fn remedies_configured(c: &RemedyConfig) -> bool {
    matches!(c.global(), OptIn::In(e) if e != Enabled::NONE)
        || c.namespaces
            .keys()
            .any(|ns| matches!(c.namespace(ns), OptIn::In(e) if e != Enabled::NONE))
}
