//! The report in a real browser: headless Chromium loads `/` and a test's
//! page at 1280 px and 390 px wide, checks the verdict sentence is in the
//! rendered DOM, that nothing overflows horizontally on a phone and every
//! metric cell is on screen there, that chart labels are at least 11 px,
//! and saves four screenshots for a person to look at (the ones in `docs/`
//! come from this test).
//!
//! `.ci/run` installs Debian's `chromium`; without it this test says it was
//! skipped.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use headless_chrome::protocol::cdp::Emulation::SetDeviceMetricsOverride;
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions};
use serde_json::Value;

mod common;

use common::{spawn_server_with, AT_NOW, EXPERIMENTS};

const CHROMIUM: &str = "/usr/bin/chromium";

fn browser(width: u32) -> Browser {
    let args = [
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ];
    Browser::new(LaunchOptions {
        headless: true,
        sandbox: false,
        path: Some(PathBuf::from(CHROMIUM)),
        window_size: Some((width, 900)),
        args: args.iter().map(OsStr::new).collect(),
        ..LaunchOptions::default()
    })
    .expect("chromium starts")
}

fn eval(tab: &headless_chrome::Tab, js: &str) -> Value {
    tab.evaluate(js, false).unwrap().value.unwrap_or(Value::Null)
}

#[test]
fn report_pages_render_on_desktop_and_phone() {
    if !Path::new(CHROMIUM).exists() {
        common::skip(
            "report_pages_render_on_desktop_and_phone",
            &format!("{CHROMIUM} is not installed (apt-get install chromium)"),
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = spawn_server_with(dir.path(), Path::new(EXPERIMENTS), AT_NOW);
    let url = server.url.clone();
    common::simulate(
        &url,
        &["--days", "15", "--visitors-per-day", "120", "--seed", "7", "--effect", "cart-protection-copy:benefit:+0.3"],
    );
    let list: Value = reqwest::blocking::get(format!("{url}/api/v1/experiments")).unwrap().json().unwrap();
    let report: Value = reqwest::blocking::get(format!("{url}/api/v1/experiments/cart-protection-copy/report"))
        .unwrap()
        .json()
        .unwrap();

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for width in [1280, 390] {
        let browser = browser(width);
        let tab = browser.new_tab().unwrap();
        if width < 500 {
            // Headless windows are at least 500 px wide: emulate a phone viewport.
            tab.call_method(SetDeviceMetricsOverride {
                width,
                height: 844,
                device_scale_factor: 1.0,
                mobile: true,
                scale: None,
                screen_width: None,
                screen_height: None,
                position_x: None,
                position_y: None,
                dont_set_visible_size: None,
                screen_orientation: None,
                viewport: None,
                display_feature: None,
                device_posture: None,
            })
            .unwrap();
        }
        for (name, path, sentence) in [
            ("index", "/".to_owned(), list["experiments"][0]["verdict"]["sentence"].clone()),
            ("experiment", "/experiments/cart-protection-copy".to_owned(), report["verdict"]["sentence"].clone()),
        ] {
            tab.navigate_to(&format!("{url}{path}")).unwrap().wait_until_navigated().unwrap();
            assert_eq!(eval(&tab, "window.innerWidth"), Value::from(width), "viewport width");
            let verdicts =
                eval(&tab, "Array.from(document.querySelectorAll('.verdict')).map(e => e.textContent).join('\\n')");
            assert!(verdicts.as_str().unwrap().contains(sentence.as_str().unwrap()), "{name} at {width}px: {verdicts}");
            if width == 390 {
                let overflow = eval(&tab, "document.documentElement.scrollWidth - window.innerWidth");
                assert_eq!(overflow, Value::from(0), "{name} overflows horizontally at 390 px");
                // Every number a verdict rests on is on screen, not behind a sideways scroll.
                let hidden = eval(
                    &tab,
                    "Array.from(document.querySelectorAll('table.stack td')).filter(td => { const r = td.getBoundingClientRect(); return r.left < 0 || r.right > window.innerWidth + 0.5; }).length",
                );
                assert_eq!(hidden, Value::from(0), "{name}: metric cells off-screen at 390 px");
            }
            if name == "experiment" {
                // Chance to win and risk are explained on screen, at every width.
                let shown = eval(
                    &tab,
                    "Array.from(document.querySelectorAll('p.explain')).some(p => p.getBoundingClientRect().height > 0 && p.getBoundingClientRect().right <= window.innerWidth + 0.5 && p.textContent.includes('Risk:'))",
                );
                assert_eq!(
                    shown,
                    Value::from(true),
                    "{name} at {width}px: chance to win and risk are not explained on screen"
                );
            }
            // Chart labels are at least 11 px tall on screen.
            let smallest = eval(
                &tab,
                "Math.min(1e9, ...Array.from(document.querySelectorAll('svg.chart text')).map(t => parseFloat(getComputedStyle(t).fontSize) * t.ownerSVGElement.getBoundingClientRect().width / 640))",
            );
            assert!(smallest.as_f64().unwrap() >= 11.0, "{name} at {width}px: chart labels of {smallest} px");
            let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true).unwrap();
            std::fs::write(shots.join(format!("{name}-{width}.png")), png).unwrap();
        }
    }
    eprintln!("screenshots saved in {}", shots.display());
}
