//! `stratbox credentials check`, `collect` and `run --feed capital --orders
//! capital` against the mock Capital.com on 127.0.0.1 (re-logins, dropped
//! streams, 429s, deals answered 502, replies lost), with every log line of
//! the session captured at trace level and searched for the secrets.

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use stratbox_capital_mock::{Faults, MockAccount, MockConfig, MockServer};

const PASSPHRASE: &str = "correct horse battery staple";

/// Runs `stratbox` with everything logged, `stdin` piped in.
fn stratbox(data_dir: &std::path::Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env("STRATBOX_LOG", "trace")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stratbox runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn random(prefix: &str) -> String {
    format!("{prefix}{:016x}", rand::random::<u64>())
}

#[test]
fn a_whole_mock_session_logs_no_secret() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let account = MockAccount { api_key: random("key"), identifier: format!("{}@example.com", random("id")), password: random("pw") };
    // Faults that make the client log in again and reconnect during the session.
    // And, for the trading run, deals answered 502 after they are made and replies held back past the timeout.
    let faults = Faults {
        token_expiry_ms: Some(2_500),
        drop_stream_every_ms: Some(1_500),
        // A window of 3 s: a retry after a burst lands in the same window
        // and passes. With 1 s, backoffs past 1 s each opened a new window
        // and met its burst: one full-suite run saw a login 429 seven times.
        rate_limit_every_ms: Some(3_000),
        rate_limit_burst: 1,
        executed_then_502_every: Some(3),
        lost_reply_every: Some(5),
        lost_reply_ms: 11_000,
        ..Faults::default()
    };
    let config = MockConfig {
        epics: vec!["AAPL".into(), "GOLD".into()],
        speed: 60.0,
        start_ms: Some(chrono::Utc::now().timestamp_millis() - 86_400_000),
        account: account.clone(),
        faults,
        ..MockConfig::default()
    };
    let mock = rt.block_on(MockServer::start(config, "127.0.0.1:0")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let url = mock.base_url();
    let mut log = String::new();

    let secrets = format!("{PASSPHRASE}\n{}\n{}\n{}\n", account.api_key, account.identifier, account.password);
    let out = stratbox(data, &["credentials", "set", "capital"], &secrets);
    assert!(out.status.success(), "{}", text(&out));
    log += &text(&out);

    let out = stratbox(data, &["credentials", "check", "--url", &url], &format!("{PASSPHRASE}\n"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("login OK") && text(&out).contains("12345678901234567"), "{}", text(&out));
    log += &text(&out);

    let out = stratbox(data, &["credentials", "check", "--url", &url], "a wrong passphrase\n");
    assert!(!out.status.success());
    assert!(text(&out).contains("wrong passphrase"), "{}", text(&out));
    log += &text(&out);

    let out = stratbox(data, &["collect", "--epics", "AAPL,GOLD", "--url", &url, "--duration", "6"], &format!("{PASSPHRASE}\n"));
    assert!(out.status.success(), "{}", text(&out));
    let collected = text(&out);
    assert!(collected.contains("collected 2 epics"), "{collected}");
    log += &collected;

    let stats = stratbox(data, &["data", "stats"], "");
    let stats = String::from_utf8_lossy(&stats.stdout).into_owned();
    for line in ["AAPL       quotes", "AAPL       bars 60s bid", "GOLD       bars 60s ask"] {
        assert!(stats.contains(line), "missing `{line}` in:\n{stats}");
    }

    // Trading through Capital.com: orders, confirms, re-logins, 502s and lost replies, all logged.
    let before = mock.issued_tokens().len();
    let plugin = support::component("tests/plugins/hostile");
    let config = data.join("trading.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nstatus_secs = 0\n[control]\nenabled = false\n[capital_broker]\npoll_ms = 300\nunknown_grace_secs = 5\n\
             [risk]\nduplicate_window_ms = 0\n[[plugin]]\npath = {plugin:?}\nname = \"churn\"\nparams = {{ mode = \"churn\", orders = 12 }}\n"
        ),
    )
    .unwrap();
    let args = ["run", "--config", config.to_str().unwrap(), "--feed", "capital", "--epics", "AAPL,GOLD", "--url", &url, "--orders", "capital", "--duration", "15"];
    let out = stratbox(data, &args, &format!("{PASSPHRASE}\n"));
    let run = text(&out);
    assert!(out.status.success(), "{run}");
    log += &run;
    let deals = mock.dealing().deals.len();
    let stats = mock.stats();
    let (gateway, lost) = (stats.executed_then_502.load(std::sync::atomic::Ordering::Relaxed), stats.lost_replies.load(std::sync::atomic::Ordering::Relaxed));
    assert!(deals >= 3 && gateway >= 1 && lost >= 1, "{deals} deals, {gateway} 502s after a deal, {lost} lost replies:\n{run}");
    assert!(mock.issued_tokens().len() > before + 2, "the trading run logged in again");
    assert!(run.contains("no clear answer"), "the faults were met and logged:\n{run}");

    let tokens = mock.issued_tokens();
    assert!(tokens.len() >= 6, "several sessions were opened ({} tokens)", tokens.len());
    assert!(mock.stats().streams_dropped.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert!(log.lines().count() > 200, "trace logging was on ({} lines)", log.lines().count());
    let mut searched = vec![PASSPHRASE.to_owned(), account.api_key.clone(), account.password.clone(), account.identifier.clone()];
    searched.extend(tokens);
    for secret in &searched {
        if let Some(line) = log.lines().find(|l| l.contains(secret.as_str())) {
            panic!("a secret reached the output: {line}");
        }
    }
}
