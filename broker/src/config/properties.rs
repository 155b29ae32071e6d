//! Java `.properties` files, as `java.util.Properties.load` reads them.
//!
//! Supported: `#` and `!` comments, `=`, `:` or whitespace between key and value, backslash line
//! continuations, and the escapes `\t \n \r \f \uXXXX` (any other escaped character stands for
//! itself). Later keys replace earlier ones, as in Java.

use std::collections::BTreeMap;

/// A malformed properties file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct PropertiesError {
    /// 1-based line number where the logical line starts.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// Parses the text of a properties file into key → value.
pub fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, PropertiesError> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((index, first)) = lines.next() {
        let start_line = index + 1;
        let trimmed = first.trim_start_matches([' ', '\t', '\x0c']);
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        // Join continuation lines: an odd number of trailing backslashes continues the line, and
        // the next line's leading whitespace is dropped.
        let mut logical = String::from(trimmed);
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start_matches([' ', '\t', '\x0c'])),
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        let key = unescape(key).map_err(|reason| PropertiesError {
            line: start_line,
            reason,
        })?;
        let value = unescape(value).map_err(|reason| PropertiesError {
            line: start_line,
            reason,
        })?;
        out.insert(key, value);
    }
    Ok(out)
}

fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// Splits at the first unescaped `=`, `:` or whitespace; whitespace around the separator is
/// skipped.
fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' => {
                return (
                    &line[..i],
                    line[i + 1..].trim_start_matches([' ', '\t', '\x0c']),
                );
            }
            ' ' | '\t' | '\x0c' => {
                let rest = line[i..].trim_start_matches([' ', '\t', '\x0c']);
                let rest = rest
                    .strip_prefix(['=', ':'])
                    .map_or(rest, |r| r.trim_start_matches([' ', '\t', '\x0c']));
                return (&line[..i], rest);
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            None => {}
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .ok_or_else(|| format!("malformed \\uXXXX escape '\\u{hex}'"))?;
                out.push(
                    char::from_u32(code).ok_or_else(|| format!("invalid character \\u{hex}"))?,
                );
            }
            Some(other) => out.push(other),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Vec<(String, String)> {
        parse_properties(text).unwrap().into_iter().collect()
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn separators_comments_and_whitespace() {
        let text = "# comment\n! also\n\n  a=1\nb : 2\nc 3\nd=\ne\nf = x = y\n";
        assert_eq!(
            parse(text),
            vec![
                kv("a", "1"),
                kv("b", "2"),
                kv("c", "3"),
                kv("d", ""),
                kv("e", ""),
                kv("f", "x = y")
            ]
        );
    }

    #[test]
    fn continuations_and_escapes() {
        let text = "listeners=PLAINTEXT://a:1,\\\n    PLAINTEXT_HOST://b:2\nkey\\=with\\:sep=v\\tx\nu=\\u0041\\\\\n";
        assert_eq!(
            parse(text),
            vec![
                kv("key=with:sep", "v\tx"),
                kv("listeners", "PLAINTEXT://a:1,PLAINTEXT_HOST://b:2"),
                kv("u", "A\\"),
            ]
        );
    }

    #[test]
    fn later_keys_win_and_trailing_spaces_stay() {
        assert_eq!(parse("a=1\na=2 \n"), vec![kv("a", "2 ")]);
    }

    #[test]
    fn bad_unicode_escape_is_an_error_with_a_line() {
        let err = parse_properties("ok=1\nbad=\\u12G4\n").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
