//! OpenFlow over TLS (OVS `ssl:` controller targets, OpenFlow 1.3.5
//! §6.3.3): switches present a certificate signed by the configured CA,
//! and may be held to the dpid their certificate names.
//!
//! The driver writes straight to a TCP socket (`try_write`, see
//! [`super::writer`]), so TLS is terminated in front of it: each accepted
//! TLS connection gets a private loopback TCP pair, the driver serves one
//! end as it serves any switch, and a proxy task copies between the TLS
//! stream and the other end. With dpid binding the proxy holds back the
//! switch's FEATURES_REPLY until its datapath id matches the certificate,
//! so a switch with another's certificate never reaches the registry.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
pub use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

/// How long a switch has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The OpenFlow listener's TLS settings.
#[derive(Clone)]
pub struct OpenflowTls {
    acceptor: TlsAcceptor,
    /// A switch's certificate CN must name its dpid.
    pub bind_dpid: bool,
}

impl std::fmt::Debug for OpenflowTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenflowTls")
            .field("bind_dpid", &self.bind_dpid)
            .finish_non_exhaustive()
    }
}

fn certs(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the {what} {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "no certificate in {} (expected PEM)",
        path.display()
    );
    Ok(certs)
}

/// A TLS acceptor serving the chain in `cert` (PEM) with `key`, that
/// accepts only peers with a certificate the CA certificates in `ca`
/// signed (no certificate, no connection). `what` names the listener in
/// errors. For OpenFlow and OVSDB alike (OVS `set-ssl` gives both the
/// same key, certificate and CA).
pub fn mutual_acceptor(
    cert: &Path,
    key: &Path,
    ca: &Path,
    what: &str,
) -> anyhow::Result<TlsAcceptor> {
    let chain = certs(cert, &format!("{what} TLS certificate"))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the {what} TLS private key {}", key.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca_cert in certs(ca, &format!("{what} TLS CA certificate"))? {
        roots
            .add(ca_cert)
            .with_context(|| format!("a CA certificate of {}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .with_context(|| format!("the {what} TLS CA"))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .with_context(|| format!("the {what} TLS certificate and key do not go together"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// OVSDB over TLS: the listener's acceptor, and the connector for `ssl:`
/// targets, both with the same certificate and CA (as OVS's `set-ssl`).
#[derive(Clone)]
pub struct OvsdbTls {
    pub acceptor: TlsAcceptor,
    pub connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for OvsdbTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OvsdbTls").finish_non_exhaustive()
    }
}

impl OvsdbTls {
    pub fn new(cert: &Path, key: &Path, ca: &Path) -> anyhow::Result<Self> {
        let acceptor = mutual_acceptor(cert, key, ca, "OVSDB")?;
        let chain = certs(cert, "OVSDB TLS certificate")?;
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("reading the OVSDB TLS private key {}", key.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for ca_cert in certs(ca, "OVSDB TLS CA certificate")? {
            roots
                .add(ca_cert)
                .with_context(|| format!("a CA certificate of {}", ca.display()))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .context("the OVSDB TLS CA")?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(webpki)))
            .with_client_auth_cert(chain, key)
            .context("the OVSDB TLS certificate and key do not go together")?;
        Ok(OvsdbTls {
            acceptor,
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }
}

/// A host's certificate must chain to the CA, whatever name it carries:
/// OVS's certificates (`ovs-pki`) name no address, and OVS checks only
/// the chain too.
#[derive(Debug)]
struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(rustls::client::danger::ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

impl OpenflowTls {
    /// Serves the chain in `cert` with `key`, and accepts switches whose
    /// certificate the CA certificates in `ca` signed (no certificate, no
    /// connection).
    pub fn new(cert: &Path, key: &Path, ca: &Path, bind_dpid: bool) -> anyhow::Result<Self> {
        Ok(OpenflowTls {
            acceptor: mutual_acceptor(cert, key, ca, "OpenFlow")?,
            bind_dpid,
        })
    }

    /// Completes the handshake with the switch at `peer` and returns the
    /// end of a loopback pair the driver serves; the other end is proxied
    /// to the TLS stream until either side closes. `None`: refused (logged).
    pub async fn accept(&self, stream: TcpStream, peer: SocketAddr) -> Option<TcpStream> {
        let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await
        {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                warn!(%peer, error = ?e.to_string(), "OpenFlow TLS handshake failed");
                return None;
            }
            Err(_) => {
                warn!(%peer, "OpenFlow TLS handshake timed out");
                return None;
            }
        };
        let cn = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| subject_cn(leaf.as_ref()));
        info!(%peer, certificate = ?cn, "OpenFlow TLS switch accepted");
        let bound = match (self.bind_dpid, cn) {
            (false, _) => None,
            (true, Some(cn)) => Some(cn),
            (true, None) => {
                warn!(%peer, "OpenFlow TLS certificate has no CN to bind a dpid to");
                return None;
            }
        };
        let (inner, outer) = match loopback_pair().await {
            Ok(pair) => pair,
            Err(e) => {
                warn!(%peer, error = %e, "no loopback pair for a TLS switch");
                return None;
            }
        };
        tokio::spawn(proxy(tls, outer, peer, bound));
        Some(inner)
    }
}

/// Two connected TCP sockets on loopback, only ever seen by this process:
/// a listener on a fresh port takes the connection whose source is ours.
async fn loopback_pair() -> std::io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let ours = TcpStream::connect(listener.local_addr()?).await?;
    let source = ours.local_addr()?;
    for _ in 0..16 {
        let (theirs, from) = listener.accept().await?;
        if from == source {
            return Ok((theirs, ours));
        }
    }
    Err(std::io::Error::other("loopback pair: strangers connected"))
}

/// Whether a certificate CN names `dpid`: its 16 hex digits (case and
/// colons aside), e.g. `0000000000000001`, `00:00:00:00:00:00:00:01` or
/// `s1 dpid 0000000000000001`.
pub fn cn_names_dpid(cn: &str, dpid: u64) -> bool {
    let plain: String = cn
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    plain.contains(&format!("{dpid:016x}"))
}

async fn proxy(
    tls: TlsStream<TcpStream>,
    inner: TcpStream,
    peer: SocketAddr,
    bound: Option<String>,
) {
    let (mut tls_rd, mut tls_wr) = tokio::io::split(tls);
    let (mut in_rd, mut in_wr) = inner.into_split();
    let up = async {
        if let Some(cn) = &bound {
            // Frame by frame until the FEATURES_REPLY (type 6 in every
            // version, datapath id at bytes 8..16) is checked.
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 16 * 1024];
            'check: loop {
                let n = tls_rd.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                while buf.len() >= 4 {
                    let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
                    if len < 8 {
                        return;
                    }
                    if buf.len() < len {
                        break;
                    }
                    if buf[1] == 6 && len >= 16 {
                        let dpid = u64::from_be_bytes(buf[8..16].try_into().unwrap_or_default());
                        if !cn_names_dpid(cn, dpid) {
                            warn!(%peer, certificate = ?cn, dpid = format_args!("{dpid:016x}"),
                                  "OpenFlow TLS switch claims a dpid its certificate does not name; closing");
                            return;
                        }
                        break 'check;
                    }
                    let frame: Vec<u8> = buf.drain(..len).collect();
                    if in_wr.write_all(&frame).await.is_err() {
                        return;
                    }
                }
                // No message is longer than 64 KiB: a peer that sends more
                // without a FEATURES_REPLY is not a switch.
                if buf.len() > 1 << 17 {
                    return;
                }
            }
            if in_wr.write_all(&buf).await.is_err() {
                return;
            }
        }
        let _ = tokio::io::copy(&mut tls_rd, &mut in_wr).await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut in_rd, &mut tls_wr).await;
        let _ = tls_wr.shutdown().await;
    };
    // Either side closing closes both.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// The subject's common name of a DER certificate (RFC 5280 §4.1), if it
/// has one: Certificate → TBSCertificate → subject (the sixth field, the
/// fifth without the optional version) → the first CN attribute.
pub fn subject_cn(der: &[u8]) -> Option<String> {
    let (cert, _) = tlv(der, 0x30)?;
    let (tbs, _) = tlv(cert, 0x30)?;
    let mut rest = tbs;
    if rest.first() == Some(&0xa0) {
        rest = skip(rest)?;
    }
    for _ in 0..4 {
        // serialNumber, signature, issuer, validity
        rest = skip(rest)?;
    }
    let (mut subject, _) = tlv(rest, 0x30)?;
    while !subject.is_empty() {
        let (set, after) = tlv(subject, 0x31)?;
        subject = after;
        let mut attrs = set;
        while !attrs.is_empty() {
            let (attr, after) = tlv(attrs, 0x30)?;
            attrs = after;
            let (oid, value) = tlv(attr, 0x06)?;
            if oid == [0x55, 0x04, 0x03] {
                let (&tag, _) = value.split_first()?;
                let (text, _) = tlv(value, tag)?;
                return String::from_utf8(text.to_vec()).ok();
            }
        }
    }
    None
}

/// The contents of the DER element at the start of `der` if its tag is
/// `tag`, and what follows it.
fn tlv(der: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = der.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

/// What follows the DER element at the start of `der`, whatever its tag.
fn skip(der: &[u8]) -> Option<&[u8]> {
    let tag = *der.first()?;
    tlv(der, tag).map(|(_, rest)| rest)
}

#[cfg(test)]
mod tests;
