//! A webhook's last hour as two small server-rendered SVG charts: attempts per minute by
//! outcome (stacked bars), and latency p50/p99 (lines). No script, no library; colours
//! come from the stylesheet, so they follow the light or dark theme. A text summary says
//! the same for screen readers and for anyone who prefers numbers.

use maud::{Markup, html};

use crate::api::proto;
use crate::present::time_text;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;
/// Room on the left for the axis labels.
const LEFT: f64 = 44.0;
/// Room at the bottom for the time labels.
const BOTTOM: f64 = 18.0;

/// Both charts and the summary.
pub(crate) fn render(stats: &proto::GetWebhookStatsResponse) -> Markup {
    let total = stats.total.unwrap_or_default();
    let attempts = total.succeeded + total.retried + total.failed;
    let summary = if attempts == 0 {
        "No attempts in the last hour.".to_owned()
    } else {
        format!(
            "{attempts} attempts in the last hour: {} succeeded, {} retried, {} failed; \
             latency p50 {}, p99 {}.",
            total.succeeded,
            total.retried,
            total.failed,
            ms(total.p50_ms),
            ms(total.p99_ms)
        )
    };
    html! {
        div.chart {
            (rate_chart(&stats.buckets, &summary))
            (latency_chart(&stats.buckets))
            p.chart-summary { (summary) }
            p.legend aria-hidden="true" {
                span.key.ok { "succeeded" } span.key.warn { "retried" } span.key.bad { "failed" }
                span.key.p50 { "p50" } span.key.p99 { "p99" }
            }
        }
    }
}

fn ms(value: f64) -> String {
    if value >= 1000.0 {
        format!("{:.1} s", value / 1000.0)
    } else {
        format!("{value:.0} ms")
    }
}

/// A round number at least `max` (1, 2, 5 × a power of ten) for the top of an axis.
fn nice_ceiling(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * magnitude)
}

/// The frame both charts share: the plot area, its top value and the time labels.
fn frame(buckets: &[proto::StatsBucket], top: &str, unit: &str) -> Markup {
    let first = buckets.first().and_then(|b| b.start.as_ref());
    let label = |t: Option<&prost_types::Timestamp>| {
        time_text(t).get(11..16).unwrap_or_default().to_owned()
    };
    html! {
        line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) {}
        line.grid x1=(LEFT) y1="4" x2=(WIDTH) y2="4" {}
        text.tick x=(LEFT - 6.0) y="8" text-anchor="end" { (top) }
        text.tick x=(LEFT - 6.0) y=(HEIGHT - BOTTOM) text-anchor="end" { "0" }
        text.tick x=(LEFT - 6.0) y=(HEIGHT / 2.0) text-anchor="end" { (unit) }
        text.tick x=(LEFT) y=(HEIGHT - 4.0) { (label(first)) " UTC" }
        text.tick x=(WIDTH) y=(HEIGHT - 4.0) text-anchor="end" { "now" }
    }
}

fn rate_chart(buckets: &[proto::StatsBucket], summary: &str) -> Markup {
    let per = |b: &proto::StatsBucket| (b.succeeded + b.retried + b.failed) as f64;
    let top = nice_ceiling(buckets.iter().map(per).fold(0.0, f64::max));
    let plot = HEIGHT - BOTTOM - 4.0;
    let slot = (WIDTH - LEFT) / buckets.len().max(1) as f64;
    let y = |count: f64| count / top * plot;
    html! {
        svg.rate viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-labelledby="rate-title rate-desc" {
            title #rate-title { "Attempts per minute, last hour" }
            desc #rate-desc { (summary) }
            (frame(buckets, &format!("{top}"), "/min"))
            @for (i, b) in buckets.iter().enumerate() {
                @let x = LEFT + i as f64 * slot + slot * 0.1;
                @let w = slot * 0.8;
                @let mut base = HEIGHT - BOTTOM;
                g {
                    title { (time_text(b.start.as_ref()).get(11..16).unwrap_or_default()) ": "
                        (b.succeeded) " succeeded, " (b.retried) " retried, " (b.failed) " failed" }
                    @for (count, class) in [(b.succeeded, "ok"), (b.retried, "warn"), (b.failed, "bad")] {
                        @if count > 0 {
                            @let h = y(count as f64).max(1.0);
                            @let top_y = { base -= h; base };
                            rect class=(class) x=(fmt(x)) y=(fmt(top_y)) width=(fmt(w)) height=(fmt(h)) {}
                        }
                    }
                }
            }
        }
    }
}

fn latency_chart(buckets: &[proto::StatsBucket]) -> Markup {
    let has = |b: &proto::StatsBucket| b.succeeded + b.retried + b.failed > 0;
    let top = nice_ceiling(
        buckets
            .iter()
            .filter(|b| has(b))
            .map(|b| b.p99_ms)
            .fold(0.0, f64::max),
    );
    let plot = HEIGHT - BOTTOM - 4.0;
    let slot = (WIDTH - LEFT) / buckets.len().max(1) as f64;
    // A line through the buckets that had attempts; a gap where none did.
    let path = |value: fn(&proto::StatsBucket) -> f64| {
        let mut d = String::new();
        let mut pen_down = false;
        for (i, b) in buckets.iter().enumerate() {
            if !has(b) {
                pen_down = false;
                continue;
            }
            let x = LEFT + (i as f64 + 0.5) * slot;
            let y = HEIGHT - BOTTOM - value(b) / top * plot;
            d.push_str(&format!(
                "{}{} {} ",
                if pen_down { "L" } else { "M" },
                fmt(x),
                fmt(y)
            ));
            pen_down = true;
        }
        d
    };
    html! {
        svg.latency viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-labelledby="latency-title" {
            title #latency-title { "Attempt latency p50 and p99 per minute, last hour" }
            (frame(buckets, &ms(top), "ms"))
            path.p99 d=(path(|b| b.p99_ms)) {}
            path.p50 d=(path(|b| b.p50_ms)) {}
            // A dot per minute too, so a lone minute shows.
            @for (i, b) in buckets.iter().enumerate().filter(|(_, b)| has(b)) {
                @let x = fmt(LEFT + (i as f64 + 0.5) * slot);
                circle.p99 cx=(x) cy=(fmt(HEIGHT - BOTTOM - b.p99_ms / top * plot)) r="2.5" {}
                circle.p50 cx=(x) cy=(fmt(HEIGHT - BOTTOM - b.p50_ms / top * plot)) r="2.5" {}
            }
        }
    }
}

/// A coordinate with one decimal (smaller pages, same picture).
fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(17.0), 20.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
        assert_eq!(nice_ceiling(101.0), 200.0);
    }

    #[test]
    fn charts_show_every_outcome_and_say_it_in_words() {
        let bucket = |succeeded, failed, p99_ms| proto::StatsBucket {
            start: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            succeeded,
            failed,
            p50_ms: p99_ms / 2.0,
            p99_ms,
            ..Default::default()
        };
        let stats = proto::GetWebhookStatsResponse {
            buckets: vec![bucket(3, 1, 40.0), bucket(0, 0, 0.0), bucket(5, 0, 80.0)],
            total: Some(bucket(8, 1, 80.0)),
        };
        let svg = render(&stats).into_string();
        assert_eq!(svg.matches("<rect class=\"ok\"").count(), 2);
        assert_eq!(svg.matches("<rect class=\"bad\"").count(), 1);
        assert!(svg.contains("9 attempts in the last hour: 8 succeeded, 0 retried, 1 failed"));
        assert!(svg.contains("p99 80 ms"), "{svg}");
        // The latency lines break where a minute had no attempts.
        assert_eq!(svg.matches(" M").count() + svg.matches("\"M").count(), 4);
    }
}
