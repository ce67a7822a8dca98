//! TLS for the client: TLS 1.3 only, and the server's certificate pinned by
//! the SHA-256 fingerprint that came with the invite.
//!
//! Branch servers use self-signed certificates (there is no CA a village
//! server could get one from), so trust comes from the invite instead: the
//! secretary's invite link carries the fingerprint, and any other
//! certificate is refused during the handshake, before a single byte of the
//! device's credentials is sent.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest as _, Sha256};

/// The name the client asks for; the pinned fingerprint, not the name, is
/// what identifies the server.
pub(crate) const SERVER_NAME: &str = "branchline.local";

/// Accepts exactly one certificate: the one whose DER hashes to the pin.
#[derive(Debug)]
struct PinnedCertificate {
    cert_sha256: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

/// What the verifier says about a certificate other than the pinned one.
const PIN_MISMATCH: &str = "the server's certificate is not the one the invite pinned";

/// Whether a failed connection attempt failed on the pinned certificate.
///
/// quinn closes the attempt with a TLS alert whose reason is rustls's
/// rendering of the verifier's error, which names [`PinMismatch`] by its
/// debug form: the only trace of the refusal that reaches the caller.
pub(crate) fn is_pin_mismatch(error: &quinn::ConnectionError) -> bool {
    match error {
        quinn::ConnectionError::TransportError(e) => e.reason.contains(&format!("{PinMismatch:?}")),
        _ => false,
    }
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if presented == self.cert_sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(std::sync::Arc::new(
                    PinMismatch,
                ))),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The config only offers TLS 1.3, so this is never reached.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The handshake signature proves the server holds the pinned
        // certificate's private key.
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The QUIC client configuration for a server with this certificate.
///
/// One configuration is kept per server for the life of the client, so
/// its TLS session cache lets reconnects resume the session (a shorter
/// handshake with no certificate on the wire).
pub(crate) fn client_config(
    cert_sha256: [u8; 32],
    transport: Arc<quinn::TransportConfig>,
    alpn: &[u8],
) -> Result<quinn::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCertificate {
        cert_sha256,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![alpn.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport);
    Ok(config)
}

/// The verifier's refusal of a certificate other than the pinned one.
#[derive(Debug)]
struct PinMismatch;

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(PIN_MISMATCH)
    }
}

impl std::error::Error for PinMismatch {}
