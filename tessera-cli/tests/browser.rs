//! The browser suite (`browser/`): headless Chromium, driven by playwright-core, against the
//! real `tessera serve` binary: the counter and its HttpOnly cookie, forged cross-origin
//! forms, "remember me" across a browser restart, the account pages.
//!
//! Needs `node`, Debian's `chromium` (`/usr/bin/chromium`) and `browser/node_modules`
//! (`npm ci` in `browser/`); `scripts/test` installs all three. Without them this test
//! fails saying which is missing: it never skips. Screenshots of failing pages go to
//! `test-artifacts/browser/`, their paths printed with the suite's output.

use std::path::Path;
use std::process::Command;

use test_support::workspace_root;

#[test]
fn chromium_scenarios() {
    let root = workspace_root();
    let dir = root.join("browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "Chromium is missing at {chromium}: install Debian's package \
         (`apt-get install -y chromium`; scripts/test does it)"
    );
    assert!(
        dir.join("node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core is not installed: run `npm ci` in browser/ (scripts/test does it)"
    );
    let mut files: Vec<String> = std::fs::read_dir(dir.join("tests"))
        .expect("browser/tests/")
        .map(|entry| entry.expect("a browser/tests/ entry").file_name())
        .filter_map(|name| name.into_string().ok())
        .filter(|name| name.ends_with(".test.mjs"))
        .map(|name| format!("tests/{name}"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.test.mjs in browser/tests/");

    // Only this run's screenshots in the folder.
    let artifacts = root.join("test-artifacts").join("browser");
    match std::fs::remove_dir_all(&artifacts) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            panic!("cannot empty {}: {e}", artifacts.display())
        }
        _ => {}
    }
    let output = Command::new("node")
        // One file at a time: each starts its own server and browsers, and the machine may
        // have two cores.
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .args(&files)
        .current_dir(&dir)
        .env("TESSERA_BIN", env!("CARGO_BIN_EXE_tessera"))
        .env("TESSERA_ARTIFACTS", &artifacts)
        .env("CHROMIUM", &chromium)
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run node: {e} (install Node.js 20 or later: scripts/test does)")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    assert!(
        output.status.success(),
        "the browser suite failed ({}); screenshots of the failing pages, if any, are in {}",
        output.status,
        artifacts.display()
    );
    // The suite ran tests, and passed some: an empty run is not a pass.
    let passed = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("ℹ pass "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(passed > 0, "the browser suite passed no test:\n{stdout}");
}
