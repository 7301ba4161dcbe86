//! The vocabulary every Portcullis service shares: who someone is ([`identity`]), what exists in
//! a cluster ([`database`], [`names`]), how long things last ([`duration`]), and — in [`role`]
//! and [`rbac`] — what they may do.
//!
//! This crate performs no I/O, so the same rules run in auth, proxy and agent, and can be
//! tested exhaustively without a network.
#![forbid(unsafe_code)]

pub mod database;
pub mod duration;
pub mod identity;
pub mod names;
pub mod rbac;
pub mod role;
