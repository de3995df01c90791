//! YAML (and JSON, which is YAML flow syntax) parsed into a small tree
//! whose every node knows its line and column in the file being linted.
//!
//! A stream is split at `---` lines before parsing, so a broken document
//! costs only itself: it becomes a parse error with a position and the
//! documents after it are still read.

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, ScanError, Span};
use std::collections::HashMap;

/// A 1-based line and 1-based column (in characters) in the linted file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// Line, counting from 1.
    pub line: usize,
    /// Column in characters, counting from 1.
    pub col: usize,
}

/// How positions in the parsed text map to positions in the linted file.
#[derive(Clone, Copy, Debug)]
pub enum PosMap<'a> {
    /// The parsed text is the file itself.
    Identity,
    /// The parsed text was extracted from the file (Jenkinsfile): entry `i`
    /// is the file position of the text's `i`-th character, with one extra
    /// entry for the end of the text.
    Table(&'a [Pos]),
}

/// A YAML node and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// The node's content.
    pub value: Value,
    /// Where the node starts (for a quoted scalar: its opening quote).
    pub pos: Pos,
}

/// The content of a YAML node.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar as written, and whether it was quoted or a block scalar
    /// (then `null`, `true`, numbers are plain strings, not keywords).
    Scalar {
        /// The scalar's text after unescaping and folding.
        text: String,
        /// Plain (unquoted) style.
        plain: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The scalar text, if the node is a scalar.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether the node is a plain `null`, `~` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The boolean a plain `true`/`false` scalar stands for.
    pub fn as_bool(&self) -> Option<bool> {
        match &self.value {
            Value::Scalar { text, plain: true } => match text.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// The sequence items, if the node is a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The mapping entries, if the node is a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The key node and value node for `key` in a mapping, honouring YAML
    /// merge keys (`<<: *base`), which Kubernetes' YAML decoder applies.
    pub fn entry(&self, key: &str) -> Option<(&Node, &Node)> {
        let entries = self.as_map()?;
        if let Some((k, v)) = entries.iter().find(|(k, _)| k.as_str() == Some(key)) {
            return Some((k, v));
        }
        let merged = entries.iter().find(
            |(k, _)| matches!(&k.value, Value::Scalar { text, plain: true } if text == "<<"),
        )?;
        match &merged.1.value {
            Value::Map(_) => merged.1.entry(key),
            Value::Seq(items) => items.iter().find_map(|m| m.entry(key)),
            Value::Scalar { .. } => None,
        }
    }

    /// The value for `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The value at a path of mapping keys.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        path.iter().try_fold(self, |node, key| node.get(key))
    }
}

/// One document of a stream, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// The root node.
    pub root: Node,
    /// The chart template a Helm-rendered document came from (its
    /// `# Source:` comment).
    pub helm_source: Option<String>,
}

/// A document that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where the parser gave up.
    pub pos: Pos,
    /// What the parser expected or found.
    pub message: String,
}

/// Alias expansion beyond this many nodes per document is refused, so a
/// "billion laughs" document cannot exhaust memory.
const MAX_NODES: usize = 1_000_000;

/// Deeper nesting is refused: no manifest needs it, and it bounds recursion.
const MAX_DEPTH: usize = 500;

/// Parses every document of a YAML stream. Empty documents are skipped;
/// each broken document yields one error and does not stop the others.
pub fn parse_stream(text: &str, map: PosMap<'_>) -> Vec<Result<Document, SyntaxError>> {
    let mut out = Vec::new();
    for chunk in split_documents(text) {
        let mapper = Mapper {
            map,
            char_offset: chunk.char_offset,
            line_offset: chunk.line_offset,
        };
        let helm_source = helm_source(chunk.text);
        for doc in parse_chunk(chunk.text, &mapper) {
            out.push(doc.map(|root| Document {
                root,
                helm_source: helm_source.clone(),
            }));
        }
    }
    out
}

/// A slice of the stream that holds one document (or several separated by
/// `...` only), and where it starts.
struct Chunk<'t> {
    text: &'t str,
    char_offset: usize,
    line_offset: usize,
}

/// Splits before each line that starts with a `---` marker. A marker at
/// column 0 always starts a new document in YAML (even inside a block
/// scalar), so this never cuts a valid document in two.
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let (mut start_byte, mut start_char, mut start_line) = (0, 0, 0);
    let (mut byte, mut chars) = (0, 0);
    for (line_no, line) in text.split_inclusive('\n').enumerate() {
        if line_no > 0 && is_document_marker(line) {
            chunks.push(Chunk {
                text: &text[start_byte..byte],
                char_offset: start_char,
                line_offset: start_line,
            });
            (start_byte, start_char, start_line) = (byte, chars, line_no);
        }
        byte += line.len();
        chars += line.chars().count();
    }
    chunks.push(Chunk {
        text: &text[start_byte..],
        char_offset: start_char,
        line_offset: start_line,
    });
    chunks
}

fn is_document_marker(line: &str) -> bool {
    line.strip_prefix("---")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// The `# Source: chart/templates/x.yaml` comment Helm writes before each
/// rendered document.
fn helm_source(chunk: &str) -> Option<String> {
    chunk
        .lines()
        .map(str::trim)
        .take_while(|l| l.is_empty() || l.starts_with('#') || is_document_marker(l))
        .find_map(|l| l.strip_prefix("# Source:").map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
}

struct Mapper<'a> {
    map: PosMap<'a>,
    char_offset: usize,
    line_offset: usize,
}

impl Mapper<'_> {
    fn pos(&self, m: &Marker) -> Pos {
        match self.map {
            PosMap::Identity => Pos {
                line: m.line() + self.line_offset,
                col: m.col() + 1,
            },
            PosMap::Table(table) => {
                let i = (self.char_offset + m.index()).min(table.len().saturating_sub(1));
                table.get(i).copied().unwrap_or(Pos { line: 1, col: 1 })
            }
        }
    }
}

enum Frame {
    Seq {
        items: Vec<Node>,
        pos: Pos,
        anchor: usize,
        size: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        pos: Pos,
        anchor: usize,
        size: usize,
    },
}

/// Builds trees from parser events for every document in one chunk.
fn parse_chunk(text: &str, mapper: &Mapper<'_>) -> Vec<Result<Node, SyntaxError>> {
    let mut docs = Vec::new();
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut total = 0usize;
    while let Some(event) = parser.next_event() {
        let (event, span): (Event<'_>, Span) = match event {
            Ok(ev) => ev,
            Err(e) => {
                docs.push(Err(scan_error(&e, mapper)));
                return docs;
            }
        };
        let pos = mapper.pos(&span.start);
        let completed = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing => None,
            Event::DocumentStart(_) => {
                stack.clear();
                anchors.clear();
                root = None;
                total = 0;
                None
            }
            Event::DocumentEnd => {
                if let Some(node) = root.take() {
                    let empty = node.is_null();
                    if !empty {
                        docs.push(Ok(node));
                    }
                }
                None
            }
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = style == ScalarStyle::Plain;
                Some((
                    Node {
                        value: Value::Scalar {
                            text: text.into_owned(),
                            plain,
                        },
                        pos,
                    },
                    anchor,
                    1,
                ))
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some((node, size)) => Some((
                    Node {
                        pos,
                        ..node.clone()
                    },
                    0,
                    *size,
                )),
                None => {
                    docs.push(Err(SyntaxError {
                        pos,
                        message: "alias to an unknown anchor".into(),
                    }));
                    return docs;
                }
            },
            Event::SequenceStart(..) | Event::MappingStart(..) if stack.len() >= MAX_DEPTH => {
                docs.push(Err(SyntaxError {
                    pos,
                    message: format!("nesting deeper than {MAX_DEPTH} levels"),
                }));
                return docs;
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq {
                    items: Vec::new(),
                    pos,
                    anchor,
                    size: 1,
                });
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    pos,
                    anchor,
                    size: 1,
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq {
                    items,
                    pos,
                    anchor,
                    size,
                }) => Some((
                    Node {
                        value: Value::Seq(items),
                        pos,
                    },
                    anchor,
                    size,
                )),
                Some(Frame::Map {
                    entries,
                    pos,
                    anchor,
                    size,
                    ..
                }) => Some((
                    Node {
                        value: Value::Map(entries),
                        pos,
                    },
                    anchor,
                    size,
                )),
                None => None,
            },
        };
        let Some((node, anchor, size)) = completed else {
            continue;
        };
        total += size;
        if total > MAX_NODES {
            docs.push(Err(SyntaxError {
                pos,
                message: format!(
                    "document expands to more than {MAX_NODES} nodes (alias expansion)"
                ),
            }));
            return docs;
        }
        if anchor > 0 {
            anchors.insert(anchor, (node.clone(), size));
        }
        match stack.last_mut() {
            Some(Frame::Seq { items, size: s, .. }) => {
                *s += size;
                items.push(node);
            }
            Some(Frame::Map {
                entries,
                key,
                size: s,
                ..
            }) => {
                *s += size;
                match key.take() {
                    Some(k) => entries.push((k, node)),
                    None => *key = Some(node),
                }
            }
            None => root = Some(node),
        }
    }
    docs
}

fn scan_error(e: &ScanError, mapper: &Mapper<'_>) -> SyntaxError {
    SyntaxError {
        pos: mapper.pos(e.marker()),
        message: e.info().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(text: &str) -> Vec<Result<Document, SyntaxError>> {
        parse_stream(text, PosMap::Identity)
    }

    #[test]
    fn positions_are_one_based_and_follow_documents() {
        let d =
            docs("a: 1\n---\n# Source: chart/templates/x.yaml\nkind: Pod\nspec:\n  x: [1, 2]\n");
        assert_eq!(d.len(), 2);
        let second = d[1].as_ref().unwrap();
        assert_eq!(
            second.helm_source.as_deref(),
            Some("chart/templates/x.yaml")
        );
        let (k, v) = second.root.entry("kind").unwrap();
        assert_eq!(k.pos, Pos { line: 4, col: 1 });
        assert_eq!(v.pos, Pos { line: 4, col: 7 });
        let x = second.root.at(&["spec", "x"]).unwrap();
        assert_eq!(x.as_seq().unwrap()[1].pos, Pos { line: 6, col: 10 });
    }

    #[test]
    fn broken_document_in_the_middle_does_not_stop_the_rest() {
        let d = docs("a: 1\n---\nb: [1, 2\nc: d\n---\ne: f\n");
        assert_eq!(d.len(), 3);
        assert!(d[0].is_ok());
        let err = d[1].as_ref().unwrap_err();
        assert!(err.pos.line >= 3 && err.pos.line <= 5, "{err:?}");
        assert_eq!(
            d[2].as_ref().unwrap().root.get("e").unwrap().pos,
            Pos { line: 6, col: 4 }
        );
    }

    #[test]
    fn json_positions() {
        let d = docs(
            "{\n\t\"kind\": \"Pod\",\n  \"spec\": {\"a\": 1}\n}\n"
                .replace('\t', " ")
                .as_str(),
        );
        let root = &d[0].as_ref().unwrap().root;
        assert_eq!(root.get("kind").unwrap().pos, Pos { line: 2, col: 10 });
        assert_eq!(
            root.at(&["spec", "a"]).unwrap().pos,
            Pos { line: 3, col: 17 }
        );
    }

    #[test]
    fn empty_documents_are_skipped_and_aliases_and_merge_keys_resolve() {
        let d =
            docs("---\n---\n# only a comment\n---\nbase: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n...\n");
        assert_eq!(d.len(), 1);
        let root = &d[0].as_ref().unwrap().root;
        assert_eq!(root.at(&["m", "x"]).unwrap().as_str(), Some("1"));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            text.push_str(&format!("a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"));
        }
        let d = docs(&text);
        assert!(d[0].as_ref().unwrap_err().message.contains("alias"));
    }

    #[test]
    fn deep_nesting_is_refused() {
        // flow nesting: the parser's own limit
        let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(docs(&text)[0].is_err());
        // block nesting: ours
        let text: String = (0..MAX_DEPTH + 5)
            .map(|i| format!("{}a:\n", " ".repeat(i)))
            .collect();
        let d = docs(&text);
        assert!(
            d[0].as_ref().unwrap_err().message.contains("nesting"),
            "{d:?}"
        );
    }

    #[test]
    fn table_maps_positions() {
        let table: Vec<Pos> = "a: b"
            .chars()
            .enumerate()
            .map(|(i, _)| Pos {
                line: 7,
                col: 10 + i,
            })
            .chain([Pos { line: 7, col: 14 }])
            .collect();
        let d = parse_stream("a: b", PosMap::Table(&table));
        assert_eq!(
            d[0].as_ref().unwrap().root.get("a").unwrap().pos,
            Pos { line: 7, col: 13 }
        );
    }
}
