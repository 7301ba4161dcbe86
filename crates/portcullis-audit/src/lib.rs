//! Audit events and where they are written.
//!
//! Event names, codes and field names follow Teleport's documented schema so that a team's
//! SIEM rules keep working: [`event`] defines every event in one place; [`sink`] is where
//! they go: [`file_sink`] writes JSON lines, one file per UTC day, [`pg_sink`] a PostgreSQL
//! table several auth servers can share; [`search`] finds them again.
#![forbid(unsafe_code)]

pub mod appender;
pub mod event;
pub mod file_sink;
pub mod head;
pub mod pg_sink;
pub mod search;
pub mod sink;

pub use event::{
    Event, EventKind, Field, Fragment, Json, LineEvent, Lines, SessionEndReason, Stamp,
    COMMON_FIELDS,
};
pub use file_sink::FileSink;
pub use head::{event_head, EventHead, HeadError};
pub use pg_sink::PgSink;
pub use search::{Order, Page, Position, Query};
pub use sink::{FsyncPolicy, Sink, SinkError, SinkOptions};
