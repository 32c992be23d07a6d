//! What a trace location may point at: the limits of an HTTP(S) download (time, size, redirects), the
//! addresses it may never reach (link-local and cloud metadata endpoints), and the directory a
//! `file://` location or a plain path must stay inside.
//!
//! A Simulation's author chooses the trace URL, while the driver runs with its own service account
//! and network position; these checks stop a trace URL from reading instance credentials or local
//! files that the author could not read otherwise.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::{Action, Attempt};

/// Limits for reading a trace; [`TraceLocationPolicy::default`] is what `trace::read` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLocationPolicy {
    /// When set, `file://` locations and plain paths must resolve (after following symlinks and
    /// `..`) to a file inside this directory.
    pub file_root: Option<PathBuf>,
    /// How long an HTTP(S) connection may take to open.
    pub connect_timeout: Duration,
    /// How long the whole HTTP(S) download may take, redirects and body included.
    pub total_timeout: Duration,
    /// Largest HTTP(S) body accepted, in bytes.
    pub max_bytes: u64,
    /// Redirects followed before giving up (all on the original scheme, host and port).
    pub max_redirects: usize,
}

impl Default for TraceLocationPolicy {
    /// No file root (the driver's own traces can be anywhere); 10 s to connect and 5 minutes in all
    /// (a 1 GiB trace at 4 MB/s); 1 GiB, far above real traces but below a driver pod's memory; 5
    /// redirects, enough for a bucket's alias chain.
    fn default() -> Self {
        TraceLocationPolicy {
            file_root: None,
            connect_timeout: Duration::from_secs(10),
            total_timeout: Duration::from_secs(5 * 60),
            max_bytes: 1 << 30,
            max_redirects: 5,
        }
    }
}

/// Why a trace location was refused before or during the download.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The URL's host, or an address it resolves to, is link-local or a cloud metadata endpoint.
    #[error("refused to connect to {host} ({address}): link-local and cloud metadata addresses are not allowed")]
    ForbiddenAddress { host: String, address: String },
    /// The URL's host is a cloud metadata service's name.
    #[error("refused to connect to {host}: cloud metadata hosts are not allowed")]
    ForbiddenHost { host: String },
    /// A redirect pointed at another scheme, host or port.
    #[error("refused a redirect from {from} to another origin {to}")]
    CrossOriginRedirect { from: String, to: String },
    /// More redirects than the policy allows.
    #[error("refused more than {max} redirects")]
    TooManyRedirects { max: usize },
    /// The declared or received body exceeds the cap.
    #[error("refused a body of {size} bytes: the limit is {max} bytes")]
    TooLarge { size: String, max: u64 },
    /// The download did not finish in time.
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    /// A file location resolves outside the allowed directory.
    #[error("{path} is outside the allowed trace directory {root}")]
    OutsideRoot { path: String, root: String },
}

/// The path a trace location reads from the driver's own file system: a `file://` URL's path (after
/// an optional `localhost` host) or a plain path; None for every other scheme. It is the reader's
/// own parse, so a check made ahead of the driver (the operator's) sees the path the driver reads.
pub fn file_path(location: &str) -> Option<&str> {
    match super::location::scheme(location) {
        None => Some(location),
        Some((scheme, rest)) if scheme == "file" => Some(rest.strip_prefix("localhost").unwrap_or(rest)),
        Some(_) => None,
    }
}

/// Whether connecting to `ip` could reach instance credentials or other host-local services:
/// IPv4 link-local 169.254.0.0/16 (AWS, GCP, Azure metadata at 169.254.169.254), IPv6 link-local
/// fe80::/10, AWS's IPv6 metadata fd00:ec2::254, and the IPv4-mapped forms of the IPv4 ones.
/// Loopback stays allowed: the local control plane and tests serve traces on 127.0.0.1.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    const AWS_IPV6_METADATA: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.is_link_local();
            }
            (v6.segments()[0] & 0xffc0) == 0xfe80 || v6 == AWS_IPV6_METADATA
        }
    }
}

/// Whether `host` (a name from a URL) is a metadata service's well-known name; the resolver check
/// would catch it on the cloud itself, the name check also when the name resolves elsewhere.
pub fn is_forbidden_host_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "metadata.google.internal"
}

/// Checks the host of `url` as written: a forbidden name or IP literal is refused before any
/// connection (literals never reach the resolver, so this is their only check).
pub fn check_url_host(url: &Url) -> Result<(), Refusal> {
    let Some(host) = url.host_str() else { return Ok(()) };
    if is_forbidden_host_name(host) {
        return Err(Refusal::ForbiddenHost { host: host.to_string() });
    }
    // host_str brackets IPv6 literals; the URL parser has already normalised odd IPv4 spellings.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) if is_forbidden_ip(ip) => {
            Err(Refusal::ForbiddenAddress { host: host.to_string(), address: ip.to_string() })
        }
        _ => Ok(()),
    }
}

/// Refuses the whole answer when any resolved address is forbidden: a name that mixes a public and a
/// metadata address is itself suspicious, and refusing is simpler to explain than filtering.
pub fn check_resolved(host: &str, addrs: &[SocketAddr]) -> Result<(), Refusal> {
    match addrs.iter().find(|a| is_forbidden_ip(a.ip())) {
        Some(a) => Err(Refusal::ForbiddenAddress { host: host.to_string(), address: a.ip().to_string() }),
        None => Ok(()),
    }
}

/// A resolver for reqwest that checks what a name resolves to; reqwest connects to exactly the
/// addresses returned here, so a name cannot resolve to a safe address for the check and a
/// metadata address for the connection.
#[derive(Debug, Default)]
pub struct CheckingResolver;

impl Resolve for CheckingResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            if is_forbidden_host_name(&host) {
                return Err(Box::new(Refusal::ForbiddenHost { host }) as Box<dyn std::error::Error + Send + Sync>);
            }
            // Port 0: reqwest replaces it with the URL's port.
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            check_resolved(&host, &addrs)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The origin of a URL as shown in messages and compared between hops: scheme, host and port.
fn origin(url: &Url) -> String {
    let port = url.port_or_known_default().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{}{port}", url.scheme(), url.host_str().unwrap_or(""))
}

/// Follows up to `max` redirects that stay on the first URL's scheme, host and port; anything else
/// is an error rather than a stop, so the caller does not mistake the 3xx for the trace.
pub fn redirect_policy(max: usize) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt: Attempt| -> Action {
        let first = attempt.previous().first().map(origin).unwrap_or_default();
        let next = origin(attempt.url());
        if next != first {
            return attempt.error(Refusal::CrossOriginRedirect { from: first, to: next });
        }
        if attempt.previous().len() > max {
            return attempt.error(Refusal::TooManyRedirects { max });
        }
        attempt.follow()
    })
}

/// The refusal somewhere in an error's source chain (reqwest wraps resolver and redirect errors).
pub fn find_refusal(err: &(dyn std::error::Error + 'static)) -> Option<Refusal> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(refusal) = e.downcast_ref::<Refusal>() {
            return Some(refusal.clone());
        }
        current = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_addresses() {
        for ip in ["169.254.169.254", "169.254.0.1", "fe80::1", "febf::1", "fd00:ec2::254", "::ffff:169.254.169.254"] {
            assert!(is_forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["127.0.0.1", "::1", "10.0.0.1", "8.8.8.8", "fec0::1", "fd00:ec2::253", "169.253.0.1"] {
            assert!(!is_forbidden_ip(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn file_paths() {
        for (location, path) in [
            ("file:///traces/t.sktrace", Some("/traces/t.sktrace")),
            ("FILE://localhost/traces/t", Some("/traces/t")),
            ("/traces/a://b", Some("/traces/a://b")),
            ("t.json", Some("t.json")),
            ("s3://b/k", None),
            ("https://example.com/t", None),
            ("ftp://example.com/t", None),
        ] {
            assert_eq!(file_path(location), path, "{location}");
        }
    }

    #[test]
    fn url_hosts() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]:8080/",
            "http://0xa9fea9fe/",
            "http://METADATA.google.internal./computeMetadata/v1/",
        ] {
            assert!(check_url_host(&Url::parse(url).unwrap()).is_err(), "{url}");
        }
        assert!(check_url_host(&Url::parse("http://127.0.0.1:8080/t").unwrap()).is_ok());
        assert!(check_url_host(&Url::parse("https://example.com/t").unwrap()).is_ok());
    }

    #[test]
    fn resolved_addresses() {
        let ok: SocketAddr = "10.1.2.3:0".parse().unwrap();
        let bad: SocketAddr = "169.254.169.254:0".parse().unwrap();
        assert!(check_resolved("h", &[ok]).is_ok());
        assert_eq!(
            check_resolved("h", &[ok, bad]).unwrap_err().to_string(),
            "refused to connect to h (169.254.169.254): link-local and cloud metadata addresses are not allowed"
        );
    }

    #[tokio::test]
    async fn resolver_refuses_metadata_name_and_allows_localhost() {
        let err = CheckingResolver.resolve("metadata.google.internal".parse().unwrap()).await.err().unwrap();
        assert_eq!(
            find_refusal(err.as_ref()),
            Some(Refusal::ForbiddenHost { host: "metadata.google.internal".into() })
        );
        let addrs: Vec<_> = CheckingResolver.resolve("localhost".parse().unwrap()).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
