//! Redis client bytes reach the agent from any authenticated user, and server bytes from the
//! database: command parsing, reply framing and reply decoding must never panic, a command
//! parser or reply framer fed in arbitrary pieces must answer exactly as when fed at once, and
//! whatever decodes must re-encode to something that frames whole.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portcullis_wire::resp::{
    decode_reply, frame_value, CommandParser, Limits, ReplyFramer, RespError,
};

/// The limits to use, and the chunk sizes to feed the input in, taken from its first bytes.
fn setup(data: &[u8]) -> (Limits, Vec<usize>, &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return (Limits::default(), vec![1], data);
    };
    let limits = match selector % 3 {
        0 => Limits::default(),
        1 => Limits::replies(),
        // Tiny limits, so that every "too large" and "too deep" path is reached.
        _ => Limits {
            max_depth: usize::from((selector >> 2) & 3),
            max_bulk: usize::from(selector >> 4),
            max_elements: usize::from((selector >> 4) & 3),
            max_inline: usize::from(selector >> 3),
        },
    };
    let (sizes, input) = rest.split_at(rest.len().min(4));
    let chunks = sizes.iter().map(|&s| usize::from(s % 32) + 1).collect();
    (limits, chunks, input)
}

/// Every command in `input` fed in pieces of the given sizes (cycled), and the final error.
fn commands(
    input: &[u8],
    chunks: &[usize],
    limits: Limits,
) -> (Vec<bytes::Bytes>, Option<RespError>) {
    let mut parser = CommandParser::new(limits);
    let mut buf = BytesMut::new();
    let mut raws = Vec::new();
    let mut rest = input;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = sizes.next().copied().unwrap_or(rest.len()).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        buf.extend_from_slice(piece);
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(c)) => {
                    assert!(!c.args.is_empty(), "a parsed command has a name");
                    let _ = (c.name_upper(), c.subcommand_upper());
                    raws.push(c.raw);
                }
                Ok(None) => break,
                Err(e) => return (raws, Some(e)),
            }
        }
    }
    (raws, None)
}

/// The first value of `input` framed by one framer fed in pieces of the given sizes.
fn frame_chunked(
    input: &[u8],
    chunks: &[usize],
    limits: Limits,
) -> Result<Option<usize>, RespError> {
    let mut framer = ReplyFramer::new(limits);
    let mut end = 0;
    let mut sizes = chunks.iter().cycle();
    while end < input.len() {
        end = end
            .saturating_add(sizes.next().copied().unwrap_or(input.len()))
            .min(input.len());
        if let Some(n) = framer.frame(input.get(..end).unwrap_or_default())? {
            return Ok(Some(n));
        }
    }
    framer.frame(input)
}

fuzz_target!(|data: &[u8]| {
    let (limits, chunks, input) = setup(data);

    // Commands: in pieces as at once.
    let whole = commands(input, &[usize::MAX], limits);
    let pieces = commands(input, &chunks, limits);
    assert_eq!(
        whole, pieces,
        "command parsing depends on how the bytes arrived"
    );

    // Replies: in pieces as at once, and decoding agrees with framing.
    let framed = frame_value(input, &limits);
    assert_eq!(
        frame_chunked(input, &chunks, limits),
        framed,
        "framing depends on how the bytes arrived"
    );
    let decoded = decode_reply(input, &limits);
    match (&framed, &decoded) {
        (Ok(Some(n)), Ok(Some((reply, used)))) => {
            assert_eq!(n, used);
            let again = reply.to_bytes();
            let relaxed = Limits {
                max_depth: usize::MAX,
                ..Limits::replies()
            };
            assert_eq!(
                frame_value(&again, &relaxed),
                Ok(Some(again.len())),
                "re-encoded reply does not frame whole"
            );
        }
        (Ok(None), Ok(None)) => {}
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("frame {framed:?} but decode {decoded:?}"),
    }

    // The framer splits a pipeline of replies into values that each frame whole.
    let mut buf = BytesMut::from(input);
    let mut framer = ReplyFramer::new(limits);
    while let Ok(Some(value)) = framer.split(&mut buf) {
        assert_eq!(frame_value(&value, &limits), Ok(Some(value.len())));
    }
});
