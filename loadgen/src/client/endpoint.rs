//! Where a connection goes: a TCP address, the same with TLS on top (`https://`),
//! or a Unix domain socket (how many servers sit behind a local proxy: uvicorn's
//! `--uds`, gunicorn's `unix:`).

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;

use super::tls::TlsSettings;

/// A server's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
    /// TCP, then a TLS handshake.
    Tls(SocketAddr, TlsSettings),
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Endpoint {
        Endpoint::Tcp(addr)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Tls(addr, _) => write!(f, "{addr} (TLS)"),
        }
    }
}

/// An open byte stream to an [`Endpoint`].
pub(super) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// Connects (TCP with Nagle's algorithm off: requests are small and must
    /// leave at once), with the TLS handshake for a TLS endpoint.
    pub(super) async fn connect(endpoint: &Endpoint) -> std::io::Result<Stream> {
        let tcp = |addr: SocketAddr| async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(stream)
        };
        Ok(match endpoint {
            Endpoint::Tcp(addr) => Stream::Tcp(tcp(*addr).await?),
            Endpoint::Unix(path) => Stream::Unix(UnixStream::connect(path).await?),
            Endpoint::Tls(addr, tls) => {
                Stream::Tls(Box::new(tls.handshake(tcp(*addr).await?).await?))
            }
        })
    }

    pub(super) async fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(bytes).await,
            Stream::Unix(s) => s.write(bytes).await,
            Stream::Tls(s) => s.write(bytes).await,
        }
    }

    /// Sends what a write left buffered: TLS records rustls holds back; plain
    /// sockets buffer nothing, so for them this costs nothing.
    pub(super) async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Tls(s) => s.flush().await,
            Stream::Tcp(_) | Stream::Unix(_) => Ok(()),
        }
    }

    pub(super) async fn read_buf(&mut self, buffer: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read_buf(buffer).await,
            Stream::Unix(s) => s.read_buf(buffer).await,
            Stream::Tls(s) => s.read_buf(buffer).await,
        }
    }

    /// Reads what is there without waiting: `WouldBlock` when nothing is.
    pub(super) fn try_read_buf(&mut self, buffer: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read_buf(buffer),
            Stream::Unix(s) => s.try_read_buf(buffer),
            // One poll of a read, with a waker that does nothing: TLS records
            // that carry no data (session tickets) leave it pending, as they
            // should. A read not yet complete loses nothing when dropped.
            Stream::Tls(s) => {
                let mut cx = Context::from_waker(Waker::noop());
                match std::pin::pin!(s.read_buf(buffer)).poll(&mut cx) {
                    Poll::Ready(result) => result,
                    Poll::Pending => Err(std::io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }
}

/// For HTTP/2, whose connection reads and writes the stream itself.
impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
