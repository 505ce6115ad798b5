//! Blocking network I/O, as in the original question: a background task that calls
//! an external HTTP API with a synchronous client.
//!
//! - [`service`]: `servers upstream`, a slow HTTP service that answers
//!   `GET /delay?ms=N` after N ms without holding a thread per wait, so thousands
//!   of calls can wait at once. It stands in for the external API.
//! - [`client`]: how a variant calls it for `GET /work/upstream?ms=N`: with a
//!   synchronous client on whatever thread the variant's strategy runs work on
//!   (like `requests.post` in a thread), or, on `async-io`, with an async client
//!   awaited on the event loop (like `httpx.AsyncClient`).

pub mod client;
pub mod service;
