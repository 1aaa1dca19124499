//! Tests of the listener transport keys: protocol, proxy_protocol, ws_path, tls.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use std::path::Path;

use figment::Jail;

use super::*;

use super::test_support::{FILE, load_err};

const TCP: &str = "[[listeners]]\nname = \"tcp\"\nbind = \"127.0.0.1:1883\"\n";

#[test]
fn loads_tls_and_wss_listeners_with_their_tables() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("cert.pem", "x")?;
        jail.create_file("key.pem", "x")?;
        jail.create_file("ca.pem", "x")?;
        jail.create_file(
            FILE,
            &format!(
                "{TCP}[[listeners]]\nname = \"tls\"\nbind = \"127.0.0.1:8883\"\nprotocol = \"tls\"\n\
                 proxy_protocol = true\n\
                 [listeners.tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n\
                 client_ca_file = \"ca.pem\"\nusername_from_cert = \"cn\"\n\
                 [[listeners]]\nname = \"wss\"\nbind = \"127.0.0.1:8884\"\nprotocol = \"wss\"\n\
                 ws_path = \"/ws\"\n\
                 [listeners.tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n"
            ),
        )?;
        let config = load(Some(Path::new(FILE))).unwrap();
        let [tcp, tls, wss] = &config.listeners[..] else {
            panic!("three listeners expected");
        };
        assert_eq!(tcp.protocol, ListenerProtocol::Tcp);
        assert_eq!(tcp.ws_path, "/mqtt");
        assert!(!tcp.proxy_protocol);
        assert_eq!(tls.protocol, ListenerProtocol::Tls);
        assert!(tls.proxy_protocol);
        let t = tls.tls.as_ref().unwrap();
        assert_eq!(t.username_from_cert, CertUsername::Cn);
        assert!(
            t.requires_client_cert(),
            "a client CA implies required certs"
        );
        assert_eq!(wss.protocol, ListenerProtocol::Wss);
        assert_eq!(wss.ws_path, "/ws");
        assert!(!wss.tls.as_ref().unwrap().requires_client_cert());
        Ok(())
    });
}

#[test]
fn rejects_tls_listener_without_tls_table_naming_the_key() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            FILE,
            &format!(
                "{TCP}[[listeners]]\nname = \"s\"\nbind = \"127.0.0.1:8883\"\nprotocol = \"tls\"\n"
            ),
        )?;
        let e = load_err();
        assert!(
            e.starts_with("invalid value for key `listeners.1.tls` in "),
            "{e}"
        );
        assert!(e.contains("required when protocol is \"tls\""), "{e}");
        Ok(())
    });
}

#[test]
fn rejects_tls_table_on_a_plain_listener() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            FILE,
            "[[listeners]]\nname = \"ws\"\nbind = \"127.0.0.1:8080\"\nprotocol = \"ws\"\n\
             [listeners.tls]\ncert_file = \"c\"\nkey_file = \"k\"\n",
        )?;
        let e = load_err();
        assert!(e.contains("key `listeners.0.tls`"), "{e}");
        assert!(e.contains("protocol is \"ws\""), "{e}");
        Ok(())
    });
}

#[test]
fn rejects_missing_certificate_file_naming_key_file_and_path() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("key.pem", "x")?;
        jail.create_file(
            FILE,
            &format!(
                "{TCP}[[listeners]]\nname = \"s\"\nbind = \"127.0.0.1:8883\"\nprotocol = \"tls\"\n\
                 [listeners.tls]\ncert_file = \"missing.pem\"\nkey_file = \"key.pem\"\n"
            ),
        )?;
        let e = load_err();
        assert!(
            e.starts_with("invalid value for key `listeners.1.tls.cert_file` in "),
            "{e}"
        );
        assert!(e.contains(FILE), "names the config file: {e}");
        assert!(e.contains("`missing.pem` does not exist"), "{e}");
        Ok(())
    });
}

#[test]
fn rejects_client_cert_options_without_a_client_ca() {
    for (option, key) in [
        (
            "require_client_cert = true",
            "listeners.0.tls.require_client_cert",
        ),
        (
            "username_from_cert = \"subject\"",
            "listeners.0.tls.username_from_cert",
        ),
    ] {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.create_file("c.pem", "x")?;
            jail.create_file(
                FILE,
                &format!(
                    "[[listeners]]\nname = \"s\"\nbind = \"127.0.0.1:8883\"\nprotocol = \"tls\"\n\
                     [listeners.tls]\ncert_file = \"c.pem\"\nkey_file = \"c.pem\"\n{option}\n"
                ),
            )?;
            let e = load_err();
            assert!(e.contains(&format!("key `{key}`")), "{e}");
            assert!(e.contains("client_ca_file"), "{e}");
            Ok(())
        });
    }
}

#[test]
fn rejects_unknown_protocol_and_bad_ws_path() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(FILE, "[[listeners]]\nprotocol = \"quic\"\n")?;
        let e = load_err();
        assert!(e.contains("listeners.0.protocol"), "{e}");
        jail.create_file(
            FILE,
            "[[listeners]]\nprotocol = \"ws\"\nws_path = \"mqtt\"\n",
        )?;
        let e = load_err();
        assert!(
            e.starts_with("invalid value for key `listeners.0.ws_path` in "),
            "{e}"
        );
        Ok(())
    });
}
