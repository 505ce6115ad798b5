//! Listening sockets, made with socket2 so that the two `multi-worker` designs can
//! be built exactly:
//!
//! - `multi-worker` (uvicorn, gunicorn): the supervisor binds and listens [`shared`]
//!   once, and every process takes the same socket over as an inherited file
//!   descriptor ([`inherited`]). One socket, one accept queue: a process stuck in a
//!   job does not call `accept`, so a new connection waits for a free process.
//! - `multi-worker-reuseport` (nginx `reuseport`): the supervisor [`reserve`]s the
//!   port and every process binds its own socket with `SO_REUSEPORT` ([`listen`]).
//!   One accept queue per process: the kernel hashes a new connection to one of them,
//!   stuck or not.
//!
//! Every socket made here is close-on-exec (socket2 creates it with `SOCK_CLOEXEC`,
//! atomically), so it leaks into no child: the supervisor clears the flag only in
//! the child it starts as one of its processes, between fork and exec.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel may hold per listening socket.
const BACKLOG: i32 = 1024;

/// A non-blocking, close-on-exec TCP socket bound to `addr`, with `SO_REUSEPORT` if
/// `reuse_port`.
fn bound_socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<Socket> {
    // socket2 creates it with SOCK_CLOEXEC.
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// The IP address and port `socket` is bound to.
fn socket_addr(socket: &Socket) -> std::io::Result<SocketAddr> {
    socket
        .local_addr()?
        .as_socket()
        .ok_or_else(|| std::io::Error::other("bound socket has no IP address"))
}

/// A listening socket on `addr`, ready for `tokio::net::TcpListener::from_std`.
pub fn listen(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = bound_socket(addr, reuse_port)?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// The one listening socket of a shared-socket group (no `SO_REUSEPORT`), with the
/// address it got (the kernel picks the port when `addr` has port 0). It stays
/// close-on-exec in the supervisor; see [`inheritable_in_child`].
pub fn shared(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let socket = above_standard_streams(bound_socket(addr, false)?)?;
    socket.listen(BACKLOG)?;
    let local = socket_addr(&socket)?;
    Ok((socket.into(), local))
}

/// `socket` at a descriptor number above 2. A supervisor started with a standard
/// stream closed gets its socket at 0, 1 or 2, where the child's stdin, stdout or
/// stderr would replace it between fork and exec; a copy at 3 or above (still
/// close-on-exec) is passed down instead.
fn above_standard_streams(socket: Socket) -> std::io::Result<Socket> {
    at_or_above(socket, 3)
}

/// `socket` itself if its descriptor number is at least `lowest`, else a
/// close-on-exec copy at the lowest free number from `lowest` (the original closes).
fn at_or_above(socket: Socket, lowest: RawFd) -> std::io::Result<Socket> {
    let fd = socket.as_raw_fd();
    if fd >= lowest {
        return Ok(socket);
    }
    // SAFETY: fcntl with integer arguments on a descriptor `socket` owns.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, lowest) };
    if copy == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `copy` is a new descriptor that nothing else owns; `socket` (the
    // original) is closed when it drops here.
    Ok(unsafe { Socket::from_raw_fd(copy) })
}

/// Clears close-on-exec on `fd`, so that the program about to be executed inherits
/// it. Meant for a `pre_exec` closure: it runs in the child between fork and exec,
/// where it changes only the child's descriptor table, and makes one
/// async-signal-safe system call.
pub fn inheritable_in_child(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl with integer arguments; F_SETFD with 0 clears FD_CLOEXEC, the
    // only descriptor flag.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Takes over the listening socket a shared-socket supervisor passed down as `fd`:
/// checks that it is one, makes it non-blocking (for tokio) and close-on-exec again
/// (so nothing this process starts inherits it).
pub fn inherited(fd: RawFd) -> std::io::Result<TcpListener> {
    // SAFETY: fstat only reads the descriptor table; a bad fd is an error, not UB.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut stat) } == -1 {
        let error = std::io::Error::last_os_error();
        return Err(std::io::Error::new(
            error.kind(),
            format!("--listen-fd {fd}: {error}"),
        ));
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(std::io::Error::other(format!(
            "--listen-fd {fd} is not a socket"
        )));
    }
    // SAFETY: fd is an open socket that nothing else in this process owns: it was
    // inherited across exec for exactly this purpose and is taken over once.
    let socket = unsafe { Socket::from_raw_fd(fd) };
    let tcp = socket.r#type()? == Type::STREAM
        && matches!(socket.domain()?, d if d == Domain::IPV4 || d == Domain::IPV6);
    if !tcp {
        return Err(std::io::Error::other(format!(
            "--listen-fd {fd} is not a TCP socket"
        )));
    }
    if !socket.is_listener()? {
        return Err(std::io::Error::other(format!(
            "--listen-fd {fd} is not a listening socket"
        )));
    }
    socket.set_cloexec(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Reserves a port for a group of `SO_REUSEPORT` listeners: the socket is bound but
/// never listens, so it receives no connections, yet it keeps the port (picked by the
/// kernel when `addr` has port 0) from going to anyone outside the group.
pub fn reserve(addr: SocketAddr) -> std::io::Result<(Socket, SocketAddr)> {
    let socket = bound_socket(addr, true)?;
    let local = socket_addr(&socket)?;
    Ok((socket, local))
}

#[cfg(test)]
mod tests {
    use std::os::fd::IntoRawFd;

    use super::*;

    fn cloexec(fd: RawFd) -> bool {
        // SAFETY: fcntl F_GETFD on a descriptor this test owns.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert!(flags >= 0);
        flags & libc::FD_CLOEXEC != 0
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn every_socket_is_close_on_exec() {
        let (shared, _) = shared(loopback()).unwrap();
        assert!(cloexec(shared.as_raw_fd()));
        let (reserved, _) = reserve(loopback()).unwrap();
        assert!(cloexec(reserved.as_raw_fd()));
        assert!(cloexec(listen(loopback(), true).unwrap().as_raw_fd()));
    }

    #[test]
    fn a_shared_socket_is_taken_over_from_its_descriptor() {
        let (listener, addr) = shared(loopback()).unwrap();
        assert_ne!(addr.port(), 0);
        let fd = listener.into_raw_fd();
        inheritable_in_child(fd).unwrap();
        assert!(!cloexec(fd));
        let taken = inherited(fd).unwrap();
        assert_eq!(taken.local_addr().unwrap(), addr);
        assert!(cloexec(taken.as_raw_fd()));
        let client = std::net::TcpStream::connect(addr).unwrap();
        // Non-blocking, yet the connection is already in the accept queue.
        let (accepted, _) = taken.accept().unwrap();
        assert_eq!(accepted.peer_addr().unwrap(), client.local_addr().unwrap());
    }

    #[test]
    fn a_socket_below_the_lowest_allowed_number_moves_above_it() {
        // The supervisor's case is a socket at 0..=2 moved to 3 or above; the same
        // move is made here from the socket's own number to one 100 higher.
        let (listener, addr) = shared(loopback()).unwrap();
        let socket = Socket::from(listener);
        let lowest = socket.as_raw_fd() + 100;
        let moved = at_or_above(socket, lowest).unwrap();
        assert!(moved.as_raw_fd() >= lowest);
        assert!(cloexec(moved.as_raw_fd()));
        assert_eq!(socket_addr(&moved).unwrap(), addr);
        assert!(moved.is_listener().unwrap());
        let kept = at_or_above(moved, 3).unwrap();
        assert!(
            kept.as_raw_fd() >= lowest,
            "a socket already high enough stays"
        );
    }

    #[test]
    fn a_descriptor_that_is_no_listening_socket_is_refused() {
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        let error = inherited(file.as_raw_fd()).unwrap_err();
        assert!(error.to_string().contains("not a socket"), "{error}");
        let unconnected = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let error = inherited(unconnected.into_raw_fd()).unwrap_err();
        assert!(error.to_string().contains("not a listening"), "{error}");
        let datagram = Socket::new(Domain::IPV4, Type::DGRAM, None).unwrap();
        let error = inherited(datagram.into_raw_fd()).unwrap_err();
        assert!(error.to_string().contains("not a TCP socket"), "{error}");
        let unix = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        let error = inherited(unix.into_raw_fd()).unwrap_err();
        assert!(error.to_string().contains("not a TCP socket"), "{error}");
        assert!(inherited(-1).is_err());
    }
}
