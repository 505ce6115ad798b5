//! Binding the listening socket with socket2, so that `multi-worker` can set
//! `SO_REUSEPORT` and give every process its own accept queue on one port.

use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel may hold per listening socket.
const BACKLOG: i32 = 1024;

/// A non-blocking TCP socket bound to `addr`, with `SO_REUSEPORT` if `reuse_port`.
fn bound_socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// A listening socket on `addr`, ready for `tokio::net::TcpListener::from_std`.
pub fn listen(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = bound_socket(addr, reuse_port)?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Reserves a port for a group of `SO_REUSEPORT` listeners: the socket is bound but
/// never listens, so it receives no connections, yet it keeps the port (picked by the
/// kernel when `addr` has port 0) from going to anyone outside the group.
pub fn reserve(addr: SocketAddr) -> std::io::Result<(Socket, SocketAddr)> {
    let socket = bound_socket(addr, true)?;
    let local = socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("bound socket has no IP address"))?;
    Ok((socket, local))
}
