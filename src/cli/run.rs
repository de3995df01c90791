//! `imagedrift run`: the in-cluster controller.

use super::{init_tracing, kube_client};
use anyhow::Context as _;
use imagedrift::config::{Config, Log, RunFlags};
use imagedrift::controller::events::{Recorder, Reporter};
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
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
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
    init_tracing(&Log {
        filter: run_filter(&config.log.filter, super::verbosity()),
        ..config.log.clone()
    });
    if std::env::var_os("IMAGEDRIFT_NAMESPACE").is_some()
        && std::env::var_os("IMAGEDRIFT_NAMESPACES").is_none()
    {
        tracing::warn!(
            "IMAGEDRIFT_NAMESPACE is set but run reads IMAGEDRIFT_NAMESPACES (a comma-separated list, as --namespace); IMAGEDRIFT_NAMESPACE is ignored"
        );
    }
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
            ExitCode::from(2)
        }
    }
}

/// The log filter of `run`: the configured one, with the kube libraries'
/// own lines off (each failed request is an ERROR line there, repeating
/// what imagedrift logs once per resource and back-off step) unless the
/// filter names them or `-v` is given.
fn run_filter(configured: &str, verbosity: u8) -> String {
    match verbosity {
        0 if configured.contains("kube") => configured.to_string(),
        0 => format!("{configured},kube_client=off,kube_runtime=off"),
        1 => format!("{configured},imagedrift=debug"),
        _ => "debug".to_string(),
    }
}

/// The one start-up line: what this replica will do.
fn log_start(config: &Config, enable_remedies: bool) {
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(",")
        }
    };
    let overrides: Vec<String> = config
        .registries
        .hosts
        .iter()
        .map(|(host, h)| {
            let mut what = Vec::new();
            if let Some(e) = &h.endpoint {
                what.push(format!("endpoint={e}"));
            }
            if h.insecure_http {
                what.push("insecureHttp".into());
            }
            if h.ca_bundle.is_some() {
                what.push("caBundle".into());
            }
            if h.skip_tls_verify {
                what.push("skipTlsVerify".into());
            }
            if h.timeout.is_some() || h.max_concurrent.is_some() || h.requests_per_second.is_some()
            {
                what.push("limits".into());
            }
            format!("{host}({})", what.join(" "))
        })
        .collect();
    let remedies = if enable_remedies || remedies_configured(&config.remedies) {
        "on"
    } else {
        "off"
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        interval = %humantime(config.interval),
        namespaces = %if config.namespaces.include.is_empty() { "all".to_string() } else { config.namespaces.include.join(",") },
        excluded_namespaces = %list(&config.namespaces.exclude),
        selector = if config.label_selector.is_empty() { "-" } else { config.label_selector.as_str() },
        leader_election = config.leader_election.enabled,
        remedies,
        dry_run = config.remedies.dry_run,
        registry_overrides = %list(&overrides),
        credentials_file = config.registries.credentials_file.is_some(),
        pull_secrets = config.pull_secrets.enabled,
        "imagedrift {} starting",
        env!("CARGO_PKG_VERSION")
    );
}

/// `5m`, `90s`, `1h30m`: a duration as the configuration writes it.
fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if sec > 0 || out.is_empty() {
        out.push_str(&format!("{sec}s"));
    }
    out
}

async fn run(config: Config, flags: RunFlags) -> anyhow::Result<()> {
    log_start(&config, flags.enable_remedies);
    let prom = prometheus::Registry::new();
    let metrics = Metrics::register(&prom).context("registering metrics")?;
    metrics.set_container_series(config.metrics.container_series);
    let registry = Arc::new(Resolver::new(config.registries.clone(), &prom)?);
    let (client, cluster) = kube_client(&flags.kube).await?;
    tracing::info!(server = %cluster.server, context = cluster.context.as_deref().unwrap_or("in-cluster"), "Kubernetes API server");
    if config.pull_secrets.enabled {
        tracing::info!("reading pods' imagePullSecrets by name");
        let reader = ApiSecrets(client.clone());
        let creds = SecretCredentials::new(reader, KeyringParser, config.pull_secrets.cache_ttl);
        serve(
            config,
            (client, cluster),
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
            (client, cluster),
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
    (client, cluster): (kube::Client, super::Cluster),
    prom: prometheus::Registry,
    enable_remedies: bool,
    metrics: Metrics,
    registry: Arc<Resolver>,
    credentials: Arc<C>,
) -> anyhow::Result<()> {
    let token = CancellationToken::new();
    spawn_signal_handler(token.clone());
    // Rotated tokens and edited ConfigMaps are picked up without a restart.
    tokio::spawn(imagedrift::credentials::reload::watch(
        registry.node_credentials(),
        imagedrift::credentials::reload::POLL_EVERY,
        token.clone(),
    ));

    let le = &config.leader_election;
    let lease = LeaseSettings::from_env(
        &le.lease_name,
        &le.lease_namespace,
        le.lease_duration.as_secs(),
        le.retry_period,
    );
    let mut leadership = if le.enabled {
        tracing::info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity, "leader election on");
        elect(client.clone(), &lease)
            .await
            .context("starting leader election")?
    } else {
        Leadership::always()
    };
    leadership.export(metrics.leader.clone());

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
    let (webhooks, hints) = webhook_listener(&config, &prom).await?;
    let http = tokio::spawn({
        let main = imagedrift::http::serve(
            listener,
            imagedrift::http::router(metrics.clone(), ready.clone()),
            token.clone(),
        );
        let token = token.clone();
        // One part: either server failing stops the process.
        async move {
            match webhooks {
                Some((l, router)) => {
                    tokio::try_join!(main, imagedrift::http::serve(l, router, token)).map(|_| ())
                }
                None => main.await,
            }
        }
    });

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
        client: client.clone(),
        ready,
        remedies,
    };
    let inputs = watch_all(
        client,
        &config.namespaces,
        &config.label_selector,
        &cluster.server,
    );
    let controller = tokio::spawn(runner::run_with_hints(
        ctx,
        inputs,
        Box::new(RandomJitter::default()),
        token.clone(),
        hints,
    ));
    let mut parts = Parts {
        controller,
        http,
        lease: leadership.task.take(),
    };
    let outcome = first_to_stop(&token, &mut parts).await;
    token.cancel();
    // Dropping every leadership receiver makes the lease task release the lease.
    drop(leadership);
    wind_down(parts, Duration::from_secs(10)).await;
    tracing::info!("stopped");
    outcome
}

/// The webhook listener's socket and router, and the loop's end of the
/// hint channel; neither when `webhooks.listen` is empty.
async fn webhook_listener(
    config: &Config,
    prom: &prometheus::Registry,
) -> anyhow::Result<(
    Option<(tokio::net::TcpListener, axum::Router)>,
    Option<imagedrift::webhook::Hints>,
)> {
    use imagedrift::webhook::{self, WebhookMetrics, matcher::Matcher, server::Webhooks};
    let wc = &config.webhooks;
    if !wc.enabled() {
        return Ok((None, None));
    }
    let metrics = WebhookMetrics::register(prom).context("registering webhook metrics")?;
    let (tx, hints) = webhook::channel(wc.coalesce, metrics.clone());
    let router = Webhooks::new(wc, Matcher::new(&config.registries), metrics, tx)?.router();
    let listener = tokio::net::TcpListener::bind(&wc.listen)
        .await
        .with_context(|| {
            format!(
                "listening on {} (key `webhooks.listen`, flag --webhook-listen)",
                wc.listen
            )
        })?;
    tracing::info!(listen = %wc.listen, "serving POST /webhooks/<source>");
    Ok((Some((listener, router)), Some(hints)))
}

/// The long-running tasks; whichever stops first stops the others.
struct Parts {
    controller: JoinHandle<Result<(), runner::RunError>>,
    http: JoinHandle<std::io::Result<()>>,
    lease: Option<JoinHandle<Result<(), String>>>,
}

/// Waits until shutdown is asked for or a part stops by itself; the latter
/// is an error. A shutdown request wins over the parts it stops (`biased`):
/// the HTTP server and the controller end *because* the token was cancelled.
async fn first_to_stop(token: &CancellationToken, p: &mut Parts) -> anyhow::Result<()> {
    tokio::select! {
        biased;
        _ = token.cancelled() => Ok(()),
        r = &mut p.controller => match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow::anyhow!(e).context("controller stopped")),
            Err(e) => Err(anyhow::anyhow!(e).context("controller task failed")),
        },
        r = &mut p.http => match r {
            Ok(Ok(())) => Err(anyhow::anyhow!("HTTP server stopped")),
            Ok(Err(e)) => Err(anyhow::anyhow!(e).context("HTTP server failed")),
            Err(e) => Err(anyhow::anyhow!(e).context("HTTP task failed")),
        },
        r = async { match p.lease.as_mut() { Some(t) => t.await, None => std::future::pending().await } } => match r {
            Ok(Ok(())) => Err(anyhow::anyhow!("leader election stopped")),
            Ok(Err(e)) => Err(anyhow::anyhow!(e).context("leader election failed")),
            Err(e) => Err(anyhow::anyhow!(e).context("lease task failed")),
        },
    }
}

/// Gives the parts `grace` to finish. A part that already finished is not
/// awaited again: the one `first_to_stop` saw end was polled to completion,
/// and polling a `JoinHandle` after that panics.
async fn wind_down(p: Parts, grace: Duration) {
    async fn join<T>(h: JoinHandle<T>) {
        if !h.is_finished() {
            let _ = h.await;
        }
    }
    let _ = tokio::time::timeout(grace, async {
        join(p.controller).await;
        join(p.http).await;
        if let Some(t) = p.lease {
            join(t).await;
        }
    })
    .await;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(
        controller: Result<(), runner::RunError>,
        http: std::io::Result<()>,
        lease: Option<Result<(), String>>,
    ) -> Parts {
        Parts {
            controller: tokio::spawn(async move { controller }),
            http: tokio::spawn(async move { http }),
            lease: lease.map(|l| tokio::spawn(async move { l })),
        }
    }

    async fn finished(p: &Parts) {
        while !(p.controller.is_finished()
            && p.http.is_finished()
            && p.lease.as_ref().is_none_or(|l| l.is_finished()))
        {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn sigterm_is_a_clean_stop_even_when_the_parts_ended_first() {
        // SIGTERM cancels the token; the HTTP server and the controller end
        // because of it, possibly before the select looks. That used to be
        // read (at random) as "HTTP server stopped", exit 1, and then
        // panicked awaiting the finished JoinHandle again.
        for _ in 0..20 {
            let token = CancellationToken::new();
            token.cancel();
            let mut p = parts(Ok(()), Ok(()), Some(Ok(())));
            finished(&p).await;
            assert!(first_to_stop(&token, &mut p).await.is_ok());
            wind_down(p, Duration::from_secs(1)).await;
        }
    }

    #[tokio::test]
    async fn a_part_stopping_by_itself_is_an_error_and_winding_down_does_not_panic() {
        let token = CancellationToken::new();
        let mut p = parts(Err(runner::RunError::WatchEnded), Ok(()), None);
        // Only the controller has ended; the HTTP part stays up until cancelled.
        p.http = tokio::spawn({
            let token = token.clone();
            async move {
                token.cancelled().await;
                Ok(())
            }
        });
        let e = first_to_stop(&token, &mut p).await.unwrap_err();
        assert_eq!(e.to_string(), "controller stopped");
        token.cancel();
        wind_down(p, Duration::from_secs(5)).await;

        let token = CancellationToken::new();
        let mut p = parts(Ok(()), Err(std::io::Error::other("accept failed")), None);
        p.controller = tokio::spawn({
            let token = token.clone();
            async move {
                token.cancelled().await;
                Ok(())
            }
        });
        let e = first_to_stop(&token, &mut p).await.unwrap_err();
        assert_eq!(format!("{e:#}"), "HTTP server failed: accept failed");
        token.cancel();
        wind_down(p, Duration::from_secs(5)).await;
    }
}
