//! Jenkins pipelines: pod YAML embedded in `podTemplate(yaml: '''…''')` and
//! `agent { kubernetes { yaml """…""" } }`, and `containerTemplate(...)`
//! arguments of the kubernetes plugin.
//!
//! A small Groovy tokenizer finds string literals (skipping comments), so
//! each character of an extracted YAML string keeps its position in the
//! Jenkinsfile and findings point there. `yamlFile` (a path to another
//! file) is not followed.

use super::rules::{self, Hit};
use super::yaml::{Pos, PosMap};
use super::{LintOptions, Rule};
use crate::reference::ImageRef;

/// A Groovy string literal: its value, where each character came from, and
/// whether it interpolates (`"…${x}…"`), so its value is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroovyStr {
    value: String,
    /// Source position of each char of `value`, plus one for the end.
    map: Vec<Pos>,
    interpolated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Str(GroovyStr),
    Punct(char),
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    tok: Tok,
    pos: Pos,
}

/// Lints a Jenkinsfile: embedded pod YAML, then `containerTemplate`s.
pub(crate) fn lint_jenkinsfile(text: &str, opts: &LintOptions) -> Vec<Hit> {
    let tokens = tokenize(text);
    let mut hits = Vec::new();
    let mut linted: Vec<Pos> = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.tok == Tok::Ident("yaml".into())
            && let Some((s, at)) = yaml_argument(&tokens[i + 1..])
        {
            let (yaml, map) = dedent(s);
            hits.extend(rules::lint_yaml(&yaml, "YAML", PosMap::Table(&map), opts));
            linted.push(at);
        }
        if t.tok == Tok::Ident("containerTemplate".into())
            && let Some(ct) = container_template(&tokens[i + 1..])
        {
            lint_container_template(&ct, t.pos, opts, &mut hits);
        }
    }
    // Pod YAML kept in a variable (`def pod = '''…'''`, then `yaml: pod`):
    // a multi-line string that looks like a pod is linted too, but since it
    // may not be meant as YAML at all, its syntax errors are not reported.
    for t in &tokens {
        if let Tok::Str(s) = &t.tok
            && !linted.contains(&t.pos)
            && looks_like_pod_yaml(&s.value)
        {
            let (yaml, map) = dedent(s);
            let found = rules::lint_yaml(&yaml, "YAML", PosMap::Table(&map), opts);
            hits.extend(found.into_iter().filter(|h| h.rule != Rule::ParseError));
        }
    }
    hits
}

/// Whether a string holds pod YAML: several lines, a `containers:` key and
/// a `spec:` key.
fn looks_like_pod_yaml(s: &str) -> bool {
    let keys = |k: &str| s.lines().any(|l| l.trim_start().starts_with(k));
    s.contains('\n') && keys("containers:") && keys("spec:")
}

/// The string literal after `yaml`, `yaml:` or `yaml(`, and its position.
fn yaml_argument(rest: &[Token]) -> Option<(&GroovyStr, Pos)> {
    let mut it = rest.iter();
    let mut next = it.next()?;
    if matches!(next.tok, Tok::Punct(':' | '(')) {
        next = it.next()?;
    }
    match &next.tok {
        Tok::Str(s) => Some((s, next.pos)),
        _ => None,
    }
}

/// Removes the indentation common to all non-blank lines, as Groovy's
/// `stripIndent()` does. Indented YAML means the same either way, so this
/// is done whether or not the pipeline calls `stripIndent()`; the position
/// table keeps the original columns.
fn dedent(s: &GroovyStr) -> (String, Vec<Pos>) {
    let chars: Vec<char> = s.value.chars().collect();
    let mut lines: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for (i, c) in chars.iter().enumerate() {
        if *c == '\n' {
            lines.push((start, i + 1));
            start = i + 1;
        }
    }
    lines.push((start, chars.len()));
    let indent = lines
        .iter()
        .filter_map(|&(a, b)| {
            let line = &chars[a..b];
            let n = line
                .iter()
                .take_while(|c| **c == ' ' || **c == '\t')
                .count();
            (line[n..].iter().any(|c| !c.is_whitespace())).then_some(n)
        })
        .min()
        .unwrap_or(0);
    let mut out = String::with_capacity(s.value.len());
    let mut map = Vec::with_capacity(chars.len() + 1);
    for &(a, b) in &lines {
        let line = &chars[a..b];
        let skip = line
            .iter()
            .take(indent)
            .take_while(|c| **c == ' ' || **c == '\t')
            .count();
        for (j, c) in line.iter().enumerate().skip(skip) {
            out.push(*c);
            map.push(s.map[a + j]);
        }
    }
    map.push(s.map.last().copied().unwrap_or_default());
    (out, map)
}

/// A `containerTemplate`'s literal arguments that matter here.
#[derive(Debug, Default)]
struct ContainerTemplate<'a> {
    name: Option<&'a GroovyStr>,
    image: Option<&'a GroovyStr>,
    image_pos: Pos,
    /// `Some(Some(b))` for a literal boolean, `Some(None)` for an expression.
    always_pull: Option<Option<bool>>,
    always_pull_pos: Pos,
}

/// Reads `(name: 'x', image: 'y', alwaysPullImage: true, …)` or the
/// declarative block form `{ name 'x'; image 'y'; alwaysPullImage true }`.
fn container_template(rest: &[Token]) -> Option<ContainerTemplate<'_>> {
    let (open, close) = match rest.first()?.tok {
        Tok::Punct('(') => ('(', ')'),
        Tok::Punct('{') => ('{', '}'),
        _ => return None,
    };
    let mut ct = ContainerTemplate::default();
    let mut depth = 0usize;
    let mut i = 1;
    while i < rest.len() {
        match &rest[i].tok {
            Tok::Punct(c) if *c == open || matches!(c, '(' | '[' | '{') => depth += 1,
            Tok::Punct(c) if *c == close && depth == 0 => break,
            Tok::Punct(')' | ']' | '}') => depth = depth.saturating_sub(1),
            Tok::Ident(key) if depth == 0 => {
                // `key: value` (map form) or `key value` / `key(value)` (block form)
                let mut j = i + 1;
                while matches!(rest.get(j).map(|t| &t.tok), Some(Tok::Punct(':' | '('))) {
                    j += 1;
                }
                let single = rest.get(j).filter(|_| {
                    matches!(
                        rest.get(j + 1).map(|t| &t.tok),
                        Some(Tok::Punct(',' | ')' | ';' | '}')) | None
                    ) || open == '{'
                });
                match (key.as_str(), single.map(|t| &t.tok)) {
                    ("name", Some(Tok::Str(s))) => ct.name = Some(s),
                    ("image", Some(Tok::Str(s))) => {
                        ct.image = Some(s);
                        ct.image_pos = rest[j].pos;
                    }
                    ("alwaysPullImage", v) => {
                        ct.always_pull = Some(match v {
                            Some(Tok::Ident(b)) if b == "true" => Some(true),
                            Some(Tok::Ident(b)) if b == "false" => Some(false),
                            _ => None,
                        });
                        ct.always_pull_pos = rest[i].pos;
                    }
                    _ => {}
                }
                i = j.max(i + 1);
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Some(ct)
}

fn lint_container_template(
    ct: &ContainerTemplate<'_>,
    at: Pos,
    opts: &LintOptions,
    hits: &mut Vec<Hit>,
) {
    let Some(image) = ct.image else { return };
    let name = ct
        .name
        .filter(|n| !n.interpolated)
        .map_or("?", |n| n.value.as_str())
        .to_string();
    let shown = &image.value;
    let templated = image.interpolated || super::tags::is_templated(shown);
    let parsed = match ImageRef::parse(shown) {
        // `"${REGISTRY}/tools:java17"`: judged by its literal tag, if any
        // (`$VAR` without braces does not parse, so it is not judged).
        _ if templated => match super::tags::templated_stand_in(shown) {
            Some(r) => r,
            None => return,
        },
        Ok(r) => r,
        Err(e) => {
            let mut h = rules::invalid_image_hit(
                ct.image_pos,
                &format!("container `{name}`"),
                &e.to_string(),
            );
            h.container = Some(name);
            hits.push(h);
            return;
        }
    };
    let mut hit = match ct.always_pull {
        Some(None) => return, // computed at run time: unknown
        Some(Some(true)) if parsed.is_pinned() => Hit::new(
            Rule::PinnedAlways,
            ct.always_pull_pos,
            format!(
                "containerTemplate `{name}`: image `{shown}` is pinned by digest, so its content never changes, yet alwaysPullImage: true makes the plugin set imagePullPolicy: Always and every container start asks the registry (a needless round-trip, and a failed start when the registry is down); drop alwaysPullImage"
            ),
        ),
        Some(Some(true)) => return,
        _ if parsed.is_pinned() => return,
        always_pull => {
            let how = if always_pull.is_some() {
                "alwaysPullImage: false"
            } else {
                "no alwaysPullImage"
            };
            let tag = parsed.effective_tag().unwrap_or("latest");
            let (named, severity) = if tag == "latest" {
                (
                    "the mutable tag `latest`".to_string(),
                    opts.mutable_tag_severity,
                )
            } else {
                let class = super::tags::classify(Some(tag), &opts.immutable_tags);
                let Some((severity, named)) = rules::mutable_tag_verdict(&class, tag, opts) else {
                    return;
                };
                (named, severity)
            };
            let even = if tag == "latest" {
                " (even for `latest`)"
            } else {
                ""
            };
            Hit::new(
                Rule::MutableTagDefaultPolicy,
                ct.image_pos,
                format!(
                    "containerTemplate `{name}`: image `{shown}` uses {named} with {how}: the kubernetes plugin then sets imagePullPolicy: IfNotPresent{even}, so nodes that cached the tag keep running the old content after a re-push and a new build does not help; add alwaysPullImage: true or pin a digest (`{shown}@sha256:…`)"
                ),
            )
            .with_severity(severity)
        }
    };
    hit.container = Some(name);
    hit.object = Some(format!("containerTemplate at line {}", at.line));
    hits.push(hit);
}

/// Splits Groovy source into identifiers, string literals and punctuation,
/// dropping comments and whitespace.
fn tokenize(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut pos = Vec::with_capacity(chars.len() + 1);
    let (mut line, mut col) = (1, 1);
    for c in &chars {
        pos.push(Pos { line, col });
        if *c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    pos.push(Pos { line, col });

    let mut tokens = Vec::new();
    let mut i = 0;
    let starts = |i: usize, s: &str| {
        s.chars()
            .enumerate()
            .all(|(k, c)| chars.get(i + k) == Some(&c))
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if starts(i, "//") {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if starts(i, "/*") {
            i += 2;
            while i < chars.len() && !starts(i, "*/") {
                i += 1;
            }
            i += 2;
        } else if c == '\'' || c == '"' {
            let triple = starts(i, if c == '"' { "\"\"\"" } else { "'''" });
            let (s, end) = string_literal(&chars, &pos, i, c, triple);
            tokens.push(Token {
                tok: Tok::Str(s),
                pos: pos[i],
            });
            i = end;
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            tokens.push(Token {
                tok: Tok::Ident(chars[start..i].iter().collect()),
                pos: pos[start],
            });
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            tokens.push(Token {
                tok: Tok::Other,
                pos: pos[i.saturating_sub(1)],
            });
        } else {
            tokens.push(Token {
                tok: Tok::Punct(c),
                pos: pos[i],
            });
            i += 1;
        }
    }
    tokens
}

/// Reads a string literal starting at `start` (its opening quote); returns
/// it and the index after its closing quote (or the end of the text).
///
/// In a GString, each `${…}` becomes the placeholder `${}` (all its chars
/// placed at the `$`): its value is only known at run time, and the
/// expression itself (`${a ?: 'b'}`) must not break the YAML around it.
fn string_literal(
    chars: &[char],
    pos: &[Pos],
    start: usize,
    quote: char,
    triple: bool,
) -> (GroovyStr, usize) {
    let open = if triple { 3 } else { 1 };
    let mut i = start + open;
    let mut value = String::new();
    let mut map = Vec::new();
    let mut interpolated = false;
    let closes = |i: usize| {
        if triple {
            chars
                .get(i..i + 3)
                .is_some_and(|s| s.iter().all(|c| *c == quote))
        } else {
            chars.get(i) == Some(&quote)
        }
    };
    while i < chars.len() {
        let c = chars[i];
        if closes(i) {
            map.push(pos[i]);
            let s = GroovyStr {
                value,
                map,
                interpolated,
            };
            return (s, i + open);
        }
        if !triple && c == '\n' {
            break;
        }
        if c == '\\' && i + 1 < chars.len() {
            let unescaped = match chars[i + 1] {
                '\n' => None, // line continuation
                'n' => Some('\n'),
                't' => Some('\t'),
                'r' => Some('\r'),
                'b' | 'f' => None,
                other => Some(other),
            };
            if let Some(u) = unescaped {
                value.push(u);
                map.push(pos[i]);
            }
            i += 2;
            continue;
        }
        if quote == '"' && c == '$' {
            if chars.get(i + 1) == Some(&'{') {
                interpolated = true;
                for p in "${}".chars() {
                    value.push(p);
                    map.push(pos[i]);
                }
                i = interpolation_end(chars, i + 2);
                continue;
            }
            if chars
                .get(i + 1)
                .is_some_and(|n| n.is_alphabetic() || *n == '_')
            {
                interpolated = true;
            }
        }
        value.push(c);
        map.push(pos[i]);
        i += 1;
    }
    map.push(pos[i.min(pos.len() - 1)]);
    let s = GroovyStr {
        value,
        map,
        interpolated,
    };
    (s, i)
}

/// The index after the `}` closing a `${` whose body starts at `i`,
/// skipping nested braces and strings.
fn interpolation_end(chars: &[char], mut i: usize) -> usize {
    let mut depth = 0usize;
    while i < chars.len() {
        match chars[i] {
            '}' if depth == 0 => return i + 1,
            '}' => depth -= 1,
            '{' => depth += 1,
            q @ ('\'' | '"') => {
                i += 1;
                while i < chars.len() && chars[i] != q && chars[i] != '\n' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
            }
            _ => {}
        }
        i += 1;
    }
    chars.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(text: &str) -> Vec<GroovyStr> {
        tokenize(text)
            .into_iter()
            .filter_map(|t| match t.tok {
                Tok::Str(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn strings_comments_and_escapes() {
        let s = strings(
            "// 'not a string'\n/* \"nor\" */ x = 'a\\'b' + \"c${d + \"}\"}\" + '''\nl1\n  l2'''",
        );
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].value, "a'b");
        assert!(!s[0].interpolated);
        assert!(s[1].interpolated);
        assert_eq!(s[1].value, "c${}");
        assert_eq!(s[1].map.len(), 5);
        assert_eq!(s[2].value, "\nl1\n  l2");
        assert_eq!(s[2].map[1], Pos { line: 3, col: 1 });
        assert_eq!(s[2].map[4], Pos { line: 4, col: 1 });
    }

    #[test]
    fn dedent_keeps_original_columns() {
        let s = &strings("    yaml '''\n      a:\n        b: 1\n    '''")[0];
        let (text, map) = dedent(s);
        assert_eq!(text, "\na:\n  b: 1\n");
        assert_eq!(map[1], Pos { line: 2, col: 7 });
        assert_eq!(map[text.find('b').unwrap()], Pos { line: 3, col: 9 });
        assert_eq!(map.len(), text.chars().count() + 1);
    }

    #[test]
    fn container_template_forms() {
        let toks = tokenize(
            "containerTemplate(name: 'mvn', image: \"maven:${v}\", alwaysPullImage: true, command: 'cat')",
        );
        let ct = container_template(&toks[1..]).unwrap();
        assert_eq!(ct.name.unwrap().value, "mvn");
        assert!(ct.image.unwrap().interpolated);
        assert_eq!(ct.always_pull, Some(Some(true)));
        let toks = tokenize(
            "containerTemplate {\n  name 'go'\n  image 'golang:1.22'\n  alwaysPullImage params.PULL\n}",
        );
        let ct = container_template(&toks[1..]).unwrap();
        assert_eq!(ct.image.unwrap().value, "golang:1.22");
        assert_eq!(ct.image_pos, Pos { line: 3, col: 9 });
        assert_eq!(ct.always_pull, Some(None));
    }
}
