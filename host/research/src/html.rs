//! `report.html`: one self-contained page. Charts are built with `charming`
//! (typed ECharts options) and drawn by ECharts, whose script is inlined (from
//! the npm package pinned in `report/package-lock.json`), so the page needs
//! no network when it is opened.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use charming::Chart;
use charming::datatype::DataPoint;
use charming::component::{Axis, Grid, Legend, Title, VisualMap};
use charming::element::{AreaStyle, AxisType, Tooltip, Trigger};
use charming::series::{Bar, Heatmap, Line};

use crate::backtest::{Run, RunMetrics, daily_equity};

const ECHARTS: &str = include_str!(concat!(env!("OUT_DIR"), "/echarts.min.js"));

/// A page of charts and tables, in order.
pub struct Page {
    title: String,
    sections: Vec<String>,
    charts: Vec<(String, Chart)>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl Page {
    pub fn new(title: &str) -> Self {
        Self { title: title.to_owned(), sections: Vec::new(), charts: Vec::new() }
    }

    /// A chart in its own panel.
    pub fn chart(&mut self, chart: Chart) {
        let id = format!("chart{}", self.charts.len());
        self.sections.push(format!(r#"<div class="chart" id="{id}"></div>"#));
        self.charts.push((id, chart));
    }

    /// A table of (name, value) rows under a heading.
    pub fn table(&mut self, heading: &str, rows: &[(String, String)]) {
        let mut t = format!("<h2>{}</h2><table>", escape(heading));
        for (k, v) in rows {
            let _ = write!(t, "<tr><th>{}</th><td>{}</td></tr>", escape(k), escape(v));
        }
        t.push_str("</table>");
        self.sections.push(t);
    }

    /// A table with a header row.
    pub fn grid(&mut self, heading: &str, header: &[&str], rows: &[Vec<String>]) {
        let mut t = format!("<h2>{}</h2><table><tr>", escape(heading));
        for h in header {
            let _ = write!(t, "<th>{}</th>", escape(h));
        }
        t.push_str("</tr>");
        for r in rows {
            t.push_str("<tr>");
            for c in r {
                let _ = write!(t, "<td>{}</td>", escape(c));
            }
            t.push_str("</tr>");
        }
        t.push_str("</table>");
        self.sections.push(t);
    }

    pub fn note(&mut self, text: &str) {
        self.sections.push(format!("<p class=\"note\">{}</p>", escape(text)));
    }

    pub fn render(&self) -> String {
        let mut html = format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
             body{{font-family:sans-serif;margin:24px;max-width:1200px}}\
             .chart{{width:1150px;height:360px;margin:12px 0;border:1px solid #ddd}}\
             table{{border-collapse:collapse;margin:8px 0}}th,td{{border:1px solid #ccc;padding:3px 8px;text-align:right}}\
             th{{background:#f4f4f4;text-align:left}}.note{{color:#555;max-width:1100px}}</style>\
             <script>{ECHARTS}</script></head><body><h1>{t}</h1>",
            t = escape(&self.title)
        );
        for s in &self.sections {
            html.push_str(s);
        }
        html.push_str("<script>");
        for (id, chart) in &self.charts {
            // The option is JSON: `</` could end the script element early.
            let option = chart.to_string().replace("</", "<\\/");
            let _ = write!(html, "echarts.init(document.getElementById('{id}'),null,{{renderer:'canvas'}}).setOption({option});");
        }
        html.push_str("</script></body></html>");
        html
    }
}

fn day(t: i64) -> String {
    stratbox_market::format_time(t - 1)[..10].to_owned()
}

fn line_chart(title: &str, x: Vec<String>, series: Vec<(&str, Vec<f64>)>, area: bool) -> Chart {
    let mut chart = Chart::new()
        .title(Title::new().text(title))
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .legend(Legend::new().top("bottom"))
        .grid(Grid::new().left("8%").right("4%"))
        .x_axis(Axis::new().type_(AxisType::Category).data(x))
        .y_axis(Axis::new().type_(AxisType::Value).scale(true));
    for (name, data) in series {
        let mut l = Line::new().name(name).show_symbol(false).data(data);
        if area {
            l = l.area_style(AreaStyle::new());
        }
        chart = chart.series(l);
    }
    chart
}

fn bar_chart(title: &str, x: Vec<String>, data: Vec<f64>) -> Chart {
    Chart::new()
        .title(Title::new().text(title))
        .tooltip(Tooltip::new().trigger(Trigger::Axis))
        .grid(Grid::new().left("8%").right("4%"))
        .x_axis(Axis::new().type_(AxisType::Category).data(x))
        .y_axis(Axis::new().type_(AxisType::Value))
        .series(Bar::new().data(data))
}

/// A histogram of `values` in `bins` equal bins.
fn histogram(title: &str, values: &[f64], bins: usize) -> Chart {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let (lo, hi) = if finite.is_empty() { (0.0, 1.0) } else if hi > lo { (lo, hi) } else { (lo - 0.5, lo + 0.5) };
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0.0; bins];
    for v in &finite {
        counts[(((v - lo) / width) as usize).min(bins - 1)] += 1.0;
    }
    let labels = (0..bins).map(|k| format!("{:.4}", lo + width * (k as f64 + 0.5))).collect();
    bar_chart(title, labels, counts)
}

/// A heatmap: `cells` are (x index, y index, value); NaN cells are left empty.
pub fn heatmap(title: &str, x: Vec<String>, y: Vec<String>, cells: Vec<(usize, usize, f64)>) -> Chart {
    let finite: Vec<f64> = cells.iter().map(|c| c.2).filter(|v| v.is_finite()).collect();
    let (lo, hi) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let (lo, hi) = if finite.is_empty() { (0.0, 1.0) } else { (lo, hi.max(lo + 1e-12)) };
    let data: Vec<Vec<DataPoint>> =
        cells.into_iter().filter(|c| c.2.is_finite()).map(|(i, j, v)| vec![DataPoint::from(i as f64), DataPoint::from(j as f64), DataPoint::from((v * 1e4).round() / 1e4)]).collect();
    Chart::new()
        .title(Title::new().text(title))
        .tooltip(Tooltip::new())
        .grid(Grid::new().left("10%").right("10%").bottom("15%"))
        .x_axis(Axis::new().type_(AxisType::Category).data(x))
        .y_axis(Axis::new().type_(AxisType::Category).data(y))
        .visual_map(VisualMap::new().min(lo).max(hi).calculable(true).orient(charming::element::Orient::Vertical).right("2%").top("middle"))
        .series(Heatmap::new().data(data))
}

/// Rolling annualised Sharpe ratio over `window` periods (empyrical's: mean over sample std x sqrt(252)).
fn rolling_sharpe(returns: &[f64], window: usize) -> Vec<f64> {
    (0..returns.len())
        .map(|k| {
            if k + 1 < window {
                return f64::NAN;
            }
            let w = &returns[k + 1 - window..=k];
            let m = w.iter().sum::<f64>() / window as f64;
            let sd = (w.iter().map(|r| (r - m).powi(2)).sum::<f64>() / (window - 1) as f64).sqrt();
            if sd > 0.0 { m / sd * 252f64.sqrt() } else { f64::NAN }
        })
        .collect()
}

fn pct(x: f64) -> String {
    if x.is_finite() { format!("{:.2}%", x * 100.0) } else { "-".into() }
}

fn num(x: f64) -> String {
    if x.is_finite() { format!("{x:.4}") } else { "-".into() }
}

/// The metrics table's rows.
pub fn metric_rows(m: &RunMetrics) -> Vec<(String, String)> {
    let r = &m.returns;
    let mut rows = vec![
        ("Total return".into(), pct(r.total_return)),
        ("CAGR".into(), pct(r.annual_return)),
        ("Annual volatility".into(), pct(r.annual_volatility)),
        ("Sharpe".into(), num(r.sharpe)),
        ("Sortino".into(), num(r.sortino)),
        ("Calmar".into(), num(r.calmar)),
        ("Omega".into(), num(r.omega)),
        ("Max drawdown".into(), pct(r.max_drawdown)),
        ("Max drawdown length (days)".into(), r.max_drawdown_periods.to_string()),
        ("Time under water".into(), pct(r.time_under_water)),
        ("Skew".into(), num(r.skew)),
        ("Excess kurtosis".into(), num(r.excess_kurtosis)),
        ("Tail ratio".into(), num(r.tail_ratio)),
        ("VaR 95% / 99% (daily)".into(), format!("{} / {}", pct(r.var_95), pct(r.var_99))),
        ("CVaR 95% / 99% (daily)".into(), format!("{} / {}", pct(r.cvar_95), pct(r.cvar_99))),
        ("Stability (R² of log equity)".into(), num(r.stability)),
        ("Trades (closed)".into(), m.trades.trades.to_string()),
        ("Win rate".into(), pct(m.trades.win_rate)),
        ("Profit factor".into(), num(m.trades.profit_factor)),
        ("Payoff ratio".into(), num(m.trades.payoff_ratio)),
        ("Expectancy".into(), num(m.trades.expectancy)),
        ("SQN".into(), num(m.trades.sqn)),
        ("Average holding (days)".into(), num(m.trades.average_holding_secs / 86_400.0)),
        ("Time in market".into(), pct(m.time_in_market)),
        ("Exposure (mean gross / equity)".into(), num(m.exposure)),
        ("Turnover (annual, x equity)".into(), num(m.annual_turnover)),
        ("Fills / fees".into(), format!("{} / {:.2}", m.fills, m.fees)),
        ("Orders refused by risk".into(), m.refused_orders.to_string()),
    ];
    if let Some(b) = &m.benchmark {
        rows.extend([
            ("Alpha (annual)".into(), num(b.alpha)),
            ("Beta".into(), num(b.beta)),
            ("Information ratio".into(), num(b.information_ratio)),
            ("Up / down capture".into(), format!("{} / {}", num(b.up_capture), num(b.down_capture))),
        ]);
    }
    rows
}

/// The conventions the numbers follow, as the report states them.
pub const CONVENTIONS: &str = "Returns are daily simple returns of the end-of-day equity (the first from the starting capital). \
Conventions follow empyrical-reloaded: 252 periods a year, sample standard deviation (ddof 1), a per-period risk-free rate of 0, \
historical VaR and CVaR (quantiles of the daily returns), skew and kurtosis as scipy's biased moments, stability the R² of a line fitted \
to cumulative log returns. Trade statistics follow backtesting.py: a round trip opens from flat and ends flat, net of fees and financing; \
profit factor = gross wins / gross losses; SQN = sqrt(n) x mean / std. Exposure is the mean of gross exposure over equity at the end of each day; \
time in market the share of days with a position; turnover the traded notional per year over mean equity.";

/// The page of one backtest.
pub fn backtest_page(title: &str, run: &Run, m: &RunMetrics, benchmark: Option<(&str, &[f64])>) -> String {
    let mut page = Page::new(title);
    let daily = daily_equity(&run.equity);
    let days: Vec<String> = daily.iter().map(|p| day(p.time)).collect();
    let returns = run.returns();
    let mut series = vec![("strategy", daily.iter().map(|p| p.equity / run.capital).collect::<Vec<f64>>())];
    if let Some((name, b)) = benchmark {
        let mut growth = 1.0;
        series.push((name, b.iter().map(|r| { growth *= 1.0 + r; growth }).collect()));
    }
    page.table("Metrics", &metric_rows(m));
    page.note(CONVENTIONS);
    page.chart(line_chart("Equity (growth of 1) against the benchmark", days.clone(), series, false));
    let mut peak = run.capital;
    let underwater: Vec<f64> = daily.iter().map(|p| { peak = peak.max(p.equity); p.equity / peak - 1.0 }).collect();
    page.chart(line_chart("Underwater (drawdown from the peak)", days.clone(), vec![("drawdown", underwater)], true));

    // Monthly returns: compounded daily returns per calendar month.
    let mut months: BTreeMap<(i32, u32), f64> = BTreeMap::new();
    for (p, r) in daily.iter().zip(&returns) {
        let d = day(p.time);
        let (y, mo) = (d[..4].parse().unwrap_or(0), d[5..7].parse().unwrap_or(1));
        let e = months.entry((y, mo)).or_insert(1.0);
        *e *= 1.0 + r;
    }
    let years: Vec<i32> = { let mut y: Vec<i32> = months.keys().map(|k| k.0).collect(); y.dedup(); y };
    let cells = months.iter().map(|((y, mo), g)| ((*mo - 1) as usize, years.iter().position(|x| x == y).unwrap_or(0), (g - 1.0) * 100.0)).collect();
    let month_names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"].map(String::from).to_vec();
    page.chart(heatmap("Monthly returns (%)", month_names, years.iter().map(|y| y.to_string()).collect(), cells));
    page.chart(line_chart("Rolling Sharpe (126 days)", days.clone(), vec![("sharpe", rolling_sharpe(&returns, 126))], false));
    page.chart(histogram("Distribution of daily returns", &returns, 50));
    let pnl: Vec<f64> = run.trades.iter().filter(|t| t.closed.is_some()).map(|t| t.pnl).collect();
    page.chart(histogram("Distribution of trade P&L (closed round trips)", &pnl, 50));
    let exposure = daily.iter().map(|p| if p.equity > 0.0 { p.gross_exposure / p.equity } else { 0.0 }).collect();
    page.chart(line_chart("Exposure (gross / equity)", days, vec![("exposure", exposure)], true));

    let mut by_symbol: Vec<(&String, &f64)> = run.contribution.iter().collect();
    by_symbol.sort_by(|a, b| b.1.total_cmp(a.1));
    let n = by_symbol.len().min(10);
    let mut picked: Vec<(&String, &f64)> = by_symbol[..n].to_vec();
    picked.extend(by_symbol[by_symbol.len().saturating_sub(10).max(n)..].iter().copied());
    page.chart(bar_chart("Contribution by symbol: top and bottom 10 (P&L)", picked.iter().map(|p| p.0.clone()).collect(), picked.iter().map(|p| *p.1).collect()));

    let refused: Vec<Vec<String>> = run.refused.iter().map(|(rule, n)| vec![rule.clone(), n.to_string()]).collect();
    if !refused.is_empty() {
        page.grid("Orders refused by risk, by rule", &["rule", "orders"], &refused);
    }
    if !run.faults.is_empty() {
        let faults: Vec<Vec<String>> = run.faults.iter().map(|(p, r)| vec![p.clone(), r.clone()]).collect();
        page.grid("Plugins quarantined", &["plugin", "reason"], &faults);
    }
    page.render()
}

/// A study's page: the leaderboard, the overfitting guards, each
/// parameter against the objective, and the objective over the first two parameters.
pub fn study_page(title: &str, file: &crate::study::StudyFile, guards: &crate::study::Guards, note: Option<&str>) -> String {
    use charming::series::Scatter;
    use crate::study::{TrialState, leaderboard};
    let spec = &file.spec;
    let mut page = Page::new(title);
    let (complete, infeasible, failed) = file.trials.values().fold((0, 0, 0), |(c, i, f), t| match t.state {
        TrialState::Complete => (c + 1, i, f),
        TrialState::Infeasible => (c, i + 1, f),
        TrialState::Failed => (c, i, f + 1),
    });
    let mut rows = vec![
        ("Plugin".to_owned(), format!("{} {} (sha256 {})", spec.plugin, spec.plugin_version, &spec.plugin_sha256[..16.min(spec.plugin_sha256.len())])),
        ("Sampler".into(), format!("{:?}, seed {}, batch {}", spec.sampler, spec.seed, spec.batch)),
        ("Objective".into(), format!("{} ({:?})", spec.objective, spec.direction)),
        ("Constraints".into(), if spec.constraints.is_empty() { "none".into() } else { spec.constraints.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ") }),
        ("Data".into(), spec.data.clone()),
        ("Trials".into(), format!("{} complete, {infeasible} infeasible, {failed} failed", complete)),
    ];
    if let Some(d) = &guards.deflated {
        rows.push(("Deflated Sharpe of the best".into(), format!("{:.4} (per-period Sharpe {:.4} against {:.4}, the best of {} trials by luck)", d.dsr, d.sharpe, d.benchmark, d.trials)));
    }
    if let Some(p) = &guards.pbo {
        rows.push(("PBO (CSCV)".into(), format!("{:.3} over {} splits of {} blocks", p.pbo, p.logits.len(), p.partitions)));
    }
    for n in &guards.notes {
        rows.push(("Note".into(), n.clone()));
    }
    page.table("Study", &rows);
    if let Some(n) = note {
        page.note(n);
    }
    let names: Vec<&str> = spec.space.dims.iter().map(|d| d.0.as_str()).collect();
    let board = leaderboard(spec, file.trials.values());
    let shown = ["sharpe", "annual_return", "max_drawdown", "trades", "win_rate"];
    let mut header: Vec<&str> = vec!["rank", "trial"];
    header.extend(&names);
    header.push(&spec.objective);
    header.extend(shown.iter().filter(|m| **m != spec.objective));
    let rows: Vec<Vec<String>> = board
        .iter()
        .take(25)
        .enumerate()
        .map(|(k, t)| {
            let mut r = vec![(k + 1).to_string(), t.trial.to_string()];
            r.extend(names.iter().map(|n| t.params.get(*n).map_or("-".into(), crate::space::show)));
            r.push(t.value.map_or("-".into(), num));
            r.extend(shown.iter().filter(|m| **m != spec.objective).map(|m| t.metrics.get(*m).map_or("-".into(), |v| num(*v))));
            r
        })
        .collect();
    page.grid("Leaderboard (feasible trials, best first)", &header, &rows);
    let value = |t: &crate::study::TrialRecord| t.value.filter(|_| t.state == TrialState::Complete);
    for (d, name) in names.iter().enumerate() {
        let points: Vec<Vec<f64>> = file
            .trials
            .values()
            .filter_map(|t| Some(vec![param_number(t.params.get(*name)?).unwrap_or(t.internal.get(d).copied()?), value(t)?]))
            .collect();
        page.chart(
            Chart::new()
                .title(Title::new().text(format!("{} against {name}", spec.objective)))
                .tooltip(Tooltip::new())
                .x_axis(Axis::new().type_(AxisType::Value).name(*name).scale(true))
                .y_axis(Axis::new().type_(AxisType::Value).name(spec.objective.as_str()).scale(true))
                .series(Scatter::new().symbol_size(6).data(points)),
        );
    }
    if names.len() >= 2 {
        // The best objective seen in each cell of the first two parameters.
        let levels = |d: usize| -> Vec<String> {
            let mut v: Vec<(f64, String)> = file.trials.values().filter_map(|t| { let p = t.params.get(names[d])?; Some((param_number(p)?, crate::space::show(p))) }).collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v.dedup_by(|a, b| a.1 == b.1);
            v.into_iter().map(|x| x.1).collect()
        };
        let (xs, ys) = (levels(0), levels(1));
        if xs.len() <= 300 && ys.len() <= 300 {
            let mut best: BTreeMap<(usize, usize), f64> = BTreeMap::new();
            for t in file.trials.values() {
                let (Some(v), Some(a), Some(b)) = (value(t), t.params.get(names[0]), t.params.get(names[1])) else { continue };
                let (Some(i), Some(j)) = (xs.iter().position(|x| *x == crate::space::show(a)), ys.iter().position(|y| *y == crate::space::show(b))) else { continue };
                let e = best.entry((i, j)).or_insert(v);
                let better = match spec.direction {
                    crate::study::Direction::Maximize => v > *e,
                    crate::study::Direction::Minimize => v < *e,
                };
                if better {
                    *e = v;
                }
            }
            let cells = best.into_iter().map(|((i, j), v)| (i, j, v)).collect();
            page.chart(heatmap(&format!("{} over {} (x) and {} (y)", spec.objective, names[0], names[1]), xs, ys, cells));
        }
    }
    page.render()
}

fn param_number(p: &stratbox_engine::config::ParamInput) -> Option<f64> {
    match p {
        stratbox_engine::config::ParamInput::Integer(i) => Some(*i as f64),
        stratbox_engine::config::ParamInput::Number(x) => Some(*x),
        _ => None,
    }
}

/// A walk-forward's page: the stitched out-of-sample equity, each window's
/// choice and results, and the chosen parameters over the windows.
pub fn walk_forward_page(title: &str, wf: &crate::walkforward::WalkForward) -> String {
    let mut page = Page::new(title);
    let m = &wf.out_of_sample;
    page.table(
        "Out of sample (stitched test parts)",
        &[
            ("Total return".into(), pct(m.total_return)),
            ("CAGR".into(), pct(m.annual_return)),
            ("Sharpe".into(), num(m.sharpe)),
            ("Max drawdown".into(), pct(m.max_drawdown)),
            ("Mean in-sample CAGR of the chosen trials".into(), pct(wf.in_sample_annual_return)),
            ("Walk-forward efficiency (OOS CAGR / IS CAGR)".into(), num(wf.efficiency)),
            ("Windows".into(), wf.windows.len().to_string()),
        ],
    );
    page.note("Each test run starts at its window's training start with the parameters chosen there, so indicators are warm; only its returns inside the test part count. Purge drops the end of the training part; embargo leaves a gap before the test part.");
    let mut equity = 1.0;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for w in &wf.windows {
        for (t, r) in &w.returns {
            equity *= 1.0 + r;
            x.push(day(*t));
            y.push(equity);
        }
    }
    page.chart(line_chart("Out-of-sample equity (growth of 1)", x, vec![("out of sample", y)], false));
    let names: Vec<String> = wf.stability.iter().map(|s| s.param.clone()).collect();
    let mut header: Vec<&str> = vec!["window", "train", "test", "trials"];
    header.extend(names.iter().map(String::as_str));
    header.extend(["IS CAGR", "IS Sharpe", "OOS return", "OOS Sharpe", "OOS max dd"]);
    let rows: Vec<Vec<String>> = wf
        .windows
        .iter()
        .map(|w| {
            let mut r = vec![w.index.to_string(), format!("{} to {}", w.train_dates.0, w.train_dates.1), format!("{} to {}", w.test_dates.0, w.test_dates.1), w.trials.to_string()];
            r.extend(names.iter().map(|n| w.params.as_ref().and_then(|p| p.get(n)).map_or("(flat)".into(), crate::space::show)));
            r.push(w.in_sample.as_ref().map_or("-".into(), |m| pct(m.annual_return)));
            r.push(w.in_sample.as_ref().map_or("-".into(), |m| num(m.sharpe)));
            r.extend([pct(w.out_of_sample.total_return), num(w.out_of_sample.sharpe), pct(w.out_of_sample.max_drawdown)]);
            r
        })
        .collect();
    page.grid("Windows", &header, &rows);
    let stab: Vec<Vec<String>> = wf.stability.iter().map(|s| vec![s.param.clone(), num(s.mean), num(s.std), num(s.variation), num(s.mean_step_of_range)]).collect();
    page.grid("Parameter stability", &["parameter", "mean", "std", "std / mean", "mean change / range"], &stab);
    let labels: Vec<String> = wf.windows.iter().map(|w| w.index.to_string()).collect();
    let series: Vec<(&str, Vec<f64>)> = wf.stability.iter().map(|s| (s.param.as_str(), s.values.iter().map(|v| v.unwrap_or(f64::NAN)).collect())).collect();
    page.chart(line_chart("Chosen parameters by window", labels, series, false));
    page.render()
}

/// A Monte Carlo study's page: the outcome table, the equity fan, histograms
/// of final equity and max drawdown, and the VaR table.
pub fn montecarlo_page(title: &str, source: &str, mc: &crate::montecarlo::McReport, var: &[crate::var::VarEstimate]) -> String {
    use crate::montecarlo::{Bootstrap, Resample};
    let c = &mc.config;
    let mut page = Page::new(title);
    let unit = match mc.resample {
        Resample::Returns => "periods",
        Resample::Trades => "trades",
    };
    let method = match c.bootstrap {
        Bootstrap::Iid => "iid bootstrap".to_owned(),
        Bootstrap::Stationary { mean_block } => format!("stationary block bootstrap, mean block {mean_block} {unit}"),
    };
    page.table(
        "Study",
        &[
            ("Source".into(), source.to_owned()),
            ("Resampled".into(), format!("{} {unit} of the run, {method}", mc.sample)),
            ("Paths".into(), format!("{} of {} {unit} each, seed {}", c.paths, c.horizon, c.seed)),
            ("Ruin / goal".into(), format!("equity at or below {} / at or above {} of the start", pct(c.ruin), num(c.goal))),
            ("Probability of ruin".into(), pct(mc.p_ruin)),
            ("Probability of ending at the goal".into(), pct(mc.p_goal)),
            ("Probability of touching the goal".into(), pct(mc.p_goal_touched)),
            ("Wall time".into(), format!("{:.3} s", mc.wall_secs)),
        ],
    );
    let header = ["outcome", "mean", "p1", "p5", "p25", "median", "p75", "p95", "p99"];
    let row = |name: &str, d: &crate::montecarlo::Distribution, f: fn(f64) -> String| {
        let mut r = vec![name.to_owned(), f(d.mean)];
        r.extend([1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0].map(|p| f(d.at(p))));
        r
    };
    let days = |x: f64| if x.is_finite() { format!("{x:.0}") } else { "-".into() };
    page.grid(
        "Distributions over paths",
        &header,
        &[
            row("final equity (x start)", &mc.final_multiple, num),
            row("CAGR", &mc.cagr, pct),
            row("max drawdown", &mc.max_drawdown, pct),
            row(&format!("longest drawdown ({unit})"), &mc.max_drawdown_draws, days),
        ],
    );
    let x: Vec<String> = mc.fan.at.iter().map(|a| a.to_string()).collect();
    let names = ["p5", "p25", "median", "p75", "p95"];
    let series = mc.fan.bands.iter().zip(names).map(|((_, v), n)| (n, v.clone())).collect();
    page.chart(line_chart(&format!("Equity over the start, percentiles across paths, by {unit} drawn"), x, series, false));
    let finals: Vec<f64> = mc.outcomes.iter().map(|o| o.final_multiple).collect();
    page.chart(histogram("Final equity (x start) over paths", &finals, 60));
    let dd: Vec<f64> = mc.outcomes.iter().map(|o| o.max_drawdown).collect();
    page.chart(histogram("Max drawdown over paths", &dd, 60));
    if !var.is_empty() {
        let rows: Vec<Vec<String>> = var.iter().map(|v| vec![v.method.to_owned(), format!("{:.0}%", v.confidence * 100.0), v.horizon.to_string(), pct(v.var), pct(v.cvar)]).collect();
        page.grid("Value at risk of the run's returns (losses, fractions of equity)", &["method", "confidence", "horizon (periods)", "VaR", "CVaR"], &rows);
        page.note(VAR_NOTE);
    }
    page.render()
}

/// How the VaR table is computed, as the page states it.
pub const VAR_NOTE: &str = "VaR is the loss exceeded with the table's tail probability, CVaR the mean loss beyond it. \
Historical: the empirical quantile of the horizon's (overlapping, compounded) returns. Normal: mean and sample standard deviation, \
square-root-of-time to the horizon. Cornish-Fisher: the normal quantile corrected for skew and excess kurtosis. \
Monte Carlo: the historical estimator on 100,000 horizon returns drawn by the stationary bootstrap (mean block 5).";

/// A stress run's page: the verdicts, then each scenario's equity (from 1 at
/// its start) and what the breakers and stops did.
pub fn stress_page(title: &str, limits: &crate::stress::Limits, outcomes: &[crate::stress::Outcome]) -> String {
    use crate::stress::Verdict;
    let mut page = Page::new(title);
    let limit = match limits.max_loss {
        Some(l) => format!("limits: max drawdown {}, loss {}", pct(limits.max_drawdown), pct(l)),
        None => format!("limits: max drawdown {}", pct(limits.max_drawdown)),
    };
    page.note(&format!("{} of {} scenarios passed; {limit}.", outcomes.iter().filter(|o| o.verdict == Verdict::Passed).count(), outcomes.len()));
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            let r = o.result.as_ref();
            let dash = || "-".to_owned();
            vec![
                o.scenario.name.clone(),
                o.verdict.name().to_owned(),
                r.map_or_else(dash, |r| pct(r.total_return)),
                r.map_or_else(dash, |r| pct(r.max_drawdown)),
                r.map_or_else(dash, |r| r.recovery_days.map_or("not in the window".into(), |d| format!("{d:.1} days"))),
                r.and_then(|r| r.worst_day.as_ref()).map_or_else(dash, |(d, v)| format!("{} on {d}", pct(*v))),
                r.map_or_else(dash, |r| if r.halted { "yes".into() } else if r.reduce_only { "reduce-only".into() } else { "no".into() }),
                r.map_or_else(dash, |r| format!("{} / {}", r.protective_exits.len(), r.stop_exits)),
                r.map_or_else(dash, |r| r.alarms.iter().map(|(l, n)| format!("{n} {l}")).collect::<Vec<_>>().join(", ")),
                o.reasons.join("; "),
            ]
        })
        .collect();
    page.grid("Scenarios", &["scenario", "verdict", "return", "max drawdown", "recovery", "worst day", "halted", "stop levels hit / stop exits", "alarms", "why"], &rows);
    for o in outcomes {
        let Some(r) = &o.result else { continue };
        let x: Vec<String> = r.equity.iter().map(|(t, _)| stratbox_market::format_time(*t)[..16].to_owned()).collect();
        let y: Vec<f64> = r.equity.iter().map(|(_, e)| e / r.start_equity).collect();
        let shocks = if o.shocks.is_empty() { String::new() } else { format!(" with {}", o.shocks.join(", ")) };
        page.chart(line_chart(&format!("{}: equity from 1 at {}{shocks}", o.scenario.name, crate::date(o.scenario.from)), x, vec![("equity", y)], false));
        let states: Vec<Vec<String>> = r.states.iter().map(|c| vec![stratbox_market::format_time(c.time), c.plugin.clone().unwrap_or("account".into()), c.state.clone(), c.cause.clone(), c.reason.clone()]).collect();
        if !states.is_empty() {
            page.grid(&format!("{}: trading states", o.scenario.name), &["time", "of", "state", "cause", "reason"], &states);
        }
        let exits: Vec<Vec<String>> = r.protective_exits.iter().take(50).map(|p| vec![stratbox_market::format_time(p.time), p.plugin.clone(), p.symbol.clone(), format!("{:.4}", p.price)]).collect();
        if !exits.is_empty() {
            let more = r.protective_exits.len().saturating_sub(50);
            let heading = if more > 0 { format!("{}: stop levels hit (first 50 of {})", o.scenario.name, r.protective_exits.len()) } else { format!("{}: stop levels hit", o.scenario.name) };
            page.grid(&heading, &["time", "plugin", "symbol", "price"], &exits);
        }
    }
    page.render()
}
