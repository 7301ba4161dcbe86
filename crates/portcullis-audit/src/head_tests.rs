use super::*;
use crate::{Event, EventKind};

/// What serde_json alone says of a line: the answer `event_head` must give.
fn reference(text: &str) -> Result<EventHead<'_>, HeadError> {
    if !text.trim_start().starts_with('{') {
        return Err(HeadError::NotObject);
    }
    let head = serde_head(text)?;
    if head.uid.is_empty() || head.event.is_empty() {
        return Err(HeadError::Empty);
    }
    Ok(head)
}

/// The walk may decline (`None`), but what it accepts serde_json must accept, with the
/// same head.
fn agrees(text: &str) {
    if let Some(fast) = fast_head(text) {
        let slow = serde_head(text);
        assert_eq!(Ok(fast), slow, "the walk accepted {text:?}");
    }
    assert_eq!(event_head(text), reference(text), "{text:?}");
}

fn events() -> Vec<String> {
    vec![
        Event::new(EventKind::DbSessionQuery, "prod")
            .with("user", "alice")
            .with("sid", "6b1d2c8e-0f4a-4c55-8a43-2f8e1b9c7d10")
            .with(
                "db_query",
                "select * from t where a = 'x\"y'\n\tand b = '\\'",
            )
            .with("db_query_parameters", ["42", "NULL", "é😀"])
            .with("db_roles", ["access", "dba"])
            .with("n", 12345)
            .with("neg", -7)
            .with("ok", true)
            .with("none", serde_json::Value::Null)
            .with(
                "nested",
                serde_json::json!({"a": [1, {"b": []}, {}], "c": ""}),
            )
            .into_json(),
        Event::new(EventKind::UserLogin, "prod")
            .with("user", "bob")
            .with("success", false)
            .with("error", "bad password\u{1}\u{7f}")
            .into_json(),
    ]
}

#[test]
fn events_we_write_take_the_fast_walk_and_agree_with_serde() {
    for line in events() {
        let fast = fast_head(&line).unwrap_or_else(|| panic!("declined {line}"));
        assert_eq!(Ok(fast.clone()), serde_head(&line));
        assert!(matches!(fast.uid, Cow::Borrowed(_)) && !fast.line_break);
        assert!(fast.event.starts_with("db.session.query") || fast.event == "user.login");
    }
}

#[test]
fn malformed_and_unusual_lines_get_serdes_answer() {
    let cases = [
        "",
        " ",
        "[]",
        r#"["uid","event"]"#,
        "{",
        "}",
        "{}",
        r#"{"uid":"a"}"#,
        r#"{"event":"a"}"#,
        r#"{"uid":"a","event":"b"}"#,
        r#"  {"uid":"a","event":"b"}  "#,
        "\t{\"uid\":\"a\",\r\n\"event\":\"b\"}\n",
        r#"{"uid":"","event":"b"}"#,
        r#"{"uid":"a","event":""}"#,
        r#"{"uid":"a","event":"b","uid":"c"}"#,
        r#"{"uid":"a","event":"b","event":"b"}"#,
        r#"{"uid":1,"event":"b"}"#,
        r#"{"uid":null,"event":"b"}"#,
        r#"{"uid":"a","event":["b"]}"#,
        r#"{"u\u0069d":"a","event":"b"}"#,
        r#"{"uid":"\u0061","event":"b"}"#,
        r#"{"uid":"a\"b","event":"b"}"#,
        r#"{"uid":"a","event":"b",}"#,
        r#"{"uid":"a","event":"b"} x"#,
        r#"{"uid":"a","event":"b"}{}"#,
        r#"{"uid":"a","event":"b","x":01}"#,
        r#"{"uid":"a","event":"b","x":-}"#,
        r#"{"uid":"a","event":"b","x":-0}"#,
        r#"{"uid":"a","event":"b","x":1.}"#,
        r#"{"uid":"a","event":"b","x":1.5e3}"#,
        r#"{"uid":"a","event":"b","x":1e400}"#,
        r#"{"uid":"a","event":"b","x":-1e400}"#,
        r#"{"uid":"a","event":"b","x":1e-400}"#,
        r#"{"uid":"a","event":"b","x":123456789012345678}"#,
        r#"{"uid":"a","event":"b","x":1234567890123456789012345678901234567890}"#,
        r#"{"uid":"a","event":"b","x":+1}"#,
        r#"{"uid":"a","event":"b","x":.5}"#,
        r#"{"uid":"a","event":"b","x":tru}"#,
        r#"{"uid":"a","event":"b","x":truex}"#,
        r#"{"uid":"a","event":"b","x":nul}"#,
        r#"{"uid":"a","event":"b","x":NaN}"#,
        r#"{"uid":"a","event":"b","x":Infinity}"#,
        r#"{"uid":"a","event":"b","x":"\x"}"#,
        r#"{"uid":"a","event":"b","x":"\u12"}"#,
        r#"{"uid":"a","event":"b","x":"\u+123"}"#,
        r#"{"uid":"a","event":"b","x":"\ud800"}"#,
        r#"{"uid":"a","event":"b","x":"\udc00"}"#,
        r#"{"uid":"a","event":"b","x":"\ud83d\ude00"}"#,
        r#"{"uid":"a","event":"b","x":"\ud83d\u0041"}"#,
        "{\"uid\":\"a\",\"event\":\"b\",\"x\":\"tab\tinside\"}",
        "{\"uid\":\"a\",\"event\":\"b\",\"x\":\"nl\ninside\"}",
        "{\"uid\":\"a\",\"event\":\"b\",\"x\":\"nul\0inside\"}",
        "{\"uid\":\"a\",\"event\":\"b\",\"x\":\"del\u{7f}é\"}",
        r#"{"uid":"a","event":"b","x":[1,2,]}"#,
        r#"{"uid":"a","event":"b","x":[,]}"#,
        r#"{"uid":"a","event":"b","x":{"k"}}"#,
        r#"{"uid":"a","event":"b","x":{"k":}}"#,
        r#"{"uid":"a","event":"b","x":{1:2}}"#,
        r#"{"uid":"a","event":"b","x":{"k":1,}}"#,
        r#"{"uid":"a","event":"b","x":"unterminated}"#,
        r#"{"uid":"a","event":"b","x""#,
        r#"{"uid":"a","event":"b" "x":1}"#,
        r#"{"uid" "a","event":"b"}"#,
        r#"{uid:"a","event":"b"}"#,
        r#"{'uid':'a','event':'b'}"#,
        "\u{feff}{\"uid\":\"a\",\"event\":\"b\"}",
        "{\"uid\":\"a\",\"event\":\"b\"}\u{a0}",
    ];
    for text in cases {
        agrees(text);
    }
}

#[test]
fn nesting_is_refused_where_serde_refuses_it() {
    for depth in [1usize, 100, 126, 127, 128, 129, 400] {
        let text = format!(
            r#"{{"uid":"a","event":"b","x":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        agrees(&text);
        let objects = format!(
            r#"{{"uid":"a","event":"b","x":{}1{}}}"#,
            r#"{"k":"#.repeat(depth),
            "}".repeat(depth)
        );
        agrees(&objects);
    }
}

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_lines_never_take_the_walk_where_serde_refuses() {
    const PALETTE: &[&str] = &[
        "\"",
        "\\",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "\n",
        "\r",
        "\t",
        "0",
        "1",
        "9",
        "-",
        "+",
        ".",
        "e",
        "E",
        "t",
        "f",
        "n",
        "u",
        "\\u",
        "\\ud83d",
        "\\ude00",
        "\\n",
        "\0",
        "\u{1f}",
        "\u{7f}",
        "é",
        "😀",
        "true",
        "null",
        "uid",
        "\"uid\":\"x\"",
        "\"event\":\"y\"",
        "1e999",
    ];
    let seeds = events();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut fast, mut total) = (0, 0);
    for _ in 0..200_000 {
        let mut line = seeds[rng.below(seeds.len())].clone();
        for _ in 0..=rng.below(3) {
            let mut at = rng.below(line.len() + 1);
            while !line.is_char_boundary(at) {
                at -= 1;
            }
            match rng.below(4) {
                0 => line.insert_str(at, PALETTE[rng.below(PALETTE.len())]),
                1 => {
                    let mut end = (at + 1 + rng.below(4)).min(line.len());
                    while !line.is_char_boundary(end) {
                        end += 1;
                    }
                    line.replace_range(at..end, PALETTE[rng.below(PALETTE.len())]);
                }
                2 => {
                    let mut end = (at + 1 + rng.below(8)).min(line.len());
                    while !line.is_char_boundary(end) {
                        end += 1;
                    }
                    line.replace_range(at..end, "");
                }
                _ => line.truncate(at),
            }
        }
        total += 1;
        if fast_head(&line).is_some() {
            fast += 1;
        }
        agrees(&line);
    }
    // The mutations must exercise both outcomes, or the test proves little.
    assert!(
        fast > total / 50 && fast < total - total / 50,
        "{fast} of {total}"
    );
}

#[test]
fn special_bytes_flags_the_first_special_byte_exactly() {
    let naive = |w: [u8; 8]| w.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
    let first = |w: [u8; 8]| {
        let f = special_bytes(u64::from_le_bytes(w));
        (f != 0).then(|| (f.trailing_zeros() / 8) as usize)
    };
    for at in 0..8 {
        for c in 0..=255u8 {
            let mut w = *b"abcdefgh";
            w[at] = c;
            assert_eq!(first(w), naive(w), "{w:?}");
        }
    }
    let mut rng = Rng(7);
    let pick = [
        0u8, 1, 0x1f, 0x20, b'"', b'\\', b'a', 0x7f, 0x80, 0xe9, 0xff, b'!', b'#', b']',
    ];
    for _ in 0..200_000 {
        let w: [u8; 8] = std::array::from_fn(|_| pick[rng.below(pick.len())]);
        assert_eq!(first(w), naive(w), "{w:?}");
    }
    let text = b"0123456789abcdef\"";
    assert_eq!(skip_plain(text, 0), 16);
    assert_eq!(skip_plain(text, 16), 16);
    assert_eq!(skip_plain(b"abc", 0), 3);
}

#[test]
fn a_lone_surrogate_that_skipping_lets_through_is_refused() {
    // serde's skipping does not decode escapes, so the head alone accepted this line, and
    // search and export, which read every line as a value, then failed on it.
    let text = r#"{"uid":"a","event":"b","x":"\ud800"}"#;
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Head<'a> {
        #[serde(borrow)]
        uid: Cow<'a, str>,
        #[serde(borrow)]
        event: Cow<'a, str>,
    }
    assert!(serde_json::from_str::<Head<'_>>(text).is_ok());
    assert!(serde_json::from_str::<serde_json::Value>(text).is_err());
    assert!(matches!(event_head(text), Err(HeadError::Invalid(_))));
}
