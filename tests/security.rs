//! TLS to the testenv's MariaDB (its certificate made by testenv/up.sh, issued for
//! 127.0.0.1 by tls/ca.pem), wrong CAs and host names refused with a message that
//! says what to fix, client certificates, and secret files only their owner may read.

mod common;

use common::{drc, exec, run_dir, write_config, ZONE_A};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("drc-security-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn tls(file: &str) -> String {
    run_dir().join("tls").join(file).display().to_string()
}

/// `[mysql.tls]` trusting the testenv's CA file `ca` (verify-full, the default).
fn tls_ca(ca: &str) -> String {
    format!("[mysql.tls]\nca = \"{}\"", tls(ca))
}

/// A config for zone a whose `[mysql.tls]` table is `table` and `[mysql] host` `host`.
fn config(dir: &Path, host: &str, table: &str) -> PathBuf {
    let path = write_config(dir, "a", ZONE_A, 7301, "now");
    let text = std::fs::read_to_string(&path).unwrap();
    let head_end = text.find("[mysql.tls]").expect("the tests' configs use TLS");
    let rest = &text[head_end..];
    let reader = rest.find("[reader]").unwrap();
    let text = format!("{}{table}\n{}", &text[..head_end], &rest[reader..])
        .replace("host = \"127.0.0.1\"", &format!("host = \"{host}\""));
    std::fs::write(&path, text).unwrap();
    path
}

fn check(cfg: &Path) -> (i32, String) {
    drc(&["check", "--config", cfg.to_str().unwrap()])
}

#[test]
fn verify_full_against_the_testenv_ca_connects_encrypted() {
    let d = tmp("full");
    let cfg = config(
        &d,
        "127.0.0.1",
        &format!("[mysql.tls]\nmode = \"verify-full\"\nca = \"{}\"", tls("ca.pem")),
    );
    let (code, out) = check(&cfg);
    assert!(out.contains("ok      tls") && out.contains("TLSv1."), "{out}");
    assert!(out.contains("mode verify-full"), "{out}");
    assert_ne!(code, 1, "{out}");
    // a name the certificate lists, when connecting by another (localhost)
    let cfg = config(
        &d,
        "localhost",
        &format!(
            "[mysql.tls]\nca = \"{}\"\nserver_name = \"zone.drc.test\"",
            tls("ca.pem")
        ),
    );
    let (_, out) = check(&cfg);
    assert!(out.contains("ok      tls"), "{out}");
}

#[test]
fn a_wrong_ca_is_refused_by_check_and_stops_the_daemon_with_what_to_fix() {
    let d = tmp("ca");
    let cfg = config(&d, "127.0.0.1", &tls_ca("other-ca.pem"));
    let (code, out) = check(&cfg);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("not signed by the CA drc trusts") && out.contains("[mysql.tls] ca"),
        "{out}"
    );
    // the daemon does not retry a certificate it refused: it stops, saying why
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text += "[replication]\ndatabases = [\"drc_security\"]\n";
    text += &common::peer_section("b", Some(common::ZONE_B));
    std::fs::write(&cfg, text).unwrap();
    let started = Instant::now();
    let (code, out) = drc(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not signed by the CA drc trusts"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_certificate_not_issued_for_the_host_is_refused() {
    let d = tmp("host");
    let cfg = config(&d, "localhost", &tls_ca("ca.pem"));
    let (code, out) = check(&cfg);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("not issued for the host") && out.contains("server_name"),
        "{out}"
    );
    assert!(out.contains("\"localhost\""), "{out}");
}

#[tokio::test]
async fn a_client_certificate_is_presented_to_a_user_that_requires_one() {
    exec(
        ZONE_A,
        &[
            "CREATE USER IF NOT EXISTS 'drc_x509'@'127.0.0.1' IDENTIFIED BY 'drc' REQUIRE X509",
            "GRANT REPLICATION SLAVE, BINLOG MONITOR, SLAVE MONITOR ON *.* TO 'drc_x509'@'127.0.0.1'",
        ],
    )
    .await;
    let d = tmp("x509");
    let without = config(&d, "127.0.0.1", &tls_ca("ca.pem"));
    let text = std::fs::read_to_string(&without)
        .unwrap()
        .replace("user = \"drc\"", "user = \"drc_x509\"");
    std::fs::write(&without, &text).unwrap();
    let (code, out) = check(&without);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Access denied"), "{out}");
    // the key is a secret: readable by its owner only
    let key = d.join("client.key");
    std::fs::copy(tls("client.key"), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let with = text.replace(
        "[mysql.tls]\n",
        &format!(
            "[mysql.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            tls("client.pem"),
            key.display()
        ),
    );
    std::fs::write(&without, with).unwrap();
    let (code, out) = check(&without);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[mysql.tls] key") && out.contains("chmod 600"), "{out}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_, out) = check(&without);
    assert!(out.contains("ok      tls"), "{out}");
}

#[test]
fn a_password_file_others_can_read_is_refused_unless_warned_by_config() {
    let d = tmp("pw");
    let cfg = write_config(&d, "a", ZONE_A, 7302, "now");
    let pw = d.join("drc.password");
    std::fs::write(&pw, "drc\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("password = \"drc\"", "password_file = \"drc.password\"");
    std::fs::write(&cfg, &text).unwrap();
    let (code, out) = check(&cfg);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[mysql] password_file") && out.contains("mode 644") && out.contains("chmod 600"),
        "{out}"
    );
    std::fs::write(&cfg, format!("secret_files = \"warn\"\n{text}")).unwrap();
    let (_, out) = check(&cfg);
    assert!(out.contains("ok      tls"), "{out}");
}

/// A pair whose MySQL password (from the environment), peer password and admin token
/// are distinctive strings; with debug logs, a wrong password, replication, and
/// every status door: none of the secrets appears anywhere drc writes or answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_logs_errors_status_or_metrics() {
    use common::pair::{Pair, ORDERS};
    use common::wait_until;
    const PW: &str = "Pw-7f3e9a1c-secret";
    const TOKEN: &str = "Tk-51d0c2e8-secret";
    for port in [ZONE_A, common::ZONE_B] {
        exec(
            port,
            &[
                &format!("CREATE USER IF NOT EXISTS 'drc_secret'@'127.0.0.1' IDENTIFIED BY '{PW}'"),
                "GRANT ALL PRIVILEGES ON *.* TO 'drc_secret'@'127.0.0.1'",
            ],
        )
        .await;
    }
    let mut p = Pair::new("secrets", &[ORDERS], 7311).await;
    let admin = p.with_admin(9731, TOKEN);
    for cfg in &p.cfg {
        let text = std::fs::read_to_string(cfg)
            .unwrap()
            .replace(
                "user = \"drc\"\npassword = \"drc\"",
                "user = \"drc_secret\"\npassword_env = \"DRC_SECRET_PW\"",
            )
            .replace(&format!("token = \"{TOKEN}\""), "token_env = \"DRC_SECRET_TOKEN\"");
        assert!(!text.contains(PW) && !text.contains(TOKEN));
        std::fs::write(cfg, text).unwrap();
    }
    let env = [("DRC_SECRET_PW", PW), ("DRC_SECRET_TOKEN", TOKEN), ("DRC_LOG", "debug")];
    p.start_both_with_env(&env).await;
    let db = p.db.clone();
    exec(ZONE_A, &[&format!("INSERT INTO `{db}`.orders (customer) VALUES ('x')")]).await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            p.rows(1, "orders").await.len() == 1
        })
        .await,
        "not replicated:\n{}",
        p.logs()
    );
    let mut seen = String::new();
    for (url, cfg) in admin.iter().zip(&p.cfg) {
        seen += &common::get(&format!("{url}/status"));
        seen += &common::get(&format!("{url}/metrics"));
        let cfg = cfg.to_str().unwrap();
        let out = std::process::Command::new(common::drc_bin())
            .args(["status", "--config", cfg, "--format", "json"])
            .envs(env)
            .output()
            .unwrap();
        seen += &String::from_utf8_lossy(&out.stdout);
        seen += &String::from_utf8_lossy(&out.stderr);
    }
    assert!(seen.contains("\"from_zone\""), "status answered: {seen}");
    // a wrong password and a wrong token: the errors name the user, never a secret
    let cfg = p.cfg[0].to_str().unwrap();
    let out = std::process::Command::new(common::drc_bin())
        .args(["check", "--config", cfg])
        .env("DRC_SECRET_PW", format!("{PW}-wrong"))
        .output()
        .unwrap();
    let wrong = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(wrong.contains("Access denied"), "{wrong}");
    seen += &wrong;
    let out = std::process::Command::new(common::drc_bin())
        .args(["pause", "--config", cfg])
        .env("DRC_SECRET_TOKEN", format!("{TOKEN}-wrong"))
        .output()
        .unwrap();
    seen += &String::from_utf8_lossy(&out.stdout);
    seen += &String::from_utf8_lossy(&out.stderr);
    p.kill9(0);
    p.kill9(1);
    seen += &p.logs();
    seen += &std::fs::read_to_string(p.cfg[0].parent().unwrap().join("state-a/audit.log")).unwrap_or_default();
    for secret in [PW, TOKEN] {
        assert!(!seen.contains(secret), "{secret} appears in:\n{seen}");
    }
}

/// `drc check` names each grant the drc user lacks on the replicated databases and
/// on `drc`, with the GRANT to run; the testenv's drc user (the documented grants,
/// which the whole suite runs as) lacks none.
#[tokio::test]
async fn check_names_every_missing_grant_and_the_documented_ones_suffice() {
    exec(
        ZONE_A,
        &[
            "CREATE USER IF NOT EXISTS 'drc_partial'@'127.0.0.1' IDENTIFIED BY 'drc'",
            "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'drc_partial'@'127.0.0.1'",
            "GRANT SELECT, UPDATE ON `drc_security`.* TO 'drc_partial'@'127.0.0.1'",
        ],
    )
    .await;
    let d = tmp("grants");
    let cfg = config(&d, "127.0.0.1", &tls_ca("ca.pem"));
    let text = std::fs::read_to_string(&cfg).unwrap() + "[replication]\ndatabases = [\"drc_security\"]\n";
    std::fs::write(&cfg, &text).unwrap();
    let (_, out) = check(&cfg);
    assert!(out.contains("ok      grants") && !out.contains("lacks"), "{out}");
    std::fs::write(&cfg, text.replace("user = \"drc\"", "user = \"drc_partial\"")).unwrap();
    let (code, out) = check(&cfg);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("lacks INSERT, DELETE, CREATE TEMPORARY TABLES on `drc_security`")
            && out.contains("GRANT INSERT, DELETE, CREATE TEMPORARY TABLES ON `drc_security`.*"),
        "{out}"
    );
    assert!(
        out.contains("lacks SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, CREATE TEMPORARY TABLES on `drc`"),
        "{out}"
    );
}

/// `[redis.tls]`: `drc check` connects to the testenv's Redis TLS ports with
/// verify-full; a CA that did not issue the server's certificate, and a host name it
/// does not list, are refused with the setting to fix.
#[test]
fn redis_tls_is_verified_and_a_wrong_ca_or_host_is_refused_with_what_to_fix() {
    let d = tmp("redis");
    let with_redis = |local: &str, peer: &str| {
        let cfg = config(&d, "127.0.0.1", &tls_ca("ca.pem"));
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        text += &format!("[replication]\ndatabases = [\"drc_security\"]\n[redis]\n{local}");
        text += &common::peer_section("b", Some(common::ZONE_B));
        text += &format!("[peers.redis]\n{peer}");
        std::fs::write(&cfg, text).unwrap();
        cfg
    };
    let server = |host: &str, port: u16, ca: &str| {
        format!(
            "host = \"{host}\"\nport = {port}\nuser = \"drc\"\npassword = \"drc-redis\"\n[TABLE.tls]\nca = \"{}\"\n",
            tls(ca)
        )
    };
    let cfg = with_redis(
        &server("127.0.0.1", 6391, "ca.pem").replace("TABLE", "redis"),
        &server("127.0.0.1", 6392, "ca.pem").replace("TABLE", "peers.redis"),
    );
    let (_, out) = check(&cfg);
    assert!(out.contains("zone a's Redis 127.0.0.1:6391 answers"), "{out}");
    assert!(out.contains("zone b's Redis 127.0.0.1:6392 answers"), "{out}");
    // the peer's certificate checked against another CA
    let cfg = with_redis(
        &server("127.0.0.1", 6391, "ca.pem").replace("TABLE", "redis"),
        &server("127.0.0.1", 6392, "other-ca.pem").replace("TABLE", "peers.redis"),
    );
    let (code, out) = check(&cfg);
    assert_eq!(code, 3, "{out}"); // problems found
    assert!(
        out.contains("127.0.0.1:6392")
            && out.contains("not signed by the CA drc trusts")
            && out.contains("[peers.redis.tls] ca"),
        "{out}"
    );
    // connected by a name the certificate does not list
    let cfg = with_redis(
        &server("localhost", 6391, "ca.pem").replace("TABLE", "redis"),
        &server("127.0.0.1", 6392, "ca.pem").replace("TABLE", "peers.redis"),
    );
    let (code, out) = check(&cfg);
    assert_eq!(code, 3, "{out}"); // problems found
    assert!(
        out.contains("not issued for the host \"localhost\"") && out.contains("[redis.tls] server_name"),
        "{out}"
    );
    // ...which server_name fixes
    let cfg = with_redis(
        &(server("localhost", 6391, "ca.pem").replace("TABLE", "redis") + "server_name = \"zone.drc.test\"\n"),
        &server("127.0.0.1", 6392, "ca.pem").replace("TABLE", "peers.redis"),
    );
    let (_, out) = check(&cfg);
    assert!(out.contains("zone a's Redis localhost:6391 answers"), "{out}");
    // verify-ca: the chain checked, not the name; required: encrypted, nothing checked
    let cfg = with_redis(
        &(server("localhost", 6391, "ca.pem").replace("TABLE", "redis") + "mode = \"verify-ca\"\n"),
        &server("127.0.0.1", 6392, "other-ca.pem")
            .replace("TABLE", "peers.redis")
            .replace(&format!("ca = \"{}\"\n", tls("other-ca.pem")), "mode = \"required\"\n"),
    );
    let (_, out) = check(&cfg);
    assert!(out.contains("zone a's Redis localhost:6391 answers"), "{out}");
    assert!(out.contains("zone b's Redis 127.0.0.1:6392 answers"), "{out}");
    let cfg = with_redis(
        &(server("localhost", 6391, "other-ca.pem").replace("TABLE", "redis") + "mode = \"verify-ca\"\n"),
        &server("127.0.0.1", 6392, "ca.pem").replace("TABLE", "peers.redis"),
    );
    let (code, out) = check(&cfg);
    assert_eq!(code, 3, "verify-ca still checks the CA: {out}");
}

/// `[admin] tls_cert`/`tls_key`: the endpoint speaks HTTPS only; drc's CLI calls it
/// trusting `tls_ca`, and refuses it under another CA with what to fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_over_https_serves_the_cli_and_refuses_plain_http() {
    use common::pair::{Pair, ORDERS};
    let mut p = Pair::new("admin_tls", &[ORDERS], 7321).await;
    p.with_admin(9741, "admin-tls-token");
    let admin_tls = |ca: &str| {
        format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\ntls_ca = \"{}\"\n",
            tls("server.pem"),
            tls("server.key"),
            tls(ca)
        )
    };
    for cfg in &p.cfg {
        let text = std::fs::read_to_string(cfg).unwrap() + &admin_tls("ca.pem");
        std::fs::write(cfg, text).unwrap();
    }
    p.start_both().await;
    let cfg = p.cfg[0].display().to_string();
    let (code, out) = drc(&["status", "--config", &cfg]);
    assert_eq!(code, 0, "{out}\n{}", p.logs());
    assert!(out.contains("zone a"), "{out}");
    let (code, out) = drc(&["pause", "--config", &cfg]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = drc(&["resume", "--config", &cfg]);
    assert_eq!(code, 0, "{out}");
    // plain HTTP gets no answer
    let plain = tokio::task::spawn_blocking(|| {
        ureq::get("http://127.0.0.1:9741/status")
            .timeout(Duration::from_secs(3))
            .call()
            .map(|r| r.status())
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap();
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    // the CLI trusting another CA refuses the endpoint, naming the setting
    let other = p.cfg[0].with_file_name("other-ca.toml");
    let text = std::fs::read_to_string(&p.cfg[0]).unwrap();
    std::fs::write(&other, text.replace(&tls("ca.pem"), &tls("other-ca.pem"))).unwrap();
    let (code, out) = drc(&["status", "--config", other.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("UnknownIssuer") && out.contains("[admin] tls_ca"), "{out}");
    assert!(p.log(0).contains("https=true"), "{}", p.log(0));
}

/// The secured testenv broker (testenv/up.sh `start_kafka_secured`): tansu requiring
/// SASL SCRAM, behind TLS on 127.0.0.1:9095 with the test CA's certificate.
const SECURED_BROKER: &str = "127.0.0.1:9095";

/// `[kafka.tls]` (verify-full against the CA file `ca`) and `[kafka.sasl]` as user drc
/// with the password in `password_file`.
fn kafka_security(ca: &str, mechanism: &str, password_file: &Path) -> String {
    format!(
        "[kafka.tls]\nca = \"{}\"\n[kafka.sasl]\nmechanism = \"{mechanism}\"\nusername = \"drc\"\npassword_file = \"{}\"\n",
        tls(ca),
        password_file.display()
    )
}

/// A file of mode 0600 holding `text`.
fn secret_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    f
}

/// Both zones replicate through a broker reached only over TLS (verify-full) with
/// SASL SCRAM; `drc check` passes there, and names `[kafka.sasl]` for a wrong password
/// and `[kafka.tls]` for a CA that did not sign the broker's certificate; the password
/// appears in no log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_over_sasl_ssl_replicates_and_check_names_a_wrong_password_or_ca() {
    use common::pair::{Pair, Transport, ORDERS};
    use common::wait_until;
    let pass = std::fs::read_to_string(run_dir().join("secrets/kafka.password"))
        .expect("testenv/up.sh --kafka writes secrets/kafka.password");
    let d = tmp("kafka");
    let good = secret_file(&d, "kafka.password", &pass);
    let wrong = secret_file(&d, "wrong.password", "not-the-password");

    // drc check, before and after each mistake
    let check_with = |security: String| {
        let cfg = write_config(&d, "a", ZONE_A, 7341, "now");
        let mut text = std::fs::read_to_string(&cfg).unwrap();
        text += &format!("[kafka]\nbrokers = \"{SECURED_BROKER}\"\n{security}");
        std::fs::write(&cfg, text).unwrap();
        check(&cfg)
    };
    for mechanism in ["SCRAM-SHA-512", "SCRAM-SHA-256"] {
        let (_, out) = check_with(kafka_security("ca.pem", mechanism, &good));
        assert!(
            out.contains("ok      kafka_connect") && out.contains("over SASL_SSL"),
            "{mechanism}: {out}"
        );
    }
    let (code, out) = check_with(kafka_security("ca.pem", "SCRAM-SHA-512", &wrong));
    assert_eq!(code, 3, "a problem: {out}");
    assert!(
        out.contains("PROBLEM kafka_connect") && out.contains("[kafka.sasl]"),
        "{out}"
    );
    let (code, out) = check_with(kafka_security("other-ca.pem", "SCRAM-SHA-512", &good));
    assert_eq!(code, 3, "a problem: {out}");
    assert!(
        out.contains("PROBLEM kafka_connect") && out.contains("[kafka.tls]"),
        "{out}"
    );
    assert!(!out.contains(pass.trim()), "{out}");

    // both directions through the secured broker
    let mut p = Pair::with("kafka_sasl_ssl", &[ORDERS], 7351, Transport::Kafka).await;
    p.with_kafka_at(SECURED_BROKER, &kafka_security("ca.pem", "SCRAM-SHA-512", &good));
    p.start_both_with_env(&[("DRC_LOG", "debug")]).await;
    let db = p.db.clone();
    exec(
        ZONE_A,
        &[&format!("INSERT INTO `{db}`.orders (customer) VALUES ('from a')")],
    )
    .await;
    exec(
        common::ZONE_B,
        &[&format!("INSERT INTO `{db}`.orders (customer) VALUES ('from b')")],
    )
    .await;
    assert!(
        wait_until(Duration::from_secs(60), || async {
            p.rows(0, "orders").await.len() == 2 && p.rows(1, "orders").await.len() == 2
        })
        .await,
        "not replicated through {SECURED_BROKER}:\n{}",
        p.logs()
    );
    p.assert_converged("orders", 10, 0).await;
    p.kill9(0);
    p.kill9(1);
    let logs = p.logs();
    assert!(!logs.contains(pass.trim()), "the Kafka password appears in the logs");
}
