//! `kubecur sample`: write the synthetic CUR.

use crate::args::SampleArgs;
use crate::CliError;
use indicatif::{ProgressBar, ProgressStyle};
use kubecur_shared::sample::{write_sample, SampleOutput, SampleSpec};
use std::time::Instant;

pub fn run(args: SampleArgs) -> Result<(), CliError> {
    if args.rows == 0 {
        return Err(CliError::Usage("--rows must be at least 1".into()));
    }
    if args.rows_per_file == 0 {
        return Err(CliError::Usage("--rows-per-file must be at least 1".into()));
    }
    if !(1..=kubecur_shared::sample::DAYS).contains(&args.days) {
        return Err(CliError::Usage(format!(
            "--days {} is outside 1..={} (the sample covers May and June 2024)",
            args.days,
            kubecur_shared::sample::DAYS
        )));
    }
    if args.pods > 100_000_000 {
        return Err(CliError::Usage(format!(
            "--pods {} is more than 100,000,000",
            args.pods
        )));
    }
    let mut spec = SampleSpec::new(args.rows);
    spec.rows_per_file = args.rows_per_file;
    spec.pods = args.pods;
    spec.days = args.days;
    if let Some(only) = &args.only {
        spec.outputs = only
            .split(',')
            .map(SampleOutput::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(CliError::Usage)?;
    }
    let bar = ProgressBar::new(args.rows);
    bar.set_style(
        ProgressStyle::with_template("writing sample [{bar:30}] {pos}/{len} line items, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let started = Instant::now();
    let report = write_sample(&args.out, &spec, |done| bar.set_position(done));
    bar.finish_and_clear();
    let report = report.map_err(|e| CliError::Failed(e.to_string()))?;
    let data_files = report.files.iter().filter(|f| {
        let name = f.to_string_lossy();
        name.ends_with(".parquet") && !name.contains("cost_and_usage_data_status")
            || name.ends_with(".csv")
            || name.ends_with(".csv.gz")
    });
    println!(
        "Wrote {} line items in each of {} outputs ({} data files, {:.1} MiB) to {} in {:.1} s.",
        report.rows,
        spec.outputs.len(),
        data_files.count(),
        report.bytes as f64 / (1024.0 * 1024.0),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    if let Some(first) = spec.outputs.first() {
        println!(
            "Next: kubecur allocate --cur {} --period 2024-06",
            args.out.join(first.dir_name()).display()
        );
    }
    Ok(())
}
