//! Unit tests of the applier's pure parts (no server): statement budget, integer
//! keys and parameters, decimal text, the drc schema's statements, channel keys,
//! loop-marker detection.

use super::*;
use crate::model::Value as V;

fn image(values: Vec<V>) -> RowImage {
    let columns: Vec<Arc<str>> = (0..values.len()).map(|i| Arc::from(format!("c{i}").as_str())).collect();
    RowImage {
        columns: columns.into(),
        positions: None,
        values,
    }
}

#[test]
fn budget_takes_a_first_row_always_then_stops_at_each_limit() {
    // rows
    let mut b = Budget::default();
    let small = image(vec![V::Int(1)]);
    assert!((0..BATCH_MAX_ROWS).all(|_| b.admits(&small)));
    assert!(!b.admits(&small), "row limit");
    // bound values
    let mut b = Budget::default();
    let wide = image(vec![V::Int(1); 10_000]);
    assert!(b.admits(&wide) && b.admits(&wide) && b.admits(&wide));
    assert!(!b.admits(&wide), "30,000 values is the limit");
    // bytes: one huge row is admitted alone, the next is not
    let mut b = Budget::default();
    let huge = image(vec![V::Bytes(vec![0; BATCH_MAX_BYTES * 2])]);
    assert!(b.admits(&huge), "a first row always fits");
    assert!(!b.admits(&small), "nothing joins a row over the byte limit");
    assert_eq!(b.rows, 1);
}

#[test]
fn a_run_of_inserts_takes_ten_statements_of_rows() {
    let mut b = Budget::run();
    let row = image(vec![V::Int(1), V::Text("x".repeat(20))]);
    assert!((0..RUN_MAX_ROWS).all(|_| b.admits(&row)));
    assert!(!b.admits(&row), "row limit of a run");
    assert_eq!(RUN_MAX_ROWS, 10 * BATCH_MAX_ROWS);
}

#[test]
fn integer_parameters_round_trip_across_the_i64_boundary() {
    for x in [
        0i128,
        -1,
        i64::MIN as i128,
        i64::MAX as i128,
        i64::MAX as i128 + 1,
        u64::MAX as i128,
    ] {
        assert_eq!(int_of(&int_param(x)), Some(x), "{x}");
    }
    assert_eq!(int_of(&MyValue::Bytes(b"42".to_vec())), Some(42));
    assert_eq!(int_of(&MyValue::Bytes(b"4x".to_vec())), None);
    assert_eq!(int_of(&MyValue::NULL), None);
}

#[test]
fn approx_size_counts_payloads() {
    assert_eq!(approx_size(&V::Text("abcd".into())), 8);
    assert_eq!(approx_size(&V::Bytes(vec![0; 100])), 104);
    assert_eq!(approx_size(&V::Int(7)), 9);
}

#[test]
fn decimals_print_with_six_places_and_sign() {
    assert_eq!(format_decimal(0), "0.000000");
    assert_eq!(format_decimal(1_500_000), "1.500000");
    assert_eq!(format_decimal(-1), "-0.000001");
    assert_eq!(format_decimal(-12_345_678), "-12.345678");
}

#[test]
fn meta_statements_are_whole_statements_without_comments() {
    let st = meta_statements();
    assert!(st.len() >= 5, "{st:?}");
    for s in &st {
        assert!(!s.trim_start().starts_with("--"), "{s}");
        assert!(!s.ends_with(';'), "{s}");
        assert!(!s.is_empty());
    }
    for t in ["applied", "marker", "tombstones", "conflicts", "heartbeat"] {
        assert!(
            st.iter()
                .any(|s| s.contains(&format!("`{t}`")) || s.contains(&format!(".{t}"))),
            "drc.{t} is created"
        );
    }
}

#[test]
fn channel_keys_separate_daemons_sharing_a_server() {
    assert_eq!(channel_key("", "a"), "a");
    assert_eq!(channel_key("orders", "a"), "a/orders");
}

#[test]
fn only_transactions_writing_the_marker_are_an_appliers() {
    use crate::model::{Op, RowChange};
    let row = |db: &str, table: &str| {
        Change::Row(RowChange {
            db: db.into(),
            table: table.into(),
            op: Op::Insert,
            pk: Arc::from(Vec::<Arc<str>>::new()),
            before: None,
            after: Some(image(vec![V::Int(1)])),
            pos: 0,
            ts: 0,
        })
    };
    let mut tx = Transaction::sample(crate::model::TsSource::HeaderSeconds, 0, vec![row("shop", "orders")]);
    assert!(!is_applier_transaction(&tx));
    tx.changes.push(row("drc", "marker"));
    assert!(is_applier_transaction(&tx));
    tx.changes = vec![row("shop", "marker"), row("drc", "tombstones")];
    assert!(!is_applier_transaction(&tx));
}
