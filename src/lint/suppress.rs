//! `# imagedrift:ignore <rule-id>[,<rule-id>...]` comments.
//!
//! A comment silences the listed rules on its own line, and on the next
//! line when the comment stands alone on its line. `//` works too, for
//! Groovy code in Jenkinsfiles.

use super::Rule;
use std::collections::HashMap;

const MARKER: &str = "imagedrift:ignore";

/// The suppressions written in one file, by line.
#[derive(Debug, Default)]
pub(crate) struct Suppressions {
    /// Line (1-based) to the rule ids silenced on it.
    by_line: HashMap<usize, Vec<String>>,
}

impl Suppressions {
    /// Finds every suppression comment in `text`.
    pub(crate) fn scan(text: &str) -> Suppressions {
        let mut by_line: HashMap<usize, Vec<String>> = HashMap::new();
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
            let ids: Vec<String> = line[at + MARKER.len()..]
                .split([',', ' ', '\t'])
                .map(str::trim)
                .take_while(|s| s.is_empty() || Rule::from_id(s).is_some())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let line_no = i + 1;
            by_line
                .entry(line_no)
                .or_default()
                .extend(ids.iter().cloned());
            if comment_start.trim().is_empty() {
                by_line.entry(line_no + 1).or_default().extend(ids);
            }
        }
        Suppressions { by_line }
    }

    /// Whether `rule` is silenced on `line`.
    pub(crate) fn suppresses(&self, line: usize, rule: Rule) -> bool {
        self.by_line
            .get(&line)
            .is_some_and(|ids| ids.iter().any(|id| id == rule.id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_line_and_line_above() {
        let s = Suppressions::scan(
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
        let s = Suppressions::scan(
            "// imagedrift:ignore mutable-tag-default-policy because we pin in CI\nx\n",
        );
        assert!(s.suppresses(2, Rule::MutableTagDefaultPolicy));
        let none = Suppressions::scan("image: \"imagedrift:ignore pinned-always\"\n");
        assert!(!none.suppresses(1, Rule::PinnedAlways));
    }
}
