//! `daedalus-bench --plot`: a small PNG for people, drawn without a font
//! stack or plotting library: per-run fps bars of both sides on the left,
//! latency distributions (CDF) on the right, labelled with a built-in 5x7
//! bitmap font.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::stats::SideSummary;

const W: usize = 960;
const H: usize = 480;
const BG: [u8; 3] = [255, 255, 255];
const FG: [u8; 3] = [30, 30, 30];
const GRID: [u8; 3] = [225, 225, 225];
const DEVICE: [u8; 3] = [31, 119, 180];
const FFMPEG: [u8; 3] = [255, 127, 14];

struct Canvas {
    px: Vec<u8>,
}

impl Canvas {
    fn new() -> Self {
        Canvas {
            px: BG.iter().copied().cycle().take(W * H * 3).collect(),
        }
    }

    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if (0..W as i64).contains(&x) && (0..H as i64).contains(&y) {
            let i = (y as usize * W + x as usize) * 3;
            self.px[i..i + 3].copy_from_slice(&c);
        }
    }

    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: [u8; 3]) {
        for y in y0.min(y1)..=y0.max(y1) {
            for x in x0.min(x1)..=x0.max(x1) {
                self.set(x, y, c);
            }
        }
    }

    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3]) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).max(1);
        for s in 0..=steps {
            let x = x0 + (x1 - x0) * s / steps;
            let y = y0 + (y1 - y0) * s / steps;
            self.rect(x, y, x + 1, y + 1, c);
        }
    }

    /// Text at (x, y) top-left, scale 2 (10x14 glyphs).
    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3]) {
        for (i, ch) in s.chars().enumerate() {
            let rows = glyph(ch.to_ascii_uppercase());
            for (ry, bits) in rows.iter().enumerate() {
                for rx in 0..5 {
                    if bits & (0x10 >> rx) != 0 {
                        let (px, py) = (x + i as i64 * 12 + rx * 2, y + ry as i64 * 2);
                        self.rect(px, py, px + 1, py + 1, c);
                    }
                }
            }
        }
    }
}

#[rustfmt::skip]
fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
        '1' => [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
        '2' => [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
        '3' => [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
        '4' => [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
        '5' => [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
        '6' => [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
        '7' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
        '9' => [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
        'A' => [0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
        'B' => [0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e],
        'C' => [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e],
        'D' => [0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c],
        'E' => [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f],
        'F' => [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10],
        'G' => [0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f],
        'H' => [0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11],
        'I' => [0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f],
        'M' => [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
        'P' => [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10],
        'Q' => [0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d],
        'R' => [0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11],
        'S' => [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e],
        'T' => [0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a],
        'X' => [0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0a, 0x04, 0x04, 0x04],
        'Z' => [0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c],
        ':' => [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '=' => [0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00],
        _ => [0; 7],
    }
}

/// Left panel: fps of each run, both sides side by side.
fn fps_panel(c: &mut Canvas, sides: &[(&SideSummary, [u8; 3])]) {
    let (x0, y0, x1, y1) = (60i64, 60i64, 440i64, 420i64);
    let max = sides
        .iter()
        .flat_map(|(s, _)| s.run_fps.iter().copied())
        .fold(1.0f64, f64::max)
        * 1.15;
    c.text(x0, 20, "FPS PER RUN", FG);
    for i in 0..=4 {
        let y = y1 - (y1 - y0) * i / 4;
        c.line((x0, y), (x1, y), GRID);
        c.text(4, y - 7, &format!("{:.0}", max * i as f64 / 4.0), FG);
    }
    let runs = sides
        .iter()
        .map(|(s, _)| s.run_fps.len())
        .max()
        .unwrap_or(1)
        .max(1) as i64;
    let slot = (x1 - x0) / runs;
    let bar = (slot - 10) / sides.len().max(1) as i64;
    for (si, (side, color)) in sides.iter().enumerate() {
        for (run, fps) in side.run_fps.iter().enumerate() {
            let bx = x0 + 5 + run as i64 * slot + si as i64 * bar;
            let top = y1 - ((y1 - y0) as f64 * fps / max) as i64;
            c.rect(bx, top, bx + bar - 3, y1, *color);
        }
    }
    c.line((x0, y1), (x1, y1), FG);
    c.line((x0, y0), (x0, y1), FG);
    c.text(x0, y1 + 12, "RUN 1 .. N", FG);
}

/// Right panel: cumulative distribution of per-frame latency.
fn latency_panel(c: &mut Canvas, sides: &[(&SideSummary, [u8; 3])]) {
    let (x0, y0, x1, y1) = (520i64, 60i64, 900i64, 420i64);
    // Cut at the largest p99 so one outlier does not flatten the curves.
    let max = sides
        .iter()
        .filter_map(|(s, _)| s.latency_p99_ms)
        .fold(0.001f64, f64::max)
        * 1.2;
    c.text(x0, 20, "LATENCY CDF (MS)", FG);
    for i in 0..=4 {
        let x = x0 + (x1 - x0) * i / 4;
        c.line((x, y0), (x, y1), GRID);
        c.text(x - 12, y1 + 12, &format!("{:.1}", max * i as f64 / 4.0), FG);
        let y = y1 - (y1 - y0) * i / 4;
        c.line((x0, y), (x1, y), GRID);
        c.text(x0 - 48, y - 7, &format!("{}%", 25 * i), FG);
    }
    for (side, color) in sides {
        let n = side.latencies_ms.len();
        let mut prev = None;
        for (i, &ms) in side.latencies_ms.iter().enumerate() {
            let x = x0 + ((x1 - x0) as f64 * (ms / max).min(1.0)) as i64;
            let y = y1 - ((y1 - y0) as f64 * (i + 1) as f64 / n as f64) as i64;
            if let Some(p) = prev {
                c.line(p, (x, y), *color);
            }
            prev = Some((x, y));
        }
    }
    c.line((x0, y1), (x1, y1), FG);
    c.line((x0, y0), (x0, y1), FG);
}

pub fn draw(
    path: &Path,
    device: &SideSummary,
    ffmpeg: Option<&SideSummary>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut canvas = Canvas::new();
    let mut sides = vec![(device, DEVICE)];
    if let Some(f) = ffmpeg {
        sides.push((f, FFMPEG));
    }
    fps_panel(&mut canvas, &sides);
    latency_panel(&mut canvas, &sides);
    let mut legend_x = 60;
    for (side, color) in &sides {
        canvas.rect(legend_x, H as i64 - 22, legend_x + 14, H as i64 - 8, *color);
        let label = format!("{} {:.1} FPS", side.name, side.fps);
        canvas.text(legend_x + 22, H as i64 - 22, &label, FG);
        legend_x += 24 + 12 * label.len() as i64 + 30;
    }
    let mut encoder = png::Encoder::new(BufWriter::new(File::create(path)?), W as u32, H as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&canvas.px)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn writes_a_png() {
        let mut d = SideSummary::new("device");
        d.add_run(
            100,
            0,
            Duration::from_secs(2),
            &[Duration::from_millis(20); 100],
        );
        d.finish(None, None);
        let mut f = SideSummary::new("ffmpeg");
        f.add_run(
            100,
            0,
            Duration::from_secs(1),
            &[Duration::from_millis(9); 100],
        );
        f.finish(None, None);
        let path = std::env::temp_dir().join(format!("daedalus-plot-{}.png", std::process::id()));
        draw(&path, &d, Some(&f)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(bytes.starts_with(b"\x89PNG"));
    }
}
