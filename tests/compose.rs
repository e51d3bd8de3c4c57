//! docker-compose.yml (two MySQL 8.0 zones, Apache Kafka, two drc daemons) cannot be
//! run here (no Docker engine), so this checks what can be checked: it parses, the
//! MySQL flags are the ones `drc check` requires, each zone's auto-increment settings
//! match the ID ranges of the drc configs it mounts, and those configs load with drc's
//! strict config loader.
//!
//! Run: `cargo nextest run --test compose` (no server needed).

use std::collections::BTreeMap;
use std::path::Path;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn flags(svc: &serde_yaml::Value) -> BTreeMap<String, String> {
    svc["command"]
        .as_sequence()
        .expect("command list")
        .iter()
        .filter_map(|f| {
            f.as_str()?
                .strip_prefix("--")?
                .split_once('=')
                .map(|(k, v)| (k.replace('_', "-"), v.to_string()))
        })
        .collect()
}

#[test]
fn compose_file_matches_what_drc_requires() {
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("docker-compose.yml parses");
    let mut doc = doc;
    doc.apply_merge().expect("YAML merge keys");
    let services = &doc["services"];
    for s in ["zone-a-mysql", "zone-b-mysql", "kafka", "drc-a", "drc-b"] {
        assert!(!services[s].is_null(), "service {s} missing");
    }
    assert!(services["zone-a-mysql"]["image"]
        .as_str()
        .unwrap()
        .starts_with("mysql:8.0"));
    let mut server_ids = Vec::new();
    for (zone, mysql, drc) in [("a", "zone-a-mysql", "drc-a"), ("b", "zone-b-mysql", "drc-b")] {
        let f = flags(&services[mysql]);
        for (k, v) in [
            ("binlog-format", "ROW"),
            ("binlog-row-image", "FULL"),
            ("binlog-row-metadata", "FULL"),
            ("gtid-mode", "ON"),
            ("enforce-gtid-consistency", "ON"),
            ("default-time-zone", "+00:00"),
            ("log-bin-trust-function-creators", "ON"),
            ("sync-binlog", "1"),
            ("innodb-flush-log-at-trx-commit", "1"),
        ] {
            assert_eq!(f.get(k).map(String::as_str), Some(v), "{mysql}: --{k}");
        }
        assert!(f.contains_key("log-bin"), "{mysql}: binlog on");
        server_ids.push(f["server-id"].clone());
        // the config the daemon mounts loads strictly and agrees with the server flags
        let mount = services[drc]["volumes"][0].as_str().unwrap();
        let host = mount.split(':').next().unwrap();
        let cfg = drc::config::Config::load(&repo().join(host)).unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!(cfg.zone, zone);
        assert_eq!(cfg.mysql.host, mysql);
        assert_eq!(cfg.transport, drc::config::TransportKind::Kafka);
        assert_eq!(cfg.kafka.as_ref().unwrap().brokers, "kafka:9092");
        let r = &cfg.id_ranges[zone];
        assert_eq!(
            r.increment.unwrap().to_string(),
            f["auto-increment-increment"],
            "{zone}: increment"
        );
        assert_eq!(
            r.offset.unwrap().to_string(),
            f["auto-increment-offset"],
            "{zone}: offset"
        );
        assert_eq!(services[drc]["build"].as_str(), Some("."));
    }
    assert_ne!(server_ids[0], server_ids[1], "distinct server ids");
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("cargo build --release --locked --bin drc"));
}

/// Every config shipped in testenv/ loads (strict parsing, validation), and the Kafka
/// ones differ from the direct ones only in the transport.
#[test]
fn testenv_configs_load_and_match() {
    for z in ["a", "b"] {
        let direct = drc::config::Config::load(&repo_path(&format!("testenv/zone-{z}.toml"))).unwrap();
        let kafka = drc::config::Config::load(&repo_path(&format!("testenv/zone-{z}.kafka.toml"))).unwrap();
        assert_eq!(direct.transport, drc::config::TransportKind::Direct);
        assert_eq!(kafka.transport, drc::config::TransportKind::Kafka);
        assert_eq!(direct.zone, kafka.zone);
        assert_eq!(format!("{:?}", direct.replication), format!("{:?}", kafka.replication));
        assert_eq!(format!("{:?}", direct.id_ranges), format!("{:?}", kafka.id_ranges));
        assert_eq!(
            direct.admin.as_ref().unwrap().listen,
            kafka.admin.as_ref().unwrap().listen
        );
        assert!(kafka.kafka.is_some());
    }
}

fn repo_path(p: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}
