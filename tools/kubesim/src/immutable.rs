//! Fields the API server refuses to change once an object exists, refused here with its
//! 422 and its words (apimachinery's `ValidateImmutableField`, pkg/apis/apps and batch
//! validation, ConfigMap and Secret `immutable`). Checked on every update, patch and
//! server-side apply of the main resource, dry runs included.

use crate::protobuf::base64;
use crate::registry::Resource;
use crate::status::{ApiError, FieldError};
use serde_json::{Map, Value};

const IMMUTABLE: &str = "field is immutable";
const IMMUTABLE_WHEN_SET: &str = "field is immutable when `immutable` is set";
/// `ValidateStatefulSetUpdate`'s words for any other change of a StatefulSet's spec.
const STATEFULSET_FORBIDDEN: &str = "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";
/// The StatefulSet spec fields an update may change.
const STATEFULSET_MUTABLE: [&str; 7] = [
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

/// Refuses an update of `old` to `new` that changes an immutable field.
pub fn check(res: &Resource, old: &Value, new: &Value) -> Result<(), ApiError> {
    let errors = match (res.group.as_str(), res.kind.as_str()) {
        ("apps", "Deployment" | "DaemonSet" | "ReplicaSet") => selector(old, new),
        ("apps", "StatefulSet") => statefulset(old, new),
        ("batch", "Job") => job(old, new),
        ("", "ConfigMap") => frozen(old, new, &["data", "binaryData"]),
        ("", "Secret") => secret(old, new),
        _ => Vec::new(),
    };
    if errors.is_empty() {
        return Ok(());
    }
    let name = old
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Err(ApiError::field_errors(&res.kind, &res.group, name, errors))
}

/// `spec.selector` of Deployments, DaemonSets and ReplicaSets (and Jobs).
fn selector(old: &Value, new: &Value) -> Vec<FieldError> {
    let (was, is) = (old.pointer("/spec/selector"), new.pointer("/spec/selector"));
    if semantic_eq(was, is) {
        return Vec::new();
    }
    vec![FieldError::invalid(
        "spec.selector",
        &go_label_selector(is),
        IMMUTABLE,
    )]
}

/// Anything in a StatefulSet's spec but the fields an update may change.
fn statefulset(old: &Value, new: &Value) -> Vec<FieldError> {
    let fixed = |o: &Value| -> Option<Value> {
        let mut spec = o.get("spec")?.as_object()?.clone();
        spec.retain(|k, _| !STATEFULSET_MUTABLE.contains(&k.as_str()));
        Some(Value::Object(spec))
    };
    if semantic_eq(fixed(old).as_ref(), fixed(new).as_ref()) {
        return Vec::new();
    }
    vec![FieldError::forbidden("spec", STATEFULSET_FORBIDDEN)]
}

/// A Job's selector and pod template.
fn job(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errors = selector(old, new);
    let (was, is) = (old.pointer("/spec/template"), new.pointer("/spec/template"));
    if !semantic_eq(was, is) {
        // The API server prints its internal core.PodTemplateSpec with %#v; JSON says the
        // same to a reader and needs no Go type names.
        let shown = is.map_or_else(|| "\"null\"".to_string(), Value::to_string);
        errors.push(FieldError::invalid("spec.template", &shown, IMMUTABLE));
    }
    errors
}

/// `immutable: true` freezes itself and the given data fields (ConfigMap, Secret).
fn frozen(old: &Value, new: &Value, fields: &[&str]) -> Vec<FieldError> {
    if old.get("immutable") != Some(&Value::Bool(true)) {
        return Vec::new();
    }
    let mut errors = Vec::new();
    if new.get("immutable") != Some(&Value::Bool(true)) {
        errors.push(FieldError::forbidden("immutable", IMMUTABLE_WHEN_SET));
    }
    for field in fields {
        if old.get(*field) != new.get(*field) {
            errors.push(FieldError::forbidden(field, IMMUTABLE_WHEN_SET));
        }
    }
    errors
}

/// A Secret's type never changes; its data is frozen by `immutable: true`. The API server
/// folds stringData into data before validating, so a change there is a change of data.
fn secret(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let secret_type = |o: &Value| {
        o.get("type")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .unwrap_or("Opaque")
            .to_string()
    };
    let is = secret_type(new);
    if secret_type(old) != is {
        errors.push(FieldError::invalid("type", &go_quote(&is), IMMUTABLE));
    }
    let folded = |o: &Value| {
        let mut o = o.clone();
        let data = effective_data(&o);
        if let Some(obj) = o.as_object_mut() {
            obj.remove("stringData");
            match data {
                Some(d) => obj.insert("data".into(), Value::Object(d)),
                None => obj.remove("data"),
            };
        }
        o
    };
    errors.extend(frozen(&folded(old), &folded(new), &["data"]));
    errors
}

/// data with stringData written over it, base64-encoded as the API server stores it.
fn effective_data(o: &Value) -> Option<Map<String, Value>> {
    let mut data = o.get("data").and_then(Value::as_object).cloned();
    if let Some(strings) = o.get("stringData").and_then(Value::as_object) {
        let d = data.get_or_insert_with(Map::new);
        for (k, v) in strings {
            let text = v.as_str().unwrap_or_default();
            d.insert(k.clone(), Value::String(base64(text.as_bytes())));
        }
    }
    data
}

/// Equality as `apiequality.Semantic.DeepEqual` sees it: an empty list or map, a null
/// and an absent field are the same.
fn semantic_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    normalize(a) == normalize(b)
}

fn normalize(v: Option<&Value>) -> Option<Value> {
    match v? {
        Value::Null => None,
        Value::Object(m) => {
            let m: Map<String, Value> = m
                .iter()
                .filter_map(|(k, v)| normalize(Some(v)).map(|v| (k.clone(), v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(a) if a.is_empty() => None,
        Value::Array(a) => Some(Value::Array(
            a.iter()
                .map(|v| normalize(Some(v)).unwrap_or(Value::Null))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

/// A string as Go's `%q` and `%#v` print it.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A string list as Go's `%#v` prints a `[]string`: nil when absent.
fn go_strings(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        None => "[]string(nil)".into(),
        Some(items) => {
            let items: Vec<String> = items
                .iter()
                .map(|i| go_quote(i.as_str().unwrap_or_default()))
                .collect();
            format!("[]string{{{}}}", items.join(", "))
        }
    }
}

/// A label selector as the API server prints the new value in its "field is immutable"
/// error: `%#v` of a `v1.LabelSelector` (map keys sorted, as Go's fmt sorts them), or
/// `"null"` when there is none.
fn go_label_selector(v: Option<&Value>) -> String {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return go_quote("null");
    };
    let labels = match v.get("matchLabels").and_then(Value::as_object) {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let mut pairs: Vec<(&String, &Value)> = m.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            let pairs: Vec<String> = pairs
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{}:{}",
                        go_quote(k),
                        go_quote(v.as_str().unwrap_or_default())
                    )
                })
                .collect();
            format!("map[string]string{{{}}}", pairs.join(", "))
        }
    };
    let expressions = match v.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|e| {
                    let text =
                        |k: &str| go_quote(e.get(k).and_then(Value::as_str).unwrap_or_default());
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        text("key"),
                        text("operator"),
                        go_strings(e.get("values"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{expressions}}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtins;
    use serde_json::json;

    fn res(kind: &str) -> Resource {
        builtins()
            .into_iter()
            .find(|r| r.kind == kind)
            .expect("builtin")
    }

    #[test]
    fn selector_is_printed_as_go_prints_it() {
        assert_eq!(
            go_label_selector(Some(&json!({"matchLabels": {"tier": "a", "app": "web"}}))),
            r#"v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "tier":"a"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"#
        );
        assert_eq!(
            go_label_selector(Some(
                &json!({"matchExpressions": [{"key": "k", "operator": "In", "values": ["x"]}]})
            )),
            r#"v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:"k", Operator:"In", Values:[]string{"x"}}}}"#
        );
        assert_eq!(go_label_selector(None), r#""null""#);
    }

    #[test]
    fn deployment_selector_change_is_refused_in_the_api_servers_words() {
        let old = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}}});
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        check(&res("Deployment"), &old, &new).expect("replicas may change");
        new["spec"]["selector"]["matchLabels"]["app"] = json!("web2");
        let e = check(&res("Deployment"), &old, &new).expect_err("selector is immutable");
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            r#"Deployment.apps "web" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web2"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#
        );
        assert_eq!(
            e.to_status()["details"]["causes"][0]["field"],
            "spec.selector"
        );
    }

    #[test]
    fn empty_and_absent_lists_are_the_same_selector() {
        let old = json!({"spec": {"selector": {"matchLabels": {"app": "web"}}}});
        let new =
            json!({"spec": {"selector": {"matchLabels": {"app": "web"}, "matchExpressions": []}}});
        assert!(selector(&old, &new).is_empty());
    }

    #[test]
    fn statefulset_allows_only_its_mutable_fields() {
        let old = json!({"metadata": {"name": "db"}, "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}}}});
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(2);
        new["spec"]["minReadySeconds"] = json!(5);
        assert!(statefulset(&old, &new).is_empty());
        new["spec"]["serviceName"] = json!("other");
        let e = check(&res("StatefulSet"), &old, &new).expect_err("serviceName is fixed");
        assert_eq!(
            e.message,
            format!(
                r#"StatefulSet.apps "db" is invalid: spec: Forbidden: {STATEFULSET_FORBIDDEN}"#
            )
        );
        assert_eq!(
            e.to_status()["details"]["causes"][0]["reason"],
            "FieldValueForbidden"
        );
    }

    #[test]
    fn job_template_and_selector_are_fixed() {
        let old = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "a"}]}}}});
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("b");
        new["spec"]["selector"] = json!({"matchLabels": {"x": "y"}});
        let e = check(&res("Job"), &old, &new).expect_err("both fixed");
        assert!(
            e.message.starts_with(
                r#"Job.batch "j" is invalid: [spec.selector: Invalid value: v1.LabelSelector{"#
            ),
            "{}",
            e.message
        );
        assert!(e.message.contains(r#"spec.template: Invalid value: {"spec":{"containers":[{"image":"b","name":"c"}]}}: field is immutable]"#), "{}", e.message);
    }

    #[test]
    fn immutable_configmaps_and_secrets_are_frozen() {
        let old = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
        let mut new = old.clone();
        new["metadata"]["labels"] = json!({"x": "y"});
        check(&res("ConfigMap"), &old, &new).expect("metadata may change");
        new["data"]["a"] = json!("2");
        let e = check(&res("ConfigMap"), &old, &new).expect_err("data frozen");
        assert_eq!(
            e.message,
            "ConfigMap \"c\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
        );
        let mutable = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        check(&res("ConfigMap"), &mutable, &new).expect("not immutable before");

        let old = json!({"metadata": {"name": "s"}, "immutable": true, "data": {"a": "MQ=="}});
        let same = json!({"metadata": {"name": "s"}, "immutable": true, "stringData": {"a": "1"}});
        check(&res("Secret"), &old, &same).expect("stringData folds into the same data");
        let changed = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "immutable": true, "stringData": {"a": "2"}});
        let e = check(&res("Secret"), &old, &changed).expect_err("type and data");
        assert_eq!(
            e.message,
            "Secret \"s\" is invalid: [type: Invalid value: \"kubernetes.io/tls\": field is immutable, data: Forbidden: field is immutable when `immutable` is set]"
        );
    }
}
