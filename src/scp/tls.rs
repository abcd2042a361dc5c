//! `[dicom.tls]` into a rustls server configuration (ring provider, TLS 1.2
//! and 1.3), read once when the receiver binds; a file that cannot be used is
//! named.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::TlsConfig;

fn certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let named = |e: &dyn std::fmt::Display| format!("dicom.tls.{what} {}: {e}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| named(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| named(&e))?;
    if certs.is_empty() {
        return Err(named(&"no PEM certificate in it"));
    }
    Ok(certs)
}

/// The server side of DICOM over TLS: our certificate, and when `client_ca`
/// is set, a client certificate required and checked against it.
pub(super) fn server_config(c: &TlsConfig) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = certificates(&c.cert, "cert")?;
    let key = PrivateKeyDer::from_pem_file(&c.key)
        .map_err(|e| format!("dicom.tls.key {}: {e}", c.key.display()))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("dicom.tls: {e}"))?;
    let builder = match &c.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca, "client_ca")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("dicom.tls.client_ca {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("dicom.tls.client_ca {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "dicom.tls: {} and {}: {e}",
            c.cert.display(),
            c.key.display()
        )
    })?;
    Ok(Arc::new(config))
}
