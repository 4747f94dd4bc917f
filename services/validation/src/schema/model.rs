//! The compiled schema: an arena of nodes indexed by `u32`, so recursive types (such as a
//! CRD's `JSONSchemaProps`) are plain back references, and one node serves every field that
//! refers to its type. Built-in definitions and CRD schemas compile into the same arena.

use std::collections::HashMap;

use serde_json::Value;

/// Index of a node in [`Arena::nodes`].
pub(crate) type NodeId = u32;

/// One schema: what a value must look like.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub kind: Kind,
    /// Allowed values, when the schema lists them.
    pub enum_values: Option<Box<[Value]>>,
    /// Bounds and pattern, which CRD schemas state (the built-in documents do not).
    pub limits: Option<Box<Limits>>,
}

impl Node {
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            enum_values: None,
            limits: None,
        }
    }
}

/// OpenAPI's value limits, checked on values of the matching type.
#[derive(Debug, Clone, Default)]
pub(crate) struct Limits {
    /// (bound, exclusive).
    pub minimum: Option<(f64, bool)>,
    pub maximum: Option<(f64, bool)>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub pattern: Option<regex::Regex>,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    /// Anything goes: `RawExtension`, a CRD's untyped `x-kubernetes-preserve-unknown-fields`.
    Any,
    Object(Box<ObjectNode>),
    /// `None`: items of any shape.
    Array(Option<NodeId>),
    String(Format),
    Integer {
        int32: bool,
    },
    /// A float field; integers are fine too.
    Number,
    Boolean,
    /// Kubernetes' `IntOrString` (`targetPort: http` or `8080`).
    IntOrString,
    /// Kubernetes' `resource.Quantity` (`500m`, `128Mi`, or a number).
    Quantity,
    /// A CRD's `anyOf`/`oneOf` of typed alternatives: the value must match the type of one.
    Union(Box<[NodeId]>),
}

/// String formats the API server enforces when it decodes a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    None,
    /// RFC 3339 (`metav1.Time`).
    DateTime,
    /// Standard base64 (`Secret.data`).
    Byte,
}

#[derive(Debug, Clone)]
pub(crate) struct ObjectNode {
    /// Declared fields, sorted by name (binary search on lookup).
    pub properties: Vec<(Box<str>, NodeId)>,
    pub required: Box<[Box<str>]>,
    /// What fields not in `properties` are.
    pub additional: Additional,
    /// `x-kubernetes-preserve-unknown-fields`: undeclared fields are kept, not unknown.
    pub preserve_unknown: bool,
    /// `x-kubernetes-embedded-resource`: an object with its own apiVersion, kind, metadata.
    pub embedded: bool,
}

impl ObjectNode {
    pub fn property(&self, name: &str) -> Option<NodeId> {
        self.properties
            .binary_search_by(|(k, _)| (**k).cmp(name))
            .ok()
            .map(|i| self.properties[i].1)
    }

    /// Sets (or replaces) a property, keeping the list sorted.
    pub fn set_property(&mut self, name: &str, node: NodeId) {
        match self.properties.binary_search_by(|(k, _)| (**k).cmp(name)) {
            Ok(i) => self.properties[i].1 = node,
            Err(i) => self.properties.insert(i, (name.into(), node)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Additional {
    /// Undeclared fields are unknown fields.
    Forbidden,
    /// A free-form object: any field, any value.
    Any,
    /// A map: every undeclared field's value follows this schema.
    Schema(NodeId),
}

/// Every compiled node, built-in and from CRDs.
#[derive(Debug, Default, Clone)]
pub(crate) struct Arena {
    pub nodes: Vec<Node>,
    /// CRD patterns compiled so far: CRDs repeat the same few patterns hundreds of times
    /// (kube-prometheus: 353 patterns, 47 distinct), and compiling a regex is the costly part.
    patterns: HashMap<Box<str>, Result<regex::Regex, String>>,
}

impl Arena {
    pub fn push(&mut self, node: Node) -> NodeId {
        let id = self.nodes.len() as NodeId;
        self.nodes.push(node);
        id
    }

    pub fn get(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    /// The compiled `pattern` (Go's RE2 syntax, which Rust's regex follows), or why it does
    /// not compile; a size limit keeps a hostile CRD from costing memory.
    pub fn pattern(&mut self, source: &str) -> Result<regex::Regex, String> {
        self.patterns
            .entry(source.into())
            .or_insert_with(|| {
                regex::RegexBuilder::new(source)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .clone()
    }
}

/// Top-level kinds: apiVersion → kind → root node. Nested so a lookup borrows the manifest's
/// strings instead of building a key.
pub(crate) type KindIndex = HashMap<String, HashMap<String, NodeId>>;

pub(crate) fn lookup(index: &KindIndex, api_version: &str, kind: &str) -> Option<NodeId> {
    index.get(api_version)?.get(kind).copied()
}

/// Compiles the bundled (stripped) definitions of one version. Every `$ref` resolves to the
/// referenced definition's node, so the walker never chases names.
pub(crate) struct BuiltinCompiler<'a> {
    arena: &'a mut Arena,
    ids: HashMap<&'a str, NodeId>,
}

impl<'a> BuiltinCompiler<'a> {
    /// Compiles `definitions` (name → stripped schema) into `arena`; returns name → node.
    pub fn compile(
        arena: &'a mut Arena,
        definitions: &'a serde_json::Map<String, Value>,
    ) -> Result<HashMap<&'a str, NodeId>, String> {
        let mut ids = HashMap::with_capacity(definitions.len());
        // Reserve one slot per definition first, so references (even recursive) resolve.
        for name in definitions.keys() {
            ids.insert(name.as_str(), arena.push(Node::new(Kind::Any)));
        }
        let mut compiler = BuiltinCompiler { arena, ids };
        for (name, schema) in definitions {
            let node = compiler.node(schema)?;
            let id = compiler.ids[name.as_str()];
            compiler.arena.nodes[id as usize] = node;
        }
        Ok(compiler.ids)
    }

    fn id(&mut self, schema: &Value) -> Result<NodeId, String> {
        if let Some(name) = schema.get("$ref").and_then(Value::as_str) {
            return self
                .ids
                .get(name)
                .copied()
                .ok_or_else(|| format!("reference to unknown definition {name}"));
        }
        let node = self.node(schema)?;
        Ok(self.arena.push(node))
    }

    fn node(&mut self, schema: &Value) -> Result<Node, String> {
        if let Some(name) = schema.get("$ref").and_then(Value::as_str) {
            // A definition that is only a reference: share the referenced node's shape.
            let id = *self
                .ids
                .get(name)
                .ok_or_else(|| format!("reference to unknown definition {name}"))?;
            return Ok(Node::new(Kind::Union(Box::new([id]))));
        }
        let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
        let kind = match schema.get("type").and_then(Value::as_str) {
            _ if int_or_string => Kind::IntOrString,
            Some("object") | None if schema.get("properties").is_some() => self.object(schema)?,
            Some("object") if schema.get("additionalProperties").is_some() => {
                self.object(schema)?
            }
            // A typed object with nothing declared (RawExtension, FieldsV1) holds anything.
            Some("object") | None => Kind::Any,
            Some("array") => Kind::Array(match schema.get("items") {
                Some(items) => Some(self.id(items)?),
                None => None,
            }),
            Some("string") => Kind::String(match schema.get("format").and_then(Value::as_str) {
                Some("date-time") => Format::DateTime,
                Some("byte") => Format::Byte,
                _ => Format::None,
            }),
            Some("integer") => Kind::Integer {
                int32: schema.get("format").and_then(Value::as_str) == Some("int32"),
            },
            Some("number") => Kind::Number,
            Some("boolean") => Kind::Boolean,
            Some("int-or-string") => Kind::IntOrString,
            Some("quantity") => Kind::Quantity,
            Some(other) => return Err(format!("unknown type {other}")),
        };
        let enum_values = schema
            .get("enum")
            .and_then(Value::as_array)
            .map(|values| values.clone().into_boxed_slice());
        Ok(Node {
            kind,
            enum_values,
            limits: None,
        })
    }

    fn object(&mut self, schema: &Value) -> Result<Kind, String> {
        let mut properties = Vec::new();
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (name, prop) in props {
                properties.push((name.as_str().into(), self.id(prop)?));
            }
        }
        properties.sort_by(|a: &(Box<str>, NodeId), b| a.0.cmp(&b.0));
        let required = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).map(Into::into).collect())
            .unwrap_or_default();
        let additional = match schema.get("additionalProperties") {
            Some(Value::Bool(false)) | None => Additional::Forbidden,
            Some(Value::Bool(true)) => Additional::Any,
            Some(s) => Additional::Schema(self.id(s)?),
        };
        let flag = |name: &str| schema.get(name).and_then(Value::as_bool) == Some(true);
        Ok(Kind::Object(Box::new(ObjectNode {
            properties,
            required,
            additional,
            preserve_unknown: flag("x-kubernetes-preserve-unknown-fields"),
            embedded: flag("x-kubernetes-embedded-resource"),
        })))
    }
}
