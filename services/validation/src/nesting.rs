//! The nesting limit of YAML, checked in one linear pass before any YAML parser runs.
//!
//! serde_yaml only applies its depth limit (128) while deserializing, after libyaml has
//! scanned the whole document, and libyaml's scanner walks its stack of possible simple keys
//! (one per open flow collection) for every token: 200,000 nested `[` cost minutes of CPU
//! before the limit could say no (yaml-rust2's scanner does the same, and worse). This pass
//! follows libyaml's tokenizer (`unsafe-libyaml`'s `scanner.rs`) as far as it decides the
//! nesting — flow indicators, quoted and plain scalars, comments, block scalars and the
//! block indentation stack — without building anything, and stops at the first collection
//! past the limit.
//!
//! Where it cannot follow libyaml exactly (input libyaml refuses with an error), it errs
//! towards counting more: a document it refuses is always nested past the limit or not
//! YAML at all, and a document it accepts never has libyaml's flow stack deeper than the
//! limit, which keeps the parsers' cost linear.

/// The deepest nesting of collections accepted: serde_yaml's and serde_json's own limit.
pub const MAX_DEPTH: usize = 128;

/// Where a document first nests deeper than the limit: 1-based line and column (in
/// characters) of the collection one level too deep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("recursion limit exceeded: collections nested more than {limit} levels deep")]
pub struct TooDeep {
    pub line: u32,
    pub column: u32,
    pub limit: usize,
}

/// Checks that no collection of `text` (one YAML document or a stream) is nested more than
/// `limit` levels deep, in time linear in its length.
pub fn check(text: &str, limit: usize) -> Result<(), TooDeep> {
    Scanner::new(text.as_bytes(), limit).run()
}

/// A possible simple key of the block context (a mapping key not yet followed by `:`).
#[derive(Clone, Copy)]
struct Key {
    line: usize,
    index: usize,
    column: usize,
}

struct Scanner<'t> {
    text: &'t [u8],
    limit: usize,
    /// Byte offset, 0-based line, and column in characters (as libyaml counts them).
    pos: usize,
    line: usize,
    column: usize,
    /// Open flow collections.
    flow: usize,
    /// The columns of the open block collections (libyaml's `indents` and `indent`).
    indents: Vec<usize>,
    simple_key_allowed: bool,
    key: Option<Key>,
}

impl<'t> Scanner<'t> {
    fn new(text: &'t [u8], limit: usize) -> Self {
        Self {
            text,
            limit,
            pos: 0,
            line: 0,
            column: 0,
            flow: 0,
            indents: Vec::new(),
            simple_key_allowed: true,
            key: None,
        }
    }

    fn at(&self, offset: usize) -> Option<u8> {
        self.text.get(self.pos + offset).copied()
    }

    fn is(&self, offset: usize, byte: u8) -> bool {
        self.at(offset) == Some(byte)
    }

    /// The length of the line break at `pos + offset` (`\r\n`, `\r`, `\n`, NEL, LS, PS), if
    /// any: libyaml ends lines, and so comments, at each of them.
    fn break_len(&self, offset: usize) -> Option<usize> {
        let rest = self.text.get(self.pos + offset..)?;
        match rest {
            [b'\r', b'\n', ..] => Some(2),
            [b'\r' | b'\n', ..] => Some(1),
            [0xC2, 0x85, ..] => Some(2),
            [0xE2, 0x80, 0xA8 | 0xA9, ..] => Some(3),
            _ => None,
        }
    }

    fn is_break(&self, offset: usize) -> bool {
        self.break_len(offset).is_some()
    }

    fn is_blank(&self, offset: usize) -> bool {
        matches!(self.at(offset), Some(b' ' | b'\t'))
    }

    /// Blank, line break or end of input.
    fn is_blankz(&self, offset: usize) -> bool {
        self.at(offset).is_none() || self.is_blank(offset) || self.is_break(offset)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    /// Moves past one character (not a line break).
    fn skip(&mut self) {
        let Some(b) = self.at(0) else { return };
        let width = match b {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xFF => 4,
            // A continuation byte cannot start a character of valid UTF-8 (the text is a &str).
            _ => 1,
        };
        self.pos = (self.pos + width).min(self.text.len());
        self.column += 1;
    }

    /// Moves past one line break.
    fn skip_line(&mut self) {
        if let Some(len) = self.break_len(0) {
            self.pos += len;
            self.line += 1;
            self.column = 0;
        }
    }

    fn skip_to_line_end(&mut self) {
        while !self.at_end() && !self.is_break(0) {
            self.skip();
        }
    }

    fn indent(&self) -> isize {
        self.indents.last().map_or(-1, |&c| c as isize)
    }

    fn depth(&self) -> usize {
        self.indents.len() + self.flow
    }

    fn too_deep(&self) -> Result<(), TooDeep> {
        if self.depth() > self.limit {
            return Err(TooDeep {
                line: u32::try_from(self.line + 1).unwrap_or(u32::MAX),
                column: u32::try_from(self.column + 1).unwrap_or(u32::MAX),
                limit: self.limit,
            });
        }
        Ok(())
    }

    /// A block collection starts at `column` unless one is already open there or deeper.
    fn roll_indent(&mut self, column: usize) -> Result<(), TooDeep> {
        if self.flow == 0 && self.indent() < column as isize {
            self.indents.push(column);
            self.too_deep()?;
        }
        Ok(())
    }

    /// A token that may be a block mapping's key (keys inside flow collections never start
    /// a block collection, so only the block context's one is kept).
    fn save_key(&mut self) {
        if self.flow == 0 && self.simple_key_allowed {
            self.key = Some(Key {
                line: self.line,
                index: self.pos,
                column: self.column,
            });
        }
    }

    fn run(mut self) -> Result<(), TooDeep> {
        loop {
            self.skip_to_next_token();
            let start = self.pos;
            // A possible key ends with its line, or after 1,024 characters.
            if self
                .key
                .is_some_and(|k| k.line < self.line || k.index + 1024 < self.pos)
            {
                self.key = None;
            }
            if self.flow == 0 {
                while self.indent() > self.column as isize {
                    self.indents.pop();
                }
            }
            let Some(c) = self.at(0) else {
                return Ok(());
            };
            let document_marker = self.column == 0
                && (self.text[self.pos..].starts_with(b"---")
                    || self.text[self.pos..].starts_with(b"..."))
                && self.is_blankz(3);
            match c {
                _ if document_marker => {
                    self.indents.clear();
                    self.key = None;
                    self.simple_key_allowed = false;
                    for _ in 0..3 {
                        self.skip();
                    }
                }
                b'%' if self.column == 0 => self.skip_to_line_end(),
                b'[' | b'{' => {
                    self.save_key();
                    self.flow += 1;
                    self.too_deep()?;
                    self.simple_key_allowed = true;
                    self.skip();
                }
                b']' | b'}' => {
                    self.flow = self.flow.saturating_sub(1);
                    self.simple_key_allowed = false;
                    self.skip();
                }
                b',' => {
                    self.simple_key_allowed = true;
                    self.skip();
                }
                b'-' if self.is_blankz(1) => {
                    if self.flow == 0 {
                        self.roll_indent(self.column)?;
                        self.key = None;
                    }
                    self.simple_key_allowed = true;
                    self.skip();
                }
                b'?' if self.flow > 0 || self.is_blankz(1) => {
                    if self.flow == 0 {
                        self.roll_indent(self.column)?;
                        self.key = None;
                    }
                    self.simple_key_allowed = self.flow == 0;
                    self.skip();
                }
                b':' if self.flow > 0 || self.is_blankz(1) => {
                    if self.flow == 0 {
                        match self.key.take() {
                            Some(key) => {
                                self.roll_indent(key.column)?;
                                self.simple_key_allowed = false;
                            }
                            None => {
                                self.roll_indent(self.column)?;
                                self.simple_key_allowed = true;
                            }
                        }
                    } else {
                        self.simple_key_allowed = false;
                    }
                    self.skip();
                }
                b'*' | b'&' => {
                    self.save_key();
                    self.simple_key_allowed = false;
                    self.skip();
                    while self
                        .at(0)
                        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                    {
                        self.skip();
                    }
                }
                b'!' => {
                    self.save_key();
                    self.simple_key_allowed = false;
                    self.tag();
                }
                b'|' | b'>' if self.flow == 0 => {
                    self.key = None;
                    self.simple_key_allowed = true;
                    self.block_scalar();
                }
                b'\'' | b'"' => {
                    self.save_key();
                    self.simple_key_allowed = false;
                    self.quoted(c);
                }
                _ => {
                    // A plain scalar, or a character libyaml refuses (`@`, a tab): either
                    // way it cannot open a collection.
                    self.save_key();
                    self.simple_key_allowed = false;
                    self.plain();
                }
            }
            if self.pos == start && !self.at_end() {
                // Every token moves on; this keeps a case missed above from looping.
                self.skip();
            }
        }
    }

    /// Blanks, comments and line breaks before a token (libyaml's `scan_to_next_token`).
    fn skip_to_next_token(&mut self) {
        loop {
            if self.column == 0 && self.text[self.pos..].starts_with("\u{FEFF}".as_bytes()) {
                self.skip();
            }
            while self.is(0, b' ')
                || ((self.flow > 0 || !self.simple_key_allowed) && self.is(0, b'\t'))
            {
                self.skip();
            }
            if self.is(0, b'#') {
                self.skip_to_line_end();
            }
            if !self.is_break(0) {
                // libyaml refuses a tab here (it cannot start a token); skipping it counts
                // no fewer collections than it would.
                if self.is(0, b'\t') {
                    self.skip();
                    continue;
                }
                return;
            }
            self.skip_line();
            if self.flow == 0 {
                self.simple_key_allowed = true;
            }
        }
    }

    /// `!tag`, `!!tag`, `!<verbatim>`: up to the first character a tag cannot hold.
    fn tag(&mut self) {
        self.skip();
        if self.is(0, b'<') {
            while !self.at_end() && !self.is(0, b'>') && !self.is_blankz(0) {
                self.skip();
            }
            if self.is(0, b'>') {
                self.skip();
            }
            return;
        }
        while self
            .at(0)
            .is_some_and(|b| b.is_ascii_alphanumeric() || b"-;/?:@&=+$_.!~*'()%".contains(&b))
        {
            self.skip();
        }
    }

    /// A single- or double-quoted scalar, over any number of lines.
    fn quoted(&mut self, quote: u8) {
        self.skip();
        loop {
            match self.at(0) {
                None => return,
                Some(b'\'') if quote == b'\'' && self.is(1, b'\'') => {
                    self.skip();
                    self.skip();
                }
                Some(b'\\') if quote == b'"' => {
                    self.skip();
                    if self.is_break(0) {
                        self.skip_line();
                    } else {
                        self.skip();
                    }
                }
                Some(b) if b == quote => {
                    self.skip();
                    return;
                }
                Some(_) if self.is_break(0) => self.skip_line(),
                Some(_) => self.skip(),
            }
        }
    }

    /// A plain scalar (libyaml's `scan_plain_scalar`): in a flow collection it ends at a flow
    /// indicator; in the block context it ends at `: `, a comment, or a line indented no
    /// deeper than the collection it belongs to.
    fn plain(&mut self) {
        let min_column = self.indent() + 1;
        let mut leading_blanks = false;
        loop {
            let document_marker = self.column == 0
                && (self.text[self.pos..].starts_with(b"---")
                    || self.text[self.pos..].starts_with(b"..."))
                && self.is_blankz(3);
            if document_marker || self.is(0, b'#') {
                break;
            }
            while !self.is_blankz(0) {
                let c = self.at(0);
                if c == Some(b':') && self.is_blankz(1) {
                    break;
                }
                if self.flow > 0 {
                    if c == Some(b':')
                        && matches!(self.at(1), Some(b',' | b'?' | b'[' | b']' | b'{' | b'}'))
                    {
                        // libyaml refuses `:` before a flow indicator inside a plain scalar.
                        break;
                    }
                    if matches!(c, Some(b',' | b'[' | b']' | b'{' | b'}')) {
                        break;
                    }
                }
                leading_blanks = false;
                self.skip();
            }
            if !(self.is_blank(0) || self.is_break(0)) {
                break;
            }
            while self.is_blank(0) || self.is_break(0) {
                if self.is_break(0) {
                    self.skip_line();
                    leading_blanks = true;
                } else {
                    self.skip();
                }
            }
            if self.flow == 0 && (self.column as isize) < min_column {
                break;
            }
        }
        if leading_blanks {
            self.simple_key_allowed = true;
        }
    }

    /// A literal (`|`) or folded (`>`) block scalar: its header, then every line indented at
    /// least as deep as its content (blank lines included).
    fn block_scalar(&mut self) {
        self.skip();
        let mut increment = 0usize;
        for _ in 0..2 {
            match self.at(0) {
                Some(b'+' | b'-') => self.skip(),
                Some(d @ b'1'..=b'9') => {
                    increment = usize::from(d - b'0');
                    self.skip();
                }
                _ => break,
            }
        }
        // A comment, then the line break (libyaml refuses anything else; the rest of the
        // line is skipped as if it were a comment).
        self.skip_to_line_end();
        self.skip_line();
        let parent = self.indent();
        let mut indent = if increment > 0 {
            (parent.max(0) as usize) + increment
        } else {
            0
        };
        // Leading blank lines, and the first content line's indentation when it is not
        // given (libyaml's `scan_block_scalar_breaks`).
        let mut max_indent = 0;
        loop {
            while (indent == 0 || self.column < indent) && self.is(0, b' ') {
                self.skip();
            }
            max_indent = max_indent.max(self.column);
            if !self.is_break(0) {
                break;
            }
            self.skip_line();
        }
        if indent == 0 {
            indent = max_indent.max((parent + 1) as usize).max(1);
        }
        while self.column == indent && !self.at_end() {
            self.skip_to_line_end();
            self.skip_line();
            loop {
                while self.column < indent && self.is(0, b' ') {
                    self.skip();
                }
                if !self.is_break(0) {
                    break;
                }
                self.skip_line();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str, limit: usize) -> bool {
        check(text, limit).is_ok()
    }

    #[test]
    fn counts_flow_and_block_collections() {
        let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        assert!(depth_ok(&nested(3), 3));
        assert_eq!(
            check(&nested(4), 3),
            Err(TooDeep {
                line: 1,
                column: 4,
                limit: 3
            })
        );
        // A mapping, then flow collections in it.
        assert!(depth_ok(&format!("a: {}\n", nested(2)), 3));
        assert!(!depth_ok(&format!("a: {}\n", nested(3)), 3));
        // Block sequences and mappings, compact or indented.
        assert!(depth_ok("- - - x\n", 3));
        assert_eq!(
            check("- - - - x\n", 3),
            Err(TooDeep {
                line: 1,
                column: 7,
                limit: 3
            })
        );
        assert!(!depth_ok("? ? ? ? x\n", 3));
        assert!(depth_ok("a:\n  b:\n    c: 1\n", 3));
        assert!(!depth_ok("a:\n  b:\n    c:\n      d: 1\n", 3));
        assert!(depth_ok("a:\n  b: 1\nc:\n  d: 1\ne: [1]\n", 2), "siblings");
    }

    #[test]
    fn brackets_that_open_nothing_are_not_counted() {
        let deep = "[".repeat(50);
        for text in [
            format!("a: \"{deep}\"\n"),
            format!("a: '{deep}'\n"),
            format!("a: '{deep}''{deep}'\n"),
            format!("a: \"\\\"{deep}\"\n"),
            format!("a: x{deep}\n"),
            format!("a: x {deep}\n"),
            format!("a: b\n  {deep}\n"),
            format!("a: 1 # {deep}\n"),
            format!("# {deep}\na: 1\n"),
            format!("a: |\n  {deep}\n  {deep}\n\n  x\nb: 1\n"),
            format!("- k: >-\n   {deep}\n  c: 1\n"),
            format!("a: [\"{deep}\", '{deep}']\n"),
            format!("a: [b, # {deep}\n c]\n"),
        ] {
            assert!(depth_ok(&text, 3), "{text}");
        }
    }

    #[test]
    fn closing_brackets_in_scalars_hide_nothing() {
        // Each `]` here is inside a scalar, so the sequences stay open.
        let hidden = |unit: &str| format!("a: {}\n", unit.repeat(10));
        for unit in [
            "[\"]\", ",
            "['x]', ",
            "[{\"k\":\"]}\"}, ",
            "[ # ]\n ",
            "[!t \"]\", ",
            "[&a ']', ",
        ] {
            assert!(!depth_ok(&hidden(unit), 5), "{unit:?}");
        }
        // A block scalar ends where its indentation does: what follows is counted.
        let after = format!("- k: |\n   text\n  n: {}\n", "[".repeat(10));
        assert!(!depth_ok(&after, 5));
        // Every line break libyaml knows ends a comment.
        for br in ["\n", "\r", "\u{85}", "\u{2028}", "\u{2029}"] {
            let text = format!("a: [ # x{br}{}\n", "[".repeat(10));
            assert!(!depth_ok(&text, 5), "{br:?}");
        }
    }

    /// The same verdict as serde_yaml's own limit, just before and after it, in every kind
    /// of collection and with scalars around that hold brackets.
    #[test]
    fn agrees_with_serde_yaml_at_the_limit() {
        use serde::de::DeserializeSeed;
        let shapes: [fn(usize) -> String; 6] = [
            |n| format!("{}1{}\n", "[".repeat(n), "]".repeat(n)),
            |n| format!("a: {}{}\n", "{k: ".repeat(n - 1), "}".repeat(n - 1)),
            |n| format!("{}x\n", "- ".repeat(n)),
            |n| {
                format!(
                    "a: [\"]\", ']]', {}1{}]\n",
                    "[".repeat(n - 2),
                    "]".repeat(n - 2)
                )
            },
            |n| {
                let mut text = String::from("a: |\n  [[[[\nb:\n");
                for i in 1..n - 1 {
                    text.push_str(&format!("{}k: # ]]\n", "  ".repeat(i)));
                }
                text.push_str(&format!("{}k: [1]\n", "  ".repeat(n - 1)));
                text
            },
            |n| {
                format!(
                    "a: !!seq &x [{}'x]'{}]\n",
                    "[".repeat(n - 3),
                    "]".repeat(n - 3)
                )
            },
        ];
        for (i, shape) in shapes.iter().enumerate() {
            for n in [MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1] {
                let text = shape(n);
                // As the loader decodes (serde's IgnoredAny would skip the depth check).
                let serde = crate::decode::StrictValue { strict: true }
                    .deserialize(serde_yaml::Deserializer::from_str(&text));
                let refused_by_serde = serde
                    .as_ref()
                    .is_err_and(|e| e.to_string().contains("recursion limit"));
                assert!(
                    serde.is_ok() || refused_by_serde,
                    "shape {i} at {n} is YAML: {serde:?}"
                );
                assert_eq!(
                    check(&text, MAX_DEPTH).is_err(),
                    refused_by_serde,
                    "shape {i} at depth {n}"
                );
            }
        }
    }

    /// No false alarm on real YAML: every file of this repository and of the shared corpus
    /// (kube-prometheus, microservices-demo), when present, passes.
    #[test]
    fn real_files_pass() {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name();
                if name.to_string_lossy().starts_with('.') || name == "target" {
                    continue;
                }
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                    out.push(path);
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        walk(&root, &mut files);
        walk(&root.join("../shared/corpus"), &mut files);
        assert!(files.len() > 50, "{}", files.len());
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            assert_eq!(check(&text, MAX_DEPTH), Ok(()), "{}", file.display());
        }
    }

    #[test]
    fn is_linear_in_the_input() {
        let text = "[".repeat(1_000_000);
        let start = std::time::Instant::now();
        assert_eq!(
            check(&text, 128),
            Err(TooDeep {
                line: 1,
                column: 129,
                limit: 128
            })
        );
        let quoted = format!("a: \"{}\"\n", "[".repeat(1_000_000));
        assert!(depth_ok(&quoted, 128));
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }
}
