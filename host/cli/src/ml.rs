//! `stratbox ml`: the ML strategies' data (`ml dataset`: the features the
//! plugin computes, from `stratbox-features`, with labels).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use stratbox_research::dataset;

use crate::research::DataArgs;

#[derive(Subcommand)]
pub enum MlCmd {
    /// Write features and labels of stored bars to CSV, for training (the same code as the plugin's features).
    Dataset(DatasetArgs),
}

#[derive(Args)]
pub struct DatasetArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Label: whether the close this many bars later is higher.
    #[arg(long, default_value_t = 1)]
    horizon: usize,
    /// The CSV file to write.
    #[arg(long)]
    out: PathBuf,
}

pub fn ml(cmd: MlCmd, data_dir: &Path) -> Result<()> {
    match cmd {
        MlCmd::Dataset(a) => {
            if a.horizon == 0 {
                bail!("--horizon 0: the label must look at least one bar ahead");
            }
            let (data, window) = a.data.load(data_dir)?;
            let rows = dataset::build(&data, window, a.horizon);
            if rows.is_empty() {
                bail!("no rows: each instrument needs {} bars before its first row, and the selection holds {} bars", stratbox_features::WINDOW, data.bars());
            }
            dataset::write_csv(&a.out, &rows).with_context(|| format!("writing {}", a.out.display()))?;
            let labelled = rows.iter().filter(|r| r.label.is_some()).count();
            let up = rows.iter().filter(|r| r.label.is_some_and(|l| l.0 == 1)).count();
            let symbols: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.symbol.as_str()).collect();
            println!(
                "{}: {} rows of {} features ({} symbols, {} to {}), {labelled} labelled {} bars ahead ({:.1}% up)",
                a.out.display(),
                rows.len(),
                stratbox_features::COUNT,
                symbols.len(),
                stratbox_research::date(rows[0].time),
                stratbox_research::date(rows[rows.len() - 1].time),
                a.horizon,
                100.0 * up as f64 / labelled.max(1) as f64
            );
            Ok(())
        }
    }
}
