//! What each subcommand does, between the parsed command line and the process exit code.
//! Output meant for the user goes to a writer whose errors (a closed pipe) are ignored.

use std::io::Write;
use std::process::ExitCode;

use crate::cli::{self, Cli};
use crate::{bench, replay, report, scenario, telemetry, trace};

/// Runs one parsed command line; what it prints for the user goes to `out`.
pub async fn run(cli: Cli, out: &mut dyn Write) -> ExitCode {
    match cli.command {
        cli::Command::Trace(cmd) => match trace_command(cmd, out).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rehearsal-driver: {e}");
                ExitCode::FAILURE
            }
        },
        cli::Command::Scenario(cmd) => match cmd.command {
            Some(cli::ScenarioSubcommand::Convert { dir, name, namespace }) => {
                match convert(&dir, name.as_deref(), &namespace) {
                    Ok(yaml) => {
                        let _ = write!(out, "{yaml}");
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("rehearsal-driver: scenario convert: {e}");
                        ExitCode::from(2)
                    }
                }
            }
            None => play_scenario(&cmd.play, out).await,
        },
        cli::Command::Report(args) => report(&args, out).await,
        cli::Command::Compare(args) => compare(&args, out).await,
        cli::Command::Upload(args) => upload(&args, out).await,
        cli::Command::Download(args) => download(&args, out).await,
        cli::Command::Bench(cli::BenchCommand::Compare { old, new }) => bench_compare(&old, &new, out),
        cli::Command::Replay(args) => {
            telemetry::init(&args.verbosity);
            let client = match crate::client::build(None).await {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("rehearsal-driver: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match replay::run::run(client, &args).await {
                Ok(stats) => {
                    tracing::info!(applied = stats.applied, deleted = stats.deleted, "replay finished");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("rehearsal-driver: replay of simulation {}: {e}", args.sim_name);
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `scenario convert DIR`: the directory as a Scenario manifest.
fn convert(dir: &std::path::Path, name: Option<&str>, namespace: &str) -> Result<String, String> {
    let loaded = scenario::load(dir).map_err(|e| format!("scenario directory {} is invalid:\n{e}", dir.display()))?;
    for warning in &loaded.warnings {
        eprintln!("rehearsal-driver: scenario convert: warning: {warning}");
    }
    let name = name.map_or_else(|| loaded.suggested_name(), str::to_string);
    if !scenario::settings::is_dns_subdomain(&name) {
        return Err(format!(
            "--name {name:?}: a Scenario name is a DNS subdomain (lowercase letters, digits, '-' and '.')"
        ));
    }
    if !scenario::settings::is_dns_label(namespace) {
        return Err(format!(
            "--namespace {namespace:?}: must be a DNS label (lowercase letters, digits and '-', at most 63 characters)"
        ));
    }
    scenario::render_manifest(&loaded.to_scenario_in(&name, namespace)).map_err(|e| e.to_string())
}

/// `scenario [FLAGS]`: one play; exit 0 only if every action and stage succeeded.
async fn play_scenario(args: &cli::ScenarioArgs, out: &mut dyn Write) -> ExitCode {
    let settings = match scenario::settings::resolve(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rehearsal-driver: scenario: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&args.verbosity);
    match scenario::player::play(&settings).await {
        Ok(report) => {
            let s = &report.summary;
            let _ = writeln!(
                out,
                "scenario {}: played {} of {} steps, {} actions ({} failed); step lateness p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
                s.run_id,
                s.steps.played,
                s.steps.planned,
                s.actions.total,
                s.actions.failed,
                s.lateness_ms.p50,
                s.lateness_ms.p99,
                s.lateness_ms.max
            );
            let _ = writeln!(out, "logs: {}", report.log_dir.display());
            // Set only when the upload went through.
            if let Some(uri) = &s.s3_uri {
                let _ = writeln!(out, "uploaded: {uri}");
            }
            if report.succeeded() {
                ExitCode::SUCCESS
            } else {
                for failure in &s.failures {
                    eprintln!("rehearsal-driver: scenario {}: {failure}", s.run_id);
                }
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("rehearsal-driver: scenario: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// `report LOCATION`: summary.json and report.html rebuilt from the folder's JSON lines.
async fn report(args: &cli::ReportArgs, out: &mut dyn Write) -> ExitCode {
    match report::remote::rebuild_at(&args.location, args.s3_region.as_deref()).await {
        Ok((written, at)) => {
            let s = &written.summary;
            let _ = writeln!(out, "wrote summary.json and report.html in {at}");
            let _ = writeln!(out, "verdict: {}", format!("{:?}", s.verdict.status).to_lowercase());
            for reason in &s.verdict.reasons {
                let _ = writeln!(out, "  {reason}");
            }
            if s.inputs.bad_lines_total > 0 {
                let _ = writeln!(out, "{} lines could not be read:", s.inputs.bad_lines_total);
                for b in &s.inputs.bad_lines {
                    let _ = writeln!(out, "  {}:{}: {}", b.file, b.line, b.error);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rehearsal-driver: report: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `upload DIR s3://bucket/prefix/`: a kept run folder, with its manifest, to S3.
async fn upload(args: &cli::UploadArgs, out: &mut dyn Write) -> ExitCode {
    let target = match report::remote::S3Folder::parse(&args.location) {
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            eprintln!("rehearsal-driver: upload: {e}");
            return ExitCode::from(2);
        }
        None => {
            eprintln!("rehearsal-driver: upload: {}: expected s3://bucket/prefix/", args.location);
            return ExitCode::from(2);
        }
    };
    if !args.dir.is_dir() {
        eprintln!("rehearsal-driver: upload: {} is not a run folder", args.dir.display());
        return ExitCode::from(2);
    }
    if let Err(e) = crate::artifacts::manifest::write(&args.dir) {
        eprintln!("rehearsal-driver: upload: {e}");
        return ExitCode::FAILURE;
    }
    let s3 = crate::s3::client(args.s3_region.as_deref()).await;
    match crate::artifacts::upload::upload_dir(&s3, &target.bucket, &target.prefix, &args.dir).await {
        Ok(n) => {
            let _ = writeln!(
                out,
                "uploaded {n} files: {}",
                crate::artifacts::upload::s3_uri(&target.bucket, &target.prefix)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rehearsal-driver: upload: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `download s3://bucket/prefix/ DIR`: a run folder from S3.
async fn download(args: &cli::DownloadArgs, out: &mut dyn Write) -> ExitCode {
    let folder = match report::remote::S3Folder::parse(&args.location) {
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            eprintln!("rehearsal-driver: download: {e}");
            return ExitCode::from(2);
        }
        None => {
            eprintln!("rehearsal-driver: download: {}: expected s3://bucket/prefix/", args.location);
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        eprintln!("rehearsal-driver: download: cannot create {}: {e}", args.dir.display());
        return ExitCode::FAILURE;
    }
    let s3 = crate::s3::client(args.s3_region.as_deref()).await;
    match crate::artifacts::upload::download_dir(&s3, &folder.bucket, &folder.prefix, &args.dir).await {
        Ok(0) => {
            eprintln!("rehearsal-driver: download: nothing under {}", args.location);
            ExitCode::FAILURE
        }
        Ok(n) => {
            let _ = writeln!(out, "downloaded {n} files into {}", args.dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rehearsal-driver: download: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `bench compare OLD NEW`: the table; exit 0 whatever the figures did (a comparison is not a
/// test), 2 when a file cannot be read as results.
fn bench_compare(old: &std::path::Path, new: &std::path::Path, out: &mut dyn Write) -> ExitCode {
    match bench::compare_files(old, new) {
        Ok(text) => {
            let _ = write!(out, "{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rehearsal-driver: bench compare: {e}");
            ExitCode::from(2)
        }
    }
}

/// `compare A B`: one page with both runs.
async fn compare(args: &cli::CompareArgs, out: &mut dyn Write) -> ExitCode {
    let fetched = async {
        let (a, _) = report::remote::local(&args.a, args.s3_region.as_deref()).await?;
        let (b, _) = report::remote::local(&args.b, args.s3_region.as_deref()).await?;
        report::compare::compare(&a.path, &b.path, &args.out, Some((&args.a, &args.b)))
    };
    match fetched.await {
        Ok(c) => {
            let _ = writeln!(out, "wrote {} ({} figures compared)", c.out.display(), c.figures);
            ExitCode::SUCCESS
        }
        Err(e @ report::ReportError::Incompatible { .. }) => {
            eprintln!("rehearsal-driver: compare: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("rehearsal-driver: compare: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `trace check` and `trace synthetic`.
async fn trace_command(cmd: cli::TraceCommand, out: &mut dyn Write) -> Result<(), String> {
    match cmd {
        cli::TraceCommand::Check { location } => {
            let bytes = trace::read(&location).await.map_err(|e| e.to_string())?;
            let size = bytes.len();
            let t = trace::Trace::parse(bytes, &location).map_err(|e| e.to_string())?;
            // Decode every event once more, as a replay would, so the figures cover that too.
            let mut objects = 0;
            for event in t.events() {
                let e = event.map_err(|e| e.to_string())?;
                objects += e.applied.len() + e.deleted.len();
            }
            let span = t.last_ts().zip(t.first_ts()).map(|(l, f)| l - f).unwrap_or(0);
            let _ = writeln!(out, "{location}: trace format version {}, {size} bytes", t.version());
            let _ = writeln!(out, "  {} events, {objects} objects, spanning {span} s", t.event_count());
            for (api_version, kind) in t.kinds() {
                let _ = writeln!(out, "  kind {kind} ({api_version})");
            }
            Ok(())
        }
        cli::TraceCommand::Synthetic { output, objects, span_seconds, megabytes, json } => {
            let written = match megabytes {
                Some(mb) => trace::write_synthetic(&output, mb.saturating_mul(1_000_000))
                    .map_err(|e| format!("{}: {e}", output.display()))?,
                None => {
                    let mut bytes = trace::synthetic(objects, span_seconds, 1_700_000_000);
                    if json {
                        bytes = trace::msgpack_to_json(&bytes)
                            .map_err(|e| format!("{}: re-encoding as JSON: {e}", output.display()))?;
                    }
                    std::fs::write(&output, bytes).map_err(|e| format!("{}: {e}", output.display()))?;
                    objects
                }
            };
            let _ = writeln!(out, "wrote {} ({written} objects)", output.display());
            Ok(())
        }
    }
}
