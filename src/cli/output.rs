//! What a command prints on stdout. Output into a closed pipe (`authzd
//! validate | head -1`) ends quietly: the rest is dropped and the command
//! still exits with its own result, never a panic. Any other write error
//! is the command's error.

use std::io::{ErrorKind, Write as _};

use anyhow::Result;

/// Writes `text` to stdout as is. A closed pipe is not an error.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// [`print`] with a newline after `text`.
pub fn line(text: &str) -> Result<()> {
    let mut s = String::with_capacity(text.len() + 1);
    s.push_str(text);
    s.push('\n');
    print(&s)
}

/// Pretty JSON and a newline.
pub fn json(value: &impl serde::Serialize) -> Result<()> {
    line(&serde_json::to_string_pretty(value)?)
}

/// A line on stderr, for what is not the command's output (a write error
/// there is ignored: there is nowhere left to report it).
pub fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}
