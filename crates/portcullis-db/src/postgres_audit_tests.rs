//! The audit events a PostgreSQL client's messages produce.

mod audited {
    use bytes::Bytes;
    use portcullis_wire::postgres::PgString;

    use super::super::audited_query;
    use crate::query_text::TRUNCATED_MARKER;

    fn q(raw: &[u8], max: usize) -> crate::query_text::AuditedQuery {
        audited_query(&PgString::from_bytes(Bytes::copy_from_slice(raw)), max)
    }

    #[test]
    fn quotes_newlines_and_invalid_utf8() {
        let a = q(b"select 'it''s'\n, \"x\"\r\n, E'\\n'", 1000);
        assert_eq!(a.text, "select 'it''s'\n, \"x\"\r\n, E'\\n'");
        assert!(!a.invalid_utf8 && !a.truncated && !a.masked);
        let a = q(b"select '\xff\xfe'", 1000);
        assert!(a.invalid_utf8);
        assert_eq!(a.text, "select '\u{fffd}\u{fffd}'");
        assert_eq!(a.length, 11);
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary_with_a_marker() {
        let sql = format!("select '{}'", "é".repeat(1_000_000));
        let a = q(sql.as_bytes(), 65_536);
        assert!(a.truncated);
        assert_eq!(a.length, sql.len());
        assert!(a.text.ends_with(TRUNCATED_MARKER));
        assert!(a.text.len() <= 65_536 + TRUNCATED_MARKER.len());
    }

    #[test]
    fn secrets_are_masked_before_cutting() {
        let sql = format!("ALTER ROLE app PASSWORD '{}'", "s".repeat(100));
        let a = q(sql.as_bytes(), 20);
        assert!(a.masked && a.truncated);
        assert!(!a.text.contains('s'), "{}", a.text);
        let a = q(b"alter user x password 'hunter2'", 1000);
        assert_eq!(a.text, "alter user x password '***'");
    }
}

#[test]
fn the_unnamed_entry_is_always_kept_and_named_ones_up_to_the_limit() {
    use super::{Named, MAX_TRACKED};
    let mut n = Named::<usize>::default();
    for i in 0..MAX_TRACKED + 5 {
        n.put(&format!("s{i}"), i);
    }
    n.put("", 7);
    assert_eq!(n.get(""), Some(&7));
    assert_eq!(n.get("s0"), Some(&0));
    assert_eq!(
        n.get(&format!("s{}", MAX_TRACKED - 1)),
        Some(&(MAX_TRACKED - 1))
    );
    assert_eq!(n.get(&format!("s{MAX_TRACKED}")), None, "past the limit");
    // Full, a known name is still replaced in place; the unnamed one too.
    n.put("s0", 100);
    n.put("", 8);
    assert_eq!((n.get("s0"), n.get("")), (Some(&100), Some(&8)));
    n.remove("");
    n.remove("s0");
    assert_eq!((n.get("s0"), n.get("")), (None, None));
    n.put("new", 1);
    assert_eq!(n.get("new"), Some(&1), "a removal makes room");
}

mod extended_protocol_events {
    use bytes::{Bytes, BytesMut};
    use portcullis_audit::{Fragment, Lines, Stamp};
    use portcullis_wire::postgres::{Bind, Close, Execute, Message, Parse, Target};
    use serde_json::Value;

    use super::super::{ClientAudit, Context};
    use crate::postgres::frames;

    fn parse(name: &str, query: &str, b: &mut BytesMut) {
        Parse {
            name: name.into(),
            query: query.into(),
            param_types: vec![],
        }
        .encode(b)
        .unwrap();
    }

    fn bind(portal: &str, statement: &str, param: &'static [u8], b: &mut BytesMut) {
        Bind {
            portal: portal.into(),
            statement: statement.into(),
            param_formats: vec![],
            params: vec![Some(Bytes::from_static(param))],
            result_formats: vec![],
        }
        .encode(b)
        .unwrap();
    }

    fn execute(portal: &str, b: &mut BytesMut) {
        Execute {
            portal: portal.into(),
            max_rows: 0,
        }
        .encode(b)
        .unwrap();
    }

    /// The events of each message in `b`, in order, as (event, query, parameters).
    fn events(st: &mut ClientAudit, b: BytesMut) -> Vec<(String, Value, Value)> {
        let head = Fragment::cluster("c1", &Fragment::new().with("sid", "s-1"));
        let a = Context {
            head: &head,
            stamp: Stamp::now(),
            max_query_bytes: 1024,
        };
        let mut out = Lines::new();
        for frame in frames(b.freeze()) {
            st.message(&a, &frame, &mut out);
        }
        assert_eq!(out.as_bytes().last(), Some(&b'\n'));
        out.iter()
            .map(|line| {
                let v: Value = serde_json::from_slice(line).unwrap();
                assert_eq!(v["cluster_name"], "c1");
                assert_eq!(v["sid"], "s-1");
                let query = v["db_query"].clone();
                let params = v["db_query_parameters"].clone();
                (v["event"].as_str().unwrap().to_owned(), query, params)
            })
            .collect()
    }

    #[test]
    fn an_execute_reports_the_statement_its_portal_was_bound_to() {
        let mut st = ClientAudit::new();
        let mut b = BytesMut::new();
        parse("", "select $1 -- first", &mut b);
        bind("", "", b"1", &mut b);
        // The unnamed statement is replaced; the portal keeps what it was bound to.
        parse("", "select $1 -- second", &mut b);
        execute("", &mut b);
        let got = events(&mut st, b);
        let names: Vec<&str> = got.iter().map(|(e, _, _)| e.as_str()).collect();
        assert_eq!(
            names,
            [
                "db.session.postgres.statements.parse",
                "db.session.postgres.statements.bind",
                "db.session.postgres.statements.parse",
                "db.session.postgres.statements.execute",
            ]
        );
        assert_eq!(got[3].1, "select $1 -- first");
        assert_eq!(got[3].2, serde_json::json!(["1"]));

        // Bound again, the same portal runs the new statement with the new parameters.
        let mut b = BytesMut::new();
        bind("", "", b"2", &mut b);
        execute("", &mut b);
        let got = events(&mut st, b);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1].0, "db.session.postgres.statements.execute");
        assert_eq!(got[1].1, "select $1 -- second");
        assert_eq!(got[1].2, serde_json::json!(["2"]));

        // A named portal outlives its statement's Close, as in PostgreSQL.
        let mut b = BytesMut::new();
        parse("s1", "select $1 -- named", &mut b);
        bind("p1", "s1", b"3", &mut b);
        Close {
            target: Target::Statement,
            name: "s1".into(),
        }
        .encode(&mut b)
        .unwrap();
        execute("p1", &mut b);
        let got = events(&mut st, b);
        assert!(
            got.iter().all(|(e, _, _)| e != "db.session.query"),
            "{got:?}"
        );
        let q: Vec<_> = got
            .iter()
            .filter(|(e, _, _)| e == "db.session.postgres.statements.execute")
            .collect();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].1, "select $1 -- named");
        assert_eq!(q[0].2, serde_json::json!(["3"]));
    }

    /// The largest events a client can make at the highest `max_query_bytes`: query text
    /// and parameters of control bytes (escaped six bytes each), and a function call with
    /// 2,000 binary arguments (11 MB as base64 if they were not capped). Each must fit auth's
    /// request limit, or it would block the spool.
    #[test]
    fn the_largest_events_fit_one_request() {
        use crate::query_text::MAX_QUERY_BYTES_CEILING as MAX;
        use portcullis_wire::postgres::FunctionCall;

        let head = Fragment::cluster("c1", &Fragment::new().with("sid", "s-1"));
        let a = Context {
            head: &head,
            stamp: Stamp::now(),
            max_query_bytes: MAX,
        };
        let mut st = ClientAudit::new();
        let control = "\u{1}".repeat(MAX * 2);
        let param = Bytes::from(vec![1u8; 8192]);
        let mut b = BytesMut::new();
        parse("big", &control, &mut b);
        Bind {
            portal: "".into(),
            statement: "big".into(),
            param_formats: vec![],
            params: vec![Some(param.clone()); 1000],
            result_formats: vec![],
        }
        .encode(&mut b)
        .unwrap();
        execute("", &mut b);
        FunctionCall {
            function_oid: 1,
            arg_formats: vec![1],
            args: vec![Some(Bytes::from(vec![1u8; 4096])); 2000],
            result_format: 0,
        }
        .encode(&mut b)
        .unwrap();
        let mut out = Lines::new();
        for frame in frames(b.freeze()) {
            st.message(&a, &frame, &mut out);
        }
        let sizes: Vec<(String, usize)> = out
            .iter()
            .map(|line| {
                let v: Value = serde_json::from_slice(line).unwrap();
                (v["event"].as_str().unwrap().to_owned(), line.len())
            })
            .collect();
        assert_eq!(sizes.len(), 4, "{sizes:?}");
        for (event, len) in &sizes {
            assert!(
                *len < portcullis_api::MAX_EVENTS_BODY,
                "{event}: {len} bytes"
            );
        }
        // The execute event carries the most: both the text and the parameters.
        let query = sizes
            .iter()
            .find(|(e, _)| e == "db.session.postgres.statements.execute")
            .unwrap();
        assert!(query.1 > 5 * MAX, "{query:?}");
    }

    #[test]
    fn an_unknown_statement_or_portal_still_gets_its_statement_events() {
        let mut st = ClientAudit::new();
        let mut b = BytesMut::new();
        // Parsed before anything was tracked (or beyond the tracking limit): no query text to
        // report, but the statement events are there.
        bind("", "never-parsed", b"1", &mut b);
        execute("", &mut b);
        execute("no-such-portal", &mut b);
        let got = events(&mut st, b);
        let names: Vec<&str> = got.iter().map(|(e, _, _)| e.as_str()).collect();
        assert_eq!(
            names,
            [
                "db.session.postgres.statements.bind",
                "db.session.postgres.statements.execute",
                "db.session.postgres.statements.execute",
            ]
        );
        // No text known: the execute event has no `db_query` (rather than an empty one).
        assert!(
            got.iter().all(|(_, q, p)| q.is_null() && p.is_null()),
            "{got:?}"
        );
    }

    /// Parameter formats by the none/one/each convention, NULL, invalid UTF-8 and a value
    /// past the per-parameter cap, as the `statements.bind` and `statements.execute` events
    /// record them.
    #[test]
    fn bound_parameters_are_recorded_as_text_base64_or_null() {
        use crate::query_text::{MAX_PARAM_BYTES, TRUNCATED_MARKER};
        let long = Bytes::from(vec![b'x'; MAX_PARAM_BYTES + 5]);
        let bind = |formats: Vec<i16>, params: Vec<Option<Bytes>>, b: &mut BytesMut| {
            Bind {
                portal: "".into(),
                statement: "s".into(),
                param_formats: formats,
                params,
                result_formats: vec![1],
            }
            .encode(b)
            .unwrap();
        };
        let mut st = ClientAudit::new();
        let mut b = BytesMut::new();
        parse("s", "select $1, $2, $3", &mut b);
        let values = vec![
            Some(Bytes::from_static(b"\x01\x02")),
            None,
            Some(Bytes::from_static(b"caf\xc3\xa9 \xff")),
        ];
        // Each its own format: binary, text, text.
        bind(vec![1, 0, 0], values.clone(), &mut b);
        execute("", &mut b);
        // One format for all: binary.
        bind(vec![1], values.clone(), &mut b);
        execute("", &mut b);
        // None: all text, and a value past the cap.
        bind(vec![], vec![Some(long.clone())], &mut b);
        execute("", &mut b);
        let got = events(&mut st, b);
        let queries: Vec<&Value> = got
            .iter()
            .filter(|(e, _, _)| e == "db.session.postgres.statements.execute")
            .map(|(_, _, p)| p)
            .collect();
        assert_eq!(
            queries[0],
            &serde_json::json!(["base64:AQI=", "NULL", "café \u{fffd}"])
        );
        assert_eq!(
            queries[1],
            &serde_json::json!(["base64:AQI=", "NULL", "base64:Y2Fmw6kg/w=="])
        );
        let cut = queries[2][0].as_str().unwrap();
        assert!(
            cut.starts_with(&"x".repeat(MAX_PARAM_BYTES))
                && cut.ends_with(&format!("{TRUNCATED_MARKER} ({} bytes)", long.len())),
            "{}",
            &cut[MAX_PARAM_BYTES - 3..]
        );
    }
}
