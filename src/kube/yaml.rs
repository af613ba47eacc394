//! A small YAML writer for JSON values, for `nucleus kube`: block style as
//! kubectl prints it, every string double-quoted (so no value is ever read
//! back as a number, a boolean or a date), keys plain when they are plain
//! words. A stream of documents, each after `---`, with `#` comments on
//! top. Output is a pure function of the values, so manifests diff cleanly.

use std::fmt::Write as _;

use serde_json::Value;

/// `comments` (one `#` line each), then every document after `---`.
pub fn stream(comments: &[String], documents: &[Value]) -> String {
    let mut out = String::new();
    for line in comments {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            let _ = writeln!(out, "# {line}");
        }
    }
    for document in documents {
        out.push_str("---\n");
        write_block(document, 0, &mut out);
    }
    out
}

fn write_block(value: &Value, indent: usize, out: &mut String) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                pad(indent, out);
                write_key(key, out);
                write_child(child, indent, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                pad(indent, out);
                out.push('-');
                match item {
                    Value::Object(map) if !map.is_empty() => {
                        // The first key shares the dash's line.
                        let mut first = true;
                        for (key, child) in map {
                            if first {
                                out.push(' ');
                                first = false;
                            } else {
                                pad(indent + 2, out);
                            }
                            write_key(key, out);
                            write_child(child, indent + 2, out);
                        }
                    }
                    Value::Array(inner) if !inner.is_empty() => {
                        out.push('\n');
                        write_block(item, indent + 2, out);
                    }
                    scalar => {
                        out.push(' ');
                        write_scalar(scalar, out);
                        out.push('\n');
                    }
                }
            }
        }
        scalar => {
            pad(indent, out);
            write_scalar(scalar, out);
            out.push('\n');
        }
    }
}

/// After `key:`: a scalar on the same line, a collection below it.
fn write_child(child: &Value, indent: usize, out: &mut String) {
    match child {
        Value::Object(map) if !map.is_empty() => {
            out.push_str(":\n");
            write_block(child, indent + 2, out);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push_str(":\n");
            write_block(child, indent, out);
        }
        scalar => {
            out.push_str(": ");
            write_scalar(scalar, out);
            out.push('\n');
        }
    }
}

fn pad(indent: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn write_key(key: &str, out: &mut String) {
    let plain = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        && key.starts_with(|c: char| c.is_ascii_alphabetic());
    if plain {
        out.push_str(key);
    } else {
        quote(key, out);
    }
}

fn write_scalar(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => quote(s, out),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        other => out.push_str(&other.to_string()),
    }
}

/// A double-quoted YAML scalar: what YAML does not allow raw (control
/// characters, DEL, C1 controls, line and paragraph separators, a BOM) is
/// escaped.
fn quote(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20
                || (0x7f..=0x9f).contains(&(c as u32))
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') =>
            {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
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
    fn block_style_with_quoted_strings() {
        let doc = json!({
            "kind": "Pod",
            "metadata": {"labels": {"app.kubernetes.io/name": "x"}},
            "spec": {"containers": [{"name": "c", "command": ["/bin/sh", "-c", "echo \"hi\"\n"], "ports": []}],
                     "replicas": 1, "empty": {}}
        });
        let text = stream(&["made by nucleus".into()], &[doc]);
        let want = "# made by nucleus\n---\nkind: \"Pod\"\nmetadata:\n  labels:\n    app.kubernetes.io/name: \"x\"\n\
            spec:\n  containers:\n  - command:\n    - \"/bin/sh\"\n    - \"-c\"\n    - \"echo \\\"hi\\\"\\n\"\n    \
            name: \"c\"\n    ports: []\n  empty: {}\n  replicas: 1\n";
        assert_eq!(text, want);
    }

    #[test]
    fn unprintable_characters_are_escaped() {
        let mut out = String::new();
        quote("a\u{1b}[0m\u{7f}\u{85}\u{2028}é", &mut out);
        assert_eq!(out, "\"a\\u001b[0m\\u007f\\u0085\\u2028é\"");
        let mut key = String::new();
        write_key("1st key", &mut key);
        assert_eq!(key, "\"1st key\"");
    }
}
