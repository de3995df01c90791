//! `# imagedrift:ignore <rule-id>[,<rule-id>...]` comments.
//!
//! A comment silences the listed rules on its own line, and on the next
//! line when the comment stands alone on its line. `//` works too, for
//! Groovy code in Jenkinsfiles.
//!
//! The list ends at the first word that is not a rule id, so a reason may
//! follow (`# imagedrift:ignore pinned-always we pin in CI`). A word that
//! looks like an id (`mutable-tag-defualt-policy`: lowercase, with a `-`)
//! but names no rule, or a first word that names no rule, is reported as
//! `unknown-suppression`: a typo would otherwise silence nothing unnoticed.

use super::Rule;
use super::rules::Hit;
use super::yaml::Pos;
use std::collections::HashMap;

const MARKER: &str = "imagedrift:ignore";

/// The suppressions written in one file, by line.
#[derive(Debug, Default)]
pub(crate) struct Suppressions {
    /// Line (1-based) to the rule ids silenced on it.
    by_line: HashMap<usize, Vec<String>>,
}

impl Suppressions {
    /// Finds every suppression comment in `text`, and the ids in them
    /// that name no rule.
    pub(crate) fn scan(text: &str) -> (Suppressions, Vec<Hit>) {
        let mut by_line: HashMap<usize, Vec<String>> = HashMap::new();
        let mut unknown = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let Some(at) = line.find(MARKER) else {
                continue;
            };
            let before = line[..at].trim_end();
            let comment_start = if let Some(b) = before.strip_suffix('#') {
                b
            } else if let Some(b) = before.strip_suffix("//") {
                b
            } else {
                continue;
            };
            let line_no = i + 1;
            let list_start = at + MARKER.len();
            let mut ids = Vec::new();
            let mut offset = list_start;
            for (n, word) in line[list_start..]
                .split([',', ' ', '\t'])
                .map(|w| {
                    let start = offset;
                    offset += w.len() + 1;
                    (start, w)
                })
                .filter(|(_, w)| !w.is_empty())
                .enumerate()
            {
                let (start, word) = word;
                if Rule::from_id(word).is_some() {
                    ids.push(word.to_string());
                    continue;
                }
                if n == 0 || looks_like_id(word) {
                    let col = line[..start].chars().count() + 1;
                    unknown.push(Hit::new(
                        Rule::UnknownSuppression,
                        Pos { line: line_no, col },
                        format!(
                            "`{word}` is not a rule id, so this imagedrift:ignore comment does not suppress it; use an id from `imagedrift lint --list-rules`"
                        ),
                    ));
                    if n > 0 {
                        continue;
                    }
                }
                break;
            }
            by_line
                .entry(line_no)
                .or_default()
                .extend(ids.iter().cloned());
            if comment_start.trim().is_empty() {
                by_line.entry(line_no + 1).or_default().extend(ids);
            }
        }
        (Suppressions { by_line }, unknown)
    }

    /// Whether `rule` is silenced on `line`.
    pub(crate) fn suppresses(&self, line: usize, rule: Rule) -> bool {
        self.by_line
            .get(&line)
            .is_some_and(|ids| ids.iter().any(|id| id == rule.id()))
    }
}

/// Lowercase letters, digits and `-`, with at least one `-`: the shape of
/// every rule id, and of few words of prose.
fn looks_like_id(word: &str) -> bool {
    word.contains('-')
        && word
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_line_and_line_above() {
        let (s, _) = Suppressions::scan(
            "a: 1 # imagedrift:ignore pinned-always\n  # imagedrift:ignore invalid-image, parse-error\nb: 2\nc: 3\n",
        );
        assert!(s.suppresses(1, Rule::PinnedAlways));
        assert!(
            !s.suppresses(2, Rule::PinnedAlways),
            "a trailing comment covers only its own line"
        );
        assert!(s.suppresses(3, Rule::InvalidImage));
        assert!(s.suppresses(3, Rule::ParseError));
        assert!(!s.suppresses(4, Rule::InvalidImage));
        assert!(!s.suppresses(3, Rule::PinnedAlways));
    }

    #[test]
    fn groovy_comments_and_trailing_prose() {
        let (s, unknown) = Suppressions::scan(
            "// imagedrift:ignore mutable-tag-default-policy because we pin in CI\nx\n",
        );
        assert!(s.suppresses(2, Rule::MutableTagDefaultPolicy));
        assert!(unknown.is_empty(), "{unknown:?}");
        let (none, _) = Suppressions::scan("image: \"imagedrift:ignore pinned-always\"\n");
        assert!(!none.suppresses(1, Rule::PinnedAlways));
    }

    #[test]
    fn unknown_ids_are_reported_with_their_column() {
        let (s, unknown) = Suppressions::scan(
            "x: 1 # imagedrift:ignore pinned-always,mutable-tag-defualt-policy because\n# imagedrift:ignore pinned\n",
        );
        assert!(s.suppresses(1, Rule::PinnedAlways));
        let at: Vec<(usize, usize)> = unknown.iter().map(|h| (h.pos.line, h.pos.col)).collect();
        assert_eq!(at, vec![(1, 40), (2, 21)]);
        assert!(unknown[0].message.contains("`mutable-tag-defualt-policy`"));
    }
}
