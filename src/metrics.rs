//! The controller's Prometheus metrics: one registry (shared with the
//! registry module), one `imagedrift_` prefix, bounded labels. A pod's
//! series are removed when the pod goes.

use prometheus::{Gauge, Histogram, HistogramOpts, IntGauge, IntGaugeVec, Opts, Registry};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The controller's metrics.
#[derive(Clone)]
pub struct Metrics {
    /// The registry everything else (including the registry module) uses.
    registry: Registry,
    /// Per-container series (`imagedrift_container_stale` and
    /// `imagedrift_container_verdict`), rendered at scrape time.
    containers: ContainerCollector,
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
    /// `imagedrift_leader`: 1 while this replica leads, else 0.
    pub leader: IntGauge,
}

/// Which containers `/metrics` gives per-container series
/// (`metrics.containerSeries`). Workload-level series and the per-verdict
/// totals (`imagedrift_containers`) are exported in every mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerSeriesMode {
    /// Every container: two series each (the dashboard's per-container panels).
    #[default]
    All,
    /// Only stale containers: two series each.
    Stale,
    /// None.
    None,
}

impl ContainerSeriesMode {
    fn admits(self, s: &ContainerSeries) -> bool {
        match self {
            ContainerSeriesMode::All => true,
            ContainerSeriesMode::Stale => s.stale,
            ContainerSeriesMode::None => false,
        }
    }
}

/// Label names of `imagedrift_container_stale`.
pub const STALE_LABELS: [&str; 8] = [
    "namespace",
    "pod",
    "container",
    "kind",
    "image",
    "owner_kind",
    "owner_name",
    "node",
];
/// Label names of `imagedrift_container_verdict`.
pub const VERDICT_LABELS: [&str; 6] =
    ["namespace", "pod", "container", "kind", "verdict", "reason"];
/// Label names of `imagedrift_workload_stale_containers`.
pub const WORKLOAD_LABELS: [&str; 3] = ["namespace", "owner_kind", "owner_name"];

/// Identifies a container's series: namespace, pod, container (or image
/// volume) name, kind (`container`, `init`, `ephemeral`, `image_volume`).
pub type SeriesKey = (Arc<str>, Arc<str>, Arc<str>, &'static str);

/// One container's labels and values (besides its key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSeries {
    /// Normalised spec image.
    pub image: Arc<str>,
    /// Workload kind.
    pub owner_kind: Arc<str>,
    /// Workload name.
    pub owner_name: Arc<str>,
    /// Node name (empty when unscheduled).
    pub node: Arc<str>,
    /// `fresh`, `stale`, `pinned` or `unknown`.
    pub verdict: &'static str,
    /// Bounded reason: the unknown category, else the rule that decided
    /// (the REASON column of `scan`).
    pub reason: &'static str,
    /// Whether it runs stale content.
    pub stale: bool,
}

/// A container's verdict and reason labels, as its totals count them.
pub type VerdictLabels = (&'static str, &'static str);

/// Keeps the per-verdict totals (kept up to date as verdicts change, so
/// nothing is walked to count them) and, for the containers the mode
/// admits, one small record each, grouped by pod and ordered by key: a
/// scrape writes both per-container families straight from the records, in
/// chunks ([`Scrape`]), so no per-series objects are held and the scrape
/// text is never built whole (30,000 containers make 10 MB of text). A
/// pod's series vanish the moment its records are removed.
#[derive(Clone, Default)]
struct ContainerCollector {
    inner: Arc<Mutex<Collected>>,
    /// A [`ContainerSeriesMode`] as its index.
    mode: Arc<AtomicU8>,
}

/// Identifies a pod's records: namespace, pod.
type PodKey = (Arc<str>, Arc<str>);

/// The records of one pod's admitted containers. Owner and node are the
/// pod's (the newest written), so three containers hold them once: at
/// 30,000 containers a record per container with its own labels and key
/// was 8.6 MiB of the controller's heap, this about a third.
struct PodSeries {
    owner_kind: Arc<str>,
    owner_name: Arc<str>,
    node: Arc<str>,
    /// Ordered by (name, kind), as the scrape writes them.
    containers: Vec<ContainerRecord>,
}

/// One admitted container: its name, image and an index into
/// [`Collected::labels`] for its (kind, verdict, reason).
struct ContainerRecord {
    name: Arc<str>,
    image: Arc<str>,
    labels: u16,
    stale: bool,
}

#[derive(Default)]
struct Collected {
    /// Records of the containers the mode admits, by pod.
    pods: BTreeMap<PodKey, PodSeries>,
    /// Every (kind, verdict, reason) a record has used: a few dozen at most,
    /// since each is a fixed label value.
    labels: Vec<(&'static str, &'static str, &'static str)>,
    /// Containers per (verdict, reason), every container counted.
    totals: BTreeMap<VerdictLabels, usize>,
}

impl Collected {
    fn count(&mut self, labels: VerdictLabels, delta: isize) {
        let n = self.totals.entry(labels).or_default();
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            self.totals.remove(&labels);
        }
    }

    fn label_index(&mut self, set: (&'static str, &'static str, &'static str)) -> u16 {
        if let Some(i) = self.labels.iter().position(|l| *l == set) {
            return i as u16;
        }
        self.labels.push(set);
        (self.labels.len() - 1) as u16
    }

    fn insert(&mut self, key: SeriesKey, s: ContainerSeries) {
        let (ns, pod, name, kind) = key;
        let labels = self.label_index((kind, s.verdict, s.reason));
        let record = ContainerRecord {
            name,
            image: s.image,
            labels,
            stale: s.stale,
        };
        let entry = self.pods.entry((ns, pod)).or_insert_with(|| PodSeries {
            owner_kind: s.owner_kind.clone(),
            owner_name: s.owner_name.clone(),
            node: s.node.clone(),
            containers: Vec::with_capacity(1),
        });
        entry.owner_kind = s.owner_kind;
        entry.owner_name = s.owner_name;
        entry.node = s.node;
        let all = &self.labels;
        let at = entry
            .containers
            .binary_search_by(|r| (&*r.name, all[r.labels as usize].0).cmp(&(&*record.name, kind)));
        match at {
            Ok(i) => entry.containers[i] = record,
            Err(i) => entry.containers.insert(i, record),
        }
    }

    fn remove(&mut self, key: &SeriesKey) {
        let (ns, pod, name, kind) = key;
        let pod_key = (ns.clone(), pod.clone());
        let Some(entry) = self.pods.get_mut(&pod_key) else {
            return;
        };
        let all = &self.labels;
        entry
            .containers
            .retain(|r| !(*r.name == **name && all[r.labels as usize].0 == *kind));
        if entry.containers.is_empty() {
            self.pods.remove(&pod_key);
        }
    }
}

const STALE_NAME: &str = "imagedrift_container_stale";
const STALE_HELP: &str = "1 when the container runs content its tag no longer serves, else 0";
const VERDICT_NAME: &str = "imagedrift_container_verdict";
const VERDICT_HELP: &str = "1 for the container's current verdict and reason";
const TOTAL_NAME: &str = "imagedrift_containers";
const TOTAL_HELP: &str =
    "Containers judged, by verdict and reason (exported in every containerSeries mode)";
/// Records written per scrape chunk (about 100 KB of text).
const CHUNK_SERIES: usize = 400;

impl ContainerCollector {
    fn lock(&self) -> std::sync::MutexGuard<'_, Collected> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn mode(&self) -> ContainerSeriesMode {
        match self.mode.load(Ordering::Relaxed) {
            0 => ContainerSeriesMode::All,
            1 => ContainerSeriesMode::Stale,
            _ => ContainerSeriesMode::None,
        }
    }

    /// Appends the per-verdict totals in the Prometheus text format.
    fn write_totals(&self, out: &mut String) {
        let c = self.lock();
        let _ = writeln!(
            out,
            "# HELP {TOTAL_NAME} {TOTAL_HELP}\n# TYPE {TOTAL_NAME} gauge"
        );
        for ((verdict, reason), n) in &c.totals {
            out.push_str(TOTAL_NAME);
            labels(out, &[("reason", reason), ("verdict", verdict)]);
            let _ = writeln!(out, " {n}");
        }
    }

    /// Appends the records of one family for the pods after `after`, whole
    /// pods until at least [`CHUNK_SERIES`] are written; returns the last
    /// pod written (`None`: the family is done).
    fn write_family(
        &self,
        out: &mut String,
        stale_family: bool,
        after: Option<&PodKey>,
    ) -> Option<PodKey> {
        use std::ops::Bound;
        let c = self.lock();
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut last = None;
        let mut written = 0;
        for (key, p) in c.pods.range::<PodKey, _>((from, Bound::Unbounded)) {
            if written >= CHUNK_SERIES {
                break;
            }
            let (ns, pod) = key;
            for r in &p.containers {
                let (kind, verdict, reason) = c.labels[r.labels as usize];
                if stale_family {
                    out.push_str(STALE_NAME);
                    labels(
                        out,
                        &[
                            ("container", &r.name),
                            ("image", &r.image),
                            ("kind", kind),
                            ("namespace", ns),
                            ("node", &p.node),
                            ("owner_kind", &p.owner_kind),
                            ("owner_name", &p.owner_name),
                            ("pod", pod),
                        ],
                    );
                    out.push_str(if r.stale { " 1\n" } else { " 0\n" });
                } else {
                    out.push_str(VERDICT_NAME);
                    labels(
                        out,
                        &[
                            ("container", &r.name),
                            ("kind", kind),
                            ("namespace", ns),
                            ("pod", pod),
                            ("reason", reason),
                            ("verdict", verdict),
                        ],
                    );
                    out.push_str(" 1\n");
                }
                written += 1;
            }
            last = Some(key);
        }
        last.cloned()
    }
}

/// One scrape of `/metrics` as a sequence of text chunks: the shared
/// registry and the totals first, then each per-container family a chunk
/// of records at a time, each chunk taken under the lock and resumed after
/// the last key written. A record changed between chunks shows its newest
/// value, as with any scrape taken while verdicts change.
pub struct Scrape {
    metrics: Metrics,
    step: ScrapeStep,
}

enum ScrapeStep {
    Head,
    Family { stale: bool, after: Option<PodKey> },
    Done,
}

impl Iterator for Scrape {
    type Item = Result<String, prometheus::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let c = &self.metrics.containers;
        match std::mem::replace(&mut self.step, ScrapeStep::Done) {
            ScrapeStep::Head => {
                use prometheus::Encoder;
                let mut buf = Vec::new();
                if let Err(e) =
                    prometheus::TextEncoder::new().encode(&self.metrics.registry.gather(), &mut buf)
                {
                    return Some(Err(e));
                }
                let mut text = match String::from_utf8(buf) {
                    Ok(t) => t,
                    Err(e) => return Some(Err(prometheus::Error::Msg(e.to_string()))),
                };
                c.write_totals(&mut text);
                let admits_any = c.mode() != ContainerSeriesMode::None && !c.lock().pods.is_empty();
                if admits_any {
                    let _ = writeln!(
                        text,
                        "# HELP {STALE_NAME} {STALE_HELP}\n# TYPE {STALE_NAME} gauge"
                    );
                    self.step = ScrapeStep::Family {
                        stale: true,
                        after: None,
                    };
                }
                Some(Ok(text))
            }
            ScrapeStep::Family { stale, after } => {
                let mut text = String::with_capacity(CHUNK_SERIES * 330);
                match c.write_family(&mut text, stale, after.as_ref()) {
                    Some(last) => {
                        self.step = ScrapeStep::Family {
                            stale,
                            after: Some(last),
                        }
                    }
                    None if stale => {
                        let _ = writeln!(
                            text,
                            "# HELP {VERDICT_NAME} {VERDICT_HELP}\n# TYPE {VERDICT_NAME} gauge"
                        );
                        self.step = ScrapeStep::Family {
                            stale: false,
                            after: None,
                        };
                    }
                    None => {}
                }
                Some(Ok(text))
            }
            ScrapeStep::Done => None,
        }
    }
}

/// Writes `{a="x",b="y"}`, escaping values as the text format requires.
fn labels(out: &mut String, pairs: &[(&str, &str)]) {
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for ch in v.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

impl Metrics {
    /// Creates and registers the metrics in `registry`.
    pub fn register(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let m = Metrics {
            registry: registry.clone(),
            containers: ContainerCollector::default(),
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
            leader: IntGauge::new(
                "imagedrift_leader",
                "1 while this replica holds the leader Lease (or runs without election), else 0",
            )?,
            build_info: IntGaugeVec::new(
                Opts::new("imagedrift_build_info", "Always 1; labels name the build"),
                &["version"],
            )?,
        };
        registry.register(Box::new(m.workload_stale.clone()))?;
        registry.register(Box::new(m.check_duration.clone()))?;
        registry.register(Box::new(m.last_full_check.clone()))?;
        registry.register(Box::new(m.unique_images.clone()))?;
        registry.register(Box::new(m.build_info.clone()))?;
        registry.register(Box::new(m.leader.clone()))?;
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Ok(m)
    }

    /// Chooses which containers get per-container series.
    pub fn set_container_series(&self, mode: ContainerSeriesMode) {
        let i = match mode {
            ContainerSeriesMode::All => 0,
            ContainerSeriesMode::Stale => 1,
            ContainerSeriesMode::None => 2,
        };
        self.containers.mode.store(i, Ordering::Relaxed);
    }

    /// Writes (or replaces) one container's series; `previous` is the
    /// verdict it had until now (`None`: a container new to the totals).
    pub fn set_container(
        &self,
        key: SeriesKey,
        series: ContainerSeries,
        previous: Option<VerdictLabels>,
    ) {
        let admitted = self.containers.mode().admits(&series);
        let mut c = self.containers.lock();
        if let Some(p) = previous {
            c.count(p, -1);
        }
        c.count((series.verdict, series.reason), 1);
        if admitted {
            c.insert(key, series);
        } else {
            c.remove(&key);
        }
    }

    /// Removes one container's series; `previous` is the verdict it had.
    pub fn remove_container(&self, key: &SeriesKey, previous: VerdictLabels) {
        let mut c = self.containers.lock();
        c.count(previous, -1);
        c.remove(key);
    }

    /// How many containers are counted in the totals.
    pub fn container_series(&self) -> usize {
        self.containers.lock().totals.values().sum()
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

impl Metrics {
    /// One scrape, chunk by chunk (what `/metrics` streams).
    pub fn scrape(&self) -> Scrape {
        Scrape {
            metrics: self.clone(),
            step: ScrapeStep::Head,
        }
    }

    /// The whole `/metrics` text: everything in the shared registry, then
    /// the per-verdict totals and the per-container families.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        self.scrape().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pod: &str) -> SeriesKey {
        (
            Arc::from("ns"),
            Arc::from(pod),
            Arc::from("app"),
            "container",
        )
    }

    fn series(verdict: &'static str) -> ContainerSeries {
        ContainerSeries {
            image: Arc::from("docker.io/library/nginx:1"),
            owner_kind: Arc::from("Deployment"),
            owner_name: Arc::from("web"),
            node: Arc::from("n1"),
            verdict,
            reason: "",
            stale: verdict == "stale",
        }
    }

    #[test]
    fn series_follow_verdicts_and_pods() {
        let reg = Registry::new();
        let m = Metrics::register(&reg).unwrap();
        m.set_container(key("p1"), series("fresh"), None);
        m.set_container(key("p1"), series("stale"), Some(("fresh", "")));
        let text = m.render().unwrap();
        assert!(text.contains(r#"imagedrift_container_verdict{container="app",kind="container",namespace="ns",pod="p1",reason="",verdict="stale"} 1"#), "{text}");
        assert!(
            !text.contains(r#"verdict="fresh""#),
            "old verdict series replaced: {text}"
        );
        assert!(text.contains(r#"imagedrift_container_stale{container="app",image="docker.io/library/nginx:1",kind="container",namespace="ns",node="n1",owner_kind="Deployment",owner_name="web",pod="p1"} 1"#), "{text}");
        assert!(
            text.contains("# TYPE imagedrift_container_stale gauge"),
            "{text}"
        );
        m.set_workload("ns", "Deployment", "web", 2);
        assert!(m.render().unwrap().contains(r#"imagedrift_workload_stale_containers{namespace="ns",owner_kind="Deployment",owner_name="web"} 2"#));
        m.remove_container(&key("p1"), ("stale", ""));
        m.set_workload("ns", "Deployment", "web", 0);
        let text = m.render().unwrap();
        assert!(!text.contains("pod=\"p1\""), "{text}");
        assert!(!text.contains("owner_name=\"web\""), "{text}");
        assert!(text.contains("imagedrift_build_info{version="), "{text}");
        assert_eq!(m.container_series(), 0);
    }

    #[test]
    fn a_pods_containers_are_written_in_order_and_removed_one_by_one() {
        let m = Metrics::register(&Registry::new()).unwrap();
        let entry = |name: &str, kind| (Arc::from("ns"), Arc::from("p1"), Arc::from(name), kind);
        // Inserted out of order; a volume shares a container's name.
        m.set_container(entry("web", "container"), series("fresh"), None);
        m.set_container(entry("app", "image_volume"), series("fresh"), None);
        m.set_container(entry("app", "container"), series("fresh"), None);
        let mut moved = series("stale");
        moved.node = Arc::from("n2");
        m.set_container(entry("web", "container"), moved, Some(("fresh", "")));
        let text = m.render().unwrap();
        let verdicts: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("imagedrift_container_verdict{"))
            .collect();
        assert_eq!(verdicts.len(), 3, "{text}");
        assert!(
            verdicts[0].contains(r#"container="app",kind="container""#),
            "{text}"
        );
        assert!(
            verdicts[1].contains(r#"container="app",kind="image_volume""#),
            "{text}"
        );
        assert!(
            verdicts[2].contains(r#"container="web""#)
                && verdicts[2].contains(r#"verdict="stale""#),
            "{text}"
        );
        // Owner and node are the pod's: the newest written shows on every entry.
        let stale: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("imagedrift_container_stale{"))
            .collect();
        assert_eq!(stale.len(), 3, "{text}");
        assert!(stale.iter().all(|l| l.contains(r#"node="n2""#)), "{text}");
        m.remove_container(&entry("app", "container"), ("fresh", ""));
        let text = m.render().unwrap();
        assert!(
            text.contains(r#"container="app",kind="image_volume""#),
            "{text}"
        );
        assert!(
            !text.contains(r#"container="app",kind="container""#),
            "{text}"
        );
        assert_eq!(m.container_series(), 2);
        m.remove_container(&entry("app", "image_volume"), ("fresh", ""));
        m.remove_container(&entry("web", "container"), ("stale", ""));
        let text = m.render().unwrap();
        assert!(!text.contains("pod=\"p1\""), "{text}");
        assert_eq!(m.container_series(), 0);
    }

    #[test]
    fn container_series_modes() {
        let count = |text: &str, name: &str| {
            text.lines()
                .filter(|l| l.starts_with(&format!("{name}{{")))
                .count()
        };
        let with_mode = |mode| {
            let m = Metrics::register(&Registry::new()).unwrap();
            m.set_container_series(mode);
            m.set_container(key("p1"), series("fresh"), None);
            m.set_container(key("p2"), series("fresh"), None);
            m.set_container(key("p2"), series("stale"), Some(("fresh", "")));
            m.set_container(key("p3"), series("stale"), None);
            m.remove_container(&key("p3"), ("stale", ""));
            m.set_workload("ns", "Deployment", "web", 1);
            m.render().unwrap()
        };
        let all = with_mode(ContainerSeriesMode::All);
        assert_eq!(count(&all, STALE_NAME), 2, "{all}");
        assert_eq!(count(&all, VERDICT_NAME), 2, "{all}");
        let stale = with_mode(ContainerSeriesMode::Stale);
        assert_eq!(count(&stale, STALE_NAME), 1, "{stale}");
        assert_eq!(count(&stale, VERDICT_NAME), 1, "{stale}");
        assert!(
            stale.contains(r#"pod="p2""#) && !stale.contains(r#"pod="p1""#),
            "{stale}"
        );
        let none = with_mode(ContainerSeriesMode::None);
        assert_eq!(
            count(&none, STALE_NAME) + count(&none, VERDICT_NAME),
            0,
            "{none}"
        );
        assert!(!none.contains(STALE_NAME), "no empty family: {none}");
        // In every mode: workload series and the per-verdict totals, kept
        // as verdicts change and containers go.
        for text in [&all, &stale, &none] {
            assert!(text.contains(r#"imagedrift_workload_stale_containers{namespace="ns",owner_kind="Deployment",owner_name="web"} 1"#), "{text}");
            assert!(
                text.contains(r#"imagedrift_containers{reason="",verdict="fresh"} 1"#),
                "{text}"
            );
            assert!(
                text.contains(r#"imagedrift_containers{reason="",verdict="stale"} 1"#),
                "{text}"
            );
        }
    }

    #[test]
    fn a_scrape_streams_every_series_in_chunks() {
        let m = Metrics::register(&Registry::new()).unwrap();
        let n = CHUNK_SERIES * 2 + 7;
        for i in 0..n {
            m.set_container(key(&format!("p{i:05}")), series("fresh"), None);
        }
        let chunks: Vec<String> = m.scrape().map(|c| c.unwrap()).collect();
        assert!(
            chunks.len() >= 6,
            "head, 3 chunks per family: {}",
            chunks.len()
        );
        let text = chunks.concat();
        let count = |name: &str| {
            text.lines()
                .filter(|l| l.starts_with(&format!("{name}{{")))
                .count()
        };
        assert_eq!(count(STALE_NAME), n);
        assert_eq!(count(VERDICT_NAME), n);
        assert_eq!(
            text.matches("# TYPE imagedrift_container_stale gauge")
                .count(),
            1
        );
        assert_eq!(
            text.matches("# TYPE imagedrift_container_verdict gauge")
                .count(),
            1
        );
        // Families stay whole: every stale line comes before every verdict line.
        let last_stale = text.rfind("imagedrift_container_stale{").unwrap();
        let first_verdict = text.find("imagedrift_container_verdict{").unwrap();
        assert!(last_stale < first_verdict);
        assert!(text.contains(&format!(
            r#"imagedrift_containers{{reason="",verdict="fresh"}} {n}"#
        )));
        assert_eq!(m.container_series(), n);
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        labels(&mut out, &[("a", "x\"y\\z\nw"), ("b", "plain")]);
        assert_eq!(out, r#"{a="x\"y\\z\nw",b="plain"}"#);
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
