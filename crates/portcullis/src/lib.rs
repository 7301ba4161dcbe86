//! The `portcullis` daemon as a library: configuration ([`config`]) and running the services
//! the configuration switches on ([`run`]). The binary is a thin command-line layer over it.
#![forbid(unsafe_code)]

pub mod config;
pub mod demo;
pub mod logging;
pub mod run;
pub mod sample;
