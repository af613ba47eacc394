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

/// Writes `value` canonically.
pub fn to_canonical_string(value: &Value) -> Result<String, String> {
    let mut out = String::new();
    write_value(value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut String) -> Result<(), String> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                return Err(format!("the number {n} is not an integer; canonical JSON here holds integers only"));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out)?;
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push('{');
            for (i, (name, member)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(name, out);
                out.push(':');
                write_value(member, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
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
