//! The S3 client the driver uses for traces and artifacts.

/// A client from the standard credential chain; `region` overrides the chain's region. Path-style
/// addressing lets AWS_ENDPOINT_URL point at MinIO, which has no per-bucket host names. Requests
/// are retried with backoff (standard retry mode, 5 attempts).
pub async fn client(region: Option<&str>) -> aws_sdk_s3::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_string()));
    }
    let sdk_config = loader.load().await;
    // Transient failures (throttling, 5xx, dropped connections) are retried with exponential
    // backoff and jitter, five attempts per request.
    let retry = aws_config::retry::RetryConfig::standard().with_max_attempts(5);
    let s3_config = aws_sdk_s3::config::Builder::from(&sdk_config).force_path_style(true).retry_config(retry).build();
    aws_sdk_s3::Client::from_conf(s3_config)
}
