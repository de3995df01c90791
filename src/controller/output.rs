//! What `scan` prints (table, wide, JSON) and what `explain` says, built
//! from the same rows the controller reports from.

use super::reconcile::Row;
use super::store::ContainerKind;
use crate::verdict::Verdict;
use serde::Serialize;
use std::fmt::Write as _;

/// A workload reference in JSON.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct OwnerJson {
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
}

/// One container in `scan -o json` (the shape is part of the CLI contract).
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ItemJson {
    /// Namespace.
    pub namespace: String,
    /// Pod.
    pub pod: String,
    /// Container.
    pub container: String,
    /// `container`, `init`, `ephemeral` or `image_volume` (then
    /// `container` is the volume's name).
    pub container_type: &'static str,
    /// Node, if scheduled.
    pub node: Option<String>,
    /// Spec image as written.
    pub image: String,
    /// Normalised reference.
    pub normalized_image: Option<String>,
    /// Effective pull policy.
    pub pull_policy: Option<String>,
    /// `explicit` (differs from the default for the image, so it was
    /// written) or `default` (equals the default: written or defaulted,
    /// the API server stores it either way).
    pub pull_policy_source: Option<&'static str>,
    /// `fresh`, `stale`, `pinned` or `unknown`.
    pub verdict: &'static str,
    /// Unknown: the reason category; otherwise the rule that decided.
    pub reason: String,
    /// Digest the node reports.
    pub running_digest: Option<String>,
    /// Digest the tag points to today.
    pub current_digest: Option<String>,
    /// Platform used to pick index entries.
    pub platform: Option<String>,
    /// Owning workload.
    pub owner: OwnerJson,
    /// Remedies that would work (stale containers only).
    pub remedies: Vec<&'static str>,
    /// The spec image pinned to the digest its tag serves today, ready to
    /// paste (stale containers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_reference: Option<String>,
}

/// The whole `scan -o json` document.
#[derive(Serialize, Debug)]
pub struct ScanJson {
    /// One item per container.
    pub items: Vec<ItemJson>,
}

fn verdict_of(r: &Row) -> (&'static str, String) {
    match &r.judgement {
        None => ("unknown", "pending".into()),
        Some(j) => match &j.verdict {
            Verdict::Unknown(reason) => ("unknown", reason.as_str().into()),
            v => (v.as_str(), j.evidence.rule.as_str().into()),
        },
    }
}

/// A row as JSON.
pub fn item(r: &Row) -> ItemJson {
    let (verdict, reason) = verdict_of(r);
    let ev = r.judgement.as_ref().map(|j| &j.evidence);
    let stale = verdict == "stale";
    ItemJson {
        namespace: r.pod.namespace.to_string(),
        pod: r.pod.name.to_string(),
        container: r.container.name.to_string(),
        container_type: r.container.kind.as_str(),
        node: r.pod.node.as_ref().map(|n| n.to_string()),
        image: r.container.image.to_string(),
        normalized_image: r.image.as_ref().ok().map(|i| i.to_string()),
        pull_policy: r.policy.as_ref().map(|p| p.policy.to_string()),
        pull_policy_source: r.policy.as_ref().map(|p| p.source.kind()),
        verdict,
        reason,
        running_digest: ev
            .and_then(|e| e.running_digest.as_ref())
            .map(|d| d.to_string()),
        current_digest: ev
            .and_then(|e| e.current_digest.as_ref())
            .map(|d| d.to_string()),
        platform: ev.and_then(|e| e.platform.as_ref()).map(|p| p.to_string()),
        owner: OwnerJson {
            kind: r.workload.kind.to_string(),
            name: r.workload.name.to_string(),
        },
        remedies: if stale {
            r.policy
                .as_ref()
                .map(|p| p.remedies().iter().map(|m| m.as_str()).collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        },
        pinned_reference: if stale {
            ev.and_then(|e| e.current_digest.as_ref())
                .map(|d| super::advice::pinned(&r.container.image, d.as_str()))
        } else {
            None
        },
    }
}

/// `scan -o json`.
pub fn json(rows: &[Row]) -> String {
    let doc = ScanJson {
        items: rows.iter().map(item).collect(),
    };
    serde_json::to_string_pretty(&doc)
        .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()))
}

/// `scan -o json`, written to `out` one item at a time as `rows` makes
/// them (byte for byte what [`json`] returns). Returns how many items were
/// stale and how many unknown (for the exit code).
pub fn write_json(
    rows: impl Iterator<Item = Row>,
    out: &mut impl std::io::Write,
) -> std::io::Result<(usize, usize)> {
    use std::cell::{Cell, RefCell};
    struct Items<I>(RefCell<Option<I>>, Cell<(usize, usize)>);
    impl<I: Iterator<Item = Row>> Serialize for Items<I> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let rows = self.0.borrow_mut().take().into_iter().flatten();
            s.collect_seq(rows.map(|r| {
                let (stale, unknown) = self.1.get();
                match r.judgement.as_ref().map(|j| &j.verdict) {
                    Some(Verdict::Stale) => self.1.set((stale + 1, unknown)),
                    None | Some(Verdict::Unknown(_)) => self.1.set((stale, unknown + 1)),
                    Some(_) => {}
                }
                item(&r)
            }))
        }
    }
    struct Doc<'a, I>(&'a Items<I>);
    impl<I: Iterator<Item = Row>> Serialize for Doc<'_, I> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeStruct;
            let mut doc = s.serialize_struct("ScanJson", 1)?;
            doc.serialize_field("items", self.0)?;
            doc.end()
        }
    }
    let items = Items(RefCell::new(Some(rows)), Cell::new((0, 0)));
    serde_json::to_writer_pretty(&mut *out, &Doc(&items)).map_err(std::io::Error::other)?;
    writeln!(out)?;
    Ok(items.1.get())
}

fn short(d: &Option<String>) -> String {
    match d {
        Some(d) => {
            let hex = d.split_once(':').map_or(d.as_str(), |(_, h)| h);
            hex[..hex.len().min(12)].to_string()
        }
        None => "-".into(),
    }
}

/// `scan -o table` (or `wide`): aligned columns.
pub fn table(rows: &[Row], wide: bool) -> String {
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut head = vec![
        "NAMESPACE",
        "POD",
        "CONTAINER",
        "VERDICT",
        "REASON",
        "IMAGE",
    ];
    if wide {
        head.extend(["NODE", "POLICY", "RUNNING", "CURRENT", "OWNER"]);
    }
    lines.push(head.iter().map(|s| s.to_string()).collect());
    for r in rows {
        let i = item(r);
        // An image volume may share a container's name: say which it is.
        let name = if r.container.kind == ContainerKind::ImageVolume {
            format!("{} (volume)", i.container)
        } else {
            i.container
        };
        let mut l = vec![
            i.namespace,
            i.pod,
            name,
            i.verdict.to_string(),
            i.reason,
            i.image,
        ];
        if wide {
            l.push(i.node.unwrap_or_else(|| "-".into()));
            l.push(match (i.pull_policy, i.pull_policy_source) {
                (Some(p), Some(s)) => format!("{p} ({s})"),
                _ => "-".into(),
            });
            l.push(short(&i.running_digest));
            l.push(short(&i.current_digest));
            l.push(format!("{}/{}", i.owner.kind, i.owner.name));
        }
        lines.push(l);
    }
    let cols = lines[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in &lines {
        let mut line = String::new();
        for (c, cell) in l.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}   ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `explain`: a plain-language account of each container of one pod.
pub fn explain(rows: &[Row]) -> String {
    let mut out = String::new();
    for r in rows {
        let i = item(r);
        let _ = writeln!(
            out,
            "{} {} of pod {}/{}",
            super::report::kind_word(r.container.kind),
            i.container,
            i.namespace,
            i.pod
        );
        let _ = writeln!(out, "  image (spec):      {}", i.image);
        match &r.image {
            Ok(img) => {
                let _ = writeln!(out, "  normalised:        {img}");
            }
            Err(e) => {
                let _ = writeln!(out, "  normalised:        not a valid reference: {e}");
            }
        }
        let _ = writeln!(
            out,
            "  pull policy:       {}",
            r.policy
                .as_ref()
                .map_or("unknown (not in the pod spec)".into(), |p| p.explain())
        );
        let _ = writeln!(
            out,
            "  node:              {}",
            i.node.as_deref().unwrap_or("not scheduled")
        );
        let _ = writeln!(
            out,
            "  running digest:    {}",
            i.running_digest.as_deref().unwrap_or("none reported")
        );
        let _ = writeln!(
            out,
            "  registry digest:   {}",
            i.current_digest.as_deref().unwrap_or("not resolved")
        );
        let _ = writeln!(
            out,
            "  platform:          {}",
            i.platform.as_deref().unwrap_or("not needed or unknown")
        );
        let _ = writeln!(
            out,
            "  owner:             {}/{}",
            i.owner.kind, i.owner.name
        );
        let _ = writeln!(out, "  verdict:           {} ({})", i.verdict, i.reason);
        if let Some(d) = r
            .judgement
            .as_ref()
            .and_then(|j| j.evidence.detail.as_deref())
        {
            let _ = writeln!(out, "  detail:            {d}");
        }
        let advice = super::advice::advise(r);
        let _ = writeln!(out, "  what to do:        {}", advice.text);
        if let Some(p) = &advice.pinned_reference {
            let _ = writeln!(out, "  pinned reference:  {p}");
        }
        for (n, c) in advice.commands.iter().enumerate() {
            let label = if n == 0 {
                "  commands:          "
            } else {
                "                     "
            };
            let _ = writeln!(out, "{label}{c}");
        }
        out.push('\n');
    }
    out
}
