//! The bundled Kubernetes schemas (services/validation/kube-schemas, made by
//! tools/import-kube-schemas.py): one gzip file per minor version, embedded in the binary and
//! decompressed only for the version asked for, plus the index of which versions serve a kind.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use flate2::read::GzDecoder;
use serde_json::Value;

use super::SchemaError;
use super::model::{Arena, BuiltinCompiler, KindIndex, NodeId};

macro_rules! bundled {
    ($($minor:literal),*) => {
        &[$(($minor, include_bytes!(concat!("../../kube-schemas/v1.", $minor, ".json.gz")))),*]
    };
}

/// (minor version, gzip of the stripped definitions), oldest first.
pub(crate) const BUNDLED: &[(u32, &[u8])] =
    bundled!(25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37);

const INDEX: &str = include_str!("../../kube-schemas/gvk-index.json");

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// One version's compiled schemas.
pub(crate) struct Builtin {
    pub arena: Arena,
    pub kinds: KindIndex,
    pub object_meta: NodeId,
}

/// Decompresses and compiles the bundled schemas of `minor`.
pub(crate) fn load(minor: u32) -> Result<Builtin, SchemaError> {
    let corrupt = |reason: String| SchemaError::Bundle { minor, reason };
    let (_, gz) = BUNDLED
        .iter()
        .find(|(m, _)| *m == minor)
        .ok_or_else(|| corrupt("not bundled".into()))?;
    let mut json = Vec::with_capacity(gz.len() * 12);
    GzDecoder::new(*gz)
        .read_to_end(&mut json)
        .map_err(|e| corrupt(e.to_string()))?;
    let doc: Value = serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))?;
    let definitions = doc
        .get("definitions")
        .and_then(Value::as_object)
        .ok_or_else(|| corrupt("no definitions".into()))?;
    let mut arena = Arena::default();
    let ids = BuiltinCompiler::compile(&mut arena, definitions).map_err(corrupt)?;
    let mut kinds = KindIndex::new();
    for entry in doc
        .get("kinds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(api_version), Some(kind), Some(id)) = (
            entry.get(0).and_then(Value::as_str),
            entry.get(1).and_then(Value::as_str),
            entry
                .get(2)
                .and_then(Value::as_str)
                .and_then(|d| ids.get(d)),
        ) else {
            return Err(corrupt(format!("bad kind entry {entry}")));
        };
        kinds
            .entry(api_version.to_string())
            .or_default()
            .insert(kind.to_string(), *id);
    }
    let object_meta = *ids
        .get(OBJECT_META)
        .ok_or_else(|| corrupt("no ObjectMeta".into()))?;
    Ok(Builtin {
        arena,
        kinds,
        object_meta,
    })
}

/// Which bundled versions serve each kind (from gvk-index.json).
#[derive(Debug, Clone)]
pub(crate) struct Lifetimes {
    /// Every bundled minor version, oldest first.
    pub versions: Vec<u32>,
    /// "apiVersion kind" → (first, last) bundled minor version serving it.
    kinds: HashMap<String, (u32, u32)>,
    /// Every API group a bundled version serves.
    groups: HashSet<String>,
}

impl Lifetimes {
    pub fn load() -> Result<Self, SchemaError> {
        let corrupt = |reason: &str| SchemaError::Index(reason.to_string());
        let doc: Value = serde_json::from_str(INDEX).map_err(|e| corrupt(&e.to_string()))?;
        let versions = doc
            .get("versions")
            .and_then(Value::as_array)
            .ok_or_else(|| corrupt("no versions"))?
            .iter()
            .filter_map(Value::as_u64)
            .map(|v| v as u32)
            .collect();
        let mut kinds = HashMap::new();
        let mut groups = HashSet::new();
        for (gvk, span) in doc
            .get("kinds")
            .and_then(Value::as_object)
            .ok_or_else(|| corrupt("no kinds"))?
        {
            let (Some(first), Some(last)) = (
                span.get(0).and_then(Value::as_u64),
                span.get(1).and_then(Value::as_u64),
            ) else {
                return Err(corrupt("bad span"));
            };
            let api_version = gvk.split_once(' ').map_or("", |(a, _)| a);
            groups.insert(super::deprecations::group(api_version).to_string());
            kinds.insert(gvk.clone(), (first as u32, last as u32));
        }
        Ok(Self {
            versions,
            kinds,
            groups,
        })
    }

    /// (first, last) bundled version serving `api_version` `kind`.
    pub fn span(&self, api_version: &str, kind: &str) -> Option<(u32, u32)> {
        self.kinds.get(&format!("{api_version} {kind}")).copied()
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains(group)
    }

    /// The bundled version after `minor`, if any.
    pub fn next(&self, minor: u32) -> Option<u32> {
        self.versions.iter().copied().find(|v| *v > minor)
    }

    pub fn newest(&self) -> u32 {
        self.versions.last().copied().unwrap_or_default()
    }
}
