//! Encoders: commands the agent sends to the server, and errors it sends to clients.

/// Encodes a command as a RESP array of bulk strings, the form every Redis server accepts
/// whatever the bytes of its arguments.
///
/// ```
/// use portcullis_wire::resp::encode_command;
/// assert_eq!(encode_command(&["AUTH", "alice", "s3cret"]),
///            b"*3\r\n$4\r\nAUTH\r\n$5\r\nalice\r\n$6\r\ns3cret\r\n");
/// ```
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let payload: usize = args
        .iter()
        .map(|a| a.as_ref().len().saturating_add(16))
        .fold(16, usize::saturating_add);
    let mut dst = Vec::with_capacity(payload);
    put_header(&mut dst, b'*', args.len());
    for arg in args {
        put_bulk(&mut dst, b'$', arg.as_ref());
    }
    dst
}

/// Encodes an error reply, `-KIND message\r\n`, to send to a client.
///
/// `kind` is the error code clients and libraries match on (`ERR`, `NOPERM`, `NOAUTH`,
/// `WRONGPASS`…): one word. CR and LF in either part are replaced by spaces, because a line
/// break would end the error early and the rest would be read as another reply, putting the
/// client out of step with its commands. An empty `kind` gives `-message\r\n`.
///
/// ```
/// use portcullis_wire::resp::error_reply;
/// assert_eq!(error_reply("NOPERM", "Portcullis: FLUSHALL\r\nis denied"),
///            b"-NOPERM Portcullis: FLUSHALL  is denied\r\n");
/// ```
pub fn error_reply(kind: &str, message: &str) -> Vec<u8> {
    let mut text = Vec::with_capacity(kind.len().saturating_add(message.len()).saturating_add(1));
    text.extend_from_slice(kind.as_bytes());
    if !kind.is_empty() && !message.is_empty() {
        text.push(b' ');
    }
    text.extend_from_slice(message.as_bytes());
    let mut dst = Vec::with_capacity(text.len().saturating_add(3));
    put_line(&mut dst, b'-', &text);
    dst
}

/// Appends a header line: a type byte and a count or length.
pub(crate) fn put_header(dst: &mut Vec<u8>, kind: u8, n: impl std::fmt::Display) {
    dst.push(kind);
    dst.extend_from_slice(n.to_string().as_bytes());
    dst.extend_from_slice(b"\r\n");
}

/// Appends a length-prefixed payload (`$`, `!`, `=`).
pub(crate) fn put_bulk(dst: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    put_header(dst, kind, payload.len());
    dst.extend_from_slice(payload);
    dst.extend_from_slice(b"\r\n");
}

/// Appends a line (`+`, `-`, `(`…), with CR and LF replaced by spaces so that the text cannot
/// end the line early.
pub(crate) fn put_line(dst: &mut Vec<u8>, kind: u8, text: &[u8]) {
    dst.push(kind);
    dst.extend(
        text.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    dst.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(encode_command::<&[u8]>(&[]), b"*0\r\n");
        assert_eq!(
            encode_command(&[&b"SET"[..], b"k", b"a\r\nb", b""]),
            b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn errors() {
        assert_eq!(error_reply("ERR", "boom"), b"-ERR boom\r\n");
        assert_eq!(error_reply("ERR", ""), b"-ERR\r\n");
        assert_eq!(error_reply("", "boom"), b"-boom\r\n");
        assert_eq!(error_reply("E\nR", "a\rb\nc"), b"-E R a b c\r\n");
    }
}
