use bytes::{Bytes, BytesMut};
use portcullis_wire::postgres::{Bind, Execute, Framer, Message, Parse, Query, Sync};

use super::{complete_prefix, frames};

fn stream() -> BytesMut {
    let mut b = BytesMut::new();
    Query::new("select 1").encode(&mut b).unwrap();
    Parse {
        name: "s1".into(),
        query: "select $1".into(),
        param_types: vec![23],
    }
    .encode(&mut b)
    .unwrap();
    Bind {
        portal: "".into(),
        statement: "s1".into(),
        param_formats: vec![],
        params: vec![Some(Bytes::from_static(b"42")), None],
        result_formats: vec![],
    }
    .encode(&mut b)
    .unwrap();
    Execute {
        portal: "".into(),
        max_rows: 0,
    }
    .encode(&mut b)
    .unwrap();
    Sync.encode(&mut b).unwrap();
    b
}

#[test]
fn complete_prefix_stops_at_a_partial_message() {
    let framer = Framer::new();
    let all = stream();
    assert_eq!(complete_prefix(&framer, &all).unwrap(), all.len());
    for cut in 0..all.len() {
        let n = complete_prefix(&framer, &all[..cut]).unwrap();
        assert!(n <= cut);
        // Whatever is complete splits into whole frames, and they re-encode to the same bytes.
        let got: Vec<_> = frames(Bytes::copy_from_slice(&all[..n])).collect();
        let len: usize = got.iter().map(|f| 5 + f.body.len()).sum();
        assert_eq!(len, n, "cut at {cut}");
    }
}

#[test]
fn frames_are_split_without_copying() {
    let all = stream().freeze();
    let got: Vec<_> = frames(all.clone()).collect();
    assert_eq!(
        got.iter().map(|f| f.tag).collect::<Vec<_>>(),
        b"QPBES".to_vec()
    );
    let body = &got[0].body;
    assert!(
        all.as_ptr_range().contains(&body.as_ptr()),
        "frame bodies are views of the read buffer"
    );
}

#[test]
fn bad_lengths_are_errors_not_panics() {
    let framer = Framer::new();
    for bad in [
        &b"Q\x00\x00\x00\x02"[..],
        b"Q\xff\xff\xff\xff",
        b"Q\x80\x00\x00\x00",
    ] {
        assert!(complete_prefix(&framer, bad).is_err(), "{bad:?}");
    }
    assert_eq!(frames(Bytes::from_static(b"Q\x00\x00")).count(), 0);
}
