//! TLS for `https://` targets: rustls (ring's cryptography) with the webpki roots
//! (Mozilla's, compiled in, so a run does not depend on the machine's certificate
//! store), SNI from the URL's host, ALPN `http/1.1` (or `h2` alone with
//! `--http2`, and a server that does not pick it is an error, as with oha). `--insecure` accepts any
//! certificate, as curl's `-k` and oha's `--insecure` do, for self-signed test
//! servers; the handshake's signatures are still checked.
//!
//! Session resumption is off: every connection pays a full handshake, so the
//! set-up and fresh-connection connect times are what a new client pays, not
//! what a returning one does (rustls would otherwise resume from its cache of
//! 256 sessions and understate them).

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How to speak TLS to one server: the client configuration and the name the
/// certificate must carry (sent as SNI when it is a DNS name).
#[derive(Clone)]
pub struct TlsSettings {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    insecure: bool,
    http2: bool,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .field("insecure", &self.insecure)
            .field("http2", &self.http2)
            .finish()
    }
}

impl PartialEq for TlsSettings {
    fn eq(&self, other: &Self) -> bool {
        self.server_name == other.server_name
            && self.insecure == other.insecure
            && self.http2 == other.http2
            && Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for TlsSettings {}

impl TlsSettings {
    /// Settings for a server named `host` (a DNS name or an IP address);
    /// `insecure` accepts whatever certificate it shows; `http2` offers only `h2`.
    pub fn new(host: &str, insecure: bool, http2: bool) -> Result<TlsSettings, String> {
        let server_name = ServerName::try_from(host.to_owned()).map_err(|_| {
            format!("{host:?} is not a host name TLS can check a certificate against")
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?;
        let mut config = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        config.resumption = rustls::client::Resumption::disabled();
        Ok(TlsSettings {
            config: Arc::new(config),
            server_name,
            insecure,
            http2,
        })
    }

    /// Whether any certificate is accepted.
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// Whether only `h2` is offered.
    pub fn is_http2(&self) -> bool {
        self.http2
    }

    /// The TLS handshake over an open TCP connection.
    pub async fn handshake(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        let tls = TlsConnector::from(Arc::clone(&self.config))
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| {
                let no_protocol = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .is_some_and(|inner| {
                        *inner
                            == rustls::Error::AlertReceived(
                                rustls::AlertDescription::NoApplicationProtocol,
                            )
                    });
                if no_protocol {
                    std::io::Error::other(format!(
                        "the server refused every protocol offered by ALPN ({})",
                        if self.http2 { "h2" } else { "http/1.1" }
                    ))
                } else {
                    e
                }
            })?;
        let chosen = tls.get_ref().1.alpn_protocol();
        if self.http2 && chosen != Some(b"h2".as_slice()) {
            return Err(std::io::Error::other(format!(
                "the server did not agree to HTTP/2 over TLS (ALPN offered h2, it chose {})",
                chosen.map_or("nothing".into(), |p| String::from_utf8_lossy(p)
                    .into_owned())
            )));
        }
        Ok(tls)
    }
}

/// Accepts any certificate chain (`--insecure`) but still checks that the server
/// holds the key of the certificate it showed.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
