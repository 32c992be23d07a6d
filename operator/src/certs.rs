//! The operator's own CA and the serving certificates of the drivers' webhooks, without
//! cert-manager.
//!
//! Everything here is plain data and pure functions: the caller passes the current time in and
//! stores the results in Secrets; nothing reads the clock or talks to Kubernetes. The API server
//! verifies a driver's webhook with the `caBundle` of its MutatingWebhookConfiguration, so CA
//! rotation follows Kyverno: a new CA joins the bundle next to the old one while the old one is
//! still valid, and certificates the old CA issued keep verifying until they expire. Serving
//! certificates never outlive the CA that issued them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::ByteString;
use k8s_openapi::jiff::Timestamp;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// Secret key of the current CA certificate (PEM).
pub const KEY_CA_CRT: &str = "ca.crt";
/// Secret key of the current CA's private key (PEM, PKCS#8).
pub const KEY_CA_KEY: &str = "ca.key";
/// Secret key of the CA bundle (current CA first, then older CAs), as written for `caBundle`.
pub const KEY_CA_BUNDLE: &str = "ca-bundle.crt";
/// Secret key of the older CA certificates still in the bundle (PEM, concatenated).
pub const KEY_PREVIOUS_CA: &str = "previous-ca.crt";
/// Secret key of a serving certificate (PEM), as `kubernetes.io/tls` Secrets name it.
pub const KEY_TLS_CRT: &str = "tls.crt";
/// Secret key of a serving certificate's private key (PEM, PKCS#8).
pub const KEY_TLS_KEY: &str = "tls.key";

/// Common name of every CA the operator generates.
pub const CA_COMMON_NAME: &str = "rehearsal-operator CA";

/// How far in the past certificates start, so a node whose clock lags the operator's still
/// accepts them (client-go's self-signed certificates use the same hour).
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

const DAY: u64 = 86_400;

const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";

/// Why a certificate could not be made, loaded or trusted.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A validity or renewal setting is unusable; the message names the flag.
    #[error("invalid certificate settings: {0}")]
    Settings(String),
    /// A certificate time falls outside what X.509 (and this module) can express.
    #[error("{what} is out of range: {reason}")]
    TimeRange {
        /// Which instant.
        what: &'static str,
        /// Why it does not fit.
        reason: String,
    },
    /// rcgen could not generate a key or sign a certificate.
    #[error("cannot {action}: {source}")]
    Generate {
        /// What was being made.
        action: String,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// The CA asked to issue a certificate has already expired.
    #[error("the operator CA expired at {not_after}; rotate it before issuing certificates")]
    CaExpired {
        /// When the CA expired.
        not_after: Timestamp,
    },
    /// A Service or namespace name cannot be part of a DNS name.
    #[error("{what} {name:?} is not a DNS label (lowercase letters, digits and '-', at most 63 characters)")]
    InvalidName {
        /// "service" or "namespace".
        what: &'static str,
        /// The offending name.
        name: String,
    },
    /// A required Secret key is absent.
    #[error("{what} is missing")]
    Missing {
        /// The Secret key, quoted.
        what: String,
    },
    /// A certificate, key or Secret value cannot be used.
    #[error("{what} is not usable: {reason}")]
    Invalid {
        /// The Secret key or the argument that was garbled.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A serving certificate does not verify against a CA bundle for its DNS name.
    #[error("the serving certificate does not verify for {name} against the CA bundle: {reason}")]
    Untrusted {
        /// The DNS name the API server would use.
        name: String,
        /// The verifier's complaint.
        reason: String,
    },
}

/// How long CAs and serving certificates live, and how early they are replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertSettings {
    /// Lifetime of a new CA (`--ca-validity`).
    pub ca_validity: Duration,
    /// A CA is replaced this long before it expires.
    pub ca_renew_before: Duration,
    /// Lifetime of a new serving certificate, capped at its CA's expiry (`--serving-cert-validity`).
    pub serving_validity: Duration,
    /// A serving certificate is reissued this long before it expires.
    pub serving_renew_before: Duration,
}

impl Default for CertSettings {
    fn default() -> Self {
        CertSettings {
            ca_validity: Duration::from_secs(3650 * DAY),
            ca_renew_before: Duration::from_secs(365 * DAY),
            serving_validity: Duration::from_secs(90 * DAY),
            serving_renew_before: Duration::from_secs(30 * DAY),
        }
    }
}

impl CertSettings {
    /// Checks the settings make sense together; the error names the flags involved.
    pub fn validate(&self) -> Result<(), CertError> {
        let bad = |msg: String| Err(CertError::Settings(msg));
        if self.ca_validity.is_zero() {
            return bad("--ca-validity must be greater than 0".into());
        }
        if self.serving_validity.is_zero() {
            return bad("--serving-cert-validity must be greater than 0".into());
        }
        if self.ca_renew_before >= self.ca_validity {
            return bad(format!(
                "the CA renewal margin ({}) must be shorter than --ca-validity ({}), or every new CA would be due \
                 at once",
                show(self.ca_renew_before),
                show(self.ca_validity)
            ));
        }
        if self.serving_renew_before >= self.serving_validity {
            return bad(format!(
                "the serving-certificate renewal margin ({}) must be shorter than --serving-cert-validity ({}), \
                 or every new serving certificate would be due at once",
                show(self.serving_renew_before),
                show(self.serving_validity)
            ));
        }
        // A serving certificate is cut off at its CA's expiry. If it were renewed earlier than the
        // CA is, a certificate issued in between would be due the moment it is issued, and the
        // driver's Secret would be rewritten on every reconcile until the CA rotates.
        if self.serving_renew_before > self.ca_renew_before {
            return bad(format!(
                "the serving-certificate renewal margin ({}) must not be longer than the CA renewal margin ({}): \
                 serving certificates end with their CA, so they would be due for renewal as soon as they are issued",
                show(self.serving_renew_before),
                show(self.ca_renew_before)
            ));
        }
        Ok(())
    }
}

/// Whether a certificate ending at `not_after` is due: true once `now` is within `renew_before`
/// of the end (the boundary included) and, of course, after it.
pub fn needs_renewal(not_after: Timestamp, now: Timestamp, renew_before: Duration) -> bool {
    match now.checked_add(renew_before) {
        Ok(due_at_or_before) => due_at_or_before >= not_after,
        // Past the last representable instant: later than any certificate's end.
        Err(_) => true,
    }
}

/// One parsed certificate: its PEM as stored, its DER and its end.
#[derive(Clone, PartialEq, Eq)]
struct CertPem {
    pem: String,
    der: Vec<u8>,
    not_after: Timestamp,
}

impl fmt::Debug for CertPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The PEM text is long and public anyway; the end is what one looks for.
        f.debug_struct("CertPem").field("not_after", &self.not_after).finish_non_exhaustive()
    }
}

/// The operator's CA: certificate, private key and expiry.
#[derive(Clone, PartialEq, Eq)]
pub struct Ca {
    cert: CertPem,
    key_pem: String,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs.
        f.debug_struct("Ca").field("not_after", &self.cert.not_after).field("key_pem", &"[elided]").finish()
    }
}

impl Ca {
    /// Generates a self-signed CA valid from shortly before `now` for `settings.ca_validity`.
    pub fn generate(now: Timestamp, settings: &CertSettings) -> Result<Ca, CertError> {
        let not_before = cert_time(now.checked_sub(CLOCK_SKEW), "the CA's start (now minus clock skew)")?;
        let not_after = cert_time(now.checked_add(settings.ca_validity), "the CA's end (now plus --ca-validity)")?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CA_COMMON_NAME);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, not_before, not_after)?;
        let key = KeyPair::generate().map_err(generate_error("generate the CA key"))?;
        let cert = params.self_signed(&key).map_err(generate_error("self-sign the CA certificate"))?;
        let parsed = parse_one(&cert.pem(), "the generated CA certificate")?;
        Ok(Ca { cert: parsed.cert, key_pem: key.serialize_pem() })
    }

    /// Loads a CA from its certificate and private key (PEM), as stored in the operator's Secret.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, CertError> {
        Self::from_pem_named(cert_pem, "the CA certificate", key_pem, "the CA private key")
    }

    fn from_pem_named(cert_pem: &str, cert_what: &str, key_pem: &str, key_what: &str) -> Result<Ca, CertError> {
        let parsed = parse_one(cert_pem, cert_what)?;
        if !parsed.is_ca {
            return Err(invalid(cert_what, "not a CA certificate (basic constraints do not say CA)"));
        }
        let key = parse_key(key_pem, key_what)?;
        check_pair(&parsed, &key, key_what)?;
        Ok(Ca { cert: parsed.cert, key_pem: key.serialize_pem() })
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert.pem
    }

    /// The CA's private key (PEM, PKCS#8).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// When the CA certificate expires.
    pub fn not_after(&self) -> Timestamp {
        self.cert.not_after
    }
}

/// A driver webhook's serving certificate, private key and expiry.
#[derive(Clone, PartialEq, Eq)]
pub struct ServingCert {
    cert: CertPem,
    key_pem: String,
}

impl fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs.
        f.debug_struct("ServingCert").field("not_after", &self.cert.not_after).field("key_pem", &"[elided]").finish()
    }
}

/// Issues a serving certificate for Service `service` in `namespace`, signed by `ca`, valid for
/// `settings.serving_validity` but never past the CA's own end.
pub fn issue_serving(
    ca: &Ca,
    service: &str,
    namespace: &str,
    now: Timestamp,
    settings: &CertSettings,
) -> Result<ServingCert, CertError> {
    check_label("service", service)?;
    check_label("namespace", namespace)?;
    if ca.not_after() <= now {
        return Err(CertError::CaExpired { not_after: ca.not_after() });
    }
    let not_before = cert_time(now.checked_sub(CLOCK_SKEW), "the serving certificate's start (now minus clock skew)")?;
    // An overflowing end is simply capped by the CA's end, which is representable.
    let not_after = match now.checked_add(settings.serving_validity) {
        Ok(end) if end < ca.not_after() => cert_time(Ok(end), "the serving certificate's end")?,
        _ => ca.not_after(),
    };
    let svc_name = server_name(service, namespace);
    let mut params = CertificateParams::new(dns_names(service, namespace))
        .map_err(generate_error(format!("build the serving certificate for {svc_name}")))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, svc_name.as_str());
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // With several CAs of the same name in the bundle, the key identifier tells verifiers which
    // one signed.
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, not_before, not_after)?;

    let ca_key = parse_key(&ca.key_pem, "the CA private key")?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert.pem, ca_key)
        .map_err(generate_error("read the CA certificate as an issuer"))?;
    let key = KeyPair::generate().map_err(generate_error("generate the serving key"))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(generate_error(format!("sign the serving certificate for {svc_name}")))?;
    let parsed = parse_one(&cert.pem(), "the issued serving certificate")?;
    Ok(ServingCert { cert: parsed.cert, key_pem: key.serialize_pem() })
}

impl ServingCert {
    /// Loads a serving certificate and its private key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ServingCert, CertError> {
        Self::from_pem_named(cert_pem, "the serving certificate", key_pem, "the serving private key")
    }

    fn from_pem_named(
        cert_pem: &str,
        cert_what: &str,
        key_pem: &str,
        key_what: &str,
    ) -> Result<ServingCert, CertError> {
        let parsed = parse_one(cert_pem, cert_what)?;
        let key = parse_key(key_pem, key_what)?;
        check_pair(&parsed, &key, key_what)?;
        Ok(ServingCert { cert: parsed.cert, key_pem: key.serialize_pem() })
    }

    /// The certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert.pem
    }

    /// The private key (PEM, PKCS#8).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// When the certificate expires.
    pub fn not_after(&self) -> Timestamp {
        self.cert.not_after
    }

    /// Secret data for the driver: `tls.crt`, `tls.key`, and `ca.crt` holding `ca_bundle_pem`
    /// (pass `CaSet::bundle_pem`, so clients of the driver can trust it too).
    pub fn to_secret_data(&self, ca_bundle_pem: &str) -> BTreeMap<String, ByteString> {
        BTreeMap::from([
            (KEY_TLS_CRT.to_owned(), ByteString(self.cert.pem.clone().into_bytes())),
            (KEY_TLS_KEY.to_owned(), ByteString(self.key_pem.clone().into_bytes())),
            (KEY_CA_CRT.to_owned(), ByteString(ca_bundle_pem.as_bytes().to_vec())),
        ])
    }

    /// Reads `tls.crt` and `tls.key` back from a driver's Secret (`ca.crt` is not needed).
    pub fn from_secret_data(data: &BTreeMap<String, ByteString>) -> Result<ServingCert, CertError> {
        let (cert, cert_what) = secret_text(data, KEY_TLS_CRT)?;
        let (key, key_what) = secret_text(data, KEY_TLS_KEY)?;
        Self::from_pem_named(cert, &cert_what, key, &key_what)
    }

    /// Checks what the API server will check: the certificate chains to a CA in `ca_bundle_pem`,
    /// is valid at `now`, allows server authentication and names `<service>.<namespace>.svc`.
    /// Use it to decide whether a stored certificate can stay (say, after the CA Secret was lost).
    pub fn verify(&self, ca_bundle_pem: &str, service: &str, namespace: &str, now: Timestamp) -> Result<(), CertError> {
        let name = server_name(service, namespace);
        let untrusted = |reason: String| CertError::Untrusted { name: name.clone(), reason };
        let mut roots = rustls::RootCertStore::empty();
        for ca in parse_many(ca_bundle_pem, "the CA bundle")? {
            roots.add(CertificateDer::from(ca.cert.der)).map_err(|e| invalid("the CA bundle", e))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| untrusted(e.to_string()))?;
        let server = ServerName::try_from(name.clone()).map_err(|e| untrusted(e.to_string()))?;
        let secs = u64::try_from(now.as_second()).map_err(|_| untrusted(format!("{now} is before 1970")))?;
        let end_entity = CertificateDer::from(self.cert.der.as_slice());
        verifier
            .verify_server_cert(&end_entity, &[], &server, &[], UnixTime::since_unix_epoch(Duration::from_secs(secs)))
            .map(|_| ())
            .map_err(|e| untrusted(e.to_string()))
    }
}

/// The current CA and the certificates of older CAs that are kept in the bundle until they expire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaSet {
    current: Ca,
    /// Newest first; never holds the current certificate or duplicates.
    previous: Vec<CertPem>,
}

impl CaSet {
    /// A set with only `current`.
    pub fn new(current: Ca) -> CaSet {
        CaSet { current, previous: Vec::new() }
    }

    /// A set with a freshly generated CA, for the first start.
    pub fn generate(now: Timestamp, settings: &CertSettings) -> Result<CaSet, CertError> {
        Ok(CaSet::new(Ca::generate(now, settings)?))
    }

    /// The CA that issues new serving certificates.
    pub fn current(&self) -> &Ca {
        &self.current
    }

    /// PEM certificates of the older CAs, newest first (expired ones linger until `rotate_if_due`).
    pub fn previous(&self) -> impl Iterator<Item = &str> {
        self.previous.iter().map(|c| c.pem.as_str())
    }

    /// Replaces the current CA once it is within `ca_renew_before` of its end, keeping its
    /// certificate in the bundle while it is valid, and drops expired older certificates. The
    /// flag is true when anything changed, i.e. the Secret and every `caBundle` must be rewritten.
    pub fn rotate_if_due(self, now: Timestamp, settings: &CertSettings) -> Result<(CaSet, bool), CertError> {
        let CaSet { current, previous } = self;
        let before = previous.len();
        let mut previous: Vec<CertPem> = previous.into_iter().filter(|c| c.not_after > now).collect();
        let mut changed = previous.len() != before;
        let current = if needs_renewal(current.not_after(), now, settings.ca_renew_before) {
            let fresh = Ca::generate(now, settings)?;
            // Certificates the old CA issued stay trusted for as long as it is valid.
            if current.cert.not_after > now {
                previous.insert(0, current.cert);
            }
            changed = true;
            fresh
        } else {
            current
        };
        let mut set = CaSet { current, previous };
        set.dedup();
        Ok((set, changed))
    }

    /// Every unexpired CA certificate, current first, as one PEM text for `caBundle` (raw PEM
    /// bytes; k8s-openapi's `ByteString` does the base64).
    pub fn bundle_pem(&self, now: Timestamp) -> String {
        let certs: Vec<&CertPem> =
            std::iter::once(&self.current.cert).chain(&self.previous).filter(|c| c.not_after > now).collect();
        join_unique(certs)
    }

    /// Secret data: `ca.crt`, `ca.key`, `ca-bundle.crt` (current and all kept older certificates,
    /// as pruned by the last `rotate_if_due`) and `previous-ca.crt` when there are older ones.
    pub fn to_secret_data(&self) -> BTreeMap<String, ByteString> {
        let mut data = BTreeMap::from([
            (KEY_CA_CRT.to_owned(), ByteString(self.current.cert.pem.clone().into_bytes())),
            (KEY_CA_KEY.to_owned(), ByteString(self.current.key_pem.clone().into_bytes())),
            (
                KEY_CA_BUNDLE.to_owned(),
                ByteString(join_unique(std::iter::once(&self.current.cert).chain(&self.previous)).into_bytes()),
            ),
        ]);
        if !self.previous.is_empty() {
            data.insert(KEY_PREVIOUS_CA.to_owned(), ByteString(join_unique(&self.previous).into_bytes()));
        }
        data
    }

    /// Reads a set back from the operator's Secret; `ca-bundle.crt` is derived, so it is not read.
    pub fn from_secret_data(data: &BTreeMap<String, ByteString>) -> Result<CaSet, CertError> {
        let (cert, cert_what) = secret_text(data, KEY_CA_CRT)?;
        let (key, key_what) = secret_text(data, KEY_CA_KEY)?;
        let current = Ca::from_pem_named(cert, &cert_what, key, &key_what)?;
        let previous = match data.get(KEY_PREVIOUS_CA) {
            None => Vec::new(),
            Some(_) => {
                let (text, what) = secret_text(data, KEY_PREVIOUS_CA)?;
                let parsed = parse_many(text, &what)?;
                if let Some(not_ca) = parsed.iter().position(|p| !p.is_ca) {
                    return Err(invalid(&what, format!("certificate {} is not a CA certificate", not_ca + 1)));
                }
                parsed.into_iter().map(|p| p.cert).collect()
            }
        };
        let mut set = CaSet { current, previous };
        set.dedup();
        Ok(set)
    }

    fn dedup(&mut self) {
        let mut seen = vec![self.current.cert.der.clone()];
        self.previous.retain(|c| {
            let new = !seen.contains(&c.der);
            if new {
                seen.push(c.der.clone());
            }
            new
        });
    }
}

/// The name the API server dials for a service reference.
fn server_name(service: &str, namespace: &str) -> String {
    format!("{service}.{namespace}.svc")
}

fn dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        server_name(service, namespace),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Service names are DNS-1035 labels and namespaces DNS-1123 labels; accepting the union keeps a
/// dot or an upper-case letter from producing names the API server would never dial.
fn check_label(what: &'static str, name: &str) -> Result<(), CertError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok { Ok(()) } else { Err(CertError::InvalidName { what, name: name.to_owned() }) }
}

/// Turns a computed instant into a certificate time: whole seconds, within what X.509 encodes
/// (UTCTime starts in 1950; GeneralizedTime ends in 9999).
fn cert_time(t: Result<Timestamp, k8s_openapi::jiff::Error>, what: &'static str) -> Result<Timestamp, CertError> {
    const FIRST: i64 = -631_152_000; // 1950-01-01T00:00:00Z
    const LAST: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let t = t.map_err(|e| CertError::TimeRange { what, reason: e.to_string() })?;
    let secs = t.as_second();
    if !(FIRST..=LAST).contains(&secs) {
        return Err(CertError::TimeRange { what, reason: format!("{t} is not between 1950 and 9999") });
    }
    Timestamp::from_second(secs).map_err(|e| CertError::TimeRange { what, reason: e.to_string() })
}

fn set_validity(params: &mut CertificateParams, not_before: Timestamp, not_after: Timestamp) -> Result<(), CertError> {
    // rcgen takes `time::OffsetDateTime`; `SystemTime` bridges jiff and time without another
    // dependency, and `cert_time` keeps both instants well inside either crate's range.
    params.not_before = system_time(not_before, "the certificate's start")?.into();
    params.not_after = system_time(not_after, "the certificate's end")?.into();
    Ok(())
}

fn system_time(t: Timestamp, what: &'static str) -> Result<SystemTime, CertError> {
    let secs = t.as_second();
    let magnitude = Duration::from_secs(secs.unsigned_abs());
    let st = if secs >= 0 { UNIX_EPOCH.checked_add(magnitude) } else { UNIX_EPOCH.checked_sub(magnitude) };
    st.ok_or_else(|| CertError::TimeRange { what, reason: format!("{t} does not fit the system clock's type") })
}

fn generate_error(action: impl Into<String>) -> impl FnOnce(rcgen::Error) -> CertError {
    let action = action.into();
    move |source| CertError::Generate { action, source }
}

fn invalid(what: &str, reason: impl fmt::Display) -> CertError {
    CertError::Invalid { what: what.to_owned(), reason: reason.to_string() }
}

/// A Secret value as UTF-8 text, with the label errors use.
fn secret_text<'a>(data: &'a BTreeMap<String, ByteString>, key: &str) -> Result<(&'a str, String), CertError> {
    let what = format!("Secret key {key:?}");
    let value = data.get(key).ok_or_else(|| CertError::Missing { what: what.clone() })?;
    let text = std::str::from_utf8(&value.0).map_err(|e| invalid(&what, format!("not UTF-8 text ({e})")))?;
    Ok((text, what))
}

/// A certificate with what the checks need besides the stored form.
struct Parsed {
    cert: CertPem,
    is_ca: bool,
    spki: Vec<u8>,
}

/// The `BEGIN`/`END CERTIFICATE` blocks of a PEM text, in order; an unterminated block is
/// returned as is so parsing reports it.
fn pem_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(PEM_BEGIN) {
        let block = &rest[start..];
        match block.find(PEM_END) {
            Some(end) => {
                let end = end + PEM_END.len();
                blocks.push(&block[..end]);
                rest = &block[end..];
            }
            None => {
                blocks.push(block);
                break;
            }
        }
    }
    blocks
}

fn parse_block(block: &str, what: &str) -> Result<Parsed, CertError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(block.as_bytes())
        .map_err(|e| invalid(what, format!("not a PEM certificate ({e})")))?;
    let cert = pem.parse_x509().map_err(|e| invalid(what, format!("not an X.509 certificate ({e})")))?;
    let not_after = Timestamp::from_second(cert.validity().not_after.timestamp())
        .map_err(|e| invalid(what, format!("its end is out of range ({e})")))?;
    Ok(Parsed {
        cert: CertPem { pem: format!("{}\n", block.trim()), der: pem.contents.clone(), not_after },
        is_ca: cert.is_ca(),
        spki: cert.public_key().raw.to_vec(),
    })
}

fn parse_one(text: &str, what: &str) -> Result<Parsed, CertError> {
    match pem_blocks(text).as_slice() {
        [block] => parse_block(block, what),
        [] => Err(invalid(what, "no PEM certificate found")),
        blocks => Err(invalid(what, format!("expected one PEM certificate, found {}", blocks.len()))),
    }
}

/// Any number of certificates; an empty text is an empty list, other text without one is an error.
fn parse_many(text: &str, what: &str) -> Result<Vec<Parsed>, CertError> {
    let blocks = pem_blocks(text);
    if blocks.is_empty() && !text.trim().is_empty() {
        return Err(invalid(what, "no PEM certificate found"));
    }
    blocks.iter().enumerate().map(|(i, block)| parse_block(block, &format!("{what} (certificate {})", i + 1))).collect()
}

fn parse_key(key_pem: &str, what: &str) -> Result<KeyPair, CertError> {
    KeyPair::from_pem(key_pem).map_err(|e| invalid(what, format!("not a PEM PKCS#8 private key ({e})")))
}

/// A key that does not belong to the certificate would sign certificates no one can verify.
fn check_pair(parsed: &Parsed, key: &KeyPair, key_what: &str) -> Result<(), CertError> {
    if key.subject_public_key_info() == parsed.spki {
        Ok(())
    } else {
        Err(invalid(key_what, "the private key does not belong to the certificate"))
    }
}

fn join_unique<'a>(certs: impl IntoIterator<Item = &'a CertPem>) -> String {
    let mut seen: Vec<&[u8]> = Vec::new();
    let mut out = String::new();
    for cert in certs {
        if !seen.contains(&cert.der.as_slice()) {
            seen.push(&cert.der);
            out.push_str(&cert.pem);
        }
    }
    out
}

/// A duration the way the flags are usually written: whole days or hours when it is one.
fn show(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 {
        format!("{d:?}")
    } else if secs != 0 && secs.is_multiple_of(DAY) {
        format!("{}d", secs / DAY)
    } else if secs != 0 && secs.is_multiple_of(3600) {
        format!("{}h", secs / 3600)
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
    use x509_parser::extensions::GeneralName;

    use super::*;

    const SVC: &str = "sim-a-driver";
    const NS: &str = "rehearsal-sim-a";

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn days(n: u64) -> Duration {
        Duration::from_secs(n * DAY)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// rustls reads the clock to check validity; tests pin it to their `now`.
    #[derive(Debug)]
    struct FixedTime(Timestamp);

    impl rustls::time_provider::TimeProvider for FixedTime {
        fn current_time(&self) -> Option<UnixTime> {
            Some(UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(self.0.as_second()).ok()?)))
        }
    }

    /// A full TLS handshake in memory: a rustls server presenting `cert`, a rustls client that
    /// trusts only `bundle`, dialing `name` at instant `now`; then one message each way.
    fn handshake(cert: &ServingCert, bundle: &str, name: &str, now: Timestamp) -> Result<(), rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let chain = CertificateDer::pem_slice_iter(cert.cert_pem().as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem().as_bytes()).unwrap();
        let server_config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(bundle.as_bytes()) {
            roots.add(ca.unwrap()).unwrap();
        }
        let client_config = ClientConfig::builder_with_details(provider, Arc::new(FixedTime(now)))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server_name = ServerName::try_from(name.to_owned()).unwrap();
        let mut client = ClientConnection::new(Arc::new(client_config), server_name).unwrap();
        let mut server = ServerConnection::new(Arc::new(server_config)).unwrap();

        client.writer().write_all(b"ping").unwrap();
        let mut got = Vec::new();
        for _ in 0..20 {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            let mut rd = wire.as_slice();
            while !rd.is_empty() {
                server.read_tls(&mut rd).unwrap();
                server.process_new_packets()?;
            }
            let mut wire = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut wire).unwrap();
            }
            let mut rd = wire.as_slice();
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
                client.process_new_packets()?;
            }
            let mut buf = [0u8; 16];
            if let Ok(n) = server.reader().read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
            if !client.is_handshaking() && got == b"ping" {
                return Ok(());
            }
        }
        panic!("the handshake did not finish (server got {got:?})");
    }

    /// Refused for want of a trusted issuer: every CA here has the same name, so the verifier
    /// finds a candidate by name and then reports its signature as wrong.
    fn is_untrusted_issuer(err: &rustls::Error) -> bool {
        matches!(
            err,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer | rustls::CertificateError::BadSignature
            )
        )
    }

    fn data(pairs: &[(&str, &[u8])]) -> BTreeMap<String, ByteString> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), ByteString(v.to_vec()))).collect()
    }

    fn text(data: &BTreeMap<String, ByteString>, key: &str) -> String {
        String::from_utf8(data[key].0.clone()).unwrap()
    }

    fn count_certs(pem: &str) -> usize {
        pem.matches(PEM_BEGIN).count()
    }

    #[test]
    fn default_settings_match_the_documented_values_and_validate() {
        let s = CertSettings::default();
        assert_eq!(s.ca_validity, days(3650));
        assert_eq!(s.ca_renew_before, days(365));
        assert_eq!(s.serving_validity, days(90));
        assert_eq!(s.serving_renew_before, days(30));
        s.validate().unwrap();
    }

    #[test]
    fn settings_validation_names_the_flags() {
        let ok = CertSettings::default();
        let msg = |s: CertSettings| s.validate().unwrap_err().to_string();

        let m = msg(CertSettings { ca_validity: Duration::ZERO, ..ok });
        assert!(m.contains("--ca-validity must be greater than 0"), "{m}");
        let m = msg(CertSettings { serving_validity: Duration::ZERO, ..ok });
        assert!(m.contains("--serving-cert-validity must be greater than 0"), "{m}");
        let m = msg(CertSettings { ca_renew_before: days(3650), ..ok });
        assert!(m.contains("the CA renewal margin (3650d) must be shorter than --ca-validity (3650d)"), "{m}");
        let m = msg(CertSettings { serving_renew_before: days(91), ..ok });
        assert!(
            m.contains(
                "the serving-certificate renewal margin (91d) must be shorter than --serving-cert-validity (90d)"
            ),
            "{m}"
        );
        let m = msg(CertSettings { ca_renew_before: days(7), ..ok });
        assert!(m.contains("renewal margin (30d) must not be longer than the CA renewal margin (7d)"), "{m}");
        let m = msg(CertSettings { ca_validity: secs(7200), ca_renew_before: secs(7200), ..ok });
        assert!(m.contains("(2h)"), "{m}");
        // Equal renewal margins are fine: the CA rotates first.
        CertSettings { ca_renew_before: days(30), ..ok }.validate().unwrap();
    }

    #[test]
    fn needs_renewal_boundaries() {
        let end = at("2027-01-31T00:00:00Z");
        let before = days(30);
        assert!(!needs_renewal(end, at("2027-01-01T00:00:00Z") - secs(1), before));
        assert!(needs_renewal(end, at("2027-01-01T00:00:00Z"), before), "exactly renew_before left: due");
        assert!(needs_renewal(end, at("2027-01-15T00:00:00Z"), before));
        assert!(needs_renewal(end, end + secs(1), before), "expired: due");
        assert!(!needs_renewal(end, end - secs(1), Duration::ZERO));
        assert!(needs_renewal(end, end, Duration::ZERO));
        assert!(needs_renewal(end, at("2026-01-01T00:00:00Z"), Duration::MAX), "overflow saturates to due");
    }

    #[test]
    fn generated_ca_is_a_ca_with_the_requested_lifetime() {
        let now = at("2026-11-01T12:00:00.75Z");
        let ca = Ca::generate(now, &CertSettings::default()).unwrap();
        assert_eq!(ca.not_after(), at("2036-10-29T12:00:00Z"), "3650 days, whole seconds");
        let (_, pem) = x509_parser::pem::parse_x509_pem(ca.cert_pem().as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        assert!(cert.is_ca());
        assert_eq!(cert.subject().to_string(), format!("CN={CA_COMMON_NAME}"));
        let usage = cert.key_usage().unwrap().unwrap().value;
        assert!(usage.key_cert_sign() && usage.crl_sign());
        assert_eq!(cert.validity().not_before.timestamp(), at("2026-11-01T11:00:00Z").as_second(), "an hour early");
        assert!(format!("{ca:?}").contains("[elided]") && !format!("{ca:?}").contains("PRIVATE"));
    }

    #[test]
    fn serving_cert_verifies_over_tls_only_for_its_names() {
        let now = at("2026-11-01T00:00:00Z");
        let settings = CertSettings::default();
        let cas = CaSet::generate(now, &settings).unwrap();
        let cert = issue_serving(cas.current(), SVC, NS, now, &settings).unwrap();
        let bundle = cas.bundle_pem(now);
        assert_eq!(cert.not_after(), now + days(90));

        for name in
            [format!("{SVC}.{NS}.svc"), SVC.to_owned(), format!("{SVC}.{NS}"), format!("{SVC}.{NS}.svc.cluster.local")]
        {
            handshake(&cert, &bundle, &name, now).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        cert.verify(&bundle, SVC, NS, now).unwrap();

        let err = handshake(&cert, &bundle, &format!("other.{NS}.svc"), now).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })
                    | rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
            ),
            "{err:?}"
        );
        assert!(matches!(cert.verify(&bundle, "other", NS, now), Err(CertError::Untrusted { .. })));

        // Past its end the same certificate is refused.
        let late = cert.not_after() + secs(1);
        assert!(handshake(&cert, &bundle, &format!("{SVC}.{NS}.svc"), late).is_err());
        assert!(cert.verify(&bundle, SVC, NS, late).is_err());
    }

    #[test]
    fn serving_cert_is_refused_by_an_unrelated_ca() {
        let now = at("2026-11-01T00:00:00Z");
        let settings = CertSettings::default();
        let ours = Ca::generate(now, &settings).unwrap();
        let stranger = CaSet::generate(now, &settings).unwrap();
        let cert = issue_serving(&ours, SVC, NS, now, &settings).unwrap();
        let err = handshake(&cert, &stranger.bundle_pem(now), &format!("{SVC}.{NS}.svc"), now).unwrap_err();
        assert!(is_untrusted_issuer(&err), "{err:?}");
        assert!(cert.verify(&stranger.bundle_pem(now), SVC, NS, now).is_err());
    }

    #[test]
    fn serving_cert_has_the_sans_and_server_auth_and_ends_with_its_ca() {
        let now = at("2026-11-01T00:00:00Z");
        let settings = CertSettings {
            ca_validity: days(60),
            ca_renew_before: days(30),
            serving_validity: days(90),
            serving_renew_before: days(10),
        };
        settings.validate().unwrap();
        let ca = Ca::generate(now, &settings).unwrap();
        let cert = issue_serving(&ca, SVC, NS, now, &settings).unwrap();
        assert_eq!(cert.not_after(), ca.not_after(), "capped at the CA's end");

        let (_, pem) = x509_parser::pem::parse_x509_pem(cert.cert_pem().as_bytes()).unwrap();
        let x509 = pem.parse_x509().unwrap();
        let sans: Vec<&str> = x509
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .filter_map(|n| if let GeneralName::DNSName(d) = n { Some(*d) } else { None })
            .collect();
        assert_eq!(
            sans,
            [SVC.to_owned(), format!("{SVC}.{NS}"), format!("{SVC}.{NS}.svc"), format!("{SVC}.{NS}.svc.cluster.local")]
        );
        assert!(x509.extended_key_usage().unwrap().unwrap().value.server_auth);
        assert!(!x509.is_ca());
        // Issued ten days before the CA ends: already within serving_renew_before, as it must be
        // once the CA is that close to its end (the CA itself is long due by then).
        let late = ca.not_after() - days(10);
        let cert = issue_serving(&ca, SVC, NS, late, &settings).unwrap();
        assert!(needs_renewal(cert.not_after(), late, settings.serving_renew_before));
        assert!(needs_renewal(ca.not_after(), late, settings.ca_renew_before));
    }

    #[test]
    fn issuing_refuses_an_expired_ca_and_bad_names() {
        let now = at("2026-11-01T00:00:00Z");
        let settings = CertSettings::default();
        let ca = Ca::generate(now, &settings).unwrap();
        let err = issue_serving(&ca, SVC, NS, ca.not_after(), &settings).unwrap_err();
        assert!(matches!(err, CertError::CaExpired { .. }), "{err}");
        for (svc, ns, what) in [("a.b", NS, "service"), ("", NS, "service"), (SVC, "Upper", "namespace")] {
            let err = issue_serving(&ca, svc, ns, now, &settings).unwrap_err();
            assert!(err.to_string().starts_with(what), "{err}");
        }
        let err = Ca::generate(now, &CertSettings { ca_validity: Duration::MAX, ..settings }).unwrap_err();
        assert!(err.to_string().contains("--ca-validity"), "{err}");
        let err = Ca::generate(at("9999-01-01T00:00:00Z"), &settings).unwrap_err();
        assert!(matches!(err, CertError::TimeRange { .. }), "{err}");
    }

    #[test]
    fn rotation_keeps_certificates_of_the_old_ca_working() {
        let settings = CertSettings::default();
        let t0 = at("2026-11-01T00:00:00Z");
        let cas = CaSet::generate(t0, &settings).unwrap();
        let old_ca = cas.current().clone();

        // Not due yet: nothing changes.
        let (cas, changed) = cas.rotate_if_due(t0 + days(3000), &settings).unwrap();
        assert!(!changed);
        assert_eq!(cas.current(), &old_ca);

        // A replay running with a certificate from the old CA when rotation comes due.
        let t1 = old_ca.not_after() - days(300);
        let old_cert = issue_serving(&old_ca, SVC, NS, t1 - days(10), &settings).unwrap();
        let (cas, rotated) = cas.rotate_if_due(t1, &settings).unwrap();
        assert!(rotated);
        assert_ne!(cas.current(), &old_ca);
        assert_eq!(cas.previous().collect::<Vec<_>>(), [old_ca.cert_pem()]);
        let bundle = cas.bundle_pem(t1);
        assert_eq!(count_certs(&bundle), 2);
        assert!(bundle.starts_with(cas.current().cert_pem()), "current CA first");

        let dns = format!("{SVC}.{NS}.svc");
        handshake(&old_cert, &bundle, &dns, t1).unwrap();
        old_cert.verify(&bundle, SVC, NS, t1).unwrap();
        let new_cert = issue_serving(cas.current(), SVC, NS, t1, &settings).unwrap();
        handshake(&new_cert, &bundle, &dns, t1).unwrap();
        new_cert.verify(&bundle, SVC, NS, t1).unwrap();
        // Without the old CA in the bundle the running replay would break: that is why it stays.
        let only_new = CaSet::new(cas.current().clone()).bundle_pem(t1);
        assert!(is_untrusted_issuer(&handshake(&old_cert, &only_new, &dns, t1).unwrap_err()));

        // Rotating again right away changes nothing.
        let (cas, changed) = cas.rotate_if_due(t1, &settings).unwrap();
        assert!(!changed);
        assert_eq!(count_certs(&cas.bundle_pem(t1)), 2);
    }

    #[test]
    fn an_expired_previous_ca_leaves_the_bundle() {
        let settings = CertSettings::default();
        let t0 = at("2026-11-01T00:00:00Z");
        let old = CaSet::generate(t0, &settings).unwrap();
        let old_end = old.current().not_after();
        let (cas, _) = old.rotate_if_due(old_end - days(100), &settings).unwrap();
        assert_eq!(count_certs(&cas.bundle_pem(old_end - secs(1))), 2);

        let after = old_end + secs(1);
        let bundle = cas.bundle_pem(after);
        assert_eq!(bundle, cas.current().cert_pem(), "only the current CA is left");
        let (cas, changed) = cas.rotate_if_due(after, &settings).unwrap();
        assert!(changed, "dropping the expired certificate must be written back");
        assert_eq!(cas.previous().count(), 0);
        assert!(!cas.to_secret_data().contains_key(KEY_PREVIOUS_CA));
        let (_, changed) = cas.rotate_if_due(after, &settings).unwrap();
        assert!(!changed);
    }

    #[test]
    fn an_expired_current_ca_is_replaced_and_not_kept() {
        let settings = CertSettings::default();
        let cas = CaSet::generate(at("2026-11-01T00:00:00Z"), &settings).unwrap();
        let later = cas.current().not_after() + days(1);
        let (cas, rotated) = cas.rotate_if_due(later, &settings).unwrap();
        assert!(rotated);
        assert_eq!(cas.previous().count(), 0);
        assert_eq!(count_certs(&cas.bundle_pem(later)), 1);
        assert!(cas.current().not_after() > later);
    }

    #[test]
    fn ca_and_ca_set_round_trip_through_pem_and_secret_data() {
        let settings = CertSettings::default();
        let t0 = at("2026-11-01T00:00:00Z");
        let cas = CaSet::generate(t0, &settings).unwrap();
        let ca = cas.current();
        assert_eq!(&Ca::from_pem(ca.cert_pem(), ca.key_pem()).unwrap(), ca);
        // Surrounding whitespace and CRLF line ends, as editors and kubectl may leave them.
        let crlf_cert = format!("\r\n{}\r\n", ca.cert_pem().replace('\n', "\r\n"));
        assert_eq!(Ca::from_pem(&crlf_cert, ca.key_pem()).unwrap().not_after(), ca.not_after());

        let t1 = ca.not_after() - days(200);
        let (cas, _) = cas.rotate_if_due(t1, &settings).unwrap();
        let data = cas.to_secret_data();
        assert_eq!(
            data.keys().map(String::as_str).collect::<Vec<_>>(),
            [KEY_CA_BUNDLE, KEY_CA_CRT, KEY_CA_KEY, KEY_PREVIOUS_CA]
        );
        assert_eq!(text(&data, KEY_CA_BUNDLE), cas.bundle_pem(t1));
        assert_eq!(text(&data, KEY_CA_CRT), cas.current().cert_pem());
        let back = CaSet::from_secret_data(&data).unwrap();
        assert_eq!(back, cas);
        assert_eq!(back.to_secret_data(), data);

        // A set without older CAs has no previous-ca.crt and still round-trips.
        let single = CaSet::generate(t0, &settings).unwrap();
        assert_eq!(CaSet::from_secret_data(&single.to_secret_data()).unwrap(), single);
    }

    #[test]
    fn the_bundle_has_no_duplicates() {
        let settings = CertSettings::default();
        let t0 = at("2026-11-01T00:00:00Z");
        let older = Ca::generate(t0, &settings).unwrap();
        let current = Ca::generate(t0, &settings).unwrap();
        let previous = format!("{}{}{}", current.cert_pem(), older.cert_pem(), older.cert_pem());
        let cas = CaSet::from_secret_data(&data(&[
            (KEY_CA_CRT, current.cert_pem().as_bytes()),
            (KEY_CA_KEY, current.key_pem().as_bytes()),
            (KEY_PREVIOUS_CA, previous.as_bytes()),
        ]))
        .unwrap();
        assert_eq!(cas.previous().collect::<Vec<_>>(), [older.cert_pem()]);
        assert_eq!(cas.bundle_pem(t0), format!("{}{}", current.cert_pem(), older.cert_pem()));
    }

    #[test]
    fn garbage_is_rejected_naming_the_key() {
        let settings = CertSettings::default();
        let t0 = at("2026-11-01T00:00:00Z");
        let ca = Ca::generate(t0, &settings).unwrap();
        let other = Ca::generate(t0, &settings).unwrap();
        let serving = issue_serving(&ca, SVC, NS, t0, &settings).unwrap();
        let (crt, key) = (ca.cert_pem().as_bytes(), ca.key_pem().as_bytes());
        let err = |d: BTreeMap<String, ByteString>| CaSet::from_secret_data(&d).unwrap_err().to_string();

        let m = err(data(&[(KEY_CA_CRT, crt)]));
        assert_eq!(m, r#"Secret key "ca.key" is missing"#);
        let m = err(data(&[(KEY_CA_KEY, key)]));
        assert_eq!(m, r#"Secret key "ca.crt" is missing"#);
        let m = err(data(&[(KEY_CA_CRT, b"hello"), (KEY_CA_KEY, key)]));
        assert!(m.starts_with(r#"Secret key "ca.crt" is not usable: no PEM certificate"#), "{m}");
        let broken = ca.cert_pem().replace("MI", "AA");
        let m = err(data(&[(KEY_CA_CRT, broken.as_bytes()), (KEY_CA_KEY, key)]));
        assert!(m.starts_with(r#"Secret key "ca.crt" is not usable"#), "{m}");
        let m = err(data(&[(KEY_CA_CRT, &[0xff, 0xfe]), (KEY_CA_KEY, key)]));
        assert!(m.starts_with(r#"Secret key "ca.crt" is not usable: not UTF-8"#), "{m}");
        let m = err(data(&[
            (KEY_CA_CRT, crt),
            (KEY_CA_KEY, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        ]));
        assert!(m.starts_with(r#"Secret key "ca.key" is not usable: not a PEM PKCS#8 private key"#), "{m}");
        let m = err(data(&[(KEY_CA_CRT, crt), (KEY_CA_KEY, other.key_pem().as_bytes())]));
        assert!(m.contains(r#"Secret key "ca.key" is not usable: the private key does not belong"#), "{m}");
        let m = err(data(&[(KEY_CA_CRT, serving.cert_pem().as_bytes()), (KEY_CA_KEY, serving.key_pem().as_bytes())]));
        assert!(m.contains(r#"Secret key "ca.crt" is not usable: not a CA certificate"#), "{m}");
        let two = format!("{}{}", ca.cert_pem(), other.cert_pem());
        let m = err(data(&[(KEY_CA_CRT, two.as_bytes()), (KEY_CA_KEY, key)]));
        assert!(m.contains("expected one PEM certificate, found 2"), "{m}");
        let m = err(data(&[(KEY_CA_CRT, crt), (KEY_CA_KEY, key), (KEY_PREVIOUS_CA, b"junk")]));
        assert!(m.starts_with(r#"Secret key "previous-ca.crt" is not usable"#), "{m}");
        let prev = format!("{}{}", other.cert_pem(), serving.cert_pem());
        let m = err(data(&[(KEY_CA_CRT, crt), (KEY_CA_KEY, key), (KEY_PREVIOUS_CA, prev.as_bytes())]));
        assert!(m.contains("certificate 2 is not a CA certificate"), "{m}");
        // An empty previous-ca.crt is the same as none.
        let ok = CaSet::from_secret_data(&data(&[(KEY_CA_CRT, crt), (KEY_CA_KEY, key), (KEY_PREVIOUS_CA, b"")]));
        assert_eq!(ok.unwrap().previous().count(), 0);

        let m = Ca::from_pem("nope", ca.key_pem()).unwrap_err().to_string();
        assert!(m.starts_with("the CA certificate is not usable"), "{m}");
        let m = Ca::from_pem(ca.cert_pem(), "nope").unwrap_err().to_string();
        assert!(m.starts_with("the CA private key is not usable"), "{m}");
    }

    #[test]
    fn serving_cert_secret_data_round_trips() {
        let settings = CertSettings::default();
        let t0 = at("2026-11-01T00:00:00Z");
        let cas = CaSet::generate(t0, &settings).unwrap();
        let cert = issue_serving(cas.current(), SVC, NS, t0, &settings).unwrap();
        let bundle = cas.bundle_pem(t0);
        let data = cert.to_secret_data(&bundle);
        assert_eq!(data.keys().map(String::as_str).collect::<Vec<_>>(), [KEY_CA_CRT, KEY_TLS_CRT, KEY_TLS_KEY]);
        assert_eq!(text(&data, KEY_CA_CRT), bundle);
        let back = ServingCert::from_secret_data(&data).unwrap();
        assert_eq!(back, cert);
        assert_eq!(ServingCert::from_pem(cert.cert_pem(), cert.key_pem()).unwrap(), cert);

        let mut missing = data.clone();
        missing.remove(KEY_TLS_KEY);
        let m = ServingCert::from_secret_data(&missing).unwrap_err().to_string();
        assert_eq!(m, r#"Secret key "tls.key" is missing"#);
        let mut garbled = data.clone();
        garbled.insert(KEY_TLS_CRT.to_owned(), ByteString(b"garbage".to_vec()));
        let m = ServingCert::from_secret_data(&garbled).unwrap_err().to_string();
        assert!(m.starts_with(r#"Secret key "tls.crt" is not usable"#), "{m}");
    }
}
