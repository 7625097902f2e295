//! The dashboard in a real browser: `stratbox run` on the simulator (and on
//! the Capital.com mock), then `host/dashboard/web/test/dashboard.test.mjs`
//! in Debian's Chromium through playwright-core (`node --test`). Skipped,
//! saying so, without Chromium or Node. Screenshots of every view go to
//! `target/tmp/dashboard-screenshots/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stratbox_capital_mock::{MockAccount, MockConfig, MockServer};

const PASSPHRASE: &str = "dashboard test passphrase";

fn web() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboard/web")
}

/// Chromium and Node with playwright-core, or why the test cannot run.
fn browser_tools() -> Result<(), String> {
    if !Path::new("/usr/bin/chromium").is_file() {
        return Err("no /usr/bin/chromium (install Debian's chromium package; .ci/run does)".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("no node (install Debian's nodejs; .ci/run does)".into());
    }
    if !web().join("node_modules/playwright-core").is_dir() {
        return Err(format!("no playwright-core in {}: run `npm ci` there (the dashboard's build does)", web().display()));
    }
    Ok(())
}

fn stratbox() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stratbox"));
    c.env("STRATBOX_LOG", "warn");
    c
}

fn ok(args: &[&str]) -> String {
    let out = stratbox().args(args).output().unwrap();
    assert!(out.status.success(), "stratbox {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A real research report in `<data>/reports/`: daily bars imported into the store, then a backtest.
fn research_report(data: &Path) {
    let csv = data.with_extension("csv");
    let mut text = String::from("date,open,high,low,close,volume,Name\n");
    let start = chrono::NaiveDate::from_ymd_opt(2016, 1, 4).unwrap();
    for s in 0..3 {
        let mut price = 50.0 + 10.0 * s as f64;
        for d in 0..300u64 {
            // A slow wave with a per-symbol phase: sma-cross trades it.
            price *= 1.0 + 0.02 * ((d as f64 + 20.0 * s as f64) / 9.0).sin();
            let p = (price * 100.0).round() / 100.0;
            text.push_str(&format!("{},{p},{:.2},{:.2},{p},100000,R{s}\n", start + chrono::Days::new(d), p * 1.01, p * 0.99));
        }
    }
    std::fs::write(&csv, text).unwrap();
    let d = data.to_str().unwrap();
    ok(&["data", "import", csv.to_str().unwrap(), "--data-dir", d]);
    let out = data.join("reports/sma-cross-backtest");
    ok(&["backtest", "--plugin", "sma-cross", "--param", "fast=3", "--param", "slow=9", "--out", out.to_str().unwrap(), "--data-dir", d, "--quiet"]);
}

fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The host's dashboard endpoint and control token, once it serves trades.
fn endpoint(data: &Path, host: &mut Child) -> (serde_json::Value, String) {
    let (dash, token) = files(data, host);
    let url = dash["url"].as_str().unwrap().to_owned();
    let http = reqwest::blocking::Client::builder().no_proxy().build().unwrap();
    wait_for("the first trades and positions", Duration::from_secs(120), || {
        let get = |p: &str| http.get(format!("{url}{p}")).bearer_auth(&token).send().ok()?.json::<serde_json::Value>().ok();
        let trades = get("api/trades?limit=1")?;
        let positions = get("api/control/v1/plugins")?;
        let open: u64 = positions.as_array()?.iter().filter_map(|p| p["book"]["open_positions"].as_u64()).sum();
        (trades["total"].as_u64()? > 0 && open > 0).then_some(())
    });
    (dash, token)
}

/// `dashboard.json` and the control token, once the host has written them.
fn files(data: &Path, host: &mut Child) -> (serde_json::Value, String) {
    let read = |f: &str| std::fs::read(data.join(f)).ok().and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let (dash, control) = wait_for("the host's dashboard.json and control.json", Duration::from_secs(90), || {
        if let Ok(Some(status)) = host.try_wait() {
            panic!("the host exited early: {status}");
        }
        Some((read("dashboard.json")?, read("control.json")?))
    });
    (dash, control["token"].as_str().unwrap().to_owned())
}

/// Runs the browser suite in `mode` against the host; the host is asked to stop by its last test.
fn browse(mode: &str, dash: &serde_json::Value, token: &str, swap: &Path, host: &mut Child) -> Option<serde_json::Value> {
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let figures = shots.join(format!("figures-{mode}.json"));
    let _ = std::fs::remove_file(&figures);
    let out = Command::new("node")
        .args(["--test", "--test-reporter=spec", "--test-concurrency=1", "test/dashboard.test.mjs"])
        .current_dir(web())
        .env("STRATBOX_URL", dash["url"].as_str().unwrap())
        .env("STRATBOX_LOGIN_URL", dash["login_url"].as_str().unwrap())
        .env("STRATBOX_TOKEN", token)
        .env("STRATBOX_SWAP_PATH", swap)
        .env("STRATBOX_SHOTS", &shots)
        .env("STRATBOX_MODE", mode)
        .env("STRATBOX_FIGURES", &figures)
        .output()
        .expect("node runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    // The suite's last test shut the host down; a failed suite may not have.
    let stopping = Instant::now();
    while host.try_wait().ok().flatten().is_none() && stopping.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(200));
    }
    if host.try_wait().ok().flatten().is_none() {
        let _ = host.kill();
        let _ = host.wait();
    }
    assert!(out.status.success(), "the browser suite failed ({mode}):\n{text}");
    assert!(text.contains("fail 0"), "{text}");
    std::fs::read(&figures).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

#[test]
fn every_view_and_control_in_chromium_against_the_simulator() {
    if let Err(why) = browser_tools() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    research_report(&data);
    let config = dir.path().join("host.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\npace_ms = 40\nstatus_secs = 0\n[dashboard]\nlisten = \"127.0.0.1:0\"\n\
             [[plugin]]\npath = \"bundled:sma-cross\"\nparams = {{ fast = 3, slow = 8 }}\n\
             [[plugin]]\npath = \"bundled:stops\"\nprotects = [\"sma-cross\"]\n\
             [[plugin]]\npath = \"bundled:zscore-guard\"\n"
        ),
    )
    .unwrap();
    let mut host = stratbox().args(["run", "--config", config.to_str().unwrap(), "--duration", "600"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let (dash, token) = endpoint(&data, &mut host);
    let swap = data.join("bundled-plugins/sma_cross.wasm");
    let figures = browse("full", &dash, &token, &swap, &mut host).expect("the full suite writes its figures");
    println!("figures: {figures}");
    assert!(figures["first_load_ms"]["median"].as_f64().is_some() && figures["event_to_screen_ms"]["p99"].as_f64().is_some(), "{figures}");
}

#[test]
fn every_view_in_chromium_against_the_capital_mock() {
    if let Err(why) = browser_tools() {
        eprintln!("skipped: {why}");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let account = MockAccount { api_key: "dash-key".into(), identifier: "dash@example.com".into(), password: "dash-password".into() };
    let config = MockConfig {
        epics: vec!["AAPL".into(), "GOLD".into(), "US500".into()],
        speed: 120.0,
        start_ms: Some(chrono::Utc::now().timestamp_millis() - 86_400_000),
        account: account.clone(),
        ..MockConfig::default()
    };
    let mock = rt.block_on(MockServer::start(config, "127.0.0.1:0")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    research_report(&data);
    let mut set = stratbox().args(["--data-dir", data.to_str().unwrap(), "credentials", "set", "capital"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    set.stdin.take().unwrap().write_all(format!("{PASSPHRASE}\n{}\n{}\n{}\n", account.api_key, account.identifier, account.password).as_bytes()).unwrap();
    assert!(set.wait().unwrap().success());
    let host_config = dir.path().join("capital.toml");
    std::fs::write(
        &host_config,
        format!(
            "data_dir = {data:?}\nstatus_secs = 0\n[dashboard]\nlisten = \"127.0.0.1:0\"\n\
             [[plugin]]\npath = \"bundled:sma-cross\"\nparams = {{ fast = 2, slow = 4 }}\n\
             [[plugin]]\npath = \"bundled:spread-guard\"\n"
        ),
    )
    .unwrap();
    let url = mock.base_url();
    let mut host = stratbox()
        .args(["run", "--config", host_config.to_str().unwrap(), "--feed", "capital", "--epics", "AAPL,GOLD,US500", "--url", &url, "--duration", "600"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    host.stdin.take().unwrap().write_all(format!("{PASSPHRASE}\n").as_bytes()).unwrap();
    let (dash, token) = endpoint(&data, &mut host);
    let swap = data.join("bundled-plugins/sma_cross.wasm");
    browse("views", &dash, &token, &swap, &mut host);
}

#[test]
fn beyond_loopback_the_dashboard_is_served_over_tls_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("host.toml");
    std::fs::write(&config, format!("data_dir = {data:?}\nstatus_secs = 0\n[dashboard]\nlisten = \"0.0.0.0:0\"\n")).unwrap();
    let mut host = stratbox().args(["run", "--config", config.to_str().unwrap(), "--duration", "120"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let (dash, token) = files(&data, &mut host);
    let url = dash["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let cert = std::fs::read(data.join("dashboard-tls/cert.pem")).expect("a self-signed certificate was generated");
    assert_eq!(dash["tls_fingerprint_sha256"].as_str().unwrap().len(), 64);
    let tls = reqwest::blocking::Client::builder().no_proxy().add_root_certificate(reqwest::Certificate::from_pem(&cert).unwrap()).build().unwrap();
    let page = tls.get(&url).send().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("<title>Stratbox</title>"));
    let login = tls.post(format!("{url}api/login")).json(&serde_json::json!({ "token": token })).send().unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Secure"), "{cookie}");
    // No plain HTTP on that port, and an untrusted certificate is not accepted silently.
    let plain = reqwest::blocking::Client::builder().no_proxy().build().unwrap();
    let http_url = url.replacen("https://", "http://", 1);
    assert!(plain.get(&http_url).send().map(|r| r.status().is_success()).unwrap_or(false) == false, "plain HTTP is not served");
    assert!(plain.get(&url).send().is_err(), "the self-signed certificate is not trusted without being added");
    let control: serde_json::Value = serde_json::from_slice(&std::fs::read(data.join("control.json")).unwrap()).unwrap();
    plain.post(format!("{}/v1/shutdown", control["url"].as_str().unwrap())).bearer_auth(&token).send().unwrap();
    let out = host.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TLS with a self-signed certificate") && stderr.contains("SHA-256"), "{stderr}");
}
