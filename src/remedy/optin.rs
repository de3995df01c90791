//! Who asked for which remedy: the `imagedrift.io/remedy` annotation on a
//! workload or Namespace, the per-namespace lists and the global list of the
//! configuration, and how they combine. Pure.

use crate::policy::Remedy;
use std::fmt;

/// The opt-in annotation, on a workload or a Namespace.
pub const ANNOTATION: &str = "imagedrift.io/remedy";

/// The remedies imagedrift can apply itself (a subset of [`Remedy`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Enabled {
    /// Rollout restart.
    pub restart: bool,
    /// Node tag refresh.
    pub refresh: bool,
    /// Digest pin.
    pub pin: bool,
}

impl Enabled {
    /// Nothing enabled.
    pub const NONE: Enabled = Enabled {
        restart: false,
        refresh: false,
        pin: false,
    };

    /// Whether `remedy` is enabled (remedies imagedrift can't apply never are).
    pub fn contains(self, remedy: Remedy) -> bool {
        match remedy {
            Remedy::Restart => self.restart,
            Remedy::RefreshNode => self.refresh,
            Remedy::PinDigest => self.pin,
            Remedy::SetPolicyAlways | Remedy::ReprovisionNode => false,
        }
    }

    /// Whether nothing is enabled.
    pub fn is_empty(self) -> bool {
        self == Enabled::NONE
    }

    /// Enables one remedy.
    fn insert(&mut self, remedy: Remedy) {
        match remedy {
            Remedy::Restart => self.restart = true,
            Remedy::RefreshNode => self.refresh = true,
            Remedy::PinDigest => self.pin = true,
            Remedy::SetPolicyAlways | Remedy::ReprovisionNode => {}
        }
    }
}

impl fmt::Display for Enabled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [Remedy::RefreshNode, Remedy::Restart, Remedy::PinDigest]
            .into_iter()
            .filter(|r| self.contains(*r))
            .map(Remedy::as_str)
            .collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// What one level (workload, Namespace, configuration) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OptIn {
    /// Nothing said here: ask the next, broader level.
    Unset,
    /// `none`: opted out, whatever broader levels say.
    Out,
    /// These remedies.
    In(Enabled),
}

/// A remedy list that is not `none` or a list of `restart`, `refresh`, `pin`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptInError {
    /// A word that names no remedy.
    #[error(
        "unknown remedy {word:?} in {value:?}: use restart, refresh, pin (comma-separated) or none"
    )]
    Unknown {
        /// The whole value.
        value: String,
        /// The unknown word.
        word: String,
    },
    /// `none` together with remedies.
    #[error("{value:?} mixes `none` with remedies: write either `none` or a list")]
    NoneMixed {
        /// The whole value.
        value: String,
    },
}

/// Parses one word: `restart`, `refresh`, `pin` (case-insensitive, trimmed)
/// or `none` (returned as `None`).
pub fn parse_word(word: &str) -> Result<Option<Remedy>, String> {
    match word.trim().to_ascii_lowercase().as_str() {
        "restart" => Ok(Some(Remedy::Restart)),
        "refresh" => Ok(Some(Remedy::RefreshNode)),
        "pin" => Ok(Some(Remedy::PinDigest)),
        "none" => Ok(None),
        _ => Err(word.trim().to_string()),
    }
}

/// Parses a list of words (`["refresh", "restart"]`, `["none"]`); an empty
/// list is [`OptIn::Unset`].
pub fn parse_list<S: AsRef<str>>(words: &[S], value: &str) -> Result<OptIn, OptInError> {
    let mut enabled = Enabled::NONE;
    let mut none = false;
    let mut any = false;
    for w in words {
        let w = w.as_ref();
        if w.trim().is_empty() {
            continue;
        }
        any = true;
        match parse_word(w) {
            Ok(Some(r)) => enabled.insert(r),
            Ok(None) => none = true,
            Err(word) => {
                return Err(OptInError::Unknown {
                    value: value.to_string(),
                    word,
                });
            }
        }
    }
    match (any, none, enabled.is_empty()) {
        (false, _, _) => Ok(OptIn::Unset),
        (true, true, true) => Ok(OptIn::Out),
        (true, true, false) => Err(OptInError::NoneMixed {
            value: value.to_string(),
        }),
        (true, false, _) => Ok(OptIn::In(enabled)),
    }
}

/// Parses an annotation value: `restart`, `refresh,restart`, `none`; an
/// absent or blank value is [`OptIn::Unset`].
pub fn parse_annotation(value: Option<&str>) -> Result<OptIn, OptInError> {
    match value {
        None => Ok(OptIn::Unset),
        Some(v) => {
            let words: Vec<&str> = v.split(',').collect();
            parse_list(&words, v)
        }
    }
}

/// The remedies in force for one workload. `none` on the workload or on its
/// Namespace (annotation or configuration) always wins; otherwise the most
/// specific level that says something decides: workload annotation,
/// Namespace annotation, the configuration's namespace entry, the global list.
pub fn resolve(
    workload: OptIn,
    namespace: OptIn,
    config_namespace: OptIn,
    global: OptIn,
) -> Enabled {
    if [workload, namespace, config_namespace].contains(&OptIn::Out) {
        return Enabled::NONE;
    }
    for level in [workload, namespace, config_namespace, global] {
        match level {
            OptIn::Unset => continue,
            OptIn::Out => return Enabled::NONE,
            OptIn::In(e) => return e,
        }
    }
    Enabled::NONE
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESTART: Enabled = Enabled {
        restart: true,
        refresh: false,
        pin: false,
    };
    const REFRESH_RESTART: Enabled = Enabled {
        restart: true,
        refresh: true,
        pin: false,
    };
    const PIN: Enabled = Enabled {
        restart: false,
        refresh: false,
        pin: true,
    };

    #[test]
    fn annotation_values() {
        let cases: &[(Option<&str>, Result<OptIn, &str>)] = &[
            (None, Ok(OptIn::Unset)),
            (Some(""), Ok(OptIn::Unset)),
            (Some(" , "), Ok(OptIn::Unset)),
            (Some("restart"), Ok(OptIn::In(RESTART))),
            (Some("Restart"), Ok(OptIn::In(RESTART))),
            (Some("refresh,restart"), Ok(OptIn::In(REFRESH_RESTART))),
            (Some(" restart , refresh "), Ok(OptIn::In(REFRESH_RESTART))),
            (Some("restart,restart"), Ok(OptIn::In(RESTART))),
            (Some("pin"), Ok(OptIn::In(PIN))),
            (Some("none"), Ok(OptIn::Out)),
            (Some("NONE"), Ok(OptIn::Out)),
            (
                Some("restrat"),
                Err("unknown remedy \"restrat\" in \"restrat\""),
            ),
            (
                Some("refresh;restart"),
                Err("unknown remedy \"refresh;restart\""),
            ),
            (Some("none,restart"), Err("mixes `none` with remedies")),
        ];
        for (input, want) in cases {
            let got = parse_annotation(*input);
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{input:?}"),
                (Err(w), Err(e)) => {
                    let msg = e.to_string();
                    assert!(msg.contains(w), "{input:?}: {msg}");
                }
                _ => panic!("{input:?}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn levels_combine() {
        use OptIn::*;
        let cases: &[(OptIn, OptIn, OptIn, OptIn, Enabled)] = &[
            // Off by default.
            (Unset, Unset, Unset, Unset, Enabled::NONE),
            // The global list applies when nothing more specific says anything.
            (Unset, Unset, Unset, In(RESTART), RESTART),
            // The configuration's namespace entry beats the global list.
            (Unset, Unset, In(PIN), In(RESTART), PIN),
            // The Namespace annotation beats the configuration.
            (
                Unset,
                In(REFRESH_RESTART),
                In(PIN),
                In(RESTART),
                REFRESH_RESTART,
            ),
            // The workload annotation is the most specific.
            (In(PIN), In(RESTART), Unset, In(RESTART), PIN),
            // `none` on the workload opts out.
            (Out, Unset, Unset, In(RESTART), Enabled::NONE),
            // `none` on the Namespace wins even over a workload's own list.
            (In(RESTART), Out, Unset, In(RESTART), Enabled::NONE),
            // So does `none` in the configuration's namespace entry.
            (In(RESTART), Unset, Out, In(RESTART), Enabled::NONE),
            // A global `none` is just "off": a workload may still opt in.
            (In(RESTART), Unset, Unset, Out, RESTART),
        ];
        for (i, (w, n, c, g, want)) in cases.iter().enumerate() {
            assert_eq!(resolve(*w, *n, *c, *g), *want, "row {i}");
        }
    }

    #[test]
    fn display_lists_in_execution_order() {
        assert_eq!(REFRESH_RESTART.to_string(), "refresh,restart");
        assert_eq!(Enabled::NONE.to_string(), "none");
    }
}
