//! The server under test: an `http://` or `https://` URL turned into addresses to
//! connect to, how to speak TLS to them, the `Host` header to send, and a base path.

use std::net::SocketAddr;

use http::Uri;

use crate::client::TlsSettings;
use crate::config::ConfigError;

/// Where requests go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The URL as the user gave it, for reports.
    pub url: String,
    /// `host[:port]` for the `Host` header.
    pub authority: String,
    /// Host name or address and port, resolved when the run starts.
    pub host: String,
    pub port: u16,
    /// Path and query of the URL (`/` when it had none).
    pub path_and_query: String,
    /// A Unix domain socket to connect to instead of `host:port` (`--unix`); the
    /// URL still gives the `Host` header and the paths.
    pub unix: Option<std::path::PathBuf>,
    /// `https://`: TLS on every connection, the certificate checked against the
    /// host (unless [`Target::accept_any_certificate`]).
    pub tls: Option<TlsSettings>,
    /// HTTP/1.1 unless [`Target::use_http2`].
    pub protocol: Protocol,
}

/// Which HTTP the requests speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Http1,
    /// HTTP/2 (h2c with prior knowledge on `http://`, ALPN `h2` on `https://`),
    /// with this many concurrent streams on each connection.
    Http2 { streams_per_connection: usize },
}

impl Protocol {
    /// Concurrent requests one connection carries.
    pub fn streams_per_connection(self) -> usize {
        match self {
            Protocol::Http1 => 1,
            Protocol::Http2 {
                streams_per_connection,
            } => streams_per_connection,
        }
    }

    /// As reports name it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http1 => "HTTP/1.1",
            Protocol::Http2 { .. } => "HTTP/2",
        }
    }
}

impl Target {
    /// Parses an `http://` URL, refusing anything this tool cannot speak.
    pub fn parse(url: &str) -> Result<Target, ConfigError> {
        if !url.contains("://") {
            return Err(ConfigError(format!(
                "{url:?} has no scheme; write it as http://HOST:PORT/PATH"
            )));
        }
        let uri: Uri = url
            .parse()
            .map_err(|e| ConfigError(format!("{url:?} is not a valid URL ({e})")))?;
        let secure = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "{url}: scheme {other:?} is not HTTP; use an http:// or https:// URL"
                )))
            }
            None => {
                return Err(ConfigError(format!(
                    "{url:?} has no scheme; write it as http://HOST:PORT/PATH"
                )))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| ConfigError(format!("{url}: no host in the URL")))?;
        if authority.as_str().contains('@') {
            return Err(ConfigError(format!(
                "{url}: credentials in the URL are not supported"
            )));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(ConfigError(format!("{url}: no host in the URL")));
        }
        let tls = if secure {
            Some(
                TlsSettings::new(host, false, false)
                    .map_err(|e| ConfigError(format!("{url}: {e}")))?,
            )
        } else {
            None
        };
        Ok(Target {
            url: url.to_owned(),
            authority: authority.as_str().to_owned(),
            host: host.to_owned(),
            port: authority
                .port_u16()
                .unwrap_or(if secure { 443 } else { 80 }),
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            unix: None,
            tls,
            protocol: Protocol::Http1,
        })
    }

    /// `--insecure`: an `https://` target's certificate is not checked (a
    /// self-signed test server's); no effect on `http://`.
    pub fn accept_any_certificate(&mut self) -> Result<(), ConfigError> {
        self.set_tls(true, self.tls.as_ref().is_some_and(TlsSettings::is_http2))
    }

    /// `--http2`: HTTP/2 with `streams_per_connection` concurrent streams on each
    /// connection; over TLS, only `h2` is offered.
    pub fn use_http2(&mut self, streams_per_connection: usize) -> Result<(), ConfigError> {
        if streams_per_connection == 0 {
            return Err(ConfigError("--h2-streams must be at least 1".into()));
        }
        self.protocol = Protocol::Http2 {
            streams_per_connection,
        };
        self.set_tls(
            self.tls.as_ref().is_some_and(TlsSettings::is_insecure),
            true,
        )
    }

    fn set_tls(&mut self, insecure: bool, http2: bool) -> Result<(), ConfigError> {
        if self.tls.is_some() {
            self.tls = Some(
                TlsSettings::new(&self.host, insecure, http2)
                    .map_err(|e| ConfigError(format!("{}: {e}", self.url)))?,
            );
        }
        Ok(())
    }

    /// `path` appended to the URL's own path (without doubling the slash).
    pub fn join(&self, path: &str) -> String {
        let base = self.path_and_query.trim_end_matches('/');
        format!("{base}{path}")
    }

    /// Resolves the host to socket addresses.
    pub async fn resolve(&self) -> anyhow::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| anyhow::anyhow!("cannot resolve {}: {e}", self.host))?
            .collect();
        anyhow::ensure!(!addrs.is_empty(), "{} resolves to no address", self.host);
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_urls() {
        let t = Target::parse("http://127.0.0.1:8080/health?x=1").unwrap();
        assert_eq!(t.host, "127.0.0.1");
        assert_eq!(t.port, 8080);
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.path_and_query, "/health?x=1");
        let t = Target::parse("http://[::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
        assert_eq!(Target::parse("http://h:1").unwrap().path_and_query, "/");
    }

    #[test]
    fn joins_paths_onto_the_base() {
        let t = Target::parse("http://h:1/api/").unwrap();
        assert_eq!(t.join("/health"), "/api/health");
        assert_eq!(Target::parse("http://h:1").unwrap().join("/x"), "/x");
    }

    #[test]
    fn https_urls_speak_tls_on_443_unless_told() {
        let t = Target::parse("https://example.test/x").unwrap();
        assert_eq!(t.port, 443);
        assert!(t.tls.as_ref().is_some_and(|tls| !tls.is_insecure()));
        assert_eq!(Target::parse("https://127.0.0.1:8443/").unwrap().port, 8443);
        let mut insecure = t.clone();
        insecure.accept_any_certificate().unwrap();
        assert!(insecure.tls.unwrap().is_insecure());
        let mut plain = Target::parse("http://h/").unwrap();
        plain.accept_any_certificate().unwrap();
        assert!(plain.tls.is_none());
    }

    #[test]
    fn refuses_what_it_cannot_speak() {
        for url in [
            "ftp://h/",
            "h:80/x",
            "not a url",
            "http:///x",
            "http://u:p@h/",
        ] {
            assert!(Target::parse(url).is_err(), "{url}");
        }
    }
}
