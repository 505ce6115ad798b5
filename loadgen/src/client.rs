//! One HTTP/1.1 connection, driven with hyper's client connection API so the tool
//! decides exactly how many connections exist (no pool opening extra ones behind its
//! back), and the ways a request can fail.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a request got no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// No connection could be made (refused, unreachable, handshake failed).
    Connect,
    /// No complete response within the timeout.
    Timeout,
    /// The connection broke while the request was in flight (reset, closed early,
    /// unparsable response).
    Io,
    /// Still unanswered when the run stopped waiting for it.
    Abandoned,
}

/// hyper's half of a connection that does the socket I/O.
type Driver = http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// An open HTTP/1.1 connection. Its I/O is driven inside the task that sends on it
/// (no second task per connection), so a request costs no cross-task wake-ups.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// `None` once the driver has finished: the connection is gone. Dropping it
    /// is what cancels requests still waiting on it.
    driver: Option<Pin<Box<Driver>>>,
}

impl Connection {
    /// Connects to `addr` and performs the HTTP/1.1 handshake.
    pub async fn open(addr: SocketAddr) -> std::io::Result<Connection> {
        let (sender, driver) = handshake(addr).await?;
        Ok(Connection {
            sender,
            driver: Some(Box::pin(driver)),
        })
    }

    /// Whether the connection can still take a request.
    pub fn is_open(&self) -> bool {
        self.driver.is_some() && !self.sender.is_closed()
    }

    /// Sends `request` and reads the whole response body. When the request could
    /// not even be written (the server had closed the connection while it was idle),
    /// it is handed back so it can be sent on a new connection without counting an
    /// error.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<StatusCode, SendError> {
        self.send_keeping(request, None).await
    }

    /// [`Connection::send`], appending the response body to `body` when given.
    pub async fn send_keeping(
        &mut self,
        request: Request<Full<Bytes>>,
        mut body: Option<&mut Vec<u8>>,
    ) -> Result<StatusCode, SendError> {
        let Connection { sender, driver } = self;
        let Some(running) = driver.as_mut() else {
            return Err(SendError::NotSent(Box::new(request)));
        };
        let exchange = async move {
            if sender.ready().await.is_err() {
                return Err(SendError::NotSent(Box::new(request)));
            }
            let response = match sender.try_send_request(request).await {
                Ok(response) => response,
                Err(mut e) => {
                    return Err(match e.take_message() {
                        Some(request) => SendError::NotSent(Box::new(request)),
                        None => SendError::Failed,
                    })
                }
            };
            let status = response.status();
            let mut incoming = response.into_body();
            while let Some(frame) = incoming.frame().await {
                let frame = frame.map_err(|_| SendError::Failed)?;
                if let (Some(sink), Some(data)) = (body.as_deref_mut(), frame.data_ref()) {
                    sink.extend_from_slice(data);
                }
            }
            Ok(status)
        };
        tokio::pin!(exchange);
        tokio::select! {
            biased;
            result = &mut exchange => return result,
            _ = running.as_mut() => {}
        }
        // The connection ended (closed by the server, or broken). Once the driver
        // is dropped the exchange resolves at once, handing its request back if it
        // was never written.
        *driver = None;
        exchange.await
    }
}

async fn handshake(addr: SocketAddr) -> std::io::Result<(SendRequest<Full<Bytes>>, Driver)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)
}

/// One GET on a fresh connection, returning status and body: for control-plane
/// calls such as reading a server's `/info`, never for measurement.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let exchange = async {
        let (mut sender, driver) = handshake(addr).await?;
        tokio::spawn(driver);
        let request = Request::get(path)
            .header(http::header::HOST, addr.to_string())
            .body(Full::new(Bytes::new()))?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("GET {path} on {addr}: no answer within {timeout:?}"))?
}

/// Why [`Connection::send`] did not return a status.
pub enum SendError {
    /// The request was never written; here it is back.
    NotSent(Box<Request<Full<Bytes>>>),
    /// The request was written but no complete response came back.
    Failed,
}

/// A connection slot of a connection task: opens the connection on first use and
/// again after it breaks, and applies the per-request timeout to the whole exchange.
pub struct Slot {
    addr: SocketAddr,
    connection: Option<Connection>,
}

impl Slot {
    pub fn new(addr: SocketAddr, connection: Option<Connection>) -> Self {
        Slot { addr, connection }
    }

    /// Forgets the connection (its state is unknown after an abandoned request).
    pub fn discard(&mut self) {
        self.connection = None;
    }

    /// One request and its response, connect included, within `timeout`.
    pub async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<StatusCode, Failure> {
        self.exchange_keeping(request, timeout, None).await
    }

    /// [`Slot::exchange`], appending the response body to `body` when given.
    pub async fn exchange_keeping(
        &mut self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
        body: Option<&mut Vec<u8>>,
    ) -> Result<StatusCode, Failure> {
        match tokio::time::timeout(timeout, self.exchange_inner(request, body)).await {
            Ok(result) => result,
            Err(_) => {
                // The connection is in an unknown state; start afresh next time.
                self.connection = None;
                Err(Failure::Timeout)
            }
        }
    }

    async fn exchange_inner(
        &mut self,
        mut request: Request<Full<Bytes>>,
        mut body: Option<&mut Vec<u8>>,
    ) -> Result<StatusCode, Failure> {
        // At most one retry, and only for a request that was never written.
        for _ in 0..2 {
            if !self.connection.as_ref().is_some_and(Connection::is_open) {
                self.connection = None;
                let connection = Connection::open(self.addr)
                    .await
                    .map_err(|_| Failure::Connect)?;
                self.connection = Some(connection);
            }
            let connection = self.connection.as_mut().expect("just opened");
            match connection.send_keeping(request, body.as_deref_mut()).await {
                Ok(status) => return Ok(status),
                Err(SendError::NotSent(back)) => {
                    self.connection = None;
                    request = *back;
                }
                Err(SendError::Failed) => {
                    self.connection = None;
                    return Err(Failure::Io);
                }
            }
        }
        Err(Failure::Io)
    }
}
