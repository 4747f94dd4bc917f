//! Where a JSON path lies in a YAML (or JSON) document, so a schema or policy finding points at
//! the offending line in GitHub annotations and SARIF rather than at the document's start.
//! Used only for findings (valid input never pays for it): the document is parsed again with
//! yaml-rust2's event parser, which keeps positions, following the path's keys and indices.

use std::ops::ControlFlow;

use crate::yaml_events::{Frame, Visit, walk};

/// One step of a finding's path: `.key`, `["key"]` or `[3]`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Parses `.spec.containers[0]["app.kubernetes.io/name"]`; `None` when it is not a path.
fn steps(path: &str) -> Option<Vec<Step>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(tail) = rest.strip_prefix('.') {
            let end = tail.find(['.', '[']).unwrap_or(tail.len());
            out.push(Step::Key(tail[..end].to_string()));
            rest = &tail[end..];
        } else if let Some(tail) = rest.strip_prefix('[').filter(|t| t.starts_with('"')) {
            // A JSON string: find its closing quote past escapes, then unescape it.
            let mut escaped = false;
            let end = tail
                .char_indices()
                .skip(1)
                .find(|&(_, c)| {
                    let closes = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    closes
                })
                .map(|(i, _)| i)?;
            out.push(Step::Key(serde_json::from_str(&tail[..=end]).ok()?));
            rest = tail[end + 1..].strip_prefix(']')?;
        } else if let Some(tail) = rest.strip_prefix('[') {
            let end = tail.find(']')?;
            out.push(Step::Index(tail[..end].parse().ok()?));
            rest = &tail[end + 1..];
        } else {
            return None;
        }
    }
    Some(out)
}

/// The 1-based (line, column) of `path` in the first document of `text`: the key of the last
/// step when it exists, else the deepest existing part of the path (a missing required field
/// points at the object that lacks it). `None` when not even the first step exists.
pub fn locate(text: &str, path: &str) -> Option<(u32, u32)> {
    let target = steps(path)?;
    let mut best: Option<(usize, (u32, u32))> = None;
    let mut exact = None;
    walk(text, |stack, visit, at| {
        // Keys, and sequence items (reached by index), are where a path step starts.
        let on_path = match visit {
            Visit::Key => true,
            Visit::Container => matches!(stack.last(), Some(Frame::Seq { .. })),
            Visit::Scalar { .. } => false,
        };
        if let Some(depth) = on_path.then(|| matched_depth(stack, &target)).flatten() {
            if depth == target.len() {
                exact = Some(at);
                return ControlFlow::Break(());
            }
            if best.is_none_or(|(d, _)| depth > d) {
                best = Some((depth, at));
            }
        }
        ControlFlow::Continue(())
    });
    exact.or(best.filter(|(depth, _)| *depth > 0).map(|(_, at)| at))
}

/// How many steps of `target` the walk's current position matches, when it is on the path
/// (the position is a prefix of the target); `None` when it has left it.
fn matched_depth(stack: &[Frame], target: &[Step]) -> Option<usize> {
    let mut depth = 0;
    for frame in stack {
        let step = match frame {
            Frame::Map { key: Some(k), .. } => Step::Key(k.clone()),
            Frame::Seq { index } => Step::Index(*index),
            Frame::Map { key: None, .. } | Frame::ComplexKey => return None,
        };
        if target.get(depth) != Some(&step) {
            return None;
        }
        depth += 1;
    }
    Some(depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app.kubernetes.io/name: web
spec:
  replicaz: 3
  template:
    spec:
      containers:
        - name: a
          image: a:1
        - name: b
          image: b:latest
          ports: [{containerPort: 80}, {containerPort: 81, protocol: TCPX}]
";

    #[test]
    fn keys_indices_and_quoted_keys_are_found() {
        assert_eq!(locate(DEPLOYMENT, ".spec.replicaz"), Some((8, 3)));
        assert_eq!(
            locate(DEPLOYMENT, ".spec.template.spec.containers[1].image"),
            Some((15, 11))
        );
        // An item's position is where the parser starts its mapping: the line is what counts.
        assert_eq!(
            locate(DEPLOYMENT, ".spec.template.spec.containers[1]").map(|(l, _)| l),
            Some(14)
        );
        assert_eq!(
            locate(
                DEPLOYMENT,
                ".spec.template.spec.containers[1].ports[1].protocol"
            ),
            Some((16, 60))
        );
        assert_eq!(
            locate(DEPLOYMENT, r#".metadata.labels["app.kubernetes.io/name"]"#),
            Some((6, 5))
        );
        let quoted = "metadata:\n  annotations:\n    \"say \\\"hi\\\"\": x\n";
        assert_eq!(
            locate(quoted, r#".metadata.annotations["say \"hi\""]"#),
            Some((3, 5))
        );
    }

    #[test]
    fn a_missing_field_points_at_the_deepest_part_that_exists() {
        assert_eq!(
            locate(
                DEPLOYMENT,
                ".spec.template.spec.containers[0].resources.limits"
            )
            .map(|(l, _)| l),
            Some(12),
            "the container that lacks it"
        );
        assert_eq!(locate(DEPLOYMENT, ".status.replicas"), None);
        assert_eq!(locate(DEPLOYMENT, "not a path"), None);
    }

    #[test]
    fn only_the_first_document_and_json_work_too() {
        let two = "a: 1\n---\nb: 2\n";
        assert_eq!(locate(two, ".b"), None);
        let json = "{\n  \"spec\": {\"replicas\": \"three\"}\n}\n";
        assert_eq!(locate(json, ".spec.replicas"), Some((2, 12)));
    }
}
