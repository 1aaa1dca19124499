//! TLS for `tls` and `wss` listeners: certificates and keys read from PEM files into a
//! rustls `ServerConfig` (ring provider, TLS 1.2 and 1.3 only), optional client
//! certificate verification against a CA file (mTLS), the peer identity taken from a
//! verified client certificate, and reload (SIGHUP, or the files changed on disk) by
//! swapping the whole config.
//!
//! This module knows files, rustls and x509 names; it knows nothing about MQTT.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::{Stream, TlsPeer};
use crate::config::{CertUsername, TlsConfig};
use crate::file_watch::{self, FileWatch};

/// Why a listener's certificates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A PEM file holds no usable item of the expected kind, or is malformed.
    #[error("no valid {what} in `{}`: {detail}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// `certificate` or `private key`.
        what: &'static str,
        /// The PEM parser's message.
        detail: String,
    },
    /// The client CA file could not be turned into a verifier.
    #[error("invalid client CA in `{}`: {detail}", path.display())]
    ClientCa {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// rustls refused the certificate and key (e.g. they do not match).
    #[error("certificate `{}` and key `{}` rejected: {source}", cert.display(), key.display())]
    Rustls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Cause.
        source: rustls::Error,
    },
}

/// One listener's TLS state: the settings, the current `ServerConfig` and the files it
/// was read from.
pub struct TlsState {
    settings: TlsConfig,
    current: RwLock<Arc<ServerConfig>>,
    /// The certificate, key and client CA files, and the versions last read. Its lock
    /// serialises reloads (SIGHUP and the file watcher).
    files: Mutex<Vec<FileWatch>>,
}

impl TlsState {
    /// Reads the certificates named in `settings`.
    pub fn load(settings: &TlsConfig) -> Result<TlsState, Error> {
        let mut files = vec![
            FileWatch::new(&settings.cert_file),
            FileWatch::new(&settings.key_file),
        ];
        files.extend(settings.client_ca_file.as_ref().map(FileWatch::new));
        for file in &files {
            file.read(|_| ());
        }
        let config = server_config(settings)?;
        Ok(TlsState {
            settings: settings.clone(),
            current: RwLock::new(Arc::new(config)),
            files: Mutex::new(files),
        })
    }

    /// Re-reads the files; on error the previous certificates stay in use. Connections
    /// already established keep their session; new handshakes use the new files.
    pub fn reload(&self) -> Result<(), Error> {
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        // Stamps first: a change racing with the reads is seen at the next look.
        for file in files.iter() {
            file.read(|_| ());
        }
        let config = Arc::new(server_config(&self.settings)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// Reloads when one of the files changed on disk and none is still changing (a
    /// certificate and its key replaced one after the other are read once both have
    /// settled, see [`file_watch::group_changed`]); `Ok(false)` otherwise. Called every
    /// few seconds by the server's file watcher, so a renewed certificate is served
    /// without a SIGHUP. A version that failed to load is not retried until a file
    /// changes again.
    pub fn reload_if_changed(&self) -> Result<bool, Error> {
        let changed = {
            let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
            file_watch::group_changed(files.iter())
                .map_err(|(path, source)| Error::Read { path, source })?
        };
        if changed {
            self.reload().map(|()| true)
        } else {
            Ok(false)
        }
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }

    /// Runs the server handshake on `stream`; the peer identity is `Some` when the
    /// client presented a certificate (which rustls then verified against the CA).
    pub async fn accept<S: Stream>(
        &self,
        stream: S,
    ) -> std::io::Result<(TlsStream<S>, Option<TlsPeer>)> {
        let tls = self.acceptor().accept(stream).await?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| peer_identity(leaf, self.settings.username_from_cert));
        Ok((tls, peer))
    }
}

/// The subject of `cert` and, per `mode`, the username it gives.
pub fn peer_identity(cert: &CertificateDer<'_>, mode: CertUsername) -> Option<TlsPeer> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let subject_text = subject.to_string();
    let username = match mode {
        CertUsername::None => None,
        CertUsername::Subject => Some(subject_text.clone()).filter(|s| !s.is_empty()),
        CertUsername::Cn => subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned)
            .filter(|s| !s.is_empty()),
    };
    Some(TlsPeer {
        subject: subject_text,
        username,
    })
}

fn server_config(s: &TlsConfig) -> Result<ServerConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = read_certs(&s.cert_file)?;
    let key = read_key(&s.key_file)?;
    let rejected = |source| Error::Rustls {
        cert: s.cert_file.clone(),
        key: s.key_file.clone(),
        source,
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(rejected)?;
    let builder = match &s.client_ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert).map_err(|e| Error::ClientCa {
                    path: ca.clone(),
                    detail: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if s.requires_client_cert() {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|e| Error::ClientCa {
                path: ca.clone(),
                detail: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder.with_single_cert(certs, key).map_err(rejected)
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(path)?;
    let invalid = |detail: String| Error::Pem {
        path: path.to_owned(),
        what: "certificate",
        detail,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    if certs.is_empty() {
        return Err(invalid("no CERTIFICATE section".to_owned()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| Error::Pem {
        path: path.to_owned(),
        what: "private key",
        detail: e.to_string(),
    })
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
