//! `hookd`: see `hookd --help`.

fn main() -> std::process::ExitCode {
    hookd::main()
}
