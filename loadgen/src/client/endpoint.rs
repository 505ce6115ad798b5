//! Where a connection goes: a TCP address, or a Unix domain socket (how many
//! servers sit behind a local proxy: uvicorn's `--uds`, gunicorn's `unix:`).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// A server's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
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
        }
    }
}

/// An open byte stream to an [`Endpoint`].
pub(super) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Connects (TCP with Nagle's algorithm off: requests are small and must
    /// leave at once).
    pub(super) async fn connect(endpoint: &Endpoint) -> std::io::Result<Stream> {
        Ok(match endpoint {
            Endpoint::Tcp(addr) => {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                Stream::Tcp(stream)
            }
            Endpoint::Unix(path) => Stream::Unix(UnixStream::connect(path).await?),
        })
    }

    pub(super) async fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(bytes).await,
            Stream::Unix(s) => s.write(bytes).await,
        }
    }

    pub(super) async fn read_buf(&mut self, buffer: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read_buf(buffer).await,
            Stream::Unix(s) => s.read_buf(buffer).await,
        }
    }

    pub(super) fn try_read_buf(&mut self, buffer: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read_buf(buffer),
            Stream::Unix(s) => s.try_read_buf(buffer),
        }
    }
}
