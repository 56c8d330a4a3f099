//! The `vigil` command.

fn main() -> std::process::ExitCode {
    vigil_host::cli::main()
}
