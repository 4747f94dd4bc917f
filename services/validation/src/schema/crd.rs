//! Compiling a CustomResourceDefinition (`apiextensions.k8s.io/v1`) into the arena: each
//! served version's `openAPIV3Schema`, the OpenAPI v3 subset structural schemas use, with
//! bounds, lengths, item counts and patterns. What this does not model (CEL rules,
//! `multipleOf`, `not`, `allOf`) is accepted, not rejected; what is malformed becomes a
//! `schema.crd` problem and is accepted as anything.

use configsync_core::event::Severity;
use serde_json::Value;

use super::check::Problem;
use super::model::{Additional, Arena, Format, Kind, Limits, Node, NodeId, ObjectNode};

/// CRD schemas nested deeper than this are not compiled further.
const MAX_DEPTH: usize = 64;

/// The kinds one CRD defines.
#[derive(Debug)]
pub(crate) struct CompiledCrd {
    pub group: String,
    pub kind: String,
    /// Served versions as (apiVersion, root node).
    pub served: Vec<(String, NodeId)>,
}

struct Compiler<'a> {
    arena: &'a mut Arena,
    problems: Vec<Problem>,
}

/// Compiles `crd` (an `apiextensions.k8s.io/v1` CustomResourceDefinition object). `None`
/// when it is too broken to say what it defines.
pub(crate) fn compile(
    arena: &mut Arena,
    object_meta: NodeId,
    crd: &Value,
) -> (Option<CompiledCrd>, Vec<Problem>) {
    let mut c = Compiler {
        arena,
        problems: Vec::new(),
    };
    let spec = crd.get("spec");
    let group = text(spec.and_then(|s| s.get("group")));
    let kind = text(spec.and_then(|s| s.pointer("/names/kind")));
    let versions = spec
        .and_then(|s| s.get("versions"))
        .and_then(Value::as_array);
    let (Some(group), Some(kind), Some(versions)) = (group, kind, versions) else {
        c.problem(
            ".spec",
            "a CustomResourceDefinition needs spec.group, spec.names.kind and spec.versions",
        );
        return (None, c.problems);
    };
    let mut served = Vec::new();
    for (i, version) in versions.iter().enumerate() {
        let Some(name) = text(version.get("name")) else {
            c.problem(&format!(".spec.versions[{i}].name"), "version has no name");
            continue;
        };
        if version.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let path = format!(".spec.versions[{i}].schema.openAPIV3Schema");
        let root = match version.pointer("/schema/openAPIV3Schema") {
            Some(schema) => c.node(schema, &path, 0),
            None => {
                c.problem(
                    &path,
                    &format!("served version {name} has no schema; its objects are not checked"),
                );
                c.arena.push(Node::new(Kind::Any))
            }
        };
        // The API server always knows apiVersion, kind and metadata (as ObjectMeta),
        // whatever the CRD's schema says about them.
        // A root with no type keeps everything, but its metadata is still ObjectMeta.
        if matches!(c.arena.get(root).kind, Kind::Any) {
            c.arena.nodes[root as usize].kind = Kind::Object(Box::new(ObjectNode {
                properties: Vec::new(),
                required: Box::default(),
                additional: Additional::Any,
                preserve_unknown: true,
                embedded: false,
            }));
        }
        if matches!(c.arena.get(root).kind, Kind::Object(_)) {
            let string = c.arena.push(Node::new(Kind::String(Format::None)));
            if let Kind::Object(object) = &mut c.arena.nodes[root as usize].kind {
                object.set_property("apiVersion", string);
                object.set_property("kind", string);
                object.set_property("metadata", object_meta);
            }
        }
        served.push((format!("{group}/{name}"), root));
    }
    (
        Some(CompiledCrd {
            group: group.into(),
            kind: kind.into(),
            served,
        }),
        c.problems,
    )
}

impl Compiler<'_> {
    fn problem(&mut self, path: &str, message: &str) {
        self.problems.push(Problem {
            severity: Severity::Error,
            rule: "schema.crd",
            path: path.into(),
            message: message.into(),
        });
    }

    fn node(&mut self, schema: &Value, path: &str, depth: usize) -> NodeId {
        let node = self.build(schema, path, depth);
        self.arena.push(node)
    }

    fn build(&mut self, schema: &Value, path: &str, depth: usize) -> Node {
        let any = Node::new(Kind::Any);
        let Some(s) = schema.as_object() else {
            self.problem(path, "a schema must be an object");
            return any;
        };
        if depth > MAX_DEPTH {
            self.problem(
                path,
                &format!("schema nested deeper than {MAX_DEPTH} levels"),
            );
            return any;
        }
        let flag = |name: &str| s.get(name).and_then(Value::as_bool) == Some(true);
        let preserve = flag("x-kubernetes-preserve-unknown-fields");
        let ty = match s.get("type") {
            None => None,
            Some(Value::String(t)) => Some(t.as_str()),
            Some(_) => {
                self.problem(&format!("{path}.type"), "type must be a string");
                return any;
            }
        };
        let kind = if flag("x-kubernetes-int-or-string") {
            Kind::IntOrString
        } else {
            match ty {
                Some("object") => self.object(
                    s,
                    path,
                    depth,
                    preserve,
                    flag("x-kubernetes-embedded-resource"),
                ),
                None if s.contains_key("properties") || s.contains_key("additionalProperties") => {
                    self.object(
                        s,
                        path,
                        depth,
                        preserve,
                        flag("x-kubernetes-embedded-resource"),
                    )
                }
                Some("array") => Kind::Array(
                    s.get("items")
                        .map(|items| self.node(items, &format!("{path}.items"), depth + 1)),
                ),
                Some("string") => Kind::String(match s.get("format").and_then(Value::as_str) {
                    Some("date-time") => Format::DateTime,
                    Some("byte") => Format::Byte,
                    _ => Format::None,
                }),
                Some("integer") => Kind::Integer {
                    int32: s.get("format").and_then(Value::as_str) == Some("int32"),
                },
                Some("number") => Kind::Number,
                Some("boolean") => Kind::Boolean,
                Some(other) => {
                    self.problem(
                        &format!("{path}.type"),
                        &format!("unknown type \"{other}\""),
                    );
                    Kind::Any
                }
                None if preserve => Kind::Any,
                None => self.union(s, path, depth),
            }
        };
        let enum_values = match s.get("enum") {
            None => None,
            Some(Value::Array(values)) => Some(values.clone().into_boxed_slice()),
            Some(_) => {
                self.problem(&format!("{path}.enum"), "enum must be a list");
                None
            }
        };
        let limits = self.limits(s, path);
        Node {
            kind,
            enum_values,
            limits,
        }
    }

    /// `minimum`/`maximum` (and their `exclusive` flags), lengths, item counts and `pattern`.
    fn limits(&mut self, s: &serde_json::Map<String, Value>, path: &str) -> Option<Box<Limits>> {
        let number = |k: &str| s.get(k).and_then(Value::as_f64);
        let count = |k: &str| s.get(k).and_then(Value::as_u64);
        let flag = |k: &str| s.get(k).and_then(Value::as_bool) == Some(true);
        let mut limits = Limits {
            minimum: number("minimum").map(|m| (m, flag("exclusiveMinimum"))),
            maximum: number("maximum").map(|m| (m, flag("exclusiveMaximum"))),
            min_length: count("minLength"),
            max_length: count("maxLength"),
            min_items: count("minItems"),
            max_items: count("maxItems"),
            pattern: None,
        };
        if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
            match self.arena.pattern(pattern) {
                Ok(re) => limits.pattern = Some(re),
                Err(e) => self.problem(
                    &format!("{path}.pattern"),
                    &format!("pattern does not compile: {e}"),
                ),
            }
        }
        let any = limits.minimum.is_some()
            || limits.maximum.is_some()
            || limits.min_length.is_some()
            || limits.max_length.is_some()
            || limits.min_items.is_some()
            || limits.max_items.is_some()
            || limits.pattern.is_some();
        any.then(|| Box::new(limits))
    }

    fn object(
        &mut self,
        s: &serde_json::Map<String, Value>,
        path: &str,
        depth: usize,
        preserve: bool,
        embedded: bool,
    ) -> Kind {
        let mut properties = Vec::new();
        match s.get("properties") {
            None => {}
            Some(Value::Object(props)) => {
                for (name, prop) in props {
                    let id = self.node(prop, &format!("{path}.properties.{name}"), depth + 1);
                    properties.push((name.as_str().into(), id));
                }
            }
            Some(_) => self.problem(&format!("{path}.properties"), "properties must be a map"),
        }
        properties.sort_by(|a: &(Box<str>, NodeId), b| a.0.cmp(&b.0));
        let required = match s.get("required") {
            None => Box::default(),
            Some(Value::Array(r)) if r.iter().all(Value::is_string) => {
                // The API server applies a field's `default` before it checks `required`, so a
                // defaulted field may be left out.
                let props = s.get("properties").and_then(Value::as_object);
                let defaulted = |name: &str| {
                    props
                        .and_then(|p| p.get(name))
                        .is_some_and(|p| p.get("default").is_some())
                };
                r.iter()
                    .filter_map(Value::as_str)
                    .filter(|name| !defaulted(name))
                    .map(Into::into)
                    .collect()
            }
            Some(_) => {
                self.problem(
                    &format!("{path}.required"),
                    "required must be a list of field names",
                );
                Box::default()
            }
        };
        let additional = match s.get("additionalProperties") {
            None | Some(Value::Bool(false)) => Additional::Forbidden,
            Some(Value::Bool(true)) => Additional::Any,
            Some(schema) => Additional::Schema(self.node(
                schema,
                &format!("{path}.additionalProperties"),
                depth + 1,
            )),
        };
        Kind::Object(Box::new(ObjectNode {
            properties,
            required,
            additional,
            preserve_unknown: preserve,
            embedded,
        }))
    }

    /// An untyped schema: `anyOf`/`oneOf` of typed alternatives becomes a union; anything
    /// else untyped is accepted as it is.
    fn union(&mut self, s: &serde_json::Map<String, Value>, path: &str, depth: usize) -> Kind {
        for key in ["anyOf", "oneOf"] {
            let Some(Value::Array(alternatives)) = s.get(key) else {
                continue;
            };
            if alternatives.is_empty() || !alternatives.iter().all(|a| a.get("type").is_some()) {
                continue;
            }
            let ids = alternatives
                .iter()
                .enumerate()
                .map(|(i, a)| self.node(a, &format!("{path}.{key}[{i}]"), depth + 1))
                .collect();
            return Kind::Union(ids);
        }
        Kind::Any
    }
}

/// A non-empty string field.
fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty())
}
