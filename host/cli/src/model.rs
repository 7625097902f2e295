//! `stratbox model`: what an ONNX file holds and whether the host can run it
//! (stratbox-ml).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Subcommand;

use stratbox_ml::{Model, inspect};

#[derive(Subcommand)]
pub enum ModelCmd {
    /// Inputs, outputs, opsets and operators of an ONNX file, and whether tract can run it (and why not).
    Inspect {
        model: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Load the model as the host does (checksum, shapes, classes) and run its card's reference inputs against the reference outputs.
    Check { model: PathBuf },
}

pub fn model(cmd: ModelCmd) -> Result<()> {
    match cmd {
        ModelCmd::Inspect { model, json } => {
            let i = inspect(&model)?;
            if json {
                return crate::print_json(&i);
            }
            println!("{}: {} bytes, sha256 {}, by {}", model.display(), i.bytes, i.sha256, i.producer);
            let opsets: Vec<String> = i.opsets.iter().map(|(d, v)| format!("{d} {v}")).collect();
            println!("opsets: {}", opsets.join(", "));
            for (what, list) in [("input", &i.inputs), ("output", &i.outputs)] {
                for (name, dims) in list {
                    println!("{what} {name}: [{}]", dims.join(", "));
                }
            }
            let ops: Vec<String> = i.operators.iter().map(|(op, n)| format!("{op} x{n}")).collect();
            println!("operators: {}", ops.join(", "));
            match &i.card {
                Some(c) => println!("card: {} ({} features, classes {}), sha256 {}", c.name, c.features.len(), c.classes.join("/"), if c.sha256 == i.sha256 { "matches" } else { "DOES NOT MATCH" }),
                None => println!("card: none ({} is absent or unreadable)", stratbox_ml::card_path(&model).display()),
            }
            match &i.tract {
                Ok(()) => println!("tract: loads, types and optimises it"),
                Err(why) => println!("tract: cannot run it: {why}"),
            }
            Ok(())
        }
        ModelCmd::Check { model } => {
            let m = Model::load(&model)?;
            let diff = m.check()?;
            let rows = m.card.reference.inputs.len();
            let started = std::time::Instant::now();
            let runs = 200;
            for k in 0..runs {
                m.predict(&m.card.reference.inputs[k % rows])?;
            }
            let per_row = started.elapsed().as_secs_f64() * 1e6 / runs as f64;
            if !diff.is_finite() {
                bail!("{}: the reference comparison gave {diff}", model.display());
            }
            println!(
                "{}: loaded in {:.1} ms; {rows} reference rows agree with {} within {diff:e} (tolerance {:e}); {per_row:.1} us a row",
                m.card.name, m.load_ms, m.card.reference.by, m.card.reference.tolerance
            );
            Ok(())
        }
    }
}
