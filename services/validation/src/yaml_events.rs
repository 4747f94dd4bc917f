//! Walking the first document of a YAML text as yaml-rust2 events while keeping track of
//! where each event lies (the keys and indices above it, and its line and column): what
//! `positions` (finding a field's line) and `yaml11` (finding unquoted scalars) both need,
//! and what serde_yaml does not expose.

use std::ops::ControlFlow;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

/// A container the walk is inside, and where in it.
pub(crate) enum Frame {
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

/// What the walk met.
pub(crate) enum Visit<'e> {
    /// A mapping key; the top frame now holds it.
    Key,
    /// A scalar value at the current position.
    Scalar { text: &'e str, plain: bool },
    /// A mapping or sequence starting as a value at the current position.
    Container,
}

/// Walks the first document of `text`, calling `visit` with the frames above each event,
/// the event, and its 1-based (line, column); stops when `visit` breaks or the text is not
/// YAML any more.
pub(crate) fn walk(
    text: &str,
    mut visit: impl FnMut(&[Frame], Visit<'_>, (u32, u32)) -> ControlFlow<()>,
) {
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut started = false;
    while let Ok((event, mark)) = parser.next_token() {
        let at = (mark.line() as u32, mark.col() as u32 + 1);
        let flow = match event {
            Event::StreamEnd | Event::DocumentEnd => break,
            Event::DocumentStart if started => break,
            Event::DocumentStart => {
                started = true;
                ControlFlow::Continue(())
            }
            Event::Scalar(text, style, ..) => {
                if let Some(Frame::Map {
                    key,
                    at_key: at_key @ true,
                }) = stack.last_mut()
                {
                    *key = Some(text);
                    *at_key = false;
                    visit(&stack, Visit::Key, at)
                } else {
                    let plain = style == TScalarStyle::Plain;
                    let flow = visit(&stack, Visit::Scalar { text: &text, plain }, at);
                    value_done(&mut stack);
                    flow
                }
            }
            Event::Alias(_) => {
                value_done(&mut stack);
                ControlFlow::Continue(())
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_key = matches!(
                    stack.last(),
                    Some(Frame::Map { at_key: true, .. } | Frame::ComplexKey)
                );
                if is_key {
                    stack.push(Frame::ComplexKey);
                    ControlFlow::Continue(())
                } else {
                    let flow = visit(&stack, Visit::Container, at);
                    stack.push(if matches!(event, Event::MappingStart(..)) {
                        Frame::Map {
                            key: None,
                            at_key: true,
                        }
                    } else {
                        Frame::Seq { index: 0 }
                    });
                    flow
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some(Frame::ComplexKey) = stack.pop() {
                    if let Some(Frame::Map { key, at_key }) = stack.last_mut() {
                        *key = None;
                        *at_key = false;
                    }
                } else {
                    value_done(&mut stack);
                }
                ControlFlow::Continue(())
            }
            Event::StreamStart | Event::Nothing => ControlFlow::Continue(()),
        };
        if flow.is_break() {
            break;
        }
    }
}

/// A value just ended inside the top frame: the map waits for its next key, the sequence
/// moves to its next index.
fn value_done(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Map { at_key, .. }) => *at_key = true,
        Some(Frame::Seq { index }) => *index += 1,
        _ => {}
    }
}
