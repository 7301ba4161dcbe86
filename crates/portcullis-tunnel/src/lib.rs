//! The reverse tunnel between a database agent and a proxy.
//!
//! The agent dials out (it sits behind NAT) and keeps one connection — mutual TLS over TCP, or
//! an in-memory pipe when both run in one process — multiplexed into streams with yamux
//! ([`mux`]). Every stream starts with a [`header::StreamHeader`] saying what it is for: a
//! database session (with the verified client certificate and address), a cancel request, or
//! the agent's control stream that announces its databases and proves it is alive.
#![forbid(unsafe_code)]

pub mod control;
pub mod header;
pub mod mux;

/// The ALPN protocol an agent offers when it dials a proxy's public port.
pub const TUNNEL_ALPN: &[u8] = b"portcullis-tunnel/1";

pub use header::{read_header, write_header, StreamHeader};
pub use mux::{spawn, TunnelHandle, TunnelStream};
