//! report.html opened in headless Chromium (Debian's package, /usr/bin/chromium): it renders
//! without errors about the page and shows the plots (a screenshot far larger than a blank
//! page's). `make unit` installs Chromium first (e2e/install-chromium.sh); without it the test
//! fails saying how to install it, unless REHEARSAL_SKIP_CHROMIUM=1.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rehearsal_driver::report;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(..8)? != b"\x89PNG\r\n\x1a\n" || bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let be = |r: std::ops::Range<usize>| bytes.get(r).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes);
    Some((be(16..20)?, be(20..24)?))
}

/// Screenshots `page` at 1280x4000; returns the PNG and Chromium's stderr.
fn screenshot(page: &Path, png: &Path, profile: &Path) -> (Vec<u8>, String) {
    let out = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--window-size=1280,4000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "chromium exited with {}:\n{stderr}", out.status);
    let bytes = std::fs::read(png).unwrap_or_else(|e| panic!("no screenshot at {}: {e}\n{stderr}", png.display()));
    (bytes, stderr)
}

/// Lines of Chromium's stderr about the page itself (console errors, failed loads).
fn page_errors(stderr: &str, page: &Path) -> Vec<String> {
    let name = page.file_name().and_then(|n| n.to_str()).unwrap_or("report.html");
    stderr
        .lines()
        .filter(|l| {
            l.contains("CONSOLE")
                || l.contains("Uncaught")
                || l.contains("ERR_FILE_NOT_FOUND")
                || l.contains("ERR_BLOCKED")
                || l.contains("ERR_NAME_NOT_RESOLVED")
                || (l.contains(name) && l.to_ascii_lowercase().contains("error"))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn report_renders_in_chromium_with_its_plots() {
    if !Path::new(CHROMIUM).exists() {
        if std::env::var("REHEARSAL_SKIP_CHROMIUM").as_deref() == Ok("1") {
            eprintln!("SKIPPED: {CHROMIUM} is missing and REHEARSAL_SKIP_CHROMIUM=1");
            return;
        }
        panic!(
            "{CHROMIUM} is missing: run e2e/install-chromium.sh (apt-get install -y chromium; `make unit` does it), or set REHEARSAL_SKIP_CHROMIUM=1 to skip this test"
        );
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).expect("run folder");
    let facts = report::synthetic::write_run(&run, 2_000).expect("synthetic run");
    let written = report::write(&run, &facts).expect("report written");

    // A blank page the same size, for what "blank" weighs.
    let blank = tmp.path().join("blank.html");
    std::fs::write(&blank, "<!DOCTYPE html><html><body></body></html>").expect("blank page");
    let (blank_png, _) = screenshot(&blank, &tmp.path().join("blank.png"), &tmp.path().join("profile-blank"));

    let png: PathBuf = tmp.path().join("report.png");
    let started = Instant::now();
    let (bytes, stderr) = screenshot(&written.report_path, &png, &tmp.path().join("profile"));
    let took = started.elapsed();
    if let Ok(keep) = std::env::var("REHEARSAL_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&png, keep);
    }
    println!(
        "chromium rendered report.html in {:.2} s: screenshot {} KB (blank page: {} KB)",
        took.as_secs_f64(),
        bytes.len() / 1024,
        blank_png.len() / 1024
    );
    assert_eq!(png_size(&bytes), Some((1280, 4000)), "a 1280x4000 PNG");
    assert!(bytes.len() > 100 * 1024, "screenshot of {} bytes: the plots are not there", bytes.len());
    assert!(
        bytes.len() > blank_png.len().saturating_mul(5),
        "screenshot of {} bytes is close to a blank page's {}",
        bytes.len(),
        blank_png.len()
    );
    assert_eq!(page_errors(&stderr, &written.report_path), Vec::<String>::new(), "chromium's stderr:\n{stderr}");
}

#[test]
fn png_header() {
    let mut h = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    h.extend_from_slice(&1280u32.to_be_bytes());
    h.extend_from_slice(&4000u32.to_be_bytes());
    assert_eq!(png_size(&h), Some((1280, 4000)));
    assert_eq!(png_size(b"GIF89a"), None);
}
