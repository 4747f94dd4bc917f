//! Kubernetes protobuf request bodies, for the few kinds whose typed `kubectl create`
//! subcommands send protobuf: Namespace, ConfigMap, Secret, ServiceAccount.
//!
//! Other kinds need their generated schemas, which kubesim does not carry; they get 415.

use serde_json::{Map, Value, json};

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The (field number, value) pairs of one message; fixed-width fields are refused.
fn fields(mut buf: &[u8]) -> Result<Vec<(u64, Wire<'_>)>, String> {
    fn varint(buf: &mut &[u8]) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = buf.split_first().ok_or("truncated varint")?;
            *buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let key = varint(&mut buf)?;
        let value = match key & 7 {
            0 => Wire::Varint(varint(&mut buf)?),
            2 => {
                let len = usize::try_from(varint(&mut buf)?).map_err(|_| "length overflow")?;
                if len > buf.len() {
                    return Err("truncated field".into());
                }
                let (v, rest) = buf.split_at(len);
                buf = rest;
                Wire::Bytes(v)
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        out.push((key >> 3, value));
    }
    Ok(out)
}

fn string(w: Wire<'_>) -> Result<String, String> {
    match w {
        Wire::Bytes(b) => String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8".into()),
        Wire::Varint(_) => Err("expected a string".into()),
    }
}

fn bytes(w: Wire<'_>) -> Result<&[u8], String> {
    match w {
        Wire::Bytes(b) => Ok(b),
        Wire::Varint(_) => Err("expected bytes".into()),
    }
}

/// A `map<string, string|bytes>` entry.
fn map_entry(w: Wire<'_>, binary: bool) -> Result<(String, Value), String> {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (n, v) in fields(bytes(w)?)? {
        match n {
            1 => key = string(v)?,
            2 if binary => value = Value::String(base64(bytes(v)?)),
            2 => value = Value::String(string(v)?),
            _ => {}
        }
    }
    Ok((key, value))
}

fn object_meta(buf: &[u8]) -> Result<Value, String> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for (n, v) in fields(buf)? {
        match n {
            1 => _ = meta.insert("name".into(), json!(string(v)?)),
            2 => _ = meta.insert("generateName".into(), json!(string(v)?)),
            3 => _ = meta.insert("namespace".into(), json!(string(v)?)),
            11 => {
                let (k, v) = map_entry(v, false)?;
                labels.insert(k, v);
            }
            12 => {
                let (k, v) = map_entry(v, false)?;
                annotations.insert(k, v);
            }
            14 => finalizers.push(json!(string(v)?)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(meta))
}

/// Decodes a protobuf-encoded object of a supported kind into its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("missing the k8s protobuf prefix")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, v) in fields(envelope)? {
        match n {
            1 => {
                for (m, t) in fields(bytes(v)?)? {
                    match m {
                        1 => api_version = string(t)?,
                        2 => kind = string(t)?,
                        _ => {}
                    }
                }
            }
            2 => raw = bytes(v)?,
            _ => {}
        }
    }
    let mut object = Map::new();
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    let (mut data, mut binary, mut string_data) = (Map::new(), Map::new(), Map::new());
    for (n, v) in fields(raw)? {
        match (kind.as_str(), n) {
            (_, 1) => _ = object.insert("metadata".into(), object_meta(bytes(v)?)?),
            ("ConfigMap", 2) => {
                let (k, v) = map_entry(v, false)?;
                data.insert(k, v);
            }
            ("ConfigMap", 3) => {
                let (k, v) = map_entry(v, true)?;
                binary.insert(k, v);
            }
            ("Secret", 2) => {
                let (k, v) = map_entry(v, true)?;
                data.insert(k, v);
            }
            ("Secret", 3) => _ = object.insert("type".into(), json!(string(v)?)),
            ("Secret", 4) => {
                let (k, v) = map_entry(v, false)?;
                string_data.insert(k, v);
            }
            ("ConfigMap", 4) | ("Secret", 5) => {
                _ = object.insert("immutable".into(), json!(matches!(v, Wire::Varint(1))))
            }
            ("Namespace" | "ServiceAccount", _) => {}
            (other, _) if !matches!(other, "ConfigMap" | "Secret") => {
                return Err(format!(
                    "protobuf bodies of kind {other:?} are not supported; send JSON or YAML"
                ));
            }
            _ => {}
        }
    }
    if !matches!(
        kind.as_str(),
        "ConfigMap" | "Secret" | "Namespace" | "ServiceAccount"
    ) {
        return Err(format!(
            "protobuf bodies of kind {kind:?} are not supported; send JSON or YAML"
        ));
    }
    for (key, m) in [
        ("data", data),
        ("binaryData", binary),
        ("stringData", string_data),
    ] {
        if !m.is_empty() {
            object.insert(key.into(), Value::Object(m));
        }
    }
    Ok(Value::Object(object))
}

pub(crate) fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![(n << 3) | 2, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn decodes_a_configmap() {
        let meta = [
            field(1, b"cm"),
            field(11, &[field(1, b"app"), field(2, b"web")].concat()),
        ]
        .concat();
        let raw = [
            field(1, &meta),
            field(2, &[field(1, b"k"), field(2, b"v")].concat()),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &raw)].concat();
        let o = decode(&body).expect("decodes");
        assert_eq!(
            o,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "labels": {"app": "web"}}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn refuses_garbage_and_other_kinds() {
        assert!(decode(b"nope").is_err());
        assert!(decode(&[MAGIC, &[0x0a, 0x7f]].concat()).is_err());
        let type_meta = [field(1, b"apps/v1"), field(2, b"Deployment")].concat();
        assert!(decode(&[MAGIC.to_vec(), field(1, &type_meta)].concat()).is_err());
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
