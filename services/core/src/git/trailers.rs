//! Commit trailers (`Signed-off-by: ...`, `Change-Id: ...`) found as `git interpret-trailers
//! --parse` finds them: in the message's last paragraph, bounded in count and size.

use crate::event::Trailer;

/// The most trailers one commit's event carries: a message is the author's to write, and an
/// event must stay far below the stream's message limit whatever it holds.
pub const MAX_TRAILERS: usize = 64;
/// The longest trailer token kept (longer tokens are not trailers at all).
pub const MAX_TOKEN_BYTES: usize = 100;
/// The longest trailer value kept; a longer one is cut at a character boundary.
pub const MAX_VALUE_BYTES: usize = 1024;

/// Tokens that make a paragraph a trailer block even when fewer than all of its lines are
/// trailers: the ones Git itself writes (trailer.c's `git_generated_prefixes`).
const GIT_GENERATED: [&str; 2] = ["Signed-off-by", "(cherry picked from commit "];

/// The trailers of `message`, in order, as Git's interpret-trailers rules find them:
///
/// - only the last paragraph (after the last blank line) can hold trailers, and never the
///   first paragraph (the title);
/// - comment lines (`#`) are ignored; a line starting with whitespace continues the previous
///   trailer's value;
/// - the paragraph is a trailer block when every line is a trailer (or a continuation), or
///   when at least a quarter are and one of them is a Git-generated one (`Signed-off-by`);
/// - a trailer is `Token: value`, the token made of letters, digits and `-`, with optional
///   blanks before the `:`.
pub fn parse_trailers(message: &str) -> Vec<Trailer> {
    let lines: Vec<&str> = message
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.trim_end())
        .collect();
    // Drop trailing blank lines, then find the start of the last paragraph.
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    let lines = &lines[..end];
    let Some(blank) = lines.iter().rposition(|l| l.is_empty()) else {
        // One paragraph: the title, never a trailer block.
        return Vec::new();
    };
    if !lines[..blank].iter().any(|l| !l.is_empty()) {
        return Vec::new();
    }
    let block = &lines[blank + 1..];
    let mut trailers: Vec<(String, String)> = Vec::new();
    let (mut trailer_lines, mut other_lines, mut git_generated) = (0usize, 0usize, false);
    for line in block {
        if line.starts_with([' ', '\t']) {
            match trailers.last_mut() {
                Some((_, value)) => {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                None => other_lines += 1,
            }
            continue;
        }
        if GIT_GENERATED[1..].iter().any(|p| line.starts_with(p)) {
            git_generated = true;
            trailer_lines += 1;
            continue;
        }
        match split_trailer(line) {
            Some((token, value)) => {
                git_generated |= token.eq_ignore_ascii_case(GIT_GENERATED[0]);
                trailer_lines += 1;
                trailers.push((token.to_string(), value.to_string()));
            }
            None => other_lines += 1,
        }
    }
    let is_block = trailer_lines > 0
        && (other_lines == 0 || (git_generated && trailer_lines * 3 >= other_lines));
    if !is_block {
        return Vec::new();
    }
    trailers
        .into_iter()
        .take(MAX_TRAILERS)
        .map(|(token, value)| Trailer {
            token,
            value: cut(&value, MAX_VALUE_BYTES),
        })
        .collect()
}

/// `Token: value` (blanks allowed before the colon) into its parts.
fn split_trailer(line: &str) -> Option<(&str, &str)> {
    let (token, value) = line.split_once(':')?;
    let token = token.trim_end();
    let valid = !token.is_empty()
        && token.len() <= MAX_TOKEN_BYTES
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    valid.then(|| (token, value.trim()))
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(message: &str) -> Vec<(String, String)> {
        parse_trailers(message)
            .into_iter()
            .map(|t| (t.token, t.value))
            .collect()
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(t, v)| (t.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_the_last_paragraph() {
        let message = "Raise replicas\n\nBody text: not a trailer block because\nthis line is prose.\n\nSigned-off-by: Alice <alice@example.com>\nChange-Id: I0123456789abcdef\nCo-authored-by: Bob <bob@example.com>\nReviewed-by : Carol\n";
        assert_eq!(
            pairs(message),
            owned(&[
                ("Signed-off-by", "Alice <alice@example.com>"),
                ("Change-Id", "I0123456789abcdef"),
                ("Co-authored-by", "Bob <bob@example.com>"),
                ("Reviewed-by", "Carol"),
            ])
        );
    }

    #[test]
    fn the_title_is_never_a_trailer_and_prose_is_not_a_block() {
        assert!(pairs("Fix: the thing\n").is_empty());
        assert!(
            pairs("Title\n\nSee: the docs, which explain\nwhy this matters a lot\n").is_empty()
        );
        assert!(pairs("").is_empty());
    }

    #[test]
    fn continuation_lines_comments_and_git_generated_blocks() {
        let message = "Title\n\nFixes: a long\n  explanation\n# a comment\n";
        assert_eq!(pairs(message), owned(&[("Fixes", "a long explanation")]));
        // A quarter of trailer lines suffices when one is Signed-off-by, as in Git.
        let message = "Title\n\nsome text\nmore text\nSigned-off-by: A <a@x>\n";
        assert_eq!(pairs(message), owned(&[("Signed-off-by", "A <a@x>")]));
        let message = "Title\n\na\nb\nc\nd\ne\nSigned-off-by: A <a@x>\n";
        assert!(pairs(message).is_empty(), "below a quarter");
    }

    #[test]
    fn bounded_in_count_and_size() {
        let mut message = String::from("Title\n\n");
        for i in 0..200 {
            message.push_str(&format!("Token-{i}: {}\n", "é".repeat(2000)));
        }
        let trailers = parse_trailers(&message);
        assert_eq!(trailers.len(), MAX_TRAILERS);
        assert!(trailers.iter().all(|t| t.value.len() <= MAX_VALUE_BYTES));
        let long_token = format!("Title\n\n{}: x\n", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert!(parse_trailers(&long_token).is_empty());
    }
}
