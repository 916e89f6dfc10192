//! A small SVG line-chart engine for the report: scales, round ticks and
//! point lists in a fixed 640 × 260 box, drawn by the templates. Pure; the
//! data to draw comes from [`crate::views`].
//!
//! x is the day (points sit at their date, so a day without data leaves a
//! gap rather than squeezing the line); y runs between round ticks that
//! hold every value, and 0 when asked, so the zero line is a labelled tick.
//! Every label stays inside the picture.

use chrono::NaiveDate;

/// Okabe–Ito colours, distinguishable with every common colour-vision
/// deficiency; series also differ by dash pattern.
pub const COLORS: [&str; 5] = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00"];
pub const DASHES: [&str; 5] = ["", "6 3", "2 3", "8 3 2 3", "1 2"];

pub struct Tick {
    pub pos: f64,
    pub label: String,
    /// SVG `text-anchor`: the outermost x labels hug the edges.
    pub anchor: &'static str,
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
    /// Empty when there is no data to draw.
    pub y_ticks: Vec<Tick>,
    pub x_ticks: Vec<Tick>,
    /// The same data as a table: header and rows.
    pub header: Vec<String>,
    pub table: Vec<Vec<String>>,
}

const W: f64 = 640.0;
const H: f64 = 260.0;
/// Room for y labels such as "-2000%" (a lift on the first days, from a
/// handful of visitors) at the phone's 22-unit font.
pub const LEFT: f64 = 112.0;
/// Where y labels end, just left of the plot.
const LABEL_X: f64 = LEFT - 6.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 40.0;

/// A round step near `span / 4`: 1, 2, 2.5 or 5 times a power of ten.
fn round_step(span: f64) -> f64 {
    let raw = span / 4.0;
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * power).find(|s| *s >= raw).unwrap_or(10.0 * power)
}

/// Maps days and values to the box.
pub struct Scale {
    first: NaiveDate,
    days: f64,
    y0: f64,
    y1: f64,
    step: f64,
    /// Whether any value was finite.
    pub has_data: bool,
}

impl Scale {
    /// A scale over the dates `first..=last` and the values `ys`, widened
    /// to round ticks (and to 0 with `include_zero`).
    pub fn new(first: NaiveDate, last: NaiveDate, ys: impl Iterator<Item = f64>, include_zero: bool) -> Scale {
        let (mut lo, mut hi) =
            ys.filter(|y| y.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| (a.min(y), b.max(y)));
        let has_data = lo.is_finite();
        if include_zero || !has_data {
            lo = lo.min(0.0);
            hi = hi.max(0.0);
        }
        if hi - lo < 1e-12 {
            // One value: a band around it (never below 0 for data that is not).
            let half = if hi == 0.0 { 0.01 } else { hi.abs() * 0.1 };
            (lo, hi) = (if lo >= 0.0 { (lo - half).max(0.0) } else { lo - half }, hi + half);
        }
        let step = round_step(hi - lo);
        let (y0, y1) = ((lo / step).floor() * step, (hi / step).ceil() * step);
        Scale { first, days: ((last - first).num_days() as f64).max(1.0), y0, y1, step, has_data }
    }

    pub fn x(&self, date: NaiveDate) -> f64 {
        LEFT + (date - self.first).num_days() as f64 / self.days * (W - LEFT - RIGHT)
    }

    pub fn y(&self, v: f64) -> f64 {
        TOP + (1.0 - (v - self.y0) / (self.y1 - self.y0)) * (H - TOP - BOTTOM)
    }

    /// Round ticks from the bottom to the top; none without data. When
    /// every label ends in a zero fraction ("+1000.0%", "$20.00"), it is
    /// dropped from all of them ("+1000%", "$20"): round ticks need no
    /// decimals, and a shorter label fits a phone.
    pub fn y_ticks(&self, fmt: impl Fn(f64) -> String) -> Vec<Tick> {
        if !self.has_data {
            return Vec::new();
        }
        let count = ((self.y1 - self.y0) / self.step).round() as i64;
        let mut ticks: Vec<Tick> = (0..=count)
            .map(|k| {
                let v = self.y0 + self.step * k as f64;
                // -0 and rounding noise read as 0.
                let v = if v.abs() < self.step * 1e-9 { 0.0 } else { v };
                Tick { pos: self.y(v), label: fmt(v), anchor: "end" }
            })
            .collect();
        // Where a label's zero fraction is: its point and the zeros after it.
        let zero_fraction = |label: &str| {
            let dot = label.rfind('.')?;
            let after = &label[dot + 1..];
            let zeros = after.len() - after.trim_start_matches('0').len();
            (zeros > 0 && !after[zeros..].starts_with(|c: char| c.is_ascii_digit())).then_some(dot..dot + 1 + zeros)
        };
        if let Some(cuts) = ticks.iter().map(|t| zero_fraction(&t.label)).collect::<Option<Vec<_>>>() {
            for (t, cut) in ticks.iter_mut().zip(cuts) {
                t.label.replace_range(cut, "");
            }
        }
        ticks
    }

    /// Date labels evenly spaced in days, the first and the last anchored
    /// inside the picture, at the smallest spacing (from a fifth of the
    /// span up) at which none overlaps another at the phone's font
    /// ([`PHONE_FONT`] units, where labels are widest relative to the box),
    /// each clearing the next by [`LABEL_GAP`]. The last day's label always
    /// stays; the evenly spaced one before it goes if the two would touch.
    pub fn x_ticks(&self) -> Vec<Tick> {
        if !self.has_data {
            return Vec::new();
        }
        let days = self.days as i64;
        let tick = |d: i64, anchor| {
            let date = self.first + chrono::Duration::days(d);
            Tick { pos: self.x(date), label: date.format("%b %-d").to_string(), anchor }
        };
        let clear = |a: &Tick, b: &Tick| a.extent().1 + LABEL_GAP <= b.extent().0;
        let first_every = (days as f64 / 5.0).ceil().max(1.0) as i64;
        for every in first_every..=days {
            let mut ticks: Vec<Tick> =
                (0..days).step_by(every as usize).map(|d| tick(d, if d == 0 { "start" } else { "middle" })).collect();
            let last = tick(days, "end");
            if ticks.len() > 1 && !clear(&ticks[ticks.len() - 1], &last) {
                ticks.pop();
            }
            ticks.push(last);
            if ticks.windows(2).all(|pair| clear(&pair[0], &pair[1])) {
                return ticks;
            }
        }
        vec![tick(0, "start"), tick(days, "end")]
    }
}

/// The chart font on a phone, in the box's units: 22 units fill about
/// 11 px when the 640-unit box is drawn 350 px wide.
pub const PHONE_FONT: f64 = 22.0;
/// Least space between two date labels, in the box's units.
const LABEL_GAP: f64 = 10.0;

impl Tick {
    /// Left and right ends of the label at [`PHONE_FONT`], its width taken
    /// generously (0.65 em a character; "Nov 13" is about 0.6 em a
    /// character in common sans fonts).
    fn extent(&self) -> (f64, f64) {
        let width = self.label.chars().count() as f64 * 0.65 * PHONE_FONT;
        match self.anchor {
            "start" => (self.pos, self.pos + width),
            "end" => (self.pos - width, self.pos),
            _ => (self.pos - width / 2.0, self.pos + width / 2.0),
        }
    }
}

impl Chart {
    /// Where the plot begins, in the box's units (the templates draw with it).
    pub fn left(&self) -> f64 {
        LEFT
    }

    pub fn plot_width(&self) -> f64 {
        W - LEFT - RIGHT
    }

    /// Where y labels end.
    pub fn label_x(&self) -> f64 {
        LABEL_X
    }

    /// The middle of the plot, for "No data yet".
    pub fn middle(&self) -> f64 {
        (LEFT + W - RIGHT) / 2.0
    }
}

/// SVG polyline points of the values that exist.
pub fn points(scale: &Scale, ys: &[(NaiveDate, Option<f64>)]) -> String {
    ys.iter()
        .filter_map(|(date, y)| y.map(|y| format!("{:.1},{:.1}", scale.x(*date), scale.y(y))))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn ticks_are_round_and_hold_every_value() {
        let s = Scale::new(d("2026-11-02"), d("2026-11-20"), [0.031, 0.047, 0.052].into_iter(), false);
        let ticks: Vec<String> = s.y_ticks(|v| format!("{v}")).into_iter().map(|t| t.label).collect();
        assert_eq!(ticks, ["0.03", "0.04", "0.05", "0.06"]);
    }

    #[test]
    fn a_proportion_never_shows_an_impossible_range_and_zero_is_a_tick() {
        let s = Scale::new(d("2026-11-02"), d("2026-11-20"), [0.0, 1.0].into_iter(), false);
        let ticks: Vec<f64> = s.y_ticks(|v| format!("{v}")).into_iter().map(|t| t.label.parse().unwrap()).collect();
        assert_eq!((ticks[0], *ticks.last().unwrap()), (0.0, 1.0));
        let lift = Scale::new(d("2026-11-02"), d("2026-11-20"), [-0.07, 0.21].into_iter(), true);
        assert!(lift.y_ticks(|v| format!("{v}")).iter().any(|t| t.label == "0"), "the zero line is labelled");
        let empty = Scale::new(d("2026-11-02"), d("2026-11-02"), std::iter::empty(), false);
        assert!(empty.y_ticks(|v| format!("{v}")).is_empty() && empty.x_ticks().is_empty());
    }

    #[test]
    fn points_sit_at_their_date_and_labels_stay_inside() {
        let s = Scale::new(d("2026-11-01"), d("2026-11-11"), [1.0, 2.0].into_iter(), false);
        assert_eq!(s.x(d("2026-11-01")), LEFT);
        assert_eq!(s.x(d("2026-11-06")), LEFT + (W - LEFT - RIGHT) / 2.0, "a gap of days is a gap of space");
        let ticks = s.x_ticks();
        assert_eq!(ticks.first().unwrap().anchor, "start");
        assert_eq!(ticks.last().unwrap().anchor, "end");
        assert!(ticks.iter().all(|t| t.pos >= LEFT && t.pos <= W - RIGHT));
    }

    #[test]
    fn date_labels_never_overlap_at_the_phone_font_and_the_last_day_is_labelled() {
        for days in 1..=120 {
            let first = d("2026-11-01");
            let last = first + chrono::Duration::days(days);
            let ticks = Scale::new(first, last, [1.0].into_iter(), false).x_ticks();
            assert!(ticks.len() >= 2, "{days} days: {} labels", ticks.len());
            assert_eq!(ticks.last().unwrap().label, last.format("%b %-d").to_string());
            for pair in ticks.windows(2) {
                let (a, b) = (pair[0].extent(), pair[1].extent());
                assert!(a.1 + LABEL_GAP <= b.0, "{days} days: {} and {} overlap", pair[0].label, pair[1].label);
            }
            assert!(
                ticks.iter().all(|t| t.extent().0 >= 0.0 && t.extent().1 <= W),
                "{days} days: a label leaves the box"
            );
        }
    }

    #[test]
    fn round_tick_labels_drop_a_zero_fraction_only_when_every_one_has_it() {
        let labels = |lo: f64, hi: f64| {
            let s = Scale::new(d("2026-11-01"), d("2026-11-11"), [lo, hi].into_iter(), true);
            s.y_ticks(crate::format::signed_pct).into_iter().map(|t| t.label).collect::<Vec<_>>()
        };
        assert_eq!(labels(-20.0, 20.0), ["-2000%", "-1000%", "+0%", "+1000%", "+2000%"]);
        assert!(labels(0.0, 0.1).contains(&"+2.5%".to_owned()), "{:?}", labels(0.0, 0.1));
        assert!(labels(0.0, 0.1).contains(&"+5.0%".to_owned()), "a fraction stays where one label needs it");
    }
}
