//! Located YAML decoding: the text is loaded into `saphyr` nodes that keep their spans, and
//! the typed manifests are read from those nodes by hand through a [`Decoder`] that knows
//! the file name and collects every field error it meets (so a user sees all mistakes at
//! once, each with its line). This module knows nothing about the manifests' fields; it must
//! not validate meaning, only shape (types, unknown keys, missing keys).
//!
//! Scalars are loaded unresolved (`early_parse(false)`), so a plain `3.10` can be read as the
//! string "3.10" for a version field instead of the float 3.1, while a typed field still gets
//! YAML 1.2 core-schema resolution.

use std::borrow::Cow;
use std::collections::BTreeMap;

use saphyr::{MarkedYaml, Scalar, ScalarStyle, YamlData, YamlLoader};
use saphyr_parser::{Event, Parser};

use super::{FieldError, Location, ManifestError, Origin, Problem};

pub(crate) type Node<'a> = MarkedYaml<'a>;

/// How deep collections may nest. The parser's loader and the node tree it builds (and
/// drops) recurse once per level; block sequences written on one line (`- - - x`) cost two
/// bytes a level, so a 1 MiB document would otherwise overflow any thread's stack and abort
/// the process. Real manifests nest four or five levels.
const MAX_DEPTH: usize = 64;

/// Load exactly one YAML (or JSON) document from `text`.
pub(crate) fn load<'a>(text: &'a str, origin: &str) -> Result<Node<'a>, ManifestError> {
    let syntax = |at: Location, message: String| ManifestError::Syntax {
        origin: origin.to_string(),
        at,
        message,
    };
    // First a flat pass over the events (the event parser keeps its state on the heap) to
    // refuse a document nested too deep before anything recursive runs.
    if let Some(at) = too_deep(text) {
        return Err(syntax(
            at,
            format!("collections are nested more than {MAX_DEPTH} levels deep"),
        ));
    }
    let mut loader: YamlLoader<'a, Node<'a>> = YamlLoader::default();
    loader.early_parse(false);
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut loader, true) {
        return Err(syntax(marker(e.marker()), e.info().to_string()));
    }
    if let Some(e) = loader.error() {
        return Err(syntax(marker(e.marker()), e.info().to_string()));
    }
    let mut docs = loader.into_documents();
    match docs.len() {
        0 => Err(syntax(
            Location { line: 1, column: 1 },
            "the document is empty".to_string(),
        )),
        1 => Ok(docs.remove(0)),
        _ => Err(syntax(
            location(&docs[1]),
            "more than one YAML document: write a single one".to_string(),
        )),
    }
}

/// Where the first collection deeper than [`MAX_DEPTH`] starts, if any. A syntax error ends
/// the pass: the loader then reports it, having recursed no deeper than this pass went.
fn too_deep(text: &str) -> Option<Location> {
    let mut depth = 0usize;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.ok()?;
        match event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(marker(&span.start));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

fn marker(m: &saphyr::Marker) -> Location {
    Location {
        line: m.line(),
        column: m.col() + 1,
    }
}

/// The 1-based position where `node` starts.
pub(crate) fn location(node: &Node<'_>) -> Location {
    marker(&node.span.start)
}

/// Join a field path and a key: `""` + `name` = `name`, `source` + `revision` =
/// `source.revision`.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The scalar a node holds, resolved by the YAML 1.2 core schema (or by its tag).
enum Resolved<'n> {
    Scalar(Scalar<'n>, &'n str, ScalarStyle),
    Sequence(&'n [Node<'n>]),
    Mapping,
    /// A tagged scalar whose text does not fit its tag (`!!int abc`).
    Bad,
}

fn resolve<'n>(node: &'n Node<'n>) -> Resolved<'n> {
    match &node.data {
        YamlData::Representation(raw, style, tag) => {
            match Scalar::parse_from_cow_and_metadata(
                Cow::Borrowed(raw.as_ref()),
                *style,
                tag.as_ref(),
            ) {
                Some(s) => Resolved::Scalar(s, raw.as_ref(), *style),
                None => Resolved::Bad,
            }
        }
        YamlData::Value(s) => Resolved::Scalar(s.clone(), "", ScalarStyle::Plain),
        YamlData::Sequence(items) => Resolved::Sequence(items),
        YamlData::Mapping(_) => Resolved::Mapping,
        YamlData::Tagged(_, inner) => resolve(inner),
        YamlData::Alias(_) | YamlData::BadValue => Resolved::Bad,
    }
}

/// Collection nodes may carry a tag (`!!map`); look through it.
fn untag<'n>(node: &'n Node<'n>) -> &'n Node<'n> {
    match &node.data {
        YamlData::Tagged(_, inner) => untag(inner),
        _ => node,
    }
}

fn kind(node: &Node<'_>) -> &'static str {
    match resolve(node) {
        Resolved::Scalar(Scalar::Null, ..) => "null",
        Resolved::Scalar(Scalar::Boolean(_), ..) => "a boolean",
        Resolved::Scalar(Scalar::Integer(_), ..) => "an integer",
        Resolved::Scalar(Scalar::FloatingPoint(_), ..) => "a number",
        Resolved::Scalar(Scalar::String(_), ..) => "a string",
        Resolved::Sequence(_) => "a sequence",
        Resolved::Mapping => "a mapping",
        Resolved::Bad => "a value that does not match its tag",
    }
}

/// True for an explicit `~`/`null`/empty value, which optional fields treat as absent.
pub(crate) fn is_null(node: &Node<'_>) -> bool {
    matches!(resolve(node), Resolved::Scalar(Scalar::Null, ..))
}

/// True when the node is a mapping (its entries are read with [`Decoder::mapping`]).
pub(crate) fn is_mapping(node: &Node<'_>) -> bool {
    matches!(untag(node).data, YamlData::Mapping(_))
}

/// The entries of one mapping, with unknown keys already reported.
pub(crate) struct Fields<'n> {
    pub path: String,
    entries: Vec<(String, &'n Node<'n>, &'n Node<'n>)>,
}

impl<'n> Fields<'n> {
    /// The value under `key`, unless absent or null.
    pub fn get(&self, key: &str) -> Option<&'n Node<'n>> {
        self.entries
            .iter()
            .find(|(k, _, v)| k == key && !is_null(v))
            .map(|(_, _, v)| *v)
    }

    /// The node of `key` itself (for errors about the key, e.g. a conflict).
    pub fn key_node(&self, key: &str) -> Option<&'n Node<'n>> {
        self.entries
            .iter()
            .find(|(k, ..)| k == key)
            .map(|(_, k, _)| *k)
    }

    /// The path of a field below this mapping.
    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Every entry in document order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &'n Node<'n>, &'n Node<'n>)> + '_ {
        self.entries.iter().map(|(k, kn, v)| (k.as_str(), *kn, *v))
    }
}

/// Reads typed values out of nodes, remembering every error with its place.
pub(crate) struct Decoder<'o> {
    pub origin: &'o str,
    pub errors: Vec<FieldError>,
}

impl<'o> Decoder<'o> {
    pub fn new(origin: &'o str) -> Self {
        Decoder {
            origin,
            errors: Vec::new(),
        }
    }

    pub fn error_at(&mut self, at: Location, field: &str, problem: Problem) {
        self.errors.push(FieldError {
            origin: self.origin.to_string(),
            at: Origin::File(at),
            field: field.to_string(),
            problem,
        });
    }

    pub fn error(&mut self, node: &Node<'_>, field: &str, problem: Problem) {
        self.error_at(location(node), field, problem);
    }

    fn wrong_type(&mut self, node: &Node<'_>, field: &str, expected: &'static str) {
        let found = kind(node);
        self.error(node, field, Problem::WrongType { expected, found });
    }

    /// Read a mapping with the given known keys. Unknown keys are reported at the key's own
    /// line; `x-` keys are let through (the caller keeps or ignores them).
    pub fn mapping<'n>(
        &mut self,
        node: &'n Node<'n>,
        path: &str,
        allowed: &'static [&'static str],
    ) -> Option<Fields<'n>> {
        let node = untag(node);
        let YamlData::Mapping(map) = &node.data else {
            self.wrong_type(node, path_or_root(path), "a mapping");
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (key, value) in map {
            let Resolved::Scalar(scalar, raw, _) = resolve(key) else {
                self.wrong_type(key, path_or_root(path), "a string key");
                continue;
            };
            // A key like `80:` or `true:` is still meant as its text.
            let name = match scalar {
                Scalar::String(s) => s.into_owned(),
                _ if !raw.is_empty() => raw.to_string(),
                _ => {
                    self.wrong_type(key, path_or_root(path), "a string key");
                    continue;
                }
            };
            if !name.starts_with("x-") && !allowed.contains(&name.as_str()) {
                self.error(key, &join(path, &name), Problem::UnknownField { allowed });
                continue;
            }
            entries.push((name, key, value));
        }
        Some(Fields {
            path: path.to_string(),
            entries,
        })
    }

    /// A string field. Plain integers and floats are taken as the text written (`3.10` stays
    /// "3.10"), because versions and env values are often left unquoted; booleans and nulls
    /// are refused, since `yes`/`true` as text is almost always a mistake in the other
    /// direction.
    pub fn string(&mut self, node: &Node<'_>, field: &str) -> Option<String> {
        match resolve(node) {
            Resolved::Scalar(Scalar::String(s), ..) => Some(s.into_owned()),
            Resolved::Scalar(
                Scalar::Integer(_) | Scalar::FloatingPoint(_),
                raw,
                ScalarStyle::Plain,
            ) if !raw.is_empty() => Some(raw.to_string()),
            Resolved::Scalar(Scalar::Integer(i), "", _) => Some(i.to_string()),
            _ => {
                self.wrong_type(node, field, "a string");
                None
            }
        }
    }

    /// A non-empty string field.
    pub fn nonempty_string(&mut self, node: &Node<'_>, field: &str) -> Option<String> {
        let s = self.string(node, field)?;
        if s.trim().is_empty() {
            self.error(node, field, Problem::Empty);
            return None;
        }
        Some(s)
    }

    /// An integer field.
    pub fn integer(&mut self, node: &Node<'_>, field: &str) -> Option<i64> {
        if let Resolved::Scalar(Scalar::Integer(i), ..) = resolve(node) {
            Some(i)
        } else {
            self.wrong_type(node, field, "an integer");
            None
        }
    }

    /// An integer field within `min..=max`.
    pub fn integer_in(&mut self, node: &Node<'_>, field: &str, min: i64, max: i64) -> Option<i64> {
        let value = self.integer(node, field)?;
        if value < min || value > max {
            self.error(node, field, Problem::OutOfRange { value, min, max });
            return None;
        }
        Some(value)
    }

    /// A sequence field; returns its items.
    pub fn sequence<'n>(&mut self, node: &'n Node<'n>, field: &str) -> Option<&'n [Node<'n>]> {
        if let Resolved::Sequence(items) = resolve(untag(node)) {
            Some(items)
        } else {
            self.wrong_type(node, field, "a sequence");
            None
        }
    }

    /// A sequence of strings.
    pub fn string_list(&mut self, node: &Node<'_>, field: &str) -> Option<Vec<(String, Location)>> {
        let items = self.sequence(node, field)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(s) = self.nonempty_string(item, &format!("{field}[{i}]")) {
                out.push((s, location(item)));
            }
        }
        Some(out)
    }

    /// A mapping from strings to strings (environment-like), with each entry's location.
    pub fn string_map(
        &mut self,
        node: &Node<'_>,
        field: &str,
    ) -> Option<BTreeMap<String, (String, Location)>> {
        let node = untag(node);
        let YamlData::Mapping(map) = &node.data else {
            self.wrong_type(node, field, "a mapping");
            return None;
        };
        let mut out = BTreeMap::new();
        for (key, value) in map {
            let Some(name) = self.string(key, field) else {
                continue;
            };
            let path = join(field, &name);
            // An empty value (`KEY:`) is an empty string, as in a shell assignment.
            let text = if is_null(value) {
                Some(String::new())
            } else {
                self.string(value, &path)
            };
            if let Some(text) = text {
                out.insert(name, (text, location(key)));
            }
        }
        Some(out)
    }
}

fn path_or_root(path: &str) -> &str {
    if path.is_empty() {
        "(document)"
    } else {
        path
    }
}

/// Convert a node to JSON (for `x-` extension values, kept but not interpreted).
pub(crate) fn to_json(node: &Node<'_>) -> serde_json::Value {
    use serde_json::Value;
    let node = untag(node);
    if let YamlData::Mapping(map) = &node.data {
        let mut out = serde_json::Map::new();
        for (k, v) in map {
            let key = match to_json(k) {
                Value::String(s) => s,
                other => other.to_string(),
            };
            out.insert(key, to_json(v));
        }
        return Value::Object(out);
    }
    match resolve(node) {
        Resolved::Sequence(items) => Value::Array(items.iter().map(to_json).collect()),
        Resolved::Scalar(Scalar::Null, ..) | Resolved::Bad | Resolved::Mapping => Value::Null,
        Resolved::Scalar(Scalar::Boolean(b), ..) => Value::Bool(b),
        Resolved::Scalar(Scalar::Integer(i), ..) => Value::from(i),
        Resolved::Scalar(Scalar::FloatingPoint(f), raw, _) => serde_json::Number::from_f64(f.0)
            .map_or_else(|| Value::String(raw.to_string()), Value::Number),
        Resolved::Scalar(Scalar::String(s), ..) => Value::String(s.into_owned()),
    }
}
