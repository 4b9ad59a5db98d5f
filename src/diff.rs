//! The unified diff of one file (`--diff`): recorded by the engine while it
//! still holds a file's old text, shown by the report. Paths are quoted as
//! git quotes them, so a hostile file name cannot forge diff lines.

/// A path in a diff header as git writes it: in double quotes with C
/// escapes when it holds a control character, `"` or a backslash.
fn quoted_path(path: &str) -> String {
    if !path
        .chars()
        .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return path.to_string();
    }
    let mut out = String::from("\"");
    for c in path.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:03o}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A unified diff of one file, paths as `a/<file>` and `b/<file>`.
pub fn unified(file: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(
            &quoted_path(&format!("a/{file}")),
            &quoted_path(&format!("b/{file}")),
        )
        .to_string()
}
