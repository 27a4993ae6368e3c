//! The command line: clap definitions and the thin wiring from arguments to the library.

use crate::demo::{BundledSuite, DEMO_SUITE, DEMO_TOKEN, DEMO_TOKEN_ENV, DemoServer, Fault};
use crate::engine::{self, EventSink, RunOptions};
use crate::fs::{write_atomic, write_atomic_with};
use crate::integrity;
use crate::redact::Redactor;
use crate::report::progress::{self, Mode};
use crate::report::terminal::{self, Detail};
use crate::report::{Report, junit, markdown};
use crate::suite::{self, Overrides, Plan, Problem, parse_duration};
use crate::verdict::{self, EXIT_INVALID, Reason, judge};
use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "preflight",
    version,
    about = "Staging pre-flight gate: run TOML smoke flows, get one verdict."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gate: flows against staging, then the verdict (exit 0 pass, 1 fail, 2 invalid).
    Run(RunArgs),
    /// Validate the suite without sending anything (exit 0 valid, 2 invalid).
    Check(CheckArgs),
    /// List the flows with their tags, criticality and steps.
    List(ListArgs),
    /// Write preflight.lock from the integrity files' current content.
    Lock(LockArgs),
    /// Run the bundled suite against an embedded demo staging on a free loopback port.
    Demo(DemoArgs),
    /// Print a JSON Schema: `suite` (preflight.toml), `flow` (flow files) or `report` (--json).
    Schema {
        #[arg(value_enum)]
        kind: crate::schema::Kind,
    },
}

#[derive(Debug, Clone, Args)]
pub struct SuiteArgs {
    /// The suite directory.
    #[arg(default_value = "smoke-tests")]
    pub suite: PathBuf,
    /// Overrides base_url (and PREFLIGHT_BASE_URL).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// A template variable, `name=value` (repeatable); wins over [vars].
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub suite: SuiteArgs,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// The suite directory.
    #[arg(default_value = "smoke-tests")]
    pub suite: PathBuf,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(default_value = "smoke-tests")]
    pub suite: PathBuf,
    /// Only flows with this tag (repeatable: any of them).
    #[arg(long)]
    pub tag: Vec<String>,
    /// Only the flow with this name (repeatable).
    #[arg(long)]
    pub flow: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub suite: SuiteArgs,
    /// Flows in flight at once (overrides `concurrency`).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Run flows with any of these tags (repeatable).
    #[arg(long)]
    pub tag: Vec<String>,
    /// Do not run flows with this tag (repeatable).
    #[arg(long)]
    pub skip_tag: Vec<String>,
    /// Run only the flow with this name (repeatable).
    #[arg(long)]
    pub flow: Vec<String>,
    /// Default per-request timeout, e.g. 5s (a step's own `timeout` still wins).
    #[arg(long, value_parser = parse_duration_arg, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Deadline for the whole run, e.g. 2m.
    #[arg(long, value_parser = parse_duration_arg, value_name = "DURATION")]
    pub deadline: Option<Duration>,
    /// Stop starting flows at the first critical failure; running flows stop at their next
    /// step and run their cleanups.
    #[arg(long)]
    pub fail_fast: bool,
    /// Write the JSON report (schema 1) to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the Markdown report to FILE (also appended to $GITHUB_STEP_SUMMARY when set).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Show authorization, cookie, set-cookie and proxy-authorization values instead of ***.
    #[arg(long)]
    pub show_sensitive_headers: bool,
    /// No progress bars, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Print only the last line.
    #[arg(long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print every flow and step, passed ones too.
    #[arg(long)]
    pub verbose: bool,
}

/// `run`'s options; SUITE defaults to `smoke-tests/` here, or the bundled copy of it when the
/// working directory has none.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Switch a fault on in the demo staging (repeatable).
    #[arg(long, value_enum)]
    pub fault: Vec<Fault>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Writes every report asked for (atomically) and appends the Markdown to the GitHub job
/// summary when `GITHUB_STEP_SUMMARY` is set; returns what could not be written.
fn write_reports(args: &RunArgs, report: &Report) -> Vec<String> {
    let mut failures = Vec::new();
    type Render = fn(&Report) -> String;
    let wanted: [(&Option<PathBuf>, &str, Option<Render>); 3] = [
        (&args.json, "JSON", None),
        (&args.junit, "JUnit", Some(junit::render)),
        (&args.markdown, "Markdown", Some(markdown::render)),
    ];
    for (path, kind, render) in wanted {
        let write = |path: &Path| match render {
            Some(render) => write_atomic(path, &render(report)),
            // The JSON report streams to its file: it can be large.
            None => write_atomic_with(path, |out| report.write_json(out)),
        };
        if let Some(path) = path
            && let Err(e) = write(path)
        {
            failures.push(format!(
                "cannot write {kind} report {}: {e}",
                path.display()
            ));
        }
    }
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|s| !s.is_empty()) {
        let appended = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&summary)
            .and_then(|mut file| {
                std::io::Write::write_all(&mut file, markdown::render(report).as_bytes())
            });
        if let Err(e) = appended {
            failures.push(format!(
                "cannot append to GITHUB_STEP_SUMMARY {}: {e}",
                PathBuf::from(summary).display()
            ));
        }
    }
    failures
}

/// SIGINT or SIGTERM cancels the run (verdict aborted, exit 130, reports written); a second
/// one exits at once, still non-zero.
async fn watch_signals(interrupt: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    // Both listeners exist before the first signal, so none can slip between them.
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        eprintln!(
            "warning: cannot listen for SIGINT/SIGTERM; an interrupt will kill preflight without reports"
        );
        return;
    };
    let mut next_signal = async || {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    };
    next_signal().await;
    eprintln!("\ninterrupted: stopping; cleanups get up to 5s (signal again to exit at once)");
    interrupt.cancel();
    next_signal().await;
    eprintln!("interrupted again: exiting now");
    std::process::exit(130);
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(name, _)| !name.is_empty())
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected NAME=VALUE, got `{text}`"))
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    parse_duration(text)
}

/// Parses the arguments and runs the command; the process exit code comes back.
pub fn main(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_INVALID } else { 0 });
        }
    };
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
    if let Command::Demo(_) = &cli.command
        && std::env::var_os(DEMO_TOKEN_ENV).is_none()
    {
        // SAFETY: no other thread exists yet: the runtime is built below.
        unsafe { std::env::set_var(DEMO_TOKEN_ENV, DEMO_TOKEN) };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Check(args) => check(&args.suite),
            Command::List(args) => list(&args),
            Command::Lock(args) => lock(&args),
            Command::Run(args) => run(&args, None).await,
            Command::Demo(args) => demo(&args).await,
            Command::Schema { kind } => {
                println!("{}", crate::schema::render(kind));
                ExitCode::SUCCESS
            }
        }
    });
    // The process exits now: do not wait for idle pooled connections or blocking threads.
    runtime.shutdown_background();
    code
}

/// For commands that send nothing and render no template (`list`, `lock`): neither a base_url
/// nor the env./secret. variables are needed.
fn offline() -> Overrides {
    Overrides {
        offline: true,
        ..Overrides::default()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn overrides(args: &SuiteArgs) -> Overrides {
    let (base_url, origin) = match (&args.base_url, env("PREFLIGHT_BASE_URL")) {
        (Some(url), _) => (Some(url.clone()), "--base-url"),
        (None, Some(url)) if !url.is_empty() => (Some(url), "PREFLIGHT_BASE_URL"),
        _ => (None, ""),
    };
    Overrides {
        base_url,
        base_url_origin: origin,
        vars: args.vars.clone(),
        ..Overrides::default()
    }
}

/// Loads the suite or prints every problem; `None` means exit 2.
fn load(dir: &Path, overrides: Overrides) -> Option<Plan> {
    match suite::load(dir, overrides, &env) {
        Ok(plan) => Some(plan),
        Err(problems) => {
            print_problems(&problems);
            None
        }
    }
}

fn print_problems(problems: &[Problem]) {
    for problem in problems {
        eprintln!("{problem}\n");
    }
    let n = problems.len();
    eprintln!(
        "suite invalid: {n} problem{}, nothing was run",
        if n == 1 { "" } else { "s" }
    );
}

fn nothing_to_run() -> ExitCode {
    eprintln!("nothing to run");
    ExitCode::from(EXIT_INVALID)
}

fn check(args: &SuiteArgs) -> ExitCode {
    let Some(plan) = load(&args.suite, overrides(args)) else {
        return ExitCode::from(EXIT_INVALID);
    };
    if plan.flows.is_empty() {
        return nothing_to_run();
    }
    let results = integrity::verify_local(
        &plan.settings.dir,
        &plan.settings.integrity,
        plan.lock.as_ref(),
    );
    let failed: Vec<_> = results.iter().filter(|r| !r.passed).collect();
    for r in &failed {
        eprintln!("{}", r.message.as_deref().unwrap_or("config mismatch"));
        if let Some(hint) = &r.hint {
            eprintln!("    fix: {hint}");
        }
    }
    if !failed.is_empty() {
        eprintln!(
            "config mismatch in {}: the suite is valid, the config is not",
            verdict::counted(failed.len(), "file")
        );
        return ExitCode::from(1);
    }
    let steps: usize = plan.flows.iter().map(|f| f.steps.len()).sum();
    let count = verdict::counted;
    println!(
        "suite valid: {} ({}, {}, {})",
        plan.settings.name,
        count(plan.flows.len(), "flow"),
        count(steps, "step"),
        count(plan.setup.len(), "setup step")
    );
    ExitCode::SUCCESS
}

fn lock(args: &LockArgs) -> ExitCode {
    // The lock is what this command replaces: a malformed one must not stop it.
    let overrides = Overrides {
        skip_lock: true,
        ..offline()
    };
    let plan = match suite::load(&args.suite, overrides, &|_| None) {
        Ok(plan) => plan,
        Err(problems) => {
            print_problems(&problems);
            return ExitCode::from(EXIT_INVALID);
        }
    };
    if plan.settings.integrity.is_empty() {
        eprintln!("nothing to lock: preflight.toml has no [[integrity]] entry");
        return ExitCode::from(EXIT_INVALID);
    }
    let lock_path = args.suite.join(integrity::LOCK_FILE);
    match integrity::write_lock(&args.suite, &plan.settings.integrity) {
        Ok(integrity::LockOutcome::Written(n)) => {
            println!(
                "wrote {} ({})",
                lock_path.display(),
                verdict::counted(n, "file")
            );
            ExitCode::SUCCESS
        }
        Ok(integrity::LockOutcome::Unchanged(n)) => {
            println!(
                "{} is up to date ({})",
                lock_path.display(),
                verdict::counted(n, "file")
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            ExitCode::from(1)
        }
    }
}

fn list(args: &ListArgs) -> ExitCode {
    let mut plan = match suite::load(&args.suite, offline(), &|_| None) {
        Ok(plan) => plan,
        Err(problems) => {
            print_problems(&problems);
            return ExitCode::from(EXIT_INVALID);
        }
    };
    plan.select(&args.tag, &[], &args.flow);
    if plan.flows.is_empty() {
        return nothing_to_run();
    }
    for flow in &plan.flows {
        let tags = if flow.tags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", flow.tags.join(", "))
        };
        let critical = if flow.critical {
            "critical"
        } else {
            "non-critical"
        };
        println!("{} ({}){tags} {critical}", flow.name, flow.file);
        for (i, step) in flow.steps.iter().enumerate() {
            println!("  {}. {}", i + 1, step.name);
        }
        for step in &flow.cleanup {
            println!("  cleanup: {}", step.name);
        }
    }
    ExitCode::SUCCESS
}

async fn demo(args: &DemoArgs) -> ExitCode {
    // The bundled suite: `smoke-tests/` of the working directory when it has one (the
    // repository, where edits to the suite and its config show), else the binary's own copy.
    let mut run_args = args.run.clone();
    let mut bundled = None;
    if run_args.suite.suite == Path::new(DEMO_SUITE) && !run_args.suite.suite.exists() {
        match BundledSuite::write() {
            Ok(suite) => run_args.suite.suite = bundled.insert(suite).suite(),
            Err(e) => {
                eprintln!("error: cannot write the bundled suite to a temporary directory: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let server = match DemoServer::start(&args.fault).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: cannot start the demo staging: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!("demo staging listening on {}", server.base_url());
    let code = run(&run_args, Some(server.base_url())).await;
    server.shutdown().await;
    drop(bundled);
    code
}

async fn run(args: &RunArgs, base_url: Option<String>) -> ExitCode {
    let mut overrides = overrides(&args.suite);
    if let Some(url) = base_url {
        overrides.base_url = Some(url);
        overrides.base_url_origin = "demo";
    }
    overrides.concurrency = args.concurrency;
    overrides.timeout = args.timeout;
    overrides.deadline = args.deadline;
    let Some(mut plan) = load(&args.suite.suite, overrides) else {
        return ExitCode::from(EXIT_INVALID);
    };
    plan.select(&args.tag, &args.skip_tag, &args.flow);
    if plan.flows.is_empty() {
        return nothing_to_run();
    }
    let plan = Arc::new(plan);
    let redactor = Arc::new(Redactor::new(&plan.secrets));
    let mode = if args.quiet {
        Mode::Silent
    } else if !args.no_progress && std::io::stderr().is_terminal() {
        Mode::Bars
    } else {
        Mode::Lines
    };
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let shown = tokio::spawn(progress::show(receiver, mode));
    let interrupt = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(interrupt.clone()));
    let options = RunOptions {
        show_sensitive_headers: args.show_sensitive_headers,
        events: EventSink::new(sender),
        interrupt,
        fail_fast: args.fail_fast,
    };
    // The engine runs in its own task so that even a panic inside it ends in a failed gate.
    let engine = tokio::spawn(engine::run(plan.clone(), redactor.clone(), options));
    let finished = engine.await;
    signals.abort();
    let result = match finished {
        Ok(result) => result,
        Err(e) => {
            println!("GATE FAILED: internal error: the run did not complete ({e})");
            return ExitCode::from(1);
        }
    };
    let _ = shown.await;
    let mut verdict = judge(&result, &plan.settings.gate);
    let mut report = Report::new(&plan, &result, &verdict, &redactor);
    let failures = write_reports(args, &report);
    if !failures.is_empty() {
        for failure in failures {
            verdict = verdict.add_reason(Reason::ReportNotWritten(failure));
        }
        report = Report::new(&plan, &result, &verdict, &redactor);
    }
    let detail = if args.quiet {
        Detail::Quiet
    } else if args.verbose {
        Detail::Verbose
    } else {
        Detail::Normal
    };
    print!("{}", terminal::summary(&report, detail));
    // The process is about to exit: freeing a large run piece by piece is wasted time.
    std::mem::forget((report, result, plan));
    verdict.exit_code()
}
