//! Canonical JSON, as RFC 8785 (JCS) defines it for the values a bundle
//! holds: no whitespace; object members sorted by the UTF-16 code units of
//! their names; strings with only `"`, `\` and control characters escaped
//! (`\b \t \n \f \r`, else `\u00xx` in lowercase hex); integers in decimal.
//! Non-integral numbers never occur in what nucleus hashes and are refused
//! rather than given a second spelling.
//!
//! The text is produced here, character by character, from a parsed value:
//! it depends neither on how serde_json orders map keys (its
//! `preserve_order` feature, which Cargo's feature unification could turn
//! on behind our back) nor on how it prints strings or numbers.

use serde_json::Value;

/// Where canonical text goes: a string to show, or a hasher to digest it
/// without ever holding the whole text.
pub trait Sink {
    fn put(&mut self, text: &str);
}

impl Sink for String {
    fn put(&mut self, text: &str) {
        self.push_str(text);
    }
}

impl Sink for sha2::Sha256 {
    fn put(&mut self, text: &str) {
        sha2::Digest::update(self, text.as_bytes());
    }
}

/// A member of an object written with [`write_object`]: a value, or text
/// the caller writes itself when the member's turn comes (a long array it
/// produces one item at a time, say).
pub enum Member<'a> {
    Value(&'a Value),
    Written(Writer<'a>),
}

/// Writes one member's value when its turn comes.
pub type Writer<'a> = Box<dyn FnOnce(&mut dyn Sink) -> Result<(), String> + 'a>;

/// Writes `value` canonically.
pub fn to_canonical_string(value: &Value) -> Result<String, String> {
    let mut out = String::new();
    write_value(value, &mut out)?;
    Ok(out)
}

pub fn write_value(value: &Value, out: &mut dyn Sink) -> Result<(), String> {
    match value {
        Value::Null => out.put("null"),
        Value::Bool(b) => out.put(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.put(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.put(&u.to_string());
            } else {
                return Err(format!("the number {n} is not an integer; canonical JSON here holds integers only"));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.put("[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.put(",");
                }
                write_value(item, out)?;
            }
            out.put("]");
        }
        Value::Object(members) => {
            write_object(members.iter().map(|(name, member)| (name.as_str(), Member::Value(member))).collect(), out)?
        }
    }
    Ok(())
}

/// Writes an object of `members`, sorted by name. Names must be distinct.
pub fn write_object(mut members: Vec<(&str, Member<'_>)>, out: &mut dyn Sink) -> Result<(), String> {
    members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
    out.put("{");
    for (i, (name, member)) in members.into_iter().enumerate() {
        if i > 0 {
            out.put(",");
        }
        write_string(name, out);
        out.put(":");
        match member {
            Member::Value(value) => write_value(value, out)?,
            Member::Written(write) => write(out)?,
        }
    }
    out.put("}");
    Ok(())
}

/// Writes `s` as a string: runs of characters that need no escape go out
/// whole.
pub fn write_string(s: &str, out: &mut dyn Sink) {
    out.put("\"");
    let mut plain = 0;
    for (at, c) in s.char_indices() {
        let control: String;
        let escaped = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\u{8}' => "\\b",
            '\t' => "\\t",
            '\n' => "\\n",
            '\u{c}' => "\\f",
            '\r' => "\\r",
            c if (c as u32) < 0x20 => {
                control = format!("\\u{:04x}", c as u32);
                &control
            }
            _ => continue,
        };
        out.put(&s[plain..at]);
        out.put(escaped);
        plain = at + c.len_utf8();
    }
    out.put(&s[plain..]);
    out.put("\"");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_are_sorted_and_nothing_is_spaced() {
        let v = json!({"z": 1, "a": [true, null, {"y": "x", "b": -2}], "é": 0, "B": 18446744073709551615u64});
        assert_eq!(
            to_canonical_string(&v).unwrap(),
            r#"{"B":18446744073709551615,"a":[true,null,{"b":-2,"y":"x"}],"z":1,"é":0}"#
        );
    }

    #[test]
    fn strings_escape_only_what_jcs_escapes() {
        let v = json!("q\"b\\s/\u{8}\t\n\u{c}\r\u{1}\u{1f}é€😀");
        assert_eq!(to_canonical_string(&v).unwrap(), "\"q\\\"b\\\\s/\\b\\t\\n\\f\\r\\u0001\\u001fé€😀\"");
    }

    /// RFC 8785 orders names by UTF-16 code units, where a character
    /// beyond the BMP sorts before U+E000..U+FFFF.
    #[test]
    fn names_sort_by_utf16_code_units() {
        let v = json!({"\u{ff61}": 1, "😀": 2});
        assert_eq!(to_canonical_string(&v).unwrap(), "{\"😀\":2,\"\u{ff61}\":1}");
    }

    #[test]
    fn fractions_are_refused() {
        assert!(to_canonical_string(&json!({"x": 1.5})).is_err());
    }
}
