//! Process lifecycle: one server per data folder, and a clean SIGTERM.

use std::path::Path;
use std::process::Command;

use offerlab::store::{SledStore, Store};
use serde_json::json;

mod common;

use common::EXPERIMENTS;

fn serve(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_offerlab"));
    c.args(["serve", "--bind", "127.0.0.1:0", "--workers", "1", "--experiments", EXPERIMENTS, "--data"]).arg(data);
    c.env("RUST_LOG", "error");
    c
}

#[test]
fn a_second_server_on_the_same_folder_is_refused_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = common::serve(dir.path(), Path::new(EXPERIMENTS));
    let address = first.url.clone();

    let second = serve(dir.path()).output().unwrap();
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("is in use by another offerlab process"), "{stderr}");

    let events = json!([{ "id": "e-1", "visitor_id": "v", "name": "order", "value": 10.0 }]);
    let r = reqwest::blocking::Client::new().post(format!("{address}/v1/events")).json(&events).send().unwrap();
    assert!(r.status().is_success());

    let term = Command::new("kill").arg("-TERM").arg(first.child.id().to_string()).status().unwrap();
    assert!(term.success());
    let status = first.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "SIGTERM drains, flushes and exits 0");
    common::block_on(async {
        let store = SledStore::open(dir.path()).await.expect("the lock is released");
        assert_eq!(store.counts().await.unwrap(), (0, 1));
        store.close().await.unwrap();
    });
}
