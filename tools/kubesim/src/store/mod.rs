//! The object store: objects as JSON under one lock, one global resourceVersion counter,
//! a bounded event history for watch resumption, and a broadcast of every change.

mod kinds;
mod write;

pub use write::{PatchKind, WriteOptions};

use crate::registry::{self, Resource};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{broadcast, mpsc};

/// Namespaces that exist from the start, as in a fresh cluster.
pub const INITIAL_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change of one object, as watches see it.
#[derive(Debug)]
pub struct Event {
    pub kind: EventType,
    pub storage_key: String,
    pub namespace: String,
    pub rv: u64,
    pub object: Arc<Value>,
    /// The object before the change, so selector watches can turn leaving into DELETED.
    pub old: Option<Arc<Value>>,
}

/// A workload whose status the rollout simulation should converge.
#[derive(Debug, Clone)]
pub struct WorkloadRef {
    pub resource: Resource,
    pub namespace: String,
    pub name: String,
    pub generation: i64,
}

type Objects = BTreeMap<(String, String), Arc<Value>>;

struct Inner {
    rv: u64,
    objects: HashMap<String, Objects>,
    history: VecDeque<Arc<Event>>,
    /// Events at or below this resourceVersion have left the history.
    compacted: u64,
    history_cap: usize,
    resources: Vec<Resource>,
}

pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<Event>>,
    rollouts: Option<mpsc::UnboundedSender<WorkloadRef>>,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WatchStart {
    /// No resourceVersion (or "0"): the current objects as ADDED, then changes.
    Now,
    /// Changes after this resourceVersion.
    After(u64),
}

/// What a new watch gets: the events to send first, then the live feed.
pub struct Subscription {
    pub backlog: Vec<Arc<Event>>,
    pub feed: broadcast::Receiver<Arc<Event>>,
    pub rv: u64,
}

/// One page of a list.
pub struct Page {
    pub items: Vec<Arc<Value>>,
    pub rv: u64,
    pub continue_token: Option<String>,
    /// Items after this page; unknown (as on the API server) when a selector filtered.
    pub remaining: Option<usize>,
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn object_name(o: &Value) -> &str {
    o.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn object_rv(o: &Value) -> u64 {
    o.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

impl Store {
    pub fn new(history_cap: usize, rollouts: Option<mpsc::UnboundedSender<WorkloadRef>>) -> Self {
        let (events, _) = broadcast::channel(16_384);
        let store = Store {
            inner: Mutex::new(Inner {
                rv: 0,
                objects: HashMap::new(),
                history: VecDeque::new(),
                compacted: 0,
                history_cap: history_cap.max(1),
                resources: registry::builtins(),
            }),
            events,
            rollouts,
        };
        {
            let mut inner = store.lock();
            for ns in INITIAL_NAMESPACES {
                let Some(res) = inner
                    .resources
                    .iter()
                    .find(|r| r.kind == "Namespace")
                    .cloned()
                else {
                    continue;
                };
                let body =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                let opts = WriteOptions {
                    manager: "kube-apiserver".into(),
                    ..Default::default()
                };
                if let Err(e) = store.create_locked(&mut inner, &res, "", body, &opts, false) {
                    tracing::error!(namespace = ns, error = %e, "cannot create initial namespace");
                }
            }
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-written object: writes build the
        // new value first and insert it last, so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The resource served at group/version/plural, if any.
    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Resource> {
        self.lock()
            .resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
            .cloned()
    }

    pub fn resources(&self) -> Vec<Resource> {
        self.lock().resources.clone()
    }

    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    pub fn object_count(&self) -> usize {
        self.lock().objects.values().map(BTreeMap::len).sum()
    }

    pub fn get(&self, res: &Resource, ns: &str, name: &str) -> Result<Value, ApiError> {
        let inner = self.lock();
        let ns = if res.namespaced { ns } else { "" };
        inner
            .objects
            .get(&res.storage_key())
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .map(|o| present(res, o))
            .ok_or_else(|| ApiError::not_found(&res.group, &res.plural, name))
    }

    /// Lists objects, in (namespace, name) order, after the continue token if any.
    pub fn list(
        &self,
        res: &Resource,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> Result<Page, ApiError> {
        use std::ops::Bound;
        let after = continue_token.map(decode_continue).transpose()?;
        let inner = self.lock();
        let mut items = Vec::new();
        let mut remaining = 0;
        let mut next = None;
        // As the API server: with a selector the number of remaining items is unknown (the
        // server stops at the first item past the page), without one it is counted.
        let selective = !labels.is_empty() || !fields.is_empty();
        if let Some(objects) = inner.objects.get(&res.storage_key()) {
            let from = match &after {
                Some(a) => Bound::Excluded(a.clone()),
                None => Bound::Unbounded,
            };
            let iter = objects
                .range((from, Bound::Unbounded))
                .filter(|((ons, _), _)| ns.is_none_or(|n| n == ons));
            for (key, o) in iter {
                if !matches(o, labels, fields) {
                    continue;
                }
                if limit.is_some_and(|l| l > 0 && items.len() >= l) {
                    remaining += 1;
                    if selective {
                        break;
                    }
                    continue;
                }
                next = Some(key.clone());
                items.push(present_shared(res, o));
            }
        }
        let continue_token = if remaining > 0 {
            next.map(|k| encode_continue(&k))
        } else {
            None
        };
        let remaining = (!selective).then_some(remaining);
        Ok(Page {
            items,
            rv: inner.rv,
            continue_token,
            remaining,
        })
    }

    /// Starts a watch: the backlog and the live feed are taken under one lock, so no
    /// change falls between them.
    pub fn subscribe(&self, res: &Resource, start: WatchStart) -> Result<Subscription, ApiError> {
        let inner = self.lock();
        let key = res.storage_key();
        let feed = self.events.subscribe();
        let backlog = match start {
            WatchStart::Now => inner
                .objects
                .get(&key)
                .map(|m| {
                    m.iter()
                        .map(|((ns, _), o)| {
                            Arc::new(Event {
                                kind: EventType::Added,
                                storage_key: key.clone(),
                                namespace: ns.clone(),
                                rv: object_rv(o),
                                object: o.clone(),
                                old: None,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            WatchStart::After(rv) => {
                if rv < inner.compacted {
                    return Err(ApiError::gone(format!(
                        "too old resource version: {rv} ({})",
                        inner.compacted + 1
                    )));
                }
                inner
                    .history
                    .iter()
                    .filter(|e| e.rv > rv && e.storage_key == key)
                    .cloned()
                    .collect()
            }
        };
        Ok(Subscription {
            backlog,
            feed,
            rv: inner.rv,
        })
    }

    fn emit(&self, inner: &mut Inner, event: Event) {
        let event = Arc::new(event);
        inner.history.push_back(event.clone());
        while inner.history.len() > inner.history_cap {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(event);
    }
}

/// The object as served at the resource's version.
pub fn present(res: &Resource, o: &Value) -> Value {
    let mut v = o.clone();
    if res.custom
        && let Some(m) = v.as_object_mut()
    {
        m.insert("apiVersion".into(), json!(res.api_version()));
    }
    v
}

/// Like [`present`], sharing the stored object when it needs no rewriting.
pub fn present_shared(res: &Resource, o: &Arc<Value>) -> Arc<Value> {
    let api_version = o.get("apiVersion").and_then(Value::as_str);
    if !res.custom || api_version == Some(res.api_version().as_str()) {
        o.clone()
    } else {
        Arc::new(present(res, o))
    }
}

pub fn matches(o: &Value, labels: &LabelSelector, fields: &FieldSelector) -> bool {
    labels.matches(o.pointer("/metadata/labels").and_then(Value::as_object)) && fields.matches(o)
}

fn encode_continue(key: &(String, String)) -> String {
    let raw = serde_json::to_vec(&[&key.0, &key.1]).unwrap_or_default();
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect();
    let parts: [String; 2] =
        serde_json::from_slice(&bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    let [ns, name] = parts;
    Ok((ns, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_token_round_trips() {
        let k = ("ns".to_string(), "a.b".to_string());
        assert_eq!(decode_continue(&encode_continue(&k)).expect("decodes"), k);
        assert!(decode_continue("zz").is_err());
        assert!(decode_continue("abc").is_err());
    }
}
