//! Kubernetes' `resource.Quantity` grammar, by hand (k8s.io/apimachinery/pkg/api/resource):
//!
//! ```text
//! quantity        ::= signedNumber suffix
//! signedNumber    ::= [ "+" | "-" ] number
//! number          ::= digits | digits "." [ digits ] | "." digits
//! suffix          ::= binarySI | decimalSI | decimalExponent
//! binarySI        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! decimalSI       ::= n | u | m | "" | k | M | G | T | P | E
//! decimalExponent ::= ( "e" | "E" ) [ "+" | "-" ] digits
//! ```
//!
//! The API server trims surrounding whitespace before parsing, so this does too.

/// Whether `text` is a valid quantity (`500m`, `128Mi`, `1e3`, `-1.5`).
pub(crate) fn is_valid(text: &str) -> bool {
    let s = text.trim().as_bytes();
    let mut i = 0;
    if matches!(s.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let integer = digits(s, &mut i);
    let mut fraction = 0;
    if s.get(i) == Some(&b'.') {
        i += 1;
        fraction = digits(s, &mut i);
    }
    if integer == 0 && fraction == 0 {
        return false;
    }
    is_suffix(&s[i..])
}

fn digits(s: &[u8], i: &mut usize) -> usize {
    let start = *i;
    while s.get(*i).is_some_and(u8::is_ascii_digit) {
        *i += 1;
    }
    *i - start
}

fn is_suffix(suffix: &[u8]) -> bool {
    match suffix {
        b"" | b"n" | b"u" | b"m" | b"k" | b"M" | b"G" | b"T" | b"P" | b"E" => true,
        b"Ki" | b"Mi" | b"Gi" | b"Ti" | b"Pi" | b"Ei" => true,
        [b'e' | b'E', rest @ ..] => {
            let rest = match rest {
                [b'+' | b'-', r @ ..] => r,
                r => r,
            };
            !rest.is_empty() && rest.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn kubernetes_quantities_parse() {
        for ok in [
            "500m", "128Mi", "1", "1e3", "1E3", "1E", "0.5", ".5", "1.", "+2Gi", "-1", "1e-3",
            "2Ki", "100n", "3u", "1k", "1M", " 1Gi ", "1.5Gi",
        ] {
            assert!(is_valid(ok), "{ok:?} should be a quantity");
        }
    }

    #[test]
    fn malformed_quantities_are_rejected() {
        for bad in [
            "1.5GB", "abc", "1 Gi", "--1", "", "-", ".", "1e", "1KI", "1ki", "Gi", "1Gii", "1e3.5",
            "0x10", "1,5",
        ] {
            assert!(!is_valid(bad), "{bad:?} should not be a quantity");
        }
    }
}
