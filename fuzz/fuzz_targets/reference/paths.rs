//! Reference path rules shared by the policy targets, written the plain
//! way so that nucleus's own code is checked against something independent.

/// Absolute, no NUL, no `..`; `.` and empty components dropped.
pub fn normalised(text: &str) -> Option<String> {
    if !text.starts_with('/') || text.contains('\0') {
        return None;
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            _ => parts.push(part),
        }
    }
    Some(format!("/{}", parts.join("/")))
}
