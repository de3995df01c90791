//! A workload's stale episode: it opens (one `StaleImage`) when its first
//! container goes stale, closes (one `ImageUpToDate` naming what fixed it)
//! once its current pods run the current digest; the remedies it is handed
//! to, and their verification; what a new leader reconciles.

use super::*;

impl State {
    pub(super) fn note(
        &self,
        pod: &PodView,
        c: &ContainerView,
        j: &Judgement,
        n: Notice,
        failing_for: Option<Duration>,
    ) -> String {
        let parsed = self
            .parsed
            .get(&c.image)
            .and_then(|p| p.as_ref().ok())
            .map(|(i, _)| i);
        let policy = parsed
            .zip(c.pull_policy)
            .map(|(i, p)| EffectivePolicy::infer_from_live(i, p));
        match parsed {
            Some(image) => report::message(
                n,
                &ContainerFacts {
                    container: &c.name,
                    kind: c.kind,
                    image,
                    node: pod.node.as_deref(),
                    policy: policy.as_ref(),
                    judgement: j,
                },
                failing_for,
            ),
            None => report::truncate(
                format!(
                    "Cannot check {} {}: image {:?} is not a valid reference ({}).",
                    report::kind_word(c.kind).to_lowercase(),
                    c.name,
                    c.image,
                    j.evidence.detail.as_deref().unwrap_or("")
                ),
                report::NOTE_LIMIT,
            ),
        }
    }

    /// Moves a workload's stale count. The episode opens (one
    /// `StaleImage`) when it leaves 0; it closes in [`State::try_close`]
    /// once no stale container remains and the current pods are judged
    /// fresh. `announce: false` (a container moving to the workload its
    /// owner turned out to be) closes silently.
    pub(super) fn workload_delta(
        &mut self,
        w: &Workload,
        delta: i64,
        first: Option<&str>,
        announce: bool,
    ) -> Vec<EventEffect> {
        let key = wkey(w);
        let ws = self.workloads.entry(key.clone()).or_insert(WorkloadState {
            stale: 0,
            reported_stale: false,
            fixed_by: Vec::new(),
        });
        ws.stale = (ws.stale as i64 + delta).max(0) as usize;
        let stale = ws.stale;
        self.metrics
            .set_workload(&w.namespace, &w.kind, &w.name, stale);
        let opens = stale > 0 && !ws.reported_stale;
        if opens {
            ws.reported_stale = true;
        }
        if stale == 0 && (!ws.reported_stale || !announce) {
            self.workloads.remove(&key);
            self.verify.end(&key);
            return Vec::new();
        }
        // A bare pod's Events already go to the pod itself.
        if opens && &*w.kind != "Pod" {
            let counts = self.pod_counts(w);
            let note = report::workload_message(Notice::BecameStale, w, &counts, first);
            // Recounted once the whole answer is applied (`apply_outcome`).
            self.opened.push((w.clone(), first.map(str::to_string)));
            return vec![EventEffect {
                notice: Notice::BecameStale,
                note,
                regarding: workload_reference(w),
            }];
        }
        self.try_close(w)
    }

    /// The pods whose workload is `w`.
    pub(super) fn pods_of<'a>(&'a self, w: &'a Workload) -> impl Iterator<Item = &'a PodView> + 'a {
        let key = wkey(w);
        self.pods
            .values()
            .filter(move |p| p.namespace == w.namespace && wkey(&self.owners.workload_of(p)) == key)
    }

    /// How many of a workload's pods run stale content, and in which containers.
    pub(super) fn pod_counts(&self, w: &Workload) -> report::PodCounts {
        let mut counts = report::PodCounts::default();
        for pod in self.pods_of(w) {
            counts.total += 1;
            let mut stale = false;
            for c in &pod.containers {
                let st = self.containers.get(&ContainerKey::of(pod, c));
                if st.is_some_and(|s| s.counted_in.is_some()) {
                    stale = true;
                    if !counts.containers.iter().any(|n| **n == *c.name) {
                        counts.containers.push(c.name.to_string());
                    }
                }
            }
            counts.stale += usize::from(stale);
        }
        counts.containers.sort();
        counts
    }

    /// Closes a workload's stale episode when no stale container is left
    /// and its current pods are judged fresh (containers not running, such
    /// as terminating old pods, don't count; one not judged yet, or
    /// unknown, holds the close back). One `ImageUpToDate` names what fixed
    /// it. A workload left without pods closes too.
    pub(super) fn try_close(&mut self, w: &Workload) -> Vec<EventEffect> {
        let key = wkey(w);
        match self.workloads.get(&key) {
            Some(ws) if ws.stale == 0 && ws.reported_stale => {}
            _ => return Vec::new(),
        }
        let mut pods = 0;
        let mut fresh = 0;
        for pod in self.pods_of(w) {
            pods += 1;
            for c in &pod.containers {
                let verdict = self
                    .containers
                    .get(&ContainerKey::of(pod, c))
                    .and_then(|s| s.judgement.as_deref())
                    .map(|j| &j.verdict);
                match verdict {
                    Some(Verdict::Fresh | Verdict::Pinned) if c.running => fresh += 1,
                    _ if !c.running => {}
                    _ => return Vec::new(),
                }
            }
        }
        if pods > 0 && fresh == 0 {
            return Vec::new();
        }
        let Some(ws) = self.workloads.remove(&key) else {
            return Vec::new();
        };
        // Its pods run the current digest: a remedy awaiting that worked.
        // With no pod left there is nothing to verify.
        if let Some(v) = self.verify.end(&key)
            && pods > 0
        {
            self.settled.push(RemedyCheck {
                workload: v.workload,
                remedies: v.remedies,
                verified: true,
                note: String::new(),
            });
        }
        if &*w.kind == "Pod" {
            return Vec::new();
        }
        let cause = match (ws.fixed_by.as_slice(), pods) {
            (_, 0) => "none of its pods remain".to_string(),
            ([], _) => "new pods run the current digest".to_string(),
            (r, _) => format!(
                "its pods run the current digest after {} by imagedrift",
                verify::names(r)
            ),
        };
        let counts = report::PodCounts {
            total: pods,
            ..Default::default()
        };
        tracing::info!(
            namespace = %w.namespace,
            kind = %w.kind,
            name = %w.name,
            pods,
            cause = %cause,
            "fresh again: the workload's stale episode is closed"
        );
        let note = report::workload_message(Notice::BecameFresh, w, &counts, Some(&cause));
        vec![EventEffect {
            notice: Notice::BecameFresh,
            note,
            regarding: workload_reference(w),
        }]
    }

    /// Remedies were applied to a workload at `now`: its close names them,
    /// and, for a workload whose pods they replace, its pods must run the
    /// current digest within `window` (see [`super::verify`]). Nothing
    /// happens for a workload without an open episode (it closed while the
    /// remedies ran).
    pub fn remedy_applied(
        &mut self,
        workload: &WorkloadRef,
        remedies: &[Remedy],
        now: Instant,
        window: Duration,
    ) {
        let key = (
            Str::from(workload.namespace.as_str()),
            Str::from(workload.kind.as_str()),
            Str::from(workload.name.as_str()),
        );
        let Some(ws) = self.workloads.get_mut(&key) else {
            return;
        };
        for r in remedies {
            if !ws.fixed_by.contains(r) {
                ws.fixed_by.push(*r);
            }
        }
        if workload.kind.rolls_out() && !remedies.is_empty() {
            self.verify
                .start(key, workload.clone(), remedies, now, now + window);
        }
    }

    /// The earliest end of a verify window.
    pub fn next_verify_deadline(&self) -> Option<Instant> {
        self.verify.next_deadline()
    }

    /// Verifications settled since the last call: those whose workload's
    /// pods came to run the current digest, and those whose window ended
    /// at or before `now` without that (`failed`, with a note naming what
    /// was tried and what is still stale).
    pub fn take_remedy_checks(&mut self, now: Instant) -> Vec<RemedyCheck> {
        for ((ns, kind, name), v) in self.verify.expired(now) {
            // A later close is not the remedies' doing.
            if let Some(ws) = self
                .workloads
                .get_mut(&(ns.clone(), kind.clone(), name.clone()))
            {
                ws.fixed_by.clear();
            }
            let w = Workload {
                namespace: ns,
                api_version: Str::from(v.workload.kind.api_version()),
                kind,
                name,
                uid: None,
            };
            let counts = self.pod_counts(&w);
            let which = match counts.containers.as_slice() {
                [] => String::new(),
                [one] => format!(" (container {one})"),
                many => format!(" (containers {})", many.join(", ")),
            };
            let status = if counts.stale > 0 {
                format!(
                    "{} of {} pod{} still {} stale content{which}",
                    counts.stale,
                    counts.total,
                    if counts.total == 1 { "" } else { "s" },
                    if counts.stale == 1 { "runs" } else { "run" },
                )
            } else {
                "some of its pods are not judged fresh yet".to_string()
            };
            let note = format!(
                "Remedy {} was applied to {} {}, but its pods did not all run the current digest within {} (remedies.verifyTimeout): {status}.",
                verify::names(&v.remedies),
                w.kind,
                w.name,
                report::human(v.deadline.saturating_duration_since(v.since)),
            );
            self.settled.push(RemedyCheck {
                workload: v.workload,
                remedies: v.remedies,
                verified: false,
                note: report::truncate(note, report::NOTE_LIMIT),
            });
        }
        std::mem::take(&mut self.settled)
    }

    /// Everything open, as the Events that announce it: containers stale
    /// or failing for too long, and workloads with an open episode. A new
    /// leader writes those the record lacks ([`crate::controller::publish`]).
    pub fn open_notices(&self) -> Vec<EventEffect> {
        let mut out = Vec::new();
        for (key, st) in &self.containers {
            if !st.tracker.reported_stale && !st.tracker.failure_reported {
                continue;
            }
            let Some(pod) = self.pods.get(&(key.namespace.clone(), key.pod.clone())) else {
                continue;
            };
            let Some(c) = pod.containers.iter().find(|c| c.name == key.container) else {
                continue;
            };
            let Some(j) = st.judgement.as_deref() else {
                continue;
            };
            let mut notices = Vec::new();
            if st.tracker.reported_stale {
                notices.push(Notice::BecameStale);
            }
            if st.tracker.failure_reported {
                notices.push(Notice::CheckFailing);
            }
            for n in notices {
                out.push(EventEffect {
                    notice: n,
                    note: self.note(pod, c, j, n, None),
                    regarding: container_reference(pod, c),
                });
            }
        }
        for ((ns, kind, name), ws) in &self.workloads {
            if !ws.reported_stale || ws.stale == 0 || &**kind == "Pod" {
                continue;
            }
            let Some(w) = self.pods.values().find_map(|p| {
                (p.namespace == *ns)
                    .then(|| self.owners.workload_of(p))
                    .filter(|w| &w.kind == kind && &w.name == name)
            }) else {
                continue;
            };
            let counts = self.pod_counts(&w);
            out.push(EventEffect {
                notice: Notice::BecameStale,
                note: report::workload_message(Notice::BecameStale, &w, &counts, None),
                regarding: workload_reference(&w),
            });
        }
        out
    }

    /// Starts collecting workloads for the remedies (off by default).
    pub fn enable_remedies(&mut self) {
        self.remedy_work.get_or_insert_with(HashMap::new);
    }

    /// Workloads judged stale since the last call (every check of their
    /// reference, so cooldowns can expire and a refresh be followed by a
    /// restart), each with every judged container of the workload: the
    /// remedies decide per container and act only on `Stale`.
    pub fn take_remedy_work(&mut self) -> Vec<(WorkloadRef, Vec<StaleContainer>)> {
        let Some(work) = self.remedy_work.as_mut() else {
            return Vec::new();
        };
        if work.is_empty() {
            return Vec::new();
        }
        let wanted: HashMap<WKey, Workload> = std::mem::take(work);
        let mut out: HashMap<WKey, Vec<StaleContainer>> = HashMap::new();
        for pod in self.pods.values() {
            let w = self.owners.workload_of(pod);
            let Some(list) = wanted
                .get(&wkey(&w))
                .map(|_| out.entry(wkey(&w)).or_default())
            else {
                continue;
            };
            for c in &pod.containers {
                let key = ContainerKey::of(pod, c);
                let Some(j) = self
                    .containers
                    .get(&key)
                    .and_then(|s| s.judgement.as_deref())
                else {
                    continue;
                };
                let (Some(Ok((image, _))), Some(current), Some(policy)) = (
                    self.parsed.get(&c.image),
                    j.evidence.current_digest.clone(),
                    c.pull_policy,
                ) else {
                    continue;
                };
                list.push(StaleContainer {
                    pod: pod.name.to_string(),
                    container: c.name.to_string(),
                    kind: c.kind,
                    node: pod.node.as_ref().map(|n| n.to_string()),
                    spec_image: c.image.to_string(),
                    image: (**image).clone(),
                    current_digest: current,
                    // CRI-O may report the platform manifest or the config
                    // digest after a refresh pull: both mean "current".
                    also_current: [&j.evidence.current_manifest, &j.evidence.current_config]
                        .into_iter()
                        .flatten()
                        .cloned()
                        .collect(),
                    running_digest: j.evidence.running_digest.clone(),
                    policy: EffectivePolicy::infer_from_live(image, policy),
                    verdict: j.verdict.clone(),
                    pull_secrets: pod.pull_secrets.iter().map(|s| s.to_string()).collect(),
                });
            }
        }
        let mut result = Vec::new();
        for (k, containers) in out {
            let Some(w) = wanted.get(&k) else { continue };
            let Some(kind) = WorkloadKind::parse(&w.kind) else {
                continue;
            };
            if containers.iter().any(|c| c.verdict == Verdict::Stale) {
                let workload = WorkloadRef {
                    kind,
                    namespace: w.namespace.to_string(),
                    name: w.name.to_string(),
                    uid: w.uid.as_ref().map(|u| u.to_string()),
                };
                result.push((workload, containers));
            }
        }
        result.sort_by(|a, b| (&a.0.namespace, &a.0.name).cmp(&(&b.0.namespace, &b.0.name)));
        result
    }
}
