//! The command line: clap definitions and the thin wiring from arguments to the library.

/// `println!` for what a command prints on standard output, without its panic when the
/// reader has gone (`preflight list | head -1`): the rest is dropped and the exit code stays the
/// command's. Any other write error is said on stderr and makes the exit code 1 ([`main`]).
macro_rules! out {
    ($($arg:tt)*) => {
        print_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

use crate::demo::{BundledSuite, DEMO_SUITE, DEMO_TOKEN, DEMO_TOKEN_ENV, DemoServer, Fault};
use crate::engine::Stop;
use crate::engine::{self, EventSink, RunOptions};
use crate::fs::write::Prepared;
use crate::integrity;
use crate::redact::{Mask, Redactor};
use crate::report::document::ListedFlow;
use crate::report::progress::{self, Mode};
use crate::report::stream::{FULL_LISTING, ReportStream, Spool};
use crate::report::terminal::{self, Detail, clean};
use crate::report::{AllFlows, Report, html, json, junit, markdown};
use crate::report::{GateRecord, ShardRecord};
use crate::say::{err, say};
use crate::shard::{self, ShardArg};
use crate::suite::{self, Overrides, Plan, Problem, parse_duration};
use crate::verdict::{self, EXIT_INVALID, Reason, Verdict, judge};
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Write};
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
    /// Run the gate: flows against staging, then the verdict (exit 0 pass, 1 fail, 2 invalid,
    /// 130 interrupted).
    Run(RunArgs),
    /// Validate the suite without sending anything (exit 0 valid, 1 config mismatch, 2 invalid).
    Check(CheckArgs),
    /// List the flows with their tags, criticality and steps.
    List(ListArgs),
    /// Write a minimal, commented starter suite into DIR (never overwrites a file).
    Init(InitArgs),
    /// Write preflight.lock from the integrity files' current content.
    Lock(LockArgs),
    /// Join the JSON reports of `run --shard K/N` into one run and one verdict (exit codes as
    /// `run`).
    Merge(MergeArgs),
    /// Render a saved JSON report again: --html, --markdown, --junit, --json (exit 0 written,
    /// 1 an output could not be written, 2 an unreadable report or no output asked for).
    Report(ReportArgs),
    /// Run the bundled suite against an embedded demo staging on a free loopback port.
    Demo(DemoArgs),
    /// Serve the gate over HTTP: `POST /run` for delivery controllers (Flagger, Argo
    /// Rollouts), scheduled runs with `--every`, reports under `/runs`, Prometheus `/metrics`.
    Serve(ServeArgs),
    /// Print the shell completion script for SHELL (bash, zsh, fish, powershell, elvish).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of preflight, or of one command: `preflight man run`.
    Man {
        /// A command (`run`, `serve`...); without it, the page of preflight itself.
        command: Option<String>,
    },
    /// Print a JSON Schema: `suite` (preflight.toml), `flow` (flow files), `report` (--json)
    /// or `list` (list --json).
    Schema {
        #[arg(value_enum)]
        kind: crate::schema::Kind,
    },
}

#[derive(Debug, Clone, Args)]
pub struct SuiteArgs {
    /// The suite directory, or one flow file of a suite (run with the settings of the nearest
    /// preflight.toml above it).
    #[arg(default_value = "smoke-tests")]
    pub suite: PathBuf,
    /// Overrides base_url (and PREFLIGHT_BASE_URL).
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// A template variable, `name=value` (repeatable); wins over [vars] and --vars-file.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// A TOML file of template variables (repeatable; later files win). Its values win over
    /// [vars] of the suite and the flows; --var wins over it.
    #[arg(long = "vars-file", value_name = "FILE")]
    pub vars_files: Vec<PathBuf>,
}

/// Which flows of the suite a command works on. Every value must match a flow of the suite.
#[derive(Debug, Clone, Args)]
pub struct Selection {
    /// Only flows with any of these tags (repeatable).
    #[arg(long, value_name = "TAG")]
    pub tag: Vec<String>,
    /// Leave out flows with this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    pub skip_tag: Vec<String>,
    /// Only the flow with this name (repeatable).
    #[arg(long, value_name = "NAME")]
    pub flow: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub suite: SuiteArgs,
    #[command(flatten)]
    pub select: Selection,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// The suite directory.
    #[arg(default_value = "smoke-tests")]
    pub suite: PathBuf,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The suite directory, or one flow file of a suite.
    #[arg(default_value = "smoke-tests")]
    pub suite: PathBuf,
    #[command(flatten)]
    pub select: Selection,
    /// Print the flows as a JSON array (name, file, tags, critical, steps, cleanups).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The folder to write the suite into (created if needed).
    #[arg(default_value = "smoke-tests")]
    pub dir: PathBuf,
    /// Draft the suite from an OpenAPI 3.0 or 3.1 document (JSON or YAML): one flow per tag,
    /// one step per GET operation it can send, each checking the documented status and schema.
    #[arg(long, value_name = "FILE")]
    pub from_openapi: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub suite: SuiteArgs,
    #[command(flatten)]
    pub tuning: Tuning,
    #[command(flatten)]
    pub select: Selection,
    /// Stop starting flows at the first critical failure; running flows stop at their next
    /// step and run their cleanups.
    #[arg(long)]
    pub fail_fast: bool,
    #[command(flatten)]
    pub out: Destinations,
    /// Show authorization, cookie, set-cookie and proxy-authorization values instead of ***.
    #[arg(long)]
    pub show_sensitive_headers: bool,
    /// No progress bars, even on a terminal.
    #[arg(long)]
    pub no_progress: bool,
    /// Print only the last line.
    #[arg(long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print every flow and step, passed ones too; twice (-vv): also each step's request and
    /// response (headers, body excerpts), masked like every other output.
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Run the K-th of N parts of the selected flows (split by flow name, balanced by count);
    /// `auto` reads the CI's parallel-job variables. Join the JSON reports with `merge`.
    #[arg(long, value_name = "K/N|auto", value_parser = parse_shard)]
    pub shard: Option<ShardArg>,
    /// A JSON report of an earlier run (typically the last that passed): each step's latency
    /// is compared with it; regressions warn, or fail with `[gate] fail_on_latency_regression`.
    #[arg(long, value_name = "PREVIOUS.json")]
    pub baseline: Option<PathBuf>,
    /// Compare with a baseline of another suite digest too (steps are matched by flow and
    /// step name).
    #[arg(long, requires = "baseline")]
    pub baseline_any: bool,
    /// N for `--shard auto` in a Kubernetes Indexed Job (K comes from JOB_COMPLETION_INDEX).
    #[arg(long, value_name = "N", requires = "shard", value_parser = clap::value_parser!(u32).range(1..))]
    pub shard_count: Option<u32>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The JSON reports of every shard of one run.
    #[arg(required = true, value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,
    #[command(flatten)]
    pub out: Destinations,
    /// Print only the last line.
    #[arg(long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print every flow and step, passed ones too.
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A JSON report (schema 1) written by `run`, `merge` or `serve`.
    #[arg(value_name = "REPORT.json")]
    pub report: PathBuf,
    #[command(flatten)]
    pub out: Destinations,
}

/// Where the reports go.
#[derive(Debug, Clone, Args)]
pub struct Destinations {
    /// Write the JSON report (schema 1) to FILE (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the JUnit XML report to FILE (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the Markdown report to FILE (`-`: standard output); `run` and `merge` also
    /// append it to $GITHUB_STEP_SUMMARY when set.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write the HTML report (one self-contained page: verdict, waterfall, latency, failures)
    /// to FILE (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
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

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub suite: SuiteArgs,
    #[command(flatten)]
    pub select: Selection,
    #[command(flatten)]
    pub tuning: Tuning,
    /// Stop starting flows at a run's first critical failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// The address to listen on (a token is required off loopback: PREFLIGHT_SERVE_TOKEN).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
    pub listen: std::net::SocketAddr,
    /// Run the suite on a schedule too, e.g. 5m (each wait gets up to 10% random jitter).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub every: Option<Duration>,
    /// A variable `POST /run` may set in its body's `vars` (repeatable); it must be one the
    /// suite declares.
    #[arg(long = "allow-var", value_name = "NAME")]
    pub allow_vars: Vec<String>,
    /// How long a request waits for the run in progress before `429`.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", default_value = "30s")]
    pub queue_timeout: Duration,
    /// How long the last finished run answers a request with the same idempotency key
    /// (Idempotency-Key header or Flagger checksum) instead of a new run; 0s: never.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", default_value = "5m")]
    pub replay_for: Duration,
    /// How many reports to keep.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
    /// Keep the reports in this folder too (read back at start-up); without it they are kept
    /// in memory only.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// `/metrics` needs no token.
    #[arg(long)]
    pub public_metrics: bool,
    /// On SIGTERM, how long a run in progress may go on before it is aborted.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", default_value = "30s")]
    pub shutdown_grace: Duration,
}

/// What a run may be tuned with on the command line, over the suite's settings.
#[derive(Debug, Clone, Args)]
pub struct Tuning {
    /// Flows in flight at once (overrides `concurrency`).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Default per-request timeout, e.g. 5s (a step's own `timeout` still wins).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Deadline for the whole run, e.g. 2m.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub deadline: Option<Duration>,
    /// Every flow stays compiled unless PREFLIGHT_KEEP_COMPILED says otherwise (`serve`: its
    /// plan serves many runs, and the suite files may change between them).
    #[arg(skip)]
    pub keep_all_compiled: bool,
}

/// One kind of report: what it renders, and the name its write failures go by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReportKind {
    Json,
    Junit,
    Markdown,
    Html,
    /// The Markdown report appended to `$GITHUB_STEP_SUMMARY`.
    StepSummary,
}

impl ReportKind {
    fn name(self) -> &'static str {
        match self {
            ReportKind::Json => "JSON",
            ReportKind::Junit => "JUnit",
            ReportKind::Markdown => "Markdown",
            ReportKind::Html => "HTML",
            ReportKind::StepSummary => "step summary",
        }
    }

    /// Renders `report`, whose reports that list every flow take them from `flows`.
    fn render(self, report: &Report, flows: AllFlows, out: &mut dyn Write) -> std::io::Result<()> {
        match self {
            // The JSON and JUnit reports stream to their files: they can be large.
            ReportKind::Json => flows.write_json(report, out),
            ReportKind::Junit => junit::write(report, flows, out),
            ReportKind::Html => out.write_all(html::render(report).as_bytes()),
            ReportKind::Markdown | ReportKind::StepSummary => {
                out.write_all(markdown::render(report).as_bytes())
            }
        }
    }
}

/// `cannot write JSON report <path>: <cause>`.
fn not_written(kind: ReportKind, path: &Path, error: &std::io::Error) -> Reason {
    Reason::ReportNotWritten(format!(
        "cannot write {} report {}: {error}",
        kind.name(),
        path.display()
    ))
}

/// A report asked for, and its destination, opened.
struct Output {
    kind: ReportKind,
    path: PathBuf,
    dest: Prepared,
    /// The JSON report whose temporary file got the flows while the run went on: only its
    /// tail is written now.
    grown: bool,
}

/// What opens a step summary appended again after the verdict changed.
const REPLACES_SUMMARY: &[u8] =
    b"\n> The verdict changed after the summary above was written: this one replaces it.\n";

impl Output {
    /// Writes the step summary again, after one that no longer holds.
    fn stage_again(&mut self, report: &Report, flows: AllFlows) -> std::io::Result<()> {
        self.dest.stage(|out| {
            out.write_all(REPLACES_SUMMARY)?;
            self.kind.render(report, flows, out)
        })
    }

    /// Writes the report into the destination (its temporary file, or through).
    fn stage(&mut self, report: &Report, flows: AllFlows) -> std::io::Result<()> {
        match flows {
            AllFlows::Spooled(spool) if self.grown => self.dest.stage_after(spool.end(), |out| {
                spool.check()?;
                json::write_tail(report, spool.flows() > 0, &mut &mut *out)
            }),
            _ => self.dest.stage(|out| self.kind.render(report, flows, out)),
        }
    }
}

/// What `run` writes while the run goes on: the JSON report's temporary file (when it is a
/// regular file) gets each flow as it finishes, and the reports rendered at the end get a
/// bounded digest of the flows.
struct Streaming {
    stream: Arc<std::sync::Mutex<ReportStream>>,
    /// The JSON report, opened before the run, holding the flows so far.
    json: Option<Prepared>,
}

impl Streaming {
    /// `keep_all`: every flow is kept whole anyway (see [`ReportStream`]).
    fn start(out: &Destinations, plan: &Plan, redactor: Arc<Redactor>, keep_all: bool) -> Self {
        let mut json = out
            .json
            .as_deref()
            .and_then(|path| Prepared::early(path).ok().flatten());
        let grown = json.as_mut().and_then(|dest| {
            let file = dest.staged_file()?.try_clone().ok()?;
            let mut head = Vec::new();
            json::write_head(&json::Head::current(&plan.settings.name), &mut head).ok()?;
            std::os::unix::fs::FileExt::write_all_at(&file, &head, 0).ok()?;
            Some(Spool::at(file, head.len() as u64))
        });
        // Without a JSON report growing in place, JSON or JUnit take the flows from a hidden
        // file; should none be possible, every flow is kept in memory as before.
        let wanted = out.json.is_some() || out.junit.is_some();
        // The early destination is kept only if the flows really grow in it: handed on
        // otherwise, its temporary file would be taken as holding them.
        let grew = grown.is_some();
        let spool = match grown {
            Some(spool) => Some(spool),
            None if wanted => Spool::hidden().ok(),
            None => None,
        };
        let keep_all = keep_all || (wanted && spool.is_none());
        let json = json.filter(|_| grew);
        let stream = ReportStream::new(redactor, spool, keep_all);
        Streaming {
            stream: Arc::new(std::sync::Mutex::new(stream)),
            json,
        }
    }

    fn sink(&self) -> engine::SinkHandle {
        engine::SinkHandle::new(self.stream.clone())
    }

    /// Ends the stream: the spool with every flow, if one was written.
    fn finish(&self) -> Option<Spool> {
        self.stream
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .finish()
    }
}

/// Writes every report so that each one carries the verdict of the exit code. Every
/// destination is opened first, and one that cannot be fails the verdict before anything is
/// rendered. Then the temporary files are written, then what cannot be taken back (standard
/// output, devices, FIFOs, the step summary), and the renames come last: a failure on the way
/// fails the verdict and re-renders whatever can still change. Returns the final verdict and
/// the report rendered with it.
fn write_reports(
    args: &Destinations,
    verdict: Verdict,
    build: &dyn Fn(&Verdict) -> Report,
    flows: AllFlows,
    early_json: Option<Prepared>,
) -> (Verdict, Report) {
    let (outputs, mut verdict) = open_outputs(args, verdict, early_json);
    let (mut reversible, through): (Vec<Output>, Vec<Output>) =
        outputs.into_iter().partition(|o| o.dest.is_reversible());
    let mut report = build(&verdict);
    stage_all(&mut reversible, &mut verdict, &mut report, build, flows);
    // Files are renamed into place first: they can still be written again. What is written
    // through (standard output, a FIFO, the step summary) cannot be taken back, so it goes
    // last, with the verdict the files already hold.
    let (mut verdict, mut report, committed) =
        commit_all(reversible, verdict, report, build, flows);
    let mut through = through;
    through.sort_by_key(|o| o.dest.write_through_rank());
    let mut appended: Vec<Output> = Vec::new();
    for mut output in through {
        match output.stage(&report, flows) {
            Ok(()) if output.kind == ReportKind::StepSummary => appended.push(output),
            Ok(()) => {}
            Err(e) => {
                verdict = verdict.add_reason(not_written(output.kind, &output.path, &e));
                report = rewrite(&committed, &mut verdict, build, flows);
                // The step summary appended before says the verdict it had then, and cannot
                // be taken back (another process may have appended after it): the summary is
                // appended again, saying that it replaces the one above.
                for summary in &mut appended {
                    if let Err(e) = summary.stage_again(&report, flows) {
                        verdict = verdict.add_reason(not_written(summary.kind, &summary.path, &e));
                        // Nothing follows the summary that no longer holds (a full disk):
                        // it is cut back, unless another process appended after it.
                        crate::fs::write::take_back_appends();
                    }
                }
            }
        }
    }
    (verdict, report)
}

/// Opens every destination asked for, the step summary last; each one that cannot be opened
/// is a reason of the verdict.
fn open_outputs(
    args: &Destinations,
    mut verdict: Verdict,
    mut early_json: Option<Prepared>,
) -> (Vec<Output>, Verdict) {
    let summary = step_summary();
    let wanted = [
        (ReportKind::Json, args.json.clone()),
        (ReportKind::Junit, args.junit.clone()),
        (ReportKind::Markdown, args.markdown.clone()),
        (ReportKind::Html, args.html.clone()),
        (ReportKind::StepSummary, summary),
    ];
    let mut outputs = Vec::new();
    for (kind, path) in wanted {
        let Some(path) = path else { continue };
        let grown = kind == ReportKind::Json && early_json.is_some();
        let opened = match kind {
            ReportKind::Json if grown => Ok(early_json.take().expect("checked just above")),
            ReportKind::StepSummary => Prepared::append(&path),
            _ => Prepared::report(&path),
        };
        match opened {
            Ok(dest) => outputs.push(Output {
                kind,
                path,
                dest,
                grown,
            }),
            Err(e) => verdict = verdict.add_reason(not_written(kind, &path, &e)),
        }
    }
    (outputs, verdict)
}

/// Writes every temporary file with the current report. One that fails is dropped and fails
/// the verdict, and the others are written again with that verdict.
fn stage_all(
    outputs: &mut Vec<Output>,
    verdict: &mut Verdict,
    report: &mut Report,
    build: &dyn Fn(&Verdict) -> Report,
    flows: AllFlows,
) {
    loop {
        let mut failures = Vec::new();
        outputs.retain_mut(|o| match o.stage(report, flows) {
            Ok(()) => true,
            Err(e) => {
                failures.push(not_written(o.kind, &o.path, &e));
                false
            }
        });
        if failures.is_empty() {
            return;
        }
        for failure in failures {
            *verdict = std::mem::replace(verdict, Verdict::Passed).add_reason(failure);
        }
        *report = build(verdict);
    }
}

/// Renames every temporary file over its target. A rename that fails (the folder changed
/// meanwhile, a target that cannot be replaced) fails the verdict, and the reports already in
/// place are written again. Returns the reports in place.
fn commit_all(
    outputs: Vec<Output>,
    mut verdict: Verdict,
    report: Report,
    build: &dyn Fn(&Verdict) -> Report,
    flows: AllFlows,
) -> (Verdict, Report, Vec<(ReportKind, PathBuf)>) {
    let mut done = Vec::new();
    let failed_before = verdict.reasons().len();
    for output in outputs {
        let (kind, path) = (output.kind, output.path);
        match output.dest.commit() {
            Ok(()) => done.push((kind, path)),
            Err(e) => verdict = verdict.add_reason(not_written(kind, &path, &e)),
        }
    }
    if verdict.reasons().len() == failed_before {
        return (verdict, report, done);
    }
    let report = rewrite(&done, &mut verdict, build, flows);
    (verdict, report, done)
}

/// Writes the reports already in place again with `verdict` (and whatever goes wrong doing
/// so): a later failure must not leave one of them saying otherwise.
fn rewrite(
    done: &[(ReportKind, PathBuf)],
    verdict: &mut Verdict,
    build: &dyn Fn(&Verdict) -> Report,
    flows: AllFlows,
) -> Report {
    let report = build(verdict);
    let mut failures = Vec::new();
    for (kind, path) in done {
        // The flows come from the spool, which is still open even where its file was
        // replaced.
        let rewritten = Prepared::report(path).and_then(|mut dest| {
            dest.stage(|out| kind.render(&report, flows, out))?;
            dest.commit()
        });
        if let Err(e) = rewritten {
            failures.push(not_written(*kind, path, &e));
        }
    }
    if failures.is_empty() {
        return report;
    }
    for failure in failures {
        *verdict = std::mem::replace(verdict, Verdict::Passed).add_reason(failure);
    }
    build(verdict)
}

/// Listens for the signals that stop a run (see [`watch_signals`]): from now on they no longer
/// end the process as the system does.
fn listen_for_signals() -> Option<Vec<tokio::signal::unix::Signal>> {
    // All the listeners exist before the first signal, so none can slip between them.
    note_signals(&STOPPING);
    let listeners = STOPPING
        .into_iter()
        .map(tokio::signal::unix::signal)
        .collect::<Result<Vec<_>, _>>();
    if listeners.is_err() {
        say("warning: cannot listen for signals; an interrupt will kill preflight without reports");
    }
    listeners.ok()
}

/// Every signal whose default is to end the process (but SIGKILL and SIGSTOP, which cannot be
/// caught, and SIGPIPE, which Rust ignores) stops a run like SIGINT: otherwise a SIGHUP from a
/// closed terminal would leave the report's temporary file behind.
const STOPPING: [tokio::signal::unix::SignalKind; 7] = {
    use tokio::signal::unix::SignalKind;
    [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
        SignalKind::quit(),
        SignalKind::user_defined1(),
        SignalKind::user_defined2(),
        SignalKind::alarm(),
    ]
};

/// Gives the signals that stop a run ([`STOPPING`]) their default action and unblocks them,
/// should the parent have ignored or blocked them (both are inherited: `nohup`, `cmd &` in a
/// script): ignored or blocked, one that came before the run listens for it was lost, and the
/// gate went on to exit 0 (attack findings). One already pending is delivered now and ends the
/// process as the system does; from the run on, each is handled (docs/cli.md, Signals). For
/// `main`, before any other thread exists.
pub fn reset_stopping_signals() {
    // SAFETY: dispositions and a signal set set with libc's own calls, on memory owned here.
    unsafe {
        for kind in STOPPING {
            libc::signal(kind.as_raw_value(), libc::SIG_DFL);
        }
        let set = stopping_set();
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Blocks the signals that stop a run ([`STOPPING`]) in the calling thread. Every thread but
/// the main one does so as it starts (the runtime's, and the few of its own), so that such a
/// signal runs its handler on the main thread or stays pending: [`exit`] blocks them too and
/// then finds a signal in one or the other. Taken by another thread, a signal whose handler
/// had not run yet when the main thread decided to exit was followed by exit 0 (CI finding,
/// on a busy machine).
pub fn block_stopping_signals() {
    // SAFETY: a signal set built and applied with libc's own calls, on memory owned here.
    unsafe {
        let set = stopping_set();
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// The signals of [`STOPPING`] as a set.
fn stopping_set() -> libc::sigset_t {
    // SAFETY: a signal set initialised by `sigemptyset` before any other use.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        for kind in STOPPING {
            libc::sigaddset(&mut set, kind.as_raw_value());
        }
        set
    }
}

/// Whether a signal of [`STOPPING`] waits to be delivered (blocked in every thread).
fn stopping_signal_pending() -> bool {
    // SAFETY: a signal set filled by `sigpending` and read with `sigismember`.
    unsafe {
        let mut pending = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut pending);
        libc::sigpending(&mut pending);
        STOPPING
            .iter()
            .any(|kind| libc::sigismember(&pending, kind.as_raw_value()) == 1)
    }
}

/// What a signal that ends the process at once while reports are written says.
const ENDED_WHILE_WRITING: &str =
    "\ninterrupted while writing reports: exiting now, no report kept";

/// For the commands that write reports without a run (`merge`, `report`): a signal ends the
/// process at once, 130, with the reports already in place and their temporary files removed,
/// as a signal while `run` writes its reports does (attack finding: `merge` died by the signal
/// and left a report saying PASS). Watched by a thread of its own: these commands have no
/// async runtime.
fn end_at_once_on_signals() {
    note_signals(&STOPPING);
    let _ = std::thread::Builder::new().spawn(|| {
        loop {
            if SIGNALLED.load(std::sync::atomic::Ordering::SeqCst) {
                end_interrupted(ENDED_WHILE_WRITING);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
}

/// SIGINT or SIGTERM (or another of [`STOPPING`]) cancels the run (verdict aborted,
/// exit 130, reports written); a second one, or one that comes after the run is over (while
/// reports are written), exits at once, still non-zero.
async fn watch_signals(
    listeners: Option<Vec<tokio::signal::unix::Signal>>,
    interrupt: CancellationToken,
    run_over: CancellationToken,
) {
    let Some(mut listeners) = listeners else {
        return;
    };
    let mut next_signal = async || {
        std::future::poll_fn(|cx| {
            let any = listeners.iter_mut().any(|l| l.poll_recv(cx).is_ready());
            if any {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await
    };
    next_signal().await;
    if run_over.is_cancelled() {
        end_interrupted(ENDED_WHILE_WRITING);
    }
    // Stopped before it is said: a standard error that cannot be written must not keep the
    // signal from stopping the run.
    interrupt.cancel();
    // Said aside: a standard error nobody reads must not keep this task from the second
    // signal (attack finding: blocked here, a second signal did nothing and the run hung).
    let _ = std::thread::Builder::new().spawn(|| {
        say("\ninterrupted: stopping; cleanups get up to 5s (signal again to exit at once)")
    });
    next_signal().await;
    end_interrupted("interrupted again: exiting now");
}

/// Set in the signal handler itself when a signal of [`listen_for_signals`] comes. The task that
/// acts on a signal may run only after the reports were written (a busy machine): [`exit`]
/// reads this flag, so that a signal that came before the process ends is never followed by
/// exit 0.
static SIGNALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The handler a signal of [`note_signals`] has before `signal_hook_registry`'s own. The
/// registry puts its handler in place before it stores the signal's actions, and a signal in
/// between runs only the handler it replaced, which it does nothing for when that is the
/// default one (attack finding: a SIGTERM there was lost, and `merge` went on to exit 0 with
/// its reports). Replaced by the registry's, this one is what runs then, and it runs before
/// the registry's actions from then on.
extern "C" fn noted(_: libc::c_int) {
    SIGNALLED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// From the moment this returns, each signal of `kinds` sets [`SIGNALLED`], whether tokio
/// listens for it (through `signal_hook_registry`) before this call, after it, or never. It
/// takes both [`noted`] and an action in the registry, as neither covers every order:
/// - The registry keeps the handler it replaces when it puts its own in place, and runs it
///   before its actions (while it puts its own in place too): `noted`, in place first, keeps
///   running once tokio listens, and covers the moment the registry's handler goes in.
/// - When the registry's handler is there before this call (tokio listened first), `noted`
///   cannot go in (it would cut tokio off the signal), and the handler the registry kept is
///   the default one, which it does not run: the registry's action is then the only thing
///   that sets the flag. No command takes that order today (`run` calls this just before it
///   listens, `merge` and `report` never listen, `serve` never calls this), but nothing else
///   keeps a change from taking it, and a signal lost there is an exit 0.
fn note_signals(kinds: &[tokio::signal::unix::SignalKind]) {
    for kind in kinds {
        // SAFETY: a disposition read and set with libc's own calls, on memory owned here;
        // `noted` only stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut current = std::mem::zeroed::<libc::sigaction>();
            libc::sigaction(kind.as_raw_value(), std::ptr::null(), &mut current);
            // Only over the default (or ignored) disposition: a handler already there is the
            // registry's (tokio's or an earlier call's), which must stay.
            if current.sa_sigaction == libc::SIG_DFL || current.sa_sigaction == libc::SIG_IGN {
                let mut action = std::mem::zeroed::<libc::sigaction>();
                action.sa_sigaction = noted as extern "C" fn(libc::c_int) as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(kind.as_raw_value(), &action, std::ptr::null_mut());
            }
        }
        // Redundant when `noted` went in above, and needed when it did not (see above).
        // SAFETY: the action only stores to an atomic, which is async-signal-safe.
        let _ = unsafe {
            signal_hook_registry::register(kind.as_raw_value(), || {
                SIGNALLED.store(true, std::sync::atomic::Ordering::SeqCst)
            })
        };
    }
}

/// Held by whatever ends the process: [`exit`] with the verdict's code, or a signal with 130
/// once it removed the reports. Each ends the process holding it, so the other never goes on:
/// no exit 0 can follow a signal that removed the reports.
static ENDING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// What a signal that ends the run while its reports are written appends to a step summary
/// already appended.
const INTERRUPTED_SUMMARY: &str = "\n## ⛔ preflight: interrupted\n\nThe run was stopped while its reports were written (exit 130): no report was kept, and the summary above does not hold.\n";

/// The temporary directory `demo` wrote its bundled suite to, which an exit at once removes
/// too (its `Drop` does not run then).
static DEMO_SUITE_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Ends the process with 130 at once, removing the reports already in place and their
/// temporary files, and following the step summary with [`INTERRUPTED_SUMMARY`]
/// ([`crate::fs::write::abandon`]): a signal while they are written leaves none to say PASS.
fn end_interrupted(message: &str) -> ! {
    let _ending = ENDING.lock().unwrap_or_else(|e| e.into_inner());
    interrupted(message)
}

/// [`end_interrupted`] once [`ENDING`] is held.
fn interrupted(message: &str) -> ! {
    crate::fs::write::abandon(INTERRUPTED_SUMMARY);
    if let Some(folder) = DEMO_SUITE_DIR.get() {
        let _ = std::fs::remove_dir_all(folder);
    }
    // Said on a thread of its own, waited for a moment only: a standard error that nobody
    // reads must not keep the process from ending.
    let (said, saying) = std::sync::mpsc::channel();
    let message = message.to_string();
    let _ = std::thread::Builder::new().spawn(move || {
        say(&message);
        let _ = said.send(());
    });
    let _ = saying.recv_timeout(std::time::Duration::from_millis(200));
    // SAFETY: `_exit` ends the process; nothing of ours runs after it.
    unsafe { libc::_exit(130) }
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once('=')
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(|| format!("expected NAME=VALUE, got `{text}`"))?;
    if name.starts_with("env.") || name.starts_with("secret.") {
        return Err(format!(
            "`{name}` comes from the environment: set the variable `{}` instead",
            name.split_once('.').map_or(name, |(_, var)| var)
        ));
    }
    if name.contains('.') {
        // `{{ a.b }}` reads into a table of [vars]; --var sets a whole variable, a string.
        return Err(format!(
            "`{name}`: --var sets a whole variable (a string), not a key inside a table; use a variable of its own"
        ));
    }
    Ok((name.to_string(), value.to_string()))
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
    let code = match cli.command {
        // What sends requests runs on the async runtime; the rest runs without it, since its
        // worker threads are a measurable part of the start of `check` (a pipeline's first step).
        Command::Run(args) => on_runtime(async move { run(&args, None).await }),
        Command::Demo(args) => on_runtime(async move { demo(&args).await }),
        Command::Serve(args) => on_runtime(serve(args)),
        Command::Check(args) => check(&args.suite, &args.select),
        Command::List(args) => list(&args),
        Command::Lock(args) => lock(&args),
        Command::Merge(args) => merge(&args),
        Command::Report(args) => rerender(&args),
        Command::Init(args) => init(&args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "preflight", &mut script);
            out!("{}", String::from_utf8_lossy(&script).trim_end());
            ExitCode::SUCCESS
        }
        Command::Man { command } => man(command.as_deref()),
        Command::Schema { kind } => {
            out!("{}", crate::schema::render(kind));
            ExitCode::SUCCESS
        }
    };
    if STDOUT_FAILED.load(std::sync::atomic::Ordering::Relaxed) && code == ExitCode::SUCCESS {
        return ExitCode::from(1);
    }
    code
}

/// Runs `run`, `demo` or `serve` on a multi-threaded tokio runtime.
fn on_runtime(work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(block_stopping_signals)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            err!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = runtime.block_on(work);
    // The process ends right after (see `exit`): the runtime is not shut down, so its workers
    // do not wake to close each pooled connection and free each task while the process exits.
    std::mem::forget(runtime);
    code
}

/// Ends the process with `code` once standard output is flushed, without the teardown an
/// ordinary exit does for nothing: stopping the runtime's threads (left running by
/// `on_runtime`) and the allocator handing each freed page back to the system (tens of
/// `madvise` calls). Every file was written and closed by then; the kernel releases the rest.
/// It takes [`ENDING`] first: a signal's exit that began removing the reports ends the
/// process with 130 before this exit can say otherwise.
pub fn exit(code: ExitCode) -> ! {
    let _ending = ENDING.lock().unwrap_or_else(|e| e.into_inner());
    // A write to standard output that was given up (its reader took nothing) still holds its
    // lock: nothing more can be written there, and the verdict already says so.
    let flushed = if crate::fs::write::writer_stuck() {
        Ok(())
    } else {
        std::io::stdout().lock().flush()
    };
    let code = match flushed {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe && code == ExitCode::SUCCESS => {
            err!("error: cannot write to standard output: {e}");
            ExitCode::from(1)
        }
        _ => code,
    };
    // `ExitCode` does not show its value: find the one it was made from.
    let status = (0..=u8::MAX)
        .find(|&c| ExitCode::from(c) == code)
        .unwrap_or(1);
    // A signal came, and the verdict does not show it yet: its task did not get to run
    // before the reports were written, or it came while standard output was flushed. Read
    // last, so that only a signal during `_exit` itself can follow the decision.
    if status == 0 {
        // Blocked here as in every other thread, a signal that came is either noted by a
        // handler that ran, or pending still.
        block_stopping_signals();
        if SIGNALLED.load(std::sync::atomic::Ordering::SeqCst) || stopping_signal_pending() {
            interrupted(ENDED_WHILE_WRITING);
        }
    }
    // SAFETY: `_exit` ends the process; nothing of ours runs after it.
    unsafe { libc::_exit(i32::from(status)) }
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
        vars_files: args.vars_files.clone(),
        ..Overrides::default()
    }
}

/// Loads the suite `path` names: a suite directory, or one flow file with the settings of the
/// suite above it. With `rehearse`, each flow to be stored is rehearsed as it loads: the plan
/// comes with the problems found so.
fn load_suite(
    path: &Path,
    mut overrides: Overrides,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
    rehearse: Option<&suite::Rehearse>,
) -> Result<(Plan, Vec<Problem>), Vec<Problem>> {
    let located = suite::locate(path).map_err(|p| vec![p])?;
    overrides.flow_file = located.flow_file;
    if let Some(count) = std::env::var_os("PREFLIGHT_KEEP_COMPILED") {
        overrides.keep_compiled = Some(keep_compiled(&count).ok_or_else(|| {
            let message = format!(
                "PREFLIGHT_KEEP_COMPILED={count:?} is not a number of flows (a whole number, 0 or more)"
            );
            vec![Problem::file(path, message)]
        })?);
    }
    suite::load_rehearsed(&located.dir, overrides, env, rehearse)
}

/// `PREFLIGHT_KEEP_COMPILED`: a whole number, any number of digits (one past the largest
/// count means every flow, as the largest does).
fn keep_compiled(value: &std::ffi::OsStr) -> Option<usize> {
    let digits = value.to_str()?.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.parse().unwrap_or(usize::MAX))
}

/// Loads the suite and rehearses every request known before the run (what `check` accepts,
/// `run` can build), or prints every problem; `None` means exit 2.
fn load(dir: &Path, overrides: Overrides) -> Option<Plan> {
    let each_flow = engine::EachFlow::default();
    let rehearse = |plan: &Plan, flow: &suite::Flow, body: &suite::FlowSteps| {
        each_flow.problems(plan, flow, body)
    };
    let problems = match load_suite(dir, overrides, &env, Some(&rehearse)) {
        Ok((plan, rehearsed)) => {
            let mut problems = engine::rehearse_rest(&plan);
            if problems.is_empty() && rehearsed.is_empty() {
                return Some(plan);
            }
            // The stored flows were rehearsed while the suite loaded, masked with the secrets
            // read by then: mask them with every secret of the suite, as the others are.
            let redactor = plan.redactor(None);
            problems.extend(rehearsed.into_iter().map(|mut problem| {
                problem.message = redactor.mask_text(&problem.message);
                problem
            }));
            in_flow_order(&plan, &mut problems);
            problems
        }
        Err(problems) => problems,
    };
    print_problems(&problems);
    None
}

/// Set when standard output could not be written (but for a closed pipe): the exit code is
/// then 1, whatever the command would have said.
static STDOUT_FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn print_out(text: std::fmt::Arguments) {
    use std::sync::atomic::Ordering;
    if let Err(e) = write!(std::io::stdout().lock(), "{text}")
        && e.kind() != std::io::ErrorKind::BrokenPipe
        && !STDOUT_FAILED.swap(true, Ordering::Relaxed)
    {
        err!("error: cannot write to standard output: {e}");
    }
}

/// Orders `problems` as the plan's flows are (each file's own in the order found), the suite
/// file's first: the rehearsals of stored and of compiled flows each come in flow order.
fn in_flow_order(plan: &Plan, problems: &mut [Problem]) {
    let mut place = std::collections::HashMap::new();
    for (i, flow) in plan.flows.iter().enumerate() {
        place
            .entry(plan.settings.dir.join(&flow.file))
            .or_insert(i + 1);
    }
    problems.sort_by_key(|p| place.get(&p.file).copied().unwrap_or(0));
}

fn print_problems(problems: &[Problem]) {
    for problem in problems {
        err!("{problem}\n");
    }
    let n = problems.len();
    err!(
        "suite invalid: {n} problem{}, nothing was run",
        if n == 1 { "" } else { "s" }
    );
}

fn nothing_to_run() -> ExitCode {
    err!("nothing to run");
    ExitCode::from(EXIT_INVALID)
}

/// Keeps the selected flows. A `--flow`, `--tag` or `--skip-tag` value that matches no flow of
/// the suite is a usage error, so that a misspelt name can never pass the gate by running
/// less; `Err` is the exit code (2).
fn select(plan: &mut Plan, selection: &Selection) -> Result<(), ExitCode> {
    let unmatched = plan.select(&selection.tag, &selection.skip_tag, &selection.flow);
    for problem in &unmatched {
        err!("error: {problem}");
    }
    if !unmatched.is_empty() || plan.flows.is_empty() {
        return Err(nothing_to_run());
    }
    Ok(())
}

fn check(args: &SuiteArgs, selection: &Selection) -> ExitCode {
    let Some(mut plan) = load(&args.suite, overrides(args)) else {
        return ExitCode::from(EXIT_INVALID);
    };
    if let Err(code) = select(&mut plan, selection) {
        return code;
    }
    let results = integrity::verify_plan(&plan);
    let failed: Vec<_> = results.iter().filter(|r| !r.passed).collect();
    for r in &failed {
        err!("{}", r.message.as_deref().unwrap_or("config mismatch"));
        if let Some(hint) = &r.hint {
            err!("    fix: {hint}");
        }
    }
    if !failed.is_empty() {
        err!(
            "config mismatch in {}: the suite is valid, the config is not",
            verdict::counted(failed.len(), "file")
        );
        return ExitCode::from(1);
    }
    // A stored flow is read again to be counted: its file may have changed since the load.
    let mut steps = 0;
    for flow in &plan.flows {
        match plan.steps_of(flow) {
            Ok(body) => steps += body.steps.len(),
            Err(why) => {
                print_problems(&[Problem::file(&plan.settings.dir.join(&flow.file), why)]);
                return ExitCode::from(EXIT_INVALID);
            }
        }
    }
    let count = verdict::counted;
    let part = suite::locate(&args.suite).ok().and_then(|l| l.flow_file);
    if part.is_some() {
        // Only this file or folder was compiled: say so, so nobody takes it for the whole
        // suite.
        let what = if args.suite.is_file() {
            "flow valid:".to_string()
        } else {
            format!("flows valid: the {} in", count(plan.flows.len(), "flow"))
        };
        out!(
            "{what} {} with the settings of suite {} ({}); the suite's other flows were not checked",
            clean(&args.suite.display().to_string()),
            clean(&plan.settings.name),
            count(steps, "step"),
        );
    } else {
        out!(
            "suite valid: {} ({}, {}, {})",
            clean(&plan.settings.name),
            count(plan.flows.len(), "flow"),
            count(steps, "step"),
            count(plan.setup.len(), "setup step")
        );
    }
    // The process is about to exit: freeing the plan piece by piece is wasted time (about a
    // twentieth of a large `check`).
    std::mem::forget(plan);
    ExitCode::SUCCESS
}

fn init(args: &InitArgs) -> ExitCode {
    if let Some(file) = &args.from_openapi {
        return init_from_openapi(file, &args.dir);
    }
    match crate::init::write(&args.dir) {
        Ok(written) => {
            for path in &written {
                out!("wrote {}", path.display());
            }
            let dir = args.dir.display();
            out!(
                "next: edit base_url in {dir}/preflight.toml, then `preflight check {dir}` and `preflight run {dir}`"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            err!("error: {e}");
            ExitCode::from(EXIT_INVALID)
        }
    }
}

fn init_from_openapi(file: &Path, dir: &Path) -> ExitCode {
    use crate::init::from_openapi::{self, DraftError};
    let fail = |message: String| {
        err!("error: {message}");
        ExitCode::from(EXIT_INVALID)
    };
    let shown = clean(&file.display().to_string()).into_owned();
    let text = match crate::fs::read::read_regular_text(file) {
        Ok(text) => text,
        Err(e) => return fail(format!("cannot read `{shown}`: {e}")),
    };
    // The contract the draft's `[openapi]` will load, compiled now: a document `check` would
    // refuse is refused here, before anything is written.
    let read = crate::openapi::read(&shown, &text)
        .and_then(|doc| crate::openapi::contract(&shown, &doc).map(|_| doc));
    let doc = match read {
        Ok(doc) => doc,
        Err(broken) => {
            let message = format!("OpenAPI document: {}", broken.message);
            let problem = match broken.at {
                Some(at) => Problem::at(file, &text, at, message),
                None => Problem::file(file, message),
            };
            print_problems(&[problem]);
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let spec = match crate::init::relative_to(dir, file) {
        Ok(spec) => spec,
        Err(e) => {
            return fail(format!(
                "cannot locate `{shown}` from `{}`: {e}",
                dir.display()
            ));
        }
    };
    let Some(spec) = spec.to_str() else {
        return fail(format!(
            "the path to `{shown}` is not UTF-8: name it in [openapi] by hand"
        ));
    };
    let list = |skipped: &[from_openapi::Skipped]| {
        for s in skipped {
            out!("  {}: {}", s.operation, s.why);
        }
    };
    let draft = match from_openapi::draft(&doc, spec, &shown) {
        Ok(draft) => draft,
        Err(DraftError::NothingToProbe { skipped }) => {
            out!("skipped {}:", verdict::counted(skipped.len(), "operation"));
            list(&skipped);
            return fail(format!(
                "no operation of `{shown}` can be a step (each is listed above with the reason); nothing was written"
            ));
        }
        Err(DraftError::Broken(message)) => {
            return fail(format!("OpenAPI document `{shown}`: {message}"));
        }
    };
    let written = match crate::init::write_files(dir, &draft.files) {
        Ok(written) => written,
        Err(e) => return fail(e.to_string()),
    };
    for path in &written {
        out!("wrote {}", path.display());
    }
    out!(
        "drafted {} from {shown}",
        verdict::counted(draft.steps, "GET step")
    );
    if !draft.skipped.is_empty() {
        out!(
            "skipped {} (also listed in the files; write them by hand):",
            verdict::counted(draft.skipped.len(), "operation")
        );
        list(&draft.skipped);
    }
    let dir = clean(&dir.display().to_string()).into_owned();
    match draft.base_url {
        Some(url) => out!(
            "base_url is the document's first server, {url}: make sure it is staging, then `preflight check {dir}` and `preflight run {dir}`"
        ),
        None => out!(
            "next: set base_url in {dir}/preflight.toml (the document names no absolute server), then `preflight check {dir}` and `preflight run {dir}`"
        ),
    }
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
        err!("nothing to lock: preflight.toml has no [[integrity]] entry");
        return ExitCode::from(EXIT_INVALID);
    }
    let lock_path = args.suite.join(integrity::LOCK_FILE);
    match integrity::write_lock(&args.suite, &plan.settings.integrity) {
        Ok(integrity::LockOutcome::Written(n)) => {
            out!(
                "wrote {} ({})",
                lock_path.display(),
                verdict::counted(n, "file")
            );
            ExitCode::SUCCESS
        }
        Ok(integrity::LockOutcome::Unchanged(n)) => {
            out!(
                "{} is up to date ({})",
                lock_path.display(),
                verdict::counted(n, "file")
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors {
                err!("error: {e}");
            }
            ExitCode::from(1)
        }
    }
}

fn list(args: &ListArgs) -> ExitCode {
    let mut plan = match load_suite(&args.suite, offline(), &|_| None, None) {
        Ok((plan, _)) => plan,
        Err(problems) => {
            print_problems(&problems);
            return ExitCode::from(EXIT_INVALID);
        }
    };
    if let Err(code) = select(&mut plan, &args.select) {
        return code;
    }
    // One flow's steps at a time (a stored flow is compiled again for this only); nothing is
    // printed unless every flow could be listed.
    use std::fmt::Write as _;
    let mut listed = Vec::new();
    let mut text = String::new();
    for flow in &plan.flows {
        let body = match plan.steps_of(flow) {
            Ok(body) => body,
            Err(why) => {
                err!("error: flow '{}': {why}", clean(&flow.name));
                return ExitCode::from(EXIT_INVALID);
            }
        };
        if args.json {
            listed.push(ListedFlow::of(flow, &body));
            continue;
        }
        let tags = if flow.tags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", clean(&flow.tags.join(", ")))
        };
        let critical = if flow.critical {
            "critical"
        } else {
            "non-critical"
        };
        // Names are the suite's own, but a terminal is no place for raw control characters.
        let (name, file) = (clean(&flow.name), clean(&flow.file));
        let _ = writeln!(text, "{name} ({file}){tags} {critical}");
        for (i, step) in body.steps.iter().enumerate() {
            let _ = writeln!(text, "  {}. {}", i + 1, clean(&step.name));
        }
        for step in &body.cleanup {
            let _ = writeln!(text, "  cleanup: {}", clean(&step.name));
        }
    }
    if args.json {
        let json = serde_json::to_string_pretty(&listed).expect("a listing always serializes");
        out!("{json}");
    } else {
        print_out(format_args!("{text}"));
    }
    ExitCode::SUCCESS
}

async fn demo(args: &DemoArgs) -> ExitCode {
    if args.run.suite.base_url.is_some() {
        // The demo staging is the point of `demo`: a --base-url quietly ignored would let a
        // user believe they ran against their own staging.
        err!(
            "error: demo runs against its own embedded staging, so it takes no --base-url; \
             to run a suite against your staging: preflight run SUITE --base-url URL"
        );
        return ExitCode::from(EXIT_INVALID);
    }
    // The bundled suite: `smoke-tests/` of the working directory when it has one (the
    // repository, where edits to the suite and its config show), else the binary's own copy.
    let mut run_args = args.run.clone();
    let mut bundled = None;
    if run_args.suite.suite == Path::new(DEMO_SUITE) && !run_args.suite.suite.is_dir() {
        match BundledSuite::write() {
            Ok(suite) => {
                // `demo` runs once a process: the directory is never set already.
                let _ = DEMO_SUITE_DIR.set(suite.root().to_path_buf());
                run_args.suite.suite = bundled.insert(suite).suite();
            }
            Err(e) => {
                err!("error: cannot write the bundled suite to a temporary directory: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let server = match DemoServer::start(&args.fault).await {
        Ok(server) => server,
        Err(e) => {
            err!("error: cannot start the demo staging: {e}");
            return ExitCode::from(1);
        }
    };
    err!("demo staging listening on {}", server.base_url());
    let code = run(&run_args, Some(server.base_url())).await;
    server.shutdown().await;
    drop(bundled);
    code
}

/// How many reports go to standard output (`-`).
fn reports_to_stdout(args: &Destinations) -> usize {
    args.paths().filter(|p| is_stdout(p)).count()
}

impl Destinations {
    fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.json, &self.junit, &self.markdown, &self.html]
            .into_iter()
            .flatten()
    }

    /// Reports that would overwrite one another (more than one on standard output, or two
    /// naming one file, through a symlink too): the last written would silently win. Or a
    /// report that would replace the step summary and what earlier steps wrote there;
    /// `summary` is what this command does with it, for the message.
    fn clash(&self, summary: StepSummaryUse) -> Option<String> {
        if reports_to_stdout(self) > 1 {
            return Some("only one report can go to standard output (`-`)".into());
        }
        let files: Vec<_> = self
            .paths()
            .filter(|p| !is_stdout(p))
            .map(|p| (p, file_identity(p)))
            .collect();
        let replaced = step_summary().and_then(|path| match std::fs::metadata(&path) {
            // Only a regular file (or a new path) is replaced; a device or FIFO is written
            // through.
            Ok(meta) if !meta.is_file() => None,
            found => Some(file_identity_from(&path, found.ok())),
        });
        if let Some((path, _)) = files.iter().find(|(_, id)| Some(id) == replaced.as_ref()) {
            let why = match summary {
                StepSummaryUse::AppendsTo => "which the Markdown report is appended to",
                StepSummaryUse::LeavesAlone => "which holds what earlier steps wrote",
            };
            return Some(format!(
                "`{}` is the step summary ($GITHUB_STEP_SUMMARY), {why}: a report cannot replace it",
                path.display()
            ));
        }
        files.iter().enumerate().find_map(|(i, (a, id))| {
            let (b, _) = files[i + 1..].iter().find(|(_, other)| other == id)?;
            Some(format!(
                "two reports would go to the same file: `{}` and `{}`",
                a.display(),
                b.display()
            ))
        })
    }
}

/// Whether a command appends its Markdown report to the step summary (`run`, `demo`, `merge`)
/// or leaves it alone (`report`): what a refused report to the step summary is told.
#[derive(Clone, Copy)]
enum StepSummaryUse {
    AppendsTo,
    LeavesAlone,
}

/// The step summary (`$GITHUB_STEP_SUMMARY`, set by GitHub Actions), when set.
fn step_summary() -> Option<PathBuf> {
    std::env::var_os("GITHUB_STEP_SUMMARY")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// What names a file: its inode when it exists, else the path a write would create (a
/// dangling symlink followed) with the folder resolved.
#[derive(PartialEq)]
enum FileIdentity {
    Inode(u64, u64),
    Path(PathBuf),
}

fn file_identity(path: &Path) -> FileIdentity {
    file_identity_from(path, std::fs::metadata(path).ok())
}

/// [`file_identity`] of `path`, whose metadata (`None`: it does not exist) was read already.
fn file_identity_from(path: &Path, meta: Option<std::fs::Metadata>) -> FileIdentity {
    use std::os::unix::fs::MetadataExt;
    if let Some(meta) = meta {
        return FileIdentity::Inode(meta.dev(), meta.ino());
    }
    // A symlink to a file not written yet writes that file: it must clash with the file's
    // own name, given to another report.
    let path = crate::fs::write::destination(path);
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let folder = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
    FileIdentity::Path(folder.join(path.file_name().unwrap_or_default()))
}

/// `-`, or a path that names the same file as standard output (`/dev/stdout`, `/dev/fd/1`,
/// the file stdout is redirected to): a report there shares the stream with no other.
fn is_stdout(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if path == Path::new("-") {
        return true;
    }
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    id(path).is_some_and(|file| id(Path::new("/dev/fd/1")) == Some(file))
}

/// What a shard's reports say about it: which part it is, and the suite digest.
struct ShardPart {
    record: ShardRecord,
    digest: String,
    /// Of the whole selection, so that every shard (and their merge) has the same one.
    files_digest: String,
}

/// Loads the suite and keeps the selected flows (of this shard, with `--shard`); `Err` is the
/// exit code (2).
fn planned(
    args: &RunArgs,
    base_url: Option<String>,
) -> Result<(Plan, Option<ShardPart>), ExitCode> {
    if let Some(clash) = args.out.clash(StepSummaryUse::AppendsTo) {
        err!("error: {clash}");
        return Err(ExitCode::from(EXIT_INVALID));
    }
    let mut plan = selected(
        &args.suite,
        &args.select,
        &args.tuning,
        base_url,
        args.quiet,
    )?;
    // The split comes after "nothing critical": that rule is about the whole selection, and a
    // shard that happens to hold only non-critical flows must not judge them as critical.
    let part = match args.shard {
        Some(arg) => Some(sharded(&mut plan, arg, args.shard_count)?),
        None => None,
    };
    Ok((plan, part))
}

/// Loads the suite with the command line's overrides and keeps the selected flows; `Err` is
/// the exit code (2), the problems printed.
fn selected(
    suite: &SuiteArgs,
    selection: &Selection,
    tuning: &Tuning,
    base_url: Option<String>,
    quiet: bool,
) -> Result<Plan, ExitCode> {
    let mut overrides = overrides(suite);
    if let Some(url) = base_url {
        overrides.base_url = Some(url);
        overrides.base_url_origin = "demo";
    }
    overrides.digest_files = true;
    overrides.concurrency = tuning.concurrency;
    overrides.timeout = tuning.timeout;
    overrides.deadline = tuning.deadline;
    if tuning.keep_all_compiled {
        overrides.keep_compiled = Some(usize::MAX);
    }
    let Some(mut plan) = load(&suite.suite, overrides) else {
        return Err(ExitCode::from(EXIT_INVALID));
    };
    select(&mut plan, selection)?;
    if !plan.flows.iter().any(|f| f.critical) {
        // Nothing critical, no free pass: a selection of non-critical flows alone (or an
        // unreachable staging behind them) must not end in PASS.
        if !quiet {
            err!("note: no critical flow selected: the selected flows count as critical");
        }
        for flow in &mut plan.flows {
            flow.critical = true;
        }
    }
    Ok(plan)
}

/// `preflight serve`: the suite is loaded now, and again on SIGHUP, with the same options.
async fn serve(args: ServeArgs) -> ExitCode {
    let ServeArgs {
        suite,
        select,
        tuning,
        ..
    } = &args;
    let (suite, select) = (suite.clone(), select.clone());
    let tuning = Tuning {
        keep_all_compiled: true,
        ..tuning.clone()
    };
    let load: crate::serve::Loader =
        Arc::new(move || selected(&suite, &select, &tuning, None, false).ok());
    // A token from a file (a Kubernetes Secret) often ends in a newline: callers send it
    // without one.
    let token = std::env::var(crate::serve::TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let options = crate::serve::ServeOptions {
        listen: args.listen,
        every: args.every,
        allow_vars: args.allow_vars,
        keep: args.keep as usize,
        state_dir: args.state_dir,
        public_metrics: args.public_metrics,
        shutdown_grace: args.shutdown_grace,
        gate: crate::serve::GateOptions {
            fail_fast: args.fail_fast,
            queue_timeout: args.queue_timeout,
            replay_for: args.replay_for,
            token: None,
        },
    };
    crate::serve::serve(options, token, load).await
}

/// Keeps the flows of the shard `arg` names, after taking the digest of the whole selection.
fn sharded(plan: &mut Plan, arg: ShardArg, count: Option<u32>) -> Result<ShardPart, ExitCode> {
    let usage = |e: &dyn std::fmt::Display| {
        err!("error: {e}");
        ExitCode::from(EXIT_INVALID)
    };
    let shard = match arg {
        ShardArg::Fixed(shard) => shard,
        ShardArg::Auto => shard::detect(&env, count.map(|n| n as usize)).map_err(|e| usage(&e))?,
    };
    if let (ShardArg::Fixed(_), Some(count)) = (&arg, count) {
        return Err(usage(&format!(
            "--shard-count {count} goes with --shard auto; --shard K/N names the count itself"
        )));
    }
    let cannot = |e: std::io::Error| usage(&format!("cannot read the suite to digest it: {e}"));
    let digest = shard::suite_digest(plan, &env).map_err(cannot)?;
    let files_digest = shard::files_digest(plan).map_err(cannot)?;
    let selected = plan.flows.iter().map(|f| f.name.clone()).collect();
    shard::keep(plan, shard).map_err(|e| usage(&e))?;
    let record = ShardRecord {
        index: shard.index,
        count: shard.count,
        selected,
        gate: GateRecord::of(&plan.settings.gate),
        deadline_exceeded_ms: None,
        internal_errors: Vec::new(),
    };
    Ok(ShardPart {
        record,
        digest,
        files_digest,
    })
}

fn parse_shard(text: &str) -> Result<ShardArg, String> {
    shard::parse(text).map_err(|e| e.to_string())
}

async fn run(args: &RunArgs, base_url: Option<String>) -> ExitCode {
    let (plan, part) = match planned(args, base_url) {
        Ok((plan, part)) => (Arc::new(plan), part),
        Err(code) => return code,
    };
    // The JSON report names its suite's files by digest, so that it can be the baseline of a
    // later run of the same suite. Only the JSON and a baseline need it. The files are hashed
    // as the load reads them (`shard::LoadedFiles`), but the selection and each flow's
    // variables still are, per flow: a baseline is checked against it before the run; the
    // JSON report needs it only at the end, so then it is taken on a thread of its own while
    // the run goes on.
    let (mut digest, pending_digest) = match &part {
        Some(part) => (Some(part.files_digest.clone()), None),
        None if args.baseline.is_some() => match shard::files_digest(&plan) {
            Ok(digest) => (Some(digest), None),
            Err(e) => {
                err!("error: cannot read the suite to digest it: {e}");
                return ExitCode::from(EXIT_INVALID);
            }
        },
        None if args.out.json.is_some() => {
            let plan = plan.clone();
            let digesting = std::thread::spawn(move || {
                block_stopping_signals();
                shard::files_digest(&plan)
            });
            (None, Some(digesting))
        }
        None => (None, None),
    };
    let baseline = match (&args.baseline, &digest) {
        (Some(path), Some(digest)) => {
            match crate::baseline::read(path, digest, args.baseline_any) {
                Ok(report) => Some((path.display().to_string(), report)),
                Err(e) => {
                    err!("error: {e}");
                    return ExitCode::from(EXIT_INVALID);
                }
            }
        }
        _ => None,
    };
    let redactor = Arc::new(plan.redactor(None));
    let mode = if args.quiet {
        Mode::Silent
    } else if !args.no_progress && std::io::stderr().is_terminal() {
        Mode::Bars
    } else {
        Mode::Lines
    };
    let detail = detail(args.quiet, args.verbose);
    // Every flow is kept whole when the terminal lists them all (`--verbose`), when each
    // step is compared with the baseline, and in a run small enough for the reports to show
    // every flow; otherwise the flows that simply passed are only written as they finish.
    let keep_all =
        detail == Detail::Verbose || baseline.is_some() || plan.flows.len() <= FULL_LISTING;
    // Listening before the JSON report's temporary file is made: a signal from then on is
    // handled, never the default exit that would leave the file behind.
    let listeners = listen_for_signals();
    let streaming = Streaming::start(&args.out, &plan, redactor.clone(), keep_all);
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let shown = tokio::spawn(progress::show(receiver, mode));
    let interrupt = CancellationToken::new();
    let run_over = CancellationToken::new();
    tokio::spawn(watch_signals(
        listeners,
        interrupt.clone(),
        run_over.clone(),
    ));
    let options = RunOptions {
        show_sensitive_headers: args.show_sensitive_headers,
        events: EventSink::new(sender),
        interrupt: interrupt.clone(),
        fail_fast: args.fail_fast,
        capture_exchanges: args.verbose >= 2 && !args.quiet,
        sink: Some(streaming.sink()),
    };
    // The engine runs in its own task so that even a panic inside it ends in a failed gate.
    let engine = tokio::spawn(engine::run(plan.clone(), redactor.clone(), options));
    let finished = engine.await;
    // From now on a signal ends the process at once (exit 130): nothing is left to stop
    // gracefully, and writing a report (to a FIFO nobody reads) must never outlast a cancel.
    run_over.cancel();
    let mut result = match finished {
        Ok(result) => result,
        Err(e) => engine::failed_run(
            &plan,
            format!("the run did not complete ({e})"),
            Some(streaming.sink()),
        ),
    };
    let spool = streaming.finish();
    // A signal that came after the engine stopped listening, but before the run was over,
    // still interrupts it: the pipeline asked to stop, and never gets a PASS for it.
    if interrupt.is_cancelled() && result.stopped.is_none() {
        result.stopped = Some(engine::Stop::Interrupted);
    }
    let _ = shown.await;
    let mut verdict = judge(&result, &plan.settings.gate);
    if let Some(digesting) = pending_digest {
        // A report that cannot say which files it checked is not one to trust.
        let why = match digesting.join() {
            Ok(Ok(taken)) => {
                digest = Some(taken);
                None
            }
            Ok(Err(e)) => Some(format!("cannot read the suite to digest it: {e}")),
            Err(_) => Some("taking the digest of the suite's files failed".to_string()),
        };
        if let Some(why) = why {
            verdict = verdict.add_reason(Reason::Internal(why));
        }
    }
    let compared = baseline.map(|(file, before)| {
        let now = Report::new(&plan, &result, &verdict, &redactor);
        let policy = &plan.settings.gate.latency_regression;
        // The baseline is a file from elsewhere: what it says is masked like the rest.
        crate::baseline::compare(&file, &before, &now, policy).masked(&*redactor)
    });
    if let Some(record) = compared.as_ref().filter(|r| r.fail_on_latency_regression) {
        let steps: Vec<String> = record.regressions().map(|s| s.describe()).collect();
        if !steps.is_empty() {
            verdict = verdict.add_reason(Reason::LatencyRegressed { steps });
        }
    }
    let build = |verdict: &Verdict| {
        let mut report = Report::new(&plan, &result, verdict, &redactor);
        report.suite_files_digest = digest.clone();
        if let Some(record) = &compared {
            report.add_baseline(record.clone(), &result, verdict, &*redactor);
        }
        if let Some(part) = &part {
            let mut record = part.record.clone();
            if let Some(Stop::Deadline { deadline_ms }) = result.stopped {
                record.deadline_exceeded_ms = Some(deadline_ms);
            }
            record.internal_errors = result
                .internal_errors
                .iter()
                .map(|e| redactor.mask_text(e))
                .collect();
            report.suite_digest = Some(part.digest.clone());
            report.shard = Some(record);
        }
        report
    };
    let flows = spool.as_ref().map_or(AllFlows::InReport, AllFlows::Spooled);
    let code = finish(&args.out, detail, verdict, &build, flows, streaming.json);
    // The process is about to exit: freeing a large run piece by piece is wasted time.
    std::mem::forget((result, plan));
    code
}

/// `preflight man [COMMAND]`: the man page of preflight, or of one of its commands.
fn man(command: Option<&str>) -> ExitCode {
    let top = <Cli as clap::CommandFactory>::command();
    let page = match command {
        None => top,
        Some(name) => match top.find_subcommand(name) {
            Some(sub) => sub
                .clone()
                .display_name(format!("preflight-{name}"))
                .bin_name(format!("preflight {name}"))
                .version(env!("CARGO_PKG_VERSION")),
            None => {
                err!("error: no command `{name}`; `preflight --help` lists them");
                return ExitCode::from(EXIT_INVALID);
            }
        },
    };
    let mut roff = Vec::new();
    let written = clap_mangen::Man::new(page)
        .render(&mut roff)
        .and_then(|()| {
            match std::io::stdout().write_all(&roff) {
                // The reader has gone (`preflight man | head`): nothing more to say.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                written => written,
            }
        });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            err!("error: cannot write the man page: {e}");
            ExitCode::from(1)
        }
    }
}

fn detail(quiet: bool, verbose: u8) -> Detail {
    if quiet {
        Detail::Quiet
    } else if verbose > 0 {
        Detail::Verbose
    } else {
        Detail::Normal
    }
}

/// Writes the reports, prints the terminal summary and its last line, and returns the exit
/// code of the verdict the reports carry: the same ending for `run` and `merge`.
fn finish(
    out: &Destinations,
    detail: Detail,
    verdict: Verdict,
    build: &dyn Fn(&Verdict) -> Report,
    flows: AllFlows,
    early_json: Option<Prepared>,
) -> ExitCode {
    let (verdict, report) = write_reports(out, verdict, build, flows, early_json);
    for reason in verdict.reasons() {
        if let Reason::ReportNotWritten(failure) = reason {
            say(&format!("error: {failure}"));
        }
    }
    let summary = terminal::summary(&report, detail);
    // A report on standard output keeps it clean: the human summary goes to stderr.
    if reports_to_stdout(out) > 0 {
        // Not `eprint!`, which panics when standard error cannot be written: the exit code
        // still says what the verdict is.
        let _ = write!(std::io::stderr(), "{summary}");
    } else {
        print_out(format_args!("{summary}"));
    }
    std::mem::forget(report);
    verdict.exit_code()
}

/// `preflight merge`: reads every shard report (any unreadable one, or one that is no shard
/// report, is exit 2 naming it), then judges and reports the whole as `run` would.
fn merge(args: &MergeArgs) -> ExitCode {
    end_at_once_on_signals();
    if let Some(clash) = args.out.clash(StepSummaryUse::AppendsTo) {
        err!("error: {clash}");
        return ExitCode::from(EXIT_INVALID);
    }
    let merged = match crate::merge::merge_files(&args.reports) {
        Ok(merged) => merged,
        Err(e) => {
            err!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let build = |verdict: &Verdict| merged.report(verdict);
    finish(
        &args.out,
        detail(args.quiet, args.verbose),
        merged.verdict.clone(),
        &build,
        AllFlows::Spooled(&merged.flows),
        None,
    )
}

/// `preflight report`: renders a saved JSON report again, as it was saved: nothing is judged
/// again and nothing changes it, so a report made later from a CI artifact equals the one the
/// run wrote, byte for byte. Never appends to `$GITHUB_STEP_SUMMARY` (the run did). Exit 0
/// when every report is written, 1 when one cannot be, 2 for an unreadable input or nothing
/// asked for.
fn rerender(args: &ReportArgs) -> ExitCode {
    end_at_once_on_signals();
    if let Some(clash) = args.out.clash(StepSummaryUse::LeavesAlone) {
        err!("error: {clash}");
        return ExitCode::from(EXIT_INVALID);
    }
    if args.out.paths().next().is_none() {
        err!("error: nothing to write: give at least one of --html, --markdown, --junit, --json");
        return ExitCode::from(EXIT_INVALID);
    }
    let report = match crate::merge::read_report(&args.report) {
        Ok(report) => report,
        Err(e) => {
            err!("error: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let wanted = [
        (ReportKind::Json, &args.out.json),
        (ReportKind::Junit, &args.out.junit),
        (ReportKind::Markdown, &args.out.markdown),
        (ReportKind::Html, &args.out.html),
    ];
    let mut code = ExitCode::SUCCESS;
    for (kind, path) in wanted {
        let Some(path) = path else { continue };
        let written = Prepared::report(path).and_then(|mut dest| {
            dest.stage(|out| kind.render(&report, AllFlows::InReport, out))?;
            dest.commit()
        });
        if let Err(e) = written {
            err!(
                "error: cannot write {} report {}: {e}",
                kind.name(),
                path.display()
            );
            code = ExitCode::from(1);
        }
    }
    code
}
