//! The JSON-lines output follows `schemas/change_event.v1.json`: every line drc emits
//! for every fixture binlog validates, and the validator does reject broken lines.
//!
//! Run: `cargo nextest run --test schema` (no server needed).

use drc::mysql::reader::file::read_file;
use drc::mysql::reader::Limits;
use drc::output::write_transaction;
use std::path::{Path, PathBuf};

fn validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/change_event.v1.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("schema compiles")
}

fn fixture_lines() -> Vec<String> {
    let dir = std::env::var_os("DRC_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mysql-binlogs"));
    let mut buf = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        // truncated/corrupt files still emit their good prefix
        let _ = read_file(&p, "a", Limits::default(), |tx| {
            write_transaction(&mut buf, &tx).map(|_| ())
        });
    }
    String::from_utf8(buf).unwrap().lines().map(str::to_string).collect()
}

#[test]
fn every_emitted_line_validates() {
    let v = validator();
    let lines = fixture_lines();
    assert!(lines.len() > 300, "only {} lines", lines.len());
    let mut ops = std::collections::BTreeSet::new();
    for line in &lines {
        let inst: serde_json::Value = serde_json::from_str(line).unwrap();
        let errors: Vec<String> = v
            .iter_errors(&inst)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{line}\n{errors:?}");
        ops.insert(inst["op"].as_str().unwrap().to_string());
    }
    for op in ["insert", "update", "delete", "ddl"] {
        assert!(ops.contains(op), "no {op} line among the fixtures");
    }
}

#[test]
fn broken_lines_are_rejected() {
    let v = validator();
    let good: serde_json::Value =
        serde_json::from_str(&fixture_lines().into_iter().find(|l| l.contains("\"insert\"")).unwrap()).unwrap();
    assert!(v.is_valid(&good));
    let mut no_op = good.clone();
    no_op.as_object_mut().unwrap().remove("op");
    assert!(!v.is_valid(&no_op));
    let mut bad_value = good.clone();
    bad_value["after"] = serde_json::json!({"x": {"hex": "00"}});
    assert!(!v.is_valid(&bad_value));
    let mut insert_with_before = good.clone();
    insert_with_before["before"] = serde_json::json!({});
    assert!(!v.is_valid(&insert_with_before));
    let mut unknown = good;
    unknown["surprise"] = serde_json::json!(1);
    assert!(!v.is_valid(&unknown));
}
