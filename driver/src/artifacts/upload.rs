//! Uploading a run's log folder to S3 (or MinIO): `s3://<bucket>/<run id>/<start time>/...`.
//!
//! The client is set up as for reading traces: the standard AWS configuration chain
//! (credentials, `AWS_ENDPOINT_URL`), the region from `S3_REGION`, and path-style addressing so
//! an endpoint without per-bucket host names (MinIO on an IP address) works.
//!
//! Files also go up while the run goes ([`Streamer`]): each step's snapshot once written, and
//! `actions.jsonl` every [`ACTIONS_EVERY`], off the step timeline, so a driver killed mid-run
//! has left in S3 everything up to its last seconds. The final upload sends the whole folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;

/// Longest a single request may take before the upload counts as failed.
const PUT_TIMEOUT: Duration = Duration::from_secs(120);
/// Files larger than this go up in parts (multipart upload), each request small enough to be
/// retried on its own.
pub const MULTIPART_THRESHOLD: u64 = 32 * 1024 * 1024;
/// Size of a part (S3's minimum is 5 MiB, except for the last).
pub const PART_SIZE: usize = 16 * 1024 * 1024;

/// Why the logs could not be uploaded.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// A local file or folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// S3 refused or failed.
    #[error("upload of {file} to {uri} failed: {detail}")]
    Put {
        /// The file, relative to the log folder.
        file: String,
        /// Where it was going.
        uri: String,
        /// The SDK's error with its causes.
        detail: String,
    },
    /// Some files did not go up (the others did).
    #[error("{failed} of {total} files were not uploaded to {uri}; first: {first}")]
    Partial {
        /// Files that failed.
        failed: usize,
        /// Files tried.
        total: usize,
        /// Where they were going.
        uri: String,
        /// The first failure.
        first: Box<UploadError>,
    },
    /// The bucket cannot be written (checked before the run touches the cluster).
    #[error("cannot write to {uri} (checked before the first action: bucket, credentials and region): {detail}")]
    NotWritable {
        /// Where the logs would go.
        uri: String,
        /// The SDK's error with its causes.
        detail: String,
    },
}

/// Writes and deletes a small object under `prefix`, so a bucket that is missing, read-only or
/// in another region is found before the run applies anything.
pub async fn check_writable(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<(), UploadError> {
    let uri = s3_uri(bucket, prefix);
    let key = format!("{}/.rehearsal-write-check", prefix.trim_matches('/'));
    let put = s3.put_object().bucket(bucket).key(&key).body(ByteStream::from_static(b"ok")).send();
    match tokio::time::timeout(PUT_TIMEOUT, put).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(UploadError::NotWritable { uri, detail: DisplayErrorContext(&e).to_string() }),
        Err(_) => {
            return Err(UploadError::NotWritable {
                uri,
                detail: format!("no answer within {} s", PUT_TIMEOUT.as_secs()),
            });
        }
    }
    // Leaving the marker would be harmless; deleting it keeps the run's folder exact.
    let _ = tokio::time::timeout(PUT_TIMEOUT, s3.delete_object().bucket(bucket).key(&key).send()).await;
    Ok(())
}

/// `s3://bucket/prefix/`.
pub fn s3_uri(bucket: &str, prefix: &str) -> String {
    format!("s3://{bucket}/{}/", prefix.trim_matches('/'))
}

/// The S3 key of a file at `relative` (a path inside the log folder).
pub fn key_for(prefix: &str, relative: &Path) -> String {
    let parts: Vec<String> = relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    format!("{}/{}", prefix.trim_matches('/'), parts.join("/"))
}

/// A content type for the log files, so they open in a browser from the S3 console.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("json") => "application/json",
        Some("jsonl") => "application/x-ndjson",
        Some("yaml" | "yml") => "application/yaml",
        // Opened in the browser from S3, not downloaded.
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// An S3 client for `region`.
pub async fn client(region: &str) -> aws_sdk_s3::Client {
    crate::s3::client(Some(region)).await
}

/// Every file under `dir`, relative to it, sorted.
pub fn files_under(dir: &Path) -> Result<Vec<PathBuf>, UploadError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries =
            std::fs::read_dir(&current).map_err(|source| UploadError::Read { path: current.clone(), source })?;
        for entry in entries {
            let entry = entry.map_err(|source| UploadError::Read { path: current.clone(), source })?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                out.push(relative.to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Uploads every file under `dir` to `s3://bucket/prefix/<relative path>`; returns how many.
/// A file that fails does not stop the others: the error counts the failures and names the first.
pub async fn upload_dir(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str, dir: &Path) -> Result<usize, UploadError> {
    let uri = s3_uri(bucket, prefix);
    let mut files = files_under(dir)?;
    // The manifest last: once it is there, every file it lists is.
    files.sort_by_key(|f| f == Path::new(crate::collect::records::files::MANIFEST));
    let mut failures: Vec<UploadError> = vec![];
    for relative in &files {
        if let Err(e) = upload_file(s3, bucket, prefix, dir, relative, &uri).await {
            tracing::warn!(error = %e, "upload");
            failures.push(e);
        }
    }
    let failed = failures.len();
    match failures.into_iter().next() {
        None => Ok(files.len()),
        Some(first) => Err(UploadError::Partial { failed, total: files.len(), uri, first: Box::new(first) }),
    }
}

async fn upload_file(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    dir: &Path,
    relative: &Path,
    uri: &str,
) -> Result<(), UploadError> {
    let path = dir.join(relative);
    let key = key_for(prefix, relative);
    let file = relative.display().to_string();
    let put_err = |detail: String| UploadError::Put { file: file.clone(), uri: uri.to_string(), detail };
    let size =
        tokio::fs::metadata(&path).await.map_err(|source| UploadError::Read { path: path.clone(), source })?.len();
    if size > MULTIPART_THRESHOLD {
        return upload_parts(s3, bucket, &key, &path, relative).await.map_err(put_err);
    }
    let body = tokio::fs::read(&path).await.map_err(|source| UploadError::Read { path: path.clone(), source })?;
    let put = s3
        .put_object()
        .bucket(bucket)
        .key(&key)
        .content_type(content_type(relative))
        .body(ByteStream::from(body))
        .send();
    match tokio::time::timeout(PUT_TIMEOUT, put).await {
        Ok(Ok(_)) => {
            tracing::debug!(key, "uploaded");
            Ok(())
        }
        Ok(Err(e)) => Err(put_err(DisplayErrorContext(&e).to_string())),
        Err(_) => Err(put_err(format!("no answer within {} s", PUT_TIMEOUT.as_secs()))),
    }
}

/// A multipart upload, part by part from the file (never the whole file in memory); aborted
/// when a part fails, so no half object is left.
async fn upload_parts(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    path: &Path,
    relative: &Path,
) -> Result<(), String> {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    use tokio::io::AsyncReadExt;
    let timed = |what: &'static str| move |_| format!("{what}: no answer within {} s", PUT_TIMEOUT.as_secs());
    let created = tokio::time::timeout(
        PUT_TIMEOUT,
        s3.create_multipart_upload().bucket(bucket).key(key).content_type(content_type(relative)).send(),
    )
    .await
    .map_err(timed("start the multipart upload"))?
    .map_err(|e| format!("start the multipart upload: {}", DisplayErrorContext(&e)))?;
    let upload_id = created.upload_id().unwrap_or_default().to_string();
    let parts = async {
        let mut file = tokio::fs::File::open(path).await.map_err(|e| format!("read {}: {e}", path.display()))?;
        let mut parts = Vec::new();
        for number in 1..=10_000i32 {
            let mut chunk = Vec::with_capacity(PART_SIZE);
            let read = (&mut file).take(PART_SIZE as u64).read_to_end(&mut chunk).await;
            read.map_err(|e| format!("read {}: {e}", path.display()))?;
            if chunk.is_empty() {
                break;
            }
            let sent = tokio::time::timeout(
                PUT_TIMEOUT,
                s3.upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(chunk))
                    .send(),
            )
            .await
            .map_err(timed("a part"))?
            .map_err(|e| format!("part {number}: {}", DisplayErrorContext(&e)))?;
            parts.push(CompletedPart::builder().part_number(number).set_e_tag(sent.e_tag().map(String::from)).build());
        }
        Ok::<_, String>(parts)
    }
    .await;
    let completed = match parts {
        Ok(parts) => {
            let done = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
            tokio::time::timeout(
                PUT_TIMEOUT,
                s3.complete_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(done)
                    .send(),
            )
            .await
            .map_err(timed("complete the multipart upload"))
            .and_then(|r| {
                r.map(|_| ()).map_err(|e| format!("complete the multipart upload: {}", DisplayErrorContext(&e)))
            })
        }
        Err(e) => Err(e),
    };
    if completed.is_err() {
        let _ = s3.abort_multipart_upload().bucket(bucket).key(key).upload_id(&upload_id).send().await;
    }
    completed
}

/// Downloads every object under `prefix` into `dir` (subfolders such as `steps/` kept); a key
/// whose rest is not a plain relative path (`..`, empty parts) is skipped. Returns how many.
pub async fn download_dir(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    dir: &Path,
) -> Result<usize, UploadError> {
    use tokio::io::AsyncWriteExt;
    let uri = s3_uri(bucket, prefix);
    let base = format!("{}/", prefix.trim_matches('/'));
    let fail = |file: &str, detail: String| UploadError::Put { file: file.to_string(), uri: uri.clone(), detail };
    let mut pages = s3.list_objects_v2().bucket(bucket).prefix(&base).into_paginator().send();
    let mut n = 0usize;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| fail("(listing)", DisplayErrorContext(&e).to_string()))?;
        for key in page.contents().iter().filter_map(|o| o.key()) {
            let Some(rest) = key.strip_prefix(&base) else { continue };
            if rest.is_empty() || rest.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
                tracing::warn!(key, "skipped: not a plain path inside the folder");
                continue;
            }
            let path = dir.join(rest);
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|source| UploadError::Read { path: parent.to_path_buf(), source })?;
            }
            let get = tokio::time::timeout(PUT_TIMEOUT, s3.get_object().bucket(bucket).key(key).send())
                .await
                .map_err(|_| fail(rest, format!("no answer within {} s", PUT_TIMEOUT.as_secs())))?
                .map_err(|e| fail(rest, DisplayErrorContext(&e).to_string()))?;
            let mut body = get.body;
            let mut file = tokio::fs::File::create(&path)
                .await
                .map_err(|source| UploadError::Read { path: path.clone(), source })?;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| fail(rest, e.to_string()))?;
                file.write_all(&chunk).await.map_err(|source| UploadError::Read { path: path.clone(), source })?;
            }
            file.flush().await.map_err(|source| UploadError::Read { path: path.clone(), source })?;
            n = n.saturating_add(1);
        }
    }
    Ok(n)
}

/// How often the growing files (`actions.jsonl`, the collectors' JSON lines) go up while the run
/// goes, each when it grew.
pub const ACTIONS_EVERY: Duration = Duration::from_secs(10);

/// Files waiting for the streamer, at most; past that they wait for the final upload.
const STREAM_QUEUE: usize = 256;

/// Uploads files of the log folder while the run goes, in a task of its own.
pub struct Streamer {
    tx: tokio::sync::mpsc::Sender<PathBuf>,
    task: tokio::task::JoinHandle<()>,
}

/// Where the streamer sends files.
#[derive(Clone)]
pub struct StreamTarget {
    /// The client.
    pub s3: aws_sdk_s3::Client,
    /// The bucket.
    pub bucket: String,
    /// Key prefix of the run.
    pub prefix: String,
    /// The local log folder.
    pub dir: PathBuf,
}

impl Streamer {
    /// Starts the task; each of `growing` (relative to the folder) goes up every `every` when it
    /// grew.
    pub fn start(target: StreamTarget, growing: Vec<PathBuf>, every: Duration) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<PathBuf>(STREAM_QUEUE);
        let task = tokio::spawn(async move {
            let uri = s3_uri(&target.bucket, &target.prefix);
            let put = |relative: PathBuf| {
                let (target, uri) = (target.clone(), uri.clone());
                async move {
                    if let Err(e) =
                        upload_file(&target.s3, &target.bucket, &target.prefix, &target.dir, &relative, &uri).await
                    {
                        // Not fatal: the final upload sends it again.
                        tracing::warn!(error = %e, "upload while running");
                    }
                }
            };
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut sent_len: Vec<Option<u64>> = vec![None; growing.len()];
            loop {
                tokio::select! {
                    file = rx.recv() => match file {
                        Some(relative) => put(relative).await,
                        None => break,
                    },
                    _ = tick.tick() => {
                        for (file, sent) in growing.iter().zip(sent_len.iter_mut()) {
                            let len = std::fs::metadata(target.dir.join(file)).map(|m| m.len()).ok();
                            if len.is_some() && len != *sent {
                                put(file.clone()).await;
                                *sent = len;
                            }
                        }
                    }
                }
            }
        });
        Streamer { tx, task }
    }

    /// A sender for files to upload (paths relative to the folder).
    pub fn sender(&self) -> tokio::sync::mpsc::Sender<PathBuf> {
        self.tx.clone()
    }

    /// Stops taking files and waits (up to `timeout`) for the ones queued to go up.
    pub async fn finish(self, timeout: Duration) {
        drop(self.tx);
        let mut task = self.task;
        if tokio::time::timeout(timeout, &mut task).await.is_err() {
            task.abort();
        }
    }
}

/// Queues `path` (inside `dir`) for upload, when there is a streamer with room.
pub fn stream(tx: Option<&tokio::sync::mpsc::Sender<PathBuf>>, dir: &Path, path: &Path) {
    if let (Some(tx), Ok(relative)) = (tx, path.strip_prefix(dir)) {
        // A full queue drops the file: the final upload sends it.
        let _ = tx.try_send(relative.to_path_buf());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_mirror_the_log_folder() {
        assert_eq!(s3_uri("logs", "run/20261122T004512Z"), "s3://logs/run/20261122T004512Z/");
        assert_eq!(
            key_for("run/20261122T004512Z", Path::new("steps/001-1.json")),
            "run/20261122T004512Z/steps/001-1.json"
        );
        assert_eq!(key_for("/run/t/", Path::new("summary.json")), "run/t/summary.json");
        assert_eq!(content_type(Path::new("actions.jsonl")), "application/x-ndjson");
        assert_eq!(content_type(Path::new("scenario.yaml")), "application/yaml");
        assert_eq!(content_type(Path::new("report.html")), "text/html; charset=utf-8");
    }

    #[test]
    fn lists_every_file_relative_and_sorted() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("steps")).unwrap();
        for f in ["summary.json", "steps/002-2.json", "steps/001-1.json", "actions.jsonl"] {
            std::fs::write(tmp.path().join(f), "x").unwrap();
        }
        let files = files_under(tmp.path()).unwrap();
        let shown: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(shown, ["actions.jsonl", "steps/001-1.json", "steps/002-2.json", "summary.json"]);
        assert!(matches!(files_under(&tmp.path().join("missing")), Err(UploadError::Read { .. })));
    }
}
