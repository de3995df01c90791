//! The controller's Prometheus metrics: one registry (shared with the
//! registry module), one `imagedrift_` prefix, bounded labels. A pod's
//! series are removed when the pod goes.

use prometheus::{Gauge, Histogram, HistogramOpts, IntGauge, IntGaugeVec, Opts, Registry};
use std::sync::Arc;
use std::time::Instant;

/// The controller's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// `imagedrift_container_stale`: 1 when the container runs stale content.
    pub container_stale: IntGaugeVec,
    /// `imagedrift_container_verdict`: 1 for the container's current verdict.
    pub container_verdict: IntGaugeVec,
    /// `imagedrift_workload_stale_containers`: stale containers per workload.
    pub workload_stale: IntGaugeVec,
    /// `imagedrift_check_duration_seconds`: one reference's check (resolve and judge).
    pub check_duration: Histogram,
    /// `imagedrift_last_full_check_timestamp_seconds`: when every reference was last checked.
    pub last_full_check: Gauge,
    /// `imagedrift_unique_images`: unique references being checked.
    pub unique_images: IntGauge,
    /// `imagedrift_build_info`: always 1, with the version.
    pub build_info: IntGaugeVec,
}

/// Label names of `imagedrift_container_stale`.
pub const STALE_LABELS: [&str; 7] = [
    "namespace",
    "pod",
    "container",
    "image",
    "owner_kind",
    "owner_name",
    "node",
];
/// Label names of `imagedrift_container_verdict`.
pub const VERDICT_LABELS: [&str; 5] = ["namespace", "pod", "container", "verdict", "reason"];
/// Label names of `imagedrift_workload_stale_containers`.
pub const WORKLOAD_LABELS: [&str; 3] = ["namespace", "owner_kind", "owner_name"];

/// The label values one container's series were written with, kept so
/// they can be removed exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSeries {
    /// Values for [`STALE_LABELS`].
    pub stale: [Arc<str>; 7],
    /// Values for [`VERDICT_LABELS`].
    pub verdict: [Arc<str>; 5],
}

fn values<const N: usize>(v: &[Arc<str>; N]) -> [&str; N] {
    std::array::from_fn(|i| &*v[i])
}

impl Metrics {
    /// Creates and registers the metrics in `registry`.
    pub fn register(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let m = Metrics {
            container_stale: IntGaugeVec::new(
                Opts::new("imagedrift_container_stale", "1 when the container runs content its tag no longer serves, else 0"),
                &STALE_LABELS,
            )?,
            container_verdict: IntGaugeVec::new(
                Opts::new("imagedrift_container_verdict", "1 for the container's current verdict and reason"),
                &VERDICT_LABELS,
            )?,
            workload_stale: IntGaugeVec::new(
                Opts::new("imagedrift_workload_stale_containers", "Stale containers of a workload"),
                &WORKLOAD_LABELS,
            )?,
            check_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "imagedrift_check_duration_seconds",
                    "Time to check one unique reference: resolve its tag and judge every container using it",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            )?,
            last_full_check: Gauge::new(
                "imagedrift_last_full_check_timestamp_seconds",
                "Unix time at which every unique reference had been checked since the previous full check",
            )?,
            unique_images: IntGauge::new("imagedrift_unique_images", "Unique image references being checked")?,
            build_info: IntGaugeVec::new(
                Opts::new("imagedrift_build_info", "Always 1; labels name the build"),
                &["version"],
            )?,
        };
        registry.register(Box::new(m.container_stale.clone()))?;
        registry.register(Box::new(m.container_verdict.clone()))?;
        registry.register(Box::new(m.workload_stale.clone()))?;
        registry.register(Box::new(m.check_duration.clone()))?;
        registry.register(Box::new(m.last_full_check.clone()))?;
        registry.register(Box::new(m.unique_images.clone()))?;
        registry.register(Box::new(m.build_info.clone()))?;
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Ok(m)
    }

    /// Writes one container's series, removing its previous ones if the
    /// labels changed (new verdict, node, owner).
    pub fn set_container(
        &self,
        previous: Option<&ContainerSeries>,
        now: &ContainerSeries,
        stale: bool,
    ) {
        if let Some(p) = previous {
            if p.stale != now.stale {
                let _ = self.container_stale.remove_label_values(&values(&p.stale));
            }
            if p.verdict != now.verdict {
                let _ = self
                    .container_verdict
                    .remove_label_values(&values(&p.verdict));
            }
        }
        self.container_stale
            .with_label_values(&values(&now.stale))
            .set(i64::from(stale));
        self.container_verdict
            .with_label_values(&values(&now.verdict))
            .set(1);
    }

    /// Removes one container's series.
    pub fn remove_container(&self, s: &ContainerSeries) {
        let _ = self.container_stale.remove_label_values(&values(&s.stale));
        let _ = self
            .container_verdict
            .remove_label_values(&values(&s.verdict));
    }

    /// Sets a workload's stale container count; 0 removes the series.
    pub fn set_workload(&self, namespace: &str, kind: &str, name: &str, stale: usize) {
        let labels = [namespace, kind, name];
        if stale == 0 {
            let _ = self.workload_stale.remove_label_values(&labels);
        } else {
            self.workload_stale
                .with_label_values(&labels)
                .set(stale as i64);
        }
    }

    /// A guard that records a check's duration when dropped.
    pub fn time_check(&self) -> DurationGuard {
        DurationGuard {
            histogram: self.check_duration.clone(),
            start: Instant::now(),
        }
    }

    /// Marks a full check as completed now.
    pub fn full_check_done(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        self.last_full_check.set(now);
    }
}

/// Records the time since its creation into a histogram when dropped.
pub struct DurationGuard {
    histogram: Histogram,
    start: Instant,
}

impl Drop for DurationGuard {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

/// The text exposition of everything in `registry`.
pub fn encode(registry: &Registry) -> Result<String, prometheus::Error> {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    prometheus::TextEncoder::new().encode(&registry.gather(), &mut buf)?;
    String::from_utf8(buf).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(pod: &str, verdict: &str) -> ContainerSeries {
        let a = |s: &str| Arc::<str>::from(s);
        ContainerSeries {
            stale: [
                a("ns"),
                a(pod),
                a("app"),
                a("docker.io/library/nginx:1"),
                a("Deployment"),
                a("web"),
                a("n1"),
            ],
            verdict: [a("ns"), a(pod), a("app"), a(verdict), a("")],
        }
    }

    #[test]
    fn series_follow_verdicts_and_pods() {
        let reg = Registry::new();
        let m = Metrics::register(&reg).unwrap();
        let fresh = series("p1", "fresh");
        m.set_container(None, &fresh, false);
        let stale = series("p1", "stale");
        m.set_container(Some(&fresh), &stale, true);
        let text = encode(&reg).unwrap();
        assert!(text.contains(r#"imagedrift_container_verdict{container="app",namespace="ns",pod="p1",reason="",verdict="stale"} 1"#), "{text}");
        assert!(
            !text.contains(r#"verdict="fresh""#),
            "old verdict series removed: {text}"
        );
        assert!(
            text.contains(r#"node="n1",owner_kind="Deployment",owner_name="web",pod="p1"} 1"#),
            "{text}"
        );
        m.set_workload("ns", "Deployment", "web", 2);
        assert!(encode(&reg).unwrap().contains(r#"imagedrift_workload_stale_containers{namespace="ns",owner_kind="Deployment",owner_name="web"} 2"#));
        m.remove_container(&stale);
        m.set_workload("ns", "Deployment", "web", 0);
        let text = encode(&reg).unwrap();
        assert!(!text.contains("pod=\"p1\""), "{text}");
        assert!(!text.contains("owner_name=\"web\""), "{text}");
        assert!(text.contains("imagedrift_build_info{version="), "{text}");
    }

    #[test]
    fn guard_records_on_drop() {
        let reg = Registry::new();
        let m = Metrics::register(&reg).unwrap();
        drop(m.time_check());
        assert_eq!(m.check_duration.get_sample_count(), 1);
        m.full_check_done();
        assert!(m.last_full_check.get() > 0.0);
    }
}
