//! Where a JSON path lies in a YAML (or JSON) document, so a schema or policy finding points at
//! the offending line in GitHub annotations and SARIF rather than at the document's start.
//! Used only for findings (valid input never pays for it): the document is parsed again with
//! yaml-rust2's event parser, which keeps positions, following the path's keys and indices.

use yaml_rust2::parser::{Event, Parser};

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

/// A container being walked: where the walk is inside it.
enum Frame {
    Map {
        key: Option<String>,
        at_key: bool,
    },
    Seq {
        index: usize,
    },
    /// A mapping or sequence used as a key (legal YAML, never in Kubernetes objects).
    ComplexKey,
}

/// The 1-based (line, column) of `path` in the first document of `text`: the key of the last
/// step when it exists, else the deepest existing part of the path (a missing required field
/// points at the object that lacks it). `None` when not even the first step exists.
pub fn locate(text: &str, path: &str) -> Option<(u32, u32)> {
    let target = steps(path)?;
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut best: Option<(usize, (u32, u32))> = None;
    let mut seen_document = false;
    loop {
        let (event, mark) = parser.next_token().ok()?;
        let at = (mark.line() as u32, mark.col() as u32 + 1);
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart if seen_document => break,
            Event::DocumentStart => seen_document = true,
            Event::DocumentEnd => break,
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map {
                    key,
                    at_key: at_key @ true,
                }) = stack.last_mut()
                {
                    *key = Some(value);
                    *at_key = false;
                    if let Some(depth) = matched_depth(&stack, &target) {
                        if depth == target.len() {
                            return Some(at);
                        }
                        if best.is_none_or(|(d, _)| depth > d) {
                            best = Some((depth, at));
                        }
                    }
                } else {
                    node_done(&mut stack);
                }
            }
            Event::Alias(_) => node_done(&mut stack),
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_key = matches!(stack.last(), Some(Frame::Map { at_key: true, .. }))
                    || matches!(stack.last(), Some(Frame::ComplexKey));
                if is_key {
                    stack.push(Frame::ComplexKey);
                } else {
                    // An item of a sequence is reached by its index: record where it starts.
                    if let Some(Frame::Seq { .. }) = stack.last()
                        && let Some(depth) = matched_depth(&stack, &target)
                    {
                        if depth == target.len() {
                            return Some(at);
                        }
                        if best.is_none_or(|(d, _)| depth > d) {
                            best = Some((depth, at));
                        }
                    }
                    stack.push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Map {
                            key: None,
                            at_key: true,
                        }
                    } else {
                        Frame::Seq { index: 0 }
                    });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some(Frame::ComplexKey) = stack.pop() {
                    if let Some(Frame::Map { key, at_key }) = stack.last_mut() {
                        *key = None;
                        *at_key = false;
                    }
                } else {
                    node_done(&mut stack);
                }
            }
            Event::StreamStart | Event::Nothing => {}
        }
    }
    best.filter(|(depth, _)| *depth > 0).map(|(_, at)| at)
}

/// A value just ended inside the top frame: the map waits for its next key, the sequence
/// moves to its next index.
fn node_done(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Map { at_key, .. }) => *at_key = true,
        Some(Frame::Seq { index }) => *index += 1,
        _ => {}
    }
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
