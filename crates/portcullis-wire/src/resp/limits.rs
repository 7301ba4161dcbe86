//! Size limits that bound what a peer can make the codec (and its caller) buffer or track.

/// Bounds checked against what a peer *declares* (a count or a length) before anything is
/// allocated for it, and against lines that have no end yet.
///
/// [`Limits::default`] mirrors the limits of a stock Redis server for client commands, so the
/// agent refuses exactly what Redis itself would refuse and nothing it would accept. Server
/// replies can be legitimately larger (an `LRANGE key 0 -1` on a list of two million items is a
/// two-million-element array): frame them with [`Limits::replies`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Deepest nesting of aggregates (arrays, maps, sets, pushes, attributes) in a reply: a
    /// value inside `max_depth` nested aggregates is accepted, one more level is an error.
    /// Bounds the framer's and the decoder's stack; commands are never nested.
    pub max_depth: usize,
    /// Longest bulk string (`$`, `=`, `!`) and longest simple string or error line (`+`, `-`),
    /// in bytes. Redis' `proto-max-bulk-len` (512 MiB by default).
    pub max_bulk: usize,
    /// Largest element count an aggregate may declare (pairs, for maps and attributes).
    /// 1 048 576 is the historical Redis limit on a client's multibulk count.
    pub max_elements: usize,
    /// Longest inline command line, and longest double (`,`) or big number (`(`) line in a
    /// reply, in bytes without the line ending. Redis' `PROTO_INLINE_MAX_SIZE` (64 KiB).
    pub max_inline: usize,
}

impl Limits {
    /// Default nesting depth: far more than any Redis command's reply (a few levels) or a
    /// reasonable Lua or function reply needs.
    pub const DEFAULT_MAX_DEPTH: usize = 32;
    /// Redis' default `proto-max-bulk-len`: 512 MiB.
    pub const DEFAULT_MAX_BULK: usize = 512 * 1024 * 1024;
    /// Redis' historical client multibulk count limit: 1 048 576.
    pub const DEFAULT_MAX_ELEMENTS: usize = 1024 * 1024;
    /// Redis' `PROTO_INLINE_MAX_SIZE`: 64 KiB.
    pub const DEFAULT_MAX_INLINE: usize = 64 * 1024;

    /// The limits Redis applies to client commands (see the field docs).
    pub const fn new() -> Self {
        Self {
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_bulk: Self::DEFAULT_MAX_BULK,
            max_elements: Self::DEFAULT_MAX_ELEMENTS,
            max_inline: Self::DEFAULT_MAX_INLINE,
        }
    }

    /// Limits for framing server replies: the defaults, but with no bound on declared element
    /// counts.
    ///
    /// A reply's element count costs the framer nothing (it tracks a count, never allocates per
    /// element, and completes only when every element's bytes have arrived), and Redis itself
    /// sends arrays far larger than a client may, so a count limit would only break large
    /// `LRANGE`/`HGETALL`/`KEYS` replies. What a reply can make the relay buffer is bounded by
    /// the relay's own buffer limit, not by this codec.
    pub const fn replies() -> Self {
        Self {
            max_elements: usize::MAX,
            ..Self::new()
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new()
    }
}
