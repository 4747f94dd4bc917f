//! Rendered bundles in a JetStream object store, content-addressed by SHA-256: the validator
//! stores what it validated, events carry the digest, the applier fetches exactly those bytes
//! and checks them against the digest.

use async_nats::jetstream::{self, object_store};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

/// The object store bucket.
pub const BUCKET: &str = "configsync-bundles";

/// Why a bundle could not be stored or read.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("bundle store {BUCKET} unavailable: {0} (create it with `configsync nats init`)")]
    Unavailable(String),
    #[error("bundle {0} not found")]
    NotFound(String),
    #[error("bundle {digest} is corrupt: its content hashes to {actual}")]
    Corrupt { digest: String, actual: String },
    #[error("bundle {digest} is not a ConfigSync bundle: {reason}")]
    Unreadable { digest: String, reason: String },
    #[error("malformed digest {0:?}: expected sha256:<64 hex>")]
    BadDigest(String),
    #[error("bundle store request failed: {0}")]
    Request(String),
}

impl BundleError {
    /// Whether retrying can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Request(_))
    }
}

/// The rendered bundle of one environment at one revision: what the validator stores, the
/// applier applies, and the drift-watcher and remediator hold as the desired state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bundle {
    pub environment: String,
    pub revision: String,
    /// The objects, in the order they were loaded (path order, then document order).
    pub objects: Vec<Value>,
    /// The apps (`configs/<env>/<app>/`) and their dependencies, when any app declares one:
    /// the applier applies an app only once the apps it needs are healthy. Absent otherwise,
    /// so bundles without dependencies keep their bytes and digest.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub apps: std::collections::BTreeMap<String, BundleApp>,
}

/// One app of a bundle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleApp {
    /// The apps it needs healthy first.
    #[serde(default)]
    pub needs: Vec<String>,
    /// Its objects, by index into `objects`.
    #[serde(default)]
    pub objects: Vec<u32>,
}

impl Bundle {
    /// The stage of each object: 0 for objects of no app and of apps that need nothing, else
    /// one more than the deepest stage of the apps it needs. Stages are applied in order, each
    /// once the one before is healthy. (Validation refuses cycles; one here is broken by
    /// depth.)
    pub fn stages(&self) -> Vec<u32> {
        fn depth(
            app: &str,
            apps: &std::collections::BTreeMap<String, BundleApp>,
            seen: &mut Vec<String>,
        ) -> u32 {
            if seen.iter().any(|s| s == app) || seen.len() > apps.len() {
                return 0;
            }
            seen.push(app.to_string());
            let d = apps
                .get(app)
                .into_iter()
                .flat_map(|a| &a.needs)
                .map(|n| depth(n, apps, seen) + 1)
                .max()
                .unwrap_or(0);
            seen.pop();
            d
        }
        let mut stages = vec![0; self.objects.len()];
        for (name, app) in &self.apps {
            let stage = depth(name, &self.apps, &mut Vec::new());
            for &i in &app.objects {
                if let Some(s) = stages.get_mut(i as usize) {
                    *s = stage;
                }
            }
        }
        stages
    }
    /// Canonical bytes: serde_json writes object keys in sorted order (no `preserve_order`), so
    /// the same manifests always give the same bytes and the same digest.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Creates the bucket if it does not exist (file storage, no expiry: bundles are referenced by
/// events forever).
pub async fn ensure(js: &jetstream::Context, replicas: usize) -> Result<(), BundleError> {
    if js.get_object_store(BUCKET).await.is_ok() {
        return Ok(());
    }
    js.create_object_store(object_store::Config {
        bucket: BUCKET.into(),
        description: Some("ConfigSync rendered bundles, by SHA-256".into()),
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas.max(1),
        ..Default::default()
    })
    .await
    .map(|_| ())
    .map_err(|e| BundleError::Unavailable(e.to_string()))
}

/// The bundle store.
#[derive(Clone)]
pub struct BundleStore {
    store: object_store::ObjectStore,
}

impl BundleStore {
    /// Opens the bucket (it must exist: see [`ensure`]).
    pub async fn open(js: &jetstream::Context) -> Result<Self, BundleError> {
        let store = js
            .get_object_store(BUCKET)
            .await
            .map_err(|e| BundleError::Unavailable(e.to_string()))?;
        Ok(Self { store })
    }

    /// Stores `bytes` under their digest and returns it; storing the same bytes again is a
    /// no-op, so retries are harmless.
    pub async fn put(&self, bytes: &[u8]) -> Result<String, BundleError> {
        let digest = digest_of(bytes);
        let name = object_name(&digest)?;
        if self.store.info(&name).await.is_ok() {
            return Ok(digest);
        }
        let mut reader = bytes;
        self.store
            .put(name.as_str(), &mut reader)
            .await
            .map_err(|e| BundleError::Request(e.to_string()))?;
        Ok(digest)
    }

    /// Reads the bundle with `digest` and verifies it.
    pub async fn get(&self, digest: &str) -> Result<Vec<u8>, BundleError> {
        let name = object_name(digest)?;
        let mut object = match self.store.get(&name).await {
            Ok(o) => o,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => {
                return Err(BundleError::NotFound(digest.into()));
            }
            Err(e) => return Err(BundleError::Request(e.to_string())),
        };
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| BundleError::Request(e.to_string()))?;
        let actual = digest_of(&bytes);
        if actual != digest {
            return Err(BundleError::Corrupt {
                digest: digest.into(),
                actual,
            });
        }
        Ok(bytes)
    }
}

impl BundleStore {
    /// Reads, verifies and decodes the bundle with `digest`.
    pub async fn get_bundle(&self, digest: &str) -> Result<Bundle, BundleError> {
        let bytes = self.get(digest).await?;
        serde_json::from_slice(&bytes).map_err(|e| BundleError::Unreadable {
            digest: digest.into(),
            reason: e.to_string(),
        })
    }
}

/// The object name of a digest: its hex part (validated, so a hostile digest in an event
/// cannot name anything else).
fn object_name(digest: &str) -> Result<String, BundleError> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| BundleError::BadDigest(digest.into()))?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(BundleError::BadDigest(digest.into()));
    }
    Ok(hex.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_content_gives_equal_bytes_whatever_the_key_order() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":1}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":1,"y":2},"b":1}"#).unwrap();
        let bundle = |o| Bundle {
            apps: Default::default(),
            environment: "dev".into(),
            revision: "r".into(),
            objects: vec![o],
        };
        assert_eq!(bundle(a).to_bytes(), bundle(b).to_bytes());
    }

    #[test]
    fn digests_are_validated_before_use() {
        let d = digest_of(b"x");
        assert_eq!(object_name(&d).unwrap().len(), 64);
        for bad in [
            "",
            "sha256:",
            "md5:abc",
            "sha256:../../etc",
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            assert!(object_name(bad).is_err(), "{bad}");
        }
    }
}
