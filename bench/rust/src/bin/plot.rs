//! Draws the loopback comparison as a PNG: server CPU per message, messages/s
//! and p99 round trip per server, one bar per measurement round.
//!
//! ```text
//! plot RESULTS.tsv OUT.png [TITLE]
//! ```
//!
//! `RESULTS.tsv` has one line per measurement: `server round msgs_per_s p50_us p99_us
//! [server_cpu_us_per_msg ...]` (tab- or space-separated; lines starting with `#`
//! are skipped; without the CPU column that panel is left out). Text is
//! drawn with DejaVu Sans (or another system TrueType font) found on disk.

use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Where a sans-serif TrueType font may be (Debian's fonts-dejavu-core first).
const FONTS: [&str; 5] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

struct Row {
    server: String,
    round: u32,
    rate: f64,
    p99: f64,
    /// Server CPU µs per message, when the file has it.
    cpu: Option<f64>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: plot RESULTS.tsv OUT.png [TITLE]".into());
    }
    let title = args.get(3).cloned().unwrap_or_else(|| "WebSocket echo over loopback".into());
    let font = FONTS
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or("no TrueType font found (install Debian's fonts-dejavu-core)")?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font).map_err(|_| "bad font file")?;

    let mut rows = Vec::new();
    for line in std::fs::read_to_string(&args[1])?.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 {
            return Err(format!("bad line: {line}").into());
        }
        let cpu = f.get(5).and_then(|c| c.parse().ok());
        rows.push(Row { server: f[0].to_string(), round: f[1].parse()?, rate: f[2].parse()?, p99: f[4].parse()?, cpu });
    }
    let mut servers: Vec<String> = Vec::new();
    for r in &rows {
        if !servers.contains(&r.server) {
            servers.push(r.server.clone());
        }
    }
    let rounds = rows.iter().map(|r| r.round).max().unwrap_or(1).max(1);

    let with_cpu = rows.iter().all(|r| r.cpu.is_some());
    let panels_n = if with_cpu { 3 } else { 2 };
    // Panels stacked, each wide enough for every server's name under its bars.
    let width = (servers.len() as u32 * 110 + 160).max(900);
    let root = BitMapBackend::new(&args[2], (width, 40 + 440 * panels_n)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(40);
    top.titled(&title, ("sans-serif", 24))?;
    let panels = body.split_evenly((panels_n as usize, 1));
    let colors = [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40)];
    let draw = |area: &DrawingArea<BitMapBackend, _>,
                caption: &str,
                y_desc: &str,
                value: &dyn Fn(&Row) -> f64|
     -> Result<(), Box<dyn std::error::Error>> {
        let max = rows.iter().map(value).fold(0.0, f64::max) * 1.15;
        let n = servers.len();
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(62)
            .y_label_area_size(90)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..max.max(1.0))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|y| format!("{y:.0}"))
            .y_desc(y_desc)
            .label_style(("sans-serif", 15))
            .draw()?;
        // Server names under their bars, long ones one part per line (split at each '-').
        let style = TextStyle::from(("sans-serif", 15).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, name) in servers.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64, 0.0));
            let lines: Vec<&str> = if name.len() > 10 { name.split('-').collect() } else { vec![name.as_str()] };
            for (k, line) in lines.iter().enumerate() {
                root.draw(&Text::new(line.to_string(), (px, py + 8 + 17 * k as i32), style.clone()))?;
            }
        }
        let width = 0.7 / rounds as f64;
        for r in &rows {
            let i = servers.iter().position(|s| *s == r.server).unwrap_or(0) as f64;
            let x0 = i - 0.35 + width * (r.round - 1) as f64;
            let v = value(r);
            let color = colors[(r.round as usize - 1) % colors.len()];
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0 + 0.02, 0.0), (x0 + width - 0.02, v)],
                color.filled(),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                if v >= 10_000.0 {
                    format!("{:.1}k", v / 1000.0)
                } else if v >= 100.0 {
                    format!("{v:.0}")
                } else if v < 10.0 {
                    format!("{v:.2}")
                } else {
                    format!("{v:.1}")
                },
                (x0 + 0.04, v + max * 0.02),
                ("sans-serif", 13),
            )))?;
        }
        Ok(())
    };
    let mut next = panels.iter();
    if with_cpu {
        let area = next.next().ok_or("no panel")?;
        draw(area, "server CPU per message (lower is better)", "CPU microseconds", &|r| r.cpu.unwrap_or(0.0))?;
    }
    let area = next.next().ok_or("no panel")?;
    draw(area, "messages/s (higher is better)", "messages per second", &|r| r.rate)?;
    let area = next.next().ok_or("no panel")?;
    draw(area, "p99 round trip (lower is better)", "microseconds", &|r| r.p99)?;
    let legend: Vec<String> = (1..=rounds).map(|r| format!("round {r}")).collect();
    for (k, label) in legend.iter().enumerate() {
        let x = 20 + 110 * k as i32;
        let color = colors[k % colors.len()];
        top.draw(&Rectangle::new([(x, 12), (x + 14, 26)], color.filled()))?;
        top.draw(&Text::new(label.clone(), (x + 18, 11), ("sans-serif", 15)))?;
    }
    root.present()?;
    Ok(())
}
