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
        self.to_pretty_at(0)
    }

    /// Pretty-printed as if nested `depth` levels deep (for [`Stream`]).
    pub fn to_pretty_at(&self, depth: usize) -> String {
        let mut out = String::new();
        self.write(&mut out, depth);
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

/// Writes one JSON object or array piece by piece, so that a whole store can be exported
/// without holding it in memory. The layout matches [`Json::to_pretty`].
pub struct Stream<'w> {
    w: &'w mut dyn std::io::Write,
    depth: usize,
    count: usize,
    close: u8,
}

impl<'w> Stream<'w> {
    pub fn object(w: &'w mut dyn std::io::Write, depth: usize) -> std::io::Result<Self> {
        w.write_all(b"{")?;
        Ok(Stream {
            w,
            depth,
            count: 0,
            close: b'}',
        })
    }

    fn sep(&mut self) -> std::io::Result<()> {
        let mut s = String::from(if self.count == 0 { "\n" } else { ",\n" });
        indent(&mut s, self.depth + 1);
        self.count += 1;
        self.w.write_all(s.as_bytes())
    }

    fn key(&mut self, key: &[u8]) -> std::io::Result<()> {
        self.sep()?;
        let mut s = String::new();
        write_bytes(&mut s, key);
        s.push_str(": ");
        self.w.write_all(s.as_bytes())
    }

    /// `"key": value` in an object.
    pub fn field(&mut self, key: &[u8], value: &Json) -> std::io::Result<()> {
        self.key(key)?;
        self.w
            .write_all(value.to_pretty_at(self.depth + 1).as_bytes())
    }

    /// An element of an array.
    pub fn item(&mut self, value: &Json) -> std::io::Result<()> {
        self.sep()?;
        self.w
            .write_all(value.to_pretty_at(self.depth + 1).as_bytes())
    }

    /// `"key": {` ... in an object; finish the nested object with [`Stream::end`].
    pub fn object_field(&mut self, key: &str) -> std::io::Result<Stream<'_>> {
        self.key(key.as_bytes())?;
        Stream::object(&mut *self.w, self.depth + 1)
    }

    /// `"key": [` ... in an object; finish the nested array with [`Stream::end`].
    pub fn array_field(&mut self, key: &str) -> std::io::Result<Stream<'_>> {
        self.key(key.as_bytes())?;
        self.w.write_all(b"[")?;
        Ok(Stream {
            w: &mut *self.w,
            depth: self.depth + 1,
            count: 0,
            close: b']',
        })
    }

    pub fn end(self) -> std::io::Result<()> {
        if self.count > 0 {
            let mut s = String::from("\n");
            indent(&mut s, self.depth);
            self.w.write_all(s.as_bytes())?;
        }
        self.w.write_all(&[self.close])
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
    fn stream_matches_pretty() {
        let whole = Json::obj(vec![
            (
                "a",
                Json::Arr(vec![Json::Int(1), Json::obj(vec![("x", Json::Null)])]),
            ),
            ("b", Json::Obj(vec![])),
            ("c", Json::Arr(vec![])),
        ]);
        let mut out = Vec::new();
        let mut top = Stream::object(&mut out, 0).unwrap();
        let mut a = top.array_field("a").unwrap();
        a.item(&Json::Int(1)).unwrap();
        a.item(&Json::obj(vec![("x", Json::Null)])).unwrap();
        a.end().unwrap();
        top.object_field("b").unwrap().end().unwrap();
        top.array_field("c").unwrap().end().unwrap();
        top.end().unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), whole.to_pretty());
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
