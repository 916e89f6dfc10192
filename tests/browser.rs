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

/// Everything on the page that a reader would have to scroll sideways
/// for or could not read, as a list of sentences (empty when the layout
/// holds, as JSON text), with every `<details>` opened first:
/// - a table, scroll box or card whose content is wider than itself;
/// - a document wider than the window;
/// - two labels of one chart that overlap, or a label cut by its chart's edge;
/// - a chart label under 11 px on screen.
const LAYOUT_PROBLEMS: &str = r#"(() => {
  document.querySelectorAll('details').forEach(d => d.open = true);
  const out = [];
  const name = e => e.tagName.toLowerCase() + (e.className ? '.' + String(e.className).split(' ').join('.') : '');
  for (const e of document.querySelectorAll('table, .scroll, .card, main')) {
    if (e.scrollWidth > e.clientWidth + 1) out.push(`${name(e)} holds ${e.scrollWidth} px in ${e.clientWidth} px: ${e.textContent.trim().slice(0, 60)}`);
    const parent = e.parentElement;
    if (e.tagName === 'TABLE' && e.getBoundingClientRect().width > parent.clientWidth + 1) out.push(`${name(e)} is ${e.getBoundingClientRect().width} px in a ${parent.clientWidth} px box: ${e.textContent.trim().slice(0, 60)}`);
  }
  if (document.documentElement.scrollWidth > window.innerWidth) out.push(`the page is ${document.documentElement.scrollWidth} px wide in a ${window.innerWidth} px window`);
  for (const svg of document.querySelectorAll('svg.chart')) {
    const scale = svg.getBoundingClientRect().width / 640;
    const labels = Array.from(svg.querySelectorAll('text')).map(t => ({ text: t.textContent, r: t.getBoundingClientRect(), px: parseFloat(getComputedStyle(t).fontSize) * scale }));
    const box = svg.getBoundingClientRect();
    for (const l of labels) if (l.px < 11) out.push(`chart label "${l.text}" is ${l.px.toFixed(1)} px`);
    for (const l of labels) if (l.r.left < box.left - 0.5 || l.r.right > box.right + 0.5) out.push(`chart label "${l.text}" leaves its chart`);
    for (let i = 0; i < labels.length; i++) for (let j = i + 1; j < labels.length; j++) {
      const a = labels[i].r, b = labels[j].r;
      if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) out.push(`chart labels "${labels[i].text}" and "${labels[j].text}" overlap`);
    }
  }
  return JSON.stringify(out);
})()"#;

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
        let mut pages = vec![
            ("index".to_owned(), "/".to_owned(), list["experiments"][0]["verdict"]["sentence"].clone()),
            (
                "experiment".to_owned(),
                "/experiments/cart-protection-copy".to_owned(),
                report["verdict"]["sentence"].clone(),
            ),
        ];
        for e in list["experiments"].as_array().unwrap() {
            let id = e["id"].as_str().unwrap();
            if id != "cart-protection-copy" {
                pages.push((id.to_owned(), format!("/experiments/{id}"), e["verdict"]["sentence"].clone()));
            }
        }
        for (name, path, sentence) in &pages {
            let name = name.as_str();
            tab.navigate_to(&format!("{url}{path}")).unwrap().wait_until_navigated().unwrap();
            assert_eq!(eval(&tab, "window.innerWidth"), Value::from(width), "viewport width");
            let verdicts =
                eval(&tab, "Array.from(document.querySelectorAll('.verdict')).map(e => e.textContent).join('\\n')");
            assert!(verdicts.as_str().unwrap().contains(sentence.as_str().unwrap()), "{name} at {width}px: {verdicts}");
            let problems: Vec<String> = serde_json::from_str(eval(&tab, LAYOUT_PROBLEMS).as_str().unwrap()).unwrap();
            assert!(problems.is_empty(), "{name} at {width} px: {problems:#?}");
            if width == 390 {
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
            if !matches!(name, "index" | "experiment") {
                continue;
            }
            let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true).unwrap();
            std::fs::write(shots.join(format!("{name}-{width}.png")), png).unwrap();
        }
    }
    eprintln!("screenshots saved in {}", shots.display());
}
