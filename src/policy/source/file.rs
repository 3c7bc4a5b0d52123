//! The default source: a policy CSV file next to the config (and the model,
//! which is always a file). Watching it for changes is `reload::watch`.

use std::path::Path;

use crate::policy::PolicyLoadError;

/// Reads `path` whole; the error names the file.
pub fn read(path: &Path) -> Result<String, PolicyLoadError> {
    std::fs::read_to_string(path).map_err(|source| PolicyLoadError::Read {
        path: path.display().to_string(),
        source,
    })
}
