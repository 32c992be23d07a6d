//! Reading a trace's bytes from where the Simulation says it is: a file, S3 (or MinIO), or HTTP(S).

use std::io::ErrorKind;
use std::time::Duration;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::error::TraceError;

/// How long to wait for a TCP/TLS connection before calling the server unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest capacity reserved up front from a declared length; a lying header must not reserve gigabytes.
const MAX_PREALLOCATION: u64 = 1 << 30;

/// Bytes of a trace and where they came from.
pub async fn read(location: &str) -> Result<Vec<u8>, TraceError> {
    match scheme(location) {
        None => read_file(location, location).await,
        Some((scheme, rest)) => match scheme.as_str() {
            "file" => {
                // file:///abs/path (empty host) or file://localhost/abs/path; relative paths have no URL form.
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') {
                    let detail = "a file:// URL needs an absolute path (file:///path/to/trace)".to_string();
                    return Err(TraceError::InvalidLocation { location: location.to_string(), detail });
                }
                read_file(location, path).await
            }
            "s3" => read_s3(location, rest).await,
            "http" | "https" => read_http(location).await,
            _ => Err(TraceError::UnsupportedScheme { location: location.to_string(), scheme }),
        },
    }
}

/// Splits "scheme://rest"; None for plain paths (a path may contain "://" further on, so the scheme
/// must look like one: a letter, then letters, digits, '+', '-' or '.').
fn scheme(location: &str) -> Option<(String, &str)> {
    let (scheme, rest) = location.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| (scheme.to_ascii_lowercase(), rest))
}

async fn read_file(location: &str, path: &str) -> Result<Vec<u8>, TraceError> {
    let location = location.to_string();
    tokio::fs::read(path).await.map_err(|e| match e.kind() {
        ErrorKind::NotFound => TraceError::NotFound { location, detail: format!("no such file {path}") },
        ErrorKind::PermissionDenied => TraceError::PermissionDenied { location, detail: format!("cannot read {path}") },
        _ => TraceError::Read { location, detail: format!("{path}: {e}") },
    })
}

/// The innermost cause, which names the actual problem ("Connection refused") rather than the request.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

async fn read_http(location: &str) -> Result<Vec<u8>, TraceError> {
    let read_error = |detail: String| TraceError::Read { location: location.to_string(), detail };
    let client =
        reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).build().map_err(|e| read_error(root_cause(&e)))?;
    let mut response = client.get(location).send().await.map_err(|e| {
        if e.is_connect() || e.is_timeout() {
            TraceError::Unreachable { location: location.to_string(), detail: root_cause(&e) }
        } else if e.is_builder() {
            TraceError::InvalidLocation { location: location.to_string(), detail: root_cause(&e) }
        } else {
            read_error(root_cause(&e))
        }
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(TraceError::HttpStatus { location: location.to_string(), status: status.to_string() });
    }
    // Chunks go straight into one buffer sized from Content-Length: no second copy of a large trace.
    let capacity = response.content_length().unwrap_or(0).min(MAX_PREALLOCATION);
    let mut bytes = Vec::with_capacity(capacity as usize);
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        let detail = format!("while receiving the body: {}", root_cause(&e));
        if e.is_timeout() {
            TraceError::Unreachable { location: location.to_string(), detail }
        } else {
            read_error(detail)
        }
    })? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Splits "bucket/key" (the part after "s3://").
fn s3_bucket_key(location: &str, rest: &str) -> Result<(String, String), TraceError> {
    let invalid = |detail: &str| TraceError::InvalidLocation { location: location.to_string(), detail: detail.into() };
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid("no bucket (expected s3://bucket/key)"));
    }
    if key.is_empty() {
        return Err(invalid("no key (expected s3://bucket/key)"));
    }
    Ok((bucket.to_string(), key.to_string()))
}

async fn read_s3(location: &str, rest: &str) -> Result<Vec<u8>, TraceError> {
    let (bucket, key) = s3_bucket_key(location, rest)?;
    let client = crate::s3::client(None).await;
    let location_owned = || location.to_string();
    let output = client.get_object().bucket(&bucket).key(&key).send().await.map_err(|err| {
        let detail = DisplayErrorContext(&err).to_string();
        match &err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                if e.is_no_such_key() {
                    return TraceError::NotFound {
                        location: location_owned(),
                        detail: format!("bucket '{bucket}' has no key '{key}'"),
                    };
                }
                match e.code() {
                    Some("NoSuchBucket") => TraceError::NotFound {
                        location: location_owned(),
                        detail: format!("bucket '{bucket}' does not exist"),
                    },
                    Some("NoSuchKey") => TraceError::NotFound {
                        location: location_owned(),
                        detail: format!("bucket '{bucket}' has no key '{key}'"),
                    },
                    Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken") => {
                        TraceError::PermissionDenied { location: location_owned(), detail }
                    }
                    _ => TraceError::Read { location: location_owned(), detail },
                }
            }
            SdkError::DispatchFailure(failure) if failure.is_io() || failure.is_timeout() => {
                TraceError::Unreachable { location: location_owned(), detail }
            }
            SdkError::TimeoutError(_) => TraceError::Unreachable { location: location_owned(), detail },
            _ => TraceError::Read { location: location_owned(), detail },
        }
    })?;
    let capacity = output.content_length().unwrap_or(0).clamp(0, MAX_PREALLOCATION as i64);
    let mut bytes = Vec::with_capacity(capacity as usize);
    let mut body = output.body;
    while let Some(chunk) = body.try_next().await.map_err(|e| TraceError::Read {
        location: location_owned(),
        detail: format!("while receiving the body: {}", DisplayErrorContext(&e)),
    })? {
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener as StdListener;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Serves one fixed response to every connection; returns the base URL.
    async fn serve(status_line: &'static str, body: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let body = body.clone();
                tokio::spawn(async move {
                    // Read the request head; the answer does not depend on it.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let header = format!(
                        "HTTP/1.1 {status_line}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = socket.write_all(header.as_bytes()).await;
                    let _ = socket.write_all(&body).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn reads_plain_paths_and_file_urls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sktrace");
        std::fs::write(&path, b"bytes").unwrap();
        let plain = path.to_str().unwrap();
        assert_eq!(read(plain).await.unwrap(), b"bytes");
        assert_eq!(read(&format!("file://{plain}")).await.unwrap(), b"bytes");
        assert_eq!(read(&format!("file://localhost{plain}")).await.unwrap(), b"bytes");
    }

    #[tokio::test]
    async fn missing_file_is_not_found() {
        let err = read("file:///nonexistent/dir/trace.sktrace").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "file:///nonexistent/dir/trace.sktrace: not found: no such file /nonexistent/dir/trace.sktrace"
        );
        let err = read("./no-such-trace.sktrace").await.unwrap_err();
        assert_eq!(err.to_string(), "./no-such-trace.sktrace: not found: no such file ./no-such-trace.sktrace");
    }

    #[tokio::test]
    async fn relative_file_url_is_invalid() {
        let err = read("file://relative/t.sktrace").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "file://relative/t.sktrace: invalid trace location: a file:// URL needs an absolute path \
             (file:///path/to/trace)"
        );
    }

    #[tokio::test]
    async fn directory_is_a_read_error() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().to_str().unwrap().to_string();
        let err = read(&location).await.unwrap_err();
        assert!(matches!(err, TraceError::Read { .. }), "{err}");
        assert!(err.to_string().starts_with(&format!("{location}: cannot read the trace: {location}: ")), "{err}");
    }

    #[tokio::test]
    async fn unsupported_scheme() {
        let err = read("ftp://x").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "ftp://x: unsupported trace location scheme 'ftp' (use file://, s3://, http:// or https://)"
        );
    }

    #[test]
    fn scheme_detection() {
        assert_eq!(scheme("S3://b/k"), Some(("s3".to_string(), "b/k")));
        assert_eq!(scheme("./dir/a://b"), None);
        assert_eq!(scheme("/abs/path"), None);
        assert_eq!(scheme("1x://y"), None);
    }

    #[tokio::test]
    async fn s3_url_needs_bucket_and_key() {
        for (location, detail) in [
            ("s3://bucket", "no key (expected s3://bucket/key)"),
            ("s3://bucket/", "no key (expected s3://bucket/key)"),
            ("s3:///key", "no bucket (expected s3://bucket/key)"),
        ] {
            let err = read(location).await.unwrap_err();
            assert_eq!(err.to_string(), format!("{location}: invalid trace location: {detail}"));
        }
        assert_eq!(s3_bucket_key("s3://b/a/b/c", "b/a/b/c").unwrap(), ("b".to_string(), "a/b/c".to_string()));
    }

    #[tokio::test]
    async fn closed_port_is_unreachable() {
        let port = {
            let listener = StdListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let location = format!("http://127.0.0.1:{port}/trace.sktrace");
        let err = read(&location).await.unwrap_err();
        assert!(matches!(err, TraceError::Unreachable { .. }), "{err}");
        assert!(err.to_string().starts_with(&format!("{location}: unreachable: ")), "{err}");
        assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
    }

    #[tokio::test]
    async fn http_404_names_the_status() {
        let base = serve("404 Not Found", b"no such trace".to_vec()).await;
        let location = format!("{base}/missing.sktrace");
        let err = read(&location).await.unwrap_err();
        assert_eq!(err.to_string(), format!("{location}: HTTP status 404 Not Found"));
    }

    #[tokio::test]
    async fn http_read_returns_the_body() {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let base = serve("200 OK", body.clone()).await;
        assert_eq!(read(&format!("{base}/t.sktrace")).await.unwrap(), body);
    }

    #[tokio::test]
    async fn http_read_of_a_trace_parses() {
        let bytes = super::super::tests::fixture("cronjob.sktrace");
        let base = serve("200 OK", bytes).await;
        let location = format!("{base}/cronjob.sktrace");
        let trace = super::super::Trace::parse(read(&location).await.unwrap(), &location).unwrap();
        assert_eq!(trace.event_count(), 3);
        assert_eq!(trace.origin(), location);
    }
}
