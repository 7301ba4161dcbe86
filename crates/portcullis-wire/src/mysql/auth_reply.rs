//! What the server (or the proxy) may send a client during authentication.

use bytes::Bytes;

use super::auth_more_data::AuthMoreData;
use super::auth_switch_request::AuthSwitchRequest;
use super::err_packet::ErrPacket;
use super::handshake_v10::HandshakeV10;
use super::ok_packet::OkPacket;
use crate::WireError;

/// A packet from the server after the client's HandshakeResponse41 (or after any later auth
/// packet), told apart by its first byte: the agent loops on these until OK or ERR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply {
    /// `0x00`: authenticated.
    Ok(OkPacket),
    /// `0xFF`: refused.
    Err(ErrPacket),
    /// `0xFE`: use another plugin.
    AuthSwitch(AuthSwitchRequest),
    /// `0x01`: plugin-specific next step.
    MoreData(AuthMoreData),
}

impl AuthReply {
    /// Decodes a payload with the negotiated `capabilities`.
    pub fn decode(payload: Bytes, capabilities: u64) -> Result<Self, WireError> {
        Ok(match payload.first().copied() {
            Some(OkPacket::HEADER) => Self::Ok(OkPacket::decode(payload, capabilities)?),
            Some(ErrPacket::HEADER) => Self::Err(ErrPacket::decode(payload)?),
            Some(AuthSwitchRequest::HEADER) => {
                Self::AuthSwitch(AuthSwitchRequest::decode(payload)?)
            }
            Some(AuthMoreData::HEADER) => Self::MoreData(AuthMoreData::decode(payload)?),
            Some(found) => {
                return Err(WireError::UnexpectedHeader {
                    message: "authentication reply",
                    expected: OkPacket::HEADER,
                    found,
                })
            }
            None => {
                return Err(WireError::Truncated {
                    message: "authentication reply",
                    field: "header",
                })
            }
        })
    }
}

/// The server's first packet: a HandshakeV10, or an ERR when it refuses the connection
/// outright (too many connections, host blocked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerGreeting {
    /// The greeting.
    Handshake(HandshakeV10),
    /// The refusal (without SQLSTATE, usually).
    Err(ErrPacket),
}

impl ServerGreeting {
    /// Decodes the server's first payload.
    pub fn decode(payload: Bytes) -> Result<Self, WireError> {
        if payload.first() == Some(&ErrPacket::HEADER) {
            return ErrPacket::decode(payload).map(Self::Err);
        }
        HandshakeV10::decode(payload).map(Self::Handshake)
    }
}
