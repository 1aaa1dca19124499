//! Certificate loading, errors naming the file, peer identity and reload.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use super::*;

fn self_signed(dir: &Path, cn: &str) -> TlsConfig {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    TlsConfig {
        cert_file: dir.join("cert.pem"),
        key_file: dir.join("key.pem"),
        client_ca_file: None,
        require_client_cert: None,
        username_from_cert: CertUsername::None,
    }
}

#[test]
fn loads_a_certificate_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let settings = self_signed(dir.path(), "broker");
    assert!(TlsState::load(&settings).is_ok());
}

#[test]
fn missing_certificate_file_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = self_signed(dir.path(), "broker");
    settings.cert_file = dir.path().join("gone.pem");
    let e = TlsState::load(&settings).err().unwrap().to_string();
    assert!(e.starts_with("cannot read `"), "{e}");
    assert!(e.contains("gone.pem"), "{e}");
}

#[test]
fn rejects_a_key_that_does_not_match_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let settings = self_signed(dir.path(), "broker");
    let other = tempfile::tempdir().unwrap();
    let mut mismatched = self_signed(other.path(), "other");
    mismatched.cert_file = settings.cert_file.clone();
    let e = TlsState::load(&mismatched).err().unwrap();
    assert!(matches!(e, Error::Rustls { .. }), "{e}");
}

#[test]
fn rejects_a_file_without_pem_sections() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = self_signed(dir.path(), "broker");
    std::fs::write(dir.path().join("junk.pem"), "not pem").unwrap();
    settings.key_file = dir.path().join("junk.pem");
    let e = TlsState::load(&settings).err().unwrap().to_string();
    assert!(e.contains("no valid private key in"), "{e}");
}

#[test]
fn reload_keeps_the_old_config_when_files_break() {
    let dir = tempfile::tempdir().unwrap();
    let settings = self_signed(dir.path(), "broker");
    let state = TlsState::load(&settings).unwrap();
    let before = Arc::clone(&state.current.read().unwrap());
    std::fs::write(&settings.cert_file, "broken").unwrap();
    assert!(state.reload().is_err());
    assert!(Arc::ptr_eq(&before, &state.current.read().unwrap()));
    self_signed(dir.path(), "renewed");
    state.reload().unwrap();
    assert!(!Arc::ptr_eq(&before, &state.current.read().unwrap()));
}

#[test]
fn peer_identity_gives_cn_or_subject() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "device-7");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Acme");
    let cert = params.self_signed(&key).unwrap();
    let der = cert.der();
    let none = peer_identity(der, CertUsername::None).unwrap();
    assert_eq!(none.username, None);
    assert!(none.subject.contains("CN=device-7"), "{}", none.subject);
    assert!(none.subject.contains("O=Acme"), "{}", none.subject);
    let cn = peer_identity(der, CertUsername::Cn).unwrap();
    assert_eq!(cn.username.as_deref(), Some("device-7"));
    let subject = peer_identity(der, CertUsername::Subject).unwrap();
    assert_eq!(subject.username.as_deref(), Some(none.subject.as_str()));
}
