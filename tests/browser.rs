//! The report in a real browser: headless Chromium loads `/` and a test's
//! page at 1280 px and 390 px wide, checks the verdict sentence is in the
//! rendered DOM, that no box overflows, that chart labels neither overlap
//! nor shrink under 11 px, and saves full-page screenshots of README's own
//! walkthrough for a person to look at: with `OFFERLAB_BLESS=1` it writes
//! the ones README links, in `docs/screenshots/`.
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
/// - two labels of one chart (or forest plot) that overlap, or a label cut
///   by its chart's edge;
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
  for (const svg of document.querySelectorAll('svg.chart, svg.forest')) {
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
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

/// A viewport `width` × `height` px, a phone's below 500 px.
fn viewport(width: u32, height: u32) -> SetDeviceMetricsOverride {
    SetDeviceMetricsOverride {
        width,
        height,
        device_scale_factor: 1.0,
        mobile: width < 500,
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
    }
}

/// The `offerlab simulate` arguments of README's walkthrough (after its
/// `--url`), and the test its `offerlab report` line shows.
fn walkthrough() -> (Vec<String>, String) {
    let readme = include_str!("../README.md");
    let start = readme.find("offerlab simulate --url").expect("README's walkthrough runs offerlab simulate");
    let command: String =
        readme[start..].split_inclusive('\n').take_while(|l| !l.trim_start().starts_with("offerlab report")).collect();
    let words: Vec<String> = command.replace("\\\n", " ").split_whitespace().skip(4).map(str::to_owned).collect();
    let report = &readme[readme.find("offerlab report ").expect("README's walkthrough shows a report")..];
    let shown = report.split_whitespace().nth(2).unwrap().to_owned();
    (words, shown)
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
    // The README's walkthrough, as written there: the screenshots it links
    // show what a reader of it gets.
    let (args, shown) = walkthrough();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::simulate(&url, &args);
    let list: Value = reqwest::blocking::get(format!("{url}/api/v1/experiments")).unwrap().json().unwrap();
    let report: Value =
        reqwest::blocking::get(format!("{url}/api/v1/experiments/{shown}/report")).unwrap().json().unwrap();
    assert!(
        report["metrics"][0]["arms"][0]["visitors"].as_u64().unwrap() > 1000,
        "the walkthrough populates {shown}: {report}"
    );
    assert_eq!(
        report["verdict"]["code"], "validated_winner",
        "README promises a validated winner: {}",
        report["verdict"]
    );

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for width in [1280, 390] {
        let browser = browser(width);
        let tab = browser.new_tab().unwrap();
        // Headless windows are at least 500 px wide: the viewport is emulated.
        tab.call_method(viewport(width, 844)).unwrap();
        let mut pages = vec![
            ("index".to_owned(), "/".to_owned(), list["experiments"][0]["verdict"]["sentence"].clone()),
            ("experiment".to_owned(), format!("/experiments/{shown}"), report["verdict"]["sentence"].clone()),
        ];
        for e in list["experiments"].as_array().unwrap() {
            let id = e["id"].as_str().unwrap();
            if id != shown {
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
                // The simulated visitors carry a device: "By segment" shows its forest plots.
                let forests = eval(&tab, "document.querySelectorAll('svg.forest').length").as_u64().unwrap();
                assert!(forests >= 2, "{name} at {width}px: {forests} forest plots");
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
            // The whole page, as tall as it is, with the data tables closed again.
            eval(&tab, "document.querySelectorAll('details').forEach(d => d.open = false)");
            let height = eval(&tab, "document.documentElement.scrollHeight").as_u64().unwrap();
            tab.call_method(viewport(width, u32::try_from(height).unwrap())).unwrap();
            let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true).unwrap();
            tab.call_method(viewport(width, 844)).unwrap();
            let file = format!("{name}-{width}.png");
            std::fs::write(shots.join(&file), &png).unwrap();
            if std::env::var_os("OFFERLAB_BLESS").is_some() {
                std::fs::write(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots").join(&file), &png)
                    .unwrap();
            }
        }
    }
    eprintln!("screenshots saved in {}", shots.display());
}
