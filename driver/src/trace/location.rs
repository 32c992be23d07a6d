//! Reading a trace's bytes from where the Simulation says it is: a file, S3 (or MinIO), or HTTP(S),
//! within the limits of a [`TraceLocationPolicy`] (see `guard` for what is refused and why).

use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::error::TraceError;
use super::guard::{self, Refusal, TraceLocationPolicy};

/// Largest capacity reserved up front from a declared length; a lying header must not reserve gigabytes.
const MAX_PREALLOCATION: u64 = 1 << 30;

/// Bytes of a trace, under the default policy (no file root; HTTP(S) limits and address checks on).
pub async fn read(location: &str) -> Result<Vec<u8>, TraceError> {
    read_with_policy(location, &TraceLocationPolicy::default()).await
}

/// Bytes of a trace, refusing what `policy` does not allow with an error naming the location.
pub async fn read_with_policy(location: &str, policy: &TraceLocationPolicy) -> Result<Vec<u8>, TraceError> {
    match scheme(location) {
        None => read_file(location, location, policy).await,
        Some((scheme, rest)) => match scheme.as_str() {
            "file" => {
                // file:///abs/path (empty host) or file://localhost/abs/path; relative paths have no URL form.
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') {
                    let detail = "a file:// URL needs an absolute path (file:///path/to/trace)".to_string();
                    return Err(TraceError::InvalidLocation { location: location.to_string(), detail });
                }
                read_file(location, path, policy).await
            }
            "s3" => read_s3(location, rest).await,
            "http" | "https" => read_http(location, policy).await,
            _ => Err(TraceError::UnsupportedScheme { location: location.to_string(), scheme }),
        },
    }
}

/// Splits "scheme://rest"; None for plain paths (a path may contain "://" further on, so the scheme
/// must look like one: a letter, then letters, digits, '+', '-' or '.').
pub(super) fn scheme(location: &str) -> Option<(String, &str)> {
    let (scheme, rest) = location.split_once("://")?;
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| (scheme.to_ascii_lowercase(), rest))
}

fn file_error(location: &str, path: &str, e: std::io::Error) -> TraceError {
    let location = location.to_string();
    match e.kind() {
        ErrorKind::NotFound => TraceError::NotFound { location, detail: format!("no such file {path}") },
        ErrorKind::PermissionDenied => TraceError::PermissionDenied { location, detail: format!("cannot read {path}") },
        _ => TraceError::Read { location, detail: format!("{path}: {e}") },
    }
}

async fn read_file(location: &str, path: &str, policy: &TraceLocationPolicy) -> Result<Vec<u8>, TraceError> {
    let Some(root) = &policy.file_root else {
        return tokio::fs::read(path).await.map_err(|e| file_error(location, path, e));
    };
    // Both sides canonicalised, so `..`, symlinks (in the path or the root) and relative paths are
    // compared as the real files they name; the file read is the canonical one, so a symlink swapped
    // in between check and read cannot point elsewhere (only a component above it could).
    let root = tokio::fs::canonicalize(root).await.map_err(|e| TraceError::Read {
        location: location.to_string(),
        detail: format!("the allowed trace directory {}: {e}", root.display()),
    })?;
    let real = tokio::fs::canonicalize(path).await.map_err(|e| file_error(location, path, e))?;
    if !real.starts_with(&root) {
        let refusal = Refusal::OutsideRoot { path: path.to_string(), root: root.display().to_string() };
        return Err(TraceError::PermissionDenied { location: location.to_string(), detail: refusal.to_string() });
    }
    tokio::fs::read(Path::new(&real)).await.map_err(|e| file_error(location, path, e))
}

/// The innermost cause, which names the actual problem ("Connection refused") rather than the request.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// A refusal as the TraceError a caller sees: address and host refusals say the location is not
/// allowed, limits say the read failed, a timeout says the server did not answer in time.
fn refusal_error(location: &str, refusal: Refusal) -> TraceError {
    let location = location.to_string();
    let detail = refusal.to_string();
    match refusal {
        Refusal::ForbiddenAddress { .. } | Refusal::ForbiddenHost { .. } => {
            TraceError::InvalidLocation { location, detail }
        }
        Refusal::OutsideRoot { .. } => TraceError::PermissionDenied { location, detail },
        Refusal::Timeout(_) => TraceError::Unreachable { location, detail },
        Refusal::CrossOriginRedirect { .. } | Refusal::TooManyRedirects { .. } | Refusal::TooLarge { .. } => {
            TraceError::Read { location, detail }
        }
    }
}

/// A reqwest error as a TraceError; only reqwest's own descriptions are used, which name the
/// failure (connection refused, bad chunk) and never quote the response body.
fn http_error(location: &str, e: &reqwest::Error, context: &str) -> TraceError {
    if let Some(refusal) = guard::find_refusal(e) {
        return refusal_error(location, refusal);
    }
    let detail = format!("{context}{}", root_cause(e));
    let location = location.to_string();
    if e.is_connect() || e.is_timeout() {
        TraceError::Unreachable { location, detail }
    } else if e.is_builder() {
        TraceError::InvalidLocation { location, detail }
    } else {
        TraceError::Read { location, detail }
    }
}

async fn read_http(location: &str, policy: &TraceLocationPolicy) -> Result<Vec<u8>, TraceError> {
    let url = reqwest::Url::parse(location)
        .map_err(|e| TraceError::InvalidLocation { location: location.to_string(), detail: e.to_string() })?;
    // IP literals never reach the resolver, so they are checked here, before any connection.
    guard::check_url_host(&url).map_err(|r| refusal_error(location, r))?;
    let client = reqwest::Client::builder()
        .connect_timeout(policy.connect_timeout)
        .timeout(policy.total_timeout)
        .redirect(guard::redirect_policy(policy.max_redirects))
        .dns_resolver(Arc::new(guard::CheckingResolver))
        .build()
        .map_err(|e| http_error(location, &e, ""))?;
    // reqwest's timeout covers the request and body; this one also bounds anything around them.
    tokio::time::timeout(policy.total_timeout, download(location, &client, url, policy.max_bytes))
        .await
        .unwrap_or_else(|_| Err(refusal_error(location, Refusal::Timeout(policy.total_timeout))))
}

async fn download(
    location: &str,
    client: &reqwest::Client,
    url: reqwest::Url,
    max_bytes: u64,
) -> Result<Vec<u8>, TraceError> {
    let mut response = client.get(url).send().await.map_err(|e| http_error(location, &e, ""))?;
    let status = response.status();
    let declared = response.content_length();
    if !status.is_success() {
        // The status and the declared length only: an error body may hold secrets or markup.
        let length = declared.map_or_else(|| "no content length".to_string(), |n| format!("content length {n}"));
        return Err(TraceError::HttpStatus { location: location.to_string(), status: format!("{status} ({length})") });
    }
    if let Some(n) = declared.filter(|&n| n > max_bytes) {
        return Err(refusal_error(location, Refusal::TooLarge { size: n.to_string(), max: max_bytes }));
    }
    // Chunks go straight into one buffer sized from Content-Length: no second copy of a large trace.
    let capacity = declared.unwrap_or(0).min(MAX_PREALLOCATION);
    let mut bytes = Vec::with_capacity(capacity as usize);
    while let Some(chunk) =
        response.chunk().await.map_err(|e| http_error(location, &e, "while receiving the body: "))?
    {
        // Checked per chunk: a server without (or lying about) Content-Length stops at the cap.
        if (bytes.len() + chunk.len()) as u64 > max_bytes {
            let size = format!("more than {max_bytes}");
            return Err(refusal_error(location, Refusal::TooLarge { size, max: max_bytes }));
        }
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

    use std::time::Duration;

    use super::*;

    /// Serves every connection on `ip` with the raw response `answer` gives for the request path
    /// (None: read the request and never answer); returns the base URL.
    async fn serve_raw<F>(ip: &str, answer: F) -> String
    where
        F: Fn(&str) -> Option<Vec<u8>> + Send + Sync + 'static,
    {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = std::sync::Arc::new(answer);
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    match answer(&path) {
                        Some(response) => {
                            let _ = socket.write_all(&response).await;
                            let _ = socket.shutdown().await;
                        }
                        None => tokio::time::sleep(Duration::from_secs(3600)).await,
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    fn response(status_line: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {status_line}\r\nContent-Length: {}\r\n{extra_headers}Connection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(body);
        out
    }

    /// Serves one fixed response to every connection; returns the base URL.
    async fn serve(status_line: &'static str, body: Vec<u8>) -> String {
        serve_raw("127.0.0.1", move |_| Some(response(status_line, "", &body))).await
    }

    /// Small limits so tests hit them quickly.
    fn small_policy() -> TraceLocationPolicy {
        TraceLocationPolicy {
            file_root: None,
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_millis(500),
            max_bytes: 1000,
            max_redirects: 2,
        }
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
        assert_eq!(err.to_string(), format!("{location}: HTTP status 404 Not Found (content length 13)"));
    }

    #[tokio::test]
    async fn http_error_body_is_never_quoted() {
        let base = serve("404 Not Found", b"secret-token-abc123".to_vec()).await;
        let location = format!("{base}/t");
        let err = read(&location).await.unwrap_err().to_string();
        assert!(err.contains("404") && err.contains("content length 19"), "{err}");
        assert!(!err.contains("secret"), "{err}");
    }

    #[tokio::test]
    async fn same_host_redirect_is_followed() {
        let base = serve_raw("127.0.0.1", |path| {
            Some(match path {
                "/old" => response("302 Found", "Location: /new\r\n", b""),
                _ => response("200 OK", "", b"trace"),
            })
        })
        .await;
        assert_eq!(read_with_policy(&format!("{base}/old"), &small_policy()).await.unwrap(), b"trace");
    }

    #[tokio::test]
    async fn redirect_to_another_host_is_refused() {
        let other = serve("200 OK", b"other".to_vec()).await.replace("127.0.0.1", "127.0.0.2");
        let base =
            serve_raw("127.0.0.1", move |_| Some(response("302 Found", &format!("Location: {other}/t\r\n"), b"")))
                .await;
        let location = format!("{base}/t");
        let err = read_with_policy(&location, &small_policy()).await.unwrap_err();
        assert!(matches!(err, TraceError::Read { .. }), "{err}");
        assert!(err.to_string().starts_with(&format!("{location}: ")), "{err}");
        assert!(err.to_string().contains("refused a redirect from http://127.0.0.1:"), "{err}");
        assert!(err.to_string().contains("to another origin http://127.0.0.2:"), "{err}");
    }

    #[tokio::test]
    async fn redirect_loop_is_refused() {
        let base = serve_raw("127.0.0.1", |_| Some(response("302 Found", "Location: /again\r\n", b""))).await;
        let err = read_with_policy(&format!("{base}/t"), &small_policy()).await.unwrap_err();
        assert!(err.to_string().contains("refused more than 2 redirects"), "{err}");
    }

    #[tokio::test]
    async fn body_over_the_cap_is_refused() {
        let policy = small_policy();
        // Declared too large: refused from the header.
        let base = serve("200 OK", vec![b'x'; 1001]).await;
        let err = read_with_policy(&format!("{base}/t"), &policy).await.unwrap_err();
        assert!(err.to_string().contains("refused a body of 1001 bytes: the limit is 1000 bytes"), "{err}");
        // No Content-Length (read to close): refused while streaming.
        let base = serve_raw("127.0.0.1", |_| {
            let mut out = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
            out.extend(vec![b'x'; 5000]);
            Some(out)
        })
        .await;
        let err = read_with_policy(&format!("{base}/t"), &policy).await.unwrap_err();
        assert!(err.to_string().contains("refused a body of more than 1000 bytes"), "{err}");
        // Exactly at the cap is fine.
        let base = serve("200 OK", vec![b'x'; 1000]).await;
        assert_eq!(read_with_policy(&format!("{base}/t"), &policy).await.unwrap().len(), 1000);
    }

    #[tokio::test]
    async fn metadata_address_is_refused_without_connecting() {
        let mut policy = small_policy();
        // A connection attempt would take this long to fail; the refusal must come before it.
        policy.connect_timeout = Duration::from_secs(60);
        policy.total_timeout = Duration::from_secs(60);
        let started = std::time::Instant::now();
        for location in ["http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "https://[fe80::1]/t"] {
            let err = read_with_policy(location, &policy).await.unwrap_err();
            assert!(matches!(err, TraceError::InvalidLocation { .. }), "{err}");
            assert!(err.to_string().starts_with(&format!("{location}: invalid trace location: refused")), "{err}");
        }
        let err = read("http://metadata.google.internal/computeMetadata/v1/").await.unwrap_err();
        assert!(err.to_string().contains("cloud metadata hosts are not allowed"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn silent_server_hits_the_timeout() {
        let base = serve_raw("127.0.0.1", |_| None).await;
        let location = format!("{base}/t");
        let started = std::time::Instant::now();
        let err = read_with_policy(&location, &small_policy()).await.unwrap_err();
        assert!(matches!(err, TraceError::Unreachable { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn localhost_name_is_allowed() {
        let base = serve("200 OK", b"ok".to_vec()).await.replace("127.0.0.1", "localhost");
        // localhost may resolve to ::1 first; reqwest falls back to 127.0.0.1.
        assert_eq!(read_with_policy(&format!("{base}/t"), &small_policy()).await.unwrap(), b"ok");
    }

    #[tokio::test]
    async fn file_root_confines_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("traces");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("t.sktrace"), b"inside").unwrap();
        std::fs::write(dir.path().join("secret"), b"outside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link")).unwrap();
        let policy = TraceLocationPolicy { file_root: Some(root.clone()), ..TraceLocationPolicy::default() };
        let inside = root.join("t.sktrace");
        assert_eq!(read_with_policy(inside.to_str().unwrap(), &policy).await.unwrap(), b"inside");
        assert_eq!(read_with_policy(&format!("file://{}", inside.display()), &policy).await.unwrap(), b"inside");
        for path in [root.join("../secret"), root.join("link"), dir.path().join("secret")] {
            let location = format!("file://{}", path.display());
            let err = read_with_policy(&location, &policy).await.unwrap_err();
            assert!(matches!(err, TraceError::PermissionDenied { .. }), "{err}");
            assert!(
                err.to_string().contains(&format!("{} is outside the allowed trace directory", path.display())),
                "{err}"
            );
        }
        // Without a root the same escape is read: the default stays permissive for the CLI.
        assert_eq!(read(root.join("link").to_str().unwrap()).await.unwrap(), b"outside");
        let err = read_with_policy(root.join("missing").to_str().unwrap(), &policy).await.unwrap_err();
        assert!(matches!(err, TraceError::NotFound { .. }), "{err}");
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
