//! A small SVG line-chart engine for the report: scales, ticks and point
//! lists in a fixed 640 × 260 box, drawn by the templates. Pure; the data
//! to draw comes from [`crate::views`].

/// Okabe–Ito colours, distinguishable with every common colour-vision
/// deficiency; series also differ by dash pattern.
pub const COLORS: [&str; 5] = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00"];
pub const DASHES: [&str; 5] = ["", "6 3", "2 3", "8 3 2 3", "1 2"];

pub struct Tick {
    pub pos: f64,
    pub label: String,
}

pub struct Series {
    pub label: String,
    pub color: &'static str,
    pub dash: &'static str,
    pub points: String,
}

/// A line chart drawn on the server: coordinates only, in a 640 × 260 box.
pub struct Chart {
    pub title: String,
    pub summary: String,
    pub series: Vec<Series>,
    /// Polygon points of an interval band, when there is one.
    pub band: String,
    pub zero_y: Option<f64>,
    pub y_ticks: Vec<Tick>,
    pub x_ticks: Vec<Tick>,
    /// The same data as a table: header and rows.
    pub header: Vec<String>,
    pub table: Vec<Vec<String>>,
}

const W: f64 = 640.0;
const H: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 36.0;

pub struct Scale {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Scale {
    pub fn new(xs: usize, ys: impl Iterator<Item = f64>, include_zero: bool) -> Scale {
        let (mut lo, mut hi) =
            ys.filter(|y| y.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
        if include_zero {
            lo = lo.min(0.0);
            hi = hi.max(0.0);
        }
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if hi - lo < 1e-12 {
            hi = lo + 1.0;
        }
        let pad = (hi - lo) * 0.08;
        Scale { x0: 0.0, x1: (xs.max(2) - 1) as f64, y0: lo - pad, y1: hi + pad }
    }

    pub fn x(&self, i: usize) -> f64 {
        LEFT + (i as f64 - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT)
    }

    pub fn y(&self, v: f64) -> f64 {
        TOP + (1.0 - (v - self.y0) / (self.y1 - self.y0)) * (H - TOP - BOTTOM)
    }

    pub fn y_ticks(&self, fmt: impl Fn(f64) -> String) -> Vec<Tick> {
        (0..=4)
            .map(|k| {
                let v = self.y0 + (self.y1 - self.y0) * k as f64 / 4.0;
                Tick { pos: self.y(v), label: fmt(v) }
            })
            .collect()
    }
}

pub fn points(scale: &Scale, ys: &[Option<f64>]) -> String {
    ys.iter()
        .enumerate()
        .filter_map(|(i, y)| y.map(|y| format!("{:.1},{:.1}", scale.x(i), scale.y(y))))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn x_ticks(scale: &Scale, dates: &[String]) -> Vec<Tick> {
    let n = dates.len();
    let step = (n / 6).max(1);
    (0..n).step_by(step).map(|i| Tick { pos: scale.x(i), label: dates[i].clone() }).collect()
}
