//! The `vigie` command line; every subcommand lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    vigie::cli::main()
}
