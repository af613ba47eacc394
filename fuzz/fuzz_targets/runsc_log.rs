//! runsc's JSON log (`sandbox::runsc::logged_errors` and `failure_cause`),
//! read from a temporary file as nucleus reads it after a failed start.
//!
//! The log is whatever runsc (or its gofer and sentry, which may be killed
//! mid-line) wrote. The input is split in two at its first 0xFF byte (which
//! UTF-8 never holds) when there is one: the head is written as a log of
//! one JSON object per line (a Go-style line for each `level msg` pair of
//! the head's lines), the tail is appended raw, as a line cut short or
//! garbage would be. The error-level messages of the well-formed head must
//! all be found, in order, whatever the tail; `failure_cause` is the first line of one of them, and there is one
//! exactly when a message was found.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use nucleus::sandbox::runsc::{failure_cause, logged_errors};
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let (head, tail) = match data.iter().position(|b| *b == 0xff) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let head = String::from_utf8_lossy(head);
    let mut log = Vec::new();
    let mut expected = Vec::new();
    for line in head.lines() {
        let (level, msg) = line.split_once(' ').unwrap_or((line, ""));
        // Go's encoder escapes what JSON needs; `&{…}` and braces stay as they are.
        let value = json!({"level": level, "msg": msg, "time": "2024-01-01T00:00:00Z"});
        log.extend_from_slice(value.to_string().as_bytes());
        log.push(b'\n');
        if level == "error" || level == "fatal" {
            expected.push(msg.to_string());
        }
    }
    log.extend_from_slice(tail);

    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&log).unwrap();
    let found = logged_errors(file.path());
    assert!(found.len() >= expected.len(), "lost messages: {expected:?} -> {found:?}");
    assert_eq!(found[..expected.len()], expected[..]);
    match failure_cause(file.path()) {
        None => assert!(found.is_empty()),
        Some(cause) => {
            assert!(!cause.contains('\n'));
            assert!(found.iter().any(|m| m.lines().next().unwrap_or("") == cause), "{cause:?} from {found:?}");
        }
    }
});
