//! `manifest.json`: every file of a run folder with its size and sha256, so what was uploaded
//! can be checked against what the run wrote. Written last, after every other file.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::collect::records::{SCHEMA_VERSION, files};

/// One file of the folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Path relative to the folder, '/'-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// sha256 of its bytes, lowercase hex.
    pub sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Version of the formats of the folder.
    pub schema_version: String,
    /// Every file but the manifest itself, sorted by path.
    pub files: Vec<Entry>,
}

/// The sha256 and size of a file, read in chunks.
pub fn digest(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size = size.saturating_add(n as u64);
    }
    let hex: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, size))
}

/// Lists `dir` and writes its `manifest.json`.
pub fn write(dir: &Path) -> Result<Manifest, super::upload::UploadError> {
    let read_err = |path: &Path, source| super::upload::UploadError::Read { path: path.to_path_buf(), source };
    let mut entries = Vec::new();
    for relative in super::upload::files_under(dir)? {
        let path = relative.to_string_lossy().replace('\\', "/");
        if path == files::MANIFEST {
            continue;
        }
        let full = dir.join(&relative);
        let (sha256, size) = digest(&full).map_err(|e| read_err(&full, e))?;
        entries.push(Entry { path, size, sha256 });
    }
    let manifest = Manifest { schema_version: SCHEMA_VERSION.to_string(), files: entries };
    let out = dir.join(files::MANIFEST);
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| read_err(&out, std::io::Error::other(e)))?;
    std::fs::write(&out, text).map_err(|e| read_err(&out, e))?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_file_but_itself_with_size_and_sha256() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("steps")).unwrap();
        std::fs::write(tmp.path().join("steps/001-1.json"), b"abc").unwrap();
        std::fs::write(tmp.path().join("summary.json"), b"").unwrap();
        std::fs::write(tmp.path().join("manifest.json"), b"old").unwrap();
        let m = write(tmp.path()).unwrap();
        assert_eq!(m.files.len(), 2);
        assert_eq!(m.files[0].path, "steps/001-1.json");
        assert_eq!(m.files[0].size, 3);
        assert_eq!(m.files[0].sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(m.files[1].sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let back: Manifest = serde_json::from_slice(&std::fs::read(tmp.path().join("manifest.json")).unwrap()).unwrap();
        assert_eq!(back, m);
    }
}
