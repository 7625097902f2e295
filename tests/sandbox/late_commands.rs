//! A request that reaches the host after its run has ended (the feed ran out,
//! `--duration` passed) is told at once that the host is shutting down, over
//! the real control API: it must not wait out the client's timeout for an
//! event loop that is gone.

use std::time::Duration;

use stratbox_engine::{ControlClient, ControlServer, LoadRequest, RunOptions};

use crate::support::{Scenario, component, sma_cross};

#[test]
fn a_load_or_swap_after_the_run_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut host, tx) = Scenario::new(vec![sma_cross()]).host(dir.path());
    let _control = ControlServer::start("127.0.0.1:0", dir.path(), host.factory(), tx.clone()).expect("control API");
    let client = ControlClient::from_data_dir(dir.path()).expect("control file");
    host.run(&RunOptions::default());

    // A load sent after the run: its command is queued on a loop that no
    // longer reads. Closing the host's commands answers it, whether it was
    // queued before the close or sent after.
    let (done, answered) = std::sync::mpsc::channel();
    let late = std::thread::spawn({
        let client = ControlClient::from_data_dir(dir.path()).unwrap();
        move || {
            let request = LoadRequest { path: component("examples/sma-cross"), name: Some("late".into()), ..Default::default() };
            let _ = done.send(client.load(request).map(|v| v.to_string()).map_err(|e| e.to_string()));
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    host.close_commands();
    // A bound for a hang, not a timing figure: the client's own timeout is 300 s.
    let outcome = answered.recv_timeout(Duration::from_secs(60)).expect("the late load was answered");
    late.join().unwrap();
    let err = outcome.expect_err("no plugin loads into a host whose run has ended");
    assert!(err.contains("shutting down"), "{err}");

    let request = LoadRequest { path: component("examples/sma-cross"), ..Default::default() };
    let err = client.swap("sma-cross", request).expect_err("no swap after the run").to_string();
    assert!(err.contains("shutting down"), "{err}");
    assert!(client.status().expect_err("no status after the run").to_string().contains("shutting down"));
}
