//! A small JSON value and writer that can carry raw path bytes.
//!
//! Paths on Linux are bytes. serde_json can only emit valid Unicode strings,
//! so we write JSON ourselves: valid UTF-8 is written as usual and every byte
//! that is not part of valid UTF-8 is written as the escape `\udcXX`, the
//! lone low surrogate U+DC00+byte (PEP 383 "surrogateescape"). Valid UTF-8
//! text can never contain a lone surrogate, so the mapping is unambiguous:
//! Python's `os.fsencode(json.loads(s))` gives back the exact bytes.

use std::fmt::Write as _;

/// A JSON value whose strings may be raw bytes.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    /// Bytes written with surrogate escapes for invalid UTF-8.
    Bytes(Vec<u8>),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn obj(fields: Vec<(&str, Json)>) -> Json {
        Json::Obj(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }
    pub fn opt_int(v: Option<impl Into<i64>>) -> Json {
        v.map_or(Json::Null, |v| Json::Int(v.into()))
    }
    pub fn opt_str(v: Option<&str>) -> Json {
        v.map_or(Json::Null, |s| Json::Str(s.to_string()))
    }

    /// Pretty-printed with two-space indentation.
    pub fn to_pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out
    }

    fn write(&self, out: &mut String, depth: usize) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Json::Str(s) => write_bytes(out, s.as_bytes()),
            Json::Bytes(b) => write_bytes(out, b),
            Json::Arr(items) => {
                if items.is_empty() {
                    out.push_str("[]");
                    return;
                }
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    out.push_str(if i == 0 { "\n" } else { ",\n" });
                    indent(out, depth + 1);
                    item.write(out, depth + 1);
                }
                out.push('\n');
                indent(out, depth);
                out.push(']');
            }
            Json::Obj(fields) => {
                if fields.is_empty() {
                    out.push_str("{}");
                    return;
                }
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    out.push_str(if i == 0 { "\n" } else { ",\n" });
                    indent(out, depth + 1);
                    write_bytes(out, k.as_bytes());
                    out.push_str(": ");
                    v.write(out, depth + 1);
                }
                out.push('\n');
                indent(out, depth);
                out.push('}');
            }
        }
    }
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("  ");
    }
}

fn write_bytes(out: &mut String, mut bytes: &[u8]) {
    out.push('"');
    while !bytes.is_empty() {
        let (valid, rest) = match std::str::from_utf8(bytes) {
            Ok(s) => (s, &[][..]),
            Err(e) => {
                let (good, bad) = bytes.split_at(e.valid_up_to());
                // SAFETY-free: `good` is valid UTF-8 by construction.
                (std::str::from_utf8(good).unwrap_or(""), bad)
            }
        };
        for c in valid.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        match rest.split_first() {
            Some((b, tail)) => {
                let _ = write!(out, "\\udc{b:02x}");
                bytes = tail;
            }
            None => bytes = rest,
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_bytes_become_lone_surrogate_escapes() {
        let j = Json::Bytes(b"/d/caf\xe9 x\"\\.txt".to_vec());
        assert_eq!(j.to_pretty(), r#""/d/caf\udce9 x\"\\.txt""#);
    }

    #[test]
    fn valid_unicode_is_kept() {
        assert_eq!(Json::Str("é\n".into()).to_pretty(), "\"é\\n\"");
    }

    #[test]
    fn output_parses_as_json_when_utf8() {
        let j = Json::obj(vec![
            ("a", Json::Arr(vec![Json::Int(1), Json::Null])),
            ("b", Json::Obj(vec![])),
            ("c", Json::Bool(true)),
        ]);
        let v: serde_json::Value = serde_json::from_str(&j.to_pretty()).unwrap();
        assert_eq!(v["a"][0], 1);
    }
}
