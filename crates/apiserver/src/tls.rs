//! The PKI in the data dir: a CA generated on first start (kept), a serving certificate signed by
//! it for the names and addresses clients use, an admin bearer token, and the kubeconfig that
//! carries the CA and the token. Files holding secrets are written with mode 0600.
//!
//! Clients may also present a certificate signed by the CA (as kind's and k3s's kubeconfigs
//! carry one): it is verified during the handshake, and its subject names the user (common
//! name) and groups (organizations), as kube-apiserver's x509 authenticator reads it.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("{path}: no usable PEM data")]
    BadPem { path: PathBuf },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io { path: path.to_path_buf(), source }
}

/// Write a file readable only by its owner, atomically (temp file + rename).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        f.set_permissions(fs::Permissions::from_mode(0o600)).map_err(io_err(&tmp))?;
        f.write_all(contents).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// The server's credentials, loaded or created.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub admin_token: String,
    /// The PKCS#8 (DER) P-256 key that signs service-account tokens (`sa.key`).
    pub sa_key_der: Vec<u8>,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "ordinal-ca");
    dn.push(DnType::OrganizationName, "ordinal");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    params
}

/// Load the CA and token from `dir` (creating them on first start) and issue a serving
/// certificate for `hosts` (DNS names or IP addresses).
pub fn load_or_create(dir: &Path, hosts: &[String]) -> Result<Pki, TlsError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let ca_key_path = dir.join("ca.key");
    let ca_cert_path = dir.join("ca.crt");
    let token_path = dir.join("admin.token");

    let ca_key = if ca_key_path.exists() && ca_cert_path.exists() {
        let pem = fs::read_to_string(&ca_key_path).map_err(io_err(&ca_key_path))?;
        KeyPair::from_pem(&pem)?
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params().self_signed(&key)?;
        write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
        write_private(&ca_cert_path, cert.pem().as_bytes())?;
        key
    };
    let ca_pem = fs::read_to_string(&ca_cert_path).map_err(io_err(&ca_cert_path))?;

    let admin_token = match fs::read_to_string(&token_path) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => {
            use rand::RngCore;
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let token = bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
            write_private(&token_path, token.as_bytes())?;
            token
        }
    };

    let sa_key_path = dir.join("sa.key");
    let sa_key = match fs::read_to_string(&sa_key_path) {
        Ok(pem) => KeyPair::from_pem(&pem)?,
        Err(_) => {
            let key = KeyPair::generate()?;
            write_private(&sa_key_path, key.serialize_pem().as_bytes())?;
            key
        }
    };

    // The serving certificate is reissued at every start: the listen address may have changed,
    // and clients only pin the CA.
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "ordinal-apiserver");
    params.distinguished_name = dn;
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    for host in hosts {
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(host.clone().try_into()?),
        };
        if !params.subject_alt_names.contains(&san) {
            params.subject_alt_names.push(san);
        }
    }
    let key = KeyPair::generate()?;
    let issuer = Issuer::new(ca_params(), &ca_key);
    let cert = params.signed_by(&key, &issuer)?;
    let cert_pem = cert.pem();
    let key_pem = key.serialize_pem();
    write_private(&dir.join("apiserver.crt"), cert_pem.as_bytes())?;
    write_private(&dir.join("apiserver.key"), key_pem.as_bytes())?;
    Ok(Pki { ca_pem, cert_pem, key_pem, admin_token, sa_key_der: sa_key.serialize_der() })
}

/// A rustls server configuration for the serving certificate (HTTP/1.1 only: exec and attach
/// upgrade the connection, which HTTP/2 cannot).
pub fn server_config(pki: &Pki) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut pki.cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::BadPem { path: "apiserver.crt".into() })?;
    let key = rustls_pemfile::private_key(&mut pki.key_pem.as_bytes())
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::BadPem { path: "apiserver.key".into() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in rustls_pemfile::certs(&mut pki.ca_pem.as_bytes()) {
        let ca = ca.map_err(|_| TlsError::BadPem { path: "ca.crt".into() })?;
        roots.add(ca)?;
    }
    // A certificate is optional (bearer tokens are the other way in), but one that is offered
    // must chain to the CA and be meant for client authentication.
    let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(clients)
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Who a verified client certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The subject's common name.
    pub user: String,
    /// The subject's organizations.
    pub groups: Vec<String>,
}

impl ClientIdentity {
    /// The identity in a certificate (DER), if its subject has a common name.
    pub fn from_der(der: &[u8]) -> Option<ClientIdentity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let user = subject.iter_common_name().next()?.as_str().ok()?.to_string();
        let groups = subject.iter_organization().filter_map(|o| o.as_str().ok()).map(str::to_string).collect();
        Some(ClientIdentity { user, groups })
    }
}

/// The kubeconfig text for `server` (an `https://` URL).
pub fn kubeconfig(pki: &Pki, server: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(pki.ca_pem.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: ordinal
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: admin
  user:
    token: {token}
contexts:
- name: ordinal
  context:
    cluster: ordinal
    user: admin
    namespace: default
current-context: ordinal
",
        token = pki.admin_token
    )
}
