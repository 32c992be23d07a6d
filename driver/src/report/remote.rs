//! Reports of run folders in S3 (`s3://bucket/prefix/`): the files a report reads are
//! downloaded to a temporary folder (streamed to disk, not held), the report is made there,
//! and `summary.json` and `report.html` go back next to the JSON lines. The client is the
//! driver's ([`crate::s3::client`]): the standard credential chain and `AWS_ENDPOINT_URL`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use tokio::io::AsyncWriteExt;

use super::{ReportError, Written, rebuild};
use crate::collect::records::files;

/// Longest one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// The files a report reads.
const READ: [&str; 7] =
    [files::SUMMARY, files::PODS, files::NODES, files::WORKLOADS, files::EVENTS, files::AUDIT, files::ACTIONS];

/// A run folder in S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Folder {
    /// The bucket.
    pub bucket: String,
    /// The key prefix, without slashes at either end.
    pub prefix: String,
}

impl S3Folder {
    /// `s3://bucket/prefix/`, or None when `location` does not start with s3://.
    pub fn parse(location: &str) -> Option<Result<S3Folder, ReportError>> {
        let rest = location.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        if bucket.is_empty() || prefix.is_empty() || prefix.split('/').any(|p| p == "..") {
            return Some(Err(ReportError::Remote {
                location: location.to_string(),
                detail: "expected s3://bucket/prefix/ naming a run folder".to_string(),
            }));
        }
        Some(Ok(S3Folder { bucket: bucket.to_string(), prefix: prefix.to_string() }))
    }

    /// `s3://bucket/prefix/`.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}/", self.bucket, self.prefix)
    }

    fn key(&self, file: &str) -> String {
        format!("{}/{file}", self.prefix)
    }

    fn error(&self, detail: String) -> ReportError {
        ReportError::Remote { location: self.uri(), detail }
    }
}

/// A temporary folder, removed when dropped.
#[derive(Debug)]
pub struct TempFolder {
    path: PathBuf,
}

impl TempFolder {
    /// A new empty folder under the system's temporary directory.
    pub fn new() -> std::io::Result<Self> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("rehearsal-report-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempFolder { path })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Downloads the files a report reads from `folder` into `dir`; returns how many there were.
/// A folder with none of them is an error (a wrong prefix, most likely).
pub async fn download(s3: &aws_sdk_s3::Client, folder: &S3Folder, dir: &Path) -> Result<usize, ReportError> {
    let mut found = 0;
    for file in READ {
        let get = s3.get_object().bucket(&folder.bucket).key(folder.key(file)).send();
        let out = match tokio::time::timeout(REQUEST_TIMEOUT, get).await {
            Err(_) => return Err(folder.error(format!("no answer for {file} within {} s", REQUEST_TIMEOUT.as_secs()))),
            Ok(Err(e)) => {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    continue;
                }
                return Err(folder.error(format!("cannot read {file}: {}", DisplayErrorContext(&e))));
            }
            Ok(Ok(out)) => out,
        };
        let path = dir.join(file);
        let mut body = out.body;
        let mut f =
            tokio::fs::File::create(&path).await.map_err(|source| ReportError::Write { path: path.clone(), source })?;
        loop {
            let chunk = match tokio::time::timeout(REQUEST_TIMEOUT, body.next()).await {
                Err(_) => return Err(folder.error(format!("{file}: download stalled"))),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(folder.error(format!("{file}: {e}"))),
                Ok(Some(Ok(bytes))) => bytes,
            };
            f.write_all(&chunk).await.map_err(|source| ReportError::Write { path: path.clone(), source })?;
        }
        f.flush().await.map_err(|source| ReportError::Write { path: path.clone(), source })?;
        found += 1;
    }
    if found == 0 {
        return Err(folder.error(
            "none of the files of a run folder (pods.jsonl, actions.jsonl, summary.json, ...) is there".to_string(),
        ));
    }
    Ok(found)
}

/// Uploads `summary.json` and `report.html` of `dir` to `folder`, typed so a browser opens them.
pub async fn upload_report(s3: &aws_sdk_s3::Client, folder: &S3Folder, dir: &Path) -> Result<(), ReportError> {
    for (file, content_type) in [(files::SUMMARY, "application/json"), (files::REPORT, "text/html; charset=utf-8")] {
        let path = dir.join(file);
        let body = ByteStream::from_path(&path)
            .await
            .map_err(|e| ReportError::Folder { path: path.clone(), source: std::io::Error::other(e) })?;
        let put =
            s3.put_object().bucket(&folder.bucket).key(folder.key(file)).content_type(content_type).body(body).send();
        match tokio::time::timeout(REQUEST_TIMEOUT, put).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(folder.error(format!("cannot write {file}: {}", DisplayErrorContext(&e)))),
            Err(_) => {
                return Err(folder.error(format!("no answer writing {file} within {} s", REQUEST_TIMEOUT.as_secs())));
            }
        }
    }
    Ok(())
}

/// A run folder made local: a path as it is, or an S3 folder downloaded to a temporary one.
#[derive(Debug)]
pub struct LocalFolder {
    /// Where to read it.
    pub path: PathBuf,
    /// The S3 folder it came from.
    pub remote: Option<S3Folder>,
    _temp: Option<TempFolder>,
}

/// `location` (a path, or s3://bucket/prefix/) as a local folder; `region` overrides the
/// credential chain's region for S3.
pub async fn local(
    location: &str,
    region: Option<&str>,
) -> Result<(LocalFolder, Option<aws_sdk_s3::Client>), ReportError> {
    match S3Folder::parse(location) {
        None => Ok((LocalFolder { path: PathBuf::from(location), remote: None, _temp: None }, None)),
        Some(folder) => {
            let folder = folder?;
            let s3 = crate::s3::client(region).await;
            let temp =
                TempFolder::new().map_err(|source| ReportError::Folder { path: std::env::temp_dir(), source })?;
            download(&s3, &folder, temp.path()).await?;
            Ok((LocalFolder { path: temp.path().to_path_buf(), remote: Some(folder), _temp: Some(temp) }, Some(s3)))
        }
    }
}

/// `rehearsal-driver report LOCATION`: rebuilds `summary.json` and `report.html` of a folder,
/// on disk or in S3 (written back there). Returns what was written and where it now is.
pub async fn rebuild_at(location: &str, region: Option<&str>) -> Result<(Written, String), ReportError> {
    let (folder, s3) = local(location, region).await?;
    let written = rebuild(&folder.path)?;
    match (&folder.remote, &s3) {
        (Some(remote), Some(s3)) => {
            upload_report(s3, remote, &folder.path).await?;
            Ok((written, remote.uri()))
        }
        _ => Ok((written, folder.path.display().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_folders() {
        assert!(S3Folder::parse("/tmp/x").is_none());
        let f = S3Folder::parse("s3://logs/sim/0/").unwrap().unwrap();
        assert_eq!((f.bucket.as_str(), f.prefix.as_str(), f.uri()), ("logs", "sim/0", "s3://logs/sim/0/".to_string()));
        assert_eq!(f.key("pods.jsonl"), "sim/0/pods.jsonl");
        for bad in ["s3://", "s3://bucket", "s3://bucket/", "s3://b/../x"] {
            assert!(matches!(S3Folder::parse(bad), Some(Err(ReportError::Remote { .. }))), "{bad}");
        }
        let t = TempFolder::new().unwrap();
        let p = t.path().to_path_buf();
        assert!(p.is_dir());
        drop(t);
        assert!(!p.exists());
    }
}
