//! The `stratbox` binary end to end: help, inspect, errors, scaffolding, and
//! a running host operated over the control API by separate CLI processes.

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{component, repo};

fn stratbox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stratbox")).args(args).env("STRATBOX_LOG", "warn").output().expect("stratbox runs")
}

fn ok(args: &[&str]) -> String {
    let out = stratbox(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stratbox {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails, with exactly one line on stderr that says why.
fn fails(args: &[&str]) -> String {
    let out = stratbox(args);
    assert!(!out.status.success(), "stratbox {args:?} should fail");
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(stderr.lines().count(), 1, "one-line cause expected, got:\n{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

#[test]
fn help_is_everywhere() {
    for args in [&["--help"][..], &["run", "--help"], &["plugin", "--help"], &["plugin", "build", "--help"], &["plugin", "swap", "--help"]] {
        assert!(ok(args).contains("Usage: stratbox"), "{args:?}");
    }
}

#[test]
fn inspect_shows_contract_roles_params_imports_and_exports() {
    let wasm = component("plugins/zscore-guard");
    let text = ok(&["plugin", "inspect", wasm.to_str().unwrap()]);
    for expected in ["zscore-guard 0.1.0", "contract  stratbox:plugin@0.1.1", "roles     anomaly-detector", "window", "in [5, 10000]",
        "imports   stratbox:plugin/types@0.1.1", "stratbox:plugin/anomaly-detector@0.1.1"] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    let json: serde_json::Value = serde_json::from_str(&ok(&["plugin", "inspect", "--json", wasm.to_str().unwrap()])).unwrap();
    assert_eq!(json["roles"][0], "anomaly-detector");
    assert_eq!(json["size"].as_u64(), Some(std::fs::metadata(&wasm).unwrap().len()));
}

#[test]
fn errors_are_one_line_and_name_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, "hello").unwrap();
    assert!(fails(&["plugin", "inspect", junk.to_str().unwrap()]).contains("not a WebAssembly file"));
    let rogue = component("tests/plugins/rogue-import");
    assert!(fails(&["plugin", "inspect", rogue.to_str().unwrap()]).contains("imports `wasi:cli/environment@0.2.0`"));
    assert!(fails(&["plugin", "list", "--data-dir", dir.path().to_str().unwrap()]).contains("no running host found"));
    assert!(fails(&["plugin", "build", dir.path().to_str().unwrap()]).contains("is neither a plugin crate (Cargo.toml) nor a Python plugin project"));
    let bad_config = dir.path().join("bad.toml");
    std::fs::write(&bad_config, "pace_ms = \"fast\"\n").unwrap();
    let e = fails(&["run", "--config", bad_config.to_str().unwrap()]);
    assert!(e.contains("bad.toml") && e.contains("pace_ms"), "{e}");
    assert!(fails(&["plugin", "new", "Bad_Name", "--dir", dir.path().to_str().unwrap()]).contains("not a valid plugin name"));
}

#[test]
fn a_scaffolded_plugin_tests_and_builds_at_once() {
    let dir = tempfile::tempdir().unwrap();
    ok(&["plugin", "new", "dip-buyer", "--dir", dir.path().to_str().unwrap()]);
    let crate_dir = dir.path().join("dip-buyer");
    // Share the plugins' target dir so the SDK's dependencies are not rebuilt.
    let target = repo().join("plugins/target");
    let test = Command::new(env!("CARGO")).arg("test").current_dir(&crate_dir).env("CARGO_TARGET_DIR", &target).output().unwrap();
    assert!(test.status.success(), "cargo test in the new crate:\n{}", String::from_utf8_lossy(&test.stderr));
    assert!(String::from_utf8_lossy(&test.stdout).contains("test result: ok. 1 passed"));
    let out = crate_dir.join("dip-buyer.wasm");
    let build = Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .args(["plugin", "build", crate_dir.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", String::from_utf8_lossy(&build.stderr));
    assert!(String::from_utf8_lossy(&build.stdout).contains("via rustup target wasm32-unknown-unknown"));
    assert!(ok(&["plugin", "inspect", out.to_str().unwrap()]).contains("dip-buyer 0.1.0 (z-score mean reversion)"));
}

/// README's Python workflow: scaffold, pytest, build, inspect, backtest, then
/// load into a running host and hot swap a rebuilt version.
#[test]
fn a_python_plugin_from_scaffold_to_backtest_and_a_hot_swap() {
    let dir = tempfile::tempdir().unwrap();
    ok(&["plugin", "new", "dip-buyer", "--lang", "python", "--dir", dir.path().to_str().unwrap()]);
    let project = dir.path().join("dip-buyer");
    // The tests' venv of the pinned tools (scripts/test.sh makes it; made here if missing).
    let componentize_py = support::python_tools_componentize_py();
    let pytest = componentize_py.with_file_name("pytest");
    let test = Command::new(&pytest).arg("-q").arg("-p").arg("no:cacheprovider").current_dir(&project).output().unwrap();
    assert!(test.status.success() && String::from_utf8_lossy(&test.stdout).contains("1 passed"), "pytest in the new project:\n{}", String::from_utf8_lossy(&test.stdout));
    let build = |out: &Path| {
        let b = Command::new(env!("CARGO_BIN_EXE_stratbox"))
            .args(["plugin", "build", project.to_str().unwrap(), "-o", out.to_str().unwrap()])
            .env("STRATBOX_COMPONENTIZE_PY", &componentize_py)
            .output()
            .unwrap();
        assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
        String::from_utf8_lossy(&b.stdout).into_owned()
    };
    let v1 = dir.path().join("dip-v1.wasm");
    assert!(build(&v1).contains("via componentize-py 0.25.1"));
    let inspected = ok(&["plugin", "inspect", v1.to_str().unwrap()]);
    for expected in ["dip-buyer 0.1.0 (z-score mean reversion)", "language  python (CPython 3.14.0 bundled)", "roles     strategy", "window"] {
        assert!(inspected.contains(expected), "missing `{expected}` in:\n{inspected}");
    }
    assert!(!inspected.contains("wasi:"), "no WASI import: {inspected}");

    // A backtest of the component on imported daily bars.
    let csv = dir.path().join("daily.csv");
    daily_csv(&csv, 4, 300);
    let research = dir.path().join("research");
    let research = research.to_str().unwrap();
    ok(&["data", "import", csv.to_str().unwrap(), "--data-dir", research]);
    let report = dir.path().join("report");
    let out = ok(&["backtest", "--plugin", v1.to_str().unwrap(), "--param", "window=10", "--param", "threshold=1", "--capital", "1e6", "--out", report.to_str().unwrap(), "--data-dir", research]);
    assert!(out.contains("1200 bars") && out.contains("Sharpe"), "{out}");
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report.join("metrics.json")).unwrap()).unwrap();
    assert!(metrics["fills"].as_u64().unwrap_or(0) > 0, "the strategy traded: {metrics}");
    assert_eq!(metrics["faults"].as_array().map(Vec::len), Some(0), "{metrics}");

    // Load it into a running host, then swap in a rebuilt 0.2.0.
    let host = RunningHost::start(dir.path());
    let loaded = host.cli(&["plugin", "load", v1.to_str().unwrap(), "--name", "dip", "--param", "window=10"]);
    assert!(loaded.contains("loaded dip 0.1.0 (running)"), "{loaded}");
    host.wait_for("dip to be called", |l| find(l, "dip").is_some_and(|p| p["stats"]["calls"].as_u64().unwrap_or(0) > 5));
    let module = project.join("dip_buyer.py");
    std::fs::write(&module, std::fs::read_to_string(&module).unwrap().replace("\"0.1.0\"", "\"0.2.0\"")).unwrap();
    let v2 = dir.path().join("dip-v2.wasm");
    build(&v2);
    let swapped = host.cli(&["plugin", "swap", "dip", v2.to_str().unwrap(), "--param", "window=10"]);
    assert!(swapped.contains("swapped dip: 0.1.0 -> 0.2.0"), "{swapped}");
    let l = host.wait_for("dip 0.2.0 running", |l| find(l, "dip").is_some_and(|p| p["version"] == "0.2.0" && p["health"] == "running"));
    assert_eq!(find(&l, "dip").unwrap()["swaps"], 1);
    assert_eq!(find(&l, "sma-cross").unwrap()["health"], "running", "the Rust plugins beside it run on");
}

struct RunningHost {
    child: Child,
    data_dir: String,
    /// The newest of what the host wrote to stdout and to stderr. Both pipes
    /// are read all along: a host whose pipe fills blocks on its next log
    /// line (it warns of every anomaly alarm, about 2 KB/s on this feed).
    stdout: Captured,
    stderr: Captured,
    readers: Vec<std::thread::JoinHandle<()>>,
}

type Captured = std::sync::Arc<std::sync::Mutex<String>>;

/// Keeps reading `pipe` into `into`, keeping the newest 64 KiB.
fn drain(pipe: impl std::io::Read + Send + 'static, into: Captured) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut out = into.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
            if out.len() > 64 * 1024 {
                let cut = out.len() - 48 * 1024;
                let cut = (cut..out.len()).find(|i| out.is_char_boundary(*i)).unwrap_or(out.len());
                out.drain(..cut);
            }
        }
    })
}

impl RunningHost {
    fn start(dir: &Path) -> Self {
        let config = dir.join("host.toml");
        let sma = component("examples/sma-cross");
        let guard = component("plugins/zscore-guard");
        std::fs::write(
            &config,
            format!(
                // Generous deadlines: a loaded CI machine must not quarantine the bystanders.
                // A feed of 10 minutes (killed on drop): a test must not outlive its host when
                // a loaded machine makes a compile slow.
                "pace_ms = 2\nstatus_secs = 0\n[sandbox.defaults]\ndeadline_ms = 10000\n[feed]\nkind = \"simulator\"\ninstruments = 10\nbars = 300000\n\
                 [[plugin]]\npath = {sma:?}\nparams = {{ fast = 3, slow = 8 }}\n[[plugin]]\npath = {guard:?}\n"
            ),
        )
        .unwrap();
        let data_dir = dir.join("data").to_str().unwrap().to_owned();
        let mut child = Command::new(env!("CARGO_BIN_EXE_stratbox"))
            .args(["run", "--config", config.to_str().unwrap(), "--data-dir", &data_dir, "--duration", "600"])
            .env("STRATBOX_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (stdout, stderr) = (Captured::default(), Captured::default());
        let readers = vec![drain(child.stdout.take().unwrap(), stdout.clone()), drain(child.stderr.take().unwrap(), stderr.clone())];
        let host = Self { child, data_dir, stdout, stderr, readers };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !Path::new(&host.data_dir).join("control.json").exists() {
            assert!(Instant::now() < deadline, "host did not publish its control file");
            std::thread::sleep(Duration::from_millis(50));
        }
        host
    }

    fn cli(&self, args: &[&str]) -> String {
        let mut all = args.to_vec();
        all.extend(["--data-dir", &self.data_dir]);
        let out = stratbox(&all);
        assert!(out.status.success(), "stratbox {all:?} failed: {}\nthe host's newest output:\n{}", String::from_utf8_lossy(&out.stderr), self.tail());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The last lines the host wrote to stderr, for a failure's message.
    fn tail(&self) -> String {
        let err = self.stderr.lock().unwrap();
        let lines: Vec<&str> = err.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Everything the exited host's stdout still holds, once its readers are done.
    fn stdout_after_exit(&mut self) -> String {
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        self.stdout.lock().unwrap().clone()
    }

    fn list(&self) -> Vec<serde_json::Value> {
        serde_json::from_str(&self.cli(&["plugin", "list", "--json"])).unwrap()
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let l = self.list();
            if pred(&l) {
                return l;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}: {l:#?}\nthe host's newest output:\n{}", self.tail());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RunningHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn find<'a>(list: &'a [serde_json::Value], name: &str) -> Option<&'a serde_json::Value> {
    list.iter().find(|p| p["name"] == name)
}

#[test]
fn operate_a_running_host_over_the_control_api() {
    let dir = tempfile::tempdir().unwrap();
    let host = RunningHost::start(dir.path());

    let table = host.cli(&["plugin", "list"]);
    assert!(table.contains("sma-cross") && table.contains("zscore-guard") && table.contains("running"), "{table}");
    // A table: every numeric column ends where its header does.
    let lines: Vec<&str> = table.lines().filter(|l| !l.starts_with(' ')).collect();
    for column in ["calls", "fuel used", "intents", "faults", "restarts", "P&L"] {
        let end = lines[0].find(column).unwrap_or_else(|| panic!("no `{column}` column: {table}")) + column.len();
        for row in &lines[1..] {
            assert!(row.len() >= end && row.as_bytes()[end - 1] != b' ' && row.as_bytes().get(end).is_none_or(|b| *b == b' '), "`{column}` is not aligned in:\n{table}");
        }
    }

    // A broken plugin loaded at run time is quarantined; the host runs on.
    let hostile = component("tests/plugins/hostile");
    let loaded = host.cli(&["plugin", "load", hostile.to_str().unwrap(), "--name", "bad", "--param", "mode=panic"]);
    assert!(loaded.contains("loaded bad 0.1.0 (running)"), "{loaded}");
    let l = host.wait_for("bad to be quarantined", |l| find(l, "bad").is_some_and(|p| p["health"] == "quarantined"));
    assert!(find(&l, "bad").unwrap()["reason"].as_str().unwrap().contains("panicked in"), "{l:#?}");
    assert!(host.cli(&["plugin", "list"]).contains("panicked in"), "the table shows the reason");

    // Hot swap of the strategy with a build, while events flow.
    let sma = component("examples/sma-cross");
    let before = find(&host.list(), "sma-cross").unwrap()["stats"]["calls"].as_u64().unwrap();
    let swapped = host.cli(&["plugin", "swap", "sma-cross", sma.to_str().unwrap(), "--param", "fast=3", "--param", "slow=8"]);
    assert!(swapped.contains("swapped sma-cross: 0.1.0 -> 0.1.0, events held"), "{swapped}");
    let l = host.wait_for("calls after the swap", |l| find(l, "sma-cross").is_some_and(|p| p["stats"]["calls"].as_u64().unwrap() > before + 10));
    assert_eq!(find(&l, "sma-cross").unwrap()["swaps"], 1);

    // A failing swap leaves the old one running and says why.
    let out = stratbox(&["plugin", "swap", "sma-cross", hostile.to_str().unwrap(), "--data-dir", &host.data_dir]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("could not take over its predecessor's state"), "{stderr}");
    assert_eq!(find(&host.list(), "sma-cross").unwrap()["health"], "running");

    // Unload, and a wrong token is refused.
    assert!(host.cli(&["plugin", "unload", "zscore-guard"]).contains("unloaded zscore-guard"));
    assert!(find(&host.list(), "zscore-guard").is_none());
    let endpoint: serde_json::Value = serde_json::from_slice(&std::fs::read(Path::new(&host.data_dir).join("control.json")).unwrap()).unwrap();
    let resp = reqwest::blocking::Client::builder().no_proxy().build().unwrap()
        .get(format!("{}/v1/plugins", endpoint["url"].as_str().unwrap())).bearer_auth("wrong").send().unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::UNAUTHORIZED);
    // Idle connections hold at most the connection limit, and only until the header timeout.
    {
        use std::io::Read;
        let addr = endpoint["url"].as_str().unwrap().trim_start_matches("http://").to_owned();
        let closed_within = |s: &mut std::net::TcpStream, d: Duration| {
            s.set_read_timeout(Some(d)).unwrap();
            matches!(s.read(&mut [0u8; 64]), Ok(0)) || matches!(s.read(&mut [0u8; 64]), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
        };
        let opened = Instant::now();
        let mut idle: Vec<std::net::TcpStream> = (0..stratbox_engine::MAX_CONNECTIONS).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(300));
        let mut one_more = std::net::TcpStream::connect(&addr).unwrap();
        assert!(closed_within(&mut one_more, Duration::from_secs(2)), "a connection past the limit is closed at once");
        // A partial request line never completes: closed by the header timeout, as are the silent ones.
        std::io::Write::write_all(&mut idle[0], b"GET /v1/status HTTP/1.1\r\nHost: x\r\n").unwrap();
        for s in &mut idle {
            assert!(closed_within(s, stratbox_engine::HEADER_TIMEOUT * 3), "an idle connection outlived the header timeout");
        }
        assert!(opened.elapsed() >= stratbox_engine::HEADER_TIMEOUT - Duration::from_millis(500), "closed by the timeout, not at once");
        assert!(!host.list().is_empty(), "the API serves again once they are gone");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(Path::new(&host.data_dir).join("control.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is private");
    }

    // Reports of the running host (it holds the journal): served through the control API.
    let live: Vec<serde_json::Value> = serde_json::from_str(&host.cli(&["report", "tca", "--format", "json"])).unwrap();
    assert!(live.iter().all(|r| r["notional"].is_number()), "{live:?}");
    let curve: Vec<serde_json::Value> = serde_json::from_str(&host.cli(&["report", "equity", "--format", "json"])).unwrap();
    assert!(!curve.is_empty() && curve[0]["equity"].is_number(), "the equity curve of the running host: {curve:?}");

    // Emergency flatten halts trading (everything working cancelled, every position
    // closed); resume makes it active again. There is something to flatten first.
    // The strategy trades hundreds of bars a second: the position seen may be closed by the time
    // the flatten arrives. Then nothing was held, trading resumes and it tries again (bounded).
    let mut flat = serde_json::Value::Null;
    for _ in 0..10 {
        host.wait_for("sma-cross to hold a position", |l| find(l, "sma-cross").is_some_and(|p| p["book"]["open_positions"].as_u64() > Some(0)));
        flat = serde_json::from_str(&host.cli(&["flatten", "--all"])).unwrap();
        if flat["closing_orders"].as_array().is_some_and(|c| !c.is_empty()) {
            break;
        }
        host.cli(&["resume"]);
    }
    assert_eq!(flat["risk"]["global"]["state"], "halted", "{flat}");
    assert_eq!(flat["risk"]["global"]["reason"], "emergency flatten by the operator");
    let closing = flat["closing_orders"].as_array().unwrap();
    assert!(!closing.is_empty() && closing.iter().all(|c| c[0] == "sma-cross" && c[2].as_f64().is_some_and(|q| q != 0.0)), "{flat}");
    assert!(flat["cancelled_orders"].is_u64(), "{flat}");
    let l = host.wait_for("every position closed and every order cancelled", |l| {
        !l.is_empty() && l.iter().all(|p| p["book"]["open_positions"] == 0 && p["book"]["working_orders"] == 0)
    });
    assert!(find(&l, "sma-cross").is_some(), "{l:#?}");
    let status: serde_json::Value = serde_json::from_str(&host.cli(&["status"])).unwrap();
    assert_eq!(status["risk"]["global"]["state"], "halted");
    assert!(status["risk"].as_object().unwrap().contains_key("var"), "the VaR estimate has its place (null: no [risk.var_limit]): {status}");
    let out = stratbox(&["var", "--data-dir", &host.data_dir]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("needs [risk.var_limit]"), "{}", String::from_utf8_lossy(&out.stderr));
    let resumed: serde_json::Value = serde_json::from_str(&host.cli(&["resume"])).unwrap();
    assert_eq!((resumed["global"]["state"].as_str(), resumed["global"]["reason"].as_str()), (Some("active"), Some("resumed by the operator")));
    let out = stratbox(&["flatten", "--data-dir", &host.data_dir]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--all"), "flatten needs --all");

    // Status and shutdown: the host prints its summary and exits cleanly.
    let status: serde_json::Value = serde_json::from_str(&host.cli(&["status"])).unwrap();
    assert!(status["stats"]["events"].as_u64().unwrap() > 0 && status["stats"]["swaps"] == 1, "{status}");
    host.cli(&["shutdown"]);
    let mut host = host;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = host.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "host did not exit after shutdown");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let stdout = host.stdout_after_exit();
    assert!(stdout.contains("== run summary ==") && stdout.contains("sma-cross") && stdout.contains("quarantined: "), "{stdout}");
    assert!(!Path::new(&host.data_dir).join("control.json").exists(), "control file removed at exit");

    // The journal of the run, as reports: every fill of sma-cross, its P&L and costs agree.
    let trades: Vec<serde_json::Value> = serde_json::from_str(&ok(&["report", "trades", "--plugin", "sma-cross", "--format", "json", "--data-dir", &host.data_dir])).unwrap();
    let pnl: Vec<serde_json::Value> = serde_json::from_str(&ok(&["report", "pnl", "--plugin", "sma-cross", "--format", "json", "--data-dir", &host.data_dir])).unwrap();
    let tca: Vec<serde_json::Value> = serde_json::from_str(&ok(&["report", "tca", "--plugin", "sma-cross", "--format", "json", "--data-dir", &host.data_dir])).unwrap();
    let fills = |rows: &[serde_json::Value]| rows.iter().map(|r| r["fills"].as_u64().unwrap()).sum::<u64>();
    assert_eq!(fills(&pnl) as usize, trades.len());
    assert_eq!(fills(&tca) as usize, trades.len());
    assert!(trades.iter().all(|t| t["plugin"] == "sma-cross" && t["symbol"].as_str().unwrap().starts_with("SIM")), "{trades:?}");
    // Orders that met the market have their arrival mid (the first bar's open once live), and slippage against it.
    assert!(trades.iter().any(|t| t["arrival_mid"].is_number() && t["arrival_slippage_bps"].is_number()), "{trades:?}");
    let csv = ok(&["report", "trades", "--format", "csv", "--data-dir", &host.data_dir]);
    assert!(csv.starts_with("time,plugin,symbol,side,quantity,price,fee,client_id,decision_price,slippage_bps"), "{csv}");
    assert!(fails(&["report", "pnl", "--from", "yesterday", "--data-dir", &host.data_dir]).contains("--from"));
}

#[test]
fn data_import_stats_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("abc_trades.csv");
    std::fs::write(
        &csv,
        "datetime,price,quantity,exchange,condition,suspicious\n\
         2020-01-02 10:00:01,10.0,100,Q,1,0\n2020-01-02 10:00:30,10.5,50,Q,1,0\n2020-01-02 10:01:05,10.25,10,Q,1,0\n2020-01-02 10:01:06,NaN,10,Q,1,0\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let out = ok(&["data", "import", csv.to_str().unwrap(), "--tz", "UTC", "--data-dir", d]);
    assert!(out.contains("4 rows, 3 accepted (0 of them flagged {}), 1 rejected {NotFinite: 1}"), "{out}");
    // The quarantine, listed: the record, its file and line, and why.
    let listed = ok(&["data", "quarantine", "--data-dir", d]);
    assert!(listed.contains("ABC") && listed.contains("not-finite") && listed.contains("dropped") && listed.contains("abc_trades.csv"), "{listed}");
    let rows: serde_json::Value = serde_json::from_str(&ok(&["data", "quarantine", "--reason", "not-finite", "--format", "json", "--data-dir", d])).unwrap();
    assert_eq!((rows[0]["line"].as_u64(), rows[0]["symbol"].as_str()), (Some(5), Some("ABC")));
    assert_eq!(ok(&["data", "quarantine", "--symbol", "XYZ", "--format", "csv", "--data-dir", d]), "", "no row of another symbol");
    // A single-symbol daily file, named by --symbol; a jump in it is kept and flagged.
    let index = dir.path().join("index.csv");
    let mut text = String::from("Date,Open,High,Low,Close,Adj Close,Volume\n");
    for day in 1..=28 {
        let c = if day < 25 { 100.0 + (day % 2) as f64 } else { 300.0 };
        text.push_str(&format!("2021-02-{day:02},{c},{},{},{c},{},1000\n", c + 1.0, c - 1.0, c * 0.9));
    }
    std::fs::write(&index, text).unwrap();
    let out = ok(&["data", "import", index.to_str().unwrap(), "--symbol", "IDX", "--data-dir", d]);
    assert!(out.contains("28 rows, 28 accepted (1 of them flagged {Spike: 1})"), "{out}");
    let spikes = ok(&["data", "quarantine", "--reason", "spike", "--format", "csv", "--data-dir", d]);
    assert!(spikes.lines().nth(1).is_some_and(|l| l.starts_with("IDX,") && l.contains(",true,")), "{spikes}");
    let bad = stratbox(&["data", "import", index.to_str().unwrap(), "--spikes", "sometimes", "--data-dir", d]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("`sometimes`: expected drop, flag or off"));
    let stats: serde_json::Value = serde_json::from_str(&ok(&["data", "stats", "--json", "--data-dir", d])).unwrap();
    let trades = stats.as_array().unwrap().iter().find(|s| s["series"] == "trades").unwrap();
    assert_eq!((trades["symbol"].as_str(), trades["rows"].as_u64()), (Some("ABC"), Some(3)));
    let bars = ok(&["data", "export", "--symbol", "ABC", "--period", "60", "--data-dir", d]);
    assert_eq!(bars, "start,open,high,low,close,volume\n2020-01-02 10:00:00,10,10.5,10,10.5,150\n2020-01-02 10:01:00,10.25,10.25,10.25,10.25,10\n");
    let ticks = ok(&["data", "export", "--symbol", "ABC", "--series", "trades", "--from", "2020-01-02 10:00:30", "--data-dir", d]);
    assert_eq!(ticks.lines().count(), 3, "{ticks}");
    assert!(fails(&["data", "export", "--symbol", "NOPE", "--data-dir", d]).contains("no instrument `NOPE`"));
    assert!(fails(&["data", "import", dir.path().join("missing.csv").to_str().unwrap(), "--data-dir", d]).contains("missing.csv"));
}

/// kill -9 during ingest, at random points, many times: the store always
/// opens, holds exactly a prefix of the file, and keeps every commit the
/// importer reported durable.
#[test]
fn kill_9_during_import_never_breaks_the_store_or_loses_a_durable_commit() {
    use std::io::BufRead;
    use stratbox_market::store::{MarketStore, Series, StoreConfig};

    const ROWS: i64 = 300_000;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("crash_trades.csv");
    let t0 = 1_577_923_200_000_000_000i64; // 2020-01-02 00:00:00 UTC
    let mut text = String::from("datetime,price,quantity,exchange,condition,suspicious\n");
    for i in 0..ROWS {
        let ms = i * 10;
        text.push_str(&format!("2020-01-02 {:02}:{:02}:{:02}.{:03},{},{},Q,1,0\n", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000, 100.0 + (i % 50) as f64 * 0.01, 1 + i % 7));
    }
    std::fs::write(&csv, text).unwrap();

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut outcomes = Vec::new();
    for round in 0..8 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(200 + seed % 4_000);
        let data = dir.path().join(format!("data-{round}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_stratbox"))
            .args(["data", "import", csv.to_str().unwrap(), "--tz", "UTC", "--progress", "--data-dir", data.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("durable ").and_then(|n| n.parse::<u64>().ok()))
                .last()
                .unwrap_or(0)
        });
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let durable = reader.join().unwrap();

        let store = MarketStore::open(&data.join("market"), StoreConfig::default()).expect("the store opens after kill -9");
        let rows = match store.instrument_id_of("CRASH") {
            Some(id) => store.range(id, Series::Trades, i64::MIN, i64::MAX).unwrap(),
            None => Vec::new(),
        };
        assert!(rows.len() as u64 >= durable, "round {round}: {} rows stored, {durable} were reported durable", rows.len());
        for (i, r) in rows.iter().enumerate() {
            let i = i as i64;
            assert_eq!((r.time, r.fields[0], r.fields[1]), (t0 + i * 10_000_000, 100.0 + (i % 50) as f64 * 0.01, (1 + i % 7) as f64), "round {round}: row {i} is not the file's row {i}");
        }
        outcomes.push((delay.as_millis(), durable, rows.len()));
    }
    eprintln!("kill -9 rounds (delay ms, durable, stored): {outcomes:?}");
    // The kills landed mid-import: part of the file stored, part of it reported durable.
    let mid_store = outcomes.iter().filter(|(_, _, stored)| *stored > 0 && (*stored as i64) < ROWS).count();
    let mid_durable = outcomes.iter().filter(|(_, durable, _)| *durable > 0 && (*durable as i64) < ROWS).count();
    assert!(mid_store >= 2 && mid_durable >= 1, "too few kills landed mid-import: {outcomes:?}");
}

#[test]
fn credentials_are_prompted_for_encrypted_and_never_shown() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let with_stdin = |args: &[&str], input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stratbox"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let secrets = ["KEY-SECRET-1", "me@example.com", "pw-SECRET-2", "correct horse battery staple"];
    let set = with_stdin(&["credentials", "set", "capital", "--data-dir", d], &format!("{}\n{}\n{}\n{}\n", secrets[3], secrets[0], secrets[1], secrets[2]));
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let show = with_stdin(&["credentials", "show", "--data-dir", d], &format!("{}\n", secrets[3]));
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(show.status.success() && shown.contains("api_key: \"*** (12 chars)\""), "{shown}");
    let wrong = with_stdin(&["credentials", "show", "--data-dir", d], "not the passphrase at all\n");
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success() && err.trim().starts_with("error: wrong passphrase for") && err.trim().lines().count() == 1, "{err}");
    for out in [&set, &show, &wrong] {
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        for s in &secrets {
            assert!(!all.contains(s), "a secret reached the output: {all}");
        }
    }
    let file = std::fs::read_to_string(dir.path().join("credentials.json")).unwrap();
    assert!(secrets.iter().all(|s| !file.contains(s)), "nothing in clear at rest");
    // There is no way to pass a secret as an argument.
    assert!(!stratbox(&["credentials", "set", "capital", "--password", "x", "--data-dir", d]).status.success());
}

/// The binary carries its bundled plugins: copied out of the repository and
/// run from an empty folder, its main job runs (it used to stop with
/// "bundled plugin target/plugins/sma_cross.wasm not found").
#[test]
fn the_binary_runs_its_main_job_from_any_folder() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("stratbox");
    std::fs::copy(env!("CARGO_BIN_EXE_stratbox"), &bin).unwrap();
    let out = Command::new(&bin)
        .args(["run", "--duration", "3", "--json"])
        .current_dir(dir.path())
        .env_remove("STRATBOX_PLUGIN_DIR")
        .env_remove("STRATBOX_DATA")
        .env("STRATBOX_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = summary["plugins"].as_array().unwrap().iter().filter(|p| p["health"] == "running").filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["sma-cross", "stops", "zscore-guard"], "{summary:#}");
    assert!(dir.path().join("stratbox-data/bundled-plugins/sma_cross.wasm").is_file(), "written where the data lives");
}

/// A daily CSV of `symbols` x `days` seeded mean-reverting closes (crossing often).
fn daily_csv(path: &std::path::Path, symbols: usize, days: i64) {
    let mut text = String::from("date,open,high,low,close,volume,Name\n");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let start = chrono::NaiveDate::from_ymd_opt(2015, 1, 1).unwrap();
    for s in 0..symbols {
        let base = 40.0 + s as f64;
        let mut price = base;
        for d in 0..days {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            price = (price * (1.0 + ((seed % 2001) as f64 - 1000.0) / 1000.0 * 0.03) + 0.05 * (base - price)).max(1.0);
            let p = (price * 100.0).round() / 100.0;
            let day = start + chrono::Days::new(d as u64);
            text.push_str(&format!("{day},{p},{:.2},{:.2},{p},100000,S{s}\n", p * 1.01, p * 0.99));
        }
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn research_commands_from_import_to_report_and_three_shard_processes_merge_into_the_whole_study() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("daily.csv");
    daily_csv(&csv, 6, 500);
    let d = dir.path().join("data");
    let d = d.to_str().unwrap();
    ok(&["data", "import", csv.to_str().unwrap(), "--data-dir", d]);
    // One backtest: headline and the report folder.
    let out_dir = dir.path().join("bt");
    let out = ok(&["backtest", "--plugin", "sma-cross", "--param", "fast=3", "--param", "slow=9", "--capital", "1e6", "--out", out_dir.to_str().unwrap(), "--data-dir", d]);
    assert!(out.contains("3000 bars") && out.contains("Sharpe"), "{out}");
    for f in ["report.html", "metrics.json", "equity.csv", "trades.csv", "fills.csv", "positions.csv", "inputs.json"] {
        assert!(out_dir.join(f).is_file(), "{f} written");
    }
    let inputs: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("inputs.json")).unwrap()).unwrap();
    assert_eq!(inputs["plugins"][0]["sha256"].as_str().unwrap().len(), 64);

    // Monte Carlo of that run: the same seed gives the same file, the trades resample too.
    let mc = |out: &str, extra: &[&str]| {
        let mut a = vec!["montecarlo", "--run", out_dir.to_str().unwrap(), "--paths", "2000", "--out", out];
        a.extend(extra);
        ok(&a)
    };
    let (m1, m2) = (dir.path().join("mc1"), dir.path().join("mc2"));
    let out = mc(m1.to_str().unwrap(), &["--mc-seed", "5"]);
    assert!(out.contains("2000 paths of 500 days") && out.contains("VaR/CVaR 99% 1d: historical"), "{out}");
    mc(m2.to_str().unwrap(), &["--mc-seed", "5", "--quiet"]);
    let read = |d: &std::path::Path| -> serde_json::Value {
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("montecarlo.json")).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("wall_secs");
        v
    };
    assert_eq!(read(&m1), read(&m2), "seeded: the same paths");
    let v = read(&m1);
    assert_eq!(v["var"].as_array().unwrap().len(), 8, "four methods at 95% and 99%");
    let q = |name: &str, p: usize| v[name]["percentiles"][p][1].as_f64().unwrap();
    assert!(q("final_multiple", 0) <= q("final_multiple", 4) && q("final_multiple", 4) <= q("final_multiple", 8));
    assert!(m1.join("montecarlo.html").is_file());
    let out = mc(m2.to_str().unwrap(), &["--resample", "trades", "--method", "iid"]);
    assert!(out.contains("trades resampled"), "{out}");
    let e = fails(&["montecarlo", "--run", out_dir.to_str().unwrap(), "--method", "jackknife"]);
    assert!(e.contains("--method/--block") && e.contains("jackknife"), "{e}");
    let e = fails(&["montecarlo", "--run", dir.path().join("nope").to_str().unwrap()]);
    assert!(e.contains("inputs.json"), "{e}");
    let e = fails(&["montecarlo", "--run", out_dir.to_str().unwrap(), "--ruin", "1.5"]);
    assert!(e.contains("ruin 1.5"), "{e}");

    // A detector scored against events: one day of the data, one far outside it.
    let events = dir.path().join("events.toml");
    std::fs::write(&events, "[[event]]\nname = \"a day\"\nfirst = \"2015-06-01\"\n[[event]]\nname = \"too late\"\nfirst = \"2030-01-01\"\n").unwrap();
    let out = ok(&["detect", "eval", "--detector", "zscore-guard", "--param", "elevated=2", "--events", events.to_str().unwrap(), "--out", dir.path().join("det").to_str().unwrap(), "--data-dir", d]);
    assert!(out.contains("3000 bars of 6 instruments") && out.contains("too late") && out.contains("not in the data") && out.contains("per instrument-year"), "{out}");
    let det: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("det/detect.json")).unwrap()).unwrap();
    let alarms: u64 = det["alarms"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).sum();
    let false_alarms: u64 = det["false_alarms"].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).sum();
    assert!(alarms > 0 && false_alarms <= alarms, "|z| >= 2 alarms often on a 3% random walk: {det}");
    assert_eq!(det["events"][0]["in_data"], true);
    std::fs::write(&events, "[[event]]\nname = \"typo\"\nfirst = \"2015-13-01\"\n").unwrap();
    let e = fails(&["detect", "eval", "--detector", "zscore-guard", "--events", events.to_str().unwrap(), "--data-dir", d]);
    assert!(e.contains("event 1 (`typo`)") && e.contains("2015-13-01"), "{e}");
    let e = fails(&["backtest", "--plugin", "sma-cross", "--source", "last", "--out", dir.path().join("x").to_str().unwrap(), "--data-dir", d]);
    assert!(e.contains("--source `last`"), "{e}");
    let e = fails(&["backtest", "--plugin", "sma-cross", "--source", "bid", "--out", dir.path().join("x").to_str().unwrap(), "--data-dir", d]);
    assert!(e.contains("no 86400s Bid bars"), "trade data only: {e}");

    let space = dir.path().join("space.toml");
    std::fs::write(&space, "[fast]\nmin = 2\nmax = 12\n[slow]\nmin = 8\nmax = 40\n").unwrap();
    let study = |file: &str, extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["optimize", "--plugin", "sma-cross", "--space", space.to_str().unwrap(), "--trials", "12", "--sampler", "random", "--seed", "9", "--capital", "1e6", "--quiet", "--data-dir", d]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(["--study-file".into(), dir.path().join(file).display().to_string()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let whole = study("whole.jsonl", &[]);
    ok(&whole.iter().map(String::as_str).collect::<Vec<_>>());
    // Three shards as three processes at once, then merged.
    let children: Vec<std::process::Child> = (1..=3)
        .map(|k| {
            let args = study(&format!("part{k}.jsonl"), &["--shard", &format!("{k}/3"), "--jobs", "1"]);
            Command::new(env!("CARGO_BIN_EXE_stratbox")).args(&args).env("STRATBOX_LOG", "off").spawn().unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let parts: Vec<String> = (1..=3).map(|k| dir.path().join(format!("part{k}.jsonl")).display().to_string()).collect();
    let merged = dir.path().join("merged.jsonl");
    let report = dir.path().join("study-report");
    let out = ok(&["optimize", "merge", &parts[0], &parts[1], &parts[2], "--out", merged.to_str().unwrap(), "--report", report.to_str().unwrap()]);
    assert!(out.contains("3 shards merged: the same trials as the unsharded study"), "{out}");
    assert!(report.join("study.html").is_file() && report.join("leaderboard.csv").is_file());
    let trials = |path: &std::path::Path| -> Vec<serde_json::Value> {
        let mut v: Vec<serde_json::Value> = std::fs::read_to_string(path).unwrap().lines().skip(1).map(|l| serde_json::from_str(l).unwrap()).collect();
        for t in &mut v {
            t.as_object_mut().unwrap().remove("wall_ms");
        }
        v.sort_by_key(|t| t["trial"].as_u64());
        v
    };
    assert_eq!(trials(&merged), trials(&dir.path().join("whole.jsonl")));
    assert_eq!(trials(&merged).len(), 12);
    // The leaderboard of the merged study is the whole study's.
    let board = |path: &std::path::Path| ok(&["optimize", "merge", path.to_str().unwrap(), "--out", dir.path().join("x.jsonl").to_str().unwrap(), "--json"]);
    let lb = |s: String| serde_json::from_str::<serde_json::Value>(&s).unwrap()["leaderboard"].clone();
    assert_eq!(lb(board(&merged)), lb(board(&dir.path().join("whole.jsonl"))));

    // Bad input, each named before a trial runs.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[fats]\nmin = 2\nmax = 5\n").unwrap();
    let e = fails(&["optimize", "--plugin", "sma-cross", "--space", bad.to_str().unwrap(), "--study-file", dir.path().join("b.jsonl").to_str().unwrap(), "--data-dir", d]);
    assert!(e.contains("`fats` is not a parameter of the plugin (it declares: fast, slow, quantity, allow_short)"), "{e}");
    let e = fails(&["optimize", "--plugin", "sma-cross", "--symbols", "NOPE", "--study-file", dir.path().join("b.jsonl").to_str().unwrap(), "--data-dir", d]);
    assert!(e.contains("NOPE"), "{e}");
    assert!(!dir.path().join("b.jsonl").exists(), "no study file for a study that never started");
    let e = fails(&whole.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("exists: --resume continues it"), "{e}");

    // Walk-forward over the same data.
    let wf = dir.path().join("wf");
    let out = ok(&["walk-forward", "--plugin", "sma-cross", "--space", space.to_str().unwrap(), "--train", "6m", "--test", "3m", "--purge", "5d", "--embargo", "5d", "--trials", "6", "--capital", "1e6", "--out", wf.to_str().unwrap(), "--data-dir", d]);
    assert!(out.contains("walk-forward efficiency") && out.contains("window  1"), "{out}");
    for f in ["walkforward.json", "walkforward.html", "oos_equity.csv", "window-01.jsonl"] {
        assert!(wf.join(f).is_file(), "{f}");
    }
}

/// Debian's Chromium, if installed (CI installs it; `.ci/run`).
fn chromium() -> Option<std::path::PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].iter().map(std::path::PathBuf::from).find(|p| p.is_file())
}

/// Loads `page` in headless Chromium with a probe run before the page's own
/// scripts (it records uncaught errors and console errors) and after load
/// (it counts chart panels and canvases with any ink); returns the probe's JSON.
fn probe_in_chromium(browser: &std::path::Path, page: &std::path::Path) -> serde_json::Value {
    let html = std::fs::read_to_string(page).unwrap();
    let probe = r#"<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message)));
const __ce = console.error; console.error = (...a) => { window.__errors.push(a.join(' ')); __ce(...a); };
window.addEventListener('load', () => setTimeout(() => {
  const charts = [...document.querySelectorAll('div.chart')];
  const inked = charts.filter(div => [...div.querySelectorAll('canvas')].some(c => {
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 3; i < d.length; i += 4 * 97) if (d[i] !== 0) return true;
    return false;
  }));
  const out = document.createElement('pre'); out.id = 'probe';
  out.textContent = JSON.stringify({charts: charts.length, inked: inked.length, errors: window.__errors, echarts: typeof echarts});
  document.body.appendChild(out);
}, 1500));
</script>"#;
    let probed = page.with_extension("probe.html");
    std::fs::write(&probed, html.replacen("<head>", &format!("<head>{probe}"), 1)).unwrap();
    let out = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000", "--dump-dom"])
        .arg(format!("file://{}", probed.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&out.stdout);
    let start = dom.find("<pre id=\"probe\">").unwrap_or_else(|| panic!("the probe ran ({}): {}", page.display(), String::from_utf8_lossy(&out.stderr))) + "<pre id=\"probe\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    serde_json::from_str(&dom[start..end].replace("&quot;", "\"").replace("&amp;", "&")).unwrap()
}

#[test]
fn research_reports_render_in_headless_chromium_without_errors() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: no Chromium (install Debian's chromium package; .ci/run does)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("daily.csv");
    daily_csv(&csv, 6, 500);
    let d = dir.path().join("data");
    let d = d.to_str().unwrap();
    ok(&["data", "import", csv.to_str().unwrap(), "--data-dir", d]);
    let bt = dir.path().join("bt");
    ok(&["backtest", "--plugin", "sma-cross", "--param", "fast=3", "--param", "slow=9", "--capital", "1e6", "--benchmark", "S0", "--monte-carlo", "500", "--out", bt.to_str().unwrap(), "--quiet", "--data-dir", d]);
    let st = dir.path().join("st");
    let space = dir.path().join("space.toml");
    std::fs::write(&space, "[fast]\nmin = 2\nmax = 6\n[slow]\nmin = 8\nmax = 20\nstep = 4\n").unwrap();
    ok(&["optimize", "--plugin", "sma-cross", "--space", space.to_str().unwrap(), "--sampler", "grid", "--trials", "100", "--capital", "1e6", "--study-file", dir.path().join("s.jsonl").to_str().unwrap(), "--report", st.to_str().unwrap(), "--quiet", "--data-dir", d]);
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("research-reports");
    std::fs::create_dir_all(&artifacts).unwrap();
    for (page, charts) in [(bt.join("report.html"), 8), (st.join("study.html"), 3), (bt.join("montecarlo.html"), 3)] {
        let p = probe_in_chromium(&browser, &page);
        assert_eq!(p["echarts"], "object", "ECharts is inlined: {p}");
        assert_eq!(p["errors"], serde_json::json!([]), "no script errors in {}: {p}", page.display());
        assert!(p["charts"].as_u64().unwrap() >= charts, "{}: {p}", page.display());
        assert_eq!(p["charts"], p["inked"], "every chart drew on its canvas ({}): {p}", page.display());
        // A screenshot of each page, kept as the test's artifact.
        let shot = artifacts.join(page.file_name().unwrap()).with_extension("png");
        let _ = std::fs::remove_file(&shot);
        let out = Command::new(&browser)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=15000", "--window-size=1280,2400"])
            .arg(format!("--screenshot={}", shot.display()))
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap();
        assert!(shot.is_file() && std::fs::metadata(&shot).unwrap().len() > 10_000, "screenshot of {}: {}", page.display(), String::from_utf8_lossy(&out.stderr));
        eprintln!("screenshot: {}", shot.display());
    }
}

#[test]
fn stress_scenarios_judge_the_configuration_and_name_what_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("daily.csv");
    daily_csv(&csv, 6, 500); // 2015-01-01 .. 2016-05-14
    let d = dir.path().join("data");
    let d = d.to_str().unwrap();
    ok(&["data", "import", csv.to_str().unwrap(), "--data-dir", d]);
    let scenarios = dir.path().join("scenarios.toml");
    std::fs::write(
        &scenarios,
        r#"
[[scenario]]
name = "calm"
from = "2015-06-01"
to = "2015-12-01"

[[scenario]]
name = "crash"
from = "2015-06-01"
to = "2015-12-01"
[[scenario.shock]]
kind = "gap"
at = "2015-09-01"
pct = -60

[[scenario]]
name = "storm"
from = "2015-06-01"
to = "2015-12-01"
[[scenario.shock]]
kind = "volatility"
from = "2015-07-01"
to = "2015-09-01"
factor = 3
[[scenario.shock]]
kind = "correlation"
from = "2015-09-01"
to = "2015-11-01"
[[scenario.shock]]
kind = "spread"
factor = 10
[[scenario.shock]]
kind = "liquidity"
participation = 0.01

[[scenario]]
name = "later"
from = "2019-01-01"
to = "2019-06-01"
"#,
    )
    .unwrap();
    let out = dir.path().join("stress");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["stress", "--scenarios", scenarios.to_str().unwrap(), "--plugin", "sma-cross", "--param", "fast=3", "--param", "slow=9", "--param", "quantity=2000", "--stop-policy", "stops", "--with-detector", "zscore-guard", "--capital", "1e6", "--data-dir", d, "--log", "error"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let e = fails(&args(&["--out", out.to_str().unwrap()]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("2 of 4 scenarios did not pass"), "{e}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("stress.json")).unwrap()).unwrap();
    let by = |name: &str| report["scenarios"].as_array().unwrap().iter().find(|s| s["scenario"]["name"] == name).unwrap().clone();
    let (calm, crash, storm, later) = (by("calm"), by("crash"), by("storm"), by("later"));
    assert_eq!(calm["verdict"], "passed", "{calm:#}");
    assert!(calm["result"]["max_drawdown"].as_f64().unwrap() <= 0.10);
    assert!(calm["result"]["bars"].as_u64().unwrap() > 6 * 150, "the warm-up and the window replayed");
    assert_eq!(crash["verdict"], "failed");
    let dd = crash["result"]["max_drawdown"].as_f64().unwrap();
    assert!(dd > 0.10 && crash["reasons"][0].as_str().unwrap().contains("over the 10.00% limit"), "{crash:#}");
    assert_eq!(crash["result"]["worst_day"][0], "2015-09-01", "the gap's day is the worst: {crash:#}");
    assert!(crash["result"]["halted"].as_bool().unwrap(), "the drawdown halt tripped: {:#}", crash["result"]["states"]);
    assert!(crash["result"]["protective_exits"].as_array().unwrap().iter().any(|p| p["time"].as_i64().unwrap() >= 1_441_065_600 * 1_000_000_000), "stops hit at the gap");
    assert_eq!(crash["shocks"][0], "gap of -60% at 2015-09-01 00:00:00 (every instrument)");
    assert_ne!(storm["verdict"], "error", "every shock kind applies: {storm:#}");
    assert_eq!(storm["shocks"].as_array().unwrap().len(), 4);
    assert_eq!(later["verdict"], "error");
    assert!(later["reasons"][0].as_str().unwrap().contains("no daily bars (trade) of any symbol between 2019-01-01 and 2019-06-01 (the store has them from"), "{later:#}");
    assert!(std::fs::read_to_string(out.join("stress.html")).unwrap().contains("crash: equity from 1 at 2015-06-01 with gap of -60%"));
    // One scenario alone, and it passes: exit 0 with the table.
    let table = ok(&args(&["--only", "calm"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(table.contains("calm") && table.contains("passed") && !table.contains("crash"), "{table}");

    // Bad input, named before anything runs.
    let e = fails(&args(&["--only", "nope"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("unknown scenario `nope`") && e.contains("has calm, crash, storm, later"), "{e}");
    std::fs::write(&scenarios, "[[scenario]]\nname = \"deep\"\nfrom = \"2015-06-01\"\nto = \"2015-12-01\"\n[[scenario.shock]]\nkind = \"gap\"\nat = \"2015-09-01\"\npct = -120\n").unwrap();
    let e = fails(&args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(e.contains("scenario `deep`: shock 1: `gap` shock: `pct` is -120: a gap of -100% or more would make prices non-positive"), "{e}");

    if let Some(browser) = chromium() {
        let p = probe_in_chromium(&browser, &out.join("stress.html"));
        assert_eq!(p["errors"], serde_json::json!([]), "{p}");
        assert_eq!(p["charts"].as_u64(), Some(3), "one equity chart per scenario that ran: {p}");
        assert_eq!(p["charts"], p["inked"], "{p}");
    } else {
        eprintln!("skipped the page check: no Chromium (.ci/run installs it)");
    }
}

#[test]
fn model_inspect_and_check_on_the_shipped_model_and_a_broken_one() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/gbdt-spy.onnx");
    let m = model.to_str().unwrap();
    let out = ok(&["model", "inspect", m]);
    assert!(out.contains("ai.onnx.ml.TreeEnsembleClassifier x1") && out.contains("input X: [1, 9]") && out.contains("tract: loads"), "{out}");
    assert!(out.contains("card: gbdt-spy (9 features, classes down/up), sha256 matches"), "{out}");
    let out = ok(&["model", "check", m]);
    assert!(out.contains("8 reference rows agree with onnxruntime 1.31.1"), "{out}");
    let lstm = model.with_file_name("lstm-spy.onnx");
    let out = ok(&["model", "inspect", lstm.to_str().unwrap()]);
    assert!(out.contains("LSTM x") && out.contains("input X: [1, 10, 9]") && out.contains("tract: loads"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.onnx");
    std::fs::write(&broken, b"not a model").unwrap();
    std::fs::copy(model.with_extension("card.json"), broken.with_extension("card.json")).unwrap();
    let e = fails(&["model", "check", broken.to_str().unwrap()]);
    assert!(e.contains("is not the card's"), "{e}");
    let e = fails(&["model", "inspect", broken.to_str().unwrap()]);
    assert!(e.contains("not an ONNX model"), "{e}");
}

#[test]
fn ml_dataset_and_report_from_stored_bars_with_the_shipped_models() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("daily.csv");
    daily_csv(&csv, 2, 400);
    let d = dir.path().join("data");
    let d = d.to_str().unwrap();
    ok(&["data", "import", csv.to_str().unwrap(), "--data-dir", d]);
    // The dataset: every row once 21 closes are in, labels a bar ahead.
    let out = dir.path().join("ds.csv");
    let said = ok(&["ml", "dataset", "--symbols", "S0,S1", "--out", out.to_str().unwrap(), "--data-dir", d]);
    assert!(said.contains("760 rows of 9 features (2 symbols"), "{said}");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("symbol,date,time_ns,ret_1,ret_2,ret_3,ret_4,ret_5,ret_20,vol_20,sma_gap_20,range_1,forward_return,label\n"), "{}", &text[..200]);
    assert_eq!(text.lines().filter(|l| l.ends_with(",,")).count(), 2, "the last row of each symbol has no label yet");
    let e = fails(&["ml", "dataset", "--symbols", "S0", "--horizon", "0", "--out", out.to_str().unwrap(), "--data-dir", d]);
    assert!(e.contains("--horizon 0"), "{e}");
    // The report, with the holdout moved into this data.
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/configs/ml.toml");
    let report = dir.path().join("report");
    let said = ok(&["ml", "report", "--config", config.to_str().unwrap(), "--symbols", "S0", "--from", "2015-10-01", "--out", report.to_str().unwrap(), "--data-dir", d, "--log", "error"]);
    assert!(said.contains("holdout 2015-10-01 to 2016-02-04") && said.contains("weighted vote") && said.contains("deflated Sharpe"), "{said}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(report.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["members"].as_array().unwrap().len(), 3);
    let rows = json["members"][0]["holdout"]["rows"].as_u64().unwrap();
    assert!(rows > 80, "{rows} holdout rows");
    assert!(json["strategy"]["fills"].as_u64().unwrap() > 0, "the ensemble traded the holdout");
    assert!((0.0..=1.0).contains(&json["deflated"]["dsr"].as_f64().unwrap()));
    let e = fails(&["ml", "report", "--config", config.to_str().unwrap(), "--symbols", "S0,S1", "--out", report.to_str().unwrap(), "--data-dir", d]);
    assert!(e.contains("name one stored symbol"), "{e}");
    if let Some(browser) = chromium() {
        let probe = probe_in_chromium(&browser, &report.join("report.html"));
        assert_eq!(probe["errors"], serde_json::json!([]), "{probe}");
    } else {
        eprintln!("skipped the page check: no Chromium (.ci/run installs it)");
    }
}
