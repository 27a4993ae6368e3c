//! The `preflight` binary: everything lives in the library; this only hands over the arguments.

fn main() -> std::process::ExitCode {
    preflight::cli::main(std::env::args_os())
}
