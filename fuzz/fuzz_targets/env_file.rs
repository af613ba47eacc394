//! `--env-file FILE` (podman's format) through `policy::parse_env_file`,
//! against a reference written from its documentation: lines end at `\n`
//! (a `\r` before it is dropped); blank lines and lines whose first
//! non-blank character is `#` are skipped; blanks before KEY are dropped;
//! each remaining line is one `-e` value, `KEY=VALUE` or a bare `KEY`, the
//! value kept verbatim. A refusal names the first bad line.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nucleus::policy::{self, EnvArg};

fuzz_target!(|data: &[u8]| {
    // nucleus refuses a file that is not UTF-8 before parsing it.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let got = policy::parse_env_file(text, Path::new("env.list"));
    match reference(text) {
        Ok(entries) => assert_eq!(got.ok(), Some(entries), "{text:?}"),
        Err(line) => {
            let message = got.expect_err(text).to_string();
            assert!(message.starts_with(&format!("invalid --env-file: env.list line {line}: ")), "{text:?}: {message}");
        }
    }
});

/// The entries, or the number of the first line that is not one.
fn reference(text: &str) -> Result<Vec<EnvArg>, usize> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    let mut entries = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let is_last = i + 1 == lines.len() && !text.ends_with('\n');
        let line = if is_last { line } else { line.strip_suffix('\r').unwrap_or(line) };
        let entry = line.trim_start_matches(char::is_whitespace);
        if entry.is_empty() || entry.starts_with('#') {
            continue;
        }
        let key = entry.split('=').next().unwrap();
        if key.is_empty() || key.contains(char::is_whitespace) || entry.contains('\0') {
            return Err(i + 1);
        }
        entries.push(match entry.split_once('=') {
            Some((key, value)) => EnvArg::Set(key.into(), value.into()),
            None => EnvArg::Inherit(key.into()),
        });
    }
    Ok(entries)
}
