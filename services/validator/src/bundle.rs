//! The rendered bundle of one environment at one revision: canonical JSON, so the same
//! manifests always give the same bytes and the same SHA-256 digest.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What the validator stores and the applier applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    pub environment: String,
    pub revision: String,
    /// The objects, in the order they were loaded (path order, then document order).
    pub objects: Vec<Value>,
}

impl Bundle {
    /// Canonical bytes: serde_json writes object keys in sorted order (no `preserve_order`).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_content_gives_equal_bytes_whatever_the_key_order() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":1}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":1,"y":2},"b":1}"#).unwrap();
        let bundle = |o| Bundle {
            environment: "dev".into(),
            revision: "r".into(),
            objects: vec![o],
        };
        assert_eq!(bundle(a).to_bytes(), bundle(b).to_bytes());
    }
}
